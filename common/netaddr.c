/*
 * netaddr: host[:port] strings from configuration and the printing of
 * socket addresses for logs. IP literals go through inet_pton, never
 * through the resolver.
 */
#include "netaddr.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NETADDR_LABEL_MAX	63

static int
netaddr_alnum(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9');
}

/*
 * A DNS host name: labels of letters, digits and inner hyphens, 1-63
 * octets each. An all-digit last label is refused so that something like
 * "300.1.1.1" is never taken for a name.
 */
static int
netaddr_name_valid(const char *s, size_t n)
{
	size_t i, start = 0, l;
	int digits = 1;

	if (n == 0 || n > NETADDR_HOST_MAX)
		return 0;
	for (i = 0; i <= n; i++) {
		if (i < n && s[i] != '.') {
			if (!netaddr_alnum(s[i]) && s[i] != '-')
				return 0;
			if (s[i] < '0' || s[i] > '9')
				digits = 0;
			continue;
		}
		l = i - start;
		if (l == 0 || l > NETADDR_LABEL_MAX || s[start] == '-' ||
		    s[i - 1] == '-')
			return 0;
		if (i < n)
			digits = 1;
		start = i + 1;
	}
	return !digits;
}

/* Copy s[0..n) into a NUL-terminated buffer of size sz; -1 if it won't fit. */
static int
netaddr_copy(char *dst, size_t sz, const char *s, size_t n)
{
	if (n >= sz || memchr(s, '\0', n) != NULL)
		return -1;
	memcpy(dst, s, n);
	dst[n] = '\0';
	return 0;
}

static int
netaddr_is_ip(const char *s, int af)
{
	unsigned char bin[sizeof(struct in6_addr)];

	return inet_pton(af, s, bin) == 1;
}

static int
netaddr_port_parse(const char *s, size_t n, uint16_t *port)
{
	unsigned long v = 0;
	size_t i;

	if (n == 0 || n > 5)
		return -1;
	for (i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (unsigned long)(s[i] - '0');
	}
	if (v == 0 || v > 65535)
		return -1;
	*port = (uint16_t)v;
	return 0;
}

int
netaddr_parse_hostport(const char *s, struct hostport *hp, const char **err)
{
	const char *colon, *host, *close;
	size_t len, hl;

	hp->host[0] = '\0';
	hp->port = 0;
	if (s == NULL || (len = strlen(s)) == 0) {
		*err = "empty address";
		return -1;
	}
	if (len > NETADDR_HOST_MAX + 8) {
		*err = "address too long";
		return -1;
	}

	if (s[0] == '[') {
		if ((close = strchr(s, ']')) == NULL) {
			*err = "missing ']'";
			return -1;
		}
		host = s + 1;
		hl = (size_t)(close - host);
		colon = close[1] == ':' ? close + 1 : NULL;
		if (close[1] != '\0' && colon == NULL) {
			*err = "junk after ']'";
			return -1;
		}
		if (netaddr_copy(hp->host, sizeof(hp->host), host, hl) == -1 ||
		    (!netaddr_is_ip(hp->host, AF_INET6) &&
		    !netaddr_is_ip(hp->host, AF_INET))) {
			*err = "invalid IP literal in brackets";
			return -1;
		}
	} else {
		colon = strchr(s, ':');
		if (colon != NULL && strchr(colon + 1, ':') != NULL) {
			/* two or more colons: a bare IPv6 literal, no port */
			if (!netaddr_is_ip(s, AF_INET6)) {
				*err = "invalid IPv6 address";
				return -1;
			}
			if (netaddr_copy(hp->host, sizeof(hp->host), s,
			    len) == -1) {
				*err = "address too long";
				return -1;
			}
			return 0;
		}
		hl = colon ? (size_t)(colon - s) : len;
		if (netaddr_copy(hp->host, sizeof(hp->host), s, hl) == -1) {
			*err = "host name too long";
			return -1;
		}
		if (!netaddr_is_ip(hp->host, AF_INET) &&
		    !netaddr_name_valid(hp->host, hl)) {
			hp->host[0] = '\0';
			*err = "invalid host name";
			return -1;
		}
	}
	if (colon != NULL && netaddr_port_parse(colon + 1, strlen(colon + 1),
	    &hp->port) == -1) {
		hp->host[0] = '\0';
		*err = "invalid port";
		return -1;
	}
	return 0;
}

int
netaddr_to_sockaddr(const char *ip, uint16_t port, struct sockaddr_storage *ss,
    socklen_t *sslen)
{
	struct sockaddr_in *sin = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

	memset(ss, 0, sizeof(*ss));
	if (inet_pton(AF_INET, ip, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons(port);
		*sslen = sizeof(*sin);
		return 0;
	}
	if (inet_pton(AF_INET6, ip, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(port);
		*sslen = sizeof(*sin6);
		return 0;
	}
	memset(ss, 0, sizeof(*ss));
	return -1;
}

const char *
netaddr_ip(const struct sockaddr *sa, char *dst, size_t dstsz)
{
	const void *a = NULL;

	if (dstsz == 0)
		return dst;
	if (sa != NULL && sa->sa_family == AF_INET)
		a = &((const struct sockaddr_in *)(const void *)sa)->sin_addr;
	else if (sa != NULL && sa->sa_family == AF_INET6)
		a = &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr;
	if (a == NULL || dstsz > (socklen_t)-1 ||
	    inet_ntop(sa->sa_family, a, dst, (socklen_t)dstsz) == NULL)
		snprintf(dst, dstsz, "?");
	return dst;
}

uint16_t
netaddr_port(const struct sockaddr *sa)
{
	if (sa != NULL && sa->sa_family == AF_INET)
		return ntohs(((const struct sockaddr_in *)(const void *)sa)->sin_port);
	if (sa != NULL && sa->sa_family == AF_INET6)
		return ntohs(((const struct sockaddr_in6 *)(const void *)sa)->sin6_port);
	return 0;
}

const char *
netaddr_str(const struct sockaddr *sa, char *dst, size_t dstsz)
{
	char ip[INET6_ADDRSTRLEN];
	int r;

	if (dstsz == 0)
		return dst;
	netaddr_ip(sa, ip, sizeof(ip));
	if (ip[0] == '?')
		r = snprintf(dst, dstsz, "?");
	else if (sa->sa_family == AF_INET6)
		r = snprintf(dst, dstsz, "[%s]:%u", ip, netaddr_port(sa));
	else
		r = snprintf(dst, dstsz, "%s:%u", ip, netaddr_port(sa));
	if (r < 0 || (size_t)r >= dstsz)
		snprintf(dst, dstsz, "?");	/* never a misleading prefix */
	return dst;
}

void
netaddr_nodelay(int fd)
{
	int one = 1;

	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

int
netaddr_parse_cidr(const char *s, struct netaddr_cidr *c, const char **err)
{
	char ip[64];
	const char *slash = strchr(s, '/');
	size_t n = slash ? (size_t)(slash - s) : strlen(s);
	unsigned long bits;
	char *end;

	memset(c, 0, sizeof(*c));
	if (n == 0 || n >= sizeof(ip)) {
		*err = "not an address block";
		return -1;
	}
	memcpy(ip, s, n);
	ip[n] = '\0';
	if (inet_pton(AF_INET, ip, c->addr) == 1)
		c->family = AF_INET;
	else if (inet_pton(AF_INET6, ip, c->addr) == 1)
		c->family = AF_INET6;
	else {
		*err = "not an IP address";
		return -1;
	}
	bits = c->family == AF_INET ? 32 : 128;
	if (slash != NULL) {
		if (slash[1] < '0' || slash[1] > '9') {
			*err = "bad prefix length";
			return -1;
		}
		bits = strtoul(slash + 1, &end, 10);
		if (*end != '\0' || bits > (c->family == AF_INET ? 32u : 128u)) {
			*err = "bad prefix length";
			return -1;
		}
	}
	c->prefix = (unsigned)bits;
	return 0;
}

int
netaddr_cidr_match(const struct netaddr_cidr *c, const struct sockaddr *sa)
{
	static const unsigned char v4mapped[12] =
	    { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
	const unsigned char *a;
	unsigned full, rest;
	int family = sa->sa_family;

	if (family == AF_INET)
		a = (const unsigned char *)&((const struct sockaddr_in *)
		    (const void *)sa)->sin_addr;
	else if (family == AF_INET6) {
		a = ((const struct sockaddr_in6 *)(const void *)sa)->
		    sin6_addr.s6_addr;
		if (c->family == AF_INET && memcmp(a, v4mapped, 12) == 0) {
			a += 12;
			family = AF_INET;
		}
	} else
		return 0;
	if (family != c->family)
		return 0;
	full = c->prefix / 8;
	rest = c->prefix % 8;
	if (memcmp(a, c->addr, full) != 0)
		return 0;
	if (rest == 0)
		return 1;
	return ((a[full] ^ c->addr[full]) & (0xff << (8 - rest))) == 0;
}
