/*
 * config: load and check the YAML configuration (docs/configuration.md).
 *
 * The file is read whole (with a size cap) and loaded by libyaml as a
 * document, so that every node keeps the line it came from.  The document
 * is then walked with one key table per mapping.  A problem never stops the
 * walk: each one becomes a "file:line: message" line, so that an operator
 * fixing a file sees everything that is wrong with it at once.
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <glob.h>
#include <grp.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <yaml.h>

#include <openssl/ssl.h>

#include "tls.h"

#define CONFIG_FILE_MAX		(1024 * 1024)
#define CONFIG_ERRORS_MAX	100
#define CONFIG_KEYS_MAX		32	/* keys in the largest table */
#define CONFIG_QUOTE_MAX	64	/* bytes of a bad value shown in a message */

#define CONFIG_DEFAULT_LISTEN_PORT	10025
#define CONFIG_SIZE_MIN		1024ULL
#define CONFIG_SIZE_MAX		(2048ULL * 1024 * 1024)
#define CONFIG_TIMEOUT_MAX	86400
/* RFC 5321 4.5.3.2.6: the upstream waits 10 minutes for the final reply. */
#define CONFIG_DATA_DONE_LIMIT	600
#define CONFIG_HEADER_MAX	998	/* RFC 5322 2.1.1 line limit */

/* Lines of keys that later cross-checks point at (0 = key absent). */
enum config_line {
	LINE_NONE = 0,
	LINE_MODE,
	LINE_NEXT_HOP,
	LINE_MX_LOOKUP,
	LINE_HOSTS,
	LINE_DOMAINS,
	LINE_TLS,
	LINE_TLS_CERT,
	LINE_TLS_KEY,
	LINE_TLS_TRUST,
	LINE_PROXYPROTO,
	LINE__COUNT
};

struct config_ctx {
	const char	*path;
	yaml_document_t	*doc;
	struct buf	*errors;
	unsigned	 nerrors;
	struct config	*cf;
	unsigned long	 lines[LINE__COUNT];
	int		 bad[LINE__COUNT];	/* the key's value had an error */
	unsigned long	 policies_line;
};

struct config_key;
typedef void	(*config_parse_fn)(struct config_ctx *, const struct config_key *,
		    const char *, yaml_node_t *);

struct config_key {
	const char		*name;
	config_parse_fn		 parse;
	size_t			 off;		/* into struct config */
	uint64_t		 min, max;
	enum config_line	 line;		/* remember where the key was */
	const struct config_key	*sub;		/* a section's own table */
};

static void	config_error(struct config_ctx *, unsigned long, const char *, ...)
		    __attribute__((format(printf, 3, 4)));

static void	config_string_listen(struct config_ctx *, const struct config_key *,
		    const char *, yaml_node_t *);
static void	config_string_mode(struct config_ctx *, const struct config_key *,
		    const char *, yaml_node_t *);
static void	config_string_helo(struct config_ctx *, const struct config_key *,
		    const char *, yaml_node_t *);
static void	config_string_source(struct config_ctx *, const struct config_key *,
		    const char *, yaml_node_t *);
static void	config_string_header(struct config_ctx *, const struct config_key *,
		    const char *, yaml_node_t *);
static void	config_string_loglevel(struct config_ctx *, const struct config_key *,
		    const char *, yaml_node_t *);
static void	config_list_hosts(struct config_ctx *, const struct config_key *,
		    const char *, yaml_node_t *);
static void	config_list_domains(struct config_ctx *, const struct config_key *,
		    const char *, yaml_node_t *);
static void	config_bool(struct config_ctx *, const struct config_key *,
		    const char *, yaml_node_t *);
static void	config_port(struct config_ctx *, const struct config_key *,
		    const char *, yaml_node_t *);
static void	config_uint(struct config_ctx *, const struct config_key *,
		    const char *, yaml_node_t *);
static void	config_size(struct config_ctx *, const struct config_key *,
		    const char *, yaml_node_t *);
static void	config_duration(struct config_ctx *, const struct config_key *,
		    const char *, yaml_node_t *);
static void	config_section(struct config_ctx *, const struct config_key *,
		    const char *, yaml_node_t *);
static void	config_list_policies(struct config_ctx *, const struct config_key *,
		    const char *, yaml_node_t *);
static void	config_string_path(struct config_ctx *, const struct config_key *,
		    const char *, yaml_node_t *);
static void	config_string_mailbox(struct config_ctx *, const struct config_key *,
		    const char *, yaml_node_t *);
static void	config_uint64(struct config_ctx *, const struct config_key *,
		    const char *, yaml_node_t *);
static void	config_list_dns(struct config_ctx *, const struct config_key *,
		    const char *, yaml_node_t *);
static void	config_string_account(struct config_ctx *, const struct config_key *,
		    const char *, yaml_node_t *);
static void	config_list_cidrs(struct config_ctx *, const struct config_key *,
		    const char *, yaml_node_t *);
static void	config_string_outbound(struct config_ctx *, const struct config_key *,
		    const char *, yaml_node_t *);
static void	config_string_envname(struct config_ctx *, const struct config_key *,
		    const char *, yaml_node_t *);

#define OFF(m)	offsetof(struct config, m)

static const struct config_key config_next_hop_keys[] = {
	{ "mx_lookup",	config_bool,		OFF(mx_lookup), 0, 0, LINE_MX_LOOKUP, NULL },
	{ "hosts",	config_list_hosts,	0, 0, 0, LINE_HOSTS, NULL },
	{ "domains",	config_list_domains,	0, 0, 0, LINE_DOMAINS, NULL },
	{ "reuse_time",	config_duration,	OFF(reuse_time), 0, 300, LINE_NONE, NULL },
	{ "pipelining",	config_bool,		OFF(pipelining), 0, 0, LINE_NONE, NULL },
	{ NULL, NULL, 0, 0, 0, LINE_NONE, NULL }
};

static const struct config_key config_limits_keys[] = {
	{ "max_connections",	config_uint, OFF(limits.max_connections), 1, 100000, LINE_NONE, NULL },
	{ "max_recipients",	config_uint, OFF(limits.max_recipients), 1, 100000, LINE_NONE, NULL },
	{ "max_command_line",	config_uint, OFF(limits.max_command_line), 512, 65536, LINE_NONE, NULL },
	{ "max_data_line",	config_uint, OFF(limits.max_data_line), 998, 1048576, LINE_NONE, NULL },
	{ "max_errors",		config_uint, OFF(limits.max_errors), 1, 1000, LINE_NONE, NULL },
	{ "min_data_rate",	config_uint, OFF(limits.min_data_rate), 0, 104857600, LINE_NONE, NULL },
	{ "max_inflight",	config_size, OFF(limits.max_inflight), CONFIG_SIZE_MIN, CONFIG_SIZE_MAX, LINE_NONE, NULL },
	{ NULL, NULL, 0, 0, 0, LINE_NONE, NULL }
};

static const struct config_key config_timeouts_keys[] = {
	{ "command",	config_duration, OFF(timeouts.command), 1, CONFIG_TIMEOUT_MAX, LINE_NONE, NULL },
	{ "data",	config_duration, OFF(timeouts.data), 1, CONFIG_TIMEOUT_MAX, LINE_NONE, NULL },
	{ "connect",	config_duration, OFF(timeouts.connect), 1, CONFIG_TIMEOUT_MAX, LINE_NONE, NULL },
	{ "greeting",	config_duration, OFF(timeouts.greeting), 1, CONFIG_TIMEOUT_MAX, LINE_NONE, NULL },
	{ "reply",	config_duration, OFF(timeouts.reply), 1, CONFIG_TIMEOUT_MAX, LINE_NONE, NULL },
	{ "data_init",	config_duration, OFF(timeouts.data_init), 1, CONFIG_TIMEOUT_MAX, LINE_NONE, NULL },
	{ "data_block",	config_duration, OFF(timeouts.data_block), 1, CONFIG_TIMEOUT_MAX, LINE_NONE, NULL },
	{ "data_done",	config_duration, OFF(timeouts.data_done), 1, CONFIG_TIMEOUT_MAX, LINE_NONE, NULL },
	{ "shutdown",	config_duration, OFF(timeouts.shutdown), 1, CONFIG_TIMEOUT_MAX, LINE_NONE, NULL },
	{ NULL, NULL, 0, 0, 0, LINE_NONE, NULL }
};

static const struct config_key config_notify_keys[] = {
	{ "sender",	 config_string_mailbox, OFF(notify.sender), 0, 0, LINE_NONE, NULL },
	{ "retries",	 config_uint, OFF(notify.retries), 0, 20, LINE_NONE, NULL },
	{ "retry_delay", config_duration, OFF(notify.retry_delay), 1, CONFIG_TIMEOUT_MAX, LINE_NONE, NULL },
	{ "max_pending", config_uint, OFF(notify.max_pending), 1, 1000000, LINE_NONE, NULL },
	{ NULL, NULL, 0, 0, 0, LINE_NONE, NULL }
};

static const struct config_key config_policy_limits_keys[] = {
	{ "instructions", config_uint64, OFF(policy_limits.instructions),
	    100000, 100000000000ULL, LINE_NONE, NULL },
	{ "memory",	  config_size, OFF(policy_limits.memory),
	    1024 * 1024, CONFIG_SIZE_MAX, LINE_NONE, NULL },
	{ NULL, NULL, 0, 0, 0, LINE_NONE, NULL }
};

static const struct config_key config_tls_keys[] = {
	{ "cert_file",		 config_string_path, OFF(tls.cert_file), 0, 0, LINE_TLS_CERT, NULL },
	{ "key_file",		 config_string_path, OFF(tls.key_file), 0, 0, LINE_TLS_KEY, NULL },
	{ "key_passphrase_file", config_string_path, OFF(tls.passphrase_file), 0, 0, LINE_NONE, NULL },
	{ "key_passphrase_env",	 config_string_envname, OFF(tls.passphrase_env), 0, 0, LINE_NONE, NULL },
	{ "trust_file",		 config_string_path, OFF(tls.trust_file), 0, 0, LINE_TLS_TRUST, NULL },
	{ "outbound",		 config_string_outbound, OFF(tls.outbound), 0, 0, LINE_NONE, NULL },
	{ "required_inbound",	 config_bool, OFF(tls.required_inbound), 0, 0, LINE_NONE, NULL },
	{ NULL, NULL, 0, 0, 0, LINE_NONE, NULL }
};

static const struct config_key config_proxyproto_keys[] = {
	{ "enabled",	config_bool,	   OFF(proxy_protocol.enabled), 0, 0, LINE_NONE, NULL },
	{ "trusted",	config_list_cidrs, OFF(proxy_protocol.trusted), 0, 0, LINE_NONE, NULL },
	{ NULL, NULL, 0, 0, 0, LINE_NONE, NULL }
};

static const struct config_key config_top_keys[] = {
	{ "listen",		config_string_listen,	0, 0, 0, LINE_NONE, NULL },
	{ "allow_clients",	config_list_cidrs,	OFF(allow_clients), 0, 0, LINE_NONE, NULL },
	{ "proxy_protocol",	config_section,		0, 0, 0, LINE_PROXYPROTO, config_proxyproto_keys },
	{ "dns_servers",	config_list_dns,	0, 0, 0, LINE_NONE, NULL },
	{ "dns_timeout",	config_duration,	OFF(dns_timeout), 1, 60, LINE_NONE, NULL },
	{ "dns_tries",		config_uint,		OFF(dns_tries), 1, 10, LINE_NONE, NULL },
	{ "workers",		config_uint,		OFF(workers), 0, 64, LINE_NONE, NULL },
	{ "user",		config_string_account,	OFF(user), 0, 0, LINE_NONE, NULL },
	{ "group",		config_string_account,	OFF(group), 0, 1, LINE_NONE, NULL },
	{ "mode",		config_string_mode,	0, 0, 0, LINE_MODE, NULL },
	{ "resubmit_port",	config_port,		OFF(resubmit_port), 1, 65535, LINE_NONE, NULL },
	{ "next_hop",		config_section,		0, 0, 0, LINE_NEXT_HOP, config_next_hop_keys },
	{ "helo_name",		config_string_helo,	0, 0, 0, LINE_NONE, NULL },
	{ "source_address",	config_string_source,	0, 0, 0, LINE_NONE, NULL },
	{ "pass_header",	config_string_header,	0, 0, 0, LINE_NONE, NULL },
	{ "trial_mode",		config_bool,		OFF(trial_mode), 0, 0, LINE_NONE, NULL },
	{ "max_message_size",	config_size,		OFF(max_message_size),
	    CONFIG_SIZE_MIN, CONFIG_SIZE_MAX, LINE_NONE, NULL },
	{ "log_level",		config_string_loglevel,	0, 0, 0, LINE_NONE, NULL },
	{ "limits",		config_section,		0, 0, 0, LINE_NONE, config_limits_keys },
	{ "timeouts",		config_section,		0, 0, 0, LINE_NONE, config_timeouts_keys },
	{ "policies",		config_list_policies,	0, 0, 0, LINE_NONE, NULL },
	{ "policy_limits",	config_section,		0, 0, 0, LINE_NONE, config_policy_limits_keys },
	{ "incident_log",	config_string_path,	OFF(incident_log), 0, 0, LINE_NONE, NULL },
	{ "notify",		config_section,		0, 0, 0, LINE_NONE, config_notify_keys },
	{ "tls",		config_section,		0, 0, 0, LINE_TLS, config_tls_keys },
	{ NULL, NULL, 0, 0, 0, LINE_NONE, NULL }
};

/* Every table with its path prefix, for "did you mean limits.max_errors". */
static const struct {
	const char		*prefix;
	const struct config_key	*keys;
} config_tables[] = {
	{ NULL,		config_top_keys },
	{ "next_hop",	config_next_hop_keys },
	{ "limits",	config_limits_keys },
	{ "timeouts",	config_timeouts_keys },
	{ "notify",	config_notify_keys },
	{ "policy_limits", config_policy_limits_keys },
	{ "tls",	config_tls_keys },
	{ "proxy_protocol", config_proxyproto_keys },
};

/* config_walk() keeps one "seen" slot per key (plus the NULL end). */
#define NKEYS(t)	(sizeof(t) / sizeof((t)[0]) - 1)
_Static_assert(NKEYS(config_top_keys) <= CONFIG_KEYS_MAX, "top keys");
_Static_assert(NKEYS(config_next_hop_keys) <= CONFIG_KEYS_MAX, "next_hop");
_Static_assert(NKEYS(config_limits_keys) <= CONFIG_KEYS_MAX, "limits");
_Static_assert(NKEYS(config_timeouts_keys) <= CONFIG_KEYS_MAX, "timeouts");
_Static_assert(NKEYS(config_notify_keys) <= CONFIG_KEYS_MAX, "notify");
_Static_assert(NKEYS(config_tls_keys) <= CONFIG_KEYS_MAX, "tls");
_Static_assert(NKEYS(config_proxyproto_keys) <= CONFIG_KEYS_MAX, "proxy_protocol");
_Static_assert(NKEYS(config_policy_limits_keys) <= CONFIG_KEYS_MAX, "policy_limits");

static void
config_error(struct config_ctx *ctx, unsigned long line, const char *fmt, ...)
{
	va_list ap;

	ctx->nerrors++;
	if (ctx->errors == NULL || ctx->nerrors > CONFIG_ERRORS_MAX)
		return;
	buf_appendf(ctx->errors, "%s:%lu: ", ctx->path, line);
	va_start(ap, fmt);
	buf_vappendf(ctx->errors, fmt, ap);
	va_end(ap);
	buf_appends(ctx->errors, "\n");
}

static unsigned long
config_line(const yaml_node_t *n)
{
	return (unsigned long)n->start_mark.line + 1;
}

/*
 * A value from the file, for a message: always in double quotes, anything
 * but printable ASCII as \xNN, cut short with "..." so that a huge or
 * hostile value cannot flood the error output or the terminal.
 */
static const char *
config_quote(char *dst, size_t dstsz, const char *s, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	size_t i, n = 0;

	if (dstsz < CONFIG_QUOTE_MAX * 4 + 8)
		log_panic("destination too small");
	dst[n++] = '"';
	for (i = 0; i < len && i < CONFIG_QUOTE_MAX; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '"' || c == '\\') {
			dst[n++] = '\\';
			dst[n++] = (char)c;
		} else if (c < 0x20 || c > 0x7e) {
			dst[n++] = '\\';
			dst[n++] = 'x';
			dst[n++] = hex[c >> 4];
			dst[n++] = hex[c & 0xf];
		} else
			dst[n++] = (char)c;
	}
	dst[n++] = '"';
	if (i < len) {
		memcpy(dst + n, "...", 3);
		n += 3;
	}
	dst[n] = '\0';
	return dst;
}

#define QBUF	(CONFIG_QUOTE_MAX * 4 + 8)

static const char *
config_kind(const yaml_node_t *n)
{
	switch (n->type) {
	case YAML_SCALAR_NODE:
		return "a single value";
	case YAML_SEQUENCE_NODE:
		return "a list";
	case YAML_MAPPING_NODE:
		return "a mapping";
	default:
		return "nothing";
	}
}

/* YAML's null: an empty plain scalar, "~" or "null". */
static int
config_is_null(const yaml_node_t *n)
{
	const char *s = (const char *)n->data.scalar.value;

	if (n->type != YAML_SCALAR_NODE ||
	    n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
		return 0;
	return n->data.scalar.length == 0 || strcmp(s, "~") == 0 ||
	    strcmp(s, "null") == 0 || strcmp(s, "Null") == 0 ||
	    strcmp(s, "NULL") == 0;
}

/*
 * The text of a scalar value, or NULL after reporting why there is none.
 * CR, LF and NUL are refused here for every value, before any key-specific
 * check: a configured string may end up in an SMTP command or a header, and
 * a line break there would let the file inject protocol.  YAML null reads
 * as "".
 */
static const char *
config_scalar(struct config_ctx *ctx, const char *keypath, yaml_node_t *v,
    size_t *lenp)
{
	const char *s;
	size_t len;

	if (v->type != YAML_SCALAR_NODE) {
		config_error(ctx, config_line(v), "%s: expected a single value, "
		    "got %s", keypath, config_kind(v));
		return NULL;
	}
	s = (const char *)v->data.scalar.value;
	len = v->data.scalar.length;
	if (memchr(s, '\0', len) != NULL || memchr(s, '\r', len) != NULL ||
	    memchr(s, '\n', len) != NULL) {
		config_error(ctx, config_line(v), "%s: value contains a CR, LF "
		    "or NUL character", keypath);
		return NULL;
	}
	if (config_is_null(v)) {
		*lenp = 0;
		return "";
	}
	*lenp = len;
	return s;
}

/* Where a string is copied into a fixed field of struct config. */
static int
config_copy(char *dst, size_t dstsz, const char *s, size_t len)
{
	if (len >= dstsz)
		return -1;
	memcpy(dst, s, len);
	dst[len] = '\0';
	return 0;
}

static int
config_is_ip(const char *s)
{
	struct in6_addr a6;
	struct in_addr a4;

	return inet_pton(AF_INET, s, &a4) == 1 ||
	    inet_pton(AF_INET6, s, &a6) == 1;
}

/*
 * RFC 1035 host name: letters, digits and inner hyphens; labels 1-63.  An
 * all-digit last label is refused so that "192.0.2.1" is not taken for a
 * name (EHLO wants "[192.0.2.1]" for that).
 */
static int
config_is_hostname(const char *s, size_t len)
{
	size_t i, label = 0;
	int digits = 1;

	if (len == 0 || len > 253)
		return 0;
	for (i = 0; i < len; i++) {
		char c = s[i];

		if (c == '.') {
			if (label == 0 || s[i - 1] == '-')
				return 0;
			label = 0;
			digits = 1;
			continue;
		}
		if (c < '0' || c > '9')
			digits = 0;
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '-'))
			return 0;
		if (c == '-' && label == 0)
			return 0;
		if (++label > 63)
			return 0;
	}
	return label > 0 && s[len - 1] != '-' && !digits;
}

/* RFC 5321 4.1.3 address literal: "[1.2.3.4]" or "[IPv6:...]". */
static int
config_is_address_literal(const char *s, size_t len)
{
	char ip[64];

	if (len < 3 || s[0] != '[' || s[len - 1] != ']' || len - 2 >= sizeof(ip))
		return 0;
	memcpy(ip, s + 1, len - 2);
	ip[len - 2] = '\0';
	if (strncasecmp(ip, "IPv6:", 5) == 0) {
		struct in6_addr a6;

		return inet_pton(AF_INET6, ip + 5, &a6) == 1;
	} else {
		struct in_addr a4;

		return inet_pton(AF_INET, ip, &a4) == 1;
	}
}

/*
 * The colon before the port in "host:port" text, or NULL when there is no
 * port.  A bare IPv6 literal (several colons, no brackets) has none.
 */
static const char *
config_port_colon(const char *s)
{
	const char *c;

	if (s[0] == '[')
		return (c = strchr(s, ']')) != NULL && c[1] == ':' ? c + 1 : NULL;
	if ((c = strchr(s, ':')) != NULL && strchr(c + 1, ':') == NULL)
		return c;
	return NULL;
}

/*
 * netaddr refuses port 0, and reports a missing port as 0.  Port 0 means
 * "any free port" for listen and is a mistake in a host entry, so it is
 * recognised here: returns the colon before an all-zero port, or NULL.
 */
static const char *
config_port_zero(const char *s)
{
	const char *c = config_port_colon(s);

	if (c == NULL || c[1] == '\0' || strspn(c + 1, "0") != strlen(c + 1))
		return NULL;
	return c;
}

/* Decimal digits only: YAML 1.1 would read 010 as octal and 0x10 as hex. */
static size_t
config_digits(const char *s, size_t len, uint64_t *out)
{
	uint64_t v = 0;
	size_t i;

	for (i = 0; i < len && s[i] >= '0' && s[i] <= '9'; i++) {
		unsigned d = (unsigned)(s[i] - '0');

		if (v > (UINT64_MAX - d) / 10)
			v = UINT64_MAX;		/* saturate: out of any range */
		else
			v = v * 10 + d;
	}
	*out = v;
	return i;
}

/*
 * A number with an optional one-letter unit from units[] (multipliers in
 * mult[]).  Returns 0, -1 when it is not a number at all, -2 for leading
 * zeros.
 */
static int
config_number(const char *s, size_t len, const char *units,
    const uint64_t *mult, uint64_t *out)
{
	const char *u;
	uint64_t v;
	size_t n;

	n = config_digits(s, len, &v);
	if (n == 0)
		return -1;
	if (n > 1 && s[0] == '0')
		return -2;
	if (n == len) {
		*out = v;
		return 0;
	}
	if (n + 1 != len || units == NULL || s[n] == '\0' ||
	    (u = strchr(units, s[n])) == NULL)
		return -1;
	*out = v > UINT64_MAX / mult[u - units] ? UINT64_MAX :
	    v * mult[u - units];
	return 0;
}

/*
 * Shared by the numeric keys: parse, report, check the range.  Returns 0
 * with *out set, -1 after an error.
 */
static int
config_numeric(struct config_ctx *ctx, const struct config_key *k,
    const char *keypath, yaml_node_t *v, const char *units,
    const uint64_t *mult, const char *expect, const char *range,
    uint64_t *out)
{
	char q[QBUF];
	const char *s;
	size_t len;
	int r;

	if ((s = config_scalar(ctx, keypath, v, &len)) == NULL)
		return -1;
	r = config_number(s, len, units, mult, out);
	if (r == -2) {
		config_error(ctx, config_line(v), "%s: %s has leading zeros "
		    "(write it in plain decimal)", keypath,
		    config_quote(q, sizeof(q), s, len));
		return -1;
	}
	if (r < 0) {
		config_error(ctx, config_line(v), "%s: expected %s, got %s",
		    keypath, expect, config_quote(q, sizeof(q), s, len));
		return -1;
	}
	/* The text is digits and a unit letter now: safe to show as is. */
	if (*out < k->min || *out > k->max) {
		config_error(ctx, config_line(v), "%s: %.*s is out of range %s",
		    keypath, (int)len, s, range);
		return -1;
	}
	return 0;
}

/* An integer in [k->min, k->max], stored as unsigned or as uint64_t. */
static int
config_integer(struct config_ctx *ctx, const struct config_key *k,
    const char *keypath, yaml_node_t *v, uint64_t *n)
{
	char range[64];

	snprintf(range, sizeof(range), "%llu..%llu",
	    (unsigned long long)k->min, (unsigned long long)k->max);
	return config_numeric(ctx, k, keypath, v, NULL, NULL, "an integer",
	    range, n);
}

static void
config_uint(struct config_ctx *ctx, const struct config_key *k,
    const char *keypath, yaml_node_t *v)
{
	uint64_t n;

	if (config_integer(ctx, k, keypath, v, &n) == 0)
		*(unsigned *)(void *)((char *)ctx->cf + k->off) = (unsigned)n;
}

static void
config_uint64(struct config_ctx *ctx, const struct config_key *k,
    const char *keypath, yaml_node_t *v)
{
	uint64_t n;

	if (config_integer(ctx, k, keypath, v, &n) == 0)
		*(uint64_t *)(void *)((char *)ctx->cf + k->off) = n;
}

static void
config_port(struct config_ctx *ctx, const struct config_key *k,
    const char *keypath, yaml_node_t *v)
{
	uint64_t n;

	if (config_numeric(ctx, k, keypath, v, NULL, NULL, "a port number",
	    "1..65535", &n) == 0)
		*(uint16_t *)(void *)((char *)ctx->cf + k->off) = (uint16_t)n;
}

static void
config_size(struct config_ctx *ctx, const struct config_key *k,
    const char *keypath, yaml_node_t *v)
{
	static const uint64_t mult[] = {
		1024, 1024, 1024 * 1024, 1024 * 1024,
		1024 * 1024 * 1024, 1024 * 1024 * 1024
	};
	uint64_t n;

	if (config_numeric(ctx, k, keypath, v, "KkMmGg", mult,
	    "a size in bytes or with a unit (\"512K\", \"50M\", \"1G\")",
	    "1K..2G (1024..2147483648 bytes)", &n) == 0)
		*(uint64_t *)(void *)((char *)ctx->cf + k->off) = n;
}

static void
config_duration(struct config_ctx *ctx, const struct config_key *k,
    const char *keypath, yaml_node_t *v)
{
	static const uint64_t mult[] = { 1, 60, 3600 };
	char range[64];
	uint64_t n;

	snprintf(range, sizeof(range), "%llu..%llu seconds",
	    (unsigned long long)k->min, (unsigned long long)k->max);
	if (config_numeric(ctx, k, keypath, v, "smh", mult,
	    "seconds or a duration (\"30s\", \"5m\", \"1h\")",
	    range, &n) != 0)
		return;
	/*
	 * The upstream gives up on us after 10 minutes; answering later
	 * than that makes it retry a message we may already have passed on.
	 */
	if (k->off == OFF(timeouts.data_done) && n >= CONFIG_DATA_DONE_LIMIT) {
		config_error(ctx, config_line(v), "%s: %s must be less than 600 "
		    "seconds (RFC 5321 4.5.3.2.6: the upstream MTA waits 10 "
		    "minutes for the reply to the final dot)", keypath,
		    (const char *)v->data.scalar.value);
		return;
	}
	*(unsigned *)(void *)((char *)ctx->cf + k->off) = (unsigned)n;
}

static void
config_bool(struct config_ctx *ctx, const struct config_key *k,
    const char *keypath, yaml_node_t *v)
{
	char q[QBUF];
	const char *s;
	size_t len;
	int b;

	if ((s = config_scalar(ctx, keypath, v, &len)) == NULL)
		return;
	if (strcasecmp(s, "true") == 0 || strcasecmp(s, "yes") == 0)
		b = 1;
	else if (strcasecmp(s, "false") == 0 || strcasecmp(s, "no") == 0)
		b = 0;
	else {
		config_error(ctx, config_line(v), "%s: expected true, false, yes "
		    "or no, got %s", keypath, config_quote(q, sizeof(q), s, len));
		return;
	}
	*(int *)(void *)((char *)ctx->cf + k->off) = b;
}

static void
config_string_listen(struct config_ctx *ctx, const struct config_key *k,
    const char *keypath, yaml_node_t *v)
{
	char q[QBUF], host[NETADDR_HOST_MAX + 16];
	const char *s, *err, *zero;
	struct hostport hp;
	size_t len;
	int r;

	if ((s = config_scalar(ctx, keypath, v, &len)) == NULL)
		return;
	/* Port 0 is allowed here: the kernel picks one (tests use it). */
	if ((zero = config_port_zero(s)) != NULL &&
	    (size_t)(zero - s) < sizeof(host)) {
		memcpy(host, s, (size_t)(zero - s));
		host[zero - s] = '\0';
		r = netaddr_parse_hostport(host, &hp, &err);
	} else
		r = netaddr_parse_hostport(s, &hp, &err);
	if (r == -1) {
		config_error(ctx, config_line(v), "%s: %s: %s", keypath,
		    config_quote(q, sizeof(q), s, len), err);
		return;
	}
	if (!config_is_ip(hp.host)) {
		config_error(ctx, config_line(v), "%s: %s: the address to listen "
		    "on must be an IP address", keypath,
		    config_quote(q, sizeof(q), s, len));
		return;
	}
	if (zero != NULL)
		hp.port = 0;
	else if (config_port_colon(s) == NULL)
		hp.port = CONFIG_DEFAULT_LISTEN_PORT;
	ctx->cf->listen = hp;
}

static void
config_string_mode(struct config_ctx *ctx, const struct config_key *k,
    const char *keypath, yaml_node_t *v)
{
	char q[QBUF];
	const char *s;
	size_t len;

	if ((s = config_scalar(ctx, keypath, v, &len)) == NULL)
		return;
	if (strcmp(s, "forward") == 0)
		ctx->cf->mode = MODE_FORWARD;
	else if (strcmp(s, "reflect") == 0)
		ctx->cf->mode = MODE_REFLECT;
	else
		config_error(ctx, config_line(v), "%s: expected forward or "
		    "reflect, got %s", keypath, config_quote(q, sizeof(q), s, len));
}

static void
config_string_helo(struct config_ctx *ctx, const struct config_key *k,
    const char *keypath, yaml_node_t *v)
{
	char q[QBUF];
	const char *s;
	size_t len;

	if ((s = config_scalar(ctx, keypath, v, &len)) == NULL)
		return;
	if ((!config_is_hostname(s, len) && !config_is_address_literal(s, len)) ||
	    config_copy(ctx->cf->helo_name, sizeof(ctx->cf->helo_name),
	    s, len) == -1)
		config_error(ctx, config_line(v), "%s: %s is not a valid host name "
		    "or address literal such as \"[192.0.2.1]\"", keypath,
		    config_quote(q, sizeof(q), s, len));
}

static void
config_string_source(struct config_ctx *ctx, const struct config_key *k,
    const char *keypath, yaml_node_t *v)
{
	char q[QBUF];
	const char *s;
	size_t len;

	if ((s = config_scalar(ctx, keypath, v, &len)) == NULL)
		return;
	if ((len > 0 && !config_is_ip(s)) ||
	    config_copy(ctx->cf->source_address,
	    sizeof(ctx->cf->source_address), s, len) == -1)
		config_error(ctx, config_line(v), "%s: %s is not an IP address "
		    "(use \"\" for any)", keypath,
		    config_quote(q, sizeof(q), s, len));
}

/*
 * "Name: value" as one RFC 5322 header line: a field name of printable
 * ASCII without ':', then a value of printable ASCII and tabs.  The whole
 * line must fit in 998 octets since it is written out as is.
 */
static void
config_string_header(struct config_ctx *ctx, const struct config_key *k,
    const char *keypath, yaml_node_t *v)
{
	const char *s, *colon, *why = NULL;
	size_t i, len;
	int seen = 0;

	if ((s = config_scalar(ctx, keypath, v, &len)) == NULL)
		return;
	if (len == 0) {
		ctx->cf->pass_header[0] = '\0';
		return;
	}
	if (len > CONFIG_HEADER_MAX)
		why = "longer than 998 octets";
	else if ((colon = memchr(s, ':', len)) == NULL || colon == s)
		why = "must be \"Name: value\"";
	else {
		for (i = 0; s + i < colon; i++)
			if (s[i] < 33 || s[i] > 126) {
				why = "field name must be printable ASCII "
				    "without spaces or ':'";
				break;
			}
		for (i = (size_t)(colon - s) + 1; why == NULL && i < len; i++) {
			unsigned char c = (unsigned char)s[i];

			if (c != '\t' && (c < 32 || c > 126))
				why = "value must be printable ASCII (tabs "
				    "allowed)";
			else if (c != ' ' && c != '\t')
				seen = 1;
		}
		if (why == NULL && !seen)
			why = "value is empty";
	}
	if (why != NULL) {
		config_error(ctx, config_line(v), "%s: %s", keypath, why);
		return;
	}
	if (config_copy(ctx->cf->pass_header, sizeof(ctx->cf->pass_header),
	    s, len) == -1)
		log_panic("pass_header does not fit");
}

static void
config_string_loglevel(struct config_ctx *ctx, const struct config_key *k,
    const char *keypath, yaml_node_t *v)
{
	char q[QBUF];
	const char *s;
	size_t len;

	if ((s = config_scalar(ctx, keypath, v, &len)) == NULL)
		return;
	if (log_level_parse(s, &ctx->cf->log_level) == -1)
		config_error(ctx, config_line(v), "%s: expected debug, info, warn "
		    "or error, got %s", keypath, config_quote(q, sizeof(q), s, len));
}

/*
 * The items of a list value, or NULL with *n = 0.  YAML null is an empty
 * list; anything else that is not a list is an error.
 */
static yaml_node_item_t *
config_list(struct config_ctx *ctx, const char *keypath, yaml_node_t *v,
    size_t *n)
{
	*n = 0;
	if (config_is_null(v))
		return NULL;
	if (v->type != YAML_SEQUENCE_NODE) {
		config_error(ctx, config_line(v), "%s: expected a list, got %s",
		    keypath, config_kind(v));
		return NULL;
	}
	*n = (size_t)(v->data.sequence.items.top - v->data.sequence.items.start);
	return v->data.sequence.items.start;
}

/*
 * Walk a list of scalars: each item is handed to fn with its path
 * ("key[2]") for messages. Returns the number of items (0 for null), so
 * the caller can size its array first through alloc.
 */
typedef void config_item_fn(struct config_ctx *, const char *path,
    yaml_node_t *item, const char *s, size_t len, void *arg);

static void
config_each(struct config_ctx *ctx, const char *keypath, yaml_node_t *v,
    void (*alloc)(struct config_ctx *, size_t n, void *arg),
    config_item_fn *fn, void *arg)
{
	yaml_node_item_t *items;
	const char *s;
	size_t i, n, len;

	items = config_list(ctx, keypath, v, &n);
	if (n == 0)
		return;
	alloc(ctx, n, arg);
	for (i = 0; i < n; i++) {
		yaml_node_t *item = yaml_document_get_node(ctx->doc, items[i]);
		char path[64];

		snprintf(path, sizeof(path), "%s[%zu]", keypath, i);
		if ((s = config_scalar(ctx, path, item, &len)) != NULL)
			fn(ctx, path, item, s, len, arg);
	}
}

static void *
config_calloc(size_t n, size_t size)
{
	void *p;

	if ((p = calloc(n, size)) == NULL)
		log_fatal("calloc: %s", strerror(errno));
	return p;
}

static void
config_hosts_alloc(struct config_ctx *ctx, size_t n, void *arg)
{
	ctx->cf->hosts = config_calloc(n, sizeof(*ctx->cf->hosts));
}

static void
config_host(struct config_ctx *ctx, const char *path, yaml_node_t *item,
    const char *s, size_t len, void *arg)
{
	struct hostport hp;
	const char *err;
	char q[QBUF];

	if (config_port_zero(s) != NULL) {
		config_error(ctx, config_line(item), "%s: %s: port 0 is not "
		    "allowed", path, config_quote(q, sizeof(q), s, len));
		return;
	}
	if (netaddr_parse_hostport(s, &hp, &err) == -1) {
		config_error(ctx, config_line(item), "%s: %s: %s", path,
		    config_quote(q, sizeof(q), s, len), err);
		return;
	}
	ctx->cf->hosts[ctx->cf->nhosts++] = hp;
}

static void
config_list_hosts(struct config_ctx *ctx, const struct config_key *k,
    const char *keypath, yaml_node_t *v)
{
	config_each(ctx, keypath, v, config_hosts_alloc, config_host, NULL);
}

static void
config_domains_alloc(struct config_ctx *ctx, size_t n, void *arg)
{
	ctx->cf->domains = config_calloc(n, sizeof(*ctx->cf->domains));
}

static void
config_domain(struct config_ctx *ctx, const char *path, yaml_node_t *item,
    const char *s, size_t len, void *arg)
{
	char q[QBUF];

	if (!config_is_hostname(s, len)) {
		config_error(ctx, config_line(item), "%s: %s is not a valid "
		    "domain name", path, config_quote(q, sizeof(q), s, len));
		return;
	}
	if ((ctx->cf->domains[ctx->cf->ndomains++] = strdup(s)) == NULL)
		log_fatal("strdup: %s", strerror(errno));
}

static void
config_list_domains(struct config_ctx *ctx, const struct config_key *k,
    const char *keypath, yaml_node_t *v)
{
	config_each(ctx, keypath, v, config_domains_alloc, config_domain, NULL);
}

/*
 * A path from the file, relative to the configuration file's directory
 * unless absolute, so a configuration works wherever it is started from.
 */
static char *
config_resolve(struct config_ctx *ctx, const char *s, size_t len)
{
	const char *slash = strrchr(ctx->path, '/');
	char *out;
	int n;

	if (s[0] == '/' || slash == NULL)
		n = asprintf(&out, "%.*s", (int)len, s);
	else
		n = asprintf(&out, "%.*s/%.*s", (int)(slash - ctx->path),
		    ctx->path, (int)len, s);
	if (n < 0)
		log_fatal("asprintf: %s", strerror(errno));
	return out;
}

/* A policy entry must name at least one readable file. */
static int
config_glob_check(struct config_ctx *ctx, const char *keypath,
    yaml_node_t *item, const char *pattern)
{
	char q[QBUF];
	glob_t g;
	int r;

	memset(&g, 0, sizeof(g));
	r = glob(pattern, 0, NULL, &g);
	if (r == 0) {
		for (size_t i = 0; i < g.gl_pathc; i++) {
			struct stat st;

			/* A policy anyone can edit is a policy anyone can disable. */
			if (stat(g.gl_pathv[i], &st) == 0 && (st.st_mode & S_IWOTH)) {
				config_error(ctx, config_line(item), "%s: %s is "
				    "writable by every user (mode %04o); chmod "
				    "o-w it", keypath, g.gl_pathv[i],
				    (unsigned)(st.st_mode & 07777));
				r = -1;
			}
		}
		globfree(&g);
		return r;
	}
	globfree(&g);
	config_error(ctx, config_line(item), "%s: %s %s", keypath,
	    r == GLOB_NOMATCH ? "no file matches" : "cannot read",
	    config_quote(q, sizeof(q), pattern, strlen(pattern)));
	return -1;
}

static void
config_policies_alloc(struct config_ctx *ctx, size_t n, void *arg)
{
	ctx->cf->policies = config_calloc(n, sizeof(*ctx->cf->policies));
}

static void
config_policy(struct config_ctx *ctx, const char *path, yaml_node_t *item,
    const char *s, size_t len, void *arg)
{
	struct config *cf = ctx->cf;

	if (len == 0) {
		config_error(ctx, config_line(item), "%s: empty path", path);
		return;
	}
	cf->policies[cf->npolicies] = config_resolve(ctx, s, len);
	if (config_glob_check(ctx, path, item,
	    cf->policies[cf->npolicies]) == -1) {
		free(cf->policies[cf->npolicies]);
		return;
	}
	cf->npolicies++;
}

static void
config_list_policies(struct config_ctx *ctx, const struct config_key *k,
    const char *keypath, yaml_node_t *v)
{
	config_each(ctx, keypath, v, config_policies_alloc, config_policy, NULL);
	ctx->policies_line = config_line(v);
}

static void
config_string_path(struct config_ctx *ctx, const struct config_key *k,
    const char *keypath, yaml_node_t *v)
{
	char **dst = (char **)(void *)((char *)ctx->cf + k->off);
	const char *s;
	size_t len;

	if ((s = config_scalar(ctx, keypath, v, &len)) == NULL)
		return;
	free(*dst);
	*dst = len ? config_resolve(ctx, s, len) : NULL;
}

/* A plain mailbox: local@domain, printable, no spaces, brackets or quotes. */
static void
config_string_mailbox(struct config_ctx *ctx, const struct config_key *k,
    const char *keypath, yaml_node_t *v)
{
	char *dst = (char *)ctx->cf + k->off;
	const char *s, *at;
	char q[QBUF];
	size_t i, len;
	int bad = 0;

	if ((s = config_scalar(ctx, keypath, v, &len)) == NULL)
		return;
	if (len == 0) {
		dst[0] = '\0';
		return;
	}
	at = memrchr(s, '@', len);
	if (at == NULL || at == s || at == s + len - 1 || len > 254 ||
	    !config_is_hostname(at + 1, len - (size_t)(at - s) - 1))
		bad = 1;
	for (i = 0; i < len && !bad; i++)
		if (s[i] <= ' ' || s[i] >= 127 || strchr("<>\"(),;:\\[]", s[i]))
			bad = 1;
	if (bad) {
		config_error(ctx, config_line(v), "%s: %s is not a mailbox "
		    "(local@domain)", keypath, config_quote(q, sizeof(q), s, len));
		return;
	}
	memcpy(dst, s, len);
	dst[len] = '\0';
}

/* Levenshtein distance, for "did you mean"; short strings only. */
static size_t
config_distance(const char *a, size_t alen, const char *b)
{
	size_t row[CONFIG_QUOTE_MAX + 1], blen = strlen(b), i, j;

	if (alen > CONFIG_QUOTE_MAX || blen > CONFIG_QUOTE_MAX)
		return SIZE_MAX;
	for (j = 0; j <= blen; j++)
		row[j] = j;
	for (i = 1; i <= alen; i++) {
		size_t diag = row[0], up;

		row[0] = i;
		for (j = 1; j <= blen; j++) {
			up = row[j];
			row[j] = diag + (a[i - 1] != b[j - 1]);
			if (up + 1 < row[j])
				row[j] = up + 1;
			if (row[j - 1] + 1 < row[j])
				row[j] = row[j - 1] + 1;
			diag = up;
		}
	}
	return row[blen];
}

static void
config_unknown(struct config_ctx *ctx, const char *prefix,
    const struct config_key *keys, const yaml_node_t *kn)
{
	const char *name = (const char *)kn->data.scalar.value;
	size_t len = kn->data.scalar.length, d, best = 3, t;
	const char *hint = NULL, *hintprefix = prefix;
	int elsewhere = 0;
	char q[QBUF], full[CONFIG_QUOTE_MAX + 1];
	const struct config_key *k;
	size_t n = 0;

	for (k = keys; k->name != NULL; k++)
		if ((d = config_distance(name, len, k->name)) < best) {
			best = d;
			hint = k->name;
		}
	/* The right name in the wrong section: "limits.max_errors". */
	for (t = 0; hint == NULL &&
	    t < sizeof(config_tables) / sizeof(config_tables[0]); t++)
		for (k = config_tables[t].keys; k->name != NULL; k++)
			if (config_tables[t].keys != keys &&
			    strlen(k->name) == len &&
			    memcmp(k->name, name, len) == 0) {
				hint = k->name;
				hintprefix = config_tables[t].prefix;
				elsewhere = 1;
				break;
			}

	/* "section.name", cut to what config_quote shows anyway. */
	if (prefix != NULL)
		n = (size_t)snprintf(full, sizeof(full), "%s.", prefix);
	if (len > sizeof(full) - n)
		len = sizeof(full) - n;
	memcpy(full + n, name, len);
	config_quote(q, sizeof(q), full, n + len);
	if (hint == NULL)
		config_error(ctx, config_line(kn), "unknown key %s", q);
	else if (hintprefix == NULL && elsewhere)
		config_error(ctx, config_line(kn), "unknown key %s; did you mean "
		    "\"%s\" (at the top level)?", q, hint);
	else if (hintprefix == NULL)
		config_error(ctx, config_line(kn), "unknown key %s; did you mean "
		    "\"%s\"?", q, hint);
	else
		config_error(ctx, config_line(kn), "unknown key %s; did you mean "
		    "\"%s.%s\"?", q, hintprefix, hint);
}

/* One mapping against its key table. */
static void
config_walk(struct config_ctx *ctx, const char *prefix, yaml_node_t *map,
    const struct config_key *keys)
{
	unsigned long seen[CONFIG_KEYS_MAX] = { 0 };
	yaml_node_pair_t *p;

	for (p = map->data.mapping.pairs.start;
	    p < map->data.mapping.pairs.top; p++) {
		yaml_node_t *kn = yaml_document_get_node(ctx->doc, p->key);
		yaml_node_t *vn = yaml_document_get_node(ctx->doc, p->value);
		const struct config_key *k;
		char keypath[64];
		unsigned before;
		size_t i, len;

		if (kn->type != YAML_SCALAR_NODE) {
			config_error(ctx, config_line(kn), "%s%skeys must be "
			    "plain names, got %s", prefix ? prefix : "",
			    prefix ? ": " : "", config_kind(kn));
			continue;
		}
		len = kn->data.scalar.length;
		for (k = keys, i = 0; k->name != NULL; k++, i++)
			if (strlen(k->name) == len &&
			    memcmp(k->name, kn->data.scalar.value, len) == 0)
				break;
		if (k->name == NULL) {
			config_unknown(ctx, prefix, keys, kn);
			continue;
		}
		if (prefix != NULL)
			snprintf(keypath, sizeof(keypath), "%s.%s", prefix,
			    k->name);
		else
			snprintf(keypath, sizeof(keypath), "%s", k->name);
		if (seen[i] != 0) {
			config_error(ctx, config_line(kn), "duplicate key \"%s\" "
			    "(first given at line %lu)", keypath, seen[i]);
			continue;
		}
		seen[i] = config_line(kn);
		if (k->line != LINE_NONE)
			ctx->lines[k->line] = config_line(kn);
		before = ctx->nerrors;
		k->parse(ctx, k, keypath, vn);
		if (ctx->nerrors != before)
			ctx->bad[k->line] = 1;
	}
}

static void
config_section(struct config_ctx *ctx, const struct config_key *k,
    const char *keypath, yaml_node_t *v)
{
	if (config_is_null(v))
		return;		/* "limits:" alone: all defaults */
	if (v->type != YAML_MAPPING_NODE) {
		config_error(ctx, config_line(v), "%s: expected a mapping, got %s",
		    keypath, config_kind(v));
		return;
	}
	config_walk(ctx, keypath, v, k->sub);
}

/*
 * Rules that tie several keys together, checked once everything is read.
 * A key whose own value was wrong takes no part: "mode: reflekt" should
 * not also earn a complaint about missing forward hosts.
 */
/* DNS servers as IP literals with an optional port. */
static void
config_dns_alloc(struct config_ctx *ctx, size_t n, void *arg)
{
	ctx->cf->dns_servers = config_calloc(n + 1, sizeof(*ctx->cf->dns_servers));
}

/* DNS servers as IP literals with an optional port. */
static void
config_dns(struct config_ctx *ctx, const char *path, yaml_node_t *item,
    const char *s, size_t len, void *arg)
{
	struct config *cf = ctx->cf;
	struct hostport hp;
	const char *why;
	char q[QBUF];

	if (netaddr_parse_hostport(s, &hp, &why) == -1 || !config_is_ip(hp.host)) {
		config_error(ctx, config_line(item), "%s: %s is not an IP "
		    "address with an optional port", path,
		    config_quote(q, sizeof(q), s, len));
		return;
	}
	if ((cf->dns_servers[cf->ndns_servers++] = strdup(s)) == NULL)
		log_fatal("strdup: %s", strerror(errno));
}

static void
config_list_dns(struct config_ctx *ctx, const struct config_key *k,
    const char *keypath, yaml_node_t *v)
{
	config_each(ctx, keypath, v, config_dns_alloc, config_dns, NULL);
}

/* A user (max 0) or group (max 1) that must exist on this system. */
static void
config_string_account(struct config_ctx *ctx, const struct config_key *k,
    const char *keypath, yaml_node_t *v)
{
	char *dst = (char *)ctx->cf + k->off, q[QBUF];
	const char *s;
	size_t len;
	int found;

	if ((s = config_scalar(ctx, keypath, v, &len)) == NULL)
		return;
	if (len == 0) {
		dst[0] = '\0';
		return;
	}
	found = len < 64 && (k->max ? getgrnam(s) != NULL : getpwnam(s) != NULL);
	if (!found) {
		config_error(ctx, config_line(v), "%s: no such %s %s", keypath,
		    k->max ? "group" : "user", config_quote(q, sizeof(q), s, len));
		return;
	}
	memcpy(dst, s, len);
	dst[len] = '\0';
}

static void
config_cidrs_alloc(struct config_ctx *ctx, size_t n, void *arg)
{
	struct config_cidrs *c = arg;

	c->v = config_calloc(n, sizeof(*c->v));
}

static void
config_cidr(struct config_ctx *ctx, const char *path, yaml_node_t *item,
    const char *s, size_t len, void *arg)
{
	struct config_cidrs *c = arg;
	const char *why;
	char q[QBUF];

	if (netaddr_parse_cidr(s, &c->v[c->n], &why) == -1) {
		config_error(ctx, config_line(item), "%s: %s: %s", path,
		    config_quote(q, sizeof(q), s, len), why);
		return;
	}
	c->n++;
}

static void
config_list_cidrs(struct config_ctx *ctx, const struct config_key *k,
    const char *keypath, yaml_node_t *v)
{
	struct config_cidrs *c = (struct config_cidrs *)(void *)
	    ((char *)ctx->cf + k->off);

	free(c->v);
	c->v = NULL;
	c->n = 0;
	if (!config_is_null(v) && v->type == YAML_SEQUENCE_NODE &&
	    v->data.sequence.items.top == v->data.sequence.items.start) {
		config_error(ctx, config_line(v), "%s: the list is empty: no "
		    "address would match", keypath);
		return;
	}
	config_each(ctx, keypath, v, config_cidrs_alloc, config_cidr, c);
}

int
config_cidrs_match(const struct config_cidrs *c, const struct sockaddr *sa)
{
	for (size_t i = 0; i < c->n; i++)
		if (netaddr_cidr_match(&c->v[i], sa))
			return 1;
	return 0;
}

static void
config_string_outbound(struct config_ctx *ctx, const struct config_key *k,
    const char *keypath, yaml_node_t *v)
{
	static const char *const names[] = { "follow", "always", "never" };
	char q[QBUF];
	const char *s;
	size_t len, i;

	if ((s = config_scalar(ctx, keypath, v, &len)) == NULL)
		return;
	for (i = 0; i < 3; i++)
		if (strcmp(s, names[i]) == 0) {
			ctx->cf->tls.outbound = (enum config_tls_outbound)i;
			return;
		}
	config_error(ctx, config_line(v), "%s: expected follow, always or "
	    "never, got %s", keypath, config_quote(q, sizeof(q), s, len));
}

/* The name of an environment variable (the passphrase never sits in YAML). */
static void
config_string_envname(struct config_ctx *ctx, const struct config_key *k,
    const char *keypath, yaml_node_t *v)
{
	char *dst = (char *)ctx->cf + k->off, q[QBUF];
	const char *s;
	size_t len, i;
	int bad = 0;

	if ((s = config_scalar(ctx, keypath, v, &len)) == NULL)
		return;
	for (i = 0; i < len; i++)
		if (!(s[i] == '_' || (s[i] >= 'A' && s[i] <= 'Z') ||
		    (s[i] >= 'a' && s[i] <= 'z') || (i > 0 && s[i] >= '0' &&
		    s[i] <= '9')))
			bad = 1;
	if (bad || len >= sizeof(ctx->cf->tls.passphrase_env)) {
		config_error(ctx, config_line(v), "%s: %s is not an environment "
		    "variable name", keypath, config_quote(q, sizeof(q), s, len));
		return;
	}
	memcpy(dst, s, len);
	dst[len] = '\0';
}

/*
 * Build the TLS contexts, so a bad key or trust file is a load error
 * (with the key's line), not a failure at the first STARTTLS.
 */
static void
config_tls(struct config_ctx *ctx)
{
	struct config_tls *t = &ctx->cf->tls;
	char err[512], pass[1024];
	const char *pw = NULL;
	struct stat st;

	if ((t->cert_file == NULL) != (t->key_file == NULL)) {
		config_error(ctx, ctx->lines[LINE_TLS], "tls: cert_file and "
		    "key_file go together");
		return;
	}
	if (t->required_inbound && t->cert_file == NULL)
		config_error(ctx, ctx->lines[LINE_TLS], "tls.required_inbound "
		    "needs cert_file and key_file");
	if (t->cert_file != NULL) {
		if (stat(t->key_file, &st) == 0 && (st.st_mode & S_IROTH))
			config_error(ctx, ctx->lines[LINE_TLS_KEY], "tls.key_file: "
			    "%s is readable by every user (mode %04o); "
			    "chmod 600 it", t->key_file, (unsigned)(st.st_mode & 07777));
		if (t->passphrase_file != NULL) {
			if (tls_read_passphrase(t->passphrase_file, pass,
			    sizeof(pass), err, sizeof(err)) == -1) {
				config_error(ctx, ctx->lines[LINE_TLS],
				    "tls.key_passphrase_file: %s", err);
				return;
			}
			pw = pass;
		} else if (t->passphrase_env[0] != '\0') {
			if ((pw = getenv(t->passphrase_env)) == NULL) {
				config_error(ctx, ctx->lines[LINE_TLS],
				    "tls.key_passphrase_env: %s is not set",
				    t->passphrase_env);
				return;
			}
		}
		t->server_ctx = tls_server_ctx(t->cert_file, t->key_file, pw,
		    err, sizeof(err));
		explicit_bzero(pass, sizeof(pass));
		if (t->server_ctx == NULL)
			config_error(ctx, ctx->lines[LINE_TLS_KEY] ?
			    ctx->lines[LINE_TLS_KEY] : ctx->lines[LINE_TLS],
			    "tls: %s", err);
	}
	if (t->outbound == TLS_OUT_NEVER)
		return;
	t->client_ctx = tls_client_ctx(t->trust_file, 1, err, sizeof(err));
	if (t->client_ctx == NULL)
		config_error(ctx, ctx->lines[LINE_TLS_TRUST] ?
		    ctx->lines[LINE_TLS_TRUST] : 1, "tls.trust_file: %s", err);
}

static void
config_check(struct config_ctx *ctx)
{
	struct config *cf = ctx->cf;
	unsigned long line;
	size_t i;

	if (cf->mode == MODE_FORWARD && !cf->mx_lookup && cf->nhosts == 0 &&
	    !ctx->bad[LINE_MODE] && !ctx->bad[LINE_NEXT_HOP]) {
		line = ctx->lines[LINE_HOSTS] ? ctx->lines[LINE_HOSTS] :
		    ctx->lines[LINE_NEXT_HOP] ? ctx->lines[LINE_NEXT_HOP] :
		    ctx->lines[LINE_MODE] ? ctx->lines[LINE_MODE] : 1;
		config_error(ctx, line, "next_hop.hosts: at least one host is "
		    "required in forward mode");
	}
	if (cf->mx_lookup && cf->ndomains == 0 && !ctx->bad[LINE_NEXT_HOP]) {
		line = ctx->lines[LINE_DOMAINS] ? ctx->lines[LINE_DOMAINS] :
		    ctx->lines[LINE_MX_LOOKUP];
		config_error(ctx, line, "next_hop.domains: at least one domain "
		    "is required when mx_lookup is true");
	}
	/* A host without a port goes to resubmit_port. */
	for (i = 0; i < cf->nhosts; i++)
		if (cf->hosts[i].port == 0)
			cf->hosts[i].port = cf->resubmit_port;
	if (cf->proxy_protocol.enabled && cf->proxy_protocol.trusted.n == 0)
		config_error(ctx, ctx->lines[LINE_PROXYPROTO], "proxy_protocol: "
		    "enabled needs trusted, the balancers' addresses");
	if (ctx->nerrors == 0)
		config_tls(ctx);
}

/* The line of a byte offset, for libyaml reader errors that carry no mark. */
static unsigned long
config_offset_line(const char *text, size_t len, size_t off)
{
	unsigned long line = 1;
	size_t i;

	for (i = 0; i < off && i < len; i++)
		if (text[i] == '\n')
			line++;
	return line;
}

static void
config_yaml_error(struct config_ctx *ctx, yaml_parser_t *p, const char *text,
    size_t len)
{
	const char *problem = p->problem ? p->problem : "YAML error";
	unsigned long line;

	switch (p->error) {
	case YAML_MEMORY_ERROR:
		config_error(ctx, 0, "out of memory while parsing");
		return;
	case YAML_READER_ERROR:
		config_error(ctx, config_offset_line(text, len,
		    p->problem_offset), "%s", problem);
		return;
	default:
		break;
	}
	line = (unsigned long)p->problem_mark.line + 1;
	if (p->context != NULL)
		config_error(ctx, line, "%s (%s at line %lu)", problem,
		    p->context, (unsigned long)p->context_mark.line + 1);
	else
		config_error(ctx, line, "%s", problem);
}

/*
 * The whole file, NUL-terminated, or NULL after an error.  Capped because
 * a configuration has no business being large and the reload path reads
 * it inside the running proxy.
 */
static char *
config_read(struct config_ctx *ctx, size_t *lenp)
{
	struct stat st;
	char *text;
	size_t len = 0, n;
	FILE *fp;

	if ((fp = fopen(ctx->path, "r")) == NULL) {
		config_error(ctx, 0, "cannot open: %s", strerror(errno));
		return NULL;
	}
	if (fstat(fileno(fp), &st) == -1)
		st.st_mode = 0;
	if (S_ISDIR(st.st_mode)) {
		config_error(ctx, 0, "is a directory");
		fclose(fp);
		return NULL;
	}
	/* Whoever can write it decides what is inspected: refuse that. */
	if (st.st_mode & S_IWOTH)
		config_error(ctx, 0, "writable by every user (mode %04o); "
		    "chmod o-w it", (unsigned)(st.st_mode & 07777));
	if ((text = malloc(CONFIG_FILE_MAX + 1)) == NULL)
		log_fatal("malloc: %s", strerror(errno));
	while ((n = fread(text + len, 1, CONFIG_FILE_MAX + 1 - len, fp)) > 0)
		if ((len += n) > CONFIG_FILE_MAX)
			break;
	if (ferror(fp) || len > CONFIG_FILE_MAX) {
		if (ferror(fp))
			config_error(ctx, 0, "cannot read: %s", strerror(errno));
		else
			config_error(ctx, 0, "larger than %d bytes",
			    CONFIG_FILE_MAX);
		fclose(fp);
		free(text);
		return NULL;
	}
	fclose(fp);
	text[len] = '\0';
	*lenp = len;
	return text;
}

/*
 * Returns 0 when the top-level mapping was walked (or the file is empty),
 * -1 when there was nothing to walk: not YAML, or not a mapping.
 */
static int
config_parse(struct config_ctx *ctx, const char *text, size_t len)
{
	yaml_document_t doc, extra;
	yaml_parser_t parser;
	yaml_node_t *root, *more;
	int rc = 0;

	if (!yaml_parser_initialize(&parser))
		log_fatal("yaml_parser_initialize failed");
	yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
	if (!yaml_parser_load(&parser, &doc)) {
		config_yaml_error(ctx, &parser, text, len);
		yaml_parser_delete(&parser);
		return -1;
	}
	ctx->doc = &doc;
	root = yaml_document_get_root_node(&doc);
	if (root != NULL && !config_is_null(root)) {
		if (root->type != YAML_MAPPING_NODE) {
			config_error(ctx, config_line(root), "the top level must "
			    "be a mapping of keys, got %s", config_kind(root));
			rc = -1;
		} else
			config_walk(ctx, NULL, root, config_top_keys);
	}
	/* A second document would be silently ignored: refuse it. */
	if (root != NULL) {
		if (!yaml_parser_load(&parser, &extra))
			config_yaml_error(ctx, &parser, text, len);
		else {
			if ((more = yaml_document_get_root_node(&extra)) != NULL &&
			    !config_is_null(more))
				config_error(ctx, config_line(more), "only one "
				    "YAML document is allowed");
			yaml_document_delete(&extra);
		}
	}
	ctx->doc = NULL;
	yaml_document_delete(&doc);
	yaml_parser_delete(&parser);
	return rc;
}

struct config *
config_defaults(void)
{
	struct config *cf;
	const char *why;

	if ((cf = calloc(1, sizeof(*cf))) == NULL)
		log_fatal("calloc: %s", strerror(errno));
	cf->refcnt = 1;
	snprintf(cf->listen.host, sizeof(cf->listen.host), "127.0.0.1");
	cf->listen.port = CONFIG_DEFAULT_LISTEN_PORT;
	cf->mode = MODE_FORWARD;
	cf->resubmit_port = 10026;
	cf->mx_lookup = 0;
	snprintf(cf->helo_name, sizeof(cf->helo_name), "mailprevent.local");
	cf->source_address[0] = '\0';
	snprintf(cf->pass_header, sizeof(cf->pass_header),
	    "X-Filter-Loop: Reflected");
	cf->trial_mode = 0;
	cf->max_message_size = 52428800;
	cf->log_level = LOG_INFO;
	cf->limits.max_connections = 100;
	cf->limits.max_recipients = 1000;
	cf->limits.max_command_line = 512;
	cf->limits.max_data_line = 998;
	cf->limits.max_errors = 20;
	cf->limits.min_data_rate = 500;
	cf->limits.max_inflight = 512ULL * 1024 * 1024;
	cf->timeouts.command = 300;
	cf->timeouts.data = 300;
	cf->timeouts.connect = 30;
	cf->timeouts.greeting = 300;
	cf->timeouts.reply = 300;
	cf->timeouts.data_init = 120;
	cf->timeouts.data_block = 180;
	cf->timeouts.data_done = 300;
	cf->timeouts.shutdown = 30;
	/* A fresh install is never an open relay: loopback only. */
	if ((cf->allow_clients.v = calloc(2, sizeof(*cf->allow_clients.v))) == NULL)
		log_fatal("calloc: %s", strerror(errno));
	netaddr_parse_cidr("127.0.0.0/8", &cf->allow_clients.v[0], &why);
	netaddr_parse_cidr("::1", &cf->allow_clients.v[1], &why);
	cf->allow_clients.n = 2;
	cf->workers = 1;
	cf->reuse_time = 2;
	cf->pipelining = 1;
	cf->dns_timeout = 5;
	cf->dns_tries = 2;
	cf->policy_limits.instructions = 50000000;
	cf->policy_limits.memory = 256 * 1024 * 1024;
	cf->notify.retries = 3;
	cf->notify.retry_delay = 60;
	cf->notify.max_pending = 1000;
	return cf;
}

struct config *
config_load(const char *path, struct buf *errors)
{
	struct config_ctx ctx;
	char *text;
	size_t len;

	memset(&ctx, 0, sizeof(ctx));
	ctx.path = path;
	ctx.errors = errors;
	ctx.cf = config_defaults();
	if ((ctx.cf->path = strdup(path)) == NULL)
		log_fatal("strdup: %s", strerror(errno));

	if ((text = config_read(&ctx, &len)) != NULL) {
		if (config_parse(&ctx, text, len) == 0)
			config_check(&ctx);
		free(text);
	}
	/* Policies load with the file, so a reload swaps both or neither. */
	if (ctx.nerrors == 0 && ctx.cf->npolicies > 0) {
		struct buf perr = BUF_INIT;

		ctx.cf->policy_set = policy_load((const char *const *)
		    ctx.cf->policies, ctx.cf->npolicies, &ctx.cf->policy_limits,
		    &perr);
		if (ctx.cf->policy_set == NULL) {
			ctx.nerrors++;
			if (errors != NULL && perr.len > 0)
				buf_append(errors, perr.data, perr.len);
			else if (errors != NULL)
				buf_appendf(errors, "%s:%lu: policies could not "
				    "be loaded\n", path, ctx.policies_line);
		}
		buf_free(&perr);
	}
	if (ctx.nerrors > CONFIG_ERRORS_MAX && errors != NULL)
		buf_appendf(errors, "%s:0: %u more errors not shown\n", path,
		    ctx.nerrors - CONFIG_ERRORS_MAX);
	if (ctx.nerrors > 0) {
		config_unref(ctx.cf);
		return NULL;
	}
	return ctx.cf;
}

struct config *
config_ref(struct config *cf)
{
	cf->refcnt++;
	return cf;
}

void
config_unref(struct config *cf)
{
	size_t i;

	if (cf == NULL || --cf->refcnt > 0)
		return;
	for (i = 0; i < cf->ndomains; i++)
		free(cf->domains[i]);
	free(cf->domains);
	for (i = 0; i < cf->npolicies; i++)
		free(cf->policies[i]);
	free(cf->policies);
	policy_set_free(cf->policy_set);
	free(cf->incident_log);
	for (i = 0; i < cf->ndns_servers; i++)
		free(cf->dns_servers[i]);
	free(cf->dns_servers);
	free(cf->allow_clients.v);
	free(cf->proxy_protocol.trusted.v);
	free(cf->tls.cert_file);
	free(cf->tls.key_file);
	free(cf->tls.passphrase_file);
	free(cf->tls.trust_file);
	SSL_CTX_free(cf->tls.server_ctx);
	SSL_CTX_free(cf->tls.client_ctx);
	free(cf->hosts);
	free(cf->path);
	free(cf);
}
