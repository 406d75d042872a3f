/* t_fdlimit.c -- the open-file limit as new connections near it. */
#include <string.h>

#include "fdlimit.h"
#include "t.h"

#define SEC 1000000000ull

TEST(fdlimit_warns_once_refuses_past_the_reserve_and_rearms)
{
    struct ri_fdlimit f;
    ri_fdlimit_set(&f, 256);
    CHECK_INT(f.limit, 256);
    CHECK_INT(ri_fdlimit_reserve(256), 8);
    CHECK_INT(f.refuse_at, 248);
    uint64_t now = 100 * SEC;
    CHECK_INT(ri_fdlimit_check(&f, 10, now), RI_FDLIMIT_OK);
    CHECK_INT(ri_fdlimit_check(&f, 228, now), RI_FDLIMIT_OK);  /* 229 in use: below 90 % */
    CHECK_INT(ri_fdlimit_check(&f, 229, now), RI_FDLIMIT_WARN); /* 230 = 90 % */
    CHECK_INT(ri_fdlimit_check(&f, 230, now), RI_FDLIMIT_OK);   /* once */
    CHECK_INT(ri_fdlimit_check(&f, 247, now), RI_FDLIMIT_OK);   /* 248: the last one let in */
    CHECK_INT(f.refused, 0);
    CHECK_INT(ri_fdlimit_check(&f, 248, now), RI_FDLIMIT_REFUSE);
    CHECK_INT(ri_fdlimit_check(&f, 255, now), RI_FDLIMIT_REFUSE);
    CHECK_INT(f.refused, 2);
    /* back under 80 %, and up again: within a minute no second warning */
    CHECK_INT(ri_fdlimit_check(&f, 100, now + SEC), RI_FDLIMIT_OK);
    CHECK_INT(ri_fdlimit_check(&f, 240, now + 2 * SEC), RI_FDLIMIT_OK);
    /* a minute later it warns again (it fell under 80 % meanwhile) */
    CHECK_INT(ri_fdlimit_check(&f, 240, now + 70 * SEC), RI_FDLIMIT_WARN);
    /* without falling under 80 %, never again, however long it stays up */
    CHECK_INT(ri_fdlimit_check(&f, 210, now + 71 * SEC), RI_FDLIMIT_OK);
    CHECK_INT(ri_fdlimit_check(&f, 240, now + 200 * SEC), RI_FDLIMIT_OK);
    char buf[400];
    ri_fdlimit_warn_text(&f, 229, "clients", buf, sizeof buf);
    CHECK(strstr(buf, "230 of 256 descriptors in use (90 %") != NULL);
    CHECK(strstr(buf, "from 249 on new clients are refused") != NULL);
}

TEST(fdlimit_reserve_bounds_and_small_or_no_limits)
{
    CHECK_INT(ri_fdlimit_reserve(20000), 64);
    CHECK_INT(ri_fdlimit_reserve(1024), 32);
    CHECK_INT(ri_fdlimit_reserve(64), 8);
    struct ri_fdlimit f;
    ri_fdlimit_set(&f, 20000);
    CHECK_INT(f.refuse_at, 19936);
    CHECK_INT(ri_fdlimit_check(&f, 19935, SEC), RI_FDLIMIT_WARN);
    CHECK_INT(ri_fdlimit_check(&f, 19936, SEC), RI_FDLIMIT_REFUSE);
    /* too small to keep a reserve: only the accept pause applies */
    ri_fdlimit_set(&f, 24);
    CHECK_INT(f.limit, 0);
    CHECK_INT(ri_fdlimit_check(&f, 23, SEC), RI_FDLIMIT_OK);
    /* no limit */
    ri_fdlimit_set(&f, 0);
    CHECK_INT(ri_fdlimit_check(&f, 1 << 20, SEC), RI_FDLIMIT_OK);
}
