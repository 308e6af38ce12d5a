/*
 * imap_server.c - the IMAP server session: its life, input, state, the
 * command table and dispatch, and the selected folder's view.
 *
 * RFC 9051 / RFC 3501: states (not authenticated, authenticated,
 * selected, logout), tagged and untagged responses, literals (RFC 7888
 * LITERAL+), the rules of 7.4.1 / 5.5 for untagged EXPUNGE (never during
 * FETCH, STORE or SEARCH; sent before the tagged reply of any other
 * command), RFC 2177 IDLE.  The grammar is proto/imap_parse.c's: a line
 * goes to the parser, a literal announced at its end is taken with
 * session_take_octets() (APPEND streams it into tmp/, imap_cmd_mbox.c),
 * and a complete command is dispatched through imap_commands.
 *
 * Sessions that select the same folder share one struct imap_folder
 * (struct imap_shared), so one session's STORE or EXPUNGE is in the
 * others' next sync; deliveries by SMTP (or any program) are seen
 * through inotify on the folder's new/ and cur/, and IDLE sessions are
 * told at once; a folder already open is taken as it is in memory by the
 * next SELECT, after the inotify events still queued (an overflowed
 * queue rescans every open folder).
 *
 * Folder work never runs on the loop (DESIGN.md invariant 2): opening and
 * scanning a folder (readdir of new/ and cur/), flag renames, expunges,
 * copies and the state file's fsync are jobs (struct imap_job) on the
 * worker pool, one at a time per folder; the tagged reply follows the
 * job's done(), so an OK still means durable where the RFCs want it.
 * While a folder is busy the sessions on it wait (no command is read,
 * FETCH pauses) and every other session goes on.
 */
#include "imap/imap_server.h"
#include "imap/imap_session.h"
#include "core/addrcount.h"
#include "core/config.h"
#include "core/listener.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/tls.h"
#include "core/util.h"
#include "core/workers.h"
#include "login/login.h"
#include "proto/imap_utf7.h"
#include "proto/imap_write.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <inttypes.h>
#include <openssl/err.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <unistd.h>

#define IMAP_LINE_MAX 16384        /* one line of a command (RFC 7162 3 asks >= 8192) */

/* Folders kept open (and watched) after their last session closed them,
 * so that the next SELECT of the same folder (a client reconnecting, a
 * second device) reads neither the state file nor the directory again. */
#define IMAP_SHARED_KEEP 16

/* A folder's cache file is rewritten whole, the folder held meanwhile
 * (10,000 messages: ~5 MB, tens of ms): at most this often while
 * sessions use it, and when the last one leaves. */
#define IMAP_CACHE_SAVE_DELAY_S 30

struct imap_server {
	struct tern *t;
	struct imap_shared *shared;
	unsigned nkept;            /* of shared, those with refs 0 */
	uint64_t closes;           /* the LRU's clock */
	int ifd;                   /* inotify, -1 if unavailable */
	struct event *iev;
	struct event *ipause;      /* iev off until this fires (imap_inotify_cb) */
};

/* After taking inotify events the loop stops listening for this long: a
 * lone delivery is heard at once, but a burst (STORE 1:* renaming 10,000
 * files on a worker: two events a file) is taken in a few reads instead
 * of waking the loop for each rename, which cost STORE more CPU than
 * the renames did. */
#define IMAP_INOTIFY_PAUSE_US 2000

static const char *const imap_state_names[] = {
	[IMAP_S_NOT_AUTH] = "not_authenticated",
	[IMAP_S_AUTH] = "authenticated",
	[IMAP_S_SELECTED] = "selected",
	[IMAP_S_LOGOUT] = "logout",
};

/* ---- logging: one function per event ---------------------------------- */

static void log_imap_connect(const struct imap_session *s)
{
	metrics_connection(s->svc);
	log_event("event=connect session=%016" PRIx64 " service=%s ip=%s", s->id, service_name(s->svc), s->ip);
}

static void log_imap_state(const struct imap_session *s, enum imap_state to)
{
	if (!log_debug_enabled())
		return;
	log_event("event=state session=%016" PRIx64 " from=%s to=%s", s->id, imap_state_names[s->state],
		  imap_state_names[to]);
}

static void log_imap_reject(const struct imap_session *s, const char *status, const char *text)
{
	char q[160];
	log_event("event=reject session=%016" PRIx64 " ip=%s command=%s status=%s reply=%s", s->id, s->ip,
		  s->cur ? s->cur->name : "-", status, log_quote(q, sizeof(q), text, strlen(text)));
}

void imap_log_error(const struct imap_session *s, const char *op, int err)
{
	log_event("event=mailbox_error session=%016" PRIx64 " user=%s op=%s error=\"%s\"", s->id,
		  s->user ? s->user : "-", op, strerror(err));
}

static void log_imap_disconnect(const struct imap_session *s)
{
	log_event("event=disconnect session=%016" PRIx64 " ip=%s user=%s fetched=%u stored=%u errors=%u", s->id,
		  s->ip, s->user ? s->user : "-", s->nfetch, s->nstore, s->sess.errors);
}

/* A folder job's end: every one with log_debug, the slow ones always
 * (a disk that takes seconds is worth a line). */
#define IMAP_JOB_SLOW_MS 500

static void log_imap_job(const struct imap_job *j, uint64_t ms)
{
	if (ms < IMAP_JOB_SLOW_MS && !log_debug_enabled() && j->err == 0)
		return;
	log_event("event=imap_job session=%016" PRIx64 " op=%s messages=%zu ms=%" PRIu64 "%s%s",
		  j->s ? j->s->id : 0, j->op, j->f ? j->f->n : 0, ms, j->err ? " error=" : "",
		  j->err ? strerror(j->err) : "");
}

static void log_imap_inotify_error(int err)
{
	log_event("event=imap_inotify_error error=\"%s\"", strerror(err));
}

/* ---- replies ----------------------------------------------------------- */

struct evbuffer *imap_out(struct imap_session *s)
{
	return conn_out(&s->conn);
}

void imap_set_state(struct imap_session *s, enum imap_state to)
{
	if (s->state == to)
		return;
	log_imap_state(s, to);
	s->state = to;
}

static void imap_vtagged(struct imap_session *s, const char *status, const char *fmt, va_list ap)
{
	char buf[1024];
	int n = vsnprintf(buf, sizeof(buf), fmt, ap);
	if (n < 0)
		buf[0] = '\0';
	evbuffer_add_printf(imap_out(s), "%s %s %s\r\n", s->tag[0] ? s->tag : "*", status, buf);
	if (status[0] != 'O')
		log_imap_reject(s, status, buf);
}

/* The tagged OK; first what the client has to learn about the folder. */
void imap_ok(struct imap_session *s, const char *fmt, ...)
{
	va_list ap;
	bool no_expunge = s->cur && !s->cur_uid &&
		(strcmp(s->cur->name, "FETCH") == 0 || strcmp(s->cur->name, "STORE") == 0 ||
		 strcmp(s->cur->name, "SEARCH") == 0);
	if (s->state == IMAP_S_SELECTED)
		imap_sync(s, !no_expunge);
	va_start(ap, fmt);
	imap_vtagged(s, "OK", fmt, ap);
	va_end(ap);
}

void imap_no(struct imap_session *s, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	imap_vtagged(s, "NO", fmt, ap);
	va_end(ap);
}

/* A client's mistake: counts toward the error limit. */
void imap_bad(struct imap_session *s, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	imap_vtagged(s, "BAD", fmt, ap);
	va_end(ap);
	if (!(s->cur && (s->cur->flags & IMAP_F_NO_ERROR_COUNT)))
		session_error(&s->sess);
}

void imap_untagged(struct imap_session *s, const char *fmt, ...)
{
	va_list ap;
	evbuffer_add(imap_out(s), "* ", 2);
	va_start(ap, fmt);
	evbuffer_add_vprintf(imap_out(s), fmt, ap);
	va_end(ap);
	evbuffer_add(imap_out(s), "\r\n", 2);
}

void imap_capability_list(struct imap_session *s, struct evbuffer *b)
{
	struct login_peer p = {
		.addr = (const struct sockaddr *)&s->peer, .ip = s->ip, .session = s->id,
		.service = service_name(s->svc), .tls = s->conn.tls,
		/* issue 9: plaintext only after TLS (or [auth] allow_plaintext),
		 * whatever the address, trusted networks and loopback included */
		.trusted = false,
	};
	evbuffer_add_printf(b, "IMAP4rev1 IMAP4rev2 LITERAL+ SASL-IR ID ENABLE IDLE NAMESPACE UNSELECT UIDPLUS"
			    " MOVE CHILDREN SPECIAL-USE LIST-EXTENDED LIST-STATUS ESEARCH MULTIAPPEND BINARY"
			    " UTF8=ACCEPT APPENDLIMIT=%" PRIu64,
			    s->t->cfg->max_message_size);
	evbuffer_add_printf(b, " CONDSTORE QRESYNC");   /* RFC 7162 */
	if (s->state == IMAP_S_NOT_AUTH) {
		if (s->t->tls && !s->conn.tls)
			evbuffer_add_printf(b, " STARTTLS");
		if (!login_plaintext_ok(s->t->login, &p)) {
			/* RFC 9051 6.2.3 / RFC 2595 3.2: no password in the clear. */
			evbuffer_add_printf(b, " LOGINDISABLED");
		} else {
			enum sasl_mech m[LOGIN_MECHS_MAX];
			size_t n = login_mechs(s->t->login, &p, m);
			for (size_t i = 0; i < n; i++)
				evbuffer_add_printf(b, " AUTH=%s", sasl_mech_name(m[i]));
		}
	}
}

/* ---- lifecycle ----------------------------------------------------------- */

static void imap_free_cb(void *arg)
{
	struct imap_session *s = arg;

	log_imap_disconnect(s);
	imap_auth_end(s);
	imap_fetch_free(s);
	imap_append_abort(s);
	imap_select_close(s);
	imap_parse_free(&s->parser);
	free(s->lit_buf);
	session_list_del(s->t, &s->link);
	addr_count_add(s->t->conn_per_ip, (struct sockaddr *)&s->peer, -1, now_unix());
	session_release(&s->sess);
	free(s->view);
	free(s->user);
	free(s->maildir);
	free(s);
}

void imap_close(struct imap_session *s, bool flush)
{
	imap_set_state(s, IMAP_S_LOGOUT);
	imap_fetch_free(s);
	conn_close(&s->conn, flush);
}

static void imap_bye_close(struct imap_session *s, const char *text)
{
	imap_untagged(s, "BYE %s", text);
	imap_close(s, true);
}

static bool imap_may_read(const struct imap_session *s)
{
	/* A job on the selected folder: the next command waits for it. */
	bool folder_free = s->sel == NULL || (!s->sel->busy && !s->sel->in_done);
	return s->state != IMAP_S_LOGOUT && !s->waiting && s->fetch == NULL && folder_free;
}

void imap_resume(struct imap_session *s)
{
	if (s->t->shutting_down && s->state != IMAP_S_LOGOUT && !s->waiting) {
		imap_bye_close(s, "Server shutting down");
		return;
	}
	if (imap_may_read(s))
		session_process(&s->sess);
}

static void imap_drained_cb(void *arg)
{
	struct imap_session *s = arg;
	if (s->fetch && imap_fetch_continue(s))
		imap_resume(s);
}

static void imap_event_cb(void *arg, short what)
{
	struct imap_session *s = arg;
	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
		imap_close(s, false);
}

static void imap_session_shutdown(struct session_link *l)
{
	struct imap_session *s = (struct imap_session *)((char *)l - offsetof(struct imap_session, link));
	if (s->waiting || s->fetch)
		return;   /* imap_resume says BYE when the work is done */
	conn_batch_begin(&s->conn);
	imap_bye_close(s, "Server shutting down");
	conn_batch_end(&s->conn);
}

static void imap_starttls_done_cb(void *arg, bool ok)
{
	struct imap_session *s = arg;

	s->waiting = false;
	if (s->state == IMAP_S_LOGOUT)
		return;
	if (!ok) {
		conn_log_tls_failed(&s->conn, ERR_get_error());
		imap_close(s, false);
	}
}

static void imap_line_cb(void *arg, char *line, size_t len, bool bare_lf);
static void imap_octets_cb(void *arg, const char *p, size_t len, bool last);

static void imap_line_too_long_cb(void *arg)
{
	struct imap_session *s = arg;

	s->cur = NULL;
	s->tag[0] = '\0';
	if (s->sasl_pending)
		imap_auth_end(s);
	imap_parse_reset(&s->parser);
	imap_append_abort(s);
	imap_bad(s, "Line too long");
}

static size_t imap_line_max_cb(void *arg)
{
	return IMAP_LINE_MAX;
}

static bool imap_ready_cb(void *arg)
{
	return imap_may_read(arg);
}

static const char *imap_state_name_cb(void *arg)
{
	return imap_state_names[((struct imap_session *)arg)->state];
}

static void imap_close_cb(void *arg, bool flush)
{
	imap_close(arg, flush);
}

static const struct session_ops imap_session_ops = {
	.line = imap_line_cb,
	.line_too_long = imap_line_too_long_cb,
	.line_max = imap_line_max_cb,
	.octets = imap_octets_cb,
	.ready = imap_ready_cb,
	.state_name = imap_state_name_cb,
	.close = imap_close_cb,
	.drained = imap_drained_cb,
	.event = imap_event_cb,
	.starttls_done = imap_starttls_done_cb,
	.free = imap_free_cb,
	.timeout_text = "* BYE Autologout; idle for too long",
	.command_timeout_text = "* BYE Command line not completed in time",
	.errors_text = "* BYE Too many errors, closing connection",
};

static void imap_parser_setup(struct imap_session *s)
{
	struct imap_parse_opts o = { .literal_plus = true, .utf8 = s->utf8 };
	imap_parse_free(&s->parser);
	imap_parse_init(&s->parser, &o);
}

void imap_server_accept(struct tern *t, evutil_socket_t fd, const struct sockaddr *sa, socklen_t len,
			enum service svc)
{
	struct imap_session *s = xcalloc(1, sizeof(*s));
	const struct config *cfg = t->cfg;
	unsigned per_ip;

	s->t = t;
	s->svc = svc;
	s->id = tern_session_id(t);
	s->append_fd = -1;
	memcpy(&s->peer, sa, len < sizeof(s->peer) ? len : sizeof(s->peer));
	listener_format_ip(sa, s->ip, sizeof(s->ip));
	s->link.shutdown = imap_session_shutdown;
	session_list_add(t, &s->link);
	per_ip = addr_count_add(t->conn_per_ip, sa, 1, now_unix());
	s->state = IMAP_S_NOT_AUTH;
	s->trusted = cidr_list_match(&cfg->trusted_networks, sa);
	{
		struct imap_parse_opts o = { .literal_plus = true };
		imap_parse_init(&s->parser, &o);
	}
	log_imap_connect(s);
	session_init(&s->sess, &s->conn, t->base, fd, &imap_session_ops, s, s->id, s->ip);
	s->sess.max_errors = cfg->max_errors;
	session_set_timeouts(&s->sess, cfg->imap_timeout, cfg->imap_command_timeout);
	if (svc == SERVICE_IMAPS) {
		SSL *ssl = t->tls ? tls_ctx_new_ssl(t->tls) : NULL;
		if (ssl == NULL || !conn_start_tls(&s->conn, ssl)) {
			conn_log_tls_failed(&s->conn, ERR_get_error());
			imap_close(s, false);
			return;
		}
	}
	if (t->nsessions > cfg->max_connections || !tern_fd_room(t, fd)) {
		imap_bye_close(s, "Too many connections, try again later");
		return;
	}
	if (per_ip > cfg->max_connections_per_ip) {
		imap_bye_close(s, "Too many connections from your address, try again later");
		return;
	}
	session_start(&s->sess);
	evbuffer_add_printf(imap_out(s), "* OK [CAPABILITY ");
	imap_capability_list(s, imap_out(s));
	evbuffer_add_printf(imap_out(s), "] tern IMAP server ready\r\n");
	conn_push(&s->conn);
}

/* ---- the command table and dispatch -------------------------------------------- */

static const struct imap_command imap_commands[] = {
	{ "CAPABILITY", imap_cmd_capability, IMAP_F_ANY },
	{ "NOOP", imap_cmd_noop, IMAP_F_ANY },
	{ "LOGOUT", imap_cmd_logout, IMAP_F_ANY },
	{ "ID", imap_cmd_id, IMAP_F_ANY },
	{ "STARTTLS", imap_cmd_starttls, IMAP_F_NOT_AUTH },
	{ "LOGIN", imap_cmd_login, IMAP_F_NOT_AUTH | IMAP_F_NO_ERROR_COUNT },
	{ "AUTHENTICATE", imap_cmd_authenticate, IMAP_F_NOT_AUTH | IMAP_F_NO_ERROR_COUNT },
	{ "ENABLE", imap_cmd_enable, IMAP_F_LOGGED },
	{ "NAMESPACE", imap_cmd_namespace, IMAP_F_LOGGED },
	{ "SELECT", imap_cmd_select, IMAP_F_LOGGED },
	{ "EXAMINE", imap_cmd_examine, IMAP_F_LOGGED },
	{ "LIST", imap_cmd_list, IMAP_F_LOGGED },
	{ "LSUB", imap_cmd_lsub, IMAP_F_LOGGED },
	{ "STATUS", imap_cmd_status, IMAP_F_LOGGED },
	{ "CREATE", imap_cmd_create, IMAP_F_LOGGED },
	{ "DELETE", imap_cmd_delete, IMAP_F_LOGGED },
	{ "RENAME", imap_cmd_rename, IMAP_F_LOGGED },
	{ "SUBSCRIBE", imap_cmd_subscribe, IMAP_F_LOGGED },
	{ "UNSUBSCRIBE", imap_cmd_unsubscribe, IMAP_F_LOGGED },
	{ "APPEND", imap_cmd_append, IMAP_F_LOGGED },
	{ "IDLE", imap_cmd_idle, IMAP_F_LOGGED },
	{ "CHECK", imap_cmd_check, IMAP_F_SELECTED },
	{ "CLOSE", imap_cmd_close, IMAP_F_SELECTED },
	{ "UNSELECT", imap_cmd_unselect, IMAP_F_SELECTED },
	{ "EXPUNGE", imap_cmd_expunge, IMAP_F_SELECTED | IMAP_F_UID },
	{ "FETCH", imap_cmd_fetch, IMAP_F_SELECTED | IMAP_F_UID },
	{ "STORE", imap_cmd_store, IMAP_F_SELECTED | IMAP_F_UID },
	{ "COPY", imap_cmd_copy, IMAP_F_SELECTED | IMAP_F_UID },
	{ "MOVE", imap_cmd_move, IMAP_F_SELECTED | IMAP_F_UID },
	{ "SEARCH", imap_cmd_search, IMAP_F_SELECTED | IMAP_F_UID },
};

static const struct imap_command *imap_command_find(const char *name)
{
	for (size_t i = 0; i < ARRAY_LEN(imap_commands); i++)
		if (strcasecmp(imap_commands[i].name, name) == 0)
			return &imap_commands[i];
	return NULL;
}

static unsigned imap_state_flag(const struct imap_session *s)
{
	switch (s->state) {
	case IMAP_S_NOT_AUTH: return IMAP_F_NOT_AUTH;
	case IMAP_S_AUTH: return IMAP_F_AUTH;
	case IMAP_S_SELECTED: return IMAP_F_SELECTED;
	default: return 0;
	}
}

static void imap_dispatch(struct imap_session *s)
{
	static const struct imap_command unknown = { "unknown", NULL, 0 };
	const struct imap_arg *args = s->parser.args;
	const struct imap_command *c = imap_command_find(s->parser.name);
	bool uid = false;

	s->cur = &unknown;
	s->cur_uid = false;
	if (c == NULL && strcmp(s->parser.name, "UID") == 0) {
		if (args == NULL || args->type != IMAP_ARG_ATOM || (c = imap_command_find(args->s)) == NULL ||
		    !(c->flags & IMAP_F_UID)) {
			imap_bad(s, "Unknown UID command");
			return;
		}
		uid = true;
		args = args->next;
	}
	if (c == NULL) {
		imap_bad(s, "Unknown command");
		return;
	}
	s->cur = c;
	s->cur_uid = uid;
	if (!(c->flags & imap_state_flag(s))) {
		imap_bad(s, "%s not allowed %s", c->name,
			 s->state == IMAP_S_NOT_AUTH ? "before login" : s->state == IMAP_S_AUTH ?
			 "without a selected mailbox" : "after login");
		return;
	}
	c->fn(s, args, uid);
}

/* ---- input: lines, literals --------------------------------------------------- */

static void imap_parse_failed(struct imap_session *s)
{
	enum imap_parse_err e = s->parser.err;

	s->cur = NULL;
	if (s->parser.have_tag)
		snprintf(s->tag, sizeof(s->tag), "%s", s->parser.tag);
	else
		s->tag[0] = '\0';
	imap_append_abort(s);
	if (e == IMAP_ERR_EMPTY)
		imap_bad(s, "Empty command line");
	else
		imap_bad(s, "%s", imap_parse_strerror(e));
	imap_parse_reset(&s->parser);
}

/* A literal announced at the end of a line: say go on (or not) and take it. */
static void imap_literal(struct imap_session *s)
{
	const struct imap_literal_info *li = &s->parser.lit;

	if (s->parser.have_tag)
		snprintf(s->tag, sizeof(s->tag), "%s", s->parser.tag);
	if (s->parser.have_name && strcmp(s->parser.name, "APPEND") == 0 && s->state != IMAP_S_NOT_AUTH) {
		static const struct imap_command append = { "APPEND", NULL, 0 };
		s->cur = &append;
		if (!imap_append_begin(s, li->size, li->sync)) {
			/* Answered before any octet (RFC 7889 TOOBIG); a
			 * non-synchronizing one comes anyway: drop it. */
			if (!li->sync && li->size > 0) {
				s->lit_discard = true;
				session_take_octets(&s->sess, li->size);
			} else {
				imap_parse_reset(&s->parser);
			}
			return;
		}
	} else if (!s->parser.lit_fits) {
		s->cur = NULL;
		imap_bad(s, "Literal too big");
		if (!li->sync && li->size > 0) {
			s->lit_discard = true;
			session_take_octets(&s->sess, li->size);
		} else {
			imap_parse_reset(&s->parser);
		}
		return;
	} else {
		free(s->lit_buf);
		s->lit_buf = xmalloc((size_t)li->size + 1);
		s->lit_len = 0;
	}
	if (li->sync)
		evbuffer_add_printf(imap_out(s), "+ Ready for literal data\r\n");
	if (li->size == 0)
		imap_octets_cb(s, "", 0, true);
	else
		session_take_octets(&s->sess, li->size);
}

static void imap_octets_cb(void *arg, const char *p, size_t len, bool last)
{
	struct imap_session *s = arg;
	enum imap_parse_result r;

	if (s->lit_discard) {
		if (last) {
			s->lit_discard = false;
			/* The rest of the command line follows: dropped as a new,
			 * broken command would be, so the parser starts afresh. */
			imap_parse_reset(&s->parser);
			s->tag[0] = '\0';
		}
		return;
	}
	if (s->append_fd >= 0 || s->append_discard) {
		imap_append_octets(s, p, len);
		if (!last)
			return;
		r = imap_parse_literal_streamed(&s->parser);
	} else {
		memcpy(s->lit_buf + s->lit_len, p, len);
		s->lit_len += len;
		if (!last)
			return;
		r = imap_parse_literal(&s->parser, s->lit_buf, s->lit_len);
		free(s->lit_buf);
		s->lit_buf = NULL;
	}
	if (r == IMAP_PARSE_ERROR)
		imap_parse_failed(s);
}

static void imap_line_cb(void *arg, char *line, size_t len, bool bare_lf)
{
	struct imap_session *s = arg;
	enum imap_parse_result r;

	if (s->idling) {
		s->idling = false;
		if (len == 4 && strncasecmp(line, "DONE", 4) == 0)
			imap_ok(s, "IDLE terminated");
		else
			imap_bad(s, "Expected DONE");
		return;
	}
	if (s->sasl_pending) {
		imap_auth_continue(s, line, len);
		return;
	}
	if (s->lit_discard)
		return;
	r = imap_parse_line(&s->parser, line, len);
	switch (r) {
	case IMAP_PARSE_DONE:
		snprintf(s->tag, sizeof(s->tag), "%s", s->parser.tag);
		imap_dispatch(s);
		if (s->hold_args)
			break;   /* a job reads the arguments: imap_release_args() */
		imap_parse_reset(&s->parser);
		if (s->utf8 != s->parser.opts.utf8 && !s->waiting)
			imap_parser_setup(s);
		break;
	case IMAP_PARSE_LITERAL:
		imap_literal(s);
		break;
	case IMAP_PARSE_ERROR:
		imap_parse_failed(s);
		break;
	case IMAP_PARSE_NEED_LINE:
		break;
	}
}

void imap_release_args(struct imap_session *s)
{
	s->hold_args = false;
	imap_parse_reset(&s->parser);
	if (s->utf8 != s->parser.opts.utf8)
		imap_parser_setup(s);
}

/* ---- shared folders and inotify -------------------------------------------- */

static void imap_inotify_cb(evutil_socket_t fd, short what, void *arg);
static void imap_inotify_resume_cb(evutil_socket_t fd, short what, void *arg);
static void imap_inotify_drain(struct imap_server *is);
static void imap_inotify_take(struct imap_server *is, const struct imap_shared *except);
static void imap_shared_drop(struct imap_server *is, struct imap_shared *sh, bool kept);
static void imap_shared_scan(struct imap_server *is, struct imap_shared *sh);
static void imap_job_done_cb(void *arg);

struct imap_server *imap_server_new(struct tern *t)
{
	struct imap_server *is = xcalloc(1, sizeof(*is));
	is->t = t;
	is->ifd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (is->ifd < 0) {
		log_imap_inotify_error(errno);
	} else {
		is->iev = event_new(t->base, is->ifd, EV_READ | EV_PERSIST, imap_inotify_cb, is);
		is->ipause = evtimer_new(t->base, imap_inotify_resume_cb, is);
		event_add(is->iev, NULL);
	}
	return is;
}

void imap_server_free(struct imap_server *is)
{
	if (is == NULL)
		return;
	/* The workers have finished (their done()s ran): what is left is
	 * saved here, the loop no longer serving anyone. */
	while (is->shared) {
		struct imap_shared *sh = is->shared;
		is->shared = sh->next;
		if (sh->f) {
			imap_folder_save(sh->f);
			if (sh->f->cache_dirty)
				imap_cache_save(sh->f);
		}
		if (sh->cache_ev)
			event_free(sh->cache_ev);
		imap_folder_free(sh->f);
		free(sh->path);
		free(sh);
	}
	if (is->iev)
		event_free(is->iev);
	if (is->ipause)
		event_free(is->ipause);
	if (is->ifd >= 0)
		close(is->ifd);
	free(is);
}

static void imap_shared_notify(struct imap_shared *sh, const struct imap_session *except)
{
	for (struct imap_session *o = sh->sessions; o; o = o->sel_next) {
		if (o == except || !o->idling || o->state != IMAP_S_SELECTED)
			continue;
		conn_ref(&o->conn);
		conn_batch_begin(&o->conn);
		imap_sync(o, true);
		conn_batch_end(&o->conn);
		conn_unref(&o->conn);
	}
}

/* ---- folder jobs -------------------------------------------------------------- */

static struct imap_shared *imap_shared_get(struct imap_server *is, const char *path)
{
	struct imap_shared *sh;

	imap_inotify_take(is, NULL);   /* a removed directory's watch is gone with it */
	for (sh = is->shared; sh; sh = sh->next)
		if (strcmp(sh->path, path) == 0)
			break;
	if (sh && sh->refs == 0 && (sh->wd_new < 0 || sh->wd_cur < 0)) {
		/* kept, but its directory is not the one watched any more */
		imap_shared_drop(is, sh, true);
		sh = NULL;
	}
	if (sh) {
		if (sh->refs++ == 0)
			is->nkept--;   /* kept since its last use: in use again */
		return sh;
	}
	sh = xcalloc(1, sizeof(*sh));
	sh->is = is;
	sh->path = xstrdup(path);
	sh->wd_new = sh->wd_cur = -1;
	sh->dirty = true;
	sh->refs = 1;
	sh->next = is->shared;
	is->shared = sh;
	return sh;
}

static void imap_shared_unwatch(struct imap_server *is, struct imap_shared *sh)
{
	if (is->ifd < 0)
		return;
	if (sh->wd_new >= 0)
		inotify_rm_watch(is->ifd, sh->wd_new);
	if (sh->wd_cur >= 0 && sh->wd_cur != sh->wd_new)
		inotify_rm_watch(is->ifd, sh->wd_cur);
	sh->wd_new = sh->wd_cur = -1;
}

static void imap_job_save_work(struct imap_job *j)
{
	if (j->f && !imap_folder_save(j->f))
		j->err = errno;
	if (j->f && j->f->cache_dirty && !imap_cache_save(j->f))
		j->err = errno;
}

static void imap_cache_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct imap_shared *sh = arg;
	struct imap_job *j;

	/* refs 0: the last session's release has saved it (imap_shared_put) */
	if (sh->refs == 0)
		return;
	j = xcalloc(1, sizeof(*j));
	j->t = sh->is->t;
	j->sh = sh;
	sh->refs++;
	j->op = "cache";
	j->work = imap_job_save_work;   /* the worker looks whether it is still behind */
	imap_job_submit(j);
}

void imap_cache_save_later(struct imap_session *s)
{
	struct imap_shared *sh = s->sel;
	struct timeval tv = { IMAP_CACHE_SAVE_DELAY_S, 0 };

	if (sh->cache_ev == NULL)
		sh->cache_ev = evtimer_new(s->t->base, imap_cache_timer_cb, sh);
	if (sh->cache_ev && !evtimer_pending(sh->cache_ev, NULL))
		evtimer_add(sh->cache_ev, &tv);
}

/* An entry nobody uses goes: unwatched, freed (its state was saved). */
static void imap_shared_drop(struct imap_server *is, struct imap_shared *sh, bool kept)
{
	for (struct imap_shared **pp = &is->shared; *pp; pp = &(*pp)->next)
		if (*pp == sh) {
			*pp = sh->next;
			break;
		}
	if (kept)
		is->nkept--;
	if (sh->cache_ev)
		event_free(sh->cache_ev);
	imap_shared_unwatch(is, sh);
	imap_folder_free(sh->f);
	free(sh->path);
	free(sh);
}

void imap_shared_forget(struct imap_session *s)
{
	struct imap_server *is = s->t->imap;
	size_t len = strlen(s->maildir);

	for (struct imap_shared *sh = is->shared, *next; sh; sh = next) {
		next = sh->next;
		if (sh->refs == 0 && strncmp(sh->path, s->maildir, len) == 0)
			imap_shared_drop(is, sh, true);
	}
}

/* The last user has gone: a state still to save is saved by a job (the
 * entry stays reserved until then); then the folder is kept, open and
 * watched, for the next SELECT (the least recently used goes past
 * IMAP_SHARED_KEEP), or, without inotify to tell it is out of date,
 * dropped. */
static void imap_shared_put(struct imap_server *is, struct imap_shared *sh)
{
	if (--sh->refs > 0)
		return;
	if (sh->f && (sh->f->dirty || sh->f->cache_dirty) && !sh->save_failed) {
		struct imap_job *j = xcalloc(1, sizeof(*j));
		j->t = is->t;
		j->sh = sh;
		sh->refs++;
		j->op = "save";
		j->work = imap_job_save_work;
		imap_job_submit(j);
		return;
	}
	if (sh->f == NULL || sh->save_failed || is->ifd < 0 || sh->wd_new < 0 || sh->wd_cur < 0) {
		imap_shared_drop(is, sh, false);
		return;
	}
	sh->closed_at = ++is->closes;
	if (++is->nkept > IMAP_SHARED_KEEP) {
		struct imap_shared *old = NULL;
		for (struct imap_shared *o = is->shared; o; o = o->next)
			if (o->refs == 0 && (old == NULL || o->closed_at < old->closed_at))
				old = o;
		imap_shared_drop(is, old, true);
	}
}

static void imap_job_work_cb(void *arg)
{
	struct imap_job *j = arg;
	struct imap_shared *sh = j->sh;

	if (sh && !j->raw) {
		if (sh->f == NULL) {
			/* open scans */
			if ((sh->f = imap_folder_open(sh->path)) == NULL)
				j->err = errno;
		} else if (j->scan && !imap_folder_scan(sh->f, &j->changed)) {
			j->err = errno;
		}
		j->f = sh->f;
	}
	if (j->work)
		j->work(j);
}

/* inotify on the folder's new/ and cur/; true when both are watched. */
static bool imap_shared_watch(struct imap_server *is, struct imap_shared *sh)
{
	uint32_t mask = IN_CREATE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE;
	char *n, *c;

	if (is->ifd < 0)
		return false;
	n = xasprintf("%s/new", sh->path);
	c = xasprintf("%s/cur", sh->path);
	sh->wd_new = inotify_add_watch(is->ifd, n, mask);
	sh->wd_cur = inotify_add_watch(is->ifd, c, mask);
	free(n);
	free(c);
	return sh->wd_new >= 0 && sh->wd_cur >= 0;
}

static void imap_job_start(struct imap_job *j)
{
	struct imap_shared *sh = j->sh;

	if (sh) {
		/* A SELECT opening the folder: watched before its scan, so
		 * what changes during the scan makes it dirty, and a folder
		 * nobody changed is not read a second time right after. */
		if (j->fresh && sh->f == NULL && (sh->wd_new < 0 || sh->wd_cur < 0))
			imap_shared_watch(j->t->imap, sh);
		if (j->quiet_cur && sh->wd_cur >= 0 && sh->wd_cur != sh->wd_new) {
			inotify_rm_watch(j->t->imap->ifd, sh->wd_cur);
			sh->wd_cur = -1;
			j->unwatched = true;
		}
		sh->busy = true;
		if (j->fresh) {
			/* A folder open and watched is up to date but for the
			 * events still queued: take those, scan only if they say
			 * so (the second device to open INBOX does not read
			 * 10,000 names again).  Without watches, a fresh look. */
			imap_inotify_take(j->t->imap, sh);
			if (sh->wd_new < 0 || sh->wd_cur < 0)
				j->scan = true;
		}
		/* The directory changed since the last scan: this job looks. */
		if (!j->raw) {
			j->scan |= sh->dirty || sh->f == NULL;
			sh->dirty = false;
		}
	}
	j->started_ms = now_ms_monotonic();
	workers_submit(j->t->delivery_pool, imap_job_work_cb, imap_job_done_cb, j);
}

/* The folder is free again: its sessions go on (IDLE ones hear what
 * changed, a paused FETCH streams on, the next command is read).  Each
 * may leave the folder meanwhile, so the list is copied first. */
static void imap_shared_wake(struct imap_shared *sh)
{
	struct imap_session **v;
	size_t n = 0, i = 0;

	for (struct imap_session *o = sh->sessions; o; o = o->sel_next)
		n++;
	if (n == 0)
		return;
	v = xcalloc(n, sizeof(*v));
	for (struct imap_session *o = sh->sessions; o; o = o->sel_next) {
		conn_ref(&o->conn);
		v[i++] = o;
	}
	for (i = 0; i < n; i++) {
		struct imap_session *o = v[i];
		if (o->sel == sh && o->state == IMAP_S_SELECTED && !sh->busy && !sh->in_done) {
			conn_batch_begin(&o->conn);
			if (o->idling)
				imap_sync(o, true);   /* then a DONE that came meanwhile */
			if (o->fetch && !o->waiting) {
				if (imap_fetch_continue(o))
					imap_resume(o);
			} else {
				imap_resume(o);
			}
			conn_batch_end(&o->conn);
		}
		conn_unref(&o->conn);
	}
	free(v);
}

static void imap_job_scan_work(struct imap_job *j)
{
}

/* A look at the directory for the sessions on the folder (it is free). */
static void imap_shared_scan(struct imap_server *is, struct imap_shared *sh)
{
	struct imap_job *j = xcalloc(1, sizeof(*j));

	j->t = is->t;
	j->sh = sh;
	sh->refs++;
	j->op = "scan";
	j->work = imap_job_scan_work;
	imap_job_start(j);
}

/* After a job: the next queued one; else the sessions go on, and then,
 * if the directory changed meanwhile and none of them started a job
 * (which would look), a scan.  The sessions go first so that mail
 * arriving all the time cannot keep them waiting behind scan after scan. */
static void imap_shared_next(struct imap_server *is, struct imap_shared *sh)
{
	struct imap_job *j = sh->queue;

	if (j) {
		sh->queue = j->next;
		if (sh->queue == NULL)
			sh->queue_tail = NULL;
		imap_job_start(j);
		return;
	}
	sh->refs++;   /* the wake may let the last session go */
	imap_shared_wake(sh);
	if (sh->dirty && sh->sessions && !sh->busy && !sh->in_done && !sh->queue)
		imap_shared_scan(is, sh);
	imap_shared_put(is, sh);
}

static void imap_job_done_cb(void *arg)
{
	struct imap_job *j = arg;
	struct imap_session *s = j->s;
	struct imap_shared *sh = j->sh;
	struct imap_server *is = j->t->imap;

	log_imap_job(j, now_ms_monotonic() - j->started_ms);
	if (sh && j->unwatched && imap_shared_watch(is, sh))
		sh->dirty = true;   /* what others did in cur/ meanwhile: a scan follows */
	if (sh) {
		sh->busy = false;
		sh->in_done = true;
		/* a failed last save is not tried again and again */
		sh->save_failed = j->work == imap_job_save_work && j->err != 0;
	}
	if (s) {
		/* done() always runs (it frees j->arg); it answers unless the
		 * session has closed meanwhile (j->gone). */
		conn_batch_begin(&s->conn);
		s->waiting = false;
		j->gone = s->state == IMAP_S_LOGOUT;
		if (j->done)
			j->done(j);
		conn_batch_end(&s->conn);
	} else if (j->done) {
		j->done(j);
	}
	if (sh) {
		sh->in_done = false;
		if (j->changed)
			imap_shared_notify(sh, NULL);
		imap_shared_next(is, sh);
		imap_shared_put(is, sh);
	}
	if (s) {
		imap_resume(s);
		conn_unref(&s->conn);
	}
	free(j);
}

struct imap_job *imap_job_new(struct imap_session *s, const char *path, const char *op, imap_job_fn work,
			      imap_job_fn done)
{
	struct imap_job *j = xcalloc(1, sizeof(*j));

	j->t = s->t;
	j->s = s;
	j->op = op;
	j->work = work;
	j->done = done;
	if (path)
		j->sh = imap_shared_get(s->t->imap, path);
	return j;
}

void imap_job_submit(struct imap_job *j)
{
	struct imap_shared *sh = j->sh;

	if (j->s) {
		/* no further command until done() */
		j->s->waiting = true;
		conn_ref(&j->s->conn);
	}
	if (sh && (sh->busy || sh->in_done || sh->queue)) {
		if (sh->queue_tail)
			sh->queue_tail->next = j;
		else
			sh->queue = j;
		sh->queue_tail = j;
		return;
	}
	imap_job_start(j);
}

/* The events queued so far: the folders they touch are to be scanned
 * (all of them when the queue overflowed and events were lost). */
static void imap_inotify_drain(struct imap_server *is)
{
	char buf[8192] __attribute__((aligned(__alignof__(struct inotify_event))));
	ssize_t r;

	if (is->ifd < 0)
		return;
	while ((r = read(is->ifd, buf, sizeof(buf))) > 0) {
		for (char *p = buf; p < buf + r;) {
			const struct inotify_event *ev = (const struct inotify_event *)p;
			for (struct imap_shared *sh = is->shared; sh; sh = sh->next) {
				if (ev->wd == sh->wd_new || ev->wd == sh->wd_cur || (ev->mask & IN_Q_OVERFLOW))
					sh->dirty = true;
				/* the directory went (removed by another program):
				 * its watch with it */
				if ((ev->mask & IN_IGNORED) && ev->wd == sh->wd_new)
					sh->wd_new = -1;
				if ((ev->mask & IN_IGNORED) && ev->wd == sh->wd_cur)
					sh->wd_cur = -1;
			}
			p += sizeof(*ev) + ev->len;
		}
	}
}

/* The events queued so far, and scans (on workers) of the folders they
 * changed that sessions have open, except the one of the caller's job:
 * IDLE sessions hear when the scan ends. */
static void imap_inotify_take(struct imap_server *is, const struct imap_shared *except)
{
	imap_inotify_drain(is);
	for (struct imap_shared *sh = is->shared; sh; sh = sh->next)
		if (sh != except && sh->dirty && sh->sessions && !sh->busy && !sh->in_done && !sh->queue)
			imap_shared_scan(is, sh);
}

static void imap_inotify_cb(evutil_socket_t fd, short what, void *arg)
{
	struct imap_server *is = arg;
	struct timeval tv = { 0, IMAP_INOTIFY_PAUSE_US };

	imap_inotify_take(is, NULL);
	event_del(is->iev);
	evtimer_add(is->ipause, &tv);
}

/* Listening again: events queued meanwhile make iev fire at once. */
static void imap_inotify_resume_cb(evutil_socket_t fd, short what, void *arg)
{
	struct imap_server *is = arg;
	event_add(is->iev, NULL);
}

struct imap_folder *imap_folder(struct imap_session *s)
{
	return s->sel->f;
}

static uint32_t readonly_peek(struct imap_session *s, struct imap_folder *f)
{
	return s->readonly ? f->first_recent : imap_folder_take_recent(f);
}

static void imap_view_reset(struct imap_session *s)
{
	struct imap_folder *f = s->sel->f;
	s->nview = 0;
	if (s->capview < f->n) {
		s->capview = f->n + 64;
		s->view = xrealloc(s->view, s->capview * sizeof(*s->view));
	}
	for (size_t i = 0; i < f->n; i++) {
		s->view[i] = (struct imap_view_msg){ f->v[i].uid, f->v[i].flags, f->v[i].kw, false, false };
	}
	s->nview = f->n;
	/* \Recent: a read-write session takes them, EXAMINE only looks
	 * (RFC 3501 6.3.2) */
	uint32_t from = readonly_peek(s, f);
	s->nrecent = 0;
	for (size_t i = 0; i < s->nview; i++) {
		s->view[i].recent = s->view[i].uid >= from;
		s->nrecent += s->view[i].recent;
	}
	s->nrecent_told = s->nrecent;   /* SELECT says it */
	s->ngone = 0;
	s->sync_modseq = f->modseq;
}

void imap_select_attach(struct imap_session *s, struct imap_job *j, bool readonly)
{
	struct imap_server *is = s->t->imap;
	struct imap_shared *sh = j->sh;

	imap_select_close(s);
	sh->refs++;
	if ((sh->wd_new < 0 || sh->wd_cur < 0) && imap_shared_watch(is, sh)) {
		/* what came between the job's scan and the watches: a scan
		 * follows this job (imap_shared_next) */
		sh->dirty = true;
	}
	s->sel = sh;
	s->sel_next = sh->sessions;
	sh->sessions = s;
	s->readonly = readonly;
	imap_view_reset(s);
}

void imap_select_close(struct imap_session *s)
{
	struct imap_shared *sh = s->sel;

	if (sh == NULL)
		return;
	for (struct imap_session **q = &sh->sessions; *q; q = &(*q)->sel_next)
		if (*q == s) {
			*q = s->sel_next;
			break;
		}
	s->sel = NULL;
	s->nview = 0;
	s->idling = false;
	imap_shared_put(s->t->imap, sh);   /* kept, watched, for the next SELECT */
}

size_t imap_view_recent(const struct imap_session *s)
{
	return s->nrecent;
}

long imap_view_index(struct imap_session *s, size_t i)
{
	if (s->view[i].gone)
		return -1;
	return imap_folder_find(s->sel->f, s->view[i].uid);
}

void imap_write_msg_flags(struct imap_session *s, struct evbuffer *b, unsigned flags, uint32_t kw)
{
	const char *kws[IMAP_FOLDER_KW_MAX];
	size_t n = 0;
	struct imap_folder *f = s->sel->f;
	for (size_t k = 0; k < f->nkw; k++)
		if (kw & (1u << k))
			kws[n++] = f->kw[k];
	imap_write_flags(b, flags, kws, n);
}

/* A message new to the view; the first read-write session to hear of
 * it has it \Recent. */
static void imap_view_push(struct imap_session *s, struct imap_folder *f, const struct imap_msg *m)
{
	struct imap_view_msg *v;

	if (s->nview == s->capview) {
		s->capview = s->capview ? 2 * s->capview : 64;
		s->view = xrealloc(s->view, s->capview * sizeof(*s->view));
	}
	v = &s->view[s->nview++];
	*v = (struct imap_view_msg){ m->uid, m->flags, m->kw, false, false };
	if (v->uid >= f->first_recent) {
		v->recent = true;
		s->nrecent++;
		if (!s->readonly) {
			f->first_recent = v->uid + 1;
			f->dirty = true;
		}
	}
}

static void imap_view_grew(struct imap_session *s, size_t n0)
{
	if (s->nview == n0)
		return;
	imap_untagged(s, "%zu EXISTS", s->nview);
	if (!s->rev2 && s->nrecent != s->nrecent_told) {
		/* RFC 3501 7.3.2, when the count changed */
		imap_untagged(s, "%zu RECENT", s->nrecent);
		s->nrecent_told = s->nrecent;
	}
}

/* The common case without comparing every message: nothing changed, or
 * only new messages came (a delivery to a folder 1000 IDLE sessions
 * watch).  Every change bumps the folder's modseq by one (an added
 * message, a flag change, an expunge), so when it grew by exactly the
 * number of messages past the view's last UID, and the messages up to
 * that UID are as many as the view holds (UIDs only grow, so those are
 * the view's own), nothing else happened.  False: compare them all. */
static bool imap_sync_quick(struct imap_session *s, struct imap_folder *f)
{
	uint32_t last = s->nview ? s->view[s->nview - 1].uid : 0;
	size_t lo = 0, hi = f->n, n0 = s->nview;

	if (s->ngone)
		return false;
	while (lo < hi) {   /* the first message past last */
		size_t mid = lo + (hi - lo) / 2;
		if (f->v[mid].uid <= last)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo != s->nview || f->modseq < s->sync_modseq || f->modseq - s->sync_modseq != f->n - lo)
		return false;
	for (size_t k = lo; k < f->n; k++)
		imap_view_push(s, f, &f->v[k]);
	imap_view_grew(s, n0);
	s->sync_modseq = f->modseq;
	return true;
}

/* RFC 9051 7.4.1 and 5.5: what changed since the client last heard.
 * With CONDSTORE the FETCHes carry MODSEQ (RFC 7162 3.1.2), with QRESYNC
 * the expunged are told as VANISHED UIDs instead of EXPUNGE (3.2.10). */
void imap_sync(struct imap_session *s, bool expunge)
{
	struct imap_folder *f;
	size_t o = 0, n0;
	uint32_t last, *gone = NULL;
	size_t ngone = 0;

	if (s->sel == NULL || s->sel->busy)
		return;   /* a job has the folder: the next sync tells */
	f = imap_folder(s);
	if (imap_sync_quick(s, f))
		return;
	s->ngone = 0;
	for (size_t i = 0; i < s->nview; i++) {
		struct imap_view_msg *v = &s->view[i];
		long k = v->gone ? -1 : imap_folder_find(f, v->uid);
		if (k < 0) {
			v->gone = true;
			if (expunge) {
				s->nrecent -= v->recent;
				if (!s->qresync) {
					imap_untagged(s, "%zu EXPUNGE", o + 1);
				} else {
					if (gone == NULL)
						gone = xcalloc(s->nview, sizeof(*gone));
					gone[ngone++] = v->uid;
				}
				continue;
			}
			s->ngone++;
		} else if (f->v[k].flags != v->flags || f->v[k].kw != v->kw) {
			v->flags = f->v[k].flags;
			v->kw = f->v[k].kw;
			evbuffer_add_printf(imap_out(s), "* %zu FETCH (UID %" PRIu32 " FLAGS ", o + 1, v->uid);
			imap_write_msg_flags(s, imap_out(s), v->flags | (v->recent ? IMAP_FLAG_RECENT : 0), v->kw);
			if (s->condstore)
				evbuffer_add_printf(imap_out(s), " MODSEQ (%" PRIu64 ")", f->v[k].modseq);
			evbuffer_add(imap_out(s), ")\r\n", 3);
		}
		s->view[o++] = *v;
	}
	s->nview = o;
	if (ngone) {
		evbuffer_add_printf(imap_out(s), "* VANISHED ");
		imap_write_seqset(imap_out(s), gone, ngone);
		evbuffer_add(imap_out(s), "\r\n", 2);
	}
	free(gone);
	n0 = s->nview;
	last = 0;
	for (size_t i = s->nview; i > 0; i--)
		if (s->view[i - 1].uid) {
			last = s->view[i - 1].uid;
			break;
		}
	for (size_t k = 0; k < f->n; k++)
		if (f->v[k].uid > last)
			imap_view_push(s, f, &f->v[k]);
	imap_view_grew(s, n0);
	s->sync_modseq = f->modseq;
}

/* RFC 7162 3.2.5.1, 3.2.6: "* VANISHED (EARLIER) uids" for the UIDs that
 * went after modseq and are in set (NULL: any), above known. */
void imap_vanished_earlier(struct imap_session *s, const struct imap_folder *f, uint64_t modseq,
			   const struct imap_seqset *set, uint32_t known)
{
	struct imap_seq_range *r;
	size_t n = imap_folder_vanished(f, modseq, set, known, &r);

	if (n) {
		evbuffer_add_printf(imap_out(s), "* VANISHED (EARLIER) ");
		for (size_t i = 0; i < n; i++) {
			evbuffer_add_printf(imap_out(s), i ? ",%" PRIu32 : "%" PRIu32, r[i].lo);
			if (r[i].hi != r[i].lo)
				evbuffer_add_printf(imap_out(s), ":%" PRIu32, r[i].hi);
		}
		evbuffer_add(imap_out(s), "\r\n", 2);
	}
	free(r);
}

bool imap_seq_resolve(struct imap_session *s, const struct imap_arg *a, bool uid, size_t **idx, size_t *n)
{
	struct imap_seqset set;
	uint32_t star;

	*idx = NULL;
	*n = 0;
	if (a == NULL || a->type != IMAP_ARG_ATOM ||
	    imap_seqset_parse(a->s, a->len, &s->parser.arena, &set) != IMAP_SEQ_OK || set.searchres) {
		imap_bad(s, "Invalid sequence set");
		return false;
	}
	if (s->nview == 0) {
		if (!uid) {
			imap_bad(s, "No messages");
			return false;
		}
		return true;
	}
	star = uid ? s->view[s->nview - 1].uid : (uint32_t)s->nview;
	if (!uid) {
		/* RFC 9051 6.4.5: a number past the count is an error */
		for (size_t i = 0; i < set.n; i++)
			if (set.r[i].lo > s->nview || set.r[i].hi > s->nview) {
				imap_bad(s, "Invalid message sequence number");
				return false;
			}
	}
	*idx = xmalloc(s->nview * sizeof(**idx));
	for (size_t i = 0; i < s->nview; i++) {
		uint32_t num = uid ? s->view[i].uid : (uint32_t)(i + 1);
		bool in = imap_seqset_contains(&set, num, star);
		/* RFC 9051 6.4.9: "UID n:*" includes the largest UID even
		 * when n is above it. */
		if (!in && uid && i == s->nview - 1)
			for (size_t r = 0; r < set.n; r++)
				if (set.r[r].lo == IMAP_SEQ_STAR || set.r[r].hi == IMAP_SEQ_STAR)
					in = true;
		if (in)
			(*idx)[(*n)++] = i;
	}
	return true;
}

static const struct {
	const char *name;
	unsigned flag;
} imap_system_flags[] = {
	{ "\\Seen", IMAP_FLAG_SEEN }, { "\\Answered", IMAP_FLAG_ANSWERED }, { "\\Flagged", IMAP_FLAG_FLAGGED },
	{ "\\Deleted", IMAP_FLAG_DELETED }, { "\\Draft", IMAP_FLAG_DRAFT }, { "\\Recent", IMAP_FLAG_RECENT },
};

bool imap_parse_flag_list(struct imap_session *s, const struct imap_arg *a, unsigned *flags, uint32_t *kw,
			  bool add)
{
	const struct imap_arg *e = a;
	bool list = a && a->type == IMAP_ARG_LIST;

	*flags = 0;
	*kw = 0;
	if (list)
		e = a->child;
	for (; e; e = list ? e->next : NULL) {
		bool found = false;
		if (e->type != IMAP_ARG_ATOM)
			return false;
		for (size_t i = 0; i < ARRAY_LEN(imap_system_flags); i++)
			if (strcasecmp(e->s, imap_system_flags[i].name) == 0) {
				*flags |= imap_system_flags[i].flag;
				found = true;
			}
		if (found)
			continue;
		if (e->s[0] == '\\' || !imap_keyword_valid(e->s, e->len))
			return false;
		if (s->sel) {
			int k = imap_folder_keyword(s->sel->f, e->s, e->len, add);
			if (k >= 0)
				*kw |= 1u << k;
		}
		if (!list)
			break;
	}
	*flags &= ~(unsigned)IMAP_FLAG_RECENT;
	return true;
}

char *imap_mailbox_arg(struct imap_session *s, const struct imap_arg *a)
{
	const char *name;
	size_t len;
	char buf[IMAP_MAILBOX_MAX + 1];

	if (a == NULL || !imap_arg_astring(a, &name, &len)) {
		imap_bad(s, "Mailbox name expected");
		return NULL;
	}
	if (imap_mailbox_is_inbox(name, len))
		return xstrdup("INBOX");
	if (s->utf8) {
		/* UTF8=ACCEPT: names come as UTF-8, kept in modified UTF-7 */
		size_t olen;
		if (imap_utf8_to_utf7(name, len, buf, sizeof(buf), &olen) != IMAP_UTF7_OK) {
			imap_no(s, "[CANNOT] Invalid mailbox name");
			return NULL;
		}
		return xstrdup(buf);
	}
	if (len > IMAP_MAILBOX_MAX || !imap_utf7_valid(name, len)) {
		imap_no(s, "[CANNOT] Invalid mailbox name");
		return NULL;
	}
	return xstrndup(name, len);
}

void imap_write_mailbox(struct imap_session *s, struct evbuffer *b, const char *name)
{
	char buf[4 * IMAP_MAILBOX_MAX + 16];
	size_t len;

	/* RFC 6855 3: once UTF8=ACCEPT is on, names go out as UTF-8 */
	if (s->utf8 && imap_utf7_to_utf8(name, strlen(name), buf, sizeof(buf), &len) == IMAP_UTF7_OK) {
		imap_write_astring(b, buf, len, true);
		return;
	}
	imap_write_astring(b, name, strlen(name), false);
}
