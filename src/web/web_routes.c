/*
 * web_routes.c - the fixed routes of the HTTP service, one table: service,
 * path, the methods allowed, the handler.  Nothing else is served.  The
 * Host header picks the domain: mta-sts.DOMAIN and autoconfig.DOMAIN for
 * local domains only; any other host gets 404.
 */
#include "web/web.h"
#include "web/acme.h"
#include "core/config.h"
#include "core/metrics.h"
#include "core/util.h"
#include "store/queue.h"

#include <event2/buffer.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct web_route {
	enum service svc;
	const char *path;
	bool prefix;              /* path is a prefix of the request's */
	const char *allow;        /* methods, as sent in Allow */
	void (*fn)(const struct web_request *req, struct web_reply *rep);
};

/* The local domain D when host is "<label>.D", else NULL. */
const char *web_host_domain(const struct web_request *req, const char *label)
{
	size_t n = strlen(label);
	if (strncmp(req->host, label, n) != 0 || req->host[n] != '.')
		return NULL;
	const char *d = req->host + n + 1;
	return config_is_local_domain(req->t->cfg, d) ? d : NULL;
}

/* Port 80: everything to https on the same host (RFC 9110 15.4.2). */
static void route_redirect(const struct web_request *req, struct web_reply *rep)
{
	const struct config *cfg = req->t->cfg;
	char port[16] = "";

	if (req->host[0] == '\0') {
		rep->status = 400;
		return;
	}
	/* A non-standard HTTPS port (development, tests) goes into the URL. */
	if (cfg->https_listen.n) {
		const char *colon = strrchr(cfg->https_listen.v[0].text, ':');
		if (colon && strcmp(colon, ":443") != 0)
			snprintf(port, sizeof(port), "%s", colon);
	}
	rep->status = 301;
	rep->location = xasprintf("https://%s%s%.*s", req->host, port, (int)req->head->target.n,
				  req->head->target.p);
}

static void route_mta_sts(const struct web_request *req, struct web_reply *rep)
{
	char *policy;
	if (web_host_domain(req, "mta-sts") == NULL) {
		rep->status = 404;
		return;
	}
	policy = web_mta_sts_policy(req->t->cfg);
	rep->status = 200;
	rep->content_type = "text/plain";
	rep->body = evbuffer_new();
	evbuffer_add(rep->body, policy, strlen(policy));
	free(policy);
}

/* ACME http-01 (RFC 8555 8.3): the key authorization of a token being
 * validated; 404 for any other. */
static void route_acme_http01(const struct web_request *req, struct web_reply *rep)
{
	static const char prefix[] = "/.well-known/acme-challenge/";
	struct http_str path = req->head->path;
	const char *token = path.p + sizeof(prefix) - 1;
	size_t len = path.n - (sizeof(prefix) - 1);
	const char *answer = acme_http01_answer(req->t->acme, token, len);

	if (answer == NULL) {
		rep->status = 404;
		return;
	}
	rep->status = 200;
	rep->content_type = "application/octet-stream";
	rep->body = evbuffer_new();
	evbuffer_add(rep->body, answer, strlen(answer));
}

/* Operators' numbers, for the trusted networks only. */
static void route_metrics(const struct web_request *req, struct web_reply *rep)
{
	struct tern *t = req->t;
	if (!cidr_list_match(&t->cfg->trusted_networks, req->peer)) {
		rep->status = 403;
		return;
	}
	struct metrics_gauges g = {
		.queue_messages = t->queue ? queue_length(t->queue) : 0,   /* no directory scan on the loop */
		.open_sessions = t->nsessions,
	};
	rep->status = 200;
	rep->content_type = "text/plain; version=0.0.4; charset=utf-8";
	rep->body = evbuffer_new();
	metrics_format(rep->body, &g);
}

static const struct web_route web_routes[] = {
	{ SERVICE_HTTP, "/.well-known/acme-challenge/", true, "GET, HEAD", route_acme_http01 },
	{ SERVICE_HTTP, "/", true, "GET, HEAD", route_redirect },
	{ SERVICE_HTTPS, "/metrics", false, "GET, HEAD", route_metrics },
	{ SERVICE_HTTPS, "/.well-known/mta-sts.txt", false, "GET, HEAD", route_mta_sts },
	{ SERVICE_HTTPS, "/.well-known/autoconfig/mail/config-v1.1.xml", false, "GET, HEAD", web_autoconfig },
	{ SERVICE_HTTPS, "/mail/config-v1.1.xml", false, "GET, HEAD", web_autoconfig },
	{ SERVICE_HTTPS, "/autodiscover/autodiscover.xml", false, "POST", web_autodiscover },
	{ SERVICE_HTTPS, "/Autodiscover/Autodiscover.xml", false, "POST", web_autodiscover },
};

static bool method_allowed(const struct web_route *r, struct http_str m)
{
	const char *p = r->allow;
	while (*p) {
		size_t n = strcspn(p, ", ");
		if (n == m.n && memcmp(p, m.p, n) == 0)
			return true;
		p += n;
		p += strspn(p, ", ");
	}
	return false;
}

void web_route(const struct web_request *req, struct web_reply *rep)
{
	struct http_str path = req->head->path;
	for (size_t i = 0; i < ARRAY_LEN(web_routes); i++) {
		const struct web_route *r = &web_routes[i];
		size_t n = strlen(r->path);
		if (r->svc != req->svc)
			continue;
		if (r->prefix ? (path.n < n || memcmp(path.p, r->path, n) != 0) : !http_str_eq(path, r->path))
			continue;
		if (!method_allowed(r, req->head->method)) {
			rep->status = 405;
			rep->allow = r->allow;
			return;
		}
		r->fn(req, rep);
		return;
	}
	rep->status = 404;
}
