/* netaddr: "host", "host:port", "[v6]:port" and socket address helpers. */
#ifndef MP_NETADDR_H
#define MP_NETADDR_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define NETADDR_HOST_MAX	255

struct hostport {
	char		host[NETADDR_HOST_MAX + 1];	/* name or IP literal, no brackets */
	uint16_t	port;				/* 0 = not given */
};

/*
 * Parse "host", "host:port", "[v6]", "[v6]:port", or a bare IPv6 literal.
 * Host names must be valid DNS names (letters, digits, '-', '.'; labels of
 * 1-63 octets). Returns 0, or -1 with *err set to a static message.
 */
int	netaddr_parse_hostport(const char *s, struct hostport *, const char **err);

/* Fill ss from an IP literal and port; -1 if host is not an IP literal. */
int	netaddr_to_sockaddr(const char *ip, uint16_t port,
	    struct sockaddr_storage *ss, socklen_t *sslen);

/* "1.2.3.4:25" or "[::1]:25" into dst. */
const char *netaddr_str(const struct sockaddr *, char *dst, size_t dstsz);
/* Just the IP, no port. */
const char *netaddr_ip(const struct sockaddr *, char *dst, size_t dstsz);
uint16_t	netaddr_port(const struct sockaddr *);
/* An address block: "10.0.0.0/8", "2001:db8::/32", or one address. */
struct netaddr_cidr {
	int		family;		/* AF_INET or AF_INET6 */
	unsigned char	addr[16];
	unsigned	prefix;		/* bits */
};

/* Returns 0, or -1 with *err set to a static message. */
int	netaddr_parse_cidr(const char *s, struct netaddr_cidr *, const char **err);
/* Does the address (IPv4-mapped IPv6 counts as IPv4) fall in the block? */
int	netaddr_cidr_match(const struct netaddr_cidr *, const struct sockaddr *);

/*
 * Turn off Nagle on a TCP socket. SMTP is request/response: without this a
 * small reply waits for the peer's delayed ACK (about 40 ms per command).
 */
void		netaddr_nodelay(int fd);

#endif
