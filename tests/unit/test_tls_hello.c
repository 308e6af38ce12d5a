/*
 * test_tls_hello.c - the ClientHello server_name and ALPN readers that
 * choose a certificate: well-formed lists, case and final dot, the
 * lengths that overrun, and names no host has.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "proto/tls_hello.h"

/* A server_name extension holding one entry of type t. */
static size_t sni_ext(unsigned char *b, unsigned t, const char *name)
{
	size_t n = strlen(name);
	b[0] = (unsigned char)((n + 3) >> 8);
	b[1] = (unsigned char)(n + 3);
	b[2] = (unsigned char)t;
	b[3] = (unsigned char)(n >> 8);
	b[4] = (unsigned char)n;
	memcpy(b + 5, name, n);
	return n + 5;
}

static void test_sni(void **state)
{
	unsigned char b[600];
	char out[TLS_HELLO_NAME_MAX + 1];
	size_t n;

	n = sni_ext(b, 0, "Mta-STS.Example.TEST.");
	assert_true(tls_hello_sni(b, n, out, sizeof(out)));
	assert_string_equal(out, "mta-sts.example.test");

	assert_false(tls_hello_sni(b, n - 1, out, sizeof(out)));    /* list length disagrees */
	b[4]++;                                                      /* name overruns */
	assert_false(tls_hello_sni(b, n, out, sizeof(out)));
	n = sni_ext(b, 1, "x.test");                                 /* no host_name */
	assert_false(tls_hello_sni(b, n, out, sizeof(out)));
	n = sni_ext(b, 0, "a b.test");
	assert_false(tls_hello_sni(b, n, out, sizeof(out)));
	n = sni_ext(b, 0, ".");
	assert_false(tls_hello_sni(b, n, out, sizeof(out)));
	assert_false(tls_hello_sni(b, 0, out, sizeof(out)));
	assert_false(tls_hello_sni(b, 1, out, sizeof(out)));

	char longname[300];
	memset(longname, 'a', 256);
	longname[256] = '\0';
	n = sni_ext(b, 0, longname);
	assert_false(tls_hello_sni(b, n, out, sizeof(out)));
	assert_false(tls_hello_sni(b, 0, out, 0));
}

static void test_alpn(void **state)
{
	static const unsigned char two[] = { 0, 20, 8, 'h', 't', 't', 'p', '/', '1', '.', '1',
					     10, 'a', 'c', 'm', 'e', '-', 't', 'l', 's', '/', '1' };
	static const unsigned char h2[] = { 0, 3, 2, 'h', '2' };
	static const unsigned char zero[] = { 0, 3, 0, 'h', '2' };
	static const unsigned char over[] = { 0, 3, 5, 'h', '2' };
	static const unsigned char empty[] = { 0, 0 };

	assert_int_equal(tls_hello_alpn_has(two, sizeof(two), "acme-tls/1"), 1);
	assert_int_equal(tls_hello_alpn_has(two, sizeof(two), "http/1.1"), 1);
	assert_int_equal(tls_hello_alpn_has(h2, sizeof(h2), "acme-tls/1"), 0);
	assert_int_equal(tls_hello_alpn_has(h2, sizeof(h2), "h"), 0);
	assert_int_equal(tls_hello_alpn_has(zero, sizeof(zero), "h2"), -1);
	assert_int_equal(tls_hello_alpn_has(over, sizeof(over), "h2"), -1);
	assert_int_equal(tls_hello_alpn_has(empty, sizeof(empty), "h2"), -1);
	assert_int_equal(tls_hello_alpn_has(two, sizeof(two) - 1, "acme-tls/1"), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sni),
		cmocka_unit_test(test_alpn),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
