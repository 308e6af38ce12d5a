/*
 * queue_cmd.c - `tern queue list|show` and the mailq listing: read the
 * queue directory directly (committed files only; nothing here changes
 * the queue), so they work whether or not the server runs.  The verbs
 * that change the queue go through the control socket (control.c).
 */
#include "cli/cli.h"
#include "core/config.h"
#include "core/util.h"
#include "store/queue.h"
#include "store/queue_report.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct list_ctx {
	struct queue *q;
	bool json;
	bool first;
	size_t n;           /* entries (list) or messages (mailq) */
	uint64_t bytes;
};

static void list_one(const char *id, void *arg)
{
	struct list_ctx *c = arg;
	struct queue_env *env = queue_load(c->q, id, NULL);
	if (env == NULL)
		return;
	c->n += queue_report_list(stdout, env, c->json, &c->first);
	queue_env_free(env);
}

static void mailq_one(const char *id, void *arg)
{
	struct list_ctx *c = arg;
	struct queue_env *env = queue_load(c->q, id, NULL);
	if (env == NULL)
		return;
	if (c->n++ == 0)
		queue_report_mailq_head(stdout);
	queue_report_mailq(stdout, env);
	c->bytes += env->msg_len;
	queue_env_free(env);
}

static int queue_show(struct queue *q, const char *id, bool json)
{
	int fd = -1;
	struct queue_env *env = queue_load(q, id, &fd);
	char buf[65536];
	if (env == NULL) {
		fprintf(stderr, "tern: no queued message %s\n", id);
		return 1;
	}
	if (json) {
		queue_report_show_json(stdout, env);
		close(fd);
		queue_env_free(env);
		return 0;
	}
	queue_report_show(stdout, env);
	fflush(stdout);
	uint64_t left = env->msg_len;
	off_t off = (off_t)env->msg_offset;
	while (left > 0) {
		ssize_t n = pread(fd, buf, left < sizeof(buf) ? left : sizeof(buf), off);
		if (n <= 0)
			break;
		fwrite(buf, 1, (size_t)n, stdout);
		off += n;
		left -= (uint64_t)n;
	}
	close(fd);
	queue_env_free(env);
	return 0;
}

static bool has_flag(int argc, char **argv, const char *flag)
{
	for (int i = 2; i < argc; i++)
		if (!strcmp(argv[i], flag))
			return true;
	return false;
}

int queue_mailq(struct config *cfg)
{
	struct queue *q = queue_open(cfg->state_dir);
	struct list_ctx c = { .q = q };
	if (q == NULL) {
		fprintf(stderr, "tern: cannot open the queue in %s\n", cfg->state_dir);
		return 1;
	}
	queue_scan(q, mailq_one, &c);
	queue_report_mailq_tail(stdout, c.n, c.bytes);
	queue_close(q);
	return 0;
}

int cmd_queue(int argc, char **argv)
{
	const char *path = cli_take_config(&argc, argv);
	struct config *cfg = cli_load_config(path);
	const char *verb = argc > 1 ? argv[1] : "list";
	bool json = has_flag(argc, argv, "--json");
	struct queue *q;
	int rc = 0;

	if (strcmp(verb, "list") && strcmp(verb, "show")) {
		rc = queue_control(cfg, argc, argv);
		config_free(cfg);
		return rc;
	}
	q = queue_open(cfg->state_dir);
	if (q == NULL)
		die("cannot open the queue in %s", cfg->state_dir);
	if (!strcmp(verb, "list")) {
		struct list_ctx c = { .q = q, .json = json, .first = true };
		queue_report_list_open(stdout, json);
		queue_scan(q, list_one, &c);
		queue_report_list_close(stdout, json, c.n);
	} else if (argc > 2 && argv[2][0] != '-') {
		rc = queue_show(q, argv[2], json);
	} else {
		fprintf(stderr, "usage: tern queue show ID [--json]\n");
		rc = 2;
	}
	queue_close(q);
	config_free(cfg);
	return rc;
}
