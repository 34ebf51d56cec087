/* main.c - the memtrack command: dispatches to one subcommand per file.
 *
 * Each subcommand lives in analyzer/cmd_<name>.c and exports
 * int mt_cmd_<name>(int argc, char **argv), called with argv[0] = name.
 * Exit statuses: 0 success, 1 a check failed, 2 bad usage or bad input.
 */
#include <stdio.h>
#include <string.h>

#include "internal.h"
#include "commands.h"

typedef struct command {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *summary;
} command_t;

static const command_t commands[] = {
#define MT_COMMAND_ENTRY(name, summary) {#name, mt_cmd_##name, summary},
    MT_COMMAND_MAP(MT_COMMAND_ENTRY)
#undef MT_COMMAND_ENTRY
};

static void usage(FILE *f)
{
    fprintf(f, "usage: memtrack COMMAND [OPTIONS] [ARGS]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].summary);
    fprintf(f, "\n'memtrack COMMAND --help' describes a command.\n"
               "Record without the run command: LD_PRELOAD=/path/to/libmemtrack.so PROGRAM\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return MT_EXIT_BAD_INPUT;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return MT_EXIT_OK;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("memtrack %s (trace format %u)\n", MT_VERSION, MT_TRACE_VERSION);
        return MT_EXIT_OK;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(argv[1], commands[i].name))
            return commands[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "memtrack: unknown command '%s'; 'memtrack --help' lists the commands\n", argv[1]);
    return MT_EXIT_BAD_INPUT;
}
