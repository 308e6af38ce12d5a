/*
 * autodiscover.h - a pure reader of the one field tern needs from a
 * Microsoft Autodiscover (POX) request: the EMailAddress element of
 * <Autodiscover><Request>.  Not an XML parser: it finds the element by its
 * local name (any namespace prefix), skips comments, decodes the five
 * predefined entities and decimal/hex character references to ASCII.
 */
#ifndef TERN_AUTODISCOVER_H
#define TERN_AUTODISCOVER_H

#include <stdbool.h>
#include <stddef.h>

/* The address, trimmed and NUL-terminated in out.  False when there is no
 * such element, it is empty or longer than cap - 1, has no "@" or more
 * than one, or holds a control character, space, "<" or a non-ASCII byte. */
bool autodiscover_email(const char *xml, size_t len, char *out, size_t cap);

#endif
