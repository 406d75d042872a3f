/* process.c -- descriptor limit and privilege drop; see process.h. */
#include "process.h"

#include <errno.h>
#include <grp.h>
#include <linux/capability.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "events.h"

#include "log.h"

void ri_nofile_raise(uint64_t need, const char *what)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        return;
    if (rl.rlim_cur < rl.rlim_max) {
        rlim_t was = rl.rlim_cur;
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) == 0)
            log_info("open-file limit raised from %llu to %llu", (unsigned long long)was,
                     (unsigned long long)rl.rlim_cur);
        else
            rl.rlim_cur = was;
    }
    if (rl.rlim_cur != RLIM_INFINITY && (uint64_t)rl.rlim_cur < need)
        log_warn("the open-file limit (%llu) cannot cover %s (about %llu descriptors): "
                 "streams past it fail with \"Too many open files\"; raise it (systemd: "
                 "LimitNOFILE=, shell: ulimit -Hn) or lower max_streams",
                 (unsigned long long)rl.rlim_cur, what, (unsigned long long)need);
}

static int keep_bind_cap(char *err, size_t errlen)
{
    struct __user_cap_header_struct h = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
    struct __user_cap_data_struct d[2];
    memset(d, 0, sizeof d);
    d[0].effective = d[0].permitted = 1u << CAP_NET_BIND_SERVICE;
    if (syscall(SYS_capset, &h, d) < 0) {
        snprintf(err, errlen, "keeping CAP_NET_BIND_SERVICE: %s", strerror(errno));
        return -1;
    }
    return 0;
}

int ri_user_check(const char *user, char *err, size_t errlen)
{
    errno = 0;
    struct passwd *pw = getpwnam(user);
    if (!pw) {
        snprintf(err, errlen, "user \"%s\": %s", user, errno ? strerror(errno) : "no such user");
        return -1;
    }
    if (geteuid() != 0 && geteuid() != pw->pw_uid) {
        snprintf(err, errlen, "user = \"%s\" needs ri-core started as root (it runs as uid %u)",
                 user, (unsigned)geteuid());
        return -1;
    }
    return 0;
}

int ri_drop_privileges(const char *user, char *err, size_t errlen)
{
    errno = 0;
    struct passwd *pw = getpwnam(user);
    if (!pw) {
        snprintf(err, errlen, "user \"%s\": %s", user, errno ? strerror(errno) : "no such user");
        return -1;
    }
    if (geteuid() == pw->pw_uid && getuid() == pw->pw_uid)
        return 0; /* already that user: nothing to drop */
    if (geteuid() != 0) {
        snprintf(err, errlen, "user = \"%s\" needs ri-core started as root (it runs as uid %u)",
                 user, (unsigned)geteuid());
        return -1;
    }
    if (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0 || initgroups(pw->pw_name, pw->pw_gid) < 0 ||
        setgid(pw->pw_gid) < 0 || setuid(pw->pw_uid) < 0) {
        snprintf(err, errlen, "becoming user \"%s\": %s", user, strerror(errno));
        return -1;
    }
    prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0);
    if (keep_bind_cap(err, errlen) < 0)
        return -1;
    if (setuid(0) == 0) { /* must be impossible now */
        snprintf(err, errlen, "could become root again after dropping to \"%s\"", user);
        return -1;
    }
    log_info("running as user %s (uid %u, gid %u), keeping only CAP_NET_BIND_SERVICE", user,
             (unsigned)pw->pw_uid, (unsigned)pw->pw_gid);
    return 0;
}

int ri_sd_notify(const char *state)
{
    const char *path = getenv("NOTIFY_SOCKET");
    if (!path || !path[0])
        return 0;
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    size_t plen = strlen(path);
    if ((path[0] != '/' && path[0] != '@') || plen >= sizeof sun.sun_path) {
        log_debug("sd_notify: NOTIFY_SOCKET %s is not a Unix socket path", path);
        return -1;
    }
    memcpy(sun.sun_path, path, plen);
    if (path[0] == '@')
        sun.sun_path[0] = '\0'; /* abstract namespace */
    char msg[256];
    if (strcmp(state, "RELOADING=1") == 0) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        snprintf(msg, sizeof msg, "RELOADING=1\nMONOTONIC_USEC=%llu",
                 (unsigned long long)ts.tv_sec * 1000000ull + (unsigned long long)ts.tv_nsec / 1000);
    } else {
        snprintf(msg, sizeof msg, "%s", state);
    }
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        log_debug("sd_notify: socket: %s", strerror(errno));
        return -1;
    }
    socklen_t sl = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + plen);
    ssize_t r = sendto(fd, msg, strlen(msg), MSG_NOSIGNAL, (struct sockaddr *)&sun, sl);
    int e = errno;
    close(fd);
    if (r < 0) {
        log_debug("sd_notify: %s: %s", path, strerror(e));
        return -1;
    }
    log_debug("sd_notify: %s", state);
    return 1;
}

void ri_sd_notify_event(void *arg, const struct ri_event *ev)
{
    if (ev->type == RI_EVT_RELOAD_OK || ev->type == RI_EVT_RELOAD_FAILED)
        ri_sd_notify("READY=1");
}
