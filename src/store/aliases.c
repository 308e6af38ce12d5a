/*
 * aliases.c - see aliases.h.  Lines are parsed by proto/aliasfile.c;
 * names are stored lower-case; a bare local part matches in every local
 * domain.
 */
#include "store/aliases.h"
#include "core/config.h"
#include "core/util.h"
#include "proto/aliasfile.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

struct alias {
	char *name;
	struct word_list targets;
};

struct aliases {
	size_t n;
	struct alias *v;
	char *path;
	bool present;             /* the file existed when loaded */
	struct timespec mtime;    /* its modification time then */
};

static void aliases_add(struct aliases *a, struct alias_line *l)
{
	struct alias al = { .name = l->name, .targets = { .n = l->ntargets, .v = l->targets } };

	a->v = xrealloc(a->v, (a->n + 1) * sizeof(*a->v));
	a->v[a->n++] = al;
	memset(l, 0, sizeof(*l));
}

struct aliases *aliases_load(const char *path, aliases_warn_fn warn, void *ctx)
{
	struct aliases *a = xcalloc(1, sizeof(*a));
	FILE *f;
	char *line = NULL;
	size_t cap = 0, lineno = 0;
	ssize_t len;
	struct stat st;

	if (path == NULL || path[0] == '\0')
		return a;
	a->path = xstrdup(path);
	/* Stat before reading: a change made while we read is seen next time. */
	if (stat(path, &st) == 0) {
		a->present = true;
		a->mtime = st.st_mtim;
	}
	f = fopen(path, "r");
	if (f == NULL) {
		warn(ctx, path, 0, strerror(errno));
		return a;
	}
	while ((len = getline(&line, &cap, f)) > 0) {
		struct alias_line l;
		enum alias_line_err err;

		lineno++;
		while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
			len--;
		err = alias_line_parse(line, (size_t)len, &l);
		if (err == ALIAS_LINE_OK)
			aliases_add(a, &l);
		else if (err != ALIAS_LINE_BLANK)
			warn(ctx, path, lineno, alias_line_strerror(err));
	}
	free(line);
	fclose(f);
	return a;
}

void aliases_free(struct aliases *a)
{
	if (a == NULL)
		return;
	for (size_t i = 0; i < a->n; i++) {
		free(a->v[i].name);
		for (size_t j = 0; j < a->v[i].targets.n; j++)
			free(a->v[i].targets.v[j]);
		free(a->v[i].targets.v);
	}
	free(a->v);
	free(a->path);
	free(a);
}

bool aliases_changed(const struct aliases *a)
{
	struct stat st;

	if (a->path == NULL)
		return false;
	if (stat(a->path, &st) < 0)
		return a->present;
	return !a->present || st.st_mtim.tv_sec != a->mtime.tv_sec || st.st_mtim.tv_nsec != a->mtime.tv_nsec;
}

size_t aliases_count(const struct aliases *a)
{
	return a->n;
}

const struct word_list *aliases_lookup(const struct aliases *a, const char *addr)
{
	const char *at = strchr(addr, '@');
	size_t local_len = at ? (size_t)(at - addr) : strlen(addr);

	for (size_t i = 0; i < a->n; i++)
		if (strcasecmp(a->v[i].name, addr) == 0)
			return &a->v[i].targets;
	for (size_t i = 0; i < a->n; i++)
		if (strchr(a->v[i].name, '@') == NULL && strlen(a->v[i].name) == local_len
		    && strncasecmp(a->v[i].name, addr, local_len) == 0)
			return &a->v[i].targets;
	return NULL;
}
