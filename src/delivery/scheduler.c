/*
 * scheduler.c - see scheduler.h.
 *
 * Each queued message is worked on by one job at a time, in up to three
 * steps:
 *   1. prepare (worker thread): load the envelope and state, deliver the
 *      due local recipients, pick the due remote ones;
 *   2. remote (loop thread): remote_deliver() for those;
 *   3. finish (worker thread): back-off for deferred recipients, expiry
 *      after [queue] max_age, notices (failure, delay, success: RFC 3461
 *      NOTIFY), then the state saved or the message removed.
 * Back on the loop, the message waits in a list with its next try time
 * and the domains of its deferred recipients (so that a flush or ETRN
 * reads no file); a timer wakes the scheduler at the earliest one.
 *
 * The operator's hold, release and delete are jobs too (one worker step:
 * the .st file is written with fsync, or the files removed), so they never
 * run beside a delivery of the same message and never block the loop.
 *
 * Retries (RFC 5321 §4.5.4.1): the first after [queue] retry, each later
 * one twice as long, up to SCHED_BACKOFF_MAX times retry, with a little
 * jitter; after a restart, overdue messages are spread over a short window
 * rather than all tried at the same moment.
 */
#include "delivery/scheduler.h"
#include "core/config.h"
#include "core/log.h"
#include "core/server.h"
#include "core/util.h"
#include "core/workers.h"
#include "delivery/handoff.h"
#include "delivery/local.h"
#include "delivery/notice.h"
#include "delivery/remote.h"
#include "proto/smtp_parse.h"
#include "store/queue.h"

#include <ctype.h>
#include <event2/event.h>
#include <openssl/rand.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define SCHED_BACKOFF_SHIFT_MAX 3	/* retry, 2x, 4x, then 8x retry */
#define SCHED_RECOVER_SPREAD_MAX 300	/* seconds over which restart retries spread */
#define SCHED_NOTICE_RETRY_MAX 60	/* seconds before a notice that could not be queued is tried again */

struct waiting {
	char id[QUEUE_ID_LEN + 1];
	int64_t when;
	char *domains;			/* " a.example b.example ": deferred recipients' */
};

enum sched_op {
	SCHED_DELIVER,
	SCHED_HOLD,
	SCHED_RELEASE,
	SCHED_DELETE,
};

struct sched_job {
	struct sched_job *next;		/* in s->jobs */
	struct scheduler *s;
	char id[QUEUE_ID_LEN + 1];
	enum sched_op op;
	scheduler_done_fn done;		/* an operator's request: told the result */
	void *done_arg;
	bool ok;			/* the operator's request was carried out */
	bool force;			/* flush: deferred recipients are due now */
	bool recovering;		/* first look after a restart */
	/* loop-side requests that arrived while the job ran */
	bool want_hold, want_release, want_delete, again;
	scheduler_done_fn want_done;	/* the operator asking for it, answered once it is done */
	void *want_done_arg;
	/* step results */
	struct queue_env *env;
	int fd;
	bool *due;			/* remote recipients tried in step 2 */
	bool remote;
	bool gone;			/* no message (removed or unreadable) */
	bool finished;			/* every recipient final: removed */
	bool skipped;
	int64_t wake;			/* next try, 0 = none */
	struct notice_ids notices;	/* queued by step 3, to schedule */
};

struct scheduler {
	struct tern *t;
	atomic_bool stopping;
	size_t busy;
	struct waiting *wait;
	size_t nwait;
	struct event *timer;
	struct sched_job *jobs;		/* in flight */
	struct remote *remote;
};

static void sched_arm(struct scheduler *s);
static void sched_start(struct scheduler *s, const char *id, bool force, bool recovering);

/* ---- logging: one function per event ----------------------------------- */

static void log_expired(const struct queue_env *env, size_t rcpt, int64_t age)
{
	log_event("event=expired queue=%s rcpt=%zu age=%llds", env->id, rcpt, (long long)age);
}

static void log_removed(const char *id)
{
	log_event("event=removed queue=%s", id);
}

static void log_deleted(const char *id)
{
	log_event("event=deleted queue=%s", id);
}

static void log_hold_changed(const char *id, bool held)
{
	log_event("event=%s queue=%s", held ? "held" : "released", id);
}

static void log_queue_recovered(size_t n)
{
	log_event("event=queue_recovered messages=%zu", n);
}

static void log_flush(const char *domain, size_t n)
{
	char d[300];
	log_event("event=flush domain=%s messages=%zu",
		  domain ? log_quote(d, sizeof(d), domain, strlen(domain)) : "*", n);
}

static uint32_t sched_random(void)
{
	uint32_t v = 0;
	RAND_bytes((unsigned char *)&v, sizeof(v));
	return v;
}

/* ---- step 3: back-off, expiry, notices, save (worker thread) ------------ */

static int64_t sched_backoff(const struct config *cfg, unsigned attempts, int64_t now)
{
	unsigned shift = attempts > 0 ? attempts - 1 : 0;
	uint64_t wait;

	if (shift > SCHED_BACKOFF_SHIFT_MAX)
		shift = SCHED_BACKOFF_SHIFT_MAX;
	wait = cfg->retry << shift;
	/* Up to a tenth more, so messages deferred together drift apart. */
	if (wait >= 10)
		wait += sched_random() % (wait / 10 + 1);
	return now + (int64_t)wait;
}

static void sched_finish_work(struct sched_job *j)
{
	const struct config *cfg = j->s->t->cfg;
	struct queue_env *env = j->env;
	int64_t now = now_unix();
	bool open = false, settled;

	for (size_t i = 0; i < env->nrcpt; i++) {
		struct queue_rcpt *r = &env->rcpt[i];

		if (j->due && j->due[i] && r->state == RCPT_DEFERRED) {
			if (now - env->arrival >= (int64_t)cfg->max_age) {
				r->state = RCPT_FAILED;
				log_expired(env, i, now - env->arrival);
			} else {
				r->next_try = sched_backoff(cfg, r->attempts, now);
			}
		}
	}
	settled = notice_step(cfg, j->s->t->queue, env, j->fd, now, &j->notices);
	for (size_t i = 0; i < env->nrcpt; i++) {
		struct queue_rcpt *r = &env->rcpt[i];
		if (r->state == RCPT_PENDING || r->state == RCPT_DEFERRED) {
			open = true;
			if (j->wake == 0 || r->next_try < j->wake)
				j->wake = r->next_try;
		}
	}
	if (!settled) {
		/* A notice could not be queued: the message stays (its state
		 * says which notices are owed) until one can. */
		int64_t retry = now + (int64_t)(cfg->retry < SCHED_NOTICE_RETRY_MAX ? cfg->retry : SCHED_NOTICE_RETRY_MAX);
		if (j->wake == 0 || retry < j->wake)
			j->wake = retry;
		open = true;
	}
	if (!open) {
		queue_retire(j->s->t->queue, j->id);
		log_removed(j->id);
		j->finished = true;
	} else {
		queue_save_state(j->s->t->queue, env);
	}
}

static void sched_finish_fn(void *arg)
{
	sched_finish_work(arg);
}

static uint64_t cfg_spread(const struct config *cfg)
{
	uint64_t spread = cfg->retry < SCHED_RECOVER_SPREAD_MAX ? cfg->retry : SCHED_RECOVER_SPREAD_MAX;
	return spread ? spread : 1;
}

/* ---- step 1: load, local delivery, pick remote (worker thread) ---------- */

static void sched_prepare_fn(void *arg)
{
	struct sched_job *j = arg;
	struct scheduler *s = j->s;
	int64_t now = now_unix();
	struct queue_env *env;
	bool changed;

	if (atomic_load(&s->stopping)) {
		j->skipped = true;
		return;
	}
	j->fd = -1;
	env = j->env = queue_load(s->t->queue, j->id, &j->fd);
	if (env == NULL) {
		j->gone = true;
		return;
	}
	if (env->held) {
		j->skipped = true;
		return;
	}
	j->due = xcalloc(env->nrcpt ? env->nrcpt : 1, sizeof(bool));
	for (size_t i = 0; i < env->nrcpt; i++) {
		struct queue_rcpt *r = &env->rcpt[i];
		if (r->state != RCPT_DEFERRED)
			continue;
		if (j->force)
			r->next_try = 0;
		else if (j->recovering && r->next_try <= now) {
			/* Spread overdue retries after a restart. */
			uint64_t spread = cfg_spread(s->t->cfg);
			r->next_try = now + (int64_t)(sched_random() % spread) + 1;
		}
	}
	changed = local_deliver_env(s->t->cfg, env, j->fd, now);
	for (size_t i = 0; i < env->nrcpt; i++) {
		struct queue_rcpt *r = &env->rcpt[i];
		if (!r->local && (r->state == RCPT_PENDING || (r->state == RCPT_DEFERRED && r->next_try <= now))) {
			j->due[i] = true;
			j->remote = true;
		}
	}
	if (j->remote) {
		if (changed)
			queue_save_state(s->t->queue, env);
		return;
	}
	sched_finish_work(j);
}

/* ---- the loop side --------------------------------------------------------- */

static void sched_unwait_at(struct scheduler *s, size_t i)
{
	free(s->wait[i].domains);
	s->wait[i] = s->wait[--s->nwait];
}

static void sched_unwait(struct scheduler *s, const char *id)
{
	for (size_t i = 0; i < s->nwait; i++)
		if (strcmp(s->wait[i].id, id) == 0) {
			sched_unwait_at(s, i);
			return;
		}
}

/* " a.example b.example ": the distinct domains of env's deferred
 * recipients, lower-cased, each with a space on either side. */
static char *deferred_domains(const struct queue_env *env)
{
	char *list = xstrdup(" ");

	for (size_t i = 0; i < env->nrcpt; i++) {
		const char *at = strrchr(env->rcpt[i].addr, '@');
		char *item, *next;

		if (env->rcpt[i].state != RCPT_DEFERRED || at == NULL || at[1] == '\0')
			continue;
		item = xasprintf(" %s ", at + 1);
		for (char *c = item; *c; c++)
			*c = (char)tolower((unsigned char)*c);
		if (strstr(list, item) == NULL) {
			next = xasprintf("%s%s", list, item + 1);
			free(list);
			list = next;
		}
		free(item);
	}
	return list;
}

static void sched_wait(struct scheduler *s, const char *id, int64_t when, const struct queue_env *env)
{
	struct waiting *w;

	sched_unwait(s, id);
	s->wait = xrealloc(s->wait, (s->nwait + 1) * sizeof(*s->wait));
	w = &s->wait[s->nwait++];
	snprintf(w->id, sizeof(w->id), "%s", id);
	w->when = when;
	w->domains = deferred_domains(env);
	sched_arm(s);
}

static struct sched_job *sched_find(struct scheduler *s, const char *id)
{
	for (struct sched_job *j = s->jobs; j; j = j->next)
		if (strcmp(j->id, id) == 0)
			return j;
	return NULL;
}

static void sched_job_free(struct sched_job *j)
{
	struct scheduler *s = j->s;

	for (struct sched_job **pp = &s->jobs; *pp; pp = &(*pp)->next)
		if (*pp == j) {
			*pp = j->next;
			break;
		}
	if (j->fd >= 0)
		close(j->fd);
	queue_env_free(j->env);
	notice_ids_free(&j->notices);
	free(j->due);
	free(j);
}

/* ---- operator requests: hold, release, delete ------------------------------ */

static struct sched_job *sched_job_new(struct scheduler *s, const char *id, enum sched_op op)
{
	struct sched_job *j = xcalloc(1, sizeof(*j));

	j->s = s;
	j->fd = -1;
	j->op = op;
	snprintf(j->id, sizeof(j->id), "%s", id);
	j->next = s->jobs;
	s->jobs = j;
	s->busy++;
	sched_unwait(s, id);
	return j;
}

/* Worker thread: the request's one step.  A held message keeps its
 * state in the .st file, written and fsync'd as after an attempt. */
static void sched_op_fn(void *arg)
{
	struct sched_job *j = arg;
	struct queue *q = j->s->t->queue;
	struct queue_env *env = queue_load(q, j->id, NULL);

	if (env == NULL) {
		j->gone = true;
		return;
	}
	if (j->op == SCHED_DELETE) {
		j->ok = queue_remove(q, j->id);
		if (j->ok)
			log_deleted(j->id);
	} else {
		env->held = j->op == SCHED_HOLD;
		j->ok = queue_save_state(q, env);
		if (j->ok)
			log_hold_changed(j->id, env->held);
	}
	queue_env_free(env);
}

static void sched_job_end(struct sched_job *j);

static void sched_op_done(void *arg)
{
	sched_job_end(arg);
}

static void sched_op_start(struct scheduler *s, const char *id, enum sched_op op, scheduler_done_fn done,
			   void *arg)
{
	struct sched_job *j = sched_job_new(s, id, op);

	j->done = done;
	j->done_arg = arg;
	if (atomic_load(&s->stopping)) {
		/* Shutting down (a request taken by a job that ended late): the
		 * pool may be past taking work, and one fsync on the loop
		 * holds up nobody now. */
		sched_op_fn(j);
		sched_job_end(j);
		return;
	}
	workers_submit(s->t->delivery_pool, sched_op_fn, sched_op_done, j);
}

/* What the operator asked while the job ran: SCHED_DELIVER for nothing
 * (the message goes on being scheduled).  Delete wins over hold, hold
 * over release. */
static enum sched_op sched_wanted(const struct sched_job *j)
{
	if (j->finished || j->gone)
		return SCHED_DELIVER;
	return j->want_delete ? SCHED_DELETE : j->want_hold ? SCHED_HOLD
	       : j->want_release ? SCHED_RELEASE : SCHED_DELIVER;
}

/* Back on the loop after a job's last step: the operator's answer, the
 * notices to send, then what was asked meanwhile or the next wait. */
static void sched_job_end(struct sched_job *j)
{
	struct scheduler *s = j->s;
	char id[QUEUE_ID_LEN + 1];
	enum sched_op next = sched_wanted(j);
	bool open = !j->finished && !j->gone, start, force = j->again;

	scheduler_done_fn want_done = j->want_done;
	void *want_arg = j->want_done_arg;

	memcpy(id, j->id, sizeof(id));
	s->busy--;
	if (j->done)
		j->done(j->done_arg, j->ok);
	if (want_done && next == SCHED_DELIVER) {
		want_done(want_arg, true);   /* the message went meanwhile */
		want_done = NULL;
	}
	for (size_t i = 0; i < j->notices.n; i++)
		sched_start(s, j->notices.id[i], false, false);
	if (j->op == SCHED_DELIVER) {
		if (next == SCHED_DELIVER && open && !j->skipped && j->wake > 0 && !j->again)
			sched_wait(s, id, j->wake, j->env);
		start = j->again;
	} else {
		/* Released: tried now.  A hold or delete that could not be
		 * done leaves the message scheduled as before. */
		start = j->op == SCHED_RELEASE ? j->ok : !j->ok;
		force = j->op == SCHED_RELEASE;
	}
	sched_job_free(j);
	if (next != SCHED_DELIVER)
		sched_op_start(s, id, next, want_done, want_arg);
	else if (start && open)
		sched_start(s, id, force, false);
}

static void sched_finish_done(void *arg)
{
	sched_job_end(arg);
}

static void sched_remote_done(void *arg)
{
	struct sched_job *j = arg;
	workers_submit(j->s->t->delivery_pool, sched_finish_fn, sched_finish_done, j);
}

static void sched_prepare_done(void *arg)
{
	struct sched_job *j = arg;

	if (j->remote && !j->skipped && !j->gone) {
		remote_deliver(j->s->remote, j->env, j->fd, j->due, sched_remote_done, j);
		return;
	}
	sched_job_end(j);
}

static void sched_start(struct scheduler *s, const char *id, bool force, bool recovering)
{
	struct sched_job *j;

	if (atomic_load(&s->stopping))
		return;
	if ((j = sched_find(s, id)) != NULL) {
		j->again = true;	/* once more when this run ends */
		return;
	}
	j = sched_job_new(s, id, SCHED_DELIVER);
	j->force = force;
	j->recovering = recovering;
	workers_submit(s->t->delivery_pool, sched_prepare_fn, sched_prepare_done, j);
}

static void sched_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct scheduler *s = arg;
	int64_t now = now_unix();
	size_t i = 0;

	while (i < s->nwait) {
		if (s->wait[i].when <= now) {
			char id[QUEUE_ID_LEN + 1];
			memcpy(id, s->wait[i].id, sizeof(id));
			sched_unwait_at(s, i);
			sched_start(s, id, false, false);
		} else {
			i++;
		}
	}
	sched_arm(s);
}

static void sched_arm(struct scheduler *s)
{
	int64_t first = 0, now = now_unix();
	struct timeval tv = { 0, 0 };

	for (size_t i = 0; i < s->nwait; i++)
		if (first == 0 || s->wait[i].when < first)
			first = s->wait[i].when;
	evtimer_del(s->timer);
	if (first == 0)
		return;
	tv.tv_sec = first > now ? (time_t)(first - now) : 0;
	evtimer_add(s->timer, &tv);
}

struct scheduler *scheduler_new(struct tern *t)
{
	struct scheduler *s = xcalloc(1, sizeof(*s));
	s->t = t;
	atomic_init(&s->stopping, false);
	s->timer = evtimer_new(t->base, sched_timer_cb, s);
	s->remote = remote_new(t);
	handoff_install(t);
	return s;
}

void scheduler_free(struct scheduler *s)
{
	if (s == NULL)
		return;
	event_free(s->timer);
	remote_free(s->remote);
	while (s->jobs)
		sched_job_free(s->jobs);
	while (s->nwait > 0)
		sched_unwait_at(s, s->nwait - 1);
	free(s->wait);
	free(s);
}

void scheduler_enqueue(struct scheduler *s, const char *id)
{
	sched_start(s, id, false, false);
}

static void recover_one(const char *id, void *arg)
{
	sched_start(arg, id, false, true);
}

size_t scheduler_recover(struct scheduler *s)
{
	size_t n = queue_scan(s->t->queue, recover_one, s);
	log_queue_recovered(n);
	return n;
}

void scheduler_stop(struct scheduler *s)
{
	atomic_store(&s->stopping, true);
	evtimer_del(s->timer);
	remote_shutdown(s->remote);
}

size_t scheduler_busy(const struct scheduler *s)
{
	/* Connections still saying QUIT count as one more job. */
	return s->busy + (remote_idle(s->remote) ? 0 : 1);
}

/* ---- control: flush, hold, release, delete (loop thread) ---------------- */

/* Deferred mail (of domain, or all if NULL) is tried now.  The wait list
 * knows each message's deferred domains: no file is read here. */
size_t scheduler_flush(struct scheduler *s, const char *domain)
{
	char (*ids)[QUEUE_ID_LEN + 1] = xcalloc(s->nwait ? s->nwait : 1, sizeof(*ids));
	char *item = domain ? xasprintf(" %s ", domain) : NULL;
	size_t n = 0;

	for (char *c = item; c && *c; c++)
		*c = (char)tolower((unsigned char)*c);
	for (size_t i = 0; i < s->nwait; i++) {
		const char *d = s->wait[i].domains;
		if (item ? strstr(d, item) != NULL : d[1] != '\0')
			memcpy(ids[n++], s->wait[i].id, sizeof(ids[0]));
	}
	for (size_t i = 0; i < n; i++)
		sched_start(s, ids[i], true, false);
	free(item);
	free(ids);
	log_flush(domain, n);
	return n;
}

/* A job of the message in flight takes the request when it ends, and
 * the operator is answered once it is carried out (so that what `tern
 * queue` shows next agrees); a request it replaces is answered at once. */
static bool sched_defer_request(struct scheduler *s, const char *id, enum sched_op op, scheduler_done_fn done,
				void *arg)
{
	struct sched_job *j = sched_find(s, id);

	if (j == NULL)
		return false;
	if (op == SCHED_DELETE)
		j->want_delete = true;
	else {
		j->want_hold = op == SCHED_HOLD;
		j->want_release = op == SCHED_RELEASE;
	}
	if (j->want_done)
		j->want_done(j->want_done_arg, true);
	j->want_done = done;
	j->want_done_arg = arg;
	return true;
}

void scheduler_request(struct scheduler *s, const char *id, enum scheduler_request req, scheduler_done_fn done,
		       void *arg)
{
	enum sched_op op = req == SCHEDULER_HOLD ? SCHED_HOLD : req == SCHEDULER_RELEASE ? SCHED_RELEASE
			   : SCHED_DELETE;

	if (!sched_defer_request(s, id, op, done, arg))
		sched_op_start(s, id, op, done, arg);
}

void scheduler_forget(struct scheduler *s, void *arg)
{
	for (struct sched_job *j = s->jobs; j; j = j->next) {
		if (j->done_arg == arg)
			j->done = NULL;
		if (j->want_done_arg == arg)
			j->want_done = NULL;
	}
}
