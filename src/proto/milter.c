/*
 * milter.c - the milter protocol codec (see milter.h).
 *
 * The reply parser is the part that reads what another program wrote: it
 * takes nothing on trust.  A length is checked against the bound before
 * anything is read, every string must end with its NUL inside the packet,
 * and a packet with more or fewer strings than its command has is
 * garbage, as is a command that a filter never sends.
 */
#include "proto/milter.h"
#include "core/util.h"

#include <arpa/inet.h>
#include <assert.h>
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

void milter_buf_free(struct milter_buf *b)
{
	free(b->p);
	memset(b, 0, sizeof(*b));
}

void milter_buf_reset(struct milter_buf *b)
{
	b->len = 0;
}

static void buf_room(struct milter_buf *b, size_t n)
{
	if (b->cap - b->len >= n)
		return;
	size_t cap = b->cap ? b->cap : 256;
	while (cap - b->len < n)
		cap *= 2;
	b->p = xrealloc(b->p, cap);
	b->cap = cap;
}

static void buf_add(struct milter_buf *b, const void *p, size_t n)
{
	buf_room(b, n);
	if (n)
		memcpy(b->p + b->len, p, n);
	b->len += n;
}

static void buf_u32(struct milter_buf *b, uint32_t v)
{
	unsigned char o[4] = { (unsigned char)(v >> 24), (unsigned char)(v >> 16), (unsigned char)(v >> 8),
			       (unsigned char)v };
	buf_add(b, o, 4);
}

static void buf_str(struct milter_buf *b, const char *s, size_t n)
{
	buf_add(b, s, n);
	buf_add(b, "", 1);
}

/* Start a packet: room for its length, the command.  Returns where the
 * length goes, for pkt_end(). */
static size_t pkt_start(struct milter_buf *b, char cmd)
{
	size_t at = b->len;
	buf_u32(b, 0);
	buf_add(b, &cmd, 1);
	return at;
}

static void pkt_end(struct milter_buf *b, size_t at)
{
	uint32_t n = (uint32_t)(b->len - at - 4);
	b->p[at] = (unsigned char)(n >> 24);
	b->p[at + 1] = (unsigned char)(n >> 16);
	b->p[at + 2] = (unsigned char)(n >> 8);
	b->p[at + 3] = (unsigned char)n;
}

void milter_put_optneg(struct milter_buf *b, uint32_t version, uint32_t actions, uint32_t protocol)
{
	size_t at = pkt_start(b, MILTER_C_OPTNEG);
	buf_u32(b, version);
	buf_u32(b, actions);
	buf_u32(b, protocol);
	pkt_end(b, at);
}

void milter_put_connect(struct milter_buf *b, const char *host, char family, uint16_t port, const char *addr)
{
	size_t at = pkt_start(b, MILTER_C_CONNECT);
	buf_str(b, host, strlen(host));
	buf_add(b, &family, 1);
	if (family != 'L') {
		unsigned char o[2] = { (unsigned char)(port >> 8), (unsigned char)port };
		buf_add(b, o, 2);
		buf_str(b, addr, strlen(addr));
	}
	pkt_end(b, at);
}

void milter_put_helo(struct milter_buf *b, const char *helo)
{
	size_t at = pkt_start(b, MILTER_C_HELO);
	buf_str(b, helo, strlen(helo));
	pkt_end(b, at);
}

void milter_put_args(struct milter_buf *b, char cmd, const char *const *argv, size_t argc)
{
	size_t at = pkt_start(b, cmd);
	for (size_t i = 0; i < argc; i++)
		buf_str(b, argv[i], strlen(argv[i]));
	pkt_end(b, at);
}

void milter_put_header(struct milter_buf *b, const char *name, size_t nlen, const char *value, size_t vlen)
{
	size_t at = pkt_start(b, MILTER_C_HEADER);
	buf_str(b, name, nlen);
	buf_str(b, value, vlen);
	pkt_end(b, at);
}

void milter_put_body(struct milter_buf *b, const void *buf, size_t len)
{
	assert(len <= MILTER_CHUNK_MAX);
	size_t at = pkt_start(b, MILTER_C_BODY);
	buf_add(b, buf, len);
	pkt_end(b, at);
}

void milter_put_simple(struct milter_buf *b, char cmd)
{
	pkt_end(b, pkt_start(b, cmd));
}

void milter_put_macros(struct milter_buf *b, char cmd, const char *const *kv, size_t n)
{
	size_t at = pkt_start(b, MILTER_C_MACRO);
	buf_add(b, &cmd, 1);
	for (size_t i = 0; i + 1 < n; i += 2) {
		if (kv[i + 1] == NULL)
			continue;
		buf_str(b, kv[i], strlen(kv[i]));
		buf_str(b, kv[i + 1], strlen(kv[i + 1]));
	}
	pkt_end(b, at);
}

void milter_put_unknown(struct milter_buf *b, const char *line)
{
	size_t at = pkt_start(b, MILTER_C_UNKNOWN);
	buf_str(b, line, strlen(line));
	pkt_end(b, at);
}

/* ---- the filter's replies ------------------------------------------------ */

static uint32_t get_u32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Exactly min..max NUL-terminated strings filling p[0..n). */
static bool get_strings(const unsigned char *p, size_t n, unsigned min, unsigned max, struct milter_reply *r)
{
	const char *s[2] = { NULL, NULL };
	size_t l[2] = { 0, 0 };
	unsigned k = 0;
	size_t off = 0;

	while (off < n) {
		const unsigned char *nul = memchr(p + off, '\0', n - off);
		if (nul == NULL || k == max)
			return false;
		s[k] = (const char *)p + off;
		l[k] = (size_t)(nul - (p + off));
		k++;
		off = (size_t)(nul - p) + 1;
	}
	if (k < min)
		return false;
	r->s1 = s[0];
	r->s1len = l[0];
	r->s2 = s[1];
	r->s2len = l[1];
	return true;
}

static bool reply_decode(struct milter_reply *r)
{
	const unsigned char *d = r->data;
	size_t n = r->len;

	switch (r->cmd) {
	case MILTER_R_CONTINUE:
	case MILTER_R_ACCEPT:
	case MILTER_R_REJECT:
	case MILTER_R_TEMPFAIL:
	case MILTER_R_DISCARD:
	case MILTER_R_SKIP:
	case MILTER_R_PROGRESS:
		return n == 0;
	case MILTER_R_REPLYCODE:
	case MILTER_R_ADDRCPT:
	case MILTER_R_DELRCPT:
	case MILTER_R_QUARANTINE:
		return get_strings(d, n, 1, 1, r);
	case MILTER_R_ADDRCPT_PAR:
	case MILTER_R_CHGFROM:
		return get_strings(d, n, 1, 2, r);
	case MILTER_R_ADDHEADER:
		return get_strings(d, n, 2, 2, r);
	case MILTER_R_INSHEADER:
	case MILTER_R_CHGHEADER:
		if (n < 4)
			return false;
		r->index = get_u32(d);
		return get_strings(d + 4, n - 4, 2, 2, r);
	case MILTER_R_SETSYMLIST:
		if (n < 4)
			return false;
		r->index = get_u32(d);
		return get_strings(d + 4, n - 4, 1, 1, r);
	case MILTER_R_REPLBODY:
		return true;
	case MILTER_R_OPTNEG:
		/* the three words; v6 filters may append macro lists
		 * (stage, string) that tern does not need */
		if (n < 12)
			return false;
		r->version = get_u32(d);
		r->actions = get_u32(d + 4);
		r->protocol = get_u32(d + 8);
		return true;
	default:
		return false;
	}
}

enum milter_parse milter_reply_parse(const void *in, size_t len, size_t max, struct milter_reply *r,
				     size_t *used)
{
	const unsigned char *p = in;
	uint32_t n;

	memset(r, 0, sizeof(*r));
	*used = 0;
	if (len < 4)
		return MILTER_MORE;
	n = get_u32(p);
	if (n < 1 || n > max)
		return MILTER_BAD;
	if (len - 4 < n)
		return MILTER_MORE;
	r->cmd = (char)p[4];
	r->data = p + 5;
	r->len = n - 1;
	if (!reply_decode(r))
		return MILTER_BAD;
	*used = 4 + (size_t)n;
	return MILTER_OK;
}

/* One line of a reply: the code (the first line's, when code is set),
 * '-' before more lines or ' ' / the end on the last, printable text, an
 * enhanced code of the reply's class. */
static bool replycode_line(const char *s, size_t len, const char *code, bool last)
{
	if (len < 3 || (s[0] != '4' && s[0] != '5') || !isdigit((unsigned char)s[1]) ||
	    !isdigit((unsigned char)s[2]) || (code && memcmp(s, code, 3) != 0))
		return false;
	if (len == 3)
		return last;
	if (s[3] != (last ? ' ' : '-'))
		return false;
	for (size_t i = 4; i < len; i++)
		if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] == 0x7f)
			return false;
	if (len >= 6 && isdigit((unsigned char)s[4]) && s[5] == '.' && s[4] != s[0])
		return false;
	return true;
}

bool milter_replycode_valid(const char *s, size_t len)
{
	const char *end = s + len, *line = s;

	/* lines end with CRLF, as libmilter's smfi_setmlreply() joins them */
	for (;;) {
		const char *cr = memchr(line, '\r', (size_t)(end - line));
		bool last = cr == NULL;
		size_t n = (size_t)((last ? end : cr) - line);
		if (!replycode_line(line, n, line == s ? NULL : s, last))
			return false;
		if (last)
			return true;
		if (cr + 1 >= end || cr[1] != '\n')
			return false;
		line = cr + 2;
	}
}

const char *milter_reply_name(char cmd)
{
	switch (cmd) {
	case MILTER_R_ADDRCPT: return "addrcpt";
	case MILTER_R_DELRCPT: return "delrcpt";
	case MILTER_R_ADDRCPT_PAR: return "addrcpt_par";
	case MILTER_R_OPTNEG: return "optneg";
	case MILTER_R_ACCEPT: return "accept";
	case MILTER_R_REPLBODY: return "replbody";
	case MILTER_R_CONTINUE: return "continue";
	case MILTER_R_DISCARD: return "discard";
	case MILTER_R_CHGFROM: return "chgfrom";
	case MILTER_R_ADDHEADER: return "addheader";
	case MILTER_R_INSHEADER: return "insheader";
	case MILTER_R_SETSYMLIST: return "setsymlist";
	case MILTER_R_CHGHEADER: return "chgheader";
	case MILTER_R_PROGRESS: return "progress";
	case MILTER_R_QUARANTINE: return "quarantine";
	case MILTER_R_REJECT: return "reject";
	case MILTER_R_SKIP: return "skip";
	case MILTER_R_TEMPFAIL: return "tempfail";
	case MILTER_R_REPLYCODE: return "replycode";
	default: return "unknown";
	}
}

bool milter_addr_parse(const char *spec, struct sockaddr_storage *ss, socklen_t *len)
{
	char host[64];
	const char *h, *colon;
	size_t hlen;
	unsigned long port;
	char *end;

	memset(ss, 0, sizeof(*ss));
	if (strncmp(spec, "unix:", 5) == 0) {
		struct sockaddr_un *sun = (struct sockaddr_un *)ss;
		size_t n = strlen(spec + 5);
		if (spec[5] != '/' || n >= sizeof(sun->sun_path))
			return false;
		sun->sun_family = AF_UNIX;
		memcpy(sun->sun_path, spec + 5, n + 1);
		*len = (socklen_t)sizeof(*sun);
		return true;
	}
	if (strncmp(spec, "inet:", 5) != 0)
		return false;
	h = spec + 5;
	colon = strrchr(h, ':');
	if (colon == NULL || colon == h || colon[1] < '0' || colon[1] > '9')
		return false;
	port = strtoul(colon + 1, &end, 10);
	if (*end != '\0' || port == 0 || port > 65535)
		return false;
	hlen = (size_t)(colon - h);
	if (h[0] == '[') {
		if (hlen < 3 || h[hlen - 1] != ']')
			return false;
		h++;
		hlen -= 2;
	}
	if (hlen >= sizeof(host))
		return false;
	memcpy(host, h, hlen);
	host[hlen] = '\0';
	if (strcmp(host, "localhost") == 0)
		strcpy(host, "127.0.0.1");
	struct sockaddr_in *sin = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
	if (h[-1] != '[' && inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)port);
		*len = (socklen_t)sizeof(*sin);
		return true;
	}
	if (h[-1] == '[' && inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)port);
		*len = (socklen_t)sizeof(*sin6);
		return true;
	}
	return false;
}
