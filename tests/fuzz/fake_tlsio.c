/* fake_tlsio.c -- the TLS layer of a tunnel replaced for fuzzing: "records"
 * come from the fuzz input (already decrypted), what the tunnel sends is
 * swallowed, the handshake succeeds at once. It implements tlsio.h and the
 * three functions of tls.h a tunnel calls, so tunnel.c, handshake.c and
 * mux.c run unchanged: the same entry points the data path uses. */
#include <string.h>

#include "fake_tlsio.h"
#include "tls.h"
#include "tlsio.h"

struct fake_feed ri_fuzz_feed;

int ri_tlsio_init(struct ri_tlsio *io, int fd)
{
    memset(io, 0, sizeof *io);
    io->fd = fd;
    return 0;
}

int ri_tlsio_start(struct ri_tlsio *io, const struct ri_tls_creds *c, int server,
                   const char *sni)
{
    return 0;
}

void ri_tlsio_free(struct ri_tlsio *io) {}

int ri_tlsio_handshake(struct ri_tlsio *io, char *err, size_t errlen) { return RI_TLSIO_DONE; }

int ri_tlsio_recv(struct ri_tlsio *io, void *buf, size_t cap, size_t *got, char *err,
                  size_t errlen)
{
    struct fake_feed *f = &ri_fuzz_feed;
    *got = 0;
    if (f->off == f->n)
        return f->eof ? RI_TLSIO_EOF : RI_TLSIO_AGAIN;
    size_t k = f->n - f->off;
    if (k > f->chunk)
        k = f->chunk;
    if (k > cap)
        k = cap;
    if (k == 0)
        return RI_TLSIO_AGAIN;
    memcpy(buf, f->p + f->off, k);
    f->off += k;
    *got = k;
    return RI_TLSIO_DONE;
}

ssize_t ri_tlsio_send(struct ri_tlsio *io, const void *p, size_t n, char *err, size_t errlen)
{
    if (n > RI_TLS_RECORD)
        n = RI_TLS_RECORD;
    ri_fuzz_feed.sent += n;
    return (ssize_t)n;
}

int ri_tlsio_flush(struct ri_tlsio *io, char *err, size_t errlen) { return RI_TLSIO_DONE; }

int ri_tlsio_has_input(const struct ri_tlsio *io)
{
    return ri_fuzz_feed.off < ri_fuzz_feed.n;
}

const char *ri_tlsio_cipher(const struct ri_tlsio *io) { return "fake"; }

/* tls.h */
int ri_tls_binding(gnutls_session_t s, uint8_t out[32])
{
    memset(out, 0x42, 32);
    return 0;
}

struct ri_tls_creds *ri_tls_creds_ref(struct ri_tls_creds *c) { return c; }
void ri_tls_creds_unref(struct ri_tls_creds *c) {}
