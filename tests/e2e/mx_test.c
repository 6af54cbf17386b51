/*
 * mx_test: the proxy's next hop by MX lookup (next_hop.mx_lookup) against
 * `mta-sim dns`, and that DNS role itself.
 *
 * Every MX host is a sink on its own loopback address (127.0.0.2, .3...)
 * and all of them listen on the same port, the proxy's resubmit_port,
 * because MX hosts are contacted there. The DNS server answers on
 * 127.0.0.1, and the proxy asks it only (dns_servers).
 *
 * Which hop took a message is read from the sinks and from the proxy's
 * event=nexthop-connected hop=HOST[IP:PORT]/mxPREF lines; what the proxy
 * asked is read from the DNS server's event=query lines, synchronised by
 * a probe query of our own (its line comes after every earlier one).
 */
#include <sys/socket.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

#define MX_SOA	"example.test 300 SOA ns.example.test hostmaster.example.test " \
		"1 3600 600 86400 60\n"

/* ---- the DNS server ---- */

struct dnsd {
	struct proc	*proc;
	int		 port;
	char		*zone;		/* path of the zone file */
	unsigned	 probes;
};

static void
dnsd_write_zone(struct dnsd *d, const char *zone)
{
	char *tmp = h_strf("%s.new", d->zone);

	h_write_file(tmp, zone, strlen(zone));
	if (rename(tmp, d->zone) == -1)
		H_CHECK(0, "rename %s: %s", tmp, strerror(errno));
}

/* "mta-sim dns --zone FILE extra..." (extras end with NULL). */
static struct dnsd *
dnsd_start(const char *zone, ...)
{
	struct dnsd *d = h_keep(calloc(1, sizeof(*d)));
	char *argv[32], *line, *colon;
	const char *a;
	size_t n = 0;
	va_list ap;

	d->zone = h_strf("%s/zone", h_tmpdir("dns"));
	dnsd_write_zone(d, zone);
	argv[n++] = h_strf("%s/mta-sim", h_bindir());
	argv[n++] = "dns";
	argv[n++] = "--listen";
	argv[n++] = "127.0.0.1:0";
	argv[n++] = "--zone";
	argv[n++] = d->zone;
	va_start(ap, zone);
	while ((a = va_arg(ap, const char *)) != NULL && n < 31)
		argv[n++] = (char *)a;
	va_end(ap);
	argv[n] = NULL;
	d->proc = proc_start("mta-sim-dns", argv);
	line = proc_wait_line(d->proc, H_STDOUT, "listening 127.0.0.1:",
	    H_DEADLINE_MS);
	H_CHECK(line != NULL, "mta-sim dns did not print \"listening\"");
	colon = strrchr(line, ':');
	d->port = atoi(colon + 1);
	H_CHECK(d->port > 0 && d->port < 65536, "port in \"%s\"", line);
	return d;
}

/* New zone text, SIGHUP, and wait until the server says it took it. */
static void
dnsd_reload(struct dnsd *d, const char *zone)
{
	dnsd_write_zone(d, zone);
	proc_mark(d->proc, H_STDERR);
	proc_signal(d->proc, SIGHUP);
	H_CHECK(proc_wait_line(d->proc, H_STDERR, "event=reload ",
	    H_DEADLINE_MS) != NULL, "mta-sim dns did not reload");
}

/* A query: header, one question, and an OPT record with edns. */
static size_t
dns_query(unsigned char *p, uint16_t id, uint16_t flags, const char *name,
    uint16_t type, int edns)
{
	size_t n = 12, l;
	const char *s = name, *dot;

	memset(p, 0, 12);
	p[0] = (unsigned char)(id >> 8);
	p[1] = (unsigned char)id;
	p[2] = (unsigned char)(flags >> 8);
	p[3] = (unsigned char)flags;
	p[5] = 1;
	p[11] = edns ? 1 : 0;
	while (*s != '\0') {
		dot = strchr(s, '.');
		l = dot ? (size_t)(dot - s) : strlen(s);
		p[n++] = (unsigned char)l;
		memcpy(p + n, s, l);
		n += l;
		s += l + (dot ? 1 : 0);
	}
	p[n++] = 0;
	p[n++] = (unsigned char)(type >> 8);
	p[n++] = (unsigned char)type;
	p[n++] = 0;
	p[n++] = 1;
	if (edns) {
		/* root, OPT, payload 1232, TTL 0, RDLENGTH 0 */
		memcpy(p + n, "\0\0\51\4\320\0\0\0\0\0\0", 11);
		n += 11;
	}
	return n;
}

/* Send q over UDP; the first answer within ms, or -1. */
static int
dns_udp(int port, const unsigned char *q, size_t qlen, unsigned char *ans,
    size_t anssz, int ms)
{
	struct sockaddr_in sin;
	struct pollfd pfd;
	ssize_t n;
	int fd;

	fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	H_CHECK(fd != -1, "socket: %s", strerror(errno));
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons((uint16_t)port);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	H_CHECK(sendto(fd, q, qlen, 0, (struct sockaddr *)&sin,
	    sizeof(sin)) == (ssize_t)qlen, "sendto: %s", strerror(errno));
	pfd.fd = fd;
	pfd.events = POLLIN;
	if (poll(&pfd, 1, ms) != 1) {
		close(fd);
		return -1;
	}
	n = recv(fd, ans, anssz, 0);
	close(fd);
	return (int)n;
}

/* The same over TCP, with its length prefix. */
static int
dns_tcp(int port, const unsigned char *q, size_t qlen, unsigned char *ans,
    size_t anssz)
{
	struct sockaddr_in sin;
	unsigned char buf[2 + 65535];
	size_t got = 0, want = 2;
	struct pollfd pfd;
	ssize_t n;
	int fd;
	long long end = h_now_ms() + H_DEADLINE_MS;

	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	H_CHECK(fd != -1, "socket: %s", strerror(errno));
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons((uint16_t)port);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	H_CHECK(connect(fd, (struct sockaddr *)&sin, sizeof(sin)) == 0,
	    "connect: %s", strerror(errno));
	buf[0] = (unsigned char)(qlen >> 8);
	buf[1] = (unsigned char)qlen;
	memcpy(buf + 2, q, qlen);
	H_CHECK(write(fd, buf, qlen + 2) == (ssize_t)(qlen + 2), "write");
	while (got < want) {
		pfd.fd = fd;
		pfd.events = POLLIN;
		if (h_now_ms() >= end || poll(&pfd, 1, (int)(end -
		    h_now_ms())) != 1)
			break;
		if ((n = read(fd, buf + got, sizeof(buf) - got)) <= 0)
			break;
		got += (size_t)n;
		if (got >= 2)
			want = 2 + ((size_t)buf[0] << 8 | buf[1]);
	}
	close(fd);
	if (got < want || want - 2 > anssz)
		return -1;
	memcpy(ans, buf + 2, want - 2);
	return (int)(want - 2);
}

static unsigned
get16(const unsigned char *p)
{
	return (unsigned)p[0] << 8 | p[1];
}

#define ANS_ID(a)	get16(a)
#define ANS_FLAGS(a)	get16((a) + 2)
#define ANS_RCODE(a)	(get16((a) + 2) & 0xf)
#define ANS_QD(a)	get16((a) + 4)
#define ANS_AN(a)	get16((a) + 6)
#define ANS_NS(a)	get16((a) + 8)
#define ANS_AR(a)	get16((a) + 10)
#define F_QR		0x8000
#define F_AA		0x0400
#define F_TC		0x0200

/*
 * Ask the server something of our own and wait for its log line: every
 * query it logged before (the proxy's) is then in our copy of its log.
 */
static void
dnsd_sync(struct dnsd *d)
{
	unsigned char q[512], a[512];
	char *name = h_strf("probe-%u.example.test", ++d->probes);
	size_t len = dns_query(q, 0x5150, 0, name, 1, 0);

	H_CHECK(dns_udp(d->port, q, len, a, sizeof(a), H_DEADLINE_MS) >= 12,
	    "no answer to the probe");
	H_CHECK(proc_wait_line(d->proc, H_STDERR, h_strf("qname=%s ", name),
	    H_DEADLINE_MS) != NULL, "probe not logged");
}

/* Queries logged so far whose line has every one of the tokens. */
static size_t
dnsd_count(struct dnsd *d, const char *tok1, const char *tok2)
{
	const char *out, *p, *nl;
	size_t len, n = 0;
	char *line;

	out = proc_output(d->proc, H_STDERR, &len);
	for (p = out; p < out + len; p = nl + 1) {
		if ((nl = memchr(p, '\n', (size_t)(out + len - p))) == NULL)
			break;
		line = h_strf("%.*s", (int)(nl - p), p);
		if (strstr(line, "event=query ") != NULL &&
		    strstr(line, tok1) != NULL &&
		    (tok2 == NULL || strstr(line, tok2) != NULL))
			n++;
	}
	return n;
}

/* ---- sinks on many addresses, one port ---- */

/*
 * A port that is free on 127.0.0.2 .. 127.0.0.(1+n) alike: each is bound
 * and closed. Another process could take it before the sinks do; the
 * sink then fails to start and says so.
 */
static int
mx_port(int n)
{
	struct sockaddr_in sin;
	int tries, port, i, fd, ok;

	for (tries = 0; tries < 50; tries++) {
		port = h_free_port();
		ok = 1;
		for (i = 0; i < n && ok; i++) {
			fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
			H_CHECK(fd != -1, "socket: %s", strerror(errno));
			memset(&sin, 0, sizeof(sin));
			sin.sin_family = AF_INET;
			sin.sin_port = htons((uint16_t)port);
			sin.sin_addr.s_addr = htonl(0x7f000002u + (uint32_t)i);
			ok = bind(fd, (struct sockaddr *)&sin, sizeof(sin)) == 0;
			close(fd);
		}
		if (ok)
			return port;
	}
	H_CHECK(0, "no port free on 127.0.0.2..%d", 1 + n);
	return -1;
}

/* A sink on 127.0.0.host:port. */
static struct sink *
mx_sink(int host, int port)
{
	return sink_start(NULL, "--listen", h_strf("127.0.0.%d:%d", host, port),
	    (char *)NULL);
}

static void
mx_sink_stop(struct sink *s)
{
	int st;

	proc_signal(s->proc, SIGTERM);
	H_CHECK(proc_wait_exit(s->proc, H_DEADLINE_MS, &st), "sink still up");
}

static struct proxy *
mx_proxy(struct dnsd *d, int port, const char *extra)
{
	return proxy_start(h_strf("listen: \"127.0.0.1:0\"\n"
	    "mode: forward\n"
	    "resubmit_port: %d\n"
	    "next_hop:\n"
	    "  mx_lookup: true\n"
	    "  domains: [\"example.test\"]\n"
	    "dns_servers: [\"127.0.0.1:%d\"]\n"
	    "helo_name: \"mailprevent.test\"\n"
	    "pass_header: \"%s\"\n"
	    "%s", port, d->port, H_PASS_HEADER, extra ? extra : ""));
}

/*
 * One message in a session of its own (a session keeps its next hop, so
 * each message makes the proxy choose again). Returns the hop the proxy
 * logged for it.
 */
static char *
mx_deliver(struct proxy *px, const char *subject)
{
	struct cli_reply *rep;
	struct cli *c;
	char *line;

	proc_mark(px->proc, H_STDERR);
	c = cli_open(px->port);
	rep = cli_mail(c, "a@x", NULL, "b@y", h_msg(subject),
	    strlen(h_msg(subject)));
	H_CHECK(rep->code == 250, "%s: %d %s %s", subject, rep->code, rep->enh,
	    rep->text);
	cli_quit(c);
	line = proxy_wait_log(px, "event=nexthop-connected");
	return h_kv_get(line, "hop");
}

/* MAIL FROM refused with code/enh; nothing reached a sink. */
static void
mx_refused(struct proxy *px, int code, const char *enh)
{
	struct cli *c = cli_open(px->port);

	cli_cmd(c, code, enh, "MAIL FROM:<a@x>");
	cli_quit(c);
}

/* ---- the proxy's MX next hop ---- */

START_TEST(test_mx_preference_order)
{
	int port = mx_port(2);
	struct sink *s1 = mx_sink(2, port), *s2 = mx_sink(3, port);
	/* The worse preference first: the order must come from the values. */
	struct dnsd *d = dnsd_start(MX_SOA
	    "example.test 300 MX 20 mx2.example.test\n"
	    "example.test 300 MX 10 mx1.example.test\n"
	    "mx1.example.test 300 A 127.0.0.2\n"
	    "mx2.example.test 300 A 127.0.0.3\n", (char *)NULL);
	struct proxy *px = mx_proxy(d, port, NULL);
	char *hop;
	int i;

	for (i = 0; i < 5; i++) {
		hop = mx_deliver(px, h_strf("pref %d", i));
		H_CHECK(strcmp(hop, h_strf("mx1.example.test[127.0.0.2:%d]/mx10",
		    port)) == 0, "message %d went to %s", i, hop);
	}
	H_CHECK(sink_count(s1) == 5, "%zu at mx1", sink_count(s1));
	/* The lowest preference goes down: the next one takes over. */
	mx_sink_stop(s1);
	proc_mark(px->proc, H_STDERR);
	hop = mx_deliver(px, "mx1 down");
	H_CHECK(strcmp(hop, h_strf("mx2.example.test[127.0.0.3:%d]/mx20",
	    port)) == 0, "went to %s", hop);
	H_CHECK(sink_count(s2) == 1, "%zu at mx2", sink_count(s2));
	H_CHECK(strstr(sink_eml(s2, 0, NULL), "Subject: mx1 down\r\n") != NULL,
	    "wrong message at mx2");
	sink_wait_idle(s2);
}
END_TEST

START_TEST(test_mx_equal_preference_spreads)
{
	int port = mx_port(2);
	struct sink *s1 = mx_sink(2, port), *s2 = mx_sink(3, port);
	struct dnsd *d = dnsd_start(MX_SOA
	    "example.test 300 MX 10 mx1.example.test\n"
	    "example.test 300 MX 10 mx2.example.test\n"
	    "mx1.example.test 300 A 127.0.0.2\n"
	    "mx2.example.test 300 A 127.0.0.3\n", (char *)NULL);
	struct proxy *px = mx_proxy(d, port, NULL);
	size_t n1, n2;
	int i;

	for (i = 0; i < 40; i++)
		mx_deliver(px, h_strf("spread %d", i));
	n1 = sink_count(s1);
	n2 = sink_count(s2);
	H_CHECK(n1 + n2 == 40, "%zu + %zu messages", n1, n2);
	/*
	 * A fair coin per message: fewer than 2 on one side happens with
	 * probability 2 * 41 / 2^40, about 7e-11. A fixed order gives 40:0.
	 */
	H_CHECK(n1 >= 2 && n2 >= 2, "not spread: %zu at mx1, %zu at mx2", n1,
	    n2);
	/* One MX lookup: the answer was cached (TTL 300) and reshuffled. */
	dnsd_sync(d);
	H_CHECK(dnsd_count(d, "qtype=MX ", NULL) == 1, "%zu MX queries",
	    dnsd_count(d, "qtype=MX ", NULL));
	/* The hosts' addresses are cached for their TTL too. */
	H_CHECK(dnsd_count(d, "qname=mx1.example.test ", "qtype=A ") == 1,
	    "%zu A queries for mx1", dnsd_count(d, "qname=mx1.example.test ",
	    "qtype=A "));
}
END_TEST

START_TEST(test_mx_none_uses_address)
{
	int port = mx_port(1);
	struct sink *s = mx_sink(2, port);
	struct dnsd *d = dnsd_start(MX_SOA
	    "example.test 300 A 127.0.0.2\n", (char *)NULL);
	struct proxy *px = mx_proxy(d, port, NULL);
	char *hop;

	hop = mx_deliver(px, "implicit mx");
	/* No "/mx": the domain stands for itself (RFC 5321 5.1). */
	H_CHECK(strcmp(hop, h_strf("example.test[127.0.0.2:%d]", port)) == 0,
	    "went to %s", hop);
	H_CHECK(sink_count(s) == 1, "%zu", sink_count(s));
	dnsd_sync(d);
	H_CHECK(dnsd_count(d, "qtype=MX ", "rcode=NOERROR answers=0 ") == 1,
	    "no NODATA answer to the MX query");
}
END_TEST

START_TEST(test_mx_host_addresses_in_turn)
{
	int port = mx_port(3);
	struct sink *s = mx_sink(3, port);
	/* Nothing on .2; the host's second address is the sink. */
	struct dnsd *d = dnsd_start(MX_SOA
	    "example.test 300 MX 10 mx1.example.test\n"
	    "mx1.example.test 300 A 127.0.0.2\n"
	    "mx1.example.test 300 A 127.0.0.3\n", (char *)NULL);
	struct proxy *px = mx_proxy(d, port, NULL);
	char *hop, *line;

	proc_mark(px->proc, H_STDERR);
	hop = mx_deliver(px, "second address");
	H_CHECK(strcmp(hop, h_strf("mx1.example.test[127.0.0.3:%d]/mx10",
	    port)) == 0, "went to %s", hop);
	H_CHECK(sink_count(s) == 1, "%zu", sink_count(s));
	/* And the first address was tried first. */
	line = h_strf("%s", proc_output(px->proc, H_STDERR, NULL));
	H_CHECK(strstr(line, h_strf("event=nexthop-failed hop=mx1.example.test"
	    "[127.0.0.2:%d]/mx10", port)) != NULL, "127.0.0.2 never tried");
}
END_TEST

START_TEST(test_mx_null)
{
	int port = mx_port(1);
	/* An address record too: a null MX must not fall back to it. */
	struct sink *s = mx_sink(2, port);
	struct dnsd *d = dnsd_start(MX_SOA
	    "example.test 300 MX 0 .\n"
	    "example.test 300 A 127.0.0.2\n", (char *)NULL);
	struct proxy *px = mx_proxy(d, port, NULL);

	mx_refused(px, 556, "5.1.10");
	proxy_wait_log(px, "reason=null_mx");
	mx_refused(px, 556, "5.1.10");
	H_CHECK(sink_count(s) == 0, "%zu delivered", sink_count(s));
	H_CHECK(sink_events(s, "event=connect") == 0, "the A record was used");
}
END_TEST

START_TEST(test_mx_servfail)
{
	int port = mx_port(1);
	struct sink *s = mx_sink(2, port);
	const char *zone = MX_SOA
	    "example.test 300 MX 10 mx1.example.test\n"
	    "mx1.example.test 300 A 127.0.0.2\n";
	struct dnsd *d = dnsd_start(h_strf("%s$FAULT example.test/MX servfail\n",
	    zone), (char *)NULL);
	struct proxy *px = mx_proxy(d, port, NULL);

	/* Never 5xx, and never cached: the next message tries again. */
	mx_refused(px, 451, "4.4.3");
	proxy_wait_log(px, "reason=dns_tempfail");
	mx_refused(px, 451, "4.4.3");
	dnsd_sync(d);
	H_CHECK(dnsd_count(d, "qtype=MX ", "rcode=SERVFAIL ") >= 2,
	    "SERVFAIL answers: %zu", dnsd_count(d, "qtype=MX ",
	    "rcode=SERVFAIL "));
	H_CHECK(sink_count(s) == 0, "%zu delivered", sink_count(s));

	/* The MX host's own address lookup failing is the same. */
	dnsd_reload(d, h_strf("%s$FAULT mx1.example.test servfail\n", zone));
	mx_refused(px, 451, "4.4.3");

	/* The fault goes away: mail flows. */
	dnsd_reload(d, zone);
	mx_deliver(px, "after servfail");
	H_CHECK(sink_count(s) == 1, "%zu delivered", sink_count(s));
}
END_TEST

START_TEST(test_mx_nxdomain)
{
	int port = mx_port(1);
	struct sink *s = mx_sink(2, port);
	struct dnsd *d = dnsd_start(MX_SOA
	    "other.example.test 300 A 127.0.0.2\n", (char *)NULL);
	struct proxy *px = proxy_start(h_strf("listen: \"127.0.0.1:0\"\n"
	    "mode: forward\nresubmit_port: %d\n"
	    "next_hop:\n  mx_lookup: true\n"
	    "  domains: [\"gone.example.test\"]\n"
	    "dns_servers: [\"127.0.0.1:%d\"]\n", port, d->port));
	struct cli *c = cli_open(px->port);

	/* A next-hop domain that does not exist: held (4xx), not refused. */
	cli_sendf(c, "MAIL FROM:<a@x>\r\n");
	cli_expect_class(c, 4);
	cli_quit(c);
	dnsd_sync(d);
	H_CHECK(dnsd_count(d, "qname=gone.example.test ", "rcode=NXDOMAIN ")
	    >= 1, "no NXDOMAIN answer");
	H_CHECK(sink_count(s) == 0, "%zu delivered", sink_count(s));
}
END_TEST

START_TEST(test_mx_dns_timeout)
{
	int port = mx_port(1);
	struct sink *s = mx_sink(2, port);
	struct dnsd *d = dnsd_start(MX_SOA
	    "example.test 300 MX 10 mx1.example.test\n"
	    "mx1.example.test 300 A 127.0.0.2\n",
	    "--fault", "example.test/MX=drop", (char *)NULL);
	struct proxy *px = mx_proxy(d, port, "dns_timeout: 1\ndns_tries: 1\n");
	struct cli *c = cli_open(px->port);
	long long t0 = h_now_ms();

	/* One try of one second, then the proxy must answer 4xx. */
	cli_sendf(c, "MAIL FROM:<a@x>\r\n");
	H_CHECK(cli_poll(c, 60000) == 1, "no reply within 60 s");
	cli_expect(c, 451, "4.4.3");
	H_CHECK(h_now_ms() - t0 >= 900, "answered after %lld ms: no timeout?",
	    h_now_ms() - t0);
	cli_quit(c);
	dnsd_sync(d);
	H_CHECK(dnsd_count(d, "qtype=MX ", "fault=drop ") >= 1,
	    "the MX query was not dropped");
	H_CHECK(dnsd_count(d, "qtype=MX ", "rcode=NOERROR") == 0,
	    "an MX query was answered");
	H_CHECK(sink_count(s) == 0, "%zu delivered", sink_count(s));
}
END_TEST

START_TEST(test_mx_truncated_tcp)
{
	int port = mx_port(2);
	struct sink *s1 = mx_sink(2, port);
	struct dnsd *d = dnsd_start(MX_SOA
	    "example.test 300 MX 10 mx1.example.test\n"
	    "example.test 300 MX 20 mx2.example.test\n"
	    "mx1.example.test 300 A 127.0.0.2\n"
	    "mx2.example.test 300 A 127.0.0.3\n",
	    "--fault", "example.test/MX=truncate", (char *)NULL);
	struct proxy *px = mx_proxy(d, port, NULL);
	char *hop;

	hop = mx_deliver(px, "over tcp");
	H_CHECK(strcmp(hop, h_strf("mx1.example.test[127.0.0.2:%d]/mx10",
	    port)) == 0, "went to %s", hop);
	H_CHECK(sink_count(s1) == 1, "%zu", sink_count(s1));
	dnsd_sync(d);
	H_CHECK(dnsd_count(d, "proto=udp ", "qtype=MX rcode=NOERROR answers=0 "
	    "tc=1 ") == 1, "no truncated UDP answer");
	H_CHECK(dnsd_count(d, "proto=tcp ", "qtype=MX rcode=NOERROR answers=2 "
	    "tc=0 ") == 1, "no full answer over TCP");
}
END_TEST

START_TEST(test_mx_records_change)
{
	int port = mx_port(2);
	struct sink *s1 = mx_sink(2, port), *s2 = mx_sink(3, port);
	const char *hosts = "mx1.example.test 300 A 127.0.0.2\n"
	    "mx2.example.test 300 A 127.0.0.3\n";
	struct dnsd *d = dnsd_start(h_strf("%s%s%s", MX_SOA,
	    "example.test 3 MX 10 mx1.example.test\n", hosts), (char *)NULL);
	struct proxy *px = mx_proxy(d, port, NULL);
	long long cached;
	char *hop;

	hop = mx_deliver(px, "before the change");
	cached = h_now_ms();	/* the answer was cached before this */
	H_CHECK(strstr(hop, "mx1.example.test[") == hop, "went to %s", hop);
	dnsd_reload(d, h_strf("%s%s%s", MX_SOA,
	    "example.test 3 MX 10 mx2.example.test\n", hosts));

	/* Within the TTL (3 s): the cached answer, no new MX query. */
	hop = mx_deliver(px, "within the ttl");
	H_CHECK(h_now_ms() - cached < 1500, "too slow to test the cache");
	H_CHECK(strstr(hop, "mx1.example.test[") == hop, "went to %s", hop);
	dnsd_sync(d);
	H_CHECK(dnsd_count(d, "qtype=MX ", NULL) == 1, "%zu MX queries",
	    dnsd_count(d, "qtype=MX ", NULL));

	/*
	 * Let the TTL run out. This waits for the clock, which is what is
	 * under test; there is no event to wait for instead.
	 */
	while (h_now_ms() < cached + 3000)
		poll(NULL, 0, (int)(cached + 3000 - h_now_ms()));
	hop = mx_deliver(px, "after the ttl");
	H_CHECK(strcmp(hop, h_strf("mx2.example.test[127.0.0.3:%d]/mx10",
	    port)) == 0, "went to %s", hop);
	H_CHECK(sink_count(s1) == 2 && sink_count(s2) == 1, "%zu, %zu",
	    sink_count(s1), sink_count(s2));
	H_CHECK(strstr(sink_eml(s2, 0, NULL), "Subject: after the ttl\r\n"),
	    "wrong message at mx2");
	dnsd_sync(d);
	H_CHECK(dnsd_count(d, "qtype=MX ", NULL) == 2, "%zu MX queries",
	    dnsd_count(d, "qtype=MX ", NULL));
}
END_TEST

START_TEST(test_mx_all_down)
{
	int port = mx_port(2);
	struct dnsd *d = dnsd_start(MX_SOA
	    "example.test 300 MX 10 mx1.example.test\n"
	    "example.test 300 MX 20 mx2.example.test\n"
	    "mx1.example.test 300 A 127.0.0.2\n"
	    "mx2.example.test 300 A 127.0.0.3\n", (char *)NULL);
	struct proxy *px = mx_proxy(d, port, NULL);
	const char *out;

	mx_refused(px, 451, "4.4.1");
	proxy_wait_log(px, "reason=unreachable");
	/* Both hosts were tried, in order. */
	out = proc_output(px->proc, H_STDERR, NULL);
	H_CHECK(strstr(out, h_strf("hop=mx1.example.test[127.0.0.2:%d]/mx10",
	    port)) != NULL, "mx1 not tried");
	H_CHECK(strstr(out, h_strf("hop=mx2.example.test[127.0.0.3:%d]/mx20",
	    port)) > strstr(out, "hop=mx1.example.test["), "mx2 not tried after "
	    "mx1");
}
END_TEST

/* ---- the DNS role on the wire ---- */

static struct dnsd *
dns_role(void)
{
	return dnsd_start(MX_SOA
	    "example.test 300 MX 10 mx1.example.test\n"
	    "example.test 300 MX 20 mx2.example.test\n"
	    "mx1.example.test 60 A 127.0.0.2\n"
	    "mx1.example.test 60 AAAA ::1\n"
	    "a.b.example.test 300 A 127.0.0.9\n"
	    "2.0.0.127.in-addr.arpa 300 PTR mx1.example.test\n",
	    "--fault", "tc.example.test=truncate",
	    "--fault", "slow.example.test=delay=300",
	    "--fault", "*/PTR=servfail", (char *)NULL);
}

/* Ask over UDP; expect flags (QR, AA, TC bits given), rcode and counts. */
static unsigned char *
dns_ask(struct dnsd *d, const char *name, uint16_t type, unsigned flags,
    unsigned rcode, unsigned an, unsigned ns)
{
	unsigned char q[512], *a = h_keep(malloc(65536));
	size_t qlen = dns_query(q, 0x4242, 0x0100, name, type, 0);
	int n = dns_udp(d->port, q, qlen, a, 65536, H_DEADLINE_MS);

	H_CHECK(n >= (int)qlen, "%s: answer of %d octets", name, n);
	H_CHECK(ANS_ID(a) == 0x4242, "%s: id %u", name, ANS_ID(a));
	H_CHECK((ANS_FLAGS(a) & (F_QR | F_AA | F_TC)) == flags,
	    "%s: flags %#x", name, ANS_FLAGS(a));
	H_CHECK(ANS_RCODE(a) == rcode, "%s: rcode %u", name, ANS_RCODE(a));
	H_CHECK(ANS_QD(a) == 1 && memcmp(a + 12, q + 12, qlen - 12) == 0,
	    "%s: question not echoed", name);
	H_CHECK(ANS_AN(a) == an && ANS_NS(a) == ns, "%s: %u answers, %u "
	    "authority", name, ANS_AN(a), ANS_NS(a));
	return a;
}

START_TEST(test_dns_answers)
{
	struct dnsd *d = dns_role();
	unsigned char *a;

	a = dns_ask(d, "example.test", 15, F_QR | F_AA, 0, 2, 0);
	/* The MX targets' addresses as additional data. */
	H_CHECK(ANS_AR(a) == 2, "%u additional", ANS_AR(a));
	/* Case kept in the echoed question (compared in dns_ask). */
	dns_ask(d, "ExAmPlE.TeSt", 15, F_QR | F_AA, 0, 2, 0);
	dns_ask(d, "mx1.example.test", 28, F_QR | F_AA, 0, 1, 0);
	/* NODATA and NXDOMAIN carry the SOA; an empty non-terminal exists. */
	dns_ask(d, "mx1.example.test", 15, F_QR | F_AA, 0, 0, 1);
	dns_ask(d, "b.example.test", 1, F_QR | F_AA, 0, 0, 1);
	dns_ask(d, "nope.example.test", 15, F_QR | F_AA, 3, 0, 1);
	/* Outside the zone: not ours. */
	dns_ask(d, "example.org", 15, F_QR, 5, 0, 0);
	/* Faults: SERVFAIL for every PTR, truncation over UDP only. */
	dns_ask(d, "2.0.0.127.in-addr.arpa", 12, F_QR, 2, 0, 0);
	dns_ask(d, "tc.example.test", 1, F_QR | F_AA | F_TC, 3, 0, 0);
}
END_TEST

START_TEST(test_dns_negative_ttl)
{
	struct dnsd *d = dns_role();
	unsigned char *a = dns_ask(d, "nope.example.test", 1, F_QR | F_AA, 3,
	    0, 1);
	size_t off = 12;
	unsigned ttl;

	/* Skip the question; the SOA's owner is a pointer to it or a name. */
	while (a[off] != 0 && (a[off] & 0xc0) == 0)
		off += 1 + a[off];
	off += (a[off] & 0xc0) ? 2 : 1;
	off += 4;
	while (a[off] != 0 && (a[off] & 0xc0) == 0)
		off += 1 + a[off];
	off += (a[off] & 0xc0) ? 2 : 1;
	H_CHECK(get16(a + off) == 6, "authority type %u", get16(a + off));
	ttl = get16(a + off + 4) << 16 | get16(a + off + 6);
	/* RFC 2308: min(SOA TTL 300, MINIMUM 60). */
	H_CHECK(ttl == 60, "negative TTL %u", ttl);
}
END_TEST

START_TEST(test_dns_tcp)
{
	struct dnsd *d = dns_role();
	unsigned char q[512], a[65536];
	size_t qlen = dns_query(q, 7, 0, "tc.example.test", 1, 0);
	int n;

	/* Truncated over UDP (test_dns_answers), whole over TCP. */
	n = dns_tcp(d->port, q, qlen, a, sizeof(a));
	H_CHECK(n >= (int)qlen, "tcp answer of %d octets", n);
	H_CHECK(ANS_ID(a) == 7 && (ANS_FLAGS(a) & F_TC) == 0 &&
	    ANS_RCODE(a) == 3, "flags %#x", ANS_FLAGS(a));
	qlen = dns_query(q, 8, 0, "example.test", 15, 0);
	n = dns_tcp(d->port, q, qlen, a, sizeof(a));
	H_CHECK(n > 0 && ANS_ID(a) == 8 && ANS_AN(a) == 2, "tcp MX answer");
	dnsd_sync(d);
	H_CHECK(dnsd_count(d, "proto=tcp ", "qname=example.test qtype=MX "
	    "rcode=NOERROR answers=2 ") == 1, "not logged as tcp");
}
END_TEST

START_TEST(test_dns_hostile_queries)
{
	struct dnsd *d = dns_role();
	unsigned char q[512], a[65536];
	size_t qlen;
	int n;

	/* Garbage after a header: FORMERR, our ID kept. */
	memcpy(q, "\xab\xcd\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\xc0\x0c"
	    "\0\1\0\1", 18);
	n = dns_udp(d->port, q, 18, a, sizeof(a), H_DEADLINE_MS);
	H_CHECK(n >= 12 && ANS_ID(a) == 0xabcd && ANS_RCODE(a) == 1 &&
	    (ANS_FLAGS(a) & F_QR), "compression loop: %d octets, rcode %u", n,
	    n >= 12 ? ANS_RCODE(a) : 99);
	/* Two questions: FORMERR. */
	qlen = dns_query(q, 9, 0, "example.test", 15, 0);
	q[5] = 2;
	memcpy(q + qlen, q + 12, qlen - 12);
	n = dns_udp(d->port, q, qlen + (qlen - 12), a, sizeof(a),
	    H_DEADLINE_MS);
	H_CHECK(n >= 12 && ANS_RCODE(a) == 1, "two questions");
	/*
	 * An answer (QR=1) is never answered: the only reply on the socket
	 * is to the query sent right after it.
	 */
	{
		struct sockaddr_in sin;
		unsigned char r[512];
		int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
		struct pollfd pfd = { fd, POLLIN, 0 };

		memset(&sin, 0, sizeof(sin));
		sin.sin_family = AF_INET;
		sin.sin_port = htons((uint16_t)d->port);
		sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		qlen = dns_query(q, 100, 0x8000, "example.test", 15, 0);
		H_CHECK(sendto(fd, q, qlen, 0, (struct sockaddr *)&sin,
		    sizeof(sin)) == (ssize_t)qlen, "sendto");
		qlen = dns_query(q, 101, 0, "example.test", 15, 0);
		H_CHECK(sendto(fd, q, qlen, 0, (struct sockaddr *)&sin,
		    sizeof(sin)) == (ssize_t)qlen, "sendto");
		H_CHECK(poll(&pfd, 1, H_DEADLINE_MS) == 1, "no answer");
		H_CHECK(recv(fd, r, sizeof(r), 0) >= 12 && ANS_ID(r) == 101,
		    "answered the answer (id %u)", ANS_ID(r));
		close(fd);
	}
	/* Opcode other than QUERY: NOTIMP. */
	qlen = dns_query(q, 10, 0x2800, "example.test", 15, 0);
	n = dns_udp(d->port, q, qlen, a, sizeof(a), H_DEADLINE_MS);
	H_CHECK(n >= 12 && ANS_RCODE(a) == 4, "opcode 5: rcode %u",
	    ANS_RCODE(a));
	/* A TCP message of length 0 ends the connection; the server lives. */
	n = dns_tcp(d->port, (const unsigned char *)"", 0, a, sizeof(a));
	H_CHECK(n == -1, "an answer to an empty message");
	dns_ask(d, "example.test", 15, F_QR | F_AA, 0, 2, 0);
	H_CHECK(proc_running(d->proc), "mta-sim dns died");
}
END_TEST

START_TEST(test_dns_edns_and_delay)
{
	struct dnsd *d = dns_role();
	unsigned char q[512], a[65536];
	size_t qlen;
	long long t0;
	int n;

	/* EDNS asked: one OPT record back. */
	qlen = dns_query(q, 11, 0, "example.test", 15, 1);
	n = dns_udp(d->port, q, qlen, a, sizeof(a), H_DEADLINE_MS);
	H_CHECK(n > 12 && ANS_AN(a) == 2 && ANS_AR(a) == 3, "EDNS: %u "
	    "additional", n > 12 ? ANS_AR(a) : 0);
	/* delay=300: the answer cannot come sooner. */
	qlen = dns_query(q, 12, 0, "slow.example.test", 1, 0);
	t0 = h_now_ms();
	n = dns_udp(d->port, q, qlen, a, sizeof(a), H_DEADLINE_MS);
	H_CHECK(n >= 12 && ANS_ID(a) == 12, "no delayed answer");
	H_CHECK(h_now_ms() - t0 >= 300, "answered after %lld ms",
	    h_now_ms() - t0);
}
END_TEST

START_TEST(test_dns_reload_bad_zone)
{
	struct dnsd *d = dns_role();

	/* A broken zone is refused whole; the old records stay. */
	dnsd_write_zone(d, MX_SOA "example.test 300 MX ten mx1.example.test\n");
	proc_mark(d->proc, H_STDERR);
	proc_signal(d->proc, SIGHUP);
	H_CHECK(proc_wait_line(d->proc, H_STDERR, "event=reload-failed",
	    H_DEADLINE_MS) != NULL, "bad zone not reported");
	dns_ask(d, "example.test", 15, F_QR | F_AA, 0, 2, 0);
	dnsd_reload(d, MX_SOA "example.test 300 MX 5 mx9.example.test\n");
	dns_ask(d, "example.test", 15, F_QR | F_AA, 0, 1, 0);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("e2e_mx");
	TCase *tc = h_tcase("mx");

	tcase_add_test(tc, test_mx_preference_order);
	tcase_add_test(tc, test_mx_equal_preference_spreads);
	tcase_add_test(tc, test_mx_none_uses_address);
	tcase_add_test(tc, test_mx_host_addresses_in_turn);
	tcase_add_test(tc, test_mx_null);
	tcase_add_test(tc, test_mx_servfail);
	tcase_add_test(tc, test_mx_nxdomain);
	tcase_add_test(tc, test_mx_dns_timeout);
	tcase_add_test(tc, test_mx_truncated_tcp);
	tcase_add_test(tc, test_mx_records_change);
	tcase_add_test(tc, test_mx_all_down);
	suite_add_tcase(s, tc);

	tc = h_tcase("dns");
	tcase_add_test(tc, test_dns_answers);
	tcase_add_test(tc, test_dns_negative_ttl);
	tcase_add_test(tc, test_dns_tcp);
	tcase_add_test(tc, test_dns_hostile_queries);
	tcase_add_test(tc, test_dns_edns_and_delay);
	tcase_add_test(tc, test_dns_reload_bad_zone);
	suite_add_tcase(s, tc);
	return h_run(s);
}
