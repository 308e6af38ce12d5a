/*
 * web_routes.c - the fixed routes of the HTTP service, one table: service,
 * path, the hosts it answers for, the methods allowed, the handler.
 * Nothing else is served.  Every route names the hosts (RFC 9110 7.2) it
 * is the authority for: mta-sts.D, autoconfig.D, autodiscover.D and D
 * for local domains D, the [server] hostname, the names ACME orders;
 * a request for a known path on any other host gets 421 Misdirected
 * Request (RFC 9110 15.5.20), a path outside the table 404.
 */
#include "web/web.h"
#include "web/acme.h"
#include "core/config.h"
#include "core/metrics.h"
#include "core/util.h"
#include "store/queue.h"

#include <arpa/inet.h>
#include <event2/buffer.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* The hosts a route answers for, or'ed together. */
enum web_hosts {
	WEB_HOST_SERVER = 1 << 0,         /* [server] hostname */
	WEB_HOST_ADDRESS = 1 << 1,        /* an IP address literal */
	WEB_HOST_DOMAIN = 1 << 2,         /* a local domain D itself */
	WEB_HOST_MTA_STS = 1 << 3,        /* mta-sts.D (RFC 8461 3.3) */
	WEB_HOST_AUTOCONFIG = 1 << 4,     /* autoconfig.D (Thunderbird) */
	WEB_HOST_AUTODISCOVER = 1 << 5,   /* autodiscover.D ([MS-OXDSCLI] 3.1.5) */
	WEB_HOST_ACME = 1 << 6,           /* a name the ACME certificate is ordered for */
};
/* Every name of tern's own (what port 80 redirects). */
#define WEB_HOST_OURS (WEB_HOST_SERVER | WEB_HOST_DOMAIN | WEB_HOST_MTA_STS | WEB_HOST_AUTOCONFIG | \
		       WEB_HOST_AUTODISCOVER | WEB_HOST_ACME)

struct web_route {
	enum service svc;
	const char *path;
	bool prefix;              /* path is a prefix of the request's */
	unsigned hosts;           /* enum web_hosts */
	const char *allow;        /* methods, as sent in Allow */
	void (*fn)(const struct web_request *req, struct web_reply *rep);
};

/* The local domain D when host is "<label>.D", else NULL. */
static const char *web_label_domain(const struct config *cfg, const char *host, const char *label)
{
	size_t n = strlen(label);
	if (strncmp(host, label, n) != 0 || host[n] != '.')
		return NULL;
	return config_is_local_domain(cfg, host + n + 1) ? host + n + 1 : NULL;
}

static bool web_is_address(const char *host)
{
	unsigned char bin[16];
	char v6[64];
	size_t n = strlen(host);

	if (inet_pton(AF_INET, host, bin) == 1)
		return true;
	if (n < 3 || n - 2 >= sizeof(v6) || host[0] != '[' || host[n - 1] != ']')
		return false;
	memcpy(v6, host + 1, n - 2);
	v6[n - 2] = '\0';
	return inet_pton(AF_INET6, v6, bin) == 1;
}

/* Does req's host belong to hosts?  *domain: the local domain it names
 * (NULL for the hostname, an address or an ACME name). */
static bool web_host_match(const struct web_request *req, unsigned hosts, const char **domain)
{
	const struct config *cfg = req->t->cfg;
	const char *h = req->host, *d;

	*domain = NULL;
	if ((hosts & WEB_HOST_MTA_STS) && (d = web_label_domain(cfg, h, "mta-sts")) != NULL)
		goto local;
	if ((hosts & WEB_HOST_AUTOCONFIG) && (d = web_label_domain(cfg, h, "autoconfig")) != NULL)
		goto local;
	if ((hosts & WEB_HOST_AUTODISCOVER) && (d = web_label_domain(cfg, h, "autodiscover")) != NULL)
		goto local;
	if ((hosts & WEB_HOST_DOMAIN) && config_is_local_domain(cfg, h)) {
		d = h;
		goto local;
	}
	if ((hosts & WEB_HOST_SERVER) && strcasecmp(h, cfg->hostname) == 0)
		return true;
	if ((hosts & WEB_HOST_ADDRESS) && web_is_address(h))
		return true;
	return (hosts & WEB_HOST_ACME) && acme_orders_name(req->t->acme, h);
local:
	*domain = d;
	return true;
}

/* Port 80: everything to https on the same host (RFC 9110 15.4.2). */
static void route_redirect(const struct web_request *req, struct web_reply *rep)
{
	const struct config *cfg = req->t->cfg;
	char port[16] = "";

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
	const char *answer = acme_http01_answer(req->t->acme, req->host, token, len);

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
	/* The CA asks the name being validated (RFC 8555 8.3). */
	{ SERVICE_HTTP, "/.well-known/acme-challenge/", true, WEB_HOST_OURS, "GET, HEAD", route_acme_http01 },
	{ SERVICE_HTTP, "/", true, WEB_HOST_OURS, "GET, HEAD", route_redirect },
	/* A scraper names the server, or addresses it by IP. */
	{ SERVICE_HTTPS, "/metrics", false, WEB_HOST_SERVER | WEB_HOST_ADDRESS, "GET, HEAD", route_metrics },
	{ SERVICE_HTTPS, "/.well-known/mta-sts.txt", false, WEB_HOST_MTA_STS, "GET, HEAD", route_mta_sts },
	/* Thunderbird asks autoconfig.D/mail/..., then D/.well-known/... */
	{ SERVICE_HTTPS, "/.well-known/autoconfig/mail/config-v1.1.xml", false,
	  WEB_HOST_AUTOCONFIG | WEB_HOST_DOMAIN, "GET, HEAD", web_autoconfig },
	{ SERVICE_HTTPS, "/mail/config-v1.1.xml", false, WEB_HOST_AUTOCONFIG, "GET, HEAD", web_autoconfig },
	/* Outlook POSTs to D, then autodiscover.D ([MS-OXDSCLI] 3.1.5). */
	{ SERVICE_HTTPS, "/autodiscover/autodiscover.xml", false, WEB_HOST_AUTODISCOVER | WEB_HOST_DOMAIN,
	  "POST", web_autodiscover },
	{ SERVICE_HTTPS, "/Autodiscover/Autodiscover.xml", false, WEB_HOST_AUTODISCOVER | WEB_HOST_DOMAIN,
	  "POST", web_autodiscover },
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
		struct web_request routed = *req;
		if (!web_host_match(req, r->hosts, &routed.domain)) {
			rep->status = 421;
			return;
		}
		if (!method_allowed(r, req->head->method)) {
			rep->status = 405;
			rep->allow = r->allow;
			return;
		}
		r->fn(&routed, rep);
		return;
	}
	rep->status = 404;
}
