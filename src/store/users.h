/*
 * users.h - the users file: one `user@domain:{SCHEME}secret` a line, '#'
 * comments.  Addresses are matched case-insensitively; the local part and
 * domain double as Maildir path components, so only safe characters pass.
 */
#ifndef TERN_USERS_H
#define TERN_USERS_H

#include <stdbool.h>
#include <stdio.h>
#include <time.h>

struct user {
	char *addr;               /* lower-case "local@domain" */
	char *local;
	char *domain;
	char *secret;             /* "{SCHEME}..." as written */
};

struct users {
	size_t n;
	struct user *v;           /* sorted by addr */
	/* Challenge-response mechanisms need particular secrets: CRAM-MD5
	 * the password itself, SCRAM-SHA-256 the password or SCRAM keys.
	 * They are offered only when every user can use them, so a client
	 * that picks the "strongest" mechanism offered is never refused. */
	bool cram_ok, scram_ok;
	struct timespec mtime;
	char *path;
};

/* Load path; a missing file is an empty table.  Bad lines are reported to
 * err (may be NULL) as "path:line: ..." and skipped. */
struct users *users_load(const char *path, FILE *err);
void users_free(struct users *u);
const struct user *users_find(const struct users *u, const char *addr);
/* True when the file changed since u was loaded. */
bool users_changed(const struct users *u);
/* A local part / domain that is safe as a path component. */
bool users_safe_name(const char *s, size_t len);
/* Rewrite path atomically (mode 0600) from the table. */
bool users_save(const struct users *u, const char *path);
/* Add or replace (secret NULL removes).  Returns false if removing a missing user. */
bool users_set(struct users *u, const char *addr, const char *secret);

#endif
