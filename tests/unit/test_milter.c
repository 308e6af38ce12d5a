/*
 * test_milter.c - unit tests for proto/milter.c: the packets tern sends
 * (octet for octet) and the filter replies it accepts or refuses.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/milter.h"

#define P(s) s, sizeof(s) - 1

static void expect_bytes(const struct milter_buf *b, const char *want, size_t n)
{
	assert_int_equal(b->len, n);
	assert_memory_equal(b->p, want, n);
}

static void test_builders(void **state)
{
	struct milter_buf b = { 0 };
	const char *mail[] = { "<a@b.example>", "BODY=8BITMIME" };
	const char *mac[] = { "j", "mx.example", "{auth_authen}", NULL, "{client_port}", "25" };

	milter_put_optneg(&b, 6, 0x21, 0x1fffff);
	expect_bytes(&b, P("\0\0\0\x0dO\0\0\0\x06\0\0\0\x21\0\x1f\xff\xff"));
	milter_buf_reset(&b);
	milter_put_connect(&b, "host.example", '4', 2525, "192.0.2.1");
	expect_bytes(&b, P("\0\0\0\x1b" "Chost.example\0" "4\x09\xdd" "192.0.2.1\0"));
	milter_buf_reset(&b);
	milter_put_connect(&b, "x", 'L', 0, "");
	expect_bytes(&b, P("\0\0\0\x04" "Cx\0L"));
	milter_buf_reset(&b);
	milter_put_helo(&b, "me");
	expect_bytes(&b, P("\0\0\0\x04Hme\0"));
	milter_buf_reset(&b);
	milter_put_args(&b, MILTER_C_MAIL, mail, 2);
	expect_bytes(&b, P("\0\0\0\x1dM<a@b.example>\0BODY=8BITMIME\0"));
	milter_buf_reset(&b);
	milter_put_header(&b, "Subject", 7, "hi\n\tthere", 9);
	expect_bytes(&b, P("\0\0\0\x13LSubject\0hi\n\tthere\0"));
	milter_buf_reset(&b);
	milter_put_body(&b, "a\r\nb\r\n", 6);
	expect_bytes(&b, P("\0\0\0\x07" "Ba\r\nb\r\n"));
	milter_buf_reset(&b);
	milter_put_macros(&b, MILTER_C_CONNECT, mac, 6);
	expect_bytes(&b, P("\0\0\0\x20" "DCj\0mx.example\0{client_port}\0" "25\0"));
	milter_buf_reset(&b);
	milter_put_simple(&b, MILTER_C_EOB);
	milter_put_simple(&b, MILTER_C_QUIT);
	expect_bytes(&b, P("\0\0\0\x01" "E\0\0\0\x01Q"));
	milter_buf_reset(&b);
	milter_put_unknown(&b, "XFOO");
	expect_bytes(&b, P("\0\0\0\x06UXFOO\0"));
	milter_buf_free(&b);
}

struct reply_case {
	const char *in;
	size_t len;
	enum milter_parse want;
	char cmd;
	const char *s1, *s2;
	uint32_t index;
};

#define R(s) s, sizeof(s) - 1

static const struct reply_case cases[] = {
	{ R("\0\0\0\x01" "c"), MILTER_OK, 'c', NULL, NULL, 0 },
	{ R("\0\0\0\x01" "a"), MILTER_OK, 'a', NULL, NULL, 0 },
	{ R("\0\0\0\x01" "r"), MILTER_OK, 'r', NULL, NULL, 0 },
	{ R("\0\0\0\x01" "t"), MILTER_OK, 't', NULL, NULL, 0 },
	{ R("\0\0\0\x01" "d"), MILTER_OK, 'd', NULL, NULL, 0 },
	{ R("\0\0\0\x01" "s"), MILTER_OK, 's', NULL, NULL, 0 },
	{ R("\0\0\0\x01" "p"), MILTER_OK, 'p', NULL, NULL, 0 },
	{ R("\0\0\0\x02" "cx"), MILTER_BAD, 0, NULL, NULL, 0 },           /* data where none goes */
	{ R("\0\0\0\x0a" "y554 spam\0"), MILTER_OK, 'y', "554 spam", NULL, 0 },
	{ R("\0\0\0\x0a" "y554 spam"), MILTER_MORE, 0, NULL, NULL, 0 },   /* cut short */
	{ R("\0\0\0\x0a" "y554 spam"), MILTER_MORE, 0, NULL, NULL, 0 },
	{ R("\0\0\0\x09" "y554 spam"), MILTER_BAD, 0, NULL, NULL, 0 },    /* no NUL */
	{ R("\0\0\0\x0a" "y554\0spam\0"), MILTER_BAD, 0, NULL, NULL, 0 }, /* two strings */
	{ R("\0\0\0\x0b" "hX-Spam\0no\0"), MILTER_OK, 'h', "X-Spam", "no", 0 },
	{ R("\0\0\0\x08" "hX-Spam\0"), MILTER_BAD, 0, NULL, NULL, 0 },    /* no value */
	{ R("\0\0\0\x09" "i\0\0\0\x02" "A\0b\0"), MILTER_OK, 'i', "A", "b", 2 },
	{ R("\0\0\0\x09" "m\0\0\0\x01" "A\0\0\0"), MILTER_BAD, 0, NULL, NULL, 0 },
	{ R("\0\0\0\x08" "m\0\0\0\x01" "A\0\0"), MILTER_OK, 'm', "A", "", 1 }, /* delete A */
	{ R("\0\0\0\x03" "i\0\0"), MILTER_BAD, 0, NULL, NULL, 0 },        /* index cut */
	{ R("\0\0\0\x07" "+<a@b>\0"), MILTER_OK, '+', "<a@b>", NULL, 0 },
	{ R("\0\0\0\x07" "-<a@b>\0"), MILTER_OK, '-', "<a@b>", NULL, 0 },
	{ R("\0\0\0\x09" "2<a@b>\0x\0"), MILTER_OK, '2', "<a@b>", "x", 0 },
	{ R("\0\0\0\x07" "e<a@b>\0"), MILTER_OK, 'e', "<a@b>", NULL, 0 },
	{ R("\0\0\0\x0b" "e<a@b>\0a\0b\0"), MILTER_BAD, 0, NULL, NULL, 0 }, /* three */
	{ R("\0\0\0\x04" "bxyz"), MILTER_OK, 'b', NULL, NULL, 0 },
	{ R("\0\0\0\x01" "b"), MILTER_OK, 'b', NULL, NULL, 0 },
	{ R("\0\0\0\x05" "qbad\0"), MILTER_OK, 'q', "bad", NULL, 0 },
	{ R("\0\0\0\x07" "l\0\0\0\x05" "i\0"), MILTER_OK, 'l', "i", NULL, 5 },
	{ R("\0\0\0\x0d" "O\0\0\0\x06\0\0\0\x01\0\0\0\x10"), MILTER_OK, 'O', NULL, NULL, 0 },
	{ R("\0\0\0\x0c" "O\0\0\0\x06\0\0\0\x01\0\0\0"), MILTER_BAD, 0, NULL, NULL, 0 },
	{ R("\0\0\0\x01" "Z"), MILTER_BAD, 0, NULL, NULL, 0 },            /* no such reply */
	{ R("\0\0\0\0"), MILTER_BAD, 0, NULL, NULL, 0 },                  /* no command */
	{ R("\x7f\0\0\0" "c"), MILTER_BAD, 0, NULL, NULL, 0 },            /* over the bound */
	{ R("\0\0\0"), MILTER_MORE, 0, NULL, NULL, 0 },
	{ R(""), MILTER_MORE, 0, NULL, NULL, 0 },
};

static void test_replies(void **state)
{
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct reply_case *c = &cases[i];
		struct milter_reply r;
		size_t used = 99;
		enum milter_parse got = milter_reply_parse(c->in, c->len, MILTER_REPLY_MAX, &r, &used);

		if (got != c->want)
			fail_msg("case %zu: got %d want %d", i, got, c->want);
		if (got != MILTER_OK) {
			assert_int_equal(used, 0);
			continue;
		}
		assert_int_equal(used, c->len);
		assert_int_equal(r.cmd, c->cmd);
		assert_int_equal(r.index, c->index);
		if (c->s1) {
			assert_non_null(r.s1);
			assert_string_equal(r.s1, c->s1);
			assert_int_equal(r.s1len, strlen(c->s1));
		}
		if (c->s2) {
			assert_non_null(r.s2);
			assert_string_equal(r.s2, c->s2);
			assert_int_equal(r.s2len, strlen(c->s2));
		}
	}
}

static void test_optneg_and_stream(void **state)
{
	/* two replies back to back: each read on its own, bounds kept */
	static const char in[] = "\0\0\0\x0dO\0\0\0\x06\0\0\x01\xff\0\x10\0\x20" "\0\0\0\x01" "c";
	struct milter_reply r;
	size_t used;

	assert_int_equal(milter_reply_parse(in, sizeof(in) - 1, MILTER_REPLY_MAX, &r, &used), MILTER_OK);
	assert_int_equal(used, 17);
	assert_int_equal(r.version, 6);
	assert_int_equal(r.actions, 0x1ff);
	assert_int_equal(r.protocol, 0x100020);
	assert_int_equal(milter_reply_parse(in + used, sizeof(in) - 1 - used, MILTER_REPLY_MAX, &r, &used),
			 MILTER_OK);
	assert_int_equal(r.cmd, 'c');
	/* a small bound refuses what a large one takes */
	assert_int_equal(milter_reply_parse(in, sizeof(in) - 1, 12, &r, &used), MILTER_BAD);
}

static void test_replycode(void **state)
{
	static const struct { const char *s; bool ok; } c[] = {
		{ "550 5.7.1 Spam", true }, { "451 4.7.1 later", true }, { "554", true },
		{ "550", true }, { "250 ok", false }, { "550 4.7.1 class", false },
		{ "55", false }, { "550-x", false }, { "550 a\r\nb", false }, { "5x0 y", false },
		{ "421 4.3.2 shutting down", true }, { "550 spam\x7f", false },
		{ "550-5.7.1 one\r\n550 5.7.1 two", true }, { "550-a\r\n550-b\r\n550 c", true },
		{ "550-5.7.1 one\r\n551 5.7.1 two", false }, { "550 one\r\n550 two", false },
		{ "550-one\r\n550-two", false }, { "550-one\n550 two", false }, { "550-one\r\n", false },
		{ "550-one\r\n550 4.7.1 x", false }, { "550-\r\n550", true },
	};
	for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++)
		if (milter_replycode_valid(c[i].s, strlen(c[i].s)) != c[i].ok)
			fail_msg("%s", c[i].s);
}

static void test_addr(void **state)
{
	static const struct { const char *s; bool ok; int family; } c[] = {
		{ "inet:127.0.0.1:11332", true, AF_INET }, { "inet:localhost:8891", true, AF_INET },
		{ "inet:[::1]:8891", true, AF_INET6 }, { "unix:/run/rspamd/milter.sock", true, AF_UNIX },
		{ "inet:::1:8891", false, 0 }, { "inet:127.0.0.1", false, 0 }, { "inet:127.0.0.1:0", false, 0 },
		{ "inet:127.0.0.1:65536", false, 0 }, { "inet:mail.example:25", false, 0 },
		{ "unix:relative", false, 0 }, { "local:/x", false, 0 }, { "inet:1.2.3.4:25x", false, 0 },
		{ "inet:[127.0.0.1]:25", false, 0 }, { "inet::25", false, 0 },
	};
	for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
		struct sockaddr_storage ss;
		socklen_t len;
		bool ok = milter_addr_parse(c[i].s, &ss, &len);
		if (ok != c[i].ok || (ok && ss.ss_family != c[i].family))
			fail_msg("%s", c[i].s);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_builders),
		cmocka_unit_test(test_replies),
		cmocka_unit_test(test_optneg_and_stream),
		cmocka_unit_test(test_replycode),
		cmocka_unit_test(test_addr),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
