/*
 * queue.h - the durable mail queue under state_dir/queue.
 *
 * A queued message is one file, queue/msg/ID: the envelope as text lines,
 * a blank line, possibly padding (line ends: room that header fields put
 * in front at the end of DATA took part of), the message (LF line
 * ends), then a trailer line
 * "TERN-END off=.. len=.. lines=.. 8bit=..".  It is written in queue/tmp/
 * and committed by fsync + rename + directory fsync (queue_writer_commit).
 * Per-recipient progress (delivered, deferred, failed) lives beside it in
 * queue/msg/ID.st, replaced atomically the same way.
 */
#ifndef TERN_QUEUE_H
#define TERN_QUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "proto/queuefile.h"   /* struct queue_env, queue_rcpt; the file parser */

struct queue;
struct queue_writer;

struct queue *queue_open(const char *state_dir);
void queue_close(struct queue *q);
const char *queue_msg_dir(const struct queue *q);

/* Start a message: creates the temporary file and writes the envelope. */
struct queue_writer *queue_writer_new(struct queue *q, struct queue_env *env);
/* The envelope again (env changed since queue_writer_new), before the
 * rest of the message is written; false (sticky, logged) on error. */
bool queue_writer_set_envelope(struct queue_writer *w, const struct queue_env *env);
/* Where temporary files of the queue go (same file system). */
const char *queue_tmp_dir(const struct queue *q);
int queue_writer_fd(const struct queue_writer *w);
const char *queue_writer_id(const struct queue_writer *w);
/* Where the message starts in the file, and its length so far. */
uint64_t queue_writer_offset(const struct queue_writer *w);
uint64_t queue_writer_size(const struct queue_writer *w);
/* 0, or the errno of the write that failed (the message cannot be kept). */
int queue_writer_error(const struct queue_writer *w);
/* Append message bytes (loop thread; page-cache writes, no sync).  On
 * failure (and on every call after one) false with errno set: ENOSPC or
 * EDQUOT when the disk is full.  queue_writer_new and queue_writer_commit
 * keep errno the same way. */
bool queue_writer_write(struct queue_writer *w, const void *buf, size_t len);
/* Room for fields to go in front of the message later: room octets of
 * padding (line ends, which readers skip after the envelope's blank
 * line) between the envelope and the message, before any of it is
 * written.  False (nothing done) once message octets are in. */
#define QUEUE_FRONT_ROOM 4096
bool queue_writer_reserve_front(struct queue_writer *w, size_t room);
/* Put buf in front of the message written so far (header fields a check
 * adds at the end of the message): into the room reserved, when it fits
 * (the message stays where it is); otherwise the message is moved up in
 * the file, back to front, which costs one more copy of it.  Loop
 * thread. */
bool queue_writer_insert_front(struct queue_writer *w, const void *buf, size_t len);
/* Worker thread: trailer, fsync, rename, directory fsync.  True when the
 * message is durable; false (and the temp file removed) otherwise.  An
 * existing queue file is never replaced: if the id turns out to be taken,
 * the message is committed under a new one, which queue_writer_id() and
 * the env given to queue_writer_new() (still alive) then hold. */
bool queue_writer_commit(struct queue_writer *w, uint64_t lines, bool eight_bit);
/* Drop an unfinished message (after an error: the file is removed). */
void queue_writer_abort(struct queue_writer *w);
/* Drop a message that is not needed any more (delivered directly, or
 * refused): its file is kept for the next message.  With delivered true
 * the bytes stay until the next message overwrites them (they are a copy
 * of what is now in the Maildirs); otherwise the file is emptied, so
 * nothing of a refused or abandoned message stays on disk. */
void queue_writer_recycle(struct queue_writer *w, bool delivered);
void queue_writer_free(struct queue_writer *w);

/* Read a committed message's envelope and state.  Opens *fd on the file
 * when fd != NULL (the message is at env->msg_offset, env->msg_len long). */
struct queue_env *queue_load(struct queue *q, const char *id, int *fd);
/* Replace the state file atomically (worker thread). */
bool queue_save_state(struct queue *q, const struct queue_env *env);
/* Remove the message and its state (`tern queue delete`). */
bool queue_remove(struct queue *q, const char *id);
/* Remove a message whose recipients are all finished: its file goes back
 * to the scratch pool (its bytes stay until a later message overwrites
 * them) instead of being deleted, so that a busy relay neither creates
 * nor deletes a file per message.  Worker thread. */
bool queue_retire(struct queue *q, const char *id);
/* Start-up recovery: remove partial messages and orphan state files;
 * counts the committed messages for queue_length(). */
void queue_recover(struct queue *q);
/* Committed messages in the queue (held ones too): seeded by
 * queue_recover(), kept by commit, retire and remove.  Any thread. */
uint64_t queue_length(const struct queue *q);
/* Call fn for each committed message id, oldest first. */
size_t queue_scan(struct queue *q, void (*fn)(const char *id, void *arg), void *arg);

const char *rcpt_state_name(enum rcpt_state s);

#endif
