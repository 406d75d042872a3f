/* main.c -- the unit-test runner.
 *
 *   RI_BUILD=<build> <build>/unit-tests [SUBSTRING]
 *
 * Runs every test (or those whose names contain SUBSTRING) in the order of
 * the TESTS table below, printing one line per test:
 *   PASS <name>
 *   FAIL <name>: <file>:<line>: <what>
 * and last "N passed, M failed". Exits 0 only when nothing failed.
 *
 * Environment:
 *   RI_BUILD  the build folder holding plugins/ and test-plugins/ (the .so files)
 *             (default "build", relative to the current folder). `make unit`
 *             sets it; a SAN=1 build runs with RI_BUILD=build/san.
 *   RI_SRC    the source tree, for conf/ and the out-of-tree plugin
 *             build (default: the folder make ran in, compiled in).
 *   TMPDIR    where each test gets its private folder (default /tmp).
 *
 * A new test: write TEST(name) { ... } in a tests/unit/t_*.c file (a new
 * file is picked up by the Makefile's wildcard); defining it registers it.
 */
#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ev.h>

#include "log.h"
#include "t.h"

#ifndef RI_SRCDIR
#define RI_SRCDIR "."
#endif

static struct t_case *cases, **cases_tail = &cases;
static size_t n_cases;

void t_register(struct t_case *c)
{
    c->next = NULL;
    *cases_tail = c;
    cases_tail = &c->next;
    n_cases++;
}

/* ---- failure recording ---------------------------------------------------- */

static int failed;
static char failure[1024];

int t_fail_at(const char *file, int line, const char *fmt, ...)
{
    if (failed++)
        return -1; /* the first failure tells the story */
    int n = snprintf(failure, sizeof failure, "%s:%d: ", file, line);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(failure + n, sizeof failure - (size_t)n, fmt, ap);
    va_end(ap);
    for (char *p = failure; *p; p++) /* one line per test */
        if (*p == '\n' || *p == '\r')
            *p = ' ';
    return -1;
}

int t_failed(void) { return failed != 0; }

/* ---- folders ------------------------------------------------------------ */

const char *t_build_dir(void)
{
    static char dir[PATH_MAX];
    if (!dir[0]) {
        const char *b = getenv("RI_BUILD");
        if (!b || !*b)
            b = "build";
        if (!realpath(b, dir))
            snprintf(dir, sizeof dir, "%s", b); /* missing: tests say so by path */
    }
    return dir;
}

const char *t_src_dir(void)
{
    const char *s = getenv("RI_SRC");
    return s && *s ? s : RI_SRCDIR;
}

static char tmpdir[PATH_MAX + 32];

const char *t_tmpdir(void)
{
    if (!tmpdir[0]) {
        const char *base = getenv("TMPDIR");
        char resolved[PATH_MAX];
        if (!base || !*base || !realpath(base, resolved))
            snprintf(resolved, sizeof resolved, "/tmp");
        snprintf(tmpdir, sizeof tmpdir, "%s/ri-unit-XXXXXX", resolved);
        if (!mkdtemp(tmpdir)) {
            fprintf(stderr, "unit-tests: mkdtemp %s: %s\n", tmpdir, strerror(errno));
            exit(2);
        }
    }
    return tmpdir;
}

void t_path(char *out, size_t cap, const char *name)
{
    snprintf(out, cap, "%s/%s", t_tmpdir(), name);
}

int t_write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    size_t n = strlen(text);
    int ok = fwrite(text, 1, n, f) == n;
    return fclose(f) == 0 && ok ? 0 : -1;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    remove(path); /* best effort */
    return 0;
}

static void tmpdir_remove(void)
{
    if (tmpdir[0])
        nftw(tmpdir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    tmpdir[0] = '\0';
}

/* ---- a loop ----------------------------------------------------------------- */

static struct ev_loop *loop;

struct ev_loop *t_loop(void)
{
    if (!loop)
        loop = ev_loop_new(EVFLAG_AUTO);
    return loop;
}

/* ---- PRNG ----------------------------------------------------------------- */

static uint64_t rng = 1;

void t_seed(uint64_t seed) { rng = seed * 0x9e3779b97f4a7c15ull | 1; }

uint32_t t_rand(void)
{
    rng ^= rng >> 12;
    rng ^= rng << 25;
    rng ^= rng >> 27;
    return (uint32_t)((rng * 0x2545f4914f6cdd1dull) >> 32);
}

void t_rand_bytes(void *buf, size_t n)
{
    uint8_t *p = buf;
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)t_rand();
}

/* ---- runner ----------------------------------------------------------------- */

int main(int argc, char **argv)
{
    const char *filter = argc > 1 ? argv[1] : NULL;
    size_t passed = 0, nfailed = 0;
    setvbuf(stdout, NULL, _IOLBF, 0);
    signal(SIGPIPE, SIG_IGN); /* as in ri-core: a closed socket is an error code */
    ri_log_level = RI_LOG_ERROR; /* plugin and core chatter off */
    for (struct t_case *c = cases; c; c = c->next) {
        if (filter && !strstr(c->name, filter))
            continue;
        failed = 0;
        failure[0] = '\0';
        t_seed(0);
        c->fn();
        tmpdir_remove();
        if (failed) {
            printf("FAIL %s: %s\n", c->name, failure);
            nfailed++;
        } else {
            printf("PASS %s\n", c->name);
            passed++;
        }
    }
    if (loop)
        ev_loop_destroy(loop);
    if (filter && passed + nfailed == 0)
        fprintf(stderr, "unit-tests: no test name contains \"%s\"\n", filter);
    printf("%zu passed, %zu failed\n", passed, nfailed);
    return nfailed ? 1 : 0;
}
