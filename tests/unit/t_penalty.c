/* t_penalty.c -- per-address authentication failure backoff. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>

#include "penalty.h"
#include "t.h"

#define S 1000000000ull

static struct sockaddr_storage addr(const char *s)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, s, &a4->sin_addr) == 1)
        a4->sin_family = AF_INET;
    else if (inet_pton(AF_INET6, s, &a6->sin6_addr) == 1)
        a6->sin6_family = AF_INET6;
    return ss;
}

#define SA(x) ((struct sockaddr *)&(x))

TEST(penalty_free_failures_then_doubling_to_cap)
{
    struct ri_penalty *p = calloc(1, sizeof *p);
    struct sockaddr_storage a = addr("198.18.0.7");
    uint64_t now = 100 * S;
    for (int i = 0; i < RI_PENALTY_FREE; i++) {
        CHECK_INT(ri_penalty_fail(p, SA(a), now), 0);
        CHECK_INT(ri_penalty_check(p, SA(a), now), 0);
    }
    uint64_t want = 1 * S;
    for (int i = 0; i < 10; i++) {
        uint64_t ban = ri_penalty_fail(p, SA(a), now);
        CHECK_INT(ban, want);
        CHECK_INT(ri_penalty_check(p, SA(a), now), want);
        CHECK_INT(ri_penalty_check(p, SA(a), now + want / 2), want - want / 2);
        CHECK_INT(ri_penalty_check(p, SA(a), now + want), 0);
        want = want * 2 > RI_PENALTY_MAX_NS ? RI_PENALTY_MAX_NS : want * 2;
        now += 1000;
    }
    free(p);
}

TEST(penalty_addresses_are_separate_v6_by_prefix)
{
    struct ri_penalty *p = calloc(1, sizeof *p);
    struct sockaddr_storage a = addr("2001:db8:1:2::5"), same64 = addr("2001:db8:1:2::99"),
                            other64 = addr("2001:db8:1:3::5"), v4 = addr("198.18.0.1"),
                            mapped = addr("::ffff:198.18.0.1");
    uint64_t now = 5 * S;
    for (int i = 0; i <= RI_PENALTY_FREE; i++)
        ri_penalty_fail(p, SA(a), now);
    CHECK(ri_penalty_check(p, SA(a), now) > 0);
    CHECK(ri_penalty_check(p, SA(same64), now) > 0);
    CHECK_INT(ri_penalty_check(p, SA(other64), now), 0);
    CHECK_INT(ri_penalty_check(p, SA(v4), now), 0);
    for (int i = 0; i <= RI_PENALTY_FREE; i++)
        ri_penalty_fail(p, SA(mapped), now);
    CHECK(ri_penalty_check(p, SA(v4), now) > 0); /* mapped counts as IPv4 */
    free(p);
}

TEST(penalty_success_and_quiet_time_forget)
{
    struct ri_penalty *p = calloc(1, sizeof *p);
    struct sockaddr_storage a = addr("198.18.0.9");
    uint64_t now = 7 * S;
    for (int i = 0; i < RI_PENALTY_FREE + 3; i++)
        ri_penalty_fail(p, SA(a), now);
    CHECK(ri_penalty_check(p, SA(a), now) > 0);
    ri_penalty_clear(p, SA(a));
    CHECK_INT(ri_penalty_check(p, SA(a), now), 0);
    CHECK_INT(ri_penalty_fail(p, SA(a), now), 0); /* counting starts again */
    for (int i = 0; i < RI_PENALTY_FREE; i++)
        ri_penalty_fail(p, SA(a), now);
    CHECK(ri_penalty_check(p, SA(a), now) > 0);
    /* ten quiet minutes: forgotten, free failures again */
    now += RI_PENALTY_FORGET_NS;
    CHECK_INT(ri_penalty_check(p, SA(a), now), 0);
    CHECK_INT(ri_penalty_fail(p, SA(a), now), 0);
    free(p);
}

TEST(penalty_table_full_keeps_working)
{
    struct ri_penalty *p = calloc(1, sizeof *p);
    uint64_t now = 9 * S;
    char buf[32];
    /* many more addresses than slots, each failing enough to be banned */
    for (int i = 0; i < 4 * RI_PENALTY_SLOTS; i++) {
        snprintf(buf, sizeof buf, "198.18.%d.%d", i / 250, i % 250 + 1);
        struct sockaddr_storage a = addr(buf);
        for (int k = 0; k <= RI_PENALTY_FREE; k++)
            ri_penalty_fail(p, SA(a), now + (uint64_t)i);
    }
    /* the most recent one is certainly remembered */
    struct sockaddr_storage last = addr(buf);
    CHECK(ri_penalty_check(p, SA(last), now + 4 * RI_PENALTY_SLOTS) > 0);
    /* an unknown family is never banned */
    struct sockaddr_storage un;
    memset(&un, 0, sizeof un);
    un.ss_family = AF_UNIX;
    CHECK_INT(ri_penalty_fail(p, SA(un), now), 0);
    CHECK_INT(ri_penalty_check(p, SA(un), now), 0);
    free(p);
}
