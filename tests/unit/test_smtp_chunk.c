/*
 * test_smtp_chunk.c - unit tests for proto/smtp_chunk: BDAT octets to
 * stored octets (RFC 3030), whole and in every split.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "proto/smtp_chunk.h"
#include "proto/smtp_data.h"

struct chunk_case {
	const char *in;
	size_t in_len;
	bool binary;
	const char *out;
	size_t out_len;
	unsigned errors;
};

/* A string literal and its length, NULs included. */
#define S(lit) lit, sizeof(lit) - 1

static const struct chunk_case cases[] = {
	{ S("Subject: x\r\n\r\nbody\r\n"), false, S("Subject: x\n\nbody\n"), 0 },
	/* no dot-unstuffing, no end marker: octets are counted */
	{ S("a\r\n..b\r\n.\r\n"), false, S("a\n..b\n.\n"), 0 },
	{ S("no line end"), false, S("no line end"), 0 },
	{ S(""), false, S(""), 0 },
	{ S("a\nb\r\n"), false, S("ab\n"), SMTP_DATA_ERR_BARE_LF },
	{ S("a\rb\r\n"), false, S("ab\n"), SMTP_DATA_ERR_BARE_CR },
	{ S("a\r"), false, S("a"), SMTP_DATA_ERR_BARE_CR },	/* open at the end */
	{ S("a\0b\r\n"), false, S("a\0b\n"), SMTP_DATA_ERR_NUL },
	{ S("caf\xc3\xa9\r\n"), false, S("caf\xc3\xa9\n"), 0 },
	/* BINARYMIME: the header is text, the body kept as it came */
	{ S("H: 1\r\n\r\n\x00\r\n\n\r\xff"), true, S("H: 1\n\n\x00\r\n\n\r\xff"), 0 },
	{ S("\r\n\x01\x02\r"), true, S("\n\x01\x02\r"), 0 },
	{ S("H: 1\n\r\n\r\nx"), true, S("H: 1\n\nx"), SMTP_DATA_ERR_BARE_LF },
};

static void run(const struct chunk_case *c, size_t step, char *out, size_t *out_len, unsigned *errors)
{
	struct smtp_chunk k;
	size_t n = c->in_len, o = 0;

	smtp_chunk_init(&k, c->binary, 1000);
	for (size_t i = 0; i < n;) {
		size_t take = step == 0 || n - i < step ? n - i : step;
		o += smtp_chunk_decode(&k, c->in + i, take, out + o);
		i += take;
	}
	smtp_chunk_finish(&k);
	*out_len = o;
	*errors = k.errors;
}

static void test_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		for (size_t step = 0; step < 5; step++) {
			char out[64];
			size_t n;
			unsigned errors;
			run(&cases[i], step, out, &n, &errors);
			if (n != cases[i].out_len || errors != cases[i].errors)
				fail_msg("case %zu step %zu: len %zu errors %u", i, step, n, errors);
			assert_memory_equal(out, cases[i].out, n);
		}
	}
}

static void test_line_length(void **state)
{
	char in[1100], out[1100];
	struct smtp_chunk k;
	(void)state;
	/* 998 octets + CRLF = 1000: fine; one more is too long */
	memset(in, 'x', 998);
	memcpy(in + 998, "\r\n", 2);
	smtp_chunk_init(&k, false, 1000);
	assert_int_equal(smtp_chunk_decode(&k, in, 1000, out), 999);
	assert_int_equal(k.errors, 0);
	memset(in, 'x', 999);
	memcpy(in + 999, "\r\n", 2);
	smtp_chunk_init(&k, false, 1000);
	smtp_chunk_decode(&k, in, 1001, out);
	assert_int_equal(k.errors, SMTP_DATA_ERR_LINE_LEN);
	/* a binary body has no lines */
	smtp_chunk_init(&k, true, 1000);
	assert_int_equal(smtp_chunk_decode(&k, "\r\n", 2, out), 1);
	smtp_chunk_decode(&k, in, 999, out);
	assert_int_equal(k.errors, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_table),
		cmocka_unit_test(test_line_length),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
