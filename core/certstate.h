/* certstate.h -- the hub's self-signed certificate kept across restarts.
 *
 * A hub without tls_cert keeps the certificate it made in its state_dir:
 * hub.crt (mode 0644) and hub.key (0600), in a folder it makes with mode
 * 0700. They are made once, on first use, and loaded at every later start
 * and reload, so the fingerprint edges pin stays the same. Deleting both
 * files (and a SIGHUP or a restart) makes a new pair. */
#ifndef RI_CERTSTATE_H
#define RI_CERTSTATE_H

#include <stddef.h>

#include "tls.h"

#define RI_CERTSTATE_CERT "hub.crt"
#define RI_CERTSTATE_KEY "hub.key"

/* The certificate kept in dir (one reference): loaded, or made and saved
 * when there is none yet (*made = 1). NULL with err when the folder cannot
 * be made or written, or the files there do not load (they are then left
 * as they are: a certificate edges pin is never silently replaced). */
struct ri_tls_creds *ri_certstate_load(const char *dir, int *made, char *err, size_t errlen);

/* Whether ri_certstate_load would succeed, without changing anything (for
 * `ri-core -t`): the saved files load, or the folder exists and is
 * writable, or can be made. 0 or -1 with err. */
int ri_certstate_check(const char *dir, char *err, size_t errlen);

#endif
