/*
 * mailbox.h - the POP3 view of a Maildir (state_dir/mail/DOMAIN/USER/Maildir).
 *
 * mailbox_open() takes the mailbox's lock and snapshots new/ and cur/:
 * mail that arrives later shows at the next login (RFC 1939 section 4
 * wants a fixed view for the session).  Sizes come from the ",W=" field of
 * the name (CRLF octets, as tern and Dovecot write it); a name without one
 * (mail dropped by another MDA) is read once and renamed with ",S=,W="
 * added, so the next login does not read it again.  The UIDL is the
 * unique name without those fields and without the ":2,flags" info, so it
 * survives new/ -> cur/ and the renames above.
 *
 * The lock is flock(2) on Maildir/tern-pop3.lock: the kernel drops it when
 * the holder dies, so a crash never leaves a mailbox locked, and two opens
 * in one process exclude each other too.
 *
 * open, commit and close do blocking disk I/O: call them from a worker.
 */
#ifndef TERN_MAILBOX_H
#define TERN_MAILBOX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MAILBOX_UIDL_MAX 70      /* RFC 1939 7: 1..70 characters 0x21..0x7e */

struct mailbox_msg {
	char *name;               /* "new/NAME" or "cur/NAME:2,FLAGS" */
	char uidl[MAILBOX_UIDL_MAX + 1];
	uint64_t size;            /* octets with CRLF line ends */
	bool deleted;             /* DELE'd in this session */
	bool retrieved;           /* RETR'd: moves to cur/ with S at commit */
};

struct mailbox {
	char *path;
	int lock_fd;
	/* new/ and cur/, open for the session: a RETR opens its file
	 * relative to them (one name to look up, not the whole path). */
	int dirs[2];
	size_t n;
	struct mailbox_msg *v;    /* ordered by arrival (unique name) */
};

enum mailbox_status {
	MAILBOX_OK,
	MAILBOX_IN_USE,           /* another session holds the lock */
	MAILBOX_ERROR,            /* errno says why */
};

/* Lock and snapshot path (created when missing). */
enum mailbox_status mailbox_open(const char *path, struct mailbox **out);

/* Open message i (0-based) for reading; follows a message that another
 * reader moved between new/ and cur/.  Returns an fd or -1 (errno). */
int mailbox_open_msg(struct mailbox *m, size_t i);

/* The UPDATE state (RFC 1939 6): unlink the deleted messages, move the
 * retrieved ones from new/ to cur/ with the Seen flag, and sync the
 * directories.  Returns the number of deleted messages that could not be
 * removed (0 = all done). */
size_t mailbox_commit(struct mailbox *m);

/* Release the lock and free.  Changes nothing on disk. */
void mailbox_close(struct mailbox *m);

/* The UIDL for a Maildir file name (without "new/" or "cur/").  Pure;
 * exposed for tests. */
void mailbox_uidl_of(const char *name, char out[MAILBOX_UIDL_MAX + 1]);
/* The ",W=" value of a name, if it has one. */
bool mailbox_name_wsize(const char *name, uint64_t *out);

#endif
