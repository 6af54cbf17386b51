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

struct listener	*listener_new(struct event_base *, struct config *, struct dns *,
		    char *err, size_t errlen);
/* New sessions use cfg from now on; sessions in flight keep theirs. */
void		 listener_set_config(struct listener *, struct config *);
void		 listener_free(struct listener *);	/* stops accepting */

#endif
