/*
 * http_parse.h - a pure reader of one HTTP/1.1 request head (RFC 9112
 * sections 3 and 5): the request line and the header fields, up to and
 * including the empty line.  The HTTP service (web/) reads the bytes with
 * its own bounds and maps the result to a status code.
 */
#ifndef TERN_HTTP_PARSE_H
#define TERN_HTTP_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A piece of the caller's buffer; not NUL-terminated. */
struct http_str {
	const char *p;
	size_t n;
};

struct http_head {
	struct http_str method;
	struct http_str target;   /* origin-form: path ["?" query] */
	struct http_str path;
	struct http_str query;    /* after "?", or empty */
	unsigned minor;           /* HTTP/1.minor */
	struct http_str host;     /* as sent, port included; empty if absent */
	bool has_length;
	uint64_t content_length;
	bool has_transfer_encoding;
	bool conn_close;          /* Connection: close (RFC 9112 9.6) */
	bool conn_keep_alive;     /* Connection: keep-alive (an HTTP/1.0 client's ask) */
};

/* Parses buf[0..len), which ends with the empty line (CRLF CRLF).
 * Returns 0, or the status to answer: 400 (malformed: bare CR or LF,
 * obsolete line folding, a bad or repeated Host or Content-Length, a
 * target not in origin-form), 505 (not HTTP/1.x). */
int http_parse_head(const char *buf, size_t len, struct http_head *out);

/* Is s equal to the NUL-terminated lit, ignoring ASCII case? */
bool http_str_ieq(struct http_str s, const char *lit);
bool http_str_eq(struct http_str s, const char *lit);

/* The value of the first query parameter called name, percent- and
 * "+"-decoded into out (NUL-terminated).  False when absent, badly
 * encoded, containing NUL or longer than cap - 1. */
bool http_query_param(struct http_str query, const char *name, char *out, size_t cap);

#endif
