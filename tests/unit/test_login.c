/*
 * test_login.c - login/, the authentication service, on a real event_base
 * and its real worker pool: answers by request id (never inside the call,
 * never after a cancel), the same answer for an unknown user and a wrong
 * password (and the same hashing work), throttling with growing delays and
 * a block counted across protocols, mechanism selection from the stored
 * secrets, and a users table reloaded under a step in flight.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <unistd.h>
#include <cmocka.h>

#include <event2/event.h>
#include <openssl/evp.h>

#include "core/util.h"
#include "login/login.h"
#include "proto/base64.h"
#include "proto/passwd.h"
#include "store/users.h"

#define DELAY_FIRST_MS 20
#define DELAY_MAX_MS 80
#define MAX_FAILURES 3
/* libevent's timers run on the coarse monotonic clock (a tick of a few
 * ms), so against CLOCK_MONOTONIC a delay can look that much short. */
#define SLACK_MS 5

/* One answer as the callback saw it (copied: the result is valid only
 * during the callback). */
struct answer {
	unsigned calls;
	enum login_status status;
	bool close;
	char user[128], local[64], domain[64], challenge[512];
	bool has_user, has_challenge;
	uint64_t at_ms;
};

struct fx {
	struct event_base *base;
	struct event *tick;
	struct login *l;
	struct users *users;
	char dir[64], path[96];
	char *crypt_secret;   /* {CRYPT} yescrypt of carolpw */
};

static char *crypt_secret_once;

static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
}

static void write_users(struct fx *f, const char *text)
{
	FILE *fp = fopen(f->path, "w");
	assert_non_null(fp);
	fputs(text, fp);
	fclose(fp);
}

static struct users *load_users(struct fx *f, const char *text)
{
	write_users(f, text);
	struct users *u = users_load(f->path, NULL, NULL);
	assert_non_null(u);
	return u;
}

static void fx_start(struct fx *f, const char *users_text, unsigned threads, bool allow_plaintext)
{
	struct login_options o = {
		.hostname = "mx.test",
		.default_domain = "example.test",
		.allow_plaintext = allow_plaintext,
		.max_failures = MAX_FAILURES,
		.block_time = 600,
		.delay_first_ms = DELAY_FIRST_MS,
		.delay_max_ms = DELAY_MAX_MS,
		.threads = threads,
	};
	struct timeval ten_ms = { 0, 10000 };

	f->base = event_base_new();
	assert_non_null(f->base);
	/* EVLOOP_ONCE never sleeps longer than this. */
	f->tick = event_new(f->base, -1, EV_PERSIST, tick_cb, NULL);
	event_add(f->tick, &ten_ms);
	f->l = login_new(f->base, &o);
	f->users = load_users(f, users_text);
	login_set_users(f->l, f->users);
}

static void fx_stop(struct fx *f)
{
	login_free(f->l);
	f->l = NULL;
	users_free(f->users);
	f->users = NULL;
	if (f->tick)
		event_free(f->tick);
	f->tick = NULL;
	if (f->base)
		event_base_free(f->base);
	f->base = NULL;
}

static int setup(void **state)
{
	struct fx *f = xcalloc(1, sizeof(*f));
	snprintf(f->dir, sizeof(f->dir), "/tmp/test_login.XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->path, sizeof(f->path), "%s/users", f->dir);
	if (crypt_secret_once == NULL)
		crypt_secret_once = passwd_hash(PASSWD_CRYPT, "carolpw");
	assert_non_null(crypt_secret_once);
	f->crypt_secret = crypt_secret_once;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	fx_stop(f);
	unlink(f->path);
	rmdir(f->dir);
	free(f);
	return 0;
}

/* ---- helpers --------------------------------------------------------------- */

static void answer_cb(void *arg, const struct login_result *r)
{
	struct answer *a = arg;

	a->calls++;
	a->status = r->status;
	a->close = r->close;
	a->has_user = r->user != NULL;
	snprintf(a->user, sizeof(a->user), "%s", r->user ? r->user : "");
	snprintf(a->local, sizeof(a->local), "%s", r->local ? r->local : "");
	snprintf(a->domain, sizeof(a->domain), "%s", r->domain ? r->domain : "");
	a->has_challenge = r->challenge != NULL;
	snprintf(a->challenge, sizeof(a->challenge), "%s", r->challenge ? r->challenge : "");
	a->at_ms = now_ms_monotonic();
}

/* Run the loop until a has been answered `calls` times (5 s at most). */
static void wait_answer(struct fx *f, struct answer *a, unsigned calls)
{
	uint64_t end = now_ms_monotonic() + 5000;
	while (a->calls < calls && now_ms_monotonic() < end)
		event_base_loop(f->base, EVLOOP_ONCE);
	assert_int_equal(a->calls, calls);
}

static void run_for(struct fx *f, unsigned ms)
{
	uint64_t end = now_ms_monotonic() + ms;
	while (now_ms_monotonic() < end)
		event_base_loop(f->base, EVLOOP_ONCE);
}

static struct sockaddr_in addr_of(const char *ip)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	assert_int_equal(inet_pton(AF_INET, ip, &sa.sin_addr), 1);
	return sa;
}

static struct login_peer peer(const struct sockaddr_in *sa, const char *service, bool tls)
{
	struct login_peer p = {
		.addr = (const struct sockaddr *)sa, .ip = "test", .session = 1, .service = service, .tls = tls,
	};
	return p;
}

static char *plain_msg(const char *user, const char *pw)
{
	char raw[256];
	size_t n = (size_t)snprintf(raw, sizeof(raw), "%c%s%c%s", 0, user, 0, pw);
	return base64_encode_alloc(raw, n);
}

/* A whole USER/PASS check: its answer, after how long. */
static struct answer password(struct fx *f, const char *ip, const char *service, const char *user,
			      const char *pw, uint64_t *took_ms)
{
	struct sockaddr_in sa = addr_of(ip);
	struct login_peer p = peer(&sa, service, true);
	struct answer a = { 0 };
	uint64_t t0 = now_ms_monotonic();

	login_password(f->l, &p, user, pw, strlen(pw), answer_cb, &a);
	assert_int_equal(a.calls, 0);   /* never inside the call */
	wait_answer(f, &a, 1);
	if (took_ms)
		*took_ms = a.at_ms - t0;
	return a;
}

static struct answer sasl_plain(struct fx *f, const char *ip, const char *service, const char *user,
				const char *pw)
{
	struct sockaddr_in sa = addr_of(ip);
	struct login_peer p = peer(&sa, service, true);
	struct answer a = { 0 };
	char *msg = plain_msg(user, pw);

	login_sasl_start(f->l, &p, SASL_PLAIN, msg, strlen(msg), answer_cb, &a);
	assert_int_equal(a.calls, 0);
	wait_answer(f, &a, 1);
	free(msg);
	return a;
}

#define USERS_PLAIN "alice@example.test:{PLAIN}alicepw\nbob@example.test:{PLAIN}bobpw\n"

/* ---- answers ------------------------------------------------------------------ */

static void test_password_and_sasl_ok(void **state)
{
	struct fx *f = *state;
	struct answer a;

	fx_start(f, USERS_PLAIN "dave@example.test:{SCRAM-SHA-256}not,a,valid,secret\n", 2, false);
	a = password(f, "192.0.2.1", "pop3", "alice@example.test", "alicepw", NULL);
	assert_int_equal(a.status, LOGIN_OK);
	assert_string_equal(a.user, "alice@example.test");
	assert_string_equal(a.local, "alice");
	assert_string_equal(a.domain, "example.test");
	/* a bare name is a user of the default domain */
	a = sasl_plain(f, "192.0.2.1", "submission", "Alice", "alicepw");
	assert_int_equal(a.status, LOGIN_OK);
	assert_string_equal(a.user, "alice@example.test");
	/* a broken secret in the users file: a temporary failure */
	a = password(f, "192.0.2.1", "pop3", "dave@example.test", "x", NULL);
	assert_int_equal(a.status, LOGIN_TEMPFAIL);
	assert_int_equal(login_pending(f->l), 0);
}

static void test_sasl_exchange_steps(void **state)
{
	struct fx *f = *state;
	struct sockaddr_in sa = addr_of("192.0.2.2");
	struct login_peer p = peer(&sa, "submission", true);
	struct answer a = { 0 };
	char *msg = plain_msg("bob@example.test", "bobpw");
	char *u = base64_encode_alloc("bob@example.test", 16), *pw = base64_encode_alloc("bobpw", 5);
	uint64_t id;

	fx_start(f, USERS_PLAIN, 2, false);
	/* PLAIN without an initial response: "" first, then the message */
	id = login_sasl_start(f->l, &p, SASL_PLAIN, NULL, 0, answer_cb, &a);
	wait_answer(f, &a, 1);
	assert_int_equal(a.status, LOGIN_CONTINUE);
	assert_string_equal(a.challenge, "");
	login_sasl_step(f->l, id, msg, strlen(msg));
	assert_int_equal(a.calls, 1);
	wait_answer(f, &a, 2);
	assert_int_equal(a.status, LOGIN_OK);
	assert_string_equal(a.user, "bob@example.test");
	/* LOGIN: Username:, Password:, done */
	memset(&a, 0, sizeof(a));
	id = login_sasl_start(f->l, &p, SASL_LOGIN, NULL, 0, answer_cb, &a);
	wait_answer(f, &a, 1);
	assert_string_equal(a.challenge, "VXNlcm5hbWU6");
	login_sasl_step(f->l, id, u, strlen(u));
	wait_answer(f, &a, 2);
	assert_string_equal(a.challenge, "UGFzc3dvcmQ6");
	login_sasl_step(f->l, id, pw, strlen(pw));
	wait_answer(f, &a, 3);
	assert_int_equal(a.status, LOGIN_OK);
	/* "*" cancels; garbage is bad input */
	memset(&a, 0, sizeof(a));
	id = login_sasl_start(f->l, &p, SASL_LOGIN, NULL, 0, answer_cb, &a);
	wait_answer(f, &a, 1);
	login_sasl_step(f->l, id, "*", 1);
	wait_answer(f, &a, 2);
	assert_int_equal(a.status, LOGIN_CANCELLED);
	memset(&a, 0, sizeof(a));
	login_sasl_start(f->l, &p, SASL_PLAIN, "@@@@", 4, answer_cb, &a);
	wait_answer(f, &a, 1);
	assert_int_equal(a.status, LOGIN_BAD_INPUT);
	assert_int_equal(login_pending(f->l), 0);
	free(msg);
	free(u);
	free(pw);
}

static void test_apop(void **state)
{
	struct fx *f = *state;
	struct sockaddr_in sa = addr_of("192.0.2.3");
	struct login_peer p = peer(&sa, "pop3", false);   /* APOP needs no TLS */
	const char *ts = "<1896.697170952@mx.test>";
	unsigned char md[16];
	char hex[33], both[64];
	struct answer a = { 0 };

	fx_start(f, USERS_PLAIN, 2, false);
	snprintf(both, sizeof(both), "%salicepw", ts);
	assert_int_equal(EVP_Digest(both, strlen(both), md, NULL, EVP_md5(), NULL), 1);
	for (int i = 0; i < 16; i++)
		snprintf(hex + 2 * i, 3, "%02x", md[i]);
	login_apop(f->l, &p, "alice@example.test", ts, hex, 32, answer_cb, &a);
	wait_answer(f, &a, 1);
	assert_int_equal(a.status, LOGIN_OK);
	memset(&a, 0, sizeof(a));
	login_apop(f->l, &p, "bob@example.test", ts, hex, 32, answer_cb, &a);
	wait_answer(f, &a, 1);
	assert_int_equal(a.status, LOGIN_FAILED);
}

/* ---- unknown user and wrong password look alike --------------------------------- */

static void assert_same_answer(const struct answer *x, const struct answer *y)
{
	assert_int_equal(x->calls, y->calls);
	assert_int_equal(x->status, y->status);
	assert_int_equal(x->close, y->close);
	assert_int_equal(x->has_user, y->has_user);
	assert_int_equal(x->has_challenge, y->has_challenge);
	assert_string_equal(x->user, y->user);
}

static void test_unknown_and_wrong_look_alike(void **state)
{
	struct fx *f = *state;
	char *text = xasprintf("carol@example.test:%s\n" USERS_PLAIN, f->crypt_secret);
	uint64_t wrong = UINT64_MAX, unknown = UINT64_MAX, t;
	struct answer w, u;
	char ip[32];

	fx_start(f, text, 2, false);
	free(text);
	/* Each try from a fresh address, so each is a first failure with the
	 * same delay; the fastest of three of each is compared, so a busy
	 * machine does not decide it. */
	for (int i = 0; i < 3; i++) {
		snprintf(ip, sizeof(ip), "198.51.100.%d", 10 + i);
		w = password(f, ip, "pop3", "carol@example.test", "wrong", &t);
		wrong = t < wrong ? t : wrong;
		snprintf(ip, sizeof(ip), "198.51.100.%d", 20 + i);
		u = password(f, ip, "pop3", "nobody@example.test", "wrong", &t);
		unknown = t < unknown ? t : unknown;
		assert_int_equal(w.status, LOGIN_FAILED);
		assert_same_answer(&w, &u);
	}
	/* The delay, plus a yescrypt for both: the unknown user's is the dummy. */
	assert_true(wrong + SLACK_MS >= DELAY_FIRST_MS && unknown + SLACK_MS >= DELAY_FIRST_MS);
	assert_true(unknown * 3 >= wrong);
	assert_true(wrong * 3 >= unknown);
	/* SASL PLAIN likewise */
	w = sasl_plain(f, "198.51.100.30", "submission", "carol@example.test", "wrong");
	u = sasl_plain(f, "198.51.100.31", "submission", "nobody@example.test", "wrong");
	assert_int_equal(w.status, LOGIN_FAILED);
	assert_same_answer(&w, &u);
	/* and the right password still works */
	w = password(f, "198.51.100.32", "pop3", "carol@example.test", "carolpw", NULL);
	assert_int_equal(w.status, LOGIN_OK);
}

/* ---- throttling ------------------------------------------------------------------- */

static void test_throttling_across_protocols(void **state)
{
	struct fx *f = *state;
	const char *ip = "203.0.113.7";
	struct answer a;
	uint64_t t[3];

	fx_start(f, USERS_PLAIN, 2, false);
	/* failures from one address count together, whatever the protocol */
	a = password(f, ip, "pop3", "alice@example.test", "nope", &t[0]);
	assert_int_equal(a.status, LOGIN_FAILED);
	assert_false(a.close);
	a = sasl_plain(f, ip, "submission", "alice@example.test", "nope");
	assert_int_equal(a.status, LOGIN_FAILED);
	assert_false(a.close);
	a = password(f, ip, "imap", "nobody@example.test", "nope", &t[2]);
	assert_int_equal(a.status, LOGIN_FAILED);
	assert_true(a.close);   /* the MAX_FAILURES-th: end the session */
	/* delays grow: 20 ms, 40, then 80 */
	assert_true(t[0] + SLACK_MS >= DELAY_FIRST_MS);
	assert_true(t[2] + SLACK_MS >= 4 * DELAY_FIRST_MS);
	/* blocked now, even with the right password, on every protocol */
	a = password(f, ip, "pop3", "alice@example.test", "alicepw", NULL);
	assert_int_equal(a.status, LOGIN_BLOCKED);
	a = sasl_plain(f, ip, "smtp", "alice@example.test", "alicepw");
	assert_int_equal(a.status, LOGIN_BLOCKED);
	/* another address is not */
	a = sasl_plain(f, "203.0.113.8", "smtp", "alice@example.test", "alicepw");
	assert_int_equal(a.status, LOGIN_OK);
}

/* CRAM-MD5 for a user whose secret cannot serve it proves nothing: the
 * same failure, but it does not count towards the block. */
static void test_unusable_secret_not_counted(void **state)
{
	struct fx *f = *state;
	char *text = xasprintf("carol@example.test:%s\n", f->crypt_secret);
	struct sockaddr_in sa = addr_of("203.0.113.9");
	struct login_peer p = peer(&sa, "submission", true);
	struct answer a;
	char resp[128];
	char *b;
	uint64_t id;

	fx_start(f, text, 2, false);
	free(text);
	for (int i = 0; i < MAX_FAILURES + 1; i++) {
		memset(&a, 0, sizeof(a));
		id = login_sasl_start(f->l, &p, SASL_CRAM_MD5, NULL, 0, answer_cb, &a);
		wait_answer(f, &a, 1);
		assert_int_equal(a.status, LOGIN_CONTINUE);
		snprintf(resp, sizeof(resp), "carol@example.test 0123456789abcdef0123456789abcdef");
		b = base64_encode_alloc(resp, strlen(resp));
		login_sasl_step(f->l, id, b, strlen(b));
		free(b);
		wait_answer(f, &a, 2);
		assert_int_equal(a.status, LOGIN_FAILED);
		assert_false(a.close);
	}
	a = sasl_plain(f, "203.0.113.9", "submission", "carol@example.test", "carolpw");
	assert_int_equal(a.status, LOGIN_OK);
}

/* ---- answers for sessions that have gone ---------------------------------------------- */

static void test_cancelled_answer_dropped(void **state)
{
	struct fx *f = *state;
	char *text = xasprintf("carol@example.test:%s\n" USERS_PLAIN, f->crypt_secret);
	struct sockaddr_in sa = addr_of("192.0.2.50");
	struct login_peer p = peer(&sa, "pop3", true);
	struct answer *gone = xcalloc(1, sizeof(*gone)), later = { 0 }, idle = { 0 };
	uint64_t id;

	/* one worker: the second job's answer comes after the first's done() */
	fx_start(f, text, 1, false);
	free(text);
	/* on a worker (yescrypt) when its session goes */
	id = login_password(f->l, &p, "carol@example.test", "carolpw", 7, answer_cb, gone);
	login_cancel(f->l, id);
	assert_int_equal(login_pending(f->l), 0);
	free(gone);   /* a callback through it would be a use after free (ASan) */
	login_password(f->l, &p, "alice@example.test", "alicepw", 7, answer_cb, &later);
	wait_answer(f, &later, 1);
	assert_int_equal(later.status, LOGIN_OK);
	/* in its failure delay when its session goes */
	gone = xcalloc(1, sizeof(*gone));
	id = login_password(f->l, &p, "alice@example.test", "wrong", 5, answer_cb, gone);
	run_for(f, 5);
	login_cancel(f->l, id);
	free(gone);
	run_for(f, 4 * DELAY_MAX_MS);
	/* waiting for the client's next line when its session goes */
	id = login_sasl_start(f->l, &p, SASL_PLAIN, NULL, 0, answer_cb, &idle);
	wait_answer(f, &idle, 1);
	assert_int_equal(login_pending(f->l), 1);
	login_cancel(f->l, id);
	assert_int_equal(login_pending(f->l), 0);
	login_sasl_step(f->l, id, "AGFsaWNlAGFsaWNlcHc=", 20);   /* gone: ignored */
	run_for(f, 50);
	assert_int_equal(idle.calls, 1);
	/* cancelling twice, or an unknown id, is harmless */
	login_cancel(f->l, id);
	login_cancel(f->l, 0);
	login_cancel(f->l, 999999);
}

/* A reload while a step runs: the step reads the table it started with. */
static void test_users_reloaded_under_a_step(void **state)
{
	struct fx *f = *state;
	char *text = xasprintf("carol@example.test:%s\n", f->crypt_secret);
	struct sockaddr_in sa = addr_of("192.0.2.60");
	struct login_peer p = peer(&sa, "pop3", true);
	struct answer a = { 0 };
	struct users *next;

	fx_start(f, text, 2, false);
	free(text);
	login_password(f->l, &p, "carol@example.test", "carolpw", 7, answer_cb, &a);
	next = load_users(f, USERS_PLAIN);
	login_set_users(f->l, next);
	users_free(f->users);   /* as serve.c's reload does */
	f->users = next;
	wait_answer(f, &a, 1);
	assert_int_equal(a.status, LOGIN_OK);
	assert_string_equal(a.user, "carol@example.test");
	a = password(f, "192.0.2.60", "pop3", "carol@example.test", "carolpw", NULL);
	assert_int_equal(a.status, LOGIN_FAILED);
}

/* ---- mechanisms ---------------------------------------------------------------------- */

static size_t mechs(struct fx *f, bool tls, char *out, size_t cap)
{
	struct sockaddr_in sa = addr_of("192.0.2.70");
	struct login_peer p = peer(&sa, "submission", tls);
	enum sasl_mech m[LOGIN_MECHS_MAX];
	size_t n = login_mechs(f->l, &p, m), used = 0;

	out[0] = '\0';
	for (size_t i = 0; i < n; i++)
		used += (size_t)snprintf(out + used, cap - used, "%s%s", i ? " " : "", sasl_mech_name(m[i]));
	return n;
}

/* The service's table from now on: USERS_PLAIN plus one line. */
static void use_users_plus(struct fx *f, const char *addr, const char *secret)
{
	char *text = xasprintf(USERS_PLAIN "%s:%s\n", addr, secret);
	struct users *u = load_users(f, text);

	free(text);
	login_set_users(f->l, u);
	users_free(u);
}

static void test_mechanism_selection(void **state)
{
	struct fx *f = *state;
	struct sockaddr_in sa = addr_of("192.0.2.71");
	struct login_peer insecure = peer(&sa, "submission", false);
	char *scram = passwd_hash(PASSWD_SCRAM_SHA_256, "sampw");
	char buf[128];
	struct answer a = { 0 };

	fx_start(f, USERS_PLAIN, 2, false);
	mechs(f, true, buf, sizeof(buf));
	assert_string_equal(buf, "PLAIN LOGIN CRAM-MD5 SCRAM-SHA-256");
	mechs(f, false, buf, sizeof(buf));
	assert_string_equal(buf, "CRAM-MD5 SCRAM-SHA-256");
	/* one SCRAM secret: CRAM-MD5 can no longer serve everyone */
	use_users_plus(f, "sam@example.test", scram);
	mechs(f, true, buf, sizeof(buf));
	assert_string_equal(buf, "PLAIN LOGIN SCRAM-SHA-256");
	/* one crypt(3) secret: neither */
	use_users_plus(f, "carol@example.test", f->crypt_secret);
	mechs(f, true, buf, sizeof(buf));
	assert_string_equal(buf, "PLAIN LOGIN");
	assert_int_equal(mechs(f, false, buf, sizeof(buf)), 0);
	/* a password in the clear without TLS is refused before any check */
	assert_false(login_plaintext_ok(f->l, &insecure));
	login_sasl_start(f->l, &insecure, SASL_PLAIN, "=", 1, answer_cb, &a);
	assert_int_equal(a.calls, 0);
	wait_answer(f, &a, 1);
	assert_int_equal(a.status, LOGIN_NEED_TLS);
	memset(&a, 0, sizeof(a));
	login_password(f->l, &insecure, "alice@example.test", "alicepw", 7, answer_cb, &a);
	wait_answer(f, &a, 1);
	assert_int_equal(a.status, LOGIN_NEED_TLS);
	free(scram);
}

static void test_allow_plaintext_and_trusted(void **state)
{
	struct fx *f = *state;
	struct sockaddr_in sa = addr_of("192.0.2.72");
	struct login_peer p = peer(&sa, "submission", false);
	char buf[128];

	fx_start(f, USERS_PLAIN, 2, true);
	assert_true(login_plaintext_ok(f->l, &p));
	mechs(f, false, buf, sizeof(buf));
	assert_string_equal(buf, "PLAIN LOGIN CRAM-MD5 SCRAM-SHA-256");
	fx_stop(f);
	fx_start(f, USERS_PLAIN, 2, false);
	p.trusted = true;
	assert_true(login_plaintext_ok(f->l, &p));
}

/* login_free with requests in every stage: none is answered. */
static void test_free_with_requests_pending(void **state)
{
	struct fx *f = *state;
	char *text = xasprintf("carol@example.test:%s\n" USERS_PLAIN, f->crypt_secret);
	struct sockaddr_in sa = addr_of("192.0.2.80");
	struct login_peer p = peer(&sa, "pop3", true);
	struct answer a = { 0 }, b = { 0 }, c = { 0 };

	fx_start(f, text, 1, false);
	free(text);
	login_sasl_start(f->l, &p, SASL_PLAIN, NULL, 0, answer_cb, &c);
	wait_answer(f, &c, 1);
	login_password(f->l, &p, "carol@example.test", "carolpw", 7, answer_cb, &a);
	login_password(f->l, &p, "alice@example.test", "x", 1, answer_cb, &b);
	login_free(f->l);
	f->l = NULL;
	assert_int_equal(a.calls, 0);
	assert_int_equal(b.calls, 0);
	assert_int_equal(c.calls, 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_password_and_sasl_ok, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sasl_exchange_steps, setup, teardown),
		cmocka_unit_test_setup_teardown(test_apop, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unknown_and_wrong_look_alike, setup, teardown),
		cmocka_unit_test_setup_teardown(test_throttling_across_protocols, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unusable_secret_not_counted, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cancelled_answer_dropped, setup, teardown),
		cmocka_unit_test_setup_teardown(test_users_reloaded_under_a_step, setup, teardown),
		cmocka_unit_test_setup_teardown(test_mechanism_selection, setup, teardown),
		cmocka_unit_test_setup_teardown(test_allow_plaintext_and_trusted, setup, teardown),
		cmocka_unit_test_setup_teardown(test_free_with_requests_pending, setup, teardown),
	};
	int rc = cmocka_run_group_tests(tests, NULL, NULL);
	free(crypt_secret_once);
	return rc;
}
