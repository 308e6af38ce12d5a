/*
 * login.h - the one authentication service of SMTP AUTH, POP3 (USER/PASS,
 * APOP, AUTH) and IMAP (LOGIN, AUTHENTICATE).
 *
 * It owns everything between "the client presented credentials" and "this
 * is user@domain": the SASL exchanges (the mechanisms themselves are pure
 * code in proto/sasl.c), the user lookup, password verification, the
 * throttling of failures per client address, and the log events auth,
 * auth_failed and auth_blocked.  A session only frames the protocol: it
 * sends a challenge the way its protocol does ("334 ", "+ ") and maps a
 * status to its replies.
 *
 * Requests are by id (STYLE.md 7).  Every call that starts or continues a
 * check returns at once; its callback runs exactly once, later, from the
 * event loop - never inside the call - unless login_cancel() was called for
 * the id (the session went away), in which case it never runs.  Each step
 * runs on the service's own worker pool, so no crypt(3), PBKDF2 or lookup
 * ever runs on the loop; the session pauses its input from the call until
 * the callback.  The users table a step reads is the one current when the
 * step was started: a reload meanwhile does not pull it from under the
 * worker (store/users.h references).
 *
 * The same answer after the same delay for an unknown user and a wrong
 * password: unknown users are verified against a dummy hash (passwd.h),
 * and every failure is answered after a delay that doubles with the
 * failures from the address (counted across protocols), until at
 * max_failures the address is blocked for block_time.
 */
#ifndef TERN_LOGIN_H
#define TERN_LOGIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "proto/sasl.h"

struct event_base;
struct config;
struct users;
struct login;

struct login_options {
	const char *hostname;        /* CRAM-MD5 challenges, SCRAM salts */
	const char *default_domain;  /* for names without '@'; NULL: none */
	bool allow_plaintext;        /* PLAIN, LOGIN, USER/PASS without TLS */
	unsigned max_failures;       /* failures per address before a block */
	uint64_t block_time;         /* seconds failures count and a block lasts */
	unsigned delay_first_ms;     /* answer to the first failure; doubles */
	unsigned delay_max_ms;
	unsigned threads;            /* worker threads; 0: one per CPU */
};

/* The options [server] hostname, [domains] local and [auth] give. */
void login_options_from_config(struct login_options *o, const struct config *cfg);

/* Strings in o are copied. */
struct login *login_new(struct event_base *base, const struct login_options *o);
/* Cancels every request (no callback runs), joins the workers. */
void login_free(struct login *l);
/* The users table from now on (a reference is taken; the previous one is
 * dropped once no step in flight reads it).  Loop thread only. */
void login_set_users(struct login *l, struct users *u);

/* Who is asking.  Copied by the calls; tls and trusted (the client is in
 * [relay] trusted_networks) decide whether passwords may be sent. */
struct login_peer {
	const struct sockaddr *addr;
	const char *ip;              /* for logs */
	uint64_t session;            /* for logs */
	const char *service;         /* "submission", "pop3", "imap", ... */
	bool tls;
	bool trusted;
};

/* May this peer send a password in the clear (PLAIN, LOGIN, USER/PASS,
 * IMAP LOGIN)?  RFC 2595 2.2, RFC 4954 4, RFC 8314. */
bool login_plaintext_ok(const struct login *l, const struct login_peer *p);

/* The SASL mechanisms to offer p, strongest last, into out (room for
 * LOGIN_MECHS_MAX); returns how many.  CRAM-MD5 and SCRAM-SHA-256 are
 * offered only when every stored secret can serve them, so a client that
 * picks the strongest offered mechanism is never refused. */
#define LOGIN_MECHS_MAX 4
size_t login_mechs(const struct login *l, const struct login_peer *p, enum sasl_mech out[LOGIN_MECHS_MAX]);

enum login_status {
	LOGIN_OK,          /* authenticated as user */
	LOGIN_CONTINUE,    /* send challenge; feed the answer to login_sasl_step */
	LOGIN_FAILED,      /* bad credentials or unknown user, after the delay */
	LOGIN_BLOCKED,     /* too many failures from the address: nothing was
			    * checked; end the session */
	LOGIN_TEMPFAIL,    /* the users file holds a broken secret for the user */
	LOGIN_BAD_INPUT,   /* a malformed SASL message */
	LOGIN_CANCELLED,   /* the client sent "*" */
	LOGIN_NEED_TLS,    /* a plaintext mechanism where login_plaintext_ok is false */
};

/* Valid during the callback only: copy what you keep. */
struct login_result {
	enum login_status status;
	const char *challenge;       /* CONTINUE: base64 (maybe "") to send */
	const char *user;            /* OK: "local@domain" as in the users file */
	const char *local, *domain;  /* OK: its parts (Maildir path) */
	bool close;                  /* FAILED: that was the last failure the
				      * address may make: say so and end */
};

typedef void (*login_cb)(void *arg, const struct login_result *r);

/* A SASL exchange: mech with the initial response ir (NULL: none; "=" is
 * an empty one, RFC 4954 4).  While the callback says LOGIN_CONTINUE the
 * exchange goes on with login_sasl_step(id, line) (the same id); any other
 * status ends it. */
uint64_t login_sasl_start(struct login *l, const struct login_peer *p, enum sasl_mech mech,
			  const char *ir, size_t ir_len, login_cb cb, void *arg);
/* The client's answer to a challenge; the answer comes to the callback
 * given to login_sasl_start.  An id that is not waiting for a step (gone,
 * cancelled, or a step already in flight) is ignored: call this only after
 * a LOGIN_CONTINUE. */
void login_sasl_step(struct login *l, uint64_t id, const char *line, size_t len);

/* A name and a password (POP3 USER/PASS, IMAP LOGIN). */
uint64_t login_password(struct login *l, const struct login_peer *p, const char *user,
			const char *password, size_t len, login_cb cb, void *arg);

/* APOP (RFC 1939 7): timestamp is the greeting's "<...>". */
uint64_t login_apop(struct login *l, const struct login_peer *p, const char *user,
		    const char *timestamp, const char *digest, size_t len, login_cb cb, void *arg);

/* The callback of id will never run (the session went away, or it ends an
 * exchange waiting for a step).  Unknown or finished ids are ignored. */
void login_cancel(struct login *l, uint64_t id);

/* Requests started and not yet answered or cancelled (tests, shutdown). */
size_t login_pending(const struct login *l);

#endif
