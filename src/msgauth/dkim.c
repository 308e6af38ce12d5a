/*
 * dkim.c - DKIM signing and verification (RFC 6376 5 and 6, RFC 8463,
 * RFC 8301) on OpenSSL EVP.  The header section is collected and split
 * into fields; the body streams through dkim_canon into SHA-256.
 */
#include "msgauth/dkim.h"

#include "core/util.h"
#include "proto/base64.h"
#include "proto/addrlist.h"
#include "proto/dkim_canon.h"

#include <openssl/core_names.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *dkim_result_name(enum dkim_result r)
{
	static const char *const names[] = {
		[DKIM_NONE] = "none",         [DKIM_PASS] = "pass",       [DKIM_FAIL] = "fail",
		[DKIM_NEUTRAL] = "neutral",   [DKIM_POLICY] = "policy",   [DKIM_TEMPERROR] = "temperror",
		[DKIM_PERMERROR] = "permerror",
	};
	return names[r];
}

/* --- the header section ------------------------------------------------ */

#define FIELDS_MAX 1000

struct field {
	size_t off, len; /* in hdr.buf, without the line end */
	size_t name_len;
};

struct hdr {
	char *buf;
	size_t len, cap, line_start, line_len;
	bool done, overflow, line_cr;
	struct field *f;
	size_t nf;
};

static void hdr_append(struct hdr *h, char c)
{
	if (h->len == h->cap) {
		h->cap = h->cap ? h->cap * 2 : 4096;
		h->buf = xrealloc(h->buf, h->cap);
	}
	h->buf[h->len++] = c;
}

static void hdr_add_field(struct hdr *h, size_t off, size_t end)
{
	struct field *f;
	const char *colon;

	while (end > off && (h->buf[end - 1] == '\n' || h->buf[end - 1] == '\r'))
		end--;
	if (end == off || h->nf == FIELDS_MAX)
		return;
	colon = memchr(h->buf + off, ':', end - off);
	if (!colon)
		return; /* not a field: nothing can select it */
	f = &h->f[h->nf++];
	f->off = off;
	f->len = end - off;
	f->name_len = (size_t)(colon - (h->buf + off));
	while (f->name_len > 0 && (h->buf[off + f->name_len - 1] == ' ' || h->buf[off + f->name_len - 1] == '\t'))
		f->name_len--;
}

/* Split the collected section into fields: a line that starts with WSP
 * continues the field before it (RFC 5322 2.2.3). */
static void hdr_split(struct hdr *h)
{
	size_t start = 0, i = 0;

	if (h->f)
		return; /* done already */
	h->f = xcalloc(FIELDS_MAX, sizeof *h->f);
	while (i < h->len) {
		const char *nl = memchr(h->buf + i, '\n', h->len - i);
		size_t next = nl ? (size_t)(nl - h->buf) + 1 : h->len;
		if (i > start && h->buf[i] != ' ' && h->buf[i] != '\t') {
			hdr_add_field(h, start, i);
			start = i;
		}
		i = next;
	}
	if (h->len > start)
		hdr_add_field(h, start, h->len);
}

/* Header octets until the empty line; returns how much of buf was header
 * (the rest is body).  Past DKIM_HEADER_MAX it stops collecting. */
static size_t hdr_feed(struct hdr *h, const char *buf, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		char c = buf[i];
		if (c == '\n') {
			if (h->line_len == 0 || (h->line_len == 1 && h->line_cr)) {
				if (!h->overflow)
					h->len = h->line_start; /* the empty line is not header */
				h->done = true;
				return i + 1;
			}
			h->line_len = 0;
		} else {
			h->line_cr = h->line_len == 0 && c == '\r';
			h->line_len++;
		}
		if (h->len == DKIM_HEADER_MAX) {
			h->overflow = true;
			continue;
		}
		hdr_append(h, c);
		if (c == '\n')
			h->line_start = h->len;
	}
	return len;
}

static bool field_is(const struct hdr *h, const struct field *f, const char *name, size_t len)
{
	return f->name_len == len && ascii_ieq(h->buf + f->off, name, len);
}

static void hdr_free(struct hdr *h)
{
	free(h->buf);
	free(h->f);
}

struct from_collect {
	char (*out)[256];
	size_t max, n, total;
	bool bad;      /* an address without a domain */
};

static void from_addr_cb(const char *addr, void *arg)
{
	struct from_collect *c = arg;
	const char *at = strrchr(addr, '@');

	c->total++;
	if (!at || !at[1]) {
		c->bad = true;
		return;
	}
	if (c->n == c->max)
		return;
	snprintf(c->out[c->n], sizeof c->out[0], "%s", at + 1);
	for (char *p = c->out[c->n]; *p; p++)
		*p = ascii_lower(*p);
	for (size_t k = 0; k < c->n; k++)
		if (!strcmp(c->out[k], c->out[c->n]))
			return; /* the same domain again */
	c->n++;
}

/* The distinct domains of the From: addresses, every From field; SIZE_MAX
 * when a From field cannot be parsed or an address has no domain. */
static size_t hdr_from_domains(struct hdr *h, char (*out)[256], size_t max)
{
	struct from_collect c = { out, max, 0, 0, false };

	hdr_split(h);
	for (size_t j = 0; j < h->nf; j++) {
		const struct field *f = &h->f[j];
		size_t voff = f->name_len + 1, before = c.total;
		int n;
		if (!field_is(h, f, "from", 4))
			continue;
		while (voff < f->len && h->buf[f->off + voff - 1] != ':')
			voff++;
		n = addrlist_parse(h->buf + f->off + voff, f->len - voff, from_addr_cb, &c);
		if (n <= 0 || c.total == before || c.bad)
			return SIZE_MAX;
	}
	return c.n;
}

/* --- hashing ----------------------------------------------------------- */

static void md_emit(void *arg, const char *buf, size_t len)
{
	EVP_DigestUpdate(arg, buf, len);
}

static EVP_MD_CTX *sha256_new(void)
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();

	if (!ctx || !EVP_DigestInit_ex(ctx, EVP_sha256(), NULL))
		abort();
	return ctx;
}

/* The fields h= names, in its order, each name taking the last instance
 * not yet taken (RFC 6376 5.4.2); names with no instance left add
 * nothing. */
static void hash_selected(const struct hdr *h, const struct dkim_span *names, size_t n, enum dkim_canon c,
			  EVP_MD_CTX *md)
{
	bool *used = xcalloc(h->nf + 1, sizeof *used);

	for (size_t k = 0; k < n; k++) {
		for (size_t j = h->nf; j-- > 0;) {
			const struct field *f = &h->f[j];
			if (used[j] || !field_is(h, f, names[k].p, names[k].len))
				continue;
			used[j] = true;
			dkim_canon_header(c, h->buf + f->off, f->len, true, md_emit, md);
			break;
		}
	}
	free(used);
}

/* Ed25519 signs the SHA-256 of the header data (RFC 8463 3); RSA signs
 * it with PKCS#1 v1.5 and the SHA-256 DigestInfo (RFC 6376 3.3.1). */
static bool pkey_sign(EVP_PKEY *key, const unsigned char *digest, unsigned char *sig, size_t *siglen)
{
	bool ok = false;

	if (EVP_PKEY_get_base_id(key) == EVP_PKEY_ED25519) {
		EVP_MD_CTX *ctx = EVP_MD_CTX_new();
		ok = ctx && EVP_DigestSignInit(ctx, NULL, NULL, NULL, key) == 1 &&
		     EVP_DigestSign(ctx, sig, siglen, digest, 32) == 1;
		EVP_MD_CTX_free(ctx);
	} else {
		EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new(key, NULL);
		ok = ctx && EVP_PKEY_sign_init(ctx) == 1 && EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PADDING) == 1 &&
		     EVP_PKEY_CTX_set_signature_md(ctx, EVP_sha256()) == 1 &&
		     EVP_PKEY_sign(ctx, sig, siglen, digest, 32) == 1;
		EVP_PKEY_CTX_free(ctx);
	}
	return ok;
}

static bool pkey_verify(EVP_PKEY *key, const unsigned char *digest, const unsigned char *sig, size_t siglen)
{
	bool ok = false;

	if (EVP_PKEY_get_base_id(key) == EVP_PKEY_ED25519) {
		EVP_MD_CTX *ctx = EVP_MD_CTX_new();
		ok = ctx && EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, key) == 1 &&
		     EVP_DigestVerify(ctx, sig, siglen, digest, 32) == 1;
		EVP_MD_CTX_free(ctx);
	} else {
		EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new(key, NULL);
		ok = ctx && EVP_PKEY_verify_init(ctx) == 1 &&
		     EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PADDING) == 1 &&
		     EVP_PKEY_CTX_set_signature_md(ctx, EVP_sha256()) == 1 &&
		     EVP_PKEY_verify(ctx, sig, siglen, digest, 32) == 1;
		EVP_PKEY_CTX_free(ctx);
	}
	return ok;
}

/* --- keys -------------------------------------------------------------- */

EVP_PKEY *dkim_key_load(const char *path, char *err, size_t errlen)
{
	FILE *f = fopen(path, "r");
	EVP_PKEY *key;

	if (!f) {
		snprintf(err, errlen, "cannot open %s: %m", path);
		return NULL;
	}
	key = PEM_read_PrivateKey(f, NULL, NULL, NULL);
	fclose(f);
	if (!key) {
		snprintf(err, errlen, "%s: not a PEM private key", path);
		return NULL;
	}
	if (EVP_PKEY_get_base_id(key) == EVP_PKEY_ED25519)
		return key;
	if (EVP_PKEY_get_base_id(key) == EVP_PKEY_RSA && EVP_PKEY_get_bits(key) >= 1024)
		return key;
	snprintf(err, errlen, "%s: neither an Ed25519 key nor an RSA key of 1024 bits or more", path);
	EVP_PKEY_free(key);
	return NULL;
}

EVP_PKEY *dkim_key_generate(bool ed25519, unsigned bits)
{
	EVP_PKEY *key = NULL;

	if (ed25519)
		key = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	else if (bits >= 2048)
		key = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)bits);
	return key;
}

char *dkim_key_record(EVP_PKEY *key)
{
	unsigned char *der = NULL, raw[32];
	size_t len = sizeof raw;
	char *b64, *rec;
	int n;

	if (EVP_PKEY_get_base_id(key) == EVP_PKEY_ED25519) {
		/* RFC 8463 4.2: the raw 32-octet public key. */
		if (EVP_PKEY_get_raw_public_key(key, raw, &len) != 1)
			return NULL;
		b64 = base64_encode_alloc(raw, len);
		rec = xasprintf("v=DKIM1; k=ed25519; p=%s", b64);
	} else {
		/* RFC 6376 3.6.1: the DER SubjectPublicKeyInfo. */
		if ((n = i2d_PUBKEY(key, &der)) <= 0)
			return NULL;
		b64 = base64_encode_alloc(der, (size_t)n);
		OPENSSL_free(der);
		rec = xasprintf("v=DKIM1; k=rsa; p=%s", b64);
	}
	free(b64);
	return rec;
}

char *dkim_zone_line(const char *selector, const char *domain, const char *record)
{
	size_t rlen = strlen(record), dlen = strlen(domain);
	char *head = xasprintf("%s._domainkey.%.*s. IN TXT", selector,
			       (int)(dlen && domain[dlen - 1] == '.' ? dlen - 1 : dlen), domain);
	size_t cap = strlen(head) + rlen + 4 * (rlen / 255 + 1) + 1, n;
	char *line = xmalloc(cap);

	n = (size_t)snprintf(line, cap, "%s", head);
	free(head);
	/* The record has no '"' or '\\' (base64 and tag syntax), so the
	 * strings need no escapes. */
	for (size_t off = 0; off < rlen || off == 0; off += 255) {
		size_t chunk = rlen - off < 255 ? rlen - off : 255;
		n += (size_t)snprintf(line + n, cap - n, " \"%.*s\"", (int)chunk, record + off);
		if (rlen == 0)
			break;
	}
	return line;
}

/* --- signing ----------------------------------------------------------- */

/* RFC 6376 5.4.1's recommendation, cut to the fields a change of which
 * changes what the reader sees or replies to. */
static const char *const sign_fields[] = {
	"from", "to", "cc", "subject", "date", "message-id", "mime-version", "content-type",
	"reply-to", "in-reply-to", "references",
};

struct sign_key {
	EVP_PKEY *key;
	char *domain, *selector;
};

struct dkim_signer {
	struct sign_key keys[DKIM_SIGN_KEYS_MAX];
	size_t nkeys;
	struct hdr h;
	EVP_MD_CTX *bh;
	struct dkim_body body;
	char from[2][256];  /* two: to tell one domain from several */
};

struct dkim_signer *dkim_signer_new(EVP_PKEY *key, const char *domain, const char *selector)
{
	struct dkim_signer *s = xcalloc(1, sizeof *s);

	s->bh = sha256_new();
	/* relaxed for every signature: one body hash serves them all, so
	 * keys can be added once the header section says whose mail it is */
	dkim_body_init(&s->body, DKIM_CANON_RELAXED, false, 0, md_emit, s->bh);
	if (key)
		dkim_signer_add_key(s, key, domain, selector);
	return s;
}

bool dkim_signer_add_key(struct dkim_signer *s, EVP_PKEY *key, const char *domain, const char *selector)
{
	struct sign_key *k;

	if (s->nkeys == DKIM_SIGN_KEYS_MAX)
		return false;
	k = &s->keys[s->nkeys++];
	EVP_PKEY_up_ref(key);
	k->key = key;
	k->domain = xstrdup(domain);
	k->selector = xstrdup(selector);
	return true;
}

const char *dkim_signer_from_domain(struct dkim_signer *s)
{
	if (!s->h.done || s->h.overflow || hdr_from_domains(&s->h, s->from, 2) != 1)
		return NULL;
	return s->from[0];
}

bool dkim_signer_header_done(const struct dkim_signer *s)
{
	return s->h.done;
}

size_t dkim_signer_feed_header(struct dkim_signer *s, const char *buf, size_t len)
{
	return s->h.done ? 0 : hdr_feed(&s->h, buf, len);
}

void dkim_signer_feed(struct dkim_signer *s, const char *buf, size_t len)
{
	size_t n = 0;

	if (!s->h.done)
		n = hdr_feed(&s->h, buf, len);
	if (s->h.done && n < len)
		dkim_body_feed(&s->body, buf + n, len - n);
}

/* h=: every instance of each listed field present, From once more so
 * that no From can be added (RFC 6376 8.15). */
static char *sign_h_list(const struct hdr *h, struct dkim_span *names, size_t *n)
{
	size_t cap = 1024, len = 0, line = 0;
	char *out = xmalloc(cap);

	*n = 0;
	for (size_t k = 0; k < ARRAY_LEN(sign_fields); k++) {
		size_t nl = strlen(sign_fields[k]), count = 0;
		for (size_t j = 0; j < h->nf; j++)
			count += field_is(h, &h->f[j], sign_fields[k], nl);
		if (k == 0)
			count++;
		for (; count > 0 && *n < DKIM_H_MAX; count--) {
			names[(*n)++] = (struct dkim_span){ sign_fields[k], nl };
			if (len + nl + 4 > cap)
				out = xrealloc(out, cap *= 2);
			if (len > 0) {
				out[len++] = ':';
				if (line > 60) {
					memcpy(out + len, "\r\n\t", 3);
					len += 3;
					line = 0;
				}
			}
			memcpy(out + len, sign_fields[k], nl);
			len += nl;
			line += nl + 1;
		}
	}
	out[len] = '\0';
	return out;
}

/* Fold a base64 value every 72 octets (CRLF TAB, FWS inside b=). */
static char *fold_b64(const char *b64)
{
	size_t len = strlen(b64), n = 0;
	char *out = xmalloc(len + 3 * (len / 72 + 1) + 1);

	for (size_t i = 0; i < len; i += 72) {
		size_t chunk = len - i < 72 ? len - i : 72;
		if (i > 0) {
			memcpy(out + n, "\r\n\t", 3);
			n += 3;
		}
		memcpy(out + n, b64 + i, chunk);
		n += chunk;
	}
	out[n] = '\0';
	return out;
}

/* CRLF -> eol. */
static char *with_eol(const char *s, const char *eol)
{
	size_t len = strlen(s), el = strlen(eol), n = 0;
	char *out = xmalloc(len * el + el + 1);

	for (size_t i = 0; i < len; i++) {
		if (s[i] == '\r' && s[i + 1] == '\n') {
			memcpy(out + n, eol, el);
			n += el;
			i++;
		} else {
			out[n++] = s[i];
		}
	}
	memcpy(out + n, eol, el);
	out[n + el] = '\0';
	return out;
}

/* One DKIM-Signature field (CRLF line ends, no final CRLF) for key k. */
static char *sign_one(struct dkim_signer *s, const struct sign_key *k, const char *bh64, int64_t now)
{
	struct dkim_span names[DKIM_H_MAX];
	unsigned char digest[32], sig[1024];
	size_t nn, siglen = sizeof sig;
	bool ed = EVP_PKEY_get_base_id(k->key) == EVP_PKEY_ED25519;
	char *hlist, *field, *b64, *folded, *full;
	EVP_MD_CTX *md;

	hlist = sign_h_list(&s->h, names, &nn);
	field = xasprintf("DKIM-Signature: v=1; a=%s; c=relaxed/relaxed;\r\n\td=%s; s=%s; t=%lld;\r\n\t"
			  "h=%s;\r\n\tbh=%s;\r\n\tb=",
			  ed ? "ed25519-sha256" : "rsa-sha256", k->domain, k->selector, (long long)now, hlist, bh64);
	free(hlist);
	md = sha256_new();
	hash_selected(&s->h, names, nn, DKIM_CANON_RELAXED, md);
	dkim_canon_header(DKIM_CANON_RELAXED, field, strlen(field), false, md_emit, md);
	EVP_DigestFinal_ex(md, digest, NULL);
	EVP_MD_CTX_free(md);
	if (EVP_PKEY_get_size(k->key) > (int)sizeof sig || !pkey_sign(k->key, digest, sig, &siglen)) {
		free(field);
		return NULL;
	}
	b64 = base64_encode_alloc(sig, siglen);
	folded = fold_b64(b64);
	full = xasprintf("%s%s", field, folded);
	free(b64);
	free(folded);
	free(field);
	return full;
}

char *dkim_signer_finish(struct dkim_signer *s, const char *eol, int64_t now)
{
	unsigned char bh[32];
	char *bh64, *out = xstrdup("");

	dkim_body_finish(&s->body);
	if (s->h.overflow || s->nkeys == 0) {
		free(out);
		return NULL;
	}
	hdr_split(&s->h);
	EVP_DigestFinal_ex(s->bh, bh, NULL);
	bh64 = base64_encode_alloc(bh, sizeof bh);
	/* the last key's field goes on top: the first added is the
	 * outermost-but-one, as if each had been added in turn */
	for (size_t i = 0; i < s->nkeys; i++) {
		char *one = sign_one(s, &s->keys[i], bh64, now), *lines, *joined;
		if (!one) {
			free(out);
			free(bh64);
			return NULL;
		}
		lines = with_eol(one, eol);
		joined = xasprintf("%s%s", lines, out);
		free(one);
		free(lines);
		free(out);
		out = joined;
	}
	free(bh64);
	return out;
}

void dkim_signer_free(struct dkim_signer *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->nkeys; i++) {
		EVP_PKEY_free(s->keys[i].key);
		free(s->keys[i].domain);
		free(s->keys[i].selector);
	}
	EVP_MD_CTX_free(s->bh);
	hdr_free(&s->h);
	free(s);
}

/* --- verification ------------------------------------------------------ */

struct vsig {
	size_t field;         /* index in hdr.f */
	bool parsed;
	struct dkim_sig sig;
	EVP_MD_CTX *bh;
	struct dkim_body body;
	enum dkim_result result;
	const char *reason;
};

struct dkim_verify {
	struct hdr h;
	bool started;         /* header done and signatures set up */
	struct vsig s[DKIM_VERIFY_MAX];
	size_t n;
	struct dkim_key_cache *keys;   /* or NULL */
};

/* --- decoded public keys (see dkim.h) --- */

struct key_cache_entry {
	unsigned char *der;   /* p= decoded; NULL: a free slot */
	size_t len;
	bool ed25519;
	EVP_PKEY *pk;
	uint64_t used;        /* tick of the last hit */
};

struct dkim_key_cache {
	pthread_mutex_t mu;
	struct key_cache_entry e[DKIM_KEY_CACHE_MAX];
	uint64_t tick, hits, misses;
};

struct dkim_key_cache *dkim_key_cache_new(void)
{
	struct dkim_key_cache *c = xcalloc(1, sizeof(*c));

	pthread_mutex_init(&c->mu, NULL);
	return c;
}

void dkim_key_cache_free(struct dkim_key_cache *c)
{
	if (c == NULL)
		return;
	for (size_t i = 0; i < DKIM_KEY_CACHE_MAX; i++) {
		free(c->e[i].der);
		EVP_PKEY_free(c->e[i].pk);
	}
	pthread_mutex_destroy(&c->mu);
	free(c);
}

void dkim_key_cache_stats(struct dkim_key_cache *c, uint64_t *hits, uint64_t *misses)
{
	pthread_mutex_lock(&c->mu);
	*hits = c->hits;
	*misses = c->misses;
	pthread_mutex_unlock(&c->mu);
}

/* The key decoded from der before, with a reference for the caller. */
static EVP_PKEY *key_cache_get(struct dkim_key_cache *c, bool ed25519, const unsigned char *der, size_t len)
{
	EVP_PKEY *pk = NULL;

	pthread_mutex_lock(&c->mu);
	for (size_t i = 0; i < DKIM_KEY_CACHE_MAX && pk == NULL; i++) {
		struct key_cache_entry *e = &c->e[i];
		if (e->der != NULL && e->len == len && e->ed25519 == ed25519 && memcmp(e->der, der, len) == 0) {
			e->used = ++c->tick;
			EVP_PKEY_up_ref(e->pk);
			pk = e->pk;
		}
	}
	if (pk != NULL)
		c->hits++;
	else
		c->misses++;
	pthread_mutex_unlock(&c->mu);
	return pk;
}

/* A key that passed verify_pubkey's checks, in place of the least
 * recently used one. */
static void key_cache_put(struct dkim_key_cache *c, bool ed25519, const unsigned char *der, size_t len, EVP_PKEY *pk)
{
	struct key_cache_entry *victim;

	pthread_mutex_lock(&c->mu);
	victim = &c->e[0];
	for (size_t i = 0; i < DKIM_KEY_CACHE_MAX; i++) {
		struct key_cache_entry *e = &c->e[i];
		if (e->der != NULL && e->len == len && e->ed25519 == ed25519 && memcmp(e->der, der, len) == 0) {
			victim = NULL;   /* another thread put it meanwhile */
			break;
		}
		if (e->der == NULL || (victim->der != NULL && e->used < victim->used))
			victim = e;
	}
	if (victim != NULL) {
		free(victim->der);
		EVP_PKEY_free(victim->pk);
		victim->der = xmalloc(len);
		memcpy(victim->der, der, len);
		victim->len = len;
		victim->ed25519 = ed25519;
		EVP_PKEY_up_ref(pk);
		victim->pk = pk;
		victim->used = ++c->tick;
	}
	pthread_mutex_unlock(&c->mu);
}

struct dkim_verify *dkim_verify_new(void)
{
	return xcalloc(1, sizeof(struct dkim_verify));
}

void dkim_verify_set_key_cache(struct dkim_verify *v, struct dkim_key_cache *c)
{
	v->keys = c;
}

static void vsig_decide(struct vsig *vs, enum dkim_result r, const char *reason)
{
	vs->result = r;
	vs->reason = reason;
}

/* The header section is complete: find the signatures and start their
 * body hashes. */
static void verify_start(struct dkim_verify *v)
{
	static const char name[] = "dkim-signature";

	v->started = true;
	if (v->h.overflow)
		return;
	hdr_split(&v->h);
	for (size_t j = 0; j < v->h.nf && v->n < DKIM_VERIFY_MAX; j++) {
		const struct field *f = &v->h.f[j];
		struct vsig *vs;
		struct dkim_parse_err err;
		size_t voff;

		if (!field_is(&v->h, f, name, sizeof name - 1))
			continue;
		vs = &v->s[v->n++];
		vs->field = j;
		voff = (size_t)((const char *)memchr(v->h.buf + f->off, ':', f->len) - (v->h.buf + f->off)) + 1;
		if (!dkim_sig_parse(v->h.buf + f->off + voff, f->len - voff, &vs->sig, &err)) {
			vsig_decide(vs, DKIM_PERMERROR, err.reason);
			continue;
		}
		vs->parsed = true;
		vs->bh = sha256_new();
		dkim_body_init(&vs->body, vs->sig.bcanon, vs->sig.has_l, vs->sig.l, md_emit, vs->bh);
	}
}

void dkim_verify_feed(struct dkim_verify *v, const char *buf, size_t len)
{
	size_t n = 0;

	if (!v->h.done)
		n = hdr_feed(&v->h, buf, len);
	if (!v->h.done)
		return;
	if (!v->started)
		verify_start(v);
	for (size_t i = 0; i < v->n && n < len; i++)
		if (v->s[i].parsed)
			dkim_body_feed(&v->s[i].body, buf + n, len - n);
}

void dkim_verify_finish(struct dkim_verify *v)
{
	v->h.done = true; /* a message without a body */
	if (!v->started)
		verify_start(v);
	for (size_t i = 0; i < v->n; i++)
		if (v->s[i].parsed)
			dkim_body_finish(&v->s[i].body);
}

size_t dkim_verify_count(const struct dkim_verify *v)
{
	return v->n;
}

size_t dkim_verify_from_domains(struct dkim_verify *v, char (*out)[256], size_t max)
{
	if (!v->h.done || v->h.overflow)
		return SIZE_MAX;
	return hdr_from_domains(&v->h, out, max);
}

bool dkim_verify_overflow(const struct dkim_verify *v)
{
	return v->h.overflow;
}

const struct dkim_sig *dkim_verify_sig(const struct dkim_verify *v, size_t i)
{
	return v->s[i].parsed ? &v->s[i].sig : NULL;
}

char *dkim_verify_key_name(const struct dkim_verify *v, size_t i)
{
	const struct vsig *vs = &v->s[i];

	if (!vs->parsed || vs->result != DKIM_NONE)
		return NULL;
	return xasprintf("%.*s._domainkey.%.*s", (int)vs->sig.s.len, vs->sig.s.p, (int)vs->sig.d.len, vs->sig.d.p);
}

void dkim_verify_key_failed(struct dkim_verify *v, size_t i, enum dkim_result r, const char *reason)
{
	vsig_decide(&v->s[i], r, reason);
}

enum dkim_result dkim_verify_result(const struct dkim_verify *v, size_t i, const char **reason)
{
	if (reason)
		*reason = v->s[i].reason;
	return v->s[i].result;
}

/* The key of p= octets der (not cached yet), or NULL with the reason. */
static EVP_PKEY *decode_pubkey(bool ed25519, const unsigned char *der, size_t len, const char **reason)
{
	const unsigned char *p = der;
	EVP_PKEY *pk = NULL;

	if (ed25519) {
		if (len != 32 || !(pk = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, der, len)))
			return *reason = "p= is not an Ed25519 key", NULL;
		return pk;
	}
	pk = d2i_PUBKEY(NULL, &p, (long)len);
	if (!pk) {
		p = der; /* some publish the bare RSAPublicKey */
		pk = d2i_PublicKey(EVP_PKEY_RSA, NULL, &p, (long)len);
	}
	if (!pk || EVP_PKEY_get_base_id(pk) != EVP_PKEY_RSA) {
		EVP_PKEY_free(pk);
		return *reason = "p= is not an RSA key", NULL;
	}
	if (EVP_PKEY_get_bits(pk) < 1024) {
		EVP_PKEY_free(pk);
		return *reason = "RSA key shorter than 1024 bits (RFC 8301)", NULL;
	}
	return pk;
}

/* The public key of a key record, checked against the signature; from
 * the cache when these octets were decoded before. */
static EVP_PKEY *verify_pubkey(struct dkim_key_cache *cache, const struct dkim_sig *sig, const struct dkim_key *key,
			       const char **reason)
{
	unsigned char der[4096];
	size_t len;
	bool ed25519 = key->type == DKIM_KEY_ED25519;
	EVP_PKEY *pk;

	if (key->p.len == 0)
		return *reason = "key revoked", NULL;
	if (ed25519 != (sig->alg == DKIM_ALG_ED25519_SHA256))
		return *reason = "key type does not match a=", NULL;
	if (!dkim_base64_decode(key->p.p, key->p.len, der, sizeof der, &len))
		return *reason = "p= is not base64", NULL;
	if (cache != NULL && (pk = key_cache_get(cache, ed25519, der, len)) != NULL)
		return pk;
	pk = decode_pubkey(ed25519, der, len, reason);
	if (pk != NULL && cache != NULL)
		key_cache_put(cache, ed25519, der, len, pk);
	return pk;
}

/* The header hash: h='s fields, then the signature field with its b=
 * value and the whitespace around it removed (RFC 6376 3.7). */
static void verify_header_digest(const struct dkim_verify *v, const struct vsig *vs, unsigned char *digest)
{
	const struct field *f = &v->h.f[vs->field];
	const char *fs = v->h.buf + f->off, *fe = fs + f->len;
	const char *bs = vs->sig.b_value.p, *be = bs + vs->sig.b_value.len;
	EVP_MD_CTX *md = sha256_new();
	char *tmp;
	size_t n;

	while (bs > fs && (bs[-1] == ' ' || bs[-1] == '\t' || bs[-1] == '\r' || bs[-1] == '\n'))
		bs--;
	while (be < fe && (*be == ' ' || *be == '\t' || *be == '\r' || *be == '\n'))
		be++;
	hash_selected(&v->h, vs->sig.h, vs->sig.h_n, vs->sig.hcanon, md);
	tmp = xmalloc(f->len);
	n = (size_t)(bs - fs);
	memcpy(tmp, fs, n);
	memcpy(tmp + n, be, (size_t)(fe - be));
	n += (size_t)(fe - be);
	dkim_canon_header(vs->sig.hcanon, tmp, n, false, md_emit, md);
	free(tmp);
	EVP_DigestFinal_ex(md, digest, NULL);
	EVP_MD_CTX_free(md);
}

char *dkim_verify_sign_as(const struct dkim_verify *v, size_t i, EVP_PKEY *key)
{
	unsigned char digest[32], sig[1024];
	size_t siglen = sizeof sig;

	if (!v->started || i >= v->n || !v->s[i].parsed || EVP_PKEY_get_size(key) > (int)sizeof sig)
		return NULL;
	verify_header_digest(v, &v->s[i], digest);
	if (!pkey_sign(key, digest, sig, &siglen))
		return NULL;
	return base64_encode_alloc(sig, siglen);
}

static bool strict_i_ok(const struct dkim_sig *sig)
{
	const char *at;

	if (sig->i.len == 0)
		return true;
	at = memchr(sig->i.p, '@', sig->i.len);
	return at && (size_t)(sig->i.p + sig->i.len - at - 1) == sig->d.len && ascii_ieq(at + 1, sig->d.p, sig->d.len);
}

void dkim_verify_key(struct dkim_verify *v, size_t i, const char *rec, size_t len, int64_t now)
{
	struct vsig *vs = &v->s[i];
	struct dkim_key key;
	struct dkim_parse_err err;
	const char *reason = NULL;
	unsigned char bh[32], digest[32];
	EVP_PKEY *pk;

	if (!vs->parsed || vs->result != DKIM_NONE)
		return;
	if (vs->sig.has_x && now > vs->sig.x)
		return vsig_decide(vs, DKIM_PERMERROR, "signature expired");
	/* RFC 6376 3.5: a signature from the future is not trusted; a few
	 * minutes allow for clocks that disagree */
	if (vs->sig.has_t && vs->sig.t > now + DKIM_CLOCK_SKEW)
		return vsig_decide(vs, DKIM_PERMERROR, "t= is in the future");
	if (!dkim_key_parse(rec, len, &key, &err))
		return vsig_decide(vs, DKIM_PERMERROR, err.reason);
	if (key.strict_i && !strict_i_ok(&vs->sig))
		return vsig_decide(vs, DKIM_PERMERROR, "key t=s and i= is a subdomain");
	if (!(pk = verify_pubkey(v->keys, &vs->sig, &key, &reason)))
		return vsig_decide(vs, DKIM_PERMERROR, reason);
	EVP_DigestFinal_ex(vs->bh, bh, NULL);
	verify_header_digest(v, vs, digest);
	if (vs->sig.has_l && vs->sig.l > vs->body.total)
		vsig_decide(vs, DKIM_FAIL, "l= is longer than the body");
	else if (memcmp(bh, vs->sig.bh, 32) != 0)
		vsig_decide(vs, DKIM_FAIL, "body hash did not verify");
	else if (!pkey_verify(pk, digest, vs->sig.b, vs->sig.b_len))
		vsig_decide(vs, DKIM_FAIL, "signature did not verify");
	else if (vs->sig.has_l && vs->sig.l < vs->body.total)
		/* Valid, but text can follow the signed part unseen (RFC 6376
		 * 8.2): not acceptable here. */
		vsig_decide(vs, DKIM_POLICY, "l= leaves part of the body unsigned");
	else
		vsig_decide(vs, DKIM_PASS, NULL);
	/* RFC 6376 3.6.1: mail signed with a key in testing mode is treated
	 * as unsigned, so its failure is no failure */
	if (key.testing && vs->result == DKIM_FAIL)
		vsig_decide(vs, DKIM_NEUTRAL, "key in testing mode (t=y)");
	EVP_PKEY_free(pk);
}

void dkim_verify_free(struct dkim_verify *v)
{
	if (!v)
		return;
	for (size_t i = 0; i < v->n; i++)
		EVP_MD_CTX_free(v->s[i].bh);
	hdr_free(&v->h);
	free(v);
}
