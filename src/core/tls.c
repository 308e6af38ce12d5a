/*
 * tls.c - the server's TLS context (see tls.h).
 *
 * Protocol versions TLS 1.2 (RFC 5246) and TLS 1.3 (RFC 8446) only, as
 * RFC 8996 and RFC 9325 ask; TLS 1.2 limited to ECDHE/DHE with AEAD
 * ciphers (RFC 9325 4.2); no compression (CRIME), no renegotiation.
 *
 * The development default has no certificate, so the first start makes a
 * self-signed one under state_dir/tls/.  Explicitly configured files are
 * never made up: a missing one is a start-up error.
 */
#include "core/tls.h"
#include "core/config.h"
#include "core/fsutil.h"
#include "core/log.h"
#include "core/util.h"
#include "core/workers.h"
#include "proto/tls_hello.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define TLS_CIPHERS_12 \
	"ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:" \
	"ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:" \
	"ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:" \
	"DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384"
#define TLS_SELFSIGNED_DAYS 3650
/* Handshakes yield the CPU to the loop (workers_new_nice): under a burst
 * the loop's sessions go first and the handshakes take what is left. */
#define TLS_POOL_NICE 5

/* One certificate of the store: a slot ("tls" for [tls] cert, "acme" for
 * the ACME one), what it is, and the names it covers (its SAN DNS
 * entries, lower case).  The SSLs that use it hold their own references,
 * so a slot can be replaced while handshakes that chose it go on. */
struct tls_cert {
	char *slot;
	X509 *leaf;
	EVP_PKEY *key;
	STACK_OF(X509) *chain;
	char **names;
	size_t nnames;
};

/* A tls-alpn-01 validation certificate (RFC 8737 3) for one name. */
struct tls_challenge {
	char *name;
	X509 *x;
	EVP_PKEY *key;
};

#define TLS_CERTS_MAX 8
#define TLS_CHALLENGES_MAX 64

struct tls_ctx {
	SSL_CTX *ctx;
	/* certs[0] is [tls]'s; later slots win for the names they cover. */
	struct tls_cert certs[TLS_CERTS_MAX];
	size_t ncerts;
	struct tls_challenge challenges[TLS_CHALLENGES_MAX];
	size_t nchallenges;
	char *cert, *key;
	char *hostname;
	char *user;               /* [server] user: owner of made-up files */
	bool defaults;            /* cert and key are the state_dir defaults */
	/* Handshakes run on these threads (core/tls_accept.c), and their
	 * ClientHello and ALPN callbacks read the store there: the loop
	 * changes certs and challenges only under store_mu. */
	struct workers *pool;
	pthread_mutex_t store_mu;
};

/* Where an SSL made by tls_ctx_new_ssl() finds its tls_ctx. */
static int tls_ssl_index = -1;

/* ---- logging: one function per event ------------------------------------ */

static void log_tls_selfsigned(const struct tls_ctx *c)
{
	log_event("event=tls_selfsigned level=warning cert=%s key=%s cn=%s "
		  "note=\"self-signed development certificate; configure [tls] cert and key\"",
		  c->cert, c->key, c->hostname);
}

static void log_tls_loaded(const struct tls_ctx *c)
{
	log_event("event=tls_loaded cert=%s", c->cert);
}

static void log_tls_reloaded(const struct tls_ctx *c)
{
	log_event("event=tls_reloaded cert=%s", c->cert);
}

static void log_tls_cert_installed(const struct tls_cert *e)
{
	char issuer[256] = "", names[512] = "";
	size_t o = 0;
	X509_NAME_oneline(X509_get_issuer_name(e->leaf), issuer, sizeof(issuer));
	for (size_t i = 0; i < e->nnames && o < sizeof(names) - 1; i++) {
		int k = snprintf(names + o, sizeof(names) - o, "%s%s", i ? "," : "", e->names[i]);
		if (k < 0)
			break;
		o += (size_t)k;
	}
	log_event("event=tls_cert_installed slot=%s names=%s issuer=\"%s\"", e->slot, names, issuer);
}

/* The first OpenSSL error as text, and the queue cleared. */
static char *tls_error(const char *what, const char *path)
{
	unsigned long e = ERR_get_error();
	char buf[256] = "unknown error";
	if (e)
		ERR_error_string_n(e, buf, sizeof(buf));
	ERR_clear_error();
	return xasprintf("%s %s: %s", what, path, buf);
}

/* ---- the self-signed development certificate -------------------------- */

static bool tls_add_ext(X509 *x, int nid, const char *value)
{
	X509V3_CTX v3;
	X509_EXTENSION *ext;
	bool ok;

	X509V3_set_ctx_nodb(&v3);
	X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
	ext = X509V3_EXT_conf_nid(NULL, &v3, nid, value);
	if (ext == NULL)
		return false;
	ok = X509_add_ext(x, ext, -1) == 1;
	X509_EXTENSION_free(ext);
	return ok;
}

static X509 *tls_make_cert(EVP_PKEY *pk, const char *hostname)
{
	X509 *x = X509_new();
	X509_NAME *name;
	uint64_t serial;
	char *san;
	bool ok;

	if (x == NULL)
		return NULL;
	if (RAND_bytes((unsigned char *)&serial, sizeof(serial)) != 1)
		serial = (uint64_t)now_unix();
	serial &= INT64_MAX;
	san = xasprintf("DNS:%s", hostname);
	name = X509_get_subject_name(x);
	ok = X509_set_version(x, 2) == 1 &&
		ASN1_INTEGER_set_uint64(X509_get_serialNumber(x), serial | 1) == 1 &&
		X509_gmtime_adj(X509_getm_notBefore(x), -3600) != NULL &&
		X509_gmtime_adj(X509_getm_notAfter(x), 86400L * TLS_SELFSIGNED_DAYS) != NULL &&
		X509_set_pubkey(x, pk) == 1 &&
		X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *)hostname, -1,
					   -1, 0) == 1 &&
		X509_set_issuer_name(x, name) == 1 &&
		tls_add_ext(x, NID_basic_constraints, "critical,CA:FALSE") &&
		tls_add_ext(x, NID_key_usage, "critical,digitalSignature") &&
		tls_add_ext(x, NID_ext_key_usage, "serverAuth") &&
		tls_add_ext(x, NID_subject_alt_name, san) &&
		X509_sign(x, pk, EVP_sha256()) > 0;
	free(san);
	if (!ok) {
		X509_free(x);
		return NULL;
	}
	return x;
}

/* Write a PEM file through a temporary name and rename, so a crash never
 * leaves half a key behind; the key is 0600 from the start. */
static bool tls_write_pem(const struct tls_ctx *c, const char *path, mode_t mode, EVP_PKEY *pk, X509 *x)
{
	char *tmp = xasprintf("%s.tmp", path);
	struct passwd *pw = c->user[0] && getuid() == 0 ? getpwnam(c->user) : NULL;
	bool ok;
	FILE *f;
	int fd;

	unlink(tmp);
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
	if (fd < 0 || (f = fdopen(fd, "w")) == NULL) {
		if (fd >= 0)
			close(fd);
		free(tmp);
		return false;
	}
	ok = pk ? PEM_write_PrivateKey(f, pk, NULL, NULL, 0, NULL, NULL) == 1 : PEM_write_X509(f, x) == 1;
	ok = fflush(f) == 0 && fsync(fileno(f)) == 0 && ok;
	if (pw && fchown(fileno(f), pw->pw_uid, pw->pw_gid) < 0)
		ok = false;
	ok = fclose(f) == 0 && ok;
	if (ok)
		ok = rename(tmp, path) == 0;
	if (!ok)
		unlink(tmp);
	free(tmp);
	return ok;
}

static bool tls_make_selfsigned(struct tls_ctx *c, char **err)
{
	char *dir = xstrdup(c->cert);
	char *slash = strrchr(dir, '/');
	EVP_PKEY *pk = NULL;
	X509 *x = NULL;
	bool ok = false;

	if (slash)
		*slash = '\0';
	if (slash && !mkdir_p(dir, 0700)) {
		*err = xasprintf("cannot create %s: %s", dir, strerror(errno));
		goto out;
	}
	pk = EVP_EC_gen("P-256");
	x = pk ? tls_make_cert(pk, c->hostname) : NULL;
	if (x == NULL) {
		*err = tls_error("cannot make a self-signed certificate for", c->hostname);
		goto out;
	}
	if (!tls_write_pem(c, c->key, 0600, pk, NULL) || !tls_write_pem(c, c->cert, 0644, NULL, x)) {
		*err = xasprintf("cannot write %s or %s: %s", c->key, c->cert, strerror(errno));
		goto out;
	}
	log_tls_selfsigned(c);
	ok = true;
out:
	EVP_PKEY_free(pk);
	X509_free(x);
	free(dir);
	return ok;
}

/* ---- the certificate store ------------------------------------------------ */

static void tls_chain_free(STACK_OF(X509) *chain)
{
	sk_X509_pop_free(chain, X509_free);
}

static void tls_cert_clear(struct tls_cert *e)
{
	free(e->slot);
	X509_free(e->leaf);
	EVP_PKEY_free(e->key);
	tls_chain_free(e->chain);
	for (size_t i = 0; i < e->nnames; i++)
		free(e->names[i]);
	free(e->names);
	memset(e, 0, sizeof(*e));
}

/* The SAN DNS names of x, lower case (the CN only when there is no SAN,
 * as RFC 6125 6.4.4 allows). */
static void tls_cert_names(struct tls_cert *e)
{
	GENERAL_NAMES *san = X509_get_ext_d2i(e->leaf, NID_subject_alt_name, NULL, NULL);
	int n = san ? sk_GENERAL_NAME_num(san) : 0;

	e->names = xcalloc((size_t)n + 1, sizeof(char *));
	for (int i = 0; i < n; i++) {
		const GENERAL_NAME *g = sk_GENERAL_NAME_value(san, i);
		if (g->type != GEN_DNS)
			continue;
		const unsigned char *d = ASN1_STRING_get0_data(g->d.dNSName);
		int len = ASN1_STRING_length(g->d.dNSName);
		char *name = xstrndup((const char *)d, (size_t)len);
		for (char *p = name; *p; p++)
			*p = ascii_lower(*p);
		e->names[e->nnames++] = name;
	}
	GENERAL_NAMES_free(san);
	if (e->nnames == 0) {
		char cn[256];
		if (X509_NAME_get_text_by_NID(X509_get_subject_name(e->leaf), NID_commonName, cn, sizeof(cn)) > 0) {
			for (char *p = cn; *p; p++)
				*p = ascii_lower(*p);
			e->names[e->nnames++] = xstrdup(cn);
		}
	}
}

/* Exact, or a wildcard "*.example.org" for one label (RFC 6125 6.4.3). */
static bool tls_name_match(const char *pattern, const char *name)
{
	if (strcmp(pattern, name) == 0)
		return true;
	if (pattern[0] == '*' && pattern[1] == '.') {
		const char *dot = strchr(name, '.');
		return dot && dot != name && strcmp(dot + 1, pattern + 2) == 0;
	}
	return false;
}

static struct tls_cert *tls_find_cert(struct tls_ctx *c, const char *name)
{
	for (size_t i = c->ncerts; i-- > 0;)
		for (size_t k = 0; k < c->certs[i].nnames; k++)
			if (tls_name_match(c->certs[i].names[k], name))
				return &c->certs[i];
	return NULL;
}

static struct tls_cert *tls_slot(struct tls_ctx *c, const char *slot)
{
	for (size_t i = 0; i < c->ncerts; i++)
		if (strcmp(c->certs[i].slot, slot) == 0)
			return &c->certs[i];
	return NULL;
}

/* Put leaf/key/chain (references taken over) into slot. */
static void tls_slot_set(struct tls_ctx *c, const char *slot, X509 *leaf, EVP_PKEY *key, STACK_OF(X509) *chain)
{
	pthread_mutex_lock(&c->store_mu);
	struct tls_cert *e = tls_slot(c, slot);
	if (e == NULL) {
		if (c->ncerts == TLS_CERTS_MAX) {
			pthread_mutex_unlock(&c->store_mu);
			X509_free(leaf);
			EVP_PKEY_free(key);
			tls_chain_free(chain);
			return;
		}
		e = &c->certs[c->ncerts++];
	} else {
		tls_cert_clear(e);
	}
	e->slot = xstrdup(slot);
	e->leaf = leaf;
	e->key = key;
	e->chain = chain;
	tls_cert_names(e);
	pthread_mutex_unlock(&c->store_mu);
	log_tls_cert_installed(e);   /* the loop's own change: e stays */
}

/* Slot "tls" from the context just built from [tls] cert and key. */
static void tls_slot_from_ctx(struct tls_ctx *c, SSL_CTX *ctx)
{
	X509 *leaf = SSL_CTX_get0_certificate(ctx);
	EVP_PKEY *key = SSL_CTX_get0_privatekey(ctx);
	STACK_OF(X509) *chain = NULL;

	SSL_CTX_get0_chain_certs(ctx, &chain);
	X509_up_ref(leaf);
	EVP_PKEY_up_ref(key);
	tls_slot_set(c, "tls", leaf, key, chain ? X509_chain_up_ref(chain) : NULL);
}

bool tls_ctx_set_cert(struct tls_ctx *c, const char *slot, EVP_PKEY *key, const char *pem, size_t len,
		      char **err)
{
	BIO *b = BIO_new_mem_buf(pem, (int)len);
	X509 *leaf = b ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;
	STACK_OF(X509) *chain = sk_X509_new_null();
	X509 *x;

	*err = NULL;
	if (leaf == NULL) {
		*err = tls_error("cannot read the certificate of slot", slot);
		goto fail;
	}
	while ((x = PEM_read_bio_X509(b, NULL, NULL, NULL)) != NULL)
		sk_X509_push(chain, x);
	ERR_clear_error();   /* the end of the PEM text */
	if (X509_check_private_key(leaf, key) != 1) {
		*err = tls_error("the private key does not match the certificate of slot", slot);
		goto fail;
	}
	BIO_free(b);
	EVP_PKEY_up_ref(key);
	tls_slot_set(c, slot, leaf, key, chain);
	return true;
fail:
	BIO_free(b);
	X509_free(leaf);
	tls_chain_free(chain);
	return false;
}

X509 *tls_ctx_get_cert(struct tls_ctx *c, const char *slot)
{
	struct tls_cert *e = tls_slot(c, slot);
	return e ? e->leaf : NULL;
}

static struct tls_challenge *tls_find_challenge(struct tls_ctx *c, const char *name)
{
	for (size_t i = 0; i < c->nchallenges; i++)
		if (strcmp(c->challenges[i].name, name) == 0)
			return &c->challenges[i];
	return NULL;
}

static bool tls_set_challenge_locked(struct tls_ctx *c, const char *name, X509 *x, EVP_PKEY *key)
{
	struct tls_challenge *ch = tls_find_challenge(c, name);
	if (ch) {
		X509_free(ch->x);
		EVP_PKEY_free(ch->key);
		free(ch->name);
		*ch = c->challenges[--c->nchallenges];
	}
	if (x == NULL)
		return true;
	if (c->nchallenges == TLS_CHALLENGES_MAX)
		return false;
	ch = &c->challenges[c->nchallenges++];
	ch->name = xstrdup(name);
	X509_up_ref(x);
	EVP_PKEY_up_ref(key);
	ch->x = x;
	ch->key = key;
	return true;
}

bool tls_ctx_set_challenge(struct tls_ctx *c, const char *name, X509 *x, EVP_PKEY *key)
{
	pthread_mutex_lock(&c->store_mu);
	bool ok = tls_set_challenge_locked(c, name, x, key);
	pthread_mutex_unlock(&c->store_mu);
	return ok;
}

static const char tls_acme_alpn[] = "acme-tls/1";   /* RFC 8737 6.2 */

static bool tls_has_challenge(struct tls_ctx *c, const char *name)
{
	pthread_mutex_lock(&c->store_mu);
	bool has = tls_find_challenge(c, name) != NULL;
	pthread_mutex_unlock(&c->store_mu);
	return has;
}

/*
 * The certificate of a handshake is chosen here, when the ClientHello is
 * in, from the store as it is at that moment: a replaced certificate is
 * used from the next handshake on, whenever its SSL was made (STARTTLS
 * sessions make theirs long before).  ALPN acme-tls/1 gets the
 * validation certificate of its name or nothing (RFC 8737 3).
 */
static int tls_client_hello_locked(struct tls_ctx *c, SSL *ssl, int *al)
{
	const unsigned char *p;
	size_t n;
	char name[TLS_HELLO_NAME_MAX + 1] = "";
	struct tls_cert *e = NULL;

	if (SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_server_name, &p, &n) == 1 &&
	    !tls_hello_sni(p, n, name, sizeof(name)))
		name[0] = '\0';
	if (SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_application_layer_protocol_negotiation, &p, &n) == 1 &&
	    tls_hello_alpn_has(p, n, tls_acme_alpn) == 1) {
		struct tls_challenge *ch = name[0] ? tls_find_challenge(c, name) : NULL;
		if (ch == NULL) {
			*al = SSL_AD_UNRECOGNIZED_NAME;
			return SSL_CLIENT_HELLO_ERROR;
		}
		SSL_certs_clear(ssl);
		if (SSL_use_cert_and_key(ssl, ch->x, ch->key, NULL, 1) != 1) {
			*al = SSL_AD_INTERNAL_ERROR;
			return SSL_CLIENT_HELLO_ERROR;
		}
		return SSL_CLIENT_HELLO_SUCCESS;
	}
	if (name[0])
		e = tls_find_cert(c, name);
	if (e == NULL)
		e = tls_find_cert(c, c->hostname);
	if (e == NULL && c->ncerts)
		e = &c->certs[0];
	if (e == NULL)
		return SSL_CLIENT_HELLO_SUCCESS;   /* the context's own */
	SSL_certs_clear(ssl);
	if (SSL_use_cert_and_key(ssl, e->leaf, e->key, e->chain, 1) != 1) {
		ERR_clear_error();
		*al = SSL_AD_INTERNAL_ERROR;
		return SSL_CLIENT_HELLO_ERROR;
	}
	return SSL_CLIENT_HELLO_SUCCESS;
}

/* On a worker thread (tls_accept.c): the store under its lock; the SSL
 * takes its own references to what it chose. */
static int tls_client_hello_cb(SSL *ssl, int *al, void *arg)
{
	struct tls_ctx *c = arg;
	pthread_mutex_lock(&c->store_mu);
	int r = tls_client_hello_locked(c, ssl, al);
	pthread_mutex_unlock(&c->store_mu);
	return r;
}

/* Only acme-tls/1 is ever agreed, and only when its certificate was
 * chosen; every other client goes on without ALPN. */
static int tls_alpn_cb(SSL *ssl, const unsigned char **out, unsigned char *outlen, const unsigned char *in,
		       unsigned inlen, void *arg)
{
	struct tls_ctx *c = arg;
	const char *name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
	char lower[TLS_HELLO_NAME_MAX + 1];
	size_t i;

	if (name == NULL || strlen(name) >= sizeof(lower))
		return SSL_TLSEXT_ERR_NOACK;
	for (i = 0; name[i]; i++)
		lower[i] = ascii_lower(name[i]);
	lower[i] = '\0';
	if (i && lower[i - 1] == '.')
		lower[i - 1] = '\0';
	for (i = 0; i < inlen;) {
		unsigned len = in[i];
		if (len > inlen - i - 1)
			break;
		if (len == sizeof(tls_acme_alpn) - 1 && memcmp(in + i + 1, tls_acme_alpn, len) == 0 &&
		    tls_has_challenge(c, lower)) {
			*out = in + i + 1;
			*outlen = (unsigned char)len;
			return SSL_TLSEXT_ERR_OK;
		}
		i += 1 + len;
	}
	return SSL_TLSEXT_ERR_NOACK;
}

bool tls_is_acme_validation(SSL *ssl)
{
	const unsigned char *p;
	unsigned n;
	SSL_get0_alpn_selected(ssl, &p, &n);
	return n == sizeof(tls_acme_alpn) - 1 && memcmp(p, tls_acme_alpn, n) == 0;
}

/* ---- the SSL_CTX ---------------------------------------------------------- */

static SSL_CTX *tls_build(struct tls_ctx *c, char **err)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	static const unsigned char sid[] = "tern";

	if (ctx == NULL) {
		*err = tls_error("cannot create a TLS context for", c->cert);
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION);
	SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
			    SSL_OP_CIPHER_SERVER_PREFERENCE);
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
	SSL_CTX_set_session_id_context(ctx, sid, sizeof(sid) - 1);
	if (SSL_CTX_set_cipher_list(ctx, TLS_CIPHERS_12) != 1) {
		*err = tls_error("cannot set the cipher list for", c->cert);
		goto fail;
	}
	if (SSL_CTX_use_certificate_chain_file(ctx, c->cert) != 1) {
		*err = tls_error("cannot load the certificate", c->cert);
		goto fail;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, c->key, SSL_FILETYPE_PEM) != 1) {
		*err = tls_error("cannot load the private key", c->key);
		goto fail;
	}
	if (SSL_CTX_check_private_key(ctx) != 1) {
		*err = tls_error("the private key does not match the certificate", c->cert);
		goto fail;
	}
	SSL_CTX_set_client_hello_cb(ctx, tls_client_hello_cb, c);
	SSL_CTX_set_alpn_select_cb(ctx, tls_alpn_cb, c);
	return ctx;
fail:
	SSL_CTX_free(ctx);
	return NULL;
}

/* Build a context from the files, making the development certificate
 * first if the default files are missing. */
static SSL_CTX *tls_load(struct tls_ctx *c, char **err)
{
	bool missing = access(c->cert, F_OK) != 0 || access(c->key, F_OK) != 0;

	if (missing && !c->defaults) {
		const char *which = access(c->cert, F_OK) != 0 ? c->cert : c->key;
		*err = xasprintf("[tls] file %s: %s", which, strerror(ENOENT));
		return NULL;
	}
	if (missing && !tls_make_selfsigned(c, err))
		return NULL;
	return tls_build(c, err);
}

struct tls_ctx *tls_ctx_new(const struct config *cfg, char **err)
{
	struct tls_ctx *c = xcalloc(1, sizeof(*c));
	pthread_mutex_init(&c->store_mu, NULL);
	if (tls_ssl_index < 0)
		tls_ssl_index = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
	char *def_cert = xasprintf("%s/tls/cert.pem", cfg->state_dir);
	char *def_key = xasprintf("%s/tls/key.pem", cfg->state_dir);

	*err = NULL;
	c->cert = xstrdup(cfg->tls_cert);
	c->key = xstrdup(cfg->tls_key);
	c->hostname = xstrdup(cfg->hostname);
	c->user = xstrdup(cfg->user ? cfg->user : "");
	c->defaults = strcmp(c->cert, def_cert) == 0 && strcmp(c->key, def_key) == 0;
	free(def_cert);
	free(def_key);
	c->ctx = tls_load(c, err);
	if (c->ctx == NULL) {
		tls_ctx_free(c);
		return NULL;
	}
	tls_slot_from_ctx(c, c->ctx);
	log_tls_loaded(c);
	return c;
}

bool tls_ctx_reload(struct tls_ctx *c, char **err)
{
	SSL_CTX *n = tls_load(c, err);
	if (n == NULL)
		return false;
	/* Live SSLs hold their own reference to the old context. */
	SSL_CTX_free(c->ctx);
	c->ctx = n;
	tls_slot_from_ctx(c, n);
	log_tls_reloaded(c);
	return true;
}

SSL *tls_ctx_new_ssl(struct tls_ctx *c)
{
	SSL *ssl = SSL_new(c->ctx);
	if (ssl == NULL)
		ERR_clear_error();
	else
		SSL_set_ex_data(ssl, tls_ssl_index, c);
	return ssl;
}

void tls_ctx_start_pool(struct tls_ctx *c, struct event_base *base)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	if (c->pool == NULL)
		c->pool = workers_new_nice(base, n < 1 ? 1 : n > 16 ? 16 : (unsigned)n, TLS_POOL_NICE);
}

struct workers *tls_ssl_pool(SSL *ssl)
{
	struct tls_ctx *c = tls_ssl_index >= 0 ? SSL_get_ex_data(ssl, tls_ssl_index) : NULL;
	return c ? c->pool : NULL;
}

void tls_describe(SSL *ssl, char *buf, size_t cap)
{
	const char *cipher = ssl ? SSL_get_cipher_name(ssl) : NULL;
	if (cap == 0)
		return;
	if (ssl == NULL || cipher == NULL) {
		buf[0] = '\0';
		return;
	}
	snprintf(buf, cap, "%s %s", SSL_get_version(ssl), cipher);
}

void tls_ctx_free(struct tls_ctx *c)
{
	if (c == NULL)
		return;
	workers_free(c->pool);   /* the handshakes' last done()s run here */
	SSL_CTX_free(c->ctx);
	for (size_t i = 0; i < c->ncerts; i++)
		tls_cert_clear(&c->certs[i]);
	while (c->nchallenges)
		tls_ctx_set_challenge(c, c->challenges[0].name, NULL, NULL);
	free(c->cert);
	free(c->key);
	free(c->hostname);
	free(c->user);
	pthread_mutex_destroy(&c->store_mu);
	free(c);
}
