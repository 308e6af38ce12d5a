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
 * message refused at its end, rather than the command at once.  A
 * recipient that a filter rejects refuses the whole message the same way
 * (the client tries the others again on its own).
 *
 * The stage holds the message back: it goes into a spool (memory up to
 * MILTER_HOLD_MEM, then an unlinked file in the queue's tmp/) and on to
 * the next stage only once every filter agreed, in the form the filters'
 * modifications give it.  So the stages after it (DKIM signing) and the
 * sink see the modified message, and the envelope can still change
 * before the sink writes the rest of the message.  The filters are shown
 * the message from the spool at the pace of their sockets: a chunk more
 * only when every filter's output is below MILTER_OUT_LOW, so what waits
 * in memory for a slow filter is bounded, not the message's size.
 *
 * Commands go out without waiting for each reply; the replies are read
 * as they come, counted against the commands that want one, and a filter
 * that decides early (accept, reject, ...) is sent nothing more.  At the
 * end the filters are asked for their end-of-message verdict one after
 * the other, in the order configured: the first that does not accept
 * decides.  Their modifications are collected and applied together,
 * after every filter agreed: header fields added (at the end of the
 * header section), inserted (at an index among the fields the filters
 * were shown) or changed and deleted (the index-th field of that name),
 * the body replaced (its chunks streamed into a second spool), recipients
 * added or removed, the sender changed, quarantine (the message is
 * committed held: `tern queue release` delivers it).  A header field
 * matching [milter] spam_header in the final header section sends the
 * local copies into the recipients' Junk folder.
 *
 * A filter that cannot be reached, times out (timeout, per exchange;
 * PROGRESS starts it again), closes, or sends anything that is not a
 * valid reply at that point gets [milter] default_action: tempfail
 * (451 4.7.1), reject (550 5.7.1) or accept (the filter is left out).
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
/* A filter's socket paces the message: more is sent to the filters only
 * while every one has less than this waiting in its output. */
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
	bool replbody;                /* its REPLBODY chunks are the body */
	char reply[PIPELINE_REPLY_MAX];   /* MO_REPLY's text */
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

struct milter_stage {
	struct pipe_stage st;
	struct tern *t;
	struct milter_client c;       /* strings owned */
	char port[8];
	struct milter_conn *mc;
	size_t n;
	size_t negotiating;           /* connections not through OPTNEG yet */
	struct milter_buf pkt;        /* a packet being built */
	/* the message, held, and as it is shown to the filters */
	struct milter_spool hold;
	uint64_t shown;               /* octets of hold shown so far */
	bool pumping;
	struct hsplit show;
	bool skip_logged;             /* the long field being passed is logged */
	struct milter_buf body;       /* body octets (CRLF) not yet sent */
	bool ended;                   /* end() was called */
	bool shown_end;               /* EOH and the last body chunk sent */
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

/* A header change a filter asked for: op add, insert, change, delete. */
static void log_milter_header(const struct milter_conn *mc, const char *op, const char *name, size_t nlen,
			      uint32_t index)
{
	char q[300];
	log_event("event=milter_header session=%016" PRIx64 " queue=%s milter=%s op=%s field=%s index=%u",
		  mc->m->c.session, mc_queue(mc), mc->spec, op, log_quote(q, sizeof(q), name, nlen), index);
}

static void log_milter_delrcpt(const struct milter_stage *m, const struct queue_env *env,
			       const struct queue_rcpt *r)
{
	char q[600];
	log_event("event=milter_delrcpt session=%016" PRIx64 " queue=%s to=%s", m->c.session, env->id,
		  log_quote(q, sizeof(q), r->addr, strlen(r->addr)));
}

/* result: added, duplicate, unknown (a local address with no mailbox) */
static void log_milter_addrcpt(const struct milter_stage *m, const struct queue_env *env, const char *addr,
			       const char *result)
{
	char q[600];
	log_event("event=milter_addrcpt session=%016" PRIx64 " queue=%s to=%s result=%s", m->c.session, env->id,
		  log_quote(q, sizeof(q), addr, strlen(addr)), result);
}

static void log_milter_chgfrom(const struct milter_stage *m, const struct queue_env *env)
{
	char q[600], o[600];
	log_event("event=milter_chgfrom session=%016" PRIx64 " queue=%s old=%s from=%s", m->c.session, env->id,
		  log_quote(o, sizeof(o), env->from, strlen(env->from)),
		  log_quote(q, sizeof(q), m->new_from, strlen(m->new_from)));
}

static void log_milter_replbody(const struct milter_stage *m, uint64_t size)
{
	log_event("event=milter_replbody session=%016" PRIx64 " queue=%s size=%" PRIu64, m->c.session,
		  pipeline_env(m->st.p)->id, size);
}

static void log_milter_spam(const struct milter_stage *m)
{
	log_event("event=milter_spam session=%016" PRIx64 " queue=%s folder=Junk", m->c.session,
		  pipeline_env(m->st.p)->id);
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

static void show_field(void *ctx, const char *f, size_t len, bool part, bool over)
{
	struct milter_stage *m = ctx;

	if (part && !m->skip_logged)
		log_milter_field_skipped(m, f, len);   /* its first piece has its name */
	m->skip_logged = part;
	if (!over)
		milter_send_field(m, f, len);
}

static void show_eoh(void *ctx)
{
	milter_send_eoh(ctx);
}

/* Body octets in chunks with CRLF line ends, as filters expect SMTP's form. */
static void show_body(void *ctx, const char *s, size_t n)
{
	struct milter_stage *m = ctx;

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

static const struct hsplit_ops show_ops = { show_field, show_eoh, show_body };

static void milter_eom_next(struct milter_stage *m);

/* Room in every live filter's output for more of the message. */
static bool milter_room(const struct milter_stage *m)
{
	for (size_t i = 0; i < m->n; i++) {
		const struct milter_conn *mc = &m->mc[i];
		if (mc_live(mc) && evbuffer_get_length(bufferevent_get_output(mc->bev)) >= MILTER_OUT_LOW)
			return false;
	}
	return true;
}

static bool milter_any_live(const struct milter_stage *m)
{
	for (size_t i = 0; i < m->n; i++)
		if (mc_live(&m->mc[i]))
			return true;
	return false;
}

/* Show the filters more of the held message, as far as their sockets
 * take it; at its end, ask for their verdicts.  Called as the message
 * comes, when a filter's output drains, and when one is out.  The stage
 * may be gone when this returns. */
static void milter_pump(struct milter_stage *m)
{
	char buf[MILTER_READ_CHUNK];

	if (m->pumping || m->negotiating > 0 || m->shown_end)
		return;
	m->pumping = true;
	while (m->shown < m->hold.len && milter_room(m)) {
		size_t n;
		if (!milter_any_live(m)) {
			m->shown = m->hold.len;   /* nobody to show it to */
			break;
		}
		n = spool_read(&m->hold, m->shown, buf, sizeof(buf));
		if (n == 0)
			break;   /* hold.err: the end refuses */
		hsplit_feed(&m->show, &show_ops, m, buf, n);
		m->shown += n;
	}
	m->pumping = false;
	if (!m->ended || (m->shown < m->hold.len && !m->hold.err))
		return;
	m->shown_end = true;
	hsplit_end(&m->show, &show_ops, m);
	milter_send_body(m);
	milter_eom_next(m);
}

static void mc_write_cb(struct bufferevent *bev, void *arg)
{
	struct milter_conn *mc = arg;
	(void)bev;
	milter_pump(mc->m);
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

/* ---- the verdict ---------------------------------------------------------- */

/* Every filter agreed: the envelope changed, the message (changed) to
 * the next stage, and on.  The last thing done: the pipeline may free
 * this stage from pipe_stage_accept(). */
static void milter_agreed(struct milter_stage *m)
{
	for (size_t i = 0; i < m->n; i++)
		mc_close(&m->mc[i]);
	if (m->hold.err || m->newbody.err || !milter_apply_envelope(m)) {
		pipe_stage_refuse(&m->st, true, "451 4.3.0 Error writing the message to disk, try again later");
		return;
	}
	milter_emit(m);
	if (m->hold.err || m->newbody.err) {
		pipe_stage_refuse(&m->st, true, "451 4.3.0 Error writing the message to disk, try again later");
		return;
	}
	if (m->spam) {
		log_milter_spam(m);
		pipeline_env(m->st.p)->junk = true;
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
			milter_pump(m);
		return;
	}
	if (!m->shown_end) {
		milter_pump(m);   /* it may have been the one that held the others up */
		return;
	}
	if (m->eom_at < m->n && &m->mc[m->eom_at] == mc)
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
		milter_pump(m);   /* stops at this one at the latest: it is live */
	return true;
}

/* ADDHEADER, INSHEADER, CHGHEADER: one more change to the header section. */
static bool mc_edit(struct milter_conn *mc, const struct milter_reply *r)
{
	struct milter_stage *m = mc->m;
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
	struct milter_stage *m = mc->m;
	char buf[4096];
	size_t n = 0;

	if (!(mc->actions & MILTER_A_CHGBODY))
		return false;
	if (!mc->replbody) {
		for (size_t i = 0; i < m->n; i++)
			m->mc[i].replbody = false;
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
	struct milter_stage *m = mc->m;

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
	case MILTER_R_CHGHEADER:
		if (!at_eom || !mc_edit(mc, r)) {
			mc_out(mc, MO_FAILED, r->cmd == MILTER_R_CHGHEADER && !(mc->actions & MILTER_A_CHGHDRS)
				  ? "garbage" : "bad_header");
			return false;
		}
		mc_timer_set(mc);
		return true;
	case MILTER_R_REPLBODY:
		if (!at_eom || !mc_replbody(mc, r)) {
			mc_out(mc, MO_FAILED, "garbage");
			return false;
		}
		mc_timer_set(mc);
		return true;
	case MILTER_R_DELRCPT:
	case MILTER_R_ADDRCPT:
	case MILTER_R_ADDRCPT_PAR:
	case MILTER_R_CHGFROM:
		if (!at_eom || !mc_envelope(mc, r)) {
			mc_out(mc, MO_FAILED, "garbage");
			return false;
		}
		mc_timer_set(mc);
		return true;
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
	bufferevent_setcb(mc->bev, mc_read_cb, mc_write_cb, mc_event_cb, mc);
	bufferevent_setwatermark(mc->bev, EV_WRITE, MILTER_OUT_LOW / 2, 0);
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

	/* held until the verdict; shown as the filters' sockets take it */
	spool_add(&m->hold, buf, len);
	milter_pump(m);
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
	milter_pump(m);   /* if negotiating, mc_optneg() or mc_out() comes back */
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
	milter_buf_free(&m->pkt);
	milter_buf_free(&m->show.field);
	milter_buf_free(&m->out.field);
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
	spool_init(&m->hold, queue_tmp_dir(t->queue));
	spool_init(&m->newbody, queue_tmp_dir(t->queue));
	hsplit_init(&m->show);
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
