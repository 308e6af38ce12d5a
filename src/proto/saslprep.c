/*
 * saslprep.c - SASLprep (RFC 4013 sections 2.1 - 2.5), the stringprep
 * profile (RFC 3454 sections 3 - 7) for user names and passwords, with
 * NFKC (Unicode 3.2, UAX #15: full decomposition, canonical ordering,
 * canonical composition, Hangul done arithmetically).  The tables live in
 * the generated saslprep_tables.c.  Work is on arrays of code points;
 * input is bounded by SASLPREP_INPUT_MAX, so the O(n^2) insertion sort of
 * combining marks stays cheap.
 */
#include "proto/saslprep.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "proto/saslprep_tables.h"

/* Property bits of saslprep_props; must match the generator. */
#define SASLPREP_P_MAP_NOTHING 1   /* B.1 */
#define SASLPREP_P_MAP_SPACE 2     /* C.1.2: mapped to U+0020 */
#define SASLPREP_P_PROHIBITED 4    /* C.1.2, C.2.1, C.2.2, C.3 - C.9 */
#define SASLPREP_P_UNASSIGNED 8    /* A.1 */
#define SASLPREP_P_RANDAL 16       /* D.1 */
#define SASLPREP_P_LCAT 32         /* D.2 */

/* Hangul syllables (Unicode 3.2 section 3.12). */
#define HANGUL_S 0xAC00
#define HANGUL_L 0x1100
#define HANGUL_V 0x1161
#define HANGUL_T 0x11A7
#define HANGUL_LCOUNT 19
#define HANGUL_VCOUNT 21
#define HANGUL_TCOUNT 28
#define HANGUL_NCOUNT (HANGUL_VCOUNT * HANGUL_TCOUNT)
#define HANGUL_SCOUNT (HANGUL_LCOUNT * HANGUL_NCOUNT)

#define SASLPREP_DECOMP_MAX 18     /* longest NFKD of one code point (U+FDFA) */

static const char *const saslprep_errors[] = {
	[SASLPREP_OK] = "ok",
	[SASLPREP_TOO_LONG] = "too long",
	[SASLPREP_BAD_UTF8] = "not UTF-8",
	[SASLPREP_UNASSIGNED] = "unassigned code point",
	[SASLPREP_PROHIBITED] = "prohibited character",
	[SASLPREP_BIDI] = "bidi rules",
};

const char *saslprep_strerror(enum saslprep_result r)
{
	return (size_t)r < ARRAY_LEN(saslprep_errors) ? saslprep_errors[r] : "?";
}

static uint8_t saslprep_range_find(const struct saslprep_range *t, size_t n, uint32_t cp)
{
	size_t lo = 0, hi = n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (cp < t[mid].lo)
			hi = mid;
		else if (cp > t[mid].hi)
			lo = mid + 1;
		else
			return t[mid].value;
	}
	return 0;
}

static uint8_t saslprep_prop(uint32_t cp)
{
	return saslprep_range_find(saslprep_props, saslprep_props_len, cp);
}

static uint8_t saslprep_class_of(uint32_t cp)
{
	return saslprep_range_find(saslprep_ccc, saslprep_ccc_len, cp);
}

static const struct saslprep_decomp *saslprep_decomp_find(uint32_t cp)
{
	size_t lo = 0, hi = saslprep_decomp_len;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (cp < saslprep_decomp[mid].cp)
			hi = mid;
		else if (cp > saslprep_decomp[mid].cp)
			lo = mid + 1;
		else
			return &saslprep_decomp[mid];
	}
	return NULL;
}

/* The primary composite of a + b, or 0. */
static uint32_t saslprep_compose_pair(uint32_t a, uint32_t b)
{
	size_t lo = 0, hi = saslprep_comp_len;

	if (a - HANGUL_L < HANGUL_LCOUNT && b - HANGUL_V < HANGUL_VCOUNT)
		return HANGUL_S + ((a - HANGUL_L) * HANGUL_VCOUNT + (b - HANGUL_V)) * HANGUL_TCOUNT;
	if (a - HANGUL_S < HANGUL_SCOUNT && (a - HANGUL_S) % HANGUL_TCOUNT == 0
	    && b - HANGUL_T - 1 < HANGUL_TCOUNT - 1)
		return a + (b - HANGUL_T);
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const struct saslprep_comp *c = &saslprep_comp[mid];
		if (a < c->first || (a == c->first && b < c->second))
			hi = mid;
		else if (a > c->first || b > c->second)
			lo = mid + 1;
		else
			return c->composite;
	}
	return 0;
}

/* Strict UTF-8 (RFC 3629 section 4) into cps (room for len code points). */
static bool saslprep_utf8_decode(const unsigned char *s, size_t len, uint32_t *cps, size_t *n)
{
	size_t i = 0, k = 0;

	while (i < len) {
		unsigned char c = s[i];
		uint32_t cp, min;
		size_t more;

		if (c < 0x80) {
			cps[k++] = c;
			i++;
			continue;
		}
		if (c >= 0xC2 && c <= 0xDF)
			cp = c & 0x1F, more = 1, min = 0x80;
		else if (c >= 0xE0 && c <= 0xEF)
			cp = c & 0x0F, more = 2, min = 0x800;
		else if (c >= 0xF0 && c <= 0xF4)
			cp = c & 0x07, more = 3, min = 0x10000;
		else
			return false;
		if (len - i - 1 < more)
			return false;
		for (size_t j = 1; j <= more; j++) {
			if ((s[i + j] & 0xC0) != 0x80)
				return false;
			cp = cp << 6 | (s[i + j] & 0x3F);
		}
		if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
			return false;
		cps[k++] = cp;
		i += more + 1;
	}
	*n = k;
	return true;
}

static size_t saslprep_utf8_put(char *out, uint32_t cp)
{
	if (cp < 0x80) {
		out[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		out[0] = (char)(0xC0 | cp >> 6);
		out[1] = (char)(0x80 | (cp & 0x3F));
		return 2;
	}
	if (cp < 0x10000) {
		out[0] = (char)(0xE0 | cp >> 12);
		out[1] = (char)(0x80 | (cp >> 6 & 0x3F));
		out[2] = (char)(0x80 | (cp & 0x3F));
		return 3;
	}
	out[0] = (char)(0xF0 | cp >> 18);
	out[1] = (char)(0x80 | (cp >> 12 & 0x3F));
	out[2] = (char)(0x80 | (cp >> 6 & 0x3F));
	out[3] = (char)(0x80 | (cp & 0x3F));
	return 4;
}

/* RFC 4013 section 2.1 in place; section 2.5 for stored strings. */
static enum saslprep_result saslprep_map(uint32_t *cps, size_t *n, enum saslprep_mode mode)
{
	size_t k = 0;

	for (size_t i = 0; i < *n; i++) {
		uint8_t p = saslprep_prop(cps[i]);
		if ((p & SASLPREP_P_UNASSIGNED) && mode == SASLPREP_STORED)
			return SASLPREP_UNASSIGNED;
		if (p & SASLPREP_P_MAP_NOTHING)
			continue;
		cps[k++] = (p & SASLPREP_P_MAP_SPACE) ? 0x20 : cps[i];
	}
	*n = k;
	return SASLPREP_OK;
}

/* Append the full compatibility decomposition of cp to out at *k. */
static void saslprep_decompose_one(uint32_t cp, uint32_t *out, size_t *k)
{
	const struct saslprep_decomp *d;

	if (cp - HANGUL_S < HANGUL_SCOUNT) {
		uint32_t s = cp - HANGUL_S;
		out[(*k)++] = HANGUL_L + s / HANGUL_NCOUNT;
		out[(*k)++] = HANGUL_V + (s % HANGUL_NCOUNT) / HANGUL_TCOUNT;
		if (s % HANGUL_TCOUNT != 0)
			out[(*k)++] = HANGUL_T + s % HANGUL_TCOUNT;
		return;
	}
	if ((d = saslprep_decomp_find(cp)) == NULL) {
		out[(*k)++] = cp;
		return;
	}
	memcpy(out + *k, saslprep_decomp_pool + d->off, d->len * sizeof(*out));
	*k += d->len;
}

/* Canonical ordering (UAX #15): a stable sort of each run of non-starters
 * by combining class.  ccc[] holds the classes and moves along. */
static void saslprep_reorder(uint32_t *cps, uint8_t *ccc, size_t n)
{
	for (size_t i = 1; i < n; i++) {
		uint32_t c = cps[i];
		uint8_t cc = ccc[i];
		size_t j = i;

		if (cc == 0)
			continue;
		while (j > 0 && ccc[j - 1] > cc) {
			cps[j] = cps[j - 1];
			ccc[j] = ccc[j - 1];
			j--;
		}
		cps[j] = c;
		ccc[j] = cc;
	}
}

/* Canonical composition (UAX #15): a character joins the last starter
 * unless a character between them has a class >= its own (blocked). */
static size_t saslprep_compose(uint32_t *cps, const uint8_t *ccc, size_t n)
{
	size_t starter = 0, k = 1;
	int last = ccc[0] ? 256 : 0;    /* nothing before the first starter composes */

	for (size_t i = 1; i < n; i++) {
		uint32_t c = cps[i], comp;
		uint8_t cc = ccc[i];

		if ((last < cc || last == 0) && (comp = saslprep_compose_pair(cps[starter], c)) != 0) {
			cps[starter] = comp;
			continue;
		}
		if (cc == 0) {
			starter = k;
			last = 0;
		} else {
			last = cc;
		}
		cps[k++] = c;
	}
	return k;
}

/* NFKC of cps[0..*n) into a fresh array of *cap code points. */
static uint32_t *saslprep_nfkc(const uint32_t *cps, size_t *n, size_t *cap)
{
	uint32_t *out;
	uint8_t *ccc;
	size_t k = 0;

	*cap = *n * SASLPREP_DECOMP_MAX + 1;
	out = xmalloc(*cap * sizeof(*out));
	for (size_t i = 0; i < *n; i++)
		saslprep_decompose_one(cps[i], out, &k);
	if (k == 0) {
		*n = 0;
		return out;
	}
	ccc = xmalloc(k);
	for (size_t i = 0; i < k; i++)
		ccc[i] = saslprep_class_of(out[i]);
	saslprep_reorder(out, ccc, k);
	*n = saslprep_compose(out, ccc, k);
	free(ccc);
	return out;
}

/* RFC 4013 section 2.3 and 2.4 (RFC 3454 section 6) on the output. */
static enum saslprep_result saslprep_check(const uint32_t *cps, size_t n)
{
	bool randal = false, lcat = false;

	for (size_t i = 0; i < n; i++) {
		uint8_t p = saslprep_prop(cps[i]);
		if (p & SASLPREP_P_PROHIBITED)
			return SASLPREP_PROHIBITED;
		randal |= (p & SASLPREP_P_RANDAL) != 0;
		lcat |= (p & SASLPREP_P_LCAT) != 0;
	}
	if (randal && (lcat || !(saslprep_prop(cps[0]) & SASLPREP_P_RANDAL)
		       || !(saslprep_prop(cps[n - 1]) & SASLPREP_P_RANDAL)))
		return SASLPREP_BIDI;
	return SASLPREP_OK;
}

/* ASCII maps to itself; only the control characters are prohibited. */
static enum saslprep_result saslprep_ascii(const char *in, size_t len, char **out, size_t *out_len)
{
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)in[i] < 0x20 || in[i] == 0x7F)
			return SASLPREP_PROHIBITED;
	*out = xstrndup(in, len);
	*out_len = len;
	return SASLPREP_OK;
}

enum saslprep_result saslprep(const char *in, size_t len, enum saslprep_mode mode,
			      char **out, size_t *out_len)
{
	uint32_t *cps, *norm = NULL;
	size_t n = 0, k = 0, cap = 0;
	enum saslprep_result r;
	bool ascii = true;

	*out = NULL;
	*out_len = 0;
	if (len > SASLPREP_INPUT_MAX)
		return SASLPREP_TOO_LONG;
	for (size_t i = 0; i < len && ascii; i++)
		ascii = (unsigned char)in[i] < 0x80;
	if (ascii)
		return saslprep_ascii(in, len, out, out_len);
	cps = xmalloc((len + 1) * sizeof(*cps));
	if (!saslprep_utf8_decode((const unsigned char *)in, len, cps, &n))
		r = SASLPREP_BAD_UTF8;
	else
		r = saslprep_map(cps, &n, mode);
	if (r == SASLPREP_OK) {
		norm = saslprep_nfkc(cps, &n, &cap);
		r = saslprep_check(norm, n);
	}
	if (r == SASLPREP_OK) {
		*out = xmalloc(n * 4 + 1);
		for (size_t i = 0; i < n; i++)
			k += saslprep_utf8_put(*out + k, norm[i]);
		(*out)[k] = '\0';
		*out_len = k;
	}
	/* Passwords pass through here: leave no copies behind. */
	explicit_bzero(cps, (len + 1) * sizeof(*cps));
	free(cps);
	if (norm != NULL) {
		explicit_bzero(norm, cap * sizeof(*norm));
		free(norm);
	}
	return r;
}
