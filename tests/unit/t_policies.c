/* the scheduling and classification plugins (plugins/sched_3tier,
 * sched_drr, classify_elephant), each loaded from its .so and driven through
 * its ops table with fake streams and a fake clock. */
#include <libconfig.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "api.h"
#include "classify_elephant/classify_elephant.h"
#include "plugin.h"
#include "t.h"

#define MS 1000000ull
#define CHUNK 65536u

/* fake streams: handles are addresses in this array; ports for stream_stats */
static char fake[16];
static uint16_t fake_port[16];
static ri_stream *S(int i) { return (ri_stream *)(void *)&fake[i]; }

static int fake_stats(const ri_stream *s, struct ri_stream_stats *out)
{
    int i = (int)((const char *)s - fake);
    memset(out, 0, out->size);
    out->id = (uint32_t)i + 1;
    out->edge_port = fake_port[i];
    return 0;
}

struct pol {
    struct ri_module *m;
    struct ri_inst *in;
    config_t cf;
    struct ri_core_api api;
    void *sp[16];
};

/* Loads build/plugins/<name>.so with settings (libconfig text of a group). */
static int pol_open(struct pol *p, const char *name, const char *settings)
{
    char path[4200], err[512], text[2048];
    memset(p, 0, sizeof *p);
    p->api = ri_core_api;
    p->api.stream_stats = fake_stats;
    snprintf(path, sizeof path, "%s/plugins/%s.so", t_build_dir(), name);
    if (!(p->m = ri_module_open(path, name, err, sizeof err)))
        return t_fail_at(__FILE__, __LINE__, "%s", err);
    config_init(&p->cf);
    snprintf(text, sizeof text, "g = { %s };", settings ? settings : "");
    if (config_read_string(&p->cf, text) != CONFIG_TRUE)
        return t_fail_at(__FILE__, __LINE__, "bad settings %s", text);
    p->in = ri_inst_create(p->m, config_lookup(&p->cf, "g"), t_loop(), RI_ROLE_HUB, &p->api,
                           err, sizeof err);
    if (!p->in)
        return t_fail_at(__FILE__, __LINE__, "%s", err);
    for (int i = 0; i < 16; i++)
        p->sp[i] = calloc(1, p->m->desc.stream_size + 1);
    return 0;
}

static void pol_close(struct pol *p)
{
    for (int i = 0; i < 16; i++)
        free(p->sp[i]);
    ri_inst_unref(p->in);
    ri_module_unref(p->m);
    config_destroy(&p->cf);
}

static int idx(ri_stream *s) { return s ? (int)((char *)s - fake) : -1; }

static void opened(struct pol *p, int i, uint16_t port)
{
    fake_port[i] = port;
    memset(p->sp[i], 0, p->m->desc.stream_size);
    ri_sched_event(p->in, S(i), p->sp[i], RI_EV_OPENED, 0);
}

/* One dequeue at time now: sends min(max_bytes, chunk) for the stream
 * (its socket always has data) and puts it back, as the core does. */
static int turn(struct pol *p, uint64_t now, uint32_t klass[], size_t sent[])
{
    struct ri_sched_ctx ctx = {.size = sizeof ctx, .now_ns = now, .max_chunk = CHUNK};
    uint32_t max = CHUNK;
    ri_stream *s = ri_sched_dequeue(p->in, &ctx, &max);
    int i = idx(s);
    if (i < 0)
        return -1;
    size_t n = max < CHUNK ? max : CHUNK;
    ri_sched_sent(p->in, s, p->sp[i], n, &ctx);
    sent[i] += n;
    ri_sched_enqueue(p->in, s, p->sp[i], klass[i]);
    return i;
}

/* ---- sched_3tier ------------------------------------------------------------ */

TEST(sched_3tier_tier_order_and_class_moves)
{
    struct pol p;
    CHECK(pol_open(&p, "sched_3tier", "sustained_min_rate = 1000000;") == 0);
    uint32_t k[3] = {RI_CLASS_DATA, RI_CLASS_DATA, RI_CLASS_SUSTAINED};
    for (int i = 0; i < 3; i++) {
        opened(&p, i, 80);
        ri_sched_enqueue(p.in, S(i), p.sp[i], k[i]);
    }
    size_t sent[3] = {0};
    /* no credit yet: the data streams alternate, the elephant waits */
    int order[6];
    for (int j = 0; j < 6; j++)
        order[j] = turn(&p, 0, k, sent);
    CHECK(order[0] == 0 && order[1] == 1 && order[2] == 0 && order[3] == 1);
    CHECK_INT(sent[2], 0);
    /* stream 1 becomes sustained while queued: it moves to the elephants' tier */
    k[1] = RI_CLASS_SUSTAINED;
    ri_sched_event(p.in, S(1), p.sp[1], RI_EV_CLASS, RI_CLASS_SUSTAINED);
    for (int j = 0; j < 4; j++)
        CHECK_INT(turn(&p, 0, k, sent), 0);
    /* removing the last data stream: the sustained tier takes everything */
    ri_sched_remove(p.in, S(0), p.sp[0]);
    int a = turn(&p, 0, k, sent), b = turn(&p, 0, k, sent);
    CHECK(a != 0 && b != 0 && a != b);
    pol_close(&p);
}

TEST(sched_3tier_sustained_gets_its_rate_every_second)
{
    struct pol p;
    CHECK(pol_open(&p, "sched_3tier", "sustained_min_rate = 1000000; data_gate = 64;") == 0);
    uint32_t k[3] = {RI_CLASS_DATA, RI_CLASS_DATA, RI_CLASS_SUSTAINED};
    for (int i = 0; i < 3; i++) {
        opened(&p, i, 80);
        ri_sched_enqueue(p.in, S(i), p.sp[i], k[i]);
    }
    /* a 1 Gbit/s link: a 64 KiB chunk leaves every 0.52 ms */
    uint64_t now = 1000 * MS, step = CHUNK * 8ull * 1000000000ull / 1000000000ull;
    size_t total[3] = {0};
    for (int second = 0; second < 5; second++) {
        size_t sent[3] = {0};
        uint64_t end = now + 1000 * MS;
        for (; now < end; now += step)
            turn(&p, now, k, sent);
        /* within each second: the guarantee, and not much more */
        CHECK_MSG(sent[2] >= 900000 && sent[2] <= 1000000 + 2 * CHUNK,
                  "second %d: the sustained tier got %zu bytes", second, sent[2]);
        for (int i = 0; i < 3; i++)
            total[i] += sent[i];
    }
    /* the data streams share the rest evenly */
    CHECK(total[0] > 100 * total[2] / 10 && llabs((long long)total[0] - (long long)total[1]) <=
                                               (long long)CHUNK);
    pol_close(&p);
}

TEST(sched_3tier_data_gate)
{
    /* credit positive but below a chunk: the elephant waits for data_gate
     * data chunks, then gets its turn */
    struct pol p;
    CHECK(pol_open(&p, "sched_3tier", "sustained_min_rate = 10000; data_gate = 4;") == 0);
    uint32_t k[2] = {RI_CLASS_DATA, RI_CLASS_SUSTAINED};
    for (int i = 0; i < 2; i++) {
        opened(&p, i, 80);
        ri_sched_enqueue(p.in, S(i), p.sp[i], k[i]);
    }
    size_t sent[2] = {0};
    CHECK_INT(turn(&p, 1000 * MS, k, sent), 0); /* starts the clock: no credit yet */
    /* 100 ms later: 1000 bytes of credit (< a chunk) */
    int seq[8];
    for (int j = 0; j < 8; j++)
        seq[j] = turn(&p, 1100 * MS, k, sent);
    /* data_run was 1 after the first turn: three more data chunks, then the elephant */
    CHECK(seq[0] == 0 && seq[1] == 0 && seq[2] == 0 && seq[3] == 1);
    /* it overspent its credit: data only, until the bucket refills */
    for (int j = 4; j < 8; j++)
        CHECK_INT(seq[j], 0);
    pol_close(&p);
}

TEST(sched_3tier_settings_checked)
{
    struct pol p;
    char err[512];
    CHECK(pol_open(&p, "sched_3tier", "") == 0);
    pol_close(&p);
    config_t cf;
    config_init(&cf);
    config_read_string(&cf, "g = { data_gate = 0; };");
    struct ri_module *m = p.m = NULL;
    char path[4200];
    snprintf(path, sizeof path, "%s/plugins/sched_3tier.so", t_build_dir());
    m = ri_module_open(path, "sched_3tier", err, sizeof err);
    CHECK(m);
    struct ri_inst *in = ri_inst_create(m, config_lookup(&cf, "g"), t_loop(), RI_ROLE_HUB,
                                        &ri_core_api, err, sizeof err);
    CHECK(in == NULL);
    CHECK_HAS(err, "data_gate must be 1-1000000");
    ri_module_unref(m);
    config_destroy(&cf);
}

/* ---- sched_drr -------------------------------------------------------------- */

static double jain(const size_t *x, int n)
{
    double s = 0, q = 0;
    for (int i = 0; i < n; i++)
        s += (double)x[i], q += (double)x[i] * (double)x[i];
    return q > 0 ? s * s / (n * q) : 0;
}

TEST(sched_drr_equal_shares)
{
    struct pol p;
    CHECK(pol_open(&p, "sched_drr", "quantum = 20000;") == 0);
    uint32_t k[8] = {0};
    for (int i = 0; i < 8; i++) {
        opened(&p, i, (uint16_t)(1000 + i));
        ri_sched_enqueue(p.in, S(i), p.sp[i], 0);
    }
    size_t sent[8] = {0};
    for (int j = 0; j < 8000; j++)
        turn(&p, 0, k, sent);
    double J = jain(sent, 8);
    CHECK_MSG(J >= 0.999, "Jain's index %.4f", J);
    /* the quantum bounds one turn: no chunk above it */
    pol_close(&p);
}

TEST(sched_drr_weighted_shares_and_idle)
{
    struct pol p;
    CHECK(pol_open(&p, "sched_drr",
                   "port_weights = ( { port = 443; weight = 3; }, { port = 22; weight = 1; } );")
          == 0);
    uint32_t k[3] = {0};
    opened(&p, 0, 443);
    opened(&p, 1, 22);
    opened(&p, 2, 8080); /* unlisted: weight 1 */
    for (int i = 0; i < 3; i++)
        ri_sched_enqueue(p.in, S(i), p.sp[i], 0);
    size_t sent[3] = {0};
    for (int j = 0; j < 5000; j++)
        turn(&p, 0, k, sent);
    double r = (double)sent[0] / (double)sent[1];
    CHECK_MSG(r > 2.9 && r < 3.1, "443 : 22 = %.2f, wanted 3", r);
    CHECK_MSG(llabs((long long)sent[1] - (long long)sent[2]) <= (long long)CHUNK,
              "equal weights differ: %zu vs %zu", sent[1], sent[2]);
    /* a stream that runs dry keeps no deficit: removing a queued one works */
    ri_sched_remove(p.in, S(2), p.sp[2]);
    ri_sched_event(p.in, S(2), p.sp[2], RI_EV_IDLE, 0);
    size_t more[3] = {0};
    for (int j = 0; j < 400; j++)
        turn(&p, 0, k, more);
    CHECK_INT(more[2], 0);
    pol_close(&p);
}

TEST(sched_drr_settings_checked)
{
    static const char *const bad[][2] = {
        {"quantum = 10;", "quantum must be"},
        {"port_weights = ( { port = 0; weight = 1; } );", "port must be 1-65535"},
        {"port_weights = ( { port = 80; weight = 0; } );", "weight must be 1-1000"},
        {"port_weights = ( { port = 80; weight = 2; }, { port = 80; weight = 3; } );",
         "listed twice"},
        {"port_weights = 5;", "must be a list"},
    };
    char path[4200], err[512];
    snprintf(path, sizeof path, "%s/plugins/sched_drr.so", t_build_dir());
    struct ri_module *m = ri_module_open(path, "sched_drr", err, sizeof err);
    CHECK_MSG(m, "%s", err);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        config_t cf;
        char text[256];
        config_init(&cf);
        snprintf(text, sizeof text, "g = { %s };", bad[i][0]);
        config_read_string(&cf, text);
        err[0] = '\0';
        struct ri_inst *in = ri_inst_create(m, config_lookup(&cf, "g"), t_loop(), RI_ROLE_HUB,
                                            &ri_core_api, err, sizeof err);
        ri_inst_unref(in);
        config_destroy(&cf);
        CHECK_MSG(!in && strstr(err, bad[i][1]), "%s -> %s", bad[i][0], err);
    }
    ri_module_unref(m);
}

/* ---- classify_elephant ------------------------------------------------------ */

TEST(elephant_thresholds_exactly)
{
    struct elephant_rule r;
    elephant_rule_init(&r, 10, 20); /* 10 s, 2.5 MB/s */
    struct ri_stream_stats st = {.size = sizeof st, .klass = RI_CLASS_DATA};
    /* old enough, exactly at the rate: not above it */
    st.age_ns = 11000 * MS;
    st.tx_bytes = 2500000ull * 11;
    CHECK_INT(elephant_classify(&r, &st), RI_CLASS_DATA);
    st.tx_bytes += 1000; /* just above */
    CHECK_INT(elephant_classify(&r, &st), RI_CLASS_SUSTAINED);
    /* fast but exactly age_secs old: not older than it */
    st.age_ns = 10000 * MS;
    st.tx_bytes = 100000000;
    CHECK_INT(elephant_classify(&r, &st), RI_CLASS_DATA);
    st.age_ns += 1;
    CHECK_INT(elephant_classify(&r, &st), RI_CLASS_SUSTAINED);
    /* the larger direction counts, not the sum */
    st.age_ns = 20000 * MS;
    st.tx_bytes = 30000000;
    st.rx_bytes = 30000000; /* 1.5 MB/s each way */
    CHECK_INT(elephant_classify(&r, &st), RI_CLASS_DATA);
    st.rx_bytes = 60000000; /* 3 MB/s one way */
    CHECK_INT(elephant_classify(&r, &st), RI_CLASS_SUSTAINED);
    /* never back: a sustained stream that went quiet stays sustained */
    st.klass = RI_CLASS_SUSTAINED;
    st.tx_bytes = st.rx_bytes = 0;
    CHECK_INT(elephant_classify(&r, &st), RI_CLASS_SUSTAINED);
}

TEST(elephant_plugin_uses_its_settings)
{
    struct pol p;
    CHECK(pol_open(&p, "classify_elephant", "age_secs = 1; rate_mbit = 8;") == 0);
    struct ri_stream_stats st = {.size = sizeof st, .klass = RI_CLASS_DATA, .id = 7};
    st.age_ns = 1500 * MS;
    st.rx_bytes = 1400000; /* 7.5 Mbit/s */
    CHECK_INT(ri_classify(p.in, p.sp[0], &st), RI_CLASS_DATA);
    st.rx_bytes = 1600000; /* 8.5 Mbit/s */
    CHECK_INT(ri_classify(p.in, p.sp[0], &st), RI_CLASS_SUSTAINED);
    /* no window of its own: the core's sustained floor applies */
    CHECK_INT(ri_class_window(p.in, RI_CLASS_SUSTAINED, 10), 0);
    pol_close(&p);
}

TEST(sched_drr_sparse_stream_goes_first)
{
    /* three busy streams, then one that ran dry and has data again: it is
     * served next, not after a round of the busy ones' quanta */
    struct pol p;
    CHECK(pol_open(&p, "sched_drr", "") == 0);
    uint32_t k[4] = {0};
    for (int i = 0; i < 4; i++)
        opened(&p, i, 80);
    for (int i = 0; i < 3; i++)
        ri_sched_enqueue(p.in, S(i), p.sp[i], 0);
    size_t sent[4] = {0};
    for (int j = 0; j < 30; j++)
        turn(&p, 0, k, sent);
    ri_sched_event(p.in, S(3), p.sp[3], RI_EV_IDLE, 0); /* it ran dry earlier */
    ri_sched_enqueue(p.in, S(3), p.sp[3], 0);
    CHECK_INT(turn(&p, 0, k, sent), 3);
    /* once its quantum is spent it queues with the others: equal shares */
    size_t more[4] = {0};
    for (int j = 0; j < 40; j++)
        turn(&p, 0, k, more);
    for (int i = 0; i < 4; i++)
        CHECK_MSG(more[i] == 10 * CHUNK, "stream %d got %zu", i, more[i]);
    pol_close(&p);
}
