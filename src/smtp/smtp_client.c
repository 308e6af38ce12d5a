/*
 * smtp_client.c - the SMTP client session (see smtp_client.h).
 *
 * RFC 5321 §3.3 (mail transaction), §4.1.1.1 (EHLO, and HELO for older
 * servers after 500/502), §4.2 (replies), §4.5.2 (dot-stuffing, in
 * smtp_stream.c), §4.5.3.2 (timeouts); RFC 2920 (MAIL, the RCPTs and DATA
 * in one write); RFC 1870 (SIZE= and refusing an over-size message before
 * MAIL); RFC 6152 (BODY=8BITMIME only when offered, downgrade otherwise);
 * RFC 3207 (STARTTLS; anything the server sent after 220 is dropped; a
 * refused STARTTLS goes on in plain text unless TLS is required, §4);
 * RFC 4954 (AUTH PLAIN, LOGIN); RFC 3461 (NOTIFY, ORCPT, RET, ENVID);
 * RFC 3030 (BDAT chunks instead of DATA towards a host that offers
 * CHUNKING, BINARYMIME only to one that offers it); RFC 6531 (SMTPUTF8 on
 * MAIL, and a message that needs it is never sent to a host without it).
 *
 * One state enum, assigned only by client_set_state(), which logs
 * old -> new and sets the state's timeout.  A state's entry action sends
 * its command (client_enter()); the reply decides the next state
 * (client_on_reply()).  Replies are parsed by proto/smtp_reply; anything
 * malformed, over-long or never-ending is a failure of this session.
 */
#include "smtp/smtp_client.h"
#include "smtp/smtp_stream.h"
#include "core/listener.h"
#include "core/log.h"
#include "core/util.h"
#include "proto/base64.h"
#include "proto/smtp_parse.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CLIENT_LINE_MAX (SMTP_REPLY_LINE_MAX + 2)
#define CLIENT_OUT_HIGH (256 * 1024)	/* stop producing DATA above this */
#define CLIENT_OUT_LOW (64 * 1024)	/* and go on below this */
#define CLIENT_CONNECT_TIMEOUT 30
#define CLIENT_QUIT_TIMEOUT 5

enum client_state {
	CS_CONNECT, CS_GREETING, CS_EHLO, CS_RSET_HELO, CS_HELO, CS_STARTTLS, CS_TLS,
	CS_AUTH, CS_AUTH_USER, CS_AUTH_PASS, CS_READY, CS_MAIL, CS_RCPT, CS_DATA,
	CS_BODY, CS_DOT, CS_DISCARD, CS_RSET, CS_QUIT, CS_DEAD,
};

static const char *const client_state_names[] = {
	[CS_CONNECT] = "connect", [CS_GREETING] = "greeting", [CS_EHLO] = "ehlo",
	[CS_RSET_HELO] = "rset-helo", [CS_HELO] = "helo", [CS_STARTTLS] = "starttls",
	[CS_TLS] = "tls", [CS_AUTH] = "auth", [CS_AUTH_USER] = "auth-user",
	[CS_AUTH_PASS] = "auth-pass", [CS_READY] = "ready", [CS_MAIL] = "mail",
	[CS_RCPT] = "rcpt", [CS_DATA] = "data", [CS_BODY] = "body", [CS_DOT] = "dot",
	[CS_DISCARD] = "discard", [CS_RSET] = "rset", [CS_QUIT] = "quit", [CS_DEAD] = "dead",
};

/* RFC 5321 §4.5.3.2, in seconds: what we wait for in each state. */
static const unsigned client_state_timeouts[] = {
	[CS_CONNECT] = CLIENT_CONNECT_TIMEOUT, [CS_GREETING] = 300, [CS_EHLO] = 300,
	[CS_RSET_HELO] = 300, [CS_HELO] = 300, [CS_STARTTLS] = 300, [CS_TLS] = 300,
	[CS_AUTH] = 300, [CS_AUTH_USER] = 300, [CS_AUTH_PASS] = 300, [CS_READY] = 0,
	[CS_MAIL] = 300, [CS_RCPT] = 300, [CS_DATA] = 120, [CS_BODY] = 180, [CS_DOT] = 600,
	[CS_DISCARD] = 600, [CS_RSET] = 300, [CS_QUIT] = CLIENT_QUIT_TIMEOUT, [CS_DEAD] = 0,
};

struct smtp_client {
	struct event_base *base;
	struct bufferevent *bev;
	enum client_state state;
	struct smtp_client_opts opts;
	char *helo, *peer_name, *auth_user, *auth_pass;
	char peer[64];
	smtp_client_cb cb;
	void *arg;
	int refs;
	bool dead;			/* free when the last reference goes */
	bool tls;
	bool esmtp;
	struct smtp_ehlo_caps caps;
	struct smtp_reply reply;
	unsigned fail_code;
	enum smtp_client_fail fail_kind;
	char fail_status[12];
	char fail_text[SMTP_CLIENT_TEXT_MAX];
	struct event *timer;		/* the current state's timeout */
	struct event *deferred;		/* an event not raised inside a call */
	enum smtp_client_event deferred_ev;
	/* the transaction */
	struct smtp_client_msg *msg;
	size_t reply_idx;		/* replies of this transaction so far */
	size_t next_rcpt;		/* next RCPT to send (no pipelining) */
	size_t accepted;
	bool mail_ok;
	bool pipelined;
	struct smtp_stream stream;
	bool stream_open;
	/* BDAT (RFC 3030): the body goes in counted chunks, each answered */
	bool bdat;
	size_t bdat_sent, bdat_answered;
	bool bdat_last_sent;		/* "BDAT n LAST" is in the output */
	bool bdat_failed;		/* a chunk was refused: send no more */
};

static void client_enter(struct smtp_client *c, enum client_state st);
static void client_set_state(struct smtp_client *c, enum client_state to);
static void client_read_cb(struct bufferevent *bev, void *arg);
static void client_write_cb(struct bufferevent *bev, void *arg);
static void client_event_cb(struct bufferevent *bev, short what, void *arg);
static void client_fail(struct smtp_client *c, unsigned code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* ---- logging ------------------------------------------------------------ */

static void log_client_state(const struct smtp_client *c, enum client_state from, enum client_state to)
{
	log_event("event=client_state session=%016" PRIx64 " peer=%s from=%s to=%s", c->opts.session_id,
		  c->peer, client_state_names[from], client_state_names[to]);
}

static void log_client_error(const struct smtp_client *c, const char *what)
{
	char q[300];
	log_event("event=client_error session=%016" PRIx64 " peer=%s state=%s error=%s", c->opts.session_id,
		  c->peer, client_state_names[c->state], log_quote(q, sizeof(q), what, strlen(what)));
}

void smtp_client_log_tls_fallback(const struct smtp_client *c, const char *queue_id, const char *action,
				  const char *reason)
{
	char q[300];

	log_event("event=tls_fallback session=%016" PRIx64 " peer=%s%s%s action=%s reason=%s",
		  c->opts.session_id, c->peer, queue_id ? " queue=" : "", queue_id ? queue_id : "", action,
		  log_quote(q, sizeof(q), reason, strlen(reason)));
}

/* ---- references and the callback --------------------------------------- */

static void client_destroy(struct smtp_client *c)
{
	if (c->bev)
		bufferevent_free(c->bev);
	event_free(c->deferred);
	event_free(c->timer);
	if (c->stream_open)
		smtp_stream_close(&c->stream);
	free(c->helo);
	free(c->peer_name);
	free(c->auth_user);
	if (c->auth_pass) {
		explicit_bzero(c->auth_pass, strlen(c->auth_pass));
		free(c->auth_pass);
	}
	free(c);
}

static void client_ref(struct smtp_client *c)
{
	c->refs++;
}

static void client_unref(struct smtp_client *c)
{
	if (--c->refs == 0 && c->dead)
		client_destroy(c);
}

static void client_notify(struct smtp_client *c, enum smtp_client_event ev)
{
	client_ref(c);
	c->cb(c, ev, c->arg);
	client_unref(c);
}

void smtp_client_free(struct smtp_client *c)
{
	if (c == NULL || c->dead)
		return;
	c->dead = true;
	client_set_state(c, CS_DEAD);	/* stops the state's timer too */
	if (c->bev)
		bufferevent_disable(c->bev, EV_READ | EV_WRITE);
	event_del(c->deferred);
	if (c->refs == 0)
		client_destroy(c);
}

/* ---- the state writer --------------------------------------------------- */

static void client_set_state(struct smtp_client *c, enum client_state to)
{
	unsigned secs = client_state_timeouts[to];
	struct timeval tv = { 0, 0 };

	if (c->state != to)
		log_client_state(c, c->state, to);
	c->state = to;
	/* One deadline per state, not reset by each byte that arrives, so a
	 * reply that trickles in forever still ends (§4.5.3.2). */
	evtimer_del(c->timer);
	if (secs == 0)
		return;
	if (c->opts.timeout_cap && secs > c->opts.timeout_cap)
		secs = (unsigned)c->opts.timeout_cap;
	tv.tv_sec = secs;
	evtimer_add(c->timer, &tv);
}

/* ---- output ------------------------------------------------------------- */

static void client_send(struct smtp_client *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void client_send(struct smtp_client *c, const char *fmt, ...)
{
	va_list ap;
	struct evbuffer *out = bufferevent_get_output(c->bev);

	va_start(ap, fmt);
	evbuffer_add_vprintf(out, fmt, ap);
	va_end(ap);
	evbuffer_add(out, "\r\n", 2);
}

/* "code text" with the lines joined by spaces, clipped. */
static void client_reply_text(const struct smtp_reply *r, char *out, size_t cap)
{
	int n = snprintf(out, cap, "%u %s", r->code, r->text);
	for (size_t i = 0; n > 0 && out[i]; i++)
		if (out[i] == '\n')
			out[i] = ' ';
}

static void client_fail(struct smtp_client *c, unsigned code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(c->fail_text, sizeof(c->fail_text), fmt, ap);
	va_end(ap);
	c->fail_code = code;
	c->fail_kind = SMTP_CLIENT_FAIL_OTHER;
	log_client_error(c, c->fail_text);
}

/* ---- the transaction's results ------------------------------------------ */

static void rcpt_set(struct smtp_client_rcpt *r, unsigned code, const char *status, const char *text)
{
	r->code = code;
	snprintf(r->status, sizeof(r->status), "%s", status);
	snprintf(r->reply, sizeof(r->reply), "%s", text);
}

/* The enhanced status of a reply, or the class default (RFC 3463). */
static void reply_status(const struct smtp_reply *r, char *out, size_t cap)
{
	if (r->enhanced[0])
		snprintf(out, cap, "%s", r->enhanced);
	else
		snprintf(out, cap, "%c.0.0", (char)('0' + r->code / 100 % 10));
}

static void rcpt_from_reply(struct smtp_client_rcpt *rc, const struct smtp_reply *r)
{
	char st[12], text[SMTP_CLIENT_TEXT_MAX];

	reply_status(r, st, sizeof(st));
	client_reply_text(r, text, sizeof(text));
	rcpt_set(rc, r->code, st, text);
}

/* Recipients without any reply yet (MAIL failed, or the session broke). */
static void rcpts_set_unanswered(struct smtp_client *c, unsigned code, const char *status, const char *text)
{
	for (size_t i = 0; i < c->msg->nrcpts; i++)
		if (c->msg->rcpts[i].code == 0)
			rcpt_set(&c->msg->rcpts[i], code, status, text);
}

/* Recipients accepted by RCPT: DATA or the final dot decides them. */
static void rcpts_set_accepted(struct smtp_client *c, const struct smtp_reply *r)
{
	for (size_t i = 0; i < c->msg->nrcpts; i++)
		if (c->msg->rcpts[i].code / 100 == 2)
			rcpt_from_reply(&c->msg->rcpts[i], r);
}

static void client_txn_done(struct smtp_client *c)
{
	if (c->stream_open) {
		smtp_stream_close(&c->stream);
		c->stream_open = false;
	}
	c->msg = NULL;
	client_notify(c, SMTP_CLIENT_TXN_DONE);
}

/* A network error, timeout or broken reply: the session is over.  In a
 * transaction, recipients without a final result are deferred. */
static void client_broken(struct smtp_client *c, const char *why)
{
	enum client_state was = c->state;

	if (c->dead)
		return;
	log_client_error(c, why);
	if (c->bev)
		bufferevent_disable(c->bev, EV_READ | EV_WRITE);
	client_set_state(c, CS_DEAD);
	if (c->msg != NULL) {
		char text[SMTP_CLIENT_TEXT_MAX];
		snprintf(text, sizeof(text), "421 4.4.2 %s: %s", c->peer, why);
		for (size_t i = 0; i < c->msg->nrcpts; i++) {
			struct smtp_client_rcpt *r = &c->msg->rcpts[i];
			/* After the final dot was sent, a 250 RCPT has no
			 * result yet: deferring may duplicate, never lose. */
			if (r->code == 0 || r->code / 100 == 2)
				rcpt_set(r, 421, "4.4.2", text);
		}
		client_txn_done(c);
	} else if (was == CS_QUIT) {
		client_notify(c, SMTP_CLIENT_CLOSED);
		smtp_client_free(c);
	} else if (was == CS_READY) {
		client_notify(c, SMTP_CLIENT_CLOSED);
	} else {
		if (c->fail_code == 0 && c->fail_text[0] == '\0')
			snprintf(c->fail_text, sizeof(c->fail_text), "%s", why);
		/* A peer that breaks during or right after the handshake may
		 * just not speak TLS well: the caller may try without. */
		if (was == CS_STARTTLS || was == CS_TLS || (was == CS_EHLO && c->tls))
			c->fail_kind = SMTP_CLIENT_FAIL_TLS;
		client_notify(c, SMTP_CLIENT_FAILED);
	}
}

/* After QUIT: the last event, then the session goes. */
static void client_quit_done(struct smtp_client *c)
{
	if (c->dead)
		return;
	client_notify(c, SMTP_CLIENT_CLOSED);
	smtp_client_free(c);
}

/* Set-up failed with a reply or a policy reason: QUIT politely. */
static void client_setup_failed(struct smtp_client *c)
{
	client_ref(c);
	client_notify(c, SMTP_CLIENT_FAILED);
	if (!c->dead)
		smtp_client_quit(c);
	client_unref(c);
}

/* ---- entry actions ------------------------------------------------------ */

static void client_send_mail(struct smtp_client *c)
{
	const struct smtp_client_msg *m = c->msg;
	struct evbuffer *out = bufferevent_get_output(c->bev);

	evbuffer_add_printf(out, "MAIL FROM:<%s>", m->from);
	if (c->caps.size)
		evbuffer_add_printf(out, " SIZE=%" PRIu64, m->len + (m->binary ? 0 : m->lines));
	if (m->binary)
		evbuffer_add_printf(out, " BODY=BINARYMIME");
	else if (m->eight_bit && c->caps.eightbitmime)
		evbuffer_add_printf(out, " BODY=8BITMIME");
	if (m->smtputf8 && c->caps.smtputf8)
		evbuffer_add_printf(out, " SMTPUTF8");
	if (c->caps.dsn && m->ret == SMTP_RET_FULL)
		evbuffer_add_printf(out, " RET=FULL");
	else if (c->caps.dsn && m->ret == SMTP_RET_HDRS)
		evbuffer_add_printf(out, " RET=HDRS");
	if (c->caps.dsn && m->envid && m->envid[0]) {
		char x[3 * 100 + 1];
		size_t n = smtp_xtext_encode(m->envid, strnlen(m->envid, 100), x, sizeof(x));
		evbuffer_add_printf(out, " ENVID=%.*s", (int)n, x);
	}
	evbuffer_add(out, "\r\n", 2);
}

static void client_send_rcpt(struct smtp_client *c, const struct smtp_client_rcpt *r)
{
	struct evbuffer *out = bufferevent_get_output(c->bev);

	evbuffer_add_printf(out, "RCPT TO:<%s>", r->addr);
	if (c->caps.dsn && r->notify) {
		if (r->notify & SMTP_NOTIFY_NEVER)
			evbuffer_add_printf(out, " NOTIFY=NEVER");
		else
			evbuffer_add_printf(out, " NOTIFY=%s%s%s%s%s",
				(r->notify & SMTP_NOTIFY_SUCCESS) ? "SUCCESS" : "",
				(r->notify & SMTP_NOTIFY_SUCCESS) && (r->notify & (SMTP_NOTIFY_FAILURE | SMTP_NOTIFY_DELAY)) ? "," : "",
				(r->notify & SMTP_NOTIFY_FAILURE) ? "FAILURE" : "",
				(r->notify & SMTP_NOTIFY_FAILURE) && (r->notify & SMTP_NOTIFY_DELAY) ? "," : "",
				(r->notify & SMTP_NOTIFY_DELAY) ? "DELAY" : "");
	}
	if (c->caps.dsn && r->orcpt) {
		const char *semi = strchr(r->orcpt, ';');
		if (semi && semi != r->orcpt && strlen(semi + 1) <= 500) {
			char x[3 * 500 + 1];
			size_t n = smtp_xtext_encode(semi + 1, strlen(semi + 1), x, sizeof(x));
			evbuffer_add_printf(out, " ORCPT=%.*s;%.*s", (int)(semi - r->orcpt), r->orcpt, (int)n, x);
		}
	}
	evbuffer_add(out, "\r\n", 2);
}

static void client_send_auth(struct smtp_client *c)
{
	if (c->caps.auth_mechs & SMTP_AUTH_PLAIN) {
		size_t ul = strlen(c->auth_user), pl = strlen(c->auth_pass);
		char *raw = xmalloc(ul + pl + 2);
		char *b64;

		raw[0] = '\0';
		memcpy(raw + 1, c->auth_user, ul);
		raw[ul + 1] = '\0';
		memcpy(raw + ul + 2, c->auth_pass, pl);
		b64 = base64_encode_alloc(raw, ul + pl + 2);
		client_send(c, "AUTH PLAIN %s", b64);
		explicit_bzero(raw, ul + pl + 2);
		explicit_bzero(b64, strlen(b64));
		free(raw);
		free(b64);
	} else {
		client_send(c, "AUTH LOGIN");
	}
}

static void client_send_b64(struct smtp_client *c, const char *s)
{
	char *b64 = base64_encode_alloc(s, strlen(s));
	client_send(c, "%s", b64);
	explicit_bzero(b64, strlen(b64));
	free(b64);
}

static void client_start_tls(struct smtp_client *c)
{
	SSL *ssl = SSL_new(c->opts.ssl_ctx);
	struct bufferevent *tb;
	struct in6_addr a6;

	/* RFC 3207 §4.2: nothing sent before the handshake counts. */
	evbuffer_drain(bufferevent_get_input(c->bev), evbuffer_get_length(bufferevent_get_input(c->bev)));
	if (ssl == NULL) {
		client_broken(c, "SSL_new failed");
		return;
	}
	if (c->peer_name && c->peer_name[0] && inet_pton(AF_INET, c->peer_name, &a6) != 1 &&
	    inet_pton(AF_INET6, c->peer_name, &a6) != 1)
		SSL_set_tlsext_host_name(ssl, c->peer_name);
	tb = bufferevent_openssl_filter_new(c->base, c->bev, ssl, BUFFEREVENT_SSL_CONNECTING,
					    BEV_OPT_CLOSE_ON_FREE);
	if (tb == NULL) {
		SSL_free(ssl);
		client_broken(c, "TLS filter failed");
		return;
	}
	c->bev = tb;
	bufferevent_openssl_set_allow_dirty_shutdown(tb, 1);
	bufferevent_setcb(tb, client_read_cb, client_write_cb, client_event_cb, c);
	bufferevent_setwatermark(tb, EV_WRITE, CLIENT_OUT_LOW, 0);
	bufferevent_enable(tb, EV_READ | EV_WRITE);
}

static void client_enter(struct smtp_client *c, enum client_state st)
{
	client_set_state(c, st);
	switch (st) {
	case CS_EHLO: client_send(c, "EHLO %s", c->helo); break;
	case CS_RSET_HELO: client_send(c, "RSET"); break;
	case CS_HELO: client_send(c, "HELO %s", c->helo); break;
	case CS_STARTTLS: client_send(c, "STARTTLS"); break;
	case CS_AUTH: client_send_auth(c); break;
	case CS_AUTH_USER: client_send_b64(c, c->auth_user); break;
	case CS_AUTH_PASS: client_send_b64(c, c->auth_pass); break;
	case CS_MAIL:
		client_send_mail(c);
		if (c->pipelined) {
			for (size_t i = 0; i < c->msg->nrcpts; i++)
				client_send_rcpt(c, &c->msg->rcpts[i]);
			/* BDAT waits for the RCPT replies instead: a chunk
			 * sent to no recipient would be sent for nothing. */
			if (!c->bdat)
				client_send(c, "DATA");
		}
		break;
	case CS_RCPT: client_send_rcpt(c, &c->msg->rcpts[c->next_rcpt]); break;
	case CS_DATA: client_send(c, "DATA"); break;
	case CS_DISCARD: client_send(c, "."); break;
	case CS_RSET: client_send(c, "RSET"); break;
	case CS_QUIT: client_send(c, "QUIT"); break;
	default: break;
	}
}

/* ---- after the greeting and EHLO/HELO: TLS, AUTH, ready ----------------- */

static void client_after_hello(struct smtp_client *c)
{
	if (!c->tls && c->caps.starttls && c->opts.ssl_ctx) {
		client_enter(c, CS_STARTTLS);
		return;
	}
	if (!c->tls && c->opts.tls_required) {
		client_fail(c, 0, "454 4.7.5 %s offers no STARTTLS, and TLS is required for this destination",
			    c->peer);
		client_setup_failed(c);
		return;
	}
	if (c->auth_user) {
		if (!c->tls && !c->opts.auth_in_clear) {
			client_fail(c, 0, "454 4.7.0 not sending credentials to %s without TLS", c->peer);
			client_setup_failed(c);
			return;
		}
		if (!(c->caps.auth_mechs & (SMTP_AUTH_PLAIN | SMTP_AUTH_LOGIN))) {
			client_fail(c, 0, "454 4.7.0 %s offers neither AUTH PLAIN nor LOGIN", c->peer);
			client_setup_failed(c);
			return;
		}
		client_enter(c, CS_AUTH);
		return;
	}
	client_set_state(c, CS_READY);
	client_notify(c, SMTP_CLIENT_READY);
}

/* A set-up command was refused; kind says which step (HELLO or OTHER). */
static void client_reply_failed(struct smtp_client *c, const struct smtp_reply *r, enum smtp_client_fail kind)
{
	char text[SMTP_CLIENT_TEXT_MAX];

	client_reply_text(r, text, sizeof(text));
	client_fail(c, r->code, "%s", text);
	c->fail_kind = kind;
	reply_status(r, c->fail_status, sizeof(c->fail_status));
	client_setup_failed(c);
}

/* ---- the transaction's replies (pipelined or one by one) ---------------- */

/* RCPTs are answered: the body goes in BDAT chunks (client_bdat_fill) if
 * anyone took it. */
static void client_bdat_start(struct smtp_client *c)
{
	if (!c->mail_ok || c->accepted == 0) {
		client_enter(c, CS_RSET);
		return;
	}
	client_set_state(c, CS_BODY);
	bufferevent_trigger(c->bev, EV_WRITE, BEV_TRIG_IGNORE_WATERMARKS);
}

/* One BDAT reply.  The first refusal decides the accepted recipients and
 * stops the chunks; the replies of chunks already sent are still read,
 * then RSET.  With every chunk answered and LAST among them, the last
 * reply decides them (RFC 3030 §2: it is the end-of-data reply). */
static void client_bdat_reply(struct smtp_client *c, const struct smtp_reply *r)
{
	if (++c->bdat_answered > c->bdat_sent) {
		client_broken(c, "BDAT reply when none was expected");
		return;
	}
	if (smtp_reply_class(r) != 2 && !c->bdat_failed) {
		c->bdat_failed = true;
		rcpts_set_accepted(c, r);
		if (c->state == CS_BODY)
			client_set_state(c, CS_DOT);
	}
	if (c->bdat_answered < c->bdat_sent || (!c->bdat_last_sent && !c->bdat_failed))
		return;
	if (c->bdat_failed) {
		client_enter(c, CS_RSET);
		return;
	}
	rcpts_set_accepted(c, r);
	client_set_state(c, CS_READY);
	client_txn_done(c);
}

static void client_txn_reply(struct smtp_client *c, const struct smtp_reply *r)
{
	struct smtp_client_msg *m = c->msg;
	size_t idx = c->reply_idx++;

	if (idx == 0) {				/* MAIL */
		c->mail_ok = smtp_reply_class(r) == 2;
		if (!c->mail_ok)
			for (size_t i = 0; i < m->nrcpts; i++)
				rcpt_from_reply(&m->rcpts[i], r);
		if (c->pipelined)
			client_set_state(c, CS_RCPT);
		else if (c->mail_ok)
			client_enter(c, CS_RCPT);
		else
			client_enter(c, CS_RSET);
		return;
	}
	if (idx <= m->nrcpts) {			/* RCPT */
		if (c->mail_ok) {
			rcpt_from_reply(&m->rcpts[idx - 1], r);
			if (smtp_reply_class(r) == 2)
				c->accepted++;
		}
		if (c->pipelined) {
			if (idx == m->nrcpts && c->bdat)
				client_bdat_start(c);
			else if (idx == m->nrcpts)
				client_set_state(c, CS_DATA);
		} else if (++c->next_rcpt < m->nrcpts) {
			client_enter(c, CS_RCPT);
		} else if (c->bdat) {
			client_bdat_start(c);
		} else {
			client_enter(c, c->accepted ? CS_DATA : CS_RSET);
		}
		return;
	}
	if (r->code == 354) {			/* DATA */
		if (c->mail_ok && c->accepted) {
			client_set_state(c, CS_BODY);
			bufferevent_trigger(c->bev, EV_WRITE, BEV_TRIG_IGNORE_WATERMARKS);
		} else {
			client_enter(c, CS_DISCARD);
		}
		return;
	}
	if (c->mail_ok && c->accepted)
		rcpts_set_accepted(c, r);
	client_enter(c, CS_RSET);
}

static void client_on_reply(struct smtp_client *c, const struct smtp_reply *r)
{
	unsigned cls = smtp_reply_class(r);

	switch (c->state) {
	case CS_GREETING:
		if (r->code == 220)
			client_enter(c, CS_EHLO);
		else
			client_reply_failed(c, r, SMTP_CLIENT_FAIL_HELLO);
		break;
	case CS_EHLO:
		if (cls == 2) {
			c->esmtp = true;
			smtp_ehlo_caps(r, &c->caps);
			client_after_hello(c);
		} else if ((r->code == 500 || r->code == 502) && !c->tls) {
			client_enter(c, CS_RSET_HELO);
		} else {
			client_reply_failed(c, r, SMTP_CLIENT_FAIL_HELLO);
		}
		break;
	case CS_RSET_HELO:
		client_enter(c, CS_HELO);
		break;
	case CS_HELO:
		if (cls == 2) {
			memset(&c->caps, 0, sizeof(c->caps));
			client_after_hello(c);
		} else {
			client_reply_failed(c, r, SMTP_CLIENT_FAIL_HELLO);
		}
		break;
	case CS_STARTTLS:
		if (r->code == 220) {
			client_set_state(c, CS_TLS);
			client_start_tls(c);
		} else if (c->opts.tls_required) {
			client_reply_failed(c, r, SMTP_CLIENT_FAIL_OTHER);
		} else {
			/* RFC 3207 §4: still the plain session of before
			 * STARTTLS, so go on in it (as Postfix does). */
			char text[SMTP_CLIENT_TEXT_MAX];

			client_reply_text(r, text, sizeof(text));
			smtp_client_log_tls_fallback(c, NULL, "plaintext", text);
			c->caps.starttls = false;
			client_after_hello(c);
		}
		break;
	case CS_AUTH:
		if (r->code == 235) {
			client_set_state(c, CS_READY);
			client_notify(c, SMTP_CLIENT_READY);
		} else if (r->code == 334 && !(c->caps.auth_mechs & SMTP_AUTH_PLAIN)) {
			client_enter(c, CS_AUTH_USER);
		} else {
			client_reply_failed(c, r, SMTP_CLIENT_FAIL_OTHER);
		}
		break;
	case CS_AUTH_USER:
		if (r->code == 334)
			client_enter(c, CS_AUTH_PASS);
		else
			client_reply_failed(c, r, SMTP_CLIENT_FAIL_OTHER);
		break;
	case CS_AUTH_PASS:
		if (r->code == 235) {
			client_set_state(c, CS_READY);
			client_notify(c, SMTP_CLIENT_READY);
		} else {
			client_reply_failed(c, r, SMTP_CLIENT_FAIL_OTHER);
		}
		break;
	case CS_MAIL:
	case CS_RCPT:
	case CS_DATA:
		client_txn_reply(c, r);
		break;
	case CS_BODY:
		if (c->bdat)
			client_bdat_reply(c, r);
		else
			client_broken(c, "reply when none was expected");
		break;
	case CS_DOT:
		if (c->bdat) {
			client_bdat_reply(c, r);
			break;
		}
		rcpts_set_accepted(c, r);
		client_set_state(c, CS_READY);
		client_txn_done(c);
		break;
	case CS_DISCARD:
		client_enter(c, CS_RSET);
		break;
	case CS_RSET:
		if (cls == 2) {
			client_set_state(c, CS_READY);
			client_txn_done(c);
		} else {
			client_broken(c, "RSET refused");
		}
		break;
	case CS_QUIT:
		client_quit_done(c);
		break;
	default:
		client_broken(c, "reply when none was expected");
		break;
	}
}

/* ---- libevent callbacks ------------------------------------------------- */

static void client_read_cb(struct bufferevent *bev, void *arg)
{
	struct smtp_client *c = arg;
	char line[CLIENT_LINE_MAX + 1];

	client_ref(c);
	while (!c->dead && c->state != CS_TLS && c->state != CS_DEAD) {
		struct evbuffer *in = bufferevent_get_input(c->bev);
		size_t eol_len = 0;
		struct evbuffer_ptr p = evbuffer_search_eol(in, NULL, &eol_len, EVBUFFER_EOL_CRLF_STRICT);
		enum smtp_reply_status st;

		if (p.pos < 0) {
			if (evbuffer_get_length(in) > CLIENT_LINE_MAX)
				client_broken(c, "reply line too long");
			break;
		}
		if ((size_t)p.pos > SMTP_REPLY_LINE_MAX) {
			client_broken(c, "reply line too long");
			break;
		}
		evbuffer_remove(in, line, (size_t)p.pos);
		evbuffer_drain(in, eol_len);
		st = smtp_reply_feed(&c->reply, line, (size_t)p.pos);
		if (st == SMTP_REPLY_MORE)
			continue;
		if (st != SMTP_REPLY_DONE) {
			client_broken(c, smtp_reply_status_str(st));
			break;
		}
		client_on_reply(c, &c->reply);
		smtp_reply_init(&c->reply);
	}
	client_unref(c);
}

/* The body as BDAT chunks, one per stream block, while the output is below
 * its mark; the last is "BDAT n LAST" (n may be 0). */
static void client_bdat_fill(struct smtp_client *c, struct evbuffer *out)
{
	struct evbuffer *chunk = evbuffer_new();

	while (!c->dead && !c->bdat_failed && !c->bdat_last_sent &&
	       evbuffer_get_length(out) < CLIENT_OUT_HIGH) {
		int r = smtp_stream_fill(&c->stream, chunk);
		size_t n;

		/* the file's last block and the finish go in one LAST chunk,
		 * not in a chunk and a "BDAT 0 LAST" */
		if (r > 0 && smtp_stream_at_end(&c->stream))
			r = smtp_stream_fill(&c->stream, chunk);
		n = evbuffer_get_length(chunk);

		if (r < 0) {
			client_broken(c, "queue file read error");
			break;
		}
		if (r > 0 && n == 0)
			continue;
		evbuffer_add_printf(out, "BDAT %zu%s\r\n", n, r == 0 ? " LAST" : "");
		evbuffer_add_buffer(out, chunk);
		c->bdat_sent++;
		c->bdat_last_sent = r == 0;
	}
	evbuffer_free(chunk);
	if (!c->dead && c->state == CS_BODY && c->bdat_last_sent)
		client_set_state(c, CS_DOT);
}

static void client_write_cb(struct bufferevent *bev, void *arg)
{
	struct smtp_client *c = arg;
	struct evbuffer *out = bufferevent_get_output(c->bev);

	if (c->state != CS_BODY)
		return;
	client_ref(c);
	/* Each block written restarts the data block timeout. */
	client_set_state(c, CS_BODY);
	if (c->bdat) {
		client_bdat_fill(c, out);
		client_unref(c);
		return;
	}
	while (!c->dead && evbuffer_get_length(out) < CLIENT_OUT_HIGH) {
		int r = smtp_stream_fill(&c->stream, out);
		if (r < 0) {
			client_broken(c, "queue file read error");
			break;
		}
		if (r == 0) {
			client_set_state(c, CS_DOT);
			break;
		}
	}
	client_unref(c);
}

static void client_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct smtp_client *c = arg;

	client_ref(c);
	if (what & BEV_EVENT_CONNECTED) {
		if (c->state == CS_CONNECT) {
			client_set_state(c, CS_GREETING);
		} else if (c->state == CS_TLS) {
			c->tls = true;
			memset(&c->caps, 0, sizeof(c->caps));
			client_enter(c, CS_EHLO);
		}
	} else if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR | BEV_EVENT_TIMEOUT)) {
		char why[200];
		unsigned long e = c->state == CS_TLS ? bufferevent_get_openssl_error(c->bev) : 0;

		const char *reason = e ? ERR_reason_error_string(e) : NULL;

		if (e)
			snprintf(why, sizeof(why), "TLS: %s", reason ? reason : "handshake failed");
		else if (what & BEV_EVENT_EOF)
			snprintf(why, sizeof(why), "connection closed by peer");
		else
			snprintf(why, sizeof(why), "%s", evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
		if (c->state == CS_QUIT)
			client_quit_done(c);
		else
			client_broken(c, why);
	}
	client_unref(c);
}

static void client_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct smtp_client *c = arg;
	char why[64];

	client_ref(c);
	if (c->state == CS_QUIT) {
		client_quit_done(c);
	} else {
		snprintf(why, sizeof(why), "timeout in state %s", client_state_names[c->state]);
		client_broken(c, why);
	}
	client_unref(c);
}

static void client_deferred_cb(evutil_socket_t fd, short what, void *arg)
{
	struct smtp_client *c = arg;

	if (c->deferred_ev == SMTP_CLIENT_TXN_DONE)
		client_txn_done(c);
	else if (c->deferred_ev == SMTP_CLIENT_CLOSED)
		client_quit_done(c);
	else
		client_broken(c, c->fail_text[0] ? c->fail_text : "connect failed");
}

/* ---- the public side ---------------------------------------------------- */

static void client_format_peer(const struct sockaddr *sa, char *out, size_t cap)
{
	char ip[INET6_ADDRSTRLEN];

	listener_format_ip(sa, ip, sizeof(ip));
	if (sa->sa_family == AF_INET6)
		snprintf(out, cap, "[%s]:%u", ip, ntohs(((const struct sockaddr_in6 *)sa)->sin6_port));
	else
		snprintf(out, cap, "%s:%u", ip, ntohs(((const struct sockaddr_in *)sa)->sin_port));
}

struct smtp_client *smtp_client_new(struct event_base *base, const struct sockaddr *sa, socklen_t len,
				    const struct smtp_client_opts *opts, smtp_client_cb cb, void *arg)
{
	struct smtp_client *c = xcalloc(1, sizeof(*c));

	c->base = base;
	c->opts = *opts;
	c->helo = xstrdup(opts->helo);
	c->peer_name = opts->peer_name ? xstrdup(opts->peer_name) : NULL;
	c->opts.peer_name = c->peer_name;
	if (opts->auth_user && opts->auth_user[0]) {
		c->auth_user = xstrdup(opts->auth_user);
		c->auth_pass = xstrdup(opts->auth_pass ? opts->auth_pass : "");
	}
	c->opts.auth_user = c->opts.auth_pass = NULL;
	c->cb = cb;
	c->arg = arg;
	c->state = CS_CONNECT;
	smtp_reply_init(&c->reply);
	client_format_peer(sa, c->peer, sizeof(c->peer));
	c->timer = evtimer_new(base, client_timer_cb, c);
	c->deferred = event_new(base, -1, 0, client_deferred_cb, c);
	c->bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
	if (c->bev == NULL) {
		client_destroy(c);
		return NULL;
	}
	bufferevent_setcb(c->bev, client_read_cb, client_write_cb, client_event_cb, c);
	bufferevent_setwatermark(c->bev, EV_WRITE, CLIENT_OUT_LOW, 0);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
	client_set_state(c, CS_CONNECT);
	if (bufferevent_socket_connect(c->bev, (struct sockaddr *)sa, (int)len) < 0) {
		snprintf(c->fail_text, sizeof(c->fail_text), "connect to %s: %s", c->peer, strerror(errno));
		c->deferred_ev = SMTP_CLIENT_FAILED;
		event_active(c->deferred, EV_TIMEOUT, 1);
	}
	return c;
}

/* Results decided before anything is sent (SIZE, 8-bit): TXN_DONE comes
 * from the loop, never inside smtp_client_send(). */
static void client_txn_refuse(struct smtp_client *c, unsigned code, const char *status, const char *text)
{
	rcpts_set_unanswered(c, code, status, text);
	c->deferred_ev = SMTP_CLIENT_TXN_DONE;
	event_active(c->deferred, EV_TIMEOUT, 1);
}

/* Whether a message given with SMTPUTF8 needs it: a non-ASCII address in
 * this transaction, or 8-bit octets (which may be UTF-8 header fields;
 * where they are is not recorded, so any counts). */
static bool client_needs_smtputf8(const struct smtp_client_msg *m)
{
	bool hi;
	if (!m->smtputf8)
		return false;
	if (m->eight_bit || !smtp_utf8_valid(m->from, strlen(m->from), &hi) || hi)
		return true;
	for (size_t i = 0; i < m->nrcpts; i++)
		if (!smtp_utf8_valid(m->rcpts[i].addr, strlen(m->rcpts[i].addr), &hi) || hi)
			return true;
	return false;
}

/* The 7-bit form's DKIM-Signature fields, from after the message in the
 * queue file (a few KiB at most). */
static bool client_read_dkim7(const struct smtp_client_msg *m, char **out)
{
	char *buf;

	if (m->dkim7_len > 65536 || m->dkim8_len > m->len)
		return false;
	buf = xmalloc((size_t)m->dkim7_len);
	if (pread(m->fd, buf, (size_t)m->dkim7_len, (off_t)(m->offset + m->len)) != (ssize_t)m->dkim7_len) {
		free(buf);
		return false;
	}
	*out = buf;
	return true;
}

void smtp_client_send(struct smtp_client *c, struct smtp_client_msg *m)
{
	uint64_t size = m->len + (m->binary ? 0 : m->lines);
	bool convert = m->eight_bit && !c->caps.eightbitmime && !m->binary;
	char *front = NULL;
	enum smtp_stream_mode mode;
	enum mime8_verdict v;
	char text[SMTP_CLIENT_TEXT_MAX];

	c->msg = m;
	c->reply_idx = c->next_rcpt = c->accepted = 0;
	c->mail_ok = false;
	c->pipelined = c->caps.pipelining;
	c->bdat = c->caps.chunking;
	c->bdat_sent = c->bdat_answered = 0;
	c->bdat_last_sent = c->bdat_failed = false;
	for (size_t i = 0; i < m->nrcpts; i++) {
		m->rcpts[i].code = 0;
		m->rcpts[i].status[0] = m->rcpts[i].reply[0] = '\0';
	}
	if (c->state != CS_READY) {
		client_txn_refuse(c, 421, "4.4.2", "421 4.4.2 connection not ready");
		return;
	}
	if (c->caps.size && c->caps.size_max && size > c->caps.size_max) {
		snprintf(text, sizeof(text), "552 5.3.4 message size %" PRIu64 " exceeds the limit of %" PRIu64
			 " at %s", size, c->caps.size_max, c->peer);
		client_txn_refuse(c, 552, "5.3.4", text);
		return;
	}
	if (m->binary && !(c->caps.chunking && c->caps.binarymime)) {
		/* RFC 3030 §3: no BDAT path to this host, and a binary body
		 * cannot go by DATA; tern does not re-encode it. */
		snprintf(text, sizeof(text), "554 5.6.3 %s does not support BINARYMIME and CHUNKING", c->peer);
		client_txn_refuse(c, 554, "5.6.3", text);
		return;
	}
	if (!c->caps.smtputf8 && client_needs_smtputf8(m)) {
		/* RFC 6531 §3.2: never downgraded here, which would change
		 * addresses or headers; the sender hears of it instead. */
		snprintf(text, sizeof(text), "553 5.6.7 %s does not support SMTPUTF8, which this message needs",
			 c->peer);
		client_txn_refuse(c, 553, "5.6.7", text);
		return;
	}
	if (convert && m->dkim_signed && (m->dkim7_len == 0 || !client_read_dkim7(m, &front))) {
		/* 8bit -> quoted-printable would change the signed body and
		 * break tern's own DKIM signature without a word: refused
		 * instead, as a message the host cannot take (RFC 6152 3).
		 * Signed mail that mime8 can convert has signatures over the
		 * converted form too (msgauth/stage_sign.c): not this one. */
		snprintf(text, sizeof(text), "554 5.6.3 %s does not support 8BITMIME and converting the message"
			 " would break its DKIM signature", c->peer);
		client_txn_refuse(c, 554, "5.6.3", text);
		return;
	}
	mode = m->binary ? SMTP_STREAM_RAW : c->bdat ? SMTP_STREAM_BDAT : SMTP_STREAM_DATA;
	if (front != NULL)   /* the 7-bit form's signatures in place of the 8-bit form's */
		v = smtp_stream_open(&c->stream, m->fd, m->offset + m->dkim8_len, m->len - m->dkim8_len, convert, mode,
				     front, (size_t)m->dkim7_len);
	else
		v = smtp_stream_open(&c->stream, m->fd, m->offset, m->len, convert, mode, NULL, 0);
	free(front);
	if (v != MIME8_OK) {
		smtp_stream_close(&c->stream);
		snprintf(text, sizeof(text), "554 5.6.3 %s does not support 8BITMIME and the message cannot be"
			 " converted (%s)", c->peer, mime8_verdict_str(v));
		client_txn_refuse(c, 554, "5.6.3", text);
		return;
	}
	c->stream_open = true;
	client_enter(c, CS_MAIL);
}

void smtp_client_quit(struct smtp_client *c)
{
	if (c->dead)
		return;
	c->msg = NULL;
	if (c->state == CS_DEAD || c->state == CS_CONNECT || c->bev == NULL) {
		client_set_state(c, CS_QUIT);
		c->deferred_ev = SMTP_CLIENT_CLOSED;
		event_active(c->deferred, EV_TIMEOUT, 1);
		return;
	}
	client_enter(c, CS_QUIT);
}

void smtp_client_set_cb(struct smtp_client *c, smtp_client_cb cb, void *arg)
{
	c->cb = cb;
	c->arg = arg;
}

unsigned smtp_client_error(const struct smtp_client *c, const char **text)
{
	*text = c->fail_text;
	return c->fail_code;
}

enum smtp_client_fail smtp_client_fail_kind(const struct smtp_client *c)
{
	return c->fail_kind;
}

const char *smtp_client_error_status(const struct smtp_client *c)
{
	return c->fail_status;
}

const char *smtp_client_peer(const struct smtp_client *c)
{
	return c->peer;
}

bool smtp_client_tls(const struct smtp_client *c)
{
	return c->tls;
}

const struct smtp_ehlo_caps *smtp_client_caps(const struct smtp_client *c)
{
	return &c->caps;
}
