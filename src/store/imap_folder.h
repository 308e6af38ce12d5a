/*
 * imap_folder.h - IMAP's view of a Maildir++ folder: UIDs, UIDVALIDITY,
 * UIDNEXT, MODSEQs and keywords kept in a per-folder state file, flags
 * kept in the file names (":2," + DFRST, sorted) so that Dovecot and mutt
 * read the same flags.
 *
 * The state file (FOLDER/tern-imap.state) maps each UID to the unique
 * part of a file name (before ":2,"), with its modseq, keywords and CRLF
 * size; it is written whole and atomically (tmp, fsync, rename, directory
 * fsync) so a crash leaves the old or the new one.  When it is missing or
 * unreadable it is rebuilt from the Maildir with a new UIDVALIDITY (RFC
 * 9051 2.3.1.1: UIDs may only be reused under a new UIDVALIDITY).
 *
 * A scan reconciles the state with the directory: files new in new/ are
 * moved to cur/ (as IMAP readers do) and get the next UIDs in arrival
 * order, files gone from cur/ are dropped, and flags changed by another
 * program are picked up (with a modseq bump).
 *
 * And the store of one user's folders (imap_store_*): the folder list,
 * CREATE/DELETE/RENAME on Maildir++ directories, the SPECIAL-USE folders
 * made at first login, subscriptions (the "subscriptions" file Dovecot
 * keeps), and the directory of folder X for "deliver into folder X".
 *
 * Everything here does blocking disk I/O and knows nothing of sessions.
 */
#ifndef TERN_IMAP_FOLDER_H
#define TERN_IMAP_FOLDER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define IMAP_FOLDER_STATE "tern-imap.state"
#define IMAP_FOLDER_KW_MAX 32       /* keywords per folder (one bit each) */

struct imap_msg {
	uint32_t uid;
	unsigned flags;           /* IMAP_FLAG_* of imap_write.h, without RECENT */
	uint32_t kw;              /* bit i: the folder's keyword i */
	uint64_t modseq;
	uint64_t size;            /* octets with CRLF line ends (RFC822.SIZE) */
	int64_t date;             /* internal date: the file's mtime */
	char *name;               /* the file name in cur/ */
	size_t base_len;          /* its unique part: name[0..base_len) */
	bool mark;                /* private: seen by the scan */
};

struct imap_folder {
	char *path;               /* the folder's Maildir (new/ cur/ tmp/) */
	uint32_t uidvalidity, uidnext;
	uint64_t modseq;          /* HIGHESTMODSEQ */
	struct imap_msg *v;       /* ascending UIDs */
	size_t n, cap;
	char *kw[IMAP_FOLDER_KW_MAX];
	size_t nkw;
	bool dirty;               /* state to save */
	bool batch;               /* imap_folder_batch_begin(): sync at the commit */
};

/* Open (creating new/ cur/ tmp/ when missing) and scan.  NULL with errno
 * on failure. */
struct imap_folder *imap_folder_open(const char *path);
void imap_folder_free(struct imap_folder *f);
/* Reconcile with the directory; *changed when messages came or went or
 * flags changed.  Saves the state when it changed. */
bool imap_folder_scan(struct imap_folder *f, bool *changed);
/* Write the state file if dirty. */
bool imap_folder_save(struct imap_folder *f);

/* Index of uid, or -1. */
long imap_folder_find(const struct imap_folder *f, uint32_t uid);
/* The keyword's index, added when add (NULL slot: -1 when full or absent). */
int imap_folder_keyword(struct imap_folder *f, const char *kw, size_t len, bool add);
/* Set message i's flags and keywords: renames the file in cur/ when the
 * system flags change, bumps the modseq.  False with errno (ENOENT: the
 * file went away: scan). */
bool imap_folder_set_flags(struct imap_folder *f, size_t i, unsigned flags, uint32_t kw);
/* "PATH/cur/NAME" (xmalloc). */
char *imap_folder_msg_path(const struct imap_folder *f, size_t i);
/* Open message i for reading, or -1 with errno. */
int imap_folder_open_msg(const struct imap_folder *f, size_t i);
/* Unlink message i and drop it (indexes after it shift down). */
bool imap_folder_expunge(struct imap_folder *f, size_t i);

/* A file written in PATH/tmp/ (its name tmp_name, fsync'd by the caller)
 * becomes a message: renamed into cur/ with flags, mtime set to date
 * (if >= 0), the next UID.  size is its CRLF size. */
bool imap_folder_add(struct imap_folder *f, const char *tmp_name, unsigned flags, uint32_t kw,
		     int64_t date, uint64_t size, uint32_t *uid);
/* Several messages in one go (COPY, MOVE, MULTIAPPEND): between these
 * two, imap_folder_add and imap_folder_copy leave cur/'s directory sync
 * and the state file to the commit, once for all instead of once per
 * message (three fsyncs and a whole state file each).  Nothing is
 * durable before the commit returns true. */
void imap_folder_batch_begin(struct imap_folder *f);
bool imap_folder_batch_commit(struct imap_folder *f);
/* Copy message i of src into dst (a hard link when possible), keeping
 * flags (by keyword name) and internal date. */
bool imap_folder_copy(struct imap_folder *src, size_t i, struct imap_folder *dst, uint32_t *uid);
/* A unique name for a new file ("SECONDS.M<usec>P<pid>Q<n>.HOST"). */
void imap_folder_unique(char *out, size_t cap, const char *host);

/* The flags of a Maildir info part (after ":2,"), and back. */
unsigned imap_folder_flags_of(const char *name);
size_t imap_folder_info(unsigned flags, char out[8]);

/* ---- the folders of one user: maildir is the INBOX directory ---- */

/* The directory of a wire mailbox name (modified UTF-7), or NULL when
 * the name is not valid. */
char *imap_store_folder_dir(const char *maildir, const char *mailbox);
/* The first login: Maildir, Sent Drafts Trash Junk Archive (subscribed). */
bool imap_store_setup(const char *maildir);
/* The SPECIAL-USE attribute of a wire name ("\\Sent"), or NULL. */
const char *imap_store_special_use(const char *mailbox);

struct imap_store_list {
	char **names;             /* wire names, INBOX first, then sorted */
	size_t n;
};
bool imap_store_list(const char *maildir, struct imap_store_list *out);
void imap_store_list_free(struct imap_store_list *l);
/* Has name children in l? */
bool imap_store_has_children(const struct imap_store_list *l, const char *name);

enum imap_store_err {
	IMAP_STORE_OK,
	IMAP_STORE_EXISTS,        /* ALREADYEXISTS */
	IMAP_STORE_NONEXISTENT,   /* NONEXISTENT */
	IMAP_STORE_BAD_NAME,      /* CANNOT: invalid name or INBOX where not allowed */
	IMAP_STORE_ERROR,         /* errno */
};
enum imap_store_err imap_store_create(const char *maildir, const char *mailbox);
enum imap_store_err imap_store_delete(const char *maildir, const char *mailbox);
/* Children follow; renaming INBOX moves its messages into a new folder
 * and leaves INBOX empty (RFC 9051 6.3.6). */
enum imap_store_err imap_store_rename(const char *maildir, const char *from, const char *to);

bool imap_store_subscriptions(const char *maildir, struct imap_store_list *out);
bool imap_store_subscribe(const char *maildir, const char *mailbox, bool on);

/* "Deliver into folder X" (Junk for quarantine): the folder's Maildir
 * path, created when missing, for maildir_prepare() (store/maildir.h).
 * NULL for an invalid name. */
char *imap_store_delivery_dir(const char *maildir, const char *mailbox);

#endif
