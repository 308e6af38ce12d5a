/*
 * maildir.c - Maildir delivery (https://cr.yp.to/proto/maildir.html).
 *
 * Unique names are "SECONDS.M<usec>P<pid>Q<n>.HOST,S=<octets>,W=<octets
 * with CRLF line ends>": the time, pid and a process-wide counter make the
 * name unique on this host, and the sizes let POP3 answer STAT and LIST
 * without reading files (Dovecot reads the same fields).
 */
#include "store/maildir.h"
#include "core/fsutil.h"
#include "core/util.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
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
		if (r <= 0)
			return false;
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

bool maildir_open_stream(struct maildir_file *mf, const char *path, const char *hostname)
{
	maildir_unique(mf, hostname);
	snprintf(mf->tmp, sizeof(mf->tmp), "%s/tmp/%s", path, mf->base);
	snprintf(mf->path, sizeof(mf->path), "%s", path);
	mf->fd = open(mf->tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	return mf->fd >= 0;
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
	snprintf(mf->tmp, sizeof(mf->tmp), "%s/tmp/%s", path, mf->base);

	mf->fd = open(mf->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (mf->fd < 0 && errno == ENOENT && maildir_create(path))
		mf->fd = open(mf->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
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
	c->tmp = mf->tmp;
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
