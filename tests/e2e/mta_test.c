/*
 * mta_test: mta-sim's roles in process (mta-sim/roles.h): the integrated
 * MTA with each of the guide's four reflecting-mode architectures, its
 * routes, queue, retries, bypass and bounces; sim_send; sim_msg_build.
 *
 * Every role shares this process's event loop and has its own loopback
 * address. A "proxy" here is a sim_sink: it plays an overloaded, refusing
 * or dead proxy by rule, and (fake_reflect) reflects what it accepts back
 * to the MTA the way the architecture says a proxy is recognised. The last
 * test puts a real bin/mailprevent in reflecting mode between them.
 *
 * Waiting is on the loop, for an event, with H_DEADLINE_MS as a bound; a
 * test that expects nothing to happen waits for something that proves it
 * (the next deferral, the queue draining) instead of sleeping.
 *
 * TLS tests make their certificates with bin/certs-gen: one leaf per
 * role, each naming the role's own loopback address, so that a client
 * that verifies checks the address it dialled.
 */
#include <sys/wait.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/event.h>

#include "harness.h"
#include "log.h"
#include "../../mta-sim/roles.h"

#define IP_MTA		"127.0.0.10"
#define IP_PROXY	"127.0.0.11"
#define IP_DOWN		"127.0.0.12"
#define IP_CRYPT	"127.0.0.13"
#define IP_MAILBOX	"127.0.0.14"
#define IP_BYPASS	"127.0.0.15"
#define IP_PROXY2	"127.0.0.16"
#define IP_SENDER	"127.0.0.20"
#define PROXY_HELO	"prevent.test"
#define PASS_HEADER	"X-Filter-Loop: Reflected"
#define MTA_TRACE	"by mta.sim.test with ESMTP"

static struct event_base *base;

/* Every role a test creates, freed at teardown whatever happened. */
static struct sim_sink *sinks[32];
static size_t nsinks;
static struct sim_mta *mtas[8];
static size_t nmtas;

/* ---- waiting ------------------------------------------------------------- */

static int wait_expired;

static void
wait_deadline_cb(evutil_socket_t fd, short ev, void *arg)
{
	wait_expired = 1;
}

static struct proc *pumped;	/* a child whose pipes need draining meanwhile */

static void
wait_pump_cb(evutil_socket_t fd, short ev, void *arg)
{
	if (pumped != NULL)
		proc_wait_line(pumped, H_STDERR, "\001never\001", 0);
}

/* Run the loop until cond holds or the deadline passes, then check it. */
#define WAIT_UNTIL(cond, ...) do {					\
	struct timeval tv_ = { H_DEADLINE_MS / 1000, 0 };		\
	struct timeval tp_ = { 0, 50000 };				\
	struct event *t_ = evtimer_new(base, wait_deadline_cb, NULL);	\
	struct event *p_ = event_new(base, -1, EV_PERSIST,		\
	    wait_pump_cb, NULL);					\
									\
	wait_expired = 0;						\
	evtimer_add(t_, &tv_);						\
	if (pumped != NULL)						\
		evtimer_add(p_, &tp_);					\
	while (!(cond) && !wait_expired)				\
		event_base_loop(base, EVLOOP_ONCE);			\
	event_free(t_);							\
	event_free(p_);							\
	H_CHECK((cond), __VA_ARGS__);					\
} while (0)

/* ---- MTA events -------------------------------------------------------- */

struct evrec {
	enum sim_mta_event_type	 type;
	unsigned long		 msg;
	char			 route[64];
	int			 code;
	char			 text[1024];
	char			 rcpts[1024];
	unsigned		 attempt;
	double			 t;
};

#define MAX_EVENTS	512
static struct evrec evs[MAX_EVENTS];
static size_t nevs;

static const char *const evnames[] = {
	"RECEIVED", "DELIVERED", "DEFERRED", "BOUNCED", "NDR"
};

static void
on_event(void *arg, const struct sim_mta_event *ev)
{
	struct evrec *r;
	size_t i, off = 0;

	if (nevs == MAX_EVENTS)
		return;
	r = &evs[nevs++];
	r->type = ev->type;
	r->msg = ev->msg;
	snprintf(r->route, sizeof(r->route), "%s", ev->route ? ev->route : "");
	r->code = ev->code;
	snprintf(r->text, sizeof(r->text), "%s", ev->text ? ev->text : "");
	r->rcpts[0] = '\0';
	for (i = 0; i < ev->nrcpts && off < sizeof(r->rcpts); i++)
		off += (size_t)snprintf(r->rcpts + off, sizeof(r->rcpts) - off,
		    "%s%s", i ? "," : "", ev->rcpts[i]);
	r->attempt = ev->attempt;
	r->t = sim_clock();
	H_CHECK(ev->m != NULL && ev->m->id == ev->msg, "event without its message");
}

/* How many events of this type (and route, when not NULL) so far. */
static size_t
nev(enum sim_mta_event_type type, const char *route)
{
	size_t i, n = 0;

	for (i = 0; i < nevs; i++)
		if (evs[i].type == type &&
		    (route == NULL || strcmp(evs[i].route, route) == 0))
			n++;
	return n;
}

/* The k-th (from 0) such event; fails the test when there is none. */
static const struct evrec *
ev_get(enum sim_mta_event_type type, const char *route, size_t k)
{
	size_t i;

	for (i = 0; i < nevs; i++)
		if (evs[i].type == type &&
		    (route == NULL || strcmp(evs[i].route, route) == 0) &&
		    k-- == 0)
			return &evs[i];
	H_CHECK(0, "no %s event #%zu (route %s)", evnames[type], k,
	    route ? route : "any");
	return NULL;
}

static const char *
ev_dump(void)
{
	struct buf b = BUF_INIT;
	size_t i;

	for (i = 0; i < nevs; i++)
		buf_appendf(&b, "  %.3f %s msg=%lu route=%s code=%d attempt=%u "
		    "rcpts=%s text=%s\n", evs[i].t, evnames[evs[i].type],
		    evs[i].msg, evs[i].route, evs[i].code, evs[i].attempt,
		    evs[i].rcpts, evs[i].text);
	buf_cstr(&b);
	return b.data ? h_keep(b.data) : "";
}

/* ---- roles ------------------------------------------------------------- */

static struct sim_sink *
sink_new(const struct sim_sink_opts *o)
{
	struct sim_sink *s;
	char err[256];

	H_CHECK(nsinks < sizeof(sinks) / sizeof(sinks[0]), "too many sinks");
	s = sim_sink_new(base, o, err, sizeof(err));
	H_CHECK(s != NULL, "sink %s: %s", o->name ? o->name : "", err);
	return sinks[nsinks++] = s;
}

static struct sim_sink *
sink_on(const char *ip, const char *name, ...)
{
	struct sim_sink_opts o;
	const char *rules[8], *r;
	size_t n = 0;
	va_list ap;

	va_start(ap, name);
	while ((r = va_arg(ap, const char *)) != NULL && n < 8)
		rules[n++] = r;
	va_end(ap);
	memset(&o, 0, sizeof(o));
	o.name = name;
	o.listen = h_strf("%s:0", ip);
	o.hostname = h_strf("%s.sim.test", name);
	o.rules = rules;
	o.nrules = n;
	return sink_new(&o);
}

/* An address where nothing listens (it did a moment ago). */
static char *
dead_addr(const char *ip)
{
	struct sim_sink_opts o;
	struct sim_sink *s;
	char err[256], *a;

	memset(&o, 0, sizeof(o));
	o.listen = h_strf("%s:0", ip);
	s = sim_sink_new(base, &o, err, sizeof(err));
	H_CHECK(s != NULL, "%s", err);
	a = h_strf("%s", sim_sink_addr(s));
	sim_sink_free(s);
	return a;
}

/* The usual MTA: client-IP architecture, everything on its own address. */
static void
mta_opts(struct sim_mta_opts *o, enum sim_arch arch)
{
	static const char *proxy_ips[] = { IP_PROXY };
	static const char *helos[] = { PROXY_HELO };

	memset(o, 0, sizeof(*o));
	o->name = "mta";
	o->listen = IP_MTA ":0";
	o->helo = "mta.sim.test";
	o->arch = arch;
	o->proxy_ips = proxy_ips;
	o->nproxy_ips = 1;
	o->proxy_helos = helos;
	o->nproxy_helos = 1;
	o->pass_header = PASS_HEADER;
	if (arch == SIM_ARCH_LISTENER)
		o->resubmit = IP_MTA ":0";
	o->retry_ms = 50;
	o->max_retry_ms = 200;
	o->connect_timeout_ms = 2000;
	o->timeout_ms = 5000;
}

static struct sim_mta *
mta_new(const struct sim_mta_opts *o)
{
	struct sim_mta *m;
	char err[256];

	H_CHECK(nmtas < sizeof(mtas) / sizeof(mtas[0]), "too many MTAs");
	m = sim_mta_new(base, o, err, sizeof(err));
	H_CHECK(m != NULL, "sim_mta_new: %s", err);
	sim_mta_on_event(m, on_event, NULL);
	return mtas[nmtas++] = m;
}

static const char **
list1(const char *a)
{
	const char **v = h_keep(calloc(2, sizeof(*v)));

	v[0] = a;
	return v;
}

static const char **
list2(const char *a, const char *b)
{
	const char **v = h_keep(calloc(3, sizeof(*v)));

	v[0] = a;
	v[1] = b;
	return v;
}

/* ---- sending ---------------------------------------------------------- */

struct sent {
	int	 done;
	int	 connected, greeting, mail, data, final;
	int	 rcpt[8];
	char	 rcpt_text[8][256];
	size_t	 nrcpt;
	char	 greeting_text[256], final_text[512], error[512], stage[16];
	char	 mail_text[256];
	int	 tls;
	char	 tls_proto[32], tls_verify[16], tls_peer[128];
};

/* TLS for the next send_msg() (cleared by it): none when starttls is 0. */
static enum sim_tls_use send_starttls;
static const char *send_trust;

static void
sent_cb(void *arg, const struct sim_send_result *r)
{
	struct sent *s = arg;
	size_t i;

	s->done = 1;
	s->connected = r->connected;
	s->greeting = r->greeting;
	s->mail = r->mail;
	s->data = r->data;
	s->final = r->final;
	s->nrcpt = r->nrcpt;
	for (i = 0; i < r->nrcpt && i < 8; i++) {
		s->rcpt[i] = r->rcpt[i];
		snprintf(s->rcpt_text[i], sizeof(s->rcpt_text[i]), "%s",
		    r->rcpt_text[i] ? r->rcpt_text[i] : "");
	}
	snprintf(s->greeting_text, sizeof(s->greeting_text), "%s",
	    r->greeting_text ? r->greeting_text : "");
	snprintf(s->final_text, sizeof(s->final_text), "%s",
	    r->final_text ? r->final_text : "");
	snprintf(s->error, sizeof(s->error), "%s", r->error ? r->error : "");
	snprintf(s->stage, sizeof(s->stage), "%s", r->stage ? r->stage : "");
	snprintf(s->mail_text, sizeof(s->mail_text), "%s",
	    r->mail_text ? r->mail_text : "");
	s->tls = r->tls;
	H_CHECK(!r->tls || (r->tls_proto && r->tls_verify && r->tls_peer),
	    "TLS without its facts");
	if (r->tls) {
		snprintf(s->tls_proto, sizeof(s->tls_proto), "%s", r->tls_proto);
		snprintf(s->tls_verify, sizeof(s->tls_verify), "%s",
		    r->tls_verify);
		snprintf(s->tls_peer, sizeof(s->tls_peer), "%s", r->tls_peer);
	}
}

/* One message, one session; returns once the result is in. */
static struct sent *
send_msg(const char *to, const char *source, const char *helo,
    const char *from, const char **rcpts, const char *content)
{
	struct sent *s = h_keep(calloc(1, sizeof(*s)));
	struct sim_send_opts o;
	size_t n = 0;

	while (rcpts[n] != NULL)
		n++;
	memset(&o, 0, sizeof(o));
	o.to = to;
	o.source = source;
	o.helo = helo;
	o.from = from;
	o.rcpts = rcpts;
	o.nrcpts = n;
	o.content = content;
	o.len = strlen(content);
	o.timeout_ms = H_DEADLINE_MS;
	o.starttls = send_starttls;
	o.tls_trust = send_trust;
	send_starttls = SIM_TLS_NO;
	send_trust = NULL;
	H_CHECK(sim_send_start(base, &o, sent_cb, s) != NULL, "sim_send_start");
	WAIT_UNTIL(s->done, "no send result");
	return s;
}

/* From the sender's host to the MTA, expecting 250. */
static void
submit(struct sim_mta *mta, const char *from, const char **rcpts,
    const char *content)
{
	struct sent *s = send_msg(sim_mta_addr(mta), IP_SENDER,
	    "client.sim.test", from, rcpts, content);

	H_CHECK(s->final == 250, "MTA said %d %s (error %s)", s->final,
	    s->final_text, s->error);
}

static char *
msg(const char *subject, const char *extra)
{
	return h_strf("From: <alice@corp.test>\r\nTo: <bob@ext.test>\r\n"
	    "Subject: %s\r\n%s\r\nHello.\r\n", subject, extra ? extra : "");
}

static const char *
content_of(const struct sim_msg *m)
{
	struct buf *b = (struct buf *)&m->content;

	return buf_cstr(b) ? b->data : "";
}

/* ---- a proxy that reflects ------------------------------------------------- */

/*
 * Accepts what the MTA hands it and sends it back the way the proxy of the
 * architecture would be recognised: to the resubmit listener, from the
 * proxy's IP, with the proxy's HELO, or carrying the pass header.
 */
struct fake {
	struct sim_sink	*sink;
	const char	*to;
	const char	*helo;
	const char	*header;
	size_t		 reflected;
};

static void
fake_reflected_cb(void *arg, const struct sim_send_result *r)
{
	struct fake *f = arg;

	H_CHECK(r->final == 250, "reflecting got %d %s (%s)", r->final,
	    r->final_text ? r->final_text : "", r->error ? r->error : "");
	f->reflected++;
}

static void
fake_reflect(void *arg, const struct sim_msg *m)
{
	struct fake *f = arg;
	struct sim_send_opts o;
	char *c;

	c = h_strf("%s%s%s", f->header ? f->header : "", f->header ? "\r\n" : "",
	    content_of(m));
	memset(&o, 0, sizeof(o));
	o.to = f->to;
	o.source = IP_PROXY;
	o.helo = f->helo;
	o.from = m->mail_from;
	o.rcpts = (const char *const *)m->rcpts;
	o.nrcpts = m->nrcpts;
	o.content = c;
	o.len = strlen(c);
	H_CHECK(sim_send_start(base, &o, fake_reflected_cb, f) != NULL,
	    "reflect");
}

/* ---- the four architectures ------------------------------------------------ */

static const char *const arch_names[] = { "listener", "client-ip", "helo",
    "header" };

/*
 * No policy violated: sender -> MTA -> proxy -> MTA -> downstream, the
 * proxy once, the MTA twice (two of its Received lines), then nothing
 * more (the queue is empty). A sender forging the pass header skips the
 * proxy with the header architecture only: the guide ranks it last.
 */
START_TEST(test_arch_route)
{
	enum sim_arch arch = (enum sim_arch)_i;
	struct sim_mta_opts o;
	struct sim_mta *mta;
	struct sim_sink *down = sink_on(IP_DOWN, "down", (char *)NULL);
	struct fake f;
	const struct sim_msg *m;
	const char *c;
	char v[256];

	memset(&f, 0, sizeof(f));
	f.sink = sink_on(IP_PROXY, "proxy", (char *)NULL);
	mta_opts(&o, arch);
	o.proxies = list1(sim_sink_addr(f.sink));
	o.nproxies = 1;
	o.downstream = sim_sink_addr(down);
	mta = mta_new(&o);
	f.to = arch == SIM_ARCH_LISTENER ? sim_mta_resubmit_addr(mta) :
	    sim_mta_addr(mta);
	f.helo = arch == SIM_ARCH_HELO ? PROXY_HELO : "other.sim.test";
	f.header = arch == SIM_ARCH_HEADER ? PASS_HEADER : NULL;
	/* Only the header architecture reads headers: a client IP or port must do. */
	if (arch == SIM_ARCH_LISTENER || arch == SIM_ARCH_CLIENT_IP)
		f.helo = PROXY_HELO;
	sim_sink_on_message(f.sink, fake_reflect, &f);

	submit(mta, "alice@corp.test", list1("bob@ext.test"),
	    msg(arch_names[arch], NULL));
	WAIT_UNTIL(sim_sink_count(down) == 1 && sim_mta_queued(mta) == 0 &&
	    f.reflected == 1,
	    "%s: downstream got %zu, queued %zu\n%s", arch_names[arch],
	    sim_sink_count(down), sim_mta_queued(mta), ev_dump());
	H_CHECK(sim_sink_count(f.sink) == 1 && f.reflected == 1,
	    "proxy saw %zu messages", sim_sink_count(f.sink));
	m = sim_sink_msg(down, 0);
	c = content_of(m);
	H_CHECK(h_count(c, strlen(c), MTA_TRACE, strlen(MTA_TRACE)) == 2,
	    "%s: the MTA handled it other than twice:\n%s", arch_names[arch], c);
	H_CHECK(strcmp(m->mail_from, "alice@corp.test") == 0 && m->nrcpts == 1 &&
	    strcmp(m->rcpts[0], "bob@ext.test") == 0, "envelope changed");
	H_CHECK(strcmp(m->client_ip, IP_MTA) == 0, "from %s", m->client_ip);
	H_CHECK(sim_msg_header(m, "Subject", v, sizeof(v)) != NULL &&
	    strcmp(v, arch_names[arch]) == 0, "subject %s", v);
	/* The proxy's copy came from the MTA's own address and name. */
	m = sim_sink_msg(f.sink, 0);
	H_CHECK(strcmp(m->client_ip, IP_MTA) == 0 &&
	    strcmp(m->helo, "mta.sim.test") == 0, "proxy saw %s %s",
	    m->client_ip, m->helo);
	H_CHECK(nev(SIM_MTA_RECEIVED, NULL) == 2 &&
	    nev(SIM_MTA_DELIVERED, "proxy") == 1 &&
	    nev(SIM_MTA_DELIVERED, "downstream") == 1 && nevs == 4, "%s",
	    ev_dump());
	H_CHECK(ev_get(SIM_MTA_DELIVERED, "proxy", 0)->msg == 1 &&
	    ev_get(SIM_MTA_DELIVERED, "downstream", 0)->msg == 2, "%s",
	    ev_dump());

	/* A sender forging the pass header. */
	submit(mta, "mallory@corp.test", list1("bob@ext.test"),
	    msg("forged", PASS_HEADER "\r\n"));
	WAIT_UNTIL(sim_sink_count(down) == 2 && sim_mta_queued(mta) == 0,
	    "%s", ev_dump());
	if (arch == SIM_ARCH_HEADER) {
		H_CHECK(sim_sink_count(f.sink) == 1,
		    "the forged header did not bypass the proxy");
		H_CHECK(nev(SIM_MTA_DELIVERED, "proxy") == 1, "%s", ev_dump());
	} else
		H_CHECK(sim_sink_count(f.sink) == 2,
		    "%s: a forged header bypassed the proxy", arch_names[arch]);
}
END_TEST

/* Only what the architecture says marks mail as inspected. */
START_TEST(test_arch_uninspected)
{
	struct sim_mta_opts o;
	struct sim_mta *mta;
	struct sim_sink *down = sink_on(IP_DOWN, "down", (char *)NULL);
	struct sim_sink *proxy = sink_on(IP_PROXY, "proxy", (char *)NULL);
	struct sent *s;

	/* Client IP: the proxy's HELO and header from elsewhere do nothing. */
	mta_opts(&o, SIM_ARCH_CLIENT_IP);
	o.proxies = list1(sim_sink_addr(proxy));
	o.nproxies = 1;
	o.downstream = sim_sink_addr(down);
	mta = mta_new(&o);
	s = send_msg(sim_mta_addr(mta), IP_SENDER, PROXY_HELO, "a@corp.test",
	    list1("b@ext.test"), msg("x", PASS_HEADER "\r\n"));
	H_CHECK(s->final == 250, "%d", s->final);
	WAIT_UNTIL(sim_sink_count(proxy) == 1, "%s", ev_dump());
	/* From the proxy's IP it is inspected, whatever the HELO. */
	s = send_msg(sim_mta_addr(mta), IP_PROXY, "anything.test", "a@corp.test",
	    list1("b@ext.test"), msg("y", NULL));
	WAIT_UNTIL(sim_sink_count(down) == 1, "%s", ev_dump());
	H_CHECK(sim_sink_count(proxy) == 1, "inspected mail went to the proxy");
	nevs = 0;

	/* HELO: the IP does nothing, the name does (case aside). */
	mta_opts(&o, SIM_ARCH_HELO);
	o.proxies = list1(sim_sink_addr(proxy));
	o.nproxies = 1;
	o.downstream = sim_sink_addr(down);
	mta = mta_new(&o);
	send_msg(sim_mta_addr(mta), IP_PROXY, "other.test", "a@corp.test",
	    list1("b@ext.test"), msg("z", NULL));
	WAIT_UNTIL(sim_sink_count(proxy) == 2, "%s", ev_dump());
	send_msg(sim_mta_addr(mta), IP_SENDER, "PREVENT.test", "a@corp.test",
	    list1("b@ext.test"), msg("w", NULL));
	WAIT_UNTIL(sim_sink_count(down) == 2, "%s", ev_dump());
	nevs = 0;

	/* Header: the name with another value is not the pass header. */
	mta_opts(&o, SIM_ARCH_HEADER);
	o.proxies = list1(sim_sink_addr(proxy));
	o.nproxies = 1;
	o.downstream = sim_sink_addr(down);
	mta = mta_new(&o);
	submit(mta, "a@corp.test", list1("b@ext.test"),
	    msg("v", "X-Filter-Loop: Maybe\r\n"));
	WAIT_UNTIL(sim_sink_count(proxy) == 3, "%s", ev_dump());
	/* Folded and in another case, it still is. */
	submit(mta, "a@corp.test", list1("b@ext.test"),
	    msg("u", "x-filter-loop:\r\n  reflected\r\n"));
	WAIT_UNTIL(sim_sink_count(down) == 3, "%s", ev_dump());
	H_CHECK(sim_sink_count(proxy) == 3, "%s", ev_dump());
}
END_TEST

/* Sender exceptions (a redirect address, <>) skip the proxy. */
START_TEST(test_sender_exceptions)
{
	struct sim_mta_opts o;
	struct sim_mta *mta;
	struct sim_sink *down = sink_on(IP_DOWN, "down", (char *)NULL);
	struct sim_sink *proxy = sink_on(IP_PROXY, "proxy", (char *)NULL);

	mta_opts(&o, SIM_ARCH_CLIENT_IP);
	o.proxies = list1(sim_sink_addr(proxy));
	o.nproxies = 1;
	o.downstream = sim_sink_addr(down);
	o.sender_exceptions = list2("Review@corp.test", "");
	o.nsender_exceptions = 2;
	mta = mta_new(&o);
	submit(mta, "review@corp.test", list1("b@ext.test"), msg("r", NULL));
	submit(mta, "", list1("b@ext.test"), msg("bounce", NULL));
	submit(mta, "someone@corp.test", list1("b@ext.test"), msg("s", NULL));
	WAIT_UNTIL(sim_sink_count(down) == 2 && sim_sink_count(proxy) == 1 &&
	    sim_mta_queued(mta) == 0, "%s", ev_dump());
	H_CHECK(strcmp(sim_sink_msg(proxy, 0)->mail_from, "someone@corp.test")
	    == 0, "%s", sim_sink_msg(proxy, 0)->mail_from);
}
END_TEST

/* ---- routes ------------------------------------------------------------- */

START_TEST(test_header_routes)
{
	static const struct sim_route routes[] = {
		{ "X-CFilter", "Encrypt", NULL, "encryption" },
		{ "X-CFilter", "Quarantine", NULL, "quarantine" },
	};
	struct sim_route r[2];
	struct sim_mta_opts o;
	struct sim_mta *mta;
	struct sim_sink *down = sink_on(IP_DOWN, "down", (char *)NULL);
	struct sim_sink *crypt = sink_on(IP_CRYPT, "crypt", (char *)NULL);
	struct sim_sink *quar = sink_on(IP_BYPASS, "quarantine", (char *)NULL);
	char v[64];

	memcpy(r, routes, sizeof(r));
	r[0].to = sim_sink_addr(crypt);
	r[1].to = sim_sink_addr(quar);
	mta_opts(&o, SIM_ARCH_CLIENT_IP);
	o.downstream = sim_sink_addr(down);
	o.routes = r;
	o.nroutes = 2;
	mta = mta_new(&o);
	/* As the proxy would hand them back: from its IP. */
	send_msg(sim_mta_addr(mta), IP_PROXY, PROXY_HELO, "a@corp.test",
	    list1("b@ext.test"), msg("1", "X-CFilter: Encrypt\r\n"));
	send_msg(sim_mta_addr(mta), IP_PROXY, PROXY_HELO, "a@corp.test",
	    list1("b@ext.test"), msg("2", "X-CFilter:   encrypt \r\n"));
	send_msg(sim_mta_addr(mta), IP_PROXY, PROXY_HELO, "a@corp.test",
	    list1("b@ext.test"), msg("3", "X-CFilter: Archive\r\n"));
	send_msg(sim_mta_addr(mta), IP_PROXY, PROXY_HELO, "a@corp.test",
	    list1("b@ext.test"), msg("4", "X-CFilter: Quarantine\r\n"));
	send_msg(sim_mta_addr(mta), IP_PROXY, PROXY_HELO, "a@corp.test",
	    list1("b@ext.test"), msg("5", NULL));
	WAIT_UNTIL(sim_mta_queued(mta) == 0 && nev(SIM_MTA_DELIVERED, NULL) == 5,
	    "%s", ev_dump());
	H_CHECK(sim_sink_count(crypt) == 2 && sim_sink_count(quar) == 1 &&
	    sim_sink_count(down) == 2, "crypt %zu quarantine %zu down %zu",
	    sim_sink_count(crypt), sim_sink_count(quar), sim_sink_count(down));
	H_CHECK(nev(SIM_MTA_DELIVERED, "encryption") == 2 &&
	    nev(SIM_MTA_DELIVERED, "quarantine") == 1 &&
	    nev(SIM_MTA_DELIVERED, "downstream") == 2, "%s", ev_dump());
	H_CHECK(strcmp(sim_msg_header(sim_sink_msg(down, 0), "Subject", v,
	    sizeof(v)), "3") == 0, "%s", v);
}
END_TEST

/* Local recipients go to the mailbox host, the others on. */
START_TEST(test_local_mailbox)
{
	static const char *local[] = { "corp.test" };
	struct sim_mta_opts o;
	struct sim_mta *mta;
	struct sim_sink *down = sink_on(IP_DOWN, "down", (char *)NULL);
	struct sim_sink *mbox = sink_on(IP_MAILBOX, "mailbox", (char *)NULL);
	const struct sim_msg *m;

	mta_opts(&o, SIM_ARCH_CLIENT_IP);
	o.downstream = sim_sink_addr(down);
	o.local_domains = local;
	o.nlocal_domains = 1;
	o.mailbox = sim_sink_addr(mbox);
	mta = mta_new(&o);
	send_msg(sim_mta_addr(mta), IP_PROXY, PROXY_HELO, "a@corp.test",
	    list2("carol@CORP.test", "bob@ext.test"), msg("both", NULL));
	WAIT_UNTIL(sim_mta_queued(mta) == 0, "%s", ev_dump());
	H_CHECK(sim_sink_count(mbox) == 1 && sim_sink_count(down) == 1,
	    "mailbox %zu down %zu", sim_sink_count(mbox), sim_sink_count(down));
	m = sim_sink_msg(mbox, 0);
	H_CHECK(m->nrcpts == 1 && strcmp(m->rcpts[0], "carol@CORP.test") == 0,
	    "mailbox got %s", m->rcpts[0]);
	m = sim_sink_msg(down, 0);
	H_CHECK(m->nrcpts == 1 && strcmp(m->rcpts[0], "bob@ext.test") == 0,
	    "downstream got %s", m->rcpts[0]);
	H_CHECK(strcmp(ev_get(SIM_MTA_DELIVERED, "mailbox", 0)->rcpts,
	    "carol@CORP.test") == 0, "%s", ev_dump());
}
END_TEST

/* ---- bounces ------------------------------------------------------------ */

/* The proxy blocks: the sender's mailbox gets an NDR quoting its reply. */
START_TEST(test_ndr_on_5xx)
{
	static const char *local[] = { "corp.test" };
	struct sim_mta_opts o;
	struct sim_mta *mta;
	struct sim_sink *proxy = sink_on(IP_PROXY, "proxy",
	    "dot=reply:550 5.7.1 Blocked by policy: card numbers", (char *)NULL);
	struct sim_sink *mbox = sink_on(IP_MAILBOX, "mailbox", (char *)NULL);
	const struct sim_msg *m;
	const struct evrec *b, *n;
	const char *c;
	char v[512];

	mta_opts(&o, SIM_ARCH_CLIENT_IP);
	o.proxies = list1(sim_sink_addr(proxy));
	o.nproxies = 1;
	o.sender_exceptions = list1("");
	o.nsender_exceptions = 1;
	o.local_domains = local;
	o.nlocal_domains = 1;
	o.mailbox = sim_sink_addr(mbox);
	mta = mta_new(&o);
	submit(mta, "alice@corp.test", list1("bob@ext.test"),
	    msg("quarterly numbers", NULL));
	WAIT_UNTIL(sim_sink_count(mbox) == 1 && sim_mta_queued(mta) == 0, "%s",
	    ev_dump());

	b = ev_get(SIM_MTA_BOUNCED, NULL, 0);
	H_CHECK(b->msg == 1 && b->code == 550 && strcmp(b->text,
	    "5.7.1 Blocked by policy: card numbers") == 0 &&
	    strcmp(b->rcpts, "bob@ext.test") == 0, "%s", ev_dump());
	n = ev_get(SIM_MTA_NDR, NULL, 0);
	H_CHECK(n->msg == 2 && strcmp(n->rcpts, "alice@corp.test") == 0, "%s",
	    ev_dump());
	H_CHECK(ev_get(SIM_MTA_DELIVERED, "mailbox", 0)->msg == 2, "%s",
	    ev_dump());
	/* Loop safety: the NDR never went to the proxy. */
	H_CHECK(sim_sink_sessions(proxy) == 1 && nev(SIM_MTA_DELIVERED, "proxy")
	    == 0 && nev(SIM_MTA_NDR, NULL) == 1, "%s", ev_dump());

	m = sim_sink_msg(mbox, 0);
	c = content_of(m);
	H_CHECK(m->mail_from[0] == '\0' && m->nrcpts == 1 &&
	    strcmp(m->rcpts[0], "alice@corp.test") == 0, "NDR envelope %s",
	    m->mail_from);
	H_CHECK(sim_msg_header(m, "From", v, sizeof(v)) != NULL &&
	    strncmp(v, "MAILER-DAEMON@mta.sim.test", 26) == 0, "From: %s", v);
	H_CHECK(sim_msg_header(m, "To", v, sizeof(v)) != NULL &&
	    strcmp(v, "<alice@corp.test>") == 0, "To: %s", v);
	H_CHECK(sim_msg_header(m, "Auto-Submitted", v, sizeof(v)) != NULL &&
	    strcmp(v, "auto-replied") == 0, "Auto-Submitted: %s", v);
	H_CHECK(sim_msg_header(m, "Content-Type", v, sizeof(v)) != NULL &&
	    strncmp(v, "multipart/report; report-type=delivery-status;", 46)
	    == 0, "Content-Type: %s", v);
	H_CHECK(strstr(c, "\r\n<bob@ext.test>: host " IP_PROXY) != NULL &&
	    strstr(c, " said: 550 5.7.1 Blocked by policy: card numbers (in "
	    "reply to end of DATA command)\r\n") != NULL, "%s", c);
	H_CHECK(strstr(c, "\r\nContent-Type: message/delivery-status\r\n") &&
	    strstr(c, "\r\nReporting-MTA: dns; mta.sim.test\r\n") &&
	    strstr(c, "\r\nFinal-Recipient: rfc822; bob@ext.test\r\n"
	    "Action: failed\r\nStatus: 5.7.1\r\nRemote-MTA: dns; [" IP_PROXY
	    "]\r\nDiagnostic-Code: smtp; 550 5.7.1 Blocked by policy: card "
	    "numbers\r\n"), "%s", c);
	/* The original headers, our trace included, close the report. */
	H_CHECK(strstr(c, "\r\nContent-Type: text/rfc822-headers\r\n\r\n"
	    "Received: from client.sim.test ([" IP_SENDER "])") &&
	    strstr(c, "\r\nSubject: quarterly numbers\r\n"), "%s", c);
	H_CHECK(strstr(c, "\r\nHello.") == NULL, "the NDR quotes the body");
}
END_TEST

/*
 * Without "" among the exceptions the NDR is mail like any other and goes
 * to the proxy (the guide recommends the exception). When that is refused
 * too, there is no NDR for the NDR.
 */
START_TEST(test_ndr_not_excepted)
{
	struct sim_mta_opts o;
	struct sim_mta *mta;
	struct sim_sink *proxy = sink_on(IP_PROXY, "proxy",
	    "dot=reply:554 5.7.1 no", (char *)NULL);

	mta_opts(&o, SIM_ARCH_CLIENT_IP);
	o.proxies = list1(sim_sink_addr(proxy));
	o.nproxies = 1;
	mta = mta_new(&o);
	submit(mta, "alice@corp.test", list1("bob@ext.test"), msg("a", NULL));
	WAIT_UNTIL(sim_mta_queued(mta) == 0 && nev(SIM_MTA_BOUNCED, NULL) == 2,
	    "%s", ev_dump());
	H_CHECK(nev(SIM_MTA_NDR, NULL) == 1 && sim_sink_sessions(proxy) == 2,
	    "%s", ev_dump());
	H_CHECK(ev_get(SIM_MTA_BOUNCED, NULL, 1)->msg == 2, "%s", ev_dump());
}
END_TEST

/* Some recipients refused: they bounce, the others are delivered. */
START_TEST(test_partial_rcpts)
{
	static const char *local[] = { "corp.test" };
	struct sim_mta_opts o;
	struct sim_mta *mta;
	struct sim_sink *proxy = sink_on(IP_PROXY, "proxy",
	    "rcpt:bad@ext.test=reply:550 5.1.1 no such user", (char *)NULL);
	struct sim_sink *mbox = sink_on(IP_MAILBOX, "mailbox", (char *)NULL);
	const struct sim_msg *m;
	const char *c;

	mta_opts(&o, SIM_ARCH_CLIENT_IP);
	o.proxies = list1(sim_sink_addr(proxy));
	o.nproxies = 1;
	o.sender_exceptions = list1("");
	o.nsender_exceptions = 1;
	o.local_domains = local;
	o.nlocal_domains = 1;
	o.mailbox = sim_sink_addr(mbox);
	mta = mta_new(&o);
	submit(mta, "alice@corp.test", list2("bad@ext.test", "good@ext.test"),
	    msg("some", NULL));
	WAIT_UNTIL(sim_sink_count(mbox) == 1 && sim_mta_queued(mta) == 0, "%s",
	    ev_dump());
	m = sim_sink_msg(proxy, 0);
	H_CHECK(m->nrcpts == 1 && strcmp(m->rcpts[0], "good@ext.test") == 0,
	    "proxy got %zu recipients", m->nrcpts);
	H_CHECK(strcmp(ev_get(SIM_MTA_DELIVERED, "proxy", 0)->rcpts,
	    "good@ext.test") == 0 && strcmp(ev_get(SIM_MTA_BOUNCED, NULL,
	    0)->rcpts, "bad@ext.test") == 0, "%s", ev_dump());
	c = content_of(sim_sink_msg(mbox, 0));
	H_CHECK(strstr(c, "<bad@ext.test>: host ") && strstr(c, "said: 550 "
	    "5.1.1 no such user (in reply to RCPT TO command)") &&
	    strstr(c, "Final-Recipient: rfc822; bad@ext.test\r\n") &&
	    !strstr(c, "good@ext.test"), "%s", c);
}
END_TEST

/* ---- retries, bypass, holding ------------------------------------------- */

START_TEST(test_retry_4xx)
{
	struct sim_mta_opts o;
	struct sim_mta *mta;
	struct sim_sink *down = sink_on(IP_DOWN, "down",
	    "dot#1=reply:451 4.3.0 try again later", (char *)NULL);
	const struct evrec *d, *ok;

	mta_opts(&o, SIM_ARCH_CLIENT_IP);
	o.downstream = sim_sink_addr(down);
	o.retry_ms = 150;
	mta = mta_new(&o);
	send_msg(sim_mta_addr(mta), IP_PROXY, PROXY_HELO, "a@corp.test",
	    list1("b@ext.test"), msg("r", NULL));
	WAIT_UNTIL(sim_sink_count(down) == 1 && sim_mta_queued(mta) == 0, "%s",
	    ev_dump());
	d = ev_get(SIM_MTA_DEFERRED, "downstream", 0);
	ok = ev_get(SIM_MTA_DELIVERED, "downstream", 0);
	H_CHECK(d->code == 451 && d->attempt == 1 &&
	    strcmp(d->text, "4.3.0 try again later") == 0, "%s", ev_dump());
	H_CHECK(ok->attempt == 2 && ok->code == 250 && ok->t - d->t >= 0.14,
	    "%s", ev_dump());
	H_CHECK(nev(SIM_MTA_BOUNCED, NULL) == 0, "%s", ev_dump());
}
END_TEST

/* Retries run out: the message bounces with the last reply. */
START_TEST(test_retry_exhausted)
{
	static const char *local[] = { "corp.test" };
	struct sim_mta_opts o;
	struct sim_mta *mta;
	struct sim_sink *down = sink_on(IP_DOWN, "down",
	    "dot=reply:451 4.3.0 try again later", (char *)NULL);
	struct sim_sink *mbox = sink_on(IP_MAILBOX, "mailbox", (char *)NULL);
	const char *c;

	mta_opts(&o, SIM_ARCH_CLIENT_IP);
	o.downstream = sim_sink_addr(down);
	o.retry_ms = 20;
	o.max_attempts = 3;
	o.sender_exceptions = list1("");
	o.nsender_exceptions = 1;
	o.local_domains = local;
	o.nlocal_domains = 1;
	o.mailbox = sim_sink_addr(mbox);
	mta = mta_new(&o);
	send_msg(sim_mta_addr(mta), IP_PROXY, PROXY_HELO, "alice@corp.test",
	    list1("b@ext.test"), msg("r", NULL));
	WAIT_UNTIL(sim_sink_count(mbox) == 1 && sim_mta_queued(mta) == 0, "%s",
	    ev_dump());
	H_CHECK(nev(SIM_MTA_DEFERRED, "downstream") == 3 &&
	    ev_get(SIM_MTA_BOUNCED, NULL, 0)->code == 451, "%s", ev_dump());
	c = content_of(sim_sink_msg(mbox, 0));
	H_CHECK(strstr(c, "Diagnostic-Code: smtp; 451 4.3.0 try again later "
	    "(gave up after 3 attempts)\r\n") && strstr(c, "Status: 5.3.0\r\n"),
	    "%s", c);
}
END_TEST

/* No proxy answers: pass through on failure, to the bypass route. */
START_TEST(test_bypass_when_proxy_down)
{
	struct sim_mta_opts o;
	struct sim_mta *mta;
	struct sim_sink *bypass = sink_on(IP_BYPASS, "bypass", (char *)NULL);
	const char *c;

	mta_opts(&o, SIM_ARCH_CLIENT_IP);
	o.proxies = list2(dead_addr(IP_PROXY), dead_addr(IP_PROXY2));
	o.nproxies = 2;
	o.bypass = sim_sink_addr(bypass);
	mta = mta_new(&o);
	submit(mta, "a@corp.test", list1("b@ext.test"), msg("by", NULL));
	WAIT_UNTIL(sim_sink_count(bypass) == 1 && sim_mta_queued(mta) == 0,
	    "%s", ev_dump());
	H_CHECK(ev_get(SIM_MTA_DELIVERED, "bypass", 0)->attempt == 1 &&
	    nev(SIM_MTA_DEFERRED, NULL) == 0, "%s", ev_dump());
	c = content_of(sim_sink_msg(bypass, 0));
	H_CHECK(h_count(c, strlen(c), MTA_TRACE, strlen(MTA_TRACE)) == 1, "%s",
	    c);
}
END_TEST

/*
 * Block on failure: held while no proxy answers, however long, and
 * delivered through the proxy once one is back (the guide's failover test).
 */
START_TEST(test_block_on_failure)
{
	struct sim_mta_opts o;
	struct sim_mta *mta;
	struct sim_sink *bypass = sink_on(IP_BYPASS, "bypass", (char *)NULL);
	struct sim_sink *proxy;
	struct sim_sink_opts so;
	char *dead = dead_addr(IP_PROXY);

	mta_opts(&o, SIM_ARCH_CLIENT_IP);
	o.proxies = list1(dead);
	o.nproxies = 1;
	o.bypass = sim_sink_addr(bypass);
	o.block_on_failure = 1;
	o.retry_ms = 20;
	o.max_retry_ms = 40;
	o.max_attempts = 1000;
	o.max_queue_age_ms = 30;	/* block_on_failure wins over it */
	mta = mta_new(&o);
	submit(mta, "a@corp.test", list1("b@ext.test"), msg("held", NULL));
	WAIT_UNTIL(nev(SIM_MTA_DEFERRED, "proxy") >= 4, "%s", ev_dump());
	H_CHECK(sim_mta_queued(mta) == 1 && sim_sink_sessions(bypass) == 0,
	    "a held message left the queue\n%s", ev_dump());
	H_CHECK(ev_get(SIM_MTA_DEFERRED, "proxy", 0)->code == 0 &&
	    strstr(ev_get(SIM_MTA_DEFERRED, "proxy", 0)->text,
	    "no proxy answered") != NULL, "%s", ev_dump());

	/* The proxy comes back. */
	memset(&so, 0, sizeof(so));
	so.name = "proxy";
	so.listen = dead;
	proxy = sink_new(&so);
	WAIT_UNTIL(sim_sink_count(proxy) == 1 && sim_mta_queued(mta) == 0, "%s",
	    ev_dump());
	H_CHECK(nev(SIM_MTA_DELIVERED, "proxy") == 1 &&
	    sim_sink_sessions(bypass) == 0, "%s", ev_dump());
}
END_TEST

/*
 * MTA-based queue management: the proxy answers but defers (overload);
 * mail queued for it longer than the limit moves to the bypass route.
 */
START_TEST(test_queue_age)
{
	struct sim_mta_opts o;
	struct sim_mta *mta;
	struct sim_sink *proxy = sink_on(IP_PROXY, "proxy",
	    "dot=reply:451 4.7.1 overloaded", (char *)NULL);
	struct sim_sink *bypass = sink_on(IP_BYPASS, "bypass", (char *)NULL);
	const struct evrec *rx, *by;

	mta_opts(&o, SIM_ARCH_CLIENT_IP);
	o.proxies = list1(sim_sink_addr(proxy));
	o.nproxies = 1;
	o.bypass = sim_sink_addr(bypass);
	o.retry_ms = 40;
	o.max_retry_ms = 5000;	/* the age, not the next retry, decides */
	o.max_queue_age_ms = 400;
	mta = mta_new(&o);
	submit(mta, "a@corp.test", list1("b@ext.test"), msg("aged", NULL));
	WAIT_UNTIL(sim_sink_count(bypass) == 1 && sim_mta_queued(mta) == 0,
	    "%s", ev_dump());
	rx = ev_get(SIM_MTA_RECEIVED, NULL, 0);
	by = ev_get(SIM_MTA_DELIVERED, "bypass", 0);
	H_CHECK(nev(SIM_MTA_DEFERRED, "proxy") >= 2 &&
	    ev_get(SIM_MTA_DEFERRED, "proxy", 0)->code == 451, "%s", ev_dump());
	/* Timers may fire a hair early by the loop's cached clock. */
	H_CHECK(by->t - rx->t >= 0.39 && by->t - rx->t < 3.0,
	    "moved after %.3f s\n%s", by->t - rx->t, ev_dump());
	H_CHECK(sim_sink_count(proxy) == 0, "the proxy accepted it");
}
END_TEST

/*
 * The first proxy hangs after connecting: the MTA moves on to the second
 * once the greeting times out, and inspected mail flows meanwhile.
 */
START_TEST(test_proxy_failover)
{
	struct sim_mta_opts o;
	struct sim_mta *mta;
	struct sim_sink *hung = sink_on(IP_PROXY, "hung", "connect=hang",
	    (char *)NULL);
	struct sim_sink *p2 = sink_on(IP_PROXY2, "proxy2", (char *)NULL);
	struct sim_sink *down = sink_on(IP_DOWN, "down", (char *)NULL);
	const struct evrec *first, *other;

	mta_opts(&o, SIM_ARCH_CLIENT_IP);
	o.proxies = list2(sim_sink_addr(hung), sim_sink_addr(p2));
	o.nproxies = 2;
	o.downstream = sim_sink_addr(down);
	o.connect_timeout_ms = 1500;
	mta = mta_new(&o);
	submit(mta, "a@corp.test", list1("b@ext.test"), msg("slow", NULL));
	WAIT_UNTIL(sim_sink_sessions(hung) == 1, "never tried the first proxy");
	send_msg(sim_mta_addr(mta), IP_PROXY, PROXY_HELO, "a@corp.test",
	    list1("b@ext.test"), msg("inspected", NULL));
	WAIT_UNTIL(sim_sink_count(p2) == 1 && sim_sink_count(down) == 1 &&
	    sim_mta_queued(mta) == 0, "%s", ev_dump());
	first = ev_get(SIM_MTA_DELIVERED, "proxy", 0);
	other = ev_get(SIM_MTA_DELIVERED, "downstream", 0);
	H_CHECK(first->msg == 1 && first->attempt == 1 && other->msg == 2 &&
	    other->t < first->t, "%s", ev_dump());
	H_CHECK(first->t - ev_get(SIM_MTA_RECEIVED, NULL, 0)->t >= 1.45, "%s",
	    ev_dump());
}
END_TEST

/* ---- limits ----------------------------------------------------------------- */

START_TEST(test_limits)
{
	struct sim_mta_opts o;
	struct sim_mta *mta;
	struct sim_sink *down = sink_on(IP_DOWN, "down", "dot=hang",
	    (char *)NULL);
	struct sent *s;
	char *big;

	mta_opts(&o, SIM_ARCH_CLIENT_IP);
	o.downstream = sim_sink_addr(down);
	o.max_queue = 1;
	o.max_rcpts = 2;
	o.max_size = 2000;
	mta = mta_new(&o);
	s = send_msg(sim_mta_addr(mta), IP_PROXY, PROXY_HELO, "a@corp.test",
	    list1("b@ext.test"), msg("stuck", NULL));
	H_CHECK(s->final == 250, "%d", s->final);
	WAIT_UNTIL(sim_sink_sessions(down) == 1, "no delivery attempt");
	/* The queue is full while the downstream hangs. */
	s = send_msg(sim_mta_addr(mta), IP_PROXY, PROXY_HELO, "a@corp.test",
	    list1("b@ext.test"), msg("more", NULL));
	H_CHECK(s->final == 452 && strncmp(s->final_text, "4.3.1 ", 6) == 0,
	    "%d %s", s->final, s->final_text);
	s = send_msg(sim_mta_addr(mta), IP_SENDER, "c.test", "a@corp.test",
	    (const char *[]){ "b@ext.test", "c@ext.test", "d@ext.test", NULL },
	    msg("many", NULL));
	H_CHECK(s->rcpt[0] == 250 && s->rcpt[1] == 250 && s->rcpt[2] == 452,
	    "%d %d %d", s->rcpt[0], s->rcpt[1], s->rcpt[2]);
	big = h_keep(calloc(1, 3001));
	memset(big, 'x', 3000);
	s = send_msg(sim_mta_addr(mta), IP_SENDER, "c.test", "a@corp.test",
	    list1("b@ext.test"), big);
	H_CHECK(s->final == 552, "%d %s", s->final, s->final_text);
	H_CHECK(sim_mta_queued(mta) == 1 && nev(SIM_MTA_RECEIVED, NULL) == 1,
	    "%s", ev_dump());
}
END_TEST

/* ---- sim_send ------------------------------------------------------------ */

START_TEST(test_send_results)
{
	struct sim_sink *s = sink_on(IP_DOWN, "down",
	    "rcpt:bad@x.test=reply:550 5.1.1 no such user", (char *)NULL);
	struct sim_sink_opts so;
	struct sim_sink *closed;
	const struct sim_msg *m;
	struct sent *r;

	r = send_msg(sim_sink_addr(s), IP_SENDER, "me.test", "a@x.test",
	    list2("bad@x.test", "good@x.test"), "Subject: s\n\nline\n.dot\n");
	H_CHECK(r->connected && r->greeting == 220 && r->mail == 250 &&
	    r->nrcpt == 2 && r->rcpt[0] == 550 && r->rcpt[1] == 250 &&
	    r->data == 354 && r->final == 250 && r->error[0] == '\0' &&
	    strcmp(r->stage, "dot") == 0, "%d %d %d %d %d %s %s", r->greeting,
	    r->mail, r->rcpt[0], r->data, r->final, r->error, r->stage);
	H_CHECK(strcmp(r->rcpt_text[0], "5.1.1 no such user") == 0 &&
	    strcmp(r->rcpt_text[1], "2.1.5 Ok") == 0 &&
	    strcmp(r->final_text, "2.0.0 Ok: queued as msg-000001") == 0,
	    "%s / %s / %s", r->rcpt_text[0], r->rcpt_text[1], r->final_text);
	m = sim_sink_msg(s, 0);
	H_CHECK(strcmp(m->client_ip, IP_SENDER) == 0 &&
	    strcmp(m->helo, "me.test") == 0 && m->nrcpts == 1, "%s %s",
	    m->client_ip, m->helo);
	/* LF became CRLF, the dot was stuffed and unstuffed again. */
	H_CHECK(strcmp(content_of(m), "Subject: s\r\n\r\nline\r\n.dot\r\n") == 0,
	    "%s", content_of(m));

	/* Every recipient refused: no DATA. */
	r = send_msg(sim_sink_addr(s), NULL, "me.test", "", list1("bad@x.test"),
	    "x\r\n");
	H_CHECK(r->rcpt[0] == 550 && r->data == 0 && r->final == 0 &&
	    strcmp(r->stage, "rcpt") == 0 && r->error[0] == '\0', "%d %s",
	    r->data, r->stage);

	/* Nobody there. */
	r = send_msg(dead_addr(IP_PROXY), NULL, "me.test", "a@x.test",
	    list1("b@x.test"), "x\r\n");
	H_CHECK(!r->connected && r->greeting == 0 && strstr(r->error, "connect")
	    && strcmp(r->stage, "connect") == 0, "%d %s %s", r->connected,
	    r->error, r->stage);

	/* A refusing greeting. */
	memset(&so, 0, sizeof(so));
	so.listen = IP_PROXY ":0";
	so.greeting = "554 5.3.2 not now";
	closed = sink_new(&so);
	r = send_msg(sim_sink_addr(closed), NULL, "me.test", "a@x.test",
	    list1("b@x.test"), "x\r\n");
	H_CHECK(r->connected && r->greeting == 554 && r->mail == 0 &&
	    strcmp(r->greeting_text, "5.3.2 not now") == 0, "%d %s", r->greeting,
	    r->greeting_text);

	/* Bad options are reported from the loop, not refused on the spot. */
	r = send_msg("nonsense", NULL, "me.test", "a@x.test", list1("b@x.test"),
	    "x\r\n");
	H_CHECK(!r->connected && strstr(r->error, "bad address") != NULL, "%s",
	    r->error);
	r = send_msg(sim_sink_addr(s), NULL, "me.test", "a@x.test",
	    list1("b@x.test>\r\nRSET"), "x\r\n");
	H_CHECK(!r->connected && strstr(r->error, "bad recipient") != NULL, "%s",
	    r->error);
	H_CHECK(sim_sink_count(s) == 1, "%zu", sim_sink_count(s));
}
END_TEST

/* ---- sim_msg_build ----------------------------------------------------- */

static int
b64val(char c)
{
	const char *p = strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	    "0123456789+/", c);

	return c != '\0' && p != NULL ? (int)(p - "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	    "abcdefghijklmnopqrstuvwxyz0123456789+/") : -1;
}

/* Decode base64 up to end, skipping line breaks; -1 on a bad character. */
static long
b64dec(const char *p, const char *end, unsigned char *out)
{
	unsigned v = 0;
	long n = 0;
	int bits = 0, d;

	for (; p < end; p++) {
		if (*p == '\r' || *p == '\n')
			continue;
		if (*p == '=')
			break;
		if ((d = b64val(*p)) < 0)
			return -1;
		v = (v << 6) | (unsigned)d;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[n++] = (unsigned char)(v >> bits);
		}
	}
	return n;
}

START_TEST(test_msg_build)
{
	static const char *hdrs[] = { "X-CFilter: Encrypt", "X-Test: 1" };
	unsigned char bin[700], dec[800];
	struct sim_attachment att[1];
	struct sim_msg_spec sp;
	struct sim_msg m;
	struct buf out = BUF_INIT;
	const char *c, *p, *q, *end;
	char v[512], boundary[128], *bnd;
	size_t i;
	long n;

	for (i = 0; i < sizeof(bin); i++)
		bin[i] = (unsigned char)(i * 7);
	memset(&sp, 0, sizeof(sp));
	sp.headers = hdrs;
	sp.nheaders = 2;
	sp.from = "Alice <alice@corp.test>";
	sp.to = "bob@ext.test";
	sp.subject = "Gr\xc3\xbc\xc3\x9f" "e \xe2\x82\xac";
	sp.body = "Card 4111 1111 1111 1111\nbye\n";
	att[0].filename = "data.bin";
	att[0].content_type = "application/octet-stream";
	att[0].data = (const char *)bin;
	att[0].len = sizeof(bin);
	sp.attachments = att;
	sp.nattachments = 1;
	sp.pad_to = 6000;
	H_CHECK(sim_msg_build(&out, &sp) == 0, "sim_msg_build failed");
	buf_cstr(&out);
	c = out.data;
	H_CHECK(out.len >= 6000 && out.len < 6200, "%zu bytes", out.len);
	/* CRLF only, no line over 998. */
	for (i = 0, p = c; i < out.len; i++) {
		H_CHECK(c[i] != '\n' || (i > 0 && c[i - 1] == '\r'), "bare LF at %zu",
		    i);
		H_CHECK(c[i] != '\r' || c[i + 1] == '\n', "bare CR at %zu", i);
		if (c[i] == '\n') {
			H_CHECK(&c[i] - p <= 999, "long line");
			p = &c[i + 1];
		}
	}
	memset(&m, 0, sizeof(m));
	m.content = out;
	H_CHECK(sim_msg_header(&m, "date", v, sizeof(v)) != NULL && v[0] != '\0',
	    "no Date");
	H_CHECK(sim_msg_header(&m, "Message-ID", v, sizeof(v)) != NULL &&
	    v[0] == '<' && strchr(v, '@') != NULL, "Message-ID %s", v);
	H_CHECK(strcmp(sim_msg_header(&m, "X-CFilter", v, sizeof(v)), "Encrypt")
	    == 0 && strcmp(sim_msg_header(&m, "From", v, sizeof(v)),
	    "Alice <alice@corp.test>") == 0, "%s", c);
	H_CHECK(strcmp(sim_msg_header(&m, "Subject", v, sizeof(v)),
	    "=?UTF-8?B?R3LDvMOfZSDigqw=?=") == 0, "Subject: %s", v);
	H_CHECK(sim_msg_header(&m, "Content-Type", v, sizeof(v)) != NULL &&
	    (bnd = strstr(v, "boundary=\"")) != NULL &&
	    strncmp(v, "multipart/mixed;", 16) == 0, "Content-Type: %s", v);
	snprintf(boundary, sizeof(boundary), "\r\n--%.*s", (int)strcspn(bnd + 10,
	    "\""), bnd + 10);
	/* Text part, then the attachment, then the closing delimiter. */
	p = strstr(c, boundary);
	H_CHECK(p != NULL && strstr(p, "Content-Type: text/plain; charset="
	    "us-ascii\r\n") && strstr(p, "\r\n\r\nCard 4111 1111 1111 1111\r\n"
	    "bye\r\nmta-sim padding line 000001 "), "text part: %s", c);
	p = strstr(p + 1, boundary);
	H_CHECK(p != NULL, "no second part");
	q = strstr(p, "\r\n\r\n");
	H_CHECK(q != NULL && h_memmem(p, (size_t)(q - p),
	    "Content-Transfer-Encoding: base64") && h_memmem(p, (size_t)(q - p),
	    "Content-Disposition: attachment; filename=\"data.bin\""), "%s", p);
	end = strstr(q + 4, boundary);
	H_CHECK(end != NULL && strncmp(end + strlen(boundary), "--\r\n", 4) == 0,
	    "no closing delimiter");
	n = b64dec(q + 4, end, dec);
	H_CHECK(n == (long)sizeof(bin) && memcmp(dec, bin, sizeof(bin)) == 0,
	    "attachment decodes to %ld bytes", n);

	/* A header that would break its line is refused, output unchanged. */
	hdrs[1] = "X-Bad: a\r\nBcc: victim@x";
	i = out.len;
	H_CHECK(sim_msg_build(&out, &sp) == -1 && out.len == i,
	    "header injection accepted");
	buf_free(&out);
}
END_TEST


/* ---- TLS ------------------------------------------------------------------- */

/* Run a program to its end; fail unless it exits 0. */
static void
run_ok(const char *name, char *const argv[])
{
	struct proc *p = proc_start(name, argv);
	int st = 0;

	H_CHECK(proc_wait_exit(p, H_DEADLINE_MS, &st), "%s hangs", name);
	H_CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "%s failed: %s%s", name,
	    proc_output(p, H_STDOUT, NULL), proc_output(p, H_STDERR, NULL));
}

/*
 * One CA, a leaf per role on its own address (the proxy's also on
 * 127.0.0.1, where bin/mailprevent listens), and bad variants of the
 * bypass host and of the proxy. Returns the directory.
 */
static char *
tls_pki(void)
{
	char *dir = h_strf("%s/pki", h_tmpdir("certs"));
	char *gen = h_strf("%s/certs-gen", h_bindir());
	char *pkiv[] = { gen, "pki", "--out", dir,
	    "--host", "mta=mta.sim.test," IP_MTA,
	    "--host", "proxy=proxy.sim.test,127.0.0.1," IP_PROXY "," IP_PROXY2,
	    "--host", "down=down.sim.test," IP_DOWN,
	    "--host", "bypass=bypass.sim.test," IP_BYPASS, NULL };
	char *badv[] = { gen, "bad", "--out", dir,
	    "--host", "bypass=bypass.sim.test," IP_BYPASS,
	    "--host", "proxy=proxy.sim.test," IP_PROXY, NULL };

	run_ok("certs-gen-pki", pkiv);
	run_ok("certs-gen-bad", badv);
	return dir;
}

/* A sink on ip presenting dir/leaf.chain.pem. */
static struct sim_sink *
tls_sink_on(const char *ip, const char *name, const char *dir,
    const char *leaf)
{
	struct sim_sink_opts o;

	memset(&o, 0, sizeof(o));
	o.name = name;
	o.listen = h_strf("%s:0", ip);
	o.hostname = h_strf("%s.sim.test", name);
	o.tls_cert = h_strf("%s/%s.chain.pem", dir, leaf);
	o.tls_key = h_strf("%s/%s.key", dir, leaf);
	return sink_new(&o);
}

static void
check_msg_tls(const struct sim_msg *m)
{
	H_CHECK(m != NULL && m->tls != NULL && strncmp(m->tls, "TLSv1.", 6) == 0,
	    "message not over TLS: %s", m && m->tls ? m->tls : "(plaintext)");
}

/*
 * Inbound: the MTA's listener offers STARTTLS with its certificate and,
 * with tls_required, refuses MAIL before it. The trace says ESMTPS.
 */
START_TEST(test_tls_inbound)
{
	char *dir = tls_pki();
	struct sim_mta_opts o;
	struct sim_mta *mta;
	struct sim_sink *down = sink_on(IP_DOWN, "down", (char *)NULL);
	struct sent *r;
	const char *c;

	mta_opts(&o, SIM_ARCH_CLIENT_IP);
	o.downstream = sim_sink_addr(down);
	o.tls_cert = h_strf("%s/mta.chain.pem", dir);
	o.tls_key = h_strf("%s/mta.key", dir);
	o.tls_required = 1;
	mta = mta_new(&o);

	/* From the proxy's IP, so that it goes straight downstream. */
	r = send_msg(sim_mta_addr(mta), IP_PROXY, PROXY_HELO, "a@corp.test",
	    list1("b@ext.test"), msg("clear", NULL));
	H_CHECK(r->mail == 530 && strncmp(r->mail_text, "5.7.0 ", 6) == 0 &&
	    !r->tls, "%d %s", r->mail, r->mail_text);

	send_starttls = SIM_TLS_MUST;
	send_trust = h_strf("%s/trust.pem", dir);
	r = send_msg(sim_mta_addr(mta), IP_PROXY, PROXY_HELO, "a@corp.test",
	    list1("b@ext.test"), msg("encrypted", NULL));
	H_CHECK(r->final == 250 && r->tls && strcmp(r->tls_verify, "ok") == 0 &&
	    strcmp(r->tls_peer, "mta.sim.test") == 0 &&
	    strncmp(r->tls_proto, "TLSv1.", 6) == 0, "%d %s (%s) tls=%d %s %s",
	    r->final, r->final_text, r->error, r->tls, r->tls_verify,
	    r->tls_peer);
	WAIT_UNTIL(sim_sink_count(down) == 1 && sim_mta_queued(mta) == 0, "%s",
	    ev_dump());
	c = content_of(sim_sink_msg(down, 0));
	H_CHECK(strstr(c, "by mta.sim.test with ESMTPS id") != NULL, "%s", c);
	H_CHECK(sim_sink_msg(down, 0)->tls == NULL, "TLS downstream unasked");
}
END_TEST

/*
 * The guide's chapter 3: when the proxies are down, the bypass route goes
 * straight to the next MTA, so the MTA itself must trust that MTA's
 * certificate. It does (verified delivery); with a certificate from an
 * unknown CA the message stays queued, and nothing reaches that host.
 */
START_TEST(test_tls_bypass_trusts_downstream)
{
	char *dir = tls_pki();
	struct sim_mta_opts o;
	struct sim_mta *mta;
	struct sim_sink *bypass = tls_sink_on(IP_BYPASS, "bypass", dir,
	    "bypass");

	mta_opts(&o, SIM_ARCH_CLIENT_IP);
	o.proxies = list1(dead_addr(IP_PROXY));
	o.nproxies = 1;
	o.bypass = sim_sink_addr(bypass);
	o.tls_outbound = SIM_TLS_MUST;
	o.tls_trust = h_strf("%s/trust.pem", dir);
	mta = mta_new(&o);
	submit(mta, "a@corp.test", list1("b@ext.test"), msg("bypassed", NULL));
	WAIT_UNTIL(sim_sink_count(bypass) == 1 && sim_mta_queued(mta) == 0,
	    "%s", ev_dump());
	check_msg_tls(sim_sink_msg(bypass, 0));
	H_CHECK(ev_get(SIM_MTA_DELIVERED, "bypass", 0)->code == 250, "%s",
	    ev_dump());
}
END_TEST

START_TEST(test_tls_bypass_untrusted)
{
	char *dir = tls_pki();
	struct sim_mta_opts o;
	struct sim_mta *mta;
	struct sim_sink *bypass = tls_sink_on(IP_BYPASS, "bypass", dir,
	    "bypass-untrusted");
	const struct evrec *d;

	mta_opts(&o, SIM_ARCH_CLIENT_IP);
	o.proxies = list1(dead_addr(IP_PROXY));
	o.nproxies = 1;
	o.bypass = sim_sink_addr(bypass);
	o.tls_outbound = SIM_TLS_MUST;
	o.tls_trust = h_strf("%s/trust.pem", dir);
	mta = mta_new(&o);
	submit(mta, "a@corp.test", list1("b@ext.test"), msg("held", NULL));
	WAIT_UNTIL(nev(SIM_MTA_DEFERRED, "bypass") >= 2, "%s", ev_dump());
	d = ev_get(SIM_MTA_DEFERRED, "bypass", 0);
	H_CHECK(d->code == 0 && strstr(d->text, "tls: certificate verification "
	    "failed") != NULL, "%s", ev_dump());
	H_CHECK(sim_sink_count(bypass) == 0 && sim_mta_queued(mta) == 1 &&
	    sim_sink_sessions(bypass) >= 2, "%zu", sim_sink_count(bypass));
}
END_TEST

/* Opportunistic: TLS where offered (unverified), plaintext where not. */
START_TEST(test_tls_may)
{
	char *dir = tls_pki();
	struct sim_mta_opts o;
	struct sim_mta *mta;
	struct sim_sink *bypass = tls_sink_on(IP_BYPASS, "bypass", dir,
	    "bypass-untrusted");
	struct sim_sink *down = sink_on(IP_DOWN, "down", (char *)NULL);

	mta_opts(&o, SIM_ARCH_CLIENT_IP);
	o.proxies = list1(dead_addr(IP_PROXY2));
	o.nproxies = 1;
	o.bypass = sim_sink_addr(bypass);
	o.downstream = sim_sink_addr(down);
	o.tls_outbound = SIM_TLS_MAY;
	mta = mta_new(&o);
	submit(mta, "a@corp.test", list1("b@ext.test"), msg("may 1", NULL));
	send_msg(sim_mta_addr(mta), IP_PROXY, PROXY_HELO, "a@corp.test",
	    list1("b@ext.test"), msg("may 2", NULL));
	WAIT_UNTIL(sim_sink_count(bypass) == 1 && sim_sink_count(down) == 1 &&
	    sim_mta_queued(mta) == 0, "%s", ev_dump());
	check_msg_tls(sim_sink_msg(bypass, 0));
	H_CHECK(sim_sink_msg(down, 0)->tls == NULL, "TLS to a plain sink?");
}
END_TEST

/* A proxy whose certificate fails counts as down: the next one gets it. */
START_TEST(test_tls_proxy_failover)
{
	char *dir = tls_pki();
	struct sim_mta_opts o;
	struct sim_mta *mta;
	struct sim_sink *p1 = tls_sink_on(IP_PROXY, "proxy1", dir,
	    "proxy-untrusted");
	struct sim_sink *p2 = tls_sink_on(IP_PROXY2, "proxy2", dir, "proxy");

	mta_opts(&o, SIM_ARCH_CLIENT_IP);
	o.proxies = list2(sim_sink_addr(p1), sim_sink_addr(p2));
	o.nproxies = 2;
	o.tls_outbound = SIM_TLS_MUST;
	o.tls_trust = h_strf("%s/trust.pem", dir);
	mta = mta_new(&o);
	submit(mta, "a@corp.test", list1("b@ext.test"), msg("failover", NULL));
	WAIT_UNTIL(sim_sink_count(p2) == 1 && sim_mta_queued(mta) == 0, "%s",
	    ev_dump());
	H_CHECK(sim_sink_count(p1) == 0 && sim_sink_sessions(p1) == 1 &&
	    nev(SIM_MTA_DEFERRED, NULL) == 0 &&
	    ev_get(SIM_MTA_DELIVERED, "proxy", 0)->attempt == 1, "%s",
	    ev_dump());
	check_msg_tls(sim_sink_msg(p2, 0));
}
END_TEST

/* ---- with the real proxy ----------------------------------------------- */

/*
 * The client-IP architecture around bin/mailprevent in reflecting mode:
 * the proxy connects back from its source_address to the MTA's own
 * address (the TCP peer it saw), and the MTA sends the message on.
 */
START_TEST(test_real_proxy_reflect)
{
	static const char *proxy_ips[] = { "127.0.0.17" };
	struct sim_mta_opts o;
	struct sim_mta *mta;
	struct sim_sink *down = sink_on(IP_DOWN, "down", (char *)NULL);
	struct proxy *px;
	const struct sim_msg *m;
	const char *c, *port;
	char v[128];

	mta_opts(&o, SIM_ARCH_CLIENT_IP);
	o.proxy_ips = proxy_ips;
	o.downstream = sim_sink_addr(down);
	mta = mta_new(&o);
	port = strrchr(sim_mta_addr(mta), ':') + 1;
	px = proxy_start(h_strf("listen: \"127.0.0.1:0\"\nmode: reflect\n"
	    "resubmit_port: %s\nhelo_name: \"prevent.test\"\n"
	    "source_address: \"127.0.0.17\"\npass_header: \"%s\"\n", port,
	    PASS_HEADER));
	pumped = px->proc;
	H_CHECK(sim_mta_set_proxies(mta, list1(h_strf("127.0.0.1:%d",
	    px->port)), 1) == 0, "set_proxies");
	submit(mta, "alice@corp.test", list1("bob@ext.test"), msg("real", NULL));
	WAIT_UNTIL(sim_sink_count(down) == 1 && sim_mta_queued(mta) == 0, "%s",
	    ev_dump());
	m = sim_sink_msg(down, 0);
	c = content_of(m);
	H_CHECK(h_count(c, strlen(c), MTA_TRACE, strlen(MTA_TRACE)) == 2, "%s", c);
	H_CHECK(sim_msg_header(m, "X-Filter-Loop", v, sizeof(v)) != NULL &&
	    strcmp(v, "Reflected") == 0, "%s", c);
	H_CHECK(strstr(c, "Received: from prevent.test ([127.0.0.17])") != NULL,
	    "%s", c);
	H_CHECK(ev_get(SIM_MTA_DELIVERED, "proxy", 0)->msg == 1 &&
	    ev_get(SIM_MTA_DELIVERED, "downstream", 0)->msg == 2 &&
	    nev(SIM_MTA_RECEIVED, NULL) == 2 && nev(SIM_MTA_DELIVERED, NULL) == 2,
	    "%s", ev_dump());
	pumped = NULL;
}
END_TEST

/*
 * The same in TLS end to end: MTA -> proxy and proxy -> MTA (reflected to
 * the MTA's address, which its certificate names) both verified, then on
 * to a downstream that the MTA verifies too.
 */
START_TEST(test_real_proxy_reflect_tls)
{
	static const char *proxy_ips[] = { "127.0.0.17" };
	char *dir = tls_pki();
	struct sim_mta_opts o;
	struct sim_mta *mta;
	struct sim_sink *down = tls_sink_on(IP_DOWN, "down", dir, "down");
	struct proxy *px;
	const struct sim_msg *m;
	const char *c, *port;
	char *line;

	mta_opts(&o, SIM_ARCH_CLIENT_IP);
	o.proxy_ips = proxy_ips;
	o.downstream = sim_sink_addr(down);
	o.tls_cert = h_strf("%s/mta.chain.pem", dir);
	o.tls_key = h_strf("%s/mta.key", dir);
	o.tls_outbound = SIM_TLS_MUST;
	o.tls_trust = h_strf("%s/trust.pem", dir);
	mta = mta_new(&o);
	port = strrchr(sim_mta_addr(mta), ':') + 1;
	px = proxy_start(h_strf("listen: \"127.0.0.1:0\"\nmode: reflect\n"
	    "resubmit_port: %s\nhelo_name: \"prevent.test\"\n"
	    "source_address: \"127.0.0.17\"\npass_header: \"%s\"\n"
	    "tls:\n  cert_file: \"%s/proxy.chain.pem\"\n"
	    "  key_file: \"%s/proxy.key\"\n  trust_file: \"%s/trust.pem\"\n",
	    port, PASS_HEADER, dir, dir, dir));
	pumped = px->proc;
	H_CHECK(sim_mta_set_proxies(mta, list1(h_strf("127.0.0.1:%d",
	    px->port)), 1) == 0, "set_proxies");
	submit(mta, "alice@corp.test", list1("bob@ext.test"), msg("real tls",
	    NULL));
	WAIT_UNTIL(sim_sink_count(down) == 1 && sim_mta_queued(mta) == 0, "%s",
	    ev_dump());
	m = sim_sink_msg(down, 0);
	check_msg_tls(m);
	c = content_of(m);
	/* Into the MTA in clear from the sender, back from the proxy over TLS. */
	H_CHECK(h_count(c, strlen(c), MTA_TRACE, strlen(MTA_TRACE)) == 2 &&
	    strstr(c, "Received: from prevent.test ([127.0.0.17])\r\n\tby "
	    "mta.sim.test with ESMTPS id") != NULL, "%s", c);
	line = proxy_wait_log(px, "event=tls side=inbound");
	H_CHECK(strstr(line, " proto=TLSv1.") != NULL && h_kv_get(line,
	    "client") != NULL && strncmp(h_kv_get(line, "client"), IP_MTA ":",
	    strlen(IP_MTA) + 1) == 0, "%s", line);
	line = proxy_wait_log(px, "event=tls side=outbound");
	H_CHECK(h_kv_has(line, "verify", "ok") &&
	    h_kv_has(line, "peer", "mta.sim.test"), "%s", line);
	pumped = NULL;
}
END_TEST

/* ---- fixtures ------------------------------------------------------------- */

static void
loop_setup(void)
{
	const char *v = getenv("MP_E2E_VERBOSE");

	log_init("mta_test", v != NULL && *v != '\0' ? LOG_DEBUG : LOG_WARN);
	base = event_base_new();
	H_CHECK(base != NULL, "event_base_new");
	nevs = 0;
	nsinks = nmtas = 0;
	pumped = NULL;
}

static void
loop_teardown(void)
{
	while (nmtas > 0)
		sim_mta_free(mtas[--nmtas]);
	while (nsinks > 0)
		sim_sink_free(sinks[--nsinks]);
	event_base_free(base);
	base = NULL;
}

static TCase *
tcase(const char *name)
{
	TCase *tc = h_tcase(name);

	tcase_add_checked_fixture(tc, loop_setup, loop_teardown);
	return tc;
}

int
main(void)
{
	Suite *s = suite_create("e2e_mta");
	TCase *tc = tcase("architectures");

	tcase_add_loop_test(tc, test_arch_route, SIM_ARCH_LISTENER,
	    SIM_ARCH_HEADER + 1);
	tcase_add_test(tc, test_arch_uninspected);
	tcase_add_test(tc, test_sender_exceptions);
	suite_add_tcase(s, tc);

	tc = tcase("routes");
	tcase_add_test(tc, test_header_routes);
	tcase_add_test(tc, test_local_mailbox);
	suite_add_tcase(s, tc);

	tc = tcase("bounces");
	tcase_add_test(tc, test_ndr_on_5xx);
	tcase_add_test(tc, test_ndr_not_excepted);
	tcase_add_test(tc, test_partial_rcpts);
	suite_add_tcase(s, tc);

	tc = tcase("queue");
	tcase_add_test(tc, test_retry_4xx);
	tcase_add_test(tc, test_retry_exhausted);
	tcase_add_test(tc, test_bypass_when_proxy_down);
	tcase_add_test(tc, test_block_on_failure);
	tcase_add_test(tc, test_queue_age);
	tcase_add_test(tc, test_proxy_failover);
	tcase_add_test(tc, test_limits);
	suite_add_tcase(s, tc);

	tc = tcase("send");
	tcase_add_test(tc, test_send_results);
	tcase_add_test(tc, test_msg_build);
	suite_add_tcase(s, tc);

	tc = tcase("tls");
	tcase_add_test(tc, test_tls_inbound);
	tcase_add_test(tc, test_tls_bypass_trusts_downstream);
	tcase_add_test(tc, test_tls_bypass_untrusted);
	tcase_add_test(tc, test_tls_may);
	tcase_add_test(tc, test_tls_proxy_failover);
	suite_add_tcase(s, tc);

	tc = tcase("mailprevent");
	tcase_add_test(tc, test_real_proxy_reflect);
	tcase_add_test(tc, test_real_proxy_reflect_tls);
	suite_add_tcase(s, tc);
	return h_run(s);
}
