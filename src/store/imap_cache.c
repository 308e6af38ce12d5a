/*
 * imap_cache.c - the per-folder cache of what FETCH ENVELOPE, BODY and
 * BODYSTRUCTURE answer (see imap_folder.h), so that a folder opened again
 * answers them without reading a message file.
 *
 * The cache is an optimisation and nothing else: it is written without
 * fsync, and a file that is missing, torn, of another version or whose
 * checksum does not match is ignored (the answers are computed again from
 * the messages and the cache is rewritten).  Each record names its file
 * (the unique part of the name) with the file's size, inode and mtime, so
 * an entry is taken only for the very file it was made from.
 *
 *   tern-imap-cache 1
 *   r FSIZE INO MTIME ENVLEN BODYLEN BSLEN BASE      then the three texts, "\n"
 *   ...
 *   end HASH                  FNV-1a 64 of every octet before "end", hex
 */
#include "store/imap_folder.h"
#include "core/fsutil.h"
#include "core/util.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define IMAP_CACHE_HEADER "tern-imap-cache 1\n"
#define IMAP_CACHE_MAX ((size_t)1 << 30)        /* a bigger file is not read */
#define IMAP_CACHE_TEXT_MAX ((uint64_t)1 << 24)  /* one record's texts */

uint64_t imap_cache_hash(const void *p, size_t len)
{
	const unsigned char *c = p;
	uint64_t h = 0xcbf29ce484222325ull;
	for (size_t i = 0; i < len; i++) {
		h ^= c[i];
		h *= 0x100000001b3ull;
	}
	return h;
}

void imap_cache_set(struct imap_folder *f, size_t i, const char *env, size_t elen, const char *body, size_t blen,
		    const char *bs, size_t slen)
{
	struct imap_msg *m = &f->v[i];

	free(m->cache);
	m->cache = xmalloc(elen + blen + slen + 1);
	memcpy(m->cache, env, elen);
	memcpy(m->cache + elen, body, blen);
	memcpy(m->cache + elen + blen, bs, slen);
	m->cache[elen + blen + slen] = '\0';
	m->cache_len[0] = (uint32_t)elen;
	m->cache_len[1] = (uint32_t)blen;
	m->cache_len[2] = (uint32_t)slen;
	f->cache_dirty = true;
}

bool imap_cache_get(const struct imap_msg *m, unsigned which, const char **p, size_t *len)
{
	size_t off = 0;

	if (m->cache == NULL || which > 2)
		return false;
	for (unsigned k = 0; k < which; k++)
		off += m->cache_len[k];
	*p = m->cache + off;
	*len = m->cache_len[which];
	return true;
}

static char *imap_cache_path(const struct imap_folder *f)
{
	return xasprintf("%s/%s", f->path, IMAP_FOLDER_CACHE);
}

/* The whole file, or NULL (missing, unreadable, too big). */
static char *imap_cache_read(const char *path, size_t *len)
{
	struct stat st;
	char *buf;
	size_t got = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return NULL;
	if (fstat(fd, &st) != 0 || st.st_size <= 0 || (uint64_t)st.st_size > IMAP_CACHE_MAX) {
		close(fd);
		return NULL;
	}
	buf = xmalloc((size_t)st.st_size + 1);
	while (got < (size_t)st.st_size) {
		ssize_t r = read(fd, buf + got, (size_t)st.st_size - got);
		if (r <= 0) {
			if (r < 0 && errno == EINTR)
				continue;
			break;
		}
		got += (size_t)r;
	}
	close(fd);
	buf[got] = '\0';
	*len = got;
	return buf;
}

struct imap_cache_ref {
	const char *base;
	size_t len;
	size_t index;
};

static int imap_cache_ref_cmp(const void *a, const void *b)
{
	const struct imap_cache_ref *x = a, *y = b;
	int c = memcmp(x->base, y->base, x->len < y->len ? x->len : y->len);
	return c ? c : (x->len < y->len ? -1 : x->len > y->len);
}

/* Check the frame (header, end line, checksum); the records' octets
 * are [*body, *body_end). */
static bool imap_cache_frame(const char *buf, size_t len, size_t *body, size_t *body_end)
{
	size_t hl = strlen(IMAP_CACHE_HEADER);
	const char *end;
	unsigned long long want;
	char tail[32];

	if (len < hl + 6 || memcmp(buf, IMAP_CACHE_HEADER, hl) != 0 || buf[len - 1] != '\n')
		return false;
	/* the last line: "end HASH\n" */
	end = buf + len - 1;
	while (end > buf && end[-1] != '\n')
		end--;
	if ((size_t)(buf + len - end) >= sizeof(tail))
		return false;
	memcpy(tail, end, (size_t)(buf + len - end));
	tail[buf + len - end] = '\0';
	if (sscanf(tail, "end %16llx\n", &want) != 1)
		return false;
	if (imap_cache_hash(buf, (size_t)(end - buf)) != (uint64_t)want)
		return false;
	*body = hl;
	*body_end = (size_t)(end - buf);
	return true;
}

size_t imap_cache_load(struct imap_folder *f)
{
	char *path = imap_cache_path(f);
	size_t len = 0, pos, end, taken = 0;
	char *buf = imap_cache_read(path, &len);
	struct imap_cache_ref *refs;

	free(path);
	if (buf == NULL)
		return 0;
	if (!imap_cache_frame(buf, len, &pos, &end)) {
		free(buf);
		f->cache_dirty = true;   /* rewritten with what FETCH learns */
		return 0;
	}
	refs = xcalloc(f->n + 1, sizeof(*refs));
	for (size_t i = 0; i < f->n; i++)
		refs[i] = (struct imap_cache_ref){ f->v[i].name, f->v[i].base_len, i };
	qsort(refs, f->n, sizeof(*refs), imap_cache_ref_cmp);
	while (pos < end) {
		char *line = buf + pos, *nl = memchr(line, '\n', end - pos);
		unsigned long long fsize, ino, el, bl, sl;
		long long mtime;
		int off = 0, got;

		if (nl == NULL)
			break;
		/* The line alone, NUL-ended: sscanf measures its input first,
		 * and the rest of a large file each time would make the load
		 * quadratic. */
		*nl = '\0';
		got = sscanf(line, "r %llu %llu %lld %llu %llu %llu %n", &fsize, &ino, &mtime, &el, &bl, &sl, &off);
		*nl = '\n';
		if (got != 6 || off <= 0 || line + off >= nl || el > IMAP_CACHE_TEXT_MAX || bl > IMAP_CACHE_TEXT_MAX ||
		    sl > IMAP_CACHE_TEXT_MAX)
			break;
		size_t data = (size_t)(nl + 1 - buf), n = (size_t)(el + bl + sl);
		if (data + n + 1 > end || buf[data + n] != '\n')
			break;
		struct imap_cache_ref key = { line + off, (size_t)(nl - line - off), 0 };
		struct imap_cache_ref *r = bsearch(&key, refs, f->n, sizeof(*refs), imap_cache_ref_cmp);
		if (r) {
			struct imap_msg *m = &f->v[r->index];
			/* the scan read names only: the check needs the file's */
			if (m->cache == NULL && imap_folder_stat(f, r->index) && m->fsize == fsize && m->ino == ino && m->date == mtime) {
				imap_cache_set(f, r->index, buf + data, (size_t)el, buf + data + el, (size_t)bl,
					       buf + data + el + bl, (size_t)sl);
				taken++;
			}
		}
		pos = data + n + 1;
	}
	/* What was read matches the file: only new entries make it dirty;
	 * records of files that are gone drop out at the next write. */
	f->cache_dirty = false;
	free(refs);
	free(buf);
	return taken;
}

bool imap_cache_save(struct imap_folder *f)
{
	char *tmp = xasprintf("%s/tmp/%s.%d", f->path, IMAP_FOLDER_CACHE, (int)getpid());
	char *dst = imap_cache_path(f);
	char *buf = NULL;
	size_t blen = 0;
	FILE *mem = open_memstream(&buf, &blen);
	bool ok;
	int fd;

	fputs(IMAP_CACHE_HEADER, mem);
	for (size_t i = 0; i < f->n; i++) {
		const struct imap_msg *m = &f->v[i];
		/* made by FETCH from the file, which may not have been
		 * looked at for its size, inode and date: now */
		if (m->cache == NULL || !imap_folder_stat(f, i))
			continue;
		fprintf(mem, "r %" PRIu64 " %" PRIu64 " %lld %" PRIu32 " %" PRIu32 " %" PRIu32 " %.*s\n", m->fsize,
			m->ino, (long long)m->date, m->cache_len[0], m->cache_len[1], m->cache_len[2],
			(int)m->base_len, m->name);
		fwrite(m->cache, 1, (size_t)m->cache_len[0] + m->cache_len[1] + m->cache_len[2], mem);
		fputc('\n', mem);
	}
	fclose(mem);
	/* No fsync: a torn or stale file fails its checksum and is rebuilt. */
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	ok = fd >= 0 && write_all(fd, buf, blen);
	if (ok) {
		char end[32];
		int n = snprintf(end, sizeof(end), "end %016" PRIx64 "\n", imap_cache_hash(buf, blen));
		ok = write_all(fd, end, (size_t)n);
	}
	if (fd >= 0)
		ok = close(fd) == 0 && ok;
	ok = ok && rename(tmp, dst) == 0;
	if (!ok)
		unlink(tmp);
	else
		f->cache_dirty = false;
	free(buf);
	free(tmp);
	free(dst);
	return ok;
}
