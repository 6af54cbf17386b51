#include "sim.h"

#include <errno.h>
#include <math.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/buffer.h>

#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "netaddr.h"

int
sim_quote(struct buf *out, const char *s, size_t len)
{
	size_t i;

	if (buf_append(out, "\"", 1) == -1)
		return -1;
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		int r;

		if (c == '"' || c == '\\')
			r = buf_appendf(out, "\\%c", c);
		else if (c == '\n')
			r = buf_append(out, "\\n", 2);
		else if (c < 0x20 || c >= 0x7f)
			r = buf_appendf(out, "\\x%02x", c);
		else
			r = buf_append(out, &s[i], 1);
		if (r == -1)
			return -1;
	}
	return buf_append(out, "\"", 1);
}

int
sim_write_all(int fd, const void *p, size_t len)
{
	const char *c = p;
	ssize_t n;

	while (len > 0) {
		if ((n = write(fd, c, len)) == -1) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		c += n;
		len -= (size_t)n;
	}
	return 0;
}

int
sim_parse_seconds(const char *s, double *out, int zero_ok)
{
	char *end;
	double d;

	errno = 0;
	d = strtod(s, &end);
	if (errno != 0 || end == s || *end != '\0' || !isfinite(d) || d < 0 ||
	    (d == 0 && !zero_ok) || d > 86400)
		return -1;
	*out = d;
	return 0;
}

int
sim_resolve(const char *hostport, int need_port, struct sockaddr_storage *ss,
    socklen_t *sslen, const char **err)
{
	struct hostport hp;
	struct addrinfo hints, *res;
	char port[8];

	size_t n = strlen(hostport);

	/*
	 * netaddr refuses port 0, but a listener wants it: "pick one".
	 * Parse the host alone then (it is still checked).
	 */
	if (!need_port && n > 2 && strcmp(hostport + n - 2, ":0") == 0 &&
	    strchr(hostport, ':') == hostport + n - 2) {
		char host[NETADDR_HOST_MAX + 1];

		if (n - 2 >= sizeof(host)) {
			*err = "address too long";
			return -1;
		}
		memcpy(host, hostport, n - 2);
		host[n - 2] = '\0';
		if (netaddr_parse_hostport(host, &hp, err) == -1)
			return -1;
	} else if (netaddr_parse_hostport(hostport, &hp, err) == -1)
		return -1;
	if (need_port && hp.port == 0) {
		*err = "a port is required (HOST:PORT)";
		return -1;
	}
	if (netaddr_to_sockaddr(hp.host, hp.port, ss, sslen) == 0)
		return 0;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	snprintf(port, sizeof(port), "%u", (unsigned)hp.port);
	if (getaddrinfo(hp.host, port, &hints, &res) != 0 || res == NULL) {
		*err = "cannot resolve host";
		return -1;
	}
	if (res->ai_addrlen > sizeof(*ss)) {
		freeaddrinfo(res);
		*err = "address too long";
		return -1;
	}
	memcpy(ss, res->ai_addr, res->ai_addrlen);
	*sslen = res->ai_addrlen;
	freeaddrinfo(res);
	return 0;
}

double
sim_clock(void)
{
	static struct timespec epoch;
	static int started;
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	if (!started) {
		epoch = now;
		started = 1;
	}
	return (double)(now.tv_sec - epoch.tv_sec) +
	    (double)(now.tv_nsec - epoch.tv_nsec) / 1e9;
}

const char *
sim_date(char *dst, size_t dstsz)
{
	time_t now = time(NULL);
	struct tm tm;

	gmtime_r(&now, &tm);
	if (strftime(dst, dstsz, "%a, %d %b %Y %H:%M:%S +0000", &tm) == 0 &&
	    dstsz > 0)
		dst[0] = '\0';
	return dst;
}

/* ---- TLS under a session ------------------------------------------------- */

struct bufferevent *
sim_tls_start(struct bufferevent *bev, struct ssl_st *ssl, int server)
{
	struct bufferevent *tb;

	tb = bufferevent_openssl_filter_new(bufferevent_get_base(bev), bev, ssl,
	    server ? BUFFEREVENT_SSL_ACCEPTING : BUFFEREVENT_SSL_CONNECTING,
	    BEV_OPT_CLOSE_ON_FREE);
	if (tb == NULL) {
		SSL_free(ssl);
		return NULL;
	}
	bufferevent_openssl_set_allow_dirty_shutdown(tb, 1);
	return tb;
}

struct ssl_st *
sim_tls_ssl(struct bufferevent *bev)
{
	/* A socket bufferevent has no underlying one; only our filter does. */
	if (bev == NULL || bufferevent_get_underlying(bev) == NULL)
		return NULL;
	return bufferevent_openssl_get_ssl(bev);
}

int
sim_flushed(struct bufferevent *bev)
{
	struct bufferevent *u = bufferevent_get_underlying(bev);

	return evbuffer_get_length(bufferevent_get_output(bev)) == 0 &&
	    (u == NULL || evbuffer_get_length(bufferevent_get_output(u)) == 0);
}

void
sim_tls_facts(struct ssl_st *ssl, struct sim_tls_facts *f)
{
	X509 *peer = SSL_get1_peer_certificate(ssl);
	char *p;

	snprintf(f->proto, sizeof(f->proto), "%s", SSL_get_version(ssl));
	snprintf(f->cipher, sizeof(f->cipher), "%s", SSL_get_cipher_name(ssl));
	snprintf(f->peer, sizeof(f->peer), "none");
	if (peer == NULL) {
		snprintf(f->verify, sizeof(f->verify), "none");
		return;
	}
	if (X509_NAME_get_text_by_NID(X509_get_subject_name(peer),
	    NID_commonName, f->peer, sizeof(f->peer)) < 0)
		snprintf(f->peer, sizeof(f->peer), "none");
	/* A certificate's bytes are the peer's: keep them off our lines. */
	for (p = f->peer; *p != '\0'; p++)
		if ((unsigned char)*p <= ' ' || *p == '"' || *p == '=' ||
		    (unsigned char)*p >= 0x7f)
			*p = '_';
	X509_free(peer);
	snprintf(f->verify, sizeof(f->verify), "%s",
	    (SSL_get_verify_mode(ssl) & SSL_VERIFY_PEER) &&
	    SSL_get_verify_result(ssl) == X509_V_OK ? "ok" : "unchecked");
}
