/* tls.c -- TLS 1.3 via GnuTLS. Only TLS 1.3 is offered: the auth proof binds
 * to the session through the exporter (RFC 9266), which needs it. */
#include "tls.h"

#include <ctype.h>
#include <gnutls/crypto.h>
#include <gnutls/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* AES-128-GCM first: the fastest AEAD with AES-NI and enough security. */
#define RI_TLS_PRIORITY                                                               \
    "NORMAL:-VERS-ALL:+VERS-TLS1.3:-CIPHER-ALL:+AES-128-GCM:+AES-256-GCM:+CHACHA20-POLY1305"

int ri_tls_init(void) { return gnutls_global_init() == 0 ? 0 : -1; }

static void hex_fp(const uint8_t *d, size_t n, char *out)
{
    char *p = out + sprintf(out, "sha256:");
    for (size_t i = 0; i < n; i++)
        p += sprintf(p, i ? ":%02x" : "%02x", d[i]);
}

static int make_selfsigned(gnutls_x509_crt_t *crt_out, gnutls_x509_privkey_t *key_out,
                           char *err, size_t errlen)
{
    gnutls_x509_privkey_t key = NULL;
    gnutls_x509_crt_t crt = NULL;
    int rc;
    if ((rc = gnutls_x509_privkey_init(&key)) < 0 ||
        (rc = gnutls_x509_privkey_generate(key, GNUTLS_PK_ECDSA,
                                           GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1), 0)) < 0 ||
        (rc = gnutls_x509_crt_init(&crt)) < 0)
        goto fail;
    uint8_t serial[16];
    gnutls_rnd(GNUTLS_RND_NONCE, serial, sizeof serial);
    serial[0] &= 0x7f;
    time_t now = time(NULL);
    static const char cn[] = "ri-hub";
    if ((rc = gnutls_x509_crt_set_version(crt, 3)) < 0 ||
        (rc = gnutls_x509_crt_set_serial(crt, serial, sizeof serial)) < 0 ||
        (rc = gnutls_x509_crt_set_activation_time(crt, now - 3600)) < 0 ||
        (rc = gnutls_x509_crt_set_expiration_time(crt, now + 10L * 365 * 86400)) < 0 ||
        (rc = gnutls_x509_crt_set_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0, cn,
                                            sizeof cn - 1)) < 0 ||
        (rc = gnutls_x509_crt_set_key(crt, key)) < 0 ||
        (rc = gnutls_x509_crt_set_key_usage(crt, GNUTLS_KEY_DIGITAL_SIGNATURE)) < 0 ||
        (rc = gnutls_x509_crt_sign2(crt, crt, key, GNUTLS_DIG_SHA256, 0)) < 0)
        goto fail;
    *crt_out = crt;
    *key_out = key;
    return 0;
fail:
    snprintf(err, errlen, "cannot make a self-signed certificate: %s", gnutls_strerror(rc));
    if (crt) gnutls_x509_crt_deinit(crt);
    if (key) gnutls_x509_privkey_deinit(key);
    return -1;
}

static struct ri_tls_creds *creds_new(char *err, size_t errlen)
{
    struct ri_tls_creds *c = calloc(1, sizeof *c);
    int rc;
    if (!c) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    c->refs = 1;
    if ((rc = gnutls_certificate_allocate_credentials(&c->cred)) < 0 ||
        (rc = gnutls_priority_init(&c->prio, RI_TLS_PRIORITY, NULL)) < 0) {
        snprintf(err, errlen, "TLS setup: %s", gnutls_strerror(rc));
        ri_tls_creds_unref(c);
        return NULL;
    }
    return c;
}

struct ri_tls_creds *ri_tls_server_creds(const char *cert, const char *key, char *err,
                                         size_t errlen)
{
    struct ri_tls_creds *c = creds_new(err, errlen);
    if (!c)
        return NULL;
    int rc;
    gnutls_x509_crt_t crt = NULL;
    if (cert) {
        rc = gnutls_certificate_set_x509_key_file2(c->cred, cert, key, GNUTLS_X509_FMT_PEM,
                                                   NULL, 0);
        if (rc < 0) {
            snprintf(err, errlen, "cannot load tls_cert %s / tls_key %s: %s", cert, key,
                     gnutls_strerror(rc));
            ri_tls_creds_unref(c);
            return NULL;
        }
        gnutls_datum_t pem;
        if (gnutls_load_file(cert, &pem) == 0) {
            if (gnutls_x509_crt_init(&crt) == 0 &&
                gnutls_x509_crt_import(crt, &pem, GNUTLS_X509_FMT_PEM) < 0) {
                gnutls_x509_crt_deinit(crt);
                crt = NULL;
            }
            gnutls_free(pem.data);
        }
    } else {
        gnutls_x509_privkey_t pk;
        if (make_selfsigned(&crt, &pk, err, errlen) < 0) {
            ri_tls_creds_unref(c);
            return NULL;
        }
        rc = gnutls_certificate_set_x509_key(c->cred, &crt, 1, pk);
        gnutls_x509_privkey_deinit(pk);
        if (rc < 0) {
            snprintf(err, errlen, "TLS setup: %s", gnutls_strerror(rc));
            gnutls_x509_crt_deinit(crt);
            ri_tls_creds_unref(c);
            return NULL;
        }
    }
    if (crt) {
        uint8_t d[32];
        size_t n = sizeof d;
        if (gnutls_x509_crt_get_fingerprint(crt, GNUTLS_DIG_SHA256, d, &n) == 0)
            hex_fp(d, n, c->fingerprint);
        gnutls_x509_crt_deinit(crt);
    }
    return c;
}

struct ri_tls_creds *ri_tls_client_creds(const char *ca_file, char *err, size_t errlen)
{
    struct ri_tls_creds *c = creds_new(err, errlen);
    if (!c)
        return NULL;
    if (ca_file) {
        int rc = gnutls_certificate_set_x509_trust_file(c->cred, ca_file, GNUTLS_X509_FMT_PEM);
        if (rc <= 0) {
            snprintf(err, errlen, "cannot load hub_ca %s: %s", ca_file,
                     rc == 0 ? "no certificate in it" : gnutls_strerror(rc));
            ri_tls_creds_unref(c);
            return NULL;
        }
        c->have_ca = 1;
    }
    return c;
}

struct ri_tls_creds *ri_tls_creds_ref(struct ri_tls_creds *c)
{
    if (c)
        c->refs++;
    return c;
}

void ri_tls_creds_unref(struct ri_tls_creds *c)
{
    if (!c || --c->refs > 0)
        return;
    if (c->cred) gnutls_certificate_free_credentials(c->cred);
    if (c->prio) gnutls_priority_deinit(c->prio);
    free(c);
}

int ri_tls_session(gnutls_session_t *s, const struct ri_tls_creds *c, int server, int fd,
                   const char *server_name)
{
    int rc = gnutls_init(s, (server ? GNUTLS_SERVER : GNUTLS_CLIENT) | GNUTLS_NONBLOCK |
                                (server ? 0 : GNUTLS_NO_TICKETS));
    if (rc < 0)
        return rc;
    if ((rc = gnutls_priority_set(*s, c->prio)) < 0 ||
        (rc = gnutls_credentials_set(*s, GNUTLS_CRD_CERTIFICATE, c->cred)) < 0) {
        gnutls_deinit(*s);
        return rc;
    }
    if (!server && server_name)
        gnutls_server_name_set(*s, GNUTLS_NAME_DNS, server_name, strlen(server_name));
    gnutls_transport_set_int(*s, fd);
    gnutls_handshake_set_timeout(*s, 0); /* the core's own timer bounds it */
    return 0;
}

void ri_tls_fp_normalise(const char *in, char out[65])
{
    size_t o = 0;
    if (strncmp(in, "sha256:", 7) == 0)
        in += 7;
    for (; *in && o < 64; in++)
        if (*in != ':')
            out[o++] = (char)tolower((unsigned char)*in);
    out[o] = '\0';
}

int ri_tls_check_peer(gnutls_session_t s, const struct ri_tls_creds *c, const char *pin,
                      const char *host, char *err, size_t errlen)
{
    if (pin) {
        unsigned n = 0;
        const gnutls_datum_t *certs = gnutls_certificate_get_peers(s, &n);
        if (!certs || n == 0) {
            snprintf(err, errlen, "hub sent no certificate");
            return -1;
        }
        uint8_t d[32];
        size_t dl = sizeof d;
        if (gnutls_fingerprint(GNUTLS_DIG_SHA256, &certs[0], d, &dl) < 0) {
            snprintf(err, errlen, "cannot fingerprint the hub certificate");
            return -1;
        }
        char got[8 + 96], want[65], gotn[65];
        hex_fp(d, dl, got);
        ri_tls_fp_normalise(pin, want);
        ri_tls_fp_normalise(got, gotn);
        if (strcmp(want, gotn) != 0) {
            snprintf(err, errlen, "hub certificate fingerprint %s does not match hub_fingerprint",
                     got);
            return -1;
        }
    }
    if (c->have_ca) {
        unsigned status = 0;
        int rc = gnutls_certificate_verify_peers3(s, host, &status);
        if (rc < 0 || status != 0) {
            gnutls_datum_t out = {0};
            if (rc >= 0 && gnutls_certificate_verification_status_print(
                               status, GNUTLS_CRT_X509, &out, 0) == 0) {
                snprintf(err, errlen, "hub certificate rejected: %s", out.data);
                gnutls_free(out.data);
            } else {
                snprintf(err, errlen, "hub certificate rejected: %s",
                         rc < 0 ? gnutls_strerror(rc) : "verification failed");
            }
            return -1;
        }
    }
    return 0;
}

int ri_tls_binding(gnutls_session_t s, uint8_t out[32])
{
    gnutls_datum_t cb = {0};
    int rc = gnutls_session_channel_binding(s, GNUTLS_CB_TLS_EXPORTER, &cb);
    if (rc < 0 || cb.size != 32) {
        if (cb.data) gnutls_free(cb.data);
        return -1;
    }
    memcpy(out, cb.data, 32);
    gnutls_free(cb.data);
    return 0;
}
