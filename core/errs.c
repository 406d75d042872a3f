/* errs.c -- collected error lines ("FILE:LINE: message"). */
#include "errs.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void ri_errs_add(struct ri_errs *e, const char *file, int line, const char *fmt, ...)
{
    char msg[768], full[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (line > 0)
        snprintf(full, sizeof full, "%s:%d: %s", file, line, msg);
    else
        snprintf(full, sizeof full, "%s: %s", file, msg);
    if (e->n == e->cap) {
        size_t cap = e->cap ? e->cap * 2 : 8;
        char **l = realloc(e->lines, cap * sizeof *l);
        if (!l)
            return;
        e->lines = l, e->cap = cap;
    }
    char *s = malloc(strlen(full) + 1);
    if (!s)
        return;
    strcpy(s, full);
    e->lines[e->n++] = s;
}

void ri_errs_print(const struct ri_errs *e)
{
    for (size_t i = 0; i < e->n; i++)
        fprintf(stderr, "%s\n", e->lines[i]);
}

void ri_errs_free(struct ri_errs *e)
{
    for (size_t i = 0; i < e->n; i++)
        free(e->lines[i]);
    free(e->lines);
    e->lines = NULL, e->n = e->cap = 0;
}
