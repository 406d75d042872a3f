/* penalty.c -- per-address authentication failure backoff (see penalty.h). */
#include "penalty.h"

#include <netinet/in.h>
#include <string.h>

#define PROBES 8

static int make_key(const struct sockaddr *sa, uint8_t key[17])
{
    memset(key, 0, 17);
    if (sa->sa_family == AF_INET) {
        key[0] = 4;
        memcpy(key + 1, &((const struct sockaddr_in *)sa)->sin_addr, 4);
        return 0;
    }
    if (sa->sa_family == AF_INET6) {
        const uint8_t *a = ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr;
        static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        if (memcmp(a, mapped, 12) == 0) {
            key[0] = 4;
            memcpy(key + 1, a + 12, 4);
        } else {
            key[0] = 6;
            memcpy(key + 1, a, 8); /* the /64 */
        }
        return 0;
    }
    return -1;
}

static unsigned slot_of(const uint8_t key[17])
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (int i = 0; i < 17; i++)
        h = (h ^ key[i]) * 16777619u;
    return h % RI_PENALTY_SLOTS;
}

static int live(const struct ri_penalty_entry *e, uint64_t now)
{
    return e->last_ns && now - e->last_ns < RI_PENALTY_FORGET_NS;
}

static const struct ri_penalty_entry *find(const struct ri_penalty *p, const uint8_t key[17],
                                           uint64_t now)
{
    unsigned s = slot_of(key);
    for (unsigned i = 0; i < PROBES; i++) {
        const struct ri_penalty_entry *e = &p->e[(s + i) % RI_PENALTY_SLOTS];
        if (live(e, now) && memcmp(e->key, key, 17) == 0)
            return e;
    }
    return NULL;
}

uint64_t ri_penalty_fail(struct ri_penalty *p, const struct sockaddr *sa, uint64_t now)
{
    uint8_t key[17];
    if (make_key(sa, key) < 0)
        return 0;
    struct ri_penalty_entry *e = (struct ri_penalty_entry *)find(p, key, now);
    if (!e) { /* a free or forgotten slot, else the stalest of the probed ones */
        unsigned s = slot_of(key);
        for (unsigned i = 0; i < PROBES; i++) {
            struct ri_penalty_entry *c = &p->e[(s + i) % RI_PENALTY_SLOTS];
            if (!live(c, now)) {
                e = c;
                break;
            }
            if (!e || c->last_ns < e->last_ns)
                e = c;
        }
        memset(e, 0, sizeof *e);
        memcpy(e->key, key, 17);
    }
    e->fails++;
    e->last_ns = now ? now : 1;
    uint64_t ban = 0;
    if (e->fails > RI_PENALTY_FREE) {
        unsigned k = e->fails - RI_PENALTY_FREE - 1;
        ban = k >= 6 ? RI_PENALTY_MAX_NS : (1000000000ull << k);
        if (ban > RI_PENALTY_MAX_NS)
            ban = RI_PENALTY_MAX_NS;
    }
    e->until_ns = now + ban;
    return ban;
}

uint64_t ri_penalty_check(const struct ri_penalty *p, const struct sockaddr *sa, uint64_t now)
{
    uint8_t key[17];
    if (make_key(sa, key) < 0)
        return 0;
    const struct ri_penalty_entry *e = find(p, key, now);
    return e && e->until_ns > now ? e->until_ns - now : 0;
}

void ri_penalty_clear(struct ri_penalty *p, const struct sockaddr *sa)
{
    uint8_t key[17];
    if (make_key(sa, key) < 0)
        return;
    /* any live entry of this key: find() needs a clock, clear them all */
    unsigned s = slot_of(key);
    for (unsigned i = 0; i < PROBES; i++) {
        struct ri_penalty_entry *e = &p->e[(s + i) % RI_PENALTY_SLOTS];
        if (e->last_ns && memcmp(e->key, key, 17) == 0)
            memset(e, 0, sizeof *e);
    }
}
