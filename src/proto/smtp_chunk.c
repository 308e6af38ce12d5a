/*
 * smtp_chunk.c - BDAT chunk octets to stored message octets (see
 * smtp_chunk.h).  RFC 3030 §2 (chunks), §3 (BINARYMIME); RFC 5321
 * 2.3.8 (CRLF only), 4.5.3.1.6 (line length).
 */
#include "proto/smtp_chunk.h"
#include "proto/smtp_data.h"

#include <string.h>

void smtp_chunk_init(struct smtp_chunk *c, bool binary, size_t max_line)
{
	memset(c, 0, sizeof(*c));
	c->binary = binary;
	c->max_line = max_line;
}

/* A line ended (CRLF): an empty one ends a binary message's header. */
static void chunk_line_end(struct smtp_chunk *c)
{
	if (c->binary && c->line_len == 0)
		c->in_body = true;
	c->line_len = 0;
}

size_t smtp_chunk_decode(struct smtp_chunk *c, const char *in, size_t len, char *out)
{
	size_t o = 0, i = 0;

	while (i < len) {
		if (c->in_body) {
			memcpy(out + o, in + i, len - i);
			return o + len - i;
		}
		char ch = in[i++];
		if (c->cr) {
			c->cr = false;
			if (ch == '\n') {
				out[o++] = '\n';
				chunk_line_end(c);
				continue;
			}
			c->errors |= SMTP_DATA_ERR_BARE_CR;
		}
		if (ch == '\r') {
			c->cr = true;
			continue;
		}
		if (ch == '\n') {
			c->errors |= SMTP_DATA_ERR_BARE_LF;
			continue;
		}
		if (ch == '\0')
			c->errors |= SMTP_DATA_ERR_NUL;
		if (++c->line_len + 2 > c->max_line && c->max_line)
			c->errors |= SMTP_DATA_ERR_LINE_LEN;
		out[o++] = ch;
	}
	return o;
}

void smtp_chunk_finish(struct smtp_chunk *c)
{
	if (c->cr)
		c->errors |= SMTP_DATA_ERR_BARE_CR;
	c->cr = false;
}
