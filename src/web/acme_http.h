/*
 * acme_http.h - the small HTTPS client the ACME client talks to its CA
 * with: one request per connection, on libevent's evhttp over
 * bufferevent_openssl, names resolved through core/dns.c (c-ares), the
 * server's certificate verified against [acme] ca_file or the system's
 * trust store and its name (RFC 6125).  Nothing blocks; at most one
 * request is outstanding per client (ACME's exchanges are a sequence).
 */
#ifndef TERN_ACME_HTTP_H
#define TERN_ACME_HTTP_H

#include <stdbool.h>
#include <stddef.h>

struct event_base;
struct dns;
struct acme_http;

#define ACME_HTTP_BODY_MAX   (1024 * 1024)   /* a certificate chain fits */
#define ACME_HTTP_HEADER_MAX (32 * 1024)
#define ACME_HTTP_TIMEOUT_S  30

/* What came back; valid during the callback only.  status 0: no answer
 * (error says why: DNS, connect, TLS, timeout). */
struct acme_http_reply {
	int status;
	const char *error;
	const char *nonce;          /* Replay-Nonce, or NULL */
	const char *location;       /* Location, or NULL */
	const char *retry_after;    /* Retry-After, or NULL */
	const char *content_type;
	const char *body;           /* NUL-terminated */
	size_t len;
};

typedef void (*acme_http_cb)(const struct acme_http_reply *r, void *arg);

/* NULL with *err (xmalloc'd) when ca_file ("" = the system's) cannot be
 * loaded. */
struct acme_http *acme_http_new(struct event_base *base, struct dns *dns, const char *ca_file, char **err);
/* method GET, HEAD or POST (with body and ctype).  cb runs exactly once,
 * later, on the loop - unless acme_http_cancel or acme_http_free comes
 * first.  False (and no callback) when the URL is not https://. */
bool acme_http_request(struct acme_http *h, const char *method, const char *url, const char *ctype,
		       const char *body, size_t len, acme_http_cb cb, void *arg);
void acme_http_cancel(struct acme_http *h);
void acme_http_free(struct acme_http *h);

#endif
