/* tlsio.c -- TLS record I/O through our own socket buffers (see tlsio.h). */
#include "tlsio.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

static ssize_t push(gnutls_transport_ptr_t p, const void *data, size_t n)
{
    struct ri_tlsio *io = p;
    if (io->ooff && io->olen + n > RI_NETBUF_SIZE) {
        memmove(io->obuf, io->obuf + io->ooff, io->olen - io->ooff);
        io->olen -= io->ooff;
        io->ooff = 0;
    }
    size_t room = RI_NETBUF_SIZE - io->olen;
    if (room == 0) {
        errno = EAGAIN;
        return -1;
    }
    if (n > room)
        n = room;
    memcpy(io->obuf + io->olen, data, n);
    io->olen += n;
    return (ssize_t)n;
}

static ssize_t pull(gnutls_transport_ptr_t p, void *data, size_t n)
{
    struct ri_tlsio *io = p;
    if (io->ioff == io->ilen) {
        io->ioff = io->ilen = 0;
        ssize_t r = recv(io->fd, io->ibuf, RI_NETBUF_SIZE, 0);
        if (r < 0 && errno == EAGAIN)
            io->rx_blocked = 1;
        else if (r < 0)
            io->rx_errno = errno; /* GnuTLS itself only says "pull error" */
        if (r <= 0)
            return r; /* errno tells GnuTLS EAGAIN/EINTR/other; 0 is EOF */
        io->ilen = (size_t)r;
        io->rx_total += (uint64_t)r;
    }
    size_t k = io->ilen - io->ioff;
    if (k > n)
        k = n;
    memcpy(data, io->ibuf + io->ioff, k);
    io->ioff += k;
    return (ssize_t)k;
}

static int pull_timeout(gnutls_transport_ptr_t p, unsigned ms)
{
    struct ri_tlsio *io = p;
    if (io->ioff < io->ilen)
        return 1;
    struct pollfd pfd = {.fd = io->fd, .events = POLLIN};
    return poll(&pfd, 1, (int)ms);
}

int ri_tlsio_init(struct ri_tlsio *io, int fd)
{
    memset(io, 0, sizeof *io);
    io->fd = fd;
    io->ibuf = malloc(RI_NETBUF_SIZE);
    io->obuf = malloc(RI_NETBUF_SIZE);
    if (!io->ibuf || !io->obuf) {
        ri_tlsio_free(io);
        return -1;
    }
    return 0;
}

int ri_tlsio_start(struct ri_tlsio *io, const struct ri_tls_creds *c, int server,
                   const char *sni)
{
    int rc = ri_tls_session(&io->s, c, server, io->fd, sni);
    if (rc < 0)
        return rc;
    gnutls_transport_set_ptr(io->s, io);
    gnutls_transport_set_push_function(io->s, push);
    gnutls_transport_set_pull_function(io->s, pull);
    gnutls_transport_set_pull_timeout_function(io->s, pull_timeout);
    return 0;
}

void ri_tlsio_free(struct ri_tlsio *io)
{
    if (io->s)
        gnutls_deinit(io->s);
    free(io->ibuf);
    free(io->obuf);
    io->s = NULL;
    io->ibuf = io->obuf = NULL;
}

int ri_tlsio_flush(struct ri_tlsio *io, char *err, size_t errlen)
{
    while (io->ooff < io->olen) {
        ssize_t n = send(io->fd, io->obuf + io->ooff, io->olen - io->ooff, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN)
                return RI_TLSIO_AGAIN;
            io->tx_errno = errno;
            snprintf(err, errlen, "send: %s", strerror(errno));
            return RI_TLSIO_ERROR;
        }
        io->ooff += (size_t)n;
    }
    io->ooff = io->olen = 0;
    return RI_TLSIO_DONE;
}

int ri_tlsio_handshake(struct ri_tlsio *io, char *err, size_t errlen)
{
    int rc = gnutls_handshake(io->s);
    int fl = ri_tlsio_flush(io, err, errlen);
    if (fl == RI_TLSIO_ERROR)
        return RI_TLSIO_ERROR;
    if (rc == GNUTLS_E_AGAIN || rc == GNUTLS_E_INTERRUPTED || (rc < 0 && !gnutls_error_is_fatal(rc)))
        return RI_TLSIO_AGAIN; /* a warning alert: keep going */
    if (rc < 0) {
        snprintf(err, errlen, "TLS handshake failed: %s", rc == GNUTLS_E_PULL_ERROR && io->rx_errno
                                                          ? strerror(io->rx_errno)
                                                          : gnutls_strerror(rc));
        return RI_TLSIO_ERROR;
    }
    return RI_TLSIO_DONE;
}

int ri_tlsio_recv(struct ri_tlsio *io, void *buf, size_t cap, size_t *got, char *err,
                  size_t errlen)
{
    io->rx_blocked = 0;
    *got = 0;
    ssize_t n = gnutls_record_recv(io->s, buf, cap);
    if (n > 0) {
        *got = (size_t)n;
        return RI_TLSIO_DONE;
    }
    if (n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED)
        /* AGAIN without an empty socket: GnuTLS handled a post-handshake
         * message (a TLS 1.3 KeyUpdate, a session ticket) while more
         * records may wait in ibuf, for which the socket will not turn
         * readable again */
        return io->rx_blocked ? RI_TLSIO_AGAIN : RI_TLSIO_RETRY;
    if (n == 0 || n == GNUTLS_E_PREMATURE_TERMINATION)
        return RI_TLSIO_EOF; /* peers close without close_notify */
    if (n == GNUTLS_E_PULL_ERROR) {
        snprintf(err, errlen, "connection lost: %s", strerror(io->rx_errno));
        return RI_TLSIO_ERROR;
    }
    if (!gnutls_error_is_fatal((int)n))
        return RI_TLSIO_RETRY; /* a warning alert */
    snprintf(err, errlen, "TLS receive: %s", gnutls_strerror((int)n));
    return RI_TLSIO_ERROR;
}

ssize_t ri_tlsio_send(struct ri_tlsio *io, const void *p, size_t n, char *err, size_t errlen)
{
    if (!ri_tlsio_room(io))
        return 0;
    if (n > RI_TLS_RECORD)
        n = RI_TLS_RECORD;
    ssize_t r = gnutls_record_send(io->s, p, n);
    /* obuf had room for a whole record, so push never says AGAIN here */
    if (r < 0) {
        snprintf(err, errlen, "TLS send: %s", gnutls_strerror((int)r));
        return -1;
    }
    return r;
}

int ri_tlsio_has_input(const struct ri_tlsio *io)
{
    return io->ioff < io->ilen || (io->s && gnutls_record_check_pending(io->s));
}

const char *ri_tlsio_cipher(const struct ri_tlsio *io)
{
    return io->s ? gnutls_cipher_get_name(gnutls_cipher_get(io->s)) : "?";
}
