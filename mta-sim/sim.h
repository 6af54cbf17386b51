/*
 * mta-sim: a scriptable SMTP simulator for mailprevent's tests. Each role
 * (sink, sender, ...) lives in its own file and is started by main.c as a
 * subcommand. mta-sim uses common/ only: it talks to the proxy over
 * sockets and files, as a real MTA would.
 */
#ifndef MTA_SIM_H
#define MTA_SIM_H

#include <stddef.h>
#include <stdio.h>
#include <sys/socket.h>

#include "buf.h"

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

#endif
