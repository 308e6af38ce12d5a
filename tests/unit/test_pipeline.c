/*
 * test_pipeline.c - unit tests for the message pipeline (msg/pipeline.h):
 * the chain with fake stages (one that rejects, one that tempfails or
 * accepts later, one that adds a header field, a sink that records), the
 * framer replaced, the pipeline freed from its own verdict; and tern's
 * real stages on that fake sink: DATA's framer, the header work (Received:,
 * MSA Date:/Message-ID:, too many Received:) and the Delivered-To loop
 * check.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "msg/pipeline.h"
#include "msg/stages.h"
#include "store/queue.h"

/* ---- fakes ------------------------------------------------------------- */

/* Framer: passes everything before the first '#' on; '#' ends the message. */
static size_t fake_framer_feed(struct pipe_stage *st, const char *in, size_t len, bool *done)
{
	const char *end = memchr(in, '#', len);
	size_t n = end ? (size_t)(end - in) : len;

	pipe_emit(st, in, n);
	*done = end != NULL;
	return end ? n + 1 : len;
}

static void fake_accept_end(struct pipe_stage *st)
{
	pipe_stage_accept(st);
}

static void fake_free(struct pipe_stage *st)
{
	free(st);
}

static const struct pipe_stage_ops fake_framer_ops = {
	.name = "fake-framer", .feed = fake_framer_feed, .end = fake_accept_end, .free = fake_free,
};

/* A check: records what it saw, and answers as told. */
enum fake_answer { ANSWER_ACCEPT, ANSWER_REJECT, ANSWER_LATER, ANSWER_PREPEND };

struct fake_check {
	struct pipe_stage st;
	enum fake_answer answer;
	char seen[4096];
	size_t seen_len;
	int asked;
	int *freed;
};

static void fake_check_data(struct pipe_stage *st, const char *buf, size_t len)
{
	struct fake_check *c = (struct fake_check *)st;

	assert_true(c->seen_len + len <= sizeof(c->seen));
	memcpy(c->seen + c->seen_len, buf, len);
	c->seen_len += len;
	pipe_emit(st, buf, len);
}

static void fake_check_end(struct pipe_stage *st)
{
	struct fake_check *c = (struct fake_check *)st;

	c->asked++;
	switch (c->answer) {
	case ANSWER_ACCEPT:
		pipe_stage_accept(st);
		break;
	case ANSWER_REJECT:
		pipe_stage_refuse(st, false, "554 5.7.1 Fake says no");
		break;
	case ANSWER_PREPEND:
		assert_true(pipe_prepend(st, "X-Fake: checked\n", 16));
		pipe_stage_accept(st);
		break;
	case ANSWER_LATER:
		break;   /* the test answers for it */
	}
}

static void fake_check_free(struct pipe_stage *st)
{
	struct fake_check *c = (struct fake_check *)st;
	if (c->freed)
		(*c->freed)++;
	free(c);
}

static const struct pipe_stage_ops fake_check_ops = {
	.name = "fake-check", .data = fake_check_data, .end = fake_check_end, .free = fake_check_free,
};

static struct fake_check *fake_check_new(enum fake_answer answer, int *freed)
{
	struct fake_check *c = xcalloc(1, sizeof(*c));
	c->st.ops = &fake_check_ops;
	c->answer = answer;
	c->freed = freed;
	return c;
}

/* The sink: the message in memory, fields put in front on request. */
struct fake_sink {
	struct pipe_stage st;
	char msg[65536];
	size_t len;
	int asked;
	int *freed;
};

static void fake_sink_data(struct pipe_stage *st, const char *buf, size_t len)
{
	struct fake_sink *k = (struct fake_sink *)st;

	assert_true(k->len + len <= sizeof(k->msg));
	memcpy(k->msg + k->len, buf, len);
	k->len += len;
}

static bool fake_sink_prepend(struct pipe_stage *st, const char *buf, size_t len)
{
	struct fake_sink *k = (struct fake_sink *)st;

	memmove(k->msg + len, k->msg, k->len);
	memcpy(k->msg, buf, len);
	k->len += len;
	return true;
}

static void fake_sink_end(struct pipe_stage *st)
{
	((struct fake_sink *)st)->asked++;
	pipe_stage_accept(st);
}

static void fake_sink_free(struct pipe_stage *st)
{
	struct fake_sink *k = (struct fake_sink *)st;
	if (k->freed)
		(*k->freed)++;
	free(k);
}

static const struct pipe_stage_ops fake_sink_ops = {
	.name = "fake-sink", .data = fake_sink_data, .prepend = fake_sink_prepend, .end = fake_sink_end,
	.free = fake_sink_free,
};

static struct fake_sink *fake_sink_new(int *freed)
{
	struct fake_sink *k = xcalloc(1, sizeof(*k));
	k->st.ops = &fake_sink_ops;
	k->freed = freed;
	return k;
}

static struct pipe_stage *fake_framer_new(void)
{
	struct pipe_stage *st = xcalloc(1, sizeof(*st));
	st->ops = &fake_framer_ops;
	return st;
}

struct verdict_seen {
	int calls;
	struct pipe_verdict v;
	struct pipeline *free_me;   /* freed from the callback */
};

static void verdict_cb(void *arg, const struct pipe_verdict *v)
{
	struct verdict_seen *vs = arg;
	vs->calls++;
	vs->v = *v;
	if (vs->free_me)
		pipeline_free(vs->free_me);
}

static struct queue_env *env_new(const char *const *rcpts)
{
	struct queue_env *env = xcalloc(1, sizeof(*env));
	env->from = xstrdup("sender@example.test");
	snprintf(env->id, sizeof(env->id), "0123456789ABCDEF");
	for (size_t i = 0; rcpts && rcpts[i]; i++)
		queue_env_add_rcpt(env, rcpts[i], rcpts[i])->local = true;
	return env;
}

/* Feed all of in, in chunks of `chunk` octets; true when the framer ended. */
static bool feed_all(struct pipeline *p, const char *in, size_t chunk)
{
	size_t len = strlen(in), pos = 0;
	bool done = false;

	while (pos < len && !done) {
		size_t n = len - pos < chunk ? len - pos : chunk;
		pos += pipeline_feed(p, in + pos, n, &done);
	}
	return done;
}

/* ---- the chain with fake stages ---------------------------------------- */

static void test_chain_accepts_and_streams(void **state)
{
	struct queue_env *env = env_new(NULL);
	struct pipeline *p = pipeline_new(env);
	struct fake_check *a = fake_check_new(ANSWER_ACCEPT, NULL), *b = fake_check_new(ANSWER_ACCEPT, NULL);
	struct fake_sink *k = fake_sink_new(NULL);
	struct verdict_seen vs = { 0 };

	pipeline_add(p, fake_framer_new());
	pipeline_add(p, &a->st);
	pipeline_add(p, &b->st);
	pipeline_add(p, &k->st);
	assert_true(feed_all(p, "Subject: x\n\nbody\n#NEXT", 3));
	/* every stage saw every chunk, in order; the sink got it all */
	assert_int_equal(a->seen_len, 17);
	assert_memory_equal(a->seen, "Subject: x\n\nbody\n", 17);
	assert_memory_equal(b->seen, "Subject: x\n\nbody\n", 17);
	assert_int_equal(k->len, 17);
	pipeline_end(p, verdict_cb, &vs);
	assert_int_equal(vs.calls, 1);
	assert_int_equal(vs.v.code, 0);
	assert_int_equal(a->asked, 1);
	assert_int_equal(b->asked, 1);
	assert_int_equal(k->asked, 1);
	pipeline_free(p);
	queue_env_free(env);
}

static void test_chain_reject_stops_there(void **state)
{
	struct queue_env *env = env_new(NULL);
	struct pipeline *p = pipeline_new(env);
	struct fake_check *a = fake_check_new(ANSWER_REJECT, NULL), *b = fake_check_new(ANSWER_ACCEPT, NULL);
	int sink_freed = 0;
	struct fake_sink *k = fake_sink_new(&sink_freed);
	struct verdict_seen vs = { 0 };

	pipeline_add(p, fake_framer_new());
	pipeline_add(p, &a->st);
	pipeline_add(p, &b->st);
	pipeline_add(p, &k->st);
	assert_true(feed_all(p, "hello\n#", 100));
	pipeline_end(p, verdict_cb, &vs);
	assert_int_equal(vs.calls, 1);
	assert_int_equal(vs.v.code, 554);
	assert_string_equal(vs.v.reply, "554 5.7.1 Fake says no");
	assert_false(vs.v.own_fault);
	/* the stages after the one that said no are not asked */
	assert_int_equal(b->asked, 0);
	assert_int_equal(k->asked, 0);
	pipeline_free(p);
	assert_int_equal(sink_freed, 1);
	queue_env_free(env);
}

static void test_chain_async_tempfail(void **state)
{
	struct queue_env *env = env_new(NULL);
	struct pipeline *p = pipeline_new(env);
	struct fake_check *a = fake_check_new(ANSWER_LATER, NULL);
	struct fake_sink *k = fake_sink_new(NULL);
	struct verdict_seen vs = { 0 };

	pipeline_add(p, fake_framer_new());
	pipeline_add(p, &a->st);
	pipeline_add(p, &k->st);
	assert_true(feed_all(p, "hello\n#", 100));
	pipeline_end(p, verdict_cb, &vs);
	/* nothing decided while the check waits (a worker, a milter) */
	assert_int_equal(vs.calls, 0);
	assert_int_equal(a->asked, 1);
	assert_int_equal(k->asked, 0);
	pipe_stage_refuse(&a->st, true, "451 4.7.1 Fake check unreachable, try again later");
	assert_int_equal(vs.calls, 1);
	assert_int_equal(vs.v.code, 451);
	assert_true(vs.v.own_fault);
	assert_int_equal(k->asked, 0);
	pipeline_free(p);
	queue_env_free(env);
}

/* A milter's DISCARD: 250 (code 0) marked discard, the
 * stages after it (the sink) never asked, so nothing is committed. */
static void test_chain_discard(void **state)
{
	struct queue_env *env = env_new(NULL);
	struct pipeline *p = pipeline_new(env);
	struct fake_check *a = fake_check_new(ANSWER_LATER, NULL), *b = fake_check_new(ANSWER_ACCEPT, NULL);
	int sink_freed = 0;
	struct fake_sink *k = fake_sink_new(&sink_freed);
	struct verdict_seen vs = { 0 };

	pipeline_add(p, fake_framer_new());
	pipeline_add(p, &a->st);
	pipeline_add(p, &b->st);
	pipeline_add(p, &k->st);
	assert_true(feed_all(p, "hello\n#", 100));
	pipeline_end(p, verdict_cb, &vs);
	assert_int_equal(vs.calls, 0);
	pipe_stage_discard(&a->st);
	assert_int_equal(vs.calls, 1);
	assert_int_equal(vs.v.code, 0);
	assert_true(vs.v.discard);
	assert_int_equal(b->asked, 0);
	assert_int_equal(k->asked, 0);
	pipeline_free(p);
	assert_int_equal(sink_freed, 1);
	queue_env_free(env);
}

static void test_chain_async_accept_then_sink(void **state)
{
	struct queue_env *env = env_new(NULL);
	struct pipeline *p = pipeline_new(env);
	struct fake_check *a = fake_check_new(ANSWER_LATER, NULL), *b = fake_check_new(ANSWER_ACCEPT, NULL);
	struct fake_sink *k = fake_sink_new(NULL);
	struct verdict_seen vs = { 0 };

	pipeline_add(p, fake_framer_new());
	pipeline_add(p, &a->st);
	pipeline_add(p, &b->st);
	pipeline_add(p, &k->st);
	assert_true(feed_all(p, "hello\n#", 100));
	pipeline_end(p, verdict_cb, &vs);
	assert_int_equal(vs.calls, 0);
	assert_int_equal(b->asked, 0);
	pipe_stage_accept(&a->st);
	assert_int_equal(b->asked, 1);
	assert_int_equal(k->asked, 1);
	assert_int_equal(vs.calls, 1);
	assert_int_equal(vs.v.code, 0);
	pipeline_free(p);
	queue_env_free(env);
}

static void test_chain_check_adds_header(void **state)
{
	struct queue_env *env = env_new(NULL);
	struct pipeline *p = pipeline_new(env);
	struct fake_check *a = fake_check_new(ANSWER_PREPEND, NULL);
	struct fake_sink *k = fake_sink_new(NULL);
	struct verdict_seen vs = { 0 };

	pipeline_add(p, fake_framer_new());
	pipeline_add(p, &a->st);
	pipeline_add(p, &k->st);
	assert_true(feed_all(p, "Subject: x\n\nbody\n#", 5));
	pipeline_end(p, verdict_cb, &vs);
	assert_int_equal(vs.v.code, 0);
	k->msg[k->len] = '\0';
	assert_string_equal(k->msg, "X-Fake: checked\nSubject: x\n\nbody\n");
	pipeline_free(p);
	queue_env_free(env);
}

static void test_chain_framer_replaced(void **state)
{
	struct queue_env *env = env_new(NULL);
	struct pipeline *p = pipeline_new(env);
	struct fake_sink *k = fake_sink_new(NULL);
	struct verdict_seen vs = { 0 };

	/* DATA's framer first, then swapped for another (as BDAT would) */
	pipeline_add(p, stage_dot_new(1000, 1 << 20));
	pipeline_add(p, &k->st);
	pipeline_set_framer(p, fake_framer_new());
	assert_true(feed_all(p, "..raw\r\n#", 100));
	k->msg[k->len] = '\0';
	assert_string_equal(k->msg, "..raw\r\n");   /* no unstuffing, no CRLF -> LF */
	pipeline_end(p, verdict_cb, &vs);
	assert_int_equal(vs.v.code, 0);
	pipeline_free(p);
	queue_env_free(env);
}

static void test_chain_freed_from_verdict(void **state)
{
	struct queue_env *env = env_new(NULL);
	struct pipeline *p = pipeline_new(env);
	int freed = 0;
	struct fake_check *a = fake_check_new(ANSWER_LATER, &freed);
	struct verdict_seen vs = { .free_me = p };

	pipeline_add(p, fake_framer_new());
	pipeline_add(p, &a->st);
	pipeline_add(p, &fake_sink_new(&freed)->st);
	assert_true(feed_all(p, "x\n#", 100));
	pipeline_end(p, verdict_cb, &vs);
	pipe_stage_refuse(&a->st, false, "550 5.7.1 no");   /* ASan: nothing touched after */
	assert_int_equal(vs.calls, 1);
	assert_int_equal(freed, 2);
	queue_env_free(env);
}

static void test_refusal_without_code_is_tempfail(void **state)
{
	struct queue_env *env = env_new(NULL);
	struct pipeline *p = pipeline_new(env);
	struct fake_check *a = fake_check_new(ANSWER_LATER, NULL);
	struct verdict_seen vs = { 0 };

	pipeline_add(p, fake_framer_new());
	pipeline_add(p, &a->st);
	pipeline_add(p, &fake_sink_new(NULL)->st);
	pipeline_end(p, verdict_cb, &vs);
	pipe_stage_refuse(&a->st, false, "oops");
	assert_int_equal(vs.v.code, 451);
	assert_true(vs.v.own_fault);
	pipeline_free(p);
	queue_env_free(env);
}

/* ---- tern's stages on the fake sink ------------------------------------- */

struct real_chain {
	struct queue_env *env;
	struct pipeline *p;
	struct fake_sink *k;
	struct verdict_seen vs;
};

static void real_chain_run(struct real_chain *c, const char *const *rcpts, bool msa, const char *data,
			   size_t chunk)
{
	memset(c, 0, sizeof(*c));
	c->env = env_new(rcpts);
	c->p = pipeline_new(c->env);
	c->k = fake_sink_new(NULL);
	pipeline_add(c->p, stage_dot_new(1000, 1 << 20));
	pipeline_add(c->p, stage_header_new("Received: from x\n\tby mx.test;\n", msa, c->env->id, "mx.test", 3));
	pipeline_add(c->p, stage_loop_new());
	pipeline_add(c->p, &c->k->st);
	assert_true(feed_all(c->p, data, chunk));
	pipeline_end(c->p, verdict_cb, &c->vs);
	assert_int_equal(c->vs.calls, 1);
	c->k->msg[c->k->len] = '\0';
}

static void real_chain_free(struct real_chain *c)
{
	pipeline_free(c->p);
	queue_env_free(c->env);
}

static void test_stages_received_and_unstuffing(void **state)
{
	static const char *const rcpts[] = { "bob@example.test", NULL };
	struct real_chain c;

	for (size_t chunk = 1; chunk < 40; chunk += 7) {
		real_chain_run(&c, rcpts, false, "Subject: x\r\n\r\n..dot\r\nend\r\n.\r\n", chunk);
		assert_int_equal(c.vs.v.code, 0);
		assert_string_equal(c.k->msg, "Received: from x\n\tby mx.test;\nSubject: x\n\n.dot\nend\n");
		real_chain_free(&c);
	}
}

static void test_stages_framing_refusals(void **state)
{
	static const char *const rcpts[] = { "bob@example.test", NULL };
	struct real_chain c;

	real_chain_run(&c, rcpts, false, "Subject: x\r\n\r\nbare\nlf\r\n.\r\n", 100);
	assert_int_equal(c.vs.v.code, 550);
	assert_non_null(strstr(c.vs.v.reply, "5.6.0"));
	real_chain_free(&c);
}

static void test_stages_msa_adds_date_and_message_id(void **state)
{
	static const char *const rcpts[] = { "bob@example.test", NULL };
	struct real_chain c;

	real_chain_run(&c, rcpts, true, "Subject: x\r\n\r\nbody\r\n.\r\n", 4);
	assert_int_equal(c.vs.v.code, 0);
	assert_non_null(strstr(c.k->msg, "\nSubject: x\nDate: "));
	assert_non_null(strstr(c.k->msg, "\nMessage-ID: <0123456789ABCDEF."));
	assert_non_null(strstr(c.k->msg, "@mx.test>\n\nbody\n"));
	real_chain_free(&c);
	/* both present: nothing added */
	real_chain_run(&c, rcpts, true, "Date: Thu, 1 Jan 2026 00:00:00 +0000\r\nMessage-ID: <a@b>\r\n\r\nbody\r\n.\r\n", 4);
	assert_null(strstr(strstr(c.k->msg, "Date: ") + 1, "Date: "));
	assert_null(strstr(strstr(c.k->msg, "Message-ID: ") + 1, "Message-ID: "));
	real_chain_free(&c);
}

static void test_stages_too_many_received(void **state)
{
	static const char *const rcpts[] = { "bob@example.test", NULL };
	struct real_chain c;

	real_chain_run(&c, rcpts, false, "Received: a\r\nReceived: b\r\nReceived: c\r\nReceived: d\r\n\r\nx\r\n.\r\n", 9);
	assert_int_equal(c.vs.v.code, 554);
	assert_non_null(strstr(c.vs.v.reply, "5.4.6"));
	real_chain_free(&c);
}

static void test_loop_every_recipient_refused(void **state)
{
	static const char *const rcpts[] = { "bob@example.test", NULL };
	struct real_chain c;

	for (size_t chunk = 1; chunk < 30; chunk += 5) {
		real_chain_run(&c, rcpts, false, "Subject: x\r\ndelivered-to :  <BOB@example.test> \r\n\r\nx\r\n.\r\n", chunk);
		assert_int_equal(c.vs.v.code, 554);
		assert_string_equal(c.vs.v.reply, "554 5.4.6 Mail forwarding loop for <bob@example.test>");
		real_chain_free(&c);
	}
}

static void test_loop_one_recipient_fails(void **state)
{
	static const char *const rcpts[] = { "alice@example.test", "bob@example.test", NULL };
	struct real_chain c;

	/* folded field; the other recipient goes on */
	real_chain_run(&c, rcpts, false, "Delivered-To:\r\n bob@example.test\r\n\r\nx\r\n.\r\n", 3);
	assert_int_equal(c.vs.v.code, 0);
	assert_int_equal(c.env->rcpt[0].state, RCPT_PENDING);
	assert_int_equal(c.env->rcpt[1].state, RCPT_FAILED);
	assert_string_equal(c.env->rcpt[1].status, "5.4.6");
	assert_string_equal(c.env->rcpt[1].last_reply, "554 5.4.6 Mail forwarding loop for <bob@example.test>");
	real_chain_free(&c);
}

static void test_loop_not_in_body_or_other_fields(void **state)
{
	static const char *const rcpts[] = { "bob@example.test", NULL };
	struct real_chain c;

	real_chain_run(&c, rcpts, false,
		       "X-Delivered-To: bob@example.test\r\nDelivered-To: bobby@example.test\r\n"
		       "Delivered-To: bob@example.test.evil\r\n\r\nDelivered-To: bob@example.test\r\n.\r\n", 7);
	assert_int_equal(c.vs.v.code, 0);
	assert_int_equal(c.env->rcpt[0].state, RCPT_PENDING);
	real_chain_free(&c);
	/* a line that is no field ends the header section */
	real_chain_run(&c, rcpts, false, "Subject: x\r\nnot a field\r\nDelivered-To: bob@example.test\r\n\r\n.\r\n", 7);
	assert_int_equal(c.vs.v.code, 0);
	real_chain_free(&c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_chain_accepts_and_streams),
		cmocka_unit_test(test_chain_reject_stops_there),
		cmocka_unit_test(test_chain_async_tempfail),
		cmocka_unit_test(test_chain_discard),
		cmocka_unit_test(test_chain_async_accept_then_sink),
		cmocka_unit_test(test_chain_check_adds_header),
		cmocka_unit_test(test_chain_framer_replaced),
		cmocka_unit_test(test_chain_freed_from_verdict),
		cmocka_unit_test(test_refusal_without_code_is_tempfail),
		cmocka_unit_test(test_stages_received_and_unstuffing),
		cmocka_unit_test(test_stages_framing_refusals),
		cmocka_unit_test(test_stages_msa_adds_date_and_message_id),
		cmocka_unit_test(test_stages_too_many_received),
		cmocka_unit_test(test_loop_every_recipient_refused),
		cmocka_unit_test(test_loop_one_recipient_fails),
		cmocka_unit_test(test_loop_not_in_body_or_other_fields),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
