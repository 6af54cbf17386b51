/*
 * listener: accept loop and connection cap (see listener.h).
 */
#include "listener.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/listener.h>

#include "config.h"
#include "log.h"
#include "netaddr.h"
#include "smtp_server.h"

struct listener {
	struct event_base	*base;
	struct evconnlistener	*lev;
	struct event		*pause;		/* accept errors: try again later */
	struct config		*cfg;
	struct dns		*dns;
};

/* One reply line, then close: best effort on a fresh, non-blocking socket. */
static void
listener_say(evutil_socket_t fd, const char *reply)
{
	char line[320];
	int n;

	n = snprintf(line, sizeof(line), "%s\r\n", reply);
	if (n > 0 && (size_t)n < sizeof(line))
		(void)!write(fd, line, (size_t)n);
	close(fd);
}

static void
listener_accept(struct evconnlistener *lev, evutil_socket_t fd,
    struct sockaddr *sa, int salen, void *arg)
{
	struct listener *l = arg;
	char peer[64];

	/* Behind a trusted balancer the real client is checked later. */
	if (!(l->cfg->proxy_protocol.enabled &&
	    config_cidrs_match(&l->cfg->proxy_protocol.trusted, sa)) &&
	    !config_cidrs_match(&l->cfg->allow_clients, sa)) {
		log_msg(LOG_WARN, NULL, "refused", "client=%s reason=not_allowed",
		    netaddr_str(sa, peer, sizeof(peer)));
		listener_say(fd, "554 5.7.1 Access denied");
		return;
	}

	if (smtp_server_count() >= l->cfg->limits.max_connections) {
		log_msg(LOG_WARN, NULL, "refused", "client=%s reason=max_connections",
		    netaddr_str(sa, peer, sizeof(peer)));
		listener_say(fd, "421 4.7.0 Error: too many connections, "
		    "try again later");
		return;
	}
	netaddr_nodelay(fd);
	if (smtp_server_start(l->base, l->cfg, l->dns, fd, sa,
	    (socklen_t)salen) == -1)
		log_msg(LOG_ERR, NULL, "accept-failed", "reason=nomem");
}

static void
listener_resume(evutil_socket_t fd, short ev, void *arg)
{
	struct listener *l = arg;

	evconnlistener_enable(l->lev);
}

/*
 * EMFILE and friends: the pending connection stays in the backlog and
 * would wake us again at once. Stop accepting for a second (one log line
 * per pause, not one per wake-up), then try again.
 */
static void
listener_error(struct evconnlistener *lev, void *arg)
{
	struct listener *l = arg;
	struct timeval tv = { 1, 0 };
	int e = EVUTIL_SOCKET_ERROR();

	log_msg(LOG_ERR, NULL, "accept-error", "reason=\"%s\" pause=1s",
	    evutil_socket_error_to_string(e));
	evconnlistener_disable(l->lev);
	evtimer_add(l->pause, &tv);
}

int
listener_bind(const struct config *cfg, int *fds, size_t n, char *addr,
    size_t addrlen, char *err, size_t errlen)
{
	struct sockaddr_storage ss;
	socklen_t sslen;
	size_t i;
	int one = 1;

	if (netaddr_to_sockaddr(cfg->listen.host, cfg->listen.port, &ss,
	    &sslen) == -1) {
		snprintf(err, errlen, "listen: %s is not an IP address",
		    cfg->listen.host);
		return -1;
	}
	for (i = 0; i < n; i++) {
		fds[i] = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK |
		    SOCK_CLOEXEC, 0);
		if (fds[i] == -1 ||
		    setsockopt(fds[i], SOL_SOCKET, SO_REUSEADDR, &one,
		    sizeof(one)) == -1 ||
		    (n > 1 && setsockopt(fds[i], SOL_SOCKET, SO_REUSEPORT, &one,
		    sizeof(one)) == -1) ||
		    bind(fds[i], (struct sockaddr *)&ss, sslen) == -1 ||
		    listen(fds[i], 511) == -1) {
			snprintf(err, errlen, "listen on %s:%u: %s",
			    cfg->listen.host, cfg->listen.port, strerror(errno));
			if (fds[i] != -1)
				close(fds[i]);
			while (i > 0)
				close(fds[--i]);
			return -1;
		}
		/* Port 0: the others share the port the first one got. */
		if (i == 0) {
			sslen = sizeof(ss);
			getsockname(fds[0], (struct sockaddr *)&ss, &sslen);
		}
	}
	netaddr_str((struct sockaddr *)&ss, addr, addrlen);
	return 0;
}

struct listener *
listener_new(struct event_base *base, struct config *cfg, struct dns *dns,
    int fd, char *err, size_t errlen)
{
	struct listener *l;

	if ((l = calloc(1, sizeof(*l))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	l->base = base;
	l->dns = dns;
	l->cfg = config_ref(cfg);
	l->lev = evconnlistener_new(base, listener_accept, l,
	    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, -1, fd);
	l->pause = evtimer_new(base, listener_resume, l);
	if (l->lev == NULL || l->pause == NULL) {
		if (l->lev)
			evconnlistener_free(l->lev);
		if (l->pause)
			event_free(l->pause);
		snprintf(err, errlen, "cannot accept: %s", strerror(errno));
		config_unref(l->cfg);
		free(l);
		return NULL;
	}
	evconnlistener_set_error_cb(l->lev, listener_error);
	return l;
}

void
listener_set_config(struct listener *l, struct config *cfg)
{
	struct config *old = l->cfg;

	l->cfg = config_ref(cfg);
	config_unref(old);
}

void
listener_free(struct listener *l)
{
	if (l == NULL)
		return;
	evconnlistener_free(l->lev);
	event_free(l->pause);
	config_unref(l->cfg);
	free(l);
}
