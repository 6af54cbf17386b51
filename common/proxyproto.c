/*
 * proxyproto: PROXY protocol v1 and v2 parser (see proxyproto.h).
 */
#include "proxyproto.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

static const unsigned char proxyproto_sig[12] = {
	0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a
};

static int
proxyproto_port(const char *s, size_t n, unsigned short *out)
{
	unsigned long v = 0;

	if (n == 0 || n > 5 || (n > 1 && s[0] == '0'))
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (unsigned long)(s[i] - '0');
	}
	if (v > 65535)
		return -1;
	*out = (unsigned short)v;
	return 0;
}

static int
proxyproto_addr(int family, const char *s, size_t n, unsigned short port,
    struct sockaddr_storage *ss)
{
	char ip[64];

	if (n == 0 || n >= sizeof(ip))
		return -1;
	memcpy(ip, s, n);
	ip[n] = '\0';
	memset(ss, 0, sizeof(*ss));
	if (family == AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)ss;

		sin->sin_family = AF_INET;
		sin->sin_port = htons(port);
		return inet_pton(AF_INET, ip, &sin->sin_addr) == 1 ? 0 : -1;
	}
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

	sin6->sin6_family = AF_INET6;
	sin6->sin6_port = htons(port);
	return inet_pton(AF_INET6, ip, &sin6->sin6_addr) == 1 ? 0 : -1;
}

/* "PROXY TCP4 1.2.3.4 5.6.7.8 1111 2222\r\n" or "PROXY UNKNOWN ...\r\n". */
static enum proxyproto_status
proxyproto_v1(const unsigned char *p, size_t len, struct proxyproto_result *r,
    const char **err)
{
	const char *s = (const char *)p, *f[6];
	size_t fl[6], nf = 0, i, start, end;
	unsigned short sport, dport;
	int family;

	end = 0;
	for (i = 0; i < len && i < PROXYPROTO_V1_MAX; i++) {
		if (p[i] == '\r') {
			if (i + 1 == len)
				return PROXYPROTO_MORE;
			if (p[i + 1] != '\n')
				goto bad;
			end = i;
			break;
		}
		if (p[i] < 0x20 || p[i] > 0x7e)
			goto bad;
	}
	if (end == 0) {
		if (len >= PROXYPROTO_V1_MAX) {
			*err = "v1 header too long";
			return PROXYPROTO_ERROR;
		}
		return PROXYPROTO_MORE;
	}
	r->used = end + 2;
	/* Fields separated by exactly one space. */
	for (start = 0, i = 0; i <= end; i++) {
		if (i < end && s[i] != ' ')
			continue;
		if (i == start || nf == 6)
			goto bad;
		f[nf] = s + start;
		fl[nf++] = i - start;
		start = i + 1;
	}
	if (nf < 2 || fl[0] != 5 || memcmp(f[0], "PROXY", 5) != 0)
		goto bad;
	if (fl[1] == 7 && memcmp(f[1], "UNKNOWN", 7) == 0) {
		r->local = 1;
		return PROXYPROTO_DONE;
	}
	if (nf != 6 || fl[1] != 4 || memcmp(f[1], "TCP", 3) != 0 ||
	    (f[1][3] != '4' && f[1][3] != '6'))
		goto bad;
	family = f[1][3] == '4' ? AF_INET : AF_INET6;
	if (proxyproto_port(f[4], fl[4], &sport) == -1 ||
	    proxyproto_port(f[5], fl[5], &dport) == -1 ||
	    proxyproto_addr(family, f[2], fl[2], sport, &r->src) == -1 ||
	    proxyproto_addr(family, f[3], fl[3], dport, &r->dst) == -1)
		goto bad;
	return PROXYPROTO_DONE;
bad:
	*err = "malformed v1 header";
	return PROXYPROTO_ERROR;
}

static enum proxyproto_status
proxyproto_v2(const unsigned char *p, size_t len, struct proxyproto_result *r,
    const char **err)
{
	size_t hl;
	unsigned cmd, fam;

	if (len < 16)
		return PROXYPROTO_MORE;
	if ((p[12] & 0xf0) != 0x20) {
		*err = "unsupported version";
		return PROXYPROTO_ERROR;
	}
	cmd = p[12] & 0x0f;
	fam = p[13];
	hl = ((size_t)p[14] << 8) | p[15];
	if (cmd > 1) {
		*err = "unknown v2 command";
		return PROXYPROTO_ERROR;
	}
	if (len < 16 + hl)
		return PROXYPROTO_MORE;
	r->used = 16 + hl;
	if (cmd == 0) {			/* LOCAL: a health check */
		r->local = 1;
		return PROXYPROTO_DONE;
	}
	switch (fam) {
	case 0x11:			/* TCP over IPv4 */
	case 0x12: {			/* UDP over IPv4 */
		struct sockaddr_in *s4 = (struct sockaddr_in *)&r->src;
		struct sockaddr_in *d4 = (struct sockaddr_in *)&r->dst;

		if (hl < 12)
			goto short_;
		memset(&r->src, 0, sizeof(r->src));
		memset(&r->dst, 0, sizeof(r->dst));
		s4->sin_family = d4->sin_family = AF_INET;
		memcpy(&s4->sin_addr, p + 16, 4);
		memcpy(&d4->sin_addr, p + 20, 4);
		memcpy(&s4->sin_port, p + 24, 2);
		memcpy(&d4->sin_port, p + 26, 2);
		return PROXYPROTO_DONE;
	}
	case 0x21:
	case 0x22: {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&r->src;
		struct sockaddr_in6 *d6 = (struct sockaddr_in6 *)&r->dst;

		if (hl < 36)
			goto short_;
		memset(&r->src, 0, sizeof(r->src));
		memset(&r->dst, 0, sizeof(r->dst));
		s6->sin6_family = d6->sin6_family = AF_INET6;
		memcpy(&s6->sin6_addr, p + 16, 16);
		memcpy(&d6->sin6_addr, p + 32, 16);
		memcpy(&s6->sin6_port, p + 48, 2);
		memcpy(&d6->sin6_port, p + 50, 2);
		return PROXYPROTO_DONE;
	}
	case 0x00:			/* UNSPEC: keep the TCP peer */
		r->local = 1;
		return PROXYPROTO_DONE;
	default:
		*err = "unsupported v2 address family";
		return PROXYPROTO_ERROR;
	}
short_:
	*err = "v2 address block too short";
	return PROXYPROTO_ERROR;
}

enum proxyproto_status
proxyproto_parse(const unsigned char *p, size_t len,
    struct proxyproto_result *r, const char **err)
{
	size_t n;

	memset(r, 0, sizeof(*r));
	*err = NULL;
	if (len == 0)
		return PROXYPROTO_MORE;
	/* Decide on every byte already there, so garbage fails at once. */
	n = len < 12 ? len : 12;
	if (memcmp(p, proxyproto_sig, n) == 0)
		return len < 12 ? PROXYPROTO_MORE : proxyproto_v2(p, len, r, err);
	n = len < 6 ? len : 6;
	if (memcmp(p, "PROXY ", n) == 0)
		return len < 6 ? PROXYPROTO_MORE : proxyproto_v1(p, len, r, err);
	*err = "no PROXY protocol header";
	return PROXYPROTO_ERROR;
}
