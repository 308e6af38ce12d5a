/*
 * test_queue.c - the durable queue: write, commit, load back, the state
 * file round trip, abort, recovery of partial files, and refusal of files
 * cut short or tampered with.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "core/util.h"
#include "store/queue.h"

struct fixture {
	char dir[64];
	struct queue *q;
};

static int setup(void **state)
{
	struct fixture *f = xcalloc(1, sizeof(*f));
	strcpy(f->dir, "/tmp/test_queue_XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	f->q = queue_open(f->dir);
	assert_non_null(f->q);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	char *cmd = xasprintf("rm -rf '%s'", f->dir);
	queue_close(f->q);
	assert_int_equal(system(cmd), 0);
	free(cmd);
	free(f);
	return 0;
}

static size_t count_dir(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	size_t n = 0;
	assert_non_null(d);
	while ((de = readdir(d)) != NULL)
		if (de->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

static struct queue_env *make_env(void)
{
	struct queue_env *env = xcalloc(1, sizeof(*env));
	struct queue_rcpt *r;
	env->arrival = 1700000000;
	env->from = xstrdup("sender@remote.test");
	env->helo = xstrdup("client test");           /* a space: escaped */
	env->client_ip = xstrdup("127.0.0.1");
	env->body = 2;
	env->ret = 1;
	env->envid = xstrdup("QQ%314159");            /* a '%': escaped */
	r = queue_env_add_rcpt(env, "alice@example.test", "team@example.test");
	r->local = true;
	r->notify = 6;
	r->orcpt = xstrdup("rfc822;team@example.test");
	r = queue_env_add_rcpt(env, "bob@remote.test", NULL);
	r->local = false;
	return env;
}

static const char msg[] = "Subject: queued\n\nline one\n.line two\n";

static char *commit_one(struct fixture *f)
{
	struct queue_env *env = make_env();
	struct queue_writer *w = queue_writer_new(f->q, env);
	char *id;
	assert_non_null(w);
	assert_int_equal(strlen(env->id), QUEUE_ID_LEN);
	assert_string_equal(queue_writer_id(w), env->id);
	assert_true(queue_writer_write(w, msg, 10));
	assert_true(queue_writer_write(w, msg + 10, strlen(msg) - 10));
	assert_true(queue_writer_commit(w, 4, true));
	queue_writer_free(w);
	id = xstrdup(env->id);
	queue_env_free(env);
	return id;
}

static void test_write_commit_load(void **state)
{
	struct fixture *f = *state;
	char *id = commit_one(f);
	int fd = -1;
	char buf[256];
	struct queue_env *env = queue_load(f->q, id, &fd);

	assert_non_null(env);
	assert_string_equal(env->id, id);
	assert_int_equal(env->arrival, 1700000000);
	assert_string_equal(env->from, "sender@remote.test");
	assert_string_equal(env->helo, "client test");
	assert_string_equal(env->client_ip, "127.0.0.1");
	assert_null(env->auth_user);
	assert_int_equal(env->body, 2);
	assert_int_equal(env->ret, 1);
	assert_string_equal(env->envid, "QQ%314159");
	assert_int_equal(env->nrcpt, 2);
	assert_string_equal(env->rcpt[0].addr, "alice@example.test");
	assert_string_equal(env->rcpt[0].orig, "team@example.test");
	assert_string_equal(env->rcpt[0].orcpt, "rfc822;team@example.test");
	assert_int_equal(env->rcpt[0].notify, 6);
	assert_true(env->rcpt[0].local);
	assert_int_equal(env->rcpt[0].state, RCPT_PENDING);
	assert_string_equal(env->rcpt[1].addr, "bob@remote.test");
	assert_null(env->rcpt[1].orig);
	assert_null(env->rcpt[1].orcpt);
	assert_false(env->rcpt[1].local);
	assert_int_equal(env->msg_len, strlen(msg));
	assert_int_equal(env->msg_lines, 4);
	assert_true(env->eight_bit);
	assert_true(fd >= 0);
	assert_int_equal(pread(fd, buf, env->msg_len, (off_t)env->msg_offset), (ssize_t)strlen(msg));
	assert_memory_equal(buf, msg, strlen(msg));
	close(fd);
	queue_env_free(env);

	/* committed: nothing left in tmp/, one file in msg/ */
	char *tmp = xasprintf("%s/queue/tmp", f->dir);
	assert_int_equal(count_dir(tmp), 0);
	free(tmp);
	assert_int_equal(count_dir(queue_msg_dir(f->q)), 1);
	free(id);
}

/* A BINARYMIME message (RFC 3030) may hold NULs and need not end with
 * LF; its SMTPUTF8 flag comes back too. */
static void test_binary_body_and_smtputf8(void **state)
{
	static const char bin[] = "Subject: b\n\n\0\r\nTERN-END x\0\r";
	struct fixture *f = *state;
	struct queue_env *env = make_env();
	struct queue_writer *w;
	char buf[64], *id;
	int fd = -1;

	env->body = 3;
	env->smtputf8 = true;
	w = queue_writer_new(f->q, env);
	assert_non_null(w);
	assert_true(queue_writer_write(w, bin, sizeof(bin) - 1));
	assert_true(queue_writer_commit(w, 2, true));
	queue_writer_free(w);
	id = xstrdup(env->id);
	queue_env_free(env);
	env = queue_load(f->q, id, &fd);
	assert_non_null(env);
	assert_int_equal(env->body, 3);
	assert_true(env->smtputf8);
	assert_int_equal(env->msg_len, sizeof(bin) - 1);
	assert_int_equal(pread(fd, buf, env->msg_len, (off_t)env->msg_offset), (ssize_t)(sizeof(bin) - 1));
	assert_memory_equal(buf, bin, sizeof(bin) - 1);
	close(fd);
	queue_env_free(env);
	/* and a message without the flag has none */
	free(id);
	id = commit_one(f);
	env = queue_load(f->q, id, NULL);
	assert_non_null(env);
	assert_false(env->smtputf8);
	assert_false(env->junk);
	assert_false(env->dkim_signed);
	queue_env_free(env);
	free(id);
}

/* The Junk flag (DMARC quarantine) is set at the end of DATA, after the
 * envelope is written: it rides in the trailer. */
static void test_junk_in_trailer(void **state)
{
	struct fixture *f = *state;
	struct queue_env *env = make_env();
	struct queue_writer *w;
	char *id;

	w = queue_writer_new(f->q, env);
	assert_non_null(w);
	assert_true(queue_writer_write(w, "Subject: j\n\nx\n", 15));
	env->junk = true;
	env->dkim_signed = true;
	assert_true(queue_writer_commit(w, 3, false));
	queue_writer_free(w);
	id = xstrdup(env->id);
	queue_env_free(env);
	env = queue_load(f->q, id, NULL);
	assert_non_null(env);
	assert_true(env->junk);
	assert_true(env->dkim_signed);
	assert_int_equal(env->msg_len, 15);
	queue_env_free(env);
	free(id);
}

/* Fields put in front of a message already written (a check's, at the
 * end of DATA): the message moves up intact, across several blocks, and
 * what is written afterwards follows it. */
static void test_insert_front(void **state)
{
	struct fixture *f = *state;
	struct queue_env *env = make_env();
	struct queue_writer *w = queue_writer_new(f->q, env);
	static const char field[] = "X-Check: pass\n";
	size_t body_len = 200000, total = strlen(field) + body_len + 5;
	char *body = xmalloc(body_len), *want = xmalloc(total), *got = xmalloc(total);
	char id[QUEUE_ID_LEN + 1];
	int fd = -1;

	for (size_t i = 0; i < body_len; i++)
		body[i] = (char)('a' + i % 23);
	assert_non_null(w);
	assert_true(queue_writer_write(w, body, body_len));
	assert_true(queue_writer_insert_front(w, field, strlen(field)));
	assert_true(queue_writer_write(w, "tail\n", 5));
	assert_int_equal(queue_writer_size(w), total);
	assert_true(queue_writer_commit(w, 2, false));
	queue_writer_free(w);
	memcpy(id, env->id, sizeof(id));
	queue_env_free(env);
	memcpy(want, field, strlen(field));
	memcpy(want + strlen(field), body, body_len);
	memcpy(want + strlen(field) + body_len, "tail\n", 5);

	env = queue_load(f->q, id, &fd);
	assert_non_null(env);
	assert_int_equal(env->msg_len, total);
	assert_int_equal(pread(fd, got, total, (off_t)env->msg_offset), (ssize_t)total);
	assert_memory_equal(got, want, total);
	close(fd);
	queue_env_free(env);
	free(body);
	free(want);
	free(got);
}

/* Room held in front (a check will add fields at the end): the fields
 * go into it and the message stays where it was written - no octet of
 * it moves; fields past the room still go in, by moving the message. */
static void test_front_room(void **state)
{
	struct fixture *f = *state;
	struct queue_env *env = make_env();
	struct queue_writer *w = queue_writer_new(f->q, env);
	static const char field[] = "Authentication-Results: mx; spf=pass\n";
	size_t body_len = 1200000, big = QUEUE_FRONT_ROOM, total;
	char *body = xmalloc(body_len), *bigf = xmalloc(big), *want, *got;
	char id[QUEUE_ID_LEN + 1];
	uint64_t start;
	int fd = -1;

	for (size_t i = 0; i < body_len; i++)
		body[i] = (char)('a' + i % 23);
	memset(bigf, 'x', big - 1);
	memcpy(bigf, "X-Big: ", 7);
	bigf[big - 1] = '\n';
	assert_non_null(w);
	assert_true(queue_writer_reserve_front(w, QUEUE_FRONT_ROOM));
	start = queue_writer_offset(w);
	assert_true(queue_writer_write(w, body, body_len));
	assert_false(queue_writer_reserve_front(w, 100));   /* too late */
	assert_true(queue_writer_insert_front(w, field, strlen(field)));
	/* in the room: the message octets are where they were */
	assert_int_equal(queue_writer_offset(w), start - strlen(field));
	got = xmalloc(body_len);
	assert_int_equal(pread(queue_writer_fd(w), got, body_len, (off_t)start), (ssize_t)body_len);
	assert_memory_equal(got, body, body_len);
	free(got);
	/* no room left for this one: moved, still whole */
	assert_true(queue_writer_insert_front(w, bigf, big));
	total = big + strlen(field) + body_len;
	assert_int_equal(queue_writer_size(w), total);
	assert_true(queue_writer_commit(w, 3, false));
	queue_writer_free(w);
	memcpy(id, env->id, sizeof(id));
	queue_env_free(env);
	want = xmalloc(total);
	got = xmalloc(total);
	memcpy(want, bigf, big);
	memcpy(want + big, field, strlen(field));
	memcpy(want + big + strlen(field), body, body_len);
	env = queue_load(f->q, id, &fd);
	assert_non_null(env);   /* the padding left is skipped */
	assert_int_equal(env->msg_len, total);
	assert_int_equal(pread(fd, got, total, (off_t)env->msg_offset), (ssize_t)total);
	assert_memory_equal(got, want, total);
	close(fd);
	queue_env_free(env);
	free(body);
	free(bigf);
	free(want);
	free(got);
}

/* A scratch file recycled after a direct delivery keeps its bytes; a
 * shorter message committed from it later must not carry them. */
/* A milter changed the envelope after the file was started: written
 * again, longer and then shorter, with what was already written of the
 * message moved behind it; the rest follows it. */
static void test_set_envelope(void **state)
{
	struct fixture *f = *state;
	struct queue_env *env = make_env();
	struct queue_writer *w = queue_writer_new(f->q, env);
	char buf[256], *id;
	int fd = -1;

	assert_non_null(w);
	assert_true(queue_writer_write(w, msg, 16));
	free(env->from);
	env->from = xstrdup("a-much-longer-sender-address@changed.example.test");
	queue_env_add_rcpt(env, "carol@example.test", "carol@example.test")->local = true;
	assert_true(queue_writer_set_envelope(w, env));
	assert_true(queue_writer_write(w, msg + 16, 4));
	free(env->from);
	env->from = xstrdup("s@x.test");
	assert_true(queue_writer_set_envelope(w, env));
	assert_true(queue_writer_write(w, msg + 20, strlen(msg) - 20));
	assert_true(queue_writer_commit(w, 4, false));
	queue_writer_free(w);
	id = xstrdup(env->id);
	queue_env_free(env);

	env = queue_load(f->q, id, &fd);
	assert_non_null(env);
	assert_string_equal(env->from, "s@x.test");
	assert_int_equal(env->nrcpt, 3);
	assert_string_equal(env->rcpt[2].addr, "carol@example.test");
	assert_true(env->rcpt[2].local);
	assert_int_equal(env->msg_len, strlen(msg));
	assert_int_equal(pread(fd, buf, env->msg_len, (off_t)env->msg_offset), (ssize_t)strlen(msg));
	assert_memory_equal(buf, msg, strlen(msg));
	close(fd);
	queue_env_free(env);
	free(id);
}

static void test_recycled_scratch_cut_to_size(void **state)
{
	struct fixture *f = *state;
	struct queue_env *env = make_env();
	struct queue_writer *w = queue_writer_new(f->q, env);
	char big[8192], path[4096];
	struct stat st;
	int fd = -1;

	memset(big, 'x', sizeof(big));
	assert_non_null(w);
	assert_true(queue_writer_write(w, big, sizeof(big)));
	queue_writer_recycle(w, true);
	queue_writer_free(w);
	queue_env_free(env);

	char *id = commit_one(f);
	snprintf(path, sizeof(path), "%s/%s", queue_msg_dir(f->q), id);
	assert_int_equal(stat(path, &st), 0);
	assert_true(st.st_size < 1024);
	env = queue_load(f->q, id, &fd);
	assert_non_null(env);
	assert_int_equal(env->msg_len, strlen(msg));
	close(fd);
	queue_env_free(env);
	free(id);
}

/* A refused or abandoned message leaves an empty scratch file. */
static void test_recycled_refused_is_emptied(void **state)
{
	struct fixture *f = *state;
	struct queue_env *env = make_env();
	struct queue_writer *w = queue_writer_new(f->q, env);
	char *tmp = xasprintf("%s/queue/tmp", f->dir);
	struct dirent *de;
	struct stat st;
	char path[4096];
	int files = 0;

	assert_non_null(w);
	assert_true(queue_writer_write(w, msg, strlen(msg)));
	queue_writer_recycle(w, false);
	queue_writer_free(w);
	queue_env_free(env);
	DIR *d = opendir(tmp);
	assert_non_null(d);
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", tmp, de->d_name);
		assert_int_equal(stat(path, &st), 0);
		assert_int_equal(st.st_size, 0);
		files++;
	}
	closedir(d);
	assert_int_equal(files, 1);
	free(tmp);
}

/* A finished message goes back to the pool and carries the next one. */
static void test_retire_reuses_file(void **state)
{
	struct fixture *f = *state;
	char *id = commit_one(f);
	char *tmp = xasprintf("%s/queue/tmp", f->dir);
	struct stat st1, st2;
	char path[4096];
	int fd = -1;

	snprintf(path, sizeof(path), "%s/%s", queue_msg_dir(f->q), id);
	assert_int_equal(stat(path, &st1), 0);
	assert_true(queue_retire(f->q, id));
	assert_int_equal(count_dir(queue_msg_dir(f->q)), 0);
	assert_int_equal(count_dir(tmp), 1);

	char *id2 = commit_one(f);
	assert_string_not_equal(id, id2);
	snprintf(path, sizeof(path), "%s/%s", queue_msg_dir(f->q), id2);
	assert_int_equal(stat(path, &st2), 0);
	assert_int_equal(st2.st_ino, st1.st_ino);      /* the same file */
	assert_int_equal(count_dir(tmp), 0);
	struct queue_env *env = queue_load(f->q, id2, &fd);
	assert_non_null(env);
	close(fd);
	queue_env_free(env);
	assert_true(queue_remove(f->q, id2));
	assert_int_equal(count_dir(queue_msg_dir(f->q)), 0);
	assert_int_equal(count_dir(tmp), 0);
	free(tmp);
	free(id);
	free(id2);
}

static void test_state_round_trip(void **state)
{
	struct fixture *f = *state;
	char *id = commit_one(f);
	struct queue_env *env = queue_load(f->q, id, NULL);

	assert_non_null(env);
	env->held = true;
	env->delay_warned = true;
	env->rcpt[0].state = RCPT_DONE;
	env->rcpt[0].status = xstrdup("2.0.0");
	env->rcpt[0].last_reply = xstrdup("250 2.0.0 Delivered to Maildir");
	env->rcpt[1].state = RCPT_DEFERRED;
	env->rcpt[1].attempts = 3;
	env->rcpt[1].next_try = 1700003600;
	env->rcpt[1].remote_mta = xstrdup("mx.remote.test");
	env->rcpt[1].last_reply = xstrdup("451 4.7.1 Try again\nlater %");
	assert_true(queue_save_state(f->q, env));
	queue_env_free(env);

	env = queue_load(f->q, id, NULL);
	assert_non_null(env);
	assert_true(env->held);
	assert_true(env->delay_warned);
	assert_int_equal(env->rcpt[0].state, RCPT_DONE);
	assert_string_equal(env->rcpt[0].status, "2.0.0");
	assert_string_equal(env->rcpt[0].last_reply, "250 2.0.0 Delivered to Maildir");
	assert_null(env->rcpt[0].remote_mta);
	assert_int_equal(env->rcpt[1].state, RCPT_DEFERRED);
	assert_int_equal(env->rcpt[1].attempts, 3);
	assert_int_equal(env->rcpt[1].next_try, 1700003600);
	assert_string_equal(env->rcpt[1].remote_mta, "mx.remote.test");
	assert_string_equal(env->rcpt[1].last_reply, "451 4.7.1 Try again\nlater %");
	queue_env_free(env);

	assert_true(queue_remove(f->q, id));
	assert_null(queue_load(f->q, id, NULL));
	assert_int_equal(count_dir(queue_msg_dir(f->q)), 0);
	assert_true(queue_remove(f->q, id));   /* gone already: still fine */
	free(id);
}

static void test_abort_leaves_nothing(void **state)
{
	struct fixture *f = *state;
	struct queue_env *env = make_env();
	struct queue_writer *w = queue_writer_new(f->q, env);
	char *tmp = xasprintf("%s/queue/tmp", f->dir);

	assert_non_null(w);
	assert_true(queue_writer_write(w, msg, strlen(msg)));
	assert_int_equal(count_dir(tmp), 1);
	queue_writer_abort(w);
	queue_writer_free(w);
	assert_int_equal(count_dir(tmp), 0);
	assert_int_equal(count_dir(queue_msg_dir(f->q)), 0);
	assert_null(queue_load(f->q, env->id, NULL));
	queue_env_free(env);
	free(tmp);
}

static void test_recover_removes_partial_and_orphans(void **state)
{
	struct fixture *f = *state;
	struct queue_env *env = make_env();
	struct queue_writer *w = queue_writer_new(f->q, env);
	char *id = commit_one(f);
	char *tmp = xasprintf("%s/queue/tmp", f->dir);
	char *orphan = xasprintf("%s/0000000000000001.st", queue_msg_dir(f->q));
	char *stray = xasprintf("%s/0000000000000002", tmp);
	FILE *o;

	/* a message being written when the process died, a stray partial
	 * file, and a state file whose message was removed */
	assert_non_null(w);
	assert_true(queue_writer_write(w, msg, strlen(msg)));
	assert_non_null(o = fopen(orphan, "w"));
	fputs("held 0\n", o);
	fclose(o);
	assert_non_null(o = fopen(stray, "w"));
	fclose(o);
	assert_int_equal(count_dir(tmp), 2);

	queue_recover(f->q);
	assert_int_equal(count_dir(tmp), 0);
	assert_int_equal(access(orphan, F_OK), -1);
	/* the committed message stays and loads */
	struct queue_env *back = queue_load(f->q, id, NULL);
	assert_non_null(back);
	queue_env_free(back);
	assert_int_equal(count_dir(queue_msg_dir(f->q)), 1);

	queue_writer_free(w);
	queue_env_free(env);
	free(id);
	free(tmp);
	free(orphan);
	free(stray);
}

/* ---- log lines: the queue id under queue= -------------------------------- */

struct capture {
	char path[64];
	int saved;
};

static void capture_begin(struct capture *c)
{
	int fd;

	strcpy(c->path, "/tmp/test_queue_log_XXXXXX");
	assert_true((fd = mkstemp(c->path)) >= 0);
	c->saved = dup(STDERR_FILENO);
	assert_true(dup2(fd, STDERR_FILENO) >= 0);
	close(fd);
}

/* The captured log; free it. */
static char *capture_end(struct capture *c)
{
	char *text = xcalloc(1, 65536);
	FILE *in;

	dup2(c->saved, STDERR_FILENO);
	close(c->saved);
	assert_non_null(in = fopen(c->path, "r"));
	fread(text, 1, 65535, in);
	fclose(in);
	unlink(c->path);
	return text;
}

static void test_error_lines_name_the_message(void **state)
{
	struct fixture *f = *state;
	struct queue_env *env = make_env();
	struct queue_writer *w = queue_writer_new(f->q, env);
	char *stray = xasprintf("%s/queue/tmp/00000000000000AB.7", f->dir);
	char *want_write, *want_commit, *want_partial, *log;
	struct capture c;
	FILE *o;
	int ro = open("/dev/null", O_RDONLY);

	assert_non_null(w);
	assert_true(ro >= 0);
	assert_non_null(o = fopen(stray, "w"));
	fclose(o);
	want_write = xasprintf("event=queue_error op=write queue=%s error=", env->id);
	want_commit = xasprintf("event=queue_error op=commit queue=%s error=", env->id);
	want_partial = xasprintf("event=queue_recover action=remove_partial queue=00000000000000AB file=");
	/* The writer's file turned read-only: the write fails with EBADF. */
	assert_true(dup2(ro, queue_writer_fd(w)) >= 0);
	close(ro);
	capture_begin(&c);
	assert_false(queue_writer_write(w, msg, strlen(msg)));
	assert_false(queue_writer_commit(w, 4, false));
	queue_writer_free(w);
	queue_recover(f->q);
	log = capture_end(&c);
	assert_non_null(strstr(log, want_write));
	assert_non_null(strstr(log, want_commit));
	assert_non_null(strstr(log, want_partial));
	assert_null(strstr(log, " id="));
	free(log);
	free(want_write);
	free(want_commit);
	free(want_partial);
	free(stray);
	queue_env_free(env);
}

/* Write text as queue/msg/NAME (a file of an earlier run). */
static char *put_msg_file(struct fixture *f, const char *name, const char *text)
{
	char *path = xasprintf("%s/%s", queue_msg_dir(f->q), name);
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	return path;
}

static void assert_file_is(const char *path, const char *text)
{
	char buf[256];
	int fd = open(path, O_RDONLY);
	assert_true(fd >= 0);
	ssize_t n = read(fd, buf, sizeof(buf));
	close(fd);
	assert_int_equal(n, (ssize_t)strlen(text));
	assert_memory_equal(buf, text, strlen(text));
}

/* The clock stepped back: the queue holds ids from "the future".  Ids
 * given out after a restart come after every queued one (the counter is
 * seeded from the queue), so nothing queued can be hit. */
static void test_ids_follow_the_queue_after_restart(void **state)
{
	struct fixture *f = *state;
	/* a day ahead of now, in microseconds */
	uint64_t ahead = ((uint64_t)time(NULL) + 86400) * 1000000;
	char future[QUEUE_ID_LEN + 1], st[QUEUE_ID_LEN + 4];

	snprintf(future, sizeof(future), "%016llX", (unsigned long long)ahead);
	snprintf(st, sizeof(st), "%016llX.st", (unsigned long long)(ahead + 5));
	free(put_msg_file(f, st, "held 1\n"));   /* a state file counts too */
	char *path = put_msg_file(f, future, "queued earlier\n");
	queue_close(f->q);
	f->q = queue_open(f->dir);
	assert_non_null(f->q);
	char *id = commit_one(f);
	assert_true(strcmp(id, future) > 0);
	assert_true(strtoull(id, NULL, 16) > ahead + 5);
	assert_file_is(path, "queued earlier\n");
	free(path);
	free(id);
}

/* The id a writer holds is taken by the time it commits (another process
 * on the same state directory, or a file the seeding could not see): the
 * commit never replaces that file; the message gets a new id, in its
 * envelope, in the caller's env and under its file name. */
static void test_taken_id_commits_under_a_new_one(void **state)
{
	struct fixture *f = *state;
	struct queue_env *env = make_env();
	struct queue_writer *w = queue_writer_new(f->q, env);
	char taken[QUEUE_ID_LEN + 1], head[64];
	int fd = -1;

	assert_non_null(w);
	snprintf(taken, sizeof(taken), "%s", env->id);
	char *path = put_msg_file(f, taken, "someone else's\n");
	assert_true(queue_writer_write(w, msg, strlen(msg)));
	assert_true(queue_writer_commit(w, 4, false));
	assert_string_not_equal(env->id, taken);
	assert_string_equal(queue_writer_id(w), env->id);
	assert_true(strcmp(env->id, taken) > 0);
	assert_file_is(path, "someone else's\n");

	struct queue_env *back = queue_load(f->q, env->id, &fd);
	assert_non_null(back);
	assert_int_equal(pread(fd, head, 33, 0), 33);
	head[33] = '\0';
	char *want = xasprintf("TERN-QUEUE 1\nid %s\n", env->id);
	assert_string_equal(head, want);
	char body[256];
	assert_int_equal(pread(fd, body, back->msg_len, (off_t)back->msg_offset), (ssize_t)strlen(msg));
	assert_memory_equal(body, msg, strlen(msg));
	close(fd);
	free(want);
	free(path);
	queue_env_free(back);
	queue_writer_free(w);
	queue_env_free(env);
}

static void collect(const char *id, void *arg)
{
	char **ids = arg;
	for (int i = 0; i < 3; i++)
		if (ids[i] == NULL) {
			ids[i] = xstrdup(id);
			return;
		}
	fail_msg("too many ids");
}

static void test_scan_in_order_and_unique_ids(void **state)
{
	struct fixture *f = *state;
	char *a = commit_one(f), *b = commit_one(f), *c = commit_one(f);
	char *seen[3] = { NULL, NULL, NULL };

	assert_true(strcmp(a, b) < 0 && strcmp(b, c) < 0);
	assert_int_equal(queue_scan(f->q, collect, seen), 3);
	assert_string_equal(seen[0], a);
	assert_string_equal(seen[1], b);
	assert_string_equal(seen[2], c);
	for (int i = 0; i < 3; i++)
		free(seen[i]);
	free(a);
	free(b);
	free(c);
}

static void test_scan_empty_queue(void **state)
{
	struct fixture *f = *state;
	char *seen[3] = { NULL, NULL, NULL };
	assert_int_equal(queue_scan(f->q, collect, seen), 0);
	assert_null(seen[0]);
}

/* A message need not end with a line end (BDAT) and may end in NULs
 * (BINARYMIME): it still loads after commit, with its exact length.  The
 * old reader wanted a line end before the trailer and searched for it
 * with strstr, so both were lost at load. */
static void test_binary_tail_loads(void **state)
{
	struct fixture *f = *state;
	static const struct {
		const char *body;
		size_t len;
	} cases[] = {
		{ "Subject: x\n\nno line end", 23 },
		{ "Subject: x\n\nnuls\0\0\0\n", 20 },
		{ "Subject: x\n\nTERN-END off=1 len=1 lines=1 8bit=0\n", 48 },
	};

	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		struct queue_env *env = make_env();
		struct queue_writer *w = queue_writer_new(f->q, env);
		int fd = -1;
		char got[64];

		assert_non_null(w);
		assert_true(queue_writer_write(w, cases[i].body, cases[i].len));
		assert_true(queue_writer_commit(w, 3, true));
		queue_writer_free(w);
		struct queue_env *back = queue_load(f->q, env->id, &fd);
		if (back == NULL)
			fail_msg("case %zu: committed message does not load", i);
		assert_int_equal(back->msg_len, cases[i].len);
		assert_int_equal(back->nrcpt, 2);
		assert_int_equal(pread(fd, got, cases[i].len, (off_t)back->msg_offset), (ssize_t)cases[i].len);
		assert_memory_equal(got, cases[i].body, cases[i].len);
		close(fd);
		queue_env_free(back);
		queue_env_free(env);
	}
}

/* A file whose trailer is missing or does not match its length is never
 * taken for a message. */
static void test_damaged_files_refused(void **state)
{
	struct fixture *f = *state;
	static const struct {
		off_t cut;           /* bytes to cut off the end */
		const char *append;  /* or bytes to add */
	} cases[] = {
		{ 1, NULL }, { 2, NULL }, { 10, NULL }, { 60, NULL }, { 0, "x" }, { 0, "TERN-END off=1 len=1 lines=1 8bit=0\n" },
		{ 0, "0123456789" },
	};

	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		char *id = commit_one(f);
		char *path = xasprintf("%s/%s", queue_msg_dir(f->q), id);
		struct stat st;
		assert_int_equal(stat(path, &st), 0);
		if (cases[i].cut) {
			assert_int_equal(truncate(path, st.st_size - cases[i].cut), 0);
		} else {
			FILE *o = fopen(path, "a");
			assert_non_null(o);
			fputs(cases[i].append, o);
			fclose(o);
		}
		if (queue_load(f->q, id, NULL) != NULL)
			fail_msg("case %zu: damaged file loaded", i);
		assert_true(queue_remove(f->q, id));
		free(path);
		free(id);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_write_commit_load, setup, teardown),
		cmocka_unit_test_setup_teardown(test_binary_tail_loads, setup, teardown),
		cmocka_unit_test_setup_teardown(test_binary_body_and_smtputf8, setup, teardown),
		cmocka_unit_test_setup_teardown(test_insert_front, setup, teardown),
		cmocka_unit_test_setup_teardown(test_front_room, setup, teardown),
		cmocka_unit_test_setup_teardown(test_set_envelope, setup, teardown),
		cmocka_unit_test_setup_teardown(test_junk_in_trailer, setup, teardown),
		cmocka_unit_test_setup_teardown(test_state_round_trip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_recycled_scratch_cut_to_size, setup, teardown),
		cmocka_unit_test_setup_teardown(test_retire_reuses_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_recycled_refused_is_emptied, setup, teardown),
		cmocka_unit_test_setup_teardown(test_abort_leaves_nothing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_recover_removes_partial_and_orphans, setup, teardown),
		cmocka_unit_test_setup_teardown(test_scan_in_order_and_unique_ids, setup, teardown),
		cmocka_unit_test_setup_teardown(test_damaged_files_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_scan_empty_queue, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ids_follow_the_queue_after_restart, setup, teardown),
		cmocka_unit_test_setup_teardown(test_taken_id_commits_under_a_new_one, setup, teardown),
		cmocka_unit_test_setup_teardown(test_error_lines_name_the_message, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
