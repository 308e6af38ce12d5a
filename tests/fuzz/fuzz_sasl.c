/*
 * fuzz_sasl.c - libFuzzer harness for the SASL server mechanisms.  The
 * first byte picks the mechanism and whether the first line is an initial
 * response; the rest is split into client lines at '\n'.  The lookup knows
 * a {PLAIN} user "plain" and a {SCRAM-SHA-256} user "user" (RFC 7677).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "proto/passwd.h"
#include "proto/sasl.h"

#define SCRAM_SECRET "{SCRAM-SHA-256}4096,W22ZaJ0SNY7soEsUEjb6gQ==," \
	"WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=,wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU="

struct fuzz_db {
	struct passwd_secret plain, scram;
};

static const struct passwd_secret *fuzz_secret(void *ctx, const char *user)
{
	struct fuzz_db *db = ctx;
	if (strcmp(user, "plain") == 0)
		return &db->plain;
	if (strcmp(user, "user") == 0)
		return &db->scram;
	return NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_db db;
	struct sasl_lookup lk = { fuzz_secret, &db };
	struct sasl_server *s;
	const char *p, *end;
	enum sasl_status st;
	char *ch;

	if (size < 1)
		return 0;
	if (!passwd_parse("{PLAIN}pencil", 13, &db.plain) ||
	    !passwd_parse(SCRAM_SECRET, strlen(SCRAM_SECRET), &db.scram))
		abort();
	s = sasl_server_new((enum sasl_mech)(data[0] & 3), "fuzz.example");
	if (data[0] & 8)
		sasl_server_set_nonce_for_test(s, "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0");
	st = SASL_CONTINUE;
	if (data[0] & 4) {
		st = sasl_server_step(s, NULL, 0, &lk, &ch);
		free(ch);
	}
	p = (const char *)data + 1;
	end = (const char *)data + size;
	while (p <= end && st == SASL_CONTINUE) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *e = nl ? nl : end;
		st = sasl_server_step(s, p, (size_t)(e - p), &lk, &ch);
		if ((st == SASL_CONTINUE) != (ch != NULL))
			abort();
		free(ch);
		p = e + 1;
	}
	/* Whatever happened, the exchange is over or waiting; never both. */
	if (st != SASL_CONTINUE && sasl_server_step(s, "", 0, &lk, &ch) != SASL_BAD_INPUT)
		abort();
	sasl_server_free(s);
	passwd_secret_free(&db.plain);
	passwd_secret_free(&db.scram);
	return 0;
}
