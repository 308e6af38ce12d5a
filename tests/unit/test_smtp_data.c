/*
 * test_smtp_data.c - unit tests for proto/smtp_data: end of data, dot-
 * unstuffing, CRLF -> LF, bare CR/LF/NUL flags, line length, and the SMTP
 * smuggling variants; every case is fed whole, byte by byte and in random
 * splits, which must all agree.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/smtp_data.h"

struct result {
	char out[8192];
	size_t out_len;
	size_t consumed;	/* input octets used (all of them if not done) */
	bool done;
	unsigned errors;
	uint64_t octets;
};

/* Feed in chunks whose sizes come from next_chunk(); 0 means "the rest". */
static void run(const char *in, size_t len, size_t max_line, unsigned seed, int mode,
		struct result *r)
{
	struct smtp_data d;
	char out[8192 + 2];
	size_t pos = 0;
	memset(r, 0, sizeof(*r));
	smtp_data_init(&d, max_line);
	srand(seed);
	while (pos < len && !r->done) {
		size_t chunk = len - pos;
		if (mode == 1)
			chunk = 1;
		else if (mode == 2)
			chunk = 1 + (size_t)rand() % (len - pos);
		size_t n;
		bool done;
		size_t used = smtp_data_feed(&d, in + pos, chunk, out, &n, &done);
		assert_true(n <= chunk + 2);
		if (!done)
			assert_int_equal(used, chunk);
		assert_true(r->out_len + n <= sizeof(r->out));
		memcpy(r->out + r->out_len, out, n);
		r->out_len += n;
		pos += used;
		r->done = done;
	}
	r->consumed = pos;
	r->errors = d.errors;
	r->octets = d.octets;
}

static void run_all_splits(const char *in, size_t len, size_t max_line, struct result *r)
{
	struct result other;
	run(in, len, max_line, 0, 0, r);
	assert_int_equal(r->octets, r->out_len);
	for (int mode = 1; mode <= 2; mode++) {
		for (unsigned seed = 1; seed <= (mode == 2 ? 50u : 1u); seed++) {
			run(in, len, max_line, seed, mode, &other);
			assert_int_equal(other.out_len, r->out_len);
			assert_memory_equal(other.out, r->out, r->out_len);
			assert_int_equal(other.done, r->done);
			assert_int_equal(other.consumed, r->consumed);
			assert_int_equal(other.errors, r->errors);
		}
	}
}

#define S(x) x, sizeof(x) - 1

struct data_case {
	const char *in;
	size_t len;
	const char *out;
	size_t out_len;
	bool done;
	size_t consumed;	/* when done */
	unsigned errors;
};

#define LF SMTP_DATA_ERR_BARE_LF
#define CR SMTP_DATA_ERR_BARE_CR
#define NUL SMTP_DATA_ERR_NUL

static const struct data_case cases[] = {
	/* plain endings */
	{ S(".\r\n"), S(""), true, 3, 0 },
	{ S(".\r\nQUIT\r\n"), S(""), true, 3, 0 },
	{ S("hello\r\n.\r\n"), S("hello\n"), true, 10, 0 },
	{ S("a\r\nb\r\n.\r\nMAIL FROM:<x@y>\r\n"), S("a\nb\n"), true, 9, 0 },
	{ S("\r\n.\r\n"), S("\n"), true, 5, 0 },
	{ S("no end\r\n"), S("no end\n"), false, 0, 0 },
	{ S("no end"), S("no end"), false, 0, 0 },
	{ S("x\r\n."), S("x\n"), false, 0, 0 },
	{ S("x\r\n.\r"), S("x\n"), false, 0, 0 },
	/* dot-unstuffing */
	{ S("..\r\n.\r\n"), S(".\n"), true, 7, 0 },
	{ S("...\r\n.\r\n"), S("..\n"), true, 8, 0 },
	{ S("..x\r\n.\r\n"), S(".x\n"), true, 8, 0 },
	{ S(".x\r\n.\r\n"), S("x\n"), true, 7, 0 },
	{ S("a.\r\n.\r\n"), S("a.\n"), true, 7, 0 },
	{ S("a\r\n..\r\n.\r\n"), S("a\n.\n"), true, 10, 0 },
	{ S("a\r\n.. \r\n.\r\n"), S("a\n. \n"), true, 11, 0 },
	{ S("x. \r\n. \r\n.\r\n"), S("x. \n \n"), true, 12, 0 },
	/* smuggling: none of these end the data */
	{ S("a\n.\nb"), S("a\n.\nb"), false, 0, LF },
	{ S("a\n.\r\nb"), S("a\n.\nb"), false, 0, LF },
	{ S("a\r.\rb"), S("a\r.\rb"), false, 0, CR },
	{ S("a\r\n.\nb"), S("a\n\nb"), false, 0, LF },
	{ S("a\r\n.\r\r\nb"), S("a\n\r\nb"), false, 0, CR },
	{ S("a\r.\r\nb"), S("a\r.\nb"), false, 0, CR },
	{ S("a\n.\rb"), S("a\n.\rb"), false, 0, LF | CR },
	{ S("a\r\n.\rb"), S("a\n\rb"), false, 0, CR },
	{ S("a\r\r\n.\r\n"), S("a\r\n"), true, 7, CR },
	{ S("a\n\r\n.\r\n"), S("a\n\n"), true, 7, LF },
	{ S("a\r\n\n.\r\n"), S("a\n\n.\n"), false, 0, LF },
	{ S("a\r\n.\n.\r\n"), S("a\n\n.\n"), false, 0, LF },
	/* smuggled sequence inside a message, then the real end */
	{ S("a\n.\nMAIL FROM:<e@vil>\r\n.\r\nQUIT\r\n"), S("a\n.\nMAIL FROM:<e@vil>\n"), true, 26, LF },
	{ S("a\r\n.\r\r\nRCPT\r\n.\r\n"), S("a\n\r\nRCPT\n"), true, 16, CR },
	/* NUL and bare CR/LF pass through, flagged */
	{ S("a\0b\r\n.\r\n"), S("a\0b\n"), true, 8, NUL },
	{ S("\0\r\n.\r\n"), S("\0\n"), true, 6, NUL },
	{ S("a\rb\r\n.\r\n"), S("a\rb\n"), true, 8, CR },
	{ S("a\r\rb\r\n.\r\n"), S("a\r\rb\n"), true, 9, CR },
	{ S("a\nb\r\n.\r\n"), S("a\nb\n"), true, 8, LF },
	{ S("\n.\r\n"), S("\n.\n"), false, 0, LF },
	{ S("\r.\r\n"), S("\r.\n"), false, 0, CR },
	/* a bare CR then CRLF: the CR is bare, the CRLF still ends the line */
	{ S("\r\r\n.\r\n"), S("\r\n"), true, 6, CR },
};

static void test_cases(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct data_case *c = &cases[i];
		struct result r;
		run_all_splits(c->in, c->len, 1000, &r);
		if (r.out_len != c->out_len || memcmp(r.out, c->out, c->out_len) != 0)
			fail_msg("case %zu: output differs (len %zu, want %zu)", i, r.out_len, c->out_len);
		if (r.done != c->done)
			fail_msg("case %zu: done %d", i, r.done);
		assert_int_equal(r.consumed, c->done ? c->consumed : c->len);
		if (r.errors != c->errors)
			fail_msg("case %zu: errors %#x, want %#x", i, r.errors, c->errors);
	}
}

/* A line of n octets before its CRLF, then the end of data. */
static unsigned line_errors(size_t n, size_t max_line, bool dot)
{
	static char in[4096];
	struct result r;
	memset(in, 'x', n);
	if (dot && n > 0)
		in[0] = '.';
	memcpy(in + n, "\r\n.\r\n", 5);
	run_all_splits(in, n + 5, max_line, &r);
	assert_true(r.done);
	assert_int_equal(r.out_len, n + 1 - (dot && n > 1 ? 1 : 0));
	return r.errors;
}

static void test_line_length(void **state)
{
	(void)state;
	assert_int_equal(line_errors(998, 1000, false), 0);	/* 1000 with CRLF */
	assert_int_equal(line_errors(999, 1000, false), SMTP_DATA_ERR_LINE_LEN);
	assert_int_equal(line_errors(1500, 1000, false), SMTP_DATA_ERR_LINE_LEN);
	assert_int_equal(line_errors(3000, 0, false), 0);	/* unlimited */
	/* the stuffing dot counts: it is on the wire */
	assert_int_equal(line_errors(998, 1000, true), 0);
	assert_int_equal(line_errors(999, 1000, true), SMTP_DATA_ERR_LINE_LEN);
	assert_int_equal(line_errors(8, 10, false), 0);
	assert_int_equal(line_errors(9, 10, false), SMTP_DATA_ERR_LINE_LEN);
}

static void test_line_length_no_crlf(void **state)
{
	static char in[2100];
	struct result r;
	(void)state;
	/* a bare LF does not start a new line, so it does not reset the count */
	memset(in, 'x', sizeof(in));
	for (size_t i = 500; i < sizeof(in); i += 500)
		in[i] = '\n';
	run_all_splits(in, sizeof(in), 1000, &r);
	assert_false(r.done);
	assert_int_equal(r.errors, SMTP_DATA_ERR_LINE_LEN | SMTP_DATA_ERR_BARE_LF);
	/* 1000 octets with no line end at all: past the limit only at 1001 */
	run_all_splits(in, 1000 - 1, 1000, &r);	/* has one bare LF at 500 */
	assert_int_equal(r.errors, SMTP_DATA_ERR_BARE_LF);
	run_all_splits(in, 1001, 1000, &r);
	assert_int_equal(r.errors, SMTP_DATA_ERR_LINE_LEN | SMTP_DATA_ERR_BARE_LF);
}

static void test_after_done(void **state)
{
	struct smtp_data d;
	char out[16];
	size_t n;
	bool done;
	(void)state;
	smtp_data_init(&d, 1000);
	assert_int_equal(smtp_data_feed(&d, ".\r\nX", 4, out, &n, &done), 3);
	assert_true(done);
	assert_int_equal(n, 0);
	assert_int_equal(smtp_data_feed(&d, "X", 1, out, &n, &done), 0);
	assert_true(done);
	assert_int_equal(n, 0);
	/* an empty feed is harmless */
	smtp_data_init(&d, 1000);
	assert_int_equal(smtp_data_feed(&d, "", 0, out, &n, &done), 0);
	assert_false(done);
	assert_int_equal(n, 0);
}

static void test_errors_sticky(void **state)
{
	struct smtp_data d;
	char out[64];
	size_t n;
	bool done;
	(void)state;
	smtp_data_init(&d, 1000);
	smtp_data_feed(&d, "a\nb\r\n", 5, out, &n, &done);
	assert_int_equal(d.errors, SMTP_DATA_ERR_BARE_LF);
	smtp_data_feed(&d, "clean\r\n", 7, out, &n, &done);
	assert_int_equal(d.errors, SMTP_DATA_ERR_BARE_LF);
	smtp_data_feed(&d, ".\r\n", 3, out, &n, &done);
	assert_true(done);
	assert_int_equal(d.octets, 10);	/* "a\nb\n" + "clean\n" */
}

/* Random inputs over a small alphabet rich in CR, LF and '.'. */
static void test_random_splits(void **state)
{
	static const char alpha[] = "\r\n.\r\n.a\0";
	char in[200];
	struct result r;
	(void)state;
	srand(12345);
	for (int iter = 0; iter < 300; iter++) {
		size_t len = 1 + (size_t)rand() % sizeof(in);
		for (size_t i = 0; i < len; i++)
			in[i] = alpha[rand() % (sizeof(alpha) - 1)];
		run_all_splits(in, len, 8, &r);
		assert_true(r.out_len <= len);
	}
}

/* Long plain runs (the whole-chunk path copies them at once) with CR, LF,
 * NUL and dots now and then, line limits around the run lengths: fed
 * whole, byte by byte (runs of one) and in random splits, all agree. */
static void test_random_long_runs(void **state)
{
	static const char special[] = "\r\n.\r\n\0";
	char in[4000];
	struct result r;
	(void)state;
	srand(777);
	for (int iter = 0; iter < 200; iter++) {
		size_t len = 1 + (size_t)rand() % sizeof(in);
		for (size_t i = 0; i < len; i++)
			in[i] = rand() % 40 ? (char)('a' + rand() % 26)
					    : special[rand() % (sizeof(special) - 1)];
		size_t max_line = iter % 4 == 0 ? 0 : 20 + (size_t)rand() % 200;
		run_all_splits(in, len, max_line, &r);
		assert_true(r.out_len <= len);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cases),
		cmocka_unit_test(test_line_length),
		cmocka_unit_test(test_line_length_no_crlf),
		cmocka_unit_test(test_after_done),
		cmocka_unit_test(test_errors_sticky),
		cmocka_unit_test(test_random_splits),
		cmocka_unit_test(test_random_long_runs),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
