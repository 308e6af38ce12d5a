/*
 * tls_accept.h - the server side of a TLS handshake (RFC 8446 4, RFC
 * 5246 7.3) with its CPU on the TLS context's worker threads, so that the
 * event loop only moves the handshake's octets (DESIGN.md invariant 2: a
 * full handshake costs ~0.5 ms of CPU, most of it OpenSSL's key exchange,
 * signature and transcript work, and twenty at once held every other
 * session for tens of milliseconds).
 *
 * When it ends well the SSL reads and writes the socket itself (a socket
 * BIO on fd), everything the handshake had to send has been written, and
 * whatever the peer sent after its Finished is still in the socket: the
 * caller puts an OpenSSL bufferevent in state BUFFEREVENT_SSL_OPEN on it.
 */
#ifndef TERN_TLS_ACCEPT_H
#define TERN_TLS_ACCEPT_H

#include <event2/util.h>
#include <openssl/ssl.h>
#include <stdbool.h>

struct event_base;
struct tls_accept;

/* ssl: the finished session (now the caller's); NULL when the handshake
 * failed (err: the first OpenSSL error, 0 when the peer closed or the
 * socket failed).  The tls_accept is gone when this is called. */
typedef void (*tls_accept_cb)(void *arg, SSL *ssl, unsigned long err);

/* Start accepting on fd (which stays the caller's: tls_accept never
 * closes it) with ssl (from tls_ctx_new_ssl, taken over).  NULL (ssl
 * freed) when it cannot start. */
struct tls_accept *tls_accept_start(struct event_base *base, evutil_socket_t fd, SSL *ssl, tls_accept_cb cb,
				    void *arg);
/* Give up: cb is not called; the SSL goes now, or when the worker that
 * holds it is done.  The fd is not touched again. */
void tls_accept_cancel(struct tls_accept *a);

#endif
