/*
 * test_maildir_keywords.c - Dovecot's Maildir keyword forms: the
 * dovecot-keywords lines ("N name") and the letters in a name's info.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>
#include "proto/maildir_keywords.h"

static void test_lines(void **state)
{
	static const struct {
		const char *line;
		bool ok;
		unsigned slot;
		const char *name;
	} cases[] = {
		{ "0 $Forwarded", true, 0, "$Forwarded" },
		{ "25 NonJunk", true, 25, "NonJunk" },
		{ "7 two words", true, 7, "two words" },
		{ "26 Over", false, 0, NULL },
		{ "100 x", false, 0, NULL },
		{ "-1 x", false, 0, NULL },
		{ "1", false, 0, NULL },
		{ "1 ", false, 0, NULL },
		{ " 1 x", false, 0, NULL },
		{ "a x", false, 0, NULL },
		{ "", false, 0, NULL },
		{ "1 x\r", false, 0, NULL },
		{ "01 x", true, 1, "x" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		unsigned slot = 99;
		const char *name = NULL;
		size_t nlen = 0;
		bool ok = maildir_kw_line_parse(cases[i].line, strlen(cases[i].line), &slot, &name, &nlen);
		assert_int_equal(ok, cases[i].ok);
		if (!ok)
			continue;
		assert_int_equal(slot, cases[i].slot);
		assert_int_equal(nlen, strlen(cases[i].name));
		assert_memory_equal(name, cases[i].name, nlen);
	}
	/* a name over MAILDIR_KW_NAME_MAX is a line tern cannot read */
	char line[3 + MAILDIR_KW_NAME_MAX + 2];
	unsigned slot;
	const char *name;
	size_t nlen;
	memcpy(line, "3 ", 2);
	memset(line + 2, 'n', MAILDIR_KW_NAME_MAX + 1);
	assert_false(maildir_kw_line_parse(line, 2 + MAILDIR_KW_NAME_MAX + 1, &slot, &name, &nlen));
	assert_true(maildir_kw_line_parse(line, 2 + MAILDIR_KW_NAME_MAX, &slot, &name, &nlen));
	assert_int_equal(slot, 3);
	assert_int_equal(nlen, MAILDIR_KW_NAME_MAX);
}

static void test_letters(void **state)
{
	assert_int_equal(maildir_kw_letters("1.M1P1.h:2,FSab"), 3);
	assert_int_equal(maildir_kw_letters("1.M1P1.h:2,z"), 1u << 25);
	assert_int_equal(maildir_kw_letters("1.M1P1.h:2,"), 0);
	assert_int_equal(maildir_kw_letters("1.M1P1.h"), 0);
	assert_int_equal(maildir_kw_letters("1.M1P1.host,S=5:2,Sc"), 4);
	/* letters before the info are the name's, not keywords */
	assert_int_equal(maildir_kw_letters("1.abc.h:2,S"), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_lines),
		cmocka_unit_test(test_letters),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
