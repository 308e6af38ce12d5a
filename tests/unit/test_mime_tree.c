/*
 * test_mime_tree.c - unit tests for proto/mime_tree (part trees of
 * real-world shaped messages fed in chunks of every size: nested
 * multipart/mixed with multipart/alternative, a message/rfc822 attachment,
 * missing boundaries, boundary-like lines in preambles, CRLF and LF,
 * bounds) and proto/mime_envelope (ENVELOPE fields and addresses).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/mime_tree.h"

/* "type/subtype[octets,lines](children...)" in document order */
static void tdump(const struct mime_tree *t, size_t i, char *out, size_t cap, size_t *o)
{
	const struct mime_part *p = &t->parts[i];
	*o += (size_t)snprintf(out + *o, cap - *o, "%s/%s[%llu,%llu]", p->type, p->subtype,
			       (unsigned long long)p->body_octets, (unsigned long long)p->body_lines);
	if (p->first_child == MIME_NONE)
		return;
	*o += (size_t)snprintf(out + *o, cap - *o, "(");
	for (size_t c = p->first_child; c != MIME_NONE; c = t->parts[c].next_sibling) {
		tdump(t, c, out, cap, o);
		if (t->parts[c].next_sibling != MIME_NONE)
			*o += (size_t)snprintf(out + *o, cap - *o, " ");
	}
	*o += (size_t)snprintf(out + *o, cap - *o, ")");
}

static char *dump_tree(const struct mime_tree *t)
{
	static char buf[4096];
	size_t o = 0;
	buf[0] = '\0';
	tdump(t, 0, buf, sizeof(buf), &o);
	return buf;
}

/* Parse msg fed in chunks of `step` octets (0: all at once). */
static void parse(struct mime_tree *t, const char *msg, size_t len, size_t step,
		  const struct mime_tree_opts *o)
{
	mime_tree_init(t, o);
	if (step == 0)
		step = len ? len : 1;
	for (size_t i = 0; i < len; i += step)
		mime_tree_feed(t, msg + i, len - i < step ? len - i : step);
	mime_tree_finish(t);
}

/* Every chunking gives the same tree; returns the dump of one of them. */
static void check_tree(const char *msg, const char *want)
{
	static const size_t steps[] = { 0, 1, 2, 3, 7, 64 };
	size_t len = strlen(msg);
	for (size_t s = 0; s < sizeof(steps) / sizeof(steps[0]); s++) {
		struct mime_tree t;
		parse(&t, msg, len, steps[s], NULL);
		const char *got = dump_tree(&t);
		/* every part lies inside its parent */
		for (size_t i = 1; i < t.nparts; i++) {
			const struct mime_part *p = &t.parts[i], *up = &t.parts[p->parent];
			if (p->hdr_off < up->body_off || p->end_off > up->end_off)
				fail_msg("part %zu [%llu,%llu] outside its parent [%llu,%llu]", i,
					 (unsigned long long)p->hdr_off, (unsigned long long)p->end_off,
					 (unsigned long long)up->body_off, (unsigned long long)up->end_off);
		}
		if (strcmp(got, want) != 0)
			fail_msg("step %zu:\n got %s\nwant %s", steps[s], got, want);
		mime_tree_free(&t);
	}
}

static size_t pos(const char *msg, const char *needle)
{
	const char *p = strstr(msg, needle);
	assert_non_null(p);
	return (size_t)(p - msg);
}

/* LF to CRLF, for running a test in both line end styles. */
static char *crlf(const char *s)
{
	char *out = malloc(2 * strlen(s) + 1);
	size_t o = 0;
	for (; *s; s++) {
		if (*s == '\n')
			out[o++] = '\r';
		out[o++] = *s;
	}
	out[o] = '\0';
	return out;
}

static void test_simple(void **state)
{
	const char *lf = "Subject: hi\nFrom: a@b\n\nhello\nworld\n";
	char *cr = crlf(lf);
	struct mime_tree t;

	/* 12 octets of body in LF, 14 in CRLF: both are 14 in IMAP terms */
	check_tree(lf, "text/plain[14,2]");
	check_tree(cr, "text/plain[14,2]");
	parse(&t, lf, strlen(lf), 0, NULL);
	assert_int_equal(t.nparts, 1);
	assert_int_equal(t.parts[0].body_off, pos(lf, "hello"));
	assert_int_equal(t.parts[0].end_off, strlen(lf));
	assert_int_equal(t.parts[0].hdr_octets, 26);
	assert_string_equal(t.parts[0].params[0].name, "charset");
	assert_string_equal(t.parts[0].params[0].value, "us-ascii");
	assert_string_equal(t.parts[0].envelope->subject, "hi");
	mime_tree_free(&t);

	/* no line end at the end: the last line counts */
	check_tree("Subject: x\n\nabc", "text/plain[3,1]");
	/* empty body, no body, nothing at all */
	check_tree("Subject: x\n\n", "text/plain[0,0]");
	check_tree("Subject: x\n", "text/plain[0,0]");
	check_tree("", "text/plain[0,0]");
	/* a bare CR is content */
	check_tree("Subject: x\n\na\rb\n", "text/plain[5,1]");
	free(cr);
}

static const char nested[] =
	"From: \"Alice Example\" <alice@example.org>\n"
	"To: bob@example.net\n"
	"Subject: =?UTF-8?Q?R=C3=A9union?=\n"
	"MIME-Version: 1.0\n"
	"Content-Type: multipart/mixed; boundary=\"outer\"\n"
	"\n"
	"This is a multi-part message in MIME format.\n"
	"--outer is mentioned here but is no boundary\n"
	"\n"
	"--outer\n"
	"Content-Type: multipart/alternative;\n"
	"\tboundary=alt\n"
	"\n"
	"--alt\n"
	"Content-Type: text/plain; charset=utf-8\n"
	"Content-Transfer-Encoding: quoted-printable\n"
	"\n"
	"Hi Bob,\n"
	"see you.\n"
	"\n"
	"--alt\n"
	"Content-Type: text/html; charset=utf-8\n"
	"\n"
	"<p>Hi Bob</p>\n"
	"--alt--\n"
	"\n"
	"--outer\n"
	"Content-Type: application/pdf; name=\"a b.pdf\"\n"
	"Content-Disposition: attachment; filename=\"a b.pdf\"; size=6\n"
	"Content-Transfer-Encoding: base64\n"
	"Content-ID: <pdf1@example.org>\n"
	"Content-Description: the minutes\n"
	"Content-Language: en, de\n"
	"Content-Location: http://example.org/a.pdf\n"
	"Content-MD5: Q2hlY2sgSW50ZWdyaXR5IQ==\n"
	"\n"
	"JVBERi0x\n"
	"--outer\n"
	"Content-Type: message/rfc822\n"
	"\n"
	"From: Carol <carol@example.com>\n"
	"Subject: fwd\n"
	"Content-Type: multipart/mixed; boundary=in\n"
	"\n"
	"--in\n"
	"\n"
	"inner text\n"
	"--in\n"
	"Content-Type: image/png\n"
	"\n"
	"PNG\n"
	"--in--\n"
	"--outer--\n"
	"epilogue\n";

static void test_nested(void **state)
{
	const char *want =
		"multipart/mixed[909,48](multipart/alternative[189,12](text/plain[19,2] "
		"text/html[13,1]) application/pdf[8,1] message/rfc822[157,12](multipart/mixed[64,8]"
		"(text/plain[10,1] image/png[3,1])))";
	char *cr = crlf(nested);
	check_tree(nested, want);

	struct mime_tree t;
	parse(&t, nested, strlen(nested), 5, NULL);
	const struct mime_part *p;

	/* sections and offsets */
	p = &t.parts[mime_tree_section(&t, "1.1")];
	assert_string_equal(p->subtype, "plain");
	assert_int_equal(p->body_off, pos(nested, "Hi Bob,"));
	assert_int_equal(p->end_off, pos(nested, "see you.\n") + 9); /* the blank line's LF is the boundary's */
	assert_int_equal(p->hdr_off, pos(nested, "Content-Type: text/plain"));
	assert_string_equal(p->encoding, "quoted-printable");
	assert_string_equal(p->params[0].value, "utf-8");
	p = &t.parts[mime_tree_section(&t, "1.2")];
	assert_string_equal(p->subtype, "html");
	assert_int_equal(p->end_off, pos(nested, "<p>Hi Bob</p>") + 13);

	p = &t.parts[mime_tree_section(&t, "2")];
	assert_string_equal(p->type, "application");
	assert_string_equal(p->params[0].name, "name");
	assert_string_equal(p->params[0].value, "a b.pdf");
	assert_string_equal(p->disposition, "attachment");
	assert_int_equal(p->ndisp_params, 2);
	assert_string_equal(p->disp_params[0].value, "a b.pdf");
	assert_string_equal(p->disp_params[1].name, "size");
	assert_string_equal(p->encoding, "base64");
	assert_string_equal(p->id, "<pdf1@example.org>");
	assert_string_equal(p->description, "the minutes");
	assert_int_equal(p->nlanguage, 2);
	assert_string_equal(p->language[1], "de");
	assert_string_equal(p->location, "http://example.org/a.pdf");
	assert_string_equal(p->md5, "Q2hlY2sgSW50ZWdyaXR5IQ==");
	assert_null(p->envelope);

	/* the attached message: its envelope, its parts as 3.1 and 3.2 */
	size_t m = mime_tree_section(&t, "3");
	p = &t.parts[m];
	assert_true(p->message);
	assert_int_equal(p->body_off, pos(nested, "From: Carol"));
	const struct mime_part *enc = &t.parts[p->first_child];
	assert_int_equal(enc->hdr_off, p->body_off);
	assert_non_null(enc->envelope);
	assert_string_equal(enc->envelope->subject, "fwd");
	assert_string_equal(enc->envelope->from->name, "Carol");
	assert_string_equal(enc->envelope->sender->mailbox, "carol");
	p = &t.parts[mime_tree_section(&t, "3.1")];
	assert_string_equal(p->type, "text");
	assert_int_equal(p->body_off, pos(nested, "inner text"));
	p = &t.parts[mime_tree_section(&t, "3.2")];
	assert_string_equal(p->subtype, "png");
	assert_int_equal(mime_tree_section(&t, "3.3"), MIME_NONE);
	assert_int_equal(mime_tree_section(&t, "2.1"), MIME_NONE);
	assert_int_equal(mime_tree_section(&t, "4"), MIME_NONE);
	assert_int_equal(mime_tree_section(&t, "0"), MIME_NONE);
	assert_int_equal(mime_tree_section(&t, "1."), MIME_NONE);
	assert_int_equal(mime_tree_section(&t, "x"), MIME_NONE);
	assert_int_equal(mime_tree_section(&t, ""), 0);

	/* the message's own envelope: raw encoded-word, defaults for Sender/Reply-To */
	const struct mime_envelope *e = t.parts[0].envelope;
	assert_string_equal(e->subject, "=?UTF-8?Q?R=C3=A9union?=");
	assert_string_equal(e->from->name, "Alice Example");
	assert_string_equal(e->from->mailbox, "alice");
	assert_string_equal(e->from->host, "example.org");
	assert_string_equal(e->reply_to->host, "example.org");
	assert_string_equal(e->to->mailbox, "bob");
	assert_null(e->to->name);
	assert_null(e->cc);
	assert_null(e->date);
	assert_int_equal(t.parts[0].end_off, strlen(nested));
	assert_false(t.too_deep || t.too_many || t.header_truncated);
	mime_tree_free(&t);

	/* CRLF: same shape, the same IMAP sizes (CRLF counted) */
	check_tree(cr, want);
	parse(&t, cr, strlen(cr), 3, NULL);
	p = &t.parts[mime_tree_section(&t, "1.1")];
	assert_int_equal(p->end_off, pos(cr, "see you.\r\n") + 10);
	assert_int_equal(t.parts[0].end_off, strlen(cr));
	mime_tree_free(&t);
	free(cr);
}

static void test_broken(void **state)
{
	/* no close delimiter: the parts end with the message */
	check_tree("Content-Type: multipart/mixed; boundary=b\n\n--b\n\none\n--b\n\ntwo\n",
		   "multipart/mixed[24,6](text/plain[3,1] text/plain[5,1])");
	/* no boundary at all: the multipart is all preamble */
	check_tree("Content-Type: multipart/mixed; boundary=b\n\njust text\n",
		   "multipart/mixed[11,1]");
	/* multipart without a boundary parameter: a leaf */
	check_tree("Content-Type: multipart/mixed\n\n--b\n\none\n", "multipart/mixed[12,3]");
	/* an outer boundary closes the inner multipart */
	check_tree("Content-Type: multipart/mixed; boundary=o\n\n"
		   "--o\nContent-Type: multipart/alternative; boundary=i\n\n--i\n\na\n"
		   "--o\n\nb\n--o--\n",
		   "multipart/mixed[83,10](multipart/alternative[8,3](text/plain[1,1]) text/plain[1,1])");
	/* boundary prefixes: "--ab" is not "--abc", "--abcd" is not a close of abc */
	check_tree("Content-Type: multipart/mixed; boundary=abc\n\n"
		   "--ab\n--abcd\n--abc\n\nx\n--abc-- \n",
		   "multipart/mixed[36,6](text/plain[1,1])");
	/* transport padding after a boundary */
	check_tree("Content-Type: multipart/mixed; boundary=b\n\n--b \t\n\nx\n--b--\n",
		   "multipart/mixed[19,4](text/plain[1,1])");
	/* a header that never ends before the next boundary: empty body */
	check_tree("Content-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: text/html\n--b--\n",
		   "multipart/mixed[37,3](text/html[0,0])");
	/* fuzz find: a part whose empty body (or header) sits right before an
	 * outer boundary ended after its parent; the parent now contains it */
	check_tree("Content-Type: multipart/mixed; boundary=o\n\n--o\n"
		   "Content-Type: multipart/alternative; boundary=i\n\n--i\n\n--o--\n",
		   "multipart/mixed[70,6](multipart/alternative[7,2](text/plain[0,0]))");
	check_tree("Content-Type: multipart/mixed; boundary=o\n\n--o\n"
		   "Content-Type: multipart/alternative; boundary=i\n\n--i\n--o--\n",
		   "multipart/mixed[68,5](multipart/alternative[5,1](text/plain[0,0]))");
	/* a part right before the boundary with an empty body */
	check_tree("Content-Type: multipart/mixed; boundary=b\n\n--b\n\n--b--\n",
		   "multipart/mixed[14,3](text/plain[0,0])");
	/* close delimiter without a line end at the very end */
	check_tree("Content-Type: multipart/mixed; boundary=b\n\n--b\n\nx\n--b--",
		   "multipart/mixed[15,4](text/plain[1,1])");
	/* a boundary after the close delimiter is epilogue */
	check_tree("Content-Type: multipart/mixed; boundary=b\n\n--b\n\nx\n--b--\n--b\n\ny\n",
		   "multipart/mixed[27,7](text/plain[1,1])");
	/* invalid Content-Type: the default applies; digest defaults to message/rfc822 */
	check_tree("Content-Type: garbage\n\nx\n", "text/plain[3,1]");
	check_tree("Content-Type: multipart/digest; boundary=d\n\n--d\n\nSubject: s\n\nbody\n--d--\n",
		   "multipart/digest[34,6](message/rfc822[18,3](text/plain[4,1]))");
	/* an encoded message/rfc822 is a leaf */
	check_tree("Content-Type: message/rfc822\nContent-Transfer-Encoding: base64\n\nU3ViamVjdDogeA==\n",
		   "message/rfc822[18,1]");
}

static void test_bounds(void **state)
{
	char msg[8192];
	size_t o = 0;
	struct mime_tree t;
	/* 40 nested multiparts: read down to the depth bound, the rest is body */
	for (int i = 0; i < 40; i++)
		o += (size_t)snprintf(msg + o, sizeof(msg) - o,
				      "Content-Type: multipart/mixed; boundary=b%d\n\n--b%d\n", i, i);
	o += (size_t)snprintf(msg + o, sizeof(msg) - o, "\ndeep\n");
	struct mime_tree_opts opts = { .max_depth = 10 };
	parse(&t, msg, o, 0, &opts);
	assert_true(t.too_deep);
	assert_int_equal(t.nparts, 11);
	for (size_t i = 0; i < t.nparts; i++)
		assert_true(t.parts[i].depth <= 10);
	assert_int_equal(t.parts[10].end_off, o);
	mime_tree_free(&t);
	parse(&t, msg, o, 0, NULL);
	assert_int_equal(t.nparts, 33);
	assert_true(t.too_deep);
	mime_tree_free(&t);

	/* part count bound */
	o = (size_t)snprintf(msg, sizeof(msg), "Content-Type: multipart/mixed; boundary=b\n\n");
	for (int i = 0; i < 100; i++)
		o += (size_t)snprintf(msg + o, sizeof(msg) - o, "--b\n\npart %d\n", i);
	o += (size_t)snprintf(msg + o, sizeof(msg) - o, "--b--\n");
	opts = (struct mime_tree_opts){ .max_parts = 10 };
	parse(&t, msg, o, 0, &opts);
	assert_int_equal(t.nparts, 10);
	assert_true(t.too_many);
	assert_int_equal(t.parts[0].end_off, o);
	mime_tree_free(&t);

	/* a huge header section is cut, the offsets stay exact */
	size_t big = MIME_HEADER_MAX + 1000;
	char *h = malloc(big + 64);
	memcpy(h, "Subject: ", 9);
	memset(h + 9, 'x', big);
	o = 9 + big;
	o += (size_t)snprintf(h + o, 64, "\n\nbody\n");
	parse(&t, h, o, 4096, NULL);
	assert_true(t.header_truncated);
	assert_int_equal(t.parts[0].body_off, o - 5);
	assert_int_equal(t.parts[0].body_lines, 1);
	mime_tree_free(&t);
	free(h);
}

static void test_envelope(void **state)
{
	static const char hdr[] =
		"Date: Mon, 7 Feb 1994 21:52:25\n -0800 (PST)\n"
		"From: Terry Gray <gray@cac.washington.edu>\n"
		"Subject: IMAP4rev1 WG mtg summary and minutes\n"
		"To: imap@cac.washington.edu\n"
		"cc: minutes@CNRI.Reston.VA.US, \"John Klensin\" <KLENSIN@MIT.EDU>\n"
		"Reply-To:\n"
		"Sender: (nobody)\n"
		"Bcc: undisclosed-recipients:;\n"
		"Message-Id: <B27397-0100000@cac.washington.edu>\n"
		"In-Reply-To: <x@y>\n"
		"From: second@from.example\n"
		"\n"
		"To: not-a-header@example\n";
	struct mime_envelope *e = mime_envelope_build(hdr, strlen(hdr));
	assert_string_equal(e->date, "Mon, 7 Feb 1994 21:52:25 -0800 (PST)");
	assert_string_equal(e->subject, "IMAP4rev1 WG mtg summary and minutes");
	assert_string_equal(e->message_id, "<B27397-0100000@cac.washington.edu>");
	assert_string_equal(e->in_reply_to, "<x@y>");
	assert_string_equal(e->from->name, "Terry Gray");
	assert_string_equal(e->from->mailbox, "gray");
	assert_string_equal(e->from->host, "cac.washington.edu");
	assert_null(e->from->next);
	/* empty Reply-To and Sender default to From (RFC 3501 7.4.2) */
	assert_string_equal(e->reply_to->name, "Terry Gray");
	assert_string_equal(e->sender->mailbox, "gray");
	assert_string_equal(e->to->mailbox, "imap");
	assert_null(e->to->next);
	assert_null(e->cc->name);
	assert_string_equal(e->cc->host, "CNRI.Reston.VA.US");
	assert_string_equal(e->cc->next->name, "John Klensin");
	assert_string_equal(e->cc->next->mailbox, "KLENSIN");
	/* group: start (mailbox = name, host NIL) and end (all NIL) */
	assert_string_equal(e->bcc->mailbox, "undisclosed-recipients");
	assert_null(e->bcc->host);
	assert_null(e->bcc->next->mailbox);
	assert_null(e->bcc->next->host);
	assert_null(e->bcc->next->next);
	mime_envelope_free(e);
}

static void test_addresses(void **state)
{
	static const struct {
		const char *v;
		const char *want;   /* (name adl mailbox host) ... */
	} cases[] = {
		{ "a@b", "(NIL NIL a b)" },
		{ "<a@b>", "(NIL NIL a b)" },
		{ "A B <a@b>", "(A B NIL a b)" },
		{ "\"B, A\" <a@b>, c@d", "(B, A NIL a b)(NIL NIL c d)" },
		{ "\"a\\\"q\" <x@y>", "(a\"q NIL x y)" },
		{ "=?UTF-8?B?w6k=?= <e@x>", "(=?UTF-8?B?w6k=?= NIL e x)" },
		{ "John Q. Public <jqp@x>", "(John Q. Public NIL jqp x)" },
		{ "first.last@x.example", "(NIL NIL first.last x.example)" },
		{ "\"a b\"@x", "(NIL NIL a b x)" },
		{ "a@[192.0.2.1]", "(NIL NIL a [192.0.2.1])" },
		{ "alice@x (Alice A)", "(Alice A NIL alice x)" },
		{ "<@r1,@r2:a@b>", "(NIL @r1,@r2 a b)" },
		{ "G: a@b, C <c@d>;, e@f",
		  "(NIL NIL G NIL)(NIL NIL a b)(C NIL c d)(NIL NIL NIL NIL)(NIL NIL e f)" },
		{ "G:;", "(NIL NIL G NIL)(NIL NIL NIL NIL)" },
		{ "G: a@b", "(NIL NIL G NIL)(NIL NIL a b)(NIL NIL NIL NIL)" },
		{ "root", "(NIL NIL root MISSING_DOMAIN)" },
		{ "<>", "(NIL NIL MISSING_MAILBOX MISSING_DOMAIN)" },
		{ "a@", "(NIL NIL a MISSING_DOMAIN)" },
		{ ",,a@b,,", "(NIL NIL a b)" },
		{ "", "" },
		{ "<<<>>>@@,;:", "" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct mime_addr *a = mime_addr_parse(cases[i].v, strlen(cases[i].v));
		char buf[512];
		size_t o = 0;
		buf[0] = '\0';
		for (struct mime_addr *x = a; x != NULL; x = x->next)
			o += (size_t)snprintf(buf + o, sizeof(buf) - o, "(%s %s %s %s)",
					      x->name ? x->name : "NIL", x->adl ? x->adl : "NIL",
					      x->mailbox ? x->mailbox : "NIL", x->host ? x->host : "NIL");
		if (strncmp(buf, cases[i].want, strlen(cases[i].want)) != 0 ||
		    (cases[i].want[0] != '\0' && strlen(buf) != strlen(cases[i].want)))
			fail_msg("case %zu \"%s\":\n got %s\nwant %s", i, cases[i].v, buf, cases[i].want);
		mime_addr_free(a);
	}
}

static void test_header_next(void **state)
{
	static const char h[] = "A: 1\r\n  2\r\nnot a field\r\n\tcont\r\nB : x\r\n: y\r\nC:\r\n\r\nD: no\r\n";
	size_t pos = 0, nl, vl;
	const char *n, *v;
	assert_true(mime_header_next(h, strlen(h), &pos, &n, &nl, &v, &vl));
	assert_int_equal(nl, 1);
	assert_memory_equal(v, " 1\r\n  2", vl);
	char *val = mime_header_value(v, vl);
	assert_string_equal(val, "1  2");
	free(val);
	assert_true(mime_header_next(h, strlen(h), &pos, &n, &nl, &v, &vl));
	assert_memory_equal(n, "B", nl);
	assert_memory_equal(v, " x", vl);
	assert_true(mime_header_next(h, strlen(h), &pos, &n, &nl, &v, &vl));
	assert_memory_equal(n, "C", nl);
	assert_int_equal(vl, 0);
	assert_false(mime_header_next(h, strlen(h), &pos, &n, &nl, &v, &vl));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_simple),
		cmocka_unit_test(test_nested),
		cmocka_unit_test(test_broken),
		cmocka_unit_test(test_bounds),
		cmocka_unit_test(test_envelope),
		cmocka_unit_test(test_addresses),
		cmocka_unit_test(test_header_next),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
