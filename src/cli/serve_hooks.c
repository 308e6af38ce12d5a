/*
 * serve_hooks.c - see serve_hooks.h.
 */
#include "cli/serve_hooks.h"
#include "cli/control.h"
#include "core/config.h"
#include "core/log.h"
#include "core/server.h"
#include "core/tls.h"
#include "core/util.h"
#include "core/dns.h"
#include "delivery/scheduler.h"
#include "filter/dnsbl.h"
#include "filter/greylist.h"
#include "filter/rate.h"
#include "imap/imap_server.h"
#include "msgauth/dkim.h"
#include "msgauth/dkim_keyring.h"
#include "pop3/pop3_server.h"
#include "web/acme.h"
#include "web/web.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* TLS is needed by the implicit-TLS and submission ports; port 25 offers
 * STARTTLS when a certificate exists (or one is configured explicitly,
 * which then must load). */
static bool serve_tls_wanted(const struct config *cfg)
{
	char *def = xasprintf("%s/tls/cert.pem", cfg->state_dir);
	bool explicit = strcmp(cfg->tls_cert, def) != 0;
	free(def);
	return cfg->submission_listen.n || cfg->submissions_listen.n || cfg->pop3s_listen.n ||
		cfg->pop3_listen.n || cfg->imap_listen.n || cfg->imaps_listen.n || cfg->https_listen.n || explicit ||
		cfg->acme_directory[0] ||
		access(cfg->tls_cert, F_OK) == 0;
}

static bool serve_tls_init(struct tern *t)
{
	char *err = NULL;
	if (!serve_tls_wanted(t->cfg))
		return true;
	t->tls = tls_ctx_new(t->cfg, &err);
	if (t->tls == NULL) {
		fprintf(stderr, "tern: %s\n", err ? err : "TLS set-up failed");
		free(err);
		return false;
	}
	return true;
}

/* DNS for remote delivery (and the server's PTR lookups). */
static bool serve_hooks_dns(struct tern *t)
{
	char *err = NULL;

	/* [dns] timeout bounds one query: split over the tries, so a server
	 * that never answers costs about that long in total. */
	struct dns_options o = {
		.servers = t->cfg->dns_servers,
		.tries = DNS_TRIES_DEFAULT,
		.timeout_ms = (unsigned)(t->cfg->dns_timeout * 1000 / DNS_TRIES_DEFAULT),
	};

	t->dns = dns_new_opts(t->base, &o, &err);
	if (t->dns == NULL) {
		fprintf(stderr, "tern: [dns] servers: %s\n", err ? err : "cannot start the resolver");
		free(err);
		return false;
	}
	return true;
}

bool serve_hooks_init(struct tern *t, accept_fn accept_by_service[SERVICE_COUNT])
{
	if (!serve_tls_init(t))
		return false;
	if (!serve_hooks_dns(t))
		return false;
	t->pop3 = pop3_server_new();
	accept_by_service[SERVICE_POP3] = pop3_server_accept;
	if (t->tls)
		accept_by_service[SERVICE_POP3S] = pop3_server_accept;
	t->imap = imap_server_new(t);
	accept_by_service[SERVICE_IMAP] = imap_server_accept;
	if (t->tls)
		accept_by_service[SERVICE_IMAPS] = imap_server_accept;
	accept_by_service[SERVICE_HTTP] = web_accept;
	if (t->tls)
		accept_by_service[SERVICE_HTTPS] = web_accept;
	return true;
}

#define RATE_ADDRS_MAX 100000   /* client addresses whose rates are counted */

/* The MX checks: after the privilege drop, so that the greylist file
 * belongs to the run user, and with the worker pool for its rewrites. */
static void serve_filters_start(struct tern *t)
{
	const struct config *cfg = t->cfg;
	char *err = NULL;

	t->dnsbl = dnsbl_new(t->base, t->dns, &cfg->dnsbl_zones, &cfg->dnsbl_allow, cfg->dnsbl_timeout * 1000,
			     cfg->dnsbl_cache_max);
	if (cfg->greylist_enabled) {
		t->greylist = greylist_open(cfg->state_dir, cfg->greylist_delay, cfg->greylist_expire,
					    cfg->greylist_max_entries, t->commit_pool, &err);
		if (t->greylist == NULL)
			die("[greylist] %s", err ? err : "cannot open the store");
	}
	if (cfg->max_connection_rate)
		t->conn_rate = rate_new(RATE_ADDRS_MAX);
	if (cfg->max_message_rate)
		t->msg_rate = rate_new(RATE_ADDRS_MAX);
}

void serve_hooks_start(struct tern *t)
{
	char *err = NULL;
	serve_filters_start(t);
	/* After the privilege drop: the keys are the run user's files. */
	t->dkim_keys = dkim_keyring_new(t->base, t->cfg);
	t->dkim_pubkeys = dkim_key_cache_new();
	/* After the privilege drop: the socket belongs to the run user. */
	t->control = control_start(t);
	/* After the drop too: state_dir/acme/ belongs to the run user. */
	t->acme = acme_new(t, &err);
	if (t->acme == NULL && err)
		die("[acme] %s", err);
	acme_start(t->acme);
}

static void log_tls_reload_failed(const char *err)
{
	log_event("event=tls_reload_failed level=error error=\"%s\"", err ? err : "?");
}

void serve_hooks_reload(struct tern *t)
{
	char *err = NULL;
	if (t->tls && !tls_ctx_reload(t->tls, &err)) {
		log_tls_reload_failed(err);
		free(err);
	}
	if (t->dkim_keys)
		dkim_keyring_reload(t->dkim_keys, "sighup");
}

void serve_hooks_shutdown(struct tern *t)
{
	control_free(t->control);
	t->control = NULL;
	acme_free(t->acme);   /* an order under way is dropped */
	t->acme = NULL;
}

bool serve_hooks_idle(struct tern *t)
{
	/* Remote deliveries in flight finish (or give up) before exit. */
	return t->sched == NULL || scheduler_busy(t->sched) == 0;
}

void serve_hooks_free(struct tern *t)
{
	control_free(t->control);
	t->control = NULL;
	acme_free(t->acme);   /* before the resolver and TLS context it uses */
	t->acme = NULL;
	dkim_keyring_free(t->dkim_keys);
	t->dkim_keys = NULL;
	dkim_key_cache_free(t->dkim_pubkeys);
	t->dkim_pubkeys = NULL;
	dnsbl_free(t->dnsbl);   /* before the resolver it uses */
	t->dnsbl = NULL;
	greylist_close(t->greylist);   /* the worker pool is gone: no rewrite runs */
	t->greylist = NULL;
	rate_free(t->conn_rate);
	rate_free(t->msg_rate);
	t->conn_rate = t->msg_rate = NULL;
	dns_free(t->dns);
	t->dns = NULL;
	pop3_server_free(t->pop3);
	t->pop3 = NULL;
	imap_server_free(t->imap);
	t->imap = NULL;
	tls_ctx_free(t->tls);
	t->tls = NULL;
}
