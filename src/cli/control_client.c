/*
 * control_client.c - the client side of the control socket (cli/control.h):
 * `tern queue flush|hold|release|delete` and `tern sendmail -q`.
 */
#include "cli/cli.h"
#include "cli/control.h"
#include "core/config.h"
#include "core/fsutil.h"
#include "core/util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static int control_connect(const struct config *cfg)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	char *path = xasprintf("%s/%s", cfg->state_dir, CONTROL_SOCKET);
	int fd = -1;

	if (strlen(path) >= sizeof(sun.sun_path)) {
		fprintf(stderr, "tern: control socket path too long: %s\n", path);
		free(path);
		return -1;
	}
	memcpy(sun.sun_path, path, strlen(path) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd >= 0 && connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		if (errno == ENOENT || errno == ECONNREFUSED)
			fprintf(stderr, "tern: the server is not running (no one listens on %s)\n", path);
		else
			fprintf(stderr, "tern: cannot connect to %s: %s\n", path, strerror(errno));
		close(fd);
		fd = -1;
	}
	free(path);
	return fd;
}

/* Copy the answer: the status line decides, the body goes to out (or,
 * for "ERR reason", the reason to stderr). */
static int control_read_answer(int fd, FILE *out)
{
	char buf[8192], status[CONTROL_LINE_MAX];
	size_t slen = 0;
	bool in_body = false, ok = false;
	ssize_t n;

	while ((n = read(fd, buf, sizeof(buf))) > 0 || (n < 0 && errno == EINTR)) {
		size_t i = 0;
		while (!in_body && i < (size_t)n) {
			char ch = buf[i++];
			if (ch == '\n' || slen + 1 >= sizeof(status)) {
				status[slen] = '\0';
				in_body = true;
				ok = strcmp(status, "OK") == 0;
				if (!ok)
					fprintf(stderr, "tern: %s\n", strncmp(status, "ERR ", 4) ? status : status + 4);
			} else {
				status[slen++] = ch;
			}
		}
		if (in_body && ok && i < (size_t)n)
			fwrite(buf + i, 1, (size_t)n - i, out);
	}
	if (!in_body) {
		fprintf(stderr, "tern: the server closed the control connection without an answer\n");
		return -1;
	}
	return ok ? 0 : 1;
}

int control_request(const struct config *cfg, const char *request, FILE *out)
{
	int fd = control_connect(cfg);
	int rc;
	if (fd < 0)
		return -1;
	if (!write_all(fd, request, strlen(request)) || !write_all(fd, "\n", 1)) {
		fprintf(stderr, "tern: control socket: %s\n", strerror(errno));
		close(fd);
		return -1;
	}
	shutdown(fd, SHUT_WR);
	rc = control_read_answer(fd, out);
	close(fd);
	fflush(out);
	return rc;
}

int queue_control(struct config *cfg, int argc, char **argv)
{
	static const char *const verbs[] = { "flush", "hold", "release", "delete", "list", "show" };
	char req[CONTROL_LINE_MAX];
	size_t o = 0;
	bool known = false;

	for (size_t i = 0; argc > 1 && i < ARRAY_LEN(verbs); i++)
		known |= strcmp(argv[1], verbs[i]) == 0;
	if (!known) {
		fprintf(stderr, "usage: tern queue list [--json]|show ID|flush [DOMAIN]|hold ID|release ID|delete ID\n");
		return 2;
	}
	for (int i = 1; i < argc; i++) {
		int n = snprintf(req + o, sizeof(req) - o, "%s%s", i > 1 ? " " : "", argv[i]);
		if (n < 0 || (size_t)n >= sizeof(req) - o || strpbrk(argv[i], "\r\n")) {
			fprintf(stderr, "tern: queue: bad arguments\n");
			return 2;
		}
		o += (size_t)n;
	}
	return control_request(cfg, req, stdout) == 0 ? 0 : 1;
}
