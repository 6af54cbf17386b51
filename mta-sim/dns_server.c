/*
 * dns_server: an authoritative DNS server with scriptable faults (see
 * dns_server.h for what it answers and docs/dns-sim.md for the zone
 * format).
 *
 * One UDP socket and one TCP listener share the port. Every query,
 * whichever transport brought it, goes through dnssrv_handle(), which
 * parses it with dnsmsg, decides the answer (fault or zone lookup) and
 * builds it into srv->wbuf; the transport then sends it now or, with a
 * delay fault, from a timer. A delayed TCP answer names its connection by
 * id, not by pointer: the client may have gone when the timer fires.
 */
#include "dns_server.h"

#include <sys/queue.h>
#include <sys/socket.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>

#include "buf.h"
#include "dnsmsg.h"
#include "log.h"
#include "netaddr.h"

#define DNSSRV_EXIT_USAGE	2
#define DNSSRV_LINE_MAX		4096	/* zone text line, without newline */
#define DNSSRV_RECORDS_MAX	10000
#define DNSSRV_FAULTS_MAX	1000
#define DNSSRV_ZONE_FILE_MAX	(16 * 1024 * 1024)
#define DNSSRV_TTL_MAX		2147483647u	/* RFC 2181 section 8 */
#define DNSSRV_DELAY_MAX	600000u		/* ms */
#define DNSSRV_EDNS_SIZE	1232		/* what we offer and accept at most */
#define DNSSRV_CONNS_MAX	64
#define DNSSRV_TCP_IDLE		30		/* seconds */
#define DNSSRV_TCP_OUT_MAX	(256 * 1024)	/* unread answers before we hang up */
#define DNSSRV_PENDING_MAX	1024		/* delayed answers */
#define DNSSRV_UDP_BURST	64		/* datagrams per wake-up */
#define DNSSRV_BIND_TRIES	32

enum dnssrv_kind {
	DNSSRV_ANSWER = 0,	/* no fault: answer from the zone */
	DNSSRV_SERVFAIL,
	DNSSRV_NXDOMAIN,
	DNSSRV_REFUSED,
	DNSSRV_DROP,
	DNSSRV_TRUNCATE
};

static const char *const dnssrv_kind_names[] = {
	[DNSSRV_ANSWER] = "none",
	[DNSSRV_SERVFAIL] = "servfail",
	[DNSSRV_NXDOMAIN] = "nxdomain",
	[DNSSRV_REFUSED] = "refused",
	[DNSSRV_DROP] = "drop",
	[DNSSRV_TRUNCATE] = "truncate"
};

#define DNSSRV_NKINDS	(sizeof(dnssrv_kind_names) / sizeof(dnssrv_kind_names[0]))

struct dnssrv_fault {
	int			any_name;
	struct dnsmsg_name	name;
	uint16_t		type;		/* 0: every type */
	enum dnssrv_kind	kind;
	unsigned		delay_ms;
};

struct dnssrv_faults {
	struct dnssrv_fault	*v;
	size_t			 n;
};

/* What one zone text gave: records and its $FAULT lines. */
struct dnssrv_zone {
	struct dnsmsg_rr	*rr;
	size_t			 nrr, cap;
	struct dnssrv_faults	 faults;
};

struct dnssrv_conn {
	TAILQ_ENTRY(dnssrv_conn) entry;
	struct dnssrv		*srv;
	uint64_t		 id;
	struct bufferevent	*bev;
	char			 peer[80];
};

struct dnssrv_pending {
	TAILQ_ENTRY(dnssrv_pending) entry;
	struct dnssrv		*srv;
	struct event		*ev;
	int			 tcp;
	uint64_t		 conn_id;	/* tcp */
	struct sockaddr_storage	 peer;		/* udp */
	socklen_t		 peerlen;
	size_t			 len;
	unsigned char		 msg[];
};

struct dnssrv {
	struct event_base	*base;
	char			 name[64];
	char			 addr[80];
	int			 udp_fd;
	struct event		*udp_ev;
	struct evconnlistener	*tcp;
	TAILQ_HEAD(, dnssrv_conn) conns;
	size_t			 nconns;
	uint64_t		 next_conn;
	TAILQ_HEAD(, dnssrv_pending) pending;
	size_t			 npending;
	struct dnssrv_zone	 zone;
	struct dnssrv_faults	 faults;	/* from the API and --fault */
	unsigned long		 nqueries;
	unsigned char		 rbuf[DNSMSG_MSG_MAX];
	unsigned char		 wbuf[DNSMSG_MSG_MAX];
};

/* What dnssrv_handle() decided, for the transport and the log. */
struct dnssrv_reply {
	int			 send;		/* srv->wbuf[0..len) */
	size_t			 len;
	unsigned		 delay_ms;
	enum dnssrv_kind	 fault;
	unsigned		 rcode;
	size_t			 answers;
	int			 tc;
	uint16_t		 id;
	char			 qname[DNSMSG_TEXT_MAX];
	char			 qtype[16];
	const char		*error;		/* why the query did not parse */
};

static void	dnssrv_conn_free(struct dnssrv_conn *);

/* ---- faults ---- */

/*
 * "servfail", "delay=200,truncate", "none". *none is set for "none"
 * alone; a fault kind and a delay may be combined, two kinds may not.
 */
static int
dnssrv_parse_spec(const char *spec, struct dnssrv_fault *f, int *none,
    const char **err)
{
	char tok[64];
	const char *p = spec, *comma;
	size_t n, k;
	int kinds = 0, delays = 0;
	unsigned long v;
	char *end;

	*none = 0;
	f->kind = DNSSRV_ANSWER;
	f->delay_ms = 0;
	if (strcmp(spec, "none") == 0) {
		*none = 1;
		return 0;
	}
	for (;;) {
		comma = strchr(p, ',');
		n = comma ? (size_t)(comma - p) : strlen(p);
		if (n == 0 || n >= sizeof(tok)) {
			*err = "empty or over-long fault";
			return -1;
		}
		memcpy(tok, p, n);
		tok[n] = '\0';
		if (strncmp(tok, "delay=", 6) == 0) {
			errno = 0;
			v = strtoul(tok + 6, &end, 10);
			if (tok[6] < '0' || tok[6] > '9' || errno != 0 ||
			    *end != '\0' || v > DNSSRV_DELAY_MAX || delays++) {
				*err = "delay=MS wants one delay of 0..600000";
				return -1;
			}
			f->delay_ms = (unsigned)v;
		} else {
			for (k = 1; k < DNSSRV_NKINDS; k++)
				if (strcmp(tok, dnssrv_kind_names[k]) == 0)
					break;
			if (k == DNSSRV_NKINDS) {
				*err = "unknown fault (servfail, nxdomain, refused, "
				    "drop, truncate, delay=MS, none)";
				return -1;
			}
			if (kinds++) {
				*err = "more than one fault kind";
				return -1;
			}
			f->kind = (enum dnssrv_kind)k;
		}
		if (comma == NULL)
			return 0;
		p = comma + 1;
	}
}

/* "*", "* /TYPE", "NAME", "NAME/TYPE" (a '/' in a name is kept). */
static int
dnssrv_parse_target(const char *target, struct dnssrv_fault *f,
    const char **err)
{
	char name[DNSMSG_TEXT_MAX];
	const char *slash = strrchr(target, '/');
	size_t n = strlen(target);

	f->type = 0;
	if (slash != NULL && dnsmsg_type_parse(slash + 1, &f->type) == 0)
		n = (size_t)(slash - target);
	if (n == 0 || n >= sizeof(name)) {
		*err = "bad fault target";
		return -1;
	}
	memcpy(name, target, n);
	name[n] = '\0';
	f->any_name = strcmp(name, "*") == 0;
	if (f->any_name)
		return 0;
	return dnsmsg_name_from_text(&f->name, name, err);
}

static int
dnssrv_same_target(const struct dnssrv_fault *a, const struct dnssrv_fault *b)
{
	return a->any_name == b->any_name && a->type == b->type &&
	    (a->any_name || dnsmsg_name_eq(&a->name, &b->name));
}

/* Add f, replacing one for the same target; with none, remove it. */
static int
dnssrv_faults_set(struct dnssrv_faults *fs, const struct dnssrv_fault *f,
    int none, const char **err)
{
	struct dnssrv_fault *nv;
	size_t i;

	for (i = 0; i < fs->n; i++)
		if (dnssrv_same_target(&fs->v[i], f))
			break;
	if (none) {
		if (i < fs->n)
			fs->v[i] = fs->v[--fs->n];
		return 0;
	}
	if (i < fs->n) {
		fs->v[i] = *f;
		return 0;
	}
	if (fs->n == DNSSRV_FAULTS_MAX) {
		*err = "too many faults";
		return -1;
	}
	if ((nv = reallocarray(fs->v, fs->n + 1, sizeof(*nv))) == NULL) {
		*err = "out of memory";
		return -1;
	}
	fs->v = nv;
	fs->v[fs->n++] = *f;
	return 0;
}

/* 3: NAME/TYPE, 2: NAME, 1: * /TYPE, 0: *; -1: no match. */
static int
dnssrv_fault_score(const struct dnssrv_fault *f, const struct dnsmsg_name *qn,
    uint16_t qtype)
{
	if (f->type != 0 && f->type != qtype)
		return -1;
	if (!f->any_name && !dnsmsg_name_eq(&f->name, qn))
		return -1;
	return (f->any_name ? 0 : 2) + (f->type != 0 ? 1 : 0);
}

static const struct dnssrv_fault *
dnssrv_fault_find(const struct dnssrv *srv, const struct dnsmsg_name *qn,
    uint16_t qtype)
{
	const struct dnssrv_faults *lists[2] = { &srv->faults, &srv->zone.faults };
	const struct dnssrv_fault *best = NULL;
	int bscore = -1, s;
	size_t l, i;

	/* The API's list first: on a tie it wins. */
	for (l = 0; l < 2; l++)
		for (i = 0; i < lists[l]->n; i++)
			if ((s = dnssrv_fault_score(&lists[l]->v[i], qn,
			    qtype)) > bscore) {
				bscore = s;
				best = &lists[l]->v[i];
			}
	return best;
}

/* ---- zone text ---- */

static void
dnssrv_zone_free(struct dnssrv_zone *z)
{
	free(z->rr);
	free(z->faults.v);
	memset(z, 0, sizeof(*z));
}

static int
dnssrv_parse_u32(const char *s, uint32_t max, uint32_t *out)
{
	unsigned long long v;
	char *end;

	if (*s < '0' || *s > '9')
		return -1;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0 || *end != '\0' || v > max)
		return -1;
	*out = (uint32_t)v;
	return 0;
}

/* One record line, split into tok[0..ntok). */
static int
dnssrv_zone_record(struct dnssrv_zone *z, char **tok, size_t ntok,
    const char **err)
{
	struct dnsmsg_rr rr;
	struct dnsmsg_rr *nv;
	uint32_t v;
	size_t want;

	if (ntok < 4) {
		*err = "want: NAME TTL TYPE DATA";
		return -1;
	}
	memset(&rr, 0, sizeof(rr));
	rr.class = DNSMSG_C_IN;
	if (dnsmsg_name_from_text(&rr.name, tok[0], err) == -1)
		return -1;
	if (dnssrv_parse_u32(tok[1], DNSSRV_TTL_MAX, &rr.ttl) == -1) {
		*err = "TTL must be 0..2147483647";
		return -1;
	}
	if (dnsmsg_type_parse(tok[2], &rr.type) == -1) {
		*err = "unknown type";
		return -1;
	}
	switch (rr.type) {
	case DNSMSG_T_A:
		want = 1;
		if (ntok == 4 && inet_pton(AF_INET, tok[3], rr.rd.a) != 1) {
			*err = "A wants an IPv4 address";
			return -1;
		}
		break;
	case DNSMSG_T_AAAA:
		want = 1;
		if (ntok == 4 && inet_pton(AF_INET6, tok[3], rr.rd.aaaa) != 1) {
			*err = "AAAA wants an IPv6 address";
			return -1;
		}
		break;
	case DNSMSG_T_MX:
		want = 2;
		if (ntok != 5)
			break;
		if (dnssrv_parse_u32(tok[3], 65535, &v) == -1) {
			*err = "MX wants PREFERENCE (0..65535) HOST";
			return -1;
		}
		if (dnsmsg_name_from_text(&rr.rd.mx.host, tok[4], err) == -1)
			return -1;
		rr.rd.mx.pref = (uint16_t)v;
		break;
	case DNSMSG_T_PTR:
	case DNSMSG_T_NS:
		want = 1;
		if (ntok == 4 &&
		    dnsmsg_name_from_text(&rr.rd.target, tok[3], err) == -1)
			return -1;
		break;
	case DNSMSG_T_SOA:
		want = 7;
		if (ntok != 10)
			break;
		if (dnsmsg_name_from_text(&rr.rd.soa.mname, tok[3], err) == -1 ||
		    dnsmsg_name_from_text(&rr.rd.soa.rname, tok[4], err) == -1)
			return -1;
		if (dnssrv_parse_u32(tok[5], UINT32_MAX, &rr.rd.soa.serial) ||
		    dnssrv_parse_u32(tok[6], UINT32_MAX, &rr.rd.soa.refresh) ||
		    dnssrv_parse_u32(tok[7], UINT32_MAX, &rr.rd.soa.retry) ||
		    dnssrv_parse_u32(tok[8], UINT32_MAX, &rr.rd.soa.expire) ||
		    dnssrv_parse_u32(tok[9], DNSSRV_TTL_MAX,
		    &rr.rd.soa.minimum)) {
			*err = "SOA wants MNAME RNAME SERIAL REFRESH RETRY "
			    "EXPIRE MINIMUM";
			return -1;
		}
		break;
	default:
		*err = "unsupported type (A, AAAA, MX, PTR, NS, SOA)";
		return -1;
	}
	if (ntok != 3 + want) {
		*err = "wrong number of data fields for the type";
		return -1;
	}
	if (z->nrr == DNSSRV_RECORDS_MAX) {
		*err = "too many records";
		return -1;
	}
	if (z->nrr == z->cap) {
		size_t cap = z->cap ? z->cap * 2 : 16;

		if ((nv = reallocarray(z->rr, cap, sizeof(*nv))) == NULL) {
			*err = "out of memory";
			return -1;
		}
		z->rr = nv;
		z->cap = cap;
	}
	z->rr[z->nrr++] = rr;
	return 0;
}

static int
dnssrv_zone_line(struct dnssrv_zone *z, char *line, const char **err)
{
	char *tok[16];
	size_t ntok = 0;
	char *p = line;
	struct dnssrv_fault f;
	int none;

	for (;;) {
		while (*p == ' ' || *p == '\t' || *p == '\r')
			p++;
		if (*p == '\0' || *p == '#')
			break;
		if (ntok == sizeof(tok) / sizeof(tok[0])) {
			*err = "too many fields";
			return -1;
		}
		tok[ntok++] = p;
		while (*p != '\0' && *p != ' ' && *p != '\t' && *p != '\r')
			p++;
		if (*p != '\0')
			*p++ = '\0';
	}
	if (ntok == 0)
		return 0;
	if (strcmp(tok[0], "$FAULT") == 0) {
		if (ntok != 3) {
			*err = "want: $FAULT TARGET SPEC";
			return -1;
		}
		memset(&f, 0, sizeof(f));
		if (dnssrv_parse_target(tok[1], &f, err) == -1 ||
		    dnssrv_parse_spec(tok[2], &f, &none, err) == -1)
			return -1;
		return dnssrv_faults_set(&z->faults, &f, none, err);
	}
	if (tok[0][0] == '$') {
		*err = "unknown directive";
		return -1;
	}
	return dnssrv_zone_record(z, tok, ntok, err);
}

static int
dnssrv_zone_parse(struct dnssrv_zone *z, const char *text, size_t len,
    char *errbuf, size_t errlen)
{
	char line[DNSSRV_LINE_MAX + 1];
	const char *err = NULL;
	size_t off = 0, n, lineno = 0;
	const char *nl;

	memset(z, 0, sizeof(*z));
	while (off < len) {
		lineno++;
		nl = memchr(text + off, '\n', len - off);
		n = nl ? (size_t)(nl - (text + off)) : len - off;
		/* Decided on the length, before looking at a byte of it. */
		if (n > DNSSRV_LINE_MAX) {
			err = "line too long";
			goto fail;
		}
		memcpy(line, text + off, n);
		line[n] = '\0';
		if (memchr(line, '\0', n) != NULL) {
			err = "NUL byte";
			goto fail;
		}
		off += n + (nl ? 1 : 0);
		if (dnssrv_zone_line(z, line, &err) == -1)
			goto fail;
	}
	return 0;
fail:
	snprintf(errbuf, errlen, "line %zu: %s", lineno, err);
	dnssrv_zone_free(z);
	return -1;
}

/* ---- answering ---- */

/* Longest SOA owner that qn is under, or NULL; *any says if there is one. */
static const struct dnsmsg_rr *
dnssrv_zone_apex(const struct dnssrv_zone *z, const struct dnsmsg_name *qn,
    int *any)
{
	const struct dnsmsg_rr *best = NULL;
	size_t i;

	*any = 0;
	for (i = 0; i < z->nrr; i++) {
		if (z->rr[i].type != DNSMSG_T_SOA)
			continue;
		*any = 1;
		if (dnsmsg_name_under(qn, &z->rr[i].name) &&
		    (best == NULL || z->rr[i].name.len > best->name.len))
			best = &z->rr[i];
	}
	return best;
}

/* Does anything exist at qn or below it (RFC 8020: then qn exists)? */
static int
dnssrv_zone_has_name(const struct dnssrv_zone *z, const struct dnsmsg_name *qn)
{
	size_t i;

	for (i = 0; i < z->nrr; i++)
		if (dnsmsg_name_under(&z->rr[i].name, qn))
			return 1;
	return 0;
}

static int
dnssrv_type_match(uint16_t rtype, uint16_t qtype)
{
	return rtype == qtype || qtype == DNSMSG_T_ANY;
}

/* Is this A/AAAA record data for one of the MX answers? */
static int
dnssrv_is_glue(const struct dnsmsg_rr *rr, const struct dnsmsg_rr *ans,
    size_t nans)
{
	size_t i;

	if (rr->type != DNSMSG_T_A && rr->type != DNSMSG_T_AAAA)
		return 0;
	for (i = 0; i < nans; i++)
		if (ans[i].type == DNSMSG_T_MX &&
		    dnsmsg_name_eq(&rr->name, &ans[i].rd.mx.host))
			return 1;
	return 0;
}

/*
 * Fill a->rr (answer, authority, additional) from the zone for q. Sets
 * the rcode and AA in a->flags. -1 when out of memory.
 */
static int
dnssrv_lookup(const struct dnssrv *srv, const struct dnsmsg_question *q,
    int nxdomain, struct dnsmsg *a, size_t extra)
{
	const struct dnssrv_zone *z = &srv->zone;
	const struct dnsmsg_rr *apex;
	size_t i, nans = 0, nadd = 0, k;
	int anysoa;

	apex = dnssrv_zone_apex(z, &q->name, &anysoa);
	if (anysoa && apex == NULL) {
		/* Not ours: no records, only room for the extra ones. */
		if ((a->rr = calloc(1 + extra, sizeof(*a->rr))) == NULL)
			return -1;
		a->flags |= DNSMSG_R_REFUSED;
		a->flags &= (uint16_t)~DNSMSG_F_AA;
		return 0;
	}
	if (!nxdomain)
		for (i = 0; i < z->nrr; i++)
			if (dnsmsg_name_eq(&z->rr[i].name, &q->name) &&
			    dnssrv_type_match(z->rr[i].type, q->type))
				nans++;
	/* Room for answers, their glue (at most all records), one SOA, extra. */
	if ((a->rr = calloc(nans + (nans ? z->nrr : 0) + 1 + extra,
	    sizeof(*a->rr))) == NULL)
		return -1;
	if (nans > 0) {
		for (i = 0; i < z->nrr; i++)
			if (dnsmsg_name_eq(&z->rr[i].name, &q->name) &&
			    dnssrv_type_match(z->rr[i].type, q->type)) {
				a->rr[a->nan] = z->rr[i];
				/* The asker's spelling: compresses onto the question. */
				a->rr[a->nan].name = q->name;
				a->nan++;
			}
		for (i = 0; i < z->nrr; i++) {
			if (!dnssrv_is_glue(&z->rr[i], a->rr, a->nan))
				continue;
			/* Skip what the answer already holds (an ANY query). */
			for (k = 0; k < a->nan; k++)
				if (a->rr[k].type == z->rr[i].type &&
				    dnsmsg_name_eq(&a->rr[k].name, &z->rr[i].name) &&
				    memcmp(&a->rr[k].rd, &z->rr[i].rd,
				    sizeof(a->rr[k].rd.aaaa)) == 0)
					break;
			if (k == a->nan)
				a->rr[a->nan + nadd++] = z->rr[i];
		}
		a->nar = nadd;
		return 0;
	}
	if (nxdomain || !dnssrv_zone_has_name(z, &q->name))
		a->flags |= DNSMSG_R_NXDOMAIN;
	if (apex != NULL) {
		/* RFC 2308 section 3: the negative TTL. */
		a->rr[0] = *apex;
		if (apex->rd.soa.minimum < apex->ttl)
			a->rr[0].ttl = apex->rd.soa.minimum;
		a->nns = 1;
	}
	return 0;
}

static void
dnssrv_set_qtext(struct dnssrv_reply *r, const struct dnsmsg_question *q)
{
	const char *t = dnsmsg_type_name(q->type);

	if (dnsmsg_name_to_text(&q->name, r->qname, sizeof(r->qname)) == -1)
		snprintf(r->qname, sizeof(r->qname), "?");
	if (t != NULL)
		snprintf(r->qtype, sizeof(r->qtype), "%s", t);
	else
		snprintf(r->qtype, sizeof(r->qtype), "TYPE%u", (unsigned)q->type);
}

/* A header-only answer: FORMERR/NOTIMP to a query we will not read. */
static void
dnssrv_reply_bare(struct dnssrv *srv, struct dnssrv_reply *r, uint16_t id,
    uint16_t qflags, unsigned rcode)
{
	struct dnsmsg a;
	const char *err;

	memset(&a, 0, sizeof(a));
	a.id = id;
	a.flags = (uint16_t)(DNSMSG_F_QR | (qflags & (0x7800 | DNSMSG_F_RD)) |
	    rcode);
	if (dnsmsg_build(&a, srv->wbuf, sizeof(srv->wbuf), &r->len, &err) == 0) {
		r->send = 1;
		r->rcode = rcode;
	}
}

/*
 * Decide the answer to q[0..qlen) and build it into srv->wbuf. tcp: it
 * came over TCP (no size limit, no truncation fault).
 */
static void
dnssrv_handle(struct dnssrv *srv, int tcp, const unsigned char *q,
    size_t qlen, struct dnssrv_reply *r)
{
	const struct dnssrv_fault *f;
	struct dnsmsg m, a;
	struct dnsmsg_rr opt;
	size_t i, nopt = 0, limit = tcp ? DNSMSG_MSG_MAX : DNSMSG_UDP_MAX;
	uint16_t id, qflags;
	const char *err;
	int rc;

	memset(r, 0, sizeof(*r));
	memset(&a, 0, sizeof(a));
	snprintf(r->qname, sizeof(r->qname), "-");
	snprintf(r->qtype, sizeof(r->qtype), "-");
	srv->nqueries++;
	if (dnsmsg_peek(q, qlen, &id, &qflags) == -1) {
		r->error = "shorter than a header";
		return;
	}
	r->id = id;
	/* Never answer an answer: two servers could bounce one forever. */
	if (qflags & DNSMSG_F_QR) {
		r->error = "not a query (QR=1)";
		return;
	}
	if (dnsmsg_parse(&m, q, qlen, &err) == -1) {
		r->error = err;
		dnssrv_reply_bare(srv, r, id, qflags, DNSMSG_R_FORMERR);
		return;
	}
	if (DNSMSG_OPCODE(qflags) != 0) {
		r->error = "opcode not QUERY";
		dnssrv_reply_bare(srv, r, id, qflags, DNSMSG_R_NOTIMP);
		goto done;
	}
	for (i = m.nan + m.nns; i < m.nan + m.nns + m.nar; i++)
		if (m.rr[i].type == DNSMSG_T_OPT) {
			nopt++;
			/* The OPT CLASS is the requester's UDP payload size. */
			if (!tcp && m.rr[i].class > limit)
				limit = m.rr[i].class < DNSSRV_EDNS_SIZE ?
				    m.rr[i].class : DNSSRV_EDNS_SIZE;
		}
	if (m.nqd != 1 || m.nan + m.nns > 0 || nopt > 1) {
		r->error = m.nqd != 1 ? "not one question" : nopt > 1 ?
		    "more than one OPT" : "records in a query";
		dnssrv_reply_bare(srv, r, id, qflags, DNSMSG_R_FORMERR);
		goto done;
	}
	dnssrv_set_qtext(r, &m.qd[0]);
	f = dnssrv_fault_find(srv, &m.qd[0].name, m.qd[0].type);
	if (f != NULL) {
		r->fault = f->kind;
		r->delay_ms = f->delay_ms;
	}
	if (r->fault == DNSSRV_DROP)
		goto done;

	a.id = id;
	a.flags = (uint16_t)(DNSMSG_F_QR | DNSMSG_F_AA | (qflags & DNSMSG_F_RD));
	a.qd = m.qd;
	a.nqd = 1;
	switch (r->fault) {
	case DNSSRV_SERVFAIL:
	case DNSSRV_REFUSED:
		a.flags &= (uint16_t)~DNSMSG_F_AA;
		a.flags |= r->fault == DNSSRV_SERVFAIL ? DNSMSG_R_SERVFAIL :
		    DNSMSG_R_REFUSED;
		if ((a.rr = calloc(1, sizeof(*a.rr))) == NULL)
			goto oom;
		break;
	default:
		if (m.qd[0].class != DNSMSG_C_IN) {
			a.flags &= (uint16_t)~DNSMSG_F_AA;
			a.flags |= DNSMSG_R_REFUSED;
			if ((a.rr = calloc(1, sizeof(*a.rr))) == NULL)
				goto oom;
			break;
		}
		if (dnssrv_lookup(srv, &m.qd[0], r->fault == DNSSRV_NXDOMAIN,
		    &a, 1) == -1)
			goto oom;
		break;
	}
	/* EDNS asked, EDNS answered: one OPT, our size, no options. */
	if (nopt > 0) {
		memset(&opt, 0, sizeof(opt));
		opt.name.len = 1;
		opt.type = DNSMSG_T_OPT;
		opt.class = DNSSRV_EDNS_SIZE;
		a.rr[a.nan + a.nns + a.nar++] = opt;
	}
	r->rcode = DNSMSG_RCODE(a.flags);
	if (r->fault == DNSSRV_TRUNCATE && !tcp)
		goto truncate;
	rc = dnsmsg_build(&a, srv->wbuf, limit, &r->len, &err);
	if (rc == -1 && a.nar > (size_t)(nopt > 0)) {
		/* Additional data is optional: drop it (all but the OPT) first. */
		if (nopt > 0)
			a.rr[a.nan + a.nns] = a.rr[a.nan + a.nns + a.nar - 1];
		a.nar = nopt > 0;
		rc = dnsmsg_build(&a, srv->wbuf, limit, &r->len, &err);
	}
	if (rc == 0) {
		r->send = 1;
		r->answers = a.nan;
		goto done;
	}
	if (tcp) {
		log_msg(LOG_WARN, srv->name, "answer-too-long", "qname=%s",
		    r->qname);
		dnssrv_reply_bare(srv, r, id, qflags, DNSMSG_R_SERVFAIL);
		goto done;
	}
truncate:
	/* The question (and OPT) only, TC set: the client asks over TCP. */
	a.flags |= DNSMSG_F_TC;
	if (nopt > 0)
		a.rr[0] = a.rr[a.nan + a.nns + a.nar - 1];
	a.nan = a.nns = 0;
	a.nar = nopt > 0;
	if (dnsmsg_build(&a, srv->wbuf, limit, &r->len, &err) == 0) {
		r->send = 1;
		r->tc = 1;
	}
	goto done;
oom:
	log_msg(LOG_ERR, srv->name, "query", "error=\"out of memory\"");
	dnssrv_reply_bare(srv, r, id, qflags, DNSMSG_R_SERVFAIL);
done:
	free(a.rr);
	dnsmsg_clear(&m);
}

static void
dnssrv_log(const struct dnssrv *srv, const char *proto, const char *peer,
    const struct dnssrv_reply *r)
{
	char qn[DNSMSG_TEXT_MAX + 16], e[160];

	log_msg(LOG_INFO, srv->name, "query", "proto=%s client=%s id=%u "
	    "qname=%s qtype=%s rcode=%s answers=%zu tc=%d fault=%s "
	    "delay_ms=%u%s%s", proto, peer, (unsigned)r->id,
	    log_quote(qn, sizeof(qn), r->qname, strlen(r->qname)), r->qtype,
	    r->send ? dnsmsg_rcode_name(r->rcode) : "-", r->answers, r->tc,
	    dnssrv_kind_names[r->fault], r->delay_ms,
	    r->error ? " error=" : "",
	    r->error ? log_quote(e, sizeof(e), r->error, strlen(r->error)) : "");
}

/* ---- transports ---- */

static struct dnssrv_conn *
dnssrv_conn_by_id(struct dnssrv *srv, uint64_t id)
{
	struct dnssrv_conn *c;

	TAILQ_FOREACH(c, &srv->conns, entry)
		if (c->id == id)
			return c;
	return NULL;
}

static void
dnssrv_udp_send(struct dnssrv *srv, const unsigned char *msg, size_t len,
    const struct sockaddr *peer, socklen_t peerlen)
{
	char a[80];

	if (sendto(srv->udp_fd, msg, len, 0, peer, peerlen) == -1)
		log_msg(LOG_WARN, srv->name, "send", "proto=udp client=%s "
		    "error=\"%s\"", netaddr_str(peer, a, sizeof(a)),
		    strerror(errno));
}

static void
dnssrv_tcp_send(struct dnssrv_conn *c, const unsigned char *msg, size_t len)
{
	unsigned char pfx[2];

	pfx[0] = (unsigned char)(len >> 8);
	pfx[1] = (unsigned char)len;
	if (bufferevent_write(c->bev, pfx, 2) == -1 ||
	    bufferevent_write(c->bev, msg, len) == -1)
		log_msg(LOG_WARN, c->srv->name, "send", "proto=tcp client=%s "
		    "error=\"cannot queue\"", c->peer);
}

static void
dnssrv_pending_free(struct dnssrv_pending *p)
{
	TAILQ_REMOVE(&p->srv->pending, p, entry);
	p->srv->npending--;
	event_free(p->ev);
	free(p);
}

static void
dnssrv_pending_cb(evutil_socket_t fd, short what, void *arg)
{
	struct dnssrv_pending *p = arg;
	struct dnssrv_conn *c;

	if (!p->tcp)
		dnssrv_udp_send(p->srv, p->msg, p->len,
		    (struct sockaddr *)&p->peer, p->peerlen);
	else if ((c = dnssrv_conn_by_id(p->srv, p->conn_id)) != NULL)
		dnssrv_tcp_send(c, p->msg, p->len);
	dnssrv_pending_free(p);
}

/* Send srv->wbuf[0..r->len) after r->delay_ms. */
static void
dnssrv_defer(struct dnssrv *srv, const struct dnssrv_reply *r, int tcp,
    uint64_t conn_id, const struct sockaddr *peer, socklen_t peerlen)
{
	struct dnssrv_pending *p;
	struct timeval tv;

	if (srv->npending == DNSSRV_PENDING_MAX ||
	    (p = calloc(1, sizeof(*p) + r->len)) == NULL) {
		log_msg(LOG_WARN, srv->name, "delay", "error=\"too many delayed "
		    "answers\" action=drop");
		return;
	}
	p->srv = srv;
	p->tcp = tcp;
	p->conn_id = conn_id;
	if (peer != NULL && peerlen <= sizeof(p->peer)) {
		memcpy(&p->peer, peer, peerlen);
		p->peerlen = peerlen;
	}
	p->len = r->len;
	memcpy(p->msg, srv->wbuf, r->len);
	tv.tv_sec = r->delay_ms / 1000;
	tv.tv_usec = (suseconds_t)(r->delay_ms % 1000) * 1000;
	if ((p->ev = evtimer_new(srv->base, dnssrv_pending_cb, p)) == NULL ||
	    evtimer_add(p->ev, &tv) == -1) {
		if (p->ev != NULL)
			event_free(p->ev);
		free(p);
		log_msg(LOG_WARN, srv->name, "delay", "error=\"no timer\" "
		    "action=drop");
		return;
	}
	TAILQ_INSERT_TAIL(&srv->pending, p, entry);
	srv->npending++;
}

static void
dnssrv_udp_cb(evutil_socket_t fd, short what, void *arg)
{
	struct dnssrv *srv = arg;
	struct dnssrv_reply r;
	struct sockaddr_storage peer;
	socklen_t peerlen;
	char a[80];
	ssize_t n;
	int i;

	/* A few per wake-up, so TCP clients and timers get their turn. */
	for (i = 0; i < DNSSRV_UDP_BURST; i++) {
		peerlen = sizeof(peer);
		n = recvfrom(fd, srv->rbuf, sizeof(srv->rbuf), 0,
		    (struct sockaddr *)&peer, &peerlen);
		if (n == -1) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				log_msg(LOG_WARN, srv->name, "recv", "proto=udp "
				    "error=\"%s\"", strerror(errno));
			return;
		}
		dnssrv_handle(srv, 0, srv->rbuf, (size_t)n, &r);
		netaddr_str((struct sockaddr *)&peer, a, sizeof(a));
		dnssrv_log(srv, "udp", a, &r);
		if (!r.send)
			continue;
		if (r.delay_ms > 0)
			dnssrv_defer(srv, &r, 0, 0, (struct sockaddr *)&peer,
			    peerlen);
		else
			dnssrv_udp_send(srv, srv->wbuf, r.len,
			    (struct sockaddr *)&peer, peerlen);
	}
}

static void
dnssrv_conn_read(struct bufferevent *bev, void *arg)
{
	struct dnssrv_conn *c = arg;
	struct dnssrv *srv = c->srv;
	struct evbuffer *in = bufferevent_get_input(bev);
	struct dnssrv_reply r;
	unsigned char pfx[2];
	size_t mlen;

	/* Two octets of length, then the message (RFC 1035 4.2.2). */
	while (evbuffer_get_length(in) >= 2) {
		if (evbuffer_get_length(bufferevent_get_output(bev)) >
		    DNSSRV_TCP_OUT_MAX) {
			log_msg(LOG_WARN, srv->name, "close", "proto=tcp "
			    "client=%s reason=\"answers not read\"", c->peer);
			dnssrv_conn_free(c);
			return;
		}
		evbuffer_copyout(in, pfx, 2);
		mlen = (size_t)pfx[0] << 8 | pfx[1];
		if (mlen == 0) {
			log_msg(LOG_INFO, srv->name, "close", "proto=tcp "
			    "client=%s reason=\"zero-length message\"", c->peer);
			dnssrv_conn_free(c);
			return;
		}
		if (evbuffer_get_length(in) < 2 + mlen)
			return;
		evbuffer_drain(in, 2);
		if (evbuffer_remove(in, srv->rbuf, mlen) != (int)mlen) {
			dnssrv_conn_free(c);
			return;
		}
		dnssrv_handle(srv, 1, srv->rbuf, mlen, &r);
		dnssrv_log(srv, "tcp", c->peer, &r);
		if (!r.send)
			continue;
		if (r.delay_ms > 0)
			dnssrv_defer(srv, &r, 1, c->id, NULL, 0);
		else
			dnssrv_tcp_send(c, srv->wbuf, r.len);
	}
}

/* The client has stopped sending: close once its answers are out. */
static void
dnssrv_conn_drained(struct bufferevent *bev, void *arg)
{
	struct dnssrv_conn *c = arg;

	if (evbuffer_get_length(bufferevent_get_output(bev)) == 0)
		dnssrv_conn_free(c);
}

static void
dnssrv_conn_event(struct bufferevent *bev, short what, void *arg)
{
	struct dnssrv_conn *c = arg;

	if ((what & BEV_EVENT_EOF) &&
	    evbuffer_get_length(bufferevent_get_output(bev)) > 0) {
		bufferevent_disable(bev, EV_READ);
		bufferevent_setcb(bev, NULL, dnssrv_conn_drained,
		    dnssrv_conn_event, c);
		return;
	}
	log_msg(LOG_DEBUG, c->srv->name, "close", "proto=tcp client=%s "
	    "reason=%s", c->peer, (what & BEV_EVENT_TIMEOUT) ? "idle" :
	    (what & BEV_EVENT_EOF) ? "eof" : "error");
	dnssrv_conn_free(c);
}

static void
dnssrv_conn_free(struct dnssrv_conn *c)
{
	struct dnssrv *srv = c->srv;

	TAILQ_REMOVE(&srv->conns, c, entry);
	srv->nconns--;
	bufferevent_free(c->bev);
	free(c);
}

static void
dnssrv_accept_cb(struct evconnlistener *l, evutil_socket_t fd,
    struct sockaddr *sa, int salen, void *arg)
{
	struct dnssrv *srv = arg;
	struct dnssrv_conn *c;
	struct timeval idle = { DNSSRV_TCP_IDLE, 0 };
	char a[80];

	netaddr_str(sa, a, sizeof(a));
	if (srv->nconns == DNSSRV_CONNS_MAX ||
	    (c = calloc(1, sizeof(*c))) == NULL) {
		log_msg(LOG_WARN, srv->name, "refuse", "proto=tcp client=%s "
		    "reason=\"too many connections\"", a);
		evutil_closesocket(fd);
		return;
	}
	c->srv = srv;
	c->id = ++srv->next_conn;
	snprintf(c->peer, sizeof(c->peer), "%s", a);
	if ((c->bev = bufferevent_socket_new(srv->base, fd,
	    BEV_OPT_CLOSE_ON_FREE)) == NULL) {
		evutil_closesocket(fd);
		free(c);
		return;
	}
	TAILQ_INSERT_TAIL(&srv->conns, c, entry);
	srv->nconns++;
	bufferevent_setcb(c->bev, dnssrv_conn_read, NULL, dnssrv_conn_event, c);
	bufferevent_set_timeouts(c->bev, &idle, &idle);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
}

/* "IP:PORT" or "[IPv6]:PORT", port 0..65535 (netaddr refuses 0). */
static int
dnssrv_parse_listen(const char *s, struct hostport *hp)
{
	const char *colon, *hs = s, *he;
	unsigned long v;
	char *end;

	if (s[0] == '[') {
		hs = s + 1;
		if ((he = strchr(hs, ']')) == NULL || he[1] != ':')
			return -1;
		colon = he + 1;
	} else {
		if ((colon = strrchr(s, ':')) == NULL ||
		    strchr(s, ':') != colon)
			return -1;
		he = colon;
	}
	if (he == hs || (size_t)(he - hs) >= sizeof(hp->host) ||
	    colon[1] < '0' || colon[1] > '9')
		return -1;
	errno = 0;
	v = strtoul(colon + 1, &end, 10);
	if (errno != 0 || *end != '\0' || v > 65535)
		return -1;
	memcpy(hp->host, hs, (size_t)(he - hs));
	hp->host[he - hs] = '\0';
	hp->port = (uint16_t)v;
	return 0;
}

/*
 * UDP and TCP on one port. With port 0 the kernel picks the UDP port; if
 * TCP cannot have the same one, try again with another.
 */
static int
dnssrv_bind(struct dnssrv *srv, const char *listen, char *err, size_t errlen)
{
	struct hostport hp;
	struct sockaddr_storage ss;
	socklen_t sslen;
	int tries, tcpfd = -1, one = 1;

	if (dnssrv_parse_listen(listen, &hp) == -1 ||
	    netaddr_to_sockaddr(hp.host, hp.port, &ss, &sslen) == -1) {
		snprintf(err, errlen, "listen %s: want IP:PORT or [IPv6]:PORT "
		    "(port 0 picks one)", listen);
		return -1;
	}
	for (tries = 0; tries < (hp.port == 0 ? DNSSRV_BIND_TRIES : 1); tries++) {
		if (hp.port == 0)
			netaddr_to_sockaddr(hp.host, 0, &ss, &sslen);
		srv->udp_fd = socket(ss.ss_family, SOCK_DGRAM | SOCK_NONBLOCK |
		    SOCK_CLOEXEC, 0);
		if (srv->udp_fd == -1 ||
		    bind(srv->udp_fd, (struct sockaddr *)&ss, sslen) == -1 ||
		    getsockname(srv->udp_fd, (struct sockaddr *)&ss, &sslen) == -1)
			goto fail;
		tcpfd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK |
		    SOCK_CLOEXEC, 0);
		if (tcpfd == -1 || setsockopt(tcpfd, SOL_SOCKET, SO_REUSEADDR,
		    &one, sizeof(one)) == -1)
			goto fail;
		if (bind(tcpfd, (struct sockaddr *)&ss, sslen) == 0)
			break;
		if (errno != EADDRINUSE || hp.port != 0)
			goto fail;
		close(tcpfd);
		close(srv->udp_fd);
		tcpfd = srv->udp_fd = -1;
	}
	if (tcpfd == -1) {
		snprintf(err, errlen, "listen %s: no port free for both UDP "
		    "and TCP", listen);
		return -1;
	}
	if ((srv->tcp = evconnlistener_new(srv->base, dnssrv_accept_cb, srv,
	    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 64, tcpfd)) == NULL) {
		snprintf(err, errlen, "listen %s (tcp): %s", listen,
		    strerror(errno));
		close(tcpfd);
		return -1;
	}
	if ((srv->udp_ev = event_new(srv->base, srv->udp_fd,
	    EV_READ | EV_PERSIST, dnssrv_udp_cb, srv)) == NULL ||
	    event_add(srv->udp_ev, NULL) == -1) {
		snprintf(err, errlen, "cannot watch the UDP socket");
		return -1;
	}
	netaddr_str((struct sockaddr *)&ss, srv->addr, sizeof(srv->addr));
	return 0;
fail:
	snprintf(err, errlen, "listen %s: %s", listen, strerror(errno));
	if (tcpfd != -1)
		close(tcpfd);
	return -1;
}

/* ---- the object ---- */

struct dnssrv *
dnssrv_new(struct event_base *base, const struct dnssrv_opts *o, char *err,
    size_t errlen)
{
	struct dnssrv *srv;

	if ((srv = calloc(1, sizeof(*srv))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	srv->base = base;
	srv->udp_fd = -1;
	TAILQ_INIT(&srv->conns);
	TAILQ_INIT(&srv->pending);
	snprintf(srv->name, sizeof(srv->name), "%s",
	    o->name != NULL ? o->name : "dns");
	if (dnssrv_bind(srv, o->listen != NULL ? o->listen : "127.0.0.1:0",
	    err, errlen) == -1) {
		dnssrv_free(srv);
		return NULL;
	}
	log_msg(LOG_INFO, srv->name, "listening", "addr=%s proto=udp,tcp",
	    srv->addr);
	return srv;
}

const char *
dnssrv_addr(const struct dnssrv *srv)
{
	return srv->addr;
}

int
dnssrv_set_records(struct dnssrv *srv, const char *zone, size_t len,
    char *err, size_t errlen)
{
	struct dnssrv_zone z;

	if (dnssrv_zone_parse(&z, zone, len, err, errlen) == -1)
		return -1;
	dnssrv_zone_free(&srv->zone);
	srv->zone = z;
	return 0;
}

int
dnssrv_load_zone(struct dnssrv *srv, const char *path, char *err,
    size_t errlen)
{
	struct buf b = BUF_INIT;
	char chunk[8192], e[256];
	size_t n;
	FILE *fp;
	int rc;

	if ((fp = fopen(path, "r")) == NULL) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	while ((n = fread(chunk, 1, sizeof(chunk), fp)) > 0) {
		if (b.len + n > DNSSRV_ZONE_FILE_MAX ||
		    buf_append(&b, chunk, n) == -1) {
			snprintf(err, errlen, "%s: too large", path);
			goto fail;
		}
	}
	if (ferror(fp)) {
		snprintf(err, errlen, "%s: read error", path);
		goto fail;
	}
	fclose(fp);
	rc = dnssrv_set_records(srv, b.data != NULL ? b.data : "", b.len, e,
	    sizeof(e));
	if (rc == -1)
		snprintf(err, errlen, "%s: %s", path, e);
	buf_free(&b);
	return rc;
fail:
	fclose(fp);
	buf_free(&b);
	return -1;
}

int
dnssrv_set_fault(struct dnssrv *srv, const char *target, const char *spec,
    char *err, size_t errlen)
{
	struct dnssrv_fault f;
	const char *e;
	int none;

	memset(&f, 0, sizeof(f));
	if (dnssrv_parse_target(target, &f, &e) == -1 ||
	    dnssrv_parse_spec(spec, &f, &none, &e) == -1 ||
	    dnssrv_faults_set(&srv->faults, &f, none, &e) == -1) {
		snprintf(err, errlen, "fault %s=%s: %s", target, spec, e);
		return -1;
	}
	return 0;
}

void
dnssrv_clear_faults(struct dnssrv *srv)
{
	free(srv->faults.v);
	memset(&srv->faults, 0, sizeof(srv->faults));
}

unsigned long
dnssrv_queries(const struct dnssrv *srv)
{
	return srv->nqueries;
}

void
dnssrv_free(struct dnssrv *srv)
{
	struct dnssrv_conn *c;
	struct dnssrv_pending *p;

	if (srv == NULL)
		return;
	while ((p = TAILQ_FIRST(&srv->pending)) != NULL)
		dnssrv_pending_free(p);
	while ((c = TAILQ_FIRST(&srv->conns)) != NULL)
		dnssrv_conn_free(c);
	if (srv->tcp != NULL)
		evconnlistener_free(srv->tcp);
	if (srv->udp_ev != NULL)
		event_free(srv->udp_ev);
	if (srv->udp_fd != -1)
		close(srv->udp_fd);
	dnssrv_zone_free(&srv->zone);
	dnssrv_clear_faults(srv);
	free(srv);
}

/* ---- `mta-sim dns` ---- */

struct dnssrv_cli {
	struct dnssrv		*srv;
	struct event_base	*base;
	const char		*zone;
};

void
dnssrv_usage(FILE *fp)
{
	fprintf(fp,
	    "usage: mta-sim dns --zone FILE [--listen IP:PORT] "
	    "[--fault TARGET=SPEC]...\n"
	    "  Authoritative DNS over UDP and TCP on one port. Prints "
	    "\"listening IP:PORT\"\n"
	    "  once ready; SIGHUP re-reads the zone file. --listen defaults "
	    "to 127.0.0.1:0.\n"
	    "  Zone lines: NAME TTL TYPE DATA (A, AAAA, MX, PTR, NS, SOA), "
	    "or $FAULT TARGET SPEC.\n"
	    "  TARGET: * | NAME | NAME/TYPE | */TYPE.  SPEC: servfail | "
	    "nxdomain | refused |\n"
	    "  drop | truncate | delay=MS | none, comma-separated "
	    "(delay=200,servfail).\n");
}

static void
dnssrv_signal_cb(evutil_socket_t sig, short what, void *arg)
{
	struct dnssrv_cli *cli = arg;
	char err[512];

	if (sig != SIGHUP) {
		event_base_loopexit(cli->base, NULL);
		return;
	}
	if (dnssrv_load_zone(cli->srv, cli->zone, err, sizeof(err)) == -1) {
		char q[600];

		log_msg(LOG_WARN, cli->srv->name, "reload-failed", "error=%s",
		    log_quote(q, sizeof(q), err, strlen(err)));
		return;
	}
	/* Tests wait for this line before they count on the new records. */
	log_msg(LOG_INFO, cli->srv->name, "reload", "records=%zu faults=%zu",
	    cli->srv->zone.nrr, cli->srv->zone.faults.n);
}

int
dnssrv_main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "listen", required_argument, NULL, 'l' },
		{ "zone", required_argument, NULL, 'z' },
		{ "fault", required_argument, NULL, 'f' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	struct dnssrv_opts o;
	struct dnssrv_cli cli;
	struct event *sigs[3];
	const char **faults = NULL, **nf;
	size_t nfaults = 0, i;
	char err[512], *eq, target[DNSMSG_TEXT_MAX + 16];
	int ch, rc = 1;

	memset(&o, 0, sizeof(o));
	memset(&cli, 0, sizeof(cli));
	memset(sigs, 0, sizeof(sigs));
	o.listen = "127.0.0.1:0";
	optind = 1;
	while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (ch) {
		case 'l':
			o.listen = optarg;
			break;
		case 'z':
			cli.zone = optarg;
			break;
		case 'f':
			if ((nf = reallocarray(faults, nfaults + 1,
			    sizeof(*nf))) == NULL)
				log_fatal("out of memory");
			faults = nf;
			faults[nfaults++] = optarg;
			break;
		case 'h':
			dnssrv_usage(stdout);
			free(faults);
			return 0;
		default:
			dnssrv_usage(stderr);
			free(faults);
			return DNSSRV_EXIT_USAGE;
		}
	}
	if (optind != argc || cli.zone == NULL) {
		fprintf(stderr, "mta-sim dns: %s\n", cli.zone == NULL ?
		    "--zone is required" : "unexpected argument");
		dnssrv_usage(stderr);
		free(faults);
		return DNSSRV_EXIT_USAGE;
	}
	if ((cli.base = event_base_new()) == NULL)
		log_fatal("event_base_new failed");
	if ((cli.srv = dnssrv_new(cli.base, &o, err, sizeof(err))) == NULL) {
		fprintf(stderr, "mta-sim dns: %s\n", err);
		goto out;
	}
	for (i = 0; i < nfaults; i++) {
		/* TARGET=SPEC: the first '=' (a spec has "delay=MS"). */
		if ((eq = strchr(faults[i], '=')) == NULL ||
		    (size_t)(eq - faults[i]) >= sizeof(target)) {
			fprintf(stderr, "mta-sim dns: --fault wants TARGET=SPEC\n");
			rc = DNSSRV_EXIT_USAGE;
			goto out;
		}
		memcpy(target, faults[i], (size_t)(eq - faults[i]));
		target[eq - faults[i]] = '\0';
		if (dnssrv_set_fault(cli.srv, target, eq + 1, err,
		    sizeof(err)) == -1) {
			fprintf(stderr, "mta-sim dns: --%s\n", err);
			rc = DNSSRV_EXIT_USAGE;
			goto out;
		}
	}
	if (dnssrv_load_zone(cli.srv, cli.zone, err, sizeof(err)) == -1) {
		fprintf(stderr, "mta-sim dns: %s\n", err);
		goto out;
	}
	/* Signals before "listening": a test may send SIGHUP at once. */
	sigs[0] = evsignal_new(cli.base, SIGHUP, dnssrv_signal_cb, &cli);
	sigs[1] = evsignal_new(cli.base, SIGTERM, dnssrv_signal_cb, &cli);
	sigs[2] = evsignal_new(cli.base, SIGINT, dnssrv_signal_cb, &cli);
	for (i = 0; i < 3; i++)
		if (sigs[i] == NULL || evsignal_add(sigs[i], NULL) == -1)
			log_fatal("cannot install signal handlers");
	log_msg(LOG_INFO, cli.srv->name, "zone", "file=%s records=%zu "
	    "faults=%zu", cli.zone, cli.srv->zone.nrr,
	    cli.srv->zone.faults.n + cli.srv->faults.n);
	/* Tests wait for exactly this line. */
	printf("listening %s\n", dnssrv_addr(cli.srv));
	fflush(stdout);

	event_base_dispatch(cli.base);

	log_msg(LOG_INFO, cli.srv->name, "exit", "queries=%lu",
	    dnssrv_queries(cli.srv));
	rc = 0;
out:
	for (i = 0; i < 3; i++)
		if (sigs[i] != NULL)
			event_free(sigs[i]);
	dnssrv_free(cli.srv);
	event_base_free(cli.base);
	free(faults);
	return rc;
}
