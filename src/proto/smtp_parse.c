/*
 * smtp_parse.c - pure parsers for SMTP command arguments.
 *
 * Implements the path grammar of RFC 5321 §4.1.2 (Dot-string and
 * Quoted-string local parts, domains and IPv4/IPv6 address literals, the
 * obsolete source route accepted and dropped per Appendix C), the limits
 * of §4.5.3.1.1-3, the command verb split of §4.1.1, the MAIL/RCPT
 * parameters SIZE (RFC 1870), BODY (RFC 6152), RET/ENVID/NOTIFY/ORCPT
 * (RFC 3461 §4) and AUTH (RFC 4954 §5), and xtext (RFC 3461 §4).
 *
 * BDAT arguments (RFC 3030 §2) and BODY=BINARYMIME (§3).
 *
 * SMTPUTF8 (RFC 6531 §3.3): local parts (dot-string atoms and quoted
 * strings) and domain labels may hold UTF8-non-ascii, which must be
 * well-formed UTF-8 (RFC 3629 §4: no overlong forms, no surrogates,
 * nothing past U+10FFFF); such a path is marked utf8 and the session
 * decides whether the transaction allows it.  Other 8-bit octets,
 * controls and NUL are syntax errors.
 */
#include "proto/smtp_parse.h"

#include "core/util.h"

#include <arpa/inet.h>
#include <string.h>

#define SMTP_LABEL_MAX 63	/* RFC 1035 §2.3.4 */

static bool is_alpha(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool is_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

static bool is_letdig(unsigned char c)
{
	return is_alpha(c) || is_digit(c);
}

/* RFC 5321 atext (from RFC 5322 §3.2.3). */
static bool is_atext(unsigned char c)
{
	return is_letdig(c) || (c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL);
}

static bool is_hex(unsigned char c)
{
	return is_digit(c) || (c >= 'A' && c <= 'F') || (c >= 'a' && c <= 'f');
}

static unsigned hex_val(unsigned char c)
{
	if (is_digit(c))
		return c - '0';
	return (unsigned)(c | 0x20) - 'a' + 10;
}

/* The length of the UTF8-non-ascii character at s (RFC 3629 §4 /
 * RFC 6532 §3.1: UTF8-2, UTF8-3, UTF8-4), 0 if s[0..n) does not start
 * with one. */
static size_t utf8_char_len(const unsigned char *s, size_t n)
{
	unsigned char c = s[0];
	unsigned char lo = 0x80, hi = 0xBF;
	size_t len;

	if (n == 0 || c < 0xC2 || c > 0xF4)
		return 0;
	if (c <= 0xDF) {
		len = 2;
	} else if (c <= 0xEF) {
		len = 3;
		if (c == 0xE0)
			lo = 0xA0;	/* overlong */
		else if (c == 0xED)
			hi = 0x9F;	/* surrogates */
	} else {
		len = 4;
		if (c == 0xF0)
			lo = 0x90;	/* overlong */
		else if (c == 0xF4)
			hi = 0x8F;	/* past U+10FFFF */
	}
	if (n < len || s[1] < lo || s[1] > hi)
		return 0;
	for (size_t i = 2; i < len; i++)
		if (s[i] < 0x80 || s[i] > 0xBF)
			return 0;
	return len;
}

bool smtp_utf8_valid(const char *s, size_t n, bool *non_ascii)
{
	const unsigned char *u = (const unsigned char *)s;
	bool high = false;
	for (size_t i = 0; i < n;) {
		if (u[i] < 0x80) {
			i++;
			continue;
		}
		size_t k = utf8_char_len(u + i, n - i);
		if (k == 0)
			return false;
		high = true;
		i += k;
	}
	if (non_ascii != NULL)
		*non_ascii = high;
	return true;
}

/* The octets of the character at s[i] when it is allowed in a dot-string
 * atom (atext, or with utf8 also UTF8-non-ascii), else 0. */
static size_t atext_at(const char *s, size_t len, size_t i, bool utf8)
{
	unsigned char c = (unsigned char)s[i];
	if (c < 0x80)
		return is_atext(c) ? 1 : 0;
	return utf8 ? utf8_char_len((const unsigned char *)s + i, len - i) : 0;
}

static bool tok_ieq(const char *p, size_t len, const char *word)
{
	return strlen(word) == len && ascii_ieq(p, word, len);
}

const char *smtp_parse_strerror(enum smtp_parse_err err)
{
	switch (err) {
	case SMTP_OK: return "ok";
	case SMTP_ERR_SYNTAX: return "syntax error";
	case SMTP_ERR_LOCAL_LEN: return "local part too long";
	case SMTP_ERR_DOMAIN_LEN: return "domain too long";
	case SMTP_ERR_PATH_LEN: return "path too long";
	case SMTP_ERR_PARAM_UNKNOWN: return "unknown parameter";
	case SMTP_ERR_PARAM_VALUE: return "bad parameter value";
	case SMTP_ERR_PARAM_DUP: return "duplicate parameter";
	}
	return "unknown error";
}

void smtp_split_command(const char *line, size_t len, struct smtp_token *verb,
			struct smtp_token *args)
{
	size_t i = 0;
	while (i < len && line[i] != ' ')
		i++;
	verb->p = line;
	verb->len = i;
	if (i < len)
		i++;	/* the single SP after the verb */
	args->p = line + i;
	args->len = len - i;
}

/* ---- BDAT (RFC 3030 §2) ---- */

bool smtp_parse_bdat(const char *args, size_t len, uint64_t *size, bool *last)
{
	size_t n = 0;

	*size = 0;
	*last = false;
	while (n < len && is_digit((unsigned char)args[n]))
		n++;
	if (n == 0 || !parse_u64(args, n, 0, SMTP_BDAT_MAX, size)) {
		*size = 0;
		return false;
	}
	if (n == len)
		return true;
	if (len - n == 5 && args[n] == ' ' && ascii_ieq(args + n + 1, "LAST", 4)) {
		*last = true;
		return true;
	}
	*size = 0;
	return false;
}

/* ---- cross-protocol requests ---- */

bool smtp_is_http_request(const char *line, size_t len)
{
	static const char *const methods[] = {
		"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
	};
	struct smtp_token verb, args;
	const char *sp;

	if (len >= 5 && ascii_ieq(line, "Host:", 5))
		return true;
	smtp_split_command(line, len, &verb, &args);
	size_t m = 0;
	while (m < ARRAY_LEN(methods) && !tok_ieq(verb.p, verb.len, methods[m]))
		m++;
	if (m == ARRAY_LEN(methods) || args.len == 0 || args.p[0] == ' ')
		return false;
	/* request-target SP HTTP-version: the version is the last word */
	sp = memchr(args.p, ' ', args.len);
	if (sp == NULL)
		return false;
	size_t vlen = args.len - (size_t)(sp + 1 - args.p);
	return vlen >= 5 && ascii_ieq(sp + 1, "HTTP/", 5);
}

/* ---- domains ---- */

/* Check sub-domain *("." sub-domain), sub-domain = Let-dig [Ldh-str], or
 * with utf8 also U-label (RFC 6531 §3.3; its characters are not checked
 * against IDNA, only for being well-formed UTF-8).  The 63-octet limit is
 * for ASCII labels: a U-label's limit is on its A-label form. */
static bool domain_name_valid(const char *s, size_t n, bool utf8)
{
	size_t label = 0;
	bool ulabel = false;
	for (size_t i = 0; i <= n;) {
		if (i == n || s[i] == '.') {
			if (label == 0 || (label > SMTP_LABEL_MAX && !ulabel))
				return false;
			if (s[i - 1] == '-')
				return false;
			label = 0;
			ulabel = false;
			i++;
			continue;
		}
		unsigned char c = (unsigned char)s[i];
		size_t k = 1;
		if (c >= 0x80) {
			k = utf8 ? utf8_char_len((const unsigned char *)s + i, n - i) : 0;
			if (k == 0)
				return false;
			ulabel = true;
		} else if (label == 0 ? !is_letdig(c) : !is_letdig(c) && c != '-') {
			return false;
		}
		label += k;
		i += k;
	}
	return true;
}

/* Scan a domain name at s[*pos]; copy it to out (SMTP_DOMAIN_MAX + 1). */
static enum smtp_parse_err parse_domain_name(const char *s, size_t len, size_t *pos, char *out,
					     bool utf8)
{
	size_t start = *pos, i = *pos;
	while (i < len && (is_letdig((unsigned char)s[i]) || s[i] == '-' || s[i] == '.' ||
			   (utf8 && (unsigned char)s[i] >= 0x80)))
		i++;
	size_t n = i - start;
	if (n == 0 || !domain_name_valid(s + start, n, utf8))
		return SMTP_ERR_SYNTAX;
	if (n > SMTP_DOMAIN_MAX)
		return SMTP_ERR_DOMAIN_LEN;
	memcpy(out, s + start, n);
	out[n] = '\0';
	*pos = i;
	return SMTP_OK;
}

/* IPv4-address-literal: Snum 3("." Snum), Snum = 1*3DIGIT in 0..255. */
static bool ipv4_literal_valid(const char *s, size_t n)
{
	unsigned parts = 0, digits = 0, val = 0;
	for (size_t i = 0; i <= n; i++) {
		if (i == n || s[i] == '.') {
			if (digits == 0 || val > 255)
				return false;
			parts++;
			digits = val = 0;
			continue;
		}
		if (!is_digit((unsigned char)s[i]) || ++digits > 3)
			return false;
		val = val * 10 + (unsigned)(s[i] - '0');
	}
	return parts == 4;
}

static bool ipv6_literal_valid(const char *s, size_t n)
{
	char buf[INET6_ADDRSTRLEN];
	unsigned char addr[16];
	if (n == 0 || n >= sizeof(buf))
		return false;
	memcpy(buf, s, n);
	buf[n] = '\0';
	return inet_pton(AF_INET6, buf, addr) == 1;
}

/* address-literal = "[" ( IPv4 / "IPv6:" IPv6 ) "]"; a General-address-
 * literal is refused.  Copies the literal with its brackets to out. */
static enum smtp_parse_err parse_literal(const char *s, size_t len, size_t *pos, char *out)
{
	size_t start = *pos, i = *pos + 1;
	for (; i < len && s[i] != ']'; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c < 33 || c > 126 || c == '[' || c == '\\')	/* dcontent */
			return SMTP_ERR_SYNTAX;
	}
	if (i >= len)
		return SMTP_ERR_SYNTAX;
	const char *in = s + start + 1;
	size_t n = i - start - 1;
	bool ok;
	if (n > 5 && ascii_ieq(in, "IPv6:", 5))
		ok = ipv6_literal_valid(in + 5, n - 5);
	else
		ok = ipv4_literal_valid(in, n);
	if (!ok)
		return SMTP_ERR_SYNTAX;
	n += 2;	/* short enough by construction: at most 5 + 45 + 2 */
	memcpy(out, s + start, n);
	out[n] = '\0';
	*pos = i + 1;
	return SMTP_OK;
}

static enum smtp_parse_err parse_domain(const char *s, size_t len, size_t *pos, char *out,
					bool *literal, bool utf8)
{
	*literal = *pos < len && s[*pos] == '[';
	if (*literal)
		return parse_literal(s, len, pos, out);
	return parse_domain_name(s, len, pos, out, utf8);
}

/* ---- local part ---- */

/* Quoted-string: DQUOTE *(qtextSMTP / quoted-pairSMTP) DQUOTE.  The text
 * is decoded into local while it fits; the length limit applies to the
 * octets as written, which are never fewer than the decoded ones. */
static enum smtp_parse_err parse_quoted_local(const char *s, size_t len, size_t *pos, char *local)
{
	size_t start = *pos, i = *pos + 1, n = 0;
	for (;;) {
		if (i >= len)
			return SMTP_ERR_SYNTAX;
		unsigned char c = (unsigned char)s[i++];
		if (c == '"')
			break;
		if (c >= 0x80) {
			/* qtextSMTP =/ UTF8-non-ascii (RFC 6531 §3.3) */
			size_t k = utf8_char_len((const unsigned char *)s + i - 1, len - i + 1);
			if (k == 0)
				return SMTP_ERR_SYNTAX;
			for (size_t j = 0; j < k; j++, n++)
				if (n < SMTP_LOCAL_MAX)
					local[n] = s[i - 1 + j];
			i += k - 1;
			continue;
		}
		if (c == '\\') {
			if (i >= len)
				return SMTP_ERR_SYNTAX;
			c = (unsigned char)s[i++];
		}
		if (c < 32 || c > 126)
			return SMTP_ERR_SYNTAX;
		if (n < SMTP_LOCAL_MAX)
			local[n] = (char)c;
		n++;
	}
	if (i - start > SMTP_LOCAL_MAX)
		return SMTP_ERR_LOCAL_LEN;
	local[n] = '\0';
	*pos = i;
	return SMTP_OK;
}

/* Atoms of atext (with utf8: or UTF8-non-ascii) joined by single dots. */
static bool dot_string_ok(const char *s, size_t n, bool utf8)
{
	if (n == 0 || s[0] == '.' || s[n - 1] == '.')
		return false;
	for (size_t i = 0; i < n;) {
		size_t k = 1;
		if (s[i] == '.' ? s[i + 1] == '.' : (k = atext_at(s, n, i, utf8)) == 0)
			return false;
		i += k;
	}
	return true;
}

bool smtp_dot_string_valid(const char *s, size_t n)
{
	return dot_string_ok(s, n, false);
}

static enum smtp_parse_err parse_local(const char *s, size_t len, size_t *pos,
				       struct smtp_path *path)
{
	if (*pos < len && s[*pos] == '"') {
		path->quoted_local = true;
		return parse_quoted_local(s, len, pos, path->local);
	}
	size_t start = *pos, i = *pos, k = 0;
	while (i < len && (s[i] == '.' || (k = atext_at(s, len, i, true)) > 0))
		i += s[i] == '.' ? 1 : k;
	size_t n = i - start;
	if (!dot_string_ok(s + start, n, true))
		return SMTP_ERR_SYNTAX;
	if (n > SMTP_LOCAL_MAX)
		return SMTP_ERR_LOCAL_LEN;
	memcpy(path->local, s + start, n);
	path->local[n] = '\0';
	*pos = i;
	return SMTP_OK;
}

/* ---- paths ---- */

/* A-d-l = At-domain *( "," At-domain ) ":" — parsed and thrown away. */
static enum smtp_parse_err parse_source_route(const char *s, size_t len, size_t *pos)
{
	char scratch[SMTP_DOMAIN_MAX + 1];
	for (;;) {
		if (*pos >= len || s[*pos] != '@')
			return SMTP_ERR_SYNTAX;
		(*pos)++;
		enum smtp_parse_err err = parse_domain_name(s, len, pos, scratch, false);
		if (err != SMTP_OK)
			return err;
		if (*pos >= len)
			return SMTP_ERR_SYNTAX;
		char c = s[(*pos)++];
		if (c == ':')
			return SMTP_OK;
		if (c != ',')
			return SMTP_ERR_SYNTAX;
	}
}

static enum smtp_parse_err parse_mailbox_path(const char *s, size_t len, size_t *pos,
					      struct smtp_path *path)
{
	enum smtp_parse_err err;
	if (*pos < len && s[*pos] == '@') {
		path->had_source_route = true;
		if ((err = parse_source_route(s, len, pos)) != SMTP_OK)
			return err;
	}
	if ((err = parse_local(s, len, pos, path)) != SMTP_OK)
		return err;
	if (*pos >= len || s[*pos] != '@')
		return SMTP_ERR_SYNTAX;
	(*pos)++;
	if ((err = parse_domain(s, len, pos, path->domain, &path->domain_literal, true)) != SMTP_OK)
		return err;
	smtp_utf8_valid(path->local, strlen(path->local), &path->utf8);
	if (!path->utf8)
		smtp_utf8_valid(path->domain, strlen(path->domain), &path->utf8);
	if (*pos >= len || s[*pos] != '>')
		return SMTP_ERR_SYNTAX;
	(*pos)++;
	return SMTP_OK;
}

enum smtp_parse_err smtp_parse_path(const char *s, size_t len, bool allow_null,
				    struct smtp_path *path, size_t *consumed)
{
	size_t pos = 1;
	memset(path, 0, sizeof(*path));
	*consumed = 0;
	if (len < 2 || s[0] != '<')
		return SMTP_ERR_SYNTAX;
	if (s[1] == '>') {
		if (!allow_null)
			return SMTP_ERR_SYNTAX;
		path->null = true;
		*consumed = 2;
		return SMTP_OK;
	}
	enum smtp_parse_err err = parse_mailbox_path(s, len, &pos, path);
	if (err == SMTP_OK && pos > SMTP_PATH_MAX)
		err = SMTP_ERR_PATH_LEN;
	if (err != SMTP_OK) {
		memset(path, 0, sizeof(*path));
		return err;
	}
	*consumed = pos;
	return SMTP_OK;
}

static bool local_needs_quotes(const char *local)
{
	return !dot_string_ok(local, strlen(local), true);
}

size_t smtp_path_format(const struct smtp_path *path, char *buf, size_t cap)
{
	if (cap == 0)
		return 0;
	buf[0] = '\0';
	if (path->null)
		return 0;
	bool quote = local_needs_quotes(path->local);
	size_t dlen = strlen(path->domain);
	size_t need = (quote ? 2 : 0) + (dlen > 0 ? dlen + 1 : 0);
	for (const char *p = path->local; *p != '\0'; p++)
		need += (quote && (*p == '"' || *p == '\\')) ? 2 : 1;
	if (need + 1 > cap)
		return 0;
	size_t n = 0;
	if (quote)
		buf[n++] = '"';
	for (const char *p = path->local; *p != '\0'; p++) {
		if (quote && (*p == '"' || *p == '\\'))
			buf[n++] = '\\';
		buf[n++] = *p;
	}
	if (quote)
		buf[n++] = '"';
	if (dlen > 0) {
		buf[n++] = '@';
		memcpy(buf + n, path->domain, dlen);
		n += dlen;
	}
	buf[n] = '\0';
	return n;
}

bool smtp_helo_valid(const char *s, size_t len)
{
	char out[SMTP_DOMAIN_MAX + 1];
	bool literal;
	size_t pos = 0;
	if (parse_domain(s, len, &pos, out, &literal, false) != SMTP_OK)
		return false;
	return pos == len;
}

/* ---- xtext ---- */

static bool is_xchar(unsigned char c)
{
	return c >= 33 && c <= 126 && c != '+' && c != '=';
}

bool smtp_xtext_decode(const char *in, size_t len, char *out, size_t cap, size_t *out_len)
{
	size_t n = 0;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)in[i];
		if (c == '+') {
			if (len - i < 3 || !is_hex((unsigned char)in[i + 1]) ||
			    !is_hex((unsigned char)in[i + 2]))
				return false;
			c = (unsigned char)(hex_val((unsigned char)in[i + 1]) * 16 +
					    hex_val((unsigned char)in[i + 2]));
			i += 2;
		} else if (!is_xchar(c)) {
			return false;
		}
		if (n + 1 >= cap)
			return false;
		out[n++] = (char)c;
	}
	if (cap == 0)
		return false;
	out[n] = '\0';
	if (out_len != NULL)
		*out_len = n;
	return true;
}

size_t smtp_xtext_encode(const char *in, size_t len, char *out, size_t cap)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t n = 0;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)in[i];
		size_t need = is_xchar(c) ? 1 : 3;
		if (n + need + 1 > cap) {
			if (cap > 0)
				out[0] = '\0';
			return 0;
		}
		if (need == 1) {
			out[n++] = (char)c;
		} else {
			out[n++] = '+';
			out[n++] = hex[c >> 4];
			out[n++] = hex[c & 15];
		}
	}
	if (cap == 0)
		return 0;
	out[n] = '\0';
	return n;
}

/* ---- ESMTP parameters ---- */

/* Decode an xtext value into a C string of printable ASCII (SP allowed). */
static enum smtp_parse_err param_xtext(const char *v, size_t vlen, char *out, size_t cap)
{
	size_t n;
	if (vlen == 0 || !smtp_xtext_decode(v, vlen, out, cap, &n))
		return SMTP_ERR_PARAM_VALUE;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)out[i];
		if (c < 32 || c > 126) {
			out[0] = '\0';
			return SMTP_ERR_PARAM_VALUE;
		}
	}
	return SMTP_OK;
}

static enum smtp_parse_err mail_size(const char *v, size_t vlen, void *arg)
{
	struct smtp_mail_params *p = arg;
	if (!parse_u64(v, vlen, 0, UINT64_MAX, &p->size))
		return SMTP_ERR_PARAM_VALUE;
	p->has_size = true;
	return SMTP_OK;
}

static enum smtp_parse_err mail_body(const char *v, size_t vlen, void *arg)
{
	struct smtp_mail_params *p = arg;
	if (tok_ieq(v, vlen, "7BIT"))
		p->body = SMTP_BODY_7BIT;
	else if (tok_ieq(v, vlen, "8BITMIME"))
		p->body = SMTP_BODY_8BITMIME;
	else if (tok_ieq(v, vlen, "BINARYMIME"))
		p->body = SMTP_BODY_BINARYMIME;	/* RFC 3030 §3 */
	else
		return SMTP_ERR_PARAM_VALUE;
	return SMTP_OK;
}

static enum smtp_parse_err mail_ret(const char *v, size_t vlen, void *arg)
{
	struct smtp_mail_params *p = arg;
	if (tok_ieq(v, vlen, "FULL"))
		p->ret = SMTP_RET_FULL;
	else if (tok_ieq(v, vlen, "HDRS"))
		p->ret = SMTP_RET_HDRS;
	else
		return SMTP_ERR_PARAM_VALUE;
	return SMTP_OK;
}

static enum smtp_parse_err mail_envid(const char *v, size_t vlen, void *arg)
{
	struct smtp_mail_params *p = arg;
	return param_xtext(v, vlen, p->envid, sizeof(p->envid));
}

static enum smtp_parse_err mail_auth(const char *v, size_t vlen, void *arg)
{
	struct smtp_mail_params *p = arg;
	enum smtp_parse_err err = param_xtext(v, vlen, p->auth, sizeof(p->auth));
	p->has_auth = err == SMTP_OK;
	return err;
}

/* NOTIFY = "NEVER" / 1#( "SUCCESS" / "FAILURE" / "DELAY" ) */
static enum smtp_parse_err rcpt_notify(const char *v, size_t vlen, void *arg)
{
	static const struct { const char *name; unsigned bit; } words[] = {
		{ "NEVER", SMTP_NOTIFY_NEVER }, { "SUCCESS", SMTP_NOTIFY_SUCCESS },
		{ "FAILURE", SMTP_NOTIFY_FAILURE }, { "DELAY", SMTP_NOTIFY_DELAY },
	};
	struct smtp_rcpt_params *p = arg;
	size_t start = 0;
	unsigned bits = 0;
	for (size_t i = 0; i <= vlen; i++) {
		if (i < vlen && v[i] != ',')
			continue;
		unsigned bit = 0;
		for (size_t w = 0; w < ARRAY_LEN(words); w++)
			if (tok_ieq(v + start, i - start, words[w].name))
				bit = words[w].bit;
		if (bit == 0)
			return SMTP_ERR_PARAM_VALUE;
		bits |= bit;
		start = i + 1;
	}
	if ((bits & SMTP_NOTIFY_NEVER) && bits != SMTP_NOTIFY_NEVER)
		return SMTP_ERR_PARAM_VALUE;
	p->notify = bits;
	return SMTP_OK;
}

/* ORCPT = addr-type ";" xtext; addr-type is an atom. */
static enum smtp_parse_err rcpt_orcpt(const char *v, size_t vlen, void *arg)
{
	struct smtp_rcpt_params *p = arg;
	const char *semi = memchr(v, ';', vlen);
	if (semi == NULL)
		return SMTP_ERR_PARAM_VALUE;
	size_t tlen = (size_t)(semi - v);
	if (tlen == 0 || tlen >= sizeof(p->orcpt_type))
		return SMTP_ERR_PARAM_VALUE;
	for (size_t i = 0; i < tlen; i++)
		if (!is_atext((unsigned char)v[i]))
			return SMTP_ERR_PARAM_VALUE;
	enum smtp_parse_err err = param_xtext(semi + 1, vlen - tlen - 1, p->orcpt_addr,
					      sizeof(p->orcpt_addr));
	if (err != SMTP_OK)
		return err;
	memcpy(p->orcpt_type, v, tlen);
	p->orcpt_type[tlen] = '\0';
	return SMTP_OK;
}

/* SMTPUTF8 (RFC 6531 §3.4) takes no value. */
static enum smtp_parse_err mail_smtputf8(const char *v, size_t vlen, void *arg)
{
	struct smtp_mail_params *p = arg;
	(void)v;
	(void)vlen;
	p->smtputf8 = true;
	return SMTP_OK;
}

struct param_rule {
	const char *keyword;
	enum smtp_parse_err (*apply)(const char *v, size_t vlen, void *params);
	bool no_value;		/* a bare keyword; a value is an error */
};

static const struct param_rule mail_rules[] = {
	{ "SIZE", mail_size, false },
	{ "BODY", mail_body, false },
	{ "RET", mail_ret, false },
	{ "ENVID", mail_envid, false },
	{ "AUTH", mail_auth, false },
	{ "SMTPUTF8", mail_smtputf8, true },
};

static const struct param_rule rcpt_rules[] = {
	{ "NOTIFY", rcpt_notify, false },
	{ "ORCPT", rcpt_orcpt, false },
};

/* One "keyword[=value]" at s[*pos]; esmtp-keyword and esmtp-value per
 * RFC 5321 §4.1.2. */
static enum smtp_parse_err next_param(const char *s, size_t len, size_t *pos,
				      struct smtp_token *key, struct smtp_token *val, bool *has_val)
{
	size_t i = *pos;
	if (i >= len || !is_letdig((unsigned char)s[i]))
		return SMTP_ERR_SYNTAX;
	while (i < len && (is_letdig((unsigned char)s[i]) || s[i] == '-'))
		i++;
	key->p = s + *pos;
	key->len = i - *pos;
	*has_val = i < len && s[i] == '=';
	if (*has_val) {
		size_t vstart = ++i;
		for (; i < len && s[i] != ' '; i++) {
			unsigned char c = (unsigned char)s[i];
			if (c < 33 || c > 126 || c == '=')
				return SMTP_ERR_SYNTAX;
		}
		val->p = s + vstart;
		val->len = i - vstart;
		if (val->len == 0)
			return SMTP_ERR_SYNTAX;
	}
	if (i < len && s[i] != ' ')
		return SMTP_ERR_SYNTAX;
	*pos = i;
	return SMTP_OK;
}

/* The parameters after a path: *( 1*SP esmtp-param ) with trailing SP
 * tolerated.  Every known keyword takes a value but the no_value ones. */
static enum smtp_parse_err parse_params(const char *s, size_t len, const struct param_rule *rules,
					size_t nrules, void *params)
{
	unsigned seen = 0;
	size_t pos = 0;
	if (len > 0 && s[0] != ' ')
		return SMTP_ERR_SYNTAX;
	for (;;) {
		while (pos < len && s[pos] == ' ')
			pos++;
		if (pos == len)
			return SMTP_OK;
		struct smtp_token key, val = { NULL, 0 };
		bool has_val;
		enum smtp_parse_err err = next_param(s, len, &pos, &key, &val, &has_val);
		if (err != SMTP_OK)
			return err;
		size_t r = 0;
		while (r < nrules && !tok_ieq(key.p, key.len, rules[r].keyword))
			r++;
		if (r == nrules)
			return SMTP_ERR_PARAM_UNKNOWN;
		if (seen & (1u << r))
			return SMTP_ERR_PARAM_DUP;
		seen |= 1u << r;
		if (has_val == rules[r].no_value)
			return SMTP_ERR_PARAM_VALUE;
		if ((err = rules[r].apply(val.p, val.len, params)) != SMTP_OK)
			return err;
	}
}

/* "FROM:" / "TO:" followed by optional SP; returns the offset of the path. */
static bool skip_prefix(const char *args, size_t len, const char *prefix, size_t *pos)
{
	size_t n = strlen(prefix);
	if (len < n || !ascii_ieq(args, prefix, n))
		return false;
	while (n < len && args[n] == ' ')
		n++;
	*pos = n;
	return true;
}

enum smtp_parse_err smtp_parse_mail(const char *args, size_t len, struct smtp_path *path,
				    struct smtp_mail_params *p)
{
	size_t pos, used;
	memset(path, 0, sizeof(*path));
	memset(p, 0, sizeof(*p));
	if (!skip_prefix(args, len, "FROM:", &pos))
		return SMTP_ERR_SYNTAX;
	enum smtp_parse_err err = smtp_parse_path(args + pos, len - pos, true, path, &used);
	if (err != SMTP_OK)
		return err;
	pos += used;
	err = parse_params(args + pos, len - pos, mail_rules, ARRAY_LEN(mail_rules), p);
	if (err != SMTP_OK) {
		memset(p, 0, sizeof(*p));
		return err;
	}
	return SMTP_OK;
}

/* "<Postmaster>" without a domain (RFC 5321 §4.1.1.3), any case. */
static bool parse_postmaster(const char *s, size_t len, struct smtp_path *path, size_t *used)
{
	static const char pm[] = "<postmaster>";
	size_t n = sizeof(pm) - 1;
	if (len < n || !ascii_ieq(s, pm, n))
		return false;
	memset(path, 0, sizeof(*path));
	memcpy(path->local, s + 1, n - 2);
	path->local[n - 2] = '\0';
	*used = n;
	return true;
}

enum smtp_parse_err smtp_parse_rcpt(const char *args, size_t len, struct smtp_path *path,
				    struct smtp_rcpt_params *p)
{
	size_t pos, used;
	memset(path, 0, sizeof(*path));
	memset(p, 0, sizeof(*p));
	if (!skip_prefix(args, len, "TO:", &pos))
		return SMTP_ERR_SYNTAX;
	if (!parse_postmaster(args + pos, len - pos, path, &used)) {
		enum smtp_parse_err err = smtp_parse_path(args + pos, len - pos, false, path, &used);
		if (err != SMTP_OK)
			return err;
	}
	pos += used;
	enum smtp_parse_err err = parse_params(args + pos, len - pos, rcpt_rules,
					       ARRAY_LEN(rcpt_rules), p);
	if (err != SMTP_OK) {
		memset(p, 0, sizeof(*p));
		return err;
	}
	return SMTP_OK;
}
