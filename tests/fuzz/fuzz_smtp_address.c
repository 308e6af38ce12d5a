/*
 * fuzz_smtp_address.c - libFuzzer harness: smtp_parse_path, then
 * smtp_path_format; the formatted address wrapped in "<>" must parse back
 * to the same path, and xtext must round-trip the input.  UTF-8 paths
 * (SMTPUTF8) are well-formed and flagged.
 */
#include <assert.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "proto/smtp_parse.h"

static void check_xtext(const char *in, size_t len)
{
	char enc[3 * 512 + 1], dec[512 + 1];
	size_t n;
	if (len > 512)
		len = 512;
	size_t e = smtp_xtext_encode(in, len, enc, sizeof(enc));
	assert(e >= len && (e > 0 || len == 0));
	assert(smtp_xtext_decode(enc, e, dec, sizeof(dec), &n));
	assert(n == len && memcmp(dec, in, len) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *s = (const char *)data;
	struct smtp_path p, q;
	size_t used;
	bool allow_null = size > 0 && (data[size - 1] & 1);

	check_xtext(s, size);
	if (smtp_parse_path(s, size, allow_null, &p, &used) != SMTP_OK) {
		assert(used == 0);
		return 0;
	}
	assert(used >= 2 && used <= size && used <= SMTP_PATH_MAX);
	assert(s[0] == '<' && s[used - 1] == '>');
	assert(strlen(p.local) <= SMTP_LOCAL_MAX && strlen(p.domain) <= SMTP_DOMAIN_MAX);
	/* only well-formed UTF-8 gets through, and utf8 says whether any did */
	bool hl, hd;
	assert(smtp_utf8_valid(p.local, strlen(p.local), &hl));
	assert(smtp_utf8_valid(p.domain, strlen(p.domain), &hd));
	assert(p.utf8 == (hl || hd));

	char buf[SMTP_PATH_MAX + 1], wrapped[SMTP_PATH_MAX + 3];
	size_t n = smtp_path_format(&p, buf, sizeof(buf));
	assert(n == strlen(buf));
	if (p.null) {
		assert(n == 0);
		return 0;
	}
	/* The minimal form is never longer than what was parsed. */
	assert(n > 0 && n + 2 <= used);
	snprintf(wrapped, sizeof(wrapped), "<%s>", buf);
	assert(smtp_parse_path(wrapped, n + 2, false, &q, &used) == SMTP_OK);
	assert(used == n + 2);
	assert(strcmp(p.local, q.local) == 0);
	assert(strcmp(p.domain, q.domain) == 0);
	assert(p.domain_literal == q.domain_literal);
	assert(p.utf8 == q.utf8);
	assert(!q.had_source_route);
	/* and formatting is a fixed point */
	char again[SMTP_PATH_MAX + 1];
	assert(smtp_path_format(&q, again, sizeof(again)) == n);
	assert(strcmp(again, buf) == 0);
	return 0;
}
