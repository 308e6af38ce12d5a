/*
 * notice.c - see notice.h.  RFC 3461 4.1 (NOTIFY, its default), RFC 3464
 * 2.3.3 (delivered vs relayed), RFC 5321 4.5.5 (nothing to "<>").
 */
#include "delivery/notice.h"
#include "core/config.h"
#include "core/util.h"
#include "delivery/bounce.h"
#include "proto/smtp_parse.h"

#include <stdlib.h>

static bool notify_wants(const struct queue_rcpt *r, unsigned bit)
{
	if (r->notify & SMTP_NOTIFY_NEVER)
		return false;
	if (r->notify == 0)	/* RFC 3461 4.1: absent means FAILURE */
		return bit == SMTP_NOTIFY_FAILURE;
	return (r->notify & bit) != 0;
}

void notice_ids_free(struct notice_ids *ids)
{
	free(ids->id);
	ids->id = NULL;
	ids->n = 0;
}

/* The notices for the recipients idx[0..n) with actions act[], at most
 * DSN_RCPTS_MAX a notice.  For a final notice (failure, success) the
 * recipients of each one committed are settled.  True when all were
 * committed. */
static bool notice_queue(const struct config *cfg, struct queue *q, struct queue_env *env, int fd,
			 const size_t *idx, const enum dsn_action *act, size_t n, bool final,
			 struct notice_ids *out)
{
	bool all = true;

	for (size_t at = 0; at < n; at += DSN_RCPTS_MAX) {
		size_t part = n - at < DSN_RCPTS_MAX ? n - at : DSN_RCPTS_MAX;

		out->id = xrealloc(out->id, (out->n + 1) * sizeof(*out->id));
		if (!bounce_queue(cfg, q, env, fd, idx + at, act + at, part, out->id[out->n])) {
			all = false;
			continue;
		}
		out->n++;
		for (size_t k = at; final && k < at + part; k++)
			env->rcpt[idx[k]].dsn_done = true;
	}
	return all;
}

bool notice_step(const struct config *cfg, struct queue *q, struct queue_env *env, int fd, int64_t now,
		 struct notice_ids *out)
{
	size_t n = env->nrcpt ? env->nrcpt : 1;
	size_t *failed = xcalloc(n, sizeof(size_t)), *late = xcalloc(n, sizeof(size_t));
	size_t *done = xcalloc(n, sizeof(size_t));
	enum dsn_action *fact = xcalloc(n, sizeof(*fact)), *lact = xcalloc(n, sizeof(*lact));
	enum dsn_action *dact = xcalloc(n, sizeof(*dact));
	size_t nf = 0, nl = 0, nd = 0;
	bool null_sender = env->from[0] == '\0', owed = false;
	bool warn = !env->delay_warned && now - env->arrival >= (int64_t)cfg->delay_warning;

	for (size_t i = 0; i < env->nrcpt; i++) {
		struct queue_rcpt *r = &env->rcpt[i];

		if (r->dsn_done)
			continue;
		if (r->state == RCPT_FAILED) {
			if (null_sender || !notify_wants(r, SMTP_NOTIFY_FAILURE))
				r->dsn_done = true;   /* nothing owed */
			else {
				fact[nf] = DSN_FAILED;
				failed[nf++] = i;
			}
		} else if (r->state == RCPT_DONE) {
			/* Into a Maildir: "delivered"; to another MTA: "relayed"
			 * (RFC 3464 2.3.3). */
			if (null_sender || !notify_wants(r, SMTP_NOTIFY_SUCCESS))
				r->dsn_done = true;
			else {
				dact[nd] = r->local ? DSN_DELIVERED : DSN_RELAYED;
				done[nd++] = i;
			}
		} else if (r->state == RCPT_DEFERRED && warn && !null_sender && notify_wants(r, SMTP_NOTIFY_DELAY)) {
			lact[nl] = DSN_DELAYED;
			late[nl++] = i;
		}
	}
	notice_queue(cfg, q, env, fd, failed, fact, nf, true, out);
	if (nl > 0 && notice_queue(cfg, q, env, fd, late, lact, nl, false, out))
		env->delay_warned = true;
	notice_queue(cfg, q, env, fd, done, dact, nd, true, out);
	for (size_t i = 0; i < env->nrcpt; i++)
		if ((env->rcpt[i].state == RCPT_FAILED || env->rcpt[i].state == RCPT_DONE) && !env->rcpt[i].dsn_done)
			owed = true;
	free(failed);
	free(late);
	free(done);
	free(fact);
	free(lact);
	free(dact);
	return !owed;
}
