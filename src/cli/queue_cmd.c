/*
 * queue_cmd.c - `tern queue list|show`: read the queue directory
 * directly (committed files only; nothing here changes the queue).
 */
#include "cli/cli.h"
#include "core/config.h"
#include "core/util.h"
#include "store/queue.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct list_ctx {
	struct queue *q;
	bool json;
	bool first;
	size_t n;
};

static void json_str(const char *s)
{
	putchar('"');
	for (; s && *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\')
			printf("\\%c", c);
		else if (c < 0x20)
			printf("\\u%04x", c);
		else
			putchar(c);
	}
	putchar('"');
}

static void list_one(const char *id, void *arg)
{
	struct list_ctx *c = arg;
	struct queue_env *env = queue_load(c->q, id, NULL);
	if (env == NULL)
		return;
	for (size_t i = 0; i < env->nrcpt; i++) {
		const struct queue_rcpt *r = &env->rcpt[i];
		const char *state = env->held ? "held" : rcpt_state_name(r->state);
		if (c->json) {
			printf("%s\n  {\"id\": \"%s\", \"recipient\": ", c->first ? "" : ",", id);
			json_str(r->addr);
			printf(", \"sender\": ");
			json_str(env->from);
			printf(", \"state\": \"%s\", \"local\": %s, \"arrival\": %" PRId64 ", \"size\": %" PRIu64
			       ", \"attempts\": %u, \"next_try\": %" PRId64 ", \"last_reply\": ",
			       state, r->local ? "true" : "false", env->arrival, env->msg_len, r->attempts, r->next_try);
			if (r->last_reply)
				json_str(r->last_reply);
			else
				fputs("null", stdout);
			putchar('}');
		} else {
			printf("%s %-9s %s%s%s\n", id, state, r->addr, r->last_reply ? "  " : "",
			       r->last_reply ? r->last_reply : "");
		}
		c->first = false;
		c->n++;
	}
	queue_env_free(env);
}

static int queue_show(struct queue *q, const char *id)
{
	int fd = -1;
	struct queue_env *env = queue_load(q, id, &fd);
	char buf[65536];
	if (env == NULL) {
		fprintf(stderr, "tern: no queued message %s\n", id);
		return 1;
	}
	printf("id: %s\nfrom: <%s>\narrival: %" PRId64 "\nsize: %" PRIu64 "\nclient: %s (%s)\n", env->id,
	       env->from, env->arrival, env->msg_len, env->client_ip ? env->client_ip : "-",
	       env->helo ? env->helo : "-");
	for (size_t i = 0; i < env->nrcpt; i++)
		printf("rcpt: %s %s attempts=%u%s%s\n", env->rcpt[i].addr, rcpt_state_name(env->rcpt[i].state),
		       env->rcpt[i].attempts, env->rcpt[i].last_reply ? " last=" : "",
		       env->rcpt[i].last_reply ? env->rcpt[i].last_reply : "");
	putchar('\n');
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

int cmd_queue(int argc, char **argv)
{
	const char *path = cli_take_config(&argc, argv);
	struct config *cfg = cli_load_config(path);
	struct queue *q = queue_open(cfg->state_dir);
	struct list_ctx c = { .q = q, .first = true };
	const char *verb = argc > 1 ? argv[1] : "list";
	int rc = 0;

	if (q == NULL)
		die("cannot open the queue in %s", cfg->state_dir);
	if (!strcmp(verb, "list")) {
		c.json = argc > 2 && !strcmp(argv[2], "--json");
		if (c.json)
			putchar('[');
		queue_scan(q, list_one, &c);
		if (c.json)
			printf("%s]\n", c.n ? "\n" : "");
	} else if (!strcmp(verb, "show") && argc > 2) {
		rc = queue_show(q, argv[2]);
	} else {
		rc = queue_control(cfg, argc, argv);
	}
	queue_close(q);
	config_free(cfg);
	return rc;
}
