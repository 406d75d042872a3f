/* tls.c -- TLS 1.3 via GnuTLS. Only TLS 1.3 is offered: the auth proof binds
 * to the session through the exporter (RFC 9266), which needs it. */
#include "tls.h"

#include <ctype.h>
#include <errno.h>
#include <gnutls/crypto.h>
#include <gnutls/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
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

/* A new ECDSA P-256 key and a certificate for it signed by itself (CN
 * ri-hub, valid ten years). */
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

int ri_tls_selfsigned_pem(gnutls_datum_t *cert, gnutls_datum_t *key, char *err, size_t errlen)
{
    gnutls_x509_crt_t crt;
    gnutls_x509_privkey_t pk;
    cert->data = key->data = NULL;
    cert->size = key->size = 0;
    if (make_selfsigned(&crt, &pk, err, errlen) < 0)
        return -1;
    int rc = gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_PEM, cert);
    if (rc >= 0)
        rc = gnutls_x509_privkey_export2(pk, GNUTLS_X509_FMT_PEM, key);
    gnutls_x509_crt_deinit(crt);
    gnutls_x509_privkey_deinit(pk);
    if (rc < 0) {
        snprintf(err, errlen, "cannot encode the self-signed certificate: %s",
                 gnutls_strerror(rc));
        ri_tls_pem_free(cert);
        ri_tls_pem_free(key);
        return -1;
    }
    return 0;
}

void ri_tls_pem_free(gnutls_datum_t *d)
{
    if (d->data) {
        gnutls_memset(d->data, 0, d->size);
        gnutls_free(d->data);
    }
    d->data = NULL;
    d->size = 0;
}

/* Certificates and keys are small: a file much larger is not one. */
#define PEM_FILE_MAX (1 << 20)

int ri_tls_read_file(const char *path, gnutls_datum_t *out, char *err, size_t errlen)
{
    out->data = NULL;
    out->size = 0;
    FILE *f = fopen(path, "rbe");
    if (!f) {
        snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
        return -1;
    }
    struct stat st;
    if (fstat(fileno(f), &st) == 0 && S_ISDIR(st.st_mode)) {
        snprintf(err, errlen, "%s is a folder, not a file", path);
        fclose(f);
        return -1;
    }
    size_t cap = 4096, n = 0;
    unsigned char *buf = gnutls_malloc(cap + 1);
    while (buf) {
        n += fread(buf + n, 1, cap - n, f);
        if (n < cap)
            break;
        unsigned char *nb = cap < PEM_FILE_MAX ? gnutls_malloc(cap * 2 + 1) : NULL;
        if (nb)
            memcpy(nb, buf, n);
        gnutls_memset(buf, 0, cap);
        gnutls_free(buf);
        buf = nb;
        if (!nb) {
            fclose(f);
            if (cap >= PEM_FILE_MAX)
                snprintf(err, errlen, "%s is larger than %d bytes: not a PEM file", path,
                         PEM_FILE_MAX);
            else
                snprintf(err, errlen, "out of memory reading %s", path);
            return -1;
        }
        cap *= 2;
    }
    if (!buf) {
        fclose(f);
        snprintf(err, errlen, "out of memory reading %s", path);
        return -1;
    }
    if (ferror(f)) {
        snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
        gnutls_memset(buf, 0, n);
        gnutls_free(buf);
        fclose(f);
        return -1;
    }
    fclose(f);
    buf[n] = '\0';
    out->data = buf;
    out->size = (unsigned)n;
    return 0;
}

struct ri_tls_creds *ri_tls_server_creds_mem(const gnutls_datum_t *cert, const gnutls_datum_t *key,
                                             const char *cert_name, const char *key_name,
                                             int *which, char *err, size_t errlen)
{
    int dummy;
    if (!which)
        which = &dummy;
    /* each file on its own first, so that the error names the one at fault */
    *which = RI_TLS_CERT;
    gnutls_x509_crt_t crt = NULL;
    gnutls_x509_privkey_t pk = NULL;
    int rc;
    if ((rc = gnutls_x509_crt_init(&crt)) < 0 ||
        (rc = gnutls_x509_crt_import(crt, cert, GNUTLS_X509_FMT_PEM)) < 0) {
        snprintf(err, errlen, "%s holds no PEM certificate (%s)", cert_name, gnutls_strerror(rc));
        if (crt)
            gnutls_x509_crt_deinit(crt);
        return NULL;
    }
    *which = RI_TLS_KEY;
    if ((rc = gnutls_x509_privkey_init(&pk)) < 0 ||
        (rc = gnutls_x509_privkey_import2(pk, key, GNUTLS_X509_FMT_PEM, NULL, 0)) < 0) {
        snprintf(err, errlen, "%s holds no usable PEM private key (%s)", key_name,
                 rc == GNUTLS_E_DECRYPTION_FAILED ? "it is encrypted" : gnutls_strerror(rc));
        if (pk)
            gnutls_x509_privkey_deinit(pk);
        gnutls_x509_crt_deinit(crt);
        return NULL;
    }
    gnutls_x509_privkey_deinit(pk);
    *which = RI_TLS_OTHER;
    struct ri_tls_creds *c = creds_new(err, errlen);
    if (!c) {
        gnutls_x509_crt_deinit(crt);
        return NULL;
    }
    rc = gnutls_certificate_set_x509_key_mem2(c->cred, cert, key, GNUTLS_X509_FMT_PEM, NULL, 0);
    if (rc < 0) {
        *which = rc == GNUTLS_E_CERTIFICATE_KEY_MISMATCH ? RI_TLS_KEY : RI_TLS_CERT;
        if (rc == GNUTLS_E_CERTIFICATE_KEY_MISMATCH)
            snprintf(err, errlen, "the key in %s does not match the certificate in %s",
                     key_name, cert_name);
        else
            snprintf(err, errlen, "cannot use %s with %s: %s", cert_name, key_name,
                     gnutls_strerror(rc));
        gnutls_x509_crt_deinit(crt);
        ri_tls_creds_unref(c);
        return NULL;
    }
    uint8_t d[32];
    size_t n = sizeof d;
    if (gnutls_x509_crt_get_fingerprint(crt, GNUTLS_DIG_SHA256, d, &n) == 0)
        hex_fp(d, n, c->fingerprint);
    else
        snprintf(c->fingerprint, sizeof c->fingerprint, "sha256:?");
    gnutls_x509_crt_deinit(crt);
    return c;
}

struct ri_tls_creds *ri_tls_server_creds(const char *cert, const char *key, int *which,
                                         char *err, size_t errlen)
{
    int dummy;
    if (!which)
        which = &dummy;
    gnutls_datum_t cd, kd;
    *which = RI_TLS_CERT;
    if (ri_tls_read_file(cert, &cd, err, errlen) < 0)
        return NULL;
    *which = RI_TLS_KEY;
    if (ri_tls_read_file(key, &kd, err, errlen) < 0) {
        ri_tls_pem_free(&cd);
        return NULL;
    }
    struct ri_tls_creds *c = ri_tls_server_creds_mem(&cd, &kd, cert, key, which, err, errlen);
    ri_tls_pem_free(&cd);
    ri_tls_pem_free(&kd);
    if (c)
        c->origin = RI_TLS_FROM_FILES;
    return c;
}

struct ri_tls_creds *ri_tls_server_ephemeral(char *err, size_t errlen)
{
    gnutls_datum_t cd, kd;
    if (ri_tls_selfsigned_pem(&cd, &kd, err, errlen) < 0)
        return NULL;
    struct ri_tls_creds *c = ri_tls_server_creds_mem(&cd, &kd, "the new certificate",
                                                     "the new key", NULL, err, errlen);
    ri_tls_pem_free(&cd);
    ri_tls_pem_free(&kd);
    if (c)
        c->origin = RI_TLS_EPHEMERAL;
    return c;
}

struct ri_tls_creds *ri_tls_client_creds(const char *ca_file, char *err, size_t errlen)
{
    gnutls_datum_t ca = {0};
    if (ca_file && ri_tls_read_file(ca_file, &ca, err, errlen) < 0)
        return NULL;
    struct ri_tls_creds *c = creds_new(err, errlen);
    if (!c) {
        ri_tls_pem_free(&ca);
        return NULL;
    }
    if (ca_file) {
        int rc = gnutls_certificate_set_x509_trust_mem(c->cred, &ca, GNUTLS_X509_FMT_PEM);
        if (rc <= 0) {
            snprintf(err, errlen, "%s holds no PEM certificate%s%s", ca_file, rc ? ": " : "",
                     rc ? gnutls_strerror(rc) : "");
            ri_tls_pem_free(&ca);
            ri_tls_creds_unref(c);
            return NULL;
        }
        c->have_ca = 1;
        c->n_ca = (unsigned)rc;
        uint8_t d[32];
        if (gnutls_hash_fast(GNUTLS_DIG_SHA256, ca.data, ca.size, d) == 0)
            hex_fp(d, sizeof d, c->fingerprint);
        ri_tls_pem_free(&ca);
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
