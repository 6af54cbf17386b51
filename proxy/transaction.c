/*
 * transaction: one inbound transaction paired with its outbound one
 * (see transaction.h).
 */
#include "transaction.h"

#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config.h"
#include "log.h"
#include "message.h"
#include "netaddr.h"
#include "nexthop.h"
#include "smtp_client.h"
#include "smtp_reply.h"

enum txn_op {
	TXN_IDLE,
	TXN_OPEN,	/* walking the next-hop list for MAIL */
	TXN_MAIL,
	TXN_RCPT,
	TXN_DATA,
	TXN_RSET
};

struct txn {
	struct event_base	*base;
	struct config		*cfg;
	struct dns		*dns;
	char			 sid[32];
	struct sockaddr_storage	 peer;
	txn_reply_cb		*cb;
	void			*arg;

	struct smtp_client	*out;
	struct nexthop_iter	*hops;
	enum txn_op		 op;
	int			 open;		/* next hop accepted MAIL */
	unsigned		 count;		/* transactions relayed */
	struct smtp_mail_args	 mail;
	unsigned		 nrcpt;
	struct buf		 content;
	struct timespec		 t_data;	/* end of DATA from upstream */

	/* The reply to give once an abort's RSET is answered. */
	int			 abort_code;
	char			 abort_enh[16];
	char			 abort_text[512];
};

static void txn_client_cb(struct smtp_client *, enum smtp_client_event,
    const struct smtp_reply *, const char *, void *);
static void txn_try_next(struct txn *);

struct txn *
txn_new(struct event_base *base, struct config *cfg, struct dns *dns,
    const char *sid, const struct sockaddr *peer, txn_reply_cb *cb, void *arg)
{
	struct txn *t;

	if ((t = calloc(1, sizeof(*t))) == NULL)
		return NULL;
	t->base = base;
	t->cfg = config_ref(cfg);
	t->dns = dns;
	snprintf(t->sid, sizeof(t->sid), "%s", sid);
	memcpy(&t->peer, peer, peer->sa_family == AF_INET6 ?
	    sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in));
	t->cb = cb;
	t->arg = arg;
	buf_init(&t->content);
	return t;
}

void
txn_free(struct txn *t)
{
	if (t == NULL)
		return;
	nexthop_iter_free(t->hops);
	smtp_client_free(t->out);
	buf_free(&t->content);
	config_unref(t->cfg);
	free(t);
}

static void
txn_end(struct txn *t)
{
	t->open = 0;
	t->nrcpt = 0;
	/* Keep small buffers for the next message; give large ones back. */
	if (t->content.cap > 1024 * 1024)
		buf_free(&t->content);
	else
		buf_reset(&t->content);
}

static void
txn_reply(struct txn *t, int code, const char *enh, const char *text)
{
	t->op = TXN_IDLE;
	t->cb(t->arg, code, enh, text);
}

/* Relay a next hop's reply: its code, enhanced code and scrubbed text. */
static void
txn_relay(struct txn *t, const struct smtp_reply *r)
{
	static const char *const dflt[] = { "", "", "2.0.0", "", "4.0.0", "5.0.0" };
	const char *enh = r->enh;
	int code = r->code;

	/* A 421 would tell the upstream our session is closing; it is not. */
	if (code == 421)
		code = 451;
	if (enh[0] == '\0' || smtp_enh_valid(enh, code) != 0)
		enh = dflt[code / 100];
	txn_reply(t, code, enh, r->text.len ? r->text.data : "");
}

static void
txn_client_opts(struct txn *t, struct smtp_client_opts *o,
    struct sockaddr_storage *src)
{
	const struct config *cfg = t->cfg;
	socklen_t len;

	memset(o, 0, sizeof(*o));
	o->helo_name = cfg->helo_name;
	if (cfg->source_address[0] != '\0' &&
	    netaddr_to_sockaddr(cfg->source_address, 0, src, &len) == 0) {
		o->source = (struct sockaddr *)src;
		o->sourcelen = len;
	}
	o->t_connect = cfg->timeouts.connect;
	o->t_greeting = cfg->timeouts.greeting;
	o->t_reply = cfg->timeouts.reply;
	o->t_data_init = cfg->timeouts.data_init;
	o->t_data_block = cfg->timeouts.data_block;
	o->t_data_done = cfg->timeouts.data_done;
}

static void
txn_wake(void *arg)
{
	txn_try_next(arg);
}

/* Walk the next-hop list until one connection attempt is under way. */
static void
txn_try_next(struct txn *t)
{
	struct smtp_client_opts opts;
	struct sockaddr_storage ss, src;
	socklen_t sslen;
	char label[NETADDR_HOST_MAX + 80];

	txn_client_opts(t, &opts, &src);
	for (;;) {
		switch (nexthop_iter_next(t->hops, &ss, &sslen, label,
		    sizeof(label))) {
		case NEXTHOP_PENDING:
			return;
		case NEXTHOP_END:
			log_msg(LOG_WARN, t->sid, "nexthop-none",
			    "reason=\"all next hops failed\"%s%s",
			    nexthop_iter_error(t->hops)[0] ? " dns=" : "",
			    nexthop_iter_error(t->hops));
			nexthop_iter_free(t->hops);
			t->hops = NULL;
			txn_reply(t, 451, "4.4.1",
			    "No next hop available, try again later");
			return;
		case NEXTHOP_ADDR:
			break;
		}
		if ((t->out = smtp_client_new(t->base, t->sid, &opts,
		    txn_client_cb, t)) == NULL) {
			nexthop_iter_free(t->hops);
			t->hops = NULL;
			txn_reply(t, 451, "4.3.0", "Out of memory, try again later");
			return;
		}
		if (smtp_client_connect(t->out, (struct sockaddr *)&ss, sslen,
		    label) == 0)
			return;
		log_msg(LOG_INFO, t->sid, "nexthop-failed",
		    "hop=%s state=connect reason=\"%m\"", label);
		smtp_client_free(t->out);
		t->out = NULL;
	}
}

void
txn_mail(struct txn *t, const struct smtp_mail_args *m)
{
	t->mail = *m;
	t->nrcpt = 0;
	t->open = 0;
	if (t->out != NULL && smtp_client_ready(t->out)) {
		t->op = TXN_MAIL;
		smtp_client_mail(t->out, &t->mail, 0);
		return;
	}
	smtp_client_free(t->out);
	t->out = NULL;
	t->hops = nexthop_iter_new(t->cfg, t->sid, (struct sockaddr *)&t->peer,
	    t->dns, txn_wake, t);
	if (t->hops == NULL) {
		txn_reply(t, 451, "4.3.0", "Out of memory, try again later");
		return;
	}
	t->op = TXN_OPEN;
	txn_try_next(t);
}

/* SIZE sent on: what the upstream announced plus the pass header. */
static uint64_t
txn_size_hint(const struct txn *t)
{
	size_t hl = strlen(t->cfg->pass_header);

	if (!t->mail.has_size)
		return 0;
	return t->mail.size + (hl ? hl + 2 : 0);
}

void
txn_rcpt(struct txn *t, const struct smtp_rcpt_args *r)
{
	if (!t->open || t->out == NULL || !smtp_client_ready(t->out)) {
		txn_reply(t, 451, "4.4.2", "Connection to next hop lost");
		return;
	}
	t->op = TXN_RCPT;
	smtp_client_rcpt(t->out, r);
}

unsigned
txn_nrcpt(const struct txn *t)
{
	return t->nrcpt;
}

struct buf *
txn_content(struct txn *t)
{
	return &t->content;
}

void
txn_data_end(struct txn *t)
{
	struct buf payload = BUF_INIT;

	clock_gettime(CLOCK_MONOTONIC, &t->t_data);
	if (!t->open || t->out == NULL || !smtp_client_ready(t->out)) {
		txn_end(t);
		txn_reply(t, 451, "4.4.2", "Connection to next hop lost");
		return;
	}
	if (message_serialize(&payload, t->cfg->pass_header, t->content.data,
	    t->content.len) == -1) {
		buf_free(&payload);
		t->op = TXN_IDLE;
		txn_abort(t, 451, "4.3.0", "Out of memory, try again later");
		return;
	}
	t->op = TXN_DATA;
	smtp_client_data(t->out, &payload);
}

void
txn_abort(struct txn *t, int code, const char *enh, const char *text)
{
	int was_open = t->open;

	txn_end(t);
	if (was_open && t->out != NULL && smtp_client_ready(t->out)) {
		t->abort_code = code;
		snprintf(t->abort_enh, sizeof(t->abort_enh), "%s", enh);
		snprintf(t->abort_text, sizeof(t->abort_text), "%s", text);
		t->op = TXN_RSET;
		smtp_client_rset(t->out);
		return;
	}
	txn_reply(t, code, enh, text);
}

void
txn_quit(struct txn *t)
{
	if (t->out != NULL) {
		smtp_client_quit(t->out);	/* frees itself */
		t->out = NULL;
	}
}

static void
txn_log_relayed(struct txn *t, const struct smtp_reply *r)
{
	struct timespec now;
	long ms;
	char from[SMTP_ADDR_MAX * 4 + 8];

	clock_gettime(CLOCK_MONOTONIC, &now);
	ms = (now.tv_sec - t->t_data.tv_sec) * 1000 +
	    (now.tv_nsec - t->t_data.tv_nsec) / 1000000;
	log_msg(smtp_reply_class(r) == 2 ? LOG_INFO : LOG_WARN, t->sid,
	    smtp_reply_class(r) == 2 ? "relayed" : "refused",
	    "msg=%s.%u hop=%s from=%s nrcpt=%u size=%zu reply=%d delay_ms=%ld",
	    t->sid, t->count, smtp_client_label(t->out),
	    log_quote(from, sizeof(from), t->mail.addr, strlen(t->mail.addr)),
	    t->nrcpt, t->content.len, r->code, ms);
}

static void
txn_client_cb(struct smtp_client *c, enum smtp_client_event ev,
    const struct smtp_reply *r, const char *why, void *arg)
{
	struct txn *t = arg;
	enum txn_op op = t->op;

	switch (ev) {
	case SMTP_CLIENT_READY:
		log_msg(LOG_INFO, t->sid, "nexthop-connected", "hop=%s ext=0x%x",
		    smtp_client_label(c), smtp_client_ext(c));
		nexthop_iter_free(t->hops);
		t->hops = NULL;
		t->op = TXN_MAIL;
		smtp_client_mail(c, &t->mail, txn_size_hint(t));
		return;
	case SMTP_CLIENT_FAILED:
		smtp_client_free(c);
		t->out = NULL;
		switch (op) {
		case TXN_OPEN:
			txn_try_next(t);
			return;
		case TXN_RSET:
			t->open = 0;
			txn_reply(t, t->abort_code, t->abort_enh, t->abort_text);
			return;
		case TXN_MAIL:
		case TXN_RCPT:
		case TXN_DATA:
			txn_end(t);
			txn_reply(t, 451, "4.4.2",
			    strncmp(why, "protocol", 8) == 0 ?
			    "Next hop protocol error, try again later" :
			    strncmp(why, "timeout", 7) == 0 ?
			    "Next hop timed out, try again later" :
			    "Connection to next hop lost, try again later");
			return;
		case TXN_IDLE:
			return;		/* noticed between operations */
		}
		return;
	case SMTP_CLIENT_REPLY:
		switch (op) {
		case TXN_MAIL:
			t->open = smtp_reply_class(r) == 2;
			txn_relay(t, r);
			return;
		case TXN_RCPT:
			if (smtp_reply_class(r) == 2)
				t->nrcpt++;
			txn_relay(t, r);
			return;
		case TXN_DATA:
			t->count++;
			txn_log_relayed(t, r);
			txn_end(t);
			txn_relay(t, r);
			return;
		case TXN_RSET:
			txn_reply(t, t->abort_code, t->abort_enh, t->abort_text);
			return;
		case TXN_OPEN:
		case TXN_IDLE:
			log_panic("reply in op %d", (int)op);
		}
	}
}
