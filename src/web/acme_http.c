/*
 * acme_http.c - the ACME client's HTTPS requests (see acme_http.h).
 *
 * A request: parse the URL -> resolve the host (c-ares, unless it is an
 * address) -> one evhttp connection over a bufferevent_openssl to the
 * first address, certificate and name verified -> the reply handed to
 * the caller -> the connection freed on the next loop turn (evhttp may
 * not be freed inside its own callback).
 */
#include "web/acme_http.h"
#include "core/dns.h"
#include "core/util.h"

#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct acme_http {
	struct event_base *base;
	struct dns *dns;
	SSL_CTX *ctx;
	struct event *kick;             /* an address needs no DNS: go on next turn */
	struct event *reap;             /* frees dead */
	struct evhttp_connection *dead; /* the last request's, once its callback is over */
	/* The one request under way. */
	bool busy;
	uint64_t gen;                   /* counts requests */
	uint64_t dns_id;
	struct evhttp_connection *evcon;
	struct evhttp_request *req;
	char *method, *host, *path, *ctype, *body;
	size_t body_len;
	int port;
	bool host_is_ip;
	acme_http_cb cb;
	void *arg;
};

static void acme_http_clear(struct acme_http *h)
{
	free(h->method);
	free(h->host);
	free(h->path);
	free(h->ctype);
	free(h->body);
	h->method = h->host = h->path = h->ctype = h->body = NULL;
	h->busy = false;
	h->dns_id = 0;
	h->req = NULL;
}

static void acme_http_reap_cb(evutil_socket_t fd, short what, void *arg)
{
	struct acme_http *h = arg;
	if (h->dead)
		evhttp_connection_free(h->dead);
	h->dead = NULL;
}

/* Hand the reply over and forget the request; the callback may start the
 * next one. */
static void acme_http_finish(struct acme_http *h, const struct acme_http_reply *r)
{
	acme_http_cb cb = h->cb;
	void *arg = h->arg;
	if (h->evcon) {
		struct timeval now = { 0, 0 };
		acme_http_reap_cb(-1, 0, h);
		h->dead = h->evcon;
		h->evcon = NULL;
		evtimer_add(h->reap, &now);
	}
	acme_http_clear(h);
	cb(r, arg);
}

static void acme_http_fail(struct acme_http *h, const char *error)
{
	struct acme_http_reply r = { .status = 0, .error = error, .body = "" };
	acme_http_finish(h, &r);
}

static void acme_http_done_cb(struct evhttp_request *req, void *arg)
{
	struct acme_http *h = arg;
	struct acme_http_reply r = { 0 };
	char err[160];

	if (req == NULL || evhttp_request_get_response_code(req) == 0) {
		unsigned long e = ERR_get_error();
		struct bufferevent *bev = h->evcon ? evhttp_connection_get_bufferevent(h->evcon) : NULL;
		unsigned long se = bev ? bufferevent_get_openssl_error(bev) : 0;
		snprintf(err, sizeof(err), "no answer from %s", h->host);
		if (se || e)
			ERR_error_string_n(se ? se : e, err, sizeof(err));
		ERR_clear_error();
		h->req = NULL;   /* evhttp frees it */
		acme_http_fail(h, err);
		return;
	}
	struct evkeyvalq *hd = evhttp_request_get_input_headers(req);
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	size_t len = evbuffer_get_length(in);
	char *body = xmalloc(len + 1);
	evbuffer_remove(in, body, len);
	body[len] = '\0';
	r.status = evhttp_request_get_response_code(req);
	r.nonce = evhttp_find_header(hd, "Replay-Nonce");
	r.location = evhttp_find_header(hd, "Location");
	r.retry_after = evhttp_find_header(hd, "Retry-After");
	r.content_type = evhttp_find_header(hd, "Content-Type");
	r.body = body;
	r.len = len;
	h->req = NULL;
	acme_http_finish(h, &r);
	free(body);
}

/* The TLS side of one connection: SNI and the name to verify. */
static SSL *acme_http_ssl(struct acme_http *h)
{
	SSL *ssl = SSL_new(h->ctx);
	if (ssl == NULL)
		return NULL;
	if (h->host_is_ip) {
		X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), h->host);
	} else {
		SSL_set_tlsext_host_name(ssl, h->host);
		SSL_set1_host(ssl, h->host);
	}
	return ssl;
}

static void acme_http_connect(struct acme_http *h, const char *ip)
{
	SSL *ssl = acme_http_ssl(h);
	struct bufferevent *bev;
	struct evkeyvalq *out;
	char hostport[300];

	if (ssl == NULL) {
		acme_http_fail(h, "cannot make a TLS client");
		return;
	}
	bev = bufferevent_openssl_socket_new(h->base, -1, ssl, BUFFEREVENT_SSL_CONNECTING,
					     BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
	if (bev == NULL) {
		SSL_free(ssl);
		acme_http_fail(h, "cannot make a TLS connection");
		return;
	}
	bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
	h->evcon = evhttp_connection_base_bufferevent_new(h->base, NULL, bev, ip, (ev_uint16_t)h->port);
	if (h->evcon == NULL) {
		bufferevent_free(bev);
		acme_http_fail(h, "cannot make an HTTP connection");
		return;
	}
	evhttp_connection_set_timeout(h->evcon, ACME_HTTP_TIMEOUT_S);
	evhttp_connection_set_retries(h->evcon, 0);
	evhttp_connection_set_max_body_size(h->evcon, ACME_HTTP_BODY_MAX);
	evhttp_connection_set_max_headers_size(h->evcon, ACME_HTTP_HEADER_MAX);
	h->req = evhttp_request_new(acme_http_done_cb, h);
	out = evhttp_request_get_output_headers(h->req);
	if (h->port == 443)
		snprintf(hostport, sizeof(hostport), "%s", h->host);
	else
		snprintf(hostport, sizeof(hostport), h->host_is_ip && strchr(h->host, ':') ? "[%s]:%d" : "%s:%d",
			 h->host, h->port);
	evhttp_add_header(out, "Host", hostport);
	evhttp_add_header(out, "User-Agent", "tern");
	evhttp_add_header(out, "Accept-Language", "en");
	evhttp_add_header(out, "Connection", "close");
	if (h->ctype) {
		evhttp_add_header(out, "Content-Type", h->ctype);
		evbuffer_add(evhttp_request_get_output_buffer(h->req), h->body, h->body_len);
	}
	enum evhttp_cmd_type cmd = strcmp(h->method, "POST") == 0 ? EVHTTP_REQ_POST :
		strcmp(h->method, "HEAD") == 0 ? EVHTTP_REQ_HEAD : EVHTTP_REQ_GET;
	uint64_t gen = h->gen;
	if (evhttp_make_request(h->evcon, h->req, cmd, h->path) != 0) {
		/* evhttp freed the request, and may have called back already
		 * (a connect that failed at once): then it is over. */
		if (h->busy && h->gen == gen) {
			h->req = NULL;
			acme_http_fail(h, "cannot send the request");
		}
	}
}

static void acme_http_dns_cb(const struct dns_mx_result *r, void *arg)
{
	struct acme_http *h = arg;
	char ip[INET6_ADDRSTRLEN], err[200];
	h->dns_id = 0;
	if (r->status != DNS_OK || r->nhosts == 0 || r->hosts[0].naddrs == 0) {
		snprintf(err, sizeof(err), "cannot resolve %s: %s", h->host, dns_status_str(r->status));
		acme_http_fail(h, err);
		return;
	}
	const struct sockaddr_storage *sa = &r->hosts[0].addrs[0];
	if (sa->ss_family == AF_INET6)
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, ip, sizeof(ip));
	else
		inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, ip, sizeof(ip));
	acme_http_connect(h, ip);
}

static void acme_http_ip_cb(evutil_socket_t fd, short what, void *arg)
{
	struct acme_http *h = arg;
	acme_http_connect(h, h->host);
}

bool acme_http_request(struct acme_http *h, const char *method, const char *url, const char *ctype,
		       const char *body, size_t len, acme_http_cb cb, void *arg)
{
	struct evhttp_uri *u = evhttp_uri_parse(url);
	const char *scheme = u ? evhttp_uri_get_scheme(u) : NULL;
	const char *host = u ? evhttp_uri_get_host(u) : NULL;
	const char *path, *query;
	unsigned char bin[16];

	if (h->busy || u == NULL || scheme == NULL || strcmp(scheme, "https") != 0 || host == NULL ||
	    host[0] == '\0') {
		if (u)
			evhttp_uri_free(u);
		return false;
	}
	path = evhttp_uri_get_path(u);
	query = evhttp_uri_get_query(u);
	h->busy = true;
	h->gen++;
	h->method = xstrdup(method);
	h->host = xstrdup(host);
	if (h->host[0] == '[') {   /* evhttp keeps an IPv6 literal's brackets */
		memmove(h->host, h->host + 1, strlen(h->host));
		h->host[strcspn(h->host, "]")] = '\0';
	}
	h->port = evhttp_uri_get_port(u) > 0 ? evhttp_uri_get_port(u) : 443;
	h->path = query ? xasprintf("%s?%s", path && path[0] ? path : "/", query) :
		xstrdup(path && path[0] ? path : "/");
	h->ctype = ctype ? xstrdup(ctype) : NULL;
	h->body = ctype ? xstrndup(body, len) : NULL;
	h->body_len = ctype ? len : 0;
	h->cb = cb;
	h->arg = arg;
	evhttp_uri_free(u);
	h->host_is_ip = inet_pton(AF_INET, h->host, bin) == 1 || inet_pton(AF_INET6, h->host, bin) == 1;
	if (h->host_is_ip) {
		/* The callback never runs inside this call. */
		struct timeval now = { 0, 0 };
		evtimer_add(h->kick, &now);
		return true;
	}
	h->dns_id = dns_host_lookup(h->dns, h->host, acme_http_dns_cb, h);
	return true;
}

void acme_http_cancel(struct acme_http *h)
{
	if (!h->busy)
		return;
	if (h->dns_id)
		dns_cancel(h->dns, h->dns_id);
	event_del(h->kick);
	/* Freeing the connection frees its request without calling back
	 * (evhttp_cancel_request may call back with NULL). */
	if (h->evcon)
		evhttp_connection_free(h->evcon);
	h->evcon = NULL;
	acme_http_clear(h);
}

struct acme_http *acme_http_new(struct event_base *base, struct dns *dns, const char *ca_file, char **err)
{
	struct acme_http *h = xcalloc(1, sizeof(*h));
	unsigned long e;
	char buf[200];

	*err = NULL;
	h->base = base;
	h->dns = dns;
	h->kick = evtimer_new(base, acme_http_ip_cb, h);
	h->reap = evtimer_new(base, acme_http_reap_cb, h);
	h->ctx = SSL_CTX_new(TLS_client_method());
	if (h->ctx == NULL)
		goto fail;
	SSL_CTX_set_min_proto_version(h->ctx, TLS1_2_VERSION);
	SSL_CTX_set_verify(h->ctx, SSL_VERIFY_PEER, NULL);
	if ((ca_file && ca_file[0] ? SSL_CTX_load_verify_locations(h->ctx, ca_file, NULL)
				   : SSL_CTX_set_default_verify_paths(h->ctx)) != 1)
		goto fail;
	return h;
fail:
	e = ERR_get_error();
	ERR_error_string_n(e, buf, sizeof(buf));
	ERR_clear_error();
	*err = xasprintf("[acme] ca_file %s: %s", ca_file && ca_file[0] ? ca_file : "(system)", buf);
	SSL_CTX_free(h->ctx);
	event_free(h->kick);
	event_free(h->reap);
	free(h);
	return NULL;
}

void acme_http_free(struct acme_http *h)
{
	if (h == NULL)
		return;
	acme_http_cancel(h);
	acme_http_reap_cb(-1, 0, h);
	event_free(h->kick);
	event_free(h->reap);
	SSL_CTX_free(h->ctx);
	free(h);
}
