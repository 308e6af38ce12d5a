/*
 * test_dkim_tags.c - DKIM tag lists (RFC 6376 3.2), DKIM-Signature fields
 * (3.5) and key records (3.6.1): what is accepted, and every refusal.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "proto/dkim_tags.h"

static void test_taglist(void **state)
{
	static const struct {
		const char *in;
		enum dkim_tags_err want;
		size_t n;
		const char *name0, *value0, *name_last, *value_last;
	} cases[] = {
		{ "", DKIM_TAGS_OK, 0, NULL, NULL, NULL, NULL },
		{ "a=b", DKIM_TAGS_OK, 1, "a", "b", "a", "b" },
		{ "a=b;", DKIM_TAGS_OK, 1, "a", "b", "a", "b" },
		{ " v = 1 ; a=rsa-sha256 ;", DKIM_TAGS_OK, 2, "v", "1", "a", "rsa-sha256" },
		{ "p=", DKIM_TAGS_OK, 1, "p", "", "p", "" },
		{ "b=abc\r\n def;x_1=2", DKIM_TAGS_OK, 2, "b", "abc\r\n def", "x_1", "2" },
		{ "b=abc\n\tdef", DKIM_TAGS_OK, 1, "b", "abc\n\tdef", "b", "abc\n\tdef" },
		{ "h=from : to", DKIM_TAGS_OK, 1, "h", "from : to", "h", "from : to" },
		{ "a=b;a=c", DKIM_TAGS_DUPLICATE, 0, NULL, NULL, NULL, NULL },
		{ "=b", DKIM_TAGS_SYNTAX, 0, NULL, NULL, NULL, NULL },
		{ "1a=b", DKIM_TAGS_SYNTAX, 0, NULL, NULL, NULL, NULL },
		{ "a", DKIM_TAGS_SYNTAX, 0, NULL, NULL, NULL, NULL },
		{ "a b=c", DKIM_TAGS_SYNTAX, 0, NULL, NULL, NULL, NULL },
		{ "a=b;;", DKIM_TAGS_SYNTAX, 0, NULL, NULL, NULL, NULL },
		{ "a=\x80", DKIM_TAGS_SYNTAX, 0, NULL, NULL, NULL, NULL },
		{ "a=b\x01", DKIM_TAGS_SYNTAX, 0, NULL, NULL, NULL, NULL },
		{ "a-b=c", DKIM_TAGS_SYNTAX, 0, NULL, NULL, NULL, NULL },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct dkim_taglist tl;
		enum dkim_tags_err e = dkim_tags_parse(cases[i].in, strlen(cases[i].in), &tl);
		print_message("case %zu: %s\n", i, cases[i].in);
		assert_int_equal(e, cases[i].want);
		if (e != DKIM_TAGS_OK)
			continue;
		assert_int_equal(tl.n, cases[i].n);
		if (tl.n == 0)
			continue;
		assert_int_equal(tl.v[0].name.len, strlen(cases[i].name0));
		assert_memory_equal(tl.v[0].name.p, cases[i].name0, tl.v[0].name.len);
		assert_int_equal(tl.v[0].value.len, strlen(cases[i].value0));
		assert_memory_equal(tl.v[0].value.p, cases[i].value0, tl.v[0].value.len);
		assert_int_equal(tl.v[tl.n - 1].value.len, strlen(cases[i].value_last));
		assert_memory_equal(tl.v[tl.n - 1].value.p, cases[i].value_last, strlen(cases[i].value_last));
		assert_non_null(dkim_tags_get(&tl, cases[i].name_last));
	}
}

static void test_taglist_bound(void **state)
{
	char buf[DKIM_TAGS_MAX * 8 + 16];
	size_t n = 0;
	struct dkim_taglist tl;

	for (int i = 0; i <= DKIM_TAGS_MAX; i++)
		n += (size_t)sprintf(buf + n, "t%d=x;", i);
	assert_int_equal(dkim_tags_parse(buf, n, &tl), DKIM_TAGS_TOO_MANY);
}

#define B64_SIG "dGVzdA=="
#define BH "bh=2jUSOH9NhtVGCQWNr9BrIAPreKQjO6Sn7XIkfJVOzv8="

static void test_sig(void **state)
{
	static const struct {
		const char *in;
		const char *reason; /* NULL: accepted */
	} cases[] = {
		{ "v=1; a=rsa-sha256; d=example.com; s=sel; h=from:to; " BH "; b=" B64_SIG, NULL },
		{ "v=1; a=ed25519-sha256; c=relaxed/simple; d=e.com; s=s; h=From; " BH "; b=" B64_SIG, NULL },
		{ "v=1; a=rsa-sha256; c=relaxed; d=e.com; s=s; h=from; i=u@sub.e.com; l=10; t=5; x=6; q=dns/txt; " BH
		  "; b=dGVz\r\n dA==", NULL },
		{ "v=1; a=rsa-sha1; d=e.com; s=s; h=from; " BH "; b=" B64_SIG, "rsa-sha1 is not accepted (RFC 8301)" },
		{ "v=1; a=rsa-md5; d=e.com; s=s; h=from; " BH "; b=" B64_SIG, "unknown algorithm" },
		{ "v=2; a=rsa-sha256; d=e.com; s=s; h=from; " BH "; b=" B64_SIG, "v= is not 1" },
		{ "a=rsa-sha256; d=e.com; s=s; h=from; " BH "; b=" B64_SIG, "v= is not 1" },
		{ "v=1; a=rsa-sha256; d=e.com; s=s; h=to:subject; " BH "; b=" B64_SIG, "From is not signed" },
		{ "v=1; a=rsa-sha256; d=e.com; s=s; h=from::to; " BH "; b=" B64_SIG, "h= is missing or malformed" },
		{ "v=1; a=rsa-sha256; d=e.com; s=s; " BH "; b=" B64_SIG, "h= is missing or malformed" },
		{ "v=1; a=rsa-sha256; s=s; h=from; " BH "; b=" B64_SIG, "no d= tag" },
		{ "v=1; a=rsa-sha256; d=e.com; h=from; " BH "; b=" B64_SIG, "no s= tag" },
		{ "v=1; a=rsa-sha256; d=e.com; s=s; h=from; " BH, "no b= or bh= tag" },
		{ "v=1; a=rsa-sha256; d=e.com; s=s; h=from; " BH "; b=!!!", "b= is not base64" },
		{ "v=1; a=rsa-sha256; d=e.com; s=s; h=from; bh=dGVzdA==; b=" B64_SIG, "bh= is not a base64 SHA-256 hash" },
		{ "v=1; a=rsa-sha256; d=e.com; s=s; h=from; i=u@other.com; " BH "; b=" B64_SIG, "i= is not in d=" },
		{ "v=1; a=rsa-sha256; d=e.com; s=s; h=from; i=u@xe.com; " BH "; b=" B64_SIG, "i= is not in d=" },
		{ "v=1; a=rsa-sha256; d=e.com; s=s; h=from; l=x; " BH "; b=" B64_SIG, "l= is not a number" },
		{ "v=1; a=rsa-sha256; d=e.com; s=s; h=from; l=99999999999999999999999; " BH "; b=" B64_SIG,
		  "l= is not a number" },
		{ "v=1; a=rsa-sha256; d=e.com; s=s; h=from; t=10; x=9; " BH "; b=" B64_SIG, "x= is before t=" },
		{ "v=1; a=rsa-sha256; c=fancy; d=e.com; s=s; h=from; " BH "; b=" B64_SIG, "unknown canonicalization" },
		{ "v=1; a=rsa-sha256; q=http; d=e.com; s=s; h=from; " BH "; b=" B64_SIG, "q= has no dns/txt" },
		{ "v=1; v=1", "bad tag list" },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct dkim_sig *sig = malloc(sizeof *sig);
		struct dkim_parse_err err = { NULL };
		bool ok = dkim_sig_parse(cases[i].in, strlen(cases[i].in), sig, &err);
		print_message("case %zu: %s\n", i, cases[i].in);
		if (cases[i].reason) {
			assert_false(ok);
			assert_string_equal(err.reason, cases[i].reason);
		} else {
			assert_true(ok);
			assert_int_equal(sig->bh_len, 32);
			assert_int_equal(sig->b_len, 4);
			assert_memory_equal(sig->b, "test", 4);
		}
		free(sig);
	}
}

static void test_sig_fields(void **state)
{
	const char *in = "v=1; a=ed25519-sha256; c=relaxed/relaxed; d=example.com; s=sel; h=from : to :\r\n"
			 " subject; l=42; t=100; x=200; " BH "; b=" B64_SIG;
	struct dkim_sig *sig = malloc(sizeof *sig);
	struct dkim_parse_err err;

	assert_true(dkim_sig_parse(in, strlen(in), sig, &err));
	assert_int_equal(sig->alg, DKIM_ALG_ED25519_SHA256);
	assert_int_equal(sig->hcanon, DKIM_CANON_RELAXED);
	assert_int_equal(sig->bcanon, DKIM_CANON_RELAXED);
	assert_int_equal(sig->h_n, 3);
	assert_true(dkim_span_ieq(sig->h[2], "subject", 7));
	assert_true(dkim_span_ieq(sig->d, "example.com", 11));
	assert_true(sig->has_l && sig->l == 42);
	assert_true(sig->has_t && sig->t == 100 && sig->has_x && sig->x == 200);
	assert_int_equal(sig->b_value.len, strlen(B64_SIG));
	free(sig);
}

static void test_key(void **state)
{
	static const struct {
		const char *in;
		const char *reason;
		enum dkim_key_type type;
		bool testing, strict;
	} cases[] = {
		{ "v=DKIM1; k=rsa; p=MIIB", NULL, DKIM_KEY_RSA, false, false },
		{ "p=MIIB", NULL, DKIM_KEY_RSA, false, false },
		{ "v=DKIM1; k=ed25519; t=y:s; s=email; h=sha256; p=abc", NULL, DKIM_KEY_ED25519, true, true },
		{ "v=DKIM1; s=*; p=", NULL, DKIM_KEY_RSA, false, false },
		{ "k=rsa; v=DKIM1; p=MIIB", "key record v= is not DKIM1", DKIM_KEY_RSA, false, false },
		{ "v=DKIM2; p=MIIB", "key record v= is not DKIM1", DKIM_KEY_RSA, false, false },
		{ "v=DKIM1; k=dsa; p=MIIB", "unknown key type", DKIM_KEY_RSA, false, false },
		{ "v=DKIM1; h=sha1; p=MIIB", "key does not allow sha256", DKIM_KEY_RSA, false, false },
		{ "v=DKIM1; s=tlsrpt; p=MIIB", "key is not for email", DKIM_KEY_RSA, false, false },
		{ "v=DKIM1; k=rsa", "key record has no p=", DKIM_KEY_RSA, false, false },
		{ "garbage", "bad key record", DKIM_KEY_RSA, false, false },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct dkim_key key;
		struct dkim_parse_err err = { NULL };
		bool ok = dkim_key_parse(cases[i].in, strlen(cases[i].in), &key, &err);
		print_message("case %zu: %s\n", i, cases[i].in);
		if (cases[i].reason) {
			assert_false(ok);
			assert_string_equal(err.reason, cases[i].reason);
			continue;
		}
		assert_true(ok);
		assert_int_equal(key.type, cases[i].type);
		assert_int_equal(key.testing, cases[i].testing);
		assert_int_equal(key.strict_i, cases[i].strict);
	}
}

static void test_base64_fws(void **state)
{
	unsigned char out[16];
	size_t n;

	assert_true(dkim_base64_decode(" dG\r\n\tVz dA= =", 14, out, sizeof out, &n));
	assert_int_equal(n, 4);
	assert_memory_equal(out, "test", 4);
	assert_false(dkim_base64_decode("dGVzdA", 6, out, sizeof out, &n));
	assert_false(dkim_base64_decode("dGVzdA==", 8, out, 3, &n));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_taglist),    cmocka_unit_test(test_taglist_bound), cmocka_unit_test(test_sig),
		cmocka_unit_test(test_sig_fields), cmocka_unit_test(test_key),           cmocka_unit_test(test_base64_fws),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
