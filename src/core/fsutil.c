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

/* The same ticket scheme as dir_sync(), over a whole file system: a
 * caller's data was written before it took its ticket, so any syncfs of
 * that file system that starts after the ticket was issued covers it.
 * Groups are per device, so a state_dir whose mail/ is mounted elsewhere
 * never counts one file system's sync for another. */
#define FS_GROUPS 8

struct fs_group {
	dev_t dev;
	bool used;
	uint64_t tickets;         /* under fs_table_mu */
	uint64_t synced;          /* under mu */
	pthread_mutex_t mu;
};

static pthread_mutex_t fs_table_mu = PTHREAD_MUTEX_INITIALIZER;
static struct fs_group fs_groups[FS_GROUPS];

static struct fs_group *fs_ticket(dev_t dev, uint64_t *ticket)
{
	struct fs_group *g = NULL;
	pthread_mutex_lock(&fs_table_mu);
	for (size_t i = 0; i < FS_GROUPS && g == NULL; i++) {
		if (fs_groups[i].used && fs_groups[i].dev == dev) {
			g = &fs_groups[i];
		} else if (!fs_groups[i].used) {
			g = &fs_groups[i];
			g->used = true;
			g->dev = dev;
			pthread_mutex_init(&g->mu, NULL);
		}
	}
	if (g)
		*ticket = ++g->tickets;
	pthread_mutex_unlock(&fs_table_mu);
	return g;
}

bool file_sync_grouped(int fd)
{
	struct stat st;
	struct fs_group *g;
	uint64_t ticket, upto;
	bool ok = true;

	if (fstat(fd, &st) < 0 || (g = fs_ticket(st.st_dev, &ticket)) == NULL)
		return fsync(fd) == 0;
	pthread_mutex_lock(&g->mu);
	if (g->synced < ticket) {
		pthread_mutex_lock(&fs_table_mu);
		upto = g->tickets;
		pthread_mutex_unlock(&fs_table_mu);
		if (syncfs(fd) == 0)
			g->synced = upto;
		else
			ok = false;
	}
	pthread_mutex_unlock(&g->mu);
	return ok || fsync(fd) == 0;
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
