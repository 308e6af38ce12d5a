/*
 * dkim_tags.h - DKIM tag lists (RFC 6376 3.2) and the two records written
 * in them: the DKIM-Signature field (3.5) and the key record published in
 * DNS (3.6.1), with RFC 8463 (ed25519) and RFC 8301 (no rsa-sha1).
 * Pure: text in, a parsed struct or an error code out.  Values point into
 * the caller's text, except the decoded b= and bh= octets.
 */
#ifndef TERN_DKIM_TAGS_H
#define TERN_DKIM_TAGS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DKIM_TAGS_MAX 32
#define DKIM_H_MAX 64          /* header field names in h= */
#define DKIM_SIG_OCTETS_MAX 1024 /* b=: 8192-bit RSA */

struct dkim_span {
	const char *p;
	size_t len;
};

struct dkim_tag {
	struct dkim_span name, value; /* value without surrounding FWS */
};

struct dkim_taglist {
	struct dkim_tag v[DKIM_TAGS_MAX];
	size_t n;
};

enum dkim_tags_err {
	DKIM_TAGS_OK = 0,
	DKIM_TAGS_SYNTAX,    /* not a tag-list */
	DKIM_TAGS_DUPLICATE, /* a tag twice (3.2: permerror) */
	DKIM_TAGS_TOO_MANY,
};

/* Parse a tag-list; tags with empty values are kept (p= on a revoked key). */
enum dkim_tags_err dkim_tags_parse(const char *in, size_t len, struct dkim_taglist *out);
/* The tag named name (case-sensitive, 3.2), or NULL. */
const struct dkim_tag *dkim_tags_get(const struct dkim_taglist *tl, const char *name);

enum dkim_alg { DKIM_ALG_RSA_SHA256, DKIM_ALG_ED25519_SHA256 };
enum dkim_canon { DKIM_CANON_SIMPLE, DKIM_CANON_RELAXED };

struct dkim_sig {
	enum dkim_alg alg;
	enum dkim_canon hcanon, bcanon;
	unsigned char b[DKIM_SIG_OCTETS_MAX];
	size_t b_len;
	unsigned char bh[64];
	size_t bh_len;
	struct dkim_span b_value; /* the raw b= value, emptied for the hash */
	struct dkim_span d, s, i; /* i: empty when absent */
	struct dkim_span h[DKIM_H_MAX];
	size_t h_n;
	bool has_l, has_t, has_x;
	uint64_t l;
	int64_t t, x;
};

/* Why a signature cannot be used; the text is for Authentication-Results. */
struct dkim_parse_err {
	const char *reason;
};

/* Parse the value of a DKIM-Signature field (everything after the colon).
 * False with err->reason set when it is unusable (a permerror). */
bool dkim_sig_parse(const char *value, size_t len, struct dkim_sig *sig, struct dkim_parse_err *err);

enum dkim_key_type { DKIM_KEY_RSA, DKIM_KEY_ED25519 };

struct dkim_key {
	enum dkim_key_type type;
	struct dkim_span p;   /* base64, FWS possibly inside; empty: revoked */
	bool testing;         /* t=y */
	bool strict_i;        /* t=s: i= domain must equal d= */
};

/* Parse a key record (the TXT strings joined).  False with err->reason
 * when it is unusable. */
bool dkim_key_parse(const char *rec, size_t len, struct dkim_key *key, struct dkim_parse_err *err);

/* Decode base64 that may have FWS inside (3.5 b=, bh=, 3.6.1 p=) into
 * out (cap octets).  False if invalid or too long. */
bool dkim_base64_decode(const char *in, size_t len, unsigned char *out, size_t cap, size_t *out_len);

/* True when a and b are the same text, ASCII case-insensitive. */
bool dkim_span_ieq(struct dkim_span a, const char *b, size_t blen);

#endif
