/*
 * imap_folder.h - IMAP's view of a Maildir++ folder: UIDs, UIDVALIDITY,
 * UIDNEXT, MODSEQs and keywords kept in a per-folder state file, flags
 * kept in the file names (":2," + DFRST, sorted) so that Dovecot and mutt
 * read the same flags, and the first 26 keywords there too, as Dovecot's
 * letters a-z (imap_keywords.c).
 *
 * The state file (FOLDER/tern-imap.state) maps each UID to the unique
 * part of a file name (before ":2,"), with its modseq, keywords and CRLF
 * size, and keeps the expunged UIDs with the modseq they went at (RFC
 * 7162 CONDSTORE/QRESYNC: MODSEQ per message, HIGHESTMODSEQ, VANISHED);
 * it is written whole and atomically (tmp, fsync, rename, directory
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
 * Everything here does blocking disk I/O and knows nothing of sessions:
 * the IMAP server calls it from its worker jobs (imap_server.c), never
 * on the event loop.
 */
#ifndef TERN_IMAP_FOLDER_H
#define TERN_IMAP_FOLDER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/imap_parse.h"
#include "proto/maildir_keywords.h"

#define IMAP_FOLDER_STATE "tern-imap.state"
#define IMAP_FOLDER_CACHE "tern-imap.cache"   /* imap_cache.c */
#define IMAP_FOLDER_DK "dovecot-keywords"   /* imap_keywords.c */
#define IMAP_FOLDER_KW_MAX 32       /* keywords per folder (one bit each) */
#define IMAP_DK_SLOTS MAILDIR_KW_SLOTS   /* of them with a letter a-z in the names */

struct imap_msg {
	uint32_t uid;
	unsigned flags;           /* IMAP_FLAG_* of imap_write.h, without RECENT */
	uint32_t kw;              /* bit i: the folder's keyword i */
	uint64_t modseq;
	uint64_t size;            /* octets with CRLF line ends (RFC822.SIZE); 0: not known */
	int64_t date;             /* internal date: the file's mtime; -1: not looked at
				   * yet (imap_folder_stat) */
	char *name;               /* the file name in cur/ */
	size_t base_len;          /* its unique part: name[0..base_len) */
	uint64_t fsize, ino;      /* the file's st_size and st_ino (the cache's check) */
	/* The cache (imap_cache.c): ENVELOPE, BODY and BODYSTRUCTURE as
	 * FETCH writes them, one after the other; NULL when not known. */
	char *cache;
	uint32_t cache_len[3];
	bool mark;                /* private: seen by the scan */
	bool found;               /* private: a scan has found its file (flag changes count) */
};

/* UIDs expunged (lo..hi, none alive between them) at modseq: what
 * QRESYNC's VANISHED (EARLIER) reports (RFC 7162 3.2.5, 3.2.6).  The log
 * keeps the last IMAP_FOLDER_VANISHED_MAX ranges; older ones are
 * dropped (van_floor says up to which modseq), and a client that knew
 * the folder before that is told every UID that is not there. */
#define IMAP_FOLDER_VANISHED_MAX 1024
struct imap_vanished {
	uint32_t lo, hi;
	uint64_t modseq;
};

struct imap_folder {
	char *path;               /* the folder's Maildir (new/ cur/ tmp/) */
	uint32_t uidvalidity, uidnext;
	uint64_t modseq;          /* HIGHESTMODSEQ */
	uint32_t first_recent;    /* RFC 3501 \Recent: UIDs from here no session has had */
	struct imap_msg *v;       /* ascending UIDs */
	size_t n, cap;
	char *kw[IMAP_FOLDER_KW_MAX];
	size_t nkw;
	/* Keywords shared with Dovecot (imap_keywords.c): keyword i's letter
	 * is 'a' + kw_slot[i] (-1: none, kept in the state file only). */
	int8_t kw_slot[IMAP_FOLDER_KW_MAX];
	uint32_t kw_from_state;   /* lettered just now: the names take the state's bits */
	char *dk[IMAP_DK_SLOTS];  /* dovecot-keywords as last read or written */
	uint64_t dk_ino, dk_size;
	int64_t dk_mtime;
	bool dk_dirty;            /* slots given that the file does not have yet */
	struct imap_vanished *van;   /* in the order they went */
	size_t nvan, capvan;
	uint64_t van_floor;       /* expunges at modseqs up to this one may be gone from van */
	bool dirty;               /* state to save */
	bool cache_dirty;         /* the cache file is behind */
	bool batch;               /* imap_folder_batch_begin(): sync at the commit */
	int curfd;                /* cur/ while imap_folder_hold_cur() (else -1) */
};

/* Open (creating new/ cur/ tmp/ when missing), scan, and take what the
 * cache file knows.  NULL with errno on failure. */
struct imap_folder *imap_folder_open(const char *path);
void imap_folder_free(struct imap_folder *f);
/* Reconcile with the directory; *changed when messages came or went or
 * flags changed.  Saves the state when it changed. */
bool imap_folder_scan(struct imap_folder *f, bool *changed);
/* A scan reads names only: the date, file size and inode (and the size
 * when the name has no ",W=") are taken from the file when first
 * needed.  Fill them in for message i if not yet known (on a worker:
 * it stats, and may read, the file); false when the file is gone. */
bool imap_folder_stat(struct imap_folder *f, size_t i);
/* The same for every message not yet looked at. */
void imap_folder_stat_all(struct imap_folder *f);
static inline bool imap_msg_known(const struct imap_msg *m)
{
	return m->date >= 0;
}
/* Write the state file if dirty. */
bool imap_folder_save(struct imap_folder *f);

/* RFC 3501 2.3.2: a read-write session takes the \Recent messages (UIDs
 * from the returned one on); no other session sees them recent. */
uint32_t imap_folder_take_recent(struct imap_folder *f);

/* Index of uid, or -1. */
long imap_folder_find(const struct imap_folder *f, uint32_t uid);
/* The keyword's index, added when add (NULL slot: -1 when full or absent). */
int imap_folder_keyword(struct imap_folder *f, const char *kw, size_t len, bool add);
/* Set message i's flags and keywords: renames the file in cur/ when the
 * system flags change, bumps the modseq.  False with errno (ENOENT: the
 * file went away: scan). */
bool imap_folder_set_flags(struct imap_folder *f, size_t i, unsigned flags, uint32_t kw);
/* Many flag changes or expunges in a row (STORE 1:*, MOVE): cur/ is
 * opened once and the renames and unlinks are relative to it, so none
 * walks the whole path.  Held for one job at most (the directory may be
 * renamed between two). */
void imap_folder_hold_cur(struct imap_folder *f);
void imap_folder_release_cur(struct imap_folder *f);
/* "PATH/cur/NAME" (xmalloc). */
char *imap_folder_msg_path(const struct imap_folder *f, size_t i);
/* Open message i for reading, or -1 with errno. */
int imap_folder_open_msg(const struct imap_folder *f, size_t i);
/* RFC 7162 3.2.5.1, 3.2.6: the UIDs of set (NULL: all) expunged after
 * modseq, as ascending ranges in *out (xmalloc; "*" is UIDNEXT - 1).
 * When the log no longer reaches back to modseq, every UID of the set
 * below UIDNEXT that is not in the folder, except those up to known (what
 * the client's sequence match data shows it knows, 3.2.5.2; 0: none). */
size_t imap_folder_vanished(const struct imap_folder *f, uint64_t modseq, const struct imap_seqset *set,
			    uint32_t known, struct imap_seq_range **out);
/* Unlink message i and drop it (indexes after it shift down). */
bool imap_folder_expunge(struct imap_folder *f, size_t i);

/* A file written in PATH/tmp/ (its name tmp_name, fsync'd by the caller)
 * becomes a message: renamed into cur/ with flags, mtime set to date
 * (if >= 0), the next UID.  size is its CRLF size.  Committed (cur/
 * synced, state saved) before it returns. */
bool imap_folder_add(struct imap_folder *f, const char *tmp_name, unsigned flags, uint32_t kw,
		     int64_t date, uint64_t size, uint32_t *uid);
/* Copy the message file at from into dst (a hard link when possible),
 * with flags, keywords by name and internal date; false with errno
 * (ENOENT: the file went away).  Not yet committed: call
 * imap_folder_commit() after the last one. */
bool imap_folder_copy_file(struct imap_folder *dst, const char *from, unsigned flags, const char *const *kws,
			   size_t nkws, int64_t date, uint64_t size, uint32_t *uid);
/* Make the messages added so far durable: sync cur/, save the state. */
bool imap_folder_commit(struct imap_folder *f);
/* Several messages in one go (MULTIAPPEND): between these two,
 * imap_folder_add leaves cur/'s directory sync and the state file to the
 * commit, once for all instead of once per message.  Nothing is durable
 * before the commit returns true. */
void imap_folder_batch_begin(struct imap_folder *f);
bool imap_folder_batch_commit(struct imap_folder *f);
/* A unique name for a new file ("SECONDS.M<usec>P<pid>Q<n>.HOST"). */
void imap_folder_unique(char *out, size_t cap, const char *host);

/* ---- the FETCH cache (imap_cache.c) ---- */

enum { IMAP_CACHE_ENVELOPE, IMAP_CACHE_BODY, IMAP_CACHE_BODYSTRUCTURE };
/* Message i's three texts (as FETCH writes them); marks the file behind. */
void imap_cache_set(struct imap_folder *f, size_t i, const char *env, size_t elen, const char *body, size_t blen,
		    const char *bs, size_t slen);
/* One of them (IMAP_CACHE_*), or false when the message has none. */
bool imap_cache_get(const struct imap_msg *m, unsigned which, const char **p, size_t *len);
/* Take the cache file's entries for the messages whose file (size,
 * inode, mtime) is the one they were made from; a bad file is ignored.
 * Returns the number taken. */
size_t imap_cache_load(struct imap_folder *f);
/* Write the cache file (tmp, rename; no fsync: it is only a cache). */
bool imap_cache_save(struct imap_folder *f);
uint64_t imap_cache_hash(const void *p, size_t len);

/* ---- keywords shared with Dovecot (imap_keywords.c) ---- */

/* Take what dovecot-keywords says (when it changed) and give letters to
 * the keywords that have none, while free ones last. */
void imap_dk_sync(struct imap_folder *f);
/* Write dovecot-keywords when tern gave letters it does not have yet;
 * before any name carries them.  False with errno. */
bool imap_dk_flush(struct imap_folder *f);
/* Letters for the keywords that have none, while free ones last (no
 * I/O: the file gets them at the next flush). */
void imap_dk_assign(struct imap_folder *f);
void imap_dk_free(struct imap_folder *f);
/* The keywords that have a letter; those a name's letters say. */
uint32_t imap_kw_named(const struct imap_folder *f);
uint32_t imap_kw_of_name(const struct imap_folder *f, const char *name);
/* The sorted letters of kw, with old's letters that name none of tern's
 * keywords (NULL: none). */
size_t imap_kw_letters(const struct imap_folder *f, uint32_t kw, const char *old, char out[IMAP_DK_SLOTS + 1]);

/* The flags of a Maildir info part (after ":2,"), and back. */
unsigned imap_folder_flags_of(const char *name);
size_t imap_folder_info(unsigned flags, char out[8]);
/* Octets of buf[0..n) with every bare LF made CRLF; *prev: the byte
 * before buf (0 at the start), set to buf's last. */
uint64_t imap_crlf_len(const char *buf, size_t n, char *prev);
/* Arrival order of two Maildir names: the seconds, the microseconds of
 * "SECONDS.M<usec>..." (not zero-padded), then the names. */
int imap_folder_name_order(const char *x, const char *y);

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
