/*
 * imap_cmd_mbox.c - IMAP commands on mailboxes (RFC 9051 6.3): SELECT,
 * EXAMINE, CREATE, DELETE, RENAME, SUBSCRIBE, UNSUBSCRIBE, LIST (with
 * the SPECIAL-USE attributes of RFC 6154, CHILDREN of RFC 3348 and
 * RETURN (STATUS) of RFC 5819), LSUB, STATUS, and APPEND, whose literal
 * is streamed into the folder's tmp/ as it arrives (never held), with
 * NO [TOOBIG] (RFC 7889) before any octet when it is over the limit;
 * several messages in one APPEND (MULTIAPPEND, RFC 3502) go in all or
 * none, and a literal8 (BINARY, RFC 3516; UTF8 (~{n}) of RFC 6855) is
 * stored as it comes.
 */
#include "imap/imap_session.h"
#include "core/config.h"
#include "core/fsutil.h"
#include "core/util.h"
#include "proto/imap_utf7.h"
#include "proto/imap_write.h"

#include <errno.h>
#include <event2/buffer.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *imap_store_text(enum imap_store_err e)
{
	switch (e) {
	case IMAP_STORE_EXISTS: return "[ALREADYEXISTS] Mailbox already exists";
	case IMAP_STORE_NONEXISTENT: return "[NONEXISTENT] No such mailbox";
	case IMAP_STORE_BAD_NAME: return "[CANNOT] Invalid mailbox name for this operation";
	default: return "[SERVERBUG] The operation failed";
	}
}

/* The directory of a mailbox that exists, or NULL with NO [NONEXISTENT]. */
static char *imap_existing_dir(struct imap_session *s, const char *name)
{
	char *dir = imap_store_folder_dir(s->maildir, name);
	char *cur = dir ? xasprintf("%s/cur", dir) : NULL;
	struct stat st;
	bool ok = cur && stat(cur, &st) == 0;

	free(cur);
	if (!ok) {
		free(dir);
		return NULL;
	}
	return dir;
}

/* SELECT's parameters (RFC 7162 3.1.8, 3.2.5). */
struct imap_select_job {
	bool readonly;
	bool qresync;             /* QRESYNC (uidvalidity modseq [known-uids]) */
	uint32_t uidvalidity;
	uint64_t modseq;
	struct imap_seqset known; /* r copied out of the parser's arena */
	bool have_known;
	/* the sequence match data (3.2.5.2): message numbers and their UIDs */
	struct imap_seqset match_seq, match_uid;
};

static void imap_select_job_free(struct imap_select_job *x)
{
	free(x->known.r);
	free(x->match_seq.r);
	free(x->match_uid.r);
	free(x);
}

/* A copy of set out of the parser's arena. */
static void imap_seqset_keep(struct imap_seqset *to, const struct imap_seqset *set)
{
	to->n = set->n;
	to->r = xcalloc(set->n + 1, sizeof(*set->r));
	memcpy(to->r, set->r, set->n * sizeof(*set->r));
}

/* Numbers of an ascending set without "*" (RFC 7162 3.2.5.2: both sets
 * ascending), or 0 when it is not one. */
static uint64_t imap_seqset_ascending_count(const struct imap_seqset *set)
{
	uint64_t n = 0, last = 0;
	for (size_t i = 0; i < set->n; i++) {
		const struct imap_seq_range *r = &set->r[i];
		if (r->lo == IMAP_SEQ_STAR || r->hi == IMAP_SEQ_STAR || r->lo > r->hi || r->lo <= last)
			return 0;
		n += (uint64_t)r->hi - r->lo + 1;
		last = r->hi;
	}
	return n;
}

/* The nth number of an ascending set, walked in order: *ri, *off. */
static bool imap_seqset_next(const struct imap_seqset *set, size_t *ri, uint64_t *off, uint32_t *out)
{
	if (*ri >= set->n)
		return false;
	*out = (uint32_t)(set->r[*ri].lo + *off);
	if (*out == set->r[*ri].hi) {
		(*ri)++;
		*off = 0;
	} else {
		(*off)++;
	}
	return true;
}

/* RFC 7162 3.2.5.2: each (message number, UID) pair of the client's that
 * the mailbox still has as it says shows that the client knows of every
 * expunge up to that UID (no message below it can have been added, so
 * none below it went).  The pairs are taken in order up to the first
 * that does not match; the UID of the last match, or 0. */
static uint32_t imap_select_known_upto(const struct imap_session *s, const struct imap_select_job *x)
{
	size_t si = 0, ui = 0;
	uint64_t so = 0, uo = 0;
	uint32_t seq, uid, known = 0;

	while (imap_seqset_next(&x->match_seq, &si, &so, &seq) && imap_seqset_next(&x->match_uid, &ui, &uo, &uid)) {
		if (seq > s->nview || s->view[seq - 1].uid != uid)
			break;
		known = uid;
	}
	return known;
}

/* QRESYNC's resynchronisation: what went, then what changed, since the
 * client's modseq - only under the UIDVALIDITY it knew. */
static void imap_select_qresync(struct imap_session *s, const struct imap_select_job *x)
{
	struct imap_folder *f = s->sel->f;
	uint32_t star = f->uidnext ? f->uidnext - 1 : 0;

	if (x->uidvalidity != f->uidvalidity)
		return;
	imap_vanished_earlier(s, f, x->modseq, x->have_known ? &x->known : NULL, imap_select_known_upto(s, x));
	for (size_t i = 0; i < s->nview; i++) {
		long k = imap_view_index(s, i);
		if (k < 0 || f->v[k].modseq <= x->modseq)
			continue;
		if (x->have_known && !imap_seqset_contains(&x->known, f->v[k].uid, star))
			continue;
		evbuffer_add_printf(imap_out(s), "* %zu FETCH (UID %" PRIu32 " FLAGS ", i + 1, f->v[k].uid);
		imap_write_msg_flags(s, imap_out(s), f->v[k].flags | (s->view[i].recent ? IMAP_FLAG_RECENT : 0),
				     f->v[k].kw);
		evbuffer_add_printf(imap_out(s), " MODSEQ (%" PRIu64 "))\r\n", f->v[k].modseq);
	}
}

/* SELECT's answer, once the job has opened and scanned the folder. */
static void imap_select_done(struct imap_job *j)
{
	struct imap_session *s = j->s;
	struct imap_select_job *x = j->arg;
	bool readonly = x->readonly;
	struct imap_folder *f;
	size_t unseen = 0;

	if (j->gone) {
		imap_select_job_free(x);
		return;
	}
	if (j->f == NULL) {
		imap_log_error(s, "select", j->err);
		imap_no(s, "[UNAVAILABLE] Cannot open the mailbox");
		imap_select_job_free(x);
		return;
	}
	imap_select_attach(s, j, readonly);
	f = s->sel->f;
	for (size_t i = 0; i < f->n && !unseen; i++)
		if (!(f->v[i].flags & IMAP_FLAG_SEEN))
			unseen = i + 1;
	evbuffer_add_printf(imap_out(s), "* FLAGS ");
	imap_write_msg_flags(s, imap_out(s), IMAP_FLAG_SEEN | IMAP_FLAG_ANSWERED | IMAP_FLAG_FLAGGED |
			     IMAP_FLAG_DELETED | IMAP_FLAG_DRAFT, (uint32_t)((1ull << f->nkw) - 1));
	evbuffer_add_printf(imap_out(s), "\r\n* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft");
	for (size_t k = 0; k < f->nkw; k++)
		evbuffer_add_printf(imap_out(s), " %s", f->kw[k]);
	evbuffer_add_printf(imap_out(s), " \\*)] Flags permitted\r\n");
	imap_untagged(s, "%zu EXISTS", s->nview);
	if (!s->rev2)
		imap_untagged(s, "%zu RECENT", imap_view_recent(s));
	if (unseen && !s->rev2)
		imap_untagged(s, "OK [UNSEEN %zu] First unseen", unseen);
	imap_untagged(s, "OK [UIDVALIDITY %" PRIu32 "] UIDs valid", f->uidvalidity);
	imap_untagged(s, "OK [UIDNEXT %" PRIu32 "] Predicted next UID", f->uidnext);
	imap_untagged(s, "OK [HIGHESTMODSEQ %" PRIu64 "] Highest", f->modseq);
	if (x->qresync)
		imap_select_qresync(s, x);
	imap_set_state(s, IMAP_S_SELECTED);
	imap_ok(s, "[%s] %s completed", readonly ? "READ-ONLY" : "READ-WRITE", readonly ? "EXAMINE" : "SELECT");
	imap_select_job_free(x);
}

/* The sequence match data "(known-sequence-set known-uid-set)" (q NULL:
 * none): two ascending sets of as many numbers (RFC 7162 3.2.5.2). */
static bool imap_select_match(struct imap_session *s, const struct imap_arg *q, struct imap_select_job *x)
{
	const struct imap_arg *a, *b;
	struct imap_seqset seqs, uids;
	uint64_t n;

	if (q == NULL)
		return true;
	a = q->child;
	b = a ? a->next : NULL;
	if (a == NULL || b == NULL || b->next || a->type != IMAP_ARG_ATOM || b->type != IMAP_ARG_ATOM ||
	    imap_seqset_parse(a->s, a->len, &s->parser.arena, &seqs) != IMAP_SEQ_OK || seqs.searchres ||
	    imap_seqset_parse(b->s, b->len, &s->parser.arena, &uids) != IMAP_SEQ_OK || uids.searchres)
		return false;
	n = imap_seqset_ascending_count(&seqs);
	if (n == 0 || n != imap_seqset_ascending_count(&uids))
		return false;
	imap_seqset_keep(&x->match_seq, &seqs);
	imap_seqset_keep(&x->match_uid, &uids);
	return true;
}

/* "(CONDSTORE)" or "(QRESYNC (uidvalidity modseq [known-uids] [(seqs uids)]))";
 * false: BAD sent. */
static bool imap_select_params(struct imap_session *s, const struct imap_arg *p, struct imap_select_job *x)
{
	if (p == NULL)
		return true;
	if (p->type != IMAP_ARG_LIST || p->next) {
		imap_bad(s, "Syntax: SELECT mailbox [(parameters)]");
		return false;
	}
	for (const struct imap_arg *e = p->child; e; e = e->next) {
		if (imap_arg_is_atom(e, "CONDSTORE")) {
			s->condstore = true;   /* RFC 7162 3.1.8 enables it */
			continue;
		}
		if (!imap_arg_is_atom(e, "QRESYNC") || e->next == NULL || e->next->type != IMAP_ARG_LIST) {
			imap_bad(s, "Unknown SELECT parameter");
			return false;
		}
		e = e->next;
		if (x->qresync) {
			imap_bad(s, "QRESYNC given twice");
			return false;
		}
		if (!s->qresync) {
			imap_bad(s, "QRESYNC not enabled");   /* RFC 7162 3.2.5 */
			return false;
		}
		const struct imap_arg *v = e->child, *m = v ? v->next : NULL, *k = m ? m->next : NULL;
		const struct imap_arg *q = k && k->type == IMAP_ARG_LIST ? k : k ? k->next : NULL;
		uint64_t uv, ms;
		struct imap_seqset set;
		if (q == k)
			k = NULL;   /* seq-match-data without known-uids */
		if (v == NULL || m == NULL || v->type != IMAP_ARG_ATOM || m->type != IMAP_ARG_ATOM ||
		    !parse_u64(v->s, v->len, 1, UINT32_MAX, &uv) || !parse_u64(m->s, m->len, 1, INT64_MAX, &ms) ||
		    (k && (k->type != IMAP_ARG_ATOM ||
			   imap_seqset_parse(k->s, k->len, &s->parser.arena, &set) != IMAP_SEQ_OK || set.searchres)) ||
		    (q && (q->type != IMAP_ARG_LIST || q->next)) || !imap_select_match(s, q, x)) {
			imap_bad(s, "Syntax: QRESYNC (uidvalidity modseq [known-uids] [(seqs uids)])");
			return false;
		}
		x->qresync = true;
		x->uidvalidity = (uint32_t)uv;
		x->modseq = ms;
		if (k) {
			x->have_known = true;
			imap_seqset_keep(&x->known, &set);
		}
	}
	return true;
}

static void imap_select(struct imap_session *s, const struct imap_arg *a, bool readonly)
{
	char *name = imap_mailbox_arg(s, a), *dir;
	struct imap_select_job *x;
	struct imap_job *j;

	if (name == NULL)
		return;
	x = xcalloc(1, sizeof(*x));
	x->readonly = readonly;
	if (!imap_select_params(s, a->next, x)) {
		imap_select_job_free(x);
		free(name);
		return;
	}
	if (s->sel)   /* RFC 9051 7.1: the old mailbox is closed first */
		imap_untagged(s, "OK [CLOSED] Previous mailbox closed");
	imap_select_close(s);
	imap_set_state(s, IMAP_S_AUTH);
	if ((dir = imap_existing_dir(s, name)) == NULL) {
		free(name);
		imap_select_job_free(x);
		imap_no(s, "[NONEXISTENT] No such mailbox");
		return;
	}
	free(name);
	/* On a worker: opened and scanned, or as it is in memory when it is
	 * open, watched and inotify says nothing changed. */
	j = imap_job_new(s, dir, readonly ? "examine" : "select", NULL, imap_select_done);
	j->fresh = true;
	j->arg = x;
	free(dir);
	imap_job_submit(j);
}

void imap_cmd_select(struct imap_session *s, const struct imap_arg *a, bool uid)
{
	imap_select(s, a, false);
}

void imap_cmd_examine(struct imap_session *s, const struct imap_arg *a, bool uid)
{
	imap_select(s, a, true);
}

/* CREATE, DELETE, RENAME, (UN)SUBSCRIBE: directory and file work on a
 * worker; DELETE and RENAME hold the folder (not opened) so they wait
 * for the jobs on it. */
enum imap_mbox_op { IMAP_MB_CREATE, IMAP_MB_DELETE, IMAP_MB_RENAME, IMAP_MB_SUBSCRIBE, IMAP_MB_UNSUBSCRIBE };

struct imap_mbox_job {
	enum imap_mbox_op op;
	char *maildir, *name, *to;
	enum imap_store_err e;
};

static void imap_mbox_work(struct imap_job *j)
{
	struct imap_mbox_job *x = j->arg;

	switch (x->op) {
	case IMAP_MB_CREATE: x->e = imap_store_create(x->maildir, x->name); break;
	case IMAP_MB_DELETE: x->e = imap_store_delete(x->maildir, x->name); break;
	case IMAP_MB_RENAME: x->e = imap_store_rename(x->maildir, x->name, x->to); break;
	case IMAP_MB_SUBSCRIBE:
	case IMAP_MB_UNSUBSCRIBE:
		x->e = imap_store_subscribe(x->maildir, x->name, x->op == IMAP_MB_SUBSCRIBE) ? IMAP_STORE_OK :
			IMAP_STORE_ERROR;
		break;
	}
	if (x->e == IMAP_STORE_ERROR)
		j->err = errno;
}

static void imap_mbox_done(struct imap_job *j)
{
	static const char *const verbs[] = { "CREATE", "DELETE", "RENAME", "SUBSCRIBE", "UNSUBSCRIBE" };
	struct imap_mbox_job *x = j->arg;

	if (!j->gone) {
		if (x->e == IMAP_STORE_OK)
			imap_ok(j->s, "%s completed", verbs[x->op]);
		else if (x->op >= IMAP_MB_SUBSCRIBE)
			imap_no(j->s, "[SERVERBUG] Cannot update subscriptions");
		else
			imap_no(j->s, "%s", imap_store_text(x->e));
	}
	free(x->maildir);
	free(x->name);
	free(x->to);
	free(x);
}

static void imap_mbox_job(struct imap_session *s, enum imap_mbox_op op, char *name, char *to)
{
	static const char *const ops[] = { "create", "delete", "rename", "subscribe", "unsubscribe" };
	struct imap_mbox_job *x = xcalloc(1, sizeof(*x));
	char *dir = op == IMAP_MB_DELETE || op == IMAP_MB_RENAME ? imap_store_folder_dir(s->maildir, name) : NULL;
	struct imap_job *j;

	if (op == IMAP_MB_CREATE || op == IMAP_MB_DELETE || op == IMAP_MB_RENAME)
		imap_shared_forget(s);   /* a path's folder is about to change */
	x->op = op;
	x->maildir = xstrdup(s->maildir);
	x->name = name;
	x->to = to;
	j = imap_job_new(s, dir, ops[op], imap_mbox_work, imap_mbox_done);
	j->raw = true;
	j->arg = x;
	free(dir);
	imap_job_submit(j);
}

void imap_cmd_create(struct imap_session *s, const struct imap_arg *a, bool uid)
{
	char *name = imap_mailbox_arg(s, a);
	size_t len;

	if (name == NULL)
		return;
	/* RFC 9051 6.3.4: a trailing delimiter says children will follow. */
	len = strlen(name);
	if (len > 1 && name[len - 1] == '/')
		name[len - 1] = '\0';
	imap_mbox_job(s, IMAP_MB_CREATE, name, NULL);
}

void imap_cmd_delete(struct imap_session *s, const struct imap_arg *a, bool uid)
{
	char *name = imap_mailbox_arg(s, a);
	char *dir;

	if (name == NULL)
		return;
	dir = imap_store_folder_dir(s->maildir, name);
	if (s->sel && dir && strcmp(s->sel->path, dir) == 0)
		imap_select_close(s), imap_set_state(s, IMAP_S_AUTH);
	free(dir);
	imap_mbox_job(s, IMAP_MB_DELETE, name, NULL);
}

void imap_cmd_rename(struct imap_session *s, const struct imap_arg *a, bool uid)
{
	char *from = imap_mailbox_arg(s, a), *to;

	if (from == NULL)
		return;
	if ((to = imap_mailbox_arg(s, a->next)) == NULL) {
		free(from);
		return;
	}
	imap_mbox_job(s, IMAP_MB_RENAME, from, to);
}

static void imap_subscribe(struct imap_session *s, const struct imap_arg *a, bool on)
{
	char *name = imap_mailbox_arg(s, a);
	if (name == NULL)
		return;
	imap_mbox_job(s, on ? IMAP_MB_SUBSCRIBE : IMAP_MB_UNSUBSCRIBE, name, NULL);
}

void imap_cmd_subscribe(struct imap_session *s, const struct imap_arg *a, bool uid)
{
	imap_subscribe(s, a, true);
}

void imap_cmd_unsubscribe(struct imap_session *s, const struct imap_arg *a, bool uid)
{
	imap_subscribe(s, a, false);
}

/* LIST wildcards (RFC 9051 6.3.9): '*' anything, '%' anything but '/'. */
static bool imap_match(const char *pat, const char *name)
{
	if (*pat == '\0')
		return *name == '\0';
	if (*pat == '*') {
		for (const char *n = name;; n++) {
			if (imap_match(pat + 1, n))
				return true;
			if (*n == '\0')
				return false;
		}
	}
	if (*pat == '%') {
		for (const char *n = name;; n++) {
			if (imap_match(pat + 1, n))
				return true;
			if (*n == '\0' || *n == '/')
				return false;
		}
	}
	return *pat == *name && imap_match(pat + 1, name + 1);
}

/* STATUS items for one mailbox, as "(MESSAGES 2 UNSEEN 1)". */
enum {
	IMAP_ST_MESSAGES = 1, IMAP_ST_UIDNEXT = 2, IMAP_ST_UIDVALIDITY = 4, IMAP_ST_UNSEEN = 8,
	IMAP_ST_RECENT = 16, IMAP_ST_SIZE = 32, IMAP_ST_HIGHESTMODSEQ = 64, IMAP_ST_DELETED = 128,
};

static bool imap_status_items(const struct imap_arg *l, unsigned *items)
{
	static const struct { const char *n; unsigned v; } names[] = {
		{ "MESSAGES", IMAP_ST_MESSAGES }, { "UIDNEXT", IMAP_ST_UIDNEXT },
		{ "UIDVALIDITY", IMAP_ST_UIDVALIDITY }, { "UNSEEN", IMAP_ST_UNSEEN }, { "RECENT", IMAP_ST_RECENT },
		{ "SIZE", IMAP_ST_SIZE }, { "HIGHESTMODSEQ", IMAP_ST_HIGHESTMODSEQ }, { "DELETED", IMAP_ST_DELETED },
	};
	*items = 0;
	if (l == NULL || l->type != IMAP_ARG_LIST || l->child == NULL)
		return false;
	for (const struct imap_arg *e = l->child; e; e = e->next) {
		bool found = false;
		for (size_t i = 0; i < ARRAY_LEN(names); i++)
			if (e->type == IMAP_ARG_ATOM && strcasecmp(e->s, names[i].n) == 0) {
				*items |= names[i].v;
				found = true;
			}
		if (!found)
			return false;
	}
	return true;
}

static void imap_status_line(struct imap_session *s, const char *name, const struct imap_folder *f,
			     unsigned items)
{
	size_t unseen = 0, deleted = 0, recent = 0;
	uint64_t size = 0;
	const char *sep = "";

	for (size_t i = 0; i < f->n; i++) {
		recent += f->v[i].uid >= f->first_recent;   /* no session has had them */
		unseen += !(f->v[i].flags & IMAP_FLAG_SEEN);
		deleted += !!(f->v[i].flags & IMAP_FLAG_DELETED);
		size += f->v[i].size;
	}
	evbuffer_add_printf(imap_out(s), "* STATUS ");
	imap_write_mailbox(s, imap_out(s), name);
	evbuffer_add_printf(imap_out(s), " (");
#define ST(flag, fmt, v) \
	if (items & (flag)) { evbuffer_add_printf(imap_out(s), "%s" fmt, sep, v); sep = " "; }
	ST(IMAP_ST_MESSAGES, "MESSAGES %zu", f->n);
	ST(IMAP_ST_RECENT, "RECENT %zu", recent);
	ST(IMAP_ST_UIDNEXT, "UIDNEXT %" PRIu32, f->uidnext);
	ST(IMAP_ST_UIDVALIDITY, "UIDVALIDITY %" PRIu32, f->uidvalidity);
	ST(IMAP_ST_UNSEEN, "UNSEEN %zu", unseen);
	ST(IMAP_ST_DELETED, "DELETED %zu", deleted);
	ST(IMAP_ST_SIZE, "SIZE %" PRIu64, size);
	ST(IMAP_ST_HIGHESTMODSEQ, "HIGHESTMODSEQ %" PRIu64, f->modseq);
#undef ST
	evbuffer_add_printf(imap_out(s), ")\r\n");
}

/* STATUS of one mailbox, or LIST's lines with RETURN (STATUS): one job
 * per folder, one after the other, then the tagged OK. */
struct imap_status_run {
	char **names;
	char **lines;             /* LIST: the LIST line to send first (NULL: STATUS) */
	bool *exists;             /* LIST: a STATUS only for a mailbox that exists */
	size_t n, pos;
	unsigned items;
	const char *verb;         /* "LIST", "LSUB"; NULL: STATUS */
};

static void imap_status_run_add(struct imap_status_run *r, const char *name, const char *line, bool exists)
{
	r->names = xrealloc(r->names, (r->n + 1) * sizeof(*r->names));
	r->lines = xrealloc(r->lines, (r->n + 1) * sizeof(*r->lines));
	r->exists = xrealloc(r->exists, (r->n + 1) * sizeof(*r->exists));
	r->names[r->n] = xstrdup(name);
	r->lines[r->n] = line ? xstrdup(line) : NULL;
	r->exists[r->n++] = exists;
}

static void imap_status_run_free(struct imap_status_run *r)
{
	for (size_t i = 0; i < r->n; i++) {
		free(r->names[i]);
		free(r->lines[i]);
	}
	free(r->names);
	free(r->lines);
	free(r->exists);
	free(r);
}

static void imap_status_next(struct imap_session *s, struct imap_status_run *r);

/* SIZE sums the messages' sizes: those the scan did not look at (it
 * reads names only) are measured here, on the worker. */
static void imap_status_work(struct imap_job *j)
{
	struct imap_status_run *r = j->arg;

	if (j->f && (r->items & IMAP_ST_SIZE))
		imap_folder_stat_all(j->f);
}

static void imap_status_done(struct imap_job *j)
{
	struct imap_status_run *r = j->arg;
	struct imap_session *s = j->s;

	if (j->gone) {
		imap_status_run_free(r);
		return;
	}
	if (!r->verb && j->f == NULL) {
		imap_log_error(s, "status", j->err);
		imap_no(s, "[NONEXISTENT] No such mailbox");
		imap_status_run_free(r);
		return;
	}
	if (j->f)
		imap_status_line(s, r->names[r->pos], j->f, r->items);
	r->pos++;
	imap_status_next(s, r);
}

static void imap_status_next(struct imap_session *s, struct imap_status_run *r)
{
	while (r->pos < r->n) {
		char *dir;
		if (r->lines[r->pos])
			evbuffer_add(imap_out(s), r->lines[r->pos], strlen(r->lines[r->pos]));
		if (r->exists[r->pos] && (dir = imap_existing_dir(s, r->names[r->pos])) != NULL) {
			struct imap_job *j = imap_job_new(s, dir, "status", imap_status_work, imap_status_done);
			free(dir);
			j->arg = r;
			imap_job_submit(j);
			return;
		}
		if (!r->verb) {
			imap_no(s, "[NONEXISTENT] No such mailbox");
			imap_status_run_free(r);
			return;
		}
		r->pos++;
	}
	imap_ok(s, "%s completed", r->verb ? r->verb : "STATUS");
	imap_status_run_free(r);
}

void imap_cmd_status(struct imap_session *s, const struct imap_arg *a, bool uid)
{
	char *name = imap_mailbox_arg(s, a);
	struct imap_status_run *r;
	unsigned items;

	if (name == NULL)
		return;
	if (!imap_status_items(a->next, &items)) {
		imap_bad(s, "Syntax: STATUS mailbox (items)");
		free(name);
		return;
	}
	if (items & IMAP_ST_HIGHESTMODSEQ)
		s->condstore = true;   /* RFC 7162 3.1: a CONDSTORE-enabling command */
	r = xcalloc(1, sizeof(*r));
	imap_status_run_add(r, name, NULL, true);
	free(name);
	r->items = items;
	imap_status_next(s, r);
}

static bool imap_is_subscribed(const struct imap_store_list *subs, const char *name)
{
	for (size_t i = 0; i < subs->n; i++)
		if (strcmp(subs->names[i], name) == 0)
			return true;
	return false;
}

/* LIST-EXTENDED (RFC 5258) selection and return options. */
enum {
	IMAP_LS_SUBSCRIBED = 1, IMAP_LS_REMOTE = 2, IMAP_LS_RECURSIVE = 4, IMAP_LS_SPECIAL = 8,
};

struct imap_list_opts {
	unsigned select;          /* IMAP_LS_* */
	bool ret_subscribed;
	unsigned status_items;
	bool lsub;
};

/* One "* LIST (attrs) "/" name [extended]" line. */
static void imap_list_line(struct imap_session *s, struct evbuffer *b, const struct imap_list_opts *o,
			   const struct imap_store_list *all, const char *name, bool exists, bool sub,
			   const char *childinfo)
{
	const char *use = imap_store_special_use(name);

	evbuffer_add_printf(b, "* %s (%s", o->lsub ? "LSUB" : "LIST",
			    imap_store_has_children(all, name) ? "\\HasChildren" : "\\HasNoChildren");
	if (!exists)   /* RFC 5258 3.4: a subscription without its mailbox */
		evbuffer_add_printf(b, " %s", o->lsub ? "\\Noselect" : "\\NonExistent");
	if (o->ret_subscribed && sub)
		evbuffer_add_printf(b, " \\Subscribed");
	if (use && exists)
		evbuffer_add_printf(b, " %s", use);
	evbuffer_add_printf(b, ") \"/\" ");
	imap_write_mailbox(s, b, name);
	if (childinfo)   /* RFC 5258 3.5: RECURSIVEMATCH */
		evbuffer_add_printf(b, " (\"CHILDINFO\" (%s))", childinfo);
	evbuffer_add(b, "\r\n", 2);
}

static bool imap_list_selected(const struct imap_list_opts *o, const char *name, bool sub)
{
	if ((o->select & IMAP_LS_SUBSCRIBED) && !sub)
		return false;
	if ((o->select & IMAP_LS_SPECIAL) && imap_store_special_use(name) == NULL)
		return false;
	return true;
}

static bool imap_list_parse_opts(struct imap_session *s, const struct imap_arg **ap, struct imap_list_opts *o)
{
	static const struct { const char *n; unsigned v; } sel[] = {
		{ "SUBSCRIBED", IMAP_LS_SUBSCRIBED }, { "REMOTE", IMAP_LS_REMOTE },
		{ "RECURSIVEMATCH", IMAP_LS_RECURSIVE }, { "SPECIAL-USE", IMAP_LS_SPECIAL },
	};
	const struct imap_arg *a = *ap;

	if (a && a->type == IMAP_ARG_LIST) {
		for (const struct imap_arg *e = a->child; e; e = e->next) {
			bool found = false;
			for (size_t i = 0; i < ARRAY_LEN(sel); i++)
				if (imap_arg_is_atom(e, sel[i].n)) {
					o->select |= sel[i].v;
					found = true;
				}
			if (!found) {
				imap_bad(s, "Unknown LIST selection option");
				return false;
			}
		}
		/* RFC 5258 3.1: RECURSIVEMATCH needs a criterion to recurse on */
		if ((o->select & IMAP_LS_RECURSIVE) && !(o->select & (IMAP_LS_SUBSCRIBED | IMAP_LS_SPECIAL))) {
			imap_bad(s, "RECURSIVEMATCH without another selection option");
			return false;
		}
		o->ret_subscribed = o->select & IMAP_LS_SUBSCRIBED;
		a = a->next;
	}
	*ap = a;
	return true;
}

static bool imap_list_parse_return(struct imap_session *s, const struct imap_arg *r, struct imap_list_opts *o)
{
	if (r == NULL)
		return true;
	if (!imap_arg_is_atom(r, "RETURN") || r->next == NULL || r->next->type != IMAP_ARG_LIST ||
	    r->next->next != NULL) {
		imap_bad(s, "Syntax: LIST [(options)] reference pattern [RETURN (options)]");
		return false;
	}
	for (const struct imap_arg *e = r->next->child; e; e = e->next) {
		if (imap_arg_is_atom(e, "SUBSCRIBED")) {
			o->ret_subscribed = true;
		} else if (imap_arg_is_atom(e, "CHILDREN") || imap_arg_is_atom(e, "SPECIAL-USE")) {
			/* always given */
		} else if (imap_arg_is_atom(e, "STATUS")) {
			if (!imap_status_items(e->next, &o->status_items)) {
				imap_bad(s, "Invalid RETURN STATUS");
				return false;
			}
			e = e->next;
		} else {
			imap_bad(s, "Unknown LIST return option");
			return false;
		}
	}
	return true;
}

static void imap_list(struct imap_session *s, const struct imap_arg *a, bool lsub)
{
	const char *ref, *pat;
	size_t rlen, plen;
	struct imap_store_list all, subs, cand = { 0 };
	struct imap_list_opts o = { .lsub = lsub };
	const struct imap_arg *pats;
	bool *done;

	if (!lsub && !imap_list_parse_opts(s, &a, &o))
		return;
	if (lsub)
		o.select = IMAP_LS_SUBSCRIBED;
	if (!imap_arg_astring(a, &ref, &rlen) || a->next == NULL) {
		imap_bad(s, "Syntax: %s reference mailbox", lsub ? "LSUB" : "LIST");
		return;
	}
	pats = a->next;
	if (!imap_list_parse_return(s, lsub ? NULL : pats->next, &o))
		return;
	if (!imap_store_list(s->maildir, &all) || !imap_store_subscriptions(s->maildir, &subs)) {
		imap_no(s, "[SERVERBUG] Cannot read the mailbox list");
		return;
	}
	/* the candidates: every mailbox, and subscriptions without one */
	cand.names = xcalloc(all.n + subs.n + 1, sizeof(*cand.names));
	for (size_t i = 0; i < all.n; i++)
		cand.names[cand.n++] = all.names[i];
	if (o.select & IMAP_LS_SUBSCRIBED)
		for (size_t i = 0; i < subs.n; i++)
			if (!imap_is_subscribed(&all, subs.names[i]))
				cand.names[cand.n++] = subs.names[i];
	done = xcalloc(cand.n + 1, sizeof(*done));
	/* RETURN (STATUS): the lines go out with the folders' jobs */
	struct imap_status_run *run = NULL;
	if (o.status_items) {
		run = xcalloc(1, sizeof(*run));
		run->verb = lsub ? "LSUB" : "LIST";
		run->items = o.status_items;
	}
	const struct imap_arg *one = pats->type == IMAP_ARG_LIST ? pats->child : pats;
	for (; one; one = pats->type == IMAP_ARG_LIST ? one->next : NULL) {
		char full[2 * IMAP_MAILBOX_MAX + 2], u7[2 * IMAP_MAILBOX_MAX + 2];
		size_t u7len;
		if (one->type == IMAP_ARG_ATOM) {   /* list-mailbox: wildcards are atom characters */
			pat = one->s;
			plen = one->len;
		} else if (!imap_arg_astring(one, &pat, &plen)) {
			break;
		}
		if (plen == 0 && !lsub) {
			/* RFC 9051 6.3.9: the delimiter and the root */
			evbuffer_add_printf(imap_out(s), "* LIST (\\Noselect) \"/\" \"\"\r\n");
			continue;
		}
		snprintf(full, sizeof(full), "%.*s%.*s", (int)rlen, ref, (int)plen, pat);
		/* a UTF8=ACCEPT client's pattern is UTF-8; the names are kept
		 * in modified UTF-7 (wildcards are the same in both) */
		if (s->utf8 && imap_utf8_to_utf7(full, strlen(full), u7, sizeof(u7), &u7len) == IMAP_UTF7_OK)
			memcpy(full, u7, u7len + 1);
		for (size_t i = 0; i < cand.n; i++) {
			const char *n = cand.names[i];
			bool sub = imap_is_subscribed(&subs, n), exists = i < all.n;
			bool m = imap_match(full, n) || (i == 0 && strncasecmp(full, "INBOX", 5) == 0 &&
							 imap_match(full + 5, ""));
			const char *childinfo = NULL;
			if (!m || done[i])
				continue;
			if (!imap_list_selected(&o, n, sub)) {
				/* RECURSIVEMATCH: a match whose descendant is selected */
				size_t nl = strlen(n);
				if (!(o.select & IMAP_LS_RECURSIVE))
					continue;
				for (size_t j = 0; j < cand.n && !childinfo; j++)
					if (strncmp(cand.names[j], n, nl) == 0 && cand.names[j][nl] == '/' &&
					    imap_list_selected(&o, cand.names[j], imap_is_subscribed(&subs, cand.names[j])))
						childinfo = o.select & IMAP_LS_SUBSCRIBED ? "\"SUBSCRIBED\"" : "\"SPECIAL-USE\"";
				if (!childinfo)
					continue;
			}
			done[i] = true;
			if (run) {
				struct evbuffer *lb = evbuffer_new();
				imap_list_line(s, lb, &o, &all, n, exists, sub, childinfo);
				evbuffer_add(lb, "", 1);
				imap_status_run_add(run, n, (const char *)evbuffer_pullup(lb, -1), exists);
				evbuffer_free(lb);
				continue;
			}
			imap_list_line(s, imap_out(s), &o, &all, n, exists, sub, childinfo);
		}
		if (pats->type != IMAP_ARG_LIST)
			break;
	}
	free(done);
	free(cand.names);
	imap_store_list_free(&subs);
	imap_store_list_free(&all);
	if (run) {
		imap_status_next(s, run);
		return;
	}
	imap_ok(s, "%s completed", lsub ? "LSUB" : "LIST");
}

void imap_cmd_list(struct imap_session *s, const struct imap_arg *a, bool uid)
{
	imap_list(s, a, false);
}

void imap_cmd_lsub(struct imap_session *s, const struct imap_arg *a, bool uid)
{
	imap_list(s, a, true);
}

/* ---- APPEND ----------------------------------------------------------------------- */

/* The messages of one APPEND, MULTIAPPEND included (RFC 3502): each
 * literal streams into its own tmp/ file, sealed (fsync'd, renamed to its
 * final name, still in tmp/) when the next one is announced; at the end
 * of the command all of them go into the folder, or none: a failure takes
 * back the ones already added. */

static void imap_append_drop_sealed(struct imap_session *s)
{
	for (size_t i = 0; i < s->nappend; i++) {
		unlink(s->append_msgs[i].tmp);
		free(s->append_msgs[i].tmp);
		free(s->append_msgs[i].name);
	}
	free(s->append_msgs);
	s->append_msgs = NULL;
	s->nappend = 0;
}

void imap_append_abort(struct imap_session *s)
{
	if (s->append_fd >= 0) {
		close(s->append_fd);
		unlink(s->append_tmp);
	}
	imap_append_drop_sealed(s);
	s->append_fd = -1;
	s->append_discard = false;
	free(s->append_tmp);
	free(s->append_dir);
	s->append_tmp = s->append_dir = NULL;
}

/* A literal of the message text: "{n}", or RFC 6855's "UTF8 (~{n})". */
static bool imap_append_is_text(const struct imap_arg *e)
{
	return e->type == IMAP_ARG_LITERAL ||
		(e->type == IMAP_ARG_LIST && e->child && e->child->type == IMAP_ARG_LITERAL);
}

static size_t imap_append_texts(const struct imap_arg *a)
{
	size_t n = 0;
	for (const struct imap_arg *e = a ? a->next : NULL; e; e = e->next)
		n += imap_append_is_text(e);
	return n;
}

/* The literal just taken is complete: closed and kept in tmp/ with its
 * final name ("...,S=size,W=crlf-size"), flags and date; APPEND's job
 * syncs and renames it (never on the loop). */
static bool imap_append_seal(struct imap_session *s)
{
	char final[320];
	bool ok = !s->append_failed;

	ok = close(s->append_fd) == 0 && ok;
	s->append_fd = -1;
	if (!ok) {
		unlink(s->append_tmp);
		free(s->append_tmp);
		s->append_tmp = NULL;
		return false;
	}
	snprintf(final, sizeof(final), "%s,S=%" PRIu64 ",W=%" PRIu64, s->append_name, s->append_size,
		 s->append_crlf);
	s->append_msgs = xrealloc(s->append_msgs, (s->nappend + 1) * sizeof(*s->append_msgs));
	s->append_msgs[s->nappend++] = (struct imap_append_msg){
		xstrdup(final), s->append_flags, s->append_date, s->append_crlf, s->append_tmp,
	};
	s->append_tmp = NULL;
	return true;
}

/* The flags and date-time before the literal being announced: the
 * arguments after the previous message's literal. */
static bool imap_append_options(struct imap_session *s, const struct imap_arg *a)
{
	const struct imap_arg *e, *start = a->next;
	bool utf8 = false;

	for (e = a->next; e; e = e->next)
		if (imap_append_is_text(e))
			start = e->next;
	s->append_flags = 0;
	s->append_date = -1;
	for (e = start; e; e = e->next) {
		uint32_t kw;
		if (e->type == IMAP_ARG_LIST && !utf8) {
			if (!imap_parse_flag_list(s, e, &s->append_flags, &kw, false)) {
				imap_bad(s, "Invalid flags");
				return false;
			}
		} else if (e->type == IMAP_ARG_QUOTED) {
			if (!imap_parse_datetime(e->s, e->len, &s->append_date)) {
				imap_bad(s, "Invalid date-time");
				return false;
			}
		}
		utf8 = imap_arg_is_atom(e, "UTF8");
	}
	return true;
}

/* A literal of "APPEND mailbox [flags] [date-time] {n} [[flags]
 * [date-time] {n} ...]" is announced: the arguments before it are in the
 * parser.  False: answered (and everything of this APPEND dropped). */
bool imap_append_begin(struct imap_session *s, uint32_t size, bool sync)
{
	const struct imap_arg *a = s->parser.args;
	char *name = NULL, *dir;
	char host[64];
	bool more = imap_append_texts(a) > 0;

	if (!more) {
		imap_append_abort(s);
		if ((name = imap_mailbox_arg(s, a)) == NULL)
			return false;
	} else if (s->append_dir == NULL || s->append_fd < 0 || !imap_append_seal(s)) {
		/* an earlier message of this MULTIAPPEND failed */
		imap_log_error(s, "append", errno);
		imap_append_abort(s);
		imap_no(s, "[UNAVAILABLE] Cannot store the message");
		return false;
	}
	if (!imap_append_options(s, a)) {
		if (!more)
			free(name);
		imap_append_abort(s);
		return false;
	}
	if (size > s->t->cfg->max_message_size) {
		if (!more)
			free(name);
		imap_append_abort(s);
		imap_no(s, "[TOOBIG] Message larger than %" PRIu64 " octets", s->t->cfg->max_message_size);
		return false;
	}
	if (!more) {
		if ((dir = imap_existing_dir(s, name)) == NULL) {
			free(name);
			imap_no(s, "[TRYCREATE] No such mailbox");
			return false;
		}
		free(name);
		s->append_dir = dir;
	}
	if (gethostname(host, sizeof(host)) != 0)
		snprintf(host, sizeof(host), "localhost");
	host[sizeof(host) - 1] = '\0';
	imap_folder_unique(s->append_name, sizeof(s->append_name) - 48, host);
	s->append_tmp = xasprintf("%s/tmp/%s", s->append_dir, s->append_name);
	s->append_fd = open(s->append_tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	s->append_size = s->append_crlf = 0;
	s->append_prev = 0;
	s->append_failed = false;
	if (s->append_fd < 0) {
		imap_log_error(s, "append", errno);
		imap_append_abort(s);
		imap_no(s, "[UNAVAILABLE] Cannot store the message");
		return false;
	}
	return true;
}

void imap_append_octets(struct imap_session *s, const char *p, size_t len)
{
	if (s->append_fd < 0 || s->append_failed)
		return;
	for (size_t i = 0; i < len; i++) {
		if (p[i] == '\n' && s->append_prev != '\r')
			s->append_crlf++;
		s->append_prev = p[i];
	}
	s->append_size += len;
	s->append_crlf += len;
	if (!write_all(s->append_fd, p, len))
		s->append_failed = true;
}

/* The whole command: mailbox, then one or more [flags] [date-time] text,
 * text a literal or "UTF8" and a list of one literal8 (RFC 6855 4). */
static bool imap_append_syntax(const struct imap_arg *a, size_t *n)
{
	const struct imap_arg *e = a ? a->next : NULL;

	*n = 0;
	while (e) {
		if (e->type == IMAP_ARG_LIST && !imap_append_is_text(e))
			e = e->next;
		if (e && e->type == IMAP_ARG_QUOTED)
			e = e->next;
		if (e && imap_arg_is_atom(e, "UTF8") && e->next && e->next->type == IMAP_ARG_LIST &&
		    e->next->count == 1 && imap_append_is_text(e->next) && e->next->child->literal8)
			e = e->next;
		else if (e == NULL || e->type != IMAP_ARG_LITERAL)
			return false;
		e = e->next;
		(*n)++;
	}
	return *n > 0;
}

/* APPEND's commit, on the worker with the target folder: each message
 * synced and renamed to its final name, then all into cur/ with one
 * directory sync and one state file (RFC 3502: all or none). */
struct imap_append_job {
	struct imap_append_msg *v;
	size_t n;
	uint32_t *uids;
	size_t added;
	bool failed;
	uint32_t validity;
};

static void imap_append_work(struct imap_job *j)
{
	struct imap_append_job *x = j->arg;
	struct imap_folder *f = j->f;
	size_t ready = 0;
	bool ok = f != NULL;

	if (!ok)
		errno = j->err;
	/* Data first: every message is durable before the OK. */
	for (; ok && ready < x->n; ready++) {
		struct imap_append_msg *m = &x->v[ready];
		char *to = xasprintf("%s/tmp/%s", j->sh->path, m->name);
		int fd = open(m->tmp, O_RDONLY | O_CLOEXEC);
		ok = fd >= 0 && fsync(fd) == 0;
		if (fd >= 0)
			close(fd);
		ok = ok && rename(m->tmp, to) == 0;
		free(to);
		if (!ok)
			break;
	}
	if (ok) {
		imap_folder_batch_begin(f);
		for (size_t i = 0; ok && i < x->n; i++) {
			ok = imap_folder_add(f, x->v[i].name, x->v[i].flags, 0, x->v[i].date, x->v[i].crlf, &x->uids[i]);
			if (ok)
				x->added++;
		}
		if (!imap_folder_batch_commit(f))
			ok = false;
	}
	if (!ok) {
		/* all or none (RFC 3502 6.3.11): take back what went in */
		j->err = errno ? errno : EIO;
		for (size_t i = 0; i < x->added; i++) {
			long k = imap_folder_find(f, x->uids[i]);
			if (k >= 0)
				imap_folder_expunge(f, (size_t)k);
		}
		if (x->added)
			imap_folder_save(f);
		for (size_t i = x->added; i < x->n; i++) {
			char *t = xasprintf("%s/tmp/%s", j->sh->path, x->v[i].name);
			unlink(t);
			unlink(x->v[i].tmp);
			free(t);
		}
		x->failed = true;
		return;
	}
	x->validity = f->uidvalidity;
}

static void imap_append_done(struct imap_job *j)
{
	struct imap_append_job *x = j->arg;
	struct imap_session *s = j->s;

	if (!j->gone) {
		if (x->failed) {
			imap_log_error(s, "append", j->err);
			imap_no(s, "[UNAVAILABLE] Cannot store the message%s", x->n > 1 ? "s" : "");
		} else {
			struct evbuffer *set = evbuffer_new();
			imap_write_seqset(set, x->uids, x->added);
			evbuffer_add(set, "", 1);
			imap_ok(s, "[APPENDUID %" PRIu32 " %s] APPEND completed", x->validity,
				(const char *)evbuffer_pullup(set, -1));
			evbuffer_free(set);
		}
	}
	for (size_t i = 0; i < x->n; i++) {
		free(x->v[i].name);
		free(x->v[i].tmp);
	}
	free(x->v);
	free(x->uids);
	free(x);
}

void imap_cmd_append(struct imap_session *s, const struct imap_arg *a, bool uid)
{
	struct imap_append_job *x;
	struct imap_job *j;
	size_t n;

	if (s->append_fd < 0 || !imap_append_syntax(a, &n) || n != s->nappend + 1) {
		imap_append_abort(s);
		imap_bad(s, "Syntax: APPEND mailbox [flags] [date-time] literal ...");
		return;
	}
	if (!imap_append_seal(s)) {
		imap_log_error(s, "append", errno);
		imap_append_abort(s);
		imap_no(s, "[UNAVAILABLE] Cannot store the message%s", n > 1 ? "s" : "");
		return;
	}
	/* the messages are the job's now */
	x = xcalloc(1, sizeof(*x));
	x->v = s->append_msgs;
	x->n = s->nappend;
	x->uids = xcalloc(x->n + 1, sizeof(*x->uids));
	s->append_msgs = NULL;
	s->nappend = 0;
	j = imap_job_new(s, s->append_dir, "append", imap_append_work, imap_append_done);
	j->arg = x;
	imap_append_abort(s);
	imap_job_submit(j);
}
