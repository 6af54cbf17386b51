/*
 * nexthop: which addresses to try, in which order, for one outbound
 * session. Forward mode walks next_hop.hosts in order, or with mx_lookup
 * the MX hosts of next_hop.domains by preference (names resolved
 * asynchronously, each address tried in turn); reflect mode has a single
 * hop: the connecting MTA's own address at resubmit_port.
 */
#ifndef MP_NEXTHOP_H
#define MP_NEXTHOP_H

#include <sys/socket.h>

struct config;
struct dns;
struct smtp_client_opts;
struct sockaddr_storage;
struct nexthop_iter;

enum nexthop_status {
	NEXTHOP_ADDR,		/* *ss and label are filled in */
	NEXTHOP_PENDING,	/* resolving: wake() will be called, then ask again */
	NEXTHOP_END		/* nothing left to try */
};

typedef void nexthop_wake_cb(void *arg);

struct nexthop_iter *nexthop_iter_new(const struct config *, const char *sid,
	    const struct sockaddr *peer, struct dns *, nexthop_wake_cb *, void *arg);
/* name: the host as configured (a name or an IP literal), for TLS checks. */
enum nexthop_status nexthop_iter_next(struct nexthop_iter *,
	    struct sockaddr_storage *, socklen_t *, char *label, size_t labelsz,
	    char *name, size_t namesz);
/* Once the walk has ended: why no hop took the message. */
enum nexthop_outcome {
	NEXTHOP_UNREACHABLE,	/* hops were found, none accepted: 4xx */
	NEXTHOP_DNS_TEMPFAIL,	/* a lookup failed for now: 4xx, never 5xx */
	NEXTHOP_NO_MAIL		/* every domain has a null MX (RFC 7505): 5xx */
};
enum nexthop_outcome nexthop_iter_outcome(const struct nexthop_iter *);
/*
 * How to talk to a next hop under cfg: HELO name, source address (src is
 * its storage), timeouts, and TLS when tls is set (outbound STARTTLS,
 * verified). Relayed mail and notifications both use this.
 */
void		 nexthop_client_opts(const struct config *, int tls,
		    struct smtp_client_opts *, struct sockaddr_storage *src);

/* Forget cached MX answers (tests; a reload keeps them). */
void		 nexthop_cache_clear(void);

/* The last failure to resolve, for the log and the reply ("" if none). */
const char	*nexthop_iter_error(const struct nexthop_iter *);
void		 nexthop_iter_free(struct nexthop_iter *);

#endif
