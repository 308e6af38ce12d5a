/*
 * smtp_session.h - the SMTP server session's insides, shared by the files
 * of src/smtp/ that implement parts of it (smtp_server.c: the dialog and
 * DATA, whose message path is src/msg/; smtp_policy.c: relay and sender rules; smtp_auth.c: STARTTLS and
 * AUTH).  Nothing outside src/smtp/ includes this.
 */
#ifndef TERN_SMTP_SESSION_H
#define TERN_SMTP_SESSION_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "core/conn.h"
#include "core/server.h"
#include "core/session.h"
#include "proto/smtp_parse.h"

#define SMTP_AUTH_LINE_MAX 12288  /* RFC 4954 4: AUTH lines may be long */

enum smtp_state {
	SMTP_S_GREETED,           /* 220 sent, no HELO/EHLO yet */
	SMTP_S_READY,             /* HELO/EHLO done, no transaction */
	SMTP_S_MAIL,              /* MAIL accepted */
	SMTP_S_RCPT,              /* at least one RCPT accepted */
	SMTP_S_DATA,              /* reading the message */
	SMTP_S_CHUNKS,            /* BDAT chunks of the message (RFC 3030) */
	SMTP_S_COMMIT,            /* end of message: verdicts, then the commit */
	SMTP_S_CLOSING,           /* flushing the last reply, then free */
};

struct pipeline;
struct pipe_stage;

/* MAIL .. end of DATA.  RSET is smtp_txn_reset(). */
struct smtp_txn {
	struct queue_env *env;    /* envelope being built */
	unsigned nrcpt_cmds;      /* accepted RCPT commands */
	char *first_rcpt;         /* for "for <...>" in Received: */
	struct pipeline *pipe;    /* after DATA: the message path (msg/pipeline.h) */
	struct pipe_stage *sink;  /* its last stage (the queue), owned by pipe */
	uint64_t bdat_size;       /* octets announced by this message's BDATs */
};

/* The BDAT chunk being read (smtp_bdat.c).  Its octets are always read,
 * even when the chunk is refused, so that they are never taken for
 * commands (RFC 3030 2). */
struct smtp_bdat {
	bool reading;             /* octets of a chunk are still to come */
	uint64_t left;            /* how many */
	uint64_t size;            /* the chunk's size */
	bool last;                /* BDAT n LAST */
	char refusal[160];        /* the reply for a chunk read only to be dropped, or "" */
	bool refusal_own_fault;   /* tern's trouble: no error counted */
	bool reset_after;         /* the refusal ends the transaction */
	bool milter_wait;         /* the first chunk waits for the filters' DATA verdict */
};

struct ssl_st;
struct smtp_auth_state;

/* smtp_filter.c's part of the session: DNS lists and what waits for them. */
enum smtp_dnsbl_state { SMTP_DNSBL_NONE, SMTP_DNSBL_ASKING, SMTP_DNSBL_CLEAR, SMTP_DNSBL_LISTED, SMTP_DNSBL_ALLOWED };
struct smtp_mxcheck {
	enum smtp_dnsbl_state dnsbl;
	uint64_t dnsbl_req;       /* the check in flight (filter/dnsbl.h id), or 0 */
	char *zone;               /* LISTED: the zone */
	bool greet_waits;         /* check_at = connect: the greeting waits */
	bool refused;             /* 554 greeting sent: only QUIT now */
	char *held_line;          /* a RCPT waiting for the lists' answer */
};

/* smtp_milter.c's part: the step the filters are asked about, and how
 * to undo the command if they refuse it. */
enum smtp_milter_step { SMTP_MW_NONE, SMTP_MW_CONNECT, SMTP_MW_HELO, SMTP_MW_MAIL, SMTP_MW_RCPT, SMTP_MW_DATA,
			SMTP_MW_BDAT };
struct smtp_milter_wait {
	enum smtp_milter_step step;
	char *ok;                 /* the command's own reply */
	enum smtp_state prev_state;   /* HELO */
	char prev_helo[256];
	bool prev_esmtp;
	size_t nrcpt0;            /* RCPT: the envelope's recipients before it */
	bool first_rcpt_new;
};

struct milter_session;

struct smtp_session {
	struct session_link link;
	uint64_t id;
	struct tern *t;
	enum service svc;
	struct conn conn;         /* socket, references, output */
	struct session sess;      /* line intake, timeouts, error limit, output mark */
	enum smtp_state state;
	struct sockaddr_storage peer;
	char ip[64];
	char *ptr_name;           /* forward-confirmed reverse DNS, or NULL */
	uint64_t ptr_req;         /* its lookup while in flight (dns.h id), or 0 */
	char helo[256];
	bool esmtp;
	bool trusted;             /* client in [relay] trusted_networks */
	char *auth_user;
	unsigned messages;
	size_t line_max;          /* 0 = SMTP_LINE_MAX */
	bool peer_gone;
	bool peer_eof;            /* half-closed during a commit: answer, then close */
	bool shutdown_after_commit;
	bool end_of_data_running; /* pipeline_end() is on the stack */
	const char *cur_verb;     /* for logging replies >= 400 */
	bool no_error_count;      /* this reply does not count as an error */
	/* AUTH in progress */
	bool sasl_pending;
	struct smtp_auth_state *auth;  /* smtp_auth.c: TLS switch-over, AUTH exchange, delays */
	struct smtp_txn *txn;
	struct smtp_bdat bdat;
	struct smtp_mxcheck mx;   /* smtp_filter.c */
	struct milter_session *milter;   /* smtp_milter.c: the session's filters, or NULL */
	struct smtp_milter_wait mw;
	bool milter_refused;      /* a filter refused the connection: only QUIT */
};

struct smtp_command {
	const char *name;
	void (*fn)(struct smtp_session *s, const char *args, size_t len);
	unsigned flags;
};

/* smtp_server.c */
void smtp_set_state(struct smtp_session *s, enum smtp_state to);
void smtp_reply(struct smtp_session *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void smtp_txn_reset(struct smtp_session *s);
void smtp_greet(struct smtp_session *s);
const char *smtp_service_name(enum service svc);
void smtp_reply_shutdown(struct smtp_session *s, const char *text);
/* Stop reading; free once the output has left (flush) or at once. */
void smtp_close(struct smtp_session *s, bool flush);
/* session_pause()/session_resume() (core/session.h): input waits, in
 * order, while a timer or worker job holds the session; resume may free s. */
void smtp_pause_input(struct smtp_session *s);
void smtp_resume_input(struct smtp_session *s);

/* Run one command line (a line held back and taken up again). */
void smtp_dispatch(struct smtp_session *s, const char *line, size_t len);

/* smtp_filter.c: DNS lists, greylisting and rates of the MX (src/filter/) */
bool smtp_filter_connect(struct smtp_session *s);   /* true: it greets (or refuses) */
const char *smtp_filter_conn_rate(struct smtp_session *s);   /* the refusal, or NULL */
/* Before a command runs: true when the hook took the line (replied or held it). */
bool smtp_filter_hold(struct smtp_session *s, const char *verb, const char *line, size_t len);
bool smtp_filter_rcpt(struct smtp_session *s, const char *addr);   /* replies when false */
void smtp_filter_free(struct smtp_session *s);

/* smtp_milter.c: the milters at each SMTP step (filter/milter.h).
 * Each step function sends the command's own reply ok, or the filters'
 * refusal (undoing the command), now or, input paused, later. */
void smtp_milter_open(struct smtp_session *s);
bool smtp_milter_connect(struct smtp_session *s);   /* true: it greets (or refuses) */
void smtp_milter_helo(struct smtp_session *s, enum smtp_state prev_state, const char *prev_helo, bool prev_esmtp,
		      const char *ok);
void smtp_milter_mail(struct smtp_session *s, const char *ok);
void smtp_milter_rcpt(struct smtp_session *s, const char *addr, size_t nrcpt0, bool first_rcpt_new, const char *ok);
/* DATA (its pipeline built): 354 through smtp_data_go() if the filters
 * go on; the first BDAT: their refusal is the chunk's (bdat_milter_refused) */
void smtp_milter_data(struct smtp_session *s);
void smtp_milter_bdat(struct smtp_session *s);
bool smtp_milter_hold(struct smtp_session *s, const char *verb);   /* true: replied */
void smtp_milter_free(struct smtp_session *s);
/* smtp_server.c, for it */
void smtp_greet_after_milter(struct smtp_session *s);
void smtp_rcpt_rollback(struct smtp_session *s, size_t nrcpt0);

/* smtp_policy.c: who may do what */
bool smtp_policy_may_proceed(struct smtp_session *s);   /* replies when not */
bool smtp_policy_may_relay(const struct smtp_session *s);
bool smtp_policy_sender_ok(struct smtp_session *s, const struct smtp_path *p, const char *addr);
bool smtp_policy_rcpt_ok(struct smtp_session *s, const struct smtp_path *p, const char *addr);

/* smtp_auth.c: TLS and AUTH */
int smtp_tls_accept_hook(struct smtp_session *s);        /* implicit TLS on 465 */
void smtp_tls_connected_cb(void *arg);                   /* conn_ops.connected */
void smtp_starttls_done_cb(void *arg, bool ok);          /* conn_ops.starttls_done */
size_t smtp_ehlo_extra(struct smtp_session *s, char *buf, size_t cap);
void smtp_tls_describe(struct smtp_session *s, char *buf, size_t cap);
void smtp_cmd_starttls(struct smtp_session *s, const char *args, size_t len);
void smtp_cmd_auth(struct smtp_session *s, const char *args, size_t len);
void smtp_auth_continue(struct smtp_session *s, const char *line, size_t len);
void smtp_auth_abort(struct smtp_session *s);            /* AUTH line too long */
void smtp_auth_free(struct smtp_session *s);

/* smtp_server.c, for smtp_bdat.c: the message path of the transaction
 * (false: no queue file), with envelope details filled in; and the end
 * of the message (the verdict answers). */
bool smtp_txn_start(struct smtp_session *s, struct pipe_stage *framer);
void smtp_end_of_data(struct smtp_session *s);
void smtp_data_go(struct smtp_session *s);   /* DATA's 354: the message may come */

/* smtp_bdat.c: BDAT (RFC 3030 CHUNKING, BINARYMIME) */
void smtp_cmd_bdat(struct smtp_session *s, const char *args, size_t len);
/* the filters refused the first chunk: read it, drop it, then reply */
void smtp_bdat_milter_answer(struct smtp_session *s, bool refused, bool own_fault, const char *reply);
/* Read the current chunk's octets; false when processing must stop (out
 * of input, or the verdict on the message is pending). */
bool smtp_bdat_input(struct smtp_session *s);

/* smtp_etrn.c: ETRN (RFC 1985) */
void smtp_cmd_etrn(struct smtp_session *s, const char *args, size_t len);

#endif
