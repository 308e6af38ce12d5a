/*
 * smtp_client.h - the SMTP client session: one connection to one peer,
 * set up once (greeting, EHLO or HELO, STARTTLS, AUTH) and then used for
 * one mail transaction after another until QUIT.
 * RFC 5321 (§3.3, §4.1, §4.5.3.2 timeouts), RFC 2920 PIPELINING, RFC 1870
 * SIZE, RFC 6152 8BITMIME, RFC 3207 STARTTLS, RFC 4954 AUTH, RFC 3461 DSN,
 * RFC 3030 CHUNKING and BINARYMIME, RFC 6531 SMTPUTF8.
 *
 * Events come back through one callback.  The callback may call
 * smtp_client_send(), smtp_client_quit() or smtp_client_free(); the
 * session is freed only after the callback returns.
 */
#ifndef TERN_SMTP_CLIENT_H
#define TERN_SMTP_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "proto/smtp_reply.h"

struct event_base;
struct smtp_client;

#define SMTP_CLIENT_TEXT_MAX 512	/* kept of a reply for logs and DSNs */

struct smtp_client_opts {
	const char *helo;		/* our host name */
	const char *peer_name;		/* host name: SNI and logs */
	void *ssl_ctx;			/* SSL_CTX * for STARTTLS, NULL = never */
	bool tls_required;		/* no STARTTLS offered -> fail (4.7.5) */
	const char *auth_user;		/* AUTH PLAIN/LOGIN when set */
	const char *auth_pass;
	bool auth_in_clear;		/* allow AUTH without TLS (loopback) */
	uint64_t timeout_cap;		/* seconds; 0 = RFC 5321 §4.5.3.2 values */
	uint64_t session_id;		/* for the logs */
};

enum smtp_client_event {
	SMTP_CLIENT_READY,		/* set-up done; smtp_client_send() now */
	SMTP_CLIENT_FAILED,		/* set-up failed: smtp_client_error() */
	SMTP_CLIENT_TXN_DONE,		/* the transaction's results are in */
	SMTP_CLIENT_CLOSED,		/* an idle connection went away, or QUIT is done */
};

typedef void (*smtp_client_cb)(struct smtp_client *c, enum smtp_client_event ev, void *arg);

struct smtp_client_rcpt {
	const char *addr;
	unsigned notify;		/* SMTP_NOTIFY_* bits, 0 = none */
	const char *orcpt;		/* "type;address", or NULL */
	/* results */
	unsigned code;			/* reply code that decided it */
	char status[12];		/* enhanced status, or derived "x.0.0" */
	char reply[SMTP_CLIENT_TEXT_MAX];
};

struct smtp_client_msg {
	const char *from;		/* "" = null reverse path */
	unsigned ret;			/* enum smtp_ret */
	const char *envid;		/* or NULL */
	int fd;				/* queue file */
	uint64_t offset, len, lines;
	bool eight_bit;
	bool dkim_signed;		/* tern's DKIM signature: downgraded only with dkim7 */
	/* the 7-bit form's signatures (queue_env.dkim7): a downgrade sends
	 * the dkim7_len octets at offset + len in place of the first
	 * dkim8_len octets of the message; 0 when there are none */
	uint64_t dkim8_len, dkim7_len;
	bool smtputf8;			/* SMTPUTF8 transaction (RFC 6531) */
	bool binary;			/* BODY=BINARYMIME (RFC 3030 §3): sent as stored */
	struct smtp_client_rcpt *rcpts;
	size_t nrcpts;
};

/* Connect to sa (with its port set).  NULL only when the socket cannot be
 * created; a failed connect comes back as SMTP_CLIENT_FAILED. */
struct smtp_client *smtp_client_new(struct event_base *base, const struct sockaddr *sa, socklen_t len,
				    const struct smtp_client_opts *opts, smtp_client_cb cb, void *arg);
/* Start a transaction (only after READY or TXN_DONE).  m and its rcpts
 * must live until TXN_DONE, which always follows (never inside this call). */
void smtp_client_send(struct smtp_client *c, struct smtp_client_msg *m);
/* Send QUIT; once answered (or after a short time, or at once when there
 * is no connection) the callback gets SMTP_CLIENT_CLOSED, from the loop,
 * and the session is freed. */
void smtp_client_quit(struct smtp_client *c);
void smtp_client_set_cb(struct smtp_client *c, smtp_client_cb cb, void *arg);
void smtp_client_free(struct smtp_client *c);

/* Why set-up failed: a reply code (0 for a network error) and the text. */
unsigned smtp_client_error(const struct smtp_client *c, const char **text);

/* Where set-up failed, so that the caller can choose what comes next:
 * the next host, a bounce when every host refused us at HELLO with 5xx
 * (RFC 5321 §5.1, §3.1), or the same address again without STARTTLS. */
enum smtp_client_fail {
	SMTP_CLIENT_FAIL_NETWORK,	/* connect, timeout, a broken or hostile reply */
	SMTP_CLIENT_FAIL_HELLO,		/* the greeting, EHLO or HELO was refused */
	SMTP_CLIENT_FAIL_TLS,		/* the STARTTLS handshake broke (or the session
					 * right after it, before EHLO was answered) */
	SMTP_CLIENT_FAIL_OTHER,		/* STARTTLS when required, AUTH, our own policy */
};
enum smtp_client_fail smtp_client_fail_kind(const struct smtp_client *c);
/* The enhanced status of the refusing reply ("5.7.1", or the class
 * default "5.0.0"), or "" when no reply decided it. */
const char *smtp_client_error_status(const struct smtp_client *c);
/* The peer's address as text, "ip:port" or "[ip6]:port". */
const char *smtp_client_peer(const struct smtp_client *c);
/* event=tls_fallback, for both kinds, so that they read alike: STARTTLS
 * refused, the session goes on in plain text (logged here, queue_id
 * NULL), or a broken handshake after which remote.c reconnects without
 * STARTTLS for message queue_id. */
void smtp_client_log_tls_fallback(const struct smtp_client *c, const char *queue_id, const char *action,
				  const char *reason);
bool smtp_client_tls(const struct smtp_client *c);
const struct smtp_ehlo_caps *smtp_client_caps(const struct smtp_client *c);

#endif
