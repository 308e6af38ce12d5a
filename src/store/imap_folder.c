/*
 * imap_folder.c - see imap_folder.h.  The state file format, one record
 * a line, ending in "end" so a torn file is never taken for a whole one:
 *
 *   tern-imap 2
 *   uidvalidity 1733300000
 *   uidnext 42
 *   modseq 97
 *   recent 40                     (the first UID no session has had as \Recent)
 *   kw 0 $Forwarded               (one line per keyword, in bit order, with its
 *   kw - $Twentyseventh            Dovecot letter's slot, or - for none)
 *   m UID MODSEQ KWBITS SIZE BASE
 *   xfloor MODSEQ                 (the log's older ranges, to here, were dropped)
 *   x LO HI MODSEQ                (UIDs expunged, in the order they went)
 *   end
 *
 * Version 1 (before keywords were shared with Dovecot) had "keyword
 * NAME" lines and no letters in the names: it loads, and its keywords'
 * bits go into the names at the first scan (imap_keywords.c).
 */
#include "store/imap_folder.h"
#include "core/fsutil.h"
#include "core/util.h"
#include "proto/imap_utf7.h"
#include "proto/imap_write.h"
#include "store/maildir.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define IMAP_STATE_LINE 4096

/* ---- flags in names ------------------------------------------------------ */

static const struct {
	char c;
	unsigned flag;
} imap_letters[] = {   /* ASCII order: the Maildir spec wants them sorted */
	{ 'D', IMAP_FLAG_DRAFT }, { 'F', IMAP_FLAG_FLAGGED }, { 'R', IMAP_FLAG_ANSWERED },
	{ 'S', IMAP_FLAG_SEEN }, { 'T', IMAP_FLAG_DELETED },
};

unsigned imap_folder_flags_of(const char *name)
{
	const char *info = strstr(name, ":2,");
	unsigned flags = 0;

	if (info == NULL)
		return 0;
	for (const char *p = info + 3; *p; p++)
		for (size_t i = 0; i < ARRAY_LEN(imap_letters); i++)
			if (*p == imap_letters[i].c)
				flags |= imap_letters[i].flag;
	return flags;
}

size_t imap_folder_info(unsigned flags, char out[8])
{
	size_t o = 0;
	for (size_t i = 0; i < ARRAY_LEN(imap_letters); i++)
		if (flags & imap_letters[i].flag)
			out[o++] = imap_letters[i].c;
	out[o] = '\0';
	return o;
}

/* A message's identity: the unique part of its name, before the first
 * ',' or ':'.  The ",S=" and ",W=" fields (Courier, Dovecot, and tern's
 * POP3, which adds them to a name that has none) and the info part may
 * change; the UID stays with the file. */
static size_t imap_base_len(const char *name)
{
	return strcspn(name, ",:");
}

/* Where the info part begins (":2,"), or the end: renames keep all before it. */
static size_t imap_info_off(const char *name)
{
	const char *c = strstr(name, ":2,");
	return c ? (size_t)(c - name) : strlen(name);
}

void imap_folder_unique(char *out, size_t cap, const char *host)
{
	static unsigned q;
	struct timeval tv;
	char h[128];
	size_t o = 0;

	gettimeofday(&tv, NULL);
	/* '/' and ':' cannot be in a name (RFC-less Maildir rule). */
	for (const char *p = host; *p && o < sizeof(h) - 5; p++) {
		if (*p == '/' || *p == ':' || *p == ',') {
			o += (size_t)snprintf(h + o, sizeof(h) - o, "\\%03o", (unsigned char)*p);
			continue;
		}
		h[o++] = *p;
	}
	h[o] = '\0';
	snprintf(out, cap, "%lld.M%ldP%dQ%u.%s", (long long)tv.tv_sec, (long)tv.tv_usec, (int)getpid(), ++q, h);
}

/* ---- the state file ------------------------------------------------------ */

static void imap_msg_free(struct imap_msg *m)
{
	free(m->name);
	free(m->cache);
	m->name = m->cache = NULL;
}

void imap_folder_free(struct imap_folder *f)
{
	if (f == NULL)
		return;
	imap_folder_release_cur(f);
	for (size_t i = 0; i < f->n; i++)
		imap_msg_free(&f->v[i]);
	for (size_t i = 0; i < f->nkw; i++)
		free(f->kw[i]);
	imap_dk_free(f);
	free(f->v);
	free(f->van);
	free(f->path);
	free(f);
}

static struct imap_msg *imap_folder_push(struct imap_folder *f)
{
	if (f->n == f->cap) {
		f->cap = f->cap ? 2 * f->cap : 64;
		f->v = xrealloc(f->v, f->cap * sizeof(*f->v));
	}
	memset(&f->v[f->n], 0, sizeof(f->v[0]));
	return &f->v[f->n++];
}

static void imap_folder_reset(struct imap_folder *f)
{
	for (size_t i = 0; i < f->n; i++)
		imap_msg_free(&f->v[i]);
	for (size_t i = 0; i < f->nkw; i++)
		free(f->kw[i]);
	f->n = f->nkw = f->nvan = 0;
	f->kw_from_state = 0;
	f->van_floor = 0;
}

static void imap_van_push(struct imap_folder *f, uint32_t lo, uint32_t hi, uint64_t modseq)
{
	/* Bounded: past the mark the oldest quarter goes at once (not one
	 * memmove per expunge), and van_floor remembers where the log now
	 * begins, so a client from before it is told the truth another way
	 * (imap_folder_vanished). */
	if (f->nvan >= IMAP_FOLDER_VANISHED_MAX + IMAP_FOLDER_VANISHED_MAX / 4) {
		size_t drop = f->nvan - IMAP_FOLDER_VANISHED_MAX;
		if (f->van[drop - 1].modseq > f->van_floor)
			f->van_floor = f->van[drop - 1].modseq;
		memmove(f->van, f->van + drop, (f->nvan - drop) * sizeof(*f->van));
		f->nvan -= drop;
	}
	if (f->nvan == f->capvan) {
		f->capvan = f->capvan ? 2 * f->capvan : 16;
		f->van = xrealloc(f->van, f->capvan * sizeof(*f->van));
	}
	f->van[f->nvan++] = (struct imap_vanished){ lo, hi, modseq };
}

/* uid goes at modseq; live_below is the largest UID still there that is
 * smaller than uid (0: none).  It joins the last range when no message
 * alive lies between them, so a folder emptied in one go is one line. */
static void imap_vanish(struct imap_folder *f, uint32_t uid, uint32_t live_below, uint64_t modseq)
{
	struct imap_vanished *last = f->nvan ? &f->van[f->nvan - 1] : NULL;

	if (last && last->hi < uid && live_below < last->hi) {
		last->hi = uid;
		last->modseq = modseq;
		return;
	}
	imap_van_push(f, uid, uid, modseq);
}

/* "SLOT NAME" or "- NAME" of a kw line. */
static bool imap_state_kw(struct imap_folder *f, const char *p)
{
	const char *sp = strchr(p, ' ');
	uint64_t s;
	int slot = -1;

	if (sp == NULL || sp[1] == '\0')
		return false;
	if (!(sp - p == 1 && *p == '-')) {
		if (!parse_u64(p, (size_t)(sp - p), 0, IMAP_DK_SLOTS - 1, &s))
			return false;
		slot = (int)s;
		for (size_t i = 0; i < f->nkw; i++)
			if (f->kw_slot[i] == slot)
				return false;
	}
	f->kw_slot[f->nkw] = (int8_t)slot;
	f->kw[f->nkw++] = xstrdup(sp + 1);
	return true;
}

/* Read the state file; false (and f empty) when it is missing or not whole. */
static bool imap_folder_load(struct imap_folder *f)
{
	char *p = xasprintf("%s/%s", f->path, IMAP_FOLDER_STATE);
	FILE *fp = fopen(p, "r");
	char line[IMAP_STATE_LINE];
	bool header = false, end = false;
	int version = 0;
	uint32_t last = 0;

	free(p);
	if (fp == NULL)
		return false;
	while (fgets(line, sizeof(line), fp)) {
		size_t len = strlen(line);
		unsigned long long a, b, c, d;
		int off = 0;

		if (len == 0 || line[len - 1] != '\n')
			break;
		line[--len] = '\0';
		if (!header) {
			if (strcmp(line, "tern-imap 1") == 0)
				version = 1;
			else if (strcmp(line, "tern-imap 2") == 0)
				version = 2;
			else
				break;
			header = true;
		} else if (sscanf(line, "uidvalidity %llu", &a) == 1 && a > 0 && a <= UINT32_MAX) {
			f->uidvalidity = (uint32_t)a;
		} else if (sscanf(line, "uidnext %llu", &a) == 1 && a > 0 && a <= UINT32_MAX) {
			f->uidnext = (uint32_t)a;
		} else if (sscanf(line, "modseq %llu", &a) == 1) {
			f->modseq = a;
		} else if (sscanf(line, "recent %llu", &a) == 1 && a > 0 && a <= UINT32_MAX) {
			f->first_recent = (uint32_t)a;
		} else if (version == 1 && strncmp(line, "keyword ", 8) == 0 && f->nkw < IMAP_FOLDER_KW_MAX) {
			f->kw_slot[f->nkw] = -1;
			f->kw[f->nkw++] = xstrdup(line + 8);
		} else if (version >= 2 && strncmp(line, "kw ", 3) == 0) {
			if (f->nkw == IMAP_FOLDER_KW_MAX || !imap_state_kw(f, line + 3))
				break;
		} else if (sscanf(line, "m %llu %llu %llu %llu %n", &a, &b, &c, &d, &off) == 4 && off > 0 &&
			   a > last && a < UINT32_MAX && line[off] != '\0') {
			struct imap_msg *m = imap_folder_push(f);
			m->uid = (uint32_t)a;
			m->modseq = b;
			m->kw = (uint32_t)c;
			m->size = d;
			m->name = xstrdup(line + off);   /* the base until the scan finds the file */
			m->base_len = imap_base_len(m->name);   /* older states kept ",S=...W=..." */
			m->date = -1;
			last = m->uid;
		} else if (sscanf(line, "xfloor %llu", &a) == 1) {
			f->van_floor = a;
		} else if (sscanf(line, "x %llu %llu %llu", &a, &b, &c) == 3 && a > 0 && a <= b && b < UINT32_MAX) {
			imap_van_push(f, (uint32_t)a, (uint32_t)b, c);
		} else if (strcmp(line, "end") == 0) {
			end = true;
			break;
		} else {
			break;
		}
	}
	fclose(fp);
	if (!end || f->uidvalidity == 0 || f->uidnext <= last) {
		imap_folder_reset(f);
		return false;
	}
	if (f->first_recent == 0 || f->first_recent > f->uidnext)
		f->first_recent = f->uidnext;   /* a state from before \Recent was kept */
	if (version == 1) {
		/* no letters yet: the state's bits are the truth, the names learn them */
		f->kw_from_state = f->nkw ? (uint32_t)((1ull << f->nkw) - 1) : 0;
		f->dirty = true;
	}
	return true;
}

bool imap_folder_save(struct imap_folder *f)
{
	char *tmp, *dst;
	FILE *fp;
	bool ok;
	int fd;

	if (!f->dirty)
		return true;
	tmp = xasprintf("%s/tmp/%s.%d", f->path, IMAP_FOLDER_STATE, (int)getpid());
	dst = xasprintf("%s/%s", f->path, IMAP_FOLDER_STATE);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	fp = fd >= 0 ? fdopen(fd, "w") : NULL;
	if (fp == NULL) {
		if (fd >= 0)
			close(fd);
		free(tmp);
		free(dst);
		return false;
	}
	fprintf(fp, "tern-imap 2\nuidvalidity %" PRIu32 "\nuidnext %" PRIu32 "\nmodseq %" PRIu64 "\nrecent %" PRIu32 "\n",
		f->uidvalidity, f->uidnext, f->modseq, f->first_recent);
	for (size_t i = 0; i < f->nkw; i++) {
		if (f->kw_slot[i] >= 0)
			fprintf(fp, "kw %d %s\n", f->kw_slot[i], f->kw[i]);
		else
			fprintf(fp, "kw - %s\n", f->kw[i]);
	}
	for (size_t i = 0; i < f->n; i++) {
		const struct imap_msg *m = &f->v[i];
		fprintf(fp, "m %" PRIu32 " %" PRIu64 " %" PRIu32 " %" PRIu64 " %.*s\n", m->uid, m->modseq, m->kw,
			m->size, (int)m->base_len, m->name);
	}
	if (f->van_floor)
		fprintf(fp, "xfloor %" PRIu64 "\n", f->van_floor);
	for (size_t i = 0; i < f->nvan; i++)
		fprintf(fp, "x %" PRIu32 " %" PRIu32 " %" PRIu64 "\n", f->van[i].lo, f->van[i].hi, f->van[i].modseq);
	fputs("end\n", fp);
	/* Data before the name: a crash after the rename must find the whole
	 * file (the "end" line tells a torn one), and the directory sync
	 * makes the rename itself survive. */
	ok = fflush(fp) == 0 && fsync(fileno(fp)) == 0;
	ok = fclose(fp) == 0 && ok;
	ok = ok && rename(tmp, dst) == 0 && dir_sync(f->path);
	if (!ok)
		unlink(tmp);
	else
		f->dirty = false;
	free(tmp);
	free(dst);
	return ok;
}

/* ---- the scan -------------------------------------------------------------- */

/* A name's sort key, parsed once: the comparison runs n log n times
 * and atoll in it was a visible share of a cold scan. */
struct imap_name_key {
	uint64_t sec, usec;
	bool has_usec;
	char *name;
};

static uint64_t imap_digits(const char **p)
{
	uint64_t v = 0;
	while (**p >= '0' && **p <= '9' && v < UINT64_MAX / 10 - 9)
		v = v * 10 + (uint64_t)(*(*p)++ - '0');
	return v;
}

static void imap_name_key(struct imap_name_key *k, char *name)
{
	const char *p = name;
	k->name = name;
	k->sec = imap_digits(&p);
	k->has_usec = p[0] == '.' && p[1] == 'M';
	p += k->has_usec ? 2 : 0;
	k->usec = k->has_usec ? imap_digits(&p) : 0;
}

static int imap_key_cmp(const void *a, const void *b)
{
	const struct imap_name_key *x = a, *y = b;
	if (x->sec != y->sec)
		return x->sec < y->sec ? -1 : 1;
	if (x->has_usec && y->has_usec && x->usec != y->usec)
		return x->usec < y->usec ? -1 : 1;
	return strcmp(x->name, y->name);
}

int imap_folder_name_order(const char *x, const char *y)
{
	struct imap_name_key a, b;
	imap_name_key(&a, (char *)x);
	imap_name_key(&b, (char *)y);
	return imap_key_cmp(&a, &b);
}

/* v in arrival order. */
static void imap_sort_names(char **v, size_t n)
{
	struct imap_name_key *k;

	if (n < 2)
		return;
	k = xcalloc(n, sizeof(*k));
	for (size_t i = 0; i < n; i++)
		imap_name_key(&k[i], v[i]);
	qsort(k, n, sizeof(*k), imap_key_cmp);
	for (size_t i = 0; i < n; i++)
		v[i] = k[i].name;
	free(k);
}

/* Names in dir (no dot files). */
static char **imap_list_dir(const char *dir, size_t *n)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	char **v = NULL;
	size_t cap = 0;

	*n = 0;
	if (d == NULL)
		return NULL;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.' || (de->d_type != DT_REG && de->d_type != DT_UNKNOWN))
			continue;
		if (*n == cap) {
			cap = cap ? 2 * cap : 64;
			v = xrealloc(v, cap * sizeof(*v));
		}
		v[(*n)++] = xstrdup(de->d_name);
	}
	closedir(d);
	return v;
}

static void imap_free_names(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

/* Octets of buf[0..n) once every bare LF is made CRLF; *prev is the
 * byte before buf (carried from the last read), updated.  memchr finds
 * the line ends: a byte-at-a-time loop was most of a cold SELECT. */
uint64_t imap_crlf_len(const char *buf, size_t n, char *prev)
{
	uint64_t size = n;
	const char *p = buf, *end = buf + n;

	if (n == 0)
		return 0;
	while ((p = memchr(p, '\n', (size_t)(end - p))) != NULL) {
		char before = p > buf ? p[-1] : *prev;
		if (before != '\r')
			size++;
		p++;
	}
	*prev = buf[n - 1];
	return size;
}

/* The ",W=" size in a name (the exact CRLF size), if there is one. */
static bool imap_name_size(const char *name, uint64_t *size)
{
	const char *w = strstr(name, ",W=");
	size_t len = 0;

	if (w == NULL)
		return false;
	while (w[3 + len] >= '0' && w[3 + len] <= '9')
		len++;
	return parse_u64(w + 3, len, 0, UINT64_MAX / 2, size);
}

/* The CRLF size of the open file fd of st_size octets: read up to its
 * end as fstat saw it (a Maildir file never changes once written), so
 * no further read() is spent just to see EOF. */
static uint64_t imap_fd_size(int fd, uint64_t fsize)
{
	char buf[65536];
	uint64_t size = 0, got = 0;
	char prev = 0;
	ssize_t r;

	while (got < fsize && (r = read(fd, buf, sizeof(buf))) > 0) {
		size += imap_crlf_len(buf, (size_t)r, &prev);
		got += (uint64_t)r;
	}
	return size;
}

/* The messages by the unique part of their names, for a scan to find
 * each name of the directory in: open addressing, a slot holds the
 * index + 1 (0: empty).  Hashing replaced sorting the messages by name
 * and a binary search per name, most of a scan that finds nothing new. */
struct imap_base_index {
	size_t *slot;
	size_t mask;
};

static void imap_index_build(struct imap_base_index *x, const struct imap_folder *f)
{
	size_t cap = 16;

	while (cap < 2 * f->n)
		cap <<= 1;
	x->slot = xcalloc(cap, sizeof(*x->slot));
	x->mask = cap - 1;
	for (size_t i = 0; i < f->n; i++) {
		size_t h = (size_t)imap_cache_hash(f->v[i].name, f->v[i].base_len) & x->mask;
		while (x->slot[h])
			h = (h + 1) & x->mask;
		x->slot[h] = i + 1;
	}
}

/* The message whose name has the unique part base[0..len), or -1. */
static long imap_index_find(const struct imap_base_index *x, const struct imap_folder *f, const char *base,
			    size_t len)
{
	for (size_t h = (size_t)imap_cache_hash(base, len) & x->mask; x->slot[h]; h = (h + 1) & x->mask) {
		const struct imap_msg *m = &f->v[x->slot[h] - 1];
		if (m->base_len == len && memcmp(m->name, base, len) == 0)
			return (long)(x->slot[h] - 1);
	}
	return -1;
}

/* new/ -> cur/ with an empty info, as an IMAP reader takes mail in. */
static void imap_take_new(struct imap_folder *f)
{
	char *dir = xasprintf("%s/new", f->path);
	size_t n;
	char **v = imap_list_dir(dir, &n);
	bool moved = false;

	for (size_t i = 0; i < n; i++) {
		char *from = xasprintf("%s/%s", dir, v[i]);
		char *to = xasprintf("%s/cur/%.*s:2,", f->path, (int)imap_info_off(v[i]), v[i]);
		if (rename(from, to) == 0)
			moved = true;
		free(from);
		free(to);
	}
	if (moved) {
		char *cur = xasprintf("%s/cur", f->path);
		dir_sync(cur);
		dir_sync(dir);
		free(cur);
	}
	imap_free_names(v, n);
	free(dir);
}

/* date, fsize, ino from the file, and the size when not known: from
 * ",W=", else counted (open + fstat + read: one syscall fewer than
 * stat then read to EOF).  False when the file is not there. */
static bool imap_msg_stat(struct imap_folder *f, struct imap_msg *m)
{
	char *p = imap_folder_msg_path(f, (size_t)(m - f->v));
	struct stat st;
	int fd = -1;
	bool ok;

	if (m->size == 0 && !imap_name_size(m->name, &m->size)) {
		fd = open(p, O_RDONLY | O_CLOEXEC);
		ok = fd >= 0 && fstat(fd, &st) == 0;
	} else {
		ok = stat(p, &st) == 0;
	}
	if (ok) {
		m->date = (int64_t)st.st_mtime;
		m->fsize = (uint64_t)st.st_size;
		m->ino = (uint64_t)st.st_ino;
		if (fd >= 0) {
			m->size = imap_fd_size(fd, (uint64_t)st.st_size);
			f->dirty = true;   /* the state file keeps it */
		}
	}
	if (fd >= 0)
		close(fd);
	free(p);
	return ok;
}

bool imap_folder_stat(struct imap_folder *f, size_t i)
{
	return imap_msg_known(&f->v[i]) || imap_msg_stat(f, &f->v[i]);
}

void imap_folder_stat_all(struct imap_folder *f)
{
	for (size_t i = 0; i < f->n; i++)
		imap_folder_stat(f, i);
}

static void imap_kw_to_names(struct imap_folder *f);

bool imap_folder_scan(struct imap_folder *f, bool *changed)
{
	char *cur = xasprintf("%s/cur", f->path);
	size_t n;
	char **v;
	struct imap_base_index index;
	size_t o = 0;
	uint32_t named;

	*changed = false;
	imap_dk_sync(f);
	named = imap_kw_named(f);
	imap_take_new(f);
	v = imap_list_dir(cur, &n);
	free(cur);
	imap_index_build(&index, f);
	for (size_t i = 0; i < f->n; i++)
		f->v[i].mark = false;
	/* Directory order: only the new names are sorted (into arrival
	 * order, for their UIDs). */
	char **fresh = xcalloc(n + 1, sizeof(*fresh));
	size_t nfresh = 0;
	for (size_t i = 0; i < n; i++) {
		long k = imap_index_find(&index, f, v[i], imap_base_len(v[i]));
		if (k < 0) {
			fresh[nfresh++] = v[i];
			v[i] = NULL;
			continue;
		}
		struct imap_msg *m = &f->v[k];
		/* the same base twice (a copy half made by another program):
		 * the first in arrival order counts */
		if (m->mark && imap_folder_name_order(v[i], m->name) >= 0)
			continue;
		m->mark = true;
		bool first = !m->found;   /* loaded from the state file: not yet seen */
		m->found = true;
		if (strcmp(m->name, v[i]) != 0) {
			free(m->name);
			m->name = v[i];   /* the same base: the index holds */
			v[i] = NULL;
		}
		/* The name says the flags and the lettered keywords (whose
		 * meaning the dovecot-keywords file may just have changed). */
		unsigned fl = imap_folder_flags_of(m->name);
		uint32_t kw = (m->kw & (~named | f->kw_from_state)) | imap_kw_of_name(f, m->name);
		if (!first && (fl != m->flags || kw != m->kw)) {
			/* another program changed the flags */
			m->modseq = ++f->modseq;
			*changed = true;
		}
		f->dirty |= kw != m->kw;
		m->flags = fl;
		m->kw = kw;
		/* Names only: the file is looked at when its date or size is
		 * first asked for (imap_folder_stat), so a first look at
		 * 10,000 messages is a readdir, not 10,000 opens and reads. */
		if (first && m->size == 0)
			imap_name_size(m->name, &m->size);
	}
	/* Gone files drop out; UIDs stay ascending. */
	for (size_t i = 0; i < f->n; i++) {
		if (!f->v[i].mark) {
			/* removed by another program: an expunge like ours */
			imap_vanish(f, f->v[i].uid, o ? f->v[o - 1].uid : 0, ++f->modseq);
			imap_msg_free(&f->v[i]);
			*changed = true;
			f->dirty = true;
			continue;
		}
		f->v[o++] = f->v[i];
	}
	f->n = o;
	imap_sort_names(fresh, nfresh);
	for (size_t i = 0; i < nfresh; i++) {
		struct imap_msg *m = imap_folder_push(f);
		m->uid = f->uidnext++;
		m->name = fresh[i];
		m->base_len = imap_base_len(m->name);
		m->flags = imap_folder_flags_of(m->name);
		m->kw = imap_kw_of_name(f, m->name);   /* Dovecot's APPEND names them */
		m->modseq = ++f->modseq;
		m->date = -1;
		m->found = true;
		imap_name_size(m->name, &m->size);
		*changed = true;
		f->dirty = true;
	}
	free(fresh);
	free(index.slot);
	imap_free_names(v, n);
	imap_kw_to_names(f);
	return imap_folder_save(f);
}

/* A UIDVALIDITY never given before by this process: the clock's seconds,
 * but past the last one, so a folder deleted and made again within one
 * second (or a state file lost twice) does not get the value its old
 * UIDs were valid under (RFC 9051 2.3.1.1). */
static uint32_t imap_new_uidvalidity(void)
{
	static uint32_t last;
	uint32_t prev = __atomic_load_n(&last, __ATOMIC_RELAXED), v;

	do {
		v = (uint32_t)now_unix();
		if (v <= prev)
			v = prev + 1;
	} while (!__atomic_compare_exchange_n(&last, &prev, v, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED));
	return v;
}

struct imap_folder *imap_folder_open(const char *path)
{
	struct imap_folder *f;
	bool changed;

	if (!maildir_create(path))
		return NULL;
	f = xcalloc(1, sizeof(*f));
	f->curfd = -1;
	f->path = xstrdup(path);
	if (!imap_folder_load(f)) {
		/* A new UIDVALIDITY: the old UIDs (if any) are not known, so
		 * clients must forget theirs (RFC 9051 2.3.1.1). */
		f->uidvalidity = imap_new_uidvalidity();
		f->uidnext = 1;
		f->modseq = 1;
		f->first_recent = 1;
		f->dirty = true;
	}
	if (!imap_folder_scan(f, &changed)) {
		int e = errno;
		imap_folder_free(f);
		errno = e;
		return NULL;
	}
	imap_cache_load(f);
	return f;
}

/* ---- messages -------------------------------------------------------------- */

uint32_t imap_folder_take_recent(struct imap_folder *f)
{
	uint32_t from = f->first_recent;
	if (from != f->uidnext) {
		f->first_recent = f->uidnext;
		f->dirty = true;   /* saved with the next change; a crash before
				    * only makes them recent once more */
	}
	return from;
}

long imap_folder_find(const struct imap_folder *f, uint32_t uid)
{
	size_t lo = 0, hi = f->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (f->v[mid].uid == uid)
			return (long)mid;
		if (f->v[mid].uid < uid)
			lo = mid + 1;
		else
			hi = mid;
	}
	return -1;
}

int imap_folder_keyword(struct imap_folder *f, const char *kw, size_t len, bool add)
{
	for (size_t i = 0; i < f->nkw; i++)
		if (strlen(f->kw[i]) == len && ascii_ieq(f->kw[i], kw, len))
			return (int)i;
	if (!add || f->nkw == IMAP_FOLDER_KW_MAX)
		return -1;
	f->kw[f->nkw] = xstrndup(kw, len);
	f->kw_slot[f->nkw] = -1;
	f->dirty = true;
	f->nkw++;
	imap_dk_assign(f);   /* a letter, if one is free; the file gets it first */
	return (int)f->nkw - 1;
}

char *imap_folder_msg_path(const struct imap_folder *f, size_t i)
{
	return xasprintf("%s/cur/%s", f->path, f->v[i].name);
}

int imap_folder_open_msg(const struct imap_folder *f, size_t i)
{
	char *p = imap_folder_msg_path(f, i);
	int fd = open(p, O_RDONLY | O_CLOEXEC);
	free(p);
	return fd;
}

/* base + ":2," + DFRST + the keywords' letters (Dovecot's), sorted:
 * the upper-case letters sort before the lower-case ones. */
static char *imap_name_with(const struct imap_folder *f, const struct imap_msg *m, unsigned flags, uint32_t kw)
{
	char info[8], letters[IMAP_DK_SLOTS + 1];

	imap_folder_info(flags, info);
	imap_kw_letters(f, kw, m->name, letters);
	return xasprintf("%.*s:2,%s%s", (int)imap_info_off(m->name), m->name, info, letters);
}

/* cur/NAME -> cur/to (to is taken); false with errno. */
static bool imap_msg_rename(struct imap_folder *f, struct imap_msg *m, char *to)
{
	int r, e;

	if (f->curfd >= 0) {   /* imap_folder_hold_cur(): no path walk */
		r = renameat(f->curfd, m->name, f->curfd, to);
		e = errno;
	} else {
		char *a = xasprintf("%s/cur/%s", f->path, m->name);
		char *b = xasprintf("%s/cur/%s", f->path, to);
		r = rename(a, b);
		e = errno;
		free(a);
		free(b);
	}
	if (r != 0) {
		free(to);
		errno = e;
		return false;
	}
	free(m->name);
	m->name = to;
	return true;
}

/* Keywords that just got a letter: their bits (from the state) go into
 * the names, once dovecot-keywords names the letters (written here too
 * when it lacks some, say after another program removed it). */
static void imap_kw_to_names(struct imap_folder *f)
{
	bool renamed = false;

	if (f->kw_from_state == 0 && !f->dk_dirty)
		return;
	if (!imap_dk_flush(f) || f->kw_from_state == 0)
		return;   /* the state keeps the bits: the next scan tries again */
	for (size_t i = 0; i < f->n; i++) {
		struct imap_msg *m = &f->v[i];
		char *to = imap_name_with(f, m, m->flags, m->kw);
		if (strcmp(to, m->name) == 0) {
			free(to);
			continue;
		}
		renamed |= imap_msg_rename(f, m, to);
	}
	if (renamed) {
		char *cur = xasprintf("%s/cur", f->path);
		dir_sync(cur);
		free(cur);
	}
	f->kw_from_state = 0;
	f->dirty = true;
}

bool imap_folder_set_flags(struct imap_folder *f, size_t i, unsigned flags, uint32_t kw)
{
	struct imap_msg *m = &f->v[i];

	flags &= ~(unsigned)IMAP_FLAG_RECENT;
	if (flags == m->flags && kw == m->kw)
		return true;
	/* A new letter is in dovecot-keywords before any name has it. */
	if ((kw & ~m->kw & imap_kw_named(f)) && !imap_dk_flush(f))
		return false;
	if (flags != m->flags || ((kw ^ m->kw) & imap_kw_named(f))) {
		char *to = imap_name_with(f, m, flags, kw);
		if (strcmp(to, m->name) == 0)
			free(to);
		else if (!imap_msg_rename(f, m, to))
			return false;
	}
	m->flags = flags;
	m->kw = kw;
	m->modseq = ++f->modseq;
	f->dirty = true;
	return true;
}

void imap_folder_hold_cur(struct imap_folder *f)
{
	if (f->curfd < 0) {
		char *cur = xasprintf("%s/cur", f->path);
		f->curfd = open(cur, O_RDONLY | O_DIRECTORY | O_CLOEXEC);   /* -1: paths, as before */
		free(cur);
	}
}

void imap_folder_release_cur(struct imap_folder *f)
{
	if (f->curfd >= 0)
		close(f->curfd);
	f->curfd = -1;
}

/* ---- VANISHED (EARLIER) ---------------------------------------------------- */

struct imap_ranges {
	struct imap_seq_range *r;
	size_t n, cap;
};

/* Append lo..hi (ascending input), joined to the last when adjacent. */
static void imap_ranges_add(struct imap_ranges *o, uint32_t lo, uint32_t hi)
{
	if (o->n && (uint64_t)o->r[o->n - 1].hi + 1 >= lo) {
		if (hi > o->r[o->n - 1].hi)
			o->r[o->n - 1].hi = hi;
		return;
	}
	if (o->n == o->cap) {
		o->cap = o->cap ? 2 * o->cap : 16;
		o->r = xrealloc(o->r, o->cap * sizeof(*o->r));
	}
	o->r[o->n++] = (struct imap_seq_range){ lo, hi };
}

static int imap_range_cmp(const void *a, const void *b)
{
	const struct imap_seq_range *x = a, *y = b;
	return x->lo < y->lo ? -1 : x->lo > y->lo;
}

/* set (NULL: 1:*) as ascending, disjoint ranges within lo..star. */
static void imap_ranges_of_set(struct imap_ranges *o, const struct imap_seqset *set, uint32_t lo, uint32_t star)
{
	struct imap_seq_range *v;
	size_t n = set ? set->n : 1;

	if (star < lo)
		return;
	v = xcalloc(n + 1, sizeof(*v));
	for (size_t i = 0; i < n; i++) {
		uint32_t a = set ? set->r[i].lo : 1, b = set ? set->r[i].hi : star;
		a = a == IMAP_SEQ_STAR ? star : a;
		b = b == IMAP_SEQ_STAR ? star : b;
		v[i] = a <= b ? (struct imap_seq_range){ a, b } : (struct imap_seq_range){ b, a };
	}
	qsort(v, n, sizeof(*v), imap_range_cmp);
	for (size_t i = 0; i < n; i++) {
		uint32_t a = v[i].lo < lo ? lo : v[i].lo, b = v[i].hi > star ? star : v[i].hi;
		if (a <= b)
			imap_ranges_add(o, a, b);
	}
	free(v);
}

/* The index of the first message with a UID >= uid. */
static size_t imap_folder_lower(const struct imap_folder *f, uint32_t uid)
{
	size_t lo = 0, hi = f->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (f->v[mid].uid < uid)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

size_t imap_folder_vanished(const struct imap_folder *f, uint64_t modseq, const struct imap_seqset *set,
			    uint32_t known, struct imap_seq_range **out)
{
	uint32_t star = f->uidnext ? f->uidnext - 1 : 0;
	struct imap_ranges want = { 0 }, res = { 0 };

	if (modseq >= f->van_floor) {
		/* The log has every expunge after modseq: it answers exactly,
		 * and the sequence match data cannot narrow it (RFC 7162
		 * 3.2.5.2: it is for a server that lacks that history). */
		struct imap_ranges gone = { 0 };
		struct imap_seq_range *g = xcalloc(f->nvan + 1, sizeof(*g));
		size_t ng = 0, j = 0;

		for (size_t i = 0; i < f->nvan; i++)
			if (f->van[i].modseq > modseq)
				g[ng++] = (struct imap_seq_range){ f->van[i].lo, f->van[i].hi };
		qsort(g, ng, sizeof(*g), imap_range_cmp);
		for (size_t i = 0; i < ng; i++)
			imap_ranges_add(&gone, g[i].lo, g[i].hi);
		free(g);
		imap_ranges_of_set(&want, set, 1, star);
		/* both ascending and disjoint: intersect them in one pass */
		for (size_t i = 0; i < gone.n && j < want.n;) {
			uint32_t a = gone.r[i].lo > want.r[j].lo ? gone.r[i].lo : want.r[j].lo;
			uint32_t b = gone.r[i].hi < want.r[j].hi ? gone.r[i].hi : want.r[j].hi;
			if (a <= b)
				imap_ranges_add(&res, a, b);
			if (gone.r[i].hi < want.r[j].hi)
				i++;
			else
				j++;
		}
		free(gone.r);
	} else {
		/* RFC 7162 3.2.5.1, 3.2.6: without the history, every UID of
		 * the set that is not here (below UIDNEXT: no other was ever
		 * given) - more than went since modseq, never less. */
		imap_ranges_of_set(&want, set, known < UINT32_MAX ? known + 1 : UINT32_MAX, star);
		for (size_t j = 0; j < want.n; j++) {
			uint64_t u = want.r[j].lo;
			for (size_t k = imap_folder_lower(f, want.r[j].lo); k < f->n && f->v[k].uid <= want.r[j].hi; k++) {
				if (f->v[k].uid > u)
					imap_ranges_add(&res, (uint32_t)u, f->v[k].uid - 1);
				u = (uint64_t)f->v[k].uid + 1;
			}
			if (u <= want.r[j].hi)
				imap_ranges_add(&res, (uint32_t)u, want.r[j].hi);
		}
	}
	free(want.r);
	*out = res.r;
	return res.n;
}

bool imap_folder_expunge(struct imap_folder *f, size_t i)
{
	int r;
	if (f->curfd >= 0) {
		r = unlinkat(f->curfd, f->v[i].name, 0);
	} else {
		char *p = imap_folder_msg_path(f, i);
		r = unlink(p);
		free(p);
	}
	if (r != 0 && errno != ENOENT)
		return false;
	imap_vanish(f, f->v[i].uid, i ? f->v[i - 1].uid : 0, ++f->modseq);
	imap_msg_free(&f->v[i]);
	memmove(&f->v[i], &f->v[i + 1], (f->n - i - 1) * sizeof(f->v[0]));
	f->n--;
	f->dirty = true;
	return true;
}

/* tmp/NAME -> cur/NAME:2,FLAGS and the next UID, in memory only: the
 * caller syncs cur/ and saves (imap_folder_commit). */
static bool imap_folder_take(struct imap_folder *f, const char *tmp_name, unsigned flags, uint32_t kw,
			     int64_t date, uint64_t size, uint32_t *uid)
{
	char info[8], letters[IMAP_DK_SLOTS + 1];
	char *from = xasprintf("%s/tmp/%s", f->path, tmp_name);
	char *name, *to;
	struct imap_msg *m;
	int r, e;

	if ((kw & imap_kw_named(f)) && !imap_dk_flush(f))
		return false;
	imap_folder_info(flags & ~(unsigned)IMAP_FLAG_RECENT, info);
	imap_kw_letters(f, kw, NULL, letters);
	name = xasprintf("%s:2,%s%s", tmp_name, info, letters);
	to = xasprintf("%s/cur/%s", f->path, name);
	if (date >= 0) {
		struct timespec ts[2] = { { .tv_sec = (time_t)date }, { .tv_sec = (time_t)date } };
		utimensat(AT_FDCWD, from, ts, 0);
	}
	r = rename(from, to);
	e = errno;
	free(from);
	free(to);
	if (r != 0) {
		free(name);
		errno = e;
		return false;
	}
	m = imap_folder_push(f);
	m->uid = f->uidnext++;
	m->name = name;
	m->base_len = imap_base_len(name);
	m->flags = flags & ~(unsigned)IMAP_FLAG_RECENT;
	m->kw = kw;
	m->modseq = ++f->modseq;
	m->size = size;
	m->date = -1;
	m->found = true;
	imap_msg_stat(f, m);
	*uid = m->uid;
	f->dirty = true;
	return true;
}

bool imap_folder_commit(struct imap_folder *f)
{
	/* The renames into cur/ first, then the state that names them: a
	 * crash between the two leaves files the next scan adopts. */
	char *cur = xasprintf("%s/cur", f->path);
	bool ok = dir_sync(cur);
	free(cur);
	return imap_folder_save(f) && ok;
}

bool imap_folder_add(struct imap_folder *f, const char *tmp_name, unsigned flags, uint32_t kw,
		     int64_t date, uint64_t size, uint32_t *uid)
{
	return imap_folder_take(f, tmp_name, flags, kw, date, size, uid) && (f->batch || imap_folder_commit(f));
}

void imap_folder_batch_begin(struct imap_folder *f)
{
	f->batch = true;
}

bool imap_folder_batch_commit(struct imap_folder *f)
{
	f->batch = false;
	return imap_folder_commit(f);
}

/* Copy fd's octets into a new file at path (fsync'd). */
static bool imap_copy_file(const char *from, const char *to)
{
	char buf[65536];
	ssize_t r;
	int in = open(from, O_RDONLY | O_CLOEXEC), out;
	bool ok = true;

	if (in < 0)
		return false;
	out = open(to, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (out < 0) {
		close(in);
		return false;
	}
	while (ok && (r = read(in, buf, sizeof(buf))) != 0) {
		if (r < 0) {
			ok = errno == EINTR;
			continue;
		}
		ok = write_all(out, buf, (size_t)r);
	}
	ok = ok && fsync(out) == 0;
	close(in);
	ok = close(out) == 0 && ok;
	if (!ok)
		unlink(to);
	return ok;
}

bool imap_folder_copy_file(struct imap_folder *dst, const char *from, unsigned flags, const char *const *kws,
			   size_t nkws, int64_t date, uint64_t size, uint32_t *uid)
{
	char host[64], uniq[256];
	char *to;
	uint32_t kw = 0;
	bool ok;

	if (gethostname(host, sizeof(host)) != 0)
		snprintf(host, sizeof(host), "localhost");
	host[sizeof(host) - 1] = '\0';
	imap_folder_unique(uniq, sizeof(uniq) - 40, host);
	/* Keep ,W= so nobody has to read the copy to size it (0: the
	 * source's size is not known yet; the copy is measured). */
	size_t ul = strlen(uniq);
	if (size > 0)
		snprintf(uniq + ul, sizeof(uniq) - ul, ",W=%" PRIu64, size);
	to = xasprintf("%s/tmp/%s", dst->path, uniq);
	/* A hard link shares the data (a Maildir file never changes once
	 * written); across file systems it is a copy. */
	bool linked = link(from, to) == 0;
	ok = linked || (errno != ENOENT && imap_copy_file(from, to));
	if (ok && !linked && date < 0) {
		/* the source's date not looked at yet: its mtime */
		struct stat st;
		if (stat(from, &st) == 0)
			date = (int64_t)st.st_mtime;
	}
	free(to);
	if (!ok)
		return false;
	if (linked)
		date = -1;   /* the same inode: its mtime is the date already */
	for (size_t k = 0; k < nkws; k++) {
		int j = imap_folder_keyword(dst, kws[k], strlen(kws[k]), true);
		if (j >= 0)
			kw |= 1u << j;
	}
	return imap_folder_take(dst, uniq, flags, kw, date, size, uid);
}
