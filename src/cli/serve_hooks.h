/*
 * serve_hooks.h - the services' start-up and shutdown steps that `tern
 * serve` runs in order: TLS contexts, DNS, POP3, remote delivery.  Each
 * service adds its part in serve_hooks.c, so serve.c stays one sequence.
 */
#ifndef TERN_SERVE_HOOKS_H
#define TERN_SERVE_HOOKS_H

#include <stdbool.h>
#include "core/listener.h"

#ifndef TERN_VERSION
#define TERN_VERSION "0.1"
#endif

/* Before binding: set up what listeners need; fill in accept functions. */
bool serve_hooks_init(struct tern *t, accept_fn accept_by_service[SERVICE_COUNT]);
/* After the pools and the scheduler exist. */
void serve_hooks_start(struct tern *t);
void serve_hooks_reload(struct tern *t);
void serve_hooks_shutdown(struct tern *t);
bool serve_hooks_idle(struct tern *t);
void serve_hooks_free(struct tern *t);

#endif
