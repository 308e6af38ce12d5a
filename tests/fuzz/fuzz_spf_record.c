/*
 * fuzz_spf_record.c - libFuzzer harness for SPF records and macro
 * expansion: no crash, spans inside the input, expansions NUL-terminated
 * and at most 253 octets; explanations (exp= text) NUL-terminated within
 * the buffer, visible ASCII and spaces.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "core/util.h"
#include "proto/spf_record.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *in = (const char *)data;
	struct spf_record *rec = xmalloc(sizeof *rec);
	const char *reason = NULL;
	struct spf_macro_ctx ctx = { "strong-bad@email.example.com", "email.example.com", "mx.example.org",
				     size % 2 ? AF_INET : AF_INET6, { 192, 0, 2, 3 },
				     size % 3 ? "mx.receiver.example" : NULL, 1700000000 };
	char out[600];

	if (spf_record_parse(in, size, rec, &reason)) {
		if (rec->n > SPF_TERMS_MAX)
			abort();
		for (size_t i = 0; i < rec->n; i++) {
			const struct spf_span d = rec->terms[i].domain;
			if (d.len && (d.p < in || d.p + d.len > in + size))
				abort();
			if (rec->terms[i].cidr4 > 32 || rec->terms[i].cidr6 > 128)
				abort();
		}
	} else if (!reason) {
		abort();
	}
	if (spf_macro_expand(in, size, &ctx, out, sizeof out) && strlen(out) > SPF_NAME_MAX)
		abort();
	if (spf_explain_expand(in, size, &ctx, out, sizeof out)) {
		size_t n = strnlen(out, sizeof out);
		if (n == sizeof out)
			abort();
		for (size_t i = 0; i < n; i++)
			if ((unsigned char)out[i] < 0x20 || (unsigned char)out[i] > 0x7e)
				abort();
	}
	free(rec);
	return 0;
}
