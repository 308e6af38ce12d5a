/*
 * spf.c - RFC 7208 check_host() as a state machine without I/O.
 *
 * Each check_host() invocation (the first, and one per include) is a frame
 * on a small stack; a frame walks its record's terms and stops whenever it
 * needs a DNS answer, which comes back through spf_answer() to the phase
 * it stopped in.  redirect= replaces the frame.  The limits of 4.6.4 are
 * counted over the whole evaluation, so no record can make it ask more
 * than about 10 * 11 questions, and one more for a fail's explanation:
 * the exp= of the record that gave the result (after a redirect, the
 * target's; never an included record's, 6.2).
 */
#include "msgauth/spf.h"

#include "core/util.h"
#include "proto/spf_record.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#define SPF_DEPTH_MAX 12      /* 10 includes and the first, with room */
#define SPF_DNS_TERMS_MAX 10  /* 4.6.4 */
#define SPF_VOID_MAX 2        /* 4.6.4 */
#define SPF_NAMES_MAX 10      /* MX and PTR names looked at (4.6.4) */

const char *spf_result_name(enum spf_result r)
{
	static const char *const names[] = {
		[SPF_NONE] = "none",         [SPF_NEUTRAL] = "neutral",     [SPF_PASS] = "pass",
		[SPF_FAIL] = "fail",         [SPF_SOFTFAIL] = "softfail",   [SPF_TEMPERROR] = "temperror",
		[SPF_PERMERROR] = "permerror",
	};
	return names[r];
}

enum phase {
	PH_FETCH,     /* TXT of the domain to ask */
	PH_TXT,       /* waiting for it */
	PH_TERMS,     /* walking the terms */
	PH_A,         /* a: the addresses of target */
	PH_EXISTS,    /* exists: an A record of target */
	PH_MX,        /* mx: the MX names */
	PH_MX_ADDR,   /* mx: the addresses of names[name_i] */
	PH_PTR,       /* ptr: the names of the client address */
	PH_PTR_ADDR,  /* ptr: the addresses of names[name_i] */
	PH_CHILD,     /* include: the frame above answers */
};

struct frame {
	char domain[SPF_NAME_MAX + 1];
	char *txt;
	struct spf_record rec;
	size_t term;
	enum phase phase;
	bool redirected;           /* none becomes permerror (6.1) */
	char target[SPF_NAME_MAX + 1];
	char names[SPF_NAMES_MAX][SPF_NAME_MAX + 1];
	size_t nnames, name_i;
	bool ptr_ok;               /* a PTR name validated and matched */
};

struct spf {
	int family;
	unsigned char ip[16];
	char *sender, *helo;
	struct frame *f[SPF_DEPTH_MAX];
	size_t depth;
	unsigned dns_terms, voids;
	bool has_query, done;
	struct spf_query q;
	enum spf_result result;
	const char *reason;
	/* the explanation (6.2) */
	bool explain, explaining;
	char *receiver;
	uint64_t now;
	char exp_domain[SPF_NAME_MAX + 1];  /* %{d} of the text */
	char exp_name[SPF_NAME_MAX + 1];    /* where the text is */
	char *explanation;
};

static void frame_push(struct spf *s, const char *domain)
{
	struct frame *f = xcalloc(1, sizeof *f);

	snprintf(f->domain, sizeof f->domain, "%s", domain);
	f->phase = PH_FETCH;
	s->f[s->depth++] = f;
}

struct spf *spf_new(int family, const unsigned char *ip, const char *domain, const char *sender, const char *helo)
{
	struct spf *s = xcalloc(1, sizeof *s);

	s->family = family;
	memcpy(s->ip, ip, family == AF_INET ? 4 : 16);
	s->sender = xstrdup(sender);
	s->helo = xstrdup(helo);
	frame_push(s, domain);
	return s;
}

void spf_explain(struct spf *s, const char *receiver, uint64_t now)
{
	s->explain = true;
	free(s->receiver);
	s->receiver = xstrdup(receiver ? receiver : "");
	s->now = now;
}

static void finish_all(struct spf *s, enum spf_result r, const char *reason)
{
	s->done = true;
	s->has_query = false;
	s->explaining = false;
	s->result = r;
	s->reason = reason;
}

static struct spf_macro_ctx macro_ctx(const struct spf *s, const char *domain)
{
	struct spf_macro_ctx ctx = { s->sender, domain, s->helo, s->family, { 0 }, s->receiver, s->now };

	memcpy(ctx.ip, s->ip, 16);
	return ctx;
}

static void ask(struct spf *s, enum spf_qtype t, const char *name);

/* The first frame failed: its record's exp= names where the explanation
 * is.  A domain-spec that does not expand is as if there were no exp=. */
static bool explain_start(struct spf *s, const struct frame *f)
{
	struct spf_macro_ctx ctx = macro_ctx(s, f->domain);
	char name[1024];

	if (!s->explain || !f->rec.has_exp ||
	    !spf_macro_expand(f->rec.exp.p, f->rec.exp.len, &ctx, name, sizeof name) || !name[0])
		return false;
	snprintf(s->exp_domain, sizeof s->exp_domain, "%s", f->domain);
	s->result = SPF_FAIL;
	s->reason = NULL;
	s->explaining = true;
	memcpy(s->exp_name, name, strlen(name) + 1); /* at most 253 octets */
	ask(s, SPF_QTXT, s->exp_name);
	return true;
}

/* 6.2: exactly one TXT record whose text expands, or no explanation. */
static void explain_answer(struct spf *s, enum spf_rcode rc, const struct spf_rr *rr, size_t n)
{
	struct spf_macro_ctx ctx = macro_ctx(s, s->exp_domain);
	char out[SPF_EXPLAIN_MAX + 1];

	if (rc == SPF_DNS_OK && n == 1 && spf_explain_expand(rr[0].text, rr[0].len, &ctx, out, sizeof out))
		s->explanation = xstrdup(out);
	finish_all(s, SPF_FAIL, NULL);
}

bool spf_explaining(const struct spf *s)
{
	return s->explaining;
}

const char *spf_explanation(const struct spf *s)
{
	return s->explanation;
}

static void ask(struct spf *s, enum spf_qtype t, const char *name)
{
	s->q.type = t;
	snprintf(s->q.name, sizeof s->q.name, "%s", name);
	s->has_query = true;
}

static enum spf_qtype addr_type(const struct spf *s)
{
	return s->family == AF_INET ? SPF_QA : SPF_QAAAA;
}

static enum spf_result qual_result(enum spf_qual q)
{
	switch (q) {
	case SPF_Q_FAIL: return SPF_FAIL;
	case SPF_Q_SOFTFAIL: return SPF_SOFTFAIL;
	case SPF_Q_NEUTRAL: return SPF_NEUTRAL;
	default: return SPF_PASS;
	}
}

static void frame_finish(struct spf *s, enum spf_result r, const char *reason);

/* The current term matched or did not; go on with the next one. */
static void term_done(struct spf *s, struct frame *f, bool match)
{
	if (match) {
		frame_finish(s, qual_result(f->rec.terms[f->term].qual), NULL);
		return;
	}
	f->term++;
	f->phase = PH_TERMS;
}

/* include's child answered (5.2's table). */
static void child_done(struct spf *s, struct frame *parent, enum spf_result r, const char *reason)
{
	switch (r) {
	case SPF_PASS: term_done(s, parent, true); break;
	case SPF_FAIL:
	case SPF_SOFTFAIL:
	case SPF_NEUTRAL: term_done(s, parent, false); break;
	case SPF_TEMPERROR: frame_finish(s, SPF_TEMPERROR, reason); break;
	default: frame_finish(s, SPF_PERMERROR, r == SPF_NONE ? "include of a domain without SPF" : reason); break;
	}
}

static void frame_finish(struct spf *s, enum spf_result r, const char *reason)
{
	struct frame *f = s->f[--s->depth];

	if (r == SPF_NONE && f->redirected) {
		r = SPF_PERMERROR;
		reason = "redirect to a domain without SPF";
	}
	if (s->depth == 0 && r == SPF_FAIL && explain_start(s, f)) {
		free(f->txt);
		free(f);
		return;
	}
	free(f->txt);
	free(f);
	if (s->depth == 0)
		finish_all(s, r, reason);
	else
		child_done(s, s->f[s->depth - 1], r, reason);
}

static bool count_dns_term(struct spf *s)
{
	if (++s->dns_terms <= SPF_DNS_TERMS_MAX)
		return true;
	finish_all(s, SPF_PERMERROR, "more than 10 DNS lookups");
	return false;
}

/* A lookup with no answer (4.6.4): false when past the limit. */
static bool count_void(struct spf *s)
{
	if (++s->voids <= SPF_VOID_MAX)
		return true;
	finish_all(s, SPF_PERMERROR, "more than 2 void lookups");
	return false;
}

static bool cidr_match(const unsigned char *a, const unsigned char *b, unsigned bits)
{
	unsigned full = bits / 8, rest = bits % 8;

	if (memcmp(a, b, full) != 0)
		return false;
	return rest == 0 || ((a[full] ^ b[full]) & (0xff << (8 - rest))) == 0;
}

static bool target_of(struct spf *s, struct frame *f, struct spf_span spec)
{
	struct spf_macro_ctx ctx = macro_ctx(s, f->domain);

	if (spec.len == 0) {
		snprintf(f->target, sizeof f->target, "%s", f->domain);
		return true;
	}
	/* expanded at full length first: 7.3 then cuts it to 253 */
	char buf[1024];
	if (spf_macro_expand(spec.p, spec.len, &ctx, buf, sizeof buf) && buf[0]) {
		memcpy(f->target, buf, strlen(buf) + 1); /* at most 253 octets */
		return true;
	}
	frame_finish(s, SPF_PERMERROR, "bad macro");
	return false;
}

/* The name PTR lookups are made for: the client address reversed. */
static void reverse_name(const struct spf *s, char *out, size_t cap)
{
	size_t n = 0;

	if (s->family == AF_INET) {
		snprintf(out, cap, "%u.%u.%u.%u.in-addr.arpa", s->ip[3], s->ip[2], s->ip[1], s->ip[0]);
		return;
	}
	for (int k = 15; k >= 0; k--)
		n += (size_t)snprintf(out + n, cap - n, "%x.%x.", s->ip[k] & 15, s->ip[k] >> 4);
	snprintf(out + n, cap - n, "ip6.arpa");
}

/* Evaluate terms until one needs DNS, matches, or the record ends. */
static void walk_terms(struct spf *s, struct frame *f)
{
	while (f->term < f->rec.n) {
		const struct spf_term *t = &f->rec.terms[f->term];
		char rev[80];

		switch (t->mech) {
		case SPF_ALL:
			return term_done(s, f, true);
		case SPF_IP4:
		case SPF_IP6:
			if ((t->mech == SPF_IP4) == (s->family == AF_INET) &&
			    cidr_match(t->addr, s->ip, t->mech == SPF_IP4 ? t->cidr4 : t->cidr6))
				return term_done(s, f, true);
			f->term++;
			continue;
		case SPF_INCLUDE:
			if (!count_dns_term(s) || !target_of(s, f, t->domain))
				return;
			if (s->depth == SPF_DEPTH_MAX)
				return frame_finish(s, SPF_PERMERROR, "includes nested too deep");
			f->phase = PH_CHILD;
			frame_push(s, f->target);
			return;
		case SPF_A:
		case SPF_EXISTS:
		case SPF_MX:
		case SPF_PTR:
			if (!count_dns_term(s) || !target_of(s, f, t->domain))
				return;
			if (t->mech == SPF_A) {
				f->phase = PH_A;
				ask(s, addr_type(s), f->target);
			} else if (t->mech == SPF_EXISTS) {
				f->phase = PH_EXISTS;
				ask(s, SPF_QA, f->target);
			} else if (t->mech == SPF_MX) {
				f->phase = PH_MX;
				ask(s, SPF_QMX, f->target);
			} else {
				f->phase = PH_PTR;
				f->ptr_ok = false;
				reverse_name(s, rev, sizeof rev);
				ask(s, SPF_QPTR, rev);
			}
			return;
		}
	}
	if (f->rec.has_redirect) {
		/* 6.1: the record of the redirect target replaces this one */
		if (!count_dns_term(s) || !target_of(s, f, f->rec.redirect))
			return;
		snprintf(f->domain, sizeof f->domain, "%s", f->target);
		free(f->txt);
		f->txt = NULL;
		f->term = 0;
		f->redirected = true;
		f->phase = PH_FETCH;
		return;
	}
	frame_finish(s, SPF_NEUTRAL, NULL); /* 4.7 */
}

bool spf_next(struct spf *s, struct spf_query *q)
{
	while (!s->done && !s->has_query && !s->explaining) {
		struct frame *f = s->f[s->depth - 1];
		if (f->phase == PH_FETCH) {
			f->phase = PH_TXT;
			ask(s, SPF_QTXT, f->domain);
		} else if (f->phase == PH_TERMS) {
			walk_terms(s, f);
		} else {
			abort(); /* waiting for an answer that was not given: our bug */
		}
	}
	if (s->done)
		return false;
	assert(s->has_query);
	*q = s->q;
	return true;
}

static void got_txt(struct spf *s, struct frame *f, enum spf_rcode rc, const struct spf_rr *rr, size_t n)
{
	const struct spf_rr *found = NULL;
	const char *reason;

	if (rc == SPF_DNS_TEMPFAIL)
		return frame_finish(s, SPF_TEMPERROR, "DNS error looking up the SPF record");
	for (size_t k = 0; rc == SPF_DNS_OK && k < n; k++) {
		if (!spf_is_record(rr[k].text, rr[k].len))
			continue;
		if (found)
			return frame_finish(s, SPF_PERMERROR, "more than one SPF record"); /* 4.5 */
		found = &rr[k];
	}
	if (!found)
		return frame_finish(s, SPF_NONE, NULL);
	f->txt = xstrndup(found->text, found->len);
	if (!spf_record_parse(f->txt, found->len, &f->rec, &reason))
		return frame_finish(s, SPF_PERMERROR, reason);
	f->term = 0;
	f->phase = PH_TERMS;
}

static bool any_addr_matches(const struct spf *s, const struct spf_term *t, const struct spf_rr *rr, size_t n)
{
	for (size_t k = 0; k < n; k++)
		if (cidr_match(rr[k].addr, s->ip, s->family == AF_INET ? t->cidr4 : t->cidr6))
			return true;
	return false;
}

/* The next MX or PTR name's addresses, or the end of the names. */
static void next_name(struct spf *s, struct frame *f)
{
	if (f->name_i < f->nnames) {
		ask(s, addr_type(s), f->names[f->name_i]);
		return;
	}
	term_done(s, f, f->phase == PH_PTR_ADDR && f->ptr_ok);
}

static void got_names(struct spf *s, struct frame *f, const struct spf_rr *rr, size_t n)
{
	f->nnames = 0;
	f->name_i = 0;
	for (size_t k = 0; k < n && f->nnames < SPF_NAMES_MAX; k++)
		snprintf(f->names[f->nnames++], sizeof f->names[0], "%.*s", (int)rr[k].len, rr[k].text);
}

/* Is name target or below it (5.5)? */
static bool name_in(const char *name, const char *target)
{
	size_t nl = strlen(name), tl = strlen(target);

	while (nl && name[nl - 1] == '.')
		nl--;
	while (tl && target[tl - 1] == '.')
		tl--;
	if (nl == tl)
		return ascii_ieq(name, target, nl);
	return nl > tl && name[nl - tl - 1] == '.' && ascii_ieq(name + nl - tl, target, tl);
}

void spf_answer(struct spf *s, enum spf_rcode rc, const struct spf_rr *rr, size_t n)
{
	struct frame *f;
	const struct spf_term *t;
	bool empty = rc == SPF_DNS_NXDOMAIN || (rc == SPF_DNS_OK && n == 0);

	if (!s->has_query)
		abort(); /* an answer nobody asked for: our bug */
	s->has_query = false;
	if (s->explaining)
		return explain_answer(s, rc, rr, n);
	f = s->f[s->depth - 1];
	t = f->term < f->rec.n ? &f->rec.terms[f->term] : NULL;
	switch (f->phase) {
	case PH_TXT:
		return got_txt(s, f, rc, rr, n);
	case PH_A:
	case PH_EXISTS:
		if (rc == SPF_DNS_TEMPFAIL)
			return frame_finish(s, SPF_TEMPERROR, "DNS error");
		if (empty)
			return count_void(s) ? term_done(s, f, false) : (void)0;
		return term_done(s, f, f->phase == PH_EXISTS || any_addr_matches(s, t, rr, n));
	case PH_MX:
		if (rc == SPF_DNS_TEMPFAIL)
			return frame_finish(s, SPF_TEMPERROR, "DNS error");
		if (empty)
			return count_void(s) ? term_done(s, f, false) : (void)0;
		if (n > SPF_NAMES_MAX)
			return frame_finish(s, SPF_PERMERROR, "more than 10 MX names"); /* 4.6.4 */
		got_names(s, f, rr, n);
		f->phase = PH_MX_ADDR;
		return next_name(s, f);
	case PH_MX_ADDR:
		if (rc == SPF_DNS_TEMPFAIL)
			return frame_finish(s, SPF_TEMPERROR, "DNS error");
		if (rc == SPF_DNS_OK && any_addr_matches(s, t, rr, n))
			return term_done(s, f, true);
		f->name_i++;
		return next_name(s, f);
	case PH_PTR:
		/* 5.5: a DNS error makes ptr not match; only 10 names are used */
		if (empty && !count_void(s))
			return;
		if (rc != SPF_DNS_OK || n == 0)
			return term_done(s, f, false);
		got_names(s, f, rr, n);
		f->phase = PH_PTR_ADDR;
		return next_name(s, f);
	case PH_PTR_ADDR:
		if (rc == SPF_DNS_OK && name_in(f->names[f->name_i], f->target))
			for (size_t k = 0; k < n; k++)
				if (!memcmp(rr[k].addr, s->ip, s->family == AF_INET ? 4 : 16))
					f->ptr_ok = true;
		if (f->ptr_ok)
			return term_done(s, f, true);
		f->name_i++;
		return next_name(s, f);
	default:
		abort();
	}
}

enum spf_result spf_result(const struct spf *s, const char **reason)
{
	if (reason)
		*reason = s->reason;
	return s->result;
}

void spf_free(struct spf *s)
{
	if (!s)
		return;
	while (s->depth > 0) {
		struct frame *f = s->f[--s->depth];
		free(f->txt);
		free(f);
	}
	free(s->sender);
	free(s->helo);
	free(s->receiver);
	free(s->explanation);
	free(s);
}
