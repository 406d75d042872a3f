/* errs.h -- a list of error lines collected while checking a config. */
#ifndef RI_ERRS_H
#define RI_ERRS_H

#include <stddef.h>
#include "ri_plugin.h"

struct ri_errs {
    char **lines;
    size_t n, cap;
};

void ri_errs_add(struct ri_errs *e, const char *file, int line, const char *fmt, ...)
    RI_PRINTF(4, 5);
void ri_errs_print(const struct ri_errs *e); /* to stderr, one per line */
void ri_errs_free(struct ri_errs *e);

#endif
