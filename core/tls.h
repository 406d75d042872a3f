/* tls.h -- GnuTLS setup for the tunnel: credentials (files or an ephemeral
 * self-signed certificate), sessions, peer checks, channel binding. */
#ifndef RI_TLS_H
#define RI_TLS_H

#include <gnutls/gnutls.h>
#include <stddef.h>
#include <stdint.h>

/* Credentials are shared by every session made with them and reference-
 * counted: a session keeps its credentials until it is freed, so a reload
 * that loads a renewed certificate never pulls them from under a live
 * tunnel. */
struct ri_tls_creds {
    int refs;
    gnutls_certificate_credentials_t cred;
    gnutls_priority_t prio;
    char fingerprint[7 + 95 + 1]; /* hub: "sha256:aa:bb:..." of its certificate */
    int have_ca;                  /* edge: verify against a CA file */
};

int ri_tls_init(void);
/* Hub credentials (one reference); cert/key NULL makes an ephemeral
 * self-signed one. NULL with err on failure. */
struct ri_tls_creds *ri_tls_server_creds(const char *cert, const char *key, char *err,
                                         size_t errlen);
/* Edge credentials (one reference); ca_file may be NULL. */
struct ri_tls_creds *ri_tls_client_creds(const char *ca_file, char *err, size_t errlen);
struct ri_tls_creds *ri_tls_creds_ref(struct ri_tls_creds *c);
void ri_tls_creds_unref(struct ri_tls_creds *c);

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
