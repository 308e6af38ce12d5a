/*
 * test_dnsbl.c - the pure DNSBL parts (proto/dnsbl.c): zone specs, query
 * names for IPv4, IPv4-mapped and IPv6 clients (RFC 5782 2.1, 2.4), and
 * answer matching.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <cmocka.h>

#include "proto/dnsbl.h"

static const struct {
	const char *spec;
	enum dnsbl_zone_err err;
	const char *name;
	bool any;
	uint32_t code;
} zones[] = {
	{ "zen.example", DNSBL_ZONE_OK, "zen.example", true, 0 },
	{ "Zen.Example.", DNSBL_ZONE_OK, "zen.example", true, 0 },
	{ "bl.example=127.0.0.2", DNSBL_ZONE_OK, "bl.example", false, 0x7f000002 },
	{ "_x-y.example=127.1.2.3", DNSBL_ZONE_OK, "_x-y.example", false, 0x7f010203 },
	{ "", DNSBL_ZONE_EMPTY, NULL, false, 0 },
	{ ".", DNSBL_ZONE_EMPTY, NULL, false, 0 },
	{ "=127.0.0.2", DNSBL_ZONE_EMPTY, NULL, false, 0 },
	{ "a..b", DNSBL_ZONE_BAD_NAME, NULL, false, 0 },
	{ "a..", DNSBL_ZONE_BAD_NAME, NULL, false, 0 },   /* found by fuzz_dnsbl_zone */
	{ ".a", DNSBL_ZONE_BAD_NAME, NULL, false, 0 },
	{ "a b", DNSBL_ZONE_BAD_NAME, NULL, false, 0 },
	{ "a/b", DNSBL_ZONE_BAD_NAME, NULL, false, 0 },
	{ "bl.example=", DNSBL_ZONE_BAD_CODE, NULL, false, 0 },
	{ "bl.example=10.0.0.2", DNSBL_ZONE_BAD_CODE, NULL, false, 0 },
	{ "bl.example=127.0.0", DNSBL_ZONE_BAD_CODE, NULL, false, 0 },
	{ "bl.example=127.0.0.2=1", DNSBL_ZONE_BAD_CODE, NULL, false, 0 },
	{ "bl.example=127.0.0.256", DNSBL_ZONE_BAD_CODE, NULL, false, 0 },
};

static void test_zone_parse(void **state)
{
	for (size_t i = 0; i < sizeof(zones) / sizeof(zones[0]); i++) {
		struct dnsbl_zone z;
		enum dnsbl_zone_err e = dnsbl_zone_parse(zones[i].spec, strlen(zones[i].spec), &z);
		assert_int_equal(e, zones[i].err);
		assert_non_null(dnsbl_zone_err_str(e));
		if (e != DNSBL_ZONE_OK)
			continue;
		assert_string_equal(z.name, zones[i].name);
		assert_int_equal(z.any, zones[i].any);
		assert_int_equal(z.code, zones[i].code);
	}
}

static void test_zone_lengths(void **state)
{
	char buf[400];
	struct dnsbl_zone z;

	memset(buf, 'a', 64);
	assert_int_equal(dnsbl_zone_parse(buf, 64, &z), DNSBL_ZONE_BAD_NAME);   /* a 64-octet label */
	assert_int_equal(dnsbl_zone_parse(buf, 63, &z), DNSBL_ZONE_OK);
	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = i % 10 == 5 ? '.' : 'a';   /* no dot at 189, 190 */
	assert_int_equal(dnsbl_zone_parse(buf, DNSBL_ZONE_MAX, &z), DNSBL_ZONE_OK);
	assert_int_equal(dnsbl_zone_parse(buf, DNSBL_ZONE_MAX + 1, &z), DNSBL_ZONE_TOO_LONG);
	/* not NUL-terminated: only len octets are read */
	assert_int_equal(dnsbl_zone_parse("bl.exampleXYZ", 10, &z), DNSBL_ZONE_OK);
	assert_string_equal(z.name, "bl.example");
}

static void test_query_names(void **state)
{
	struct sockaddr_in s4 = { .sin_family = AF_INET };
	struct sockaddr_in6 s6 = { .sin6_family = AF_INET6 };
	char out[DNSBL_QNAME_MAX];

	inet_pton(AF_INET, "192.0.2.99", &s4.sin_addr);
	assert_int_equal(dnsbl_query_name((struct sockaddr *)&s4, "bl.example", out, sizeof(out)),
			 strlen("99.2.0.192.bl.example"));
	assert_string_equal(out, "99.2.0.192.bl.example");
	/* RFC 5782 2.4's example */
	inet_pton(AF_INET6, "2001:db8:1:2:3:4:567:89ab", &s6.sin6_addr);
	dnsbl_query_name((struct sockaddr *)&s6, "bl.example", out, sizeof(out));
	assert_string_equal(out, "b.a.9.8.7.6.5.0.4.0.0.0.3.0.0.0.2.0.0.0.1.0.0.0.8.b.d.0.1.0.0.2.bl.example");
	inet_pton(AF_INET6, "::ffff:192.0.2.1", &s6.sin6_addr);
	dnsbl_query_name((struct sockaddr *)&s6, "bl.example", out, sizeof(out));
	assert_string_equal(out, "1.2.0.192.bl.example");
	/* does not fit */
	assert_int_equal(dnsbl_query_name((struct sockaddr *)&s4, "bl.example", out, 10), 0);
	assert_string_equal(out, "");
	struct sockaddr un = { .sa_family = AF_UNIX };
	assert_int_equal(dnsbl_query_name(&un, "bl.example", out, sizeof(out)), 0);
}

static void test_answer_matches(void **state)
{
	struct dnsbl_zone any, code;
	struct in_addr a[3];

	dnsbl_zone_parse("bl", 2, &any);
	dnsbl_zone_parse("bl=127.0.0.4", 12, &code);
	inet_pton(AF_INET, "127.0.0.2", &a[0]);
	inet_pton(AF_INET, "127.0.0.4", &a[1]);
	inet_pton(AF_INET, "10.0.0.4", &a[2]);
	assert_true(dnsbl_answer_matches(&any, a, 1));
	assert_false(dnsbl_answer_matches(&code, a, 1));
	assert_true(dnsbl_answer_matches(&code, a, 2));
	/* outside 127/8: the list's error, never a listing */
	assert_false(dnsbl_answer_matches(&any, a + 2, 1));
	assert_false(dnsbl_answer_matches(&any, a, 0));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_zone_parse),
		cmocka_unit_test(test_zone_lengths),
		cmocka_unit_test(test_query_names),
		cmocka_unit_test(test_answer_matches),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
