/* handover.c -- listening sockets from a running ri-core to its successor
 * (see handover.h for the exchange). */
#include "handover.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <sys/un.h>
#include <unistd.h>

#include "log.h"
#include "token.h"
#include "role.h"

#define MSG_MAX 65536
#define COMMIT_WAIT_SECS 60.0 /* a taker that never commits is dropped */
#define FETCH_WAIT_SECS 10

static const char *role_name(int role) { return role == RI_ROLE_HUB ? "hub" : "edge"; }

static int make_addr(const char *path, struct sockaddr_un *sa)
{
    memset(sa, 0, sizeof *sa);
    sa->sun_family = AF_UNIX;
    if (strlen(path) >= sizeof sa->sun_path)
        return -1;
    memcpy(sa->sun_path, path, strlen(path) + 1);
    return 0;
}

/* One message with up to RI_HANDOVER_BATCH fds. */
static int send_msg(int fd, json_t *msg, const int *fds, size_t n)
{
    char *text = json_dumps(msg, JSON_COMPACT);
    if (!text)
        return -1;
    struct iovec iov = {.iov_base = text, .iov_len = strlen(text)};
    union {
        char buf[CMSG_SPACE(sizeof(int) * RI_HANDOVER_BATCH)];
        struct cmsghdr align;
    } u;
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
    if (n) {
        memset(&u, 0, sizeof u);
        mh.msg_control = u.buf;
        mh.msg_controllen = CMSG_SPACE(sizeof(int) * n);
        struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int) * n);
        memcpy(CMSG_DATA(c), fds, sizeof(int) * n);
    }
    ssize_t k;
    do
        k = sendmsg(fd, &mh, MSG_NOSIGNAL);
    while (k < 0 && errno == EINTR);
    ri_json_free(text); /* jansson's allocator (token.c) */
    return k == (ssize_t)iov.iov_len ? 0 : -1;
}

/* One message: its JSON (a reference) and the fds that came with it. */
static json_t *recv_msg(int fd, int *fds, size_t *n, char *err, size_t errlen)
{
    char *buf = malloc(MSG_MAX);
    union {
        char b[CMSG_SPACE(sizeof(int) * RI_HANDOVER_BATCH)];
        struct cmsghdr align;
    } u;
    if (!buf) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    struct iovec iov = {.iov_base = buf, .iov_len = MSG_MAX - 1};
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.b,
                        .msg_controllen = sizeof u.b};
    ssize_t k;
    do
        k = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC);
    while (k < 0 && errno == EINTR);
    if (n)
        *n = 0;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c))
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
            size_t m = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
            int got[RI_HANDOVER_BATCH];
            memcpy(got, CMSG_DATA(c), m * sizeof(int));
            for (size_t i = 0; i < m; i++) {
                if (fds && n && *n < RI_HANDOVER_BATCH)
                    fds[(*n)++] = got[i];
                else
                    close(got[i]);
            }
        }
    if (k <= 0) {
        snprintf(err, errlen, "%s", k == 0 ? "the other process closed the connection"
                                           : strerror(errno));
        free(buf);
        return NULL;
    }
    if (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) {
        snprintf(err, errlen, "message too long");
        free(buf);
        return NULL;
    }
    buf[k] = 0;
    json_error_t je;
    json_t *j = json_loads(buf, 0, &je);
    free(buf);
    if (!j || !json_is_object(j)) {
        snprintf(err, errlen, "not a JSON object: %s", j ? "" : je.text);
        json_decref(j);
        return NULL;
    }
    return j;
}

/* ---- the running process ---------------------------------------------------- */
struct ri_handover_srv {
    struct ev_loop *loop;
    char path[108];
    int role;
    int lfd, cfd;
    int asked; /* the taker's request came */
    ev_io lio, cio;
    ev_timer wait;
    /* the path's file as we bound it: a successor's rebinding makes a new
     * file, which may reuse the inode number on some file systems (ext4),
     * so its change time is compared too */
    dev_t dev;
    ino_t ino;
    struct timespec ctim;
    int handed; /* a successor committed: the path is its now */
    const struct ri_handover_ops *ops;
    void *arg;
};

static void drop_conn(struct ri_handover_srv *s)
{
    if (s->cfd < 0)
        return;
    ev_io_stop(s->loop, &s->cio);
    ev_timer_stop(s->loop, &s->wait);
    close(s->cfd);
    s->cfd = -1;
}

static void reply_error(int fd, const char *msg)
{
    json_t *j = json_pack("{sbss}", "ok", 0, "error", msg);
    if (j)
        send_msg(fd, j, NULL, 0);
    json_decref(j);
}

/* The request: answer with every socket, in batches. */
static int give(struct ri_handover_srv *s, json_t *req)
{
    const char *cmd = json_string_value(json_object_get(req, "cmd"));
    const char *role = json_string_value(json_object_get(req, "role"));
    if (!cmd || strcmp(cmd, "handover") != 0) {
        reply_error(s->cfd, "expected {\"cmd\":\"handover\",...}");
        return -1;
    }
    if (!role || strcmp(role, role_name(s->role)) != 0) {
        char m[96];
        snprintf(m, sizeof m, "this process is a %s, not a %s", role_name(s->role),
                 role ? role : "?");
        reply_error(s->cfd, m);
        return -1;
    }
    struct ri_fdpool pool = {0};
    json_t *info = json_object();
    s->ops->give(s->arg, &pool, info);
    size_t i = 0;
    int rc = 0;
    do {
        json_t *list = json_array();
        int fds[RI_HANDOVER_BATCH];
        size_t n = 0;
        for (; i < pool.n && n < RI_HANDOVER_BATCH; i++, n++) {
            json_array_append_new(list, json_pack("{sssi}", "addr", pool.e[i].addr, "port",
                                                  (int)pool.e[i].port));
            fds[n] = pool.e[i].fd;
        }
        json_t *m = json_pack("{sbsssOsOsb}", "ok", 1, "role", role_name(s->role), "info", info,
                              "fds", list, "more", i < pool.n);
        json_decref(list);
        if (!m || send_msg(s->cfd, m, fds, n) < 0)
            rc = -1;
        json_decref(m);
    } while (rc == 0 && i < pool.n);
    json_decref(info);
    size_t given = pool.n;
    ri_fdpool_free(&pool); /* our duplicates: the taker has its own now */
    if (rc == 0)
        log_info("handover: gave %zu listening socket%s to process %lld; waiting for it to "
                 "take over", given, given == 1 ? "" : "s",
                 (long long)json_integer_value(json_object_get(req, "pid")));
    return rc;
}

static void conn_cb(EV_P_ ev_io *w, int revents)
{
    struct ri_handover_srv *s = w->data;
    char err[200];
    json_t *m = recv_msg(s->cfd, NULL, NULL, err, sizeof err);
    if (!m) {
        log_warn("handover: the new process went away before taking over (%s): serving on",
                 err);
        drop_conn(s);
        return;
    }
    const char *cmd = json_string_value(json_object_get(m, "cmd"));
    if (!s->asked) { /* first message: the request */
        s->asked = 1;
        if (give(s, m) < 0)
            drop_conn(s);
        json_decref(m);
        return;
    }
    int commit = cmd && strcmp(cmd, "commit") == 0;
    json_decref(m);
    if (commit) {
        json_t *ok = json_pack("{sb}", "ok", 1);
        send_msg(s->cfd, ok, NULL, 0);
        json_decref(ok);
        drop_conn(s);
        log_info("handover: the new process serves now: this one stops using its listening "
                 "sockets and drains");
        s->handed = 1;
        s->ops->taken(s->arg); /* may close s */
        return;
    }
    reply_error(s->cfd, "expected {\"cmd\":\"commit\"}");
    drop_conn(s);
}

static void wait_cb(EV_P_ ev_timer *w, int revents)
{
    struct ri_handover_srv *s = w->data;
    log_warn("handover: the new process did not take over within %.0f s: serving on",
             COMMIT_WAIT_SECS);
    drop_conn(s);
}

static void accept_cb(EV_P_ ev_io *w, int revents)
{
    struct ri_handover_srv *s = w->data;
    int c = accept4(s->lfd, NULL, NULL, SOCK_CLOEXEC);
    if (c < 0)
        return;
    struct ucred cr;
    socklen_t cl = sizeof cr;
    if (getsockopt(c, SOL_SOCKET, SO_PEERCRED, &cr, &cl) < 0 ||
        (cr.uid != getuid() && cr.uid != 0)) {
        log_warn("handover: refused a connection from uid %d (not this process's user)",
                 (int)cr.uid);
        close(c);
        return;
    }
    if (s->cfd >= 0) { /* one taker at a time */
        reply_error(c, "another process is taking over already");
        close(c);
        return;
    }
    s->cfd = c;
    s->asked = 0;
    ev_io_init(&s->cio, conn_cb, c, EV_READ);
    s->cio.data = s;
    ev_io_start(s->loop, &s->cio);
    ev_timer_init(&s->wait, wait_cb, COMMIT_WAIT_SECS, 0);
    s->wait.data = s;
    ev_timer_start(s->loop, &s->wait);
}

struct ri_handover_srv *ri_handover_serve(struct ev_loop *loop, const char *path, int role,
                                          const struct ri_handover_ops *ops, void *arg,
                                          char *err, size_t errlen)
{
    struct sockaddr_un sa;
    if (make_addr(path, &sa) < 0) {
        snprintf(err, errlen, "handover_socket %s: path too long", path);
        return NULL;
    }
    struct ri_handover_srv *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    s->loop = loop;
    s->role = role;
    s->ops = ops;
    s->arg = arg;
    s->cfd = -1;
    snprintf(s->path, sizeof s->path, "%s", path);
    s->lfd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    unlink(path); /* a stale file, or the path of the process we took over from */
    mode_t old = umask(077);
    int rc = s->lfd < 0 ? -1 : bind(s->lfd, (struct sockaddr *)&sa, sizeof sa);
    umask(old);
    struct stat st;
    if (rc < 0 || listen(s->lfd, 4) < 0 || stat(path, &st) < 0) {
        snprintf(err, errlen, "handover_socket %s: %s", path, strerror(errno));
        if (s->lfd >= 0)
            close(s->lfd);
        free(s);
        return NULL;
    }
    s->dev = st.st_dev;
    s->ino = st.st_ino;
    s->ctim = st.st_ctim;
    ev_io_init(&s->lio, accept_cb, s->lfd, EV_READ);
    s->lio.data = s;
    ev_io_start(loop, &s->lio);
    return s;
}

void ri_handover_close(struct ri_handover_srv *s)
{
    if (!s)
        return;
    drop_conn(s);
    ev_io_stop(s->loop, &s->lio);
    close(s->lfd);
    struct stat st; /* remove the path only if a successor has not rebound it */
    if (!s->handed && stat(s->path, &st) == 0 && st.st_dev == s->dev && st.st_ino == s->ino &&
        st.st_ctim.tv_sec == s->ctim.tv_sec && st.st_ctim.tv_nsec == s->ctim.tv_nsec)
        unlink(s->path);
    free(s);
}

/* ---- the new process -------------------------------------------------------- */
int ri_handover_fetch(const char *path, int role, struct ri_fdpool *pool, json_t **info,
                      int *conn, char *err, size_t errlen)
{
    struct sockaddr_un sa;
    *info = NULL;
    *conn = -1;
    if (make_addr(path, &sa) < 0) {
        snprintf(err, errlen, "handover_socket %s: path too long", path);
        return -1;
    }
    int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errlen, "socket: %s", strerror(errno));
        return -1;
    }
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
        int e = errno;
        close(fd);
        if (e == ENOENT || e == ECONNREFUSED)
            return 0; /* nobody there (a stale file is replaced when we serve) */
        snprintf(err, errlen, "handover_socket %s: %s", path, strerror(e));
        return -1;
    }
    struct timeval tv = {FETCH_WAIT_SECS, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    json_t *req = json_pack("{sssssI}", "cmd", "handover", "role", role_name(role), "pid",
                            (json_int_t)getpid());
    int rc = req ? send_msg(fd, req, NULL, 0) : -1;
    json_decref(req);
    if (rc < 0) {
        snprintf(err, errlen, "handover_socket %s: cannot send the request", path);
        close(fd);
        return -1;
    }
    for (;;) {
        int fds[RI_HANDOVER_BATCH];
        size_t n = 0;
        json_t *m = recv_msg(fd, fds, &n, err, errlen);
        if (!m)
            goto fail;
        json_t *list = json_object_get(m, "fds");
        if (!json_is_true(json_object_get(m, "ok"))) {
            const char *e = json_string_value(json_object_get(m, "error"));
            snprintf(err, errlen, "the running process refused: %s", e ? e : "?");
            for (size_t i = 0; i < n; i++)
                close(fds[i]);
            json_decref(m);
            goto fail;
        }
        if (!json_is_array(list) || json_array_size(list) != n) {
            snprintf(err, errlen, "the running process sent %zu sockets for %zu names", n,
                     json_array_size(list));
            for (size_t i = 0; i < n; i++)
                close(fds[i]);
            json_decref(m);
            goto fail;
        }
        for (size_t i = 0; i < n; i++) {
            json_t *e = json_array_get(list, i);
            const char *a = json_string_value(json_object_get(e, "addr"));
            json_int_t p = json_integer_value(json_object_get(e, "port"));
            if (!a || p < 0 || p > 65535)
                close(fds[i]);
            else
                ri_fdpool_put(pool, a, (uint16_t)p, fds[i]);
        }
        if (!*info) {
            *info = json_object_get(m, "info");
            json_incref(*info);
        }
        int more = json_is_true(json_object_get(m, "more"));
        json_decref(m);
        if (!more)
            break;
    }
    *conn = fd;
    return 1;
fail:
    ri_fdpool_close_rest(pool, NULL, NULL);
    json_decref(*info);
    *info = NULL;
    close(fd);
    return -1;
}

int ri_handover_commit(int conn, char *err, size_t errlen)
{
    json_t *m = json_pack("{ss}", "cmd", "commit");
    int rc = m ? send_msg(conn, m, NULL, 0) : -1;
    json_decref(m);
    json_t *r = rc == 0 ? recv_msg(conn, NULL, NULL, err, errlen) : NULL;
    if (rc < 0)
        snprintf(err, errlen, "cannot send the commit");
    else if (r && !json_is_true(json_object_get(r, "ok")))
        snprintf(err, errlen, "the running process did not confirm");
    int ok = r && json_is_true(json_object_get(r, "ok"));
    json_decref(r);
    close(conn);
    return ok ? 0 : -1;
}
