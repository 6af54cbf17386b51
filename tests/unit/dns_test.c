/*
 * dns_test: proxy/dns.c against a fake authoritative server that lives in
 * this process: a UDP socket on 127.0.0.1, served by the same libevent loop,
 * answering from a small table with messages built by hand. Nothing here
 * reaches the real network or the system resolver.
 */
#include <check.h>

#include <sys/socket.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <event2/event.h>

#include "dns.h"

#define T_A		1
#define T_SOA		6
#define T_MX		15
#define T_AAAA		28
#define RC_NOERROR	0
#define RC_SERVFAIL	2
#define RC_NXDOMAIN	3
#define RC_REFUSED	5

/* ---- the fake server ---- */

struct zrr {
	const char	*owner;
	uint16_t	 type;
	uint32_t	 ttl;
	uint16_t	 pref;		/* MX only */
	const char	*data;		/* address, or MX target ("" = root) */
};

/*
 * Names not listed are NOERROR with no data (plus an SOA), except these:
 * nx.test NXDOMAIN, servfail.test SERVFAIL, refused.test REFUSED,
 * silent.test never answered, held.test answered on fake_release().
 */
static const struct zrr zone[] = {
	{ "both.test",	 T_A,	 300, 0,  "127.0.0.10" },
	{ "both.test",	 T_AAAA, 300, 0,  "::1" },
	{ "both.test",	 T_A,	 300, 0,  "127.0.0.11" },
	{ "both.test",	 T_A,	 300, 0,  "127.0.0.10" },	/* duplicate */
	{ "v4.test",	 T_A,	 300, 0,  "127.0.0.12" },
	{ "held.test",	 T_A,	 300, 0,  "127.0.0.13" },
	{ "held.test",	 T_MX,	 300, 10, "mx1.test" },
	{ "mx.test",	 T_MX,	 600, 20, "mx2.test" },
	{ "mx.test",	 T_MX,	 120, 10, "mx1.test" },
	{ "mx.test",	 T_MX,	 300, 30, "mx3.test" },
	{ "mx.test",	 T_MX,	 300, 10, "mx1b.test" },
	{ "nullmx.test", T_MX,	 3600, 0, "" },
	{ "mixmx.test",	 T_MX,	 300, 0,  "" },
	{ "mixmx.test",	 T_MX,	 300, 10, "mx1.test" },
	{ "badmx.test",	 T_MX,	 300, 10, "bad host.test" },
};
#define SOA_TTL		900
#define SOA_MINIMUM	60

#define FAKE_HELD_MAX	16

struct held {
	unsigned char		m[512];
	size_t			len;
	struct sockaddr_storage	from;
	socklen_t		fromlen;
};

struct fake {
	int		 fd;
	struct event	*ev;
	uint16_t	 port;
	unsigned	 nq, na, naaaa, nmx;	/* queries seen */
	struct held	 held[FAKE_HELD_MAX];
	size_t		 nheld;
};

struct wbuf {
	unsigned char	b[1024];
	size_t		len;
	int		over;
};

static void
put(struct wbuf *w, const void *p, size_t n)
{
	if (w->over || n > sizeof(w->b) - w->len) {
		w->over = 1;
		return;
	}
	memcpy(w->b + w->len, p, n);
	w->len += n;
}

static void
put8(struct wbuf *w, unsigned v)
{
	unsigned char c = (unsigned char)v;

	put(w, &c, 1);
}

static void
put16(struct wbuf *w, unsigned v)
{
	put8(w, (v >> 8) & 0xff);
	put8(w, v & 0xff);
}

static void
put32(struct wbuf *w, uint32_t v)
{
	put16(w, v >> 16);
	put16(w, v & 0xffff);
}

/* "a.b" as labels; "" is the root. */
static void
put_name(struct wbuf *w, const char *name)
{
	const char *p = name, *dot;
	size_t l;

	while (*p != '\0') {
		dot = strchr(p, '.');
		l = dot != NULL ? (size_t)(dot - p) : strlen(p);
		ck_assert(l > 0 && l < 64);
		put8(w, (unsigned)l);
		put(w, p, l);
		p += l;
		if (*p == '.')
			p++;
	}
	put8(w, 0);
}

/* Write the RDLENGTH reserved at pos from what followed it. */
static void
patch_rdlen(struct wbuf *w, size_t pos)
{
	size_t n = w->len - pos - 2;

	if (w->over)
		return;
	w->b[pos] = (unsigned char)(n >> 8);
	w->b[pos + 1] = (unsigned char)(n & 0xff);
}

static void
put_rr(struct wbuf *w, const struct zrr *rr)
{
	unsigned char a[16];
	size_t pos;

	put16(w, 0xc00c);		/* owner: the question name */
	put16(w, rr->type);
	put16(w, 1);			/* IN */
	put32(w, rr->ttl);
	pos = w->len;
	put16(w, 0);
	switch (rr->type) {
	case T_A:
		ck_assert_int_eq(inet_pton(AF_INET, rr->data, a), 1);
		put(w, a, 4);
		break;
	case T_AAAA:
		ck_assert_int_eq(inet_pton(AF_INET6, rr->data, a), 1);
		put(w, a, 16);
		break;
	case T_MX:
		put16(w, rr->pref);
		put_name(w, rr->data);
		break;
	default:
		ck_abort_msg("zone type %u", rr->type);
	}
	patch_rdlen(w, pos);
}

static void
put_soa(struct wbuf *w)
{
	size_t pos;

	put_name(w, "test");
	put16(w, T_SOA);
	put16(w, 1);
	put32(w, SOA_TTL);
	pos = w->len;
	put16(w, 0);
	put_name(w, "ns.test");
	put_name(w, "hostmaster.test");
	put32(w, 1);			/* serial */
	put32(w, 3600);			/* refresh */
	put32(w, 600);			/* retry */
	put32(w, 86400);		/* expire */
	put32(w, SOA_MINIMUM);
	patch_rdlen(w, pos);
}

/* The single question of m: name (dotted, no trailing dot) and type. */
static int
fake_question(const unsigned char *m, size_t len, char *name, size_t namesz,
    uint16_t *qtype, size_t *qend)
{
	size_t off = 12, n = 0, l;

	if (len < 12 || m[4] != 0 || m[5] != 1)
		return -1;
	for (;;) {
		if (off >= len)
			return -1;
		l = m[off++];
		if (l == 0)
			break;
		if (l > 63 || off + l > len || n + l + 2 > namesz)
			return -1;
		if (n > 0)
			name[n++] = '.';
		memcpy(name + n, m + off, l);
		n += l;
		off += l;
	}
	name[n] = '\0';
	if (off + 4 > len)
		return -1;
	*qtype = (uint16_t)(m[off] << 8 | m[off + 1]);
	*qend = off + 4;
	return 0;
}

static void
fake_reply(struct fake *f, const unsigned char *m, size_t len,
    const struct sockaddr *from, socklen_t fromlen, int release)
{
	struct wbuf w;
	char name[256];
	uint16_t qtype;
	size_t qend, i, an = 0;
	int rcode = RC_NOERROR;

	if (fake_question(m, len, name, sizeof(name), &qtype, &qend) == -1)
		return;
	if (!release) {
		f->nq++;
		f->na += qtype == T_A;
		f->naaaa += qtype == T_AAAA;
		f->nmx += qtype == T_MX;
		if (strcasecmp(name, "silent.test") == 0)
			return;
		if (strcasecmp(name, "held.test") == 0) {
			struct held *h;

			ck_assert(f->nheld < FAKE_HELD_MAX);
			ck_assert(len <= sizeof(h->m));
			h = &f->held[f->nheld++];
			memcpy(h->m, m, len);
			h->len = len;
			memcpy(&h->from, from, fromlen);
			h->fromlen = fromlen;
			return;
		}
	}
	if (strcasecmp(name, "nx.test") == 0)
		rcode = RC_NXDOMAIN;
	else if (strcasecmp(name, "servfail.test") == 0)
		rcode = RC_SERVFAIL;
	else if (strcasecmp(name, "refused.test") == 0)
		rcode = RC_REFUSED;
	if (rcode == RC_NOERROR)
		for (i = 0; i < sizeof(zone) / sizeof(zone[0]); i++)
			an += strcasecmp(zone[i].owner, name) == 0 &&
			    zone[i].type == qtype;

	memset(&w, 0, sizeof(w));
	put(&w, m, 2);				/* ID */
	put8(&w, 0x80 | 0x04 | (m[2] & 0x01));	/* QR, AA, RD echoed */
	put8(&w, 0x80 | (unsigned)rcode);	/* RA, RCODE */
	put16(&w, 1);
	put16(&w, (unsigned)an);
	put16(&w, an == 0 && rcode != RC_SERVFAIL && rcode != RC_REFUSED);
	put16(&w, 0);
	put(&w, m + 12, qend - 12);		/* the question, as asked */
	for (i = 0; an > 0 && i < sizeof(zone) / sizeof(zone[0]); i++)
		if (strcasecmp(zone[i].owner, name) == 0 &&
		    zone[i].type == qtype)
			put_rr(&w, &zone[i]);
	if (an == 0 && rcode != RC_SERVFAIL && rcode != RC_REFUSED)
		put_soa(&w);
	ck_assert(!w.over);
	ck_assert(sendto(f->fd, w.b, w.len, 0, from, fromlen) ==
	    (ssize_t)w.len);
}

static void
fake_read(evutil_socket_t fd, short what, void *arg)
{
	struct fake *f = arg;
	unsigned char m[1500];
	struct sockaddr_storage from;
	socklen_t fromlen;
	ssize_t n;

	for (;;) {
		fromlen = sizeof(from);
		n = recvfrom(fd, m, sizeof(m), 0, (struct sockaddr *)&from,
		    &fromlen);
		if (n < 0) {
			ck_assert(errno == EAGAIN || errno == EWOULDBLOCK ||
			    errno == EINTR);
			return;
		}
		fake_reply(f, m, (size_t)n, (struct sockaddr *)&from, fromlen, 0);
	}
}

/* Answer every held query now. */
static void
fake_release(struct fake *f)
{
	size_t i;

	for (i = 0; i < f->nheld; i++)
		fake_reply(f, f->held[i].m, f->held[i].len,
		    (struct sockaddr *)&f->held[i].from, f->held[i].fromlen, 1);
	f->nheld = 0;
}

static void
fake_start(struct fake *f, struct event_base *base)
{
	struct sockaddr_in sin;
	socklen_t sl = sizeof(sin);

	memset(f, 0, sizeof(*f));
	f->fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	ck_assert_int_ge(f->fd, 0);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(bind(f->fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	ck_assert_int_eq(getsockname(f->fd, (struct sockaddr *)&sin, &sl), 0);
	f->port = ntohs(sin.sin_port);
	f->ev = event_new(base, f->fd, EV_READ | EV_PERSIST, fake_read, f);
	ck_assert_ptr_nonnull(f->ev);
	ck_assert_int_eq(event_add(f->ev, NULL), 0);
}

static void
fake_stop(struct fake *f)
{
	event_free(f->ev);
	close(f->fd);
}

/* ---- test environment ---- */

struct env {
	struct event_base	*base;
	struct fake		 fake;
	struct dns		*dns;
};

static void
env_init(struct env *e, unsigned timeout_ms)
{
	char srv[32], err[256] = "";
	const char *servers[2] = { srv, NULL };

	memset(e, 0, sizeof(*e));
	e->base = event_base_new();
	ck_assert_ptr_nonnull(e->base);
	fake_start(&e->fake, e->base);
	snprintf(srv, sizeof(srv), "127.0.0.1:%u", (unsigned)e->fake.port);
	e->dns = dns_new(e->base, servers, timeout_ms, 1, err, sizeof(err));
	ck_assert_msg(e->dns != NULL, "dns_new: %s", err);
}

static void
env_done(struct env *e)
{
	dns_free(e->dns);
	fake_stop(&e->fake);
	event_base_free(e->base);
}

static void
deadline_cb(evutil_socket_t fd, short what, void *arg)
{
	*(int *)arg = 1;
}

/* Run the loop until done(arg), or 5 s pass; returns done(arg). */
static int
run_until(struct env *e, int (*done)(void *), void *arg)
{
	struct timeval tv = { 5, 0 };
	struct event *t;
	int expired = 0;

	t = evtimer_new(e->base, deadline_cb, &expired);
	ck_assert_ptr_nonnull(t);
	evtimer_add(t, &tv);
	while (!done(arg) && !expired)
		event_base_loop(e->base, EVLOOP_ONCE);
	event_free(t);
	return done(arg);
}

struct res {
	int			 called;
	int			 status;
	size_t			 n;
	struct sockaddr_storage	 addrs[8];
	struct dns_mx		 mx[8];
	uint32_t		 ttl;
	struct dns_query	**self;		/* cleared on callback */
	struct dns_query	**victim;	/* cancelled on callback */
	struct dns		*relookup;	/* try a lookup on callback */
	int			 relookup_null;
	int			 cancel_self;	/* dns_cancel(*self) on callback */
	struct dns		*chain;		/* start an MX lookup on callback */
	struct res		*chain_res;
};

static void addrs_cb(void *, int, const struct dns_addrs *);
static void mx_cb(void *, int, const struct dns_mx *, size_t, uint32_t);
static struct res junk;

static void
res_callback(struct res *r, int status)
{
	r->called++;
	r->status = status;
	if (r->cancel_self)
		dns_cancel(*r->self);		/* must be a no-op */
	if (r->self != NULL)
		*r->self = NULL;
	if (r->victim != NULL && *r->victim != NULL) {
		dns_cancel(*r->victim);
		*r->victim = NULL;
	}
	if (r->chain != NULL)
		ck_assert_ptr_nonnull(dns_lookup_mx(r->chain, "mx.test", mx_cb,
		    r->chain_res));
	if (r->relookup != NULL)
		r->relookup_null = dns_lookup_addrs(r->relookup, "127.0.0.1",
		    addrs_cb, &junk) == NULL;
}

static void
addrs_cb(void *arg, int status, const struct dns_addrs *a)
{
	struct res *r = arg;
	size_t i;

	ck_assert_ptr_nonnull(a);
	if (status != DNS_OK)
		ck_assert_uint_eq(a->n, 0);
	else
		ck_assert_uint_gt(a->n, 0);
	r->n = a->n;
	for (i = 0; i < a->n && i < 8; i++)
		r->addrs[i] = a->addrs[i];
	res_callback(r, status);
}

static void
mx_cb(void *arg, int status, const struct dns_mx *mx, size_t n, uint32_t ttl)
{
	struct res *r = arg;
	size_t i;

	if (n > 0)
		ck_assert_ptr_nonnull(mx);
	r->n = n;
	for (i = 0; i < n && i < 8; i++)
		r->mx[i] = mx[i];
	r->ttl = ttl;
	res_callback(r, status);
}

static int
is_called(void *arg)
{
	return ((struct res *)arg)->called > 0;
}

static int
none_pending(void *arg)
{
	return dns_pending(arg) == 0;
}

static int
three_held(void *arg)
{
	return ((struct fake *)arg)->nheld >= 3;
}

static int
two_held(void *arg)
{
	return ((struct fake *)arg)->nheld >= 2;
}

/* "1.2.3.4" or "::1" of addrs[i]; checks the port is 0. */
static const char *
addr_ip(const struct res *r, size_t i, char *buf, size_t bufsz)
{
	const struct sockaddr *sa = (const struct sockaddr *)&r->addrs[i];

	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *s = (const void *)sa;

		ck_assert_uint_eq(s->sin_port, 0);
		return inet_ntop(AF_INET, &s->sin_addr, buf, bufsz);
	}
	ck_assert_int_eq(sa->sa_family, AF_INET6);
	ck_assert_uint_eq(((const struct sockaddr_in6 *)(const void *)sa)->
	    sin6_port, 0);
	return inet_ntop(AF_INET6,
	    &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, buf,
	    bufsz);
}

#define ck_addr(r, i, want) do {					\
	char _b[INET6_ADDRSTRLEN];					\
	ck_assert_str_eq(addr_ip((r), (i), _b, sizeof(_b)), (want));	\
} while (0)

/* Look up name, check the callback is not called inside, wait for it. */
static void
lookup_addrs_wait(struct env *e, const char *name, struct res *r)
{
	struct dns_query *q;

	memset(r, 0, sizeof(*r));
	q = dns_lookup_addrs(e->dns, name, addrs_cb, r);
	ck_assert_ptr_nonnull(q);
	ck_assert_int_eq(r->called, 0);
	ck_assert_msg(run_until(e, is_called, r), "no answer for %s", name);
	ck_assert_int_eq(r->called, 1);
}

static void
lookup_mx_wait(struct env *e, const char *name, struct res *r)
{
	struct dns_query *q;

	memset(r, 0, sizeof(*r));
	q = dns_lookup_mx(e->dns, name, mx_cb, r);
	ck_assert_ptr_nonnull(q);
	ck_assert_int_eq(r->called, 0);
	ck_assert_msg(run_until(e, is_called, r), "no answer for %s", name);
	ck_assert_int_eq(r->called, 1);
}

/* ---- addresses ---- */

START_TEST(test_addrs_both)
{
	struct env e;
	struct res r;

	env_init(&e, 2000);
	lookup_addrs_wait(&e, "both.test", &r);
	ck_assert_int_eq(r.status, DNS_OK);
	ck_assert_uint_eq(r.n, 3);		/* the duplicate A is dropped */
	ck_addr(&r, 0, "127.0.0.10");
	ck_addr(&r, 1, "127.0.0.11");
	ck_addr(&r, 2, "::1");
	ck_assert_uint_eq(e.fake.na, 1);
	ck_assert_uint_eq(e.fake.naaaa, 1);
	ck_assert_uint_eq(dns_pending(e.dns), 0);
	env_done(&e);
}
END_TEST

START_TEST(test_addrs_v6_first)
{
	struct env e;
	struct res r;

	env_init(&e, 2000);
	dns_set_family(e.dns, DNS_IPV6_FIRST);
	lookup_addrs_wait(&e, "both.test", &r);
	ck_assert_int_eq(r.status, DNS_OK);
	ck_assert_uint_eq(r.n, 3);
	ck_addr(&r, 0, "::1");
	ck_addr(&r, 1, "127.0.0.10");
	ck_addr(&r, 2, "127.0.0.11");
	env_done(&e);
}
END_TEST

START_TEST(test_addrs_v4_only)
{
	struct env e;
	struct res r;

	env_init(&e, 2000);
	dns_set_family(e.dns, DNS_IPV4_ONLY);
	lookup_addrs_wait(&e, "both.test", &r);
	ck_assert_int_eq(r.status, DNS_OK);
	ck_assert_uint_eq(r.n, 2);
	ck_addr(&r, 0, "127.0.0.10");
	ck_addr(&r, 1, "127.0.0.11");
	ck_assert_uint_eq(e.fake.naaaa, 0);
	env_done(&e);
}
END_TEST

START_TEST(test_addrs_a_only)
{
	struct env e;
	struct res r;

	env_init(&e, 2000);
	lookup_addrs_wait(&e, "v4.test", &r);	/* AAAA is NODATA */
	ck_assert_int_eq(r.status, DNS_OK);
	ck_assert_uint_eq(r.n, 1);
	ck_addr(&r, 0, "127.0.0.12");
	env_done(&e);
}
END_TEST

START_TEST(test_addrs_negative)
{
	struct env e;
	struct res r;

	env_init(&e, 2000);
	lookup_addrs_wait(&e, "nodata.test", &r);
	ck_assert_int_eq(r.status, DNS_NODATA);
	lookup_addrs_wait(&e, "nx.test", &r);
	ck_assert_int_eq(r.status, DNS_NXDOMAIN);
	lookup_addrs_wait(&e, "servfail.test", &r);
	ck_assert_int_eq(r.status, DNS_TEMPFAIL);
	lookup_addrs_wait(&e, "refused.test", &r);
	ck_assert_int_eq(r.status, DNS_TEMPFAIL);
	ck_assert_uint_eq(dns_pending(e.dns), 0);
	env_done(&e);
}
END_TEST

START_TEST(test_addrs_timeout)
{
	struct env e;
	struct res r;

	env_init(&e, 200);
	lookup_addrs_wait(&e, "silent.test", &r);
	ck_assert_int_eq(r.status, DNS_TEMPFAIL);
	ck_assert_uint_eq(r.n, 0);
	ck_assert_uint_ge(e.fake.nq, 2);	/* it did ask */
	env_done(&e);
}
END_TEST

START_TEST(test_addrs_literal)
{
	struct env e;
	struct res r;

	env_init(&e, 2000);
	lookup_addrs_wait(&e, "127.0.0.1", &r);
	ck_assert_int_eq(r.status, DNS_OK);
	ck_assert_uint_eq(r.n, 1);
	ck_addr(&r, 0, "127.0.0.1");
	lookup_addrs_wait(&e, "::1", &r);
	ck_assert_int_eq(r.status, DNS_OK);
	ck_assert_uint_eq(r.n, 1);
	ck_addr(&r, 0, "::1");
	/* Literals pass whatever the family setting. */
	dns_set_family(e.dns, DNS_IPV6_ONLY);
	lookup_addrs_wait(&e, "127.0.0.2", &r);
	ck_assert_int_eq(r.status, DNS_OK);
	ck_addr(&r, 0, "127.0.0.2");
	ck_assert_uint_eq(e.fake.nq, 0);
	ck_assert_uint_eq(dns_pending(e.dns), 0);
	env_done(&e);
}
END_TEST

START_TEST(test_invalid_names)
{
	static const char *const bad[] = {
		"", ".", "a..test", ".a.test", "bad name.test", "x\x01y.test",
		"a.test..", "caf\xc3\xa9.test"
	};
	struct env e;
	struct res r;
	size_t i;

	env_init(&e, 2000);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		lookup_addrs_wait(&e, bad[i], &r);
		ck_assert_int_eq(r.status, DNS_NXDOMAIN);
		lookup_mx_wait(&e, bad[i], &r);
		ck_assert_int_eq(r.status, DNS_NXDOMAIN);
	}
	ck_assert_uint_eq(e.fake.nq, 0);
	env_done(&e);
}
END_TEST

/* c-ares answers ".onion" from inside ares_getaddrinfo(): still deferred. */
START_TEST(test_addrs_onion_deferred)
{
	struct env e;
	struct res r;

	env_init(&e, 2000);
	lookup_addrs_wait(&e, "hidden.onion", &r);
	ck_assert_int_eq(r.status, DNS_NXDOMAIN);
	ck_assert_uint_eq(e.fake.nq, 0);
	env_done(&e);
}
END_TEST

START_TEST(test_addrs_trailing_dot)
{
	struct env e;
	struct res r;

	env_init(&e, 2000);
	lookup_addrs_wait(&e, "v4.test.", &r);
	ck_assert_int_eq(r.status, DNS_OK);
	ck_addr(&r, 0, "127.0.0.12");
	env_done(&e);
}
END_TEST

/* ---- MX ---- */

START_TEST(test_mx_sorted)
{
	struct env e;
	struct res r;

	env_init(&e, 2000);
	lookup_mx_wait(&e, "mx.test", &r);
	ck_assert_int_eq(r.status, DNS_OK);
	ck_assert_uint_eq(r.n, 4);
	ck_assert_uint_eq(r.mx[0].pref, 10);
	ck_assert_str_eq(r.mx[0].host, "mx1.test");
	ck_assert_uint_eq(r.mx[1].pref, 10);	/* answer order among equals */
	ck_assert_str_eq(r.mx[1].host, "mx1b.test");
	ck_assert_uint_eq(r.mx[2].pref, 20);
	ck_assert_str_eq(r.mx[2].host, "mx2.test");
	ck_assert_uint_eq(r.mx[3].pref, 30);
	ck_assert_str_eq(r.mx[3].host, "mx3.test");
	ck_assert_uint_eq(r.ttl, 120);		/* the smallest */
	ck_assert_uint_eq(e.fake.nmx, 1);
	env_done(&e);
}
END_TEST

START_TEST(test_mx_nodata)
{
	struct env e;
	struct res r;

	env_init(&e, 2000);
	lookup_mx_wait(&e, "nodata.test", &r);
	ck_assert_int_eq(r.status, DNS_NODATA);
	ck_assert_uint_eq(r.n, 0);
	ck_assert_uint_eq(r.ttl, SOA_MINIMUM);
	lookup_mx_wait(&e, "v4.test", &r);	/* has an A, no MX */
	ck_assert_int_eq(r.status, DNS_NODATA);
	env_done(&e);
}
END_TEST

START_TEST(test_mx_nxdomain)
{
	struct env e;
	struct res r;

	env_init(&e, 2000);
	lookup_mx_wait(&e, "nx.test", &r);
	ck_assert_int_eq(r.status, DNS_NXDOMAIN);
	ck_assert_uint_eq(r.n, 0);
	ck_assert_uint_eq(r.ttl, SOA_MINIMUM);
	env_done(&e);
}
END_TEST

START_TEST(test_mx_nullmx)
{
	struct env e;
	struct res r;

	env_init(&e, 2000);
	lookup_mx_wait(&e, "nullmx.test", &r);
	ck_assert_int_eq(r.status, DNS_NULLMX);
	ck_assert_uint_eq(r.n, 0);
	ck_assert_uint_eq(r.ttl, 3600);
	/* "." next to a real MX is just dropped. */
	lookup_mx_wait(&e, "mixmx.test", &r);
	ck_assert_int_eq(r.status, DNS_OK);
	ck_assert_uint_eq(r.n, 1);
	ck_assert_str_eq(r.mx[0].host, "mx1.test");
	env_done(&e);
}
END_TEST

START_TEST(test_mx_bad_target)
{
	struct env e;
	struct res r;

	env_init(&e, 2000);
	lookup_mx_wait(&e, "badmx.test", &r);
	ck_assert_int_eq(r.status, DNS_TEMPFAIL);
	ck_assert_uint_eq(r.n, 0);
	env_done(&e);
}
END_TEST

START_TEST(test_mx_tempfail)
{
	struct env e;
	struct res r;

	env_init(&e, 200);
	lookup_mx_wait(&e, "servfail.test", &r);
	ck_assert_int_eq(r.status, DNS_TEMPFAIL);
	ck_assert_uint_eq(r.ttl, 0);
	lookup_mx_wait(&e, "silent.test", &r);
	ck_assert_int_eq(r.status, DNS_TEMPFAIL);
	ck_assert_uint_eq(e.fake.nmx, 2);
	env_done(&e);
}
END_TEST

/* ---- cancellation and teardown ---- */

START_TEST(test_cancel_in_flight)
{
	struct env e;
	struct res ra, rm, rs;
	struct dns_query *qa, *qm;

	env_init(&e, 2000);
	memset(&ra, 0, sizeof(ra));
	memset(&rm, 0, sizeof(rm));
	qa = dns_lookup_addrs(e.dns, "held.test", addrs_cb, &ra);
	qm = dns_lookup_mx(e.dns, "held.test", mx_cb, &rm);
	ck_assert_ptr_nonnull(qa);
	ck_assert_ptr_nonnull(qm);
	/* A, AAAA and MX have reached the server. */
	ck_assert(run_until(&e, three_held, &e.fake));
	dns_cancel(qa);
	dns_cancel(qm);
	ck_assert_uint_eq(dns_pending(e.dns), 2);	/* c-ares still has them */
	fake_release(&e.fake);
	ck_assert(run_until(&e, none_pending, e.dns));
	ck_assert_int_eq(ra.called, 0);
	ck_assert_int_eq(rm.called, 0);
	/* The channel still works. */
	memset(&rs, 0, sizeof(rs));
	ck_assert_ptr_nonnull(dns_lookup_addrs(e.dns, "held.test", addrs_cb,
	    &rs));
	ck_assert(run_until(&e, two_held, &e.fake));
	ck_assert_int_eq(rs.called, 0);
	fake_release(&e.fake);
	ck_assert(run_until(&e, is_called, &rs));
	ck_assert_int_eq(rs.status, DNS_OK);
	ck_addr(&rs, 0, "127.0.0.13");
	env_done(&e);
}
END_TEST

START_TEST(test_cancel_then_timeout)
{
	struct env e;
	struct res r;
	struct dns_query *q;

	env_init(&e, 200);
	memset(&r, 0, sizeof(r));
	q = dns_lookup_mx(e.dns, "silent.test", mx_cb, &r);
	ck_assert_ptr_nonnull(q);
	dns_cancel(q);
	ck_assert(run_until(&e, none_pending, e.dns));
	ck_assert_uint_eq(e.fake.nmx, 1);
	ck_assert_int_eq(r.called, 0);
	env_done(&e);
}
END_TEST

START_TEST(test_cancel_literal)
{
	struct env e;
	struct res r1, r2;
	struct dns_query *q;

	env_init(&e, 2000);
	memset(&r1, 0, sizeof(r1));
	q = dns_lookup_addrs(e.dns, "127.0.0.1", addrs_cb, &r1);
	ck_assert_ptr_nonnull(q);
	dns_cancel(q);
	ck_assert_uint_eq(dns_pending(e.dns), 0);
	lookup_addrs_wait(&e, "127.0.0.2", &r2);
	ck_assert_int_eq(r2.status, DNS_OK);
	ck_assert_int_eq(r1.called, 0);
	dns_cancel(NULL);
	env_done(&e);
}
END_TEST

/* A's callback cancels B, as a session destructor would. */
START_TEST(test_cancel_from_callback)
{
	struct env e;
	struct res ra, rb;
	struct dns_query *qa, *qb;

	env_init(&e, 2000);
	memset(&ra, 0, sizeof(ra));
	memset(&rb, 0, sizeof(rb));
	qb = dns_lookup_addrs(e.dns, "held.test", addrs_cb, &rb);
	rb.self = &qb;
	ra.victim = &qb;
	qa = dns_lookup_addrs(e.dns, "both.test", addrs_cb, &ra);
	ra.self = &qa;
	ck_assert_ptr_nonnull(qa);
	ck_assert_ptr_nonnull(qb);
	ck_assert(run_until(&e, is_called, &ra));
	ck_assert_int_eq(ra.status, DNS_OK);
	ck_assert_ptr_null(qa);
	ck_assert_ptr_null(qb);			/* cancelled by A */
	ck_assert(run_until(&e, two_held, &e.fake));
	fake_release(&e.fake);
	ck_assert(run_until(&e, none_pending, e.dns));
	ck_assert_int_eq(rb.called, 0);
	env_done(&e);
}
END_TEST

/* New lookups from inside callbacks, and cancelling oneself there. */
START_TEST(test_lookup_from_callback)
{
	struct env e;
	struct res r1, r2, r3;
	struct dns_query *q1, *q3;

	env_init(&e, 2000);
	memset(&r1, 0, sizeof(r1));
	memset(&r2, 0, sizeof(r2));
	memset(&r3, 0, sizeof(r3));
	/* From a c-ares answer... */
	r1.chain = e.dns;
	r1.chain_res = &r2;
	r1.self = &q1;
	r1.cancel_self = 1;
	q1 = dns_lookup_addrs(e.dns, "both.test", addrs_cb, &r1);
	ck_assert_ptr_nonnull(q1);
	/* ...and from a deferred literal. */
	r3.chain = e.dns;
	r3.chain_res = &r2;
	r3.self = &q3;
	r3.cancel_self = 1;
	q3 = dns_lookup_addrs(e.dns, "127.0.0.1", addrs_cb, &r3);
	ck_assert_ptr_nonnull(q3);
	ck_assert(run_until(&e, none_pending, e.dns));
	ck_assert_int_eq(r1.called, 1);
	ck_assert_int_eq(r1.status, DNS_OK);
	ck_assert_int_eq(r3.called, 1);
	ck_assert_int_eq(r3.status, DNS_OK);
	ck_assert_int_eq(r2.called, 2);
	ck_assert_int_eq(r2.status, DNS_OK);
	ck_assert_uint_eq(r2.n, 4);
	ck_assert_uint_eq(e.fake.nmx, 2);
	env_done(&e);
}
END_TEST

START_TEST(test_free_outstanding)
{
	struct env e;
	struct res r1, r2, r3, r4, r5, r6;
	struct dns_query *q1, *q2, *q3, *q4, *q5, *q6 = NULL;
	int nev;

	env_init(&e, 2000);
	/* The fake server's event, and libevent's own; c-ares opens nothing yet. */
	nev = event_base_get_num_events(e.base, EVENT_BASE_COUNT_ADDED |
	    EVENT_BASE_COUNT_ACTIVE);
	memset(&r1, 0, sizeof(r1));
	memset(&r2, 0, sizeof(r2));
	memset(&r3, 0, sizeof(r3));
	memset(&r4, 0, sizeof(r4));
	memset(&r5, 0, sizeof(r5));
	memset(&r6, 0, sizeof(r6));
	q1 = dns_lookup_addrs(e.dns, "held.test", addrs_cb, &r1);
	q3 = dns_lookup_addrs(e.dns, "silent.test", addrs_cb, &r3);
	q4 = dns_lookup_mx(e.dns, "held.test", mx_cb, &r4);
	r5.victim = &q6;		/* q5's callback cancels q6... */
	r5.relookup = e.dns;		/* ...and cannot start a new lookup */
	q5 = dns_lookup_addrs(e.dns, "silent.test", addrs_cb, &r5);
	ck_assert(q1 && q3 && q4 && q5);
	ck_assert(run_until(&e, three_held, &e.fake));
	dns_cancel(q3);
	/* Literals: answered, but not delivered yet. */
	q2 = dns_lookup_addrs(e.dns, "127.0.0.1", addrs_cb, &r2);
	q6 = dns_lookup_addrs(e.dns, "::1", addrs_cb, &r6);
	ck_assert(q2 && q6);
	ck_assert_uint_eq(dns_pending(e.dns), 6);
	dns_free(e.dns);
	e.dns = NULL;
	ck_assert_int_eq(r1.called, 1);
	ck_assert_int_eq(r1.status, DNS_CANCELLED);
	ck_assert_int_eq(r2.called, 1);
	ck_assert_int_eq(r2.status, DNS_CANCELLED);
	ck_assert_int_eq(r3.called, 0);
	ck_assert_int_eq(r4.called, 1);
	ck_assert_int_eq(r4.status, DNS_CANCELLED);
	ck_assert_int_eq(r5.called, 1);
	ck_assert_int_eq(r5.status, DNS_CANCELLED);
	ck_assert_int_eq(r5.relookup_null, 1);
	ck_assert_int_eq(r6.called, 0);
	ck_assert_ptr_null(q6);
	/* Nothing of the dns is left on the loop. */
	ck_assert_int_eq(event_base_get_num_events(e.base,
	    EVENT_BASE_COUNT_ADDED | EVENT_BASE_COUNT_ACTIVE), nev);
	ck_assert_int_eq(junk.called, 0);
	env_done(&e);
}
END_TEST

START_TEST(test_many)
{
	struct env e;
	struct res ra[40], rm[40];
	size_t i, n = 40, done = 0;

	env_init(&e, 2000);
	memset(ra, 0, sizeof(ra));
	memset(rm, 0, sizeof(rm));
	for (i = 0; i < n; i++) {
		ck_assert_ptr_nonnull(dns_lookup_addrs(e.dns, "both.test",
		    addrs_cb, &ra[i]));
		ck_assert_ptr_nonnull(dns_lookup_mx(e.dns, "mx.test", mx_cb,
		    &rm[i]));
	}
	ck_assert(run_until(&e, none_pending, e.dns));
	for (i = 0; i < n; i++) {
		ck_assert_int_eq(ra[i].called, 1);
		ck_assert_int_eq(ra[i].status, DNS_OK);
		ck_assert_uint_eq(ra[i].n, 3);
		ck_assert_int_eq(rm[i].called, 1);
		ck_assert_int_eq(rm[i].status, DNS_OK);
		ck_assert_uint_eq(rm[i].n, 4);
		done++;
	}
	ck_assert_uint_eq(done, n);
	env_done(&e);
}
END_TEST

/* ---- setup ---- */

START_TEST(test_new_servers)
{
	static const char *const bad[] = {
		"", "nonsense", "127.0.0.1:0", "127.0.0.1:65536", "127.0.0.1:",
		"127.0.0.1:x", "[::1", "[::1]x", "[127.0.0.1]", "1.2.3:53",
		"localhost", "[::1]:53:53"
	};
	static const char *const good[] = {
		"127.0.0.1", "127.0.0.1:5353", "::1", "[::1]", "[::1]:53", NULL
	};
	const char *one[2] = { NULL, NULL };
	const char *none[1] = { NULL };
	struct event_base *base;
	struct dns *dns;
	char err[256];
	size_t i;

	base = event_base_new();
	ck_assert_ptr_nonnull(base);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		one[0] = bad[i];
		err[0] = '\0';
		dns = dns_new(base, one, 200, 1, err, sizeof(err));
		ck_assert_msg(dns == NULL, "accepted \"%s\"", bad[i]);
		ck_assert_msg(strstr(err, "invalid DNS server") != NULL,
		    "%s: %s", bad[i], err);
	}
	err[0] = '\0';
	ck_assert_ptr_null(dns_new(base, none, 200, 1, err, sizeof(err)));
	ck_assert_str_ne(err, "");
	dns = dns_new(base, good, 200, 1, err, sizeof(err));
	ck_assert_msg(dns != NULL, "%s", err);
	ck_assert_uint_eq(dns_pending(dns), 0);
	dns_free(dns);
	event_base_free(base);
}
END_TEST

START_TEST(test_strstatus)
{
	ck_assert_str_eq(dns_strstatus(DNS_OK), "ok");
	ck_assert_str_eq(dns_strstatus(DNS_NXDOMAIN), "nxdomain");
	ck_assert_str_eq(dns_strstatus(DNS_NODATA), "nodata");
	ck_assert_str_eq(dns_strstatus(DNS_TEMPFAIL), "tempfail");
	ck_assert_str_eq(dns_strstatus(DNS_NULLMX), "nullmx");
	ck_assert_str_eq(dns_strstatus(DNS_CANCELLED), "cancelled");
	ck_assert_str_eq(dns_strstatus(-1), "unknown");
	ck_assert_str_eq(dns_strstatus(99), "unknown");
}
END_TEST

static Suite *
dns_suite(void)
{
	Suite *s = suite_create("dns");
	TCase *tc = tcase_create("core");

	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_addrs_both);
	tcase_add_test(tc, test_addrs_v6_first);
	tcase_add_test(tc, test_addrs_v4_only);
	tcase_add_test(tc, test_addrs_a_only);
	tcase_add_test(tc, test_addrs_negative);
	tcase_add_test(tc, test_addrs_timeout);
	tcase_add_test(tc, test_addrs_literal);
	tcase_add_test(tc, test_invalid_names);
	tcase_add_test(tc, test_addrs_onion_deferred);
	tcase_add_test(tc, test_addrs_trailing_dot);
	tcase_add_test(tc, test_mx_sorted);
	tcase_add_test(tc, test_mx_nodata);
	tcase_add_test(tc, test_mx_nxdomain);
	tcase_add_test(tc, test_mx_nullmx);
	tcase_add_test(tc, test_mx_bad_target);
	tcase_add_test(tc, test_mx_tempfail);
	tcase_add_test(tc, test_cancel_in_flight);
	tcase_add_test(tc, test_cancel_then_timeout);
	tcase_add_test(tc, test_cancel_literal);
	tcase_add_test(tc, test_cancel_from_callback);
	tcase_add_test(tc, test_lookup_from_callback);
	tcase_add_test(tc, test_free_outstanding);
	tcase_add_test(tc, test_many);
	tcase_add_test(tc, test_new_servers);
	tcase_add_test(tc, test_strstatus);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(dns_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
