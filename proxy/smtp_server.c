/*
 * smtp_server: the inbound SMTP role (see smtp_server.h).
 *
 * A session handles one command at a time. A command that needs the next
 * hop (MAIL, RCPT, end of DATA, RSET inside a transaction) marks the
 * session busy; pipelined input waits in the buffer (bounded by the read
 * watermark) until the transaction's reply arrives, so replies always go
 * out in order. Completions never free the session directly: they write
 * the reply and schedule the resume event, and the session is freed only
 * from its own callbacks.
 */
#include "smtp_server.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/queue.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <openssl/ssl.h>

#include "config.h"
#include "log.h"
#include "netaddr.h"
#include "proxyproto.h"
#include "sendnow.h"
#include "smtp_addr.h"
#include "smtp_cmd.h"
#include "smtp_data.h"
#include "smtp_reply.h"
#include "tls.h"
#include "transaction.h"

enum smtp_server_state {
	SRV_PROXY,		/* waiting for a balancer's PROXY header */
	SRV_CONNECTED,		/* greeted, no HELO/EHLO yet */
	SRV_HELO,		/* between transactions */
	SRV_MAIL,		/* MAIL accepted */
	SRV_RCPT,		/* at least one RCPT accepted */
	SRV_BODY,		/* receiving message content */
	SRV_CLOSING		/* flushing the last reply */
};

static const char *const smtp_server_states[] = {
	"proxy", "connected", "helo", "mail", "rcpt", "body", "closing"
};

/* What a busy session is waiting for. */
enum smtp_server_pending {
	PEND_NONE,
	PEND_MAIL,
	PEND_RCPT,
	PEND_DATA,	/* the next hop's verdict on the message */
	PEND_RESET,	/* RSET, or a refused message: relay the reply */
	PEND_HELO,	/* implicit reset by HELO/EHLO, then greet */
	PEND_EHLO
};

#define SF_BUSY		0x01
#define SF_ESMTP	0x02
#define SF_SKIPLINE	0x04	/* discarding the rest of an over-long line */
#define SF_TLS		0x08	/* STARTTLS done (or under way) */
#define SF_HANDSHAKE	0x10	/* TLS handshake under way: no commands */

#define SRV_OUTPUT_MAX	(64 * 1024)	/* stop reading commands past this */
#define SRV_INPUT_MAX	(256 * 1024)	/* read watermark */
#define SRV_CLOSE_GRACE	10		/* seconds to flush a last reply */
#define SRV_LINGER	2		/* seconds to wait for the client's EOF */

struct smtp_session {
	TAILQ_ENTRY(smtp_session) entry;
	char			 sid[24];
	struct event_base	*base;
	struct config		*cfg;
	struct dns		*dns;
	struct bufferevent	*bev;
	struct event		*timer;
	struct event		*resume;
	struct event		*linger;	/* closing: draining the client */
	struct sockaddr_storage	 peer;
	char			 peerstr[64];
	enum smtp_server_state	 state;
	enum smtp_server_pending pending;
	unsigned		 flags;
	unsigned		 errors;
	unsigned		 ncmds;
	unsigned		 nmsgs;
	char			 helo[256];
	struct txn		*txn;
	struct smtp_data_rx	 rx;
	struct timespec		 t_body;		/* DATA began */
	struct timespec		 t_read;		/* DATA bytes last arrived */
	uint64_t		 held;		/* this session's share of smtp_inflight */
	int			 starved;	/* the in-flight budget ran out in DATA */
	const char		*close_reason;
};

struct smtp_server_cmd {
	enum smtp_verb	 verb;
	unsigned	 states;	/* bitmask of states it is allowed in */
	const char	*badseq;	/* reply text when it is not */
	void		(*proceed)(struct smtp_session *, const struct smtp_cmd *);
};

static TAILQ_HEAD(, smtp_session) smtp_sessions =
    TAILQ_HEAD_INITIALIZER(smtp_sessions);
/* Message bytes held by every session of this process (limits.max_inflight). */
static uint64_t smtp_inflight;
static unsigned smtp_nsessions;
static void (*smtp_close_hook)(void);
static uint64_t smtp_sid_next;

static void smtp_server_readcb(struct bufferevent *, void *);
static void smtp_server_writecb(struct bufferevent *, void *);
static void smtp_server_eventcb(struct bufferevent *, short, void *);
static void smtp_server_timeout(evutil_socket_t, short, void *);
static void smtp_server_resume(evutil_socket_t, short, void *);
static void smtp_server_process(struct smtp_session *);
static void smtp_server_free(struct smtp_session *);
static void smtp_server_txn_reply(void *, int, const char *, const char *);
static void smtp_server_release(struct smtp_session *);

static void smtp_server_helo(struct smtp_session *, const struct smtp_cmd *);
static void smtp_server_mail(struct smtp_session *, const struct smtp_cmd *);
static void smtp_server_rcpt(struct smtp_session *, const struct smtp_cmd *);
static void smtp_server_data(struct smtp_session *, const struct smtp_cmd *);
static void smtp_server_rset(struct smtp_session *, const struct smtp_cmd *);
static void smtp_server_noop(struct smtp_session *, const struct smtp_cmd *);
static void smtp_server_quit(struct smtp_session *, const struct smtp_cmd *);
static void smtp_server_vrfy(struct smtp_session *, const struct smtp_cmd *);
static void smtp_server_help(struct smtp_session *, const struct smtp_cmd *);
static void smtp_server_notimpl(struct smtp_session *, const struct smtp_cmd *);
static void smtp_server_starttls(struct smtp_session *, const struct smtp_cmd *);

#define S(x)		(1u << (x))
#define S_ANY		(S(SRV_CONNECTED) | S(SRV_HELO) | S(SRV_MAIL) | S(SRV_RCPT))

static const struct smtp_server_cmd smtp_server_cmds[] = {
	{ SMTP_CMD_HELO, S_ANY, NULL, smtp_server_helo },
	{ SMTP_CMD_EHLO, S_ANY, NULL, smtp_server_helo },
	{ SMTP_CMD_MAIL, S(SRV_HELO),
	  "5.5.1 Error: send HELO/EHLO first, one MAIL per transaction",
	  smtp_server_mail },
	{ SMTP_CMD_RCPT, S(SRV_MAIL) | S(SRV_RCPT),
	  "5.5.1 Error: need MAIL command", smtp_server_rcpt },
	{ SMTP_CMD_DATA, S(SRV_MAIL) | S(SRV_RCPT),
	  "5.5.1 Error: need RCPT command", smtp_server_data },
	{ SMTP_CMD_RSET, S_ANY, NULL, smtp_server_rset },
	{ SMTP_CMD_NOOP, S_ANY, NULL, smtp_server_noop },
	{ SMTP_CMD_QUIT, S_ANY, NULL, smtp_server_quit },
	{ SMTP_CMD_VRFY, S_ANY, NULL, smtp_server_vrfy },
	{ SMTP_CMD_HELP, S_ANY, NULL, smtp_server_help },
	{ SMTP_CMD_STARTTLS, S(SRV_CONNECTED) | S(SRV_HELO),
	  "5.5.1 Error: MAIL transaction in progress", smtp_server_starttls },
	/* Known but not offered: never relayed, never half-supported. */
	{ SMTP_CMD_EXPN, S_ANY, NULL, smtp_server_notimpl },
	{ SMTP_CMD_BDAT, S_ANY, NULL, smtp_server_notimpl },
	{ SMTP_CMD_AUTH, S_ANY, NULL, smtp_server_notimpl },
	{ SMTP_CMD_XCLIENT, S_ANY, NULL, smtp_server_notimpl },
	{ SMTP_CMD_XFORWARD, S_ANY, NULL, smtp_server_notimpl },
	{ SMTP_CMD_ETRN, S_ANY, NULL, smtp_server_notimpl },
};

static const char *
smtp_server_strstate(enum smtp_server_state st)
{
	return smtp_server_states[st];
}

static void
smtp_server_enter_state(struct smtp_session *s, enum smtp_server_state st)
{
	if (s->state == st)
		return;
	log_msg(LOG_DEBUG, s->sid, "state", "from=%s to=%s",
	    smtp_server_strstate(s->state), smtp_server_strstate(st));
	s->state = st;
}

static void
smtp_server_arm(struct smtp_session *s, unsigned seconds)
{
	struct timeval tv = { (time_t)seconds, 0 };

	evtimer_add(s->timer, &tv);
}

/* Write one reply; 4xx/5xx count towards the session's error limit. */
static void
smtp_server_reply(struct smtp_session *s, int code, const char *enh,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* counted: the reply is the proxy's own verdict on the client's doing. */
static void
smtp_server_write_reply(struct smtp_session *s, int code, const char *enh,
    const char *text, int counted)
{
	static const char fallback[] = "451 4.3.0 Internal error\r\n";
	struct buf out = BUF_INIT;

	if (smtp_reply_format(&out, code, enh, text) == 0)
		sendnow(s->bev, out.data, out.len);
	else	/* never leave the client waiting for a reply */
		sendnow(s->bev, fallback, sizeof(fallback) - 1);
	buf_free(&out);
	log_msg(code >= 400 ? LOG_INFO : LOG_DEBUG, s->sid, "reply",
	    "code=%d", code);
	if (counted && code >= 400 && code != 421)
		s->errors++;
}

static void
smtp_server_vreply(struct smtp_session *s, int code, const char *enh,
    const char *text)
{
	smtp_server_write_reply(s, code, enh, text, 1);
}

static void
smtp_server_reply(struct smtp_session *s, int code, const char *enh,
    const char *fmt, ...)
{
	char text[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	smtp_server_vreply(s, code, enh, text);
}

/* Everything written has left, through TLS too when it is on. */
static int
smtp_server_flushed(struct smtp_session *s)
{
	struct bufferevent *u = bufferevent_get_underlying(s->bev);

	return evbuffer_get_length(bufferevent_get_output(s->bev)) == 0 &&
	    (u == NULL || evbuffer_get_length(bufferevent_get_output(u)) == 0);
}

/* Stop reading, flush what was written, then free (from a callback). */
static void
smtp_server_close(struct smtp_session *s, const char *reason)
{
	if (s->state == SRV_CLOSING)
		return;
	s->close_reason = reason;
	smtp_server_enter_state(s, SRV_CLOSING);
	bufferevent_disable(s->bev, EV_READ);
	txn_free(s->txn);
	s->txn = NULL;
	smtp_server_arm(s, SRV_CLOSE_GRACE);
	if (evbuffer_get_length(bufferevent_get_output(s->bev)) == 0)
		event_active(s->resume, EV_TIMEOUT, 0);
}

/* Lingering: throw away what the client still sends, free on its EOF. */
static void
smtp_server_drain(evutil_socket_t fd, short ev, void *arg)
{
	struct smtp_session *s = arg;
	char junk[16384];
	ssize_t n = -1;
	int i;

	/* a few reads per wake-up, so a fast sender cannot hog the loop */
	for (i = 0; i < 8; i++)
		if ((n = recv(fd, junk, sizeof(junk), MSG_DONTWAIT)) <= 0)
			break;
	if (n == 0 || (n == -1 && errno != EAGAIN && errno != EWOULDBLOCK &&
	    errno != EINTR))
		smtp_server_free(s);
}

/*
 * The last reply is out. Closing now with client input unread, or
 * arriving later, makes the kernel send a RST, and a RST can destroy
 * that reply (a 421 after a flood, say) before the client reads it.
 * Half-close instead, discard what still comes (straight from the
 * socket, no buffering), and free on the client's EOF or after
 * SRV_LINGER. Every close but a clean QUIT lingers. Returns 1 while
 * lingering. Not under TLS: the raw socket is not ours to shut down.
 */
static int
smtp_server_linger(struct smtp_session *s)
{
	evutil_socket_t fd = bufferevent_getfd(s->bev);
	struct evbuffer *in = bufferevent_get_input(s->bev);
	int unread = 0;

	if (s->linger != NULL)
		return 1;
	if (bufferevent_get_underlying(s->bev) != NULL || fd == -1)
		return 0;
	/* After QUIT the client sends nothing more, unless it already did. */
	if (s->close_reason != NULL && strcmp(s->close_reason, "quit") == 0 &&
	    evbuffer_get_length(in) == 0 &&
	    (ioctl(fd, FIONREAD, &unread) == -1 || unread <= 0))
		return 0;
	if (shutdown(fd, SHUT_WR) == -1 ||
	    (s->linger = event_new(s->base, fd, EV_READ | EV_PERSIST,
	    smtp_server_drain, s)) == NULL)
		return 0;
	bufferevent_disable(s->bev, EV_READ);
	evbuffer_drain(in, evbuffer_get_length(in));
	event_add(s->linger, NULL);
	smtp_server_arm(s, SRV_LINGER);
	return 1;
}

static void
smtp_server_free(struct smtp_session *s)
{
	log_msg(LOG_INFO, s->sid, "disconnect",
	    "client=%s reason=%s commands=%u messages=%u errors=%u%s",
	    s->peerstr, s->close_reason ? s->close_reason : "unknown",
	    s->ncmds, s->nmsgs, s->errors, s->linger ? " linger=1" : "");
	TAILQ_REMOVE(&smtp_sessions, s, entry);
	smtp_nsessions--;
	smtp_server_release(s);
	txn_free(s->txn);
	if (s->linger != NULL)		/* before the socket closes */
		event_free(s->linger);
	bufferevent_free(s->bev);
	event_free(s->timer);
	event_free(s->resume);
	config_unref(s->cfg);
	free(s);
	if (smtp_close_hook)
		smtp_close_hook();
}

/* The client is known: pair it with a transaction and greet it. */
static void
smtp_server_open(struct smtp_session *s)
{
	s->txn = txn_new(s->base, s->cfg, s->dns, s->sid,
	    (struct sockaddr *)&s->peer, smtp_server_txn_reply, s);
	if (s->txn == NULL) {
		smtp_server_reply(s, 421, "4.3.0", "%s Out of memory, try again "
		    "later", s->cfg->helo_name);
		smtp_server_close(s, "nomem");
		return;
	}
	smtp_server_reply(s, 220, NULL, "%s ESMTP mailprevent",
	    s->cfg->helo_name);
	smtp_server_arm(s, s->cfg->timeouts.command);
}

/* The PROXY header: decided on what has arrived, bounded by its limits. */
static void
smtp_server_proxyhdr(struct smtp_session *s)
{
	struct evbuffer *in = bufferevent_get_input(s->bev);
	struct proxyproto_result r;
	size_t len = evbuffer_get_length(in);
	const unsigned char *p;
	const char *err;
	char was[64];

	if (len > PROXYPROTO_V2_MAX)
		len = PROXYPROTO_V2_MAX;
	if ((p = evbuffer_pullup(in, (ev_ssize_t)len)) == NULL && len > 0) {
		smtp_server_close(s, "nomem");
		return;
	}
	switch (proxyproto_parse(p, len, &r, &err)) {
	case PROXYPROTO_MORE:
		return;
	case PROXYPROTO_ERROR:
		log_msg(LOG_WARN, s->sid, "proxy-protocol", "balancer=%s "
		    "error=\"%s\"", s->peerstr, err);
		smtp_server_close(s, "proxy_protocol");
		return;
	case PROXYPROTO_DONE:
		break;
	}
	evbuffer_drain(in, r.used);
	if (!r.local) {
		snprintf(was, sizeof(was), "%s", s->peerstr);
		memcpy(&s->peer, &r.src, sizeof(s->peer));
		netaddr_str((struct sockaddr *)&s->peer, s->peerstr,
		    sizeof(s->peerstr));
		log_msg(LOG_INFO, s->sid, "proxy-protocol", "balancer=%s "
		    "client=%s", was, s->peerstr);
	}
	if (!config_cidrs_match(&s->cfg->allow_clients,
	    (struct sockaddr *)&s->peer)) {
		log_msg(LOG_WARN, s->sid, "refused", "client=%s "
		    "reason=not_allowed", s->peerstr);
		smtp_server_reply(s, 554, "5.7.1", "Access denied");
		smtp_server_close(s, "not_allowed");
		return;
	}
	smtp_server_enter_state(s, SRV_CONNECTED);
	smtp_server_open(s);
}

int
smtp_server_start(struct event_base *base, struct config *cfg,
    struct dns *dns, evutil_socket_t fd, const struct sockaddr *sa,
    socklen_t salen)
{
	struct smtp_session *s;

	/* Random per process, so workers never hand out the same id. */
	while (smtp_sid_next == 0)
		if (getrandom(&smtp_sid_next, sizeof(smtp_sid_next), 0) !=
		    sizeof(smtp_sid_next))
			smtp_sid_next = ((uint64_t)getpid() << 32) ^
			    (uint64_t)time(NULL);
	if ((s = calloc(1, sizeof(*s))) == NULL) {
		close(fd);
		return -1;
	}
	snprintf(s->sid, sizeof(s->sid), "%012llx",
	    (unsigned long long)(smtp_sid_next++ & 0xffffffffffffULL));
	s->base = base;
	s->cfg = config_ref(cfg);
	s->dns = dns;
	memcpy(&s->peer, sa, salen < sizeof(s->peer) ? salen : sizeof(s->peer));
	netaddr_str(sa, s->peerstr, sizeof(s->peerstr));
	s->bev = bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE);
	s->timer = evtimer_new(base, smtp_server_timeout, s);
	s->resume = event_new(base, -1, 0, smtp_server_resume, s);
	if (s->bev == NULL || s->timer == NULL || s->resume == NULL) {
		if (s->bev)
			bufferevent_free(s->bev);
		else
			close(fd);
		if (s->timer)
			event_free(s->timer);
		if (s->resume)
			event_free(s->resume);
		config_unref(s->cfg);
		free(s);
		return -1;
	}
	TAILQ_INSERT_TAIL(&smtp_sessions, s, entry);
	smtp_nsessions++;
	bufferevent_setcb(s->bev, smtp_server_readcb, smtp_server_writecb,
	    smtp_server_eventcb, s);
	bufferevent_setwatermark(s->bev, EV_READ, 0, SRV_INPUT_MAX);
	bufferevent_enable(s->bev, EV_READ | EV_WRITE);
	log_msg(LOG_INFO, s->sid, "connect", "client=%s", s->peerstr);
	/* A trusted balancer speaks first: who the client really is. */
	if (cfg->proxy_protocol.enabled &&
	    config_cidrs_match(&cfg->proxy_protocol.trusted, sa)) {
		s->state = SRV_PROXY;
		smtp_server_arm(s, cfg->timeouts.command);
		return 0;
	}
	s->state = SRV_CONNECTED;
	smtp_server_open(s);
	return 0;
}

unsigned
smtp_server_count(void)
{
	return smtp_nsessions;
}

void
smtp_server_on_close(void (*hook)(void))
{
	smtp_close_hook = hook;
}

void
smtp_server_close_all(const char *why)
{
	struct smtp_session *s;

	TAILQ_FOREACH(s, &smtp_sessions, entry) {
		if (s->state == SRV_CLOSING)
			continue;
		smtp_server_reply(s, 421, "4.3.2", "%s %s", s->cfg->helo_name,
		    why);
		smtp_server_close(s, "shutdown");
	}
}

/* The message is gone (relayed or refused): its bytes leave the budget. */
static void
smtp_server_release(struct smtp_session *s)
{
	smtp_inflight -= s->held;
	s->held = 0;
	s->starved = 0;
}

/* Busy waiting on the next hop: no client timer runs meanwhile. */
static void
smtp_server_busy(struct smtp_session *s, enum smtp_server_pending p)
{
	s->flags |= SF_BUSY;
	s->pending = p;
	evtimer_del(s->timer);
}

/* ---- commands ---------------------------------------------------------- */

static void
smtp_server_greet(struct smtp_session *s, int esmtp)
{
	char text[512];

	if (!esmtp) {
		smtp_server_reply(s, 250, NULL, "%s", s->cfg->helo_name);
		return;
	}
	snprintf(text, sizeof(text),
	    "%s\nPIPELINING\nSIZE %llu\n8BITMIME\nDSN\nENHANCEDSTATUSCODES%s",
	    s->cfg->helo_name, (unsigned long long)s->cfg->max_message_size,
	    s->cfg->tls.server_ctx != NULL && !(s->flags & SF_TLS) ?
	    "\nSTARTTLS" : "");
	smtp_server_vreply(s, 250, NULL, text);
}

static void
smtp_server_helo(struct smtp_session *s, const struct smtp_cmd *cmd)
{
	size_t n = 0;
	int esmtp = cmd->verb == SMTP_CMD_EHLO;

	while (n < cmd->arglen && cmd->arg[n] != ' ')
		n++;
	if (n == 0 || n >= sizeof(s->helo)) {
		smtp_server_reply(s, 501, "5.5.4", "Syntax: %s hostname",
		    esmtp ? "EHLO" : "HELO");
		return;
	}
	memcpy(s->helo, cmd->arg, n);
	s->helo[n] = '\0';
	txn_set_helo(s->txn, s->helo);
	s->flags = esmtp ? (s->flags | SF_ESMTP) : (s->flags & ~SF_ESMTP);
	if (s->state == SRV_MAIL || s->state == SRV_RCPT) {
		smtp_server_busy(s, esmtp ? PEND_EHLO : PEND_HELO);
		txn_abort(s->txn, 250, "2.0.0", "Ok");
		return;
	}
	smtp_server_enter_state(s, SRV_HELO);
	smtp_server_greet(s, esmtp);
}

static void
smtp_server_mail(struct smtp_session *s, const struct smtp_cmd *cmd)
{
	struct smtp_mail_args m;
	const char *err;
	char q[SMTP_ADDR_MAX * 4 + 8];
	int code;

	if (s->cfg->tls.required_inbound && !(s->flags & SF_TLS)) {
		smtp_server_reply(s, 530, "5.7.0",
		    "Must issue a STARTTLS command first");
		return;
	}
	if (smtp_parse_mail(cmd->arg, cmd->arglen, &m, &code, &err) == -1) {
		smtp_server_reply(s, code, NULL, "%s", err);
		return;
	}
	if (m.has_size && m.size > s->cfg->max_message_size) {
		smtp_server_reply(s, 552, "5.3.4",
		    "Message size exceeds fixed limit");
		return;
	}
	if (smtp_inflight + (m.has_size ? m.size : 0) >
	    s->cfg->limits.max_inflight) {
		log_msg(LOG_WARN, s->sid, "busy", "inflight=%llu",
		    (unsigned long long)smtp_inflight);
		smtp_server_reply(s, 452, "4.3.1",
		    "Insufficient system storage, try again later");
		return;
	}
	log_msg(LOG_INFO, s->sid, "mail", "from=%s size=%llu",
	    log_quote(q, sizeof(q), m.addr, strlen(m.addr)),
	    (unsigned long long)(m.has_size ? m.size : 0));
	smtp_server_busy(s, PEND_MAIL);
	txn_mail(s->txn, &m);
}

static void
smtp_server_rcpt(struct smtp_session *s, const struct smtp_cmd *cmd)
{
	struct smtp_rcpt_args r;
	const char *err;
	int code;

	if (smtp_parse_rcpt(cmd->arg, cmd->arglen, &r, &code, &err) == -1) {
		smtp_server_reply(s, code, NULL, "%s", err);
		return;
	}
	if (txn_nrcpt(s->txn) >= s->cfg->limits.max_recipients) {
		smtp_server_reply(s, 452, "4.5.3", "Error: too many recipients");
		return;
	}
	smtp_server_busy(s, PEND_RCPT);
	txn_rcpt(s->txn, &r);
}

static void
smtp_server_data(struct smtp_session *s, const struct smtp_cmd *cmd)
{
	if (cmd->arglen != 0) {
		smtp_server_reply(s, 501, "5.5.4", "Syntax: DATA");
		return;
	}
	if (s->state != SRV_RCPT) {
		smtp_server_reply(s, 554, "5.5.1", "Error: no valid recipients");
		return;
	}
	/*
	 * DATA ends a pipelined group (RFC 2920 §3.1): content before our
	 * 354 is a client that does not wait, or an injection attempt.
	 */
	if (evbuffer_get_length(bufferevent_get_input(s->bev)) > 0) {
		smtp_server_reply(s, 554, "5.5.0",
		    "Error: improper pipelining: content sent before 354");
		smtp_server_close(s, "pipelining");
		return;
	}
	if (smtp_inflight >= s->cfg->limits.max_inflight) {
		smtp_server_reply(s, 452, "4.3.1",
		    "Insufficient system storage, try again later");
		return;
	}
	smtp_data_rx_init(&s->rx, s->cfg->limits.max_data_line,
	    s->cfg->max_message_size);
	buf_reset(txn_content(s->txn));
	smtp_server_reply(s, 354, NULL, "End data with <CR><LF>.<CR><LF>");
	smtp_server_enter_state(s, SRV_BODY);
	clock_gettime(CLOCK_MONOTONIC, &s->t_body);
	s->t_read = s->t_body;
	smtp_server_arm(s, s->cfg->timeouts.data);
}

static void
smtp_server_rset(struct smtp_session *s, const struct smtp_cmd *cmd)
{
	if (cmd->arglen != 0) {
		smtp_server_reply(s, 501, "5.5.4", "Syntax: RSET");
		return;
	}
	if (s->state == SRV_MAIL || s->state == SRV_RCPT) {
		smtp_server_busy(s, PEND_RESET);
		txn_abort(s->txn, 250, "2.0.0", "Ok");
		return;
	}
	smtp_server_reply(s, 250, "2.0.0", "Ok");
}

static void
smtp_server_noop(struct smtp_session *s, const struct smtp_cmd *cmd)
{
	smtp_server_reply(s, 250, "2.0.0", "Ok");
}

static void
smtp_server_quit(struct smtp_session *s, const struct smtp_cmd *cmd)
{
	smtp_server_reply(s, 221, "2.0.0", "Bye");
	txn_quit(s->txn);
	smtp_server_close(s, "quit");
}

static void
smtp_server_vrfy(struct smtp_session *s, const struct smtp_cmd *cmd)
{
	if (cmd->arglen == 0) {
		smtp_server_reply(s, 501, "5.5.4", "Syntax: VRFY address");
		return;
	}
	smtp_server_reply(s, 252, "2.5.2",
	    "Cannot VRFY user, but will accept message and attempt delivery");
}

static void
smtp_server_help(struct smtp_session *s, const struct smtp_cmd *cmd)
{
	smtp_server_reply(s, 214, "2.0.0",
	    "Commands: HELO EHLO MAIL RCPT DATA RSET NOOP QUIT VRFY HELP");
}

/*
 * 220, then TLS under the session. Nothing the client sent before the
 * handshake counts (RFC 3207 4.2; CVE-2011-0411): buffered plaintext is
 * thrown away and the session starts again from the greeting state.
 */
static void
smtp_server_starttls(struct smtp_session *s, const struct smtp_cmd *cmd)
{
	struct evbuffer *in = bufferevent_get_input(s->bev);
	struct bufferevent *tb;
	size_t n;
	SSL *ssl;

	if (s->cfg->tls.server_ctx == NULL) {
		smtp_server_notimpl(s, cmd);
		return;
	}
	if (s->flags & SF_TLS) {
		smtp_server_reply(s, 503, "5.5.1", "Error: TLS already active");
		return;
	}
	if (cmd->arglen != 0) {
		smtp_server_reply(s, 501, "5.5.4", "Syntax: STARTTLS");
		return;
	}
	if ((ssl = SSL_new(s->cfg->tls.server_ctx)) == NULL) {
		smtp_server_reply(s, 454, "4.7.0",
		    "TLS not available due to temporary reason");
		return;
	}
	smtp_server_reply(s, 220, "2.0.0", "Ready to start TLS");
	if ((n = evbuffer_get_length(in)) > 0) {
		log_msg(LOG_WARN, s->sid, "tls-discard", "client=%s bytes=%zu",
		    s->peerstr, n);
		evbuffer_drain(in, n);
	}
	/* Deferred: a write must never run (and free us from) a callback. */
	tb = bufferevent_openssl_filter_new(s->base, s->bev, ssl,
	    BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE |
	    BEV_OPT_DEFER_CALLBACKS);
	if (tb == NULL) {
		SSL_free(ssl);
		smtp_server_close(s, "tls");
		return;
	}
	s->bev = tb;
	bufferevent_setcb(s->bev, smtp_server_readcb, smtp_server_writecb,
	    smtp_server_eventcb, s);
	bufferevent_setwatermark(s->bev, EV_READ, 0, SRV_INPUT_MAX);
	bufferevent_enable(s->bev, EV_READ | EV_WRITE);
	s->flags |= SF_TLS | SF_HANDSHAKE;
	s->flags &= ~(SF_ESMTP | SF_SKIPLINE);
	s->helo[0] = '\0';
	smtp_server_enter_state(s, SRV_CONNECTED);
	txn_set_tls(s->txn);
}

static void
smtp_server_notimpl(struct smtp_session *s, const struct smtp_cmd *cmd)
{
	smtp_server_reply(s, 502, "5.5.1", "Error: command not implemented");
}

/* ---- completions from the transaction --------------------------------- */

static void
smtp_server_txn_reply(void *arg, int code, const char *enh, const char *text)
{
	struct smtp_session *s = arg;
	enum smtp_server_pending p = s->pending;
	int ok = code / 100 == 2;

	s->flags &= ~SF_BUSY;
	s->pending = PEND_NONE;
	switch (p) {
	case PEND_MAIL:
		if (ok)
			smtp_server_enter_state(s, SRV_MAIL);
		break;
	case PEND_RCPT:
		if (ok)
			smtp_server_enter_state(s, SRV_RCPT);
		break;
	case PEND_DATA:
		if (ok)
			s->nmsgs++;
		smtp_server_release(s);
		smtp_server_enter_state(s, SRV_HELO);
		break;
	case PEND_RESET:
		smtp_server_release(s);
		smtp_server_enter_state(s, SRV_HELO);
		break;
	case PEND_HELO:
	case PEND_EHLO:
		smtp_server_enter_state(s, SRV_HELO);
		smtp_server_greet(s, p == PEND_EHLO);
		event_active(s->resume, EV_TIMEOUT, 0);
		return;
	case PEND_NONE:
		log_panic("reply with nothing pending (%d)", code);
	}
	/* The next hop's refusals are not the client's errors. */
	smtp_server_write_reply(s, code, enh, text, 0);
	/* Continue with pipelined input from our own callback. */
	event_active(s->resume, EV_TIMEOUT, 0);
}

/* ---- input -------------------------------------------------------------- */

/* The whole message is in: refuse what the rules refuse, else relay. */
static void
smtp_server_body_done(struct smtp_session *s)
{
	unsigned f = s->rx.flags;
	char text[128];

	smtp_server_busy(s, PEND_DATA);
	if (s->starved) {
		s->pending = PEND_RESET;
		txn_abort(s->txn, 452, "4.3.1",
		    "Insufficient system storage, try again later");
		return;
	}
	if (f & SMTP_DATA_TOO_BIG) {
		s->pending = PEND_RESET;
		txn_abort(s->txn, 552, "5.3.4", "Message size exceeds fixed limit");
		return;
	}
	if (f & (SMTP_DATA_BARE_CR | SMTP_DATA_BARE_LF | SMTP_DATA_NUL)) {
		log_msg(LOG_WARN, s->sid, "bad-data", "flags=0x%x", f);
		s->pending = PEND_RESET;
		txn_abort(s->txn, 554, "5.6.0", "Message refused: bare CR, "
		    "bare LF or NUL in message data; use CRLF line endings");
		return;
	}
	if (f & SMTP_DATA_LONG_LINE) {
		snprintf(text, sizeof(text),
		    "Message refused: a line is longer than %u octets",
		    s->cfg->limits.max_data_line);
		s->pending = PEND_RESET;
		txn_abort(s->txn, 554, "5.6.0", text);
		return;
	}
	txn_data_end(s->txn);
}

/*
 * Count what the message now holds against the process-wide budget. Past
 * it, storing stops (the size limit is pulled down to what is held, so the
 * state machine only counts from here) and the message gets 452 4.3.1.
 */
static void
smtp_server_account(struct smtp_session *s)
{
	uint64_t len = txn_content(s->txn)->len;

	smtp_inflight += len - s->held;
	s->held = len;
	if (!s->starved && smtp_inflight > s->cfg->limits.max_inflight) {
		s->starved = 1;
		s->rx.max_size = s->rx.size;
		log_msg(LOG_WARN, s->sid, "busy", "inflight=%llu",
		    (unsigned long long)smtp_inflight);
	}
}

/* Feed buffered input to the DATA state machine. Returns 1 when done. */
static int
smtp_server_body(struct smtp_session *s)
{
	struct evbuffer *in = bufferevent_get_input(s->bev);
	struct evbuffer_iovec iov[8];
	size_t used = 0;
	int n, i, done = 0;

	while (!done && evbuffer_get_length(in) > 0) {
		n = evbuffer_peek(in, -1, NULL, iov, 8);
		if (n > 8)
			n = 8;
		used = 0;
		for (i = 0; i < n && !done; i++) {
			long r = smtp_data_rx_feed(&s->rx, iov[i].iov_base,
			    iov[i].iov_len, txn_content(s->txn), &done);

			if (r < 0) {
				evbuffer_drain(in, used);
				smtp_server_reply(s, 451, "4.3.0",
				    "Out of memory, try again later");
				smtp_server_close(s, "nomem");
				return 0;
			}
			used += (size_t)r;
		}
		evbuffer_drain(in, used);
		if (used > 0)
			clock_gettime(CLOCK_MONOTONIC_COARSE, &s->t_read);
		smtp_server_account(s);
	}
	if (!done)
		return 0;
	smtp_server_body_done(s);
	return 1;
}

static const struct smtp_server_cmd *
smtp_server_lookup(enum smtp_verb v)
{
	for (size_t i = 0; i < sizeof(smtp_server_cmds) /
	    sizeof(smtp_server_cmds[0]); i++)
		if (smtp_server_cmds[i].verb == v)
			return &smtp_server_cmds[i];
	return NULL;
}

static void
smtp_server_command(struct smtp_session *s, const char *line, size_t len)
{
	const struct smtp_server_cmd *c;
	struct smtp_cmd cmd;
	char q[128];

	s->ncmds++;
	log_msg(LOG_DEBUG, s->sid, "command", "line=%s",
	    log_quote(q, sizeof(q), line, len));
	if (memchr(line, '\0', len) != NULL || memchr(line, '\r', len) != NULL) {
		smtp_server_reply(s, 500, "5.5.2",
		    "Error: invalid characters in command");
		return;
	}
	if (smtp_cmd_parse(line, len, &cmd) == -1) {
		smtp_server_reply(s, 501, "5.5.4", "Syntax error in parameters");
		return;
	}
	if (cmd.verb == SMTP_CMD_UNKNOWN ||
	    (c = smtp_server_lookup(cmd.verb)) == NULL) {
		smtp_server_reply(s, 500, "5.5.2", "Error: command not recognized");
		return;
	}
	if (!(c->states & S(s->state))) {
		smtp_server_reply(s, 503, NULL, "%s", c->badseq ? c->badseq :
		    "5.5.1 Error: bad sequence of commands");
		return;
	}
	c->proceed(s, &cmd);
	if (!(s->flags & SF_BUSY) && s->state != SRV_BODY &&
	    s->state != SRV_CLOSING)
		smtp_server_arm(s, s->cfg->timeouts.command);
}

static void
smtp_server_process(struct smtp_session *s)
{
	static char line[65536 + 1];
	struct evbuffer *in;
	struct evbuffer_ptr p;
	size_t len, max = s->cfg->limits.max_command_line;

	for (;;) {
		if ((s->flags & (SF_BUSY | SF_HANDSHAKE)) ||
		    s->state == SRV_CLOSING)
			return;
		in = bufferevent_get_input(s->bev);	/* STARTTLS swaps it */
		if (s->errors >= s->cfg->limits.max_errors) {
			smtp_server_reply(s, 421, "4.7.0", "%s Error: too many errors",
			    s->cfg->helo_name);
			smtp_server_close(s, "errors");
			return;
		}
		if (s->state == SRV_PROXY) {
			smtp_server_proxyhdr(s);
			if (s->state == SRV_PROXY)
				return;
			continue;
		}
		if (s->state == SRV_BODY) {
			if (!smtp_server_body(s))
				return;
			continue;
		}
		/* Replies the client does not read: stop taking commands. */
		if (evbuffer_get_length(bufferevent_get_output(s->bev)) >
		    SRV_OUTPUT_MAX)
			return;
		if ((len = evbuffer_get_length(in)) == 0)
			return;
		p = evbuffer_search(in, "\n", 1, NULL);
		if (s->flags & SF_SKIPLINE) {
			if (p.pos == -1) {
				evbuffer_drain(in, len);
				return;
			}
			evbuffer_drain(in, (size_t)p.pos + 1);
			s->flags &= ~SF_SKIPLINE;
			continue;
		}
		/* The limit is decided on the buffer, before any parsing. */
		if (p.pos == -1) {
			if (len >= max) {
				evbuffer_drain(in, len);
				s->flags |= SF_SKIPLINE;
				smtp_server_reply(s, 500, "5.5.2",
				    "Error: line too long");
			}
			return;
		}
		len = (size_t)p.pos + 1;
		if (len > max) {
			evbuffer_drain(in, len);
			smtp_server_reply(s, 500, "5.5.2", "Error: line too long");
			continue;
		}
		evbuffer_remove(in, line, len);
		if (len < 2 || line[len - 2] != '\r') {
			smtp_server_reply(s, 500, "5.5.2",
			    "Error: bare LF received; commands end with CRLF");
			continue;
		}
		smtp_server_command(s, line, len - 2);
	}
}

/* ---- event callbacks ---------------------------------------------------- */

static void
smtp_server_readcb(struct bufferevent *bev, void *arg)
{
	smtp_server_process(arg);
}

static void
smtp_server_writecb(struct bufferevent *bev, void *arg)
{
	struct smtp_session *s = arg;

	if (s->state == SRV_CLOSING) {
		event_active(s->resume, EV_TIMEOUT, 0);
		return;
	}
	/* Output drained below the cap: pending commands may go on. */
	smtp_server_process(s);
}

static void
smtp_server_resume(evutil_socket_t fd, short ev, void *arg)
{
	struct smtp_session *s = arg;

	if (s->state == SRV_CLOSING) {
		/*
		 * Under TLS the last reply may still sit encrypted below us;
		 * nothing signals when that drains, so look again shortly
		 * (the close timer bounds the wait).
		 */
		struct timeval again = { 0, 20000 };

		if (smtp_server_flushed(s)) {
			if (!smtp_server_linger(s))
				smtp_server_free(s);
		}
		else if (evbuffer_get_length(bufferevent_get_output(s->bev)) == 0)
			event_add(s->resume, &again);
		return;
	}
	if (!(s->flags & SF_BUSY) && s->state != SRV_BODY)
		smtp_server_arm(s, s->cfg->timeouts.command);
	smtp_server_process(s);
}

static void
smtp_server_eventcb(struct bufferevent *bev, short what, void *arg)
{
	struct smtp_session *s = arg;
	char desc[256];

	if ((what & BEV_EVENT_CONNECTED) && (s->flags & SF_HANDSHAKE)) {
		s->flags &= ~SF_HANDSHAKE;
		log_msg(LOG_INFO, s->sid, "tls", "side=inbound client=%s %s",
		    s->peerstr, tls_describe(bufferevent_openssl_get_ssl(s->bev),
		    desc, sizeof(desc)));
		smtp_server_arm(s, s->cfg->timeouts.command);
		smtp_server_process(s);
		return;
	}
	if (s->flags & SF_HANDSHAKE) {
		log_msg(LOG_WARN, s->sid, "tls-failed", "client=%s reason=\"%s\"",
		    s->peerstr, tls_error(bufferevent_openssl_get_ssl(s->bev),
		    bufferevent_get_openssl_error(s->bev), desc, sizeof(desc)));
		s->close_reason = "tls";
		smtp_server_free(s);
		return;
	}

	if (s->state != SRV_CLOSING)
		s->close_reason = (what & BEV_EVENT_EOF) ? "eof" : "error";
	if (s->state == SRV_BODY || s->state == SRV_MAIL ||
	    s->state == SRV_RCPT || (s->flags & SF_BUSY))
		log_msg(LOG_WARN, s->sid, "lost", "client=%s state=%s",
		    s->peerstr, smtp_server_strstate(s->state));
	smtp_server_free(s);
}

static void
smtp_server_timeout(evutil_socket_t fd, short ev, void *arg)
{
	struct smtp_session *s = arg;
	struct timespec now;
	double elapsed, idle, allowed, left;

	if (s->state == SRV_CLOSING) {
		smtp_server_free(s);
		return;
	}
	if (s->state == SRV_BODY) {
		/*
		 * Two clocks in DATA: silence may last at most timeouts.data,
		 * and on average the client must keep min_data_rate (data
		 * earns time at that rate, so only tricklers run out).
		 */
		clock_gettime(CLOCK_MONOTONIC, &now);
		elapsed = (double)(now.tv_sec - s->t_body.tv_sec) +
		    (double)(now.tv_nsec - s->t_body.tv_nsec) / 1e9;
		idle = (double)(now.tv_sec - s->t_read.tv_sec) +
		    (double)(now.tv_nsec - s->t_read.tv_nsec) / 1e9;
		left = (double)s->cfg->timeouts.data - idle;
		if (s->cfg->limits.min_data_rate > 0) {
			allowed = (double)s->cfg->timeouts.data +
			    (double)s->rx.wire / s->cfg->limits.min_data_rate;
			if (allowed - elapsed < left)
				left = allowed - elapsed;
		}
		if (left > 0.5) {
			smtp_server_arm(s, left > 86400 ? 86400 :
			    (unsigned)(left + 0.5));
			return;
		}
	}
	log_msg(LOG_INFO, s->sid, "timeout", "state=%s",
	    smtp_server_strstate(s->state));
	smtp_server_reply(s, 421, "4.4.2", "%s Error: timeout exceeded",
	    s->cfg->helo_name);
	smtp_server_close(s, "timeout");
}
