/*
 * fuzz_smtp_command.c - libFuzzer harness: a command line through
 * smtp_split_command, then its arguments through smtp_parse_mail,
 * smtp_parse_rcpt and smtp_helo_valid, the line through smtp_is_http_request, checking the invariants the session
 * relies on (tokens inside the input, NUL-terminated bounded results,
 * nothing half-filled on error).
 */
#include <assert.h>
#include <stdint.h>
#include <string.h>

#include "proto/smtp_parse.h"

static void check_path(const struct smtp_path *p)
{
	assert(memchr(p->local, '\0', sizeof(p->local)) != NULL);
	assert(memchr(p->domain, '\0', sizeof(p->domain)) != NULL);
	char buf[SMTP_PATH_MAX * 2 + 8];
	size_t n = smtp_path_format(p, buf, sizeof(buf));
	assert(n == strlen(buf));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *line = (const char *)data;
	struct smtp_token verb, args;
	smtp_split_command(line, size, &verb, &args);
	assert(verb.p == line && verb.len <= size);
	assert(args.p >= line && args.p + args.len == line + size);
	assert(memchr(verb.p, ' ', verb.len) == NULL);

	struct smtp_path path;
	struct smtp_mail_params mp;
	if (smtp_parse_mail(args.p, args.len, &path, &mp) == SMTP_OK) {
		check_path(&path);
		assert(strlen(mp.envid) <= 100);
		assert(memchr(mp.auth, '\0', sizeof(mp.auth)) != NULL);
		assert(mp.has_auth || mp.auth[0] == '\0');
		assert(!path.utf8 || smtp_utf8_valid(path.local, strlen(path.local), NULL));
	} else {
		assert(!mp.has_size && !mp.has_auth && mp.envid[0] == '\0' && !mp.smtputf8);
	}

	struct smtp_rcpt_params rp;
	if (smtp_parse_rcpt(args.p, args.len, &path, &rp) == SMTP_OK) {
		check_path(&path);
		assert(!path.null);
		assert(!(rp.notify & SMTP_NOTIFY_NEVER) || rp.notify == SMTP_NOTIFY_NEVER);
		assert(memchr(rp.orcpt_type, '\0', sizeof(rp.orcpt_type)) != NULL);
		assert(memchr(rp.orcpt_addr, '\0', sizeof(rp.orcpt_addr)) != NULL);
	} else {
		assert(rp.notify == 0 && rp.orcpt_type[0] == '\0');
	}

	uint64_t bsize;
	bool blast;
	if (smtp_parse_bdat(args.p, args.len, &bsize, &blast))
		assert(bsize <= SMTP_BDAT_MAX && args.len > 0);
	else
		assert(bsize == 0 && !blast);

	if (smtp_is_http_request(line, size))
		assert(size >= 5);

	if (smtp_helo_valid(args.p, args.len))
		assert(args.len > 0 && args.len <= SMTP_DOMAIN_MAX);
	return 0;
}
