/* control-socket requests (core/edgejson.c: update_edges and provision
 * entries, all-or-nothing, a reason naming the bad entry) and the edges
 * file (core/edgestore.c: round trip, mode 0600, a missing file is empty). */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "edgejson.h"
#include "edgestore.h"
#include "t.h"

#define S1 "9LrQw2vX0aKcT7mZ4pYh1sUe8nBd3fGj6RtWq5xVz0E"
#define S2 "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-b"

static int parse(const char *text, struct ri_edge_def **v, size_t *n, char *err, size_t cap)
{
    json_error_t je;
    json_t *j = json_loads(text, 0, &je);
    if (!j)
        return t_fail_at(__FILE__, __LINE__, "test JSON: %s", je.text);
    int rc = ri_edges_from_json(j, v, n, err, cap);
    json_decref(j);
    return rc;
}

TEST(edgejson_valid_list)
{
    struct ri_edge_def *v;
    size_t n;
    char err[400];
    CHECK_INT(parse("[{\"id\":\"a\",\"secret\":\"" S1 "\",\"listen_ports\":[443,80]},"
                    "{\"id\":\"b\",\"secret\":\"" S2 "\",\"stun_interval_secs\":0}]",
                    &v, &n, err, sizeof err), 0);
    CHECK_INT(n, 2);
    CHECK_STR(v[0].id, "a");
    CHECK_INT(v[0].n_ports, 2);
    CHECK_INT(v[0].ports[0], 80); /* sorted */
    CHECK_INT(v[0].ports[1], 443);
    CHECK_INT(v[0].stun_interval_secs, 300); /* the config's default */
    CHECK_INT(v[1].n_ports, 0);
    CHECK_INT(v[1].stun_interval_secs, 0);
    ri_edge_defs_free(v, n);
    CHECK_INT(parse("[]", &v, &n, err, sizeof err), 0);
    CHECK_INT(n, 0);
    ri_edge_defs_free(v, n);
}

TEST(edgejson_refusals_name_the_entry)
{
    static const struct { const char *in, *err; } cases[] = {
        {"{}", "'edges' must be an array of {id, secret, listen_ports, stun_interval_secs}"},
        {"[5]", "edges[0]: must be an object {\"id\": ..., \"secret\": ..., \"listen_ports\": [...]}"},
        {"[{\"secret\":\"" S1 "\"}]", "edges[0]: 'id' must be a string"},
        {"[{\"id\":7,\"secret\":\"" S1 "\"}]", "edges[0]: 'id' must be a string"},
        {"[{\"id\":\"\",\"secret\":\"" S1 "\"}]",
         "edges[0]: edge id has 0 characters: it must have 1-128"},
        {"[{\"id\":\"a\"}]", "edges[0] (id 'a'): 'secret' must be a string"},
        {"[{\"id\":\"a\",\"secret\":\"short\"}]", NULL /* ident.c's message */},
        {"[{\"id\":\"a\",\"secret\":\"" S1 "\",\"listen_ports\":\"80\"}]",
         "edges[0] (id 'a'): 'listen_ports' must be an array like [80, 443]"},
        {"[{\"id\":\"a\",\"secret\":\"" S1 "\",\"listen_ports\":[0]}]",
         "edges[0] (id 'a'): listen port must be an integer 1-65535"},
        {"[{\"id\":\"a\",\"secret\":\"" S1 "\",\"listen_ports\":[65536]}]",
         "edges[0] (id 'a'): listen port must be an integer 1-65535"},
        {"[{\"id\":\"a\",\"secret\":\"" S1 "\",\"listen_ports\":[80,\"x\"]}]",
         "edges[0] (id 'a'): listen port must be an integer 1-65535"},
        {"[{\"id\":\"a\",\"secret\":\"" S1 "\",\"listen_ports\":[80,80]}]",
         "edges[0] (id 'a'): listen port 80 is listed twice"},
        {"[{\"id\":\"a\",\"secret\":\"" S1 "\",\"stun_interval_secs\":-1}]",
         "edges[0] (id 'a'): 'stun_interval_secs' must be an integer 0-86400"},
        {"[{\"id\":\"a\",\"secret\":\"" S1 "\",\"port\":1}]", "edges[0]: unknown key 'port'"},
        {"[{\"id\":\"a\",\"secret\":\"" S1 "\"},{\"id\":\"a\",\"secret\":\"" S2 "\"}]",
         "edges[1]: id 'a' is listed twice (first edges[0])"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct ri_edge_def *v = (void *)1;
        size_t n = 99;
        char err[400] = "";
        CHECK_MSG(parse(cases[i].in, &v, &n, err, sizeof err) == -1, "accepted: %s",
                  cases[i].in);
        CHECK(v == NULL && n == 0);
        if (cases[i].err)
            CHECK_STR(err, cases[i].err);
        else
            CHECK_HAS(err, "edges[0] (id 'a'): secret has 5 characters");
    }
}

TEST(edgejson_provision_entry_without_secret)
{
    json_t *j = json_pack("{s:s, s:[i]}", "id", "p", "listen_ports", 8080);
    struct ri_edge_def d;
    char err[300];
    CHECK_INT(ri_edge_from_json(j, "the request", 0, &d, err, sizeof err), 0);
    CHECK_STR(d.id, "p");
    CHECK_INT(d.n_ports, 1);
    free(d.id);
    free(d.secret);
    free(d.ports);
    json_decref(j);
}

TEST(edgestore_file_round_trip)
{
    char path[4096];
    t_path(path, sizeof path, "edges.json");
    struct ri_edge_store *st = ri_edge_store_file(path);
    char err[400];
    struct ri_edge_set *s = ri_edge_store_load(st, err, sizeof err);
    CHECK(s && s->n == 0); /* nothing stored yet */
    ri_edge_set_unref(s);
    uint16_t ports[] = {80, 443};
    struct ri_edge_def defs[] = {
        {.id = "x", .secret = S1, .ports = ports, .n_ports = 2, .stun_interval_secs = 60},
        {.id = "y", .secret = S2, .ports = ports, .n_ports = 0, .stun_interval_secs = 300}};
    s = ri_edge_set_new(defs, 2);
    CHECK_INT(ri_edge_store_save(st, s, err, sizeof err), 0);
    ri_edge_set_unref(s);
    struct stat sb;
    CHECK_INT(stat(path, &sb), 0);
    CHECK_INT(sb.st_mode & 0777, 0600);
    s = ri_edge_store_load(st, err, sizeof err);
    CHECK(s && s->n == 2);
    const struct ri_edge_def *x = ri_edge_set_find(s, "x");
    CHECK(x && x->n_ports == 2 && x->ports[1] == 443 && x->stun_interval_secs == 60);
    CHECK_STR(x->secret, S1);
    ri_edge_set_unref(s);
    FILE *f = fopen(path, "w");
    fputs("{\"edges\": [{\"id\": \"z\"}]}", f);
    fclose(f);
    CHECK(ri_edge_store_load(st, err, sizeof err) == NULL);
    CHECK_HAS(err, "edges[0] (id 'z'): 'secret' must be a string");
    ri_edge_store_free(st);
}
