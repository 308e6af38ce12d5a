/*
 * users.h - the users file: one `user@domain:{SCHEME}secret` a line, '#'
 * comments and blank lines.  Addresses are matched case-insensitively; the
 * local part and domain double as Maildir path components, so only safe
 * characters pass (ASCII letters, digits, . _ - + and well-formed UTF-8).  Lines that do not parse are reported and skipped by
 * the reader, and kept byte for byte by the writer (users_update), so a
 * typo never costs an administrator the line they mistyped.
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
	size_t line;              /* where it is in the file (1-based) */
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
	unsigned refs;            /* users_ref() - users_free() calls, plus 1 */
};

/* Told about a line that is not a user (line 0: the file as a whole,
 * e.g. it cannot be opened).  what is a short English phrase. */
typedef void (*users_warn_fn)(void *ctx, const char *path, size_t line, const char *what);

/* Load path; a missing file is an empty table.  Bad lines are reported to
 * warn (may be NULL) and skipped; never fatal. */
struct users *users_load(const char *path, users_warn_fn warn, void *ctx);
/* A table is immutable once loaded, so a worker thread may read one that
 * the loop thread has replaced: whoever hands it to a worker takes a
 * reference first, and users_free() drops one (the table goes with the
 * last).  Both on the loop thread only. */
struct users *users_ref(struct users *u);
void users_free(struct users *u);
const struct user *users_find(const struct users *u, const char *addr);
/* True when the file changed since u was loaded. */
bool users_changed(const struct users *u);
/* A local part / domain that is safe as a path component. */
bool users_safe_name(const char *s, size_t len);
/*
 * Set addr's secret in the file at path (secret NULL removes the user):
 * the first line that is addr's entry is replaced (later duplicates of it
 * are removed), or a new line is appended.  Every other line - comments,
 * blank lines, lines that do not parse - is kept byte for byte and in
 * order.  The file is rewritten atomically with mode 0600.  Returns
 * USERS_UPDATE_OK, USERS_UPDATE_BAD_ADDR (addr unusable, nothing written),
 * USERS_UPDATE_MISSING (removing a user that has no line) or
 * USERS_UPDATE_IO (errno set).
 */
enum users_update_result {
	USERS_UPDATE_OK,
	USERS_UPDATE_BAD_ADDR,
	USERS_UPDATE_MISSING,
	USERS_UPDATE_IO,
};
enum users_update_result users_update(const char *path, const char *addr, const char *secret);

#endif
