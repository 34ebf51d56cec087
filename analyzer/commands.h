/* commands.h - the table of memtrack subcommands, one X-macro entry each.
 *
 * Adding a subcommand: write analyzer/cmd_<name>.c exporting
 * int mt_cmd_<name>(int argc, char **argv) and add one line here.
 */
#ifndef MT_ANALYZER_COMMANDS_H
#define MT_ANALYZER_COMMANDS_H

#define MT_VERSION "0.1.0"

#define MT_COMMAND_MAP(X)                                                   \
    X(run, "run a program under memtrack and print its trace path(s)")     \
    X(report, "where memory goes: totals and top sites, text or JSON")      \
    X(dump, "print a trace's raw records, for debugging the format")       \
    X(diff, "per-site growth between two snapshots or two runs")           \
    X(leaks, "live at exit, and sites that grow from snapshot to snapshot") \
    X(check, "check traces against memory budgets; exit 1 when one is exceeded") \
    X(html, "one self-contained HTML page: timeline, flame graph, tables")  \
    X(flamegraph, "folded stacks for flamegraph.pl, inferno, speedscope")   \
    X(massif, "the heap over time in valgrind massif's format (ms_print)") \
    X(timeline, "the live heap over time as CSV")

#define MT_COMMAND_DECLARE(name, summary) int mt_cmd_##name(int argc, char **argv);
MT_COMMAND_MAP(MT_COMMAND_DECLARE)
#undef MT_COMMAND_DECLARE

#endif /* MT_ANALYZER_COMMANDS_H */
