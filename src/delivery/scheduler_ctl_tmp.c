/*
 * scheduler_ctl_tmp.c - TEMPORARY stand-ins for scheduler_flush, _hold,
 * _release and _delete (scheduler.h) until remote delivery's scheduler
 * lands with the real ones; then this file goes.  They work on the queue
 * files directly, synchronously, on the loop thread, and know nothing of
 * jobs in flight - good enough for the control socket and ETRN to be
 * built and tested against.
 */
#include "delivery/scheduler.h"
#include "core/server.h"
#include "core/util.h"
#include "store/queue.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* scheduler.c's struct starts with the server context; this file reads
 * only that member and disappears with the stand-ins. */
struct scheduler_head {
	struct tern *t;
};

static struct queue *tmp_queue(struct scheduler *s)
{
	return ((struct scheduler_head *)(void *)s)->t->queue;
}

static bool tmp_set_held(struct scheduler *s, const char *id, bool held)
{
	struct queue_env *env = queue_load(tmp_queue(s), id, NULL);
	bool ok;
	if (env == NULL)
		return false;
	env->held = held;
	ok = queue_save_state(tmp_queue(s), env);
	queue_env_free(env);
	return ok;
}

bool scheduler_hold(struct scheduler *s, const char *id)
{
	return tmp_set_held(s, id, true);
}

bool scheduler_release(struct scheduler *s, const char *id)
{
	if (!tmp_set_held(s, id, false))
		return false;
	scheduler_enqueue(s, id);
	return true;
}

bool scheduler_delete(struct scheduler *s, const char *id)
{
	struct queue_env *env = queue_load(tmp_queue(s), id, NULL);
	if (env == NULL)
		return false;
	queue_env_free(env);
	return queue_remove(tmp_queue(s), id);
}

struct tmp_flush {
	struct scheduler *s;
	const char *domain;
	size_t n;
};

static bool rcpt_waits_for(const struct queue_rcpt *r, const char *domain)
{
	const char *at = strrchr(r->addr, '@');
	if (r->state != RCPT_PENDING && r->state != RCPT_DEFERRED)
		return false;
	return domain == NULL || (at && strcasecmp(at + 1, domain) == 0);
}

static void tmp_flush_one(const char *id, void *arg)
{
	struct tmp_flush *f = arg;
	struct queue_env *env = queue_load(tmp_queue(f->s), id, NULL);
	bool any = false;

	if (env == NULL || env->held) {
		queue_env_free(env);
		return;
	}
	for (size_t i = 0; i < env->nrcpt; i++)
		if (rcpt_waits_for(&env->rcpt[i], f->domain)) {
			env->rcpt[i].next_try = 0;
			any = true;
		}
	if (any && queue_save_state(tmp_queue(f->s), env)) {
		scheduler_enqueue(f->s, id);
		f->n++;
	}
	queue_env_free(env);
}

size_t scheduler_flush(struct scheduler *s, const char *domain)
{
	struct tmp_flush f = { .s = s, .domain = domain };
	queue_scan(tmp_queue(s), tmp_flush_one, &f);
	return f.n;
}
