/*
 * scheduler.c - see scheduler.h.
 *
 * Each queued message is worked on by one job at a time.  Messages that
 * wait (deferred local recipients) sit in a list with their next try time;
 * a timer wakes the scheduler at the earliest one.
 */
#include "delivery/scheduler.h"
#include "core/config.h"
#include "core/log.h"
#include "core/server.h"
#include "core/util.h"
#include "core/workers.h"
#include "delivery/local.h"
#include "store/queue.h"

#include <event2/event.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

struct waiting {
	char id[QUEUE_ID_LEN + 1];
	int64_t when;
};

struct scheduler {
	struct tern *t;
	atomic_bool stopping;
	size_t busy;
	struct waiting *wait;
	size_t nwait;
	struct event *timer;
};

struct sched_job {
	struct scheduler *s;
	char id[QUEUE_ID_LEN + 1];
	struct local_result res;
	bool skipped;
};

static void sched_arm(struct scheduler *s);

static void sched_job_work(void *arg)
{
	struct sched_job *j = arg;
	if (atomic_load(&j->s->stopping)) {
		j->skipped = true;
		return;
	}
	local_deliver(j->s->t->cfg, j->s->t->queue, j->id, &j->res);
}

static void sched_wait(struct scheduler *s, const char *id, int64_t when)
{
	for (size_t i = 0; i < s->nwait; i++)
		if (strcmp(s->wait[i].id, id) == 0) {
			s->wait[i].when = when;
			sched_arm(s);
			return;
		}
	s->wait = xrealloc(s->wait, (s->nwait + 1) * sizeof(*s->wait));
	snprintf(s->wait[s->nwait].id, sizeof(s->wait[s->nwait].id), "%s", id);
	s->wait[s->nwait].when = when;
	s->nwait++;
	sched_arm(s);
}

static void sched_job_done(void *arg)
{
	struct sched_job *j = arg;
	struct scheduler *s = j->s;

	s->busy--;
	if (!j->skipped && j->res.loaded && !j->res.finished && j->res.next_try > 0)
		sched_wait(s, j->id, j->res.next_try);
	free(j);
}

static void sched_start(struct scheduler *s, const char *id)
{
	struct sched_job *j;
	if (atomic_load(&s->stopping))
		return;
	j = xcalloc(1, sizeof(*j));
	j->s = s;
	snprintf(j->id, sizeof(j->id), "%s", id);
	s->busy++;
	workers_submit(s->t->delivery_pool, sched_job_work, sched_job_done, j);
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
			sched_start(s, id);
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
	return s;
}

void scheduler_free(struct scheduler *s)
{
	if (s == NULL)
		return;
	event_free(s->timer);
	free(s->wait);
	free(s);
}

void scheduler_enqueue(struct scheduler *s, const char *id)
{
	sched_start(s, id);
}

static void recover_one(const char *id, void *arg)
{
	sched_start(arg, id);
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
}

size_t scheduler_busy(const struct scheduler *s)
{
	return s->busy;
}
