/*
 * aliases.h - the aliases file: `name: target, target` a line, '#'
 * comments (proto/aliasfile.h).  name is "local" (any local domain) or
 * "local@domain"; a target is an address, local or remote.  Expansion follows aliases of
 * aliases up to ALIASES_MAX_DEPTH and drops duplicates.
 */
#ifndef TERN_ALIASES_H
#define TERN_ALIASES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "core/config.h"

#define ALIASES_MAX_DEPTH 8

struct aliases;

/* A line skipped (line 0: the file could not be read; what says why).
 * Bad lines never stop a load: the others are used. */
typedef void (*aliases_warn_fn)(void *ctx, const char *path, size_t line, const char *what);

struct aliases *aliases_load(const char *path, aliases_warn_fn warn, void *ctx);
void aliases_free(struct aliases *a);
size_t aliases_count(const struct aliases *a);
/* The file was changed, created or removed since it was loaded. */
bool aliases_changed(const struct aliases *a);
/* Targets of addr ("local@domain") if it is an alias, else NULL. */
const struct word_list *aliases_lookup(const struct aliases *a, const char *addr);

#endif
