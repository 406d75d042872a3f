/* t.h -- a tiny unit-test harness.
 *
 * A test is `TEST(name) { ... }` in any tests/unit/t_NAME.c file. Defining it
 * registers it (a constructor runs before main), so no test can be written
 * and then silently never run. A failed check records "file:line: what" (the
 * first failure of a test wins) and returns from the test function, so the
 * run goes on with the next test. Helpers that check things report with
 * t_fail_at() and return nonzero; the caller then does CHECK(helper(...) == 0)
 * (the helper's message is kept, being first).
 */
#ifndef RI_T_H
#define RI_T_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

struct t_case {
    const char *name;
    void (*fn)(void);
    const char *file;
    struct t_case *next;
};
void t_register(struct t_case *c); /* in definition order within a file */

#define TEST(name)                                                             \
    static void t_##name(void);                                                \
    static struct t_case t_case_##name = {#name, t_##name, __FILE__, 0};       \
    __attribute__((constructor)) static void t_reg_##name(void)                \
    {                                                                          \
        t_register(&t_case_##name);                                            \
    }                                                                          \
    static void t_##name(void)

/* Records a failure (if it is the test's first); returns -1. */
int t_fail_at(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
int t_failed(void); /* 1 once the current test recorded a failure */

#define FAIL(...) do { t_fail_at(__FILE__, __LINE__, __VA_ARGS__); return; } while (0)

#define CHECK(c) do { if (!(c)) FAIL("CHECK(%s)", #c); } while (0)
#define CHECK_MSG(c, ...) do { if (!(c)) FAIL(__VA_ARGS__); } while (0)

#define CHECK_INT(a, b) do {                                                    \
        long long a_ = (long long)(a), b_ = (long long)(b);                     \
        if (a_ != b_) FAIL("%s == %s: %lld != %lld", #a, #b, a_, b_);           \
    } while (0)

#define CHECK_STR(a, b) do {                                                    \
        const char *a_ = (a), *b_ = (b);                                        \
        if (!a_ || !b_ || strcmp(a_, b_) != 0)                                  \
            FAIL("%s == %s: \"%s\" != \"%s\"", #a, #b, a_ ? a_ : "(null)",     \
                 b_ ? b_ : "(null)");                                           \
    } while (0)

/* hay contains needle */
#define CHECK_HAS(hay, needle) do {                                             \
        const char *h_ = (hay), *n_ = (needle);                                 \
        if (!h_ || !strstr(h_, n_))                                             \
            FAIL("%s has \"%s\": got \"%s\"", #hay, n_, h_ ? h_ : "(null)");    \
    } while (0)

#define CHECK_MEM(a, b, n) do {                                                 \
        if (memcmp((a), (b), (n)) != 0) FAIL("%s == %s (%zu bytes)", #a, #b, (size_t)(n)); \
    } while (0)

/* ---- shared helpers (main.c) ------------------------------------------- */

/* The build folder (env RI_BUILD, default "build"), made absolute. */
const char *t_build_dir(void);
/* The source tree (env RI_SRC, default: where make ran). */
const char *t_src_dir(void);
/* A fresh private folder for the current test, removed after it. */
const char *t_tmpdir(void);
/* "<tmpdir>/name" into out. */
void t_path(char *out, size_t cap, const char *name);
/* Writes text to path; 0 ok. */
int t_write_file(const char *path, const char *text);

/* An event loop for tests that need one (created once, never run for long). */
struct ev_loop;
struct ev_loop *t_loop(void);

/* Deterministic PRNG (xorshift64*), so failures reproduce. */
void t_seed(uint64_t seed);
uint32_t t_rand(void);
void t_rand_bytes(void *buf, size_t n);

#endif
