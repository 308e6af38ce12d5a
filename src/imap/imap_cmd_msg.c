/*
 * imap_cmd_msg.c - IMAP commands of the selected state (RFC 9051 6.4):
 * CHECK, CLOSE, UNSELECT (RFC 3691), EXPUNGE and UID EXPUNGE (RFC 4315),
 * STORE, COPY with COPYUID, MOVE (RFC 6851), SEARCH (and ESEARCH's
 * RETURN, RFC 4731), and IDLE (RFC 2177).  FETCH is imap_fetch.c.
 */
#include "imap/imap_session.h"
#include "core/util.h"
#include "proto/imap_write.h"
#include "proto/mime_envelope.h"

#include <ctype.h>
#include <errno.h>
#include <event2/buffer.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define IMAP_SEARCH_HDR_MAX 65536

/* ---- jobs on the selected folder ---------------------------------------------- */

/* A list of UIDs a job works on, and what it found. */
struct imap_uids {
	uint32_t *v;
	size_t n;
	bool any;                 /* something changed */
	bool close;               /* CLOSE: leave the folder after */
};

static void imap_uids_free(struct imap_uids *u)
{
	if (u) {
		free(u->v);
		free(u);
	}
}

static void imap_check_work(struct imap_job *j)
{
	if (j->f && !imap_folder_save(j->f))
		j->err = errno;
}

static void imap_check_done(struct imap_job *j)
{
	if (!j->gone)
		imap_ok(j->s, "CHECK completed");
}

void imap_cmd_check(struct imap_session *s, const struct imap_arg *a, bool uid)
{
	struct imap_job *j = imap_job_new(s, s->sel->path, "check", imap_check_work, imap_check_done);
	j->scan = true;
	imap_job_submit(j);
}

/* Remove the \Deleted messages among the UIDs (on the worker). */
static void imap_expunge_work(struct imap_job *j)
{
	struct imap_uids *u = j->arg;
	struct imap_folder *f = j->f;

	if (f == NULL)
		return;
	for (size_t i = 0; i < u->n; i++) {
		long k = imap_folder_find(f, u->v[i]);
		if (k < 0 || !(f->v[k].flags & IMAP_FLAG_DELETED))
			continue;
		if (!imap_folder_expunge(f, (size_t)k))
			j->err = errno;
		else
			u->any = true;
	}
	/* The OK says the messages are gone for good (the state too). */
	if (!imap_folder_save(f))
		j->err = errno;
}

static void imap_expunge_done(struct imap_job *j)
{
	struct imap_uids *u = j->arg;
	struct imap_session *s = j->s;

	if (!j->gone) {
		if (j->err)
			imap_log_error(s, "expunge", j->err);
		if (u->close) {
			/* RFC 9051 6.4.2: expunged silently */
			imap_select_close(s);
			imap_set_state(s, IMAP_S_AUTH);
			imap_ok(s, "CLOSE completed");
		} else {
			imap_ok(s, "EXPUNGE completed");
		}
	}
	imap_uids_free(u);
}

/* The UIDs of the view entries idx (all when idx is NULL). */
static struct imap_uids *imap_uids_of(struct imap_session *s, const size_t *idx, size_t n)
{
	struct imap_uids *u = xcalloc(1, sizeof(*u));
	size_t total = idx ? n : s->nview;

	u->v = xcalloc(total + 1, sizeof(*u->v));
	for (size_t i = 0; i < total; i++) {
		size_t v = idx ? idx[i] : i;
		if (!s->view[v].gone)
			u->v[u->n++] = s->view[v].uid;
	}
	return u;
}

static void imap_expunge_start(struct imap_session *s, const size_t *idx, size_t n, bool close)
{
	struct imap_uids *u = imap_uids_of(s, idx, n);
	struct imap_job *j = imap_job_new(s, s->sel->path, close ? "close" : "expunge", imap_expunge_work,
					  imap_expunge_done);
	u->close = close;
	j->arg = u;
	imap_job_submit(j);
}

void imap_cmd_expunge(struct imap_session *s, const struct imap_arg *a, bool uid)
{
	size_t *idx = NULL, n = 0;

	if (s->readonly) {
		imap_no(s, "[READ-ONLY] Mailbox is read-only");
		return;
	}
	if (uid && !imap_seq_resolve(s, a, true, &idx, &n))
		return;
	imap_expunge_start(s, uid ? idx : NULL, n, false);
	free(idx);
}

void imap_cmd_close(struct imap_session *s, const struct imap_arg *a, bool uid)
{
	if (!s->readonly) {
		imap_expunge_start(s, NULL, 0, true);
		return;
	}
	imap_select_close(s);
	imap_set_state(s, IMAP_S_AUTH);
	imap_ok(s, "CLOSE completed");
}

void imap_cmd_unselect(struct imap_session *s, const struct imap_arg *a, bool uid)
{
	imap_select_close(s);
	imap_set_state(s, IMAP_S_AUTH);
	imap_ok(s, "UNSELECT completed");
}

void imap_cmd_idle(struct imap_session *s, const struct imap_arg *a, bool uid)
{
	if (s->state == IMAP_S_SELECTED)
		imap_sync(s, true);
	evbuffer_add_printf(imap_out(s), "+ idling\r\n");
	s->idling = true;
}

/* ---- STORE ------------------------------------------------------------------------ */

/* A STORE in flight: the targets (view index and UID), what to do, and
 * the flags each ended with. */
struct imap_store_job {
	size_t *idx;
	uint32_t *uid;
	unsigned *flags;
	uint32_t *kw;
	bool *done;               /* the message was there */
	bool *modified;           /* failed UNCHANGEDSINCE (RFC 7162 3.1.3) */
	uint64_t *modseq;
	size_t n;
	uint64_t unchangedsince;
	bool unchangedsince_set;
	int mode;                 /* 0 replace, 1 add, -1 remove */
	unsigned set_flags;
	uint32_t set_kw;
	bool silent, uid_cmd, changed;
	size_t stored;
};

static void imap_store_job_free(struct imap_store_job *x)
{
	free(x->idx);
	free(x->uid);
	free(x->flags);
	free(x->kw);
	free(x->done);
	free(x->modified);
	free(x->modseq);
	free(x);
}

/* On the worker: the renames (flags live in the file names), then the
 * state file, so the tagged OK follows durable flags. */
static void imap_store_work(struct imap_job *j)
{
	struct imap_store_job *x = j->arg;
	struct imap_folder *f = j->f;

	if (f == NULL)
		return;
	imap_folder_hold_cur(f);
	for (size_t i = 0; i < x->n; i++) {
		long k = imap_folder_find(f, x->uid[i]);
		unsigned nf;
		uint32_t nk;
		if (k < 0)
			continue;
		if (x->unchangedsince_set && f->v[k].modseq > x->unchangedsince) {
			x->modified[i] = true;   /* changed since the client looked */
			continue;
		}
		nf = x->mode == 0 ? x->set_flags : x->mode > 0 ? f->v[k].flags | x->set_flags :
			f->v[k].flags & ~x->set_flags;
		nk = x->mode == 0 ? x->set_kw : x->mode > 0 ? f->v[k].kw | x->set_kw : f->v[k].kw & ~x->set_kw;
		if (nf != f->v[k].flags || nk != f->v[k].kw) {
			if (!imap_folder_set_flags(f, (size_t)k, nf, nk)) {
				j->err = errno;
				continue;
			}
			x->changed = true;
			x->stored++;
		}
		x->done[i] = true;
		x->flags[i] = f->v[k].flags;
		x->kw[i] = f->v[k].kw;
		x->modseq[i] = f->v[k].modseq;
	}
	imap_folder_release_cur(f);
	if (x->changed && !imap_folder_save(f))
		j->err = errno;
}

static void imap_store_done(struct imap_job *j)
{
	struct imap_store_job *x = j->arg;
	struct imap_session *s = j->s;

	if (!j->gone && s->sel == j->sh) {
		if (j->err)
			imap_log_error(s, "store", j->err);
		uint32_t *mod = xcalloc(x->n + 1, sizeof(*mod));
		size_t nmod = 0;
		s->nstore += (unsigned)x->stored;
		for (size_t i = 0; i < x->n; i++) {
			struct imap_view_msg *v = &s->view[x->idx[i]];
			if (x->modified[i])
				mod[nmod++] = x->uid_cmd ? x->uid[i] : (uint32_t)(x->idx[i] + 1);
			if (!x->done[i] || x->idx[i] >= s->nview || v->uid != x->uid[i])
				continue;
			v->flags = x->flags[i];
			v->kw = x->kw[i];
			/* RFC 7162 3.1.3: with CONDSTORE even .SILENT tells the
			 * new MODSEQ */
			if (x->silent && !s->condstore)
				continue;
			const char *sep = "";
			evbuffer_add_printf(imap_out(s), "* %zu FETCH (", x->idx[i] + 1);
			if (!x->silent) {
				evbuffer_add_printf(imap_out(s), "FLAGS ");
				imap_write_msg_flags(s, imap_out(s), v->flags | (v->recent ? IMAP_FLAG_RECENT : 0), v->kw);
				sep = " ";
			}
			if (x->uid_cmd) {
				evbuffer_add_printf(imap_out(s), "%sUID %" PRIu32, sep, v->uid);
				sep = " ";
			}
			if (s->condstore)
				evbuffer_add_printf(imap_out(s), "%sMODSEQ (%" PRIu64 ")", sep, x->modseq[i]);
			evbuffer_add(imap_out(s), ")\r\n", 3);
		}
		if (nmod) {
			struct evbuffer *b = evbuffer_new();
			imap_write_seqset(b, mod, nmod);
			evbuffer_add(b, "", 1);
			imap_ok(s, "[MODIFIED %s] Conditional STORE failed", (const char *)evbuffer_pullup(b, -1));
			evbuffer_free(b);
		} else {
			imap_ok(s, "STORE completed");
		}
		free(mod);
	}
	imap_store_job_free(x);
}

void imap_cmd_store(struct imap_session *s, const struct imap_arg *a, bool uid)
{
	struct imap_store_job *x;
	struct imap_job *j;
	size_t *idx, n;
	const struct imap_arg *item, *fl;
	const char *it;
	unsigned flags;
	uint32_t kw;
	int mode;                 /* 0 replace, 1 add, -1 remove */
	bool silent;

	if (!imap_seq_resolve(s, a, uid, &idx, &n))
		return;
	item = a->next;
	uint64_t unchangedsince = 0;
	bool unchangedsince_set = false;
	if (item && item->type == IMAP_ARG_LIST) {
		/* RFC 7162 3.1.3: (UNCHANGEDSINCE modseq) */
		const struct imap_arg *m = item->child;
		if (!imap_arg_is_atom(m, "UNCHANGEDSINCE") || m->next == NULL || m->next->type != IMAP_ARG_ATOM ||
		    !parse_u64(m->next->s, m->next->len, 0, INT64_MAX, &unchangedsince) || m->next->next) {
			free(idx);
			imap_bad(s, "Syntax: STORE set (UNCHANGEDSINCE modseq) item flags");
			return;
		}
		unchangedsince_set = true;
		s->condstore = true;   /* a CONDSTORE-enabling command */
		item = item->next;
	}
	if (item == NULL || item->type != IMAP_ARG_ATOM || item->next == NULL) {
		free(idx);
		imap_bad(s, "Syntax: STORE set [+|-]FLAGS[.SILENT] (flags)");
		return;
	}
	it = item->s;
	mode = it[0] == '+' ? 1 : it[0] == '-' ? -1 : 0;
	if (mode)
		it++;
	if (strcasecmp(it, "FLAGS") == 0)
		silent = false;
	else if (strcasecmp(it, "FLAGS.SILENT") == 0)
		silent = true;
	else {
		free(idx);
		imap_bad(s, "Unknown STORE item");
		return;
	}
	fl = item->next;
	if (!imap_parse_flag_list(s, fl, &flags, &kw, mode >= 0)) {
		free(idx);
		imap_bad(s, "Invalid flags");
		return;
	}
	if (fl->type != IMAP_ARG_LIST)   /* flags without parentheses */
		for (const struct imap_arg *e = fl->next; e; e = e->next) {
			unsigned f2;
			uint32_t k2;
			if (!imap_parse_flag_list(s, e, &f2, &k2, mode >= 0)) {
				free(idx);
				imap_bad(s, "Invalid flags");
				return;
			}
			flags |= f2;
			kw |= k2;
		}
	if (s->readonly) {
		free(idx);
		imap_no(s, "[READ-ONLY] Mailbox is read-only");
		return;
	}
	x = xcalloc(1, sizeof(*x));
	x->idx = xcalloc(n + 1, sizeof(*x->idx));
	x->uid = xcalloc(n + 1, sizeof(*x->uid));
	x->flags = xcalloc(n + 1, sizeof(*x->flags));
	x->kw = xcalloc(n + 1, sizeof(*x->kw));
	x->done = xcalloc(n + 1, sizeof(*x->done));
	x->modified = xcalloc(n + 1, sizeof(*x->modified));
	x->modseq = xcalloc(n + 1, sizeof(*x->modseq));
	x->unchangedsince = unchangedsince;
	x->unchangedsince_set = unchangedsince_set;
	for (size_t i = 0; i < n; i++) {
		if (s->view[idx[i]].gone)
			continue;
		x->idx[x->n] = idx[i];
		x->uid[x->n++] = s->view[idx[i]].uid;
	}
	free(idx);
	x->mode = mode;
	x->set_flags = flags;
	x->set_kw = kw;
	x->silent = silent;
	x->uid_cmd = uid;
	j = imap_job_new(s, s->sel->path, "store", imap_store_work, imap_store_done);
	j->arg = x;
	/* the renames to come, as far as the view knows the flags */
	size_t renames = 0;
	for (size_t i = 0; i < x->n; i++) {
		unsigned vf = s->view[x->idx[i]].flags;
		unsigned nf = mode == 0 ? flags : mode > 0 ? vf | flags : vf & ~flags;
		renames += (nf & ~(unsigned)IMAP_FLAG_RECENT) != (vf & ~(unsigned)IMAP_FLAG_RECENT);
	}
	j->quiet_cur = renames >= IMAP_JOB_QUIET_MIN;
	/* keywords added by the flag list are in the state written there */
	imap_job_submit(j);
}

/* ---- COPY and MOVE -------------------------------------------------------------- */

/* What a copy takes of each message, read on the loop from the
 * selected folder: the job has only the target folder. */
struct imap_copy_msg {
	char *path;
	uint32_t uid, new_uid;
	unsigned flags;
	const char *kws[IMAP_FOLDER_KW_MAX];
	size_t nkws;
	int64_t date;
	uint64_t size;
};

struct imap_copy_job {
	struct imap_copy_msg *v;
	size_t n, done;
	char *kwstore[IMAP_FOLDER_KW_MAX];   /* the keyword names the kws point into */
	bool move, failed;
	uint32_t validity;
	char *code;               /* "[COPYUID ...] " */
};

static void imap_copy_job_free(struct imap_copy_job *x)
{
	for (size_t i = 0; i < x->n; i++)
		free(x->v[i].path);
	for (size_t k = 0; k < IMAP_FOLDER_KW_MAX; k++)
		free(x->kwstore[k]);
	free(x->v);
	free(x->code);
	free(x);
}

static void imap_copy_work(struct imap_job *j)
{
	struct imap_copy_job *x = j->arg;

	if (j->f == NULL) {
		x->failed = true;
		return;
	}
	x->validity = j->f->uidvalidity;
	for (size_t i = 0; i < x->n; i++) {
		struct imap_copy_msg *m = &x->v[i];
		if (!imap_folder_copy_file(j->f, m->path, m->flags, m->kws, m->nkws, m->date, m->size,
					   &m->new_uid)) {
			if (errno == ENOENT)
				continue;   /* expunged meanwhile */
			j->err = errno;
			x->failed = true;
			break;
		}
		x->done++;
	}
	/* Whatever was copied is committed, so COPYUID tells the truth. */
	if (x->done && !imap_folder_commit(j->f)) {
		j->err = errno;
		x->failed = true;
	}
}

/* MOVE's second half, on the source folder: the copied ones go. */
static void imap_move_work(struct imap_job *j)
{
	struct imap_copy_job *x = j->arg;

	if (j->f == NULL)
		return;
	imap_folder_hold_cur(j->f);
	for (size_t i = 0; i < x->n; i++) {
		long k;
		if (x->v[i].new_uid == 0 || (k = imap_folder_find(j->f, x->v[i].uid)) < 0)
			continue;
		if (!imap_folder_expunge(j->f, (size_t)k))
			j->err = errno;
	}
	imap_folder_release_cur(j->f);
	if (!imap_folder_save(j->f))
		j->err = errno;
}

static void imap_move_done(struct imap_job *j)
{
	struct imap_copy_job *x = j->arg;

	if (!j->gone) {
		if (j->err)
			imap_log_error(j->s, "move", j->err);
		imap_ok(j->s, "MOVE completed");
	}
	imap_copy_job_free(x);
}

static void imap_copy_done(struct imap_job *j)
{
	struct imap_copy_job *x = j->arg;
	struct imap_session *s = j->s;
	struct evbuffer *code;

	if (j->gone) {
		imap_copy_job_free(x);
		return;
	}
	if (j->err)
		imap_log_error(s, x->move ? "move" : "copy", j->err);
	code = evbuffer_new();
	if (x->done) {
		uint32_t *su = xcalloc(x->done, sizeof(*su)), *du = xcalloc(x->done, sizeof(*du));
		size_t o = 0;
		for (size_t i = 0; i < x->n; i++)
			if (x->v[i].new_uid) {
				su[o] = x->v[i].uid;
				du[o++] = x->v[i].new_uid;
			}
		evbuffer_add_printf(code, "[COPYUID %" PRIu32 " ", x->validity);
		imap_write_seqset(code, su, o);
		evbuffer_add(code, " ", 1);
		imap_write_seqset(code, du, o);
		evbuffer_add(code, "] ", 2);
		free(su);
		free(du);
	}
	evbuffer_add(code, "", 1);
	x->code = xstrdup((const char *)evbuffer_pullup(code, -1));
	evbuffer_free(code);
	if (x->failed) {
		imap_no(s, "[UNAVAILABLE] %s failed", x->move ? "MOVE" : "COPY");
		imap_copy_job_free(x);
	} else if (x->move && s->sel) {
		struct imap_job *m;
		if (x->done)   /* RFC 6851 4.3: COPYUID before the EXPUNGEs */
			imap_untagged(s, "OK %s", x->code);
		m = imap_job_new(s, s->sel->path, "move", imap_move_work, imap_move_done);
		m->arg = x;
		m->quiet_cur = x->done >= IMAP_JOB_QUIET_MIN;
		imap_job_submit(m);
	} else {
		imap_ok(s, "%s%s completed", x->code, x->move ? "MOVE" : "COPY");
		imap_copy_job_free(x);
	}
}

static void imap_copy(struct imap_session *s, const struct imap_arg *a, bool uid, bool move)
{
	struct imap_folder *src = imap_folder(s);
	struct imap_copy_job *x;
	struct imap_job *j;
	size_t *idx, n;
	char *name, *dir;

	if (!imap_seq_resolve(s, a, uid, &idx, &n))
		return;
	if ((name = imap_mailbox_arg(s, a->next)) == NULL) {
		free(idx);
		return;
	}
	if (move && s->readonly) {
		free(idx);
		free(name);
		imap_no(s, "[READ-ONLY] Mailbox is read-only");
		return;
	}
	dir = imap_store_folder_dir(s->maildir, name);
	char *cur = dir ? xasprintf("%s/cur", dir) : NULL;
	free(name);
	if (cur == NULL || access(cur, F_OK) != 0) {
		free(cur);
		free(dir);
		free(idx);
		imap_no(s, "[TRYCREATE] No such mailbox");
		return;
	}
	free(cur);
	x = xcalloc(1, sizeof(*x));
	x->move = move;
	x->v = xcalloc(n + 1, sizeof(*x->v));
	for (size_t k = 0; k < src->nkw; k++)
		x->kwstore[k] = xstrdup(src->kw[k]);
	for (size_t i = 0; i < n; i++) {
		long k = imap_view_index(s, idx[i]);
		struct imap_copy_msg *m;
		if (k < 0)
			continue;
		m = &x->v[x->n++];
		m->path = imap_folder_msg_path(src, (size_t)k);
		m->uid = src->v[k].uid;
		m->flags = src->v[k].flags;
		m->date = src->v[k].date;
		m->size = src->v[k].size;
		for (size_t b = 0; b < src->nkw; b++)
			if (src->v[k].kw & (1u << b))
				m->kws[m->nkws++] = x->kwstore[b];
	}
	free(idx);
	j = imap_job_new(s, dir, move ? "move_copy" : "copy", imap_copy_work, imap_copy_done);
	free(dir);
	j->arg = x;
	imap_job_submit(j);
}

void imap_cmd_copy(struct imap_session *s, const struct imap_arg *a, bool uid)
{
	imap_copy(s, a, uid, false);
}

void imap_cmd_move(struct imap_session *s, const struct imap_arg *a, bool uid)
{
	imap_copy(s, a, uid, true);
}

/* ---- SEARCH ------------------------------------------------------------------------ */

/* What a search reads of one message, loaded when a key needs it. */
struct imap_smsg {
	struct imap_session *s;
	const struct imap_msg *m;
	size_t seq;
	char *hdr;
	size_t hdr_len;
	bool hdr_loaded;
};

static void imap_smsg_header(struct imap_smsg *x)
{
	int fd;
	size_t cap = 8192;
	ssize_t r;

	if (x->hdr_loaded)
		return;
	x->hdr_loaded = true;
	x->hdr = xmalloc(cap + 1);
	x->hdr_len = 0;
	if ((fd = imap_folder_open_msg(x->s->sel->f, (size_t)(x->m - x->s->sel->f->v))) < 0)
		return;
	while (x->hdr_len < IMAP_SEARCH_HDR_MAX) {
		if (x->hdr_len == cap) {
			cap *= 2;
			x->hdr = xrealloc(x->hdr, cap + 1);
		}
		r = read(fd, x->hdr + x->hdr_len, cap - x->hdr_len);
		if (r <= 0)
			break;
		x->hdr_len += (size_t)r;
		x->hdr[x->hdr_len] = '\0';
		if (strstr(x->hdr, "\n\n") || strstr(x->hdr, "\r\n\r\n"))
			break;
	}
	close(fd);
	x->hdr[x->hdr_len] = '\0';
	char *e1 = strstr(x->hdr, "\n\n"), *e2 = strstr(x->hdr, "\r\n\r\n");
	char *e = e1 && (!e2 || e1 < e2) ? e1 + 1 : e2 ? e2 + 2 : NULL;
	if (e)
		x->hdr_len = (size_t)(e - x->hdr);
}

static bool imap_icontains(const char *hay, size_t hlen, const char *needle, size_t nlen)
{
	if (nlen == 0)
		return true;
	for (size_t i = 0; i + nlen <= hlen; i++)
		if (ascii_ieq(hay + i, needle, nlen))
			return true;
	return false;
}

static bool imap_header_has(struct imap_smsg *x, const char *field, size_t flen, const char *v, size_t vlen)
{
	size_t pos = 0, nlen, valen;
	const char *name, *value;

	imap_smsg_header(x);
	while (mime_header_next(x->hdr, x->hdr_len, &pos, &name, &nlen, &value, &valen)) {
		if (nlen != flen || !ascii_ieq(name, field, flen))
			continue;
		char *u = mime_header_value(value, valen);
		bool hit = imap_icontains(u, strlen(u), v, vlen);
		free(u);
		if (hit)
			return true;
	}
	return false;
}

/* The text of the message from offset from (0: all, else after the header). */
static bool imap_body_has(struct imap_smsg *x, bool text, const char *v, size_t vlen)
{
	char buf[65536 + 256];
	size_t keep = 0, skip = 0;
	ssize_t r;
	int fd;
	bool hit = false;

	if (!text) {
		imap_smsg_header(x);
		skip = x->hdr_len;
	}
	if ((fd = imap_folder_open_msg(x->s->sel->f, (size_t)(x->m - x->s->sel->f->v))) < 0)
		return false;
	if (skip && lseek(fd, (off_t)skip, SEEK_SET) < 0) {
		close(fd);
		return false;
	}
	/* Chunks with an overlap of the needle's length less one, so a
	 * match across two reads is found. */
	while (!hit && (r = read(fd, buf + keep, sizeof(buf) - 256 - keep)) > 0) {
		size_t len = keep + (size_t)r;
		hit = imap_icontains(buf, len, v, vlen);
		keep = vlen > 1 && vlen - 1 < len && vlen <= 256 ? vlen - 1 : 0;
		memmove(buf, buf + len - keep, keep);
	}
	close(fd);
	return hit;
}

static int64_t imap_days(int y, int m, int d)
{
	struct tm tm = { .tm_year = y - 1900, .tm_mon = m - 1, .tm_mday = d };
	return (int64_t)timegm(&tm) / 86400;
}

static int64_t imap_date_days(const struct imap_date *d)
{
	return imap_days(d->year, d->month, d->day);
}

/* The day of the Date: field ("[Day, ] dd Mon yyyy ..."), or -1. */
static int64_t imap_sent_days(struct imap_smsg *x)
{
	static const char months[] = "janfebmaraprmayjunjulaugsepoctnovdec";
	size_t pos = 0, nlen, vlen;
	const char *name, *value;

	imap_smsg_header(x);
	while (mime_header_next(x->hdr, x->hdr_len, &pos, &name, &nlen, &value, &vlen)) {
		if (nlen != 4 || !ascii_ieq(name, "Date", 4))
			continue;
		char *u = mime_header_value(value, vlen), *p = u, mon[4] = "";
		int d = 0, y = 0;
		if (strchr(p, ','))
			p = strchr(p, ',') + 1;
		if (sscanf(p, "%d %3s %d", &d, mon, &y) == 3) {
			for (int i = 0; i < 12; i++)
				if (ascii_ieq(mon, months + 3 * i, 3)) {
					free(u);
					if (y < 100)
						y += y < 50 ? 2000 : 1900;
					return imap_days(y, i + 1, d);
				}
		}
		free(u);
		return -1;
	}
	return -1;
}

static bool imap_eval(struct imap_smsg *x, const struct imap_search_node *n);

static bool imap_eval_all(struct imap_smsg *x, const struct imap_search_node *c)
{
	for (; c; c = c->next)
		if (!imap_eval(x, c))
			return false;
	return true;
}

static bool imap_eval(struct imap_smsg *x, const struct imap_search_node *n)
{
	const struct imap_msg *m = x->m;
	unsigned fl = m->flags;
	int64_t day = m->date >= 0 ? m->date / 86400 : 0;

	switch (n->key) {
	case IMAP_SK_AND: return imap_eval_all(x, n->child);
	case IMAP_SK_OR: return imap_eval(x, n->child) || imap_eval(x, n->child->next);
	case IMAP_SK_NOT: return !imap_eval(x, n->child);
	case IMAP_SK_ALL: return true;
	case IMAP_SK_ANSWERED: return fl & IMAP_FLAG_ANSWERED;
	case IMAP_SK_DELETED: return fl & IMAP_FLAG_DELETED;
	case IMAP_SK_DRAFT: return fl & IMAP_FLAG_DRAFT;
	case IMAP_SK_FLAGGED: return fl & IMAP_FLAG_FLAGGED;
	case IMAP_SK_SEEN: return fl & IMAP_FLAG_SEEN;
	case IMAP_SK_UNANSWERED: return !(fl & IMAP_FLAG_ANSWERED);
	case IMAP_SK_UNDELETED: return !(fl & IMAP_FLAG_DELETED);
	case IMAP_SK_UNDRAFT: return !(fl & IMAP_FLAG_DRAFT);
	case IMAP_SK_UNFLAGGED: return !(fl & IMAP_FLAG_FLAGGED);
	case IMAP_SK_UNSEEN: return !(fl & IMAP_FLAG_SEEN);
	case IMAP_SK_NEW: return x->s->view[x->seq - 1].recent && !(fl & IMAP_FLAG_SEEN);
	case IMAP_SK_RECENT: return x->s->view[x->seq - 1].recent;
	case IMAP_SK_OLD: return !x->s->view[x->seq - 1].recent;
	case IMAP_SK_KEYWORD: case IMAP_SK_UNKEYWORD: {
		int k = imap_folder_keyword(x->s->sel->f, n->str, n->str_len, false);
		bool has = k >= 0 && (m->kw & (1u << k));
		return n->key == IMAP_SK_KEYWORD ? has : !has;
	}
	case IMAP_SK_BCC: return imap_header_has(x, "Bcc", 3, n->str, n->str_len);
	case IMAP_SK_CC: return imap_header_has(x, "Cc", 2, n->str, n->str_len);
	case IMAP_SK_FROM: return imap_header_has(x, "From", 4, n->str, n->str_len);
	case IMAP_SK_TO: return imap_header_has(x, "To", 2, n->str, n->str_len);
	case IMAP_SK_SUBJECT: return imap_header_has(x, "Subject", 7, n->str, n->str_len);
	case IMAP_SK_HEADER: return imap_header_has(x, n->str, n->str_len, n->str2, n->str2_len);
	case IMAP_SK_BODY: return imap_body_has(x, false, n->str, n->str_len);
	case IMAP_SK_TEXT: return imap_body_has(x, true, n->str, n->str_len);
	case IMAP_SK_BEFORE: return day < imap_date_days(&n->date);
	case IMAP_SK_ON: return day == imap_date_days(&n->date);
	case IMAP_SK_SINCE: return day >= imap_date_days(&n->date);
	case IMAP_SK_SENTBEFORE: { int64_t d = imap_sent_days(x); return d >= 0 && d < imap_date_days(&n->date); }
	case IMAP_SK_SENTON: return imap_sent_days(x) == imap_date_days(&n->date);
	case IMAP_SK_SENTSINCE: return imap_sent_days(x) >= imap_date_days(&n->date);
	case IMAP_SK_LARGER: return m->size > n->num;
	case IMAP_SK_SMALLER: return m->size < n->num;
	case IMAP_SK_UID: {
		uint32_t star = x->s->nview ? x->s->view[x->s->nview - 1].uid : 0;
		return imap_seqset_contains(&n->seq, m->uid, star);
	}
	case IMAP_SK_SEQSET: return imap_seqset_contains(&n->seq, (uint32_t)x->seq, (uint32_t)x->s->nview);
	case IMAP_SK_MODSEQ: return m->modseq >= n->num;
	default: return false;
	}
}

/* Does the program use MODSEQ (RFC 7162 3.1.5: the answer then says the
 * highest MODSEQ of the hits)? */
static bool imap_search_has_modseq(const struct imap_search_node *n)
{
	for (; n; n = n->next)
		if (n->key == IMAP_SK_MODSEQ || imap_search_has_modseq(n->child))
			return true;
	return false;
}

/* Does the program read message files (header, text and sent-date keys)? */
static bool imap_search_reads(const struct imap_search_node *n)
{
	for (; n; n = n->next) {
		switch (n->key) {
		case IMAP_SK_BCC: case IMAP_SK_CC: case IMAP_SK_FROM: case IMAP_SK_TO: case IMAP_SK_SUBJECT:
		case IMAP_SK_HEADER: case IMAP_SK_BODY: case IMAP_SK_TEXT: case IMAP_SK_SENTBEFORE:
		case IMAP_SK_SENTON: case IMAP_SK_SENTSINCE:
			return true;
		default:
			break;
		}
		if (imap_search_reads(n->child))
			return true;
	}
	return false;
}

/* Does the program ask for internal dates or sizes (the scan reads
 * names only: the files are looked at first, imap_folder_stat)? */
static bool imap_search_stats(const struct imap_search_node *n)
{
	for (; n; n = n->next) {
		switch (n->key) {
		case IMAP_SK_BEFORE: case IMAP_SK_ON: case IMAP_SK_SINCE: case IMAP_SK_LARGER: case IMAP_SK_SMALLER:
			return true;
		default:
			break;
		}
		if (imap_search_stats(n->child))
			return true;
	}
	return false;
}

/* Are all messages of the view looked at (their dates and sizes known)? */
static bool imap_view_known(struct imap_session *s)
{
	for (size_t i = 0; i < s->nview; i++) {
		long k = imap_view_index(s, i);
		if (k >= 0 && !imap_msg_known(&s->sel->f->v[k]))
			return false;
	}
	return true;
}

struct imap_search_job {
	struct imap_search_node *prog;   /* in the parser's arena (hold_args) */
	bool uid, esearch, modseq, stats;
	unsigned ret;             /* 1 MIN 2 MAX 4 ALL 8 COUNT */
	uint32_t *hits;
	size_t nh;
	uint64_t top;
};

/* The hits (on the loop, or on a worker with the folder held: the view
 * does not change while the session waits). */
static void imap_search_run(struct imap_session *s, struct imap_search_job *x)
{
	struct imap_folder *f = s->sel->f;

	x->hits = xcalloc(s->nview + 1, sizeof(*x->hits));
	for (size_t i = 0; i < s->nview; i++) {
		long k = imap_view_index(s, i);
		struct imap_smsg m = { .s = s, .seq = i + 1 };
		if (k < 0)
			continue;
		m.m = &f->v[k];
		if (imap_eval(&m, x->prog)) {
			x->hits[x->nh++] = x->uid ? s->view[i].uid : (uint32_t)(i + 1);
			if (f->v[k].modseq > x->top)
				x->top = f->v[k].modseq;
		}
		free(m.hdr);
	}
}

static void imap_search_answer(struct imap_session *s, struct imap_search_job *x)
{
	uint32_t *hits = x->hits;
	size_t nh = x->nh;
	unsigned ret = x->ret;

	if (!x->esearch) {
		evbuffer_add_printf(imap_out(s), "* SEARCH");
		for (size_t i = 0; i < nh; i++)
			evbuffer_add_printf(imap_out(s), " %" PRIu32, hits[i]);
		if (x->modseq && nh)
			evbuffer_add_printf(imap_out(s), " (MODSEQ %" PRIu64 ")", x->top);
		evbuffer_add(imap_out(s), "\r\n", 2);
	} else {
		evbuffer_add_printf(imap_out(s), "* ESEARCH (TAG \"%s\")%s", s->tag, x->uid ? " UID" : "");
		if ((ret & 1) && nh)
			evbuffer_add_printf(imap_out(s), " MIN %" PRIu32, hits[0]);
		if ((ret & 2) && nh)
			evbuffer_add_printf(imap_out(s), " MAX %" PRIu32, hits[nh - 1]);
		if ((ret & 4) && nh) {
			evbuffer_add_printf(imap_out(s), " ALL ");
			imap_write_seqset(imap_out(s), hits, nh);
		}
		if (ret & 8)
			evbuffer_add_printf(imap_out(s), " COUNT %zu", nh);
		if (x->modseq && nh)   /* RFC 7162 3.1.5 with RFC 4731 */
			evbuffer_add_printf(imap_out(s), " MODSEQ %" PRIu64, x->top);
		evbuffer_add(imap_out(s), "\r\n", 2);
	}
	free(x->hits);
	free(x);
	imap_ok(s, "SEARCH completed");
}

static void imap_search_work(struct imap_job *j)
{
	struct imap_search_job *x = j->arg;

	if (x->stats && j->f)
		imap_folder_stat_all(j->f);
	imap_search_run(j->s, x);
}

static void imap_search_done(struct imap_job *j)
{
	struct imap_search_job *x = j->arg;

	imap_release_args(j->s);
	if (j->gone) {
		free(x->hits);
		free(x);
		return;
	}
	imap_search_answer(j->s, x);
}

void imap_cmd_search(struct imap_session *s, const struct imap_arg *a, bool uid)
{
	struct imap_search_node *prog;
	enum imap_search_err e;
	bool esearch = false;
	unsigned ret = 0;          /* 1 MIN 2 MAX 4 ALL 8 COUNT */

	if (a && imap_arg_is_atom(a, "RETURN") && a->next && a->next->type == IMAP_ARG_LIST) {
		esearch = true;
		for (const struct imap_arg *r = a->next->child; r; r = r->next)
			ret |= imap_arg_is_atom(r, "MIN") ? 1 : imap_arg_is_atom(r, "MAX") ? 2 :
				imap_arg_is_atom(r, "ALL") ? 4 : imap_arg_is_atom(r, "COUNT") ? 8 : 0;
		if (ret == 0)
			ret = 4;
		a = a->next->next;
	}
	if (!esearch && s->rev2) {
		/* RFC 9051 6.4.4: IMAP4rev2 answers SEARCH with ESEARCH (ALL) */
		esearch = true;
		ret = 4;
	}
	if (a && imap_arg_is_atom(a, "CHARSET") && a->next) {
		const char *cs;
		size_t cl;
		if (!imap_arg_astring(a->next, &cs, &cl) ||
		    (!(cl == 5 && ascii_ieq(cs, "UTF-8", 5)) && !(cl == 8 && ascii_ieq(cs, "US-ASCII", 8)))) {
			imap_no(s, "[BADCHARSET (UTF-8 US-ASCII)] Unsupported charset");
			return;
		}
		a = a->next->next;
	}
	if ((e = imap_search_parse(a, &s->parser.arena, 0, 0, &prog)) != IMAP_SEARCH_OK) {
		imap_bad(s, "%s", imap_search_strerror(e));
		return;
	}
	struct imap_search_job *x = xcalloc(1, sizeof(*x));
	x->prog = prog;
	x->uid = uid;
	x->esearch = esearch;
	x->ret = ret;
	x->modseq = imap_search_has_modseq(prog);
	if (x->modseq)
		s->condstore = true;   /* a CONDSTORE-enabling command */
	x->stats = imap_search_stats(prog);
	if (!imap_search_reads(prog) && (!x->stats || imap_view_known(s))) {
		/* flags, dates, sizes, UIDs: in memory, at once */
		imap_search_run(s, x);
		imap_search_answer(s, x);
		return;
	}
	/* Header and text keys read the messages, dates and sizes not yet
	 * known stat them: on a worker, the folder held, the parsed program
	 * kept until the answer. */
	struct imap_job *j = imap_job_new(s, s->sel->path, "search", imap_search_work, imap_search_done);
	j->arg = x;
	s->hold_args = true;
	imap_job_submit(j);
}
