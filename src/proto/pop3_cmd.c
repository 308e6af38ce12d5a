/*
 * pop3_cmd.c - POP3 command-line parsing (see pop3_cmd.h).
 * RFC 1939 section 3 (keywords, arguments), RFC 2449 section 4 (lengths).
 */
#include "proto/pop3_cmd.h"
#include "core/util.h"

#include <ctype.h>
#include <string.h>

static bool pop3_bad_char(unsigned char c)
{
	return c < 0x20 || c == 0x7f;
}

enum pop3_cmd_err pop3_cmd_split(const char *line, size_t len, struct pop3_cmd *cmd)
{
	size_t i = 0, k;

	memset(cmd, 0, sizeof(*cmd));
	cmd->args = line + len;
	for (size_t j = 0; j < len; j++)
		if (pop3_bad_char((unsigned char)line[j]) && line[j] != '\t')
			return POP3_CMD_BAD_CHAR;
	while (i < len && line[i] == ' ')
		i++;
	if (i == len)
		return POP3_CMD_EMPTY;
	for (k = 0; i + k < len && line[i + k] != ' '; k++) {
		unsigned char c = (unsigned char)line[i + k];
		if (k >= POP3_KEYWORD_MAX || !isalpha(c))
			return POP3_CMD_BAD_KEYWORD;
		cmd->keyword[k] = (char)toupper(c);
	}
	cmd->keyword[k] = '\0';
	i += k;
	if (i < len)
		i++;   /* the one space after the keyword */
	cmd->args = line + i;
	cmd->args_len = len - i;
	return POP3_CMD_OK;
}

enum pop3_cmd_err pop3_cmd_words(const char *args, size_t len, struct pop3_word *w, size_t max,
				 size_t *n)
{
	size_t i = 0;

	*n = 0;
	if (max > POP3_ARGS_MAX)
		max = POP3_ARGS_MAX;
	for (;;) {
		while (i < len && args[i] == ' ')
			i++;
		if (i == len)
			return POP3_CMD_OK;
		if (*n == max)
			return POP3_CMD_TOO_MANY_ARGS;
		w[*n].p = args + i;
		while (i < len && args[i] != ' ')
			i++;
		w[*n].len = (size_t)(args + i - w[*n].p);
		(*n)++;
	}
}

enum pop3_cmd_err pop3_cmd_number(const char *s, size_t len, uint64_t max, uint64_t *out)
{
	uint64_t v = 0;

	if (len == 0)
		return POP3_CMD_BAD_NUMBER;
	for (size_t i = 0; i < len; i++) {
		unsigned d;
		if (!isdigit((unsigned char)s[i]))
			return POP3_CMD_BAD_NUMBER;
		d = (unsigned)(s[i] - '0');
		if (v > max / 10 || (v == max / 10 && d > max % 10))
			return POP3_CMD_NO_SUCH_MSG;   /* past the bound: "too big" */
		v = v * 10 + d;
	}
	*out = v;
	return POP3_CMD_OK;
}

enum pop3_cmd_err pop3_cmd_msgnum(const char *s, size_t len, size_t count, size_t *out)
{
	uint64_t v;
	enum pop3_cmd_err e = pop3_cmd_number(s, len, (uint64_t)count, &v);

	if (e != POP3_CMD_OK)
		return e;
	if (v == 0)
		return POP3_CMD_NO_SUCH_MSG;
	*out = (size_t)v;
	return POP3_CMD_OK;
}

const char *pop3_cmd_strerror(enum pop3_cmd_err e)
{
	switch (e) {
	case POP3_CMD_OK: return "ok";
	case POP3_CMD_EMPTY: return "Empty command";
	case POP3_CMD_BAD_KEYWORD: return "Unknown command";
	case POP3_CMD_BAD_CHAR: return "Control characters in the command line";
	case POP3_CMD_TOO_MANY_ARGS: return "Too many arguments";
	case POP3_CMD_BAD_NUMBER: return "Invalid message number";
	case POP3_CMD_NO_SUCH_MSG: return "No such message";
	}
	return "?";
}
