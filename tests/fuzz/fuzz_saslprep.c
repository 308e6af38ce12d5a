/*
 * fuzz_saslprep.c - libFuzzer harness for SASLprep (RFC 4013).  The first
 * byte picks stored or query mode; the rest is the input.  Beyond "no
 * crash", it checks what callers rely on: an output has no NUL, has the
 * length reported, and is its own SASLprep (idempotence), so a prepared
 * password stored by `tern user` matches the same password presented later.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/saslprep.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	enum saslprep_mode mode;
	char *out, *again;
	size_t out_len, again_len;

	if (size == 0)
		return 0;
	mode = (data[0] & 1) ? SASLPREP_QUERY : SASLPREP_STORED;
	if (saslprep((const char *)data + 1, size - 1, mode, &out, &out_len) != SASLPREP_OK)
		return 0;
	if (strlen(out) != out_len)
		__builtin_trap();
	/* Longer outputs than the bound cannot be prepared again. */
	if (out_len <= SASLPREP_INPUT_MAX) {
		if (saslprep(out, out_len, mode, &again, &again_len) != SASLPREP_OK)
			__builtin_trap();
		if (again_len != out_len || memcmp(again, out, out_len) != 0)
			__builtin_trap();
		free(again);
	}
	free(out);
	return 0;
}
