/*
 * dns: c-ares on the libevent loop (see dns.h).
 *
 * c-ares tells us which sockets it wants watched through its socket-state
 * callback; each becomes a persistent libevent event, and one timer follows
 * ares_timeout(). A query handle outlives a dns_cancel() while c-ares still
 * holds it (c-ares cannot cancel one query alone): it is marked dead and
 * freed when c-ares lets go of it, so the caller's session may already be
 * gone. Results that are known at once (IP literals, invalid names, and
 * c-ares answering from inside its own submit call) go through a ready
 * list and one libevent event, so the caller never sees its callback run
 * inside dns_lookup_*().
 */
#include "dns.h"

#include <sys/queue.h>
#include <sys/socket.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ares.h>
#include <event2/event.h>

#include "log.h"

#define DNS_CLASS_IN	1
#define DNS_TYPE_SOA	6
#define DNS_TYPE_MX	15
#define DNS_HDR_LEN	12
#define DNS_NAME_MAX	253		/* text form, without the trailing dot */

enum dns_qtype {
	DNS_Q_ADDRS,
	DNS_Q_MX
};

enum dns_qstate {
	DNS_QS_ARES,		/* c-ares holds it: its callback will come */
	DNS_QS_DEAD,		/* cancelled while c-ares holds it */
	DNS_QS_READY,		/* result stored, on the ready list */
	DNS_QS_RUNNING		/* the caller's callback is running */
};

struct dns_query {
	TAILQ_ENTRY(dns_query)	 entry;		/* dns->queries */
	TAILQ_ENTRY(dns_query)	 rentry;	/* dns->ready, when DNS_QS_READY */
	struct dns		*dns;
	enum dns_qtype		 type;
	enum dns_qstate		 state;
	int			 submitting;	/* inside the ares_* call */
	dns_addrs_cb		*addrs_cb;
	dns_mx_cb		*mx_cb;
	void			*arg;
	char			 name[DNS_NAME_MAX + 2];
	/* The result, filled before delivery. */
	int			 status;
	struct dns_addrs	 addrs;
	struct dns_mx		*mx;
	size_t			 nmx;
	uint32_t		 ttl;
};

struct dns_sock {
	TAILQ_ENTRY(dns_sock)	 entry;
	int			 fd;
	short			 what;
	struct event		*ev;
};

TAILQ_HEAD(dns_queries, dns_query);

struct dns {
	struct event_base	*base;
	ares_channel		 channel;
	int			 channel_ok;
	struct event		*timer;
	struct event		*ev_ready;
	struct dns_queries	 queries;	/* every live handle */
	struct dns_queries	 ready;
	size_t			 nqueries;
	size_t			 nready;
	TAILQ_HEAD(, dns_sock)	 socks;
	enum dns_family		 family;
	int			 closing;	/* inside dns_free() */
	int			 incb;		/* depth of caller callbacks */
	int			 libinit;
};

static const char *const dns_status_names[] = {
	[DNS_OK] = "ok",
	[DNS_NXDOMAIN] = "nxdomain",
	[DNS_NODATA] = "nodata",
	[DNS_TEMPFAIL] = "tempfail",
	[DNS_NULLMX] = "nullmx",
	[DNS_CANCELLED] = "cancelled"
};

const char *
dns_strstatus(int status)
{
	if (status < 0 || (size_t)status >=
	    sizeof(dns_status_names) / sizeof(dns_status_names[0]))
		return "unknown";
	return dns_status_names[status];
}

static int
dns_status_from_ares(int st)
{
	switch (st) {
	case ARES_SUCCESS:
		return DNS_OK;
	case ARES_ENOTFOUND:
	case ARES_EBADNAME:
		return DNS_NXDOMAIN;
	case ARES_ENODATA:
		return DNS_NODATA;
	case ARES_EDESTRUCTION:
	case ARES_ECANCELLED:
		return DNS_CANCELLED;
	default:
		/* SERVFAIL, REFUSED, timeout, bad answer, no memory... */
		return DNS_TEMPFAIL;
	}
}

/*
 * Host names only: LDH plus '_', labels of 1-63, at most 253 octets, one
 * optional trailing dot. Anything else cannot be a mail host, and refusing
 * it here keeps odd bytes out of queries and logs.
 */
static int
dns_name_valid(const char *s)
{
	size_t len = strlen(s), label = 0, i;

	if (len > 0 && s[len - 1] == '.')
		len--;
	if (len == 0 || len > DNS_NAME_MAX)
		return 0;
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '.') {
			if (label == 0)
				return 0;
			label = 0;
			continue;
		}
		if (c > 0x7f || (!isalnum(c) && c != '-' && c != '_'))
			return 0;
		if (++label > 63)
			return 0;
	}
	return label > 0;
}

/* ---- sockets and the timer ---- */

static void
dns_timer_update(struct dns *dns)
{
	struct timeval tv, *tvp;

	if (dns->closing)
		return;
	if ((tvp = ares_timeout(dns->channel, NULL, &tv)) != NULL)
		evtimer_add(dns->timer, tvp);
	else
		evtimer_del(dns->timer);
}

static void
dns_sock_cb(evutil_socket_t fd, short what, void *arg)
{
	struct dns *dns = arg;

	/* May close this very socket (and free its event): use nothing after. */
	ares_process_fd(dns->channel,
	    (what & EV_READ) ? fd : ARES_SOCKET_BAD,
	    (what & EV_WRITE) ? fd : ARES_SOCKET_BAD);
	dns_timer_update(dns);
}

static void
dns_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct dns *dns = arg;

	ares_process_fd(dns->channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
	dns_timer_update(dns);
}

static void
dns_sock_drop(struct dns *dns, struct dns_sock *s)
{
	TAILQ_REMOVE(&dns->socks, s, entry);
	event_free(s->ev);
	free(s);
}

/* c-ares: start, change or stop watching one of its sockets. */
static void
dns_sock_state(void *data, ares_socket_t fd, int readable, int writable)
{
	struct dns *dns = data;
	struct dns_sock *s;
	short what;

	TAILQ_FOREACH(s, &dns->socks, entry)
		if (s->fd == fd)
			break;
	what = (readable ? EV_READ : 0) | (writable ? EV_WRITE : 0);
	if (what == 0) {
		if (s != NULL)
			dns_sock_drop(dns, s);
		return;
	}
	if (s != NULL && s->what == what)
		return;
	if (s == NULL) {
		if ((s = calloc(1, sizeof(*s))) == NULL)
			goto fail;
		s->fd = fd;
		TAILQ_INSERT_TAIL(&dns->socks, s, entry);
	} else
		event_free(s->ev);
	s->what = what;
	s->ev = event_new(dns->base, fd, what | EV_PERSIST, dns_sock_cb, dns);
	if (s->ev == NULL || event_add(s->ev, NULL) == -1) {
		if (s->ev != NULL)
			event_free(s->ev);
		TAILQ_REMOVE(&dns->socks, s, entry);
		free(s);
		goto fail;
	}
	return;
fail:
	/* The query on this socket will end by timeout. */
	log_msg(LOG_ERR, NULL, "dns-socket", "fd=%d error=\"cannot watch\"",
	    (int)fd);
}

/* ---- queries ---- */

static struct dns_query *
dns_query_new(struct dns *dns, enum dns_qtype type, const char *name,
    void *arg)
{
	struct dns_query *q;

	if (dns->closing)
		return NULL;
	if ((q = calloc(1, sizeof(*q))) == NULL) {
		log_msg(LOG_ERR, NULL, "dns-query", "error=\"out of memory\"");
		return NULL;
	}
	q->dns = dns;
	q->type = type;
	q->arg = arg;
	/* Valid names fit; others are only kept (cut) for the log. */
	snprintf(q->name, sizeof(q->name), "%s", name);
	TAILQ_INSERT_TAIL(&dns->queries, q, entry);
	dns->nqueries++;
	return q;
}

static void
dns_query_free(struct dns_query *q)
{
	struct dns *dns = q->dns;

	if (q->state == DNS_QS_READY) {
		TAILQ_REMOVE(&dns->ready, q, rentry);
		dns->nready--;
	}
	TAILQ_REMOVE(&dns->queries, q, entry);
	dns->nqueries--;
	free(q->addrs.addrs);
	free(q->mx);
	free(q);
}

static void
dns_deliver(struct dns_query *q)
{
	struct dns *dns = q->dns;
	char qname[DNS_NAME_MAX * 4 + 8];
	int status = dns->closing ? DNS_CANCELLED : q->status;

	if (status != DNS_OK && status != DNS_NULLMX) {
		q->addrs.n = 0;
		q->nmx = 0;
	}
	if (status != DNS_OK && status != DNS_NULLMX && status != DNS_NODATA &&
	    status != DNS_NXDOMAIN)
		q->ttl = 0;
	log_msg(LOG_DEBUG, NULL, "dns-result", "type=%s name=%s status=%s n=%zu",
	    q->type == DNS_Q_MX ? "mx" : "addrs",
	    log_quote(qname, sizeof(qname), q->name, strlen(q->name)),
	    dns_strstatus(status),
	    q->type == DNS_Q_MX ? q->nmx : q->addrs.n);
	q->state = DNS_QS_RUNNING;
	dns->incb++;
	if (q->type == DNS_Q_ADDRS)
		q->addrs_cb(q->arg, status, &q->addrs);
	else
		q->mx_cb(q->arg, status, q->nmx ? q->mx : NULL, q->nmx, q->ttl);
	dns->incb--;
	dns_query_free(q);
}

static void
dns_make_ready(struct dns_query *q)
{
	struct dns *dns = q->dns;

	q->state = DNS_QS_READY;
	TAILQ_INSERT_TAIL(&dns->ready, q, rentry);
	dns->nready++;
	event_active(dns->ev_ready, EV_TIMEOUT, 0);
}

static void
dns_ready_cb(evutil_socket_t fd, short what, void *arg)
{
	struct dns *dns = arg;
	struct dns_query *q;
	size_t n = dns->nready;

	/*
	 * Only as many as were ready on entry: a callback that starts a
	 * lookup of a literal gets its answer on the next loop turn, so a
	 * chain of them cannot hold the loop here.
	 */
	while (n-- > 0 && (q = TAILQ_FIRST(&dns->ready)) != NULL) {
		TAILQ_REMOVE(&dns->ready, q, rentry);
		dns->nready--;
		q->state = DNS_QS_RUNNING;
		dns_deliver(q);
	}
	if (!TAILQ_EMPTY(&dns->ready))
		event_active(dns->ev_ready, EV_TIMEOUT, 0);
}

/* c-ares is done with q: free it, deliver now, or queue it. */
static void
dns_finish(struct dns_query *q)
{
	if (q->state == DNS_QS_DEAD)
		dns_query_free(q);
	else if (q->submitting)
		dns_make_ready(q);
	else
		dns_deliver(q);
}

/* ---- addresses ---- */

static int
dns_addr_seen(const struct dns_addrs *a, const struct sockaddr *sa)
{
	size_t i;

	for (i = 0; i < a->n; i++) {
		const struct sockaddr *b = (const struct sockaddr *)&a->addrs[i];

		if (b->sa_family != sa->sa_family)
			continue;
		if (sa->sa_family == AF_INET &&
		    memcmp(&((const struct sockaddr_in *)b)->sin_addr,
		    &((const struct sockaddr_in *)sa)->sin_addr,
		    sizeof(struct in_addr)) == 0)
			return 1;
		if (sa->sa_family == AF_INET6 &&
		    memcmp(&((const struct sockaddr_in6 *)b)->sin6_addr,
		    &((const struct sockaddr_in6 *)sa)->sin6_addr,
		    sizeof(struct in6_addr)) == 0)
			return 1;
	}
	return 0;
}

static void
dns_addr_add(struct dns_addrs *a, const struct sockaddr *sa, size_t salen)
{
	struct sockaddr_storage *ss;

	if (dns_addr_seen(a, sa))
		return;
	ss = &a->addrs[a->n++];
	memset(ss, 0, sizeof(*ss));
	memcpy(ss, sa, salen);
	if (sa->sa_family == AF_INET)
		((struct sockaddr_in *)ss)->sin_port = 0;
	else
		((struct sockaddr_in6 *)ss)->sin6_port = 0;
}

/* RFC 2181 section 8: a TTL with the top bit set counts as 0. */
static uint32_t
dns_ttl(uint32_t t)
{
	return t > INT32_MAX ? 0 : t;
}

/* Fill q->addrs from c-ares' list, preferred family first. */
static int
dns_addrs_collect(struct dns_query *q, const struct ares_addrinfo *ai)
{
	const struct ares_addrinfo_node *nd;
	int first, pass, fam;
	size_t n = 0;

	for (nd = ai ? ai->nodes : NULL; nd != NULL; nd = nd->ai_next)
		n++;
	if (n == 0)
		return DNS_NODATA;
	if ((q->addrs.addrs = calloc(n, sizeof(*q->addrs.addrs))) == NULL)
		return DNS_TEMPFAIL;
	first = q->dns->family == DNS_IPV6_FIRST ||
	    q->dns->family == DNS_IPV6_ONLY ? AF_INET6 : AF_INET;
	for (pass = 0; pass < 2; pass++) {
		fam = pass == 0 ? first : (first == AF_INET ? AF_INET6 : AF_INET);
		for (nd = ai->nodes; nd != NULL; nd = nd->ai_next) {
			size_t want = fam == AF_INET ?
			    sizeof(struct sockaddr_in) :
			    sizeof(struct sockaddr_in6);

			if (nd->ai_family != fam || nd->ai_addr == NULL ||
			    nd->ai_addr->sa_family != fam ||
			    (size_t)nd->ai_addrlen < want)
				continue;
			dns_addr_add(&q->addrs, nd->ai_addr, want);
			if (nd->ai_ttl >= 0 && (q->addrs.ttl == 0 ||
			    (uint32_t)nd->ai_ttl < q->addrs.ttl))
				q->addrs.ttl = dns_ttl((uint32_t)nd->ai_ttl);
		}
	}
	return q->addrs.n > 0 ? DNS_OK : DNS_NODATA;
}

static void
dns_addrs_done(void *arg, int status, int timeouts, struct ares_addrinfo *res)
{
	struct dns_query *q = arg;

	if (q->state != DNS_QS_DEAD) {
		q->status = dns_status_from_ares(status);
		if (q->status == DNS_OK)
			q->status = dns_addrs_collect(q, res);
	}
	if (res != NULL)
		ares_freeaddrinfo(res);
	dns_finish(q);
}

/* An IP literal as the whole answer; -1 when name is not one. */
static int
dns_addrs_literal(struct dns_query *q, const char *name)
{
	struct sockaddr_in sin;
	struct sockaddr_in6 sin6;

	memset(&sin, 0, sizeof(sin));
	memset(&sin6, 0, sizeof(sin6));
	if (inet_pton(AF_INET, name, &sin.sin_addr) == 1)
		sin.sin_family = AF_INET;
	else if (inet_pton(AF_INET6, name, &sin6.sin6_addr) == 1)
		sin6.sin6_family = AF_INET6;
	else
		return -1;
	if ((q->addrs.addrs = calloc(1, sizeof(*q->addrs.addrs))) == NULL) {
		q->status = DNS_TEMPFAIL;
		return 0;
	}
	if (sin.sin_family == AF_INET)
		dns_addr_add(&q->addrs, (struct sockaddr *)&sin, sizeof(sin));
	else
		dns_addr_add(&q->addrs, (struct sockaddr *)&sin6, sizeof(sin6));
	q->status = DNS_OK;
	return 0;
}

struct dns_query *
dns_lookup_addrs(struct dns *dns, const char *name, dns_addrs_cb *cb,
    void *arg)
{
	struct ares_addrinfo_hints hints;
	struct dns_query *q;

	if ((q = dns_query_new(dns, DNS_Q_ADDRS, name, arg)) == NULL)
		return NULL;
	q->addrs_cb = cb;
	if (dns_addrs_literal(q, name) == 0) {
		dns_make_ready(q);
		return q;
	}
	if (!dns_name_valid(name)) {
		q->status = DNS_NXDOMAIN;
		dns_make_ready(q);
		return q;
	}
	memset(&hints, 0, sizeof(hints));
	/* Our own order, and no RFC 6724 sort (it opens sockets to sort). */
	hints.ai_flags = ARES_AI_NOSORT;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_protocol = IPPROTO_TCP;
	switch (dns->family) {
	case DNS_IPV4_ONLY:
		hints.ai_family = AF_INET;
		break;
	case DNS_IPV6_ONLY:
		hints.ai_family = AF_INET6;
		break;
	default:
		hints.ai_family = AF_UNSPEC;
		break;
	}
	q->state = DNS_QS_ARES;
	q->submitting = 1;
	ares_getaddrinfo(dns->channel, name, NULL, &hints, dns_addrs_done, q);
	q->submitting = 0;
	dns_timer_update(dns);
	return q;
}

/* ---- MX ---- */

static uint16_t
dns_get16(const unsigned char *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static uint32_t
dns_get32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	    (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

/* Offset just past the (possibly compressed) name at off, or 0. */
static size_t
dns_skip_name(const unsigned char *m, size_t len, size_t off)
{
	while (off < len) {
		unsigned char l = m[off];

		if (l == 0)
			return off + 1;
		if ((l & 0xc0) == 0xc0)
			return off + 2 <= len ? off + 2 : 0;
		if ((l & 0xc0) != 0)
			return 0;
		off += 1 + (size_t)l;
	}
	return 0;
}

/*
 * The TTL to report: the smallest MX TTL in the answer section or, with
 * negative set, min(SOA TTL, SOA MINIMUM) from the authority section.
 * 0 when there is none or the message does not parse.
 */
uint32_t
dns_mx_ttl(const unsigned char *m, size_t len, int negative)
{
	size_t off = DNS_HDR_LEN, i, an, ns, rdlen;
	uint32_t best = UINT32_MAX, ttl;
	uint16_t type;
	unsigned qd;

	if (m == NULL || len < DNS_HDR_LEN)
		return 0;
	qd = dns_get16(m + 4);
	an = dns_get16(m + 6);
	ns = dns_get16(m + 8);
	while (qd-- > 0) {
		if ((off = dns_skip_name(m, len, off)) == 0 || off + 4 > len)
			return 0;
		off += 4;
	}
	for (i = 0; i < an + ns; i++) {
		if ((off = dns_skip_name(m, len, off)) == 0 || off + 10 > len)
			break;
		type = dns_get16(m + off);
		ttl = dns_ttl(dns_get32(m + off + 4));
		rdlen = dns_get16(m + off + 8);
		off += 10;
		if (off + rdlen > len)
			break;
		if (!negative && i < an && type == DNS_TYPE_MX && ttl < best)
			best = ttl;
		if (negative && i >= an && type == DNS_TYPE_SOA) {
			size_t p = off, end = off + rdlen;

			/* MNAME, RNAME, then five 32-bit fields. */
			if ((p = dns_skip_name(m, end, p)) == 0 ||
			    (p = dns_skip_name(m, end, p)) == 0 || p + 20 > end)
				break;
			if (dns_ttl(dns_get32(m + p + 16)) < ttl)
				ttl = dns_ttl(dns_get32(m + p + 16));
			if (ttl < best)
				best = ttl;
		}
		off += rdlen;
	}
	return best == UINT32_MAX ? 0 : best;
}

/* Fill q->mx from a parsed reply; returns the status. */
static int
dns_mx_collect(struct dns_query *q, const struct ares_mx_reply *list)
{
	const struct ares_mx_reply *r;
	struct dns_mx tmp;
	size_t n = 0, nroot = 0, i, j;

	for (r = list; r != NULL; r = r->next)
		n++;
	if (n == 0)
		return DNS_NODATA;
	if ((q->mx = calloc(n, sizeof(*q->mx))) == NULL)
		return DNS_TEMPFAIL;
	for (r = list; r != NULL; r = r->next) {
		const char *h = r->host != NULL ? r->host : "";

		if (h[0] == '\0' || strcmp(h, ".") == 0) {
			nroot++;
			continue;
		}
		if (!dns_name_valid(h) || strlen(h) > DNS_MX_HOST_MAX) {
			char qh[128];

			log_msg(LOG_WARN, NULL, "dns-mx-invalid",
			    "domain=%s host=%s", q->name,
			    log_quote(qh, sizeof(qh), h, strlen(h)));
			continue;
		}
		q->mx[q->nmx].pref = r->priority;
		snprintf(q->mx[q->nmx].host, sizeof(q->mx[q->nmx].host), "%s", h);
		/* ares_expand_name() drops it already; be sure. */
		j = strlen(q->mx[q->nmx].host);
		if (j > 0 && q->mx[q->nmx].host[j - 1] == '.')
			q->mx[q->nmx].host[j - 1] = '\0';
		q->nmx++;
	}
	if (nroot == n)
		return DNS_NULLMX;
	if (q->nmx == 0)
		return DNS_TEMPFAIL;
	/* Insertion sort: stable, and n is small. */
	for (i = 1; i < q->nmx; i++) {
		tmp = q->mx[i];
		for (j = i; j > 0 && q->mx[j - 1].pref > tmp.pref; j--)
			q->mx[j] = q->mx[j - 1];
		q->mx[j] = tmp;
	}
	return DNS_OK;
}

static void
dns_mx_done(void *arg, int status, int timeouts, unsigned char *abuf,
    int alen)
{
	struct dns_query *q = arg;
	struct ares_mx_reply *list = NULL;
	size_t len = alen > 0 && abuf != NULL ? (size_t)alen : 0;
	int st;

	if (q->state == DNS_QS_DEAD) {
		dns_finish(q);
		return;
	}
	q->status = dns_status_from_ares(status);
	if (q->status == DNS_OK) {
		st = ares_parse_mx_reply(abuf, alen, &list);
		if (st == ARES_SUCCESS)
			q->status = dns_mx_collect(q, list);
		else
			q->status = st == ARES_ENODATA ? DNS_NODATA : DNS_TEMPFAIL;
		if (list != NULL)
			ares_free_data(list);
	}
	if (q->status == DNS_OK || q->status == DNS_NULLMX)
		q->ttl = dns_mx_ttl(len ? abuf : NULL, len, 0);
	else if (q->status == DNS_NODATA || q->status == DNS_NXDOMAIN)
		q->ttl = dns_mx_ttl(len ? abuf : NULL, len, 1);
	dns_finish(q);
}

struct dns_query *
dns_lookup_mx(struct dns *dns, const char *domain, dns_mx_cb *cb, void *arg)
{
	struct dns_query *q;

	if ((q = dns_query_new(dns, DNS_Q_MX, domain, arg)) == NULL)
		return NULL;
	q->mx_cb = cb;
	if (!dns_name_valid(domain)) {
		q->status = DNS_NXDOMAIN;
		dns_make_ready(q);
		return q;
	}
	q->state = DNS_QS_ARES;
	q->submitting = 1;
	/* ares_query, not ares_search: a mail domain is always absolute. */
	ares_query(dns->channel, domain, DNS_CLASS_IN, DNS_TYPE_MX,
	    dns_mx_done, q);
	q->submitting = 0;
	dns_timer_update(dns);
	return q;
}

void
dns_cancel(struct dns_query *q)
{
	if (q == NULL)
		return;
	switch (q->state) {
	case DNS_QS_ARES:
		q->state = DNS_QS_DEAD;
		break;
	case DNS_QS_READY:
		dns_query_free(q);
		break;
	case DNS_QS_DEAD:
	case DNS_QS_RUNNING:
		/* Its own callback is running: it is freed on return. */
		break;
	}
}

/* ---- the resolver ---- */

/*
 * "1.2.3.4", "1.2.3.4:53", "::1", "[::1]", "[::1]:53" into node.
 */
static int
dns_parse_server(const char *s, struct ares_addr_port_node *node,
    char *errbuf, size_t errlen)
{
	char host[INET6_ADDRSTRLEN + 1];
	const char *hs = s, *he, *port = NULL, *colon;
	unsigned long p = 53;
	char *end;

	if (s[0] == '[') {
		hs = s + 1;
		if ((he = strchr(hs, ']')) == NULL)
			goto bad;
		if (he[1] == ':')
			port = he + 2;
		else if (he[1] != '\0')
			goto bad;
	} else if ((colon = strchr(s, ':')) != NULL &&
	    strchr(colon + 1, ':') == NULL) {
		he = colon;
		port = colon + 1;
	} else
		he = s + strlen(s);
	if (he == hs || (size_t)(he - hs) >= sizeof(host))
		goto bad;
	memcpy(host, hs, (size_t)(he - hs));
	host[he - hs] = '\0';
	if (port != NULL) {
		if (!isdigit((unsigned char)port[0]))
			goto bad;
		errno = 0;
		p = strtoul(port, &end, 10);
		if (errno != 0 || *end != '\0' || p == 0 || p > 65535)
			goto bad;
	}
	memset(node, 0, sizeof(*node));
	if (s[0] != '[' && inet_pton(AF_INET, host, &node->addr.addr4) == 1)
		node->family = AF_INET;
	else if (inet_pton(AF_INET6, host, &node->addr.addr6) == 1)
		node->family = AF_INET6;
	else
		goto bad;
	node->udp_port = node->tcp_port = (int)p;
	return 0;
bad:
	snprintf(errbuf, errlen, "invalid DNS server \"%.80s\" (want "
	    "IP, IP:port or [IPv6]:port)", s);
	return -1;
}

struct dns *
dns_new(struct event_base *base, const char *const *servers,
    unsigned timeout_ms, unsigned tries, char *errbuf, size_t errlen)
{
	/* c-ares copies these; they are not const in struct ares_options. */
	static char lookups_dns_only[] = "b";
	static char resolvconf_none[] = "/dev/null";
	struct ares_addr_port_node *nodes = NULL;
	struct ares_options opts;
	struct dns *dns;
	size_t n = 0, i;
	int optmask, r;

	if (timeout_ms > INT_MAX || tries > INT_MAX) {
		snprintf(errbuf, errlen, "DNS timeout or tries too large");
		return NULL;
	}
	if (servers != NULL) {
		while (servers[n] != NULL)
			n++;
		if (n == 0) {
			snprintf(errbuf, errlen, "empty DNS server list");
			return NULL;
		}
		if ((nodes = calloc(n, sizeof(*nodes))) == NULL) {
			snprintf(errbuf, errlen, "out of memory");
			return NULL;
		}
		for (i = 0; i < n; i++) {
			if (dns_parse_server(servers[i], &nodes[i], errbuf,
			    errlen) == -1) {
				free(nodes);
				return NULL;
			}
			nodes[i].next = i + 1 < n ? &nodes[i + 1] : NULL;
		}
	}
	if ((dns = calloc(1, sizeof(*dns))) == NULL) {
		free(nodes);
		snprintf(errbuf, errlen, "out of memory");
		return NULL;
	}
	dns->base = base;
	TAILQ_INIT(&dns->queries);
	TAILQ_INIT(&dns->ready);
	TAILQ_INIT(&dns->socks);
	if ((r = ares_library_init(ARES_LIB_INIT_ALL)) != ARES_SUCCESS) {
		snprintf(errbuf, errlen, "c-ares init: %s", ares_strerror(r));
		goto fail;
	}
	dns->libinit = 1;

	memset(&opts, 0, sizeof(opts));
	optmask = ARES_OPT_SOCK_STATE_CB | ARES_OPT_FLAGS;
	opts.sock_state_cb = dns_sock_state;
	opts.sock_state_cb_data = dns;
	/* HOSTALIASES is a per-user shell feature, not for a mail relay. */
	opts.flags = ARES_FLAG_NOALIASES;
	if (timeout_ms > 0) {
		optmask |= ARES_OPT_TIMEOUTMS;
		opts.timeout = (int)timeout_ms;
	}
	if (tries > 0) {
		optmask |= ARES_OPT_TRIES;
		opts.tries = (int)tries;
	}
	if (nodes != NULL) {
		/* Only the given servers: no hosts file, search or resolv.conf. */
		optmask |= ARES_OPT_LOOKUPS | ARES_OPT_DOMAINS |
		    ARES_OPT_RESOLVCONF;
		opts.lookups = lookups_dns_only;
		opts.domains = NULL;
		opts.ndomains = 0;
		opts.resolvconf_path = resolvconf_none;
	}
	if ((r = ares_init_options(&dns->channel, &opts, optmask)) !=
	    ARES_SUCCESS) {
		snprintf(errbuf, errlen, "c-ares: %s", ares_strerror(r));
		goto fail;
	}
	dns->channel_ok = 1;
	if (nodes != NULL &&
	    (r = ares_set_servers_ports(dns->channel, nodes)) != ARES_SUCCESS) {
		snprintf(errbuf, errlen, "c-ares servers: %s", ares_strerror(r));
		goto fail;
	}
	dns->timer = evtimer_new(base, dns_timer_cb, dns);
	dns->ev_ready = event_new(base, -1, 0, dns_ready_cb, dns);
	if (dns->timer == NULL || dns->ev_ready == NULL) {
		snprintf(errbuf, errlen, "out of memory");
		goto fail;
	}
	free(nodes);
	return dns;
fail:
	free(nodes);
	dns_free(dns);
	return NULL;
}

void
dns_set_family(struct dns *dns, enum dns_family f)
{
	dns->family = f;
}

size_t
dns_pending(const struct dns *dns)
{
	return dns->nqueries;
}

void
dns_free(struct dns *dns)
{
	struct dns_query *q;
	struct dns_sock *s;

	if (dns == NULL)
		return;
	if (dns->incb > 0)
		log_panic("dns_free() from inside a dns callback");
	dns->closing = 1;
	/*
	 * c-ares calls back every query it holds (ARES_EDESTRUCTION, or
	 * ARES_SUCCESS for a getaddrinfo half done): dns_deliver() turns all
	 * of them into DNS_CANCELLED, and frees the dead ones.
	 */
	if (dns->channel_ok)
		ares_destroy(dns->channel);
	dns->channel_ok = 0;
	while ((q = TAILQ_FIRST(&dns->ready)) != NULL) {
		TAILQ_REMOVE(&dns->ready, q, rentry);
		dns->nready--;
		q->state = DNS_QS_RUNNING;
		dns_deliver(q);
	}
	if (!TAILQ_EMPTY(&dns->queries))
		log_panic("%zu queries left after ares_destroy", dns->nqueries);
	/* ares_destroy() closed its sockets through dns_sock_state(). */
	while ((s = TAILQ_FIRST(&dns->socks)) != NULL)
		dns_sock_drop(dns, s);
	if (dns->timer != NULL)
		event_free(dns->timer);
	if (dns->ev_ready != NULL)
		event_free(dns->ev_ready);
	if (dns->libinit)
		ares_library_cleanup();
	free(dns);
}
