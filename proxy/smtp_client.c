/*
 * smtp_client: the outbound SMTP role (see smtp_client.h).
 */
#include "smtp_client.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <strings.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/util.h>

#include <openssl/ssl.h>

#include "log.h"
#include "netaddr.h"
#include "sendnow.h"
#include "tls.h"

enum smtp_client_state {
	CLIENT_INIT,
	CLIENT_CONNECTING,
	CLIENT_GREETING,
	CLIENT_EHLO,
	CLIENT_HELO,
	CLIENT_STARTTLS,	/* STARTTLS sent, waiting for 220 */
	CLIENT_HANDSHAKE,	/* TLS handshake under way */
	CLIENT_READY,
	CLIENT_MAIL,
	CLIENT_RCPT,
	CLIENT_DATA,		/* DATA sent, waiting for 354 */
	CLIENT_BODY,		/* payload being written */
	CLIENT_DONE,		/* payload written, waiting for the final reply */
	CLIENT_RSET,
	CLIENT_QUIT,
	CLIENT_SPENT,		/* its last reply reported; unusable, not failed */
	CLIENT_FAILED
};

static const char *const smtp_client_states[] = {
	"init", "connecting", "greeting", "ehlo", "helo", "starttls",
	"handshake", "ready", "mail",
	"rcpt", "data", "body", "done", "rset", "quit", "spent", "failed"
};

struct smtp_client {
	LIST_ENTRY(smtp_client)	 detached;	/* on smtp_client_quitting while in QUIT */
	struct event_base	*base;
	struct bufferevent	*bev;
	struct event		*timer;
	enum smtp_client_state	 state;
	char			 sid[32];
	char			 label[NETADDR_HOST_MAX + 16];
	char			 name[NETADDR_HOST_MAX + 1];
	int			 tls_active;
	struct smtp_client_opts	 opts;
	smtp_client_cb		*cb;
	void			*arg;
	unsigned		 ext;
	struct smtp_reply	 reply;
	struct buf		 payload;
	/* MAIL and RCPT sent in one write (smtp_client_mail_rcpt): */
	int			 rcpt_behind;	/* RCPT's reply follows MAIL's */
	int			 mail_ok;	/* the last MAIL got 2xx */
	struct smtp_reply	 held;		/* MAIL's refusal, reported for RCPT */
};

/* Clients that own themselves after QUIT, so exit can reclaim them. */
static LIST_HEAD(, smtp_client) smtp_client_quitting =
    LIST_HEAD_INITIALIZER(smtp_client_quitting);

static void smtp_client_readcb(struct bufferevent *, void *);
static void smtp_client_writecb(struct bufferevent *, void *);
static void smtp_client_eventcb(struct bufferevent *, short, void *);
static void smtp_client_timeout(evutil_socket_t, short, void *);
static void smtp_client_starttls(struct smtp_client *);
static void smtp_client_progress(struct evbuffer *,
    const struct evbuffer_cb_info *, void *);

static const char *
smtp_client_strstate(enum smtp_client_state s)
{
	return smtp_client_states[s];
}

static void
smtp_client_arm(struct smtp_client *c, unsigned seconds)
{
	struct timeval tv = { (time_t)seconds, 0 };

	evtimer_add(c->timer, &tv);
}

static void
smtp_client_enter_state(struct smtp_client *c, enum smtp_client_state s)
{
	unsigned t = 0;

	log_msg(LOG_DEBUG, c->sid, "client-state", "hop=%s from=%s to=%s",
	    c->label, smtp_client_strstate(c->state), smtp_client_strstate(s));
	c->state = s;
	switch (s) {
	case CLIENT_CONNECTING:	t = c->opts.t_connect; break;
	case CLIENT_GREETING:
	case CLIENT_HANDSHAKE:	t = c->opts.t_greeting; break;
	case CLIENT_STARTTLS:
	case CLIENT_EHLO:
	case CLIENT_HELO:
	case CLIENT_MAIL:
	case CLIENT_RCPT:
	case CLIENT_RSET:
	case CLIENT_QUIT:	t = c->opts.t_reply; break;
	case CLIENT_DATA:	t = c->opts.t_data_init; break;
	case CLIENT_BODY:	t = c->opts.t_data_block; break;
	case CLIENT_DONE:	t = c->opts.t_data_done; break;
	default:		break;
	}
	if (t)
		smtp_client_arm(c, t);
	else
		evtimer_del(c->timer);
}

struct smtp_client *
smtp_client_new(struct event_base *base, const char *sid,
    const struct smtp_client_opts *opts, smtp_client_cb *cb, void *arg)
{
	struct smtp_client *c;

	if ((c = calloc(1, sizeof(*c))) == NULL)
		return NULL;
	c->base = base;
	c->opts = *opts;
	c->cb = cb;
	c->arg = arg;
	snprintf(c->sid, sizeof(c->sid), "%s", sid);
	smtp_reply_init(&c->reply);
	smtp_reply_init(&c->held);
	buf_init(&c->payload);
	if ((c->timer = evtimer_new(base, smtp_client_timeout, c)) == NULL) {
		free(c);
		return NULL;
	}
	return c;
}

void
smtp_client_free(struct smtp_client *c)
{
	if (c == NULL)
		return;
	if (c->state == CLIENT_QUIT)
		LIST_REMOVE(c, detached);
	if (c->bev)
		bufferevent_free(c->bev);
	event_free(c->timer);
	smtp_reply_free(&c->reply);
	smtp_reply_free(&c->held);
	buf_free(&c->payload);
	free(c);
}

/* Trade reply and held; each keeps its buffer, so nothing is copied. */
static void
smtp_client_swap_held(struct smtp_client *c)
{
	struct smtp_reply r = c->reply;

	c->reply = c->held;
	c->held = r;
}

/* MAIL's held refusal becomes the reply to report, in RCPT's place. */
static void
smtp_client_unhold(struct smtp_client *c)
{
	smtp_client_swap_held(c);
	smtp_reply_reset(&c->held);
}

/*
 * Report the reply, but the session is done: the next hop left, or is
 * out of step with us. Not ready, so never reused; QUIT frees it.
 */
static void
smtp_client_spend(struct smtp_client *c)
{
	smtp_client_enter_state(c, CLIENT_SPENT);
	if (c->bev)
		bufferevent_disable(c->bev, EV_READ | EV_WRITE);
	c->cb(c, SMTP_CLIENT_REPLY, &c->reply, NULL, c->arg);
}

/* Report a failure once; the owner frees the client from its callback. */
static void
smtp_client_fail(struct smtp_client *c, const char *why)
{
	enum smtp_client_state was = c->state;

	if (was == CLIENT_FAILED)
		return;
	if (was == CLIENT_QUIT) {	/* detached: nobody to tell */
		smtp_client_free(c);
		return;
	}
	log_msg(LOG_INFO, c->sid, "nexthop-failed", "hop=%s state=%s reason=\"%s\"",
	    c->label, smtp_client_strstate(was), why);
	/* MAIL was refused before this: that refusal is still the answer. */
	if (was == CLIENT_RCPT && c->held.code != 0) {
		smtp_client_unhold(c);
		smtp_client_spend(c);
		return;
	}
	smtp_client_enter_state(c, CLIENT_FAILED);
	if (c->bev)
		bufferevent_disable(c->bev, EV_READ | EV_WRITE);
	c->cb(c, SMTP_CLIENT_FAILED, NULL, why, c->arg);
}

int
smtp_client_connect(struct smtp_client *c, const struct sockaddr *sa,
    socklen_t salen, const char *label, const char *name)
{
	evutil_socket_t fd;
	int saved;

	snprintf(c->label, sizeof(c->label), "%s", label);
	snprintf(c->name, sizeof(c->name), "%s", name ? name : "");
	fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd == -1)
		return -1;
	netaddr_nodelay(fd);
	if (c->opts.source != NULL &&
	    (c->opts.source->sa_family != sa->sa_family ||
	    bind(fd, c->opts.source, c->opts.sourcelen) == -1)) {
		saved = c->opts.source->sa_family != sa->sa_family ?
		    EAFNOSUPPORT : errno;
		close(fd);
		errno = saved;
		return -1;
	}
	c->bev = bufferevent_socket_new(c->base, fd, BEV_OPT_CLOSE_ON_FREE);
	if (c->bev == NULL) {
		close(fd);
		errno = ENOMEM;
		return -1;
	}
	bufferevent_setcb(c->bev, smtp_client_readcb, smtp_client_writecb,
	    smtp_client_eventcb, c);
	evbuffer_add_cb(bufferevent_get_output(c->bev), smtp_client_progress, c);
	/* Bound what a next hop can make us buffer between reads. */
	bufferevent_setwatermark(c->bev, EV_READ, 0, 64 * 1024);
	smtp_client_enter_state(c, CLIENT_CONNECTING);
	if (bufferevent_socket_connect(c->bev, sa, (int)salen) == -1) {
		saved = errno ? errno : ECONNREFUSED;
		bufferevent_free(c->bev);
		c->bev = NULL;
		c->state = CLIENT_INIT;
		evtimer_del(c->timer);
		errno = saved;
		return -1;
	}
	return 0;
}

static void
smtp_client_send(struct smtp_client *c, const char *line, size_t len,
    enum smtp_client_state next)
{
	smtp_reply_reset(&c->reply);
	smtp_client_enter_state(c, next);
	if (sendnow(c->bev, line, len) == -1)
		smtp_client_fail(c, "write failed");
}

static void
smtp_client_ehlo(struct smtp_client *c, int helo)
{
	char line[300];
	int n;

	n = snprintf(line, sizeof(line), "%s %s\r\n", helo ? "HELO" : "EHLO",
	    c->opts.helo_name);
	if (n < 0 || (size_t)n >= sizeof(line)) {
		smtp_client_fail(c, "helo name too long");
		return;
	}
	smtp_client_send(c, line, (size_t)n, helo ? CLIENT_HELO : CLIENT_EHLO);
}

/* Read the extension keywords from an EHLO reply (first line is the name). */
static void
smtp_client_parse_ext(struct smtp_client *c)
{
	static const struct { const char *kw; unsigned bit; } exts[] = {
		{ "SIZE", SMTP_EXT_SIZE },
		{ "8BITMIME", SMTP_EXT_8BITMIME },
		{ "DSN", SMTP_EXT_DSN },
		{ "PIPELINING", SMTP_EXT_PIPELINING },
		{ "ENHANCEDSTATUSCODES", SMTP_EXT_ENHANCED },
		{ "STARTTLS", SMTP_EXT_STARTTLS },
	};
	const char *p = c->reply.text.data, *end = p + c->reply.text.len;
	int first = 1;

	c->ext = 0;
	while (p && p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);

		if (!first) {
			for (size_t i = 0; i < sizeof(exts) / sizeof(exts[0]); i++) {
				size_t kl = strlen(exts[i].kw);

				if (len >= kl && strncasecmp(p, exts[i].kw, kl) == 0 &&
				    (len == kl || p[kl] == ' ' || p[kl] == '='))
					c->ext |= exts[i].bit;
			}
		}
		first = 0;
		p = nl ? nl + 1 : end;
	}
}

static void
smtp_client_report(struct smtp_client *c)
{
	smtp_client_enter_state(c, CLIENT_READY);
	c->cb(c, SMTP_CLIENT_REPLY, &c->reply, NULL, c->arg);
}

/* A complete reply arrived: decide what it means in the current state. */
static void
smtp_client_reply(struct smtp_client *c)
{
	int cls = smtp_reply_class(&c->reply);
	char why[128];

	switch (c->state) {
	case CLIENT_GREETING:
		if (c->reply.code == 220) {
			smtp_client_ehlo(c, 0);
			return;
		}
		snprintf(why, sizeof(why), "greeting %d", c->reply.code);
		smtp_client_fail(c, why);
		return;
	case CLIENT_EHLO:
		if (cls == 2) {
			smtp_client_parse_ext(c);
			if (c->opts.tls != NULL && !c->tls_active) {
				if (!(c->ext & SMTP_EXT_STARTTLS)) {
					smtp_client_fail(c, "tls: next hop does "
					    "not offer STARTTLS");
					return;
				}
				smtp_client_send(c, "STARTTLS\r\n", 10,
				    CLIENT_STARTTLS);
				return;
			}
			smtp_client_enter_state(c, CLIENT_READY);
			c->cb(c, SMTP_CLIENT_READY, &c->reply, NULL, c->arg);
			return;
		}
		if (cls == 5) {		/* an old server: try HELO */
			smtp_client_ehlo(c, 1);
			return;
		}
		snprintf(why, sizeof(why), "ehlo %d", c->reply.code);
		smtp_client_fail(c, why);
		return;
	case CLIENT_STARTTLS:
		if (c->reply.code == 220) {
			smtp_client_starttls(c);
			return;
		}
		snprintf(why, sizeof(why), "tls: STARTTLS refused with %d",
		    c->reply.code);
		smtp_client_fail(c, why);
		return;
	case CLIENT_HELO:
		if (c->opts.tls != NULL) {	/* HELO cannot offer STARTTLS */
			smtp_client_fail(c, "tls: next hop does not speak ESMTP");
			return;
		}
		if (cls == 2) {
			c->ext = 0;
			smtp_client_enter_state(c, CLIENT_READY);
			c->cb(c, SMTP_CLIENT_READY, &c->reply, NULL, c->arg);
			return;
		}
		snprintf(why, sizeof(why), "helo %d", c->reply.code);
		smtp_client_fail(c, why);
		return;
	case CLIENT_RCPT:
		if (c->held.code != 0) {
			/*
			 * MAIL was refused: that refusal is RCPT's answer. A
			 * hop that then takes the RCPT (2xx, 3xx) is out of
			 * step with us: answer, but use it no more.
			 */
			int own = c->reply.code;

			smtp_client_unhold(c);
			if (cls == 2 || cls == 3) {
				log_msg(LOG_WARN, c->sid, "nexthop-failed",
				    "hop=%s state=rcpt reason=\"protocol: %d to "
				    "RCPT after refused MAIL\"", c->label, own);
				smtp_client_spend(c);
			} else
				smtp_client_report(c);
			return;
		}
		/* FALLTHROUGH */
	case CLIENT_MAIL:
	case CLIENT_DONE:
		if (cls == 3) {
			snprintf(why, sizeof(why), "protocol: unexpected %d",
			    c->reply.code);
			smtp_client_fail(c, why);
			return;
		}
		if (c->state == CLIENT_MAIL)
			c->mail_ok = cls == 2;
		smtp_client_report(c);
		return;
	case CLIENT_DATA:
		if (c->reply.code == 354) {
			smtp_reply_reset(&c->reply);
			smtp_client_enter_state(c, CLIENT_BODY);
			switch (sendnow(c->bev, c->payload.data,
			    c->payload.len)) {
			case -1:
				smtp_client_fail(c, "write failed");
				return;
			case 1:	/* all out: no write callback will say so */
				smtp_client_enter_state(c, CLIENT_DONE);
				break;
			}
			buf_free(&c->payload);
			return;
		}
		if (cls == 4 || cls == 5) {
			buf_free(&c->payload);
			smtp_client_report(c);
			return;
		}
		snprintf(why, sizeof(why), "protocol: %d to DATA", c->reply.code);
		smtp_client_fail(c, why);
		return;
	case CLIENT_RSET:
		if (cls == 2) {
			smtp_client_report(c);
			return;
		}
		snprintf(why, sizeof(why), "rset %d", c->reply.code);
		smtp_client_fail(c, why);
		return;
	case CLIENT_QUIT:
		smtp_client_free(c);
		return;
	default:
		/* A reply nobody asked for (or to a body still being sent). */
		snprintf(why, sizeof(why), "protocol: unsolicited %d reply",
		    c->reply.code);
		smtp_client_fail(c, why);
		return;
	}
}

/*
 * MAIL's reply with RCPT's still to come: keep a refusal to report in
 * RCPT's place (a next hop answers that RCPT with a 503, which says
 * nothing about the recipient). Returns 0 once the client failed.
 */
static int
smtp_client_mail_answered(struct smtp_client *c)
{
	char why[64];

	c->rcpt_behind = 0;
	if (smtp_reply_class(&c->reply) == 3) {
		snprintf(why, sizeof(why), "protocol: unexpected %d",
		    c->reply.code);
		smtp_client_fail(c, why);
		return 0;
	}
	c->mail_ok = smtp_reply_class(&c->reply) == 2;
	if (!c->mail_ok)
		smtp_client_swap_held(c);	/* keep the refusal */
	smtp_reply_reset(&c->reply);
	smtp_client_enter_state(c, CLIENT_RCPT);
	return 1;
}

/* 220 to STARTTLS: put TLS under the session, then EHLO again. */
static void
smtp_client_starttls(struct smtp_client *c)
{
	struct bufferevent *tb;
	SSL *ssl;

	if ((ssl = tls_client_ssl(c->opts.tls, c->name)) == NULL) {
		smtp_client_fail(c, "tls: cannot create a session");
		return;
	}
	/* Deferred: a write must never run (and free us from) a callback. */
	tb = bufferevent_openssl_filter_new(c->base, c->bev, ssl,
	    BUFFEREVENT_SSL_CONNECTING, BEV_OPT_CLOSE_ON_FREE |
	    BEV_OPT_DEFER_CALLBACKS);
	if (tb == NULL) {
		SSL_free(ssl);
		smtp_client_fail(c, "tls: cannot create a session");
		return;
	}
	c->bev = tb;
	bufferevent_setcb(c->bev, smtp_client_readcb, smtp_client_writecb,
	    smtp_client_eventcb, c);
	evbuffer_add_cb(bufferevent_get_output(c->bev), smtp_client_progress, c);
	bufferevent_setwatermark(c->bev, EV_READ, 0, 64 * 1024);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
	smtp_reply_reset(&c->reply);
	smtp_client_enter_state(c, CLIENT_HANDSHAKE);
}

static void
smtp_client_readcb(struct bufferevent *bev, void *arg)
{
	struct smtp_client *c = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	struct evbuffer_ptr eol;
	size_t eol_len, len;
	const char *err;
	char *line;

	for (;;) {
		if (c->state == CLIENT_FAILED)
			return;
		eol = evbuffer_search_eol(in, NULL, &eol_len, EVBUFFER_EOL_CRLF);
		if (eol.pos == -1) {
			if (evbuffer_get_length(in) > SMTP_REPLY_LINE_MAX)
				smtp_client_fail(c, "protocol: reply line too long");
			return;
		}
		len = (size_t)eol.pos;
		if (len > SMTP_REPLY_LINE_MAX) {
			smtp_client_fail(c, "protocol: reply line too long");
			return;
		}
		line = (char *)evbuffer_pullup(in, (ev_ssize_t)(len + eol_len));
		if (line == NULL) {
			smtp_client_fail(c, "out of memory");
			return;
		}
		switch (smtp_reply_feed(&c->reply, line, len, &err)) {
		case SMTP_REPLY_MORE:
			evbuffer_drain(in, len + eol_len);
			continue;
		case SMTP_REPLY_ERROR: {
			char why[160];

			snprintf(why, sizeof(why), "protocol: %s", err);
			smtp_client_fail(c, why);
			return;
		}
		case SMTP_REPLY_DONE:
			evbuffer_drain(in, len + eol_len);
			if (c->state == CLIENT_QUIT) {
				smtp_client_free(c);
				return;
			}
			if (c->state == CLIENT_MAIL && c->rcpt_behind) {
				if (!smtp_client_mail_answered(c))
					return;
				continue;
			}
			/*
			 * Each command in flight has exactly one reply (MAIL and
			 * RCPT pipelined are two): anything after the last is an attempt
			 * to answer ahead (or to inject). Bytes arriving later
			 * are caught as "unsolicited". The reply may make the
			 * owner free us, so nothing of c is touched after it.
			 */
			if (evbuffer_get_length(in) > 0) {
				/* After 220 to STARTTLS: plaintext to throw away. */
				if (c->state == CLIENT_STARTTLS &&
				    c->reply.code == 220) {
					log_msg(LOG_WARN, c->sid, "tls-discard",
					    "hop=%s bytes=%zu", c->label,
					    evbuffer_get_length(in));
					evbuffer_drain(in, evbuffer_get_length(in));
				} else {
					smtp_client_fail(c,
					    "protocol: data after reply");
					return;
				}
			}
			smtp_client_reply(c);
			return;
		}
	}
}

/*
 * data_block bounds a stall, not the whole payload: every chunk the
 * kernel (or TLS) takes from the output buffer restarts it, so a large
 * message on a slow but moving link still goes through.
 */
static void
smtp_client_progress(struct evbuffer *b, const struct evbuffer_cb_info *info,
    void *arg)
{
	struct smtp_client *c = arg;

	if (c->state == CLIENT_BODY && info->n_deleted > 0)
		smtp_client_arm(c, c->opts.t_data_block);
}

static void
smtp_client_writecb(struct bufferevent *bev, void *arg)
{
	struct smtp_client *c = arg;

	/* Output drained: the whole payload, terminator included, is out. */
	if (c->state == CLIENT_BODY)
		smtp_client_enter_state(c, CLIENT_DONE);
}

static void
smtp_client_eventcb(struct bufferevent *bev, short what, void *arg)
{
	struct smtp_client *c = arg;
	char why[256];

	if (what & BEV_EVENT_CONNECTED) {
		if (c->state == CLIENT_HANDSHAKE) {
			char desc[256];

			c->tls_active = 1;
			log_msg(LOG_INFO, c->sid, "tls", "side=outbound hop=%s %s",
			    c->label, tls_describe(bufferevent_openssl_get_ssl(
			    c->bev), desc, sizeof(desc)));
			smtp_client_ehlo(c, 0);
			return;
		}
		smtp_client_enter_state(c, CLIENT_GREETING);
		bufferevent_enable(c->bev, EV_READ | EV_WRITE);
		return;
	}
	if (c->state == CLIENT_HANDSHAKE && (what & (BEV_EVENT_ERROR |
	    BEV_EVENT_EOF))) {
		char detail[200];

		/* "tls:" tells the owner it was TLS that failed (454 4.7.0). */
		snprintf(why, sizeof(why), "tls: %s", tls_error(
		    bufferevent_openssl_get_ssl(c->bev),
		    bufferevent_get_openssl_error(c->bev), detail, sizeof(detail)));
		smtp_client_fail(c, why);
		return;
	}
	if (what & BEV_EVENT_EOF) {
		smtp_client_fail(c, c->state == CLIENT_CONNECTING ?
		    "connection refused" : "connection closed by next hop");
		return;
	}
	if (what & BEV_EVENT_ERROR) {
		int e = EVUTIL_SOCKET_ERROR();

		snprintf(why, sizeof(why), "%s",
		    evutil_socket_error_to_string(e));
		smtp_client_fail(c, why);
	}
}

static void
smtp_client_timeout(evutil_socket_t fd, short ev, void *arg)
{
	struct smtp_client *c = arg;
	char why[64];

	snprintf(why, sizeof(why), "timeout in %s",
	    smtp_client_strstate(c->state));
	smtp_client_fail(c, why);
}

static int
smtp_client_check_ready(struct smtp_client *c, const char *what)
{
	if (c->state == CLIENT_READY)
		return 0;
	log_panic("%s in state %s", what, smtp_client_strstate(c->state));
}

void
smtp_client_mail(struct smtp_client *c, const struct smtp_mail_args *m,
    uint64_t size)
{
	char line[SMTP_PATH_MAX + 256];
	int n;

	smtp_client_check_ready(c, "MAIL");
	n = smtp_format_mail(line, sizeof(line), m, c->ext, size);
	if (n < 0) {
		smtp_client_fail(c, "MAIL line too long");
		return;
	}
	smtp_client_send(c, line, (size_t)n, CLIENT_MAIL);
}

void
smtp_client_rcpt(struct smtp_client *c, const struct smtp_rcpt_args *r)
{
	char line[SMTP_PATH_MAX + SMTP_XTEXT_MAX + 128];
	int n;

	smtp_client_check_ready(c, "RCPT");
	n = smtp_format_rcpt(line, sizeof(line), r, c->ext);
	if (n < 0) {
		smtp_client_fail(c, "RCPT line too long");
		return;
	}
	smtp_client_send(c, line, (size_t)n, CLIENT_RCPT);
}

void
smtp_client_mail_rcpt(struct smtp_client *c, const struct smtp_mail_args *m,
    uint64_t size, const struct smtp_rcpt_args *r)
{
	char line[2 * SMTP_PATH_MAX + SMTP_XTEXT_MAX + 384];
	int n, k;

	smtp_client_check_ready(c, "MAIL+RCPT");
	if (!(c->ext & SMTP_EXT_PIPELINING))
		log_panic("MAIL+RCPT to a next hop without PIPELINING");
	n = smtp_format_mail(line, sizeof(line), m, c->ext, size);
	if (n < 0) {
		smtp_client_fail(c, "MAIL line too long");
		return;
	}
	k = smtp_format_rcpt(line + n, sizeof(line) - (size_t)n, r, c->ext);
	if (k < 0) {
		smtp_client_fail(c, "RCPT line too long");
		return;
	}
	smtp_reply_reset(&c->held);
	c->rcpt_behind = 1;
	smtp_client_send(c, line, (size_t)(n + k), CLIENT_MAIL);
}

int
smtp_client_mail_ok(const struct smtp_client *c)
{
	return c->mail_ok;
}

void
smtp_client_data(struct smtp_client *c, struct buf *payload)
{
	smtp_client_check_ready(c, "DATA");
	buf_free(&c->payload);
	c->payload = *payload;
	buf_init(payload);
	smtp_client_send(c, "DATA\r\n", 6, CLIENT_DATA);
}

void
smtp_client_rset(struct smtp_client *c)
{
	smtp_client_check_ready(c, "RSET");
	smtp_client_send(c, "RSET\r\n", 6, CLIENT_RSET);
}

void
smtp_client_quit(struct smtp_client *c)
{
	if (c->state != CLIENT_READY) {
		smtp_client_free(c);
		return;
	}
	LIST_INSERT_HEAD(&smtp_client_quitting, c, detached);
	smtp_client_send(c, "QUIT\r\n", 6, CLIENT_QUIT);
}

void
smtp_client_free_detached(void)
{
	while (!LIST_EMPTY(&smtp_client_quitting))
		smtp_client_free(LIST_FIRST(&smtp_client_quitting));
}

void
smtp_client_set_owner(struct smtp_client *c, const char *sid,
    smtp_client_cb *cb, void *arg)
{
	snprintf(c->sid, sizeof(c->sid), "%s", sid);
	c->cb = cb;
	c->arg = arg;
}

int
smtp_client_tls(const struct smtp_client *c)
{
	return c->tls_active;
}

int
smtp_client_ready(const struct smtp_client *c)
{
	return c->state == CLIENT_READY;
}

unsigned
smtp_client_ext(const struct smtp_client *c)
{
	return c->ext;
}

const char *
smtp_client_label(const struct smtp_client *c)
{
	return c->label;
}
