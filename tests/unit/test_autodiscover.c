/*
 * test_autodiscover.c - the EMailAddress reader of Autodiscover requests.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "proto/autodiscover.h"

#define REQ(x) "<?xml version=\"1.0\" encoding=\"utf-8\"?>\r\n" \
	"<Autodiscover xmlns=\"http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006\">" \
	"<Request>" x "<AcceptableResponseSchema>http://schemas.microsoft.com/exchange/autodiscover/" \
	"outlook/responseschema/2006a</AcceptableResponseSchema></Request></Autodiscover>"

static void test_good(void **state)
{
	static const struct { const char *xml, *want; } cases[] = {
		{ REQ("<EMailAddress>alice@example.test</EMailAddress>"), "alice@example.test" },
		{ REQ("<EMailAddress>\r\n  bob@example.test \n</EMailAddress>"), "bob@example.test" },
		{ REQ("<a:EMailAddress xmlns:a=\"x\">c@d.test</a:EMailAddress>"), "c@d.test" },
		{ REQ("<EMailAddress>o&apos;neil&amp;co@d.test</EMailAddress>"), "o'neil&co@d.test" },
		{ REQ("<EMailAddress>&#106;&#x6F;e@d.test</EMailAddress>"), "joe@d.test" },
		{ "<!-- <EMailAddress>x@evil.test</EMailAddress> -->" REQ("<EMailAddress>y@d.test</EMailAddress>"),
		  "y@d.test" },
		{ REQ("<LegacyDN>/o=x</LegacyDN><EMailAddress>z@d.test</EMailAddress>"), "z@d.test" },
	};
	char out[256];
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		if (!autodiscover_email(cases[i].xml, strlen(cases[i].xml), out, sizeof(out)))
			fail_msg("case %zu refused", i);
		assert_string_equal(out, cases[i].want);
	}
}

static void test_bad(void **state)
{
	static const char *cases[] = {
		"",
		REQ(""),
		REQ("<EMailAddress></EMailAddress>"),
		REQ("<EMailAddress/>"),
		REQ("<EMailAddress>noat</EMailAddress>"),
		REQ("<EMailAddress>a@b@c</EMailAddress>"),
		REQ("<EMailAddress>@b.test</EMailAddress>"),
		REQ("<EMailAddress>a@</EMailAddress>"),
		REQ("<EMailAddress>a b@c.test</EMailAddress>"),
		REQ("<EMailAddress>a&lt;@c.test</EMailAddress>"),
		REQ("<EMailAddress>a&bogus;@c.test</EMailAddress>"),
		REQ("<EMailAddress>a&#0;@c.test</EMailAddress>"),
		REQ("<EMailAddress>a&#x100;@c.test</EMailAddress>"),
		REQ("<EMailAddress>a&#10;@c.test</EMailAddress>"),
		REQ("<EMailAddress>\xc3\xa9@c.test</EMailAddress>"),
		REQ("<EMailAddressX>a@c.test</EMailAddressX>"),
		"<EMailAddress>a@c.test",
		"<!-- <EMailAddress>a@c.test</EMailAddress>",
		"<EMailAddress",
	};
	char out[256];
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		if (autodiscover_email(cases[i], strlen(cases[i]), out, sizeof(out)))
			fail_msg("case %zu accepted: %s", i, out);
	const char *x = REQ("<EMailAddress>abcdef@example.test</EMailAddress>");
	assert_false(autodiscover_email(x, strlen(x), out, 10));
	assert_false(autodiscover_email(x, strlen(x), out, 0));
	assert_false(autodiscover_email(x, strlen(x), out, 19));
	assert_true(autodiscover_email(x, strlen(x), out, 20));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_good),
		cmocka_unit_test(test_bad),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
