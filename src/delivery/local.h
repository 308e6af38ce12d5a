/*
 * local.h - local delivery: the local recipients of a message into their
 * Maildirs.  Runs on a worker thread; touches only the message's file,
 * the Maildirs and the (read-only) config.
 */
#ifndef TERN_LOCAL_H
#define TERN_LOCAL_H

#include <stdbool.h>
#include <stdint.h>

#include <stddef.h>

#include "store/maildir.h"

struct config;
struct queue;
struct queue_env;

/*
 * All-local mail written once: the message streams into its first
 * recipient's Maildir tmp/ file as it arrives (after that recipient's
 * Return-Path: and Delivered-To:), and the other recipients' copies are
 * made from that file at the end.  The message itself starts at
 * prefix_len in mf.fd.
 */
struct local_stream {
	struct maildir_file mf;
	size_t rcpt;              /* whose file it is */
	size_t prefix_len;
	uint64_t written;         /* message octets (in the file and in buf) */
	uint64_t file_len;        /* octets written to the file (prefix too) */
	char *buf;                /* the next octets of the file, not written yet */
	size_t buf_len, buf_cap;
	bool hold;                /* keep it all in buf (local_stream_hold) */
	bool open, committed;
	bool fill;                /* mf.path wants spares made (maildir_spares_fill) */
	int err;                  /* errno of a failed write, or 0 */
};

/* Loop thread, at DATA: false (nothing open) unless every recipient is
 * local and the first one's Maildir exists. */
bool local_stream_open(const struct config *cfg, const struct queue_env *env, struct local_stream *ls);
/* The message goes through a small buffer (LOCAL_STREAM_BUF), so that a
 * small message reaches its file in one write, on the worker that commits
 * it (local_stream_flush), not in several on the loop.  False (ls->err)
 * when a write failed: the octets the file holds are then the prefix and
 * local_stream_in_file() of the message, the rest local_stream_pending(). */
bool local_stream_write(struct local_stream *ls, const void *buf, size_t len);
bool local_stream_flush(struct local_stream *ls);
uint64_t local_stream_in_file(const struct local_stream *ls);
const char *local_stream_pending(const struct local_stream *ls, size_t *len);
/* Header fields in front of the message (after the recipient's prefix):
 * in the buffer while nothing is in the file yet, else the message is
 * moved in the file (fs_insert) to make room. */
bool local_stream_insert_front(struct local_stream *ls, const void *buf, size_t len);
/* Fields will come in front at the end: from now on nothing is written
 * to the file before the end (the commit's worker flushes it), so that
 * they go in front in memory.  Bounded: local_stream_room() says when a
 * write would take the buffer past LOCAL_STREAM_HOLD_MAX, and the caller
 * then goes on elsewhere (the queue file, which has room in front). */
#define LOCAL_STREAM_HOLD_MAX (128 * 1024)
void local_stream_hold(struct local_stream *ls);
bool local_stream_room(const struct local_stream *ls, size_t len);
/* Close the file; not delivered, it is removed. */
void local_stream_close(struct local_stream *ls);

/* All-local mail straight from its uncommitted queue file, or from a
 * stream's file (ls, else NULL), at env->msg_offset in fd (see local.c):
 * true when every recipient is final (delivered, or failed before). */
bool local_deliver_direct(const struct config *cfg, struct queue_env *env, int fd, struct local_stream *ls);

/* The due local recipients of a loaded message (fd open on its file):
 * PENDING ones, and DEFERRED ones whose next_try has come.  Updates the
 * recipients in env; saves nothing.  True when a state changed. */
bool local_deliver_env(const struct config *cfg, struct queue_env *env, int fd, int64_t now);

#endif
