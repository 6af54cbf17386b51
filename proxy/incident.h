/*
 * incident: one JSON line per message that matched any policy, appended
 * to the incident log. Each record is a single write() on an O_APPEND
 * descriptor, so records from several processes never interleave. The
 * matched content itself is never written: at most a masked sample.
 */
#ifndef MP_INCIDENT_H
#define MP_INCIDENT_H

#include <stddef.h>

#include "buf.h"

struct verdict;

struct incident {
	const char		 *queue_id;
	const char		 *message_id;	/* "" if none */
	const char		 *sender;
	const char *const	 *recipients;	/* the original recipients */
	size_t			  nrecipients;
	const char		 *client_ip;
	const char		 *helo;
	const struct verdict	 *verdict;
	const char		 *action;	/* what was done: block, redirect, modify, monitor */
	int			  trial;	/* trial mode: nothing but monitoring was done */
	const char		 *would;	/* trial mode: the action not taken, or NULL */
	const char		 *redirect_to;	/* or NULL */
	int			  reply;	/* the final reply code given upstream */
};

/* Render one record (with trailing newline) into out. */
int	incident_format(struct buf *out, const struct incident *, double now);
/* Append one record to path (opened per call: survives log rotation). */
int	incident_write(const char *path, const struct incident *);

#endif
