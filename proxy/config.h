/*
 * config: the YAML configuration of bin/mailprevent (docs/configuration.md).
 * A loaded config is immutable and reference-counted: a session keeps the
 * config it started with across a SIGHUP reload.
 */
#ifndef MP_CONFIG_H
#define MP_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "log.h"
#include "netaddr.h"
#include "policy.h"

enum config_mode { MODE_FORWARD = 0, MODE_REFLECT };
/* When the proxy uses STARTTLS to a next hop. */
enum config_tls_outbound { TLS_OUT_FOLLOW = 0, TLS_OUT_ALWAYS, TLS_OUT_NEVER };

struct ssl_ctx_st;

struct config_cidrs {
	struct netaddr_cidr	*v;
	size_t			 n;
};

/* Is the address in one of the blocks? */
int	config_cidrs_match(const struct config_cidrs *, const struct sockaddr *);

struct config_tls {
	char			*cert_file;		/* PEM chain; with key_file enables STARTTLS */
	char			*key_file;
	char			*passphrase_file;	/* first line is the key's passphrase */
	char			 passphrase_env[128];	/* or: name of an environment variable */
	char			*trust_file;		/* CAs for next hops; NULL = system store */
	enum config_tls_outbound outbound;		/* follow */
	int			 required_inbound;	/* 530 to MAIL before STARTTLS */
	struct ssl_ctx_st	*server_ctx;		/* built at load */
	struct ssl_ctx_st	*client_ctx;
};

struct config_limits {
	unsigned	max_connections;	/* 100 */
	unsigned	max_recipients;		/* 1000 */
	unsigned	max_command_line;	/* 512, incl. CRLF */
	unsigned	max_data_line;		/* 998, excl. CRLF */
	unsigned	max_errors;		/* 20 */
	unsigned	min_data_rate;		/* bytes/s in DATA; 0 = off; 500 */
	uint64_t	max_inflight;		/* message bytes held at once, per process; 512M */
};

struct config_timeouts {			/* seconds */
	unsigned	command;		/* 300: inbound, waiting for a command */
	unsigned	data;			/* 300: inbound, in DATA (plus credit from min_data_rate) */
	unsigned	connect;		/* 30: outbound TCP connect */
	unsigned	greeting;		/* 300: outbound 220 */
	unsigned	reply;			/* 300: outbound MAIL/RCPT/RSET/EHLO replies */
	unsigned	data_init;		/* 120: outbound 354 */
	unsigned	data_block;		/* 180: outbound, sending content */
	unsigned	data_done;		/* 300: outbound reply to the final dot; < RFC's 600 */
	unsigned	shutdown;		/* 30: SIGTERM grace for sessions in flight */
};

struct config {
	int			 refcnt;
	char			*path;
	struct hostport		 listen;		/* IP literal; port default 10025, 0 = ephemeral */
	unsigned		 workers;		/* serving processes; 0 = one per CPU; 1 */
	char			 user[64];		/* drop to this user after binding ("" = stay) */
	char			 group[64];		/* and group ("" = the user's) */
	struct config_cidrs	 allow_clients;		/* who may connect; default loopback */
	struct {
		int		 enabled;		/* PROXY protocol v1/v2 on the listener */
		struct config_cidrs trusted;		/* balancers whose header is believed */
	} proxy_protocol;
	enum config_mode	 mode;
	uint16_t		 resubmit_port;		/* 10026 */
	int			 mx_lookup;
	struct hostport		*hosts;			/* next_hop.hosts; a missing port is
							   filled from resubmit_port, so never 0 */
	size_t			 nhosts;
	char			**domains;		/* next_hop.domains */
	size_t			 ndomains;
	char			**dns_servers;		/* "ip[:port]"; none = system resolver */
	size_t			 ndns_servers;
	unsigned		 reuse_time;		/* next_hop.reuse_time: idle sessions kept (2 s) */
	int			 pipelining;		/* next_hop.pipelining: MAIL waits for RCPT (on) */
	unsigned		 dns_timeout;		/* seconds per try (5) */
	unsigned		 dns_tries;		/* tries per server (2) */
	char			 helo_name[256];
	char			 source_address[64];	/* IP literal or "" */
	char			 pass_header[1000];	/* "Name: value" or "" */
	int			 trial_mode;
	uint64_t		 max_message_size;	/* 52428800 */
	enum log_level		 log_level;		/* info */
	struct config_limits	 limits;
	struct config_timeouts	 timeouts;

	struct config_tls	 tls;

	/* Detection (docs/lua-api.md). */
	char			**policies;		/* files or globs */
	size_t			 npolicies;
	struct policy_limits	 policy_limits;
	struct policy_set	*policy_set;		/* loaded with the config */
	char			*incident_log;		/* path, or NULL = none */
	struct {
		char		 sender[256];		/* "" = mailprevent@helo_name */
		unsigned	 retries;		/* 3 */
		unsigned	 retry_delay;		/* seconds, 60; doubles each time */
		unsigned	 max_pending;		/* jobs held at once, 1000 */
	} notify;
};

/*
 * Load and validate path. On any error returns NULL and appends one
 * "file:line: message\n" per problem to errors (all problems, not just
 * the first; line 0 means the file as a whole). errors may be NULL.
 */
struct config	*config_load(const char *path, struct buf *errors);
/* Defaults only (used by tests and as the base of config_load). */
struct config	*config_defaults(void);
struct config	*config_ref(struct config *);
void		 config_unref(struct config *);

#endif
