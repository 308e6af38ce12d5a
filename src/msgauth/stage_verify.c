/*
 * stage_verify.c - sender authentication of mail arriving on the MX
 * service, a check stage: SPF (RFC 7208) of the client address against
 * MAIL FROM (HELO for the null path), DKIM (RFC 6376) of every signature,
 * DMARC (RFC 7489) of the From: domains, written into one
 * Authentication-Results field (RFC 8601) in front of the message.
 *
 * SPF starts when the stage is made (at DATA), so its lookups overlap the
 * transfer; DKIM key and DMARC policy lookups start at the end of the
 * message.  Every lookup goes through the asynchronous resolver, which
 * bounds each query ([dns] timeout), and the stage bounds the whole
 * evaluation too: what has not answered by then is temperror.  Nothing
 * here ever refuses mail but an enforced DMARC p=reject (550 5.7.1), and
 * no DNS failure gives a 5xx.
 *
 * Authentication-Results fields that arrive claiming our authserv-id are
 * forged (RFC 8601 5): they are removed from the header section as it
 * streams through, and so are those whose authserv-id cannot be read
 * (proto/auth_results.c parses it).  A field is held until its name and
 * authserv-id are seen (at most AR_HOLD_MAX octets), then dropped or
 * passed on.
 */
#include "msg/pipeline.h"
#include "msgauth/msgauth.h"
#include "core/config.h"
#include "core/dns.h"
#include "core/log.h"
#include "core/server.h"
#include "core/util.h"
#include "msgauth/dkim.h"
#include "msgauth/dmarc.h"
#include "msgauth/spf.h"
#include "proto/auth_results.h"
#include "store/queue.h"

#include <arpa/inet.h>
#include <event2/event.h>
#include <openssl/rand.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define AR_HOLD_MAX     1024
#define VERIFY_FROM_MAX 4      /* From: domains given DMARC */
#define AR_MAX          8192

struct verify_dmarc {
	char domain[256];
	char names[2][DMARC_NAME_CAP];
	size_t nnames, at;
	uint64_t req;
	bool done, have_record, at_org, dns_error;
	struct dmarc_record rec;
	struct dmarc_outcome out;
};

struct verify_dkim_req {
	struct stage_verify *v;
	size_t i;
	uint64_t req;
};

struct verify_dmarc_req {
	struct stage_verify *v;
	size_t i;
};

struct stage_verify {
	struct pipe_stage st;
	struct tern *t;
	const struct queue_env *env;
	const char *authserv;
	bool ended;                  /* .end was called: answer when done */
	bool answered;

	/* forged A-R removal, over the header section */
	bool in_headers, line_start, holding, dropping;
	size_t hold_len;
	char hold[AR_HOLD_MAX];

	/* SPF */
	struct spf *spf;
	uint64_t spf_req;
	bool spf_done;
	enum spf_result spf_res;
	char spf_domain[256];
	bool spf_helo;               /* the identity is the HELO name */
	bool helo_phase;             /* v->spf is the HELO check (RFC 7208 2.3) */
	bool helo_checked;
	enum spf_result helo_res;
	char *spf_exp, *helo_exp;    /* a fail's explanation (RFC 7208 6.2) */

	/* DKIM */
	struct dkim_verify *dkim;
	struct verify_dkim_req dk[DKIM_VERIFY_MAX];
	bool dk_skip[DKIM_VERIFY_MAX];   /* [checks] dkim = off: not DMARC's, so not checked */
	size_t dk_pending;

	/* DMARC */
	struct verify_dmarc dm[VERIFY_FROM_MAX];
	struct verify_dmarc_req dmr[VERIFY_FROM_MAX];
	size_t ndm, dm_pending;
	bool dm_bad_from;

	struct event *deadline;
};

static void log_msgauth(const struct queue_env *env, const char *spf, const char *dkim, const char *dmarc,
			const char *action, const char *spf_helo)
{
	log_event("event=msgauth queue=%s spf=%s dkim=%s dmarc=%s action=%s spf_helo=%s", env->id, spf, dkim, dmarc,
		  action, spf_helo);
}

/* ---- forged Authentication-Results removal ---- */

/* Is the held field one to remove?  An Authentication-Results field
 * claiming our authserv-id (RFC 8601 5), and one whose authserv-id cannot
 * be read: malformed, or hidden behind more than AR_HOLD_MAX octets of
 * comments - a reader might still take it for ours, and no honest
 * server writes one. */
static bool ar_forged(const struct stage_verify *v, const char *f, size_t n)
{
	struct auth_results_id id;

	switch (auth_results_parse(f, n, &id)) {
	case AUTH_RESULTS_OTHER:
		return false;
	case AUTH_RESULTS_OK:
		return id.len == strlen(v->authserv) && strcasecmp(id.id, v->authserv) == 0;
	case AUTH_RESULTS_TRUNCATED:
	case AUTH_RESULTS_MALFORMED:
		break;
	}
	return true;
}

/* Decide on the held field: drop it (and its rest) or pass it on. */
static void ar_decide(struct stage_verify *v)
{
	v->holding = false;
	v->dropping = ar_forged(v, v->hold, v->hold_len);
	if (!v->dropping)
		pipe_emit(&v->st, v->hold, v->hold_len);
	v->hold_len = 0;
}

static void ar_out(struct stage_verify *v, const char *buf, size_t len)
{
	if (!v->dropping)
		pipe_emit(&v->st, buf, len);
}

/* Header section line by line; the body passes straight on. */
static void ar_filter(struct stage_verify *v, const char *buf, size_t len)
{
	while (len > 0 && v->in_headers) {
		if (v->line_start) {
			bool cont = buf[0] == ' ' || buf[0] == '\t';
			if (!cont) {
				if (v->holding)
					ar_decide(v);
				v->dropping = false;
				if (buf[0] == '\n' || buf[0] == '\r') {
					v->in_headers = false;
					break;
				}
				v->holding = true;
			}
		}
		const char *nl = memchr(buf, '\n', len);
		size_t seg = nl ? (size_t)(nl - buf) + 1 : len;
		v->line_start = nl != NULL;
		if (v->holding) {
			size_t room = AR_HOLD_MAX - v->hold_len, n = seg < room ? seg : room;
			memcpy(v->hold + v->hold_len, buf, n);
			v->hold_len += n;
			if (v->hold_len == AR_HOLD_MAX) {
				ar_decide(v);
				ar_out(v, buf + n, seg - n);
			}
		} else {
			ar_out(v, buf, seg);
		}
		buf += seg;
		len -= seg;
	}
	if (len > 0)
		pipe_emit(&v->st, buf, len);
}

/* ---- the verdict ---- */

/* For the log: the best result of the signatures checked; "off" when
 * [checks] dkim = off left none to check for DMARC. */
static const char *verify_dkim_summary(const struct stage_verify *v)
{
	size_t n = v->dkim ? dkim_verify_count(v->dkim) : 0, checked = 0;
	enum dkim_result best = DKIM_NONE;

	for (size_t i = 0; i < n; i++) {
		enum dkim_result r = dkim_verify_result(v->dkim, i, NULL);
		if (v->dk_skip[i])
			continue;
		checked++;
		if (r == DKIM_PASS || best == DKIM_NONE)
			best = r;
		if (best == DKIM_PASS)
			break;
	}
	if (v->dkim == NULL || (!v->t->cfg->check_dkim && checked == 0))
		return "off";
	return dkim_result_name(best);
}

static size_t ar_add(char *buf, size_t at, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static size_t ar_add(char *buf, size_t at, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (at >= AR_MAX)
		return at;
	va_start(ap, fmt);
	n = vsnprintf(buf + at, AR_MAX - at, fmt, ap);
	va_end(ap);
	return n < 0 ? at : at + (size_t)n >= AR_MAX ? AR_MAX : at + (size_t)n;
}

/* A domain as an RFC 8601 pvalue: dot-atom text passes, else quoted. */
static bool ar_token_ok(const char *s, size_t n)
{
	if (n == 0)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c <= ' ' || c >= 0x7f || strchr("()<>,;:\\\"[]", c) != NULL)
			return false;
	}
	return true;
}

/* A fail's explanation (RFC 7208 6.2) as the resinfo's reasonspec (RFC
 * 8601 2.2), on a line of its own, a comment first saying whose text it
 * is (6.2: it comes from a third party).  The next property begins
 * with a space: the fold after it.  It is visible ASCII and
 * spaces, at most SPF_EXPLAIN_MAX octets: escaped, the line stays well
 * under 998. */
static size_t ar_spf_reason(char *buf, size_t at, const char *domain, const char *exp)
{
	char q[2 * SPF_EXPLAIN_MAX + 1];
	size_t n = 0;

	if (exp == NULL)
		return at;
	for (const char *p = exp; *p && n + 2 < sizeof(q); p++) {
		if (*p == '"' || *p == '\\')
			q[n++] = '\\';
		q[n++] = *p;
	}
	q[n] = '\0';
	if (ar_token_ok(domain, strlen(domain)))
		at = ar_add(buf, at, " (explanation published for %s)", domain);
	return ar_add(buf, at, "\n\treason=\"%s\"\n", q);  /* the next property folds */
}

static char *verify_ar_field(const struct stage_verify *v, const struct verify_dmarc *worst)
{
	char *buf = xmalloc(AR_MAX + 2);
	size_t at = 0, n = v->dkim ? dkim_verify_count(v->dkim) : 0;
	const struct queue_env *env = v->env;

	at = ar_add(buf, at, "Authentication-Results: %s", v->authserv);
	if (v->spf != NULL) {
		at = ar_add(buf, at, ";\n\tspf=%s", spf_result_name(v->spf_res));
		at = ar_spf_reason(buf, at, v->spf_domain, v->spf_exp);
		if (v->spf_helo)
			at = ar_add(buf, at, " smtp.helo=%s", v->spf_domain);
		else if (ar_token_ok(env->from, strlen(env->from)))
			at = ar_add(buf, at, " smtp.mailfrom=%s", env->from);
		else
			at = ar_add(buf, at, " smtp.mailfrom=%s", v->spf_domain);
		if (v->helo_checked && ar_token_ok(env->helo, strlen(env->helo))) {
			at = ar_add(buf, at, ";\n\tspf=%s", spf_result_name(v->helo_res));
			at = ar_spf_reason(buf, at, env->helo, v->helo_exp);
			at = ar_add(buf, at, " smtp.helo=%s", env->helo);
		}
	}
	if (v->dkim != NULL && n == 0 && v->t->cfg->check_dkim)
		at = ar_add(buf, at, ";\n\tdkim=none");
	for (size_t i = 0; i < n; i++) {
		const struct dkim_sig *sig = dkim_verify_sig(v->dkim, i);
		enum dkim_result r = dkim_verify_result(v->dkim, i, NULL);
		if (v->dk_skip[i])
			continue;
		at = ar_add(buf, at, ";\n\tdkim=%s", dkim_result_name(r));
		if (sig == NULL)
			continue;
		if (ar_token_ok(sig->d.p, sig->d.len))
			at = ar_add(buf, at, " header.d=%.*s", (int)sig->d.len, sig->d.p);
		if (ar_token_ok(sig->s.p, sig->s.len))
			at = ar_add(buf, at, " header.s=%.*s", (int)sig->s.len, sig->s.p);
		char b[9];
		size_t bl = 0;
		for (size_t k = 0; k < sig->b_value.len && bl < 8; k++) {
			char c = sig->b_value.p[k];
			if (c != ' ' && c != '\t' && c != '\r' && c != '\n')
				b[bl++] = c;
		}
		b[bl] = '\0';
		if (ar_token_ok(b, bl) && strchr(b, '=') == NULL)
			at = ar_add(buf, at, " header.b=%s", b);
	}
	if (worst != NULL)
		at = ar_add(buf, at, ";\n\tdmarc=%s header.from=%s", dmarc_result_name(worst->out.result), worst->domain);
	else if (v->dm_bad_from)
		at = ar_add(buf, at, ";\n\tdmarc=permerror");
	at = ar_add(buf, at, "\n");
	if (at >= AR_MAX) {
		free(buf);
		return xasprintf("Authentication-Results: %s; none\n", v->authserv);
	}
	return buf;
}

/* The From: domain whose DMARC outcome decides: a failing one first,
 * the strictest disposition among those. */
static const struct verify_dmarc *verify_dmarc_worst(const struct stage_verify *v)
{
	const struct verify_dmarc *w = NULL;

	for (size_t i = 0; i < v->ndm; i++) {
		const struct verify_dmarc *d = &v->dm[i];
		if (w == NULL || (d->out.result == DMARC_FAIL &&
				  (w->out.result != DMARC_FAIL || d->out.disposition > w->out.disposition)))
			w = d;
	}
	return w;
}

static void verify_dmarc_eval(struct stage_verify *v, struct verify_dmarc *d);

/* [checks] dns_tempfail: DNS trouble left a check temperror and DMARC did
 * not pass anyway - the operator would rather have the sender retry
 * than accept mail whose checks are incomplete. */
static bool verify_temperror(const struct stage_verify *v, const struct verify_dmarc *w)
{
	size_t n = v->dkim ? dkim_verify_count(v->dkim) : 0;
	bool temp = v->spf != NULL && v->spf_res == SPF_TEMPERROR;

	if (w != NULL && w->out.result == DMARC_PASS)
		return false;
	for (size_t i = 0; i < n && !temp; i++)
		temp = !v->dk_skip[i] && dkim_verify_result(v->dkim, i, NULL) == DKIM_TEMPERROR;
	for (size_t i = 0; i < v->ndm && !temp; i++)
		temp = v->dm[i].out.result == DMARC_TEMPERROR;
	return temp;
}

static void verify_answer(struct stage_verify *v)
{
	const struct config *cfg = v->t->cfg;
	const struct verify_dmarc *w;
	const char *action = "accept";
	char *ar;

	if (v->answered || !v->ended || !v->spf_done || v->dk_pending > 0 || v->dm_pending > 0)
		return;
	v->answered = true;
	if (v->deadline)
		event_del(v->deadline);
	/* DMARC outcomes once SPF and DKIM are in */
	for (size_t i = 0; i < v->ndm; i++)
		verify_dmarc_eval(v, &v->dm[i]);
	w = verify_dmarc_worst(v);
	if (w != NULL && w->out.result == DMARC_FAIL && cfg->check_dmarc == DMARC_MODE_ENFORCE) {
		if (w->out.disposition == DMARC_P_REJECT)
			action = "reject";
		else if (w->out.disposition == DMARC_P_QUARANTINE)
			action = "quarantine";
	}
	/* a definite reject stands; the rest waits for DNS to answer */
	if (cfg->check_dns_tempfail && strcmp(action, "reject") != 0 && verify_temperror(v, w))
		action = "tempfail";
	log_msgauth(v->env, v->spf ? spf_result_name(v->spf_res) : "off",
		    verify_dkim_summary(v),
		    w ? dmarc_result_name(w->out.result) : v->dm_bad_from ? "permerror" : "none", action,
		    v->helo_checked ? spf_result_name(v->helo_res) : "-");
	if (strcmp(action, "tempfail") == 0) {
		pipe_stage_refuse(&v->st, true, "451 4.4.3 Temporary DNS failure checking the sender (SPF/DKIM/DMARC), "
				  "try again later");
		return;
	}
	if (strcmp(action, "reject") == 0) {
		pipe_stage_refuse(&v->st, false, "550 5.7.1 Message rejected: DMARC policy of %s (RFC 7489)",
				  w->domain);
		return;
	}
	if (strcmp(action, "quarantine") == 0)
		pipeline_env(v->st.p)->junk = true;   /* local copies go to Junk */
	ar = verify_ar_field(v, w);
	pipe_prepend(&v->st, ar, strlen(ar));
	free(ar);
	pipe_stage_accept(&v->st);
}

/* ---- SPF ---- */

static void verify_spf_step(struct stage_verify *v);

static void verify_spf_cb(const struct dns_rr_result *r, void *arg)
{
	struct stage_verify *v = arg;
	struct spf_rr *rr = xcalloc(r->n ? r->n : 1, sizeof(*rr));
	enum spf_rcode rc = r->status == DNS_OK ? SPF_DNS_OK :
			    r->status == DNS_NXDOMAIN ? SPF_DNS_NXDOMAIN : SPF_DNS_TEMPFAIL;

	v->spf_req = 0;
	for (size_t i = 0; i < r->n; i++) {
		rr[i].text = r->rr[i].text;
		rr[i].len = r->rr[i].len;
		memcpy(rr[i].addr, r->rr[i].addr, sizeof(rr[i].addr));
	}
	spf_answer(v->spf, rc, rr, r->n);
	free(rr);
	verify_spf_step(v);
}

/* RFC 7208 2.3: the HELO identity is checked too, once MAIL FROM has
 * its result (DMARC uses only that one).  Not when the HELO name is no
 * domain, is the MAIL FROM domain, or DNS is already in trouble. */
static bool verify_helo_start(struct stage_verify *v)
{
	const char *helo = v->env->helo;
	unsigned char ip[16];
	int family = inet_pton(AF_INET, v->env->client_ip, ip) == 1 ? AF_INET : AF_INET6;
	char *sender;

	if (v->spf_helo || v->spf_res == SPF_TEMPERROR || helo[0] == '[' || strchr(helo, '.') == NULL ||
	    strlen(helo) > 253 || strcasecmp(helo, v->spf_domain) == 0)
		return false;
	if (family == AF_INET6 && inet_pton(AF_INET6, v->env->client_ip, ip) != 1)
		return false;
	sender = xasprintf("postmaster@%s", helo);
	spf_free(v->spf);
	v->spf = spf_new(family, ip, helo, sender, helo);
	spf_explain(v->spf, v->t->cfg->hostname, now_unix());
	free(sender);
	v->helo_phase = true;
	verify_spf_step(v);
	return true;
}

/* One SPF check has its result (and a fail its explanation). */
static void verify_spf_done(struct stage_verify *v)
{
	const char *exp = spf_explanation(v->spf);

	if (v->helo_phase) {
		v->helo_res = spf_result(v->spf, NULL);
		v->helo_exp = exp ? xstrdup(exp) : NULL;
		v->helo_checked = true;
	} else {
		v->spf_res = spf_result(v->spf, NULL);
		v->spf_exp = exp ? xstrdup(exp) : NULL;
	}
}

static void verify_spf_step(struct stage_verify *v)
{
	static const enum dns_rr_type types[] = {
		[SPF_QTXT] = DNS_RR_TXT, [SPF_QA] = DNS_RR_A, [SPF_QAAAA] = DNS_RR_AAAA,
		[SPF_QMX] = DNS_RR_MX, [SPF_QPTR] = DNS_RR_PTR,
	};
	struct spf_query q;

	if (spf_next(v->spf, &q)) {
		v->spf_req = dns_rr_lookup(v->t->dns, q.name, types[q.type], verify_spf_cb, v);
		return;
	}
	verify_spf_done(v);
	if (!v->helo_phase && verify_helo_start(v))
		return;
	v->spf_done = true;
	verify_answer(v);
}

static void verify_spf_start(struct stage_verify *v)
{
	const struct queue_env *env = v->env;
	unsigned char ip[16];
	int family = AF_INET;
	const char *at = strrchr(env->from, '@');
	char *sender;

	if (inet_pton(AF_INET, env->client_ip, ip) != 1) {
		family = AF_INET6;
		if (inet_pton(AF_INET6, env->client_ip, ip) != 1) {
			v->spf_done = true;
			return;
		}
	}
	if (env->from[0] != '\0' && at != NULL && at[1] != '\0') {
		snprintf(v->spf_domain, sizeof(v->spf_domain), "%s", at + 1);
		sender = xstrdup(env->from);
	} else {
		/* RFC 7208 2.4: the null path is checked as postmaster@HELO */
		snprintf(v->spf_domain, sizeof(v->spf_domain), "%s", env->helo);
		sender = xasprintf("postmaster@%s", env->helo);
		v->spf_helo = true;
	}
	v->spf = spf_new(family, ip, v->spf_domain, sender, env->helo);
	spf_explain(v->spf, v->t->cfg->hostname, now_unix());
	free(sender);
	verify_spf_step(v);
}

/* ---- DKIM keys ---- */

static void verify_dkim_cb(const struct dns_rr_result *r, void *arg)
{
	struct verify_dkim_req *q = arg;
	struct stage_verify *v = q->v;

	q->req = 0;
	v->dk_pending--;
	if (r->status == DNS_TEMPFAIL)
		dkim_verify_key_failed(v->dkim, q->i, DKIM_TEMPERROR, "key lookup failed");
	else if (r->status == DNS_NXDOMAIN || r->n == 0)
		dkim_verify_key_failed(v->dkim, q->i, DKIM_PERMERROR, "no key record");
	else if (r->n > 1)
		dkim_verify_key_failed(v->dkim, q->i, DKIM_PERMERROR, "several key records");
	else
		dkim_verify_key(v->dkim, q->i, r->rr[0].text, r->rr[0].len, now_unix());
	verify_answer(v);
}

/* [checks] dkim = off with DMARC on: DMARC is defined on DKIM's result
 * (RFC 7489 4.2), and without it mail that passes only by DKIM (mailing
 * lists, forwarders) would fail and, under p=reject, be refused.  So the
 * signatures that could make DMARC pass - d= aligned (relaxed) with a
 * From: domain - are still checked and reported; no other is. */
static bool verify_dkim_wanted(struct stage_verify *v, size_t i)
{
	char doms[VERIFY_FROM_MAX][256], d[256];
	const struct dkim_sig *sig;
	size_t n;

	if (v->t->cfg->check_dkim)
		return true;
	sig = dkim_verify_sig(v->dkim, i);
	n = dkim_verify_from_domains(v->dkim, doms, VERIFY_FROM_MAX);
	if (sig == NULL || n == SIZE_MAX || sig->d.len >= sizeof(d))
		return false;
	memcpy(d, sig->d.p, sig->d.len);
	d[sig->d.len] = '\0';
	for (size_t k = 0; k < n; k++)
		if (dmarc_aligned(doms[k], d, false))
			return true;
	return false;
}

static void verify_dkim_start(struct stage_verify *v)
{
	size_t n;

	dkim_verify_finish(v->dkim);
	n = dkim_verify_count(v->dkim);
	for (size_t i = 0; i < n; i++) {
		if (!verify_dkim_wanted(v, i)) {
			v->dk_skip[i] = true;
			continue;
		}
		char *name = dkim_verify_key_name(v->dkim, i);
		if (name == NULL)
			continue;
		v->dk[i].v = v;
		v->dk[i].i = i;
		v->dk_pending++;
		v->dk[i].req = dns_rr_lookup(v->t->dns, name, DNS_RR_TXT, verify_dkim_cb, &v->dk[i]);
		free(name);
	}
}

/* ---- DMARC ---- */

static void verify_dmarc_eval(struct stage_verify *v, struct verify_dmarc *d)
{
	struct dmarc_dkim_id ids[DKIM_VERIFY_MAX];
	char doms[DKIM_VERIFY_MAX][256];
	size_t n = 0, count = v->dkim ? dkim_verify_count(v->dkim) : 0;
	struct dmarc_input in = { 0 };
	unsigned char r = 0;

	for (size_t i = 0; i < count; i++) {
		const struct dkim_sig *sig = dkim_verify_sig(v->dkim, i);
		if (sig == NULL || v->dk_skip[i] || sig->d.len >= sizeof(doms[0]))
			continue;
		memcpy(doms[n], sig->d.p, sig->d.len);
		doms[n][sig->d.len] = '\0';
		ids[n].d = doms[n];
		ids[n].result = dkim_verify_result(v->dkim, i, NULL);
		n++;
	}
	if (RAND_bytes(&r, 1) != 1)
		r = 0;
	in.from_domain = d->domain;
	in.have_record = d->have_record;
	in.record_at_org = d->at_org;
	in.dns_error = d->dns_error;
	in.rec = d->rec;
	in.spf = v->spf ? v->spf_res : SPF_NONE;
	in.spf_domain = v->spf_domain;
	in.dkim = ids;
	in.ndkim = n;
	in.sample = r % 100;
	dmarc_evaluate(&in, &d->out);
	d->done = true;
}

static void verify_dmarc_lookup(struct stage_verify *v, size_t i);

static void verify_dmarc_cb(const struct dns_rr_result *r, void *arg)
{
	struct verify_dmarc_req *q = arg;
	struct stage_verify *v = q->v;
	struct verify_dmarc *d = &v->dm[q->i];
	size_t found = 0;

	d->req = 0;
	if (r->status == DNS_TEMPFAIL) {
		d->dns_error = true;
	} else {
		for (size_t k = 0; k < r->n; k++) {
			if (!dmarc_is_record(r->rr[k].text, r->rr[k].len))
				continue;
			if (found++ == 0)
				d->have_record = dmarc_record_parse(r->rr[k].text, r->rr[k].len, &d->rec, NULL);
		}
		if (found > 1)   /* 6.6.3: several records, none applies */
			d->have_record = false;
		if (found == 0 && d->at + 1 < d->nnames) {
			d->at++;
			verify_dmarc_lookup(v, q->i);
			return;
		}
		d->at_org = d->at > 0;
	}
	v->dm_pending--;
	verify_answer(v);
}

static void verify_dmarc_lookup(struct stage_verify *v, size_t i)
{
	struct verify_dmarc *d = &v->dm[i];

	v->dmr[i].v = v;
	v->dmr[i].i = i;
	d->req = dns_rr_lookup(v->t->dns, d->names[d->at], DNS_RR_TXT, verify_dmarc_cb, &v->dmr[i]);
}

/* After DKIM (DMARC needs its results): policy lookups of each From:
 * domain.  They run alongside the key lookups; the evaluation waits for
 * both (verify_answer only runs dmarc once everything is in). */
static void verify_dmarc_start(struct stage_verify *v)
{
	char doms[VERIFY_FROM_MAX][256];
	size_t n = dkim_verify_from_domains(v->dkim, doms, VERIFY_FROM_MAX);

	if (n == SIZE_MAX) {
		v->dm_bad_from = true;
		return;
	}
	for (size_t i = 0; i < n; i++) {
		struct verify_dmarc *d = &v->dm[v->ndm++];
		snprintf(d->domain, sizeof(d->domain), "%s", doms[i]);
		d->nnames = dmarc_names(d->domain, d->names);
		v->dm_pending++;
		verify_dmarc_lookup(v, i);
	}
}

/* ---- the stage ---- */

static void verify_data(struct pipe_stage *st, const char *buf, size_t len)
{
	struct stage_verify *v = (struct stage_verify *)st;

	if (v->dkim != NULL)
		dkim_verify_feed(v->dkim, buf, len);
	ar_filter(v, buf, len);
}

/* The evaluation took too long: what is missing is temperror. */
static void verify_deadline_cb(evutil_socket_t fd, short what, void *arg)
{
	struct stage_verify *v = arg;

	if (v->spf_req && spf_explaining(v->spf)) {
		/* the result is in; only its explanation did not come */
		dns_cancel(v->t->dns, v->spf_req);
		v->spf_req = 0;
		spf_answer(v->spf, SPF_DNS_TEMPFAIL, NULL, 0);
		verify_spf_done(v);
		v->spf_done = true;
	} else if (v->spf_req) {
		dns_cancel(v->t->dns, v->spf_req);
		v->spf_req = 0;
		if (v->helo_phase) {
			v->helo_res = SPF_TEMPERROR;
			v->helo_checked = true;
		} else {
			v->spf_res = SPF_TEMPERROR;
		}
		v->spf_done = true;
	}
	for (size_t i = 0; i < DKIM_VERIFY_MAX; i++) {
		if (v->dk[i].req) {
			dns_cancel(v->t->dns, v->dk[i].req);
			v->dk[i].req = 0;
			dkim_verify_key_failed(v->dkim, i, DKIM_TEMPERROR, "key lookup timed out");
			v->dk_pending--;
		}
	}
	for (size_t i = 0; i < v->ndm; i++) {
		struct verify_dmarc *d = &v->dm[i];
		if (d->req) {
			dns_cancel(v->t->dns, d->req);
			d->req = 0;
			d->dns_error = true;
			v->dm_pending--;
		}
	}
	verify_answer(v);
}

static void verify_end(struct pipe_stage *st)
{
	struct stage_verify *v = (struct stage_verify *)st;
	struct timeval tv = { .tv_sec = (time_t)(v->t->cfg->dns_timeout * 2) };

	if (v->holding)
		ar_decide(v);
	v->ended = true;
	if (v->dkim != NULL) {
		verify_dkim_start(v);
		if (v->t->cfg->check_dmarc != DMARC_MODE_OFF)
			verify_dmarc_start(v);
	}
	event_add(v->deadline, &tv);
	verify_answer(v);
}

static void verify_free(struct pipe_stage *st)
{
	struct stage_verify *v = (struct stage_verify *)st;

	if (v->spf_req)
		dns_cancel(v->t->dns, v->spf_req);
	for (size_t i = 0; i < DKIM_VERIFY_MAX; i++)
		if (v->dk[i].req)
			dns_cancel(v->t->dns, v->dk[i].req);
	for (size_t i = 0; i < v->ndm; i++)
		if (v->dm[i].req)
			dns_cancel(v->t->dns, v->dm[i].req);
	event_free(v->deadline);
	spf_free(v->spf);
	free(v->spf_exp);
	free(v->helo_exp);
	dkim_verify_free(v->dkim);
	free(v);
}

static const struct pipe_stage_ops verify_ops = {
	.name = "msgauth",
	.prepends = true,
	.data = verify_data,
	.end = verify_end,
	.free = verify_free,
};

struct pipe_stage *stage_verify_new(struct tern *t, const struct queue_env *env)
{
	struct stage_verify *v = xcalloc(1, sizeof(*v));
	const struct config *cfg = t->cfg;

	v->st.ops = &verify_ops;
	v->t = t;
	v->env = env;
	v->authserv = cfg->authserv_id && cfg->authserv_id[0] ? cfg->authserv_id : cfg->hostname;
	v->in_headers = v->line_start = true;
	v->spf_done = true;
	v->deadline = evtimer_new(t->base, verify_deadline_cb, v);
	if (v->deadline == NULL)
		die("evtimer_new failed");
	if (cfg->check_dkim || cfg->check_dmarc != DMARC_MODE_OFF)
		v->dkim = dkim_verify_new();
	if (v->dkim != NULL)
		dkim_verify_set_key_cache(v->dkim, t->dkim_pubkeys);
	/* SPF now, while the message is read: its callbacks run later,
	 * from the loop, never inside this call */
	if (cfg->check_spf || cfg->check_dmarc != DMARC_MODE_OFF) {
		v->spf_done = false;
		verify_spf_start(v);
	}
	return &v->st;
}
