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
 * A new test: write TEST(name) { ... } in a tests/unit/t_*.c file and add
 * X(name) to TESTS.
 */
#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bq.h"
#include "log.h"
#include "t.h"

#ifndef RI_SRCDIR
#define RI_SRCDIR "."
#endif

#define TESTS(X)                                                                    \
    /* t_b64.c */                                                                   \
    X(b64_known_vectors) X(b64_roundtrip_random) X(b64_rejects_bad_chars)           \
    X(b64_padding) X(b64_rejects_noncanonical_bits)                                 \
    /* t_token.c */                                                                 \
    X(token_encode_exact) X(token_encode_refuses_bad_fields) X(token_decode_roundtrip) \
    X(token_decode_any_key_order_extra_keys) X(token_decode_accepts_padding)        \
    X(token_rejects_bad_base64) X(token_rejects_not_json) X(token_rejects_json_not_object) \
    X(token_rejects_missing_keys) X(token_rejects_mistyped_keys) X(token_rejects_bad_port) \
    X(token_rejects_empty_fields) X(token_rejects_long_fields) X(token_rejects_too_long_token) \
    /* t_frame.c */                                                                 \
    X(frame_hdr_roundtrip) X(frame_hdr_short_and_oversize) X(frame_check_accepts_valid) \
    X(frame_check_rejects_unknown_type) X(frame_check_rejects_wrong_stream)         \
    X(frame_check_rejects_bad_length) X(frame_check_rejects_flags)                  \
    X(frame_hello_roundtrip) X(frame_hello_encode_limits)                           \
    X(frame_hello_bad_magic_and_version) X(frame_hello_truncated_and_malformed)     \
    X(frame_open_roundtrip_ipv4) X(frame_open_roundtrip_ipv6) X(frame_open_rejects_malformed) \
    X(frame_config_roundtrip) X(frame_config_rejects_bad_ports)                     \
    X(frame_config_rejects_count_mismatch) X(frame_reason_roundtrip)                \
    X(frame_reason_truncates) X(frame_reason_sanitises_bytes)                       \
    /* t_window.c */                                                                \
    X(window_target_by_stream_count) X(window_target_sustained_floor)               \
    X(window_target_monotone) X(window_grant_thresholds) X(window_grant_never_exceeds_target) \
    /* t_pace.c */                                                                  \
    X(pace_initial_cwnd_is_min) X(pace_room_follows_sends_and_acks)                 \
    X(pace_ack_above_sent_is_clamped) X(pace_zero_rtt_sample) X(pace_first_sample)  \
    X(pace_cwnd_converges_to_2bdp) X(pace_cwnd_never_below_min)                     \
    X(pace_cwnd_does_not_ratchet)                                                   \
    X(pace_cwnd_never_above_max) X(pace_absurd_samples_do_not_wrap)                 \
    X(pace_ring_overflow_keeps_accounting) X(pace_random_against_reference)         \
    X(pace_estimates_expire)                                                        \
    /* t_bq.c */                                                                    \
    X(bq_random_against_reference) X(bq_iov_limit_and_boundaries) X(bq_clear_returns_chunks) \
    /* t_penalty.c */                                                               \
    X(penalty_free_failures_then_doubling_to_cap) X(penalty_addresses_are_separate_v6_by_prefix) \
    X(penalty_success_and_quiet_time_forget) X(penalty_table_full_keeps_working)    \
    /* t_ratelimit.c */                                                             \
    X(ratelimit_burst_then_held_then_reported) X(ratelimit_defaults_and_clock_going_back) \
    /* t_proxy.c */                                                                 \
    X(proxy_v1_ipv4) X(proxy_v1_ipv6_canonical) X(proxy_v1_mapped_both_sides_is_tcp4) \
    X(proxy_v1_mixed_families_is_tcp6) X(proxy_v1_longest_line) X(proxy_v1_cap_too_small) \
    X(proxy_v1_ports_no_leading_zeroes) X(proxy_v1_unknown_family)                  \
    /* t_config.c */                                                                \
    X(config_examples_load) X(config_example_values) X(config_values_and_defaults)  \
    X(config_syntax_error_has_file_line) X(config_missing_file)                     \
    X(config_rejects_unknown_top_key) X(config_rejects_bad_role)                    \
    X(config_rejects_bad_log_level) X(config_rejects_hub_without_listen)            \
    X(config_rejects_bad_listen) X(config_rejects_cert_without_key)                 \
    X(config_rejects_duplicate_edge_id) X(config_rejects_short_secret)              \
    X(config_rejects_port_out_of_range) X(config_rejects_duplicate_port)            \
    X(config_rejects_unknown_key_in_hub) X(config_rejects_token_and_fields)         \
    X(config_rejects_bad_token) X(config_rejects_bad_fingerprint)                   \
    X(config_rejects_reconnect_max_below_min) X(config_rejects_duplicate_plugin)    \
    X(config_rejects_misc) X(config_reports_every_error)                            \
    X(config_relative_paths_resolve_against_file)                                   \
    /* t_plugin.c */                                                                \
    X(plugin_real_plugins_load) X(plugin_needs_auth) X(plugin_refuses_abi_major)    \
    X(plugin_refuses_abi_minor) X(plugin_refuses_no_symbol) X(plugin_refuses_missing_op) \
    X(plugin_refuses_unknown_kind) X(plugin_refuses_duplicate_name)                 \
    X(plugin_refuses_wrong_declared_name) X(plugin_refuses_unresolved_symbol)       \
    X(plugin_refuses_missing_file) X(plugin_refuses_two_of_a_kind)                  \
    X(plugin_settings_reach_create) X(plugin_settings_types_checked)                \
    X(plugin_refuses_unknown_setting) X(plugin_disabled_is_not_loaded)              \
    X(plugin_enable_toggles_loading) X(plugin_module_open_direct)                   \
    X(plugin_out_of_tree_build)

#define DECLARE(n) void t_##n(void);
#define ENTRY(n) {#n, t_##n},
TESTS(DECLARE)
static const struct { const char *name; void (*fn)(void); } tests[] = {TESTS(ENTRY)};

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
    ri_log_level = RI_LOG_ERROR; /* plugin and core chatter off */
    for (size_t i = 0; i < sizeof tests / sizeof tests[0]; i++) {
        if (filter && !strstr(tests[i].name, filter))
            continue;
        failed = 0;
        failure[0] = '\0';
        t_seed(0);
        tests[i].fn();
        tmpdir_remove();
        if (failed) {
            printf("FAIL %s: %s\n", tests[i].name, failure);
            nfailed++;
        } else {
            printf("PASS %s\n", tests[i].name);
            passed++;
        }
    }
    ri_bq_pool_drain();
    if (filter && passed + nfailed == 0)
        fprintf(stderr, "unit-tests: no test name contains \"%s\"\n", filter);
    printf("%zu passed, %zu failed\n", passed, nfailed);
    return nfailed ? 1 : 0;
}
