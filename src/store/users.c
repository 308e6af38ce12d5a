/*
 * users.c - reading, looking up and atomically rewriting the users file.
 */
#include "store/users.h"
#include "core/fsutil.h"
#include "core/util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

bool users_safe_name(const char *s, size_t len)
{
	if (len == 0 || len > 255 || s[0] == '.' || s[0] == '-')
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
		      || c == '.' || c == '_' || c == '-' || c == '+'))
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

static bool user_fill(struct user *u, const char *addr, size_t alen, const char *secret)
{
	const char *at = memchr(addr, '@', alen);
	if (at == NULL || !users_safe_name(addr, (size_t)(at - addr))
	    || !users_safe_name(at + 1, alen - (size_t)(at - addr) - 1))
		return false;
	memset(u, 0, sizeof(*u));
	u->addr = lower_dup(addr, alen);
	u->local = lower_dup(addr, (size_t)(at - addr));
	u->domain = lower_dup(at + 1, alen - (size_t)(at - addr) - 1);
	u->secret = xstrdup(secret);
	return true;
}

struct users *users_load(const char *path, FILE *err)
{
	struct users *u = xcalloc(1, sizeof(*u));
	struct stat st;
	FILE *f = fopen(path, "r");
	char *line = NULL;
	size_t cap = 0, lineno = 0;
	ssize_t len;

	u->path = xstrdup(path);
	u->cram_ok = u->scram_ok = true;
	if (f == NULL) {
		if (errno != ENOENT && err)
			fprintf(err, "%s: cannot open: %s\n", path, strerror(errno));
		return u;
	}
	if (fstat(fileno(f), &st) == 0)
		u->mtime = st.st_mtim;
	while ((len = getline(&line, &cap, f)) > 0) {
		lineno++;
		while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
			line[--len] = '\0';
		if (len == 0 || line[0] == '#')
			continue;
		char *colon = strchr(line, ':');
		struct user nu;
		if (colon == NULL || colon[1] != '{' || !user_fill(&nu, line, (size_t)(colon - line), colon + 1)) {
			if (err)
				fprintf(err, "%s:%zu: expected user@domain:{SCHEME}secret with a plain address\n", path, lineno);
			continue;
		}
		u->v = xrealloc(u->v, (u->n + 1) * sizeof(*u->v));
		u->v[u->n++] = nu;
	}
	free(line);
	fclose(f);
	if (u->n > 1)   /* qsort(NULL, 0) is undefined behaviour */
		qsort(u->v, u->n, sizeof(*u->v), cmp_user);
	users_mechs(u);
	return u;
}

void users_free(struct users *u)
{
	if (u == NULL)
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

bool users_set(struct users *u, const char *addr, const char *secret)
{
	struct user *found = (struct user *)users_find(u, addr);
	if (secret == NULL) {
		if (found == NULL)
			return false;
		size_t i = (size_t)(found - u->v);
		user_clear(found);
		memmove(&u->v[i], &u->v[i + 1], (u->n - i - 1) * sizeof(*u->v));
		u->n--;
		users_mechs(u);
		return true;
	}
	struct user nu;
	if (!user_fill(&nu, addr, strlen(addr), secret))
		return false;
	if (found) {
		user_clear(found);
		*found = nu;
	} else {
		u->v = xrealloc(u->v, (u->n + 1) * sizeof(*u->v));
		u->v[u->n++] = nu;
		qsort(u->v, u->n, sizeof(*u->v), cmp_user);
	}
	users_mechs(u);
	return true;
}

/* Temp file beside the target, fsync, rename, fsync the directory: a
 * reader sees the old file or the new one, never half of one. */
bool users_save(const struct users *u, const char *path)
{
	char *tmp = xasprintf("%s.tmp.%d", path, (int)getpid());
	char *dir = xstrdup(path), *slash = strrchr(dir, '/');
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	bool ok = fd >= 0;

	if (slash)
		*slash = '\0';
	else
		strcpy(dir, ".");
	for (size_t i = 0; ok && i < u->n; i++) {
		char *line = xasprintf("%s:%s\n", u->v[i].addr, u->v[i].secret);
		ok = write_all(fd, line, strlen(line));
		free(line);
	}
	if (fd >= 0) {
		ok = ok && fchmod(fd, 0600) == 0 && fsync(fd) == 0;
		ok = (close(fd) == 0) && ok;
	}
	ok = ok && rename(tmp, path) == 0 && dir_sync(dir);
	if (!ok)
		unlink(tmp);
	free(tmp);
	free(dir);
	return ok;
}
