/* html_assets.h - the HTML report's template, script and style sheet, built into memtrack.
 *
 * html_assets.c includes the files under analyzer/html/ with the
 * assembler's .incbin, each followed by a NUL byte, so they are ordinary C
 * strings here. The Makefile makes html_assets.o depend on those files.
 */
#ifndef MT_ANALYZER_HTML_ASSETS_H
#define MT_ANALYZER_HTML_ASSETS_H

extern const char mt__html_template[]; /* analyzer/html/report.html */
extern const char mt__html_css[];      /* analyzer/html/report.css */
extern const char mt__html_js[];       /* analyzer/html/report.js */

#endif /* MT_ANALYZER_HTML_ASSETS_H */
