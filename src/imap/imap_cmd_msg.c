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

void imap_cmd_check(struct imap_session *s, const struct imap_arg *a, bool uid)
{
	s->sel->dirty = true;
	imap_folder_save(s->sel->f);
	imap_ok(s, "CHECK completed");
}

/* Remove the \Deleted messages (of uids, when given); true if any went. */
static bool imap_expunge_deleted(struct imap_session *s, const size_t *idx, size_t n)
{
	struct imap_folder *f = imap_folder(s);
	bool any = false;

	for (size_t i = 0; i < (idx ? n : s->nview); i++) {
		size_t v = idx ? idx[i] : i;
		long k = imap_view_index(s, v);
		if (k < 0 || !(f->v[k].flags & IMAP_FLAG_DELETED))
			continue;
		if (!imap_folder_expunge(f, (size_t)k))
			imap_log_error(s, "expunge", errno);
		else
			any = true;
	}
	imap_folder_save(f);
	return any;
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
	if (imap_expunge_deleted(s, uid ? idx : NULL, n))
		imap_changed(s);
	free(idx);
	imap_ok(s, "EXPUNGE completed");
}

void imap_cmd_close(struct imap_session *s, const struct imap_arg *a, bool uid)
{
	/* RFC 9051 6.4.2: expunged silently */
	if (!s->readonly && imap_expunge_deleted(s, NULL, 0))
		imap_changed(s);
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

void imap_cmd_store(struct imap_session *s, const struct imap_arg *a, bool uid)
{
	struct imap_folder *f;
	size_t *idx, n;
	const struct imap_arg *item, *fl;
	const char *it;
	unsigned flags;
	uint32_t kw;
	int mode;                 /* 0 replace, 1 add, -1 remove */
	bool silent, changed = false;

	if (!imap_seq_resolve(s, a, uid, &idx, &n))
		return;
	item = a->next;
	if (item && item->type == IMAP_ARG_LIST)   /* (UNCHANGEDSINCE n): not kept */
		item = item->next;
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
	f = imap_folder(s);
	for (size_t i = 0; i < n; i++) {
		struct imap_view_msg *v = &s->view[idx[i]];
		long k = imap_view_index(s, idx[i]);
		unsigned nf;
		uint32_t nk;
		if (k < 0)
			continue;
		nf = mode == 0 ? flags : mode > 0 ? f->v[k].flags | flags : f->v[k].flags & ~flags;
		nk = mode == 0 ? kw : mode > 0 ? f->v[k].kw | kw : f->v[k].kw & ~kw;
		if ((nf != f->v[k].flags || nk != f->v[k].kw)) {
			if (!imap_folder_set_flags(f, (size_t)k, nf, nk)) {
				imap_log_error(s, "store", errno);
				continue;
			}
			changed = true;
			s->nstore++;
		}
		v->flags = f->v[k].flags;
		v->kw = f->v[k].kw;
		if (!silent) {
			evbuffer_add_printf(imap_out(s), "* %zu FETCH (FLAGS ", idx[i] + 1);
			imap_write_msg_flags(s, imap_out(s), v->flags, v->kw);
			if (uid)
				evbuffer_add_printf(imap_out(s), " UID %" PRIu32, v->uid);
			evbuffer_add(imap_out(s), ")\r\n", 3);
		}
	}
	free(idx);
	imap_folder_save(f);
	if (changed)
		imap_changed(s);
	imap_ok(s, "STORE completed");
}

/* ---- COPY and MOVE -------------------------------------------------------------- */

static void imap_copy(struct imap_session *s, const struct imap_arg *a, bool uid, bool move)
{
	size_t *idx, n, done = 0;
	char *name, *dir;
	struct imap_folder *src, *dst;
	uint32_t *su, *du;
	bool own, ok = true;
	struct evbuffer *code;

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
	src = imap_folder(s);
	dst = imap_folder_at(s, dir, &own);
	free(dir);
	if (dst == NULL) {
		free(idx);
		imap_log_error(s, "copy", errno);
		imap_no(s, "[UNAVAILABLE] Cannot open the target mailbox");
		return;
	}
	su = xcalloc(n + 1, sizeof(*su));
	du = xcalloc(n + 1, sizeof(*du));
	/* one directory sync and one state file for all of them, and all
	 * durable in the target before any leaves the source (MOVE) */
	imap_folder_batch_begin(dst);
	for (size_t i = 0; i < n && ok; i++) {
		long k = imap_view_index(s, idx[i]);
		if (k < 0)
			continue;
		if (!imap_folder_copy(src, (size_t)k, dst, &du[done])) {
			imap_log_error(s, "copy", errno);
			ok = false;
			break;
		}
		su[done++] = src->v[k].uid;
	}
	if (!imap_folder_batch_commit(dst) && ok) {
		imap_log_error(s, "copy", errno);
		ok = false;
	}
	code = evbuffer_new();
	if (done) {
		evbuffer_add_printf(code, "[COPYUID %" PRIu32 " ", dst->uidvalidity);
		imap_write_seqset(code, su, done);
		evbuffer_add(code, " ", 1);
		imap_write_seqset(code, du, done);
		evbuffer_add(code, "] ", 2);
	}
	evbuffer_add(code, "", 1);
	const char *ctext = (const char *)evbuffer_pullup(code, -1);
	imap_folder_done(s, dst, own, done > 0);
	if (!ok) {
		imap_no(s, "[UNAVAILABLE] %s failed", move ? "MOVE" : "COPY");
	} else if (move) {
		if (done)
			imap_untagged(s, "OK %s", ctext);
		for (size_t i = 0; i < done; i++) {
			long k = imap_folder_find(src, su[i]);
			if (k >= 0 && !imap_folder_expunge(src, (size_t)k))
				imap_log_error(s, "move", errno);
		}
		imap_folder_save(src);
		if (done)
			imap_changed(s);
		imap_ok(s, "MOVE completed");
	} else {
		imap_ok(s, "%sCOPY completed", ctext);
	}
	evbuffer_free(code);
	free(su);
	free(du);
	free(idx);
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
	case IMAP_SK_NEW: case IMAP_SK_RECENT: return false;   /* no \Recent kept */
	case IMAP_SK_OLD: return true;
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

void imap_cmd_search(struct imap_session *s, const struct imap_arg *a, bool uid)
{
	struct imap_search_node *prog;
	enum imap_search_err e;
	struct imap_folder *f = imap_folder(s);
	bool esearch = false;
	unsigned ret = 0;          /* 1 MIN 2 MAX 4 ALL 8 COUNT */
	uint32_t *hits;
	size_t nh = 0;

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
	hits = xcalloc(s->nview + 1, sizeof(*hits));
	for (size_t i = 0; i < s->nview; i++) {
		long k = imap_view_index(s, i);
		struct imap_smsg x = { .s = s, .seq = i + 1 };
		if (k < 0)
			continue;
		x.m = &f->v[k];
		if (imap_eval(&x, prog))
			hits[nh++] = uid ? s->view[i].uid : (uint32_t)(i + 1);
		free(x.hdr);
	}
	if (!esearch) {
		evbuffer_add_printf(imap_out(s), "* SEARCH");
		for (size_t i = 0; i < nh; i++)
			evbuffer_add_printf(imap_out(s), " %" PRIu32, hits[i]);
		evbuffer_add(imap_out(s), "\r\n", 2);
	} else {
		evbuffer_add_printf(imap_out(s), "* ESEARCH (TAG \"%s\")%s", s->tag, uid ? " UID" : "");
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
		evbuffer_add(imap_out(s), "\r\n", 2);
	}
	free(hits);
	imap_ok(s, "SEARCH completed");
}
