/*
 * test_dmarc.c - DMARC records (RFC 7489 6.3, 6.6.3), organizational
 * domains from the Public Suffix List, alignment, and the policy result
 * with sp= and pct= (6.6.4).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "core/util.h"
#include "msgauth/dmarc.h"

static void test_record(void **state)
{
	static const struct {
		const char *in;
		const char *reason;
		enum dmarc_policy p, sp;
		bool adkim_s, aspf_s;
		unsigned pct;
	} cases[] = {
		{ "v=DMARC1; p=reject", NULL, DMARC_P_REJECT, DMARC_P_REJECT, false, false, 100 },
		{ "v=DMARC1;p=quarantine;sp=none;adkim=s;aspf=s;pct=20", NULL, DMARC_P_QUARANTINE, DMARC_P_NONE, true,
		  true, 20 },
		{ "v = DMARC1 ; p = none ; rua=mailto:d@example.com", NULL, DMARC_P_NONE, DMARC_P_NONE, false, false, 100 },
		{ "v=DMARC1; p=REJECT; pct=0", NULL, DMARC_P_REJECT, DMARC_P_REJECT, false, false, 0 },
		{ "v=DMARC1; p=reject; pct=101", NULL, DMARC_P_REJECT, DMARC_P_REJECT, false, false, 100 },
		{ "v=DMARC1; p=reject; adkim=x", NULL, DMARC_P_REJECT, DMARC_P_REJECT, false, false, 100 },
		/* 6.6.3: a bad p= with a rua= is p=none */
		{ "v=DMARC1; p=bogus; rua=mailto:d@example.com", NULL, DMARC_P_NONE, DMARC_P_NONE, false, false, 100 },
		{ "v=DMARC1; p=bogus", "no valid p=", 0, 0, false, false, 0 },
		{ "v=DMARC1; rua=mailto:d@example.com", NULL, DMARC_P_NONE, DMARC_P_NONE, false, false, 100 },
		{ "v=DMARC1; p=reject; sp=bogus", "bad sp=", 0, 0, false, false, 0 },
		{ "v=DMARC1", "no valid p=", 0, 0, false, false, 0 },
		{ "p=reject; v=DMARC1", "not a DMARC record", 0, 0, false, false, 0 },
		{ "v=DMARC2; p=reject", "not a DMARC record", 0, 0, false, false, 0 },
		{ "v=dmarc1; p=reject", "not a DMARC record", 0, 0, false, false, 0 },
		{ "v=DMARC1; p=reject; p=none", "bad tag list", 0, 0, false, false, 0 },
		{ "v=spf1 -all", "not a DMARC record", 0, 0, false, false, 0 },
	};
	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		struct dmarc_record r;
		const char *reason = NULL;
		bool ok = dmarc_record_parse(cases[i].in, strlen(cases[i].in), &r, &reason);
		print_message("case %zu: %s\n", i, cases[i].in);
		if (cases[i].reason) {
			assert_false(ok);
			assert_string_equal(reason, cases[i].reason);
			continue;
		}
		assert_true(ok);
		assert_int_equal(r.p, cases[i].p);
		assert_int_equal(r.sp, cases[i].sp);
		assert_int_equal(r.adkim_strict, cases[i].adkim_s);
		assert_int_equal(r.aspf_strict, cases[i].aspf_s);
		assert_int_equal(r.pct, cases[i].pct);
	}
}

static void test_org_domain(void **state)
{
	static const struct {
		const char *in, *want;
	} cases[] = {
		{ "example.com", "example.com" },
		{ "mail.example.com", "example.com" },
		{ "a.b.c.Example.COM.", "example.com" },
		{ "example.co.uk", "example.co.uk" },
		{ "mail.example.co.uk", "example.co.uk" },
		{ "co.uk", "co.uk" },
		{ "com", "com" },
		{ "x.y.example.org.au", "example.org.au" },
	};
	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		char out[256];
		dmarc_org_domain(cases[i].in, out, sizeof out);
		print_message("%s -> %s\n", cases[i].in, out);
		assert_string_equal(out, cases[i].want);
	}
}

static void test_alignment(void **state)
{
	static const struct {
		const char *from, *id;
		bool strict, want;
	} cases[] = {
		{ "example.com", "example.com", true, true },
		{ "example.com", "EXAMPLE.com.", true, true },
		{ "example.com", "mail.example.com", true, false },
		{ "example.com", "mail.example.com", false, true },
		{ "news.example.com", "bounce.example.com", false, true },
		{ "example.co.uk", "other.co.uk", false, false },
		{ "example.com", "example.net", false, false },
		{ "example.com", "", false, false },
		{ "example.com", NULL, false, false },
	};
	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		print_message("case %zu\n", i);
		assert_int_equal(dmarc_aligned(cases[i].from, cases[i].id, cases[i].strict), cases[i].want);
	}
}

static void test_names(void **state)
{
	char names[2][DMARC_NAME_CAP];

	assert_int_equal(dmarc_names("example.com", names), 1);
	assert_string_equal(names[0], "_dmarc.example.com");
	assert_int_equal(dmarc_names("Mail.Example.co.uk", names), 2);
	assert_string_equal(names[0], "_dmarc.mail.example.co.uk");
	assert_string_equal(names[1], "_dmarc.example.co.uk");
}

static void test_evaluate(void **state)
{
	static const struct dmarc_dkim_id dkim_pass_sub[] = { { DKIM_PASS, "mail.example.com" } };
	static const struct dmarc_dkim_id dkim_pass_other[] = { { DKIM_FAIL, "example.com" },
								 { DKIM_PASS, "example.net" } };
	static const struct dmarc_dkim_id dkim_fail[] = { { DKIM_FAIL, "example.com" } };
	static const struct dmarc_dkim_id dkim_temp[] = { { DKIM_TEMPERROR, "mail.example.com" } };
	static const struct dmarc_dkim_id dkim_temp_other[] = { { DKIM_TEMPERROR, "example.net" } };
	static const struct {
		const char *rec;
		bool at_org, dns_error;
		enum spf_result spf;
		const char *spf_domain;
		const struct dmarc_dkim_id *dkim;
		size_t ndkim;
		unsigned sample;
		enum dmarc_result want;
		enum dmarc_policy disposition;
	} cases[] = {
		/* pass through SPF, through DKIM */
		{ "v=DMARC1; p=reject", false, false, SPF_PASS, "example.com", NULL, 0, 0, DMARC_PASS, DMARC_P_NONE },
		{ "v=DMARC1; p=reject", false, false, SPF_FAIL, "example.com", dkim_pass_sub, 1, 0, DMARC_PASS,
		  DMARC_P_NONE },
		/* relaxed vs strict */
		{ "v=DMARC1; p=reject", false, false, SPF_PASS, "bounce.example.com", NULL, 0, 0, DMARC_PASS,
		  DMARC_P_NONE },
		{ "v=DMARC1; p=reject; aspf=s", false, false, SPF_PASS, "bounce.example.com", NULL, 0, 0, DMARC_FAIL,
		  DMARC_P_REJECT },
		{ "v=DMARC1; p=reject; adkim=s", false, false, SPF_NONE, NULL, dkim_pass_sub, 1, 0, DMARC_FAIL,
		  DMARC_P_REJECT },
		/* SPF pass of another domain, DKIM pass of another domain: not aligned */
		{ "v=DMARC1; p=quarantine", false, false, SPF_PASS, "example.net", dkim_pass_other, 2, 0, DMARC_FAIL,
		  DMARC_P_QUARANTINE },
		/* SPF softfail is not a pass */
		{ "v=DMARC1; p=reject", false, false, SPF_SOFTFAIL, "example.com", dkim_fail, 1, 0, DMARC_FAIL,
		  DMARC_P_REJECT },
		/* subdomain policy when the record came from the org domain */
		{ "v=DMARC1; p=reject; sp=quarantine", true, false, SPF_FAIL, "example.com", NULL, 0, 0, DMARC_FAIL,
		  DMARC_P_QUARANTINE },
		{ "v=DMARC1; p=reject; sp=none", false, false, SPF_FAIL, "example.com", NULL, 0, 0, DMARC_FAIL,
		  DMARC_P_REJECT },
		/* pct: outside the sample, the next weaker policy */
		{ "v=DMARC1; p=reject; pct=0", false, false, SPF_FAIL, "x.com", NULL, 0, 0, DMARC_FAIL,
		  DMARC_P_QUARANTINE },
		{ "v=DMARC1; p=quarantine; pct=0", false, false, SPF_FAIL, "x.com", NULL, 0, 0, DMARC_FAIL, DMARC_P_NONE },
		{ "v=DMARC1; p=reject; pct=50", false, false, SPF_FAIL, "x.com", NULL, 0, 49, DMARC_FAIL, DMARC_P_REJECT },
		{ "v=DMARC1; p=reject; pct=50", false, false, SPF_FAIL, "x.com", NULL, 0, 50, DMARC_FAIL,
		  DMARC_P_QUARANTINE },
		{ "v=DMARC1; p=none", false, false, SPF_FAIL, "x.com", NULL, 0, 0, DMARC_FAIL, DMARC_P_NONE },
		/* no record, DNS trouble */
		{ NULL, false, false, SPF_FAIL, "x.com", NULL, 0, 0, DMARC_NONE, DMARC_P_NONE },
		{ NULL, false, true, SPF_PASS, "example.com", NULL, 0, 0, DMARC_TEMPERROR, DMARC_P_NONE },
		/* an aligned identifier that DNS trouble left unchecked: not a
		 * fail (never a reject for a DNS failure) */
		{ "v=DMARC1; p=reject", false, false, SPF_TEMPERROR, "bounce.example.com", NULL, 0, 0, DMARC_TEMPERROR,
		  DMARC_P_NONE },
		{ "v=DMARC1; p=reject", false, false, SPF_FAIL, "example.com", dkim_temp, 1, 0, DMARC_TEMPERROR,
		  DMARC_P_NONE },
		/* ... but one that could not have aligned changes nothing */
		{ "v=DMARC1; p=reject", false, false, SPF_TEMPERROR, "example.net", NULL, 0, 0, DMARC_FAIL,
		  DMARC_P_REJECT },
		{ "v=DMARC1; p=reject; adkim=s", false, false, SPF_FAIL, "example.com", dkim_temp, 1, 0, DMARC_FAIL,
		  DMARC_P_REJECT },
		{ "v=DMARC1; p=reject", false, false, SPF_FAIL, "example.com", dkim_temp_other, 1, 0, DMARC_FAIL,
		  DMARC_P_REJECT },
		/* and a pass is a pass whatever else failed */
		{ "v=DMARC1; p=reject", false, false, SPF_TEMPERROR, "example.com", dkim_pass_sub, 1, 0, DMARC_PASS,
		  DMARC_P_NONE },
	};
	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		struct dmarc_input in = { .from_domain = "example.com",
					  .record_at_org = cases[i].at_org,
					  .dns_error = cases[i].dns_error,
					  .spf = cases[i].spf,
					  .spf_domain = cases[i].spf_domain,
					  .dkim = cases[i].dkim,
					  .ndkim = cases[i].ndkim,
					  .sample = cases[i].sample };
		struct dmarc_outcome out;
		const char *reason;
		if (cases[i].rec) {
			in.have_record = true;
			assert_true(dmarc_record_parse(cases[i].rec, strlen(cases[i].rec), &in.rec, &reason));
		}
		if (cases[i].at_org)
			in.from_domain = "news.example.com";
		dmarc_evaluate(&in, &out);
		print_message("case %zu: %s %s\n", i, dmarc_result_name(out.result), dmarc_policy_name(out.disposition));
		assert_int_equal(out.result, cases[i].want);
		assert_int_equal(out.disposition, cases[i].disposition);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_record),    cmocka_unit_test(test_org_domain), cmocka_unit_test(test_alignment),
		cmocka_unit_test(test_names),     cmocka_unit_test(test_evaluate),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
