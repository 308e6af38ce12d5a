/*
 * acme.h - tern's ACME client (RFC 8555) for the certificate of its
 * hostname and of mta-sts.D / autoconfig.D of each local domain, with
 * the tls-alpn-01 (RFC 8737, on the [https] listener) or http-01 (RFC
 * 8555 8.3, on the [http] listener) challenge.  The account key and the
 * certificate live under state_dir/acme/ (0600); the certificate goes
 * into the TLS store's "acme" slot, so every TLS service uses it from the
 * next handshake on.  Renewal [acme] renew_before the expiry; failures
 * are retried with back-off while the current certificate stays in use.
 */
#ifndef TERN_ACME_H
#define TERN_ACME_H

#include <stdbool.h>
#include <stddef.h>

struct tern;
struct acme;

/* NULL when [acme] directory is empty or there is no TLS context; a
 * state directory or account key that cannot be made is fatal (*err). */
struct acme *acme_new(struct tern *t, char **err);
/* Load a saved certificate, then order one if it is missing, covers
 * other names or is due for renewal; otherwise arm the renewal timer. */
void acme_start(struct acme *a);
/* Stop: the request under way is dropped, nothing runs any more. */
void acme_free(struct acme *a);

/* http-01: the key authorization to answer for token asked of host (the
 * name the token validates, RFC 8555 8.3), or NULL (404). */
const char *acme_http01_answer(const struct acme *a, const char *host, const char *token, size_t len);
/* Is name (lower case) one of the names the certificate is ordered for? */
bool acme_orders_name(const struct acme *a, const char *name);

#endif
