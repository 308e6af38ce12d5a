/*
 * smtp_auth.c - STARTTLS (RFC 3207), implicit TLS (RFC 8314 3.3) and AUTH
 * (RFC 4954) for the SMTP server session.
 *
 * TLS: a session starts on a plain socket bufferevent (core/conn.c).  On
 * port 465 it is replaced at once by an OpenSSL socket bufferevent on the
 * same fd, and the greeting goes out when the handshake is done.  STARTTLS
 * replies 220 through the bufferevent's write events, drops whatever the
 * client pipelined behind it (RFC 3207 4.2: a "STARTTLS\r\nRSET\r\n"
 * packet gets no reply to RSET), waits until the 220 has left, then swaps
 * in the OpenSSL bufferevent (conn_starttls) and starts the session over:
 * no HELO, no transaction, no authentication.
 *
 * AUTH: login/ runs the exchange (SASL steps, the users lookup, the
 * password checks on its workers, throttling and the auth log events);
 * this file frames it as RFC 4954 4 and 6 do: "334 challenge" lines and
 * one reply per status.  Input is paused while a step is in flight, so
 * pipelined commands wait for the AUTH reply.  Secrets never reach the
 * log.
 *
 * MAIL's AUTH=<mailbox> parameter (RFC 4954 5) is parsed by smtp_parse
 * and otherwise treated as AUTH=<>: tern trusts no client's word about
 * who submitted a message.  What it records instead is the identity that
 * authenticated in this session (queue_env.auth_user), which RFC 4954 5
 * allows a relay to pass on as AUTH=<that identity>.
 */
#include "smtp/smtp_session.h"
#include "core/log.h"
#include "core/tls.h"
#include "core/util.h"
#include "login/login.h"
#include "proto/sasl.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <inttypes.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The AUTH exchange in progress: its login request (login.h), 0 if none. */
struct smtp_auth_state {
	uint64_t login_id;
};

static struct smtp_auth_state *auth_state(struct smtp_session *s)
{
	if (s->auth == NULL)
		s->auth = xcalloc(1, sizeof(*s->auth));
	return s->auth;
}

/* ---- TLS ---------------------------------------------------------------- */

void smtp_tls_describe(struct smtp_session *s, char *buf, size_t cap)
{
	SSL *ssl = s->conn.tls ? bufferevent_openssl_get_ssl(s->conn.bev) : NULL;
	char d[128];

	if (cap == 0)
		return;
	buf[0] = '\0';
	if (ssl == NULL)
		return;
	tls_describe(ssl, d, sizeof(d));
	if (d[0])
		snprintf(buf, cap, " (%s)", d);
}

/* The handshake is done (conn.c logged it).  On 465 the greeting comes
 * now, unless the session was refused meanwhile (its 421 goes instead);
 * 465 has no STARTTLS, so this is its only handshake. */
void smtp_tls_connected_cb(void *arg)
{
	struct smtp_session *s = arg;

	if (s->svc == SERVICE_SUBMISSIONS && s->state == SMTP_S_GREETED && !smtp_milter_connect(s))
		smtp_greet(s);
}

/* Port 465: TLS from the first octet; smtp_greet() runs on CONNECTED. */
int smtp_tls_accept_hook(struct smtp_session *s)
{
	SSL *ssl;

	if (s->svc != SERVICE_SUBMISSIONS)
		return 0;
	if (s->t->tls == NULL || (ssl = tls_ctx_new_ssl(s->t->tls)) == NULL) {
		conn_log_tls_failed(&s->conn, ERR_get_error());
		return -1;
	}
	return conn_start_tls(&s->conn, ssl) ? 0 : -1;
}

/* RFC 3207 4.2: after the handshake the client knows nothing, and so the
 * server forgets everything it learnt before. */
static void starttls_reset_session(struct smtp_session *s)
{
	smtp_txn_reset(s);
	smtp_set_state(s, SMTP_S_GREETED);
	s->helo[0] = '\0';
	s->esmtp = false;
	free(s->auth_user);
	s->auth_user = NULL;
}

/* The 220 has left and TLS is in place (ok), or the switch did not
 * happen: the session closed meanwhile, or the bufferevent could not be
 * made (then it closes). */
void smtp_starttls_done_cb(void *arg, bool ok)
{
	struct smtp_session *s = arg;

	if (ok)
		starttls_reset_session(s);
	else if (s->state != SMTP_S_CLOSING)
		smtp_close(s, false);
}

void smtp_cmd_starttls(struct smtp_session *s, const char *args, size_t len)
{
	SSL *ssl;

	if (s->conn.tls) {
		smtp_reply(s, "503 5.5.1 TLS already active");
		return;
	}
	if (s->t->tls == NULL) {
		smtp_reply(s, "502 5.5.1 STARTTLS not available");
		return;
	}
	if ((ssl = tls_ctx_new_ssl(s->t->tls)) == NULL) {
		s->no_error_count = true;
		smtp_reply(s, "454 4.7.0 TLS not available due to temporary reason");
		return;
	}
	/* The 220 goes out through the write events, and the switch waits
	 * until it has drained.  RFC 3207 4.2: what was pipelined behind
	 * STARTTLS is dropped. */
	session_starttls(&s->sess, ssl);
	smtp_reply(s, "220 2.0.0 Ready to start TLS");
}

/* ---- EHLO ------------------------------------------------------------------ */

static struct login_peer auth_peer(const struct smtp_session *s)
{
	struct login_peer p = {
		.addr = (const struct sockaddr *)&s->peer,
		.ip = s->ip,
		.session = s->id,
		.service = smtp_service_name(s->svc),
		.tls = s->conn.tls,
		.trusted = s->trusted,
	};
	return p;
}

size_t smtp_ehlo_extra(struct smtp_session *s, char *buf, size_t cap)
{
	struct login_peer p = auth_peer(s);
	enum sasl_mech m[LOGIN_MECHS_MAX];
	size_t nm = login_mechs(s->t->login, &p, m);
	char mechs[64] = "";
	size_t used = 0;
	int n;

	for (size_t i = 0; i < nm; i++)
		used += (size_t)snprintf(mechs + used, sizeof(mechs) - used, " %s", sasl_mech_name(m[i]));
	n = snprintf(buf, cap, "%s%s%s%s%s",
		     s->t->tls && !s->conn.tls ? "250-STARTTLS\r\n" : "",
		     nm ? "250-AUTH" : "", mechs, nm ? "\r\n" : "",
		     login_plaintext_ok(s->t->login, &p) ? "250-AUTH=LOGIN PLAIN\r\n" : "");
	if (n < 0 || (size_t)n >= cap)
		return 0;
	return (size_t)n;
}

/* ---- AUTH: the exchange, driven by login/ ------------------------------------ */

static void auth_exchange_over(struct smtp_session *s)
{
	if (s->auth)
		s->auth->login_id = 0;
	s->sasl_pending = false;
	s->line_max = 0;
}

/* RFC 4954 4 and 6: one status, one reply.  Every failure, whether the
 * user exists or not, is the same 535 (login/ delayed it). */
static void auth_reply(struct smtp_session *s, const struct login_result *r)
{
	switch (r->status) {
	case LOGIN_CONTINUE:
		smtp_reply(s, "334 %s", r->challenge);
		s->sasl_pending = true;
		s->line_max = SMTP_AUTH_LINE_MAX + 2;
		break;
	case LOGIN_OK:
		free(s->auth_user);
		s->auth_user = xstrdup(r->user);
		smtp_reply(s, "235 2.7.0 Authentication successful");
		break;
	case LOGIN_FAILED:
	case LOGIN_BLOCKED:
		/* The last failure allowed closes, as a blocked address does. */
		if (r->status == LOGIN_FAILED && !r->close)
			smtp_reply(s, "535 5.7.8 Authentication credentials invalid");
		else
			smtp_reply_shutdown(s, "421 4.7.0 Too many authentication failures, try again later");
		break;
	case LOGIN_TEMPFAIL:
		s->no_error_count = true;
		smtp_reply(s, "454 4.7.0 Temporary authentication failure");
		break;
	case LOGIN_BAD_INPUT:
		smtp_reply(s, "501 5.5.2 Cannot decode the response");
		break;
	case LOGIN_CANCELLED:
		smtp_reply(s, "501 5.5.2 Authentication cancelled");
		break;
	case LOGIN_NEED_TLS:
		smtp_reply(s, "538 5.7.11 Encryption required for requested authentication mechanism");
		break;
	}
}

/* The answer to a step; input was paused (and a reference held) since. */
static void auth_answer_cb(void *arg, const struct login_result *r)
{
	struct smtp_session *s = arg;

	if (r->status != LOGIN_CONTINUE)
		auth_exchange_over(s);
	if (s->state != SMTP_S_CLOSING) {
		s->cur_verb = "AUTH";
		s->no_error_count = false;
		auth_reply(s, r);
	}
	smtp_resume_input(s);
}

/* A line of the exchange (the client's answer to a 334). */
void smtp_auth_continue(struct smtp_session *s, const char *line, size_t len)
{
	if (s->auth == NULL || s->auth->login_id == 0) {
		s->sasl_pending = false;
		return;
	}
	s->sasl_pending = false;
	smtp_pause_input(s);
	login_sasl_step(s->t->login, s->auth->login_id, line, len);
}

/* The exchange ends without an answer (its line was too long). */
void smtp_auth_abort(struct smtp_session *s)
{
	if (s->auth)
		login_cancel(s->t->login, s->auth->login_id);
	auth_exchange_over(s);
}

/* State checks of RFC 4954 4; false when a reply was sent. */
static bool auth_allowed(struct smtp_session *s)
{
	if (!s->esmtp) {
		smtp_reply(s, "503 5.5.1 Send EHLO first");
		return false;
	}
	if (s->auth_user) {
		smtp_reply(s, "503 5.5.1 Already authenticated");
		return false;
	}
	if (s->txn) {
		smtp_reply(s, "503 5.5.1 AUTH not permitted during a mail transaction");
		return false;
	}
	return true;
}

/* AUTH mechanism [initial-response] */
void smtp_cmd_auth(struct smtp_session *s, const char *args, size_t len)
{
	const char *sp = memchr(args, ' ', len);
	size_t mlen = sp ? (size_t)(sp - args) : len;
	const char *ir = sp ? sp + 1 : NULL;
	size_t ir_len = sp ? len - mlen - 1 : 0;
	struct login_peer p = auth_peer(s);
	enum sasl_mech mech;

	if (!auth_allowed(s))
		return;
	if (len == 0 || (ir && (ir_len == 0 || memchr(ir, ' ', ir_len)))) {
		smtp_reply(s, "501 5.5.4 Syntax: AUTH mechanism [initial-response]");
		return;
	}
	if (!sasl_mech_parse(args, mlen, &mech)) {
		smtp_reply(s, "504 5.5.4 Unrecognized authentication type");
		return;
	}
	smtp_pause_input(s);
	auth_state(s)->login_id = login_sasl_start(s->t->login, &p, mech, ir, ir_len, auth_answer_cb, s);
}

void smtp_auth_free(struct smtp_session *s)
{
	if (s->auth == NULL)
		return;
	/* An exchange waiting for the client's next line; a step in flight
	 * holds the session (smtp_pause_input), so none is. */
	login_cancel(s->t->login, s->auth->login_id);
	free(s->auth);
	s->auth = NULL;
}
