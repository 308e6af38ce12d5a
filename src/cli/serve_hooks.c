/*
 * serve_hooks.c - see serve_hooks.h.
 */
#include "cli/serve_hooks.h"
#include "core/config.h"
#include "core/control.h"
#include "core/log.h"
#include "core/server.h"
#include "delivery/dns.h"

#include <stdio.h>
#include <stdlib.h>

/* TEMPORARY (control branch): a resolver for the SMTP server's PTR
 * lookups when [dns] servers is set, until remote delivery creates
 * t->dns here for every configuration; then this goes. */
static bool serve_dns_tmp(struct tern *t)
{
	char *err = NULL;
	if (t->dns != NULL || t->cfg->dns_servers == NULL || t->cfg->dns_servers[0] == '\0')
		return true;
	t->dns = dns_new(t->base, t->cfg->dns_servers, &err);
	if (t->dns == NULL) {
		fprintf(stderr, "tern: [dns] servers: %s\n", err ? err : "resolver set-up failed");
		free(err);
		return false;
	}
	return true;
}

bool serve_hooks_init(struct tern *t, accept_fn accept_by_service[SERVICE_COUNT])
{
	return serve_dns_tmp(t);
}

void serve_hooks_start(struct tern *t)
{
	/* After the privilege drop: the socket belongs to the run user. */
	t->control = control_start(t);
}

void serve_hooks_reload(struct tern *t)
{
}

void serve_hooks_shutdown(struct tern *t)
{
	control_free(t->control);
	t->control = NULL;
}

bool serve_hooks_idle(struct tern *t)
{
	return true;
}

void serve_hooks_free(struct tern *t)
{
	control_free(t->control);
	t->control = NULL;
	dns_free(t->dns);
	t->dns = NULL;
}
