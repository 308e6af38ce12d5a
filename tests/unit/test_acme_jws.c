/*
 * test_acme_jws.c - ACME's cryptography checked with OpenSSL from the
 * other side: the JWK's members and order (RFC 7638 3.2), a JWS whose
 * ES256 signature verifies over protected.payload with jwk or kid (RFC
 * 8555 6.2), the key authorization (8.1), a CSR that verifies and names
 * every domain, the tls-alpn-01 certificate's critical acmeIdentifier
 * (RFC 8737 3), and the account key file (made once, 0600, read back).
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

#include <jansson.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/sha.h>
#include <openssl/x509v3.h>

#include "core/util.h"
#include "proto/acme_wire.h"
#include "proto/base64.h"
#include "web/acme_jws.h"

/* base64url -> octets, through the strict base64 decoder. */
static unsigned char *unb64url(const char *s, size_t *n)
{
	size_t len = strlen(s), i;
	char *std = xmalloc(len + 4);
	for (i = 0; i < len; i++)
		std[i] = s[i] == '-' ? '+' : s[i] == '_' ? '/' : s[i];
	while (i % 4)
		std[i++] = '=';
	unsigned char *out = xmalloc(i);
	assert_true(base64_decode(std, i, out, i, n));
	free(std);
	return out;
}

static char *unb64url_str(const char *s)
{
	size_t n;
	unsigned char *b = unb64url(s, &n);
	char *out = xstrndup((const char *)b, n);
	free(b);
	return out;
}

static void test_jwk_and_thumbprint(void **state)
{
	EVP_PKEY *k = acme_key_new();
	char *jwk = acme_jwk(k);
	json_t *j = json_loads(jwk, 0, NULL);
	unsigned char md[32];
	char *tp, *want, *ka;

	assert_non_null(j);
	static const char head[] = "{\"crv\":\"P-256\",\"kty\":\"EC\",\"x\":\"";
	assert_int_equal(strncmp(jwk, head, sizeof(head) - 1), 0);
	assert_int_equal(strlen(json_string_value(json_object_get(j, "x"))), 43);
	assert_int_equal(strlen(json_string_value(json_object_get(j, "y"))), 43);
	assert_null(strchr(jwk, ' '));
	SHA256((const unsigned char *)jwk, strlen(jwk), md);
	want = b64url_encode_alloc(md, sizeof(md));
	tp = acme_thumbprint(k);
	assert_string_equal(tp, want);
	ka = acme_key_authorization("tok-EN_1", k);
	char *expect = xasprintf("tok-EN_1.%s", tp);
	assert_string_equal(ka, expect);
	free(expect);
	free(ka);
	free(tp);
	free(want);
	json_decref(j);
	free(jwk);
	EVP_PKEY_free(k);
}

/* The JWS verifies with the key; returns its protected header. */
static json_t *verify_jws(EVP_PKEY *k, const char *jws, const char *payload)
{
	json_t *j = json_loads(jws, 0, NULL);
	const char *prot = json_string_value(json_object_get(j, "protected"));
	const char *pay = json_string_value(json_object_get(j, "payload"));
	const char *sig64 = json_string_value(json_object_get(j, "signature"));
	size_t n;
	unsigned char *rs = unb64url(sig64, &n);
	ECDSA_SIG *sig = ECDSA_SIG_new();
	unsigned char *der = NULL;
	int dlen;
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	char *input = xasprintf("%s.%s", prot, pay);
	char *dec = unb64url_str(pay);

	assert_string_equal(dec, payload);
	assert_int_equal(n, 64);
	ECDSA_SIG_set0(sig, BN_bin2bn(rs, 32, NULL), BN_bin2bn(rs + 32, 32, NULL));
	dlen = i2d_ECDSA_SIG(sig, &der);
	assert_true(dlen > 0);
	assert_int_equal(EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, k), 1);
	assert_int_equal(EVP_DigestVerify(md, der, (size_t)dlen, (const unsigned char *)input, strlen(input)), 1);
	char *ph = unb64url_str(prot);
	json_t *h = json_loads(ph, 0, NULL);
	assert_non_null(h);
	free(ph);
	free(dec);
	free(input);
	EVP_MD_CTX_free(md);
	OPENSSL_free(der);
	ECDSA_SIG_free(sig);
	free(rs);
	json_decref(j);
	return h;
}

static void test_jws(void **state)
{
	EVP_PKEY *k = acme_key_new();
	char *jws = acme_jws(k, NULL, "nonce-1", "https://ca.test/new-acct", "{\"termsOfServiceAgreed\":true}");
	json_t *h = verify_jws(k, jws, "{\"termsOfServiceAgreed\":true}");

	assert_string_equal(json_string_value(json_object_get(h, "alg")), "ES256");
	assert_string_equal(json_string_value(json_object_get(h, "nonce")), "nonce-1");
	assert_string_equal(json_string_value(json_object_get(h, "url")), "https://ca.test/new-acct");
	assert_non_null(json_object_get(h, "jwk"));
	assert_null(json_object_get(h, "kid"));
	json_decref(h);
	free(jws);

	jws = acme_jws(k, "https://ca.test/acct/1", "nonce-2", "https://ca.test/order/1", "");
	h = verify_jws(k, jws, "");   /* POST-as-GET: empty payload */
	assert_string_equal(json_string_value(json_object_get(h, "kid")), "https://ca.test/acct/1");
	assert_null(json_object_get(h, "jwk"));
	json_decref(h);
	free(jws);
	EVP_PKEY_free(k);
}

static void test_csr(void **state)
{
	EVP_PKEY *k = acme_key_new();
	char *names[] = { "mx.example.test", "mta-sts.example.test", "autoconfig.example.test" };
	char *csr = acme_csr(k, names, 3);
	size_t n;
	unsigned char *der = unb64url(csr, &n);
	const unsigned char *p = der;
	X509_REQ *req = d2i_X509_REQ(NULL, &p, (long)n);
	STACK_OF(X509_EXTENSION) *exts;
	GENERAL_NAMES *san = NULL;

	assert_non_null(req);
	assert_int_equal(X509_REQ_verify(req, k), 1);
	exts = X509_REQ_get_extensions(req);
	for (int i = 0; i < sk_X509_EXTENSION_num(exts); i++) {
		X509_EXTENSION *e = sk_X509_EXTENSION_value(exts, i);
		if (OBJ_obj2nid(X509_EXTENSION_get_object(e)) == NID_subject_alt_name)
			san = X509V3_EXT_d2i(e);
	}
	assert_non_null(san);
	assert_int_equal(sk_GENERAL_NAME_num(san), 3);
	for (int i = 0; i < 3; i++) {
		GENERAL_NAME *g = sk_GENERAL_NAME_value(san, i);
		assert_int_equal(g->type, GEN_DNS);
		assert_string_equal((const char *)ASN1_STRING_get0_data(g->d.dNSName), names[i]);
	}
	GENERAL_NAMES_free(san);
	sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
	X509_REQ_free(req);
	free(der);
	free(csr);
	EVP_PKEY_free(k);
}

static void test_alpn_cert(void **state)
{
	EVP_PKEY *k = acme_key_new();
	X509 *x = acme_alpn_cert(k, "mx.example.test", "tok.thumb");
	ASN1_OBJECT *oid = OBJ_txt2obj("1.3.6.1.5.5.7.1.31", 1);
	int at = X509_get_ext_by_OBJ(x, oid, -1);
	unsigned char want[34] = { 0x04, 0x20 };
	X509_EXTENSION *e;
	const ASN1_OCTET_STRING *v;

	assert_true(at >= 0);
	e = X509_get_ext(x, at);
	assert_int_equal(X509_EXTENSION_get_critical(e), 1);
	v = X509_EXTENSION_get_data(e);
	SHA256((const unsigned char *)"tok.thumb", 9, want + 2);
	assert_int_equal(ASN1_STRING_length(v), 34);
	assert_memory_equal(ASN1_STRING_get0_data(v), want, 34);
	assert_int_equal(X509_check_host(x, "mx.example.test", 0, 0, NULL), 1);
	assert_int_equal(X509_check_host(x, "other.example.test", 0, 0, NULL), 0);
	assert_int_equal(X509_verify(x, k), 1);
	ASN1_OBJECT_free(oid);
	X509_free(x);
	EVP_PKEY_free(k);
}

static void test_key_file(void **state)
{
	char dir[] = "/tmp/tern-test-acme-XXXXXX";
	char *path, *err = NULL;
	struct stat st;
	EVP_PKEY *a, *b;

	assert_non_null(mkdtemp(dir));
	path = xasprintf("%s/account.key", dir);
	a = acme_key_load_or_make(path, &err);
	assert_non_null(a);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	b = acme_key_load_or_make(path, &err);
	assert_non_null(b);
	assert_int_equal(EVP_PKEY_eq(a, b), 1);
	EVP_PKEY_free(b);
	FILE *f = fopen(path, "w");
	fputs("not a key\n", f);
	fclose(f);
	assert_null(acme_key_load_or_make(path, &err));
	assert_non_null(err);
	free(err);
	unlink(path);
	rmdir(dir);
	free(path);
	EVP_PKEY_free(a);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_jwk_and_thumbprint),
		cmocka_unit_test(test_jws),
		cmocka_unit_test(test_csr),
		cmocka_unit_test(test_alpn_cert),
		cmocka_unit_test(test_key_file),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
