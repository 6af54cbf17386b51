/*
 * nexthop: the ordered list of next-hop addresses (see nexthop.h).
 */
#include "nexthop.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "dns.h"
#include "log.h"
#include "netaddr.h"

struct nexthop_target {
	char		host[NETADDR_HOST_MAX + 1];
	uint16_t	port;
};

struct nexthop_iter {
	struct nexthop_target	*targets;
	size_t			 ntargets;
	size_t			 cur;		/* target being walked */
	struct sockaddr_storage	*addrs;		/* addresses of targets[cur] */
	size_t			 naddrs;
	size_t			 nextaddr;
	int			 resolved;	/* addrs valid for targets[cur] */
	struct dns		*dns;
	struct dns_query	*query;
	nexthop_wake_cb		*wake;
	void			*arg;
	char			 sid[32];
	char			 error[NETADDR_HOST_MAX + 64];
};

struct nexthop_iter *
nexthop_iter_new(const struct config *cfg, const char *sid,
    const struct sockaddr *peer, struct dns *dns, nexthop_wake_cb *wake,
    void *arg)
{
	struct nexthop_iter *it;
	size_t i;

	if ((it = calloc(1, sizeof(*it))) == NULL)
		return NULL;
	it->dns = dns;
	it->wake = wake;
	it->arg = arg;
	snprintf(it->sid, sizeof(it->sid), "%s", sid);
	if (cfg->mode == MODE_REFLECT) {
		if ((it->targets = calloc(1, sizeof(*it->targets))) == NULL)
			goto fail;
		netaddr_ip(peer, it->targets[0].host, sizeof(it->targets[0].host));
		it->targets[0].port = cfg->resubmit_port;
		it->ntargets = 1;
		return it;
	}
	if (cfg->nhosts == 0)
		return it;
	if ((it->targets = calloc(cfg->nhosts, sizeof(*it->targets))) == NULL)
		goto fail;
	for (i = 0; i < cfg->nhosts; i++) {
		memcpy(it->targets[i].host, cfg->hosts[i].host,
		    sizeof(it->targets[i].host));
		it->targets[i].port = cfg->hosts[i].port ? cfg->hosts[i].port :
		    cfg->resubmit_port;
	}
	it->ntargets = cfg->nhosts;
	return it;
fail:
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
	} else {
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
	else
		snprintf(label, labelsz, "%s[%s]", t->host, ip);
}

enum nexthop_status
nexthop_iter_next(struct nexthop_iter *it, struct sockaddr_storage *ss,
    socklen_t *sslen, char *label, size_t labelsz, char *name, size_t namesz)
{
	struct nexthop_target *t;

	if (it->query)
		return NEXTHOP_PENDING;
	while (it->cur < it->ntargets) {
		t = &it->targets[it->cur];
		if (!it->resolved) {
			/* An IP literal needs no lookup. */
			if (netaddr_to_sockaddr(t->host, t->port, ss, sslen) == 0) {
				it->cur++;
				snprintf(name, namesz, "%s", t->host);
				nexthop_label(t, (struct sockaddr *)ss, label, labelsz);
				return NEXTHOP_ADDR;
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
	return NEXTHOP_END;
}
