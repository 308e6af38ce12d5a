/*
 * msgauth.h - the sender-authentication stages of the message pipeline
 * (see msg/pipeline.h): DKIM signing for submitted and trusted mail, and
 * SPF, DKIM and DMARC checks with Authentication-Results (RFC 8601) for
 * mail arriving on the MX service.
 */
#ifndef TERN_MSGAUTH_H
#define TERN_MSGAUTH_H

struct pipe_stage;
struct config;
struct dkim_keyring;
struct workers;
struct tern;
struct queue_env;

/* Signs with the keys of the From: domain (keygen files, [dkim] keys),
 * looked up in keys when the message ends; the signatures are made on a
 * thread of pool, off the loop. */
struct pipe_stage *stage_sign_new(const struct dkim_keyring *keys, struct workers *pool);

/* [checks] on the MX service: SPF (started now, while the message is
 * read), DKIM, DMARC; one Authentication-Results field in front, any
 * arriving one claiming our authserv-id removed; an enforced DMARC
 * reject refuses with 550 5.7.1. */
struct pipe_stage *stage_verify_new(struct tern *t, const struct queue_env *env);

#endif
