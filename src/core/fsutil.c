/*
 * fsutil.c - see fsutil.h.
 *
 * fs_commit() is the group commit of new files (see below).
 *
 * dir_sync() is the group commit of directory fsyncs: each directory has a
 * change counter and a "synced up to" mark.  A caller takes a ticket after
 * its rename; whoever holds the directory's lock fsyncs on behalf of every
 * ticket issued before the fsync began, so the callers that waited on the
 * lock find their ticket already covered and return without a second sync.
 */
#include "core/fsutil.h"
#include "core/util.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

bool write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;
	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return false;
		}
		p += n;
		len -= (size_t)n;
	}
	return true;
}

bool fs_insert(int fd, off_t at, uint64_t len, const void *buf, size_t n)
{
	char block[65536];
	uint64_t left = len;

	errno = 0;
	/* Back to front, so that no octet is overwritten before it moved. */
	while (left > 0) {
		size_t k = left < sizeof(block) ? (size_t)left : sizeof(block);
		off_t from = at + (off_t)(left - k);
		if (pread(fd, block, k, from) != (ssize_t)k || pwrite(fd, block, k, from + (off_t)n) != (ssize_t)k) {
			if (errno == 0)
				errno = EIO;
			return false;
		}
		left -= k;
	}
	if (pwrite(fd, buf, n, at) != (ssize_t)n)
		return false;
	return lseek(fd, at + (off_t)(len + n), SEEK_SET) >= 0;
}

bool mkdir_p(const char *path, mode_t mode)
{
	char *p = xstrdup(path);
	bool ok = true;
	for (char *s = p + 1; ; s++) {
		if (*s == '/' || *s == '\0') {
			char c = *s;
			*s = '\0';
			if (mkdir(p, mode) < 0 && errno != EEXIST) {
				ok = false;
				break;
			}
			*s = c;
			if (c == '\0')
				break;
		}
	}
	free(p);
	return ok;
}

/*
 * fs_commit(): group commit of new files.  Each caller first fdatasyncs
 * its own files, in its own thread: that writes their data and inodes and
 * flushes the disk cache, and the block layer merges the flushes of
 * concurrent callers into one.  (syncfs would write every dirty file of
 * the file system, and on ext4 without a journal it writes inode blocks
 * after its cache flush, so it cannot stand in for fdatasync.)
 *
 * The renames and directory fsyncs are then grouped: callers put their
 * items on one pending list; a caller that finds no round running leads
 * one: it takes every pending item (its own and those that queued while
 * the previous round ran), renames them, fsyncs each directory once and
 * wakes everyone.  A waiter whose items are done returns; one still
 * pending leads the next round.  Nobody waits behind a mutex held across
 * a disk flush.
 */
struct commit_waiter {
	struct fs_commit *items;
	size_t n;
	bool done;
	struct commit_waiter *next;
};

struct commit_group {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct commit_waiter *pending;
	bool running;
};

static struct commit_group commit_group = {
	PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, NULL, false
};

#define ROUND_MAX 64          /* distinct directories per round */

/* Every new name first, then each directory once: an fsync covers only
 * the renames made before it, so none may follow it. */
static void round_rename_and_sync_dirs(struct commit_waiter *list)
{
	const char *dirs[ROUND_MAX];
	int dir_err[ROUND_MAX];
	size_t ndir = 0;

	for (struct commit_waiter *w = list; w; w = w->next)
		for (size_t i = 0; i < w->n; i++)
			if (w->items[i].err == 0 && rename(w->items[i].tmp, w->items[i].dst) < 0)
				w->items[i].err = errno;
	for (struct commit_waiter *w = list; w; w = w->next) {
		for (size_t i = 0; i < w->n; i++) {
			struct fs_commit *c = &w->items[i];
			size_t d = 0;
			if (c->err)
				continue;
			while (d < ndir && strcmp(dirs[d], c->dir) != 0)
				d++;
			if (d == ndir && ndir == ROUND_MAX) {
				/* more directories than the table holds */
				if (!dir_sync(c->dir))
					c->err = errno ? errno : EIO;
				continue;
			}
			if (d == ndir) {
				dirs[ndir] = c->dir;
				dir_err[ndir++] = dir_sync(c->dir) ? 0 : (errno ? errno : EIO);
			}
			c->err = dir_err[d];
		}
	}
}

bool fs_commit(struct fs_commit *items, size_t n)
{
	struct commit_group *g = &commit_group;
	struct commit_waiter self = { items, n, false, NULL };
	bool ok = true;

	for (size_t i = 0; i < n; i++)
		items[i].err = fdatasync(items[i].fd) == 0 ? 0 : errno;
	pthread_mutex_lock(&g->mu);
	self.next = g->pending;
	g->pending = &self;
	while (!self.done) {
		if (g->running) {
			pthread_cond_wait(&g->cv, &g->mu);
			continue;
		}
		struct commit_waiter *round = g->pending;
		g->pending = NULL;
		g->running = true;
		pthread_mutex_unlock(&g->mu);
		round_rename_and_sync_dirs(round);
		pthread_mutex_lock(&g->mu);
		for (struct commit_waiter *w = round; w; w = w->next)
			w->done = true;
		g->running = false;
		pthread_cond_broadcast(&g->cv);
	}
	pthread_mutex_unlock(&g->mu);
	for (size_t i = 0; i < n; i++)
		if (items[i].err)
			ok = false;
	return ok;
}

struct dir_entry {
	char *path;
	pthread_mutex_t mu;
	uint64_t tickets;         /* under table_mu */
	uint64_t synced;          /* under mu */
	struct dir_entry *next;
};

#define DIR_BUCKETS 1024
static pthread_mutex_t table_mu = PTHREAD_MUTEX_INITIALIZER;
static struct dir_entry *table[DIR_BUCKETS];

static unsigned hash_path(const char *s)
{
	uint32_t h = 2166136261u;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 16777619u;
	return h % DIR_BUCKETS;
}

/* Returns the entry for dir and a ticket number for this change. */
static struct dir_entry *dir_ticket(const char *dir, uint64_t *ticket)
{
	unsigned b = hash_path(dir);
	struct dir_entry *e;

	pthread_mutex_lock(&table_mu);
	for (e = table[b]; e; e = e->next)
		if (strcmp(e->path, dir) == 0)
			break;
	if (e == NULL) {
		e = xcalloc(1, sizeof(*e));
		e->path = xstrdup(dir);
		pthread_mutex_init(&e->mu, NULL);
		e->next = table[b];
		table[b] = e;
	}
	*ticket = ++e->tickets;
	pthread_mutex_unlock(&table_mu);
	return e;
}

bool dir_sync(const char *dir)
{
	uint64_t ticket, upto;
	bool ok = true;
	struct dir_entry *e = dir_ticket(dir, &ticket);

	pthread_mutex_lock(&e->mu);
	if (e->synced < ticket) {
		pthread_mutex_lock(&table_mu);
		upto = e->tickets;
		pthread_mutex_unlock(&table_mu);
		int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fd < 0 || fsync(fd) < 0)
			ok = false;
		else
			e->synced = upto;
		if (fd >= 0)
			close(fd);
	}
	pthread_mutex_unlock(&e->mu);
	return ok;
}
