/*
 * dnsbl.c - zone specs, query names and answer matching for DNS
 * blocklists and allow lists (RFC 5782).  Pure: bytes in, a result out.
 */
#include "proto/dnsbl.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <string.h>

const char *dnsbl_zone_err_str(enum dnsbl_zone_err e)
{
	switch (e) {
	case DNSBL_ZONE_OK: return "ok";
	case DNSBL_ZONE_EMPTY: return "no zone name";
	case DNSBL_ZONE_BAD_NAME: return "not a domain name";
	case DNSBL_ZONE_TOO_LONG: return "zone name too long";
	case DNSBL_ZONE_BAD_CODE: return "code after = is not an address in 127.0.0.0/8";
	}
	return "unknown";
}

/* Letters, digits, '-' and '_' (zones such as _dnsbl.example occur),
 * labels of 1..63 octets. */
static enum dnsbl_zone_err zone_name(const char *p, size_t len, char *out)
{
	size_t label = 0;

	if (len > 0 && p[len - 1] == '.')
		len--;
	if (len == 0)
		return DNSBL_ZONE_EMPTY;
	if (len > DNSBL_ZONE_MAX)
		return DNSBL_ZONE_TOO_LONG;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)p[i];
		if (c == '.') {
			if (label == 0)
				return DNSBL_ZONE_BAD_NAME;
			label = 0;
		} else if (isalnum(c) || c == '-' || c == '_') {
			if (++label > 63)
				return DNSBL_ZONE_BAD_NAME;
		} else {
			return DNSBL_ZONE_BAD_NAME;
		}
		out[i] = (char)tolower(c);
	}
	if (label == 0)   /* "a.." : one trailing dot was the root's, the next is an empty label */
		return DNSBL_ZONE_BAD_NAME;
	out[len] = '\0';
	return DNSBL_ZONE_OK;
}

enum dnsbl_zone_err dnsbl_zone_parse(const char *spec, size_t len, struct dnsbl_zone *out)
{
	const char *eq = memchr(spec, '=', len);
	size_t nlen = eq ? (size_t)(eq - spec) : len;
	enum dnsbl_zone_err e;
	char code[16];
	struct in_addr a;

	memset(out, 0, sizeof(*out));
	e = zone_name(spec, nlen, out->name);
	if (e != DNSBL_ZONE_OK)
		return e;
	out->any = true;
	if (eq == NULL)
		return DNSBL_ZONE_OK;
	size_t clen = len - nlen - 1;
	if (clen == 0 || clen >= sizeof(code))
		return DNSBL_ZONE_BAD_CODE;
	memcpy(code, eq + 1, clen);
	code[clen] = '\0';
	if (memchr(code, '\0', clen) != NULL || inet_pton(AF_INET, code, &a) != 1)
		return DNSBL_ZONE_BAD_CODE;
	out->code = ntohl(a.s_addr);
	if ((out->code >> 24) != 127)
		return DNSBL_ZONE_BAD_CODE;
	out->any = false;
	return DNSBL_ZONE_OK;
}

size_t dnsbl_query_name(const struct sockaddr *sa, const char *zone, char *out, size_t cap)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *b;
	char prefix[80];
	size_t o = 0;
	int n;

	if (sa->sa_family == AF_INET6) {
		const struct in6_addr *a6 = &((const struct sockaddr_in6 *)sa)->sin6_addr;
		b = a6->s6_addr;
		if (IN6_IS_ADDR_V4MAPPED(a6)) {
			b += 12;
			snprintf(prefix, sizeof(prefix), "%u.%u.%u.%u", b[3], b[2], b[1], b[0]);
		} else {
			for (int i = 15; i >= 0; i--) {
				prefix[o++] = hex[b[i] & 0xf];
				prefix[o++] = '.';
				prefix[o++] = hex[b[i] >> 4];
				prefix[o++] = i ? '.' : '\0';
			}
		}
	} else if (sa->sa_family == AF_INET) {
		b = (const unsigned char *)&((const struct sockaddr_in *)sa)->sin_addr;
		snprintf(prefix, sizeof(prefix), "%u.%u.%u.%u", b[3], b[2], b[1], b[0]);
	} else {
		return 0;
	}
	n = snprintf(out, cap, "%s.%s", prefix, zone);
	if (n < 0 || (size_t)n >= cap || n > 253) {
		if (cap > 0)
			out[0] = '\0';
		return 0;
	}
	return (size_t)n;
}

bool dnsbl_answer_matches(const struct dnsbl_zone *z, const struct in_addr *a, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		uint32_t v = ntohl(a[i].s_addr);
		if ((v >> 24) != 127)
			continue;
		if (z->any || v == z->code)
			return true;
	}
	return false;
}
