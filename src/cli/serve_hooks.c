/*
 * serve_hooks.c - see serve_hooks.h.
 */
#include "cli/serve_hooks.h"
#include "core/config.h"
#include "core/control.h"
#include "core/log.h"
#include "core/server.h"
#include "core/util.h"
#include "delivery/dns.h"
#include "delivery/scheduler.h"

#include <stdio.h>
#include <stdlib.h>

/* DNS for remote delivery (and the server's PTR lookups). */
static bool serve_hooks_dns(struct tern *t)
{
	char *err = NULL;

	t->dns = dns_new(t->base, t->cfg->dns_servers, &err);
	if (t->dns == NULL) {
		fprintf(stderr, "tern: [dns] servers: %s\n", err ? err : "cannot start the resolver");
		free(err);
		return false;
	}
	return true;
}

bool serve_hooks_init(struct tern *t, accept_fn accept_by_service[SERVICE_COUNT])
{
	if (!serve_hooks_dns(t))
		return false;
	return true;
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
	/* Remote deliveries in flight finish (or give up) before exit. */
	return t->sched == NULL || scheduler_busy(t->sched) == 0;
}

void serve_hooks_free(struct tern *t)
{
	control_free(t->control);
	t->control = NULL;
	dns_free(t->dns);
	t->dns = NULL;
}
