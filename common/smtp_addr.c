/*
 * smtp_addr: paths and ESMTP parameters of MAIL and RCPT.
 *
 * Paths follow RFC 5321 §4.1.2 strictly (no SMTPUTF8: 8-bit bytes are
 * refused). The path length is decided before the path is parsed. The
 * parameters mailprevent knows live in a table; anything else is refused
 * with 555, a repeated parameter with 501, so the proxy never forwards a
 * parameter it has not understood.
 */
#include "smtp_addr.h"

#include <arpa/inet.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

enum addr_kind { ADDR_MAIL, ADDR_RCPT };

#define ADDR_LABEL_MAX	63
#define ADDR_DOMAIN_MAX	255

static const char addr_err_sender[] = "5.1.7 Bad sender address syntax";
static const char addr_err_sender_long[] = "5.1.7 Sender address too long";
static const char addr_err_rcpt[] = "5.1.3 Bad recipient address syntax";
static const char addr_err_rcpt_long[] = "5.1.3 Recipient address too long";
static const char addr_err_syntax[] = "5.5.4 Syntax error in parameters";
static const char addr_err_dup[] = "5.5.4 Duplicate parameter";
static const char addr_err_unknown[] = "5.5.4 Unsupported parameter";

static int
addr_alnum(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9');
}

static int
addr_atext(unsigned char c)
{
	return addr_alnum(c) || (c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", c));
}

static int
addr_uphex(unsigned char c)
{
	return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'F');
}

/* One sub-domain: Let-dig [Ldh-str], at most 63 octets. */
static int
addr_label_valid(const char *p, size_t n)
{
	size_t i;

	if (n == 0 || n > ADDR_LABEL_MAX)
		return 0;
	if (!addr_alnum(p[0]) || !addr_alnum(p[n - 1]))
		return 0;
	for (i = 1; i + 1 < n; i++)
		if (!addr_alnum(p[i]) && p[i] != '-')
			return 0;
	return 1;
}

/* "[1.2.3.4]" or "[IPv6:...]"; general literals have no registered tag. */
static int
addr_literal_valid(const char *p, size_t n)
{
	char tmp[INET6_ADDRSTRLEN + 8];
	unsigned char bin[sizeof(struct in6_addr)];
	int af = AF_INET;

	if (n < 2 || p[0] != '[' || p[n - 1] != ']')
		return 0;
	p++;
	n -= 2;
	if (n >= 5 && strncasecmp(p, "IPv6:", 5) == 0) {
		af = AF_INET6;
		p += 5;
		n -= 5;
	}
	if (n == 0 || n >= sizeof(tmp) || memchr(p, '\0', n) != NULL)
		return 0;
	memcpy(tmp, p, n);
	tmp[n] = '\0';
	return inet_pton(af, tmp, bin) == 1;
}

static int
addr_domain_valid(const char *p, size_t n)
{
	const char *dot;

	if (n == 0 || n > ADDR_DOMAIN_MAX)
		return 0;
	if (p[0] == '[')
		return addr_literal_valid(p, n);
	for (;;) {
		dot = memchr(p, '.', n);
		if (dot == NULL)
			return addr_label_valid(p, n);
		if (!addr_label_valid(p, (size_t)(dot - p)))
			return 0;
		n -= (size_t)(dot - p) + 1;
		p = dot + 1;
	}
}

/*
 * Local-part: a Dot-string or a Quoted-string. Returns its length, or 0
 * if it is invalid.
 */
static size_t
addr_local_len(const char *p, size_t n)
{
	size_t i = 0, start;
	unsigned char c;

	if (n > 0 && p[0] == '"') {
		for (i = 1; i < n; i++) {
			c = (unsigned char)p[i];
			if (c == '"')
				return i + 1;
			if (c == '\\') {
				if (++i == n)
					return 0;
				c = (unsigned char)p[i];
			}
			if (c < 0x20 || c > 0x7e)
				return 0;
		}
		return 0;	/* no closing quote */
	}
	for (;;) {
		start = i;
		while (i < n && addr_atext((unsigned char)p[i]))
			i++;
		if (i == start)
			return 0;	/* empty atom: leading, trailing or ".." */
		if (i == n || p[i] != '.')
			return i;
		i++;
	}
}

static int
addr_is_postmaster(const char *p, size_t n)
{
	return n == 10 && strncasecmp(p, "postmaster", 10) == 0;
}

/*
 * Mailbox = Local-part "@" ( Domain / address-literal ). With postmaster,
 * the bare local part "postmaster" passes too (RFC 5321 §4.1.1.3).
 */
static int
addr_mailbox_valid(const char *p, size_t n, int postmaster)
{
	size_t l;

	if ((l = addr_local_len(p, n)) == 0)
		return 0;
	if (l == n)
		return postmaster && addr_is_postmaster(p, n);
	if (p[l] != '@')
		return 0;
	return addr_domain_valid(p + l + 1, n - l - 1);
}

/*
 * Length of the path "<...>" at the start of s, without parsing it: the
 * first '>' outside a quoted string. 0 when there is none.
 */
static size_t
addr_path_len(const char *s, size_t len)
{
	size_t i;
	int quoted = 0;

	if (len == 0 || s[0] != '<')
		return 0;
	for (i = 1; i < len; i++) {
		if (quoted) {
			if (s[i] == '\\')
				i++;
			else if (s[i] == '"')
				quoted = 0;
		} else if (s[i] == '"')
			quoted = 1;
		else if (s[i] == '>')
			return i + 1;
	}
	return 0;
}

/* Skip "@dom,@dom:" when present; returns the octets used, or -1. */
static long
addr_route_len(const char *p, size_t n)
{
	size_t i = 0, start;
	const char *end;

	if (n == 0 || p[0] != '@')
		return 0;
	for (;;) {
		if (i >= n || p[i] != '@')
			return -1;
		start = ++i;
		if (i < n && p[i] == '[') {
			/* a literal may hold ':' itself */
			if ((end = memchr(p + i, ']', n - i)) == NULL)
				return -1;
			i = (size_t)(end - p) + 1;
		} else
			while (i < n && p[i] != ',' && p[i] != ':')
				i++;
		if (i >= n || (p[i] != ',' && p[i] != ':') ||
		    !addr_domain_valid(p + start, i - start))
			return -1;
		if (p[i++] == ':')
			return (long)i;
	}
}

/*
 * Parse "<path>" at the start of arg into addr. Returns the path's length
 * in arg, or -1 with code and err set.
 */
static long
addr_parse_path(const char *arg, size_t len, enum addr_kind kind, char *addr,
    int *code, const char **err)
{
	const char *bad = kind == ADDR_MAIL ? addr_err_sender : addr_err_rcpt;
	const char *p;
	size_t plen, n;
	long route;

	*code = 501;
	plen = addr_path_len(arg, len);
	if (plen > SMTP_PATH_MAX ||
	    (plen == 0 && len > SMTP_PATH_MAX && arg[0] == '<')) {
		*err = kind == ADDR_MAIL ? addr_err_sender_long :
		    addr_err_rcpt_long;
		return -1;
	}
	*err = bad;
	if (plen == 0)
		return -1;
	p = arg + 1;
	n = plen - 2;
	if (n == 0) {
		if (kind == ADDR_RCPT)
			return -1;
		addr[0] = '\0';
		return (long)plen;
	}
	if ((route = addr_route_len(p, n)) == -1)
		return -1;
	p += route;
	n -= (size_t)route;
	if (!addr_mailbox_valid(p, n, kind == ADDR_RCPT))
		return -1;
	/* n <= SMTP_PATH_MAX - 2 == SMTP_ADDR_MAX */
	memcpy(addr, p, n);
	addr[n] = '\0';
	return (long)plen;
}

/* RFC 3461 §4: xchar is '!'..'~' except '+' and '='; hexchar "+XX". */
static int
addr_xtext_valid(const char *p, size_t n)
{
	size_t i;
	unsigned char c;

	for (i = 0; i < n; i++) {
		c = (unsigned char)p[i];
		if (c == '+') {
			if (i + 2 >= n || !addr_uphex((unsigned char)p[i + 1]) ||
			    !addr_uphex((unsigned char)p[i + 2]))
				return 0;
			i += 2;
		} else if (c < '!' || c > '~' || c == '=')
			return 0;
	}
	return 1;
}

static int
addr_word_is(const char *p, size_t n, const char *word)
{
	return strlen(word) == n && strncasecmp(p, word, n) == 0;
}

static int
addr_p_size(void *args, const char *v, size_t n)
{
	struct smtp_mail_args *m = args;
	uint64_t sz = 0;
	size_t i;

	if (n == 0 || n > 20)
		return -1;
	for (i = 0; i < n; i++) {
		unsigned d = (unsigned)(v[i] - '0');

		if (v[i] < '0' || v[i] > '9' || sz > (UINT64_MAX - d) / 10)
			return -1;
		sz = sz * 10 + d;
	}
	m->has_size = 1;
	m->size = sz;
	return 0;
}

static int
addr_p_body(void *args, const char *v, size_t n)
{
	struct smtp_mail_args *m = args;

	if (addr_word_is(v, n, "7BIT"))
		m->body = SMTP_BODY_7BIT;
	else if (addr_word_is(v, n, "8BITMIME"))
		m->body = SMTP_BODY_8BITMIME;
	else
		return -1;
	return 0;
}

static int
addr_p_ret(void *args, const char *v, size_t n)
{
	struct smtp_mail_args *m = args;

	if (addr_word_is(v, n, "FULL"))
		m->ret = SMTP_RET_FULL;
	else if (addr_word_is(v, n, "HDRS"))
		m->ret = SMTP_RET_HDRS;
	else
		return -1;
	return 0;
}

static int
addr_p_envid(void *args, const char *v, size_t n)
{
	struct smtp_mail_args *m = args;

	if (n == 0 || n > SMTP_ENVID_MAX || !addr_xtext_valid(v, n))
		return -1;
	memcpy(m->envid, v, n);
	m->envid[n] = '\0';
	return 0;
}

static unsigned
addr_notify_parse(const char *v, size_t n)
{
	static const struct {
		const char	*name;
		unsigned	 bit;
	} words[] = {
		{ "NEVER",	SMTP_NOTIFY_NEVER },
		{ "SUCCESS",	SMTP_NOTIFY_SUCCESS },
		{ "FAILURE",	SMTP_NOTIFY_FAILURE },
		{ "DELAY",	SMTP_NOTIFY_DELAY },
	};
	const char *comma;
	unsigned bits = 0, bit;
	size_t i, wl;

	for (;;) {
		comma = memchr(v, ',', n);
		wl = comma ? (size_t)(comma - v) : n;
		bit = 0;
		for (i = 0; i < sizeof(words) / sizeof(words[0]); i++)
			if (addr_word_is(v, wl, words[i].name))
				bit = words[i].bit;
		if (bit == 0)
			return 0;
		bits |= bit;
		if (comma == NULL)
			break;
		n -= wl + 1;
		v = comma + 1;
	}
	/* NEVER excludes the others (RFC 3461 §4.1) */
	if ((bits & SMTP_NOTIFY_NEVER) && bits != SMTP_NOTIFY_NEVER)
		return 0;
	return bits;
}

static int
addr_p_notify(void *args, const char *v, size_t n)
{
	struct smtp_rcpt_args *r = args;

	return (r->notify = addr_notify_parse(v, n)) == 0 ? -1 : 0;
}

/* addr-type ";" xtext; addr-type taken as letters, digits and '-'. */
static int
addr_orcpt_valid(const char *v, size_t n)
{
	const char *semi;
	size_t i, tl;

	if (n == 0 || n > SMTP_XTEXT_MAX ||
	    (semi = memchr(v, ';', n)) == NULL || semi == v)
		return 0;
	tl = (size_t)(semi - v);
	for (i = 0; i < tl; i++)
		if (!addr_alnum((unsigned char)v[i]) && v[i] != '-')
			return 0;
	return addr_xtext_valid(semi + 1, n - tl - 1);
}

static int
addr_p_orcpt(void *args, const char *v, size_t n)
{
	struct smtp_rcpt_args *r = args;

	if (!addr_orcpt_valid(v, n))
		return -1;
	memcpy(r->orcpt, v, n);
	r->orcpt[n] = '\0';
	return 0;
}

static const struct addr_param {
	const char	*name;
	enum addr_kind	 kind;
	int		(*parse)(void *, const char *, size_t);
	const char	*bad;		/* reply text for a bad value */
} addr_params[] = {
	{ "SIZE",	ADDR_MAIL, addr_p_size,	  "5.5.4 Invalid SIZE parameter" },
	{ "BODY",	ADDR_MAIL, addr_p_body,	  "5.5.4 Invalid BODY parameter" },
	{ "RET",	ADDR_MAIL, addr_p_ret,	  "5.5.4 Invalid RET parameter" },
	{ "ENVID",	ADDR_MAIL, addr_p_envid,  "5.5.4 Invalid ENVID parameter" },
	{ "NOTIFY",	ADDR_RCPT, addr_p_notify, "5.5.4 Invalid NOTIFY parameter" },
	{ "ORCPT",	ADDR_RCPT, addr_p_orcpt,  "5.5.4 Invalid ORCPT parameter" },
};

#define ADDR_NPARAMS	(sizeof(addr_params) / sizeof(addr_params[0]))

/* esmtp-param = esmtp-keyword ["=" esmtp-value] (RFC 5321 §4.1.2) */
static int
addr_parse_param(const char *tok, size_t n, enum addr_kind kind, void *args,
    unsigned *seen, int *code, const char **err)
{
	const char *eq, *v;
	size_t kl, vl, i;

	*code = 501;
	*err = addr_err_syntax;
	eq = memchr(tok, '=', n);
	kl = eq ? (size_t)(eq - tok) : n;
	if (kl == 0 || !addr_alnum((unsigned char)tok[0]))
		return -1;
	for (i = 1; i < kl; i++)
		if (!addr_alnum((unsigned char)tok[i]) && tok[i] != '-')
			return -1;
	v = eq ? eq + 1 : NULL;
	vl = eq ? n - kl - 1 : 0;
	for (i = 0; i < vl; i++)
		if (v[i] < '!' || v[i] > '~' || v[i] == '=')
			return -1;
	if (eq != NULL && vl == 0)
		return -1;

	for (i = 0; i < ADDR_NPARAMS; i++)
		if (addr_params[i].kind == kind &&
		    addr_word_is(tok, kl, addr_params[i].name))
			break;
	if (i == ADDR_NPARAMS) {
		*code = 555;
		*err = addr_err_unknown;
		return -1;
	}
	if (*seen & (1u << i)) {
		*err = addr_err_dup;
		return -1;
	}
	*seen |= 1u << i;
	if (v == NULL || addr_params[i].parse(args, v, vl) == -1) {
		*err = addr_params[i].bad;
		return -1;
	}
	return 0;
}

static int
addr_parse(const char *arg, size_t len, enum addr_kind kind, char *addr,
    void *args, int *code, const char **err)
{
	unsigned seen = 0;
	size_t i, start;
	long plen;

	while (len > 0 && arg[len - 1] == ' ')
		len--;
	if ((plen = addr_parse_path(arg, len, kind, addr, code, err)) == -1)
		return -1;
	i = (size_t)plen;
	if (i < len && arg[i] != ' ') {
		*code = 501;
		*err = kind == ADDR_MAIL ? addr_err_sender : addr_err_rcpt;
		return -1;
	}
	while (i < len) {
		while (i < len && arg[i] == ' ')
			i++;
		start = i;
		while (i < len && arg[i] != ' ')
			i++;
		if (i > start && addr_parse_param(arg + start, i - start, kind,
		    args, &seen, code, err) == -1)
			return -1;
	}
	return 0;
}

int
smtp_parse_mail(const char *arg, size_t len, struct smtp_mail_args *m,
    int *code, const char **err)
{
	memset(m, 0, sizeof(*m));
	return addr_parse(arg, len, ADDR_MAIL, m->addr, m, code, err);
}

int
smtp_parse_rcpt(const char *arg, size_t len, struct smtp_rcpt_args *r,
    int *code, const char **err)
{
	memset(r, 0, sizeof(*r));
	return addr_parse(arg, len, ADDR_RCPT, r->addr, r, code, err);
}

static int
addr_fmt(char *dst, size_t dstsz, size_t *off, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int
addr_fmt(char *dst, size_t dstsz, size_t *off, const char *fmt, ...)
{
	va_list ap;
	int r;

	if (*off >= dstsz)
		return -1;
	va_start(ap, fmt);
	r = vsnprintf(dst + *off, dstsz - *off, fmt, ap);
	va_end(ap);
	if (r < 0 || (size_t)r >= dstsz - *off)
		return -1;
	*off += (size_t)r;
	return 0;
}

/*
 * The formatters re-check what they emit: args may have been built or
 * changed by the proxy itself (policies), and nothing that could break
 * the command line may reach a next hop.
 */
static int
addr_emit_valid(const char *addr, enum addr_kind kind)
{
	size_t n = strnlen(addr, SMTP_ADDR_MAX + 1);

	if (n > SMTP_ADDR_MAX)
		return 0;
	if (n == 0)
		return kind == ADDR_MAIL;
	return addr_mailbox_valid(addr, n, kind == ADDR_RCPT);
}

int
smtp_format_mail(char *dst, size_t dstsz, const struct smtp_mail_args *m,
    unsigned ext, uint64_t size_override)
{
	size_t off = 0, el;

	el = strnlen(m->envid, sizeof(m->envid));
	if (!addr_emit_valid(m->addr, ADDR_MAIL) || el > SMTP_ENVID_MAX ||
	    !addr_xtext_valid(m->envid, el))
		return -1;
	if (addr_fmt(dst, dstsz, &off, "MAIL FROM:<%s>", m->addr) == -1)
		return -1;
	if ((ext & SMTP_EXT_SIZE) && (size_override || m->has_size) &&
	    addr_fmt(dst, dstsz, &off, " SIZE=%" PRIu64,
	    size_override ? size_override : m->size) == -1)
		return -1;
	if ((ext & SMTP_EXT_8BITMIME) && m->body != SMTP_BODY_NONE &&
	    addr_fmt(dst, dstsz, &off, " BODY=%s",
	    m->body == SMTP_BODY_8BITMIME ? "8BITMIME" : "7BIT") == -1)
		return -1;
	if ((ext & SMTP_EXT_DSN) && m->ret != SMTP_RET_NONE &&
	    addr_fmt(dst, dstsz, &off, " RET=%s",
	    m->ret == SMTP_RET_FULL ? "FULL" : "HDRS") == -1)
		return -1;
	if ((ext & SMTP_EXT_DSN) && el > 0 &&
	    addr_fmt(dst, dstsz, &off, " ENVID=%s", m->envid) == -1)
		return -1;
	if (addr_fmt(dst, dstsz, &off, "\r\n") == -1)
		return -1;
	return (int)off;
}

int
smtp_format_rcpt(char *dst, size_t dstsz, const struct smtp_rcpt_args *r,
    unsigned ext)
{
	static const struct {
		unsigned	 bit;
		const char	*name;
	} words[] = {
		{ SMTP_NOTIFY_NEVER,	"NEVER" },
		{ SMTP_NOTIFY_SUCCESS,	"SUCCESS" },
		{ SMTP_NOTIFY_FAILURE,	"FAILURE" },
		{ SMTP_NOTIFY_DELAY,	"DELAY" },
	};
	size_t off = 0, ol, i;
	unsigned nt = r->notify;
	const char *sep = " NOTIFY=";

	ol = strnlen(r->orcpt, sizeof(r->orcpt));
	if (!addr_emit_valid(r->addr, ADDR_RCPT) || ol > SMTP_XTEXT_MAX ||
	    (ol > 0 && !addr_orcpt_valid(r->orcpt, ol)) ||
	    (nt & ~0x0fu) != 0 ||
	    ((nt & SMTP_NOTIFY_NEVER) && nt != SMTP_NOTIFY_NEVER))
		return -1;
	if (addr_fmt(dst, dstsz, &off, "RCPT TO:<%s>", r->addr) == -1)
		return -1;
	if (ext & SMTP_EXT_DSN) {
		for (i = 0; i < sizeof(words) / sizeof(words[0]); i++) {
			if ((nt & words[i].bit) == 0)
				continue;
			if (addr_fmt(dst, dstsz, &off, "%s%s", sep,
			    words[i].name) == -1)
				return -1;
			sep = ",";
		}
		if (ol > 0 &&
		    addr_fmt(dst, dstsz, &off, " ORCPT=%s", r->orcpt) == -1)
			return -1;
	}
	if (addr_fmt(dst, dstsz, &off, "\r\n") == -1)
		return -1;
	return (int)off;
}
