/*
 * maildir_keywords.c - see maildir_keywords.h.
 */
#include "proto/maildir_keywords.h"

#include <string.h>

bool maildir_kw_line_parse(const char *line, size_t len, unsigned *slot, const char **name, size_t *name_len)
{
	const char *sp = memchr(line, ' ', len);
	size_t digits = sp ? (size_t)(sp - line) : 0;
	unsigned n = 0;

	if (sp == NULL || digits == 0 || digits > 2 || digits + 1 == len)
		return false;
	for (size_t i = 0; i < digits; i++) {
		if (line[i] < '0' || line[i] > '9')
			return false;
		n = n * 10 + (unsigned)(line[i] - '0');
	}
	if (n >= MAILDIR_KW_SLOTS || len - digits - 1 > MAILDIR_KW_NAME_MAX)
		return false;
	for (size_t i = digits + 1; i < len; i++)
		if (line[i] == '\r' || line[i] == '\n' || line[i] == '\0')
			return false;
	*slot = n;
	*name = sp + 1;
	*name_len = len - digits - 1;
	return true;
}

uint32_t maildir_kw_letters(const char *name)
{
	const char *info = strstr(name, ":2,");
	uint32_t v = 0;

	if (info == NULL)
		return 0;
	for (const char *p = info + 3; *p; p++)
		if (*p >= 'a' && *p <= 'z')
			v |= 1u << (*p - 'a');
	return v;
}
