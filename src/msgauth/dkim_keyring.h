/*
 * dkim_keyring.h - the DKIM signing keys of a running server, loaded
 * once: at start, on SIGHUP, and when the key files change (a stat of
 * state_dir/dkim/ and of each key file, at most every
 * DKIM_KEYRING_CHECK_MS), never per message.  The keys are the files of
 * `tern dkim keygen` (state_dir/dkim/SELECTOR._domainkey.DOMAIN.pem) and
 * the [dkim] keys entries (DOMAIN:SELECTOR:PEM_PATH).
 *
 * Everything runs on the loop thread: the signing stage looks keys up
 * and takes its own references (dkim_signer_add_key) in one call, so a
 * reload between two messages never pulls a key from under a signer.
 */
#ifndef TERN_DKIM_KEYRING_H
#define TERN_DKIM_KEYRING_H

#include <stddef.h>

#include "msgauth/dkim.h"

#define DKIM_KEYRING_CHECK_MS 2000

struct event_base;
struct config;
struct dkim_keyring;

struct dkim_keyring_key {
	char *domain;    /* lower case */
	char *selector;
	char *path;
	EVP_PKEY *pkey;
};

/* Loads the keys now and watches them from base (NULL base: no watch,
 * for tests and one-shot tools). */
struct dkim_keyring *dkim_keyring_new(struct event_base *base, const struct config *cfg);
/* Loads every key again (why goes into the log: "sighup", ...). */
void dkim_keyring_reload(struct dkim_keyring *r, const char *why);
/* The key files changed since the last load?  (The watch's check.) */
bool dkim_keyring_changed(struct dkim_keyring *r);
size_t dkim_keyring_count(const struct dkim_keyring *r);
/* The keys of domain (case-insensitive), at most max, into out; valid
 * until the next reload. */
size_t dkim_keyring_find(const struct dkim_keyring *r, const char *domain, const struct dkim_keyring_key **out,
			 size_t max);
void dkim_keyring_free(struct dkim_keyring *r);

#endif
