/*
 * tls_accept.c - a server TLS handshake run on worker threads (see
 * tls_accept.h).
 *
 * While the handshake lasts the SSL reads and writes two memory BIOs.
 * The loop peeks at what the socket holds (MSG_PEEK: nothing is taken
 * yet) and hands a copy to a worker, which feeds it to the SSL and runs
 * SSL_do_handshake(); back on the loop, exactly the octets the SSL
 * consumed are taken from the socket and what it wrote is sent.  Without
 * read_ahead OpenSSL reads one record at a time, so once the handshake is
 * over the octets that follow the client's Finished (a request sent at
 * once, TLS 1.3 allows it) were never consumed: they are still in the
 * socket for the bufferevent that takes over, which is why the loop peeks
 * instead of reading.
 *
 * The SSL is used by one thread at a time: by the job that holds it
 * (busy), or by the loop when none does; the pool's queue orders the
 * two.  A cancel while a job runs only marks; the job's return frees.
 */
#include "core/tls_accept.h"
#include "core/tls.h"
#include "core/util.h"
#include "core/workers.h"

#include <errno.h>
#include <event2/event.h>
#include <openssl/err.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

/* One flight of a client is far below this (a ClientHello with a
 * post-quantum key share is ~1.5 KiB); a larger flight takes turns. */
#define TLS_ACCEPT_PEEK (32 * 1024)

enum tls_accept_step {
	TLS_ACCEPT_MORE,          /* the SSL wants more input */
	TLS_ACCEPT_DONE,          /* the handshake is over */
	TLS_ACCEPT_FAILED,
};

struct tls_accept {
	evutil_socket_t fd;
	SSL *ssl;
	BIO *rbio, *wbio;         /* the SSL's memory BIOs (it owns them) */
	struct workers *pool;     /* NULL: the steps run on the loop */
	struct event *rev, *wev;
	tls_accept_cb cb;
	void *arg;
	bool busy;                /* a job holds the SSL */
	bool cancelled;
	/* The job: what it is given, what it found. */
	unsigned char *in;
	size_t in_len;
	size_t consumed;
	enum tls_accept_step step;
	unsigned long err;
	unsigned char *out;       /* to send before the next step */
	size_t out_len, out_off;
};

static void tls_accept_free(struct tls_accept *a)
{
	if (a->rev)
		event_free(a->rev);
	if (a->wev)
		event_free(a->wev);
	SSL_free(a->ssl);
	free(a->in);
	free(a->out);
	free(a);
}

/* The end: cb gets the SSL (on a socket BIO now) or NULL. */
static void tls_accept_end(struct tls_accept *a, bool ok)
{
	tls_accept_cb cb = a->cb;
	void *arg = a->arg;
	unsigned long err = a->err;
	SSL *ssl = NULL;

	if (ok) {
		BIO *sock = BIO_new_socket(a->fd, BIO_NOCLOSE);
		if (sock != NULL) {
			SSL_set_bio(a->ssl, sock, sock);   /* frees the memory BIOs */
			ssl = a->ssl;
			a->ssl = NULL;
		}
	}
	tls_accept_free(a);
	cb(arg, ssl, err);
}

/* ---- the worker's part ---------------------------------------------------- */

static void tls_accept_work(void *arg)
{
	struct tls_accept *a = arg;
	size_t left;
	int r;

	/* (cancelled is the loop's to read: a cancelled job runs anyway,
	 * its done() frees.) */
	ERR_clear_error();
	if (BIO_write(a->rbio, a->in, (int)a->in_len) != (int)a->in_len) {
		a->step = TLS_ACCEPT_FAILED;
		a->err = ERR_get_error();
		ERR_clear_error();
		return;
	}
	r = SSL_do_handshake(a->ssl);
	if (r == 1)
		a->step = TLS_ACCEPT_DONE;
	else if (SSL_get_error(a->ssl, r) == SSL_ERROR_WANT_READ)
		a->step = TLS_ACCEPT_MORE;
	else
		a->step = TLS_ACCEPT_FAILED;
	/* OpenSSL's error queue belongs to this thread: take the first. */
	a->err = a->step == TLS_ACCEPT_FAILED ? ERR_get_error() : 0;
	ERR_clear_error();
	left = (size_t)BIO_ctrl_pending(a->rbio);
	a->consumed = a->in_len - (left < a->in_len ? left : a->in_len);
	/* What to send: the next flight, or the alert of a failure. */
	a->out_len = (size_t)BIO_ctrl_pending(a->wbio);
	a->out_off = 0;
	if (a->out_len) {
		a->out = xmalloc(a->out_len);
		if (BIO_read(a->wbio, a->out, (int)a->out_len) != (int)a->out_len)
			a->out_len = 0;
	}
}

/* ---- the loop's part ---------------------------------------------------------- */

static void tls_accept_next(struct tls_accept *a);

/* Send what the step wrote; false when the socket failed. */
static bool tls_accept_send(struct tls_accept *a)
{
	while (a->out_off < a->out_len) {
		ssize_t n = send(a->fd, a->out + a->out_off, a->out_len - a->out_off, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			event_add(a->wev, NULL);
			return true;
		}
		if (n <= 0)
			return false;
		a->out_off += (size_t)n;
	}
	free(a->out);
	a->out = NULL;
	a->out_len = a->out_off = 0;
	return true;
}

/* Take the octets the step consumed out of the socket, where they still
 * are (they were only peeked at). */
static bool tls_accept_drop_consumed(struct tls_accept *a)
{
	char buf[4096];
	size_t left = a->consumed;

	while (left > 0) {
		ssize_t n = recv(a->fd, buf, left < sizeof(buf) ? left : sizeof(buf), MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return false;
		left -= (size_t)n;
	}
	return true;
}

static void tls_accept_done(void *arg)
{
	struct tls_accept *a = arg;

	a->busy = false;
	free(a->in);
	a->in = NULL;
	if (a->cancelled) {
		tls_accept_free(a);
		return;
	}
	if (a->step == TLS_ACCEPT_FAILED) {
		/* The alert, if the socket takes it now; then the end. */
		(void)send(a->fd, a->out, a->out_len, MSG_NOSIGNAL | MSG_DONTWAIT);
		tls_accept_end(a, false);
		return;
	}
	if (!tls_accept_drop_consumed(a) || !tls_accept_send(a)) {
		tls_accept_end(a, false);
		return;
	}
	if (a->out == NULL)
		tls_accept_next(a);
	/* else: the write event goes on once the socket takes more */
}

/* The last output has left: the handshake is over, or it waits for the
 * peer. */
static void tls_accept_next(struct tls_accept *a)
{
	if (a->step == TLS_ACCEPT_DONE)
		tls_accept_end(a, true);
	else
		event_add(a->rev, NULL);
}

static void tls_accept_read_cb(evutil_socket_t fd, short what, void *arg)
{
	struct tls_accept *a = arg;
	unsigned char *buf = xmalloc(TLS_ACCEPT_PEEK);
	ssize_t n;

	do
		n = recv(fd, buf, TLS_ACCEPT_PEEK, MSG_PEEK | MSG_DONTWAIT);
	while (n < 0 && errno == EINTR);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
		free(buf);
		event_add(a->rev, NULL);
		return;
	}
	if (n <= 0) {   /* the peer closed, or the socket failed */
		free(buf);
		a->err = 0;
		tls_accept_end(a, false);
		return;
	}
	a->in = buf;
	a->in_len = (size_t)n;
	a->busy = true;
	if (a->pool) {
		workers_submit(a->pool, tls_accept_work, tls_accept_done, a);
	} else {
		tls_accept_work(a);
		tls_accept_done(a);
	}
}

static void tls_accept_write_cb(evutil_socket_t fd, short what, void *arg)
{
	struct tls_accept *a = arg;

	if (!tls_accept_send(a)) {
		tls_accept_end(a, false);
		return;
	}
	if (a->out == NULL)
		tls_accept_next(a);
}

struct tls_accept *tls_accept_start(struct event_base *base, evutil_socket_t fd, SSL *ssl, tls_accept_cb cb,
				    void *arg)
{
	struct tls_accept *a = xcalloc(1, sizeof(*a));

	a->fd = fd;
	a->ssl = ssl;
	a->cb = cb;
	a->arg = arg;
	a->pool = tls_ssl_pool(ssl);
	a->rbio = BIO_new(BIO_s_mem());
	a->wbio = BIO_new(BIO_s_mem());
	a->rev = event_new(base, fd, EV_READ, tls_accept_read_cb, a);
	a->wev = event_new(base, fd, EV_WRITE, tls_accept_write_cb, a);
	if (a->rbio == NULL || a->wbio == NULL || a->rev == NULL || a->wev == NULL) {
		BIO_free(a->rbio);
		BIO_free(a->wbio);
		ERR_clear_error();
		tls_accept_free(a);
		return NULL;
	}
	SSL_set_bio(ssl, a->rbio, a->wbio);
	/* Records one at a time (the default, said here because the octets
	 * after the handshake must stay in the socket). */
	SSL_set_read_ahead(ssl, 0);
	SSL_set_accept_state(ssl);
	event_add(a->rev, NULL);
	return a;
}

void tls_accept_cancel(struct tls_accept *a)
{
	if (a->busy) {
		a->cancelled = true;
		event_del(a->rev);
		event_del(a->wev);
		return;
	}
	tls_accept_free(a);
}
