/*
 * notify: notification jobs (see notify.h).
 */
#include "notify.h"

#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <time.h>

#include <event2/event.h>

#include "buf.h"
#include "config.h"
#include "log.h"
#include "message.h"
#include "netaddr.h"
#include "nexthop.h"
#include "smtp_addr.h"
#include "smtp_client.h"
#include "smtp_reply.h"

enum notify_state {
	NOTIFY_WAIT,		/* before the first attempt or between retries */
	NOTIFY_OPEN,		/* walking the next hops */
	NOTIFY_MAIL,
	NOTIFY_RCPT,
	NOTIFY_DATA
};

struct notify_job {
	TAILQ_ENTRY(notify_job)	 entry;
	struct event_base	*base;
	struct config		*cfg;
	struct dns		*dns;
	struct sockaddr_storage	 peer;
	char			 id[48];
	char			 from[SMTP_ADDR_MAX + 1];
	char			**to;
	size_t			 nto;
	size_t			 next;		/* next RCPT to send */
	unsigned		 accepted;
	unsigned		 attempt;
	struct buf		 content;	/* RFC 5322 message, CRLF */
	enum notify_state	 state;
	struct smtp_client	*c;
	struct nexthop_iter	*hops;
	struct event		*timer;
};

static TAILQ_HEAD(, notify_job) notify_jobs = TAILQ_HEAD_INITIALIZER(notify_jobs);
static unsigned notify_njobs;
static unsigned long notify_seq;
static void (*notify_done_hook)(void);

static void notify_attempt(evutil_socket_t, short, void *);
static void notify_client_cb(struct smtp_client *, enum smtp_client_event,
    const struct smtp_reply *, const char *, void *);

static void
notify_free(struct notify_job *j)
{
	size_t i;

	TAILQ_REMOVE(&notify_jobs, j, entry);
	notify_njobs--;
	nexthop_iter_free(j->hops);
	smtp_client_free(j->c);
	if (j->timer)
		event_free(j->timer);
	for (i = 0; i < j->nto; i++)
		free(j->to[i]);
	free(j->to);
	buf_free(&j->content);
	config_unref(j->cfg);
	free(j);
	if (notify_done_hook)
		notify_done_hook();
}

/* The envelope sender of notifications. */
static int
notify_sender(const struct config *cfg, char *dst, size_t dstsz)
{
	const char *name = cfg->notify.sender[0] ? cfg->notify.sender :
	    cfg->helo_name;
	size_t need = strlen(name) + (cfg->notify.sender[0] ? 0 : 12);

	/* Refuse rather than cut: a shortened address is someone else's. */
	if (need >= dstsz)
		return -1;
	snprintf(dst, dstsz, "%s%s", cfg->notify.sender[0] ? "" :
	    "mailprevent@", name);
	return 0;
}

static size_t
notify_longest_line(const char *s)
{
	size_t max = 0, cur = 0;

	for (; *s; s++) {
		if (*s == '\r' || *s == '\n')
			cur = 0;
		else if (++cur > max)
			max = cur;
	}
	return max;
}

int
notify_build(struct buf *out, const struct config *cfg,
    const struct notify_request *rq, const char *message_id)
{
	char date[64];
	time_t now = time(NULL);
	struct tm tm;
	const char *p;
	size_t i, col = 0;
	int r = 0, qp;

	gmtime_r(&now, &tm);
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S +0000", &tm);
	r |= buf_appendf(out, "Date: %s\r\n", date);
	{
		char from[SMTP_ADDR_MAX + 1];

		if (notify_sender(cfg, from, sizeof(from)) == -1)
			return -1;
		r |= buf_appendf(out, "From: <%s>\r\n", from);
	}
	r |= buf_appends(out, "To: ");
	for (i = 0; i < rq->nto; i++)
		r |= buf_appendf(out, "%s<%s>", i ? ",\r\n " : "", rq->to[i]);
	r |= buf_appends(out, "\r\nSubject: ");
	r |= message_header_text(out, rq->subject);
	r |= buf_appendf(out, "\r\nMessage-ID: <%s>\r\n", message_id);
	/* 8bit while every line fits RFC 5322's 998; else quoted-printable. */
	qp = notify_longest_line(rq->body) > 998;
	r |= buf_appendf(out, "Auto-Submitted: auto-generated\r\n"
	    "MIME-Version: 1.0\r\n"
	    "Content-Type: text/plain; charset=UTF-8\r\n"
	    "Content-Transfer-Encoding: %s\r\n\r\n",
	    qp ? "quoted-printable" : "8bit");
	/* Body: any line ending becomes CRLF; NUL cannot occur (C string). */
	for (p = rq->body; *p; p++) {
		if (*p == '\r' && p[1] == '\n')
			continue;
		if (*p == '\r' || *p == '\n') {
			r |= buf_append(out, "\r\n", 2);
			col = 0;
		} else if (!qp) {
			r |= buf_append(out, p, 1);
		} else {
			unsigned char c = (unsigned char)*p;
			int last = p[1] == '\0' || p[1] == '\r' || p[1] == '\n';
			char enc[4];
			size_t el = 1;

			enc[0] = *p;
			if (c == '=' || c >= 0x7f || (c < 0x20 && c != '\t') ||
			    ((c == ' ' || c == '\t') && last)) {
				snprintf(enc, sizeof(enc), "=%02X", c);
				el = 3;
			}
			if (col + el > 75) {	/* soft line break */
				r |= buf_append(out, "=\r\n", 3);
				col = 0;
			}
			r |= buf_append(out, enc, el);
			col += el;
		}
	}
	if (out->len < 2 || memcmp(out->data + out->len - 2, "\r\n", 2) != 0)
		r |= buf_append(out, "\r\n", 2);
	return r ? -1 : 0;
}

static void
notify_retry(struct notify_job *j, const char *why)
{
	struct timeval tv;
	unsigned delay;

	nexthop_iter_free(j->hops);
	j->hops = NULL;
	smtp_client_free(j->c);
	j->c = NULL;
	j->state = NOTIFY_WAIT;
	if (j->attempt > j->cfg->notify.retries) {
		log_msg(LOG_ERR, j->id, "notify-failed", "attempts=%u reason=\"%s\"",
		    j->attempt, why);
		notify_free(j);
		return;
	}
	delay = j->cfg->notify.retry_delay << (j->attempt - 1 < 10 ? j->attempt - 1 : 10);
	log_msg(LOG_WARN, j->id, "notify-deferred", "attempt=%u retry_in=%u "
	    "reason=\"%s\"", j->attempt, delay, why);
	tv.tv_sec = delay;
	tv.tv_usec = 0;
	evtimer_add(j->timer, &tv);
}

static void
notify_try_next(struct notify_job *j)
{
	struct smtp_client_opts o;
	struct sockaddr_storage ss, src;
	socklen_t sslen;
	char label[NETADDR_HOST_MAX + 80], name[NETADDR_HOST_MAX + 1];

	/* Like relayed mail; no upstream session to follow: TLS if "always". */
	nexthop_client_opts(j->cfg, j->cfg->tls.outbound == TLS_OUT_ALWAYS, &o,
	    &src);
	for (;;) {
		switch (nexthop_iter_next(j->hops, &ss, &sslen, label,
		    sizeof(label), name, sizeof(name))) {
		case NEXTHOP_PENDING:
			return;
		case NEXTHOP_END:
			notify_retry(j, "no next hop available");
			return;
		case NEXTHOP_ADDR:
			break;
		}
		if ((j->c = smtp_client_new(j->base, j->id, &o,
		    notify_client_cb, j)) == NULL) {
			notify_retry(j, "out of memory");
			return;
		}
		if (smtp_client_connect(j->c, (struct sockaddr *)&ss, sslen,
		    label, name) == 0)
			return;
		smtp_client_free(j->c);
		j->c = NULL;
	}
}

static void
notify_wake(void *arg)
{
	notify_try_next(arg);
}

static void
notify_attempt(evutil_socket_t fd, short ev, void *arg)
{
	struct notify_job *j = arg;

	j->attempt++;
	j->next = 0;
	j->accepted = 0;
	j->state = NOTIFY_OPEN;
	j->hops = nexthop_iter_new(j->cfg, j->id, (struct sockaddr *)&j->peer,
	    j->dns, notify_wake, j);
	if (j->hops == NULL) {
		notify_retry(j, "out of memory");
		return;
	}
	notify_try_next(j);
}

static void
notify_send_rcpt(struct notify_job *j)
{
	struct smtp_rcpt_args r;

	memset(&r, 0, sizeof(r));
	snprintf(r.addr, sizeof(r.addr), "%s", j->to[j->next++]);
	j->state = NOTIFY_RCPT;
	smtp_client_rcpt(j->c, &r);
}

static void
notify_client_cb(struct smtp_client *c, enum smtp_client_event ev,
    const struct smtp_reply *r, const char *why, void *arg)
{
	struct notify_job *j = arg;
	struct smtp_mail_args m;
	struct buf payload = BUF_INIT;

	if (ev == SMTP_CLIENT_FAILED) {
		smtp_client_free(c);
		j->c = NULL;
		if (j->state == NOTIFY_OPEN) {
			notify_try_next(j);
			return;
		}
		notify_retry(j, why);
		return;
	}
	if (ev == SMTP_CLIENT_READY) {
		nexthop_iter_free(j->hops);
		j->hops = NULL;
		memset(&m, 0, sizeof(m));
		memcpy(m.addr, j->from, sizeof(m.addr));
		j->state = NOTIFY_MAIL;
		smtp_client_mail(c, &m, 0);
		return;
	}
	switch (j->state) {
	case NOTIFY_MAIL:
		if (smtp_reply_class(r) != 2)
			goto refused;
		notify_send_rcpt(j);
		return;
	case NOTIFY_RCPT:
		if (smtp_reply_class(r) == 2)
			j->accepted++;
		else {
			char q[SMTP_ADDR_MAX * 4 + 8];

			log_msg(LOG_WARN, j->id, "notify-rcpt-refused",
			    "rcpt=%s reply=%d", log_quote(q, sizeof(q),
			    j->to[j->next - 1], strlen(j->to[j->next - 1])),
			    r->code);
		}
		if (j->next < j->nto) {
			notify_send_rcpt(j);
			return;
		}
		if (j->accepted == 0)
			goto refused;
		if (message_serialize(&payload, j->cfg->pass_header, NULL,
		    j->content.data, j->content.len) == -1) {
			buf_free(&payload);
			notify_retry(j, "out of memory");
			return;
		}
		j->state = NOTIFY_DATA;
		smtp_client_data(c, &payload);
		return;
	case NOTIFY_DATA:
		if (smtp_reply_class(r) != 2)
			goto refused;
		log_msg(LOG_INFO, j->id, "notify-sent", "hop=%s rcpts=%u",
		    smtp_client_label(c), j->accepted);
		smtp_client_quit(c);
		j->c = NULL;
		notify_free(j);
		return;
	default:
		log_panic("reply in state %d", (int)j->state);
	}
refused:
	if (smtp_reply_class(r) == 5) {
		log_msg(LOG_ERR, j->id, "notify-failed", "reply=%d permanent=yes",
		    r->code);
		smtp_client_quit(c);
		j->c = NULL;
		notify_free(j);
		return;
	}
	smtp_client_quit(c);
	j->c = NULL;
	notify_retry(j, "temporary refusal");
}

int
notify_submit(struct event_base *base, struct config *cfg, struct dns *dns,
    const struct sockaddr *peer, const struct notify_request *rq)
{
	struct notify_job *j;
	struct timeval now = { 0, 0 };
	char msgid[400];
	size_t i;

	if (rq->nto == 0)
		return 0;
	/* Bounded: a flood of matching mail must not become a flood of jobs. */
	if (notify_njobs >= cfg->notify.max_pending) {
		log_msg(LOG_ERR, rq->queue_id, "notify-dropped",
		    "reason=max_pending pending=%u", notify_njobs);
		return -1;
	}
	if ((j = calloc(1, sizeof(*j))) == NULL)
		return -1;
	j->base = base;
	j->cfg = config_ref(cfg);
	j->dns = dns;
	memcpy(&j->peer, peer, peer->sa_family == AF_INET6 ?
	    sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in));
	snprintf(j->id, sizeof(j->id), "%.32s.n%lu", rq->queue_id, ++notify_seq);
	buf_init(&j->content);
	if (notify_sender(cfg, j->from, sizeof(j->from)) == -1) {
		config_unref(j->cfg);
		free(j);
		return -1;
	}
	TAILQ_INSERT_TAIL(&notify_jobs, j, entry);
	notify_njobs++;
	j->timer = evtimer_new(base, notify_attempt, j);
	j->to = calloc(rq->nto, sizeof(*j->to));
	if (j->timer == NULL || j->to == NULL)
		goto fail;
	for (i = 0; i < rq->nto; i++) {
		if ((j->to[i] = strdup(rq->to[i])) == NULL)
			goto fail;
		j->nto++;
	}
	snprintf(msgid, sizeof(msgid), "%s@%s", j->id, cfg->helo_name);
	if (notify_build(&j->content, cfg, rq, msgid) == -1)
		goto fail;
	log_msg(LOG_INFO, j->id, "notify-queued", "rcpts=%zu", j->nto);
	evtimer_add(j->timer, &now);
	return 0;
fail:
	notify_free(j);
	return -1;
}

void
notify_on_done(void (*hook)(void))
{
	notify_done_hook = hook;
}

unsigned
notify_pending(void)
{
	return notify_njobs;
}

void
notify_shutdown(void)
{
	struct notify_job *j;

	while ((j = TAILQ_FIRST(&notify_jobs)) != NULL) {
		log_msg(LOG_WARN, j->id, "notify-dropped", "reason=shutdown");
		notify_free(j);
	}
}
