/*
 * web_server.c - the HTTP/1.1 connections of [http] and [https] (RFC 9112)
 * on bufferevents, TLS through bufferevent_openssl on tern's TLS context once
 * the handshake, run on worker threads (core/tls_accept.c), is over.
 *
 * Why not evhttp: it answers an oversized head with 413 instead of 431
 * (RFC 6585 5), drops a slow client without the 408 of RFC 9110 15.5.9,
 * and closes at once after an error, so a client still sending its body
 * gets a reset that can eat the reply (RFC 9112 9.6).  The part tern
 * needs is small: a head of at most 8 KiB, a body of at most 64 KiB, a
 * deadline for both, and persistent connections (RFC 9112 9.3): up to
 * WEB_KEEPALIVE_REQUESTS requests each, closed after WEB_IDLE_S without
 * one.  A poller (Prometheus keeps its connection) then costs one TLS
 * handshake per connection, not per request (its CPU on the TLS workers).
 *
 * A connection: READ (head, then body) -> WRITE (reply queued; once it
 * has drained, back to READ for the next request, or freed when either
 * side said close) or LINGER (after an error reply while the client may
 * still send: our side is shut, its input is read and dropped until EOF
 * or a short timer, then the connection is freed).  Pipelined requests
 * wait in the input while a reply is written (reading stops at the
 * watermark) and are answered in order.
 */
#include "web/web.h"
#include "core/config.h"
#include "core/listener.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/server.h"
#include "core/tls.h"
#include "core/tls_accept.h"
#include "core/util.h"

#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define WEB_REQUEST_TIMEOUT_S 10   /* head and body must arrive within it */
#define WEB_WRITE_TIMEOUT_S   30
#define WEB_LINGER_S          2
#define WEB_IDLE_S            5    /* a kept connection without a request */
#define WEB_KEEPALIVE_REQUESTS 100 /* then "Connection: close" */

enum web_state { WEB_READ, WEB_WRITE, WEB_LINGER };

struct web_conn {
	struct session_link link;      /* first: shutdown gets the conn */
	struct tern *t;
	enum service svc;
	uint64_t id;
	char ip[INET6_ADDRSTRLEN];
	struct sockaddr_storage peer;
	struct bufferevent *bev;
	struct event *timer;
	enum web_state state;
	bool have_head;
	bool tls_done;                 /* [https]: the handshake is over */
	/* [https]: the handshake on worker threads (core/tls_accept.c) and
	 * its socket; bev has none until it is done. */
	struct tls_accept *accept;
	evutil_socket_t accept_fd;
	bool peer_eof;                 /* LINGER: the client is done sending */
	bool idle;                     /* READ, between requests: nothing arrived yet */
	bool keep;                     /* WRITE: the next request may follow */
	unsigned nreq;                 /* requests answered on this connection */
	size_t head_len;               /* bytes of the head in the input */
	struct http_head head;
	char *head_buf;
};

/* ---- logging: one function per event ------------------------------------ */

static void log_web_request(const struct web_conn *c, int status)
{
	char m[40], h[120], p[240];
	if (!c->have_head) {
		log_event("event=web_request session=%016" PRIx64 " service=%s ip=%s status=%d", c->id,
			  service_name(c->svc), c->ip, status);
		return;
	}
	log_event("event=web_request session=%016" PRIx64 " service=%s ip=%s method=%s host=%s path=%s status=%d",
		  c->id, service_name(c->svc), c->ip, log_quote(m, sizeof(m), c->head.method.p, c->head.method.n),
		  log_quote(h, sizeof(h), c->head.host.p, c->head.host.n),
		  log_quote(p, sizeof(p), c->head.target.p, c->head.target.n), status);
}

static void log_web_acme_validation(const struct web_conn *c)
{
	log_event("event=web_acme_validation session=%016" PRIx64 " ip=%s", c->id, c->ip);
}

static void log_web_tls_failed(const struct web_conn *c, unsigned long err, const char *what)
{
	char e[200];
	snprintf(e, sizeof(e), "%s", what);
	metrics_inc(METRIC_TLS_FAILED);
	if (err)
		ERR_error_string_n(err, e, sizeof(e));
	log_event("event=web_tls_failed session=%016" PRIx64 " ip=%s error=\"%s\"", c->id, c->ip, e);
}

/* ---- connection life ---------------------------------------------------------- */

static void web_conn_free(struct web_conn *c)
{
	session_list_del(c->t, &c->link);
	if (c->timer)
		event_free(c->timer);
	if (c->accept)
		tls_accept_cancel(c->accept);
	if (c->accept_fd >= 0)
		evutil_closesocket(c->accept_fd);
	if (c->bev)
		bufferevent_free(c->bev);
	free(c->head_buf);
	free(c);
}

static void web_arm_timer(struct web_conn *c, int seconds)
{
	struct timeval tv = { seconds, 0 };
	event_add(c->timer, &tv);
}

static const char *status_text(int status)
{
	switch (status) {
	case 200: return "OK";
	case 301: return "Moved Permanently";
	case 400: return "Bad Request";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 408: return "Request Timeout";
	case 411: return "Length Required";
	case 413: return "Content Too Large";
	case 421: return "Misdirected Request";
	case 431: return "Request Header Fields Too Large";
	case 501: return "Not Implemented";
	case 503: return "Service Unavailable";
	case 505: return "HTTP Version Not Supported";
	default: return "Error";
	}
}

/* Queue the reply; a body-less error gets its status text as the body.
 * linger: the client may still be sending (RFC 9112 9.6). */
static void web_send(struct web_conn *c, struct web_reply *rep, bool linger)
{
	struct evbuffer *out = bufferevent_get_output(c->bev);
	char date[64];
	time_t now = time(NULL);
	struct tm tm;
	bool head_only = c->have_head && http_str_eq(c->head.method, "HEAD");

	if (rep->body == NULL) {
		rep->body = evbuffer_new();
		if (rep->status >= 300)
			evbuffer_add_printf(rep->body, "%d %s\r\n", rep->status, status_text(rep->status));
		if (rep->content_type == NULL)
			rep->content_type = "text/plain; charset=utf-8";
	}
	/* Persistent unless the client or an error says otherwise: a 400
	 * leaves the framing in doubt, the others have lingered already. */
	c->keep = !linger && c->have_head && rep->status != 400 && !c->head.conn_close &&
		  (c->head.minor >= 1 || c->head.conn_keep_alive) && ++c->nreq < WEB_KEEPALIVE_REQUESTS;
	gmtime_r(&now, &tm);
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S GMT", &tm);
	evbuffer_add_printf(out, "HTTP/1.1 %d %s\r\nDate: %s\r\nServer: tern\r\nConnection: %s\r\n",
			    rep->status, status_text(rep->status), date, c->keep ? "keep-alive" : "close");
	if (rep->content_type)
		evbuffer_add_printf(out, "Content-Type: %s\r\n", rep->content_type);
	if (rep->location)
		evbuffer_add_printf(out, "Location: %s\r\n", rep->location);
	if (rep->allow)
		evbuffer_add_printf(out, "Allow: %s\r\n", rep->allow);
	evbuffer_add_printf(out, "Content-Length: %zu\r\n\r\n", evbuffer_get_length(rep->body));
	if (!head_only)
		evbuffer_add_buffer(out, rep->body);
	evbuffer_free(rep->body);
	free(rep->location);
	log_web_request(c, rep->status);
	c->state = linger ? WEB_LINGER : WEB_WRITE;
	if (!linger)
		bufferevent_disable(c->bev, EV_READ);
	bufferevent_enable(c->bev, EV_WRITE);
	web_arm_timer(c, WEB_WRITE_TIMEOUT_S);
}

static void web_send_error(struct web_conn *c, int status, bool linger)
{
	struct web_reply rep = { .status = status };
	web_send(c, &rep, linger);
}

/* Host without port, lower-cased, final dot dropped; false if it is not a
 * host name or an address literal (it goes into a Location header). */
static bool web_host(struct http_str h, char *out, size_t cap)
{
	size_t n = h.n, o = 0;
	const char *colon;
	if (n && h.p[0] == '[') {
		const char *end = memchr(h.p, ']', n);
		if (end == NULL)
			return false;
		n = (size_t)(end - h.p) + 1;
	} else if ((colon = memchr(h.p, ':', n)) != NULL) {
		n = (size_t)(colon - h.p);
	}
	if (h.n > n && (h.p[n] != ':' || h.n == n + 1))
		return false;
	for (size_t i = n + 1; i < h.n; i++)
		if (h.p[i] < '0' || h.p[i] > '9')
			return false;
	if (n && h.p[n - 1] == '.')
		n--;
	if (n == 0 || n >= cap)
		return false;
	for (size_t i = 0; i < n; i++) {
		char ch = ascii_lower(h.p[i]);
		if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-' || ch == '.' ||
		      ch == '[' || ch == ']' || ch == ':'))
			return false;
		out[o++] = ch;
	}
	out[o] = '\0';
	return true;
}

static void web_dispatch(struct web_conn *c, const char *body, size_t body_len)
{
	char host[256];
	struct web_reply rep = { 0 };

	if (!web_host(c->head.host, host, sizeof(host)) && c->head.host.n) {
		web_send_error(c, 400, false);
		return;
	}
	/* HTTP/1.0 may come without Host (RFC 9112 3.2): it asks the
	 * server by its own name. */
	if (c->head.host.n == 0)
		snprintf(host, sizeof(host), "%s", c->t->cfg->hostname);
	struct web_request req = {
		.t = c->t, .svc = c->svc, .peer = (const struct sockaddr *)&c->peer, .head = &c->head,
		.host = host, .body = body, .body_len = body_len,
	};
	web_route(&req, &rep);
	web_send(c, &rep, false);
}

/* The head has arrived (c->head_len bytes): parse and check the framing. */
static void web_got_head(struct web_conn *c, struct evbuffer *in)
{
	int rc;
	c->head_buf = xmalloc(c->head_len);
	evbuffer_remove(in, c->head_buf, c->head_len);
	rc = http_parse_head(c->head_buf, c->head_len, &c->head);
	if (rc != 0) {
		web_send_error(c, rc, true);
		return;
	}
	c->have_head = true;
	if (c->head.has_transfer_encoding) {
		/* No route takes a chunked body: Content-Length only. */
		web_send_error(c, 411, true);
		return;
	}
	if (c->head.has_length && c->head.content_length > WEB_MAX_BODY)
		web_send_error(c, 413, true);
}

/* The length of the head (through CRLF CRLF) within the first
 * WEB_MAX_HEAD bytes of in; -1: not there yet; -2: a bare CR or LF, which
 * would otherwise only be noticed at the limit. */
static long web_find_head_end(struct evbuffer *in)
{
	size_t n = evbuffer_get_length(in);
	if (n > WEB_MAX_HEAD)
		n = WEB_MAX_HEAD;
	const unsigned char *b = evbuffer_pullup(in, (ev_ssize_t)n);
	for (size_t i = 0; i < n; i++) {
		if (b[i] == '\n' && (i == 0 || b[i - 1] != '\r'))
			return -2;
		if (b[i] == '\r' && i + 1 < n && b[i + 1] != '\n')
			return -2;
		if (b[i] == '\n' && i >= 3 && b[i - 2] == '\n')
			return (long)i + 1;
	}
	return -1;
}

static void web_read_cb(struct bufferevent *bev, void *arg)
{
	struct web_conn *c = arg;
	struct evbuffer *in = bufferevent_get_input(bev);

	if (c->state == WEB_LINGER) {
		evbuffer_drain(in, evbuffer_get_length(in));
		return;
	}
	if (c->state != WEB_READ)
		return;
	if (c->idle && evbuffer_get_length(in) > 0) {
		/* The next request has begun: it has the full time again. */
		c->idle = false;
		web_arm_timer(c, WEB_REQUEST_TIMEOUT_S);
	}
	if (c->head_buf == NULL) {
		/* RFC 9112 2.2: empty lines before the request line are skipped. */
		while (evbuffer_get_length(in) >= 2) {
			char two[2];
			evbuffer_copyout(in, two, 2);
			if (two[0] != '\r' || two[1] != '\n')
				break;
			evbuffer_drain(in, 2);
		}
		long end = web_find_head_end(in);
		if (end == -2) {
			web_send_error(c, 400, true);   /* a bare CR or LF */
			return;
		}
		if (end < 0) {
			if (evbuffer_get_length(in) >= WEB_MAX_HEAD)
				web_send_error(c, 431, true);
			return;
		}
		c->head_len = (size_t)end;
		web_got_head(c, in);
		if (c->state != WEB_READ)
			return;
	}
	size_t want = c->head.has_length ? (size_t)c->head.content_length : 0;
	if (evbuffer_get_length(in) < want)
		return;
	const char *body = want ? (const char *)evbuffer_pullup(in, (ev_ssize_t)want) : "";
	event_del(c->timer);
	web_dispatch(c, body, want);      /* the reply holds copies: the body can go */
	evbuffer_drain(in, want);
}

/* The reply is out and the connection stays: ready for the next
 * request, which may be in the input already (pipelined). */
static void web_next_request(struct web_conn *c)
{
	free(c->head_buf);
	c->head_buf = NULL;
	c->have_head = false;
	c->head_len = 0;
	memset(&c->head, 0, sizeof(c->head));
	c->keep = false;
	c->state = WEB_READ;
	c->idle = true;
	web_arm_timer(c, WEB_IDLE_S);
	bufferevent_disable(c->bev, EV_WRITE);
	bufferevent_enable(c->bev, EV_READ);
	if (evbuffer_get_length(bufferevent_get_input(c->bev)) > 0)
		web_read_cb(c->bev, c);
}

static void web_write_cb(struct bufferevent *bev, void *arg)
{
	struct web_conn *c = arg;
	SSL *ssl;

	if (evbuffer_get_length(bufferevent_get_output(bev)) != 0)
		return;
	if (c->state == WEB_WRITE && c->keep) {
		web_next_request(c);
		return;
	}
	if (c->state == WEB_WRITE) {
		if (c->svc == SERVICE_HTTPS && (ssl = bufferevent_openssl_get_ssl(bev)) != NULL)
			SSL_shutdown(ssl);
		web_conn_free(c);
	} else if (c->state == WEB_LINGER) {
		/* Our reply is out: half-close and wait for the client's EOF. */
		if (c->svc == SERVICE_HTTPS && (ssl = bufferevent_openssl_get_ssl(bev)) != NULL)
			SSL_shutdown(ssl);
		shutdown(bufferevent_getfd(bev), SHUT_WR);
		if (c->peer_eof) {
			web_conn_free(c);
			return;
		}
		bufferevent_disable(bev, EV_WRITE);
		web_arm_timer(c, WEB_LINGER_S);
	}
}

static void web_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct web_conn *c = arg;
	if (c->state == WEB_LINGER && (what & BEV_EVENT_EOF) &&
	    evbuffer_get_length(bufferevent_get_output(bev)) != 0) {
		/* The client has sent all and half-closed before our reply
		 * went out: finish writing it (web_write_cb frees). */
		c->peer_eof = true;
		bufferevent_disable(bev, EV_READ);
		return;
	}
	/* An EOF too: with SSL_OP_IGNORE_UNEXPECTED_EOF, a client that hangs up
	 * mid-handshake is an EOF, not an error. */
	if (c->svc == SERVICE_HTTPS && !c->tls_done)
		log_web_tls_failed(c, bufferevent_get_openssl_error(bev), "connection closed");
	web_conn_free(c);
}

/* The handshake is over: an OpenSSL bufferevent on the socket takes over
 * from the socketless one, with its callbacks, marks and what it had
 * enabled (reading, and the request timer runs meanwhile). */
static void web_tls_accepted_cb(void *arg, SSL *ssl, unsigned long err)
{
	struct web_conn *c = arg;
	struct bufferevent *nb = NULL;

	c->accept = NULL;
	if (ssl)
		nb = bufferevent_openssl_socket_new(c->t->base, c->accept_fd, ssl, BUFFEREVENT_SSL_OPEN,
						    BEV_OPT_CLOSE_ON_FREE);
	if (nb == NULL) {
		if (ssl)
			SSL_free(ssl);
		log_web_tls_failed(c, err, "connection closed");
		web_conn_free(c);
		return;
	}
	c->accept_fd = -1;   /* nb's now */
	bufferevent_openssl_set_allow_dirty_shutdown(nb, 1);
	short enabled = bufferevent_get_enabled(c->bev);
	bufferevent_free(c->bev);
	c->bev = nb;
	bufferevent_setcb(nb, web_read_cb, web_write_cb, web_event_cb, c);
	bufferevent_setwatermark(nb, EV_READ, 0, WEB_MAX_HEAD + WEB_MAX_BODY + 1);
	if (tls_is_acme_validation(ssl)) {
		/* RFC 8737 3: the handshake was all the CA wanted. */
		log_web_acme_validation(c);
		SSL_shutdown(ssl);
		web_conn_free(c);
		return;
	}
	metrics_inc(METRIC_TLS_OK);
	c->tls_done = true;
	bufferevent_enable(nb, enabled);
}

static void web_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct web_conn *c = arg;
	if (c->state == WEB_READ && c->idle) {
		/* A kept connection nobody used: closed without a word (RFC
		 * 9112 9.5; a 408 here would read as the answer to a request
		 * the client may be sending just now). */
		web_conn_free(c);
		return;
	}
	if (c->state == WEB_READ && (c->svc != SERVICE_HTTPS || c->tls_done)) {
		/* A client too slow to send its request (RFC 9110 15.5.9). */
		web_send_error(c, 408, true);
		return;
	}
	/* Or too slow to finish its TLS handshake: nothing can be said. */
	if (c->state == WEB_READ)
		log_web_tls_failed(c, 0, "handshake timeout");
	web_conn_free(c);
}

static void web_shutdown_cb(struct session_link *l)
{
	struct web_conn *c = (struct web_conn *)l;
	if (c->state == WEB_READ)
		web_conn_free(c);
	/* else: the reply is on its way and the timers bound it. */
}

void web_accept(struct tern *t, evutil_socket_t fd, const struct sockaddr *sa, socklen_t len, enum service svc)
{
	struct web_conn *c;
	struct bufferevent *bev;

	if (!tern_fd_room(t, fd) || (svc == SERVICE_HTTPS && t->tls == NULL)) {
		close(fd);
		return;
	}
	SSL *ssl = NULL;
	if (svc == SERVICE_HTTPS) {
		ssl = tls_ctx_new_ssl(t->tls);
		if (ssl == NULL) {
			close(fd);
			return;
		}
		/* A client may close without close_notify once it has read the
		 * reply, even while we linger: every message here has its
		 * length, so such an EOF truncates nothing (RFC 9112 9.8), and
		 * OpenSSL must not answer it with a decode_error alert that
		 * the client reads as a failure after a complete reply. */
		SSL_set_options(ssl, SSL_OP_IGNORE_UNEXPECTED_EOF);
	}
	/* HTTPS: no socket until the handshake is done (web_tls_accepted_cb). */
	bev = bufferevent_socket_new(t->base, ssl ? -1 : fd, BEV_OPT_CLOSE_ON_FREE);
	if (bev == NULL) {
		SSL_free(ssl);
		close(fd);
		return;
	}
	metrics_connection(svc);
	c = xcalloc(1, sizeof(*c));
	c->t = t;
	c->svc = svc;
	c->id = tern_session_id(t);
	c->bev = bev;
	c->accept_fd = -1;
	c->link.shutdown = web_shutdown_cb;
	if (len > sizeof(c->peer))
		len = sizeof(c->peer);
	memcpy(&c->peer, sa, len);
	listener_format_ip(sa, c->ip, sizeof(c->ip));
	c->timer = evtimer_new(t->base, web_timer_cb, c);
	session_list_add(t, &c->link);
	bufferevent_setcb(bev, web_read_cb, web_write_cb, web_event_cb, c);
	/* Reading stops at the head limit plus a body: more is never needed. */
	bufferevent_setwatermark(bev, EV_READ, 0, WEB_MAX_HEAD + WEB_MAX_BODY + 1);
	bufferevent_enable(bev, EV_READ);
	web_arm_timer(c, WEB_REQUEST_TIMEOUT_S);
	if (ssl) {
		c->accept = tls_accept_start(t->base, fd, ssl, web_tls_accepted_cb, c);
		if (c->accept == NULL) {
			close(fd);
			web_conn_free(c);
			return;
		}
		c->accept_fd = fd;
	}
}
