/*
 * base64.h - strict base64 (RFC 4648 section 4) for SASL exchanges and the
 * users file.  The decoder accepts only canonical input: padding required,
 * no whitespace, no characters outside the alphabet, zero trailing bits.
 */
#ifndef TERN_BASE64_H
#define TERN_BASE64_H

#include <stdbool.h>
#include <stddef.h>

/* Length of the encoding of n octets, without the terminating NUL.
 * Returns SIZE_MAX if that would not fit in a size_t. */
size_t base64_encoded_len(size_t n);

/* Encode len octets into out (cap bytes including room for the NUL).
 * Returns the encoded length (without NUL), or 0 if cap is too small
 * (and len > 0).  An empty input writes "" when cap >= 1. */
size_t base64_encode(const void *in, size_t len, char *out, size_t cap);

/* Decode len characters into out (cap octets).  Returns false on any
 * non-canonical input or if the result does not fit; *out_len is set
 * only on success. */
bool base64_decode(const char *in, size_t len, unsigned char *out, size_t cap, size_t *out_len);

/* Upper bound on the decoded length of len characters of base64. */
size_t base64_decoded_max(size_t len);

/* One digit and back, for encodings that stream their own bits with
 * this alphabet but another character for 63 (c63): IMAP's modified
 * UTF-7 (RFC 3501 5.1.3) writes ',' where base64 has '/'.  v is 0..63;
 * the value is -1 for a character outside the alphabet. */
char base64_digit(unsigned v, char c63);
int base64_digit_value(unsigned char c, char c63);

/* base64_encode into a fresh xmalloc'd, NUL-terminated string. */
char *base64_encode_alloc(const void *in, size_t len);

#endif
