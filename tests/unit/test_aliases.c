/*
 * test_aliases.c - the aliases file: every outcome of the line parser
 * (proto/aliasfile.c) with each length bound crossed by one, then the
 * loader (bad lines reported with their numbers, the rest kept), lookup
 * by address and by bare local part, and change detection.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "core/util.h"
#include "proto/aliasfile.h"
#include "store/aliases.h"

struct line_case {
	const char *line;
	enum alias_line_err err;
	const char *name;
	const char *targets;      /* joined with '|' */
};

static const struct line_case line_cases[] = {
	{ "postmaster: alice", ALIAS_LINE_OK, "postmaster", "alice" },
	{ "  Sales@Example.TEST :Bob@example.test,carol ,\tdave  ", ALIAS_LINE_OK, "sales@example.test",
	  "Bob@example.test|carol|dave" },
	{ "x: a, b # a comment, c", ALIAS_LINE_OK, "x", "a|b" },
	{ "lit: u@[127.0.0.1]", ALIAS_LINE_OK, "lit", "u@[127.0.0.1]" },
	{ "first.last+tag: o'neil@example.test", ALIAS_LINE_OK, "first.last+tag", "o'neil@example.test" },
	{ "", ALIAS_LINE_BLANK, NULL, NULL },
	{ " \t ", ALIAS_LINE_BLANK, NULL, NULL },
	{ "# alice: bob", ALIAS_LINE_BLANK, NULL, NULL },
	{ "   # indented", ALIAS_LINE_BLANK, NULL, NULL },
	{ "no colon here", ALIAS_LINE_NO_COLON, NULL, NULL },
	{ "bob # : carol", ALIAS_LINE_NO_COLON, NULL, NULL },
	{ ": alice", ALIAS_LINE_BAD_NAME, NULL, NULL },
	{ "a b: c", ALIAS_LINE_BAD_NAME, NULL, NULL },
	{ ".dot: c", ALIAS_LINE_BAD_NAME, NULL, NULL },
	{ "dot.: c", ALIAS_LINE_BAD_NAME, NULL, NULL },
	{ "a..b: c", ALIAS_LINE_BAD_NAME, NULL, NULL },
	{ "a@: c", ALIAS_LINE_BAD_NAME, NULL, NULL },
	{ "a@-bad.test: c", ALIAS_LINE_BAD_NAME, NULL, NULL },
	{ "\"quoted\": c", ALIAS_LINE_BAD_NAME, NULL, NULL },
	{ "caf\xc3\xa9: c", ALIAS_LINE_BAD_NAME, NULL, NULL },
	{ "x:", ALIAS_LINE_NO_TARGET, NULL, NULL },
	{ "x: , ,\t", ALIAS_LINE_NO_TARGET, NULL, NULL },
	{ "x: # nothing", ALIAS_LINE_NO_TARGET, NULL, NULL },
	{ "x: a, b@", ALIAS_LINE_BAD_TARGET, NULL, NULL },
	{ "x: a, \"b\"@example.test", ALIAS_LINE_BAD_TARGET, NULL, NULL },
	{ "x: a..b", ALIAS_LINE_BAD_TARGET, NULL, NULL },
	{ "x: a@b@c", ALIAS_LINE_BAD_TARGET, NULL, NULL },
	{ "x: a\x01" "b", ALIAS_LINE_BAD_TARGET, NULL, NULL },
	{ "root: |/usr/bin/procmail", ALIAS_LINE_PROGRAM, NULL, NULL },
	{ "root: alice, /var/mail/root", ALIAS_LINE_PROGRAM, NULL, NULL },
	{ "list: :include:/etc/list", ALIAS_LINE_PROGRAM, NULL, NULL },
};

/* Targets joined with '|', for comparison. */
static char *joined(const struct alias_line *l)
{
	char *out = xstrdup("");
	for (size_t i = 0; i < l->ntargets; i++) {
		char *next = xasprintf("%s%s%s", out, i ? "|" : "", l->targets[i]);
		free(out);
		out = next;
	}
	return out;
}

static void test_line_table(void **state)
{
	for (size_t i = 0; i < ARRAY_LEN(line_cases); i++) {
		const struct line_case *c = &line_cases[i];
		struct alias_line l;
		enum alias_line_err err = alias_line_parse(c->line, strlen(c->line), &l);

		if (err != c->err)
			fail_msg("case %zu \"%s\": got %d (%s), want %d", i, c->line, err, alias_line_strerror(err),
				 c->err);
		if (c->err != ALIAS_LINE_OK) {
			assert_null(l.name);
			assert_int_equal(l.ntargets, 0);
			continue;
		}
		char *t = joined(&l);
		assert_string_equal(l.name, c->name);
		assert_string_equal(t, c->targets);
		free(t);
		alias_line_free(&l);
	}
}

/* "n: target" with a local part of local_len octets and a domain of
 * domain_len octets (labels of 63). */
static char *addr_of(size_t local_len, size_t domain_len)
{
	char *a = xmalloc(local_len + domain_len + 2);
	memset(a, 'l', local_len);
	a[local_len] = '@';
	for (size_t i = 0; i < domain_len; i++)
		a[local_len + 1 + i] = (i % 64 == 63) ? '.' : 'd';
	a[local_len + 1 + domain_len] = '\0';
	return a;
}

static enum alias_line_err parse_target(const char *target)
{
	char *line = xasprintf("n: %s", target);
	struct alias_line l;
	enum alias_line_err err = alias_line_parse(line, strlen(line), &l);
	alias_line_free(&l);
	free(line);
	return err;
}

static void test_length_bounds(void **state)
{
	static const struct {
		size_t local, domain;
		enum alias_line_err err;
	} bounds[] = {
		{ 64, 10, ALIAS_LINE_OK },
		{ 65, 10, ALIAS_LINE_BAD_TARGET },
		/* 64 + 1 + 189 = 254 octets, the most a path of 256 holds with its <> */
		{ 64, 189, ALIAS_LINE_OK },
		{ 64, 190, ALIAS_LINE_BAD_TARGET },
	};

	for (size_t i = 0; i < ARRAY_LEN(bounds); i++) {
		char *a = addr_of(bounds[i].local, bounds[i].domain);
		assert_int_equal(parse_target(a), bounds[i].err);
		free(a);
	}
}

static void test_target_count_and_line_bounds(void **state)
{
	struct alias_line l;
	size_t cap = 4 + (ALIAS_TARGETS_MAX + 1) * 2 + 1;
	char *line = xmalloc(cap);
	size_t n = (size_t)snprintf(line, cap, "n: ");

	for (size_t i = 0; i < ALIAS_TARGETS_MAX; i++)
		n += (size_t)snprintf(line + n, cap - n, "a,");
	assert_int_equal(alias_line_parse(line, n, &l), ALIAS_LINE_OK);
	assert_int_equal(l.ntargets, ALIAS_TARGETS_MAX);
	alias_line_free(&l);
	n += (size_t)snprintf(line + n, cap - n, "a");
	assert_int_equal(alias_line_parse(line, n, &l), ALIAS_LINE_TOO_MANY);
	assert_null(l.targets);
	free(line);

	line = xmalloc(ALIAS_LINE_MAX + 1);
	memset(line, ' ', ALIAS_LINE_MAX + 1);
	memcpy(line, "n: a", 4);
	assert_int_equal(alias_line_parse(line, ALIAS_LINE_MAX, &l), ALIAS_LINE_OK);
	alias_line_free(&l);
	assert_int_equal(alias_line_parse(line, ALIAS_LINE_MAX + 1, &l), ALIAS_LINE_TOO_LONG);
	free(line);
	assert_int_equal(alias_line_parse("n: a\0b", 6, &l), ALIAS_LINE_NUL);
}

struct warnings {
	size_t n;
	size_t lines[8];
	char what[8][80];
};

static void warn_cb(void *ctx, const char *path, size_t line, const char *what)
{
	struct warnings *w = ctx;
	if (w->n < 8) {
		w->lines[w->n] = line;
		snprintf(w->what[w->n], sizeof(w->what[0]), "%s", what);
	}
	w->n++;
}

static char *write_file(const char *text)
{
	char tmpl[] = "/tmp/test_aliases.XXXXXX";
	int fd = mkstemp(tmpl);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	return xstrdup(tmpl);
}

static void test_load_and_lookup(void **state)
{
	char *path = write_file("# aliases\n"
				"postmaster: alice\r\n"
				"root: |/bin/sh\n"
				"\n"
				"sales@example.test: bob, carol@example.org\n"
				"broken line\n"
				"Info@Other.Test: dave");
	struct warnings w = { 0 };
	struct aliases *a = aliases_load(path, warn_cb, &w);
	const struct word_list *t;

	assert_int_equal(aliases_count(a), 3);
	assert_int_equal(w.n, 2);
	assert_int_equal(w.lines[0], 3);
	assert_string_equal(w.what[0], alias_line_strerror(ALIAS_LINE_PROGRAM));
	assert_int_equal(w.lines[1], 6);
	assert_string_equal(w.what[1], alias_line_strerror(ALIAS_LINE_NO_COLON));
	/* a bare local part: any local domain */
	t = aliases_lookup(a, "PostMaster@example.test");
	assert_non_null(t);
	assert_int_equal(t->n, 1);
	assert_string_equal(t->v[0], "alice");
	assert_non_null(aliases_lookup(a, "postmaster@other.test"));
	/* a full address: that domain only */
	t = aliases_lookup(a, "SALES@example.test");
	assert_non_null(t);
	assert_int_equal(t->n, 2);
	assert_string_equal(t->v[1], "carol@example.org");
	assert_null(aliases_lookup(a, "sales@other.test"));
	assert_non_null(aliases_lookup(a, "info@other.test"));
	assert_null(aliases_lookup(a, "root@example.test"));
	assert_null(aliases_lookup(a, "post@example.test"));
	assert_false(aliases_changed(a));
	aliases_free(a);
	unlink(path);
	free(path);
}

static void test_missing_file_and_change(void **state)
{
	struct warnings w = { 0 };
	char *path = write_file("a: b\n");
	struct aliases *a;
	struct timespec later[2] = { { 0, UTIME_OMIT }, { 2000000000, 0 } };

	unlink(path);
	a = aliases_load(path, warn_cb, &w);
	assert_int_equal(aliases_count(a), 0);
	assert_int_equal(w.n, 1);
	assert_int_equal(w.lines[0], 0);	/* the file itself */
	assert_false(aliases_changed(a));	/* still missing */
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs("a: b\n", f);
	fclose(f);
	assert_true(aliases_changed(a));	/* created */
	aliases_free(a);
	a = aliases_load(path, warn_cb, &w);
	assert_int_equal(aliases_count(a), 1);
	assert_false(aliases_changed(a));
	assert_int_equal(utimensat(AT_FDCWD, path, later, 0), 0);
	assert_true(aliases_changed(a));	/* rewritten */
	unlink(path);
	assert_true(aliases_changed(a));	/* removed */
	aliases_free(a);
	free(path);
	/* no file configured: nothing to load, nothing changes */
	a = aliases_load("", warn_cb, &w);
	assert_int_equal(aliases_count(a), 0);
	assert_false(aliases_changed(a));
	aliases_free(a);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_line_table),
		cmocka_unit_test(test_length_bounds),
		cmocka_unit_test(test_target_count_and_line_bounds),
		cmocka_unit_test(test_load_and_lookup),
		cmocka_unit_test(test_missing_file_and_change),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
