/* config files (core/config.c), written to the test's temp folder. In the
 * texts below, "#<" marks the line an error must be reported at. */
#include <glob.h>
#include <stdio.h>
#include <stdlib.h>

#include "cfgu.h"
#include "config.h"
#include "t.h"
#include "token.h"

#ifndef RI_STATE_DIR_DEFAULT
#define RI_STATE_DIR_DEFAULT "/var/lib/ri"
#endif

#define PLUGINS "plugins = ( { name = \"auth_secret\"; } );\n"
#define EDGE1 "    { id = \"e1\"; secret = \"0123456789abcdef\"; listen_ports = [ 80, 443 ]; }"
#define HUB_OK "hub = {\n  listen = \"127.0.0.1:8443\";\n  edges = (\n" EDGE1 "\n  );\n};\n"
#define EDGE_NO_PORT "  hub_host = \"hub.example.com\";\n" \
                     "  edge_id = \"edge-1\";\n  secret = \"0123456789abcdef\";\n"
#define EDGE_FIELDS EDGE_NO_PORT "  hub_port = 8443;\n"

/* text must be refused with exactly one error, at the "#<" line, holding word */
static int refused(const char *file, int line, const char *text, const char *word)
{
    char path[4096];
    if (u_write_cfg(path, sizeof path, "ri.cfg", text) < 0)
        return t_fail_at(file, line, "cannot write %s", path);
    int lno = u_marked_line(text, "#<");
    if (!lno)
        return t_fail_at(file, line, "test text has no #< mark");
    struct ri_errs e = {0};
    struct ri_config *c = ri_config_load(path, &e);
    int rc = 0;
    if (c) {
        const char *l = text;
        for (int k = 1; k < lno; k++)
            l = strchr(l, '\n') + 1;
        rc = t_fail_at(file, line, "config accepted, wanted \"%s\" at line %d: %.*s", word, lno,
                       (int)strcspn(l, "\n"), l);
        ri_config_free(c);
    } else if (u_has_err(file, line, &e, path, lno, word) < 0) {
        rc = -1;
    } else if (e.n != 1) {
        rc = t_fail_at(file, line, "%zu errors, wanted 1: %s", e.n, u_errs_str(&e));
    }
    ri_errs_free(&e);
    return rc;
}
#define CHECK_REFUSED(text, word) CHECK(refused(__FILE__, __LINE__, text, word) == 0)

/* Loads text that must be valid; NULL after reporting otherwise. */
static struct ri_config *accepted(const char *file, int line, const char *name, const char *text)
{
    char path[4096];
    if (u_write_cfg(path, sizeof path, name, text) < 0)
        return t_fail_at(file, line, "cannot write %s", path), NULL;
    struct ri_errs e = {0};
    struct ri_config *c = ri_config_load(path, &e);
    if (!c)
        t_fail_at(file, line, "refused: %s", u_errs_str(&e));
    ri_errs_free(&e);
    return c;
}
#define ACCEPTED(name, text) accepted(__FILE__, __LINE__, name, text)

/* The example file conf/<name>, with its placeholder secrets (hub.cfg) or
 * placeholder token (edge.cfg) replaced by real ones, written to the test's
 * folder; 0 ok. */
static int example_with_real_secrets(const char *name, char *path, size_t cap)
{
    char src[4096];
    snprintf(src, sizeof src, "%s/conf/%s", t_src_dir(), name);
    FILE *f = fopen(src, "r");
    if (!f)
        return -1;
    static char in[65536], out[70000];
    size_t n = fread(in, 1, sizeof in - 1, f), o = 0;
    fclose(f);
    in[n] = '\0';
    struct ri_token t = {.hub_port = 8443};
    strcpy(t.hub_host, "hub.example.com");
    strcpy(t.edge_id, "edge-nyc-01");
    strcpy(t.secret, "9LrQw2vX0aKcT7mZ4pYh1sUe8nBd3fGj6RtWq5xVz0E");
    char err[256], *tok = ri_token_encode(&t, err, sizeof err);
    if (!tok)
        return -1;
    for (const char *p = in; *p && o < sizeof out - 300;) {
        if (!strncmp(p, "REPLACE-with-ri-core-secret-output-", 35)) {
            o += (size_t)snprintf(out + o, sizeof out - o, "%s-%c", t.secret, p[35]);
            p += 36;
        } else if (!strncmp(p, "token = \"", 9) && strchr(p + 9, '"')) {
            o += (size_t)snprintf(out + o, sizeof out - o, "token = \"%s\"", tok);
            p = strchr(p + 9, '"') + 1;
        } else {
            out[o++] = *p++;
        }
    }
    out[o] = '\0';
    free(tok);
    return u_write_cfg(path, cap, name, out);
}

TEST(config_examples_load)
{
    /* the loopback examples load as they are; the deployment templates
     * (hub.cfg, edge.cfg) are refused for their placeholder secrets only,
     * and load once real secrets replace them */
    char pat[4096];
    snprintf(pat, sizeof pat, "%s/conf/*.cfg", t_src_dir());
    glob_t g;
    CHECK_MSG(glob(pat, 0, NULL, &g) == 0, "no files match %s", pat);
    size_t n = g.gl_pathc, bad = 0, templates = 0;
    for (size_t i = 0; i < n; i++) {
        const char *base = strrchr(g.gl_pathv[i], '/') + 1;
        int tmpl = !strcmp(base, "hub.cfg") || !strcmp(base, "edge.cfg");
        struct ri_errs e = {0};
        struct ri_config *c = ri_config_load(g.gl_pathv[i], &e);
        if (tmpl) {
            templates++;
            int only_placeholders = !c && e.n > 0;
            for (size_t k = 0; k < e.n; k++)
                only_placeholders &= strstr(e.lines[k], "placeholder") != NULL;
            if (!only_placeholders && !bad++)
                t_fail_at(__FILE__, __LINE__, "%s: not refused for its placeholders only: %s",
                          base, c ? "accepted" : u_errs_str(&e));
            ri_config_free(c);
            ri_errs_free(&e);
            char path[4096];
            if (example_with_real_secrets(base, path, sizeof path) < 0 && !bad++)
                t_fail_at(__FILE__, __LINE__, "cannot copy %s", base);
            c = ri_config_load(path, &e);
        }
        if (!c && !bad++)
            t_fail_at(__FILE__, __LINE__, "%s: %s", g.gl_pathv[i], u_errs_str(&e));
        ri_config_free(c);
        ri_errs_free(&e);
    }
    globfree(&g);
    CHECK(bad == 0);
    CHECK_MSG(n >= 4, "only %zu example configs", n);
    CHECK_INT(templates, 2);
}

TEST(config_example_values)
{
    char path[4096];
    struct ri_errs e = {0};
    CHECK(example_with_real_secrets("hub.cfg", path, sizeof path) == 0);
    struct ri_config *c = ri_config_load(path, &e);
    CHECK_MSG(c, "%s", u_errs_str(&e));
    int role = c->role;
    size_t edges = c->n_edges, ports0 = c->edges[0].n_ports;
    int listen_ok = strcmp(c->listen, "0.0.0.0:8443") == 0;
    int no_dir = c->plugin_dir == NULL; /* copied anywhere, the default folder applies */
    ri_config_free(c);
    CHECK_INT(role, RI_ROLE_HUB);
    CHECK_INT(edges, 3);
    CHECK_INT(ports0, 2);
    CHECK(listen_ok);
    CHECK(no_dir);

    CHECK(example_with_real_secrets("edge.cfg", path, sizeof path) == 0);
    c = ri_config_load(path, &e);
    CHECK_MSG(c, "%s", u_errs_str(&e));
    int host_ok = c->hub_host && strcmp(c->hub_host, "hub.example.com") == 0;
    int id_ok = c->edge_id && strcmp(c->edge_id, "edge-nyc-01") == 0;
    int port = c->hub_port;
    role = c->role;
    no_dir = c->plugin_dir == NULL;
    ri_config_free(c);
    CHECK_INT(role, RI_ROLE_EDGE);
    CHECK(host_ok); /* from the token */
    CHECK(id_ok);
    CHECK_INT(port, 8443);
    CHECK(no_dir);
}

TEST(config_values_and_defaults)
{
    struct ri_config *c = ACCEPTED("ri.cfg",
        "role = \"hub\";\n" PLUGINS
        "hub = {\n  listen = \"[::1]:9443\";\n  max_streams = 7;\n  ping_interval_secs = 0.5;\n"
        "  edges = ( { id = \"e1\"; secret = \"0123456789abcdef\";\n"
        "              listen_ports = [ 8443, 80, 443 ]; } );\n};\n");
    if (!c)
        return;
    const struct ri_edge_conf *e = ri_config_find_edge(c, "e1");
    int sorted = e && e->n_ports == 3 && e->ports[0] == 80 && e->ports[1] == 443 &&
                 e->ports[2] == 8443;
    int stun = e ? (int)e->stun_interval_secs : -1;
    int target = strcmp(c->target_host, "127.0.0.1") == 0;
    unsigned ms = c->max_streams;
    double pi = c->ping_interval, pt = c->ping_timeout;
    int nope = ri_config_find_edge(c, "e2") == NULL, lvl = c->log_level;
    ri_config_free(c);
    CHECK(sorted);
    CHECK_INT(stun, 300);
    CHECK(target);
    CHECK_INT(ms, 7);
    CHECK(pi == 0.5 && pt == 45);
    CHECK(nope);
    CHECK_INT(lvl, RI_LOG_INFO);
}

TEST(config_syntax_error_has_file_line)
{
    CHECK_REFUSED("role = \"hub\";\n" PLUGINS "hub = {\n  listen = ; #<\n};\n", "syntax error");
    CHECK_REFUSED("role = \"hub\";\nplugins = ( { name = \"a\"; } ; #<\n);\n", "syntax error");
}

TEST(config_missing_file)
{
    struct ri_errs e = {0};
    char path[4096];
    t_path(path, sizeof path, "does-not-exist.cfg");
    CHECK(ri_config_load(path, &e) == NULL);
    int ok = e.n == 1 && strstr(e.lines[0], path) && strstr(e.lines[0], "cannot read");
    char first[512];
    snprintf(first, sizeof first, "%s", u_errs_str(&e));
    ri_errs_free(&e);
    CHECK_MSG(ok, "%s", first);
}

TEST(config_rejects_unknown_top_key)
{
    CHECK_REFUSED("role = \"hub\";\n" PLUGINS "colour = \"blue\"; #<\n" HUB_OK,
                  "unknown key 'colour'");
}

TEST(config_rejects_bad_role)
{
    CHECK_REFUSED("role = \"spoke\"; #<\n" PLUGINS, "role must be \"hub\" or \"edge\"");
    CHECK_REFUSED("role = 1; #<\n" PLUGINS, "'role' must be a string");
}

TEST(config_rejects_bad_log_level)
{
    CHECK_REFUSED("role = \"hub\";\nlog_level = \"loud\"; #<\n" PLUGINS HUB_OK, "log_level");
}

TEST(config_rejects_hub_without_listen)
{
    CHECK_REFUSED("role = \"hub\";\n" PLUGINS "hub = { #<\n  target_host = \"10.0.0.1\";\n};\n",
                  "'listen' is required");
}

TEST(config_rejects_bad_listen)
{
    static const char *const bad[] = {"localhost:8443", "127.0.0.1", "127.0.0.1:0",
                                      "127.0.0.1:65536", "::1:8443", "[::1]8443", "1.2.3.4:x"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char text[512];
        snprintf(text, sizeof text,
                 "role = \"hub\";\n" PLUGINS "hub = {\n  edges = ();\n  listen = \"%s\"; #<\n};\n",
                 bad[i]);
        CHECK_REFUSED(text, "'listen' must be a numeric address");
    }
}

TEST(config_rejects_cert_without_key)
{
    CHECK_REFUSED("role = \"hub\";\n" PLUGINS
                  "hub = { #<\n  listen = \"0.0.0.0:8443\";\n  tls_cert = \"hub.crt\";\n};\n",
                  "'tls_cert' and 'tls_key' go together");
    CHECK_REFUSED("role = \"hub\";\n" PLUGINS
                  "hub = { #<\n  listen = \"0.0.0.0:8443\";\n  tls_key = \"hub.key\";\n};\n",
                  "'tls_cert' and 'tls_key' go together");
}

TEST(config_rejects_duplicate_edge_id)
{
    CHECK_REFUSED("role = \"hub\";\n" PLUGINS
                  "hub = {\n  listen = \"0.0.0.0:8443\";\n  edges = (\n" EDGE1 ",\n"
                  "    { id = \"e1\"; #<\n      secret = \"fedcba9876543210\"; }\n  );\n};\n",
                  "edge id 'e1' is listed twice (first at line 6)");
}

TEST(config_rejects_short_secret)
{
    CHECK_REFUSED("role = \"hub\";\n" PLUGINS
                  "hub = {\n  listen = \"0.0.0.0:8443\";\n  edges = (\n"
                  "    { id = \"e1\";\n      secret = \"0123456789abcde\"; #<\n    }\n  );\n};\n",
                  "edge 'e1': secret has 15 characters: it must have at least 16");
}

TEST(config_rejects_port_out_of_range)
{
    static const char *const bad[] = {"0", "65536", "-1", "\"80\"", "80.0"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char text[512];
        snprintf(text, sizeof text,
                 "role = \"hub\";\n" PLUGINS "hub = {\n  listen = \"0.0.0.0:8443\";\n  edges = (\n"
                 "    { id = \"e1\"; secret = \"0123456789abcdef\";\n      listen_ports = [ 80,\n"
                 "        %s ]; } #<\n  );\n};\n", bad[i]);
        /* libconfig arrays hold one type: a string/float among ints is a syntax error */
        CHECK_REFUSED(text, i < 3 ? "listen port must be an integer 1-65535" : "syntax error");
    }
    CHECK_REFUSED("role = \"hub\";\n" PLUGINS "hub = {\n  listen = \"0.0.0.0:8443\";\n  edges = (\n"
                  "    { id = \"e1\"; secret = \"0123456789abcdef\";\n      listen_ports = ( 80,\n"
                  "        \"http\" ); } #<\n  );\n};\n",
                  "listen port must be an integer 1-65535");
}

TEST(config_rejects_duplicate_port)
{
    CHECK_REFUSED("role = \"hub\";\n" PLUGINS "hub = {\n  listen = \"0.0.0.0:8443\";\n  edges = (\n"
                  "    { id = \"e1\"; secret = \"0123456789abcdef\";\n"
                  "      listen_ports = [ 443, 80, 443 ]; } #<\n  );\n};\n",
                  "listen port 443 is listed twice");
}

TEST(config_rejects_unknown_key_in_hub)
{
    CHECK_REFUSED("role = \"hub\";\n" PLUGINS
                  "hub = {\n  listen = \"0.0.0.0:8443\";\n  listne = \"0.0.0.0:1\"; #<\n};\n",
                  "unknown key 'listne' in hub");
    CHECK_REFUSED("role = \"hub\";\n" PLUGINS
                  "hub = {\n  listen = \"0.0.0.0:8443\";\n  edges = (\n"
                  "    { id = \"e1\"; secret = \"0123456789abcdef\";\n      port = 80; } #<\n"
                  "  );\n};\n",
                  "unknown key 'port' in an edge");
}

TEST(config_rejects_token_and_fields)
{
    CHECK_REFUSED("role = \"edge\";\n" PLUGINS "edge = { #<\n"
                  "  token = \"eyJoIjoiaHViLmV4YW1wbGUuY29tIiwicCI6ODQ0MywiZSI6ImVkZ2UtbnljLTAx"
                  "IiwicyI6InN1cGVyc2VjcmV0dG9rZW4xIn0\";\n  hub_host = \"other\";\n};\n",
                  "either 'token' or hub_host");
}

TEST(config_rejects_bad_token)
{
    CHECK_REFUSED("role = \"edge\";\n" PLUGINS "edge = {\n  token = \"not*a*token\"; #<\n};\n",
                  "bad token: token is not valid base64url");
    /* base64url of {"h":"h","p":0,"e":"e","s":"s"} */
    CHECK_REFUSED("role = \"edge\";\n" PLUGINS
                  "edge = {\n  bind_address = \"::\";\n"
                  "  token = \"eyJoIjoiaCIsInAiOjAsImUiOiJlIiwicyI6InMifQ\"; #<\n};\n",
                  "out of range");
}

TEST(config_rejects_bad_fingerprint)
{
    static const char *const bad[] = {
        "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", /* no sha256: */
        "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde", /* 63 */
        "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0",
        "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdeg",
        "sha1:0123456789abcdef0123456789abcdef01234567"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char text[1024];
        snprintf(text, sizeof text,
                 "role = \"edge\";\n" PLUGINS "edge = {\n" EDGE_FIELDS
                 "  hub_fingerprint = \"%s\"; #<\n};\n", bad[i]);
        CHECK_REFUSED(text, "'hub_fingerprint' must be");
    }
    /* upper case and colons are fine */
    struct ri_config *c = ACCEPTED("ok.cfg",
        "role = \"edge\";\n" PLUGINS "edge = {\n" EDGE_FIELDS
        "  hub_fingerprint = \"sha256:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:ab:cd:ef:"
        "01:23:45:67:89:ab:cd:ef:01:23:45:67:89:ab:cd:ef\";\n};\n");
    ri_config_free(c);
}

TEST(config_rejects_reconnect_max_below_min)
{
    CHECK_REFUSED("role = \"edge\";\n" PLUGINS "edge = { #<\n" EDGE_FIELDS
                  "  reconnect_min_secs = 10;\n  reconnect_max_secs = 5.5;\n};\n",
                  "'reconnect_max_secs' is below 'reconnect_min_secs'");
}

TEST(config_rejects_duplicate_plugin)
{
    CHECK_REFUSED("role = \"hub\";\nplugins = (\n  { name = \"auth_secret\"; },\n"
                  "  { name = \"header_proxy_v1\"; },\n  { name = \"auth_secret\"; enabled = false; } #<\n"
                  ");\n" HUB_OK,
                  "plugin 'auth_secret' is listed twice (first at line 3)");
}

TEST(config_rejects_misc)
{
    CHECK_REFUSED("role = \"hub\";\n" PLUGINS "edge = {}; #<\n" HUB_OK, "'edge' group in a hub config");
    CHECK_REFUSED("role = \"edge\";\n" PLUGINS "edge = {\n" EDGE_NO_PORT "  hub_port = 0; #<\n};\n",
                  "'hub_port' = 0 is out of range 1-65535");
    CHECK_REFUSED("role = \"edge\";\n" PLUGINS "edge = { #<\n" EDGE_NO_PORT "};\n",
                  "'hub_port' is required");
    CHECK_REFUSED("role = \"edge\";\n" PLUGINS "edge = {\n" EDGE_FIELDS
                  "  bind_address = \"eth0\"; #<\n};\n", "'bind_address' must be");
    CHECK_REFUSED("role = \"hub\";\nplugins = (\n  { name = \"auth_secret\"; enabled = 1; } #<\n);\n"
                  HUB_OK, "'enabled' must be true or false");
}

TEST(config_reports_every_error)
{
    const char *text =
        "role = \"hub\";\n"
        "log_level = \"chatty\"; #<1\n"
        PLUGINS
        "hub = {\n"
        "  listen = \"0.0.0.0:8443\";\n"
        "  max_streams = 0; #<2\n"
        "  edges = (\n"
        "    { id = \"e1\"; secret = \"short\"; #<3\n"
        "      listen_ports = [ 80, 80 ]; }, #<4\n"
        "    { id = \"e1\"; secret = \"0123456789abcdef\"; } #<5\n"
        "  );\n"
        "};\n"
        "extra = 1; #<6\n";
    static const char *const words[] = {"log_level", "max_streams", "at least 16",
                                        "listed twice", "'e1' is listed twice", "unknown key"};
    char path[4096];
    CHECK(u_write_cfg(path, sizeof path, "ri.cfg", text) == 0);
    struct ri_errs e = {0};
    struct ri_config *c = ri_config_load(path, &e);
    ri_config_free(c);
    CHECK_MSG(!c, "config accepted");
    for (int k = 1; k <= 6; k++) {
        char mark[16];
        snprintf(mark, sizeof mark, "#<%d", k);
        if (u_has_err(__FILE__, __LINE__, &e, path, u_marked_line(text, mark), words[k - 1])) {
            ri_errs_free(&e);
            return;
        }
    }
    size_t n = e.n;
    char all[4096];
    snprintf(all, sizeof all, "%s", u_errs_str(&e));
    ri_errs_free(&e);
    CHECK_MSG(n == 6, "%zu errors, wanted 6: %s", n, all);
}

TEST(config_relative_paths_resolve_against_file)
{
    struct ri_config *c = ACCEPTED("sub/dir/hub.cfg",
        "role = \"hub\";\nplugin_dir = \"../plugins\";\n" PLUGINS
        "hub = {\n  listen = \"0.0.0.0:8443\";\n  tls_cert = \"certs/hub.crt\";\n"
        "  tls_key = \"/etc/ri/hub.key\";\n};\n");
    if (!c)
        return;
    char want_pd[4200], want_cert[4200], got_pd[4200], got_cert[4200], got_key[4200];
    snprintf(want_pd, sizeof want_pd, "%s/sub/dir/../plugins", t_tmpdir());
    snprintf(want_cert, sizeof want_cert, "%s/sub/dir/certs/hub.crt", t_tmpdir());
    snprintf(got_pd, sizeof got_pd, "%s", c->plugin_dir ? c->plugin_dir : "(null)");
    snprintf(got_cert, sizeof got_cert, "%s", c->tls_cert ? c->tls_cert : "(null)");
    snprintf(got_key, sizeof got_key, "%s", c->tls_key ? c->tls_key : "(null)");
    ri_config_free(c);
    CHECK_STR(got_pd, want_pd);
    CHECK_STR(got_cert, want_cert);
    CHECK_STR(got_key, "/etc/ri/hub.key");

    /* no plugin_dir: NULL, the loader searches its default folders */
    c = ACCEPTED("hub2.cfg", "role = \"hub\";\n" PLUGINS HUB_OK);
    if (!c)
        return;
    int none = c->plugin_dir == NULL;
    ri_config_free(c);
    CHECK(none);
}

TEST(config_state_dir_default_empty_and_relative)
{
    /* absent: the built-in default; "": ephemeral (NULL); relative: against
     * the file's folder. Lines of the settings later checks report on. */
    struct ri_config *c = ACCEPTED("sd1.cfg", "role = \"hub\";\n" PLUGINS HUB_OK);
    if (!c)
        return;
    char got[4200];
    snprintf(got, sizeof got, "%s", c->state_dir ? c->state_dir : "(null)");
    int line = c->state_dir_line, tline = c->target_host_line;
    ri_config_free(c);
    CHECK_STR(got, RI_STATE_DIR_DEFAULT);
    CHECK_INT(line, 0);
    CHECK_INT(tline, 3); /* no target_host: the hub group's line */

    c = ACCEPTED("sd2.cfg", "role = \"hub\";\n" PLUGINS
                 "hub = {\n  listen = \"127.0.0.1:8443\";\n  state_dir = \"\";\n};\n");
    if (!c)
        return;
    int none = c->state_dir == NULL;
    line = c->state_dir_line;
    ri_config_free(c);
    CHECK(none);
    CHECK_INT(line, 5);

    c = ACCEPTED("sub/sd3.cfg", "role = \"hub\";\n" PLUGINS
                 "hub = {\n  listen = \"127.0.0.1:8443\";\n  state_dir = \"state\";\n"
                 "  tls_cert = \"a.crt\";\n  tls_key = \"a.key\";\n"
                 "  target_host = \"localhost\";\n};\n");
    if (!c)
        return;
    char want[4200];
    snprintf(want, sizeof want, "%s/sub/state", t_tmpdir());
    snprintf(got, sizeof got, "%s", c->state_dir ? c->state_dir : "(null)");
    int cl = c->tls_cert_line, kl = c->tls_key_line;
    tline = c->target_host_line;
    ri_config_free(c);
    CHECK_STR(got, want);
    CHECK_INT(cl, 6);
    CHECK_INT(kl, 7);
    CHECK_INT(tline, 8);

    CHECK_REFUSED("role = \"hub\";\n" PLUGINS
                  "hub = {\n  listen = \"127.0.0.1:8443\";\n  state_dir = 5;  #<\n};\n",
                  "'state_dir' must be a string");
}

TEST(config_edge_setting_lines)
{
    struct ri_config *c = ACCEPTED("e1.cfg", "role = \"edge\";\n" PLUGINS "edge = {\n"
                                   EDGE_FIELDS "  hub_ca = \"ca.pem\";\n};\n");
    if (!c)
        return;
    int hl = c->hub_host_line, cl = c->hub_ca_line;
    ri_config_free(c);
    CHECK_INT(hl, 4);
    CHECK_INT(cl, 8);
}

TEST(config_control_socket_keys)
{
    struct ri_config *c = ACCEPTED("ctl-hub.cfg",
        "role = \"hub\";\n" PLUGINS "hub = {\n  listen = \"127.0.0.1:8443\";\n"
        "  control_socket = \"run/hub.sock\";\n  control_socket_mode = \"0660\";\n"
        "  edges_file = \"edges.json\";\n  public_host = \"hub.example.com\";\n};\n");
    CHECK(c != NULL);
    CHECK_INT(c->control_socket_mode, 0660);
    CHECK_HAS(c->control_socket, "/run/hub.sock"); /* relative to the config's folder */
    CHECK_HAS(c->edges_file, "/edges.json");
    CHECK_STR(c->public_host, "hub.example.com");
    ri_config_free(c);
    c = ACCEPTED("ctl-hub2.cfg", "role = \"hub\";\n" PLUGINS HUB_OK);
    CHECK(c != NULL && !c->control_socket && !c->edges_file && c->control_socket_mode == 0600);
    ri_config_free(c);
    CHECK_REFUSED("role = \"hub\";\n" PLUGINS "hub = {\n  listen = \"127.0.0.1:8443\";\n"
                  "  control_socket_mode = \"0999\"; #<\n};\n",
                  "'control_socket_mode' must be an octal file mode like \"0660\"");
    CHECK_REFUSED("role = \"hub\";\n" PLUGINS "hub = {\n  listen = \"127.0.0.1:8443\";\n"
                  "  control_socket_mode = 600; #<\n};\n", "'control_socket_mode' must be a string");
    CHECK_REFUSED("role = \"hub\";\n" PLUGINS "hub = {\n  listen = \"127.0.0.1:8443\";\n"
                  "  edges_file = \"\"; #<\n};\n", "'edges_file' is empty");
    CHECK_REFUSED("role = \"edge\";\n" PLUGINS "edge = {\n" EDGE_FIELDS
                  "  control_socket = \"/" "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
                  "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.sock\"; #<\n};\n",
                  "'control_socket' path is too long");
    CHECK_REFUSED("role = \"edge\";\n" PLUGINS "edge = {\n" EDGE_FIELDS
                  "  edges_file = \"x\"; #<\n};\n", "unknown key 'edges_file' in edge");
}

TEST(config_stun_servers_and_log_format)
{
    struct ri_config *c = ACCEPTED("ri.cfg",
        "role = \"edge\";\nlog_format = \"json\";\n" PLUGINS "edge = {\n" EDGE_FIELDS "};\n");
    if (!c)
        return;
    size_t n = c->n_stun_servers;
    int google = n == 2 && strcmp(c->stun_servers[0], "stun.l.google.com:19302") == 0 &&
                 strcmp(c->stun_servers[1], "stun.cloudflare.com:3478") == 0;
    int json = c->log_json;
    ri_config_free(c);
    CHECK_INT(n, 2);
    CHECK(google);
    CHECK_INT(json, 1);
    c = ACCEPTED("ri.cfg", "role = \"edge\";\nlog_format = \"text\";\n" PLUGINS "edge = {\n"
                 EDGE_FIELDS "  stun_servers = [ \"[2001:db8::1]:3478\", \"s.example:19302\" ];\n"
                 "};\n");
    if (!c)
        return;
    n = c->n_stun_servers;
    int v6 = n == 2 && strcmp(c->stun_servers[0], "[2001:db8::1]:3478") == 0;
    json = c->log_json;
    ri_config_free(c);
    CHECK(v6);
    CHECK_INT(json, 0);
    c = ACCEPTED("ri.cfg", "role = \"edge\";\n" PLUGINS "edge = {\n" EDGE_FIELDS
                 "  stun_servers = [];\n};\n");
    if (!c)
        return;
    n = c->n_stun_servers;
    ri_config_free(c);
    CHECK_INT(n, 0);
    CHECK_REFUSED("role = \"edge\";\n" PLUGINS "edge = {\n" EDGE_FIELDS
                  "  stun_servers = [ \"no-port\" ]; #<\n};\n", "host:port");
    CHECK_REFUSED("role = \"edge\";\n" PLUGINS "edge = {\n" EDGE_FIELDS
                  "  stun_servers = \"s.example:3478\"; #<\n};\n", "must be a list");
    CHECK_REFUSED("role = \"edge\";\nlog_format = \"xml\"; #<\n" PLUGINS "edge = {\n"
                  EDGE_FIELDS "};\n", "log_format");
}

#define LANES_EDGE "  hub_host = \"h1\";\n  hub_port = 1;\n  edge_id = \"e1\";\n" \
                    "  secret = \"0123456789abcdef\";\n"

TEST(config_lanes_and_hubs_checked)
{
    CHECK_REFUSED("role = \"edge\";\n" PLUGINS "edge = {\n" LANES_EDGE
                  "  lanes = 9; #<\n};\n", "'lanes' = 9 is above 'lanes_max' (8)");
    CHECK_REFUSED("role = \"edge\";\n" PLUGINS "edge = {\n" LANES_EDGE
                  "  lanes = 0; #<\n};\n", "out of range 1-32");
    CHECK_REFUSED("role = \"edge\";\n" PLUGINS "edge = {\n" LANES_EDGE
                  "  hubs = [ \"h2\" ]; #<\n};\n", "'hubs' entries are \"host:port\"");
    CHECK_REFUSED("role = \"edge\";\n" PLUGINS "edge = {\n" LANES_EDGE
                  "  hubs = [ \"h2:2\", \"h3:3\" ];\n  lanes = 2; #<\n};\n",
                  "below the number of hubs (3)");
    CHECK_REFUSED("role = \"hub\";\n" PLUGINS
                  "hub = {\n  listen = \"0.0.0.0:8443\";\n  max_lanes_per_edge = 0; #<\n};\n",
                  "out of range 1-256");
    CHECK_REFUSED("role = \"hub\";\n" PLUGINS
                  "hub = {\n  listen = \"0.0.0.0:8443\";\n  offer_lanes = 1; #<\n};\n",
                  "'offer_lanes' must be true or false");
}
