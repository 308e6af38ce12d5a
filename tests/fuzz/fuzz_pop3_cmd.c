/*
 * fuzz_pop3_cmd.c - libFuzzer harness: a POP3 command line through
 * pop3_cmd_split, pop3_cmd_words and pop3_cmd_msgnum, and the same bytes
 * as a message file through the RETR/TOP encoder and the sizer, checking
 * the invariants the session relies on: results inside the input, message
 * numbers within bounds, encoded output CRLF-only with every line that
 * starts with '.' stuffed, LIST size == RETR octets, and the same
 * RETR octets from the one-step-per-line path as from the general loop.
 */
#include <assert.h>
#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/pop3_cmd.h"
#include "proto/pop3_msg.h"

static void check_cmd(const char *line, size_t size)
{
	struct pop3_cmd c;
	struct pop3_word w[POP3_ARGS_MAX];
	size_t n, num;
	uint64_t v;

	if (pop3_cmd_split(line, size, &c) != POP3_CMD_OK)
		return;
	assert(strlen(c.keyword) >= 1 && strlen(c.keyword) <= POP3_KEYWORD_MAX);
	for (const char *k = c.keyword; *k; k++)
		assert(isupper((unsigned char)*k));
	assert(c.args >= line && c.args + c.args_len == line + size);
	if (pop3_cmd_words(c.args, c.args_len, w, 3, &n) != POP3_CMD_OK)
		return;
	assert(n <= 3);
	for (size_t i = 0; i < n; i++) {
		assert(w[i].p >= c.args && w[i].p + w[i].len <= c.args + c.args_len);
		assert(w[i].len > 0 && memchr(w[i].p, ' ', w[i].len) == NULL);
		if (pop3_cmd_msgnum(w[i].p, w[i].len, 1000, &num) == POP3_CMD_OK)
			assert(num >= 1 && num <= 1000);
		if (pop3_cmd_number(w[i].p, w[i].len, 5, &v) == POP3_CMD_OK)
			assert(v <= 5);
	}
}

/* Encode in chunks of step octets, with room for any output or (tight)
 * 3 octets a call (RETR then takes the general loop, not its
 * one-step-per-line path); returns the octets written to out. */
static size_t encode(const char *in, size_t size, bool all, uint64_t lines, size_t step, bool tight, char *out)
{
	struct pop3_msg_enc e;
	size_t o = 0, i = 0;

	pop3_msg_enc_init(&e, all, lines);
	while (i < size) {
		size_t take = size - i < step ? size - i : step, olen;
		size_t used = pop3_msg_enc_feed(&e, in + i, take, out + o, tight ? 3 : 2 * take + 3, &olen);
		assert(used > 0 && used <= take);
		assert(olen <= (tight ? 3 : 2 * take));
		if (!tight)
			assert(used == take);
		i += used;
		o += olen;
	}
	return o + pop3_msg_enc_finish(&e, out + o);
}

/* Encode in uneven chunks and check the output; RETR's two paths give
 * the same octets. */
static void check_msg(const char *in, size_t size, bool all, uint64_t lines)
{
	struct pop3_msg_size z;
	char *out = malloc(2 * size + 8), *ref = malloc(2 * size + 8);
	size_t o, stuffed = 0, step = size % 7 + 1;

	o = encode(in, size, all, lines, step, false, out);
	pop3_msg_size_init(&z);
	for (size_t i = 0; i < size; i += step)
		pop3_msg_size_feed(&z, in + i, size - i < step ? size - i : step);
	assert(o >= 3 && memcmp(out + o - 3, ".\r\n", 3) == 0);
	for (size_t k = 0; k < o; k++) {
		if (out[k] == '\n')
			assert(k > 0 && out[k - 1] == '\r');
		if ((k == 0 || out[k - 1] == '\n') && out[k] == '.' && k + 3 < o) {
			assert(out[k + 1] == '.');
			stuffed++;
			k++;
		}
	}
	if (all)
		assert(pop3_msg_size_finish(&z) == o - 3 - stuffed);
	if (all) {
		assert(encode(in, size, all, lines, size ? size : 1, false, ref) == o && memcmp(ref, out, o) == 0);
		assert(encode(in, size, all, lines, step, true, ref) == o && memcmp(ref, out, o) == 0);
	}
	free(ref);
	free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *line = (const char *)data;
	check_cmd(line, size);
	check_msg(line, size, true, 0);
	check_msg(line, size, false, size % 5);
	return 0;
}
