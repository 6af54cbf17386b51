/*
 * policy_test: proxy/policy.c, lua_sandbox.c, lua_msg.c, lua_dlp.c.
 *
 * Every case writes policy files into a fresh temporary directory, loads
 * them and checks either the exact "file:line: message" errors or what
 * evaluating a message gives. The sandbox cases try to escape and expect
 * the error that stops them; the shipped examples in lua/policies are
 * loaded from the source tree and each is triggered on its own.
 */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "log.h"
#include "policy.h"

static char	tdir[256];

/* Fast limits for most cases; the memory cases raise the instructions. */
static const struct policy_limits lim_test = { 5000000, 32u << 20 };
static const struct policy_limits lim_mem = { 500000000, 16u << 20 };
static const struct policy_limits lim_small = { 200000, 8u << 20 };

static const char *const rcpts[] = {
	"bob@example.net", "carol@legal.example.com"
};

static void
setup(void)
{
	const char *t = getenv("TMPDIR");

	snprintf(tdir, sizeof(tdir), "%s/mp-policy-XXXXXX",
	    t != NULL && *t != '\0' ? t : "/tmp");
	ck_assert_msg(mkdtemp(tdir) != NULL, "mkdtemp: %s", strerror(errno));
	log_init("policy_test", LOG_ERR);
}

static void
teardown(void)
{
	struct dirent *de;
	char path[512];
	DIR *d;

	if ((d = opendir(tdir)) == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", tdir, de->d_name);
		unlink(path);
	}
	closedir(d);
	rmdir(tdir);
}

static void
put_len(const char *name, const char *text, size_t len)
{
	char path[512];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", tdir, name);
	ck_assert_msg((f = fopen(path, "w")) != NULL, "%s: %s", path,
	    strerror(errno));
	ck_assert_uint_eq(fwrite(text, 1, len, f), len);
	ck_assert_int_eq(fclose(f), 0);
}

static void
drop(const char *name)
{
	char path[512];

	snprintf(path, sizeof(path), "%s/%s", tdir, name);
	ck_assert_int_eq(unlink(path), 0);
}

static void
put(const char *name, const char *text)
{
	put_len(name, text, strlen(text));
}

static struct policy_set *
load_dir(const struct policy_limits *lim, struct buf *err)
{
	char glob[512];
	const char *globs[1] = { glob };

	snprintf(glob, sizeof(glob), "%s/*.lua", tdir);
	return policy_load(globs, 1, lim, err);
}

/* Load what is in the directory; it must be valid. */
static struct policy_set *
load_ok_lim(const struct policy_limits *lim)
{
	struct buf err = BUF_INIT;
	struct policy_set *set;

	set = load_dir(lim, &err);
	ck_assert_msg(set != NULL, "policies rejected:\n%s",
	    err.len ? buf_cstr(&err) : "(no message)");
	ck_assert_uint_eq(err.len, 0);
	buf_free(&err);
	return set;
}

static struct policy_set *
load_ok(const char *text)
{
	put("p.lua", text);
	return load_ok_lim(&lim_test);
}

/*
 * The errors for what is in the directory, with the directory removed
 * from every path, so that expectations read "p.lua:3: ...".
 */
static char *
load_errs(const struct policy_limits *lim)
{
	struct buf err = BUF_INIT, out = BUF_INIT;
	struct policy_set *set;
	char prefix[300];
	const char *p, *q;
	size_t plen;

	set = load_dir(lim, &err);
	ck_assert_msg(set == NULL, "policies accepted");
	ck_assert_msg(err.len > 0, "rejected without a message");
	snprintf(prefix, sizeof(prefix), "%s/", tdir);
	plen = strlen(prefix);
	buf_cstr(&err);
	for (p = err.data; (q = strstr(p, prefix)) != NULL; p = q + plen)
		buf_append(&out, p, (size_t)(q - p));
	buf_appends(&out, p);
	buf_cstr(&out);
	buf_free(&err);
	return out.data;
}

static char *
load_err(const char *text)
{
	put("p.lua", text);
	return load_errs(&lim_test);
}

#define ERR_EQ(text, expect) do {					\
	char *e_ = load_err(text);					\
	ck_assert_str_eq(e_, expect);					\
	free(e_);							\
} while (0)

static void
env_init(struct policy_envelope *e, const char *content)
{
	memset(e, 0, sizeof(*e));
	e->sender = "alice@example.com";
	e->recipients = rcpts;
	e->nrecipients = 2;
	e->helo = "client.example";
	e->client_ip = "127.0.0.1";
	e->content = content;
	e->size = strlen(content);
	e->sid = "t00001";
}

static void
eval(struct policy_set *set, const char *content, struct verdict *v)
{
	struct policy_envelope e;

	env_init(&e, content);
	policy_evaluate(set, &e, v);
}

#define PLAIN	"From: alice@example.com\r\nTo: bob@example.net\r\n" \
		"Subject: hello\r\n\r\nNothing to see here.\r\n"
#define MSG(subj, body) "From: alice@example.com\r\n" \
		"To: bob@example.net\r\nSubject: " subj "\r\n\r\n" body "\r\n"

/*
 * A one-policy set whose match() body is `body`; evaluate PLAIN and
 * return the verdict's error message ("" if none) and hit count.
 */
static char *
run_body(const struct policy_limits *lim, const char *body, size_t *nhits)
{
	struct policy_set *set;
	struct verdict v;
	char text[4096], *res;

	snprintf(text, sizeof(text), "return {\n  name = \"t\",\n"
	    "  match = function(msg)\n%s\n  end,\n}\n", body);
	put("p.lua", text);
	set = load_ok_lim(lim);
	eval(set, PLAIN, &v);
	if (nhits != NULL)
		*nhits = v.nhits;
	if (v.error)
		ck_assert_str_eq(v.error_policy, "t");
	res = strdup(v.error ? v.error_msg : "");
	verdict_free(&v);
	policy_set_free(set);
	return res;
}

/* match() must fail with an error containing `expect`. */
#define RUN_FAILS(lim, body, expect) do {				\
	char *e_ = run_body(lim, body, NULL);				\
	ck_assert_msg(strstr(e_, expect) != NULL,			\
	    "body:\n%s\nerror: \"%s\"\nexpected: \"%s\"", body, e_,	\
	    expect);							\
	free(e_);							\
} while (0)

/* match() must run without error and match (return true / count). */
#define RUN_MATCHES(lim, body) do {					\
	size_t n_;							\
	char *e_ = run_body(lim, body, &n_);				\
	ck_assert_msg(*e_ == '\0', "body:\n%s\nerror: %s", body, e_);	\
	ck_assert_msg(n_ == 1, "body:\n%s\ndid not match", body);	\
	free(e_);							\
} while (0)

/* Loading */

START_TEST(load_valid_set)
{
	struct policy_set *set;
	struct verdict v;

	put("a.lua", "return { name = \"A\", match = function(msg) "
	    "return false end }\n");
	put("b.lua", "-- all actions\n"
	    "local n = 0\n"
	    "return {\n"
	    "  name = \"B\",\n"
	    "  match = function(msg) return true end,\n"
	    "  threshold = 1,\n"
	    "  actions = {\n"
	    "    block = { reply = \"550 5.7.1 Blocked by policy: card "
	    "numbers. Contact dlp@example.com\" },\n"
	    "    redirect = \"dlp-review@example.com\",\n"
	    "    modify = { subject = { prepend = \"[ENCRYPT] \" },\n"
	    "               headers = { \"X-CFilter: Encrypt\", "
	    "\"X-A: 1\", \"X-B: 2\" } },\n"
	    "    notify = { to = { \"security@example.com\", "
	    "\"x.y@sub.example.org\" }, sender = true,\n"
	    "               subject = \"Policy violation: {policy}\", "
	    "body = \"line 1\\nline 2\\r\\n{sample}\" },\n"
	    "  },\n"
	    "}\n");
	put("c.lua", "return { name = \"C\", match = function() return 0 end,"
	    " actions = { block = true } }\n");
	put("d.lua", "return { name = \"D\", match = function() end, actions "
	    "= { notify = { to = \"a@b.example\" }, block = false } }\n");
	put("not-a-policy.txt", "garbage");
	set = load_ok_lim(&lim_test);
	ck_assert_uint_eq(policy_count(set), 4);

	eval(set, PLAIN, &v);
	ck_assert_int_eq(v.error, 0);
	ck_assert_uint_eq(v.nhits, 1);
	ck_assert_str_eq(v.hits[0].name, "B");
	ck_assert_int_eq(v.action, VERDICT_BLOCK);
	ck_assert_ptr_eq(v.decider, &v.hits[0]);
	{
		const struct policy_actions *a = v.hits[0].actions;

		ck_assert_int_eq(a->block, 1);
		ck_assert_int_eq(a->block_code, 550);
		ck_assert_str_eq(a->block_enh, "5.7.1");
		ck_assert_str_eq(a->block_text, "Blocked by policy: card "
		    "numbers. Contact dlp@example.com");
		ck_assert_str_eq(a->redirect, "dlp-review@example.com");
		ck_assert_int_eq(a->subject_op, SUBJECT_PREPEND);
		ck_assert_str_eq(a->subject, "[ENCRYPT] ");
		ck_assert_uint_eq(a->nheaders, 3);
		ck_assert_str_eq(a->headers[0], "X-CFilter: Encrypt");
		ck_assert_str_eq(a->headers[2], "X-B: 2");
		ck_assert_int_eq(a->notify, 1);
		ck_assert_uint_eq(a->notify_nto, 2);
		ck_assert_str_eq(a->notify_to[1], "x.y@sub.example.org");
		ck_assert_int_eq(a->notify_sender, 1);
		ck_assert_str_eq(a->notify_subject,
		    "Policy violation: {policy}");
		ck_assert_str_eq(a->notify_body, "line 1\nline 2\r\n{sample}");
	}
	verdict_free(&v);
	policy_set_free(set);
}
END_TEST

START_TEST(load_defaults)
{
	struct policy_set *set;
	struct verdict v;

	set = load_ok("return { name = \"N\", match = function() return true "
	    "end,\n  actions = { block = {}, notify = { sender = true } } }\n");
	eval(set, PLAIN, &v);
	ck_assert_uint_eq(v.nhits, 1);
	ck_assert_int_eq(v.hits[0].actions->block_code, 550);
	ck_assert_str_eq(v.hits[0].actions->block_enh, "5.7.1");
	ck_assert_str_eq(v.hits[0].actions->block_text,
	    "Message blocked by content policy");
	ck_assert_str_eq(v.hits[0].actions->notify_subject,
	    "Policy violation: {policy}");
	ck_assert_ptr_nonnull(strstr(v.hits[0].actions->notify_body,
	    "{policy}"));
	ck_assert_uint_eq(v.hits[0].actions->notify_nto, 0);
	verdict_free(&v);
	policy_set_free(set);
}
END_TEST

START_TEST(load_empty_and_globs)
{
	struct buf err = BUF_INIT;
	struct policy_set *set;
	char g1[512], g2[512], g3[512];
	const char *globs[3] = { g1, g2, g3 };
	struct verdict v;

	/* no globs: an empty set, which passes everything */
	set = policy_load(NULL, 0, &lim_test, &err);
	ck_assert_ptr_nonnull(set);
	ck_assert_uint_eq(policy_count(set), 0);
	eval(set, PLAIN, &v);
	ck_assert_int_eq(v.action, VERDICT_PASS);
	ck_assert_uint_eq(v.nhits, 0);
	verdict_free(&v);
	policy_set_free(set);

	/* the same file by three names is loaded once */
	put("a.lua", "return { name = \"A\", match = function() return true "
	    "end }\n");
	snprintf(g1, sizeof(g1), "%s/*.lua", tdir);
	snprintf(g2, sizeof(g2), "%s/a.lua", tdir);
	snprintf(g3, sizeof(g3), "%s/./a.lua", tdir);
	set = policy_load(globs, 3, &lim_test, &err);
	ck_assert_msg(set != NULL, "%s", buf_cstr(&err));
	ck_assert_uint_eq(policy_count(set), 1);
	policy_set_free(set);

	/* a glob that matches nothing is an error */
	snprintf(g1, sizeof(g1), "%s/none-*.lua", tdir);
	set = policy_load(globs, 1, &lim_test, &err);
	ck_assert_ptr_null(set);
	ck_assert_ptr_nonnull(strstr(buf_cstr(&err), "none-*.lua: no policy "
	    "file matches"));
	buf_free(&err);
}
END_TEST

/* Load errors, each with its file:line */

START_TEST(err_reply_4xx)
{
	ERR_EQ("return {\n"
	    "  name = \"x\",\n"
	    "  match = function(msg) return true end,\n"
	    "  actions = {\n"
	    "    block = { reply = \"450 4.7.1 try later\" },\n"
	    "  },\n"
	    "}\n",
	    "p.lua:5: actions.block.reply: the reply code must be 5xx (a "
	    "permanent rejection)\n");
	ERR_EQ("return {\n"
	    "  name = \"x\",\n"
	    "  match = function(msg) return true end,\n"
	    "  actions = {\n"
	    "    block = {\n"
	    "      reply = \"550 4.7.1 wrong class\" },\n"
	    "  },\n"
	    "}\n",
	    "p.lua:6: actions.block.reply: the enhanced status code must be "
	    "of class 5 (5.x.y)\n");
}
END_TEST

START_TEST(err_reply_crlf)
{
	ERR_EQ("return {\n"
	    "  name = \"x\",\n"
	    "  match = function(msg) return true end,\n"
	    "  actions = { block = {\n"
	    "    reply = \"550 5.7.1 no\\r\\nRCPT TO:<x@y.example>\" } },\n"
	    "}\n",
	    "p.lua:5: actions.block.reply: must be one line (no CR or LF)\n");
	ERR_EQ("return {\n"
	    "  name = \"x\",\n"
	    "  match = function(msg) return true end,\n"
	    "  actions = { block = {\n"
	    "    reply = \"550 5.7.1 no\\0more\" } },\n"
	    "}\n",
	    "p.lua:5: actions.block.reply: contains a NUL byte\n");
}
END_TEST

START_TEST(err_header_crlf)
{
	ERR_EQ("return {\n"
	    "  name = \"x\",\n"
	    "  match = function(msg) return true end,\n"
	    "  actions = {\n"
	    "    modify = {\n"
	    "      headers = { \"X-A: b\\r\\nBcc: evil@example.com\" },\n"
	    "    },\n"
	    "  },\n"
	    "}\n",
	    "p.lua:6: actions.modify.headers[1]: must be one line (no CR or "
	    "LF)\n");
	ERR_EQ("return { name = \"x\", match = function() end,\n"
	    "  actions = { modify = {\n"
	    "    headers = { \"Bad Name: 2\", \"Subject: x\", "
	    "\"Content-Type: text/html\" } } } }\n",
	    "p.lua:3: actions.modify.headers[1]: the field name must be "
	    "printable ASCII without spaces or ':'\n"
	    "p.lua:3: actions.modify.headers[2]: Subject cannot be added: a "
	    "message has at most one (use modify.subject)\n"
	    "p.lua:3: actions.modify.headers[3]: Content-Type cannot be added:"
	    " it belongs to the MIME structure\n");
}
END_TEST

START_TEST(err_four_headers)
{
	ERR_EQ("return {\n"
	    "  name = \"x\",\n"
	    "  match = function(msg) return true end,\n"
	    "  actions = {\n"
	    "    modify = {\n"
	    "      subject = { append = \" [tag]\" },\n"
	    "      headers = { \"X-1: a\", \"X-2: b\", \"X-3: c\", "
	    "\"X-4: d\" },\n"
	    "    },\n"
	    "  },\n"
	    "}\n",
	    "p.lua:7: actions.modify.headers: at most 3 headers can be added "
	    "(got 4)\n");
}
END_TEST

START_TEST(err_unknown_field)
{
	ERR_EQ("return {\n"
	    "  name = \"x\",\n"
	    "  colour = \"red\",\n"
	    "  match = function(msg) return true end,\n"
	    "  actions = {\n"
	    "    blok = true,\n"
	    "    modify = { subject = { prepend = \"a\" }, header = {} },\n"
	    "  },\n"
	    "}\n",
	    "p.lua:3: colour: unknown field (expected name, match, threshold "
	    "or actions)\n"
	    "p.lua:6: actions.blok: unknown field (expected block, redirect, "
	    "modify or notify)\n"
	    "p.lua:7: actions.modify.header: unknown field (expected subject "
	    "or headers)\n");
}
END_TEST

START_TEST(err_missing_match)
{
	ERR_EQ("-- no match function\n"
	    "local unused = 1\n"
	    "return {\n"
	    "  name = \"x\",\n"
	    "}\n",
	    "p.lua:3: match: missing (a function is required)\n");
	ERR_EQ("return {\n"
	    "  name = \"x\",\n"
	    "  match = \"cards\",\n"
	    "}\n",
	    "p.lua:3: match: must be a function, not string\n");
	ERR_EQ("return { match = function() end }\n",
	    "p.lua:1: name: missing (every policy needs a name)\n");
	ERR_EQ("return 42\n",
	    "p.lua:1: the file must return a policy table, not number\n");
}
END_TEST

START_TEST(err_duplicate_name)
{
	char *e;

	put("a.lua", "return { name = \"Same\", match = function() end }\n");
	put("b.lua", "-- copy of a\n"
	    "return {\n"
	    "  name = \"Same\",\n"
	    "  match = function() end,\n"
	    "}\n");
	e = load_errs(&lim_test);
	ck_assert_str_eq(e, "b.lua:3: name: duplicate policy name \"Same\" "
	    "(also in a.lua)\n");
	free(e);
}
END_TEST

START_TEST(err_syntax)
{
	char *e;

	e = load_err("return {\n"
	    "  name = \"x\",\n"
	    "  match = function(msg) return true end\n"
	    "  threshold = 2,\n"
	    "}\n");
	ck_assert_msg(strncmp(e, "p.lua:4: ", 9) == 0, "%s", e);
	ck_assert_ptr_nonnull(strstr(e, "expected"));
	free(e);
}
END_TEST

START_TEST(err_runtime_at_load)
{
	char *e;

	ERR_EQ("local x = 1\n"
	    "error(\"boom\")\n"
	    "return { name = \"x\", match = function() end }\n",
	    "p.lua:2: boom\n");
	/* an error without a position gets the line of the return */
	ERR_EQ("error({})\n"
	    "return { name = \"x\", match = function() end }\n",
	    "p.lua:2: (error object is a table value)\n");
	/* a chunk that never ends is stopped */
	e = load_err("local i = 0\n"
	    "while true do i = i + 1 end\n"
	    "return { name = \"x\", match = function() end }\n");
	ck_assert_msg(strncmp(e, "p.lua:2: instruction limit exceeded", 35)
	    == 0, "%s", e);
	free(e);
	/* and so is one that eats memory */
	put("p.lua", "local t = {}\n"
	    "for i = 1, 1e9 do t[i] = i end\n"
	    "return { name = \"x\", match = function() end }\n");
	e = load_errs(&lim_mem);
	ck_assert_msg(strstr(e, "p.lua:3: memory limit exceeded") == e, "%s",
	    e);
	free(e);
}
END_TEST

/* Lua shortens long file names to "...tail"; messages show them whole. */
START_TEST(err_long_file_name)
{
	char name[128], expect[512], *e;
	struct policy_set *set;
	struct verdict v;

	memset(name, 'n', sizeof(name));
	memcpy(name + 80, ".lua", 5);
	put(name, "local x = 1\nerror(\"boom\")\n"
	    "return { name = \"x\", match = function() end }\n");
	e = load_errs(&lim_test);
	snprintf(expect, sizeof(expect), "%s:2: boom\n", name);
	ck_assert_str_eq(e, expect);
	free(e);

	put(name, "return { name = \"x\", match = function()\n"
	    "  error(\"later\")\nend }\n");
	set = load_ok_lim(&lim_test);
	eval(set, PLAIN, &v);
	ck_assert_int_eq(v.error, 1);
	snprintf(expect, sizeof(expect), "%s/%s:2: later", tdir, name);
	ck_assert_str_eq(v.error_msg, expect);
	verdict_free(&v);
	policy_set_free(set);
}
END_TEST

START_TEST(err_bytecode_file)
{
	char *e;

	put_len("p.lua", "\033LuaT\0\031\223\r\n\032\n", 12);
	e = load_errs(&lim_test);
	ck_assert_msg(strstr(e, "p.lua:1: attempt to load a binary chunk") ==
	    e, "%s", e);
	free(e);
}
END_TEST

START_TEST(err_fields)
{
	ERR_EQ("return {\n"
	    "  name = \"x\",\n"
	    "  match = function() end,\n"
	    "  threshold = 0,\n"
	    "}\n",
	    "p.lua:4: threshold: must be a whole number of at least 1\n");
	ERR_EQ("return {\n"
	    "  name = \"x\",\n"
	    "  match = function() end,\n"
	    "  threshold = 1.5,\n"
	    "}\n",
	    "p.lua:4: threshold: must be a whole number of at least 1\n");
	ERR_EQ("return {\n"
	    "  name = 7,\n"
	    "  match = function() end,\n"
	    "}\n",
	    "p.lua:2: name: must be a string, not number\n");
	ERR_EQ("return {\n"
	    "  name = \"a\\nb\",\n"
	    "  match = function() end,\n"
	    "}\n",
	    "p.lua:2: name: must be one line (no CR or LF)\n");
	ERR_EQ("return {\n"
	    "  name = \"x\",\n"
	    "  match = function() end,\n"
	    "  actions = {\n"
	    "    redirect = \"Review <dlp@example.com>\",\n"
	    "  },\n"
	    "}\n",
	    "p.lua:5: actions.redirect: bad local part (spaces, quotes, '<', "
	    "'>', '@' and control characters are not allowed)\n");
	ERR_EQ("return {\n"
	    "  name = \"x\",\n"
	    "  match = function() end,\n"
	    "  actions = {\n"
	    "    block = \"yes\",\n"
	    "    modify = { subject = { prepend = \"a\", append = \"b\" } },\n"
	    "  },\n"
	    "}\n",
	    "p.lua:5: actions.block: must be true or a table such as { reply "
	    "= \"550 5.7.1 ...\" }, not string\n"
	    "p.lua:6: actions.modify.subject: give exactly one of prepend, "
	    "append or replace\n");
	ERR_EQ("return {\n"
	    "  name = \"x\",\n"
	    "  match = function() end,\n"
	    "  actions = {\n"
	    "    modify = { subject = { replace = \"a\\r\\nBcc: x\" } },\n"
	    "  },\n"
	    "}\n",
	    "p.lua:5: actions.modify.subject.replace: must be one line (no CR "
	    "or LF)\n");
}
END_TEST

START_TEST(err_notify)
{
	ERR_EQ("return {\n"
	    "  name = \"x\",\n"
	    "  match = function() end,\n"
	    "  actions = {\n"
	    "    notify = {\n"
	    "      to = { \"ok@example.com\", \"not an address\" },\n"
	    "      subject = \"Hit: {policy}\\n\",\n"
	    "      body = \"nul \\0 here\",\n"
	    "    },\n"
	    "  },\n"
	    "}\n",
	    "p.lua:6: actions.notify.to[2]: must be an address local@domain\n"
	    "p.lua:7: actions.notify.subject: must be one line (no CR or LF)\n"
	    "p.lua:8: actions.notify.body: contains a NUL byte\n");
	ERR_EQ("return {\n"
	    "  name = \"x\",\n"
	    "  match = function() end,\n"
	    "  actions = {\n"
	    "    notify = {\n"
	    "      subject = \"Hit: {polcy}\",\n"
	    "    },\n"
	    "  },\n"
	    "}\n",
	    "p.lua:6: actions.notify.subject: unknown placeholder {polcy}\n"
	    "p.lua:5: actions.notify: no recipient (give to, or sender = "
	    "true)\n");
}
END_TEST

/* Evaluation */

START_TEST(eval_precedence)
{
	struct policy_set *set;
	struct verdict v;

	put("1-modify.lua", "return { name = \"modify\", match = "
	    "function(msg) return msg.subject:find(\"m\") ~= nil end,\n"
	    "  actions = { modify = { headers = { \"X-CFilter: Encrypt\" } },"
	    " notify = { to = \"m@example.com\" } } }\n");
	put("2-redirect.lua", "return { name = \"redirect\", match = "
	    "function(msg) return msg.subject:find(\"r\") ~= nil end,\n"
	    "  actions = { redirect = \"review@example.com\", notify = { to = "
	    "\"r@example.com\" } } }\n");
	put("3-block.lua", "return { name = \"block\", match = "
	    "function(msg) return msg.subject:find(\"b\") ~= nil end,\n"
	    "  actions = { block = { reply = \"554 5.7.0 no\" }, notify = { "
	    "sender = true } } }\n");
	put("4-monitor.lua", "return { name = \"monitor\", match = "
	    "function(msg) return msg.subject:find(\"w\") ~= nil end }\n");
	set = load_ok_lim(&lim_test);

	eval(set, MSG("m r b w", "x"), &v);
	ck_assert_int_eq(v.error, 0);
	ck_assert_int_eq(v.action, VERDICT_BLOCK);
	ck_assert_str_eq(v.decider->name, "block");
	ck_assert_int_eq(v.decider->actions->block_code, 554);
	ck_assert_uint_eq(v.nhits, 4);
	/* every notification is kept */
	ck_assert_int_eq(v.hits[0].actions->notify, 1);
	ck_assert_int_eq(v.hits[1].actions->notify, 1);
	ck_assert_int_eq(v.hits[2].actions->notify_sender, 1);
	ck_assert_str_eq(v.hits[3].name, "monitor");
	verdict_free(&v);

	eval(set, MSG("m r", "x"), &v);
	ck_assert_int_eq(v.action, VERDICT_REDIRECT);
	ck_assert_str_eq(v.decider->name, "redirect");
	ck_assert_str_eq(v.decider->actions->redirect, "review@example.com");
	ck_assert_uint_eq(v.nhits, 2);
	verdict_free(&v);

	eval(set, MSG("m", "x"), &v);
	ck_assert_int_eq(v.action, VERDICT_MODIFY);
	ck_assert_ptr_null(v.decider);
	ck_assert_uint_eq(v.nhits, 1);
	verdict_free(&v);

	eval(set, MSG("w", "x"), &v);
	ck_assert_int_eq(v.action, VERDICT_PASS);
	ck_assert_uint_eq(v.nhits, 1);
	ck_assert_str_eq(verdict_action_name(v.action), "pass");
	verdict_free(&v);

	eval(set, MSG("none", "x"), &v);
	ck_assert_int_eq(v.action, VERDICT_PASS);
	ck_assert_uint_eq(v.nhits, 0);
	ck_assert_ptr_null(v.hits);
	verdict_free(&v);
	policy_set_free(set);
}
END_TEST

START_TEST(eval_threshold_count_sample)
{
	struct policy_set *set;
	struct verdict v;

	/* the count is the number of "x" in the subject */
	put("a.lua", "return { name = \"count3\", threshold = 3,\n"
	    "  match = function(msg) local _, n = msg.subject:gsub(\"x\", "
	    "\"\") return n, \"4***-****-1234\" end }\n");
	put("b.lua", "return { name = \"bool2\", threshold = 2,\n"
	    "  match = function(msg) return msg.subject:find(\"x\") ~= nil "
	    "end }\n");
	put("c.lua", "return { name = \"float\",\n"
	    "  match = function(msg) return #msg.subject / 2, "
	    "\"bad\\0\\n\\tsample\" end }\n");
	put("d.lua", "return { name = \"long\",\n"
	    "  match = function(msg) return true, string.rep(\"\\u{e9}\", 100) "
	    "end }\n");
	set = load_ok_lim(&lim_test);

	eval(set, MSG("xx", "x"), &v);
	ck_assert_uint_eq(v.nhits, 2);
	ck_assert_str_eq(v.hits[0].name, "float");
	ck_assert_uint_eq(v.hits[0].count, 1);
	ck_assert_str_eq(v.hits[0].sample, "bad???sample");
	ck_assert_str_eq(v.hits[1].name, "long");
	/* cut at a character boundary: 31 two-byte characters */
	ck_assert_uint_eq(strlen(v.hits[1].sample), 62);
	verdict_free(&v);

	eval(set, MSG("xxx", "x"), &v);
	ck_assert_uint_eq(v.nhits, 3);
	ck_assert_str_eq(v.hits[0].name, "count3");
	ck_assert_uint_eq(v.hits[0].count, 3);
	ck_assert_str_eq(v.hits[0].sample, "4***-****-1234");
	/* a boolean counts 1: never reaches a threshold of 2 */
	ck_assert_str_eq(v.hits[1].name, "float");
	verdict_free(&v);
	policy_set_free(set);
}
END_TEST

START_TEST(eval_bad_results)
{
	RUN_FAILS(&lim_test, "return \"yes\"", "match must return a boolean "
	    "or a count (a whole number >= 0), not string");
	RUN_FAILS(&lim_test, "return -1", "not number");
	RUN_FAILS(&lim_test, "return 0/0", "not number");
	RUN_MATCHES(&lim_test, "return 1, {}");
}
END_TEST

START_TEST(eval_error_others_run)
{
	struct policy_set *set;
	struct verdict v;
	int i;

	put("a.lua", "return { name = \"fails\", match = function(msg)\n"
	    "  error(\"policy bug\")\nend }\n");
	put("b.lua", "return { name = \"loops\", match = function(msg)\n"
	    "  while true do end\nend }\n");
	put("c.lua", "return { name = \"works\", match = function(msg) "
	    "return true end,\n  actions = { block = true } }\n");
	set = load_ok_lim(&lim_test);
	/* twice: the state must be usable after the errors */
	for (i = 0; i < 2; i++) {
		eval(set, PLAIN, &v);
		ck_assert_int_eq(v.error, 1);
		ck_assert_str_eq(v.error_policy, "fails");
		ck_assert_ptr_nonnull(strstr(v.error_msg, "a.lua:2: policy "
		    "bug"));
		ck_assert_uint_eq(v.nhits, 1);
		ck_assert_str_eq(v.hits[0].name, "works");
		ck_assert_int_eq(v.action, VERDICT_BLOCK);
		verdict_free(&v);
	}
	policy_set_free(set);
}
END_TEST

START_TEST(eval_msg_fields)
{
	static const char content[] =
	    "From: Alice <alice@example.com>\r\n"
	    "To: bob@example.net\r\n"
	    "Subject: =?UTF-8?Q?caf=C3=A9_report?=\r\n"
	    "X-Tag: one\r\n"
	    "X-Tag: two\r\n"
	    "  folded\r\n"
	    "MIME-Version: 1.0\r\n"
	    "Content-Type: multipart/mixed; boundary=\"b1\"\r\n"
	    "\r\n"
	    "--b1\r\n"
	    "Content-Type: text/plain; charset=utf-8\r\n"
	    "\r\n"
	    "hello world\r\n"
	    "--b1\r\n"
	    "Content-Type: text/csv; name=\"data.csv\"\r\n"
	    "Content-Disposition: attachment; filename=\"data.csv\"\r\n"
	    "Content-Transfer-Encoding: base64\r\n"
	    "\r\n"
	    "YSxiLGMK\r\n"
	    "--b1--\r\n";
	struct buf src = BUF_INIT;
	struct policy_set *set;
	struct verdict v;

	buf_appendf(&src, "local size = %zu\n", sizeof(content) - 1);
	buf_appends(&src, "return { name = \"fields\", match = function(msg)\n"
	    "  assert(msg.sender == \"alice@example.com\", \"sender\")\n"
	    "  assert(#msg.recipients == 2, \"#recipients\")\n"
	    "  assert(msg.recipients[2] == \"carol@legal.example.com\", "
	    "\"rcpt\")\n"
	    "  assert(msg.helo == \"client.example\", \"helo\")\n"
	    "  assert(msg.client_ip == \"127.0.0.1\", \"client_ip\")\n"
	    "  assert(msg.size == size, \"size\")\n"
	    "  assert(msg.subject == \"caf\\u{e9} report\", \"subject\")\n"
	    "  assert(msg:header(\"x-tag\") == \"one\", \"header\")\n"
	    "  assert(msg:header(\"Nope\") == nil, \"absent header\")\n"
	    "  local t = msg:headers(\"X-TAG\")\n"
	    "  assert(#t == 2 and t[2]:find(\"^two%s+folded$\"), \"headers\")\n"
	    "  assert(#msg:headers(\"Nope\") == 0, \"no headers\")\n"
	    "  assert(msg:text():find(\"hello world\"), \"text\")\n"
	    "  assert(msg:text() == msg:text(), \"text cached\")\n"
	    "  local a = msg:attachments()\n"
	    "  assert(#a == 1, \"#attachments\")\n"
	    "  assert(a[1].filename == \"data.csv\", \"filename\")\n"
	    "  assert(a[1].content_type == \"text/csv\", \"content_type\")\n"
	    "  assert(a[1].size == 6, \"size\")\n"
	    "  assert(a[1].content == \"a,b,c\\n\", \"content\")\n"
	    "  assert(tostring(msg) == \"msg\", \"tostring\")\n"
	    "  assert(getmetatable(msg) == \"protected\", \"metatable\")\n"
	    "  -- tables handed out are copies: the next policy sees none of "
	    "this\n"
	    "  msg.recipients[1] = \"evil@example.com\"\n"
	    "  a[1].content = \"changed\"\n"
	    "  return true\n"
	    "end }\n");
	put("a.lua", buf_cstr(&src));
	buf_free(&src);
	put("b.lua", "return { name = \"isolated\", match = function(msg)\n"
	    "  assert(msg.recipients[1] == \"bob@example.net\", \"rcpt "
	    "changed\")\n"
	    "  assert(msg:attachments()[1].content == \"a,b,c\\n\", "
	    "\"content changed\")\n"
	    "  return true\n"
	    "end }\n");
	set = load_ok_lim(&lim_test);
	eval(set, content, &v);
	ck_assert_msg(v.error == 0, "%s", v.error_msg);
	ck_assert_uint_eq(v.nhits, 2);
	verdict_free(&v);
	policy_set_free(set);
}
END_TEST

START_TEST(eval_msg_misuse)
{
	RUN_FAILS(&lim_test, "return msg.header(\"Subject\")",
	    "invalid arguments to msg:header");
	RUN_FAILS(&lim_test, "return msg:header(1)",
	    "invalid arguments to msg:header");
	RUN_FAILS(&lim_test, "return msg:headers()",
	    "invalid arguments to msg:headers");
	RUN_FAILS(&lim_test, "return msg.text()",
	    "invalid arguments to msg:text");
	RUN_FAILS(&lim_test, "return msg.sendr", "msg has no field 'sendr'");
	RUN_FAILS(&lim_test, "msg.sender = \"x\"", "msg is read-only");
	RUN_FAILS(&lim_test, "return setmetatable(msg, {})",
	    "bad argument #1 to 'setmetatable'");
}
END_TEST

START_TEST(eval_msg_stashed)
{
	struct policy_set *set;
	struct verdict v;

	set = load_ok("local saved\n"
	    "return { name = \"stash\", match = function(msg)\n"
	    "  if saved == nil then saved = msg return false end\n"
	    "  if msg.subject == \"field\" then return saved.sender end\n"
	    "  return saved:text()\n"
	    "end }\n");
	eval(set, PLAIN, &v);
	ck_assert_int_eq(v.error, 0);
	verdict_free(&v);

	eval(set, PLAIN, &v);
	ck_assert_int_eq(v.error, 1);
	ck_assert_msg(strstr(v.error_msg, "msg:text: msg is no longer valid")
	    != NULL, "%s", v.error_msg);
	verdict_free(&v);

	eval(set, MSG("field", "x"), &v);
	ck_assert_int_eq(v.error, 1);
	ck_assert_msg(strstr(v.error_msg, "msg.sender: msg is no longer "
	    "valid") != NULL, "%s", v.error_msg);
	verdict_free(&v);
	policy_set_free(set);
}
END_TEST

/* The sandbox: every escape fails */

START_TEST(sandbox_absent)
{
	RUN_FAILS(&lim_test, "return io.open(\"/etc/passwd\")",
	    "(global 'io')");
	RUN_FAILS(&lim_test, "return os.execute(\"true\")",
	    "(field 'execute')");
	RUN_FAILS(&lim_test, "return os.getenv(\"HOME\")", "(field 'getenv')");
	RUN_FAILS(&lim_test, "return os.exit(1)", "(field 'exit')");
	RUN_FAILS(&lim_test, "return require(\"io\")", "(global 'require')");
	RUN_FAILS(&lim_test, "return package.loaded.io", "(global 'package')");
	RUN_FAILS(&lim_test, "return debug.getinfo(1)", "(global 'debug')");
	RUN_FAILS(&lim_test, "return dofile(\"/etc/passwd\")",
	    "(global 'dofile')");
	RUN_FAILS(&lim_test, "return loadfile(\"/etc/passwd\")",
	    "(global 'loadfile')");
	RUN_FAILS(&lim_test, "return string.dump(function() end)",
	    "(field 'dump')");
	/* what is allowed of os */
	RUN_MATCHES(&lim_test, "return os.time() > 0 and os.clock() >= 0 and "
	    "#os.date(\"%Y\") == 4");
}
END_TEST

START_TEST(sandbox_bytecode)
{
	/* text only, also through load(); no mode argument helps */
	RUN_MATCHES(&lim_test, "local f, e = load(\"\\27LuaT\\0\")\n"
	    "return f == nil and e:find(\"binary chunk\") ~= nil");
	RUN_MATCHES(&lim_test, "local f, e = load(\"\\27LuaT\\0\", \"x\", "
	    "\"b\")\n"
	    "return f == nil and e:find(\"binary chunk\") ~= nil");
	RUN_FAILS(&lim_test, "return load(function() return nil end)",
	    "only strings can be loaded");
	/* a loaded chunk gets the read-only environment too */
	RUN_FAILS(&lim_test, "load(\"x = 1\")()", "attempt to set global 'x'");
	RUN_MATCHES(&lim_test, "return load(\"return 1 + 1\")() == 2");
}
END_TEST

START_TEST(sandbox_globals)
{
	RUN_FAILS(&lim_test, "x = 1",
	    "attempt to set global 'x' (globals are read-only; use local)");
	RUN_FAILS(&lim_test, "_G.print = nil", "attempt to set global 'print'");
	RUN_FAILS(&lim_test, "string.rep = nil",
	    "attempt to modify read-only table 'string'");
	RUN_FAILS(&lim_test, "table.insert = nil",
	    "attempt to modify read-only table 'table'");
	RUN_FAILS(&lim_test, "table.insert(math, 1)",
	    "attempt to modify read-only table 'math'");
	RUN_FAILS(&lim_test, "dlp.cards = nil",
	    "attempt to modify read-only table 'dlp'");
	RUN_FAILS(&lim_test, "rawset(_G, \"x\", 1)",
	    "rawset: the table is read-only");
	RUN_FAILS(&lim_test, "rawset(_ENV, \"x\", 1)",
	    "rawset: the table is read-only");
	RUN_FAILS(&lim_test, "local _, s = pairs(string)\n"
	    "rawset(s, \"rep\", nil)", "rawset: the table is read-only");
	RUN_FAILS(&lim_test, "setmetatable(string, nil)",
	    "cannot change a protected metatable");
	RUN_FAILS(&lim_test, "getmetatable(\"\").__index.rep = nil",
	    "attempt to modify read-only table 'string'");
	RUN_FAILS(&lim_test, "getmetatable(\"\").__index = {}",
	    "attempt to modify read-only table 'string metatable'");
	RUN_FAILS(&lim_test, "setmetatable({}, { __gc = function() end })",
	    "__gc is not allowed");
	RUN_FAILS(&lim_test, "collectgarbage(\"stop\")",
	    "only \"count\" is allowed");
	RUN_FAILS(&lim_test, "collectgarbage()", "only \"count\" is allowed");
	/* print goes to the log */
	RUN_MATCHES(&lim_test, "print(\"hello\", 1, nil, {}) return true");
	/* reading works: pairs, #, ipairs, methods on strings */
	RUN_MATCHES(&lim_test, "local n = 0\n"
	    "for k, v in pairs(string) do n = n + 1 end\n"
	    "return n > 10 and (\"ab\"):rep(2) == \"abab\" and "
	    "collectgarbage(\"count\") > 0 and _G == _ENV and "
	    "type(coroutine.wrap) == \"function\"");
}
END_TEST

/* A broken policy cannot change what the next one sees. */
START_TEST(sandbox_shared_tables_intact)
{
	struct policy_set *set;
	struct verdict v;

	put("a.lua", "return { name = \"vandal\", match = function(msg)\n"
	    "  pcall(function() string.rep = nil end)\n"
	    "  pcall(function() getmetatable(\"\").__index.upper = nil end)\n"
	    "  pcall(rawset, string, \"len\", nil)\n"
	    "  pcall(function() x = 1 end)\n"
	    "  return false\n"
	    "end }\n");
	put("b.lua", "return { name = \"checker\", match = function(msg)\n"
	    "  return string.rep(\"a\", 2) == \"aa\" and (\"a\"):upper() == "
	    "\"A\"\n"
	    "    and string.len(\"abc\") == 3 and x == nil\n"
	    "end }\n");
	set = load_ok_lim(&lim_test);
	eval(set, PLAIN, &v);
	ck_assert_int_eq(v.error, 0);
	ck_assert_uint_eq(v.nhits, 1);
	ck_assert_str_eq(v.hits[0].name, "checker");
	verdict_free(&v);
	policy_set_free(set);
}
END_TEST

START_TEST(sandbox_instructions)
{
	RUN_FAILS(&lim_test, "while true do end",
	    "instruction limit exceeded");
	/* pcall cannot swallow the limit */
	RUN_FAILS(&lim_test, "while true do\n"
	    "  pcall(function() while true do end end)\n"
	    "end", "instruction limit exceeded");
	RUN_FAILS(&lim_test, "local co = coroutine.wrap(function()\n"
	    "  while true do end end)\n"
	    "while true do pcall(co) end", "instruction limit exceeded");
}
END_TEST

START_TEST(sandbox_memory)
{
	struct policy_set *set;
	struct verdict v;
	int i;

	RUN_FAILS(&lim_mem, "return #string.rep(\"x\", 1 << 30)",
	    "memory limit exceeded");
	RUN_FAILS(&lim_mem, "local t = {}\n"
	    "for i = 1, 1e9 do t[i] = i end", "memory limit exceeded");
	RUN_FAILS(&lim_mem, "local s = \"x\"\n"
	    "while true do s = s .. s end", "memory limit exceeded");
	/*
	 * pcall catches a memory error, but nothing is gained: the cap holds
	 * and the call still ends (at the cap or the instruction limit)
	 */
	RUN_FAILS(&lim_small, "local keep = {}\n"
	    "while true do\n"
	    "  pcall(function() keep[#keep + 1] = string.rep(\"y\", 1 << 16) "
	    "end)\n"
	    "end", "limit exceeded");

	/* after a memory error the state works, message after message */
	drop("p.lua");
	put("a.lua", "return { name = \"bomb\", match = function(msg)\n"
	    "  local t = {} for i = 1, 1e9 do t[i] = tostring(i) end\n"
	    "end }\n");
	put("b.lua", "return { name = \"fine\", match = function(msg)\n"
	    "  return #string.rep(\"z\", 1 << 20) == 1 << 20\n"
	    "end }\n");
	set = load_ok_lim(&lim_mem);
	for (i = 0; i < 3; i++) {
		eval(set, PLAIN, &v);
		ck_assert_int_eq(v.error, 1);
		ck_assert_str_eq(v.error_policy, "bomb");
		ck_assert_ptr_nonnull(strstr(v.error_msg,
		    "memory limit exceeded"));
		ck_assert_uint_eq(v.nhits, 1);
		ck_assert_str_eq(v.hits[0].name, "fine");
		verdict_free(&v);
	}
	policy_set_free(set);
}
END_TEST

/* dlp */

START_TEST(dlp_functions)
{
	struct policy_set *set;
	struct verdict v;

	put("a.lua", "return { name = \"cards\", match = function(msg)\n"
	    "  return dlp.cards(msg:text())\nend }\n");
	put("b.lua", "local kw = dlp.keywords({ \"top secret\", \"eyes only\" "
	    "}, { whole_word = true })\n"
	    "return { name = \"kw\", match = function(msg)\n"
	    "  return kw:count(msg:text())\nend }\n");
	put("c.lua", "local re = dlp.regex(\"emp-[0-9]{6}\", { caseless = "
	    "true })\n"
	    "return { name = \"re\", match = function(msg)\n"
	    "  return re:count(msg:text())\nend }\n");
	put("d.lua", "return { name = \"nil text\", match = function(msg)\n"
	    "  local n, s = dlp.ssn(nil)\n"
	    "  assert(n == 0 and s == nil)\n"
	    "  return dlp.iban(msg.subject)\nend }\n");
	set = load_ok_lim(&lim_test);

	eval(set, MSG("none", "card 4111 1111 1111 1111 and TOP  SECRET, "
	    "Eyes only. EMP-123456 emp-654321"), &v);
	ck_assert_msg(v.error == 0, "%s", v.error_msg);
	ck_assert_uint_eq(v.nhits, 3);
	ck_assert_str_eq(v.hits[0].name, "cards");
	ck_assert_uint_eq(v.hits[0].count, 1);
	ck_assert_str_eq(v.hits[0].sample, "************1111");
	ck_assert_str_eq(v.hits[1].name, "kw");
	ck_assert_uint_eq(v.hits[1].count, 2);
	ck_assert_str_eq(v.hits[1].sample, "top secret");
	ck_assert_str_eq(v.hits[2].name, "re");
	ck_assert_uint_eq(v.hits[2].count, 2);
	ck_assert_str_eq(v.hits[2].sample, "***-**3456");
	verdict_free(&v);

	eval(set, MSG("DE89 3704 0044 0532 0130 00", "topsecret"), &v);
	ck_assert_msg(v.error == 0, "%s", v.error_msg);
	ck_assert_uint_eq(v.nhits, 1);
	ck_assert_str_eq(v.hits[0].name, "nil text");
	verdict_free(&v);
	policy_set_free(set);
}
END_TEST

START_TEST(dlp_errors)
{
	char *e;

	/* compile errors at load are file:line errors */
	e = load_err("-- a broken pattern\n"
	    "local re = dlp.regex(\"(unclosed\")\n"
	    "return { name = \"x\", match = function() end }\n");
	ck_assert_msg(strncmp(e, "p.lua:2: dlp.regex: ", 20) == 0, "%s", e);
	free(e);
	ERR_EQ("local kw = dlp.keywords({})\n"
	    "return { name = \"x\", match = function() end }\n",
	    "p.lua:1: dlp.keywords: the list is empty\n");
	ERR_EQ("local kw = dlp.keywords({ \"a\" }, { wholeword = true })\n"
	    "return { name = \"x\", match = function() end }\n",
	    "p.lua:1: dlp.keywords: unknown option 'wholeword'\n");
	ERR_EQ("local kw = dlp.keywords({ \"a\", 2 })\n"
	    "return { name = \"x\", match = function() end }\n",
	    "p.lua:1: dlp.keywords: term 2 is not a string\n");
	/* compiling per message is refused */
	RUN_FAILS(&lim_test, "return dlp.keywords({ \"a\" }):count(\"a\")",
	    "compile lists and patterns at the top of the policy file");
	RUN_FAILS(&lim_test, "return dlp.regex(\"a\"):count(\"a\")",
	    "compile lists and patterns at the top of the policy file");
	RUN_FAILS(&lim_test, "return dlp.cards(42)",
	    "invalid arguments to dlp.cards");
	RUN_FAILS(&lim_test, "return dlp.cards.count", "attempt to index");
}
END_TEST

START_TEST(dlp_object_misuse)
{
	struct policy_set *set;
	struct verdict v;

	set = load_ok("local kw = dlp.keywords({ \"a\" })\n"
	    "return { name = \"x\", match = function(msg)\n"
	    "  assert(getmetatable(kw) == \"protected\")\n"
	    "  assert(tostring(kw) == \"dlp.keywords (1 terms)\")\n"
	    "  return kw.count(\"a\")\n"
	    "end }\n");
	eval(set, PLAIN, &v);
	ck_assert_int_eq(v.error, 1);
	ck_assert_msg(strstr(v.error_msg, "invalid arguments to list:count")
	    != NULL, "%s", v.error_msg);
	verdict_free(&v);
	policy_set_free(set);
}
END_TEST

/* Validators */

struct reply_case {
	const char	*s;
	const char	*why;		/* NULL: valid */
	int		 code;
	const char	*enh;
	const char	*text;
};

static const struct reply_case reply_cases[] = {
	{ "550 5.7.1 Blocked by policy", NULL, 550, "5.7.1",
	    "Blocked by policy" },
	{ "554 Rejected", NULL, 554, "", "Rejected" },
	{ "550", NULL, 550, "", "" },
	{ "550 5.7.1", NULL, 550, "5.7.1", "" },
	{ "553 5.1.10 bad", NULL, 553, "5.1.10", "bad" },
	{ "550 5.123.456 x", NULL, 550, "5.123.456", "x" },
	{ "550 12 angry men", NULL, 550, "", "12 angry men" },
	{ "450 4.7.1 later", "the reply code must be 5xx (a permanent "
	    "rejection)", 0, NULL, NULL },
	{ "250 ok", "the reply code must be 5xx (a permanent rejection)", 0,
	    NULL, NULL },
	{ "570 x", "not a valid SMTP reply code (5[0-5]x)", 0, NULL, NULL },
	{ "550 4.7.1 x", "the enhanced status code must be of class 5 "
	    "(5.x.y)", 0, NULL, NULL },
	{ "550 5.7 x", "malformed enhanced status code (5.x.y)", 0, NULL,
	    NULL },
	{ "550 5.7.1234 x", "malformed enhanced status code (5.x.y)", 0,
	    NULL, NULL },
	{ "550-5.7.1 x", "the reply code must be followed by a space", 0,
	    NULL, NULL },
	{ "55", "must start with a 3-digit SMTP reply code", 0, NULL, NULL },
	{ "x550", "must start with a 3-digit SMTP reply code", 0, NULL,
	    NULL },
	{ "", "must start with a 3-digit SMTP reply code", 0, NULL, NULL },
	{ "550 a\rb", "must be one line (no CR or LF)", 0, NULL, NULL },
	{ "550 a\nb", "must be one line (no CR or LF)", 0, NULL, NULL },
	{ "550 a\033b", "contains a control character", 0, NULL, NULL },
	{ "550 caf\xc3\xa9", "must be ASCII", 0, NULL, NULL },
};

START_TEST(check_reply)
{
	const struct reply_case *c = &reply_cases[_i];
	const char *why, *text = NULL;
	char enh[16] = "junk";
	int code = 0;

	why = policy_check_reply(c->s, &code, enh, sizeof(enh), &text);
	if (c->why == NULL) {
		ck_assert_msg(why == NULL, "\"%s\": %s", c->s, why);
		ck_assert_int_eq(code, c->code);
		ck_assert_str_eq(enh, c->enh);
		ck_assert_str_eq(text, c->text);
	} else {
		ck_assert_msg(why != NULL, "\"%s\" accepted", c->s);
		ck_assert_str_eq(why, c->why);
	}
}
END_TEST

START_TEST(check_reply_length)
{
	char s[600];

	memset(s, 'a', sizeof(s));
	memcpy(s, "550 ", 4);
	s[510] = '\0';
	ck_assert_ptr_null(policy_check_reply(s, NULL, NULL, 0, NULL));
	s[510] = 'a';
	s[511] = '\0';
	ck_assert_str_eq(policy_check_reply(s, NULL, NULL, 0, NULL),
	    "longer than 510 octets (a reply line is at most 512 with CRLF)");
}
END_TEST

START_TEST(check_header)
{
	char s[1100];

	ck_assert_ptr_null(policy_check_header("X-CFilter: Encrypt"));
	ck_assert_ptr_null(policy_check_header("X-A:b\tc"));
	ck_assert_str_eq(policy_check_header("X-A: b\r\nX-B: c"),
	    "must be one line (no CR or LF)");
	ck_assert_str_eq(policy_check_header("X-A b"),
	    "must be \"Name: value\"");
	ck_assert_str_eq(policy_check_header(": b"), "must be \"Name: value\"");
	ck_assert_str_eq(policy_check_header("X A: b"), "the field name must "
	    "be printable ASCII without spaces or ':'");
	ck_assert_str_eq(policy_check_header("X-A:  "), "the value is empty");
	ck_assert_str_eq(policy_check_header("X-A: caf\xc3\xa9"),
	    "the value must be printable ASCII (tabs allowed)");
	memset(s, 'v', sizeof(s));
	memcpy(s, "X-Long: ", 8);
	s[998] = '\0';
	ck_assert_ptr_null(policy_check_header(s));
	s[998] = 'v';
	s[999] = '\0';
	ck_assert_str_eq(policy_check_header(s), "longer than 998 octets");
}
END_TEST

START_TEST(check_address)
{
	ck_assert_ptr_null(policy_check_address("dlp-review@example.com"));
	ck_assert_ptr_null(policy_check_address("a.b+tag@sub.example.co.uk"));
	ck_assert_ptr_null(policy_check_address("root@localhost"));
	ck_assert_ptr_nonnull(policy_check_address("example.com"));
	ck_assert_ptr_nonnull(policy_check_address("@example.com"));
	ck_assert_ptr_nonnull(policy_check_address("a@"));
	ck_assert_ptr_nonnull(policy_check_address("a b@example.com"));
	ck_assert_ptr_nonnull(policy_check_address("<a@example.com>"));
	ck_assert_ptr_nonnull(policy_check_address("a@example.com>"));
	ck_assert_ptr_nonnull(policy_check_address(".a@example.com"));
	ck_assert_ptr_nonnull(policy_check_address("a..b@example.com"));
	ck_assert_ptr_nonnull(policy_check_address("a@-example.com"));
	ck_assert_ptr_nonnull(policy_check_address("a@example..com"));
	ck_assert_ptr_nonnull(policy_check_address("a@exa mple.com"));
	ck_assert_ptr_nonnull(policy_check_address("a@b@example.com"));
	ck_assert_ptr_nonnull(policy_check_address("a\n@example.com"));
}
END_TEST

START_TEST(expand)
{
	static const struct policy_var extra[] = {
		{ "subject", "Q3\r\nBcc: evil@example.com" },
		{ "action", "block" },
		{ "queue_id", NULL },
	};
	struct policy_actions act;
	struct policy_hit h;
	struct policy_envelope e;
	struct buf out = BUF_INIT;

	memset(&act, 0, sizeof(act));
	memset(&h, 0, sizeof(h));
	h.name = "Cards";
	h.actions = &act;
	h.count = 3;
	snprintf(h.sample, sizeof(h.sample), "****1111");
	env_init(&e, PLAIN);
	e.helo = "evil\r\nBcc: x";
	ck_assert_int_eq(policy_expand(&out, "{policy}: {count} from {sender} "
	    "to {recipients} ({sample}) {client_ip} {helo} {other} {", &h, &e,
	    NULL, 0), 0);
	ck_assert_str_eq(buf_cstr(&out), "Cards: 3 from alice@example.com to "
	    "bob@example.net, carol@legal.example.com (****1111) 127.0.0.1 "
	    "evil  Bcc: x {other} {");
	buf_reset(&out);
	ck_assert_int_eq(policy_expand(&out, "[{subject}] [{action}] "
	    "[{queue_id}] [{message_id}]", &h, &e, extra, 3), 0);
	ck_assert_str_eq(buf_cstr(&out), "[Q3  Bcc: evil@example.com] [block] "
	    "[] []");
	buf_reset(&out);
	e.sender = "";
	ck_assert_int_eq(policy_expand(&out, "{sender}", &h, &e, NULL, 0), 0);
	ck_assert_str_eq(buf_cstr(&out), "<>");
	buf_free(&out);
}
END_TEST

/* The shipped examples */

struct example_case {
	const char		*content;
	const char		*policy;	/* the only hit; NULL: none */
	enum verdict_action	 action;
};

#define MULTI(fname) "From: alice@example.com\r\nTo: bob@example.net\r\n" \
	"Subject: files\r\nMIME-Version: 1.0\r\n" \
	"Content-Type: multipart/mixed; boundary=\"xx\"\r\n\r\n" \
	"--xx\r\nContent-Type: text/plain\r\n\r\nSee attached.\r\n" \
	"--xx\r\nContent-Type: application/octet-stream\r\n" \
	"Content-Disposition: attachment; filename=\"" fname "\"\r\n" \
	"Content-Transfer-Encoding: base64\r\n\r\nTVqQAAMAAAAEAAAA\r\n" \
	"--xx--\r\n"

static const struct example_case example_cases[] = {
	{ PLAIN, NULL, VERDICT_PASS },
	{ MULTI("report.pdf"), NULL, VERDICT_PASS },
	{ MSG("Q3 numbers", "This is Confidential, do not forward."),
	    "Encrypt confidential mail", VERDICT_MODIFY },
	{ MSG("confidential: Q3", "See below."),
	    "Encrypt confidential mail", VERDICT_MODIFY },
	{ MULTI("setup.EXE"), "Quarantine executable attachments",
	    VERDICT_MODIFY },
	{ MSG("sign please", "Please sign CTR-2026-00417 today."),
	    "Archive contract mail", VERDICT_MODIFY },
	{ MSG("order", "My card is 4111 1111 1111 1111, exp 12/29."),
	    "Payment card numbers", VERDICT_BLOCK },
	{ MSG("status", "Project Nightingale is late.\r\nproject\r\n"
	    "nightingale needs budget."),
	    "Restricted project code names", VERDICT_MODIFY },
	{ MSG("status", "Project Nightingale is late."), NULL, VERDICT_PASS },
	{ MSG("payment", "Pay to IBAN DE89 3704 0044 0532 0130 00 please."),
	    "Bank details for review", VERDICT_REDIRECT },
	{ MSG("form", "My SSN is 536-22-8147."),
	    "Social Security numbers", VERDICT_PASS },
};

START_TEST(examples_load)
{
	const char *globs[] = { "lua/policies/*.lua" };
	struct buf err = BUF_INIT;
	struct policy_set *set;

	set = policy_load(globs, 1, NULL, &err);
	ck_assert_msg(set != NULL, "%s", buf_cstr(&err));
	ck_assert_uint_eq(policy_count(set), 7);
	policy_set_free(set);
	buf_free(&err);
}
END_TEST

START_TEST(examples_trigger)
{
	const struct example_case *c = &example_cases[_i];
	const char *globs[] = { "lua/policies/*.lua" };
	struct buf err = BUF_INIT;
	struct policy_set *set;
	struct verdict v;

	set = policy_load(globs, 1, NULL, &err);
	ck_assert_msg(set != NULL, "%s", buf_cstr(&err));
	eval(set, c->content, &v);
	ck_assert_msg(v.error == 0, "%s: %s", v.error_policy, v.error_msg);
	if (c->policy == NULL)
		ck_assert_msg(v.nhits == 0, "case %d: unexpected hit %s", _i,
		    v.hits[0].name);
	else {
		ck_assert_msg(v.nhits == 1, "case %d: %zu hits", _i, v.nhits);
		ck_assert_str_eq(v.hits[0].name, c->policy);
	}
	ck_assert_int_eq(v.action, c->action);
	if (v.action == VERDICT_BLOCK) {
		ck_assert_int_eq(v.decider->actions->block_code, 550);
		ck_assert_str_eq(v.decider->actions->block_enh, "5.7.1");
		ck_assert_str_eq(v.hits[0].sample, "************1111");
	}
	if (v.action == VERDICT_REDIRECT)
		ck_assert_str_eq(v.decider->actions->redirect,
		    "dlp-review@example.com");
	if (c->policy != NULL && strcmp(c->policy, "Encrypt confidential "
	    "mail") == 0)
		ck_assert_str_eq(v.hits[0].actions->headers[0],
		    "X-CFilter: Encrypt");
	if (c->policy != NULL && strcmp(c->policy, "Social Security "
	    "numbers") == 0) {
		ck_assert_int_eq(v.hits[0].actions->notify_sender, 1);
		ck_assert_str_eq(v.hits[0].actions->notify_to[0],
		    "security@example.com");
		ck_assert_str_eq(v.hits[0].sample, "***-**-8147");
	}
	verdict_free(&v);
	policy_set_free(set);
	buf_free(&err);
}
END_TEST

static Suite *
policy_suite(void)
{
	Suite *s = suite_create("policy");
	TCase *tc;

	tc = tcase_create("load");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, load_valid_set);
	tcase_add_test(tc, load_defaults);
	tcase_add_test(tc, load_empty_and_globs);
	tcase_add_test(tc, err_reply_4xx);
	tcase_add_test(tc, err_reply_crlf);
	tcase_add_test(tc, err_header_crlf);
	tcase_add_test(tc, err_four_headers);
	tcase_add_test(tc, err_unknown_field);
	tcase_add_test(tc, err_missing_match);
	tcase_add_test(tc, err_duplicate_name);
	tcase_add_test(tc, err_syntax);
	tcase_add_test(tc, err_runtime_at_load);
	tcase_add_test(tc, err_long_file_name);
	tcase_add_test(tc, err_bytecode_file);
	tcase_add_test(tc, err_fields);
	tcase_add_test(tc, err_notify);
	suite_add_tcase(s, tc);

	tc = tcase_create("evaluate");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, eval_precedence);
	tcase_add_test(tc, eval_threshold_count_sample);
	tcase_add_test(tc, eval_bad_results);
	tcase_add_test(tc, eval_error_others_run);
	tcase_add_test(tc, eval_msg_fields);
	tcase_add_test(tc, eval_msg_misuse);
	tcase_add_test(tc, eval_msg_stashed);
	suite_add_tcase(s, tc);

	tc = tcase_create("sandbox");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, sandbox_absent);
	tcase_add_test(tc, sandbox_bytecode);
	tcase_add_test(tc, sandbox_globals);
	tcase_add_test(tc, sandbox_shared_tables_intact);
	tcase_add_test(tc, sandbox_instructions);
	tcase_add_test(tc, sandbox_memory);
	suite_add_tcase(s, tc);

	tc = tcase_create("dlp");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, dlp_functions);
	tcase_add_test(tc, dlp_errors);
	tcase_add_test(tc, dlp_object_misuse);
	suite_add_tcase(s, tc);

	tc = tcase_create("validators");
	tcase_add_loop_test(tc, check_reply, 0,
	    sizeof(reply_cases) / sizeof(reply_cases[0]));
	tcase_add_test(tc, check_reply_length);
	tcase_add_test(tc, check_header);
	tcase_add_test(tc, check_address);
	tcase_add_test(tc, expand);
	suite_add_tcase(s, tc);

	tc = tcase_create("examples");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, examples_load);
	tcase_add_loop_test(tc, examples_trigger, 0,
	    sizeof(example_cases) / sizeof(example_cases[0]));
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(policy_suite());
	int failed;

	log_init("policy_test", LOG_ERR);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
