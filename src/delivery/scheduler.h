/*
 * scheduler.h - decides when each queued message is worked on: local
 * recipients go to the delivery pool at once, deferred ones wait for
 * their retry time; remote recipients are handed to remote delivery.
 */
#ifndef TERN_SCHEDULER_H
#define TERN_SCHEDULER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct tern;
struct scheduler;

struct scheduler *scheduler_new(struct tern *t);
void scheduler_free(struct scheduler *s);
/* A message was just committed. */
void scheduler_enqueue(struct scheduler *s, const char *id);
/* Start-up: resume every committed message in the queue. */
size_t scheduler_recover(struct scheduler *s);
/* Stop starting work; jobs not yet begun are skipped (they stay queued). */
void scheduler_stop(struct scheduler *s);
/* Jobs in flight. */
size_t scheduler_busy(const struct scheduler *s);

/* All on the loop thread.  Return counts / success. */
/* Deferred recipients (of domain, or all if NULL) are tried now; ETRN and
 * `tern queue flush`.  Returns the number of messages scheduled. */
size_t scheduler_flush(struct scheduler *s, const char *domain);
/* No delivery attempts until released; persisted (env->held in .st). */
bool scheduler_hold(struct scheduler *s, const char *id);
bool scheduler_release(struct scheduler *s, const char *id);
/* Remove from the queue without a bounce. */
bool scheduler_delete(struct scheduler *s, const char *id);

#endif
