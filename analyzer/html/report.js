/* report.js - draws the `memtrack html` page from the JSON data embedded in it.
 *
 * No framework and nothing from the network: the timeline is inline SVG,
 * the flame graph absolutely positioned divs (one per frame wide enough to
 * see), the tables plain HTML. Everything is keyboard reachable. Opened
 * with the #selftest fragment, the page also exercises itself (draws,
 * clicks a frame, reads the tables) and writes what it saw as JSON into a
 * <pre id="mt-selftest">, for the browser test.
 */
'use strict';
(function () {
  const selftest = location.hash === '#selftest';
  const errors = [];
  if (selftest) {
    const orig = console.error.bind(console);
    console.error = function (...args) { errors.push(args.map(String).join(' ')); orig(...args); };
    window.addEventListener('error', (e) => errors.push('error: ' + e.message));
    window.addEventListener('unhandledrejection', (e) => errors.push('rejection: ' + e.reason));
  }

  const $ = (id) => document.getElementById(id);
  const D = JSON.parse($('mt-data').textContent);
  const SVGNS = $('tl-svg').namespaceURI;

  function el(tag, attrs, ...kids) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === 'class') e.className = v;
      else if (k === 'text') e.textContent = v;
      else e.setAttribute(k, v === true ? '' : v);
    }
    for (const kid of kids) if (kid !== null && kid !== undefined) e.append(kid);
    return e;
  }
  function sv(tag, attrs, text) {
    const e = document.createElementNS(SVGNS, tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    if (text !== undefined) e.textContent = text;
    return e;
  }

  /* ---- numbers ---- */

  const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  function fmtBytes(n) {
    let u = 0;
    let v = n;
    while (v >= 1024 && u < UNITS.length - 1) { v /= 1024; u++; }
    return u === 0 ? `${n} B` : `${v.toFixed(v < 10 ? 2 : v < 100 ? 1 : 0)} ${UNITS[u]}`;
  }
  const fmtCount = (n) => Number(n).toLocaleString('en-US');
  function fmtTime(ns) {
    if (ns < 1e3) return `${ns} ns`;
    if (ns < 1e6) return `${(ns / 1e3).toFixed(ns < 1e4 ? 2 : 1)} \u00b5s`;
    if (ns < 1e9) return `${(ns / 1e6).toFixed(ns < 1e7 ? 2 : 1)} ms`;
    return `${(ns / 1e9).toFixed(2)} s`;
  }
  const pct = (v, total) => (total ? `${((100 * v) / total).toFixed(1)}%` : '0%');

  const METRICS = [
    { key: 'peak', label: 'Peak bytes', short: 'Peak', bytes: true, total: 'peak_bytes' },
    { key: 'leaked', label: 'Leaked bytes', short: 'Leaked', bytes: true, total: 'leaked_bytes' },
    { key: 'allocations', label: 'Allocations', short: 'Allocations', bytes: false, total: 'allocations' },
    { key: 'temporary', label: 'Temporary allocations', short: 'Temporary', bytes: false, total: 'temporary_allocations' },
  ];
  const fmtMetric = (m, v) => (METRICS[m].bytes ? fmtBytes(v) : fmtCount(v));
  const exactMetric = (m, v) => (METRICS[m].bytes ? `${fmtCount(v)} B` : fmtCount(v));
  const where = (file, line) => (file ? `${file}:${line}` : 'unknown file');

  /* ---- tooltip ---- */

  const tip = $('tooltip');
  function showTip(ev, lines) {
    tip.replaceChildren();
    lines.forEach((l, i) => { if (i) tip.append('\n'); tip.append(i === 0 ? el('b', { text: l }) : l); });
    tip.hidden = false;
    const r = tip.getBoundingClientRect();
    let x = ev.clientX + 14;
    let y = ev.clientY + 14;
    if (x + r.width > window.innerWidth - 8) x = Math.max(8, ev.clientX - r.width - 14);
    if (y + r.height > window.innerHeight - 8) y = Math.max(8, ev.clientY - r.height - 14);
    tip.style.left = `${x}px`;
    tip.style.top = `${y}px`;
  }
  const hideTip = () => { tip.hidden = true; };

  /* ---- header and totals ---- */

  function drawHeader() {
    const p = D.process;
    const T = D.totals;
    $('subtitle').textContent = `${p.command || p.exe || ''} \u2014 pid ${p.pid}, ${fmtTime(p.duration_ns)}, ` +
      `${fmtCount(T.events)} events, trace ${p.trace}`;
    const warn = [];
    if (p.sampled) warn.push('Allocations were sampled: the numbers are estimates.');
    if (p.dropped_events) warn.push(`${fmtCount(p.dropped_events)} events were lost while recording: the numbers are estimates.`);
    if (!p.complete) warn.push('The trace has no end record (the program did not exit normally): analyzed up to its last record.');
    $('warnings').replaceChildren(...warn.map((w) => el('li', { text: w })));
    const card = (k, v, d) => el('div', { class: 'card' }, el('div', { class: 'k', text: k }),
      el('div', { class: 'v', text: v }), el('div', { class: 'd', text: d }));
    $('summary').replaceChildren(
      card('Peak heap', fmtBytes(T.peak_bytes), `${fmtCount(T.peak_allocations)} blocks at ${fmtTime(T.peak_time_ns)}`),
      card('Leaked', fmtBytes(T.leaked_bytes), T.suppressed_leaked_bytes
        ? `plus ${fmtBytes(T.suppressed_leaked_bytes)} suppressed (libc, ld.so)` : 'live at exit'),
      card('Allocations', fmtCount(T.allocations), `${fmtBytes(T.bytes_allocated)} in total, ${fmtCount(T.frees)} frees`),
      card('Temporary', fmtCount(T.temporary_allocations), `${fmtBytes(T.temporary_bytes)} freed right away`),
      card('Run', fmtTime(D.process.duration_ns), `${fmtCount(T.threads)} thread${T.threads === 1 ? '' : 's'}, ` +
        `${D.snapshots.length} snapshot${D.snapshots.length === 1 ? '' : 's'}`));
  }

  /* ---- timeline ---- */

  const TL = D.timeline;
  const tlState = { sel: null, anchor: null, cursor: null, drag: null };
  const tlEnd = Math.max(D.process.duration_ns, TL.t.length ? TL.t[TL.t.length - 1] : 0, 1);
  let tlGeom = null;

  function drawTimeline() {
    const svg = $('tl-svg');
    const W = Math.max(320, svg.getBoundingClientRect().width || 900);
    const H = 240;
    const L = 70; const R = 18; const T = 30; const B = 26;
    const maxV = Math.max(1, D.totals.peak_bytes, ...TL.live.slice(0, 1)) * 1.08;
    const x = (t) => L + ((W - L - R) * t) / tlEnd;
    const y = (v) => H - B - ((H - T - B) * v) / maxV;
    tlGeom = { W, H, L, R, T, B, x, y, t: (px) => Math.min(tlEnd, Math.max(0, ((px - L) * tlEnd) / (W - L - R))) };
    svg.setAttribute('viewBox', `0 0 ${W} ${H}`);
    svg.replaceChildren();
    for (let i = 0; i <= 4; i++) {
      const v = (maxV / 1.08) * (i / 4);
      svg.append(sv('line', { class: 'grid', x1: L, x2: W - R, y1: y(v), y2: y(v) }));
      svg.append(sv('text', { x: L - 6, y: y(v) + 4, 'text-anchor': 'end' }, fmtBytes(Math.round(v))));
    }
    for (let i = 0; i <= 5; i++) {
      const t = (tlEnd * i) / 5;
      svg.append(sv('text', { x: x(t), y: H - 8, 'text-anchor': i === 0 ? 'start' : i === 5 ? 'end' : 'middle' }, fmtTime(Math.round(t))));
    }
    let d = `M${x(0)},${y(0)}`;
    let prev = 0;
    for (let i = 0; i < TL.t.length; i++) {
      d += `L${x(TL.t[i]).toFixed(1)},${y(prev).toFixed(1)}L${x(TL.t[i]).toFixed(1)},${y(TL.live[i]).toFixed(1)}`;
      prev = TL.live[i];
    }
    d += `L${x(tlEnd)},${y(prev)}L${x(tlEnd)},${y(0)}Z`;
    svg.append(sv('path', { class: 'area', d }));
    let lastLabel = -1e9;
    D.snapshots.forEach((s) => {
      const g = sv('g', { class: 'snap-mark' });
      const sx = x(s.t);
      g.append(sv('line', { x1: sx, x2: sx, y1: T - 4, y2: H - B }));
      g.append(sv('title', {}, `snapshot "${s.label}" at ${fmtTime(s.t)}: ${fmtBytes(s.live)} live in ${fmtCount(s.blocks)} blocks`));
      if (sx - lastLabel > 70) {
        g.append(sv('text', { x: sx + 3, y: T - 8 }, s.label || '(snapshot)'));
        lastLabel = sx;
      }
      svg.append(g);
    });
    if (TL.peak !== null) {
      const px = x(TL.t[TL.peak]); const py = y(TL.live[TL.peak]);
      const g = sv('g', { class: 'peak-mark' });
      g.append(sv('circle', { cx: px, cy: py, r: 4.5 }));
      g.append(sv('text', { x: px + (px > W - 160 ? -8 : 8), y: Math.max(T + 10, py - 6), 'text-anchor': px > W - 160 ? 'end' : 'start' },
        `peak ${fmtBytes(TL.live[TL.peak])}`));
      g.append(sv('title', {}, `peak: ${fmtCount(TL.live[TL.peak])} B in ${fmtCount(TL.blocks[TL.peak])} blocks at ${fmtTime(TL.t[TL.peak])}`));
      svg.append(g);
    }
    if (tlState.sel) {
      const [a, b] = tlState.sel;
      svg.append(sv('rect', { class: 'selection', x: x(a), y: T - 4, width: Math.max(1, x(b) - x(a)), height: H - B - T + 4 }));
    }
    if (tlState.cursor !== null) {
      svg.append(sv('line', { class: 'cursor', x1: x(tlState.cursor), x2: x(tlState.cursor), y1: T - 4, y2: H - B }));
    }
  }

  /* The last point at or before time t: the live heap at t. */
  function pointAt(t) {
    let lo = 0; let hi = TL.t.length - 1; let ans = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (TL.t[mid] <= t) { ans = mid; lo = mid + 1; } else hi = mid - 1;
    }
    return ans;
  }
  function describeAt(t) {
    const i = pointAt(t);
    return i < 0 ? `${fmtTime(Math.round(t))}: nothing live yet`
      : `${fmtTime(Math.round(t))}: ${fmtBytes(TL.live[i])} live in ${fmtCount(TL.blocks[i])} blocks`;
  }

  function svgX(ev) {
    const r = $('tl-svg').getBoundingClientRect();
    return ((ev.clientX - r.left) * tlGeom.W) / r.width;
  }

  function setSelection(a, b) {
    tlState.sel = a === null ? null : [Math.min(a, b), Math.max(a, b)];
    drawTimeline();
    showRange();
  }

  function initTimeline() {
    const svg = $('tl-svg');
    svg.addEventListener('pointerdown', (ev) => {
      const t = tlGeom.t(svgX(ev));
      tlState.drag = { start: t, px: ev.clientX };
      svg.setPointerCapture(ev.pointerId);
    });
    svg.addEventListener('pointermove', (ev) => {
      const t = tlGeom.t(svgX(ev));
      if (tlState.drag && Math.abs(ev.clientX - tlState.drag.px) > 3) {
        tlState.sel = [Math.min(tlState.drag.start, t), Math.max(tlState.drag.start, t)];
        drawTimeline();
      }
      showTip(ev, [describeAt(t)]);
    });
    svg.addEventListener('pointerup', (ev) => {
      if (!tlState.drag) return;
      const moved = Math.abs(ev.clientX - tlState.drag.px) > 3;
      const t = tlGeom.t(svgX(ev));
      tlState.drag = null;
      if (moved) setSelection(Math.min(t, tlState.sel ? tlState.sel[0] : t), Math.max(t, tlState.sel ? tlState.sel[1] : t));
      else { tlState.cursor = t; tlState.anchor = t; drawTimeline(); $('tl-status').textContent = describeAt(t); }
    });
    svg.addEventListener('pointerleave', hideTip);
    svg.addEventListener('keydown', (ev) => {
      const step = tlEnd / 100;
      let c = tlState.cursor === null ? 0 : tlState.cursor;
      if (ev.key === 'ArrowLeft' || ev.key === 'ArrowRight') c += (ev.key === 'ArrowLeft' ? -1 : 1) * step * (ev.altKey ? 0.1 : 1);
      else if (ev.key === 'Home') c = 0;
      else if (ev.key === 'End') c = tlEnd;
      else if (ev.key === 'Escape') { tlState.cursor = null; setSelection(null); $('tl-status').textContent = 'Selection cleared'; ev.preventDefault(); return; } else return;
      ev.preventDefault();
      c = Math.min(tlEnd, Math.max(0, c));
      if (ev.shiftKey) {
        if (tlState.anchor === null) tlState.anchor = tlState.cursor === null ? 0 : tlState.cursor;
        tlState.cursor = c;
        setSelection(tlState.anchor, c);
      } else {
        tlState.anchor = c;
        tlState.cursor = c;
        drawTimeline();
      }
      $('tl-status').textContent = describeAt(c);
    });
    const presets = [['Whole run', 0, tlEnd]];
    let prevT = 0; let prevName = 'start';
    D.snapshots.forEach((s) => {
      presets.push([`${prevName} \u2192 ${s.label || 'snapshot'}`, prevT, s.t]);
      prevT = s.t; prevName = s.label || 'snapshot';
    });
    if (D.snapshots.length) presets.push([`${prevName} \u2192 end`, prevT, tlEnd]);
    if (TL.peak !== null) presets.push(['Start \u2192 peak', 0, TL.t[TL.peak]]);
    const sel = $('tl-preset');
    sel.replaceChildren(el('option', { value: '', text: 'Choose a range\u2026' }),
      ...presets.map((p, i) => el('option', { value: String(i), text: p[0] })));
    sel.addEventListener('change', () => {
      if (sel.value === '') return;
      const p = presets[Number(sel.value)];
      setSelection(p[1], p[2]);
    });
    $('tl-clear').addEventListener('click', () => { sel.value = ''; tlState.cursor = null; setSelection(null); });
  }

  /* What was allocated in the selected range and is still live at its end,
   * per site, from the range data: the range is widened to whole buckets. */
  function showRange() {
    const box = $('range-result');
    if (!tlState.sel) { box.replaceChildren(); return; }
    const R = D.range;
    const nb = R.buckets.length;
    if (!nb) { box.replaceChildren(el('p', { class: 'na', text: 'No range data in this report.' })); return; }
    const bucketOf = (t) => {
      let lo = 0; let hi = nb - 1; let ans = 0;
      while (lo <= hi) { const mid = (lo + hi) >> 1; if (R.buckets[mid] <= t) { ans = mid; lo = mid + 1; } else hi = mid - 1; }
      return ans;
    };
    const b0 = bucketOf(tlState.sel[0]);
    const b1 = bucketOf(tlState.sel[1]);
    const from = R.buckets[b0];
    const to = b1 + 1 < nb ? R.buckets[b1 + 1] : Math.max(R.end, tlEnd);
    const per = new Map();
    let bytes = 0; let blocks = 0;
    for (const [site, a, f, by, bl] of R.entries) {
      if (a < b0 || a > b1 || f <= b1) continue;
      const cur = per.get(site) || { bytes: 0, blocks: 0 };
      cur.bytes += by; cur.blocks += bl;
      per.set(site, cur);
      bytes += by; blocks += bl;
    }
    const rows = [...per.entries()].sort((p, q) => q[1].bytes - p[1].bytes);
    const head = el('p', {}, el('strong', { text: `${fmtBytes(bytes)} in ${fmtCount(blocks)} blocks` }),
      ` allocated between ${fmtTime(from)} and ${fmtTime(to)} and still live at ${fmtTime(to)}`,
      rows.length ? `, from ${rows.length} site${rows.length === 1 ? '' : 's'}:` : '.');
    const table = el('table', { 'aria-label': 'Allocated in the selected range and still live at its end' });
    table.append(el('thead', {}, el('tr', {}, el('th', { text: 'Function' }), el('th', { text: 'Location' }),
      el('th', { class: 'num', text: 'Live bytes' }), el('th', { class: 'num', text: 'Blocks' }))));
    const tb = el('tbody');
    rows.slice(0, 25).forEach(([site, v]) => {
      const s = D.sites[site];
      tb.append(el('tr', {}, el('td', { text: s.fn }), el('td', { class: 'loc', text: where(s.file, s.line) }),
        el('td', { class: 'num', text: fmtBytes(v.bytes), title: `${fmtCount(v.bytes)} B` }), el('td', { class: 'num', text: fmtCount(v.blocks) })));
    });
    table.append(tb);
    box.replaceChildren(head, ...(rows.length ? [el('div', { class: 'table-wrap' }, table)] : []));
    $('tl-status').textContent = `Selected ${fmtTime(Math.round(tlState.sel[0]))} to ${fmtTime(Math.round(tlState.sel[1]))}: ` +
      `${fmtBytes(bytes)} allocated in it still live at its end`;
  }

  /* ---- flame graph ---- */

  const N = D.flame.nodes; /* [parent, name, file, line, peak, leaked, allocations, temporary] */
  const kids = N.map(() => []);
  for (let i = 1; i < N.length; i++) kids[N[i][0]].push(i);
  const fl = { metric: 0, zoom: 0, orient: 'icicle', search: '', selected: 0, drawn: [] };
  const ROW = 22;
  const val = (i) => N[i][4 + fl.metric];

  function hue(name) {
    let h = 0;
    for (let i = 0; i < name.length; i++) h = (h * 31 + name.charCodeAt(i)) >>> 0;
    return h;
  }
  function frameColor(i) {
    const h = hue(N[i][1]);
    if (fl.metric === 1) return `hsl(${(h % 30) + 0}, 70%, ${64 + (h % 12)}%)`;
    if (fl.metric >= 2) return `hsl(${(h % 40) + 190}, 55%, ${70 + (h % 10)}%)`;
    return `hsl(${(h % 45) + 15}, 80%, ${62 + (h % 12)}%)`;
  }
  const matches = (i) => fl.search && (N[i][1].toLowerCase().includes(fl.search) || (N[i][2] || '').toLowerCase().includes(fl.search));

  function drawFlame() {
    const box = $('flame');
    const W = Math.max(320, box.getBoundingClientRect().width || 900);
    const frag = document.createDocumentFragment();
    const total = val(fl.zoom);
    fl.drawn = [];
    const ancestors = [];
    for (let a = N[fl.zoom][0]; a !== -1 && a !== undefined; a = N[a][0]) ancestors.unshift(a);
    let maxDepth = ancestors.length;
    const place = [];
    ancestors.forEach((a, d) => place.push([a, 0, 1, d, true]));
    let hidden = 0;
    const layout = (i, x, w, d) => {
      if (w * W < 0.8) { hidden++; return; }
      place.push([i, x, w, d, false]);
      if (d > maxDepth) maxDepth = d;
      const vi = val(i);
      if (!vi) return;
      const ks = kids[i].filter((k) => val(k) > 0).sort((p, q) => val(q) - val(p) || (N[p][1] < N[q][1] ? -1 : 1));
      let cx = x;
      for (const k of ks) { const cw = (w * val(k)) / vi; layout(k, cx, cw, d + 1); cx += cw; }
    };
    if (total > 0) layout(fl.zoom, 0, 1, ancestors.length);
    for (const [i, x, w, d, anc] of place) {
      const top = fl.orient === 'icicle' ? d * ROW : (maxDepth - d) * ROW;
      const div = el('div', { class: 'frame', 'data-id': String(i), id: `frame-${i}` });
      div.style.left = `${(x * 100).toFixed(4)}%`;
      div.style.width = `${(w * 100).toFixed(4)}%`;
      div.style.top = `${top}px`;
      if (anc) div.classList.add('ancestor');
      else div.style.background = frameColor(i);
      if (i === fl.zoom) div.classList.add('zoom-root');
      if (matches(i)) div.classList.add('match');
      if (i === fl.selected) div.classList.add('selected');
      if (w * W > 28) div.textContent = N[i][1];
      frag.append(div);
      fl.drawn.push(i);
    }
    box.replaceChildren(frag);
    box.style.height = `${(maxDepth + 1) * ROW + 2}px`;
    if (total === 0) box.replaceChildren(el('p', { class: 'na', text: `  Nothing to show for ${METRICS[fl.metric].label.toLowerCase()}.` }));
    const m = METRICS[fl.metric];
    let status = `${m.label}: ${exactMetric(fl.metric, val(0))} in total`;
    if (fl.zoom) status += `; zoomed on ${N[fl.zoom][1]} (${exactMetric(fl.metric, total)}, ${pct(total, val(0))})`;
    if (fl.search) {
      let sum = 0; let count = 0;
      const walk = (i) => { if (matches(i)) { sum += val(i); count++; return; } kids[i].forEach(walk); };
      walk(0);
      status += `; "${fl.search}" matches ${count} frame${count === 1 ? '' : 's'}: ${exactMetric(fl.metric, sum)} (${pct(sum, val(0))})`;
    }
    if (hidden) status += `; ${hidden} frame${hidden === 1 ? '' : 's'} too narrow to draw`;
    $('flame-status').textContent = status;
    box.setAttribute('aria-activedescendant', `frame-${fl.selected}`);
    describeFrame(fl.selected, $('flame-info'));
  }

  function frameLines(i) {
    const lines = [N[i][1], i ? where(N[i][2], N[i][3]) : 'every allocation of the run'];
    METRICS.forEach((m, k) => {
      const v = N[i][4 + k];
      lines.push(`${m.label}: ${exactMetric(k, v)}${m.bytes && v >= 1024 ? ` (${fmtBytes(v)})` : ''}, ${pct(v, N[0][4 + k])} of all`);
    });
    return lines;
  }
  function describeFrame(i, box) {
    box.textContent = frameLines(i).join('\n');
  }

  function zoomTo(i) {
    fl.zoom = i;
    fl.selected = i;
    drawFlame();
  }

  function initFlame() {
    const mbox = $('flame-metrics');
    METRICS.forEach((m, k) => {
      const b = el('button', { type: 'button', 'aria-pressed': k === 0 ? 'true' : 'false', text: m.short, title: m.label });
      b.addEventListener('click', () => {
        fl.metric = k;
        [...mbox.children].forEach((c, j) => c.setAttribute('aria-pressed', j === k ? 'true' : 'false'));
        if (val(fl.zoom) === 0) fl.zoom = 0;
        drawFlame();
      });
      mbox.append(b);
    });
    $('flame-orient').addEventListener('change', (e) => { fl.orient = e.target.value; drawFlame(); });
    $('flame-search').addEventListener('input', (e) => { fl.search = e.target.value.trim().toLowerCase(); drawFlame(); });
    $('flame-reset').addEventListener('click', () => zoomTo(0));
    const box = $('flame');
    const idOf = (ev) => { const f = ev.target.closest('.frame'); return f ? Number(f.dataset.id) : null; };
    box.addEventListener('click', (ev) => { const i = idOf(ev); if (i !== null) zoomTo(i); });
    box.addEventListener('mousemove', (ev) => {
      const i = idOf(ev);
      if (i === null) { hideTip(); return; }
      showTip(ev, frameLines(i).concat(i === fl.zoom ? [] : ['Click to zoom']));
    });
    box.addEventListener('mouseleave', hideTip);
    box.addEventListener('keydown', (ev) => {
      const s = fl.selected;
      const visible = (i) => fl.drawn.includes(i);
      const sibs = N[s][0] >= 0 ? kids[N[s][0]].filter(visible) : [s];
      const down = fl.orient === 'icicle' ? 'ArrowDown' : 'ArrowUp';
      const up = fl.orient === 'icicle' ? 'ArrowUp' : 'ArrowDown';
      let next = null;
      if (ev.key === down) next = kids[s].filter(visible).sort((p, q) => val(q) - val(p))[0];
      else if (ev.key === up) next = N[s][0] >= 0 ? N[s][0] : null;
      else if (ev.key === 'ArrowLeft' || ev.key === 'ArrowRight') {
        const order = [...sibs].sort((p, q) => Number($(`frame-${p}`).style.left.slice(0, -1)) - Number($(`frame-${q}`).style.left.slice(0, -1)));
        next = order[order.indexOf(s) + (ev.key === 'ArrowLeft' ? -1 : 1)];
      } else if (ev.key === 'Enter' || ev.key === ' ') { zoomTo(s); ev.preventDefault(); return; } else if (ev.key === 'Escape') {
        zoomTo(fl.zoom ? Math.max(0, N[fl.zoom][0]) : 0); ev.preventDefault(); return;
      } else return;
      ev.preventDefault();
      if (next === undefined || next === null || !visible(next)) return;
      fl.selected = next;
      drawFlame();
    });
    const note = $('flame-note');
    const F = D.flame;
    note.textContent = F.nodes_shown < F.nodes_total
      ? `The call tree has ${fmtCount(F.nodes_total)} frames; the ${fmtCount(F.nodes_total - F.nodes_shown)} under ` +
        `${(F.threshold * 100).toFixed(2)}% of every metric are left out of this page (their share stays in their callers).`
      : `All ${fmtCount(F.nodes_total)} frames of the call tree are in this page.`;
  }

  /* ---- tables ---- */

  const siteCols = [
    { key: 'fn', label: 'Function' }, { key: 'loc', label: 'Location' },
    { key: 'peak', label: 'Peak', num: true, bytes: true }, { key: 'leaked', label: 'Leaked', num: true, bytes: true },
    { key: 'allocations', label: 'Allocations', num: true }, { key: 'bytes', label: 'Bytes allocated', num: true, bytes: true },
    { key: 'temporary', label: 'Temporary', num: true },
  ];
  const sitesState = { key: 'peak', dir: -1, all: false };
  const PAGE = 25;

  function fnCell(s) {
    const det = el('details', {}, el('summary', {}, el('span', { class: 'fn-name', text: s.fn })),
      el('pre', { text: s.stack.join('\n') }));
    return el('td', {}, det);
  }
  function numCell(v, bytes) {
    return el('td', { class: 'num', title: bytes ? `${fmtCount(v)} B` : null, text: bytes ? fmtBytes(v) : fmtCount(v) });
  }

  function drawSites() {
    const t = $('sites-table');
    const hr = el('tr');
    siteCols.forEach((c) => {
      const th = el('th', { class: c.num ? 'num' : null, scope: 'col' });
      if (sitesState.key === c.key) th.setAttribute('aria-sort', sitesState.dir < 0 ? 'descending' : 'ascending');
      const b = el('button', { type: 'button', text: c.label });
      b.addEventListener('click', () => {
        if (sitesState.key === c.key) sitesState.dir = -sitesState.dir;
        else { sitesState.key = c.key; sitesState.dir = c.num ? -1 : 1; }
        drawSites();
        t.querySelector(`th[aria-sort] button`).focus();
      });
      th.append(b);
      hr.append(th);
    });
    const keyOf = (s) => (sitesState.key === 'loc' ? where(s.file, s.line) : s[sitesState.key]);
    const rows = D.sites.map((s, i) => i).sort((p, q) => {
      const a = keyOf(D.sites[p]); const b = keyOf(D.sites[q]);
      if (a !== b) return (a < b ? -1 : 1) * sitesState.dir;
      return p - q;
    });
    const shown = sitesState.all ? rows : rows.slice(0, PAGE);
    const tb = el('tbody');
    shown.forEach((i) => {
      const s = D.sites[i];
      tb.append(el('tr', {}, fnCell(s), el('td', { class: 'loc', text: where(s.file, s.line) }),
        numCell(s.peak, true), numCell(s.leaked, true), numCell(s.allocations, false), numCell(s.bytes, true), numCell(s.temporary, false)));
    });
    t.replaceChildren(el('caption', { class: 'note', text: 'Sites are distinct call stacks, named by their first frame outside the allocation wrappers. Click a column to sort; open a function to see its stack.' }),
      el('thead', {}, hr), tb);
    const more = $('sites-more');
    more.hidden = rows.length <= PAGE;
    more.textContent = sitesState.all ? `Show the top ${PAGE}` : `Show all ${rows.length} sites`;
    $('sites-note').textContent = D.sites.length < D.sites_total
      ? `This page lists the top sites of each metric: ${fmtCount(D.sites.length)} of ${fmtCount(D.sites_total)}.` : '';
  }

  /* A site's live bytes at the end of each range bucket. */
  function siteSeries(site) {
    const nb = D.range.buckets.length;
    const diff = new Array(nb + 1).fill(0);
    for (const [s, a, f, by] of D.range.entries) {
      if (s !== site) continue;
      diff[a] += by;
      if (f < nb) diff[f] -= by;
    }
    const out = [];
    let v = 0;
    for (let k = 0; k < nb; k++) { v += diff[k]; out.push(v); }
    return out;
  }
  function sparkline(series, label) {
    const w = 140; const h = 26;
    const svg = sv('svg', { class: 'spark', viewBox: `0 0 ${w} ${h}`, role: 'img', 'aria-label': label });
    const max = Math.max(1, ...series);
    const pts = series.map((v, k) => `${((k * (w - 2)) / Math.max(1, series.length - 1) + 1).toFixed(1)},${(h - 2 - ((h - 4) * v) / max).toFixed(1)}`);
    svg.append(sv('line', { class: 'base', x1: 1, x2: w - 1, y1: h - 2, y2: h - 2 }));
    svg.append(sv('polyline', { points: pts.join(' ') }));
    svg.append(sv('title', {}, label));
    return svg;
  }

  function drawLeaks() {
    const t = $('leaks-table');
    const leaks = D.sites.map((s, i) => i).filter((i) => D.sites[i].leaked > 0).sort((p, q) => D.sites[q].leaked - D.sites[p].leaked);
    $('leaks-note').textContent = leaks.length
      ? 'Sites with blocks still live when the program ends (the default libc and ld.so suppressions applied). ' +
        'The sparkline is the site\u2019s live heap over the run: a line that only climbs is a leak; one that levels off may be a cache.'
      : 'No leak candidates: every block the program allocated was freed (or suppressed).';
    if (!leaks.length) { t.replaceChildren(); return; }
    const tb = el('tbody');
    leaks.forEach((i) => {
      const s = D.sites[i];
      const series = siteSeries(i);
      const label = `${s.fn}: live bytes over the run, from ${fmtBytes(series[0] || 0)} to ${fmtBytes(series[series.length - 1] || 0)}`;
      tb.append(el('tr', {}, fnCell(s), el('td', { class: 'loc', text: where(s.file, s.line) }),
        numCell(s.leaked, true), numCell(s.leaked_blocks, false), el('td', {}, series.length ? sparkline(series, label) : el('span', { class: 'na', text: 'n/a' }))));
    });
    t.replaceChildren(el('thead', {}, el('tr', {}, el('th', { scope: 'col', text: 'Function' }), el('th', { scope: 'col', text: 'Location' }),
      el('th', { scope: 'col', class: 'num', text: 'Leaked' }), el('th', { scope: 'col', class: 'num', text: 'Blocks' }),
      el('th', { scope: 'col', text: 'Live over time' }))), tb);
  }

  /* The classifier's leak candidates (snapshots.h): sites whose live heap
   * grows from snapshot to snapshot, with that series as a sparkline. */
  function drawCandidates() {
    const t = $('candidates-table');
    const L = D.leaks;
    const note = $('candidates-note');
    if (!L) { note.textContent = 'Leak candidates are not available for this trace.'; t.replaceChildren(); return; }
    if (L.points < 3) {
      note.textContent = `Leak candidates need at least three snapshots (this run has ${L.snapshots}): ` +
        'mark batches with memtrack_snapshot() or MEMTRACK_SNAPSHOT_SIGNAL / MEMTRACK_SNAPSHOT_INTERVAL_MS. ' +
        'What is still live at exit is listed below.';
      t.replaceChildren();
      return;
    }
    note.textContent = L.candidates.length
      ? `Sites whose live heap grows across the ${L.points} snapshots analyzed (of ${L.snapshots}) and never gives it back. ` +
        'The sparkline is the site\u2019s live bytes at each snapshot.'
      : `No site grows across the ${L.points} snapshots analyzed: no leak candidate.`;
    if (!L.candidates.length) { t.replaceChildren(); return; }
    const tb = el('tbody');
    L.candidates.forEach((c) => {
      const first = c.series[0] || 0; const last = c.series[c.series.length - 1] || 0;
      const label = `${c.fn}: live bytes at ${c.series.length} snapshots, from ${fmtBytes(first)} to ${fmtBytes(last)}`;
      tb.append(el('tr', {}, fnCell(c), el('td', { class: 'loc', text: where(c.file, c.line) }),
        el('td', { text: c.shape, title: c.shape_text }),
        el('td', { class: 'num', title: `${fmtCount(c.growth_bytes)} B`, text: `+${fmtBytes(c.growth_bytes)}` }),
        el('td', { class: 'num', text: `${c.intervals_grown} of ${c.intervals}` }),
        el('td', { class: 'num', text: c.confidence.toFixed(2) }),
        el('td', {}, sparkline(c.series, label))));
    });
    t.replaceChildren(el('thead', {}, el('tr', {}, el('th', { scope: 'col', text: 'Function' }), el('th', { scope: 'col', text: 'Location' }),
      el('th', { scope: 'col', text: 'Shape' }), el('th', { scope: 'col', class: 'num', text: 'Growth' }),
      el('th', { scope: 'col', class: 'num', text: 'Intervals grown' }), el('th', { scope: 'col', class: 'num', text: 'Confidence' }),
      el('th', { scope: 'col', text: 'Live at each snapshot' }))), tb);
  }

  function drawBudgets() {
    const box = $('budgets');
    const B = D.budgets;
    if (!B) {
      box.replaceChildren(el('p', { class: 'na', text: 'No budget file was given: memtrack html --budget FILE TRACE adds the results of memtrack check (docs/ci.md) here.' }));
      return;
    }
    const fmtV = (r, v) => (r.is_size ? `${fmtBytes(v)}` : fmtCount(v));
    const tb = el('tbody');
    B.results.forEach((r) => {
      const top = r.sites.map((s) => `${s.fn} (${where(s.file, s.line)}): ${fmtV(r, s.value)}`).join('\n');
      tb.append(el('tr', {}, el('td', { text: r.name }), el('td', { text: r.scope }), el('td', { class: 'mono', text: r.metric }),
        el('td', { class: 'num', title: fmtCount(r.limit), text: fmtV(r, r.limit) }),
        el('td', { class: 'num', title: fmtCount(r.measured), text: fmtV(r, r.measured) }),
        el('td', { class: r.passed ? 'ok budget-result' : 'fail budget-result', text: r.passed ? 'PASS' : 'FAIL' }),
        el('td', {}, r.sites.length ? el('details', {}, el('summary', { text: r.sites[0].fn }), el('pre', { text: top })) : '')));
    });
    box.replaceChildren(el('p', { class: B.all_passed ? 'ok' : 'fail', text: B.all_passed
      ? `Every budget of ${B.file} holds.` : `Some budgets of ${B.file} are exceeded.` }),
    el('div', { class: 'table-wrap' }, el('table', { id: 'budgets-table' }, el('thead', {}, el('tr', {}, el('th', { scope: 'col', text: 'Budget' }),
      el('th', { scope: 'col', text: 'Scope' }), el('th', { scope: 'col', text: 'Metric' }), el('th', { scope: 'col', class: 'num', text: 'Limit' }),
      el('th', { scope: 'col', class: 'num', text: 'Measured' }), el('th', { scope: 'col', text: 'Result' }),
      el('th', { scope: 'col', text: 'Top sites' }))), tb)));
  }

  function drawFooter() {
    const parts = [`memtrack ${D.memtrack_version}.`,
      `Timeline: ${fmtCount(TL.t.length)} points` + (TL.downsampled
        ? ' (the run was downsampled: each span keeps its lowest and highest point; the peak and every snapshot are exact).'
        : ' (one per event).')];
    $('footer').textContent = parts.join(' ');
  }

  /* ---- self-test ---- */

  function selfTest() {
    const r = {};
    const svg = $('tl-svg');
    r.timeline_areas = svg.querySelectorAll('path.area').length;
    r.timeline_points = TL.t.length;
    r.timeline_snapshot_marks = svg.querySelectorAll('.snap-mark').length;
    r.timeline_snapshot_labels = [...svg.querySelectorAll('.snap-mark text')].map((e) => e.textContent);
    r.timeline_peak_marks = svg.querySelectorAll('.peak-mark').length;
    r.flame_frames = $('flame').querySelectorAll('.frame').length;
    const frames = [...$('flame').querySelectorAll('.frame')];
    const target = frames.find((f) => N[Number(f.dataset.id)][1] === 'main') || frames[1] || frames[0];
    r.clicked = target ? N[Number(target.dataset.id)][1] : null;
    if (target) target.dispatchEvent(new MouseEvent('click', { bubbles: true, cancelable: true, view: window }));
    const zr = $('flame').querySelector('.frame.zoom-root');
    r.zoom_root = zr ? zr.textContent || N[Number(zr.dataset.id)][1] : null;
    r.zoom_root_width = zr ? zr.style.width : null;
    r.zoom_ancestors = $('flame').querySelectorAll('.frame.ancestor').length;
    $('flame-search').value = 'main';
    $('flame-search').dispatchEvent(new Event('input'));
    r.search_matches = $('flame').querySelectorAll('.frame.match').length;
    $('flame-metrics').children[1].click();
    r.leaked_frames = $('flame').querySelectorAll('.frame').length;
    r.site_rows = $('sites-table').querySelectorAll('tbody tr').length;
    r.leak_functions = [...$('leaks-table').querySelectorAll('tbody .fn-name')].map((e) => e.textContent);
    r.candidate_functions = [...$('candidates-table').querySelectorAll('tbody .fn-name')].map((e) => e.textContent);
    r.candidate_sparklines = $('candidates-table').querySelectorAll('svg.spark polyline').length;
    r.sparklines = $('leaks-table').querySelectorAll('svg.spark polyline').length;
    const preset = $('tl-preset');
    if (preset.options.length > 1) { preset.value = '1'; preset.dispatchEvent(new Event('change')); }
    r.range_text = $('range-result').textContent.slice(0, 200);
    r.budget_results = [...document.querySelectorAll('#budgets-table tbody tr')].map((tr) =>
      `${tr.cells[0].textContent} ${tr.cells[2].textContent} ${tr.querySelector('.budget-result').textContent}`);
    r.resources = performance.getEntriesByType('resource').map((e) => e.name);
    r.errors = errors;
    document.body.append(el('pre', { id: 'mt-selftest', text: JSON.stringify(r) }));
  }

  /* ---- start ---- */

  drawHeader();
  initTimeline();
  drawTimeline();
  initFlame();
  drawFlame();
  drawSites();
  $('sites-more').addEventListener('click', () => { sitesState.all = !sitesState.all; drawSites(); });
  drawCandidates();
  drawLeaks();
  drawBudgets();
  drawFooter();
  let resizeTimer = 0;
  window.addEventListener('resize', () => {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(() => { drawTimeline(); drawFlame(); }, 100);
  });
  if (selftest) selfTest();
}());
