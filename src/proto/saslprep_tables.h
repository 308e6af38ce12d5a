/*
 * saslprep_tables.h - the Unicode 3.2 tables behind saslprep.c, generated
 * into saslprep_tables.c by scripts/gen_saslprep_tables.py.  Every table
 * is sorted by its first field, for binary search.
 */
#ifndef TERN_SASLPREP_TABLES_H
#define TERN_SASLPREP_TABLES_H

#include <stddef.h>
#include <stdint.h>

/* Code points lo..hi share value: a SASLPREP_P_* mask (props) or a
 * canonical combining class (ccc). */
struct saslprep_range {
	uint32_t lo, hi;
	uint8_t value;
};

/* NFKD of cp is saslprep_decomp_pool[off .. off + len). */
struct saslprep_decomp {
	uint32_t cp;
	uint32_t off : 27, len : 5;
};

/* Canonical composition: first + second -> composite. */
struct saslprep_comp {
	uint32_t first, second, composite;
};

extern const struct saslprep_range saslprep_props[];
extern const size_t saslprep_props_len;
extern const struct saslprep_range saslprep_ccc[];
extern const size_t saslprep_ccc_len;
extern const struct saslprep_decomp saslprep_decomp[];
extern const size_t saslprep_decomp_len;
extern const uint32_t saslprep_decomp_pool[];
extern const size_t saslprep_decomp_pool_len;
extern const struct saslprep_comp saslprep_comp[];
extern const size_t saslprep_comp_len;

#endif
