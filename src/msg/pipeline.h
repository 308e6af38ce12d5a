/*
 * pipeline.h - the message path from the end of the SMTP command phase to
 * the queue: a chain of stages, each consuming the message in chunks and
 * writing into the next one.
 *
 *   framer       raw octets from the client -> message octets (LF line
 *                ends); DATA's dot-unstuffing framer (stage_dot.c), or
 *                BDAT's byte counter.  Only the framer sees raw input.
 *   header work  Received:, MSA fixes, header scan (stage_header.c)
 *   checks       an ordered list of check stages (stage_loop.c: the
 *                Delivered-To loop check; DKIM, SPF/DMARC and milters
 *                later).  Each sees every chunk, passes it on, and gives
 *                its verdict at the end of the message, at once or later
 *                (after a worker job or a network reply); it may add
 *                header fields in front of the message.
 *   sink         where the message goes (sink_queue.c: the queue writer,
 *                then delivery's hook).  Its verdict is the commit's.
 *
 * The session feeds raw input to the framer (pipeline_feed) and, once the
 * framer (DATA) or the session (BDAT ... LAST) has seen the end, asks for
 * the verdict (pipeline_end).  The stages answer in chain order; the first
 * that does not accept decides, and the stages after it are not asked.
 * Nothing holds the whole message: each stage keeps at most a bounded
 * part of it (the MSA holds a header section of up to 64 KiB).
 */
#ifndef TERN_PIPELINE_H
#define TERN_PIPELINE_H

#include <stdbool.h>
#include <stddef.h>

#define PIPELINE_REPLY_MAX 512

struct pipeline;
struct pipe_stage;
struct queue_env;

/* The answer at end of message: 0 (accept) or an SMTP reply. */
struct pipe_verdict {
	int code;                         /* 0, or 4xx / 5xx */
	char reply[PIPELINE_REPLY_MAX];   /* "554 5.4.6 ...", without CRLF */
	bool own_fault;                   /* tern's trouble: not a client error */
	bool discard;                     /* code 0, but dropped: not delivered */
};

struct pipe_stage_ops {
	const char *name;
	/* Framer only: consume raw input, emit message octets with
	 * pipe_emit(); sets *done after the last octet of the message.
	 * Returns the octets consumed (the rest is the next command). */
	size_t (*feed)(struct pipe_stage *st, const char *in, size_t len, bool *done);
	/* Message octets (LF line ends) from the stage before. */
	void (*data)(struct pipe_stage *st, const char *buf, size_t len);
	/* Sink only: header fields to go in front of the message. */
	bool (*prepend)(struct pipe_stage *st, const char *buf, size_t len);
	/* Sink only, called when it is added after a stage that prepends:
	 * make room in front before the message comes (see sink_queue.c). */
	void (*front_coming)(struct pipe_stage *st);
	/* Check stages: may call pipe_prepend() at the end of the message. */
	bool prepends;
	/* Sink only: the envelope changed (a milter's recipients or
	 * sender), before the rest of the message comes. */
	bool (*envelope)(struct pipe_stage *st);
	/* End of message: answer with pipe_stage_accept() or
	 * pipe_stage_refuse(), now or later.  A
	 * stage touches nothing of its own after that call. */
	void (*end)(struct pipe_stage *st);
	void (*free)(struct pipe_stage *st);
};

/* Embedded first in each stage's own struct. */
struct pipe_stage {
	const struct pipe_stage_ops *ops;
	struct pipeline *p;
	struct pipe_stage *next;
};

typedef void (*pipeline_done_fn)(void *arg, const struct pipe_verdict *v);

/* A chain for the message of env (which the caller keeps). */
struct pipeline *pipeline_new(struct queue_env *env);
/* Append a stage: the framer first, the sink last.  Takes ownership.
 * A sink added after a stage that prepends is told so (front_coming). */
void pipeline_add(struct pipeline *p, struct pipe_stage *st);
/* Replace the first stage (the framer), e.g. DATA's by BDAT's. */
void pipeline_set_framer(struct pipeline *p, struct pipe_stage *st);
/* Free every stage; a sink not yet finished drops its message. */
void pipeline_free(struct pipeline *p);

/* Raw input to the framer; see pipe_stage_ops.feed. */
size_t pipeline_feed(struct pipeline *p, const char *in, size_t len, bool *done);
/* The message is complete: ask each stage for its verdict in turn; done
 * is called once, on the loop thread, possibly before this returns.  The
 * pipeline may be freed from done. */
void pipeline_end(struct pipeline *p, pipeline_done_fn done, void *arg);

struct queue_env *pipeline_env(const struct pipeline *p);

/* For stages: pass message octets to the next stage. */
void pipe_emit(struct pipe_stage *st, const char *buf, size_t len);
/* For check stages: header fields (complete lines, LF ends) that go in
 * front of the message.  False when the sink has no room for them. */
bool pipe_prepend(struct pipe_stage *st, const char *buf, size_t len);
/* For check stages that hold the message back: the envelope changed
 * (pipeline_env()); false when the sink could not take it. */
bool pipe_envelope_changed(struct pipe_stage *st);
/* A stage's verdict at end of message: accept, or refuse with an SMTP
 * reply (4xx tempfail, 5xx reject; printf format, its code first).  A
 * refusal that is tern's trouble, not the client's, does not count
 * toward the session's error limit (own_fault). */
void pipe_stage_accept(struct pipe_stage *st);
void pipe_stage_refuse(struct pipe_stage *st, bool own_fault, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* A check stage's verdict that the message is accepted but thrown away
 * (a milter's DISCARD): the client is told 250, the stages after it are
 * not asked, so the sink never commits and drops the message. */
void pipe_stage_discard(struct pipe_stage *st);

#endif
