/*
 * nexthop: the ordered list of next-hop addresses (see nexthop.h).
 *
 * The walk has two levels: targets (host names or IP literals, with a
 * port) and, for each target, its addresses. With mx_lookup the targets
 * come from the MX records of next_hop.domains, resolved one domain at a
 * time as the walk reaches it: ascending preference, equal preferences
 * shuffled, no MX at all meaning the domain itself (RFC 5321 5.1).
 */
#include "nexthop.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>

#include "config.h"
#include "dns.h"
#include "log.h"
#include "netaddr.h"
#include "smtp_client.h"

struct nexthop_target {
	char		host[NETADDR_HOST_MAX + 1];
	uint16_t	port;
	int		mx;		/* came from an MX record */
	uint16_t	pref;
};

struct nexthop_iter {
	struct nexthop_target	*targets;
	size_t			 ntargets, targetcap;
	size_t			 cur;		/* target being walked */
	struct sockaddr_storage	*addrs;		/* addresses of targets[cur] */
	size_t			 naddrs;
	size_t			 nextaddr;
	int			 resolved;	/* addrs valid for targets[cur] */
	char			**domains;	/* mx_lookup: still to resolve */
	size_t			 ndomains, nextdomain;
	uint16_t		 port;		/* for MX hosts: resubmit_port */
	struct dns		*dns;
	struct dns_query	*query;
	nexthop_wake_cb		*wake;
	void			*arg;
	char			 sid[32];
	char			 error[NETADDR_HOST_MAX + 64];
	int			 tempfail;	/* a DNS answer was a temporary failure */
	int			 nullmx;	/* domains that accept no mail */
	int			 ok_domains;	/* domains that gave targets */
};

/*
 * MX answers cached for their TTL, in a small table shared by every
 * session of this process; the oldest entry gives way when it is full.
 */
#define NEXTHOP_CACHE_MAX	256
#define NEXTHOP_CACHE_TTL_MAX	3600

struct nexthop_cache_entry {
	char		 domain[NETADDR_HOST_MAX + 1];
	int		 status;
	struct dns_mx	*mx;
	size_t		 n;
	time_t		 expires;
	time_t		 added;
};

static struct nexthop_cache_entry nexthop_cache[NEXTHOP_CACHE_MAX];

/* Addresses of next-hop names, cached the same way (for their TTL). */
struct nexthop_acache_entry {
	char			 host[NETADDR_HOST_MAX + 1];
	struct sockaddr_storage	*addrs;
	size_t			 n;
	time_t			 expires;
	time_t			 added;
};

static struct nexthop_acache_entry nexthop_acache[NEXTHOP_CACHE_MAX];

static const struct nexthop_acache_entry *
nexthop_acache_get(const char *host)
{
	time_t now = time(NULL);

	for (size_t i = 0; i < NEXTHOP_CACHE_MAX; i++) {
		struct nexthop_acache_entry *e = &nexthop_acache[i];

		if (e->host[0] == '\0' || strcasecmp(e->host, host) != 0)
			continue;
		if (e->expires > now)
			return e;
		free(e->addrs);
		memset(e, 0, sizeof(*e));
		return NULL;
	}
	return NULL;
}

static void
nexthop_acache_put(const char *host, const struct dns_addrs *res)
{
	struct nexthop_acache_entry *e = NULL;
	time_t now = time(NULL);
	uint32_t ttl = res->ttl > NEXTHOP_CACHE_TTL_MAX ?
	    NEXTHOP_CACHE_TTL_MAX : res->ttl;

	if (ttl == 0 || res->n == 0 || strlen(host) > NETADDR_HOST_MAX)
		return;
	for (size_t i = 0; i < NEXTHOP_CACHE_MAX; i++) {
		struct nexthop_acache_entry *c = &nexthop_acache[i];

		if (c->host[0] == '\0' || c->expires <= now ||
		    strcasecmp(c->host, host) == 0) {
			e = c;
			break;
		}
		if (e == NULL || c->added < e->added)
			e = c;
	}
	free(e->addrs);
	memset(e, 0, sizeof(*e));
	if ((e->addrs = calloc(res->n, sizeof(*e->addrs))) == NULL)
		return;
	memcpy(e->addrs, res->addrs, res->n * sizeof(*e->addrs));
	snprintf(e->host, sizeof(e->host), "%s", host);
	e->n = res->n;
	e->added = now;
	e->expires = now + (time_t)ttl;
}

static void
nexthop_cache_drop(struct nexthop_cache_entry *e)
{
	free(e->mx);
	memset(e, 0, sizeof(*e));
}

static struct nexthop_cache_entry *
nexthop_cache_get(const char *domain)
{
	time_t now = time(NULL);

	for (size_t i = 0; i < NEXTHOP_CACHE_MAX; i++) {
		struct nexthop_cache_entry *e = &nexthop_cache[i];

		if (e->domain[0] == '\0' || strcasecmp(e->domain, domain) != 0)
			continue;
		if (e->expires <= now) {
			nexthop_cache_drop(e);
			return NULL;
		}
		return e;
	}
	return NULL;
}

static void
nexthop_cache_put(const char *domain, int status, const struct dns_mx *mx,
    size_t n, uint32_t ttl)
{
	struct nexthop_cache_entry *e = NULL;
	time_t now = time(NULL);

	if (ttl == 0 || strlen(domain) > NETADDR_HOST_MAX)
		return;
	if (ttl > NEXTHOP_CACHE_TTL_MAX)
		ttl = NEXTHOP_CACHE_TTL_MAX;
	for (size_t i = 0; i < NEXTHOP_CACHE_MAX; i++) {
		struct nexthop_cache_entry *c = &nexthop_cache[i];

		if (c->domain[0] == '\0' || c->expires <= now ||
		    strcasecmp(c->domain, domain) == 0) {
			e = c;
			break;
		}
		if (e == NULL || c->added < e->added)
			e = c;
	}
	nexthop_cache_drop(e);
	if (n > 0 && (e->mx = calloc(n, sizeof(*mx))) == NULL)
		return;
	if (n > 0)
		memcpy(e->mx, mx, n * sizeof(*mx));
	snprintf(e->domain, sizeof(e->domain), "%s", domain);
	e->status = status;
	e->n = n;
	e->added = now;
	e->expires = now + (time_t)ttl;
}

void
nexthop_cache_clear(void)
{
	for (size_t i = 0; i < NEXTHOP_CACHE_MAX; i++) {
		nexthop_cache_drop(&nexthop_cache[i]);
		free(nexthop_acache[i].addrs);
		memset(&nexthop_acache[i], 0, sizeof(nexthop_acache[i]));
	}
}

static int
nexthop_add(struct nexthop_iter *it, const char *host, uint16_t port, int mx,
    uint16_t pref)
{
	struct nexthop_target *t;

	if (it->ntargets == it->targetcap) {
		size_t cap = it->targetcap ? it->targetcap * 2 : 8;

		if ((t = realloc(it->targets, cap * sizeof(*t))) == NULL)
			return -1;
		it->targets = t;
		it->targetcap = cap;
	}
	t = &it->targets[it->ntargets++];
	memset(t, 0, sizeof(*t));
	snprintf(t->host, sizeof(t->host), "%s", host);
	t->port = port;
	t->mx = mx;
	t->pref = pref;
	return 0;
}

struct nexthop_iter *
nexthop_iter_new(const struct config *cfg, const char *sid,
    const struct sockaddr *peer, struct dns *dns, nexthop_wake_cb *wake,
    void *arg)
{
	struct nexthop_iter *it;
	char ip[64];
	size_t i;

	if ((it = calloc(1, sizeof(*it))) == NULL)
		return NULL;
	it->dns = dns;
	it->wake = wake;
	it->arg = arg;
	it->port = cfg->resubmit_port;
	snprintf(it->sid, sizeof(it->sid), "%s", sid);
	if (cfg->mode == MODE_REFLECT) {
		netaddr_ip(peer, ip, sizeof(ip));
		if (nexthop_add(it, ip, cfg->resubmit_port, 0, 0) == -1)
			goto fail;
		return it;
	}
	if (cfg->mx_lookup) {
		it->domains = cfg->domains;	/* the config outlives us */
		it->ndomains = cfg->ndomains;
		return it;
	}
	for (i = 0; i < cfg->nhosts; i++)
		if (nexthop_add(it, cfg->hosts[i].host, cfg->hosts[i].port ?
		    cfg->hosts[i].port : cfg->resubmit_port, 0, 0) == -1)
			goto fail;
	return it;
fail:
	free(it->targets);
	free(it);
	return NULL;
}

void
nexthop_iter_free(struct nexthop_iter *it)
{
	if (it == NULL)
		return;
	if (it->query)
		dns_cancel(it->query);
	free(it->addrs);
	free(it->targets);
	free(it);
}

const char *
nexthop_iter_error(const struct nexthop_iter *it)
{
	return it->error;
}

enum nexthop_outcome
nexthop_iter_outcome(const struct nexthop_iter *it)
{
	if (it->ok_domains == 0 && it->nullmx > 0 && !it->tempfail)
		return NEXTHOP_NO_MAIL;
	if (it->tempfail)
		return NEXTHOP_DNS_TEMPFAIL;
	return NEXTHOP_UNREACHABLE;
}

/* Targets of one domain's MX answer: by preference, ties shuffled. */
static void
nexthop_mx_targets(struct nexthop_iter *it, const char *domain, int status,
    const struct dns_mx *mx, size_t n)
{
	size_t i, j, first = it->ntargets;

	switch (status) {
	case DNS_OK:
		it->ok_domains++;
		for (i = 0; i < n; i++)
			if (nexthop_add(it, mx[i].host, it->port, 1,
			    mx[i].pref) == -1)
				return;
		/* dns.c sorted by preference; Fisher-Yates within each run. */
		for (i = first; i < it->ntargets; i = j) {
			for (j = i + 1; j < it->ntargets &&
			    it->targets[j].pref == it->targets[i].pref; j++)
				;
			for (size_t k = j - 1; k > i; k--) {
				uint32_t r;
				size_t pick;
				struct nexthop_target tmp;

				if (getrandom(&r, sizeof(r), 0) != sizeof(r))
					r = (uint32_t)rand();
				pick = i + r % (k - i + 1);
				tmp = it->targets[k];
				it->targets[k] = it->targets[pick];
				it->targets[pick] = tmp;
			}
		}
		return;
	case DNS_NODATA:
		/* No MX: the domain's own addresses (RFC 5321 5.1). */
		it->ok_domains++;
		if (nexthop_add(it, domain, it->port, 0, 0) == -1)
			it->tempfail = 1;	/* out of memory: try again later */
		return;
	case DNS_NULLMX:
		it->nullmx++;
		snprintf(it->error, sizeof(it->error), "%s: null MX", domain);
		return;
	case DNS_NXDOMAIN:
		snprintf(it->error, sizeof(it->error), "%s: no such domain",
		    domain);
		return;
	default:
		it->tempfail = 1;
		snprintf(it->error, sizeof(it->error), "%s: %s", domain,
		    dns_strstatus(status));
		return;
	}
}

static void
nexthop_mx_answer(void *arg, int status, const struct dns_mx *mx, size_t n,
    uint32_t ttl)
{
	struct nexthop_iter *it = arg;
	const char *domain = it->domains[it->nextdomain - 1];

	it->query = NULL;
	if (status == DNS_CANCELLED) {
		it->tempfail = 1;
		it->wake(it->arg);
		return;
	}
	if (status == DNS_OK || status == DNS_NODATA || status == DNS_NULLMX ||
	    status == DNS_NXDOMAIN)
		nexthop_cache_put(domain, status, mx, n, ttl);
	log_msg(status == DNS_OK ? LOG_DEBUG : LOG_INFO, it->sid, "mx",
	    "domain=%s status=%s records=%zu ttl=%u", domain,
	    dns_strstatus(status), n, ttl);
	nexthop_mx_targets(it, domain, status, mx, n);
	it->wake(it->arg);
}

/* Resolve the next domain's MX. Returns 1 when a query is under way. */
static int
nexthop_next_domain(struct nexthop_iter *it)
{
	const struct nexthop_cache_entry *e;
	const char *domain;

	while (it->nextdomain < it->ndomains) {
		domain = it->domains[it->nextdomain++];
		if ((e = nexthop_cache_get(domain)) != NULL) {
			nexthop_mx_targets(it, domain, e->status, e->mx, e->n);
			if (it->cur < it->ntargets)
				return 0;
			continue;
		}
		if ((it->query = dns_lookup_mx(it->dns, domain,
		    nexthop_mx_answer, it)) != NULL)
			return 1;
		it->tempfail = 1;
	}
	return 0;
}

static void
nexthop_resolved(void *arg, int status, const struct dns_addrs *res)
{
	struct nexthop_iter *it = arg;
	struct nexthop_target *t = &it->targets[it->cur];

	it->query = NULL;
	it->resolved = 1;
	it->naddrs = it->nextaddr = 0;
	if (status == DNS_OK && res->n > 0 &&
	    (it->addrs = calloc(res->n, sizeof(*it->addrs))) != NULL) {
		memcpy(it->addrs, res->addrs, res->n * sizeof(*it->addrs));
		it->naddrs = res->n;
		nexthop_acache_put(t->host, res);
	} else {
		if (status == DNS_OK)		/* but no memory for the list */
			status = DNS_TEMPFAIL;
		if (status == DNS_TEMPFAIL || status == DNS_CANCELLED)
			it->tempfail = 1;
		snprintf(it->error, sizeof(it->error), "%s: %s", t->host,
		    dns_strstatus(status));
		log_msg(LOG_WARN, it->sid, "nexthop-resolve", "host=%s status=%s",
		    t->host, dns_strstatus(status));
	}
	it->wake(it->arg);
}

static void
nexthop_label(const struct nexthop_target *t, const struct sockaddr *sa,
    char *label, size_t labelsz)
{
	struct in6_addr a6;
	char ip[80];

	netaddr_str(sa, ip, sizeof(ip));
	if (inet_pton(AF_INET, t->host, &a6) == 1 ||
	    inet_pton(AF_INET6, t->host, &a6) == 1)
		snprintf(label, labelsz, "%s", ip);
	else if (t->mx)
		snprintf(label, labelsz, "%s[%s]/mx%u", t->host, ip, t->pref);
	else
		snprintf(label, labelsz, "%s[%s]", t->host, ip);
}

enum nexthop_status
nexthop_iter_next(struct nexthop_iter *it, struct sockaddr_storage *ss,
    socklen_t *sslen, char *label, size_t labelsz, char *name, size_t namesz)
{
	struct nexthop_target *t;

	for (;;) {
		if (it->query)
			return NEXTHOP_PENDING;
		if (it->cur >= it->ntargets) {
			if (nexthop_next_domain(it))
				return NEXTHOP_PENDING;
			if (it->cur >= it->ntargets)
				return NEXTHOP_END;
		}
		t = &it->targets[it->cur];
		if (!it->resolved) {
			/* An IP literal needs no lookup. */
			if (netaddr_to_sockaddr(t->host, t->port, ss, sslen) == 0) {
				it->cur++;
				snprintf(name, namesz, "%s", t->host);
				nexthop_label(t, (struct sockaddr *)ss, label,
				    labelsz);
				return NEXTHOP_ADDR;
			}
			{
				const struct nexthop_acache_entry *e =
				    nexthop_acache_get(t->host);

				if (e != NULL && (it->addrs = calloc(e->n,
				    sizeof(*it->addrs))) != NULL) {
					memcpy(it->addrs, e->addrs,
					    e->n * sizeof(*it->addrs));
					it->naddrs = e->n;
					it->nextaddr = 0;
					it->resolved = 1;
					continue;
				}
			}
			it->query = dns_lookup_addrs(it->dns, t->host,
			    nexthop_resolved, it);
			if (it->query == NULL) {
				snprintf(it->error, sizeof(it->error),
				    "%s: cannot start lookup", t->host);
				it->cur++;
				continue;
			}
			return NEXTHOP_PENDING;
		}
		if (it->nextaddr < it->naddrs) {
			struct sockaddr_storage *a = &it->addrs[it->nextaddr++];
			char ip[64];

			netaddr_ip((struct sockaddr *)a, ip, sizeof(ip));
			if (netaddr_to_sockaddr(ip, t->port, ss, sslen) == 0) {
				snprintf(name, namesz, "%s", t->host);
				nexthop_label(t, (struct sockaddr *)ss, label,
				    labelsz);
				return NEXTHOP_ADDR;
			}
			continue;
		}
		free(it->addrs);
		it->addrs = NULL;
		it->naddrs = it->nextaddr = 0;
		it->resolved = 0;
		it->cur++;
	}
}

void
nexthop_client_opts(const struct config *cfg, int tls,
    struct smtp_client_opts *o, struct sockaddr_storage *src)
{
	socklen_t len;

	memset(o, 0, sizeof(*o));
	o->helo_name = cfg->helo_name;
	/* The source address MTAs may route on (client-IP architecture). */
	if (cfg->source_address[0] != '\0' &&
	    netaddr_to_sockaddr(cfg->source_address, 0, src, &len) == 0) {
		o->source = (struct sockaddr *)src;
		o->sourcelen = len;
	}
	if (tls)
		o->tls = cfg->tls.client_ctx;
	o->t_connect = cfg->timeouts.connect;
	o->t_greeting = cfg->timeouts.greeting;
	o->t_reply = cfg->timeouts.reply;
	o->t_data_init = cfg->timeouts.data_init;
	o->t_data_block = cfg->timeouts.data_block;
	o->t_data_done = cfg->timeouts.data_done;
}
