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

static void imap_select(struct imap_session *s, const struct imap_arg *a, bool readonly)
{
	char *name = imap_mailbox_arg(s, a), *dir;
	struct imap_folder *f;
	size_t unseen = 0;

	if (name == NULL)
		return;
	if (s->sel)   /* RFC 9051 7.1: the old mailbox is closed first */
		imap_untagged(s, "OK [CLOSED] Previous mailbox closed");
	imap_select_close(s);
	imap_set_state(s, IMAP_S_AUTH);
	if ((dir = imap_existing_dir(s, name)) == NULL) {
		free(name);
		imap_no(s, "[NONEXISTENT] No such mailbox");
		return;
	}
	if (!imap_select_open(s, dir, readonly)) {
		imap_log_error(s, "select", errno);
		free(dir);
		free(name);
		imap_no(s, "[UNAVAILABLE] Cannot open the mailbox");
		return;
	}
	free(dir);
	free(name);
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
		imap_untagged(s, "0 RECENT");
	if (unseen && !s->rev2)
		imap_untagged(s, "OK [UNSEEN %zu] First unseen", unseen);
	imap_untagged(s, "OK [UIDVALIDITY %" PRIu32 "] UIDs valid", f->uidvalidity);
	imap_untagged(s, "OK [UIDNEXT %" PRIu32 "] Predicted next UID", f->uidnext);
	imap_untagged(s, "OK [HIGHESTMODSEQ %" PRIu64 "] Highest", f->modseq);
	imap_set_state(s, IMAP_S_SELECTED);
	imap_ok(s, "[%s] %s completed", readonly ? "READ-ONLY" : "READ-WRITE", readonly ? "EXAMINE" : "SELECT");
}

void imap_cmd_select(struct imap_session *s, const struct imap_arg *a, bool uid)
{
	imap_select(s, a, false);
}

void imap_cmd_examine(struct imap_session *s, const struct imap_arg *a, bool uid)
{
	imap_select(s, a, true);
}

void imap_cmd_create(struct imap_session *s, const struct imap_arg *a, bool uid)
{
	char *name = imap_mailbox_arg(s, a);
	enum imap_store_err e;
	size_t len;

	if (name == NULL)
		return;
	/* RFC 9051 6.3.4: a trailing delimiter says children will follow. */
	len = strlen(name);
	if (len > 1 && name[len - 1] == '/')
		name[len - 1] = '\0';
	imap_shared_forget(s);
	e = imap_store_create(s->maildir, name);
	if (e == IMAP_STORE_OK)
		imap_ok(s, "CREATE completed");
	else
		imap_no(s, "%s", imap_store_text(e));
	free(name);
}

void imap_cmd_delete(struct imap_session *s, const struct imap_arg *a, bool uid)
{
	char *name = imap_mailbox_arg(s, a);
	char *dir;
	enum imap_store_err e;

	if (name == NULL)
		return;
	dir = imap_store_folder_dir(s->maildir, name);
	if (s->sel && dir && strcmp(s->sel->path, dir) == 0)
		imap_select_close(s), imap_set_state(s, IMAP_S_AUTH);
	free(dir);
	imap_shared_forget(s);
	e = imap_store_delete(s->maildir, name);
	if (e == IMAP_STORE_OK)
		imap_ok(s, "DELETE completed");
	else
		imap_no(s, "%s", imap_store_text(e));
	free(name);
}

void imap_cmd_rename(struct imap_session *s, const struct imap_arg *a, bool uid)
{
	char *from = imap_mailbox_arg(s, a), *to;
	enum imap_store_err e;

	if (from == NULL)
		return;
	if ((to = imap_mailbox_arg(s, a->next)) == NULL) {
		free(from);
		return;
	}
	imap_shared_forget(s);
	e = imap_store_rename(s->maildir, from, to);
	if (e == IMAP_STORE_OK)
		imap_ok(s, "RENAME completed");
	else
		imap_no(s, "%s", imap_store_text(e));
	free(from);
	free(to);
}

static void imap_subscribe(struct imap_session *s, const struct imap_arg *a, bool on)
{
	char *name = imap_mailbox_arg(s, a);
	if (name == NULL)
		return;
	if (imap_store_subscribe(s->maildir, name, on))
		imap_ok(s, "%s completed", on ? "SUBSCRIBE" : "UNSUBSCRIBE");
	else
		imap_no(s, "[SERVERBUG] Cannot update subscriptions");
	free(name);
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

static bool imap_status_write(struct imap_session *s, const char *name, unsigned items)
{
	char *dir = imap_existing_dir(s, name);
	struct imap_folder *f, *own = NULL;
	size_t unseen = 0, deleted = 0;
	uint64_t size = 0;
	const char *sep = "";

	if (dir == NULL)
		return false;
	bool mine;
	if ((f = imap_folder_at(s, dir, &mine)) == NULL) {
		imap_log_error(s, "status", errno);
		free(dir);
		return false;
	}
	own = mine ? f : NULL;
	free(dir);
	for (size_t i = 0; i < f->n; i++) {
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
	ST(IMAP_ST_RECENT, "RECENT %d", 0);
	ST(IMAP_ST_UIDNEXT, "UIDNEXT %" PRIu32, f->uidnext);
	ST(IMAP_ST_UIDVALIDITY, "UIDVALIDITY %" PRIu32, f->uidvalidity);
	ST(IMAP_ST_UNSEEN, "UNSEEN %zu", unseen);
	ST(IMAP_ST_DELETED, "DELETED %zu", deleted);
	ST(IMAP_ST_SIZE, "SIZE %" PRIu64, size);
	ST(IMAP_ST_HIGHESTMODSEQ, "HIGHESTMODSEQ %" PRIu64, f->modseq);
#undef ST
	evbuffer_add_printf(imap_out(s), ")\r\n");
	imap_folder_free(own);
	return true;
}

void imap_cmd_status(struct imap_session *s, const struct imap_arg *a, bool uid)
{
	char *name = imap_mailbox_arg(s, a);
	unsigned items;

	if (name == NULL)
		return;
	if (!imap_status_items(a->next, &items)) {
		imap_bad(s, "Syntax: STATUS mailbox (items)");
	} else if (!imap_status_write(s, name, items)) {
		imap_no(s, "[NONEXISTENT] No such mailbox");
	} else {
		imap_ok(s, "STATUS completed");
	}
	free(name);
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
static void imap_list_line(struct imap_session *s, const struct imap_list_opts *o,
			   const struct imap_store_list *all, const char *name, bool exists, bool sub,
			   const char *childinfo)
{
	struct evbuffer *b = imap_out(s);
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
			imap_list_line(s, &o, &all, n, exists, sub, childinfo);
			if (o.status_items && exists)
				imap_status_write(s, n, o.status_items);
		}
		if (pats->type != IMAP_ARG_LIST)
			break;
	}
	free(done);
	free(cand.names);
	imap_store_list_free(&all);
	imap_store_list_free(&subs);
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
		if (s->append_dir) {
			char *t = xasprintf("%s/tmp/%s", s->append_dir, s->append_msgs[i].name);
			unlink(t);
			free(t);
		}
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

/* The literal just taken is complete: durable in tmp/ under its final
 * name ("...,S=size,W=crlf-size"), its flags and date kept. */
static bool imap_append_seal(struct imap_session *s)
{
	char final[320];
	char *to;
	bool ok = !s->append_failed && fsync(s->append_fd) == 0;

	ok = close(s->append_fd) == 0 && ok;
	s->append_fd = -1;
	snprintf(final, sizeof(final), "%s,S=%" PRIu64 ",W=%" PRIu64, s->append_name, s->append_size,
		 s->append_crlf);
	to = xasprintf("%s/tmp/%s", s->append_dir, final);
	ok = ok && rename(s->append_tmp, to) == 0;
	if (!ok)
		unlink(s->append_tmp);
	free(to);
	free(s->append_tmp);
	s->append_tmp = NULL;
	if (!ok)
		return false;
	s->append_msgs = xrealloc(s->append_msgs, (s->nappend + 1) * sizeof(*s->append_msgs));
	s->append_msgs[s->nappend++] = (struct imap_append_msg){
		xstrdup(final), s->append_flags, s->append_date, s->append_crlf,
	};
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

void imap_cmd_append(struct imap_session *s, const struct imap_arg *a, bool uid)
{
	struct imap_folder *f = NULL;
	bool own = false, ok;
	uint32_t *uids;
	size_t n, added = 0;

	if (s->append_fd < 0 || !imap_append_syntax(a, &n) || n != s->nappend + 1) {
		imap_append_abort(s);
		imap_bad(s, "Syntax: APPEND mailbox [flags] [date-time] literal ...");
		return;
	}
	/* Data first: every message is durable before the OK (fsync in
	 * imap_append_seal, the rename into cur/ and its directory sync in
	 * imap_folder_add). */
	ok = imap_append_seal(s);
	if (ok) {
		f = imap_folder_at(s, s->append_dir, &own);
		ok = f != NULL;
	}
	uids = xcalloc(s->nappend + 1, sizeof(*uids));
	if (f)
		imap_folder_batch_begin(f);
	for (size_t i = 0; ok && i < s->nappend; i++) {
		const struct imap_append_msg *m = &s->append_msgs[i];
		ok = imap_folder_add(f, m->name, m->flags, 0, m->date, m->crlf, &uids[i]);
		if (ok)
			added++;
	}
	if (f && !imap_folder_batch_commit(f))
		ok = false;
	if (!ok) {
		/* all or none (RFC 3502 6.3.11): take back what went in */
		int err = errno;
		for (size_t i = 0; f && i < added; i++) {
			long k = imap_folder_find(f, uids[i]);
			if (k >= 0)
				imap_folder_expunge(f, (size_t)k);
		}
		imap_log_error(s, "append", err);
		if (f) {
			imap_folder_save(f);
			imap_folder_done(s, f, own, added > 0);
		}
		imap_append_abort(s);   /* the ones not added yet */
		free(uids);
		imap_no(s, "[UNAVAILABLE] Cannot store the message%s", n > 1 ? "s" : "");
		return;
	}
	uint32_t validity = f->uidvalidity;
	struct evbuffer *set = evbuffer_new();
	imap_write_seqset(set, uids, added);
	evbuffer_add(set, "", 1);
	/* added: their files are in cur/ now, nothing left to drop */
	for (size_t i = 0; i < s->nappend; i++)
		free(s->append_msgs[i].name);
	s->nappend = 0;
	imap_folder_done(s, f, own, true);
	imap_append_abort(s);
	imap_ok(s, "[APPENDUID %" PRIu32 " %s] APPEND completed", validity,
		(const char *)evbuffer_pullup(set, -1));
	evbuffer_free(set);
	free(uids);
}
