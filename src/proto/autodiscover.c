/*
 * autodiscover.c - see autodiscover.h.  The request format is Microsoft's
 * "[MS-OXDSCLI] Autodiscover Publishing and Lookup Protocol" 2.2.4.1.
 */
#include "proto/autodiscover.h"

#include <string.h>

static const char *find(const char *p, const char *end, const char *lit)
{
	size_t n = strlen(lit);
	for (; p + n <= end; p++)
		if (memcmp(p, lit, n) == 0)
			return p;
	return NULL;
}

/* At a '<': is this the start tag of EMailAddress (any prefix)?  Sets
 * *content to just after its '>'. */
static bool is_email_tag(const char *p, const char *end, const char **content)
{
	static const char name[] = "EMailAddress";
	const char *q = p + 1, *colon = NULL, *gt;
	gt = memchr(q, '>', (size_t)(end - q));
	if (gt == NULL)
		return false;
	const char *nend = q;
	while (nend < gt && *nend != ' ' && *nend != '\t' && *nend != '\r' && *nend != '\n' && *nend != '/')
		nend++;
	for (const char *c = q; c < nend; c++)
		if (*c == ':')
			colon = c;
	const char *local = colon ? colon + 1 : q;
	if ((size_t)(nend - local) != sizeof(name) - 1 || memcmp(local, name, sizeof(name) - 1) != 0)
		return false;
	if (gt[-1] == '/')
		return false;                 /* <EMailAddress/>: empty */
	*content = gt + 1;
	return true;
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

/* Decode one reference at p ('&'); returns its length or 0 if unknown. */
static size_t entity(const char *p, const char *end, char *out)
{
	static const struct { const char *name; char c; } named[] = {
		{ "&amp;", '&' }, { "&lt;", '<' }, { "&gt;", '>' }, { "&quot;", '"' }, { "&apos;", '\'' },
	};
	for (size_t i = 0; i < sizeof(named) / sizeof(named[0]); i++) {
		size_t n = strlen(named[i].name);
		if ((size_t)(end - p) >= n && memcmp(p, named[i].name, n) == 0) {
			*out = named[i].c;
			return n;
		}
	}
	if (end - p < 4 || p[1] != '#')
		return 0;
	const char *q = p + 2;
	bool hex = *q == 'x';
	unsigned v = 0, digits = 0;
	if (hex)
		q++;
	for (; q < end && *q != ';'; q++, digits++) {
		int d = hex ? hexval(*q) : (*q >= '0' && *q <= '9' ? *q - '0' : -1);
		if (d < 0 || digits >= 6)
			return 0;
		v = v * (hex ? 16 : 10) + (unsigned)d;
	}
	if (q >= end || digits == 0 || v == 0 || v > 0x7e)
		return 0;
	*out = (char)v;
	return (size_t)(q - p) + 1;
}

bool autodiscover_email(const char *xml, size_t len, char *out, size_t cap)
{
	const char *p = xml, *end = xml + len, *content = NULL;
	size_t o = 0, at = 0;

	if (cap == 0)
		return false;
	while (p < end && (p = memchr(p, '<', (size_t)(end - p))) != NULL) {
		if ((size_t)(end - p) >= 4 && memcmp(p, "<!--", 4) == 0) {
			const char *c = find(p + 4, end, "-->");
			if (c == NULL)
				return false;
			p = c + 3;
			continue;
		}
		if (is_email_tag(p, end, &content))
			break;
		p++;
	}
	if (content == NULL)
		return false;
	p = content;
	while (p < end && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n'))
		p++;
	for (; p < end && *p != '<'; p++) {
		char c = *p;
		if (c == '&') {
			size_t n = entity(p, end, &c);
			if (n == 0)
				return false;
			p += n - 1;
		} else if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
			break;
		}
		if ((unsigned char)c <= 0x20 || (unsigned char)c >= 0x7f || c == '<')
			return false;
		if (c == '@')
			at++;
		if (o + 1 >= cap)
			return false;
		out[o++] = c;
	}
	/* Only trailing white space may follow, then the end tag. */
	while (p < end && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n'))
		p++;
	if (p >= end || *p != '<' || (size_t)(end - p) < 2 || p[1] != '/')
		return false;
	out[o] = '\0';
	return o > 0 && at == 1 && out[0] != '@' && out[o - 1] != '@';
}
