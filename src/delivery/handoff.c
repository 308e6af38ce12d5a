/*
 * handoff.c - a message accepted by a session, made durable (see
 * handoff.h).
 *
 * On the commit pool: mail whose recipients are all local goes straight
 * from the uncommitted queue file into the Maildirs (local.c), and then
 * through the same notice step as the scheduler's (notice.c), so that
 * NOTIFY=SUCCESS and a loop check's failures get their notices whichever
 * way the message went.  Anything else - a remote recipient, a local one
 * deferred, a notice that could not be queued - is committed to the
 * queue with its recipients' state, and the scheduler takes it from
 * there.  Either way the session is told "durable" only when the message
 * is in every mailbox or in the queue (DESIGN.md invariant 1).
 */
#include "delivery/handoff.h"
#include "core/log.h"
#include "core/server.h"
#include "core/util.h"
#include "core/workers.h"
#include "delivery/local.h"
#include "delivery/notice.h"
#include "delivery/scheduler.h"
#include "store/queue.h"

#include <stdlib.h>

struct handoff {
	struct tern *t;
	struct queue_writer *qw;
	struct queue_env *env;
	uint64_t lines;
	bool eight_bit;
	tern_accepted_fn done;
	void *arg;
	/* results */
	bool durable, direct;
	struct notice_ids notices;
};

static void log_handoff_kept(const struct queue_env *env)
{
	log_event("event=notice_pending queue=%s detail=\"delivered; a notice could not be queued, kept in the queue\"",
		  env->id);
}

/* Worker thread. */
static void handoff_work(void *arg)
{
	struct handoff *h = arg;
	struct queue_env *env = h->env;
	struct queue *q = h->t->queue;
	int fd = queue_writer_fd(h->qw);
	bool partial = false;

	env->msg_offset = queue_writer_offset(h->qw);
	env->msg_len = queue_writer_size(h->qw);
	env->msg_lines = h->lines;
	env->eight_bit = h->eight_bit;
	if (local_deliver_direct(h->t->cfg, env, fd)) {
		if (notice_step(h->t->cfg, q, env, fd, now_unix(), &h->notices)) {
			queue_writer_recycle(h->qw, true);
			h->durable = h->direct = true;
			return;
		}
		log_handoff_kept(env);
	}
	for (size_t i = 0; i < env->nrcpt; i++)
		if (env->rcpt[i].state != RCPT_PENDING || env->rcpt[i].dsn_done)
			partial = true;
	h->durable = queue_writer_commit(h->qw, h->lines, h->eight_bit);
	if (h->durable && partial)
		queue_save_state(q, env);
}

/* Loop thread. */
static void handoff_done(void *arg)
{
	struct handoff *h = arg;

	if (h->durable && !h->direct)
		scheduler_enqueue(h->t->sched, h->env->id);
	for (size_t i = 0; i < h->notices.n; i++)
		scheduler_enqueue(h->t->sched, h->notices.id[i]);
	notice_ids_free(&h->notices);
	h->done(h->arg, h->durable, h->direct);
	free(h);
}

static void handoff_accept(struct tern *t, struct queue_writer *qw, struct queue_env *env, uint64_t lines,
			   bool eight_bit, tern_accepted_fn done, void *arg)
{
	struct handoff *h = xcalloc(1, sizeof(*h));

	*h = (struct handoff){ .t = t, .qw = qw, .env = env, .lines = lines, .eight_bit = eight_bit,
			       .done = done, .arg = arg };
	workers_submit(t->commit_pool, handoff_work, handoff_done, h);
}

void handoff_install(struct tern *t)
{
	t->accept_message = handoff_accept;
}
