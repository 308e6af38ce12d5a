/*
 * fuzz_acme_wire.c - libFuzzer harness: Retry-After on any bytes (never
 * above the cap, the same answer twice) and base64url (only its alphabet,
 * the length RFC 4648 gives without padding).
 */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/acme_wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint64_t a = 0, b = 0;
	bool ra = acme_retry_after((const char *)data, size, 1700000000, 60, &a);
	bool rb = acme_retry_after((const char *)data, size, 1700000000, 60, &b);
	assert(ra == rb);
	if (ra)
		assert(a == b && a <= 60);

	char *s = b64url_encode_alloc(data, size);
	size_t n = strlen(s);
	assert(n == (size * 4 + 2) / 3);
	for (size_t i = 0; i < n; i++)
		assert((s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') ||
		       s[i] == '-' || s[i] == '_');
	free(s);
	return 0;
}
