/*
 * test_acme_wire.c - base64url without padding (RFC 4648 5 vectors) and
 * Retry-After (delta-seconds, IMF-fixdate, past dates, the cap, junk).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "proto/acme_wire.h"

static void test_b64url(void **state)
{
	static const struct { const char *in; const char *out; } v[] = {
		{ "", "" }, { "f", "Zg" }, { "fo", "Zm8" }, { "foo", "Zm9v" }, { "foob", "Zm9vYg" },
		{ "fooba", "Zm9vYmE" }, { "foobar", "Zm9vYmFy" },
		{ "\xfb\xff\xbf", "-_-_" },   /* the two letters that differ from base64 */
	};
	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		char *s = b64url_encode_alloc(v[i].in, strlen(v[i].in));
		assert_string_equal(s, v[i].out);
		free(s);
	}
}

static void test_retry_after(void **state)
{
	uint64_t s = 99;
	/* 784111777 = Sun, 06 Nov 1994 08:49:37 GMT (RFC 9110 5.6.7) */
	assert_true(acme_retry_after("120", 3, 0, 60, &s));
	assert_int_equal(s, 60);
	assert_true(acme_retry_after(" 7 ", 3, 0, 60, &s));
	assert_int_equal(s, 7);
	assert_true(acme_retry_after("99999999999999999999999", 23, 0, 60, &s));
	assert_int_equal(s, 60);
	assert_true(acme_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", 29, 784111777 - 30, 60, &s));
	assert_int_equal(s, 30);
	assert_true(acme_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", 29, 784111777 + 5, 60, &s));
	assert_int_equal(s, 0);
	assert_false(acme_retry_after("", 0, 0, 60, &s));
	assert_false(acme_retry_after("12a", 3, 0, 60, &s));
	assert_false(acme_retry_after("-1", 2, 0, 60, &s));
	assert_false(acme_retry_after("Sun, 06 Xyz 1994 08:49:37 GMT", 29, 0, 60, &s));
	assert_false(acme_retry_after("Sun, 06 Nov 1994 25:49:37 GMT", 29, 0, 60, &s));
	assert_false(acme_retry_after("Sunday, 06-Nov-94 08:49:37 GMT", 30, 0, 60, &s));
	assert_false(acme_retry_after("Sun, 06 Nov 1994 08:49:37 UTC", 29, 0, 60, &s));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_b64url),
		cmocka_unit_test(test_retry_after),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
