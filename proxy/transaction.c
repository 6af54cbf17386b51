/*
 * transaction: one inbound transaction paired with its outbound one
 * (see transaction.h), and the place where a verdict becomes an action.
 */
#include "transaction.h"

#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config.h"
#include "incident.h"
#include "log.h"
#include "message.h"
#include "netaddr.h"
#include "nexthop.h"
#include "notify.h"
#include "policy.h"
#include "pool.h"
#include "smtp_client.h"
#include "smtp_reply.h"

enum txn_op {
	TXN_IDLE,
	TXN_OPEN,	/* walking the next-hop list for MAIL */
	TXN_MAIL,
	TXN_RCPT,
	TXN_DATA,
	TXN_RSET,
	TXN_REDIR_RSET,	/* redirect: drop the original envelope, */
	TXN_REDIR_MAIL,	/* send MAIL again, */
	TXN_REDIR_RCPT	/* and RCPT to the review address only */
};

struct txn {
	struct event_base	*base;
	struct config		*cfg;
	struct dns		*dns;
	char			 sid[32];
	struct sockaddr_storage	 peer;
	char			 client_ip[64];
	char			 helo[256];
	int			 tls_in;	/* the upstream used STARTTLS */
	int			 tls_failed;	/* a hop failed for TLS reasons */
	txn_reply_cb		*cb;
	void			*arg;

	struct smtp_client	*out;
	struct nexthop_iter	*hops;
	enum txn_op		 op;
	int			 open;		/* next hop accepted MAIL */
	int			 mail_held;	/* MAIL answered here, to go with RCPT */
	int			 rcpt_after_mail; /* held MAIL sent alone: RCPT next */
	int			 rcpt_on_ready;	/* reconnected with an RCPT waiting */
	int			 reused;	/* t->out predates this transaction */
	unsigned		 count;		/* messages handed to a next hop */
	struct smtp_mail_args	 mail;
	struct smtp_rcpt_args	 rcpt;		/* the RCPT in flight */
	char			**rcpts;	/* accepted recipients */
	size_t			 nrcpts, rcptcap;
	struct buf		 content;
	struct timespec		 t_data;	/* end of DATA from upstream */

	/* The verdict on the message in flight, until its final reply. */
	int			 judged;
	struct verdict		 verdict;
	const char		*outcome;	/* block, redirect, modify, monitor */
	const char		*would;		/* trial mode: what was not done */
	const char		*redirect_to;
	char			 message_id[256];
	char			 subject[256];

	/* The reply to give once an abort's RSET is answered. */
	int			 abort_code;
	char			 abort_enh[16];
	char			 abort_text[512];
};

static void txn_client_cb(struct smtp_client *, enum smtp_client_event,
    const struct smtp_reply *, const char *, void *);
static void txn_try_next(struct txn *);
static void txn_open(struct txn *);
static uint64_t txn_size_hint(const struct txn *);
static void txn_pool_key(const struct txn *, char *, size_t);

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
	netaddr_ip(peer, t->client_ip, sizeof(t->client_ip));
	t->cb = cb;
	t->arg = arg;
	buf_init(&t->content);
	return t;
}

static void
txn_clear_rcpts(struct txn *t)
{
	for (size_t i = 0; i < t->nrcpts; i++)
		free(t->rcpts[i]);
	t->nrcpts = 0;
}

static void
txn_clear_verdict(struct txn *t)
{
	if (t->judged)
		verdict_free(&t->verdict);
	t->judged = 0;
	t->outcome = t->would = t->redirect_to = NULL;
}

void
txn_free(struct txn *t)
{
	if (t == NULL)
		return;
	nexthop_iter_free(t->hops);
	smtp_client_free(t->out);
	txn_clear_verdict(t);
	txn_clear_rcpts(t);
	free(t->rcpts);
	buf_free(&t->content);
	config_unref(t->cfg);
	free(t);
}

void
txn_set_helo(struct txn *t, const char *helo)
{
	snprintf(t->helo, sizeof(t->helo), "%s", helo);
}

void
txn_set_tls(struct txn *t)
{
	t->tls_in = 1;
	/* A plaintext outbound session from before STARTTLS is not reused. */
	txn_quit(t);
}

static void
txn_end(struct txn *t)
{
	t->open = 0;
	t->mail_held = 0;
	t->rcpt_after_mail = 0;
	t->rcpt_on_ready = 0;
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

/* TLS to the next hop if and only if the upstream used it (follow). */
static int
txn_tls_out(const struct txn *t)
{
	return t->cfg->tls.outbound == TLS_OUT_ALWAYS ||
	    (t->cfg->tls.outbound == TLS_OUT_FOLLOW && t->tls_in);
}

static void
txn_wake(void *arg)
{
	txn_try_next(arg);
}

/* The walk ended without a hop: say why, never 5xx for a transient fault. */
static void
txn_no_hop(struct txn *t)
{
	enum nexthop_outcome o = nexthop_iter_outcome(t->hops);
	const char *err = nexthop_iter_error(t->hops);
	char q[NETADDR_HOST_MAX * 2 + 80];

	log_msg(LOG_WARN, t->sid, "nexthop-none", "reason=%s%s%s",
	    o == NEXTHOP_NO_MAIL ? "null_mx" : o == NEXTHOP_DNS_TEMPFAIL ?
	    "dns_tempfail" : t->tls_failed ? "tls" : "unreachable",
	    err[0] ? " detail=" : "",
	    err[0] ? log_quote(q, sizeof(q), err, strlen(err)) : "");
	nexthop_iter_free(t->hops);
	t->hops = NULL;
	switch (o) {
	case NEXTHOP_NO_MAIL:
		txn_reply(t, 556, "5.1.10",
		    "Next hop domain does not accept mail (null MX)");
		return;
	case NEXTHOP_DNS_TEMPFAIL:
		txn_reply(t, 451, "4.4.3",
		    "Temporary DNS failure finding the next hop, try again later");
		return;
	case NEXTHOP_UNREACHABLE:
		break;
	}
	if (t->tls_failed)
		txn_reply(t, 454, "4.7.0",
		    "TLS with the next hop not available, try again later");
	else
		txn_reply(t, 451, "4.4.1", "No next hop available, try again later");
}

/* Walk the next-hop list until one connection attempt is under way. */
static void
txn_try_next(struct txn *t)
{
	struct smtp_client_opts opts;
	struct sockaddr_storage ss, src;
	socklen_t sslen;
	char label[NETADDR_HOST_MAX + 80], name[NETADDR_HOST_MAX + 1];

	nexthop_client_opts(t->cfg, txn_tls_out(t), &opts, &src);
	for (;;) {
		switch (nexthop_iter_next(t->hops, &ss, &sslen, label,
		    sizeof(label), name, sizeof(name))) {
		case NEXTHOP_PENDING:
			return;
		case NEXTHOP_END:
			txn_no_hop(t);
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
		    label, name) == 0)
			return;
		log_msg(LOG_INFO, t->sid, "nexthop-failed",
		    "hop=%s state=connect reason=\"%m\"", label);
		smtp_client_free(t->out);
		t->out = NULL;
	}
}

/*
 * MAIL to a ready next hop. One offering PIPELINING gets it together
 * with the first RCPT, one write and one round trip fewer per message;
 * the upstream's MAIL is answered here, and a refusal of the sender
 * reaches it as the reply to each RCPT.
 */
static void
txn_mail_send(struct txn *t, struct smtp_client *c)
{
	if (t->cfg->pipelining && (smtp_client_ext(c) & SMTP_EXT_PIPELINING)) {
		t->mail_held = 1;
		txn_reply(t, 250, "2.1.0", "Ok");
		return;
	}
	t->op = TXN_MAIL;
	smtp_client_mail(c, &t->mail, txn_size_hint(t));
}

void
txn_mail(struct txn *t, const struct smtp_mail_args *m)
{
	char key[160];

	t->mail = *m;
	txn_end(t);
	txn_clear_rcpts(t);
	txn_clear_verdict(t);
	if (t->out == NULL || !smtp_client_ready(t->out)) {
		smtp_client_free(t->out);
		t->out = NULL;
		txn_pool_key(t, key, sizeof(key));
		if (!t->cfg->mx_lookup && (t->out = pool_get(key)) != NULL) {
			smtp_client_set_owner(t->out, t->sid, txn_client_cb, t);
			log_msg(LOG_INFO, t->sid, "nexthop-reused", "hop=%s",
			    smtp_client_label(t->out));
		}
	}
	if (t->out != NULL) {
		t->reused = 1;
		txn_mail_send(t, t->out);
		return;
	}
	txn_open(t);
}

/* Walk the next hops for a new session; READY continues the command. */
static void
txn_open(struct txn *t)
{
	t->reused = 0;
	t->hops = nexthop_iter_new(t->cfg, t->sid, (struct sockaddr *)&t->peer,
	    t->dns, txn_wake, t);
	if (t->hops == NULL) {
		txn_reply(t, 451, "4.3.0", "Out of memory, try again later");
		return;
	}
	t->op = TXN_OPEN;
	t->tls_failed = 0;
	txn_try_next(t);
}

/*
 * Which pooled sessions this transaction may take over: same loaded
 * configuration (so same hops, names and TLS settings), same TLS need,
 * and in reflect mode the same MTA.
 */
static void
txn_pool_key(const struct txn *t, char *key, size_t keysz)
{
	const struct config *cfg = t->cfg;

	snprintf(key, keysz, "%p|%d|%s", (const void *)cfg, txn_tls_out(t),
	    cfg->mode == MODE_REFLECT ? t->client_ip : "");
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

/*
 * t->rcpt to the next hop, with the held MAIL if there is one: in the
 * same write when the hop pipelines, else MAIL first (only a hop reached
 * by reconnecting can lack PIPELINING here).
 */
static void
txn_rcpt_send(struct txn *t, struct smtp_client *c)
{
	if (!t->mail_held) {
		t->op = TXN_RCPT;
		smtp_client_rcpt(c, &t->rcpt);
	} else if (smtp_client_ext(c) & SMTP_EXT_PIPELINING) {
		t->op = TXN_RCPT;
		smtp_client_mail_rcpt(c, &t->mail, txn_size_hint(t), &t->rcpt);
	} else {
		t->op = TXN_MAIL;
		t->rcpt_after_mail = 1;
		smtp_client_mail(c, &t->mail, txn_size_hint(t));
	}
}

void
txn_rcpt(struct txn *t, const struct smtp_rcpt_args *r)
{
	if (!(t->open || t->mail_held) || t->out == NULL ||
	    !smtp_client_ready(t->out)) {
		txn_reply(t, 451, "4.4.2", "Connection to next hop lost");
		return;
	}
	t->rcpt = *r;
	txn_rcpt_send(t, t->out);
}

static void
txn_add_rcpt(struct txn *t, const char *addr)
{
	char **n;

	if (t->nrcpts == t->rcptcap) {
		size_t cap = t->rcptcap ? t->rcptcap * 2 : 8;

		if ((n = realloc(t->rcpts, cap * sizeof(*n))) == NULL)
			return;		/* only the incident record loses it */
		t->rcpts = n;
		t->rcptcap = cap;
	}
	if ((t->rcpts[t->nrcpts] = strdup(addr)) != NULL)
		t->nrcpts++;
}

unsigned
txn_nrcpt(const struct txn *t)
{
	return (unsigned)t->nrcpts;
}

struct buf *
txn_content(struct txn *t)
{
	return &t->content;
}

/* Hand the (possibly edited) message to the next hop. */
static void
txn_send(struct txn *t, const struct message_edit *edit)
{
	struct buf payload = BUF_INIT;

	if (message_serialize(&payload, t->cfg->pass_header, edit,
	    t->content.data, t->content.len) == -1) {
		buf_free(&payload);
		txn_clear_verdict(t);
		txn_abort(t, 451, "4.3.0", "Out of memory, try again later");
		return;
	}
	t->op = TXN_DATA;
	smtp_client_data(t->out, &payload);
}

static void
txn_envelope(struct txn *t, struct policy_envelope *env)
{
	memset(env, 0, sizeof(*env));
	env->sid = t->sid;
	env->sender = t->mail.addr;
	env->recipients = (const char *const *)t->rcpts;
	env->nrecipients = t->nrcpts;
	env->helo = t->helo;
	env->client_ip = t->client_ip;
	env->content = t->content.data ? t->content.data : "";
	env->size = t->content.len;
}

/* Run the policies; fills t->verdict and the facts incidents need. */
static void
txn_judge(struct txn *t)
{
	struct policy_envelope env;
	const char *c = t->content.data ? t->content.data : "";

	txn_envelope(t, &env);
	message_header_value(c, t->content.len, "Message-ID", t->message_id,
	    sizeof(t->message_id));
	message_header_value(c, t->content.len, "Subject", t->subject,
	    sizeof(t->subject));
	memset(&t->verdict, 0, sizeof(t->verdict));
	policy_evaluate(t->cfg->policy_set, &env, &t->verdict);
	t->judged = 1;
}

/* Collect the header edits of every modifying policy (first subject op wins). */
static void
txn_edit(struct txn *t, struct message_edit *e, const char **hdrs, size_t max)
{
	size_t i, k, n = 0;

	memset(e, 0, sizeof(*e));
	for (i = 0; i < t->verdict.nhits; i++) {
		const struct policy_actions *a = t->verdict.hits[i].actions;

		if (e->subject_op == SUBJECT_NONE && a->subject_op != SUBJECT_NONE) {
			e->subject_op = a->subject_op;
			e->subject = a->subject;
		}
		for (k = 0; k < a->nheaders && n < max; k++) {
			size_t j;

			for (j = 0; j < n && strcmp(hdrs[j], a->headers[k]) != 0; j++)
				;
			if (j == n)
				hdrs[n++] = a->headers[k];
		}
	}
	e->headers = hdrs;
	e->nheaders = n;
}

void
txn_data_end(struct txn *t)
{
	enum verdict_action action = VERDICT_PASS;
	const struct policy_hit *d;
	struct message_edit edit;
	const char *hdrs[POLICY_MAX_HEADERS * 8];

	clock_gettime(CLOCK_MONOTONIC, &t->t_data);
	t->count++;
	if (!t->open || t->out == NULL || !smtp_client_ready(t->out)) {
		txn_end(t);
		txn_reply(t, 451, "4.4.2", "Connection to next hop lost");
		return;
	}
	if (t->cfg->policy_set == NULL || policy_count(t->cfg->policy_set) == 0) {
		txn_send(t, NULL);
		return;
	}
	txn_judge(t);
	if (t->verdict.error) {		/* policy.c logged which and why */
		txn_clear_verdict(t);
		txn_abort(t, 451, "4.3.0",
		    "Message could not be checked, try again later");
		return;
	}
	action = t->verdict.action;
	if (t->verdict.nhits > 0)
		t->outcome = "monitor";
	if (t->cfg->trial_mode && action != VERDICT_PASS) {
		t->would = verdict_action_name(action);
		action = VERDICT_PASS;
	}
	d = t->verdict.decider;
	switch (action) {
	case VERDICT_BLOCK:
		t->outcome = "block";
		log_msg(LOG_INFO, t->sid, "blocked", "msg=%s.%u policy=\"%s\" "
		    "reply=%d", t->sid, t->count, d->name,
		    d->actions->block_code);
		txn_abort(t, d->actions->block_code, d->actions->block_enh[0] ?
		    d->actions->block_enh : "5.7.1", d->actions->block_text);
		return;
	case VERDICT_REDIRECT:
		t->outcome = "redirect";
		t->redirect_to = d->actions->redirect;
		log_msg(LOG_INFO, t->sid, "redirect", "msg=%s.%u policy=\"%s\" "
		    "to=%s", t->sid, t->count, d->name, t->redirect_to);
		t->op = TXN_REDIR_RSET;
		smtp_client_rset(t->out);
		return;
	case VERDICT_MODIFY:
		t->outcome = "modify";
		txn_edit(t, &edit, hdrs, sizeof(hdrs) / sizeof(hdrs[0]));
		txn_send(t, &edit);
		return;
	case VERDICT_PASS:
		txn_send(t, NULL);
		return;
	}
}

void
txn_abort(struct txn *t, int code, const char *enh, const char *text)
{
	int was_open = t->open;

	txn_end(t);
	t->abort_code = code;
	snprintf(t->abort_enh, sizeof(t->abort_enh), "%s", enh);
	snprintf(t->abort_text, sizeof(t->abort_text), "%s", text);
	if (was_open && t->out != NULL && smtp_client_ready(t->out)) {
		t->op = TXN_RSET;
		smtp_client_rset(t->out);
		return;
	}
	txn_reply(t, code, enh, text);
}

void
txn_quit(struct txn *t)
{
	char key[160];

	if (t->out == NULL)
		return;
	/*
	 * Idle and clean: the next inbound session may reuse it. Not with
	 * MX lookup, where each session picks its host afresh so that load
	 * spreads over hosts of equal preference and DNS changes apply.
	 */
	if (smtp_client_ready(t->out) && !t->open && !t->cfg->mx_lookup) {
		txn_pool_key(t, key, sizeof(key));
		pool_put(t->base, t->out, key, t->cfg->reuse_time);
	} else
		smtp_client_quit(t->out);	/* frees itself */
	t->out = NULL;
}

/* The outbound session may be in an unknown state: never reuse it. */
static void
txn_drop(struct txn *t)
{
	if (t->out != NULL) {
		smtp_client_quit(t->out);	/* frees itself */
		t->out = NULL;
	}
}

static void
txn_notify(struct txn *t)
{
	struct notify_request rq;
	struct policy_envelope env;
	struct buf subj, body;
	const char **to;
	char qid[48];
	size_t i, k, n;
	struct policy_var extra[4];

	snprintf(qid, sizeof(qid), "%s.%u", t->sid, t->count);
	txn_envelope(t, &env);
	extra[0] = (struct policy_var){ "subject", t->subject };
	extra[1] = (struct policy_var){ "queue_id", qid };
	extra[2] = (struct policy_var){ "action", t->outcome ? t->outcome : "monitor" };
	extra[3] = (struct policy_var){ "message_id", t->message_id };
	for (i = 0; i < t->verdict.nhits; i++) {
		const struct policy_hit *h = &t->verdict.hits[i];
		const struct policy_actions *a = h->actions;

		if (!a->notify)
			continue;
		if ((to = calloc(a->notify_nto + 1, sizeof(*to))) == NULL) {
			log_msg(LOG_ERR, t->sid, "notify-failed",
			    "policy=\"%s\" reason=nomem", h->name);
			continue;
		}
		n = 0;
		for (k = 0; k < a->notify_nto; k++)
			to[n++] = a->notify_to[k];
		if (a->notify_sender && t->mail.addr[0] != '\0')
			to[n++] = t->mail.addr;
		buf_init(&subj);
		buf_init(&body);
		if (policy_expand(&subj, a->notify_subject ? a->notify_subject :
		    "Policy violation: {policy}", h, &env, extra, 4) == -1 ||
		    policy_expand(&body, a->notify_body ? a->notify_body :
		    "A message from {sender} matched the policy \"{policy}\".\n"
		    "Action: {action}\nSubject: {subject}\n", h, &env, extra,
		    4) == -1) {
			buf_free(&subj);
			buf_free(&body);
			free(to);
			continue;
		}
		memset(&rq, 0, sizeof(rq));
		rq.to = to;
		rq.nto = n;
		rq.subject = buf_cstr(&subj) ? subj.data : "";
		rq.body = buf_cstr(&body) ? body.data : "";
		rq.queue_id = qid;
		if (notify_submit(t->base, t->cfg, t->dns,
		    (struct sockaddr *)&t->peer, &rq) == -1)
			log_msg(LOG_ERR, t->sid, "notify-failed",
			    "policy=\"%s\" reason=nomem", h->name);
		buf_free(&subj);
		buf_free(&body);
		free(to);
	}
}

/*
 * The message has its final reply. A temporary failure writes nothing:
 * the upstream retries and the retry is judged again. Anything else is
 * final: the incident is written and notifications go out.
 */
static void
txn_judged_done(struct txn *t, int code)
{
	struct incident in;
	char qid[48];

	if (!t->judged)
		return;
	if (code / 100 != 4 && t->verdict.nhits > 0) {
		snprintf(qid, sizeof(qid), "%s.%u", t->sid, t->count);
		memset(&in, 0, sizeof(in));
		in.queue_id = qid;
		in.message_id = t->message_id;
		in.sender = t->mail.addr;
		in.recipients = (const char *const *)t->rcpts;
		in.nrecipients = t->nrcpts;
		in.client_ip = t->client_ip;
		in.helo = t->helo;
		in.verdict = &t->verdict;
		in.action = t->outcome ? t->outcome : "monitor";
		in.trial = t->cfg->trial_mode;
		in.would = t->would;
		in.redirect_to = t->redirect_to;
		in.reply = code;
		if (t->cfg->incident_log != NULL &&
		    incident_write(t->cfg->incident_log, &in) == -1)
			log_msg(LOG_ERR, t->sid, "incident-failed",
			    "file=%s reason=\"%m\"", t->cfg->incident_log);
		log_msg(LOG_INFO, t->sid, "incident", "msg=%s action=%s%s%s "
		    "policies=%zu", qid, in.action, t->would ? " would=" : "",
		    t->would ? t->would : "", t->verdict.nhits);
		if (!t->cfg->trial_mode)
			txn_notify(t);
	}
	txn_clear_verdict(t);
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
	    "msg=%s.%u hop=%s from=%s nrcpt=%zu size=%zu reply=%d delay_ms=%ld",
	    t->sid, t->count, smtp_client_label(t->out),
	    log_quote(from, sizeof(from), t->mail.addr, strlen(t->mail.addr)),
	    t->redirect_to ? (size_t)1 : t->nrcpts, t->content.len, r->code, ms);
}

/*
 * A kept session can die while idle, its close still in flight when we
 * send. If it fails on the transaction's first command (MAIL, or the
 * held MAIL with its RCPT) by a transport error, not a timeout or a
 * protocol fault, nothing was accepted: connect afresh, once, instead
 * of deferring the upstream's mail.
 */
static int
txn_retry_fresh(struct txn *t, enum txn_op op, const char *why)
{
	if (!t->reused || !(op == TXN_MAIL || (op == TXN_RCPT &&
	    t->mail_held)) || strncmp(why, "timeout", 7) == 0 ||
	    strncmp(why, "protocol", 8) == 0)
		return 0;
	log_msg(LOG_INFO, t->sid, "nexthop-retry", "reason=\"%s\"", why);
	t->rcpt_after_mail = 0;
	t->rcpt_on_ready = t->mail_held;	/* the upstream awaits RCPT's reply */
	txn_open(t);
	return 1;
}

static void
txn_client_failed(struct txn *t, enum txn_op op, const char *why)
{
	if (txn_retry_fresh(t, op, why))
		return;
	switch (op) {
	case TXN_OPEN:
		if (strncmp(why, "tls", 3) == 0)
			t->tls_failed = 1;
		txn_try_next(t);
		return;
	case TXN_RSET:
		t->open = 0;
		txn_judged_done(t, t->abort_code);
		txn_reply(t, t->abort_code, t->abort_enh, t->abort_text);
		return;
	case TXN_MAIL:
	case TXN_RCPT:
	case TXN_DATA:
	case TXN_REDIR_RSET:
	case TXN_REDIR_MAIL:
	case TXN_REDIR_RCPT:
		txn_end(t);
		txn_judged_done(t, 451);
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
}

static void
txn_client_cb(struct smtp_client *c, enum smtp_client_event ev,
    const struct smtp_reply *r, const char *why, void *arg)
{
	struct txn *t = arg;
	enum txn_op op = t->op;
	struct smtp_rcpt_args redir;
	int ok;

	switch (ev) {
	case SMTP_CLIENT_READY:
		log_msg(LOG_INFO, t->sid, "nexthop-connected", "hop=%s ext=0x%x",
		    smtp_client_label(c), smtp_client_ext(c));
		nexthop_iter_free(t->hops);
		t->hops = NULL;
		if (t->rcpt_on_ready) {
			t->rcpt_on_ready = 0;
			txn_rcpt_send(t, c);
		} else
			txn_mail_send(t, c);
		return;
	case SMTP_CLIENT_FAILED:
		smtp_client_free(c);
		t->out = NULL;
		txn_client_failed(t, op, why);
		return;
	case SMTP_CLIENT_REPLY:
		break;
	}
	ok = smtp_reply_class(r) == 2;
	switch (op) {
	case TXN_MAIL:
		t->open = ok;
		if (t->rcpt_after_mail) {
			t->rcpt_after_mail = 0;
			if (ok) {
				t->mail_held = 0;
				txn_rcpt_send(t, c);
				return;
			}
			/* still held: the refusal answers RCPT, as pipelined */
		}
		txn_relay(t, r);
		return;
	case TXN_RCPT:
		/* A refused held MAIL stays held: the next RCPT tries again. */
		if (t->mail_held && smtp_client_mail_ok(c)) {
			t->mail_held = 0;
			t->open = 1;
		}
		if (ok && t->open)
			txn_add_rcpt(t, t->rcpt.addr);
		txn_relay(t, r);
		return;
	case TXN_DATA:
		txn_log_relayed(t, r);
		txn_end(t);
		txn_judged_done(t, r->code);
		txn_relay(t, r);
		/*
		 * A refusal may be to DATA itself, which leaves the next hop
		 * in a transaction: never reuse such a session. (After the
		 * relay: QUIT reuses the reply buffer r points into.)
		 */
		if (!ok)
			txn_drop(t);
		return;
	case TXN_RSET:
		txn_judged_done(t, t->abort_code);
		txn_reply(t, t->abort_code, t->abort_enh, t->abort_text);
		return;
	case TXN_REDIR_RSET:
		t->op = TXN_REDIR_MAIL;
		smtp_client_mail(c, &t->mail, txn_size_hint(t));
		return;
	case TXN_REDIR_MAIL:
	case TXN_REDIR_RCPT:
		if (!ok) {
			/*
			 * The next hop refused the review envelope: our own
			 * problem, not the sender's, and the reply would name
			 * the review address. Temporary, and a fresh session.
			 */
			log_msg(LOG_ERR, t->sid, "redirect-refused", "to=%s "
			    "reply=%d", t->redirect_to, r->code);
			txn_end(t);
			txn_judged_done(t, 451);
			txn_drop(t);
			txn_reply(t, 451, "4.3.0",
			    "Message could not be redirected, try again later");
			return;
		}
		if (op == TXN_REDIR_MAIL) {
			memset(&redir, 0, sizeof(redir));
			snprintf(redir.addr, sizeof(redir.addr), "%s",
			    t->redirect_to);
			t->op = TXN_REDIR_RCPT;
			smtp_client_rcpt(c, &redir);
			return;
		}
		txn_send(t, NULL);
		return;
	case TXN_OPEN:
	case TXN_IDLE:
		log_panic("reply in op %d", (int)op);
	}
}
