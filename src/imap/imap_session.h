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

struct evbuffer;
struct imap_fetch;
struct imap_session;

enum imap_state {
	IMAP_S_NOT_AUTH,
	IMAP_S_AUTH,
	IMAP_S_SELECTED,
	IMAP_S_LOGOUT,            /* flushing the last reply, then free */
};

/* A folder open for the sessions that selected it (imap_server.c). */
struct imap_shared {
	char *path;
	struct imap_folder *f;
	unsigned refs;
	int wd_new, wd_cur;       /* inotify watches, -1 if none */
	bool dirty;               /* the directory changed: scan before use */
	struct imap_session *sessions;   /* those that selected it (sel_next) */
	uint64_t closed_at;       /* refs 0: kept, watched, for the next SELECT (LRU) */
	struct imap_shared *next;
};

/* One message as this session last told its client. */
struct imap_view_msg {
	uint32_t uid;
	unsigned flags;
	uint32_t kw;
	bool gone;                /* expunged elsewhere, EXPUNGE not sent yet */
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
		char *name;
		unsigned flags;
		int64_t date;
		uint64_t crlf;
	} *append_msgs;
	size_t nappend;

	char *user;               /* "local@domain" */
	char *maildir;
	uint64_t login_id;
	bool sasl_pending;
	bool utf8, rev2, condstore;

	struct imap_shared *sel;
	bool readonly;
	struct imap_view_msg *view;
	size_t nview, capview;
	uint64_t sync_modseq;     /* the folder's HIGHESTMODSEQ when the view last matched it */
	size_t ngone;             /* view entries gone, their EXPUNGE not sent yet */
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
bool imap_select_open(struct imap_session *s, const char *path, bool readonly);
void imap_select_close(struct imap_session *s);
/* The shared folder, scanned if the directory changed. */
struct imap_folder *imap_folder(struct imap_session *s);
/* Tell this session's client what changed (EXPUNGE only when expunge). */
void imap_sync(struct imap_session *s, bool expunge);
/* The folder at dir: the shared one if a session has it open (own
 * false), else opened for the caller; imap_folder_done() after use
 * frees it or tells the sessions on it (changed). */
struct imap_folder *imap_folder_at(struct imap_session *s, const char *dir, bool *own);
void imap_folder_done(struct imap_session *s, struct imap_folder *f, bool own, bool changed);
/* The folders of maildir kept after their last session closed them are
 * dropped (DELETE and RENAME change what a path holds). */
void imap_shared_forget(struct imap_session *s);
/* Other sessions on the same folder have something to learn (IDLE now). */
void imap_changed(struct imap_session *s);
/* Sequence set (or UIDs) to view indexes, ascending; false: BAD sent. */
bool imap_seq_resolve(struct imap_session *s, const struct imap_arg *a, bool uid, size_t **idx, size_t *n);
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
