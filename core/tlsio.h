/* tlsio.h -- TLS over one non-blocking socket, with our own buffers between
 * GnuTLS and the kernel: one recv() fills ibuf for many records, one send()
 * drains obuf of many (GnuTLS's own transport would make a syscall per
 * 16 KiB record each way). No event loop here: the caller (tunnel.c) decides
 * when to read and write; this file only moves bytes and reports. */
#ifndef RI_TLSIO_H
#define RI_TLSIO_H

#include <gnutls/gnutls.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "tls.h"

#define RI_NETBUF_SIZE (128u * 1024u) /* raw TLS bytes each way */
#define RI_TLS_RECORD 16384u          /* plaintext of one full record */
#define RI_TLS_OVERHEAD 256u          /* a record's framing and tag, with room to spare */

struct ri_tlsio {
    int fd;
    gnutls_session_t s;
    uint8_t *ibuf, *obuf;
    size_t ilen, ioff; /* unread raw input is ibuf[ioff, ilen) */
    size_t olen, ooff; /* unsent raw output is obuf[ooff, olen) */
    int rx_blocked;    /* the last recv() found the socket empty */
    int rx_errno;      /* why the last recv() failed */
    int tx_errno;      /* why the last send() failed */
    uint64_t rx_total; /* raw bytes ever received */
};

/* Buffers for fd; 0 or -1 (out of memory). */
int ri_tlsio_init(struct ri_tlsio *io, int fd);
/* A TLS 1.3 session on it (server or client; sni may be NULL). GnuTLS error
 * code on failure. */
int ri_tlsio_start(struct ri_tlsio *io, const struct ri_tls_creds *c, int server,
                   const char *sni);
/* Frees the session and buffers; does not close fd. */
void ri_tlsio_free(struct ri_tlsio *io);

enum ri_tlsio_rc {
    RI_TLSIO_DONE = 0,    /* finished / all written */
    RI_TLSIO_AGAIN = 1,   /* the socket is empty (read) or full (write): wait for it */
    RI_TLSIO_RETRY = 2,   /* GnuTLS handled a post-handshake message: read again now */
    RI_TLSIO_EOF = 3,     /* the peer closed the connection */
    RI_TLSIO_ERROR = -1,  /* failed; message in err */
};

/* One step of the handshake; then flush. DONE, AGAIN or ERROR. */
int ri_tlsio_handshake(struct ri_tlsio *io, char *err, size_t errlen);

/* Decrypts up to one record into buf. DONE with *got > 0 bytes, or AGAIN,
 * RETRY (also for a warning alert), EOF, ERROR (message in err). */
int ri_tlsio_recv(struct ri_tlsio *io, void *buf, size_t cap, size_t *got, char *err,
                  size_t errlen);

/* Encrypts up to one record of p into obuf. Returns bytes taken (> 0), 0 if
 * obuf has no room for a whole record (flush first), or -1 with err. Since
 * a record is only started with room for all of it, GnuTLS never holds a
 * half-written record between calls. */
ssize_t ri_tlsio_send(struct ri_tlsio *io, const void *p, size_t n, char *err, size_t errlen);
/* Room in obuf for another full record. */
static inline int ri_tlsio_room(const struct ri_tlsio *io)
{
    return RI_NETBUF_SIZE - (io->olen - io->ooff) >= RI_TLS_RECORD + RI_TLS_OVERHEAD;
}
/* Sends what is in obuf. DONE (empty), AGAIN (socket full) or ERROR. */
int ri_tlsio_flush(struct ri_tlsio *io, char *err, size_t errlen);
static inline int ri_tlsio_has_output(const struct ri_tlsio *io) { return io->olen > io->ooff; }
/* The negotiated cipher's name, for logs. */
const char *ri_tlsio_cipher(const struct ri_tlsio *io);
/* Input already read from the socket but not yet decrypted: the socket will
 * not turn readable again for it. */
int ri_tlsio_has_input(const struct ri_tlsio *io);

#endif
