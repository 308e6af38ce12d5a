/*
 * fuzz_mime_cte.c - libFuzzer harness for proto/mime_cte: the first octet
 * picks the encoding and a cut point, the rest is decoded whole and in two
 * pieces cut there; both must give the same octets, within the bound the
 * header promises.  Identity output must be the input with CRLF line ends
 * (no octet lost or invented).
 */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/mime_cte.h"

static size_t run(enum mime_cte kind, const char *in, size_t len, size_t cut, char *out)
{
	struct mime_cte_dec d;
	size_t n;

	mime_cte_init(&d, kind);
	n = mime_cte_feed(&d, in, cut, out);
	assert(n <= MIME_CTE_OUT_MAX(cut));
	n += mime_cte_feed(&d, in + cut, len - cut, out + n);
	n += mime_cte_finish(&d, out + n);
	assert(n <= MIME_CTE_OUT_MAX(len));
	return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const enum mime_cte kinds[] = { MIME_CTE_IDENTITY, MIME_CTE_BASE64, MIME_CTE_QP };
	if (size < 1 || size > 65536)
		return 0;
	enum mime_cte kind = kinds[data[0] % 3];
	const char *in = (const char *)data + 1;
	size_t len = size - 1, cut = len ? (size_t)(data[0] / 3) % (len + 1) : 0;
	char *a = malloc(MIME_CTE_OUT_MAX(len)), *b = malloc(MIME_CTE_OUT_MAX(len));
	size_t an = run(kind, in, len, len, a), bn = run(kind, in, len, cut, b);

	assert(an == bn && memcmp(a, b, an) == 0);
	if (kind == MIME_CTE_BASE64)
		assert(an <= len * 3 / 4 + 3);
	if (kind == MIME_CTE_IDENTITY) {
		size_t lf = 0, cr_lf = 0;
		for (size_t i = 0; i < len; i++) {
			lf += in[i] == '\n';
			cr_lf += in[i] == '\n' && i > 0 && in[i - 1] == '\r';
		}
		assert(an == len + lf - cr_lf);
	}
	free(a);
	free(b);
	return 0;
}
