/*
 * stage_sign.c - DKIM signing (RFC 6376 5) of submitted mail and mail
 * from trusted networks, a check stage after the header work, so that the
 * MSA's Date: and Message-ID: are signed.  The body hash is computed as
 * the message streams past (dkim_signer_feed); the keys are picked at the
 * end by the From: domain in the server's keyring (dkim_keyring.h: the
 * keys of `tern dkim keygen` and [dkim] keys, loaded once, not per message).
 * The DKIM-Signature fields go in front of the message; a message whose
 * From: domain has no key passes unsigned, and its body is not hashed at
 * all: the keys are looked up as soon as the header section is complete
 * (trusted networks send much mail that is not theirs to sign: the hash
 * of a 100 KiB body cost a sixth of the CPU of its delivery).
 */
#include "msg/pipeline.h"
#include "msgauth/msgauth.h"
#include "core/log.h"
#include "core/util.h"
#include "core/workers.h"
#include "msgauth/dkim.h"
#include "msgauth/dkim_keyring.h"
#include "store/queue.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct sign_job;

struct stage_sign {
	struct pipe_stage st;
	struct dkim_signer *signer;
	const struct dkim_keyring *keys;
	struct workers *pool;
	struct sign_job *job;        /* signing on a worker thread */
	bool picked;                 /* the keys were looked up (header complete) */
	unsigned nkeys;              /* how many the From: domain has */
	const char *domain;          /* that domain (the signer's), or NULL */
};

/* The private-key operations (an RSA-2048 signature is a quarter of a
 * millisecond and more) run on a worker thread, not the loop.  The job
 * owns the signer from then on; a stage freed meanwhile (the client
 * went away) only lets go of the job, whose done() then cleans up. */
struct sign_job {
	struct stage_sign *g;        /* NULL: the stage is gone */
	struct dkim_signer *signer;
	char domain[256];
	unsigned nkeys;
	int64_t now;
	char *sig;
};

static void log_dkim_signed(const struct queue_env *env, const char *domain, unsigned nkeys)
{
	log_event("event=dkim_signed queue=%s domain=%s keys=%u", env->id, domain, nkeys);
}

/* The keys of the From: domain, from the keyring (loaded once, not per
 * message: see dkim_keyring.h). */
static unsigned sign_add_keys(struct stage_sign *g, const char *domain)
{
	const struct dkim_keyring_key *k[DKIM_SIGN_KEYS_MAX];
	size_t n = dkim_keyring_find(g->keys, domain, k, DKIM_SIGN_KEYS_MAX);
	unsigned added = 0;

	for (size_t i = 0; i < n; i++)
		added += dkim_signer_add_key(g->signer, k[i]->pkey, k[i]->domain, k[i]->selector);
	return added;
}

/* The header section is complete: the From: domain's keys, once. */
static void sign_pick(struct stage_sign *g)
{
	g->picked = true;
	g->domain = dkim_signer_from_domain(g->signer);
	if (g->domain != NULL)
		g->nkeys = sign_add_keys(g, g->domain);
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

/* Worker thread: touches the job's own signer only. */
static void sign_job_work(void *arg)
{
	struct sign_job *j = arg;

	j->sig = dkim_signer_finish(j->signer, "\n", j->now);
}

static void sign_verdict(struct stage_sign *g, struct sign_job *j)
{
	struct pipe_stage *st = &g->st;

	if (j->sig != NULL && pipe_prepend(st, j->sig, strlen(j->sig))) {
		/* remote delivery must not re-encode it (8bit -> 7bit) */
		pipeline_env(st->p)->dkim_signed = true;
		log_dkim_signed(pipeline_env(st->p), j->domain, j->nkeys);
	}
	pipe_stage_accept(st);
}

/* Loop thread, once the signature is made. */
static void sign_job_done(void *arg)
{
	struct sign_job *j = arg;

	if (j->g != NULL) {
		j->g->job = NULL;
		sign_verdict(j->g, j);
	}
	free(j->sig);
	dkim_signer_free(j->signer);
	free(j);
}

static void sign_end(struct pipe_stage *st)
{
	struct stage_sign *g = (struct stage_sign *)st;

	if (!g->picked)   /* the header never ended: no From: domain, unsigned */
		sign_pick(g);
	if (g->domain == NULL || g->nkeys == 0) {
		pipe_stage_accept(st);
		return;
	}
	g->job = xcalloc(1, sizeof(*g->job));
	g->job->g = g;
	g->job->signer = g->signer;
	g->job->nkeys = g->nkeys;
	g->job->now = now_unix();
	snprintf(g->job->domain, sizeof(g->job->domain), "%s", g->domain);
	g->signer = NULL;
	workers_submit(g->pool, sign_job_work, sign_job_done, g->job);
}

static void sign_free(struct pipe_stage *st)
{
	struct stage_sign *g = (struct stage_sign *)st;

	if (g->job != NULL)
		g->job->g = NULL;   /* the job frees itself when it is done */
	dkim_signer_free(g->signer);
	free(g);
}

static const struct pipe_stage_ops sign_ops = {
	.name = "dkim_sign",
	.prepends = true,
	.data = sign_data,
	.end = sign_end,
	.free = sign_free,
};

struct pipe_stage *stage_sign_new(const struct dkim_keyring *keys, struct workers *pool)
{
	struct stage_sign *g = xcalloc(1, sizeof(*g));

	g->st.ops = &sign_ops;
	g->keys = keys;
	g->pool = pool;
	g->signer = dkim_signer_new(NULL, NULL, NULL);
	return &g->st;
}
