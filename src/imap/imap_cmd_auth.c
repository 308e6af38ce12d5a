/*
 * imap_cmd_auth.c - IMAP commands of any state and of the not
 * authenticated state: CAPABILITY, NOOP, LOGOUT, ID (RFC 2971), ENABLE
 * (RFC 5161), NAMESPACE (RFC 2342), STARTTLS (RFC 9051 6.2.1), LOGIN
 * (6.2.3, refused before TLS as LOGINDISABLED says) and AUTHENTICATE
 * (6.2.2, SASL-IR RFC 4959), checked by login/ and answered by id.
 */
#include "imap/imap_session.h"
#include "core/config.h"
#include "core/listener.h"
#include "core/tls.h"
#include "core/util.h"
#include "login/login.h"
#include "store/maildir.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <openssl/err.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

void imap_cmd_capability(struct imap_session *s, const struct imap_arg *a, bool uid)
{
	evbuffer_add_printf(imap_out(s), "* CAPABILITY ");
	imap_capability_list(s, imap_out(s));
	evbuffer_add(imap_out(s), "\r\n", 2);
	imap_ok(s, "CAPABILITY completed");
}

static void imap_noop_done(struct imap_job *j)
{
	if (!j->gone)
		imap_ok(j->s, "NOOP completed");
}

void imap_cmd_noop(struct imap_session *s, const struct imap_arg *a, bool uid)
{
	struct imap_job *j;

	if (s->sel == NULL) {
		imap_ok(s, "NOOP completed");
		return;
	}
	/* NOOP is how clients poll: a look at the disk, on a worker */
	j = imap_job_new(s, s->sel->path, "noop", NULL, imap_noop_done);
	j->scan = true;
	imap_job_submit(j);
}

void imap_cmd_logout(struct imap_session *s, const struct imap_arg *a, bool uid)
{
	imap_untagged(s, "BYE tern IMAP server signing off");
	s->cur = NULL;
	imap_set_state(s, IMAP_S_AUTH);   /* no untagged updates after BYE */
	imap_select_close(s);
	imap_ok(s, "LOGOUT completed");
	imap_close(s, true);
}

void imap_cmd_id(struct imap_session *s, const struct imap_arg *a, bool uid)
{
	if (a == NULL || (a->type != IMAP_ARG_NIL && a->type != IMAP_ARG_LIST)) {
		imap_bad(s, "Syntax: ID (fields) or ID NIL");
		return;
	}
	imap_untagged(s, "ID (\"name\" \"tern\" \"version\" \"0.1\")");
	imap_ok(s, "ID completed");
}

void imap_cmd_enable(struct imap_session *s, const struct imap_arg *a, bool uid)
{
	struct evbuffer *b = evbuffer_new();

	if (a == NULL) {
		evbuffer_free(b);
		imap_bad(s, "Syntax: ENABLE capability ...");
		return;
	}
	for (; a; a = a->next) {
		if (a->type != IMAP_ARG_ATOM)
			continue;
		if (strcasecmp(a->s, "IMAP4rev2") == 0 && !s->rev2) {
			s->rev2 = true;
			evbuffer_add_printf(b, " IMAP4rev2");
		} else if ((strcasecmp(a->s, "UTF8=ACCEPT") == 0) && !s->utf8) {
			s->utf8 = true;   /* the parser takes UTF-8 from the next command */
			evbuffer_add_printf(b, " UTF8=ACCEPT");
		} else if (strcasecmp(a->s, "CONDSTORE") == 0 && !s->condstore) {
			s->condstore = true;
			evbuffer_add_printf(b, " CONDSTORE");
		} else if (strcasecmp(a->s, "QRESYNC") == 0 && !s->qresync) {
			/* RFC 7162 3.2.3: QRESYNC implies CONDSTORE */
			s->qresync = s->condstore = true;
			evbuffer_add_printf(b, " QRESYNC");
		}
	}
	evbuffer_add_printf(imap_out(s), "* ENABLED");
	evbuffer_add_buffer(imap_out(s), b);
	evbuffer_add(imap_out(s), "\r\n", 2);
	evbuffer_free(b);
	imap_ok(s, "ENABLE completed");
}

void imap_cmd_namespace(struct imap_session *s, const struct imap_arg *a, bool uid)
{
	imap_untagged(s, "NAMESPACE ((\"\" \"/\")) NIL NIL");
	imap_ok(s, "NAMESPACE completed");
}

void imap_cmd_starttls(struct imap_session *s, const struct imap_arg *a, bool uid)
{
	SSL *ssl;

	if (s->conn.tls) {
		imap_bad(s, "TLS already active");
		return;
	}
	if (s->t->tls == NULL || (ssl = tls_ctx_new_ssl(s->t->tls)) == NULL) {
		imap_no(s, "[UNAVAILABLE] TLS not available");
		return;
	}
	/* RFC 9051 6.2.1: whatever was pipelined behind STARTTLS is dropped;
	 * the OK leaves in the clear, then the handshake. */
	session_starttls(&s->sess, ssl);
	imap_ok(s, "Begin TLS negotiation now");
	s->waiting = true;
}

/* ---- logins ------------------------------------------------------------------ */

static struct login_peer imap_login_peer(const struct imap_session *s)
{
	struct login_peer p = {
		.addr = (const struct sockaddr *)&s->peer, .ip = s->ip, .session = s->id,
		.service = service_name(s->svc), .tls = s->conn.tls,
		/* issue 9: plaintext only after TLS (or [auth] allow_plaintext),
		 * whatever the address, trusted networks and loopback included */
		.trusted = false,
	};
	return p;
}

void imap_auth_end(struct imap_session *s)
{
	login_cancel(s->t->login, s->login_id);
	s->login_id = 0;
	s->sasl_pending = false;
}

/* The first login's folders (imap_store_setup) are made on a worker. */
static void imap_setup_work(struct imap_job *j)
{
	if (!imap_store_setup(j->arg))
		j->err = errno;
}

static void imap_setup_done(struct imap_job *j)
{
	struct imap_session *s = j->s;

	free(j->arg);
	if (j->gone)
		return;
	if (j->err) {
		imap_log_error(s, "setup", j->err);
		free(s->user);
		free(s->maildir);
		s->user = s->maildir = NULL;
		imap_no(s, "[UNAVAILABLE] Cannot open the mailbox, try again later");
		return;
	}
	imap_set_state(s, IMAP_S_AUTH);
	evbuffer_add_printf(imap_out(s), "%s OK [CAPABILITY ", s->tag);
	imap_capability_list(s, imap_out(s));
	evbuffer_add_printf(imap_out(s), "] Logged in\r\n");
}

static void imap_login_ok(struct imap_session *s, const struct login_result *r)
{
	struct imap_job *j;

	s->user = xstrdup(r->user);
	s->maildir = maildir_path(s->t->cfg->state_dir, r->domain, r->local);
	j = imap_job_new(s, NULL, "setup", imap_setup_work, imap_setup_done);
	j->arg = xstrdup(s->maildir);
	imap_job_submit(j);
}

static void imap_login_answer_cb(void *arg, const struct login_result *r)
{
	struct imap_session *s = arg;
	static const struct imap_command login = { "LOGIN", NULL, IMAP_F_NO_ERROR_COUNT };

	conn_batch_begin(&s->conn);
	s->waiting = false;
	if (r->status != LOGIN_CONTINUE)
		s->login_id = 0;
	if (s->state == IMAP_S_LOGOUT)
		goto out;
	s->cur = &login;
	switch (r->status) {
	case LOGIN_CONTINUE:
		evbuffer_add_printf(imap_out(s), "+ %s\r\n", r->challenge);
		s->sasl_pending = true;
		break;
	case LOGIN_OK:
		imap_login_ok(s, r);
		break;
	case LOGIN_FAILED:
		/* The same answer for an unknown user and a wrong password. */
		imap_no(s, "[AUTHENTICATIONFAILED] Authentication failed");
		if (r->close) {
			imap_untagged(s, "BYE Too many failed logins");
			imap_close(s, true);
		}
		break;
	case LOGIN_BLOCKED:
		imap_no(s, "[AUTHENTICATIONFAILED] Too many failed logins from your address, try again later");
		imap_untagged(s, "BYE Too many failed logins");
		imap_close(s, true);
		break;
	case LOGIN_TEMPFAIL:
		imap_no(s, "[UNAVAILABLE] Temporary authentication failure, try again later");
		break;
	case LOGIN_BAD_INPUT:
		imap_bad(s, "Invalid SASL response");
		break;
	case LOGIN_CANCELLED:
		imap_bad(s, "Authentication cancelled");
		break;
	case LOGIN_NEED_TLS:
		imap_no(s, "[PRIVACYREQUIRED] Plaintext authentication disallowed without TLS");
		break;
	}
	if (!s->sasl_pending)
		imap_resume(s);
	else
		session_process(&s->sess);
out:
	conn_batch_end(&s->conn);
	conn_unref(&s->conn);
}

static void imap_login_wait(struct imap_session *s)
{
	s->waiting = true;
	bufferevent_disable(s->conn.bev, EV_READ);
	conn_ref(&s->conn);
}

void imap_cmd_login(struct imap_session *s, const struct imap_arg *a, bool uid)
{
	struct login_peer p = imap_login_peer(s);
	const char *user, *pw;
	size_t ulen, plen;
	char *u;

	if (!login_plaintext_ok(s->t->login, &p)) {
		imap_no(s, "[PRIVACYREQUIRED] LOGIN disabled without TLS, use STARTTLS");
		return;
	}
	if (!imap_arg_astring(a, &user, &ulen) || a->next == NULL ||
	    !imap_arg_astring(a->next, &pw, &plen) || a->next->next != NULL || ulen == 0 ||
	    ulen > SASL_USER_MAX) {
		imap_bad(s, "Syntax: LOGIN user password");
		return;
	}
	u = xstrndup(user, ulen);
	imap_login_wait(s);
	s->login_id = login_password(s->t->login, &p, u, pw, plen, imap_login_answer_cb, s);
	free(u);
}

void imap_cmd_authenticate(struct imap_session *s, const struct imap_arg *a, bool uid)
{
	struct login_peer p = imap_login_peer(s);
	enum sasl_mech mech;
	const char *ir = NULL;
	size_t irlen = 0;

	if (a == NULL || a->type != IMAP_ARG_ATOM || (a->next && a->next->type != IMAP_ARG_ATOM) ||
	    (a->next && a->next->next)) {
		imap_bad(s, "Syntax: AUTHENTICATE mechanism [initial-response]");
		return;
	}
	if (!sasl_mech_parse(a->s, a->len, &mech)) {
		imap_no(s, "[CANNOT] Unsupported authentication mechanism");
		return;
	}
	if (a->next) {
		ir = a->next->s;
		irlen = a->next->len;
	}
	imap_login_wait(s);
	s->login_id = login_sasl_start(s->t->login, &p, mech, ir, irlen, imap_login_answer_cb, s);
}

void imap_auth_continue(struct imap_session *s, const char *line, size_t len)
{
	static const struct imap_command auth = { "AUTHENTICATE", NULL, IMAP_F_NO_ERROR_COUNT };
	s->cur = &auth;
	s->sasl_pending = false;
	imap_login_wait(s);
	login_sasl_step(s->t->login, s->login_id, line, len);
}
