/*
 * fsutil.h - durable file system helpers: full writes, directory creation,
 * group commit of new files, and grouped directory fsync (one fsync covers
 * every rename made before it started, whichever thread made it).
 */
#ifndef TERN_FSUTIL_H
#define TERN_FSUTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* write(2) until all is written; false with errno set on failure. */
bool write_all(int fd, const void *buf, size_t len);
/* mkdir -p with mode for the created directories; every directory it
 * created, and the parent of the topmost, is fsync'd before it returns. */
bool mkdir_p(const char *path, mode_t mode);
/* Insert buf at offset at of a file whose len octets from at are data,
 * moving them up (back to front, through a bounded buffer); the file
 * offset is left at the new end.  False, errno set, on failure. */
bool fs_insert(int fd, off_t at, uint64_t len, const void *buf, size_t n);
/* Make every directory-entry change already made in dir durable.  Safe to
 * call from many threads at once: concurrent callers share one fsync. */
bool dir_sync(const char *dir);

/* One new file to commit: written (fd still open) as tmp, to become dst,
 * whose directory is dir. */
struct fs_commit {
	int fd;
	const char *tmp, *dst, *dir;   /* tmp NULL: fd is anonymous (O_TMPFILE), linked to dst */
	int err;                  /* out: 0, or the errno of the failed step */
};

/* Make each item durable under its final name: its data and size on disk
 * (fdatasync), then rename(tmp, dst) (or link fd there), then dir fsync'd - in that order, so
 * a name never points at missing data.  An existing dst is never
 * replaced: that item fails with EEXIST and stays at tmp.  The renames and directory syncs of
 * concurrent callers are grouped into one round with one fsync per
 * directory.  Returns true when every item succeeded.
 * An item that failed before its rename is still at tmp; one whose
 * directory sync failed is at dst but not known to be durable. */
bool fs_commit(struct fs_commit *items, size_t n);

#endif
