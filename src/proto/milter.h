/*
 * milter.h - the milter protocol, version 6, MTA side, as a pure codec:
 * packets built into a byte buffer, and the filter's replies parsed out
 * of received octets with every length checked.  No I/O here; the client
 * on the event loop is filter/milter.c.
 *
 * A packet is a 4-octet length in network order (counting the command
 * octet and the data), the command octet, then the data.  Strings in the
 * data end with NUL.
 */
#ifndef TERN_PROTO_MILTER_H
#define TERN_PROTO_MILTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define MILTER_VERSION 6
/* The largest BODY chunk (libmilter's MILTER_CHUNK_SIZE). */
#define MILTER_CHUNK_MAX 65535
/* The largest reply packet tern reads: a REPLBODY chunk, a header field
 * or a reply text fit many times over; more is garbage. */
#define MILTER_REPLY_MAX (1024 * 1024)

/* MTA -> filter commands */
enum {
	MILTER_C_ABORT = 'A',
	MILTER_C_BODY = 'B',
	MILTER_C_CONNECT = 'C',
	MILTER_C_MACRO = 'D',
	MILTER_C_EOB = 'E',
	MILTER_C_HELO = 'H',
	MILTER_C_QUIT_NC = 'K',
	MILTER_C_HEADER = 'L',
	MILTER_C_MAIL = 'M',
	MILTER_C_EOH = 'N',
	MILTER_C_OPTNEG = 'O',
	MILTER_C_QUIT = 'Q',
	MILTER_C_RCPT = 'R',
	MILTER_C_DATA = 'T',
	MILTER_C_UNKNOWN = 'U',
};

/* filter -> MTA replies */
enum {
	MILTER_R_ADDRCPT = '+',
	MILTER_R_DELRCPT = '-',
	MILTER_R_ADDRCPT_PAR = '2',
	MILTER_R_OPTNEG = 'O',
	MILTER_R_ACCEPT = 'a',
	MILTER_R_REPLBODY = 'b',
	MILTER_R_CONTINUE = 'c',
	MILTER_R_DISCARD = 'd',
	MILTER_R_CHGFROM = 'e',
	MILTER_R_ADDHEADER = 'h',
	MILTER_R_INSHEADER = 'i',
	MILTER_R_SETSYMLIST = 'l',
	MILTER_R_CHGHEADER = 'm',
	MILTER_R_PROGRESS = 'p',
	MILTER_R_QUARANTINE = 'q',
	MILTER_R_REJECT = 'r',
	MILTER_R_SKIP = 's',
	MILTER_R_TEMPFAIL = 't',
	MILTER_R_REPLYCODE = 'y',
};

/* actions a filter may take (OPTNEG) */
#define MILTER_A_ADDHDRS     0x001
#define MILTER_A_CHGBODY     0x002
#define MILTER_A_ADDRCPT     0x004
#define MILTER_A_DELRCPT     0x008
#define MILTER_A_CHGHDRS     0x010
#define MILTER_A_QUARANTINE  0x020
#define MILTER_A_CHGFROM     0x040
#define MILTER_A_ADDRCPT_PAR 0x080
#define MILTER_A_SETSYMLIST  0x100

/* protocol steps (OPTNEG): skip a step (NO*), or send it without
 * waiting for a reply (NR_*) */
#define MILTER_P_NOCONNECT   0x000001
#define MILTER_P_NOHELO      0x000002
#define MILTER_P_NOMAIL      0x000004
#define MILTER_P_NORCPT      0x000008
#define MILTER_P_NOBODY      0x000010
#define MILTER_P_NOHDRS      0x000020
#define MILTER_P_NOEOH       0x000040
#define MILTER_P_NR_HDR      0x000080
#define MILTER_P_NOUNKNOWN   0x000100
#define MILTER_P_NODATA      0x000200
#define MILTER_P_SKIP        0x000400
#define MILTER_P_RCPT_REJ    0x000800
#define MILTER_P_NR_CONN     0x001000
#define MILTER_P_NR_HELO     0x002000
#define MILTER_P_NR_MAIL     0x004000
#define MILTER_P_NR_RCPT     0x008000
#define MILTER_P_NR_DATA     0x010000
#define MILTER_P_NR_UNKN     0x020000
#define MILTER_P_NR_EOH      0x040000
#define MILTER_P_NR_BODY     0x080000
#define MILTER_P_HDR_LEADSPC 0x100000

/* A growable byte buffer that packets are appended to. */
struct milter_buf {
	unsigned char *p;
	size_t len, cap;
};

void milter_buf_free(struct milter_buf *b);
void milter_buf_reset(struct milter_buf *b);

/* Builders: each appends one whole packet. */
void milter_put_optneg(struct milter_buf *b, uint32_t version, uint32_t actions, uint32_t protocol);
/* family: '4', '6', 'U' (unix, port 0) or 'L' (unknown: no port, no address) */
void milter_put_connect(struct milter_buf *b, const char *host, char family, uint16_t port, const char *addr);
void milter_put_helo(struct milter_buf *b, const char *helo);
/* MAIL / RCPT: the address ("<a@b>") then the ESMTP arguments. */
void milter_put_args(struct milter_buf *b, char cmd, const char *const *argv, size_t argc);
void milter_put_header(struct milter_buf *b, const char *name, size_t nlen, const char *value, size_t vlen);
/* len <= MILTER_CHUNK_MAX */
void milter_put_body(struct milter_buf *b, const void *buf, size_t len);
/* DATA, EOH, EOB, ABORT, QUIT, QUIT_NC: no data */
void milter_put_simple(struct milter_buf *b, char cmd);
/* Macros for the command cmd: kv holds name, value, name, value, ...
 * (n strings); pairs with a NULL value are left out. */
void milter_put_macros(struct milter_buf *b, char cmd, const char *const *kv, size_t n);
void milter_put_unknown(struct milter_buf *b, const char *line);

/* A parsed reply.  Pointers go into the caller's input: valid while it is. */
struct milter_reply {
	char cmd;
	const unsigned char *data;     /* the data after the command octet */
	size_t len;
	/* decoded, by command */
	uint32_t version, actions, protocol;   /* OPTNEG */
	uint32_t index;                /* INSHEADER, CHGHEADER; SETSYMLIST: the stage */
	const char *s1, *s2;           /* NUL-terminated within data, or NULL */
	size_t s1len, s2len;
};

enum milter_parse {
	MILTER_MORE,    /* not a whole packet yet */
	MILTER_OK,      /* one reply in *r, *used octets */
	MILTER_BAD,     /* garbage: the connection cannot go on */
};

/* Parse one reply from in[0..len).  max bounds the packet length. */
enum milter_parse milter_reply_parse(const void *in, size_t len, size_t max, struct milter_reply *r,
				     size_t *used);

/* A REPLYCODE text a client may be given: "4yz" or "5yz", then the end,
 * or a space and printable text; an enhanced code, if any, of the same
 * class.  Several lines are joined by CRLF, each but the last with '-'
 * after the code, every one with the same code. */
bool milter_replycode_valid(const char *s, size_t len);

const char *milter_reply_name(char cmd);

/* A [milter] servers item: "inet:ADDRESS:PORT" (an IPv4 address, an IPv6
 * one in brackets, or localhost: no name lookups on the event loop) or
 * "unix:/PATH".  False when it is neither. */
bool milter_addr_parse(const char *spec, struct sockaddr_storage *ss, socklen_t *len);

#endif
