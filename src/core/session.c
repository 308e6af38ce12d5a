/*
 * session.c - the line-session base (see session.h): line and octet
 * intake, the error limit, idle and command timeouts, the output
 * high-water mark, pauses and the STARTTLS discard, for every line
 * protocol alike.
 *
 * Input is processed in passes: a read, a resume or a drained output
 * starts one, and it takes lines (or raw octets) from the input buffer
 * until the buffer runs dry, the protocol waits (a pause, a state of its
 * own), the output passes the high-water mark or the session closes.  At
 * the end of each pass the input timer is set from what is left: nothing
 * buffered, the idle timeout starts again; part of a line buffered, the
 * command timeout runs from the pass that saw its first octet, and later
 * octets do not move it.
 */
#include "core/session.h"
#include "core/log.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <inttypes.h>
#include <string.h>

/* ---- logging: one function per event ---------------------------------- */

static const char *session_state(const struct session *s)
{
	return s->ops->state_name ? s->ops->state_name(s->owner) : "-";
}

static void log_session_timeout(const struct session *s, const char *timer)
{
	log_event("event=timeout session=%016" PRIx64 " ip=%s state=%s timer=%s", s->conn->id, s->conn->ip,
		  session_state(s), timer);
}

static void log_session_too_many_errors(const struct session *s)
{
	log_event("event=too_many_errors session=%016" PRIx64 " ip=%s errors=%u", s->conn->id, s->conn->ip,
		  s->errors);
}

/* ---- the end of a session ------------------------------------------------ */

/* The protocol's fatal text, then close once it has left, lingering
 * (conn_linger): a client still sending gets the text, not a reset. */
static void session_fatal(struct session *s, const char *text)
{
	conn_write(s->conn, text, strlen(text));
	conn_write(s->conn, "\r\n", 2);
	conn_linger(s->conn);
	s->ops->close(s->owner, true);
}

/* ---- the input timer ------------------------------------------------------- */

static void session_timer_stop(struct session *s)
{
	if (s->timer_on != SESSION_TIMER_OFF)
		event_del(&s->timer);
	s->timer_on = SESSION_TIMER_OFF;
}

static void session_timer_start(struct session *s, enum session_timer which)
{
	struct timeval tv = {
		.tv_sec = (time_t)(which == SESSION_TIMER_COMMAND ? s->command_timeout : s->idle_timeout),
	};
	s->timer_on = which;
	event_add(&s->timer, &tv);
}

static void session_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct session *s = arg;
	bool command = s->timer_on == SESSION_TIMER_COMMAND;
	const char *text = command && s->ops->command_timeout_text ? s->ops->command_timeout_text
		: s->ops->timeout_text;

	s->timer_on = SESSION_TIMER_OFF;
	if (s->conn->closing)
		return;
	conn_ref(s->conn);
	conn_batch_begin(s->conn);
	log_session_timeout(s, command ? "command" : "idle");
	session_fatal(s, text);
	conn_batch_end(s->conn);
	conn_unref(s->conn);
}

/* ---- processing input ------------------------------------------------------ */

static bool session_may_process(const struct session *s)
{
	return !s->conn->closing && s->paused == 0 && !s->output_full && !s->discard &&
		(s->ops->ready == NULL || s->ops->ready(s->owner));
}

/* Too much output waits for a client that does not read: stop reading
 * and processing until it drains (session_drained_cb goes on). */
static bool session_output_full(struct session *s)
{
	if (conn_pending(s->conn) < SESSION_OUT_HIGH)
		return false;
	s->output_full = true;
	bufferevent_disable(s->conn->bev, EV_READ);
	conn_await_drain(s->conn);
	return true;
}

/* A literal's octets, as far as they are in. */
static bool session_octets_step(struct session *s)
{
	struct evbuffer *in = bufferevent_get_input(s->conn->bev);
	struct evbuffer_iovec v;
	size_t n;

	if (evbuffer_peek(in, -1, NULL, &v, 1) < 1 || v.iov_len == 0)
		return false;
	n = v.iov_len < s->octets_left ? v.iov_len : (size_t)s->octets_left;
	s->octets_left -= n;
	s->ops->octets(s->owner, v.iov_base, n, s->octets_left == 0);
	evbuffer_drain(in, n);
	return true;
}

/* One line, or a bad one answered.  False when no complete line is in. */
static bool session_line_step(struct session *s)
{
	char line[SESSION_LINE_CAP + 2];
	size_t max = s->ops->line_max(s->owner), n;
	bool bare_lf;

	if (max > SESSION_LINE_CAP)
		max = SESSION_LINE_CAP;
	switch ((s->ops->crlf_lines ? conn_take_crlf_line : conn_take_line)(s->conn, line, sizeof(line),
									  max, &n)) {
	case CONN_LINE_MORE:
		return false;
	case CONN_LINE_TOO_LONG:
		s->ops->line_too_long(s->owner);
		return true;
	case CONN_LINE_OK:
		break;
	}
	n--;   /* the LF */
	if (s->ops->crlf_lines) {
		n--;   /* and its CR */
		bare_lf = memchr(line, '\n', n) != NULL;
	} else {
		bare_lf = n == 0 || line[n - 1] != '\r';
		if (!bare_lf)
			n--;
	}
	line[n] = '\0';
	s->ops->line(s->owner, line, n, bare_lf);
	explicit_bzero(line, n);   /* it may have held a password */
	return true;
}

static void session_check_errors(struct session *s)
{
	if (s->conn->closing || s->max_errors == 0 || s->errors < s->max_errors)
		return;
	log_session_too_many_errors(s);
	session_fatal(s, s->ops->errors_text);
}

static void session_pass(struct session *s)
{
	bool raw_mode = false;

	while (session_may_process(s)) {
		if (session_output_full(s))
			break;
		if (s->octets_left > 0) {
			if (!session_octets_step(s))
				break;
			continue;
		}
		if (s->ops->raw) {
			enum session_raw r = s->ops->raw(s->owner);
			raw_mode = r != SESSION_RAW_NO;
			if (r == SESSION_RAW_STOP)
				break;
			if (r == SESSION_RAW_MORE)
				continue;
		}
		if (!session_line_step(s))
			break;
		session_check_errors(s);
	}
	s->discard = false;
	if (s->conn->closing)
		return;
	/* Read only what will be processed: the input buffer never grows
	 * while the session waits. */
	if (!session_may_process(s)) {
		bufferevent_disable(s->conn->bev, EV_READ);
		session_timer_stop(s);
	} else if (raw_mode || s->octets_left > 0 ||
		   (evbuffer_get_length(bufferevent_get_input(s->conn->bev)) == 0 && !s->conn->discard_line)) {
		/* Waiting for a command (or the next block of raw input):
		 * every read counts as activity.  An over-long line being
		 * dropped as it comes is a line that has begun. */
		session_timer_stop(s);
		session_timer_start(s, SESSION_TIMER_IDLE);
	} else if (s->timer_on != SESSION_TIMER_COMMAND) {
		/* A line has begun: it has command_timeout from now to end. */
		session_timer_stop(s);
		session_timer_start(s, SESSION_TIMER_COMMAND);
	}
	if (session_may_process(s) && !s->conn->tls_pending)
		bufferevent_enable(s->conn->bev, EV_READ);
}

void session_process(struct session *s)
{
	if (s->in_pass)
		return;   /* the pass on the stack goes on by itself */
	s->in_pass = true;
	conn_batch_begin(s->conn);
	session_pass(s);
	conn_batch_end(s->conn);
	s->in_pass = false;
}

void session_pause(struct session *s)
{
	s->paused++;
	bufferevent_disable(s->conn->bev, EV_READ);
	session_timer_stop(s);
	conn_ref(s->conn);
}

void session_resume(struct session *s)
{
	if (--s->paused == 0 && !s->conn->closing)
		session_process(s);
	conn_unref(s->conn);
}

void session_error(struct session *s)
{
	s->errors++;
}

void session_take_octets(struct session *s, uint64_t n)
{
	s->octets_left = n;
}

struct evbuffer *session_input(struct session *s)
{
	return bufferevent_get_input(s->conn->bev);
}

void session_starttls(struct session *s, SSL *ssl)
{
	conn_starttls(s->conn, ssl);   /* drops the buffered input */
	s->discard = true;
	session_pause(s);
}

/* ---- the conn's callbacks ---------------------------------------------------- */

static void session_read_cb(void *arg)
{
	session_process(arg);
}

static void session_drained_cb(void *arg)
{
	struct session *s = arg;

	if (s->ops->drained)
		s->ops->drained(s->owner);
	if (s->output_full && !s->conn->closing) {
		s->output_full = false;
		session_process(s);
	}
}

static void session_event_cb(void *arg, short what)
{
	struct session *s = arg;

	if (what & BEV_EVENT_TIMEOUT) {
		/* Output that cannot leave (a client that stopped reading):
		 * nothing more can reach it either, so it is dropped. */
		log_session_timeout(s, "write");
		s->ops->close(s->owner, false);
		return;
	}
	s->ops->event(s->owner, what);
}

static void session_connected_cb(void *arg)
{
	struct session *s = arg;
	if (s->ops->connected)
		s->ops->connected(s->owner);
}

static void session_starttls_done_cb(void *arg, bool ok)
{
	struct session *s = arg;

	s->ops->starttls_done(s->owner, ok);
	session_resume(s);
}

static void session_free_cb(void *arg)
{
	struct session *s = arg;
	s->ops->free(s->owner);
}

static const struct conn_ops session_conn_ops = {
	.read = session_read_cb,
	.drained = session_drained_cb,
	.event = session_event_cb,
	.connected = session_connected_cb,
	.starttls_done = session_starttls_done_cb,
	.free = session_free_cb,
};

/* ---- set-up ---------------------------------------------------------------------- */

void session_init(struct session *s, struct conn *c, struct event_base *base, evutil_socket_t fd,
		  const struct session_ops *ops, void *owner, uint64_t id, const char *ip)
{
	memset(s, 0, sizeof(*s));
	s->conn = c;
	s->ops = ops;
	s->owner = owner;
	conn_init(c, base, fd, &session_conn_ops, s, id, ip);
	conn_set_low_water(c, SESSION_OUT_LOW);
	evtimer_assign(&s->timer, base, session_timer_cb, s);
}

void session_release(struct session *s)
{
	session_timer_stop(s);
	conn_release(s->conn);
}

void session_start(struct session *s)
{
	conn_start(s->conn);
	if (!s->conn->closing && s->timer_on == SESSION_TIMER_OFF)
		session_timer_start(s, SESSION_TIMER_IDLE);
}

void session_set_timeouts(struct session *s, uint64_t idle, uint64_t command)
{
	s->idle_timeout = idle;
	s->command_timeout = command;
	conn_set_timeout(s->conn, idle);
	if (s->timer_on != SESSION_TIMER_OFF) {
		enum session_timer which = s->timer_on;
		session_timer_stop(s);
		session_timer_start(s, which);
	}
}
