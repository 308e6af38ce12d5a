/*
 * stage_sign.c - DKIM signing (RFC 6376 5) of submitted mail and mail
 * from trusted networks, a check stage after the header work, so that the
 * MSA's Date: and Message-ID: are signed.  The body hash is computed as
 * the message streams past (dkim_signer_feed); the keys are picked at the
 * end by the From: domain in the server's keyring (dkim_keyring.h: the
 * keys of `tern dkim keygen` and [dkim] keys, loaded once, not per message).
 * The DKIM-Signature fields go in front of the message; a message whose
 * From: domain has no key passes unsigned.
 */
#include "msg/pipeline.h"
#include "msgauth/msgauth.h"
#include "core/log.h"
#include "core/util.h"
#include "msgauth/dkim.h"
#include "msgauth/dkim_keyring.h"
#include "store/queue.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct stage_sign {
	struct pipe_stage st;
	struct dkim_signer *signer;
	const struct dkim_keyring *keys;
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

static void sign_data(struct pipe_stage *st, const char *buf, size_t len)
{
	struct stage_sign *g = (struct stage_sign *)st;

	dkim_signer_feed(g->signer, buf, len);
	pipe_emit(st, buf, len);
}

static void sign_end(struct pipe_stage *st)
{
	struct stage_sign *g = (struct stage_sign *)st;
	const char *domain = dkim_signer_from_domain(g->signer);
	unsigned n;
	char *sig;

	if (domain == NULL) {
		pipe_stage_accept(st);
		return;
	}
	n = sign_add_keys(g, domain);
	if (n == 0) {
		pipe_stage_accept(st);
		return;
	}
	sig = dkim_signer_finish(g->signer, "\n", now_unix());
	if (sig != NULL) {
		if (pipe_prepend(st, sig, strlen(sig))) {
			/* remote delivery must not re-encode it (8bit -> 7bit) */
			pipeline_env(st->p)->dkim_signed = true;
			log_dkim_signed(pipeline_env(st->p), domain, n);
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

struct pipe_stage *stage_sign_new(const struct dkim_keyring *keys)
{
	struct stage_sign *g = xcalloc(1, sizeof(*g));

	g->st.ops = &sign_ops;
	g->keys = keys;
	g->signer = dkim_signer_new(NULL, NULL, NULL);
	return &g->st;
}
