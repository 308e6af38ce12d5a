/*
 * imap_session.h - what the IMAP session files share (private to src/imap/):
 * the session, its selected-folder view, the command table row, and the
 * reply helpers.  imap_server.c owns the session's life, input and state;
 * imap_cmd_*.c are the commands by group; imap_fetch.c is FETCH.
 */
#ifndef TERN_IMAP_SESSION_H
#define TERN_IMAP_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "core/conn.h"
#include "core/server.h"
#include "core/session.h"
#include "proto/imap_parse.h"
#include "store/imap_folder.h"

struct event;
struct evbuffer;
struct imap_fetch;
struct imap_server;
struct imap_session;

enum imap_state {
	IMAP_S_NOT_AUTH,
	IMAP_S_AUTH,
	IMAP_S_SELECTED,
	IMAP_S_LOGOUT,            /* flushing the last reply, then free */
};

/* A folder in use: selected by sessions, or held by a job (imap_server.c).
 * Every use of a folder goes through this one entry per directory, so two
 * jobs never read or write one state file at once. */
struct imap_shared {
	char *path;
	struct imap_folder *f;    /* NULL until a job has opened it */
	unsigned refs;            /* sessions that selected it + jobs on it */
	int wd_new, wd_cur;       /* inotify watches, -1 if none */
	bool dirty;               /* the directory changed: scan before use */
	/* Invariant 2 of DESIGN.md: folder work (scans, renames, state-file
	 * fsyncs) runs on a worker.  While a job has the folder (busy), the
	 * loop leaves f alone: the commands and FETCHes of the sessions on
	 * it wait, and jobs queue, to run one at a time in order. */
	bool busy;
	bool in_done;             /* a job's done() runs: f is the loop's, no new job yet */
	bool save_failed;         /* the last save failed: not retried at each release */
	struct imap_job *queue, *queue_tail;
	struct imap_session *sessions;   /* those that selected it (sel_next) */
	uint64_t closed_at;       /* refs 0: kept, watched, for the next SELECT (LRU) */
	struct event *cache_ev;   /* the cache file's next write (imap_cache_save_later) */
	struct imap_server *is;
	struct imap_shared *next;
};

struct imap_job;
typedef void (*imap_job_fn)(struct imap_job *j);

/* Work for a worker thread on one folder (path) or on none (path NULL:
 * the user's folder list, subscriptions).  work() runs on the worker
 * with the folder opened (and scanned when asked or when the directory
 * changed) in j->f, NULL with j->err when it cannot be opened; done()
 * runs back on the loop, the folder still reserved, then the job is
 * freed.  A session's job keeps the session from reading further
 * commands until done() (s->waiting), and is its answer by reference:
 * done() finds the session even if it has closed (state LOGOUT). */
struct imap_job {
	struct tern *t;
	struct imap_session *s;   /* NULL: the server's own (scan, last save) */
	struct imap_shared *sh;
	struct imap_folder *f;
	imap_job_fn work, done;
	const char *op;           /* for the log */
	bool scan;                /* look at the directory before work() */
	bool raw;                 /* hold the folder, do not open it (DELETE, RENAME) */
	bool fresh;               /* scan only if inotify says it changed (SELECT) */
	/* Renames or unlinks in cur/ by the thousand (STORE 1:*, MOVE): its
	 * watch is off while the job runs (each of them would queue two
	 * events for the loop to read, a tenth of the job's time), and a
	 * scan follows, as the events would have made one. */
	bool quiet_cur;
	bool unwatched;           /* private: quiet_cur took the watch off */
	bool changed;             /* the scan changed the folder */
	bool gone;                /* the session closed while the job ran: no reply */
	int err;
	uint64_t started_ms;
	void *arg;
	struct imap_job *next;
};

/* A job of s (NULL: the server's) on the folder at path (NULL: none). */
#define IMAP_JOB_QUIET_MIN 256    /* files a job changes to set quiet_cur */
struct imap_job *imap_job_new(struct imap_session *s, const char *path, const char *op, imap_job_fn work,
			      imap_job_fn done);
void imap_job_submit(struct imap_job *j);
/* What FETCH added to the selected folder's cache goes to its file, by a
 * job of the server's, within IMAP_CACHE_SAVE_DELAY_S (or when the last
 * session leaves the folder): the whole file is rewritten and the folder
 * is held meanwhile, so FETCHes that each add a little (a new message
 * at a time) are not followed by a rewrite each. */
void imap_cache_save_later(struct imap_session *s);

/* One message as this session last told its client. */
struct imap_view_msg {
	uint32_t uid;
	unsigned flags;
	uint32_t kw;
	bool gone;                /* expunged elsewhere, EXPUNGE not sent yet */
	bool recent;              /* \Recent in this session (RFC 3501 2.3.2) */
};

struct imap_session {
	struct session_link link;
	uint64_t id;
	struct tern *t;
	enum service svc;
	struct conn conn;
	struct session sess;
	enum imap_state state;
	struct sockaddr_storage peer;
	char ip[64];
	bool trusted;

	struct imap_parser parser;
	const struct imap_command *cur;
	bool cur_uid;             /* UID FETCH/STORE/SEARCH: EXPUNGE allowed */
	bool lit_discard;         /* a literal that does not fit: dropped */
	char tag[IMAP_TAG_MAX + 1];
	bool waiting;             /* login answer, literal or streaming pending */
	bool hold_args;           /* a job reads the parsed command: no reset yet */
	/* a literal being taken for the parser (not APPEND) */
	char *lit_buf;
	size_t lit_len;
	/* APPEND streaming into tmp/ */
	int append_fd;
	char *append_tmp;         /* "PATH/tmp/NAME" */
	char append_name[256];
	uint64_t append_size, append_crlf;
	char append_prev;
	bool append_discard;      /* over the limit, literal+ sent anyway: drop it */
	bool append_failed;
	unsigned append_flags;
	int64_t append_date;
	char *append_dir;         /* the target folder */
	/* MULTIAPPEND (RFC 3502): the messages of this APPEND already in
	 * tmp/ under their final names, added all at once at its end */
	struct imap_append_msg {
		char *name;           /* its final name in tmp/ */
		unsigned flags;
		int64_t date;
		uint64_t crlf;
		char *tmp;            /* "PATH/tmp/NAME" as streamed, until the job renames it */
	} *append_msgs;
	size_t nappend;

	char *user;               /* "local@domain" */
	char *maildir;
	uint64_t login_id;
	bool sasl_pending;
	bool utf8, rev2, condstore, qresync;   /* ENABLEd (RFC 5161, 7162) */

	struct imap_shared *sel;
	bool readonly;
	struct imap_view_msg *view;
	size_t nview, capview;
	uint64_t sync_modseq;     /* the folder's HIGHESTMODSEQ when the view last matched it */
	size_t ngone;             /* view entries gone, their EXPUNGE not sent yet */
	size_t nrecent, nrecent_told;   /* \Recent in the view; as last told (RECENT) */
	bool idling;
	struct imap_session *sel_next;   /* sessions of the same folder */
	struct imap_fetch *fetch;        /* FETCH in progress */
	unsigned nfetch, nstore;
};

/* Command rows: flags say in which states it may run. */
#define IMAP_F_NOT_AUTH 0x01
#define IMAP_F_AUTH 0x02
#define IMAP_F_SELECTED 0x04
#define IMAP_F_ANY (IMAP_F_NOT_AUTH | IMAP_F_AUTH | IMAP_F_SELECTED)
#define IMAP_F_LOGGED (IMAP_F_AUTH | IMAP_F_SELECTED)
#define IMAP_F_NO_ERROR_COUNT 0x08   /* logins: throttled by login/ instead */
#define IMAP_F_UID 0x10              /* may follow UID */

struct imap_command {
	const char *name;
	void (*fn)(struct imap_session *s, const struct imap_arg *args, bool uid);
	unsigned flags;
};

/* The command's arguments, kept for a job (hold_args), are done with. */
void imap_release_args(struct imap_session *s);

/* ---- replies (imap_server.c) ---- */
struct evbuffer *imap_out(struct imap_session *s);
void imap_ok(struct imap_session *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void imap_no(struct imap_session *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void imap_bad(struct imap_session *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void imap_untagged(struct imap_session *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void imap_set_state(struct imap_session *s, enum imap_state to);
void imap_close(struct imap_session *s, bool flush);
void imap_resume(struct imap_session *s);
void imap_capability_list(struct imap_session *s, struct evbuffer *b);
void imap_log_error(const struct imap_session *s, const char *op, int err);

/* ---- the selected folder (imap_server.c) ---- */
/* Done of a job on path (j->f opened): s selects it. */
void imap_select_attach(struct imap_session *s, struct imap_job *j, bool readonly);
void imap_select_close(struct imap_session *s);
/* The selected folder (the loop's: no job has it while a command runs). */
struct imap_folder *imap_folder(struct imap_session *s);
/* Tell this session's client what changed (EXPUNGE only when expunge). */
void imap_sync(struct imap_session *s, bool expunge);
/* RFC 7162: "* VANISHED (EARLIER)" for the UIDs of set (NULL: all)
 * expunged after modseq (above known: the sequence match data's, 0). */
void imap_vanished_earlier(struct imap_session *s, const struct imap_folder *f, uint64_t modseq,
			   const struct imap_seqset *set, uint32_t known);
/* The folders of the user's Maildir kept after their last session
 * closed them are dropped (DELETE and RENAME change what a path holds). */
void imap_shared_forget(struct imap_session *s);
/* Sequence set (or UIDs) to view indexes, ascending; false: BAD sent. */
bool imap_seq_resolve(struct imap_session *s, const struct imap_arg *a, bool uid, size_t **idx, size_t *n);
/* How many of the view are \Recent. */
size_t imap_view_recent(const struct imap_session *s);
/* The folder index of view entry i, or -1 when gone. */
long imap_view_index(struct imap_session *s, size_t i);
/* Flags and keywords as a FLAGS list. */
void imap_write_msg_flags(struct imap_session *s, struct evbuffer *b, unsigned flags, uint32_t kw);
/* A flag list argument to flags and keywords (keywords added when add). */
bool imap_parse_flag_list(struct imap_session *s, const struct imap_arg *a, unsigned *flags, uint32_t *kw,
			  bool add);
/* A mailbox argument to its wire name (INBOX any case -> "INBOX"); NULL: NO sent. */
char *imap_mailbox_arg(struct imap_session *s, const struct imap_arg *a);
/* A wire name (modified UTF-7) as the client reads it: UTF-8 after
 * ENABLE UTF8=ACCEPT. */
void imap_write_mailbox(struct imap_session *s, struct evbuffer *b, const char *name);

/* ---- command groups ---- */
void imap_cmd_capability(struct imap_session *s, const struct imap_arg *a, bool uid);
void imap_cmd_noop(struct imap_session *s, const struct imap_arg *a, bool uid);
void imap_cmd_logout(struct imap_session *s, const struct imap_arg *a, bool uid);
void imap_cmd_starttls(struct imap_session *s, const struct imap_arg *a, bool uid);
void imap_cmd_login(struct imap_session *s, const struct imap_arg *a, bool uid);
void imap_cmd_authenticate(struct imap_session *s, const struct imap_arg *a, bool uid);
void imap_cmd_enable(struct imap_session *s, const struct imap_arg *a, bool uid);
void imap_cmd_id(struct imap_session *s, const struct imap_arg *a, bool uid);
void imap_cmd_namespace(struct imap_session *s, const struct imap_arg *a, bool uid);
void imap_auth_continue(struct imap_session *s, const char *line, size_t len);
void imap_auth_end(struct imap_session *s);

void imap_cmd_select(struct imap_session *s, const struct imap_arg *a, bool uid);
void imap_cmd_examine(struct imap_session *s, const struct imap_arg *a, bool uid);
void imap_cmd_list(struct imap_session *s, const struct imap_arg *a, bool uid);
void imap_cmd_lsub(struct imap_session *s, const struct imap_arg *a, bool uid);
void imap_cmd_status(struct imap_session *s, const struct imap_arg *a, bool uid);
void imap_cmd_create(struct imap_session *s, const struct imap_arg *a, bool uid);
void imap_cmd_delete(struct imap_session *s, const struct imap_arg *a, bool uid);
void imap_cmd_rename(struct imap_session *s, const struct imap_arg *a, bool uid);
void imap_cmd_subscribe(struct imap_session *s, const struct imap_arg *a, bool uid);
void imap_cmd_unsubscribe(struct imap_session *s, const struct imap_arg *a, bool uid);
void imap_cmd_append(struct imap_session *s, const struct imap_arg *a, bool uid);
/* APPEND's literal: announced (false: answered, do not take it), octets, end. */
bool imap_append_begin(struct imap_session *s, uint32_t size, bool sync);
void imap_append_octets(struct imap_session *s, const char *p, size_t len);
void imap_append_abort(struct imap_session *s);

void imap_cmd_check(struct imap_session *s, const struct imap_arg *a, bool uid);
void imap_cmd_close(struct imap_session *s, const struct imap_arg *a, bool uid);
void imap_cmd_unselect(struct imap_session *s, const struct imap_arg *a, bool uid);
void imap_cmd_expunge(struct imap_session *s, const struct imap_arg *a, bool uid);
void imap_cmd_store(struct imap_session *s, const struct imap_arg *a, bool uid);
void imap_cmd_copy(struct imap_session *s, const struct imap_arg *a, bool uid);
void imap_cmd_move(struct imap_session *s, const struct imap_arg *a, bool uid);
void imap_cmd_search(struct imap_session *s, const struct imap_arg *a, bool uid);
void imap_cmd_idle(struct imap_session *s, const struct imap_arg *a, bool uid);
void imap_cmd_fetch(struct imap_session *s, const struct imap_arg *a, bool uid);
/* Output drained: FETCH goes on.  True when it is finished. */
bool imap_fetch_continue(struct imap_session *s);
void imap_fetch_free(struct imap_session *s);

#endif
