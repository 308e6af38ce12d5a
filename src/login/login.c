/*
 * login.c - the authentication service (see login.h for the contract).
 *
 * One request is one struct login_req, from the call that starts it to
 * its last answer.  It is in one stage at a time:
 *
 *   WORKER  a step runs on the pool: sasl_server_step(), or a password /
 *           APOP check, with the user looked up in the table referenced
 *           when the step was submitted;
 *   IDLE    a SASL exchange waits for the client's next line;
 *   TIMER   an answer waits for its moment: a failure's delay, or an
 *           answer known at once (blocked, TLS needed) that still must not
 *           run inside the call that asked.
 *
 * A request on a worker belongs to the job until its done() runs; cancel
 * only marks it, and done() frees it.  Any other request is freed by
 * cancel at once.  The session knows only the id, so an answer for a
 * session that has gone finds no request and is dropped.
 *
 * Throttling (one policy for every protocol, RFC 4954 4 "SHOULD enforce
 * a delay"): failures are counted per client address across protocols;
 * the n-th failure is answered after delay_first_ms << (n - 1), at most
 * delay_max_ms; the max_failures-th is answered with close set, and from
 * then on the address gets LOGIN_BLOCKED without any check until
 * block_time has passed since its last failure.
 */
#include "login/login.h"
#include "core/addrcount.h"
#include "core/config.h"
#include "core/log.h"
#include "core/util.h"
#include "core/workers.h"
#include "proto/passwd.h"
#include "proto/sasl.h"
#include "store/users.h"

#include <event2/event.h>
#include <inttypes.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define LOGIN_THREADS_MAX 8

enum login_kind { LOGIN_K_SASL, LOGIN_K_PASSWORD, LOGIN_K_APOP };
enum login_stage { LOGIN_STAGE_WORKER, LOGIN_STAGE_IDLE, LOGIN_STAGE_TIMER };

struct login {
	struct event_base *base;
	struct workers *pool;
	char *hostname, *default_domain;
	bool allow_plaintext;
	unsigned max_failures;
	uint64_t block_time;
	unsigned delay_first_ms, delay_max_ms;
	struct users *users;
	struct addr_count *failures;
	uint64_t next_id;
	struct login_req *head;       /* every request not yet answered */
	size_t n;
};

struct login_req {
	struct login *l;
	struct login_req *prev, *next;
	uint64_t id;
	enum login_kind kind;
	enum login_stage stage;
	bool cancelled;               /* on a worker when cancelled: done() frees */
	login_cb cb;
	void *arg;
	/* the peer, copied */
	struct sockaddr_storage addr;
	char ip[64];
	char service[24];
	uint64_t session;
	const char *mech_label;       /* for logs */
	enum sasl_mech mech;
	struct sasl_server *sasl;
	/* the step's input, and what APOP also needs */
	char *name;                   /* PASSWORD, APOP: as given */
	char *in;                     /* SASL line, password, or APOP digest */
	size_t in_len;
	bool in_null;                 /* SASL: no initial response */
	char *timestamp;
	/* written by the worker, read by done() */
	struct users *users;          /* referenced for the exchange */
	const struct user *found;     /* in users */
	struct passwd_secret secret;
	bool have_secret, broken;
	enum sasl_status st;
	char *challenge;
	/* a TIMER answer */
	struct event *timer;
	enum login_status answer;
	bool answer_close;
};

/* ---- logging: one function per event ------------------------------------ */

static const char *login_quote_user(char *q, size_t cap, const char *user)
{
	return user ? log_quote(q, cap, user, strlen(user)) : "-";
}

static void log_auth(const struct login_req *r, const char *result, const char *user, unsigned failures)
{
	char q[SASL_USER_MAX * 4 + 8];
	log_event("event=auth session=%016" PRIx64 " ip=%s service=%s mech=%s result=%s user=%s failures=%u",
		  r->session, r->ip, r->service, r->mech_label, result, login_quote_user(q, sizeof(q), user),
		  failures);
}

static void log_auth_failed(const struct login_req *r, const char *reason, const char *user, unsigned failures)
{
	char q[SASL_USER_MAX * 4 + 8];
	log_event("event=auth_failed session=%016" PRIx64 " ip=%s service=%s mech=%s reason=%s user=%s failures=%u",
		  r->session, r->ip, r->service, r->mech_label, reason, login_quote_user(q, sizeof(q), user),
		  failures);
}

static void log_auth_blocked(const struct login_req *r, unsigned failures)
{
	log_event("event=auth_blocked session=%016" PRIx64 " ip=%s service=%s mech=%s failures=%u", r->session,
		  r->ip, r->service, r->mech_label, failures);
}

static void log_users_bad_secret(const struct login_req *r, const char *addr)
{
	log_event("event=users_bad_secret level=error session=%016" PRIx64 " user=%s", r->session, addr);
}

/* ---- the service ----------------------------------------------------------- */

void login_options_from_config(struct login_options *o, const struct config *cfg)
{
	memset(o, 0, sizeof(*o));
	o->hostname = cfg->hostname;
	o->default_domain = cfg->local_domains.n ? cfg->local_domains.v[0] : NULL;
	o->allow_plaintext = cfg->allow_plaintext;
	o->max_failures = cfg->max_auth_failures;
	o->block_time = cfg->auth_block_time;
	o->delay_first_ms = 500;
	o->delay_max_ms = 8000;
}

struct login *login_new(struct event_base *base, const struct login_options *o)
{
	struct login *l = xcalloc(1, sizeof(*l));
	unsigned threads = o->threads;

	if (threads == 0) {
		long n = sysconf(_SC_NPROCESSORS_ONLN);
		threads = n < 1 ? 1 : n > LOGIN_THREADS_MAX ? LOGIN_THREADS_MAX : (unsigned)n;
	}
	l->base = base;
	l->pool = workers_new(base, threads);
	l->hostname = xstrdup(o->hostname ? o->hostname : "localhost");
	l->default_domain = o->default_domain ? xstrdup(o->default_domain) : NULL;
	l->allow_plaintext = o->allow_plaintext;
	l->max_failures = o->max_failures ? o->max_failures : 1;
	l->block_time = o->block_time;
	l->delay_first_ms = o->delay_first_ms;
	l->delay_max_ms = o->delay_max_ms;
	l->failures = addr_count_new();
	l->next_id = 1;
	return l;
}

void login_set_users(struct login *l, struct users *u)
{
	users_free(l->users);
	l->users = u ? users_ref(u) : NULL;
}

size_t login_pending(const struct login *l)
{
	return l->n;
}

bool login_plaintext_ok(const struct login *l, const struct login_peer *p)
{
	return p->tls || p->trusted || l->allow_plaintext;
}

size_t login_mechs(const struct login *l, const struct login_peer *p, enum sasl_mech out[LOGIN_MECHS_MAX])
{
	size_t n = 0;

	if (login_plaintext_ok(l, p)) {
		out[n++] = SASL_PLAIN;
		out[n++] = SASL_LOGIN;
	}
	if (l->users && l->users->cram_ok)
		out[n++] = SASL_CRAM_MD5;
	if (l->users && l->users->scram_ok)
		out[n++] = SASL_SCRAM_SHA_256;
	return n;
}

/* ---- requests ---------------------------------------------------------------- */

static struct login_req *req_new(struct login *l, const struct login_peer *p, enum login_kind kind,
				 login_cb cb, void *arg)
{
	struct login_req *r = xcalloc(1, sizeof(*r));
	sa_family_t fam = p->addr->sa_family;
	size_t alen = fam == AF_INET6 ? sizeof(struct sockaddr_in6) :
		      fam == AF_INET ? sizeof(struct sockaddr_in) : sizeof(fam);

	r->l = l;
	r->id = l->next_id++;
	r->kind = kind;
	r->cb = cb;
	r->arg = arg;
	memcpy(&r->addr, p->addr, alen);
	snprintf(r->ip, sizeof(r->ip), "%s", p->ip ? p->ip : "-");
	snprintf(r->service, sizeof(r->service), "%s", p->service ? p->service : "-");
	r->session = p->session;
	r->next = l->head;
	if (l->head)
		l->head->prev = r;
	l->head = r;
	l->n++;
	return r;
}

static void req_unlink(struct login_req *r)
{
	struct login *l = r->l;

	if (r->prev)
		r->prev->next = r->next;
	else if (l->head == r)
		l->head = r->next;
	if (r->next)
		r->next->prev = r->prev;
	r->prev = r->next = NULL;
	l->n--;
}

static void secure_free(char **p, size_t len)
{
	if (*p)
		OPENSSL_cleanse(*p, len);
	free(*p);
	*p = NULL;
}

static void req_drop_secret(struct login_req *r)
{
	if (r->have_secret)
		passwd_secret_free(&r->secret);
	memset(&r->secret, 0, sizeof(r->secret));
	r->have_secret = false;
}

static void req_free(struct login_req *r)
{
	sasl_server_free(r->sasl);
	secure_free(&r->in, r->in_len);
	free(r->name);
	free(r->timestamp);
	free(r->challenge);
	req_drop_secret(r);
	users_free(r->users);
	if (r->timer)
		event_free(r->timer);
	free(r);
}

static struct login_req *req_find(struct login *l, uint64_t id)
{
	for (struct login_req *r = l->head; r; r = r->next)
		if (r->id == id)
			return r;
	return NULL;
}

void login_cancel(struct login *l, uint64_t id)
{
	struct login_req *r = id ? req_find(l, id) : NULL;

	if (r == NULL)
		return;
	req_unlink(r);
	if (r->stage == LOGIN_STAGE_WORKER)
		r->cancelled = true;   /* the job still holds it */
	else
		req_free(r);
}

void login_free(struct login *l)
{
	struct login_req *r, *next;

	if (l == NULL)
		return;
	for (r = l->head; r; r = next) {
		next = r->next;
		login_cancel(l, r->id);
	}
	workers_free(l->pool);   /* runs the done()s, which free the cancelled */
	users_free(l->users);
	addr_count_free(l->failures);
	free(l->hostname);
	free(l->default_domain);
	free(l);
}

/* The last answer: the request is gone before the callback runs, so the
 * callback may cancel, start another request or free its session. */
static void req_finish(struct login_req *r, const struct login_result *res)
{
	req_unlink(r);
	r->cb(r->arg, res);
	req_free(r);
}

static void req_answer_simple(struct login_req *r, enum login_status st, bool close)
{
	struct login_result res = { .status = st, .close = close };
	req_finish(r, &res);
}

static void req_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct login_req *r = arg;
	req_answer_simple(r, r->answer, r->answer_close);
}

/* Answer st after ms milliseconds (0: on the next loop turn). */
static void req_answer_later(struct login_req *r, enum login_status st, bool close, unsigned ms)
{
	struct timeval tv = { .tv_sec = ms / 1000, .tv_usec = (suseconds_t)(ms % 1000) * 1000 };

	r->stage = LOGIN_STAGE_TIMER;
	r->answer = st;
	r->answer_close = close;
	if (r->timer == NULL)
		r->timer = evtimer_new(r->l->base, req_timer_cb, r);
	evtimer_add(r->timer, &tv);
}

static unsigned login_failures(struct login *l, const struct sockaddr *sa)
{
	return addr_count_get(l->failures, sa, now_unix(), (int64_t)l->block_time);
}

/* Refused before any work?  Then the answer is on its way. */
static bool req_blocked(struct login_req *r)
{
	unsigned n = login_failures(r->l, (const struct sockaddr *)&r->addr);

	if (n < r->l->max_failures)
		return false;
	log_auth_blocked(r, n);
	req_answer_later(r, LOGIN_BLOCKED, true, 0);
	return true;
}

/* ---- on the worker ------------------------------------------------------------ */

/* The user named name in the step's table ("alice" is alice@ the default
 * domain).  Reads only r->users, which nobody changes while it is shared. */
static const struct user *req_find_user(const struct login_req *r, const char *name)
{
	const char *dom = r->l->default_domain;
	const struct user *u;
	char *full;

	if (r->users == NULL || name == NULL)
		return NULL;
	if (strchr(name, '@') || dom == NULL)
		return users_find(r->users, name);
	full = xasprintf("%s@%s", name, dom);
	u = users_find(r->users, full);
	free(full);
	return u;
}

/* The sasl_lookup callback, and the lookup of the other kinds. */
static const struct passwd_secret *req_lookup_cb(void *ctx, const char *name)
{
	struct login_req *r = ctx;
	const struct user *u = req_find_user(r, name);

	req_drop_secret(r);
	r->found = u;
	if (u == NULL)
		return NULL;
	if (!passwd_parse(u->secret, strlen(u->secret), &r->secret)) {
		r->broken = true;
		return NULL;
	}
	r->have_secret = true;
	return &r->secret;
}

static void req_work_password(struct login_req *r)
{
	char *prepared = sasl_user_prepare(r->name, strlen(r->name));
	const struct passwd_secret *sec = prepared ? req_lookup_cb(r, prepared) : NULL;

	free(prepared);
	if (sec)
		r->st = passwd_verify(sec, r->in, r->in_len) ? SASL_OK : SASL_FAIL;
	else {
		/* Unknown, or a secret that does not parse: the same work. */
		passwd_verify_dummy(r->in, r->in_len);
		r->st = SASL_FAIL;
	}
}

static void req_work_apop(struct login_req *r)
{
	char *prepared = sasl_user_prepare(r->name, strlen(r->name));
	const struct passwd_secret *sec = prepared ? req_lookup_cb(r, prepared) : NULL;

	free(prepared);
	r->st = sasl_apop_verify(sec, r->timestamp, r->in, r->in_len) ? SASL_OK : SASL_FAIL;
}

static void req_work(void *arg)
{
	struct login_req *r = arg;
	struct sasl_lookup lk = { req_lookup_cb, r };

	switch (r->kind) {
	case LOGIN_K_SASL:
		r->st = sasl_server_step(r->sasl, r->in_null ? NULL : r->in, r->in_len, &lk, &r->challenge);
		break;
	case LOGIN_K_PASSWORD:
		req_work_password(r);
		break;
	case LOGIN_K_APOP:
		req_work_apop(r);
		break;
	}
	secure_free(&r->in, r->in_len);
}

/* ---- back on the loop ------------------------------------------------------------- */

/* The name for logs: the user found, or what the client gave. */
static const char *req_user_name(const struct login_req *r)
{
	if (r->found)
		return r->found->addr;
	return r->kind == LOGIN_K_SASL ? sasl_server_user(r->sasl) : r->name;
}

/* A known user whose secret cannot serve the mechanism (CRAM-MD5 needs
 * {PLAIN}, SCRAM cannot use {CRYPT}) proved nothing either way: clients
 * that try CRAM-MD5 first must not block their own users.  The answer and
 * its delay stay those of a failure. */
static bool req_secret_unusable(const struct login_req *r)
{
	if (!r->have_secret || r->kind != LOGIN_K_SASL)
		return false;
	return (r->mech == SASL_CRAM_MD5 && r->secret.scheme != PASSWD_PLAIN) ||
	       (r->mech == SASL_SCRAM_SHA_256 && r->secret.scheme == PASSWD_CRYPT);
}

static void req_failed(struct login_req *r)
{
	struct login *l = r->l;
	const struct sockaddr *sa = (const struct sockaddr *)&r->addr;
	bool unusable = req_secret_unusable(r);
	unsigned n = login_failures(l, sa), shift;
	uint64_t ms;

	n = unusable ? n + 1 : addr_count_add(l->failures, sa, 1, now_unix());
	log_auth_failed(r, unusable ? "unusable_secret" : "bad_credentials", req_user_name(r), n);
	shift = n > 5 ? 4 : n - 1;
	ms = (uint64_t)l->delay_first_ms << shift;
	if (ms > l->delay_max_ms)
		ms = l->delay_max_ms;
	req_answer_later(r, LOGIN_FAILED, !unusable && n >= l->max_failures, (unsigned)ms);
}

static void req_ok(struct login_req *r)
{
	const struct user *u = r->found;
	struct login_result res = { .status = LOGIN_OK };
	char *addr = xstrdup(u ? u->addr : req_user_name(r));

	log_auth(r, "ok", addr, 0);
	res.user = addr;
	res.local = u ? u->local : NULL;
	res.domain = u ? u->domain : NULL;
	/* u lives in r->users, which req_finish() drops after the callback. */
	req_finish(r, &res);
	free(addr);
}

static void req_continue(struct login_req *r)
{
	struct login_result res = { .status = LOGIN_CONTINUE };
	char *challenge = r->challenge;

	r->challenge = NULL;
	r->stage = LOGIN_STAGE_IDLE;
	res.challenge = challenge;
	/* r stays: the callback may step it, cancel it, or free its session. */
	r->cb(r->arg, &res);
	free(challenge);
}

static void req_done(void *arg)
{
	struct login_req *r = arg;

	if (r->cancelled) {
		req_free(r);
		return;
	}
	if (r->broken)
		log_users_bad_secret(r, r->found ? r->found->addr : "-");
	switch (r->st) {
	case SASL_CONTINUE:
		req_continue(r);
		return;
	case SASL_OK:
		req_ok(r);
		return;
	case SASL_FAIL:
		if (r->broken) {
			log_auth(r, "tempfail", req_user_name(r), 0);
			req_answer_simple(r, LOGIN_TEMPFAIL, false);
		} else {
			req_failed(r);
		}
		return;
	case SASL_BAD_INPUT:
		log_auth(r, "bad_input", req_user_name(r), 0);
		req_answer_simple(r, LOGIN_BAD_INPUT, false);
		return;
	case SASL_CANCELLED:
		log_auth(r, "cancelled", req_user_name(r), 0);
		req_answer_simple(r, LOGIN_CANCELLED, false);
		return;
	}
}

/* The first step takes a reference to the users table of the moment, and
 * the whole exchange reads that one: the user a SCRAM proof is checked
 * against is the one whose salt was sent. */
static void req_submit(struct login_req *r)
{
	r->stage = LOGIN_STAGE_WORKER;
	if (r->users == NULL && r->l->users)
		r->users = users_ref(r->l->users);
	workers_submit(r->l->pool, req_work, req_done, r);
}

static void req_set_input(struct login_req *r, const char *in, size_t len)
{
	secure_free(&r->in, r->in_len);
	r->in_null = in == NULL;
	r->in = xmalloc(len + 1);
	if (len)
		memcpy(r->in, in, len);
	r->in[len] = '\0';
	r->in_len = len;
}

/* ---- the calls ------------------------------------------------------------------ */

uint64_t login_sasl_start(struct login *l, const struct login_peer *p, enum sasl_mech mech,
			  const char *ir, size_t ir_len, login_cb cb, void *arg)
{
	struct login_req *r = req_new(l, p, LOGIN_K_SASL, cb, arg);

	r->mech = mech;
	r->mech_label = sasl_mech_name(mech);
	if (sasl_mech_plaintext(mech) && !login_plaintext_ok(l, p)) {
		req_answer_later(r, LOGIN_NEED_TLS, false, 0);
		return r->id;
	}
	if (req_blocked(r))
		return r->id;
	r->sasl = sasl_server_new(mech, l->hostname);
	req_set_input(r, ir, ir ? ir_len : 0);
	req_submit(r);
	return r->id;
}

void login_sasl_step(struct login *l, uint64_t id, const char *line, size_t len)
{
	struct login_req *r = req_find(l, id);

	/* A step for an exchange that is not waiting is a session's bug. */
	if (r == NULL || r->kind != LOGIN_K_SASL || r->stage != LOGIN_STAGE_IDLE)
		return;
	req_set_input(r, line, len);
	req_submit(r);
}

uint64_t login_password(struct login *l, const struct login_peer *p, const char *user,
			const char *password, size_t len, login_cb cb, void *arg)
{
	struct login_req *r = req_new(l, p, LOGIN_K_PASSWORD, cb, arg);

	r->mech_label = "password";
	r->name = xstrdup(user);
	if (!login_plaintext_ok(l, p)) {
		req_answer_later(r, LOGIN_NEED_TLS, false, 0);
		return r->id;
	}
	if (req_blocked(r))
		return r->id;
	req_set_input(r, password, len);
	req_submit(r);
	return r->id;
}

uint64_t login_apop(struct login *l, const struct login_peer *p, const char *user,
		    const char *timestamp, const char *digest, size_t len, login_cb cb, void *arg)
{
	struct login_req *r = req_new(l, p, LOGIN_K_APOP, cb, arg);

	r->mech_label = "APOP";
	r->name = xstrdup(user);
	if (req_blocked(r))
		return r->id;
	r->timestamp = xstrdup(timestamp);
	req_set_input(r, digest, len);
	req_submit(r);
	return r->id;
}
