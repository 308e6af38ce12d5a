/*
 * sink_queue.c - the pipeline's sink for mail received over SMTP: the
 * message into delivery's intake (t->intake: a queue file, or for
 * all-local mail its first mailbox file) as it arrives, and at the end
 * committed there.  The sink's verdict is the commit's: 250 only once the
 * message is durable (DESIGN.md invariant 1).
 */
#include "msg/pipeline.h"
#include "msg/stages.h"
#include "core/server.h"
#include "core/util.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct sink_queue {
	struct pipe_stage st;
	struct tern *t;
	struct intake *in;
	uint64_t lines;
	bool eight_bit;
	bool direct;
};

/* Eight octets at a time: this runs over every octet of every message. */
static bool has_8bit(const char *buf, size_t len)
{
	const uint64_t high = 0x8080808080808080ULL;
	uint64_t acc = 0, w;
	size_t i = 0;

	for (; i + 8 <= len; i += 8) {
		memcpy(&w, buf + i, 8);
		acc |= w;
	}
	for (; i < len; i++)
		acc |= (unsigned char)buf[i];
	return (acc & high) != 0;
}

static void sink_count(struct sink_queue *k, const char *buf, size_t len)
{
	for (const char *p = buf; (p = memchr(p, '\n', (size_t)(buf + len - p))) != NULL; p++)
		k->lines++;
	if (!k->eight_bit)
		k->eight_bit = has_8bit(buf, len);
}

static void sink_data(struct pipe_stage *st, const char *buf, size_t len)
{
	struct sink_queue *k = (struct sink_queue *)st;

	/* A failed write is sticky in the intake; the end reports it. */
	if (k->t->intake->write(k->in, buf, len))
		sink_count(k, buf, len);
}

static bool sink_prepend(struct pipe_stage *st, const char *buf, size_t len)
{
	struct sink_queue *k = (struct sink_queue *)st;

	if (!k->t->intake->insert_front(k->in, buf, len))
		return false;
	sink_count(k, buf, len);
	return true;
}

/* A check stage before us writes fields in front at the end (DKIM-
 * Signature, Authentication-Results): delivery holds room for them, so
 * that they go in without the message being moved in its file. */
static void sink_front_coming(struct pipe_stage *st)
{
	struct sink_queue *k = (struct sink_queue *)st;

	k->t->intake->hold_front(k->in);
}

static bool sink_envelope(struct pipe_stage *st)
{
	struct sink_queue *k = (struct sink_queue *)st;

	return k->t->intake->envelope(k->in);
}

/*
 * The message could not be stored.  A full disk is 452 4.3.1 (RFC 5321
 * 4.2.2 "insufficient system storage", RFC 3463 X.3.1 "mail system
 * full"): transient, so the client keeps the message and tries again,
 * where 552 would make it bounce for a condition that clears up.  Other
 * write errors are 451 4.3.0.  Neither is the client's fault.
 */
static void sink_refuse_store(struct sink_queue *k, int err)
{
	if (err == ENOSPC || err == EDQUOT)
		pipe_stage_refuse(&k->st, true, "452 4.3.1 Insufficient system storage, try again later");
	else
		pipe_stage_refuse(&k->st, true, "451 4.3.0 Error writing the message to disk, try again later");
}

static void sink_accepted_cb(void *arg, int err, bool direct)
{
	struct sink_queue *k = arg;

	k->direct = direct;
	if (err == 0)
		pipe_stage_accept(&k->st);
	else
		sink_refuse_store(k, err);
}

static void sink_end(struct pipe_stage *st)
{
	struct sink_queue *k = (struct sink_queue *)st;
	int err = k->t->intake->error(k->in);

	if (err != 0) {
		sink_refuse_store(k, err);
		return;
	}
	k->t->intake->commit(k->in, k->lines, k->eight_bit, sink_accepted_cb, k);
}

static void sink_free(struct pipe_stage *st)
{
	struct sink_queue *k = (struct sink_queue *)st;

	k->t->intake->free(k->in);
	free(k);
}

static const struct pipe_stage_ops sink_queue_ops = {
	.name = "queue",
	.data = sink_data,
	.prepend = sink_prepend,
	.front_coming = sink_front_coming,
	.envelope = sink_envelope,
	.end = sink_end,
	.free = sink_free,
};

struct pipe_stage *sink_queue_new(struct tern *t, struct queue_env *env)
{
	struct sink_queue *k;
	struct intake *in = t->intake->open(t, env);

	if (in == NULL)
		return NULL;
	k = xcalloc(1, sizeof(*k));
	k->st.ops = &sink_queue_ops;
	k->t = t;
	k->in = in;
	return &k->st;
}

bool sink_queue_direct(const struct pipe_stage *st)
{
	return ((const struct sink_queue *)st)->direct;
}
