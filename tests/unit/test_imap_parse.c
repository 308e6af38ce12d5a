/*
 * test_imap_parse.c - unit tests for proto/imap_parse (tags, names,
 * atoms, quoted strings, literals across lines, lists and their bounds,
 * number readers, sequence sets, dates) and proto/imap_search (every key,
 * OR/NOT/groups, complexity bounds).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "proto/imap_parse.h"

/* Render args as text: atom, "quoted", {n:data}, NIL, (list). */
static void dump(const struct imap_arg *a, char *out, size_t cap, size_t *o)
{
	for (; a != NULL; a = a->next) {
		if (*o > 0 && out[*o - 1] != '(')
			*o += (size_t)snprintf(out + *o, cap - *o, " ");
		switch (a->type) {
		case IMAP_ARG_ATOM:
			*o += (size_t)snprintf(out + *o, cap - *o, "%s", a->s);
			break;
		case IMAP_ARG_NIL:
			*o += (size_t)snprintf(out + *o, cap - *o, "NIL");
			break;
		case IMAP_ARG_QUOTED:
			*o += (size_t)snprintf(out + *o, cap - *o, "\"%s\"", a->s);
			break;
		case IMAP_ARG_LITERAL:
			*o += (size_t)snprintf(out + *o, cap - *o, "%s{%zu:%s}", a->literal8 ? "~" : "",
					       a->len, a->s ? a->s : "STREAMED");
			break;
		case IMAP_ARG_LIST:
			*o += (size_t)snprintf(out + *o, cap - *o, "(");
			dump(a->child, out, cap, o);
			*o += (size_t)snprintf(out + *o, cap - *o, ")");
			break;
		}
	}
}

/*
 * Drive the parser as a session would: split input at CRLF, and when a
 * literal is announced take its octets from the input.  Literals whose
 * first octet is '@' are "streamed" (the session sends them elsewhere).
 * Returns the last result; *literals counts announcements.
 */
static enum imap_parse_result drive(struct imap_parser *p, const char *in, int *literals)
{
	size_t len = strlen(in), i = 0;
	enum imap_parse_result r;
	*literals = 0;
	for (;;) {
		const char *eol = strstr(in + i, "\r\n");
		size_t n = eol ? (size_t)(eol - (in + i)) : len - i;
		r = imap_parse_line(p, in + i, n);
		i += n + (eol ? 2 : 0);
		if (r != IMAP_PARSE_LITERAL)
			return r;
		(*literals)++;
		if (p->lit.size > len - i)
			return IMAP_PARSE_LITERAL; /* the test stops before the octets */
		if (in[i] == '@')
			r = imap_parse_literal_streamed(p);
		else
			r = imap_parse_literal(p, in + i, p->lit.size);
		if (r != IMAP_PARSE_NEED_LINE)
			return r;
		i += p->lit.size;
	}
}

static void test_commands(void **state)
{
	static const struct {
		const char *in;
		enum imap_parse_err err;   /* IMAP_ERR_NONE: parsed */
		const char *tag, *name, *args;
		int literals;
	} cases[] = {
		{ "a1 NOOP", 0, "a1", "NOOP", "", 0 },
		{ "a1 noop", 0, "a1", "NOOP", "", 0 },
		{ "A001 LOGIN alice \"p w\\\"\\\\\"", 0, "A001", "LOGIN", "alice \"p w\"\\\"", 0 },
		{ "t] select INBOX", 0, "t]", "SELECT", "INBOX", 0 },
		{ "a LOGIN {5}\r\nalice {6}\r\nsecret", 0, "a", "LOGIN", "{5:alice} {6:secret}", 2 },
		{ "a LOGIN {5+}\r\nalice pw", 0, "a", "LOGIN", "{5:alice} pw", 1 },
		{ "a APPEND Sent (\\Seen) {3}\r\n@@@", 0, "a", "APPEND", "Sent (\\Seen) {3:STREAMED}", 1 },
		{ "a APPEND Sent ~{3}\r\nx y", 0, "a", "APPEND", "Sent ~{3:x y}", 1 },
		{ "a LOGIN {0}\r\n {0}\r\n", 0, "a", "LOGIN", "{0:} {0:}", 2 },
		{ "a X ({2}\r\nab)", 0, "a", "X", "({2:ab})", 1 },
		{ "a FETCH 1:*,3 (FLAGS BODY.PEEK[HEADER.FIELDS (From To)]<0.512>)", 0, "a", "FETCH",
		  "1:*,3 (FLAGS BODY.PEEK[HEADER.FIELDS (From To)]<0.512>)", 0 },
		{ "a FETCH 1 body[]", 0, "a", "FETCH", "1 body[]", 0 },
		{ "a FETCH 1 BINARY.SIZE[1]", 0, "a", "FETCH", "1 BINARY.SIZE[1]", 0 },
		{ "a STORE 1 +FLAGS.SILENT (\\Seen \\Deleted $Junk)", 0, "a", "STORE",
		  "1 +FLAGS.SILENT (\\Seen \\Deleted $Junk)", 0 },
		{ "a LIST \"\" %", 0, "a", "LIST", "\"\" %", 0 },
		{ "a LIST \"\" *", 0, "a", "LIST", "\"\" *", 0 },
		{ "a X nil NIL Nil", 0, "a", "X", "NIL NIL NIL", 0 },
		{ "a X () (())", 0, "a", "X", "() (())", 0 },
		{ "a X (a (b c) d)", 0, "a", "X", "(a (b c) d)", 0 },
		{ "a SEARCH $", 0, "a", "SEARCH", "$", 0 },
		{ "a X ~foo", 0, "a", "X", "~foo", 0 },
		/* errors */
		{ "", IMAP_ERR_EMPTY, NULL, NULL, NULL, 0 },
		{ " NOOP", IMAP_ERR_TAG, NULL, NULL, NULL, 0 },
		{ "a+b NOOP", IMAP_ERR_TAG, NULL, NULL, NULL, 0 },
		{ "a*b NOOP", IMAP_ERR_TAG, NULL, NULL, NULL, 0 },
		{ "a", IMAP_ERR_NAME, "a", NULL, NULL, 0 },
		{ "a ", IMAP_ERR_NAME, "a", NULL, NULL, 0 },
		{ "a  NOOP", IMAP_ERR_NAME, "a", NULL, NULL, 0 },
		{ "a NO\\OP", IMAP_ERR_NAME, "a", NULL, NULL, 0 },
		{ "a NOOP ", IMAP_ERR_SYNTAX, "a", NULL, NULL, 0 },
		{ "a X a  b", IMAP_ERR_SYNTAX, "a", NULL, NULL, 0 },
		{ "a X \"abc", IMAP_ERR_QUOTED, "a", NULL, NULL, 0 },
		{ "a X \"a\\b\"", IMAP_ERR_QUOTED, "a", NULL, NULL, 0 },
		{ "a X \"a\x01\x7f\"", IMAP_ERR_NONE, "a", "X", "\"a\x01\x7f\"", 0 },
		{ "a X \"\xc3\xa9\"", IMAP_ERR_8BIT, "a", NULL, NULL, 0 },
		{ "a X caf\xc3\xa9", IMAP_ERR_8BIT, "a", NULL, NULL, 0 },
		{ "a X\xc3\xa9", IMAP_ERR_8BIT, "a", NULL, NULL, 0 },
		{ "a X (a b", IMAP_ERR_PAREN, "a", NULL, NULL, 0 },
		{ "a X a)", IMAP_ERR_PAREN, "a", NULL, NULL, 0 },
		{ "a X ( a)", IMAP_ERR_SYNTAX, "a", NULL, NULL, 0 },
		{ "a X (a )", IMAP_ERR_SYNTAX, "a", NULL, NULL, 0 },
		{ "a X \"a\"b", IMAP_ERR_SYNTAX, "a", NULL, NULL, 0 },
		{ "a X (a)b", IMAP_ERR_SYNTAX, "a", NULL, NULL, 0 },
		{ "a X {5} x", IMAP_ERR_LITERAL_SYNTAX, "a", NULL, NULL, 0 },
		{ "a X {}", IMAP_ERR_LITERAL_SYNTAX, "a", NULL, NULL, 0 },
		{ "a X {5-}", IMAP_ERR_LITERAL_SYNTAX, "a", NULL, NULL, 0 },
		{ "a X {4294967296}", IMAP_ERR_LITERAL_SYNTAX, "a", NULL, NULL, 0 },
		{ "a X {-1}", IMAP_ERR_LITERAL_SYNTAX, "a", NULL, NULL, 0 },
		{ "a X {3}\r\nabcd", IMAP_ERR_SYNTAX, "a", NULL, NULL, 1 },
		{ "a X {3}\r\nabc)", IMAP_ERR_PAREN, "a", NULL, NULL, 1 },
		{ "a X BODY[HEADER", IMAP_ERR_SYNTAX, "a", NULL, NULL, 0 },
		{ "a X a{b", IMAP_ERR_SYNTAX, "a", NULL, NULL, 0 },
		{ "a X a\x01", IMAP_ERR_SYNTAX, "a", NULL, NULL, 0 },
		{ "a X a\rb", IMAP_ERR_SYNTAX, "a", NULL, NULL, 0 },
		{ "a X (((((((((((((((((x)))))))))))))))))", IMAP_ERR_DEPTH, "a", NULL, NULL, 0 },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct imap_parse_opts o = { .literal_plus = true };
		struct imap_parser p;
		int lits;
		imap_parse_init(&p, &o);
		enum imap_parse_result r = drive(&p, cases[i].in, &lits);
		if (cases[i].err == IMAP_ERR_NONE) {
			if (r != IMAP_PARSE_DONE)
				fail_msg("case %zu \"%s\": %s at %zu", i, cases[i].in,
					 imap_parse_strerror(p.err), p.err_pos);
			char buf[512];
			size_t olen = 0;
			buf[0] = '\0';
			dump(p.args, buf, sizeof(buf), &olen);
			assert_string_equal(p.tag, cases[i].tag);
			assert_string_equal(p.name, cases[i].name);
			assert_string_equal(buf, cases[i].args);
		} else {
			if (r != IMAP_PARSE_ERROR || p.err != cases[i].err)
				fail_msg("case %zu \"%s\": result %d err %d (%s)", i, cases[i].in, r,
					 p.err, imap_parse_strerror(p.err));
			if (p.have_tag != (cases[i].tag != NULL))
				fail_msg("case %zu \"%s\": have_tag %d", i, cases[i].in, p.have_tag);
			if (cases[i].tag)
				assert_string_equal(p.tag, cases[i].tag);
		}
		assert_int_equal(lits, cases[i].literals);
		imap_parse_free(&p);
	}
}

static void test_literal_limits(void **state)
{
	struct imap_parser p;
	struct imap_parse_opts o = { .max_literal = 1000 };
	imap_parse_init(&p, &o);

	/* synchronizing, within the limit: size known before any octet */
	assert_int_equal(imap_parse_line(&p, "a APPEND INBOX {1000}", 21), IMAP_PARSE_LITERAL);
	assert_int_equal(p.lit.size, 1000);
	assert_true(p.lit.sync);
	assert_false(p.lit.literal8);
	assert_true(p.lit_fits);
	/* a second line before the octets is a session bug */
	assert_int_equal(imap_parse_line(&p, "x", 1), IMAP_PARSE_ERROR);
	assert_int_equal(p.err, IMAP_ERR_STATE);
	imap_parse_reset(&p);

	/* over the limit: an error before any octet, size and tag known */
	assert_int_equal(imap_parse_line(&p, "b APPEND INBOX {1001}", 21), IMAP_PARSE_ERROR);
	assert_int_equal(p.err, IMAP_ERR_LITERAL_TOO_BIG);
	assert_int_equal(p.lit.size, 1001);
	assert_true(p.lit.sync);
	assert_string_equal(p.tag, "b");
	assert_string_equal(p.name, "APPEND");
	imap_parse_reset(&p);

	/* non-synchronizing without LITERAL+ or LITERAL- */
	assert_int_equal(imap_parse_line(&p, "c X {1+}", 8), IMAP_PARSE_ERROR);
	assert_int_equal(p.err, IMAP_ERR_NONSYNC);
	assert_false(p.lit.sync);
	imap_parse_free(&p);

	/* LITERAL-: {n+} up to 4096 only */
	o = (struct imap_parse_opts){ .literal_minus = true };
	imap_parse_init(&p, &o);
	assert_int_equal(imap_parse_line(&p, "d X {4096+}", 11), IMAP_PARSE_LITERAL);
	imap_parse_reset(&p);
	assert_int_equal(imap_parse_line(&p, "d X {4097+}", 11), IMAP_PARSE_ERROR);
	assert_int_equal(p.err, IMAP_ERR_LITERAL_MINUS);
	imap_parse_reset(&p);
	/* synchronizing literals stay unbounded by LITERAL- */
	assert_int_equal(imap_parse_line(&p, "d X {99999}", 11), IMAP_PARSE_LITERAL);
	/* ... but too big to hold in the arena: the session must stream it */
	assert_false(p.lit_fits);
	assert_int_equal(imap_parse_literal_streamed(&p), IMAP_PARSE_NEED_LINE);
	assert_int_equal(imap_parse_line(&p, "", 0), IMAP_PARSE_DONE);
	assert_int_equal(p.nargs, 1);
	assert_null(p.args->s);
	assert_int_equal(p.args->len, 99999);
	imap_parse_reset(&p);
	/* holding it anyway fails with a code, not a crash */
	assert_int_equal(imap_parse_line(&p, "d X {70000}", 11), IMAP_PARSE_LITERAL);
	static char big[70000];
	assert_int_equal(imap_parse_literal(&p, big, sizeof(big)), IMAP_PARSE_ERROR);
	assert_int_equal(p.err, IMAP_ERR_TOO_LONG);
	imap_parse_free(&p);
}

/* APPEND as a session runs it: the size is known before the octets, they
 * are streamed to a file, the arguments before them are ready to read. */
static void test_append_flow(void **state)
{
	struct imap_parse_opts o = { .max_literal = 10 * 1024 * 1024 };
	struct imap_parser p;
	const char *line = "A3 APPEND Sent/2024 (\\Seen $Work) \" 5-Mar-2024 09:10:11 +0100\" {2000000}";
	const struct imap_arg *a;
	int64_t t;
	imap_parse_init(&p, &o);
	assert_int_equal(imap_parse_line(&p, line, strlen(line)), IMAP_PARSE_LITERAL);
	assert_string_equal(p.name, "APPEND");
	assert_int_equal(p.nargs, 3);
	assert_int_equal(p.lit.size, 2000000);
	assert_true(p.lit.sync);
	assert_false(p.lit_fits);
	a = imap_arg_nth(p.args, 1);
	assert_int_equal(a->type, IMAP_ARG_LIST);
	assert_int_equal(a->count, 2);
	assert_string_equal(a->child->s, "\\Seen");
	a = imap_arg_nth(p.args, 2);
	assert_true(imap_parse_datetime(a->s, a->len, &t));
	assert_int_equal(t, 1709626211);
	assert_int_equal(imap_parse_literal_streamed(&p), IMAP_PARSE_NEED_LINE);
	assert_int_equal(imap_parse_line(&p, "", 0), IMAP_PARSE_DONE);
	assert_int_equal(p.nargs, 4);
	assert_int_equal(imap_arg_nth(p.args, 3)->len, 2000000);
	/* after DONE, a line without reset is a session bug */
	assert_int_equal(imap_parse_line(&p, "x NOOP", 6), IMAP_PARSE_ERROR);
	assert_int_equal(p.err, IMAP_ERR_STATE);
	imap_parse_reset(&p);
	assert_int_equal(imap_parse_line(&p, "x NOOP", 6), IMAP_PARSE_DONE);
	imap_parse_free(&p);
}

static void test_bounds(void **state)
{
	struct imap_parser p;
	struct imap_parse_opts o = { .max_args = 5, .max_depth = 2 };
	char line[200];
	imap_parse_init(&p, &o);
	assert_int_equal(imap_parse_line(&p, "a X 1 2 3 4 5", 13), IMAP_PARSE_DONE);
	assert_int_equal(p.nargs, 5);
	imap_parse_reset(&p);
	assert_int_equal(imap_parse_line(&p, "a X 1 2 3 4 5 6", 15), IMAP_PARSE_ERROR);
	assert_int_equal(p.err, IMAP_ERR_TOO_MANY);
	imap_parse_reset(&p);
	assert_int_equal(imap_parse_line(&p, "a X ((1))", 9), IMAP_PARSE_DONE);
	imap_parse_reset(&p);
	assert_int_equal(imap_parse_line(&p, "a X (((1)))", 11), IMAP_PARSE_ERROR);
	assert_int_equal(p.err, IMAP_ERR_DEPTH);
	imap_parse_free(&p);

	/* the text bound */
	char text[400];
	o = (struct imap_parse_opts){ .max_text = 512 };
	imap_parse_init(&p, &o);
	memset(text, 'x', sizeof(text));
	memcpy(text, "a X ", 4);
	assert_int_equal(imap_parse_line(&p, text, sizeof(text)), IMAP_PARSE_DONE);
	imap_parse_reset(&p);
	for (size_t k = 10; k < sizeof(text); k += 10)
		text[k] = ' ';
	assert_int_equal(imap_parse_line(&p, text, sizeof(text)), IMAP_PARSE_ERROR);
	assert_int_equal(p.err, IMAP_ERR_TOO_LONG);
	imap_parse_free(&p);

	/* a tag of 64 octets is kept, 65 is refused */
	imap_parse_init(&p, NULL);
	memset(line, 't', 65);
	memcpy(line + 65, " NOOP", 5);
	assert_int_equal(imap_parse_line(&p, line + 1, 69), IMAP_PARSE_DONE);
	assert_int_equal(strlen(p.tag), 64);
	imap_parse_reset(&p);
	assert_int_equal(imap_parse_line(&p, line, 70), IMAP_PARSE_ERROR);
	assert_int_equal(p.err, IMAP_ERR_TAG);
	imap_parse_free(&p);
}

static void test_utf8(void **state)
{
	static const struct {
		const char *q;
		bool ok;
	} cases[] = {
		{ "\"caf\xc3\xa9\"", true },
		{ "\"\xe2\x82\xac \xf0\x9f\x93\xac\"", true },
		{ "\"\xc3\"", false },             /* truncated */
		{ "\"\xc0\xaf\"", false },         /* overlong */
		{ "\"\xed\xa0\x80\"", false },     /* surrogate */
		{ "\"\xf4\x90\x80\x80\"", false }, /* past U+10FFFF */
		{ "\"\xff\"", false },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct imap_parse_opts o = { .utf8 = true };
		struct imap_parser p;
		char line[64];
		int n = snprintf(line, sizeof(line), "a SELECT %s", cases[i].q);
		imap_parse_init(&p, &o);
		enum imap_parse_result r = imap_parse_line(&p, line, (size_t)n);
		assert_int_equal(r, cases[i].ok ? IMAP_PARSE_DONE : IMAP_PARSE_ERROR);
		if (!cases[i].ok)
			assert_int_equal(p.err, IMAP_ERR_8BIT);
		imap_parse_free(&p);
	}
}

/* Parse "a X <args>" and return the first argument. */
static const struct imap_arg *args_of(struct imap_parser *p, const char *args)
{
	char line[1024];
	int n = snprintf(line, sizeof(line), "a X %s", args);
	imap_parse_reset(p);
	assert_int_equal(imap_parse_line(p, line, (size_t)n), IMAP_PARSE_DONE);
	return p->args;
}

static void test_readers(void **state)
{
	struct imap_parser p;
	uint32_t v;
	uint64_t v64;
	const char *s;
	size_t len;
	imap_parse_init(&p, NULL);

	assert_true(imap_arg_number(args_of(&p, "4294967295"), &v));
	assert_int_equal(v, 4294967295u);
	assert_false(imap_arg_number(args_of(&p, "4294967296"), &v));
	assert_true(imap_arg_number(args_of(&p, "0"), &v));
	assert_false(imap_arg_nz_number(args_of(&p, "0"), &v));
	assert_false(imap_arg_number(args_of(&p, "\"1\""), &v));
	assert_false(imap_arg_number(args_of(&p, "+1"), &v));
	assert_true(imap_arg_number64(args_of(&p, "9223372036854775807"), &v64));
	assert_false(imap_arg_number64(args_of(&p, "9223372036854775808"), &v64));

	assert_true(imap_arg_astring(args_of(&p, "INBOX"), &s, &len));
	assert_true(imap_arg_astring(args_of(&p, "a]b"), &s, &len));
	assert_false(imap_arg_astring(args_of(&p, "a*b"), &s, &len));
	assert_false(imap_arg_astring(args_of(&p, "\\Seen"), &s, &len));
	assert_false(imap_arg_astring(args_of(&p, "(a)"), &s, &len));
	assert_true(imap_arg_astring(args_of(&p, "\"\""), &s, &len));
	assert_int_equal(len, 0);
	assert_true(imap_arg_nstring(args_of(&p, "nil"), &s, &len));
	assert_null(s);
	assert_false(imap_arg_string(args_of(&p, "abc"), &s, &len));
	assert_true(imap_arg_is_atom(args_of(&p, "uid"), "UID"));
	assert_null(imap_arg_nth(args_of(&p, "a b"), 2));
	assert_string_equal(imap_arg_nth(args_of(&p, "a b"), 1)->s, "b");
	imap_parse_free(&p);
}

static void test_seqset(void **state)
{
	static const struct {
		const char *s;
		enum imap_seq_err err;
		size_t n;
		const char *in, *out;  /* numbers in / not in the set with * = 100 */
	} cases[] = {
		{ "1", IMAP_SEQ_OK, 1, "1", "2" },
		{ "1:3,7,9:*", IMAP_SEQ_OK, 3, "1 2 3 7 9 50 100", "4 8" },
		{ "*", IMAP_SEQ_OK, 1, "100", "99" },
		{ "*:98", IMAP_SEQ_OK, 1, "98 99 100", "97" },
		{ "5:2", IMAP_SEQ_OK, 1, "2 3 4 5", "1 6" },
		{ "4294967295", IMAP_SEQ_OK, 1, "", "1" },
		{ "$", IMAP_SEQ_OK, 0, "", "" },
		{ "", IMAP_SEQ_SYNTAX, 0, "", "" },
		{ "0", IMAP_SEQ_SYNTAX, 0, "", "" },
		{ "01", IMAP_SEQ_SYNTAX, 0, "", "" },
		{ "1,", IMAP_SEQ_SYNTAX, 0, "", "" },
		{ ",1", IMAP_SEQ_SYNTAX, 0, "", "" },
		{ "1::2", IMAP_SEQ_SYNTAX, 0, "", "" },
		{ "1:", IMAP_SEQ_SYNTAX, 0, "", "" },
		{ "1:2:3", IMAP_SEQ_SYNTAX, 0, "", "" },
		{ "4294967296", IMAP_SEQ_SYNTAX, 0, "", "" },
		{ "1,$", IMAP_SEQ_SYNTAX, 0, "", "" },
		{ "**", IMAP_SEQ_SYNTAX, 0, "", "" },
		{ "a", IMAP_SEQ_SYNTAX, 0, "", "" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct imap_arena a;
		struct imap_seqset set;
		imap_arena_init(&a, 65536);
		enum imap_seq_err e = imap_seqset_parse(cases[i].s, strlen(cases[i].s), &a, &set);
		if (e != cases[i].err)
			fail_msg("case %zu \"%s\": %d", i, cases[i].s, e);
		if (e == IMAP_SEQ_OK) {
			assert_int_equal(set.n, cases[i].n);
			assert_int_equal(set.searchres, strcmp(cases[i].s, "$") == 0);
			unsigned n;
			int off;
			for (const char *t = cases[i].in; sscanf(t, "%u%n", &n, &off) == 1; t += off)
				assert_true(imap_seqset_contains(&set, n, 100));
			for (const char *t = cases[i].out; sscanf(t, "%u%n", &n, &off) == 1; t += off)
				assert_false(imap_seqset_contains(&set, n, 100));
		}
		imap_arena_free(&a);
	}
	/* a set larger than the arena is a code */
	struct imap_arena a;
	struct imap_seqset set;
	imap_arena_init(&a, 64);
	assert_int_equal(imap_seqset_parse("1,2,3,4,5,6,7,8,9", 17, &a, &set), IMAP_SEQ_TOO_MANY);
	imap_arena_free(&a);
}

static void test_dates(void **state)
{
	struct imap_date d;
	int64_t t;
	assert_true(imap_parse_date("1-Feb-2024", 10, &d));
	assert_int_equal(d.year, 2024);
	assert_int_equal(d.month, 2);
	assert_int_equal(d.day, 1);
	assert_true(imap_parse_date("29-feb-2024", 11, &d));
	assert_false(imap_parse_date("29-Feb-2023", 11, &d));
	assert_false(imap_parse_date("31-Apr-2024", 11, &d));
	assert_false(imap_parse_date("0-Jan-2024", 10, &d));
	assert_false(imap_parse_date("1-Foo-2024", 10, &d));
	assert_false(imap_parse_date(" 1-Jan-2024", 11, &d));
	assert_false(imap_parse_date("1-Jan-24", 8, &d));
	assert_false(imap_parse_date("001-Jan-2024", 12, &d));

	assert_true(imap_parse_datetime("17-Jul-1996 02:44:25 -0700", 26, &t));
	assert_int_equal(t, 837596665);
	assert_true(imap_parse_datetime(" 1-Jan-1970 00:00:00 +0000", 26, &t));
	assert_int_equal(t, 0);
	assert_true(imap_parse_datetime("01-Jan-1970 01:00:00 +0100", 26, &t));
	assert_int_equal(t, 0);
	assert_false(imap_parse_datetime("01-Jan-1970 24:00:00 +0100", 26, &t));
	assert_false(imap_parse_datetime("01-Jan-1970 00:00:00 0100", 25, &t));
	assert_false(imap_parse_datetime("01-Jan-1970T00:00:00 +0100", 26, &t));
}

/* Render a search AST as (KEY args...) for comparison. */
static void sdump(const struct imap_search_node *n, char *out, size_t cap, size_t *o)
{
	for (; n != NULL; n = n->next) {
		*o += (size_t)snprintf(out + *o, cap - *o, "%s%s", *o && out[*o - 1] != '(' ? " " : "",
				       imap_search_key_name(n->key));
		if (n->str)
			*o += (size_t)snprintf(out + *o, cap - *o, " %s", n->str);
		if (n->str2)
			*o += (size_t)snprintf(out + *o, cap - *o, " %s", n->str2);
		if (n->date.year)
			*o += (size_t)snprintf(out + *o, cap - *o, " %04u-%02u-%02u", n->date.year,
					       n->date.month, n->date.day);
		if (n->key == IMAP_SK_LARGER || n->key == IMAP_SK_SMALLER || n->key == IMAP_SK_MODSEQ)
			*o += (size_t)snprintf(out + *o, cap - *o, " %llu", (unsigned long long)n->num);
		if (n->key == IMAP_SK_SEQSET || n->key == IMAP_SK_UID)
			*o += (size_t)snprintf(out + *o, cap - *o, " %zu%s", n->seq.n,
					       n->seq.searchres ? "$" : "");
		if (n->child) {
			*o += (size_t)snprintf(out + *o, cap - *o, "(");
			sdump(n->child, out, cap, o);
			*o += (size_t)snprintf(out + *o, cap - *o, ")");
		}
	}
}

static void test_search(void **state)
{
	static const struct {
		const char *args;
		enum imap_search_err err;
		const char *ast;
	} cases[] = {
		{ "ALL", 0, "AND(ALL)" },
		{ "unseen from alice", 0, "AND(UNSEEN FROM alice)" },
		{ "ANSWERED DELETED DRAFT FLAGGED NEW OLD RECENT SEEN", 0,
		  "AND(ANSWERED DELETED DRAFT FLAGGED NEW OLD RECENT SEEN)" },
		{ "UNANSWERED UNDELETED UNDRAFT UNFLAGGED UNSEEN", 0,
		  "AND(UNANSWERED UNDELETED UNDRAFT UNFLAGGED UNSEEN)" },
		{ "BCC a CC b TO c SUBJECT \"hi there\" BODY x TEXT {3}\r\nabc", 0,
		  "AND(BCC a CC b TO c SUBJECT hi there BODY x TEXT abc)" },
		{ "HEADER List-Id \"<x.y>\"", 0, "AND(HEADER List-Id <x.y>)" },
		{ "KEYWORD $Junk UNKEYWORD Work", 0, "AND(KEYWORD $Junk UNKEYWORD Work)" },
		{ "BEFORE 1-Feb-2024 ON \"2-Feb-2024\" SINCE 03-Feb-2024", 0,
		  "AND(BEFORE 2024-02-01 ON 2024-02-02 SINCE 2024-02-03)" },
		{ "SENTBEFORE 1-Jan-2000 SENTON 1-Jan-2000 SENTSINCE 1-Jan-2000", 0,
		  "AND(SENTBEFORE 2000-01-01 SENTON 2000-01-01 SENTSINCE 2000-01-01)" },
		{ "LARGER 1000 SMALLER 18446744073709551615", IMAP_SEARCH_BAD_ARG, NULL },
		{ "LARGER 1000 SMALLER 9223372036854775807", 0,
		  "AND(LARGER 1000 SMALLER 9223372036854775807)" },
		{ "UID 1:*,5 1:3", 0, "AND(UID 2 SEQSET 1)" },
		{ "UID $", 0, "AND(UID 0$)" },
		{ "$", 0, "AND(SEQSET 0$)" },
		{ "NOT SEEN", 0, "AND(NOT(SEEN))" },
		{ "NOT NOT SEEN", 0, "AND(NOT(NOT(SEEN)))" },
		{ "OR SEEN FLAGGED", 0, "AND(OR(SEEN FLAGGED))" },
		{ "OR (FROM a TO b) NOT (SEEN)", 0, "AND(OR(AND(FROM a TO b) NOT(AND(SEEN))))" },
		{ "OR OR 1:b c d", IMAP_SEARCH_BAD_SEQSET, NULL },
		{ "OR OR SEEN DRAFT DELETED", 0, "AND(OR(OR(SEEN DRAFT) DELETED))" },
		{ "MODSEQ 0", 0, "AND(MODSEQ 0)" },
		{ "MODSEQ \"/flags/\\\\draft\" all 620162338", 0, "AND(MODSEQ /flags/\\draft 620162338)" },
		{ "MODSEQ \"/flags/x\" other 1", IMAP_SEARCH_BAD_ARG, NULL },
		{ "FOO", IMAP_SEARCH_UNKNOWN_KEY, NULL },
		{ "\"ALL\"", IMAP_SEARCH_UNKNOWN_KEY, NULL },
		{ "FROM", IMAP_SEARCH_MISSING_ARG, NULL },
		{ "HEADER x", IMAP_SEARCH_MISSING_ARG, NULL },
		{ "OR SEEN", IMAP_SEARCH_MISSING_ARG, NULL },
		{ "NOT", IMAP_SEARCH_MISSING_ARG, NULL },
		{ "FROM (a)", IMAP_SEARCH_BAD_ARG, NULL },
		{ "KEYWORD \\Seen", IMAP_SEARCH_BAD_ARG, NULL },
		{ "KEYWORD \"x\"", IMAP_SEARCH_BAD_ARG, NULL },
		{ "BEFORE 2024-02-01", IMAP_SEARCH_BAD_ARG, NULL },
		{ "LARGER -1", IMAP_SEARCH_BAD_ARG, NULL },
		{ "UID 0", IMAP_SEARCH_BAD_SEQSET, NULL },
		{ "1:", IMAP_SEARCH_BAD_SEQSET, NULL },
		{ "()", IMAP_SEARCH_EMPTY, NULL },
		{ "SEEN ()", IMAP_SEARCH_EMPTY, NULL },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct imap_parse_opts o = { .literal_plus = true };
		struct imap_parser p;
		struct imap_search_node *root = NULL;
		char line[512];
		int lits;
		imap_parse_init(&p, &o);
		snprintf(line, sizeof(line), "a SEARCH %s", cases[i].args);
		assert_int_equal(drive(&p, line, &lits), IMAP_PARSE_DONE);
		enum imap_search_err e = imap_search_parse(p.args, &p.arena, 0, 0, &root);
		if (e != cases[i].err)
			fail_msg("case %zu \"%s\": %s", i, cases[i].args, imap_search_strerror(e));
		if (e == IMAP_SEARCH_OK) {
			char buf[512];
			size_t olen = 0;
			buf[0] = '\0';
			sdump(root, buf, sizeof(buf), &olen);
			assert_string_equal(buf, cases[i].ast);
		}
		imap_parse_free(&p);
	}
}

static void test_search_bounds(void **state)
{
	struct imap_parser p;
	struct imap_search_node *root;
	char line[4096];
	size_t o;
	imap_parse_init(&p, NULL);

	/* NOT chains: depth bound */
	o = (size_t)snprintf(line, sizeof(line), "a SEARCH");
	for (int i = 0; i < 40; i++)
		o += (size_t)snprintf(line + o, sizeof(line) - o, " NOT");
	o += (size_t)snprintf(line + o, sizeof(line) - o, " SEEN");
	assert_int_equal(imap_parse_line(&p, line, o), IMAP_PARSE_DONE);
	assert_int_equal(imap_search_parse(p.args, &p.arena, 0, 0, &root), IMAP_SEARCH_COMPLEX);
	assert_int_equal(imap_search_parse(p.args, &p.arena, 0, 41, &root), IMAP_SEARCH_OK);

	/* node bound */
	imap_parse_reset(&p);
	o = (size_t)snprintf(line, sizeof(line), "a SEARCH");
	for (int i = 0; i < 20; i++)
		o += (size_t)snprintf(line + o, sizeof(line) - o, " SEEN");
	assert_int_equal(imap_parse_line(&p, line, o), IMAP_PARSE_DONE);
	assert_int_equal(imap_search_parse(p.args, &p.arena, 21, 0, &root), IMAP_SEARCH_OK);
	assert_int_equal(imap_search_parse(p.args, &p.arena, 20, 0, &root), IMAP_SEARCH_COMPLEX);

	/* nothing at all */
	assert_int_equal(imap_search_parse(NULL, &p.arena, 0, 0, &root), IMAP_SEARCH_EMPTY);
	imap_parse_free(&p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_commands),
		cmocka_unit_test(test_literal_limits),
		cmocka_unit_test(test_append_flow),
		cmocka_unit_test(test_bounds),
		cmocka_unit_test(test_utf8),
		cmocka_unit_test(test_readers),
		cmocka_unit_test(test_seqset),
		cmocka_unit_test(test_dates),
		cmocka_unit_test(test_search),
		cmocka_unit_test(test_search_bounds),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
