/*
 * test_local_stream.c - all-local mail written once (delivery/local.h's
 * stream): the message streams into the first recipient's Maildir file,
 * fields inserted in front land after that recipient's Return-Path: and
 * Delivered-To:, the other recipients' copies are made from the file, and
 * every name carries the right ,S= and ,W=.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <unistd.h>
#include <cmocka.h>

#include "core/config.h"
#include "core/util.h"
#include "delivery/local.h"
#include "store/maildir.h"
#include "store/queue.h"

/* The one file in dir (asserted), read whole; its name in *name. */
static char *only_file(const char *dir, char **name, size_t *len)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	char *path = NULL, *data;
	FILE *f;

	assert_non_null(d);
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		assert_null(path);
		path = xasprintf("%s/%s", dir, de->d_name);
		*name = xstrdup(de->d_name);
	}
	closedir(d);
	assert_non_null(path);
	f = fopen(path, "rb");
	assert_non_null(f);
	data = xmalloc(1 << 20);
	*len = fread(data, 1, 1 << 20, f);
	data[*len] = '\0';
	fclose(f);
	free(path);
	return data;
}

static void check_copy(const char *state, const char *user, const char *body)
{
	char *dir = xasprintf("%s/mail/example.test/%s/Maildir/new", state, user), *name = NULL, *data;
	char *want = xasprintf("Return-Path: <a@remote.test>\nDelivered-To: %s@example.test\n%s", user, body);
	char *sizes = NULL;
	size_t len, lf = 0;

	data = only_file(dir, &name, &len);
	assert_string_equal(data, want);
	for (size_t i = 0; i < len; i++)
		lf += data[i] == '\n';
	sizes = xasprintf(",S=%zu,W=%zu", len, len + lf);
	assert_non_null(strstr(name, sizes));
	free(dir);
	free(name);
	free(data);
	free(want);
	free(sizes);
}

static void test_stream_two_recipients_with_insert(void **state)
{
	char tmpl[] = "/tmp/test_local_stream_XXXXXX";
	struct config *cfg = config_dev_default();
	struct queue_env *env = xcalloc(1, sizeof(*env));
	struct local_stream ls;
	char *st, *cmd;
	static const char body[] = "Subject: s\n\nline\n";

	assert_non_null(mkdtemp(tmpl));
	free(cfg->state_dir);
	cfg->state_dir = xstrdup(tmpl);
	env->from = xstrdup("a@remote.test");
	snprintf(env->id, sizeof(env->id), "00000000000000AA");
	queue_env_add_rcpt(env, "bob@example.test", NULL)->local = true;
	queue_env_add_rcpt(env, "carol@example.test", NULL)->local = true;
	/* no Maildir yet: no stream (it would be made on the loop) */
	assert_false(local_stream_open(cfg, env, &ls));
	st = xasprintf("%s/mail/example.test/bob/Maildir", tmpl);
	assert_true(maildir_create(st));
	free(st);
	assert_true(local_stream_open(cfg, env, &ls));
	assert_true(local_stream_write(&ls, body, 12));
	assert_true(local_stream_insert_front(&ls, "X-Check: ok\n", 12));
	assert_true(local_stream_write(&ls, body + 12, strlen(body) - 12));
	/* small: all of it still in the stream's buffer, written by the
	 * worker that commits it (local_deliver_direct flushes it) */
	assert_int_equal(ls.file_len, 0);
	env->msg_offset = ls.prefix_len;
	env->msg_len = ls.written;
	env->msg_lines = 4;
	assert_true(local_deliver_direct(cfg, env, ls.mf.fd, &ls));
	local_stream_close(&ls);
	assert_int_equal(env->rcpt[0].state, RCPT_DONE);
	assert_int_equal(env->rcpt[1].state, RCPT_DONE);
	check_copy(tmpl, "bob", "X-Check: ok\nSubject: s\n\nline\n");
	check_copy(tmpl, "carol", "X-Check: ok\nSubject: s\n\nline\n");
	st = xasprintf("%s/mail/example.test/bob/Maildir/tmp", tmpl);
	DIR *d = opendir(st);
	struct dirent *de;
	while ((de = readdir(d)) != NULL)
		assert_true(de->d_name[0] == '.');
	closedir(d);
	free(st);
	cmd = xasprintf("rm -rf '%s'", tmpl);
	assert_int_equal(system(cmd), 0);
	free(cmd);
	queue_env_free(env);
	config_free(cfg);
}

/* Held for fields in front (a check's, at the end): a message bigger
 * than the buffer stays in memory, nothing reaches the file before the
 * end, the field goes in front there, and the copy is whole; past
 * LOCAL_STREAM_HOLD_MAX the stream says it has no room. */
static void test_stream_hold(void **state)
{
	char tmpl[] = "/tmp/test_local_stream_XXXXXX";
	struct config *cfg = config_dev_default();
	struct queue_env *env = xcalloc(1, sizeof(*env));
	struct local_stream ls;
	char *st, *cmd, *body, *want;
	size_t n = 0, lines = 0;

	assert_non_null(mkdtemp(tmpl));
	free(cfg->state_dir);
	cfg->state_dir = xstrdup(tmpl);
	env->from = xstrdup("a@remote.test");
	snprintf(env->id, sizeof(env->id), "00000000000000AC");
	queue_env_add_rcpt(env, "bob@example.test", NULL)->local = true;
	st = xasprintf("%s/mail/example.test/bob/Maildir", tmpl);
	assert_true(maildir_create(st));
	free(st);
	body = xmalloc(120000);
	n += (size_t)sprintf(body, "Subject: held\n\n");
	while (n < 100000)
		n += (size_t)sprintf(body + n, "line %zu\n", lines++);
	assert_true(local_stream_open(cfg, env, &ls));
	local_stream_hold(&ls);
	for (size_t off = 0; off < n; off += 4000) {
		size_t k = n - off < 4000 ? n - off : 4000;
		assert_true(local_stream_room(&ls, k));
		assert_true(local_stream_write(&ls, body + off, k));
	}
	assert_int_equal(ls.file_len, 0);
	assert_false(local_stream_room(&ls, LOCAL_STREAM_HOLD_MAX));
	assert_true(local_stream_insert_front(&ls, "X-Check: ok\n", 12));
	assert_int_equal(ls.file_len, 0);
	env->msg_offset = ls.prefix_len;
	env->msg_len = ls.written;
	env->msg_lines = lines + 3;
	assert_true(local_deliver_direct(cfg, env, ls.mf.fd, &ls));
	local_stream_close(&ls);
	assert_int_equal(env->rcpt[0].state, RCPT_DONE);
	want = xasprintf("X-Check: ok\n%.*s", (int)n, body);
	check_copy(tmpl, "bob", want);
	cmd = xasprintf("rm -rf '%s'", tmpl);
	assert_int_equal(system(cmd), 0);
	free(cmd);
	free(want);
	free(body);
	queue_env_free(env);
	config_free(cfg);
}

/* A message bigger than the stream's buffer: what does not fit goes out
 * with the buffer in one writev, a field inserted in front afterwards is
 * moved in the file, and the copy is whole. */
static void test_stream_big_message(void **state)
{
	char tmpl[] = "/tmp/test_local_stream_XXXXXX";
	struct config *cfg = config_dev_default();
	struct queue_env *env = xcalloc(1, sizeof(*env));
	struct local_stream ls;
	char *st, *cmd, *body, *want;
	size_t n = 0, lines = 0;

	assert_non_null(mkdtemp(tmpl));
	free(cfg->state_dir);
	cfg->state_dir = xstrdup(tmpl);
	env->from = xstrdup("a@remote.test");
	snprintf(env->id, sizeof(env->id), "00000000000000AB");
	queue_env_add_rcpt(env, "bob@example.test", NULL)->local = true;
	st = xasprintf("%s/mail/example.test/bob/Maildir", tmpl);
	assert_true(maildir_create(st));
	free(st);
	body = xmalloc(50000);
	n += (size_t)sprintf(body, "Subject: big\n\n");
	while (n < 40000)
		n += (size_t)sprintf(body + n, "line %zu\n", lines++);
	assert_true(local_stream_open(cfg, env, &ls));
	assert_true(local_stream_write(&ls, body, 10));           /* buffered */
	assert_true(local_stream_write(&ls, body + 10, n - 10));  /* written through */
	assert_int_equal(ls.buf_len, 0);
	assert_int_equal(ls.file_len, ls.prefix_len + n);
	assert_true(local_stream_insert_front(&ls, "X-Check: ok\n", 12));
	env->msg_offset = ls.prefix_len;
	env->msg_len = ls.written;
	env->msg_lines = lines + 3;
	assert_true(local_deliver_direct(cfg, env, ls.mf.fd, &ls));
	local_stream_close(&ls);
	assert_int_equal(env->rcpt[0].state, RCPT_DONE);
	want = xasprintf("X-Check: ok\n%.*s", (int)n, body);
	check_copy(tmpl, "bob", want);
	cmd = xasprintf("rm -rf '%s'", tmpl);
	assert_int_equal(system(cmd), 0);
	free(cmd);
	free(want);
	free(body);
	queue_env_free(env);
	config_free(cfg);
}

static void test_stream_not_for_remote_mail(void **state)
{
	struct config *cfg = config_dev_default();
	struct queue_env *env = xcalloc(1, sizeof(*env));
	struct local_stream ls;

	env->from = xstrdup("a@remote.test");
	queue_env_add_rcpt(env, "bob@example.test", NULL)->local = true;
	queue_env_add_rcpt(env, "x@remote.test", NULL)->local = false;
	assert_false(local_stream_open(cfg, env, &ls));
	assert_false(ls.open);
	local_stream_close(&ls);
	queue_env_free(env);
	config_free(cfg);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_stream_two_recipients_with_insert),
		cmocka_unit_test(test_stream_big_message),
		cmocka_unit_test(test_stream_hold),
		cmocka_unit_test(test_stream_not_for_remote_mail),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
