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

/* All on the loop thread. */
/* Deferred recipients (of domain, or all if NULL) are tried now; ETRN and
 * `tern queue flush`.  Returns the number of messages scheduled. */
size_t scheduler_flush(struct scheduler *s, const char *domain);

/* The operator's requests (`tern queue hold|release|delete`).  Hold: no
 * delivery attempts until released, persisted (env->held in .st);
 * release: tried at once; delete: removed without a bounce.  The work is
 * done off the loop; done(arg, ok) is called on the loop when it is, or at
 * once when an attempt in flight takes the request; ok is false when the
 * message does not exist or the files could not be written. */
enum scheduler_request {
	SCHEDULER_HOLD,
	SCHEDULER_RELEASE,
	SCHEDULER_DELETE,
};
typedef void (*scheduler_done_fn)(void *arg, bool ok);
void scheduler_request(struct scheduler *s, const char *id, enum scheduler_request req, scheduler_done_fn done,
		       void *arg);
/* arg is going away: its requests' done is not called. */
void scheduler_forget(struct scheduler *s, void *arg);

#endif
