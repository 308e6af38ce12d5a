/*
 * conn.h - one server connection under a session (SMTP, POP3): the
 * bufferevent and its socket, the reference count that keeps the session
 * alive while a callback, timer or worker job holds it, "close once the
 * output has left", the reply output (written straight to the socket on
 * plain connections, through the bufferevent on TLS ones), and the
 * switch to TLS on the same socket (RFC 3207 STARTTLS, RFC 2595 STLS,
 * RFC 8314 implicit TLS).
 *
 * A session embeds a struct conn and gives it a table of callbacks.  The
 * conn calls them with a reference held and inside an output batch, and
 * calls ops->free once it is closing and the last reference is dropped;
 * that is the only place the session's memory may go.
 */
#ifndef TERN_CONN_H
#define TERN_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/time.h>
#include <event2/util.h>
#include <openssl/ssl.h>

struct bufferevent;
struct evbuffer;
struct event_base;

struct conn_ops {
	void (*read)(void *owner);                 /* input arrived */
	void (*drained)(void *owner);              /* output at or below the low-water mark; may be NULL */
	/* BEV_EVENT_TIMEOUT, _EOF or _ERROR (with _READING or _WRITING)
	 * while not closing; when closing the conn gives up the flush itself. */
	void (*event)(void *owner, short what);
	void (*connected)(void *owner);            /* TLS handshake done; may be NULL */
	/* After conn_starttls(): ok when TLS is in place, false when the
	 * switch did not happen (closed meanwhile, or it failed). */
	void (*starttls_done)(void *owner, bool ok);
	void (*free)(void *owner);                 /* closing, last reference gone */
};

struct conn {
	struct bufferevent *bev;
	const struct conn_ops *ops;
	void *owner;
	struct event_base *base;
	uint64_t id;              /* the session id, for the log */
	const char *ip;           /* the peer, for the log */
	struct timeval timeout;   /* write timeout; also read once closing */
	size_t low_water;         /* ops->drained at or below this */
	int refs;
	bool closing;
	bool flush_ref;           /* a reference waits for the output to drain */
	bool tls;
	/* Plain connections write output themselves, at the end of each
	 * batch (or at once outside one), and arm the bufferevent's write
	 * event only for what the socket did not take: a reply then costs
	 * one write(2), not an event added, a loop turn and the event
	 * removed again. */
	bool direct_out;
	bool write_armed;         /* the bufferevent holds a rest to write */
	bool discard_line;        /* skipping the rest of an over-long line */
	bool linger;              /* conn_close(flush): linger once flushed */
	struct event *linger_ev;  /* lingering: reading and dropping input */
	uint64_t linger_until;    /* monotonic ms */
	size_t linger_left;       /* octets it may still drop */
	unsigned in_batch;        /* conn_batch_begin() calls not yet ended */
	struct evbuffer *outq;    /* direct_out: output not yet written */
	SSL *tls_pending;         /* conn_starttls(): waits for the output to drain */
	/* The TLS handshake under way on worker threads (core/tls_accept.c)
	 * and the socket it runs on; meanwhile bev has no socket (what is
	 * written or enabled on it waits there for the TLS bufferevent). */
	struct tls_accept *accept;
	evutil_socket_t accept_fd;
};

/* Take over fd (closed by conn_release()) on a plain socket bufferevent.
 * ip must outlive the conn.  Reading and writing are left disabled. */
void conn_init(struct conn *c, struct event_base *base, evutil_socket_t fd, const struct conn_ops *ops,
	       void *owner, uint64_t id, const char *ip);
/* Free the bufferevent, the socket and the queues (from ops->free). */
void conn_release(struct conn *c);
/* Output must leave within seconds; once closing, a TLS handshake too.
 * (Reading is timed by core/session.c.) */
void conn_set_timeout(struct conn *c, uint64_t seconds);
void conn_set_low_water(struct conn *c, size_t low);

void conn_ref(struct conn *c);
/* Drops a reference; may call ops->free, so c may be gone afterwards. */
void conn_unref(struct conn *c);
/* Stop reading; let the output drain first (flush) or not.  Closing
 * again without flush gives up a flush under way.  May call ops->free. */
void conn_close(struct conn *c, bool flush);

/* The next conn_close(flush) lingers: once the output has left, the
 * conn shuts down its sending side (the peer reads the last reply, then
 * EOF) and reads and drops what the peer still sends, until the peer
 * closes, CONN_LINGER_MS pass or CONN_LINGER_MAX octets have come; only
 * then is the socket closed.  Closing a socket with unread input resets
 * the connection, and the reset drops whatever of the last reply the
 * peer had not yet received (RFC 9112 9.6, RFC 2525 2.17): a client that
 * pipelines on past tern's fatal reply would never see it.  The loop
 * reads at most CONN_LINGER_TURN octets per turn, so a peer that floods
 * does not hold it up. */
#define CONN_LINGER_MS 2000
#define CONN_LINGER_MAX (16 * 1024 * 1024)
#define CONN_LINGER_TURN (256 * 1024)
void conn_linger(struct conn *c);

/* Output: add to conn_out(), then conn_push(); conn_write() does both.
 * Inside a batch the push waits for conn_batch_end(), so the replies to
 * a pipelined group leave in one write (RFC 2920, RFC 2449 6.6). */
struct evbuffer *conn_out(struct conn *c);
void conn_push(struct conn *c);
void conn_write(struct conn *c, const void *buf, size_t len);
/* Write what is queued now, even inside a batch: the last part of a
 * reply that the client is waiting for, before work that need not delay
 * it (closing the message file). */
void conn_flush(struct conn *c);
void conn_batch_begin(struct conn *c);
void conn_batch_end(struct conn *c);
/* Octets queued and not yet handed to the kernel. */
size_t conn_pending(const struct conn *c);
/* Start reading.  Plain connections write their output directly from
 * now on, TLS ones through the write events. */
void conn_start(struct conn *c);
/* Route the output through the write events until it has drained, so
 * that ops->drained is called (a long listing or message streams on).
 * Call it with output queued. */
void conn_await_drain(struct conn *c);

/* Input lines.  An over-long line is dropped as it arrives, so it never
 * fills memory, and reported once its end has been consumed. */
enum conn_line {
	CONN_LINE_MORE,           /* no complete line yet */
	CONN_LINE_OK,             /* buf holds the line with its LF, *len octets */
	CONN_LINE_TOO_LONG,       /* a line longer than max (or cap) was dropped */
};
enum conn_line conn_take_line(struct conn *c, char *buf, size_t cap, size_t max, size_t *len);
/* The same where only CRLF ends a line (SMTP, RFC 5321 2.3.8): a bare LF
 * stays inside the line; buf holds the line with its CRLF. */
enum conn_line conn_take_crlf_line(struct conn *c, char *buf, size_t cap, size_t max, size_t *len);

/* Implicit TLS: the handshake starts now on the TLS workers
 * (core/tls_accept.c); ops->connected once it is over, when an OpenSSL
 * bufferevent on the same socket takes over what was written and
 * enabled meanwhile; ops->event (ERROR or EOF) when it fails.  False
 * (ssl freed) when it cannot start. */
bool conn_start_tls(struct conn *c, SSL *ssl);
/* STARTTLS/STLS: all output from now on goes through the write events;
 * once it has left, the switch is made and ops->starttls_done told. */
void conn_starttls(struct conn *c, SSL *ssl);
void conn_log_tls_failed(const struct conn *c, unsigned long err);

#endif
