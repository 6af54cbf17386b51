/*
 * dns_server: mta-sim's authoritative DNS server, for tests of the
 * proxy's MX next-hop choice. One object on a libevent loop answers UDP
 * and TCP on the same port; `mta-sim dns` (dnssrv_main) is a thin command
 * line around it, and a scenario can drive it in-process.
 *
 * Records come from zone text (see docs/dns-sim.md), one per line:
 *
 *	# name            TTL  TYPE data
 *	example.test      300  SOA  ns.example.test hostmaster.example.test 1 3600 600 86400 60
 *	example.test      300  MX   10 mx1.example.test
 *	mx1.example.test  300  A    127.0.0.2
 *	mx1.example.test  300  AAAA ::1
 *	2.0.0.127.in-addr.arpa 300 PTR mx1.example.test
 *	example.org       300  MX   0 .
 *	$FAULT example.net/MX servfail
 *
 * Types: A, AAAA, MX, PTR, NS, SOA. The owners of SOA records are the
 * zones: names outside every zone are REFUSED; without any SOA, every
 * name is inside. Answers are authoritative (AA). A name with no records
 * and nothing below it is NXDOMAIN; a name without records of the asked
 * type is NODATA (NOERROR, no answer); both carry the zone's SOA, whose
 * TTL is min(SOA TTL, MINIMUM) as RFC 2308 asks. MX answers add the
 * targets' A/AAAA records as additional data when they fit.
 *
 * Faults, for one name, one name and type, one type, or every query:
 *	target	"*", "NAME", "NAME/TYPE" or "* /TYPE" (no space)
 *	spec	comma-separated: servfail | nxdomain | refused | drop |
 *		truncate | delay=MS | none
 * drop never answers (the client times out); truncate answers over UDP
 * with TC=1 and the question only, and in full over TCP; delay=MS holds
 * the answer back (with or without another fault); none removes the
 * fault. The most specific fault applies: NAME/TYPE, NAME, * /TYPE, *.
 *
 * Over UDP an answer is at most 512 octets, or the client's EDNS size up
 * to 1232; one that does not fit loses its additional data, then is sent
 * truncated (TC=1). Every query is logged: event=query proto=udp|tcp
 * client=IP:PORT id=N qname=NAME qtype=TYPE rcode=RCODE answers=N tc=0|1
 * fault=KIND delay_ms=N (rcode=- when nothing is sent).
 */
#ifndef MTA_SIM_DNS_SERVER_H
#define MTA_SIM_DNS_SERVER_H

#include <stddef.h>
#include <stdio.h>

struct event_base;

struct dnssrv_opts {
	const char	*name;		/* log sid; NULL = "dns" */
	const char	*listen;	/* "127.0.0.1:0": port 0 picks one
					   that is free for UDP and TCP */
};

struct dnssrv;

/* Bound and serving (no records yet) on return; NULL with err on failure. */
struct dnssrv	*dnssrv_new(struct event_base *, const struct dnssrv_opts *,
		    char *err, size_t errlen);
/* "IP:PORT", the same port for UDP and TCP. */
const char	*dnssrv_addr(const struct dnssrv *);
/*
 * Replace every record, and every $FAULT of the previous zone text, with
 * zone[0..len). On a mistake returns -1 with "line N: why" in err and
 * keeps the old records. Queries already answered are not affected;
 * delayed answers keep what they were built with.
 */
int		 dnssrv_set_records(struct dnssrv *, const char *zone,
		    size_t len, char *err, size_t errlen);
/* The same from a file. */
int		 dnssrv_load_zone(struct dnssrv *, const char *path, char *err,
		    size_t errlen);
/*
 * Set (or with spec "none", remove) the fault for target. Faults set here
 * outlive dnssrv_set_records() and win over a zone's $FAULT for the same
 * target. -1 with err on a bad target or spec.
 */
int		 dnssrv_set_fault(struct dnssrv *, const char *target,
		    const char *spec, char *err, size_t errlen);
void		 dnssrv_clear_faults(struct dnssrv *);
/* Queries received (answered or not) since creation. */
unsigned long	 dnssrv_queries(const struct dnssrv *);
/* Closes the sockets; delayed answers are dropped. */
void		 dnssrv_free(struct dnssrv *);

/* `mta-sim dns`: argv[0] is "dns". */
int		 dnssrv_main(int argc, char **argv);
void		 dnssrv_usage(FILE *);

#endif
