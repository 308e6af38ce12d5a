/*
 * spf_record.h - SPF records (RFC 7208 4.5, 5, 6, 12) and macros (7).
 * Pure: the record text in, its terms out (spans into the text); a macro
 * string and the identities in, the expanded domain name (or exp= text)
 * out.
 */
#ifndef TERN_SPF_RECORD_H
#define TERN_SPF_RECORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Terms per record: a 5000-octet record of ip4 ranges (some senders
 * publish such) has about 300; the bound only stops term bombs. */
#define SPF_TERMS_MAX 512
#define SPF_NAME_MAX 253

enum spf_qual { SPF_Q_PASS = '+', SPF_Q_FAIL = '-', SPF_Q_SOFTFAIL = '~', SPF_Q_NEUTRAL = '?' };

enum spf_mech { SPF_ALL, SPF_INCLUDE, SPF_A, SPF_MX, SPF_PTR, SPF_IP4, SPF_IP6, SPF_EXISTS };

struct spf_span {
	const char *p;
	size_t len;
};

struct spf_term {
	enum spf_qual qual;
	enum spf_mech mech;
	struct spf_span domain; /* domain-spec, empty: the current domain */
	unsigned char addr[16];  /* ip4 (4 octets) / ip6 */
	unsigned cidr4, cidr6;   /* 32 / 128 when not given */
};

struct spf_record {
	struct spf_term terms[SPF_TERMS_MAX];
	size_t n;
	struct spf_span redirect, exp; /* empty when absent */
	bool has_redirect, has_exp;
};

/* True when txt is an SPF record at all: "v=spf1" then SP or the end
 * (4.5), case-insensitive. */
bool spf_is_record(const char *txt, size_t len);

/* Parse a record; false with *reason set on a syntax error (permerror). */
bool spf_record_parse(const char *txt, size_t len, struct spf_record *rec, const char **reason);

/* The identities macros refer to (7.3). */
struct spf_macro_ctx {
	const char *sender;  /* local-part@domain */
	const char *domain;  /* current domain */
	const char *helo;
	int family;          /* AF_INET or AF_INET6 */
	unsigned char ip[16];
	/* exp= text only (6.2): %{r}, NULL for "unknown", and %{t} */
	const char *receiver;
	uint64_t now;
};

/* Expand a macro-string into out (NUL-terminated); domain names longer
 * than 253 octets lose labels on the left (7.3).  False on a syntax error
 * or an expansion that does not fit. */
bool spf_macro_expand(const char *in, size_t len, const struct spf_macro_ctx *ctx, char *out, size_t cap);

/* Expand an explain-string (6.2: macro-strings and spaces, the TXT
 * record an exp= names) into out, NUL-terminated; the exp-only macros
 * c, r and t are allowed.  False on a syntax error, a character outside
 * the visible ASCII and space, or an expansion that does not fit. */
bool spf_explain_expand(const char *in, size_t len, const struct spf_macro_ctx *ctx, char *out, size_t cap);

#endif
