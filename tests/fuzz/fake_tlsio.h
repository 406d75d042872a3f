/* fake_tlsio.h -- what the fuzz harness feeds the fake TLS layer. */
#ifndef RI_FAKE_TLSIO_H
#define RI_FAKE_TLSIO_H

#include <stddef.h>
#include <stdint.h>

struct fake_feed {
    const uint8_t *p; /* the "decrypted" bytes the peer sends */
    size_t n, off;
    size_t chunk;     /* most bytes one recv returns (a record's worth) */
    int eof;          /* after the last byte: the peer closes */
    size_t sent;      /* bytes the tunnel wrote (swallowed) */
};

extern struct fake_feed ri_fuzz_feed;

#endif
