/*
 * workers.c - thread pool with completion back on the libevent loop.
 *
 * Jobs wait in a FIFO under a mutex; finished jobs go to a second list and
 * an eventfd wakes the loop, which runs their done() callbacks.  Many
 * sessions can therefore be inside fsync() at once, and the file system's
 * journal groups their syncs.
 */
#include "core/workers.h"
#include "core/util.h"

#include <event2/event.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

struct job {
	worker_fn work, done;
	void *arg;
	struct job *next;
};

struct job_list {
	struct job *head, *tail;
};

struct workers {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct job_list todo, finished;
	bool stopping;
	size_t busy;              /* loop thread only */
	unsigned nthreads;
	int nice;                 /* the threads' own (0: the process's) */
	pthread_t *threads;
	int efd;
	struct event *ev;
};

static void list_push(struct job_list *l, struct job *j)
{
	j->next = NULL;
	if (l->tail)
		l->tail->next = j;
	else
		l->head = j;
	l->tail = j;
}

static struct job *list_take_all(struct job_list *l)
{
	struct job *h = l->head;
	l->head = l->tail = NULL;
	return h;
}

static void *worker_main(void *arg)
{
	struct workers *w = arg;
	uint64_t one = 1;

	/* Linux gives each thread its own nice value. */
	if (w->nice)
		(void)setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), w->nice);
	pthread_mutex_lock(&w->mu);
	for (;;) {
		while (w->todo.head == NULL && !w->stopping)
			pthread_cond_wait(&w->cv, &w->mu);
		struct job *j = w->todo.head;
		if (j == NULL)
			break;
		w->todo.head = j->next;
		if (w->todo.head == NULL)
			w->todo.tail = NULL;
		pthread_mutex_unlock(&w->mu);

		j->work(j->arg);

		pthread_mutex_lock(&w->mu);
		bool wake = w->finished.head == NULL;
		list_push(&w->finished, j);
		if (wake && write(w->efd, &one, sizeof(one)) < 0) {
			/* the counter cannot overflow in practice */
		}
	}
	pthread_mutex_unlock(&w->mu);
	return NULL;
}

static void run_finished(struct workers *w)
{
	struct job *j, *next;

	pthread_mutex_lock(&w->mu);
	j = list_take_all(&w->finished);
	pthread_mutex_unlock(&w->mu);
	for (; j; j = next) {
		next = j->next;
		w->busy--;
		if (j->done)
			j->done(j->arg);
		free(j);
	}
}

static void workers_wake_cb(evutil_socket_t fd, short what, void *arg)
{
	struct workers *w = arg;
	uint64_t n;
	if (read(fd, &n, sizeof(n)) < 0) {
		/* spurious wake-up: nothing to drain */
	}
	run_finished(w);
}

struct workers *workers_new(struct event_base *base, unsigned nthreads)
{
	return workers_new_nice(base, nthreads, 0);
}

struct workers *workers_new_nice(struct event_base *base, unsigned nthreads, int nice)
{
	struct workers *w = xcalloc(1, sizeof(*w));

	pthread_mutex_init(&w->mu, NULL);
	pthread_cond_init(&w->cv, NULL);
	w->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (w->efd < 0)
		die("eventfd: %m");
	w->ev = event_new(base, w->efd, EV_READ | EV_PERSIST, workers_wake_cb, w);
	event_add(w->ev, NULL);
	w->nthreads = nthreads;
	w->nice = nice;
	w->threads = xcalloc(nthreads, sizeof(*w->threads));
	for (unsigned i = 0; i < nthreads; i++)
		if (pthread_create(&w->threads[i], NULL, worker_main, w) != 0)
			die("pthread_create failed");
	return w;
}

void workers_submit(struct workers *w, worker_fn work, worker_fn done, void *arg)
{
	struct job *j = xcalloc(1, sizeof(*j));
	j->work = work;
	j->done = done;
	j->arg = arg;
	w->busy++;
	pthread_mutex_lock(&w->mu);
	list_push(&w->todo, j);
	pthread_mutex_unlock(&w->mu);
	/* after the unlock: a worker woken under the lock would block on it */
	pthread_cond_signal(&w->cv);
}

size_t workers_busy(const struct workers *w)
{
	return w->busy;
}

void workers_free(struct workers *w)
{
	if (w == NULL)
		return;
	pthread_mutex_lock(&w->mu);
	w->stopping = true;
	pthread_cond_broadcast(&w->cv);
	pthread_mutex_unlock(&w->mu);
	for (unsigned i = 0; i < w->nthreads; i++)
		pthread_join(w->threads[i], NULL);
	run_finished(w);
	event_free(w->ev);
	close(w->efd);
	pthread_mutex_destroy(&w->mu);
	pthread_cond_destroy(&w->cv);
	free(w->threads);
	free(w);
}
