/*
 * mta-sim: a scriptable SMTP simulator for mailprevent's tests. Each role
 * (sink, sender, mta) lives in its own file as an object on a libevent
 * loop (roles.h); main.c starts the command-line roles as subcommands.
 * mta-sim uses common/ only: it talks to the proxy over sockets and
 * files, as a real MTA would. This header is what the roles share among
 * themselves; roles.h is what a scenario sees.
 */
#ifndef MTA_SIM_H
#define MTA_SIM_H

#include <stddef.h>
#include <stdio.h>
#include <sys/socket.h>

#include "buf.h"
#include "roles.h"

/* Subcommands: argv[0] is the subcommand name. Exit status is returned. */
int	sink_main(int argc, char **argv);
int	sender_main(int argc, char **argv);

void	sink_usage(FILE *);
void	sender_usage(FILE *);

/* Exit status for command-line mistakes. */
#define SIM_EXIT_USAGE	2

/*
 * Append s[0..len) to out in double quotes, escaping '"' and '\' with a
 * backslash, newline as \n and other bytes outside 0x20-0x7e as \xNN, so
 * that a peer's bytes can never break a line of our output apart.
 */
int	sim_quote(struct buf *out, const char *s, size_t len);

/* write(2) all of it, retrying on EINTR/short writes. */
int	sim_write_all(int fd, const void *, size_t);

/* Parse "SECONDS" (fractions allowed, > 0 unless zero_ok). */
int	sim_parse_seconds(const char *, double *, int zero_ok);

/*
 * Turn "host:port" into a socket address: an IP literal, or a name
 * resolved once at startup (mta-sim only ever talks to loopback).
 */
int	sim_resolve(const char *hostport, int need_port,
	    struct sockaddr_storage *, socklen_t *, const char **err);

/* ---- messages (msg.c) --------------------------------------------------- */

/* A recorded message owns every string it points to. */
struct sim_msg	*sim_msg_new(void);
struct sim_msg	*sim_msg_dup(const struct sim_msg *);
void		 sim_msg_free(struct sim_msg *);
/* Replace *field with a copy of s (NULL allowed); -1 on ENOMEM. */
int		 sim_msg_set(const char **field, const char *s);
int		 sim_msg_add_rcpt(struct sim_msg *, const char *addr);
/* Is there a header called name whose unfolded value is value (no case)? */
int		 sim_msg_header_is(const struct sim_msg *, const char *name,
		    const char *value);
/* Header block of c[0..len), with the empty line that ends it. */
size_t		 sim_msg_header_len(const char *c, size_t len);
/*
 * Split "Name: value" (one line, a name of printable non-space octets)
 * into name and *value (pointing into line). -1 if it is not one.
 */
int		 sim_msg_split_header(const char *line, char *name,
		    size_t namesz, const char **value);
/* Base64 of p[0..len), CRLF after every width chars (0: one line, no CRLF). */
int		 sim_msg_base64(struct buf *, const unsigned char *, size_t len,
		    size_t width);

/* ---- what the MTA needs from the sink (sink.c) ----------------------------- */

/*
 * Asked before a message is accepted at its final dot (no rule replaced
 * the reply). Returns the reply code, with *enh (a static string or NULL)
 * and the reply text written to text[0..textsz). A non-2xx refuses the
 * message.
 */
typedef int sim_sink_accept_cb(void *arg, const struct sim_msg *,
    const char **enh, char *text, size_t textsz);
void	sim_sink_on_accept(struct sim_sink *, sim_sink_accept_cb *, void *arg);

/* RFC 5322 date of now, for Date: and Received:. */
const char *sim_date(char *dst, size_t dstsz);

/* ---- TLS under a session (sim.c) ---------------------------------------- */

struct bufferevent;
struct ssl_st;

/*
 * Put TLS under a session once the 220 to STARTTLS has been written
 * (server) or read (client): a filter bufferevent over bev, owning bev
 * and ssl. Plaintext still buffered in bev's input must have been taken
 * out first: the filter would read it as TLS records. A peer closing
 * without close_notify is an EOF, not an error (sim_send does just that).
 * NULL on ENOMEM; then ssl is freed and bev is still the caller's.
 */
struct bufferevent *sim_tls_start(struct bufferevent *bev, struct ssl_st *,
	    int server);
/* The TLS session under a session's bufferevent, or NULL in plaintext. */
struct ssl_st	*sim_tls_ssl(struct bufferevent *);
/* Everything written has reached the socket, through TLS when it is on. */
int		 sim_flushed(struct bufferevent *);

/* What a session's TLS came to, for records and results. */
struct sim_tls_facts {
	char	proto[32];	/* "TLSv1.3" */
	char	cipher[64];	/* "TLS_AES_256_GCM_SHA384" */
	char	verify[16];	/* "ok": the peer was verified; "unchecked"; "none": no certificate */
	char	peer[128];	/* the peer certificate's CN, or "none" */
};
void		 sim_tls_facts(struct ssl_st *, struct sim_tls_facts *);

#endif
