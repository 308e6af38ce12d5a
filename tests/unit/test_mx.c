/*
 * test_mx.c - unit tests for delivery/mx.c (RFC 5321 §5.1, RFC 7505).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "delivery/mx.h"

#define MAXR 8

struct mx_case {
	const char *in;		/* "pref:name pref:name ..." */
	const char *self;
	enum dns_mx_order want;
	const char *out;	/* names in order, ' '-joined ("" when none) */
};

static size_t parse_records(const char *s, struct dns_mx_record *r)
{
	size_t n = 0;
	char buf[512], *tok, *save = NULL;

	snprintf(buf, sizeof(buf), "%s", s);
	for (tok = strtok_r(buf, " ", &save); tok; tok = strtok_r(NULL, " ", &save)) {
		char *c = strchr(tok, ':');
		r[n].pref = (unsigned)strtoul(tok, NULL, 10);
		snprintf(r[n].name, sizeof(r[n].name), "%s", c + 1);
		n++;
	}
	return n;
}

static void join(const struct dns_mx_record *r, size_t n, char *out, size_t len)
{
	size_t i, used = 0;

	out[0] = '\0';
	for (i = 0; i < n && used < len; i++)
		used += (size_t)snprintf(out + used, len - used, "%s%s", i ? " " : "", r[i].name);
}

static const struct mx_case cases[] = {
	{ "20:b 10:a", NULL, DNS_MX_ORDER_OK, "a b" },
	{ "30:c 10:a 20:b", "", DNS_MX_ORDER_OK, "a b c" },
	{ "0:.", NULL, DNS_MX_ORDER_NULL, "" },
	{ "0:", NULL, DNS_MX_ORDER_NULL, "" },
	{ "10:.", NULL, DNS_MX_ORDER_EMPTY, "" },	/* not pref 0: not null MX */
	{ "0:. 10:a", NULL, DNS_MX_ORDER_OK, "a" },	/* "." among others ignored */
	{ "0:. 0:.", NULL, DNS_MX_ORDER_EMPTY, "" },
	{ "", NULL, DNS_MX_ORDER_EMPTY, "" },
	{ "10:a 20:me 30:c", "me", DNS_MX_ORDER_OK, "a" },
	{ "10:a 20:ME. 30:c", "me", DNS_MX_ORDER_OK, "a" },
	{ "10:me 20:b", "me.", DNS_MX_ORDER_ONLY_SELF, "" },
	{ "10:a 10:me 20:b", "me", DNS_MX_ORDER_ONLY_SELF, "" },	/* equal pref goes */
	{ "5:x 10:a 10:me 20:b", "me", DNS_MX_ORDER_OK, "x" },
	{ "10:a 20:b", "me", DNS_MX_ORDER_OK, "a b" },
	{ "10:mex 20:b", "me", DNS_MX_ORDER_OK, "mex b" },	/* no prefix match */
	{ "10:a 30:me 20:me", "me", DNS_MX_ORDER_OK, "a" },	/* lowest self pref */
	{ "65535:z 0:y", NULL, DNS_MX_ORDER_OK, "y z" },
};

static void test_prepare_table(void **state)
{
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct dns_mx_record r[MAXR];
		size_t n = parse_records(cases[i].in, r), m = 99;
		char got[512];
		enum dns_mx_order o = mx_prepare(r, n, cases[i].self, 1, &m);

		if (o != cases[i].want)
			fail_msg("case %zu (%s): outcome %d want %d", i, cases[i].in, o, cases[i].want);
		if (o != DNS_MX_ORDER_OK)
			assert_int_equal(m, 0);
		join(r, m, got, sizeof(got));
		if (strcmp(got, cases[i].out) != 0)
			fail_msg("case %zu (%s): got '%s' want '%s'", i, cases[i].in, got, cases[i].out);
	}
}

static void test_null_mx(void **state)
{
	struct dns_mx_record r[2] = { { ".", 0 }, { "a", 10 } };

	assert_true(mx_is_null(r, 1));
	assert_false(mx_is_null(r, 2));
	assert_false(mx_is_null(r, 0));
	r[0].pref = 1;
	assert_false(mx_is_null(r, 1));
	snprintf(r[0].name, sizeof(r[0].name), "a");
	r[0].pref = 0;
	assert_false(mx_is_null(r, 1));
}

static void test_name_eq(void **state)
{
	assert_true(mx_name_eq("Mx.Example.TEST", "mx.example.test."));
	assert_true(mx_name_eq("a.", "A"));
	assert_false(mx_name_eq("a", "ab"));
	assert_false(mx_name_eq("a..", "a"));
	assert_true(mx_name_eq("", "."));
}

/* Equal preferences keep together, depend on the seed only, and every
 * permutation shows up over many seeds. */
static void test_shuffle(void **state)
{
	struct dns_mx_record base[4] = { { "z", 20 }, { "a", 10 }, { "b", 10 }, { "c", 10 } };
	struct dns_mx_record r[4], r2[4];
	char seen[6][64];
	size_t nseen = 0, i, k;
	uint32_t seed;

	for (seed = 0; seed < 200; seed++) {
		char got[64];

		memcpy(r, base, sizeof(r));
		mx_sort(r, 4, seed);
		assert_string_equal(r[3].name, "z");
		memcpy(r2, base, sizeof(r2));
		mx_sort(r2, 4, seed);
		assert_memory_equal(r, r2, sizeof(r));
		join(r, 3, got, sizeof(got));
		for (k = 0; k < nseen; k++)
			if (strcmp(seen[k], got) == 0)
				break;
		if (k == nseen) {
			assert_true(nseen < 6);
			snprintf(seen[nseen++], sizeof(seen[0]), "%s", got);
		}
	}
	assert_int_equal(nseen, 6);
	for (i = 0; i < 2; i++)
		mx_sort(r, i, 7);	/* n < 2 is a no-op, never touches r */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_prepare_table),
		cmocka_unit_test(test_null_mx),
		cmocka_unit_test(test_name_eq),
		cmocka_unit_test(test_shuffle),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
