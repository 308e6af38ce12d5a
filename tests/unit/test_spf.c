/*
 * test_spf.c - SPF records, macros (RFC 7208 7.4's examples) and the
 * check_host() state machine against a table resolver: each mechanism,
 * include/redirect, the lookup and void limits, DNS trouble.
 *
 * `test_spf --table FILE` evaluates the cases of FILE (see run_table) and
 * prints one result per case: tests/integration/test_spf.py runs pyspf
 * over the same records and compares.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <strings.h>
#include <sys/socket.h>

#include "core/util.h"
#include "msgauth/spf.h"
#include "proto/spf_record.h"

static void test_record(void **state)
{
	static const struct {
		const char *in;
		const char *reason; /* NULL: parses */
		size_t n;
	} cases[] = {
		{ "v=spf1", NULL, 0 },
		{ "v=spf1 -all", NULL, 1 },
		{ "V=SPF1 +a mx/24 ~ptr ?exists:%{ir}.x.example a:b.example/24//64 ip4:192.0.2.0/24 ip6:2001:db8::/32 "
		  "include:_spf.example.com redirect=other.example exp=explain.%{d} foo=bar -all",
		  NULL, 9 },
		{ "v=spf1  ip4:10.0.0.1   -all  ", NULL, 2 },
		{ "v=spf10 -all", "not an SPF record", 0 },
		{ "v=spf1 bogus", "unknown mechanism", 0 },
		{ "v=spf1 ip4:300.0.0.1", "bad ip4/ip6 address", 0 },
		{ "v=spf1 ip4:10.0.0.1/33", "bad ip4/ip6 address", 0 },
		{ "v=spf1 ip6:::1/129", "bad ip4/ip6 address", 0 },
		{ "v=spf1 ip4", "bad mechanism", 0 },
		{ "v=spf1 include", "bad mechanism", 0 },
		{ "v=spf1 all:x", "bad mechanism argument", 0 },
		{ "v=spf1 a/33", "bad CIDR length", 0 },
		{ "v=spf1 a:x.example/024", "bad CIDR length", 0 },
		{ "v=spf1 redirect=a.example redirect=b.example", "bad or repeated redirect=", 0 },
		{ "v=spf1 exists:%{q}", NULL, 1 }, /* macro letters are checked when expanded */
		{ "v=spf1 exists:%x", "bad domain-spec", 0 },
		{ "v=spf1 a:%{d", "bad domain-spec", 0 },
	};
	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		struct spf_record *rec = malloc(sizeof *rec);
		const char *reason = NULL;
		bool ok = spf_record_parse(cases[i].in, strlen(cases[i].in), rec, &reason);
		print_message("case %zu: %s -> %s\n", i, cases[i].in, reason ? reason : "ok");
		if (cases[i].reason) {
			assert_false(ok);
			assert_string_equal(reason, cases[i].reason);
		} else {
			assert_true(ok);
			assert_int_equal(rec->n, cases[i].n);
		}
		free(rec);
	}
}

static void test_record_fields(void **state)
{
	const char *in = "v=spf1 -a:b.example/24//64 ~ip4:192.0.2.0/24 redirect=r.example";
	struct spf_record rec;
	const char *reason;

	assert_true(spf_record_parse(in, strlen(in), &rec, &reason));
	assert_int_equal(rec.terms[0].qual, SPF_Q_FAIL);
	assert_int_equal(rec.terms[0].mech, SPF_A);
	assert_int_equal(rec.terms[0].domain.len, 9);
	assert_int_equal(rec.terms[0].cidr4, 24);
	assert_int_equal(rec.terms[0].cidr6, 64);
	assert_int_equal(rec.terms[1].qual, SPF_Q_SOFTFAIL);
	assert_int_equal(rec.terms[1].cidr4, 24);
	assert_memory_equal(rec.terms[1].addr, "\xc0\x00\x02\x00", 4);
	assert_true(rec.has_redirect);
	assert_int_equal(rec.redirect.len, 9);
}

/* A 5000-octet record (a long list of ip4 terms, as large senders
 * publish) is one record like any other; only a record past the term
 * bound is a permerror. */
static void test_long_record(void **state)
{
	struct spf_record *rec = malloc(sizeof *rec);
	char *big = malloc(8192);
	const char *reason = NULL;
	size_t len = 0;
	unsigned k = 0;

	len += (size_t)sprintf(big, "v=spf1");
	while (len < 5000 - 40)
		len += (size_t)sprintf(big + len, " ip4:10.%u.%u.0/24", k / 250, k % 250), k++;
	len += (size_t)sprintf(big + len, " ip4:203.0.113.1 -all");
	print_message("%zu octets, %u terms\n", len, k + 2);
	assert_true(len >= 4960 && len <= 5000);
	assert_true(spf_record_parse(big, len, rec, &reason));
	assert_int_equal(rec->n, k + 2);
	assert_memory_equal(rec->terms[k].addr, "\xcb\x00\x71\x01", 4);
	assert_int_equal(rec->terms[k + 1].mech, SPF_ALL);
	/* 2500 terms of the shortest kind: over the bound */
	len = (size_t)sprintf(big, "v=spf1");
	while (len < 5000)
		len += (size_t)sprintf(big + len, " a");
	assert_false(spf_record_parse(big, len, rec, &reason));
	assert_string_equal(reason, "too many terms");
	free(big);
	free(rec);
}

static void test_macros(void **state)
{
	static const struct {
		const char *in, *want;
	} v4[] = {
		/* RFC 7208 7.4 */
		{ "%{s}", "strong-bad@email.example.com" },
		{ "%{o}", "email.example.com" },
		{ "%{d}", "email.example.com" },
		{ "%{d4}", "email.example.com" },
		{ "%{d3}", "email.example.com" },
		{ "%{d2}", "example.com" },
		{ "%{d1}", "com" },
		{ "%{dr}", "com.example.email" },
		{ "%{d2r}", "example.email" },
		{ "%{l}", "strong-bad" },
		{ "%{l-}", "strong.bad" },
		{ "%{lr}", "strong-bad" },
		{ "%{lr-}", "bad.strong" },
		{ "%{l1r-}", "strong" },
		{ "%{ir}.%{v}._spf.%{d2}", "3.2.0.192.in-addr._spf.example.com" },
		{ "%{lr-}.lp._spf.%{d2}", "bad.strong.lp._spf.example.com" },
		{ "%{lr-}.lp.%{ir}.%{v}._spf.%{d2}", "bad.strong.lp.3.2.0.192.in-addr._spf.example.com" },
		{ "%{ir}.%{v}.%{l1r-}.lp._spf.%{d2}", "3.2.0.192.in-addr.strong.lp._spf.example.com" },
		{ "%{d2}.trusted-domains.example.net", "example.com.trusted-domains.example.net" },
		{ "%%%_%-", "% %20" },
		{ "%{h}", "mx.example.org" },
		{ "%{S}", "strong-bad%40email.example.com" },
		{ "%{p}", "unknown" },
	};
	static const char *const bad[] = { "%", "%x", "%{", "%{}", "%{q}", "%{c}", "%{d0}", "%{d2x}" };
	struct spf_macro_ctx c = { "strong-bad@email.example.com", "email.example.com", "mx.example.org", AF_INET,
				   { 192, 0, 2, 3 }, "mx.receiver.example", 1700000000 };
	char out[1024];

	for (size_t i = 0; i < ARRAY_LEN(v4); i++) {
		print_message("case %s\n", v4[i].in);
		assert_true(spf_macro_expand(v4[i].in, strlen(v4[i].in), &c, out, sizeof out));
		assert_string_equal(out, v4[i].want);
	}
	for (size_t i = 0; i < ARRAY_LEN(bad); i++)
		assert_false(spf_macro_expand(bad[i], strlen(bad[i]), &c, out, sizeof out));
	/* explanations (6.2): spaces, and c, r, t besides the others */
	{
		static const struct {
			const char *in, *want;
		} ex[] = {
			{ "%{i} is not one of %{d}'s designated mail servers.",
			  "192.0.2.3 is not one of email.example.com's designated mail servers." },
			{ "See http://%{d}/why.html?s=%{S}&i=%{i}",
			  "See http://email.example.com/why.html?s=strong-bad%40email.example.com&i=192.0.2.3" },
			{ "%{c} seen by %{r} at %{t}", "192.0.2.3 seen by mx.receiver.example at 1700000000" },
			{ "%{r1} %{t2}", "example 1700000000" },
			{ "", "" },
		};
		static const char *const exbad[] = { "%{q}", "100%", "tab\there", "8bit \xc3\xa9", "%{c" };
		for (size_t i = 0; i < ARRAY_LEN(ex); i++) {
			print_message("explanation %s\n", ex[i].in);
			assert_true(spf_explain_expand(ex[i].in, strlen(ex[i].in), &c, out, sizeof out));
			assert_string_equal(out, ex[i].want);
		}
		for (size_t i = 0; i < ARRAY_LEN(exbad); i++)
			assert_false(spf_explain_expand(exbad[i], strlen(exbad[i]), &c, out, sizeof out));
		/* a domain-spec has neither spaces nor c, r, t */
		assert_false(spf_macro_expand("a b", 3, &c, out, sizeof out));
		assert_false(spf_macro_expand("%{r}", 4, &c, out, sizeof out));
		/* does not fit: false, not cut */
		assert_false(spf_explain_expand("%{s} %{s}", 9, &c, out, 20));
		c.receiver = NULL;
		assert_true(spf_explain_expand("%{r}", 4, &c, out, sizeof out));
		assert_string_equal(out, "unknown");
	}
	c.family = AF_INET6;
	inet_pton(AF_INET6, "2001:db8::cb01", c.ip);
	assert_true(spf_explain_expand("%{c}", 4, &c, out, sizeof out));
	assert_string_equal(out, "2001:db8::cb01");
	assert_true(spf_macro_expand("%{ir}.%{v}._spf.%{d2}", 21, &c, out, sizeof out));
	assert_string_equal(out, "1.0.B.C.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.B.D.0.1.0.0.2.ip6._spf.example.com");
	/* over 253 octets: labels dropped on the left */
	{
		char big[400];
		memset(big, 0, sizeof big);
		for (int k = 0; k < 30; k++)
			strcat(big, "abcdefghi.");
		strcat(big, "%{d}");
		assert_true(spf_macro_expand(big, strlen(big), &c, out, sizeof out));
		assert_true(strlen(out) <= 253);
		assert_non_null(strstr(out, "email.example.com"));
		assert_true(out[0] == 'a');
	}
}

/* --- a table resolver --- */

struct row {
	const char *name, *type, *value; /* value "TEMPFAIL": the lookup fails */
};

static const char *type_name(enum spf_qtype t)
{
	static const char *const n[] = { [SPF_QTXT] = "TXT", [SPF_QA] = "A", [SPF_QAAAA] = "AAAA",
					 [SPF_QMX] = "MX", [SPF_QPTR] = "PTR" };
	return n[t];
}

#define RECEIVER "mx.receiver.test"
#define NOW      1700000000

/* Evaluate with rows as the DNS; counts the questions asked.  With exp,
 * the explanation is asked for and *exp set to it (malloc'd) or NULL. */
static enum spf_result eval_exp(const struct row *rows, size_t nrows, const char *ip, const char *sender,
				const char *helo, unsigned *asked, const char **reason, char **exp)
{
	unsigned char addr[16];
	int fam = strchr(ip, ':') ? AF_INET6 : AF_INET;
	const char *at = strrchr(sender, '@');
	struct spf *s;
	struct spf_query q;
	enum spf_result r;

	inet_pton(fam, ip, addr);
	s = spf_new(fam, addr, at ? at + 1 : helo, sender, helo);
	if (exp)
		spf_explain(s, RECEIVER, NOW);
	*asked = 0;
	while (spf_next(s, &q)) {
		struct spf_rr rr[32];
		size_t n = 0;
		bool name_exists = false, tempfail = false;
		(*asked)++;
		assert_true(*asked < 200);
		for (size_t k = 0; k < nrows; k++) {
			if (strcasecmp(rows[k].name, q.name))
				continue;
			name_exists = true;
			if (strcmp(rows[k].type, type_name(q.type)))
				continue;
			if (!strcmp(rows[k].value, "TEMPFAIL")) {
				tempfail = true;
				continue;
			}
			if (n == ARRAY_LEN(rr))
				continue;
			memset(&rr[n], 0, sizeof rr[n]);
			rr[n].text = rows[k].value;
			rr[n].len = strlen(rows[k].value);
			if (q.type == SPF_QA)
				inet_pton(AF_INET, rows[k].value, rr[n].addr);
			if (q.type == SPF_QAAAA)
				inet_pton(AF_INET6, rows[k].value, rr[n].addr);
			n++;
		}
		spf_answer(s, tempfail ? SPF_DNS_TEMPFAIL : name_exists ? SPF_DNS_OK : SPF_DNS_NXDOMAIN, rr, n);
	}
	r = spf_result(s, reason);
	if (exp)
		*exp = spf_explanation(s) ? xstrdup(spf_explanation(s)) : NULL;
	assert_true(exp != NULL || spf_explanation(s) == NULL);
	spf_free(s);
	return r;
}

static enum spf_result eval(const struct row *rows, size_t nrows, const char *ip, const char *sender,
			    const char *helo, unsigned *asked, const char **reason)
{
	return eval_exp(rows, nrows, ip, sender, helo, asked, reason, NULL);
}

static const struct row dns[] = {
	{ "ex.test", "TXT", "v=spf1 ip4:192.0.2.0/24 ip6:2001:db8::/32 a mx -all" },
	{ "ex.test", "TXT", "some other text" },
	{ "ex.test", "A", "198.51.100.1" },
	{ "ex.test", "MX", "mx1.ex.test" },
	{ "ex.test", "MX", "mx2.ex.test" },
	{ "mx1.ex.test", "A", "198.51.100.10" },
	{ "mx2.ex.test", "A", "198.51.100.20" },
	{ "mx2.ex.test", "AAAA", "2001:db9::20" },
	{ "soft.test", "TXT", "v=spf1 ~all" },
	{ "neutral.test", "TXT", "v=spf1 ?all" },
	{ "empty.test", "TXT", "v=spf1" },
	{ "nospf.test", "TXT", "hello" },
	{ "two.test", "TXT", "v=spf1 -all" },
	{ "two.test", "TXT", "v=spf1 +all" },
	{ "inc.test", "TXT", "v=spf1 include:ex.test include:soft.test -all" },
	{ "incnone.test", "TXT", "v=spf1 include:nospf.test -all" },
	{ "incnx.test", "TXT", "v=spf1 include:nowhere.test -all" },
	{ "red.test", "TXT", "v=spf1 redirect=ex.test" },
	{ "rednone.test", "TXT", "v=spf1 redirect=nospf.test" },
	{ "loop.test", "TXT", "v=spf1 include:loop.test -all" },
	{ "redloop.test", "TXT", "v=spf1 redirect=redloop.test" },
	{ "cidr.test", "TXT", "v=spf1 a:host.cidr.test/28 -all" },
	{ "host.cidr.test", "A", "203.0.113.1" },
	{ "exists.test", "TXT", "v=spf1 exists:%{ir}.%{l}.x.exists.test -all" },
	{ "1.113.0.203.alice.x.exists.test", "A", "127.0.0.2" },
	{ "ptr.test", "TXT", "v=spf1 ptr -all" },
	{ "1.113.0.203.in-addr.arpa", "PTR", "mail.ptr.test" },
	{ "1.113.0.203.in-addr.arpa", "PTR", "evil.example" },
	{ "mail.ptr.test", "A", "203.0.113.1" },
	{ "evil.example", "A", "203.0.113.1" },
	{ "temp.test", "TXT", "TEMPFAIL" },
	{ "atemp.test", "TXT", "v=spf1 a:down.test -all" },
	{ "down.test", "A", "TEMPFAIL" },
	{ "bad.test", "TXT", "v=spf1 ip4:1.2.3 -all" },
	{ "many.test", "TXT", "v=spf1 a:a1.test a:a2.test a:a3.test a:a4.test a:a5.test a:a6.test a:a7.test "
			     "a:a8.test a:a9.test a:a10.test a:a11.test -all" },
	{ "ten.test", "TXT", "v=spf1 a:a1.test a:a2.test a:a3.test a:a4.test a:a5.test a:a6.test a:a7.test "
			    "a:a8.test a:a9.test ip4:203.0.113.1 -all" },
	{ "voids.test", "TXT", "v=spf1 a:n1.test a:n2.test a:n3.test +all" },
	{ "twovoids.test", "TXT", "v=spf1 a:n1.test a:n2.test +all" },
	{ "a1.test", "A", "192.0.2.200" }, { "a2.test", "A", "192.0.2.200" }, { "a3.test", "A", "192.0.2.200" },
	{ "a4.test", "A", "192.0.2.200" }, { "a5.test", "A", "192.0.2.200" }, { "a6.test", "A", "192.0.2.200" },
	{ "a7.test", "A", "192.0.2.200" }, { "a8.test", "A", "192.0.2.200" }, { "a9.test", "A", "192.0.2.200" },
	{ "a10.test", "A", "192.0.2.200" }, { "a11.test", "A", "203.0.113.1" },
	{ "mxbomb.test", "TXT", "v=spf1 mx -all" },
	{ "mxbomb.test", "MX", "m1.test" }, { "mxbomb.test", "MX", "m2.test" }, { "mxbomb.test", "MX", "m3.test" },
	{ "mxbomb.test", "MX", "m4.test" }, { "mxbomb.test", "MX", "m5.test" }, { "mxbomb.test", "MX", "m6.test" },
	{ "mxbomb.test", "MX", "m7.test" }, { "mxbomb.test", "MX", "m8.test" }, { "mxbomb.test", "MX", "m9.test" },
	{ "mxbomb.test", "MX", "m10.test" }, { "mxbomb.test", "MX", "m11.test" },
	{ "helo.test", "TXT", "v=spf1 a:%{h} -all" },
	{ "mail.helo.test", "A", "203.0.113.1" },
	/* exp= (6.2) */
	{ "expl.test", "TXT", "v=spf1 ip4:192.0.2.1 -all exp=why.%{d}" },
	{ "why.expl.test", "TXT", "%{i} is not one of %{d}'s servers (%{l}, %{c}, %{r}, %{t})" },
	{ "expinc.test", "TXT", "v=spf1 include:expl.test -all" },
	{ "expred.test", "TXT", "v=spf1 redirect=expl.test exp=why.other.test" },
	{ "why.other.test", "TXT", "from the redirecting record" },
	{ "expnx.test", "TXT", "v=spf1 -all exp=nowhere.test" },
	{ "exptwo.test", "TXT", "v=spf1 -all exp=two.why.test" },
	{ "two.why.test", "TXT", "one" },
	{ "two.why.test", "TXT", "two" },
	{ "exptemp.test", "TXT", "v=spf1 -all exp=down.why.test" },
	{ "down.why.test", "TXT", "TEMPFAIL" },
	{ "expbad.test", "TXT", "v=spf1 -all exp=bad.why.test" },
	{ "bad.why.test", "TXT", "%{q} is no macro" },
	{ "expsoft.test", "TXT", "v=spf1 ~all exp=why.expl.test" },
	{ "expbadspec.test", "TXT", "v=spf1 -all exp=%{c}.why.test" },
};

/* On a fail, the exp= of the record that failed is fetched and expanded;
 * an included record's is not used, a redirect target's replaces the
 * first's; no usable text is no explanation, and the result stays fail. */
static void test_explanation(void **state)
{
	static const struct {
		const char *ip, *sender;
		enum spf_result want;
		const char *exp;
		unsigned asked;
	} cases[] = {
		{ "203.0.113.1", "alice@expl.test", SPF_FAIL,
		  "203.0.113.1 is not one of expl.test's servers (alice, 203.0.113.1, " RECEIVER ", 1700000000)", 2 },
		{ "192.0.2.1", "alice@expl.test", SPF_PASS, NULL, 1 },
		{ "203.0.113.1", "a@expinc.test", SPF_FAIL, NULL, 2 },
		{ "203.0.113.1", "bob@expred.test", SPF_FAIL,
		  "203.0.113.1 is not one of expl.test's servers (bob, 203.0.113.1, " RECEIVER ", 1700000000)", 3 },
		{ "203.0.113.1", "a@expnx.test", SPF_FAIL, NULL, 2 },
		{ "203.0.113.1", "a@exptwo.test", SPF_FAIL, NULL, 2 },
		{ "203.0.113.1", "a@exptemp.test", SPF_FAIL, NULL, 2 },
		{ "203.0.113.1", "a@expbad.test", SPF_FAIL, NULL, 2 },
		{ "203.0.113.1", "a@expsoft.test", SPF_SOFTFAIL, NULL, 1 },
		{ "203.0.113.1", "a@expbadspec.test", SPF_FAIL, NULL, 1 },
	};
	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		unsigned asked;
		const char *reason = NULL;
		char *exp = NULL;
		enum spf_result r = eval_exp(dns, ARRAY_LEN(dns), cases[i].ip, cases[i].sender, "mail.helo.test",
					     &asked, &reason, &exp);
		print_message("case %zu: %s -> %s [%s] after %u lookups\n", i, cases[i].sender, spf_result_name(r),
			      exp ? exp : "-", asked);
		assert_int_equal(r, cases[i].want);
		if (cases[i].exp)
			assert_string_equal(exp, cases[i].exp);
		else
			assert_null(exp);
		assert_int_equal(asked, cases[i].asked);
		free(exp);
	}
	/* not asked for: not fetched */
	{
		unsigned asked;
		const char *reason;
		assert_int_equal(eval(dns, ARRAY_LEN(dns), "203.0.113.1", "a@expl.test", "h.test", &asked, &reason),
				 SPF_FAIL);
		assert_int_equal(asked, 1);
	}
}

static void test_eval(void **state)
{
	static const struct {
		const char *ip, *sender;
		enum spf_result want;
		const char *reason;
	} cases[] = {
		{ "192.0.2.9", "a@ex.test", SPF_PASS, NULL },
		{ "2001:db8::1", "a@ex.test", SPF_PASS, NULL },
		{ "198.51.100.1", "a@ex.test", SPF_PASS, NULL },        /* a */
		{ "198.51.100.20", "a@ex.test", SPF_PASS, NULL },       /* mx */
		{ "2001:db9::20", "a@ex.test", SPF_PASS, NULL },        /* mx, AAAA */
		{ "203.0.113.1", "a@ex.test", SPF_FAIL, NULL },
		{ "203.0.113.1", "a@soft.test", SPF_SOFTFAIL, NULL },
		{ "203.0.113.1", "a@neutral.test", SPF_NEUTRAL, NULL },
		{ "203.0.113.1", "a@empty.test", SPF_NEUTRAL, NULL },
		{ "203.0.113.1", "a@nospf.test", SPF_NONE, NULL },
		{ "203.0.113.1", "a@nowhere.test", SPF_NONE, NULL },
		{ "203.0.113.1", "a@two.test", SPF_PERMERROR, "more than one SPF record" },
		{ "192.0.2.9", "a@inc.test", SPF_PASS, NULL },
		{ "203.0.113.1", "a@inc.test", SPF_FAIL, NULL },        /* include's softfail does not match */
		{ "203.0.113.1", "a@incnone.test", SPF_PERMERROR, "include of a domain without SPF" },
		{ "203.0.113.1", "a@incnx.test", SPF_PERMERROR, "include of a domain without SPF" },
		{ "192.0.2.9", "a@red.test", SPF_PASS, NULL },
		{ "203.0.113.1", "a@red.test", SPF_FAIL, NULL },
		{ "203.0.113.1", "a@rednone.test", SPF_PERMERROR, "redirect to a domain without SPF" },
		{ "203.0.113.1", "a@loop.test", SPF_PERMERROR, "more than 10 DNS lookups" },
		{ "203.0.113.1", "a@redloop.test", SPF_PERMERROR, "more than 10 DNS lookups" },
		{ "203.0.113.14", "a@cidr.test", SPF_PASS, NULL },
		{ "203.0.113.17", "a@cidr.test", SPF_FAIL, NULL },
		{ "203.0.113.1", "alice@exists.test", SPF_PASS, NULL },
		{ "203.0.113.1", "bob@exists.test", SPF_FAIL, NULL },
		{ "203.0.113.1", "a@ptr.test", SPF_PASS, NULL },
		{ "203.0.113.2", "a@ptr.test", SPF_FAIL, NULL },
		{ "203.0.113.1", "a@temp.test", SPF_TEMPERROR, NULL },
		{ "203.0.113.1", "a@atemp.test", SPF_TEMPERROR, NULL },
		{ "203.0.113.1", "a@bad.test", SPF_PERMERROR, "bad ip4/ip6 address" },
		{ "203.0.113.1", "a@many.test", SPF_PERMERROR, "more than 10 DNS lookups" },
		{ "203.0.113.1", "a@ten.test", SPF_PASS, NULL },
		{ "203.0.113.1", "a@voids.test", SPF_PERMERROR, "more than 2 void lookups" },
		{ "203.0.113.1", "a@twovoids.test", SPF_PASS, NULL },
		{ "203.0.113.1", "a@mxbomb.test", SPF_PERMERROR, "more than 10 MX names" },
		{ "203.0.113.1", "a@helo.test", SPF_PASS, NULL },
	};
	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		unsigned asked;
		const char *reason = NULL;
		enum spf_result r = eval(dns, ARRAY_LEN(dns), cases[i].ip, cases[i].sender, "mail.helo.test", &asked,
					 &reason);
		print_message("case %zu: %s %s -> %s (%s) after %u lookups\n", i, cases[i].ip, cases[i].sender,
			      spf_result_name(r), reason ? reason : "", asked);
		assert_int_equal(r, cases[i].want);
		if (cases[i].reason)
			assert_string_equal(reason, cases[i].reason);
		assert_true(asked <= 10 * 11 + 1);
	}
}

/* Lines: "rr NAME TYPE VALUE..." and "case IP SENDER HELO"; one line
 * printed per case, in order: the result, a tab, the explanation (or
 * "-"); %{r} is RECEIVER, %{t} NOW. */
static int run_table(const char *path)
{
	FILE *f = fopen(path, "r");
	struct row rows[512];
	size_t n = 0;
	char line[4096];

	if (!f)
		return 2;
	while (fgets(line, sizeof line, f)) {
		char *save, *kind, *a, *b, *c;
		line[strcspn(line, "\n")] = '\0';
		if (!(kind = strtok_r(line, " ", &save)))
			continue;
		a = strtok_r(NULL, " ", &save);
		b = strtok_r(NULL, " ", &save);
		c = strtok_r(NULL, "", &save);
		if (!strcmp(kind, "rr") && a && b && c && n < ARRAY_LEN(rows)) {
			rows[n++] = (struct row){ xstrdup(a), xstrdup(b), xstrdup(c) };
		} else if (!strcmp(kind, "case") && a && b && c) {
			unsigned asked;
			const char *reason;
			char *exp;
			enum spf_result r = eval_exp(rows, n, a, b, c, &asked, &reason, &exp);
			printf("%s\t%s\n", spf_result_name(r), exp ? exp : "-");
			free(exp);
		}
	}
	fclose(f);
	for (size_t i = 0; i < n; i++) {   /* the sanitizer build checks for leaks */
		free((char *)rows[i].name);
		free((char *)rows[i].type);
		free((char *)rows[i].value);
	}
	return 0;
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_record),
		cmocka_unit_test(test_record_fields),
		cmocka_unit_test(test_long_record),
		cmocka_unit_test(test_macros),
		cmocka_unit_test(test_eval),
		cmocka_unit_test(test_explanation),
	};
	if (argc == 3 && !strcmp(argv[1], "--table"))
		return run_table(argv[2]);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
