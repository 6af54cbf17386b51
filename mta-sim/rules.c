#include "rules.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char *const rules_when_names[RULES__COUNT] = {
	[RULES_CONNECT] = "connect",
	[RULES_HELO] = "helo",
	[RULES_EHLO] = "ehlo",
	[RULES_MAIL] = "mail",
	[RULES_RCPT] = "rcpt",
	[RULES_DATA] = "data",
	[RULES_BODY] = "body",
	[RULES_DOT] = "dot",
	[RULES_RSET] = "rset",
	[RULES_QUIT] = "quit",
	[RULES_STARTTLS] = "starttls",
};

#define RULES_DELAY_MAX	3600.0

const char *
rules_when_name(enum rules_when w)
{
	if ((unsigned)w >= RULES__COUNT)
		return "?";
	return rules_when_names[w];
}

const char *
rules_kind_name(enum rules_kind k)
{
	switch (k) {
	case RULES_REPLY:
		return "reply";
	case RULES_DELAY:
		return "delay";
	case RULES_DROP:
		return "drop";
	case RULES_HANG:
		return "hang";
	case RULES_RAW:
		return "raw";
	}
	return "?";
}

/* Does s start with a valid ACTION? Used to find the '=' that splits. */
static int
rules_is_action(const char *s)
{
	return strncmp(s, "reply:", 6) == 0 || strncmp(s, "delay:", 6) == 0 ||
	    strcmp(s, "drop") == 0 || strcmp(s, "hang") == 0 ||
	    strncmp(s, "raw:", 4) == 0 || strncmp(s, "raw-repeat:", 11) == 0;
}

static int
rules_parse_when(struct rules_rule *r, const char *s, size_t len,
    const char **err)
{
	char when[SMTP_ADDR_MAX + 32];
	char *hash, *colon, *end;
	size_t i;

	if (len == 0 || len >= sizeof(when)) {
		*err = "bad WHEN";
		return -1;
	}
	memcpy(when, s, len);
	when[len] = '\0';

	/* "#N" only when everything after the last '#' is digits: '#' is legal in a local part. */
	if ((hash = strrchr(when, '#')) != NULL && hash[1] != '\0' &&
	    strspn(hash + 1, "0123456789") == strlen(hash + 1)) {
		errno = 0;
		r->nth = strtoul(hash + 1, &end, 10);
		if (errno != 0 || *end != '\0' || r->nth == 0) {
			*err = "bad #N occurrence (must be >= 1)";
			return -1;
		}
		*hash = '\0';
	}

	if ((colon = strchr(when, ':')) != NULL) {
		*colon++ = '\0';
		if (strcasecmp(when, "rcpt") != 0) {
			*err = "only rcpt takes an address (rcpt:ADDR)";
			return -1;
		}
		if (*colon == '<') {
			size_t al = strlen(colon);

			if (al < 2 || colon[al - 1] != '>') {
				*err = "unbalanced <> in rcpt:ADDR";
				return -1;
			}
			colon[al - 1] = '\0';
			colon++;
		}
		if (*colon == '\0' || strlen(colon) > SMTP_ADDR_MAX) {
			*err = "bad address in rcpt:ADDR";
			return -1;
		}
		memcpy(r->addr, colon, strlen(colon) + 1);
	}

	for (i = 0; i < RULES__COUNT; i++)
		if (strcasecmp(when, rules_when_names[i]) == 0) {
			r->when = (enum rules_when)i;
			return 0;
		}
	*err = "unknown WHEN (connect helo ehlo mail rcpt rcpt:ADDR data body "
	    "dot rset quit starttls)";
	return -1;
}

static int	rules_parse_raw(const char *, unsigned long, struct rules_action *,
		    const char **);

static int
rules_parse_action(struct rules_action *a, const char *s, const char **err)
{
	char *end;

	if (strcmp(s, "drop") == 0) {
		a->kind = RULES_DROP;
		return 0;
	}
	if (strcmp(s, "hang") == 0) {
		a->kind = RULES_HANG;
		return 0;
	}
	if (strncmp(s, "delay:", 6) == 0) {
		a->kind = RULES_DELAY;
		errno = 0;
		a->delay = strtod(s + 6, &end);
		if (errno != 0 || end == s + 6 || *end != '\0' ||
		    !isfinite(a->delay) || a->delay < 0 ||
		    a->delay > RULES_DELAY_MAX) {
			*err = "bad delay (seconds, 0..3600, fractions allowed)";
			return -1;
		}
		return 0;
	}
	if (strncmp(s, "reply:", 6) == 0)
		return rules_parse_reply(s + 6, a, err);
	if (strncmp(s, "raw:", 4) == 0)
		return rules_parse_raw(s + 4, 1, a, err);
	if (strncmp(s, "raw-repeat:", 11) == 0) {
		unsigned long n;

		s += 11;
		if (*s < '0' || *s > '9') {
			*err = "raw-repeat needs N:BYTES";
			return -1;
		}
		errno = 0;
		n = strtoul(s, &end, 10);
		if (errno != 0 || *end != ':' || n == 0) {
			*err = "raw-repeat needs N:BYTES with N >= 1";
			return -1;
		}
		return rules_parse_raw(end + 1, n, a, err);
	}
	*err = "unknown ACTION (reply:CODE TEXT, delay:SECONDS, drop, hang, "
	    "raw:BYTES, raw-repeat:N:BYTES)";
	return -1;
}

static int
rules_hex(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

long
rules_unescape(const char *s, char *out, size_t max, const char **err)
{
	size_t n = 0;
	int hi, lo;
	char c;

	for (; *s != '\0'; s++) {
		c = *s;
		if (c == '\\') {
			switch (*++s) {
			case 'r':  c = '\r'; break;
			case 'n':  c = '\n'; break;
			case 't':  c = '\t'; break;
			case '0':  c = '\0'; break;
			case '\\': c = '\\'; break;
			case 'x':
				if ((hi = rules_hex(s[1])) == -1 ||
				    (lo = rules_hex(s[2])) == -1) {
					*err = "\\x needs two hex digits";
					return -1;
				}
				c = (char)(hi * 16 + lo);
				s += 2;
				break;
			default:
				*err = "unknown escape (\\r \\n \\t \\0 \\\\ \\xNN)";
				return -1;
			}
		}
		if (n == max) {
			*err = "too many bytes";
			return -1;
		}
		out[n++] = c;
	}
	return (long)n;
}

/*
 * raw:BYTES: written as they are, so a test can play a next hop that
 * breaks the protocol. code stays 0: a raw reply never counts as success.
 */
static int
rules_parse_raw(const char *s, unsigned long repeat, struct rules_action *a,
    const char **err)
{
	long n;

	a->kind = RULES_RAW;
	a->code = 0;
	if ((n = rules_unescape(s, a->raw, sizeof(a->raw), err)) == -1)
		return -1;
	if (n == 0) {
		*err = "raw needs at least one byte";
		return -1;
	}
	if (repeat > RULES_RAW_TOTAL / (unsigned long)n) {
		*err = "raw-repeat: N * BYTES is over 16 MiB";
		return -1;
	}
	a->rawlen = (size_t)n;
	a->repeat = repeat;
	return 0;
}

int
rules_parse_reply(const char *s, struct rules_action *a, const char **err)
{
	size_t i, tl;

	a->kind = RULES_REPLY;
	if (!isdigit((unsigned char)s[0]) || !isdigit((unsigned char)s[1]) ||
	    !isdigit((unsigned char)s[2]) || (s[3] != '\0' && s[3] != ' ')) {
		*err = "reply needs a 3-digit code: CODE TEXT";
		return -1;
	}
	a->code = (s[0] - '0') * 100 + (s[1] - '0') * 10 + (s[2] - '0');
	if (a->code < 200 || a->code > 599) {
		*err = "reply code must be 200..599";
		return -1;
	}
	s += 3;
	if (*s == ' ')
		s++;
	tl = strlen(s);
	if (tl >= sizeof(a->text)) {
		*err = "reply text too long";
		return -1;
	}
	/* The text goes on the wire verbatim: it must not carry CR/LF. */
	for (i = 0; i < tl; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) {
			*err = "control character in reply text";
			return -1;
		}
	memcpy(a->text, s, tl + 1);
	return 0;
}

int
rules_add(struct rules *rs, const char *spec, const char **err)
{
	struct rules_rule r, *v;
	const char *eq;

	memset(&r, 0, sizeof(r));
	/* The first '=' that is followed by an action: addresses may hold '='. */
	for (eq = strchr(spec, '='); eq != NULL; eq = strchr(eq + 1, '='))
		if (rules_is_action(eq + 1))
			break;
	if (eq == NULL) {
		*err = "expected WHEN=ACTION";
		return -1;
	}
	if (rules_parse_when(&r, spec, (size_t)(eq - spec), err) == -1 ||
	    rules_parse_action(&r.action, eq + 1, err) == -1)
		return -1;
	if (snprintf(r.spec, sizeof(r.spec), "%s", spec) >= (int)sizeof(r.spec))
		memcpy(r.spec + sizeof(r.spec) - 4, "...", 4);

	if ((v = reallocarray(rs->v, rs->n + 1, sizeof(*v))) == NULL) {
		*err = "out of memory";
		return -1;
	}
	v[rs->n++] = r;
	rs->v = v;
	return 0;
}

void
rules_free(struct rules *rs)
{
	free(rs->v);
	rs->v = NULL;
	rs->n = 0;
}

const struct rules_rule *
rules_match(struct rules *rs, enum rules_when when, const char *addr)
{
	const struct rules_rule *hit = NULL;
	size_t i;

	for (i = 0; i < rs->n; i++) {
		struct rules_rule *r = &rs->v[i];

		if (r->when != when)
			continue;
		if (r->addr[0] != '\0' &&
		    (addr == NULL || strcasecmp(r->addr, addr) != 0))
			continue;
		r->seen++;
		if (hit == NULL && (r->nth == 0 || r->nth == r->seen))
			hit = r;
	}
	return hit;
}
