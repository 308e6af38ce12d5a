/*
 * stages.h - the stages tern's message pipeline is built from (see
 * pipeline.h for the chain).
 */
#ifndef TERN_STAGES_H
#define TERN_STAGES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct pipe_stage;
struct tern;

/* DATA's framer (RFC 5321 4.1.1.4, 4.5.2): ends at CRLF.CRLF, removes
 * dot-stuffing, CRLF -> LF; refuses bare CR/LF (smuggling), NUL, lines
 * over max_line octets, and messages over max_size octets (read to the
 * end all the same, RFC 5321 4.5.3.1.10). */
struct pipe_stage *stage_dot_new(size_t max_line, uint64_t max_size);

/* BDAT's framer (RFC 3030): chunk octets as the session counts them,
 * CRLF -> LF without dot-unstuffing; a text message with a bare CR/LF,
 * a NUL or a line over max_line octets is refused at its end; with binary
 * (BODY=BINARYMIME) the body passes as it came. */
struct pipe_stage *stage_bdat_new(bool binary, size_t max_line);

/* Header work: the Received: field (given whole, LF line ends) in front;
 * for submitted mail (msa) Date: and Message-ID: when missing (RFC 6409
 * 8.2, 8.3; the Message-ID made of id and hostname); refuses a message
 * with more than max_received Received: fields (a loop). */
struct pipe_stage *stage_header_new(const char *received, bool msa, const char *id, const char *hostname,
				    unsigned max_received);

/* The Delivered-To loop check: a recipient whose address the message
 * already carries in a Delivered-To: field failed with 5.4.6; if every
 * recipient did, the message is refused with 554 5.4.6. */
struct pipe_stage *stage_loop_new(void);

/* The sink: the message into delivery's intake (t->intake), committed
 * there at the end.  NULL (logged) when no intake can be opened.
 * sink_queue_direct() tells whether the message was delivered without a
 * queue file (after the end). */
struct pipe_stage *sink_queue_new(struct tern *t, struct queue_env *env);
bool sink_queue_direct(const struct pipe_stage *st);

#endif
