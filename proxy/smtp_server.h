/*
 * smtp_server: the inbound role. One SMTP server session per upstream
 * connection: greeting, commands (from a table), DATA reception through
 * the codec's state machine, limits and per-state timeouts. What goes
 * downstream is decided by transaction.c.
 */
#ifndef MP_SMTP_SERVER_H
#define MP_SMTP_SERVER_H

#include <event2/util.h>
#include <sys/socket.h>

struct config;
struct dns;
struct event_base;

/* Start a session on an accepted socket (takes ownership of fd). */
int		 smtp_server_start(struct event_base *, struct config *,
		    struct dns *, evutil_socket_t fd, const struct sockaddr *,
		    socklen_t);
unsigned	 smtp_server_count(void);	/* sessions alive */
/* Called whenever a session ends (the listener uses it while draining). */
void		 smtp_server_on_close(void (*)(void));
/* Close every session now with 421 (shutdown grace expired). */
void		 smtp_server_close_all(const char *why);

#endif
