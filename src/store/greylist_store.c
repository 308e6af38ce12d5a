/*
 * greylist_store.c - greylisting entries: a hash table with an age
 * list in memory, an append-only checksummed log on disk (see the
 * header for the format and why records are not synced one by one).
 */
#include "store/greylist_store.h"
#include "core/fsutil.h"
#include "core/log.h"
#include "core/util.h"
#include "core/workers.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define GREY_COMPACT_MIN 4096     /* records before a compaction is worth it */
#define GREY_LINE_MAX (GREY_KEY_MAX + 96)
#define GREY_SYNC_EVERY 5         /* seconds: at most one fdatasync job this often */
#define GREY_FULL_LOG_EVERY 60    /* seconds: at most one greylist_store_full line this often */

struct gentry {
	char *key;
	struct grey_entry e;
	struct gentry *hnext, *older, *newer;
};

struct compact_job {
	struct grey_store *g;
	char *buf;                /* the whole compacted file */
	size_t len;
	int err;
};

struct grey_store {
	char *path, *tmp, *dir;
	int fd;
	unsigned max_entries;
	uint64_t expire;
	struct workers *workers;
	size_t n, nbuckets;
	struct gentry **b;
	struct gentry *oldest, *newest;
	size_t records;           /* in the log since it was last rewritten */
	bool compacting;
	/* Records appended while a compaction runs: they go to the old file
	 * and here, and are appended to the new file once it is in place. */
	char *pend;
	size_t pend_len, pend_cap;
	bool syncing;             /* an fdatasync job is on the pool */
	int64_t synced_at;
	size_t evicted;           /* pushed out by max_entries, not logged yet */
	int64_t full_logged_at;
};

struct sync_job {
	struct grey_store *g;
	int fd;                   /* a dup: compaction may swap g->fd meanwhile */
	int err;
};

static void log_greylist_store_error(const char *path, const char *what, int err)
{
	log_event("event=greylist_store_error path=%s op=%s error=\"%s\"", path, what, strerror(err));
}

static void log_greylist_store_replayed(const char *path, size_t entries, size_t records, size_t bad,
					size_t evicted)
{
	log_event("event=greylist_store_open path=%s entries=%zu records=%zu skipped=%zu evicted=%zu", path, entries,
		  records, bad, evicted);
}

/* The bound is reached: greylisting goes on, but clients whose entries
 * went are greylisted again.  One line a minute at most, with the count
 * since the last one. */
static void log_greylist_store_full(const char *path, unsigned max_entries, size_t evicted)
{
	log_event("event=greylist_store_full path=%s max_entries=%u evicted=%zu", path, max_entries, evicted);
}

static uint64_t fnv64(const char *p, size_t n)
{
	uint64_t h = 1469598103934665603ULL;
	for (size_t i = 0; i < n; i++)
		h = (h ^ (unsigned char)p[i]) * 1099511628211ULL;
	return h;
}

void grey_store_key_escape(const char *in, char *out, size_t cap)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t o = 0;

	for (; *in && o + 4 < cap; in++) {
		unsigned char c = (unsigned char)*in;
		if (c <= ' ' || c > '~' || c == '%') {
			out[o++] = '%';
			out[o++] = hex[c >> 4];
			out[o++] = hex[c & 15];
		} else {
			out[o++] = (char)c;
		}
	}
	out[o] = '\0';
}

/* ---- memory ---- */

static size_t bucket(const struct grey_store *g, const char *key)
{
	return (size_t)(fnv64(key, strlen(key)) % g->nbuckets);
}

static struct gentry *find(struct grey_store *g, const char *key)
{
	for (struct gentry *e = g->b[bucket(g, key)]; e; e = e->hnext)
		if (strcmp(e->key, key) == 0)
			return e;
	return NULL;
}

static void age_unlink(struct grey_store *g, struct gentry *e)
{
	if (e->older) e->older->newer = e->newer; else g->oldest = e->newer;
	if (e->newer) e->newer->older = e->older; else g->newest = e->older;
	e->older = e->newer = NULL;
}

static void age_push(struct grey_store *g, struct gentry *e)
{
	e->older = g->newest;
	if (g->newest) g->newest->newer = e; else g->oldest = e;
	g->newest = e;
}

static void drop(struct grey_store *g, struct gentry *e)
{
	struct gentry **pp = &g->b[bucket(g, e->key)];
	while (*pp != e)
		pp = &(*pp)->hnext;
	*pp = e->hnext;
	age_unlink(g, e);
	g->n--;
	free(e->key);
	free(e);
}

/* In memory only: replay and put share it. */
static void set(struct grey_store *g, const char *key, const struct grey_entry *v)
{
	struct gentry *e = find(g, key);

	if (e == NULL) {
		while (g->n >= g->max_entries && g->oldest) {
			drop(g, g->oldest);
			g->evicted++;
		}
		e = xcalloc(1, sizeof(*e));
		e->key = xstrdup(key);
		size_t h = bucket(g, key);
		e->hnext = g->b[h];
		g->b[h] = e;
		g->n++;
	} else {
		age_unlink(g, e);
	}
	e->e = *v;
	age_push(g, e);   /* replay sees records in time order too */
}

/* ---- the file ---- */

static int format_record(char *out, size_t cap, const char *key, const struct grey_entry *e)
{
	int n = snprintf(out, cap, "%" PRId64 " %" PRId64 " %d %s", e->first, e->last, e->passed ? 1 : 0, key);
	if (n < 0 || (size_t)n + 18 >= cap)
		return -1;
	n += snprintf(out + n, cap - (size_t)n, " %016" PRIx64 "\n", fnv64(out, (size_t)n));
	return n;
}

/* One line without its newline; false when it fails its checksum or form. */
static bool parse_record(char *line, size_t len, char **key, struct grey_entry *e)
{
	char *sp = memrchr(line, ' ', len), *end;
	unsigned long long f, l;
	unsigned long p;
	uint64_t sum;

	if (sp == NULL || line + len - sp != 17)
		return false;
	sum = strtoull(sp + 1, &end, 16);
	if (end != line + len || sum != fnv64(line, (size_t)(sp - line)))
		return false;
	*sp = '\0';
	errno = 0;
	f = strtoull(line, &end, 10);
	if (*end != ' ')
		return false;
	l = strtoull(end + 1, &end, 10);
	if (*end != ' ')
		return false;
	p = strtoul(end + 1, &end, 10);
	if (*end != ' ' || p > 1 || errno || end[1] == '\0' || strchr(end + 1, ' '))
		return false;
	e->first = (int64_t)f;
	e->last = (int64_t)l;
	e->passed = p == 1;
	*key = end + 1;
	return true;
}

static void replay(struct grey_store *g, FILE *fp, int64_t now, size_t *records, size_t *bad)
{
	char line[GREY_LINE_MAX + 2];

	while (fgets(line, sizeof(line), fp)) {
		size_t len = strlen(line);
		char *key;
		struct grey_entry e;

		if (len == 0 || line[len - 1] != '\n') {
			/* Too long (not ours) or torn by a crash: skip to the
			 * next newline. */
			int c;
			if (len == sizeof(line) - 1)
				while ((c = fgetc(fp)) != EOF && c != '\n')
					;
			(*bad)++;
			continue;
		}
		line[--len] = '\0';
		(*records)++;
		if (!parse_record(line, len, &key, &e)) {
			(*bad)++;
			continue;
		}
		if (e.last + (int64_t)g->expire > now)
			set(g, key, &e);
		else if (find(g, key))
			drop(g, find(g, key));
	}
}

/* The compacted file's contents, oldest first so that a replay rebuilds
 * the same age order. */
static char *snapshot(struct grey_store *g, size_t *len)
{
	size_t cap = 4096, n = 0;
	char *buf = xmalloc(cap), rec[GREY_LINE_MAX];

	for (struct gentry *e = g->oldest; e; e = e->newer) {
		int r = format_record(rec, sizeof(rec), e->key, &e->e);
		if (r < 0)
			continue;
		if (n + (size_t)r > cap) {
			while (n + (size_t)r > cap)
				cap *= 2;
			buf = xrealloc(buf, cap);
		}
		memcpy(buf + n, rec, (size_t)r);
		n += (size_t)r;
	}
	*len = n;
	return buf;
}

/* Worker thread (or start-up): tmp, fsync, rename, directory fsync - the
 * rename only after the data is on disk, so the name never points at a
 * partial file; the directory sync makes the rename itself survive. */
static void compact_write(void *arg)
{
	struct compact_job *j = arg;
	struct grey_store *g = j->g;
	int fd = open(g->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	j->err = 0;
	if (fd < 0 || !write_all(fd, j->buf, j->len) || fdatasync(fd) != 0)
		j->err = errno ? errno : EIO;
	if (fd >= 0)
		close(fd);
	if (j->err == 0 && rename(g->tmp, g->path) != 0)
		j->err = errno;
	if (j->err == 0 && !dir_sync(g->dir))
		j->err = errno;
}

/* Loop thread: swap to the new file and append what came meanwhile. */
static void compact_done(void *arg)
{
	struct compact_job *j = arg;
	struct grey_store *g = j->g;

	g->compacting = false;
	if (j->err) {
		log_greylist_store_error(g->path, "compact", j->err);
		unlink(g->tmp);
	} else {
		int fd = open(g->path, O_WRONLY | O_APPEND | O_CLOEXEC);
		if (fd < 0) {
			log_greylist_store_error(g->path, "open", errno);
		} else {
			if (g->pend_len && !write_all(fd, g->pend, g->pend_len))
				log_greylist_store_error(g->path, "append", errno);
			if (g->fd >= 0)
				close(g->fd);
			g->fd = fd;
			g->records = g->n + g->pend_len / 32;
		}
	}
	g->pend_len = 0;
	free(j->buf);
	free(j);
}

void grey_store_compact(struct grey_store *g)
{
	struct compact_job *j;

	if (g->compacting)
		return;
	j = xcalloc(1, sizeof(*j));
	j->g = g;
	j->buf = snapshot(g, &j->len);
	g->compacting = true;
	g->pend_len = 0;
	if (g->workers) {
		workers_submit(g->workers, compact_write, compact_done, j);
	} else {
		compact_write(j);
		compact_done(j);
	}
}

struct grey_store *grey_store_open(const char *path, unsigned max_entries, uint64_t expire,
				   int64_t now, struct workers *workers, char **err)
{
	struct grey_store *g = xcalloc(1, sizeof(*g));
	size_t records = 0, bad = 0;
	char *d;
	FILE *fp;

	g->path = xstrdup(path);
	g->tmp = xasprintf("%s.tmp", path);
	d = xstrdup(path);
	g->dir = xstrdup(dirname(d));
	free(d);
	g->max_entries = max_entries ? max_entries : 1;
	g->expire = expire;
	g->nbuckets = g->max_entries / 2 + 17;
	g->b = xcalloc(g->nbuckets, sizeof(*g->b));
	g->fd = -1;
	fp = fopen(path, "r");
	if (fp) {
		replay(g, fp, now, &records, &bad);
		fclose(fp);
	} else if (errno != ENOENT) {
		*err = xasprintf("%s: %s", path, strerror(errno));
		grey_store_close(g);
		return NULL;
	}
	/* At start the loop is not running yet: compact in place. */
	grey_store_compact(g);
	if (g->fd < 0) {
		*err = xasprintf("%s: cannot write the greylist file", path);
		grey_store_close(g);
		return NULL;
	}
	g->records = g->n;
	g->workers = workers;
	log_greylist_store_replayed(path, g->n, records, bad, g->evicted);
	g->evicted = 0;
	return g;
}

void grey_store_close(struct grey_store *g)
{
	if (g == NULL)
		return;
	/* A compaction's done() must not outlive us: the caller frees the
	 * pool (which runs the remaining done()s) before closing. */
	if (g->fd >= 0)
		close(g->fd);
	while (g->oldest)
		drop(g, g->oldest);
	free(g->b);
	free(g->pend);
	free(g->path);
	free(g->tmp);
	free(g->dir);
	free(g);
}

bool grey_store_get(struct grey_store *g, const char *key, struct grey_entry *out)
{
	struct gentry *e = find(g, key);
	if (e == NULL)
		return false;
	*out = e->e;
	return true;
}

static void sync_work(void *arg)
{
	struct sync_job *j = arg;
	j->err = fdatasync(j->fd) == 0 ? 0 : errno;
	close(j->fd);
}

static void sync_done(void *arg)
{
	struct sync_job *j = arg;
	j->g->syncing = false;
	if (j->err)
		log_greylist_store_error(j->g->path, "fdatasync", j->err);
	free(j);
}

/* The records are not synced one by one (see the header), but now and
 * then on the pool, so that a power cut loses only the last seconds. */
static void maybe_sync(struct grey_store *g, int64_t now)
{
	struct sync_job *j;
	int fd;

	if (g->workers == NULL || g->syncing || g->fd < 0 || now - g->synced_at < GREY_SYNC_EVERY)
		return;
	fd = dup(g->fd);
	if (fd < 0)
		return;
	j = xcalloc(1, sizeof(*j));
	j->g = g;
	j->fd = fd;
	g->syncing = true;
	g->synced_at = now;
	workers_submit(g->workers, sync_work, sync_done, j);
}

void grey_store_put(struct grey_store *g, const char *key, const struct grey_entry *v, int64_t now)
{
	char rec[GREY_LINE_MAX];
	int n;

	set(g, key, v);
	if (g->evicted && (g->full_logged_at == 0 || now - g->full_logged_at >= GREY_FULL_LOG_EVERY)) {
		log_greylist_store_full(g->path, g->max_entries, g->evicted);
		g->evicted = 0;
		g->full_logged_at = now;
	}
	n = format_record(rec, sizeof(rec), key, v);
	if (n < 0)
		return;
	if (g->fd >= 0 && !write_all(g->fd, rec, (size_t)n))
		log_greylist_store_error(g->path, "append", errno);
	if (g->compacting) {
		if (g->pend_len + (size_t)n > g->pend_cap) {
			g->pend_cap = (g->pend_len + (size_t)n) * 2;
			g->pend = xrealloc(g->pend, g->pend_cap);
		}
		memcpy(g->pend + g->pend_len, rec, (size_t)n);
		g->pend_len += (size_t)n;
	}
	g->records++;
	if (g->records > GREY_COMPACT_MIN && g->records > 4 * g->n)
		grey_store_compact(g);
	else
		maybe_sync(g, now);
}

size_t grey_store_prune(struct grey_store *g, int64_t now)
{
	size_t n = 0;
	/* The age list is in order of the last change, and each change
	 * sets last to now: the expired ones are at the old end. */
	while (g->oldest && g->oldest->e.last + (int64_t)g->expire <= now) {
		drop(g, g->oldest);
		n++;
	}
	return n;
}

size_t grey_store_count(const struct grey_store *g)
{
	return g->n;
}

size_t grey_store_log_records(const struct grey_store *g)
{
	return g->records;
}
