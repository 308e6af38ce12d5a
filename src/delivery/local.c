/*
 * local.c - local delivery (see local.h).
 *
 * Return-Path: and Delivered-To: are prepended per recipient (RFC 5321
 * 4.4, RFC 9228); the message itself is copied from the queue file
 * without passing through user space where the kernel allows.
 */
#include "delivery/local.h"
#include "core/config.h"
#include "core/log.h"
#include "core/util.h"
#include "store/maildir.h"
#include "store/queue.h"
#include "store/users.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void log_delivery(const struct queue_env *env, const struct queue_rcpt *r, const char *status,
			 const char *dsn, const char *detail)
{
	char to[600], text[300];
	log_event("event=delivery queue=%s to=%s relay=local status=%s dsn=%s delay=%" PRId64 "s detail=%s",
		  env->id, log_quote(to, sizeof(to), r->addr, strlen(r->addr)), status, dsn,
		  now_unix() - env->arrival, log_quote(text, sizeof(text), detail, strlen(detail)));
}

static void rcpt_result(struct queue_rcpt *r, enum rcpt_state st, const char *status, const char *text)
{
	r->state = st;
	free(r->status);
	free(r->last_reply);
	free(r->remote_mta);
	r->status = xstrdup(status);
	r->last_reply = xstrdup(text);
	r->remote_mta = NULL;
}

/* One recipient.  Returns true when its state changed. */
static bool deliver_one(const struct config *cfg, struct queue_env *env, struct queue_rcpt *r, int fd,
			int64_t now)
{
	const char *at = strrchr(r->addr, '@');
	char name[512], *path, *prefix;
	bool ok;

	if (at == NULL || !users_safe_name(r->addr, (size_t)(at - r->addr)) || !users_safe_name(at + 1, strlen(at + 1))) {
		rcpt_result(r, RCPT_FAILED, "5.1.3", "550 5.1.3 Bad destination mailbox address syntax");
		log_delivery(env, r, "bounced", "5.1.3", "unsafe mailbox name");
		return true;
	}
	char *local = xstrndup(r->addr, (size_t)(at - r->addr));
	for (char *p = local; *p; p++)
		*p = ascii_lower(*p);
	char *domain = xstrdup(at + 1);
	for (char *p = domain; *p; p++)
		*p = ascii_lower(*p);
	path = maildir_path(cfg->state_dir, domain, local);
	prefix = xasprintf("Return-Path: <%s>\nDelivered-To: %s\n", env->from, r->addr);
	ok = maildir_deliver(path, cfg->hostname, prefix, strlen(prefix), 2, fd, (off_t)env->msg_offset,
			     env->msg_len, env->msg_lines, name, sizeof(name));
	if (ok) {
		rcpt_result(r, RCPT_DONE, "2.0.0", "250 2.0.0 Delivered to Maildir");
		log_delivery(env, r, "sent", "2.0.0", name);
	} else {
		char text[256];
		snprintf(text, sizeof(text), "451 4.3.0 Maildir write failed: %s", strerror(errno));
		r->attempts++;
		/* Local trouble (disk full, permissions) clears up soon or
		 * needs the operator: retry in a minute, doubling to the
		 * configured retry interval. */
		uint64_t wait = 60ULL << (r->attempts < 6 ? r->attempts - 1 : 5);
		if (wait > cfg->retry)
			wait = cfg->retry;
		r->next_try = now + (int64_t)wait;
		if (now - env->arrival > (int64_t)cfg->max_age) {
			rcpt_result(r, RCPT_FAILED, "4.3.0", text);
			log_delivery(env, r, "bounced", "4.3.0", text);
		} else {
			rcpt_result(r, RCPT_DEFERRED, "4.3.0", text);
			log_delivery(env, r, "deferred", "4.3.0", text);
		}
	}
	free(local);
	free(domain);
	free(path);
	free(prefix);
	return true;
}

/*
 * The direct path for a message whose recipients are all local: deliver
 * from the not yet committed queue file straight into the Maildirs.  The
 * session sends its 250 only after this returns true, so the message is
 * durable in every mailbox (each one fsync'd, its new/ synced) before it
 * is acknowledged - the same promise as a committed queue file, with half
 * the syncs.  On false, the recipients already done are marked RCPT_DONE
 * and the caller commits the queue file for the rest.
 */
bool local_deliver_direct(const struct config *cfg, struct queue_env *env, int fd)
{
	int64_t now = now_unix();
	bool all = true;

	for (size_t i = 0; i < env->nrcpt; i++)
		if (!env->rcpt[i].local)
			return false;
	for (size_t i = 0; i < env->nrcpt; i++) {
		deliver_one(cfg, env, &env->rcpt[i], fd, now);
		if (env->rcpt[i].state != RCPT_DONE)
			all = false;
	}
	return all;
}

bool local_deliver_env(const struct config *cfg, struct queue_env *env, int fd, int64_t now)
{
	bool changed = false;

	for (size_t i = 0; i < env->nrcpt; i++) {
		struct queue_rcpt *r = &env->rcpt[i];
		if (r->local && !env->held && (r->state == RCPT_PENDING || (r->state == RCPT_DEFERRED && r->next_try <= now)))
			changed |= deliver_one(cfg, env, r, fd, now);
	}
	return changed;
}

void local_deliver(const struct config *cfg, struct queue *q, const char *id, struct local_result *res)
{
	int fd = -1;
	int64_t now = now_unix();
	bool changed = false, all_final = true;
	struct queue_env *env = queue_load(q, id, &fd);

	memset(res, 0, sizeof(*res));
	if (env == NULL) {
		log_event("event=queue_error op=load queue=%s error=\"unreadable or incomplete queue file\"", id);
		return;
	}
	res->loaded = true;
	for (size_t i = 0; i < env->nrcpt; i++) {
		struct queue_rcpt *r = &env->rcpt[i];
		if (r->local && !env->held && (r->state == RCPT_PENDING || (r->state == RCPT_DEFERRED && r->next_try <= now)))
			changed |= deliver_one(cfg, env, r, fd, now);
		if (r->state == RCPT_PENDING || r->state == RCPT_DEFERRED) {
			all_final = false;
			if (!r->local)
				res->remote_pending = true;
			else if (res->next_try == 0 || r->next_try < res->next_try)
				res->next_try = r->next_try;
		}
		if (r->state == RCPT_FAILED)
			res->failed++;
	}
	close(fd);
	if (all_final && res->failed == 0) {
		queue_remove(q, id);
		log_event("event=removed queue=%s", id);
		res->finished = true;
	} else if (changed) {
		queue_save_state(q, env);
	}
	queue_env_free(env);
}
