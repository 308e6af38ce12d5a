/*
 * bounce.c - queue a DSN (see bounce.h).  RFC 3464, RFC 3461 §6 (RET,
 * ENVID, ORCPT), RFC 5321 §4.5.5 (null reverse path, never bounced).
 */
#include "delivery/bounce.h"
#include "core/config.h"
#include "core/log.h"
#include "core/util.h"
#include "proto/smtp_parse.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define BOUNCE_CHUNK 16384

static void log_dsn(const struct queue_env *env, const char *notice, enum dsn_action act, size_t n)
{
	log_event("event=dsn queue=%s notice=%s action=%s rcpts=%zu", env->id, notice, dsn_action_str(act), n);
}

static void log_dsn_error(const struct queue_env *env)
{
	log_event("event=dsn_error queue=%s error=\"could not queue the notice\"", env->id);
}

static uint64_t count_lf(const char *p, size_t n)
{
	uint64_t lines = 0;
	for (size_t i = 0; i < n; i++)
		lines += p[i] == '\n';
	return lines;
}

/* The original, or its header section only; *lines counts LFs written. */
static bool bounce_copy(struct queue_writer *w, const struct queue_env *env, int fd, bool headers_only,
			uint64_t *lines)
{
	char buf[BOUNCE_CHUNK];
	uint64_t pos = env->msg_offset, end = env->msg_offset + env->msg_len;
	bool prev_lf = true;

	while (pos < end) {
		size_t want = end - pos < sizeof(buf) ? (size_t)(end - pos) : sizeof(buf);
		ssize_t got = pread(fd, buf, want, (off_t)pos);
		size_t n;

		if (got <= 0)
			return false;
		n = (size_t)got;
		if (headers_only) {
			/* Stop after the blank line that ends the header. */
			for (size_t i = 0; i < n; i++) {
				if (buf[i] == '\n' && prev_lf) {
					n = i;
					pos = end;
					break;
				}
				prev_lf = buf[i] == '\n';
			}
		}
		*lines += count_lf(buf, n);
		if (!queue_writer_write(w, buf, n))
			return false;
		pos += (uint64_t)got;
	}
	return true;
}

static struct queue_env *bounce_envelope(const struct config *cfg, const struct queue_env *env)
{
	struct queue_env *b = xcalloc(1, sizeof(*b));
	const char *at = strrchr(env->from, '@');
	struct queue_rcpt *r;

	b->arrival = now_unix();
	b->from = xstrdup("");
	b->helo = xstrdup(cfg->hostname);
	b->client_ip = xstrdup("127.0.0.1");
	b->body = env->eight_bit ? SMTP_BODY_8BITMIME : SMTP_BODY_NONE;
	r = queue_env_add_rcpt(b, env->from, env->from);
	r->local = at != NULL && config_is_local_domain(cfg, at + 1);
	return b;
}

static void bounce_fill_rcpts(const struct queue_env *env, const size_t *idx, const enum dsn_action *act,
			      size_t n, struct dsn_rcpt *out, char (*orcpt)[600])
{
	for (size_t i = 0; i < n; i++) {
		const struct queue_rcpt *r = &env->rcpt[idx[i]];
		struct dsn_rcpt *d = &out[i];

		d->address = r->addr;
		d->orcpt = NULL;
		if (r->orcpt) {
			/* Stored "type;address": RFC 3464 writes "type; address". */
			const char *semi = strchr(r->orcpt, ';');
			if (semi) {
				snprintf(orcpt[i], sizeof(orcpt[i]), "%.*s; %s", (int)(semi - r->orcpt), r->orcpt, semi + 1);
				d->orcpt = orcpt[i];
			}
		}
		d->action = act[i];
		d->status = r->status && r->status[0] ? r->status : act[i] == DSN_FAILED ? "5.0.0" :
			    act[i] == DSN_DELAYED ? "4.0.0" : "2.0.0";
		if (act[i] == DSN_FAILED && d->status[0] == '2')
			d->status = "5.0.0";
		d->remote_mta = r->local ? NULL : r->remote_mta;
		d->diagnostic = r->last_reply;
		d->last_attempt = r->attempts ? now_unix() : 0;
		d->retry_until = 0;
	}
}

bool bounce_queue(const struct config *cfg, struct queue *q, const struct queue_env *env, int fd,
		  const size_t *idx, const enum dsn_action *act, size_t n, char new_id[QUEUE_ID_LEN + 1])
{
	struct dsn_rcpt *rc = xcalloc(n, sizeof(*rc));
	char (*orcpt)[600] = xcalloc(n, sizeof(*orcpt));
	char unique[64];
	struct queue_env *benv = bounce_envelope(cfg, env);
	struct queue_writer *w = NULL;
	char *prefix = NULL, *suffix = NULL;
	size_t plen = 0, slen = 0;
	uint64_t lines = 0;
	bool ok = false;
	struct dsn_report rep = {
		.hostname = cfg->hostname, .sender = env->from, .unique = unique, .envid = env->envid,
		.arrival = env->arrival, .now = now_unix(),
		.ret = env->ret == SMTP_RET_HDRS ? DSN_RET_HDRS : env->ret == SMTP_RET_FULL ? DSN_RET_FULL : DSN_RET_DEFAULT,
		.eightbit = env->eight_bit, .rcpts = rc, .nrcpts = n,
	};

	snprintf(unique, sizeof(unique), "%s.%" PRId64, env->id, rep.now);
	bounce_fill_rcpts(env, idx, act, n, rc, orcpt);
	if (act[0] == DSN_DELAYED)
		for (size_t i = 0; i < n; i++)
			rc[i].retry_until = env->arrival + (int64_t)cfg->max_age;
	prefix = dsn_prefix(&rep, &plen);
	if (prefix == NULL)
		goto out;
	suffix = dsn_suffix(&rep, &slen);
	w = queue_writer_new(q, benv);
	if (w == NULL)
		goto out;
	lines = count_lf(prefix, plen) + count_lf(suffix, slen);
	if (!queue_writer_write(w, prefix, plen) || !bounce_copy(w, env, fd, dsn_returns_headers_only(&rep), &lines) ||
	    !queue_writer_write(w, suffix, slen)) {
		queue_writer_abort(w);
		goto out;
	}
	ok = queue_writer_commit(w, lines, env->eight_bit && !dsn_returns_headers_only(&rep));
	/* after the commit: it gives the notice a new id if its own was taken */
	snprintf(new_id, QUEUE_ID_LEN + 1, "%s", queue_writer_id(w));
out:
	if (ok)
		log_dsn(env, new_id, act[0], n);
	else
		log_dsn_error(env);
	queue_writer_free(w);
	queue_env_free(benv);
	free(prefix);
	free(suffix);
	free(rc);
	free(orcpt);
	return ok;
}
