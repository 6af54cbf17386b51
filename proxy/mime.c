/*
 * mime: a bounded, tolerant MIME parser over a message held in memory.
 *
 * One cursor walks the input once. Multipart delimiters are recognised
 * against the stack of boundaries currently open, innermost first, so an
 * outer delimiter also ends every inner part left open, and no enclosing
 * level looks at a byte again. A message/rfc822 body without a transfer
 * encoding is parsed in place by the same cursor; only an encoded one is
 * decoded and parsed as an input of its own.
 *
 * Work is linear in the input (times the nesting depth, which is capped),
 * memory produced by decoding is bounded by max_decoded, and everything
 * allocated for a message lives in one arena freed by mime_free().
 */
#include "mime.h"

#include <errno.h>
#include <iconv.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MIME_DEPTH_CAP	64		/* whatever max_depth asks for */
#define MIME_CHUNK	16384		/* arena block */
#define MIME_CSMAX	40		/* longest charset name given to iconv */
#define MIME_CTMAX	128		/* longest "type/subtype" */
#define MIME_SEGMAX	32		/* RFC 2231 continuations kept */
#define MIME_NOPOS	((size_t)-1)

#define MIME_BAD_BITS	(MIME_BAD_HEADER | MIME_NO_BOUNDARY | MIME_NO_DELIM | \
			 MIME_UNCLOSED | MIME_BAD_BASE64 | MIME_BAD_QP | \
			 MIME_BAD_CHARSET)

enum mime_kind {
	MIME_K_TEXT,		/* goes into mime_text() */
	MIME_K_ATTACH,		/* listed by mime_attachment() */
	MIME_K_MULTI,		/* a container */
	MIME_K_MESSAGE,		/* message/rfc822: listed, and parsed inside */
};

enum mime_cte {
	MIME_CTE_IDENTITY,	/* 7bit, 8bit, binary, and whatever is unknown */
	MIME_CTE_BASE64,
	MIME_CTE_QP,
};

enum mime_cs {
	MIME_CS_NONE,		/* absent or US-ASCII: UTF-8 if valid, else 1252 */
	MIME_CS_UTF8,
	MIME_CS_LATIN,		/* ISO-8859-1 and friends, read as windows-1252 */
	MIME_CS_OTHER,		/* whatever iconv knows */
	MIME_CS_BAD,		/* not a name we pass to iconv */
};

struct mime_part {
	enum mime_kind	 kind;
	enum mime_cte	 cte;
	unsigned	 depth;
	int		 html;
	int		 attachment;	/* Content-Disposition: attachment */
	const char	*ctype;
	const char	*charset;	/* NULL: none declared */
	const char	*filename;	/* NULL: none */
	size_t		 filename_len;
	const char	*body;		/* as in the input, transfer-encoded */
	size_t		 bodylen;
	const char	*content;	/* decoded (attachments, messages) */
	size_t		 size;
};

struct mime_field {
	const char	*name;		/* in the input */
	size_t		 namelen;
	size_t		 off;		/* unfolded value in hvals */
	size_t		 len;
};

struct mime_chunk {
	struct mime_chunk	*next;
	size_t			 used;
	size_t			 size;
	char			 data[];
};

/* The last iconv descriptor opened, kept for the next part. */
struct mime_conv {
	char		 name[MIME_CSMAX + 1];	/* "" when none */
	iconv_t		 cd;			/* (iconv_t)-1: unknown */
};

struct mime_msg {
	const char		*data;
	size_t			 len;
	struct mime_limits	 lim;
	unsigned		 flags;
	size_t			 budget;	/* decoded bytes still allowed */
	int			 oom;

	struct mime_field	*hdrs;
	size_t			 nhdrs;
	size_t			 hdrcap;
	struct buf		 hvals;

	struct mime_part	*parts;
	size_t			 nparts;
	size_t			 partcap;
	struct mime_attachment	*atts;
	size_t			 natts;

	struct mime_chunk	*arena;
	struct buf		 scratch;	/* one unfolded header value */
	struct buf		 pbuf;		/* one parameter value */
	struct mime_conv	 conv;

	int			 subj_done;
	int			 has_subj;
	struct buf		 subj;
	int			 text_done;
	struct buf		 text;
};

/* One input being walked: the message, or a decoded message/rfc822 body. */
struct mime_scan {
	const char	*p;
	size_t		 len;
	size_t		 pos;		/* always at the start of a line */
	unsigned	 nbnd;
	struct {
		const char	*b;
		size_t		 len;
	}		 bnd[MIME_DEPTH_CAP + 1];
	int		 hit;		/* level of the delimiter at pos; -1: end */
	int		 hit_close;
	size_t		 hit_end;	/* first byte after that delimiter line */
};

/* The fields of a header block that shape its entity (raw, folded). */
struct mime_ent {
	const char	*ct;
	const char	*cd;
	const char	*cte;
	size_t		 ctlen;
	size_t		 cdlen;
	size_t		 ctelen;
};

/* A parameter value seen while looking for one name (RFC 2231 pieces). */
struct mime_seg {
	unsigned	 idx;
	int		 ext;		/* name*= or name*N*=: charset and %XX */
	int		 quoted;
	const char	*v;
	size_t		 len;
};

static void	mime_entity(struct mime_msg *, struct mime_scan *, unsigned,
		    int);
static int	mime_2047(struct mime_conv *, struct buf *, const char *,
		    size_t, unsigned *);

/* 0-63: the alphabet; 0x40: '='; 0x80: whitespace; 0xff: invalid. */
static const unsigned char mime_b64[256] = {
	0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x80, 0x80, 0xff, 0xff, 0x80, 0xff, 0xff,
	0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	0x80, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x3e, 0xff, 0xff, 0xff, 0x3f,
	0x34, 0x35, 0x36, 0x37, 0x38, 0x39, 0x3a, 0x3b, 0x3c, 0x3d, 0xff, 0xff, 0xff, 0x40, 0xff, 0xff,
	0xff, 0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e,
	0x0f, 0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x19, 0xff, 0xff, 0xff, 0xff, 0xff,
	0xff, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f, 0x20, 0x21, 0x22, 0x23, 0x24, 0x25, 0x26, 0x27, 0x28,
	0x29, 0x2a, 0x2b, 0x2c, 0x2d, 0x2e, 0x2f, 0x30, 0x31, 0x32, 0x33, 0xff, 0xff, 0xff, 0xff, 0xff,
	0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
};

/* Small ASCII helpers: never the locale's idea of a letter. */

static int
mime_ws(int c)
{
	return c == ' ' || c == '\t';
}

static int
mime_lower(int c)
{
	return c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c;
}

static int
mime_hex(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static int
mime_caseeq(const char *a, const char *b, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (mime_lower((unsigned char)a[i]) !=
		    mime_lower((unsigned char)b[i]))
			return 0;
	return 1;
}

/* s[0..n) equals the lowercase literal lit, ignoring case. */
static int
mime_is(const char *s, size_t n, const char *lit)
{
	return strlen(lit) == n && mime_caseeq(s, lit, n);
}

static void
mime_flag(struct mime_msg *m, unsigned f)
{
	m->flags |= f;
	if (f & MIME_BAD_BITS)
		m->flags |= MIME_MALFORMED;
}

/*
 * Arena. Blocks are never moved, so pointers into them stay good until
 * mime_free(). A request bigger than a quarter block gets its own block.
 */

static void *
mime_alloc(struct mime_msg *m, size_t n)
{
	struct mime_chunk *c = m->arena;
	void *p;

	if (n == 0)
		n = 1;
	if (c != NULL && c->size - c->used >= n) {
		p = c->data + c->used;
		c->used += n;
		return p;
	}
	if (n > SIZE_MAX - sizeof(*c) - MIME_CHUNK) {
		m->oom = 1;
		return NULL;
	}
	if (n > MIME_CHUNK / 4) {
		if ((c = malloc(sizeof(*c) + n)) == NULL) {
			m->oom = 1;
			return NULL;
		}
		c->size = c->used = n;
		/* behind the current block, which keeps serving small ones */
		if (m->arena != NULL) {
			c->next = m->arena->next;
			m->arena->next = c;
		} else {
			c->next = NULL;
			m->arena = c;
		}
		return c->data;
	}
	if ((c = malloc(sizeof(*c) + MIME_CHUNK)) == NULL) {
		m->oom = 1;
		return NULL;
	}
	c->size = MIME_CHUNK;
	c->used = n;
	c->next = m->arena;
	m->arena = c;
	return c->data;
}

static char *
mime_strdup(struct mime_msg *m, const char *s, size_t n)
{
	char *d;

	if ((d = mime_alloc(m, n + 1)) == NULL)
		return NULL;
	if (n)
		memcpy(d, s, n);
	d[n] = '\0';
	return d;
}

/*
 * Transfer decoders. Both write at most cap bytes and report through *fl:
 * MIME_BAD_BASE64 / MIME_BAD_QP for what they had to skip or keep, and
 * MIME_TRUNCATED when cap stopped them.
 */

/* The whole bytes of a partial quantum; -1 when cap stops them. */
static int
mime_b64_tail(unsigned char *d, size_t *o, size_t cap, uint32_t acc,
    unsigned nq, unsigned *fl)
{
	if (nq == 1)
		*fl |= MIME_BAD_BASE64;		/* six bits make no byte */
	if (nq < 2)
		return 0;
	if (*o + nq - 1 > cap) {
		*fl |= MIME_TRUNCATED;
		return -1;
	}
	if (nq == 2)
		d[(*o)++] = (unsigned char)(acc >> 4);
	else {
		d[(*o)++] = (unsigned char)(acc >> 10);
		d[(*o)++] = (unsigned char)(acc >> 2);
	}
	return 0;
}

static size_t
mime_b64_decode(const char *src, size_t n, char *dst, size_t cap,
    unsigned *fl)
{
	const unsigned char *s = (const unsigned char *)src;
	unsigned char *d = (unsigned char *)dst;
	uint32_t acc = 0, a, b, c, e;
	unsigned nq = 0, v;
	size_t i = 0, o = 0;

	for (;;) {
		/* whole quanta, the common case, four characters at a time */
		if (nq == 0) {
			while (i + 4 <= n && o + 3 <= cap) {
				a = mime_b64[s[i]];
				b = mime_b64[s[i + 1]];
				c = mime_b64[s[i + 2]];
				e = mime_b64[s[i + 3]];
				if ((a | b | c | e) & 0xc0)
					break;
				acc = a << 18 | b << 12 | c << 6 | e;
				d[o] = (unsigned char)(acc >> 16);
				d[o + 1] = (unsigned char)(acc >> 8);
				d[o + 2] = (unsigned char)acc;
				o += 3;
				i += 4;
			}
		}
		/* then one character at a time, up to a quantum boundary */
		if (i >= n)
			break;
		v = mime_b64[s[i++]];
		if (v < 64) {
			acc = acc << 6 | v;
			if (++nq < 4)
				continue;
			if (o + 3 > cap) {
				*fl |= MIME_TRUNCATED;
				return o;
			}
			d[o++] = (unsigned char)(acc >> 16);
			d[o++] = (unsigned char)(acc >> 8);
			d[o++] = (unsigned char)acc;
			nq = 0;
			acc = 0;
		} else if (v == 0x40) {
			/*
			 * Padding ends a quantum. Some encoders pad every
			 * line, so decoding goes on after it.
			 */
			if (mime_b64_tail(d, &o, cap, acc, nq, fl) == -1)
				return o;
			nq = 0;
			acc = 0;
		} else if (v != 0x80)
			*fl |= MIME_BAD_BASE64;		/* skipped */
	}
	if (nq > 0) {
		/* cut in the middle of a quantum: keep the whole bytes */
		*fl |= MIME_BAD_BASE64;
		(void)mime_b64_tail(d, &o, cap, acc, nq, fl);
	}
	return o;
}

static size_t
mime_qp_decode(const char *src, size_t n, char *dst, size_t cap,
    unsigned *fl)
{
	const unsigned char *s = (const unsigned char *)src;
	unsigned char *d = (unsigned char *)dst;
	size_t i = 0, o = 0, ws = MIME_NOPOS, j, run;
	unsigned c;
	int h, l;

	while (i < n) {
		/* a run of plain bytes */
		for (run = o; i < n && o < cap; i++) {
			c = s[i];
			if (c == '=' || c == '\r' || c == '\n' || c == ' ' ||
			    c == '\t')
				break;
			d[o++] = (unsigned char)c;
		}
		if (o > run)
			ws = MIME_NOPOS;
		if (i >= n)
			break;
		if (o >= cap) {
			*fl |= MIME_TRUNCATED;
			break;
		}
		c = s[i];
		if (c == ' ' || c == '\t') {
			/* literal whitespace: dropped if it ends the line */
			if (ws == MIME_NOPOS)
				ws = o;
			d[o++] = (unsigned char)c;
			i++;
			continue;
		}
		if (c == '\n' || (c == '\r' && i + 1 < n && s[i + 1] == '\n')) {
			if (ws != MIME_NOPOS)
				o = ws;
			ws = MIME_NOPOS;
			if (c == '\r') {
				if (o + 2 > cap) {
					*fl |= MIME_TRUNCATED;
					break;
				}
				d[o++] = '\r';
				i++;
			}
			d[o++] = '\n';
			i++;
			continue;
		}
		ws = MIME_NOPOS;
		if (c == '\r') {
			d[o++] = '\r';
			i++;
			continue;
		}
		/* '=' */
		if (i + 2 < n && (h = mime_hex(s[i + 1])) >= 0 &&
		    (l = mime_hex(s[i + 2])) >= 0) {
			d[o++] = (unsigned char)(h << 4 | l);
			i += 3;
			continue;
		}
		/* soft line break: '=', maybe padding, then the line end */
		for (j = i + 1; j < n && (s[j] == ' ' || s[j] == '\t'); j++)
			;
		if (j == n) {
			i = n;
			continue;
		}
		if (s[j] == '\n') {
			i = j + 1;
			continue;
		}
		if (s[j] == '\r' && (j + 1 == n || s[j + 1] == '\n')) {
			i = j + 2 > n ? n : j + 2;
			continue;
		}
		/* not an escape: keep the '=' as it is */
		*fl |= MIME_BAD_QP;
		d[o++] = '=';
		i++;
	}
	if (i >= n && ws != MIME_NOPOS)
		o = ws;			/* the end of the body ends a line too */
	return o;
}

/* UTF-8 */

/* Length of the valid UTF-8 sequence at s, 0 if there is none. */
static size_t
mime_utf8_seq(const unsigned char *s, size_t n)
{
	unsigned c = s[0], lo = 0x80, hi = 0xbf;
	size_t len, k;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		len = 2;
	else if (c >= 0xe0 && c <= 0xef) {
		len = 3;
		if (c == 0xe0)
			lo = 0xa0;		/* overlong */
		else if (c == 0xed)
			hi = 0x9f;		/* surrogates */
	} else if (c >= 0xf0 && c <= 0xf4) {
		len = 4;
		if (c == 0xf0)
			lo = 0x90;		/* overlong */
		else if (c == 0xf4)
			hi = 0x8f;		/* past U+10FFFF */
	} else
		return 0;
	if (n < len || s[1] < lo || s[1] > hi)
		return 0;
	for (k = 2; k < len; k++)
		if ((s[k] & 0xc0) != 0x80)
			return 0;
	return len;
}

/* Offset of the first byte that is not valid UTF-8; n when all are. */
static size_t
mime_utf8_check(const char *src, size_t n)
{
	const unsigned char *s = (const unsigned char *)src;
	size_t i = 0, k;
	uint64_t w;

	while (i < n) {
		if (n - i >= 8) {
			memcpy(&w, s + i, 8);
			if ((w & 0x8080808080808080ULL) == 0) {
				i += 8;
				continue;
			}
		}
		if (s[i] < 0x80) {
			i++;
			continue;
		}
		if ((k = mime_utf8_seq(s + i, n - i)) == 0)
			return i;
		i += k;
	}
	return n;
}

/* Append s, dropping every byte that does not belong to valid UTF-8. */
static int
mime_utf8_append(struct buf *out, const char *s, size_t n, unsigned *fl)
{
	size_t i = 0, ok;

	while (i < n) {
		ok = mime_utf8_check(s + i, n - i);
		if (buf_append(out, s + i, ok) == -1)
			return -1;
		i += ok;
		if (i < n) {
			*fl |= MIME_BAD_CHARSET;
			i++;
		}
	}
	return 0;
}

static size_t
mime_utf8_put(char *d, unsigned long cp)
{
	if (cp == 0 || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		cp = 0xfffd;
	if (cp < 0x80) {
		d[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		d[0] = (char)(0xc0 | cp >> 6);
		d[1] = (char)(0x80 | (cp & 0x3f));
		return 2;
	}
	if (cp < 0x10000) {
		d[0] = (char)(0xe0 | cp >> 12);
		d[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
		d[2] = (char)(0x80 | (cp & 0x3f));
		return 3;
	}
	d[0] = (char)(0xf0 | cp >> 18);
	d[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
	d[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
	d[3] = (char)(0x80 | (cp & 0x3f));
	return 4;
}

/* Charsets */

/*
 * Names glibc does not know under the label mail software uses. Only
 * these few: anything else unknown is kept as bytes.
 */
static const struct {
	const char	*label;
	const char	*iconv;
} mime_aliases[] = {
	{ "ks_c_5601-1987",	"CP949" },
	{ "x-sjis",		"SHIFT_JIS" },
	{ "unicode-1-1-utf-7",	"UTF-7" },
	{ "iso-8859-8-i",	"ISO-8859-8" },
	{ "x-mac-roman",	"MACINTOSH" },
};

static const char *const mime_latin[] = {
	"iso-8859-1", "iso8859-1", "iso_8859-1", "latin1", "latin-1", "l1",
	"cp819", "cp1252", "windows-1252", "x-cp1252",
};

static const char *const mime_ascii[] = {
	"us-ascii", "ascii", "ansi_x3.4-1968", "us", "iso646-us",
};

/*
 * Classify a charset label and copy it, lowercase, into dst. The name goes
 * to iconv_open(), so only plain label characters are accepted: no '/',
 * which glibc reads as a conversion suffix.
 */
static enum mime_cs
mime_charset(const char *cs, size_t n, char dst[MIME_CSMAX + 1])
{
	size_t i;
	int c;

	dst[0] = '\0';
	if (cs == NULL)
		return MIME_CS_NONE;
	while (n > 0 && mime_ws((unsigned char)*cs)) {
		cs++;
		n--;
	}
	/* the label ends at whitespace or a comment: "us-ascii (Plain text)" */
	for (i = 0; i < n && !mime_ws((unsigned char)cs[i]) && cs[i] != '('; i++)
		;
	if ((n = i) == 0)
		return MIME_CS_NONE;
	if (n > MIME_CSMAX)
		return MIME_CS_BAD;
	for (i = 0; i < n; i++) {
		c = mime_lower((unsigned char)cs[i]);
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		    c == '-' || c == '_' || c == '.' || c == ':' || c == '+' ||
		    c == '(' || c == ')'))
			return MIME_CS_BAD;
		dst[i] = (char)c;
	}
	dst[n] = '\0';
	if (strcmp(dst, "utf-8") == 0 || strcmp(dst, "utf8") == 0)
		return MIME_CS_UTF8;
	for (i = 0; i < sizeof(mime_ascii) / sizeof(mime_ascii[0]); i++)
		if (strcmp(dst, mime_ascii[i]) == 0)
			return MIME_CS_NONE;
	for (i = 0; i < sizeof(mime_latin) / sizeof(mime_latin[0]); i++)
		if (strcmp(dst, mime_latin[i]) == 0)
			return MIME_CS_LATIN;
	return MIME_CS_OTHER;
}

static void
mime_conv_init(struct mime_conv *cv)
{
	cv->name[0] = '\0';
	cv->cd = (iconv_t)-1;
}

static void
mime_conv_close(struct mime_conv *cv)
{
	if (cv->name[0] != '\0' && cv->cd != (iconv_t)-1)
		iconv_close(cv->cd);
	mime_conv_init(cv);
}

/* A descriptor from name to UTF-8, or (iconv_t)-1 when iconv has none. */
static iconv_t
mime_conv_open(struct mime_conv *cv, const char *name)
{
	size_t i;

	if (cv->name[0] != '\0' && strcmp(cv->name, name) == 0)
		return cv->cd;
	mime_conv_close(cv);
	cv->cd = iconv_open("UTF-8", name);
	for (i = 0; cv->cd == (iconv_t)-1 &&
	    i < sizeof(mime_aliases) / sizeof(mime_aliases[0]); i++)
		if (strcmp(name, mime_aliases[i].label) == 0)
			cv->cd = iconv_open("UTF-8", mime_aliases[i].iconv);
	/* failures are remembered too, so they are not retried per part */
	snprintf(cv->name, sizeof(cv->name), "%s", name);
	return cv->cd;
}

/*
 * Convert with iconv, skipping each byte it cannot read. Unknown charset:
 * the bytes are kept as they are.
 */
static int
mime_iconv(struct mime_conv *cv, struct buf *out, const char *name,
    const char *s, size_t n, unsigned *fl)
{
	iconv_t cd;
	char *in = (char *)(uintptr_t)s, *op;
	size_t inleft = n, oleft, r;

	if ((cd = mime_conv_open(cv, name)) == (iconv_t)-1) {
		*fl |= MIME_BAD_CHARSET;
		return buf_append(out, s, n);
	}
	if (buf_reserve(out, n + n / 2 + 16) == -1)
		return -1;
	while (inleft > 0) {
		op = out->data + out->len;
		oleft = out->cap - out->len - 1;
		r = iconv(cd, &in, &inleft, &op, &oleft);
		out->len = (size_t)(op - out->data);
		if (r != (size_t)-1)
			break;
		if (errno == E2BIG) {
			if (buf_reserve(out, inleft * 2 + 16) == -1)
				return -1;
		} else if (errno == EILSEQ) {
			*fl |= MIME_BAD_CHARSET;
			in++;
			inleft--;
		} else {
			/* EINVAL: a sequence cut by the end of the input */
			*fl |= MIME_BAD_CHARSET;
			break;
		}
	}
	/* end any shift state, and leave cd clean for the next use */
	if (buf_reserve(out, 16) == -1)
		return -1;
	op = out->data + out->len;
	oleft = out->cap - out->len - 1;
	(void)iconv(cd, NULL, NULL, &op, &oleft);
	out->len = (size_t)(op - out->data);
	return 0;
}

/* Append s converted from charset cs[0..cslen) to UTF-8. */
static int
mime_to_utf8(struct mime_conv *cv, struct buf *out, const char *cs,
    size_t cslen, const char *s, size_t n, unsigned *fl)
{
	char name[MIME_CSMAX + 1];
	size_t i;

	switch (mime_charset(cs, cslen, name)) {
	case MIME_CS_NONE:
		/* undeclared 8-bit text is UTF-8 when it can be, else 1252 */
		if (mime_utf8_check(s, n) == n)
			return buf_append(out, s, n);
		return mime_iconv(cv, out, "windows-1252", s, n, fl);
	case MIME_CS_UTF8:
		return mime_utf8_append(out, s, n, fl);
	case MIME_CS_LATIN:
		for (i = 0; i < n && (unsigned char)s[i] < 0x80; i++)
			;
		if (i == n)
			return buf_append(out, s, n);
		return mime_iconv(cv, out, "windows-1252", s, n, fl);
	case MIME_CS_OTHER:
		return mime_iconv(cv, out, name, s, n, fl);
	case MIME_CS_BAD:
		break;
	}
	*fl |= MIME_BAD_CHARSET;
	return buf_append(out, s, n);
}

/* Text in s needs no conversion to be UTF-8. */
static int
mime_is_utf8(const char *cs, const char *s, size_t n)
{
	char name[MIME_CSMAX + 1];
	enum mime_cs k;

	k = mime_charset(cs, cs ? strlen(cs) : 0, name);
	return (k == MIME_CS_NONE || k == MIME_CS_UTF8) &&
	    mime_utf8_check(s, n) == n;
}

/* RFC 2047 encoded-words */

/*
 * Is there an encoded-word "=?cs?e?text?=" at s[i]? If so, fill in its
 * pieces and return the offset just past it; 0 otherwise. Every scan stops
 * at the next '?' or whitespace, so trying each "=?" stays linear.
 */
static size_t
mime_word(const char *s, size_t n, size_t i, const char **cs, size_t *cslen,
    int *enc, const char **txt, size_t *txtlen)
{
	const char *star;
	size_t j, k;

	j = i + 2;
	for (k = j; k < n && s[k] != '?' && !mime_ws((unsigned char)s[k]) &&
	    s[k] != '\r' && s[k] != '\n' && k - j <= 2 * MIME_CSMAX; k++)
		;
	if (k == j || k + 2 >= n || s[k] != '?' || s[k + 2] != '?')
		return 0;
	*enc = mime_lower((unsigned char)s[k + 1]);
	if (*enc != 'b' && *enc != 'q')
		return 0;
	*cs = s + j;
	*cslen = k - j;
	/* RFC 2231 allows "charset*language" */
	if ((star = memchr(*cs, '*', *cslen)) != NULL)
		*cslen = (size_t)(star - *cs);
	j = k + 3;
	for (k = j; k < n && s[k] != '?' && !mime_ws((unsigned char)s[k]) &&
	    s[k] != '\r' && s[k] != '\n'; k++)
		;
	if (k + 1 >= n || s[k] != '?' || s[k + 1] != '=')
		return 0;
	*txt = s + j;
	*txtlen = k - j;
	return k + 2;
}

static int
mime_all_ws(const char *s, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (!mime_ws((unsigned char)s[i]) && s[i] != '\r' &&
		    s[i] != '\n')
			return 0;
	return 1;
}

static int
mime_2047(struct mime_conv *cv, struct buf *out, const char *s, size_t n,
    unsigned *fl)
{
	struct buf pend = BUF_INIT;	/* bytes of adjacent words, one charset */
	const char *cs, *txt, *pcs = NULL;
	size_t i, pos = 0, end, cslen, txtlen, pcslen = 0, k;
	unsigned junk = 0;
	int enc, after_word = 0, h, l, rc = -1;

	for (i = 0; i + 1 < n; i++) {
		if (s[i] != '=' || s[i + 1] != '?')
			continue;
		end = mime_word(s, n, i, &cs, &cslen, &enc, &txt, &txtlen);
		if (end == 0)
			continue;
		/* whitespace between two words goes; anything else stays */
		if (!after_word || !mime_all_ws(s + pos, i - pos)) {
			if (pend.len > 0 && mime_to_utf8(cv, out, pcs, pcslen,
			    pend.data, pend.len, fl) == -1)
				goto done;
			buf_reset(&pend);
			if (mime_to_utf8(cv, out, NULL, 0, s + pos, i - pos,
			    fl) == -1)
				goto done;
		}
		/*
		 * Words in one charset are joined before conversion: encoders
		 * split multibyte characters across words.
		 */
		if (pend.len > 0 && (cslen != pcslen ||
		    !mime_caseeq(cs, pcs, cslen))) {
			if (mime_to_utf8(cv, out, pcs, pcslen, pend.data,
			    pend.len, fl) == -1)
				goto done;
			buf_reset(&pend);
		}
		pcs = cs;
		pcslen = cslen;
		if (buf_reserve(&pend, txtlen) == -1)
			goto done;
		if (enc == 'b')
			pend.len += mime_b64_decode(txt, txtlen,
			    pend.data + pend.len, txtlen, &junk);
		else {
			for (k = 0; k < txtlen; k++) {
				if (txt[k] == '_')
					pend.data[pend.len++] = ' ';
				else if (txt[k] == '=' && k + 2 < txtlen &&
				    (h = mime_hex((unsigned char)txt[k + 1])) >= 0 &&
				    (l = mime_hex((unsigned char)txt[k + 2])) >= 0) {
					pend.data[pend.len++] = (char)(h << 4 | l);
					k += 2;
				} else
					pend.data[pend.len++] = txt[k];
			}
		}
		after_word = 1;
		pos = end;
		i = end - 1;
	}
	if (pend.len > 0 &&
	    mime_to_utf8(cv, out, pcs, pcslen, pend.data, pend.len, fl) == -1)
		goto done;
	if (mime_to_utf8(cv, out, NULL, 0, s + pos, n - pos, fl) == -1)
		goto done;
	rc = 0;
done:
	buf_free(&pend);
	return rc;
}

/* Structured header values: Content-Type and Content-Disposition */

/* Copy a folded header value with line breaks removed, trimmed. */
static int
mime_unfold(struct buf *dst, const char *s, size_t n)
{
	size_t i, run;

	while (n > 0 && (mime_ws((unsigned char)*s) || *s == '\r' ||
	    *s == '\n')) {
		s++;
		n--;
	}
	while (n > 0 && (mime_ws((unsigned char)s[n - 1]) ||
	    s[n - 1] == '\r' || s[n - 1] == '\n'))
		n--;
	if (buf_reserve(dst, n) == -1)
		return -1;
	for (i = 0; i < n; i += run) {
		for (run = 0; i + run < n && s[i + run] != '\r' &&
		    s[i + run] != '\n'; run++)
			;
		memcpy(dst->data + dst->len, s + i, run);
		dst->len += run;
		if (i + run < n)
			run++;
	}
	return 0;
}

static int
mime_tokenchar(int c)
{
	return c > 0x20 && c < 0x7f && strchr("()<>@,;:\\\"/[]?=", c) == NULL;
}

/* Lowercase "type/subtype" of a Content-Type value; 0 if it is not one. */
static int
mime_ctype(const char *v, size_t n, char dst[MIME_CTMAX])
{
	size_t i = 0, o = 0;
	int slash = 0, c;

	while (i < n && mime_ws((unsigned char)v[i]))
		i++;
	for (; i < n && v[i] != ';' && v[i] != '(' &&
	    !mime_ws((unsigned char)v[i]); i++) {
		c = (unsigned char)v[i];
		if (c == '/') {
			if (slash++ || o == 0)
				return 0;
		} else if (!mime_tokenchar(c))
			return 0;
		if (o + 1 >= MIME_CTMAX)
			return 0;
		dst[o++] = (char)mime_lower(c);
	}
	dst[o] = '\0';
	return slash == 1 && dst[o - 1] != '/';
}

/* Append a quoted-string's content with its backslash escapes undone. */
static int
mime_unquote(struct buf *out, const char *s, size_t n)
{
	size_t i;

	if (buf_reserve(out, n) == -1)
		return -1;
	for (i = 0; i < n; i++) {
		if (s[i] == '\\' && i + 1 < n)
			i++;
		out->data[out->len++] = s[i];
	}
	return 0;
}

static int
mime_pct(struct buf *out, const char *s, size_t n)
{
	size_t i;
	int h, l;

	if (buf_reserve(out, n) == -1)
		return -1;
	for (i = 0; i < n; i++) {
		if (s[i] == '%' && i + 2 < n &&
		    (h = mime_hex((unsigned char)s[i + 1])) >= 0 &&
		    (l = mime_hex((unsigned char)s[i + 2])) >= 0) {
			out->data[out->len++] = (char)(h << 4 | l);
			i += 2;
		} else
			out->data[out->len++] = s[i];
	}
	return 0;
}

/* Put RFC 2231 continuations together and convert them to UTF-8. */
static int
mime_param_2231(struct mime_conv *cv, struct buf *out, struct mime_seg *seg,
    size_t nseg, unsigned *fl)
{
	struct buf raw = BUF_INIT;
	struct mime_seg t;
	const char *cs = NULL, *v, *q1, *q2;
	size_t cslen = 0, i, j, len;
	int rc = -1;

	/* a handful of pieces: insertion sort */
	for (i = 1; i < nseg; i++) {
		t = seg[i];
		for (j = i; j > 0 && seg[j - 1].idx > t.idx; j--)
			seg[j] = seg[j - 1];
		seg[j] = t;
	}
	for (i = 0; i < nseg; i++) {
		if (i > 0 && seg[i].idx != seg[i - 1].idx + 1)
			break;		/* a gap: what follows is lost */
		v = seg[i].v;
		len = seg[i].len;
		if (seg[i].ext) {
			if (i == 0 && (q1 = memchr(v, '\'', len)) != NULL &&
			    (q2 = memchr(q1 + 1, '\'',
			    len - (size_t)(q1 + 1 - v))) != NULL) {
				cs = v;
				cslen = (size_t)(q1 - v);
				len -= (size_t)(q2 + 1 - v);
				v = q2 + 1;
			}
			if (mime_pct(&raw, v, len) == -1)
				goto done;
		} else if (seg[i].quoted) {
			if (mime_unquote(&raw, v, len) == -1)
				goto done;
		} else if (buf_append(&raw, v, len) == -1)
			goto done;
	}
	rc = mime_to_utf8(cv, out, cs, cslen, raw.data, raw.len, fl);
done:
	buf_free(&raw);
	return rc;
}

/*
 * Find parameter want (lowercase) in a structured value and append its
 * value to out: RFC 2231 pieces when there are any, else the plain value,
 * RFC 2047-decoded when decode is set. 1: found; 0: absent; -1: ENOMEM.
 */
static int
mime_param(struct mime_conv *cv, struct buf *out, const char *v, size_t n,
    const char *want, int decode, unsigned *fl)
{
	struct mime_seg seg[MIME_SEGMAX], *sp;
	struct buf tmp = BUF_INIT;
	size_t wl = strlen(want), nseg = 0, i, k, ns, ne, vs, ve, plen = 0;
	const char *plain = NULL, *semi;
	unsigned idx;
	int quoted, pquoted = 0, ext, rc;

	if (n == 0 || (semi = memchr(v, ';', n)) == NULL)
		return 0;
	for (i = (size_t)(semi - v); i < n; ) {
		i++;				/* past ';' */
		while (i < n && mime_ws((unsigned char)v[i]))
			i++;
		ns = i;
		while (i < n && v[i] != '=' && v[i] != ';')
			i++;
		for (ne = i; ne > ns && mime_ws((unsigned char)v[ne - 1]); ne--)
			;
		if (i >= n || v[i] == ';')
			continue;
		i++;				/* past '=' */
		while (i < n && mime_ws((unsigned char)v[i]))
			i++;
		quoted = i < n && v[i] == '"';
		if (quoted) {
			for (vs = ++i; i < n && v[i] != '"'; i++)
				if (v[i] == '\\' && i + 1 < n)
					i++;
			ve = i;
		} else {
			for (vs = i; i < n && v[i] != ';'; i++)
				;
			for (ve = i; ve > vs && mime_ws((unsigned char)v[ve - 1]);
			    ve--)
				;
		}
		while (i < n && v[i] != ';')
			i++;

		if (ne - ns < wl || !mime_caseeq(v + ns, want, wl))
			continue;
		if (ne - ns == wl) {
			if (plain == NULL) {
				plain = v + vs;
				plen = ve - vs;
				pquoted = quoted;
			}
			continue;
		}
		/* want*, want*N, want*N* */
		k = ns + wl;
		if (v[k++] != '*')
			continue;
		idx = 0;
		ext = 1;
		if (k < ne) {
			if (v[k] < '0' || v[k] > '9')
				continue;
			for (; k < ne && v[k] >= '0' && v[k] <= '9' &&
			    idx < 100000; k++)
				idx = idx * 10 + (unsigned)(v[k] - '0');
			ext = k < ne && v[k] == '*';
			if (ext)
				k++;
			if (k != ne)
				continue;
		}
		for (k = 0; k < nseg && seg[k].idx != idx; k++)
			;
		if (k < nseg || nseg == MIME_SEGMAX)
			continue;		/* duplicate, or too many */
		sp = &seg[nseg++];
		sp->idx = idx;
		sp->ext = ext;
		sp->quoted = quoted;
		sp->v = v + vs;
		sp->len = ve - vs;
	}
	if (nseg > 0)
		return mime_param_2231(cv, out, seg, nseg, fl) == -1 ? -1 : 1;
	if (plain == NULL)
		return 0;
	if (!decode)
		return pquoted ? (mime_unquote(out, plain, plen) == -1 ? -1 : 1) :
		    (buf_append(out, plain, plen) == -1 ? -1 : 1);
	rc = pquoted ? mime_unquote(&tmp, plain, plen) :
	    buf_append(&tmp, plain, plen);
	if (rc == 0)
		rc = mime_2047(cv, out, tmp.data ? tmp.data : "", tmp.len, fl);
	buf_free(&tmp);
	return rc == -1 ? -1 : 1;
}

/* The first token of a structured value, lowercase, into dst. */
static void
mime_token(const char *v, size_t n, char *dst, size_t dstsz)
{
	size_t i = 0, o = 0;

	while (i < n && mime_ws((unsigned char)v[i]))
		i++;
	for (; i < n && v[i] != ';' && !mime_ws((unsigned char)v[i]) &&
	    o + 1 < dstsz; i++)
		dst[o++] = (char)mime_lower((unsigned char)v[i]);
	dst[o] = '\0';
}

/* Entities */

static size_t
mime_new_part(struct mime_msg *m, unsigned depth)
{
	struct mime_part *np;
	size_t ncap;

	if (m->nparts == m->partcap) {
		ncap = m->partcap ? m->partcap * 2 : 16;
		if ((np = realloc(m->parts, ncap * sizeof(*np))) == NULL) {
			m->oom = 1;
			return MIME_NOPOS;
		}
		m->parts = np;
		m->partcap = ncap;
	}
	np = &m->parts[m->nparts];
	memset(np, 0, sizeof(*np));
	np->kind = MIME_K_TEXT;
	np->depth = depth;
	np->ctype = "text/plain";
	return m->nparts++;
}

/*
 * Is the line at pos a delimiter of one of the open boundaries (innermost
 * first)? The caller has seen "--" there. Only whitespace may follow the
 * boundary (and "--"), so a boundary that is a prefix of another does not
 * match it.
 */
static int
mime_delim_at(struct mime_scan *sc, size_t pos)
{
	const char *l = sc->p + pos;
	size_t room = sc->len - pos, k, bl;
	int lv, close;

	for (lv = (int)sc->nbnd - 1; lv >= 0; lv--) {
		bl = sc->bnd[lv].len;
		if (room < 2 + bl || memcmp(l + 2, sc->bnd[lv].b, bl) != 0)
			continue;
		k = 2 + bl;
		close = 0;
		if (room - k >= 2 && l[k] == '-' && l[k + 1] == '-') {
			close = 1;
			k += 2;
		}
		while (k < room && (l[k] == ' ' || l[k] == '\t' || l[k] == '\r'))
			k++;
		if (k < room && l[k] != '\n')
			continue;
		sc->hit = lv;
		sc->hit_close = close;
		sc->hit_end = pos + (k < room ? k + 1 : k);
		return 1;
	}
	return 0;
}

/* Move to the next delimiter line of any open boundary, or the end. */
static void
mime_find_delim(struct mime_scan *sc)
{
	const char *p = sc->p, *nl;
	size_t pos = sc->pos, end = sc->len;

	sc->hit = -1;
	if (sc->nbnd > 0) {
		while (pos < end) {
			if (end - pos >= 2 && p[pos] == '-' && p[pos + 1] == '-' &&
			    mime_delim_at(sc, pos)) {
				sc->pos = pos;
				return;
			}
			if ((nl = memchr(p + pos, '\n', end - pos)) == NULL)
				break;
			pos = (size_t)(nl - p) + 1;
		}
	}
	sc->pos = end;
}

/* Where a body that started at start ends: the line break before a
 * delimiter belongs to the delimiter. */
static size_t
mime_body_end(const struct mime_scan *sc, size_t start)
{
	size_t end = sc->pos;

	if (sc->hit < 0)
		return end;
	if (end > start && sc->p[end - 1] == '\n') {
		end--;
		if (end > start && sc->p[end - 1] == '\r')
			end--;
	}
	return end;
}

/* Transfer-decode into the arena, within the budget. */
static void
mime_decode(struct mime_msg *m, const char *s, size_t n, enum mime_cte cte,
    const char **out, size_t *outlen)
{
	size_t bound, cap, o;
	unsigned fl = 0;
	char *d;

	*out = s;
	*outlen = n;
	if (cte == MIME_CTE_IDENTITY)
		return;			/* no copy: it points into the input */
	bound = cte == MIME_CTE_BASE64 ? n / 4 * 3 + 3 : n;
	cap = bound < m->budget ? bound : m->budget;
	*outlen = 0;
	if ((d = mime_alloc(m, cap)) == NULL)
		return;
	if (cte == MIME_CTE_BASE64)
		o = mime_b64_decode(s, n, d, cap, &fl);
	else
		o = mime_qp_decode(s, n, d, cap, &fl);
	m->budget -= o;
	mime_flag(m, fl);
	*out = d;
	*outlen = o;
}

static void
mime_store_field(struct mime_msg *m, const char *name, size_t namelen,
    const char *v, size_t vlen)
{
	struct mime_field *f;
	size_t ncap, off = m->hvals.len;

	if (m->nhdrs == m->hdrcap) {
		ncap = m->hdrcap ? m->hdrcap * 2 : 32;
		if ((f = realloc(m->hdrs, ncap * sizeof(*f))) == NULL) {
			m->oom = 1;
			return;
		}
		m->hdrs = f;
		m->hdrcap = ncap;
	}
	/* each value NUL-terminated, for C callers */
	if (mime_unfold(&m->hvals, v, vlen) == -1 ||
	    buf_append(&m->hvals, "", 1) == -1) {
		m->oom = 1;
		return;
	}
	f = &m->hdrs[m->nhdrs++];
	f->name = name;
	f->namelen = namelen;
	f->off = off;
	f->len = m->hvals.len - off - 1;
}

static void
mime_field(struct mime_msg *m, int store, struct mime_ent *e,
    const char *name, size_t namelen, const char *v, size_t vlen,
    size_t *nfields)
{
	if (++*nfields > m->lim.max_headers) {
		mime_flag(m, MIME_HEADERS);
		return;
	}
	if (e->ct == NULL && mime_is(name, namelen, "content-type")) {
		e->ct = v;
		e->ctlen = vlen;
	} else if (e->cd == NULL &&
	    mime_is(name, namelen, "content-disposition")) {
		e->cd = v;
		e->cdlen = vlen;
	} else if (e->cte == NULL &&
	    mime_is(name, namelen, "content-transfer-encoding")) {
		e->cte = v;
		e->ctelen = vlen;
	}
	if (store)
		mime_store_field(m, name, namelen, v, vlen);
}

/*
 * A header block, from sc->pos. It ends at a blank line (consumed), at a
 * line that is not a field (the body starts there), at a delimiter of an
 * open boundary (the body is empty), or at the end of the input.
 */
static void
mime_headers(struct mime_msg *m, struct mime_scan *sc, int store,
    struct mime_ent *e)
{
	const char *p = sc->p, *nl, *colon;
	size_t pos = sc->pos, end = sc->len, eol, next, nf = 0, k, namelen;
	size_t fname = 0, fnamelen = 0, fv = 0, fve = 0;
	int have = 0;

	memset(e, 0, sizeof(*e));
	while (pos < end) {
		if ((nl = memchr(p + pos, '\n', end - pos)) != NULL) {
			eol = (size_t)(nl - p);
			next = eol + 1;
			if (eol > pos && p[eol - 1] == '\r')
				eol--;
			else
				mime_flag(m, MIME_BARE_LF);
		} else {
			eol = next = end;
			if (eol > pos && p[eol - 1] == '\r')
				eol--;
		}
		if (eol == pos) {
			pos = next;		/* the blank line */
			break;
		}
		if (mime_ws((unsigned char)p[pos])) {
			if (!have)
				goto nonfield;
			fve = eol;		/* a continuation line */
			pos = next;
			continue;
		}
		if (p[pos] == '-' && sc->nbnd > 0 && eol - pos >= 2 &&
		    p[pos + 1] == '-' && mime_delim_at(sc, pos))
			break;
		if ((colon = memchr(p + pos, ':', eol - pos)) == NULL)
			goto nonfield;
		for (k = (size_t)(colon - p); k > pos &&
		    mime_ws((unsigned char)p[k - 1]); k--)
			;
		if (k == pos)
			goto nonfield;
		namelen = k - pos;
		for (k = pos; k < pos + namelen; k++)
			if ((unsigned char)p[k] <= 0x20 ||
			    (unsigned char)p[k] >= 0x7f)
				goto nonfield;
		if (have)
			mime_field(m, store, e, p + fname, fnamelen, p + fv,
			    fve - fv, &nf);
		fname = pos;
		fnamelen = namelen;
		fv = (size_t)(colon - p) + 1;
		fve = eol;
		have = 1;
		pos = next;
	}
	goto out;
nonfield:
	/* not a header field: the body starts on this line */
	mime_flag(m, MIME_BAD_HEADER);
out:
	if (have)
		mime_field(m, store, e, p + fname, fnamelen, p + fv, fve - fv,
		    &nf);
	sc->pos = pos;
}

/* A leaf: its body runs to the next delimiter of any open boundary. */
static void
mime_leaf(struct mime_msg *m, struct mime_scan *sc, size_t idx, int astext)
{
	struct mime_part *p;
	size_t start = sc->pos, end;

	mime_find_delim(sc);
	end = mime_body_end(sc, start);
	p = &m->parts[idx];
	p->body = sc->p + start;
	p->bodylen = end - start;
	if (astext || ((strcmp(p->ctype, "text/plain") == 0 || p->html) &&
	    !p->attachment && p->filename == NULL)) {
		p->kind = MIME_K_TEXT;
		return;
	}
	p->kind = MIME_K_ATTACH;
	mime_decode(m, p->body, p->bodylen, p->cte, &p->content, &p->size);
}

/*
 * What is left of a multipart when the part limit is reached: everything
 * up to the enclosing delimiter, kept as one raw text part so that none of
 * it escapes the policies.
 */
static void
mime_raw_rest(struct mime_msg *m, struct mime_scan *sc, unsigned depth)
{
	struct mime_part *p;
	size_t start = sc->pos, end, idx;

	mime_find_delim(sc);
	end = mime_body_end(sc, start);
	if ((idx = mime_new_part(m, depth)) == MIME_NOPOS)
		return;
	p = &m->parts[idx];
	p->body = sc->p + start;
	p->bodylen = end - start;
}

/*
 * Preamble and epilogue: mail readers do not show them, which is exactly
 * why data could be hidden there. Any that is not blank is scanned as a
 * text part of its own.
 */
static void
mime_hidden_text(struct mime_msg *m, const char *p, size_t len,
    unsigned depth)
{
	size_t i, idx;

	for (i = 0; i < len; i++)
		if (p[i] != ' ' && p[i] != '\t' && p[i] != '\r' && p[i] != '\n')
			break;
	if (i == len || m->nparts >= m->lim.max_parts)
		return;
	if ((idx = mime_new_part(m, depth)) == MIME_NOPOS)
		return;
	m->parts[idx].body = p;
	m->parts[idx].bodylen = len;
}

static void
mime_multipart(struct mime_msg *m, struct mime_scan *sc, size_t idx,
    unsigned depth, const char *b, size_t blen, int digest)
{
	struct mime_part *p;
	size_t start = sc->pos;
	unsigned level = sc->nbnd;

	sc->bnd[level].b = b;
	sc->bnd[level].len = blen;
	sc->nbnd++;
	mime_find_delim(sc);		/* past the preamble */
	if (sc->hit != (int)level) {
		/* the boundary never shows: the whole body is text */
		sc->nbnd--;
		mime_flag(m, MIME_NO_DELIM);
		p = &m->parts[idx];
		p->kind = MIME_K_TEXT;
		p->body = sc->p + start;
		p->bodylen = mime_body_end(sc, start) - start;
		return;
	}
	m->parts[idx].kind = MIME_K_MULTI;
	mime_hidden_text(m, sc->p + start, mime_body_end(sc, start) - start,
	    depth + 1);
	if (m->oom)
		return;
	for (;;) {
		/* at one of our delimiters */
		sc->pos = sc->hit_end;
		if (sc->hit_close)
			break;
		if (m->nparts >= m->lim.max_parts) {
			mime_flag(m, MIME_PARTS);
			sc->nbnd--;
			mime_raw_rest(m, sc, depth + 1);
			return;
		}
		mime_entity(m, sc, depth + 1, digest);
		if (m->oom)
			return;
		if (sc->hit != (int)level) {
			/* the input ended, or an outer delimiter came first */
			mime_flag(m, MIME_UNCLOSED);
			sc->nbnd--;
			return;
		}
	}
	sc->nbnd--;
	start = sc->pos;
	mime_find_delim(sc);		/* past the epilogue */
	mime_hidden_text(m, sc->p + start, mime_body_end(sc, start) - start,
	    depth + 1);
}

static void
mime_message(struct mime_msg *m, struct mime_scan *sc, size_t idx,
    unsigned depth)
{
	struct mime_scan *in;
	struct mime_part *p;
	size_t start = sc->pos, end;

	if (m->nparts >= m->lim.max_parts) {
		mime_flag(m, MIME_PARTS);
		mime_leaf(m, sc, idx, 1);
		return;
	}
	if (m->parts[idx].cte == MIME_CTE_IDENTITY) {
		/* parsed in place: the enclosing delimiters still apply */
		m->parts[idx].kind = MIME_K_MESSAGE;
		mime_entity(m, sc, depth + 1, 0);
		if (m->oom)
			return;
		end = mime_body_end(sc, start);
		p = &m->parts[idx];
		p->body = p->content = sc->p + start;
		p->bodylen = p->size = end - start;
		return;
	}
	mime_find_delim(sc);
	end = mime_body_end(sc, start);
	p = &m->parts[idx];
	p->kind = MIME_K_MESSAGE;
	p->body = sc->p + start;
	p->bodylen = end - start;
	mime_decode(m, p->body, p->bodylen, p->cte, &p->content, &p->size);
	if (m->oom)
		return;
	/* a new input, with no boundary open */
	if ((in = malloc(sizeof(*in))) == NULL) {
		m->oom = 1;
		return;
	}
	memset(in, 0, sizeof(*in));
	in->p = m->parts[idx].content;
	in->len = m->parts[idx].size;
	in->hit = -1;
	mime_entity(m, in, depth + 1, 0);
	free(in);
}

/* Fill in a part from what its header block said. */
static void
mime_describe(struct mime_msg *m, size_t idx, const struct mime_ent *e,
    int digest, char ctype[MIME_CTMAX], const char **boundary,
    size_t *blen)
{
	struct mime_part *p = &m->parts[idx];
	struct buf *pb = &m->pbuf;
	char tok[32];
	unsigned fl = 0;
	int has_ct = 0, r;

	*boundary = NULL;
	*blen = 0;
	buf_reset(&m->scratch);
	if (e->ct != NULL && mime_unfold(&m->scratch, e->ct, e->ctlen) == 0)
		has_ct = mime_ctype(m->scratch.data, m->scratch.len, ctype);
	if (!has_ct)
		snprintf(ctype, MIME_CTMAX, "%s",
		    digest ? "message/rfc822" : "text/plain");
	p->ctype = mime_strdup(m, ctype, strlen(ctype));
	p->html = strcmp(ctype, "text/html") == 0;
	if (has_ct) {
		buf_reset(pb);
		if ((r = mime_param(&m->conv, pb, m->scratch.data,
		    m->scratch.len, "charset", 0, &fl)) == 1)
			p->charset = mime_strdup(m, pb->data ? pb->data : "",
			    pb->len);
		buf_reset(pb);
		if (r != -1 && strncmp(ctype, "multipart/", 10) == 0 &&
		    (r = mime_param(&m->conv, pb, m->scratch.data,
		    m->scratch.len, "boundary", 0, &fl)) == 1 && pb->len > 0) {
			*boundary = mime_strdup(m, pb->data, pb->len);
			*blen = pb->len;
		}
		buf_reset(pb);
		if (r != -1 && (r = mime_param(&m->conv, pb, m->scratch.data,
		    m->scratch.len, "name", 1, &fl)) == 1) {
			p->filename = mime_strdup(m, pb->data ? pb->data : "",
			    pb->len);
			p->filename_len = pb->len;
		}
		if (r == -1)
			m->oom = 1;
	}
	if (e->cd != NULL) {
		buf_reset(&m->scratch);
		buf_reset(pb);
		if (mime_unfold(&m->scratch, e->cd, e->cdlen) == -1) {
			m->oom = 1;
			return;
		}
		mime_token(m->scratch.data, m->scratch.len, tok, sizeof(tok));
		p->attachment = strcmp(tok, "attachment") == 0;
		r = mime_param(&m->conv, pb, m->scratch.data, m->scratch.len,
		    "filename", 1, &fl);
		if (r == -1)
			m->oom = 1;
		else if (r == 1) {
			/* the disposition's name wins over Content-Type's */
			p->filename = mime_strdup(m, pb->data ? pb->data : "",
			    pb->len);
			p->filename_len = pb->len;
		}
	}
	if (e->cte != NULL) {
		buf_reset(&m->scratch);
		if (mime_unfold(&m->scratch, e->cte, e->ctelen) == -1) {
			m->oom = 1;
			return;
		}
		mime_token(m->scratch.data, m->scratch.len, tok, sizeof(tok));
		if (strcmp(tok, "base64") == 0)
			p->cte = MIME_CTE_BASE64;
		else if (strcmp(tok, "quoted-printable") == 0)
			p->cte = MIME_CTE_QP;
	}
	/* charset and filename problems count, the rest waits for text() */
	mime_flag(m, fl & MIME_BAD_CHARSET);
}

/*
 * One entity at sc->pos: its header block, then its body. On return sc is
 * at the delimiter that ended it (sc->hit) or at the end of the input.
 */
static void
mime_entity(struct mime_msg *m, struct mime_scan *sc, unsigned depth,
    int digest)
{
	struct mime_ent e;
	char ctype[MIME_CTMAX];
	const char *b;
	size_t idx, blen;

	if ((idx = mime_new_part(m, depth)) == MIME_NOPOS)
		return;
	mime_headers(m, sc, depth == 0, &e);
	if (m->oom)
		return;
	mime_describe(m, idx, &e, digest, ctype, &b, &blen);
	if (m->oom)
		return;
	if (strncmp(ctype, "multipart/", 10) == 0) {
		if (b == NULL) {
			mime_flag(m, MIME_NO_BOUNDARY);
			mime_leaf(m, sc, idx, 1);
		} else if (depth >= m->lim.max_depth) {
			mime_flag(m, MIME_DEPTH);
			mime_leaf(m, sc, idx, 1);
		} else
			mime_multipart(m, sc, idx, depth, b, blen,
			    strcmp(ctype, "multipart/digest") == 0);
	} else if (strcmp(ctype, "message/rfc822") == 0 ||
	    strcmp(ctype, "message/global") == 0) {
		if (depth >= m->lim.max_depth) {
			mime_flag(m, MIME_DEPTH);
			mime_leaf(m, sc, idx, 1);
		} else
			mime_message(m, sc, idx, depth);
	} else
		mime_leaf(m, sc, idx, 0);
}

/* HTML to text: a small state machine, not a browser. */

struct mime_html {
	struct buf	*out;
	int		 space;		/* whitespace before the next character */
};

enum mime_html_kind {
	MIME_HTML_INLINE,	/* <b>, <a>, <span>...: nothing */
	MIME_HTML_BREAK,	/* ends a line */
	MIME_HTML_CELL,		/* a space between cells */
	MIME_HTML_SKIP,		/* content is no text: script, style */
};

static const struct {
	const char		*name;
	enum mime_html_kind	 kind;
} mime_html_tags[] = {
	{ "br", MIME_HTML_BREAK }, { "p", MIME_HTML_BREAK },
	{ "div", MIME_HTML_BREAK }, { "tr", MIME_HTML_BREAK },
	{ "li", MIME_HTML_BREAK }, { "ul", MIME_HTML_BREAK },
	{ "ol", MIME_HTML_BREAK }, { "table", MIME_HTML_BREAK },
	{ "h1", MIME_HTML_BREAK }, { "h2", MIME_HTML_BREAK },
	{ "h3", MIME_HTML_BREAK }, { "h4", MIME_HTML_BREAK },
	{ "h5", MIME_HTML_BREAK }, { "h6", MIME_HTML_BREAK },
	{ "blockquote", MIME_HTML_BREAK }, { "title", MIME_HTML_BREAK },
	{ "hr", MIME_HTML_BREAK }, { "dd", MIME_HTML_BREAK },
	{ "dt", MIME_HTML_BREAK }, { "pre", MIME_HTML_BREAK },
	{ "section", MIME_HTML_BREAK }, { "article", MIME_HTML_BREAK },
	{ "header", MIME_HTML_BREAK }, { "footer", MIME_HTML_BREAK },
	{ "address", MIME_HTML_BREAK },
	{ "td", MIME_HTML_CELL }, { "th", MIME_HTML_CELL },
	{ "script", MIME_HTML_SKIP }, { "style", MIME_HTML_SKIP },
};

static enum mime_html_kind
mime_html_kind(const char *name)
{
	size_t i;

	/* the first letter rules out nearly every entry cheaply */
	for (i = 0; i < sizeof(mime_html_tags) / sizeof(mime_html_tags[0]); i++)
		if (mime_html_tags[i].name[0] == name[0] &&
		    strcmp(mime_html_tags[i].name, name) == 0)
			return mime_html_tags[i].kind;
	return MIME_HTML_INLINE;
}

static const struct {
	const char	*name;
	unsigned	 cp;
} mime_html_ents[] = {
	{ "amp", '&' }, { "lt", '<' }, { "gt", '>' }, { "quot", '"' },
	{ "apos", '\'' }, { "nbsp", ' ' }, { "copy", 0xa9 }, { "reg", 0xae },
	{ "euro", 0x20ac }, { "pound", 0xa3 }, { "ndash", 0x2013 },
	{ "mdash", 0x2014 }, { "hellip", 0x2026 }, { "lsquo", 0x2018 },
	{ "rsquo", 0x2019 }, { "ldquo", 0x201c }, { "rdquo", 0x201d },
	{ "bull", 0x2022 }, { "trade", 0x2122 }, { "laquo", 0xab },
	{ "raquo", 0xbb }, { "middot", 0xb7 }, { "deg", 0xb0 },
};

static int
mime_html_emit(struct mime_html *h, const char *s, size_t n)
{
	struct buf *o = h->out;
	char last;

	if (h->space) {
		h->space = 0;
		last = o->len > 0 ? o->data[o->len - 1] : '\n';
		if (last != '\n' && last != ' ' && buf_append(o, " ", 1) == -1)
			return -1;
	}
	return buf_append(o, s, n);
}

static int
mime_html_break(struct mime_html *h)
{
	struct buf *o = h->out;

	h->space = 0;
	if (o->len == 0 || o->data[o->len - 1] == '\n')
		return 0;
	return buf_append(o, "\n", 1);
}

/* &name; or &#N; or &#xH; at s[i]: its UTF-8 in d; offset past ';' or 0. */
static size_t
mime_html_entity(const char *s, size_t n, size_t i, char d[4], size_t *dl)
{
	unsigned long cp = 0;
	size_t j, k, semi;
	int hex, v;

	for (semi = i + 1; semi < n && semi - i <= 12 && s[semi] != ';'; semi++)
		;
	if (semi >= n || s[semi] != ';' || semi == i + 1)
		return 0;
	j = i + 1;
	if (s[j] == '#') {
		hex = j + 1 < semi && (s[j + 1] == 'x' || s[j + 1] == 'X');
		k = j + 1 + (hex ? 1 : 0);
		if (k == semi)
			return 0;
		for (; k < semi; k++) {
			v = mime_hex((unsigned char)s[k]);
			if (v < 0 || (!hex && v > 9))
				return 0;
			cp = cp * (hex ? 16 : 10) + (unsigned)v;
		}
		*dl = mime_utf8_put(d, cp);
		return semi + 1;
	}
	for (k = 0; k < sizeof(mime_html_ents) / sizeof(mime_html_ents[0]); k++)
		if (strlen(mime_html_ents[k].name) == semi - j &&
		    memcmp(mime_html_ents[k].name, s + j, semi - j) == 0) {
			*dl = mime_utf8_put(d, mime_html_ents[k].cp);
			return semi + 1;
		}
	return 0;
}

/*
 * A tag at s[i] ('<'): its lowercase name (maybe empty, for <! and <?),
 * whether it closes, and the offset of its '>'. Returns i when this '<' is
 * no tag, MIME_NOPOS when the tag is cut by the end of the text. Quotes
 * only count after '=', so a stray apostrophe does not eat the page.
 */
static size_t
mime_html_tag(const char *s, size_t n, size_t i, char *name, size_t namesz,
    int *close)
{
	const char *q;
	size_t j = i + 1, k, o = 0;
	char last = 0;
	int c;

	*close = 0;
	name[0] = '\0';
	if (j < n && s[j] == '/') {
		*close = 1;
		j++;
	}
	if (j >= n)
		return i;
	c = (unsigned char)s[j];
	if ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') {
		for (; j < n && o + 1 < namesz; j++, o++) {
			c = mime_lower((unsigned char)s[j]);
			if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')))
				break;
			name[o] = (char)c;
		}
		name[o] = '\0';
	} else if (*close || (c != '!' && c != '?'))
		return i;
	for (k = j; k < n; k++) {
		c = (unsigned char)s[k];
		if (c == '>')
			return k;
		if ((c == '"' || c == '\'') && last == '=') {
			if ((q = memchr(s + k + 1, c, n - k - 1)) == NULL)
				return MIME_NOPOS;
			k = (size_t)(q - s);
		}
		if (!mime_ws(c) && c != '\r' && c != '\n')
			last = (char)c;
	}
	return MIME_NOPOS;
}

/* Offset just past "</name ... >" from s[i], MIME_NOPOS if none. */
static size_t
mime_html_skip(const char *s, size_t n, size_t i, const char *name)
{
	const char *q, *gt;
	size_t nl = strlen(name);

	while (i < n && (q = memchr(s + i, '<', n - i)) != NULL) {
		i = (size_t)(q - s) + 1;
		if (n - i >= 1 + nl && s[i] == '/' &&
		    mime_caseeq(s + i + 1, name, nl)) {
			if ((gt = memchr(s + i, '>', n - i)) == NULL)
				return MIME_NOPOS;
			return (size_t)(gt - s) + 1;
		}
	}
	return MIME_NOPOS;
}

static int
mime_html(struct buf *out, const char *s, size_t n)
{
	struct mime_html h = { out, 0 };
	const char *q;
	char name[16], ent[4];
	size_t i = 0, j, k, dl;
	int close, c;

	/* stripped text is never longer than its source (plus one space) */
	if (buf_reserve(out, n + 1) == -1)
		return -1;
	while (i < n) {
		c = (unsigned char)s[i];
		if (c == '<') {
			if (n - i >= 4 && memcmp(s + i, "<!--", 4) == 0) {
				q = memmem(s + i + 4, n - i - 4, "-->", 3);
				if (q == NULL)
					goto raw;
				i = (size_t)(q - s) + 3;
				continue;
			}
			k = mime_html_tag(s, n, i, name, sizeof(name), &close);
			if (k == MIME_NOPOS)
				goto raw;
			if (k == i) {
				if (mime_html_emit(&h, "<", 1) == -1)
					return -1;
				i++;
				continue;
			}
			i = k + 1;
			if (name[0] == '\0')
				continue;
			switch (mime_html_kind(name)) {
			case MIME_HTML_SKIP:
				if (close)
					break;
				if ((k = mime_html_skip(s, n, i, name)) ==
				    MIME_NOPOS)
					goto raw;
				i = k;
				break;
			case MIME_HTML_CELL:
				h.space = 1;
				break;
			case MIME_HTML_BREAK:
				if (mime_html_break(&h) == -1)
					return -1;
				break;
			case MIME_HTML_INLINE:
				break;
			}
			continue;
		}
		if (c == '&') {
			if ((k = mime_html_entity(s, n, i, ent, &dl)) == 0) {
				k = i + 1;
				ent[0] = '&';
				dl = 1;
			}
			if (ent[0] == ' ' && dl == 1)
				h.space = 1;
			else if (mime_html_emit(&h, ent, dl) == -1)
				return -1;
			i = k;
			continue;
		}
		if (mime_ws(c) || c == '\r' || c == '\n' || c == '\f') {
			h.space = 1;
			i++;
			continue;
		}
		for (j = i + 1; j < n; j++) {
			c = (unsigned char)s[j];
			if (c == '<' || c == '&' || mime_ws(c) || c == '\r' ||
			    c == '\n' || c == '\f')
				break;
		}
		if (mime_html_emit(&h, s + i, j - i) == -1)
			return -1;
		i = j;
	}
	return 0;
raw:
	/* an unfinished construct: keep what follows rather than lose it */
	return mime_html_emit(&h, s + i, n - i);
}

/* Append with CRLF turned into LF. */
static int
mime_append_lf(struct buf *out, const char *s, size_t n)
{
	const char *cr;
	size_t k;

	if (buf_reserve(out, n) == -1)
		return -1;
	while (n > 0 && (cr = memchr(s, '\r', n)) != NULL) {
		k = (size_t)(cr - s);
		if (k + 1 < n && cr[1] == '\n') {
			memcpy(out->data + out->len, s, k);
			out->len += k;
		} else {
			memcpy(out->data + out->len, s, k + 1);
			out->len += k + 1;
		}
		s += k + 1;
		n -= k + 1;
	}
	memcpy(out->data + out->len, s, n);
	out->len += n;
	return 0;
}

static int
mime_build_text(struct mime_msg *m)
{
	struct buf dec = BUF_INIT, u8 = BUF_INIT;
	const struct mime_part *p;
	const char *s;
	size_t allow = m->budget, i, n, bound;
	unsigned fl = 0;
	int first = 1, rc = -1;

	for (i = 0; i < m->nparts; i++) {
		p = &m->parts[i];
		if (p->kind != MIME_K_TEXT)
			continue;
		if (m->text.len >= allow) {
			fl |= MIME_TRUNCATED;
			break;
		}
		if (!first && buf_append(&m->text, "\n", 1) == -1)
			goto done;
		first = 0;
		s = p->body;
		n = p->bodylen;
		if (p->cte != MIME_CTE_IDENTITY) {
			bound = p->cte == MIME_CTE_BASE64 ? n / 4 * 3 + 3 : n;
			buf_reset(&dec);
			if (buf_reserve(&dec, bound) == -1)
				goto done;
			if (p->cte == MIME_CTE_BASE64)
				dec.len = mime_b64_decode(s, n, dec.data, bound,
				    &fl);
			else
				dec.len = mime_qp_decode(s, n, dec.data, bound,
				    &fl);
			s = dec.data;
			n = dec.len;
		}
		if (!mime_is_utf8(p->charset, s, n)) {
			buf_reset(&u8);
			if (mime_to_utf8(&m->conv, &u8, p->charset,
			    p->charset ? strlen(p->charset) : 0, s, n,
			    &fl) == -1)
				goto done;
			s = u8.data ? u8.data : "";
			n = u8.len;
		}
		if ((p->html ? mime_html(&m->text, s, n) :
		    mime_append_lf(&m->text, s, n)) == -1)
			goto done;
		if (m->text.len > allow) {
			/* cut, but not inside a UTF-8 sequence */
			m->text.len = allow;
			while (m->text.len > 0 &&
			    ((unsigned char)m->text.data[m->text.len] & 0xc0) ==
			    0x80)
				m->text.len--;
			fl |= MIME_TRUNCATED;
			break;
		}
	}
	if (buf_cstr(&m->text) == NULL)
		goto done;
	m->budget -= m->text.len < m->budget ? m->text.len : m->budget;
	mime_flag(m, fl);
	rc = 0;
done:
	buf_free(&dec);
	buf_free(&u8);
	return rc;
}

static int
mime_list_attachments(struct mime_msg *m)
{
	struct mime_attachment *a;
	const struct mime_part *p;
	size_t i, n = 0;

	for (i = 0; i < m->nparts; i++)
		if (m->parts[i].kind == MIME_K_ATTACH ||
		    m->parts[i].kind == MIME_K_MESSAGE)
			n++;
	if (n == 0)
		return 0;
	if ((m->atts = calloc(n, sizeof(*m->atts))) == NULL)
		return -1;
	for (i = 0; i < m->nparts; i++) {
		p = &m->parts[i];
		if (p->kind != MIME_K_ATTACH && p->kind != MIME_K_MESSAGE)
			continue;
		a = &m->atts[m->natts++];
		a->filename = p->filename;
		a->filename_len = p->filename_len;
		a->content_type = p->ctype;
		a->content = p->content ? p->content : "";
		a->size = p->size;
		a->depth = p->depth;
		a->message = p->kind == MIME_K_MESSAGE;
	}
	return 0;
}

/* Public interface */

void
mime_limits_default(struct mime_limits *lim)
{
	struct mime_limits def = MIME_LIMITS_DEFAULT;

	*lim = def;
}

struct mime_msg *
mime_parse(const char *data, size_t len, const struct mime_limits *lim)
{
	struct mime_msg *m;
	struct mime_scan *sc;

	if ((m = calloc(1, sizeof(*m))) == NULL)
		return NULL;
	m->data = data ? data : "";
	m->len = data ? len : 0;
	if (lim != NULL)
		m->lim = *lim;
	else
		mime_limits_default(&m->lim);
	if (m->lim.max_depth > MIME_DEPTH_CAP)
		m->lim.max_depth = MIME_DEPTH_CAP;
	if (m->lim.max_parts == 0)
		m->lim.max_parts = 1;
	if (m->lim.max_decoded == 0)
		m->budget = m->len > SIZE_MAX / 4 ? SIZE_MAX : m->len * 4;
	else
		m->budget = m->lim.max_decoded;
	buf_init(&m->hvals);
	buf_init(&m->scratch);
	buf_init(&m->pbuf);
	buf_init(&m->subj);
	buf_init(&m->text);
	mime_conv_init(&m->conv);

	if ((sc = calloc(1, sizeof(*sc))) == NULL) {
		mime_free(m);
		return NULL;
	}
	sc->p = m->data;
	sc->len = m->len;
	sc->hit = -1;
	mime_entity(m, sc, 0, 0);
	free(sc);
	if (m->oom || mime_list_attachments(m) == -1) {
		mime_free(m);
		return NULL;
	}
	/* only what text() and subject() need from here on */
	buf_free(&m->scratch);
	buf_free(&m->pbuf);
	return m;
}

void
mime_free(struct mime_msg *m)
{
	struct mime_chunk *c, *next;

	if (m == NULL)
		return;
	for (c = m->arena; c != NULL; c = next) {
		next = c->next;
		free(c);
	}
	free(m->hdrs);
	free(m->parts);
	free(m->atts);
	buf_free(&m->hvals);
	buf_free(&m->scratch);
	buf_free(&m->pbuf);
	buf_free(&m->subj);
	buf_free(&m->text);
	mime_conv_close(&m->conv);
	free(m);
}

unsigned
mime_flags(const struct mime_msg *m)
{
	return m->flags;
}

static const struct {
	unsigned	 bit;
	const char	*name;
} mime_flagnames[] = {
	{ MIME_TRUNCATED,	"truncated" },
	{ MIME_DEPTH,		"depth" },
	{ MIME_PARTS,		"parts" },
	{ MIME_HEADERS,		"headers" },
	{ MIME_MALFORMED,	"malformed" },
	{ MIME_BAD_HEADER,	"bad_header" },
	{ MIME_NO_BOUNDARY,	"no_boundary" },
	{ MIME_NO_DELIM,	"no_delimiter" },
	{ MIME_UNCLOSED,	"unclosed" },
	{ MIME_BAD_BASE64,	"bad_base64" },
	{ MIME_BAD_QP,		"bad_qp" },
	{ MIME_BAD_CHARSET,	"bad_charset" },
	{ MIME_BARE_LF,		"bare_lf" },
};

const char *
mime_strflags(unsigned flags, char *dst, size_t dstsz)
{
	size_t i, o = 0;
	int r;

	if (dstsz == 0)
		return dst;
	dst[0] = '\0';
	if (flags == 0) {
		snprintf(dst, dstsz, "none");
		return dst;
	}
	for (i = 0; i < sizeof(mime_flagnames) / sizeof(mime_flagnames[0]);
	    i++) {
		if (!(flags & mime_flagnames[i].bit))
			continue;
		r = snprintf(dst + o, dstsz - o, "%s%s", o ? "," : "",
		    mime_flagnames[i].name);
		if (r < 0 || (size_t)r >= dstsz - o) {
			dst[o] = '\0';		/* whole names only */
			break;
		}
		o += (size_t)r;
	}
	return dst;
}

size_t
mime_header_count(const struct mime_msg *m, const char *name)
{
	size_t i, n = 0, nl = strlen(name);

	for (i = 0; i < m->nhdrs; i++)
		if (m->hdrs[i].namelen == nl &&
		    mime_caseeq(m->hdrs[i].name, name, nl))
			n++;
	return n;
}

const char *
mime_header(const struct mime_msg *m, const char *name, size_t index,
    size_t *len)
{
	size_t i, nl = strlen(name);

	for (i = 0; i < m->nhdrs; i++) {
		if (m->hdrs[i].namelen != nl ||
		    !mime_caseeq(m->hdrs[i].name, name, nl) || index-- > 0)
			continue;
		if (len != NULL)
			*len = m->hdrs[i].len;
		return m->hvals.data + m->hdrs[i].off;
	}
	return NULL;
}

size_t
mime_nheaders(const struct mime_msg *m)
{
	return m->nhdrs;
}

const char *
mime_header_at(const struct mime_msg *m, size_t i, const char **name,
    size_t *namelen, size_t *len)
{
	if (i >= m->nhdrs)
		return NULL;
	if (name != NULL)
		*name = m->hdrs[i].name;
	if (namelen != NULL)
		*namelen = m->hdrs[i].namelen;
	if (len != NULL)
		*len = m->hdrs[i].len;
	return m->hvals.data + m->hdrs[i].off;
}

const char *
mime_subject(struct mime_msg *m, size_t *len)
{
	const char *v;
	size_t vl;
	unsigned fl = 0;

	if (!m->subj_done) {
		if ((v = mime_header(m, "subject", 0, &vl)) != NULL) {
			buf_reset(&m->subj);
			if (mime_2047(&m->conv, &m->subj, v, vl, &fl) == -1 ||
			    buf_cstr(&m->subj) == NULL)
				return NULL;
			m->has_subj = 1;
		}
		m->subj_done = 1;
	}
	if (!m->has_subj)
		return NULL;
	if (len != NULL)
		*len = m->subj.len;
	return m->subj.data;
}

const char *
mime_text(struct mime_msg *m, size_t *len)
{
	if (!m->text_done) {
		buf_reset(&m->text);
		if (mime_build_text(m) == -1)
			return NULL;
		m->text_done = 1;
	}
	if (len != NULL)
		*len = m->text.len;
	return m->text.data;
}

size_t
mime_nattachments(const struct mime_msg *m)
{
	return m->natts;
}

const struct mime_attachment *
mime_attachment(const struct mime_msg *m, size_t i)
{
	return i < m->natts ? &m->atts[i] : NULL;
}

size_t
mime_nparts(const struct mime_msg *m)
{
	return m->nparts;
}

int
mime_decode_header(struct buf *out, const char *s, size_t len)
{
	struct mime_conv cv;
	unsigned fl = 0;
	int rc;

	mime_conv_init(&cv);
	rc = mime_2047(&cv, out, s, len, &fl);
	mime_conv_close(&cv);
	return rc;
}
