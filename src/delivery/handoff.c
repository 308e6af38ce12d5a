/*
 * handoff.c - a message a session receives, taken in by delivery and
 * made durable (see handoff.h and struct intake_ops in core/server.h).
 *
 * Mail whose recipients are all local is written once: straight into its
 * first recipient's Maildir tmp/ file as it arrives (local.h's stream);
 * other mail into a queue file.  Every message gets a queue writer at
 * DATA all the same - it gives the queue id for Received: and holds the
 * envelope, should the message have to be queued after all.
 *
 * At the end, on the commit pool: all-local mail is delivered (the other
 * recipients' copies made from the first one's file, all committed in one
 * fs_commit() round), then goes through the same notice step as the
 * scheduler's (notice.c), so that NOTIFY=SUCCESS and a loop check's
 * failures get their notices whichever way the message went.  Anything
 * else - a remote recipient, a local one deferred, a notice that could not
 * be queued - is committed to the queue with its recipients' state (a
 * streamed message copied into the queue file first), and the scheduler
 * takes it from there.  Either way the session is told "durable" only when
 * the message is in every mailbox or in the queue (DESIGN.md invariant 1).
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

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define HANDOFF_COPY_CHUNK 65536

struct intake {
	struct tern *t;
	struct queue_env *env;
	struct queue_writer *qw;
	struct local_stream ls;       /* ls.open: the message is in ls's file */
	bool handed;                  /* commit() called: the job owns the files */
	bool hold;                    /* fields come in front at the end (hold_front) */
	uint64_t lines;
	bool eight_bit;
	tern_accepted_fn done;
	void *arg;
	/* results */
	bool durable, direct;
	int err;                      /* why not durable */
	struct notice_ids notices;
};

static void log_handoff_kept(const struct queue_env *env)
{
	log_event("event=notice_pending queue=%s detail=\"delivered; a notice could not be queued, kept in the queue\"",
		  env->id);
}

static void log_handoff_stream_failed(const struct queue_env *env, int err)
{
	log_event("event=queue_error op=write queue=%s error=\"%s\" detail=\"copying a streamed message\"", env->id,
		  strerror(err));
}

/* Worker thread: the next streams' files for this Maildir, made ahead so
 * that the loop does not wait for the file system to pick inodes. */
static void intake_fill_spares(void *arg)
{
	maildir_spares_fill(arg);
	free(arg);
}

static struct intake *intake_open(struct tern *t, struct queue_env *env)
{
	struct intake *in;
	struct queue_writer *qw = queue_writer_new(t->queue, env);

	if (qw == NULL)
		return NULL;
	in = xcalloc(1, sizeof(*in));
	in->t = t;
	in->env = env;
	in->qw = qw;
	local_stream_open(t->cfg, env, &in->ls);
	if (in->ls.fill)
		workers_submit(t->delivery_pool, intake_fill_spares, NULL, xstrdup(in->ls.mf.path));
	return in;
}

/* A streamed message that has to be queued after all: its octets so far
 * into the queue file.  Worker thread, or the loop when the mailbox's
 * file system failed a write (rare: the queue may still have room). */
static bool intake_copy_to_queue(struct intake *in)
{
	char *buf = xmalloc(HANDOFF_COPY_CHUNK);
	uint64_t pos = 0, len = local_stream_in_file(&in->ls);
	size_t pending;
	const char *tail = local_stream_pending(&in->ls, &pending);
	bool ok = true;

	errno = 0;
	while (ok && pos < len) {
		size_t want = len - pos < HANDOFF_COPY_CHUNK ? (size_t)(len - pos) : HANDOFF_COPY_CHUNK;
		ssize_t got = pread(in->ls.mf.fd, buf, want, (off_t)(in->ls.prefix_len + pos));
		ok = got > 0 && queue_writer_write(in->qw, buf, (size_t)got);
		pos += got > 0 ? (uint64_t)got : 0;
	}
	free(buf);   /* keeps errno (POSIX 2024) */
	/* and what the stream's buffer holds, not in the file yet */
	return ok && (pending == 0 || queue_writer_write(in->qw, tail, pending));
}

/* A write to the mailbox's file failed (its file system is full, say):
 * the message goes on in the queue file, which may be elsewhere. */
static void intake_leave_stream(struct intake *in)
{
	if (in->hold)
		queue_writer_reserve_front(in->qw, QUEUE_FRONT_ROOM);
	if (!intake_copy_to_queue(in))
		log_handoff_stream_failed(in->env, errno);
	local_stream_close(&in->ls);
}

static bool intake_write(struct intake *in, const void *buf, size_t len)
{
	/* held back as far as the stream may: the rest goes on in the queue
	 * file, which has room in front (local_stream_hold) */
	if (in->ls.open && !local_stream_room(&in->ls, len))
		intake_leave_stream(in);
	if (in->ls.open && local_stream_write(&in->ls, buf, len))
		return true;
	if (in->ls.open)
		intake_leave_stream(in);
	return queue_writer_write(in->qw, buf, len);
}

static bool intake_insert_front(struct intake *in, const void *buf, size_t len)
{
	if (in->ls.open && local_stream_insert_front(&in->ls, buf, len))
		return true;
	if (in->ls.open)
		intake_leave_stream(in);
	return queue_writer_insert_front(in->qw, buf, len);
}

/*
 * A check will put fields in front when the message ends.  A streamed
 * message is held back in the stream's buffer until then (up to
 * LOCAL_STREAM_HOLD_MAX: a bigger one goes on in the queue file, from
 * where it is delivered); a queue file starts the message after a few
 * KiB of padding that the fields then take.  Either way they are written
 * where they belong, and the message is never moved (a move was a
 * read and a write of all of it, on the loop, at the end of DATA).
 */
static void intake_hold_front(struct intake *in)
{
	in->hold = true;
	if (in->ls.open)
		local_stream_hold(&in->ls);
	else
		queue_writer_reserve_front(in->qw, QUEUE_FRONT_ROOM);
}

/* A milter changed the sender or the recipients: the streamed copy has
 * the old Return-Path and may be for a recipient no longer there, so the
 * message goes on in the queue file, whose envelope is written again
 * (delivery may still be direct, from that file). */
static bool intake_envelope(struct intake *in)
{
	if (in->ls.open)
		intake_leave_stream(in);
	return queue_writer_set_envelope(in->qw, in->env);
}

static int intake_error(const struct intake *in)
{
	return in->ls.open ? in->ls.err : queue_writer_error(in->qw);
}

/* Where the message is now (the mailbox's stream or the queue file) and
 * its size, for delivery and for the queued line in the log. */
static void intake_measure(struct intake *in)
{
	struct queue_env *env = in->env;

	env->msg_offset = in->ls.open ? in->ls.prefix_len : queue_writer_offset(in->qw);
	env->msg_len = in->ls.open ? in->ls.written : queue_writer_size(in->qw);
	env->msg_lines = in->lines;
	env->eight_bit = in->eight_bit;
}

/* Worker thread: deliver what can go straight into the mailboxes and
 * send its notices.  True when nothing is left for the queue. */
static bool intake_direct(struct intake *in)
{
	struct queue_env *env = in->env;
	int fd = in->ls.open ? in->ls.mf.fd : queue_writer_fd(in->qw);

	intake_measure(in);
	if (!local_deliver_direct(in->t->cfg, env, fd, in->ls.open ? &in->ls : NULL))
		return false;
	if (notice_step(in->t->cfg, in->t->queue, env, fd, now_unix(), &in->notices))
		return true;
	log_handoff_kept(env);
	return false;
}

/* Worker thread. */
static void intake_work(void *arg)
{
	struct intake *in = arg;
	struct queue_env *env = in->env;
	bool partial = false;

	/* the stream's last octets, written here rather than on the loop;
	 * a mailbox whose file system refuses them: into the queue file */
	if (in->ls.open && !local_stream_flush(&in->ls))
		intake_leave_stream(in);
	if (!env->held && intake_direct(in)) {   /* held: a milter's quarantine */
		queue_writer_recycle(in->qw, true);
		in->durable = in->direct = true;
		local_stream_close(&in->ls);
		return;
	}
	for (size_t i = 0; i < env->nrcpt; i++)
		if (env->rcpt[i].state != RCPT_PENDING || env->rcpt[i].dsn_done)
			partial = true;
	if (in->ls.open && !intake_copy_to_queue(in)) {
		in->err = errno ? errno : EIO;
		queue_writer_abort(in->qw);
		in->durable = false;
	} else {
		in->durable = queue_writer_commit(in->qw, in->lines, in->eight_bit);
		if (!in->durable)
			in->err = errno ? errno : EIO;
	}
	local_stream_close(&in->ls);
	/* the message is in the queue file now (a held one was never
	 * measured: it skips direct delivery) */
	intake_measure(in);
	/* held: a milter's quarantine; the state file says so */
	if (in->durable && (partial || env->held))
		queue_save_state(in->t->queue, env);
}

/* Loop thread. */
static void intake_work_done(void *arg)
{
	struct intake *in = arg;

	if (in->durable && !in->direct)
		scheduler_enqueue(in->t->sched, in->env->id);
	for (size_t i = 0; i < in->notices.n; i++)
		scheduler_enqueue(in->t->sched, in->notices.id[i]);
	notice_ids_free(&in->notices);
	in->done(in->arg, in->durable ? 0 : in->err, in->direct);
}

static void intake_commit(struct intake *in, uint64_t lines, bool eight_bit, tern_accepted_fn done, void *arg)
{
	in->handed = true;
	in->lines = lines;
	in->eight_bit = eight_bit;
	in->done = done;
	in->arg = arg;
	workers_submit(in->t->commit_pool, intake_work, intake_work_done, in);
}

static void intake_free(struct intake *in)
{
	if (in == NULL)
		return;
	/* Refused, or the client went away: nothing of it stays on disk.
	 * After the commit the files are committed or recycled already. */
	if (!in->handed)
		queue_writer_recycle(in->qw, false);
	local_stream_close(&in->ls);
	queue_writer_free(in->qw);
	free(in);
}

static const struct intake_ops handoff_intake_ops = {
	.open = intake_open,
	.write = intake_write,
	.insert_front = intake_insert_front,
	.hold_front = intake_hold_front,
	.envelope = intake_envelope,
	.error = intake_error,
	.commit = intake_commit,
	.free = intake_free,
};

void handoff_install(struct tern *t)
{
	t->intake = &handoff_intake_ops;
}
