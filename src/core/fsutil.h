/*
 * fsutil.h - durable file system helpers: full writes, directory creation,
 * and grouped directory fsync (one fsync covers every rename made before
 * it started, whichever thread made it).
 */
#ifndef TERN_FSUTIL_H
#define TERN_FSUTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* write(2) until all is written; false with errno set on failure. */
bool write_all(int fd, const void *buf, size_t len);
/* mkdir -p with mode for the created directories. */
bool mkdir_p(const char *path, mode_t mode);
/* Make every directory-entry change already made in dir durable.  Safe to
 * call from many threads at once: concurrent callers share one fsync. */
bool dir_sync(const char *dir);

/* Make fd's data and size durable.  Concurrent callers share one sync of
 * the whole file system (syncfs): one flush of the disk cache covers every
 * file written before it began, so N messages committed at once cost one
 * disk flush instead of N.  Falls back to fsync when syncfs fails. */
bool file_sync_grouped(int fd);

#endif
