/*
 * local.h - local delivery: the local recipients of a message into their
 * Maildirs.  Runs on a worker thread; touches only the message's file,
 * the Maildirs and the (read-only) config.
 */
#ifndef TERN_LOCAL_H
#define TERN_LOCAL_H

#include <stdbool.h>
#include <stdint.h>

struct config;
struct queue;
struct queue_env;

/* All-local mail straight from its uncommitted queue file (see local.c):
 * true when every recipient is final (delivered, or failed before). */
bool local_deliver_direct(const struct config *cfg, struct queue_env *env, int fd);

/* The due local recipients of a loaded message (fd open on its file):
 * PENDING ones, and DEFERRED ones whose next_try has come.  Updates the
 * recipients in env; saves nothing.  True when a state changed. */
bool local_deliver_env(const struct config *cfg, struct queue_env *env, int fd, int64_t now);

#endif
