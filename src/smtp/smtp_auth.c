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
 * AUTH: the mechanisms are pure functions in proto/sasl.c; this file
 * maps their statuses to RFC 4954 6 replies.  The steps that may run a
 * crypt(3) hash (PLAIN, LOGIN's password) run on the commit worker pool so
 * the loop never blocks; the user's secret is looked up and parsed on the
 * loop thread first, so the worker never touches the users table (which a
 * reload may swap).  Failures are counted per client address; each failed
 * attempt is answered after a delay that doubles, and past [auth]
 * max_failures the client gets 421 and further AUTH from that address is
 * refused for [auth] block_time.  Secrets never reach the log.
 *
 * MAIL's AUTH=<mailbox> parameter (RFC 4954 5) is parsed by smtp_parse
 * and otherwise treated as AUTH=<>: tern trusts no client's word about
 * who submitted a message.  What it records instead is the identity that
 * authenticated in this session (queue_env.auth_user), which RFC 4954 5
 * allows a relay to pass on as AUTH=<that identity>.
 */
#include "smtp/smtp_session.h"
#include "core/addrcount.h"
#include "core/config.h"
#include "core/log.h"
#include "core/tls.h"
#include "core/util.h"
#include "core/workers.h"
#include "proto/base64.h"
#include "proto/passwd.h"
#include "proto/sasl.h"
#include "store/users.h"

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

#define AUTH_DELAY_FIRST_MS 250   /* first failure; doubles each time */
#define AUTH_DELAY_MAX_MS 4000

struct smtp_auth_state {
	/* the AUTH exchange */
	struct sasl_server *sasl;
	enum sasl_mech mech;
	struct passwd_secret secret;
	bool have_secret;
	bool secret_broken;           /* the users file holds a bad secret: 454 */
	bool on_worker;               /* lookups answer only prefetch_user */
	char *prefetch_user;
	/* a step running on a worker */
	char *job_in;
	size_t job_len;
	enum sasl_status job_status;
	char *job_challenge;
	/* a failure answered after a delay */
	struct event *timer;
	const char *delayed_reply;
	bool delayed_close;
};

static struct smtp_auth_state *auth_state(struct smtp_session *s)
{
	if (s->auth == NULL)
		s->auth = xcalloc(1, sizeof(*s->auth));
	return s->auth;
}

/* ---- logging: one function per event ------------------------------------ */

static void log_auth(const struct smtp_session *s, const char *result, const char *user, unsigned failures)
{
	char q[SASL_USER_MAX * 4 + 8];
	log_event("event=auth session=%016" PRIx64 " ip=%s mech=%s result=%s user=%s failures=%u", s->id,
		  s->ip, sasl_mech_name(s->auth->mech), result,
		  user ? log_quote(q, sizeof(q), user, strlen(user)) : "-", failures);
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

	if (s->svc == SERVICE_SUBMISSIONS && s->state == SMTP_S_GREETED)
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

/* PLAIN and LOGIN send the password itself: only over TLS, from trusted
 * networks, or when the config says so. */
static bool auth_plaintext_ok(const struct smtp_session *s)
{
	return s->conn.tls || s->trusted || s->t->cfg->allow_plaintext;
}

size_t smtp_ehlo_extra(struct smtp_session *s, char *buf, size_t cap)
{
	const struct users *u = s->t->users;
	char mechs[64];
	bool plain = auth_plaintext_ok(s);
	int n;

	snprintf(mechs, sizeof(mechs), "%s%s%s", plain ? " PLAIN LOGIN" : "",
		 u->cram_ok ? " CRAM-MD5" : "", u->scram_ok ? " SCRAM-SHA-256" : "");
	n = snprintf(buf, cap, "%s%s%s%s%s",
		     s->t->tls && !s->conn.tls ? "250-STARTTLS\r\n" : "",
		     mechs[0] ? "250-AUTH" : "", mechs, mechs[0] ? "\r\n" : "",
		     plain ? "250-AUTH=LOGIN PLAIN\r\n" : "");
	if (n < 0 || (size_t)n >= cap)
		return 0;
	return (size_t)n;
}

/* ---- AUTH: the users table ------------------------------------------------- */

/* A name without '@' is a user of the first local domain ("bhwang" in the
 * seeds' dialogs). */
static const struct user *auth_find_user(const struct smtp_session *s, const char *name)
{
	const struct config *cfg = s->t->cfg;
	const struct user *u;
	char *full;

	if (strchr(name, '@') || cfg->local_domains.n == 0)
		return users_find(s->t->users, name);
	full = xasprintf("%s@%s", name, cfg->local_domains.v[0]);
	u = users_find(s->t->users, full);
	free(full);
	return u;
}

static void auth_drop_secret(struct smtp_auth_state *a)
{
	if (a->have_secret)
		passwd_secret_free(&a->secret);
	memset(&a->secret, 0, sizeof(a->secret));
	a->have_secret = false;
}

/* Loop thread only: find and parse the user's secret into a->secret. */
static const struct passwd_secret *auth_fetch(struct smtp_session *s, const char *name)
{
	struct smtp_auth_state *a = s->auth;
	const struct user *u = auth_find_user(s, name);

	auth_drop_secret(a);
	if (u == NULL)
		return NULL;
	if (!passwd_parse(u->secret, strlen(u->secret), &a->secret)) {
		log_event("event=users_bad_secret level=error user=%s", u->addr);
		a->secret_broken = true;
		return NULL;
	}
	a->have_secret = true;
	return &a->secret;
}

/* The sasl_lookup callback.  On a worker it may only hand out what the
 * loop thread fetched before. */
static const struct passwd_secret *auth_lookup_cb(void *ctx, const char *user)
{
	struct smtp_session *s = ctx;
	struct smtp_auth_state *a = s->auth;

	if (a->on_worker)
		return a->have_secret && a->prefetch_user && strcmp(user, a->prefetch_user) == 0 ?
			&a->secret : NULL;
	return auth_fetch(s, user);
}

/* ---- AUTH: the exchange ------------------------------------------------------ */

static void auth_end(struct smtp_session *s)
{
	struct smtp_auth_state *a = s->auth;
	sasl_server_free(a->sasl);
	a->sasl = NULL;
	auth_drop_secret(a);
	free(a->prefetch_user);
	a->prefetch_user = NULL;
	a->secret_broken = false;
	a->on_worker = false;
	s->sasl_pending = false;
	s->line_max = 0;
}

void smtp_auth_abort(struct smtp_session *s)
{
	if (s->auth)
		auth_end(s);
	s->sasl_pending = false;
	s->line_max = 0;
}

static void auth_delay_cb(evutil_socket_t fd, short what, void *arg)
{
	struct smtp_session *s = arg;
	struct smtp_auth_state *a = s->auth;

	event_free(a->timer);
	a->timer = NULL;
	if (s->state != SMTP_S_CLOSING) {
		s->cur_verb = "AUTH";
		s->no_error_count = false;
		if (a->delayed_close)
			smtp_reply_shutdown(s, a->delayed_reply);
		else
			smtp_reply(s, "%s", a->delayed_reply);
	}
	smtp_resume_input(s);
}

/* A failed login: count it, and answer after a growing delay. */
static void auth_failed(struct smtp_session *s)
{
	struct smtp_auth_state *a = s->auth;
	const struct config *cfg = s->t->cfg;
	const struct sockaddr *sa = (const struct sockaddr *)&s->peer;
	int64_t now = now_unix();
	unsigned n, shift;
	struct timeval tv;

	/* A known user whose secret cannot serve the mechanism (CRAM-MD5 needs
	 * {PLAIN}, SCRAM cannot use {CRYPT}) proved nothing either way: clients
	 * that try CRAM-MD5 first must not block their own users.  The reply
	 * and its delay stay the same. */
	bool unusable = a->have_secret &&
		((a->mech == SASL_CRAM_MD5 && a->secret.scheme != PASSWD_PLAIN) ||
		 (a->mech == SASL_SCRAM_SHA_256 && a->secret.scheme == PASSWD_CRYPT));

	n = addr_count_get(s->t->auth_failures, sa, now, (int64_t)cfg->auth_block_time);
	n = unusable ? n + 1 : addr_count_add(s->t->auth_failures, sa, 1, now);
	log_auth(s, unusable ? "unusable_secret" : "failed", sasl_server_user(a->sasl), n);
	auth_end(s);
	shift = n > 5 ? 4 : n - 1;
	tv.tv_sec = 0;
	tv.tv_usec = (AUTH_DELAY_FIRST_MS << shift) * 1000;
	if (tv.tv_usec > AUTH_DELAY_MAX_MS * 1000)
		tv.tv_usec = AUTH_DELAY_MAX_MS * 1000;
	tv.tv_sec = tv.tv_usec / 1000000;
	tv.tv_usec %= 1000000;
	a->delayed_close = !unusable && n >= cfg->max_auth_failures;
	a->delayed_reply = a->delayed_close ?
		"421 4.7.0 Too many authentication failures, try again later" :
		"535 5.7.8 Authentication credentials invalid";
	a->timer = evtimer_new(s->t->base, auth_delay_cb, s);
	smtp_pause_input(s);
	evtimer_add(a->timer, &tv);
}

static void auth_succeeded(struct smtp_session *s)
{
	struct smtp_auth_state *a = s->auth;
	const char *name = sasl_server_user(a->sasl);
	const struct user *u = auth_find_user(s, name);

	free(s->auth_user);
	s->auth_user = xstrdup(u ? u->addr : name);
	log_auth(s, "ok", s->auth_user, 0);
	auth_end(s);
	smtp_reply(s, "235 2.7.0 Authentication successful");
}

/* RFC 4954 4 and 6: one status, one reply. */
static void auth_result(struct smtp_session *s, enum sasl_status st, char *challenge)
{
	struct smtp_auth_state *a = s->auth;

	s->cur_verb = "AUTH";
	s->no_error_count = false;
	switch (st) {
	case SASL_CONTINUE:
		smtp_reply(s, "334 %s", challenge);
		s->sasl_pending = true;
		s->line_max = SMTP_AUTH_LINE_MAX + 2;
		break;
	case SASL_OK:
		auth_succeeded(s);
		break;
	case SASL_FAIL:
		if (a->secret_broken) {
			log_auth(s, "tempfail", sasl_server_user(a->sasl), 0);
			auth_end(s);
			s->no_error_count = true;
			smtp_reply(s, "454 4.7.0 Temporary authentication failure");
		} else {
			auth_failed(s);
		}
		break;
	case SASL_BAD_INPUT:
		log_auth(s, "bad_input", sasl_server_user(a->sasl), 0);
		auth_end(s);
		smtp_reply(s, "501 5.5.2 Cannot decode the response");
		break;
	case SASL_CANCELLED:
		log_auth(s, "cancelled", sasl_server_user(a->sasl), 0);
		auth_end(s);
		smtp_reply(s, "501 5.5.2 Authentication cancelled");
		break;
	}
	free(challenge);
}

static void auth_work(void *arg)
{
	struct smtp_session *s = arg;
	struct smtp_auth_state *a = s->auth;
	struct sasl_lookup lk = { auth_lookup_cb, s };

	a->job_status = sasl_server_step(a->sasl, a->job_in, a->job_len, &lk, &a->job_challenge);
}

static void auth_work_done(void *arg)
{
	struct smtp_session *s = arg;
	struct smtp_auth_state *a = s->auth;

	OPENSSL_cleanse(a->job_in, a->job_len);
	free(a->job_in);
	a->job_in = NULL;
	a->on_worker = false;
	if (s->state == SMTP_S_CLOSING) {
		free(a->job_challenge);
		auth_end(s);
	} else {
		auth_result(s, a->job_status, a->job_challenge);
	}
	a->job_challenge = NULL;
	smtp_resume_input(s);
}

/* The authentication identity (prepared, as the step will) a PLAIN
 * message or LOGIN's password step will look up, so the loop thread can
 * fetch it first.  NULL if it cannot
 * be known (then the worker's lookup finds nobody, as the step would). */
static char *auth_step_user(struct smtp_auth_state *a, const char *in, size_t len)
{
	unsigned char *msg;
	size_t cap, n;
	char *user = NULL;
	const unsigned char *nul1, *nul2;

	if (a->mech == SASL_LOGIN)
		return sasl_server_user(a->sasl) ? xstrdup(sasl_server_user(a->sasl)) : NULL;
	if (len == 1 && in[0] == '=')
		return NULL;
	cap = base64_decoded_max(len);
	msg = xmalloc(cap + 1);
	if (base64_decode(in, len, msg, cap, &n) && (nul1 = memchr(msg, '\0', n)) != NULL &&
	    (nul2 = memchr(nul1 + 1, '\0', n - (size_t)(nul1 + 1 - msg))) != NULL)
		user = sasl_user_prepare((const char *)nul1 + 1, (size_t)(nul2 - nul1 - 1));
	OPENSSL_cleanse(msg, cap + 1);
	free(msg);
	return user;
}

/* Does this step check a password (and so maybe run crypt(3))? */
static bool auth_step_is_costly(const struct smtp_auth_state *a, const char *in, size_t len)
{
	if (in == NULL || (len == 1 && in[0] == '*'))
		return false;
	if (len > SMTP_AUTH_LINE_MAX)
		return false;
	return a->mech == SASL_PLAIN || (a->mech == SASL_LOGIN && sasl_server_user(a->sasl) != NULL);
}

static void auth_step(struct smtp_session *s, const char *in, size_t len)
{
	struct smtp_auth_state *a = s->auth;
	struct sasl_lookup lk = { auth_lookup_cb, s };
	enum sasl_status st;
	char *challenge = NULL;

	if (auth_step_is_costly(a, in, len)) {
		a->prefetch_user = auth_step_user(a, in, len);
		if (a->prefetch_user)
			auth_fetch(s, a->prefetch_user);
		a->on_worker = true;
		a->job_in = xstrndup(in, len);
		a->job_len = len;
		smtp_pause_input(s);
		workers_submit(s->t->commit_pool, auth_work, auth_work_done, s);
		return;
	}
	st = sasl_server_step(a->sasl, in, len, &lk, &challenge);
	auth_result(s, st, challenge);
}

void smtp_auth_continue(struct smtp_session *s, const char *line, size_t len)
{
	if (s->auth == NULL || s->auth->sasl == NULL) {
		s->sasl_pending = false;
		return;
	}
	auth_step(s, line, len);
}

/* State checks of RFC 4954 4; false when a reply was sent. */
static bool auth_allowed(struct smtp_session *s)
{
	const struct config *cfg = s->t->cfg;
	const struct sockaddr *sa = (const struct sockaddr *)&s->peer;

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
	if (addr_count_get(s->t->auth_failures, sa, now_unix(), (int64_t)cfg->auth_block_time) >=
	    cfg->max_auth_failures) {
		log_event("event=auth_blocked session=%016" PRIx64 " ip=%s", s->id, s->ip);
		smtp_reply_shutdown(s, "421 4.7.0 Too many authentication failures, try again later");
		return false;
	}
	return true;
}

/* AUTH mechanism [initial-response] */
void smtp_cmd_auth(struct smtp_session *s, const char *args, size_t len)
{
	struct smtp_auth_state *a;
	const char *sp = memchr(args, ' ', len);
	size_t mlen = sp ? (size_t)(sp - args) : len;
	const char *ir = sp ? sp + 1 : NULL;
	size_t ir_len = sp ? len - mlen - 1 : 0;
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
	if (sasl_mech_plaintext(mech) && !auth_plaintext_ok(s)) {
		smtp_reply(s, "538 5.7.11 Encryption required for requested authentication mechanism");
		return;
	}
	a = auth_state(s);
	a->mech = mech;
	a->sasl = sasl_server_new(mech, s->t->cfg->hostname);
	auth_step(s, ir, ir_len);
}

void smtp_auth_free(struct smtp_session *s)
{
	struct smtp_auth_state *a = s->auth;
	if (a == NULL)
		return;
	sasl_server_free(a->sasl);
	auth_drop_secret(a);
	free(a->prefetch_user);
	free(a->job_in);
	free(a->job_challenge);
	if (a->timer)
		event_free(a->timer);
	free(a);
	s->auth = NULL;
}
