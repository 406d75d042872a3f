/* edgejson.c -- edges as JSON (see edgejson.h). */
#include "edgejson.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ident.h"

static int cmp_u16(const void *a, const void *b)
{
    return (int)*(const uint16_t *)a - (int)*(const uint16_t *)b;
}

static void def_clear(struct ri_edge_def *d)
{
    if (d->secret) {
        memset(d->secret, 0, strlen(d->secret));
        free(d->secret);
    }
    free(d->id);
    free(d->ports);
    memset(d, 0, sizeof *d);
}

void ri_edge_defs_free(struct ri_edge_def *v, size_t n)
{
    for (size_t i = 0; v && i < n; i++)
        def_clear(&v[i]);
    free(v);
}

int ri_edge_from_json(const json_t *o, const char *where, int need_secret,
                      struct ri_edge_def *d, char *err, size_t errlen)
{
    char why[256];
    memset(d, 0, sizeof *d);
    if (!json_is_object(o)) {
        snprintf(err, errlen, "%s: must be an object {\"id\": ..., \"secret\": ..., "
                 "\"listen_ports\": [...]}", where);
        return -1;
    }
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)o, key, v) {
        if (strcmp(key, "id") && strcmp(key, "secret") && strcmp(key, "listen_ports") &&
            strcmp(key, "stun_interval_secs")) {
            snprintf(err, errlen, "%s: unknown key '%.64s'", where, key);
            return -1;
        }
    }
    const json_t *id = json_object_get(o, "id"), *sec = json_object_get(o, "secret"),
                 *ports = json_object_get(o, "listen_ports"),
                 *stun = json_object_get(o, "stun_interval_secs");
    if (!json_is_string(id)) {
        snprintf(err, errlen, "%s: 'id' must be a string", where);
        return -1;
    }
    if (ri_check_edge_id(json_string_value(id), why, sizeof why) < 0) {
        snprintf(err, errlen, "%s: %s", where, why);
        return -1;
    }
    const char *ids = json_string_value(id);
    if (need_secret || sec) {
        if (!json_is_string(sec)) {
            snprintf(err, errlen, "%s (id '%s'): 'secret' must be a string", where, ids);
            return -1;
        }
        if (ri_check_secret(json_string_value(sec), why, sizeof why) < 0) {
            snprintf(err, errlen, "%s (id '%s'): %s", where, ids, why);
            return -1;
        }
    }
    d->stun_interval_secs = 300;
    if (stun) {
        if (!json_is_integer(stun) || json_integer_value(stun) < 0 ||
            json_integer_value(stun) > 86400) {
            snprintf(err, errlen, "%s (id '%s'): 'stun_interval_secs' must be an integer "
                     "0-86400", where, ids);
            return -1;
        }
        d->stun_interval_secs = (uint32_t)json_integer_value(stun);
    }
    size_t np = 0;
    if (ports && !json_is_array(ports)) {
        snprintf(err, errlen, "%s (id '%s'): 'listen_ports' must be an array like [80, 443]",
                 where, ids);
        return -1;
    }
    np = ports ? json_array_size(ports) : 0;
    if (np > RI_EDGEJSON_PORTS_MAX) {
        snprintf(err, errlen, "%s (id '%s'): 'listen_ports' has %zu entries, at most %d",
                 where, ids, np, RI_EDGEJSON_PORTS_MAX);
        return -1;
    }
    d->id = strdup(ids);
    d->secret = strdup(sec ? json_string_value(sec) : "");
    d->ports = calloc(np + 1, sizeof *d->ports);
    if (!d->id || !d->secret || !d->ports) {
        snprintf(err, errlen, "out of memory");
        def_clear(d);
        return -1;
    }
    for (size_t k = 0; k < np; k++) {
        const json_t *p = json_array_get(ports, k);
        if (!json_is_integer(p) || json_integer_value(p) < 1 || json_integer_value(p) > 65535) {
            snprintf(err, errlen, "%s (id '%s'): listen port must be an integer 1-65535",
                     where, ids);
            def_clear(d);
            return -1;
        }
        d->ports[d->n_ports++] = (uint16_t)json_integer_value(p);
    }
    qsort(d->ports, d->n_ports, sizeof *d->ports, cmp_u16);
    for (size_t k = 1; k < d->n_ports; k++)
        if (d->ports[k] == d->ports[k - 1]) {
            snprintf(err, errlen, "%s (id '%s'): listen port %u is listed twice", where, ids,
                     d->ports[k]);
            def_clear(d);
            return -1;
        }
    return 0;
}

int ri_edges_from_json(const json_t *arr, struct ri_edge_def **out, size_t *n, char *err,
                       size_t errlen)
{
    *out = NULL;
    *n = 0;
    if (!json_is_array(arr)) {
        snprintf(err, errlen, "'edges' must be an array of {id, secret, listen_ports, "
                 "stun_interval_secs}");
        return -1;
    }
    size_t cnt = json_array_size(arr);
    if (cnt > RI_EDGEJSON_EDGES_MAX) {
        snprintf(err, errlen, "'edges' has %zu entries, at most %d", cnt, RI_EDGEJSON_EDGES_MAX);
        return -1;
    }
    struct ri_edge_def *v = calloc(cnt + 1, sizeof *v);
    if (!v) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < cnt; i++) {
        char where[32];
        snprintf(where, sizeof where, "edges[%zu]", i);
        if (ri_edge_from_json(json_array_get(arr, i), where, 1, &v[i], err, errlen) < 0) {
            ri_edge_defs_free(v, i);
            return -1;
        }
        for (size_t j = 0; j < i; j++)
            if (strcmp(v[j].id, v[i].id) == 0) {
                snprintf(err, errlen, "edges[%zu]: id '%s' is listed twice (first edges[%zu])",
                         i, v[i].id, j);
                ri_edge_defs_free(v, i + 1);
                return -1;
            }
    }
    *out = v;
    *n = cnt;
    return 0;
}

json_t *ri_edges_to_json(const struct ri_edge_def *v, size_t n, int with_secrets)
{
    json_t *arr = json_array();
    for (size_t i = 0; arr && i < n; i++) {
        json_t *ports = json_array();
        for (size_t k = 0; ports && k < v[i].n_ports; k++)
            json_array_append_new(ports, json_integer(v[i].ports[k]));
        json_t *o = json_pack("{s:s, s:o, s:I}", "id", v[i].id, "listen_ports", ports,
                              "stun_interval_secs", (json_int_t)v[i].stun_interval_secs);
        if (o && with_secrets)
            json_object_set_new(o, "secret", json_string(v[i].secret));
        if (!o || json_array_append_new(arr, o) < 0) {
            json_decref(arr);
            return NULL;
        }
    }
    return arr;
}
