/*
 * test_dkim_canon.c - DKIM canonicalization (RFC 6376 3.4): the 3.4.5
 * example, edge cases of each form, the same output however the body is
 * cut into chunks and whichever line ends it uses, and l= limits.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "proto/dkim_canon.h"

struct out {
	char buf[4096];
	size_t len;
};

static void collect(void *arg, const char *buf, size_t len)
{
	struct out *o = arg;
	assert_true(o->len + len <= sizeof o->buf);
	memcpy(o->buf + o->len, buf, len);
	o->len += len;
}

static void test_header(void **state)
{
	static const struct {
		enum dkim_canon c;
		const char *in, *want;
	} cases[] = {
		/* RFC 6376 3.4.5 */
		{ DKIM_CANON_RELAXED, "A: X", "a:X\r\n" },
		{ DKIM_CANON_RELAXED, "B : Y\t\r\n\tZ  ", "b:Y Z\r\n" },
		{ DKIM_CANON_SIMPLE, "B : Y\t\r\n\tZ  ", "B : Y\t\r\n\tZ  \r\n" },
		/* LF line ends (tern's message path) hash as CRLF */
		{ DKIM_CANON_SIMPLE, "Subject: a\n b", "Subject: a\r\n b\r\n" },
		{ DKIM_CANON_RELAXED, "Subject: a\n b", "subject:a b\r\n" },
		{ DKIM_CANON_RELAXED, "SUBJECT:   ", "subject:\r\n" },
		{ DKIM_CANON_RELAXED, "X-Y:\t a \t b\t", "x-y:a b\r\n" },
		{ DKIM_CANON_RELAXED, "From:\r\n <a@b>", "from:<a@b>\r\n" },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct out o = { .len = 0 };
		dkim_canon_header(cases[i].c, cases[i].in, strlen(cases[i].in), true, collect, &o);
		print_message("case %zu\n", i);
		assert_int_equal(o.len, strlen(cases[i].want));
		assert_memory_equal(o.buf, cases[i].want, o.len);
	}
}

static const struct {
	enum dkim_canon c;
	const char *in, *want;
} body_cases[] = {
	/* RFC 6376 3.4.5 */
	{ DKIM_CANON_RELAXED, " C \r\nD \t E\r\n\r\n\r\n", " C\r\nD E\r\n" },
	{ DKIM_CANON_SIMPLE, " C \r\nD \t E\r\n\r\n\r\n", " C \r\nD \t E\r\n" },
	/* 3.4.3, 3.4.4: empty bodies */
	{ DKIM_CANON_SIMPLE, "", "\r\n" },
	{ DKIM_CANON_SIMPLE, "\r\n\r\n", "\r\n" },
	{ DKIM_CANON_RELAXED, "", "" },
	{ DKIM_CANON_RELAXED, "\r\n \r\n\t\r\n", "" },
	/* a missing last CRLF is added */
	{ DKIM_CANON_SIMPLE, "abc", "abc\r\n" },
	{ DKIM_CANON_RELAXED, "abc  ", "abc\r\n" },
	/* empty lines inside the body stay */
	{ DKIM_CANON_SIMPLE, "a\r\n\r\n\r\nb\r\n\r\n", "a\r\n\r\n\r\nb\r\n" },
	{ DKIM_CANON_RELAXED, "a\r\n  \r\nb\r\n", "a\r\n\r\nb\r\n" },
	/* simple keeps a line of whitespace: it is not empty */
	{ DKIM_CANON_SIMPLE, "a\r\n \r\n", "a\r\n \r\n" },
	/* LF line ends */
	{ DKIM_CANON_SIMPLE, "a\n\nb\n\n\n", "a\r\n\r\nb\r\n" },
	{ DKIM_CANON_RELAXED, " x  y \n", " x y\r\n" },
	/* a bare CR is content */
	{ DKIM_CANON_SIMPLE, "a\rb\r\n", "a\rb\r\n" },
	{ DKIM_CANON_RELAXED, "a\r", "a\r\r\n" },
};

static void run_body(enum dkim_canon c, const char *in, size_t len, size_t chunk, struct out *o)
{
	struct dkim_body b;

	o->len = 0;
	dkim_body_init(&b, c, false, 0, collect, o);
	for (size_t off = 0; off < len; off += chunk)
		dkim_body_feed(&b, in + off, len - off < chunk ? len - off : chunk);
	dkim_body_finish(&b);
	assert_int_equal(b.total, o->len);
}

static void test_body(void **state)
{
	for (size_t i = 0; i < sizeof body_cases / sizeof body_cases[0]; i++) {
		size_t len = strlen(body_cases[i].in);
		print_message("case %zu\n", i);
		/* whole, and in chunks of every size down to one octet */
		for (size_t chunk = len ? len : 1; chunk >= 1; chunk--) {
			struct out o;
			run_body(body_cases[i].c, body_cases[i].in, len, chunk, &o);
			assert_int_equal(o.len, strlen(body_cases[i].want));
			assert_memory_equal(o.buf, body_cases[i].want, o.len);
		}
	}
}

/* Beyond the output buffer: a long body through many flushes. */
static void test_body_long(void **state)
{
	char *in = malloc(3000), *want = malloc(3100);
	struct out o;
	size_t n = 0;

	for (int i = 0; i < 300; i++) {
		memcpy(in + i * 10, "xxxxxxx \r\n", 10);
		memcpy(want + n, "xxxxxxx\r\n", 9);
		n += 9;
	}
	run_body(DKIM_CANON_RELAXED, in, 3000, 7, &o);
	assert_int_equal(o.len, n);
	assert_memory_equal(o.buf, want, n);
	free(in);
	free(want);
}

static void test_body_limit(void **state)
{
	static const struct {
		enum dkim_canon c;
		const char *in;
		uint64_t l;
		const char *want;
		uint64_t total;
	} cases[] = {
		{ DKIM_CANON_SIMPLE, "hello\r\nworld\r\n", 7, "hello\r\n", 14 },
		{ DKIM_CANON_SIMPLE, "hello\r\nworld\r\n", 0, "", 14 },
		{ DKIM_CANON_SIMPLE, "hello\r\n", 100, "hello\r\n", 7 },
		{ DKIM_CANON_RELAXED, "a  b\r\n\r\n\r\nc\r\n", 5, "a b\r\n", 12 },
		/* held-back empty lines count only once content follows */
		{ DKIM_CANON_SIMPLE, "a\r\n\r\n\r\n", 3, "a\r\n", 3 },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct out o = { .len = 0 };
		struct dkim_body b;
		dkim_body_init(&b, cases[i].c, true, cases[i].l, collect, &o);
		for (const char *p = cases[i].in; *p; p++)
			dkim_body_feed(&b, p, 1);
		dkim_body_finish(&b);
		print_message("case %zu\n", i);
		assert_int_equal(o.len, strlen(cases[i].want));
		assert_memory_equal(o.buf, cases[i].want, o.len);
		assert_int_equal(b.total, cases[i].total);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_header),
		cmocka_unit_test(test_body),
		cmocka_unit_test(test_body_long),
		cmocka_unit_test(test_body_limit),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
