/*
 * stage_loop.c - the Delivered-To loop check, a check stage.
 *
 * Local delivery writes "Delivered-To: <recipient>" at the top of each
 * copy (delivery/local.c, as Postfix's local(8) does, RFC 9228).  A
 * message that comes back already carrying that field for one of its
 * recipients has been round a loop (a forward pointing back here): that
 * recipient fails with 5.4.6 and gets a bounce instead of another copy,
 * and when every recipient looped the message is refused at the end of
 * DATA with 554 5.4.6.  Only the header section is looked at, one field
 * at a time, in bounded memory (a field longer than LOOP_FIELD_MAX cannot
 * hold an address and is skipped).
 */
#include "msg/pipeline.h"
#include "msg/stages.h"
#include "core/log.h"
#include "core/util.h"
#include "store/queue.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define LOOP_FIELD_MAX 600

struct stage_loop {
	struct pipe_stage st;
	bool in_headers;
	bool line_start;
	bool overflow;                /* the current field is too long */
	size_t len;
	char field[LOOP_FIELD_MAX];   /* the current field, unfolded */
	bool *looped;                 /* per recipient, once one matched */
};

static void log_loop(const struct queue_env *env, const struct queue_rcpt *r)
{
	char to[600];
	log_event("event=loop queue=%s to=%s check=delivered_to", env->id,
		  log_quote(to, sizeof(to), r->addr, strlen(r->addr)));
}

static void loop_match(struct stage_loop *l, const char *addr, size_t n)
{
	const struct queue_env *env = pipeline_env(l->st.p);

	if (n >= 2 && addr[0] == '<' && addr[n - 1] == '>') {
		addr++;
		n -= 2;
	}
	for (size_t i = 0; i < env->nrcpt; i++) {
		const char *a = env->rcpt[i].addr;
		if (strlen(a) == n && strncasecmp(a, addr, n) == 0) {
			if (l->looped == NULL)
				l->looped = xcalloc(env->nrcpt, sizeof(bool));
			l->looped[i] = true;
		}
	}
}

/* One whole field in l->field.  A line that is no field ends the header
 * section, as proto/header.c has it. */
static void loop_field_done(struct stage_loop *l)
{
	static const char name[] = "Delivered-To";
	const char *f = l->field, *colon, *end, *v;
	size_t nlen;

	if (l->len == 0 || l->overflow)
		return;
	colon = memchr(f, ':', l->len);
	if (colon == NULL) {
		l->in_headers = false;
		return;
	}
	for (nlen = (size_t)(colon - f); nlen > 0 && (f[nlen - 1] == ' ' || f[nlen - 1] == '\t'); nlen--)
		;
	if (nlen != sizeof(name) - 1 || strncasecmp(f, name, nlen) != 0)
		return;
	v = colon + 1;
	end = f + l->len;
	while (v < end && (*v == ' ' || *v == '\t'))
		v++;
	while (end > v && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\r'))
		end--;
	loop_match(l, v, (size_t)(end - v));
}

static void loop_put(struct stage_loop *l, char c)
{
	if (l->len < sizeof(l->field))
		l->field[l->len++] = c;
	else
		l->overflow = true;
}

static void loop_data(struct pipe_stage *st, const char *buf, size_t len)
{
	struct stage_loop *l = (struct stage_loop *)st;

	for (size_t i = 0; i < len && l->in_headers; i++) {
		char c = buf[i];
		if (!l->line_start) {
			if (c == '\n')
				l->line_start = true;
			else
				loop_put(l, c);
			continue;
		}
		l->line_start = false;
		if (c == ' ' || c == '\t') {          /* a continuation line */
			loop_put(l, c);
			continue;
		}
		loop_field_done(l);
		l->len = 0;
		l->overflow = false;
		if (c == '\n')                        /* the empty line */
			l->in_headers = false;
		else
			loop_put(l, c);
	}
	pipe_emit(st, buf, len);
}

static void loop_end(struct pipe_stage *st)
{
	struct stage_loop *l = (struct stage_loop *)st;
	struct queue_env *env = pipeline_env(st->p);
	const char *first = NULL;
	size_t open = 0;

	if (l->in_headers)
		loop_field_done(l);
	for (size_t i = 0; l->looped && i < env->nrcpt; i++) {
		struct queue_rcpt *r = &env->rcpt[i];
		if (!l->looped[i] || r->state != RCPT_PENDING)
			continue;
		log_loop(env, r);
		r->state = RCPT_FAILED;
		free(r->status);
		free(r->last_reply);
		r->status = xstrdup("5.4.6");
		r->last_reply = xasprintf("554 5.4.6 Mail forwarding loop for <%s>", r->addr);
		if (first == NULL)
			first = r->addr;
	}
	for (size_t i = 0; i < env->nrcpt; i++)
		if (env->rcpt[i].state == RCPT_PENDING)
			open++;
	if (open == 0 && first != NULL)
		pipe_stage_refuse(st, false, "554 5.4.6 Mail forwarding loop for <%s>", first);
	else
		pipe_stage_accept(st);
}

static void loop_free(struct pipe_stage *st)
{
	struct stage_loop *l = (struct stage_loop *)st;
	free(l->looped);
	free(l);
}

static const struct pipe_stage_ops stage_loop_ops = {
	.name = "loop",
	.data = loop_data,
	.end = loop_end,
	.free = loop_free,
};

struct pipe_stage *stage_loop_new(void)
{
	struct stage_loop *l = xcalloc(1, sizeof(*l));

	l->st.ops = &stage_loop_ops;
	l->in_headers = true;
	l->line_start = true;
	return &l->st;
}
