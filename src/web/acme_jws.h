/*
 * acme_jws.h - the cryptography of ACME on OpenSSL: the account key
 * (ECDSA P-256) and its JWK (RFC 7517) and thumbprint (RFC 7638), JWS
 * requests signed ES256 in the flattened JSON form (RFC 8555 6.2, RFC
 * 7515 7.2.2), key authorizations (RFC 8555 8.1), the CSR of an order
 * (RFC 8555 7.4, RFC 2986) and the tls-alpn-01 validation certificate
 * (RFC 8737 3).  JSON through jansson.
 */
#ifndef TERN_ACME_JWS_H
#define TERN_ACME_JWS_H

#include <stdbool.h>
#include <stddef.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

/* A PEM private key from path, or, when the file does not exist, a new
 * P-256 key written there (mode 0600, through a temporary name, synced).
 * NULL with *err (xmalloc'd) otherwise. */
EVP_PKEY *acme_key_load_or_make(const char *path, char **err);
/* A new P-256 key. */
EVP_PKEY *acme_key_new(void);
/* The key as PEM text, xmalloc'd. */
char *acme_key_pem(EVP_PKEY *key);
/* A key from PEM text, NULL when it is none. */
EVP_PKEY *acme_key_from_pem(const char *pem, size_t len);

/* {"crv":"P-256","kty":"EC","x":..,"y":..}: members in lexicographic
 * order without white space, as the thumbprint needs; xmalloc'd. */
char *acme_jwk(EVP_PKEY *key);
/* base64url(SHA-256(jwk)) (RFC 7638 3), xmalloc'd. */
char *acme_thumbprint(EVP_PKEY *key);
/* token "." thumbprint (RFC 8555 8.1), xmalloc'd. */
char *acme_key_authorization(const char *token, EVP_PKEY *key);

/* The flattened JWS of payload ("" = POST-as-GET, RFC 8555 6.3) for url
 * with nonce, identified by kid, or by the jwk when kid is NULL
 * (newAccount, RFC 8555 6.2).  xmalloc'd; NULL if OpenSSL fails. */
char *acme_jws(EVP_PKEY *key, const char *kid, const char *nonce, const char *url, const char *payload);

/* base64url of a DER CSR for names (the first also the CN) signed with
 * key; xmalloc'd, NULL if OpenSSL fails. */
char *acme_csr(EVP_PKEY *key, char *const *names, size_t n);

/* The self-signed certificate for name carrying the critical
 * id-pe-acmeIdentifier extension with SHA-256(key_authz) (RFC 8737 3). */
X509 *acme_alpn_cert(EVP_PKEY *key, const char *name, const char *key_authz);

#endif
