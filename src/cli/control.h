/*
 * control.h - the control socket of a running tern: a UNIX stream socket
 * at state_dir/run/control.sock (mode 0600, owned by the run user) that
 * `tern queue` and `tern sendmail -q` talk to.
 *
 * Protocol: the client sends one request line, at most CONTROL_LINE_MAX
 * octets with its LF:
 *
 *     VERB [ARG] [--json]        list | show ID | flush [DOMAIN]
 *                                hold ID | release ID | delete ID
 *
 * and reads the answer to the end of the connection: a status line "OK"
 * or "ERR reason", then the body (text lines, or JSON with --json).
 */
#ifndef TERN_CONTROL_H
#define TERN_CONTROL_H

#define CONTROL_LINE_MAX 512
#define CONTROL_SOCKET "run/control.sock"   /* under state_dir */

struct tern;
struct control;

/* Bind the socket and serve it on t's loop; NULL (logged) on failure. */
struct control *control_start(struct tern *t);
/* Close the socket, unlink it and drop every open control connection. */
void control_free(struct control *c);

#endif
