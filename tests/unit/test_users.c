/*
 * test_users.c - the users file: which lines the reader takes, which it
 * reports (with their line numbers), and users_update's promise that every
 * line but the user's own survives byte for byte, with mode 0600.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "core/util.h"
#include "store/users.h"

/* A mix of everything the file may hold; "bad" lines must survive. */
#define MIXED                                                   \
	"# users of example.test\n"                             \
	"\n"                                                    \
	"alice@example.test:{PLAIN}alicepw\n"                   \
	"   \t\n"                                               \
	"this line has no colon\n"                              \
	"Bob@Example.test:{CRYPT}$y$j9T$abc\r\n"                \
	"carol@example.test:{MD5}unknown-scheme\n"              \
	"../evil@example.test:{PLAIN}x\n"                       \
	"dave@example.test:nobrace\n"                           \
	"  # indented comment\n"                                \
	"erin@example.test:{PLAIN}last-without-newline"

static char *tmpdir(void)
{
	char tmpl[] = "/tmp/test_users.XXXXXX";
	char *d = mkdtemp(tmpl);
	assert_non_null(d);
	return xstrdup(d);
}

static void write_file(const char *path, const char *text, size_t len, mode_t mode)
{
	FILE *f = fopen(path, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(text, 1, len, f), len);
	assert_int_equal(fclose(f), 0);
	assert_int_equal(chmod(path, mode), 0);
}

static char *read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf = xmalloc(1 << 16);
	assert_non_null(f);
	*len = fread(buf, 1, (1 << 16) - 1, f);
	buf[*len] = '\0';
	fclose(f);
	return buf;
}

static void assert_file(const char *path, const char *want)
{
	size_t len;
	char *got = read_file(path, &len);
	struct stat st;
	assert_int_equal(len, strlen(want));
	assert_memory_equal(got, want, len);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	free(got);
}

struct warnings {
	size_t n;
	size_t line[16];
};

static void warn_cb(void *ctx, const char *path, size_t line, const char *what)
{
	struct warnings *w = ctx;
	assert_non_null(path);
	assert_non_null(what);
	if (w->n < ARRAY_LEN(w->line))
		w->line[w->n] = line;
	w->n++;
}

static void test_load_reports_bad_lines(void **state)
{
	char *dir = tmpdir(), *path = xasprintf("%s/users", dir);
	struct warnings w = { 0 };
	struct users *u;
	static const size_t bad[] = { 5, 8, 9, 10 };

	write_file(path, MIXED, strlen(MIXED), 0600);
	u = users_load(path, warn_cb, &w);
	assert_int_equal(u->n, 4);       /* alice, bob, carol (scheme checked later), erin */
	assert_int_equal(w.n, ARRAY_LEN(bad));
	for (size_t i = 0; i < ARRAY_LEN(bad); i++)
		assert_int_equal(w.line[i], bad[i]);
	assert_non_null(users_find(u, "bob@example.test"));
	assert_string_equal(users_find(u, "BOB@example.TEST")->secret, "{CRYPT}$y$j9T$abc");
	assert_int_equal(users_find(u, "bob@example.test")->line, 6);
	assert_int_equal(users_find(u, "erin@example.test")->line, 11);
	assert_string_equal(users_find(u, "erin@example.test")->secret, "{PLAIN}last-without-newline");
	assert_null(users_find(u, "dave@example.test"));
	users_free(u);

	/* A NUL inside a line makes it bad, and the next line still counts. */
	static const char nul[] = "x@y.test:{PLAIN}a\0b\nz@y.test:{PLAIN}c\n";
	w.n = 0;
	write_file(path, nul, sizeof(nul) - 1, 0600);
	u = users_load(path, warn_cb, &w);
	assert_int_equal(u->n, 1);
	assert_int_equal(w.n, 1);
	assert_int_equal(w.line[0], 1);
	assert_int_equal(users_find(u, "z@y.test")->line, 2);
	users_free(u);

	/* Missing: empty and silent.  Unreadable (a directory): one warning. */
	w.n = 0;
	unlink(path);
	u = users_load(path, warn_cb, &w);
	assert_int_equal(u->n, 0);
	assert_int_equal(w.n, 0);
	users_free(u);
	u = users_load(dir, warn_cb, &w);
	assert_int_equal(u->n, 0);
	assert_int_equal(w.n, 1);
	assert_int_equal(w.line[0], 0);
	users_free(u);
	rmdir(dir);
	free(path);
	free(dir);
}

static const struct {
	const char *name, *addr, *secret;       /* secret NULL: delete */
	const char *before, *after;             /* before NULL: no file */
	enum users_update_result rc;
} update_cases[] = {
	{ "replace in the middle", "alice@example.test", "{PLAIN}new", MIXED,
	  "# users of example.test\n\nalice@example.test:{PLAIN}new\n   \t\nthis line has no colon\n"
	  "Bob@Example.test:{CRYPT}$y$j9T$abc\r\ncarol@example.test:{MD5}unknown-scheme\n"
	  "../evil@example.test:{PLAIN}x\ndave@example.test:nobrace\n  # indented comment\n"
	  "erin@example.test:{PLAIN}last-without-newline", USERS_UPDATE_OK },
	{ "replace matches case-insensitively, CRLF line", "BOB@example.test", "{PLAIN}b", MIXED,
	  "# users of example.test\n\nalice@example.test:{PLAIN}alicepw\n   \t\nthis line has no colon\n"
	  "bob@example.test:{PLAIN}b\ncarol@example.test:{MD5}unknown-scheme\n"
	  "../evil@example.test:{PLAIN}x\ndave@example.test:nobrace\n  # indented comment\n"
	  "erin@example.test:{PLAIN}last-without-newline", USERS_UPDATE_OK },
	{ "replace the last line without a newline", "erin@example.test", "{PLAIN}e", MIXED,
	  "# users of example.test\n\nalice@example.test:{PLAIN}alicepw\n   \t\nthis line has no colon\n"
	  "Bob@Example.test:{CRYPT}$y$j9T$abc\r\ncarol@example.test:{MD5}unknown-scheme\n"
	  "../evil@example.test:{PLAIN}x\ndave@example.test:nobrace\n  # indented comment\n"
	  "erin@example.test:{PLAIN}e\n", USERS_UPDATE_OK },
	{ "add after a last line without a newline", "frank@example.test", "{PLAIN}f", MIXED,
	  MIXED "\nfrank@example.test:{PLAIN}f\n", USERS_UPDATE_OK },
	{ "add: a bad line naming the user stays", "dave@example.test", "{PLAIN}d", MIXED,
	  MIXED "\ndave@example.test:{PLAIN}d\n", USERS_UPDATE_OK },
	{ "delete keeps the rest", "carol@example.test", NULL, MIXED,
	  "# users of example.test\n\nalice@example.test:{PLAIN}alicepw\n   \t\nthis line has no colon\n"
	  "Bob@Example.test:{CRYPT}$y$j9T$abc\r\n"
	  "../evil@example.test:{PLAIN}x\ndave@example.test:nobrace\n  # indented comment\n"
	  "erin@example.test:{PLAIN}last-without-newline", USERS_UPDATE_OK },
	{ "delete removes duplicates", "a@x.test", NULL,
	  "a@x.test:{PLAIN}1\n#c\nA@X.test:{PLAIN}2\nb@x.test:{PLAIN}3\n",
	  "#c\nb@x.test:{PLAIN}3\n", USERS_UPDATE_OK },
	{ "replace the first duplicate, drop the rest", "a@x.test", "{PLAIN}n",
	  "#c\na@x.test:{PLAIN}1\nb@x.test:{PLAIN}3\nA@X.test:{PLAIN}2\n",
	  "#c\na@x.test:{PLAIN}n\nb@x.test:{PLAIN}3\n", USERS_UPDATE_OK },
	{ "delete the only user", "a@x.test", NULL, "a@x.test:{PLAIN}1\n", "", USERS_UPDATE_OK },
	{ "add to an empty file", "a@x.test", "{PLAIN}1", "", "a@x.test:{PLAIN}1\n", USERS_UPDATE_OK },
	{ "add creates the file, lower-case address", "A@X.test", "{PLAIN}1", NULL,
	  "a@x.test:{PLAIN}1\n", USERS_UPDATE_OK },
	{ "delete a missing user", "zoe@example.test", NULL, MIXED, MIXED, USERS_UPDATE_MISSING },
	{ "delete from a missing file", "zoe@example.test", NULL, NULL, NULL, USERS_UPDATE_MISSING },
	{ "a bad line is not the user's", "dave@example.test", NULL, MIXED, MIXED,
	  USERS_UPDATE_MISSING },
	{ "unsafe address", "../evil@example.test", "{PLAIN}x", MIXED, MIXED, USERS_UPDATE_BAD_ADDR },
	{ "no domain", "alice", "{PLAIN}x", MIXED, MIXED, USERS_UPDATE_BAD_ADDR },
	{ "secret with a line end", "alice@example.test", "{PLAIN}x\nmallory@example.test:{PLAIN}y",
	  MIXED, MIXED, USERS_UPDATE_BAD_ADDR },
	{ "secret without a scheme", "alice@example.test", "x", MIXED, MIXED, USERS_UPDATE_BAD_ADDR },
};

static void test_update(void **state)
{
	char *dir = tmpdir(), *path = xasprintf("%s/users", dir);

	for (size_t i = 0; i < ARRAY_LEN(update_cases); i++) {
		const char *before = update_cases[i].before, *after = update_cases[i].after;
		print_message("%s\n", update_cases[i].name);
		unlink(path);
		if (before)
			write_file(path, before, strlen(before), 0644);
		assert_int_equal(users_update(path, update_cases[i].addr, update_cases[i].secret),
				 update_cases[i].rc);
		if (update_cases[i].rc == USERS_UPDATE_OK) {
			assert_file(path, after);
		} else if (after) {
			size_t len;
			char *got = read_file(path, &len);
			assert_int_equal(len, strlen(after));
			assert_memory_equal(got, after, len);
			free(got);
		} else {
			assert_int_equal(access(path, F_OK), -1);
		}
	}
	/* No temp file is left behind. */
	unlink(path);
	assert_int_equal(rmdir(dir), 0);
	free(path);
	free(dir);
}

/* Names become Maildir path components: UTF-8 (SMTPUTF8 users) passes
 * when well-formed, and nothing can climb out of the mail directory. */
static void test_safe_name(void **state)
{
	static const struct { const char *s; bool ok; } cases[] = {
		{ "alice", true }, { "a.b+c_d-e", true }, { "\xc3\xa9l\xc3\xa8ve", true },
		{ "\xe7\x94\xa8\xe6\x88\xb7", true }, { "\xe4\xbe\x8b\xe5\xad\x90.test", true },
		{ "", false }, { ".", false }, { "..", false }, { "a..b", false }, { ".a", false },
		{ "-a", false }, { "a/b", false }, { "a\\b", false }, { "a b", false },
		{ "\xc3", false }, { "\xc0\xaf", false }, { "\xe0\x80\xaf", false },	/* overlong '/' */
		{ "a\xed\xa0\x80", false }, { "\xff", false },
	};
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		if (users_safe_name(cases[i].s, strlen(cases[i].s)) != cases[i].ok)
			fail_msg("case %zu: want %d", i, cases[i].ok);
}

static void test_update_io_error(void **state)
{
	char *dir = tmpdir(), *path = xasprintf("%s/missing/users", dir);
	assert_int_equal(users_update(path, "a@x.test", "{PLAIN}1"), USERS_UPDATE_IO);
	free(path);
	/* The target is a directory: reading it fails. */
	assert_int_equal(users_update(dir, "a@x.test", "{PLAIN}1"), USERS_UPDATE_IO);
	rmdir(dir);
	free(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_load_reports_bad_lines),
		cmocka_unit_test(test_update),
		cmocka_unit_test(test_update_io_error),
		cmocka_unit_test(test_safe_name),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
