/*
 * test_tls.c - the server TLS context: the self-signed development
 * certificate (made once, EC P-256, CN and SAN = hostname, key 0600),
 * explicit files that are missing or do not match, reload keeping the
 * old context on failure, and the protocol settings of every SSL.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "core/config.h"
#include "core/log.h"
#include "core/tls.h"
#include "core/util.h"

struct fixture {
	char dir[64];
	struct config *cfg;
};

static int setup(void **state)
{
	struct fixture *f = xcalloc(1, sizeof(*f));
	strcpy(f->dir, "/tmp/tern-test-tls-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	log_set_quiet(1);
	f->cfg = config_dev_default();
	free(f->cfg->state_dir);
	free(f->cfg->hostname);
	free(f->cfg->tls_cert);
	free(f->cfg->tls_key);
	f->cfg->state_dir = xstrdup(f->dir);
	f->cfg->hostname = xstrdup("unit.test");
	f->cfg->tls_cert = xasprintf("%s/tls/cert.pem", f->dir);
	f->cfg->tls_key = xasprintf("%s/tls/key.pem", f->dir);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	char *cmd = xasprintf("rm -rf '%s'", f->dir);
	assert_int_equal(system(cmd), 0);
	free(cmd);
	config_free(f->cfg);
	free(f);
	return 0;
}

static char *slurp(const char *path)
{
	FILE *fp = fopen(path, "r");
	char *buf = xcalloc(1, 65536);
	assert_non_null(fp);
	assert_true(fread(buf, 1, 65535, fp) > 0);
	fclose(fp);
	return buf;
}

static void test_self_signed_made_once(void **state)
{
	struct fixture *f = *state;
	char *err = NULL, *first, *again;
	struct tls_ctx *c = tls_ctx_new(f->cfg, &err);
	struct stat st;
	X509 *x;
	FILE *fp;

	assert_non_null(c);
	assert_null(err);
	assert_int_equal(stat(f->cfg->tls_key, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	fp = fopen(f->cfg->tls_cert, "r");
	x = PEM_read_X509(fp, NULL, NULL, NULL);
	fclose(fp);
	assert_non_null(x);
	assert_int_equal(X509_check_host(x, "unit.test", 0, 0, NULL), 1);
	assert_int_equal(X509_check_host(x, "other.test", 0, 0, NULL), 0);
	assert_int_equal(EVP_PKEY_get_id(X509_get0_pubkey(x)), EVP_PKEY_EC);
	X509_free(x);
	first = slurp(f->cfg->tls_cert);
	tls_ctx_free(c);
	c = tls_ctx_new(f->cfg, &err);
	assert_non_null(c);
	again = slurp(f->cfg->tls_cert);
	assert_string_equal(first, again);
	free(first);
	free(again);
	tls_ctx_free(c);
}

static void test_explicit_missing(void **state)
{
	struct fixture *f = *state;
	char *err = NULL;
	free(f->cfg->tls_cert);
	f->cfg->tls_cert = xasprintf("%s/elsewhere/cert.pem", f->dir);
	assert_null(tls_ctx_new(f->cfg, &err));
	assert_non_null(err);
	assert_non_null(strstr(err, "elsewhere/cert.pem"));
	free(err);
	/* nothing was made up */
	assert_int_not_equal(access(f->cfg->tls_cert, F_OK), 0);
	assert_int_not_equal(access(f->cfg->tls_key, F_OK), 0);
}

static void test_key_must_match(void **state)
{
	struct fixture *f = *state;
	char *err = NULL, *other = xasprintf("%s/b", f->dir);
	struct tls_ctx *c = tls_ctx_new(f->cfg, &err);   /* makes dir/tls/{cert,key}.pem */
	struct config *cfg2 = config_dev_default();

	assert_non_null(c);
	free(cfg2->state_dir);
	cfg2->state_dir = xstrdup(other);
	free(cfg2->tls_cert);
	free(cfg2->tls_key);
	cfg2->tls_cert = xasprintf("%s/tls/cert.pem", other);
	cfg2->tls_key = xasprintf("%s/tls/key.pem", other);
	tls_ctx_free(tls_ctx_new(cfg2, &err));            /* a second pair */
	free(cfg2->tls_key);
	cfg2->tls_key = xstrdup(f->cfg->tls_key);         /* cert of one, key of the other */
	assert_null(tls_ctx_new(cfg2, &err));
	assert_non_null(err);
	/* OpenSSL notices the mismatch while loading the key, or at the check */
	assert_true(strstr(err, "does not match") || strstr(err, "key values mismatch"));
	free(err);
	config_free(cfg2);
	free(other);
	tls_ctx_free(c);
}

static void test_reload_keeps_old_on_failure(void **state)
{
	struct fixture *f = *state;
	char *err = NULL;
	struct tls_ctx *c = tls_ctx_new(f->cfg, &err);
	FILE *fp;
	SSL *ssl;

	assert_non_null(c);
	assert_true(tls_ctx_reload(c, &err));
	fp = fopen(f->cfg->tls_cert, "w");
	fputs("not a certificate\n", fp);
	fclose(fp);
	assert_false(tls_ctx_reload(c, &err));
	assert_non_null(err);
	free(err);
	ssl = tls_ctx_new_ssl(c);
	assert_non_null(ssl);
	SSL_free(ssl);
	/* default paths: a missing pair is made again on reload */
	unlink(f->cfg->tls_cert);
	unlink(f->cfg->tls_key);
	assert_true(tls_ctx_reload(c, &err));
	assert_int_equal(access(f->cfg->tls_key, R_OK), 0);
	tls_ctx_free(c);
}

static void test_ssl_settings(void **state)
{
	struct fixture *f = *state;
	char *err = NULL, buf[64];
	struct tls_ctx *c = tls_ctx_new(f->cfg, &err);
	SSL *ssl = tls_ctx_new_ssl(c);

	assert_non_null(ssl);
	assert_int_equal(SSL_get_min_proto_version(ssl), TLS1_2_VERSION);
	assert_int_equal(SSL_get_max_proto_version(ssl), TLS1_3_VERSION);
	assert_true(SSL_get_options(ssl) & SSL_OP_NO_COMPRESSION);
	assert_true(SSL_get_options(ssl) & SSL_OP_NO_RENEGOTIATION);
	assert_false(SSL_is_server(ssl) == 0);
	tls_describe(NULL, buf, sizeof(buf));
	assert_string_equal(buf, "");
	tls_describe(ssl, buf, 0);    /* cap 0 writes nothing */
	SSL_free(ssl);
	tls_ctx_free(c);
	tls_ctx_free(NULL);
}

/* ---- the certificate store: choice by SNI and ALPN ---------------------- */

/* A self-signed certificate for san ("DNS:a,DNS:b") with key, as PEM. */
static char *make_pem(EVP_PKEY *key, const char *cn, const char *san)
{
	X509 *x = X509_new();
	X509V3_CTX v3;
	X509_EXTENSION *ext;
	BIO *b = BIO_new(BIO_s_mem());
	char *p, *out;
	long n;

	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), 7);
	X509_gmtime_adj(X509_getm_notBefore(x), -60);
	X509_gmtime_adj(X509_getm_notAfter(x), 86400);
	X509_set_pubkey(x, key);
	X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_UTF8, (const unsigned char *)cn, -1, -1, 0);
	X509_set_issuer_name(x, X509_get_subject_name(x));
	X509V3_set_ctx_nodb(&v3);
	X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
	ext = X509V3_EXT_conf_nid(NULL, &v3, NID_subject_alt_name, san);
	X509_add_ext(x, ext, -1);
	X509_EXTENSION_free(ext);
	assert_true(X509_sign(x, key, EVP_sha256()) > 0);
	PEM_write_bio_X509(b, x);
	n = BIO_get_mem_data(b, &p);
	out = xstrndup(p, (size_t)n);
	BIO_free(b);
	X509_free(x);
	return out;
}

/* The CN of the certificate a client asking for sni (and ALPN alpn, if
 * any) gets, in cn; false when the handshake fails. */
static bool handshake(struct tls_ctx *c, const char *sni, const char *alpn, char *cn, size_t cap, bool *acme)
{
	SSL_CTX *cctx = SSL_CTX_new(TLS_client_method());
	SSL *cl = SSL_new(cctx), *sv = tls_ctx_new_ssl(c);
	BIO *b1, *b2;
	int r1 = 0, r2 = 0;
	bool ok = false;

	BIO_new_bio_pair(&b1, 0, &b2, 0);
	SSL_set_bio(cl, b1, b1);
	SSL_set_bio(sv, b2, b2);
	SSL_set_connect_state(cl);
	SSL_set_accept_state(sv);
	if (sni)
		SSL_set_tlsext_host_name(cl, sni);
	if (alpn) {
		unsigned char wire[64];
		wire[0] = (unsigned char)strlen(alpn);
		memcpy(wire + 1, alpn, wire[0]);
		SSL_set_alpn_protos(cl, wire, wire[0] + 1u);
	}
	for (int i = 0; i < 50 && (r1 != 1 || r2 != 1); i++) {
		if (r1 != 1)
			r1 = SSL_do_handshake(cl);
		if (r2 != 1)
			r2 = SSL_do_handshake(sv);
		if ((r1 <= 0 && SSL_get_error(cl, r1) == SSL_ERROR_SSL) || (r2 <= 0 && SSL_get_error(sv, r2) == SSL_ERROR_SSL))
			break;
	}
	if (r1 == 1 && r2 == 1) {
		X509 *peer = SSL_get1_peer_certificate(cl);
		X509_NAME_get_text_by_NID(X509_get_subject_name(peer), NID_commonName, cn, (int)cap);
		X509_free(peer);
		*acme = tls_is_acme_validation(sv);
		ok = true;
	}
	ERR_clear_error();
	SSL_free(cl);
	SSL_free(sv);
	SSL_CTX_free(cctx);
	return ok;
}

static void test_store_chooses_by_sni(void **state)
{
	struct fixture *f = *state;
	char *err = NULL, cn[64];
	bool acme;
	struct tls_ctx *c = tls_ctx_new(f->cfg, &err);
	EVP_PKEY *k = EVP_EC_gen("P-256"), *other = EVP_EC_gen("P-256");
	char *pem = make_pem(k, "store.test", "DNS:mail.other.test,DNS:*.wild.test");

	assert_non_null(c);
	assert_non_null(tls_ctx_get_cert(c, "tls"));
	assert_null(tls_ctx_get_cert(c, "acme"));
	assert_true(handshake(c, NULL, NULL, cn, sizeof(cn), &acme));
	assert_string_equal(cn, "unit.test");

	assert_false(tls_ctx_set_cert(c, "acme", other, pem, strlen(pem), &err));   /* key of another */
	assert_non_null(err);
	free(err);
	assert_null(tls_ctx_get_cert(c, "acme"));
	assert_false(tls_ctx_set_cert(c, "acme", k, "junk", 4, &err));
	free(err);
	assert_true(tls_ctx_set_cert(c, "acme", k, pem, strlen(pem), &err));
	assert_non_null(tls_ctx_get_cert(c, "acme"));

	static const struct { const char *sni; const char *cn; } want[] = {
		{ NULL, "unit.test" },                /* no SNI: the hostname's */
		{ "mail.other.test", "store.test" },
		{ "MAIL.Other.Test", "store.test" },
		{ "a.wild.test", "store.test" },
		{ "b.a.wild.test", "unit.test" },     /* a wildcard is one label */
		{ "wild.test", "unit.test" },
		{ "unknown.test", "unit.test" },
	};
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		assert_true(handshake(c, want[i].sni, NULL, cn, sizeof(cn), &acme));
		assert_string_equal(cn, want[i].cn);
		assert_false(acme);
	}
	/* A reload puts the [tls] files back into slot "tls"; "acme" stays. */
	assert_true(tls_ctx_reload(c, &err));
	assert_true(handshake(c, "mail.other.test", NULL, cn, sizeof(cn), &acme));
	assert_string_equal(cn, "store.test");
	free(pem);
	EVP_PKEY_free(k);
	EVP_PKEY_free(other);
	tls_ctx_free(c);
}

static void test_store_alpn_challenge(void **state)
{
	struct fixture *f = *state;
	char *err = NULL, cn[64];
	bool acme = false;
	struct tls_ctx *c = tls_ctx_new(f->cfg, &err);
	EVP_PKEY *k = EVP_EC_gen("P-256");
	char *pem = make_pem(k, "challenge.test", "DNS:unit.test");
	BIO *b = BIO_new_mem_buf(pem, -1);
	X509 *x = PEM_read_bio_X509(b, NULL, NULL, NULL);

	assert_false(handshake(c, "unit.test", "acme-tls/1", cn, sizeof(cn), &acme));   /* none yet */
	assert_true(tls_ctx_set_challenge(c, "unit.test", x, k));
	assert_true(handshake(c, "unit.test", "acme-tls/1", cn, sizeof(cn), &acme));
	assert_string_equal(cn, "challenge.test");
	assert_true(acme);
	assert_false(handshake(c, "other.test", "acme-tls/1", cn, sizeof(cn), &acme));
	/* Without acme-tls/1 the normal certificate, ALPN not agreed. */
	assert_true(handshake(c, "unit.test", "http/1.1", cn, sizeof(cn), &acme));
	assert_string_equal(cn, "unit.test");
	assert_false(acme);
	assert_true(tls_ctx_set_challenge(c, "unit.test", NULL, NULL));
	assert_false(handshake(c, "unit.test", "acme-tls/1", cn, sizeof(cn), &acme));
	/* Left outstanding: freed with the context. */
	assert_true(tls_ctx_set_challenge(c, "unit.test", x, k));
	X509_free(x);
	BIO_free(b);
	free(pem);
	EVP_PKEY_free(k);
	tls_ctx_free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_self_signed_made_once, setup, teardown),
		cmocka_unit_test_setup_teardown(test_explicit_missing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_key_must_match, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reload_keeps_old_on_failure, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ssl_settings, setup, teardown),
		cmocka_unit_test_setup_teardown(test_store_chooses_by_sni, setup, teardown),
		cmocka_unit_test_setup_teardown(test_store_alpn_challenge, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
