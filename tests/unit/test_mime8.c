/*
 * test_mime8.c - unit tests for proto/mime8.c (RFC 6152 §3 downgrade,
 * RFC 2045 §6.7 quoted-printable) and proto/smtp_dot.c (RFC 5321 §4.5.2).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/mime8.h"
#include "proto/smtp_dot.h"

struct hdr_case {
	const char *in;
	enum mime8_verdict want;
	const char *hdr;		/* rewritten header when OK */
	size_t body_off;
};

static const struct hdr_case hdr_cases[] = {
	{ "Subject: x\n\nbody\n", MIME8_OK,
	  "Subject: x\nMIME-Version: 1.0\nContent-Transfer-Encoding: quoted-printable\n\n", 12 },
	{ "MIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\nb\n",
	  MIME8_OK, "MIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\n"
	  "Content-Transfer-Encoding: quoted-printable\n\n", 91 },
	{ "content-transfer-encoding:\n  8BIT\nX: y\n\n", MIME8_OK,
	  "X: y\nMIME-Version: 1.0\nContent-Transfer-Encoding: quoted-printable\n\n", 40 },
	{ "\nbody\n", MIME8_OK, "MIME-Version: 1.0\nContent-Transfer-Encoding: quoted-printable\n\n", 1 },
	{ "Content-Type: multipart/mixed; boundary=b\n\n", MIME8_MULTIPART, NULL, 0 },
	{ "Content-Type: Message/rfc822\n\n", MIME8_MULTIPART, NULL, 0 },
	{ "Content-Type: application/octet-stream\n\n", MIME8_NOT_TEXT, NULL, 0 },
	{ "Content-Transfer-Encoding: base64\n\n", MIME8_ENCODING, NULL, 0 },
	{ "Content-Transfer-Encoding: binary\n\n", MIME8_ENCODING, NULL, 0 },
	{ "Subject: caf\xc3\xa9\n\n", MIME8_HEADER_8BIT, NULL, 0 },
	{ "Subject: x\n", MIME8_NO_END, NULL, 0 },
	{ "Subject: x", MIME8_NO_END, NULL, 0 },
	{ "", MIME8_NO_END, NULL, 0 },
	{ "Subject: x\n continued\n", MIME8_NO_END, NULL, 0 },
};

static void test_header(void **state)
{
	for (size_t i = 0; i < sizeof(hdr_cases) / sizeof(hdr_cases[0]); i++) {
		const struct hdr_case *c = &hdr_cases[i];
		char *hdr = (char *)1;
		size_t len = 99, off = 99;
		enum mime8_verdict v = mime8_header(c->in, strlen(c->in), &hdr, &len, &off);

		if (v != c->want)
			fail_msg("case %zu: got %s", i, mime8_verdict_str(v));
		if (c->want == MIME8_OK) {
			assert_non_null(hdr);
			assert_int_equal(len, strlen(c->hdr));
			assert_memory_equal(hdr, c->hdr, len);
			assert_int_equal(off, c->body_off);
			free(hdr);
		} else {
			assert_null(hdr);
			assert_int_equal(len, 0);
		}
	}
}

struct qp_case {
	const char *in;
	const char *out;
};

static const struct qp_case qp_cases[] = {
	{ "abc\n", "abc\n" },
	{ "caf\xc3\xa9\n", "caf=C3=A9\n" },
	{ "a=b\n", "a=3Db\n" },
	{ "trail \n", "trail=20\n" },
	{ "tab\t\n", "tab=09\n" },
	{ "mid space ok\n", "mid space ok\n" },
	{ "end ", "end=20" },
	{ "\x01\x7f\n", "=01=7F\n" },
	{ "", "" },
	/* 75 characters fit; the 76th needs a soft break. */
	{ "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n",
	  "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n" },
	{ "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n",
	  "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa=\na\n" },
	{ "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\xff\n",
	  "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa=\n=FF\n" },
};

/* Every case fed whole and byte by byte: the state carries over. */
/* Content-Transfer-Encoding: 8bit declares 8-bit content (the last such
 * field counts, folded values and case too); a header section that does
 * not end declares nothing. */
static void test_declares_8bit(void **state)
{
	static const struct {
		const char *in;
		bool want;
	} cases[] = {
		{ "Subject: x\nContent-Transfer-Encoding: 8bit\n\nbody", true },
		{ "Content-Transfer-Encoding:\n  8BIT (comment)\nSubject: x\n\n", true },
		{ "Content-Transfer-Encoding: 7bit\n\n", false },
		{ "Content-Transfer-Encoding: quoted-printable\n\n", false },
		{ "Subject: x\n\n", false },
		{ "X-Content-Transfer-Encoding: 8bit\n\n", false },
		{ "Content-Transfer-Encoding: 8bitx\n\n", false },
		{ "Content-Transfer-Encoding: 8bit\n", false },   /* no end */
		{ "Content-Transfer-Encoding: 8bit\nContent-Transfer-Encoding: 7bit\n\n", false },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		print_message("case %zu\n", i);
		assert_int_equal(mime8_declares_8bit(cases[i].in, strlen(cases[i].in)), cases[i].want);
	}
}

static void test_qp(void **state)
{
	for (size_t i = 0; i < sizeof(qp_cases) / sizeof(qp_cases[0]); i++) {
		const struct qp_case *c = &qp_cases[i];
		size_t n = strlen(c->in);
		char *out = malloc(MIME8_QP_OUT_MAX(n) + MIME8_QP_FINISH_MAX);
		struct mime8_qp q;
		size_t o;

		mime8_qp_init(&q);
		o = mime8_qp_encode(&q, c->in, n, out);
		o += mime8_qp_finish(&q, out + o);
		if (o != strlen(c->out) || memcmp(out, c->out, o) != 0)
			fail_msg("case %zu whole: got %.*s", i, (int)o, out);
		mime8_qp_init(&q);
		o = 0;
		for (size_t k = 0; k < n; k++)
			o += mime8_qp_encode(&q, c->in + k, 1, out + o);
		o += mime8_qp_finish(&q, out + o);
		if (o != strlen(c->out) || memcmp(out, c->out, o) != 0)
			fail_msg("case %zu bytewise: got %.*s", i, (int)o, out);
		free(out);
	}
}

/* No encoded line ever passes 76 characters, whatever the input. */
static void test_qp_line_bound(void **state)
{
	char in[4096], out[MIME8_QP_OUT_MAX(4096) + MIME8_QP_FINISH_MAX];
	struct mime8_qp q;
	size_t o, col = 0;

	for (size_t i = 0; i < sizeof(in); i++)
		in[i] = (char)(i * 37 % 256 == '\n' ? 'x' : i * 37 % 256);
	mime8_qp_init(&q);
	o = mime8_qp_encode(&q, in, sizeof(in), out);
	o += mime8_qp_finish(&q, out + o);
	for (size_t i = 0; i < o; i++) {
		assert_true((unsigned char)out[i] < 0x80);
		col = out[i] == '\n' ? 0 : col + 1;
		assert_true(col <= MIME8_QP_LINE);
	}
}

struct dot_case {
	const char *in;
	const char *out;
};

static const struct dot_case dot_cases[] = {
	{ "a\nb\n", "a\r\nb\r\n.\r\n" },
	{ ".\n", "..\r\n.\r\n" },
	{ "a\n.b\n..\n", "a\r\n..b\r\n...\r\n.\r\n" },
	{ "no end", "no end\r\n.\r\n" },
	{ "", ".\r\n" },
	{ "crlf\r\nkept\r\n", "crlf\r\nkept\r\n.\r\n" },
	{ "bare\rcr\n", "bare\rcr\r\n.\r\n" },
	{ "x\r", "x\r\r\n.\r\n" },
	{ "a.b\n", "a.b\r\n.\r\n" },
};

static void test_dot(void **state)
{
	for (size_t i = 0; i < sizeof(dot_cases) / sizeof(dot_cases[0]); i++) {
		const struct dot_case *c = &dot_cases[i];
		size_t n = strlen(c->in);
		char out[256];
		struct smtp_dot d;
		size_t o = 0;

		for (int mode = 0; mode < 2; mode++) {
			smtp_dot_init(&d);
			o = 0;
			if (mode == 0)
				o = smtp_dot_encode(&d, c->in, n, out);
			else
				for (size_t k = 0; k < n; k++)
					o += smtp_dot_encode(&d, c->in + k, 1, out + o);
			assert_true(o <= SMTP_DOT_OUT_MAX(n));
			o += smtp_dot_finish(&d, out + o);
			if (o != strlen(c->out) || memcmp(out, c->out, o) != 0)
				fail_msg("case %zu mode %d: got %.*s", i, mode, (int)o, out);
		}
	}
}

/* BDAT (RFC 3030): line ends only, no dot-stuffing, no final dot. */
static void test_dot_chunks(void **state)
{
	static const struct dot_case cases[] = {
		{ "a\n.b\n", "a\r\n.b\r\n" },
		{ ".\n", ".\r\n" },
		{ "x", "x\r\n" },
		{ "", "" },
		{ "a\r\nb\n", "a\r\nb\r\n" },
	};
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct smtp_dot d;
		char out[64];
		size_t o;
		smtp_dot_init_chunks(&d);
		o = smtp_dot_encode(&d, cases[i].in, strlen(cases[i].in), out);
		o += smtp_dot_finish(&d, out + o);
		if (o != strlen(cases[i].out) || memcmp(out, cases[i].out, o) != 0)
			fail_msg("case %zu: got %.*s", i, (int)o, out);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_header),
		cmocka_unit_test(test_declares_8bit),
		cmocka_unit_test(test_qp),
		cmocka_unit_test(test_qp_line_bound),
		cmocka_unit_test(test_dot),
		cmocka_unit_test(test_dot_chunks),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
