/*
 * server.c - small pieces of the server context shared by the services:
 * the session list, session ids, and admission by file descriptors.
 *
 * An idle session holds one descriptor, its socket; a queue file during
 * DATA, a Maildir lock after a POP3 login, a message being sent, the
 * resolver, the listeners, outbound connections and the workers' files
 * come out of a reserve.  Admission counts one descriptor per session,
 * and also refuses when the descriptor a connection was accepted on lies
 * in the reserve: the kernel hands out the lowest free number, so then
 * every descriptor below it is taken, whatever the sessions hold.  A
 * refused client still gets its 421 from that reserve (OpenSMTPD's
 * smtp.c refuses by free descriptors likewise).
 */
#include "core/server.h"
#include "core/config.h"

#include <event2/event.h>
#include <event2/event_struct.h>
#include <fcntl.h>
#include <malloc.h>
#include <sys/resource.h>
#include <unistd.h>

#define TERN_FD_RESERVE 128       /* listeners, log, resolver, queue, workers */
#define TERN_TRIM_PEAK 256        /* sessions at a peak worth trimming after */

static void tern_fd_warm_cb(evutil_socket_t fd, short what, void *arg)
{
}

/* libevent keeps a small record for every descriptor number it has seen,
 * made the first time and never freed.  Made while sessions come in, one
 * sits between every few sessions' memory, so that after they are gone
 * no page of the heap is free as a whole and none goes back to the
 * system (10,000 sessions left 20 MiB behind).  Made now, for every
 * number a session can get, they lie together at the start of the heap. */
static void tern_fd_warm(struct tern *t, size_t limit)
{
	struct event ev;
	int p[2];

	if (t->base == NULL || pipe2(p, O_CLOEXEC | O_NONBLOCK) < 0)
		return;
	for (size_t k = 0; k < limit; k++) {
		int fd = (int)k;
		if (fcntl(fd, F_GETFD) >= 0 || dup2(p[0], fd) < 0)
			continue;   /* in use (it has its record, or will), or cannot */
		event_assign(&ev, t->base, fd, EV_READ, tern_fd_warm_cb, NULL);
		event_add(&ev, NULL);
		event_del(&ev);
		close(fd);
	}
	close(p[0]);
	close(p[1]);
}

void tern_fd_setup(struct tern *t)
{
	struct rlimit rl;
	size_t reserve = TERN_FD_RESERVE + (t->cfg ? t->cfg->max_remote_connections : 0);

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0) {
		t->max_fds = 64;
		return;
	}
	if (rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max > 1048576 ? 1048576 : rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
		getrlimit(RLIMIT_NOFILE, &rl);
	}
	if (rl.rlim_cur == RLIM_INFINITY)
		rl.rlim_cur = 1048576;
	/* A small limit still admits a few sessions: half of it. */
	if (rl.rlim_cur < 2 * reserve)
		reserve = (size_t)rl.rlim_cur / 2;
	t->max_fds = (size_t)rl.rlim_cur - reserve;
	/* Sessions never number more than max_connections, so descriptor
	 * numbers past that and the reserve are rare (a limit of 1,048,576
	 * would cost a second and 40 MiB here). */
	size_t warm = t->cfg ? (size_t)t->cfg->max_connections + 2 * reserve : (size_t)rl.rlim_cur;
	tern_fd_warm(t, warm < (size_t)rl.rlim_cur ? warm : (size_t)rl.rlim_cur);
}

bool tern_fd_room(const struct tern *t, int fd)
{
	return t->nsessions <= t->max_fds && fd >= 0 && (size_t)fd < t->max_fds;
}

void session_list_add(struct tern *t, struct session_link *l)
{
	l->prev = NULL;
	l->next = t->sessions.head;
	if (l->next)
		l->next->prev = l;
	t->sessions.head = l;
	t->nsessions++;
	if (t->nsessions > t->nsessions_peak)
		t->nsessions_peak = t->nsessions;
}

void tern_heap_setup(void)
{
	/* glibc gives the top of the heap back once more than its trim
	 * threshold is free there (dynamically 2x the largest block freed
	 * so far, so some 256 KiB here), and the next allocation faults the
	 * pages in again: a session streaming more than that (a RETR behind
	 * pipelined ones, a long listing) paid a brk() and ~19 page faults
	 * per 100 KiB message.  Keep up to 4 MiB at the top; blocks of 1 MiB
	 * and more are mapped on their own and go back when freed.  A crowd
	 * that has gone is still trimmed explicitly (tern_trim_cb). */
	mallopt(M_MMAP_THRESHOLD, 1024 * 1024);
	mallopt(M_TRIM_THRESHOLD, 4 * 1024 * 1024);
}

static void tern_trim_cb(evutil_socket_t fd, short what, void *arg)
{
	struct tern *t = arg;

	malloc_trim(0);
	t->nsessions_peak = t->nsessions;
}

void session_list_del(struct tern *t, struct session_link *l)
{
	if (l->prev)
		l->prev->next = l->next;
	else
		t->sessions.head = l->next;
	if (l->next)
		l->next->prev = l->prev;
	l->prev = l->next = NULL;
	t->nsessions--;
	/* After a crowd of sessions has gone, give the freed heap back:
	 * glibc keeps it (27 MiB after 10,000 sessions had closed, from
	 * 8 MiB).  Only past a peak, so a steady trickle never pays; and a
	 * second later, once the rest of the crowd has gone too (pages
	 * given back while its sessions are still being freed are touched
	 * again by those frees). */
	if (t->nsessions_peak >= TERN_TRIM_PEAK && t->nsessions <= t->nsessions_peak / 16 && t->base) {
		struct timeval later = { 1, 0 };
		if (t->trim_ev == NULL)
			t->trim_ev = evtimer_new(t->base, tern_trim_cb, t);
		if (t->trim_ev && !evtimer_pending(t->trim_ev, NULL))
			evtimer_add(t->trim_ev, &later);
	}
}

uint64_t tern_session_id(struct tern *t)
{
	return ++t->next_session_id;
}
