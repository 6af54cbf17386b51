/*
 * mta: the Prevent-integrated MTA. A small store-and-forward MTA with the
 * guide's reflecting-mode integration: mail that no proxy has inspected
 * yet goes to the proxies, inspected mail goes on (to the mailbox host for
 * local recipients, along a header route, or downstream).
 *
 * Its listeners are sims sinks (sink.c) whose accept hook queues each
 * message here; deliveries are sim_send sessions. A message is "inspected"
 * when, by the configured architecture, it came back from a proxy:
 *
 *   1 listener	it arrived on the resubmit listener
 *   2 client IP	the TCP peer is one of the proxies' addresses
 *   3 HELO	the client's HELO name is one of the proxies'
 *   4 header	it carries the pass header with its value
 *
 * and listed senders (redirect addresses, "" for our own NDRs) skip the
 * proxies altogether. As any MTA, it keeps a message until each recipient
 * is delivered or has failed; 4xx and transport failures are retried with
 * a doubling delay, 5xx (or running out of attempts) bounces with a
 * delivery status notification to the sender.
 *
 * Everything is bounded: queue length, message size, recipients, and each
 * session by its timeouts; a proxy that hangs only holds its own message.
 *
 * TLS: its listeners can offer STARTTLS, and its deliveries can use it,
 * verifying each hop's chain against a trust file and the hop's IP address
 * against its certificate (or encrypting without verifying). A proxy whose
 * TLS fails counts as one that did not answer, so the next one is tried.
 *
 * The proxies are a fixed list, or an MX-based cluster (the guide's
 * chapter 4): the MX records of one name, looked up with c-ares on the
 * loop for every attempt. Hosts are tried by ascending preference, equal
 * preferences in a random order (so load spreads), each host's A records
 * in turn; a lower-priority host is the bypass cluster, reached only when
 * every proxy before it failed to answer. A temporary DNS failure defers
 * the message: it never sends mail to a bypass host uninspected. A lookup
 * is matched back to its message by queue id and attempt, never by a
 * pointer that may be gone.
 */
#include <sys/queue.h>
#include <sys/socket.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <ares.h>
#include <event2/event.h>

#include <openssl/ssl.h>

#include "buf.h"
#include "log.h"
#include "netaddr.h"
#include "sim.h"
#include "smtp_addr.h"
#include "tls.h"

#define MTA_RETRY_DEFAULT	200		/* ms */
#define MTA_RETRY_MAX_DEFAULT	5000		/* ms */
#define MTA_ATTEMPTS_DEFAULT	10
#define MTA_TIMEOUT_DEFAULT	30000		/* ms */
#define MTA_CONNECT_DEFAULT	5000		/* ms */
#define MTA_QUEUE_DEFAULT	1000
#define MTA_SIZE_DEFAULT	(10 * 1024 * 1024)
#define MTA_RCPTS_DEFAULT	100
#define MTA_NDR_HEADERS_MAX	(64 * 1024)	/* original headers quoted in an NDR */
#define MTA_DIAG_MAX		800		/* reply text quoted in an NDR line */
#define MTA_PROXY_PORT_DEFAULT	10025		/* the proxy's listener (ServerSocketPort) */
#define MTA_DNS_TIMEOUT_DEFAULT	1000		/* ms per try */
#define MTA_DNS_TRIES_DEFAULT	2
#define MTA_MX_HOSTS_MAX	32		/* MX hosts used from one answer */
#define MTA_MX_ADDRS_MAX	8		/* A records used per host */
#define MTA_DNS_NAME_MAX	253
#define MTA_DNS_C_IN		1
#define MTA_DNS_T_A		1
#define MTA_DNS_T_MX		15

enum mta_rcpt_state {
	MTA_R_PENDING,		/* waiting for the next attempt */
	MTA_R_ACTIVE,		/* part of the attempt in progress */
	MTA_R_DELIVERED,
	MTA_R_FAILED
};

enum mta_qstate {
	MTA_Q_WAITING,		/* in the queue, an attempt is scheduled */
	MTA_Q_ACTIVE		/* an attempt is in progress */
};

struct mta_rcpt {
	char			*addr;
	enum mta_rcpt_state	 st;
	int			 code;		/* the last reply about it; 0: none */
	char			*text;		/* its text, or why there was none */
	const char		*cmd;		/* "in reply to" for the NDR */
	char			*remote;	/* who said it */
};

struct sim_mta;

struct mta_entry {
	TAILQ_ENTRY(mta_entry)	 entry;
	struct sim_mta		*mta;
	unsigned long		 id;
	struct sim_msg		*m;
	struct mta_rcpt		*rcpts;
	size_t			 nrcpts;
	enum mta_qstate		 state;
	int			 inspected;
	double			 arrived;	/* sim_clock() */
	char			 date[64];	/* arrival, for the NDR */
	unsigned		 attempts;
	struct event		*timer;
	size_t			 njobs;		/* deliveries (and a lookup) in flight */
	char		       **hops;		/* this attempt's proxies, "ip:port" */
	size_t			 nhops;
	char			 sid[48];
};

TAILQ_HEAD(mta_entries, mta_entry);

/* One delivery: a sim_send session for some of an entry's recipients. */
struct mta_job {
	TAILQ_ENTRY(mta_job)	 entry;
	struct mta_entry	*e;
	struct sim_send		*send;
	char			*to;
	const char		*route;		/* for events; lives as long as the MTA */
	size_t			*idx;		/* recipient indexes */
	size_t			 n;
	int			 proxy;		/* index in e->hops, -1: not a proxy */
};

TAILQ_HEAD(mta_jobs, mta_job);

/* A socket c-ares wants watched. */
struct mta_dns_sock {
	TAILQ_ENTRY(mta_dns_sock) entry;
	ares_socket_t		 fd;
	struct event		*ev;
};

enum mta_lookup_state {
	MTA_L_MX,		/* asking for the MX records */
	MTA_L_ADDRS,		/* asking for each host's A records */
	MTA_L_DONE		/* every answer is in; delivered from the loop */
};

struct mta_lookup;

struct mta_mxhost {
	struct mta_lookup	*l;
	char			*name;
	unsigned		 pref;
	char			 addrs[MTA_MX_ADDRS_MAX][INET_ADDRSTRLEN];
	size_t			 naddrs;
};

/* One attempt's MX lookup for one message. */
struct mta_lookup {
	TAILQ_ENTRY(mta_lookup)	 entry;
	struct sim_mta		*mta;
	unsigned long		 id;		/* the message, found again by id */
	unsigned		 attempt;	/* and its attempt */
	enum mta_lookup_state	 state;
	int			 pending;	/* answers c-ares still owes us */
	struct mta_mxhost	*hosts;
	size_t			 nhosts;
	char			 why[320];	/* a temporary DNS failure, or "" */
	struct event		*done;
};

struct mta_route {
	char			*header;
	char			*value;
	char			*to;
	char			*name;
};

struct sim_mta {
	struct event_base	*base;
	char			*name;
	char			*helo;
	char			*source;
	enum sim_arch		 arch;
	char		       **proxies;
	size_t			 nproxies;
	char		       **proxy_ips;
	size_t			 nproxy_ips;
	char		       **proxy_helos;
	size_t			 nproxy_helos;
	char			 pass_name[256];
	char			*pass_value;
	char			*downstream;
	struct mta_route	*routes;
	size_t			 nroutes;
	char			*bypass;
	int			 block_on_failure;
	char		       **exceptions;
	size_t			 nexceptions;
	char		       **local_domains;
	size_t			 nlocal_domains;
	char			*mailbox;
	unsigned		 retry_ms;
	unsigned		 max_retry_ms;
	unsigned		 max_attempts;
	unsigned		 max_age_ms;
	unsigned		 timeout_ms;
	unsigned		 connect_timeout_ms;
	size_t			 max_queue;
	enum sim_tls_use	 tls_outbound;
	SSL_CTX			*tls_ctx;	/* for deliveries; NULL without TLS */

	/* Proxies by MX: NULL proxy_mx means the `proxies` list. */
	char			*proxy_mx;
	unsigned		 proxy_port;
	ares_channel		 channel;
	int			 channel_ok;
	int			 dying;		/* sim_mta_free: ignore c-ares callbacks */
	struct event		*dns_timer;
	TAILQ_HEAD(, mta_dns_sock) dns_socks;
	TAILQ_HEAD(, mta_lookup) lookups;

	struct sim_sink		*main;
	struct sim_sink		*resubmit;
	struct mta_entries	 queue;
	size_t			 nqueued;
	struct mta_jobs		 jobs;
	unsigned long		 next_id;
	sim_mta_event_cb	*on_event;
	void			*on_event_arg;
};

static void	mta_attempt(struct mta_entry *);
static void	mta_try_proxy(struct mta_entry *, size_t, const char *why);
static void	mta_dns_timer_cb(evutil_socket_t, short, void *);
static void	mta_dns_sock_cb(void *, ares_socket_t, int, int);

static const char *
mta_strstate(enum mta_qstate st)
{
	return st == MTA_Q_WAITING ? "waiting" : "active";
}

static void
mta_enter_state(struct mta_entry *e, enum mta_qstate st)
{
	if (e->state == st)
		return;
	log_msg(LOG_DEBUG, e->sid, "state", "from=%s to=%s",
	    mta_strstate(e->state), mta_strstate(st));
	e->state = st;
}

static const char *
mta_strarch(enum sim_arch a)
{
	switch (a) {
	case SIM_ARCH_LISTENER:
		return "listener";
	case SIM_ARCH_CLIENT_IP:
		return "client-ip";
	case SIM_ARCH_HELO:
		return "helo";
	case SIM_ARCH_HEADER:
		return "header";
	}
	return "?";
}

/* ---- configuration --------------------------------------------------- */

static void
mta_strv_free(char **v, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

static int
mta_strv_dup(char ***dst, size_t *ndst, const char *const *src, size_t n)
{
	char **v;
	size_t i;

	*dst = NULL;
	*ndst = 0;
	if (n == 0)
		return 0;
	if ((v = calloc(n, sizeof(*v))) == NULL)
		return -1;
	for (i = 0; i < n; i++)
		if (src[i] == NULL || (v[i] = strdup(src[i])) == NULL) {
			mta_strv_free(v, i);
			return -1;
		}
	*dst = v;
	*ndst = n;
	return 0;
}

static int
mta_dup(char **dst, const char *s)
{
	*dst = NULL;
	if (s == NULL)
		return 0;
	return (*dst = strdup(s)) == NULL ? -1 : 0;
}

/* A next hop must be "ip:port" (or a name that resolves). */
static int
mta_check_hop(const char *what, const char *hp, char *err, size_t errlen)
{
	struct sockaddr_storage ss;
	socklen_t sslen = sizeof(ss);
	const char *e;

	if (hp == NULL)
		return 0;
	if (sim_resolve(hp, 1, &ss, &sslen, &e) == -1) {
		snprintf(err, errlen, "%s %s: %s", what, hp, e);
		return -1;
	}
	return 0;
}

/* An IP literal in the form netaddr_ip() prints, so peers compare by string. */
static int
mta_canon_ip(char **ip, char *err, size_t errlen)
{
	struct sockaddr_storage ss;
	socklen_t sslen;
	char buf[64];

	if (netaddr_to_sockaddr(*ip, 0, &ss, &sslen) == -1) {
		snprintf(err, errlen, "proxy_ips: %s is not an IP address", *ip);
		return -1;
	}
	netaddr_ip((struct sockaddr *)&ss, buf, sizeof(buf));
	free(*ip);
	if ((*ip = strdup(buf)) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	return 0;
}

/* One client context for every delivery: the trust file is read once. */
static int
mta_configure_tls(struct sim_mta *mta, const struct sim_mta_opts *o,
    char *err, size_t errlen)
{
	char why[512];

	switch (o->tls_outbound) {
	case SIM_TLS_NO:
		if (o->tls_trust != NULL) {
			snprintf(err, errlen, "tls_trust needs tls_outbound");
			return -1;
		}
		return 0;
	case SIM_TLS_MAY:
	case SIM_TLS_MUST:
		break;
	default:
		snprintf(err, errlen, "unknown tls_outbound %d",
		    (int)o->tls_outbound);
		return -1;
	}
	mta->tls_outbound = o->tls_outbound;
	if ((mta->tls_ctx = tls_client_ctx(o->tls_trust, o->tls_trust != NULL,
	    why, sizeof(why))) == NULL) {
		snprintf(err, errlen, "tls: %s", why);
		return -1;
	}
	return 0;
}

/*
 * Proxies by MX: a name to look up, and a resolver on the loop for it
 * (the given server, or the system's). The channel is ours alone.
 */
static int
mta_configure_mx(struct sim_mta *mta, const struct sim_mta_opts *o,
    char *err, size_t errlen)
{
	static int ares_ready;
	struct ares_options ao;
	const char *c;
	int r;

	if (o->proxy_mx == NULL) {
		if (o->dns != NULL) {
			snprintf(err, errlen, "dns is for proxy_mx");
			return -1;
		}
		return 0;
	}
	if (*o->proxy_mx == '\0' || strlen(o->proxy_mx) > MTA_DNS_NAME_MAX) {
		snprintf(err, errlen, "proxy_mx: a DNS name of 1 to %d octets",
		    MTA_DNS_NAME_MAX);
		return -1;
	}
	for (c = o->proxy_mx; *c != '\0'; c++)
		if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
		    (*c >= '0' && *c <= '9') || *c == '-' || *c == '.' ||
		    *c == '_')) {
			snprintf(err, errlen, "proxy_mx: '%s' is not a DNS name",
			    o->proxy_mx);
			return -1;
		}
	if (o->proxy_port > 65535) {
		snprintf(err, errlen, "proxy_port: 1..65535");
		return -1;
	}
	if (mta_dup(&mta->proxy_mx, o->proxy_mx) == -1) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	mta->proxy_port = o->proxy_port ? o->proxy_port : MTA_PROXY_PORT_DEFAULT;
	if (!ares_ready) {
		if ((r = ares_library_init(ARES_LIB_INIT_ALL)) != ARES_SUCCESS) {
			snprintf(err, errlen, "c-ares: %s", ares_strerror(r));
			return -1;
		}
		ares_ready = 1;
	}
	if ((mta->dns_timer = evtimer_new(mta->base, mta_dns_timer_cb,
	    mta)) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	memset(&ao, 0, sizeof(ao));
	ao.sock_state_cb = mta_dns_sock_cb;
	ao.sock_state_cb_data = mta;
	ao.timeout = (int)(o->dns_timeout_ms ? o->dns_timeout_ms :
	    MTA_DNS_TIMEOUT_DEFAULT);
	ao.tries = (int)(o->dns_tries ? o->dns_tries : MTA_DNS_TRIES_DEFAULT);
	ao.flags = ARES_FLAG_NOSEARCH;
	if ((r = ares_init_options(&mta->channel, &ao, ARES_OPT_SOCK_STATE_CB |
	    ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES | ARES_OPT_FLAGS)) !=
	    ARES_SUCCESS) {
		snprintf(err, errlen, "c-ares: %s", ares_strerror(r));
		return -1;
	}
	mta->channel_ok = 1;
	if (o->dns != NULL &&
	    (r = ares_set_servers_ports_csv(mta->channel, o->dns)) !=
	    ARES_SUCCESS) {
		snprintf(err, errlen, "dns %s: %s", o->dns, ares_strerror(r));
		return -1;
	}
	return 0;
}

static int
mta_configure(struct sim_mta *mta, const struct sim_mta_opts *o, char *err,
    size_t errlen)
{
	const char *pv;
	size_t i;

	if (mta_dup(&mta->name, o->name ? o->name : "mta") == -1 ||
	    mta_dup(&mta->helo, o->helo ? o->helo : "mta.sim.test") == -1 ||
	    mta_dup(&mta->source, o->source) == -1 ||
	    mta_dup(&mta->downstream, o->downstream) == -1 ||
	    mta_dup(&mta->bypass, o->bypass) == -1 ||
	    mta_dup(&mta->mailbox, o->mailbox) == -1 ||
	    mta_strv_dup(&mta->proxies, &mta->nproxies, o->proxies,
	    o->nproxies) == -1 ||
	    mta_strv_dup(&mta->proxy_ips, &mta->nproxy_ips, o->proxy_ips,
	    o->nproxy_ips) == -1 ||
	    mta_strv_dup(&mta->proxy_helos, &mta->nproxy_helos, o->proxy_helos,
	    o->nproxy_helos) == -1 ||
	    mta_strv_dup(&mta->exceptions, &mta->nexceptions,
	    o->sender_exceptions, o->nsender_exceptions) == -1 ||
	    mta_strv_dup(&mta->local_domains, &mta->nlocal_domains,
	    o->local_domains, o->nlocal_domains) == -1)
		goto enomem;
	if (o->nroutes > 0 &&
	    (mta->routes = calloc(o->nroutes, sizeof(*mta->routes))) == NULL)
		goto enomem;
	for (i = 0; i < o->nroutes; i++) {
		const struct sim_route *r = &o->routes[i];

		mta->nroutes++;
		if (r->header == NULL || r->value == NULL || r->to == NULL) {
			snprintf(err, errlen, "route %zu needs header, value and to",
			    i + 1);
			return -1;
		}
		if (mta_dup(&mta->routes[i].header, r->header) == -1 ||
		    mta_dup(&mta->routes[i].value, r->value) == -1 ||
		    mta_dup(&mta->routes[i].to, r->to) == -1 ||
		    mta_dup(&mta->routes[i].name, r->name ? r->name :
		    r->value) == -1)
			goto enomem;
		if (mta_check_hop("route", r->to, err, errlen) == -1)
			return -1;
	}

	mta->arch = o->arch;
	mta->block_on_failure = o->block_on_failure;
	mta->retry_ms = o->retry_ms ? o->retry_ms : MTA_RETRY_DEFAULT;
	mta->max_retry_ms = o->max_retry_ms ? o->max_retry_ms :
	    MTA_RETRY_MAX_DEFAULT;
	if (mta->max_retry_ms < mta->retry_ms)
		mta->max_retry_ms = mta->retry_ms;
	mta->max_attempts = o->max_attempts ? o->max_attempts :
	    MTA_ATTEMPTS_DEFAULT;
	mta->max_age_ms = o->max_queue_age_ms;
	mta->timeout_ms = o->timeout_ms ? o->timeout_ms : MTA_TIMEOUT_DEFAULT;
	mta->connect_timeout_ms = o->connect_timeout_ms ? o->connect_timeout_ms :
	    MTA_CONNECT_DEFAULT;
	mta->max_queue = o->max_queue ? o->max_queue : MTA_QUEUE_DEFAULT;

	for (i = 0; i < mta->nproxies; i++)
		if (mta_check_hop("proxy", mta->proxies[i], err, errlen) == -1)
			return -1;
	if (mta_check_hop("downstream", mta->downstream, err, errlen) == -1 ||
	    mta_check_hop("bypass", mta->bypass, err, errlen) == -1 ||
	    mta_check_hop("mailbox", mta->mailbox, err, errlen) == -1)
		return -1;
	for (i = 0; i < mta->nproxy_ips; i++)
		if (mta_canon_ip(&mta->proxy_ips[i], err, errlen) == -1)
			return -1;
	for (i = 0; i < mta->nexceptions; i++)
		if (strlen(mta->exceptions[i]) > SMTP_ADDR_MAX) {
			snprintf(err, errlen, "sender exception too long");
			return -1;
		}

	switch (mta->arch) {
	case SIM_ARCH_LISTENER:
		if (o->resubmit == NULL) {
			snprintf(err, errlen, "the listener architecture needs a "
			    "resubmit listener");
			return -1;
		}
		break;
	case SIM_ARCH_CLIENT_IP:
		if (mta->nproxy_ips == 0) {
			snprintf(err, errlen, "the client-ip architecture needs "
			    "proxy_ips");
			return -1;
		}
		break;
	case SIM_ARCH_HELO:
		if (mta->nproxy_helos == 0) {
			snprintf(err, errlen, "the helo architecture needs "
			    "proxy_helos");
			return -1;
		}
		break;
	case SIM_ARCH_HEADER:
		if (o->pass_header == NULL ||
		    sim_msg_split_header(o->pass_header, mta->pass_name,
		    sizeof(mta->pass_name), &pv) == -1 || *pv == '\0') {
			snprintf(err, errlen, "the header architecture needs a "
			    "pass_header \"Name: value\"");
			return -1;
		}
		if (mta_dup(&mta->pass_value, pv) == -1)
			goto enomem;
		break;
	default:
		snprintf(err, errlen, "unknown architecture %d", (int)o->arch);
		return -1;
	}
	for (const char *h = mta->helo; *h != '\0'; h++)
		if ((unsigned char)*h <= 0x20 || *h == 0x7f) {
			snprintf(err, errlen, "bad helo name");
			return -1;
		}
	if (mta_configure_mx(mta, o, err, errlen) == -1)
		return -1;
	return mta_configure_tls(mta, o, err, errlen);
enomem:
	snprintf(err, errlen, "out of memory");
	return -1;
}

/* ---- events ------------------------------------------------------------ */

static const char *const mta_event_names[] = {
	[SIM_MTA_RECEIVED] = "received",
	[SIM_MTA_DELIVERED] = "delivered",
	[SIM_MTA_DEFERRED] = "deferred",
	[SIM_MTA_BOUNCED] = "bounced",
	[SIM_MTA_NDR] = "ndr",
};

/*
 * Tell the scenario about recipients idx[0..n) of e (all of them if idx is
 * NULL); `to` is the hop that decided it, when one did.
 */
static void
mta_fire(struct mta_entry *e, enum sim_mta_event_type type, const char *route,
    const char *to, int code, const char *text, const size_t *idx, size_t n)
{
	struct sim_mta *mta = e->mta;
	struct sim_mta_event ev;
	const char **rcpts;
	char q[256];
	size_t i;

	if ((rcpts = calloc(n + 1, sizeof(*rcpts))) == NULL) {
		log_msg(LOG_ERR, e->sid, "event", "error=ENOMEM");
		return;
	}
	for (i = 0; i < n; i++)
		rcpts[i] = e->rcpts[idx != NULL ? idx[i] : i].addr;
	log_msg(LOG_INFO, e->sid, mta_event_names[type],
	    "route=%s to=%s code=%d rcpts=%zu attempt=%u text=%s",
	    route ? route : "-", to ? to : "-", code, n, e->attempts,
	    text ? log_quote(q, sizeof(q), text, strlen(text)) : "-");
	memset(&ev, 0, sizeof(ev));
	ev.type = type;
	ev.msg = e->id;
	ev.route = route;
	ev.code = code;
	ev.text = text;
	ev.m = e->m;
	ev.rcpts = rcpts;
	ev.nrcpts = n;
	ev.attempt = e->attempts;
	ev.to = to;
	if (mta->on_event != NULL)
		mta->on_event(mta->on_event_arg, &ev);
	free(rcpts);
}

/* ---- the queue ------------------------------------------------------------ */

static void
mta_job_free(struct sim_mta *mta, struct mta_job *j)
{
	TAILQ_REMOVE(&mta->jobs, j, entry);
	if (j->send != NULL)
		sim_send_cancel(j->send);
	free(j->to);
	free(j->idx);
	free(j);
}

static void
mta_entry_free(struct mta_entry *e)
{
	struct sim_mta *mta = e->mta;
	struct mta_job *j, *next;
	size_t i;

	for (j = TAILQ_FIRST(&mta->jobs); j != NULL; j = next) {
		next = TAILQ_NEXT(j, entry);
		if (j->e == e)
			mta_job_free(mta, j);
	}
	TAILQ_REMOVE(&mta->queue, e, entry);
	mta->nqueued--;
	if (e->timer != NULL)
		event_free(e->timer);
	for (i = 0; i < e->nrcpts; i++) {
		free(e->rcpts[i].addr);
		free(e->rcpts[i].text);
		free(e->rcpts[i].remote);
	}
	free(e->rcpts);
	mta_strv_free(e->hops, e->nhops);
	sim_msg_free(e->m);
	free(e);
}

static void
mta_timer_cb(evutil_socket_t fd, short ev, void *arg)
{
	mta_attempt(arg);
}

static void
mta_schedule(struct mta_entry *e, unsigned ms)
{
	struct timeval tv;

	tv.tv_sec = ms / 1000;
	tv.tv_usec = (suseconds_t)(ms % 1000) * 1000;
	mta_enter_state(e, MTA_Q_WAITING);
	evtimer_add(e->timer, &tv);
}

static int
mta_in(char *const *v, size_t n, const char *s, int nocase)
{
	size_t i;

	for (i = 0; i < n; i++)
		if ((nocase ? strcasecmp(v[i], s) : strcmp(v[i], s)) == 0)
			return 1;
	return 0;
}

/*
 * Was this message inspected already? Decided once, when it arrives, by
 * the architecture; the reason goes to the log.
 */
static int
mta_inspected(const struct sim_mta *mta, const struct sim_msg *m,
    const char **why)
{
	if (mta_in(mta->exceptions, mta->nexceptions, m->mail_from, 1)) {
		*why = "sender-exception";
		return 1;
	}
	*why = "none";
	switch (mta->arch) {
	case SIM_ARCH_LISTENER:
		if (strcmp(m->listener, "resubmit") == 0) {
			*why = "resubmit-listener";
			return 1;
		}
		break;
	case SIM_ARCH_CLIENT_IP:
		if (mta_in(mta->proxy_ips, mta->nproxy_ips, m->client_ip, 0)) {
			*why = "proxy-ip";
			return 1;
		}
		break;
	case SIM_ARCH_HELO:
		if (mta_in(mta->proxy_helos, mta->nproxy_helos, m->helo, 1)) {
			*why = "proxy-helo";
			return 1;
		}
		break;
	case SIM_ARCH_HEADER:
		if (sim_msg_header_is(m, mta->pass_name, mta->pass_value)) {
			*why = "pass-header";
			return 1;
		}
		break;
	}
	return 0;
}

/* A copy of the HELO fit for a header: printable, bounded. */
static void
mta_trace_name(char *dst, size_t dstsz, const char *s)
{
	size_t i;

	for (i = 0; s[i] != '\0' && i + 1 < dstsz && i < 255; i++)
		dst[i] = (unsigned char)s[i] > 0x20 && s[i] != 0x7f &&
		    s[i] != '(' && s[i] != ')' ? s[i] : '?';
	dst[i] = '\0';
}

/* Queue m (a copy) as entry id; received says whether to add a trace. */
static struct mta_entry *
mta_enqueue(struct sim_mta *mta, const struct sim_msg *m, int received)
{
	struct mta_entry *e;
	struct buf c = BUF_INIT;
	char helo[256];
	const char *why;
	size_t i;

	if ((e = calloc(1, sizeof(*e))) == NULL)
		return NULL;
	e->mta = mta;
	e->id = ++mta->next_id;
	e->state = MTA_Q_WAITING;
	e->arrived = sim_clock();
	sim_date(e->date, sizeof(e->date));
	snprintf(e->sid, sizeof(e->sid), "%.32s.q%lu", mta->name, e->id);
	if ((e->m = sim_msg_dup(m)) == NULL ||
	    (e->timer = evtimer_new(mta->base, mta_timer_cb, e)) == NULL ||
	    (e->rcpts = calloc(m->nrcpts, sizeof(*e->rcpts))) == NULL)
		goto fail;
	e->m->id = e->id;
	if (sim_msg_set(&e->m->role, mta->name) == -1)
		goto fail;
	for (i = 0; i < m->nrcpts; i++) {
		e->nrcpts++;
		if ((e->rcpts[i].addr = strdup(m->rcpts[i])) == NULL)
			goto fail;
	}
	if (received) {
		/* The trace a real MTA adds, so a sink can see the path. */
		mta_trace_name(helo, sizeof(helo), m->helo);
		/* RFC 3848: ESMTPS when it came over TLS. */
		if (buf_appendf(&c, "Received: from %s ([%s])\r\n\tby %s with "
		    "ESMTP%s id %lu;\r\n\t%s\r\n", helo, m->client_ip, mta->helo,
		    m->tls != NULL ? "S" : "", e->id, e->date) == -1 ||
		    buf_append(&c, m->content.data, m->content.len) == -1)
			goto fail;
		buf_free(&e->m->content);
		e->m->content = c;
		buf_init(&c);
	}
	e->inspected = mta_inspected(mta, e->m, &why);
	TAILQ_INSERT_TAIL(&mta->queue, e, entry);
	mta->nqueued++;
	log_msg(LOG_INFO, e->sid, "queued", "listener=%s client=%s rcpts=%zu "
	    "size=%zu inspected=%s why=%s", e->m->listener, e->m->client_ip,
	    e->nrcpts, e->m->content.len, e->inspected ? "yes" : "no", why);
	return e;
fail:
	buf_free(&c);
	if (e->timer != NULL)
		event_free(e->timer);
	if (e->rcpts != NULL)
		for (i = 0; i < e->nrcpts; i++)
			free(e->rcpts[i].addr);
	free(e->rcpts);
	sim_msg_free(e->m);
	free(e);
	return NULL;
}

/* The sinks' accept hook: the message is ours once this says 250. */
static int
mta_accept(void *arg, const struct sim_msg *m, const char **enh, char *text,
    size_t textsz)
{
	struct sim_mta *mta = arg;
	struct mta_entry *e;

	if (mta->nqueued >= mta->max_queue) {
		*enh = "4.3.1";
		snprintf(text, textsz, "Insufficient system storage: queue full");
		return 452;
	}
	if ((e = mta_enqueue(mta, m, 1)) == NULL) {
		*enh = "4.3.0";
		snprintf(text, textsz, "Out of memory");
		return 451;
	}
	mta_fire(e, SIM_MTA_RECEIVED, NULL, NULL, 250, NULL, NULL, e->nrcpts);
	/* Deliver from the loop, after the 250 has gone out. */
	mta_schedule(e, 0);
	*enh = "2.0.0";
	snprintf(text, textsz, "Ok: queued as %lu", e->id);
	return 250;
}

/* ---- delivery ------------------------------------------------------------- */

static void	mta_job_cb(void *, const struct sim_send_result *);

static void	mta_defer(struct mta_entry *, const size_t *, size_t,
		    const char *, int, const char *, const char *, const char *);

/*
 * Start a session to `to` for recipients idx[0..n) (idx is taken). When
 * none can be started, they are deferred to the next attempt.
 */
static void
mta_job_start(struct mta_entry *e, const char *to, const char *route,
    int proxy, size_t *idx, size_t n)
{
	struct sim_mta *mta = e->mta;
	struct sim_send_opts so;
	struct mta_job *j;
	const char **rcpts = NULL;
	size_t i;

	if ((j = calloc(1, sizeof(*j))) == NULL ||
	    (j->to = strdup(to)) == NULL ||
	    (rcpts = calloc(n, sizeof(*rcpts))) == NULL) {
		if (j != NULL)
			free(j->to);
		free(j);
		free(rcpts);
		mta_defer(e, idx, n, route, 0, "4.3.0 out of memory", "connect",
		    NULL);
		free(idx);
		return;
	}
	j->e = e;
	j->route = route;
	j->proxy = proxy;
	j->idx = idx;
	j->n = n;
	for (i = 0; i < n; i++)
		rcpts[i] = e->rcpts[idx[i]].addr;
	memset(&so, 0, sizeof(so));
	so.to = to;
	so.source = mta->source;
	so.helo = mta->helo;
	so.from = e->m->mail_from;
	so.rcpts = rcpts;
	so.nrcpts = n;
	so.content = e->m->content.data;
	so.len = e->m->content.len;
	so.timeout_ms = mta->timeout_ms;
	so.greeting_timeout_ms = mta->connect_timeout_ms;
	so.starttls = mta->tls_outbound;
	so.tls_ctx = mta->tls_ctx;	/* the name checked: the hop's IP */
	TAILQ_INSERT_TAIL(&mta->jobs, j, entry);
	e->njobs++;
	log_msg(LOG_INFO, e->sid, "deliver", "route=%s to=%s rcpts=%zu "
	    "attempt=%u", route, to, n, e->attempts);
	j->send = sim_send_start(mta->base, &so, mta_job_cb, j);
	free(rcpts);
	if (j->send == NULL) {
		mta_defer(e, j->idx, j->n, route, 0, "4.3.0 out of memory",
		    "connect", NULL);
		e->njobs--;
		mta_job_free(mta, j);
	}
}

/* The recipients in state st, as a new index array (NULL when none). */
static size_t *
mta_pick(struct mta_entry *e, enum mta_rcpt_state st, size_t *n)
{
	size_t *idx, i;

	*n = 0;
	if ((idx = calloc(e->nrcpts, sizeof(*idx))) == NULL)
		return NULL;
	for (i = 0; i < e->nrcpts; i++)
		if (e->rcpts[i].st == st)
			idx[(*n)++] = i;
	if (*n == 0) {
		free(idx);
		return NULL;
	}
	return idx;
}

static void
mta_set_result(struct mta_rcpt *r, enum mta_rcpt_state st, int code,
    const char *text, const char *cmd, const char *remote)
{
	char *t = text != NULL ? strdup(text) : NULL;
	char *h = remote != NULL ? strdup(remote) : NULL;

	r->st = st;
	r->code = code;
	r->cmd = cmd;
	free(r->text);
	free(r->remote);
	r->text = t;
	r->remote = h;
}

/* Recipients idx[0..n) could not be tried now: back to the queue. */
static void
mta_defer(struct mta_entry *e, const size_t *idx, size_t n, const char *route,
    int code, const char *text, const char *cmd, const char *remote)
{
	size_t i;

	for (i = 0; i < n; i++)
		mta_set_result(&e->rcpts[idx[i]], MTA_R_PENDING, code, text, cmd,
		    remote);
	mta_fire(e, SIM_MTA_DEFERRED, route, remote, code, text, idx, n);
}

/* Mail queued for the proxies longer than allowed goes the bypass route. */
static int
mta_aged(const struct mta_entry *e)
{
	const struct sim_mta *mta = e->mta;

	return mta->max_age_ms > 0 && mta->bypass != NULL &&
	    !mta->block_on_failure &&
	    (sim_clock() - e->arrived) * 1000.0 >= (double)mta->max_age_ms;
}

/* Send every active recipient to `to`. */
static void
mta_send_active(struct mta_entry *e, const char *to, const char *route,
    int proxy)
{
	size_t n, *idx = mta_pick(e, MTA_R_ACTIVE, &n);

	if (idx != NULL)
		mta_job_start(e, to, route, proxy, idx, n);
}

/*
 * Uninspected mail: proxy i, else the next one. When none has answered,
 * pass through on failure (bypass) or hold it (block on failure).
 */
static void
mta_try_proxy(struct mta_entry *e, size_t i, const char *why)
{
	struct sim_mta *mta = e->mta;
	char text[512];
	size_t n, *idx;

	if (i < e->nhops) {
		mta_send_active(e, e->hops[i], "proxy", (int)i);
		return;
	}
	if (mta->bypass != NULL && !mta->block_on_failure) {
		log_msg(LOG_INFO, e->sid, "bypass", "why=no-proxy-answered");
		mta_send_active(e, mta->bypass, "bypass", -1);
		return;
	}
	if ((idx = mta_pick(e, MTA_R_ACTIVE, &n)) == NULL)
		return;
	snprintf(text, sizeof(text), "4.4.1 no proxy answered%s%s",
	    why ? ": " : "", why ? why : "");
	mta_defer(e, idx, n, "proxy", 0, text, "connect", NULL);
	free(idx);
}

static int
mta_is_local(const struct sim_mta *mta, const char *addr)
{
	const char *at = strrchr(addr, '@');

	return at != NULL && mta_in(mta->local_domains, mta->nlocal_domains,
	    at + 1, 1);
}

/*
 * Inspected mail goes on: local recipients to the mailbox host, the rest
 * along the first header route that matches, else downstream.
 */
static void
mta_route(struct mta_entry *e)
{
	struct sim_mta *mta = e->mta;
	const char *to = mta->downstream, *route = "downstream";
	size_t i, n, nl = 0, *idx, *local;

	for (i = 0; i < mta->nroutes; i++)
		if (sim_msg_header_is(e->m, mta->routes[i].header,
		    mta->routes[i].value)) {
			to = mta->routes[i].to;
			route = mta->routes[i].name;
			break;
		}
	if ((idx = mta_pick(e, MTA_R_ACTIVE, &n)) == NULL)
		return;
	if (mta->mailbox != NULL && (local = calloc(n, sizeof(*local))) != NULL) {
		size_t k = 0;

		for (i = 0; i < n; i++) {
			if (mta_is_local(mta, e->rcpts[idx[i]].addr))
				local[nl++] = idx[i];
			else
				idx[k++] = idx[i];
		}
		n = k;
		if (nl > 0)
			mta_job_start(e, mta->mailbox, "mailbox", -1, local, nl);
		else
			free(local);
	}
	if (n == 0) {
		free(idx);
		return;
	}
	if (to == NULL) {
		for (i = 0; i < n; i++)
			mta_set_result(&e->rcpts[idx[i]], MTA_R_FAILED, 550,
			    "5.4.4 no route to the recipient's domain",
			    "routing", NULL);
		free(idx);
		return;
	}
	mta_job_start(e, to, route, -1, idx, n);
}

static void	mta_attempt_done(struct mta_entry *);

/* This attempt's proxies: a copy, so a later set_proxies cannot move them. */
static int
mta_set_hops(struct mta_entry *e, char **v, size_t n)
{
	char **nv;
	size_t nn;

	if (mta_strv_dup(&nv, &nn, (const char *const *)v, n) == -1)
		return -1;
	mta_strv_free(e->hops, e->nhops);
	e->hops = nv;
	e->nhops = nn;
	return 0;
}

/* ---- proxies by MX ------------------------------------------------------ */

static void
mta_dns_rearm(struct sim_mta *mta)
{
	struct timeval tv, *tvp;

	if ((tvp = ares_timeout(mta->channel, NULL, &tv)) != NULL)
		evtimer_add(mta->dns_timer, tvp);
	else
		evtimer_del(mta->dns_timer);
}

static void
mta_dns_io(evutil_socket_t fd, short what, void *arg)
{
	struct sim_mta *mta = arg;

	ares_process_fd(mta->channel, (what & EV_READ) ? fd : ARES_SOCKET_BAD,
	    (what & EV_WRITE) ? fd : ARES_SOCKET_BAD);
	mta_dns_rearm(mta);
}

static void
mta_dns_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct sim_mta *mta = arg;

	ares_process_fd(mta->channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
	mta_dns_rearm(mta);
}

/* c-ares says which of its sockets to watch, and for what. */
static void
mta_dns_sock_cb(void *arg, ares_socket_t fd, int readable, int writable)
{
	struct sim_mta *mta = arg;
	struct mta_dns_sock *s;

	TAILQ_FOREACH(s, &mta->dns_socks, entry)
		if (s->fd == fd)
			break;
	if (s != NULL && s->ev != NULL) {
		event_free(s->ev);
		s->ev = NULL;
	}
	if (!readable && !writable) {
		if (s != NULL) {
			TAILQ_REMOVE(&mta->dns_socks, s, entry);
			free(s);
		}
		return;
	}
	if (s == NULL) {
		if ((s = calloc(1, sizeof(*s))) == NULL) {
			log_msg(LOG_ERR, mta->name, "dns", "error=ENOMEM");
			return;		/* the query times out */
		}
		s->fd = fd;
		TAILQ_INSERT_TAIL(&mta->dns_socks, s, entry);
	}
	s->ev = event_new(mta->base, fd, EV_PERSIST | (readable ? EV_READ : 0) |
	    (writable ? EV_WRITE : 0), mta_dns_io, mta);
	if (s->ev == NULL || event_add(s->ev, NULL) == -1)
		log_msg(LOG_ERR, mta->name, "dns", "error=\"cannot watch a "
		    "socket\"");
}

static void
mta_lookup_free(struct mta_lookup *l)
{
	size_t i;

	TAILQ_REMOVE(&l->mta->lookups, l, entry);
	for (i = 0; i < l->nhosts; i++)
		free(l->hosts[i].name);
	free(l->hosts);
	if (l->done != NULL)
		event_free(l->done);
	free(l);
}

static const char *const mta_lookup_states[] = {
	[MTA_L_MX] = "mx",
	[MTA_L_ADDRS] = "addrs",
	[MTA_L_DONE] = "done",
};

static void
mta_lookup_enter_state(struct mta_lookup *l, enum mta_lookup_state st)
{
	char sid[64];

	snprintf(sid, sizeof(sid), "%.32s.q%lu", l->mta->name, l->id);
	log_msg(LOG_DEBUG, sid, "lookup-state", "from=%s to=%s",
	    mta_lookup_states[l->state], mta_lookup_states[st]);
	l->state = st;
}

/* Every answer is in: carry on from the loop, never inside c-ares. */
static void
mta_lookup_finish(struct mta_lookup *l)
{
	if (l->pending > 0 || l->state == MTA_L_DONE)
		return;
	mta_lookup_enter_state(l, MTA_L_DONE);
	event_active(l->done, EV_TIMEOUT, 0);
}

static void
mta_a_cb(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
	struct mta_mxhost *h = arg;
	struct mta_lookup *l = h->l;
	struct ares_addrttl at[MTA_MX_ADDRS_MAX];
	int n = MTA_MX_ADDRS_MAX, i;

	l->pending--;
	if (status == ARES_EDESTRUCTION || l->mta->dying)
		return;		/* sim_mta_free frees l */
	if (status == ARES_SUCCESS)
		status = ares_parse_a_reply(abuf, alen, NULL, at, &n);
	if (status == ARES_SUCCESS) {
		for (i = 0; i < n && h->naddrs < MTA_MX_ADDRS_MAX; i++)
			if (inet_ntop(AF_INET, &at[i].ipaddr, h->addrs[h->naddrs],
			    sizeof(h->addrs[0])) != NULL)
				h->naddrs++;
	} else if (status != ARES_ENODATA && status != ARES_ENOTFOUND &&
	    l->why[0] == '\0')
		snprintf(l->why, sizeof(l->why), "4.4.3 dns: A %s: %s", h->name,
		    ares_strerror(status));
	mta_lookup_finish(l);
}

static int
mta_mxhost_add(struct mta_lookup *l, const char *name, unsigned pref)
{
	struct mta_mxhost *h = &l->hosts[l->nhosts];

	memset(h, 0, sizeof(*h));
	if ((h->name = strdup(name)) == NULL)
		return -1;
	h->l = l;
	h->pref = pref;
	l->nhosts++;
	return 0;
}

static void
mta_mx_cb(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
	struct mta_lookup *l = arg;
	struct sim_mta *mta = l->mta;
	struct ares_mx_reply *mx = NULL, *r;
	size_t n = 0, i;

	l->pending--;
	if (status == ARES_EDESTRUCTION || mta->dying)
		return;
	if (status == ARES_SUCCESS &&
	    (status = ares_parse_mx_reply(abuf, alen, &mx)) != ARES_SUCCESS)
		mx = NULL;
	if (status != ARES_SUCCESS && status != ARES_ENODATA &&
	    status != ARES_ENOTFOUND) {
		snprintf(l->why, sizeof(l->why), "4.4.3 dns: MX %s: %s",
		    mta->proxy_mx, ares_strerror(status));
		mta_lookup_finish(l);
		return;
	}
	for (r = mx; r != NULL; r = r->next)
		n++;
	if (n > MTA_MX_HOSTS_MAX)
		n = MTA_MX_HOSTS_MAX;
	if ((l->hosts = calloc(n + 1, sizeof(*l->hosts))) == NULL)
		goto enomem;
	if (mx == NULL) {
		/* No MX records: the name stands for itself (RFC 5321 5.1). */
		if (mta_mxhost_add(l, mta->proxy_mx, 0) == -1)
			goto enomem;
	}
	for (r = mx; r != NULL && l->nhosts < n; r = r->next)
		/* "0 ." is a null MX (RFC 7505): nobody takes mail. */
		if (r->host[0] != '\0' && strcmp(r->host, ".") != 0 &&
		    mta_mxhost_add(l, r->host, r->priority) == -1)
			goto enomem;
	ares_free_data(mx);
	mta_lookup_enter_state(l, MTA_L_ADDRS);
	l->pending++;		/* none of the answers below may finish it early */
	for (i = 0; i < l->nhosts; i++) {
		l->pending++;
		ares_query(mta->channel, l->hosts[i].name, MTA_DNS_C_IN,
		    MTA_DNS_T_A, mta_a_cb, &l->hosts[i]);
	}
	l->pending--;
	mta_lookup_finish(l);
	return;
enomem:
	ares_free_data(mx);
	snprintf(l->why, sizeof(l->why), "4.3.0 out of memory");
	mta_lookup_finish(l);
}

/*
 * The hops, best first: by preference, hosts of equal preference in a
 * random order (shuffled, then sorted by a stable sort), each host's
 * addresses in the order the server gave them.
 */
static int
mta_mx_hops(struct sim_mta *mta, struct mta_lookup *l, char ***hops,
    size_t *nhops)
{
	struct mta_mxhost tmp;
	char **v;
	size_t i, j, n = 0, k;

	for (i = l->nhosts; i > 1; i--) {
		j = arc4random_uniform((uint32_t)i);
		tmp = l->hosts[i - 1];
		l->hosts[i - 1] = l->hosts[j];
		l->hosts[j] = tmp;
	}
	for (i = 1; i < l->nhosts; i++)
		for (j = i; j > 0 && l->hosts[j - 1].pref > l->hosts[j].pref;
		    j--) {
			tmp = l->hosts[j - 1];
			l->hosts[j - 1] = l->hosts[j];
			l->hosts[j] = tmp;
		}
	for (i = 0; i < l->nhosts; i++)
		n += l->hosts[i].naddrs;
	*hops = NULL;
	*nhops = 0;
	if (n == 0)
		return 0;
	if ((v = calloc(n, sizeof(*v))) == NULL)
		return -1;
	for (i = 0, k = 0; i < l->nhosts; i++)
		for (j = 0; j < l->hosts[i].naddrs; j++) {
			if (asprintf(&v[k], "%s:%u", l->hosts[i].addrs[j],
			    mta->proxy_port) == -1) {
				mta_strv_free(v, k);
				return -1;
			}
			k++;
		}
	*hops = v;
	*nhops = n;
	return 0;
}

static void
mta_lookup_done(evutil_socket_t fd, short what, void *arg)
{
	struct mta_lookup *l = arg;
	struct sim_mta *mta = l->mta;
	struct mta_entry *e;
	struct buf order = BUF_INIT;
	char **hops;
	size_t nhops, i, n, *idx;
	const char *why = l->why;

	TAILQ_FOREACH(e, &mta->queue, entry)
		if (e->id == l->id)
			break;
	if (e == NULL || e->attempts != l->attempt ||
	    e->state != MTA_Q_ACTIVE) {
		mta_lookup_free(l);	/* the message has moved on */
		return;
	}
	e->njobs--;
	if (*why == '\0' && mta_mx_hops(mta, l, &hops, &nhops) == -1)
		why = "4.3.0 out of memory";
	if (*why != '\0') {
		/* Never the bypass for a DNS fault: the message waits. */
		log_msg(LOG_INFO, e->sid, "mx", "name=%s error=\"%s\"",
		    mta->proxy_mx, why);
		if ((idx = mta_pick(e, MTA_R_ACTIVE, &n)) != NULL)
			mta_defer(e, idx, n, "proxy", 0, why, "connect", NULL);
		free(idx);
	} else {
		for (i = 0; i < nhops; i++)
			buf_appendf(&order, "%s%s", i ? "," : "", hops[i]);
		log_msg(LOG_INFO, e->sid, "mx", "name=%s hosts=%zu hops=%s",
		    mta->proxy_mx, l->nhosts, order.len ? buf_cstr(&order) : "-");
		buf_free(&order);
		mta_strv_free(e->hops, e->nhops);
		e->hops = hops;
		e->nhops = nhops;
		mta_try_proxy(e, 0, nhops == 0 ? "no MX host has an address" :
		    NULL);
	}
	mta_lookup_free(l);
	if (e->njobs == 0)
		mta_attempt_done(e);
}

/* Look the proxies up for this attempt; the answer comes from the loop. */
static int
mta_resolve(struct mta_entry *e)
{
	struct sim_mta *mta = e->mta;
	struct mta_lookup *l;

	if ((l = calloc(1, sizeof(*l))) == NULL)
		return -1;
	if ((l->done = evtimer_new(mta->base, mta_lookup_done, l)) == NULL) {
		free(l);
		return -1;
	}
	l->mta = mta;
	l->id = e->id;
	l->attempt = e->attempts;
	l->state = MTA_L_MX;
	TAILQ_INSERT_TAIL(&mta->lookups, l, entry);
	e->njobs++;		/* the lookup holds the attempt open */
	l->pending = 2;		/* the query, and this call */
	ares_query(mta->channel, mta->proxy_mx, MTA_DNS_C_IN, MTA_DNS_T_MX,
	    mta_mx_cb, l);
	l->pending--;
	mta_lookup_finish(l);
	mta_dns_rearm(mta);
	return 0;
}

static void
mta_attempt(struct mta_entry *e)
{
	struct sim_mta *mta = e->mta;
	size_t i;

	mta_enter_state(e, MTA_Q_ACTIVE);
	e->attempts++;
	for (i = 0; i < e->nrcpts; i++)
		if (e->rcpts[i].st == MTA_R_PENDING)
			e->rcpts[i].st = MTA_R_ACTIVE;
	if (e->inspected)
		mta_route(e);
	else if (mta_aged(e)) {
		log_msg(LOG_INFO, e->sid, "bypass", "why=queue-age age_ms=%.0f",
		    (sim_clock() - e->arrived) * 1000.0);
		mta_send_active(e, mta->bypass, "bypass", -1);
	} else if (mta->proxy_mx != NULL) {
		/* On failure nothing starts: deferred below, never bypassed. */
		(void)mta_resolve(e);
	} else if (mta_set_hops(e, mta->proxies, mta->nproxies) == 0)
		mta_try_proxy(e, 0, mta->nproxies == 0 ? "none configured" :
		    NULL);
	/* Sessions that could not start left their recipients active. */
	if (e->njobs == 0) {
		for (i = 0; i < e->nrcpts; i++)
			if (e->rcpts[i].st == MTA_R_ACTIVE)
				mta_set_result(&e->rcpts[i], MTA_R_PENDING, 0,
				    "4.3.0 cannot start a session", "connect",
				    NULL);
		mta_attempt_done(e);
	}
}

/*
 * What a session said about its j-th recipient: the reply that decided it
 * and the command it answered (code 0: none came, text says why).
 */
static int
mta_verdict(const struct sim_send_result *r, size_t j, const char **text,
    const char **cmd)
{
	const char *err = r->error ? r->error : "no reply";

	*cmd = "connect";
	*text = err;
	if (!r->connected || r->greeting == 0)
		return 0;
	*text = r->greeting_text;
	if (r->greeting / 100 != 2)
		return r->greeting;
	*cmd = "MAIL FROM";
	*text = r->mail ? r->mail_text : err;
	if (r->mail / 100 != 2)
		return r->mail;
	*cmd = "RCPT TO";
	*text = r->rcpt[j] ? r->rcpt_text[j] : err;
	if (r->rcpt[j] / 100 != 2)
		return r->rcpt[j];
	*cmd = "DATA";
	*text = r->data ? r->data_text : err;
	if (r->data != 354)
		return r->data == 0 || r->data / 100 == 2 ? 0 : r->data;
	*cmd = "end of DATA";
	*text = r->final ? r->final_text : err;
	return r->final;
}

/* Sort a session's recipients into delivered, deferred and failed. */
static void
mta_job_result(struct mta_job *j, const struct sim_send_result *r)
{
	struct mta_entry *e = j->e;
	size_t *ok, *later, i, nok = 0, nlater = 0;
	const char *text, *cmd, *oktext = NULL, *latertext = NULL;
	int code, okcode = 0, latercode = 0;

	ok = calloc(j->n, sizeof(*ok));
	later = calloc(j->n, sizeof(*later));
	for (i = 0; i < j->n; i++) {
		struct mta_rcpt *rc = &e->rcpts[j->idx[i]];

		code = mta_verdict(r, i, &text, &cmd);
		switch (code / 100) {
		case 2:
			mta_set_result(rc, MTA_R_DELIVERED, code, text, cmd, j->to);
			if (ok != NULL)
				ok[nok++] = j->idx[i];
			okcode = code;
			oktext = rc->text;
			break;
		case 5:
			mta_set_result(rc, MTA_R_FAILED, code, text, cmd, j->to);
			break;
		default:
			mta_set_result(rc, MTA_R_PENDING, code, text, cmd, j->to);
			if (later != NULL)
				later[nlater++] = j->idx[i];
			latercode = code;
			latertext = rc->text;
			break;
		}
	}
	if (nok > 0)
		mta_fire(e, SIM_MTA_DELIVERED, j->route, j->to, okcode, oktext, ok, nok);
	if (nlater > 0)
		mta_fire(e, SIM_MTA_DEFERRED, j->route, j->to, latercode,
		    latertext, later, nlater);
	free(ok);
	free(later);
}

/* The session ended because TLS could not be used as required. */
static int
mta_tls_failed(const struct sim_send_result *r)
{
	return r->error != NULL && r->stage != NULL &&
	    (strcmp(r->stage, "starttls") == 0 || strcmp(r->stage, "tls") == 0);
}

static void
mta_job_cb(void *arg, const struct sim_send_result *r)
{
	struct mta_job *j = arg;
	struct mta_entry *e = j->e;
	struct sim_mta *mta = e->mta;
	char why[512];
	int proxy = j->proxy;

	j->send = NULL;		/* gone once it has reported */
	if (proxy >= 0 && (!r->connected || r->greeting / 100 != 2 ||
	    mta_tls_failed(r))) {
		/* This proxy did not answer (or not over TLS): the next one may. */
		snprintf(why, sizeof(why), "%s: %s", j->to, r->error ? r->error :
		    r->greeting_text ? r->greeting_text : "no greeting");
		log_msg(LOG_INFO, e->sid, "proxy-down", "proxy=%s", j->to);
		e->njobs--;
		mta_job_free(mta, j);
		mta_try_proxy(e, (size_t)proxy + 1, why);
	} else {
		mta_job_result(j, r);
		e->njobs--;
		mta_job_free(mta, j);
	}
	if (e->njobs == 0)
		mta_attempt_done(e);
}

/* ---- bounces ----------------------------------------------------------- */

/* Reply text for one line of the report: no line breaks, bounded. */
static void
mta_flat(char *dst, size_t dstsz, const char *s)
{
	size_t i, n = 0;

	for (i = 0; s != NULL && s[i] != '\0' && n + 1 < dstsz &&
	    n < MTA_DIAG_MAX; i++)
		dst[n++] = s[i] == '\n' || s[i] == '\r' ? ' ' : s[i];
	dst[n] = '\0';
}

/* The host of "ip:port", for the report. */
static const char *
mta_host(char *dst, size_t dstsz, const char *hostport)
{
	struct hostport hp;
	const char *e;

	if (netaddr_parse_hostport(hostport, &hp, &e) == -1)
		snprintf(dst, dstsz, "%s", hostport);
	else
		snprintf(dst, dstsz, "%s", hp.host);
	return dst;
}

/* "5.7.1" from the reply text, else one made from the code's class. */
static void
mta_status(char *dst, size_t dstsz, int code, const char *text)
{
	size_t n = 0;

	if (text != NULL && (text[0] == '4' || text[0] == '5') && text[1] == '.')
		while (text[n] != '\0' && text[n] != ' ' && n + 1 < dstsz)
			n++;
	if (n >= 5) {
		memcpy(dst, text, n);
		dst[n] = '\0';
		/* Given up: a failure is permanent whatever the last reply said. */
		dst[0] = '5';
		return;
	}
	snprintf(dst, dstsz, code / 100 == 5 ? "5.0.0" : "5.4.7");
}

static int
mta_ndr_build(struct mta_entry *e, struct buf *out, const size_t *failed,
    size_t nfailed)
{
	struct sim_mta *mta = e->mta;
	const char *c = e->m->content.data ? e->m->content.data : "";
	char date[64], boundary[96], diag[MTA_DIAG_MAX + 1], status[16];
	char host[NETADDR_HOST_MAX + 1];
	size_t i, hlen;

	hlen = sim_msg_header_len(c, e->m->content.len);
	if (hlen > MTA_NDR_HEADERS_MAX) {
		/* Cut at a line end, so that no header is left half. */
		hlen = MTA_NDR_HEADERS_MAX;
		while (hlen > 0 && c[hlen - 1] != '\n')
			hlen--;
	}
	sim_date(date, sizeof(date));
	snprintf(boundary, sizeof(boundary), "=_ndr_%lu_%ld", e->id,
	    (long)getpid());
	if (buf_appendf(out, "From: MAILER-DAEMON@%s (Mail Delivery System)\r\n"
	    "To: <%s>\r\nSubject: Undelivered Mail Returned to Sender\r\n"
	    "Date: %s\r\nMessage-ID: <ndr.%lu.%ld@%s>\r\n"
	    "Auto-Submitted: auto-replied\r\nMIME-Version: 1.0\r\n"
	    "Content-Type: multipart/report; report-type=delivery-status;\r\n"
	    "\tboundary=\"%s\"\r\n\r\n"
	    "This is a MIME-encapsulated message.\r\n\r\n"
	    "--%s\r\nContent-Description: Notification\r\n"
	    "Content-Type: text/plain; charset=us-ascii\r\n\r\n"
	    "This is the mail system at host %s.\r\n\r\n"
	    "I'm sorry to have to inform you that your message could not\r\n"
	    "be delivered to one or more recipients.\r\n\r\n",
	    mta->helo, e->m->mail_from, date, e->id, (long)getpid(), mta->helo,
	    boundary, boundary, mta->helo) == -1)
		return -1;
	for (i = 0; i < nfailed; i++) {
		const struct mta_rcpt *r = &e->rcpts[failed[i]];

		mta_flat(diag, sizeof(diag), r->text);
		if ((r->remote != NULL && r->code != 0 ?
		    buf_appendf(out, "<%s>: host %s said: %d %s (in reply to "
		    "%s command)\r\n", r->addr, r->remote, r->code, diag,
		    r->cmd ? r->cmd : "?") :
		    buf_appendf(out, "<%s>: %s\r\n", r->addr, diag)) == -1)
			return -1;
	}
	if (buf_appendf(out, "\r\n--%s\r\nContent-Description: Delivery report\r\n"
	    "Content-Type: message/delivery-status\r\n\r\n"
	    "Reporting-MTA: dns; %s\r\nX-Mta-Sim-Queue-ID: %lu\r\n"
	    "Arrival-Date: %s\r\n", boundary, mta->helo, e->id, e->date) == -1)
		return -1;
	for (i = 0; i < nfailed; i++) {
		const struct mta_rcpt *r = &e->rcpts[failed[i]];

		mta_flat(diag, sizeof(diag), r->text);
		mta_status(status, sizeof(status), r->code, r->text);
		if (buf_appendf(out, "\r\nFinal-Recipient: rfc822; %s\r\n"
		    "Action: failed\r\nStatus: %s\r\n", r->addr, status) == -1 ||
		    (r->remote != NULL && buf_appendf(out, "Remote-MTA: dns; "
		    "[%s]\r\n", mta_host(host, sizeof(host), r->remote)) == -1) ||
		    (r->code != 0 ? buf_appendf(out, "Diagnostic-Code: smtp; "
		    "%d %s\r\n", r->code, diag) :
		    buf_appendf(out, "Diagnostic-Code: X-mta-sim; %s\r\n",
		    diag)) == -1)
			return -1;
	}
	if (buf_appendf(out, "\r\n--%s\r\nContent-Description: Undelivered "
	    "Message Headers\r\nContent-Type: text/rfc822-headers\r\n\r\n",
	    boundary) == -1 || buf_append(out, c, hlen) == -1)
		return -1;
	if (hlen > 0 && c[hlen - 1] != '\n' && buf_append(out, "\r\n", 2) == -1)
		return -1;
	return buf_appendf(out, "\r\n--%s--\r\n", boundary);
}

/* Bounce failed[0..n) to the sender, as a new message from <>. */
static void
mta_ndr(struct mta_entry *e, const size_t *failed, size_t n)
{
	struct sim_mta *mta = e->mta;
	struct sim_msg *m;
	struct mta_entry *ndr;

	if ((m = sim_msg_new()) == NULL)
		goto enomem;
	m->t = sim_clock();
	if (sim_msg_set(&m->role, mta->name) == -1 ||
	    sim_msg_set(&m->listener, "local") == -1 ||
	    sim_msg_set(&m->client_ip, "") == -1 ||
	    sim_msg_set(&m->helo, mta->helo) == -1 ||
	    sim_msg_set(&m->mail_from, "") == -1 ||
	    sim_msg_add_rcpt(m, e->m->mail_from) == -1 ||
	    mta_ndr_build(e, &m->content, failed, n) == -1)
		goto enomem;
	/* Not counted against the queue limit: a bounce must not be lost. */
	if ((ndr = mta_enqueue(mta, m, 0)) == NULL)
		goto enomem;
	sim_msg_free(m);
	log_msg(LOG_INFO, e->sid, "ndr", "queue_id=%lu", ndr->id);
	mta_fire(ndr, SIM_MTA_NDR, NULL, NULL, 0, NULL, NULL, ndr->nrcpts);
	mta_schedule(ndr, 0);
	return;
enomem:
	sim_msg_free(m);
	log_msg(LOG_ERR, e->sid, "ndr", "error=ENOMEM");
}

/* Every recipient has its outcome: bounce the failures, forget the message. */
static void
mta_finish(struct mta_entry *e)
{
	size_t n, *failed = mta_pick(e, MTA_R_FAILED, &n);

	if (failed != NULL) {
		const struct mta_rcpt *r = &e->rcpts[failed[0]];

		mta_fire(e, SIM_MTA_BOUNCED, NULL, r->remote, r->code, r->text, failed, n);
		/* RFC 5321 6.1: never a bounce for a bounce. */
		if (e->m->mail_from[0] != '\0')
			mta_ndr(e, failed, n);
		free(failed);
	}
	log_msg(LOG_INFO, e->sid, "removed", "attempts=%u", e->attempts);
	mta_entry_free(e);
}

static void
mta_attempt_done(struct mta_entry *e)
{
	struct sim_mta *mta = e->mta;
	unsigned delay, shift;
	double left;
	char text[600];
	size_t i;
	int pending = 0;

	for (i = 0; i < e->nrcpts; i++)
		if (e->rcpts[i].st == MTA_R_PENDING)
			pending = 1;
	if (!pending) {
		mta_finish(e);
		return;
	}
	if (e->attempts >= mta->max_attempts) {
		for (i = 0; i < e->nrcpts; i++) {
			struct mta_rcpt *r = &e->rcpts[i];

			if (r->st != MTA_R_PENDING)
				continue;
			snprintf(text, sizeof(text), "%s (gave up after %u "
			    "attempts)", r->text ? r->text : "temporary failure",
			    e->attempts);
			mta_set_result(r, MTA_R_FAILED, r->code, text, r->cmd,
			    r->remote);
		}
		mta_finish(e);
		return;
	}
	shift = e->attempts - 1 < 16 ? e->attempts - 1 : 16;
	delay = mta->retry_ms;
	while (shift-- > 0 && delay < mta->max_retry_ms)
		delay *= 2;
	if (delay > mta->max_retry_ms)
		delay = mta->max_retry_ms;
	/* Queue management looks at the age even while a retry waits. */
	if (!e->inspected && mta->max_age_ms > 0 && mta->bypass != NULL &&
	    !mta->block_on_failure) {
		left = (double)mta->max_age_ms - (sim_clock() - e->arrived) * 1000.0;
		if (left < 0)
			left = 0;
		if (left + 1 < (double)delay)
			delay = (unsigned)left + 1;
	}
	log_msg(LOG_INFO, e->sid, "retry", "in_ms=%u attempt=%u", delay,
	    e->attempts + 1);
	mta_schedule(e, delay);
}

/* ---- the object ------------------------------------------------------------- */

static struct sim_sink *
mta_listen(struct sim_mta *mta, const char *addr, const char *label,
    const struct sim_mta_opts *o, char *err, size_t errlen)
{
	struct sim_sink_opts so;
	struct sim_sink *sk;
	char name[96];

	snprintf(name, sizeof(name), "%s.%s", mta->name, label);
	memset(&so, 0, sizeof(so));
	so.name = name;
	so.listen = addr;
	so.hostname = mta->helo;
	so.listener = label;
	so.no_keep = 1;
	so.max_size = o->max_size ? o->max_size : MTA_SIZE_DEFAULT;
	so.max_rcpts = o->max_rcpts ? o->max_rcpts : MTA_RCPTS_DEFAULT;
	so.tls_cert = o->tls_cert;
	so.tls_key = o->tls_key;
	so.tls_required = o->tls_required;
	if ((sk = sim_sink_new(mta->base, &so, err, errlen)) == NULL)
		return NULL;
	sim_sink_on_accept(sk, mta_accept, mta);
	return sk;
}

/* Without a source, connections come from the main listener's IP. */
static int
mta_default_source(struct sim_mta *mta)
{
	struct hostport hp;
	const char *e;

	if (mta->source != NULL)
		return 0;
	if (netaddr_parse_hostport(sim_sink_addr(mta->main), &hp, &e) == -1)
		return -1;
	if (strcmp(hp.host, "0.0.0.0") == 0 || strcmp(hp.host, "::") == 0)
		return 0;
	return mta_dup(&mta->source, hp.host);
}

struct sim_mta *
sim_mta_new(struct event_base *base, const struct sim_mta_opts *o,
    char *err, size_t errlen)
{
	struct sim_mta *mta;
	struct sockaddr_storage ss;
	socklen_t sslen;

	if ((mta = calloc(1, sizeof(*mta))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	mta->base = base;
	TAILQ_INIT(&mta->queue);
	TAILQ_INIT(&mta->jobs);
	TAILQ_INIT(&mta->dns_socks);
	TAILQ_INIT(&mta->lookups);
	if (mta_configure(mta, o, err, errlen) == -1)
		goto fail;
	if (mta->source != NULL &&
	    netaddr_to_sockaddr(mta->source, 0, &ss, &sslen) == -1) {
		snprintf(err, errlen, "source %s is not an IP address",
		    mta->source);
		goto fail;
	}
	if ((mta->main = mta_listen(mta, o->listen ? o->listen : "127.0.0.1:0",
	    "main", o, err, errlen)) == NULL)
		goto fail;
	if (o->resubmit != NULL && (mta->resubmit = mta_listen(mta, o->resubmit,
	    "resubmit", o, err, errlen)) == NULL)
		goto fail;
	if (mta_default_source(mta) == -1) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	log_msg(LOG_INFO, mta->name, "mta", "arch=%s listen=%s resubmit=%s "
	    "source=%s proxies=%zu proxy_mx=%s bypass=%s block=%s tls_in=%s "
	    "tls_out=%s verify=%s", mta_strarch(mta->arch),
	    sim_sink_addr(mta->main), mta->resubmit ?
	    sim_sink_addr(mta->resubmit) : "-", mta->source ? mta->source : "-",
	    mta->nproxies, mta->proxy_mx ? mta->proxy_mx : "-",
	    mta->bypass ? mta->bypass : "-",
	    mta->block_on_failure ? "yes" : "no", o->tls_cert ? "yes" : "no",
	    mta->tls_outbound == SIM_TLS_MUST ? "must" :
	    mta->tls_outbound == SIM_TLS_MAY ? "may" : "no",
	    o->tls_trust != NULL ? "yes" : "no");
	return mta;
fail:
	sim_mta_free(mta);
	return NULL;
}

const char *
sim_mta_addr(const struct sim_mta *mta)
{
	return sim_sink_addr(mta->main);
}

const char *
sim_mta_resubmit_addr(const struct sim_mta *mta)
{
	return mta->resubmit != NULL ? sim_sink_addr(mta->resubmit) : NULL;
}

int
sim_mta_set_proxies(struct sim_mta *mta, const char *const *v, size_t n)
{
	char **nv;
	size_t nn, i;
	char err[256];

	for (i = 0; i < n; i++)
		if (v[i] == NULL || mta_check_hop("proxy", v[i], err,
		    sizeof(err)) == -1)
			return -1;
	if (mta_strv_dup(&nv, &nn, v, n) == -1)
		return -1;
	mta_strv_free(mta->proxies, mta->nproxies);
	mta->proxies = nv;
	mta->nproxies = nn;
	return 0;
}

void
sim_mta_on_event(struct sim_mta *mta, sim_mta_event_cb *cb, void *arg)
{
	mta->on_event = cb;
	mta->on_event_arg = arg;
}

size_t
sim_mta_queued(const struct sim_mta *mta)
{
	return mta->nqueued;
}

void
sim_mta_free(struct sim_mta *mta)
{
	struct mta_entry *e;
	struct mta_lookup *l;
	struct mta_dns_sock *ds;
	size_t i;

	if (mta == NULL)
		return;
	/* c-ares calls back every query it holds: they find nothing to do. */
	mta->dying = 1;
	if (mta->channel_ok)
		ares_destroy(mta->channel);
	while ((l = TAILQ_FIRST(&mta->lookups)) != NULL)
		mta_lookup_free(l);
	while ((ds = TAILQ_FIRST(&mta->dns_socks)) != NULL) {
		TAILQ_REMOVE(&mta->dns_socks, ds, entry);
		if (ds->ev != NULL)
			event_free(ds->ev);
		free(ds);
	}
	if (mta->dns_timer != NULL)
		event_free(mta->dns_timer);
	free(mta->proxy_mx);
	while ((e = TAILQ_FIRST(&mta->queue)) != NULL)
		mta_entry_free(e);
	sim_sink_free(mta->main);
	sim_sink_free(mta->resubmit);
	free(mta->name);
	free(mta->helo);
	free(mta->source);
	mta_strv_free(mta->proxies, mta->nproxies);
	mta_strv_free(mta->proxy_ips, mta->nproxy_ips);
	mta_strv_free(mta->proxy_helos, mta->nproxy_helos);
	free(mta->pass_value);
	free(mta->downstream);
	for (i = 0; i < mta->nroutes; i++) {
		free(mta->routes[i].header);
		free(mta->routes[i].value);
		free(mta->routes[i].to);
		free(mta->routes[i].name);
	}
	free(mta->routes);
	free(mta->bypass);
	mta_strv_free(mta->exceptions, mta->nexceptions);
	mta_strv_free(mta->local_domains, mta->nlocal_domains);
	free(mta->mailbox);
	SSL_CTX_free(mta->tls_ctx);
	free(mta);
}
