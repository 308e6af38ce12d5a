/*
 * test_greylist_store.c - the greylist triplet store: replay of its log
 * (last record wins, torn and corrupt lines skipped, expired entries
 * dropped), the entry bound, pruning, compaction; and the greylisting
 * decision over it (filter/greylist.c).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <cmocka.h>

#include "core/log.h"
#include "core/util.h"
#include "filter/greylist.h"
#include "store/greylist_store.h"

static char dir[64], path[128];

static int setup(void **state)
{
	snprintf(dir, sizeof(dir), "/tmp/tern-grey-XXXXXX");
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/greylist.log", dir);
	log_set_quiet(1);
	return 0;
}

static int teardown(void **state)
{
	char tmp[160];
	unlink(path);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	unlink(tmp);
	rmdir(dir);
	return 0;
}

static struct grey_store *open_store(unsigned max, int64_t now)
{
	char *err = NULL;
	struct grey_store *g = grey_store_open(path, max, 3600, now, NULL, &err);
	assert_non_null(g);
	return g;
}

static size_t file_lines(void)
{
	FILE *f = fopen(path, "r");
	size_t n = 0;
	int c;
	assert_non_null(f);
	while ((c = fgetc(f)) != EOF)
		n += c == '\n';
	fclose(f);
	return n;
}

static void test_put_get_replay(void **state)
{
	struct grey_store *g = open_store(100, 1000);
	struct grey_entry e = { 1000, 1000, false }, out;

	assert_false(grey_store_get(g, "t:a", &out));
	grey_store_put(g, "t:a", &e, 1000);
	e.passed = true;
	e.last = 1010;
	grey_store_put(g, "t:a", &e, 1010);
	grey_store_put(g, "t:b", &e, 1010);
	assert_int_equal(grey_store_count(g), 2);
	grey_store_close(g);
	assert_int_equal(file_lines(), 3);

	g = open_store(100, 1020);
	assert_true(grey_store_get(g, "t:a", &out));
	assert_int_equal(out.first, 1000);
	assert_int_equal(out.last, 1010);
	assert_true(out.passed);
	assert_int_equal(grey_store_count(g), 2);
	grey_store_close(g);
	assert_int_equal(file_lines(), 2);   /* compacted at open */
}

static void test_torn_and_corrupt_lines(void **state)
{
	struct grey_store *g = open_store(100, 1000);
	struct grey_entry e = { 1000, 1000, true }, out;
	FILE *f;

	grey_store_put(g, "t:ok", &e, 1000);
	grey_store_close(g);
	f = fopen(path, "a");
	fputs("1000 1000 1 t:bad 0123456789abcdef\n", f);   /* checksum wrong */
	fputs("garbage\n", f);
	fputs("1000 1000 1 t:torn", f);                     /* no newline */
	fclose(f);
	g = open_store(100, 1000);
	assert_true(grey_store_get(g, "t:ok", &out));
	assert_false(grey_store_get(g, "t:bad", &out));
	assert_false(grey_store_get(g, "t:torn", &out));
	assert_int_equal(grey_store_count(g), 1);
	grey_store_close(g);
}

static void test_bound_and_prune(void **state)
{
	struct grey_store *g = open_store(16, 1000);
	struct grey_entry e = { 1000, 1000, false }, out;
	char key[32];

	for (int i = 0; i < 40; i++) {
		snprintf(key, sizeof(key), "t:%d", i);
		e.first = e.last = 1000 + i;
		grey_store_put(g, key, &e, e.last);
	}
	assert_int_equal(grey_store_count(g), 16);
	assert_false(grey_store_get(g, "t:0", &out));    /* the oldest went */
	assert_true(grey_store_get(g, "t:39", &out));
	/* expire is 3600: at 1030 + 3600 the ones last seen at 1030 or before go */
	assert_int_equal(grey_store_prune(g, 1030 + 3600), 7);   /* 1024 .. 1030 */
	assert_int_equal(grey_store_count(g), 9);
	grey_store_close(g);
	/* a replay later drops what expired meanwhile, and keeps the bound */
	g = open_store(16, 1035 + 3600);
	assert_int_equal(grey_store_count(g), 4);
	grey_store_close(g);
}

static void test_compaction_while_running(void **state)
{
	struct grey_store *g = open_store(100, 1000);
	struct grey_entry e = { 1000, 1000, false }, out;

	for (int i = 0; i < 5000; i++) {
		e.last = 1000 + i % 10;
		grey_store_put(g, i % 2 ? "t:odd" : "t:even", &e, e.last);
	}
	/* compacted along the way (more than 4096 records, 4 per entry) */
	assert_true(grey_store_log_records(g) < 5000);
	assert_true(file_lines() < 5000);
	grey_store_close(g);
	g = open_store(100, 1100);
	assert_true(grey_store_get(g, "t:odd", &out));
	assert_int_equal(out.last, 1009);
	grey_store_close(g);
}

static void test_key_escape(void **state)
{
	char out[64];
	grey_store_key_escape("a b%c\n\xff", out, sizeof(out));
	assert_string_equal(out, "a%20b%25c%0A%FF");
	grey_store_key_escape("abcdefgh", out, 6);   /* clipped, never overrun */
	assert_true(strlen(out) < 6);
}

static void test_greylist_decisions(void **state)
{
	char *err = NULL;
	struct greylist *gl = greylist_open(dir, 300, 3600, 100, NULL, &err);
	struct sockaddr_in a = { .sin_family = AF_INET }, b = a, other = a;
	struct sockaddr_in6 v6 = { .sin6_family = AF_INET6 };
	char net[64];
	int64_t now = now_unix();

	assert_non_null(gl);
	inet_pton(AF_INET, "192.0.2.10", &a.sin_addr);
	inet_pton(AF_INET, "192.0.2.77", &b.sin_addr);
	inet_pton(AF_INET, "198.51.100.1", &other.sin_addr);
	inet_pton(AF_INET6, "2001:db8:1:2:3:4:5:6", &v6.sin6_addr);
	greylist_client_net((struct sockaddr *)&a, net, sizeof(net));
	assert_string_equal(net, "192.0.2.0/24");
	greylist_client_net((struct sockaddr *)&v6, net, sizeof(net));
	assert_string_equal(net, "2001:db8:1:2::/64");

	assert_int_equal(greylist_check(gl, (struct sockaddr *)&a, "s@x", "r@y", now), GREYLIST_NEW);
	assert_int_equal(greylist_check(gl, (struct sockaddr *)&a, "S@X", "r@y", now + 10), GREYLIST_EARLY);
	assert_int_equal(greylist_check(gl, (struct sockaddr *)&other, "s@x", "r@y", now + 400), GREYLIST_NEW);
	/* the same /24 retries after the delay */
	assert_int_equal(greylist_check(gl, (struct sockaddr *)&b, "s@x", "r@y", now + 300), GREYLIST_PASSED);
	assert_int_equal(greylist_check(gl, (struct sockaddr *)&b, "s@x", "r@y", now + 301), GREYLIST_KNOWN);
	/* b passed: its new triplets pass at once; a did not */
	assert_int_equal(greylist_check(gl, (struct sockaddr *)&b, "new@x", "r@y", now + 302), GREYLIST_KNOWN);
	assert_int_equal(greylist_check(gl, (struct sockaddr *)&a, "new@x", "r@y", now + 302), GREYLIST_NEW);
	/* a space or '%' in an address stays one unambiguous key */
	assert_int_equal(greylist_check(gl, (struct sockaddr *)&a, "\"a b\"@x", "r@y", now), GREYLIST_NEW);
	assert_int_equal(greylist_check(gl, (struct sockaddr *)&a, "\"a%20b\"@x", "r@y", now), GREYLIST_NEW);
	greylist_close(gl);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_put_get_replay, setup, teardown),
		cmocka_unit_test_setup_teardown(test_torn_and_corrupt_lines, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bound_and_prune, setup, teardown),
		cmocka_unit_test_setup_teardown(test_compaction_while_running, setup, teardown),
		cmocka_unit_test_setup_teardown(test_key_escape, setup, teardown),
		cmocka_unit_test_setup_teardown(test_greylist_decisions, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
