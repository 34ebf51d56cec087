/* html_assets.c - builds analyzer/html/report.{html,css,js} into memtrack as NUL-terminated strings.
 *
 * The paths are relative to the top of the source tree, where make runs.
 * make cannot see .incbin, so the Makefile lists the files as explicit
 * dependencies of this object: editing the page rebuilds memtrack.
 */
#include "html_assets.h"

#define MT_ASSET(symbol, path)                                   \
    ".section .rodata\n"                                         \
    ".global " symbol "\n"                                       \
    ".type " symbol ", @object\n"                                \
    ".balign 16\n" symbol ":\n"                                  \
    ".incbin \"" path "\"\n"                                     \
    ".byte 0\n"                                                  \
    ".size " symbol ", . - " symbol "\n"                         \
    ".previous\n"

__asm__(MT_ASSET("mt__html_template", "analyzer/html/report.html")
        MT_ASSET("mt__html_css", "analyzer/html/report.css")
        MT_ASSET("mt__html_js", "analyzer/html/report.js"));
