/*
 * test_auth_results.c - the authserv-id of Authentication-Results fields
 * (RFC 8601 2.2): CFWS and nested comments, quoted strings with
 * quoted-pairs, the version, folded lines, and what is not the field or
 * breaks its grammar.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "core/util.h"
#include "proto/auth_results.h"

#define OK  AUTH_RESULTS_OK
#define OTH AUTH_RESULTS_OTHER
#define TRN AUTH_RESULTS_TRUNCATED
#define BAD AUTH_RESULTS_MALFORMED

static void test_parse(void **state)
{
	static const struct {
		const char *in;
		enum auth_results_status st;
		const char *id;
		int version;
	} cases[] = {
		/* RFC 8601 appendix B examples */
		{ "Authentication-Results: example.org 1; none\r\n", OK, "example.org", 1 },
		{ "Authentication-Results: example.com; spf=pass smtp.mailfrom=example.net\r\n", OK, "example.com", -1 },
		{ "Authentication-Results: example.com;\r\n          auth=pass (cram-md5) smtp.auth=sender@example.net;\r\n"
		  "          spf=pass smtp.mailfrom=example.net\r\n", OK, "example.com", -1 },
		{ "Authentication-Results: mail-router.example.net;\n      dkim=pass (good signature) header.d=newyork.example.com\n",
		  OK, "mail-router.example.net", -1 },
		/* case, obs white space before the colon, no space after it */
		{ "AUTHENTICATION-RESULTS :mx.test;spf=pass", OK, "mx.test", -1 },
		{ "authentication-results:\tMX.TEST ; dkim=none", OK, "MX.TEST", -1 },
		/* CFWS: comments (nested, with quoted-pairs) and folds */
		{ "Authentication-Results: (a comment) mx.test; spf=pass", OK, "mx.test", -1 },
		{ "Authentication-Results: (outer (inner) \\) still) mx.test (after) ; none", OK, "mx.test", -1 },
		{ "Authentication-Results:\r\n\t(folded\r\n comment)\r\n mx.test\r\n\t1\r\n\t; none", OK, "mx.test", 1 },
		{ "Authentication-Results: mx.test(c)1(c);none", OK, "mx.test", 1 },
		/* the version */
		{ "Authentication-Results: mx.test 1 (v) ; none", OK, "mx.test", 1 },
		{ "Authentication-Results: mx.test 17; none", OK, "mx.test", 17 },
		{ "Authentication-Results: mx.test 1234567890; none", BAD, "mx.test", -1 },
		{ "Authentication-Results: mx.test 1x; none", BAD, "mx.test", 1 },
		{ "Authentication-Results: 1mx.test 2; none", OK, "1mx.test", 2 },
		/* quoted strings */
		{ "Authentication-Results: \"mx.test\"; spf=pass", OK, "mx.test", -1 },
		{ "Authentication-Results: \"m\\x.test\" 1; spf=pass", OK, "mx.test", 1 },
		{ "Authentication-Results: \"mx test\"; spf=pass", OK, "mx test", -1 },
		{ "Authentication-Results: \"\"; spf=pass", BAD, "", -1 },
		{ "Authentication-Results: \"mx.test", TRN, "", -1 },
		{ "Authentication-Results: \"mx.\r\n test\"; none", BAD, "", -1 },
		/* not the field */
		{ "Authentication-Results-Foo: mx.test; none", OTH, "", -1 },
		{ "Authentication-Result: mx.test; none", OTH, "", -1 },
		{ "Subject: Authentication-Results: mx.test", OTH, "", -1 },
		{ "X-Authentication-Results: mx.test; none", OTH, "", -1 },
		{ "", OTH, "", -1 },
		/* against the grammar */
		{ "Authentication-Results: ; spf=pass", BAD, "", -1 },
		{ "Authentication-Results: mx.test/evil; spf=pass", BAD, "mx.test", -1 },
		{ "Authentication-Results: mx.test other; spf=pass", BAD, "mx.test", -1 },
		{ "Authentication-Results: mx.test\r\n", TRN, "mx.test", -1 },
		{ "Authentication-Results: @mx.test; none", BAD, "", -1 },
		{ "Authentication-Results: mx.test 1 2; none", BAD, "mx.test", 1 },
		/* the text ends before the id is known */
		{ "Authentication-Results", TRN, "", -1 },
		{ "Authentication-Results: (never closed mx.test; spf=pass", TRN, "", -1 },
		{ "Authentication-Results: mx.te", TRN, "", -1 },
		{ "Authentication-Results: mx.test 1", TRN, "mx.test", 1 },
		{ "Authentication-Results: (\\", TRN, "", -1 },
	};
	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		struct auth_results_id id;
		enum auth_results_status st = auth_results_parse(cases[i].in, strlen(cases[i].in), &id);
		print_message("case %zu: %s\n", i, cases[i].in);
		assert_int_equal(st, cases[i].st);
		if (st == OK || cases[i].id[0]) {
			assert_string_equal(id.id, cases[i].id);
			assert_int_equal(id.len, strlen(cases[i].id));
		}
		if (st == OK)
			assert_int_equal(id.version, cases[i].version);
	}
}

static void test_bounds(void **state)
{
	char buf[2048];
	struct auth_results_id id;
	int n;

	/* an id of 255 octets is read, one of 256 is not */
	n = snprintf(buf, sizeof buf, "Authentication-Results: %0255d; none", 0);
	assert_int_equal(auth_results_parse(buf, (size_t)n, &id), OK);
	assert_int_equal(id.len, 255);
	n = snprintf(buf, sizeof buf, "Authentication-Results: %0256d; none", 0);
	assert_int_equal(auth_results_parse(buf, (size_t)n, &id), BAD);
	/* comments nest AUTH_RESULTS_NEST_MAX deep, not deeper */
	for (int depth = AUTH_RESULTS_NEST_MAX; depth <= AUTH_RESULTS_NEST_MAX + 1; depth++) {
		size_t at = (size_t)snprintf(buf, sizeof buf, "Authentication-Results: ");
		for (int k = 0; k < depth; k++)
			buf[at++] = '(';
		for (int k = 0; k < depth; k++)
			buf[at++] = ')';
		at += (size_t)snprintf(buf + at, sizeof buf - at, " mx.test; none");
		assert_int_equal(auth_results_parse(buf, at, &id), depth <= AUTH_RESULTS_NEST_MAX ? OK : BAD);
	}
	/* a NUL ends a token: against the grammar, not a shorter id */
	static const char nul[] = "Authentication-Results: mx.test\0x; none";
	assert_int_equal(auth_results_parse(nul, sizeof nul - 1, &id), BAD);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse),
		cmocka_unit_test(test_bounds),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
