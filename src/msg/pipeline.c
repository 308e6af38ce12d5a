/*
 * pipeline.c - the chain of message stages (see pipeline.h).
 *
 * The end of a message runs as a loop over the stages rather than as
 * calls from one stage into the next: a stage that answers at once lets
 * the loop go on, one that answers later (a worker job, a milter's reply)
 * restarts it from pipe_stage_accept().  So the stack never grows with the
 * chain, and the final callback is the very last thing done, after which
 * the owner may free the pipeline.
 */
#include "msg/pipeline.h"
#include "core/util.h"

#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct pipeline {
	struct queue_env *env;
	struct pipe_stage *head, *tail;
	bool prepends;                /* a stage added so far may prepend */
	/* end of message */
	struct pipe_stage *asked;     /* the stage whose verdict is awaited */
	bool answered;                /* it has answered */
	bool looping;                 /* pipeline_advance() is on the stack */
	struct pipe_verdict verdict;
	pipeline_done_fn done;
	void *done_arg;
};

struct pipeline *pipeline_new(struct queue_env *env)
{
	struct pipeline *p = xcalloc(1, sizeof(*p));
	p->env = env;
	return p;
}

struct queue_env *pipeline_env(const struct pipeline *p)
{
	return p->env;
}

void pipeline_add(struct pipeline *p, struct pipe_stage *st)
{
	st->p = p;
	st->next = NULL;
	if (p->tail)
		p->tail->next = st;
	else
		p->head = st;
	p->tail = st;
	if (st->ops->prepends)
		p->prepends = true;
	else if (p->prepends && st->ops->front_coming != NULL)
		st->ops->front_coming(st);
}

void pipeline_set_framer(struct pipeline *p, struct pipe_stage *st)
{
	struct pipe_stage *old = p->head;

	st->p = p;
	st->next = old ? old->next : NULL;
	p->head = st;
	if (p->tail == old)
		p->tail = st;
	if (old)
		old->ops->free(old);
}

void pipeline_free(struct pipeline *p)
{
	if (p == NULL)
		return;
	for (struct pipe_stage *st = p->head, *next; st; st = next) {
		next = st->next;
		st->ops->free(st);
	}
	free(p);
}

size_t pipeline_feed(struct pipeline *p, const char *in, size_t len, bool *done)
{
	*done = false;
	if (p->head == NULL || p->head->ops->feed == NULL)
		return len;
	return p->head->ops->feed(p->head, in, len, done);
}

void pipe_emit(struct pipe_stage *st, const char *buf, size_t len)
{
	if (st->next && len > 0)
		st->next->ops->data(st->next, buf, len);
}

bool pipe_prepend(struct pipe_stage *st, const char *buf, size_t len)
{
	struct pipe_stage *sink = st->p->tail;

	if (sink == NULL || sink->ops->prepend == NULL)
		return false;
	return sink->ops->prepend(sink, buf, len);
}

bool pipe_envelope_changed(struct pipe_stage *st)
{
	struct pipe_stage *sink = st->p->tail;

	if (sink == NULL || sink->ops->envelope == NULL)
		return false;
	return sink->ops->envelope(sink);
}

/* Ask st and the stages after it, until one answers later or the chain
 * is done (every stage accepted, or one refused). */
static void pipeline_run(struct pipeline *p, struct pipe_stage *st)
{
	p->looping = true;
	while (st != NULL) {
		p->asked = st;
		p->answered = false;
		st->ops->end(st);
		if (!p->answered) {
			p->looping = false;
			return;   /* it answers later: pipeline_answered() goes on */
		}
		if (p->verdict.code != 0 || p->verdict.discard)
			break;
		st = st->next;
	}
	p->looping = false;
	p->done(p->done_arg, &p->verdict);
}

static void pipeline_answered(struct pipe_stage *st)
{
	struct pipeline *p = st->p;

	assert(st == p->asked && !p->answered);
	p->answered = true;
	if (!p->looping)
		pipeline_run(p, p->verdict.code == 0 && !p->verdict.discard ? st->next : NULL);
}

void pipe_stage_accept(struct pipe_stage *st)
{
	pipeline_answered(st);
}

void pipe_stage_refuse(struct pipe_stage *st, bool own_fault, const char *fmt, ...)
{
	struct pipe_verdict *v = &st->p->verdict;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(v->reply, sizeof(v->reply), fmt, ap);
	va_end(ap);
	v->code = (v->reply[0] - '0') * 100 + (v->reply[1] - '0') * 10 + (v->reply[2] - '0');
	if (v->code < 400 || v->code > 599) {
		/* our bug: a stage refused with no reply code */
		snprintf(v->reply, sizeof(v->reply), "451 4.3.0 Internal error, try again later");
		v->code = 451;
		own_fault = true;
	}
	v->own_fault = own_fault;
	pipeline_answered(st);
}

void pipe_stage_discard(struct pipe_stage *st)
{
	st->p->verdict.discard = true;
	pipeline_answered(st);
}

void pipeline_end(struct pipeline *p, pipeline_done_fn done, void *arg)
{
	p->done = done;
	p->done_arg = arg;
	memset(&p->verdict, 0, sizeof(p->verdict));
	pipeline_run(p, p->head);
}
