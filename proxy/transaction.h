/*
 * transaction: pairs the inbound SMTP transaction with its outbound one,
 * and owns the proxy's central rule: the upstream gets 2xx to the end of
 * DATA only after the next hop has answered 2xx to its own end of DATA.
 * Every failure whose outcome is not a definite refusal by the next hop
 * becomes a 4xx, so the sending MTA keeps the message.
 *
 * One txn lives as long as its inbound session and carries successive
 * transactions over one outbound connection. Each operation completes
 * through the reply callback (possibly before the call returns); only
 * one operation is outstanding at a time.
 */
#ifndef MP_TRANSACTION_H
#define MP_TRANSACTION_H

#include <stdint.h>
#include <sys/socket.h>

#include "buf.h"
#include "smtp_addr.h"

struct config;
struct dns;
struct event_base;
struct txn;

/* code, enhanced code ("" = none) and text (may hold '\n' between lines). */
typedef void txn_reply_cb(void *arg, int code, const char *enh, const char *text);

struct txn	*txn_new(struct event_base *, struct config *, struct dns *,
		    const char *sid, const struct sockaddr *peer, txn_reply_cb *,
		    void *arg);
void		 txn_free(struct txn *);		/* drops any outbound session */
/* The upstream's HELO/EHLO name, for policies and incidents. */
void		 txn_set_helo(struct txn *, const char *);
/* The upstream session is now TLS: next hops get TLS too (tls.outbound). */
void		 txn_set_tls(struct txn *);

void		 txn_mail(struct txn *, const struct smtp_mail_args *);
void		 txn_rcpt(struct txn *, const struct smtp_rcpt_args *);
unsigned	 txn_nrcpt(const struct txn *);		/* accepted so far */
/* Where the session stores the un-stuffed content during DATA. */
struct buf	*txn_content(struct txn *);
/* All content is in: relay it and reply with the next hop's verdict. */
void		 txn_data_end(struct txn *);
/* End the transaction (RSET, HELO, a refused message) and reply with the given reply. */
void		 txn_abort(struct txn *, int code, const char *enh, const char *text);
/* Upstream QUIT: close the outbound session politely. */
void		 txn_quit(struct txn *);

#endif
