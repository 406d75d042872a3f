/* slowdns.c -- an LD_PRELOAD shim for tests: getaddrinfo() of any name
 * ending in ".slow.ri.test" sleeps RI_SLOWDNS_SECS (default 10) seconds and
 * then answers 127.0.0.1 (the label before it may be an address: the
 * answer for "127-0-0-2.slow.ri.test" is 127.0.0.2; "127-0-0-1x127-0-0-3"
 * answers both, in that order, as a name with several A records would).
 * Every other name goes to the real getaddrinfo. Shows that a lookup never
 * stalls the loop, and gives tests a name with several addresses. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef int gai_f(const char *, const char *, const struct addrinfo *, struct addrinfo **);

int getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
                struct addrinfo **res)
{
    static gai_f *real;
    if (!real)
        real = (gai_f *)dlsym(RTLD_NEXT, "getaddrinfo");
    static const char suffix[] = ".slow.ri.test";
    size_t n = node ? strlen(node) : 0;
    if (n <= sizeof suffix - 1 || strcmp(node + n - (sizeof suffix - 1), suffix) != 0)
        return real(node, service, hints, res);
    const char *secs = getenv("RI_SLOWDNS_SECS");
    sleep(secs ? (unsigned)atoi(secs) : 10);
    char ip[128] = "127.0.0.1";
    size_t label = n - (sizeof suffix - 1);
    if (label < sizeof ip && label > 6) {
        memcpy(ip, node, label);
        ip[label] = '\0';
        for (char *p = ip; *p; p++)
            if (*p == '-')
                *p = '.';
    }
    struct addrinfo h = hints ? *hints : (struct addrinfo){0};
    h.ai_flags |= AI_NUMERICHOST;
    /* one answer per 'x'-separated address, chained in order (not '_': TLS
     * peers refuse it in a server name) */
    struct addrinfo *head = NULL, **tail = &head;
    for (char *save = NULL, *one = strtok_r(ip, "x", &save); one;
         one = strtok_r(NULL, "x", &save)) {
        struct addrinfo *r = NULL;
        int rc = real(one, service, &h, &r);
        if (rc != 0) {
            if (head)
                freeaddrinfo(head);
            return rc;
        }
        *tail = r;
        while (r->ai_next)
            r = r->ai_next;
        tail = &r->ai_next;
    }
    *res = head;
    return head ? 0 : EAI_NONAME;
}
