/*
 * session.h - the line-session base under SMTP and POP3 (and IMAP next):
 * what every line protocol's server session does the same way, on top of
 * its struct conn (core/conn.h).
 *
 *  - Line intake with bounds: one line at a time from the input, at most
 *    ops->line_max() octets; an over-long line is dropped as it arrives
 *    and reported once its end is in (ops->line_too_long).
 *  - Raw intake: while ops->raw() says so (SMTP DATA) the session takes
 *    the input itself; session_take_octets() hands exactly n octets to
 *    ops->octets in pieces as they arrive (IMAP literals, BDAT).
 *  - The error limit: session_error() counts a client's mistake; at
 *    max_errors the session gets the protocol's fatal text (SMTP 421,
 *    POP3 -ERR, IMAP "* BYE") and is closed.
 *  - Timeouts of its own (one timer, no descriptor): the idle timeout
 *    while no command has begun, restarted by every read; the command
 *    timeout from the first octet of a line to its end, never restarted
 *    by the octets in between, so a client that trickles a command one
 *    byte at a time is dropped on time (libevent's read timeouts restart
 *    on every read).  Either sends the protocol's timeout text.
 *  - An output high-water mark: past it the session stops processing
 *    (and reading) input until the output drains to the low-water mark,
 *    then goes on with what is buffered.  A client that pipelines
 *    without reading costs at most the mark and the kernel's buffers.
 *  - Pauses (a worker job, a delay, STARTTLS): input waits, in order,
 *    and the input timer stops.
 *  - STARTTLS: the reply leaves in the clear, whatever was pipelined
 *    behind the command is dropped (RFC 3207 4.2, RFC 2595 4), and the
 *    session resumes on TLS.
 *
 * A protocol session embeds a struct conn and a struct session, calls
 * session_init() instead of conn_init(), and gets its callbacks through
 * struct session_ops (called with a reference held, inside an output
 * batch).
 */
#ifndef TERN_SESSION_H
#define TERN_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <event2/event_struct.h>
#include <event2/util.h>
#include <openssl/ssl.h>

#include "core/conn.h"

struct evbuffer;

#define SESSION_LINE_CAP 16384          /* the longest line any protocol takes */
#define SESSION_OUT_HIGH (256 * 1024)   /* stop processing input above this */
#define SESSION_OUT_LOW (32 * 1024)     /* and go on below this */

enum session_raw {
	SESSION_RAW_NO,           /* not taking raw input: frame lines */
	SESSION_RAW_MORE,         /* took some: call again */
	SESSION_RAW_STOP,         /* out of input, or paused: stop this pass */
};

struct session_ops {
	/* One line, its line end removed; bare_lf when it ended in LF
	 * without CR before it (with crlf_lines: when it holds an LF).
	 * line[len] is '\0'. */
	void (*line)(void *owner, char *line, size_t len, bool bare_lf);
	/* Only CRLF ends a line (SMTP, RFC 5321 2.3.8): a bare LF does not,
	 * so "EHLO a<LF>MAIL FROM:<x><CRLF>" is one line. */
	bool crlf_lines;
	void (*line_too_long)(void *owner);
	size_t (*line_max)(void *owner);   /* octets, line end included */
	/* Raw input (SMTP DATA): reads session_input() itself.  May be NULL. */
	enum session_raw (*raw)(void *owner);
	/* session_take_octets(): the next piece; last on the final one.  May be NULL. */
	void (*octets)(void *owner, const char *p, size_t len, bool last);
	/* May input be processed now?  (Protocol states that wait.)  May be NULL. */
	bool (*ready)(void *owner);
	const char *(*state_name)(void *owner);   /* for the log */
	/* Close: the protocol's close (it owns its state).  flush: let the
	 * output leave first. */
	void (*close)(void *owner, bool flush);
	/* The conn's events the base does not handle itself. */
	void (*drained)(void *owner);              /* may be NULL */
	void (*event)(void *owner, short what);    /* EOF or error */
	void (*connected)(void *owner);            /* may be NULL */
	void (*starttls_done)(void *owner, bool ok);
	void (*free)(void *owner);
	/* The fatal replies, CRLF added: "421 4.4.2 Timeout exceeded ...". */
	const char *timeout_text;
	const char *command_timeout_text;   /* a line not ended in time; NULL: timeout_text */
	const char *errors_text;
};

enum session_timer {
	SESSION_TIMER_OFF,
	SESSION_TIMER_IDLE,       /* waiting for a command to begin */
	SESSION_TIMER_COMMAND,    /* a line has begun: it must end in time */
};

struct session {
	struct conn *conn;
	const struct session_ops *ops;
	void *owner;
	struct event timer;
	enum session_timer timer_on;
	uint64_t idle_timeout, command_timeout;   /* seconds */
	unsigned errors, max_errors;
	unsigned paused;          /* session_pause() calls not yet resumed */
	bool output_full;         /* waiting for the output to drain */
	bool discard;             /* STARTTLS: stop this pass */
	bool in_pass;             /* session_process() on the stack */
	uint64_t octets_left;     /* session_take_octets() still owed */
};

/* conn_init() with the base in between: c embedded next to s in owner. */
void session_init(struct session *s, struct conn *c, struct event_base *base, evutil_socket_t fd,
		  const struct session_ops *ops, void *owner, uint64_t id, const char *ip);
/* From ops->free: the timer and the conn. */
void session_release(struct session *s);
/* Start reading (conn_start) with the idle timer running. */
void session_start(struct session *s);
/* Idle and command timeouts; also the conn's write timeout (idle). */
void session_set_timeouts(struct session *s, uint64_t idle, uint64_t command);

/* Process what is buffered now (after a change that may let input go on). */
void session_process(struct session *s);
/* Stop processing input until session_resume(); holds a reference.
 * Pauses nest.  session_resume() drops one, goes on with the buffered
 * input when the last is gone, and may free the session. */
void session_pause(struct session *s);
void session_resume(struct session *s);

/* A client's mistake: counts toward max_errors (checked after each line). */
void session_error(struct session *s);

/* Hand the next n octets of input to ops->octets (IMAP literal). */
void session_take_octets(struct session *s, uint64_t n);

/* The input buffer, for ops->raw. */
struct evbuffer *session_input(struct session *s);

/* STARTTLS/STLS: call before queueing the reply.  Pipelined input is
 * dropped, input pauses, the reply leaves, then ops->starttls_done and
 * the pause ends. */
void session_starttls(struct session *s, SSL *ssl);

#endif
