/*
 * milter.h - the milter client (protocol v6, MTA side): one connection
 * per [milter] server per SMTP session, shown each SMTP step as it comes
 * (CONNECT, HELO, MAIL, RCPT, DATA: their verdict is that command's
 * reply),
 * and each message as a check stage of the message pipeline
 * (msg/pipeline.h), whose verdict the filters give at its end, in the
 * order they are listed.
 */
#ifndef TERN_FILTER_MILTER_H
#define TERN_FILTER_MILTER_H

#include <stdbool.h>
#include <stdint.h>

#include "msg/pipeline.h"

struct pipe_stage;
struct tern;
struct milter_session;

/* What the session knows about its client, for the filters' CONNECT and
 * its macros.  Copied: the caller keeps nothing alive. */
struct milter_client {
	uint64_t session;           /* the session id, for the log */
	const char *daemon_name;    /* the service: "smtp", "submission" */
	const char *addr;           /* the client's address, as text */
	unsigned port;
	char family;                /* '4', '6' */
	const char *name;           /* its verified PTR name, or NULL */
};

/* The filters' answer to a step: go on, or the reply the command gets
 * instead (a 4xx/5xx SMTP reply, without CRLF). */
struct milter_answer {
	bool refused;
	char reply[PIPELINE_REPLY_MAX];
	bool own_fault;             /* a filter failed: not the client's error */
};

typedef void (*milter_step_fn)(void *arg, const struct milter_answer *a);

/* The session's filters, connected now; NULL when none are configured.
 * Free with milter_session_free() (QUIT), after the message pipeline. */
struct milter_session *milter_session_new(struct tern *t, const struct milter_client *c);
void milter_session_free(struct milter_session *ms);

/* The SMTP steps.  Each returns true when the answer is known at once
 * (in *now; done is not called), else false, and done is called once,
 * later, from the event loop.  Only one step at a time. */
bool milter_connect(struct milter_session *ms, milter_step_fn done, void *arg, struct milter_answer *now);
bool milter_helo(struct milter_session *ms, const char *helo, const char *tls_version, const char *cipher,
		 milter_step_fn done, void *arg, struct milter_answer *now);
bool milter_mail(struct milter_session *ms, const char *from, const char *auth_user, milter_step_fn done,
		 void *arg, struct milter_answer *now);
bool milter_rcpt(struct milter_session *ms, const char *rcpt, milter_step_fn done, void *arg,
		 struct milter_answer *now);
/* DATA, or the first BDAT, once the message's stage is in its pipeline
 * (milter_stage_new()): a refusal is that command's reply, before 354
 * or the chunk's 250.  Without a stage the answer is "go on", now. */
bool milter_data_step(struct milter_session *ms, milter_step_fn done, void *arg, struct milter_answer *now);
/* The transaction ended without (more of) a message: RSET, a refused
 * MAIL, a new HELO; the filters are told to forget it (ABORT). */
void milter_abort(struct milter_session *ms);

/* The check stage for the message of the transaction (at DATA or the
 * first BDAT).  NULL when no filter takes part in it. */
struct pipe_stage *milter_stage_new(struct milter_session *ms);

#endif
