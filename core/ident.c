/* ident.c -- edge id and secret rules (ident.h). */
#include "ident.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

int ri_check_edge_id_n(const char *id, size_t n, char *err, size_t errlen)
{
    if (n < RI_EDGE_ID_MIN_LEN || n > RI_EDGE_ID_MAX_LEN)
        return snprintf(err, errlen, "edge id has %zu character%s: it must have %d-%d", n,
                        n == 1 ? "" : "s", RI_EDGE_ID_MIN_LEN, RI_EDGE_ID_MAX_LEN), -1;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)id[i];
        if (ch < 0x21 || ch > 0x7e)
            return snprintf(err, errlen, "edge id has %s at position %zu: it must be printable "
                            "ASCII without spaces", ch == ' ' ? "a space" : "a non-printable "
                            "or non-ASCII byte", i + 1), -1;
    }
    return 0;
}

int ri_check_edge_id(const char *id, char *err, size_t errlen)
{
    return ri_check_edge_id_n(id, strlen(id), err, errlen);
}

/* The placeholders conf/hub.cfg, conf/edge.cfg (its token) and earlier
 * example configs carried; compared without regard to case. */
int ri_is_placeholder_secret(const char *s)
{
    static const char *const prefixes[] = {"REPLACE-with", "REPLACE_with", "REPLACEME",
                                           "REPLACE-ME", NULL};
    static const char *const parts[] = {"change-me", "changeme", "change_me", "placeholder",
                                        NULL};
    for (const char *const *p = prefixes; *p; p++)
        if (strncasecmp(s, *p, strlen(*p)) == 0)
            return 1;
    for (const char *const *p = parts; *p; p++)
        for (const char *q = s; *q; q++)
            if (strncasecmp(q, *p, strlen(*p)) == 0)
                return 1;
    return 0;
}

int ri_check_secret(const char *secret, char *err, size_t errlen)
{
    size_t n = strlen(secret);
    if (n < RI_SECRET_MIN_LEN)
        return snprintf(err, errlen, "secret has %zu character%s: it must have at least %d "
                        "(%s)", n, n == 1 ? "" : "s", RI_SECRET_MIN_LEN, RI_SECRET_HOWTO), -1;
    if (ri_is_placeholder_secret(secret))
        return snprintf(err, errlen, "secret is a placeholder from the examples: replace it "
                        "with a secret of your own (%s)", RI_SECRET_HOWTO), -1;
    return 0;
}
