/* PROXY protocol v1 formatting (plugins/header_proxy_v1/proxy_v1.c) */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/un.h>

#include "header_proxy_v1/proxy_v1.h"
#include "t.h"

static struct sockaddr_storage addr(const char *a, uint16_t port)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    struct sockaddr_in *in = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, a, &in->sin_addr) == 1) {
        in->sin_family = AF_INET;
        in->sin_port = htons(port);
    } else if (inet_pton(AF_INET6, a, &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons(port);
    }
    return ss;
}

/* The line for src -> dst, or "" when the formatter refuses. */
static const char *line(const char *s, uint16_t sp, const char *d, uint16_t dp, size_t cap)
{
    static char out[256];
    struct sockaddr_storage a = addr(s, sp), b = addr(d, dp);
    memset(out, 'Z', sizeof out);
    size_t n = proxy_v1_format(out, cap, (struct sockaddr *)&a, (struct sockaddr *)&b);
    if (n == 0 || n >= cap)
        return "";
    out[n] = '\0';
    return out;
}

TEST(proxy_v1_ipv4)
{
    CHECK_STR(line("203.0.113.7", 51234, "198.51.100.1", 443, 256),
              "PROXY TCP4 203.0.113.7 198.51.100.1 51234 443\r\n");
    CHECK_STR(line("0.0.0.0", 0, "255.255.255.255", 65535, 256),
              "PROXY TCP4 0.0.0.0 255.255.255.255 0 65535\r\n");
}

TEST(proxy_v1_ipv6_canonical)
{
    CHECK_STR(line("2001:0db8:0000:0000:0000:0000:0000:0001", 51234, "2001:DB8:0:0:1:0:0:1", 443, 256),
              "PROXY TCP6 2001:db8::1 2001:db8::1:0:0:1 51234 443\r\n");
    CHECK_STR(line("::1", 1, "fe80::", 2, 256), "PROXY TCP6 ::1 fe80:: 1 2\r\n");
}

TEST(proxy_v1_mapped_both_sides_is_tcp4)
{
    CHECK_STR(line("::ffff:203.0.113.7", 51234, "::ffff:198.51.100.1", 443, 256),
              "PROXY TCP4 203.0.113.7 198.51.100.1 51234 443\r\n");
    /* a mapped client and a plain IPv4 edge address are one family too */
    CHECK_STR(line("::ffff:203.0.113.7", 51234, "198.51.100.1", 443, 256),
              "PROXY TCP4 203.0.113.7 198.51.100.1 51234 443\r\n");
}

TEST(proxy_v1_mixed_families_is_tcp6)
{
    CHECK_STR(line("203.0.113.7", 51234, "2001:db8::2", 443, 256),
              "PROXY TCP6 ::ffff:203.0.113.7 2001:db8::2 51234 443\r\n");
    CHECK_STR(line("2001:db8::2", 443, "198.51.100.1", 80, 256),
              "PROXY TCP6 2001:db8::2 ::ffff:198.51.100.1 443 80\r\n");
}

TEST(proxy_v1_longest_line)
{
    const char *full = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff";
    const char *l = line(full, 65535, full, 65535, 256);
    CHECK_STR(l, "PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
                 "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n");
    size_t longest = strlen(l);
    CHECK(longest <= PROXY_V1_MAX);
    CHECK_INT(PROXY_V1_MAX, 107);
    /* it fits the smallest buffer that can hold it, with its NUL */
    CHECK_STR(line(full, 65535, full, 65535, longest + 1), l);
    /* the widest mapped form is shorter still */
    CHECK(strlen(line("255.255.255.255", 65535, full, 65535, 256)) < longest);
}

TEST(proxy_v1_cap_too_small)
{
    struct sockaddr_storage a = addr("203.0.113.7", 51234), b = addr("198.51.100.1", 443);
    const size_t len = strlen("PROXY TCP4 203.0.113.7 198.51.100.1 51234 443\r\n");
    char out[128];
    CHECK_INT(proxy_v1_format(out, len + 1, (struct sockaddr *)&a, (struct sockaddr *)&b), len);
    CHECK_INT(proxy_v1_format(out, len, (struct sockaddr *)&a, (struct sockaddr *)&b), 0);
    CHECK_INT(proxy_v1_format(out, 10, (struct sockaddr *)&a, (struct sockaddr *)&b), 0);
    CHECK_INT(proxy_v1_format(out, 0, (struct sockaddr *)&a, (struct sockaddr *)&b), 0);
}

TEST(proxy_v1_ports_no_leading_zeroes)
{
    CHECK_STR(line("10.0.0.1", 8, "10.0.0.2", 80, 256), "PROXY TCP4 10.0.0.1 10.0.0.2 8 80\r\n");
    CHECK_STR(line("::1", 443, "::2", 9, 256), "PROXY TCP6 ::1 ::2 443 9\r\n");
}

TEST(proxy_v1_unknown_family)
{
    struct sockaddr_storage a = addr("10.0.0.1", 1);
    struct sockaddr_un u = {.sun_family = AF_UNIX};
    char out[128];
    size_t n = proxy_v1_format(out, sizeof out, (struct sockaddr *)&u, (struct sockaddr *)&a);
    CHECK_INT(n, 15);
    out[n] = '\0';
    CHECK_STR(out, "PROXY UNKNOWN\r\n");
}
