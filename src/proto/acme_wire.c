/*
 * acme_wire.c - base64url and Retry-After (see acme_wire.h).
 */
#include "proto/acme_wire.h"
#include "proto/base64.h"
#include "core/util.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

char *b64url_encode_alloc(const void *in, size_t len)
{
	char *s = base64_encode_alloc(in, len);
	size_t n = strlen(s);
	while (n && s[n - 1] == '=')
		s[--n] = '\0';
	for (char *p = s; *p; p++) {
		if (*p == '+')
			*p = '-';
		else if (*p == '/')
			*p = '_';
	}
	return s;
}

static bool digits(const char *p, size_t n, unsigned *v)
{
	*v = 0;
	for (size_t i = 0; i < n; i++) {
		if (p[i] < '0' || p[i] > '9')
			return false;
		*v = *v * 10 + (unsigned)(p[i] - '0');
	}
	return true;
}

/* IMF-fixdate of RFC 9110 5.6.7, exactly 29 characters. */
static bool imf_fixdate(const char *v, size_t len, int64_t *t)
{
	static const char *const days[] = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" };
	static const char months[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
	unsigned day, year, hh, mm, ss;
	int mon = -1;
	bool wd = false;
	struct tm tm = { 0 };

	if (len != 29 || v[3] != ',' || v[4] != ' ' || v[7] != ' ' || v[11] != ' ' || v[16] != ' ' ||
	    v[19] != ':' || v[22] != ':' || memcmp(v + 25, " GMT", 4) != 0)
		return false;
	for (size_t i = 0; i < 7; i++)
		wd = wd || memcmp(v, days[i], 3) == 0;
	for (int i = 0; i < 12; i++)
		if (memcmp(v + 8, months + 3 * i, 3) == 0)
			mon = i;
	if (!wd || mon < 0 || !digits(v + 5, 2, &day) || !digits(v + 12, 4, &year) || !digits(v + 17, 2, &hh) ||
	    !digits(v + 20, 2, &mm) || !digits(v + 23, 2, &ss))
		return false;
	if (day < 1 || day > 31 || hh > 23 || mm > 59 || ss > 60 || year < 1970)
		return false;
	tm.tm_year = (int)year - 1900;
	tm.tm_mon = mon;
	tm.tm_mday = (int)day;
	tm.tm_hour = (int)hh;
	tm.tm_min = (int)mm;
	tm.tm_sec = (int)ss;
	*t = (int64_t)timegm(&tm);
	return true;
}

bool acme_retry_after(const char *v, size_t len, int64_t now, uint64_t max, uint64_t *secs)
{
	int64_t t;

	while (len && (v[0] == ' ' || v[0] == '\t')) {
		v++;
		len--;
	}
	while (len && (v[len - 1] == ' ' || v[len - 1] == '\t'))
		len--;
	if (len && v[0] >= '0' && v[0] <= '9') {
		uint64_t n = 0;
		for (size_t i = 0; i < len; i++) {
			if (v[i] < '0' || v[i] > '9')
				return false;
			if (n > max)
				continue;   /* already past the cap: no overflow */
			n = n * 10 + (uint64_t)(v[i] - '0');
		}
		*secs = n > max ? max : n;
		return true;
	}
	if (!imf_fixdate(v, len, &t))
		return false;
	*secs = t <= now ? 0 : (uint64_t)(t - now) > max ? max : (uint64_t)(t - now);
	return true;
}
