/*
 * queuefile.h - reading the queue's files: a queued message's envelope
 * and trailer, and its state file.  Pure functions over bytes (no I/O):
 * store/queue.c reads the bytes and writes the files; the format is
 * described in store/queue.h.
 *
 *   message file:  "TERN-QUEUE 1\n" "id ID\n" "arrival N\n" "from V\n"
 *                  "helo V\n" "ip V\n" "auth V\n" "body N\n" "ret N\n"
 *                  "envid V\n" ["smtputf8 1\n"] then "rcpt L|R NOTIFY V V V\n" per
 *                  recipient (address, as given, ORCPT), a blank line,
 *                  padding ("\n" octets, any number: room for fields
 *                  in front of the message, see queue_writer_reserve_front),
 *                  the message, then the trailer
 *                  "TERN-END off=N len=N lines=N 8bit=0|1[ junk=1][ signed=1]
 *                  [ sig8=N sig7=N]\n"; with sig7, the N octets before the
 *                  trailer are not the message but the DKIM-Signature
 *                  fields of its 7-bit form (see queue_env.dkim7)
 *   state file:    "held 0|1\n" "warned 0|1\n" then per recipient
 *                  "rcpt INDEX STATE ATTEMPTS NEXT_TRY V V V\n" (remote
 *                  MTA, enhanced status, last reply) and "dsn INDEX\n"
 *                  once its notice is settled
 *
 * A value V is "-" for none or "=" followed by its bytes, with %XX for
 * anything but printable non-space ASCII other than '%'.
 */
#ifndef TERN_QUEUEFILE_H
#define TERN_QUEUEFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define QUEUE_ID_LEN 16
/* The trailer is at most 160 bytes (five 20-digit numbers); reading the
 * last QUEUEFILE_TRAILER_MAX bytes of a file always takes it in whole. */
#define QUEUEFILE_TRAILER_MAX 192

enum rcpt_state { RCPT_PENDING, RCPT_DEFERRED, RCPT_DONE, RCPT_FAILED };

struct queue_rcpt {
	char *addr;               /* where it goes (after alias expansion) */
	char *orig;               /* as given in RCPT TO */
	unsigned notify;          /* SMTP_NOTIFY_* bits, 0 = default */
	char *orcpt;              /* "type;address" or NULL */
	bool local;
	enum rcpt_state state;
	unsigned attempts;
	int64_t next_try;
	char *last_reply;         /* last reply or error text, or NULL */
	char *status;             /* enhanced status of the last result, or NULL */
	char *remote_mta;         /* host that gave the last reply, or NULL */
	bool dsn_done;            /* its final notice (or none) is settled */
};

struct queue_env {
	char id[QUEUE_ID_LEN + 1];
	int64_t arrival;
	char *from;               /* "" for the null reverse path */
	char *helo;
	char *client_ip;
	char *auth_user;          /* or NULL */
	unsigned body;            /* enum smtp_body */
	unsigned ret;             /* enum smtp_ret */
	char *envid;              /* or NULL */
	bool smtputf8;            /* SMTPUTF8 transaction (RFC 6531): UTF-8 addresses or headers */
	bool held;
	bool delay_warned;
	size_t nrcpt;
	struct queue_rcpt *rcpt;
	/* from the trailer */
	uint64_t msg_offset, msg_len, msg_lines;
	bool eight_bit;
	bool junk;                /* into the recipients' Junk folder (DMARC quarantine) */
	bool dkim_signed;         /* tern signed it: its body is never re-encoded */
	/* Signed 8-bit mail that remote delivery can downgrade (RFC 6152 3)
	 * also has signatures over that 7-bit form (RFC 6376 5.3): dkim8_len
	 * octets of tern's DKIM-Signature fields begin the message, and
	 * dkim7_len octets of the 7-bit form's fields follow it in the file
	 * (at msg_offset + msg_len).  A hop without 8BITMIME gets these in
	 * place of those, then the converted message: both verify. */
	uint64_t dkim8_len, dkim7_len;
	char *dkim7;              /* writing: those fields (the sign stage's), or NULL */
};

enum queuefile_err {
	QUEUEFILE_OK,
	QUEUEFILE_NO_TRAILER,     /* no "TERN-END " in the last bytes */
	QUEUEFILE_BAD_TRAILER,    /* malformed, or does not match the file size */
	QUEUEFILE_BAD_LINE,       /* an envelope line that is not understood */
	QUEUEFILE_NO_END,         /* no blank line ends the envelope */
	QUEUEFILE_NO_FROM,        /* the envelope has no reverse path */
};

/* The trailer, from the last n bytes (tail) of a file of size bytes
 * (n <= size; n = min(size, QUEUEFILE_TRAILER_MAX) takes it whole).  Sets
 * env's msg_offset, msg_len, msg_lines, eight_bit, junk, dkim_signed,
 * dkim8_len and dkim7_len.  The trailer must
 * be the file's last line, and the message it describes (and the 7-bit
 * form's signatures after it) must end exactly where the trailer begins:
 * a file cut short or grown is refused. */
enum queuefile_err queuefile_parse_trailer(const char *tail, size_t n, uint64_t size,
					   struct queue_env *env);

/* The envelope from the first len bytes of the file (the trailer's
 * msg_offset: the envelope lines, the blank line and any padding of
 * line ends after it).  Fills env (from,
 * helo, ..., the recipients); on error env may hold part of what was
 * read, for queue_env_free().  The id line is not used: a message's id
 * is its file name. */
enum queuefile_err queuefile_parse_envelope(const char *buf, size_t len, struct queue_env *env);

/* The state file (len bytes) into an envelope that has its recipients.
 * A line that is not understood, or names a recipient that is not there,
 * is skipped (the recipient keeps its state: a delivery may be repeated,
 * never lost).  Returns the number of lines skipped. */
size_t queuefile_parse_state(const char *buf, size_t len, struct queue_env *env);

const char *queuefile_err_name(enum queuefile_err e);

struct queue_rcpt *queue_env_add_rcpt(struct queue_env *env, const char *addr, const char *orig);
void queue_env_free(struct queue_env *env);

#endif
