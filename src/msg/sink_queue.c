/*
 * sink_queue.c - the pipeline's sink for mail received over SMTP: the
 * message into a queue file as it arrives (page-cache writes on the loop),
 * and at the end the file handed to delivery through its hook
 * (t->accept_message), which commits it or delivers it straight into the
 * mailboxes.  The sink's verdict is that hook's answer: 250 only once the
 * message is durable (DESIGN.md invariant 1).
 */
#include "msg/pipeline.h"
#include "msg/stages.h"
#include "core/server.h"
#include "core/util.h"
#include "store/queue.h"

#include <stdlib.h>
#include <string.h>

struct sink_queue {
	struct pipe_stage st;
	struct tern *t;
	struct queue_env *env;
	struct queue_writer *qw;
	uint64_t lines;
	bool eight_bit;
	bool handed;                  /* delivery has it: nothing to drop */
	bool direct;
};

static void sink_count(struct sink_queue *k, const char *buf, size_t len)
{
	for (const char *p = buf; (p = memchr(p, '\n', (size_t)(buf + len - p))) != NULL; p++)
		k->lines++;
	for (size_t i = 0; i < len && !k->eight_bit; i++)
		if ((unsigned char)buf[i] >= 0x80)
			k->eight_bit = true;
}

static void sink_data(struct pipe_stage *st, const char *buf, size_t len)
{
	struct sink_queue *k = (struct sink_queue *)st;

	/* A failed write is sticky in the writer; the end reports it. */
	if (queue_writer_write(k->qw, buf, len))
		sink_count(k, buf, len);
}

static bool sink_prepend(struct pipe_stage *st, const char *buf, size_t len)
{
	struct sink_queue *k = (struct sink_queue *)st;

	if (!queue_writer_insert_front(k->qw, buf, len))
		return false;
	sink_count(k, buf, len);
	return true;
}

static void sink_accepted_cb(void *arg, bool durable, bool direct)
{
	struct sink_queue *k = arg;

	k->direct = direct;
	if (durable)
		pipe_stage_accept(&k->st);
	else
		pipe_stage_refuse(&k->st, true, "451 4.3.0 Error writing the message to disk, try again later");
}

static void sink_end(struct pipe_stage *st)
{
	struct sink_queue *k = (struct sink_queue *)st;

	if (!queue_writer_ok(k->qw)) {
		pipe_stage_refuse(st, true, "451 4.3.0 Error writing the message to disk, try again later");
		return;
	}
	k->handed = true;
	k->t->accept_message(k->t, k->qw, k->env, k->lines, k->eight_bit, sink_accepted_cb, k);
}

static void sink_free(struct pipe_stage *st)
{
	struct sink_queue *k = (struct sink_queue *)st;

	/* Refused, or the client went away: nothing of it stays on disk.
	 * After the hand-over the writer is committed or recycled. */
	if (!k->handed)
		queue_writer_recycle(k->qw, false);
	queue_writer_free(k->qw);
	free(k);
}

static const struct pipe_stage_ops sink_queue_ops = {
	.name = "queue",
	.data = sink_data,
	.prepend = sink_prepend,
	.end = sink_end,
	.free = sink_free,
};

struct pipe_stage *sink_queue_new(struct tern *t, struct queue_env *env)
{
	struct sink_queue *k;
	struct queue_writer *qw = queue_writer_new(t->queue, env);

	if (qw == NULL)
		return NULL;
	k = xcalloc(1, sizeof(*k));
	k->st.ops = &sink_queue_ops;
	k->t = t;
	k->env = env;
	k->qw = qw;
	return &k->st;
}

bool sink_queue_direct(const struct pipe_stage *st)
{
	return ((const struct sink_queue *)st)->direct;
}
