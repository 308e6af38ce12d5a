/*
 * cli.h - the `tern` subcommands.
 */
#ifndef TERN_CLI_H
#define TERN_CLI_H

int cmd_serve(int argc, char **argv);
int cmd_check_config(int argc, char **argv);
int cmd_user(int argc, char **argv);
int cmd_queue(int argc, char **argv);
int cmd_sendmail(int argc, char **argv);

/* -c FILE from argv (removed from it), or NULL; shared by the commands. */
const char *cli_take_config(int *argc, char **argv);
struct config;
/* The config of -c FILE, or the development default; exits on errors. */
struct config *cli_load_config(const char *path);

/* Commands that change the running server's queue (flush, hold, ...). */
int queue_control(struct config *cfg, int argc, char **argv);

#endif
