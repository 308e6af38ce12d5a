/*
 * tls_hello.h - the two ClientHello extensions tern chooses a certificate
 * by, read from their raw extension data (what OpenSSL's
 * SSL_client_hello_get0_ext hands over): server_name (RFC 6066 3) and
 * application_layer_protocol_negotiation (RFC 7301 3.1).  Pure functions
 * over bytes.
 */
#ifndef TERN_TLS_HELLO_H
#define TERN_TLS_HELLO_H

#include <stdbool.h>
#include <stddef.h>

#define TLS_HELLO_NAME_MAX 255   /* a DNS name, RFC 1035 2.3.4 */

/* The host_name of a server_name extension, lower-cased, final dot
 * dropped, NUL-terminated in out (cap >= TLS_HELLO_NAME_MAX + 1).
 * Returns false when the data is malformed, holds no host_name, or the
 * name has characters no host name has. */
bool tls_hello_sni(const unsigned char *p, size_t n, char *out, size_t cap);

/* 1 when an ALPN extension's protocol list holds proto, 0 when it does
 * not, -1 when the data is malformed (empty names, lengths that overrun). */
int tls_hello_alpn_has(const unsigned char *p, size_t n, const char *proto);

#endif
