/*
 * dns: asynchronous name resolution on c-ares, driven by the libevent loop.
 * One struct dns per event loop. Every lookup returns a handle; the caller
 * gets exactly one callback per handle, always from the event loop (never
 * from inside dns_lookup_*), unless it calls dns_cancel() first.
 *
 * A handle is valid from dns_lookup_* until its callback starts, or until
 * dns_cancel(). Callers keep it in their session and set it to NULL at the
 * top of the callback; their destructor calls dns_cancel() when it is not
 * NULL.
 */
#ifndef MP_DNS_H
#define MP_DNS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct event_base;
struct dns;
struct dns_query;

enum dns_status {
	DNS_OK = 0,
	DNS_NXDOMAIN,		/* the name does not exist (or is not a valid name) */
	DNS_NODATA,		/* the name exists, but has no record of that type */
	DNS_TEMPFAIL,		/* timeout, SERVFAIL, REFUSED, bad answer, no memory */
	DNS_NULLMX,		/* RFC 7505: the domain accepts no mail */
	DNS_CANCELLED		/* only from dns_free(), see there */
};

/* Which addresses dns_lookup_addrs() asks for, and in which order. */
enum dns_family {
	DNS_IPV4_FIRST = 0,	/* A and AAAA, IPv4 first (the default) */
	DNS_IPV6_FIRST,		/* A and AAAA, IPv6 first */
	DNS_IPV4_ONLY,		/* A only */
	DNS_IPV6_ONLY		/* AAAA only */
};

/*
 * servers: NULL-terminated list of "1.2.3.4", "1.2.3.4:5353", "::1",
 * "[::1]" or "[::1]:53". With a list, only those servers are asked: no
 * hosts file, no search domains, no resolv.conf. NULL means the system's
 * resolv.conf, hosts file and search list.
 * timeout_ms and tries: per attempt, and attempts per server; 0 keeps the
 * c-ares default. On error returns NULL with a message in errbuf.
 */
struct dns	*dns_new(struct event_base *, const char *const *servers,
		    unsigned timeout_ms, unsigned tries, char *errbuf,
		    size_t errlen);
/*
 * Every outstanding query that was not cancelled gets its callback once,
 * with DNS_CANCELLED, before dns_free() returns; those callbacks may
 * dns_cancel() other queries, and dns_lookup_*() returns NULL in them.
 * Must not be called from inside a dns callback.
 */
void		 dns_free(struct dns *);
void		 dns_set_family(struct dns *, enum dns_family);
/* Queries still held (including cancelled ones c-ares has not let go). */
size_t		 dns_pending(const struct dns *);

/*
 * Addresses of a name, port 0, duplicates removed, in the dns_family
 * order. An IP literal is answered without any query (still through the
 * event loop), whatever the dns_family. n > 0 when status is DNS_OK.
 * The result is valid only during the callback.
 */
struct dns_addrs {
	size_t			 n;
	struct sockaddr_storage	*addrs;
	uint32_t		 ttl;	/* smallest TTL of the records; 0 for literals */
};
typedef void dns_addrs_cb(void *arg, int status, const struct dns_addrs *);
struct dns_query *dns_lookup_addrs(struct dns *, const char *name,
		    dns_addrs_cb *, void *arg);

/*
 * MX records of a domain, sorted by preference (answer order kept among
 * equal preferences; the caller may shuffle those). Targets that are not
 * host names are dropped (DNS_TEMPFAIL if none is left). A lone "." target
 * (any preference) is DNS_NULLMX with n = 0; "." among real targets is
 * dropped. No MX records at all
 * is DNS_NODATA (fall back to A/AAAA, RFC 5321 section 5.1).
 * ttl: the smallest MX TTL for DNS_OK and DNS_NULLMX; for DNS_NODATA and
 * DNS_NXDOMAIN the negative-caching TTL from the SOA (RFC 2308), or 0
 * when the answer had none; 0 otherwise.
 */
#define DNS_MX_HOST_MAX	255
struct dns_mx {
	uint16_t	pref;
	char		host[DNS_MX_HOST_MAX + 1];	/* no trailing dot */
};
typedef void dns_mx_cb(void *arg, int status, const struct dns_mx *,
		    size_t n, uint32_t ttl);
struct dns_query *dns_lookup_mx(struct dns *, const char *domain,
		    dns_mx_cb *, void *arg);

/*
 * dns_lookup_* return NULL only when out of memory or inside dns_free();
 * the callback is then never called.
 */

/*
 * The TTL dns_lookup_mx reports, from a raw answer: the smallest MX TTL,
 * or with negative set the SOA's negative-caching TTL. 0 when none or the
 * message does not parse. Exposed for the fuzz target.
 */
uint32_t	 dns_mx_ttl(const unsigned char *, size_t, int negative);

/* After this the callback is never called. Safe from inside callbacks. */
void		 dns_cancel(struct dns_query *);
const char	*dns_strstatus(int status);

#endif
