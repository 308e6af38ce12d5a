/*
 * cli.h - the `tern` subcommands.
 */
#ifndef TERN_CLI_H
#define TERN_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

int cmd_serve(int argc, char **argv);
int cmd_check_config(int argc, char **argv);
int cmd_user(int argc, char **argv);
int cmd_queue(int argc, char **argv);
int cmd_sendmail(int argc, char **argv);
int cmd_dkim(int argc, char **argv);
int cmd_dns_records(int argc, char **argv);
int cmd_init(int argc, char **argv);

/* -c FILE from argv (removed from it), or NULL; shared by the commands. */
const char *cli_take_config(int *argc, char **argv);
struct config;
/* The config of -c FILE, or the development default; exits on errors. */
struct config *cli_load_config(const char *path);

/* Commands that change the running server's queue (flush, hold, ...):
 * argv is "queue VERB [ARG] [--json]".  Returns the exit status. */
int queue_control(struct config *cfg, int argc, char **argv);
/* One request over the control socket; the answer's body goes to out.
 * Returns 0, 1 when the server refused it, or -1 when the server cannot
 * be reached (the reason printed). */
int control_request(const struct config *cfg, const char *request, FILE *out);
/* The mailq listing (sendmail -bp), read from the queue directory. */
int queue_mailq(struct config *cfg);

/* A new DKIM key for domain (lower case) as
 * state_dir/dkim/SELECTOR._domainkey.DOMAIN.pem, never replacing one;
 * its path in *path (xmalloc'd).  Exits on errors. */
struct evp_pkey_st;
struct evp_pkey_st *dkim_keygen_store(const struct config *cfg, const char *domain, const char *selector,
				      bool ed25519, char **path);
/* How many usable DKIM keys state_dir/dkim/ has for domain (lower case). */
size_t dns_records_dkim_keys(const struct config *cfg, const char *domain);
/* Every record domain (a local domain) needs, on standard output. */
void dns_records_print(const struct config *cfg, const char *domain);

#endif
