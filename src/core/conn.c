/*
 * conn.c - one server connection under a session: bufferevent, reference
 * count, flush-then-close, direct writes, and the switch to TLS on the
 * same socket (RFC 3207 4.2 and RFC 2595 4: after the reply that starts
 * it, nothing sent in the clear is acted on; RFC 8314 3.3 implicit TLS).
 *
 * Output on a plain connection is written with one write(2) when an
 * output batch ends (a batch is one callback into the session, or a
 * pipelined group of commands, RFC 2920 and RFC 2449 6.6); what the
 * socket does not take moves to the bufferevent, whose write event then
 * drains it and reports errors.  The bufferevent's own output cannot be
 * written from outside its callbacks (libevent keeps its front frozen),
 * hence the separate queue.  TLS output always goes through the
 * bufferevent: an OpenSSL socket bufferevent writes straight to the
 * socket, so "output drained" still means "handed to the kernel" when a
 * session flushes its last reply and closes.
 *
 * The session is freed (ops->free) only when it is closing and no
 * callback, timer or worker job holds a reference: every callback runs
 * with one held, so close may be called anywhere.
 *
 * TLS handshakes run on worker threads (core/tls_accept.c).  Until one
 * is over, the conn's bufferevent has no socket: what the session writes
 * and enables on it stays there, its write timeout still runs, and all of
 * it moves to the OpenSSL bufferevent made when the handshake is done.
 *
 * A close after a fatal reply lingers (conn_linger): once the reply has
 * left, the sending side is shut down and input is dropped until the
 * peer closes or a bound passes, so the reply is not lost to the reset
 * that closing with unread input sends.
 */
#include "core/metrics.h"
#include "core/conn.h"
#include "core/log.h"
#include "core/tls.h"
#include "core/tls_accept.h"
#include "core/util.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <inttypes.h>
#include <errno.h>
#include <openssl/err.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/socket.h>

/* ---- logging: one function per event ---------------------------------- */

static void log_conn_tls(const struct conn *c, SSL *ssl)
{
	char d[128];
	tls_describe(ssl, d, sizeof(d));
	metrics_inc(METRIC_TLS_OK);
	log_event("event=tls session=%016" PRIx64 " ip=%s tls=\"%s\"", c->id, c->ip, d);
}

void conn_log_tls_failed(const struct conn *c, unsigned long err)
{
	char e[200] = "connection closed";
	metrics_inc(METRIC_TLS_FAILED);
	if (err)
		ERR_error_string_n(err, e, sizeof(e));
	log_event("event=tls_failed session=%016" PRIx64 " ip=%s error=\"%s\"", c->id, c->ip, e);
}

/* The last output could not leave in time (a client that stopped
 * reading, or never finished the handshake): the connection is dropped. */
static void log_conn_timeout_closing(const struct conn *c)
{
	log_event("event=timeout session=%016" PRIx64 " ip=%s state=closing", c->id, c->ip);
}

/* Output that does not leave within the timeout ends the connection.
 * Reading is timed by the session (core/session.c: libevent's read
 * timeout restarts on every read, so a trickled command would never
 * time out), except once closing: then the timeout bounds the TLS
 * handshake a last reply may still wait for. */
static void conn_apply_timeouts(struct conn *c)
{
	bufferevent_set_timeouts(c->bev, c->closing ? &c->timeout : NULL, &c->timeout);
}

/* ---- references and closing ------------------------------------------- */

void conn_ref(struct conn *c)
{
	c->refs++;
}

void conn_unref(struct conn *c)
{
	if (--c->refs == 0 && c->closing)
		c->ops->free(c->owner);
}

/* A STARTTLS switch that will not happen now: tell the session. */
static void conn_cancel_tls(struct conn *c)
{
	if (c->tls_pending == NULL)
		return;
	SSL_free(c->tls_pending);
	c->tls_pending = NULL;
	c->ops->starttls_done(c->owner, false);
}

/* ---- lingering close ---------------------------------------------------- */

static void conn_log_linger(const struct conn *c, const char *end, size_t dropped)
{
	log_event("event=linger session=%016" PRIx64 " ip=%s end=%s dropped=%zu", c->id, c->ip, end,
		  dropped);
}

static void conn_close_ref_drop(struct conn *c);

static void conn_linger_end(struct conn *c, const char *why)
{
	conn_log_linger(c, why, CONN_LINGER_MAX - c->linger_left);
	event_free(c->linger_ev);
	c->linger_ev = NULL;
	conn_close_ref_drop(c);
}

static void conn_linger_cb(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;
	uint64_t now = now_ms_monotonic();
	char buf[16384];
	ssize_t n = -1;

	if (what & EV_READ) {
		size_t turn = 0;
		while (c->linger_left > 0 && turn < CONN_LINGER_TURN &&
		       (n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT)) > 0) {
			c->linger_left -= (size_t)n < c->linger_left ? (size_t)n : c->linger_left;
			turn += (size_t)n;
		}
		if (n == 0) {
			conn_linger_end(c, "eof");
			return;
		}
		if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
			conn_linger_end(c, "error");
			return;
		}
	}
	if (c->linger_left == 0) {
		conn_linger_end(c, "too_much");
		return;
	}
	if (now >= c->linger_until) {
		conn_linger_end(c, "timeout");
		return;
	}
	struct timeval tv = { .tv_sec = (time_t)((c->linger_until - now) / 1000),
			      .tv_usec = (suseconds_t)((c->linger_until - now) % 1000 * 1000) };
	event_add(c->linger_ev, &tv);
}

/* The output has left: stop sending (FIN after the last reply) and drop
 * input until the peer is done.  False when it cannot (then close now). */
static bool conn_linger_start(struct conn *c)
{
	evutil_socket_t fd = bufferevent_getfd(c->bev);

	if (!c->linger || fd < 0)
		return false;
	c->linger = false;
	if (shutdown(fd, SHUT_WR) < 0)
		return false;
	c->linger_ev = event_new(c->base, fd, EV_READ, conn_linger_cb, c);
	if (c->linger_ev == NULL)
		return false;
	/* The bufferevent (plain or TLS) is done with: what comes now is
	 * read from the socket itself and never looked at. */
	bufferevent_disable(c->bev, EV_READ | EV_WRITE);
	c->linger_until = now_ms_monotonic() + CONN_LINGER_MS;
	c->linger_left = CONN_LINGER_MAX;
	conn_linger_cb(fd, EV_READ, c);   /* what is already in; arms the event */
	return true;
}

void conn_linger(struct conn *c)
{
	c->linger = true;
}

/* Drops the reference conn_close() took (it may free the session). */
static void conn_close_ref_drop(struct conn *c)
{
	if (c->accept) {   /* no reply waits for it any more */
		tls_accept_cancel(c->accept);
		c->accept = NULL;
	}
	conn_ref(c);
	if (c->flush_ref) {
		c->flush_ref = false;
		bufferevent_disable(c->bev, EV_READ | EV_WRITE);
		conn_unref(c);
	}
	conn_unref(c);
}

/* Releases the reference that conn_close(flush) took, once the output
 * has left (flushed: then it may linger first) or cannot leave any more. */
static void conn_flush_done(struct conn *c, bool flushed)
{
	if (c->linger_ev) {   /* closed again without flush while lingering */
		conn_linger_end(c, "closed");
		return;
	}
	conn_ref(c);
	conn_cancel_tls(c);
	if (!(flushed && c->flush_ref && conn_linger_start(c)))
		conn_close_ref_drop(c);
	conn_unref(c);
}

/* ---- output ------------------------------------------------------------ */

/* Hand the queue to the bufferevent and let its write event drain it. */
static void conn_arm(struct conn *c)
{
	c->write_armed = true;
	evbuffer_add_buffer(bufferevent_get_output(c->bev), c->outq);
	bufferevent_enable(c->bev, EV_WRITE);
}

static void conn_write_direct(struct conn *c)
{
	if (!c->direct_out || c->write_armed || c->closing || evbuffer_get_length(c->outq) == 0)
		return;
	/* On an error the rest stays queued: the bufferevent then meets the
	 * same error and reports it through the event callback. */
	(void)evbuffer_write(c->outq, bufferevent_getfd(c->bev));
	if (evbuffer_get_length(c->outq) > 0)
		conn_arm(c);
}

struct evbuffer *conn_out(struct conn *c)
{
	return c->direct_out && !c->write_armed ? c->outq : bufferevent_get_output(c->bev);
}

void conn_push(struct conn *c)
{
	if (c->in_batch == 0)
		conn_write_direct(c);
}

void conn_write(struct conn *c, const void *buf, size_t len)
{
	evbuffer_add(conn_out(c), buf, len);
	conn_push(c);
}

void conn_flush(struct conn *c)
{
	conn_write_direct(c);
}

void conn_batch_begin(struct conn *c)
{
	c->in_batch++;
}

void conn_batch_end(struct conn *c)
{
	if (--c->in_batch == 0)
		conn_write_direct(c);
}

size_t conn_pending(const struct conn *c)
{
	return evbuffer_get_length(c->outq) + evbuffer_get_length(bufferevent_get_output(c->bev));
}

void conn_await_drain(struct conn *c)
{
	if (c->direct_out && !c->write_armed)
		conn_arm(c);
}

/* ---- input -------------------------------------------------------------- */

enum conn_line conn_take_line(struct conn *c, char *buf, size_t cap, size_t max, size_t *len)
{
	struct evbuffer *in = bufferevent_get_input(c->bev);
	struct evbuffer_ptr p = evbuffer_search(in, "\n", 1, NULL);
	size_t n;

	if (p.pos < 0) {
		n = evbuffer_get_length(in);
		if (n > max) {
			/* Too long already: drop it as it comes, answer at its end. */
			c->discard_line = true;
			evbuffer_drain(in, n);
		}
		return CONN_LINE_MORE;
	}
	n = (size_t)p.pos + 1;
	if (c->discard_line || n > max || n > cap) {
		evbuffer_drain(in, n);
		c->discard_line = false;
		return CONN_LINE_TOO_LONG;
	}
	evbuffer_remove(in, buf, n);
	*len = n;
	return CONN_LINE_OK;
}

enum conn_line conn_take_crlf_line(struct conn *c, char *buf, size_t cap, size_t max, size_t *len)
{
	struct evbuffer *in = bufferevent_get_input(c->bev);
	struct evbuffer_ptr p = evbuffer_search(in, "\r\n", 2, NULL);
	size_t n;

	if (p.pos < 0) {
		n = evbuffer_get_length(in);
		if (n > max) {
			/* Too long already: drop it as it comes, answer at its
			 * end.  The last octet stays: it may be the CR of the CRLF. */
			c->discard_line = true;
			evbuffer_drain(in, n - 1);
		}
		return CONN_LINE_MORE;
	}
	n = (size_t)p.pos + 2;
	if (c->discard_line || n > max || n > cap) {
		evbuffer_drain(in, n);
		c->discard_line = false;
		return CONN_LINE_TOO_LONG;
	}
	evbuffer_remove(in, buf, n);
	*len = n;
	return CONN_LINE_OK;
}

/* ---- closing ------------------------------------------------------------- */

/* Stop reading; free once the output is flushed (flush) or at once.  The
 * memory goes only when no callback or worker job holds a reference. */
void conn_close(struct conn *c, bool flush)
{
	if (c->closing) {
		if (!flush)
			conn_flush_done(c, false);
		return;
	}
	if (flush)
		conn_write_direct(c);
	else
		c->linger = false;
	c->closing = true;
	conn_apply_timeouts(c);
	bufferevent_disable(c->bev, EV_READ);
	c->refs++;
	c->flush_ref = true;   /* the reference conn_close_ref_drop() drops */
	if (flush && evbuffer_get_length(bufferevent_get_output(c->bev)) > 0) {
		bufferevent_enable(c->bev, EV_WRITE);
		return;
	}
	conn_flush_done(c, flush);
}

/* ---- callbacks ----------------------------------------------------------- */

/*
 * libevent 2.1 reads at most 4096 octets per wakeup (EVBUFFER_MAX_READ),
 * so a 100 KiB message body took 25 trips round the event loop, each an
 * epoll_wait, an ioctl, a readv and a write to the queue file.  When a
 * read filled those 4096 octets, more is likely waiting: take it now, up
 * to CONN_READ_BATCH in the input per callback.  Plain sockets only (a
 * TLS bufferevent reads its socket itself).  EOF and errors are left to
 * the bufferevent, which sees them again on its next read.
 */
#define CONN_READ_SMALL 4096
#define CONN_READ_BATCH (64 * 1024)

static void conn_read_more(struct conn *c)
{
	struct evbuffer *in = bufferevent_get_input(c->bev);
	evutil_socket_t fd = bufferevent_getfd(c->bev);
	size_t have = evbuffer_get_length(in);

	if (c->tls || c->tls_pending || fd < 0 || have < CONN_READ_SMALL)
		return;
	/* Into a buffer on the stack, then copied: space reserved in the
	 * input would be a 64 KiB chain for a 145-octet rest, whose free()
	 * makes malloc give memory back to the kernel and fault it in again
	 * (a brk() per 4 KiB message). */
	char buf[CONN_READ_BATCH];
	/* The bufferevent keeps its input's end frozen but while it reads. */
	evbuffer_unfreeze(in, 0);
	while (have < CONN_READ_BATCH) {
		size_t want = CONN_READ_BATCH - have;
		ssize_t n;

		do
			n = recv(fd, buf, want, MSG_DONTWAIT);
		while (n < 0 && errno == EINTR);
		if (n <= 0 || evbuffer_add(in, buf, (size_t)n) < 0)
			break;
		have += (size_t)n;
		if ((size_t)n < want)
			break;
	}
	evbuffer_freeze(in, 0);
}

static void conn_event_cb(struct bufferevent *bev, short what, void *arg);

/*
 * A client that sends one command and waits for its reply (POP3 RETR one
 * at a time, an SMTP transaction without PIPELINING) on loopback or a
 * local link: the kernel's synchronous wake-up runs the client on this
 * CPU as soon as the reply is written, and by the time this thread runs
 * again the next command is usually in the socket already.  Going back
 * to the event loop for it costs an epoll_wait, libevent's ioctl
 * (FIONREAD) and its readv, and a loop turn; one recv() takes it now.
 * Only when the batch's output has all left (a client that does not read
 * is not read from) and the session still wants input; at most
 * CONN_READ_AGAIN_TURNS per callback, so that other connections wait no
 * longer than a few commands.  An empty socket costs the one recv().
 * EOF is left to the bufferevent, which reads it again; an error is
 * reported as the bufferevent would (reading stops, then the event
 * callback with errno still set), since the recv() consumed it.
 */
#define CONN_READ_AGAIN_TURNS 8

static bool conn_read_again(struct conn *c)
{
	evutil_socket_t fd = bufferevent_getfd(c->bev);
	struct evbuffer *in = bufferevent_get_input(c->bev);
	char buf[CONN_READ_SMALL];
	ssize_t n;
	bool ok;

	if (c->closing || c->tls || c->tls_pending || fd < 0 || !c->direct_out || c->write_armed ||
	    evbuffer_get_length(c->outq) > 0 || !(bufferevent_get_enabled(c->bev) & EV_READ))
		return false;
	do
		n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
	while (n < 0 && errno == EINTR);
	if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
		int err = errno;
		bufferevent_disable(c->bev, EV_READ);
		errno = err;
		conn_event_cb(c->bev, BEV_EVENT_READING | BEV_EVENT_ERROR, c);
		return false;
	}
	if (n <= 0)
		return false;
	evbuffer_unfreeze(in, 0);
	ok = evbuffer_add(in, buf, (size_t)n) == 0;
	evbuffer_freeze(in, 0);
	return ok;
}

static void conn_read_cb(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;
	unsigned turn = 0;

	conn_ref(c);
	do {
		conn_read_more(c);
		conn_batch_begin(c);
		c->ops->read(c->owner);
		conn_batch_end(c);
	} while (++turn < CONN_READ_AGAIN_TURNS && conn_read_again(c));
	conn_unref(c);
}

static void conn_starttls_now(struct conn *c)
{
	SSL *ssl = c->tls_pending;
	bool ok;

	c->tls_pending = NULL;
	ok = conn_start_tls(c, ssl);
	c->ops->starttls_done(c->owner, ok);
}

/* The output drained to the low-water mark (to nothing, on a closing or
 * armed connection, for a STARTTLS waiting on its reply). */
static void conn_write_cb(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;
	bool empty = evbuffer_get_length(bufferevent_get_output(bev)) == 0;

	conn_ref(c);
	conn_batch_begin(c);
	if (c->closing) {
		if (empty)
			conn_flush_done(c, true);
	} else if (c->tls_pending) {
		if (empty)
			conn_starttls_now(c);
	} else {
		if (c->ops->drained)
			c->ops->drained(c->owner);
		if (c->write_armed && !c->closing && evbuffer_get_length(bufferevent_get_output(c->bev)) == 0) {
			c->write_armed = false;
			bufferevent_disable(c->bev, EV_WRITE);
		}
	}
	conn_batch_end(c);
	conn_unref(c);
}

static void conn_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct conn *c = arg;
	SSL *ssl = c->tls ? bufferevent_openssl_get_ssl(bev) : NULL;

	conn_ref(c);
	conn_batch_begin(c);
	if (what & BEV_EVENT_CONNECTED) {
		log_conn_tls(c, ssl);
		if (c->ops->connected)
			c->ops->connected(c->owner);
	} else {
		if ((what & (BEV_EVENT_ERROR | BEV_EVENT_EOF)) && ssl && !SSL_is_init_finished(ssl))
			conn_log_tls_failed(c, bufferevent_get_openssl_error(bev));
		if (c->closing && (what & BEV_EVENT_TIMEOUT))
			log_conn_timeout_closing(c);
		if (c->closing)
			conn_flush_done(c, false);   /* peer gone or stalled while we flushed */
		else
			c->ops->event(c->owner, what);
		conn_cancel_tls(c);
	}
	conn_batch_end(c);
	conn_unref(c);
}

/* ---- set-up ---------------------------------------------------------------- */

/* libevent 2.1 writes at most 16 KiB per write event: output that the
 * socket did not take at once (a message RETR'd behind pipelined ones,
 * every TLS reply) went out in 16 KiB steps, one loop turn and one
 * writev each, seven for a 100 KiB message.  Let a write event take as
 * much as the session ever queues (its output high-water mark). */
#define CONN_WRITE_MAX (256 * 1024)

static void conn_setup_bev(struct conn *c)
{
	bufferevent_setcb(c->bev, conn_read_cb, conn_write_cb, conn_event_cb, c);
	bufferevent_set_max_single_write(c->bev, CONN_WRITE_MAX);
	bufferevent_setwatermark(c->bev, EV_WRITE, c->low_water, 0);
	conn_apply_timeouts(c);
}

void conn_init(struct conn *c, struct event_base *base, evutil_socket_t fd, const struct conn_ops *ops,
	       void *owner, uint64_t id, const char *ip)
{
	memset(c, 0, sizeof(*c));
	c->base = base;
	c->ops = ops;
	c->owner = owner;
	c->id = id;
	c->ip = ip;
	c->outq = evbuffer_new();
	c->accept_fd = -1;
	/* Output leaves in whole batches, so Nagle's algorithm could only
	 * hold back the tail of a long reply (a RETR larger than one
	 * segment) until the peer has acknowledged its head.  Not a TCP
	 * socket (a test's socketpair): nothing to do. */
	int one = 1;
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	c->bev = bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE);
	if (c->outq == NULL || c->bev == NULL)
		die("out of memory for a connection");
	conn_setup_bev(c);
	bufferevent_disable(c->bev, EV_READ | EV_WRITE);
}

void conn_release(struct conn *c)
{
	if (c->linger_ev)
		event_free(c->linger_ev);
	c->linger_ev = NULL;
	if (c->tls_pending)
		SSL_free(c->tls_pending);
	if (c->accept)
		tls_accept_cancel(c->accept);
	c->accept = NULL;
	if (c->accept_fd >= 0)
		evutil_closesocket(c->accept_fd);
	c->accept_fd = -1;
	if (c->bev)
		bufferevent_free(c->bev);
	if (c->outq)
		evbuffer_free(c->outq);
	c->tls_pending = NULL;
	c->bev = NULL;
	c->outq = NULL;
}

void conn_set_timeout(struct conn *c, uint64_t seconds)
{
	c->timeout = (struct timeval){ .tv_sec = (time_t)seconds };
	conn_apply_timeouts(c);
}

void conn_set_low_water(struct conn *c, size_t low)
{
	c->low_water = low;
	bufferevent_setwatermark(c->bev, EV_WRITE, low, 0);
}

void conn_start(struct conn *c)
{
	if (c->tls) {
		bufferevent_enable(c->bev, EV_READ | EV_WRITE);
		return;
	}
	c->direct_out = true;
	if (evbuffer_get_length(bufferevent_get_output(c->bev)) > 0)
		c->write_armed = true;   /* written before: drain that first */
	else
		bufferevent_disable(c->bev, EV_WRITE);
	bufferevent_enable(c->bev, EV_READ);
}

/* ---- TLS --------------------------------------------------------------------- */

/* The handshake is over: an OpenSSL bufferevent on the socket takes
 * over from the socketless one, with what was written and enabled. */
static bool conn_tls_open(struct conn *c, SSL *ssl)
{
	struct bufferevent *old = c->bev, *nb;
	short enabled = bufferevent_get_enabled(old);

	nb = bufferevent_openssl_socket_new(c->base, c->accept_fd, ssl, BUFFEREVENT_SSL_OPEN, BEV_OPT_CLOSE_ON_FREE);
	if (nb == NULL) {
		SSL_free(ssl);
		return false;
	}
	c->accept_fd = -1;   /* nb's now */
	bufferevent_openssl_set_allow_dirty_shutdown(nb, 1);
	evbuffer_add_buffer(bufferevent_get_output(nb), bufferevent_get_output(old));
	bufferevent_free(old);
	c->bev = nb;
	conn_setup_bev(c);
	bufferevent_enable(nb, enabled);
	return true;
}

static void conn_tls_accepted_cb(void *arg, SSL *ssl, unsigned long err)
{
	struct conn *c = arg;
	bool ok;

	c->accept = NULL;
	conn_ref(c);
	conn_batch_begin(c);
	ok = ssl != NULL && conn_tls_open(c, ssl);
	if (!ok) {
		conn_log_tls_failed(c, err);
		if (c->closing)
			conn_flush_done(c, false);
		else
			c->ops->event(c->owner, BEV_EVENT_READING | (err ? BEV_EVENT_ERROR : BEV_EVENT_EOF));
	} else {
		log_conn_tls(c, bufferevent_openssl_get_ssl(c->bev));
		if (c->ops->connected)
			c->ops->connected(c->owner);
		/* Closing meanwhile: what was queued for after the handshake
		 * now leaves (conn_write_cb ends it), or nothing was. */
		if (c->closing && evbuffer_get_length(bufferevent_get_output(c->bev)) == 0)
			conn_flush_done(c, true);
	}
	conn_batch_end(c);
	conn_unref(c);
}

bool conn_start_tls(struct conn *c, SSL *ssl)
{
	evutil_socket_t fd = bufferevent_getfd(c->bev);
	struct tls_accept *a;

	if (fd < 0 || (a = tls_accept_start(c->base, fd, ssl, conn_tls_accepted_cb, c)) == NULL) {
		if (fd < 0)
			SSL_free(ssl);
		return false;
	}
	bufferevent_disable(c->bev, EV_READ | EV_WRITE);
	bufferevent_setfd(c->bev, -1);   /* the socket is the handshake's now */
	c->accept = a;
	c->accept_fd = fd;
	c->tls = true;
	c->direct_out = false;
	c->write_armed = false;
	/* Output queued meanwhile waits, under the write timeout. */
	bufferevent_enable(c->bev, EV_WRITE);
	return true;
}

void conn_starttls(struct conn *c, SSL *ssl)
{
	struct evbuffer *in = bufferevent_get_input(c->bev);

	if (c->direct_out)
		evbuffer_add_buffer(bufferevent_get_output(c->bev), c->outq);
	c->direct_out = false;
	c->write_armed = false;
	/* Nothing that came in the clear with the command is acted on. */
	evbuffer_drain(in, evbuffer_get_length(in));
	bufferevent_disable(c->bev, EV_READ);
	c->tls_pending = ssl;
	bufferevent_enable(c->bev, EV_WRITE);
}
