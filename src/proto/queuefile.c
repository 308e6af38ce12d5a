/*
 * queuefile.c - parse the queue's message envelope, trailer and state
 * file (format in queuefile.h).  Everything is read with explicit
 * lengths: a NUL, a missing line end or a number out of range is an
 * error, never a silently shortened field.
 */
#include "proto/queuefile.h"

#include <stdlib.h>
#include <string.h>

#include "core/util.h"

#define QF_TOKENS_MAX 8

struct qf_tok {
	const char *p;
	size_t n;
};

static bool qf_tok_is(const struct qf_tok *t, const char *word)
{
	size_t n = strlen(word);
	return t->n == n && memcmp(t->p, word, n) == 0;
}

static bool qf_tok_u64(const struct qf_tok *t, uint64_t max, uint64_t *out)
{
	return parse_u64(t->p, t->n, 0, max, out);
}

/* Split [p, p+len) at runs of spaces.  Returns the number of tokens, or
 * QF_TOKENS_MAX + 1 when there are more than fit (no line has that many). */
static size_t qf_split(const char *p, size_t len, struct qf_tok *tok)
{
	const char *end = p + len;
	size_t n = 0;

	while (p < end) {
		while (p < end && *p == ' ')
			p++;
		if (p == end)
			break;
		const char *s = p;
		while (p < end && *p != ' ')
			p++;
		if (n == QF_TOKENS_MAX)
			return QF_TOKENS_MAX + 1;
		tok[n++] = (struct qf_tok){ s, (size_t)(p - s) };
	}
	return n;
}

static int qf_hex(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* A value token: "-" is none (*out = NULL), "=text" with %XX escapes.
 * False for anything else: a broken escape, a byte the writer would have
 * escaped, or %00 (a value is a C string; a NUL inside it would cut it
 * short without a trace). */
static bool qf_value(const struct qf_tok *t, char **out)
{
	*out = NULL;
	if (t->n == 1 && t->p[0] == '-')
		return true;
	if (t->n == 0 || t->p[0] != '=')
		return false;
	char *v = xmalloc(t->n), *o = v;
	for (size_t i = 1; i < t->n; i++) {
		unsigned char c = (unsigned char)t->p[i];
		if (c != '%') {
			if (c <= 0x20 || c >= 0x7f) {
				free(v);
				return false;
			}
			*o++ = (char)c;
			continue;
		}
		int a = i + 2 < t->n ? qf_hex((unsigned char)t->p[i + 1]) : -1;
		int b = a < 0 ? -1 : qf_hex((unsigned char)t->p[i + 2]);
		if (b < 0 || (a | b) == 0) {
			free(v);
			return false;
		}
		*o++ = (char)(a * 16 + b);
		i += 2;
	}
	*o = '\0';
	*out = v;
	return true;
}

/* Decode a value into *field, replacing what a repeated line set before. */
static bool qf_set(char **field, const struct qf_tok *t)
{
	char *v;
	if (!qf_value(t, &v))
		return false;
	free(*field);
	*field = v;
	return true;
}

static bool qf_rcpt_line(struct queue_env *env, const struct qf_tok *tok)
{
	char *addr, *orig, *orcpt;
	uint64_t notify;
	bool local = qf_tok_is(&tok[1], "L");

	if (!local && !qf_tok_is(&tok[1], "R"))
		return false;
	if (!qf_tok_u64(&tok[2], 15, &notify))
		return false;
	if (!qf_value(&tok[3], &addr) || addr == NULL)
		return false;
	if (!qf_value(&tok[4], &orig)) {
		free(addr);
		return false;
	}
	if (!qf_value(&tok[5], &orcpt)) {
		free(addr);
		free(orig);
		return false;
	}
	struct queue_rcpt *r = queue_env_add_rcpt(env, addr, orig);
	r->local = local;
	r->notify = (unsigned)notify;
	r->orcpt = orcpt;
	free(addr);
	free(orig);
	return true;
}

static bool qf_env_line(struct queue_env *env, const char *line, size_t len)
{
	struct qf_tok tok[QF_TOKENS_MAX];
	size_t n = qf_split(line, len, tok);
	uint64_t v;

	if (memchr(line, '\0', len) != NULL || n == 0)
		return false;
	if (n == 6 && qf_tok_is(&tok[0], "rcpt"))
		return qf_rcpt_line(env, tok);
	if (n != 2)
		return false;
	if (qf_tok_is(&tok[0], "TERN-QUEUE") || qf_tok_is(&tok[0], "id"))
		return true;
	if (qf_tok_is(&tok[0], "arrival") && qf_tok_u64(&tok[1], INT64_MAX, &v)) {
		env->arrival = (int64_t)v;
		return true;
	}
	if (qf_tok_is(&tok[0], "body") && qf_tok_u64(&tok[1], 3, &v)) {
		env->body = (unsigned)v;
		return true;
	}
	if (qf_tok_is(&tok[0], "smtputf8") && qf_tok_u64(&tok[1], 1, &v)) {
		env->smtputf8 = v != 0;
		return true;
	}
	if (qf_tok_is(&tok[0], "ret") && qf_tok_u64(&tok[1], 2, &v)) {
		env->ret = (unsigned)v;
		return true;
	}
	if (qf_tok_is(&tok[0], "from")) {
		if (!qf_set(&env->from, &tok[1]))
			return false;
		if (env->from == NULL)
			env->from = xstrdup("");
		return true;
	}
	if (qf_tok_is(&tok[0], "helo"))
		return qf_set(&env->helo, &tok[1]);
	if (qf_tok_is(&tok[0], "ip"))
		return qf_set(&env->client_ip, &tok[1]);
	if (qf_tok_is(&tok[0], "auth"))
		return qf_set(&env->auth_user, &tok[1]);
	if (qf_tok_is(&tok[0], "envid"))
		return qf_set(&env->envid, &tok[1]);
	return false;
}

enum queuefile_err queuefile_parse_envelope(const char *buf, size_t len, struct queue_env *env)
{
	const char *p = buf, *end = buf + len;

	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		if (nl == NULL)
			return QUEUEFILE_NO_END;
		if (nl == p) {
			/* The blank line ends the envelope; only padding (line
			 * ends) may follow it: the trailer's offset says where
			 * the message begins. */
			for (const char *q = nl + 1; q < end; q++)
				if (*q != '\n')
					return QUEUEFILE_NO_END;
			return env->from != NULL ? QUEUEFILE_OK : QUEUEFILE_NO_FROM;
		}
		if (!qf_env_line(env, p, (size_t)(nl - p)))
			return QUEUEFILE_BAD_LINE;
		p = nl + 1;
	}
	return QUEUEFILE_NO_END;
}

/* Parse "name=DIGITS" at *p (up to end), moving *p past it. */
static bool qf_field(const char **p, const char *end, const char *name, uint64_t max, uint64_t *out)
{
	size_t nl = strlen(name), d = 0;
	const char *s = *p;

	if ((size_t)(end - s) < nl || memcmp(s, name, nl) != 0)
		return false;
	s += nl;
	while (s + d < end && s[d] >= '0' && s[d] <= '9')
		d++;
	if (!parse_u64(s, d, 0, max, out))
		return false;
	*p = s + d;
	return true;
}

enum queuefile_err queuefile_parse_trailer(const char *tail, size_t n, uint64_t size,
					   struct queue_env *env)
{
	static const char mark[] = "TERN-END ";
	const size_t ml = sizeof(mark) - 1;
	const char *t = NULL, *end = tail + n, *p;
	uint64_t off, len, lines, eight, pos, flag, sig8 = 0, sig7 = 0;
	bool junk, signed_;

	if (n > size)
		return QUEUEFILE_BAD_TRAILER;
	/* The last marker: message bytes may contain the text too, but the
	 * trailer comes after all of them.  The message need not end with a
	 * line end, nor be free of NULs (BDAT, BINARYMIME): the trailer is
	 * found by where it is, not by what precedes it. */
	for (size_t i = n >= ml ? n - ml + 1 : 0; i-- > 0;)
		if (memcmp(tail + i, mark, ml) == 0) {
			t = tail + i;
			break;
		}
	if (t == NULL)
		return QUEUEFILE_NO_TRAILER;
	p = t + ml;
	if (!qf_field(&p, end, "off=", UINT64_MAX, &off) ||
	    !qf_field(&p, end, " len=", UINT64_MAX, &len) ||
	    !qf_field(&p, end, " lines=", UINT64_MAX, &lines) ||
	    !qf_field(&p, end, " 8bit=", 1, &eight))
		return QUEUEFILE_BAD_TRAILER;
	/* flags known only at the end of the message, written only when set */
	junk = qf_field(&p, end, " junk=", 1, &flag) && flag == 1;
	signed_ = qf_field(&p, end, " signed=", 1, &flag) && flag == 1;
	/* the 7-bit form's signatures: both lengths, or neither */
	if (signed_ && qf_field(&p, end, " sig8=", UINT64_MAX, &sig8) &&
	    (!qf_field(&p, end, " sig7=", UINT64_MAX, &sig7) || sig8 == 0 || sig7 == 0 || sig8 > len))
		return QUEUEFILE_BAD_TRAILER;
	if (end - p != 1 || *p != '\n')
		return QUEUEFILE_BAD_TRAILER;
	/* where the trailer starts in the file: the message (and the 7-bit
	 * form's signatures) must end there */
	pos = size - (uint64_t)(end - t);
	if (off > pos || sig7 > pos - off || len != pos - off - sig7)
		return QUEUEFILE_BAD_TRAILER;
	env->msg_offset = off;
	env->msg_len = len;
	env->msg_lines = lines;
	env->eight_bit = eight != 0;
	env->junk = junk;
	env->dkim_signed = signed_;
	env->dkim8_len = sig8;
	env->dkim7_len = sig7;
	return QUEUEFILE_OK;
}

static bool qf_flag(const struct qf_tok *t, bool *out)
{
	if (!qf_tok_is(t, "0") && !qf_tok_is(t, "1"))
		return false;
	*out = t->p[0] == '1';
	return true;
}

static bool qf_state_rcpt(struct queue_env *env, const struct qf_tok *tok)
{
	uint64_t idx, st, att, next;
	char *mta, *status, *reply;

	if (!qf_tok_u64(&tok[1], UINT64_MAX, &idx) || idx >= env->nrcpt ||
	    !qf_tok_u64(&tok[2], RCPT_FAILED, &st) ||
	    !qf_tok_u64(&tok[3], UINT32_MAX, &att) ||
	    !qf_tok_u64(&tok[4], INT64_MAX, &next))
		return false;
	if (!qf_value(&tok[5], &mta))
		return false;
	if (!qf_value(&tok[6], &status)) {
		free(mta);
		return false;
	}
	if (!qf_value(&tok[7], &reply)) {
		free(mta);
		free(status);
		return false;
	}
	struct queue_rcpt *r = &env->rcpt[idx];
	r->state = (enum rcpt_state)st;
	r->attempts = (unsigned)att;
	r->next_try = (int64_t)next;
	free(r->remote_mta);
	free(r->status);
	free(r->last_reply);
	r->remote_mta = mta;
	r->status = status;
	r->last_reply = reply;
	return true;
}

static bool qf_state_line(struct queue_env *env, const char *line, size_t len)
{
	struct qf_tok tok[QF_TOKENS_MAX];
	size_t n = qf_split(line, len, tok);
	uint64_t idx;

	if (memchr(line, '\0', len) != NULL)
		return false;
	if (n == 2 && qf_tok_is(&tok[0], "held"))
		return qf_flag(&tok[1], &env->held);
	if (n == 2 && qf_tok_is(&tok[0], "warned"))
		return qf_flag(&tok[1], &env->delay_warned);
	if (n == 2 && qf_tok_is(&tok[0], "dsn")) {
		if (!qf_tok_u64(&tok[1], UINT64_MAX, &idx) || idx >= env->nrcpt)
			return false;
		env->rcpt[idx].dsn_done = true;
		return true;
	}
	if (n == 8 && qf_tok_is(&tok[0], "rcpt"))
		return qf_state_rcpt(env, tok);
	return false;
}

size_t queuefile_parse_state(const char *buf, size_t len, struct queue_env *env)
{
	const char *p = buf, *end = buf + len;
	size_t skipped = 0;

	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *e = nl ? nl : end;
		if (!qf_state_line(env, p, (size_t)(e - p)))
			skipped++;
		p = e + 1;
	}
	return skipped;
}

const char *queuefile_err_name(enum queuefile_err e)
{
	static const char *const names[] = {
		[QUEUEFILE_OK] = "ok",
		[QUEUEFILE_NO_TRAILER] = "no_trailer",
		[QUEUEFILE_BAD_TRAILER] = "bad_trailer",
		[QUEUEFILE_BAD_LINE] = "bad_line",
		[QUEUEFILE_NO_END] = "no_end",
		[QUEUEFILE_NO_FROM] = "no_from",
	};
	return (size_t)e < ARRAY_LEN(names) ? names[e] : "?";
}

struct queue_rcpt *queue_env_add_rcpt(struct queue_env *env, const char *addr, const char *orig)
{
	struct queue_rcpt *r;
	env->rcpt = xrealloc(env->rcpt, (env->nrcpt + 1) * sizeof(*env->rcpt));
	r = &env->rcpt[env->nrcpt++];
	memset(r, 0, sizeof(*r));
	r->addr = xstrdup(addr);
	r->orig = orig ? xstrdup(orig) : NULL;
	return r;
}

void queue_env_free(struct queue_env *env)
{
	if (env == NULL)
		return;
	for (size_t i = 0; i < env->nrcpt; i++) {
		struct queue_rcpt *r = &env->rcpt[i];
		free(r->addr);
		free(r->orig);
		free(r->orcpt);
		free(r->last_reply);
		free(r->status);
		free(r->remote_mta);
	}
	free(env->rcpt);
	free(env->from);
	free(env->helo);
	free(env->client_ip);
	free(env->auth_user);
	free(env->envid);
	free(env->dkim7);
	free(env);
}
