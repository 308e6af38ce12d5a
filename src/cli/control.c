/*
 * control.c - `tern queue flush|hold|release|delete` and `tern sendmail`
 * talk to the running server; not built yet.
 */
#include "cli/cli.h"

#include <stdio.h>

int queue_control(struct config *cfg, int argc, char **argv)
{
	fprintf(stderr, "tern: queue %s: not available yet\n", argc > 1 ? argv[1] : "");
	return 2;
}

int cmd_sendmail(int argc, char **argv)
{
	fprintf(stderr, "tern: sendmail: not available yet\n");
	return 2;
}
