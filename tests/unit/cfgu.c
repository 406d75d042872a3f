/* cfgu.c -- see cfgu.h */
#include "cfgu.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "t.h"

static void append(char *out, size_t cap, size_t *len, const char *s, size_t n)
{
    if (*len + n >= cap)
        n = cap - 1 - *len;
    memcpy(out + *len, s, n);
    *len += n;
    out[*len] = '\0';
}

int u_write_cfg(char *path, size_t cap, const char *name, const char *text)
{
    char tp[4096], pl[4096];
    snprintf(tp, sizeof tp, "%s/test-plugins", t_build_dir());
    snprintf(pl, sizeof pl, "%s/plugins", t_build_dir());
    size_t tlen = strlen(text) + 1, big = tlen + 64 * 1024, len = 0;
    char *out = malloc(big);
    if (!out)
        return -1;
    out[0] = '\0';
    for (const char *p = text; *p;) {
        if (!strncmp(p, "@TP@", 4))
            append(out, big, &len, tp, strlen(tp)), p += 4;
        else if (!strncmp(p, "@P@", 3))
            append(out, big, &len, pl, strlen(pl)), p += 3;
        else
            append(out, big, &len, p, 1), p++;
    }
    t_path(path, cap, name);
    /* sub-folders of the test's folder */
    for (char *s = strchr(path + strlen(t_tmpdir()) + 1, '/'); s; s = strchr(s + 1, '/')) {
        *s = '\0';
        mkdir(path, 0700);
        *s = '/';
    }
    int rc = t_write_file(path, out);
    free(out);
    return rc;
}

int u_marked_line(const char *text, const char *mark)
{
    const char *hit = strstr(text, mark);
    if (!hit)
        return 0;
    int line = 1;
    for (const char *p = text; p < hit; p++)
        line += *p == '\n';
    return line;
}

const char *u_errs_str(const struct ri_errs *e)
{
    static char buf[4096];
    size_t len = 0;
    buf[0] = '\0';
    if (!e->n)
        return "(no errors)";
    for (size_t i = 0; i < e->n; i++) {
        if (i)
            append(buf, sizeof buf, &len, " | ", 3);
        append(buf, sizeof buf, &len, e->lines[i], strlen(e->lines[i]));
    }
    return buf;
}

int u_has_err(const char *file, int line, const struct ri_errs *e, const char *path, int lno,
              const char *word)
{
    char want[4200];
    snprintf(want, sizeof want, "%s:%d: ", path, lno);
    for (size_t i = 0; i < e->n; i++)
        if (!strncmp(e->lines[i], want, strlen(want)) && strstr(e->lines[i], word))
            return 0;
    t_fail_at(file, line, "no error \"%s...%s...\" in: %s", want, word, u_errs_str(e));
    return -1;
}
