/*
 * milter.c - the milter client (milter.h): the MTA side of protocol v6.
 *
 * One connection per [milter] server per SMTP session, opened when the
 * client connects, as Sendmail and Postfix hold them.  The filters are
 * shown each SMTP step as it comes - CONNECT (the greeting waits for it),
 * HELO, MAIL, RCPT - and their verdict is that command's reply: a filter
 * that rejects a recipient refuses that RCPT, not the message.  Then,
 * for each message, DATA (its verdict is the DATA reply), its header
 * fields, the end of them and the
 * body in chunks, and at its end the verdict (EOM); after RSET, a refused
 * MAIL or a message that ended before every filter's verdict, ABORT; at
 * the end of the session QUIT.
 *
 * Lock-step, as Postfix talks to filters: one command a reply is wanted
 * for is in flight per connection at a time (commands that want none go
 * at once), so every reply is known to answer what it answers, and a
 * filter that decides early (accept, reject, ... in the middle of the
 * message) leaves the connection usable for the next message.  Each
 * connection's queue of packets (its outbox) is filled from the message
 * only when it is empty, so the filters are shown the message at the
 * pace of their sockets and their replies, never buffered up to its size.
 *
 * The message stage holds the message back: it goes into a spool (memory
 * up to MILTER_HOLD_MEM, then an unlinked file in the queue's tmp/) and
 * on to the next stage only once every filter agreed, in the form the
 * filters' modifications give it.  So the stages after it (DKIM signing)
 * and the sink see the modified message, and the envelope can still
 * change before the sink writes the rest.  At the end the filters are
 * asked for their verdict one after the other, in the order configured:
 * the first that does not accept decides.  Their modifications are
 * applied together, after all agreed: header fields added (at the end of
 * the header section), inserted (at an index among the fields the
 * filters were shown) or changed and deleted (the index-th field of that
 * name), the body replaced (its chunks streamed into a second spool),
 * recipients added or removed, the sender changed, quarantine (the
 * message is committed held: `tern queue release` delivers it).  A
 * header field matching [milter] spam_header in the final header section
 * sends the local copies into the recipients' Junk folder.
 *
 * A filter that cannot be reached, times out (timeout, per exchange;
 * PROGRESS starts it again), closes, or sends anything that is not a
 * valid reply at that point is out for the rest of the session and gets
 * [milter] default_action at every verdict it would have had a part in:
 * tempfail (4xx), reject (5xx) or accept (the filter is left out).
 */
#include "filter/milter.h"
#include "msg/pipeline.h"
#include "proto/milter.h"
#include "core/config.h"
#include "core/fsutil.h"
#include "core/log.h"
#include "core/server.h"
#include "core/util.h"
#include "store/aliases.h"
#include "store/queue.h"
#include "store/users.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

/* A header field longer than this is not shown to the filters (it still
 * goes into the message): no filter needs one, and it bounds memory. */
#define MILTER_FIELD_MAX (64 * 1024)
/* Header fields the filters may add or change in one message, in all,
 * and how many changes of any kind. */
#define MILTER_ADDED_MAX (64 * 1024)
#define MILTER_EDITS_MAX 1000
/* The held message stays in memory up to this, then goes to a file. */
#define MILTER_HOLD_MEM (256 * 1024)
/* No more is written to a filter's socket while this much waits in its
 * output (commands that want no reply). */
#define MILTER_OUT_LOW (64 * 1024)
#define MILTER_READ_CHUNK (64 * 1024)

/* What tern lets filters do, and the protocol steps it lets them skip or
 * take without a reply (all it can honour). */
#define MILTER_ACTIONS (MILTER_A_ADDHDRS | MILTER_A_CHGBODY | MILTER_A_ADDRCPT | MILTER_A_DELRCPT | \
			MILTER_A_CHGHDRS | MILTER_A_QUARANTINE | MILTER_A_CHGFROM | MILTER_A_ADDRCPT_PAR)
#define MILTER_STEPS (MILTER_P_NOCONNECT | MILTER_P_NOHELO | MILTER_P_NOMAIL | MILTER_P_NORCPT | \
		      MILTER_P_NOBODY | MILTER_P_NOHDRS | MILTER_P_NOEOH | MILTER_P_NR_HDR | \
		      MILTER_P_NOUNKNOWN | MILTER_P_NODATA | MILTER_P_SKIP | MILTER_P_NR_CONN | \
		      MILTER_P_NR_HELO | MILTER_P_NR_MAIL | MILTER_P_NR_RCPT | MILTER_P_NR_DATA | \
		      MILTER_P_NR_UNKN | MILTER_P_NR_EOH | MILTER_P_NR_BODY | MILTER_P_HDR_LEADSPC)

enum mc_state {
	MC_CONNECTING,   /* socket connecting */
	MC_NEGOTIATING,  /* OPTNEG sent */
	MC_OPEN,         /* commands flow */
	MC_DONE,         /* closed: failed, or the session ended */
};

/* A filter's answer, to a step or to the message. */
enum mc_outcome {
	MO_NONE,         /* none yet: it goes on */
	MO_CONTINUE,
	MO_ACCEPT,
	MO_REJECT,
	MO_TEMPFAIL,
	MO_REPLY,        /* its own reply text */
	MO_DISCARD,
	MO_FAILED,       /* unreachable, timed out, closed, garbage */
};

/* What the reply a connection waits for answers; also the tag of each
 * packet in its outbox (EX_NONE: none wanted). */
enum mc_expect {
	EX_NONE,
	EX_OPTNEG,
	EX_STEP,         /* CONNECT, HELO, MAIL, RCPT, DATA */
	EX_MSG,          /* a header field, EOH, a body chunk */
	EX_EOM,
	EX_STALE,        /* the message it was for is gone: dropped */
};

enum ms_step { STEP_NONE, STEP_CONNECT, STEP_HELO, STEP_MAIL, STEP_RCPT, STEP_DATA };

static const char *const step_names[] = {
	[STEP_NONE] = "none", [STEP_CONNECT] = "connect", [STEP_HELO] = "helo",
	[STEP_MAIL] = "mail", [STEP_RCPT] = "rcpt", [STEP_DATA] = "data",
};

/* The message held back: in memory, then (past MILTER_HOLD_MEM) in an
 * unlinked file. */
struct milter_spool {
	struct evbuffer *mem;
	int fd;
	uint64_t len;
	int err;                      /* a write failed: its errno */
	const char *dir;
};

/* A header section split into fields as it passes (proto/header.c's
 * rules: a line that is no field ends it).  Each field is given whole,
 * unfolded lines keeping their LF, without its final LF; one longer than
 * MILTER_FIELD_MAX in pieces (part: more of it follows; over: it was
 * too long). */
struct hsplit {
	bool in_headers, line_start, over;
	bool blank;                   /* the section ended with an empty line */
	struct milter_buf field;
};

struct hsplit_ops {
	void (*field)(void *ctx, const char *f, size_t len, bool part, bool over);
	void (*eoh)(void *ctx);
	void (*body)(void *ctx, const char *b, size_t len);
};

enum hedit_kind { HE_ADD, HE_INSERT, HE_CHANGE };

/* A filter's change to the header section, applied after all agreed. */
struct hedit {
	enum hedit_kind kind;
	uint32_t index;               /* INSERT: position; CHANGE: n-th of the name */
	char *name;
	size_t nlen;
	char *field;                  /* "Name: value" (LF ends, no final LF); NULL: delete */
	size_t flen;
	uint32_t seen;                /* CHANGE: fields of its name so far */
	bool used;
};

struct milter_session;
struct milter_stage;

struct milter_conn {
	struct milter_session *ms;
	const char *spec;             /* the [milter] servers item */
	struct bufferevent *bev;
	struct event *timer;
	enum mc_state state;
	uint32_t actions, steps;      /* as negotiated */
	enum mc_expect owed;          /* the reply waited for */
	struct evbuffer *outbox;      /* tag octet + packet, one reply at a time */
	bool failed;                  /* out for the session (logged) */
	bool accepted;                /* accepted the session at CONNECT or HELO */
	bool start_failed;            /* no socket, or connect failed at once */
	bool step_pending;            /* the step waits for its OPTNEG */
	bool step_wait;               /* its reply to the step is awaited */
	enum mc_outcome res;          /* its answer to the step */
	/* the transaction */
	bool in_msg;                  /* MAIL sent; no EOM answer nor ABORT yet */
	enum mc_outcome outcome;      /* the message's; MO_NONE: it goes on */
	/* the message, as shown to it */
	bool member;                  /* it takes part in the stage's message */
	uint64_t off;                 /* octets of the held message shown */
	struct hsplit show;
	struct milter_buf body;       /* body octets (CRLF) not yet sent */
	bool data_sent, shown_end, eom_sent, skip_body, replbody, skip_logged;
	char reply[PIPELINE_REPLY_MAX];   /* MO_REPLY's text */
};

struct milter_session {
	struct tern *t;
	struct milter_client c;       /* strings owned */
	char port[8];
	struct milter_conn *mc;
	size_t n;
	struct milter_buf pkt;        /* a packet being built */
	struct milter_buf rbuf;       /* the reply acted on, out of the input */
	/* the SMTP step */
	enum ms_step step;
	size_t waiting;               /* replies to it still to come */
	milter_step_fn done;
	void *done_arg;
	char *helo, *tls_version, *cipher, *from, *auth_user, *rcpt;   /* its arguments */
	/* the transaction */
	bool discard;                 /* a filter said DISCARD at MAIL or RCPT */
	struct milter_stage *stage;   /* its message, at DATA */
	/* callbacks on the stack: free only when they are done */
	unsigned busy;
	bool dead;
};

struct milter_stage {
	struct pipe_stage st;
	struct milter_session *ms;
	struct tern *t;
	struct milter_spool hold;     /* the message */
	bool ended;                   /* end() was called */
	bool answered;                /* its verdict is given */
	size_t eom_at;                /* the filter asked at end of message */
	/* the filters' modifications */
	struct hedit *edits;
	size_t nedits;
	size_t edit_bytes;
	struct milter_spool newbody;  /* REPLBODY, LF line ends */
	bool replaced, newbody_cr;    /* a body was given; its last octet was CR */
	bool quarantine;
	char **delrcpt;               /* recipients filters removed */
	size_t ndelrcpt;
	char **addrcpt;               /* and added */
	size_t naddrcpt;
	char *new_from;               /* CHGFROM, without <> */
	/* applying them */
	struct hsplit out;
	uint32_t out_fields;          /* fields of the section passed so far */
	bool spam;                    /* a final field matched spam_header */
};

/* ---- log events ---------------------------------------------------------- */

static const char *const mc_state_names[] = {
	[MC_CONNECTING] = "connecting",
	[MC_NEGOTIATING] = "negotiating",
	[MC_OPEN] = "open",
	[MC_DONE] = "done",
};

/* The queue id of the message, "-" outside one. */
static const char *ms_queue(const struct milter_session *ms)
{
	return ms->stage && ms->stage->st.p ? pipeline_env(ms->stage->st.p)->id : "-";
}

static void log_milter_state(const struct milter_conn *mc, enum mc_state from, enum mc_state to)
{
	if (!log_debug_enabled())
		return;
	log_event("event=milter_state session=%016" PRIx64 " queue=%s milter=%s from=%s to=%s",
		  mc->ms->c.session, ms_queue(mc->ms), mc->spec, mc_state_names[from], mc_state_names[to]);
}

static void log_milter_failed(const struct milter_conn *mc, const char *why)
{
	log_event("event=milter_failed session=%016" PRIx64 " queue=%s milter=%s reason=%s",
		  mc->ms->c.session, ms_queue(mc->ms), mc->spec, why);
}

/* step: connect, helo, mail, rcpt or eom */
static void log_milter_verdict(const struct milter_conn *mc, const char *step, const char *verdict,
			       const char *reply)
{
	char q[PIPELINE_REPLY_MAX * 2];
	log_event("event=milter_verdict session=%016" PRIx64 " queue=%s milter=%s step=%s verdict=%s reply=%s",
		  mc->ms->c.session, ms_queue(mc->ms), mc->spec, step, verdict,
		  reply ? log_quote(q, sizeof(q), reply, strlen(reply)) : "-");
}

/* A header change a filter asked for: op add, insert, change, delete. */
static void log_milter_header(const struct milter_conn *mc, const char *op, const char *name, size_t nlen,
			      uint32_t index)
{
	char q[300];
	log_event("event=milter_header session=%016" PRIx64 " queue=%s milter=%s op=%s field=%s index=%u",
		  mc->ms->c.session, ms_queue(mc->ms), mc->spec, op, log_quote(q, sizeof(q), name, nlen), index);
}

static void log_milter_delrcpt(const struct milter_stage *m, const struct queue_env *env,
			       const struct queue_rcpt *r)
{
	char q[600];
	log_event("event=milter_delrcpt session=%016" PRIx64 " queue=%s to=%s", m->ms->c.session, env->id,
		  log_quote(q, sizeof(q), r->addr, strlen(r->addr)));
}

/* result: added, duplicate, unknown (a local address with no mailbox) */
static void log_milter_addrcpt(const struct milter_stage *m, const struct queue_env *env, const char *addr,
			       const char *result)
{
	char q[600];
	log_event("event=milter_addrcpt session=%016" PRIx64 " queue=%s to=%s result=%s", m->ms->c.session,
		  env->id, log_quote(q, sizeof(q), addr, strlen(addr)), result);
}

static void log_milter_chgfrom(const struct milter_stage *m, const struct queue_env *env)
{
	char q[600], o[600];
	log_event("event=milter_chgfrom session=%016" PRIx64 " queue=%s old=%s from=%s", m->ms->c.session,
		  env->id, log_quote(o, sizeof(o), env->from, strlen(env->from)),
		  log_quote(q, sizeof(q), m->new_from, strlen(m->new_from)));
}

static void log_milter_replbody(const struct milter_stage *m, uint64_t size)
{
	log_event("event=milter_replbody session=%016" PRIx64 " queue=%s size=%" PRIu64, m->ms->c.session,
		  pipeline_env(m->st.p)->id, size);
}

static void log_milter_spam(const struct milter_stage *m)
{
	log_event("event=milter_spam session=%016" PRIx64 " queue=%s folder=Junk", m->ms->c.session,
		  pipeline_env(m->st.p)->id);
}

static void log_milter_field_skipped(const struct milter_conn *mc, const char *name, size_t len)
{
	char q[300];
	const char *colon = memchr(name, ':', len);
	log_event("event=milter_field_skipped session=%016" PRIx64 " queue=%s milter=%s field=%s size=over_%u",
		  mc->ms->c.session, ms_queue(mc->ms), mc->spec,
		  log_quote(q, sizeof(q), name, colon ? (size_t)(colon - name) : (len < 64 ? len : 64)),
		  (unsigned)MILTER_FIELD_MAX);
}

static void log_milter_quarantine(const struct milter_conn *mc, const char *reason, size_t len)
{
	char q[600];
	log_event("event=milter_quarantine session=%016" PRIx64 " queue=%s milter=%s reason=%s",
		  mc->ms->c.session, ms_queue(mc->ms), mc->spec, log_quote(q, sizeof(q), reason, len));
}

/* The only assignment to a connection's state. */
static void mc_set_state(struct milter_conn *mc, enum mc_state to)
{
	if (mc->state == to)
		return;
	log_milter_state(mc, mc->state, to);
	mc->state = to;
}

/* ---- the spool ------------------------------------------------------------- */

static void spool_init(struct milter_spool *sp, const char *dir)
{
	sp->mem = evbuffer_new();
	sp->fd = -1;
	sp->dir = dir;
}

static void spool_free(struct milter_spool *sp)
{
	if (sp->mem)
		evbuffer_free(sp->mem);
	sp->mem = NULL;
	if (sp->fd >= 0)
		close(sp->fd);
	sp->fd = -1;
}

static void spool_reset(struct milter_spool *sp)
{
	const char *dir = sp->dir;
	spool_free(sp);
	memset(sp, 0, sizeof(*sp));
	spool_init(sp, dir);
}

/* A file no name points to, on the queue's file system. */
static int spool_file(const char *dir)
{
	int fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);

	if (fd < 0 && (errno == EOPNOTSUPP || errno == EISDIR || errno == ENOENT || errno == EINVAL)) {
		char *path = xasprintf("%s/milter.XXXXXX", dir);
		fd = mkstemp(path);
		if (fd >= 0)
			unlink(path);
		free(path);
	}
	return fd;
}

static void spool_add(struct milter_spool *sp, const void *buf, size_t len)
{
	if (sp->err || len == 0)
		return;
	if (sp->fd < 0 && sp->len + len <= MILTER_HOLD_MEM) {
		evbuffer_add(sp->mem, buf, len);
		sp->len += len;
		return;
	}
	if (sp->fd < 0) {
		size_t n = evbuffer_get_length(sp->mem);
		sp->fd = spool_file(sp->dir);
		if (sp->fd < 0 || !write_all(sp->fd, evbuffer_pullup(sp->mem, -1), n)) {
			sp->err = errno ? errno : EIO;
			return;
		}
		evbuffer_free(sp->mem);
		sp->mem = NULL;
	}
	if (!write_all(sp->fd, buf, len)) {
		sp->err = errno ? errno : EIO;
		return;
	}
	sp->len += len;
}

/* Up to cap octets from off; 0 at the end or on error (sp->err). */
static size_t spool_read(struct milter_spool *sp, uint64_t off, char *buf, size_t cap)
{
	size_t want = off >= sp->len ? 0 : (sp->len - off < cap ? (size_t)(sp->len - off) : cap);
	ssize_t got;

	if (want == 0 || sp->err)
		return 0;
	if (sp->fd < 0) {
		struct evbuffer_ptr ptr;
		if (evbuffer_ptr_set(sp->mem, &ptr, (size_t)off, EVBUFFER_PTR_SET) < 0)
			return 0;
		got = evbuffer_copyout_from(sp->mem, &ptr, buf, want);
	} else {
		got = pread(sp->fd, buf, want, (off_t)off);
	}
	if (got <= 0) {
		sp->err = got < 0 ? errno : EIO;
		return 0;
	}
	return (size_t)got;
}

/* ---- the header section, field by field ------------------------------- */

static void hsplit_init(struct hsplit *h)
{
	memset(h, 0, sizeof(*h));
	h->in_headers = h->line_start = true;
}

static void hsplit_put(struct hsplit *h, const struct hsplit_ops *ops, void *ctx, char c)
{
	struct milter_buf *f = &h->field;

	if (f->len >= MILTER_FIELD_MAX) {
		ops->field(ctx, (const char *)f->p, f->len, true, true);
		milter_buf_reset(f);
		h->over = true;
	}
	if (f->len == f->cap) {
		f->cap = f->cap ? f->cap * 2 : 256;
		f->p = xrealloc(f->p, f->cap);
	}
	f->p[f->len++] = (unsigned char)c;
}

static void hsplit_field_done(struct hsplit *h, const struct hsplit_ops *ops, void *ctx)
{
	if (h->field.len > 0 || h->over)
		ops->field(ctx, (const char *)h->field.p, h->field.len, false, h->over);
	milter_buf_reset(&h->field);
	h->over = false;
}

static void hsplit_feed(struct hsplit *h, const struct hsplit_ops *ops, void *ctx, const char *buf, size_t len)
{
	size_t i = 0;

	for (; i < len && h->in_headers; i++) {
		char c = buf[i];
		if (!h->line_start) {
			if (c == '\n')
				h->line_start = true;
			else
				hsplit_put(h, ops, ctx, c);
			continue;
		}
		h->line_start = false;
		if (c == ' ' || c == '\t') {
			hsplit_put(h, ops, ctx, '\n');
			hsplit_put(h, ops, ctx, c);
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
		hsplit_field_done(h, ops, ctx);
		if (c == '\n' || !is_field) {
			h->in_headers = false;
			h->blank = c == '\n';
			ops->eoh(ctx);
			if (c == '\n')
				i++;   /* the empty line is no part of the body */
			break;
		}
		hsplit_put(h, ops, ctx, c);
	}
	if (i < len && !h->in_headers)
		ops->body(ctx, buf + i, len - i);
}

/* The end of the message: a header section not yet ended ends. */
static void hsplit_end(struct hsplit *h, const struct hsplit_ops *ops, void *ctx)
{
	if (!h->in_headers)
		return;
	hsplit_field_done(h, ops, ctx);
	h->in_headers = false;
	ops->eoh(ctx);
}

/* ---- sending --------------------------------------------------------------- */

static void mc_timer_set(struct milter_conn *mc)
{
	struct timeval tv = { (time_t)mc->ms->t->cfg->milter_timeout, 0 };

	if (mc->owed != EX_NONE || mc->state == MC_CONNECTING)
		evtimer_add(mc->timer, &tv);
	else
		evtimer_del(mc->timer);
}

/* The packet built in ms->pkt into the outbox, tagged with what its
 * reply answers (EX_NONE: it wants none). */
static void mc_queue(struct milter_conn *mc, enum mc_expect tag)
{
	struct milter_buf *b = &mc->ms->pkt;
	unsigned char t = (unsigned char)tag;

	evbuffer_add(mc->outbox, &t, 1);
	evbuffer_add(mc->outbox, b->p, b->len);
	milter_buf_reset(b);
}

/* A command that wants a reply unless the filter said it needs none
 * (nr: its NR_ step bit). */
static void mc_queue_cmd(struct milter_conn *mc, uint32_t nr, enum mc_expect tag)
{
	mc_queue(mc, nr != 0 && (mc->steps & nr) ? EX_NONE : tag);
}

static void mc_queue_macros(struct milter_conn *mc, char cmd, const char *const *kv, size_t n)
{
	milter_put_macros(&mc->ms->pkt, cmd, kv, n);
	mc_queue(mc, EX_NONE);
}

static bool mc_generate(struct milter_conn *mc);

/* Send from the outbox: commands that want no reply at once (while the
 * socket takes them), then one that wants a reply, and wait for it.  An
 * empty outbox is filled from the message being shown.  Never answers
 * anything: safe to call anywhere. */
static void mc_flush(struct milter_conn *mc)
{
	for (;;) {
		unsigned char head[5];
		uint32_t len;

		if (mc->state != MC_OPEN || mc->owed != EX_NONE)
			return;
		if (evbuffer_get_length(mc->outbox) == 0) {
			if (!mc_generate(mc))
				return;
			continue;
		}
		if (evbuffer_get_length(bufferevent_get_output(mc->bev)) >= MILTER_OUT_LOW)
			return;   /* mc_write_cb() comes back */
		evbuffer_copyout(mc->outbox, head, sizeof(head));
		len = (uint32_t)head[1] << 24 | (uint32_t)head[2] << 16 | (uint32_t)head[3] << 8 | head[4];
		evbuffer_drain(mc->outbox, 1);
		evbuffer_remove_buffer(mc->outbox, bufferevent_get_output(mc->bev), (size_t)len + 4);
		if (head[0] != EX_NONE) {
			mc->owed = (enum mc_expect)head[0];
			mc_timer_set(mc);
		}
	}
}

/* Closed for good: QUIT if it can go at once, then the socket. */
static void mc_close(struct milter_conn *mc)
{
	if (mc->bev == NULL)
		return;
	if (mc->state == MC_OPEN && evbuffer_get_length(bufferevent_get_output(mc->bev)) == 0 &&
	    mc->owed == EX_NONE) {
		static const char quit[] = { 0, 0, 0, 1, MILTER_C_QUIT };
		(void)send(bufferevent_getfd(mc->bev), quit, sizeof(quit), MSG_DONTWAIT | MSG_NOSIGNAL);
	}
	bufferevent_free(mc->bev);
	mc->bev = NULL;
	evtimer_del(mc->timer);
	mc->owed = EX_NONE;
	evbuffer_drain(mc->outbox, evbuffer_get_length(mc->outbox));
	mc_set_state(mc, MC_DONE);
}

/* ---- the message, shown to a filter -------------------------------------- */

static void show_field(void *ctx, const char *f, size_t len, bool part, bool over)
{
	struct milter_conn *mc = ctx;
	const char *colon, *v;
	size_t nlen;

	if (part && !mc->skip_logged)
		log_milter_field_skipped(mc, f, len);   /* its first piece has its name */
	mc->skip_logged = part;
	if (over || (mc->steps & MILTER_P_NOHDRS) || (colon = memchr(f, ':', len)) == NULL)
		return;
	for (nlen = (size_t)(colon - f); nlen > 0 && (f[nlen - 1] == ' ' || f[nlen - 1] == '\t'); nlen--)
		;
	v = colon + 1;
	if (!(mc->steps & MILTER_P_HDR_LEADSPC) && v < f + len && *v == ' ')
		v++;
	milter_put_header(&mc->ms->pkt, f, nlen, v, (size_t)(f + len - v));
	mc_queue_cmd(mc, MILTER_P_NR_HDR, EX_MSG);
}

static void show_eoh(void *ctx)
{
	struct milter_conn *mc = ctx;

	if (mc->steps & MILTER_P_NOEOH)
		return;
	milter_put_simple(&mc->ms->pkt, MILTER_C_EOH);
	mc_queue_cmd(mc, MILTER_P_NR_EOH, EX_MSG);
}

static void show_body_chunk(struct milter_conn *mc)
{
	if (mc->body.len == 0)
		return;
	if (!mc->skip_body && !(mc->steps & MILTER_P_NOBODY)) {
		milter_put_body(&mc->ms->pkt, mc->body.p, mc->body.len);
		mc_queue_cmd(mc, MILTER_P_NR_BODY, EX_MSG);
	}
	milter_buf_reset(&mc->body);
}

/* Body octets in chunks with CRLF line ends, as filters expect SMTP's form. */
static void show_body(void *ctx, const char *s, size_t n)
{
	struct milter_conn *mc = ctx;

	if (mc->skip_body || (mc->steps & MILTER_P_NOBODY))
		return;
	if (mc->body.cap < MILTER_CHUNK_MAX) {
		mc->body.p = xrealloc(mc->body.p, MILTER_CHUNK_MAX);
		mc->body.cap = MILTER_CHUNK_MAX;
	}
	for (size_t i = 0; i < n; i++) {
		if (mc->body.len + 2 > MILTER_CHUNK_MAX)
			show_body_chunk(mc);
		if (s[i] == '\n')
			mc->body.p[mc->body.len++] = '\r';
		mc->body.p[mc->body.len++] = (unsigned char)s[i];
	}
}

static const struct hsplit_ops show_ops = { show_field, show_eoh, show_body };

/* More of the held message into the outbox; false when there is nothing
 * more to put there now (all shown, or the rest not here yet). */
static bool mc_generate(struct milter_conn *mc)
{
	struct milter_stage *m = mc->ms->stage;
	char buf[MILTER_READ_CHUNK];
	size_t n;

	/* nothing before the DATA step (milter_data_step) */
	if (m == NULL || !mc->member || mc->outcome != MO_NONE || mc->shown_end || !mc->data_sent)
		return false;
	if (mc->off < m->hold.len) {
		n = spool_read(&m->hold, mc->off, buf, sizeof(buf));
		if (n == 0)
			return false;   /* hold.err: the end refuses */
		hsplit_feed(&mc->show, &show_ops, mc, buf, n);
		mc->off += n;
		return true;
	}
	if (!m->ended)
		return false;
	hsplit_end(&mc->show, &show_ops, mc);
	show_body_chunk(mc);
	mc->shown_end = true;
	return true;   /* the last packets; then the EOM waits its turn */
}

/* The filter's part of the message is over: the stage went, or it will
 * not be shown more.  One it was shown a message it has not answered at
 * its end is told to forget it (ABORT), after the reply it owes. */
static void mc_msg_end(struct milter_conn *mc)
{
	if (mc->owed == EX_MSG || mc->owed == EX_EOM)
		mc->owed = EX_STALE;
	if (mc->state == MC_OPEN)
		evbuffer_drain(mc->outbox, evbuffer_get_length(mc->outbox));
	if (mc->in_msg && mc->state == MC_OPEN) {
		milter_put_simple(&mc->ms->pkt, MILTER_C_ABORT);
		mc_queue(mc, EX_NONE);
	}
	mc->in_msg = false;
	mc->member = false;
	mc->outcome = MO_NONE;
	mc->off = 0;
	milter_buf_free(&mc->show.field);
	hsplit_init(&mc->show);
	milter_buf_reset(&mc->body);
	mc->shown_end = mc->eom_sent = mc->skip_body = mc->replbody = mc->skip_logged = mc->data_sent = false;
	mc_flush(mc);
}

/* ---- the SMTP steps -------------------------------------------------------- */

/* Does the filter take part in the step? */
static bool mc_in_step(const struct milter_conn *mc, enum ms_step step)
{
	if (mc->failed || mc->accepted)
		return false;
	switch (step) {
	case STEP_CONNECT:
		return !(mc->steps & MILTER_P_NOCONNECT);
	case STEP_HELO:
		return !(mc->steps & MILTER_P_NOHELO);
	case STEP_MAIL:
		return !(mc->steps & MILTER_P_NOMAIL);
	case STEP_RCPT:
		/* not for a message it accepted or decided on already */
		return mc->in_msg && mc->outcome == MO_NONE && !(mc->steps & MILTER_P_NORCPT);
	case STEP_DATA:
		return mc->member && mc->outcome == MO_NONE && !(mc->steps & MILTER_P_NODATA);
	default:
		return false;
	}
}

/* The step's command and its macros into the outbox. */
static void mc_send_step(struct milter_conn *mc)
{
	struct milter_session *ms = mc->ms;
	const struct milter_client *c = &ms->c;
	const struct config *cfg = ms->t->cfg;
	char arg[700], underscore[600], host[300];
	const char *argv[] = { arg };
	enum mc_expect tag = EX_STEP;

	if (ms->step == STEP_MAIL) {
		/* a new transaction: what the last one left is done with */
		mc->in_msg = !mc->accepted && !mc->failed;
		mc->outcome = MO_NONE;
	}
	if (!mc_in_step(mc, ms->step))
		return;
	switch (ms->step) {
	case STEP_CONNECT: {
		snprintf(underscore, sizeof(underscore), "%s [%s]", c->name ? c->name : "unknown", c->addr);
		const char *mac[] = { "j", cfg->hostname, "{daemon_name}", c->daemon_name, "_", underscore,
				      "{client_addr}", c->addr, "{client_port}", ms->port,
				      "{client_name}", c->name ? c->name : "unknown", "v", "tern" };
		mc_queue_macros(mc, MILTER_C_CONNECT, mac, ARRAY_LEN(mac));
		snprintf(host, sizeof(host), c->name ? "%s" : "[%s]", c->name ? c->name : c->addr);
		milter_put_connect(&ms->pkt, host, c->family, (uint16_t)c->port, c->addr);
		if (mc->steps & MILTER_P_NR_CONN)
			tag = EX_NONE;
		break;
	}
	case STEP_HELO: {
		const char *mac[] = { "{tls_version}", ms->tls_version, "{cipher}", ms->cipher };
		mc_queue_macros(mc, MILTER_C_HELO, mac, ARRAY_LEN(mac));
		milter_put_helo(&ms->pkt, ms->helo);
		if (mc->steps & MILTER_P_NR_HELO)
			tag = EX_NONE;
		break;
	}
	case STEP_MAIL: {
		const char *mac[] = { "{mail_addr}", ms->from, "{auth_authen}", ms->auth_user };
		snprintf(arg, sizeof(arg), "<%s>", ms->from);
		mc_queue_macros(mc, MILTER_C_MAIL, mac, ARRAY_LEN(mac));
		milter_put_args(&ms->pkt, MILTER_C_MAIL, argv, 1);
		if (mc->steps & MILTER_P_NR_MAIL)
			tag = EX_NONE;
		break;
	}
	case STEP_RCPT: {
		const char *mac[] = { "{rcpt_addr}", ms->rcpt };
		snprintf(arg, sizeof(arg), "<%s>", ms->rcpt);
		mc_queue_macros(mc, MILTER_C_RCPT, mac, ARRAY_LEN(mac));
		milter_put_args(&ms->pkt, MILTER_C_RCPT, argv, 1);
		if (mc->steps & MILTER_P_NR_RCPT)
			tag = EX_NONE;
		break;
	}
	case STEP_DATA: {
		/* with the queue id, which the stage has in its pipeline */
		const char *mac[] = { "i", ms_queue(ms) };
		mc_queue_macros(mc, MILTER_C_DATA, mac, ARRAY_LEN(mac));
		milter_put_simple(&ms->pkt, MILTER_C_DATA);
		if (mc->steps & MILTER_P_NR_DATA)
			tag = EX_NONE;
		break;
	}
	default:
		return;
	}
	mc_queue(mc, tag);
	if (tag == EX_STEP) {
		mc->step_wait = true;
		ms->waiting++;
	}
	mc_flush(mc);
}

static const char *outcome_name(enum mc_outcome o)
{
	switch (o) {
	case MO_REJECT: return "reject";
	case MO_TEMPFAIL: return "tempfail";
	case MO_REPLY: return "replycode";
	case MO_DISCARD: return "discard";
	case MO_ACCEPT: return "accept";
	default: return "continue";
	}
}

/* The filters' answers to the step, in their order: the first that
 * refuses decides.  A filter that accepts at CONNECT or HELO is done
 * with the session, at MAIL or RCPT with the message; one that discards
 * has the message dropped at its end. */
static void ms_step_answer(struct milter_session *ms, struct milter_answer *a)
{
	unsigned action = ms->t->cfg->milter_default_action;
	bool msg = ms->step == STEP_MAIL || ms->step == STEP_RCPT || ms->step == STEP_DATA;

	memset(a, 0, sizeof(*a));
	for (size_t i = 0; i < ms->n; i++) {
		struct milter_conn *mc = &ms->mc[i];
		enum mc_outcome o = mc->res;
		const char *verdict = NULL;

		mc->res = MO_NONE;
		if (mc->failed && o == MO_NONE && ms->step != STEP_HELO)
			o = MO_FAILED;   /* out since earlier: default_action again */
		if (ms->step == STEP_DATA && o == MO_FAILED && mc->member)
			mc->outcome = MO_FAILED;   /* and at the end of the message */
		switch (o) {
		case MO_ACCEPT:
			if (msg)
				mc->outcome = MO_ACCEPT;
			else
				mc->accepted = true;
			continue;
		case MO_DISCARD:
			if (msg) {
				ms->discard = true;
				log_milter_verdict(mc, step_names[ms->step], "discard", NULL);
			}
			continue;
		case MO_FAILED:
			if (action == MILTER_DEFAULT_ACCEPT || a->refused)
				continue;
			o = action == MILTER_DEFAULT_REJECT ? MO_REJECT : MO_TEMPFAIL;
			verdict = action == MILTER_DEFAULT_REJECT ? "default_reject" : "default_tempfail";
			a->own_fault = true;
			break;
		case MO_REJECT:
		case MO_TEMPFAIL:
		case MO_REPLY:
			if (a->refused)
				continue;
			break;
		default:
			continue;
		}
		a->refused = true;
		if (o == MO_REPLY)
			snprintf(a->reply, sizeof(a->reply), "%s", mc->reply);
		else if (o == MO_REJECT)
			snprintf(a->reply, sizeof(a->reply), "%s", ms->step == STEP_CONNECT
				 ? "554 5.7.1 Service unavailable, refused by a content filter"
				 : ms->step == STEP_DATA ? "550 5.7.1 Message rejected by a content filter"
				 : "550 5.7.1 Command rejected by a content filter");
		else
			snprintf(a->reply, sizeof(a->reply), "%s", ms->step == STEP_CONNECT
				 ? "421 4.7.1 Service unavailable, try again later"
				 : "451 4.7.1 Service unavailable, try again later");
		log_milter_verdict(mc, step_names[ms->step], verdict ? verdict : outcome_name(o),
				   o == MO_REPLY ? mc->reply : NULL);
	}
	ms->step = STEP_NONE;
}

/* Every reply to the step is in: tell the session.  It may be gone when
 * this returns (ms is not: the callers hold it). */
static void ms_step_done(struct milter_session *ms)
{
	struct milter_answer a;
	milter_step_fn done = ms->done;

	ms_step_answer(ms, &a);
	ms->done = NULL;
	if (done)
		done(ms->done_arg, &a);
}

/* One connection's answer to the step (or its failure). */
static void mc_step_answered(struct milter_conn *mc, enum mc_outcome o)
{
	struct milter_session *ms = mc->ms;

	if (!mc->step_wait)
		return;
	mc->step_wait = false;
	mc->res = o;
	if (--ms->waiting == 0)
		ms_step_done(ms);
}

static bool ms_step(struct milter_session *ms, enum ms_step step, milter_step_fn done, void *arg,
		    struct milter_answer *now)
{
	ms->step = step;
	ms->waiting = 0;
	ms->done = NULL;
	for (size_t i = 0; i < ms->n; i++) {
		struct milter_conn *mc = &ms->mc[i];
		mc->res = MO_NONE;
		if (mc->state == MC_CONNECTING || mc->state == MC_NEGOTIATING) {
			/* CONNECT, sent once the options are agreed (mc_optneg) */
			mc->step_pending = true;
			mc->step_wait = true;
			ms->waiting++;
			continue;
		}
		if (mc->state == MC_OPEN)
			mc_send_step(mc);
		else if (step == STEP_MAIL)
			mc->in_msg = false;
	}
	if (ms->waiting == 0) {
		ms_step_answer(ms, now);
		return true;
	}
	ms->done = done;
	ms->done_arg = arg;
	return false;
}

static void ms_set(char **slot, const char *v)
{
	free(*slot);
	*slot = v ? xstrdup(v) : NULL;
}

/* ---- the modified message, on to the next stage ------------------------ */

/* Does field f match [milter] spam_header ("Name: value", or "Name" for
 * any value)?  Names compare without case, values without case and
 * without the white space around them. */
static bool milter_is_spam_field(const char *want, const char *f, size_t len)
{
	const char *wc = strchr(want, ':'), *fc = memchr(f, ':', len);
	size_t wn = wc ? (size_t)(wc - want) : strlen(want), fn;
	const char *wv, *we, *fv, *fe;

	if (fc == NULL)
		return false;
	while (wn > 0 && (want[wn - 1] == ' ' || want[wn - 1] == '\t'))
		wn--;
	for (fn = (size_t)(fc - f); fn > 0 && (f[fn - 1] == ' ' || f[fn - 1] == '\t'); fn--)
		;
	if (wn == 0 || wn != fn || strncasecmp(want, f, fn) != 0)
		return false;
	if (wc == NULL)
		return true;
	for (wv = wc + 1; *wv == ' ' || *wv == '\t'; wv++)
		;
	for (we = wv + strlen(wv); we > wv && (we[-1] == ' ' || we[-1] == '\t'); we--)
		;
	for (fv = fc + 1, fe = f + len; fv < fe && (*fv == ' ' || *fv == '\t' || *fv == '\n'); fv++)
		;
	while (fe > fv && (fe[-1] == ' ' || fe[-1] == '\t' || fe[-1] == '\n'))
		fe--;
	return (size_t)(we - wv) == (size_t)(fe - fv) && strncasecmp(wv, fv, (size_t)(fe - fv)) == 0;
}

/* One field of the final header section. */
static void out_put_field(struct milter_stage *m, const char *f, size_t len)
{
	const char *want = m->t->cfg->milter_spam_header;

	pipe_emit(&m->st, f, len);
	pipe_emit(&m->st, "\n", 1);
	if (want && want[0] && !m->spam && milter_is_spam_field(want, f, len))
		m->spam = true;
}

/* The fields inserted at position pos (before the field with that index
 * among those the filters were shown). */
static void out_inserts(struct milter_stage *m, uint32_t pos, bool rest)
{
	for (size_t i = 0; i < m->nedits; i++) {
		struct hedit *e = &m->edits[i];
		if (e->kind == HE_INSERT && !e->used && (e->index == pos || rest)) {
			e->used = true;
			out_put_field(m, e->field, e->flen);
		}
	}
}

static void out_field(void *ctx, const char *f, size_t len, bool part, bool over)
{
	struct milter_stage *m = ctx;
	const char *colon;
	struct hedit *repl = NULL;
	size_t nlen;

	if (part || over) {
		/* too long to be shown to the filters: it passes as it is */
		pipe_emit(&m->st, f, len);
		if (!part)
			pipe_emit(&m->st, "\n", 1);
		return;
	}
	out_inserts(m, m->out_fields++, false);
	colon = memchr(f, ':', len);
	for (nlen = colon ? (size_t)(colon - f) : 0; nlen > 0 && (f[nlen - 1] == ' ' || f[nlen - 1] == '\t'); nlen--)
		;
	for (size_t i = 0; i < m->nedits && nlen > 0; i++) {
		struct hedit *e = &m->edits[i];
		if (e->kind != HE_CHANGE || e->nlen != nlen || strncasecmp(e->name, f, nlen) != 0)
			continue;
		/* index 0 is the first, as libmilter's smfi_chgheader() has it */
		if (++e->seen == (e->index ? e->index : 1)) {
			e->used = true;
			repl = e;   /* a later change of the same field wins */
		}
	}
	if (repl == NULL)
		out_put_field(m, f, len);
	else if (repl->field)
		out_put_field(m, repl->field, repl->flen);
	/* else: deleted */
}

/* The end of the header section: what goes at its end, then the empty
 * line before the body. */
static void out_eoh(void *ctx)
{
	struct milter_stage *m = ctx;

	out_inserts(m, 0, true);   /* an index past the last field */
	for (size_t i = 0; i < m->nedits; i++) {
		struct hedit *e = &m->edits[i];
		/* a change of a field that is not there adds it (Sendmail) */
		if ((e->kind == HE_CHANGE && !e->used && e->field) || e->kind == HE_ADD)
			out_put_field(m, e->field, e->flen);
	}
	if (m->out.blank || m->replaced)
		pipe_emit(&m->st, "\n", 1);
}

static void out_body(void *ctx, const char *b, size_t len)
{
	struct milter_stage *m = ctx;

	if (!m->replaced)
		pipe_emit(&m->st, b, len);
}

static const struct hsplit_ops out_ops = { out_field, out_eoh, out_body };

/* The held message, as the filters changed it, to the next stage. */
static void milter_emit(struct milter_stage *m)
{
	char buf[MILTER_READ_CHUNK];
	const char *want = m->t->cfg->milter_spam_header;
	bool rewrite = m->nedits > 0 || m->replaced || (want && want[0]);
	uint64_t off = 0;
	size_t n;

	hsplit_init(&m->out);
	while ((n = spool_read(&m->hold, off, buf, sizeof(buf))) > 0) {
		off += n;
		if (!rewrite || (!m->out.in_headers && !m->replaced)) {
			pipe_emit(&m->st, buf, n);
			continue;
		}
		if (!m->out.in_headers)
			break;   /* the body is replaced */
		hsplit_feed(&m->out, &out_ops, m, buf, n);
	}
	if (rewrite)
		hsplit_end(&m->out, &out_ops, m);
	milter_buf_free(&m->out.field);
	if (m->replaced) {
		if (m->newbody_cr)
			spool_add(&m->newbody, "\r", 1);
		off = 0;
		while ((n = spool_read(&m->newbody, off, buf, sizeof(buf))) > 0) {
			pipe_emit(&m->st, buf, n);
			off += n;
		}
		log_milter_replbody(m, m->newbody.len);
	}
}

/* ---- the envelope ------------------------------------------------------- */

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
			if (strcasecmp(a, m->delrcpt[k]) != 0 && strcasecmp(r->addr, m->delrcpt[k]) != 0)
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

static bool milter_add_one(struct milter_stage *m, struct queue_env *env, const char *addr, const char *orig)
{
	const char *at = strrchr(addr, '@');
	bool local = at && config_is_local_domain(m->t->cfg, at + 1);
	struct queue_rcpt *r;

	if (local && users_find(m->t->users, addr) == NULL) {
		log_milter_addrcpt(m, env, addr, "unknown");
		return false;
	}
	for (size_t i = 0; i < env->nrcpt; i++)
		if (env->rcpt[i].state == RCPT_PENDING && strcasecmp(env->rcpt[i].addr, addr) == 0) {
			log_milter_addrcpt(m, env, addr, "duplicate");
			return false;
		}
	r = queue_env_add_rcpt(env, addr, orig);
	r->local = local;
	log_milter_addrcpt(m, env, addr, "added");
	return true;
}

/* A recipient a filter added: a local one through the aliases (one
 * level) to its mailboxes, a remote one as it is (the filter vouches
 * for it: no relay check). */
static bool milter_add_rcpt(struct milter_stage *m, struct queue_env *env, const char *addr)
{
	const char *at = strrchr(addr, '@');
	const struct word_list *targets;
	bool changed = false;

	if (at == NULL || at == addr || at[1] == '\0') {
		log_milter_addrcpt(m, env, addr, "unknown");
		return false;
	}
	if (config_is_local_domain(m->t->cfg, at + 1) && m->t->aliases &&
	    (targets = aliases_lookup(m->t->aliases, addr)) != NULL) {
		for (size_t i = 0; i < targets->n; i++) {
			char *tgt = strchr(targets->v[i], '@') ? xstrdup(targets->v[i])
				: xasprintf("%s@%s", targets->v[i], at + 1);
			changed |= milter_add_one(m, env, tgt, addr);
			free(tgt);
		}
		return changed;
	}
	return milter_add_one(m, env, addr, addr);
}

/* The filters' changes to the envelope; false when the sink could not
 * take them. */
static bool milter_apply_envelope(struct milter_stage *m)
{
	struct queue_env *env = pipeline_env(m->st.p);
	bool changed = false;

	if (m->quarantine)
		env->held = true;
	milter_apply_delrcpt(m);
	for (size_t i = 0; i < m->naddrcpt; i++)
		changed |= milter_add_rcpt(m, env, m->addrcpt[i]);
	if (m->new_from && strcmp(m->new_from, env->from) != 0) {
		log_milter_chgfrom(m, env);
		free(env->from);
		env->from = xstrdup(m->new_from);
		changed = true;
	}
	return !changed || pipe_envelope_changed(&m->st);
}

/* ---- the verdict at the end of the message -------------------------------- */

static void milter_eom_next(struct milter_stage *m);

/* Every filter agreed: the envelope changed, the message (changed) to
 * the next stage, and on.  The last thing done: the pipeline may free
 * this stage from pipe_stage_accept(). */
static void milter_agreed(struct milter_stage *m)
{
	if (m->hold.err || m->newbody.err || !milter_apply_envelope(m)) {
		m->answered = true;
		pipe_stage_refuse(&m->st, true, "451 4.3.0 Error writing the message to disk, try again later");
		return;
	}
	milter_emit(m);
	if (m->hold.err || m->newbody.err) {
		m->answered = true;
		pipe_stage_refuse(&m->st, true, "451 4.3.0 Error writing the message to disk, try again later");
		return;
	}
	if (m->spam) {
		log_milter_spam(m);
		pipeline_env(m->st.p)->junk = true;
	}
	m->answered = true;
	pipe_stage_accept(&m->st);
}

/* The filter at eom_at decided (or failed): go on, or answer.  The stage
 * may be gone when this returns. */
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
	switch (o) {
	case MO_REJECT:
		log_milter_verdict(mc, "eom", mc->outcome == MO_FAILED ? "default_reject" : "reject", NULL);
		m->answered = true;
		pipe_stage_refuse(&m->st, false, "550 5.7.1 Message rejected by a content filter");
		return;
	case MO_REPLY:
		log_milter_verdict(mc, "eom", "replycode", mc->reply);
		m->answered = true;
		pipe_stage_refuse(&m->st, false, "%s", mc->reply);
		return;
	case MO_DISCARD:
		log_milter_verdict(mc, "eom", "discard", NULL);
		m->answered = true;
		pipe_stage_discard(&m->st);
		return;
	default:
		log_milter_verdict(mc, "eom", mc->outcome == MO_FAILED ? "default_tempfail" : "tempfail", NULL);
		m->answered = true;
		pipe_stage_refuse(&m->st, mc->outcome == MO_FAILED,
				  "451 4.7.1 Service unavailable, try again later");
		return;
	}
}

/* Ask the filters for their end-of-message verdict, one at a time, each
 * once it has been shown the whole message.  The stage may be gone when
 * this returns. */
static void milter_eom_next(struct milter_stage *m)
{
	struct milter_session *ms = m->ms;
	const struct queue_env *env = pipeline_env(m->st.p);

	if (!m->ended || m->answered)
		return;   /* the verdict is given: the stages after it are at work */
	if (ms->discard) {
		/* a filter said DISCARD at MAIL or RCPT */
		m->answered = true;
		pipe_stage_discard(&m->st);
		return;
	}
	while (m->eom_at < ms->n) {
		struct milter_conn *mc = &ms->mc[m->eom_at];
		if (!mc->member) {
			m->eom_at++;
			continue;
		}
		if (mc->outcome != MO_NONE) {
			milter_decide(m, mc);
			return;
		}
		if (mc->eom_sent)
			return;   /* its reply goes on (mc_reply) */
		mc_flush(mc);
		if (!mc->shown_end || mc->owed != EX_NONE || evbuffer_get_length(mc->outbox) > 0)
			return;   /* still being shown it: its replies come back here */
		const char *mac[] = { "i", env->id };
		mc_queue_macros(mc, MILTER_C_EOB, mac, ARRAY_LEN(mac));
		milter_put_simple(&ms->pkt, MILTER_C_EOB);
		mc_queue(mc, EX_EOM);
		mc->eom_sent = true;
		mc_flush(mc);
		return;
	}
	milter_agreed(m);
}

/* ADDHEADER, INSHEADER, CHGHEADER: one more change to the header section. */
static bool mc_edit(struct milter_conn *mc, const struct milter_reply *r)
{
	struct milter_stage *m = mc->ms->stage;
	enum hedit_kind kind = r->cmd == MILTER_R_ADDHEADER ? HE_ADD : r->cmd == MILTER_R_INSHEADER ? HE_INSERT : HE_CHANGE;
	bool leadspc = mc->steps & MILTER_P_HDR_LEADSPC;
	struct milter_buf f = { 0 };
	struct hedit *e;

	if (!(mc->actions & (kind == HE_CHANGE ? MILTER_A_CHGHDRS : MILTER_A_ADDHDRS)) || r->s1len == 0)
		return false;
	for (size_t i = 0; i < r->s1len; i++) {
		unsigned char c = (unsigned char)r->s1[i];
		if (c <= ' ' || c >= 0x7f || c == ':')
			return false;
	}
	if (m->nedits >= MILTER_EDITS_MAX || m->edit_bytes + r->s1len + r->s2len + 4 > MILTER_ADDED_MAX)
		return false;
	if (kind != HE_CHANGE || r->s2len > 0) {
		f.cap = r->s1len + r->s2len + 3;
		f.p = xmalloc(f.cap);
		memcpy(f.p, r->s1, r->s1len);
		f.len = r->s1len;
		f.p[f.len++] = ':';
		if (!leadspc)
			f.p[f.len++] = ' ';
		/* LF line ends in the message; a fold keeps its white space */
		for (size_t i = 0; i < r->s2len; i++) {
			char c = r->s2[i];
			if (c == '\r')
				continue;
			if (c == '\n' && (i + 1 >= r->s2len || (r->s2[i + 1] != ' ' && r->s2[i + 1] != '\t'))) {
				milter_buf_free(&f);
				return false;   /* a line that is no continuation */
			}
			f.p[f.len++] = (unsigned char)c;
		}
	}
	m->edits = xrealloc(m->edits, (m->nedits + 1) * sizeof(*m->edits));
	e = &m->edits[m->nedits++];
	memset(e, 0, sizeof(*e));
	e->kind = kind;
	e->index = r->index;
	e->name = xstrndup(r->s1, r->s1len);
	e->nlen = r->s1len;
	e->field = (char *)f.p;
	e->flen = f.len;
	m->edit_bytes += r->s1len + r->s2len + 4;
	log_milter_header(mc, kind == HE_ADD ? "add" : kind == HE_INSERT ? "insert" : f.p ? "change" : "delete",
			  r->s1, r->s1len, kind == HE_ADD ? 0 : r->index);
	return true;
}

/* A REPLBODY chunk: into the new body's spool, CRLF -> LF.  A filter's
 * first chunk starts the body anew (a later filter's body wins). */
static bool mc_replbody(struct milter_conn *mc, const struct milter_reply *r)
{
	struct milter_stage *m = mc->ms->stage;
	char buf[4096];
	size_t n = 0;

	if (!(mc->actions & MILTER_A_CHGBODY))
		return false;
	if (!mc->replbody) {
		for (size_t i = 0; i < mc->ms->n; i++)
			mc->ms->mc[i].replbody = false;
		mc->replbody = true;
		spool_reset(&m->newbody);
		m->newbody_cr = false;
		m->replaced = true;
	}
	for (size_t i = 0; i < r->len; i++) {
		char c = (char)r->data[i];
		if (n + 2 > sizeof(buf)) {
			spool_add(&m->newbody, buf, n);
			n = 0;
		}
		if (m->newbody_cr) {
			m->newbody_cr = false;
			if (c != '\n')
				buf[n++] = '\r';
		}
		if (c == '\r')
			m->newbody_cr = true;
		else
			buf[n++] = c;
	}
	spool_add(&m->newbody, buf, n);
	return true;
}

/* An address in a reply, without its angle brackets. */
static char *mc_addr(const char *a, size_t n)
{
	if (n >= 2 && a[0] == '<' && a[n - 1] == '>') {
		a++;
		n -= 2;
	}
	return xstrndup(a, n);
}

/* ADDRCPT, ADDRCPT_PAR, DELRCPT, CHGFROM: kept until all agreed.  The
 * ESMTP arguments of ADDRCPT_PAR and CHGFROM are not used. */
static bool mc_envelope(struct milter_conn *mc, const struct milter_reply *r)
{
	struct milter_stage *m = mc->ms->stage;

	switch (r->cmd) {
	case MILTER_R_DELRCPT:
		if (!(mc->actions & MILTER_A_DELRCPT) || m->ndelrcpt >= MILTER_EDITS_MAX)
			return false;
		m->delrcpt = xrealloc(m->delrcpt, (m->ndelrcpt + 1) * sizeof(*m->delrcpt));
		m->delrcpt[m->ndelrcpt++] = mc_addr(r->s1, r->s1len);
		return true;
	case MILTER_R_ADDRCPT:
	case MILTER_R_ADDRCPT_PAR:
		if (!(mc->actions & (r->cmd == MILTER_R_ADDRCPT ? MILTER_A_ADDRCPT : MILTER_A_ADDRCPT_PAR)) ||
		    m->naddrcpt >= MILTER_EDITS_MAX || r->s1len == 0)
			return false;
		m->addrcpt = xrealloc(m->addrcpt, (m->naddrcpt + 1) * sizeof(*m->addrcpt));
		m->addrcpt[m->naddrcpt++] = mc_addr(r->s1, r->s1len);
		return true;
	case MILTER_R_CHGFROM:
		if (!(mc->actions & MILTER_A_CHGFROM))
			return false;
		free(m->new_from);
		m->new_from = mc_addr(r->s1, r->s1len);
		return true;
	default:
		return false;
	}
}

/* ---- failures and replies -------------------------------------------------- */

/* The connection is out for the session.  Whatever waited for it goes on
 * without it: the session may be told (its step answered), the stage may
 * answer and be gone. */
static void mc_fail(struct milter_conn *mc, const char *why)
{
	struct milter_session *ms = mc->ms;
	struct milter_stage *m = ms->stage;
	bool asked = m && mc->member && m->ended && m->eom_at < ms->n && &ms->mc[m->eom_at] == mc;
	bool in_message = m && mc->member && mc->outcome == MO_NONE;

	log_milter_failed(mc, why);
	mc->failed = true;
	mc->in_msg = false;
	mc_close(mc);
	if (mc->step_pending) {
		mc->step_pending = false;
		mc_step_answered(mc, MO_FAILED);
		return;
	}
	if (mc->step_wait) {
		mc_step_answered(mc, MO_FAILED);
		return;
	}
	if (in_message) {
		mc->outcome = MO_FAILED;
		if (asked)
			milter_decide(m, mc);
		else if (m->ended)
			milter_eom_next(m);
	}
}

/* False when the filter is out (and whatever that caused happened). */
static bool mc_optneg(struct milter_conn *mc, const struct milter_reply *r)
{
	if (r->version < 2 || r->version > MILTER_VERSION) {
		mc_fail(mc, "version");
		return false;
	}
	/* Asking for more actions than offered, it does without them
	 * (libmilter's calls for them fail). */
	mc->actions = r->actions & MILTER_ACTIONS;
	mc->steps = r->protocol & MILTER_STEPS;
	mc->owed = EX_NONE;
	mc_set_state(mc, MC_OPEN);
	mc_timer_set(mc);
	if (mc->step_pending) {
		mc->step_pending = false;
		mc->step_wait = false;
		mc->ms->waiting--;
		mc_send_step(mc);   /* counts itself in again if it wants a reply */
		if (mc->ms->step != STEP_NONE && mc->ms->waiting == 0) {
			ms_step_done(mc->ms);
			return false;
		}
	}
	mc_flush(mc);
	return true;
}

static enum mc_outcome reply_outcome(struct milter_conn *mc, const struct milter_reply *r, bool *bad)
{
	*bad = false;
	switch (r->cmd) {
	case MILTER_R_CONTINUE:
		return MO_CONTINUE;
	case MILTER_R_ACCEPT:
		return MO_ACCEPT;
	case MILTER_R_REJECT:
		return MO_REJECT;
	case MILTER_R_TEMPFAIL:
		return MO_TEMPFAIL;
	case MILTER_R_DISCARD:
		return MO_DISCARD;
	case MILTER_R_REPLYCODE:
		if (!milter_replycode_valid(r->s1, r->s1len) || r->s1len >= sizeof(mc->reply)) {
			*bad = true;
			return MO_FAILED;
		}
		memcpy(mc->reply, r->s1, r->s1len + 1);
		if (r->s1len == 3)
			snprintf(mc->reply + 3, sizeof(mc->reply) - 3, " %s",
				 r->s1[0] == '5' ? "5.7.1 Rejected" : "4.7.1 Try again later");
		return MO_REPLY;
	default:
		return MO_NONE;
	}
}

/* A reply to a command of the message (DATA, a field, EOH, a body chunk). */
static bool mc_reply_msg(struct milter_conn *mc, const struct milter_reply *r)
{
	struct milter_stage *m = mc->ms->stage;
	bool bad;
	enum mc_outcome o;

	if (r->cmd == MILTER_R_SKIP) {
		mc->skip_body = true;
		evbuffer_drain(mc->outbox, evbuffer_get_length(mc->outbox));   /* body chunks only */
		o = MO_CONTINUE;
	} else if ((o = reply_outcome(mc, r, &bad)) == MO_NONE || bad) {
		mc_fail(mc, bad ? "bad_replycode" : r->cmd == MILTER_R_ADDHEADER || r->cmd == MILTER_R_INSHEADER ||
			r->cmd == MILTER_R_CHGHEADER ? "bad_header" : "garbage");
		return false;
	}
	mc->owed = EX_NONE;
	mc_timer_set(mc);
	if (o != MO_CONTINUE)
		mc->outcome = o;   /* decided early: shown no more, asked in its turn */
	mc_flush(mc);
	if (m->ended) {
		milter_eom_next(m);
		return false;
	}
	return true;
}

/* A reply at the end of the message: modifications, then a verdict. */
static bool mc_reply_eom(struct milter_conn *mc, const struct milter_reply *r)
{
	struct milter_stage *m = mc->ms->stage;
	bool bad, ok;
	enum mc_outcome o;

	switch (r->cmd) {
	case MILTER_R_ADDHEADER:
	case MILTER_R_INSHEADER:
	case MILTER_R_CHGHEADER:
		if (!mc_edit(mc, r)) {
			mc_fail(mc, r->cmd == MILTER_R_CHGHEADER && !(mc->actions & MILTER_A_CHGHDRS)
				? "garbage" : "bad_header");
			return false;
		}
		mc_timer_set(mc);
		return true;
	case MILTER_R_REPLBODY:
	case MILTER_R_DELRCPT:
	case MILTER_R_ADDRCPT:
	case MILTER_R_ADDRCPT_PAR:
	case MILTER_R_CHGFROM:
	case MILTER_R_QUARANTINE:
		if (r->cmd == MILTER_R_REPLBODY)
			ok = mc_replbody(mc, r);
		else if (r->cmd == MILTER_R_QUARANTINE)
			ok = (mc->actions & MILTER_A_QUARANTINE) != 0;
		else
			ok = mc_envelope(mc, r);
		if (!ok) {
			mc_fail(mc, "garbage");
			return false;
		}
		if (r->cmd == MILTER_R_QUARANTINE) {
			log_milter_quarantine(mc, r->s1, r->s1len);
			m->quarantine = true;
		}
		mc_timer_set(mc);
		return true;
	default:
		break;
	}
	o = reply_outcome(mc, r, &bad);
	if (o == MO_NONE || bad) {
		mc_fail(mc, bad ? "bad_replycode" : "garbage");
		return false;
	}
	mc->owed = EX_NONE;
	mc->in_msg = false;   /* the message is over for it */
	mc->outcome = o;
	mc_timer_set(mc);
	milter_decide(m, mc);
	return false;
}

/* One reply.  False when what it caused may have freed the stage or
 * told the session (the connection itself stays: the caller holds ms). */
static bool mc_reply(struct milter_conn *mc, const struct milter_reply *r)
{
	bool bad;
	enum mc_outcome o;

	if (r->cmd == MILTER_R_PROGRESS && mc->owed != EX_NONE) {
		mc_timer_set(mc);
		return true;
	}
	switch (mc->owed) {
	case EX_OPTNEG:
		if (r->cmd != MILTER_R_OPTNEG) {
			mc_fail(mc, "garbage");
			return false;
		}
		return mc_optneg(mc, r);
	case EX_STEP:
		o = reply_outcome(mc, r, &bad);
		if (o == MO_NONE || bad) {
			mc_fail(mc, bad ? "bad_replycode" : "garbage");
			return false;
		}
		mc->owed = EX_NONE;
		mc_timer_set(mc);
		mc_step_answered(mc, o);
		return false;
	case EX_MSG:
		return mc_reply_msg(mc, r);
	case EX_EOM:
		return mc_reply_eom(mc, r);
	case EX_STALE:
		/* the reply to a message that is gone; modifications are
		 * dropped too, until the verdict */
		if (reply_outcome(mc, r, &bad) == MO_NONE && r->cmd != MILTER_R_SKIP) {
			if (r->cmd == MILTER_R_OPTNEG) {
				mc_fail(mc, "garbage");
				return false;
			}
			return true;
		}
		mc->owed = EX_NONE;
		mc_timer_set(mc);
		mc_flush(mc);
		return true;
	default:
		mc_fail(mc, "garbage");
		return false;
	}
}

/* ---- the session's hold on itself ---------------------------------------- */

static void ms_destroy(struct milter_session *ms);

static void ms_enter(struct milter_session *ms)
{
	ms->busy++;
}

static void ms_leave(struct milter_session *ms)
{
	if (--ms->busy == 0 && ms->dead)
		ms_destroy(ms);
}

/* ---- socket events --------------------------------------------------------- */

static void mc_read_cb(struct bufferevent *bev, void *arg)
{
	struct milter_conn *mc = arg;
	struct milter_session *ms = mc->ms;
	struct evbuffer *in = bufferevent_get_input(bev);

	ms_enter(ms);
	while (mc->state != MC_DONE && !ms->dead) {
		size_t len = evbuffer_get_length(in), used, look;
		struct milter_reply r;
		const unsigned char *p;

		if (len < 4)
			break;
		look = len < MILTER_REPLY_MAX + 4 ? len : MILTER_REPLY_MAX + 4;
		p = evbuffer_pullup(in, (ssize_t)look);
		enum milter_parse st = milter_reply_parse(p, look, MILTER_REPLY_MAX, &r, &used);
		if (st == MILTER_MORE)
			break;
		if (st == MILTER_BAD) {
			mc_fail(mc, "garbage");
			break;
		}
		/* out of the input first: what it causes may read more */
		milter_buf_reset(&ms->rbuf);
		if (ms->rbuf.cap < used) {
			ms->rbuf.p = xrealloc(ms->rbuf.p, used);
			ms->rbuf.cap = used;
		}
		evbuffer_remove(in, ms->rbuf.p, used);
		milter_reply_parse(ms->rbuf.p, used, MILTER_REPLY_MAX, &r, &used);
		mc_reply(mc, &r);
	}
	ms_leave(ms);
}

static void mc_write_cb(struct bufferevent *bev, void *arg)
{
	struct milter_conn *mc = arg;
	struct milter_session *ms = mc->ms;

	ms_enter(ms);
	mc_flush(mc);
	if (ms->stage && ms->stage->ended)
		milter_eom_next(ms->stage);
	ms_leave(ms);
}

static void mc_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct milter_conn *mc = arg;
	struct milter_session *ms = mc->ms;

	ms_enter(ms);
	if (what & BEV_EVENT_CONNECTED) {
		mc_set_state(mc, MC_NEGOTIATING);
		milter_put_optneg(&ms->pkt, MILTER_VERSION, MILTER_ACTIONS, MILTER_STEPS);
		bufferevent_write(mc->bev, ms->pkt.p, ms->pkt.len);
		milter_buf_reset(&ms->pkt);
		mc->owed = EX_OPTNEG;
		mc_timer_set(mc);
	} else if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
		mc_fail(mc, mc->state == MC_CONNECTING ? "unreachable" : "closed");
	}
	ms_leave(ms);
}

static void mc_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	struct milter_conn *mc = arg;
	struct milter_session *ms = mc->ms;

	ms_enter(ms);
	mc_fail(mc, "timeout");
	ms_leave(ms);
}

static void mc_start(struct milter_conn *mc)
{
	struct milter_session *ms = mc->ms;
	struct sockaddr_storage ss;
	socklen_t len;

	mc->timer = evtimer_new(ms->t->base, mc_timeout_cb, mc);
	mc->outbox = evbuffer_new();
	hsplit_init(&mc->show);
	/* MC_CONNECTING, from xcalloc() */
	if (!milter_addr_parse(mc->spec, &ss, &len) ||   /* config checked it */
	    (mc->bev = bufferevent_socket_new(ms->t->base, -1, BEV_OPT_CLOSE_ON_FREE)) == NULL) {
		mc->start_failed = mc->failed = true;
		mc_set_state(mc, MC_DONE);
		return;
	}
	bufferevent_setcb(mc->bev, mc_read_cb, mc_write_cb, mc_event_cb, mc);
	bufferevent_setwatermark(mc->bev, EV_WRITE, MILTER_OUT_LOW / 2, 0);
	bufferevent_enable(mc->bev, EV_READ | EV_WRITE);
	if (bufferevent_socket_connect(mc->bev, (struct sockaddr *)&ss, (int)len) < 0) {
		bufferevent_free(mc->bev);
		mc->bev = NULL;
		mc->start_failed = mc->failed = true;
		mc_set_state(mc, MC_DONE);
		return;
	}
	if (ss.ss_family != AF_UNIX) {
		/* lock-step: a command's tail must not wait for the ACK of its
		 * head (Nagle against delayed ACK costs 40 ms a command) */
		int one = 1;
		(void)setsockopt(bufferevent_getfd(mc->bev), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	}
	mc_timer_set(mc);
}

/* ---- the session ------------------------------------------------------------- */

static char *xstrdup_or_null(const char *s)
{
	return s ? xstrdup(s) : NULL;
}

struct milter_session *milter_session_new(struct tern *t, const struct milter_client *c)
{
	const struct word_list *servers = &t->cfg->milter_servers;
	struct milter_session *ms;

	if (servers->n == 0)
		return NULL;
	ms = xcalloc(1, sizeof(*ms));
	ms->t = t;
	ms->c.session = c->session;
	ms->c.daemon_name = xstrdup(c->daemon_name);
	ms->c.addr = xstrdup(c->addr);
	ms->c.port = c->port;
	ms->c.family = c->family;
	ms->c.name = xstrdup_or_null(c->name);
	snprintf(ms->port, sizeof(ms->port), "%u", c->port);
	ms->n = servers->n;
	ms->mc = xcalloc(ms->n, sizeof(*ms->mc));
	for (size_t i = 0; i < ms->n; i++) {
		struct milter_conn *mc = &ms->mc[i];
		mc->ms = ms;
		mc->spec = servers->v[i];
		mc_start(mc);
		if (mc->start_failed)
			log_milter_failed(mc, "unreachable");
	}
	return ms;
}

static void ms_destroy(struct milter_session *ms)
{
	for (size_t i = 0; i < ms->n; i++) {
		struct milter_conn *mc = &ms->mc[i];
		mc_close(mc);
		if (mc->timer)
			event_free(mc->timer);
		if (mc->outbox)
			evbuffer_free(mc->outbox);
		milter_buf_free(&mc->show.field);
		milter_buf_free(&mc->body);
	}
	free(ms->mc);
	milter_buf_free(&ms->pkt);
	milter_buf_free(&ms->rbuf);
	free(ms->helo);
	free(ms->tls_version);
	free(ms->cipher);
	free(ms->from);
	free(ms->auth_user);
	free(ms->rcpt);
	free((char *)ms->c.daemon_name);
	free((char *)ms->c.addr);
	free((char *)ms->c.name);
	free(ms);
}

void milter_session_free(struct milter_session *ms)
{
	if (ms == NULL)
		return;
	ms->done = NULL;   /* the session is gone: nobody to tell */
	if (ms->stage)
		ms->stage->ms = NULL;   /* not expected: the pipeline goes first */
	ms->stage = NULL;
	ms->dead = true;
	if (ms->busy == 0)
		ms_destroy(ms);
}

bool milter_connect(struct milter_session *ms, milter_step_fn done, void *arg, struct milter_answer *now)
{
	return ms_step(ms, STEP_CONNECT, done, arg, now);
}

bool milter_helo(struct milter_session *ms, const char *helo, const char *tls_version, const char *cipher,
		 milter_step_fn done, void *arg, struct milter_answer *now)
{
	ms_set(&ms->helo, helo);
	ms_set(&ms->tls_version, tls_version);
	ms_set(&ms->cipher, cipher);
	return ms_step(ms, STEP_HELO, done, arg, now);
}

bool milter_mail(struct milter_session *ms, const char *from, const char *auth_user, milter_step_fn done,
		 void *arg, struct milter_answer *now)
{
	milter_abort(ms);   /* what an earlier transaction left */
	ms_set(&ms->from, from);
	ms_set(&ms->auth_user, auth_user);
	return ms_step(ms, STEP_MAIL, done, arg, now);
}

bool milter_rcpt(struct milter_session *ms, const char *rcpt, milter_step_fn done, void *arg,
		 struct milter_answer *now)
{
	ms_set(&ms->rcpt, rcpt);
	return ms_step(ms, STEP_RCPT, done, arg, now);
}

bool milter_data_step(struct milter_session *ms, milter_step_fn done, void *arg, struct milter_answer *now)
{
	if (ms == NULL || ms->stage == NULL) {
		memset(now, 0, sizeof(*now));
		return true;   /* no filter takes part in the message */
	}
	/* from now on the message may be shown, after DATA's reply */
	for (size_t i = 0; i < ms->n; i++)
		ms->mc[i].data_sent = true;
	return ms_step(ms, STEP_DATA, done, arg, now);
}

void milter_abort(struct milter_session *ms)
{
	if (ms == NULL || ms->stage)
		return;   /* the stage's end does it */
	for (size_t i = 0; i < ms->n; i++)
		mc_msg_end(&ms->mc[i]);
	ms->discard = false;
}

/* ---- the stage --------------------------------------------------------------- */

static void milter_data(struct pipe_stage *st, const char *buf, size_t len)
{
	struct milter_stage *m = (struct milter_stage *)st;
	struct milter_session *ms = m->ms;

	/* held until the verdict; shown as the filters take it */
	spool_add(&m->hold, buf, len);
	if (ms == NULL)
		return;
	for (size_t i = 0; i < ms->n; i++)
		if (ms->mc[i].member)
			mc_flush(&ms->mc[i]);
}

static void milter_end(struct pipe_stage *st)
{
	struct milter_stage *m = (struct milter_stage *)st;
	struct milter_session *ms = m->ms;

	m->ended = true;
	if (ms == NULL) {
		m->answered = true;
		pipe_stage_refuse(st, true, "451 4.7.1 Service unavailable, try again later");
		return;
	}
	ms_enter(ms);
	for (size_t i = 0; i < ms->n; i++)
		if (ms->mc[i].member)
			mc_flush(&ms->mc[i]);
	milter_eom_next(m);
	ms_leave(ms);
}

static void milter_stage_free(struct pipe_stage *st)
{
	struct milter_stage *m = (struct milter_stage *)st;
	struct milter_session *ms = m->ms;

	if (ms) {
		ms->stage = NULL;
		for (size_t i = 0; i < ms->n; i++)
			mc_msg_end(&ms->mc[i]);
		ms->discard = false;
	}
	for (size_t i = 0; i < m->ndelrcpt; i++)
		free(m->delrcpt[i]);
	free(m->delrcpt);
	for (size_t i = 0; i < m->naddrcpt; i++)
		free(m->addrcpt[i]);
	free(m->addrcpt);
	for (size_t i = 0; i < m->nedits; i++) {
		free(m->edits[i].name);
		free(m->edits[i].field);
	}
	free(m->edits);
	free(m->new_from);
	spool_free(&m->hold);
	spool_free(&m->newbody);
	milter_buf_free(&m->out.field);
	free(m);
}

static const struct pipe_stage_ops milter_stage_ops = {
	.name = "milter",
	.data = milter_data,
	.end = milter_end,
	.free = milter_stage_free,
};

struct pipe_stage *milter_stage_new(struct milter_session *ms)
{
	struct milter_stage *m;
	bool any = false;

	if (ms == NULL || ms->stage)
		return NULL;
	m = xcalloc(1, sizeof(*m));
	m->st.ops = &milter_stage_ops;
	m->ms = ms;
	m->t = ms->t;
	spool_init(&m->hold, queue_tmp_dir(ms->t->queue));
	spool_init(&m->newbody, queue_tmp_dir(ms->t->queue));
	ms->stage = m;
	for (size_t i = 0; i < ms->n; i++) {
		struct milter_conn *mc = &ms->mc[i];
		/* a filter that failed counts: its default_action at the end */
		mc->member = (mc->in_msg && mc->outcome == MO_NONE && mc->state == MC_OPEN) ||
			     (mc->failed && m->t->cfg->milter_default_action != MILTER_DEFAULT_ACCEPT);
		if (mc->failed)
			mc->outcome = MO_FAILED;
		any |= mc->member;
	}
	if (!any && !ms->discard) {
		ms->stage = NULL;
		milter_stage_free(&m->st);
		return NULL;
	}
	return &m->st;
}

