/*
 * notify: notification messages for policies with a notify action. Each
 * notification is its own small job with its own outbound session through
 * the same next hops as the message that triggered it. Jobs start only
 * after that message's transaction has its final reply, so the sender's
 * transaction never waits on them. Delivery is retried a bounded number
 * of times; jobs live in memory only (the incident log is the record).
 */
#ifndef MP_NOTIFY_H
#define MP_NOTIFY_H

#include <stddef.h>
#include <sys/socket.h>

struct config;
struct dns;
struct event_base;

struct notify_request {
	const char *const	*to;		/* recipients */
	size_t			 nto;
	const char		*subject;	/* expanded, one line */
	const char		*body;		/* expanded; LF or CRLF line breaks */
	const char		*queue_id;	/* of the message that triggered it */
};

/* Build the RFC 5322 message (CRLF, not stuffed) into out. */
struct buf;
int	notify_build(struct buf *out, const struct config *,
	    const struct notify_request *, const char *message_id);
/* Queue a notification; delivery starts on the next loop iteration. */
int	notify_submit(struct event_base *, struct config *, struct dns *,
	    const struct sockaddr *peer, const struct notify_request *);
/* Jobs not finished yet. */
unsigned notify_pending(void);
/* Called whenever a job ends (the proxy waits for them when draining). */
void	notify_on_done(void (*)(void));
/* Drop every job (shutdown); each is logged as dropped. */
void	notify_shutdown(void);

#endif
