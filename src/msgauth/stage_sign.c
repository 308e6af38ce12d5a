/*
 * stage_sign.c - DKIM signing (RFC 6376 5) of submitted mail and mail
 * from trusted networks, a check stage after the header work, so that the
 * MSA's Date: and Message-ID: are signed.  The body hash is computed as
 * the message streams past (dkim_signer_feed); the keys are picked as soon
 * as the header section is complete, by the From: domain: every
 * state_dir/dkim/SELECTOR._domainkey.DOMAIN.pem
 * that `tern dkim keygen` made, and every [dkim] keys entry for DOMAIN.
 * The DKIM-Signature fields go in front of the message; a message whose
 * From: domain has no key passes unsigned, and its body is not hashed at
 * all (trusted networks send much mail that is not theirs to sign: the
 * hash of a 100 KiB body cost a sixth of the CPU of its delivery).
 */
#include "msg/pipeline.h"
#include "msgauth/msgauth.h"
#include "core/config.h"
#include "core/log.h"
#include "core/util.h"
#include "msgauth/dkim.h"
#include "store/queue.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct stage_sign {
	struct pipe_stage st;
	struct dkim_signer *signer;
	const struct config *cfg;
	bool picked;        /* the keys were looked up (header complete) */
	unsigned nkeys;     /* how many were found */
	const char *domain; /* whose they are (the signer's) */
};

static void log_dkim_signed(const struct queue_env *env, const char *domain, unsigned nkeys)
{
	log_event("event=dkim_signed queue=%s domain=%s keys=%u", env->id, domain, nkeys);
}

static void log_dkim_key_error(const struct queue_env *env, const char *path, const char *err)
{
	char p[600], e[300];
	log_event("event=dkim_key_error queue=%s path=%s error=%s", env->id,
		  log_quote(p, sizeof(p), path, strlen(path)), log_quote(e, sizeof(e), err, strlen(err)));
}

static bool sign_add(struct stage_sign *g, const char *path, const char *domain, const char *selector)
{
	char err[200];
	EVP_PKEY *k = dkim_key_load(path, err, sizeof(err));
	bool ok;

	if (k == NULL) {
		log_dkim_key_error(pipeline_env(g->st.p), path, err);
		return false;
	}
	ok = dkim_signer_add_key(g->signer, k, domain, selector);
	EVP_PKEY_free(k);   /* the signer took its own reference */
	return ok;
}

/* Keys of tern dkim keygen: SELECTOR._domainkey.DOMAIN.pem. */
static unsigned sign_keygen_keys(struct stage_sign *g, const char *domain)
{
	char *dir = xasprintf("%s/dkim", g->cfg->state_dir);
	char *suffix = xasprintf("._domainkey.%s.pem", domain);
	size_t sl = strlen(suffix);
	DIR *d = opendir(dir);
	struct dirent *e;
	unsigned n = 0;

	while (d != NULL && (e = readdir(d)) != NULL) {
		size_t len = strlen(e->d_name);
		if (len <= sl || strcasecmp(e->d_name + len - sl, suffix) != 0 || e->d_name[0] == '.')
			continue;
		char *sel = xstrndup(e->d_name, len - sl);
		char *path = xasprintf("%s/%s", dir, e->d_name);
		n += sign_add(g, path, domain, sel);
		free(path);
		free(sel);
	}
	if (d != NULL)
		closedir(d);
	free(suffix);
	free(dir);
	return n;
}

/* [dkim] keys = DOMAIN:SELECTOR:PEM_PATH, ... */
static unsigned sign_config_keys(struct stage_sign *g, const char *domain)
{
	unsigned n = 0;

	for (size_t i = 0; i < g->cfg->dkim_keys.n; i++) {
		const char *k = g->cfg->dkim_keys.v[i];
		const char *c1 = strchr(k, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
		if (c2 == NULL || (size_t)(c1 - k) != strlen(domain) || strncasecmp(k, domain, c1 - k) != 0)
			continue;
		char *sel = xstrndup(c1 + 1, (size_t)(c2 - c1 - 1));
		n += sign_add(g, c2 + 1, domain, sel);
		free(sel);
	}
	return n;
}

/* The header section is complete: the From: domain's keys, once. */
static void sign_pick(struct stage_sign *g)
{
	g->picked = true;
	g->domain = dkim_signer_from_domain(g->signer);
	if (g->domain != NULL)
		g->nkeys = sign_keygen_keys(g, g->domain) + sign_config_keys(g, g->domain);
}

static void sign_data(struct pipe_stage *st, const char *buf, size_t len)
{
	struct stage_sign *g = (struct stage_sign *)st;

	size_t n = 0;

	if (!g->picked) {
		n = dkim_signer_feed_header(g->signer, buf, len);
		if (dkim_signer_header_done(g->signer))
			sign_pick(g);
	}
	if (g->picked && g->nkeys > 0 && n < len)
		dkim_signer_feed(g->signer, buf + n, len - n);
	pipe_emit(st, buf, len);
}

static void sign_end(struct pipe_stage *st)
{
	struct stage_sign *g = (struct stage_sign *)st;
	char *sig;

	if (!g->picked)   /* the header never ended: no From: domain, unsigned */
		sign_pick(g);
	if (g->nkeys == 0) {
		pipe_stage_accept(st);
		return;
	}
	sig = dkim_signer_finish(g->signer, "\n", now_unix());
	if (sig != NULL) {
		if (pipe_prepend(st, sig, strlen(sig))) {
			/* remote delivery must not re-encode it (8bit -> 7bit) */
			pipeline_env(st->p)->dkim_signed = true;
			log_dkim_signed(pipeline_env(st->p), g->domain, g->nkeys);
		}
		free(sig);
	}
	pipe_stage_accept(st);
}

static void sign_free(struct pipe_stage *st)
{
	struct stage_sign *g = (struct stage_sign *)st;

	dkim_signer_free(g->signer);
	free(g);
}

static const struct pipe_stage_ops sign_ops = {
	.name = "dkim_sign",
	.data = sign_data,
	.end = sign_end,
	.free = sign_free,
};

struct pipe_stage *stage_sign_new(const struct config *cfg)
{
	struct stage_sign *g = xcalloc(1, sizeof(*g));

	g->st.ops = &sign_ops;
	g->cfg = cfg;
	g->signer = dkim_signer_new(NULL, NULL, NULL);
	return &g->st;
}
