/*
 * roles: the simulator's MTA roles as objects on one libevent loop, so a
 * scenario (runner.c) can run several of them in one process. Every role
 * listens on its own loopback address, so each "host" has its own IP.
 *
 *   sink    a downstream MTA, encryption hop, bypass MTA or mailbox host:
 *           accepts mail (or refuses it by rule) and records it
 *   mta     the Prevent-integrated MTA: store and forward, with one of the
 *           guide's four routing architectures
 *   send    the sender (MSA): one message over one SMTP session
 *
 * Addresses are "ip:port"; port 0 binds an ephemeral port, and the real
 * address is available once the role exists.
 *
 * Options are copied when a role is created: the caller's strings need not
 * outlive the call. Callbacks run from the loop; a callback must not free
 * the role that called it (stop the loop and free it afterwards).
 */
#ifndef MTA_SIM_ROLES_H
#define MTA_SIM_ROLES_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

struct event_base;
struct ssl_ctx_st;

/* One message as a role recorded it. */
struct sim_msg {
	unsigned long	 id;		/* per role, from 1 */
	const char	*role;		/* the recording role's name */
	const char	*listener;	/* "main" or "resubmit" */
	const char	*client_ip;	/* TCP peer: never taken from a header */
	const char	*helo;
	const char	*mail_from;	/* "" for <> */
	char	       **rcpts;
	size_t		 nrcpts;
	struct buf	 content;	/* as received, un-stuffed, CRLF */
	double		 t;		/* sim_clock() when recorded */
	const char	*tls;		/* "TLSv1.3 TLS_AES_256_GCM_SHA384" when the
					   session had done STARTTLS; NULL: plaintext */
};

/* Seconds since the process first asked (monotonic): the time base of t. */
double		 sim_clock(void);

/*
 * When a client uses STARTTLS: never (the default), when the server offers
 * it (a refusal or no offer means plaintext), or always (no offer, a
 * refusal or a failed handshake ends the session with an error).
 */
enum sim_tls_use {
	SIM_TLS_NO = 0,
	SIM_TLS_MAY,
	SIM_TLS_MUST
};

/* Value of the first header called name (unfolded), or NULL. */
const char	*sim_msg_header(const struct sim_msg *, const char *name,
		    char *dst, size_t dstsz);

typedef void sim_msg_cb(void *arg, const struct sim_msg *);

/* ---- sink --------------------------------------------------------------- */

struct sim_sink_opts {
	const char		 *name;
	const char		 *listen;	/* "127.0.0.3:0" */
	const char		 *dir;		/* also write files as `mta-sim sink` does; NULL = memory only */
	const char *const	 *rules;	/* as --rule WHEN=ACTION */
	size_t			  nrules;
	const char *const	 *no_ext;	/* EHLO keywords not to offer */
	size_t			  nno_ext;
	int			  no_ehlo;
	const char		 *greeting;	/* "CODE TEXT" or NULL */
	uint64_t		  max_size;	/* 0 = default (10 MiB) */
	const char		 *hostname;	/* greeting and EHLO name; NULL = "mta-sim.localhost" */
	size_t			  max_rcpts;	/* per transaction; 0 = default (1000) */
	const char		 *listener;	/* sim_msg.listener; NULL = "main" */
	int			  no_keep;	/* count messages, do not keep them (sim_sink_msg gives NULL) */
	/* TLS; all unset: no STARTTLS (the command gets 502). */
	const char		 *tls_cert;	/* PEM chain: with tls_key, STARTTLS is offered */
	const char		 *tls_key;	/* PEM key, not encrypted */
	int			  tls_required;	/* 530 5.7.0 to MAIL before STARTTLS */
	const char		 *tls_inject;	/* hostile: bytes written in clear after the
						   220 to STARTTLS, before the handshake;
						   escapes as in raw: rules */
};

struct sim_sink;
struct sim_sink	*sim_sink_new(struct event_base *, const struct sim_sink_opts *,
		    char *err, size_t errlen);
const char	*sim_sink_addr(const struct sim_sink *);
size_t		 sim_sink_count(const struct sim_sink *);	/* accepted messages */
const struct sim_msg *sim_sink_msg(const struct sim_sink *, size_t i);
/* Called after each accepted message is recorded (before its 250 is sent). */
void		 sim_sink_on_message(struct sim_sink *, sim_msg_cb *, void *arg);
unsigned long	 sim_sink_sessions(const struct sim_sink *);	/* connections seen */
void		 sim_sink_free(struct sim_sink *);

/* ---- the Prevent-integrated MTA ---------------------------------------- */

enum sim_arch {
	SIM_ARCH_LISTENER,	/* 1: mail on the resubmit listener was inspected */
	SIM_ARCH_CLIENT_IP,	/* 2: mail from a proxy's IP was inspected */
	SIM_ARCH_HELO,		/* 3: mail whose HELO is a proxy's was inspected */
	SIM_ARCH_HEADER		/* 4: mail carrying the pass header was inspected */
};

/* Inspected mail with this header (value compared case-insensitively) goes to `to`. */
struct sim_route {
	const char	*header;	/* "X-CFilter" */
	const char	*value;		/* "Encrypt" */
	const char	*to;		/* "ip:port" of e.g. the encryption hop */
	const char	*name;		/* route name for events: "encryption" */
};

struct sim_mta_opts {
	const char		 *name;
	const char		 *listen;	/* main listener (port 25's role) */
	const char		 *resubmit;	/* second listener, architecture 1 only; else NULL */
	const char		 *source;	/* source IP of its outbound connections;
						   NULL = the main listener's IP. A
						   reflecting proxy answers to this IP */
	const char		 *helo;		/* the name it gives in EHLO */
	enum sim_arch		  arch;
	const char *const	 *proxies;	/* "ip:port", tried in order */
	size_t			  nproxies;
	const char *const	 *proxy_ips;	/* architecture 2 */
	size_t			  nproxy_ips;
	const char *const	 *proxy_helos;	/* architecture 3 */
	size_t			  nproxy_helos;
	const char		 *pass_header;	/* architecture 4: "X-Filter-Loop: Reflected" */
	const char		 *downstream;	/* "ip:port" for inspected mail */
	const struct sim_route	 *routes;
	size_t			  nroutes;
	const char		 *bypass;	/* no proxy answers: deliver here; NULL = hold */
	int			  block_on_failure; /* no proxy answers: hold in the queue even if bypass is set */
	const char *const	 *sender_exceptions; /* senders that skip inspection; "" = <> */
	size_t			  nsender_exceptions;
	const char *const	 *local_domains; /* recipients here are delivered to `mailbox` */
	size_t			  nlocal_domains;
	const char		 *mailbox;	/* "ip:port" of the mailbox host */
	unsigned		  retry_ms;	/* first retry delay, doubling; default 200 */
	unsigned		  max_attempts;	/* then bounce; default 10 */
	unsigned		  max_queue_age_ms; /* queued for the proxies longer: use bypass (queue management) */
	unsigned		  max_retry_ms;	/* cap on the doubling delay; default 5000 */
	unsigned		  timeout_ms;	/* one outbound session; default 30000 */
	unsigned		  connect_timeout_ms; /* connect + greeting; default 5000 */
	size_t			  max_queue;	/* messages; a full queue answers 452; default 1000 */
	uint64_t		  max_size;	/* message size; default 10 MiB */
	size_t			  max_rcpts;	/* per message; default 100 */
	/* TLS; all unset: none. */
	const char		 *tls_cert;	/* its listeners offer STARTTLS with this chain */
	const char		 *tls_key;
	int			  tls_required;	/* its listeners want STARTTLS before MAIL */
	enum sim_tls_use	  tls_outbound;	/* STARTTLS on its own deliveries */
	const char		 *tls_trust;	/* verify every hop's chain against this PEM
						   bundle, and its IP address against the
						   certificate; NULL: encrypt without verifying */
	/*
	 * Proxies found by MX (the guide's MX-based clusters) instead of the
	 * `proxies` list: the MX records of proxy_mx, looked up for every
	 * attempt, tried by ascending preference (equal preferences in a
	 * random order, so load spreads), each host's A records in turn, all
	 * on proxy_port. A lower-priority MX host is a bypass cluster: it is
	 * tried only when every proxy before it failed to answer.
	 */
	const char		 *proxy_mx;	/* "dlp.corp.example"; NULL: use `proxies` */
	unsigned		  proxy_port;	/* default 10025 */
	const char		 *dns;		/* "ip:port" of the DNS server; NULL: the
						   system resolver's */
	unsigned		  dns_timeout_ms; /* per try; default 1000 */
	unsigned		  dns_tries;	/* default 2 */
};

enum sim_mta_event_type {
	SIM_MTA_RECEIVED,	/* accepted into the queue */
	SIM_MTA_DELIVERED,	/* handed to a route; `route` says which */
	SIM_MTA_DEFERRED,	/* attempt failed with 4xx or transport error */
	SIM_MTA_BOUNCED,	/* recipients failed (5xx, or out of attempts);
				   an NDR follows unless the sender is <> */
	SIM_MTA_NDR		/* the NDR itself was queued (from <>); msg and m
				   are the NDR's */
};

struct sim_mta_event {
	enum sim_mta_event_type	 type;
	unsigned long		 msg;		/* queue id */
	const char		*route;		/* "proxy", "downstream", "bypass", "mailbox", or a sim_route name */
	int			 code;		/* reply that decided it, 0 if none */
	const char		*text;		/* its text ("5.7.1 Blocked ..."), NULL if none */
	const struct sim_msg	*m;		/* the message */
	const char *const	*rcpts;		/* the recipients this event is about */
	size_t			 nrcpts;
	unsigned		 attempt;	/* 1 for the first delivery attempt */
	const char		*to;		/* the hop ("ip:port") that decided it,
						   NULL if none */
};
typedef void sim_mta_event_cb(void *arg, const struct sim_mta_event *);

struct sim_mta;
struct sim_mta	*sim_mta_new(struct event_base *, const struct sim_mta_opts *,
		    char *err, size_t errlen);
const char	*sim_mta_addr(const struct sim_mta *);
const char	*sim_mta_resubmit_addr(const struct sim_mta *);	/* NULL if none */
/* Proxies may be set after creation (a reflecting proxy needs our ports first). */
int		 sim_mta_set_proxies(struct sim_mta *, const char *const *, size_t);
void		 sim_mta_on_event(struct sim_mta *, sim_mta_event_cb *, void *arg);
size_t		 sim_mta_queued(const struct sim_mta *);
void		 sim_mta_free(struct sim_mta *);

/* ---- sender -------------------------------------------------------------- */

struct sim_send_opts {
	const char		 *to;		/* "ip:port" */
	const char		 *source;	/* source IP or NULL */
	const char		 *helo;
	const char		 *from;		/* "" = <> */
	const char *const	 *rcpts;
	size_t			  nrcpts;
	const char		 *content;	/* RFC 5322 message, CRLF or LF */
	size_t			  len;
	unsigned		  timeout_ms;	/* whole session; default 30000 */
	unsigned		  greeting_timeout_ms; /* connect + greeting; 0 = timeout_ms */
	/* TLS; all unset: no STARTTLS. */
	enum sim_tls_use	  starttls;
	const char		 *tls_trust;	/* verify the server's chain against this PEM
						   bundle; NULL: encrypt without verifying */
	const char		 *tls_verify_name; /* name (or IP) the certificate must carry
						   when tls_trust is set; NULL: the host of `to` */
	int			  starttls_inject; /* hostile: pipeline "STARTTLS\r\nEHLO
						   injected\r\n", then send MAIL before EHLO
						   over TLS; anything but 503 to it (or a reply
						   to the injected EHLO) is an error */
	struct ssl_ctx_st	 *tls_ctx;	/* a client context to use instead of one
						   made from tls_trust (not copied: up-ref'd) */
};

struct sim_send_result {
	int		 connected;
	int		 greeting;		/* reply codes; 0 = not reached */
	int		 mail;
	int		*rcpt;			/* one per recipient */
	size_t		 nrcpt;
	int		 data;
	int		 final;			/* reply to the final dot */
	const char	*final_text;		/* its text (enhanced code included) */
	const char	*error;			/* transport error or NULL */
	/* Each reply's text as final_text, NULL when not reached. */
	const char	*greeting_text;
	const char	*mail_text;
	const char *const *rcpt_text;		/* one per recipient */
	const char	*data_text;
	const char	*stage;			/* last command sent: "connect", "greeting",
						   "ehlo", "helo", "starttls" (also: STARTTLS
						   needed but not offered), "tls" (handshake),
						   "probe" (injection check), "mail", "rcpt",
						   "data", "dot" */
	int		 tls;			/* the session ran over TLS from here on */
	const char	*tls_proto;		/* "TLSv1.3"; NULL without TLS */
	const char	*tls_cipher;		/* "TLS_AES_256_GCM_SHA384" */
	const char	*tls_verify;		/* "ok": chain and name checked against
						   tls_trust; "unchecked" */
	const char	*tls_peer;		/* the certificate's subject CN, or "none" */
};
typedef void sim_send_cb(void *arg, const struct sim_send_result *);

struct sim_send;
/*
 * Starts at once; cb is always called once from the loop unless cancelled,
 * and the handle is gone once cb returns (the result is valid during cb
 * only). EHLO (HELO after a 5xx), MAIL, each RCPT, DATA and the content go
 * one at a time; after the final reply (or a refusal) QUIT is written and
 * the connection closed without waiting for the 221. NULL on ENOMEM.
 */
struct sim_send	*sim_send_start(struct event_base *, const struct sim_send_opts *,
		    sim_send_cb *, void *arg);
void		 sim_send_cancel(struct sim_send *);

/* ---- messages for scenarios ----------------------------------------------- */

struct sim_attachment {
	const char	*filename;
	const char	*content_type;
	const char	*data;
	size_t		 len;
};

struct sim_msg_spec {
	const char *const		 *headers;	/* extra "Name: value" lines */
	size_t				  nheaders;
	const char			 *from, *to, *subject;	/* header values */
	const char			 *body;		/* text/plain, UTF-8 */
	const struct sim_attachment	 *attachments;	/* base64 in multipart/mixed */
	size_t				  nattachments;
	size_t				  pad_to;	/* grow the body to about this size */
};

/* RFC 5322 message with Date and Message-ID, CRLF line endings. */
int	sim_msg_build(struct buf *out, const struct sim_msg_spec *);

#endif
