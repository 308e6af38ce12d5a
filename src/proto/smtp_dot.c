/*
 * smtp_dot.c - LF -> CRLF and dot-stuffing for outgoing DATA
 * (RFC 5321 §4.5.2, §4.1.1.4), line ends only for BDAT (RFC 3030).
 * See smtp_dot.h.
 */
#include "proto/smtp_dot.h"

void smtp_dot_init(struct smtp_dot *d)
{
	d->chunks = false;
	d->bol = true;
	d->cr = false;
	d->any = false;
}

void smtp_dot_init_chunks(struct smtp_dot *d)
{
	smtp_dot_init(d);
	d->chunks = true;
}

size_t smtp_dot_encode(struct smtp_dot *d, const char *in, size_t len, char *out)
{
	size_t o = 0;

	for (size_t i = 0; i < len; i++) {
		char c = in[i];

		d->any = true;
		if (d->cr) {
			/* A held CR: the line end if LF follows, else a byte. */
			d->cr = false;
			if (c == '\n') {
				out[o++] = '\r';
				out[o++] = '\n';
				d->bol = true;
				continue;
			}
			out[o++] = '\r';
			d->bol = false;
		}
		if (c == '\r') {
			d->cr = true;
			continue;
		}
		if (c == '\n') {
			out[o++] = '\r';
			out[o++] = '\n';
			d->bol = true;
			continue;
		}
		if (d->bol && c == '.' && !d->chunks)
			out[o++] = '.';
		out[o++] = c;
		d->bol = false;
	}
	return o;
}

size_t smtp_dot_finish(struct smtp_dot *d, char *out)
{
	size_t o = 0;

	if (d->cr) {
		out[o++] = '\r';
		d->cr = false;
		d->bol = false;
	}
	if (!d->bol) {
		out[o++] = '\r';
		out[o++] = '\n';
	}
	d->bol = true;
	if (d->chunks)
		return o;
	out[o++] = '.';
	out[o++] = '\r';
	out[o++] = '\n';
	d->bol = true;
	return o;
}
