/*
 * test_queuefile.c - proto/queuefile.c: the queue file's trailer, its
 * envelope and the state file, each from a table of files as the writer
 * makes them and as damage or tampering leaves them.
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
#include "proto/queuefile.h"

#define S(lit) lit, sizeof(lit) - 1

/* Whole files: the trailer is read from the last 128 bytes, as queue.c does. */
static void test_trailer_table(void **state)
{
	static const struct {
		const char *file;
		size_t len;
		enum queuefile_err err;
		uint64_t off, mlen, lines;
		bool eight;
	} cases[] = {
		{ S("E\n\nbody\nTERN-END off=3 len=5 lines=1 8bit=0\n"), QUEUEFILE_OK, 3, 5, 1, false },
		{ S("E\n\nbody\nTERN-END off=3 len=5 lines=1 8bit=1\n"), QUEUEFILE_OK, 3, 5, 1, true },
		/* an empty message */
		{ S("E\n\nTERN-END off=3 len=0 lines=0 8bit=0\n"), QUEUEFILE_OK, 3, 0, 0, false },
		/* a message without a final line end (BDAT) */
		{ S("E\n\nbodyTERN-END off=3 len=4 lines=1 8bit=0\n"), QUEUEFILE_OK, 3, 4, 1, false },
		/* NULs just before the trailer (BINARYMIME) */
		{ S("E\n\nb\0\0\nTERN-END off=3 len=4 lines=1 8bit=1\n"), QUEUEFILE_OK, 3, 4, 1, true },
		/* the message quotes a trailer: the last one counts */
		{ S("E\n\nTERN-END off=1 len=1 lines=1 8bit=0\nTERN-END off=3 len=36 lines=1 8bit=0\n"),
		  QUEUEFILE_OK, 3, 36, 1, false },
		{ S("E\n\nbody\n"), QUEUEFILE_NO_TRAILER, 0, 0, 0, false },
		{ S(""), QUEUEFILE_NO_TRAILER, 0, 0, 0, false },
		/* cut short: the line end, a digit, the whole last field */
		{ S("E\n\nbody\nTERN-END off=3 len=5 lines=1 8bit=0"), QUEUEFILE_BAD_TRAILER, 0, 0, 0, false },
		{ S("E\n\nbody\nTERN-END off=3 len=5 lines=1 8bit="), QUEUEFILE_BAD_TRAILER, 0, 0, 0, false },
		{ S("E\n\nbody\nTERN-END off=3 len=5 lines=1"), QUEUEFILE_BAD_TRAILER, 0, 0, 0, false },
		/* something after it */
		{ S("E\n\nbody\nTERN-END off=3 len=5 lines=1 8bit=0\nx"), QUEUEFILE_BAD_TRAILER, 0, 0, 0, false },
		{ S("E\n\nbody\nTERN-END off=3 len=5 lines=1 8bit=0\n\n"), QUEUEFILE_BAD_TRAILER, 0, 0, 0, false },
		/* lengths that do not match where it is */
		{ S("E\n\nbody\nTERN-END off=3 len=4 lines=1 8bit=0\n"), QUEUEFILE_BAD_TRAILER, 0, 0, 0, false },
		{ S("E\n\nbody\nTERN-END off=4 len=5 lines=1 8bit=0\n"), QUEUEFILE_BAD_TRAILER, 0, 0, 0, false },
		{ S("E\n\nbody\nTERN-END off=9 len=0 lines=1 8bit=0\n"), QUEUEFILE_BAD_TRAILER, 0, 0, 0, false },
		/* off + len wrapping around 2^64 to the right place */
		{ S("E\n\nbody\nTERN-END off=18446744073709551615 len=9 lines=1 8bit=0\n"), QUEUEFILE_BAD_TRAILER, 0, 0, 0, false },
		{ S("E\n\nbody\nTERN-END off=3 len=18446744073709551622 lines=1 8bit=0\n"), QUEUEFILE_BAD_TRAILER, 0, 0, 0, false },
		/* numbers as sscanf would take them, and flags other than 0/1 */
		{ S("E\n\nbody\nTERN-END off=+3 len=5 lines=1 8bit=0\n"), QUEUEFILE_BAD_TRAILER, 0, 0, 0, false },
		{ S("E\n\nbody\nTERN-END off= 3 len=5 lines=1 8bit=0\n"), QUEUEFILE_BAD_TRAILER, 0, 0, 0, false },
		{ S("E\n\nbody\nTERN-END off=3 len=5 lines=-1 8bit=0\n"), QUEUEFILE_BAD_TRAILER, 0, 0, 0, false },
		{ S("E\n\nbody\nTERN-END off=3 len=5 lines=1 8bit=2\n"), QUEUEFILE_BAD_TRAILER, 0, 0, 0, false },
		{ S("E\n\nbody\nTERN-END off=3 len=5 lines=1 8bit=1x\n"), QUEUEFILE_BAD_TRAILER, 0, 0, 0, false },
		{ S("E\n\nbody\nTERN-END off=3 len=5 lines=1 8bit=0\r\n"), QUEUEFILE_BAD_TRAILER, 0, 0, 0, false },
		{ S("E\n\nbody\nTERN-END  off=3 len=5 lines=1 8bit=0\n"), QUEUEFILE_BAD_TRAILER, 0, 0, 0, false },
		{ S("E\n\nbody\nTERN-END off=3 lines=1 len=5 8bit=0\n"), QUEUEFILE_BAD_TRAILER, 0, 0, 0, false },
		{ S("E\n\nbody\nTERN-END off=003 len=5 lines=1 8bit=0\n"), QUEUEFILE_OK, 3, 5, 1, false },
		{ S("E\n\nbody\nTERN-END off=3 len=5 lines=123456789012345678901 8bit=0\n"), QUEUEFILE_BAD_TRAILER, 0, 0, 0, false },
	};

	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		struct queue_env env = { 0 };
		size_t n = cases[i].len < QUEUEFILE_TRAILER_MAX ? cases[i].len : QUEUEFILE_TRAILER_MAX;
		enum queuefile_err e = queuefile_parse_trailer(cases[i].file + cases[i].len - n, n,
							       cases[i].len, &env);
		if (e != cases[i].err)
			fail_msg("case %zu: %s, expected %s", i, queuefile_err_name(e),
				 queuefile_err_name(cases[i].err));
		if (e != QUEUEFILE_OK)
			continue;
		assert_int_equal(env.msg_offset, cases[i].off);
		assert_int_equal(env.msg_len, cases[i].mlen);
		assert_int_equal(env.msg_lines, cases[i].lines);
		assert_int_equal(env.eight_bit, cases[i].eight);
	}
}

/* The flags known only at the end of a message (DMARC quarantine, DKIM
 * signed) follow 8bit=, in that order, and only when set. */
static void test_trailer_flags(void **state)
{
	static const struct {
		const char *file;
		size_t len;
		enum queuefile_err err;
		bool junk, dkim_signed;
	} cases[] = {
		{ S("E\n\nbody\nTERN-END off=3 len=5 lines=1 8bit=0\n"), QUEUEFILE_OK, false, false },
		{ S("E\n\nbody\nTERN-END off=3 len=5 lines=1 8bit=0 junk=1\n"), QUEUEFILE_OK, true, false },
		{ S("E\n\nbody\nTERN-END off=3 len=5 lines=1 8bit=0 signed=1\n"), QUEUEFILE_OK, false, true },
		{ S("E\n\nbody\nTERN-END off=3 len=5 lines=1 8bit=1 junk=1 signed=1\n"), QUEUEFILE_OK, true, true },
		{ S("E\n\nbody\nTERN-END off=3 len=5 lines=1 8bit=0 signed=1 junk=1\n"), QUEUEFILE_BAD_TRAILER, false, false },
		{ S("E\n\nbody\nTERN-END off=3 len=5 lines=1 8bit=0 junk=2\n"), QUEUEFILE_BAD_TRAILER, false, false },
		{ S("E\n\nbody\nTERN-END off=3 len=5 lines=1 8bit=0 junk=\n"), QUEUEFILE_BAD_TRAILER, false, false },
		{ S("E\n\nbody\nTERN-END off=3 len=5 lines=1 8bit=0 other=1\n"), QUEUEFILE_BAD_TRAILER, false, false },
	};

	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		struct queue_env env = { 0 };
		enum queuefile_err e = queuefile_parse_trailer(cases[i].file, cases[i].len, cases[i].len, &env);
		if (e != cases[i].err)
			fail_msg("case %zu: %s, expected %s", i, queuefile_err_name(e),
				 queuefile_err_name(cases[i].err));
		if (e != QUEUEFILE_OK)
			continue;
		assert_int_equal(env.junk, cases[i].junk);
		assert_int_equal(env.dkim_signed, cases[i].dkim_signed);
	}
}

/* Signed 8-bit mail with signatures over its 7-bit form: sig8= and sig7=
 * after signed=1, the sig7 octets between the message and the trailer. */
static void test_trailer_dkim7(void **state)
{
	static const struct {
		const char *file;
		size_t len;
		enum queuefile_err err;
		uint64_t mlen, sig8, sig7;
	} cases[] = {
		{ S("E\n\nSIGbodySEVEN\nTERN-END off=3 len=7 lines=1 8bit=1 signed=1 sig8=3 sig7=6\n"), QUEUEFILE_OK, 7, 3, 6 },
		{ S("E\n\nSIGbodySEVEN\nTERN-END off=3 len=7 lines=1 8bit=1 junk=1 signed=1 sig8=3 sig7=6\n"), QUEUEFILE_OK, 7, 3, 6 },
		/* the lengths must add up to where the trailer is */
		{ S("E\n\nSIGbodySEVEN\nTERN-END off=3 len=7 lines=1 8bit=1 signed=1 sig8=3 sig7=5\n"), QUEUEFILE_BAD_TRAILER, 0, 0, 0 },
		{ S("E\n\nSIGbodySEVEN\nTERN-END off=3 len=13 lines=1 8bit=1 signed=1 sig8=3 sig7=6\n"), QUEUEFILE_BAD_TRAILER, 0, 0, 0 },
		/* both or neither, only when signed, never zero, sig8 inside the message */
		{ S("E\n\nSIGbodySEVEN\nTERN-END off=3 len=7 lines=1 8bit=1 signed=1 sig8=3\n"), QUEUEFILE_BAD_TRAILER, 0, 0, 0 },
		{ S("E\n\nSIGbodySEVEN\nTERN-END off=3 len=7 lines=1 8bit=1 sig8=3 sig7=6\n"), QUEUEFILE_BAD_TRAILER, 0, 0, 0 },
		{ S("E\n\nSIGbodySEVEN\nTERN-END off=3 len=7 lines=1 8bit=1 signed=1 sig8=0 sig7=6\n"), QUEUEFILE_BAD_TRAILER, 0, 0, 0 },
		{ S("E\n\nSIGbodySEVEN\nTERN-END off=3 len=7 lines=1 8bit=1 signed=1 sig8=8 sig7=6\n"), QUEUEFILE_BAD_TRAILER, 0, 0, 0 },
		/* without them, as before */
		{ S("E\n\nbody\nTERN-END off=3 len=5 lines=1 8bit=0 signed=1\n"), QUEUEFILE_OK, 5, 0, 0 },
	};

	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		struct queue_env env = { 0 };
		enum queuefile_err e = queuefile_parse_trailer(cases[i].file, cases[i].len, cases[i].len, &env);
		if (e != cases[i].err)
			fail_msg("case %zu: %s, expected %s", i, queuefile_err_name(e),
				 queuefile_err_name(cases[i].err));
		if (e != QUEUEFILE_OK)
			continue;
		assert_int_equal(env.msg_len, cases[i].mlen);
		assert_int_equal(env.dkim8_len, cases[i].sig8);
		assert_int_equal(env.dkim7_len, cases[i].sig7);
	}
}

/* The trailer is read from the file's last bytes only: a tail that does
 * not reach back to the file's start must still place it correctly. */
static void test_trailer_in_long_file(void **state)
{
	char file[4096];
	struct queue_env env = { 0 };
	size_t body = 3000;
	int n;

	memset(file, 'x', sizeof(file));
	memcpy(file, "E\n\n", 3);
	n = snprintf(file + 3 + body, sizeof(file) - 3 - body, "TERN-END off=3 len=%zu lines=0 8bit=0\n", body);
	size_t size = 3 + body + (size_t)n;
	assert_int_equal(queuefile_parse_trailer(file + size - QUEUEFILE_TRAILER_MAX, QUEUEFILE_TRAILER_MAX,
						 size, &env), QUEUEFILE_OK);
	assert_int_equal(env.msg_len, body);
	/* a tail longer than the file it claims to end */
	assert_int_equal(queuefile_parse_trailer(file, 64, 10, &env), QUEUEFILE_BAD_TRAILER);
}

#define ENV_HEAD "TERN-QUEUE 1\nid 0123456789ABCDEF\narrival 1700000000\n"
#define ENV_GOOD ENV_HEAD "from =a@b.test\nhelo =client%20test\nip =127.0.0.1\nauth -\nbody 2\nret 1\n" \
	"envid =QQ%25314159\nrcpt L 6 =alice@example.test =team@example.test =rfc822;team@example.test\n" \
	"rcpt R 0 =bob@remote.test - -\n\n"

static void test_envelope_fields(void **state)
{
	struct queue_env *env = xcalloc(1, sizeof(*env));

	assert_int_equal(queuefile_parse_envelope(S(ENV_GOOD), env), QUEUEFILE_OK);
	assert_int_equal(env->arrival, 1700000000);
	assert_string_equal(env->from, "a@b.test");
	assert_string_equal(env->helo, "client test");
	assert_string_equal(env->client_ip, "127.0.0.1");
	assert_null(env->auth_user);
	assert_int_equal(env->body, 2);
	assert_int_equal(env->ret, 1);
	assert_string_equal(env->envid, "QQ%314159");
	assert_false(env->smtputf8);
	assert_int_equal(env->nrcpt, 2);
	assert_string_equal(env->rcpt[0].addr, "alice@example.test");
	assert_string_equal(env->rcpt[0].orig, "team@example.test");
	assert_string_equal(env->rcpt[0].orcpt, "rfc822;team@example.test");
	assert_true(env->rcpt[0].local);
	assert_int_equal(env->rcpt[0].notify, 6);
	assert_string_equal(env->rcpt[1].addr, "bob@remote.test");
	assert_null(env->rcpt[1].orig);
	assert_null(env->rcpt[1].orcpt);
	assert_false(env->rcpt[1].local);
	assert_int_equal(env->rcpt[1].state, RCPT_PENDING);
	queue_env_free(env);
}

static void test_envelope_table(void **state)
{
	static const struct {
		const char *text;
		size_t len;
		enum queuefile_err err;
	} cases[] = {
		{ S(ENV_GOOD), QUEUEFILE_OK },
		/* the null reverse path, written "=" */
		{ S("from =\n\n"), QUEUEFILE_OK },
		{ S("from -\n\n"), QUEUEFILE_OK },
		/* runs of spaces between fields are taken as one */
		{ S("from  =a@b\nbody   1\n\n"), QUEUEFILE_OK },
		/* a repeated line replaces the value (and must not leak it) */
		{ S("from =a@b\nfrom =c@d\nhelo =x\nhelo -\n\n"), QUEUEFILE_OK },
		{ S(""), QUEUEFILE_NO_END },
		{ S("from =a@b\n"), QUEUEFILE_NO_END },
		{ S("from =a@b\nhelo =x"), QUEUEFILE_NO_END },
		/* the blank line must be where the message begins */
		{ S("from =a@b\n\nSubject: x\n"), QUEUEFILE_NO_END },
		/* padding after it (room that fields in front did not take)
		 * is line ends and nothing else */
		{ S("from =a@b\n\n\n\n\n"), QUEUEFILE_OK },
		{ S("from =a@b\n\n\n\nX: y\n"), QUEUEFILE_NO_END },
		{ S("from =a@b\n\n\n \n"), QUEUEFILE_NO_END },
		{ S("helo =x\n\n"), QUEUEFILE_NO_FROM },
		{ S("\n"), QUEUEFILE_NO_FROM },
		{ S("from a@b\n\n"), QUEUEFILE_BAD_LINE },
		{ S("from =a@b c\n\n"), QUEUEFILE_BAD_LINE },
		{ S("from\n\n"), QUEUEFILE_BAD_LINE },
		{ S("from =a%4\n\n"), QUEUEFILE_BAD_LINE },
		{ S("from =a%4G\n\n"), QUEUEFILE_BAD_LINE },
		{ S("from =a%\n\n"), QUEUEFILE_BAD_LINE },
		/* %00 would cut the value short */
		{ S("from =a%00b\n\n"), QUEUEFILE_BAD_LINE },
		/* a raw NUL cuts nothing short either */
		{ S("from =a@b\0evil\n\n"), QUEUEFILE_BAD_LINE },
		{ S("from =a@b\nsubject =x\n\n"), QUEUEFILE_BAD_LINE },
		{ S("   \nfrom =a@b\n\n"), QUEUEFILE_BAD_LINE },
		{ S("from =a@b\r\n\n"), QUEUEFILE_BAD_LINE },
		{ S("from =a@b\narrival -1\n\n"), QUEUEFILE_BAD_LINE },
		{ S("from =a@b\narrival 9223372036854775808\n\n"), QUEUEFILE_BAD_LINE },
		{ S("from =a@b\narrival 9223372036854775807\n\n"), QUEUEFILE_OK },
		{ S("from =a@b\nbody 3\n\n"), QUEUEFILE_OK },           /* BINARYMIME */
		{ S("from =a@b\nbody 4\n\n"), QUEUEFILE_BAD_LINE },
		{ S("from =a@b\nsmtputf8 1\n\n"), QUEUEFILE_OK },
		{ S("from =a@b\nsmtputf8 0\n\n"), QUEUEFILE_OK },
		{ S("from =a@b\nsmtputf8 2\n\n"), QUEUEFILE_BAD_LINE },
		{ S("from =a@b\nsmtputf8\n\n"), QUEUEFILE_BAD_LINE },
		{ S("from =a@b\nret 3\n\n"), QUEUEFILE_BAD_LINE },
		{ S("from =a@b\nrcpt L 16 =x@y - -\n\n"), QUEUEFILE_BAD_LINE },
		{ S("from =a@b\nrcpt X 0 =x@y - -\n\n"), QUEUEFILE_BAD_LINE },
		{ S("from =a@b\nrcpt LR 0 =x@y - -\n\n"), QUEUEFILE_BAD_LINE },
		{ S("from =a@b\nrcpt L 0 - - -\n\n"), QUEUEFILE_BAD_LINE },
		{ S("from =a@b\nrcpt L 0 =x@y - -%\n\n"), QUEUEFILE_BAD_LINE },
		{ S("from =a@b\nrcpt L 0 =x@y %41 -\n\n"), QUEUEFILE_BAD_LINE },
		{ S("from =a@b\nrcpt L 0 =x@y -\n\n"), QUEUEFILE_BAD_LINE },
		{ S("from =a@b\nrcpt L 0 =x@y - - - - - -\n\n"), QUEUEFILE_BAD_LINE },
		{ S("from =a@b\nid\n\n"), QUEUEFILE_BAD_LINE },
	};

	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		struct queue_env *env = xcalloc(1, sizeof(*env));
		enum queuefile_err e = queuefile_parse_envelope(cases[i].text, cases[i].len, env);
		if (e != cases[i].err)
			fail_msg("case %zu: %s, expected %s", i, queuefile_err_name(e),
				 queuefile_err_name(cases[i].err));
		queue_env_free(env);
	}
}

static void test_envelope_values_decoded(void **state)
{
	struct queue_env *env = xcalloc(1, sizeof(*env));

	assert_int_equal(queuefile_parse_envelope(S("from =%3c%3E%25%20%7f%C3%A9\nhelo =\n\n"), env),
			 QUEUEFILE_OK);
	assert_string_equal(env->from, "<>% \x7f\xc3\xa9");
	assert_string_equal(env->helo, "");
	queue_env_free(env);
	env = xcalloc(1, sizeof(*env));
	assert_int_equal(queuefile_parse_envelope(S("from =%C3%BC@b.test\nsmtputf8 1\n\n"), env), QUEUEFILE_OK);
	assert_true(env->smtputf8);
	queue_env_free(env);
}

static struct queue_env *two_rcpts(void)
{
	struct queue_env *env = xcalloc(1, sizeof(*env));
	assert_int_equal(queuefile_parse_envelope(S(ENV_GOOD), env), QUEUEFILE_OK);
	return env;
}

static void test_state_fields(void **state)
{
	static const char st[] = "held 1\nwarned 0\n"
		"rcpt 0 2 1 0 =mx.remote.test =2.0.0 =250%20ok\ndsn 0\n"
		"rcpt 1 1 3 1700000600 - =4.4.1 =connection%20refused\n";
	struct queue_env *env = two_rcpts();

	assert_int_equal(queuefile_parse_state(S(st), env), 0);
	assert_true(env->held);
	assert_false(env->delay_warned);
	assert_int_equal(env->rcpt[0].state, RCPT_DONE);
	assert_int_equal(env->rcpt[0].attempts, 1);
	assert_string_equal(env->rcpt[0].remote_mta, "mx.remote.test");
	assert_string_equal(env->rcpt[0].status, "2.0.0");
	assert_string_equal(env->rcpt[0].last_reply, "250 ok");
	assert_true(env->rcpt[0].dsn_done);
	assert_int_equal(env->rcpt[1].state, RCPT_DEFERRED);
	assert_int_equal(env->rcpt[1].attempts, 3);
	assert_int_equal(env->rcpt[1].next_try, 1700000600);
	assert_null(env->rcpt[1].remote_mta);
	assert_string_equal(env->rcpt[1].last_reply, "connection refused");
	assert_false(env->rcpt[1].dsn_done);
	queue_env_free(env);
}

/* Each bad line is skipped whole: the recipient keeps what it had. */
static void test_state_table(void **state)
{
	static const struct {
		const char *text;
		size_t len;
		size_t skipped;
		enum rcpt_state st0;      /* recipient 0 afterwards */
	} cases[] = {
		{ S(""), 0, RCPT_PENDING },
		{ S("rcpt 0 2 1 0 - - -"), 0, RCPT_DONE },                 /* no final line end */
		{ S("rcpt 0 2 1 0 - - -\nrcpt 0 1 2 0 - - -\n"), 0, RCPT_DEFERRED }, /* the last wins */
		{ S("rcpt 2 2 1 0 - - -\n"), 1, RCPT_PENDING },            /* no such recipient */
		{ S("rcpt 0 4 1 0 - - -\n"), 1, RCPT_PENDING },            /* no such state */
		{ S("rcpt 0 2 4294967296 0 - - -\n"), 1, RCPT_PENDING },
		{ S("rcpt 0 2 1 9223372036854775808 - - -\n"), 1, RCPT_PENDING },
		{ S("rcpt 0 2 1 0 - - =a%2\n"), 1, RCPT_PENDING },         /* broken escape, last field */
		{ S("rcpt 0 2 1 0 x - -\n"), 1, RCPT_PENDING },
		{ S("rcpt 0 2 1 0 - - - -\n"), 1, RCPT_PENDING },
		{ S("rcpt 0 2 1 0 - -\n"), 1, RCPT_PENDING },
		{ S("rcpt 0 2 1 0 - - -\0\n"), 1, RCPT_PENDING },
		{ S("held 2\nwarned\ndsn 2\ndsn x\nfoo\n\n"), 6, RCPT_PENDING },
		{ S("\n\n"), 2, RCPT_PENDING },
	};

	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		struct queue_env *env = two_rcpts();
		size_t skipped = queuefile_parse_state(cases[i].text, cases[i].len, env);
		if (skipped != cases[i].skipped || env->rcpt[0].state != cases[i].st0)
			fail_msg("case %zu: skipped %zu state %d", i, skipped, (int)env->rcpt[0].state);
		assert_false(env->held);
		assert_false(env->rcpt[0].dsn_done || env->rcpt[1].dsn_done);
		queue_env_free(env);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_trailer_table),
		cmocka_unit_test(test_trailer_flags),
		cmocka_unit_test(test_trailer_dkim7),
		cmocka_unit_test(test_trailer_in_long_file),
		cmocka_unit_test(test_envelope_fields),
		cmocka_unit_test(test_envelope_table),
		cmocka_unit_test(test_envelope_values_decoded),
		cmocka_unit_test(test_state_fields),
		cmocka_unit_test(test_state_table),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
