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

#include <errno.h>
#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>
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

struct tls_ctx {
	SSL_CTX *ctx;
	char *cert, *key;
	char *hostname;
	char *user;               /* [server] user: owner of made-up files */
	bool defaults;            /* cert and key are the state_dir defaults */
};

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

/* ---- the SSL_CTX ---------------------------------------------------------- */

static SSL_CTX *tls_build(const struct tls_ctx *c, char **err)
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
	log_tls_reloaded(c);
	return true;
}

SSL *tls_ctx_new_ssl(struct tls_ctx *c)
{
	SSL *ssl = SSL_new(c->ctx);
	if (ssl == NULL)
		ERR_clear_error();
	return ssl;
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
	SSL_CTX_free(c->ctx);
	free(c->cert);
	free(c->key);
	free(c->hostname);
	free(c->user);
	free(c);
}
