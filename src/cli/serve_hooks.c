/*
 * serve_hooks.c - see serve_hooks.h.
 */
#include "cli/serve_hooks.h"

bool serve_hooks_init(struct tern *t, accept_fn accept_by_service[SERVICE_COUNT])
{
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
}
