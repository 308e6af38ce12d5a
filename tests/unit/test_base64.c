/*
 * test_base64.c - RFC 4648 section 10 vectors and every way the strict
 * decoder must refuse input.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "proto/base64.h"

static const struct {
	const char *plain, *encoded;
} vectors[] = {
	{ "", "" },
	{ "f", "Zg==" },
	{ "fo", "Zm8=" },
	{ "foo", "Zm9v" },
	{ "foob", "Zm9vYg==" },
	{ "fooba", "Zm9vYmE=" },
	{ "foobar", "Zm9vYmFy" },
	{ "bhwang", "Ymh3YW5n" },
	{ "mypassword!mypassword!!", "bXlwYXNzd29yZCFteXBhc3N3b3JkISE=" },
};

static void test_vectors(void **state)
{
	char enc[64];
	unsigned char dec[64];
	size_t n;

	for (size_t i = 0; i < sizeof vectors / sizeof vectors[0]; i++) {
		size_t plen = strlen(vectors[i].plain);
		assert_int_equal(base64_encoded_len(plen), strlen(vectors[i].encoded));
		assert_int_equal(base64_encode(vectors[i].plain, plen, enc, sizeof enc),
				 strlen(vectors[i].encoded));
		assert_string_equal(enc, vectors[i].encoded);
		assert_true(base64_decode(vectors[i].encoded, strlen(vectors[i].encoded), dec,
					  sizeof dec, &n));
		assert_int_equal(n, plen);
		assert_memory_equal(dec, vectors[i].plain, n);
	}
}

static void test_all_bytes(void)
{
	unsigned char in[256], out[256];
	char enc[400];
	size_t n;

	for (int i = 0; i < 256; i++)
		in[i] = (unsigned char)i;
	assert_int_equal(base64_encode(in, sizeof in, enc, sizeof enc), 344);
	assert_true(base64_decode(enc, 344, out, sizeof out, &n));
	assert_int_equal(n, 256);
	assert_memory_equal(in, out, 256);
}

static void test_all_bytes_cb(void **state)
{
	test_all_bytes();
}

static void test_encode_cap(void **state)
{
	char buf[8];

	/* "foo" needs 4 + NUL. */
	assert_int_equal(base64_encode("foo", 3, buf, 4), 0);
	assert_int_equal(base64_encode("foo", 3, buf, 5), 4);
	assert_string_equal(buf, "Zm9v");
	assert_int_equal(base64_encode("", 0, buf, 1), 0);
	assert_string_equal(buf, "");
	assert_int_equal(base64_encode("f", 1, buf, 0), 0);
	assert_int_equal(base64_encoded_len(SIZE_MAX), SIZE_MAX);
}

static void test_decode_cap(void **state)
{
	unsigned char out[8];
	size_t n = 99;

	assert_false(base64_decode("Zm9v", 4, out, 2, &n));
	assert_int_equal(n, 99);
	assert_true(base64_decode("Zm9v", 4, out, 3, &n));
	assert_int_equal(n, 3);
	assert_false(base64_decode("Zm8=", 4, out, 1, &n));
	assert_true(base64_decode("Zm8=", 4, out, 2, &n));
	assert_int_equal(n, 2);
	assert_true(base64_decode("", 0, out, 0, &n));
	assert_int_equal(n, 0);
	assert_true(base64_decoded_max(4) >= 3);
}

static const char *const bad[] = {
	"Z", "Zm", "Zm9", "Zm9vY",           /* length not a multiple of 4 */
	"Zg", "Zg=", "Zm8",                  /* missing padding */
	"Zh==", "Zm9=",                      /* non-zero pad bits */
	"Z===", "====", "=Zm8", "Zm=8",      /* padding in the wrong place */
	"Zg==Zg==",                          /* padding inside */
	"Zm9v\r\n", " Zm9v", "Zm 9v", "Zm9\nv",  /* whitespace */
	"Zm9-", "Zm9_", "Zm9.", "Zm\x80v",   /* outside the alphabet */
	"Zg=a", "Z=g=",
};

static void test_bad(void **state)
{
	unsigned char out[16];
	size_t n;

	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		if (base64_decode(bad[i], strlen(bad[i]), out, sizeof out, &n))
			fail_msg("accepted \"%s\"", bad[i]);
	}
	/* An embedded NUL is not a character of the alphabet. */
	assert_false(base64_decode("Zm\0v", 4, out, sizeof out, &n));
}

/* The digit helpers with another character for 63 (modified UTF-7's ','). */
static void test_digits(void **state)
{
	(void)state;
	for (unsigned v = 0; v < 64; v++) {
		assert_int_equal(base64_digit_value((unsigned char)base64_digit(v, '/'), '/'), v);
		assert_int_equal(base64_digit_value((unsigned char)base64_digit(v, ','), ','), v);
	}
	assert_int_equal(base64_digit(63, ','), ',');
	assert_int_equal(base64_digit(62, ','), '+');
	assert_int_equal(base64_digit_value('/', ','), -1);
	assert_int_equal(base64_digit_value(',', '/'), -1);
	assert_int_equal(base64_digit_value('=', '/'), -1);
	assert_int_equal(base64_digit_value(0x80 | 'A', '/'), -1);
}

static void test_alloc(void **state)
{
	char *s = base64_encode_alloc("foobar", 6);
	assert_string_equal(s, "Zm9vYmFy");
	free(s);
	s = base64_encode_alloc("", 0);
	assert_string_equal(s, "");
	free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_vectors),
		cmocka_unit_test(test_all_bytes_cb),
		cmocka_unit_test(test_encode_cap),
		cmocka_unit_test(test_decode_cap),
		cmocka_unit_test(test_bad),
		cmocka_unit_test(test_alloc),
		cmocka_unit_test(test_digits),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
