/*
 * fuzz_base64.c - libFuzzer harness for the strict base64 decoder, plus an
 * encode -> decode round trip of the raw input.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "proto/base64.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t cap = base64_decoded_max(size), n, m;
	unsigned char *out = xmalloc(cap);
	char *enc;

	if (base64_decode((const char *)data, size, out, cap, &n)) {
		/* Canonical input: re-encoding gives the same text back. */
		enc = base64_encode_alloc(out, n);
		if (strlen(enc) != size || memcmp(enc, data, size) != 0)
			abort();
		free(enc);
	}
	enc = base64_encode_alloc(data, size);
	free(out);
	out = xmalloc(size + 1);
	if (!base64_decode(enc, strlen(enc), out, size, &m) || m != size ||
	    memcmp(out, data, size) != 0)
		abort();
	free(enc);
	free(out);
	return 0;
}
