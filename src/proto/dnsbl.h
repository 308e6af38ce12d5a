/*
 * dnsbl.h - the pure parts of DNS blocklists (RFC 5782): zone specs from
 * the configuration, the query name for a client address, and matching
 * an answer against a zone's listing code.  No sockets, no DNS.
 */
#ifndef TERN_PROTO_DNSBL_H
#define TERN_PROTO_DNSBL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <netinet/in.h>
#include <sys/socket.h>

#define DNSBL_ZONE_MAX 189      /* 253 less the 64 octets of an IPv6 query prefix */
#define DNSBL_QNAME_MAX 256     /* a query name with its NUL */
#define DNSBL_ZONES_MAX 32      /* zones of both kinds together: each is a query per client */

struct dnsbl_zone {
	char name[DNSBL_ZONE_MAX + 1];  /* lower case, no trailing dot */
	bool any;                       /* listed by any answer in 127.0.0.0/8 */
	uint32_t code;                  /* else only this one, host order */
};

enum dnsbl_zone_err {
	DNSBL_ZONE_OK,
	DNSBL_ZONE_EMPTY,       /* no zone name */
	DNSBL_ZONE_BAD_NAME,    /* a label empty, too long or with a bad octet */
	DNSBL_ZONE_TOO_LONG,    /* over DNSBL_ZONE_MAX */
	DNSBL_ZONE_BAD_CODE,    /* after '=': not an IPv4 address in 127.0.0.0/8 */
};

/* "ZONE" or "ZONE=127.0.0.2", len octets (no NUL needed). */
enum dnsbl_zone_err dnsbl_zone_parse(const char *spec, size_t len, struct dnsbl_zone *out);
const char *dnsbl_zone_err_str(enum dnsbl_zone_err e);

/* The name to ask for A: reversed octets (4.3.2.1.ZONE) for IPv4 and
 * IPv4-mapped IPv6, 32 reversed nibbles for IPv6 (RFC 5782 2.1, 2.4).
 * Returns its length, 0 for another family or when it does not fit. */
size_t dnsbl_query_name(const struct sockaddr *sa, const char *zone, char *out, size_t cap);

/* Does one of the n answers (network order, as DNS gives them) list the
 * client?  Answers outside 127.0.0.0/8 are errors of the list (RFC 5782
 * 2.3 reserves that range) and never count. */
bool dnsbl_answer_matches(const struct dnsbl_zone *z, const struct in_addr *a, size_t n);

#endif
