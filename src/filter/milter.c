/*
 * milter.c - the milter client: a check stage that shows each message to
 * the [milter] servers and gives their verdict at its end (milter.h).
 *
 * One connection per server per message, opened when the message starts
 * (at DATA), closed after its verdict.  Sendmail and Postfix hold one per
 * SMTP session and show the filter each command as it comes; tern replays
 * the session's CONNECT, HELO, MAIL and RCPT from the envelope at the
 * start of the message instead.  The filter sees the same commands, in
 * the same order, with the same macros; what differs is only when: a
 * filter that rejects at CONNECT, HELO, MAIL or RCPT has the whole
 * message refused at its end, rather than the command at once.  That
 * costs the bandwidth of one message and keeps the outcome (no message
 * is accepted that the filter refused, and no bounce is made for it),
 * while a session that sends no message costs the filters nothing and
 * the SMTP command path stays free of network waits.  A recipient that a
 * filter rejects refuses the whole message the same way (the client
 * tries the others again on its own).
 *
 * Commands go out as the message passes, without waiting for each reply
 * (the pipeline cannot hold the message back); the replies are read as
 * they come, counted against the commands that want one, and a filter
 * that decides early (accept, reject, ...) is sent nothing more.  Until
 * every filter has negotiated its options the message octets wait in a
 * backlog, since what is sent depends on them (the steps it skips).  At
 * the end the filters are asked for their end-of-message verdict one
 * after the other, in the order configured: the first that does not
 * accept decides; the header fields they add go in front of the message
 * (the pipeline's prepend), all at once, after every filter agreed and
 * before the sink makes the message durable.
 *
 * Modifications offered to filters in option negotiation: add and insert
 * header fields (both put in front: the pipeline adds only there),
 * quarantine (the message is committed held, as `tern queue hold`), and
 * delete a recipient (it is marked done with no notice, as the loop check
 * marks a looping one failed: the envelope stays as written).  Not
 * offered, so a filter knows not to ask (libmilter's calls fail): change
 * or delete a header field, replace the body, add recipients, change the
 * sender: the queue file's envelope and message are written as they
 * arrive, before the filters' verdict.
 *
 * A filter that cannot be reached, times out (timeout, per exchange),
 * closes, or sends anything that is not a valid reply at that point gets
 * [milter] default_action: tempfail (451 4.7.1), reject (550 5.7.1) or
 * accept (the filter is left out).
 */
#include "filter/milter.h"
#include "msg/pipeline.h"
#include "proto/milter.h"
#include "core/config.h"
#include "core/log.h"
#include "core/server.h"
#include "core/util.h"
#include "store/queue.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

/* A header field longer than this is not shown to the filters (it still
 * goes into the message): no filter needs one, and it bounds memory. */
#define MILTER_FIELD_MAX (64 * 1024)
/* Header fields the filters may add to one message, in all. */
#define MILTER_ADDED_MAX (64 * 1024)

/* What tern lets filters do, and the protocol steps it lets them skip or
 * take without a reply (all it can honour). */
#define MILTER_ACTIONS (MILTER_A_ADDHDRS | MILTER_A_QUARANTINE | MILTER_A_DELRCPT)
#define MILTER_STEPS (MILTER_P_NOCONNECT | MILTER_P_NOHELO | MILTER_P_NOMAIL | MILTER_P_NORCPT | \
		      MILTER_P_NOBODY | MILTER_P_NOHDRS | MILTER_P_NOEOH | MILTER_P_NR_HDR | \
		      MILTER_P_NOUNKNOWN | MILTER_P_NODATA | MILTER_P_SKIP | MILTER_P_NR_CONN | \
		      MILTER_P_NR_HELO | MILTER_P_NR_MAIL | MILTER_P_NR_RCPT | MILTER_P_NR_DATA | \
		      MILTER_P_NR_UNKN | MILTER_P_NR_EOH | MILTER_P_NR_BODY | MILTER_P_HDR_LEADSPC)

enum mc_state {
	MC_CONNECTING,   /* socket connecting */
	MC_NEGOTIATING,  /* OPTNEG sent */
	MC_OPEN,         /* commands flow */
	MC_DONE,         /* outcome known; nothing more is sent */
};

enum mc_outcome {
	MO_NONE,
	MO_CONTINUE,     /* agreed at the end of message */
	MO_ACCEPT,       /* accepted the message early or at its end */
	MO_REJECT,
	MO_TEMPFAIL,
	MO_REPLY,        /* its own reply text */
	MO_DISCARD,
	MO_FAILED,       /* unreachable, timed out, closed, garbage */
};

struct milter_stage;

struct milter_conn {
	struct milter_stage *m;
	const char *spec;             /* the [milter] servers item */
	struct bufferevent *bev;
	struct event *timer;
	enum mc_state state;
	enum mc_outcome outcome;
	uint32_t actions, steps;      /* as negotiated */
	unsigned owed;                /* replies owed for commands sent */
	bool eom_sent;
	bool skip_body;               /* it answered SKIP to a body chunk */
	bool start_failed;            /* no socket, or connect failed at once */
	char reply[PIPELINE_REPLY_MAX];   /* MO_REPLY's text */
};

struct milter_stage {
	struct pipe_stage st;
	struct tern *t;
	struct milter_client c;       /* strings owned */
	char port[8];
	struct milter_conn *mc;
	size_t n;
	size_t negotiating;           /* connections not through OPTNEG yet */
	struct evbuffer *backlog;     /* message octets until they are */
	struct milter_buf pkt;        /* a packet being built */
	/* the message, as it is shown to the filters */
	bool in_headers, line_start, field_over;
	struct milter_buf field;      /* the header field being read */
	struct milter_buf body;       /* body octets (CRLF) not yet sent */
	bool ended;                   /* end() was called */
	size_t eom_at;                /* the filter asked at end of message */
	struct evbuffer *added;       /* header fields to go in front */
	bool quarantine;
	char **delrcpt;               /* recipients filters removed */
	size_t ndelrcpt;
};

/* ---- log events ---------------------------------------------------------- */

static const char *const mc_state_names[] = {
	[MC_CONNECTING] = "connecting",
	[MC_NEGOTIATING] = "negotiating",
	[MC_OPEN] = "open",
	[MC_DONE] = "done",
};

/* The queue id; "-" before the stage is in its pipeline. */
static const char *mc_queue(const struct milter_conn *mc)
{
	return mc->m->st.p ? pipeline_env(mc->m->st.p)->id : "-";
}

static void log_milter_state(const struct milter_conn *mc, enum mc_state from, enum mc_state to)
{
	if (!log_debug_enabled())
		return;
	log_event("event=milter_state session=%016" PRIx64 " queue=%s milter=%s from=%s to=%s",
		  mc->m->c.session, mc_queue(mc), mc->spec, mc_state_names[from], mc_state_names[to]);
}

static void log_milter_failed(const struct milter_conn *mc, const char *why)
{
	log_event("event=milter_failed session=%016" PRIx64 " queue=%s milter=%s reason=%s",
		  mc->m->c.session, mc_queue(mc), mc->spec, why);
}

static void log_milter_verdict(const struct milter_conn *mc, const char *verdict, const char *reply)
{
	char q[PIPELINE_REPLY_MAX * 2];
	log_event("event=milter_verdict session=%016" PRIx64 " queue=%s milter=%s verdict=%s reply=%s",
		  mc->m->c.session, mc_queue(mc), mc->spec, verdict,
		  reply ? log_quote(q, sizeof(q), reply, strlen(reply)) : "-");
}

static void log_milter_header(const struct milter_conn *mc, const char *name, size_t nlen)
{
	char q[300];
	log_event("event=milter_header session=%016" PRIx64 " queue=%s milter=%s field=%s",
		  mc->m->c.session, mc_queue(mc), mc->spec, log_quote(q, sizeof(q), name, nlen));
}

static void log_milter_delrcpt(const struct milter_stage *m, const struct queue_env *env,
			       const struct queue_rcpt *r)
{
	char q[600];
	log_event("event=milter_delrcpt session=%016" PRIx64 " queue=%s to=%s", m->c.session, env->id,
		  log_quote(q, sizeof(q), r->addr, strlen(r->addr)));
}

static void log_milter_field_skipped(const struct milter_stage *m, const char *name, size_t len)
{
	char q[300];
	const char *colon = memchr(name, ':', len);
	log_event("event=milter_field_skipped session=%016" PRIx64 " queue=%s field=%s size=over_%u",
		  m->c.session, pipeline_env(m->st.p)->id,
		  log_quote(q, sizeof(q), name, colon ? (size_t)(colon - name) : (len < 64 ? len : 64)),
		  (unsigned)MILTER_FIELD_MAX);
}

static void log_milter_quarantine(const struct milter_conn *mc, const char *reason, size_t len)
{
	char q[600];
	log_event("event=milter_quarantine session=%016" PRIx64 " queue=%s milter=%s reason=%s",
		  mc->m->c.session, mc_queue(mc), mc->spec, log_quote(q, sizeof(q), reason, len));
}

/* The only assignment to a connection's state. */
static void mc_set_state(struct milter_conn *mc, enum mc_state to)
{
	if (mc->state == to)
		return;
	log_milter_state(mc, mc->state, to);
	mc->state = to;
}

/* ---- sending --------------------------------------------------------------- */

static void mc_send_pkt(struct milter_conn *mc)
{
	struct milter_buf *b = &mc->m->pkt;
	bufferevent_write(mc->bev, b->p, b->len);
	milter_buf_reset(b);
}

static void mc_timer_set(struct milter_conn *mc)
{
	struct timeval tv = { (time_t)mc->m->t->cfg->milter_timeout, 0 };

	if (mc->owed > 0 || mc->state == MC_CONNECTING)
		evtimer_add(mc->timer, &tv);
	else
		evtimer_del(mc->timer);
}

/* One command that wants a reply unless the filter said it needs none
 * (nr: its NR_ step bit). */
static void mc_send_cmd(struct milter_conn *mc, uint32_t nr)
{
	bool was_idle = mc->owed == 0;

	mc_send_pkt(mc);
	if (nr == 0 || !(mc->steps & nr)) {
		mc->owed++;
		if (was_idle)
			mc_timer_set(mc);
	}
}

static void mc_macros(struct milter_conn *mc, char cmd, const char *const *kv, size_t n)
{
	milter_put_macros(&mc->m->pkt, cmd, kv, n);
	mc_send_pkt(mc);
}

/* Closed for good: QUIT if it can go at once, then the socket. */
static void mc_close(struct milter_conn *mc)
{
	if (mc->bev == NULL)
		return;
	if (mc->state != MC_CONNECTING && evbuffer_get_length(bufferevent_get_output(mc->bev)) == 0) {
		static const char quit[] = { 0, 0, 0, 1, MILTER_C_QUIT };
		(void)send(bufferevent_getfd(mc->bev), quit, sizeof(quit), MSG_DONTWAIT | MSG_NOSIGNAL);
	}
	bufferevent_free(mc->bev);
	mc->bev = NULL;
	evtimer_del(mc->timer);
	mc_set_state(mc, MC_DONE);
}

static bool mc_live(const struct milter_conn *mc)
{
	return mc->state == MC_OPEN && mc->outcome == MO_NONE;
}

/* ---- the message, shown to the filters ---------------------------------- */

static void milter_send_field(struct milter_stage *m, const char *f, size_t len)
{
	const char *colon = memchr(f, ':', len), *v;
	size_t nlen;

	if (colon == NULL)
		return;
	for (nlen = (size_t)(colon - f); nlen > 0 && (f[nlen - 1] == ' ' || f[nlen - 1] == '\t'); nlen--)
		;
	for (size_t i = 0; i < m->n; i++) {
		struct milter_conn *mc = &m->mc[i];
		if (!mc_live(mc) || (mc->steps & MILTER_P_NOHDRS))
			continue;
		v = colon + 1;
		if (!(mc->steps & MILTER_P_HDR_LEADSPC) && v < f + len && *v == ' ')
			v++;
		milter_put_header(&m->pkt, f, nlen, v, (size_t)(f + len - v));
		mc_send_cmd(mc, MILTER_P_NR_HDR);
	}
}

static void milter_send_eoh(struct milter_stage *m)
{
	for (size_t i = 0; i < m->n; i++) {
		struct milter_conn *mc = &m->mc[i];
		if (!mc_live(mc) || (mc->steps & MILTER_P_NOEOH))
			continue;
		milter_put_simple(&m->pkt, MILTER_C_EOH);
		mc_send_cmd(mc, MILTER_P_NR_EOH);
	}
}

static void milter_send_body(struct milter_stage *m)
{
	if (m->body.len == 0)
		return;
	for (size_t i = 0; i < m->n; i++) {
		struct milter_conn *mc = &m->mc[i];
		if (!mc_live(mc) || (mc->steps & MILTER_P_NOBODY) || mc->skip_body)
			continue;
		milter_put_body(&m->pkt, m->body.p, m->body.len);
		mc_send_cmd(mc, MILTER_P_NR_BODY);
	}
	milter_buf_reset(&m->body);
}

static void milter_body_put(struct milter_stage *m, const char *s, size_t n)
{
	if (m->body.cap < MILTER_CHUNK_MAX) {
		m->body.p = xrealloc(m->body.p, MILTER_CHUNK_MAX);
		m->body.cap = MILTER_CHUNK_MAX;
	}
	for (size_t i = 0; i < n; i++) {
		if (m->body.len + 2 > MILTER_CHUNK_MAX)
			milter_send_body(m);
		if (s[i] == '\n')
			m->body.p[m->body.len++] = '\r';
		m->body.p[m->body.len++] = (unsigned char)s[i];
	}
}

static void milter_field_put(struct milter_stage *m, char c)
{
	if (m->field.len >= MILTER_FIELD_MAX) {
		m->field_over = true;
		return;
	}
	if (m->field.len == m->field.cap) {
		m->field.cap = m->field.cap ? m->field.cap * 2 : 256;
		m->field.p = xrealloc(m->field.p, m->field.cap);
	}
	m->field.p[m->field.len++] = (unsigned char)c;
}

static void milter_field_done(struct milter_stage *m)
{
	if (m->field.len > 0 && !m->field_over)
		milter_send_field(m, (const char *)m->field.p, m->field.len);
	else if (m->field_over)
		log_milter_field_skipped(m, (const char *)m->field.p, m->field.len);
	milter_buf_reset(&m->field);
	m->field_over = false;
}

/* The header section field by field (unfolded lines keep their LF), the
 * end of it, then the body in chunks with CRLF line ends, as filters
 * expect SMTP's form.  A line that is no field ends the header section
 * and starts the body, as proto/header.c has it. */
static void milter_show(struct milter_stage *m, const char *buf, size_t len)
{
	size_t i = 0;

	for (; i < len && m->in_headers; i++) {
		char c = buf[i];
		if (!m->line_start) {
			if (c == '\n')
				m->line_start = true;
			else
				milter_field_put(m, c);
			continue;
		}
		m->line_start = false;
		if (c == ' ' || c == '\t') {
			milter_field_put(m, '\n');
			milter_field_put(m, c);
			continue;
		}
		bool is_field = false;
		if (c != '\n') {
			/* is this line a field?  Only a field may follow one:
			 * "name:" with no space before the colon */
			size_t j = i;
			while (j < len && buf[j] != ':' && buf[j] != '\n' && buf[j] != ' ' && buf[j] != '\t')
				j++;
			is_field = j == len || (buf[j] == ':' && j > i);
		}
		milter_field_done(m);
		if (c == '\n' || !is_field) {
			m->in_headers = false;
			milter_send_eoh(m);
			if (c == '\n')
				i++;   /* the empty line is no part of the body */
			break;
		}
		milter_field_put(m, c);
	}
	if (i < len && !m->in_headers)
		milter_body_put(m, buf + i, len - i);
}

static void milter_show_end(struct milter_stage *m)
{
	if (m->in_headers) {
		milter_field_done(m);
		m->in_headers = false;
		milter_send_eoh(m);
	}
	milter_send_body(m);
}

/* ---- the replay of the session, once options are agreed ----------------- */

static void mc_replay(struct milter_conn *mc)
{
	struct milter_stage *m = mc->m;
	const struct milter_client *c = &m->c;
	const struct queue_env *env = pipeline_env(m->st.p);
	const struct config *cfg = m->t->cfg;
	char from[600], underscore[600];
	const char *prev = NULL;

	snprintf(underscore, sizeof(underscore), "%s [%s]", c->name ? c->name : "unknown", c->addr);
	const char *conn_mac[] = { "j", cfg->hostname, "{daemon_name}", c->daemon_name, "_", underscore,
				   "{client_addr}", c->addr, "{client_port}", m->port,
				   "{client_name}", c->name ? c->name : "unknown", "v", "tern" };
	if (!(mc->steps & MILTER_P_NOCONNECT)) {
		mc_macros(mc, MILTER_C_CONNECT, conn_mac, ARRAY_LEN(conn_mac));
		char host[300];
		snprintf(host, sizeof(host), c->name ? "%s" : "[%s]", c->name ? c->name : c->addr);
		milter_put_connect(&m->pkt, host, c->family, (uint16_t)c->port, c->addr);
		mc_send_cmd(mc, MILTER_P_NR_CONN);
	}
	if (!(mc->steps & MILTER_P_NOHELO) && c->helo[0]) {
		const char *mac[] = { "{tls_version}", c->tls_version, "{cipher}", c->cipher };
		mc_macros(mc, MILTER_C_HELO, mac, ARRAY_LEN(mac));
		milter_put_helo(&m->pkt, c->helo);
		mc_send_cmd(mc, MILTER_P_NR_HELO);
	}
	if (!(mc->steps & MILTER_P_NOMAIL)) {
		const char *mac[] = { "{mail_addr}", env->from, "{auth_authen}", c->auth_user, "i", env->id };
		const char *argv[] = { from };
		snprintf(from, sizeof(from), "<%s>", env->from);
		mc_macros(mc, MILTER_C_MAIL, mac, ARRAY_LEN(mac));
		milter_put_args(&m->pkt, MILTER_C_MAIL, argv, 1);
		mc_send_cmd(mc, MILTER_P_NR_MAIL);
	}
	for (size_t i = 0; i < env->nrcpt && !(mc->steps & MILTER_P_NORCPT); i++) {
		/* as the client gave it: one RCPT an alias expanded is one */
		const char *a = env->rcpt[i].orig ? env->rcpt[i].orig : env->rcpt[i].addr;
		char to[600];
		const char *argv[] = { to };
		if (prev && strcmp(prev, a) == 0)
			continue;
		prev = a;
		const char *mac[] = { "{rcpt_addr}", a };
		snprintf(to, sizeof(to), "<%s>", a);
		mc_macros(mc, MILTER_C_RCPT, mac, ARRAY_LEN(mac));
		milter_put_args(&m->pkt, MILTER_C_RCPT, argv, 1);
		mc_send_cmd(mc, MILTER_P_NR_RCPT);
	}
	if (!(mc->steps & MILTER_P_NODATA)) {
		const char *mac[] = { "i", env->id };
		mc_macros(mc, MILTER_C_DATA, mac, ARRAY_LEN(mac));
		milter_put_simple(&m->pkt, MILTER_C_DATA);
		mc_send_cmd(mc, MILTER_P_NR_DATA);
	}
}

/* ---- the verdict ---------------------------------------------------------- */

static void milter_eom_next(struct milter_stage *m);

/* The recipients the filters removed, as the client gave them (an
 * alias's every expansion goes with it): done, with no notice. */
static void milter_apply_delrcpt(struct milter_stage *m)
{
	struct queue_env *env = pipeline_env(m->st.p);

	for (size_t i = 0; i < env->nrcpt; i++) {
		struct queue_rcpt *r = &env->rcpt[i];
		const char *a = r->orig ? r->orig : r->addr;
		if (r->state != RCPT_PENDING)
			continue;
		for (size_t k = 0; k < m->ndelrcpt; k++) {
			if (strcasecmp(a, m->delrcpt[k]) != 0)
				continue;
			log_milter_delrcpt(m, env, r);
			r->state = RCPT_DONE;
			r->dsn_done = true;
			free(r->status);
			free(r->last_reply);
			r->status = xstrdup("2.0.0");
			r->last_reply = xstrdup("removed by a content filter");
			break;
		}
	}
}

/* Every filter agreed: their header fields in front, the quarantine
 * mark, and on to the next stage.  The last thing done: the pipeline may
 * free this stage from pipe_stage_accept(). */
static void milter_agreed(struct milter_stage *m)
{
	struct evbuffer_iovec v;
	size_t len = evbuffer_get_length(m->added);

	for (size_t i = 0; i < m->n; i++)
		mc_close(&m->mc[i]);
	if (m->quarantine)
		pipeline_env(m->st.p)->held = true;
	milter_apply_delrcpt(m);
	if (len > 0) {
		evbuffer_pullup(m->added, -1);
		evbuffer_peek(m->added, -1, NULL, &v, 1);
		if (!pipe_prepend(&m->st, v.iov_base, len)) {
			pipe_stage_refuse(&m->st, true, "451 4.3.0 Error writing the message to disk, try again later");
			return;
		}
	}
	pipe_stage_accept(&m->st);
}

/* The filter at eom_at decided (or failed): go on, or answer. */
static void milter_decide(struct milter_stage *m, struct milter_conn *mc)
{
	unsigned action = m->t->cfg->milter_default_action;
	enum mc_outcome o = mc->outcome;

	switch (o) {
	case MO_CONTINUE:
	case MO_ACCEPT:
		m->eom_at++;
		milter_eom_next(m);
		return;
	case MO_FAILED:
		if (action == MILTER_DEFAULT_ACCEPT) {
			m->eom_at++;
			milter_eom_next(m);
			return;
		}
		o = action == MILTER_DEFAULT_REJECT ? MO_REJECT : MO_TEMPFAIL;
		break;
	default:
		break;
	}
	for (size_t i = 0; i < m->n; i++)
		mc_close(&m->mc[i]);
	switch (o) {
	case MO_REJECT:
		log_milter_verdict(mc, mc->outcome == MO_FAILED ? "default_reject" : "reject", NULL);
		pipe_stage_refuse(&m->st, false, "550 5.7.1 Message rejected by a content filter");
		return;
	case MO_REPLY:
		log_milter_verdict(mc, "replycode", mc->reply);
		pipe_stage_refuse(&m->st, false, "%s", mc->reply);
		return;
	case MO_DISCARD:
		log_milter_verdict(mc, "discard", NULL);
		pipe_stage_discard(&m->st);
		return;
	default:
		log_milter_verdict(mc, mc->outcome == MO_FAILED ? "default_tempfail" : "tempfail", NULL);
		pipe_stage_refuse(&m->st, mc->outcome == MO_FAILED,
				  "451 4.7.1 Service unavailable, try again later");
		return;
	}
}

/* Ask the filters for their end-of-message verdict, one at a time. */
static void milter_eom_next(struct milter_stage *m)
{
	const struct queue_env *env = pipeline_env(m->st.p);

	while (m->eom_at < m->n) {
		struct milter_conn *mc = &m->mc[m->eom_at];
		if (mc->outcome != MO_NONE) {
			milter_decide(m, mc);
			return;
		}
		if (mc->state != MC_OPEN)
			return;   /* still negotiating: mc_optneg() comes back here */
		const char *mac[] = { "i", env->id };
		mc_macros(mc, MILTER_C_EOB, mac, ARRAY_LEN(mac));
		milter_put_simple(&m->pkt, MILTER_C_EOB);
		mc->eom_sent = true;
		mc_send_cmd(mc, 0);
		return;   /* its reply goes on (mc_reply) */
	}
	milter_agreed(m);
}

/* Every filter is through option negotiation (or out): the message so
 * far, then on as it comes; at its end already, the verdicts. */
static void milter_ready(struct milter_stage *m)
{
	size_t len = evbuffer_get_length(m->backlog);

	if (len > 0) {
		milter_show(m, (const char *)evbuffer_pullup(m->backlog, -1), len);
		evbuffer_drain(m->backlog, len);
	}
	if (m->ended) {
		milter_show_end(m);
		milter_eom_next(m);
	}
}

/* A filter is out: it failed, or decided early.  At the end of the
 * message, the filter waited for may be this one.  The stage may be
 * gone when this returns. */
static void mc_out(struct milter_conn *mc, enum mc_outcome o, const char *why)
{
	struct milter_stage *m = mc->m;
	bool negotiating = mc->state == MC_CONNECTING || mc->state == MC_NEGOTIATING;

	if (o == MO_FAILED)
		log_milter_failed(mc, why);
	mc->outcome = o;
	mc_close(mc);
	if (negotiating) {
		if (--m->negotiating == 0)
			milter_ready(m);
		return;
	}
	if (m->ended && m->negotiating == 0 && m->eom_at < m->n && &m->mc[m->eom_at] == mc)
		milter_decide(m, mc);
}

/* ---- the replies ----------------------------------------------------------- */

/* False when the filter is out (the stage may be gone). */
static bool mc_optneg(struct milter_conn *mc, const struct milter_reply *r)
{
	struct milter_stage *m = mc->m;

	if (r->version < 2 || r->version > MILTER_VERSION) {
		mc_out(mc, MO_FAILED, "version");
		return false;
	}
	/* Asking for more actions than offered, it does without them
	 * (libmilter's calls for them fail). */
	mc->actions = r->actions & MILTER_ACTIONS;
	mc->steps = r->protocol & MILTER_STEPS;
	mc->owed = 0;
	mc_set_state(mc, MC_OPEN);
	mc_replay(mc);
	mc_timer_set(mc);
	if (--m->negotiating == 0)
		milter_ready(m);   /* stops at this one at the latest */
	return true;
}

static bool mc_add_field(struct milter_conn *mc, const struct milter_reply *r)
{
	struct milter_stage *m = mc->m;

	if (!(mc->actions & MILTER_A_ADDHDRS) || r->s1len == 0)
		return false;
	for (size_t i = 0; i < r->s1len; i++) {
		unsigned char c = (unsigned char)r->s1[i];
		if (c <= ' ' || c >= 0x7f || c == ':')
			return false;
	}
	if (evbuffer_get_length(m->added) + r->s1len + r->s2len + 4 > MILTER_ADDED_MAX)
		return false;
	evbuffer_add(m->added, r->s1, r->s1len);
	evbuffer_add(m->added, (mc->steps & MILTER_P_HDR_LEADSPC) ? ":" : ": ", (mc->steps & MILTER_P_HDR_LEADSPC) ? 1 : 2);
	/* LF line ends in the message; a fold keeps its white space */
	for (size_t i = 0; i < r->s2len; i++) {
		char c = r->s2[i];
		if (c == '\r')
			continue;
		if (c == '\n' && (i + 1 >= r->s2len || (r->s2[i + 1] != ' ' && r->s2[i + 1] != '\t')))
			return false;   /* a line that is no continuation */
		evbuffer_add(m->added, &c, 1);
	}
	evbuffer_add(m->added, "\n", 1);
	log_milter_header(mc, r->s1, r->s1len);
	return true;
}

/* One reply.  False when the connection is done with (out, or the
 * stage decided: nothing of it may be touched then). */
static bool mc_reply(struct milter_conn *mc, const struct milter_reply *r)
{
	struct milter_stage *m = mc->m;
	bool at_eom = mc->eom_sent && mc->owed == 1;   /* the reply to EOB */

	if (mc->state == MC_NEGOTIATING) {
		if (r->cmd != MILTER_R_OPTNEG) {
			mc_out(mc, MO_FAILED, "garbage");
			return false;
		}
		return mc_optneg(mc, r);
	}
	if (r->cmd == MILTER_R_PROGRESS) {
		mc_timer_set(mc);
		return true;
	}
	if (mc->owed == 0) {
		mc_out(mc, MO_FAILED, "garbage");
		return false;
	}
	switch (r->cmd) {
	case MILTER_R_CONTINUE:
	case MILTER_R_SKIP:
		if (r->cmd == MILTER_R_SKIP && at_eom) {
			mc_out(mc, MO_FAILED, "garbage");
			return false;
		}
		if (r->cmd == MILTER_R_SKIP)
			mc->skip_body = true;
		mc->owed--;
		mc_timer_set(mc);
		if (at_eom) {
			mc->outcome = MO_CONTINUE;
			mc_close(mc);
			milter_decide(m, mc);
			return false;
		}
		return true;
	case MILTER_R_ACCEPT:
		mc_out(mc, MO_ACCEPT, NULL);
		return false;
	case MILTER_R_REJECT:
		mc_out(mc, MO_REJECT, NULL);
		return false;
	case MILTER_R_TEMPFAIL:
		mc_out(mc, MO_TEMPFAIL, NULL);
		return false;
	case MILTER_R_DISCARD:
		mc_out(mc, MO_DISCARD, NULL);
		return false;
	case MILTER_R_REPLYCODE:
		if (!milter_replycode_valid(r->s1, r->s1len) || r->s1len >= sizeof(mc->reply)) {
			mc_out(mc, MO_FAILED, "bad_replycode");
			return false;
		}
		memcpy(mc->reply, r->s1, r->s1len + 1);
		if (r->s1len == 3)
			snprintf(mc->reply + 3, sizeof(mc->reply) - 3, " %s", r->s1[0] == '5' ? "5.7.1 Rejected" : "4.7.1 Try again later");
		mc_out(mc, MO_REPLY, NULL);
		return false;
	case MILTER_R_ADDHEADER:
	case MILTER_R_INSHEADER:
		if (!at_eom || !mc_add_field(mc, r)) {
			mc_out(mc, MO_FAILED, "bad_header");
			return false;
		}
		mc_timer_set(mc);
		return true;
	case MILTER_R_DELRCPT: {
		const char *a = r->s1;
		size_t n = r->s1len;
		if (!at_eom || !(mc->actions & MILTER_A_DELRCPT) || m->ndelrcpt >= 1000) {
			mc_out(mc, MO_FAILED, "garbage");
			return false;
		}
		if (n >= 2 && a[0] == '<' && a[n - 1] == '>') {
			a++;
			n -= 2;
		}
		m->delrcpt = xrealloc(m->delrcpt, (m->ndelrcpt + 1) * sizeof(*m->delrcpt));
		m->delrcpt[m->ndelrcpt++] = xstrndup(a, n);
		mc_timer_set(mc);
		return true;
	}
	case MILTER_R_QUARANTINE:
		if (!at_eom || !(mc->actions & MILTER_A_QUARANTINE)) {
			mc_out(mc, MO_FAILED, "garbage");
			return false;
		}
		log_milter_quarantine(mc, r->s1, r->s1len);
		m->quarantine = true;
		mc_timer_set(mc);
		return true;
	default:
		/* a modification it was not offered, or no reply at all */
		mc_out(mc, MO_FAILED, "garbage");
		return false;
	}
}

static void mc_read_cb(struct bufferevent *bev, void *arg)
{
	struct milter_conn *mc = arg;
	struct evbuffer *in = bufferevent_get_input(bev);

	for (;;) {
		size_t len = evbuffer_get_length(in), used;
		struct milter_reply r;
		const unsigned char *p;

		if (len < 4)
			return;
		/* one whole packet in one piece, at most the bound + header */
		p = evbuffer_pullup(in, len < MILTER_REPLY_MAX + 4 ? (ssize_t)len : MILTER_REPLY_MAX + 4);
		enum milter_parse st = milter_reply_parse(p, len < MILTER_REPLY_MAX + 4 ? len : MILTER_REPLY_MAX + 4,
							  MILTER_REPLY_MAX, &r, &used);
		if (st == MILTER_MORE)
			return;
		if (st == MILTER_BAD) {
			mc_out(mc, MO_FAILED, "garbage");
			return;
		}
		/* r points into in: act on it, then drain (unless gone) */
		if (!mc_reply(mc, &r))
			return;   /* closed, and maybe the stage freed */
		evbuffer_drain(in, used);
	}
}

static void mc_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct milter_conn *mc = arg;

	if (what & BEV_EVENT_CONNECTED) {
		mc_set_state(mc, MC_NEGOTIATING);
		milter_put_optneg(&mc->m->pkt, MILTER_VERSION, MILTER_ACTIONS, MILTER_STEPS);
		mc_send_pkt(mc);
		mc->owed = 1;
		mc_timer_set(mc);
		return;
	}
	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
		mc_out(mc, MO_FAILED, mc->state == MC_CONNECTING ? "unreachable" : "closed");
}

static void mc_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	mc_out(arg, MO_FAILED, "timeout");
}

static void mc_start(struct milter_conn *mc)
{
	struct milter_stage *m = mc->m;
	struct sockaddr_storage ss;
	socklen_t len;

	mc->timer = evtimer_new(m->t->base, mc_timeout_cb, mc);
	/* MC_CONNECTING, from xcalloc() */
	if (!milter_addr_parse(mc->spec, &ss, &len)) {   /* config checked it */
		mc->outcome = MO_FAILED;
		mc_set_state(mc, MC_DONE);
		mc->start_failed = true;
		return;
	}
	mc->bev = bufferevent_socket_new(m->t->base, -1, BEV_OPT_CLOSE_ON_FREE);
	bufferevent_setcb(mc->bev, mc_read_cb, NULL, mc_event_cb, mc);
	bufferevent_enable(mc->bev, EV_READ | EV_WRITE);
	if (bufferevent_socket_connect(mc->bev, (struct sockaddr *)&ss, (int)len) < 0) {
		bufferevent_free(mc->bev);
		mc->bev = NULL;
		mc->outcome = MO_FAILED;
		mc_set_state(mc, MC_DONE);
		mc->start_failed = true;
		return;
	}
	mc_timer_set(mc);
}

/* ---- the stage --------------------------------------------------------------- */

static void milter_data(struct pipe_stage *st, const char *buf, size_t len)
{
	struct milter_stage *m = (struct milter_stage *)st;

	if (m->negotiating > 0)
		evbuffer_add(m->backlog, buf, len);
	else
		milter_show(m, buf, len);
	pipe_emit(st, buf, len);
}

static void milter_end(struct pipe_stage *st)
{
	struct milter_stage *m = (struct milter_stage *)st;

	m->ended = true;
	/* those that could not even start are logged now that the log
	 * lines have the queue id */
	for (size_t i = 0; i < m->n; i++)
		if (m->mc[i].start_failed)
			log_milter_failed(&m->mc[i], "unreachable");
	if (m->negotiating > 0)
		return;   /* mc_optneg() or mc_out() comes back */
	milter_show_end(m);
	milter_eom_next(m);
}

static void milter_free(struct pipe_stage *st)
{
	struct milter_stage *m = (struct milter_stage *)st;

	for (size_t i = 0; i < m->n; i++) {
		mc_close(&m->mc[i]);
		if (m->mc[i].timer)
			event_free(m->mc[i].timer);
	}
	free(m->mc);
	for (size_t i = 0; i < m->ndelrcpt; i++)
		free(m->delrcpt[i]);
	free(m->delrcpt);
	evbuffer_free(m->backlog);
	evbuffer_free(m->added);
	milter_buf_free(&m->pkt);
	milter_buf_free(&m->field);
	milter_buf_free(&m->body);
	free((char *)m->c.daemon_name);
	free((char *)m->c.addr);
	free((char *)m->c.name);
	free((char *)m->c.helo);
	free((char *)m->c.tls_version);
	free((char *)m->c.cipher);
	free((char *)m->c.auth_user);
	free(m);
}

static const struct pipe_stage_ops milter_stage_ops = {
	.name = "milter",
	.data = milter_data,
	.end = milter_end,
	.free = milter_free,
};

static char *xstrdup_or_null(const char *s)
{
	return s ? xstrdup(s) : NULL;
}

struct pipe_stage *milter_stage_new(struct tern *t, const struct milter_client *c)
{
	const struct word_list *servers = &t->cfg->milter_servers;
	struct milter_stage *m = xcalloc(1, sizeof(*m));

	m->st.ops = &milter_stage_ops;
	m->t = t;
	m->c.session = c->session;
	m->c.daemon_name = xstrdup(c->daemon_name);
	m->c.addr = xstrdup(c->addr);
	m->c.port = c->port;
	m->c.family = c->family;
	m->c.name = xstrdup_or_null(c->name);
	m->c.helo = xstrdup(c->helo);
	m->c.tls_version = xstrdup_or_null(c->tls_version);
	m->c.cipher = xstrdup_or_null(c->cipher);
	m->c.auth_user = xstrdup_or_null(c->auth_user);
	snprintf(m->port, sizeof(m->port), "%u", c->port);
	m->backlog = evbuffer_new();
	m->added = evbuffer_new();
	m->in_headers = m->line_start = true;
	m->n = servers->n;
	m->mc = xcalloc(m->n ? m->n : 1, sizeof(*m->mc));
	for (size_t i = 0; i < m->n; i++) {
		struct milter_conn *mc = &m->mc[i];
		mc->m = m;
		mc->spec = servers->v[i];
		mc_start(mc);
		if (mc->state == MC_CONNECTING)
			m->negotiating++;
	}
	return &m->st;
}
