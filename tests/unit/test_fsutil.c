/*
 * test_fsutil.c - fs_commit(): every item ends under its final name with
 * its data, a failed item does not stop the others, and commits from many
 * threads at once all land.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>
#include "core/fsutil.h"
#include "core/util.h"

struct fixture {
	char dir[64];
};

static int setup(void **state)
{
	struct fixture *f = xcalloc(1, sizeof(*f));
	snprintf(f->dir, sizeof(f->dir), "/tmp/tern-fsutil-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	char *cmd = xasprintf("rm -rf '%s'", f->dir);
	assert_int_equal(system(cmd), 0);
	free(cmd);
	free(f);
	return 0;
}

struct item {
	char tmp[512], dst[512], dir[256];
	int fd;
};

/* Write "text" into dir/tmp-NAME, to become dir/sub/NAME. */
static void make_item(struct item *it, const char *base, const char *sub, const char *name,
		      const char *text)
{
	snprintf(it->dir, sizeof(it->dir), "%s/%s", base, sub);
	assert_true(mkdir_p(it->dir, 0700));
	snprintf(it->tmp, sizeof(it->tmp), "%s/tmp-%s", base, name);
	snprintf(it->dst, sizeof(it->dst), "%s/%s", it->dir, name);
	it->fd = open(it->tmp, O_WRONLY | O_CREAT | O_EXCL, 0600);
	assert_true(it->fd >= 0);
	assert_true(write_all(it->fd, text, strlen(text)));
}

static void to_commit(struct item *it, struct fs_commit *c)
{
	c->fd = it->fd;
	c->tmp = it->tmp;
	c->dst = it->dst;
	c->dir = it->dir;
	c->err = -1;              /* fs_commit must set it */
}

static void assert_file(const char *path, const char *text)
{
	char buf[256];
	int fd = open(path, O_RDONLY);
	assert_true(fd >= 0);
	ssize_t n = read(fd, buf, sizeof(buf));
	close(fd);
	assert_int_equal(n, (ssize_t)strlen(text));
	assert_memory_equal(buf, text, strlen(text));
}

static void test_items_in_two_dirs(void **state)
{
	struct fixture *f = *state;
	struct item it[3];
	struct fs_commit c[3];

	make_item(&it[0], f->dir, "a", "one", "first\n");
	make_item(&it[1], f->dir, "b", "two", "second\n");
	make_item(&it[2], f->dir, "a", "three", "third\n");
	for (int i = 0; i < 3; i++)
		to_commit(&it[i], &c[i]);
	assert_true(fs_commit(c, 3));
	for (int i = 0; i < 3; i++) {
		assert_int_equal(c[i].err, 0);
		assert_int_equal(access(it[i].tmp, F_OK), -1);
		close(it[i].fd);
	}
	assert_file(it[0].dst, "first\n");
	assert_file(it[1].dst, "second\n");
	assert_file(it[2].dst, "third\n");
}

static void test_failed_item_alone(void **state)
{
	struct fixture *f = *state;
	struct item it[2];
	struct fs_commit c[2];

	make_item(&it[0], f->dir, "a", "gone", "lost\n");
	make_item(&it[1], f->dir, "a", "kept", "kept\n");
	assert_int_equal(unlink(it[0].tmp), 0);    /* its rename must fail */
	to_commit(&it[0], &c[0]);
	to_commit(&it[1], &c[1]);
	assert_false(fs_commit(c, 2));
	assert_int_equal(c[0].err, ENOENT);
	assert_int_equal(c[1].err, 0);
	assert_int_equal(access(it[0].dst, F_OK), -1);
	assert_file(it[1].dst, "kept\n");
	close(it[0].fd);
	close(it[1].fd);
}

/* One round with more directories than its table holds (64): the ones
 * past the table are synced one by one, and all land. */
#define MANY_DIRS 70

static void test_more_dirs_than_table(void **state)
{
	struct fixture *f = *state;
	struct item *it = xcalloc(MANY_DIRS, sizeof(*it));
	struct fs_commit *c = xcalloc(MANY_DIRS, sizeof(*c));
	char sub[32], name[32];

	for (int i = 0; i < MANY_DIRS; i++) {
		snprintf(sub, sizeof(sub), "d%d", i);
		snprintf(name, sizeof(name), "m%d", i);
		make_item(&it[i], f->dir, sub, name, name);
		to_commit(&it[i], &c[i]);
	}
	assert_true(fs_commit(c, MANY_DIRS));
	for (int i = 0; i < MANY_DIRS; i++) {
		snprintf(name, sizeof(name), "m%d", i);
		assert_int_equal(c[i].err, 0);
		assert_file(it[i].dst, name);
		close(it[i].fd);
	}
	free(it);
	free(c);
}

/* A commit never replaces a file already under the final name: that
 * item fails with EEXIST, the file there keeps its bytes and the new one
 * stays at tmp for the caller to name again. */
static void test_existing_dst_not_replaced(void **state)
{
	struct fixture *f = *state;
	struct item old, it;
	struct fs_commit c[2];

	make_item(&old, f->dir, "a", "same", "delivered before\n");
	to_commit(&old, &c[0]);
	assert_true(fs_commit(c, 1));
	close(old.fd);
	make_item(&it, f->dir, "a", "same", "newcomer\n");
	to_commit(&it, &c[1]);
	assert_false(fs_commit(&c[1], 1));
	assert_int_equal(c[1].err, EEXIST);
	assert_file(it.dst, "delivered before\n");
	assert_file(it.tmp, "newcomer\n");
	close(it.fd);
}

/* mkdir_p makes the whole chain, leaves existing directories be, and
 * fails (errno kept) where a file stands in the way. */
static void test_mkdir_p_chain(void **state)
{
	struct fixture *f = *state;
	char path[320], file[256];
	struct stat st;

	snprintf(path, sizeof(path), "%s/mail/example.test/alice/Maildir/new", f->dir);
	assert_true(mkdir_p(path, 0700));
	assert_int_equal(stat(path, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(st.st_mode & 0777, 0700);
	assert_true(mkdir_p(path, 0700));
	snprintf(file, sizeof(file), "%s/mail/example.test/bob", f->dir);
	close(open(file, O_WRONLY | O_CREAT, 0600));
	snprintf(path, sizeof(path), "%s/Maildir", file);
	errno = 0;
	assert_false(mkdir_p(path, 0700));
	assert_int_equal(errno, ENOTDIR);
}

#define THREADS 8
#define PER_THREAD 40

struct worker_arg {
	const char *base;
	int id;
	int failures;
};

static void *commit_many(void *p)
{
	struct worker_arg *a = p;
	for (int i = 0; i < PER_THREAD; i++) {
		struct item it;
		struct fs_commit c;
		char name[64];
		snprintf(name, sizeof(name), "t%d-%d", a->id, i);
		make_item(&it, a->base, a->id % 2 ? "odd" : "even", name, name);
		to_commit(&it, &c);
		if (!fs_commit(&c, 1) || c.err != 0)
			a->failures++;
		close(it.fd);
	}
	return NULL;
}

static void test_concurrent_commits(void **state)
{
	struct fixture *f = *state;
	pthread_t th[THREADS];
	struct worker_arg args[THREADS];

	for (int i = 0; i < THREADS; i++) {
		args[i] = (struct worker_arg){ .base = f->dir, .id = i };
		assert_int_equal(pthread_create(&th[i], NULL, commit_many, &args[i]), 0);
	}
	for (int i = 0; i < THREADS; i++) {
		assert_int_equal(pthread_join(th[i], NULL), 0);
		assert_int_equal(args[i].failures, 0);
	}
	for (int t = 0; t < THREADS; t++)
		for (int i = 0; i < PER_THREAD; i++) {
			char path[256], name[64];
			snprintf(name, sizeof(name), "t%d-%d", t, i);
			snprintf(path, sizeof(path), "%s/%s/%s", f->dir, t % 2 ? "odd" : "even", name);
			assert_file(path, name);
		}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_items_in_two_dirs, setup, teardown),
		cmocka_unit_test_setup_teardown(test_failed_item_alone, setup, teardown),
		cmocka_unit_test_setup_teardown(test_more_dirs_than_table, setup, teardown),
		cmocka_unit_test_setup_teardown(test_concurrent_commits, setup, teardown),
		cmocka_unit_test_setup_teardown(test_existing_dst_not_replaced, setup, teardown),
		cmocka_unit_test_setup_teardown(test_mkdir_p_chain, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
