/*
 * test_imap_write.c - unit tests for proto/imap_write: the string form
 * chosen per content (and read back by proto/imap_parse as the same
 * octets), nstring, FLAGS lists and compact sequence sets.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <event2/buffer.h>
#include <stdio.h>
#include <string.h>

#include "proto/imap_parse.h"
#include "proto/imap_write.h"

static char *take(struct evbuffer *b)
{
	static char out[4096];
	size_t n = evbuffer_get_length(b);
	assert_true(n < sizeof(out));
	evbuffer_remove(b, out, n);
	out[n] = '\0';
	return out;
}

/* Parse "a X " + wire (a literal taken from the wire) as one astring. */
static void read_back(const char *wire, size_t wlen, const char *s, size_t len, bool utf8)
{
	struct imap_parse_opts o = { .utf8 = utf8 };
	struct imap_parser p;
	char line[4200];
	const char *v;
	size_t vlen;
	int n = snprintf(line, sizeof(line), "a X ");
	memcpy(line + n, wire, wlen);
	size_t total = (size_t)n + wlen;
	imap_parse_init(&p, &o);
	const char *crlf = memmem(line, total, "\r\n", 2);
	if (crlf == NULL) {
		assert_int_equal(imap_parse_line(&p, line, total), IMAP_PARSE_DONE);
	} else {
		size_t l = (size_t)(crlf - line);
		assert_int_equal(imap_parse_line(&p, line, l), IMAP_PARSE_LITERAL);
		assert_int_equal(p.lit.size, len);
		assert_int_equal(imap_parse_literal(&p, crlf + 2, len), IMAP_PARSE_NEED_LINE);
		assert_int_equal(imap_parse_line(&p, "", 0), IMAP_PARSE_DONE);
	}
	assert_int_equal(p.nargs, 1);
	assert_true(imap_arg_astring(p.args, &v, &vlen));
	assert_int_equal(vlen, len);
	assert_memory_equal(v, s, len);
	imap_parse_free(&p);
}

static void test_strings(void **state)
{
	static const struct {
		const char *s;
		size_t len;
		bool utf8;
		const char *astring, *string;
	} cases[] = {
		{ "INBOX", 5, false, "INBOX", "\"INBOX\"" },
		{ "a]b", 3, false, "a]b", "\"a]b\"" },
		{ "", 0, false, "\"\"", "\"\"" },
		{ "NIL", 3, false, "\"NIL\"", "\"NIL\"" },
		{ "nil", 3, false, "\"nil\"", "\"nil\"" },
		{ "two words", 9, false, "\"two words\"", "\"two words\"" },
		{ "a\"b\\c", 5, false, "\"a\\\"b\\\\c\"", "\"a\\\"b\\\\c\"" },
		{ "(x)", 3, false, "\"(x)\"", "\"(x)\"" },
		/* a control other than CR/LF/NUL is a TEXT-CHAR (fuzz find: the
		 * parser used to refuse it in quoted strings) */
		{ "b\bc", 3, false, "\"b\bc\"", "\"b\bc\"" },
		{ "50%*", 4, false, "\"50%*\"", "\"50%*\"" },
		{ "a\r\nb", 4, false, "{4}\r\na\r\nb", "{4}\r\na\r\nb" },
		{ "a\0b", 3, false, "{3}\r\na\0b", "{3}\r\na\0b" },
		{ "caf\xc3\xa9", 5, false, "{5}\r\ncaf\xc3\xa9", "{5}\r\ncaf\xc3\xa9" },
		{ "caf\xc3\xa9", 5, true, "\"caf\xc3\xa9\"", "\"caf\xc3\xa9\"" },
		{ "caf\xc3", 4, true, "{4}\r\ncaf\xc3", "{4}\r\ncaf\xc3" },
	};
	struct evbuffer *b = evbuffer_new();
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *s = cases[i].s;
		size_t len = cases[i].len, wlen;
		char *w;
		imap_write_astring(b, s, len, cases[i].utf8);
		wlen = evbuffer_get_length(b);
		w = take(b);
		assert_memory_equal(w, cases[i].astring, wlen);
		read_back(w, wlen, s, len, cases[i].utf8);
		imap_write_string(b, s, len, cases[i].utf8);
		wlen = evbuffer_get_length(b);
		w = take(b);
		assert_memory_equal(w, cases[i].string, wlen);
	}
	/* long strings become literals */
	char big[IMAP_QUOTED_MAX + 1];
	memset(big, 'x', sizeof(big));
	big[0] = ' ';
	assert_int_equal(imap_str_kind(big, IMAP_QUOTED_MAX, true, false), IMAP_STR_QUOTED);
	assert_int_equal(imap_str_kind(big, sizeof(big), true, false), IMAP_STR_LITERAL);
	imap_write_astring(b, big, sizeof(big), false);
	assert_int_equal(strncmp(take(b), "{1025}\r\n ", 9), 0);

	imap_write_nstring(b, NULL, 0, false);
	assert_string_equal(take(b), "NIL");
	imap_write_nstring(b, "NIL", 3, false);
	assert_string_equal(take(b), "\"NIL\"");
	evbuffer_free(b);
}

static void test_flags(void **state)
{
	struct evbuffer *b = evbuffer_new();
	static const char *const kw[] = { "$Junk", "Work", "bad kw", "", "x(y", "$Forwarded" };
	imap_write_flags(b, 0, NULL, 0);
	assert_string_equal(take(b), "()");
	imap_write_flags(b, IMAP_FLAG_SEEN | IMAP_FLAG_DELETED, NULL, 0);
	assert_string_equal(take(b), "(\\Seen \\Deleted)");
	imap_write_flags(b, 0x3f, kw, 6);
	assert_string_equal(take(b),
			    "(\\Seen \\Answered \\Flagged \\Deleted \\Draft \\Recent $Junk Work $Forwarded)");
	imap_write_flags(b, 0, kw, 2);
	assert_string_equal(take(b), "($Junk Work)");
	assert_false(imap_keyword_valid("\\Seen", 5));
	assert_false(imap_keyword_valid("a]", 2));
	assert_true(imap_keyword_valid("NonJunk", 7));
	/* bounded: a name the folder's dovecot-keywords file can carry */
	char longkw[IMAP_KEYWORD_MAX + 1];
	memset(longkw, 'k', sizeof(longkw));
	assert_true(imap_keyword_valid(longkw, IMAP_KEYWORD_MAX));
	assert_false(imap_keyword_valid(longkw, IMAP_KEYWORD_MAX + 1));
	evbuffer_free(b);
}

static void test_seqset(void **state)
{
	static const struct {
		uint32_t nums[12];
		size_t n;
		const char *out;   /* NULL: refused */
	} cases[] = {
		{ { 1 }, 1, "1" },
		{ { 1, 2, 3 }, 3, "1:3" },
		{ { 1, 2, 3, 5, 7, 8, 9 }, 7, "1:3,5,7:9" },
		{ { 4, 4, 5, 5, 9 }, 5, "4:5,9" },
		{ { 2, 4, 6 }, 3, "2,4,6" },
		{ { 4294967294u, 4294967295u }, 2, "4294967294:4294967295" },
		{ { 1, 4294967295u }, 2, "1,4294967295" },
		{ { 3, 2 }, 2, NULL },
		{ { 0 }, 0, NULL },
	};
	struct evbuffer *b = evbuffer_new();
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		bool ok = imap_write_seqset(b, cases[i].nums, cases[i].n);
		assert_int_equal(ok, cases[i].out != NULL);
		if (ok) {
			char *w = take(b);
			assert_string_equal(w, cases[i].out);
			/* and it reads back as the same set */
			struct imap_arena a;
			struct imap_seqset set;
			imap_arena_init(&a, 4096);
			assert_int_equal(imap_seqset_parse(w, strlen(w), &a, &set), IMAP_SEQ_OK);
			for (size_t k = 0; k < cases[i].n; k++)
				assert_true(imap_seqset_contains(&set, cases[i].nums[k], 1));
			imap_arena_free(&a);
		} else {
			assert_int_equal(evbuffer_get_length(b), 0);
		}
	}
	evbuffer_free(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_strings),
		cmocka_unit_test(test_flags),
		cmocka_unit_test(test_seqset),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
