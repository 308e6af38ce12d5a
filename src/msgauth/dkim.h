/*
 * dkim.h - DKIM signing and verification (RFC 6376) with rsa-sha256 and
 * ed25519-sha256 (RFC 8463), as RFC 8301 leaves them: rsa-sha1 refused,
 * RSA keys of 1024 bits and more verified, 2048 made.
 *
 * Both sides are fed the message in chunks (LF or CRLF line ends) and
 * never hold more than its header section (up to DKIM_HEADER_MAX): the
 * body goes through the streamed canonicalizer into the hash.  DNS is the
 * caller's: the verifier names the key records it needs and is given
 * their text (or the lookup's failure), results per RFC 8601 2.7.1.
 */
#ifndef TERN_DKIM_H
#define TERN_DKIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "proto/dkim_tags.h"

#define DKIM_HEADER_MAX (256 * 1024)
#define DKIM_VERIFY_MAX 8   /* signatures checked per message */
#define DKIM_CLOCK_SKEW 300 /* seconds a signature's t= may lie ahead */

enum dkim_result {
	DKIM_NONE,
	DKIM_PASS,
	DKIM_FAIL,
	DKIM_NEUTRAL,
	DKIM_POLICY,
	DKIM_TEMPERROR,
	DKIM_PERMERROR,
};

/* "pass", "fail", ... as Authentication-Results writes them. */
const char *dkim_result_name(enum dkim_result r);

/* --- keys --- */

/* A private key from a PEM file: RSA of 1024 bits or more, or Ed25519.
 * NULL with the reason in err otherwise. */
EVP_PKEY *dkim_key_load(const char *path, char *err, size_t errlen);
/* A new key: RSA of bits (>= 2048) or Ed25519. */
EVP_PKEY *dkim_key_generate(bool ed25519, unsigned bits);
/* The key record for the public half: "v=DKIM1; k=rsa; p=..." (xmalloc'd). */
char *dkim_key_record(EVP_PKEY *key);
/* One zone-file line "SEL._domainkey.DOMAIN. IN TXT \"...\" \"...\"" with
 * the record cut into strings of at most 255 octets (RFC 1035 3.3.14),
 * no line end (xmalloc'd). */
char *dkim_zone_line(const char *selector, const char *domain, const char *record);

/* --- signing --- */

struct dkim_signer;

#define DKIM_SIGN_KEYS_MAX 4

/* A signer; key (NULL: none yet) for domain and selector, its own
 * reference taken.  relaxed/relaxed, h= as dkim.c's list says, From
 * oversigned. */
struct dkim_signer *dkim_signer_new(EVP_PKEY *key, const char *domain, const char *selector);
/* One more signature (RSA and Ed25519 side by side), at any time before
 * dkim_signer_finish: the body hash does not depend on the key, so the
 * keys can be chosen by the From domain at the end.  False past
 * DKIM_SIGN_KEYS_MAX. */
bool dkim_signer_add_key(struct dkim_signer *s, EVP_PKEY *key, const char *domain, const char *selector);
void dkim_signer_feed(struct dkim_signer *s, const char *buf, size_t len);
/* Once the header section is complete: the domain of the From address
 * (lower case), or NULL when there is none, several, or one without a
 * domain.  Valid while s is. */
const char *dkim_signer_from_domain(struct dkim_signer *s);
/* True once the header section is complete (its From: domain known). */
bool dkim_signer_header_done(const struct dkim_signer *s);
/* Like dkim_signer_feed, but it stops where the header section ends:
 * returns how many octets it took (all of them until the header is
 * done), so that the caller can pick keys before any body is hashed. */
size_t dkim_signer_feed_header(struct dkim_signer *s, const char *buf, size_t len);
/* The DKIM-Signature fields to put in front of the message, one per key
 * (the first added lowest), lines ended by eol ("\n" or "\r\n"), the
 * last one too (xmalloc'd); t= is now.  NULL when there is no key, the
 * header section was over DKIM_HEADER_MAX or signing failed. */
char *dkim_signer_finish(struct dkim_signer *s, const char *eol, int64_t now);
void dkim_signer_free(struct dkim_signer *s);

/* --- verification --- */

struct dkim_verify;

/*
 * Public keys already decoded, by their p= octets.  OpenSSL's decoder
 * for a SubjectPublicKeyInfo costs a third of a millisecond, several
 * times the RSA verification itself, and most mail comes from a few
 * keys: the same octets always give the same key, so a key seen before
 * is taken from here (DNS and its TTLs still decide which octets apply;
 * only the decoding is saved).  Bounded (DKIM_KEY_CACHE_MAX, the least
 * recently used goes), safe to share between threads.
 */
#define DKIM_KEY_CACHE_MAX 64

struct dkim_key_cache;

struct dkim_key_cache *dkim_key_cache_new(void);
void dkim_key_cache_free(struct dkim_key_cache *c);
/* Hits and decodes so far (for tests). */
void dkim_key_cache_stats(struct dkim_key_cache *c, uint64_t *hits, uint64_t *misses);

struct dkim_verify *dkim_verify_new(void);
/* Decoded keys from and into c (kept by the caller; NULL: none). */
void dkim_verify_set_key_cache(struct dkim_verify *v, struct dkim_key_cache *c);
void dkim_verify_feed(struct dkim_verify *v, const char *buf, size_t len);
/* End of message: the body hashes are complete. */
void dkim_verify_finish(struct dkim_verify *v);
/* DKIM-Signature fields found (at most DKIM_VERIFY_MAX). */
size_t dkim_verify_count(const struct dkim_verify *v);
/* Signature i, or NULL when it could not be parsed (its result is then
 * already permerror). */
const struct dkim_sig *dkim_verify_sig(const struct dkim_verify *v, size_t i);
/* The TXT name holding signature i's key, "s._domainkey.d" (xmalloc'd),
 * or NULL when none is needed (result known). */
char *dkim_verify_key_name(const struct dkim_verify *v, size_t i);
/* The key record's text (TXT strings joined) for signature i: decides it. */
void dkim_verify_key(struct dkim_verify *v, size_t i, const char *rec, size_t len, int64_t now);
/* The lookup failed: temperror (DNS trouble) or permerror (no record). */
void dkim_verify_key_failed(struct dkim_verify *v, size_t i, enum dkim_result r, const char *reason);
enum dkim_result dkim_verify_result(const struct dkim_verify *v, size_t i, const char **reason);
/* The distinct domains of the From: addresses (lower case, at most max,
 * for DMARC, RFC 7489 6.6.1), once the header section is complete;
 * SIZE_MAX when a From field is unreadable or an address lacks a domain. */
size_t dkim_verify_from_domains(struct dkim_verify *v, char (*out)[256], size_t max);
/* The b= value (base64, unfolded) that key gives signature i's header
 * data - what a signer holding key writes into this very field (RSA
 * PKCS#1 v1.5 and Ed25519 are deterministic) - once the header section
 * is complete; xmalloc'd, NULL when signature i was not parsed or the
 * key cannot sign.  For vectors: tern's signing against published
 * signatures (tests/unit/test_dkim_rfc.c). */
char *dkim_verify_sign_as(const struct dkim_verify *v, size_t i, EVP_PKEY *key);
/* The header section was over DKIM_HEADER_MAX: nothing was checked. */
bool dkim_verify_overflow(const struct dkim_verify *v);
void dkim_verify_free(struct dkim_verify *v);

#endif
