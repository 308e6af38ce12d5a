/*
 * fsutil.c - see fsutil.h.
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
