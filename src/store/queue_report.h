/*
 * queue_report.h - how queued messages are shown to operators: the lines
 * of `tern queue list` (text or JSON), the envelope part of `tern queue
 * show`, and the mailq listing of `tern sendmail -bp`.  One formatter for
 * the command line (reading the queue directly) and the control socket,
 * so the formats cannot drift.
 */
#ifndef TERN_QUEUE_REPORT_H
#define TERN_QUEUE_REPORT_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

struct queue_env;

/* `tern queue list`: one line (or JSON object) per recipient.  *first is
 * true before the first entry of a JSON array and cleared here.  Returns
 * the number of entries written. */
size_t queue_report_list(FILE *f, const struct queue_env *env, bool json, bool *first);
/* The JSON array around the entries: "[" and, after n entries, "]". */
void queue_report_list_open(FILE *f, bool json);
void queue_report_list_close(FILE *f, bool json, size_t n);

/* `tern queue show`: the envelope, then a blank line (the message follows). */
void queue_report_show(FILE *f, const struct queue_env *env);
/* The same envelope as one JSON object (no message). */
void queue_report_show_json(FILE *f, const struct queue_env *env);

/* mailq (sendmail -bp): the header line, one block per message, the total. */
void queue_report_mailq_head(FILE *f);
void queue_report_mailq(FILE *f, const struct queue_env *env);
void queue_report_mailq_tail(FILE *f, size_t nmsgs, uint64_t bytes);

/* s as a JSON string, quotes included; NULL as null. */
void queue_report_json_str(FILE *f, const char *s);

#endif
