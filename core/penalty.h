/* penalty.h -- per-address backoff after failed authentications (pure).
 *
 * An address whose edges keep failing to authenticate (wrong secret,
 * unknown edge id) is refused at accept for a growing while, like OpenSSH's
 * PerSourcePenalties: the first RI_PENALTY_FREE failures cost nothing, then
 * each further one bans the address for 1, 2, 4 ... up to RI_PENALTY_MAX_NS
 * seconds. A successful authentication from the address, or ten quiet
 * minutes, forgets it. IPv6 addresses count per /64 (one host usually owns
 * the whole prefix); IPv4-mapped addresses count as IPv4. The table is
 * fixed-size: when full, the least recently failing address is forgotten.
 * Several edges behind one NAT share an address: one of them with a wrong
 * secret can delay the others' reconnects by up to RI_PENALTY_MAX_NS. */
#ifndef RI_PENALTY_H
#define RI_PENALTY_H

#include <stdint.h>
#include <sys/socket.h>

#define RI_PENALTY_SLOTS 512
#define RI_PENALTY_FREE 3
#define RI_PENALTY_MAX_NS (60ull * 1000000000ull)
#define RI_PENALTY_FORGET_NS (600ull * 1000000000ull)

struct ri_penalty_entry {
    uint8_t key[17];  /* family byte, then 4 or 8 address bytes (zero padded) */
    uint32_t fails;
    uint64_t last_ns; /* last failure; 0 = free slot */
    uint64_t until_ns;
};

struct ri_penalty {
    struct ri_penalty_entry e[RI_PENALTY_SLOTS];
};

/* A failed authentication from sa at now. Returns the ban it earned, ns. */
uint64_t ri_penalty_fail(struct ri_penalty *p, const struct sockaddr *sa, uint64_t now);
/* How long sa is still banned, ns (0: let it in). */
uint64_t ri_penalty_check(const struct ri_penalty *p, const struct sockaddr *sa, uint64_t now);
/* A successful authentication from sa: forget its failures. */
void ri_penalty_clear(struct ri_penalty *p, const struct sockaddr *sa);

#endif
