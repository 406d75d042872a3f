/* fdlimit.h -- how close the process is to its open-file limit, judged
 * from the descriptor a new client (edge) or upstream (hub) connection got.
 *
 * POSIX hands out the lowest free descriptor, so a new descriptor n means
 * 0..n-1 are all in use: n + 1 is a lower bound of what is open, found
 * without a system call. Past 90 % of RLIMIT_NOFILE the role logs one
 * warning naming the figures (again only after it fell below 80 % and at
 * most once a minute); from `limit - reserve` on it refuses the connection
 * (the caller resets it), so the descriptors the role itself needs -- a
 * reconnect to the hub, a listener for a newly assigned port, the control
 * socket, a log file -- stay free and the process never runs into EMFILE
 * with a listener that stays readable. Pure apart from getrlimit(). */
#ifndef RI_FDLIMIT_H
#define RI_FDLIMIT_H

#include <stdint.h>

#include "ratelimit.h"

#define RI_FDLIMIT_WARN_PCT 90   /* the near-limit warning */
#define RI_FDLIMIT_REARM_PCT 80  /* below this the warning may come again */
#define RI_FDLIMIT_WARN_GAP_NS (60ull * 1000000000ull)
/* Below this limit nothing is reserved or refused (a process that small
 * has no descriptors to spare): running out pauses the listener instead,
 * as accept() failing with EMFILE always does. */
#define RI_FDLIMIT_MIN 64

struct ri_fdlimit {
    uint64_t limit;      /* the soft RLIMIT_NOFILE; 0: none, or below RI_FDLIMIT_MIN (nothing refused) */
    uint64_t warn_at, rearm_at, refuse_at;
    int warned;          /* the warning was given since the count last fell below rearm_at */
    uint64_t last_warn_ns;
    uint64_t refused;    /* connections refused for the limit */
    struct ri_ratelimit rl; /* the per-refusal lines */
};

/* Reads the limit now (after ri_nofile_raise). */
void ri_fdlimit_init(struct ri_fdlimit *f);
/* Sets the limit by hand (tests). */
void ri_fdlimit_set(struct ri_fdlimit *f, uint64_t limit);
/* Descriptors kept free for the role itself at a given limit: 1/32 of it,
 * at least 8 and at most 64. */
uint64_t ri_fdlimit_reserve(uint64_t limit);

enum { RI_FDLIMIT_OK = 0, RI_FDLIMIT_WARN = 1, RI_FDLIMIT_REFUSE = -1 };
/* A new connection got descriptor fd. OK; WARN (also OK) when the caller
 * should log the near-limit warning now (ri_fdlimit_warn_text says it);
 * REFUSE when it must refuse the connection (counted in f->refused). */
int ri_fdlimit_check(struct ri_fdlimit *f, int fd, uint64_t now_ns);
/* "231 of 256 descriptors in use (90 % of the open-file limit) ..." */
void ri_fdlimit_warn_text(const struct ri_fdlimit *f, int fd, const char *what, char *buf,
                          unsigned cap);

#endif
