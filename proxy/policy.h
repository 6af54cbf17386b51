/*
 * policy: detection policies written in Lua 5.4, and the response rules
 * that turn the policies that match into one verdict (docs/lua-api.md).
 *
 * A policy set is loaded once (startup, SIGHUP) into one sandboxed Lua
 * state and is immutable afterwards; a config holds a reference to it.
 * Evaluation runs every policy's match function on one message and
 * combines their actions: block wins over redirect, redirect over modify;
 * notifications of every matching policy are kept.
 */
#ifndef MP_POLICY_H
#define MP_POLICY_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

struct mime_msg;
struct policy_set;

#define POLICY_NAME_MAX		128
#define POLICY_SAMPLE_MAX	64
#define POLICY_MAX_HEADERS	3
#define POLICY_ERR_MAX		512
#define POLICY_REPLY_MAX	510	/* a reply line; 512 with CRLF */
#define POLICY_HEADER_MAX	998	/* a header line, RFC 5322 2.1.1 */

struct policy_limits {
	uint64_t	instructions;	/* per match() call; default 50,000,000 */
	size_t		memory;		/* bytes for the whole Lua state; default 256 MiB */
};

enum policy_subject_op {
	SUBJECT_NONE = 0,
	SUBJECT_PREPEND,
	SUBJECT_APPEND,
	SUBJECT_REPLACE
};

/* A policy's actions as loaded (all text validated: no CR, LF or NUL). */
struct policy_actions {
	int		 block;
	int		 block_code;			/* 5xx */
	char		 block_enh[16];			/* "" if none given */
	char		 block_text[512];
	char		*redirect;			/* address, or NULL */
	enum policy_subject_op subject_op;
	char		*subject;			/* text for subject_op */
	char		*headers[POLICY_MAX_HEADERS];	/* "Name: value" */
	size_t		 nheaders;
	int		 notify;
	char		**notify_to;			/* addresses */
	size_t		 notify_nto;
	int		 notify_sender;			/* also notify the envelope sender */
	char		*notify_subject;		/* may hold {policy}, {sender}, ... */
	char		*notify_body;
};

/* What a policy can read about the message besides its content. */
struct policy_envelope {
	const char		 *sender;	/* "" for <> */
	const char *const	 *recipients;
	size_t			  nrecipients;
	const char		 *helo;
	const char		 *client_ip;
	const char		 *content;	/* un-stuffed message, CRLF */
	size_t			  size;
	const char		 *sid;		/* for log lines; may be NULL */
};

struct policy_hit {
	const char			*name;
	const struct policy_actions	*actions;
	uint64_t			 count;
	char				 sample[POLICY_SAMPLE_MAX];	/* masked; "" if none */
};

enum verdict_action {
	VERDICT_PASS = 0,
	VERDICT_MODIFY,
	VERDICT_REDIRECT,
	VERDICT_BLOCK
};

struct verdict {
	enum verdict_action	 action;
	/* The policy whose action won (block / redirect), else NULL. */
	const struct policy_hit	*decider;
	struct policy_hit	*hits;		/* every matching policy */
	size_t			 nhits;
	/* A policy failed at run time: the message gets 451 4.3.0. */
	int			 error;
	char			 error_policy[POLICY_NAME_MAX];
	char			 error_msg[POLICY_ERR_MAX];
};

/*
 * Load every file matching the globs (sorted, each file once). Errors are
 * appended as "file:line: message\n"; NULL on any error.
 */
struct policy_set *policy_load(const char *const *globs, size_t nglobs,
	    const struct policy_limits *, struct buf *errors);
void	policy_set_free(struct policy_set *);
size_t	policy_count(const struct policy_set *);

/*
 * Run every policy on one message. Never fails for bad input: a policy
 * error is reported in v->error (the other policies still ran). The
 * verdict's hits point into the set and are valid until verdict_free.
 */
void	policy_evaluate(struct policy_set *, const struct policy_envelope *,
	    struct verdict *v);
void	verdict_free(struct verdict *);
const char *verdict_action_name(enum verdict_action);

/*
 * Shared validators (config.c uses them too).
 * policy_check_reply: "5xx[ x.y.z] text", one line, <= 512 octets.
 * policy_check_header: "Name: value", RFC 5322 field name, printable value.
 * Return NULL if valid, else a static reason.
 */
const char *policy_check_reply(const char *s, int *code, char *enh, size_t enhsz,
	    const char **text);
const char *policy_check_header(const char *s);
/* "local@domain" (dot-atom local part, DNS domain): redirect, notify.to. */
const char *policy_check_address(const char *s);

/*
 * Notification texts. Append tmpl to out with each {name} replaced:
 * {policy}, {count}, {sample} from the hit; {sender} ("<>" for the null
 * sender), {recipients} (", "-separated), {client_ip}, {helo} from the
 * envelope; and any of {subject}, {queue_id}, {action}, {message_id} the
 * caller gives in extra (absent ones expand to ""). Other braces are
 * copied. CR, LF and NUL in values become spaces, so a value can never
 * add a header line. -1 when memory runs out.
 */
struct policy_var {
	const char	*name;
	const char	*value;
};

int	policy_expand(struct buf *out, const char *tmpl,
	    const struct policy_hit *, const struct policy_envelope *,
	    const struct policy_var *extra, size_t nextra);

#endif
