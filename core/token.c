/* token.c -- connection token codec, compatible with the TypeScript/Rust
 * implementation: base64url without padding of the compact JSON
 * {"h":"<hubHost>","p":<hubPort>,"e":"<edgeId>","s":"<secret>"}. */
#include "token.h"

#include <jansson.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "b64.h"
#include "ident.h"

/* A token holds a secret, and so do jansson's copies of its strings: this
 * allocator wipes every block jansson frees (sizes kept in a header). */
struct wipe_hdr {
    size_t n;
    max_align_t align_;
};

static void *wipe_malloc(size_t n)
{
    struct wipe_hdr *h = malloc(sizeof *h + n);
    if (!h)
        return NULL;
    h->n = n;
    return h + 1;
}

static void wipe_free(void *p)
{
    if (!p)
        return;
    struct wipe_hdr *h = (struct wipe_hdr *)p - 1;
    explicit_bzero(p, h->n);
    free(h);
}

void ri_token_secure_json(void)
{
    json_set_alloc_funcs(wipe_malloc, wipe_free);
}

void ri_json_free(void *p)
{
    json_malloc_t m;
    json_free_t f;
    json_get_alloc_funcs(&m, &f);
    if (p)
        f(p);
}

static void secure_json(void)
{
    json_malloc_t m;
    json_free_t f;
    json_get_alloc_funcs(&m, &f);
    if (m != wipe_malloc) /* once, before any JSON exists: main() does it first */
        ri_token_secure_json();
}

int ri_token_hostport_check(const char *s, char *err, size_t errlen)
{
    const char *c = strrchr(s, ':');
    size_t hl = c ? (size_t)(c - s) : 0;
    if (hl && s[0] == '[')
        hl = s[hl - 1] == ']' ? hl - 2 : 0;
    char *end;
    long port = c ? strtol(c + 1, &end, 10) : 0;
    if (!c || !hl || !c[1] || *end || port < 1 || port > 65535)
        return snprintf(err, errlen, "hub \"%.64s\" is not \"host:port\"", s), -1;
    return 0;
}

static int check_fields(const struct ri_token *t, char *err, size_t errlen)
{
    if (t->n_hubs < 0 || t->n_hubs > RI_TOKEN_HUBS_MAX)
        return snprintf(err, errlen, "more than %d further hubs", RI_TOKEN_HUBS_MAX), -1;
    for (int i = 0; i < t->n_hubs; i++)
        if (ri_token_hostport_check(t->hubs[i], err, errlen) < 0)
            return -1;
    if (!t->hub_host[0]) return snprintf(err, errlen, "hub host is empty"), -1;
    if (t->hub_port < 1 || t->hub_port > 65535)
        return snprintf(err, errlen, "hub port %d is out of range 1-65535", t->hub_port), -1;
    if (ri_check_edge_id(t->edge_id, err, errlen) < 0) return -1;
    return ri_check_secret(t->secret, err, errlen);
}

char *ri_token_encode(const struct ri_token *t, char *err, size_t errlen)
{
    if (check_fields(t, err, errlen) < 0)
        return NULL;
    secure_json();
    /* key order h, p, e, s matches JSON.stringify of the original */
    json_t *o = json_pack("{s:s, s:i, s:s, s:s}", "h", t->hub_host, "p", t->hub_port,
                          "e", t->edge_id, "s", t->secret);
    if (o && t->n_hubs) { /* optional: older edges ignore it */
        json_t *a = json_array();
        for (int i = 0; a && i < t->n_hubs; i++)
            json_array_append_new(a, json_string(t->hubs[i]));
        if (!a || json_array_size(a) != (size_t)t->n_hubs || json_object_set_new(o, "H", a) < 0) {
            json_decref(o);
            o = NULL;
        }
    }
    if (!o) {
        snprintf(err, errlen, "cannot build token JSON (invalid UTF-8?)");
        return NULL;
    }
    char *js = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(o);
    if (!js) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    size_t n = strlen(js);
    char *out = malloc(b64url_enc_len(n) + 1);
    if (out)
        b64url_encode(js, n, out);
    else
        snprintf(err, errlen, "out of memory");
    wipe_free(js); /* json_dumps allocated it with wipe_malloc */
    return out;
}

static int get_str(json_t *o, const char *key, const char *what, char *dst, char *err,
                   size_t errlen)
{
    json_t *v = json_object_get(o, key);
    if (!v) return snprintf(err, errlen, "token has no \"%s\" (%s)", key, what), -1;
    if (!json_is_string(v))
        return snprintf(err, errlen, "token key \"%s\" (%s) is not a string", key, what), -1;
    size_t len = json_string_length(v);
    if (len > RI_TOKEN_FIELD_MAX)
        return snprintf(err, errlen, "token key \"%s\" (%s) is longer than %d bytes", key,
                        what, RI_TOKEN_FIELD_MAX), -1;
    if (memchr(json_string_value(v), '\0', len))
        return snprintf(err, errlen, "token key \"%s\" (%s) contains a NUL byte", key, what), -1;
    memcpy(dst, json_string_value(v), len + 1);
    return 0;
}

int ri_token_decode(const char *s, struct ri_token *t, char *err, size_t errlen)
{
    memset(t, 0, sizeof *t);
    size_t n = strlen(s);
    while (n && (s[n - 1] == '\n' || s[n - 1] == '\r' || s[n - 1] == ' ')) n--;
    while (n && (*s == ' ' || *s == '\t')) s++, n--;
    if (n == 0) return snprintf(err, errlen, "token is empty"), -1;
    if (n > 4096) return snprintf(err, errlen, "token is longer than 4096 characters"), -1;
    unsigned char raw[4096];
    long len = b64url_decode(s, n, raw);
    if (len < 0)
        return snprintf(err, errlen, "token is not valid base64url"), -1;
    secure_json();
    json_error_t je;
    json_t *o = json_loadb((const char *)raw, (size_t)len, JSON_REJECT_DUPLICATES, &je);
    explicit_bzero(raw, sizeof raw);
    if (!o) return snprintf(err, errlen, "token is not valid JSON: %s", je.text), -1;
    int rc = -1;
    if (!json_is_object(o)) {
        snprintf(err, errlen, "token JSON is not an object");
        goto out;
    }
    if (get_str(o, "h", "hub host", t->hub_host, err, errlen) < 0) goto out;
    json_t *p = json_object_get(o, "p");
    if (!p) { snprintf(err, errlen, "token has no \"p\" (hub port)"); goto out; }
    if (!json_is_integer(p)) {
        snprintf(err, errlen, "token key \"p\" (hub port) is not an integer");
        goto out;
    }
    json_int_t port = json_integer_value(p);
    if (port < 1 || port > 65535) {
        snprintf(err, errlen, "token hub port %lld is out of range 1-65535", (long long)port);
        goto out;
    }
    t->hub_port = (int)port;
    if (get_str(o, "e", "edge id", t->edge_id, err, errlen) < 0) goto out;
    if (get_str(o, "s", "secret", t->secret, err, errlen) < 0) goto out;
    json_t *hs = json_object_get(o, "H");
    if (hs && (!json_is_array(hs) || json_array_size(hs) > RI_TOKEN_HUBS_MAX)) {
        snprintf(err, errlen, "token key \"H\" (further hubs) is not a list of at most %d",
                 RI_TOKEN_HUBS_MAX);
        goto out;
    }
    for (size_t i = 0; hs && i < json_array_size(hs); i++) {
        json_t *w = json_pack("{s:O}", "x", json_array_get(hs, i));
        int bad = !w || get_str(w, "x", "a further hub", t->hubs[i], err, errlen) < 0;
        json_decref(w);
        if (bad)
            goto out;
        t->n_hubs = (int)i + 1;
    }
    rc = check_fields(t, err, errlen);
out:
    json_decref(o);
    return rc;
}

char *ri_token_to_json(const struct ri_token *t)
{
    secure_json();
    json_t *o = json_pack("{s:s, s:i, s:s, s:s}", "hubHost", t->hub_host, "hubPort",
                          t->hub_port, "edgeId", t->edge_id, "secret", t->secret);
    if (!o) return NULL;
    if (t->n_hubs) {
        json_t *a = json_array();
        for (int i = 0; a && i < t->n_hubs; i++)
            json_array_append_new(a, json_string(t->hubs[i]));
        json_object_set_new(o, "hubs", a);
    }
    char *js = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(o);
    char *out = js ? strdup(js) : NULL; /* the caller frees with free() */
    wipe_free(js);
    return out;
}
