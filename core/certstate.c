/* certstate.c -- the hub's self-signed certificate kept in state_dir. */
#include "certstate.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

static int paths(const char *dir, char *crt, char *key, char *err, size_t errlen)
{
    if (snprintf(crt, PATH_MAX, "%s/%s", dir, RI_CERTSTATE_CERT) >= PATH_MAX ||
        snprintf(key, PATH_MAX, "%s/%s", dir, RI_CERTSTATE_KEY) >= PATH_MAX) {
        snprintf(err, errlen, "state_dir %s: path too long", dir);
        return -1;
    }
    return 0;
}

static struct ri_tls_creds *load(const char *crt, const char *key, char *err, size_t errlen)
{
    struct ri_tls_creds *c = ri_tls_server_creds(crt, key, NULL, err, errlen);
    if (c)
        c->origin = RI_TLS_FROM_STATE;
    return c;
}

/* Makes dir and its missing parents (0755; dir itself 0700). */
static int make_dirs(const char *dir, char *err, size_t errlen)
{
    char p[PATH_MAX];
    size_t n = strlen(dir);
    if (n == 0 || n >= sizeof p) {
        snprintf(err, errlen, "state_dir '%s': bad path", dir);
        return -1;
    }
    memcpy(p, dir, n + 1);
    while (n > 1 && p[n - 1] == '/')
        p[--n] = '\0';
    for (char *s = p + 1; *s; s++) {
        if (*s != '/')
            continue;
        *s = '\0';
        if (mkdir(p, 0755) < 0 && errno != EEXIST) {
            snprintf(err, errlen, "cannot create %s: %s", p, strerror(errno));
            return -1;
        }
        *s = '/';
    }
    if (mkdir(p, 0700) < 0 && errno != EEXIST) {
        snprintf(err, errlen, "cannot create %s: %s", p, strerror(errno));
        return -1;
    }
    struct stat st;
    if (stat(p, &st) < 0 || !S_ISDIR(st.st_mode)) {
        snprintf(err, errlen, "%s is not a folder", p);
        return -1;
    }
    return 0;
}

/* Writes data to a new file beside path, then renames it over path: a
 * reader sees the old file or the whole new one, never a part. */
static int save(const char *dir, const char *path, const gnutls_datum_t *data, mode_t mode,
                char *err, size_t errlen)
{
    char tmp[PATH_MAX];
    if (snprintf(tmp, sizeof tmp, "%s/.ri-new-XXXXXX", dir) >= (int)sizeof tmp) {
        snprintf(err, errlen, "state_dir %s: path too long", dir);
        return -1;
    }
    int fd = mkstemp(tmp); /* 0600 */
    if (fd < 0) {
        snprintf(err, errlen, "cannot write in %s: %s", dir, strerror(errno));
        return -1;
    }
    size_t off = 0;
    int rc = fchmod(fd, mode);
    while (rc == 0 && off < data->size) {
        ssize_t w = write(fd, data->data + off, data->size - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            rc = -1;
        else
            off += (size_t)w;
    }
    if (rc == 0)
        rc = fsync(fd);
    if (close(fd) < 0)
        rc = -1;
    if (rc == 0)
        rc = rename(tmp, path);
    if (rc < 0) {
        snprintf(err, errlen, "cannot write %s: %s", path, strerror(errno));
        unlink(tmp);
        return -1;
    }
    return 0;
}

struct ri_tls_creds *ri_certstate_load(const char *dir, int *made, char *err, size_t errlen)
{
    char crt[PATH_MAX], key[PATH_MAX];
    *made = 0;
    if (paths(dir, crt, key, err, errlen) < 0)
        return NULL;
    if (access(crt, F_OK) == 0)
        return load(crt, key, err, errlen);
    if (errno != ENOENT) {
        snprintf(err, errlen, "cannot use %s: %s", crt, strerror(errno));
        return NULL;
    }
    if (make_dirs(dir, err, errlen) < 0)
        return NULL;
    /* Two hubs sharing the folder must not make two certificates: the
     * first takes a lock on the folder, the second then loads its files. */
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0 || flock(dfd, LOCK_EX) < 0) {
        snprintf(err, errlen, "cannot lock %s: %s", dir, strerror(errno));
        if (dfd >= 0)
            close(dfd);
        return NULL;
    }
    struct ri_tls_creds *c = NULL;
    if (access(crt, F_OK) == 0) {
        c = load(crt, key, err, errlen);
        goto out;
    }
    gnutls_datum_t cd, kd;
    if (ri_tls_selfsigned_pem(&cd, &kd, err, errlen) < 0)
        goto out;
    /* the key first: a certificate on disk always has its key beside it */
    if (save(dir, key, &kd, 0600, err, errlen) == 0 &&
        save(dir, crt, &cd, 0644, err, errlen) == 0) {
        fsync(dfd);
        c = ri_tls_server_creds_mem(&cd, &kd, crt, key, NULL, err, errlen);
        if (c) {
            c->origin = RI_TLS_FROM_STATE;
            *made = 1;
        }
    }
    ri_tls_pem_free(&cd);
    ri_tls_pem_free(&kd);
out:
    flock(dfd, LOCK_UN);
    close(dfd);
    return c;
}

int ri_certstate_check(const char *dir, char *err, size_t errlen)
{
    char crt[PATH_MAX], key[PATH_MAX];
    if (paths(dir, crt, key, err, errlen) < 0)
        return -1;
    if (access(crt, F_OK) == 0) {
        struct ri_tls_creds *c = load(crt, key, err, errlen);
        ri_tls_creds_unref(c);
        return c ? 0 : -1;
    }
    if (errno != ENOENT) {
        snprintf(err, errlen, "cannot use %s: %s", crt, strerror(errno));
        return -1;
    }
    /* nothing saved yet: the folder, or the nearest folder above it that
     * exists, must let us write */
    char p[PATH_MAX];
    snprintf(p, sizeof p, "%s", dir);
    for (;;) {
        struct stat st;
        if (stat(p, &st) == 0) {
            if (!S_ISDIR(st.st_mode)) {
                snprintf(err, errlen, "%s is not a folder", p);
                return -1;
            }
            if (access(p, W_OK | X_OK) < 0) {
                snprintf(err, errlen, "cannot write in %s: %s", p, strerror(errno));
                return -1;
            }
            return 0;
        }
        if (errno != ENOENT) {
            snprintf(err, errlen, "cannot use %s: %s", p, strerror(errno));
            return -1;
        }
        char *slash = strrchr(p, '/');
        if (!slash) /* a relative path: the current folder */
            snprintf(p, sizeof p, ".");
        else if (slash == p)
            p[1] = '\0';
        else
            *slash = '\0';
    }
}
