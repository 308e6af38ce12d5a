/*
 * smtp_server.c - the SMTP server session.
 *
 * RFC 5321 (commands, replies §4.2, limits §4.5.3, Received: §4.4),
 * RFC 1870 SIZE, RFC 6152 8BITMIME, RFC 2920 PIPELINING, RFC 2034/3463
 * enhanced status codes, RFC 3461 DSN parameters, RFC 6531 SMTPUTF8
 * (addresses; the header rule is the header stage's), RFC 3030 CHUNKING
 * and BINARYMIME (smtp_bdat.c).  Only CRLF ends a command line, and an
 * HTTP request line ends the session (smtp_take_line).
 *
 * One session is one struct smtp_session with a small state enum that only
 * smtp_set_state() assigns.  Commands are one table (smtp_commands); each
 * handler checks state, then syntax, then acts.  The mail transaction
 * (MAIL .. end of DATA) is its own struct, so RSET frees it.
 *
 * Input is taken by the line-session base (core/session.c: line bounds,
 * the error limit, timeouts, the output mark) and processed in order,
 * one reply per command; replies of a pipelined group go out together
 * when the loop regains control.  After DATA's 354 the input goes to the
 * message pipeline (msg/pipeline.h) until its framer sees the end; while
 * the pipeline's stages give their verdicts and the message is made
 * durable (checks, then fsync on a worker thread) input processing
 * pauses, and it resumes from the buffer after the reply, so pipelined
 * commands after the final dot keep their order.
 */
#include "smtp/smtp_server.h"
#include "smtp/smtp_session.h"
#include "core/metrics.h"
#include "core/addrcount.h"
#include "core/config.h"
#include "core/listener.h"
#include "core/log.h"
#include "core/util.h"
#include "core/workers.h"
#include "core/dns.h"
#include "filter/milter.h"
#include "msg/pipeline.h"
#include "msg/stages.h"
#include "msgauth/msgauth.h"
#include "msgauth/dkim_keyring.h"
#include "proto/smtp_parse.h"
#include "store/aliases.h"
#include "store/queue.h"
#include "store/users.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <inttypes.h>
#include <openssl/ssl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#define SMTP_LINE_MAX 512        /* RFC 5321 4.5.3.1.4, CRLF included */
#define SMTP_DATA_LINE_MAX 1000  /* RFC 5321 4.5.3.1.6, CRLF included */
#define SMTP_REFUSE_TIMEOUT_S 10  /* most for a refused client's TLS handshake and the 421 */

static const char *const smtp_state_names[] = {
	[SMTP_S_GREETED] = "greeted",
	[SMTP_S_READY] = "ready",
	[SMTP_S_MAIL] = "mail",
	[SMTP_S_RCPT] = "rcpt",
	[SMTP_S_DATA] = "data",
	[SMTP_S_CHUNKS] = "chunks",
	[SMTP_S_COMMIT] = "commit",
	[SMTP_S_CLOSING] = "closing",
};

/* ---- logging: one function per event ---------------------------------- */

static void log_session_connect(const struct smtp_session *s)
{
	metrics_connection(s->svc);
	log_event("event=connect session=%016" PRIx64 " service=%s ip=%s", s->id,
		  smtp_service_name(s->svc), s->ip);
}

static void log_session_state(const struct smtp_session *s, enum smtp_state from, enum smtp_state to)
{
	if (!log_debug_enabled())
		return;
	log_event("event=state session=%016" PRIx64 " from=%s to=%s", s->id, smtp_state_names[from],
		  smtp_state_names[to]);
}

static void log_session_reject(const struct smtp_session *s, const char *verb, const char *reply)
{
	char q[160];
	if (!strcasecmp(verb, "MAIL"))
		metrics_inc(METRIC_REJECT_MAIL);
	else if (!strcasecmp(verb, "RCPT"))
		metrics_inc(METRIC_REJECT_RCPT);
	else if (!strcasecmp(verb, "DATA") || !strcasecmp(verb, "BDAT"))
		metrics_inc(METRIC_REJECT_DATA);
	log_event("event=reject session=%016" PRIx64 " ip=%s command=%s reply=%s", s->id, s->ip, verb,
		  log_quote(q, sizeof(q), reply, strlen(reply)));
}

static void log_session_queued(const struct smtp_session *s, const struct smtp_txn *t)
{
	char from[300];
	metrics_inc(METRIC_RECEIVED);
	log_event("event=queued session=%016" PRIx64 " queue=%s from=%s nrcpt=%zu size=%" PRIu64
		  " path=%s ip=%s helo=%s", s->id, t->env->id,
		  log_quote(from, sizeof(from), t->env->from, strlen(t->env->from)), t->env->nrcpt,
		  t->env->msg_len, sink_queue_direct(t->sink) ? "direct" : "queue", s->ip,
		  s->helo[0] ? s->helo : "-");
}

static void log_session_discarded(const struct smtp_session *s, const struct smtp_txn *t)
{
	char from[300];
	log_event("event=discarded session=%016" PRIx64 " queue=%s from=%s nrcpt=%zu ip=%s", s->id, t->env->id,
		  log_quote(from, sizeof(from), t->env->from, strlen(t->env->from)), t->env->nrcpt, s->ip);
}

static void log_session_http(const struct smtp_session *s)
{
	log_event("event=http_request session=%016" PRIx64 " ip=%s action=close", s->id, s->ip);
}

static void log_session_disconnect(const struct smtp_session *s)
{
	log_event("event=disconnect session=%016" PRIx64 " ip=%s messages=%u errors=%u", s->id, s->ip,
		  s->messages, s->sess.errors);
}

const char *smtp_service_name(enum service svc)
{
	switch (svc) {
	case SERVICE_SMTP: return "smtp";
	case SERVICE_SUBMISSION: return "submission";
	case SERVICE_SUBMISSIONS: return "submissions";
	default: return "?";
	}
}

/* ---- state and replies ------------------------------------------------- */

void smtp_set_state(struct smtp_session *s, enum smtp_state to)
{
	if (s->state == to)
		return;
	log_session_state(s, s->state, to);
	s->state = to;
}

/* Send one reply line (or several separated by \n, each given the code
 * with '-' but the last).  Replies >= 400 count toward the error limit,
 * except those the caller marks as not the client's fault. */
void smtp_reply(struct smtp_session *s, const char *fmt, ...)
{
	char buf[1024];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf) - 2, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n > sizeof(buf) - 3)
		n = (int)sizeof(buf) - 3;
	buf[n++] = '\r';
	buf[n++] = '\n';
	conn_write(&s->conn, buf, (size_t)n);
	if (buf[0] >= '4' && s->cur_verb) {
		buf[n - 2] = '\0';
		log_session_reject(s, s->cur_verb, buf);
		if (!s->no_error_count)
			session_error(&s->sess);
	}
}

void smtp_reply_shutdown(struct smtp_session *s, const char *text)
{
	s->no_error_count = true;
	smtp_reply(s, "%s", text);
	smtp_close(s, true);
}

/* ---- the transaction ----------------------------------------------------- */

static void smtp_txn_free(struct smtp_txn *t)
{
	if (t == NULL)
		return;
	pipeline_free(t->pipe);   /* before env: the sink may drop its file */
	queue_env_free(t->env);
	free(t->first_rcpt);
	free(t);
}

void smtp_txn_reset(struct smtp_session *s)
{
	smtp_txn_free(s->txn);
	s->txn = NULL;
	milter_abort(s->milter);
	if (s->state == SMTP_S_MAIL || s->state == SMTP_S_RCPT || s->state == SMTP_S_DATA ||
	    s->state == SMTP_S_CHUNKS)
		smtp_set_state(s, SMTP_S_READY);
}

/* ---- lifecycle ----------------------------------------------------------- */

static void smtp_free_cb(void *arg)
{
	struct smtp_session *s = arg;

	log_session_disconnect(s);
	smtp_txn_free(s->txn);
	smtp_milter_free(s);   /* after the message's pipeline */
	smtp_auth_free(s);
	smtp_filter_free(s);
	if (s->ptr_req)
		dns_cancel(s->t->dns, s->ptr_req);
	free(s->ptr_name);
	session_list_del(s->t, &s->link);
	addr_count_add(s->t->conn_per_ip, (struct sockaddr *)&s->peer, -1, now_unix());
	session_release(&s->sess);
	free(s->auth_user);
	free(s);
}

/* Stop reading; free once the output is flushed (flush) or at once.  The
 * memory goes only when no callback or worker job holds a reference. */
void smtp_close(struct smtp_session *s, bool flush)
{
	smtp_set_state(s, SMTP_S_CLOSING);
	conn_close(&s->conn, flush);
}

/* EOF or error while not closing (conn.h; timeouts are core/session.c's). */
static void smtp_event_cb(void *arg, short what)
{
	struct smtp_session *s = arg;

	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
		/* EOF alone is a half-close: the client sends no more but may
		 * still read, so the replies owed to it go out first. */
		bool half_close = !(what & BEV_EVENT_ERROR);
		if (s->state == SMTP_S_COMMIT && half_close) {
			s->peer_eof = true;   /* smtp_commit_done() answers, then closes */
		} else if (s->state == SMTP_S_COMMIT) {
			/* The commit finishes and the message is delivered; the
			 * client will not hear the 250 (a duplicate at worst). */
			s->peer_gone = true;
		} else {
			smtp_close(s, half_close);
		}
	}
}

void smtp_pause_input(struct smtp_session *s)
{
	session_pause(&s->sess);
}

void smtp_resume_input(struct smtp_session *s)
{
	session_resume(&s->sess);
}

/* The wait for the next command or DATA block; a command line has
 * command_timeout from its first octet to its end. */
static void smtp_set_timeout(struct smtp_session *s, uint64_t seconds)
{
	session_set_timeouts(&s->sess, seconds, s->t->cfg->command_timeout);
}

static void smtp_line_cb(void *arg, char *line, size_t len, bool bare_lf);
static void smtp_line_too_long_cb(void *arg);
static size_t smtp_line_max_cb(void *arg);
static enum session_raw smtp_raw_cb(void *arg);

static bool smtp_ready_cb(void *arg)
{
	const struct smtp_session *s = arg;
	return s->state != SMTP_S_CLOSING && s->state != SMTP_S_COMMIT;
}

static const char *smtp_state_name_cb(void *arg)
{
	return smtp_state_names[((struct smtp_session *)arg)->state];
}

static void smtp_close_cb(void *arg, bool flush)
{
	smtp_close(arg, flush);
}

static const struct session_ops smtp_session_ops = {
	.line = smtp_line_cb,
	.crlf_lines = true,
	.line_too_long = smtp_line_too_long_cb,
	.line_max = smtp_line_max_cb,
	.raw = smtp_raw_cb,
	.ready = smtp_ready_cb,
	.state_name = smtp_state_name_cb,
	.close = smtp_close_cb,
	.event = smtp_event_cb,
	.connected = smtp_tls_connected_cb,
	.starttls_done = smtp_starttls_done_cb,
	.free = smtp_free_cb,
	.timeout_text = "421 4.4.2 Timeout exceeded, closing connection",
	.errors_text = "421 4.7.0 Too many errors, closing connection",
};

static void smtp_session_shutdown(struct session_link *l)
{
	struct smtp_session *s = (struct smtp_session *)((char *)l - offsetof(struct smtp_session, link));
	if (s->state == SMTP_S_COMMIT) {
		s->shutdown_after_commit = true;
		return;
	}
	s->cur_verb = NULL;
	smtp_reply_shutdown(s, "421 4.3.2 Server shutting down, try again later");
}

static void log_ptr(const struct smtp_session *s, const char *name)
{
	log_event("event=ptr session=%016" PRIx64 " ip=%s name=%s", s->id, s->ip, name);
}

/* The forward-confirmed PTR name for Received: (RFC 5321 4.4).  It is
 * used if it is in by DATA; nothing ever waits for it.  The lookup is
 * cancelled when the session goes, so this never sees a freed session.
 * The outcome is logged, so that one can tell when it was too late. */
static void smtp_ptr_cb(const char *name, void *arg)
{
	struct smtp_session *s = arg;
	size_t n = name ? strlen(name) : 0;
	bool ok = n > 0 && n <= 255;

	s->ptr_req = 0;
	/* It goes into a header: a host name's characters only. */
	for (size_t i = 0; ok && i < n; i++)
		if (!isalnum((unsigned char)name[i]) && !strchr(".-_", name[i]))
			ok = false;
	if (ok)
		s->ptr_name = xstrdup(name);
	log_ptr(s, ok ? name : "-");
}

/* Loopback clients are local programs: asking the system resolver about
 * them tells nothing, unless tern has resolvers of its own ([dns]). */
static bool smtp_is_loopback(const struct sockaddr *sa)
{
	if (sa->sa_family == AF_INET)
		return (ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr) >> 24) == 127;
	if (sa->sa_family == AF_INET6)
		return IN6_IS_ADDR_LOOPBACK(&((const struct sockaddr_in6 *)sa)->sin6_addr);
	return false;
}

/* Over a connection limit: the reply instead of the greeting, then close
 * (after the handshake on 465, which gets the shorter of command_timeout
 * and SMTP_REFUSE_TIMEOUT_S). */
static void smtp_refuse(struct smtp_session *s, const char *text)
{
	uint64_t wait = s->t->cfg->command_timeout;

	if (s->conn.tls)
		smtp_set_timeout(s, wait < SMTP_REFUSE_TIMEOUT_S ? wait : SMTP_REFUSE_TIMEOUT_S);
	smtp_reply_shutdown(s, text);
}

void smtp_server_accept(struct tern *t, evutil_socket_t fd, const struct sockaddr *sa, socklen_t len,
			enum service svc)
{
	struct smtp_session *s = xcalloc(1, sizeof(*s));
	const struct config *cfg = t->cfg;
	const char *refusal;
	unsigned per_ip;

	s->t = t;
	s->svc = svc;
	s->id = tern_session_id(t);
	memcpy(&s->peer, sa, len < sizeof(s->peer) ? len : sizeof(s->peer));
	listener_format_ip(sa, s->ip, sizeof(s->ip));
	s->link.shutdown = smtp_session_shutdown;
	session_list_add(t, &s->link);
	per_ip = addr_count_add(t->conn_per_ip, sa, 1, now_unix());
	s->state = SMTP_S_GREETED;
	s->trusted = cidr_list_match(&cfg->trusted_networks, sa);
	session_init(&s->sess, &s->conn, t->base, fd, &smtp_session_ops, s, s->id, s->ip);
	s->sess.max_errors = cfg->max_errors;
	smtp_set_timeout(s, cfg->command_timeout);
	log_session_connect(s);

	/* On 465 the refusal, like the greeting, goes out over TLS: a client
	 * would read a plaintext 421 as a broken handshake. */
	if (smtp_tls_accept_hook(s) < 0) {
		smtp_close(s, false);
		return;
	}
	if (t->nsessions > cfg->max_connections || !tern_fd_room(t, fd)) {
		smtp_refuse(s, "421 4.7.0 Too many connections, try again later");
		return;
	}
	if (per_ip > cfg->max_connections_per_ip) {
		smtp_refuse(s, "421 4.7.0 Too many connections from your address, try again later");
		return;
	}
	if ((refusal = smtp_filter_conn_rate(s)) != NULL) {
		smtp_refuse(s, refusal);
		return;
	}
	session_start(&s->sess);
	if (t->dns != NULL && (cfg->dns_servers[0] != '\0' || !smtp_is_loopback(sa)))
		s->ptr_req = dns_ptr_lookup(t->dns, sa, smtp_ptr_cb, s);
	smtp_milter_open(s);
	/* 465 greets after its handshake (smtp_tls_connected_cb) */
	if (svc != SERVICE_SUBMISSIONS && !smtp_milter_connect(s))
		smtp_greet_after_milter(s);
}

/* The milters let the client in: the DNS lists, then the greeting. */
void smtp_greet_after_milter(struct smtp_session *s)
{
	if (s->svc == SERVICE_SUBMISSIONS || !smtp_filter_connect(s))
		smtp_greet(s);
}

void smtp_greet(struct smtp_session *s)
{
	smtp_reply(s, "220 %s ESMTP tern ready", s->t->cfg->hostname);
}

/* ---- commands -------------------------------------------------------------- */

static void cmd_helo(struct smtp_session *s, const char *args, size_t len);
static void cmd_ehlo(struct smtp_session *s, const char *args, size_t len);
static void cmd_mail(struct smtp_session *s, const char *args, size_t len);
static void cmd_rcpt(struct smtp_session *s, const char *args, size_t len);
static void cmd_data(struct smtp_session *s, const char *args, size_t len);
static void cmd_rset(struct smtp_session *s, const char *args, size_t len);
static void cmd_noop(struct smtp_session *s, const char *args, size_t len);
static void cmd_quit(struct smtp_session *s, const char *args, size_t len);
static void cmd_help(struct smtp_session *s, const char *args, size_t len);
static void cmd_vrfy(struct smtp_session *s, const char *args, size_t len);
static void cmd_expn(struct smtp_session *s, const char *args, size_t len);
static void cmd_not_implemented(struct smtp_session *s, const char *args, size_t len);

/* Flags: rules that every command shares. */
#define CMD_ANY_TIME    0x01  /* allowed before TLS/AUTH on submission ports */
#define CMD_NO_ARGS     0x02  /* takes no argument: 501 if one is given */

static const struct smtp_command smtp_commands[] = {
	{ "HELO", cmd_helo, CMD_ANY_TIME },
	{ "EHLO", cmd_ehlo, CMD_ANY_TIME },
	{ "MAIL", cmd_mail, 0 },
	{ "RCPT", cmd_rcpt, 0 },
	{ "DATA", cmd_data, CMD_NO_ARGS },
	{ "BDAT", smtp_cmd_bdat, 0 },
	{ "RSET", cmd_rset, CMD_ANY_TIME | CMD_NO_ARGS },
	{ "NOOP", cmd_noop, CMD_ANY_TIME },
	{ "QUIT", cmd_quit, CMD_ANY_TIME | CMD_NO_ARGS },
	{ "HELP", cmd_help, CMD_ANY_TIME },
	{ "VRFY", cmd_vrfy, 0 },
	{ "EXPN", cmd_expn, 0 },
	{ "STARTTLS", smtp_cmd_starttls, CMD_ANY_TIME | CMD_NO_ARGS },
	{ "AUTH", smtp_cmd_auth, CMD_ANY_TIME },
	{ "ETRN", smtp_cmd_etrn, 0 },
	{ "TURN", cmd_not_implemented, 0 },
	{ "SEND", cmd_not_implemented, 0 },
	{ "SOML", cmd_not_implemented, 0 },
	{ "SAML", cmd_not_implemented, 0 },
};

void smtp_dispatch(struct smtp_session *s, const char *line, size_t len)
{
	struct smtp_token verb, args;
	const struct smtp_command *c = NULL;

	smtp_split_command(line, len, &verb, &args);
	for (size_t i = 0; i < ARRAY_LEN(smtp_commands); i++)
		if (strlen(smtp_commands[i].name) == verb.len && ascii_ieq(smtp_commands[i].name, verb.p, verb.len)) {
			c = &smtp_commands[i];
			break;
		}
	s->cur_verb = c ? c->name : "unknown";
	s->no_error_count = false;
	if (smtp_milter_hold(s, c ? c->name : NULL) || smtp_filter_hold(s, c ? c->name : NULL, line, len))
		return;
	if (c == NULL) {
		smtp_reply(s, "500 5.5.1 Command not recognized");
		return;
	}
	if ((c->flags & CMD_NO_ARGS) && args.len > 0) {
		smtp_reply(s, "501 5.5.4 Syntax: %s takes no arguments", c->name);
		return;
	}
	if (!(c->flags & CMD_ANY_TIME) && !smtp_policy_may_proceed(s))
		return;
	c->fn(s, args.p, args.len);
}

static void cmd_not_implemented(struct smtp_session *s, const char *args, size_t len)
{
	smtp_reply(s, "502 5.5.1 Command not implemented");
}

static bool smtp_helo_arg(struct smtp_session *s, const char *verb, const char *args, size_t len)
{
	if (len == 0) {
		smtp_reply(s, "501 5.5.4 Syntax: %s hostname", verb);
		return false;
	}
	/* RFC 5321 4.1.4: never refuse a session over its HELO name, but
	 * keep only a printable single token for Received: and the logs. */
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)args[i] <= 0x20 || (unsigned char)args[i] >= 0x7f) {
			smtp_reply(s, "501 5.5.4 Syntax: %s hostname", verb);
			return false;
		}
	if (len >= sizeof(s->helo))
		len = sizeof(s->helo) - 1;
	memcpy(s->helo, args, len);
	s->helo[len] = '\0';
	smtp_txn_reset(s);
	if (s->state == SMTP_S_GREETED)
		smtp_set_state(s, SMTP_S_READY);
	return true;
}

static void cmd_helo(struct smtp_session *s, const char *args, size_t len)
{
	enum smtp_state prev_state = s->state;
	bool prev_esmtp = s->esmtp;
	char prev_helo[sizeof(s->helo)], ok[300];

	memcpy(prev_helo, s->helo, sizeof(prev_helo));
	if (!smtp_helo_arg(s, "HELO", args, len))
		return;
	s->esmtp = false;
	snprintf(ok, sizeof(ok), "250 %s", s->t->cfg->hostname);
	smtp_milter_helo(s, prev_state, prev_helo, prev_esmtp, ok);
}

static void cmd_ehlo(struct smtp_session *s, const char *args, size_t len)
{
	const struct config *cfg = s->t->cfg;
	enum smtp_state prev_state = s->state;
	bool prev_esmtp = s->esmtp;
	char lines[1024], prev_helo[sizeof(s->helo)];
	size_t o = 0;

	memcpy(prev_helo, s->helo, sizeof(prev_helo));
	if (!smtp_helo_arg(s, "EHLO", args, len))
		return;
	s->esmtp = true;
	o += (size_t)snprintf(lines + o, sizeof(lines) - o, "250-%s\r\n250-PIPELINING\r\n250-SIZE %" PRIu64 "\r\n"
			      "250-8BITMIME\r\n250-ENHANCEDSTATUSCODES\r\n250-DSN\r\n250-ETRN\r\n"
			      "250-SMTPUTF8\r\n250-CHUNKING\r\n250-BINARYMIME\r\n",
			      cfg->hostname, cfg->max_message_size);
	o += smtp_ehlo_extra(s, lines + o, sizeof(lines) - o);
	if (o < sizeof(lines))
		o += (size_t)snprintf(lines + o, sizeof(lines) - o, "250 HELP");
	/* lines already carries CRLFs between the lines; smtp_reply adds the last */
	smtp_milter_helo(s, prev_state, prev_helo, prev_esmtp, lines);
}

static void smtp_reply_parse_error(struct smtp_session *s, enum smtp_parse_err e, bool rcpt)
{
	switch (e) {
	case SMTP_ERR_LOCAL_LEN:
		smtp_reply(s, "553 5.1.3 Local part longer than 64 octets");
		break;
	case SMTP_ERR_DOMAIN_LEN:
		smtp_reply(s, "553 5.1.3 Domain longer than 255 octets");
		break;
	case SMTP_ERR_PATH_LEN:
		smtp_reply(s, "553 5.1.3 Path longer than 256 octets");
		break;
	case SMTP_ERR_PARAM_UNKNOWN:
		smtp_reply(s, "555 5.5.4 Unsupported parameter");
		break;
	case SMTP_ERR_PARAM_VALUE:
		smtp_reply(s, "501 5.5.4 Invalid parameter value");
		break;
	case SMTP_ERR_PARAM_DUP:
		smtp_reply(s, "501 5.5.4 Parameter given twice");
		break;
	default:
		smtp_reply(s, rcpt ? "501 5.1.3 Syntax: RCPT TO:<address> [parameters]"
			   : "501 5.1.7 Syntax: MAIL FROM:<address> [parameters]");
		break;
	}
}

static void cmd_mail(struct smtp_session *s, const char *args, size_t len)
{
	struct smtp_path path;
	struct smtp_mail_params mp;
	enum smtp_parse_err e;
	char addr[SMTP_PATH_MAX + 8];

	if (s->state == SMTP_S_GREETED) {
		smtp_reply(s, "503 5.5.1 Send HELO or EHLO first");
		return;
	}
	if (s->txn) {
		smtp_reply(s, "503 5.5.1 Nested MAIL command");
		return;
	}
	e = smtp_parse_mail(args, len, &path, &mp);
	if (e != SMTP_OK) {
		smtp_reply_parse_error(s, e, false);
		return;
	}
	if (!s->esmtp && (mp.has_size || mp.body || mp.ret || mp.envid[0] || mp.has_auth || mp.smtputf8)) {
		smtp_reply(s, "555 5.5.4 Parameters need EHLO");
		return;
	}
	if (mp.has_size && mp.size > s->t->cfg->max_message_size) {
		smtp_reply(s, "552 5.3.4 Message size exceeds fixed maximum message size");
		return;
	}
	if (path.utf8 && !mp.smtputf8) {
		smtp_reply(s, "553 5.6.7 Non-ASCII sender address needs SMTPUTF8 (RFC 6531)");
		return;
	}
	if (smtp_path_format(&path, addr, sizeof(addr)) == 0 && !path.null) {
		smtp_reply(s, "553 5.1.7 Sender address not usable");
		return;
	}
	if (!smtp_policy_sender_ok(s, &path, addr))
		return;
	s->txn = xcalloc(1, sizeof(*s->txn));
	s->txn->env = xcalloc(1, sizeof(*s->txn->env));
	s->txn->env->from = xstrdup(path.null ? "" : addr);
	s->txn->env->body = mp.body;
	s->txn->env->ret = mp.ret;
	s->txn->env->envid = mp.envid[0] ? xstrdup(mp.envid) : NULL;
	s->txn->env->smtputf8 = mp.smtputf8;
	smtp_set_state(s, SMTP_S_MAIL);
	smtp_milter_mail(s, "250 2.1.0 Ok");
}

static int smtp_resolve_rcpt(struct smtp_session *s, const char *addr, const char *orig,
			     const struct smtp_rcpt_params *rp, int depth);

static bool smtp_is_postmaster(const char *addr)
{
	return strncasecmp(addr, "postmaster@", 11) == 0;
}

/* The users file's first user (the lowest line) of domain, or of any
 * domain when domain is NULL; NULL without users. */
static const struct user *smtp_first_user(const struct users *u, const char *domain)
{
	const struct user *best = NULL;
	for (size_t i = 0; i < u->n; i++)
		if ((domain == NULL || strcasecmp(u->v[i].domain, domain) == 0) &&
		    (best == NULL || u->v[i].line < best->line))
			best = &u->v[i];
	return best;
}

/* postmaster@ a local domain that has neither an alias nor a user of that
 * name: RFC 5321 4.5.1 has it accepted all the same.  It goes to [domains]
 * postmaster, else to the domain's first user, else to the file's first
 * user; with no users at all, into its own Maildir, which local delivery
 * makes on first use. */
static int smtp_resolve_postmaster(struct smtp_session *s, const char *domain, const char *orig,
				   const struct smtp_rcpt_params *rp, int depth)
{
	const struct config *cfg = s->t->cfg;
	const struct user *u = smtp_first_user(s->t->users, domain);
	const char *target = cfg->postmaster;
	struct queue_rcpt *r;
	char *own;

	if (target[0] == '\0' && u == NULL)
		u = smtp_first_user(s->t->users, NULL);
	if (target[0] == '\0' && u != NULL)
		target = u->addr;
	/* the depth bound also ends a [domains] postmaster that names an
	 * address which comes back here */
	if (target[0] != '\0' && depth < ALIASES_MAX_DEPTH &&
	    smtp_resolve_rcpt(s, target, orig, rp, depth + 1) == 250)
		return 250;
	own = xasprintf("postmaster@%s", domain);
	for (char *p = own; *p; p++)
		*p = (char)tolower((unsigned char)*p);
	for (size_t i = 0; i < s->txn->env->nrcpt; i++)
		if (strcmp(s->txn->env->rcpt[i].addr, own) == 0) {
			free(own);
			return 250;
		}
	r = queue_env_add_rcpt(s->txn->env, own, orig);
	free(own);
	r->local = true;
	r->notify = rp->notify;
	if (rp->orcpt_type[0])
		r->orcpt = xasprintf("%s;%s", rp->orcpt_type, rp->orcpt_addr);
	return 250;
}

/* Add the recipients that addr stands for: itself if it is a user or a
 * remote address, or what its alias expands to.  Returns a reply code:
 * 250, 550 (unknown local user) or 554 (relaying denied). */
static int smtp_resolve_rcpt(struct smtp_session *s, const char *addr, const char *orig,
			     const struct smtp_rcpt_params *rp, int depth)
{
	struct tern *t = s->t;
	const char *at = strrchr(addr, '@');
	const char *domain = at ? at + 1 : "";
	const struct word_list *targets;
	struct queue_rcpt *r;
	int code = 550;

	if (!config_is_local_domain(t->cfg, domain)) {
		if (depth == 0 && !smtp_policy_may_relay(s))
			return 554;
		r = queue_env_add_rcpt(s->txn->env, addr, orig);
		r->local = false;
		goto params;
	}
	if (depth < ALIASES_MAX_DEPTH && (targets = aliases_lookup(t->aliases, addr)) != NULL) {
		for (size_t i = 0; i < targets->n; i++) {
			char *tgt = strchr(targets->v[i], '@') ? xstrdup(targets->v[i])
				: xasprintf("%s@%s", targets->v[i], domain);
			if (smtp_resolve_rcpt(s, tgt, orig, rp, depth + 1) == 250)
				code = 250;
			free(tgt);
		}
		return code;
	}
	if (users_find(t->users, addr) == NULL) {
		if (!smtp_is_postmaster(addr))
			return 550;
		return smtp_resolve_postmaster(s, domain, orig, rp, depth);
	}
	for (size_t i = 0; i < s->txn->env->nrcpt; i++)
		if (strcasecmp(s->txn->env->rcpt[i].addr, addr) == 0)
			return 250;   /* the same mailbox twice gets one copy */
	r = queue_env_add_rcpt(s->txn->env, addr, orig);
	r->local = true;
params:
	r->notify = rp->notify;
	if (rp->orcpt_type[0])
		r->orcpt = xasprintf("%s;%s", rp->orcpt_type, rp->orcpt_addr);
	return 250;
}

/* The recipients a RCPT added (from nrcpt0 on) removed again. */
void smtp_rcpt_rollback(struct smtp_session *s, size_t nrcpt0)
{
	struct queue_env *env = s->txn->env;

	while (env->nrcpt > nrcpt0) {
		struct queue_rcpt *r = &env->rcpt[--env->nrcpt];
		free(r->addr);
		free(r->orig);
		free(r->orcpt);
		free(r->last_reply);
		free(r->status);
		free(r->remote_mta);
		memset(r, 0, sizeof(*r));
	}
}

static void cmd_rcpt(struct smtp_session *s, const char *args, size_t len)
{
	struct smtp_path path;
	struct smtp_rcpt_params rp;
	enum smtp_parse_err e;
	char addr[SMTP_PATH_MAX + 8];
	size_t nrcpt0;
	bool first_new;
	int code;

	if (s->txn == NULL) {
		smtp_reply(s, "503 5.5.1 Need MAIL before RCPT");
		return;
	}
	e = smtp_parse_rcpt(args, len, &path, &rp);
	if (e != SMTP_OK) {
		smtp_reply_parse_error(s, e, true);
		return;
	}
	if (s->state == SMTP_S_CHUNKS) {
		smtp_reply(s, "503 5.5.1 RCPT after BDAT is not allowed (RFC 3030)");
		return;
	}
	if (path.utf8 && !s->txn->env->smtputf8) {
		smtp_reply(s, "553 5.6.7 Non-ASCII recipient address needs SMTPUTF8 (RFC 6531)");
		return;
	}
	if (s->txn->nrcpt_cmds >= s->t->cfg->max_recipients) {
		s->no_error_count = true;
		smtp_reply(s, "452 4.5.3 Too many recipients");
		return;
	}
	if (path.domain[0] == '\0')   /* <Postmaster> (RFC 5321 4.5.1) */
		snprintf(addr, sizeof(addr), "postmaster@%s", s->t->cfg->local_domains.v[0]);
	else if (smtp_path_format(&path, addr, sizeof(addr)) == 0) {
		smtp_reply(s, "553 5.1.3 Recipient address not usable");
		return;
	}
	if (!smtp_policy_rcpt_ok(s, &path, addr))
		return;
	nrcpt0 = s->txn->env->nrcpt;
	code = smtp_resolve_rcpt(s, addr, addr, &rp, 0);
	if (code == 554) {
		smtp_reply(s, "554 5.7.1 <%s>: Relay access denied", addr);
		return;
	}
	if (code == 550) {
		smtp_reply(s, "550 5.1.1 <%s>: No such user here", addr);
		return;
	}
	if (!smtp_filter_rcpt(s, addr)) {
		/* refused (greylisted, listed): its recipients go again */
		smtp_rcpt_rollback(s, nrcpt0);
		return;
	}
	first_new = s->txn->first_rcpt == NULL;
	if (first_new)
		s->txn->first_rcpt = xstrdup(addr);
	s->txn->nrcpt_cmds++;
	smtp_set_state(s, SMTP_S_RCPT);
	smtp_milter_rcpt(s, addr, nrcpt0, first_new, "250 2.1.5 Ok");
}

static void smtp_rfc5322_date(char *buf, size_t cap, time_t when)
{
	struct tm tm;
	localtime_r(&when, &tm);
	strftime(buf, cap, "%a, %d %b %Y %H:%M:%S %z", &tm);
}

/* RFC 5321 4.4 trace field, folded so that no line is long. */
static char *smtp_received_field(struct smtp_session *s)
{
	struct smtp_txn *t = s->txn;
	char date[64], proto[16], tls[160] = "";

	smtp_rfc5322_date(date, sizeof(date), time(NULL));
	/* RFC 3848 types; UTF8SMTP* for SMTPUTF8 transactions (RFC 6531 3.7.3) */
	snprintf(proto, sizeof(proto), "%sSMTP%s%s", t->env->smtputf8 ? "UTF8" : s->esmtp ? "E" : "",
		 s->conn.tls ? "S" : "", s->auth_user ? "A" : "");
	if (s->conn.tls)
		smtp_tls_describe(s, tls, sizeof(tls));
	return xasprintf("Received: from %s (%s%s[%s%s])\n\tby %s (tern) with %s%s id %s%s%s%s;\n\t%s\n",
			 s->helo[0] ? s->helo : "unknown",
			 s->ptr_name ? s->ptr_name : "", s->ptr_name ? " " : "",
			 s->peer.ss_family == AF_INET6 && !strchr(s->ip, '.') ? "IPv6:" : "", s->ip,
			 s->t->cfg->hostname, proto, tls, t->env->id,
			 t->env->nrcpt == 1 ? "\n\tfor <" : "", t->env->nrcpt == 1 ? t->first_rcpt : "",
			 t->env->nrcpt == 1 ? ">" : "", date);
}

/*
 * The message path of this transaction: framer (DATA's dot-unstuffing
 * one, or BDAT's) -> header work -> checks -> the queue sink, which hands
 * the message to delivery.  False (nothing built) when no queue file can
 * be started (errno says why).
 */
static bool smtp_txn_pipeline(struct smtp_session *s, struct pipe_stage *framer)
{
	struct smtp_txn *t = s->txn;
	const struct config *cfg = s->t->cfg;
	char *received;

	t->sink = sink_queue_new(s->t, t->env);   /* gives the queue id */
	if (t->sink == NULL) {
		int err = errno;
		framer->ops->free(framer);
		errno = err;
		return false;
	}
	received = smtp_received_field(s);
	t->pipe = pipeline_new(t->env);
	pipeline_add(t->pipe, framer);
	pipeline_add(t->pipe, stage_header_new(received, s->svc != SERVICE_SMTP, t->env->id, cfg->hostname,
					       cfg->max_received));
	/* the checks, in order: mail from outside is checked (SPF, DKIM,
	 * DMARC) first, as it came; submitted and trusted mail is signed
	 * last, after every stage that may change it (milters) */
	bool sign = s->svc != SERVICE_SMTP || s->trusted || s->auth_user;
	if (!sign && s->t->dns != NULL && (cfg->check_spf || cfg->check_dkim || cfg->check_dmarc != DMARC_MODE_OFF))
		pipeline_add(t->pipe, stage_verify_new(s->t, t->env));
	pipeline_add(t->pipe, stage_loop_new());
	struct pipe_stage *milter = milter_stage_new(s->milter);
	if (milter)
		pipeline_add(t->pipe, milter);
	if (sign && dkim_keyring_count(s->t->dkim_keys) > 0)   /* no key: no body hash to compute */
		pipeline_add(t->pipe, stage_sign_new(s->t->dkim_keys, s->t->delivery_pool));
	pipeline_add(t->pipe, t->sink);
	free(received);
	return true;
}

/* The message begins (DATA, or the first BDAT): the envelope gets what
 * the session knows, and the message path is built around framer. */
bool smtp_txn_start(struct smtp_session *s, struct pipe_stage *framer)
{
	struct smtp_txn *t = s->txn;

	t->env->arrival = now_unix();
	t->env->helo = xstrdup(s->helo);
	t->env->client_ip = xstrdup(s->ip);
	t->env->auth_user = s->auth_user ? xstrdup(s->auth_user) : NULL;
	return smtp_txn_pipeline(s, framer);
}

/*
 * The message could not be stored.  A full disk is 452 4.3.1 (RFC 5321
 * 4.2.2 "insufficient system storage", RFC 3463 X.3.1 "mail system
 * full"): transient, so the client keeps the message and tries again,
 * where 552 would make it bounce for a condition that clears up.  Other
 * write errors are 451 4.3.0.  Neither counts as a client error.
 */
static void smtp_reply_store_error(struct smtp_session *s, int err)
{
	s->no_error_count = true;
	if (err == ENOSPC || err == EDQUOT)
		smtp_reply(s, "452 4.3.1 Insufficient system storage, try again later");
	else
		smtp_reply(s, "451 4.3.0 Error writing the message to disk, try again later");
}

static void cmd_data(struct smtp_session *s, const char *args, size_t len)
{
	struct smtp_txn *t = s->txn;

	if (t == NULL) {
		smtp_reply(s, "503 5.5.1 Need MAIL command");
		return;
	}
	if (s->state == SMTP_S_CHUNKS) {
		smtp_reply(s, "503 5.5.1 DATA after BDAT is not allowed (RFC 3030)");
		return;
	}
	if (t->env->body == SMTP_BODY_BINARYMIME) {
		smtp_reply(s, "503 5.5.1 BODY=BINARYMIME needs BDAT (RFC 3030 3)");
		return;
	}
	if (t->env->nrcpt == 0) {
		smtp_reply(s, "554 5.5.1 No valid recipients");
		return;
	}
	if (!smtp_txn_start(s, stage_dot_new(SMTP_DATA_LINE_MAX, s->t->cfg->max_message_size))) {
		smtp_reply_store_error(s, errno);
		smtp_txn_reset(s);
		return;
	}
	smtp_set_state(s, SMTP_S_DATA);
	smtp_set_timeout(s, s->t->cfg->data_timeout);
	smtp_reply(s, "354 End data with <CR><LF>.<CR><LF>");
}

static void cmd_rset(struct smtp_session *s, const char *args, size_t len)
{
	smtp_txn_reset(s);
	smtp_reply(s, "250 2.0.0 Ok");
}

static void cmd_noop(struct smtp_session *s, const char *args, size_t len)
{
	smtp_reply(s, "250 2.0.0 Ok");
}

static void cmd_quit(struct smtp_session *s, const char *args, size_t len)
{
	smtp_reply(s, "221 2.0.0 %s closing connection", s->t->cfg->hostname);
	smtp_close(s, true);
}

static void cmd_help(struct smtp_session *s, const char *args, size_t len)
{
	smtp_reply(s, "214-2.0.0 Commands supported:\r\n"
		   "214-2.0.0   HELO EHLO MAIL RCPT DATA RSET NOOP QUIT HELP\r\n"
		   "214-2.0.0   VRFY EXPN STARTTLS AUTH ETRN\r\n"
		   "214 2.0.0 See RFC 5321");
}

static bool smtp_access(const struct smtp_session *s, unsigned mode)
{
	return mode == ACCESS_ON || (mode == ACCESS_AUTH && s->auth_user != NULL);
}

/* With VRFY off, the answer is the same whether or not the user exists
 * (RFC 5321 3.5.3), so it cannot be used to harvest addresses. */
static void cmd_vrfy(struct smtp_session *s, const char *args, size_t len)
{
	char addr[SMTP_PATH_MAX + 8];
	if (len == 0) {
		smtp_reply(s, "501 5.5.4 Syntax: VRFY address");
		return;
	}
	if (!smtp_access(s, s->t->cfg->vrfy)) {
		smtp_reply(s, "252 2.5.2 Cannot VRFY user, but will accept message and attempt delivery");
		return;
	}
	snprintf(addr, sizeof(addr), "%.*s", (int)len, args);
	if (addr[0] == '<' && addr[strlen(addr) - 1] == '>') {
		memmove(addr, addr + 1, strlen(addr));
		addr[strlen(addr) - 1] = '\0';
	}
	if (users_find(s->t->users, addr) || aliases_lookup(s->t->aliases, addr))
		smtp_reply(s, "250 2.1.5 <%s>", addr);
	else
		smtp_reply(s, "550 5.1.1 <%s>: No such user here", addr);
}

static void cmd_expn(struct smtp_session *s, const char *args, size_t len)
{
	char addr[SMTP_PATH_MAX + 8];
	const struct word_list *targets;

	if (!smtp_access(s, s->t->cfg->expn)) {
		smtp_reply(s, "502 5.5.1 EXPN not available");
		return;
	}
	if (len == 0) {
		smtp_reply(s, "501 5.5.4 Syntax: EXPN list");
		return;
	}
	snprintf(addr, sizeof(addr), "%.*s", (int)len, args);
	targets = aliases_lookup(s->t->aliases, addr);
	if (targets == NULL) {
		smtp_reply(s, "550 5.1.1 <%s>: Not a list here", addr);
		return;
	}
	struct evbuffer *out = conn_out(&s->conn);
	for (size_t i = 0; i < targets->n; i++)
		evbuffer_add_printf(out, "250%c2.1.5 <%s>\r\n", i + 1 < targets->n ? '-' : ' ', targets->v[i]);
}

/* ---- DATA ------------------------------------------------------------------- */

/* The pipeline's verdict on the message: the reply, then the session
 * goes on.  Called from within smtp_end_of_data() when every stage
 * answered at once (a refusal by the framer, say), later otherwise. */
static void smtp_verdict_cb(void *arg, const struct pipe_verdict *v)
{
	struct smtp_session *s = arg;
	struct smtp_txn *t = s->txn;

	s->cur_verb = "DATA";
	s->no_error_count = v->own_fault;
	if (v->code == 0 && v->discard) {
		log_session_discarded(s, t);   /* a milter's DISCARD: 250, not delivered */
		s->messages++;
		if (!s->peer_gone)
			smtp_reply(s, "250 2.0.0 Ok: queued as %s", t->env->id);
	} else if (v->code == 0) {
		log_session_queued(s, t);
		s->messages++;
		if (!s->peer_gone)
			smtp_reply(s, "250 2.0.0 Ok: queued as %s", t->env->id);
	} else if (!s->peer_gone) {
		smtp_reply(s, "%s", v->reply);
	}
	smtp_txn_reset(s);
	smtp_set_state(s, SMTP_S_READY);
	smtp_set_timeout(s, s->t->cfg->command_timeout);
	if (s->end_of_data_running)
		return;   /* smtp_data_input() goes on with the buffered input */
	conn_ref(&s->conn);
	if (s->peer_gone)
		smtp_close(s, false);
	else if (s->shutdown_after_commit)
		smtp_reply_shutdown(s, "421 4.3.2 Server shutting down, try again later");
	session_resume(&s->sess);   /* on with what was pipelined after the dot */
	if (s->peer_eof && s->state != SMTP_S_CLOSING)
		smtp_close(s, true);
	conn_unref(&s->conn);
}

/* End of data seen: input waits while the stages give their verdicts. */
void smtp_end_of_data(struct smtp_session *s)
{
	smtp_set_state(s, SMTP_S_COMMIT);   /* input waits (smtp_ready_cb) */
	s->end_of_data_running = true;
	pipeline_end(s->txn->pipe, smtp_verdict_cb, s);
	s->end_of_data_running = false;
	if (s->state == SMTP_S_COMMIT)
		session_pause(&s->sess);   /* until the verdict: no reading, no timer */
}

/* Feed buffered input to the pipeline.  Returns false when it must stop:
 * out of input, or end of data reached and the verdict is pending. */
static bool smtp_data_input(struct smtp_session *s)
{
	struct evbuffer *in = session_input(&s->sess);
	struct evbuffer_iovec v;
	size_t used;
	bool done = false;

	if (evbuffer_peek(in, -1, NULL, &v, 1) < 1 || v.iov_len == 0)
		return false;
	used = pipeline_feed(s->txn->pipe, v.iov_base, v.iov_len, &done);
	evbuffer_drain(in, used);
	if (done) {
		smtp_end_of_data(s);
		return s->state != SMTP_S_COMMIT;
	}
	return true;
}

/* ---- command lines (core/session.c takes them from the input) -------------- */

/* A browser or proxy made to talk to an SMTP port (a cross-protocol
 * attack: an HTML form posting SMTP commands to port 25) is cut off at its
 * request line, before any later line can run, as Postfix does.  No reply:
 * the peer is not an SMTP client, so nothing we could say helps it, and
 * nothing of ours can end up in a page it renders; the log says why. */
static void smtp_refuse_http(struct smtp_session *s)
{
	log_session_http(s);
	s->cur_verb = NULL;
	smtp_close(s, true);
}

/* True when one of the complete LF-separated pieces of p[0..n) is an HTTP
 * request line; with partial, the piece after the last LF does not count
 * (more of it may come). */
static bool smtp_http_pieces(const char *p, size_t n, bool partial)
{
	while (n > 0) {
		const char *lf = memchr(p, '\n', n);
		if (lf == NULL && partial)
			return false;
		size_t k = lf ? (size_t)(lf - p) : n;
		if (smtp_is_http_request(p, k))
			return true;
		if (lf == NULL)
			return false;
		n -= k + 1;
		p = lf + 1;
	}
	return false;
}

static size_t smtp_line_max_cb(void *arg)
{
	const struct smtp_session *s = arg;
	return s->line_max ? s->line_max : SMTP_LINE_MAX;
}

/* An HTTP request with bare LFs never gets a CRLF, so its line never
 * ends: it is caught at its first LF.  (A line whose CRLF is in goes to
 * smtp_line_cb, which checks it whole.) */
static bool smtp_http_ahead(struct smtp_session *s)
{
	struct evbuffer *in = session_input(&s->sess);
	size_t n = evbuffer_get_length(in), max = smtp_line_max_cb(s);

	if (n > max)
		n = max;
	if (n == 0 || s->conn.discard_line || evbuffer_search(in, "\n", 1, NULL).pos < 0 ||
	    evbuffer_search(in, "\r\n", 2, NULL).pos >= 0)
		return false;
	return smtp_http_pieces((const char *)evbuffer_pullup(in, (ev_ssize_t)n), n, true);
}

/* DATA and BDAT: the message octets go to the framer, not to line
 * intake.  Between commands: the cross-protocol check. */
static enum session_raw smtp_raw_cb(void *arg)
{
	struct smtp_session *s = arg;

	if (s->bdat.reading)
		return smtp_bdat_input(s) ? SESSION_RAW_MORE : SESSION_RAW_STOP;
	if (s->state != SMTP_S_DATA) {
		if (smtp_http_ahead(s)) {
			smtp_refuse_http(s);
			return SESSION_RAW_STOP;
		}
		return SESSION_RAW_NO;
	}
	/* After the dot (no commit to wait for), what follows is lines again. */
	return smtp_data_input(s) ? SESSION_RAW_MORE : SESSION_RAW_STOP;
}

static void smtp_line_too_long_cb(void *arg)
{
	struct smtp_session *s = arg;

	s->cur_verb = "line";
	s->no_error_count = false;
	if (s->sasl_pending) {
		/* RFC 4954 4: the exchange is over with 500 5.5.6 */
		smtp_reply(s, "500 5.5.6 Authentication exchange line is too long");
		smtp_auth_abort(s);
	} else {
		smtp_reply(s, "500 5.5.2 Line too long");
	}
}

/* One command line, or one line of an AUTH exchange.  Only CRLF ends a
 * line (crlf_lines): a bare LF inside, a bare CR or a NUL makes the whole
 * line unusable, and nothing of it runs. */
static void smtp_line_cb(void *arg, char *line, size_t len, bool bare_lf)
{
	struct smtp_session *s = arg;

	s->cur_verb = "line";
	s->no_error_count = false;
	if (smtp_http_pieces(line, len, false)) {
		smtp_refuse_http(s);
		return;
	}
	if (bare_lf) {
		smtp_reply(s, "500 5.5.2 Bare LF in command line, use CRLF");
		return;
	}
	if (memchr(line, '\r', len) || memchr(line, '\0', len)) {
		smtp_reply(s, "500 5.5.2 Bare CR or NUL in command line");
		return;
	}
	if (s->sasl_pending)
		smtp_auth_continue(s, line, len);
	else
		smtp_dispatch(s, line, len);
}
