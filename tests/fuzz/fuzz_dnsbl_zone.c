/*
 * fuzz_dnsbl_zone.c - libFuzzer harness for the DNSBL zone spec parser
 * ("ZONE" or "ZONE=127.0.0.x") and the query name built from what it
 * accepts.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>

#include "proto/dnsbl.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct dnsbl_zone z;
	struct sockaddr_in6 s6 = { .sin6_family = AF_INET6 };
	char q[DNSBL_QNAME_MAX];
	size_t n;

	if (dnsbl_zone_parse((const char *)data, size, &z) != DNSBL_ZONE_OK)
		return 0;
	n = strlen(z.name);
	if (n == 0 || n > DNSBL_ZONE_MAX || (!z.any && (z.code >> 24) != 127))
		abort();
	/* What is accepted always makes a query name, even the longest
	 * (IPv6) one. */
	memset(&s6.sin6_addr, 0xab, sizeof(s6.sin6_addr));
	if (dnsbl_query_name((struct sockaddr *)&s6, z.name, q, sizeof(q)) != 64 + n)
		abort();
	/* and parses again to itself */
	struct dnsbl_zone again;
	if (dnsbl_zone_parse(z.name, n, &again) != DNSBL_ZONE_OK || strcmp(again.name, z.name) != 0)
		abort();
	return 0;
}
