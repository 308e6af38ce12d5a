/*
 * pop3_server.c - the POP3 server session.
 *
 * RFC 1939 (states, commands, APOP, UIDL, TOP, the 10-minute autologout
 * timer), RFC 2449 (CAPA, response codes, 255-octet command lines,
 * pipelining), RFC 3206 ([SYS/TEMP], [SYS/PERM], [AUTH]), RFC 2595 (STLS,
 * plaintext only over TLS), RFC 5034 (AUTH with initial response).
 *
 * One session is one struct pop3_session with a small state enum that only
 * pop3_set_state() assigns.  Commands are one table (pop3_commands) whose
 * flags say in which states each may run; a handler checks syntax, then
 * acts.  Logins (USER/PASS, APOP, AUTH) are checked by login/, whose
 * answer comes back by request id; work that touches the disk (locking
 * and scanning the Maildir, the UPDATE state) runs on a worker thread;
 * during both, input processing pauses and resumes from the buffer,
 * so pipelined commands keep their order.  The replies to a pipelined
 * group leave in one write (core/conn.c).  RETR and TOP stream the file:
 * a chunk is encoded whenever the output drains below a low-water mark.
 *
 * TLS: POP3S sessions start on an OpenSSL socket bufferevent (the
 * greeting waits in the output until the handshake is done).  STLS
 * replies +OK through the write events, drops whatever was pipelined
 * behind it (RFC 2595 4), waits until the +OK has left, then swaps the
 * plain bufferevent for an OpenSSL one on the same socket (conn_starttls)
 * and forgets a USER given before.
 */
#include "pop3/pop3_server.h"
#include "core/metrics.h"
#include "core/addrcount.h"
#include "core/config.h"
#include "core/conn.h"
#include "core/session.h"
#include "core/listener.h"
#include "core/log.h"
#include "core/tls.h"
#include "core/util.h"
#include "core/workers.h"
#include "login/login.h"
#include "proto/pop3_cmd.h"
#include "proto/pop3_msg.h"
#include "proto/sasl.h"
#include "store/maildir.h"
#include "store/mailbox.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <inttypes.h>
#include <openssl/err.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define POP3_AUTH_LINE_MAX 16384       /* RFC 2449 4: SASL lines may be longer */
#define POP3_OUT_LOW SESSION_OUT_LOW  /* refill RETR output below this */
#define POP3_OUT_HIGH SESSION_OUT_HIGH /* and stop filling above this */
#define POP3_FILE_CHUNK (64 * 1024)

enum pop3_state {
	POP3_S_AUTHORIZATION,
	POP3_S_TRANSACTION,
	POP3_S_UPDATE,            /* QUIT: the commit runs on a worker */
	POP3_S_CLOSING,           /* flushing the last reply, then free */
};

static const char *const pop3_state_names[] = {
	[POP3_S_AUTHORIZATION] = "authorization",
	[POP3_S_TRANSACTION] = "transaction",
	[POP3_S_UPDATE] = "update",
	[POP3_S_CLOSING] = "closing",
};

/* RFC 2449 8 / RFC 3206 response codes. */
enum pop3_code { POP3_C_NONE, POP3_C_IN_USE, POP3_C_AUTH, POP3_C_SYS_TEMP, POP3_C_SYS_PERM, POP3_C_LOGIN_DELAY };

static const char *const pop3_code_text[] = {
	[POP3_C_NONE] = "",
	[POP3_C_IN_USE] = "[IN-USE] ",
	[POP3_C_AUTH] = "[AUTH] ",
	[POP3_C_SYS_TEMP] = "[SYS/TEMP] ",
	[POP3_C_SYS_PERM] = "[SYS/PERM] ",
	[POP3_C_LOGIN_DELAY] = "[LOGIN-DELAY] ",
};

struct pop3_login_time {
	char *user;
	int64_t when;
};

struct pop3_server {
	size_t n;
	struct pop3_login_time *v;
};

struct pop3_session {
	struct session_link link;
	uint64_t id;
	struct tern *t;
	enum service svc;
	struct conn conn;         /* socket, references, output */
	struct session sess;      /* line intake, timeouts, error limit, output mark */
	enum pop3_state state;
	struct sockaddr_storage peer;
	char ip[64];
	char timestamp[128];      /* APOP: "<...@host>" from the greeting */
	bool trusted;             /* client in [relay] trusted_networks */
	bool waiting;             /* a worker job or a delay timer is pending */
	bool shutdown_pending;    /* shutdown requested while waiting */
	const struct pop3_command *cur;
	char *user_arg;           /* from USER */
	char *user;               /* authenticated "local@domain" */
	uint64_t login_id;        /* the login request in progress (login.h) */
	const char *login_method; /* its name in event=login: user, apop, auth */
	bool sasl_pending;        /* an AUTH exchange waits for the next line */
	struct mailbox *mbox;
	/* RETR/TOP in progress */
	int msg_fd;
	size_t msg_index;
	struct pop3_msg_enc enc;
	unsigned nretr, ndele;
};

struct pop3_command {
	const char *name;
	void (*fn)(struct pop3_session *s, const char *args, size_t len);
	unsigned flags;
};

#define POP3_F_AUTHORIZATION 0x01 /* allowed before login */
#define POP3_F_TRANSACTION 0x02   /* allowed after login */
#define POP3_F_NO_ERROR_COUNT 0x04 /* its -ERR does not count: logins are
				    * throttled per address instead */

static void pop3_close(struct pop3_session *s, bool flush);
static void pop3_resume(struct pop3_session *s);

/* ---- logging: one function per event ---------------------------------- */

static void log_pop3_connect(const struct pop3_session *s)
{
	metrics_connection(s->svc);
	log_event("event=connect session=%016" PRIx64 " service=%s ip=%s", s->id, service_name(s->svc),
		  s->ip);
}

static void log_pop3_state(const struct pop3_session *s, enum pop3_state to)
{
	if (!log_debug_enabled())
		return;
	log_event("event=state session=%016" PRIx64 " from=%s to=%s", s->id, pop3_state_names[s->state],
		  pop3_state_names[to]);
}

static void log_pop3_reject(const struct pop3_session *s, const char *verb, const char *reply)
{
	char q[160];
	log_event("event=reject session=%016" PRIx64 " ip=%s command=%s reply=%s", s->id, s->ip, verb,
		  log_quote(q, sizeof(q), reply, strlen(reply)));
}

static void log_pop3_login(const struct pop3_session *s, const char *method, size_t n, uint64_t octets)
{
	log_event("event=login session=%016" PRIx64 " ip=%s user=%s method=%s tls=%s messages=%zu octets=%" PRIu64,
		  s->id, s->ip, s->user, method, s->conn.tls ? "yes" : "no", n, octets);
}

static void log_pop3_mailbox_error(const struct pop3_session *s, const char *user, const char *op, int err)
{
	log_event("event=mailbox_error session=%016" PRIx64 " user=%s op=%s error=\"%s\"", s->id,
		  user ? user : "-", op, strerror(err));
}

static void log_pop3_update(const struct pop3_session *s, size_t deleted, size_t failed, size_t left)
{
	log_event("event=update session=%016" PRIx64 " user=%s deleted=%zu failed=%zu left=%zu", s->id,
		  s->user, deleted, failed, left);
}

static void log_pop3_disconnect(const struct pop3_session *s)
{
	log_event("event=disconnect session=%016" PRIx64 " ip=%s user=%s retrieved=%u deleted=%u errors=%u",
		  s->id, s->ip, s->user ? s->user : "-", s->nretr, s->ndele, s->sess.errors);
}

/* ---- the shared state: LOGIN-DELAY ---------------------------------------- */

struct pop3_server *pop3_server_new(void)
{
	return xcalloc(1, sizeof(struct pop3_server));
}

void pop3_server_free(struct pop3_server *p)
{
	if (p == NULL)
		return;
	for (size_t i = 0; i < p->n; i++)
		free(p->v[i].user);
	free(p->v);
	free(p);
}

/* May user log in now?  Records the login when it may.  Entries older
 * than the delay are dropped on the way, so the table holds only the
 * users who logged in within the last `delay` seconds. */
static bool pop3_login_allowed(struct pop3_server *p, const char *user, uint64_t delay, int64_t now)
{
	bool allowed = true, found = false;
	size_t o = 0;

	if (delay == 0)
		return true;
	for (size_t i = 0; i < p->n; i++) {
		struct pop3_login_time *e = &p->v[i];
		if (strcmp(e->user, user) == 0) {
			found = true;
			if (now - e->when < (int64_t)delay)
				allowed = false;
			else
				e->when = now;
		} else if (now - e->when >= (int64_t)delay) {
			free(e->user);
			continue;
		}
		p->v[o++] = *e;
	}
	p->n = o;
	if (!found) {
		p->v = xrealloc(p->v, (p->n + 1) * sizeof(*p->v));
		p->v[p->n].user = xstrdup(user);
		p->v[p->n++].when = now;
	}
	return allowed;
}

/* ---- state and replies ------------------------------------------------- */

static void pop3_set_state(struct pop3_session *s, enum pop3_state to)
{
	if (s->state == to)
		return;
	log_pop3_state(s, to);
	s->state = to;
}

static void pop3_vreply(struct pop3_session *s, const char *status, const char *code, const char *fmt,
			va_list ap)
{
	char buf[512];
	int n = snprintf(buf, sizeof(buf), "%s %s", status, code);
	int m = vsnprintf(buf + n, sizeof(buf) - (size_t)n - 2, fmt, ap);
	if (m < 0)
		m = 0;
	n += m;
	if (m == 0 && code[0] == '\0')
		n--;   /* a bare "+OK" */
	if ((size_t)n > sizeof(buf) - 3)
		n = (int)sizeof(buf) - 3;
	buf[n++] = '\r';
	buf[n++] = '\n';
	conn_write(&s->conn, buf, (size_t)n);
	if (status[0] == '-') {
		buf[n - 2] = '\0';
		log_pop3_reject(s, s->cur ? s->cur->name : "-", buf);
	}
}

static void pop3_ok(struct pop3_session *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void pop3_ok(struct pop3_session *s, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	pop3_vreply(s, "+OK", "", fmt, ap);
	va_end(ap);
}

/* -ERR with a response code.  The client's mistakes count toward the
 * error limit; our own faults and busy mailboxes do not. */
static void pop3_err(struct pop3_session *s, enum pop3_code code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void pop3_err(struct pop3_session *s, enum pop3_code code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	pop3_vreply(s, "-ERR", pop3_code_text[code], fmt, ap);
	va_end(ap);
	if ((code == POP3_C_NONE || code == POP3_C_AUTH) && !(s->cur && (s->cur->flags & POP3_F_NO_ERROR_COUNT)))
		session_error(&s->sess);
}

static void pop3_err_close(struct pop3_session *s, enum pop3_code code, const char *text)
{
	s->cur = NULL;
	pop3_err(s, code, "%s", text);
	pop3_close(s, true);
}

/* ---- lifecycle ----------------------------------------------------------- */

static void pop3_stream_stop(struct pop3_session *s)
{
	if (s->msg_fd >= 0)
		close(s->msg_fd);
	s->msg_fd = -1;
}

/* The login request is over, or dropped with the session: an answer
 * still to come is never delivered (login_cancel). */
static void pop3_auth_end(struct pop3_session *s)
{
	login_cancel(s->t->login, s->login_id);
	s->login_id = 0;
	s->sasl_pending = false;
}

static void pop3_free_cb(void *arg)
{
	struct pop3_session *s = arg;

	log_pop3_disconnect(s);
	pop3_stream_stop(s);
	pop3_auth_end(s);
	/* A dropped connection changes nothing in the Maildir (RFC 1939 6):
	 * closing only drops the lock. */
	mailbox_close(s->mbox);
	session_list_del(s->t, &s->link);
	addr_count_add(s->t->conn_per_ip, (struct sockaddr *)&s->peer, -1, now_unix());
	session_release(&s->sess);
	free(s->user_arg);
	free(s->user);
	free(s);
}

/* Stop reading; free once the output is flushed (flush) or at once.  The
 * memory goes only when no callback or worker job holds a reference. */
static void pop3_close(struct pop3_session *s, bool flush)
{
	pop3_set_state(s, POP3_S_CLOSING);
	pop3_stream_stop(s);
	conn_close(&s->conn, flush);
}

static bool pop3_stream_fill(struct pop3_session *s);

/* The output drained below POP3_OUT_LOW: stream on.  (Input held back
 * by the output mark is core/session.c's.) */
static void pop3_drained_cb(void *arg)
{
	struct pop3_session *s = arg;

	if (s->msg_fd >= 0 && pop3_stream_fill(s))
		pop3_resume(s);
}

/* EOF or error while not closing (timeouts are core/session.c's; RFC
 * 1939 3: the autologout closes without UPDATE). */
static void pop3_event_cb(void *arg, short what)
{
	struct pop3_session *s = arg;

	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
		pop3_close(s, false);   /* no UPDATE: the mail stays */
}

static void pop3_session_shutdown(struct session_link *l)
{
	struct pop3_session *s = (struct pop3_session *)((char *)l - offsetof(struct pop3_session, link));
	if (s->waiting || s->state == POP3_S_UPDATE || s->msg_fd >= 0) {
		/* after the job, the delay or the message in flight */
		s->shutdown_pending = true;
		return;
	}
	pop3_err_close(s, POP3_C_SYS_TEMP, "Server shutting down, try again later");
}

static void pop3_make_timestamp(struct pop3_session *s)
{
	unsigned char r[8];
	uint64_t x = 0;
	if (RAND_bytes(r, sizeof(r)) == 1)
		memcpy(&x, r, sizeof(x));
	snprintf(s->timestamp, sizeof(s->timestamp), "<%" PRIx64 ".%016" PRIx64 "@%.80s>", s->id, x,
		 s->t->cfg->hostname);
}

static void pop3_greet(struct pop3_session *s)
{
	pop3_ok(s, "tern POP3 server ready %s", s->timestamp);
}

static void pop3_starttls_done_cb(void *arg, bool ok);
static void pop3_line_cb(void *arg, char *line, size_t len, bool bare_lf);
static void pop3_line_too_long_cb(void *arg);
static size_t pop3_line_max_cb(void *arg);
static bool pop3_may_read(const struct pop3_session *s);

static bool pop3_ready_cb(void *arg)
{
	return pop3_may_read(arg);
}

static const char *pop3_state_name_cb(void *arg)
{
	return pop3_state_names[((struct pop3_session *)arg)->state];
}

static void pop3_close_cb(void *arg, bool flush)
{
	pop3_close(arg, flush);
}

static const struct session_ops pop3_session_ops = {
	.line = pop3_line_cb,
	.line_too_long = pop3_line_too_long_cb,
	.line_max = pop3_line_max_cb,
	.ready = pop3_ready_cb,
	.state_name = pop3_state_name_cb,
	.close = pop3_close_cb,
	.drained = pop3_drained_cb,
	.event = pop3_event_cb,
	.starttls_done = pop3_starttls_done_cb,
	.free = pop3_free_cb,
	.timeout_text = "-ERR Autologout; idle for too long",
	.command_timeout_text = "-ERR Command line not completed in time, closing connection",
	.errors_text = "-ERR Too many errors, closing connection",
};

void pop3_server_accept(struct tern *t, evutil_socket_t fd, const struct sockaddr *sa, socklen_t len,
			enum service svc)
{
	struct pop3_session *s = xcalloc(1, sizeof(*s));
	const struct config *cfg = t->cfg;
	unsigned per_ip;

	s->t = t;
	s->svc = svc;
	s->id = tern_session_id(t);
	s->msg_fd = -1;
	memcpy(&s->peer, sa, len < sizeof(s->peer) ? len : sizeof(s->peer));
	listener_format_ip(sa, s->ip, sizeof(s->ip));
	s->link.shutdown = pop3_session_shutdown;
	session_list_add(t, &s->link);
	per_ip = addr_count_add(t->conn_per_ip, sa, 1, now_unix());
	s->state = POP3_S_AUTHORIZATION;
	s->trusted = cidr_list_match(&cfg->trusted_networks, sa);
	pop3_make_timestamp(s);
	log_pop3_connect(s);
	session_init(&s->sess, &s->conn, t->base, fd, &pop3_session_ops, s, s->id, s->ip);
	s->sess.max_errors = cfg->max_errors;
	session_set_timeouts(&s->sess, cfg->pop3_timeout, cfg->pop3_command_timeout);
	if (svc == SERVICE_POP3S) {
		/* Implicit TLS (RFC 8314): the greeting leaves after the handshake. */
		SSL *ssl = t->tls ? tls_ctx_new_ssl(t->tls) : NULL;
		if (ssl == NULL || !conn_start_tls(&s->conn, ssl)) {
			conn_log_tls_failed(&s->conn, ERR_get_error());
			pop3_close(s, false);
			return;
		}
	}

	if (t->nsessions > cfg->max_connections || !tern_fd_room(t, fd)) {
		pop3_err_close(s, POP3_C_SYS_TEMP, "Too many connections, try again later");
		return;
	}
	if (per_ip > cfg->max_connections_per_ip) {
		pop3_err_close(s, POP3_C_SYS_TEMP, "Too many connections from your address, try again later");
		return;
	}
	session_start(&s->sess);
	pop3_greet(s);
}

/* ---- users and logins: login/ checks, this file opens the mailbox ---------- */

static struct login_peer pop3_login_peer(const struct pop3_session *s)
{
	struct login_peer p = {
		.addr = (const struct sockaddr *)&s->peer,
		.ip = s->ip,
		.session = s->id,
		.service = service_name(s->svc),
		.tls = s->conn.tls,
		.trusted = s->trusted,
	};
	return p;
}

/* Plaintext passwords (USER/PASS, AUTH PLAIN/LOGIN) only over TLS, from
 * trusted networks, or when the config allows them (RFC 2595 2.2). */
static bool pop3_plaintext_ok(const struct pop3_session *s)
{
	struct login_peer p = pop3_login_peer(s);
	return login_plaintext_ok(s->t->login, &p);
}

/* Replies to a login's outcome; failed logins are throttled per
 * address (login/), not counted as errors. */
static const struct pop3_command pop3_login_cmd = { "login", NULL, POP3_F_NO_ERROR_COUNT };

/* After authentication the Maildir lock and scan run on a worker. */
struct pop3_login {
	struct pop3_session *s;
	const char *method;
	char *user;               /* "local@domain" */
	char *path;               /* the Maildir */
	enum mailbox_status st;
	int err;
	struct mailbox *mbox;
};

static void pop3_login_work(void *arg)
{
	struct pop3_login *l = arg;

	l->st = mailbox_open(l->path, &l->mbox);
	l->err = errno;
}

static uint64_t pop3_total_octets(const struct mailbox *m, size_t *n)
{
	uint64_t total = 0;
	*n = 0;
	for (size_t i = 0; i < m->n; i++)
		if (!m->v[i].deleted) {
			total += m->v[i].size;
			(*n)++;
		}
	return total;
}

static void pop3_login_finish(struct pop3_session *s, struct pop3_login *l)
{
	size_t n;
	uint64_t octets;

	if (l->st == MAILBOX_IN_USE) {
		pop3_err(s, POP3_C_IN_USE, "Mailbox is locked by another POP3 session");
	} else if (l->st != MAILBOX_OK) {
		log_pop3_mailbox_error(s, l->user, "open", l->err);
		pop3_err(s, POP3_C_SYS_TEMP, "Cannot open the mailbox, try again later");
	} else if (!pop3_login_allowed(s->t->pop3, l->user, s->t->cfg->login_delay, now_unix())) {
		mailbox_close(l->mbox);
		l->mbox = NULL;
		pop3_err(s, POP3_C_LOGIN_DELAY, "Minimum time between logins not yet reached");
	} else {
		s->user = xstrdup(l->user);
		s->mbox = l->mbox;
		l->mbox = NULL;
		octets = pop3_total_octets(s->mbox, &n);
		log_pop3_login(s, l->method, n, octets);
		pop3_set_state(s, POP3_S_TRANSACTION);
		pop3_ok(s, "Logged in, %zu messages (%" PRIu64 " octets)", n, octets);
	}
	pop3_resume(s);
}

static void pop3_login_done(void *arg)
{
	struct pop3_login *l = arg;
	struct pop3_session *s = l->s;

	conn_batch_begin(&s->conn);
	s->waiting = false;
	if (s->state != POP3_S_CLOSING) {
		s->cur = &pop3_login_cmd;
		if (s->shutdown_pending)
			pop3_err_close(s, POP3_C_SYS_TEMP, "Server shutting down, try again later");
		else
			pop3_login_finish(s, l);
	}
	mailbox_close(l->mbox);
	free(l->user);
	free(l->path);
	free(l);
	conn_batch_end(&s->conn);
	conn_unref(&s->conn);
}

/* Authenticated as r->user: open the mailbox. */
static void pop3_login_open(struct pop3_session *s, const struct login_result *r)
{
	struct pop3_login *l = xcalloc(1, sizeof(*l));

	l->s = s;
	l->method = s->login_method;
	l->user = xstrdup(r->user);
	l->path = maildir_path(s->t->cfg->state_dir, r->domain, r->local);
	s->waiting = true;
	bufferevent_disable(s->conn.bev, EV_READ);
	conn_ref(&s->conn);   /* held by the worker job */
	workers_submit(s->t->delivery_pool, pop3_login_work, pop3_login_done, l);
}

/* login/'s answer, one status, one reply.  Every failed login - unknown
 * user, wrong password, bad SASL proof - gets the same -ERR after the
 * same delay. */
static void pop3_login_reply(struct pop3_session *s, const struct login_result *r)
{
	switch (r->status) {
	case LOGIN_CONTINUE:
		evbuffer_add_printf(conn_out(&s->conn), "+ %s\r\n", r->challenge);
		s->sasl_pending = true;
		break;
	case LOGIN_OK:
		if (s->shutdown_pending)
			pop3_err_close(s, POP3_C_SYS_TEMP, "Server shutting down, try again later");
		else
			pop3_login_open(s, r);
		return;
	case LOGIN_FAILED:
		pop3_err(s, POP3_C_AUTH, "Authentication failed");
		if (r->close || s->shutdown_pending) {
			pop3_close(s, true);
			return;
		}
		break;
	case LOGIN_BLOCKED:
		pop3_err_close(s, POP3_C_AUTH, "Too many failed logins from your address, try again later");
		return;
	case LOGIN_TEMPFAIL:
		pop3_err(s, POP3_C_SYS_TEMP, "Temporary authentication failure, try again later");
		break;
	case LOGIN_BAD_INPUT:
		pop3_err(s, POP3_C_NONE, "Invalid SASL response");
		break;
	case LOGIN_CANCELLED:
		pop3_err(s, POP3_C_NONE, "Authentication cancelled");
		break;
	case LOGIN_NEED_TLS:
		pop3_err(s, POP3_C_AUTH, "Plaintext authentication disallowed on non-secure connections, use STLS");
		break;
	}
	pop3_resume(s);
}

static void pop3_login_answer_cb(void *arg, const struct login_result *r)
{
	struct pop3_session *s = arg;

	conn_batch_begin(&s->conn);
	s->waiting = false;
	if (r->status != LOGIN_CONTINUE) {
		s->login_id = 0;
		free(s->user_arg);
		s->user_arg = NULL;
	}
	if (s->state != POP3_S_CLOSING) {
		s->cur = &pop3_login_cmd;
		pop3_login_reply(s, r);
	}
	conn_batch_end(&s->conn);
	conn_unref(&s->conn);   /* taken by pop3_login_wait */
}

/* A login request is in flight: read nothing until its answer. */
static void pop3_login_wait(struct pop3_session *s, const char *method)
{
	s->login_method = method;
	s->waiting = true;
	bufferevent_disable(s->conn.bev, EV_READ);
	conn_ref(&s->conn);
}

/* ---- AUTHORIZATION commands ----------------------------------------------- */

static void cmd_user(struct pop3_session *s, const char *args, size_t len)
{
	if (!pop3_plaintext_ok(s)) {
		pop3_err(s, POP3_C_AUTH, "Plaintext authentication disallowed on non-secure connections, use STLS");
		return;
	}
	if (len == 0 || len > SASL_USER_MAX || memchr(args, ' ', len)) {
		pop3_err(s, POP3_C_NONE, "Syntax: USER name");
		return;
	}
	free(s->user_arg);
	s->user_arg = xstrndup(args, len);
	/* The same answer whether or not the user exists. */
	pop3_ok(s, "Send PASS");
}

static void cmd_pass(struct pop3_session *s, const char *args, size_t len)
{
	struct login_peer p = pop3_login_peer(s);

	if (s->user_arg == NULL) {
		pop3_err(s, POP3_C_NONE, "Send USER first");
		return;
	}
	if (len == 0) {
		pop3_err(s, POP3_C_NONE, "Syntax: PASS password");
		return;
	}
	pop3_login_wait(s, "user");
	s->login_id = login_password(s->t->login, &p, s->user_arg, args, len, pop3_login_answer_cb, s);
}

static void cmd_apop(struct pop3_session *s, const char *args, size_t len)
{
	struct login_peer p = pop3_login_peer(s);
	struct pop3_word w[2];
	size_t n;
	char *name;

	if (pop3_cmd_words(args, len, w, 2, &n) != POP3_CMD_OK || n != 2 || w[0].len > SASL_USER_MAX) {
		pop3_err(s, POP3_C_NONE, "Syntax: APOP name digest");
		return;
	}
	name = xstrndup(w[0].p, w[0].len);
	pop3_login_wait(s, "apop");
	s->login_id = login_apop(s->t->login, &p, name, s->timestamp, w[1].p, w[1].len, pop3_login_answer_cb, s);
	free(name);
}

static void pop3_list_mechs(struct pop3_session *s, struct evbuffer *out, const char *prefix,
			    const char *sep, const char *suffix)
{
	struct login_peer p = pop3_login_peer(s);
	enum sasl_mech m[LOGIN_MECHS_MAX];
	size_t n = login_mechs(s->t->login, &p, m);

	evbuffer_add_printf(out, "%s", prefix);
	for (size_t i = 0; i < n; i++)
		evbuffer_add_printf(out, "%s%s", i ? sep : "", sasl_mech_name(m[i]));
	evbuffer_add_printf(out, "%s", suffix);
}

static void cmd_auth(struct pop3_session *s, const char *args, size_t len)
{
	struct login_peer p = pop3_login_peer(s);
	struct pop3_word w[2];
	size_t n;
	enum sasl_mech mech;

	if (pop3_cmd_words(args, len, w, 2, &n) != POP3_CMD_OK) {
		pop3_err(s, POP3_C_NONE, "Syntax: AUTH mechanism [initial-response]");
		return;
	}
	if (n == 0) {
		/* The pre-RFC 5034 listing some clients still ask for. */
		pop3_list_mechs(s, conn_out(&s->conn), "+OK\r\n", "\r\n", "\r\n.\r\n");
		return;
	}
	if (!sasl_mech_parse(w[0].p, w[0].len, &mech)) {
		pop3_err(s, POP3_C_NONE, "Unsupported authentication mechanism");
		return;
	}
	pop3_login_wait(s, "auth");
	s->login_id = login_sasl_start(s->t->login, &p, mech, n == 2 ? w[1].p : NULL, n == 2 ? w[1].len : 0,
				       pop3_login_answer_cb, s);
}

/* A continuation line of an AUTH exchange. */
static void pop3_auth_continue(struct pop3_session *s, const char *line, size_t len)
{
	static const struct pop3_command auth = { "AUTH", NULL, POP3_F_NO_ERROR_COUNT };
	s->cur = &auth;
	s->sasl_pending = false;
	pop3_login_wait(s, "auth");
	login_sasl_step(s->t->login, s->login_id, line, len);
}

static void cmd_capa(struct pop3_session *s, const char *args, size_t len)
{
	struct evbuffer *out = conn_out(&s->conn);
	bool authz = s->state == POP3_S_AUTHORIZATION;

	evbuffer_add_printf(out, "+OK Capability list follows\r\nTOP\r\nUIDL\r\nRESP-CODES\r\n"
			    "AUTH-RESP-CODE\r\nPIPELINING\r\n");
	if (authz && pop3_plaintext_ok(s))
		evbuffer_add_printf(out, "USER\r\n");
	if (authz)
		pop3_list_mechs(s, out, "SASL ", " ", "\r\n");
	if (authz && s->t->tls && !s->conn.tls)
		evbuffer_add_printf(out, "STLS\r\n");
	evbuffer_add_printf(out, "EXPIRE NEVER\r\n");
	if (s->t->cfg->login_delay)
		evbuffer_add_printf(out, "LOGIN-DELAY %" PRIu64 "\r\n", s->t->cfg->login_delay);
	evbuffer_add_printf(out, "IMPLEMENTATION tern\r\n.\r\n");
}

static void cmd_stls(struct pop3_session *s, const char *args, size_t len)
{
	SSL *ssl;

	if (len > 0) {   /* RFC 2595 4: STLS takes no argument */
		pop3_err(s, POP3_C_NONE, "STLS takes no argument");
		return;
	}
	if (s->conn.tls) {
		pop3_err(s, POP3_C_NONE, "Already using TLS");
		return;
	}
	if (s->t->tls == NULL) {
		pop3_err(s, POP3_C_SYS_PERM, "TLS not available");
		return;
	}
	if ((ssl = tls_ctx_new_ssl(s->t->tls)) == NULL) {
		conn_log_tls_failed(&s->conn, ERR_get_error());
		pop3_err(s, POP3_C_SYS_TEMP, "TLS not available now, try again later");
		return;
	}
	/* The +OK leaves through the write events; the switch waits until it
	 * has drained.  RFC 2595 4: nothing sent in the clear after STLS is
	 * acted on. */
	session_starttls(&s->sess, ssl);
	pop3_ok(s, "Begin TLS negotiation");
	s->waiting = true;   /* a shutdown meanwhile is answered over TLS */
}

/* The +OK to STLS has left: TLS from here on, on the same socket (ok),
 * or the switch did not happen. */
static void pop3_starttls_done_cb(void *arg, bool ok)
{
	struct pop3_session *s = arg;

	s->waiting = false;
	if (s->state == POP3_S_CLOSING)
		return;
	if (!ok) {
		conn_log_tls_failed(&s->conn, ERR_get_error());
		pop3_close(s, false);
		return;
	}
	/* What was learnt in the clear is forgotten. */
	free(s->user_arg);
	s->user_arg = NULL;
	pop3_resume(s);   /* core/session.c goes on with input after this */
}

/* ---- TRANSACTION commands ----------------------------------------------- */

/* The one message argument of LIST, UIDL, RETR, DELE, TOP: returns the
 * 0-based index, or replies and returns false.  Deleted messages cannot
 * be referred to (RFC 1939 5). */
static bool pop3_msg_arg(struct pop3_session *s, const char *p, size_t len, size_t *index)
{
	size_t n;
	enum pop3_cmd_err e = pop3_cmd_msgnum(p, len, s->mbox->n, &n);

	if (e != POP3_CMD_OK) {
		pop3_err(s, POP3_C_NONE, "%s", pop3_cmd_strerror(e));
		return false;
	}
	if (s->mbox->v[n - 1].deleted) {
		pop3_err(s, POP3_C_NONE, "Message %zu already deleted", n);
		return false;
	}
	*index = n - 1;
	return true;
}

/* Parse "msg" (want_msg == 1), "[msg]" (want_msg == 0) or "msg n" (TOP). */
static bool pop3_args(struct pop3_session *s, const char *args, size_t len, size_t min, size_t max,
		      struct pop3_word *w, size_t *n)
{
	if (pop3_cmd_words(args, len, w, max, n) != POP3_CMD_OK || *n < min) {
		pop3_err(s, POP3_C_NONE, "Syntax: %s%s", s->cur->name,
			 max == 2 ? " msg n" : min ? " msg" : " [msg]");
		return false;
	}
	return true;
}

static void cmd_stat(struct pop3_session *s, const char *args, size_t len)
{
	size_t n;
	uint64_t octets = pop3_total_octets(s->mbox, &n);
	pop3_ok(s, "%zu %" PRIu64, n, octets);
}

/* LIST and UIDL: one line for "CMD n", a multi-line listing without. */
static void pop3_listing(struct pop3_session *s, const char *args, size_t len, bool uidl)
{
	struct pop3_word w[1];
	size_t n, i;
	struct evbuffer *out = conn_out(&s->conn);

	if (!pop3_args(s, args, len, 0, 1, w, &n))
		return;
	if (n == 1) {
		if (!pop3_msg_arg(s, w[0].p, w[0].len, &i))
			return;
		if (uidl)
			pop3_ok(s, "%zu %s", i + 1, s->mbox->v[i].uidl);
		else
			pop3_ok(s, "%zu %" PRIu64, i + 1, s->mbox->v[i].size);
		return;
	}
	if (uidl) {
		evbuffer_add_printf(out, "+OK Unique-ID listing follows\r\n");
	} else {
		uint64_t octets = pop3_total_octets(s->mbox, &n);
		evbuffer_add_printf(out, "+OK %zu messages (%" PRIu64 " octets)\r\n", n, octets);
	}
	for (i = 0; i < s->mbox->n; i++) {
		const struct mailbox_msg *m = &s->mbox->v[i];
		if (m->deleted)
			continue;
		if (uidl)
			evbuffer_add_printf(out, "%zu %s\r\n", i + 1, m->uidl);
		else
			evbuffer_add_printf(out, "%zu %" PRIu64 "\r\n", i + 1, m->size);
	}
	evbuffer_add(out, ".\r\n", 3);
}

static void cmd_list(struct pop3_session *s, const char *args, size_t len)
{
	pop3_listing(s, args, len, false);
}

static void cmd_uidl(struct pop3_session *s, const char *args, size_t len)
{
	pop3_listing(s, args, len, true);
}

/* The message is all in the output.  A client that sent nothing more
 * is waiting for it: it leaves now, and the file is closed after, off
 * the round trip.  Pipelined commands behind it keep the batch (their
 * replies leave with this one in one write). */
static void pop3_stream_end(struct pop3_session *s)
{
	if (evbuffer_get_length(session_input(&s->sess)) == 0)
		conn_flush(&s->conn);
	pop3_stream_stop(s);
}

/* Encode file chunks into the output until it holds POP3_OUT_HIGH; the
 * write callback calls again when it drains below POP3_OUT_LOW.  Returns
 * true when the message is complete and input may be read again. */
static bool pop3_stream_fill(struct pop3_session *s)
{
	struct evbuffer *out = conn_out(&s->conn);
	char buf[POP3_FILE_CHUNK];

	while (evbuffer_get_length(out) < POP3_OUT_HIGH) {
		struct evbuffer_iovec v;
		size_t used, olen;
		ssize_t r = read(s->msg_fd, buf, sizeof(buf));

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			/* Mid-message there is no way to say -ERR: drop the
			 * connection so the client does not take a short
			 * message for the whole. */
			log_pop3_mailbox_error(s, s->user, "read", errno);
			pop3_close(s, false);
			return false;
		}
		if (r == 0 || s->enc.done) {
			char end[8];
			evbuffer_add(out, end, pop3_msg_enc_finish(&s->enc, end));
			pop3_stream_end(s);
			return true;
		}
		if (evbuffer_reserve_space(out, 2 * (size_t)r + 8, &v, 1) < 1) {
			pop3_close(s, false);
			return false;
		}
		used = pop3_msg_enc_feed(&s->enc, buf, (size_t)r, v.iov_base, v.iov_len, &olen);
		(void)used;   /* the space holds any chunk, so all was used */
		/* A short read of a regular file is its end (a delivered
		 * Maildir file never changes): the end goes out with this
		 * chunk rather than after one more read() to learn it, one of
		 * a small RETR's eight system calls.  The space reserved
		 * holds the chunk and the 5 octets of the end. */
		bool end = (size_t)r < sizeof(buf) || s->enc.done;
		if (end)
			olen += pop3_msg_enc_finish(&s->enc, (char *)v.iov_base + olen);
		v.iov_len = olen;
		evbuffer_commit_space(out, &v, 1);
		if (end) {
			pop3_stream_end(s);
			return true;
		}
	}
	return false;
}

/* RETR (all) and TOP (body_lines). */
static void pop3_send_msg(struct pop3_session *s, size_t i, bool all, uint64_t body_lines)
{
	s->msg_fd = mailbox_open_msg(s->mbox, i);
	if (s->msg_fd < 0) {
		log_pop3_mailbox_error(s, s->user, "open_message", errno);
		pop3_err(s, errno == ENOENT ? POP3_C_SYS_PERM : POP3_C_SYS_TEMP,
			 "Cannot read message %zu", i + 1);
		return;
	}
	if (all) {
		s->mbox->v[i].retrieved = true;
		s->nretr++;
		pop3_ok(s, "%" PRIu64 " octets", s->mbox->v[i].size);
	} else {
		pop3_ok(s, "Top of message follows");
	}
	pop3_msg_enc_init(&s->enc, all, body_lines);
	s->msg_index = i;
	/* Input waits until the message is out (pop3_may_read() says no
	 * while msg_fd is open), which also stops the idle timer. */
	if (!pop3_stream_fill(s) && s->msg_fd >= 0) {
		bufferevent_disable(s->conn.bev, EV_READ);
		conn_await_drain(&s->conn);   /* the rest follows as it drains */
	}
}

static void cmd_retr(struct pop3_session *s, const char *args, size_t len)
{
	struct pop3_word w[1];
	size_t n, i;

	if (pop3_args(s, args, len, 1, 1, w, &n) && pop3_msg_arg(s, w[0].p, w[0].len, &i))
		pop3_send_msg(s, i, true, 0);
}

static void cmd_top(struct pop3_session *s, const char *args, size_t len)
{
	struct pop3_word w[2];
	size_t n, i;
	uint64_t lines;

	if (!pop3_args(s, args, len, 2, 2, w, &n) || !pop3_msg_arg(s, w[0].p, w[0].len, &i))
		return;
	if (pop3_cmd_number(w[1].p, w[1].len, UINT64_MAX, &lines) != POP3_CMD_OK) {
		pop3_err(s, POP3_C_NONE, "Invalid number of lines");
		return;
	}
	pop3_send_msg(s, i, false, lines);
}

static void cmd_dele(struct pop3_session *s, const char *args, size_t len)
{
	struct pop3_word w[1];
	size_t n, i;

	if (!pop3_args(s, args, len, 1, 1, w, &n) || !pop3_msg_arg(s, w[0].p, w[0].len, &i))
		return;
	s->mbox->v[i].deleted = true;
	s->ndele++;
	pop3_ok(s, "Message %zu deleted", i + 1);
}

static void cmd_rset(struct pop3_session *s, const char *args, size_t len)
{
	size_t n;
	uint64_t octets;

	for (size_t i = 0; i < s->mbox->n; i++)
		s->mbox->v[i].deleted = false;
	s->ndele = 0;
	octets = pop3_total_octets(s->mbox, &n);
	pop3_ok(s, "%zu messages (%" PRIu64 " octets)", n, octets);
}

static void cmd_noop(struct pop3_session *s, const char *args, size_t len)
{
	pop3_ok(s, "%s", "");
}

/* ---- QUIT and UPDATE ----------------------------------------------------- */

struct pop3_update {
	struct pop3_session *s;
	size_t failed;
};

static void pop3_update_work(void *arg)
{
	struct pop3_update *u = arg;
	u->failed = mailbox_commit(u->s->mbox);
}

static void pop3_update_done(void *arg)
{
	struct pop3_update *u = arg;
	struct pop3_session *s = u->s;
	size_t left;

	pop3_total_octets(s->mbox, &left);
	log_pop3_update(s, s->ndele, u->failed, left);
	s->cur = NULL;
	if (s->state == POP3_S_UPDATE) {
		if (u->failed)
			pop3_err(s, POP3_C_SYS_TEMP, "Some deleted messages not removed");
		else
			pop3_ok(s, "%s POP3 server signing off (%zu messages left)", s->t->cfg->hostname, left);
		pop3_close(s, true);
	}
	free(u);
	conn_unref(&s->conn);
}

static void cmd_quit(struct pop3_session *s, const char *args, size_t len)
{
	struct pop3_update *u;

	if (s->state == POP3_S_AUTHORIZATION) {
		pop3_ok(s, "%s POP3 server signing off", s->t->cfg->hostname);
		pop3_close(s, true);
		return;
	}
	/* RFC 1939 6: QUIT in TRANSACTION enters UPDATE. */
	pop3_set_state(s, POP3_S_UPDATE);
	bufferevent_disable(s->conn.bev, EV_READ);
	u = xcalloc(1, sizeof(*u));
	u->s = s;
	conn_ref(&s->conn);   /* held by the worker job */
	workers_submit(s->t->delivery_pool, pop3_update_work, pop3_update_done, u);
}

/* ---- dispatch ---------------------------------------------------------------- */

#define POP3_F_BOTH (POP3_F_AUTHORIZATION | POP3_F_TRANSACTION)

static const struct pop3_command pop3_commands[] = {
	{ "USER", cmd_user, POP3_F_AUTHORIZATION },
	{ "PASS", cmd_pass, POP3_F_AUTHORIZATION | POP3_F_NO_ERROR_COUNT },
	{ "APOP", cmd_apop, POP3_F_AUTHORIZATION | POP3_F_NO_ERROR_COUNT },
	{ "AUTH", cmd_auth, POP3_F_AUTHORIZATION | POP3_F_NO_ERROR_COUNT },
	{ "STLS", cmd_stls, POP3_F_AUTHORIZATION },
	{ "CAPA", cmd_capa, POP3_F_BOTH },
	{ "STAT", cmd_stat, POP3_F_TRANSACTION },
	{ "LIST", cmd_list, POP3_F_TRANSACTION },
	{ "UIDL", cmd_uidl, POP3_F_TRANSACTION },
	{ "RETR", cmd_retr, POP3_F_TRANSACTION },
	{ "TOP", cmd_top, POP3_F_TRANSACTION },
	{ "DELE", cmd_dele, POP3_F_TRANSACTION },
	{ "RSET", cmd_rset, POP3_F_TRANSACTION },
	{ "NOOP", cmd_noop, POP3_F_TRANSACTION },
	{ "QUIT", cmd_quit, POP3_F_BOTH },
};

static void pop3_dispatch(struct pop3_session *s, const char *line, size_t len)
{
	static const struct pop3_command unknown = { "unknown", NULL, 0 };
	struct pop3_cmd cmd;
	enum pop3_cmd_err e = pop3_cmd_split(line, len, &cmd);
	unsigned need = s->state == POP3_S_AUTHORIZATION ? POP3_F_AUTHORIZATION : POP3_F_TRANSACTION;

	s->cur = &unknown;
	if (e != POP3_CMD_OK) {
		pop3_err(s, POP3_C_NONE, "%s", pop3_cmd_strerror(e));
		return;
	}
	for (size_t i = 0; i < ARRAY_LEN(pop3_commands); i++) {
		const struct pop3_command *c = &pop3_commands[i];
		if (strcmp(c->name, cmd.keyword) != 0)
			continue;
		s->cur = c;
		if (!(c->flags & need)) {
			pop3_err(s, POP3_C_NONE, "%s not allowed %s", c->name,
				 need == POP3_F_AUTHORIZATION ? "before login" : "after login");
			return;
		}
		c->fn(s, cmd.args, cmd.args_len);
		return;
	}
	pop3_err(s, POP3_C_NONE, "Unknown command");
}

/* ---- command lines (core/session.c takes them from the input) -------------- */

static size_t pop3_line_max_cb(void *arg)
{
	const struct pop3_session *s = arg;
	return s->sasl_pending ? POP3_AUTH_LINE_MAX : POP3_LINE_MAX;
}

static void pop3_line_too_long_cb(void *arg)
{
	struct pop3_session *s = arg;

	s->cur = NULL;
	if (s->sasl_pending)
		pop3_auth_end(s);
	pop3_err(s, POP3_C_NONE, "Line too long");
}

/* One line (RFC 1939 asks for CRLF; a bare LF is taken as one). */
static void pop3_line_cb(void *arg, char *line, size_t len, bool bare_lf)
{
	struct pop3_session *s = arg;

	if (s->sasl_pending)
		pop3_auth_continue(s, line, len);
	else
		pop3_dispatch(s, line, len);
}

/* Input may be processed: not waiting for a worker or a timer, and no
 * message being streamed. */
static bool pop3_may_read(const struct pop3_session *s)
{
	return s->state != POP3_S_CLOSING && s->state != POP3_S_UPDATE && !s->waiting && s->msg_fd < 0;
}

/* After a pause (worker job, delay): go on with what the client
 * pipelined meanwhile. */
static void pop3_resume(struct pop3_session *s)
{
	if (s->shutdown_pending && s->state != POP3_S_CLOSING) {
		pop3_err_close(s, POP3_C_SYS_TEMP, "Server shutting down, try again later");
		return;
	}
	if (!pop3_may_read(s))
		return;
	session_process(&s->sess);
}
