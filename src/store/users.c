/*
 * users.c - reading, looking up and atomically rewriting the users file.
 * The reader and the writer classify lines with one function
 * (users_parse_line), so "the line the writer replaces" is exactly "the
 * line the reader took the user from".
 */
#include "store/users.h"
#include "core/fsutil.h"
#include "core/util.h"
#include "proto/smtp_parse.h"

#include <errno.h>
#include <stdint.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define USERS_FILE_MAX (64u << 20)   /* a users file larger than this is a mistake */

enum users_line { USERS_LINE_SKIP, USERS_LINE_USER, USERS_LINE_BAD };

/* Octets >= 0x80 pass when the whole name is well-formed UTF-8 (SMTPUTF8
 * addresses, RFC 6531): none of them is '/', '.' or NUL, so the name
 * stays one safe path component. */
bool users_safe_name(const char *s, size_t len)
{
	if (len == 0 || len > 255 || s[0] == '.' || s[0] == '-' || !smtp_utf8_valid(s, len, NULL))
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
		      || c == '.' || c == '_' || c == '-' || c == '+' || c >= 0x80))
			return false;
	}
	return memmem(s, len, "..", 2) == NULL;
}

static void users_mechs(struct users *u)
{
	u->cram_ok = u->scram_ok = true;
	for (size_t i = 0; i < u->n; i++) {
		bool plain = strncasecmp(u->v[i].secret, "{PLAIN}", 7) == 0;
		bool scram = strncasecmp(u->v[i].secret, "{SCRAM-SHA-256}", 15) == 0;
		u->cram_ok &= plain;
		u->scram_ok &= plain || scram;
	}
}

static int cmp_user(const void *a, const void *b)
{
	return strcmp(((const struct user *)a)->addr, ((const struct user *)b)->addr);
}

static char *lower_dup(const char *s, size_t n)
{
	char *p = xstrndup(s, n);
	for (char *q = p; *q; q++)
		*q = ascii_lower(*q);
	return p;
}

static void user_clear(struct user *u)
{
	free(u->addr);
	free(u->local);
	free(u->domain);
	free(u->secret);
	memset(u, 0, sizeof(*u));
}

/* Is [addr, addr+alen) a usable "local@domain"?  Then where is the '@'. */
static const char *users_addr_ok(const char *addr, size_t alen)
{
	const char *at = memchr(addr, '@', alen);
	if (at == NULL || !users_safe_name(addr, (size_t)(at - addr))
	    || !users_safe_name(at + 1, alen - (size_t)(at - addr) - 1))
		return NULL;
	return at;
}

/* One line without its line end: blank or comment, a user, or bad.  For a
 * user, out (may be NULL) is filled in. */
static enum users_line users_parse_line(const char *line, size_t len, struct user *out)
{
	const char *colon, *at;
	size_t alen;

	if (len == 0 || line[0] == '#' || strspn(line, " \t") >= len)
		return USERS_LINE_SKIP;
	colon = memchr(line, ':', len);
	if (colon == NULL || (size_t)(colon - line) + 1 >= len || colon[1] != '{'
	    || memchr(line, '\0', len) != NULL)
		return USERS_LINE_BAD;
	alen = (size_t)(colon - line);
	if ((at = users_addr_ok(line, alen)) == NULL)
		return USERS_LINE_BAD;
	if (out != NULL) {
		memset(out, 0, sizeof(*out));
		out->addr = lower_dup(line, alen);
		out->local = lower_dup(line, (size_t)(at - line));
		out->domain = lower_dup(at + 1, alen - (size_t)(at - line) - 1);
		out->secret = xstrndup(colon + 1, len - alen - 1);
	}
	return USERS_LINE_USER;
}

/* The next line of [*p, end): returns its start, sets *len without the
 * line end ("\n" or "\r\n") and *full with it; advances *p. */
static const char *users_next_line(const char **p, const char *end, size_t *len, size_t *full)
{
	const char *start = *p, *nl = memchr(start, '\n', (size_t)(end - start));

	*full = nl ? (size_t)(nl + 1 - start) : (size_t)(end - start);
	*len = nl ? (size_t)(nl - start) : *full;
	while (*len > 0 && start[*len - 1] == '\r')
		(*len)--;
	*p = start + *full;
	return start;
}

/* The whole file in memory (NUL-terminated); false with errno set. */
static bool users_read_all(const char *path, char **buf, size_t *len, struct timespec *mtime)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	size_t have = 0;
	ssize_t n = 0;

	*buf = NULL;
	if (fd < 0)
		return false;
	errno = EFBIG;          /* what a too large file reports */
	if (fstat(fd, &st) < 0 || (uint64_t)st.st_size > USERS_FILE_MAX) {
		int e = errno;
		close(fd);
		errno = e;
		return false;
	}
	if (mtime)
		*mtime = st.st_mtim;
	*buf = xmalloc((size_t)st.st_size + 1);
	while (have < (size_t)st.st_size && (n = read(fd, *buf + have, (size_t)st.st_size - have)) > 0)
		have += (size_t)n;
	close(fd);
	if (n < 0) {
		free(*buf);
		*buf = NULL;
		return false;
	}
	(*buf)[have] = '\0';
	*len = have;
	return true;
}

struct users *users_load(const char *path, users_warn_fn warn, void *ctx)
{
	struct users *u = xcalloc(1, sizeof(*u));
	char *buf;
	const char *p, *end, *line;
	size_t len, full, lineno = 0;

	u->path = xstrdup(path);
	u->refs = 1;
	u->cram_ok = u->scram_ok = true;
	if (!users_read_all(path, &buf, &len, &u->mtime)) {
		if (errno != ENOENT && warn) {
			char *why = xasprintf("cannot read: %s", strerror(errno));
			warn(ctx, path, 0, why);
			free(why);
		}
		return u;
	}
	for (p = buf, end = buf + len; p < end;) {
		struct user nu;
		line = users_next_line(&p, end, &len, &full);
		lineno++;
		switch (users_parse_line(line, len, &nu)) {
		case USERS_LINE_SKIP:
			break;
		case USERS_LINE_BAD:
			if (warn)
				warn(ctx, path, lineno, "expected user@domain:{SCHEME}secret with a plain address");
			break;
		case USERS_LINE_USER:
			nu.line = lineno;
			u->v = xrealloc(u->v, (u->n + 1) * sizeof(*u->v));
			u->v[u->n++] = nu;
			break;
		}
	}
	free(buf);
	if (u->n > 1)   /* qsort(NULL, 0) is undefined behaviour */
		qsort(u->v, u->n, sizeof(*u->v), cmp_user);
	users_mechs(u);
	return u;
}

struct users *users_ref(struct users *u)
{
	u->refs++;
	return u;
}

void users_free(struct users *u)
{
	if (u == NULL || --u->refs > 0)
		return;
	for (size_t i = 0; i < u->n; i++)
		user_clear(&u->v[i]);
	free(u->v);
	free(u->path);
	free(u);
}

const struct user *users_find(const struct users *u, const char *addr)
{
	char key[512];
	struct user probe = { .addr = key };
	size_t n = strlen(addr);
	if (n >= sizeof(key) || u->n == 0)   /* bsearch(.., NULL, 0) is undefined */
		return NULL;
	for (size_t i = 0; i <= n; i++)
		key[i] = ascii_lower(addr[i]);
	return bsearch(&probe, u->v, u->n, sizeof(*u->v), cmp_user);
}

bool users_changed(const struct users *u)
{
	struct stat st;
	if (stat(u->path, &st) < 0)
		return u->n > 0;
	return st.st_mtim.tv_sec != u->mtime.tv_sec || st.st_mtim.tv_nsec != u->mtime.tv_nsec;
}

/* Temp file beside the target, fsync, rename, fsync the directory: a
 * reader sees the old file or the new one, never half of one.  fchmod
 * as well as the open mode: the umask must not loosen (or tighten) it. */
static bool users_write_atomic(const char *path, const char *data, size_t len)
{
	char *tmp = xasprintf("%s.tmp.%d", path, (int)getpid());
	char *dir = xstrdup(path), *slash = strrchr(dir, '/');
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	bool ok = fd >= 0;
	int e = 0;

	if (slash == NULL)
		strcpy(dir, ".");
	else if (slash == dir)
		dir[1] = '\0';      /* "/users": the root directory */
	else
		*slash = '\0';
	ok = ok && write_all(fd, data, len);
	ok = ok && fchmod(fd, 0600) == 0 && fsync(fd) == 0;
	if (fd >= 0)
		ok = (close(fd) == 0) && ok;
	ok = ok && rename(tmp, path) == 0 && dir_sync(dir);
	if (!ok) {
		e = errno;
		unlink(tmp);
		errno = e;
	}
	free(tmp);
	free(dir);
	return ok;
}

/* Append [s, s+n) to the growing buffer *out of *len bytes. */
static void users_put(char **out, size_t *len, const char *s, size_t n)
{
	*out = xrealloc(*out, *len + n + 1);
	memcpy(*out + *len, s, n);
	*len += n;
}

enum users_update_result users_update(const char *path, const char *addr, const char *secret)
{
	char *old = NULL, *out = NULL, *entry = NULL;
	const char *p, *end, *line;
	size_t old_len = 0, out_len = 0, len, full;
	bool done = false;
	enum users_update_result rc = USERS_UPDATE_OK;

	if (users_addr_ok(addr, strlen(addr)) == NULL
	    || (secret && (secret[0] != '{' || strpbrk(secret, "\r\n") != NULL)))
		return USERS_UPDATE_BAD_ADDR;
	if (!users_read_all(path, &old, &old_len, NULL) && errno != ENOENT)
		return USERS_UPDATE_IO;
	if (secret) {
		char *lower = lower_dup(addr, strlen(addr));
		entry = xasprintf("%s:%s\n", lower, secret);
		free(lower);
	}
	for (p = old, end = old + old_len; p < end;) {
		struct user nu;
		line = users_next_line(&p, end, &len, &full);
		if (users_parse_line(line, len, &nu) != USERS_LINE_USER) {
			users_put(&out, &out_len, line, full);
			continue;
		}
		bool mine = strlen(nu.addr) == strlen(addr) && ascii_ieq(nu.addr, addr, strlen(addr));
		user_clear(&nu);
		if (!mine)
			users_put(&out, &out_len, line, full);
		else if (!done && entry)
			users_put(&out, &out_len, entry, strlen(entry));
		done |= mine;
	}
	if (!done && entry) {
		if (out_len > 0 && out[out_len - 1] != '\n')
			users_put(&out, &out_len, "\n", 1);
		users_put(&out, &out_len, entry, strlen(entry));
	}
	if (!done && !entry)
		rc = USERS_UPDATE_MISSING;
	else if (!users_write_atomic(path, out ? out : "", out_len))
		rc = USERS_UPDATE_IO;
	free(old);
	free(out);
	free(entry);
	return rc;
}
