/*
 * test_saslprep.c - SASLprep (RFC 4013): the examples of section 3, each
 * mapping, normalization, prohibition and bidi rule, unassigned code
 * points as stored strings and as queries, UTF-8 well-formedness and the
 * input bound.  Expected outputs were checked against Python's stringprep
 * module and unicodedata.ucd_3_2_0.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "core/util.h"
#include "proto/saslprep.h"

#define ERR NULL
#define BOTH 2          /* the same result in either mode */

static const struct {
	const char *name, *in;
	int mode;                       /* SASLPREP_STORED, SASLPREP_QUERY or BOTH */
	enum saslprep_result want;
	const char *out;                /* for SASLPREP_OK */
} cases[] = {
	/* RFC 4013 section 3 */
	{ "soft hyphen mapped to nothing", "I\u00ADX", BOTH, SASLPREP_OK, "IX" },
	{ "no transformation", "user", BOTH, SASLPREP_OK, "user" },
	{ "case preserved", "USER", BOTH, SASLPREP_OK, "USER" },
	{ "output is NFKC", "\u00AA", BOTH, SASLPREP_OK, "a" },
	{ "output is NFKC 2", "\u2168", BOTH, SASLPREP_OK, "IX" },
	{ "prohibited character", "\a", BOTH, SASLPREP_PROHIBITED, ERR },
	{ "bidirectional check", "\u0627" "1", BOTH, SASLPREP_BIDI, ERR },
	/* 2.1 mapping */
	{ "empty", "", BOTH, SASLPREP_OK, "" },
	{ "only mapped to nothing", "\u200B\uFEFF\u180B\uFE0F", BOTH, SASLPREP_OK, "" },
	{ "no-break space", "a\u00A0b", BOTH, SASLPREP_OK, "a b" },
	{ "ideographic space", "a\u3000b", BOTH, SASLPREP_OK, "a b" },
	{ "en quad", "\u2000x", BOTH, SASLPREP_OK, " x" },
	{ "ASCII space kept", "pass word", BOTH, SASLPREP_OK, "pass word" },
	/* 2.2 NFKC */
	{ "compose", "e\u0301", BOTH, SASLPREP_OK, "\u00E9" },
	{ "ligature", "\uFB01x", BOTH, SASLPREP_OK, "fix" },
	{ "fraction", "\u00BD", BOTH, SASLPREP_OK, "1\u20442" },
	{ "singleton", "\u212B", BOTH, SASLPREP_OK, "\u00C5" },
	{ "reorder then compose", "a\u0301\u0323", BOTH, SASLPREP_OK, "\u1EA1\u0301" },
	{ "blocked marks stay", "x\u0300\u0315\u0301\u0316", BOTH, SASLPREP_OK,
	  "x\u0316\u0300\u0301\u0315" },
	{ "compose through two levels", "A\u030A\u0301", BOTH, SASLPREP_OK, "\u01FA" },
	{ "compat decomposition then compose", "\u1E9B\u0323", BOTH, SASLPREP_OK, "\u1E69" },
	{ "Hangul jamo compose", "\u1100\u1161\u11A8", BOTH, SASLPREP_OK, "\uAC01" },
	{ "Hangul syllable stays", "\uAC01", BOTH, SASLPREP_OK, "\uAC01" },
	{ "Hangul LV + T", "\uAC00\u11A8", BOTH, SASLPREP_OK, "\uAC01" },
	{ "non-starter first", "\u0301a", BOTH, SASLPREP_OK, "\u0301a" },
	{ "longest expansion", "\uFDFA", BOTH, SASLPREP_OK,
	  "\u0635\u0644\u0649 \u0627\u0644\u0644\u0647 \u0639\u0644\u064A\u0647 \u0648\u0633\u0644\u0645" },
	/* 2.3 prohibited output */
	{ "NUL", "a\0b", BOTH, SASLPREP_PROHIBITED, ERR },        /* length given below */
	{ "ASCII DEL", "a\x7f", BOTH, SASLPREP_PROHIBITED, ERR },
	{ "ASCII unit separator", "\x1f", BOTH, SASLPREP_PROHIBITED, ERR },
	{ "tab", "a\tb", BOTH, SASLPREP_PROHIBITED, ERR },
	{ "C.2.2 U+0080", "\xC2\x80", BOTH, SASLPREP_PROHIBITED, ERR },
	{ "C.2.2 non-ASCII with ASCII control", "\u00E9\n", BOTH, SASLPREP_PROHIBITED, ERR },
	{ "C.3 private use", "\uE000", BOTH, SASLPREP_PROHIBITED, ERR },
	{ "C.3 plane 15", "\U000F0000", BOTH, SASLPREP_PROHIBITED, ERR },
	{ "C.4 non-character", "\xEF\xBF\xBE", BOTH, SASLPREP_PROHIBITED, ERR },
	{ "C.4 non-character U+FDD0", "\xEF\xB7\x90", BOTH, SASLPREP_PROHIBITED, ERR },
	{ "C.6 replacement char", "\uFFFD", BOTH, SASLPREP_PROHIBITED, ERR },
	{ "C.7 ideographic description", "\u2FF0", BOTH, SASLPREP_PROHIBITED, ERR },
	{ "C.8 left-to-right mark", "a\u200Eb", BOTH, SASLPREP_PROHIBITED, ERR },
	{ "C.8 right-to-left override", "\u202Eab", BOTH, SASLPREP_PROHIBITED, ERR },
	/* Prohibition applies to the output: U+0340 becomes U+0300 in NFKC. */
	{ "C.8 U+0340 is normalized away", "a\u0340", BOTH, SASLPREP_OK, "\u00E0" },
	{ "C.9 language tag", "\U000E0001", BOTH, SASLPREP_PROHIBITED, ERR },
	/* 2.4 bidi */
	{ "RandAL only", "\u0627\u0628", BOTH, SASLPREP_OK, "\u0627\u0628" },
	{ "RandAL around a digit", "\u0627" "1\u0628", BOTH, SASLPREP_OK, "\u0627" "1\u0628" },
	{ "RandAL with an L", "\u0627a\u0628", BOTH, SASLPREP_BIDI, ERR },
	{ "RandAL not first", "1\u0627", BOTH, SASLPREP_BIDI, ERR },
	{ "Hebrew", "\u05D0\u05D1", BOTH, SASLPREP_OK, "\u05D0\u05D1" },
	/* 2.5 unassigned (in Unicode 3.2) */
	{ "unassigned stored", "a\u0221", SASLPREP_STORED, SASLPREP_UNASSIGNED, ERR },
	{ "unassigned query", "a\u0221", SASLPREP_QUERY, SASLPREP_OK, "a\u0221" },
	{ "unassigned plane 2 end stored", "\U0002FFFD", SASLPREP_STORED, SASLPREP_UNASSIGNED, ERR },
	{ "unassigned mapped-to-nothing order", "\u00AD\u0221", SASLPREP_STORED,
	  SASLPREP_UNASSIGNED, ERR },
	/* UTF-8 */
	{ "overlong NUL", "\xC0\x80", BOTH, SASLPREP_BAD_UTF8, ERR },
	{ "overlong slash", "\xE0\x80\xAF", BOTH, SASLPREP_BAD_UTF8, ERR },
	{ "surrogate", "\xED\xA0\x80", BOTH, SASLPREP_BAD_UTF8, ERR },
	{ "beyond U+10FFFF", "\xF4\x90\x80\x80", BOTH, SASLPREP_BAD_UTF8, ERR },
	{ "F5 lead", "\xF5\x80\x80\x80", BOTH, SASLPREP_BAD_UTF8, ERR },
	{ "truncated", "ab\xE2\x82", BOTH, SASLPREP_BAD_UTF8, ERR },
	{ "lone continuation", "a\x80", BOTH, SASLPREP_BAD_UTF8, ERR },
	{ "missing continuation", "\xC3(", BOTH, SASLPREP_BAD_UTF8, ERR },
	{ "Latin-1, not UTF-8", "caf\xE9", BOTH, SASLPREP_BAD_UTF8, ERR },
	{ "highest scalar", "\xF4\x8F\xBF\xBD", SASLPREP_QUERY, SASLPREP_PROHIBITED, ERR },
};

static void check(const char *name, const char *in, size_t len, enum saslprep_mode mode,
		  enum saslprep_result want, const char *want_out)
{
	char *out = (char *)"sentinel";
	size_t out_len = 99;
	enum saslprep_result r = saslprep(in, len, mode, &out, &out_len);

	print_message("%s (%s)\n", name, mode == SASLPREP_STORED ? "stored" : "query");
	assert_int_equal(r, want);
	if (want != SASLPREP_OK) {
		assert_null(out);
		assert_int_equal(out_len, 0);
		return;
	}
	assert_non_null(out);
	assert_int_equal(out_len, strlen(want_out));
	assert_memory_equal(out, want_out, out_len);
	assert_int_equal(out[out_len], '\0');
	free(out);
}

static void test_cases(void **state)
{
	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		/* "a\0b" is the one case whose length strlen cannot tell. */
		size_t len = strcmp(cases[i].name, "NUL") == 0 ? 3 : strlen(cases[i].in);
		for (int m = SASLPREP_STORED; m <= SASLPREP_QUERY; m++) {
			if (cases[i].mode != BOTH && cases[i].mode != m)
				continue;
			check(cases[i].name, cases[i].in, len, (enum saslprep_mode)m, cases[i].want,
			      cases[i].out);
		}
	}
}

/* SASLPREP_INPUT_MAX octets pass, one more does not: ASCII and not. */
static void test_bound(void **state)
{
	char *buf = xmalloc(SASLPREP_INPUT_MAX + 4), *want;

	memset(buf, 'a', SASLPREP_INPUT_MAX + 1);
	check("ASCII at the bound", buf, SASLPREP_INPUT_MAX, SASLPREP_STORED, SASLPREP_OK,
	      want = xstrndup(buf, SASLPREP_INPUT_MAX));
	free(want);
	check("ASCII past the bound", buf, SASLPREP_INPUT_MAX + 1, SASLPREP_STORED,
	      SASLPREP_TOO_LONG, ERR);
	/* e + U+0301 (3 octets): 256 of them fill the bound and compose to U+00E9. */
	for (size_t i = 0; i < SASLPREP_INPUT_MAX / 4; i++)
		memcpy(buf + 4 * i, "e\xCC\x81", 3), buf[4 * i + 3] = 'x';
	want = xmalloc(SASLPREP_INPUT_MAX);
	for (size_t i = 0; i < SASLPREP_INPUT_MAX / 4; i++)
		memcpy(want + 3 * i, "\xC3\xA9x", 3);
	want[3 * (SASLPREP_INPUT_MAX / 4)] = '\0';
	check("non-ASCII at the bound", buf, SASLPREP_INPUT_MAX, SASLPREP_STORED, SASLPREP_OK, want);
	buf[SASLPREP_INPUT_MAX] = 'x';
	check("non-ASCII past the bound", buf, SASLPREP_INPUT_MAX + 1, SASLPREP_STORED,
	      SASLPREP_TOO_LONG, ERR);
	free(want);
	/* The largest expansion: 341 x U+FDFA (3 octets -> 18 code points). */
	for (size_t i = 0; i < SASLPREP_INPUT_MAX / 3; i++)
		memcpy(buf + 3 * i, "\xEF\xB7\xBA", 3);
	char *out;
	size_t out_len;
	assert_int_equal(saslprep(buf, SASLPREP_INPUT_MAX / 3 * 3, SASLPREP_STORED, &out, &out_len),
			 SASLPREP_OK);
	assert_int_equal(out_len, (SASLPREP_INPUT_MAX / 3) * 33);   /* 15 x 2 + 3 spaces each */
	free(out);
	/* A long run of combining marks is sorted, not refused. */
	for (size_t i = 0; i < SASLPREP_INPUT_MAX / 2; i++)
		memcpy(buf + 2 * i, i % 2 ? "\xCC\x81" : "\xCC\xA3", 2);   /* U+0301 / U+0323 */
	assert_int_equal(saslprep(buf, SASLPREP_INPUT_MAX, SASLPREP_QUERY, &out, &out_len),
			 SASLPREP_OK);
	assert_int_equal(out_len, SASLPREP_INPUT_MAX);
	assert_memory_equal(out, "\xCC\xA3\xCC\xA3", 4);        /* class 220 before 230 */
	assert_memory_equal(out + out_len - 4, "\xCC\x81\xCC\x81", 4);
	free(out);
	free(buf);
}

/* SASLprep of a SASLprep output is the same output. */
static void test_idempotent(void **state)
{
	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		char *again;
		size_t len;
		if (cases[i].want != SASLPREP_OK || cases[i].mode == SASLPREP_QUERY)
			continue;
		assert_int_equal(saslprep(cases[i].out, strlen(cases[i].out), SASLPREP_STORED,
					  &again, &len), SASLPREP_OK);
		assert_string_equal(again, cases[i].out);
		free(again);
	}
}

static void test_strerror(void **state)
{
	assert_string_equal(saslprep_strerror(SASLPREP_OK), "ok");
	assert_string_equal(saslprep_strerror(SASLPREP_TOO_LONG), "too long");
	assert_string_equal(saslprep_strerror(SASLPREP_BAD_UTF8), "not UTF-8");
	assert_string_equal(saslprep_strerror(SASLPREP_UNASSIGNED), "unassigned code point");
	assert_string_equal(saslprep_strerror(SASLPREP_PROHIBITED), "prohibited character");
	assert_string_equal(saslprep_strerror(SASLPREP_BIDI), "bidi rules");
	assert_string_equal(saslprep_strerror((enum saslprep_result)99), "?");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cases),
		cmocka_unit_test(test_bound),
		cmocka_unit_test(test_idempotent),
		cmocka_unit_test(test_strerror),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
