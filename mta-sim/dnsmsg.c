/*
 * dnsmsg: DNS messages in and out (see dnsmsg.h for the rules a parsed
 * message has passed).
 *
 * A name is read into its uncompressed wire form while the reader keeps
 * two bounds: `end` for the bytes met before any pointer (the name must
 * not run out of its record's data) and the message length once a
 * pointer was followed. The builder compresses names against the
 * suffixes it has already written, one table per message.
 */
#include "dnsmsg.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define DNSMSG_QD_MIN		5	/* root name, type, class */
#define DNSMSG_RR_MIN		11	/* root name, type, class, TTL, RDLENGTH */
#define DNSMSG_PTR_LIMIT	0x4000	/* offsets a pointer can reach */
#define DNSMSG_COMP_MAX		128	/* suffixes remembered for compression */

static uint16_t
dnsmsg_get16(const unsigned char *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static uint32_t
dnsmsg_get32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	    (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

static void
dnsmsg_put16(unsigned char *p, uint16_t v)
{
	p[0] = (unsigned char)(v >> 8);
	p[1] = (unsigned char)v;
}

static void
dnsmsg_put32(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)(v >> 24);
	p[1] = (unsigned char)(v >> 16);
	p[2] = (unsigned char)(v >> 8);
	p[3] = (unsigned char)v;
}

/* ---- names ---- */

/*
 * Does wire[0..len) hold labels of 1-63 octets ending in exactly one root
 * label at len - 1? Guards the builder and text form against a name that
 * was filled in by hand.
 */
static int
dnsmsg_name_valid(const struct dnsmsg_name *n)
{
	size_t off = 0;

	if (n->len == 0 || n->len > DNSMSG_NAME_MAX)
		return 0;
	while (off < n->len) {
		unsigned char l = n->wire[off];

		if (l == 0)
			return off + 1 == n->len;
		if (l > DNSMSG_LABEL_MAX || off + 1 + l >= n->len)
			return 0;
		off += 1 + (size_t)l;
	}
	return 0;
}

/*
 * Read the name at *off into out. Bytes before the first pointer must lie
 * below end; after a pointer, anywhere in m[0..len). *off moves past the
 * name as it appears at *off (past the first pointer, if any).
 */
static int
dnsmsg_read_name(const unsigned char *m, size_t len, size_t end, size_t *off,
    struct dnsmsg_name *out, const char **err)
{
	size_t pos = *off, ptr;
	unsigned hops = 0;
	int jumped = 0;
	unsigned char c;

	out->len = 0;
	for (;;) {
		if (pos >= end) {
			*err = "name runs past the end of its data";
			return -1;
		}
		c = m[pos];
		if ((c & 0xc0) == 0xc0) {
			if (pos + 1 >= end) {
				*err = "truncated compression pointer";
				return -1;
			}
			ptr = (size_t)(c & 0x3f) << 8 | m[pos + 1];
			if (!jumped)
				*off = pos + 2;
			if (++hops > DNSMSG_PTR_MAX) {
				*err = "too many compression pointers (loop)";
				return -1;
			}
			if (ptr < DNSMSG_HDR_LEN || ptr >= len) {
				*err = "compression pointer out of range";
				return -1;
			}
			pos = ptr;
			end = len;
			jumped = 1;
			continue;
		}
		if ((c & 0xc0) != 0) {
			*err = "unsupported label type";
			return -1;
		}
		if (c == 0) {
			if (out->len + 1 > DNSMSG_NAME_MAX) {
				*err = "name longer than 255 octets";
				return -1;
			}
			out->wire[out->len++] = 0;
			if (!jumped)
				*off = pos + 1;
			return 0;
		}
		if (c > end - pos - 1) {
			*err = "label runs past the end of its data";
			return -1;
		}
		/* Room for this label and, at least, the root after it. */
		if (out->len + 1 + c + 1 > DNSMSG_NAME_MAX) {
			*err = "name longer than 255 octets";
			return -1;
		}
		memcpy(out->wire + out->len, m + pos, 1 + (size_t)c);
		out->len += 1 + (size_t)c;
		pos += 1 + (size_t)c;
	}
}

static int
dnsmsg_name_char_plain(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '*' ||
	    c == '/';
}

int
dnsmsg_name_to_text(const struct dnsmsg_name *n, char *dst, size_t dstsz)
{
	size_t off = 0, o = 0, i;
	unsigned char l, c;

	if (dstsz == 0 || !dnsmsg_name_valid(n))
		return -1;
	if (n->len == 1) {
		if (dstsz < 2)
			return -1;
		memcpy(dst, ".", 2);
		return 0;
	}
	while ((l = n->wire[off]) != 0) {
		if (off > 0) {
			if (o + 1 >= dstsz)
				return -1;
			dst[o++] = '.';
		}
		for (i = 1; i <= l; i++) {
			c = n->wire[off + i];
			if (dnsmsg_name_char_plain(c)) {
				if (o + 1 >= dstsz)
					return -1;
				dst[o++] = (char)c;
			} else if (c > 0x20 && c < 0x7f) {
				if (o + 2 >= dstsz)
					return -1;
				dst[o++] = '\\';
				dst[o++] = (char)c;
			} else {
				if (o + 4 >= dstsz)
					return -1;
				snprintf(dst + o, 5, "\\%03u", (unsigned)c);
				o += 4;
			}
		}
		off += 1 + (size_t)l;
	}
	dst[o] = '\0';
	return 0;
}

int
dnsmsg_name_from_text(struct dnsmsg_name *n, const char *s, const char **err)
{
	size_t lstart = 0, llen = 0, i;
	unsigned v;

	n->len = 0;
	if (s[0] == '\0') {
		*err = "empty name";
		return -1;
	}
	if (strcmp(s, ".") == 0) {
		n->wire[0] = 0;
		n->len = 1;
		return 0;
	}
	/* wire[lstart] is the length octet of the label being read. */
	n->wire[0] = 0;
	n->len = 1;
	for (i = 0; s[i] != '\0'; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '.') {
			if (llen == 0) {
				*err = "empty label";
				return -1;
			}
			n->wire[lstart] = (unsigned char)llen;
			if (s[i + 1] == '\0')
				break;
			if (n->len + 1 > DNSMSG_NAME_MAX - 1) {
				*err = "name longer than 255 octets";
				return -1;
			}
			lstart = n->len++;
			n->wire[lstart] = 0;
			llen = 0;
			continue;
		}
		if (c == '\\') {
			if (isdigit((unsigned char)s[i + 1])) {
				if (!isdigit((unsigned char)s[i + 2]) ||
				    !isdigit((unsigned char)s[i + 3])) {
					*err = "bad \\DDD escape";
					return -1;
				}
				v = (unsigned)(s[i + 1] - '0') * 100 +
				    (unsigned)(s[i + 2] - '0') * 10 +
				    (unsigned)(s[i + 3] - '0');
				if (v > 255) {
					*err = "bad \\DDD escape";
					return -1;
				}
				c = (unsigned char)v;
				i += 3;
			} else if (s[i + 1] != '\0' &&
			    (unsigned char)s[i + 1] > 0x20 &&
			    (unsigned char)s[i + 1] < 0x7f) {
				c = (unsigned char)s[++i];
			} else {
				*err = "bad escape";
				return -1;
			}
		} else if (c <= 0x20 || c >= 0x7f) {
			*err = "space or control octet in a name (use \\DDD)";
			return -1;
		}
		if (llen == DNSMSG_LABEL_MAX) {
			*err = "label longer than 63 octets";
			return -1;
		}
		/* This octet, and still the root label after it. */
		if (n->len + 1 > DNSMSG_NAME_MAX - 1) {
			*err = "name longer than 255 octets";
			return -1;
		}
		n->wire[n->len++] = c;
		llen++;
	}
	if (llen == 0) {
		*err = "empty label";
		return -1;
	}
	n->wire[lstart] = (unsigned char)llen;
	n->wire[n->len++] = 0;
	return 0;
}

int
dnsmsg_name_eq(const struct dnsmsg_name *a, const struct dnsmsg_name *b)
{
	size_t i;

	if (a->len != b->len)
		return 0;
	/* Length octets are below 64, so no letter: fold everything. */
	for (i = 0; i < a->len; i++)
		if (tolower(a->wire[i]) != tolower(b->wire[i]))
			return 0;
	return 1;
}

size_t
dnsmsg_name_labels(const struct dnsmsg_name *n)
{
	size_t off = 0, k = 0;

	while (off < n->len && n->wire[off] != 0) {
		off += 1 + (size_t)n->wire[off];
		k++;
	}
	return k;
}

int
dnsmsg_name_under(const struct dnsmsg_name *name,
    const struct dnsmsg_name *zone)
{
	size_t off = 0;

	/* Walk label boundaries only: "xexample.com" is not under "example.com". */
	while (off < name->len) {
		if (name->len - off == zone->len) {
			size_t i;

			for (i = 0; i < zone->len; i++)
				if (tolower(name->wire[off + i]) !=
				    tolower(zone->wire[i]))
					return 0;
			return 1;
		}
		if (name->len - off < zone->len || name->wire[off] == 0)
			return 0;
		off += 1 + (size_t)name->wire[off];
	}
	return 0;
}

/* ---- types ---- */

static const struct {
	uint16_t	 type;
	const char	*name;
} dnsmsg_types[] = {
	{ DNSMSG_T_A, "A" },
	{ DNSMSG_T_NS, "NS" },
	{ DNSMSG_T_CNAME, "CNAME" },
	{ DNSMSG_T_SOA, "SOA" },
	{ DNSMSG_T_PTR, "PTR" },
	{ DNSMSG_T_MX, "MX" },
	{ DNSMSG_T_TXT, "TXT" },
	{ DNSMSG_T_AAAA, "AAAA" },
	{ DNSMSG_T_OPT, "OPT" },
	{ DNSMSG_T_ANY, "ANY" }
};

const char *
dnsmsg_type_name(uint16_t type)
{
	size_t i;

	for (i = 0; i < sizeof(dnsmsg_types) / sizeof(dnsmsg_types[0]); i++)
		if (dnsmsg_types[i].type == type)
			return dnsmsg_types[i].name;
	return NULL;
}

int
dnsmsg_type_parse(const char *s, uint16_t *type)
{
	unsigned long v;
	char *end;
	size_t i;

	for (i = 0; i < sizeof(dnsmsg_types) / sizeof(dnsmsg_types[0]); i++)
		if (strcasecmp(s, dnsmsg_types[i].name) == 0) {
			*type = dnsmsg_types[i].type;
			return 0;
		}
	/* RFC 3597's generic form. */
	if (strncasecmp(s, "TYPE", 4) != 0 || !isdigit((unsigned char)s[4]))
		return -1;
	errno = 0;
	v = strtoul(s + 4, &end, 10);
	if (errno != 0 || *end != '\0' || v > 65535)
		return -1;
	*type = (uint16_t)v;
	return 0;
}

const char *
dnsmsg_rcode_name(unsigned rcode)
{
	static const char *const names[] = {
		"NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED"
	};

	return rcode < sizeof(names) / sizeof(names[0]) ? names[rcode] :
	    "RCODE?";
}

/* ---- parsing ---- */

int
dnsmsg_peek(const unsigned char *p, size_t len, uint16_t *id, uint16_t *flags)
{
	if (p == NULL || len < DNSMSG_HDR_LEN)
		return -1;
	*id = dnsmsg_get16(p);
	*flags = dnsmsg_get16(p + 2);
	return 0;
}

/* RDATA of rr at m[off..off+rdlen), already inside the message. */
static int
dnsmsg_read_rdata(const unsigned char *m, size_t len, size_t off,
    size_t rdlen, struct dnsmsg_rr *rr, const char **err)
{
	size_t end = off + rdlen, p = off;
	struct dnsmsg_soa *soa = &rr->rd.soa;

	if (rr->class != DNSMSG_C_IN)
		goto raw;
	switch (rr->type) {
	case DNSMSG_T_A:
		if (rdlen != sizeof(rr->rd.a))
			goto badlen;
		memcpy(rr->rd.a, m + off, sizeof(rr->rd.a));
		return 0;
	case DNSMSG_T_AAAA:
		if (rdlen != sizeof(rr->rd.aaaa))
			goto badlen;
		memcpy(rr->rd.aaaa, m + off, sizeof(rr->rd.aaaa));
		return 0;
	case DNSMSG_T_MX:
		if (rdlen < 3)
			goto badlen;
		rr->rd.mx.pref = dnsmsg_get16(m + off);
		p += 2;
		if (dnsmsg_read_name(m, len, end, &p, &rr->rd.mx.host, err) == -1)
			return -1;
		break;
	case DNSMSG_T_PTR:
	case DNSMSG_T_NS:
	case DNSMSG_T_CNAME:
		if (dnsmsg_read_name(m, len, end, &p, &rr->rd.target, err) == -1)
			return -1;
		break;
	case DNSMSG_T_SOA:
		if (dnsmsg_read_name(m, len, end, &p, &soa->mname, err) == -1 ||
		    dnsmsg_read_name(m, len, end, &p, &soa->rname, err) == -1)
			return -1;
		if (end - p != 20)
			goto badlen;
		soa->serial = dnsmsg_get32(m + p);
		soa->refresh = dnsmsg_get32(m + p + 4);
		soa->retry = dnsmsg_get32(m + p + 8);
		soa->expire = dnsmsg_get32(m + p + 12);
		soa->minimum = dnsmsg_get32(m + p + 16);
		return 0;
	default:
		goto raw;
	}
	if (p != end)
		goto badlen;
	return 0;
raw:
	rr->rd.raw.data = m + off;
	rr->rd.raw.len = (uint16_t)rdlen;
	return 0;
badlen:
	*err = "record data length does not fit its type";
	return -1;
}

static int
dnsmsg_read_rr(const unsigned char *m, size_t len, size_t *off,
    struct dnsmsg_rr *rr, const char **err)
{
	size_t rdlen;

	if (dnsmsg_read_name(m, len, len, off, &rr->name, err) == -1)
		return -1;
	if (len - *off < 10) {
		*err = "truncated record";
		return -1;
	}
	rr->type = dnsmsg_get16(m + *off);
	rr->class = dnsmsg_get16(m + *off + 2);
	rr->ttl = dnsmsg_get32(m + *off + 4);
	rdlen = dnsmsg_get16(m + *off + 8);
	*off += 10;
	if (rdlen > len - *off) {
		*err = "record data runs past the end of the message";
		return -1;
	}
	if (dnsmsg_read_rdata(m, len, *off, rdlen, rr, err) == -1)
		return -1;
	*off += rdlen;
	return 0;
}

int
dnsmsg_parse(struct dnsmsg *m, const unsigned char *p, size_t len,
    const char **err)
{
	size_t qd, an, ns, ar, nrr, off = DNSMSG_HDR_LEN, i;

	memset(m, 0, sizeof(*m));
	if (p == NULL || len < DNSMSG_HDR_LEN) {
		*err = "message shorter than its header";
		return -1;
	}
	if (len > DNSMSG_MSG_MAX) {
		*err = "message longer than 65535 octets";
		return -1;
	}
	m->id = dnsmsg_get16(p);
	m->flags = dnsmsg_get16(p + 2);
	qd = dnsmsg_get16(p + 4);
	an = dnsmsg_get16(p + 6);
	ns = dnsmsg_get16(p + 8);
	ar = dnsmsg_get16(p + 10);
	nrr = an + ns + ar;
	if (qd > DNSMSG_QD_MAX) {
		*err = "too many questions";
		goto fail;
	}
	if (nrr > DNSMSG_RR_MAX) {
		*err = "too many records";
		goto fail;
	}
	/* Both bounded above, so this cannot overflow. */
	if (qd * DNSMSG_QD_MIN + nrr * DNSMSG_RR_MIN > len - DNSMSG_HDR_LEN) {
		*err = "section counts larger than the message";
		goto fail;
	}
	m->owned = 1;
	if (qd > 0 && (m->qd = calloc(qd, sizeof(*m->qd))) == NULL) {
		*err = "out of memory";
		goto fail;
	}
	if (nrr > 0 && (m->rr = calloc(nrr, sizeof(*m->rr))) == NULL) {
		*err = "out of memory";
		goto fail;
	}
	for (i = 0; i < qd; i++) {
		struct dnsmsg_question *q = &m->qd[i];

		if (dnsmsg_read_name(p, len, len, &off, &q->name, err) == -1)
			goto fail;
		if (len - off < 4) {
			*err = "truncated question";
			goto fail;
		}
		q->type = dnsmsg_get16(p + off);
		q->class = dnsmsg_get16(p + off + 2);
		off += 4;
		m->nqd++;
	}
	for (i = 0; i < nrr; i++)
		if (dnsmsg_read_rr(p, len, &off, &m->rr[i], err) == -1)
			goto fail;
	if (off != len) {
		*err = "octets after the last record";
		goto fail;
	}
	m->nan = an;
	m->nns = ns;
	m->nar = ar;
	return 0;
fail:
	dnsmsg_clear(m);
	return -1;
}

void
dnsmsg_clear(struct dnsmsg *m)
{
	if (m->owned) {
		free(m->qd);
		free(m->rr);
	}
	memset(m, 0, sizeof(*m));
}

/* ---- building ---- */

struct dnsmsg_wr {
	unsigned char	*p;
	size_t		 cap, len;
	const char	*err;
	/* Suffixes written so far: where, and their (uncompressed) form. */
	struct {
		size_t			 off;
		const unsigned char	*wire;
		size_t			 len;
	}		 comp[DNSMSG_COMP_MAX];
	size_t		 ncomp;
};

static int
dnsmsg_wr_room(struct dnsmsg_wr *w, size_t n)
{
	if (n > w->cap - w->len) {
		w->err = "message too long";
		return -1;
	}
	return 0;
}

static int
dnsmsg_wr_bytes(struct dnsmsg_wr *w, const void *p, size_t n)
{
	if (dnsmsg_wr_room(w, n) == -1)
		return -1;
	if (n == 0)
		return 0;	/* p may be NULL: empty raw data */
	memcpy(w->p + w->len, p, n);
	w->len += n;
	return 0;
}

static int
dnsmsg_wr_16(struct dnsmsg_wr *w, uint16_t v)
{
	if (dnsmsg_wr_room(w, 2) == -1)
		return -1;
	dnsmsg_put16(w->p + w->len, v);
	w->len += 2;
	return 0;
}

static int
dnsmsg_wr_32(struct dnsmsg_wr *w, uint32_t v)
{
	if (dnsmsg_wr_room(w, 4) == -1)
		return -1;
	dnsmsg_put32(w->p + w->len, v);
	w->len += 4;
	return 0;
}

/* An earlier suffix equal to wire[0..len), or -1. */
static long
dnsmsg_wr_find(const struct dnsmsg_wr *w, const unsigned char *wire,
    size_t len)
{
	size_t i;

	/* Exact octets: a pointer must not change the spelling of a name. */
	for (i = 0; i < w->ncomp; i++)
		if (w->comp[i].len == len &&
		    memcmp(w->comp[i].wire, wire, len) == 0)
			return (long)w->comp[i].off;
	return -1;
}

/*
 * n, compressed against what was written before. The name must stay
 * alive until dnsmsg_build() returns (the table points into it).
 */
static int
dnsmsg_wr_name(struct dnsmsg_wr *w, const struct dnsmsg_name *n)
{
	size_t start = w->len, off = 0, lit;
	long at = -1;

	if (!dnsmsg_name_valid(n)) {
		w->err = "malformed name";
		return -1;
	}
	/* The longest suffix already written (the root never is). */
	while (n->wire[off] != 0) {
		if ((at = dnsmsg_wr_find(w, n->wire + off, n->len - off)) != -1)
			break;
		off += 1 + (size_t)n->wire[off];
	}
	lit = at != -1 ? off : n->len;
	if (dnsmsg_wr_room(w, lit + (at != -1 ? 2 : 0)) == -1)
		return -1;
	memcpy(w->p + w->len, n->wire, lit);
	w->len += lit;
	if (at != -1) {
		dnsmsg_put16(w->p + w->len, (uint16_t)(0xc000 | at));
		w->len += 2;
	}
	/* Remember the new suffixes that a pointer can reach. */
	for (off = 0; off < lit && n->wire[off] != 0;
	    off += 1 + (size_t)n->wire[off]) {
		if (w->ncomp == DNSMSG_COMP_MAX || start + off >= DNSMSG_PTR_LIMIT)
			break;
		w->comp[w->ncomp].off = start + off;
		w->comp[w->ncomp].wire = n->wire + off;
		w->comp[w->ncomp].len = n->len - off;
		w->ncomp++;
	}
	return 0;
}

static int
dnsmsg_wr_rdata(struct dnsmsg_wr *w, const struct dnsmsg_rr *rr)
{
	const struct dnsmsg_soa *soa = &rr->rd.soa;

	if (rr->class != DNSMSG_C_IN)
		goto raw;
	switch (rr->type) {
	case DNSMSG_T_A:
		return dnsmsg_wr_bytes(w, rr->rd.a, sizeof(rr->rd.a));
	case DNSMSG_T_AAAA:
		return dnsmsg_wr_bytes(w, rr->rd.aaaa, sizeof(rr->rd.aaaa));
	case DNSMSG_T_MX:
		if (dnsmsg_wr_16(w, rr->rd.mx.pref) == -1)
			return -1;
		return dnsmsg_wr_name(w, &rr->rd.mx.host);
	case DNSMSG_T_PTR:
	case DNSMSG_T_NS:
	case DNSMSG_T_CNAME:
		return dnsmsg_wr_name(w, &rr->rd.target);
	case DNSMSG_T_SOA:
		if (dnsmsg_wr_name(w, &soa->mname) == -1 ||
		    dnsmsg_wr_name(w, &soa->rname) == -1 ||
		    dnsmsg_wr_32(w, soa->serial) == -1 ||
		    dnsmsg_wr_32(w, soa->refresh) == -1 ||
		    dnsmsg_wr_32(w, soa->retry) == -1 ||
		    dnsmsg_wr_32(w, soa->expire) == -1 ||
		    dnsmsg_wr_32(w, soa->minimum) == -1)
			return -1;
		return 0;
	default:
		break;
	}
raw:
	if (rr->rd.raw.len > 0 && rr->rd.raw.data == NULL) {
		w->err = "raw record data missing";
		return -1;
	}
	return dnsmsg_wr_bytes(w, rr->rd.raw.data, rr->rd.raw.len);
}

static int
dnsmsg_wr_rr(struct dnsmsg_wr *w, const struct dnsmsg_rr *rr)
{
	size_t lenat, rdstart;

	if (dnsmsg_wr_name(w, &rr->name) == -1 ||
	    dnsmsg_wr_16(w, rr->type) == -1 ||
	    dnsmsg_wr_16(w, rr->class) == -1 ||
	    dnsmsg_wr_32(w, rr->ttl) == -1)
		return -1;
	lenat = w->len;
	if (dnsmsg_wr_16(w, 0) == -1)
		return -1;
	rdstart = w->len;
	if (dnsmsg_wr_rdata(w, rr) == -1)
		return -1;
	/* cap <= DNSMSG_MSG_MAX, so RDLENGTH fits. */
	dnsmsg_put16(w->p + lenat, (uint16_t)(w->len - rdstart));
	return 0;
}

int
dnsmsg_build(const struct dnsmsg *m, unsigned char *out, size_t cap,
    size_t *outlen, const char **err)
{
	struct dnsmsg_wr *w;
	size_t nrr = m->nan + m->nns + m->nar, i;
	int rc = -1;

	*outlen = 0;
	if (m->nqd > 0xffff || m->nan > 0xffff || m->nns > 0xffff ||
	    m->nar > 0xffff) {
		*err = "more than 65535 entries in a section";
		return -1;
	}
	if ((m->nqd > 0 && m->qd == NULL) || (nrr > 0 && m->rr == NULL)) {
		*err = "section entries missing";
		return -1;
	}
	/* The compression table is too big for a careless stack. */
	if ((w = calloc(1, sizeof(*w))) == NULL) {
		*err = "out of memory";
		return -1;
	}
	w->p = out;
	w->cap = cap < DNSMSG_MSG_MAX ? cap : DNSMSG_MSG_MAX;
	if (dnsmsg_wr_16(w, m->id) == -1 || dnsmsg_wr_16(w, m->flags) == -1 ||
	    dnsmsg_wr_16(w, (uint16_t)m->nqd) == -1 ||
	    dnsmsg_wr_16(w, (uint16_t)m->nan) == -1 ||
	    dnsmsg_wr_16(w, (uint16_t)m->nns) == -1 ||
	    dnsmsg_wr_16(w, (uint16_t)m->nar) == -1)
		goto done;
	for (i = 0; i < m->nqd; i++)
		if (dnsmsg_wr_name(w, &m->qd[i].name) == -1 ||
		    dnsmsg_wr_16(w, m->qd[i].type) == -1 ||
		    dnsmsg_wr_16(w, m->qd[i].class) == -1)
			goto done;
	for (i = 0; i < nrr; i++)
		if (dnsmsg_wr_rr(w, &m->rr[i]) == -1)
			goto done;
	*outlen = w->len;
	rc = 0;
done:
	if (rc == -1)
		*err = w->err;
	free(w);
	return rc;
}
