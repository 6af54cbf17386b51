/*
 * smtp_client: the outbound role. One SMTP client session to one next
 * hop. It runs the greeting and EHLO (falling back to HELO), then one
 * command at a time (MAIL and RCPT may go together, see
 * smtp_client_mail_rcpt) on behalf of its owner (transaction.c), reporting
 * each outcome through a single callback. Replies are checked against
 * what each command may get back; anything else is a protocol failure,
 * and nothing a hostile next hop sends is relayed raw.
 */
#ifndef MP_SMTP_CLIENT_H
#define MP_SMTP_CLIENT_H

#include <stdint.h>
#include <sys/socket.h>

#include "buf.h"
#include "smtp_addr.h"
#include "smtp_reply.h"

struct event_base;
struct smtp_client;

enum smtp_client_event {
	SMTP_CLIENT_READY,	/* greeted and EHLO/HELO accepted: commands may be sent */
	SMTP_CLIENT_REPLY,	/* the reply to the last command (or final reply to DATA) */
	SMTP_CLIENT_FAILED	/* transport failure, timeout, refusal or protocol error */
};

/* The client is unusable after FAILED; the owner frees it. */
typedef void smtp_client_cb(struct smtp_client *, enum smtp_client_event,
    const struct smtp_reply *, const char *why, void *arg);

struct ssl_ctx_st;

struct smtp_client_opts {
	const char		*helo_name;
	/* Non-NULL: STARTTLS is required, and the next hop's certificate
	   must verify (for the configured name) against this context. */
	struct ssl_ctx_st	*tls;
	const struct sockaddr	*source;	/* NULL = any */
	socklen_t		 sourcelen;
	unsigned		 t_connect, t_greeting, t_reply;
	unsigned		 t_data_init, t_data_block, t_data_done;
};

struct smtp_client *smtp_client_new(struct event_base *, const char *sid,
	    const struct smtp_client_opts *, smtp_client_cb *, void *arg);
/*
 * Starts connecting. label names the hop in logs; name is the host as
 * configured, checked against its certificate. Returns -1 (errno set) if
 * the attempt failed at once.
 */
int	smtp_client_connect(struct smtp_client *, const struct sockaddr *,
	    socklen_t, const char *label, const char *name);
void	smtp_client_mail(struct smtp_client *, const struct smtp_mail_args *,
	    uint64_t size);
void	smtp_client_rcpt(struct smtp_client *, const struct smtp_rcpt_args *);
/*
 * MAIL and RCPT in one write, to a next hop offering PIPELINING. One
 * callback, for RCPT; if MAIL was refused, it carries MAIL's refusal.
 * smtp_client_mail_ok() then says which it was.
 */
void	smtp_client_mail_rcpt(struct smtp_client *, const struct smtp_mail_args *,
	    uint64_t size, const struct smtp_rcpt_args *);
int	smtp_client_mail_ok(const struct smtp_client *);	/* last MAIL got 2xx */
/*
 * Send DATA; on 354 send payload (already dot-stuffed and terminated) and
 * report the reply to the final dot. A non-354 reply to DATA is reported
 * as is. payload is moved out (left empty).
 */
void	smtp_client_data(struct smtp_client *, struct buf *payload);
void	smtp_client_rset(struct smtp_client *);
/* Send QUIT and let the client free itself once answered; no more callbacks. */
void	smtp_client_quit(struct smtp_client *);
/* At exit: free clients still waiting for their QUIT reply. */
void	smtp_client_free_detached(void);
void	smtp_client_free(struct smtp_client *);
/* Hand an idle client to a new owner (the connection pool does this). */
void	smtp_client_set_owner(struct smtp_client *, const char *sid,
	    smtp_client_cb *, void *arg);

int		 smtp_client_ready(const struct smtp_client *);	/* idle and usable */
int		 smtp_client_tls(const struct smtp_client *);	/* STARTTLS done */
unsigned	 smtp_client_ext(const struct smtp_client *);	/* SMTP_EXT_* */
const char	*smtp_client_label(const struct smtp_client *);

#endif
