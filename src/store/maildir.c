/*
 * maildir.c - Maildir delivery (https://cr.yp.to/proto/maildir.html).
 *
 * Unique names are "SECONDS.M<usec>P<pid>Q<n>.HOST,S=<octets>,W=<octets
 * with CRLF line ends>": the time, pid and a process-wide counter make the
 * name unique on this host, and the sizes let POP3 answer STAT and LIST
 * without reading files (Dovecot reads the same fields).
 *
 * A streamed message (all-local mail written as it arrives) goes into an
 * anonymous file in tmp/ (O_TMPFILE) that gets its name in new/ by
 * linkat() once synced: creating a named file holds tmp/'s lock while the
 * file system picks an inode, and on ext4 without a journal that walks
 * every inode deleted in the last minutes (recently_deleted()): a
 * millisecond and more on a busy server, during which every other
 * creation and every rename out of tmp/ waits, spinning.  An anonymous
 * file is created without the directory's lock, and linkat() locks only
 * new/ (a rename out of tmp/ locks both, and the file system's rename
 * lock).  Such files are made ahead, a few per busy Maildir, on a worker
 * (the spares below), so that the event loop does not make them either
 * (unless none is ready).  Copies made on a worker (maildir_prepare()) are
 * anonymous files too.  A crash leaves nothing behind in tmp/: an
 * anonymous file has no name.
 *
 * Durability is the same as a rename's: the data is synced, then linked,
 * then new/ synced (fs_commit()).  The link count the link gives the
 * inode is committed with new/ by a journalling file system (one
 * transaction); ext4 without a journal needs its fsck after a crash
 * either way (it does not sync the inode bitmap of a named file either),
 * and fsck gives the inode the count its one name says.
 */
#include "store/maildir.h"
#include "core/fsutil.h"
#include "core/util.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

static atomic_uint_fast64_t maildir_seq;
static atomic_int maildir_pid;

char *maildir_path(const char *state_dir, const char *domain, const char *local)
{
	return xasprintf("%s/mail/%s/%s/Maildir", state_dir, domain, local);
}

/* tmp/ last: a delivery that finds tmp/ goes on without creating
 * anything, so everything it relies on (new/ and every directory above,
 * each synced by mkdir_p as it is made) must be durable by then. */
bool maildir_create(const char *path)
{
	static const char *const subs[] = { "new", "cur", "tmp" };
	char buf[4096];
	for (size_t i = 0; i < ARRAY_LEN(subs); i++) {
		snprintf(buf, sizeof(buf), "%s/%s", path, subs[i]);
		if (!mkdir_p(buf, 0700))
			return false;
	}
	return true;
}

/* '/' and ':' cannot appear in the host part of a Maildir name. */
static void safe_host(const char *h, char *out, size_t cap)
{
	size_t o = 0;
	for (; *h && o + 5 < cap; h++) {
		if (*h == '/' || *h == ':' || *h == ',')
			o += (size_t)snprintf(out + o, cap - o, "\\%03o", (unsigned char)*h);
		else
			out[o++] = *h;
	}
	out[o] = '\0';
}

static bool copy_range(int dst, int src, off_t off, uint64_t len)
{
	char buf[65536];
	while (len > 0) {
		ssize_t n = copy_file_range(src, &off, dst, NULL, len, 0);
		if (n > 0) {
			len -= (uint64_t)n;
			continue;
		}
		if (n < 0 && errno != EXDEV && errno != ENOSYS && errno != EINVAL && errno != EOPNOTSUPP)
			return false;
		/* Fall back to read/write (other file system, old kernel). */
		size_t want = len < sizeof(buf) ? (size_t)len : sizeof(buf);
		ssize_t r = pread(src, buf, want, off);
		if (r <= 0) {
			if (r == 0)
				errno = EIO;   /* the source is shorter than it should be */
			return false;
		}
		if (!write_all(dst, buf, (size_t)r))
			return false;
		off += r;
		len -= (uint64_t)r;
	}
	return true;
}

static void maildir_discard(struct maildir_file *mf)
{
	if (mf->fd >= 0) {
		close(mf->fd);
		mf->fd = -1;
		if (mf->tmp[0] != '\0')   /* an anonymous file goes with its descriptor */
			unlink(mf->tmp);
	}
}

/* The unique part of a new file's name, in mf->base. */
static void maildir_unique(struct maildir_file *mf, const char *hostname)
{
	char host[256];
	struct timeval tv;

	if (atomic_load(&maildir_pid) == 0)
		atomic_store(&maildir_pid, (int)getpid());
	gettimeofday(&tv, NULL);
	safe_host(hostname, host, sizeof(host));
	snprintf(mf->base, sizeof(mf->base), "%lld.M%ldP%dQ%" PRIu64 ".%s",
		 (long long)tv.tv_sec, (long)tv.tv_usec, atomic_load(&maildir_pid),
		 (uint64_t)atomic_fetch_add(&maildir_seq, 1) + 1, host);
}

/* The name in new/: the unique part with the sizes (see the top). */
static void maildir_sized_name(struct maildir_file *mf, const char *path, uint64_t size, uint64_t vsize)
{
	size_t n = strlen(mf->base);

	snprintf(mf->base + n, sizeof(mf->base) - n, ",S=%" PRIu64 ",W=%" PRIu64, size, vsize);
	snprintf(mf->dst, sizeof(mf->dst), "%s/new/%s", path, mf->base);
	snprintf(mf->newdir, sizeof(mf->newdir), "%s/new", path);
}

/* ---- spare anonymous files ------------------------------------------------ */

/* At most 64 descriptors (core/server.c's TERN_FD_RESERVE counts them).
 * A Maildir gets spares from its second stream in a row on: one that
 * gets a message now and then does not cost a pool that is closed unused
 * (each closed one a deleted inode) when another Maildir takes its slot. */
#define SPARE_DIRS 8         /* Maildirs with spares at a time */
#define SPARE_FILES 8        /* spares per Maildir */

struct spare_dir {
	char *path;          /* the Maildir; NULL: slot free */
	int fd[SPARE_FILES];
	size_t n;
	bool filling;        /* a worker is making spares for it */
	uint64_t used;       /* when last taken from (spare_clock) */
	unsigned streams;    /* streams opened since it got the slot */
	bool pooled;         /* spares have been asked for (and made) before */
};

static pthread_mutex_t spare_mu = PTHREAD_MUTEX_INITIALIZER;
static struct spare_dir spare_dirs[SPARE_DIRS];
static uint64_t spare_clock;
static atomic_int tmpfile_unsupported;

/* An anonymous file in path's tmp/, or -1 (errno) when there is none:
 * tmp/ missing, or O_TMPFILE not offered by this file system. */
static int open_anonymous(const char *path)
{
	char dir[4096 + 8];
	int fd;

	if (atomic_load(&tmpfile_unsupported)) {
		errno = EOPNOTSUPP;
		return -1;
	}
	snprintf(dir, sizeof(dir), "%s/tmp", path);
	fd = open(dir, O_RDWR | O_TMPFILE | O_CLOEXEC, 0600);
	if (fd < 0 && (errno == EOPNOTSUPP || errno == EISDIR || errno == EINVAL))
		atomic_store(&tmpfile_unsupported, 1);
	return fd;
}

static void spare_slot_clear(struct spare_dir *d)
{
	for (size_t i = 0; i < d->n; i++)
		close(d->fd[i]);
	free(d->path);
	memset(d, 0, sizeof(*d));
}

/* Under spare_mu: path's slot, or NULL (make: take a free or the least
 * recently used idle one for it). */
static struct spare_dir *spare_slot(const char *path, bool make)
{
	struct spare_dir *victim = NULL;

	for (size_t i = 0; i < SPARE_DIRS; i++) {
		struct spare_dir *d = &spare_dirs[i];
		if (d->path != NULL && strcmp(d->path, path) == 0)
			return d;
		if (!d->filling && (victim == NULL || d->path == NULL ||
				    (victim->path != NULL && d->used < victim->used)))
			victim = d;
	}
	if (!make || victim == NULL)
		return NULL;
	spare_slot_clear(victim);
	victim->path = xstrdup(path);
	return victim;
}

/* A spare of path's, or -1.  make: the loop's streams give path a slot
 * (workers' deliveries only use one that is there). */
static int spare_take(const char *path, bool make, bool *pooled)
{
	struct spare_dir *d;
	int fd = -1;

	pthread_mutex_lock(&spare_mu);
	d = spare_slot(path, make);
	if (d != NULL && make) {
		d->used = ++spare_clock;
		d->streams++;
	}
	if (d != NULL) {
		if (d->n > 0)
			fd = d->fd[--d->n];
		if (pooled)
			*pooled = d->pooled;
	}
	pthread_mutex_unlock(&spare_mu);
	return fd;
}

/* Loop thread, once a stream is open in path: true when spares should
 * be made for it (the caller runs maildir_spares_fill() on a worker). */
static bool spare_claim_fill(const char *path)
{
	struct spare_dir *d;
	bool fill = false;

	pthread_mutex_lock(&spare_mu);
	d = spare_slot(path, false);
	/* in batches: one job per half a pool */
	if (d != NULL && d->streams >= 2 && !d->filling && d->n <= SPARE_FILES / 2)
		fill = d->filling = d->pooled = true;
	pthread_mutex_unlock(&spare_mu);
	return fill;
}

void maildir_spares_fill(const char *path)
{
	for (;;) {
		struct spare_dir *d;
		int fd;

		/* made only while wanted: an unused one, closed, would be one
		 * more recently deleted inode for the next creation to walk */
		pthread_mutex_lock(&spare_mu);
		d = spare_slot(path, false);
		if (d != NULL && d->n == SPARE_FILES)
			d->filling = false;
		pthread_mutex_unlock(&spare_mu);
		if (d == NULL || !d->filling)
			return;
		fd = open_anonymous(path);
		pthread_mutex_lock(&spare_mu);
		d = spare_slot(path, false);
		if (d == NULL || fd < 0 || d->n == SPARE_FILES) {
			if (d != NULL)
				d->filling = false;
			pthread_mutex_unlock(&spare_mu);
			if (fd >= 0)
				close(fd);
			return;
		}
		d->fd[d->n++] = fd;
		pthread_mutex_unlock(&spare_mu);
	}
}

void maildir_spares_drop(void)
{
	pthread_mutex_lock(&spare_mu);
	for (size_t i = 0; i < SPARE_DIRS; i++)
		if (!spare_dirs[i].filling)
			spare_slot_clear(&spare_dirs[i]);
	pthread_mutex_unlock(&spare_mu);
}

bool maildir_open_stream(struct maildir_file *mf, const char *path, const char *hostname, bool *fill)
{
	bool pooled = false;

	maildir_unique(mf, hostname);
	snprintf(mf->path, sizeof(mf->path), "%s", path);
	mf->tmp[0] = '\0';
	*fill = false;
	mf->fd = spare_take(path, true, &pooled);
	if (mf->fd < 0 && pooled && !atomic_load(&tmpfile_unsupported)) {
		/* a burst has taken every spare of a busy Maildir: this message
		 * goes into its queue file, copied into the Maildir on the
		 * worker, rather than the loop wait for an inode */
		*fill = spare_claim_fill(path);
		errno = EAGAIN;
		return false;
	}
	if (mf->fd < 0)   /* none made yet: its first messages */
		mf->fd = open_anonymous(path);
	if (mf->fd >= 0) {
		*fill = spare_claim_fill(path);
		return true;
	}
	if (errno == ENOENT)   /* no tmp/: no Maildir yet */
		return false;
	/* no O_TMPFILE here: a named file, as the Maildir spec has it */
	snprintf(mf->tmp, sizeof(mf->tmp), "%s/tmp/%s", path, mf->base);
	mf->fd = open(mf->tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	return mf->fd >= 0;
}

bool maildir_stream_folder(struct maildir_file *mf, const char *folder)
{
	size_t n = strlen(mf->path);

	snprintf(mf->path + n, sizeof(mf->path) - n, "/%s", folder);
	return maildir_create(mf->path);
}

void maildir_stream_sized(struct maildir_file *mf, uint64_t size, uint64_t vsize)
{
	maildir_sized_name(mf, mf->path, size, vsize);
}

bool maildir_prepare(struct maildir_file *mf, const char *path, const char *hostname,
		     const char *prefix, size_t prefix_len, uint64_t prefix_lines,
		     int src_fd, off_t offset, uint64_t len, uint64_t msg_lines)
{
	uint64_t size = prefix_len + len;
	uint64_t vsize = size + prefix_lines + msg_lines;
	int saved;

	maildir_unique(mf, hostname);
	maildir_sized_name(mf, path, size, vsize);
	mf->tmp[0] = '\0';

	/* anonymous, as a stream's (see the top): a spare when there is one */
	mf->fd = spare_take(path, false, NULL);
	if (mf->fd < 0)
		mf->fd = open_anonymous(path);
	if (mf->fd < 0 && errno == ENOENT && maildir_create(path))
		mf->fd = open_anonymous(path);
	if (mf->fd < 0 && atomic_load(&tmpfile_unsupported)) {
		snprintf(mf->tmp, sizeof(mf->tmp), "%s/tmp/%s", path, mf->base);
		mf->fd = open(mf->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		if (mf->fd < 0 && errno == ENOENT && maildir_create(path))
			mf->fd = open(mf->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	}
	if (mf->fd < 0)
		return false;
	if (write_all(mf->fd, prefix, prefix_len) && copy_range(mf->fd, src_fd, offset, len))
		return true;
	saved = errno;
	maildir_discard(mf);
	errno = saved;
	return false;
}

void maildir_commit_item(struct maildir_file *mf, struct fs_commit *c)
{
	c->fd = mf->fd;
	c->tmp = mf->tmp[0] != '\0' ? mf->tmp : NULL;   /* NULL: linked by its descriptor */
	c->dst = mf->dst;
	c->dir = mf->newdir;
	c->err = 0;
}


void maildir_finish(struct maildir_file *mf, bool committed)
{
	if (committed) {
		close(mf->fd);
		mf->fd = -1;
	} else {
		maildir_discard(mf);
	}
}
