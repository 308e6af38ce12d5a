/*
 * fuzz_dkim_tags.c - libFuzzer harness for DKIM tag lists, DKIM-Signature
 * values and key records: no crash, and every parsed span lies inside the
 * input.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "proto/dkim_tags.h"

static void inside(const char *in, size_t size, struct dkim_span s)
{
	if (s.len > 0 && (s.p < in || s.p + s.len > in + size))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *in = (const char *)data;
	struct dkim_taglist tl;
	struct dkim_sig *sig = xmalloc(sizeof *sig);
	struct dkim_key key;
	struct dkim_parse_err err;

	if (dkim_tags_parse(in, size, &tl) == DKIM_TAGS_OK)
		for (size_t i = 0; i < tl.n; i++) {
			inside(in, size, tl.v[i].name);
			inside(in, size, tl.v[i].value);
			if (tl.v[i].name.len == 0)
				abort();
		}
	if (dkim_sig_parse(in, size, sig, &err)) {
		inside(in, size, sig->d);
		inside(in, size, sig->s);
		inside(in, size, sig->i);
		for (size_t i = 0; i < sig->h_n; i++)
			inside(in, size, sig->h[i]);
		if (sig->bh_len != 32 || sig->b_len == 0 || sig->b_len > sizeof sig->b)
			abort();
	} else if (!err.reason) {
		abort();
	}
	if (dkim_key_parse(in, size, &key, &err))
		inside(in, size, key.p);
	free(sig);
	return 0;
}
