/*
 * web.h - tern's HTTP service: the port-80 role ([http]: redirect to
 * https, ACME http-01) and the port-443 role ([https]: the MTA-STS policy,
 * client autoconfiguration, /metrics).  web_server.c reads requests with
 * tern's bounds; web_routes.c decides what each one gets.
 */
#ifndef TERN_WEB_H
#define TERN_WEB_H

#include <event2/util.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include "core/server.h"
#include "proto/http_parse.h"

struct evbuffer;
struct config;

#define WEB_MAX_HEAD  8192     /* request line + header fields: 431 past it */
#define WEB_MAX_BODY  65536    /* request body: 413 past it */

/* The accept function of SERVICE_HTTP and SERVICE_HTTPS. */
void web_accept(struct tern *t, evutil_socket_t fd, const struct sockaddr *sa, socklen_t len, enum service svc);

/* One request as the routes see it: the head, the body, who asked. */
struct web_request {
	struct tern *t;
	enum service svc;
	const struct sockaddr *peer;
	const struct http_head *head;
	const char *host;          /* Host without port, lower case, no final dot;
				    * the [server] hostname when the request has none */
	const char *domain;        /* the local domain the host names, if any */
	const char *body;
	size_t body_len;
};

/* What a route answers.  body is the route's to fill; extra headers are
 * optional. */
struct web_reply {
	int status;
	const char *content_type;
	struct evbuffer *body;
	char *location;            /* xmalloc'd; 301 */
	const char *allow;         /* 405 */
};

void web_route(const struct web_request *req, struct web_reply *rep);

/* Handlers of web_routes.c's table that live in files of their own. */
void web_autoconfig(const struct web_request *req, struct web_reply *rep);
void web_autodiscover(const struct web_request *req, struct web_reply *rep);

/* The MTA-STS policy text (RFC 8461 3.2), xmalloc'd; also hashed into
 * the _mta-sts record's id by `tern dns-records`. */
char *web_mta_sts_policy(const struct config *cfg);

/* The mail services a client can be told about (autoconfig, autodiscover,
 * SRV records of RFC 6186 / RFC 8314), in order of preference. */
struct web_mail_service {
	const char *kind;          /* imap | pop3 | smtp (autoconfig's type) */
	const char *socket;        /* SSL (implicit TLS) | STARTTLS */
	const char *srv;           /* "_imaps._tcp" ... */
	unsigned std_port;
	const char *section;       /* config section; NULL: not in this build */
};

extern const struct web_mail_service web_mail_services[];
extern const size_t web_mail_services_n;
/* The port of a service's first listener, 0 when it is not offered. */
unsigned web_mail_service_port(const struct config *cfg, const struct web_mail_service *s);

#endif
