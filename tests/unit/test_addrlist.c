/*
 * test_addrlist.c - unit tests for proto/addrlist: mailboxes, angle
 * addresses with display names, groups, comments, quoted strings, the
 * obsolete route, every error, and the bounds (address length, count).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/addrlist.h"

struct collect {
	char out[4096];           /* addresses joined with '|' */
	size_t n;
};

static void collect_cb(const char *addr, void *arg)
{
	struct collect *c = arg;
	size_t o = strlen(c->out);
	snprintf(c->out + o, sizeof(c->out) - o, "%s%s", o ? "|" : "", addr);
	c->n++;
}

struct case_ {
	const char *in;
	int rc;                   /* count or enum addrlist_err */
	const char *out;          /* addresses seen, '|'-joined */
};

static const struct case_ cases[] = {
	{ "", 0, "" },
	{ "   ", 0, "" },
	{ "a@b.test", 1, "a@b.test" },
	{ " a@b.test , c@d.test ", 2, "a@b.test|c@d.test" },
	{ "a@b.test,,c@d.test,", 2, "a@b.test|c@d.test" },
	{ "root", 1, "root" },
	{ "Alice <alice@x.test>", 1, "alice@x.test" },
	{ "Alice Smith <alice@x.test>, Bob <bob@y.test>", 2, "alice@x.test|bob@y.test" },
	{ "\"Smith, Alice\" <alice@x.test>", 1, "alice@x.test" },
	{ "\"q\\\"uote\" <a@x.test>", 1, "a@x.test" },
	{ "<a@x.test>", 1, "a@x.test" },
	{ "< a@x.test >", 1, "a@x.test" },
	{ "<a@x.test\n >", 1, "a@x.test" },
	{ "a@x.test (Alice (nested) Comment)", 1, "a@x.test" },
	{ "(lead) a@x.test", 1, "a@x.test" },
	{ "Alice <a@x.test> (c), b@y.test", 2, "a@x.test|b@y.test" },
	{ "\"john doe\"@x.test", 1, "\"john doe\"@x.test" },
	{ "<\"john doe\"@x.test>", 1, "\"john doe\"@x.test" },
	{ "a @ x.test", 1, "a@x.test" },                 /* obs CFWS around @ */
	{ "a . b@x.test", 1, "a.b@x.test" },
	{ "friends: a@x.test, B <b@y.test>;", 2, "a@x.test|b@y.test" },
	{ "undisclosed-recipients:;", 0, "" },
	{ "g1: a@x.test;, c@z.test", 2, "a@x.test|c@z.test" },
	{ "<@relay.test,@r2.test:a@x.test>", 1, "a@x.test" },
	{ "a@x.test,\n\tb@y.test", 2, "a@x.test|b@y.test" },
	/* errors */
	{ "Alice Smith", ADDRLIST_SYNTAX, "" },          /* a display name alone */
	{ "a@x.test b@y.test", ADDRLIST_SYNTAX, "" },
	{ "<a@x.test", ADDRLIST_SYNTAX, "" },
	{ "a@x.test>", ADDRLIST_SYNTAX, "" },
	{ "<a<b@x.test>>", ADDRLIST_SYNTAX, "" },
	{ "<a@x.test> <b@x.test>", ADDRLIST_SYNTAX, "" },
	{ "(unclosed a@x.test", ADDRLIST_SYNTAX, "" },
	{ "a@x.test)", ADDRLIST_SYNTAX, "" },
	{ "\"unclosed@x.test", ADDRLIST_SYNTAX, "" },
	{ "<\"unclosed@x.test>", ADDRLIST_SYNTAX, "" },
	{ "a\x01@x.test", ADDRLIST_SYNTAX, "" },
	{ "ok@x.test, bad one", ADDRLIST_SYNTAX, "ok@x.test" },  /* earlier ones were seen */
	{ "word \"quoted\"@x.test", ADDRLIST_SYNTAX, "" },
};

static void test_cases(void **state)
{
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct collect c = { .n = 0 };
		int rc = addrlist_parse(cases[i].in, strlen(cases[i].in), collect_cb, &c);
		if (rc != cases[i].rc || strcmp(c.out, cases[i].out) != 0)
			fail_msg("case %zu \"%s\": rc %d (want %d), out \"%s\" (want \"%s\")", i, cases[i].in, rc,
				 cases[i].rc, c.out, cases[i].out);
	}
}

/* The length is the given one: bytes after it are not read. */
static void test_length_respected(void **state)
{
	struct collect c = { .n = 0 };
	assert_int_equal(addrlist_parse("a@x.test, b@y.test", 8, collect_cb, &c), 1);
	assert_string_equal(c.out, "a@x.test");
}

static void address_of_len(char *buf, size_t len, bool angle)
{
	size_t o = 0;
	if (angle)
		buf[o++] = '<';
	memset(buf + o, 'a', len - 7);
	o += len - 7;
	memcpy(buf + o, "@x.test", 7);
	o += 7;
	if (angle)
		buf[o++] = '>';
	buf[o] = '\0';
}

static void test_address_length_bound(void **state)
{
	char buf[ADDRLIST_ADDR_MAX + 8];
	for (int angle = 0; angle < 2; angle++) {
		struct collect c = { .n = 0 };
		address_of_len(buf, ADDRLIST_ADDR_MAX, angle);
		assert_int_equal(addrlist_parse(buf, strlen(buf), collect_cb, &c), 1);
		assert_int_equal(strlen(c.out), ADDRLIST_ADDR_MAX);
		address_of_len(buf, ADDRLIST_ADDR_MAX + 1, angle);
		assert_int_equal(addrlist_parse(buf, strlen(buf), collect_cb, &c), ADDRLIST_TOO_LONG);
	}
}

static void test_quoted_length_bound(void **state)
{
	char buf[ADDRLIST_ADDR_MAX + 16];
	struct collect c = { .n = 0 };
	buf[0] = '"';
	memset(buf + 1, 'q', ADDRLIST_ADDR_MAX + 2);
	strcpy(buf + ADDRLIST_ADDR_MAX + 3, "\"@x");
	assert_int_equal(addrlist_parse(buf, strlen(buf), collect_cb, &c), ADDRLIST_TOO_LONG);
}

static void test_count_bound(void **state)
{
	size_t cap = (ADDRLIST_MAX + 1) * 4 + 1;
	char *buf = malloc(cap);
	struct collect c = { .n = 0 };
	size_t o = 0;

	for (int i = 0; i < ADDRLIST_MAX; i++)
		o += (size_t)snprintf(buf + o, cap - o, "a@b,");
	assert_int_equal(addrlist_parse(buf, o, collect_cb, &c), ADDRLIST_MAX);
	snprintf(buf + o, cap - o, "a@b");
	c.out[0] = '\0';
	assert_int_equal(addrlist_parse(buf, o + 3, collect_cb, &c), ADDRLIST_TOO_MANY);
	free(buf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cases),
		cmocka_unit_test(test_length_respected),
		cmocka_unit_test(test_address_length_bound),
		cmocka_unit_test(test_quoted_length_bound),
		cmocka_unit_test(test_count_bound),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
