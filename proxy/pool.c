/*
 * pool: idle next-hop sessions for reuse (see pool.h).
 */
#include "pool.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include <event2/event.h>

#include "log.h"
#include "smtp_client.h"

#define POOL_MAX	64		/* idle sessions kept per process */

struct pool_entry {
	TAILQ_ENTRY(pool_entry)	 entry;
	struct smtp_client	*c;
	struct event		*timer;
	char			 key[160];
};

static TAILQ_HEAD(, pool_entry) pool_entries = TAILQ_HEAD_INITIALIZER(pool_entries);
static unsigned pool_n;

static void
pool_remove(struct pool_entry *e)
{
	TAILQ_REMOVE(&pool_entries, e, entry);
	pool_n--;
	event_free(e->timer);
	free(e);
}

/* A parked session failed (the next hop closed it, or said something). */
static void
pool_client_cb(struct smtp_client *c, enum smtp_client_event ev,
    const struct smtp_reply *r, const char *why, void *arg)
{
	struct pool_entry *e = arg;

	pool_remove(e);
	smtp_client_free(c);
}

static void
pool_expire(evutil_socket_t fd, short ev, void *arg)
{
	struct pool_entry *e = arg;
	struct smtp_client *c = e->c;

	pool_remove(e);
	smtp_client_quit(c);		/* frees itself */
}

void
pool_put(struct event_base *base, struct smtp_client *c, const char *key,
    unsigned seconds)
{
	struct timeval tv = { (time_t)seconds, 0 };
	struct pool_entry *e;

	if (seconds == 0 || pool_n >= POOL_MAX || strlen(key) >= sizeof(e->key) ||
	    (e = calloc(1, sizeof(*e))) == NULL) {
		smtp_client_quit(c);
		return;
	}
	if ((e->timer = evtimer_new(base, pool_expire, e)) == NULL) {
		free(e);
		smtp_client_quit(c);
		return;
	}
	e->c = c;
	memcpy(e->key, key, strlen(key) + 1);
	smtp_client_set_owner(c, "pool", pool_client_cb, e);
	TAILQ_INSERT_HEAD(&pool_entries, e, entry);
	pool_n++;
	evtimer_add(e->timer, &tv);
}

struct smtp_client *
pool_get(const char *key)
{
	struct pool_entry *e;
	struct smtp_client *c;

	TAILQ_FOREACH(e, &pool_entries, entry)
		if (strcmp(e->key, key) == 0 && smtp_client_ready(e->c)) {
			c = e->c;
			pool_remove(e);
			return c;
		}
	return NULL;
}

void
pool_clear(void)
{
	struct pool_entry *e;

	while ((e = TAILQ_FIRST(&pool_entries)) != NULL) {
		struct smtp_client *c = e->c;

		pool_remove(e);
		smtp_client_free(c);
	}
}
