/*
 * test_dsn.c - proto/dsn.c: the generated notice is parsed back and its
 * structure checked: multipart/report boundaries (RFC 6522), required
 * per-message and per-recipient fields (RFC 3464 §2.2, §2.3), RFC 5322
 * dates, and peer text that cannot break out of its field.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "proto/dsn.h"

static const char original[] = "From: a@x.test\nSubject: hi\n\nbody\n";
static const char original_hdrs[] = "From: a@x.test\nSubject: hi\n";

/* prefix + original (or its headers) + suffix. */
static char *build(const struct dsn_report *r)
{
	size_t lp, ls;
	char *p = dsn_prefix(r, &lp), *s, *all;

	assert_non_null(p);
	assert_int_equal(lp, strlen(p));
	s = dsn_suffix(r, &ls);
	all = xasprintf("%s%s%s", p, dsn_returns_headers_only(r) ? original_hdrs : original, s);
	free(p);
	free(s);
	return all;
}

/* Value of header "name" within [from, to), or NULL; copied to out. */
static const char *field(const char *from, const char *to, const char *name, char *out, size_t len)
{
	size_t nl = strlen(name);
	const char *p = from;

	while (p < to) {
		const char *e = memchr(p, '\n', (size_t)(to - p));
		if (e == NULL)
			e = to;
		if ((size_t)(e - p) > nl + 1 && strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
			const char *v = p + nl + 1;
			while (*v == ' ')
				v++;
			snprintf(out, len, "%.*s", (int)(e - v), v);
			return out;
		}
		p = e + 1;
	}
	return NULL;
}

static bool is_status(const char *s)
{
	unsigned a, b, c;
	char tail;

	return sscanf(s, "%1u.%3u.%3u%c", &a, &b, &c, &tail) == 3 && (a == 2 || a == 4 || a == 5);
}

static bool is_date(const char *s)
{
	char wd[4], mon[4];
	int d, y, h, m, sec;
	char zone[8];

	return sscanf(s, "%3s, %d %3s %4d %2d:%2d:%2d %5s", wd, &d, mon, &y, &h, &m, &sec, zone) == 8 &&
	       strcmp(zone, "+0000") == 0 && d >= 1 && d <= 31;
}

/* Checks the whole structure; returns the number of recipient groups. */
static size_t check_structure(const char *msg, const struct dsn_report *r)
{
	char v[1024], bnd[128], delim[140], close_[140];
	const char *body, *p, *part[3], *end;
	size_t i, groups = 0;

	assert_null(strchr(msg, '\r'));
	body = strstr(msg, "\n\n");
	assert_non_null(body);
	assert_non_null(field(msg, body, "From", v, sizeof(v)));
	assert_non_null(strstr(v, "<MAILER-DAEMON@"));
	assert_non_null(field(msg, body, "To", v, sizeof(v)));
	assert_non_null(field(msg, body, "Subject", v, sizeof(v)));
	assert_non_null(field(msg, body, "Date", v, sizeof(v)));
	assert_true(is_date(v));
	assert_non_null(field(msg, body, "Message-ID", v, sizeof(v)));
	assert_true(v[0] == '<' && strchr(v, '@') && v[strlen(v) - 1] == '>');
	assert_non_null(field(msg, body, "MIME-Version", v, sizeof(v)));
	assert_non_null(field(msg, body, "Content-Type", v, sizeof(v)));
	assert_non_null(strstr(v, "multipart/report; report-type=delivery-status;"));
	p = strstr(msg, "boundary=\"");
	assert_non_null(p);
	snprintf(bnd, sizeof(bnd), "%.*s", (int)(strchr(p + 10, '"') - p - 10), p + 10);
	snprintf(delim, sizeof(delim), "\n--%s\n", bnd);
	snprintf(close_, sizeof(close_), "\n--%s--\n", bnd);
	/* Exactly three parts, then the close delimiter as the very end. */
	p = body;
	for (i = 0; i < 3; i++) {
		p = strstr(p, delim);
		assert_non_null(p);
		part[i] = p + strlen(delim);
		p = part[i];
	}
	assert_null(strstr(p, delim));
	end = strstr(msg, close_);
	assert_non_null(end);
	assert_string_equal(end, close_);

	assert_non_null(field(part[0], part[1], "Content-Type", v, sizeof(v)));
	assert_string_equal(v, "text/plain; charset=us-ascii");
	assert_non_null(field(part[2], end, "Content-Type", v, sizeof(v)));
	assert_string_equal(v, dsn_returns_headers_only(r) ? "text/rfc822-headers" : "message/rfc822");
	assert_non_null(strstr(part[2], dsn_returns_headers_only(r) ? "\n\nFrom: a@x.test\nSubject: hi\n\n--" :
			       "\n\nFrom: a@x.test\nSubject: hi\n\nbody\n\n--"));

	/* Part 2: per-message group, then one group per recipient. */
	assert_non_null(field(part[1], part[2], "Content-Type", v, sizeof(v)));
	assert_string_equal(v, "message/delivery-status");
	p = strstr(part[1], "\n\n") + 2;
	end = part[2] - strlen(delim);
	while (p < end) {
		const char *ge = strstr(p, "\n\n");
		if (ge == NULL || ge > end)
			ge = end;
		if (groups == 0) {
			assert_non_null(field(p, ge, "Reporting-MTA", v, sizeof(v)));
			assert_int_equal(strncmp(v, "dns; ", 5), 0);
			assert_non_null(field(p, ge, "Arrival-Date", v, sizeof(v)));
			assert_true(is_date(v));
			assert_true((field(p, ge, "Original-Envelope-Id", v, sizeof(v)) != NULL) ==
				    (r->envid != NULL));
		} else {
			const struct dsn_rcpt *rc = &r->rcpts[groups - 1];

			assert_non_null(field(p, ge, "Final-Recipient", v, sizeof(v)));
			assert_int_equal(strncmp(v, "rfc822; ", 8), 0);
			assert_non_null(field(p, ge, "Action", v, sizeof(v)));
			assert_string_equal(v, dsn_action_str(rc->action));
			assert_non_null(field(p, ge, "Status", v, sizeof(v)));
			assert_true(is_status(v));
			assert_true((field(p, ge, "Original-Recipient", v, sizeof(v)) != NULL) ==
				    (rc->orcpt != NULL));
			assert_true((field(p, ge, "Will-Retry-Until", v, sizeof(v)) != NULL) ==
				    (rc->action == DSN_DELAYED && rc->retry_until != 0));
			assert_true((field(p, ge, "Remote-MTA", v, sizeof(v)) != NULL) ==
				    (rc->remote_mta != NULL));
			assert_true((field(p, ge, "Diagnostic-Code", v, sizeof(v)) != NULL) ==
				    (rc->diagnostic != NULL));
			if (rc->diagnostic)
				assert_int_equal(strncmp(v, "smtp; ", 6), 0);
		}
		groups++;
		p = ge + 2;
	}
	assert_int_equal(groups, r->nrcpts + 1);
	return groups - 1;
}

static struct dsn_rcpt rcpts[] = {
	{ "rfc822;Bob@y.test", "bob@y.test", DSN_FAILED, "5.1.1", "mx.y.test",
	  "550-5.1.1 no\n550 5.1.1 such user", 1700000000, 0 },
	{ NULL, "carol@y.test", DSN_DELAYED, "4.4.1", NULL, NULL, 1700000100, 1700400000 },
	{ NULL, "dave@y.test", DSN_DELIVERED, "2.0.0", "mx.y.test", "250 2.0.0 ok", 1700000100, 0 },
	{ NULL, "erin@y.test", DSN_RELAYED, "2.0.0", NULL, NULL, 0, 0 },
	{ NULL, "fay@y.test", DSN_DELAYED, "4.4.7", NULL, NULL, 0, 0 },
};

struct gen_case {
	size_t first, n;
	enum dsn_ret ret;
	const char *envid;
	bool eightbit;
	const char *subject;
};

static const struct gen_case gen_cases[] = {
	{ 0, 5, DSN_RET_DEFAULT, "ENV1", false, "Undelivered Mail Returned to Sender" },
	{ 0, 1, DSN_RET_FULL, NULL, true, "Undelivered Mail Returned to Sender" },
	{ 1, 1, DSN_RET_HDRS, NULL, false, "Delayed Mail (still being retried)" },
	{ 1, 3, DSN_RET_HDRS, "e", true, "Delayed Mail (still being retried)" },
	{ 2, 2, DSN_RET_DEFAULT, NULL, false, "Successful Mail Delivery Report" },
	{ 4, 1, DSN_RET_FULL, NULL, false, "Delayed Mail (still being retried)" },
};

static void test_generate_table(void **state)
{
	size_t i;

	for (i = 0; i < ARRAY_LEN(gen_cases); i++) {
		const struct gen_case *c = &gen_cases[i];
		struct dsn_report r = { "mx.tern.test", "alice@tern.test", "Q1.x-y_z", c->envid,
					1699990000, 1700000200, c->ret, c->eightbit,
					rcpts + c->first, c->n };
		char *msg = build(&r), v[256];

		assert_int_equal(check_structure(msg, &r), c->n);
		assert_non_null(field(msg, strstr(msg, "\n\n"), "Subject", v, sizeof(v)));
		assert_string_equal(v, c->subject);
		assert_true((strstr(msg, "Content-Transfer-Encoding: 8bit") != NULL) == c->eightbit);
		assert_non_null(strstr(msg, "\nTo: <alice@tern.test>\n"));
		assert_non_null(strstr(msg, "\nDate: Tue, 14 Nov 2023 22:16:40 +0000\n"));
		free(msg);
	}
}

static void test_bad_reports(void **state)
{
	struct dsn_rcpt rc = { NULL, "b@y.test", DSN_FAILED, "5.1.1", NULL, NULL, 0, 0 };
	struct dsn_report ok = { "h", "s@x", "u", NULL, 0, 0, DSN_RET_DEFAULT, false, &rc, 1 };
	static const char *const bad_status[] = {
		"5.1", "6.1.1", "1.1.1", "5.1.1.1", "5.1234.1", "5.1.1234", "5..1", "x", "",
		"5.1.", ".5.1.1", "51.1.1", "5.1.1 ",
	};
	static const char *const good_status[] = { "2.0.0", "4.123.456", "5.0.1" };
	static const char *const bad_unique[] = {
		"", "a b", "a\nb", "a\"b", "a/b",
		"12345678901234567890123456789012345678901234567890123456789012345",
	};
	struct dsn_report r;
	size_t i, len = 77;
	char *p;

	p = dsn_prefix(&ok, &len);
	assert_non_null(p);
	free(p);
	for (i = 0; i < ARRAY_LEN(bad_status); i++) {
		rc.status = bad_status[i];
		if (dsn_prefix(&ok, &len) != NULL)
			fail_msg("status '%s' accepted", bad_status[i]);
		assert_int_equal(len, 0);
	}
	for (i = 0; i < ARRAY_LEN(good_status); i++) {
		rc.status = good_status[i];
		p = dsn_prefix(&ok, &len);
		assert_non_null(p);
		free(p);
	}
	rc.status = "5.1.1";
	for (i = 0; i < ARRAY_LEN(bad_unique); i++) {
		r = ok;
		r.unique = bad_unique[i];
		assert_null(dsn_prefix(&r, &len));
	}
	r = ok;
	r.unique = "1234567890123456789012345678901234567890123456789012345678901234";
	p = dsn_prefix(&r, &len);	/* 64: the bound itself is fine */
	assert_non_null(p);
	free(p);
	r = ok, r.unique = NULL;
	assert_null(dsn_prefix(&r, &len));
	r = ok, r.hostname = NULL;
	assert_null(dsn_prefix(&r, &len));
	r = ok, r.sender = NULL;
	assert_null(dsn_prefix(&r, &len));
	r = ok, r.nrcpts = 0;
	assert_null(dsn_prefix(&r, &len));
	r = ok, r.rcpts = NULL;
	assert_null(dsn_prefix(&r, &len));
	r = ok, r.nrcpts = DSN_RCPTS_MAX + 1;
	assert_null(dsn_prefix(&r, &len));
	rc.address = NULL;
	assert_null(dsn_prefix(&ok, &len));
	rc.address = "b@y.test";
	rc.action = (enum dsn_action)9;
	assert_null(dsn_prefix(&ok, &len));
}

/* Hostile text stays inside its field: no new header line, no boundary,
 * no control or 8-bit byte, clipped at DSN_FIELD_MAX. */
static void test_peer_text_is_safe(void **state)
{
	char diag[2048], *msg;
	struct dsn_rcpt rc = { "rfc822;x\nAction: delivered", "b@y.test\r\nBcc: evil@z",
			       DSN_FAILED, "5.1.1", "mx\n\n--tern-dsn-u--", diag, 0, 0 };
	struct dsn_report r = { "h.test", "s@x\nSubject: spoof", "u", "E\001\377", 0, 0,
				DSN_RET_DEFAULT, false, &rc, 1 };
	const char *p, *eol;
	size_t i;

	memset(diag, 'd', sizeof(diag));
	memcpy(diag, "550 \xc3\xa9\t\x7f", 8);
	diag[DSN_FIELD_MAX + 1] = '\0';
	msg = build(&r);
	assert_int_equal(check_structure(msg, &r), 1);
	assert_null(strstr(msg, "\nBcc:"));
	assert_null(strstr(msg, "\nAction: delivered"));
	assert_null(strstr(msg, "\nSubject: spoof"));
	for (i = 0; msg[i]; i++) {
		unsigned char c = (unsigned char)msg[i];
		assert_true(c == '\n' || c == '\t' || (c >= 0x20 && c < 0x7f));
	}
	p = strstr(msg, "\nDiagnostic-Code: smtp; 550 ?? ?d");
	assert_non_null(p);
	eol = strchr(p + 1, '\n');
	assert_int_equal((size_t)(eol - p - 1), strlen("Diagnostic-Code: smtp; ") + DSN_FIELD_MAX);
	free(msg);

	diag[DSN_FIELD_MAX] = '\0';	/* one less: nothing clipped */
	msg = build(&r);
	p = strstr(msg, "\nDiagnostic-Code: ");
	eol = strchr(p + 1, '\n');
	assert_int_equal((size_t)(eol - p - 1), strlen("Diagnostic-Code: smtp; ") + DSN_FIELD_MAX);
	diag[DSN_FIELD_MAX - 1] = '\0';
	free(msg);
	msg = build(&r);
	p = strstr(msg, "\nDiagnostic-Code: ");
	eol = strchr(p + 1, '\n');
	assert_int_equal((size_t)(eol - p - 1), strlen("Diagnostic-Code: smtp; ") + DSN_FIELD_MAX - 1);
	free(msg);
}

static void test_dates(void **state)
{
	char d[64];

	dsn_format_date(0, d, sizeof(d));
	assert_string_equal(d, "Thu, 1 Jan 1970 00:00:00 +0000");
	dsn_format_date(951782400, d, sizeof(d));	/* leap day */
	assert_string_equal(d, "Tue, 29 Feb 2000 00:00:00 +0000");
	dsn_format_date(1700000000, d, sizeof(d));
	assert_string_equal(d, "Tue, 14 Nov 2023 22:13:20 +0000");
	dsn_format_date(INT64_MAX, d, sizeof(d));	/* out of range: epoch */
	assert_string_equal(d, "Thu, 1 Jan 1970 00:00:00 +0000");
	assert_string_equal(dsn_action_str(DSN_RELAYED), "relayed");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_generate_table),
		cmocka_unit_test(test_bad_reports),
		cmocka_unit_test(test_peer_text_is_safe),
		cmocka_unit_test(test_dates),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
