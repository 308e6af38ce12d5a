/*
 * http_parse.c - see http_parse.h.  RFC 9112 2.2 (CRLF only here: a bare
 * CR or LF is a request-smuggling vector and is refused), 3 (request
 * line, origin-form only: tern serves no proxy), 5 (field lines; obs-fold
 * refused per 5.2), 6.3 (Content-Length: one value, digits only), RFC 9110
 * 7.2 (exactly one Host).
 */
#include "proto/http_parse.h"

#include <string.h>

static bool is_tchar(unsigned char c)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
		return true;
	return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

bool http_str_ieq(struct http_str s, const char *lit)
{
	size_t n = strlen(lit);
	if (s.n != n)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char a = (unsigned char)s.p[i], b = (unsigned char)lit[i];
		if (a >= 'A' && a <= 'Z')
			a = (unsigned char)(a + 32);
		if (b >= 'A' && b <= 'Z')
			b = (unsigned char)(b + 32);
		if (a != b)
			return false;
	}
	return true;
}

bool http_str_eq(struct http_str s, const char *lit)
{
	return s.n == strlen(lit) && memcmp(s.p, lit, s.n) == 0;
}

/* The next CRLF-terminated line from *pos; false if a bare CR or LF comes
 * first or no CRLF is left. */
static bool next_line(const char *buf, size_t len, size_t *pos, struct http_str *line)
{
	size_t i = *pos;
	for (; i < len; i++) {
		if (buf[i] == '\n')
			return false;
		if (buf[i] == '\r') {
			if (i + 1 >= len || buf[i + 1] != '\n')
				return false;
			line->p = buf + *pos;
			line->n = i - *pos;
			*pos = i + 2;
			return true;
		}
	}
	return false;
}

static int parse_request_line(struct http_str l, struct http_head *h)
{
	size_t i = 0;
	while (i < l.n && is_tchar((unsigned char)l.p[i]))
		i++;
	if (i == 0 || i >= l.n || l.p[i] != ' ')
		return 400;
	h->method = (struct http_str){ l.p, i };
	size_t t = ++i;
	while (i < l.n && (unsigned char)l.p[i] > 0x20 && (unsigned char)l.p[i] < 0x7f)
		i++;
	if (i == t || i >= l.n || l.p[i] != ' ')
		return 400;
	h->target = (struct http_str){ l.p + t, i - t };
	if (h->target.p[0] != '/')
		return 400;
	const char *q = memchr(h->target.p, '?', h->target.n);
	const char *hash = memchr(h->target.p, '#', h->target.n);
	if (hash)
		return 400;
	if (q) {
		h->path = (struct http_str){ h->target.p, (size_t)(q - h->target.p) };
		h->query = (struct http_str){ q + 1, h->target.n - h->path.n - 1 };
	} else {
		h->path = h->target;
		h->query = (struct http_str){ h->target.p + h->target.n, 0 };
	}
	struct http_str v = { l.p + i + 1, l.n - i - 1 };
	if (v.n != 8 || memcmp(v.p, "HTTP/", 5) != 0 || v.p[6] != '.' || v.p[5] < '0' || v.p[5] > '9' ||
	    v.p[7] < '0' || v.p[7] > '9')
		return 400;
	if (v.p[5] != '1')
		return 505;
	h->minor = (unsigned)(v.p[7] - '0');
	return 0;
}

static bool parse_length(struct http_str v, uint64_t *out)
{
	uint64_t n = 0;
	if (v.n == 0 || v.n > 18)
		return false;
	for (size_t i = 0; i < v.n; i++) {
		if (v.p[i] < '0' || v.p[i] > '9')
			return false;
		n = n * 10 + (uint64_t)(v.p[i] - '0');
	}
	*out = n;
	return true;
}

/* Connection's options, a comma-separated list (RFC 9110 7.6.1). */
static void parse_connection(struct http_str v, struct http_head *h)
{
	size_t i = 0;
	while (i < v.n) {
		while (i < v.n && (v.p[i] == ',' || v.p[i] == ' ' || v.p[i] == '\t'))
			i++;
		size_t a = i;
		while (i < v.n && v.p[i] != ',' && v.p[i] != ' ' && v.p[i] != '\t')
			i++;
		struct http_str tok = { v.p + a, i - a };
		if (http_str_ieq(tok, "close"))
			h->conn_close = true;
		else if (http_str_ieq(tok, "keep-alive"))
			h->conn_keep_alive = true;
	}
}

static int parse_field(struct http_str l, struct http_head *h)
{
	size_t i = 0;
	if (l.n && (l.p[0] == ' ' || l.p[0] == '\t'))
		return 400;                           /* obs-fold */
	while (i < l.n && is_tchar((unsigned char)l.p[i]))
		i++;
	if (i == 0 || i >= l.n || l.p[i] != ':')
		return 400;                           /* also "Name :" (5.1) */
	struct http_str name = { l.p, i };
	size_t a = i + 1, b = l.n;
	while (a < b && (l.p[a] == ' ' || l.p[a] == '\t'))
		a++;
	while (b > a && (l.p[b - 1] == ' ' || l.p[b - 1] == '\t'))
		b--;
	for (size_t k = a; k < b; k++) {
		unsigned char c = (unsigned char)l.p[k];
		if (c == 0 || c == 0x7f || (c < 0x20 && c != '\t'))
			return 400;
	}
	struct http_str v = { l.p + a, b - a };
	if (http_str_ieq(name, "host")) {
		if (h->host.p != NULL || v.n == 0)
			return 400;
		h->host = v;
	} else if (http_str_ieq(name, "content-length")) {
		uint64_t n;
		if (!parse_length(v, &n) || (h->has_length && n != h->content_length))
			return 400;
		h->has_length = true;
		h->content_length = n;
	} else if (http_str_ieq(name, "transfer-encoding")) {
		h->has_transfer_encoding = true;
	} else if (http_str_ieq(name, "connection")) {
		parse_connection(v, h);
	}
	return 0;
}

int http_parse_head(const char *buf, size_t len, struct http_head *out)
{
	size_t pos = 0;
	struct http_str line;
	int rc;

	memset(out, 0, sizeof(*out));
	if (!next_line(buf, len, &pos, &line) || line.n == 0)
		return 400;
	if ((rc = parse_request_line(line, out)) != 0)
		return rc;
	for (;;) {
		if (!next_line(buf, len, &pos, &line))
			return 400;
		if (line.n == 0)
			break;
		if ((rc = parse_field(line, out)) != 0)
			return rc;
	}
	if (pos != len)
		return 400;
	/* HTTP/1.1 requires Host (RFC 9112 3.2); 1.0 clients may omit it. */
	if (out->minor >= 1 && out->host.p == NULL)
		return 400;
	if (out->host.p == NULL)
		out->host = (struct http_str){ buf, 0 };
	/* Both framings at once is a smuggling attempt (RFC 9112 6.1). */
	if (out->has_transfer_encoding && out->has_length)
		return 400;
	return 0;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Decode one component into out; false on a bad escape, NUL, or overflow. */
static bool decode(const char *p, size_t n, char *out, size_t cap)
{
	size_t o = 0;
	if (cap == 0)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = p[i];
		if (c == '+') {
			c = ' ';
		} else if (c == '%') {
			int hi, lo;
			if (n - i < 3)
				return false;
			hi = hexval(p[i + 1]);
			lo = hexval(p[i + 2]);
			if (hi < 0 || lo < 0)
				return false;
			c = (char)(hi * 16 + lo);
			i += 2;
		}
		if (c == '\0' || o + 1 >= cap)
			return false;
		out[o++] = c;
	}
	out[o] = '\0';
	return true;
}

bool http_query_param(struct http_str q, const char *name, char *out, size_t cap)
{
	size_t nlen = strlen(name), i = 0;
	while (i <= q.n) {
		const char *amp = memchr(q.p + i, '&', q.n - i);
		size_t end = amp ? (size_t)(amp - q.p) : q.n;
		const char *eq = memchr(q.p + i, '=', end - i);
		size_t klen = eq ? (size_t)(eq - (q.p + i)) : end - i;
		if (klen == nlen && memcmp(q.p + i, name, nlen) == 0) {
			const char *v = eq ? eq + 1 : q.p + end;
			return decode(v, (size_t)(q.p + end - v), out, cap);
		}
		if (!amp)
			break;
		i = end + 1;
	}
	return false;
}
