/*
 * acme_wire.h - the pieces of ACME's wire format (RFC 8555) that are not
 * JSON (jansson reads that): base64url without padding (RFC 8555 6.1,
 * RFC 7515 2) and the Retry-After header (RFC 9110 10.2.3) that paces
 * polling (RFC 8555 7.5.1, 7.4).  Pure functions over bytes.
 */
#ifndef TERN_ACME_WIRE_H
#define TERN_ACME_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* base64url of len octets, no padding, xmalloc'd and NUL-terminated. */
char *b64url_encode_alloc(const void *in, size_t len);

/* Seconds to wait from a Retry-After value: delta-seconds, or an
 * IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT") taken against now (a
 * date in the past is 0).  At most max.  False when it is neither. */
bool acme_retry_after(const char *v, size_t len, int64_t now, uint64_t max, uint64_t *secs);

#endif
