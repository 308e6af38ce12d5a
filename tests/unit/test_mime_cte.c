/*
 * test_mime_cte.c - unit tests for proto/mime_cte: the encoding names,
 * base64 (padding, white space and junk skipped, a short last quantum),
 * quoted-printable (escapes, soft breaks, transport padding, broken "="
 * passed through), identity's CRLF line ends, and that cutting the input
 * anywhere gives the same output.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "proto/mime_cte.h"

/* Decode in pieces of `step` octets (0: all at once). */
static size_t decode(enum mime_cte kind, const char *in, size_t len, size_t step, char *out)
{
	struct mime_cte_dec d;
	size_t n = 0;

	mime_cte_init(&d, kind);
	if (step == 0)
		step = len ? len : 1;
	for (size_t i = 0; i < len; i += step)
		n += mime_cte_feed(&d, in + i, len - i < step ? len - i : step, out + n);
	n += mime_cte_finish(&d, out + n);
	return n;
}

static void check(enum mime_cte kind, const char *in, const char *want, size_t want_len)
{
	size_t len = strlen(in);
	char *out = malloc(MIME_CTE_OUT_MAX(len) + 16);
	for (size_t step = 0; step <= len + 1; step++) {
		size_t n = decode(kind, in, len, step, out);
		assert_int_equal(n, want_len);
		assert_memory_equal(out, want, want_len);
	}
	free(out);
}

static void test_names(void **state)
{
	assert_int_equal(mime_cte_of(NULL), MIME_CTE_IDENTITY);
	assert_int_equal(mime_cte_of("7bit"), MIME_CTE_IDENTITY);
	assert_int_equal(mime_cte_of(" 8BIT "), MIME_CTE_IDENTITY);
	assert_int_equal(mime_cte_of("Binary"), MIME_CTE_IDENTITY);
	assert_int_equal(mime_cte_of(""), MIME_CTE_IDENTITY);
	assert_int_equal(mime_cte_of("BASE64"), MIME_CTE_BASE64);
	assert_int_equal(mime_cte_of("Quoted-Printable"), MIME_CTE_QP);
	assert_int_equal(mime_cte_of("x-uuencode"), MIME_CTE_UNKNOWN);
	assert_int_equal(mime_cte_of("base6"), MIME_CTE_UNKNOWN);
}

static void test_base64(void **state)
{
	check(MIME_CTE_BASE64, "aGVsbG8=", "hello", 5);
	check(MIME_CTE_BASE64, "aGVsbG8", "hello", 5);            /* padding missing */
	check(MIME_CTE_BASE64, "aGVs\r\nbG8h\n", "hello!", 6);
	check(MIME_CTE_BASE64, "aG Vs*bG8h", "hello!", 6);        /* junk skipped */
	check(MIME_CTE_BASE64, "aA==", "h", 1);
	check(MIME_CTE_BASE64, "a", "", 0);                       /* one sextet: nothing */
	check(MIME_CTE_BASE64, "AAEC/w==", "\0\1\2\xff", 4);
	check(MIME_CTE_BASE64, "aA==aGVsbG8=", "h", 1);           /* data after "=" ignored */
	check(MIME_CTE_BASE64, "", "", 0);
}

static void test_qp(void **state)
{
	check(MIME_CTE_QP, "caf=C3=A9\n", "caf\xc3\xa9\r\n", 7);
	check(MIME_CTE_QP, "a=3db", "a=b", 3);
	check(MIME_CTE_QP, "long=\nline\n", "longline\r\n", 10);  /* soft break */
	check(MIME_CTE_QP, "long=  \r\nline", "longline", 8);     /* with padding */
	check(MIME_CTE_QP, "pad   \nx\t\r\n", "pad\r\nx\r\n", 8); /* transport padding */
	check(MIME_CTE_QP, "in  side\n", "in  side\r\n", 10);
	check(MIME_CTE_QP, "bad=ZZ=4\n", "bad=ZZ=4\r\n", 10);    /* broken "=" as is */
	check(MIME_CTE_QP, "end=4", "end=4", 5);
	check(MIME_CTE_QP, "end=", "end", 3);                     /* soft break at the end */
	check(MIME_CTE_QP, "trail  ", "trail", 5);
	check(MIME_CTE_QP, "a=00b", "a\0b", 3);
	check(MIME_CTE_QP, "cr\rx\n", "cr\rx\r\n", 6);            /* a lone CR stays */
}

static void test_qp_long_white_space(void **state)
{
	char in[300], want[300];
	memset(in, ' ', 200);
	memcpy(in + 200, "x\n", 3);
	memset(want, ' ', 200);
	memcpy(want + 200, "x\r\n", 4);
	check(MIME_CTE_QP, in, want, 203);
	in[200] = '\n';
	in[201] = '\0';
	/* past the bounded hold, whole holds of 64 went out as text */
	memset(want, ' ', 192);
	memcpy(want + 192, "\r\n", 3);
	check(MIME_CTE_QP, in, want, 194);
}

static void test_identity(void **state)
{
	check(MIME_CTE_IDENTITY, "a\nb\r\nc\rd", "a\r\nb\r\nc\rd", 9);
	check(MIME_CTE_IDENTITY, "x\r", "x\r", 2);
	check(MIME_CTE_IDENTITY, "=41  \n", "=41  \r\n", 7);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_base64),
		cmocka_unit_test(test_qp),
		cmocka_unit_test(test_qp_long_white_space),
		cmocka_unit_test(test_identity),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
