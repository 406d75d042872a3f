/* b64.h -- base64url (RFC 4648 section 5), pure functions. */
#ifndef RI_B64_H
#define RI_B64_H

#include <stddef.h>

/* Encodes without padding. out needs b64url_enc_len(n) + 1 bytes (NUL). */
size_t b64url_enc_len(size_t n);
void b64url_encode(const void *in, size_t n, char *out);

/* Decodes base64url; accepts trailing '=' padding when it is correct.
 * out needs n * 3 / 4 + 3 bytes. Returns decoded length or -1 if malformed. */
long b64url_decode(const char *in, size_t n, unsigned char *out);

#endif
