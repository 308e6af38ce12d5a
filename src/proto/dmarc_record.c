/*
 * dmarc_record.c - RFC 7489 6.3 (tags) and 6.6.3 (what makes a record
 * unusable) on top of DKIM's tag-list parser.
 */
#include "proto/dmarc_record.h"

#include "core/util.h"
#include "proto/dkim_tags.h"

#include <string.h>

static bool is_ws(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

bool dmarc_is_record(const char *txt, size_t len)
{
	size_t i = 0;

	if (len < 8 || memcmp(txt, "v", 1) != 0)
		return false;
	i = 1;
	while (i < len && is_ws(txt[i]))
		i++;
	if (i == len || txt[i++] != '=')
		return false;
	while (i < len && is_ws(txt[i]))
		i++;
	if (len - i < 6 || memcmp(txt + i, "DMARC1", 6) != 0)
		return false;
	i += 6;
	while (i < len && is_ws(txt[i]))
		i++;
	return i == len || txt[i] == ';';
}

const char *dmarc_policy_name(enum dmarc_policy p)
{
	return p == DMARC_P_REJECT ? "reject" : p == DMARC_P_QUARANTINE ? "quarantine" : "none";
}

static bool policy_of(struct dkim_span v, enum dmarc_policy *p)
{
	if (dkim_span_ieq(v, "none", 4))
		*p = DMARC_P_NONE;
	else if (dkim_span_ieq(v, "quarantine", 10))
		*p = DMARC_P_QUARANTINE;
	else if (dkim_span_ieq(v, "reject", 6))
		*p = DMARC_P_REJECT;
	else
		return false;
	return true;
}

bool dmarc_record_parse(const char *txt, size_t len, struct dmarc_record *rec, const char **reason)
{
	struct dkim_taglist tl;
	const struct dkim_tag *t;
	bool p_ok;
	uint64_t pct;

	memset(rec, 0, sizeof *rec);
	rec->pct = 100;
	if (!dmarc_is_record(txt, len))
		return *reason = "not a DMARC record", false;
	if (dkim_tags_parse(txt, len, &tl) != DKIM_TAGS_OK)
		return *reason = "bad tag list", false;
	/* "rua" valid enough: a mailto: URI is there */
	rec->has_rua = (t = dkim_tags_get(&tl, "rua")) && t->value.len > 7 && ascii_ieq(t->value.p, "mailto:", 7);
	p_ok = (t = dkim_tags_get(&tl, "p")) && policy_of(t->value, &rec->p);
	if (!p_ok) {
		if (!rec->has_rua)
			return *reason = "no valid p=", false;
		rec->p = DMARC_P_NONE;
	}
	rec->sp = rec->p;
	if ((t = dkim_tags_get(&tl, "sp")) && !policy_of(t->value, &rec->sp)) {
		if (!rec->has_rua)
			return *reason = "bad sp=", false;
		rec->p = rec->sp = DMARC_P_NONE;
	}
	if ((t = dkim_tags_get(&tl, "adkim")))
		rec->adkim_strict = dkim_span_ieq(t->value, "s", 1);
	if ((t = dkim_tags_get(&tl, "aspf")))
		rec->aspf_strict = dkim_span_ieq(t->value, "s", 1);
	if ((t = dkim_tags_get(&tl, "pct")) && t->value.len && parse_u64(t->value.p, t->value.len, 0, 100, &pct))
		rec->pct = (unsigned)pct;
	return true;
}
