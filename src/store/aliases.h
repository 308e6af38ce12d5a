/*
 * aliases.h - the aliases file: `name: target, target` a line, '#'
 * comments.  name is "local" (any local domain) or "local@domain"; a
 * target is an address, local or remote.  Expansion follows aliases of
 * aliases up to ALIASES_MAX_DEPTH and drops duplicates.
 */
#ifndef TERN_ALIASES_H
#define TERN_ALIASES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "core/config.h"

#define ALIASES_MAX_DEPTH 8
#define ALIASES_MAX_TARGETS 1000

struct aliases;

struct aliases *aliases_load(const char *path, FILE *err);
void aliases_free(struct aliases *a);
/* Targets of addr ("local@domain") if it is an alias, else NULL. */
const struct word_list *aliases_lookup(const struct aliases *a, const char *addr);

#endif
