/*
 * lua_pki: t:pki{}, a test PKI for the scenario's TLS roles, made by
 * $MP_BINDIR/certs-gen in the scenario's temp directory (docs/tls.md).
 *
 *   certs-gen pki --out DIR --host LABEL=NAME,IP...      always
 *   certs-gen bad --out DIR --host LABEL=NAME,IP...      for `bad` labels
 *   certs-gen bundle --out DIR/NAME.pem FILE...          for each bundle
 *
 * The result is a plain table of file names, made before anything runs
 * (the names are fixed by certs-gen) and handed over once every step has
 * exited 0.
 *
 * certs-gen is quick, but it runs as a child of the loop through proc.c,
 * like the proxies, rather than with a blocking posix_spawn and waitpid:
 * the roles already made keep answering while it runs, a hung certs-gen
 * meets the wait's deadline instead of freezing the runner, and proc.c
 * gives it PR_SET_PDEATHSIG and teardown's reaping for free. So t:pki is
 * a waiting call, and works inside run() only.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <lauxlib.h>

#include "buf.h"
#include "lua_sim.h"
#include "proc.h"
#include "runner.h"

#define LUA_PKI_MT		"sim.pki"
#define LUA_PKI_WAIT		30.0	/* seconds for every step together */
#define LUA_PKI_LABEL_MAX	40
#define LUA_PKI_HOSTS_MAX	32	/* certs-gen's own limit */
#define LUA_PKI_STDERR_MAX	2048	/* kept for the error message */

/* Without hosts, certs-gen makes these four (docs/tls.md). */
static const char *const lua_pki_default_labels[] = { "proxy", "upstream",
    "downstream", "hosted", NULL };

/* certs-gen bad's variants, each LABEL-VARIANT.{crt,key,chain.pem}. */
static const char *const lua_pki_variants[] = { "expired", "notyet",
    "wronghost", "untrusted", "selfsigned", "wrongkey", NULL };

/* Fields of the result table: no label may take their place. */
static const char *const lua_pki_reserved[] = { "dir", "trust", "root",
    "root_key", "intermediate", "intermediate_key", "passphrase_file",
    "bundles", NULL };

enum lua_pki_state {
	PKI_RUNNING,
	PKI_DONE,
	PKI_FAILED
};

struct lua_pki {
	unsigned long		 gen;
	enum lua_pki_state	 state;
	int			 stopped;	/* killed: start no further step */
	struct proc		*proc;
	char		      ***steps;	/* argv vectors, NULL-terminated */
	size_t			 nsteps;
	size_t			 step;		/* the one running */
	struct buf		 err;		/* its stderr, bounded */
	char			 failure[LUA_PKI_STDERR_MAX + 256];
};

static void	lua_pki_run_step(struct lua_pki *);

static void
lua_pki_free_steps(struct lua_pki *k)
{
	size_t i, j;

	for (i = 0; i < k->nsteps; i++) {
		for (j = 0; k->steps[i] != NULL && k->steps[i][j] != NULL; j++)
			free(k->steps[i][j]);
		free(k->steps[i]);
	}
	free(k->steps);
	k->steps = NULL;
	k->nsteps = 0;
}

/*
 * Teardown (or the wait's deadline): kill a step still running. It stays
 * attached, so its exit reaches lua_pki_exit, whose poke lets teardown
 * see that no child is left; the object outlives that, since teardown
 * collects it only once every child has been reaped.
 */
static void
lua_pki_cleanup(void *arg)
{
	struct lua_pki *k = arg;

	k->stopped = 1;
	if (k->proc != NULL)
		proc_signal(k->proc, SIGKILL);
}

static int
lua_pki_gc(lua_State *L)
{
	struct lua_pki *k = luaL_checkudata(L, 1, LUA_PKI_MT);

	if (k->proc != NULL) {
		/* Not torn down (the runner is exiting): let proc.c reap it. */
		proc_detach(k->proc);
		proc_signal(k->proc, SIGKILL);
		k->proc = NULL;
	}
	lua_pki_free_steps(k);
	buf_free(&k->err);
	return 0;
}

static void
lua_pki_line(void *arg, enum proc_stream which, const char *line, size_t len)
{
	struct lua_pki *k = arg;

	/* stdout lists the files written: we know them already. */
	if (which != PROC_STDERR || k->err.len >= LUA_PKI_STDERR_MAX)
		return;
	if (len > LUA_PKI_STDERR_MAX - k->err.len)
		len = LUA_PKI_STDERR_MAX - k->err.len;
	if (k->err.len > 0)
		buf_appends(&k->err, "\n");
	buf_append(&k->err, line, len);
}

static void
lua_pki_exit(void *arg, int status)
{
	struct lua_pki *k = arg;
	char how[64];

	k->proc = NULL;
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0 && !k->stopped) {
		if (++k->step < k->nsteps)
			lua_pki_run_step(k);
		else
			k->state = PKI_DONE;
		runner_poke();
		return;
	}
	if (WIFEXITED(status))
		snprintf(how, sizeof(how), "exit status %d", WEXITSTATUS(status));
	else if (WIFSIGNALED(status))
		snprintf(how, sizeof(how), "killed by %s",
		    strsignal(WTERMSIG(status)));
	else
		snprintf(how, sizeof(how), "status 0x%x", (unsigned)status);
	snprintf(k->failure, sizeof(k->failure), "certs-gen %s failed (%s): %s",
	    k->steps[k->step][1], how, k->err.len > 0 ? buf_cstr(&k->err) :
	    "(no message)");
	k->state = PKI_FAILED;
	runner_poke();
}

static void
lua_pki_run_step(struct lua_pki *k)
{
	char err[256];

	buf_reset(&k->err);
	k->proc = proc_start(runner_base(), k->steps[k->step], lua_pki_line,
	    lua_pki_exit, k, err, sizeof(err));
	if (k->proc == NULL) {
		snprintf(k->failure, sizeof(k->failure), "certs-gen %s: %s",
		    k->steps[k->step][1], err);
		k->state = PKI_FAILED;
	}
}

/* ---- building the steps ------------------------------------------------ */

/* The argv under construction: a Lua list of strings at idx. */
static void
lua_pki_arg(lua_State *L, int list, const char *s)
{
	lua_pushstring(L, s);
	lua_rawseti(L, list, (lua_Integer)lua_rawlen(L, list) + 1);
}

/* Copy the list at idx into a new malloc'd argv, appended to k->steps. */
static void
lua_pki_add_step(lua_State *L, struct lua_pki *k, int list)
{
	size_t n = lua_rawlen(L, list), i;
	char ***v, **argv;

	if ((v = realloc(k->steps, (k->nsteps + 2) * sizeof(*v))) == NULL)
		luaL_error(L, "out of memory");
	k->steps = v;
	if ((argv = calloc(n + 1, sizeof(*argv))) == NULL)
		luaL_error(L, "out of memory");
	k->steps[k->nsteps++] = argv;
	k->steps[k->nsteps] = NULL;
	for (i = 0; i < n; i++) {
		lua_rawgeti(L, list, (lua_Integer)i + 1);
		if ((argv[i] = strdup(lua_tostring(L, -1))) == NULL)
			luaL_error(L, "out of memory");
		lua_pop(L, 1);
	}
}

/* A new argv list "certs-gen CMD", pushed. */
static int
lua_pki_new_step(lua_State *L, const char *cmd)
{
	lua_newtable(L);
	lua_pushfstring(L, "%s/certs-gen", runner_bindir());
	lua_rawseti(L, -2, 1);
	lua_pki_arg(L, lua_gettop(L), cmd);
	return lua_gettop(L);
}

static void
lua_pki_check_name(lua_State *L, const char *s, const char *what)
{
	size_t i;

	for (i = 0; s[i] != '\0'; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' &&
		    s[i] <= 'Z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '-' ||
		    s[i] == '_'))
			break;
	if (i == 0 || s[i] != '\0' || i > LUA_PKI_LABEL_MAX)
		luaL_error(L, "t:pki: %s '%s' must be 1 to %d letters, digits, "
		    "'-' and '_'", what, s, LUA_PKI_LABEL_MAX);
}

/*
 * hosts = { label = { "name", "127.0.0.5", ... }, ... }: "label=n1,n2" for
 * each, in label order (the same files on every run), into the table at
 * out (label -> spec string). Returns the sorted label list, pushed.
 */
static int
lua_pki_hosts(lua_State *L, int opts, int out)
{
	size_t i, j, n;
	int hosts, labels;

	lua_newtable(L);
	labels = lua_gettop(L);
	if (lua_getfield(L, opts, "hosts") == LUA_TNIL) {
		lua_pop(L, 1);
		for (i = 0; lua_pki_default_labels[i] != NULL; i++)
			lua_pki_arg(L, labels, lua_pki_default_labels[i]);
		return labels;
	}
	if (!lua_istable(L, -1))
		luaL_error(L, "t:pki: hosts must be a table { label = "
		    "{ \"name\", \"ip\", ... } }");
	hosts = lua_gettop(L);
	lua_pushnil(L);
	while (lua_next(L, hosts) != 0) {
		lua_pop(L, 1);
		if (lua_type(L, -1) != LUA_TSTRING)
			luaL_error(L, "t:pki: hosts is a map from labels to "
			    "lists of names");
		lua_pushvalue(L, -1);
		lua_rawseti(L, labels, (lua_Integer)lua_rawlen(L, labels) + 1);
	}
	n = lua_rawlen(L, labels);
	if (n == 0 || n > LUA_PKI_HOSTS_MAX)
		luaL_error(L, "t:pki: 1 to %d hosts", LUA_PKI_HOSTS_MAX);
	lua_getglobal(L, "table");
	lua_getfield(L, -1, "sort");
	lua_pushvalue(L, labels);
	lua_call(L, 1, 0);
	lua_pop(L, 1);
	for (i = 1; i <= n; i++) {
		struct buf *spec;
		const char *label, *name;
		size_t nn = 0;

		lua_rawgeti(L, labels, (lua_Integer)i);
		label = lua_tostring(L, -1);
		lua_pki_check_name(L, label, "label");
		for (j = 0; lua_pki_reserved[j] != NULL; j++)
			if (strcmp(label, lua_pki_reserved[j]) == 0)
				luaL_error(L, "t:pki: '%s' cannot be a label",
				    label);
		spec = lua_sim_buf(L);
		buf_appendf(spec, "%s=", label);
		lua_pushvalue(L, -2);
		lua_gettable(L, hosts);
		if (lua_type(L, -1) == LUA_TSTRING) {
			/* One name: allowed, as a list of one. */
			lua_newtable(L);
			lua_insert(L, -2);
			lua_rawseti(L, -2, 1);
		}
		if (!lua_istable(L, -1) || (nn = lua_rawlen(L, -1)) == 0)
			luaL_error(L, "t:pki: hosts.%s must be a list of names "
			    "and addresses", label);
		for (j = 1; j <= nn; j++) {
			if (lua_rawgeti(L, -1, (lua_Integer)j) != LUA_TSTRING)
				luaL_error(L, "t:pki: hosts.%s[%d] must be a "
				    "string", label, (int)j);
			name = lua_tostring(L, -1);
			if (*name == '\0' || strpbrk(name, ",= \t\r\n") != NULL)
				luaL_error(L, "t:pki: hosts.%s: bad name '%s'",
				    label, name);
			buf_appendf(spec, "%s%s", j > 1 ? "," : "", name);
			lua_pop(L, 1);
		}
		lua_pop(L, 1);		/* the names */
		lua_pushlstring(L, spec->data, spec->len);
		lua_setfield(L, out, label);
		lua_pop(L, 2);		/* the buf, the label */
	}
	lua_pop(L, 1);			/* hosts */
	return labels;
}

/* { cert = chain, chain = chain, crt = leaf, key = key } for DIR/BASE, pushed. */
static void
lua_pki_files(lua_State *L, const char *dir, const char *base)
{
	lua_createtable(L, 0, 4);
	lua_pushfstring(L, "%s/%s.chain.pem", dir, base);
	lua_pushvalue(L, -1);
	lua_setfield(L, -3, "cert");
	lua_setfield(L, -2, "chain");
	lua_pushfstring(L, "%s/%s.crt", dir, base);
	lua_setfield(L, -2, "crt");
	lua_pushfstring(L, "%s/%s.key", dir, base);
	lua_setfield(L, -2, "key");
}

/* Write the passphrase file (mode 0600) for --passphrase-file. */
static void
lua_pki_write_pass(lua_State *L, const char *path, const char *pass)
{
	size_t len = strlen(pass);
	int fd;

	if (len == 0 || len > 1023 || strpbrk(pass, "\r\n") != NULL)
		luaL_error(L, "t:pki: a passphrase is one line of 1 to 1023 "
		    "bytes");
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd == -1)
		luaL_error(L, "t:pki: cannot create %s: %s", path,
		    strerror(errno));
	if (write(fd, pass, len) != (ssize_t)len || write(fd, "\n", 1) != 1) {
		close(fd);
		luaL_error(L, "t:pki: cannot write %s", path);
	}
	close(fd);
}

/* ---- the wait ---------------------------------------------------------- */

static int
lua_pki_ready(lua_State *co, void *arg, int expired)
{
	int ref = (int)(intptr_t)arg;
	lua_State *L = runner_lua();
	struct lua_pki *k;

	lua_rawgeti(L, LUA_REGISTRYINDEX, ref);
	k = lua_touserdata(L, -1);
	switch (k->state) {
	case PKI_DONE:
		lua_getiuservalue(L, -1, 1);
		lua_remove(L, -2);
		lua_xmove(L, co, 1);
		return 1;
	case PKI_FAILED:
		lua_pop(L, 1);
		lua_pushfstring(co, "t:pki: %s", k->failure);
		return RUNNER_RAISE;
	case PKI_RUNNING:
		break;
	}
	lua_pop(L, 1);
	if (!expired)
		return RUNNER_NOT_YET;
	lua_pki_cleanup(k);
	lua_pushfstring(co, "t:pki: certs-gen %s did not finish in time",
	    k->steps[k->step][1]);
	return RUNNER_RAISE;
}

static void
lua_pki_unref(void *arg)
{
	luaL_unref(runner_lua(), LUA_REGISTRYINDEX, (int)(intptr_t)arg);
}

/*
 * t:pki{ name=, hosts = { label = {"name", "ip", ...}, ... },
 *        bad = { label, ... }, intermediate=, self_signed=, days=,
 *        key_type=, passphrase=, bundles = { name = { file, ... } },
 *        timeout= }
 */
int
lua_pki_new(lua_State *L)
{
	static const char *const keys[] = { "name", "hosts", "bad",
	    "intermediate", "self_signed", "days", "key_type", "passphrase",
	    "bundles", "timeout", NULL };
	static unsigned long counted_gen;
	static unsigned count;
	struct lua_pki *k;
	struct runner_wait w;
	const char *name, *pass, *ktype, *bad;
	char defname[32], dir[PATH_MAX], passfile[PATH_MAX], days[32];
	int obj, res, specs, labels, step, inter, selfsig, r, rbundles;
	double ndays, seconds;
	size_t i, j, n;

	lua_test_arg(L);
	runner_check_wait(L, "t:pki");
	if (lua_isnoneornil(L, 2))
		lua_newtable(L), lua_replace(L, 2);
	lua_settop(L, 2);
	lua_sim_check_opts(L, 2, "t:pki", keys);
	if (luaL_newmetatable(L, LUA_PKI_MT)) {
		lua_pushcfunction(L, lua_pki_gc);
		lua_setfield(L, -2, "__gc");
		lua_pushliteral(L, "sim.pki");
		lua_setfield(L, -2, "__metatable");
	}
	lua_pop(L, 1);
	if (counted_gen != runner_gen()) {
		counted_gen = runner_gen();
		count = 0;
	}
	if (++count == 1)
		snprintf(defname, sizeof(defname), "pki");
	else
		snprintf(defname, sizeof(defname), "pki%u", count);
	name = lua_sim_opt_string(L, 2, "name", defname, "t:pki");
	lua_pki_check_name(L, name, "name");
	r = snprintf(dir, sizeof(dir), "%s/%s", runner_dir(), name);
	if (r < 0 || (size_t)r >= sizeof(dir))
		return luaL_error(L, "t:pki: path too long");
	inter = lua_sim_opt_bool(L, 2, "intermediate", 0, "t:pki");
	selfsig = lua_sim_opt_bool(L, 2, "self_signed", 0, "t:pki");
	if (inter && selfsig)
		return luaL_error(L, "t:pki: intermediate or self_signed, not "
		    "both");
	ndays = lua_sim_opt_number(L, 2, "days", 0, 1, 36500, "t:pki");
	snprintf(days, sizeof(days), "%d", (int)ndays);
	ktype = lua_sim_opt_string(L, 2, "key_type", NULL, "t:pki");
	seconds = lua_sim_opt_number(L, 2, "timeout", LUA_PKI_WAIT, 0.1, 3600,
	    "t:pki");
	pass = lua_sim_opt_string(L, 2, "passphrase", NULL, "t:pki");

	k = lua_newuserdatauv(L, sizeof(*k), 1);
	memset(k, 0, sizeof(*k));
	buf_init(&k->err);
	luaL_setmetatable(L, LUA_PKI_MT);
	obj = lua_gettop(L);
	k->gen = runner_gen();

	/* The result, known before anything runs. */
	lua_newtable(L);
	res = lua_gettop(L);
	lua_pushvalue(L, res);
	lua_setiuservalue(L, obj, 1);
	lua_pushstring(L, dir);
	lua_setfield(L, res, "dir");
	lua_pushfstring(L, "%s/trust.pem", dir);
	lua_setfield(L, res, "trust");
	if (!selfsig) {
		lua_pushfstring(L, "%s/root.crt", dir);
		lua_setfield(L, res, "root");
		lua_pushfstring(L, "%s/root.key", dir);
		lua_setfield(L, res, "root_key");
	}
	if (inter) {
		lua_pushfstring(L, "%s/intermediate.crt", dir);
		lua_setfield(L, res, "intermediate");
		lua_pushfstring(L, "%s/intermediate.key", dir);
		lua_setfield(L, res, "intermediate_key");
	}

	lua_newtable(L);
	specs = lua_gettop(L);
	labels = lua_pki_hosts(L, 2, specs);
	n = lua_rawlen(L, labels);
	for (i = 1; i <= n; i++) {
		lua_rawgeti(L, labels, (lua_Integer)i);
		lua_pki_files(L, dir, lua_tostring(L, -1));
		lua_setfield(L, res, lua_tostring(L, -2));
		lua_pop(L, 1);
	}

	if (pass != NULL) {
		r = snprintf(passfile, sizeof(passfile), "%s/%s.pass",
		    runner_dir(), name);
		if (r < 0 || (size_t)r >= sizeof(passfile))
			return luaL_error(L, "t:pki: path too long");
		lua_pki_write_pass(L, passfile, pass);
		lua_pushstring(L, passfile);
		lua_setfield(L, res, "passphrase_file");
	}

	/* certs-gen pki */
	step = lua_pki_new_step(L, "pki");
	lua_pki_arg(L, step, "--out");
	lua_pki_arg(L, step, dir);
	if (lua_getfield(L, 2, "hosts") != LUA_TNIL)
		for (i = 1; i <= n; i++) {
			lua_pki_arg(L, step, "--host");
			lua_rawgeti(L, labels, (lua_Integer)i);
			lua_gettable(L, specs);
			lua_pki_arg(L, step, lua_tostring(L, -1));
			lua_pop(L, 1);
		}
	lua_pop(L, 1);
	if (inter)
		lua_pki_arg(L, step, "--intermediate");
	if (selfsig)
		lua_pki_arg(L, step, "--self-signed");
	if (ndays > 0) {
		lua_pki_arg(L, step, "--days");
		lua_pki_arg(L, step, days);
	}
	if (ktype != NULL) {
		lua_pki_arg(L, step, "--key-type");
		lua_pki_arg(L, step, ktype);
	}
	if (pass != NULL) {
		lua_pki_arg(L, step, "--passphrase-file");
		lua_pki_arg(L, step, passfile);
	}
	lua_pki_add_step(L, k, step);
	lua_pop(L, 1);

	/* certs-gen bad, for the labels asked */
	if (lua_getfield(L, 2, "bad") != LUA_TNIL) {
		int list = lua_gettop(L);

		if (lua_type(L, list) == LUA_TSTRING) {
			lua_newtable(L);
			lua_insert(L, -2);
			lua_rawseti(L, -2, 1);
		}
		if (!lua_istable(L, list) || lua_rawlen(L, list) == 0)
			return luaL_error(L, "t:pki: bad must be a list of "
			    "labels");
		if (selfsig)
			return luaL_error(L, "t:pki: bad needs a CA (not "
			    "self_signed)");
		step = lua_pki_new_step(L, "bad");
		lua_pki_arg(L, step, "--out");
		lua_pki_arg(L, step, dir);
		for (i = 1; i <= lua_rawlen(L, list); i++) {
			if (lua_rawgeti(L, list, (lua_Integer)i) != LUA_TSTRING)
				return luaL_error(L, "t:pki: bad[%d] must be a "
				    "label", (int)i);
			bad = lua_tostring(L, -1);
			if (lua_getfield(L, res, bad) != LUA_TTABLE)
				return luaL_error(L, "t:pki: bad: '%s' is not "
				    "one of the hosts", bad);
			for (j = 0; lua_pki_variants[j] != NULL; j++) {
				lua_pushfstring(L, "%s-%s", bad,
				    lua_pki_variants[j]);
				lua_pki_files(L, dir, lua_tostring(L, -1));
				if (strcmp(lua_pki_variants[j], "untrusted") == 0) {
					lua_pushfstring(L, "%s/%s-untrusted-"
					    "root.crt", dir, bad);
					lua_setfield(L, -2, "root");
				}
				lua_setfield(L, -3, lua_pki_variants[j]);
				lua_pop(L, 1);
			}
			lua_pop(L, 1);
			lua_pki_arg(L, step, "--host");
			if (lua_getfield(L, specs, bad) == LUA_TSTRING)
				lua_pki_arg(L, step, lua_tostring(L, -1));
			else {
				/* One of certs-gen's default hosts. */
				lua_pushfstring(L, "%s=%s.mailprevent.test,"
				    "localhost,127.0.0.1", bad, bad);
				lua_pki_arg(L, step, lua_tostring(L, -1));
				lua_pop(L, 1);
			}
			lua_pop(L, 2);
		}
		if (ndays > 0) {
			lua_pki_arg(L, step, "--days");
			lua_pki_arg(L, step, days);
		}
		if (ktype != NULL) {
			lua_pki_arg(L, step, "--key-type");
			lua_pki_arg(L, step, ktype);
		}
		if (pass != NULL) {
			lua_pki_arg(L, step, "--passphrase-file");
			lua_pki_arg(L, step, passfile);
		}
		lua_pki_add_step(L, k, step);
		lua_pop(L, 1);
	}
	lua_pop(L, 1);

	/* certs-gen bundle, one per bundle: relative files are in DIR */
	lua_newtable(L);
	lua_pushvalue(L, -1);
	lua_setfield(L, res, "bundles");
	rbundles = lua_gettop(L);
	if (lua_getfield(L, 2, "bundles") != LUA_TNIL) {
		int bundles = lua_gettop(L), names;

		if (!lua_istable(L, bundles))
			return luaL_error(L, "t:pki: bundles must be a table "
			    "{ name = { file, ... } }");
		lua_newtable(L);
		names = lua_gettop(L);
		lua_pushnil(L);
		while (lua_next(L, bundles) != 0) {
			lua_pop(L, 1);
			if (lua_type(L, -1) != LUA_TSTRING)
				return luaL_error(L, "t:pki: bundles is a map "
				    "from names to lists of files");
			lua_pushvalue(L, -1);
			lua_rawseti(L, names, (lua_Integer)lua_rawlen(L,
			    names) + 1);
		}
		lua_getglobal(L, "table");
		lua_getfield(L, -1, "sort");
		lua_pushvalue(L, names);
		lua_call(L, 1, 0);
		lua_pop(L, 1);
		for (i = 1; i <= lua_rawlen(L, names); i++) {
			const char *bname, *f;
			size_t nf = 0;

			lua_rawgeti(L, names, (lua_Integer)i);
			bname = lua_tostring(L, -1);
			lua_pki_check_name(L, bname, "bundle name");
			step = lua_pki_new_step(L, "bundle");
			lua_pki_arg(L, step, "--out");
			lua_pushfstring(L, "%s/%s.pem", dir, bname);
			lua_pki_arg(L, step, lua_tostring(L, -1));
			lua_setfield(L, rbundles, bname);
			lua_getfield(L, bundles, bname);
			if (lua_type(L, -1) == LUA_TSTRING) {
				lua_newtable(L);
				lua_insert(L, -2);
				lua_rawseti(L, -2, 1);
			}
			if (!lua_istable(L, -1) || (nf = lua_rawlen(L, -1)) == 0)
				return luaL_error(L, "t:pki: bundles.%s must be "
				    "a list of files", bname);
			for (j = 1; j <= nf; j++) {
				if (lua_rawgeti(L, -1, (lua_Integer)j) !=
				    LUA_TSTRING)
					return luaL_error(L, "t:pki: "
					    "bundles.%s[%d] must be a file "
					    "name", bname, (int)j);
				f = lua_tostring(L, -1);
				if (*f == '/')
					lua_pki_arg(L, step, f);
				else {
					lua_pushfstring(L, "%s/%s", dir, f);
					lua_pki_arg(L, step, lua_tostring(L, -1));
					lua_pop(L, 1);
				}
				lua_pop(L, 1);
			}
			lua_pop(L, 1);
			lua_pki_add_step(L, k, step);
			lua_pop(L, 2);		/* the argv, the name */
		}
		lua_pop(L, 1);			/* names */
	}
	lua_settop(L, obj);

	runner_own(L, obj, lua_pki_cleanup, k);
	k->state = PKI_RUNNING;
	lua_pki_run_step(k);
	runner_poke();		/* a step that cannot start is reported at once */
	memset(&w, 0, sizeof(w));
	w.ready = lua_pki_ready;
	lua_pushvalue(L, obj);
	w.arg = (void *)(intptr_t)luaL_ref(L, LUA_REGISTRYINDEX);
	w.free_arg = lua_pki_unref;
	w.seconds = seconds;
	w.what = "certs-gen (t:pki)";
	return runner_wait(L, &w);
}
