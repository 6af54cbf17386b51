/*
 * rules: the sink's "--rule WHEN=ACTION" scripting. A rule names an
 * event of the SMTP dialogue (optionally only its Nth occurrence, counted
 * over the whole process) and what to do there instead of the normal
 * behaviour. Parsing and matching only: the sink carries actions out.
 */
#ifndef MTA_SIM_RULES_H
#define MTA_SIM_RULES_H

#include <stddef.h>

#include "smtp_addr.h"

enum rules_when {
	RULES_CONNECT = 0,	/* before the greeting */
	RULES_HELO,
	RULES_EHLO,
	RULES_MAIL,
	RULES_RCPT,		/* optionally restricted to one address */
	RULES_DATA,		/* the DATA command */
	RULES_BODY,		/* first content bytes after 354 */
	RULES_DOT,		/* after the final dot, before the reply */
	RULES_RSET,
	RULES_QUIT,
	RULES_STARTTLS,		/* the STARTTLS command (when TLS is offered) */
	RULES__COUNT
};

enum rules_kind {
	RULES_REPLY = 0,	/* send this reply instead of the normal one */
	RULES_DELAY,		/* wait, then behave normally */
	RULES_DROP,		/* close without replying */
	RULES_HANG,		/* never reply, keep the connection open */
	RULES_RAW		/* write these bytes instead of a reply */
};

#define RULES_TEXT_MAX	512
#define RULES_RAW_MAX	512			/* decoded BYTES of raw: */
#define RULES_RAW_TOTAL	(16UL * 1024 * 1024)	/* raw-repeat N * BYTES */

struct rules_action {
	enum rules_kind	 kind;
	int		 code;			/* RULES_REPLY */
	char		 text[RULES_TEXT_MAX];	/* RULES_REPLY, may be "" */
	double		 delay;			/* RULES_DELAY, seconds */
	char		 raw[RULES_RAW_MAX];	/* RULES_RAW, escapes decoded */
	size_t		 rawlen;		/* RULES_RAW, >= 1 */
	unsigned long	 repeat;		/* RULES_RAW, >= 1 */
};

struct rules_rule {
	enum rules_when		 when;
	char			 addr[SMTP_ADDR_MAX + 1];	/* rcpt:ADDR; "" = any */
	unsigned long		 nth;		/* 0 = every occurrence */
	unsigned long		 seen;		/* occurrences so far */
	struct rules_action	 action;
	char			 spec[64];	/* for logs, maybe truncated */
};

struct rules {
	struct rules_rule	*v;
	size_t			 n;
};

#define RULES_INIT	{ NULL, 0 }

/* Parse "WHEN[#N]=ACTION" and append it. -1 with *err on a bad spec. */
int	 rules_add(struct rules *, const char *spec, const char **err);
void	 rules_free(struct rules *);
/* Parse "CODE TEXT" (as in reply:CODE TEXT) into a RULES_REPLY action. */
int	 rules_parse_reply(const char *, struct rules_action *, const char **err);
/*
 * Decode C-style escapes (\r \n \t \0 \\ \xNN) of s into out[0..max).
 * Returns the decoded length, or -1 with *err on a bad escape or overflow.
 */
long	 rules_unescape(const char *s, char *out, size_t max, const char **err);

/*
 * Count one occurrence of an event (addr: the recipient for RULES_RCPT,
 * else NULL) and return the first rule that applies to it, or NULL.
 * Every rule whose WHEN matches counts the occurrence, so "mail#1" and
 * "mail#2" both see the same numbering.
 */
const struct rules_rule *rules_match(struct rules *, enum rules_when,
	    const char *addr);

const char	*rules_when_name(enum rules_when);
const char	*rules_kind_name(enum rules_kind);

#endif
