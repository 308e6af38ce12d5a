/*
 * test_header.c - unit tests for proto/header: end of the header section,
 * Received: counting, Date/Message-ID/From presence, folding, 8-bit
 * detection, split-independence, and header_unfold.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "proto/header.h"

struct hdr_case {
	const char *in;
	bool in_headers;
	unsigned received;
	bool date, msgid, from, eight;
};

static const struct hdr_case cases[] = {
	{ "", true, 0, 0, 0, 0, 0 },
	{ "From: a@b\nDate: x\nMessage-ID: <1@b>\n\nbody\n", false, 0, 1, 1, 1, 0 },
	{ "Received: from a\nReceived: from b\nReceived: from c\n\n", false, 3, 0, 0, 0, 0 },
	{ "received: x\nRECEIVED: y\n\n", false, 2, 0, 0, 0, 0 },
	{ "Received : obsolete space\nDate\t: x\n\n", false, 1, 1, 0, 0, 0 },
	/* folded fields: the continuation is not a new field */
	{ "Received: from a\n\tby b\n  with SMTP\nReceived: from c\n\n", false, 2, 0, 0, 0, 0 },
	{ "Subject: hi\n Received: folded, not a field\n\n", false, 0, 0, 0, 0, 0 },
	/* body fields are not header fields */
	{ "Subject: x\n\nReceived: y\nFrom: z\nDate: q\n", false, 0, 0, 0, 0, 0 },
	/* a line that is not a field ends the header section */
	{ "Received: a\nnot a field\nReceived: b\n", false, 1, 0, 0, 0, 0 },
	{ "From a@b Sat Jan 1\nReceived: x\n", false, 0, 0, 0, 0, 0 },
	{ ": no name\nReceived: x\n", false, 0, 0, 0, 0, 0 },
	{ " starts folded\nReceived: x\n", false, 0, 0, 0, 0, 0 },
	{ "\nReceived: x\n", false, 0, 0, 0, 0, 0 },
	{ "Received: a\n\r\nReceived: b\n", false, 1, 0, 0, 0, 0 },
	{ "X-Name-Without-Colon\nDate: x\n", false, 0, 0, 0, 0, 0 },
	{ "Field name: x\nDate: x\n", false, 0, 0, 0, 0, 0 },
	/* names that only start like the known ones */
	{ "Received-SPF: pass\nDated: x\nFromage: y\nMessage-IDs: z\n\n", false, 0, 0, 0, 0, 0 },
	{ "Receive: x\nFro: y\n\n", false, 0, 0, 0, 0, 0 },
	{ "Message-Id: <a@b>\n", true, 0, 0, 1, 0, 0 },
	/* a long name is not remembered past 32 octets and matches nothing */
	{ "Received-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx: a\nReceived: b\n\n", false, 1, 0, 0, 0, 0 },
	/* 8-bit anywhere */
	{ "Subject: caf\xc3\xa9\n\n", false, 0, 0, 0, 0, 1 },
	{ "Subject: x\n\nbody \xff\n", false, 0, 0, 0, 0, 1 },
	/* in the body, at every offset of a word (scanned 8 octets at a time) */
	{ "S: x\n\n\x80", false, 0, 0, 0, 0, 1 },
	{ "S: x\n\n0123456\x80", false, 0, 0, 0, 0, 1 },
	{ "S: x\n\n01234567\x80", false, 0, 0, 0, 0, 1 },
	{ "S: x\n\n0123456789abcdef0123\x80yz", false, 0, 0, 0, 0, 1 },
	{ "S: x\n\n0123456789abcdef0123\x7fyz\x01", false, 0, 0, 0, 0, 0 },
	{ "Subj\xc3\xa9\x63t: x\nDate: y\n", false, 0, 0, 0, 0, 1 },
	/* still in headers when the input stops mid-section */
	{ "Received: a\nReceived: b", true, 2, 0, 0, 0, 0 },
	{ "Received", true, 0, 0, 0, 0, 0 },
};

static void scan(const char *in, size_t len, size_t chunk, struct header_scan *h)
{
	header_scan_init(h);
	for (size_t pos = 0; pos < len; pos += chunk)
		header_scan_feed(h, in + pos, len - pos < chunk ? len - pos : chunk);
}

static void test_scan_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct hdr_case *c = &cases[i];
		size_t len = strlen(c->in);
		for (size_t chunk = 1; chunk <= len + 1; chunk++) {
			struct header_scan h;
			scan(c->in, len, chunk, &h);
			if (h.in_headers != c->in_headers || h.received != c->received ||
			    h.has_date != c->date || h.has_message_id != c->msgid ||
			    h.has_from != c->from || h.eight_bit != c->eight)
				fail_msg("case %zu chunk %zu: in=%d rcv=%u date=%d id=%d from=%d 8=%d",
					 i, chunk, h.in_headers, h.received, h.has_date,
					 h.has_message_id, h.has_from, h.eight_bit);
		}
	}
}

static void test_scan_nul(void **state)
{
	struct header_scan h;
	(void)state;
	header_scan_init(&h);
	header_scan_feed(&h, "Received: a\0b\nReceived: c\n\n", 27);
	assert_int_equal(h.received, 2);
	assert_false(h.in_headers);
	header_scan_init(&h);
	header_scan_feed(&h, "Rec\0eived: a\n", 13);
	assert_false(h.in_headers);
	assert_int_equal(h.received, 0);
}

static void test_scan_many_received(void **state)
{
	struct header_scan h;
	(void)state;
	header_scan_init(&h);
	for (int i = 0; i < 500; i++)
		header_scan_feed(&h, "Received: from x by y\n", 22);
	assert_int_equal(h.received, 500);
	assert_true(h.in_headers);
	header_scan_feed(&h, "\n", 1);
	header_scan_feed(&h, "Received: z\n", 12);
	assert_int_equal(h.received, 500);
}

/* 8-bit octets in the header section are told apart from those in the
 * body (RFC 6532: they need SMTPUTF8). */
static void test_scan_eight_bit_headers(void **state)
{
	static const struct { const char *msg; bool any, hdr, utf8; } cases[] = {
		{ "Subject: x\n\nbody\n", false, false, false },
		{ "Subject: x\n\nb\xc3\xa9\n", true, false, false },
		{ "Subject: \xc3\xa9\n\nbody\n", true, true, true },
		{ "Subject: x\n \xc3\xa9\n\nbody\n", true, true, true },
		{ "\xc3\xa9: x\n\nbody\n", true, true, false },	/* not a field: the header ends there */
		{ "Subject: \xf0\x9f\x98\x80 \xe4\xbe\x8b\n\n\xff\n", true, true, true },
		/* legacy 8-bit, not UTF-8 */
		{ "Subject: caf\xe9\n\nbody\n", true, true, false },
		{ "Subject: \xc3\xa9 caf\xe9\n\nbody\n", true, true, false },
		{ "Subject: \xc3\n\nbody\n", true, true, false },		/* cut short by the line end */
		{ "Subject: \xe0\x80\xaf\n\nbody\n", true, true, false },	/* overlong */
		{ "Subject: \xed\xa0\x80\n\nbody\n", true, true, false },	/* surrogate */
	};
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct header_scan h;
		header_scan_init(&h);
		for (const char *p = cases[i].msg; *p; p++)
			header_scan_feed(&h, p, 1);
		assert_int_equal(h.eight_bit, cases[i].any);
		assert_int_equal(h.eight_bit_headers, cases[i].hdr);
		assert_int_equal(header_scan_utf8(&h), cases[i].utf8);
	}
}

static void test_unfold(void **state)
{
	static const struct { const char *in, *out; } cases[] = {
		{ "", "" },
		{ "plain", "plain" },
		{ "a\r\n b", "a b" },
		{ "a\n\tb", "a\tb" },
		{ "a\r\n  b\n c", "a  b c" },
		{ "a\r\nb", "a\r\nb" },
		{ "a\nb", "a\nb" },
		{ "a\r\n", "a\r\n" },
		{ "a\n", "a\n" },
		{ "a\r \n b", "a\r  b" },
		{ "a\r\n\r\n b", "a\r\n b" },
	};
	char out[64];
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		size_t n = header_unfold(cases[i].in, strlen(cases[i].in), out, sizeof(out));
		assert_int_equal(n, strlen(cases[i].out));
		assert_string_equal(out, cases[i].out);
	}
}

static void test_unfold_cap(void **state)
{
	char out[8];
	(void)state;
	/* "a\r\n b" unfolds to "a b": 3 octets, needs cap 4 */
	assert_int_equal(header_unfold("a\r\n b", 5, out, 4), 3);
	assert_string_equal(out, "a b");
	memset(out, 'X', sizeof(out));
	assert_int_equal(header_unfold("a\r\n b", 5, out, 3), 0);
	assert_int_equal(out[0], '\0');
	assert_int_equal(header_unfold("a", 1, out, 0), 0);
	assert_int_equal(header_unfold("", 0, out, 1), 0);
	assert_string_equal(out, "");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_scan_table),
		cmocka_unit_test(test_scan_nul),
		cmocka_unit_test(test_scan_many_received),
		cmocka_unit_test(test_scan_eight_bit_headers),
		cmocka_unit_test(test_unfold),
		cmocka_unit_test(test_unfold_cap),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
