/*
 * imap_cmd_mbox.c - IMAP commands on mailboxes (RFC 9051 6.3): SELECT,
 * EXAMINE, CREATE, DELETE, RENAME, SUBSCRIBE, UNSUBSCRIBE, LIST (with
 * the SPECIAL-USE attributes of RFC 6154, CHILDREN of RFC 3348 and
 * RETURN (STATUS) of RFC 5819), LSUB, STATUS, and APPEND, whose literal
 * is streamed into the folder's tmp/ as it arrives (never held), with
 * NO [TOOBIG] (RFC 7889) before any octet when it is over the limit.
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
	imap_write_astring(imap_out(s), name, strlen(name), s->utf8);
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

/* One "* LIST (attrs) "/" name" line. */
static void imap_list_line(struct imap_session *s, const char *verb, const struct imap_store_list *all,
			   const char *name, bool subscribed_attr, bool special)
{
	struct evbuffer *b = imap_out(s);
	const char *use = imap_store_special_use(name);

	evbuffer_add_printf(b, "* %s (%s", verb,
			    imap_store_has_children(all, name) ? "\\HasChildren" : "\\HasNoChildren");
	if (subscribed_attr)
		evbuffer_add_printf(b, " \\Subscribed");
	if (use && special)
		evbuffer_add_printf(b, " %s", use);
	evbuffer_add_printf(b, ") \"/\" ");
	imap_write_astring(b, name, strlen(name), s->utf8);
	evbuffer_add(b, "\r\n", 2);
}

static void imap_list(struct imap_session *s, const struct imap_arg *a, bool lsub)
{
	const char *ref, *pat;
	size_t rlen, plen;
	struct imap_store_list all, subs;
	bool subscribed_only = lsub, return_subscribed = false, special = true;
	unsigned status_items = 0;
	const struct imap_arg *pats;

	/* LIST-EXTENDED (RFC 5258): selection options first. */
	if (!lsub && a && a->type == IMAP_ARG_LIST) {
		for (const struct imap_arg *e = a->child; e; e = e->next)
			if (e->type == IMAP_ARG_ATOM && strcasecmp(e->s, "SUBSCRIBED") == 0)
				subscribed_only = return_subscribed = true;
		a = a->next;
	}
	if (!imap_arg_astring(a, &ref, &rlen) || a->next == NULL) {
		imap_bad(s, "Syntax: %s reference mailbox", lsub ? "LSUB" : "LIST");
		return;
	}
	pats = a->next;
	for (const struct imap_arg *r = pats->next; r; r = r->next) {
		if (!imap_arg_is_atom(r, "RETURN") || r->next == NULL || r->next->type != IMAP_ARG_LIST)
			continue;
		for (const struct imap_arg *e = r->next->child; e; e = e->next) {
			if (imap_arg_is_atom(e, "SUBSCRIBED"))
				return_subscribed = true;
			else if (imap_arg_is_atom(e, "STATUS") && !imap_status_items(e->next, &status_items)) {
				imap_bad(s, "Invalid RETURN STATUS");
				return;
			}
		}
	}
	if (!imap_store_list(s->maildir, &all) || !imap_store_subscriptions(s->maildir, &subs)) {
		imap_no(s, "[SERVERBUG] Cannot read the mailbox list");
		return;
	}
	const struct imap_arg *one = pats->type == IMAP_ARG_LIST ? pats->child : pats;
	for (; one; one = pats->type == IMAP_ARG_LIST ? one->next : NULL) {
		char full[2 * IMAP_MAILBOX_MAX + 2];
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
		for (size_t i = 0; i < all.n; i++) {
			const char *n = all.names[i];
			bool sub = imap_is_subscribed(&subs, n);
			bool m = imap_match(full, n) || (i == 0 && strncasecmp(full, "INBOX", 5) == 0 &&
							 imap_match(full + 5, ""));
			if (!m || (subscribed_only && !sub))
				continue;
			imap_list_line(s, lsub ? "LSUB" : "LIST", &all, n, return_subscribed && sub, special);
			if (status_items)
				imap_status_write(s, n, status_items);
		}
		if (pats->type != IMAP_ARG_LIST)
			break;
	}
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

void imap_append_abort(struct imap_session *s)
{
	if (s->append_fd >= 0) {
		close(s->append_fd);
		unlink(s->append_tmp);
	}
	s->append_fd = -1;
	s->append_discard = false;
	free(s->append_tmp);
	free(s->append_dir);
	s->append_tmp = s->append_dir = NULL;
}

/* The literal of "APPEND mailbox [flags] [date-time] {n}" is announced:
 * the arguments before it are in the parser. */
bool imap_append_begin(struct imap_session *s, uint32_t size, bool sync)
{
	const struct imap_arg *a = s->parser.args, *e;
	char *name, *dir;
	char host[64];

	imap_append_abort(s);
	if ((name = imap_mailbox_arg(s, a)) == NULL)
		return false;
	s->append_flags = 0;
	s->append_date = -1;
	for (e = a->next; e && e->type != IMAP_ARG_LITERAL; e = e->next) {
		uint32_t kw;
		if (e->type == IMAP_ARG_LIST) {
			if (!imap_parse_flag_list(s, e, &s->append_flags, &kw, false)) {
				free(name);
				imap_bad(s, "Invalid flags");
				return false;
			}
		} else if (e->type == IMAP_ARG_QUOTED) {
			if (!imap_parse_datetime(e->s, e->len, &s->append_date)) {
				free(name);
				imap_bad(s, "Invalid date-time");
				return false;
			}
		}
	}
	if (size > s->t->cfg->max_message_size) {
		free(name);
		imap_no(s, "[TOOBIG] Message larger than %" PRIu64 " octets", s->t->cfg->max_message_size);
		return false;
	}
	if ((dir = imap_existing_dir(s, name)) == NULL) {
		free(name);
		imap_no(s, "[TRYCREATE] No such mailbox");
		return false;
	}
	free(name);
	if (gethostname(host, sizeof(host)) != 0)
		snprintf(host, sizeof(host), "localhost");
	host[sizeof(host) - 1] = '\0';
	imap_folder_unique(s->append_name, sizeof(s->append_name) - 48, host);
	s->append_dir = dir;
	s->append_tmp = xasprintf("%s/tmp/%s", dir, s->append_name);
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

void imap_cmd_append(struct imap_session *s, const struct imap_arg *a, bool uid)
{
	struct imap_folder *f = NULL;
	bool own = false;
	char final[320];
	char *from, *to;
	uint32_t newuid;
	bool ok;

	if (s->append_fd < 0) {
		imap_bad(s, "Syntax: APPEND mailbox [flags] [date-time] literal");
		return;
	}
	/* Data first: the message is durable before the OK (fsync here, the
	 * rename into cur/ and its directory sync in imap_folder_add). */
	ok = !s->append_failed && fsync(s->append_fd) == 0;
	ok = close(s->append_fd) == 0 && ok;
	s->append_fd = -1;
	snprintf(final, sizeof(final), "%s,S=%" PRIu64 ",W=%" PRIu64, s->append_name, s->append_size,
		 s->append_crlf);
	from = s->append_tmp;
	to = xasprintf("%s/tmp/%s", s->append_dir, final);
	ok = ok && rename(from, to) == 0;
	if (!ok)
		unlink(from);
	free(to);
	if (ok) {
		f = imap_folder_at(s, s->append_dir, &own);
		ok = f && imap_folder_add(f, final, s->append_flags, 0, s->append_date, s->append_crlf, &newuid);
		if (!ok) {
			char *t = xasprintf("%s/tmp/%s", s->append_dir, final);
			unlink(t);
			free(t);
		}
	}
	if (!ok) {
		imap_log_error(s, "append", errno);
		imap_append_abort(s);
		imap_no(s, "[UNAVAILABLE] Cannot store the message");
		if (f)
			imap_folder_done(s, f, own, false);
		return;
	}
	uint32_t validity = f->uidvalidity;
	imap_folder_done(s, f, own, true);
	imap_append_abort(s);
	imap_ok(s, "[APPENDUID %" PRIu32 " %" PRIu32 "] APPEND completed", validity, newuid);
}
