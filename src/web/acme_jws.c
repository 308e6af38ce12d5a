/*
 * acme_jws.c - ACME's keys, signatures, CSR and validation certificate
 * (see acme_jws.h).
 */
#include "web/acme_jws.h"
#include "core/util.h"
#include "proto/acme_wire.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define ACME_EC_COORD 32   /* P-256: 32-octet coordinates and r, s */

static char *acme_ssl_error(const char *what, const char *path)
{
	char buf[200] = "unknown error";
	unsigned long e = ERR_get_error();
	if (e)
		ERR_error_string_n(e, buf, sizeof(buf));
	ERR_clear_error();
	return xasprintf("%s %s: %s", what, path, buf);
}

EVP_PKEY *acme_key_new(void)
{
	return EVP_EC_gen("P-256");
}

char *acme_key_pem(EVP_PKEY *key)
{
	BIO *b = BIO_new(BIO_s_mem());
	char *p, *out;
	long n;
	PEM_write_bio_PrivateKey(b, key, NULL, NULL, 0, NULL, NULL);
	n = BIO_get_mem_data(b, &p);
	out = xstrndup(p, (size_t)n);
	BIO_free(b);
	return out;
}

EVP_PKEY *acme_key_from_pem(const char *pem, size_t len)
{
	BIO *b = BIO_new_mem_buf(pem, (int)len);
	EVP_PKEY *k = b ? PEM_read_bio_PrivateKey(b, NULL, NULL, NULL) : NULL;
	BIO_free(b);
	ERR_clear_error();
	return k;
}

EVP_PKEY *acme_key_load_or_make(const char *path, char **err)
{
	FILE *f = fopen(path, "re");
	EVP_PKEY *k;
	char *tmp, *pem;
	int fd;
	bool ok;

	*err = NULL;
	if (f) {
		k = PEM_read_PrivateKey(f, NULL, NULL, NULL);
		fclose(f);
		if (k == NULL)
			*err = acme_ssl_error("cannot read the key", path);
		return k;
	}
	if (errno != ENOENT) {
		*err = xasprintf("cannot open %s: %s", path, strerror(errno));
		return NULL;
	}
	k = acme_key_new();
	if (k == NULL) {
		*err = acme_ssl_error("cannot make a key for", path);
		return NULL;
	}
	/* Temporary name, fsync, rename: a crash leaves the old state or the
	 * whole key, never half of one; 0600 from the first byte. */
	tmp = xasprintf("%s.tmp", path);
	pem = acme_key_pem(k);
	unlink(tmp);
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	ok = fd >= 0 && write(fd, pem, strlen(pem)) == (ssize_t)strlen(pem) && fsync(fd) == 0;
	if (fd >= 0)
		ok = close(fd) == 0 && ok;
	ok = ok && rename(tmp, path) == 0;
	if (!ok) {
		*err = xasprintf("cannot write %s: %s", path, strerror(errno));
		unlink(tmp);
		EVP_PKEY_free(k);
		k = NULL;
	}
	free(pem);
	free(tmp);
	return k;
}

/* The public point's coordinates, 32 octets each. */
static bool acme_key_xy(EVP_PKEY *key, unsigned char x[ACME_EC_COORD], unsigned char y[ACME_EC_COORD])
{
	BIGNUM *bx = NULL, *by = NULL;
	bool ok = EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_EC_PUB_X, &bx) == 1 &&
		EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_EC_PUB_Y, &by) == 1 &&
		BN_bn2binpad(bx, x, ACME_EC_COORD) == ACME_EC_COORD && BN_bn2binpad(by, y, ACME_EC_COORD) == ACME_EC_COORD;
	BN_free(bx);
	BN_free(by);
	return ok;
}

char *acme_jwk(EVP_PKEY *key)
{
	unsigned char x[ACME_EC_COORD], y[ACME_EC_COORD];
	char *bx, *by, *out;
	if (!acme_key_xy(key, x, y))
		return NULL;
	bx = b64url_encode_alloc(x, sizeof(x));
	by = b64url_encode_alloc(y, sizeof(y));
	/* RFC 7638 3.2: the required members only, sorted, no white space. */
	out = xasprintf("{\"crv\":\"P-256\",\"kty\":\"EC\",\"x\":\"%s\",\"y\":\"%s\"}", bx, by);
	free(bx);
	free(by);
	return out;
}

char *acme_thumbprint(EVP_PKEY *key)
{
	unsigned char md[SHA256_DIGEST_LENGTH];
	char *jwk = acme_jwk(key), *out;
	if (jwk == NULL)
		return NULL;
	SHA256((const unsigned char *)jwk, strlen(jwk), md);
	out = b64url_encode_alloc(md, sizeof(md));
	free(jwk);
	return out;
}

char *acme_key_authorization(const char *token, EVP_PKEY *key)
{
	char *tp = acme_thumbprint(key), *out;
	if (tp == NULL)
		return NULL;
	out = xasprintf("%s.%s", token, tp);
	free(tp);
	return out;
}

/* ES256 (RFC 7518 3.4): the DER ECDSA signature as r || s. */
static char *acme_sign_es256(EVP_PKEY *key, const char *input)
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	unsigned char der[80], rs[2 * ACME_EC_COORD];
	const unsigned char *p = der;
	size_t n = sizeof(der);
	ECDSA_SIG *sig = NULL;
	char *out = NULL;

	if (md && EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, key) == 1 &&
	    EVP_DigestSign(md, der, &n, (const unsigned char *)input, strlen(input)) == 1 &&
	    (sig = d2i_ECDSA_SIG(NULL, &p, (long)n)) != NULL &&
	    BN_bn2binpad(ECDSA_SIG_get0_r(sig), rs, ACME_EC_COORD) == ACME_EC_COORD &&
	    BN_bn2binpad(ECDSA_SIG_get0_s(sig), rs + ACME_EC_COORD, ACME_EC_COORD) == ACME_EC_COORD)
		out = b64url_encode_alloc(rs, sizeof(rs));
	ECDSA_SIG_free(sig);
	EVP_MD_CTX_free(md);
	ERR_clear_error();
	return out;
}

char *acme_jws(EVP_PKEY *key, const char *kid, const char *nonce, const char *url, const char *payload)
{
	json_t *prot = json_pack("{s:s, s:s, s:s}", "alg", "ES256", "nonce", nonce, "url", url);
	char *prot_json, *prot64, *pay64, *input, *sig, *out = NULL;

	if (prot == NULL)
		return NULL;
	if (kid) {
		json_object_set_new(prot, "kid", json_string(kid));
	} else {
		char *jwk = acme_jwk(key);
		json_t *j = jwk ? json_loads(jwk, 0, NULL) : NULL;
		free(jwk);
		if (j == NULL) {
			json_decref(prot);
			return NULL;
		}
		json_object_set_new(prot, "jwk", j);
	}
	prot_json = json_dumps(prot, JSON_COMPACT);
	json_decref(prot);
	prot64 = b64url_encode_alloc(prot_json, strlen(prot_json));
	pay64 = b64url_encode_alloc(payload, strlen(payload));
	input = xasprintf("%s.%s", prot64, pay64);
	sig = acme_sign_es256(key, input);
	if (sig) {
		json_t *jws = json_pack("{s:s, s:s, s:s}", "protected", prot64, "payload", pay64, "signature", sig);
		char *s = json_dumps(jws, JSON_COMPACT);
		out = xstrdup(s);
		free(s);
		json_decref(jws);
	}
	free(prot_json);   /* jansson's allocator is malloc */
	free(prot64);
	free(pay64);
	free(input);
	free(sig);
	return out;
}

static bool acme_add_san(X509_EXTENSIONS *exts, X509 *x, char *const *names, size_t n)
{
	size_t cap = 1, o = 0;
	char *san;
	X509_EXTENSION *ext;
	X509V3_CTX v3;

	for (size_t i = 0; i < n; i++)
		cap += strlen(names[i]) + 5;
	san = xmalloc(cap);
	san[0] = '\0';
	for (size_t i = 0; i < n; i++)
		o += (size_t)snprintf(san + o, cap - o, "%sDNS:%s", i ? "," : "", names[i]);
	X509V3_set_ctx_nodb(&v3);
	X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
	ext = X509V3_EXT_conf_nid(NULL, &v3, NID_subject_alt_name, san);
	free(san);
	if (ext == NULL)
		return false;
	bool ok = exts ? sk_X509_EXTENSION_push(exts, ext) > 0 : X509_add_ext(x, ext, -1) == 1;
	if (!exts || !ok)
		X509_EXTENSION_free(ext);
	return ok;
}

char *acme_csr(EVP_PKEY *key, char *const *names, size_t n)
{
	X509_REQ *req = X509_REQ_new();
	X509_EXTENSIONS *exts = sk_X509_EXTENSION_new_null();
	X509_NAME *name = X509_NAME_new();
	unsigned char *der = NULL;
	char *out = NULL;
	int len;

	if (req && exts && name && n > 0 && X509_REQ_set_version(req, 0) == 1 &&
	    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *)names[0], -1, -1, 0) == 1 &&
	    X509_REQ_set_subject_name(req, name) == 1 && X509_REQ_set_pubkey(req, key) == 1 &&
	    acme_add_san(exts, NULL, names, n) && X509_REQ_add_extensions(req, exts) == 1 &&
	    X509_REQ_sign(req, key, EVP_sha256()) > 0 && (len = i2d_X509_REQ(req, &der)) > 0)
		out = b64url_encode_alloc(der, (size_t)len);
	OPENSSL_free(der);
	sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
	X509_NAME_free(name);
	X509_REQ_free(req);
	ERR_clear_error();
	return out;
}

/* id-pe-acmeIdentifier (RFC 8737 6.1): critical, extnValue the DER of
 * Authorization ::= OCTET STRING (SIZE (32)), SHA-256 of the key
 * authorization. */
static bool acme_add_identifier(X509 *x, const char *key_authz)
{
	unsigned char der[2 + SHA256_DIGEST_LENGTH] = { 0x04, SHA256_DIGEST_LENGTH };
	ASN1_OBJECT *oid = OBJ_txt2obj("1.3.6.1.5.5.7.1.31", 1);
	ASN1_OCTET_STRING *os = ASN1_OCTET_STRING_new();
	X509_EXTENSION *ext = NULL;
	bool ok = false;

	SHA256((const unsigned char *)key_authz, strlen(key_authz), der + 2);
	if (oid && os && ASN1_OCTET_STRING_set(os, der, sizeof(der)) == 1 &&
	    (ext = X509_EXTENSION_create_by_OBJ(NULL, oid, 1, os)) != NULL)
		ok = X509_add_ext(x, ext, -1) == 1;
	X509_EXTENSION_free(ext);
	ASN1_OCTET_STRING_free(os);
	ASN1_OBJECT_free(oid);
	return ok;
}

X509 *acme_alpn_cert(EVP_PKEY *key, const char *name, const char *key_authz)
{
	X509 *x = X509_new();
	X509_NAME *subj;
	uint64_t serial = 0;
	char *const names[] = { (char *)name };

	if (x == NULL)
		return NULL;
	RAND_bytes((unsigned char *)&serial, sizeof(serial));
	serial &= INT64_MAX;
	subj = X509_get_subject_name(x);
	if (X509_set_version(x, 2) != 1 || ASN1_INTEGER_set_uint64(X509_get_serialNumber(x), serial | 1) != 1 ||
	    X509_gmtime_adj(X509_getm_notBefore(x), -3600) == NULL ||
	    X509_gmtime_adj(X509_getm_notAfter(x), 7 * 86400L) == NULL || X509_set_pubkey(x, key) != 1 ||
	    X509_NAME_add_entry_by_txt(subj, "CN", MBSTRING_UTF8, (const unsigned char *)name, -1, -1, 0) != 1 ||
	    X509_set_issuer_name(x, subj) != 1 || !acme_add_san(NULL, x, names, 1) ||
	    !acme_add_identifier(x, key_authz) || X509_sign(x, key, EVP_sha256()) <= 0) {
		X509_free(x);
		ERR_clear_error();
		return NULL;
	}
	return x;
}
