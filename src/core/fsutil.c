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

/* fsync one directory by name (no grouping: directory creation is rare). */
static bool sync_dir_path(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	bool ok = fd >= 0 && fsync(fd) == 0;
	int saved = errno;

	if (fd >= 0)
		close(fd);
	errno = saved;
	return ok;
}

/* The directory that holds the entry for path (which has no trailing '/'). */
static bool sync_parent(char *path)
{
	char *slash = strrchr(path, '/');
	bool ok;

	if (slash == NULL)
		return sync_dir_path(".");
	if (slash == path)
		return sync_dir_path("/");
	*slash = '\0';
	ok = sync_dir_path(path);
	*slash = '/';
	return ok;
}

/*
 * A new directory is only as durable as the entry naming it in its
 * parent: after a crash, a file committed into a Maildir whose new/ (or
 * whose user's directory) was never synced into its parent is lost with
 * it, although its own fsync and the fsync of new/ succeeded.  So each
 * directory created here is synced (its inode) and then its parent (the
 * new entry) before the next one down is made: whoever finds a directory
 * in place may rely on everything above it.  One lock over the whole
 * walk: a second caller making the same path waits for the first one's
 * syncs instead of finding its directories there and going on before
 * they are durable.  Creation is rare, so the lock costs nothing.
 */
static pthread_mutex_t mkdir_mu = PTHREAD_MUTEX_INITIALIZER;

bool mkdir_p(const char *path, mode_t mode)
{
	char *p = xstrdup(path);
	bool ok = true;
	int saved = 0;

	pthread_mutex_lock(&mkdir_mu);
	for (char *s = p + 1; ok; s++) {
		if (*s == '/' || *s == '\0') {
			char c = *s;
			*s = '\0';
			if (mkdir(p, mode) == 0)
				ok = sync_dir_path(p) && sync_parent(p);
			else if (errno != EEXIST)
				ok = false;
			*s = c;
			if (c == '\0')
				break;
		}
	}
	saved = errno;
	pthread_mutex_unlock(&mkdir_mu);
	free(p);
	errno = saved;
	return ok;
}

/*
 * Give tmp the name dst unless dst exists: a commit must never replace a
 * file (a queued message or a delivered one) that has the same name.
 * renameat2(RENAME_NOREPLACE) is atomic; where the file system does not
 * offer it, link + unlink gives the same answer (EEXIST) at the cost of
 * a moment with two names, which is harmless: tmp/ is emptied at start.
 */
static int rename_noreplace(const char *tmp, const char *dst)
{
	if (renameat2(AT_FDCWD, tmp, AT_FDCWD, dst, RENAME_NOREPLACE) == 0)
		return 0;
	if (errno != EINVAL && errno != ENOSYS)
		return errno;
	if (link(tmp, dst) < 0)
		return errno;
	unlink(tmp);
	return 0;
}

/*
 * Give the anonymous file open on fd (O_TMPFILE) the name dst; like a
 * link, never over an existing file (EEXIST).  AT_EMPTY_PATH needs
 * CAP_DAC_READ_SEARCH before Linux 6.10 (ENOENT without it); the
 * /proc/self/fd path does the same without it.
 */
static int link_noreplace(int fd, const char *dst)
{
	char proc[64];

	if (linkat(fd, "", AT_FDCWD, dst, AT_EMPTY_PATH) == 0)
		return 0;
	if (errno != ENOENT && errno != EPERM)
		return errno;
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
	if (linkat(AT_FDCWD, proc, AT_FDCWD, dst, AT_SYMLINK_FOLLOW) == 0)
		return 0;
	return errno;
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
			if (w->items[i].err == 0)
				w->items[i].err = w->items[i].tmp != NULL
							  ? rename_noreplace(w->items[i].tmp, w->items[i].dst)
							  : link_noreplace(w->items[i].fd, w->items[i].dst);
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
