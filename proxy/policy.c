/*
 * policy: load policy files into one sandboxed Lua state, run them on a
 * message, and turn the policies that match into a verdict.
 *
 * Loading checks everything it can up front, so that a policy set that
 * loads never fails later for a reason that was visible in the file: the
 * returned table, every action's text (replies, headers, subjects,
 * addresses), and the file's top level itself, which runs under the same
 * limits as match(). Problems are reported as "file:line: message"; for a
 * bad field the line is found by looking for `field =` in the source
 * text, nested fields below their parent, falling back to the `return`.
 *
 * Evaluation never fails as a whole: a policy that raises, runs out of
 * instructions or memory, or returns nonsense marks the verdict as an
 * error (the proxy then defers the message) and the others still run.
 */
#include "policy.h"

#include <sys/stat.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <lua.h>
#include <lauxlib.h>

#include "log.h"
#include "lua_dlp.h"
#include "lua_msg.h"
#include "lua_sandbox.h"

#define POLICY_FILE_MAX		(1024 * 1024)
#define POLICY_ERRORS_MAX	100
#define POLICY_DEF_INSTRUCTIONS	50000000ULL
#define POLICY_DEF_MEMORY	((size_t)256 << 20)
#define POLICY_SUBJECT_MAX	900	/* leaves room for "Subject: " + tags */
#define POLICY_BODY_MAX		(64 * 1024)
#define POLICY_NOTIFY_TO_MAX	100
#define POLICY_TRACE_MAX	4096
#define POLICY_QUOTE_MAX	600

#define POLICY_DEF_REPLY_CODE	550
#define POLICY_DEF_REPLY_ENH	"5.7.1"
#define POLICY_DEF_REPLY_TEXT	"Message blocked by content policy"
#define POLICY_DEF_NOTIFY_SUBJECT "Policy violation: {policy}"
#define POLICY_DEF_NOTIFY_BODY \
	"A message from {sender} to {recipients} matched the policy " \
	"\"{policy}\".\nAction: {action}\nSubject: {subject}\n"

struct policy {
	char			*name;
	char			*file;
	int			 name_line;
	int			 match_ref;
	uint64_t		 threshold;
	struct policy_actions	 actions;
};

struct policy_set {
	struct lua_sandbox	*sb;
	struct policy		*pols;
	size_t			 npols;
};

/* Where load errors go: counted, capped. */
struct policy_errs {
	struct buf	*buf;
	unsigned	 n;
};

/* One file being checked. */
struct policy_ctx {
	const char		*file;
	const char		*src;
	size_t			 srclen;
	int			 retline;	/* the `return`, or 1 */
	struct policy_errs	*errs;
	struct policy		*p;
	int			 failed;
};

/* How a text field is checked. */
enum policy_text {
	TEXT_LINE,		/* one line: no CR, LF, NUL, controls; UTF-8 */
	TEXT_BODY		/* lines: LF or CRLF allowed; no NUL, bare CR */
};

static void	policy_errs_add(struct policy_errs *, const char *, ...)
		    __attribute__((format(printf, 2, 3)));
static void	policy_err(struct policy_ctx *, const char *, const char *, ...)
		    __attribute__((format(printf, 3, 4)));
static int	policy_key_line(const char *, size_t, int, const char *,
		    size_t);
static int	policy_return_line(const char *, size_t);
static int	policy_path_line(const struct policy_ctx *, const char *);

static int	policy_open(lua_State *);
static int	policy_glob(const char *const *, size_t, char ***, size_t *,
		    struct policy_errs *);
static void	policy_load_file(struct policy_set *, const char *,
		    struct policy_errs *);
static int	policy_read(const char *, char **, size_t *,
		    struct policy_errs *);
static void	policy_duplicates(struct policy_set *, struct policy_errs *);
static void	policy_clear(lua_State *, struct policy *);

static int	policy_check_table(lua_State *);
static void	policy_check_keys(lua_State *, struct policy_ctx *, int,
		    const char *, const char *const *);
static const char *policy_string(lua_State *, struct policy_ctx *, int,
		    const char *, enum policy_text, size_t);
static char	*policy_strdup(lua_State *, const char *);
static void	policy_check_block(lua_State *, struct policy_ctx *, int);
static void	policy_check_modify(lua_State *, struct policy_ctx *, int);
static void	policy_check_notify(lua_State *, struct policy_ctx *, int);
static const char *policy_check_text(const char *, size_t, enum policy_text);
static const char *policy_check_template(const char *);
static const char *policy_reserved_header(const char *);
static size_t	policy_utf8_len(const unsigned char *, size_t);

static int	policy_result(lua_State *, uint64_t *, char *, size_t);
static void	policy_sample(char *, size_t, const char *, size_t);
static void	policy_fail(struct verdict *, const struct policy_envelope *,
		    const char *, const char *, const char *);
static void	policy_decide(struct verdict *);

static const char *const policy_top_keys[] = {
	"name", "match", "threshold", "actions", NULL
};
static const char *const policy_action_keys[] = {
	"block", "redirect", "modify", "notify", NULL
};
static const char *const policy_block_keys[] = { "reply", NULL };
static const char *const policy_modify_keys[] = { "subject", "headers", NULL };
static const char *const policy_subject_keys[] = {
	"prepend", "append", "replace", NULL
};
static const char *const policy_notify_keys[] = {
	"to", "sender", "subject", "body", NULL
};

/*
 * Placeholders of notification texts, expanded by policy_expand(): the
 * first ones from the hit and the envelope, the last four from the proxy.
 */
static const char *const policy_placeholders[] = {
	"policy", "sender", "recipients", "count", "sample", "client_ip",
	"helo", "subject", "queue_id", "action", "message_id", NULL
};

/*
 * Fields a message has at most once (RFC 5322 3.6, RFC 2045): adding a
 * second one through modify.headers would leave readers to guess which
 * counts, or break the MIME structure.
 */
static const char *const policy_unique_headers[] = {
	"Date", "From", "Sender", "Reply-To", "To", "Cc", "Bcc", "Message-ID",
	"In-Reply-To", "References", "Subject", "MIME-Version", NULL
};

/* Loading */

struct policy_set *
policy_load(const char *const *globs, size_t nglobs,
    const struct policy_limits *lim, struct buf *errors)
{
	struct policy_errs errs = { errors, 0 };
	struct policy_set *set;
	char err[POLICY_ERR_MAX], **files = NULL;
	uint64_t insn = POLICY_DEF_INSTRUCTIONS;
	size_t i, nfiles = 0, mem = POLICY_DEF_MEMORY;

	if (lim != NULL && lim->instructions > 0)
		insn = lim->instructions;
	if (lim != NULL && lim->memory > 0)
		mem = lim->memory;
	if ((set = calloc(1, sizeof(*set))) == NULL) {
		policy_errs_add(&errs, "policy: out of memory");
		return NULL;
	}
	if ((set->sb = lua_sandbox_new(mem, insn, err, sizeof(err))) == NULL) {
		policy_errs_add(&errs, "policy: %s", err);
		free(set);
		return NULL;
	}
	if (lua_sandbox_cpcall(set->sb, policy_open, NULL, err,
	    sizeof(err)) != LUA_OK) {
		policy_errs_add(&errs, "policy: %s", err);
		policy_set_free(set);
		return NULL;
	}
	if (policy_glob(globs, nglobs, &files, &nfiles, &errs) == 0)
		for (i = 0; i < nfiles; i++)
			policy_load_file(set, files[i], &errs);
	for (i = 0; i < nfiles; i++)
		free(files[i]);
	free(files);
	policy_duplicates(set, &errs);
	lua_sandbox_set_phase(set->sb, SANDBOX_IDLE, NULL, NULL);
	if (errs.n > POLICY_ERRORS_MAX)
		buf_appendf(errors, "(%u more errors not shown)\n",
		    errs.n - POLICY_ERRORS_MAX);
	if (errs.n > 0) {
		policy_set_free(set);
		return NULL;
	}
	lua_sandbox_collect(set->sb);
	log_msg(LOG_INFO, NULL, "policy_load", "policies=%zu lua_memory=%zu",
	    set->npols, lua_sandbox_memory(set->sb));
	return set;
}

void
policy_set_free(struct policy_set *set)
{
	size_t i;

	if (set == NULL)
		return;
	for (i = 0; i < set->npols; i++)
		policy_clear(NULL, &set->pols[i]);
	free(set->pols);
	lua_sandbox_free(set->sb);
	free(set);
}

size_t
policy_count(const struct policy_set *set)
{
	return set != NULL ? set->npols : 0;
}

/* The globals our bindings add to the sandbox. */
static int
policy_open(lua_State *L)
{
	lua_msg_open(L);
	lua_dlp_open(L);
	return 0;
}

static int
policy_pathcmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/*
 * Every file the globs match, sorted, each file once (also when two
 * globs reach it by different names). A glob that matches nothing is an
 * error: a typo must not leave the proxy running without its policies.
 */
static int
policy_glob(const char *const *globs, size_t nglobs, char ***out,
    size_t *nout, struct policy_errs *errs)
{
	struct stat *st = NULL;
	glob_t gl;
	char **files = NULL, **nf;
	size_t i, j, n = 0, k;
	int r, rc = 0;

	for (i = 0; i < nglobs; i++) {
		memset(&gl, 0, sizeof(gl));
		r = glob(globs[i], GLOB_ERR, NULL, &gl);
		if (r == GLOB_NOMATCH)
			policy_errs_add(errs, "%s: no policy file matches",
			    globs[i]);
		else if (r == GLOB_ABORTED)
			policy_errs_add(errs, "%s: cannot read the directory",
			    globs[i]);
		else if (r != 0)
			policy_errs_add(errs, "%s: out of memory", globs[i]);
		if (r != 0) {
			globfree(&gl);
			rc = -1;
			continue;
		}
		nf = reallocarray(files, n + gl.gl_pathc, sizeof(*files));
		if (nf == NULL) {
			globfree(&gl);
			policy_errs_add(errs, "policy: out of memory");
			rc = -1;
			break;
		}
		files = nf;
		for (j = 0; j < gl.gl_pathc; j++)
			if ((files[n] = strdup(gl.gl_pathv[j])) != NULL)
				n++;
		globfree(&gl);
	}
	if (n > 0)
		qsort(files, n, sizeof(*files), policy_pathcmp);

	/* one name per file: drop repeats by name, then by inode */
	if (n > 0 && (st = calloc(n, sizeof(*st))) == NULL) {
		policy_errs_add(errs, "policy: out of memory");
		rc = -1;
	}
	for (i = 0, k = 0; st != NULL && i < n; i++) {
		struct stat cur;
		int dup = 0;

		if (stat(files[i], &cur) == 0) {
			for (j = 0; j < k && !dup; j++)
				dup = st[j].st_ino != 0 &&
				    st[j].st_dev == cur.st_dev &&
				    st[j].st_ino == cur.st_ino;
		} else
			memset(&cur, 0, sizeof(cur));	/* read() will tell */
		if (k > 0 && strcmp(files[k - 1], files[i]) == 0)
			dup = 1;
		if (dup) {
			free(files[i]);
			continue;
		}
		st[k] = cur;
		files[k++] = files[i];
	}
	if (st != NULL)
		n = k;
	free(st);
	*out = files;
	*nout = n;
	return rc;
}

static int
policy_read(const char *path, char **data, size_t *len,
    struct policy_errs *errs)
{
	struct stat st;
	char *buf;
	size_t off = 0;
	ssize_t r;
	int fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1) {
		policy_errs_add(errs, "%s: %s", path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode)) {
		policy_errs_add(errs, "%s: not a regular file", path);
		close(fd);
		return -1;
	}
	if (st.st_size > POLICY_FILE_MAX) {
		policy_errs_add(errs, "%s: larger than %d bytes", path,
		    POLICY_FILE_MAX);
		close(fd);
		return -1;
	}
	if ((buf = malloc((size_t)st.st_size + 1)) == NULL) {
		policy_errs_add(errs, "%s: out of memory", path);
		close(fd);
		return -1;
	}
	while (off < (size_t)st.st_size) {
		r = read(fd, buf + off, (size_t)st.st_size - off);
		if (r == -1 && errno == EINTR)
			continue;
		if (r <= 0) {
			policy_errs_add(errs, "%s: %s", path, r == 0 ?
			    "file shrank while read" : strerror(errno));
			free(buf);
			close(fd);
			return -1;
		}
		off += (size_t)r;
	}
	close(fd);
	buf[off] = '\0';
	*data = buf;
	*len = off;
	return 0;
}

/* Does msg already start with "path:<digit>"? */
static int
policy_has_pos(const char *msg, const char *path)
{
	size_t plen = strlen(path);

	return strncmp(msg, path, plen) == 0 && msg[plen] == ':' &&
	    isdigit((unsigned char)msg[plen + 1]);
}

static void
policy_load_file(struct policy_set *set, const char *path,
    struct policy_errs *errs)
{
	lua_State *L = lua_sandbox_state(set->sb);
	struct policy_ctx ctx;
	struct policy p, *np;
	char err[POLICY_ERR_MAX], trace[POLICY_TRACE_MAX], *src, *chunk;
	size_t len;
	int top = lua_gettop(L);

	if (policy_read(path, &src, &len, errs) == -1)
		return;
	memset(&p, 0, sizeof(p));
	p.match_ref = LUA_NOREF;
	p.threshold = 1;
	memset(&ctx, 0, sizeof(ctx));
	ctx.file = path;
	ctx.src = src;
	ctx.srclen = len;
	ctx.retline = policy_return_line(src, len);
	ctx.errs = errs;
	ctx.p = &p;

	if (asprintf(&chunk, "@%s", path) == -1) {
		policy_errs_add(errs, "%s: out of memory", path);
		free(src);
		return;
	}
	lua_sandbox_set_phase(set->sb, SANDBOX_LOAD, path, NULL);
	if (lua_sandbox_load(set->sb, src, len, chunk, err,
	    sizeof(err)) != LUA_OK) {
		if (policy_has_pos(err, path))
			policy_errs_add(errs, "%s", err);
		else
			policy_errs_add(errs, "%s:%d: %s", path, ctx.retline,
			    err);
		goto done;
	}
	if (lua_sandbox_pcall(set->sb, 0, 1, err, sizeof(err), trace,
	    sizeof(trace)) != LUA_OK) {
		if (policy_has_pos(err, path))
			policy_errs_add(errs, "%s", err);
		else
			policy_errs_add(errs, "%s:%d: %s", path, ctx.retline,
			    err);
		goto done;
	}

	/* The returned table, checked in protected mode (it may raise ENOMEM). */
	lua_pushcfunction(L, policy_check_table);
	lua_pushlightuserdata(L, &ctx);
	lua_pushvalue(L, -3);
	if (lua_sandbox_pcall(set->sb, 2, 0, err, sizeof(err), NULL,
	    0) != LUA_OK)
		policy_err(&ctx, NULL, "%s", err);
	if (ctx.failed)
		goto done;
	if ((p.file = strdup(path)) == NULL ||
	    (np = reallocarray(set->pols, set->npols + 1,
	    sizeof(*np))) == NULL) {
		policy_err(&ctx, NULL, "out of memory");
		goto done;
	}
	set->pols = np;
	set->pols[set->npols++] = p;
	memset(&p, 0, sizeof(p));
	p.match_ref = LUA_NOREF;
	{
		char qf[POLICY_QUOTE_MAX], qn[POLICY_QUOTE_MAX];
		const struct policy *lp = &set->pols[set->npols - 1];

		log_msg(LOG_DEBUG, NULL, "policy_loaded", "file=%s policy=%s",
		    log_quote(qf, sizeof(qf), path, strlen(path)),
		    log_quote(qn, sizeof(qn), lp->name, strlen(lp->name)));
	}
 done:
	policy_clear(L, &p);
	lua_settop(L, top);
	free(chunk);
	free(src);
}

/* Two policies with one name would make incidents ambiguous. */
static void
policy_duplicates(struct policy_set *set, struct policy_errs *errs)
{
	size_t i, j;

	for (j = 1; j < set->npols; j++)
		for (i = 0; i < j; i++)
			if (strcmp(set->pols[i].name, set->pols[j].name) == 0) {
				policy_errs_add(errs, "%s:%d: name: duplicate "
				    "policy name \"%s\" (also in %s)",
				    set->pols[j].file, set->pols[j].name_line,
				    set->pols[j].name, set->pols[i].file);
				break;
			}
}

static void
policy_clear(lua_State *L, struct policy *p)
{
	struct policy_actions *a = &p->actions;
	size_t i;

	if (L != NULL && p->match_ref != LUA_NOREF)
		luaL_unref(L, LUA_REGISTRYINDEX, p->match_ref);
	p->match_ref = LUA_NOREF;
	free(p->name);
	free(p->file);
	free(a->redirect);
	free(a->subject);
	for (i = 0; i < a->nheaders; i++)
		free(a->headers[i]);
	for (i = 0; i < a->notify_nto; i++)
		free(a->notify_to[i]);
	free(a->notify_to);
	free(a->notify_subject);
	free(a->notify_body);
	memset(p, 0, sizeof(*p));
	p->match_ref = LUA_NOREF;
}

/* Error reporting */

static void
policy_errs_add(struct policy_errs *errs, const char *fmt, ...)
{
	va_list ap;

	if (++errs->n > POLICY_ERRORS_MAX)
		return;
	va_start(ap, fmt);
	buf_vappendf(errs->buf, fmt, ap);
	va_end(ap);
	buf_appends(errs->buf, "\n");
}

/* "file:line: path: message", the line found from path. */
static void
policy_err(struct policy_ctx *ctx, const char *path, const char *fmt, ...)
{
	char msg[POLICY_ERR_MAX];
	va_list ap;

	ctx->failed = 1;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (path != NULL)
		policy_errs_add(ctx->errs, "%s:%d: %s: %s", ctx->file,
		    policy_path_line(ctx, path), path, msg);
	else
		policy_errs_add(ctx->errs, "%s:%d: %s", ctx->file,
		    ctx->retline, msg);
}

static int
policy_isident(char c)
{
	return isalnum((unsigned char)c) || c == '_';
}

/*
 * The first line at or after `from` with `key =` (key a whole word, not
 * `==`), ignoring what follows `--` on a line; 0 if there is none. A
 * heuristic, good for the usual layout of policy files.
 */
static int
policy_key_line(const char *src, size_t len, int from, const char *key,
    size_t klen)
{
	size_t i = 0, eol, end, j, k;
	const char *dash;
	int line = 1;

	while (i < len) {
		eol = i;
		while (eol < len && src[eol] != '\n')
			eol++;
		end = eol;
		if ((dash = memmem(src + i, eol - i, "--", 2)) != NULL)
			end = (size_t)(dash - src);
		for (j = i; line >= from && klen > 0 && j + klen <= end; j++) {
			if (memcmp(src + j, key, klen) != 0 ||
			    (j > i && policy_isident(src[j - 1])))
				continue;
			k = j + klen;
			while (k < end && (src[k] == ' ' || src[k] == '\t'))
				k++;
			if (k < end && src[k] == '=' &&
			    (k + 1 >= end || src[k + 1] != '='))
				return line;
		}
		line++;
		i = eol + 1;
	}
	return 0;
}

/*
 * The line of the file's `return`: the last one at the start of a line
 * (the top level), else the first indented one, else 1.
 */
static int
policy_return_line(const char *src, size_t len)
{
	size_t i = 0, j;
	int line = 1, top = 0, any = 0;

	while (i < len) {
		for (j = i; j < len && (src[j] == ' ' || src[j] == '\t'); j++)
			;
		if (len - j >= 6 && memcmp(src + j, "return", 6) == 0 &&
		    (len - j == 6 || !policy_isident(src[j + 6]))) {
			if (j == i)
				top = line;
			else if (any == 0)
				any = line;
		}
		while (j < len && src[j] != '\n')
			j++;
		line++;
		i = j + 1;
	}
	return top ? top : any ? any : 1;
}

/* The line of a dotted field path such as "actions.modify.headers[2]". */
static int
policy_path_line(const struct policy_ctx *ctx, const char *path)
{
	const char *p = path;
	size_t n;
	int line = ctx->retline, l;

	while (*p != '\0') {
		n = strcspn(p, ".[");
		if ((l = policy_key_line(ctx->src, ctx->srclen, line, p,
		    n)) == 0)
			break;
		line = l;
		p += n;
		if (*p == '[')
			p += strcspn(p, ".");
		if (*p == '.')
			p++;
	}
	return line;
}

/* Checking the returned table (runs protected: may raise ENOMEM) */

/* Push t[key] without metamethods; return its type. */
static int
policy_field(lua_State *L, int t, const char *key)
{
	t = lua_absindex(L, t);
	lua_pushstring(L, key);
	return lua_rawget(L, t);
}

static int
policy_check_table(lua_State *L)
{
	struct policy_ctx *ctx = lua_touserdata(L, 1);
	struct policy *p = ctx->p;
	const char *s;
	lua_Integer th;
	int isint;

	if (lua_type(L, 2) != LUA_TTABLE) {
		policy_err(ctx, NULL, "the file must return a policy table, "
		    "not %s", luaL_typename(L, 2));
		return 0;
	}
	policy_check_keys(L, ctx, 2, NULL, policy_top_keys);

	p->name_line = policy_path_line(ctx, "name");
	switch (policy_field(L, 2, "name")) {
	case LUA_TNIL:
		policy_err(ctx, NULL, "name: missing (every policy needs a "
		    "name)");
		break;
	default:
		if ((s = policy_string(L, ctx, -1, "name", TEXT_LINE,
		    POLICY_NAME_MAX - 1)) == NULL)
			break;
		if (s[strspn(s, " \t")] == '\0')
			policy_err(ctx, "name", "is empty");
		else
			p->name = policy_strdup(L, s);
	}
	lua_pop(L, 1);

	switch (policy_field(L, 2, "match")) {
	case LUA_TNIL:
		policy_err(ctx, NULL, "match: missing (a function is "
		    "required)");
		lua_pop(L, 1);
		break;
	case LUA_TFUNCTION:
		p->match_ref = luaL_ref(L, LUA_REGISTRYINDEX);
		break;
	default:
		policy_err(ctx, "match", "must be a function, not %s",
		    luaL_typename(L, -1));
		lua_pop(L, 1);
	}

	p->threshold = 1;
	if (policy_field(L, 2, "threshold") != LUA_TNIL) {
		th = lua_tointegerx(L, -1, &isint);
		if (lua_type(L, -1) != LUA_TNUMBER || !isint || th < 1)
			policy_err(ctx, "threshold", "must be a whole number "
			    "of at least 1");
		else
			p->threshold = (uint64_t)th;
	}
	lua_pop(L, 1);

	switch (policy_field(L, 2, "actions")) {
	case LUA_TNIL:
		break;		/* monitor only */
	case LUA_TTABLE:
		policy_check_keys(L, ctx, lua_gettop(L), "actions",
		    policy_action_keys);
		policy_check_block(L, ctx, lua_gettop(L));
		if (policy_field(L, -1, "redirect") != LUA_TNIL &&
		    (s = policy_string(L, ctx, -1, "actions.redirect",
		    TEXT_LINE, SIZE_MAX)) != NULL) {
			const char *why = policy_check_address(s);

			if (why != NULL)
				policy_err(ctx, "actions.redirect", "%s", why);
			else
				p->actions.redirect = policy_strdup(L, s);
		}
		lua_pop(L, 1);
		policy_check_modify(L, ctx, lua_gettop(L));
		policy_check_notify(L, ctx, lua_gettop(L));
		break;
	default:
		policy_err(ctx, "actions", "must be a table, not %s",
		    luaL_typename(L, -1));
	}
	lua_pop(L, 1);
	return 0;
}

/* Every key of table t must be a string from allowed. */
static void
policy_check_keys(lua_State *L, struct policy_ctx *ctx, int t,
    const char *prefix, const char *const *allowed)
{
	char path[POLICY_ERR_MAX], list[POLICY_ERR_MAX];
	const char *key;
	size_t i, off = 0;
	int r;

	for (i = 0; allowed[i] != NULL; i++) {
		r = snprintf(list + off, sizeof(list) - off, "%s%s",
		    i == 0 ? "" : allowed[i + 1] == NULL ? " or " : ", ",
		    allowed[i]);
		if (r < 0 || (size_t)r >= sizeof(list) - off)
			break;
		off += (size_t)r;
	}
	t = lua_absindex(L, t);
	lua_pushnil(L);
	while (lua_next(L, t)) {
		lua_pop(L, 1);
		if (lua_type(L, -1) != LUA_TSTRING) {
			if (prefix != NULL)
				policy_err(ctx, prefix, "unexpected %s key "
				    "(expected %s)", luaL_typename(L, -1),
				    list);
			else
				policy_err(ctx, NULL, "unexpected %s key "
				    "(expected %s)", luaL_typename(L, -1),
				    list);
			continue;
		}
		key = lua_tostring(L, -1);
		for (i = 0; allowed[i] != NULL; i++)
			if (strcmp(allowed[i], key) == 0)
				break;
		if (allowed[i] != NULL)
			continue;
		snprintf(path, sizeof(path), "%s%s%s", prefix != NULL ?
		    prefix : "", prefix != NULL ? "." : "", key);
		policy_err(ctx, path, "unknown field (expected %s)", list);
	}
}

/*
 * The string at idx, checked as `kind` and at most max octets; NULL
 * (reported) when it is not a string or not valid.
 */
static const char *
policy_string(lua_State *L, struct policy_ctx *ctx, int idx,
    const char *path, enum policy_text kind, size_t max)
{
	const char *s, *why;
	size_t len;

	if (lua_type(L, idx) != LUA_TSTRING) {
		policy_err(ctx, path, "must be a string, not %s",
		    luaL_typename(L, idx));
		return NULL;
	}
	s = lua_tolstring(L, idx, &len);
	if (len > max) {
		policy_err(ctx, path, "longer than %zu octets", max);
		return NULL;
	}
	if ((why = policy_check_text(s, len, kind)) != NULL) {
		policy_err(ctx, path, "%s", why);
		return NULL;
	}
	return s;
}

/* C copies of Lua strings; raising keeps the state consistent. */
static char *
policy_strdup(lua_State *L, const char *s)
{
	char *d;

	if ((d = strdup(s)) == NULL)
		luaL_error(L, "out of memory");
	return d;
}

static void
policy_check_block(lua_State *L, struct policy_ctx *ctx, int actions)
{
	struct policy_actions *a = &ctx->p->actions;
	const char *s, *why, *text;
	char enh[sizeof(a->block_enh)];
	int code;

	switch (policy_field(L, actions, "block")) {
	case LUA_TNIL:
		break;
	case LUA_TBOOLEAN:
		if (!lua_toboolean(L, -1))
			break;
		a->block = 1;
		a->block_code = POLICY_DEF_REPLY_CODE;
		snprintf(a->block_enh, sizeof(a->block_enh), "%s",
		    POLICY_DEF_REPLY_ENH);
		snprintf(a->block_text, sizeof(a->block_text), "%s",
		    POLICY_DEF_REPLY_TEXT);
		break;
	case LUA_TTABLE:
		policy_check_keys(L, ctx, -1, "actions.block",
		    policy_block_keys);
		a->block = 1;
		a->block_code = POLICY_DEF_REPLY_CODE;
		snprintf(a->block_enh, sizeof(a->block_enh), "%s",
		    POLICY_DEF_REPLY_ENH);
		snprintf(a->block_text, sizeof(a->block_text), "%s",
		    POLICY_DEF_REPLY_TEXT);
		if (policy_field(L, -1, "reply") != LUA_TNIL &&
		    (s = policy_string(L, ctx, -1, "actions.block.reply",
		    TEXT_LINE, SIZE_MAX)) != NULL) {
			if ((why = policy_check_reply(s, &code, enh,
			    sizeof(enh), &text)) != NULL)
				policy_err(ctx, "actions.block.reply", "%s",
				    why);
			else {
				a->block_code = code;
				snprintf(a->block_enh, sizeof(a->block_enh),
				    "%s", enh);
				snprintf(a->block_text, sizeof(a->block_text),
				    "%s", text);
			}
		}
		lua_pop(L, 1);
		break;
	default:
		policy_err(ctx, "actions.block", "must be true or a table "
		    "such as { reply = \"550 5.7.1 ...\" }, not %s",
		    luaL_typename(L, -1));
	}
	lua_pop(L, 1);
}

static void
policy_check_modify(lua_State *L, struct policy_ctx *ctx, int actions)
{
	struct policy_actions *a = &ctx->p->actions;
	char path[64];
	const char *s, *why, *op;
	lua_Integer i, n;
	int t, nops = 0, did = 0;

	if ((t = policy_field(L, actions, "modify")) == LUA_TNIL) {
		lua_pop(L, 1);
		return;
	}
	if (t != LUA_TTABLE) {
		policy_err(ctx, "actions.modify", "must be a table, not %s",
		    luaL_typename(L, -1));
		lua_pop(L, 1);
		return;
	}
	policy_check_keys(L, ctx, -1, "actions.modify", policy_modify_keys);

	/* subject = { prepend | append | replace = "text" } */
	if ((t = policy_field(L, -1, "subject")) == LUA_TTABLE) {
		did = 1;
		policy_check_keys(L, ctx, -1, "actions.modify.subject",
		    policy_subject_keys);
		for (i = 0; policy_subject_keys[i] != NULL; i++) {
			op = policy_subject_keys[i];
			if (policy_field(L, -1, op) != LUA_TNIL) {
				nops++;
				snprintf(path, sizeof(path),
				    "actions.modify.subject.%s", op);
				if ((s = policy_string(L, ctx, -1, path,
				    TEXT_LINE, POLICY_SUBJECT_MAX)) != NULL &&
				    *s == '\0')
					policy_err(ctx, path, "is empty");
				else if (s != NULL && nops == 1) {
					a->subject_op = i == 0 ?
					    SUBJECT_PREPEND : i == 1 ?
					    SUBJECT_APPEND : SUBJECT_REPLACE;
					a->subject = policy_strdup(L, s);
				}
			}
			lua_pop(L, 1);
		}
		if (nops != 1)
			policy_err(ctx, "actions.modify.subject", "give "
			    "exactly one of prepend, append or replace");
	} else if (t != LUA_TNIL)
		policy_err(ctx, "actions.modify.subject", "must be a table "
		    "such as { prepend = \"[TAG] \" }, not %s",
		    luaL_typename(L, -1));
	lua_pop(L, 1);

	/* headers = { "Name: value", ... } (at most 3) */
	if ((t = policy_field(L, -1, "headers")) == LUA_TTABLE) {
		did = 1;
		n = (lua_Integer)lua_rawlen(L, -1);
		lua_pushnil(L);
		while (lua_next(L, -2)) {
			lua_pop(L, 1);
			if (!lua_isinteger(L, -1) || lua_tointeger(L, -1) < 1 ||
			    lua_tointeger(L, -1) > n) {
				policy_err(ctx, "actions.modify.headers",
				    "must be a list of \"Name: value\" "
				    "strings");
				lua_pop(L, 1);
				break;
			}
		}
		if (n == 0)
			policy_err(ctx, "actions.modify.headers", "is empty");
		else if (n > POLICY_MAX_HEADERS)
			policy_err(ctx, "actions.modify.headers", "at most %d "
			    "headers can be added (got %lld)",
			    POLICY_MAX_HEADERS, (long long)n);
		for (i = 1; i <= n && n <= POLICY_MAX_HEADERS; i++) {
			snprintf(path, sizeof(path),
			    "actions.modify.headers[%lld]", (long long)i);
			lua_rawgeti(L, -1, i);
			if ((s = policy_string(L, ctx, -1, path, TEXT_LINE,
			    SIZE_MAX)) != NULL) {
				if ((why = policy_check_header(s)) == NULL)
					why = policy_reserved_header(s);
				if (why != NULL)
					policy_err(ctx, path, "%s", why);
				else
					a->headers[a->nheaders++] =
					    policy_strdup(L, s);
			}
			lua_pop(L, 1);
		}
	} else if (t != LUA_TNIL)
		policy_err(ctx, "actions.modify.headers", "must be a list of "
		    "\"Name: value\" strings, not %s", luaL_typename(L, -1));
	lua_pop(L, 1);

	if (!did)
		policy_err(ctx, "actions.modify", "nothing to modify (give "
		    "subject or headers)");
	lua_pop(L, 1);
}

static void
policy_check_notify(lua_State *L, struct policy_ctx *ctx, int actions)
{
	struct policy_actions *a = &ctx->p->actions;
	char path[64];
	const char *s, *why;
	lua_Integer i, n;
	int t, has_to;

	if ((t = policy_field(L, actions, "notify")) == LUA_TNIL) {
		lua_pop(L, 1);
		return;
	}
	if (t != LUA_TTABLE) {
		policy_err(ctx, "actions.notify", "must be a table, not %s",
		    luaL_typename(L, -1));
		lua_pop(L, 1);
		return;
	}
	policy_check_keys(L, ctx, -1, "actions.notify", policy_notify_keys);
	a->notify = 1;

	/* to = "addr" or { "addr", ... } */
	has_to = (t = policy_field(L, -1, "to")) != LUA_TNIL;
	if (t == LUA_TSTRING) {
		lua_createtable(L, 1, 0);
		lua_insert(L, -2);
		lua_rawseti(L, -2, 1);
		t = LUA_TTABLE;
	}
	if (t == LUA_TTABLE) {
		n = (lua_Integer)lua_rawlen(L, -1);
		if (n == 0)
			policy_err(ctx, "actions.notify.to", "is empty");
		else if (n > POLICY_NOTIFY_TO_MAX)
			policy_err(ctx, "actions.notify.to", "more than %d "
			    "addresses", POLICY_NOTIFY_TO_MAX);
		else if ((a->notify_to = calloc((size_t)n,
		    sizeof(*a->notify_to))) == NULL)
			luaL_error(L, "out of memory");
		for (i = 1; a->notify_to != NULL && i <= n; i++) {
			snprintf(path, sizeof(path), "actions.notify.to[%lld]",
			    (long long)i);
			lua_rawgeti(L, -1, i);
			if ((s = policy_string(L, ctx, -1, path, TEXT_LINE,
			    SIZE_MAX)) != NULL) {
				if ((why = policy_check_address(s)) != NULL)
					policy_err(ctx, path, "%s", why);
				else
					a->notify_to[a->notify_nto++] =
					    policy_strdup(L, s);
			}
			lua_pop(L, 1);
		}
	} else if (t != LUA_TNIL)
		policy_err(ctx, "actions.notify.to", "must be an address or a "
		    "list of addresses, not %s", luaL_typename(L, -1));
	lua_pop(L, 1);

	if ((t = policy_field(L, -1, "sender")) == LUA_TBOOLEAN)
		a->notify_sender = lua_toboolean(L, -1);
	else if (t != LUA_TNIL)
		policy_err(ctx, "actions.notify.sender", "must be true or "
		    "false");
	lua_pop(L, 1);

	if (policy_field(L, -1, "subject") != LUA_TNIL) {
		if ((s = policy_string(L, ctx, -1, "actions.notify.subject",
		    TEXT_LINE, POLICY_SUBJECT_MAX)) != NULL) {
			if ((why = policy_check_template(s)) != NULL)
				policy_err(ctx, "actions.notify.subject", "%s",
				    why);
			else
				a->notify_subject = policy_strdup(L, s);
		}
	} else
		a->notify_subject = policy_strdup(L, POLICY_DEF_NOTIFY_SUBJECT);
	lua_pop(L, 1);

	if (policy_field(L, -1, "body") != LUA_TNIL) {
		if ((s = policy_string(L, ctx, -1, "actions.notify.body",
		    TEXT_BODY, POLICY_BODY_MAX)) != NULL) {
			if ((why = policy_check_template(s)) != NULL)
				policy_err(ctx, "actions.notify.body", "%s",
				    why);
			else
				a->notify_body = policy_strdup(L, s);
		}
	} else
		a->notify_body = policy_strdup(L, POLICY_DEF_NOTIFY_BODY);
	lua_pop(L, 1);

	if (!has_to && !a->notify_sender)
		policy_err(ctx, "actions.notify", "no recipient (give to, or "
		    "sender = true)");
	lua_pop(L, 1);
}

/* Length of the UTF-8 sequence at s (n bytes left), 0 if invalid. */
static size_t
policy_utf8_len(const unsigned char *s, size_t n)
{
	uint32_t cp;
	size_t len, i;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		len = 2, cp = s[0] & 0x1f;
	else if (s[0] >= 0xe0 && s[0] <= 0xef)
		len = 3, cp = s[0] & 0x0f;
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
		len = 4, cp = s[0] & 0x07;
	else
		return 0;
	if (n < len)
		return 0;
	for (i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	if ((len == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
	    (len == 4 && (cp < 0x10000 || cp > 0x10ffff)))
		return 0;
	return len;
}

static const char *
policy_check_text(const char *s, size_t len, enum policy_text kind)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t i, n;

	for (i = 0; i < len; i += n) {
		if (u[i] == '\0')
			return "contains a NUL byte";
		if (u[i] == '\r' || u[i] == '\n') {
			if (kind == TEXT_LINE)
				return "must be one line (no CR or LF)";
			if (u[i] == '\r' && (i + 1 >= len || u[i + 1] != '\n'))
				return "contains a CR not followed by LF";
			n = 1;
			continue;
		}
		if ((u[i] < 0x20 && u[i] != '\t') || u[i] == 0x7f)
			return "contains a control character";
		if ((n = policy_utf8_len(u + i, len - i)) == 0)
			return "is not valid UTF-8";
	}
	return NULL;
}

/* Every {word} must be a placeholder we expand. */
static const char *
policy_check_template(const char *s)
{
	static char why[96];
	const char *p, *e;
	size_t i, n;

	for (p = s; (p = strchr(p, '{')) != NULL; p++) {
		e = p + 1;
		while (*e == '_' || (*e >= 'a' && *e <= 'z'))
			e++;
		if (*e != '}' || e == p + 1)
			continue;
		n = (size_t)(e - p - 1);
		for (i = 0; policy_placeholders[i] != NULL; i++)
			if (strlen(policy_placeholders[i]) == n &&
			    strncmp(policy_placeholders[i], p + 1, n) == 0)
				break;
		if (policy_placeholders[i] == NULL) {
			snprintf(why, sizeof(why), "unknown placeholder "
			    "{%.*s}", n > 40 ? 40 : (int)n, p + 1);
			return why;
		}
	}
	return NULL;
}

static const char *
policy_reserved_header(const char *s)
{
	static char why[128];
	size_t i, n = strcspn(s, ":");

	if (n >= 8 && strncasecmp(s, "Content-", 8) == 0) {
		snprintf(why, sizeof(why), "%.*s cannot be added: it belongs "
		    "to the MIME structure", n > 40 ? 40 : (int)n, s);
		return why;
	}
	for (i = 0; policy_unique_headers[i] != NULL; i++)
		if (strlen(policy_unique_headers[i]) == n &&
		    strncasecmp(policy_unique_headers[i], s, n) == 0) {
			snprintf(why, sizeof(why), "%s cannot be added: a "
			    "message has at most one%s",
			    policy_unique_headers[i], i == 10 ?
			    " (use modify.subject)" : "");
			return why;
		}
	return NULL;
}

/* Validators shared with config.c */

const char *
policy_check_reply(const char *s, int *code, char *enh, size_t enhsz,
    const char **text)
{
	const char *p, *q;
	size_t len = strlen(s), i, sub, det;

	if (len > POLICY_REPLY_MAX)
		return "longer than 510 octets (a reply line is at most 512 "
		    "with CRLF)";
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '\r' || c == '\n')
			return "must be one line (no CR or LF)";
		if ((c < 0x20 && c != '\t') || c == 0x7f)
			return "contains a control character";
		if (c >= 0x80)
			return "must be ASCII";
	}
	if (len < 3 || !isdigit((unsigned char)s[0]) ||
	    !isdigit((unsigned char)s[1]) || !isdigit((unsigned char)s[2]))
		return "must start with a 3-digit SMTP reply code";
	if (s[0] != '5')
		return "the reply code must be 5xx (a permanent rejection)";
	if (s[1] > '5')
		return "not a valid SMTP reply code (5[0-5]x)";
	if (len > 3 && s[3] != ' ')
		return "the reply code must be followed by a space";
	p = s + (len > 3 ? 4 : 3);

	/* An enhanced status code: class.subject.detail (RFC 3463). */
	if (enh != NULL && enhsz > 0)
		enh[0] = '\0';
	if (isdigit((unsigned char)p[0]) && p[1] == '.') {
		q = p + 2;
		for (sub = 0; isdigit((unsigned char)q[sub]); sub++)
			;
		if (sub >= 1 && sub <= 3 && q[sub] == '.') {
			q += sub + 1;
			for (det = 0; isdigit((unsigned char)q[det]); det++)
				;
			if (det < 1 || det > 3 || (q[det] != ' ' &&
			    q[det] != '\0'))
				return "malformed enhanced status code "
				    "(5.x.y)";
			if (p[0] != '5')
				return "the enhanced status code must be of "
				    "class 5 (5.x.y)";
			q += det;
			if (enh != NULL && (size_t)(q - p) >= enhsz)
				return "enhanced status code too long";
			if (enh != NULL)
				snprintf(enh, enhsz, "%.*s", (int)(q - p), p);
			p = *q == ' ' ? q + 1 : q;
		} else
			return "malformed enhanced status code (5.x.y)";
	}
	if (code != NULL)
		*code = (s[0] - '0') * 100 + (s[1] - '0') * 10 + (s[2] - '0');
	if (text != NULL)
		*text = p;
	return NULL;
}

const char *
policy_check_header(const char *s)
{
	const char *colon;
	size_t len = strlen(s), i;
	int seen = 0;

	if (len > POLICY_HEADER_MAX)
		return "longer than 998 octets";
	if (strpbrk(s, "\r\n") != NULL)
		return "must be one line (no CR or LF)";
	if ((colon = strchr(s, ':')) == NULL || colon == s)
		return "must be \"Name: value\"";
	for (i = 0; s + i < colon; i++)
		if (s[i] < 33 || s[i] > 126)
			return "the field name must be printable ASCII without "
			    "spaces or ':'";
	for (i = (size_t)(colon - s) + 1; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c != '\t' && (c < 32 || c > 126))
			return "the value must be printable ASCII (tabs "
			    "allowed)";
		if (c != ' ' && c != '\t')
			seen = 1;
	}
	if (!seen)
		return "the value is empty";
	return NULL;
}

static int
policy_atext(unsigned char c)
{
	return isalnum(c) || (c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", c));
}

const char *
policy_check_address(const char *s)
{
	const char *at, *d, *label;
	size_t len = strlen(s), i, llen;

	if (len > 254)
		return "address longer than 254 octets";
	if ((at = strrchr(s, '@')) == NULL || at == s || at[1] == '\0')
		return "must be an address local@domain";
	llen = (size_t)(at - s);
	if (llen > 64)
		return "local part longer than 64 octets";
	for (i = 0; i < llen; i++) {
		if (s[i] == '.') {
			if (i == 0 || i == llen - 1 || s[i + 1] == '.')
				return "bad local part (misplaced '.')";
		} else if (!policy_atext((unsigned char)s[i]))
			return "bad local part (spaces, quotes, '<', '>', '@' "
			    "and control characters are not allowed)";
	}
	for (d = label = at + 1;; d++) {
		if (*d == '.' || *d == '\0') {
			if (d == label || d - label > 63 || label[0] == '-' ||
			    d[-1] == '-')
				return "bad domain";
			if (*d == '\0')
				break;
			label = d + 1;
		} else if (!isalnum((unsigned char)*d) && *d != '-')
			return "bad domain";
	}
	return NULL;
}

/* Evaluation */

void
policy_evaluate(struct policy_set *set, const struct policy_envelope *env,
    struct verdict *v)
{
	struct lua_sandbox *sb;
	struct lua_msg_ctx ctx;
	struct policy_hit *h;
	struct policy *p;
	lua_State *L;
	char err[POLICY_ERR_MAX], trace[POLICY_TRACE_MAX];
	char sample[POLICY_SAMPLE_MAX];
	uint64_t count;
	size_t i;
	int top, msg;

	memset(v, 0, sizeof(*v));
	if (set == NULL || set->npols == 0)
		return;
	sb = set->sb;
	L = lua_sandbox_state(sb);
	top = lua_gettop(L);
	memset(&ctx, 0, sizeof(ctx));
	ctx.env = env;

	if ((v->hits = calloc(set->npols, sizeof(*v->hits))) == NULL ||
	    !lua_checkstack(L, 8)) {
		policy_fail(v, env, "", "out of memory", NULL);
		goto done;
	}
	lua_sandbox_set_phase(sb, SANDBOX_EVAL, NULL, env->sid);
	lua_pushcfunction(L, lua_msg_new);
	lua_pushlightuserdata(L, &ctx);
	if (lua_sandbox_pcall(sb, 1, 1, err, sizeof(err), NULL, 0) != LUA_OK) {
		policy_fail(v, env, "", err, NULL);
		goto done;
	}
	msg = lua_gettop(L);

	for (i = 0; i < set->npols; i++) {
		p = &set->pols[i];
		lua_sandbox_set_phase(sb, SANDBOX_EVAL, p->name, env->sid);
		lua_rawgeti(L, LUA_REGISTRYINDEX, p->match_ref);
		lua_pushvalue(L, msg);
		if (lua_sandbox_pcall(sb, 1, 2, err, sizeof(err), trace,
		    sizeof(trace)) != LUA_OK) {
			policy_fail(v, env, p->name, err, trace);
			continue;
		}
		if (policy_result(L, &count, sample, sizeof(sample)) == -1) {
			snprintf(err, sizeof(err), "match must return a "
			    "boolean or a count (a whole number >= 0), not "
			    "%s", luaL_typename(L, -2));
			policy_fail(v, env, p->name, err, NULL);
			lua_pop(L, 2);
			continue;
		}
		lua_pop(L, 2);
		if (count == 0 || count < p->threshold)
			continue;
		h = &v->hits[v->nhits++];
		h->name = p->name;
		h->actions = &p->actions;
		h->count = count;
		memcpy(h->sample, sample, sizeof(h->sample));
	}
	lua_msg_invalidate(L, msg);
 done:
	lua_settop(L, top);
	lua_msg_ctx_clear(&ctx);
	lua_sandbox_set_phase(sb, SANDBOX_IDLE, NULL, NULL);
	lua_sandbox_collect(sb);
	if (v->nhits == 0) {
		free(v->hits);
		v->hits = NULL;
	}
	policy_decide(v);
}

/*
 * match's results, at -2 and -1: false/nil = 0, true = 1, a number is a
 * count; a string second result is the sample. -1 for anything else.
 */
static int
policy_result(lua_State *L, uint64_t *count, char *sample, size_t samplesz)
{
	lua_Number d;

	sample[0] = '\0';
	switch (lua_type(L, -2)) {
	case LUA_TNIL:
		*count = 0;
		break;
	case LUA_TBOOLEAN:
		*count = lua_toboolean(L, -2) ? 1 : 0;
		break;
	case LUA_TNUMBER:
		if (lua_isinteger(L, -2)) {
			if (lua_tointeger(L, -2) < 0)
				return -1;
			*count = (uint64_t)lua_tointeger(L, -2);
			break;
		}
		d = lua_tonumber(L, -2);
		if (!(d >= 0))		/* negative or NaN */
			return -1;
		*count = d >= 18446744073709551615.0 ? UINT64_MAX :
		    (uint64_t)d;
		break;
	default:
		return -1;
	}
	if (lua_type(L, -1) == LUA_TSTRING) {
		size_t len;
		const char *s = lua_tolstring(L, -1, &len);

		policy_sample(sample, samplesz, s, len);
	}
	return 0;
}

/*
 * A sample for logs and incidents: whole UTF-8 characters only, control
 * bytes and invalid bytes as '?', cut to fit.
 */
static void
policy_sample(char *dst, size_t dstsz, const char *s, size_t len)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t i = 0, o = 0, n;

	while (i < len) {
		n = policy_utf8_len(u + i, len - i);
		if (n == 0 || u[i] < 0x20 || u[i] == 0x7f) {
			if (o + 1 >= dstsz)
				break;
			dst[o++] = '?';
			i++;
			continue;
		}
		if (o + n >= dstsz)
			break;
		memcpy(dst + o, s + i, n);
		o += n;
		i += n;
	}
	dst[o] = '\0';
}

/* The first error decides the message's fate; all of them are logged. */
static void
policy_fail(struct verdict *v, const struct policy_envelope *env,
    const char *name, const char *msg, const char *trace)
{
	char qn[POLICY_QUOTE_MAX], qm[POLICY_QUOTE_MAX];

	log_msg(LOG_WARN, env->sid, "policy_error", "policy=%s error=%s",
	    log_quote(qn, sizeof(qn), name, strlen(name)),
	    log_quote(qm, sizeof(qm), msg, strlen(msg)));
	if (trace != NULL && strchr(trace, '\n') != NULL) {
		char qt[POLICY_TRACE_MAX];

		log_msg(LOG_DEBUG, env->sid, "policy_traceback",
		    "policy=%s trace=%s", qn,
		    log_quote(qt, sizeof(qt), trace, strlen(trace)));
	}
	if (v->error)
		return;
	v->error = 1;
	snprintf(v->error_policy, sizeof(v->error_policy), "%s", name);
	snprintf(v->error_msg, sizeof(v->error_msg), "%s", msg);
}

/* block > redirect > modify; the first policy (file order) decides. */
static void
policy_decide(struct verdict *v)
{
	size_t i;

	v->action = VERDICT_PASS;
	v->decider = NULL;
	for (i = 0; i < v->nhits; i++)
		if (v->hits[i].actions->block) {
			v->action = VERDICT_BLOCK;
			v->decider = &v->hits[i];
			return;
		}
	for (i = 0; i < v->nhits; i++)
		if (v->hits[i].actions->redirect != NULL) {
			v->action = VERDICT_REDIRECT;
			v->decider = &v->hits[i];
			return;
		}
	for (i = 0; i < v->nhits; i++)
		if (v->hits[i].actions->subject_op != SUBJECT_NONE ||
		    v->hits[i].actions->nheaders > 0) {
			v->action = VERDICT_MODIFY;
			return;
		}
}

void
verdict_free(struct verdict *v)
{
	free(v->hits);
	memset(v, 0, sizeof(*v));
}

const char *
verdict_action_name(enum verdict_action a)
{
	switch (a) {
	case VERDICT_PASS:
		return "pass";
	case VERDICT_MODIFY:
		return "modify";
	case VERDICT_REDIRECT:
		return "redirect";
	case VERDICT_BLOCK:
		return "block";
	}
	return "?";
}

/* Notification texts */

static int
policy_expand_value(struct buf *out, const char *s)
{
	size_t n;

	while (*s != '\0') {
		n = strcspn(s, "\r\n");
		if (buf_append(out, s, n) == -1)
			return -1;
		s += n;
		if (*s != '\0') {
			if (buf_append(out, " ", 1) == -1)
				return -1;
			s++;
		}
	}
	return 0;
}

int
policy_expand(struct buf *out, const char *tmpl, const struct policy_hit *h,
    const struct policy_envelope *env, const struct policy_var *extra,
    size_t nextra)
{
	const char *p, *e;
	char num[32];
	size_t i, n;
	int r = 0;

	for (p = tmpl; *p != '\0' && r == 0; p = e) {
		if (*p != '{' || (e = strchr(p, '}')) == NULL) {
			e = p + 1 + strcspn(p + 1, "{");
			r = buf_append(out, p, (size_t)(e - p));
			continue;
		}
		n = (size_t)(e - p - 1);
		e++;
#define IS(w) (n == sizeof(w) - 1 && strncmp(p + 1, w, n) == 0)
		if (IS("policy"))
			r = policy_expand_value(out, h->name);
		else if (IS("sender"))
			r = policy_expand_value(out, env->sender == NULL ||
			    env->sender[0] == '\0' ? "<>" : env->sender);
		else if (IS("recipients"))
			for (i = 0; r == 0 && i < env->nrecipients; i++) {
				if (i > 0)
					r = buf_appends(out, ", ");
				if (r == 0)
					r = policy_expand_value(out,
					    env->recipients[i]);
			}
		else if (IS("count")) {
			snprintf(num, sizeof(num), "%llu",
			    (unsigned long long)h->count);
			r = buf_appends(out, num);
		} else if (IS("sample"))
			r = policy_expand_value(out, h->sample);
		else if (IS("client_ip"))
			r = policy_expand_value(out, env->client_ip != NULL ?
			    env->client_ip : "");
		else if (IS("helo"))
			r = policy_expand_value(out, env->helo != NULL ?
			    env->helo : "");
		else if (IS("subject") || IS("queue_id") || IS("action") ||
		    IS("message_id")) {
			for (i = 0; i < nextra; i++)
				if (strlen(extra[i].name) == n &&
				    strncmp(extra[i].name, p + 1, n) == 0)
					break;
			if (i < nextra && extra[i].value != NULL)
				r = policy_expand_value(out, extra[i].value);
		} else {
			/* not ours: keep the brace, go on after it */
			e = p + 1;
			r = buf_append(out, p, 1);
		}
#undef IS
	}
	return r;
}
