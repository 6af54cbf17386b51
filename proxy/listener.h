/*
 * listener: the listening socket. It accepts upstream connections, applies
 * the connection cap, and starts a server session with the configuration
 * current at accept time.
 */
#ifndef MP_LISTENER_H
#define MP_LISTENER_H

#include <stddef.h>

struct config;
struct dns;
struct event_base;
struct listener;

/*
 * Bind n listening sockets to cfg->listen (all on the same port, with
 * SO_REUSEPORT when n > 1, so the kernel spreads connections over worker
 * processes). fds gets them; addr the address actually bound. -1 on error.
 */
int		 listener_bind(const struct config *, int *fds, size_t n,
		    char *addr, size_t addrlen, char *err, size_t errlen);
/* Accept on a socket from listener_bind. */
struct listener	*listener_new(struct event_base *, struct config *, struct dns *,
		    int fd, char *err, size_t errlen);
/* New sessions use cfg from now on; sessions in flight keep theirs. */
void		 listener_set_config(struct listener *, struct config *);
void		 listener_free(struct listener *);	/* stops accepting */

#endif
