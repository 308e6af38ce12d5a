/*
 * workers.h - a small thread pool for blocking disk work (fsync, Maildir
 * writes).  The event loop never blocks: a job's work() runs on a worker
 * thread, and its done() runs back on the loop thread.
 */
#ifndef TERN_WORKERS_H
#define TERN_WORKERS_H

#include <stddef.h>

struct event_base;
struct workers;

typedef void (*worker_fn)(void *arg);

struct workers *workers_new(struct event_base *base, unsigned nthreads);
/* The same with the threads at a nice value of their own: CPU-bound work
 * (TLS handshakes) that must not take the CPU from the loop when both
 * want it, so the loop's sessions keep their round trips. */
struct workers *workers_new_nice(struct event_base *base, unsigned nthreads, int nice);
/* work runs on a worker thread, then done (may be NULL) on the loop thread. */
void workers_submit(struct workers *w, worker_fn work, worker_fn done, void *arg);
/* Jobs queued or running whose done() has not yet run. */
size_t workers_busy(const struct workers *w);
/* Finish queued jobs, join the threads, run remaining done()s, free. */
void workers_free(struct workers *w);

#endif
