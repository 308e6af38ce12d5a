/*
 * test_smtp_parse.c - unit tests for proto/smtp_parse: command split, paths
 * (RFC 5321 §4.1.2, limits of §4.5.3.1), MAIL/RCPT parameters, HELO
 * arguments and xtext.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "proto/smtp_parse.h"

static char *rep(char c, size_t n)
{
	static char bufs[4][1024];
	static int k;
	char *b = bufs[k++ % 4];
	memset(b, c, n);
	b[n] = '\0';
	return b;
}

/* A valid domain of exactly n octets (n >= 3) made of labels of <= 50. */
static void make_domain(char *out, size_t n)
{
	for (size_t i = 0; i < n; i++)
		out[i] = (i % 51 == 50) ? '.' : 'd';
	if (out[n - 1] == '.') {
		out[n - 1] = 'e';
		out[n - 2] = '.';
	}
	out[n] = '\0';
}

static void test_split(void **state)
{
	static const struct { const char *line, *verb, *args; } cases[] = {
		{ "EHLO example.com", "EHLO", "example.com" },
		{ "QUIT", "QUIT", "" },
		{ "MAIL FROM:<a@b>", "MAIL", "FROM:<a@b>" },
		{ "NOOP ", "NOOP", "" },
		{ "NOOP  x", "NOOP", " x" },
		{ "", "", "" },
		{ " x", "", "x" },
	};
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct smtp_token v, a;
		smtp_split_command(cases[i].line, strlen(cases[i].line), &v, &a);
		assert_int_equal(v.len, strlen(cases[i].verb));
		assert_memory_equal(v.p, cases[i].verb, v.len);
		assert_int_equal(a.len, strlen(cases[i].args));
		assert_memory_equal(a.p, cases[i].args, a.len);
	}
}

struct path_case {
	const char *in;
	bool allow_null;
	enum smtp_parse_err err;
	const char *local, *domain;
	bool null, route, quoted, literal;
	size_t consumed;	/* 0: strlen(in) */
};

static const struct path_case path_cases[] = {
	{ "<a@b>", false, SMTP_OK, "a", "b", 0, 0, 0, 0, 0 },
	{ "<user.name+tag@mail.example.com>", false, SMTP_OK, "user.name+tag", "mail.example.com", 0, 0, 0, 0, 0 },
	{ "<!#$%&'*+-/=?^_`{|}~@x.y>", false, SMTP_OK, "!#$%&'*+-/=?^_`{|}~", "x.y", 0, 0, 0, 0, 0 },
	{ "<>", true, SMTP_OK, "", "", 1, 0, 0, 0, 0 },
	{ "<>", false, SMTP_ERR_SYNTAX, "", "", 0, 0, 0, 0, 0 },
	{ "<a@b> SIZE=1", false, SMTP_OK, "a", "b", 0, 0, 0, 0, 5 },
	{ "<\"john doe\"@example.com>", false, SMTP_OK, "john doe", "example.com", 0, 0, 1, 0, 0 },
	{ "<\"a\\\"b\\\\c\"@x>", false, SMTP_OK, "a\"b\\c", "x", 0, 0, 1, 0, 0 },
	{ "<\"\\a\"@x>", false, SMTP_OK, "a", "x", 0, 0, 1, 0, 0 },
	{ "<\"\"@x>", false, SMTP_OK, "", "x", 0, 0, 1, 0, 0 },
	{ "<\"a>b\"@x>", false, SMTP_OK, "a>b", "x", 0, 0, 1, 0, 0 },
	{ "<a@[192.0.2.1]>", false, SMTP_OK, "a", "[192.0.2.1]", 0, 0, 0, 1, 0 },
	{ "<a@[255.255.255.255]>", false, SMTP_OK, "a", "[255.255.255.255]", 0, 0, 0, 1, 0 },
	{ "<a@[001.2.3.4]>", false, SMTP_OK, "a", "[001.2.3.4]", 0, 0, 0, 1, 0 },
	{ "<a@[IPv6:2001:db8::1]>", false, SMTP_OK, "a", "[IPv6:2001:db8::1]", 0, 0, 0, 1, 0 },
	{ "<a@[ipv6:::1]>", false, SMTP_OK, "a", "[ipv6:::1]", 0, 0, 0, 1, 0 },
	{ "<a@[IPv6:::ffff:192.0.2.1]>", false, SMTP_OK, "a", "[IPv6:::ffff:192.0.2.1]", 0, 0, 0, 1, 0 },
	{ "<@r1.example,@r2.example:a@b>", false, SMTP_OK, "a", "b", 0, 1, 0, 0, 0 },
	{ "<@r1:a@b>", false, SMTP_OK, "a", "b", 0, 1, 0, 0, 0 },
	/* syntax errors */
	{ "a@b", false, SMTP_ERR_SYNTAX, "", "", 0, 0, 0, 0, 0 },
	{ "<a@b", false, SMTP_ERR_SYNTAX, "", "", 0, 0, 0, 0, 0 },
	{ "<a>", false, SMTP_ERR_SYNTAX, "", "", 0, 0, 0, 0, 0 },
	{ "<@b>", false, SMTP_ERR_SYNTAX, "", "", 0, 0, 0, 0, 0 },
	{ "<a@>", false, SMTP_ERR_SYNTAX, "", "", 0, 0, 0, 0, 0 },
	{ "<a@b@c>", false, SMTP_ERR_SYNTAX, "", "", 0, 0, 0, 0, 0 },
	{ "<.a@b>", false, SMTP_ERR_SYNTAX, "", "", 0, 0, 0, 0, 0 },
	{ "<a.@b>", false, SMTP_ERR_SYNTAX, "", "", 0, 0, 0, 0, 0 },
	{ "<a..b@c>", false, SMTP_ERR_SYNTAX, "", "", 0, 0, 0, 0, 0 },
	{ "<a b@c>", false, SMTP_ERR_SYNTAX, "", "", 0, 0, 0, 0, 0 },
	{ "<a@b c>", false, SMTP_ERR_SYNTAX, "", "", 0, 0, 0, 0, 0 },
	{ "<a\x01@b>", false, SMTP_ERR_SYNTAX, "", "", 0, 0, 0, 0, 0 },
	{ "<\"a\x01\"@b>", false, SMTP_ERR_SYNTAX, "", "", 0, 0, 0, 0, 0 },
	{ "<\"a\\\x01\"@b>", false, SMTP_ERR_SYNTAX, "", "", 0, 0, 0, 0, 0 },
	{ "<\"a\xff\"@b>", false, SMTP_ERR_SYNTAX, "", "", 0, 0, 0, 0, 0 },
	{ "<\xff@b>", false, SMTP_ERR_SYNTAX, "", "", 0, 0, 0, 0, 0 },
	{ "<\"abc@b>", false, SMTP_ERR_SYNTAX, "", "", 0, 0, 0, 0, 0 },
	{ "<\"abc\\", false, SMTP_ERR_SYNTAX, "", "", 0, 0, 0, 0, 0 },
	{ "<a@-b.com>", false, SMTP_ERR_SYNTAX, "", "", 0, 0, 0, 0, 0 },
	{ "<a@b-.com>", false, SMTP_ERR_SYNTAX, "", "", 0, 0, 0, 0, 0 },
	{ "<a@b..com>", false, SMTP_ERR_SYNTAX, "", "", 0, 0, 0, 0, 0 },
	{ "<a@b.com.>", false, SMTP_ERR_SYNTAX, "", "", 0, 0, 0, 0, 0 },
	{ "<a@.b.com>", false, SMTP_ERR_SYNTAX, "", "", 0, 0, 0, 0, 0 },
	{ "<a@b_c.com>", false, SMTP_ERR_SYNTAX, "", "", 0, 0, 0, 0, 0 },
	{ "<a@[256.1.1.1]>", false, SMTP_ERR_SYNTAX, "", "", 0, 0, 0, 0, 0 },
	{ "<a@[1.2.3]>", false, SMTP_ERR_SYNTAX, "", "", 0, 0, 0, 0, 0 },
	{ "<a@[1.2.3.4.5]>", false, SMTP_ERR_SYNTAX, "", "", 0, 0, 0, 0, 0 },
	{ "<a@[1.2.3.1234]>", false, SMTP_ERR_SYNTAX, "", "", 0, 0, 0, 0, 0 },
	{ "<a@[1..3.4]>", false, SMTP_ERR_SYNTAX, "", "", 0, 0, 0, 0, 0 },
	{ "<a@[IPv6:2001:db8::g]>", false, SMTP_ERR_SYNTAX, "", "", 0, 0, 0, 0, 0 },
	{ "<a@[IPv6:]>", false, SMTP_ERR_SYNTAX, "", "", 0, 0, 0, 0, 0 },
	{ "<a@[x-tag:stuff]>", false, SMTP_ERR_SYNTAX, "", "", 0, 0, 0, 0, 0 },
	{ "<a@[1.2.3.4>", false, SMTP_ERR_SYNTAX, "", "", 0, 0, 0, 0, 0 },
	{ "<a@[1.2.3.4]x>", false, SMTP_ERR_SYNTAX, "", "", 0, 0, 0, 0, 0 },
	{ "<a@[]>", false, SMTP_ERR_SYNTAX, "", "", 0, 0, 0, 0, 0 },
	{ "<@r1a@b>", false, SMTP_ERR_SYNTAX, "", "", 0, 0, 0, 0, 0 },
	{ "<@r1,a@b>", false, SMTP_ERR_SYNTAX, "", "", 0, 0, 0, 0, 0 },
	{ "<@:a@b>", false, SMTP_ERR_SYNTAX, "", "", 0, 0, 0, 0, 0 },
	{ "<@[1.2.3.4]:a@b>", false, SMTP_ERR_SYNTAX, "", "", 0, 0, 0, 0, 0 },
	{ "", true, SMTP_ERR_SYNTAX, "", "", 0, 0, 0, 0, 0 },
	{ "<", true, SMTP_ERR_SYNTAX, "", "", 0, 0, 0, 0, 0 },
	{ "< a@b>", false, SMTP_ERR_SYNTAX, "", "", 0, 0, 0, 0, 0 },
};

static void check_path(const struct path_case *c, const char *in, size_t len)
{
	struct smtp_path p;
	size_t used = 99;
	enum smtp_parse_err err = smtp_parse_path(in, len, c->allow_null, &p, &used);
	if (err != c->err)
		fail_msg("%s: err %d, want %d", in, err, c->err);
	if (err != SMTP_OK) {
		assert_int_equal(used, 0);
		return;
	}
	assert_string_equal(p.local, c->local);
	assert_string_equal(p.domain, c->domain);
	assert_int_equal(p.null, c->null);
	assert_int_equal(p.had_source_route, c->route);
	assert_int_equal(p.quoted_local, c->quoted);
	assert_int_equal(p.domain_literal, c->literal);
	assert_int_equal(used, c->consumed ? c->consumed : len);
}

static void test_path_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(path_cases) / sizeof(path_cases[0]); i++)
		check_path(&path_cases[i], path_cases[i].in, strlen(path_cases[i].in));
}

static void test_path_nul(void **state)
{
	struct smtp_path p;
	size_t used;
	(void)state;
	assert_int_equal(smtp_parse_path("<a\0b@c>", 8, false, &p, &used), SMTP_ERR_SYNTAX);
	assert_int_equal(smtp_parse_path("<\"a\0\"@c>", 8, false, &p, &used), SMTP_ERR_SYNTAX);
	assert_int_equal(smtp_parse_path("<a@c\0>", 6, false, &p, &used), SMTP_ERR_SYNTAX);
	/* len bounds the scan, not a NUL */
	assert_int_equal(smtp_parse_path("<a@b>", 4, false, &p, &used), SMTP_ERR_SYNTAX);
}

static enum smtp_parse_err parse_str(const char *s, struct smtp_path *p)
{
	size_t used;
	return smtp_parse_path(s, strlen(s), false, p, &used);
}

static void test_path_limits(void **state)
{
	char buf[1024], dom[300];
	struct smtp_path p;
	(void)state;

	/* local part: 64 ok, 65 too long; quoted counts as written */
	snprintf(buf, sizeof(buf), "<%s@x>", rep('l', 64));
	assert_int_equal(parse_str(buf, &p), SMTP_OK);
	assert_int_equal(strlen(p.local), 64);
	snprintf(buf, sizeof(buf), "<%s@x>", rep('l', 65));
	assert_int_equal(parse_str(buf, &p), SMTP_ERR_LOCAL_LEN);
	snprintf(buf, sizeof(buf), "<\"%s\"@x>", rep('q', 62));
	assert_int_equal(parse_str(buf, &p), SMTP_OK);
	assert_string_equal(p.local, rep('q', 62));
	snprintf(buf, sizeof(buf), "<\"%s\"@x>", rep('q', 63));
	assert_int_equal(parse_str(buf, &p), SMTP_ERR_LOCAL_LEN);
	snprintf(buf, sizeof(buf), "<\"%s\"@x>", rep('q', 200));
	assert_int_equal(parse_str(buf, &p), SMTP_ERR_LOCAL_LEN);

	/* domain: 255 passes the domain limit (and then fails the path
	 * limit, as "<a@" + 255 + ">" is 259), 256 fails the domain limit;
	 * the largest domain that fits a path is 252 */
	make_domain(dom, 255);
	snprintf(buf, sizeof(buf), "<a@%s>", dom);
	assert_int_equal(parse_str(buf, &p), SMTP_ERR_PATH_LEN);
	make_domain(dom, 252);
	snprintf(buf, sizeof(buf), "<a@%s>", dom);
	assert_int_equal(parse_str(buf, &p), SMTP_OK);
	assert_int_equal(strlen(p.domain), 252);
	make_domain(dom, 256);
	snprintf(buf, sizeof(buf), "<a@%s>", dom);
	assert_int_equal(parse_str(buf, &p), SMTP_ERR_DOMAIN_LEN);

	/* label: 63 ok, 64 is a syntax error */
	snprintf(buf, sizeof(buf), "<a@%s.com>", rep('d', 63));
	assert_int_equal(parse_str(buf, &p), SMTP_OK);
	snprintf(buf, sizeof(buf), "<a@%s.com>", rep('d', 64));
	assert_int_equal(parse_str(buf, &p), SMTP_ERR_SYNTAX);

	/* path: 256 ok, 257 too long (local 64 + '@' + domain + "<>") */
	make_domain(dom, 256 - 64 - 3);
	snprintf(buf, sizeof(buf), "<%s@%s>", rep('l', 64), dom);
	assert_int_equal(strlen(buf), 256);
	assert_int_equal(parse_str(buf, &p), SMTP_OK);
	make_domain(dom, 257 - 64 - 3);
	snprintf(buf, sizeof(buf), "<%s@%s>", rep('l', 64), dom);
	assert_int_equal(strlen(buf), 257);
	assert_int_equal(parse_str(buf, &p), SMTP_ERR_PATH_LEN);
	assert_string_equal(p.local, "");

	/* a source route counts toward the path length */
	make_domain(dom, 240);
	snprintf(buf, sizeof(buf), "<@%s:a@b>", dom);
	assert_int_equal(parse_str(buf, &p), SMTP_OK);
	snprintf(buf, sizeof(buf), "<@%s,@%s:a@b>", dom, dom);
	assert_int_equal(parse_str(buf, &p), SMTP_ERR_PATH_LEN);
}

static void test_format(void **state)
{
	static const struct { const char *in, *out; } cases[] = {
		{ "<a@b>", "a@b" },
		{ "<>", "" },
		{ "<\"abc\"@b>", "abc@b" },
		{ "<\"a b\"@b>", "\"a b\"@b" },
		{ "<\"a\\\"b\"@b>", "\"a\\\"b\"@b" },
		{ "<\"a\\\\b\"@b>", "\"a\\\\b\"@b" },
		{ "<\"a..b\"@b>", "\"a..b\"@b" },
		{ "<\".a\"@b>", "\".a\"@b" },
		{ "<\"\"@b>", "\"\"@b" },
		{ "<\"a@b\"@[1.2.3.4]>", "\"a@b\"@[1.2.3.4]" },
		{ "<@r:x@y>", "x@y" },
	};
	char buf[600];
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct smtp_path p, q;
		size_t used;
		assert_int_equal(smtp_parse_path(cases[i].in, strlen(cases[i].in), true, &p, &used), SMTP_OK);
		size_t n = smtp_path_format(&p, buf, sizeof(buf));
		assert_int_equal(n, strlen(cases[i].out));
		assert_string_equal(buf, cases[i].out);
		if (p.null)
			continue;
		/* and it parses back to the same address */
		char again[620];
		snprintf(again, sizeof(again), "<%s>", buf);
		assert_int_equal(smtp_parse_path(again, strlen(again), false, &q, &used), SMTP_OK);
		assert_string_equal(q.local, p.local);
		assert_string_equal(q.domain, p.domain);
	}
}

static void test_format_cap(void **state)
{
	struct smtp_path p;
	size_t used;
	char buf[16];
	(void)state;
	assert_int_equal(smtp_parse_path("<\"a b\"@cd>", 10, false, &p, &used), SMTP_OK);
	/* "\"a b\"@cd" is 8 octets: needs cap 9 */
	assert_int_equal(smtp_path_format(&p, buf, 9), 8);
	assert_string_equal(buf, "\"a b\"@cd");
	for (size_t cap = 1; cap < 9; cap++) {
		memset(buf, 'X', sizeof(buf));
		assert_int_equal(smtp_path_format(&p, buf, cap), 0);
		assert_int_equal(buf[0], '\0');
	}
	assert_int_equal(smtp_path_format(&p, buf, 0), 0);
	/* escapes are counted */
	assert_int_equal(smtp_parse_path("<\"\\\\\"@d>", 8, false, &p, &used), SMTP_OK);
	assert_int_equal(smtp_path_format(&p, buf, 7), 6);
	assert_int_equal(smtp_path_format(&p, buf, 6), 0);
	/* the postmaster form has no domain */
	memset(&p, 0, sizeof(p));
	strcpy(p.local, "Postmaster");
	assert_int_equal(smtp_path_format(&p, buf, sizeof(buf)), 10);
	assert_string_equal(buf, "Postmaster");
}

struct mail_case {
	const char *args;
	enum smtp_parse_err err;
	const char *local;	/* NULL: null path */
	bool has_size;
	uint64_t size;
	enum smtp_body body;
	enum smtp_ret ret;
	const char *envid;
	const char *auth;	/* NULL: absent */
};

static const struct mail_case mail_cases[] = {
	{ "FROM:<a@b>", SMTP_OK, "a", 0, 0, 0, 0, "", NULL },
	{ "from:<a@b>", SMTP_OK, "a", 0, 0, 0, 0, "", NULL },
	{ "FrOm: <a@b>", SMTP_OK, "a", 0, 0, 0, 0, "", NULL },
	{ "FROM:   <a@b>", SMTP_OK, "a", 0, 0, 0, 0, "", NULL },
	{ "FROM:<>", SMTP_OK, NULL, 0, 0, 0, 0, "", NULL },
	{ "FROM:<a@b> ", SMTP_OK, "a", 0, 0, 0, 0, "", NULL },
	{ "FROM:<a@b> SIZE=0", SMTP_OK, "a", 1, 0, 0, 0, "", NULL },
	{ "FROM:<a@b> SIZE=12345", SMTP_OK, "a", 1, 12345, 0, 0, "", NULL },
	{ "FROM:<a@b> size=18446744073709551615", SMTP_OK, "a", 1, UINT64_MAX, 0, 0, "", NULL },
	{ "FROM:<a@b> SIZE=18446744073709551616", SMTP_ERR_PARAM_VALUE, "a", 0, 0, 0, 0, "", NULL },
	{ "FROM:<a@b> SIZE=99999999999999999999999", SMTP_ERR_PARAM_VALUE, "a", 0, 0, 0, 0, "", NULL },
	{ "FROM:<a@b> SIZE=-1", SMTP_ERR_PARAM_VALUE, "a", 0, 0, 0, 0, "", NULL },
	{ "FROM:<a@b> SIZE=1k", SMTP_ERR_PARAM_VALUE, "a", 0, 0, 0, 0, "", NULL },
	{ "FROM:<a@b> SIZE", SMTP_ERR_PARAM_VALUE, "a", 0, 0, 0, 0, "", NULL },
	{ "FROM:<a@b> SIZE=", SMTP_ERR_SYNTAX, "a", 0, 0, 0, 0, "", NULL },
	{ "FROM:<a@b> SIZE=1 SIZE=2", SMTP_ERR_PARAM_DUP, "a", 0, 0, 0, 0, "", NULL },
	{ "FROM:<a@b> BODY=8BITMIME", SMTP_OK, "a", 0, 0, SMTP_BODY_8BITMIME, 0, "", NULL },
	{ "FROM:<a@b> body=8bitmime", SMTP_OK, "a", 0, 0, SMTP_BODY_8BITMIME, 0, "", NULL },
	{ "FROM:<a@b> BODY=7bit", SMTP_OK, "a", 0, 0, SMTP_BODY_7BIT, 0, "", NULL },
	{ "FROM:<a@b> BODY=BINARYMIME", SMTP_OK, "a", 0, 0, SMTP_BODY_BINARYMIME, 0, "", NULL },
	{ "FROM:<a@b> BODY=BINARY", SMTP_ERR_PARAM_VALUE, "a", 0, 0, 0, 0, "", NULL },
	{ "FROM:<a@b> BODY", SMTP_ERR_PARAM_VALUE, "a", 0, 0, 0, 0, "", NULL },
	{ "FROM:<a@b> BODY=7BIT BODY=7BIT", SMTP_ERR_PARAM_DUP, "a", 0, 0, 0, 0, "", NULL },
	{ "FROM:<a@b> RET=FULL", SMTP_OK, "a", 0, 0, 0, SMTP_RET_FULL, "", NULL },
	{ "FROM:<a@b> ret=hdrs", SMTP_OK, "a", 0, 0, 0, SMTP_RET_HDRS, "", NULL },
	{ "FROM:<a@b> RET=NONE", SMTP_ERR_PARAM_VALUE, "a", 0, 0, 0, 0, "", NULL },
	{ "FROM:<a@b> RET=FULL RET=HDRS", SMTP_ERR_PARAM_DUP, "a", 0, 0, 0, 0, "", NULL },
	{ "FROM:<a@b> ENVID=QQ314159", SMTP_OK, "a", 0, 0, 0, 0, "QQ314159", NULL },
	{ "FROM:<a@b> ENVID=a+2Bb+20c", SMTP_OK, "a", 0, 0, 0, 0, "a+b c", NULL },
	{ "FROM:<a@b> ENVID=a+2", SMTP_ERR_PARAM_VALUE, "a", 0, 0, 0, 0, "", NULL },
	{ "FROM:<a@b> ENVID=a+0Ab", SMTP_ERR_PARAM_VALUE, "a", 0, 0, 0, 0, "", NULL },
	{ "FROM:<a@b> ENVID=a+00b", SMTP_ERR_PARAM_VALUE, "a", 0, 0, 0, 0, "", NULL },
	{ "FROM:<a@b> ENVID=a+C3b", SMTP_ERR_PARAM_VALUE, "a", 0, 0, 0, 0, "", NULL },
	{ "FROM:<a@b> ENVID", SMTP_ERR_PARAM_VALUE, "a", 0, 0, 0, 0, "", NULL },
	{ "FROM:<a@b> ENVID=1 ENVID=2", SMTP_ERR_PARAM_DUP, "a", 0, 0, 0, 0, "", NULL },
	{ "FROM:<a@b> AUTH=<>", SMTP_OK, "a", 0, 0, 0, 0, "", "<>" },
	{ "FROM:<a@b> AUTH=e+2Bf@example.com", SMTP_OK, "a", 0, 0, 0, 0, "", "e+f@example.com" },
	{ "FROM:<a@b> AUTH=x+zz", SMTP_ERR_PARAM_VALUE, "a", 0, 0, 0, 0, "", NULL },
	{ "FROM:<a@b> AUTH=<> AUTH=<>", SMTP_ERR_PARAM_DUP, "a", 0, 0, 0, 0, "", NULL },
	{ "FROM:<a@b> SIZE=100 BODY=8BITMIME RET=HDRS ENVID=x AUTH=<>", SMTP_OK, "a", 1, 100, SMTP_BODY_8BITMIME, SMTP_RET_HDRS, "x", "<>" },
	{ "FROM:<a@b>   SIZE=100   BODY=7BIT  ", SMTP_OK, "a", 1, 100, SMTP_BODY_7BIT, 0, "", NULL },
	{ "FROM:<a@b> SMTPUTF8=yes", SMTP_ERR_PARAM_VALUE, "a", 0, 0, 0, 0, "", NULL },
	{ "FROM:<a@b> SMTPUTF8 smtputf8", SMTP_ERR_PARAM_DUP, "a", 0, 0, 0, 0, "", NULL },
	{ "FROM:<a@b> X-FOO=bar", SMTP_ERR_PARAM_UNKNOWN, "a", 0, 0, 0, 0, "", NULL },
	{ "FROM:<a@b> NOTIFY=NEVER", SMTP_ERR_PARAM_UNKNOWN, "a", 0, 0, 0, 0, "", NULL },
	{ "FROM:<a@b> SIZEX=1", SMTP_ERR_PARAM_UNKNOWN, "a", 0, 0, 0, 0, "", NULL },
	{ "FROM:<a@b> -X=1", SMTP_ERR_SYNTAX, "a", 0, 0, 0, 0, "", NULL },
	{ "FROM:<a@b> X_Y=1", SMTP_ERR_SYNTAX, "a", 0, 0, 0, 0, "", NULL },
	{ "FROM:<a@b> SIZE=1=2", SMTP_ERR_SYNTAX, "a", 0, 0, 0, 0, "", NULL },
	{ "FROM:<a@b> ENVID=a\x01", SMTP_ERR_SYNTAX, "a", 0, 0, 0, 0, "", NULL },
	{ "FROM:<a@b> ENVID=\xc3\xa9", SMTP_ERR_SYNTAX, "a", 0, 0, 0, 0, "", NULL },
	{ "FROM:<a@b>\tSIZE=1", SMTP_ERR_SYNTAX, "a", 0, 0, 0, 0, "", NULL },
	{ "FROM:<a@b>SIZE=1", SMTP_ERR_SYNTAX, "a", 0, 0, 0, 0, "", NULL },
	{ "FROM:a@b", SMTP_ERR_SYNTAX, "a", 0, 0, 0, 0, "", NULL },
	{ "FROM a@b", SMTP_ERR_SYNTAX, "a", 0, 0, 0, 0, "", NULL },
	{ "FROM <a@b>", SMTP_ERR_SYNTAX, "a", 0, 0, 0, 0, "", NULL },
	{ "TO:<a@b>", SMTP_ERR_SYNTAX, "a", 0, 0, 0, 0, "", NULL },
	{ "FROM:", SMTP_ERR_SYNTAX, "a", 0, 0, 0, 0, "", NULL },
	{ "", SMTP_ERR_SYNTAX, "a", 0, 0, 0, 0, "", NULL },
	{ "FROM:<Postmaster>", SMTP_ERR_SYNTAX, "a", 0, 0, 0, 0, "", NULL },
};

static void test_mail_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(mail_cases) / sizeof(mail_cases[0]); i++) {
		const struct mail_case *c = &mail_cases[i];
		struct smtp_path path;
		struct smtp_mail_params p;
		memset(&p, 0x55, sizeof(p));
		enum smtp_parse_err err = smtp_parse_mail(c->args, strlen(c->args), &path, &p);
		if (err != c->err)
			fail_msg("%s: err %d, want %d", c->args, err, c->err);
		if (err != SMTP_OK) {
			/* nothing half-parsed is left behind */
			assert_false(p.has_size);
			assert_false(p.has_auth);
			assert_int_equal(p.body, SMTP_BODY_NONE);
			assert_string_equal(p.envid, "");
			continue;
		}
		assert_int_equal(path.null, c->local == NULL);
		if (c->local != NULL)
			assert_string_equal(path.local, c->local);
		assert_int_equal(p.has_size, c->has_size);
		assert_true(p.size == c->size);
		assert_int_equal(p.body, c->body);
		assert_int_equal(p.ret, c->ret);
		assert_string_equal(p.envid, c->envid);
		assert_int_equal(p.has_auth, c->auth != NULL);
		if (c->auth != NULL)
			assert_string_equal(p.auth, c->auth);
	}
}

static void test_mail_envid_limits(void **state)
{
	char buf[1024];
	struct smtp_path path;
	struct smtp_mail_params p;
	(void)state;
	snprintf(buf, sizeof(buf), "FROM:<a@b> ENVID=%s", rep('e', 100));
	assert_int_equal(smtp_parse_mail(buf, strlen(buf), &path, &p), SMTP_OK);
	assert_string_equal(p.envid, rep('e', 100));
	snprintf(buf, sizeof(buf), "FROM:<a@b> ENVID=%s", rep('e', 101));
	assert_int_equal(smtp_parse_mail(buf, strlen(buf), &path, &p), SMTP_ERR_PARAM_VALUE);
	/* the limit is on the decoded form: 100 "+2B" is 300 octets on the wire */
	char *q = buf + sprintf(buf, "FROM:<a@b> ENVID=");
	for (int i = 0; i < 100; i++)
		q += sprintf(q, "+2B");
	assert_int_equal(smtp_parse_mail(buf, strlen(buf), &path, &p), SMTP_OK);
	assert_string_equal(p.envid, rep('+', 100));
	/* AUTH: 256 decoded ok, 257 not */
	snprintf(buf, sizeof(buf), "FROM:<a@b> AUTH=%s", rep('u', 256));
	assert_int_equal(smtp_parse_mail(buf, strlen(buf), &path, &p), SMTP_OK);
	snprintf(buf, sizeof(buf), "FROM:<a@b> AUTH=%s", rep('u', 257));
	assert_int_equal(smtp_parse_mail(buf, strlen(buf), &path, &p), SMTP_ERR_PARAM_VALUE);
	/* path errors come through MAIL unchanged */
	snprintf(buf, sizeof(buf), "FROM:<%s@b>", rep('l', 65));
	assert_int_equal(smtp_parse_mail(buf, strlen(buf), &path, &p), SMTP_ERR_LOCAL_LEN);
}

struct rcpt_case {
	const char *args;
	enum smtp_parse_err err;
	const char *local, *domain;
	unsigned notify;
	const char *type, *addr;
};

static const struct rcpt_case rcpt_cases[] = {
	{ "TO:<a@b>", SMTP_OK, "a", "b", 0, "", "" },
	{ "to: <a@b>", SMTP_OK, "a", "b", 0, "", "" },
	{ "TO:<Postmaster>", SMTP_OK, "Postmaster", "", 0, "", "" },
	{ "TO:<postMASTER> NOTIFY=NEVER", SMTP_OK, "postMASTER", "", SMTP_NOTIFY_NEVER, "", "" },
	{ "TO:<Postmaster@example.com>", SMTP_OK, "Postmaster", "example.com", 0, "", "" },
	{ "TO:<Postmaster", SMTP_ERR_SYNTAX, "", "", 0, "", "" },
	{ "TO:<Postmasterx>", SMTP_ERR_SYNTAX, "", "", 0, "", "" },
	{ "TO:<Postmaster>x", SMTP_ERR_SYNTAX, "", "", 0, "", "" },
	{ "TO:<>", SMTP_ERR_SYNTAX, "", "", 0, "", "" },
	{ "TO:a@b", SMTP_ERR_SYNTAX, "", "", 0, "", "" },
	{ "FROM:<a@b>", SMTP_ERR_SYNTAX, "", "", 0, "", "" },
	{ "TO:<a@b> NOTIFY=SUCCESS,FAILURE", SMTP_OK, "a", "b", SMTP_NOTIFY_SUCCESS | SMTP_NOTIFY_FAILURE, "", "" },
	{ "TO:<a@b> notify=delay", SMTP_OK, "a", "b", SMTP_NOTIFY_DELAY, "", "" },
	{ "TO:<a@b> NOTIFY=SUCCESS,FAILURE,DELAY", SMTP_OK, "a", "b", 14, "", "" },
	{ "TO:<a@b> NOTIFY=NEVER,SUCCESS", SMTP_ERR_PARAM_VALUE, "", "", 0, "", "" },
	{ "TO:<a@b> NOTIFY=DELAY,NEVER", SMTP_ERR_PARAM_VALUE, "", "", 0, "", "" },
	{ "TO:<a@b> NOTIFY=SUCCESS,", SMTP_ERR_PARAM_VALUE, "", "", 0, "", "" },
	{ "TO:<a@b> NOTIFY=,SUCCESS", SMTP_ERR_PARAM_VALUE, "", "", 0, "", "" },
	{ "TO:<a@b> NOTIFY=ALWAYS", SMTP_ERR_PARAM_VALUE, "", "", 0, "", "" },
	{ "TO:<a@b> NOTIFY", SMTP_ERR_PARAM_VALUE, "", "", 0, "", "" },
	{ "TO:<a@b> NOTIFY=NEVER NOTIFY=NEVER", SMTP_ERR_PARAM_DUP, "", "", 0, "", "" },
	{ "TO:<a@b> ORCPT=rfc822;a+40b", SMTP_OK, "a", "b", 0, "rfc822", "a@b" },
	{ "TO:<a@b> ORCPT=RFC822;x@y NOTIFY=FAILURE", SMTP_OK, "a", "b", SMTP_NOTIFY_FAILURE, "RFC822", "x@y" },
	{ "TO:<a@b> ORCPT=rfc822", SMTP_ERR_PARAM_VALUE, "", "", 0, "", "" },
	{ "TO:<a@b> ORCPT=;a", SMTP_ERR_PARAM_VALUE, "", "", 0, "", "" },
	{ "TO:<a@b> ORCPT=rfc822;", SMTP_ERR_PARAM_VALUE, "", "", 0, "", "" },
	{ "TO:<a@b> ORCPT=rfc822;a+4", SMTP_ERR_PARAM_VALUE, "", "", 0, "", "" },
	{ "TO:<a@b> ORCPT=rfc822;a+0Db", SMTP_ERR_PARAM_VALUE, "", "", 0, "", "" },
	{ "TO:<a@b> ORCPT=rf(c;a", SMTP_ERR_PARAM_VALUE, "", "", 0, "", "" },
	{ "TO:<a@b> ORCPT", SMTP_ERR_PARAM_VALUE, "", "", 0, "", "" },
	{ "TO:<a@b> ORCPT=a;b ORCPT=a;b", SMTP_ERR_PARAM_DUP, "", "", 0, "", "" },
	{ "TO:<a@b> SIZE=1", SMTP_ERR_PARAM_UNKNOWN, "", "", 0, "", "" },
	{ "TO:<a@b> BODY=7BIT", SMTP_ERR_PARAM_UNKNOWN, "", "", 0, "", "" },
	{ "TO:<a@b> NOTIFY=NEVER=1", SMTP_ERR_SYNTAX, "", "", 0, "", "" },
	{ "TO:<@x.y:a@b>", SMTP_OK, "a", "b", 0, "", "" },
};

static void test_rcpt_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(rcpt_cases) / sizeof(rcpt_cases[0]); i++) {
		const struct rcpt_case *c = &rcpt_cases[i];
		struct smtp_path path;
		struct smtp_rcpt_params p;
		memset(&p, 0x55, sizeof(p));
		enum smtp_parse_err err = smtp_parse_rcpt(c->args, strlen(c->args), &path, &p);
		if (err != c->err)
			fail_msg("%s: err %d, want %d", c->args, err, c->err);
		if (err != SMTP_OK) {
			assert_int_equal(p.notify, 0);
			assert_string_equal(p.orcpt_type, "");
			continue;
		}
		assert_false(path.null);
		assert_string_equal(path.local, c->local);
		assert_string_equal(path.domain, c->domain);
		assert_int_equal(p.notify, c->notify);
		assert_string_equal(p.orcpt_type, c->type);
		assert_string_equal(p.orcpt_addr, c->addr);
	}
}

static void test_rcpt_limits(void **state)
{
	char buf[2048];
	struct smtp_path path;
	struct smtp_rcpt_params p;
	(void)state;
	snprintf(buf, sizeof(buf), "TO:<a@b> ORCPT=%s;x", rep('t', 31));
	assert_int_equal(smtp_parse_rcpt(buf, strlen(buf), &path, &p), SMTP_OK);
	snprintf(buf, sizeof(buf), "TO:<a@b> ORCPT=%s;x", rep('t', 32));
	assert_int_equal(smtp_parse_rcpt(buf, strlen(buf), &path, &p), SMTP_ERR_PARAM_VALUE);
	snprintf(buf, sizeof(buf), "TO:<a@b> ORCPT=rfc822;%s", rep('o', 500));
	assert_int_equal(smtp_parse_rcpt(buf, strlen(buf), &path, &p), SMTP_OK);
	assert_int_equal(strlen(p.orcpt_addr), 500);
	snprintf(buf, sizeof(buf), "TO:<a@b> ORCPT=rfc822;%s", rep('o', 501));
	assert_int_equal(smtp_parse_rcpt(buf, strlen(buf), &path, &p), SMTP_ERR_PARAM_VALUE);
}

static void test_helo(void **state)
{
	static const struct { const char *s; bool ok; } cases[] = {
		{ "example.com", true },
		{ "mail-1.example.com", true },
		{ "localhost", true },
		{ "x", true },
		{ "123.example", true },
		{ "[192.0.2.1]", true },
		{ "[IPv6:::1]", true },
		{ "", false },
		{ "example.com.", false },
		{ ".example.com", false },
		{ "exa mple.com", false },
		{ "example.com ", false },
		{ "-x.com", false },
		{ "x-.com", false },
		{ "under_score.com", false },
		{ "192.0.2.1]", false },
		{ "[192.0.2.1", false },
		{ "[192.0.2.256]", false },
		{ "[192.0.2.1]x", false },
		{ "[tag:x]", false },
		{ "ex\xc3\xa9.com", false },
	};
	char dom[300];
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		if (smtp_helo_valid(cases[i].s, strlen(cases[i].s)) != cases[i].ok)
			fail_msg("helo %s: want %d", cases[i].s, cases[i].ok);
	assert_false(smtp_helo_valid("a\0b", 3));
	make_domain(dom, 255);
	assert_true(smtp_helo_valid(dom, 255));
	make_domain(dom, 256);
	assert_false(smtp_helo_valid(dom, 256));
}

static void test_xtext(void **state)
{
	static const struct { const char *in; size_t len; const char *enc; } rt[] = {
		{ "", 0, "" },
		{ "abc", 3, "abc" },
		{ "a+b=c", 5, "a+2Bb+3Dc" },
		{ "a b", 3, "a+20b" },
		{ "\x01\x7f\xff", 3, "+01+7F+FF" },
		{ "a\0b", 3, "a+00b" },
		{ "!~", 2, "!~" },
	};
	char enc[64], dec[64];
	size_t n;
	(void)state;
	for (size_t i = 0; i < sizeof(rt) / sizeof(rt[0]); i++) {
		size_t e = smtp_xtext_encode(rt[i].in, rt[i].len, enc, sizeof(enc));
		assert_int_equal(e, strlen(rt[i].enc));
		assert_string_equal(enc, rt[i].enc);
		assert_true(smtp_xtext_decode(enc, e, dec, sizeof(dec), &n));
		assert_int_equal(n, rt[i].len);
		assert_memory_equal(dec, rt[i].in, n);
		assert_int_equal(dec[n], '\0');
	}
	/* lower-case hex is accepted on input */
	assert_true(smtp_xtext_decode("+2b", 3, dec, sizeof(dec), &n));
	assert_string_equal(dec, "+");
	/* malformed */
	static const char *bad[] = { "+", "+2", "+2G", "+G2", "a=b", "a b", "\x01", "\xc3", "a+" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_false(smtp_xtext_decode(bad[i], strlen(bad[i]), dec, sizeof(dec), &n));
	/* capacity: decode needs n + 1 */
	assert_true(smtp_xtext_decode("abc", 3, dec, 4, &n));
	assert_false(smtp_xtext_decode("abc", 3, dec, 3, &n));
	assert_false(smtp_xtext_decode("", 0, dec, 0, &n));
	/* capacity: encode needs n + 1, and "+XX" is all or nothing */
	assert_int_equal(smtp_xtext_encode("a+", 2, enc, 5), 4);
	assert_int_equal(smtp_xtext_encode("a+", 2, enc, 4), 0);
	assert_string_equal(enc, "");
	assert_int_equal(smtp_xtext_encode("abc", 3, enc, 3), 0);
}

static void test_xtext_all_octets(void **state)
{
	char in[256], enc[800], dec[257];
	size_t n;
	(void)state;
	for (int i = 0; i < 256; i++)
		in[i] = (char)i;
	size_t e = smtp_xtext_encode(in, 256, enc, sizeof(enc));
	assert_true(e > 256);
	assert_true(smtp_xtext_decode(enc, e, dec, sizeof(dec), &n));
	assert_int_equal(n, 256);
	assert_memory_equal(dec, in, 256);
}

/* RFC 6531 §3.3 paths: UTF8-non-ascii in atoms, quoted strings and
 * domain labels, well-formed only; utf8 set when any is there. */
static void test_utf8_paths(void **state)
{
	static const struct { const char *in; enum smtp_parse_err err; const char *local, *domain; bool utf8; } cases[] = {
		{ "<a@b>", SMTP_OK, "a", "b", false },
		{ "<\xc3\xa9@b>", SMTP_OK, "\xc3\xa9", "b", true },
		{ "<jos\xc3\xa9.m@b>", SMTP_OK, "jos\xc3\xa9.m", "b", true },
		{ "<\xe7\x94\xa8\xe6\x88\xb7@\xe4\xbe\x8b\xe5\xad\x90.test>", SMTP_OK,
		  "\xe7\x94\xa8\xe6\x88\xb7", "\xe4\xbe\x8b\xe5\xad\x90.test", true },
		{ "<a@\xc3\xa9.com>", SMTP_OK, "a", "\xc3\xa9.com", true },
		{ "<\"\xc3\xa9 x\"@b>", SMTP_OK, "\xc3\xa9 x", "b", true },
		{ "<\xf0\x9f\x98\x80@b>", SMTP_OK, "\xf0\x9f\x98\x80", "b", true },	/* U+1F600 */
		{ "<\xf4\x8f\xbf\xbf@b>", SMTP_OK, "\xf4\x8f\xbf\xbf", "b", true },	/* U+10FFFF */
		{ "<\xed\x9f\xbf@b>", SMTP_OK, "\xed\x9f\xbf", "b", true },		/* U+D7FF */
		/* not well-formed */
		{ "<\xc3@b>", SMTP_ERR_SYNTAX, "", "", false },			/* truncated */
		{ "<\xc3(@b>", SMTP_ERR_SYNTAX, "", "", false },
		{ "<\xc0\xaf@b>", SMTP_ERR_SYNTAX, "", "", false },			/* overlong '/' */
		{ "<\xe0\x80\xaf@b>", SMTP_ERR_SYNTAX, "", "", false },		/* overlong '/' */
		{ "<\xed\xa0\x80@b>", SMTP_ERR_SYNTAX, "", "", false },		/* surrogate */
		{ "<\xf4\x90\x80\x80@b>", SMTP_ERR_SYNTAX, "", "", false },	/* past U+10FFFF */
		{ "<\xf8\x88\x80\x80\x80@b>", SMTP_ERR_SYNTAX, "", "", false },
		{ "<\x80@b>", SMTP_ERR_SYNTAX, "", "", false },
		{ "<a@b\xc3>", SMTP_ERR_SYNTAX, "", "", false },
		{ "<a@\xc3\xa9->", SMTP_ERR_SYNTAX, "", "", false },
		{ "<\"\xc3\"@b>", SMTP_ERR_SYNTAX, "", "", false },
		{ "<\"\\\xc3\xa9\"@b>", SMTP_ERR_SYNTAX, "", "", false },	/* quoted-pair is ASCII */
		{ "<@\xc3\xa9.r:a@b>", SMTP_ERR_SYNTAX, "", "", false },	/* routes stay ASCII */
	};
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct smtp_path p;
		size_t used;
		enum smtp_parse_err err = smtp_parse_path(cases[i].in, strlen(cases[i].in), false, &p, &used);
		if (err != cases[i].err)
			fail_msg("case %zu: err %d, want %d", i, err, cases[i].err);
		if (err != SMTP_OK)
			continue;
		assert_string_equal(p.local, cases[i].local);
		assert_string_equal(p.domain, cases[i].domain);
		assert_int_equal(p.utf8, cases[i].utf8);
		/* formatting keeps UTF-8 as it is and parses back to the same */
		char buf[600], again[610];
		struct smtp_path q;
		assert_true(smtp_path_format(&p, buf, sizeof(buf)) > 0);
		assert_int_equal(strchr(buf, '"') != NULL, strchr(cases[i].local, ' ') != NULL);
		snprintf(again, sizeof(again), "<%s>", buf);
		assert_int_equal(smtp_parse_path(again, strlen(again), false, &q, &used), SMTP_OK);
		assert_string_equal(q.local, p.local);
		assert_string_equal(q.domain, p.domain);
	}
	/* the octet limits count octets */
	char buf[300];
	struct smtp_path p;
	size_t used;
	snprintf(buf, sizeof(buf), "<%s@b>", "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
		 "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
		 "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9");
	assert_int_equal(smtp_parse_path(buf, strlen(buf), false, &p, &used), SMTP_ERR_LOCAL_LEN);	/* 66 octets */
	/* the HELO argument stays ASCII */
	assert_false(smtp_helo_valid("\xc3\xa9.test", 7));
	/* and the dot-string check other modules use stays ASCII */
	assert_false(smtp_dot_string_valid("\xc3\xa9", 2));
}

static void test_utf8_valid(void **state)
{
	bool hi;
	(void)state;
	assert_true(smtp_utf8_valid("abc", 3, &hi));
	assert_false(hi);
	assert_true(smtp_utf8_valid("a\xc3\xa9", 3, &hi));
	assert_true(hi);
	assert_true(smtp_utf8_valid("", 0, NULL));
	assert_false(smtp_utf8_valid("\xc3", 1, NULL));
	assert_false(smtp_utf8_valid("\xc3\xa9", 1, NULL));	/* len bounds the scan */
	assert_false(smtp_utf8_valid("\xc1\xbf", 2, NULL));
	assert_false(smtp_utf8_valid("\xef\xbf", 2, NULL));
	assert_true(smtp_utf8_valid("\xef\xbf\xbf", 3, NULL));
}

static void test_mail_smtputf8(void **state)
{
	struct smtp_path path;
	struct smtp_mail_params p;
	(void)state;
	assert_int_equal(smtp_parse_mail("FROM:<a@b> SMTPUTF8", 19, &path, &p), SMTP_OK);
	assert_true(p.smtputf8);
	assert_false(path.utf8);
	const char *u = "FROM:<\xc3\xa9@b> smtputf8 SIZE=10";
	assert_int_equal(smtp_parse_mail(u, strlen(u), &path, &p), SMTP_OK);
	assert_true(p.smtputf8 && path.utf8 && p.has_size);
	assert_int_equal(smtp_parse_mail("FROM:<a@b>", 10, &path, &p), SMTP_OK);
	assert_false(p.smtputf8);
	/* not a RCPT parameter */
	struct smtp_rcpt_params rp;
	assert_int_equal(smtp_parse_rcpt("TO:<a@b> SMTPUTF8", 17, &path, &rp), SMTP_ERR_PARAM_UNKNOWN);
}

static void test_bdat(void **state)
{
	static const struct { const char *args; bool ok; uint64_t size; bool last; } cases[] = {
		{ "0", true, 0, false },
		{ "0 LAST", true, 0, true },
		{ "1000", true, 1000, false },
		{ "1000 LAST", true, 1000, true },
		{ "12 last", true, 12, true },
		{ "007 Last", true, 7, true },
		{ "4611686018427387904", true, UINT64_C(1) << 62, false },
		{ "4611686018427387905", false, 0, false },
		{ "99999999999999999999999", false, 0, false },
		{ "", false, 0, false },
		{ "LAST", false, 0, false },
		{ " 10", false, 0, false },
		{ "10 ", false, 0, false },
		{ "10  LAST", false, 0, false },
		{ "10 LAST ", false, 0, false },
		{ "10 LASTX", false, 0, false },
		{ "10 FIRST", false, 0, false },
		{ "-1", false, 0, false },
		{ "+1", false, 0, false },
		{ "1x", false, 0, false },
		{ "0x10", false, 0, false },
	};
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint64_t size = 99;
		bool last = true;
		if (smtp_parse_bdat(cases[i].args, strlen(cases[i].args), &size, &last) != cases[i].ok)
			fail_msg("%s: want %d", cases[i].args, cases[i].ok);
		assert_true(size == cases[i].size);
		assert_int_equal(last, cases[i].last);
	}
	/* len bounds the scan */
	uint64_t size;
	bool last;
	assert_true(smtp_parse_bdat("12 LAST", 2, &size, &last));
	assert_true(size == 12 && !last);
}

static void test_http_request(void **state)
{
	static const struct { const char *line; bool http; } cases[] = {
		{ "GET / HTTP/1.1", true },
		{ "GET /index.html HTTP/1.0", true },
		{ "POST /form HTTP/1.1", true },
		{ "PUT /x HTTP/2", true },
		{ "HEAD / HTTP/1.1", true },
		{ "CONNECT mx.example:25 HTTP/1.1", true },
		{ "OPTIONS * HTTP/1.1", true },
		{ "DELETE /a HTTP/1.1", true },
		{ "get / http/1.1", true },
		{ "Host: mx.example.test", true },
		{ "host:x", true },
		{ "HOST: x", true },
		/* SMTP, and near misses */
		{ "EHLO client.test", false },
		{ "MAIL FROM:<a@b>", false },
		{ "HELP GET", false },
		{ "GET", false },
		{ "GET /", false },
		{ "GET / HTTP", false },
		{ "GET  / HTTP/1.1", false },
		{ "GETX / HTTP/1.1", false },
		{ "POST / SMTP/1.1", false },
		{ "Hostname: x", false },
		{ "Host", false },
		{ "", false },
	};
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		if (smtp_is_http_request(cases[i].line, strlen(cases[i].line)) != cases[i].http)
			fail_msg("%s: want %d", cases[i].line, cases[i].http);
	/* len bounds the scan */
	assert_false(smtp_is_http_request("GET / HTTP/1.1", 9));
	assert_false(smtp_is_http_request("Host:", 4));
}

static void test_strerror(void **state)
{
	(void)state;
	for (int e = SMTP_OK; e <= SMTP_ERR_PARAM_DUP; e++)
		assert_string_not_equal(smtp_parse_strerror((enum smtp_parse_err)e), "unknown error");
	assert_string_equal(smtp_parse_strerror((enum smtp_parse_err)99), "unknown error");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_split),
		cmocka_unit_test(test_path_table),
		cmocka_unit_test(test_path_nul),
		cmocka_unit_test(test_path_limits),
		cmocka_unit_test(test_format),
		cmocka_unit_test(test_format_cap),
		cmocka_unit_test(test_mail_table),
		cmocka_unit_test(test_mail_envid_limits),
		cmocka_unit_test(test_rcpt_table),
		cmocka_unit_test(test_rcpt_limits),
		cmocka_unit_test(test_helo),
		cmocka_unit_test(test_xtext),
		cmocka_unit_test(test_xtext_all_octets),
		cmocka_unit_test(test_utf8_paths),
		cmocka_unit_test(test_utf8_valid),
		cmocka_unit_test(test_mail_smtputf8),
		cmocka_unit_test(test_bdat),
		cmocka_unit_test(test_http_request),
		cmocka_unit_test(test_strerror),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
