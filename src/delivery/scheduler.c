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
 * Back on the loop, the message waits in a list with its next try time;
 * a timer wakes the scheduler at the earliest one.
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
#include "delivery/bounce.h"
#include "delivery/local.h"
#include "delivery/remote.h"
#include "proto/smtp_parse.h"
#include "store/queue.h"

#include <event2/event.h>
#include <openssl/rand.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define SCHED_BACKOFF_SHIFT_MAX 3	/* retry, 2x, 4x, then 8x retry */
#define SCHED_RECOVER_SPREAD_MAX 300	/* seconds over which restart retries spread */
#define SCHED_NOTICES_MAX 3

struct waiting {
	char id[QUEUE_ID_LEN + 1];
	int64_t when;
};

struct sched_job {
	struct sched_job *next;		/* in s->jobs */
	struct scheduler *s;
	char id[QUEUE_ID_LEN + 1];
	bool force;			/* flush: deferred recipients are due now */
	bool recovering;		/* first look after a restart */
	/* loop-side requests that arrived while the job ran */
	bool want_hold, want_release, want_delete, again;
	/* step results */
	struct queue_env *env;
	int fd;
	bool *due;			/* remote recipients tried in step 2 */
	bool remote;
	bool gone;			/* no message (removed or unreadable) */
	bool finished;			/* every recipient final: removed */
	bool skipped;
	int64_t wake;			/* next try, 0 = none */
	char notices[SCHED_NOTICES_MAX][QUEUE_ID_LEN + 1];
	size_t nnotices;
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

static bool notify_wants(const struct queue_rcpt *r, unsigned bit)
{
	if (r->notify & SMTP_NOTIFY_NEVER)
		return false;
	if (r->notify == 0)	/* RFC 3461 §4.1: absent means FAILURE */
		return bit == SMTP_NOTIFY_FAILURE;
	return (r->notify & bit) != 0;
}

/* One notice for the recipients whose action is act. */
static void sched_notice(struct sched_job *j, const struct config *cfg, enum dsn_action act,
			 const size_t *idx, size_t n)
{
	enum dsn_action *acts;

	if (n == 0 || j->nnotices >= SCHED_NOTICES_MAX)
		return;
	acts = xcalloc(n, sizeof(*acts));
	for (size_t i = 0; i < n; i++)
		acts[i] = act;
	if (bounce_queue(cfg, j->s->t->queue, j->env, j->fd, idx, acts, n, j->notices[j->nnotices]))
		j->nnotices++;
	free(acts);
}

static void sched_notices(struct sched_job *j, const struct config *cfg, int64_t now)
{
	struct queue_env *env = j->env;
	size_t *failed = xcalloc(env->nrcpt, sizeof(size_t));
	size_t *done = xcalloc(env->nrcpt, sizeof(size_t));
	size_t *late = xcalloc(env->nrcpt, sizeof(size_t));
	size_t nf = 0, nd = 0, nl = 0;
	bool null_sender = env->from[0] == '\0';
	bool warn = !env->delay_warned && now - env->arrival >= (int64_t)cfg->delay_warning;

	for (size_t i = 0; i < env->nrcpt; i++) {
		struct queue_rcpt *r = &env->rcpt[i];

		if (r->state == RCPT_FAILED && !r->dsn_done) {
			if (!null_sender && notify_wants(r, SMTP_NOTIFY_FAILURE))
				failed[nf++] = i;
			r->dsn_done = true;
		} else if (r->state == RCPT_DONE && !r->dsn_done) {
			if (!null_sender && notify_wants(r, SMTP_NOTIFY_SUCCESS))
				done[nd++] = i;
			r->dsn_done = true;
		} else if (r->state == RCPT_DEFERRED && warn && !null_sender && notify_wants(r, SMTP_NOTIFY_DELAY)) {
			late[nl++] = i;
		}
	}
	if (nl > 0)
		env->delay_warned = true;
	sched_notice(j, cfg, DSN_FAILED, failed, nf);
	sched_notice(j, cfg, DSN_DELAYED, late, nl);
	/* Delivered into a Maildir: "delivered"; handed to another MTA:
	 * "relayed" (RFC 3464 §2.3.3). */
	for (size_t k = 0; k < nd; k++)
		if (env->rcpt[done[k]].local) {
			failed[0] = done[k];
			sched_notice(j, cfg, DSN_DELIVERED, &failed[0], 1);
		} else {
			failed[0] = done[k];
			sched_notice(j, cfg, DSN_RELAYED, &failed[0], 1);
		}
	free(failed);
	free(done);
	free(late);
}

static void sched_finish_work(struct sched_job *j)
{
	const struct config *cfg = j->s->t->cfg;
	struct queue_env *env = j->env;
	int64_t now = now_unix();
	bool open = false;

	for (size_t i = 0; i < env->nrcpt; i++) {
		struct queue_rcpt *r = &env->rcpt[i];

		if (j->due && j->due[i] && r->state == RCPT_DEFERRED) {
			if (now - env->arrival >= (int64_t)cfg->max_age) {
				r->state = RCPT_FAILED;
				log_event("event=expired queue=%s rcpt=%zu age=%llds", env->id, i,
					  (long long)(now - env->arrival));
			} else {
				r->next_try = sched_backoff(cfg, r->attempts, now);
			}
		}
	}
	sched_notices(j, cfg, now);
	for (size_t i = 0; i < env->nrcpt; i++) {
		struct queue_rcpt *r = &env->rcpt[i];
		if (r->state == RCPT_PENDING || r->state == RCPT_DEFERRED) {
			open = true;
			if (j->wake == 0 || r->next_try < j->wake)
				j->wake = r->next_try;
		}
	}
	if (!open) {
		queue_retire(j->s->t->queue, j->id);
		log_event("event=removed queue=%s", j->id);
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

static void sched_unwait(struct scheduler *s, const char *id)
{
	for (size_t i = 0; i < s->nwait; i++)
		if (strcmp(s->wait[i].id, id) == 0) {
			s->wait[i] = s->wait[--s->nwait];
			return;
		}
}

static void sched_wait(struct scheduler *s, const char *id, int64_t when)
{
	sched_unwait(s, id);
	s->wait = xrealloc(s->wait, (s->nwait + 1) * sizeof(*s->wait));
	snprintf(s->wait[s->nwait].id, sizeof(s->wait[s->nwait].id), "%s", id);
	s->wait[s->nwait].when = when;
	s->nwait++;
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
	free(j->due);
	free(j);
}

static bool sched_set_held(struct scheduler *s, const char *id, bool held)
{
	struct queue_env *env = queue_load(s->t->queue, id, NULL);
	bool ok;

	if (env == NULL)
		return false;
	env->held = held;
	ok = queue_save_state(s->t->queue, env);
	queue_env_free(env);
	log_event("event=%s queue=%s", held ? "held" : "released", id);
	return ok;
}

static bool sched_remove(struct scheduler *s, const char *id)
{
	bool ok = queue_remove(s->t->queue, id);
	sched_unwait(s, id);
	log_event("event=deleted queue=%s", id);
	return ok;
}

/* Back on the loop after step 1 or 3: what the job left to do. */
static void sched_job_end(struct sched_job *j)
{
	struct scheduler *s = j->s;
	char id[QUEUE_ID_LEN + 1];
	bool again = j->again, release = j->want_release, finished = j->finished || j->gone;

	memcpy(id, j->id, sizeof(id));
	s->busy--;
	for (size_t i = 0; i < j->nnotices; i++)
		sched_start(s, j->notices[i], false, false);
	if (j->want_delete) {
		if (!finished)
			sched_remove(s, id);
		sched_job_free(j);
		return;
	}
	if (j->want_hold) {
		if (!finished)
			sched_set_held(s, id, true);
		sched_job_free(j);
		return;
	}
	if (!finished && !j->skipped && j->wake > 0 && !again)
		sched_wait(s, id, j->wake);
	sched_job_free(j);
	if (release && !finished)
		sched_set_held(s, id, false);
	if ((again || release) && !finished)
		sched_start(s, id, again, false);
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
	sched_unwait(s, id);
	j = xcalloc(1, sizeof(*j));
	j->s = s;
	j->fd = -1;
	j->force = force;
	j->recovering = recovering;
	snprintf(j->id, sizeof(j->id), "%s", id);
	j->next = s->jobs;
	s->jobs = j;
	s->busy++;
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
			s->wait[i] = s->wait[--s->nwait];
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
	log_event("event=queue_recovered messages=%zu", n);
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

static bool env_has_deferred_for(const struct queue_env *env, const char *domain)
{
	for (size_t i = 0; i < env->nrcpt; i++) {
		const char *at = strrchr(env->rcpt[i].addr, '@');
		if (env->rcpt[i].state == RCPT_DEFERRED && (domain == NULL || (at && strcasecmp(at + 1, domain) == 0)))
			return true;
	}
	return false;
}

size_t scheduler_flush(struct scheduler *s, const char *domain)
{
	size_t n = 0, count = s->nwait;
	char (*ids)[QUEUE_ID_LEN + 1] = xcalloc(count ? count : 1, sizeof(*ids));

	for (size_t i = 0; i < count; i++)
		memcpy(ids[i], s->wait[i].id, sizeof(ids[i]));
	for (size_t i = 0; i < count; i++) {
		struct queue_env *env = queue_load(s->t->queue, ids[i], NULL);
		bool match = env && !env->held && env_has_deferred_for(env, domain);

		queue_env_free(env);
		if (match) {
			sched_start(s, ids[i], true, false);
			n++;
		}
	}
	free(ids);
	log_event("event=flush domain=%s messages=%zu", domain ? domain : "*", n);
	return n;
}

bool scheduler_hold(struct scheduler *s, const char *id)
{
	struct sched_job *j = sched_find(s, id);

	if (j) {
		j->want_hold = true;
		j->want_release = false;
		return true;
	}
	sched_unwait(s, id);
	return sched_set_held(s, id, true);
}

bool scheduler_release(struct scheduler *s, const char *id)
{
	struct sched_job *j = sched_find(s, id);

	if (j) {
		j->want_hold = false;
		j->want_release = true;
		return true;
	}
	if (!sched_set_held(s, id, false))
		return false;
	sched_start(s, id, true, false);
	return true;
}

bool scheduler_delete(struct scheduler *s, const char *id)
{
	struct sched_job *j = sched_find(s, id);
	struct queue_env *env;

	if (j) {
		j->want_delete = true;
		return true;
	}
	env = queue_load(s->t->queue, id, NULL);

	if (env == NULL)
		return false;
	queue_env_free(env);
	return sched_remove(s, id);
}
