/*
 * local.c - local delivery (see local.h).
 *
 * Return-Path: and Delivered-To: are prepended per recipient (RFC 5321
 * 4.4, RFC 9228); the message itself is copied from the queue file
 * without passing through user space where the kernel allows.
 */
#include "delivery/local.h"
#include "delivery/delivery_log.h"
#include "core/config.h"
#include "core/fsutil.h"
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
#include <sys/uio.h>
#include <unistd.h>

static void log_delivery(const struct queue_env *env, const struct queue_rcpt *r, const char *status,
			 const char *dsn, const char *detail)
{
	delivery_log_result(env, r, "local", status, dsn, detail);
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

/* A delivery that failed: retry soon, or bounce once max_age is over. */
static void rcpt_failed_write(const struct config *cfg, struct queue_env *env, struct queue_rcpt *r,
			      int err, int64_t now)
{
	char text[256];
	snprintf(text, sizeof(text), "451 4.3.0 Maildir write failed: %s", strerror(err));
	r->attempts++;
	/* Local trouble (disk full, permissions) clears up soon or needs the
	 * operator: retry in a minute, doubling to the configured retry
	 * interval. */
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

#define LOCAL_PREFIX_LINES 2	/* Return-Path:, Delivered-To: */
#define LOCAL_STREAM_BUF 16384	/* a 4 KiB message and its header fields in one write */
#define LOCAL_JUNK_FOLDER ".Junk"

/* The recipient's Maildir, or NULL when its name is not safe for a path. */
static char *rcpt_maildir(const struct config *cfg, const struct queue_env *env, const struct queue_rcpt *r)
{
	const char *at = strrchr(r->addr, '@');
	char *local, *domain, *path;

	if (at == NULL || !users_safe_name(r->addr, (size_t)(at - r->addr)) || !users_safe_name(at + 1, strlen(at + 1)))
		return NULL;
	local = xstrndup(r->addr, (size_t)(at - r->addr));
	for (char *p = local; *p; p++)
		*p = ascii_lower(*p);
	domain = xstrdup(at + 1);
	for (char *p = domain; *p; p++)
		*p = ascii_lower(*p);
	path = maildir_path(cfg->state_dir, domain, local);
	free(local);
	free(domain);
	if (env->junk) {   /* Maildir++ folder, made on first use */
		char *junk = xasprintf("%s/" LOCAL_JUNK_FOLDER, path);
		free(path);
		path = junk;
	}
	return path;
}

/* What goes on top of the recipient's copy (RFC 5321 4.4, RFC 9228). */
static char *rcpt_prefix(const struct queue_env *env, const struct queue_rcpt *r)
{
	return xasprintf("Return-Path: <%s>\nDelivered-To: %s\n", env->from, r->addr);
}

/* Write the recipient's copy into its Maildir's tmp/.  Returns false
 * when the recipient's state is already settled (bad name, write error). */
static bool prepare_one(const struct config *cfg, struct queue_env *env, struct queue_rcpt *r, int fd,
			int64_t now, struct maildir_file *mf)
{
	char *path = rcpt_maildir(cfg, env, r), *prefix;
	bool ok;

	if (path == NULL) {
		rcpt_result(r, RCPT_FAILED, "5.1.3", "550 5.1.3 Bad destination mailbox address syntax");
		log_delivery(env, r, "bounced", "5.1.3", "unsafe mailbox name");
		return false;
	}
	prefix = rcpt_prefix(env, r);
	ok = maildir_prepare(mf, path, cfg->hostname, prefix, strlen(prefix), LOCAL_PREFIX_LINES, fd,
			     (off_t)env->msg_offset, env->msg_len, env->msg_lines);
	if (!ok)
		rcpt_failed_write(cfg, env, r, errno, now);
	free(path);
	free(prefix);
	return ok;
}

/* Deliver the recipients picked by `want` (a bitmap over env->rcpt):
 * every copy is written, then all are committed in one fs_commit() round,
 * so a message for many local users costs one disk flush, not one each.
 * With a stream, its recipient's copy is already written (and stays
 * open: the caller closes it). */
static void deliver_batch(const struct config *cfg, struct queue_env *env, const bool *want, int fd,
			  int64_t now, struct local_stream *ls)
{
	struct maildir_file *mf = xcalloc(env->nrcpt, sizeof(*mf));
	struct fs_commit *items = xcalloc(env->nrcpt, sizeof(*items));
	size_t *idx = xcalloc(env->nrcpt, sizeof(*idx));
	size_t n = 0;

	for (size_t i = 0; i < env->nrcpt; i++) {
		if (!want[i])
			continue;
		if (ls && i == ls->rcpt) {
			/* streamed into the inbox's tmp/ before the checks
			 * decided: a quarantined copy moves to Junk/new */
			if (env->junk && !maildir_stream_folder(&ls->mf, LOCAL_JUNK_FOLDER)) {
				rcpt_failed_write(cfg, env, &env->rcpt[i], errno, now);
				continue;
			}
			maildir_stream_sized(&ls->mf, ls->prefix_len + env->msg_len,
					     ls->prefix_len + env->msg_len + LOCAL_PREFIX_LINES + env->msg_lines);
			mf[n] = ls->mf;   /* names only: the file stays ls's */
		} else if (!prepare_one(cfg, env, &env->rcpt[i], fd, now, &mf[n])) {
			continue;
		}
		maildir_commit_item(&mf[n], &items[n]);
		idx[n++] = i;
	}
	if (n > 0)
		fs_commit(items, n);
	for (size_t k = 0; k < n; k++) {
		struct queue_rcpt *r = &env->rcpt[idx[k]];
		if (ls && idx[k] == ls->rcpt)
			ls->committed = items[k].err == 0;
		else
			maildir_finish(&mf[k], items[k].err == 0);
		if (items[k].err == 0) {
			rcpt_result(r, RCPT_DONE, "2.0.0", "250 2.0.0 Delivered to Maildir");
			log_delivery(env, r, "sent", "2.0.0", mf[k].base);
		} else {
			rcpt_failed_write(cfg, env, r, items[k].err, now);
		}
	}
	free(mf);
	free(items);
	free(idx);
}

static bool due(const struct queue_env *env, const struct queue_rcpt *r, int64_t now)
{
	return r->local && !env->held &&
	       (r->state == RCPT_PENDING || (r->state == RCPT_DEFERRED && r->next_try <= now));
}

/*
 * The direct path for a message whose recipients are all local (or
 * already failed, by a check on the way in): deliver from the not yet
 * committed queue file straight into the Maildirs.  The caller answers
 * 250 only after this returns true and the notices are queued, so the
 * message is durable in every mailbox (each one fsync'd, its new/
 * synced) before it is acknowledged - the same promise as a committed
 * queue file, with half the syncs.  On false, the recipients already
 * done are marked RCPT_DONE and the caller commits the queue file for
 * the rest.
 */
bool local_deliver_direct(const struct config *cfg, struct queue_env *env, int fd, struct local_stream *ls)
{
	int64_t now = now_unix();
	bool all = true;
	bool *want;

	for (size_t i = 0; i < env->nrcpt; i++)
		if (!env->rcpt[i].local && env->rcpt[i].state == RCPT_PENDING)
			return false;
	if (ls && !local_stream_flush(ls))   /* the copies are made from its file */
		return false;
	want = xcalloc(env->nrcpt ? env->nrcpt : 1, sizeof(*want));
	for (size_t i = 0; i < env->nrcpt; i++)
		want[i] = env->rcpt[i].state == RCPT_PENDING;
	deliver_batch(cfg, env, want, fd, now, ls);
	free(want);
	for (size_t i = 0; i < env->nrcpt; i++)
		if (env->rcpt[i].state != RCPT_DONE && env->rcpt[i].state != RCPT_FAILED)
			all = false;
	return all;
}

bool local_deliver_env(const struct config *cfg, struct queue_env *env, int fd, int64_t now)
{
	bool *want = xcalloc(env->nrcpt ? env->nrcpt : 1, sizeof(*want));
	bool changed = false;

	for (size_t i = 0; i < env->nrcpt; i++)
		changed |= want[i] = due(env, &env->rcpt[i], now);
	if (changed)
		deliver_batch(cfg, env, want, fd, now, NULL);
	free(want);
	return changed;
}

/* ---- the stream: all-local mail written once ------------------------------ */

bool local_stream_open(const struct config *cfg, const struct queue_env *env, struct local_stream *ls)
{
	char *path, *prefix;
	bool ok;

	memset(ls, 0, sizeof(*ls));
	ls->mf.fd = -1;
	for (size_t i = 0; i < env->nrcpt; i++)
		if (!env->rcpt[i].local || env->rcpt[i].state != RCPT_PENDING)
			return false;
	if (env->nrcpt == 0 || (path = rcpt_maildir(cfg, env, &env->rcpt[0])) == NULL)
		return false;
	/* A mailbox not made yet is made on the worker, with the queue file. */
	ok = maildir_open_stream(&ls->mf, path, cfg->hostname, &ls->fill);
	free(path);
	if (!ok)
		return false;
	prefix = rcpt_prefix(env, &env->rcpt[0]);
	ls->prefix_len = strlen(prefix);
	ls->buf = xmalloc(LOCAL_STREAM_BUF);
	ls->buf_cap = LOCAL_STREAM_BUF;
	ok = ls->prefix_len <= LOCAL_STREAM_BUF;
	if (ok) {
		memcpy(ls->buf, prefix, ls->prefix_len);
		ls->buf_len = ls->prefix_len;
	}
	free(prefix);
	if (!ok) {   /* addresses are bounded far below: never in practice */
		free(ls->buf);
		ls->buf = NULL;
		maildir_finish(&ls->mf, false);
		return false;
	}
	ls->rcpt = 0;
	ls->open = true;
	return true;
}

/* buf to the file as it is: on a failure, what was written is off the
 * buffer, what was not stays in it. */
bool local_stream_flush(struct local_stream *ls)
{
	size_t done = 0;

	if (ls->err)
		return false;
	while (done < ls->buf_len) {
		ssize_t n = write(ls->mf.fd, ls->buf + done, ls->buf_len - done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			ls->err = n < 0 && errno ? errno : EIO;
			break;
		}
		done += (size_t)n;
		ls->file_len += (uint64_t)n;
	}
	memmove(ls->buf, ls->buf + done, ls->buf_len - done);
	ls->buf_len -= done;
	return ls->err == 0;
}

/* buf, then a chunk that does not fit in it, in one writev.  On a
 * failure the chunk's octets that reached the file are past file_len:
 * they do not count (the caller writes the chunk elsewhere whole). */
static bool stream_write_through(struct local_stream *ls, const char *chunk, size_t len)
{
	size_t bdone = 0, cdone = 0;

	while (bdone < ls->buf_len || cdone < len) {
		struct iovec iov[2];
		int n = 0;
		ssize_t w;

		if (bdone < ls->buf_len)
			iov[n++] = (struct iovec){ ls->buf + bdone, ls->buf_len - bdone };
		iov[n++] = (struct iovec){ (char *)chunk + cdone, len - cdone };
		w = writev(ls->mf.fd, iov, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			ls->err = w < 0 && errno ? errno : EIO;
			break;
		}
		size_t from_buf = (size_t)w < ls->buf_len - bdone ? (size_t)w : ls->buf_len - bdone;
		bdone += from_buf;
		cdone += (size_t)w - from_buf;
	}
	ls->file_len += bdone;
	memmove(ls->buf, ls->buf + bdone, ls->buf_len - bdone);
	ls->buf_len -= bdone;
	if (ls->err)
		return false;
	ls->file_len += len;
	return true;
}

/* Room in buf for len more octets (the caller bounds len). */
static void stream_buf_grow(struct local_stream *ls, size_t len)
{
	size_t need = ls->buf_len + len, cap = ls->buf_cap;

	if (need <= cap)
		return;
	while (cap < need)
		cap *= 2;
	ls->buf = xrealloc(ls->buf, cap);
	ls->buf_cap = cap;
}

void local_stream_hold(struct local_stream *ls)
{
	ls->hold = true;
}

bool local_stream_room(const struct local_stream *ls, size_t len)
{
	return !ls->hold || ls->buf_len + len <= LOCAL_STREAM_HOLD_MAX;
}

bool local_stream_write(struct local_stream *ls, const void *buf, size_t len)
{
	if (ls->err)
		return false;
	if (ls->hold && ls->file_len == 0 && local_stream_room(ls, len)) {
		stream_buf_grow(ls, len);
		memcpy(ls->buf + ls->buf_len, buf, len);
		ls->buf_len += len;
	} else if (ls->buf_len + len <= LOCAL_STREAM_BUF) {
		memcpy(ls->buf + ls->buf_len, buf, len);
		ls->buf_len += len;
	} else if (!stream_write_through(ls, buf, len)) {
		return false;
	}
	ls->written += len;
	return true;
}

uint64_t local_stream_in_file(const struct local_stream *ls)
{
	return ls->file_len > ls->prefix_len ? ls->file_len - ls->prefix_len : 0;
}

const char *local_stream_pending(const struct local_stream *ls, size_t *len)
{
	size_t skip = ls->file_len < ls->prefix_len ? (size_t)(ls->prefix_len - ls->file_len) : 0;

	*len = ls->buf_len - skip;
	return ls->buf + skip;
}

bool local_stream_insert_front(struct local_stream *ls, const void *buf, size_t len)
{
	if (ls->err)
		return false;
	if (ls->file_len == 0) {
		/* all of it still in buf: after the prefix, in memory */
		stream_buf_grow(ls, len);
		memmove(ls->buf + ls->prefix_len + len, ls->buf + ls->prefix_len, ls->buf_len - ls->prefix_len);
		memcpy(ls->buf + ls->prefix_len, buf, len);
		ls->buf_len += len;
		ls->written += len;
		return true;
	}
	if (!local_stream_flush(ls))
		return false;
	if (!fs_insert(ls->mf.fd, (off_t)ls->prefix_len, ls->written, buf, len)) {
		ls->err = errno ? errno : EIO;
		return false;
	}
	ls->file_len += len;
	ls->written += len;
	return true;
}

void local_stream_close(struct local_stream *ls)
{
	if (!ls->open)
		return;
	maildir_finish(&ls->mf, ls->committed);
	free(ls->buf);
	ls->buf = NULL;
	ls->buf_len = 0;
	ls->open = false;
}
