/* tls.h -- GnuTLS setup for the tunnel: credentials (files or an ephemeral
 * self-signed certificate), sessions, peer checks, channel binding. */
#ifndef RI_TLS_H
#define RI_TLS_H

#include <gnutls/gnutls.h>
#include <stddef.h>
#include <stdint.h>

struct ri_tls_creds {
    gnutls_certificate_credentials_t cred;
    gnutls_priority_t prio;
    char fingerprint[7 + 95 + 1]; /* hub: "sha256:aa:bb:..." of its certificate */
    int have_ca;                  /* edge: verify against a CA file */
};

int ri_tls_init(void);
/* Hub credentials; cert/key NULL makes an ephemeral self-signed one. */
int ri_tls_server_creds(struct ri_tls_creds *c, const char *cert, const char *key, char *err,
                        size_t errlen);
/* Edge credentials; ca_file may be NULL. */
int ri_tls_client_creds(struct ri_tls_creds *c, const char *ca_file, char *err, size_t errlen);
void ri_tls_creds_free(struct ri_tls_creds *c);

int ri_tls_session(gnutls_session_t *s, const struct ri_tls_creds *c, int server, int fd,
                   const char *server_name);

/* Edge: checks the hub's certificate against a pinned fingerprint
 * ("sha256:<hex>", colons optional) and/or the CA (with host name). */
int ri_tls_check_peer(gnutls_session_t s, const struct ri_tls_creds *c, const char *pin,
                      const char *host, char *err, size_t errlen);

/* TLS 1.3 exporter channel binding (RFC 9266): 32 bytes. */
int ri_tls_binding(gnutls_session_t s, uint8_t out[32]);

/* Normalises a fingerprint to lowercase hex without colons (64 chars). */
void ri_tls_fp_normalise(const char *in, char out[65]);

#endif
