/*
 * greylist_store.h - the greylisting triplets and the clients that
 * passed, in memory with an append-only log on disk.
 *
 * The log is text, one record a line, each with its own checksum:
 *   FIRST LAST PASSED KEY CHECKSUM
 * (seconds since the epoch, 0 or 1, a key without spaces or controls,
 * 16 hex digits of FNV-1a 64 over what comes before it).  Opening
 * replays it: the last record of a key wins, a line that is torn (no
 * newline: a crash in the middle of a write) or fails its checksum is
 * skipped, expired entries are dropped, and the file is rewritten
 * compacted (tmp, fsync, rename, directory fsync).  While running, each
 * change is one small append (write(2) to an O_APPEND descriptor, no
 * fsync; an fdatasync on the worker pool at most every few seconds); when the log holds far more records than live entries it is
 * rewritten the same way on the worker pool.
 *
 * Why no fsync per record, and none before the 451 of a first sighting:
 * a record lost to a power cut costs a client one more 451 (its triplet
 * is new again, and it retries as it must for any 4xx), never a message;
 * a process crash loses nothing, the data being in the kernel once
 * write(2) returned.  A sync per RCPT would put a disk flush in every
 * SMTP transaction of the MX for no mail saved.  Compaction syncs everything it writes before the rename.
 *
 * Bounded: at max_entries the entry touched longest ago goes first.
 */
#ifndef TERN_GREYLIST_STORE_H
#define TERN_GREYLIST_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct workers;
struct grey_store;

struct grey_entry {
	int64_t first;       /* first seen */
	int64_t last;        /* last seen (expiry counts from here) */
	bool passed;
};

#define GREY_KEY_MAX 1100

/* NULL with *err set (free it) when the file cannot be read or written.
 * workers may be NULL: compaction then runs in the caller. */
struct grey_store *grey_store_open(const char *path, unsigned max_entries, uint64_t expire,
				   int64_t now, struct workers *workers, char **err);
/* Waits for a compaction in progress (the worker pool's done()). */
void grey_store_close(struct grey_store *g);

bool grey_store_get(struct grey_store *g, const char *key, struct grey_entry *out);
/* Set key's entry (in memory, then one append). */
void grey_store_put(struct grey_store *g, const char *key, const struct grey_entry *e, int64_t now);
/* Drop entries whose last sighting is older than expire. */
size_t grey_store_prune(struct grey_store *g, int64_t now);
size_t grey_store_count(const struct grey_store *g);
/* Records appended since the last compaction (tests). */
size_t grey_store_log_records(const struct grey_store *g);
/* Rewrite the file compacted now (on the pool when there is one). */
void grey_store_compact(struct grey_store *g);
/* A key's form in the file: octets outside '!'..'~' and '%' as %XX. */
void grey_store_key_escape(const char *in, char *out, size_t cap);

#endif
