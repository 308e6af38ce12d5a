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

/* One EHLO keyword line (after a greeting line) per row: what it sets. */
enum {
	F_PIPE = 1 << 0, F_SIZE = 1 << 1, F_8BIT = 1 << 2, F_TLS = 1 << 3, F_DSN = 1 << 4,
	F_ENH = 1 << 5, F_UTF8 = 1 << 6, F_CHUNK = 1 << 7, F_AUTH = 1 << 8, F_BIN = 1 << 9,
};

struct ehlo_case {
	const char *line;
	unsigned flags;
	uint64_t size_max;
	unsigned mechs;
};

static const struct ehlo_case ehlo_cases[] = {
	{ "PIPELINING", F_PIPE, 0, 0 },
	{ "pipelining", F_PIPE, 0, 0 },
	{ "PIPELINING ", F_PIPE, 0, 0 },
	{ "PIPELININGX", 0, 0, 0 },
	{ "PIPELININ", 0, 0, 0 },
	{ "8BITMIME", F_8BIT, 0, 0 },
	{ "8bitmime extra", F_8BIT, 0, 0 },
	{ "STARTTLS", F_TLS, 0, 0 },
	{ "STARTTLSX", 0, 0, 0 },
	{ "DSN", F_DSN, 0, 0 },
	{ "ENHANCEDSTATUSCODES", F_ENH, 0, 0 },
	{ "SMTPUTF8", F_UTF8, 0, 0 },
	{ "CHUNKING", F_CHUNK, 0, 0 },
	{ "BINARYMIME", F_BIN, 0, 0 },
	{ "binarymime", F_BIN, 0, 0 },
	{ "BINARYMIMEX", 0, 0, 0 },
	{ "X-UNKNOWN 1 2 3", 0, 0, 0 },
	{ "", 0, 0, 0 },
	{ " ", 0, 0, 0 },
	/* SIZE: RFC 1870, 0 or absent = no fixed limit; bad values keep
	 * the keyword but no limit. */
	{ "SIZE", F_SIZE, 0, 0 },
	{ "SIZE ", F_SIZE, 0, 0 },
	{ "SIZE 0", F_SIZE, 0, 0 },
	{ "SIZE 1", F_SIZE, 1, 0 },
	{ "size 35882577", F_SIZE, 35882577, 0 },
	{ "SIZE=1000", F_SIZE, 1000, 0 },
	{ "SIZE 18446744073709551615", F_SIZE, UINT64_MAX, 0 },	/* the largest */
	{ "SIZE 18446744073709551616", F_SIZE, 0, 0 },		/* one past */
	{ "SIZE 99999999999999999999", F_SIZE, 0, 0 },
	{ "SIZE 000000000000000000001", F_SIZE, 0, 0 },		/* 21 digits */
	{ "SIZE 00000000000000000001", F_SIZE, 1, 0 },		/* 20 digits */
	{ "SIZE -1", F_SIZE, 0, 0 },
	{ "SIZE +1", F_SIZE, 0, 0 },
	{ "SIZE 1 2", F_SIZE, 0, 0 },
	{ "SIZE  100", F_SIZE, 0, 0 },
	{ "SIZE 12x", F_SIZE, 0, 0 },
	{ "SIZEX 100", 0, 0, 0 },
	{ "SIZE\t100", 0, 0, 0 },
	/* AUTH: RFC 4954, and the legacy "AUTH=" */
	{ "AUTH", F_AUTH, 0, 0 },
	{ "AUTH PLAIN", F_AUTH, 0, SMTP_AUTH_PLAIN },
	{ "auth plain login", F_AUTH, 0, SMTP_AUTH_PLAIN | SMTP_AUTH_LOGIN },
	{ "AUTH=LOGIN", F_AUTH, 0, SMTP_AUTH_LOGIN },
	{ "AUTH CRAM-MD5 XOAUTH2 GSSAPI", F_AUTH, 0, SMTP_AUTH_CRAM_MD5 | SMTP_AUTH_OTHER },
	{ "AUTH  PLAIN   LOGIN ", F_AUTH, 0, SMTP_AUTH_PLAIN | SMTP_AUTH_LOGIN },
	{ "AUTH PLAINX LOGI", F_AUTH, 0, SMTP_AUTH_OTHER },
	{ "AUTHX PLAIN", 0, 0, 0 },
};

static unsigned ehlo_flags(const struct smtp_ehlo_caps *c)
{
	return (c->pipelining ? F_PIPE : 0) | (c->size ? F_SIZE : 0) | (c->eightbitmime ? F_8BIT : 0) |
	       (c->starttls ? F_TLS : 0) | (c->dsn ? F_DSN : 0) | (c->enhancedstatuscodes ? F_ENH : 0) |
	       (c->smtputf8 ? F_UTF8 : 0) | (c->chunking ? F_CHUNK : 0) | (c->auth ? F_AUTH : 0) |
	       (c->binarymime ? F_BIN : 0);
}

static void test_ehlo_table(void **state)
{
	struct smtp_reply r;
	struct smtp_ehlo_caps c;
	char lines[600];

	for (size_t i = 0; i < sizeof(ehlo_cases) / sizeof(ehlo_cases[0]); i++) {
		const struct ehlo_case *k = &ehlo_cases[i];

		snprintf(lines, sizeof(lines), "250-mx.example.test greets you|250 %s", k->line);
		parse(&r, lines);
		assert_true(smtp_ehlo_caps(&r, &c));
		if (ehlo_flags(&c) != k->flags || c.size_max != k->size_max || c.auth_mechs != k->mechs)
			fail_msg("case %zu \"%s\": flags %#x size %llu mechs %#x", i, k->line, ehlo_flags(&c),
				 (unsigned long long)c.size_max, c.auth_mechs);
	}
}

/* Capabilities come from whole replies only: every keyword of a reply
 * that is split over many lines, and none from one that failed. */
static void test_ehlo_whole_reply(void **state)
{
	struct smtp_reply r;
	struct smtp_ehlo_caps c;
	char line[SMTP_REPLY_LINE_MAX + 1];

	/* SMTP_REPLY_LINES_MAX lines: greeting, 98 unknown keywords, DSN. */
	smtp_reply_init(&r);
	assert_int_equal(smtp_reply_feed(&r, "250-greeting", 12), SMTP_REPLY_MORE);
	for (int i = 0; i < SMTP_REPLY_LINES_MAX - 2; i++) {
		int n = snprintf(line, sizeof(line), "250-X-KW%d", i);
		assert_int_equal(smtp_reply_feed(&r, line, (size_t)n), SMTP_REPLY_MORE);
	}
	assert_int_equal(smtp_reply_feed(&r, "250 DSN", 7), SMTP_REPLY_DONE);
	assert_true(smtp_ehlo_caps(&r, &c));
	assert_true(c.dsn);
	assert_int_equal(ehlo_flags(&c), F_DSN);

	/* One more line is too many: no capabilities at all. */
	smtp_reply_init(&r);
	for (int i = 0; i < SMTP_REPLY_LINES_MAX; i++)
		assert_int_equal(smtp_reply_feed(&r, "250-DSN", 7), SMTP_REPLY_MORE);
	assert_int_equal(smtp_reply_feed(&r, "250 PIPELINING", 14), SMTP_REPLY_ERR_TOO_MANY_LINES);
	assert_false(smtp_ehlo_caps(&r, &c));
	assert_int_equal(ehlo_flags(&c), 0);

	/* A 250 line that is not the first code: mismatch, nothing kept. */
	assert_int_equal(feed_all(&r, "250-x|250-STARTTLS|251 DSN"), SMTP_REPLY_ERR_MISMATCH);
	assert_false(smtp_ehlo_caps(&r, &c));
	assert_false(c.starttls);

	/* Keywords only after the greeting line, whatever it says. */
	parse(&r, "250 STARTTLS");
	assert_true(smtp_ehlo_caps(&r, &c));
	assert_false(c.starttls);
	parse(&r, "250-|250 STARTTLS");
	assert_true(smtp_ehlo_caps(&r, &c));
	assert_true(c.starttls);
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
		cmocka_unit_test(test_ehlo_table),
		cmocka_unit_test(test_ehlo_whole_reply),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
