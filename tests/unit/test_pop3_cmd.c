/*
 * test_pop3_cmd.c - unit tests for proto/pop3_cmd (keyword split, words,
 * message numbers and their bounds), proto/pop3_msg (CRLF conversion,
 * byte-stuffing, TOP limits, sizes) and the UIDL of Maildir names.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "proto/pop3_cmd.h"
#include "proto/pop3_msg.h"
#include "store/mailbox.h"

static void test_split(void **state)
{
	static const struct {
		const char *line;
		enum pop3_cmd_err err;
		const char *keyword, *args;
	} cases[] = {
		{ "user alice", POP3_CMD_OK, "USER", "alice" },
		{ "STAT", POP3_CMD_OK, "STAT", "" },
		{ "top 1 10", POP3_CMD_OK, "TOP", "1 10" },
		{ "PASS my secret pw", POP3_CMD_OK, "PASS", "my secret pw" },
		{ "PASS  lead", POP3_CMD_OK, "PASS", " lead" },
		{ "  noop", POP3_CMD_OK, "NOOP", "" },
		{ "quit ", POP3_CMD_OK, "QUIT", "" },
		{ "a", POP3_CMD_OK, "A", "" },
		{ "", POP3_CMD_EMPTY, "", "" },
		{ "   ", POP3_CMD_EMPTY, "", "" },
		{ "USERS x", POP3_CMD_BAD_KEYWORD, NULL, NULL },
		{ "US3R x", POP3_CMD_BAD_KEYWORD, NULL, NULL },
		{ "\xc3\xa9tat", POP3_CMD_BAD_KEYWORD, NULL, NULL },
		{ "USER a\rb", POP3_CMD_BAD_CHAR, NULL, NULL },
		{ "USER a\x7f", POP3_CMD_BAD_CHAR, NULL, NULL },
		{ "USER a\x01", POP3_CMD_BAD_CHAR, NULL, NULL },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct pop3_cmd c;
		enum pop3_cmd_err e = pop3_cmd_split(cases[i].line, strlen(cases[i].line), &c);
		assert_int_equal(e, cases[i].err);
		if (e != POP3_CMD_OK)
			continue;
		assert_string_equal(c.keyword, cases[i].keyword);
		assert_int_equal(c.args_len, strlen(cases[i].args));
		assert_memory_equal(c.args, cases[i].args, c.args_len);
	}
	/* A NUL inside the line is a control character. */
	struct pop3_cmd c;
	assert_int_equal(pop3_cmd_split("USER a\0b", 8, &c), POP3_CMD_BAD_CHAR);
}

static void test_words(void **state)
{
	struct pop3_word w[POP3_ARGS_MAX];
	size_t n;

	assert_int_equal(pop3_cmd_words("", 0, w, 2, &n), POP3_CMD_OK);
	assert_int_equal(n, 0);
	assert_int_equal(pop3_cmd_words("1  20", 5, w, 2, &n), POP3_CMD_OK);
	assert_int_equal(n, 2);
	assert_int_equal(w[0].len, 1);
	assert_memory_equal(w[1].p, "20", 2);
	assert_int_equal(w[1].len, 2);
	assert_int_equal(pop3_cmd_words("1 2 3", 5, w, 2, &n), POP3_CMD_TOO_MANY_ARGS);
	assert_int_equal(pop3_cmd_words("1 2 ", 4, w, 2, &n), POP3_CMD_OK);
	assert_int_equal(n, 2);
	/* max is capped at POP3_ARGS_MAX */
	assert_int_equal(pop3_cmd_words("a b c d e f g h i", 17, w, 100, &n), POP3_CMD_TOO_MANY_ARGS);
	assert_int_equal(pop3_cmd_words("a b c d e f g h", 15, w, 100, &n), POP3_CMD_OK);
	assert_int_equal(n, 8);
}

static void test_msgnum(void **state)
{
	static const struct {
		const char *s;
		size_t count;
		enum pop3_cmd_err err;
		size_t want;
	} cases[] = {
		{ "1", 3, POP3_CMD_OK, 1 },
		{ "3", 3, POP3_CMD_OK, 3 },
		{ "003", 3, POP3_CMD_OK, 3 },
		{ "4", 3, POP3_CMD_NO_SUCH_MSG, 0 },       /* count + 1 */
		{ "0", 3, POP3_CMD_NO_SUCH_MSG, 0 },
		{ "000", 3, POP3_CMD_NO_SUCH_MSG, 0 },
		{ "1", 0, POP3_CMD_NO_SUCH_MSG, 0 },       /* empty mailbox */
		{ "9", 0, POP3_CMD_NO_SUCH_MSG, 0 },
		{ "-1", 3, POP3_CMD_BAD_NUMBER, 0 },
		{ "+1", 3, POP3_CMD_BAD_NUMBER, 0 },
		{ "one", 3, POP3_CMD_BAD_NUMBER, 0 },
		{ "1x", 3, POP3_CMD_BAD_NUMBER, 0 },
		{ "", 3, POP3_CMD_BAD_NUMBER, 0 },
		{ "99999999999999999999999999", 3, POP3_CMD_NO_SUCH_MSG, 0 },
		{ "18446744073709551616", 3, POP3_CMD_NO_SUCH_MSG, 0 },
		{ "1000", 1000, POP3_CMD_OK, 1000 },
		{ "1001", 1000, POP3_CMD_NO_SUCH_MSG, 0 },
		{ "999", 1000, POP3_CMD_OK, 999 },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		size_t v = 12345;
		enum pop3_cmd_err e = pop3_cmd_msgnum(cases[i].s, strlen(cases[i].s), cases[i].count, &v);
		assert_int_equal(e, cases[i].err);
		if (e == POP3_CMD_OK)
			assert_int_equal(v, cases[i].want);
		else
			assert_int_equal(v, 12345);
	}
}

static void test_number(void **state)
{
	uint64_t v;
	assert_int_equal(pop3_cmd_number("0", 1, 10, &v), POP3_CMD_OK);
	assert_int_equal(v, 0);
	assert_int_equal(pop3_cmd_number("10", 2, 10, &v), POP3_CMD_OK);
	assert_int_equal(v, 10);
	assert_int_equal(pop3_cmd_number("11", 2, 10, &v), POP3_CMD_NO_SUCH_MSG);
	assert_int_equal(pop3_cmd_number("18446744073709551615", 20, UINT64_MAX, &v), POP3_CMD_OK);
	assert_true(v == UINT64_MAX);
	assert_int_equal(pop3_cmd_number("18446744073709551616", 20, UINT64_MAX, &v), POP3_CMD_NO_SUCH_MSG);
	assert_int_equal(pop3_cmd_number("-0", 2, 10, &v), POP3_CMD_BAD_NUMBER);
	assert_int_equal(pop3_cmd_number(" 1", 2, 10, &v), POP3_CMD_BAD_NUMBER);
	assert_string_equal(pop3_cmd_strerror(POP3_CMD_NO_SUCH_MSG), "No such message");
	assert_string_equal(pop3_cmd_strerror(POP3_CMD_BAD_NUMBER), "Invalid message number");
}

/* Encode in chunks of `step` octets, with room for any output or (tight)
 * only 3 octets a call, which keeps a RETR off its one-step-per-line
 * path; returns the output. */
static char *encode_cap(const char *in, bool all, uint64_t lines, size_t step, bool tight, char *out)
{
	struct pop3_msg_enc e;
	size_t o = 0, len = strlen(in), i = 0;
	pop3_msg_enc_init(&e, all, lines);
	while (i < len) {
		size_t take = len - i < step ? len - i : step, olen;
		size_t used = pop3_msg_enc_feed(&e, in + i, take, out + o, tight ? 3 : 2 * take + 3, &olen);
		assert_true(used > 0);
		i += used;
		o += olen;
	}
	o += pop3_msg_enc_finish(&e, out + o);
	out[o] = '\0';
	return out;
}

static char *encode(const char *in, bool all, uint64_t lines, size_t step, char *out)
{
	return encode_cap(in, all, lines, step, false, out);
}

static uint64_t size_of(const char *in, size_t step)
{
	struct pop3_msg_size z;
	size_t len = strlen(in);
	pop3_msg_size_init(&z);
	for (size_t i = 0; i < len; i += step)
		pop3_msg_size_feed(&z, in + i, len - i < step ? len - i : step);
	return pop3_msg_size_finish(&z);
}

static void test_encode(void **state)
{
	static const struct {
		const char *in;
		bool all;
		uint64_t lines;
		const char *out;
	} cases[] = {
		{ "", true, 0, ".\r\n" },
		{ "a\nb\n", true, 0, "a\r\nb\r\n.\r\n" },
		{ "a\r\nb\r\n", true, 0, "a\r\nb\r\n.\r\n" },
		{ "a\nb", true, 0, "a\r\nb\r\n.\r\n" },           /* no final newline */
		{ "a\r", true, 0, "a\r\n.\r\n" },
		{ ".\n..x\n.", true, 0, "..\r\n...x\r\n..\r\n.\r\n" },
		{ "a.b\n .c\n", true, 0, "a.b\r\n .c\r\n.\r\n" },
		{ "a\rb\n", true, 0, "a\rb\r\n.\r\n" },            /* bare CR kept */
		{ "a\r\r\n\r\n", true, 0, "a\r\r\n\r\n.\r\n" },
		{ "\n.\n\r\n.", true, 0, "\r\n..\r\n\r\n..\r\n.\r\n" },
		{ "x\r\n..\r\n.a\nb.\n", true, 0, "x\r\n...\r\n..a\r\nb.\r\n.\r\n" },
		{ "no end\r", true, 0, "no end\r\n.\r\n" },
		{ "H: 1\n\nb1\nb2\nb3\n", false, 0, "H: 1\r\n\r\n.\r\n" },
		{ "H: 1\n\nb1\nb2\nb3\n", false, 2, "H: 1\r\n\r\nb1\r\nb2\r\n.\r\n" },
		{ "H: 1\r\n\r\nb1\r\nb2\r\n", false, 1, "H: 1\r\n\r\nb1\r\n.\r\n" },
		{ "H: 1\n\nb1\n", false, 5, "H: 1\r\n\r\nb1\r\n.\r\n" },
		{ "H: 1\nH: 2\n", false, 0, "H: 1\r\nH: 2\r\n.\r\n" }, /* no body */
		{ "H: 1\n\n.b\n", false, 1, "H: 1\r\n\r\n..b\r\n.\r\n" },
	};
	char out[256];
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		for (size_t step = 1; step <= 64; step *= 4) {
			assert_string_equal(encode(cases[i].in, cases[i].all, cases[i].lines, step, out),
					    cases[i].out);
			assert_string_equal(encode_cap(cases[i].in, cases[i].all, cases[i].lines, step, true, out),
					    cases[i].out);
			if (!cases[i].all)
				continue;
			/* LIST size: the encoded octets without stuffing and ".CRLF". */
			size_t stuffed = 0, n = strlen(out);
			for (size_t k = 0; k + 3 < n; k++)
				if (out[k] == '.' && (k == 0 || out[k - 1] == '\n'))
					stuffed++;
			assert_int_equal(size_of(cases[i].in, step), n - 3 - stuffed);
		}
	}
}

/* Output space too small: the encoder stops and resumes without loss. */
static void test_encode_small_out(void **state)
{
	struct pop3_msg_enc e;
	const char *in = "..\n\n";
	char out[16];
	size_t olen, used;
	pop3_msg_enc_init(&e, true, 0);
	used = pop3_msg_enc_feed(&e, in, 4, out, 3, &olen);
	assert_int_equal(used, 2);     /* ".." became "..." then stopped */
	assert_int_equal(olen, 3);
	assert_memory_equal(out, "...", 3);
	used = pop3_msg_enc_feed(&e, in + 2, 2, out, 3, &olen);
	assert_int_equal(used, 1);     /* no room for a second CRLF */
	assert_int_equal(olen, 2);
	used = pop3_msg_enc_feed(&e, in + 3, 1, out, sizeof(out), &olen);
	assert_int_equal(used, 1);
	assert_memory_equal(out, "\r\n", 2);
	assert_int_equal(pop3_msg_enc_finish(&e, out), 3);
	/* a run longer than the space is cut and resumed */
	pop3_msg_enc_init(&e, true, 0);
	used = pop3_msg_enc_feed(&e, "abcdefgh", 8, out, 5, &olen);
	assert_int_equal(used, 5);
	assert_int_equal(olen, 5);
	used = pop3_msg_enc_feed(&e, "fgh", 3, out, sizeof(out), &olen);
	assert_int_equal(used, 3);
	assert_int_equal(pop3_msg_enc_finish(&e, out + olen), 5);
	assert_memory_equal(out, "fgh\r\n.\r\n", 8);
}

static void test_uidl(void **state)
{
	char u[MAILBOX_UIDL_MAX + 1];
	uint64_t w;

	mailbox_uidl_of("1700000000.M1P2Q3.host,S=100,W=104", u);
	assert_string_equal(u, "1700000000.M1P2Q3.host");
	mailbox_uidl_of("1700000000.M1P2Q3.host,S=100,W=104:2,S", u);
	assert_string_equal(u, "1700000000.M1P2Q3.host");
	mailbox_uidl_of("1700000000.M1P2Q3.host:2,RS", u);
	assert_string_equal(u, "1700000000.M1P2Q3.host");
	mailbox_uidl_of("plain", u);
	assert_string_equal(u, "plain");
	/* 70 characters pass; 71 become a 32-digit digest. */
	char name[128];
	memset(name, 'x', 70);
	name[70] = '\0';
	mailbox_uidl_of(name, u);
	assert_string_equal(u, name);
	name[70] = 'x';
	name[71] = '\0';
	mailbox_uidl_of(name, u);
	assert_int_equal(strlen(u), 32);
	mailbox_uidl_of("a b", u);     /* a space is not allowed in a UIDL */
	assert_int_equal(strlen(u), 32);

	assert_true(mailbox_name_wsize("x,S=10,W=12:2,S", &w));
	assert_int_equal(w, 12);
	assert_false(mailbox_name_wsize("x,S=10:2,W=12", &w));   /* after ':' is info */
	assert_false(mailbox_name_wsize("x,S=10", &w));
	assert_false(mailbox_name_wsize("x,W=", &w));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_split),
		cmocka_unit_test(test_words),
		cmocka_unit_test(test_msgnum),
		cmocka_unit_test(test_number),
		cmocka_unit_test(test_encode),
		cmocka_unit_test(test_encode_small_out),
		cmocka_unit_test(test_uidl),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
