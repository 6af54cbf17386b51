/*
 * lua_proxy: t:proxy{}, a real bin/mailprevent started by the scenario.
 *
 * The runner writes the proxy's YAML configuration into the scenario's
 * temp directory (listen and source_address on the proxy's own loopback
 * address, port 0 the first time, an incident log of its own) and starts
 * `$MP_BINDIR/mailprevent -c FILE` through proc.c. The proxy is up when
 * its log says event=listening; the port it got is read from that line
 * and kept, so p:start() after p:stop() or p:kill() comes back on the same
 * address, as a restarted server would.
 *
 * Every line the proxy writes is kept (and copied to NAME.log in the temp
 * directory). An exit nobody asked for is a failure of the scenario, and
 * so is an exit status other than 0 at teardown (a sanitizer report, say).
 */
#include <sys/stat.h>
#include <sys/wait.h>

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <lauxlib.h>

#include "buf.h"
#include "lua_child.h"
#include "lua_sim.h"
#include "proc.h"
#include "runner.h"

#define LUA_PROXY_MT		"sim.proxy"
#define LUA_PROXY_PASS		"X-Filter-Loop: Reflected"
#define LUA_PROXY_START_WAIT	15.0	/* seconds for event=listening */
#define LUA_PROXY_STOP_WAIT	10.0
#define LUA_PROXY_TAIL		40	/* log lines shown with a failure */
#define LUA_PROXY_LINES_MAX	200000

struct lua_proxy {
	struct lua_child	 c;		/* first: see lua_child.h */
	char			 ip[64];
	int			 port;		/* 0 until the first event=listening */
	char			 addr[96];
	char			 config[PATH_MAX];
	char			 incidents[PATH_MAX];
	long			 pid;
};

static struct lua_proxy *
lua_proxy_check(lua_State *L, int idx)
{
	return (struct lua_proxy *)lua_child_check(L, idx, LUA_PROXY_MT);
}

static void
lua_proxy_line(void *arg, enum proc_stream which, const char *line, size_t len)
{
	struct lua_proxy *p = arg;
	const char *copy, *a, *e;

	if ((copy = lua_child_add_line(&p->c, line, len)) == NULL)
		return;
	if (p->c.state == CHILD_STARTING && strstr(copy, " event=listening ") &&
	    (a = strstr(copy, " addr=")) != NULL) {
		a += 6;
		e = a + strcspn(a, " ");
		if ((size_t)(e - a) < sizeof(p->addr)) {
			memcpy(p->addr, a, (size_t)(e - a));
			p->addr[e - a] = '\0';
			if ((a = strrchr(p->addr, ':')) != NULL)
				p->port = atoi(a + 1);
		}
		p->c.state = CHILD_RUNNING;
	}
	runner_poke();
}

static void
lua_proxy_exit(void *arg, int status)
{
	struct lua_proxy *p = arg;
	char how[64];

	lua_child_exited(&p->c, status, how, sizeof(how));
	p->pid = 0;
	if (p->c.state == CHILD_STARTING) {
		/* The wait for event=listening reports it. */
	} else if (p->c.state != CHILD_STOPPING) {
		runner_fail("proxy %s exited unexpectedly (%s)", p->c.name, how);
		lua_child_attach_tail(&p->c);
	} else if (p->c.teardown && !(WIFEXITED(status) &&
	    WEXITSTATUS(status) == 0) && !(WIFSIGNALED(status) &&
	    (WTERMSIG(status) == SIGKILL || WTERMSIG(status) == SIGTERM))) {
		runner_fail("proxy %s ended with %s at teardown", p->c.name, how);
		lua_child_attach_tail(&p->c);
	}
	lua_child_stopped(&p->c);
}

/* ---- configuration ------------------------------------------------------- */

static void
lua_proxy_yaml_str(struct buf *b, const char *s, size_t len)
{
	size_t i;

	buf_appends(b, "\"");
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '"' || c == '\\')
			buf_appendf(b, "\\%c", c);
		else if (c < 0x20 || c == 0x7f)
			buf_appendf(b, "\\x%02x", c);	/* the proxy refuses it */
		else
			buf_append(b, &s[i], 1);
	}
	buf_appends(b, "\"");
}

static int
lua_proxy_is_list(lua_State *L, int idx)
{
	size_t n, k = 0;

	idx = lua_absindex(L, idx);
	n = lua_rawlen(L, idx);
	lua_pushnil(L);
	while (lua_next(L, idx) != 0) {
		lua_pop(L, 1);
		k++;
		if (!lua_isinteger(L, -1)) {
			lua_pop(L, 1);
			return 0;
		}
	}
	return k == n;
}

static void lua_proxy_yaml(lua_State *, int, struct buf *, int);

static void
lua_proxy_yaml_scalar(lua_State *L, int idx, struct buf *b)
{
	const char *s;
	size_t len;

	switch (lua_type(L, idx)) {
	case LUA_TBOOLEAN:
		buf_appends(b, lua_toboolean(L, idx) ? "true" : "false");
		break;
	case LUA_TNUMBER:
		if (lua_isinteger(L, idx))
			buf_appendf(b, "%lld", (long long)lua_tointeger(L, idx));
		else
			buf_appendf(b, "%.17g", lua_tonumber(L, idx));
		break;
	case LUA_TSTRING:
		s = lua_tolstring(L, idx, &len);
		lua_proxy_yaml_str(b, s, len);
		break;
	default:
		/* An object where an address belongs: its address. */
		if ((s = lua_sim_addr_or_null(L, idx)) != NULL) {
			lua_proxy_yaml_str(b, s, strlen(s));
			break;
		}
		luaL_error(L, "t:proxy: cannot write a %s into the configuration",
		    luaL_typename(L, idx));
	}
}

/* A value that is a table of its own (not an object standing for an address). */
static int
lua_proxy_is_nested(lua_State *L, int idx)
{
	return lua_type(L, idx) == LUA_TTABLE &&
	    lua_sim_addr_or_null(L, idx) == NULL;
}

/* The mapping or list at idx, at this indentation. */
static void
lua_proxy_yaml(lua_State *L, int idx, struct buf *b, int indent)
{
	size_t i, n;

	idx = lua_absindex(L, idx);
	luaL_checkstack(L, 8, "yaml");
	if (indent > 40)
		luaL_error(L, "t:proxy: configuration nested too deeply");
	if (lua_proxy_is_list(L, idx)) {
		n = lua_rawlen(L, idx);
		for (i = 1; i <= n; i++) {
			lua_rawgeti(L, idx, (lua_Integer)i);
			buf_appendf(b, "%*s- ", indent, "");
			if (lua_proxy_is_nested(L, -1)) {
				buf_appends(b, "\n");
				lua_proxy_yaml(L, -1, b, indent + 2);
			} else {
				lua_proxy_yaml_scalar(L, -1, b);
				buf_appends(b, "\n");
			}
			lua_pop(L, 1);
		}
		return;
	}
	/* A mapping, keys sorted so the file is the same on every run. */
	lua_newtable(L);
	lua_pushnil(L);
	while (lua_next(L, idx) != 0) {
		lua_pop(L, 1);
		if (lua_type(L, -1) != LUA_TSTRING)
			luaL_error(L, "t:proxy: configuration keys are strings");
		lua_pushvalue(L, -1);
		lua_rawseti(L, -3, (lua_Integer)lua_rawlen(L, -3) + 1);
	}
	lua_getglobal(L, "table");
	lua_getfield(L, -1, "sort");
	lua_pushvalue(L, -3);
	lua_call(L, 1, 0);
	lua_pop(L, 1);
	n = lua_rawlen(L, -1);
	for (i = 1; i <= n; i++) {
		lua_rawgeti(L, -1, (lua_Integer)i);
		buf_appendf(b, "%*s%s:", indent, "", lua_tostring(L, -1));
		lua_rawget(L, idx);
		if (lua_proxy_is_nested(L, -1)) {
			if (lua_rawlen(L, -1) == 0 && lua_proxy_is_list(L, -1))
				buf_appends(b, " []\n");
			else {
				buf_appends(b, "\n");
				lua_proxy_yaml(L, -1, b, indent + 2);
			}
		} else {
			buf_appends(b, " ");
			lua_proxy_yaml_scalar(L, -1, b);
			buf_appends(b, "\n");
		}
		lua_pop(L, 1);
	}
	lua_pop(L, 1);
}

/* Merge the table at src into the one at dst; nested mappings merge too. */
static void
lua_proxy_merge(lua_State *L, int dst, int src)
{
	dst = lua_absindex(L, dst);
	src = lua_absindex(L, src);
	lua_pushnil(L);
	while (lua_next(L, src) != 0) {
		if (lua_proxy_is_nested(L, -1) && !lua_proxy_is_list(L, -1)) {
			lua_pushvalue(L, -2);
			if (lua_rawget(L, dst) == LUA_TTABLE &&
			    !lua_proxy_is_list(L, -1)) {
				lua_proxy_merge(L, -1, -2);
				lua_pop(L, 2);
				continue;
			}
			lua_pop(L, 1);
		}
		lua_pushvalue(L, -2);
		lua_insert(L, -2);
		lua_rawset(L, dst);
	}
}

static void
lua_proxy_write_file(lua_State *L, const char *path, const char *data,
    size_t len)
{
	char tmp[PATH_MAX + 8];
	FILE *fp;
	int r;

	r = snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	if (r < 0 || (size_t)r >= sizeof(tmp))
		luaL_error(L, "path too long: %s", path);
	if ((fp = fopen(tmp, "w")) == NULL)
		luaL_error(L, "cannot write %s: %s", tmp, strerror(errno));
	if (fwrite(data, 1, len, fp) != len || fclose(fp) != 0)
		luaL_error(L, "cannot write %s", tmp);
	/* A reload must never see half a file. */
	if (rename(tmp, path) == -1)
		luaL_error(L, "cannot rename %s: %s", tmp, strerror(errno));
}

/* A policy path as the proxy must see it: from the runner's directory. */
static void
lua_proxy_policy_path(lua_State *L, const char *path)
{
	char cwd[PATH_MAX];

	if (path[0] == '/') {
		lua_pushstring(L, path);
		return;
	}
	if (getcwd(cwd, sizeof(cwd)) == NULL)
		luaL_error(L, "getcwd: %s", strerror(errno));
	lua_pushfstring(L, "%s/%s", cwd, path);
}

static const char *const lua_proxy_cfg_keys[] = { "mode", "reflect_to",
    "next_hop", "resubmit_port", "policies", "policy_source", "pass_header",
    "helo_name", "trial_mode", "log_level", "source_address", "tls", "extra",
    NULL };

/* tls = {...}: our short names for the keys of the tls: section. */
static const struct {
	const char	*opt;
	const char	*key;
	int		 path;		/* a file name: made absolute */
} lua_proxy_tls_keys[] = {
	{ "cert",		"cert_file",		1 },
	{ "key",		"key_file",		1 },
	{ "trust",		"trust_file",		1 },
	{ "passphrase_file",	"key_passphrase_file",	1 },
	{ "passphrase_env",	"key_passphrase_env",	0 },
	{ "outbound",		"outbound",		0 },
};

/*
 * tls = { cert=, key=, trust=, outbound=, required_inbound=,
 * passphrase_file=, passphrase_env= }: the tls: section. The keys given
 * replace those of the same name, so p:reload{ tls = { trust = f } }
 * changes the trust file only. File names are taken from the current
 * directory, like policies; trust = "" is the system store.
 */
static void
lua_proxy_tls(lua_State *L, int cfg, int opts, const char *fname)
{
	const char *allowed[sizeof(lua_proxy_tls_keys) /
	    sizeof(lua_proxy_tls_keys[0]) + 2];
	const char *v;
	char what[64];
	size_t i, n = sizeof(lua_proxy_tls_keys) / sizeof(lua_proxy_tls_keys[0]);
	int t, tls, sect;

	t = lua_getfield(L, opts, "tls");
	if (t == LUA_TNIL) {
		lua_pop(L, 1);
		return;
	}
	if (t != LUA_TTABLE)
		luaL_error(L, "%s: tls must be a table { cert=, key=, trust=, "
		    "outbound=, required_inbound=, passphrase_file=, "
		    "passphrase_env= }", fname);
	tls = lua_gettop(L);
	for (i = 0; i < n; i++)
		allowed[i] = lua_proxy_tls_keys[i].opt;
	allowed[n] = "required_inbound";
	allowed[n + 1] = NULL;
	snprintf(what, sizeof(what), "%s tls", fname);
	lua_sim_check_opts(L, tls, what, allowed);
	if (lua_getfield(L, cfg, "tls") != LUA_TTABLE) {
		lua_pop(L, 1);
		lua_newtable(L);
		lua_pushvalue(L, -1);
		lua_setfield(L, cfg, "tls");
	}
	sect = lua_gettop(L);
	for (i = 0; i < n; i++) {
		if ((v = lua_sim_opt_string(L, tls, lua_proxy_tls_keys[i].opt,
		    NULL, fname)) == NULL)
			continue;
		if (lua_proxy_tls_keys[i].path && *v != '\0')
			lua_proxy_policy_path(L, v);
		else
			lua_pushstring(L, v);
		lua_setfield(L, sect, lua_proxy_tls_keys[i].key);
	}
	v = lua_sim_opt_string(L, tls, "outbound", NULL, fname);
	if (v != NULL && strcmp(v, "follow") != 0 && strcmp(v, "always") != 0 &&
	    strcmp(v, "never") != 0)
		luaL_error(L, "%s: tls.outbound must be follow, always or "
		    "never, not '%s'", fname, v);
	if (lua_getfield(L, tls, "required_inbound") != LUA_TNIL) {
		lua_pushboolean(L, lua_sim_opt_bool(L, tls, "required_inbound",
		    0, fname));
		lua_setfield(L, sect, "required_inbound");
	}
	lua_settop(L, tls - 1);
}

/*
 * Apply the options at opts (those of lua_proxy_cfg_keys) to the config
 * table at cfg. Policy sources are written next to the configuration.
 */
static void
lua_proxy_apply(lua_State *L, struct lua_proxy *p, int cfg, int opts,
    const char *fname)
{
	static const char *const strings[] = { "mode", "pass_header",
	    "helo_name", "log_level", "source_address", NULL };
	static unsigned nsrc;
	const char **v, *s;
	size_t n, i;
	int top, t, list, has;

	cfg = lua_absindex(L, cfg);
	opts = lua_absindex(L, opts);
	top = lua_gettop(L);
	for (i = 0; strings[i] != NULL; i++)
		if ((s = lua_sim_opt_string(L, opts, strings[i], NULL, fname)) !=
		    NULL) {
			lua_pushstring(L, s);
			lua_setfield(L, cfg, strings[i]);
		}
	if (lua_getfield(L, opts, "trial_mode") != LUA_TNIL) {
		lua_pushboolean(L, lua_sim_opt_bool(L, opts, "trial_mode", 0,
		    fname));
		lua_setfield(L, cfg, "trial_mode");
	}
	lua_settop(L, top);

	if (lua_getfield(L, opts, "reflect_to") != LUA_TNIL) {
		/* Back to that MTA: its resubmit listener, else its main one. */
		if (lua_getfield(L, -1, "resubmit_port") != LUA_TNUMBER) {
			lua_pop(L, 1);
			if (lua_getfield(L, -1, "port") != LUA_TNUMBER)
				luaL_error(L, "%s: reflect_to must be an MTA "
				    "(or an object with a port)", fname);
		}
		lua_setfield(L, cfg, "resubmit_port");
		if (lua_getfield(L, opts, "mode") == LUA_TNIL) {
			lua_pushliteral(L, "reflect");
			lua_setfield(L, cfg, "mode");
		}
	}
	lua_settop(L, top);
	if (lua_getfield(L, opts, "resubmit_port") != LUA_TNIL) {
		lua_pushinteger(L, (lua_Integer)lua_sim_opt_number(L, opts,
		    "resubmit_port", 0, 1, 65535, fname));
		lua_setfield(L, cfg, "resubmit_port");
	}
	lua_settop(L, top);

	if (lua_getfield(L, opts, "next_hop") != LUA_TNIL) {
		v = lua_sim_opt_strings(L, opts, "next_hop", 1, &n, fname);
		lua_newtable(L);		/* next_hop */
		lua_newtable(L);		/* its hosts */
		for (i = 0; i < n; i++) {
			lua_pushstring(L, v[i]);
			lua_rawseti(L, -2, (lua_Integer)i + 1);
		}
		lua_setfield(L, -2, "hosts");
		lua_setfield(L, cfg, "next_hop");
	}
	lua_settop(L, top);

	lua_getfield(L, opts, "policies");
	lua_getfield(L, opts, "policy_source");
	has = !lua_isnil(L, -1) || !lua_isnil(L, -2);
	lua_settop(L, top);
	if (has) {
		lua_newtable(L);
		list = lua_gettop(L);
		v = lua_sim_opt_strings(L, opts, "policies", 0, &n, fname);
		for (i = 0; i < n; i++) {
			lua_proxy_policy_path(L, v[i]);
			lua_rawseti(L, list, (lua_Integer)lua_rawlen(L, list) + 1);
		}
		lua_settop(L, list);
		v = lua_sim_opt_strings(L, opts, "policy_source", 0, &n, fname);
		for (i = 0; i < n; i++) {
			char path[PATH_MAX];

			t = snprintf(path, sizeof(path), "%s/%s-policy-%u.lua",
			    runner_dir(), p->c.name, ++nsrc);
			if (t < 0 || (size_t)t >= sizeof(path))
				luaL_error(L, "%s: path too long", fname);
			lua_proxy_write_file(L, path, v[i], strlen(v[i]));
			lua_pushstring(L, path);
			lua_rawseti(L, list, (lua_Integer)lua_rawlen(L, list) + 1);
		}
		lua_settop(L, list);
		lua_setfield(L, cfg, "policies");
	}
	lua_settop(L, top);

	lua_proxy_tls(L, cfg, opts, fname);
	lua_settop(L, top);

	if ((t = lua_getfield(L, opts, "extra")) == LUA_TTABLE)
		lua_proxy_merge(L, cfg, -1);
	else if (t != LUA_TNIL)
		luaL_error(L, "%s: extra must be a table of configuration keys",
		    fname);
	lua_settop(L, top);
}

/* Write the config table (user value "cfg") to p->config. */
static void
lua_proxy_write_config(lua_State *L, struct lua_proxy *p, int obj)
{
	struct buf *b;

	lua_getiuservalue(L, obj, 1);
	lua_getfield(L, -1, "cfg");
	b = lua_sim_buf(L);
	buf_appendf(b, "# written by mta-sim run for proxy %s\n", p->c.name);
	lua_proxy_yaml(L, -2, b, 0);
	lua_proxy_write_file(L, p->config, b->data, b->len);
	lua_pop(L, 3);
}

/* Copy what scenarios read back (helo_name, pass_header, mode) to fields. */
static void
lua_proxy_set_fields(lua_State *L, struct lua_proxy *p, int obj)
{
	static const char *const copied[] = { "helo_name", "pass_header",
	    "mode", NULL };
	size_t i;

	obj = lua_absindex(L, obj);
	lua_getiuservalue(L, obj, 1);
	lua_getfield(L, -1, "cfg");
	for (i = 0; copied[i] != NULL; i++) {
		lua_getfield(L, -1, copied[i]);
		lua_setfield(L, -3, copied[i]);
	}
	lua_pop(L, 2);
	lua_sim_fields(L, obj, p->c.name, p->port > 0 ? p->addr : NULL);
	lua_getiuservalue(L, obj, 1);
	lua_pushstring(L, p->ip);
	lua_setfield(L, -2, "ip");
	lua_pushstring(L, p->config);
	lua_setfield(L, -2, "config");
	lua_pushstring(L, p->incidents);
	lua_setfield(L, -2, "incident_log");
	lua_pushstring(L, p->c.logpath);
	lua_setfield(L, -2, "log_file");
	lua_pop(L, 1);
}

/* ---- starting and stopping --------------------------------------------- */

static void
lua_proxy_spawn(lua_State *L, struct lua_proxy *p)
{
	char prog[PATH_MAX], err[256];
	char *argv[4];
	int r;

	r = snprintf(prog, sizeof(prog), "%s/mailprevent", runner_bindir());
	if (r < 0 || (size_t)r >= sizeof(prog))
		luaL_error(L, "MP_BINDIR too long");
	argv[0] = prog;
	argv[1] = (char *)"-c";
	argv[2] = p->config;
	argv[3] = NULL;
	if (lua_child_spawn(&p->c, argv, lua_proxy_line, lua_proxy_exit, p,
	    err, sizeof(err)) == -1)
		luaL_error(L, "proxy %s: %s", p->c.name, err);
	p->pid = (long)proc_pid(p->c.proc);
}

enum lua_proxy_until { UNTIL_LISTENING, UNTIL_EXITED, UNTIL_RELOADED };

static int
lua_proxy_ready(lua_State *co, void *arg, int expired)
{
	struct lua_child_wait *w = arg;
	struct lua_proxy *p = (struct lua_proxy *)w->c;
	char how[64], *tail;
	size_t i;

	switch (w->until) {
	case UNTIL_LISTENING:
		if (p->c.state == CHILD_RUNNING) {
			lua_State *L = runner_lua();

			/* Now it has a port: addr, port. */
			lua_child_push_object(L, w);
			lua_sim_fields(L, -1, NULL, p->addr);
			lua_xmove(L, co, 1);
			return 1;
		}
		if (!p->c.exited && !expired)
			return RUNNER_NOT_YET;
		tail = lua_child_tail(&p->c, 15, p->c.start_line);
		if (p->c.exited) {
			lua_child_strstatus(p->c.status, how, sizeof(how));
			lua_pushfstring(co, "proxy %s did not start (%s):\n%s",
			    p->c.name, how, tail);
		} else
			lua_pushfstring(co, "proxy %s did not start within the "
			    "wait (no event=listening):\n%s", p->c.name, tail);
		free(tail);
		return RUNNER_RAISE;
	case UNTIL_EXITED:
		return lua_child_ready_exited(co, &p->c, expired);
	case UNTIL_RELOADED:
		for (i = w->extra; i < p->c.nlines; i++) {
			const char *l = p->c.lines[i];

			if (strstr(l, " event=reload ") == NULL)
				continue;
			if (strstr(l, " status=") == NULL)
				continue;
			lua_pushboolean(co, strstr(l, " status=ok") != NULL);
			lua_pushstring(co, l);
			return 2;
		}
		if (p->c.exited) {
			lua_pushnil(co);
			lua_pushfstring(co, "proxy %s exited during the reload",
			    p->c.name);
			return 2;
		}
		if (!expired)
			return RUNNER_NOT_YET;
		lua_pushnil(co);
		lua_pushfstring(co, "timeout: proxy %s logged no event=reload",
		    p->c.name);
		return 2;
	}
	return RUNNER_NOT_YET;
}

/* Wait on the proxy at idx 1 of L. */
static int
lua_proxy_wait(lua_State *L, struct lua_proxy *p, enum lua_proxy_until until,
    double seconds, size_t from)
{
	return lua_child_wait(L, &p->c, lua_proxy_ready, until, from, seconds,
	    until == UNTIL_LISTENING ? "listen" : until == UNTIL_EXITED ?
	    "exit" : "reload");
}

static void
lua_proxy_cleanup(void *arg)
{
	struct lua_proxy *p = arg;

	lua_child_cleanup(&p->c);
}

static int
lua_proxy_gc(lua_State *L)
{
	struct lua_proxy *p = luaL_checkudata(L, 1, LUA_PROXY_MT);

	lua_child_free(&p->c, SIGKILL);
	return 0;
}

/*
 * t:proxy{ name=, ip=, port=, mode=, reflect_to=, next_hop=, resubmit_port=,
 *          policies=, policy_source=, pass_header=, helo_name=, trial_mode=,
 *          log_level=, source_address=, tls=, extra=, start=, timeout= }
 */
int
lua_proxy_new(lua_State *L)
{
	static const char *const own_keys[] = { "name", "ip", "port", "start",
	    "timeout", NULL };
	static unsigned long counted_gen;
	static unsigned count;
	struct lua_proxy *p;
	const char *name, *ip;
	char defname[32], helo[128];
	size_t i, j;
	int obj, port, r;

	lua_test_arg(L);
	if (lua_isnoneornil(L, 2))
		lua_newtable(L), lua_replace(L, 2);
	lua_settop(L, 2);
	luaL_checktype(L, 2, LUA_TTABLE);
	/* Our own keys, then the configuration ones. */
	lua_pushnil(L);
	while (lua_next(L, 2) != 0) {
		lua_pop(L, 1);
		for (i = 0; own_keys[i] != NULL; i++)
			if (lua_type(L, -1) == LUA_TSTRING &&
			    strcmp(lua_tostring(L, -1), own_keys[i]) == 0)
				break;
		for (j = 0; own_keys[i] == NULL && lua_proxy_cfg_keys[j]; j++)
			if (lua_type(L, -1) == LUA_TSTRING &&
			    strcmp(lua_tostring(L, -1), lua_proxy_cfg_keys[j]) == 0)
				break;
		if (own_keys[i] == NULL && lua_proxy_cfg_keys[j] == NULL)
			return luaL_error(L, "t:proxy: unknown option '%s'",
			    luaL_tolstring(L, -1, NULL));
	}
	if (counted_gen != runner_gen()) {
		counted_gen = runner_gen();
		count = 0;
	}
	snprintf(defname, sizeof(defname), "proxy%u", ++count);
	name = lua_sim_opt_string(L, 2, "name", defname, "t:proxy");
	for (i = 0; name[i] != '\0'; i++)
		if (!((name[i] >= 'a' && name[i] <= 'z') ||
		    (name[i] >= 'A' && name[i] <= 'Z') ||
		    (name[i] >= '0' && name[i] <= '9') || name[i] == '-' ||
		    name[i] == '_') || i >= 40)
			return luaL_error(L, "t:proxy: a name is up to 40 "
			    "letters, digits, '-' and '_'");
	port = (int)lua_sim_opt_number(L, 2, "port", 0, 0, 65535, "t:proxy");

	p = lua_newuserdatauv(L, sizeof(*p), 1);
	memset(p, 0, sizeof(*p));
	luaL_setmetatable(L, LUA_PROXY_MT);
	obj = lua_gettop(L);
	lua_newtable(L);
	lua_setiuservalue(L, obj, 1);
	lua_child_init(&p->c, "proxy", "this proxy", name, LUA_PROXY_LINES_MAX,
	    LUA_PROXY_TAIL);
	p->port = port;
	if ((ip = lua_sim_opt_string(L, 2, "ip", NULL, "t:proxy")) != NULL)
		snprintf(p->ip, sizeof(p->ip), "%s", ip);
	else if (runner_ip(p->ip, sizeof(p->ip)) == -1)
		return luaL_error(L, "t:proxy: out of loopback addresses");
	snprintf(p->addr, sizeof(p->addr), "%s:%d", p->ip, port);
	r = snprintf(p->config, sizeof(p->config), "%s/%s.yaml", runner_dir(),
	    p->c.name);
	if (r < 0 || (size_t)r >= sizeof(p->config))
		return luaL_error(L, "t:proxy: path too long");
	snprintf(p->incidents, sizeof(p->incidents), "%s/%s-incidents.jsonl",
	    runner_dir(), p->c.name);
	snprintf(p->c.logpath, sizeof(p->c.logpath), "%s/%s.log", runner_dir(),
	    p->c.name);
	runner_own(L, obj, lua_proxy_cleanup, p);
	lua_child_open_log(&p->c);

	/* The configuration: our defaults, then the scenario's options. */
	lua_newtable(L);
	lua_pushfstring(L, "%s:%d", p->ip, port);
	lua_setfield(L, -2, "listen");
	lua_pushliteral(L, "forward");
	lua_setfield(L, -2, "mode");
	for (i = 0, j = 0; name[i] != '\0' && j + 1 < 41; i++)
		helo[j++] = name[i] == '_' ? '-' : (char)(name[i] | 0x20);
	helo[j] = '\0';
	lua_pushfstring(L, "%s.mailprevent.test", helo);
	lua_setfield(L, -2, "helo_name");
	lua_pushstring(L, p->ip);
	lua_setfield(L, -2, "source_address");
	lua_pushliteral(L, LUA_PROXY_PASS);
	lua_setfield(L, -2, "pass_header");
	lua_pushstring(L, p->incidents);
	lua_setfield(L, -2, "incident_log");
	lua_newtable(L);
	/* Teardown sends SIGTERM; nothing should be left to drain by then. */
	lua_pushliteral(L, "2s");
	lua_setfield(L, -2, "shutdown");
	lua_setfield(L, -2, "timeouts");
	lua_getiuservalue(L, obj, 1);
	lua_pushvalue(L, -2);
	lua_setfield(L, -2, "cfg");
	lua_pop(L, 1);
	lua_proxy_apply(L, p, -1, 2, "t:proxy");
	lua_settop(L, obj);
	lua_proxy_write_config(L, p, obj);
	lua_proxy_set_fields(L, p, obj);

	if (!lua_sim_opt_bool(L, 2, "start", 1, "t:proxy"))
		return 1;
	runner_check_wait(L, "t:proxy");
	lua_proxy_spawn(L, p);
	lua_replace(L, 1);		/* the object is what we return */
	return lua_proxy_wait(L, p, UNTIL_LISTENING, lua_sim_opt_number(L, 2,
	    "timeout", LUA_PROXY_START_WAIT, 0.1, 3600, "t:proxy"), 0);
}

/* ---- methods --------------------------------------------------------------- */

/* p:start([seconds]): start it (again), on the same address; waits. */
static int
lua_proxy_start(lua_State *L)
{
	struct lua_proxy *p = lua_proxy_check(L, 1);
	double secs = luaL_optnumber(L, 2, LUA_PROXY_START_WAIT);

	runner_check_wait(L, "proxy:start");
	if (p->c.state != CHILD_STOPPED)
		return luaL_error(L, "proxy %s is already %s", p->c.name,
		    lua_child_states[p->c.state]);
	if (p->port > 0) {
		/* Port 0 became a real one: keep it. */
		lua_getiuservalue(L, 1, 1);
		lua_getfield(L, -1, "cfg");
		lua_pushfstring(L, "%s:%d", p->ip, p->port);
		lua_setfield(L, -2, "listen");
		lua_pop(L, 2);
		lua_proxy_write_config(L, p, 1);
	}
	lua_proxy_spawn(L, p);
	return lua_proxy_wait(L, p, UNTIL_LISTENING, secs, 0);
}

static int
lua_proxy_signal_wait(lua_State *L, int sig)
{
	struct lua_proxy *p = lua_proxy_check(L, 1);

	return lua_child_stop(L, &p->c, sig, luaL_optnumber(L, 2,
	    LUA_PROXY_STOP_WAIT), lua_proxy_ready, UNTIL_EXITED,
	    sig == SIGKILL ? "proxy:kill" : "proxy:stop");
}

static const struct {
	const char	*name;
	int		 sig;
	int		 ends;		/* the proxy is expected to exit */
} lua_proxy_signals[] = {
	{ "TERM", SIGTERM, 1 }, { "INT", SIGINT, 1 }, { "KILL", SIGKILL, 1 },
	{ "QUIT", SIGQUIT, 1 }, { "HUP", SIGHUP, 0 }, { "USR1", SIGUSR1, 0 },
	{ "USR2", SIGUSR2, 0 }, { "STOP", SIGSTOP, 0 }, { "CONT", SIGCONT, 0 },
};

/*
 * p:signal(name): send "TERM", "HUP", ... and return at once. After TERM,
 * INT, QUIT or KILL the exit is expected (p:wait_exit() waits for it).
 */
static int
lua_proxy_signal(lua_State *L)
{
	struct lua_proxy *p = lua_proxy_check(L, 1);
	const char *name = luaL_checkstring(L, 2);
	size_t i;

	if (strncmp(name, "SIG", 3) == 0)
		name += 3;
	for (i = 0; i < sizeof(lua_proxy_signals) /
	    sizeof(lua_proxy_signals[0]); i++)
		if (strcmp(name, lua_proxy_signals[i].name) == 0)
			break;
	if (i == sizeof(lua_proxy_signals) / sizeof(lua_proxy_signals[0]))
		return luaL_error(L, "proxy:signal: unknown signal '%s'", name);
	if (p->c.proc == NULL)
		return luaL_error(L, "proxy %s is not running", p->c.name);
	if (lua_proxy_signals[i].ends)
		p->c.state = CHILD_STOPPING;
	proc_signal(p->c.proc, lua_proxy_signals[i].sig);
	return 0;
}

/* p:wait_exit([seconds]): the exit code (128 + signal) once it has exited. */
static int
lua_proxy_wait_exit(lua_State *L)
{
	struct lua_proxy *p = lua_proxy_check(L, 1);

	runner_check_wait(L, "proxy:wait_exit");
	return lua_proxy_wait(L, p, UNTIL_EXITED, luaL_optnumber(L, 2,
	    LUA_PROXY_STOP_WAIT), 0);
}

/* p:stop([seconds]): SIGTERM, wait for the exit; returns the exit code. */
static int
lua_proxy_stop(lua_State *L)
{
	return lua_proxy_signal_wait(L, SIGTERM);
}

/* p:kill(): SIGKILL, as a crash would; waits for the exit. */
static int
lua_proxy_kill(lua_State *L)
{
	return lua_proxy_signal_wait(L, SIGKILL);
}

/*
 * p:reload(opts [, seconds]): apply opts (the configuration options of
 * t:proxy) to the configuration, rewrite it, SIGHUP; returns true and the
 * log line for status=ok, false and the line for status=refused.
 */
static int
lua_proxy_reload(lua_State *L)
{
	struct lua_proxy *p = lua_proxy_check(L, 1);
	double secs = luaL_optnumber(L, 3, LUA_SIM_WAIT_DEFAULT);
	size_t from;

	runner_check_wait(L, "proxy:reload");
	if (lua_isnoneornil(L, 2))
		lua_newtable(L), lua_replace(L, 2);
	lua_sim_check_opts(L, 2, "proxy:reload", lua_proxy_cfg_keys);
	if (p->c.state != CHILD_RUNNING)
		return luaL_error(L, "proxy %s is %s", p->c.name,
		    lua_child_states[p->c.state]);
	lua_getiuservalue(L, 1, 1);
	lua_getfield(L, -1, "cfg");
	lua_proxy_apply(L, p, -1, 2, "proxy:reload");
	lua_settop(L, 2);
	lua_proxy_write_config(L, p, 1);
	lua_proxy_set_fields(L, p, 1);
	from = p->c.nlines;
	proc_signal(p->c.proc, SIGHUP);
	return lua_proxy_wait(L, p, UNTIL_RELOADED, secs, from);
}

/*
 * Push the incident log as a list of decoded records (protected: a bad
 * line becomes an error string). Returns LUA_OK or an error status.
 */
static int
lua_proxy_read_incidents_p(lua_State *L)
{
	const char *path = lua_touserdata(L, 1);
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	lua_Integer k = 0;
	FILE *fp;

	lua_newtable(L);
	if ((fp = fopen(path, "r")) == NULL)
		return 1;	/* none yet */
	while ((n = getline(&line, &cap, fp)) > 0) {
		while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
			n--;
		if (n == 0)
			continue;
		lua_pushcfunction(L, lua_json_decode);
		lua_pushlstring(L, line, (size_t)n);
		lua_call(L, 1, 2);
		if (lua_isnil(L, -2)) {
			free(line);
			fclose(fp);
			return luaL_error(L, "%s: line %d: %s", path, (int)k + 1,
			    lua_tostring(L, -1));
		}
		lua_pop(L, 1);
		lua_rawseti(L, -2, ++k);
	}
	free(line);
	fclose(fp);
	return 1;
}

static int
lua_proxy_incidents(lua_State *L)
{
	struct lua_proxy *p = lua_proxy_check(L, 1);

	lua_pushcfunction(L, lua_proxy_read_incidents_p);
	lua_pushlightuserdata(L, p->incidents);
	lua_call(L, 1, 1);
	return 1;
}

struct lua_proxy_incwait {
	struct lua_proxy	*p;
	size_t			 n;
};

static int
lua_proxy_inc_ready(lua_State *co, void *arg, int expired)
{
	struct lua_proxy_incwait *w = arg;
	lua_State *L = runner_lua();
	int top = lua_gettop(L);
	size_t have;

	lua_pushcfunction(L, lua_proxy_read_incidents_p);
	lua_pushlightuserdata(L, w->p->incidents);
	if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
		lua_xmove(L, co, 1);
		lua_settop(L, top);
		return RUNNER_RAISE;
	}
	have = lua_rawlen(L, -1);
	if (have >= w->n) {
		lua_xmove(L, co, 1);
		lua_settop(L, top);
		return 1;
	}
	lua_settop(L, top);
	if (!expired)
		return RUNNER_NOT_YET;
	lua_pushnil(co);
	lua_pushfstring(co, "timeout: proxy %s recorded %d of %d incidents",
	    w->p->c.name, (int)have, (int)w->n);
	return 2;
}

/* p:wait_incidents(n [, seconds]): the incident records once there are n. */
static int
lua_proxy_wait_incidents(lua_State *L)
{
	struct lua_proxy *p = lua_proxy_check(L, 1);
	lua_Integer n = luaL_optinteger(L, 2, 1);
	struct lua_proxy_incwait *iw;
	struct runner_wait w;
	char what[120];

	runner_check_wait(L, "proxy:wait_incidents");
	if ((iw = calloc(1, sizeof(*iw))) == NULL)
		return luaL_error(L, "out of memory");
	iw->p = p;
	iw->n = n < 0 ? 0 : (size_t)n;
	memset(&w, 0, sizeof(w));
	w.ready = lua_proxy_inc_ready;
	w.arg = iw;
	w.free_arg = free;
	w.seconds = luaL_optnumber(L, 3, LUA_SIM_WAIT_DEFAULT);
	snprintf(what, sizeof(what), "proxy %s to record %d incident%s",
	    p->c.name, (int)n, n == 1 ? "" : "s");
	w.what = what;
	lua_settop(L, 1);
	return runner_wait(L, &w);
}

static const luaL_Reg lua_proxy_methods[] = {
	{ "start",		lua_proxy_start },
	{ "stop",		lua_proxy_stop },
	{ "kill",		lua_proxy_kill },
	{ "reload",		lua_proxy_reload },
	{ "signal",		lua_proxy_signal },
	{ "wait_exit",		lua_proxy_wait_exit },
	{ "incidents",		lua_proxy_incidents },
	{ "wait_incidents",	lua_proxy_wait_incidents },
	{ NULL,			NULL }
};

static const char *const lua_proxy_shared[] = { "running", "log",
    "log_count", "mark", "wait_log", NULL };

static int
lua_proxy_index(lua_State *L)
{
	static const char *const unset[] = { "pass_header", "helo_name",
	    "addr", "port", NULL };
	struct lua_proxy *p = luaL_checkudata(L, 1, LUA_PROXY_MT);

	return lua_child_index(L, &p->c, p->pid, unset);
}

static int
lua_proxy_tostring(lua_State *L)
{
	struct lua_proxy *p = luaL_checkudata(L, 1, LUA_PROXY_MT);

	lua_pushfstring(L, "proxy %s (%s, %s)", p->c.name, p->addr,
	    lua_child_states[p->c.state]);
	return 1;
}

void
lua_proxy_register(lua_State *L)
{
	lua_child_metatable(L, LUA_PROXY_MT, lua_proxy_methods,
	    lua_proxy_shared, lua_proxy_index, lua_proxy_gc, lua_proxy_tostring);
}
