/* cfgu.h -- helpers for tests that write config files and load them. */
#ifndef RI_CFGU_H
#define RI_CFGU_H

#include <stddef.h>

#include "errs.h"

/* Writes text to <tmpdir>/name (creating sub-folders), replacing "@TP@"
 * with <build>/test-plugins and "@P@" with <build>/plugins. 0 ok. */
int u_write_cfg(char *path, size_t cap, const char *name, const char *text);

/* 1-based number of the first line of text containing mark, 0 if none. */
int u_marked_line(const char *text, const char *mark);

/* All error lines joined with " | " (for failure messages; static buffer). */
const char *u_errs_str(const struct ri_errs *e);

/* Some error reads "<path>:<lno>: ...word..."; otherwise reports at file:line. */
int u_has_err(const char *file, int line, const struct ri_errs *e, const char *path, int lno,
              const char *word);

#endif
