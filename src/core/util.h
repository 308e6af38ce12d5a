/*
 * util.h - small helpers shared by every part of tern: allocation that
 * aborts on failure (x* prefix), bounded number parsing, durations and
 * sizes as the config file writes them, and monotonic/wall time.
 */
#ifndef TERN_UTIL_H
#define TERN_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>
#include <stdarg.h>

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Print "tern: <message>" to stderr and exit(1).  For start-up and config
 * errors only; never for anything a peer can send. */
void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

/* Parse an unsigned decimal in [min, max]; the whole string must be digits. */
bool parse_u64(const char *s, size_t len, uint64_t min, uint64_t max, uint64_t *out);
/* "90s", "30m", "4h", "5d", "2w" or plain seconds -> seconds. */
bool parse_duration(const char *s, uint64_t *seconds);
/* "35M", "512K", "1G", "1000" -> bytes. */
bool parse_size(const char *s, uint64_t *bytes);

uint64_t now_ms_monotonic(void);
int64_t now_unix(void);

/* Case-insensitive ASCII compare of n bytes; safe for any byte values. */
bool ascii_ieq(const char *a, const char *b, size_t n);
char ascii_lower(char c);

#endif
