/*
 * sender: an SMTP client that sends N messages over M parallel sessions
 * and reports every reply. Messages are shared out among the sessions up
 * front, so a session that cannot connect leaves its share counted under
 * errors instead of quietly handing it to the others.
 *
 * The same file holds sim_send (roles.h): one message over one session,
 * with every reply kept for the caller. Scenarios send with it, and the
 * integrated MTA delivers with it.
 *
 * Both can use STARTTLS, verifying the server against a trust file or
 * not at all. A client throws away whatever the server sent in clear
 * after its 220 to STARTTLS, and says EHLO again over TLS. The hostile
 * variant pipelines "STARTTLS\r\nEHLO injected\r\n" in one write and then
 * checks that the server kept nothing of it: over TLS it sends MAIL before
 * any EHLO, which a server that reset its state must refuse with 503.
 */
#include <sys/socket.h>
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>

#include <openssl/ssl.h>

#include "buf.h"
#include "log.h"
#include "netaddr.h"
#include "sim.h"
#include "smtp_addr.h"
#include "smtp_data.h"
#include "smtp_reply.h"
#include "tls.h"

#define SENDER_SIZE_DEFAULT	1024
#define SENDER_TIMEOUT_DEFAULT	30.0
#define SENDER_DATA_MAX		(256 * 1024 * 1024)
#define SENDER_LINE_WIDTH	76

#define STARTTLS_CMD		"STARTTLS\r\n"
#define STARTTLS_INJECT		"STARTTLS\r\nEHLO injected\r\n"

enum sender_state {
	SENDER_CONNECTING,
	SENDER_GREETING,
	SENDER_EHLO,
	SENDER_HELO,
	SENDER_STARTTLS,	/* waiting for the 220 */
	SENDER_TLS,		/* handshake under way */
	SENDER_PROBE,		/* injection check: MAIL before EHLO over TLS */
	SENDER_MAIL,		/* waiting for the MAIL reply */
	SENDER_RCPT,		/* waiting for RCPT replies */
	SENDER_DATA,		/* waiting for the DATA reply */
	SENDER_DOT,		/* content sent, waiting for the final reply */
	SENDER_RSET,
	SENDER_QUIT,
	SENDER_DONE		/* freed by the outermost callback */
};

enum sender_outcome {
	SENDER_ACCEPTED = 0,
	SENDER_TEMPFAIL,
	SENDER_PERMFAIL,
	SENDER_ERROR,
	SENDER__OUTCOMES
};

struct sender {
	struct event_base	*base;
	struct sockaddr_storage	 ss;
	socklen_t		 sslen;
	const char		*from;		/* without <>; "" = null path */
	const char		**rcpts;
	size_t			 nrcpt;
	unsigned long		 count;
	unsigned long		 nsessions;
	struct buf		 data;		/* --data, stuffed once for all */
	int			 have_data;
	size_t			 size;
	const char		*subject;
	const char		*helo;
	struct timeval		 timeout;
	int			 quiet;
	struct buf		 mail_params;	/* " P1 P2" or "" */
	struct buf		 rcpt_params;
	unsigned long		 next_msg;
	unsigned long		 sent;
	unsigned long		 outcome[SENDER__OUTCOMES];
	unsigned long		 live;

	int			 starttls;	/* --starttls: required */
	int			 inject;	/* --starttls-inject */
	SSL_CTX			*tls_ctx;
	const char		*tls_name;	/* checked with --tls-trust */
	struct hostport		 tls_host;	/* --to's, the default name */
	unsigned long		 ntls;		/* sessions that got TLS up */
};

struct sender_session {
	struct sender		*snd;
	unsigned long		 id;
	char			 sid[24];
	struct bufferevent	*bev;
	enum sender_state	 state;
	unsigned long		 todo;		/* messages without an outcome yet */
	unsigned long		 msg;		/* current message, 0 = none */
	int			 counted;	/* current message has its outcome */
	int			 pipelining;
	int			 mail_ok;
	size_t			 rcpt_replies;
	size_t			 rcpt_ok;
	int			 rcpt_temp;	/* some RCPT got a 4xx */
	enum sender_outcome	 fail;		/* why the transaction failed */
	int			 doomed;	/* 354 with nothing to send */
	int			 tls;		/* TLS is up */
	struct smtp_reply	 reply;
};

static const char *
sender_strstate(enum sender_state st)
{
	static const char *const names[] = {
		"connecting", "greeting", "ehlo", "helo", "starttls", "tls",
		"probe", "mail", "rcpt", "data", "dot", "rset", "quit", "done"
	};

	return (unsigned)st < sizeof(names) / sizeof(names[0]) ? names[st] : "?";
}

/* The command whose reply is awaited in each state, for the report. */
static const char *
sender_cmdname(enum sender_state st)
{
	static const char *const names[] = {
		"CONNECT", "CONNECT", "EHLO", "HELO", "STARTTLS", "TLS",
		"MAIL", "MAIL", "RCPT", "DATA", "DOT", "RSET", "QUIT", "-"
	};

	return (unsigned)st < sizeof(names) / sizeof(names[0]) ? names[st] : "?";
}

static void
sender_enter_state(struct sender_session *s, enum sender_state st)
{
	log_msg(LOG_DEBUG, s->sid, "state", "from=%s to=%s",
	    sender_strstate(s->state), sender_strstate(st));
	s->state = st;
}

static enum sender_outcome
sender_class(int code)
{
	return code / 100 == 2 ? SENDER_ACCEPTED :
	    code / 100 == 4 ? SENDER_TEMPFAIL : SENDER_PERMFAIL;
}

static void
sender_print_reply(struct sender_session *s)
{
	struct buf line = BUF_INIT, text = BUF_INIT;
	struct smtp_reply *r = &s->reply;
	int rc = 0;

	if (s->snd->quiet)
		return;
	if (r->enh[0] != '\0')
		rc = buf_appendf(&text, "%s ", r->enh);
	if (rc == 0)
		rc = buf_append(&text, r->text.data ? r->text.data : "",
		    r->text.len);
	if (rc == 0)
		rc = buf_appendf(&line, "session=%lu msg=%lu cmd=%s code=%d text=",
		    s->id, s->msg, sender_cmdname(s->state), r->code);
	if (rc == 0)
		rc = sim_quote(&line, text.data ? text.data : "", text.len);
	if (rc == 0 && buf_append(&line, "\n", 1) == 0) {
		fwrite(line.data, 1, line.len, stdout);
		fflush(stdout);
	}
	buf_free(&line);
	buf_free(&text);
}

static void
sender_print_error(struct sender_session *s, const char *what)
{
	log_msg(LOG_WARN, s->sid, "error", "what=%s state=%s", what,
	    sender_strstate(s->state));
	if (s->snd->quiet)
		return;
	printf("session=%lu msg=%lu cmd=%s error=%s\n", s->id, s->msg,
	    sender_cmdname(s->state), what);
	fflush(stdout);
}

static void
sender_write(struct sender_session *s, const char *data, size_t len)
{
	if (bufferevent_write(s->bev, data, len) == -1)
		log_fatal("bufferevent_write: out of memory");
}

static void
sender_cmd(struct sender_session *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
sender_cmd(struct sender_session *s, const char *fmt, ...)
{
	struct buf line = BUF_INIT;
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = buf_vappendf(&line, fmt, ap);
	va_end(ap);
	if (r == -1 || buf_append(&line, "\r\n", 2) == -1)
		log_fatal("out of memory");
	sender_write(s, line.data, line.len);
	buf_free(&line);
}

/* Give the current message its outcome (once). */
static void
sender_msg_done(struct sender_session *s, enum sender_outcome o)
{
	if (s->msg == 0 || s->counted)
		return;
	s->counted = 1;
	s->snd->outcome[o]++;
	s->todo--;
}

/* Whatever the session has not finished gets outcome o. */
static void
sender_give_up(struct sender_session *s, enum sender_outcome o)
{
	sender_msg_done(s, o);
	s->snd->outcome[o] += s->todo;
	s->todo = 0;
}

/* The session is over, now. */
static void
sender_abort(struct sender_session *s, enum sender_outcome o)
{
	sender_give_up(s, o);
	sender_enter_state(s, SENDER_DONE);
}

static void
sender_make_message(struct sender_session *s, struct buf *content)
{
	struct sender *snd = s->snd;
	char date[64];
	time_t now = time(NULL);
	struct tm tm;
	size_t i, body = 0;
	unsigned long line = 0;
	int r;

	gmtime_r(&now, &tm);
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S +0000", &tm);
	r = buf_appendf(content, "Date: %s\r\nFrom: %s\r\nTo: ", date,
	    snd->from[0] ? snd->from : "MAILER-DAEMON");
	for (i = 0; i < snd->nrcpt && r == 0; i++)
		r = buf_appendf(content, "%s%s", i ? ", " : "", snd->rcpts[i]);
	if (r == 0 && snd->subject != NULL)
		r = buf_appendf(content, "\r\nSubject: %s", snd->subject);
	else if (r == 0)
		r = buf_appendf(content, "\r\nSubject: mta-sim test message %lu",
		    s->msg);
	if (r == 0)
		r = buf_appendf(content, "\r\nMessage-ID: <mta-sim.%ld.%lu.%lu@%s>"
		    "\r\n\r\n", (long)getpid(), (unsigned long)now, s->msg,
		    snd->helo);
	while (r == 0 && body < snd->size) {
		size_t start = content->len;

		r = buf_appendf(content, "mta-sim message %lu line %06lu ",
		    s->msg, ++line);
		while (r == 0 && content->len - start < SENDER_LINE_WIDTH)
			r = buf_append(content, "x", 1);
		if (r == 0)
			r = buf_append(content, "\r\n", 2);
		body += content->len - start;
	}
	if (r == -1)
		log_fatal("out of memory");
}

static void
sender_send_content(struct sender_session *s)
{
	struct buf content = BUF_INIT, stuffed = BUF_INIT;

	if (s->doomed) {
		/* RFC 2920 §3.1: nothing to deliver, end the data at once. */
		sender_write(s, ".\r\n", 3);
		return;
	}
	if (s->snd->have_data) {
		sender_write(s, s->snd->data.data, s->snd->data.len);
		return;
	}
	sender_make_message(s, &content);
	if (smtp_data_stuff(&stuffed, content.data, content.len) == -1)
		log_fatal("out of memory");
	sender_write(s, stuffed.data, stuffed.len);
	buf_free(&content);
	buf_free(&stuffed);
}

static void
sender_rcpt_cmd(struct sender_session *s, size_t i)
{
	sender_cmd(s, "RCPT TO:<%s>%s", s->snd->rcpts[i],
	    s->snd->rcpt_params.len ? s->snd->rcpt_params.data : "");
}

/* Start the next transaction, or say goodbye. */
static void
sender_next(struct sender_session *s)
{
	struct sender *snd = s->snd;
	size_t i;

	if (s->todo == 0) {
		s->msg = 0;
		sender_cmd(s, "QUIT");
		sender_enter_state(s, SENDER_QUIT);
		return;
	}
	s->msg = ++snd->next_msg;
	snd->sent++;
	s->counted = 0;
	s->mail_ok = 0;
	s->rcpt_replies = s->rcpt_ok = 0;
	s->rcpt_temp = 0;
	s->doomed = 0;
	s->fail = SENDER_ERROR;
	sender_cmd(s, "MAIL FROM:<%s>%s", snd->from,
	    snd->mail_params.len ? snd->mail_params.data : "");
	if (s->pipelining) {
		/* RFC 2920: the whole envelope and DATA in one go. */
		for (i = 0; i < snd->nrcpt; i++)
			sender_rcpt_cmd(s, i);
		sender_cmd(s, "DATA");
	}
	sender_enter_state(s, SENDER_MAIL);
}

/* The transaction failed before the content: count it, clean up, go on. */
static void
sender_txn_failed(struct sender_session *s, enum sender_outcome o)
{
	sender_msg_done(s, o);
	if (s->mail_ok) {
		sender_cmd(s, "RSET");
		sender_enter_state(s, SENDER_RSET);
	} else
		sender_next(s);
}

static int
sender_has_ext(const struct smtp_reply *r, const char *name)
{
	const char *p = r->text.data, *end, *nl;
	size_t n = strlen(name);

	if (p == NULL)
		return 0;
	end = p + r->text.len;
	/* The first line is the server's greeting, not a keyword. */
	while ((nl = memchr(p, '\n', (size_t)(end - p))) != NULL) {
		p = nl + 1;
		if ((size_t)(end - p) >= n && strncasecmp(p, name, n) == 0 &&
		    (p + n == end || p[n] == ' ' || p[n] == '\n'))
			return 1;
	}
	return 0;
}

static void	sender_read_cb(struct bufferevent *, void *);
static void	sender_event_cb(struct bufferevent *, short, void *);

/*
 * 220 to STARTTLS: what the server sent after it is not part of any reply
 * (RFC 3207 4.2), so it goes; then TLS under the session.
 */
static void
sender_tls_begin(struct sender_session *s)
{
	struct sender *snd = s->snd;
	struct evbuffer *in = bufferevent_get_input(s->bev);
	struct bufferevent *tb;
	size_t n = evbuffer_get_length(in);
	SSL *ssl;

	if (n > 0 && snd->inject) {
		/* Most likely the answer to the EHLO we slipped in. */
		sender_print_error(s, "injection-answered-in-clear");
		sender_abort(s, SENDER_ERROR);
		return;
	}
	if (n > 0) {
		log_msg(LOG_WARN, s->sid, "tls-discard", "bytes=%zu", n);
		evbuffer_drain(in, n);
	}
	if ((ssl = tls_client_ssl(snd->tls_ctx, snd->tls_name)) == NULL ||
	    (tb = sim_tls_start(s->bev, ssl, 0)) == NULL)
		log_fatal("cannot start TLS: out of memory");
	s->bev = tb;
	bufferevent_setcb(tb, sender_read_cb, NULL, sender_event_cb, s);
	bufferevent_set_timeouts(tb, &snd->timeout, &snd->timeout);
	bufferevent_enable(tb, EV_READ | EV_WRITE);
	sender_enter_state(s, SENDER_TLS);
}

/* The handshake is done: say so, then EHLO again (or the probe first). */
static void
sender_tls_up(struct sender_session *s)
{
	struct sim_tls_facts f;

	s->tls = 1;
	s->snd->ntls++;
	sim_tls_facts(bufferevent_openssl_get_ssl(s->bev), &f);
	log_msg(LOG_INFO, s->sid, "tls", "proto=%s cipher=%s verify=%s peer=%s",
	    f.proto, f.cipher, f.verify, f.peer);
	if (!s->snd->quiet) {
		printf("session=%lu msg=0 cmd=TLS proto=%s cipher=%s verify=%s "
		    "peer=%s\n", s->id, f.proto, f.cipher, f.verify, f.peer);
		fflush(stdout);
	}
	if (s->snd->inject) {
		sender_cmd(s, "MAIL FROM:<%s>", s->snd->from);
		sender_enter_state(s, SENDER_PROBE);
		return;
	}
	sender_cmd(s, "EHLO %s", s->snd->helo);
	sender_enter_state(s, SENDER_EHLO);
}

static void
sender_on_reply(struct sender_session *s)
{
	struct smtp_reply *r = &s->reply;
	enum sender_outcome cls = sender_class(r->code);

	sender_print_reply(s);
	if (r->code == 421 && s->state != SENDER_QUIT) {
		/* The server is going away: the rest can be tried later. */
		sender_abort(s, SENDER_TEMPFAIL);
		return;
	}

	switch (s->state) {
	case SENDER_GREETING:
		if (cls != SENDER_ACCEPTED) {
			sender_give_up(s, cls);
			sender_cmd(s, "QUIT");
			sender_enter_state(s, SENDER_QUIT);
			break;
		}
		sender_cmd(s, "EHLO %s", s->snd->helo);
		sender_enter_state(s, SENDER_EHLO);
		break;
	case SENDER_EHLO:
		if (cls == SENDER_PERMFAIL) {
			sender_cmd(s, "HELO %s", s->snd->helo);
			sender_enter_state(s, SENDER_HELO);
			break;
		}
		/* FALLTHROUGH */
	case SENDER_HELO:
		if (cls != SENDER_ACCEPTED) {
			sender_give_up(s, cls);
			sender_cmd(s, "QUIT");
			sender_enter_state(s, SENDER_QUIT);
			break;
		}
		if (s->snd->starttls && !s->tls) {
			if (s->state == SENDER_EHLO && sender_has_ext(r, "STARTTLS")) {
				if (s->snd->inject)
					sender_write(s, STARTTLS_INJECT,
					    sizeof(STARTTLS_INJECT) - 1);
				else
					sender_write(s, STARTTLS_CMD,
					    sizeof(STARTTLS_CMD) - 1);
				sender_enter_state(s, SENDER_STARTTLS);
				break;
			}
			sender_print_error(s, "starttls-not-offered");
			sender_give_up(s, SENDER_ERROR);
			sender_cmd(s, "QUIT");
			sender_enter_state(s, SENDER_QUIT);
			break;
		}
		s->pipelining = s->state == SENDER_EHLO &&
		    sender_has_ext(r, "PIPELINING");
		sender_next(s);
		break;
	case SENDER_STARTTLS:
		if (r->code == 220) {
			sender_tls_begin(s);
			break;
		}
		sender_give_up(s, cls == SENDER_ACCEPTED ? SENDER_ERROR : cls);
		sender_cmd(s, "QUIT");
		sender_enter_state(s, SENDER_QUIT);
		break;
	case SENDER_PROBE:
		if (r->code != 503) {
			/* It kept the EHLO from before TLS, or ran it after. */
			sender_print_error(s, "injection-not-discarded");
			sender_abort(s, SENDER_ERROR);
			break;
		}
		sender_cmd(s, "EHLO %s", s->snd->helo);
		sender_enter_state(s, SENDER_EHLO);
		break;
	case SENDER_MAIL:
		s->mail_ok = cls == SENDER_ACCEPTED;
		if (!s->mail_ok)
			s->fail = cls;
		if (s->pipelining)
			sender_enter_state(s, SENDER_RCPT);
		else if (s->mail_ok) {
			sender_rcpt_cmd(s, 0);
			sender_enter_state(s, SENDER_RCPT);
		} else
			sender_txn_failed(s, s->fail);
		break;
	case SENDER_RCPT:
		s->rcpt_replies++;
		if (cls == SENDER_ACCEPTED)
			s->rcpt_ok++;
		else if (cls == SENDER_TEMPFAIL)
			s->rcpt_temp = 1;
		if (s->rcpt_replies < s->snd->nrcpt) {
			if (!s->pipelining)
				sender_rcpt_cmd(s, s->rcpt_replies);
			break;
		}
		if (s->mail_ok && s->rcpt_ok == 0)
			s->fail = s->rcpt_temp ? SENDER_TEMPFAIL : SENDER_PERMFAIL;
		if (s->pipelining)
			sender_enter_state(s, SENDER_DATA);
		else if (s->rcpt_ok > 0) {
			sender_cmd(s, "DATA");
			sender_enter_state(s, SENDER_DATA);
		} else
			sender_txn_failed(s, s->fail);
		break;
	case SENDER_DATA:
		if (r->code == 354) {
			s->doomed = !s->mail_ok || s->rcpt_ok == 0;
			sender_send_content(s);
			sender_enter_state(s, SENDER_DOT);
			break;
		}
		if (s->mail_ok && s->rcpt_ok > 0)
			s->fail = cls == SENDER_ACCEPTED ? SENDER_ERROR : cls;
		sender_txn_failed(s, s->fail);
		break;
	case SENDER_DOT:
		sender_msg_done(s, s->doomed ? s->fail : cls);
		if (s->doomed)
			sender_txn_failed(s, s->fail);
		else
			sender_next(s);
		break;
	case SENDER_RSET:
		sender_next(s);
		break;
	case SENDER_QUIT:
		sender_enter_state(s, SENDER_DONE);
		break;
	case SENDER_CONNECTING:
	case SENDER_TLS:
	case SENDER_DONE:
		log_panic("reply in state %s", sender_strstate(s->state));
	}
}

static void
sender_free(struct sender_session *s)
{
	log_msg(LOG_DEBUG, s->sid, "close", NULL);
	if (s->bev != NULL)
		bufferevent_free(s->bev);
	smtp_reply_free(&s->reply);
	/* The loop ends by itself once the last bufferevent is gone. */
	s->snd->live--;
	free(s);
}

static void
sender_read_cb(struct bufferevent *bev, void *arg)
{
	struct sender_session *s = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	enum smtp_reply_status st;
	const char *err;
	size_t len;
	char *line;

	/* Bytes can come before the connect event is delivered. */
	if (s->state == SENDER_CONNECTING)
		sender_enter_state(s, SENDER_GREETING);
	/* Once TLS goes under, `in` is the filter's to read, not ours. */
	while (s->state != SENDER_DONE && s->state != SENDER_TLS) {
		if ((line = evbuffer_readln(in, &len, EVBUFFER_EOL_CRLF)) == NULL) {
			/* The limit is decided on the buffer, before parsing. */
			if (evbuffer_get_length(in) > SMTP_REPLY_LINE_MAX) {
				sender_print_error(s, "reply-too-long");
				sender_abort(s, SENDER_ERROR);
			}
			break;
		}
		if (len > SMTP_REPLY_LINE_MAX) {
			free(line);
			sender_print_error(s, "protocol");
			sender_abort(s, SENDER_ERROR);
			break;
		}
		st = smtp_reply_feed(&s->reply, line, len, &err);
		free(line);
		if (st == SMTP_REPLY_ERROR) {
			log_msg(LOG_WARN, s->sid, "bad-reply", "why=%s", err);
			sender_print_error(s, "bad-reply");
			sender_abort(s, SENDER_ERROR);
			break;
		}
		if (st == SMTP_REPLY_DONE) {
			sender_on_reply(s);
			smtp_reply_reset(&s->reply);
		}
	}
	if (s->state == SENDER_DONE)
		sender_free(s);
}

static void
sender_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct sender_session *s = arg;

	if ((what & BEV_EVENT_CONNECTED) && s->state == SENDER_TLS) {
		sender_tls_up(s);
		return;
	}
	if (what & BEV_EVENT_CONNECTED) {
		netaddr_nodelay(bufferevent_getfd(bev));
		log_msg(LOG_DEBUG, s->sid, "connected", NULL);
		if (s->state == SENDER_CONNECTING)
			sender_enter_state(s, SENDER_GREETING);
		return;
	}
	if (s->state == SENDER_TLS) {
		struct buf line = BUF_INIT;
		char why[256];

		tls_error(bufferevent_openssl_get_ssl(bev),
		    bufferevent_get_openssl_error(bev), why, sizeof(why));
		if (buf_appends(&line, "tls-failed reason=") == -1 ||
		    sim_quote(&line, why, strlen(why)) == -1 ||
		    buf_cstr(&line) == NULL)
			log_fatal("out of memory");
		sender_print_error(s, line.data);
		buf_free(&line);
		sender_abort(s, SENDER_ERROR);
		sender_free(s);
		return;
	}
	if (s->state == SENDER_QUIT) {
		/* Gone after QUIT: nothing was left to lose. */
		sender_enter_state(s, SENDER_DONE);
	} else {
		sender_print_error(s, (what & BEV_EVENT_TIMEOUT) ? "timeout" :
		    s->state == SENDER_CONNECTING ? "connect-failed" :
		    (what & BEV_EVENT_EOF) ? "eof" : "io");
		sender_abort(s, SENDER_ERROR);
	}
	sender_free(s);
}

static void
sender_start(struct sender *snd, unsigned long id, unsigned long todo)
{
	struct sender_session *s;

	if ((s = calloc(1, sizeof(*s))) == NULL)
		log_fatal("out of memory");
	s->snd = snd;
	s->id = id;
	s->todo = todo;
	s->state = SENDER_CONNECTING;
	snprintf(s->sid, sizeof(s->sid), "s%06lu", id);
	smtp_reply_init(&s->reply);
	snd->live++;

	if ((s->bev = bufferevent_socket_new(snd->base, -1,
	    BEV_OPT_CLOSE_ON_FREE)) == NULL)
		log_fatal("bufferevent_socket_new failed");
	bufferevent_setcb(s->bev, sender_read_cb, NULL, sender_event_cb, s);
	bufferevent_set_timeouts(s->bev, &snd->timeout, &snd->timeout);
	bufferevent_enable(s->bev, EV_READ | EV_WRITE);
	if (bufferevent_socket_connect(s->bev, (struct sockaddr *)&snd->ss,
	    (int)snd->sslen) == -1) {
		sender_print_error(s, "connect-failed");
		sender_abort(s, SENDER_ERROR);
		sender_free(s);
	}
}

/* ---- command line ---------------------------------------------------- */

void
sender_usage(FILE *fp)
{
	fprintf(fp,
	    "usage: mta-sim send --to HOST:PORT --from ADDR --rcpt ADDR [--rcpt ADDR]...\n"
	    "                    [--count N] [--sessions M] [--data FILE | --size BYTES]\n"
	    "                    [--subject S] [--helo NAME] [--timeout SECONDS]\n"
	    "                    [--quiet] [--mail-param P]... [--rcpt-param P]...\n"
	    "                    [--starttls [--tls-trust F [--tls-verify-name NAME]]\n"
	    "                     [--starttls-inject]]\n"
	    "  Sends N messages (default 1) over M sessions (default 1). Prints\n"
	    "  one line per reply, then \"sent=N accepted=A tempfail=T permfail=P\n"
	    "  errors=E\" (and \" tls=K\" with --starttls: sessions over TLS).\n"
	    "  Exit 0 iff every message got a 2xx to its final dot.\n"
	    "  --starttls: use it, or fail the session. --tls-trust: verify the\n"
	    "  server's chain against this PEM bundle and its name (default: the\n"
	    "  host of --to) against the certificate; without it: encrypt only.\n"
	    "  --starttls-inject: pipeline STARTTLS and \"EHLO injected\", then\n"
	    "  check over TLS that MAIL before EHLO gets 503.\n");
}

/* "<a@b>" or "a@b" to "a@b"; no bytes that could break a command line. */
static const char *
sender_opt_addr(char *s)
{
	size_t n = strlen(s);

	if (n >= 2 && s[0] == '<' && s[n - 1] == '>') {
		s[n - 1] = '\0';
		s++;
		n -= 2;
	}
	if (n > SMTP_ADDR_MAX)
		return NULL;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] <= 0x20 || s[i] == 0x7f || s[i] == '<' ||
		    s[i] == '>')
			return NULL;
	return s;
}

static int
sender_opt_param(struct buf *b, const char *p)
{
	if (*p == '\0')
		return -1;
	for (const char *c = p; *c; c++)
		if ((unsigned char)*c < 0x20 || *c == 0x7f)
			return -1;
	if (buf_appendf(b, " %s", p) == -1 || buf_cstr(b) == NULL)
		log_fatal("out of memory");
	return 0;
}

static int
sender_opt_ulong(const char *s, unsigned long min, unsigned long max,
    unsigned long *out)
{
	char *end;
	unsigned long v;

	if (*s < '0' || *s > '9')
		return -1;
	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno != 0 || *end != '\0' || v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

static int
sender_load_data(struct sender *snd, const char *path)
{
	struct buf raw = BUF_INIT;
	char chunk[65536];
	ssize_t n;
	int fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1) {
		fprintf(stderr, "mta-sim send: --data %s: %s\n", path,
		    strerror(errno));
		return -1;
	}
	while ((n = read(fd, chunk, sizeof(chunk))) != 0) {
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 || raw.len + (size_t)n > SENDER_DATA_MAX ||
		    buf_append(&raw, chunk, (size_t)n) == -1) {
			fprintf(stderr, "mta-sim send: --data %s: %s\n", path,
			    n == -1 ? strerror(errno) : "too big");
			close(fd);
			buf_free(&raw);
			return -1;
		}
	}
	close(fd);
	/* smtp_data_stuff turns every bare LF (and CR) into CRLF. */
	if (smtp_data_stuff(&snd->data, raw.data ? raw.data : "", raw.len) == -1)
		log_fatal("out of memory");
	snd->have_data = 1;
	buf_free(&raw);
	return 0;
}

static int
sender_usage_error(const char *what, const char *arg)
{
	if (arg != NULL)
		fprintf(stderr, "mta-sim send: %s '%s'\n", what, arg);
	else
		fprintf(stderr, "mta-sim send: %s\n", what);
	sender_usage(stderr);
	return -1;
}

/* Fill snd from the command line: 0, 1 after --help, -1 on a mistake. */
static int
sender_options(struct sender *snd, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "to", required_argument, NULL, 't' },
		{ "from", required_argument, NULL, 'f' },
		{ "rcpt", required_argument, NULL, 'r' },
		{ "count", required_argument, NULL, 'n' },
		{ "sessions", required_argument, NULL, 'm' },
		{ "data", required_argument, NULL, 'D' },
		{ "size", required_argument, NULL, 'z' },
		{ "subject", required_argument, NULL, 'S' },
		{ "helo", required_argument, NULL, 'H' },
		{ "timeout", required_argument, NULL, 'T' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "mail-param", required_argument, NULL, 'M' },
		{ "rcpt-param", required_argument, NULL, 'R' },
		{ "starttls", no_argument, NULL, 's' },
		{ "tls-trust", required_argument, NULL, 'C' },
		{ "tls-verify-name", required_argument, NULL, 'N' },
		{ "starttls-inject", no_argument, NULL, 'I' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	const char *to = NULL, *data = NULL, *err, *trust = NULL;
	struct hostport hp;
	char why[512];
	unsigned long v;
	double timeout = SENDER_TIMEOUT_DEFAULT;
	int ch, have_size = 0, have_from = 0;

	optind = 1;
	while ((ch = getopt_long(argc, argv, "hq", opts, NULL)) != -1) {
		switch (ch) {
		case 't':
			to = optarg;
			break;
		case 'f':
			if ((snd->from = sender_opt_addr(optarg)) == NULL)
				return sender_usage_error("bad --from", optarg);
			have_from = 1;
			break;
		case 'r': {
			const char *a = sender_opt_addr(optarg), **nv;

			if (a == NULL || *a == '\0')
				return sender_usage_error("bad --rcpt", optarg);
			if ((nv = reallocarray(snd->rcpts, snd->nrcpt + 1,
			    sizeof(*nv))) == NULL)
				log_fatal("out of memory");
			nv[snd->nrcpt++] = a;
			snd->rcpts = nv;
			break;
		}
		case 'n':
			if (sender_opt_ulong(optarg, 1, 10000000, &snd->count) == -1)
				return sender_usage_error("bad --count", optarg);
			break;
		case 'm':
			if (sender_opt_ulong(optarg, 1, 10000, &snd->nsessions) == -1)
				return sender_usage_error("bad --sessions", optarg);
			break;
		case 'D':
			data = optarg;
			break;
		case 'z':
			if (sender_opt_ulong(optarg, 0, SENDER_DATA_MAX, &v) == -1)
				return sender_usage_error("bad --size", optarg);
			snd->size = v;
			have_size = 1;
			break;
		case 'S':
			for (const char *c = optarg; *c; c++)
				if ((unsigned char)*c < 0x20 || *c == 0x7f)
					return sender_usage_error("bad --subject", optarg);
			snd->subject = optarg;
			break;
		case 'H':
			for (const char *c = optarg; *c; c++)
				if ((unsigned char)*c <= 0x20 || *c == 0x7f)
					return sender_usage_error("bad --helo", optarg);
			if (*optarg == '\0')
				return sender_usage_error("bad --helo", optarg);
			snd->helo = optarg;
			break;
		case 'T':
			if (sim_parse_seconds(optarg, &timeout, 0) == -1)
				return sender_usage_error("bad --timeout", optarg);
			break;
		case 'q':
			snd->quiet = 1;
			break;
		case 'M':
			if (sender_opt_param(&snd->mail_params, optarg) == -1)
				return sender_usage_error("bad --mail-param", optarg);
			break;
		case 'R':
			if (sender_opt_param(&snd->rcpt_params, optarg) == -1)
				return sender_usage_error("bad --rcpt-param", optarg);
			break;
		case 's':
			snd->starttls = 1;
			break;
		case 'C':
			trust = optarg;
			break;
		case 'N':
			if (netaddr_parse_hostport(optarg, &hp, &err) == -1 ||
			    hp.port != 0)
				return sender_usage_error("bad --tls-verify-name",
				    optarg);
			snd->tls_name = optarg;
			break;
		case 'I':
			snd->starttls = snd->inject = 1;
			break;
		case 'h':
			sender_usage(stdout);
			return 1;
		default:
			sender_usage(stderr);
			return -1;
		}
	}
	if (optind != argc)
		return sender_usage_error("unexpected argument", argv[optind]);
	if ((trust != NULL || snd->tls_name != NULL) && !snd->starttls)
		return sender_usage_error("--tls-trust and --tls-verify-name "
		    "need --starttls", NULL);
	if (snd->tls_name != NULL && trust == NULL)
		return sender_usage_error("--tls-verify-name needs --tls-trust",
		    NULL);
	if (to == NULL || !have_from || snd->nrcpt == 0)
		return sender_usage_error("--to, --from and --rcpt are required", NULL);
	if (data != NULL && have_size)
		return sender_usage_error("--data and --size exclude each other", NULL);
	if (sim_resolve(to, 1, &snd->ss, &snd->sslen, &err) == -1)
		return sender_usage_error(err, to);
	if (data != NULL && sender_load_data(snd, data) == -1)
		return SIM_EXIT_USAGE;
	if (snd->starttls) {
		if ((snd->tls_ctx = tls_client_ctx(trust, trust != NULL, why,
		    sizeof(why))) == NULL)
			return sender_usage_error(why, NULL);
		/* The name a verified certificate must carry: the host dialled. */
		if (snd->tls_name == NULL &&
		    netaddr_parse_hostport(to, &snd->tls_host, &err) == 0)
			snd->tls_name = snd->tls_host.host;
	}
	snd->timeout.tv_sec = (time_t)timeout;
	snd->timeout.tv_usec = (suseconds_t)((timeout - (double)snd->timeout.tv_sec) *
	    1e6);
	return 0;
}

int
sender_main(int argc, char **argv)
{
	struct sender snd;
	unsigned long i, share, extra;
	int rc;

	memset(&snd, 0, sizeof(snd));
	snd.count = 1;
	snd.nsessions = 1;
	snd.size = SENDER_SIZE_DEFAULT;
	snd.helo = "mta-sim.localhost";
	snd.from = "";
	buf_init(&snd.data);
	buf_init(&snd.mail_params);
	buf_init(&snd.rcpt_params);
	if ((rc = sender_options(&snd, argc, argv)) != 0) {
		rc = rc == 1 ? 0 : SIM_EXIT_USAGE;
		goto out;
	}

	if ((snd.base = event_base_new()) == NULL)
		log_fatal("event_base_new failed");
	if (snd.nsessions > snd.count)
		snd.nsessions = snd.count;
	share = snd.count / snd.nsessions;
	extra = snd.count % snd.nsessions;
	for (i = 0; i < snd.nsessions; i++)
		sender_start(&snd, i + 1, share + (i < extra));
	if (snd.live > 0)
		event_base_dispatch(snd.base);

	printf("sent=%lu accepted=%lu tempfail=%lu permfail=%lu errors=%lu",
	    snd.sent, snd.outcome[SENDER_ACCEPTED], snd.outcome[SENDER_TEMPFAIL],
	    snd.outcome[SENDER_PERMFAIL], snd.outcome[SENDER_ERROR]);
	if (snd.starttls)
		printf(" tls=%lu", snd.ntls);
	printf("\n");
	fflush(stdout);
	rc = snd.outcome[SENDER_ACCEPTED] == snd.count ? 0 : 1;

	event_base_free(snd.base);
out:
	SSL_CTX_free(snd.tls_ctx);
	free(snd.rcpts);
	buf_free(&snd.data);
	buf_free(&snd.mail_params);
	buf_free(&snd.rcpt_params);
	return rc;
}

/* ---- sim_send: one message, every reply kept --------------------------- */

#define SEND_TIMEOUT_DEFAULT	30000	/* ms */

enum send_state {
	SEND_CONNECTING,
	SEND_GREETING,
	SEND_EHLO,
	SEND_HELO,
	SEND_STARTTLS,		/* waiting for the 220 */
	SEND_TLS,		/* handshake under way */
	SEND_PROBE,		/* injection check: MAIL before EHLO over TLS */
	SEND_MAIL,
	SEND_RCPT,
	SEND_DATA,
	SEND_DOT,
	SEND_DONE		/* reported and freed by the outermost callback */
};

struct sim_send {
	struct event_base	*base;
	struct bufferevent	*bev;
	struct event		*timer;		/* the whole session */
	struct event		*gtimer;	/* connect + greeting */
	struct event		*later;		/* reports a failure found in start */
	enum send_state		 state;
	char			 sid[32];
	char			*helo;
	char			*from;
	char		       **rcpts;
	size_t			 nrcpts;
	size_t			 next;		/* next RCPT to answer */
	size_t			 nok;		/* RCPTs accepted */
	struct buf		 data;		/* stuffed content */
	struct smtp_reply	 reply;
	sim_send_cb		*cb;
	void			*arg;

	struct sim_send_result	 res;
	int			*rcpt_codes;
	char		       **rcpt_texts;
	char			*texts[5];	/* greeting, mail, data, final, error */

	enum sim_tls_use	 starttls;
	int			 inject;
	SSL_CTX			*tls_ctx;
	char			*tls_name;
	int			 tls;		/* TLS is up */
	struct sim_tls_facts	 facts;
};

enum { SEND_T_GREETING, SEND_T_MAIL, SEND_T_DATA, SEND_T_FINAL, SEND_T_ERROR };

static unsigned long send_seq;

static const char *
send_strstate(enum send_state st)
{
	static const char *const names[] = {
		"connecting", "greeting", "ehlo", "helo", "starttls", "tls",
		"probe", "mail", "rcpt", "data", "dot", "done"
	};

	return (unsigned)st < sizeof(names) / sizeof(names[0]) ? names[st] : "?";
}

static void
send_enter_state(struct sim_send *s, enum send_state st)
{
	log_msg(LOG_DEBUG, s->sid, "state", "from=%s to=%s",
	    send_strstate(s->state), send_strstate(st));
	s->state = st;
	/* The result names the last command sent (the greeting: none). */
	if (st != SEND_DONE)
		s->res.stage = st == SEND_CONNECTING ? "connect" :
		    send_strstate(st);
}

/* "enh text" of the current reply, newly allocated (NULL on ENOMEM). */
static char *
send_reply_text(const struct smtp_reply *r)
{
	struct buf b = BUF_INIT;

	if ((r->enh[0] != '\0' && buf_appendf(&b, "%s ", r->enh) == -1) ||
	    buf_append(&b, r->text.data ? r->text.data : "", r->text.len) == -1 ||
	    buf_cstr(&b) == NULL) {
		buf_free(&b);
		return NULL;
	}
	return b.data;
}

static void
send_error(struct sim_send *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* The session failed: say why (the first reason wins) and end it. */
static void
send_error(struct sim_send *s, const char *fmt, ...)
{
	struct buf b = BUF_INIT;
	va_list ap;

	if (s->texts[SEND_T_ERROR] == NULL) {
		va_start(ap, fmt);
		if (buf_vappendf(&b, fmt, ap) == 0 && buf_cstr(&b) != NULL)
			s->texts[SEND_T_ERROR] = b.data;
		else
			buf_free(&b);
		va_end(ap);
	}
	log_msg(LOG_INFO, s->sid, "error", "state=%s why=%s",
	    send_strstate(s->state), s->texts[SEND_T_ERROR] ?
	    s->texts[SEND_T_ERROR] : "?");
	send_enter_state(s, SEND_DONE);
}

static void
send_cmd(struct sim_send *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
send_cmd(struct sim_send *s, const char *fmt, ...)
{
	struct buf line = BUF_INIT;
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = buf_vappendf(&line, fmt, ap);
	va_end(ap);
	if (r == -1 || buf_append(&line, "\r\n", 2) == -1 ||
	    bufferevent_write(s->bev, line.data, line.len) == -1)
		send_error(s, "out of memory");
	buf_free(&line);
}

/*
 * The transaction is over, one way or the other: say QUIT and go. The
 * 221 is not awaited (nothing depends on it); QUIT is written straight to
 * the socket so that freeing the bufferevent cannot lose it.
 */
static void
send_finish(struct sim_send *s)
{
	struct bufferevent *u;
	struct evbuffer_iovec v[4];
	struct msghdr mh;
	evutil_socket_t fd;
	int n;

	if (s->bev == NULL || !sim_flushed(s->bev))
		;
	else if ((u = bufferevent_get_underlying(s->bev)) == NULL) {
		if ((fd = bufferevent_getfd(s->bev)) != -1)
			(void)send(fd, "QUIT\r\n", 6, MSG_NOSIGNAL |
			    MSG_DONTWAIT);
	} else if ((fd = bufferevent_getfd(u)) != -1 &&
	    bufferevent_write(s->bev, "QUIT\r\n", 6) == 0) {
		/*
		 * The filter encrypts at once, into the socket's output
		 * buffer; only the bufferevent may drain that (its start is
		 * frozen), so the record is sent from here as it lies there.
		 */
		n = evbuffer_peek(bufferevent_get_output(u), -1, NULL, v, 4);
		if (n > 0 && n <= 4) {
			memset(&mh, 0, sizeof(mh));
			mh.msg_iov = (struct iovec *)v;
			mh.msg_iovlen = (size_t)n;
			(void)sendmsg(fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
		}
	}
	send_enter_state(s, SEND_DONE);
}

static void
send_free(struct sim_send *s)
{
	size_t i;

	if (s->bev != NULL)
		bufferevent_free(s->bev);
	if (s->timer != NULL)
		event_free(s->timer);
	if (s->gtimer != NULL)
		event_free(s->gtimer);
	if (s->later != NULL)
		event_free(s->later);
	smtp_reply_free(&s->reply);
	buf_free(&s->data);
	SSL_CTX_free(s->tls_ctx);
	free(s->tls_name);
	free(s->helo);
	free(s->from);
	for (i = 0; i < s->nrcpts; i++) {
		free(s->rcpts[i]);
		free(s->rcpt_texts[i]);
	}
	free(s->rcpts);
	free(s->rcpt_texts);
	free(s->rcpt_codes);
	for (i = 0; i < sizeof(s->texts) / sizeof(s->texts[0]); i++)
		free(s->texts[i]);
	free(s);
}

/* Hand the result over once, then the session is gone. */
static void
send_report(struct sim_send *s)
{
	struct sim_send_result *r = &s->res;

	r->rcpt = s->rcpt_codes;
	r->nrcpt = s->nrcpts;
	r->rcpt_text = (const char *const *)s->rcpt_texts;
	r->greeting_text = s->texts[SEND_T_GREETING];
	r->mail_text = s->texts[SEND_T_MAIL];
	r->data_text = s->texts[SEND_T_DATA];
	r->final_text = s->texts[SEND_T_FINAL];
	r->error = s->texts[SEND_T_ERROR];
	r->tls = s->tls;
	if (s->tls) {
		r->tls_proto = s->facts.proto;
		r->tls_cipher = s->facts.cipher;
		r->tls_verify = s->facts.verify;
		r->tls_peer = s->facts.peer;
	}
	log_msg(LOG_INFO, s->sid, "result", "stage=%s final=%d tls=%s error=%s",
	    r->stage, r->final, r->tls ? "yes" : "no", r->error ? "yes" : "no");
	if (s->cb != NULL)
		s->cb(s->arg, r);
	send_free(s);
}

static void	send_read_cb(struct bufferevent *, void *);
static void	send_event_cb(struct bufferevent *, short, void *);

/*
 * 220 to STARTTLS: bytes after it are not part of any reply (RFC 3207
 * 4.2) and go; then TLS under the session.
 */
static void
send_tls_begin(struct sim_send *s)
{
	struct evbuffer *in = bufferevent_get_input(s->bev);
	struct bufferevent *tb;
	size_t n = evbuffer_get_length(in);
	SSL *ssl;

	if (n > 0 && s->inject) {
		/* Most likely the answer to the EHLO we slipped in. */
		send_error(s, "injection: %zu bytes in clear after the 220 to "
		    "STARTTLS: the server answered the pipelined EHLO", n);
		return;
	}
	if (n > 0) {
		log_msg(LOG_WARN, s->sid, "tls-discard", "bytes=%zu", n);
		evbuffer_drain(in, n);
	}
	if ((ssl = tls_client_ssl(s->tls_ctx, s->tls_name)) == NULL ||
	    (tb = sim_tls_start(s->bev, ssl, 0)) == NULL) {
		send_error(s, "tls: cannot start a session");
		return;
	}
	s->bev = tb;
	bufferevent_setcb(tb, send_read_cb, NULL, send_event_cb, s);
	bufferevent_enable(tb, EV_READ | EV_WRITE);
	send_enter_state(s, SEND_TLS);
}

/* The handshake is done: EHLO again (the probe first when injecting). */
static void
send_tls_up(struct sim_send *s)
{
	s->tls = 1;
	sim_tls_facts(bufferevent_openssl_get_ssl(s->bev), &s->facts);
	log_msg(LOG_INFO, s->sid, "tls", "proto=%s cipher=%s verify=%s peer=%s",
	    s->facts.proto, s->facts.cipher, s->facts.verify, s->facts.peer);
	if (s->inject) {
		send_cmd(s, "MAIL FROM:<%s>", s->from);
		send_enter_state(s, SEND_PROBE);
		return;
	}
	send_cmd(s, "EHLO %s", s->helo);
	send_enter_state(s, SEND_EHLO);
}

static void
send_on_reply(struct sim_send *s)
{
	struct smtp_reply *r = &s->reply;
	int cls = r->code / 100;
	char *text = send_reply_text(r);

	if (text == NULL) {
		send_error(s, "out of memory");
		return;
	}
	switch (s->state) {
	case SEND_GREETING:
		if (s->gtimer != NULL)
			evtimer_del(s->gtimer);
		s->res.greeting = r->code;
		s->texts[SEND_T_GREETING] = text;
		if (cls != 2) {
			send_finish(s);
			return;
		}
		send_cmd(s, "EHLO %s", s->helo);
		send_enter_state(s, SEND_EHLO);
		return;
	case SEND_EHLO:
	case SEND_HELO:
		if (cls == 5 && s->state == SEND_EHLO) {
			free(text);
			send_cmd(s, "HELO %s", s->helo);
			send_enter_state(s, SEND_HELO);
			return;
		}
		if (cls != 2) {
			send_error(s, "%s refused: %d %s", send_strstate(s->state),
			    r->code, text);
			free(text);
			return;
		}
		free(text);
		if (s->starttls != SIM_TLS_NO && !s->tls) {
			if (s->state == SEND_EHLO && sender_has_ext(r, "STARTTLS")) {
				if (bufferevent_write(s->bev, s->inject ?
				    STARTTLS_INJECT : STARTTLS_CMD, s->inject ?
				    sizeof(STARTTLS_INJECT) - 1 :
				    sizeof(STARTTLS_CMD) - 1) == -1) {
					send_error(s, "out of memory");
					return;
				}
				send_enter_state(s, SEND_STARTTLS);
				return;
			}
			if (s->starttls == SIM_TLS_MUST) {
				send_enter_state(s, SEND_STARTTLS);
				send_error(s, "tls: STARTTLS not offered");
				return;
			}
		}
		send_cmd(s, "MAIL FROM:<%s>", s->from);
		send_enter_state(s, SEND_MAIL);
		return;
	case SEND_STARTTLS:
		if (r->code == 220) {
			free(text);
			send_tls_begin(s);
			return;
		}
		if (s->starttls == SIM_TLS_MUST) {
			send_error(s, "tls: STARTTLS refused: %d %s", r->code, text);
			free(text);
			return;
		}
		free(text);
		send_cmd(s, "MAIL FROM:<%s>", s->from);	/* on in clear */
		send_enter_state(s, SEND_MAIL);
		return;
	case SEND_PROBE:
		if (r->code != 503) {
			send_error(s, "injection: %d %s to MAIL before EHLO over "
			    "TLS: the server kept or ran the pipelined EHLO",
			    r->code, text);
			free(text);
			return;
		}
		free(text);
		send_cmd(s, "EHLO %s", s->helo);
		send_enter_state(s, SEND_EHLO);
		return;
	case SEND_MAIL:
		s->res.mail = r->code;
		s->texts[SEND_T_MAIL] = text;
		if (cls != 2) {
			send_finish(s);
			return;
		}
		send_cmd(s, "RCPT TO:<%s>", s->rcpts[0]);
		send_enter_state(s, SEND_RCPT);
		return;
	case SEND_RCPT:
		s->rcpt_codes[s->next] = r->code;
		s->rcpt_texts[s->next] = text;
		if (cls == 2)
			s->nok++;
		if (++s->next < s->nrcpts) {
			send_cmd(s, "RCPT TO:<%s>", s->rcpts[s->next]);
			return;
		}
		if (s->nok == 0) {
			send_finish(s);
			return;
		}
		send_cmd(s, "DATA");
		send_enter_state(s, SEND_DATA);
		return;
	case SEND_DATA:
		s->res.data = r->code;
		s->texts[SEND_T_DATA] = text;
		if (r->code != 354) {
			send_finish(s);
			return;
		}
		if (bufferevent_write(s->bev, s->data.data, s->data.len) == -1) {
			send_error(s, "out of memory");
			return;
		}
		send_enter_state(s, SEND_DOT);
		return;
	case SEND_DOT:
		s->res.final = r->code;
		s->texts[SEND_T_FINAL] = text;
		send_finish(s);
		return;
	case SEND_CONNECTING:
	case SEND_TLS:
	case SEND_DONE:
		break;
	}
	free(text);
	log_panic("reply in state %s", send_strstate(s->state));
}

static void
send_read_cb(struct bufferevent *bev, void *arg)
{
	struct sim_send *s = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	enum smtp_reply_status st;
	const char *err;
	size_t len;
	char *line;

	if (s->state == SEND_CONNECTING) {
		s->res.connected = 1;
		send_enter_state(s, SEND_GREETING);
	}
	/* Once TLS goes under, `in` is the filter's to read, not ours. */
	while (s->state != SEND_DONE && s->state != SEND_TLS) {
		if ((line = evbuffer_readln(in, &len, EVBUFFER_EOL_CRLF)) == NULL) {
			/* The limit is decided on the buffer, before parsing. */
			if (evbuffer_get_length(in) > SMTP_REPLY_LINE_MAX)
				send_error(s, "reply line too long");
			break;
		}
		if (len > SMTP_REPLY_LINE_MAX) {
			free(line);
			send_error(s, "reply line too long");
			break;
		}
		st = smtp_reply_feed(&s->reply, line, len, &err);
		free(line);
		if (st == SMTP_REPLY_ERROR) {
			send_error(s, "bad reply: %s", err);
			break;
		}
		if (st == SMTP_REPLY_DONE) {
			send_on_reply(s);
			smtp_reply_reset(&s->reply);
		}
	}
	if (s->state == SEND_DONE)
		send_report(s);
}

static void
send_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct sim_send *s = arg;
	char why[256];

	if ((what & BEV_EVENT_CONNECTED) && s->state == SEND_TLS) {
		send_tls_up(s);
		if (s->state == SEND_DONE)
			send_report(s);
		return;
	}
	if (s->state == SEND_TLS) {
		send_error(s, "tls: %s", tls_error(bufferevent_openssl_get_ssl(bev),
		    bufferevent_get_openssl_error(bev), why, sizeof(why)));
		send_report(s);
		return;
	}
	if (what & BEV_EVENT_CONNECTED) {
		netaddr_nodelay(bufferevent_getfd(bev));
		s->res.connected = 1;
		if (s->state == SEND_CONNECTING)
			send_enter_state(s, SEND_GREETING);
		return;
	}
	if (s->state == SEND_CONNECTING)
		send_error(s, "connect: %s",
		    evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
	else if (what & BEV_EVENT_EOF)
		send_error(s, "connection closed by peer");
	else
		send_error(s, "i/o error: %s",
		    evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
	send_report(s);
}

static void
send_timer_cb(evutil_socket_t fd, short ev, void *arg)
{
	struct sim_send *s = arg;

	send_error(s, s->state == SEND_CONNECTING ? "connect timed out" :
	    "timed out waiting for the %s reply", s->state == SEND_GREETING ?
	    "greeting" : send_strstate(s->state));
	send_report(s);
}

static void
send_later_cb(evutil_socket_t fd, short ev, void *arg)
{
	send_report(arg);
}

static void
send_arm(struct event *ev, unsigned ms)
{
	struct timeval tv;

	tv.tv_sec = ms / 1000;
	tv.tv_usec = (suseconds_t)(ms % 1000) * 1000;
	evtimer_add(ev, &tv);
}

static int
send_addr_ok(const char *a)
{
	for (; *a != '\0'; a++)
		if ((unsigned char)*a <= 0x20 || *a == 0x7f || *a == '<' ||
		    *a == '>')
			return 0;
	return 1;
}

/* The TLS options: a client context, and the name a verified server shows. */
static int
send_copy_tls(struct sim_send *s, const struct sim_send_opts *o)
{
	struct hostport hp;
	const char *e, *name = o->tls_verify_name;
	char why[512];

	s->starttls = o->starttls;
	s->inject = o->starttls_inject;
	if (s->inject)
		s->starttls = SIM_TLS_MUST;
	if (s->starttls == SIM_TLS_NO)
		return 0;
	if (s->starttls != SIM_TLS_MAY && s->starttls != SIM_TLS_MUST) {
		send_error(s, "bad starttls value %d", (int)s->starttls);
		return -1;
	}
	if (o->tls_ctx != NULL) {
		SSL_CTX_up_ref(o->tls_ctx);
		s->tls_ctx = o->tls_ctx;
	} else if ((s->tls_ctx = tls_client_ctx(o->tls_trust,
	    o->tls_trust != NULL, why, sizeof(why))) == NULL) {
		send_error(s, "tls: %s", why);
		return -1;
	}
	if (name == NULL && o->to != NULL &&
	    netaddr_parse_hostport(o->to, &hp, &e) == 0)
		name = hp.host;
	if (name != NULL && (s->tls_name = strdup(name)) == NULL) {
		send_error(s, "out of memory");
		return -1;
	}
	return 0;
}

/* Copy what the session needs; -1 with a reason in the result on a bad option. */
static int
send_copy_opts(struct sim_send *s, const struct sim_send_opts *o)
{
	size_t i;

	s->nrcpts = o->nrcpts;
	if ((s->rcpts = calloc(o->nrcpts + 1, sizeof(*s->rcpts))) == NULL ||
	    (s->rcpt_texts = calloc(o->nrcpts + 1, sizeof(*s->rcpt_texts))) == NULL ||
	    (s->rcpt_codes = calloc(o->nrcpts + 1, sizeof(*s->rcpt_codes))) == NULL ||
	    (s->helo = strdup(o->helo ? o->helo : "mta-sim.localhost")) == NULL ||
	    (s->from = strdup(o->from ? o->from : "")) == NULL) {
		s->nrcpts = 0;
		send_error(s, "out of memory");
		return -1;
	}
	for (i = 0; i < o->nrcpts; i++)
		if ((s->rcpts[i] = strdup(o->rcpts[i] ? o->rcpts[i] : "")) == NULL) {
			send_error(s, "out of memory");
			return -1;
		}
	if (o->nrcpts == 0) {
		send_error(s, "no recipients");
		return -1;
	}
	if (!send_addr_ok(s->from) || strlen(s->from) > SMTP_ADDR_MAX) {
		send_error(s, "bad sender address");
		return -1;
	}
	for (i = 0; i < o->nrcpts; i++)
		if (s->rcpts[i][0] == '\0' || !send_addr_ok(s->rcpts[i]) ||
		    strlen(s->rcpts[i]) > SMTP_ADDR_MAX) {
			send_error(s, "bad recipient address");
			return -1;
		}
	if (s->helo[0] == '\0' || !send_addr_ok(s->helo)) {
		send_error(s, "bad helo name");
		return -1;
	}
	if (smtp_data_stuff(&s->data, o->content ? o->content : "",
	    o->content ? o->len : 0) == -1) {
		send_error(s, "out of memory");
		return -1;
	}
	return send_copy_tls(s, o);
}

/* A socket bound to the source address, for the peer to see (or -1 and why). */
static evutil_socket_t
send_socket(struct sim_send *s, const char *source,
    const struct sockaddr_storage *to)
{
	struct sockaddr_storage ss;
	socklen_t sslen;
	evutil_socket_t fd;

	if (netaddr_to_sockaddr(source, 0, &ss, &sslen) == -1) {
		send_error(s, "bad source address %s", source);
		return -1;
	}
	if (ss.ss_family != to->ss_family) {
		send_error(s, "source %s and destination differ in family",
		    source);
		return -1;
	}
	if ((fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, 0)) == -1) {
		send_error(s, "socket: %s", strerror(errno));
		return -1;
	}
	if (bind(fd, (struct sockaddr *)&ss, sslen) == -1) {
		send_error(s, "bind %s: %s", source, strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

struct sim_send *
sim_send_start(struct event_base *base, const struct sim_send_opts *o,
    sim_send_cb *cb, void *arg)
{
	struct sim_send *s;
	struct sockaddr_storage to;
	socklen_t tolen = sizeof(to);
	const char *err;
	evutil_socket_t fd = -1;
	unsigned ms;

	if ((s = calloc(1, sizeof(*s))) == NULL)
		return NULL;
	s->base = base;
	s->cb = cb;
	s->arg = arg;
	s->state = SEND_CONNECTING;
	s->res.stage = "connect";
	snprintf(s->sid, sizeof(s->sid), "send.%06lu", ++send_seq);
	smtp_reply_init(&s->reply);
	buf_init(&s->data);
	if ((s->later = evtimer_new(base, send_later_cb, s)) == NULL ||
	    (s->timer = evtimer_new(base, send_timer_cb, s)) == NULL ||
	    (s->gtimer = evtimer_new(base, send_timer_cb, s)) == NULL) {
		send_free(s);
		return NULL;
	}
	if (send_copy_opts(s, o) == -1)
		goto later;
	if (o->to == NULL || sim_resolve(o->to, 1, &to, &tolen, &err) == -1) {
		send_error(s, "bad address %s: %s", o->to ? o->to : "(none)",
		    o->to ? err : "missing");
		goto later;
	}
	if (o->source != NULL && (fd = send_socket(s, o->source, &to)) == -1)
		goto later;
	if ((s->bev = bufferevent_socket_new(base, fd,
	    BEV_OPT_CLOSE_ON_FREE)) == NULL) {
		if (fd != -1)
			close(fd);
		send_error(s, "out of memory");
		goto later;
	}
	bufferevent_setcb(s->bev, send_read_cb, NULL, send_event_cb, s);
	bufferevent_enable(s->bev, EV_READ | EV_WRITE);
	ms = o->timeout_ms ? o->timeout_ms : SEND_TIMEOUT_DEFAULT;
	send_arm(s->timer, ms);
	if (o->greeting_timeout_ms > 0 && o->greeting_timeout_ms < ms)
		send_arm(s->gtimer, o->greeting_timeout_ms);
	log_msg(LOG_DEBUG, s->sid, "connect", "to=%s source=%s", o->to,
	    o->source ? o->source : "-");
	if (bufferevent_socket_connect(s->bev, (struct sockaddr *)&to,
	    (int)tolen) == -1) {
		send_error(s, "connect: %s", strerror(errno));
		goto later;
	}
	return s;
later:
	/* The callback always comes from the loop, never from in here. */
	if (s->bev != NULL) {
		bufferevent_free(s->bev);
		s->bev = NULL;
	}
	evtimer_del(s->timer);
	evtimer_del(s->gtimer);
	send_arm(s->later, 0);
	return s;
}

void
sim_send_cancel(struct sim_send *s)
{
	if (s != NULL)
		send_free(s);
}
