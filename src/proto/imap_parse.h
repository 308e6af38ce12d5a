/*
 * imap_parse.h - the IMAP command grammar (RFC 9051 section 9, RFC 3501
 * section 9) as a pure, incremental parser: tag, command name and the
 * arguments as a typed tree, plus typed readers over that tree (numbers,
 * number64, sequence sets, dates, search keys to an AST).
 *
 * The session reads one line at a time (CRLF removed) and passes it to
 * imap_parse_line().  A line that ends in a literal announcement returns
 * IMAP_PARSE_LITERAL with the size and kind in p->lit before any octet of
 * it is read, so an over-limit literal gets its answer first; the session
 * then passes the literal's octets (imap_parse_literal) or, when it streams
 * them elsewhere (APPEND), only says they were taken (imap_parse_literal_
 * streamed), and then the next line (maybe empty).  p->lit_fits says
 * whether imap_parse_literal could hold it.  IMAP_PARSE_DONE means the command is
 * complete.  Results are data and errors are codes: the session maps them
 * to tagged (or, with no tag yet, untagged) BAD.  No I/O, no globals; memory
 * comes from the parser's arena, freed by imap_parse_reset().
 *
 * Literal forms: {n} synchronizing, {n+} non-synchronizing (LITERAL+,
 * RFC 7888), with LITERAL- the non-synchronizing form is bounded to 4096
 * octets (RFC 7888 section 5), ~{n} / ~{n+} a literal8 (BINARY, RFC 3516
 * section 4.3).  RFC 7888 has no "{n-}" form: it is a syntax error.
 */
#ifndef TERN_IMAP_PARSE_H
#define TERN_IMAP_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define IMAP_TAG_MAX 64            /* octets of a tag we keep (no RFC bound) */
#define IMAP_NAME_MAX 32           /* longest command name ("UNSUBSCRIBE", extensions) */
#define IMAP_DEPTH_DEFAULT 16      /* parenthesized lists open at once */
#define IMAP_DEPTH_MAX 64          /* max_depth is capped here */
#define IMAP_ARGS_DEFAULT 10000    /* arguments (list elements included) per command */
#define IMAP_TEXT_DEFAULT 65536    /* arena octets per command, literals excluded */
#define IMAP_LITERAL_MINUS_MAX 4096 /* RFC 7888 section 5 */
#define IMAP_SEARCH_NODES_DEFAULT 1000
#define IMAP_SEARCH_DEPTH_DEFAULT 32

/* ---- arena: every allocation of one command, freed at once ---- */

struct imap_arena_chunk;
struct imap_arena {
	struct imap_arena_chunk *head;
	size_t used;               /* octets handed out */
	size_t limit;              /* past this, allocation fails (a bound, not OOM) */
};

void imap_arena_init(struct imap_arena *a, size_t limit);
/* NULL when the limit would be passed; aborts on out of memory (xmalloc). */
void *imap_arena_alloc(struct imap_arena *a, size_t n);
void imap_arena_free(struct imap_arena *a);

/* ---- arguments ---- */

enum imap_arg_type {
	IMAP_ARG_ATOM,             /* atom, including flags (\Seen), numbers,
				    * sequence sets and fetch items with a
				    * [section] (BODY[HEADER.FIELDS (A B)]<0.9>) */
	IMAP_ARG_QUOTED,           /* quoted string, escapes removed */
	IMAP_ARG_LITERAL,          /* literal or literal8; s == NULL if streamed */
	IMAP_ARG_NIL,              /* the atom NIL, any case */
	IMAP_ARG_LIST,             /* parenthesized list */
};

struct imap_arg {
	enum imap_arg_type type;
	const char *s;             /* NUL-terminated copy (atom, quoted, literal) */
	size_t len;                /* octets of s; a streamed literal's size */
	bool literal8;             /* ~{n} */
	struct imap_arg *child;    /* IMAP_ARG_LIST: first element */
	size_t count;              /* IMAP_ARG_LIST: elements */
	struct imap_arg *next;
};

enum imap_parse_result {
	IMAP_PARSE_DONE = 0,       /* command complete: p->tag, p->name, p->args */
	IMAP_PARSE_LITERAL,        /* p->lit announces a literal: pass its octets next */
	IMAP_PARSE_ERROR,          /* p->err says what; p->tag set if it was read */
	IMAP_PARSE_NEED_LINE,      /* literal taken: pass the line that follows it */
};

enum imap_parse_err {
	IMAP_ERR_NONE = 0,
	IMAP_ERR_EMPTY,            /* empty line */
	IMAP_ERR_TAG,              /* missing or invalid tag */
	IMAP_ERR_NAME,             /* missing or invalid command name */
	IMAP_ERR_SYNTAX,           /* a character where none fits */
	IMAP_ERR_8BIT,             /* 8-bit octet outside a literal (or not UTF-8) */
	IMAP_ERR_QUOTED,           /* bad escape, control char or unterminated quote */
	IMAP_ERR_LITERAL_SYNTAX,   /* {..} not a number or not at the end of the line */
	IMAP_ERR_LITERAL_TOO_BIG,  /* p->lit.size over max_literal (nothing read yet) */
	IMAP_ERR_LITERAL_MINUS,    /* {n+} over 4096 with LITERAL- */
	IMAP_ERR_NONSYNC,          /* {n+} when non-synchronizing literals are off */
	IMAP_ERR_PAREN,            /* unbalanced parentheses */
	IMAP_ERR_DEPTH,            /* lists nested deeper than max_depth */
	IMAP_ERR_TOO_MANY,         /* more than max_args arguments */
	IMAP_ERR_TOO_LONG,         /* the command's text passed the arena bound */
	IMAP_ERR_STATE,            /* a call out of order (session bug) */
};

struct imap_literal_info {
	uint32_t size;
	bool sync;                 /* {n}: the client waits for "+ " */
	bool literal8;             /* ~{n} */
};

struct imap_parse_opts {
	bool literal_plus;         /* LITERAL+: {n+} of any size */
	bool literal_minus;        /* LITERAL-: {n+} up to 4096 (ignored with literal_plus) */
	bool utf8;                 /* UTF8=ACCEPT enabled: UTF-8 in quoted strings */
	uint32_t max_literal;      /* announced size past this is IMAP_ERR_LITERAL_TOO_BIG;
				    * 0: no bound but the 32-bit number */
	unsigned max_depth;        /* 0: IMAP_DEPTH_DEFAULT */
	unsigned max_args;         /* 0: IMAP_ARGS_DEFAULT */
	size_t max_text;           /* 0: IMAP_TEXT_DEFAULT; literal octets held count too */
};

struct imap_parser {
	struct imap_parse_opts opts;
	struct imap_arena arena;

	/* results */
	char tag[IMAP_TAG_MAX + 1];
	bool have_tag;
	char name[IMAP_NAME_MAX + 1];  /* upper-cased */
	bool have_name;
	struct imap_arg *args;     /* first top-level argument */
	size_t nargs;              /* top-level arguments */
	struct imap_literal_info lit;
	bool lit_fits;             /* imap_parse_literal would take it (arena bound) */
	enum imap_parse_err err;
	size_t err_pos;            /* offset in the last line passed */

	/* private */
	int state;                 /* enum in imap_parse.c */
	unsigned depth;
	unsigned total_args;
	struct imap_arg **tail;    /* where the next argument is linked */
	struct imap_arg *open[IMAP_DEPTH_MAX]; /* open lists */
};

void imap_parse_init(struct imap_parser *p, const struct imap_parse_opts *opts);
/* Forget the current command (after DONE or ERROR) and free its memory. */
void imap_parse_reset(struct imap_parser *p);
void imap_parse_free(struct imap_parser *p);

/* A line without its CRLF: a new command or the rest of one after a literal. */
enum imap_parse_result imap_parse_line(struct imap_parser *p, const char *line, size_t len);
/* The announced literal's octets (len must equal p->lit.size).  Both
 * return IMAP_PARSE_NEED_LINE (or IMAP_PARSE_ERROR). */
enum imap_parse_result imap_parse_literal(struct imap_parser *p, const void *data, size_t len);
/* The literal's octets went elsewhere (APPEND): the argument has s == NULL. */
enum imap_parse_result imap_parse_literal_streamed(struct imap_parser *p);

const char *imap_parse_strerror(enum imap_parse_err e);

/* ---- typed readers over arguments ---- */

/* The n-th element (0-based) of a list of args starting at first, or NULL. */
const struct imap_arg *imap_arg_nth(const struct imap_arg *first, size_t n);
/* number (RFC 9051: 32-bit unsigned) and nz-number. */
bool imap_arg_number(const struct imap_arg *a, uint32_t *out);
bool imap_arg_nz_number(const struct imap_arg *a, uint32_t *out);
/* number64 / mod-sequence-value (RFC 9051, RFC 7162): up to 2^63-1. */
bool imap_arg_number64(const struct imap_arg *a, uint64_t *out);
/* astring: atom (without '[' '(' ')' '*' '%' '\'), quoted or literal. */
bool imap_arg_astring(const struct imap_arg *a, const char **s, size_t *len);
/* string: quoted or literal (not streamed). */
bool imap_arg_string(const struct imap_arg *a, const char **s, size_t *len);
/* nstring: NIL (*s = NULL) or string. */
bool imap_arg_nstring(const struct imap_arg *a, const char **s, size_t *len);
/* The atom, case-insensitively equal to word. */
bool imap_arg_is_atom(const struct imap_arg *a, const char *word);

/* ---- sequence sets (RFC 9051 section 9 sequence-set, RFC 5182 "$") ---- */

#define IMAP_SEQ_STAR 0u           /* "*": the largest number in use */

struct imap_seq_range {
	uint32_t lo, hi;           /* as written, IMAP_SEQ_STAR for "*"; "4:2" is 2..4 */
};

struct imap_seqset {
	bool searchres;            /* "$": the saved search result (RFC 5182) */
	size_t n;
	struct imap_seq_range *r;  /* in the arena */
};

enum imap_seq_err {
	IMAP_SEQ_OK = 0,
	IMAP_SEQ_SYNTAX,           /* empty element, "0", stray characters, overflow */
	IMAP_SEQ_TOO_MANY,         /* arena bound */
};

enum imap_seq_err imap_seqset_parse(const char *s, size_t len, struct imap_arena *a,
				    struct imap_seqset *out);
/* n in the set when "*" stands for star (the message count or largest UID). */
bool imap_seqset_contains(const struct imap_seqset *set, uint32_t n, uint32_t star);

/* ---- dates (RFC 9051 date, date-time) ---- */

struct imap_date {
	uint16_t year;
	uint8_t month, day;        /* 1..12, 1..31 (checked against the month) */
};

/* date-text "1-Feb-2024" (day 1 or 2 digits; month any case). */
bool imap_parse_date(const char *s, size_t len, struct imap_date *d);
/* date-time "dd-Mon-yyyy hh:mm:ss +zzzz" (day may start with SP) as Unix time. */
bool imap_parse_datetime(const char *s, size_t len, int64_t *unix_time);

/* ---- search keys (RFC 3501 6.4.4, RFC 9051 6.4.4, RFC 7162 MODSEQ) ---- */

enum imap_search_key {
	IMAP_SK_AND,               /* a parenthesized group or the whole program: children */
	IMAP_SK_OR,                /* two children */
	IMAP_SK_NOT,               /* one child */
	IMAP_SK_ALL, IMAP_SK_ANSWERED, IMAP_SK_DELETED, IMAP_SK_DRAFT, IMAP_SK_FLAGGED,
	IMAP_SK_NEW, IMAP_SK_OLD, IMAP_SK_RECENT, IMAP_SK_SEEN,
	IMAP_SK_UNANSWERED, IMAP_SK_UNDELETED, IMAP_SK_UNDRAFT, IMAP_SK_UNFLAGGED,
	IMAP_SK_UNSEEN,
	IMAP_SK_KEYWORD, IMAP_SK_UNKEYWORD,          /* str: flag keyword */
	IMAP_SK_BCC, IMAP_SK_BODY, IMAP_SK_CC, IMAP_SK_FROM, IMAP_SK_SUBJECT,
	IMAP_SK_TEXT, IMAP_SK_TO,                    /* str: astring */
	IMAP_SK_HEADER,                              /* str: field name, str2: value */
	IMAP_SK_BEFORE, IMAP_SK_ON, IMAP_SK_SINCE,   /* date: internal date */
	IMAP_SK_SENTBEFORE, IMAP_SK_SENTON, IMAP_SK_SENTSINCE, /* date: Date: */
	IMAP_SK_LARGER, IMAP_SK_SMALLER,             /* num */
	IMAP_SK_UID, IMAP_SK_SEQSET,                 /* seq */
	IMAP_SK_MODSEQ,                              /* num (entry name/type checked, dropped) */
	IMAP_SK_COUNT_
};

struct imap_search_node {
	enum imap_search_key key;
	const char *str, *str2;
	size_t str_len, str2_len;
	uint64_t num;
	struct imap_date date;
	struct imap_seqset seq;
	struct imap_search_node *child;  /* AND, OR, NOT */
	struct imap_search_node *next;   /* sibling */
};

enum imap_search_err {
	IMAP_SEARCH_OK = 0,
	IMAP_SEARCH_UNKNOWN_KEY,
	IMAP_SEARCH_MISSING_ARG,         /* a key without the argument it takes */
	IMAP_SEARCH_BAD_ARG,             /* wrong kind: a list for a string, a bad date, number */
	IMAP_SEARCH_BAD_SEQSET,
	IMAP_SEARCH_COMPLEX,             /* more than max_nodes keys or nested past max_depth */
	IMAP_SEARCH_EMPTY,               /* no key at all, or "()" */
};

/* Parse search keys from first to the end of its list (after the caller
 * has taken RETURN (...) and CHARSET x).  *out is an IMAP_SK_AND node
 * over the keys.  max_nodes/max_depth 0 mean the defaults. */
enum imap_search_err imap_search_parse(const struct imap_arg *first, struct imap_arena *a,
				       unsigned max_nodes, unsigned max_depth,
				       struct imap_search_node **out);
const char *imap_search_strerror(enum imap_search_err e);
const char *imap_search_key_name(enum imap_search_key k);

#endif
