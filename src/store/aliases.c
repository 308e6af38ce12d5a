/*
 * aliases.c - see aliases.h.  Keys are stored lower-case; a bare local
 * part matches in every local domain.
 */
#include "store/aliases.h"
#include "core/config.h"
#include "core/util.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct alias {
	char *name;
	struct word_list targets;
};

struct aliases {
	size_t n;
	struct alias *v;
};

static char *lower_trim(const char *s, size_t n)
{
	while (n && (*s == ' ' || *s == '\t')) {
		s++;
		n--;
	}
	while (n && (s[n - 1] == ' ' || s[n - 1] == '\t'))
		n--;
	char *p = xstrndup(s, n);
	for (char *q = p; *q; q++)
		*q = ascii_lower(*q);
	return p;
}

struct aliases *aliases_load(const char *path, FILE *err)
{
	struct aliases *a = xcalloc(1, sizeof(*a));
	FILE *f;
	char *line = NULL;
	size_t cap = 0, lineno = 0;
	ssize_t len;

	if (path == NULL || path[0] == '\0')
		return a;
	f = fopen(path, "r");
	if (f == NULL) {
		if (err)
			fprintf(err, "%s: cannot open: %s\n", path, strerror(errno));
		return a;
	}
	while ((len = getline(&line, &cap, f)) > 0) {
		lineno++;
		while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
			line[--len] = '\0';
		char *hash = strchr(line, '#');
		if (hash)
			*hash = '\0';
		char *colon = strchr(line, ':');
		if (colon == NULL) {
			if (line[strspn(line, " \t")] != '\0' && err)
				fprintf(err, "%s:%zu: expected name: target, target\n", path, lineno);
			continue;
		}
		struct alias al = { .name = lower_trim(line, (size_t)(colon - line)) };
		char *save = NULL;
		for (char *t = strtok_r(colon + 1, ", \t", &save); t; t = strtok_r(NULL, ", \t", &save)) {
			al.targets.v = xrealloc(al.targets.v, (al.targets.n + 1) * sizeof(char *));
			al.targets.v[al.targets.n++] = lower_trim(t, strlen(t));
		}
		if (al.name[0] == '\0' || al.targets.n == 0) {
			if (err)
				fprintf(err, "%s:%zu: an alias needs a name and at least one target\n", path, lineno);
			free(al.name);
			for (size_t i = 0; i < al.targets.n; i++)
				free(al.targets.v[i]);
			free(al.targets.v);
			continue;
		}
		a->v = xrealloc(a->v, (a->n + 1) * sizeof(*a->v));
		a->v[a->n++] = al;
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
	free(a);
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
