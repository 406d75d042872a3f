/* fdlimit.c -- the open-file limit as new connections approach it; see fdlimit.h. */
#include "fdlimit.h"

#include <stdio.h>
#include <string.h>
#include <sys/resource.h>

uint64_t ri_fdlimit_reserve(uint64_t limit)
{
    uint64_t r = limit / 32;
    return r < 8 ? 8 : r > 64 ? 64 : r;
}

void ri_fdlimit_set(struct ri_fdlimit *f, uint64_t limit)
{
    memset(f, 0, sizeof *f);
    f->rl = (struct ri_ratelimit)RI_RATELIMIT_INIT(5000000000ull, 1);
    if (limit < RI_FDLIMIT_MIN || limit > (1ull << 40))
        return; /* unlimited, or too small to reserve from: the accept pause alone */
    f->limit = limit;
    f->warn_at = limit * RI_FDLIMIT_WARN_PCT / 100;
    f->rearm_at = limit * RI_FDLIMIT_REARM_PCT / 100;
    f->refuse_at = limit - ri_fdlimit_reserve(limit);
    if (f->warn_at >= f->refuse_at)
        f->warn_at = f->refuse_at - 1;
}

void ri_fdlimit_init(struct ri_fdlimit *f)
{
    struct rlimit rl;
    uint64_t lim = 0;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
        lim = (uint64_t)rl.rlim_cur;
    ri_fdlimit_set(f, lim);
}

int ri_fdlimit_check(struct ri_fdlimit *f, int fd, uint64_t now_ns)
{
    if (!f->limit || fd < 0)
        return RI_FDLIMIT_OK;
    uint64_t used = (uint64_t)fd + 1;
    if (used < f->rearm_at)
        f->warned = 0;
    if (used > f->refuse_at) {
        f->refused++;
        return RI_FDLIMIT_REFUSE;
    }
    if (used >= f->warn_at && !f->warned &&
        (f->last_warn_ns == 0 || now_ns - f->last_warn_ns >= RI_FDLIMIT_WARN_GAP_NS)) {
        f->warned = 1;
        f->last_warn_ns = now_ns;
        return RI_FDLIMIT_WARN;
    }
    return RI_FDLIMIT_OK;
}

void ri_fdlimit_warn_text(const struct ri_fdlimit *f, int fd, const char *what, char *buf,
                          unsigned cap)
{
    snprintf(buf, cap,
             "near the descriptor limit: %llu of %llu descriptors in use (%llu %% of "
             "RLIMIT_NOFILE); from %llu on new %s are refused with a reset; raise the "
             "limit (systemd: LimitNOFILE=, shell: ulimit -Hn) or lower max_streams",
             (unsigned long long)fd + 1, (unsigned long long)f->limit,
             (unsigned long long)(((uint64_t)fd + 1) * 100 + f->limit / 2) / f->limit,
             (unsigned long long)f->refuse_at + 1, what);
}
