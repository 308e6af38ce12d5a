/*
 * fuzz_smtp_chunk.c - libFuzzer harness: BDAT chunk decoding (the first
 * octet picks text or BINARYMIME and a split), whole and split, must agree
 * on output and errors; the output is never longer than the input, and a
 * text message's output holds no CR.
 */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/smtp_chunk.h"

static size_t decode(const char *in, size_t len, bool binary, size_t step, char *out, unsigned *errors)
{
	struct smtp_chunk c;
	size_t o = 0;

	smtp_chunk_init(&c, binary, 1000);
	for (size_t i = 0; i < len;) {
		size_t take = step == 0 || len - i < step ? len - i : step;
		o += smtp_chunk_decode(&c, in + i, take, out + o);
		i += take;
	}
	smtp_chunk_finish(&c);
	*errors = c.errors;
	return o;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0)
		return 0;
	bool binary = data[0] & 1;
	size_t step = (data[0] >> 1) % 9;
	const char *in = (const char *)data + 1;
	size_t len = size - 1;
	char *a = malloc(len + 1), *b = malloc(len + 1);
	unsigned ea, eb;

	size_t na = decode(in, len, binary, 0, a, &ea);
	size_t nb = decode(in, len, binary, step ? step : 1, b, &eb);
	assert(na == nb && ea == eb && memcmp(a, b, na) == 0);
	assert(na <= len);
	if (!binary)
		assert(memchr(a, '\r', na) == NULL);
	free(a);
	free(b);
	return 0;
}
