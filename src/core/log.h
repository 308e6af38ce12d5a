/*
 * log.h - one line per event on stderr: an RFC 3339 UTC timestamp, then
 * key=value pairs.  Values that come from the network go through
 * log_quote(), which clips and escapes them so a peer cannot forge lines.
 */
#ifndef TERN_LOG_H
#define TERN_LOG_H

#include <stdbool.h>
#include <stddef.h>

/* fmt produces the key=value part, e.g. "event=connect session=%s ip=%s". */
void log_event(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Quote and escape up to `len` bytes of untrusted text into buf as "...",
 * clipping at cap (an ellipsis marks the cut).  Returns buf. */
const char *log_quote(char *buf, size_t cap, const char *s, size_t len);

/* Tests and tools may silence the log. */
void log_set_quiet(int quiet);

/* Debug events (session state changes) are logged only when enabled
 * ([server] log_debug). */
void log_set_debug(bool on);
bool log_debug_enabled(void);

#endif
