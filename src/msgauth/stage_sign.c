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
 *
 * 8-bit mail and hops without 8BITMIME (RFC 6376 5.3, RFC 6152 3): remote
 * delivery downgrades such a message to quoted-printable (proto/mime8),
 * which would break a signature over the 8-bit form.  So a message that
 * mime8 can convert, and that says it is 8-bit (BODY=8BITMIME, RFC 6152
 * 2, or Content-Transfer-Encoding: 8bit), is also signed in its
 * converted form, as the stream passes: a second signer is fed mime8_header() of the header section
 * and the quoted-printable body, the very bytes smtp_stream sends.  When
 * the message did hold 8-bit octets, those signatures are kept in the
 * queue file (queue_env.dkim7) and a hop without 8BITMIME gets them in
 * place of the 8-bit form's: both forms verify.  7-bit mail never needs
 * them, and undeclared mail does not pay for them (the second encoding
 * and hash cost about 1 ms of CPU per 100 KiB message, half as much again
 * as signing it, when measured on a busy 2-core machine); mail that is
 * 8-bit without saying so, or that mime8 cannot convert (multipart, 8-bit
 * header fields), is not sent to such a hop, and bounces with 5.6.3.
 */
#include "msg/pipeline.h"
#include "msgauth/msgauth.h"
#include "core/log.h"
#include "core/util.h"
#include "core/workers.h"
#include "msgauth/dkim.h"
#include "msgauth/dkim_keyring.h"
#include "proto/mime8.h"
#include "proto/smtp_parse.h"
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
	/* the 7-bit form (mime8), signed alongside */
	char *hdr;                   /* the header section, until it ends */
	size_t hdr_len;
	struct dkim_signer *signer7; /* NULL: not convertible */
	struct mime8_qp qp;
	char *qp_buf;
	size_t qp_cap;
	bool eight;                  /* an 8-bit octet in the body */
};

/* The private-key operations (an RSA-2048 signature is a quarter of a
 * millisecond and more) run on a worker thread, not the loop.  The job
 * owns the signer from then on; a stage freed meanwhile (the client
 * went away) only lets go of the job, whose done() then cleans up. */
struct sign_job {
	struct stage_sign *g;        /* NULL: the stage is gone */
	struct dkim_signer *signer;
	struct dkim_signer *signer7; /* or NULL */
	char *sig7;
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
 * message: see dkim_keyring.h), into signer. */
static unsigned sign_add_keys(struct stage_sign *g, struct dkim_signer *signer, const char *domain)
{
	const struct dkim_keyring_key *k[DKIM_SIGN_KEYS_MAX];
	size_t n = dkim_keyring_find(g->keys, domain, k, DKIM_SIGN_KEYS_MAX);
	unsigned added = 0;

	for (size_t i = 0; i < n; i++)
		added += dkim_signer_add_key(signer, k[i]->pkey, k[i]->domain, k[i]->selector);
	return added;
}

/* The header section as smtp_stream would rewrite it for a hop without
 * 8BITMIME: when it can, the second signer starts on that. */
static void sign_start7(struct stage_sign *g)
{
	char *h7 = NULL;
	size_t h7_len = 0, body_off = 0;

	if (g->hdr_len == 0 || g->hdr_len > MIME8_HEADER_MAX ||
	    (pipeline_env(g->st.p)->body != SMTP_BODY_8BITMIME && !mime8_declares_8bit(g->hdr, g->hdr_len)) ||
	    mime8_header(g->hdr, g->hdr_len, &h7, &h7_len, &body_off) != MIME8_OK)
		return;
	if (body_off == g->hdr_len) {
		g->signer7 = dkim_signer_new(NULL, NULL, NULL);
		sign_add_keys(g, g->signer7, g->domain);
		dkim_signer_feed(g->signer7, h7, h7_len);
		mime8_qp_init(&g->qp);
	}
	free(h7);
}

/* The header section is complete: the From: domain's keys, once. */
static void sign_pick(struct stage_sign *g)
{
	g->picked = true;
	g->domain = dkim_signer_from_domain(g->signer);
	if (g->domain != NULL)
		g->nkeys = sign_add_keys(g, g->signer, g->domain);
	if (g->nkeys > 0 && dkim_signer_header_done(g->signer))
		sign_start7(g);
	free(g->hdr);
	g->hdr = NULL;
}

/* Body octets: the 8-bit form's hash, and the 7-bit form's. */
static void sign_body(struct stage_sign *g, const char *buf, size_t len)
{
	dkim_signer_feed(g->signer, buf, len);
	if (g->signer7 == NULL)
		return;
	for (size_t i = 0; i < len && !g->eight; i++)
		g->eight = (unsigned char)buf[i] >= 0x80;
	if (g->qp_cap < MIME8_QP_OUT_MAX(len)) {
		g->qp_cap = MIME8_QP_OUT_MAX(len);
		g->qp_buf = xrealloc(g->qp_buf, g->qp_cap);
	}
	dkim_signer_feed(g->signer7, g->qp_buf, mime8_qp_encode(&g->qp, buf, len, g->qp_buf));
}

static void sign_data(struct pipe_stage *st, const char *buf, size_t len)
{
	struct stage_sign *g = (struct stage_sign *)st;
	size_t n = 0;

	if (!g->picked) {
		n = dkim_signer_feed_header(g->signer, buf, len);
		if (g->hdr_len + n <= MIME8_HEADER_MAX) {
			g->hdr = xrealloc(g->hdr, g->hdr_len + n + 1);
			memcpy(g->hdr + g->hdr_len, buf, n);
		}
		g->hdr_len += n;   /* past the bound: counted, not kept */
		if (dkim_signer_header_done(g->signer))
			sign_pick(g);
	}
	if (g->picked && g->nkeys > 0 && n < len)
		sign_body(g, buf + n, len - n);
	pipe_emit(st, buf, len);
}

/* Worker thread: touches the job's own signer only. */
static void sign_job_work(void *arg)
{
	struct sign_job *j = arg;

	j->sig = dkim_signer_finish(j->signer, "\n", j->now);
	if (j->sig != NULL && j->signer7 != NULL)
		j->sig7 = dkim_signer_finish(j->signer7, "\n", j->now);
}

static void sign_verdict(struct stage_sign *g, struct sign_job *j)
{
	struct pipe_stage *st = &g->st;

	if (j->sig != NULL && pipe_prepend(st, j->sig, strlen(j->sig))) {
		struct queue_env *env = pipeline_env(st->p);
		/* remote delivery must not re-encode it (8bit -> 7bit) but
		 * for the form these other signatures are over */
		env->dkim_signed = true;
		if (j->sig7 != NULL) {
			env->dkim8_len = strlen(j->sig);
			free(env->dkim7);
			env->dkim7 = j->sig7;
			j->sig7 = NULL;
		}
		log_dkim_signed(env, j->domain, j->nkeys);
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
	free(j->sig7);
	dkim_signer_free(j->signer);
	dkim_signer_free(j->signer7);
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
	if (g->signer7 != NULL) {
		char q[MIME8_QP_FINISH_MAX];
		dkim_signer_feed(g->signer7, q, mime8_qp_finish(&g->qp, q));
		if (g->eight)   /* 7-bit mail is sent as it is: no second form */
			g->job->signer7 = g->signer7;
		else
			dkim_signer_free(g->signer7);
		g->signer7 = NULL;
	}
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
	dkim_signer_free(g->signer7);
	free(g->hdr);
	free(g->qp_buf);
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
