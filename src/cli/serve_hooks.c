/*
 * serve_hooks.c - see serve_hooks.h.
 */
#include "cli/serve_hooks.h"
#include "pop3/pop3_server.h"

bool serve_hooks_init(struct tern *t, accept_fn accept_by_service[SERVICE_COUNT])
{
	t->pop3 = pop3_server_new();
	accept_by_service[SERVICE_POP3] = pop3_server_accept;
	return true;
}

void serve_hooks_start(struct tern *t)
{
}

void serve_hooks_reload(struct tern *t)
{
}

void serve_hooks_shutdown(struct tern *t)
{
}

bool serve_hooks_idle(struct tern *t)
{
	return true;
}

void serve_hooks_free(struct tern *t)
{
	pop3_server_free(t->pop3);
	t->pop3 = NULL;
}
