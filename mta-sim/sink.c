/*
 * sink: an SMTP server that accepts (or, by rule, refuses) mail and
 * records everything: each message and its envelope, every raw byte of
 * every connection, and one line per protocol event. Tests read these
 * files to prove what a proxy put on the wire.
 *
 * The server is the sim_sink object (roles.h), one of several roles that
 * can share a loop: it keeps accepted messages in memory and, given a
 * directory, also writes the files below. `mta-sim sink` (sink_main) is a
 * thin command line around it. The integrated MTA's listeners are sinks
 * too: an accept hook (sim.h) lets the MTA queue or refuse each message.
 *
 * Files in DIR:
 *   msg-NNNNNN.eml		content as received, after un-stuffing
 *   msg-NNNNNN.env		envelope; written after the .eml, so a reader
 *				that sees it knows the .eml is complete
 *   msg-NNNNNN.rejected.eml	content of a message not accepted at the dot
 *   wire-SSSSSS.raw		every byte received on session S (after
 *				STARTTLS: as decrypted)
 *   events.log			session=S event=... lines
 * All of them reach the kernel before the reply they lead to is queued.
 *
 * With a certificate the sink offers STARTTLS and behaves as a server
 * must (RFC 3207 4.2): after its 220, whatever the client had pipelined
 * behind STARTTLS is thrown away, and the session starts over without
 * HELO or transaction. A hostile option writes bytes in clear after that
 * 220, to check that clients throw them away too.
 */
#include <sys/queue.h>
#include <sys/stat.h>
#include <sys/types.h>

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/listener.h>

#include <openssl/ssl.h>

#include "buf.h"
#include "log.h"
#include "netaddr.h"
#include "rules.h"
#include "sim.h"
#include "smtp_addr.h"
#include "smtp_cmd.h"
#include "smtp_data.h"
#include "smtp_reply.h"
#include "tls.h"

#define SINK_LINE_MAX		4096	/* command line without CRLF; lenient on purpose */
#define SINK_DATA_LINE_MAX	998	/* RFC 5322 §2.1.1; longer lines are flagged */
#define SINK_RCPT_MAX		1000
#define SINK_SIZE_DEFAULT	(10 * 1024 * 1024)
#define SINK_HOSTNAME		"mta-sim.localhost"
#define SINK_COMPACT		65536	/* compact the input buffer past this offset */

enum sink_state {
	SINK_GREETING,		/* connected; the greeting (and connect rule) is due */
	SINK_CMD,		/* reading commands */
	SINK_DATA,		/* reading content after 354 */
	SINK_DOT,		/* content complete; the final reply is due */
	SINK_STARTTLS,		/* 220 to STARTTLS queued: TLS goes under next */
	SINK_HANDSHAKE,		/* TLS handshake under way: no commands */
	SINK_CLOSING,		/* nothing more is read; close once output is flushed */
	SINK_DEAD		/* freed by the outermost callback */
};

/* What sink_rule() tells the step that asked. */
enum sink_go {
	SINK_GO,		/* carry on (maybe with a reply override) */
	SINK_STOP		/* delayed, dropped or hung: do not run the step now */
};

struct sink_session {
	TAILQ_ENTRY(sink_session) entry;
	struct sim_sink		*sink;
	unsigned long		 id;
	char			 sid[48];
	char			 client[64];	/* ip:port */
	char			 ip[64];
	struct bufferevent	*bev;
	struct event		*timer;
	int			 wire_fd;
	enum sink_state		 state;
	const char		*close_reason;

	int			 paused;	/* a delay rule is running */
	int			 resume;	/* the paused step runs without its rule */
	int			 hung;		/* a hang rule fired: never answer again */
	int			 eof;		/* the client closed its side */
	int			 noservice;	/* non-2xx greeting: only QUIT is served */
	int			 discard;	/* inside an over-long command line */

	struct buf		 in;		/* received, not yet processed */
	size_t			 in_off;

	/* The current command's path and parameters, pointing into in. */
	const char		*path;
	size_t			 pathlen;
	const char		*params;
	size_t			 paramslen;
	struct smtp_mail_args	 mail;
	struct smtp_rcpt_args	 rcpt;

	struct buf		 helo;		/* HELO/EHLO argument as received */
	int			 has_helo;
	int			 has_mail;
	size_t			 nrcpt;
	struct buf		 env;		/* mail-from and rcpt lines */
	char			 from[SMTP_ADDR_MAX + 1];	/* accepted MAIL */
	char			**rcpts;	/* accepted RCPTs, nrcpt of them */

	struct smtp_data_rx	 rx;
	struct buf		 msg;		/* content from smtp_data_rx */
	struct buf		 raw;		/* the same bytes as on the wire */
	int			 raw_full;
	int			 body_seen;
	int			 early;		/* code a body rule already replied
						   (-1: raw bytes, not a success) */

	int			 tls;		/* STARTTLS accepted (handshake done
						   once state leaves SINK_HANDSHAKE) */
	char			 tls_info[112];	/* "TLSv1.3 CIPHER" once up */
	struct event		*wake;		/* closing under TLS: the socket drained */
	struct evbuffer_cb_entry *drain_cb;	/* on the socket's output, under TLS */
};

TAILQ_HEAD(sink_sessions, sink_session);

struct sim_sink {
	struct event_base	*base;
	struct evconnlistener	*listener;
	char			*name;
	char			*label;		/* sim_msg.listener */
	char			 addr[80];
	struct rules		 rules;
	char			*dir;		/* NULL: memory only */
	char			*hostname;
	unsigned		 ext;
	int			 no_ehlo;
	struct rules_action	 greeting;
	uint64_t		 max_size;
	size_t			 max_rcpts;
	int			 events_fd;
	unsigned long		 nsessions;
	unsigned long		 nmsgs;		/* accepted and refused at the dot */
	struct sink_sessions	 sessions;

	int			 keep;
	struct sim_msg		**msgs;
	size_t			 nkept;
	size_t			 naccepted;
	sim_msg_cb		*on_msg;
	void			*on_msg_arg;
	sim_sink_accept_cb	*on_accept;
	void			*on_accept_arg;

	SSL_CTX			*tls_ctx;	/* NULL: no STARTTLS */
	int			 tls_required;
	char			 inject[RULES_RAW_MAX];	/* --tls-inject, decoded */
	size_t			 ninject;
};

static const struct sink_ext {
	const char	*name;
	unsigned	 flag;
} sink_exts[] = {
	{ "PIPELINING", SMTP_EXT_PIPELINING },
	{ "SIZE", SMTP_EXT_SIZE },
	{ "8BITMIME", SMTP_EXT_8BITMIME },
	{ "DSN", SMTP_EXT_DSN },
	{ "ENHANCEDSTATUSCODES", SMTP_EXT_ENHANCED },
	{ "STARTTLS", SMTP_EXT_STARTTLS },	/* only with a certificate */
};

#define SINK_NEXTS	(sizeof(sink_exts) / sizeof(sink_exts[0]))

static void	sink_run(struct sink_session *);
static void	sink_close(struct sink_session *, const char *reason);

static const char *
sink_strstate(enum sink_state st)
{
	switch (st) {
	case SINK_GREETING:
		return "greeting";
	case SINK_CMD:
		return "cmd";
	case SINK_DATA:
		return "data";
	case SINK_DOT:
		return "dot";
	case SINK_STARTTLS:
		return "starttls";
	case SINK_HANDSHAKE:
		return "handshake";
	case SINK_CLOSING:
		return "closing";
	case SINK_DEAD:
		return "dead";
	}
	return "?";
}

static void
sink_enter_state(struct sink_session *s, enum sink_state st)
{
	if (s->state == st)
		return;
	log_msg(LOG_DEBUG, s->sid, "state", "from=%s to=%s",
	    sink_strstate(s->state), sink_strstate(st));
	s->state = st;
}

static void	sink_event(struct sink_session *, const char *, ...)
		    __attribute__((format(printf, 2, 3)));

/* One line of events.log; written through before any reply that follows. */
static void
sink_event(struct sink_session *s, const char *fmt, ...)
{
	struct buf line = BUF_INIT;
	va_list ap;

	if (s->sink->events_fd == -1)
		return;
	va_start(ap, fmt);
	if (buf_appendf(&line, "session=%lu ", s->id) == -1 ||
	    buf_vappendf(&line, fmt, ap) == -1 || buf_append(&line, "\n", 1) == -1)
		log_msg(LOG_ERR, s->sid, "events-log", "error=ENOMEM");
	else if (sim_write_all(s->sink->events_fd, line.data, line.len) == -1)
		log_msg(LOG_ERR, s->sid, "events-log", "error=%d", errno);
	va_end(ap);
	buf_free(&line);
}

static void
sink_event_cmd(struct sink_session *s, const char *line, size_t len)
{
	struct buf q = BUF_INIT;

	if (sim_quote(&q, line, len) == 0 && buf_cstr(&q) != NULL)
		sink_event(s, "event=cmd line=%s", q.data);
	buf_free(&q);
}

/* Queue a formatted reply; a 421 means we are going away. */
static void
sink_send(struct sink_session *s, int code, struct buf *out)
{
	sink_event(s, "event=reply code=%d", code);
	if (bufferevent_write(s->bev, out->data, out->len) == -1)
		log_msg(LOG_ERR, s->sid, "write", "error=ENOMEM");
	if (code == 421)
		sink_close(s, "421");
}

static void
sink_reply(struct sink_session *s, int code, const char *enh, const char *text)
{
	struct buf out = BUF_INIT;

	if (!(s->sink->ext & SMTP_EXT_ENHANCED))
		enh = NULL;
	if (smtp_reply_format(&out, code, enh, text) == -1)
		log_msg(LOG_ERR, s->sid, "reply", "error=ENOMEM");
	else
		sink_send(s, code, &out);
	buf_free(&out);
}

/* raw:BYTES (repeated): whatever the rule says, no CRLF added, no 421 close. */
static void
sink_send_raw(struct sink_session *s, const struct rules_action *a)
{
	struct evbuffer *out = bufferevent_get_output(s->bev);
	unsigned long i;

	sink_event(s, "event=raw bytes=%zu", a->rawlen * a->repeat);
	for (i = 0; i < a->repeat; i++)
		if (evbuffer_add(out, a->raw, a->rawlen) == -1) {
			log_msg(LOG_ERR, s->sid, "raw", "error=ENOMEM");
			return;
		}
}

/* A reply given verbatim: --greeting, reply:CODE TEXT and raw: rules. */
static void
sink_reply_verbatim(struct sink_session *s, const struct rules_action *a)
{
	struct buf out = BUF_INIT;
	int r;

	if (a->kind == RULES_RAW) {
		sink_send_raw(s, a);
		return;
	}
	if (a->text[0] != '\0')
		r = buf_appendf(&out, "%d %s\r\n", a->code, a->text);
	else
		r = buf_appendf(&out, "%d\r\n", a->code);
	if (r == -1)
		log_msg(LOG_ERR, s->sid, "reply", "error=ENOMEM");
	else
		sink_send(s, a->code, &out);
	buf_free(&out);
}

static void
sink_timer_cb(evutil_socket_t fd, short ev, void *arg)
{
	struct sink_session *s = arg;

	s->paused = 0;
	s->resume = 1;
	sink_run(s);
}

static void
sink_pause(struct sink_session *s, double seconds)
{
	struct timeval tv;

	if (s->timer == NULL &&
	    (s->timer = evtimer_new(s->sink->base, sink_timer_cb, s)) == NULL) {
		log_msg(LOG_ERR, s->sid, "delay", "error=ENOMEM");
		return;		/* behave as if the delay were over */
	}
	tv.tv_sec = (time_t)seconds;
	tv.tv_usec = (suseconds_t)((seconds - (double)tv.tv_sec) * 1e6);
	evtimer_add(s->timer, &tv);
	s->paused = 1;
}

/*
 * Look up the rule for an event and carry out the actions that replace the
 * whole step: delay, drop and hang. A step resumed after its delay runs
 * without asking again (its occurrence was already counted).
 */
static enum sink_go
sink_rule(struct sink_session *s, enum rules_when when, const char *addr,
    const struct rules_action **ov)
{
	const struct rules_rule *r;
	struct buf q = BUF_INIT;

	*ov = NULL;
	if (s->resume) {
		s->resume = 0;
		return SINK_GO;
	}
	if ((r = rules_match(&s->sink->rules, when, addr)) == NULL)
		return SINK_GO;

	if (sim_quote(&q, r->spec, strlen(r->spec)) == 0 && buf_cstr(&q) != NULL) {
		sink_event(s, "event=rule when=%s action=%s rule=%s",
		    rules_when_name(when), rules_kind_name(r->action.kind), q.data);
		log_msg(LOG_INFO, s->sid, "rule", "when=%s action=%s rule=%s",
		    rules_when_name(when), rules_kind_name(r->action.kind), q.data);
	}
	buf_free(&q);

	switch (r->action.kind) {
	case RULES_REPLY:
	case RULES_RAW:
		*ov = &r->action;
		return SINK_GO;
	case RULES_DELAY:
		sink_pause(s, r->action.delay);
		return s->paused ? SINK_STOP : SINK_GO;
	case RULES_DROP:
		sink_close(s, "rule-drop");
		return SINK_STOP;
	case RULES_HANG:
		s->hung = 1;
		return SINK_STOP;
	}
	log_panic("rule kind %d", (int)r->action.kind);
}

/*
 * An override that is not a success reply for its step refuses the
 * command: the reply goes out and the command has no effect. A raw
 * override has code 0, so it always refuses.
 */
static int
sink_refused(struct sink_session *s, const struct rules_action *ov, int ok)
{
	if (ov == NULL || ov->code / 100 == ok)
		return 0;
	sink_reply_verbatim(s, ov);
	return 1;
}

static void
sink_reset_txn(struct sink_session *s)
{
	size_t i;

	for (i = 0; i < s->nrcpt; i++)
		free(s->rcpts[i]);
	free(s->rcpts);
	s->rcpts = NULL;
	s->has_mail = 0;
	s->from[0] = '\0';
	s->nrcpt = 0;
	s->early = 0;
	s->body_seen = 0;
	s->raw_full = 0;
	buf_reset(&s->env);
	buf_reset(&s->msg);
	buf_reset(&s->raw);
}

/* Write DIR/name through a temporary name, so readers never see half a file. */
static int
sink_write_file(struct sim_sink *sk, const char *name, const char *data, size_t len)
{
	char tmp[PATH_MAX], dst[PATH_MAX];
	int fd, r;

	r = snprintf(tmp, sizeof(tmp), "%s/.tmp-%s", sk->dir, name);
	if (r < 0 || (size_t)r >= sizeof(tmp))
		return -1;
	r = snprintf(dst, sizeof(dst), "%s/%s", sk->dir, name);
	if (r < 0 || (size_t)r >= sizeof(dst))
		return -1;
	if ((fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644)) == -1)
		return -1;
	if (sim_write_all(fd, data, len) == -1) {
		close(fd);
		unlink(tmp);
		return -1;
	}
	if (close(fd) == -1 || rename(tmp, dst) == -1) {
		unlink(tmp);
		return -1;
	}
	return 0;
}

/*
 * smtp_data_rx stops keeping content once it has flagged a message, but a
 * sink records everything: undo the dot-stuffing of the raw bytes here.
 * A line starts after CRLF only, as in the codec.
 */
static int
sink_unstuff(const struct buf *raw, struct buf *out)
{
	size_t i, n = raw->len;
	int bol = 1;

	if (n >= 3 && memcmp(raw->data + n - 3, ".\r\n", 3) == 0)
		n -= 3;
	for (i = 0; i < n; i++) {
		char c = raw->data[i];

		if (!(bol && c == '.') && buf_append(out, &c, 1) == -1)
			return -1;
		bol = c == '\n' && i > 0 && raw->data[i - 1] == '\r';
	}
	return 0;
}

static int
sink_env_flags(struct buf *env, unsigned flags)
{
	static const struct {
		unsigned	 bit;
		const char	*name;
	} names[] = {
		{ SMTP_DATA_BARE_CR, "BARE_CR" },
		{ SMTP_DATA_BARE_LF, "BARE_LF" },
		{ SMTP_DATA_NUL, "NUL" },
		{ SMTP_DATA_LONG_LINE, "LONG_LINE" },
		{ SMTP_DATA_TOO_BIG, "TOO_BIG" },
	};
	const char *sep = "flags ";
	size_t i;

	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (flags & names[i].bit) {
			if (buf_appendf(env, "%s%s", sep, names[i].name) == -1)
				return -1;
			sep = ",";
		}
	return flags ? buf_append(env, "\n", 1) : 0;
}

/*
 * The content as received: smtp_data_rx stops keeping it once it has
 * flagged a message, and then the raw bytes are un-stuffed instead.
 */
static const struct buf *
sink_content(struct sink_session *s, struct buf *tmp)
{
	if (s->rx.flags != 0 && !s->raw_full) {
		if (sink_unstuff(&s->raw, tmp) == -1)
			return NULL;
		return tmp;
	}
	return &s->msg;
}

/* The message as a sim_msg, for the accept hook, memory and callbacks. */
static struct sim_msg *
sink_make_msg(struct sink_session *s, unsigned long n, const struct buf *c)
{
	struct sim_msg *m;
	size_t i;

	if ((m = sim_msg_new()) == NULL)
		return NULL;
	m->id = n;
	m->t = sim_clock();
	if (sim_msg_set(&m->role, s->sink->name) == -1 ||
	    sim_msg_set(&m->listener, s->sink->label) == -1 ||
	    sim_msg_set(&m->client_ip, s->ip) == -1 ||
	    sim_msg_set(&m->helo, buf_cstr(&s->helo) ? s->helo.data : "") == -1 ||
	    sim_msg_set(&m->mail_from, s->from) == -1 ||
	    sim_msg_set(&m->tls, s->tls ? s->tls_info : NULL) == -1 ||
	    buf_append(&m->content, c->data, c->len) == -1)
		goto fail;
	for (i = 0; i < s->nrcpt; i++)
		if (sim_msg_add_rcpt(m, s->rcpts[i]) == -1)
			goto fail;
	return m;
fail:
	sim_msg_free(m);
	return NULL;
}

/* Files for message n: .eml then .env when accepted, else .rejected.eml. */
static int
sink_store(struct sink_session *s, int accepted, unsigned long n,
    const struct buf *c)
{
	struct sim_sink *sk = s->sink;
	struct buf env = BUF_INIT;
	char name[64];
	int rc = -1;

	if (sk->dir == NULL)
		goto logged;
	snprintf(name, sizeof(name), accepted ? "msg-%06lu.eml" :
	    "msg-%06lu.rejected.eml", n);
	if (sink_write_file(sk, name, c->data ? c->data : "", c->len) == -1) {
		log_msg(LOG_ERR, s->sid, "store", "file=%s errno=%d", name, errno);
		goto out;
	}
	if (accepted) {
		if (buf_appends(&env, "helo ") == -1 ||
		    buf_append(&env, s->helo.data ? s->helo.data : "", s->helo.len) == -1 ||
		    buf_append(&env, "\n", 1) == -1 ||
		    buf_append(&env, s->env.data ? s->env.data : "", s->env.len) == -1 ||
		    buf_appendf(&env, "client %s\nsession %lu\ntls %s\n", s->client,
		    s->id, s->tls ? s->tls_info : "none") == -1 ||
		    sink_env_flags(&env, s->rx.flags) == -1)
			goto out;
		snprintf(name, sizeof(name), "msg-%06lu.env", n);
		if (sink_write_file(sk, name, env.data, env.len) == -1) {
			log_msg(LOG_ERR, s->sid, "store", "file=%s errno=%d", name,
			    errno);
			goto out;
		}
		sink_event(s, "event=message file=msg-%06lu", n);
	} else
		sink_event(s, "event=rejected file=msg-%06lu.rejected", n);
logged:
	log_msg(LOG_INFO, s->sid, accepted ? "message" : "rejected",
	    "file=msg-%06lu%s size=%" PRIu64 " flags=0x%x", n,
	    accepted ? "" : ".rejected", s->rx.size, s->rx.flags);
	rc = 0;
out:
	buf_free(&env);
	return rc;
}

/* Keep an accepted message and tell whoever asked. Takes m. */
static void
sink_record(struct sim_sink *sk, struct sim_msg *m)
{
	struct sim_msg **v;

	sk->naccepted++;
	if (m == NULL)
		return;
	if (sk->on_msg != NULL)
		sk->on_msg(sk->on_msg_arg, m);
	if (sk->keep && (v = reallocarray(sk->msgs, sk->nkept + 1,
	    sizeof(*v))) != NULL) {
		v[sk->nkept++] = m;
		sk->msgs = v;
		return;
	}
	sim_msg_free(m);
}

/* ---- commands ------------------------------------------------------- */

#define SINK_F_HELO	0x01	/* needs HELO/EHLO */
#define SINK_F_MAIL	0x02	/* needs MAIL */
#define SINK_F_NOMAIL	0x04	/* refused inside a transaction */
#define SINK_F_RCPT	0x08	/* needs at least one accepted RCPT */
#define SINK_F_TLS	0x10	/* needs STARTTLS first with --tls-required */

struct sink_cmd {
	enum smtp_verb	 verb;
	enum rules_when	 when;		/* RULES__COUNT: no rules */
	unsigned	 flags;
	int		(*check)(struct sink_session *, const struct smtp_cmd *,
			    int *code, const char **enh, const char **text);
	void		(*proceed)(struct sink_session *, const struct smtp_cmd *,
			    const struct rules_action *ov);
};

/* Split "<path> PARAMS" as received; a quoted local part may hold '>'. */
static void
sink_split_path(struct sink_session *s, const char *arg, size_t len)
{
	size_t i = 0;
	int quoted = 0;

	if (len > 0 && arg[0] == '<') {
		for (i = 1; i < len; i++) {
			if (quoted && arg[i] == '\\' && i + 1 < len)
				i++;
			else if (arg[i] == '"')
				quoted = !quoted;
			else if (!quoted && arg[i] == '>') {
				i++;
				break;
			}
		}
	} else
		while (i < len && arg[i] != ' ')
			i++;
	s->path = arg;
	s->pathlen = i;
	while (i < len && arg[i] == ' ')
		i++;
	s->params = arg + i;
	s->paramslen = len - i;
}

static int
sink_env_line(struct sink_session *s, const char *key)
{
	if (buf_appends(&s->env, key) == -1 ||
	    buf_append(&s->env, " ", 1) == -1 ||
	    buf_append(&s->env, s->path, s->pathlen) == -1)
		return -1;
	if (s->paramslen > 0 && (buf_append(&s->env, " ", 1) == -1 ||
	    buf_append(&s->env, s->params, s->paramslen) == -1))
		return -1;
	return buf_append(&s->env, "\n", 1);
}

static int
sink_check_helo(struct sink_session *s, const struct smtp_cmd *cmd, int *code,
    const char **enh, const char **text)
{
	if (cmd->verb == SMTP_CMD_EHLO && s->sink->no_ehlo) {
		*code = 502;
		*enh = "5.5.1";
		*text = "EHLO not implemented";
		return -1;
	}
	if (cmd->arglen == 0) {
		*code = 501;
		*enh = "5.5.4";
		*text = "Syntax: HELO/EHLO hostname";
		return -1;
	}
	return 0;
}

static int
sink_check_mail(struct sink_session *s, const struct smtp_cmd *cmd, int *code,
    const char **enh, const char **text)
{
	sink_split_path(s, cmd->arg, cmd->arglen);
	if (smtp_parse_mail(cmd->arg, cmd->arglen, &s->mail, code, text) == -1) {
		*enh = NULL;	/* the codec's text carries it */
		return -1;
	}
	if (s->mail.has_size && s->mail.size > s->sink->max_size) {
		*code = 552;
		*enh = "5.3.4";
		*text = "Message size exceeds fixed maximum message size";
		return -1;
	}
	return 0;
}

static int
sink_check_rcpt(struct sink_session *s, const struct smtp_cmd *cmd, int *code,
    const char **enh, const char **text)
{
	sink_split_path(s, cmd->arg, cmd->arglen);
	if (smtp_parse_rcpt(cmd->arg, cmd->arglen, &s->rcpt, code, text) == -1) {
		*enh = NULL;
		return -1;
	}
	if (s->nrcpt >= s->sink->max_rcpts) {
		*code = 452;
		*enh = "4.5.3";
		*text = "Too many recipients";
		return -1;
	}
	return 0;
}

static int
sink_check_noarg(struct sink_session *s, const struct smtp_cmd *cmd, int *code,
    const char **enh, const char **text)
{
	if (cmd->arglen == 0)
		return 0;
	*code = 501;
	*enh = "5.5.4";
	*text = "Syntax error: no parameters allowed";
	return -1;
}

static void
sink_set_helo(struct sink_session *s, const struct smtp_cmd *cmd)
{
	buf_reset(&s->helo);
	if (buf_append(&s->helo, cmd->arg, cmd->arglen) == -1)
		log_msg(LOG_ERR, s->sid, "helo", "error=ENOMEM");
	s->has_helo = 1;
	sink_reset_txn(s);
}

static void
sink_helo(struct sink_session *s, const struct smtp_cmd *cmd,
    const struct rules_action *ov)
{
	if (sink_refused(s, ov, 2))
		return;
	sink_set_helo(s, cmd);
	if (ov != NULL)
		sink_reply_verbatim(s, ov);
	else
		sink_reply(s, 250, NULL, s->sink->hostname);
}

static void
sink_ehlo(struct sink_session *s, const struct smtp_cmd *cmd,
    const struct rules_action *ov)
{
	struct sim_sink *sk = s->sink;
	struct buf text = BUF_INIT;
	size_t i;
	int r;

	if (sink_refused(s, ov, 2))
		return;
	sink_set_helo(s, cmd);
	if (ov != NULL) {
		sink_reply_verbatim(s, ov);
		return;
	}
	r = buf_appends(&text, sk->hostname);
	for (i = 0; i < SINK_NEXTS && r == 0; i++) {
		if (!(sk->ext & sink_exts[i].flag))
			continue;
		if (sink_exts[i].flag == SMTP_EXT_STARTTLS &&
		    (sk->tls_ctx == NULL || s->tls))
			continue;
		if (sink_exts[i].flag == SMTP_EXT_SIZE)
			r = buf_appendf(&text, "\nSIZE %" PRIu64, sk->max_size);
		else
			r = buf_appendf(&text, "\n%s", sink_exts[i].name);
	}
	if (r == 0 && buf_cstr(&text) != NULL)
		sink_reply(s, 250, NULL, text.data);
	buf_free(&text);
}

static void
sink_mail(struct sink_session *s, const struct smtp_cmd *cmd,
    const struct rules_action *ov)
{
	if (sink_refused(s, ov, 2))
		return;
	sink_reset_txn(s);
	if (sink_env_line(s, "mail-from") == -1) {
		sink_reply(s, 451, "4.3.0", "Out of memory");
		return;
	}
	memcpy(s->from, s->mail.addr, sizeof(s->from));
	s->has_mail = 1;
	if (ov != NULL)
		sink_reply_verbatim(s, ov);
	else
		sink_reply(s, 250, "2.1.0", "Ok");
}

static void
sink_rcpt(struct sink_session *s, const struct smtp_cmd *cmd,
    const struct rules_action *ov)
{
	char **v, *a;

	if (sink_refused(s, ov, 2))
		return;
	if ((a = strdup(s->rcpt.addr)) == NULL ||
	    (v = reallocarray(s->rcpts, s->nrcpt + 1, sizeof(*v))) == NULL) {
		free(a);
		sink_reply(s, 451, "4.3.0", "Out of memory");
		return;
	}
	s->rcpts = v;
	if (sink_env_line(s, "rcpt") == -1) {
		free(a);
		sink_reply(s, 451, "4.3.0", "Out of memory");
		return;
	}
	s->rcpts[s->nrcpt++] = a;
	if (ov != NULL)
		sink_reply_verbatim(s, ov);
	else
		sink_reply(s, 250, "2.1.5", "Ok");
}

static void
sink_data(struct sink_session *s, const struct smtp_cmd *cmd,
    const struct rules_action *ov)
{
	if (sink_refused(s, ov, 3))
		return;
	smtp_data_rx_init(&s->rx, SINK_DATA_LINE_MAX, s->sink->max_size);
	buf_reset(&s->msg);
	buf_reset(&s->raw);
	s->raw_full = 0;
	s->body_seen = 0;
	s->early = 0;
	sink_enter_state(s, SINK_DATA);
	if (ov != NULL)
		sink_reply_verbatim(s, ov);
	else
		sink_reply(s, 354, NULL, "End data with <CR><LF>.<CR><LF>");
}

static void
sink_rset(struct sink_session *s, const struct smtp_cmd *cmd,
    const struct rules_action *ov)
{
	if (sink_refused(s, ov, 2))
		return;
	sink_reset_txn(s);
	if (ov != NULL)
		sink_reply_verbatim(s, ov);
	else
		sink_reply(s, 250, "2.0.0", "Ok");
}

static void
sink_quit(struct sink_session *s, const struct smtp_cmd *cmd,
    const struct rules_action *ov)
{
	/* Whatever the reply, the session ends here. */
	if (ov != NULL)
		sink_reply_verbatim(s, ov);
	else
		sink_reply(s, 221, "2.0.0", "Bye");
	sink_close(s, "quit");
}

static int
sink_check_starttls(struct sink_session *s, const struct smtp_cmd *cmd,
    int *code, const char **enh, const char **text)
{
	*code = 503;
	*enh = "5.5.1";
	if (s->sink->tls_ctx == NULL || !(s->sink->ext & SMTP_EXT_STARTTLS)) {
		*code = 502;
		*text = "Command not implemented";
	} else if (s->tls)
		*text = "TLS already active";
	else if (s->has_mail)
		*text = "STARTTLS not allowed in a transaction";
	else if (cmd->arglen != 0) {
		*code = 501;
		*enh = "5.5.4";
		*text = "Syntax: STARTTLS";
	} else
		return 0;
	return -1;
}

/* 220 now; the TLS swap waits until the command line is consumed. */
static void
sink_starttls(struct sink_session *s, const struct smtp_cmd *cmd,
    const struct rules_action *ov)
{
	if (sink_refused(s, ov, 2))
		return;
	if (ov != NULL)
		sink_reply_verbatim(s, ov);
	else
		sink_reply(s, 220, "2.0.0", "Ready to start TLS");
	if (s->state == SINK_CMD)
		sink_enter_state(s, SINK_STARTTLS);
}

static void
sink_noop(struct sink_session *s, const struct smtp_cmd *cmd,
    const struct rules_action *ov)
{
	sink_reply(s, 250, "2.0.0", "Ok");
}

static void
sink_vrfy(struct sink_session *s, const struct smtp_cmd *cmd,
    const struct rules_action *ov)
{
	sink_reply(s, 252, "2.5.0", "Cannot VRFY user, but will accept message");
}

static void
sink_help(struct sink_session *s, const struct smtp_cmd *cmd,
    const struct rules_action *ov)
{
	sink_reply(s, 214, "2.0.0", "mta-sim sink, see docs/mta-sim.md");
}

static const struct sink_cmd sink_cmds[] = {
	{ SMTP_CMD_HELO, RULES_HELO, 0, sink_check_helo, sink_helo },
	{ SMTP_CMD_EHLO, RULES_EHLO, 0, sink_check_helo, sink_ehlo },
	{ SMTP_CMD_MAIL, RULES_MAIL, SINK_F_TLS | SINK_F_HELO | SINK_F_NOMAIL,
	    sink_check_mail, sink_mail },
	{ SMTP_CMD_RCPT, RULES_RCPT, SINK_F_TLS | SINK_F_MAIL, sink_check_rcpt,
	    sink_rcpt },
	{ SMTP_CMD_DATA, RULES_DATA, SINK_F_TLS | SINK_F_MAIL | SINK_F_RCPT,
	    sink_check_noarg, sink_data },
	{ SMTP_CMD_STARTTLS, RULES_STARTTLS, 0, sink_check_starttls,
	    sink_starttls },
	{ SMTP_CMD_RSET, RULES_RSET, 0, sink_check_noarg, sink_rset },
	{ SMTP_CMD_QUIT, RULES_QUIT, 0, NULL, sink_quit },
	{ SMTP_CMD_NOOP, RULES__COUNT, 0, NULL, sink_noop },
	{ SMTP_CMD_VRFY, RULES__COUNT, 0, NULL, sink_vrfy },
	{ SMTP_CMD_HELP, RULES__COUNT, 0, NULL, sink_help },
};

/* Returns SINK_STOP when a rule put the command off (the line stays). */
static enum sink_go
sink_command(struct sink_session *s, const char *line, size_t len)
{
	const struct rules_action *ov = NULL;
	const struct sink_cmd *c = NULL;
	struct smtp_cmd cmd;
	const char *enh = NULL, *text = NULL;
	int code = 0;
	size_t i;

	if (!s->resume)
		sink_event_cmd(s, line, len);
	if (smtp_cmd_parse(line, len, &cmd) == -1) {
		sink_reply(s, 501, "5.5.4", "Syntax error");
		return SINK_GO;
	}
	if (s->noservice) {
		/* RFC 5321 §3.1: after a 554 greeting only QUIT is served. */
		if (cmd.verb == SMTP_CMD_QUIT)
			sink_quit(s, &cmd, NULL);
		else
			sink_reply(s, 503, "5.5.1", "No service, only QUIT");
		return SINK_GO;
	}
	for (i = 0; i < sizeof(sink_cmds) / sizeof(sink_cmds[0]); i++)
		if (sink_cmds[i].verb == cmd.verb) {
			c = &sink_cmds[i];
			break;
		}
	if (c == NULL) {
		if (cmd.verb == SMTP_CMD_UNKNOWN)
			sink_reply(s, 500, "5.5.2", "Command unrecognized");
		else
			sink_reply(s, 502, "5.5.1", "Command not implemented");
		return SINK_GO;
	}

	if ((c->flags & SINK_F_TLS) && s->sink->tls_required && !s->tls) {
		code = 530;
		enh = "5.7.0";
		text = "Must issue a STARTTLS command first";
	} else if ((c->flags & SINK_F_HELO) && !s->has_helo) {
		code = 503;
		enh = "5.5.1";
		text = "Send HELO/EHLO first";
	} else if ((c->flags & SINK_F_NOMAIL) && s->has_mail) {
		code = 503;
		enh = "5.5.1";
		text = "Nested MAIL command";
	} else if ((c->flags & SINK_F_MAIL) && !s->has_mail) {
		code = 503;
		enh = "5.5.1";
		text = "Need MAIL command";
	} else if ((c->flags & SINK_F_RCPT) && s->nrcpt == 0) {
		code = 554;
		enh = "5.5.1";
		text = "No valid recipients";
	} else if (c->check != NULL &&
	    c->check(s, &cmd, &code, &enh, &text) == 0)
		code = 0;	/* the codec may set *code even on success */

	if (c->when != RULES__COUNT &&
	    sink_rule(s, c->when, c->verb == SMTP_CMD_RCPT && code == 0 ?
	    s->rcpt.addr : NULL, &ov) == SINK_STOP)
		return SINK_STOP;

	if (code != 0) {
		if (ov != NULL)
			sink_reply_verbatim(s, ov);
		else
			sink_reply(s, code, enh, text);
		return SINK_GO;
	}
	c->proceed(s, &cmd, ov);
	return SINK_GO;
}

/* ---- the session's input loop ---------------------------------------- */

static void
sink_consume(struct sink_session *s, size_t n)
{
	s->in_off += n;
	if (s->in_off == s->in.len) {
		buf_reset(&s->in);
		s->in_off = 0;
	} else if (s->in_off > SINK_COMPACT) {
		memmove(s->in.data, s->in.data + s->in_off, s->in.len - s->in_off);
		s->in.len -= s->in_off;
		s->in_off = 0;
	}
}

static int
sink_greet(struct sink_session *s)
{
	const struct rules_action *ov;
	const struct rules_action *g;

	if (sink_rule(s, RULES_CONNECT, NULL, &ov) == SINK_STOP)
		return 0;
	g = ov != NULL ? ov : &s->sink->greeting;
	sink_enter_state(s, SINK_CMD);
	if (g->code / 100 != 2)
		s->noservice = 1;
	sink_reply_verbatim(s, g);
	return 1;
}

/* One command line, if a whole one is buffered. */
static int
sink_cmd_next(struct sink_session *s)
{
	const char *p, *nl;
	size_t avail = s->in.len - s->in_off, len;

	if (avail == 0)
		return 0;
	p = s->in.data + s->in_off;
	/* The limit is decided on the buffer, before any parsing. */
	if ((nl = memchr(p, '\n', avail)) == NULL) {
		if (avail > SINK_LINE_MAX + 1) {
			if (!s->discard)
				sink_reply(s, 500, "5.5.2", "Line too long");
			s->discard = 1;
			sink_consume(s, avail);
		}
		return 0;
	}
	len = (size_t)(nl - p);
	if (s->discard) {
		s->discard = 0;
		sink_consume(s, len + 1);
		return 1;
	}
	/* Tests see whether a client pipelines: commands queued behind. */
	if (avail > (size_t)(nl - p) + 1 && !s->resume)
		sink_event(s, "event=pipelined behind=%zu",
		    avail - (size_t)(nl - p) - 1);
	if (len > 0 && p[len - 1] == '\r')
		len--;
	if (len > SINK_LINE_MAX)
		sink_reply(s, 500, "5.5.2", "Line too long");
	else if (sink_command(s, p, len) == SINK_STOP && s->paused)
		return 0;	/* the same line runs again when the delay is over */
	sink_consume(s, (size_t)(nl - p) + 1);
	return 1;
}

static int
sink_data_next(struct sink_session *s)
{
	const struct rules_action *ov;
	const char *p;
	size_t avail = s->in.len - s->in_off;
	uint64_t raw_cap;
	long n;
	int done = 0;

	if (avail == 0)
		return 0;
	p = s->in.data + s->in_off;
	if (!s->body_seen) {
		if (sink_rule(s, RULES_BODY, NULL, &ov) == SINK_STOP)
			return 0;
		s->body_seen = 1;
		if (ov != NULL) {
			/* Answer now; the content is still read up to its dot. */
			s->early = ov->kind == RULES_RAW ? -1 : ov->code;
			sink_reply_verbatim(s, ov);
			if (s->state != SINK_DATA)
				return 1;
		}
	}

	if ((n = smtp_data_rx_feed(&s->rx, p, avail, &s->msg, &done)) < 0) {
		log_msg(LOG_ERR, s->sid, "data", "error=ENOMEM");
		sink_reply(s, 451, "4.3.0", "Out of memory");
		sink_close(s, "enomem");
		return 1;
	}
	/* Keep the raw bytes too (bounded: stuffing at most doubles a line). */
	raw_cap = s->sink->max_size * 2 + 1024;
	if (!s->raw_full && s->raw.len + (size_t)n <= raw_cap) {
		if (buf_append(&s->raw, p, (size_t)n) == -1)
			s->raw_full = 1;
	} else
		s->raw_full = 1;
	sink_consume(s, (size_t)n);
	if (done) {
		sink_enter_state(s, SINK_DOT);
		return 1;
	}
	return n > 0 && s->in.len > s->in_off;
}

static int
sink_dot(struct sink_session *s)
{
	struct sim_sink *sk = s->sink;
	const struct rules_action *ov = NULL;
	const struct buf *c;
	struct buf tmp = BUF_INIT;
	struct sim_msg *m = NULL;
	const char *enh = NULL;
	unsigned long n;
	char text[256];
	int accepted, code = 0;

	if (s->early == 0 && sink_rule(s, RULES_DOT, NULL, &ov) == SINK_STOP) {
		/* Dropped or hung at the dot: never acknowledged, keep it aside. */
		if (!s->paused && !(s->rx.flags & SMTP_DATA_TOO_BIG) &&
		    (c = sink_content(s, &tmp)) != NULL)
			sink_store(s, 0, ++sk->nmsgs, c);
		buf_free(&tmp);
		return 0;
	}
	sink_enter_state(s, SINK_CMD);

	if (s->rx.flags & SMTP_DATA_TOO_BIG) {
		sink_event(s, "event=rejected reason=size");
		log_msg(LOG_INFO, s->sid, "rejected", "reason=size size=%" PRIu64,
		    s->rx.size);
		if (s->early == 0) {
			if (ov != NULL)
				sink_reply_verbatim(s, ov);
			else
				sink_reply(s, 552, "5.3.4",
				    "Message size exceeds fixed maximum message size");
		}
		sink_reset_txn(s);
		return 1;
	}

	if (s->early != 0)
		accepted = s->early / 100 == 2;
	else
		accepted = ov == NULL || ov->code / 100 == 2;
	n = ++sk->nmsgs;
	if ((c = sink_content(s, &tmp)) == NULL)
		goto enomem;
	if (accepted && (sk->keep || sk->on_msg != NULL ||
	    sk->on_accept != NULL) && (m = sink_make_msg(s, n, c)) == NULL)
		goto enomem;
	/* The accept hook decides only when no rule has already. */
	text[0] = '\0';
	if (accepted && s->early == 0 && ov == NULL && sk->on_accept != NULL &&
	    (code = sk->on_accept(sk->on_accept_arg, m, &enh, text,
	    sizeof(text))) / 100 != 2)
		accepted = 0;
	if (sink_store(s, accepted, n, c) == -1) {
		if (s->early == 0)
			sink_reply(s, 451, "4.3.0", "Cannot store message");
		sim_msg_free(m);
		goto done;
	}
	if (accepted)
		sink_record(sk, m);
	else
		sim_msg_free(m);
	/* After an early reply from a body rule, the dot gets none. */
	if (s->early == 0 && ov != NULL)
		sink_reply_verbatim(s, ov);
	else if (s->early == 0 && code != 0)
		sink_reply(s, code, enh, text);
	else if (s->early == 0) {
		snprintf(text, sizeof(text), "Ok: queued as msg-%06lu", n);
		sink_reply(s, 250, "2.0.0", text);
	}
	goto done;
enomem:
	log_msg(LOG_ERR, s->sid, "dot", "error=ENOMEM");
	if (s->early == 0)
		sink_reply(s, 451, "4.3.0", "Out of memory");
done:
	buf_free(&tmp);
	sink_reset_txn(s);
	return 1;
}

static void	sink_read_cb(struct bufferevent *, void *);
static void	sink_write_cb(struct bufferevent *, void *);
static void	sink_event_cb(struct bufferevent *, short, void *);

static void
sink_wake_cb(evutil_socket_t fd, short ev, void *arg)
{
	sink_run(arg);
}

/*
 * The socket's output drained. Under TLS nothing else says so: the
 * filter's write callback fires when our bytes are encrypted, not sent.
 * Freeing from inside the buffer's own callback is not safe, so the
 * session is woken from the loop.
 */
static void
sink_drain_cb(struct evbuffer *buf, const struct evbuffer_cb_info *info,
    void *arg)
{
	struct sink_session *s = arg;

	if (info->n_deleted > 0 && evbuffer_get_length(buf) == 0 &&
	    s->state == SINK_CLOSING)
		event_active(s->wake, EV_TIMEOUT, 0);
}

/*
 * The 220 to STARTTLS is queued in clear: put TLS under the session.
 * Nothing the client sent before the handshake counts (RFC 3207 4.2;
 * CVE-2011-0411): the rest of the input goes, and so do HELO and any
 * transaction.
 */
static int
sink_tls_begin(struct sink_session *s)
{
	struct sim_sink *sk = s->sink;
	struct bufferevent *tb, *under = s->bev;
	size_t n = s->in.len - s->in_off;
	SSL *ssl;

	if (n > 0) {
		sink_event(s, "event=tls-discard bytes=%zu", n);
		log_msg(LOG_WARN, s->sid, "tls-discard", "bytes=%zu", n);
	}
	buf_reset(&s->in);
	s->in_off = 0;
	s->discard = 0;
	s->has_helo = 0;
	buf_reset(&s->helo);
	sink_reset_txn(s);
	if (sk->ninject > 0) {
		sink_event(s, "event=tls-inject bytes=%zu", sk->ninject);
		if (evbuffer_add(bufferevent_get_output(under), sk->inject,
		    sk->ninject) == -1)
			log_msg(LOG_ERR, s->sid, "tls-inject", "error=ENOMEM");
	}
	if ((s->wake = event_new(sk->base, -1, 0, sink_wake_cb, s)) == NULL ||
	    (ssl = SSL_new(sk->tls_ctx)) == NULL ||
	    (tb = sim_tls_start(under, ssl, 1)) == NULL) {
		log_msg(LOG_ERR, s->sid, "tls", "error=ENOMEM");
		sink_close(s, "tls");
		return 0;
	}
	s->bev = tb;
	s->tls = 1;
	s->drain_cb = evbuffer_add_cb(bufferevent_get_output(under),
	    sink_drain_cb, s);
	bufferevent_setcb(tb, sink_read_cb, sink_write_cb, sink_event_cb, s);
	bufferevent_enable(tb, EV_READ | EV_WRITE);
	sink_enter_state(s, SINK_HANDSHAKE);
	return 0;
}

static void
sink_process(struct sink_session *s)
{
	for (;;) {
		int more = 0;

		if (s->paused || s->hung)
			return;
		switch (s->state) {
		case SINK_GREETING:
			more = sink_greet(s);
			break;
		case SINK_CMD:
			more = sink_cmd_next(s);
			break;
		case SINK_DATA:
			more = sink_data_next(s);
			break;
		case SINK_DOT:
			more = sink_dot(s);
			break;
		case SINK_STARTTLS:
			more = sink_tls_begin(s);
			break;
		case SINK_HANDSHAKE:
		case SINK_CLOSING:
		case SINK_DEAD:
			return;
		}
		if (!more)
			return;
	}
}

/* ---- connection plumbing ------------------------------------------- */

static void
sink_close(struct sink_session *s, const char *reason)
{
	if (s->state == SINK_CLOSING || s->state == SINK_DEAD)
		return;
	s->close_reason = reason;
	sink_enter_state(s, SINK_CLOSING);
}

static void
sink_free(struct sink_session *s)
{
	sink_event(s, "event=close");
	log_msg(LOG_INFO, s->sid, "close", "reason=%s",
	    s->close_reason ? s->close_reason : "unknown");
	TAILQ_REMOVE(&s->sink->sessions, s, entry);
	if (s->timer != NULL)
		event_free(s->timer);
	if (s->drain_cb != NULL)
		evbuffer_remove_cb_entry(bufferevent_get_output(
		    bufferevent_get_underlying(s->bev)), s->drain_cb);
	if (s->wake != NULL)
		event_free(s->wake);
	if (s->bev != NULL)
		bufferevent_free(s->bev);
	if (s->wire_fd != -1)
		close(s->wire_fd);
	sink_reset_txn(s);
	buf_free(&s->in);
	buf_free(&s->helo);
	buf_free(&s->env);
	buf_free(&s->msg);
	buf_free(&s->raw);
	free(s);
}

/* Every callback ends here: act on EOF, flush-then-close, free. */
static void
sink_run(struct sink_session *s)
{
	sink_process(s);
	if (s->eof && !s->paused && s->state != SINK_DEAD)
		sink_close(s, s->close_reason ? s->close_reason : "eof");
	if (s->state == SINK_CLOSING && sim_flushed(s->bev))
		sink_enter_state(s, SINK_DEAD);
	if (s->state == SINK_DEAD)
		sink_free(s);
}

static void
sink_read_cb(struct bufferevent *bev, void *arg)
{
	struct sink_session *s = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	char chunk[16384];
	int n;

	while ((n = evbuffer_remove(in, chunk, sizeof(chunk))) > 0) {
		/* On disk before anything we might answer to it. */
		if (s->wire_fd != -1 &&
		    sim_write_all(s->wire_fd, chunk, (size_t)n) == -1)
			log_msg(LOG_ERR, s->sid, "wire", "errno=%d", errno);
		if (s->hung || s->state == SINK_CLOSING)
			continue;
		if (buf_append(&s->in, chunk, (size_t)n) == -1) {
			log_msg(LOG_ERR, s->sid, "read", "error=ENOMEM");
			sink_close(s, "enomem");
		}
	}
	sink_run(s);
}

static void
sink_write_cb(struct bufferevent *bev, void *arg)
{
	sink_run(arg);
}

static void
sink_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct sink_session *s = arg;
	struct sim_tls_facts f;
	struct buf q = BUF_INIT;
	char why[256];

	if (s->state == SINK_HANDSHAKE && (what & BEV_EVENT_CONNECTED)) {
		sim_tls_facts(bufferevent_openssl_get_ssl(bev), &f);
		snprintf(s->tls_info, sizeof(s->tls_info), "%s %s", f.proto,
		    f.cipher);
		sink_event(s, "event=tls proto=%s cipher=%s", f.proto, f.cipher);
		log_msg(LOG_INFO, s->sid, "tls", "proto=%s cipher=%s", f.proto,
		    f.cipher);
		sink_enter_state(s, SINK_CMD);
		sink_run(s);
		return;
	}
	if (s->state == SINK_HANDSHAKE) {
		tls_error(bufferevent_openssl_get_ssl(bev),
		    bufferevent_get_openssl_error(bev), why, sizeof(why));
		if (sim_quote(&q, why, strlen(why)) == 0 && buf_cstr(&q) != NULL)
			sink_event(s, "event=tls-failed reason=%s", q.data);
		buf_free(&q);
		log_msg(LOG_INFO, s->sid, "tls-failed", "reason=\"%s\"", why);
		s->close_reason = "tls-failed";
		sink_enter_state(s, SINK_DEAD);
		sink_free(s);
		return;
	}
	if (what & BEV_EVENT_EOF) {
		s->eof = 1;
		if (s->close_reason == NULL)
			s->close_reason = "client-eof";
		sink_read_cb(bev, s);	/* whatever is left, then close */
		return;
	}
	if (what & BEV_EVENT_ERROR) {
		log_msg(LOG_INFO, s->sid, "error", "errno=%d",
		    EVUTIL_SOCKET_ERROR());
		if (s->close_reason == NULL)
			s->close_reason = "error";
		sink_enter_state(s, SINK_DEAD);
		sink_free(s);
	}
}

static void
sink_accept_cb(struct evconnlistener *l, evutil_socket_t fd,
    struct sockaddr *sa, int salen, void *arg)
{
	struct sim_sink *sk = arg;
	struct sink_session *s;
	char path[PATH_MAX];
	int r;

	if ((s = calloc(1, sizeof(*s))) == NULL) {
		log_msg(LOG_ERR, NULL, "accept", "error=ENOMEM");
		evutil_closesocket(fd);
		return;
	}
	netaddr_nodelay(fd);
	s->sink = sk;
	s->id = ++sk->nsessions;
	s->wire_fd = -1;
	s->state = SINK_GREETING;
	if (sk->name != NULL)
		snprintf(s->sid, sizeof(s->sid), "%.32s.%06lu", sk->name, s->id);
	else
		snprintf(s->sid, sizeof(s->sid), "%06lu", s->id);
	netaddr_str(sa, s->client, sizeof(s->client));
	netaddr_ip(sa, s->ip, sizeof(s->ip));
	buf_init(&s->in);
	buf_init(&s->helo);
	buf_init(&s->env);
	buf_init(&s->msg);
	buf_init(&s->raw);
	TAILQ_INSERT_TAIL(&sk->sessions, s, entry);

	if (sk->dir != NULL) {
		r = snprintf(path, sizeof(path), "%s/wire-%06lu.raw", sk->dir,
		    s->id);
		if (r < 0 || (size_t)r >= sizeof(path) ||
		    (s->wire_fd = open(path, O_WRONLY | O_CREAT | O_TRUNC |
		    O_CLOEXEC, 0644)) == -1)
			log_msg(LOG_ERR, s->sid, "wire", "path=%s errno=%d", path,
			    errno);
	}

	if ((s->bev = bufferevent_socket_new(sk->base, fd,
	    BEV_OPT_CLOSE_ON_FREE)) == NULL) {
		evutil_closesocket(fd);
		s->close_reason = "enomem";
		sink_free(s);
		return;
	}
	bufferevent_setcb(s->bev, sink_read_cb, sink_write_cb, sink_event_cb, s);
	bufferevent_enable(s->bev, EV_READ | EV_WRITE);

	sink_event(s, "event=connect");
	log_msg(LOG_INFO, s->sid, "connect", "client=%s", s->client);
	sink_run(s);
}

/* ---- the sim_sink object ------------------------------------------------ */

static int
sink_set_ext(struct sim_sink *sk, const char *name)
{
	size_t i;

	for (i = 0; i < SINK_NEXTS; i++)
		if (strcasecmp(name, sink_exts[i].name) == 0) {
			sk->ext &= ~sink_exts[i].flag;
			return 0;
		}
	return -1;
}

static int
sink_host_ok(const char *h)
{
	if (*h == '\0')
		return 0;
	for (; *h != '\0'; h++)
		if ((unsigned char)*h <= 0x20 || *h == 0x7f)
			return 0;
	return 1;
}

static int
sink_bind(struct sim_sink *sk, const char *addr, char *err, size_t errlen)
{
	struct sockaddr_storage ss;
	socklen_t sslen = sizeof(ss);
	const char *e;

	if (sim_resolve(addr, 0, &ss, &sslen, &e) == -1) {
		snprintf(err, errlen, "listen %s: %s", addr, e);
		return -1;
	}
	sk->listener = evconnlistener_new_bind(sk->base, sink_accept_cb, sk,
	    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC,
	    128, (struct sockaddr *)&ss, (int)sslen);
	if (sk->listener == NULL) {
		snprintf(err, errlen, "cannot listen on %s: %s", addr,
		    strerror(errno));
		return -1;
	}
	sslen = sizeof(ss);
	if (getsockname(evconnlistener_get_fd(sk->listener),
	    (struct sockaddr *)&ss, &sslen) == -1) {
		snprintf(err, errlen, "getsockname: %s", strerror(errno));
		return -1;
	}
	netaddr_str((struct sockaddr *)&ss, sk->addr, sizeof(sk->addr));
	return 0;
}

static int
sink_open_dir(struct sim_sink *sk, char *err, size_t errlen)
{
	char path[PATH_MAX];
	int r;

	if (mkdir(sk->dir, 0755) == -1 && errno != EEXIST) {
		snprintf(err, errlen, "mkdir %s: %s", sk->dir, strerror(errno));
		return -1;
	}
	r = snprintf(path, sizeof(path), "%s/events.log", sk->dir);
	if (r < 0 || (size_t)r >= sizeof(path)) {
		snprintf(err, errlen, "directory name too long");
		return -1;
	}
	if ((sk->events_fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC,
	    0644)) == -1) {
		snprintf(err, errlen, "open %s: %s", path, strerror(errno));
		return -1;
	}
	return 0;
}

static int
sink_tls_setup(struct sim_sink *sk, const struct sim_sink_opts *o, char *err,
    size_t errlen)
{
	char why[512];
	const char *e;
	long n;

	if ((o->tls_cert == NULL) != (o->tls_key == NULL)) {
		snprintf(err, errlen, "tls_cert and tls_key go together");
		return -1;
	}
	if ((o->tls_required || o->tls_inject != NULL) && o->tls_cert == NULL) {
		snprintf(err, errlen, "tls_required and tls_inject need "
		    "tls_cert and tls_key");
		return -1;
	}
	if (o->tls_cert == NULL)
		return 0;
	if ((sk->tls_ctx = tls_server_ctx(o->tls_cert, o->tls_key, NULL, why,
	    sizeof(why))) == NULL) {
		snprintf(err, errlen, "tls: %s", why);
		return -1;
	}
	sk->tls_required = o->tls_required;
	if (o->tls_inject != NULL) {
		if ((n = rules_unescape(o->tls_inject, sk->inject,
		    sizeof(sk->inject), &e)) == -1) {
			snprintf(err, errlen, "tls_inject: %s", e);
			return -1;
		}
		sk->ninject = (size_t)n;
	}
	return 0;
}

static char *
sink_strdup(const char *s, int *fail)
{
	char *c;

	if (s == NULL)
		return NULL;
	if ((c = strdup(s)) == NULL)
		*fail = 1;
	return c;
}

struct sim_sink *
sim_sink_new(struct event_base *base, const struct sim_sink_opts *o,
    char *err, size_t errlen)
{
	struct sim_sink *sk;
	char deftext[RULES_TEXT_MAX];
	const char *e;
	size_t i;
	int fail = 0, r;

	if ((sk = calloc(1, sizeof(*sk))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	sk->base = base;
	sk->events_fd = -1;
	sk->ext = SMTP_EXT_PIPELINING | SMTP_EXT_SIZE | SMTP_EXT_8BITMIME |
	    SMTP_EXT_DSN | SMTP_EXT_ENHANCED | SMTP_EXT_STARTTLS;
	sk->max_size = o->max_size ? o->max_size : SINK_SIZE_DEFAULT;
	sk->max_rcpts = o->max_rcpts ? o->max_rcpts : SINK_RCPT_MAX;
	sk->no_ehlo = o->no_ehlo;
	sk->keep = !o->no_keep;
	TAILQ_INIT(&sk->sessions);
	sk->name = sink_strdup(o->name, &fail);
	sk->label = sink_strdup(o->listener ? o->listener : "main", &fail);
	sk->dir = sink_strdup(o->dir, &fail);
	sk->hostname = sink_strdup(o->hostname ? o->hostname : SINK_HOSTNAME,
	    &fail);
	if (fail) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	if (!sink_host_ok(sk->hostname)) {
		snprintf(err, errlen, "bad hostname");
		goto fail;
	}
	if (sk->max_size > (UINT64_MAX - 1024) / 2) {
		snprintf(err, errlen, "max_size too large");
		goto fail;
	}
	for (i = 0; i < o->nrules; i++)
		if (rules_add(&sk->rules, o->rules[i], &e) == -1) {
			snprintf(err, errlen, "rule '%s': %s", o->rules[i], e);
			goto fail;
		}
	for (i = 0; i < o->nno_ext; i++)
		if (sink_set_ext(sk, o->no_ext[i]) == -1) {
			snprintf(err, errlen, "unknown extension '%s'", o->no_ext[i]);
			goto fail;
		}
	if (o->greeting == NULL) {
		r = snprintf(deftext, sizeof(deftext), "220 %s ESMTP mta-sim",
		    sk->hostname);
		if (r < 0 || (size_t)r >= sizeof(deftext)) {
			snprintf(err, errlen, "hostname too long");
			goto fail;
		}
	}
	if (rules_parse_reply(o->greeting ? o->greeting : deftext,
	    &sk->greeting, &e) == -1) {
		snprintf(err, errlen, "greeting: %s", e);
		goto fail;
	}
	if (sink_tls_setup(sk, o, err, errlen) == -1)
		goto fail;
	if (sk->dir != NULL && sink_open_dir(sk, err, errlen) == -1)
		goto fail;
	if (sink_bind(sk, o->listen ? o->listen : "127.0.0.1:0", err,
	    errlen) == -1)
		goto fail;
	log_msg(LOG_INFO, sk->name, "listening", "addr=%s dir=%s", sk->addr,
	    sk->dir ? sk->dir : "-");
	return sk;
fail:
	sim_sink_free(sk);
	return NULL;
}

const char *
sim_sink_addr(const struct sim_sink *sk)
{
	return sk->addr;
}

size_t
sim_sink_count(const struct sim_sink *sk)
{
	return sk->naccepted;
}

const struct sim_msg *
sim_sink_msg(const struct sim_sink *sk, size_t i)
{
	return i < sk->nkept ? sk->msgs[i] : NULL;
}

void
sim_sink_on_message(struct sim_sink *sk, sim_msg_cb *cb, void *arg)
{
	sk->on_msg = cb;
	sk->on_msg_arg = arg;
}

void
sim_sink_on_accept(struct sim_sink *sk, sim_sink_accept_cb *cb, void *arg)
{
	sk->on_accept = cb;
	sk->on_accept_arg = arg;
}

unsigned long
sim_sink_sessions(const struct sim_sink *sk)
{
	return sk->nsessions;
}

void
sim_sink_free(struct sim_sink *sk)
{
	struct sink_session *s;
	size_t i;

	if (sk == NULL)
		return;
	while ((s = TAILQ_FIRST(&sk->sessions)) != NULL) {
		if (s->close_reason == NULL)
			s->close_reason = "shutdown";
		sink_free(s);
	}
	if (sk->listener != NULL)
		evconnlistener_free(sk->listener);
	if (sk->events_fd != -1)
		close(sk->events_fd);
	for (i = 0; i < sk->nkept; i++)
		sim_msg_free(sk->msgs[i]);
	free(sk->msgs);
	rules_free(&sk->rules);
	SSL_CTX_free(sk->tls_ctx);
	free(sk->name);
	free(sk->label);
	free(sk->dir);
	free(sk->hostname);
	free(sk);
}

/* ---- command line ---------------------------------------------------- */

static void
sink_signal_cb(evutil_socket_t sig, short ev, void *arg)
{
	struct event_base *base = arg;

	log_msg(LOG_INFO, NULL, "shutdown", "signal=%d", (int)sig);
	event_base_loopbreak(base);
}

void
sink_usage(FILE *fp)
{
	fprintf(fp,
	    "usage: mta-sim sink --dir DIR [--listen IP:PORT] [--hostname NAME]\n"
	    "                    [--rule WHEN=ACTION]... [--no-ext NAME]...\n"
	    "                    [--no-ehlo] [--greeting \"CODE TEXT\"]\n"
	    "                    [--max-message-size BYTES]\n"
	    "                    [--tls-cert FILE --tls-key FILE [--tls-required]\n"
	    "                     [--tls-inject BYTES]]\n"
	    "  Prints \"listening IP:PORT\" once ready; records into DIR:\n"
	    "  msg-NNNNNN.eml/.env, msg-NNNNNN.rejected.eml, wire-SSSSSS.raw,\n"
	    "  events.log.  --listen defaults to 127.0.0.1:0.\n"
	    "  WHEN:   connect helo ehlo mail rcpt rcpt:ADDR data body dot rset\n"
	    "          quit, optionally #N (only the Nth occurrence)\n"
	    "  ACTION: reply:CODE TEXT | delay:SECONDS | drop | hang |\n"
	    "          raw:BYTES | raw-repeat:N:BYTES (escapes \\r \\n \\t \\0\n"
	    "          \\\\ \\xNN)\n"
	    "  WHEN also: starttls\n"
	    "  --no-ext: PIPELINING SIZE 8BITMIME DSN ENHANCEDSTATUSCODES STARTTLS\n"
	    "  --tls-cert/--tls-key: offer STARTTLS with this PEM chain and key.\n"
	    "  --tls-required: 530 to MAIL before STARTTLS.  --tls-inject: after\n"
	    "  the 220 to STARTTLS, write BYTES in clear (escapes as in raw:).\n");
}

static int
sink_opt_size(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;

	if (*s < '0' || *s > '9')
		return -1;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0 || *end != '\0' || v == 0 || v > (UINT64_MAX - 1024) / 2)
		return -1;
	*out = v;
	return 0;
}

/* Repeatable options: their values, in order. */
struct sink_list {
	const char	**v;
	size_t		  n;
};

static void
sink_opt_push(struct sink_list *l, const char *s)
{
	const char **nv;

	if ((nv = reallocarray(l->v, l->n + 1, sizeof(*nv))) == NULL)
		log_fatal("out of memory");
	nv[l->n++] = s;
	l->v = nv;
}

/*
 * Fill o from the command line: 0, 1 after --help, -1 on a mistake. Each
 * value is checked here, so that a mistake is a usage error (status 2)
 * with the option named, not a failure to start.
 */
static int
sink_options(struct sim_sink_opts *o, struct sink_list *rules,
    struct sink_list *no_ext, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "listen", required_argument, NULL, 'l' },
		{ "dir", required_argument, NULL, 'd' },
		{ "hostname", required_argument, NULL, 'H' },
		{ "rule", required_argument, NULL, 'r' },
		{ "no-ext", required_argument, NULL, 'x' },
		{ "no-ehlo", no_argument, NULL, 'E' },
		{ "greeting", required_argument, NULL, 'g' },
		{ "max-message-size", required_argument, NULL, 's' },
		{ "tls-cert", required_argument, NULL, 'c' },
		{ "tls-key", required_argument, NULL, 'k' },
		{ "tls-required", no_argument, NULL, 'R' },
		{ "tls-inject", required_argument, NULL, 'i' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	struct rules scratch = RULES_INIT;
	struct rules_action a;
	struct sim_sink probe;
	const char *err;
	char deftext[RULES_TEXT_MAX], raw[RULES_RAW_MAX];
	int ch, r;

	optind = 1;
	while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (ch) {
		case 'l':
			o->listen = optarg;
			break;
		case 'd':
			o->dir = optarg;
			break;
		case 'H':
			o->hostname = optarg;
			break;
		case 'r':
			r = rules_add(&scratch, optarg, &err);
			rules_free(&scratch);
			if (r == -1) {
				fprintf(stderr, "mta-sim sink: --rule '%s': %s\n",
				    optarg, err);
				return -1;
			}
			sink_opt_push(rules, optarg);
			break;
		case 'x':
			probe.ext = ~0u;
			if (sink_set_ext(&probe, optarg) == -1) {
				fprintf(stderr, "mta-sim sink: --no-ext: unknown "
				    "extension '%s'\n", optarg);
				return -1;
			}
			sink_opt_push(no_ext, optarg);
			break;
		case 'E':
			o->no_ehlo = 1;
			break;
		case 'g':
			o->greeting = optarg;
			break;
		case 's':
			if (sink_opt_size(optarg, &o->max_size) == -1) {
				fprintf(stderr, "mta-sim sink: bad "
				    "--max-message-size '%s'\n", optarg);
				return -1;
			}
			break;
		case 'c':
			o->tls_cert = optarg;
			break;
		case 'k':
			o->tls_key = optarg;
			break;
		case 'R':
			o->tls_required = 1;
			break;
		case 'i':
			if (rules_unescape(optarg, raw, sizeof(raw), &err) <= 0) {
				fprintf(stderr, "mta-sim sink: --tls-inject: %s\n",
				    *optarg == '\0' ? "empty" : err);
				return -1;
			}
			o->tls_inject = optarg;
			break;
		case 'h':
			sink_usage(stdout);
			return 1;
		default:
			sink_usage(stderr);
			return -1;
		}
	}
	if ((o->tls_cert == NULL) != (o->tls_key == NULL) ||
	    ((o->tls_required || o->tls_inject != NULL) && o->tls_cert == NULL)) {
		fprintf(stderr, "mta-sim sink: --tls-cert and --tls-key go "
		    "together, and the other --tls options need them\n");
		return -1;
	}
	o->rules = rules->v;
	o->nrules = rules->n;
	o->no_ext = no_ext->v;
	o->nno_ext = no_ext->n;
	if (optind != argc || o->dir == NULL) {
		fprintf(stderr, "mta-sim sink: %s\n", o->dir == NULL ?
		    "--dir is required" : "unexpected argument");
		sink_usage(stderr);
		return -1;
	}
	if (!sink_host_ok(o->hostname)) {
		fprintf(stderr, "mta-sim sink: bad --hostname\n");
		return -1;
	}
	if (o->greeting == NULL) {
		r = snprintf(deftext, sizeof(deftext), "220 %s ESMTP mta-sim",
		    o->hostname);
		if (r < 0 || (size_t)r >= sizeof(deftext)) {
			fprintf(stderr, "mta-sim sink: --hostname too long\n");
			return -1;
		}
	} else if (rules_parse_reply(o->greeting, &a, &err) == -1) {
		fprintf(stderr, "mta-sim sink: --greeting: %s\n", err);
		return -1;
	}
	return 0;
}

int
sink_main(int argc, char **argv)
{
	struct sim_sink_opts o;
	struct sink_list rules = { NULL, 0 }, no_ext = { NULL, 0 };
	struct sim_sink *sk;
	struct event_base *base;
	struct event *sigterm, *sigint;
	char err[512];
	int r;

	memset(&o, 0, sizeof(o));
	o.listen = "127.0.0.1:0";
	o.hostname = SINK_HOSTNAME;
	/* Files are the record here: a long run must not grow in memory. */
	o.no_keep = 1;
	if ((r = sink_options(&o, &rules, &no_ext, argc, argv)) != 0) {
		free(rules.v);
		free(no_ext.v);
		return r == 1 ? 0 : SIM_EXIT_USAGE;
	}

	if ((base = event_base_new()) == NULL)
		log_fatal("event_base_new failed");
	sk = sim_sink_new(base, &o, err, sizeof(err));
	free(rules.v);
	free(no_ext.v);
	if (sk == NULL) {
		fprintf(stderr, "mta-sim sink: %s\n", err);
		event_base_free(base);
		return 1;
	}
	/* Tests wait for exactly this line. */
	printf("listening %s\n", sim_sink_addr(sk));
	fflush(stdout);

	sigterm = evsignal_new(base, SIGTERM, sink_signal_cb, base);
	sigint = evsignal_new(base, SIGINT, sink_signal_cb, base);
	if (sigterm == NULL || sigint == NULL ||
	    evsignal_add(sigterm, NULL) == -1 || evsignal_add(sigint, NULL) == -1)
		log_fatal("cannot install signal handlers");

	event_base_dispatch(base);

	log_msg(LOG_INFO, NULL, "exit", "sessions=%lu messages=%zu",
	    sim_sink_sessions(sk), sim_sink_count(sk));
	sim_sink_free(sk);
	event_free(sigterm);
	event_free(sigint);
	event_base_free(base);
	return 0;
}
