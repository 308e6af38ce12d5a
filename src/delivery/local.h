/*
 * local.h - local delivery: every local recipient of a queued message
 * into its Maildir, then the queue entry updated or removed.  Runs on a
 * worker thread; touches only the queue files, the Maildirs and the
 * (read-only) config.
 */
#ifndef TERN_LOCAL_H
#define TERN_LOCAL_H

#include <stdbool.h>
#include <stdint.h>

struct config;
struct queue;

struct queue_env;
bool local_deliver_direct(const struct config *cfg, struct queue_env *env, int fd);

struct queue_env;
/* The due local recipients of a loaded message (fd open on its file):
 * PENDING ones, and DEFERRED ones whose next_try has come.  Updates the
 * recipients in env; saves nothing.  True when a state changed. */
bool local_deliver_env(const struct config *cfg, struct queue_env *env, int fd, int64_t now);

#endif
