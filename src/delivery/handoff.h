/*
 * handoff.h - delivery's side of the hand-over of a message that a
 * session has accepted: the one hook (struct tern's intake ops) that
 * a receiving session calls, so that nothing in src/smtp/ needs to know
 * how mail is delivered.
 */
#ifndef TERN_HANDOFF_H
#define TERN_HANDOFF_H

struct tern;

/* Install the hook in t (done by scheduler_new). */
void handoff_install(struct tern *t);

#endif
