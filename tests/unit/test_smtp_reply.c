/*
 * test_smtp_reply.c - unit tests for proto/smtp_reply.c: reply lines
 * (RFC 5321 §4.2), enhanced codes (RFC 2034) and EHLO capabilities.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/smtp_reply.h"

struct reply_case {
	const char *lines;	/* '|'-separated lines fed one by one */
	enum smtp_reply_status want;
	unsigned code;
	const char *enhanced;
	const char *text;
};

static const struct reply_case cases[] = {
	{ "250 ok", SMTP_REPLY_DONE, 250, "", "ok" },
	{ "250", SMTP_REPLY_DONE, 250, "", "" },
	{ "250 ", SMTP_REPLY_DONE, 250, "", "" },
	{ "250-a|250-b|250 c", SMTP_REPLY_DONE, 250, "", "a\nb\nc" },
	{ "250-|250 ", SMTP_REPLY_DONE, 250, "", "\n" },
	{ "550 5.1.1 no such user", SMTP_REPLY_DONE, 550, "5.1.1", "5.1.1 no such user" },
	{ "451-4.3.0 try|451 4.3.0 later", SMTP_REPLY_DONE, 451, "4.3.0", "4.3.0 try\n4.3.0 later" },
	{ "250 2.0.0", SMTP_REPLY_DONE, 250, "2.0.0", "2.0.0" },
	{ "250 2.123.456 x", SMTP_REPLY_DONE, 250, "2.123.456", "2.123.456 x" },
	{ "250 2.1234.5 x", SMTP_REPLY_DONE, 250, "", "2.1234.5 x" },
	{ "550 4.1.1 class differs", SMTP_REPLY_DONE, 550, "", "4.1.1 class differs" },
	{ "354 3.0.0 no class 3", SMTP_REPLY_DONE, 354, "", "3.0.0 no class 3" },
	{ "250 2.0.0x", SMTP_REPLY_DONE, 250, "", "2.0.0x" },
	{ "250 2.0", SMTP_REPLY_DONE, 250, "", "2.0" },
	{ "250 2..0", SMTP_REPLY_DONE, 250, "", "2..0" },
	{ "559 x", SMTP_REPLY_DONE, 559, "", "x" },
	{ "590 x", SMTP_REPLY_ERR_SYNTAX, 0, "", "" },
	{ "250-a", SMTP_REPLY_MORE, 250, "", "a" },
	{ "", SMTP_REPLY_ERR_SYNTAX, 0, "", "" },
	{ "25", SMTP_REPLY_ERR_SYNTAX, 0, "", "" },
	{ "2500 x", SMTP_REPLY_ERR_SYNTAX, 0, "", "" },
	{ "250x", SMTP_REPLY_ERR_SYNTAX, 0, "", "" },
	{ "160 x", SMTP_REPLY_ERR_SYNTAX, 0, "", "" },
	{ "650 x", SMTP_REPLY_ERR_SYNTAX, 0, "", "" },
	{ "260 x", SMTP_REPLY_ERR_SYNTAX, 0, "", "" },
	{ "2a0 x", SMTP_REPLY_ERR_SYNTAX, 0, "", "" },
	{ "abc x", SMTP_REPLY_ERR_SYNTAX, 0, "", "" },
	{ "250 a\rb", SMTP_REPLY_ERR_SYNTAX, 0, "", "" },
	{ "250 a\nb", SMTP_REPLY_ERR_SYNTAX, 0, "", "" },
	{ "250-a|251 b", SMTP_REPLY_ERR_MISMATCH, 250, "", "a" },
	{ "250-a|250xb", SMTP_REPLY_ERR_SYNTAX, 250, "", "a" },
	{ "250 a|250 b", SMTP_REPLY_ERR_STATE, 250, "", "a" },
};

static enum smtp_reply_status feed_all(struct smtp_reply *r, const char *lines)
{
	char *copy = strdup(lines), *p = copy, *bar;
	enum smtp_reply_status st = SMTP_REPLY_MORE;

	smtp_reply_init(r);
	for (;;) {
		bar = strchr(p, '|');
		if (bar)
			*bar = '\0';
		st = smtp_reply_feed(r, p, strlen(p));
		if (!bar || (st != SMTP_REPLY_MORE && st != SMTP_REPLY_DONE))
			break;
		p = bar + 1;
	}
	free(copy);
	return st;
}

static void test_reply_table(void **state)
{
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct smtp_reply r;
		enum smtp_reply_status st = feed_all(&r, cases[i].lines);

		if (st != cases[i].want)
			fail_msg("case %zu '%s': %s want %s", i, cases[i].lines,
				 smtp_reply_status_str(st), smtp_reply_status_str(cases[i].want));
		if (cases[i].code) {
			assert_int_equal(r.code, cases[i].code);
			assert_string_equal(r.enhanced, cases[i].enhanced);
			assert_string_equal(r.text, cases[i].text);
			assert_int_equal(r.text_len, strlen(cases[i].text));
		}
		assert_true(smtp_reply_status_str(st)[0] != '\0');
	}
}

static void test_nul_in_text(void **state)
{
	struct smtp_reply r;

	smtp_reply_init(&r);
	assert_int_equal(smtp_reply_feed(&r, "250 a\0b", 7), SMTP_REPLY_ERR_SYNTAX);
	/* After an error the parser refuses more input. */
	assert_int_equal(smtp_reply_feed(&r, "250 ok", 6), SMTP_REPLY_ERR_STATE);
}

static void test_line_bound(void **state)
{
	char line[SMTP_REPLY_LINE_MAX + 2];
	struct smtp_reply r;

	memset(line, 'x', sizeof(line));
	memcpy(line, "250 ", 4);
	smtp_reply_init(&r);
	assert_int_equal(smtp_reply_feed(&r, line, SMTP_REPLY_LINE_MAX), SMTP_REPLY_DONE);
	assert_int_equal(r.text_len, SMTP_REPLY_LINE_MAX - 4);
	smtp_reply_init(&r);
	assert_int_equal(smtp_reply_feed(&r, line, SMTP_REPLY_LINE_MAX + 1),
			 SMTP_REPLY_ERR_LINE_TOO_LONG);
}

static void test_lines_bound(void **state)
{
	struct smtp_reply r;
	int i;

	smtp_reply_init(&r);
	for (i = 0; i < SMTP_REPLY_LINES_MAX - 1; i++)
		assert_int_equal(smtp_reply_feed(&r, "250-", 4), SMTP_REPLY_MORE);
	assert_int_equal(smtp_reply_feed(&r, "250 ", 4), SMTP_REPLY_DONE);
	assert_int_equal(r.nlines, SMTP_REPLY_LINES_MAX);

	smtp_reply_init(&r);
	for (i = 0; i < SMTP_REPLY_LINES_MAX; i++)
		assert_int_equal(smtp_reply_feed(&r, "250-", 4), SMTP_REPLY_MORE);
	assert_int_equal(smtp_reply_feed(&r, "250 ", 4), SMTP_REPLY_ERR_TOO_MANY_LINES);
}

/* Text of exactly SMTP_REPLY_TEXT_MAX passes; one byte more fails. */
static void test_text_bound(void **state)
{
	char line[SMTP_REPLY_LINE_MAX];
	struct smtp_reply r;
	size_t used = 0, chunk = 400;
	int extra;

	for (extra = 0; extra <= 1; extra++) {
		smtp_reply_init(&r);
		used = 0;
		memset(line, 'y', sizeof(line));
		memcpy(line, "250-", 4);
		/* 10 lines of 400 = 4000 + 9 newlines = 4009; then one more. */
		for (int i = 0; i < 10; i++) {
			assert_int_equal(smtp_reply_feed(&r, line, 4 + chunk), SMTP_REPLY_MORE);
			used += chunk + (i ? 1 : 0);
		}
		size_t rest = SMTP_REPLY_TEXT_MAX - used - 1 + (size_t)extra;
		line[3] = ' ';
		assert_int_equal(smtp_reply_feed(&r, line, 4 + rest),
				 extra ? SMTP_REPLY_ERR_TOO_LONG : SMTP_REPLY_DONE);
		if (!extra)
			assert_int_equal(r.text_len, SMTP_REPLY_TEXT_MAX);
	}
}

static void parse(struct smtp_reply *r, const char *lines)
{
	assert_int_equal(feed_all(r, lines), SMTP_REPLY_DONE);
}

static void test_ehlo_caps(void **state)
{
	struct smtp_reply r;
	struct smtp_ehlo_caps c;

	parse(&r, "250-mx.example.test hi|250-pipelining|250-SIZE 35882577|250-8BITMIME|"
		  "250-StartTLS|250-DSN|250-ENHANCEDSTATUSCODES|250-AUTH PLAIN LOGIN XOAUTH2|"
		  "250-CHUNKING|250 SMTPUTF8");
	assert_true(smtp_ehlo_caps(&r, &c));
	assert_true(c.pipelining && c.size && c.eightbitmime && c.starttls && c.dsn);
	assert_true(c.enhancedstatuscodes && c.chunking && c.smtputf8 && c.auth);
	assert_int_equal(c.size_max, 35882577);
	assert_int_equal(c.auth_mechs, SMTP_AUTH_PLAIN | SMTP_AUTH_LOGIN | SMTP_AUTH_OTHER);

	parse(&r, "250-host|250-AUTH=login cram-md5|250 SIZE");
	assert_true(smtp_ehlo_caps(&r, &c));
	assert_true(c.auth && c.size && !c.pipelining && !c.starttls);
	assert_int_equal(c.size_max, 0);
	assert_int_equal(c.auth_mechs, SMTP_AUTH_LOGIN | SMTP_AUTH_CRAM_MD5);

	/* Bad SIZE values, keywords that only start like ours, the greeting
	 * line never read as a keyword. */
	parse(&r, "250-PIPELINING greeting|250-SIZE 12x|250-SIZEX|250-DSNX|250-AUTH|250 ");
	assert_true(smtp_ehlo_caps(&r, &c));
	assert_false(c.pipelining || c.dsn);
	assert_true(c.size && c.auth);
	assert_int_equal(c.size_max, 0);
	assert_int_equal(c.auth_mechs, 0);

	parse(&r, "250-h|250 SIZE 99999999999999999999999");
	assert_true(smtp_ehlo_caps(&r, &c));
	assert_true(c.size);
	assert_int_equal(c.size_max, 0);

	parse(&r, "250 only greeting");
	assert_true(smtp_ehlo_caps(&r, &c));
	assert_false(c.pipelining);

	parse(&r, "502 5.5.1 no EHLO");
	c.pipelining = true;
	assert_false(smtp_ehlo_caps(&r, &c));
	assert_false(c.pipelining);

	smtp_reply_init(&r);
	assert_int_equal(smtp_reply_feed(&r, "250-x", 5), SMTP_REPLY_MORE);
	assert_false(smtp_ehlo_caps(&r, &c));	/* incomplete */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_reply_table),
		cmocka_unit_test(test_nul_in_text),
		cmocka_unit_test(test_line_bound),
		cmocka_unit_test(test_lines_bound),
		cmocka_unit_test(test_text_bound),
		cmocka_unit_test(test_ehlo_caps),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
