/* tls.h -- GnuTLS setup for the tunnel: credentials (files, or a
 * self-signed certificate: ephemeral, or kept by certstate.c), sessions,
 * peer checks, channel binding. */
#ifndef RI_TLS_H
#define RI_TLS_H

#include <gnutls/gnutls.h>
#include <stddef.h>
#include <stdint.h>

/* Where a hub's certificate came from. */
enum ri_tls_origin {
    RI_TLS_CLIENT,     /* edge credentials */
    RI_TLS_FROM_FILES, /* tls_cert / tls_key */
    RI_TLS_FROM_STATE, /* the self-signed one kept in state_dir */
    RI_TLS_EPHEMERAL,  /* made at start, gone at exit */
};

#define RI_TLS_FP_LEN (7 + 95 + 1) /* "sha256:aa:bb:...", NUL */

/* Credentials are shared by every session made with them and reference-
 * counted: a session keeps its credentials until it is freed, so a reload
 * that loads a renewed certificate never pulls them from under a live
 * tunnel. */
struct ri_tls_creds {
    _Atomic int refs; /* atomic: dropped on whichever worker thread held the last reference */
    gnutls_certificate_credentials_t cred;
    gnutls_priority_t prio;
    /* hub: "sha256:aa:bb:..." of its certificate; edge: the same of the
     * hub_ca file's bytes (to tell a renewed file on reload) */
    char fingerprint[RI_TLS_FP_LEN];
    enum ri_tls_origin origin;
    int have_ca;   /* edge: verify against a CA file */
    unsigned n_ca; /* edge: certificates in it */
};

/* Which file an error is about, so the caller can name its setting. */
enum { RI_TLS_OTHER, RI_TLS_CERT, RI_TLS_KEY };

int ri_tls_init(void);
/* Hub credentials (one reference) from PEM files, read now: a renewed file
 * at the same path is read anew on every call. NULL with err (naming the
 * file) on failure, and *which (may be NULL) says which file: a missing or
 * unreadable file, no PEM certificate, no usable key, a key that does not
 * match the certificate. */
struct ri_tls_creds *ri_tls_server_creds(const char *cert, const char *key, int *which,
                                         char *err, size_t errlen);
/* The same from PEM in memory; cert_name/key_name name them in errors. */
struct ri_tls_creds *ri_tls_server_creds_mem(const gnutls_datum_t *cert, const gnutls_datum_t *key,
                                             const char *cert_name, const char *key_name,
                                             int *which, char *err, size_t errlen);
/* Hub credentials with a new self-signed certificate, kept nowhere. */
struct ri_tls_creds *ri_tls_server_ephemeral(char *err, size_t errlen);
/* A new self-signed certificate (ECDSA P-256, CN ri-hub, ten years) and its
 * key as PEM; free both with ri_tls_pem_free. */
int ri_tls_selfsigned_pem(gnutls_datum_t *cert, gnutls_datum_t *key, char *err, size_t errlen);
/* A whole file (at most 1 MiB) into out (NUL-terminated, not counted);
 * free with ri_tls_pem_free, which wipes it first (it may hold a key). */
int ri_tls_read_file(const char *path, gnutls_datum_t *out, char *err, size_t errlen);
void ri_tls_pem_free(gnutls_datum_t *d);
/* Edge credentials (one reference); ca_file may be NULL. The CA file is
 * read anew on every call. */
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
