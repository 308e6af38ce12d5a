/*
 * main.c - `tern COMMAND ...`, and `sendmail` when invoked by that name.
 */
#include "cli/cli.h"
#include "core/config.h"
#include "core/util.h"

#include <libgen.h>
#include <stdio.h>
#include <string.h>

static void usage(FILE *f)
{
	fputs("usage: tern init --domain D --hostname H [--acme-email E] [--state-dir DIR] [-c FILE] [--force]\n"
	      "                                        config, DKIM key, postmaster, DNS records for a domain\n"
	      "       tern serve [-c FILE]             run the server in the foreground\n"
	      "       tern check-config [-c FILE]      validate a config file\n"
	      "       tern example-config              print a documented config\n"
	      "       tern user add|passwd|del|list [ADDRESS] [-c FILE]\n"
	      "       tern queue list [--json]|show ID|flush [DOMAIN]|hold ID|release ID|delete ID [-c FILE]\n"
	      "       tern dkim keygen DOMAIN [--selector S] [--algorithm rsa|ed25519] [-c FILE]\n"
	      "       tern dkim sign --key PEM --domain D --selector S < MESSAGE   (for testing and scripts)\n"
	      "       tern dkim verify [--record NAME=TXT]... < MESSAGE         (for testing and scripts)\n"
	      "       tern sendmail [-t] [-i] [-f FROM] [-F NAME] [-bs|-bp|-q] [RCPT...]\n"
	      "       tern dns-records DOMAIN [-c FILE] print the DNS records DOMAIN needs\n", f);
}

int main(int argc, char **argv)
{
	const char *prog = basename(argv[0]);

	if (strcmp(prog, "sendmail") == 0 || strcmp(prog, "mailq") == 0)
		return cmd_sendmail(argc, argv);
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	if (!strcmp(argv[1], "init"))
		return cmd_init(argc - 1, argv + 1);
	if (!strcmp(argv[1], "serve"))
		return cmd_serve(argc - 1, argv + 1);
	if (!strcmp(argv[1], "check-config"))
		return cmd_check_config(argc - 1, argv + 1);
	if (!strcmp(argv[1], "example-config")) {
		config_print_example(stdout);
		return 0;
	}
	if (!strcmp(argv[1], "user"))
		return cmd_user(argc - 1, argv + 1);
	if (!strcmp(argv[1], "queue"))
		return cmd_queue(argc - 1, argv + 1);
	if (!strcmp(argv[1], "dkim"))
		return cmd_dkim(argc - 1, argv + 1);
	if (!strcmp(argv[1], "sendmail"))
		return cmd_sendmail(argc - 1, argv + 1);
	if (!strcmp(argv[1], "dns-records"))
		return cmd_dns_records(argc - 1, argv + 1);
	if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
		usage(stdout);
		return 0;
	}
	fprintf(stderr, "tern: unknown command '%s'\n", argv[1]);
	usage(stderr);
	return 2;
}
