/*
 * test_imap_utf7.c - unit tests for proto/imap_utf7: modified UTF-7 both
 * ways with the RFC 3501 5.1.3 example, every kind of non-canonical or
 * broken input, mailbox name checks and the Maildir++ directory mapping.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "proto/imap_utf7.h"

static void test_decode(void **state)
{
	static const struct {
		const char *in;
		enum imap_utf7_err err;
		const char *out;
	} cases[] = {
		{ "INBOX", IMAP_UTF7_OK, "INBOX" },
		{ "", IMAP_UTF7_OK, "" },
		{ "&-", IMAP_UTF7_OK, "&" },
		{ "A&-B", IMAP_UTF7_OK, "A&B" },
		/* RFC 3501 5.1.3 */
		{ "~peter/mail/&U,BTFw-/&ZeVnLIqe-", IMAP_UTF7_OK,
		  "~peter/mail/\xe5\x8f\xb0\xe5\x8c\x97/\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e" },
		{ "Entw&APw-rfe", IMAP_UTF7_OK, "Entw\xc3\xbc" "rfe" },
		{ "&AOkA6Q-", IMAP_UTF7_OK, "\xc3\xa9\xc3\xa9" },
		{ "&2D3cAA-", IMAP_UTF7_OK, "\xf0\x9f\x90\x80" },     /* U+1F400, a surrogate pair */
		{ "&AAk-", IMAP_UTF7_OK, "\t" },                     /* a control is encodable */
		/* errors */
		{ "&", IMAP_UTF7_BAD_BASE64, NULL },
		{ "&AOk", IMAP_UTF7_BAD_BASE64, NULL },
		{ "&A=k-", IMAP_UTF7_BAD_BASE64, NULL },
		{ "&AOk/-", IMAP_UTF7_BAD_BASE64, NULL },             /* '/' is not in the alphabet */
		{ "&AEE-", IMAP_UTF7_NON_CANONICAL, NULL },           /* "A" */
		{ "&AC4-", IMAP_UTF7_NON_CANONICAL, NULL },           /* "." */
		{ "&ACY-", IMAP_UTF7_NON_CANONICAL, NULL },           /* "&" must be "&-" */
		{ "&AOk-&AOk-", IMAP_UTF7_NON_CANONICAL, NULL },      /* one run, not two */
		{ "&AOl-", IMAP_UTF7_NON_CANONICAL, NULL },           /* non-zero padding bits */
		{ "&AOkA-", IMAP_UTF7_NON_CANONICAL, NULL },          /* 6 leftover bits */
		{ "&A-", IMAP_UTF7_NON_CANONICAL, NULL },             /* less than one unit */
		{ "&2D0-", IMAP_UTF7_SURROGATE, NULL },               /* lone high surrogate */
		{ "&3AA-", IMAP_UTF7_SURROGATE, NULL },               /* lone low surrogate */
		{ "&2D3YPQ-", IMAP_UTF7_SURROGATE, NULL },            /* high, high */
		{ "caf\xc3\xa9", IMAP_UTF7_BAD_CHAR, NULL },
		{ "a\tb", IMAP_UTF7_BAD_CHAR, NULL },
		{ "a\x7f", IMAP_UTF7_BAD_CHAR, NULL },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char out[256];
		size_t n;
		enum imap_utf7_err e = imap_utf7_to_utf8(cases[i].in, strlen(cases[i].in), out,
							 sizeof(out), &n);
		if (e != cases[i].err)
			fail_msg("case %zu \"%s\": %s", i, cases[i].in, imap_utf7_strerror(e));
		assert_int_equal(imap_utf7_valid(cases[i].in, strlen(cases[i].in)), e == IMAP_UTF7_OK);
		if (e != IMAP_UTF7_OK)
			continue;
		assert_string_equal(out, cases[i].out);
		assert_int_equal(n, strlen(cases[i].out));
		/* canonical: encoding the result gives the input back */
		char back[256];
		assert_int_equal(imap_utf8_to_utf7(out, n, back, sizeof(back), &n),
				 cases[i].out[0] == '\t' ? IMAP_UTF7_BAD_UTF8 : IMAP_UTF7_OK);
		if (cases[i].out[0] != '\t')
			assert_string_equal(back, cases[i].in);
	}
}

static void test_encode(void **state)
{
	static const struct {
		const char *in;
		enum imap_utf7_err err;
		const char *out;
	} cases[] = {
		{ "Sent", IMAP_UTF7_OK, "Sent" },
		{ "A&B", IMAP_UTF7_OK, "A&-B" },
		{ "\xc3\xa9t\xc3\xa9", IMAP_UTF7_OK, "&AOk-t&AOk-" },
		{ "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e", IMAP_UTF7_OK, "&ZeVnLIqe-" },
		{ "\xf0\x9f\x93\xac box", IMAP_UTF7_OK, "&2D3c7A- box" },
		{ "caf\xc3", IMAP_UTF7_BAD_UTF8, NULL },
		{ "\xc0\xaf", IMAP_UTF7_BAD_UTF8, NULL },
		{ "\xed\xa0\x80", IMAP_UTF7_BAD_UTF8, NULL },
		{ "a\nb", IMAP_UTF7_BAD_UTF8, NULL },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char out[256];
		size_t n;
		enum imap_utf7_err e = imap_utf8_to_utf7(cases[i].in, strlen(cases[i].in), out,
							 sizeof(out), &n);
		if (e != cases[i].err)
			fail_msg("case %zu: %s", i, imap_utf7_strerror(e));
		if (e == IMAP_UTF7_OK) {
			assert_string_equal(out, cases[i].out);
			char back[256];
			assert_int_equal(imap_utf7_to_utf8(out, n, back, sizeof(back), &n), IMAP_UTF7_OK);
			assert_string_equal(back, cases[i].in);
		}
	}
	/* output bounds, both directions, NUL included */
	char small[5];
	size_t n;
	assert_int_equal(imap_utf8_to_utf7("abcd", 4, small, 5, &n), IMAP_UTF7_OK);
	assert_int_equal(imap_utf8_to_utf7("abcde", 5, small, 5, &n), IMAP_UTF7_TOO_LONG);
	assert_int_equal(imap_utf8_to_utf7("\xc3\xa9", 2, small, 5, &n), IMAP_UTF7_TOO_LONG);
	assert_int_equal(imap_utf7_to_utf8("&AOk-", 5, small, 3, &n), IMAP_UTF7_OK);
	assert_int_equal(imap_utf7_to_utf8("&AOk-", 5, small, 2, &n), IMAP_UTF7_TOO_LONG);
	assert_int_equal(imap_utf7_to_utf8("a", 1, small, 0, &n), IMAP_UTF7_TOO_LONG);
}

static void test_check(void **state)
{
	static const struct {
		const char *name;
		enum imap_utf7_err err;
	} cases[] = {
		{ "INBOX", IMAP_UTF7_OK },
		{ "A/B/C", IMAP_UTF7_OK },
		{ "a.b", IMAP_UTF7_OK },
		{ "..a", IMAP_UTF7_OK },
		{ "\xc3\xa9t\xc3\xa9", IMAP_UTF7_OK },
		{ "", IMAP_UTF7_BAD_NAME },
		{ "/A", IMAP_UTF7_BAD_NAME },
		{ "A/", IMAP_UTF7_BAD_NAME },
		{ "A//B", IMAP_UTF7_BAD_NAME },
		{ ".", IMAP_UTF7_BAD_NAME },
		{ "A/../B", IMAP_UTF7_BAD_NAME },
		{ "A/./B", IMAP_UTF7_BAD_NAME },
		{ "a\tb", IMAP_UTF7_BAD_UTF8 },
		{ "a\xc2\x85", IMAP_UTF7_BAD_UTF8 },   /* C1 control */
		{ "a\xff", IMAP_UTF7_BAD_UTF8 },
		{ "1/2/3/4/5/6/7/8/9/10/11/12/13/14/15/16", IMAP_UTF7_OK },
		{ "1/2/3/4/5/6/7/8/9/10/11/12/13/14/15/16/17", IMAP_UTF7_BAD_NAME },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		enum imap_utf7_err e = imap_mailbox_check(cases[i].name, strlen(cases[i].name));
		if (e != cases[i].err)
			fail_msg("case %zu \"%s\": %s", i, cases[i].name, imap_utf7_strerror(e));
	}
	assert_true(imap_mailbox_is_inbox("inBox", 5));
	assert_false(imap_mailbox_is_inbox("INBOX/a", 7));
}

static void test_maildir(void **state)
{
	static const struct {
		const char *wire, *dir;
		enum imap_utf7_err err;
	} cases[] = {
		{ "INBOX", "", IMAP_UTF7_OK },
		{ "inbox", "", IMAP_UTF7_OK },
		{ "Sent", ".Sent", IMAP_UTF7_OK },
		{ "A/B", ".A.B", IMAP_UTF7_OK },
		{ "INBOX/x", ".INBOX.x", IMAP_UTF7_OK },
		{ "Entw&APw-rfe/2024", ".Entw&APw-rfe.2024", IMAP_UTF7_OK },
		{ "a.b", ".a&AC4-b", IMAP_UTF7_OK },
		{ "..", NULL, IMAP_UTF7_BAD_NAME },
		{ "A//B", NULL, IMAP_UTF7_BAD_NAME },
		{ "&AC4-", NULL, IMAP_UTF7_NON_CANONICAL },
		{ "caf\xc3\xa9", NULL, IMAP_UTF7_BAD_CHAR },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char dir[256], wire[256];
		size_t n;
		enum imap_utf7_err e = imap_maildir_from_mailbox(cases[i].wire, strlen(cases[i].wire),
								 dir, sizeof(dir), &n);
		if (e != cases[i].err)
			fail_msg("case %zu \"%s\": %s", i, cases[i].wire, imap_utf7_strerror(e));
		if (e != IMAP_UTF7_OK)
			continue;
		assert_string_equal(dir, cases[i].dir);
		if (n == 0)
			continue;
		assert_int_equal(imap_mailbox_from_maildir(dir, n, wire, sizeof(wire), &n), IMAP_UTF7_OK);
		assert_string_equal(wire, cases[i].wire);
	}
	/* directories that are not folders */
	static const char *const bad[] = { "", ".", "..", "Sent", ".A..B", ".A.", ".INBOX",
					   ".a.b/c", ".&AOk", ".&AEE-", ".x&AC4-&AC4-" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char wire[256];
		size_t n;
		if (imap_mailbox_from_maildir(bad[i], strlen(bad[i]), wire, sizeof(wire), &n) ==
		    IMAP_UTF7_OK && strcmp(bad[i], ".x&AC4-&AC4-") != 0)
			fail_msg("bad dir \"%s\" accepted as \"%s\"", bad[i], wire);
	}
	/* fuzz find: a name of IMAP_MAILBOX_MAX dots has a directory name five
	 * times as long, which the reverse mapping could not hold */
	static char dots[IMAP_MAILBOX_MAX], ddir[IMAP_MAILDIR_MAX + 1], dback[IMAP_MAILBOX_MAX + 1];
	size_t dn;
	memset(dots, '.', sizeof(dots));
	assert_int_equal(imap_maildir_from_mailbox(dots, sizeof(dots), ddir, sizeof(ddir), &dn),
			 IMAP_UTF7_OK);
	assert_int_equal(dn, IMAP_MAILDIR_MAX);
	assert_int_equal(imap_mailbox_from_maildir(ddir, dn, dback, sizeof(dback), &dn), IMAP_UTF7_OK);
	assert_int_equal(dn, sizeof(dots));
	/* ".x&AC4-&AC4-" is "x.." - a legal name (not a "." or ".." level) */
	char wire[64];
	size_t n;
	assert_int_equal(imap_mailbox_from_maildir(".x&AC4-&AC4-", 12, wire, sizeof(wire), &n),
			 IMAP_UTF7_OK);
	assert_string_equal(wire, "x..");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_decode),
		cmocka_unit_test(test_encode),
		cmocka_unit_test(test_check),
		cmocka_unit_test(test_maildir),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
