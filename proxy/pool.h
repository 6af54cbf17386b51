/*
 * pool: next-hop sessions kept idle for a moment after their inbound
 * session ended, so that the next inbound session (an MTA that opens a
 * connection per message) reuses one instead of connecting, waiting for
 * a greeting and saying EHLO again. Like Postfix's connection cache, it
 * is short-lived: next_hop.reuse_time seconds at most.
 */
#ifndef MP_POOL_H
#define MP_POOL_H

struct event_base;
struct smtp_client;

/* Park an idle, ready client under key; the pool owns it from now on. */
void			 pool_put(struct event_base *, struct smtp_client *,
			    const char *key, unsigned seconds);
/* An idle client for key (the caller owns it and sets its owner), or NULL. */
struct smtp_client	*pool_get(const char *key);
/* Close everything (exit). */
void			 pool_clear(void);

#endif
