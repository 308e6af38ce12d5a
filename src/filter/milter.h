/*
 * milter.h - the milter client (protocol v6, MTA side) as a check stage
 * of the message pipeline (msg/pipeline.h): every [milter] server sees
 * the message as it passes, and at its end their verdicts decide, in the
 * order they are listed.
 */
#ifndef TERN_FILTER_MILTER_H
#define TERN_FILTER_MILTER_H

#include <stdint.h>

struct pipe_stage;
struct tern;

/* What the session knows about its client, for the filters' CONNECT,
 * HELO, MAIL and their macros.  Copied: the caller keeps nothing alive. */
struct milter_client {
	uint64_t session;           /* the session id, for the log */
	const char *daemon_name;    /* the service: "smtp", "submission" */
	const char *addr;           /* the client's address, as text */
	unsigned port;
	char family;                /* '4', '6' */
	const char *name;           /* its verified PTR name, or NULL */
	const char *helo;           /* "" when none */
	const char *tls_version;    /* NULL without TLS */
	const char *cipher;
	const char *auth_user;      /* NULL without AUTH */
};

/* A check stage for the message of the pipeline it is added to (its
 * envelope is read when the message starts).  The connections open now,
 * while the message is still coming. */
struct pipe_stage *milter_stage_new(struct tern *t, const struct milter_client *c);

#endif
