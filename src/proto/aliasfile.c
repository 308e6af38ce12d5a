/*
 * aliasfile.c - see aliasfile.h.
 */
#include "proto/aliasfile.h"
#include "core/util.h"
#include "proto/smtp_parse.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

static bool is_blank(char c)
{
	return c == ' ' || c == '\t';
}

/* A dot-atom local part of at most SMTP_LOCAL_MAX octets. */
static bool local_ok(const char *s, size_t n)
{
	return n <= SMTP_LOCAL_MAX && smtp_dot_string_valid(s, n);
}

/* "local" or "local@domain", the domain a name or an address literal. */
static bool addr_ok(const char *s, size_t n)
{
	const char *at = NULL;

	if (n == 0 || n > SMTP_PATH_MAX - 2)
		return false;
	for (size_t i = 0; i < n; i++)
		if (s[i] == '@')
			at = s + i;
	if (at == NULL)
		return local_ok(s, n);
	size_t local = (size_t)(at - s), domain = n - local - 1;
	return local_ok(s, local) && domain > 0 && domain <= SMTP_DOMAIN_MAX && smtp_helo_valid(at + 1, domain);
}

static char *copy(const char *s, size_t n, bool lower)
{
	char *p = xstrndup(s, n);
	if (lower)
		for (char *q = p; *q; q++)
			*q = ascii_lower(*q);
	return p;
}

static void trim(const char **s, size_t *n)
{
	while (*n > 0 && is_blank(**s)) {
		(*s)++;
		(*n)--;
	}
	while (*n > 0 && is_blank((*s)[*n - 1]))
		(*n)--;
}

/* The targets after the colon: separated by commas and blanks. */
static enum alias_line_err parse_targets(const char *p, size_t n, struct alias_line *out)
{
	size_t i = 0;

	while (i < n) {
		size_t start, len;

		while (i < n && (p[i] == ',' || is_blank(p[i])))
			i++;
		if (i == n)
			break;
		for (start = i; i < n && p[i] != ',' && !is_blank(p[i]); i++)
			;
		len = i - start;
		if (p[start] == '|' || p[start] == '/' || p[start] == ':')
			return ALIAS_LINE_PROGRAM;
		if (!addr_ok(p + start, len))
			return ALIAS_LINE_BAD_TARGET;
		if (out->ntargets == ALIAS_TARGETS_MAX)
			return ALIAS_LINE_TOO_MANY;
		out->targets = xrealloc(out->targets, (out->ntargets + 1) * sizeof(*out->targets));
		out->targets[out->ntargets++] = copy(p + start, len, false);
	}
	return out->ntargets == 0 ? ALIAS_LINE_NO_TARGET : ALIAS_LINE_OK;
}

enum alias_line_err alias_line_parse(const char *line, size_t len, struct alias_line *out)
{
	const char *hash, *colon, *name;
	size_t name_len;
	enum alias_line_err err;

	memset(out, 0, sizeof(*out));
	if (len > ALIAS_LINE_MAX)
		return ALIAS_LINE_TOO_LONG;
	if (memchr(line, '\0', len) != NULL)
		return ALIAS_LINE_NUL;
	if ((hash = memchr(line, '#', len)) != NULL)
		len = (size_t)(hash - line);
	trim(&line, &len);
	if (len == 0)
		return ALIAS_LINE_BLANK;
	if ((colon = memchr(line, ':', len)) == NULL)
		return ALIAS_LINE_NO_COLON;
	name = line;
	name_len = (size_t)(colon - line);
	trim(&name, &name_len);
	if (!addr_ok(name, name_len))
		return ALIAS_LINE_BAD_NAME;
	err = parse_targets(colon + 1, len - (size_t)(colon - line) - 1, out);
	if (err != ALIAS_LINE_OK) {
		alias_line_free(out);
		return err;
	}
	out->name = copy(name, name_len, true);
	return ALIAS_LINE_OK;
}

void alias_line_free(struct alias_line *l)
{
	for (size_t i = 0; i < l->ntargets; i++)
		free(l->targets[i]);
	free(l->targets);
	free(l->name);
	memset(l, 0, sizeof(*l));
}

const char *alias_line_strerror(enum alias_line_err err)
{
	switch (err) {
	case ALIAS_LINE_OK:
	case ALIAS_LINE_BLANK:
		return "ok";
	case ALIAS_LINE_NO_COLON:
		return "expected name: target, target";
	case ALIAS_LINE_BAD_NAME:
		return "the name is not a local part or an address";
	case ALIAS_LINE_NO_TARGET:
		return "an alias needs at least one target";
	case ALIAS_LINE_BAD_TARGET:
		return "a target is not an address";
	case ALIAS_LINE_PROGRAM:
		return "pipes, files and :include: are not supported";
	case ALIAS_LINE_TOO_MANY:
		return "too many targets";
	case ALIAS_LINE_TOO_LONG:
		return "line too long";
	case ALIAS_LINE_NUL:
		return "NUL in line";
	}
	return "?";
}
