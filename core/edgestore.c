/* edgestore.c -- the edges file (see edgestore.h). */
#include "edgestore.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "edgejson.h"
#include "token.h"

#define EDGES_FILE_MAX (64u << 20) /* a larger file is refused, not read */

static struct ri_edge_set *file_load(struct ri_edge_store *st, char *err, size_t errlen)
{
    struct stat sb;
    if (stat(st->where, &sb) < 0) {
        if (errno == ENOENT)
            return ri_edge_set_new(NULL, 0); /* nothing stored yet */
        snprintf(err, errlen, "%s: %s", st->where, strerror(errno));
        return NULL;
    }
    if ((uint64_t)sb.st_size > EDGES_FILE_MAX) {
        snprintf(err, errlen, "%s: larger than %u MiB", st->where, EDGES_FILE_MAX >> 20);
        return NULL;
    }
    json_error_t je;
    json_t *root = json_load_file(st->where, JSON_REJECT_DUPLICATES, &je);
    if (!root) {
        snprintf(err, errlen, "%s:%d: %s", st->where, je.line, je.text);
        return NULL;
    }
    struct ri_edge_def *defs = NULL;
    size_t n = 0;
    char why[400];
    struct ri_edge_set *s = NULL;
    if (!json_is_object(root) || !json_object_get(root, "edges"))
        snprintf(err, errlen, "%s: expected {\"edges\": [...]}", st->where);
    else if (ri_edges_from_json(json_object_get(root, "edges"), &defs, &n, why, sizeof why) < 0)
        snprintf(err, errlen, "%s: %s", st->where, why);
    else if (!(s = ri_edge_set_new(defs, n)))
        snprintf(err, errlen, "out of memory");
    ri_edge_defs_free(defs, n);
    json_decref(root);
    return s;
}

static int file_save(struct ri_edge_store *st, const struct ri_edge_set *s, char *err,
                     size_t errlen)
{
    json_t *arr = ri_edges_to_json(s ? s->v : NULL, s ? s->n : 0, 1);
    json_t *root = arr ? json_pack("{s:i, s:o}", "version", 1, "edges", arr) : NULL;
    char *text = root ? json_dumps(root, JSON_INDENT(2)) : NULL;
    json_decref(root);
    if (!text) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    size_t len = strlen(text);
    char tmp[4200], dirbuf[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp.XXXXXX", st->where);
    int rc = -1, fd = mkstemp(tmp);
    if (fd < 0) {
        snprintf(err, errlen, "%s: cannot create a temporary file beside it: %s", st->where,
                 strerror(errno));
        goto out;
    }
    const char *what = "fchmod";
    int ok = fchmod(fd, 0600) == 0;
    for (size_t off = 0; ok && off < len;) {
        ssize_t w = write(fd, text + off, len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            what = "write";
            ok = 0;
            break;
        }
        off += (size_t)w;
    }
    if (ok && write(fd, "\n", 1) != 1) {
        what = "write";
        ok = 0;
    }
    if (ok && fsync(fd) < 0) {
        what = "fsync";
        ok = 0;
    }
    int saved = errno;
    close(fd);
    if (ok && rename(tmp, st->where) < 0) {
        saved = errno;
        what = "rename";
        ok = 0;
    }
    if (!ok) {
        snprintf(err, errlen, "%s: %s: %s", st->where, what, strerror(saved));
        unlink(tmp);
        goto out;
    }
    snprintf(dirbuf, sizeof dirbuf, "%s", st->where);
    int dfd = open(dirname(dirbuf), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) { /* the rename itself survives a crash */
        fsync(dfd);
        close(dfd);
    }
    rc = 0;
out:
    memset(text, 0, len);
    ri_json_free(text);
    return rc;
}

static void file_free(struct ri_edge_store *st)
{
    free(st->where);
    free(st);
}

static const struct ri_edge_store_ops file_ops = {
    .name = "file", .load = file_load, .save = file_save, .free = file_free};

struct ri_edge_store *ri_edge_store_file(const char *path)
{
    struct ri_edge_store *st = calloc(1, sizeof *st);
    if (!st || !(st->where = strdup(path))) {
        free(st);
        return NULL;
    }
    st->ops = &file_ops;
    return st;
}
