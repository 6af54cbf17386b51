/*
 * lua_test: `t`, the handle a scenario's run(t) gets.
 *
 * Assertions record and carry on, like TAP: t:ok/eq/ne/contains/match
 * return whether they held, so a scenario can go on collecting evidence
 * after a first failure. t:require stops the scenario (it has no point
 * going on without that value); t:skip stops it without failing.
 * Failures carry the scenario file's line (luaL_where).
 *
 * t also makes the roles (t:sink, t:mta, t:proxy, t:external), sends
 * (t:send, t:send_all), hands out loopback addresses (t:ip) and offers the
 * generic wait, t:wait_until(fn, seconds).
 */
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

#include "buf.h"
#include "lua_sim.h"
#include "runner.h"

#define LUA_TEST_MT	"sim.test"

struct lua_test {
	unsigned long	gen;
};

static struct lua_test *
lua_test_check(lua_State *L)
{
	struct lua_test *t = luaL_checkudata(L, 1, LUA_TEST_MT);

	runner_check_gen(L, t->gen, "t");
	return t;
}

void
lua_test_arg(lua_State *L)
{
	lua_test_check(L);
}

/* "file.lua:12: " + msg (+ ": " + detail) as a failure. */
static void
lua_test_failure(lua_State *L, const char *msg, const char *detail)
{
	const char *where;

	luaL_where(L, 1);
	where = lua_tostring(L, -1);
	if (detail != NULL && msg != NULL)
		runner_fail("%s%s: %s", where, msg, detail);
	else if (detail != NULL)
		runner_fail("%s%s", where, detail);
	else
		runner_fail("%s%s", where, msg != NULL ? msg : "assertion failed");
	lua_pop(L, 1);
}

/* The message argument at idx (any value; nil means none). */
static const char *
lua_test_msg(lua_State *L, int idx)
{
	if (lua_isnoneornil(L, idx))
		return NULL;
	return luaL_tolstring(L, idx, NULL);	/* left on the stack */
}

static int
lua_test_ip(lua_State *L)
{
	char ip[64];

	lua_test_check(L);
	if (runner_ip(ip, sizeof(ip)) == -1)
		return luaL_error(L, "t:ip: this scenario has used all its "
		    "loopback addresses");
	lua_pushstring(L, ip);
	return 1;
}

static int
lua_test_ok(lua_State *L)
{
	int ok;

	lua_test_check(L);
	luaL_checkany(L, 2);
	ok = lua_toboolean(L, 2);
	if (!ok)
		lua_test_failure(L, lua_test_msg(L, 3), NULL);
	lua_pushboolean(L, ok);
	return 1;
}

/*
 * ==, except that two plain tables (no metatable) are equal when their
 * keys and values are: t:eq(m.rcpts, {"a@x", "b@y"}) is what one means.
 */
static int
lua_test_equal(lua_State *L, int a, int b, int depth)
{
	int eq = 1;

	a = lua_absindex(L, a);
	b = lua_absindex(L, b);
	if (lua_type(L, a) != LUA_TTABLE || lua_type(L, b) != LUA_TTABLE ||
	    depth > 20)
		return lua_compare(L, a, b, LUA_OPEQ);
	if (lua_rawequal(L, a, b))
		return 1;
	if (lua_getmetatable(L, a)) {
		lua_pop(L, 1);
		return 0;
	}
	if (lua_getmetatable(L, b)) {
		lua_pop(L, 1);
		return 0;
	}
	lua_pushnil(L);
	while (eq && lua_next(L, a) != 0) {
		lua_pushvalue(L, -2);
		lua_rawget(L, b);
		eq = lua_test_equal(L, -1, -2, depth + 1);
		lua_pop(L, 2);
	}
	if (!eq) {
		lua_pop(L, 1);	/* the key lua_next left */
		return 0;
	}
	/* Every key of a is in b with the same value; and b has no more? */
	lua_pushnil(L);
	while (lua_next(L, b) != 0) {
		lua_pop(L, 1);
		lua_pushvalue(L, -1);
		if (lua_rawget(L, a) == LUA_TNIL) {
			lua_pop(L, 2);
			return 0;
		}
		lua_pop(L, 1);
	}
	return 1;
}

static int
lua_test_compare(lua_State *L, int want_equal)
{
	struct buf *b;
	int eq;

	lua_test_check(L);
	luaL_checkany(L, 2);
	luaL_checkany(L, 3);
	lua_settop(L, 4);
	eq = lua_test_equal(L, 2, 3, 0);
	if (eq != want_equal) {
		b = lua_sim_buf(L);
		buf_appends(b, "got ");
		lua_sim_repr(L, 2, b);
		if (want_equal) {
			buf_appends(b, ", want ");
			lua_sim_repr(L, 3, b);
		} else
			buf_appends(b, ", which it should not be");
		lua_test_failure(L, lua_test_msg(L, 4), buf_cstr(b));
	}
	lua_pushboolean(L, eq == want_equal);
	return 1;
}

/* t:eq(actual, expected, msg) */
static int
lua_test_eq(lua_State *L)
{
	return lua_test_compare(L, 1);
}

static int
lua_test_ne(lua_State *L)
{
	return lua_test_compare(L, 0);
}

/* Does the value at idx (a string, a message, a list) contain sub? */
static int
lua_test_has(lua_State *L, int idx, const char *sub, size_t sublen)
{
	const char *s;
	size_t len, i, n;
	int found = 0;

	if (lua_type(L, idx) == LUA_TTABLE && luaL_getmetafield(L, idx,
	    "__tostring") == LUA_TNIL) {
		n = lua_rawlen(L, idx);
		for (i = 1; i <= n && !found; i++) {
			lua_rawgeti(L, idx, (lua_Integer)i);
			if (lua_type(L, -1) == LUA_TSTRING) {
				s = lua_tolstring(L, -1, &len);
				found = len == sublen && memcmp(s, sub, len) == 0;
				if (!found)
					found = memmem(s, len, sub, sublen) != NULL;
			}
			lua_pop(L, 1);
		}
		return found;
	}
	if (lua_type(L, idx) == LUA_TTABLE)
		lua_pop(L, 1);	/* the __tostring */
	if (lua_type(L, idx) == LUA_TUSERDATA) {
		/* A message: its content. */
		if (lua_getfield(L, idx, "content") == LUA_TSTRING) {
			s = lua_tolstring(L, -1, &len);
			found = memmem(s, len, sub, sublen) != NULL;
		}
		lua_pop(L, 1);
		return found;
	}
	if (lua_type(L, idx) != LUA_TSTRING)
		return 0;
	s = lua_tolstring(L, idx, &len);
	return sublen == 0 || memmem(s, len, sub, sublen) != NULL;
}

/* t:contains(haystack, needle, msg): plain text, not a pattern. */
static int
lua_test_contains(lua_State *L)
{
	struct buf *b;
	const char *sub;
	size_t sublen;
	int ok;

	lua_test_check(L);
	luaL_checkany(L, 2);
	sub = luaL_checklstring(L, 3, &sublen);
	lua_settop(L, 4);
	ok = lua_test_has(L, 2, sub, sublen);
	if (!ok) {
		b = lua_sim_buf(L);
		lua_sim_repr(L, 2, b);
		buf_appends(b, " does not contain ");
		lua_sim_repr(L, 3, b);
		lua_test_failure(L, lua_test_msg(L, 4), buf_cstr(b));
	}
	lua_pushboolean(L, ok);
	return 1;
}

/* t:match(s, pattern, msg): a Lua pattern; returns the captures or false. */
static int
lua_test_match(lua_State *L)
{
	struct buf *b;
	int n, top;

	lua_test_check(L);
	luaL_checkany(L, 2);
	luaL_checkstring(L, 3);
	lua_settop(L, 4);
	top = lua_gettop(L);
	if (lua_type(L, 2) == LUA_TSTRING) {
		lua_getglobal(L, "string");
		lua_getfield(L, -1, "match");
		lua_remove(L, -2);
		lua_pushvalue(L, 2);
		lua_pushvalue(L, 3);
		lua_call(L, 2, LUA_MULTRET);
		n = lua_gettop(L) - top;
		if (n > 0 && !lua_isnil(L, top + 1))
			return n;
		lua_settop(L, top);
	}
	b = lua_sim_buf(L);
	lua_sim_repr(L, 2, b);
	buf_appends(b, " does not match ");
	lua_sim_repr(L, 3, b);
	lua_test_failure(L, lua_test_msg(L, 4), buf_cstr(b));
	lua_pushboolean(L, 0);
	return 1;
}

static int
lua_test_fail(lua_State *L)
{
	lua_test_check(L);
	lua_test_failure(L, lua_test_msg(L, 2), NULL);
	return 0;
}

static int
lua_test_finding(lua_State *L)
{
	lua_test_check(L);
	runner_finding("%s", luaL_checkstring(L, 2));
	return 0;
}

static int
lua_test_note(lua_State *L)
{
	lua_test_check(L);
	runner_note("%s", luaL_tolstring(L, 2, NULL));
	return 0;
}

/* t:require(v, msg, ...): v and the rest if v is true; else stop here. */
static int
lua_test_require(lua_State *L)
{
	lua_test_check(L);
	luaL_checkany(L, 2);
	if (lua_toboolean(L, 2))
		return lua_gettop(L) - 1;
	lua_test_failure(L, lua_test_msg(L, 3), NULL);
	runner_push_abort(L);
	return lua_error(L);
}

static int
lua_test_skip(lua_State *L)
{
	lua_test_check(L);
	runner_set_skip(luaL_optstring(L, 2, "skipped"));
	runner_push_abort(L);
	return lua_error(L);
}

static int
lua_test_elapsed(lua_State *L)
{
	lua_test_check(L);
	lua_pushnumber(L, runner_now());
	return 1;
}

/* ---- t:wait_until(fn, seconds, what) ------------------------------------- */

struct lua_test_pred {
	int	ref;
};

static void
lua_test_pred_free(void *arg)
{
	struct lua_test_pred *p = arg;

	luaL_unref(runner_lua(), LUA_REGISTRYINDEX, p->ref);
	free(p);
}

static int
lua_test_pred_ready(lua_State *co, void *arg, int expired)
{
	struct lua_test_pred *p = arg;
	lua_State *L = runner_lua();
	int top = lua_gettop(L), n, i;

	lua_rawgeti(L, LUA_REGISTRYINDEX, p->ref);
	if (lua_pcall(L, 0, LUA_MULTRET, 0) != LUA_OK) {
		lua_xmove(L, co, 1);
		lua_settop(L, top);
		return RUNNER_RAISE;
	}
	n = lua_gettop(L) - top;
	if (n == 0 || !lua_toboolean(L, top + 1)) {
		lua_settop(L, top);
		return RUNNER_NOT_YET;
	}
	for (i = 0; i < n; i++)
		lua_pushvalue(L, top + 1 + i);
	lua_xmove(L, co, n);
	lua_settop(L, top);
	return n;
}

/*
 * t:wait_until(fn, seconds, what): call fn (no arguments, no waiting
 * inside) whenever something happens until it returns a true value; that
 * call's results are returned. At the deadline: nil and "timeout: what".
 */
static int
lua_test_wait_until(lua_State *L)
{
	struct runner_wait w;
	struct lua_test_pred *p;

	lua_test_check(L);
	luaL_checktype(L, 2, LUA_TFUNCTION);
	runner_check_wait(L, "t:wait_until");
	if ((p = malloc(sizeof(*p))) == NULL)
		return luaL_error(L, "out of memory");
	lua_pushvalue(L, 2);
	p->ref = luaL_ref(L, LUA_REGISTRYINDEX);
	memset(&w, 0, sizeof(w));
	w.ready = lua_test_pred_ready;
	w.arg = p;
	w.free_arg = lua_test_pred_free;
	w.seconds = luaL_optnumber(L, 3, LUA_SIM_WAIT_DEFAULT);
	w.what = luaL_optstring(L, 4, "t:wait_until condition");
	lua_settop(L, 1);
	return runner_wait(L, &w);
}

/* ---- t:external{ host=, port= } or { addr = "host:port" } ----------------- */

static int
lua_test_external(lua_State *L)
{
	static const char *const keys[] = { "name", "host", "port", "addr",
	    "helo_name", "pass_header", NULL };
	const char *host, *addr, *name, *colon, *helo, *pass;
	double port;

	lua_test_check(L);
	luaL_checktype(L, 2, LUA_TTABLE);
	lua_sim_check_opts(L, 2, "t:external", keys);
	name = lua_sim_opt_string(L, 2, "name", "external", "t:external");
	addr = lua_sim_opt_string(L, 2, "addr", NULL, "t:external");
	host = lua_sim_opt_string(L, 2, "host", NULL, "t:external");
	port = lua_sim_opt_number(L, 2, "port", 0, 1, 65535, "t:external");
	helo = lua_sim_opt_string(L, 2, "helo_name", NULL, "t:external");
	pass = lua_sim_opt_string(L, 2, "pass_header", NULL, "t:external");
	lua_newtable(L);
	if (addr != NULL) {
		if (host != NULL || port != 0)
			return luaL_error(L, "t:external: give addr, or host "
			    "and port, not both");
		if ((colon = strrchr(addr, ':')) == NULL || colon == addr ||
		    colon[1] == '\0')
			return luaL_error(L, "t:external: addr must be "
			    "host:port, not '%s'", addr);
		lua_pushlstring(L, addr, (size_t)(colon - addr));
		lua_setfield(L, -2, "host");
		lua_pushinteger(L, strtol(colon + 1, NULL, 10));
		lua_setfield(L, -2, "port");
		lua_pushstring(L, addr);
	} else {
		if (host == NULL || *host == '\0' || port == 0)
			return luaL_error(L, "t:external: host and port are "
			    "required");
		lua_pushstring(L, host);
		lua_setfield(L, -2, "host");
		lua_pushinteger(L, (lua_Integer)port);
		lua_setfield(L, -2, "port");
		if (strchr(host, ':') != NULL)
			lua_pushfstring(L, "[%s]:%d", host, (int)port);
		else
			lua_pushfstring(L, "%s:%d", host, (int)port);
	}
	lua_setfield(L, -2, "addr");
	lua_getfield(L, -1, "host");
	lua_setfield(L, -2, "ip");
	lua_pushstring(L, name);
	lua_setfield(L, -2, "name");
	if (helo != NULL) {
		lua_pushstring(L, helo);
		lua_setfield(L, -2, "helo_name");
	}
	if (pass != NULL) {
		lua_pushstring(L, pass);
		lua_setfield(L, -2, "pass_header");
	}
	lua_pushboolean(L, 1);
	lua_setfield(L, -2, "external");
	return 1;
}

/* ---- fields ---------------------------------------------------------------- */

static int
lua_test_index(lua_State *L)
{
	const struct runner_def *d;
	const char *k;

	lua_test_check(L);
	k = luaL_checkstring(L, 2);
	if (luaL_getmetafield(L, 1, "methods") != LUA_TNIL) {
		if (lua_getfield(L, -1, k) != LUA_TNIL)
			return 1;
		lua_pop(L, 2);
	}
	d = runner_def();
	if (strcmp(k, "name") == 0)
		lua_pushstring(L, d->name);
	else if (strcmp(k, "check") == 0)
		lua_pushstring(L, d->check);
	else if (strcmp(k, "architecture") == 0) {
		if (*d->arch == '\0')
			lua_pushnil(L);
		else
			lua_pushstring(L, d->arch);
	} else if (strcmp(k, "dir") == 0)
		lua_pushstring(L, runner_dir());
	else if (strcmp(k, "client_ip") == 0) {
		/* The address t:send uses by default: one per scenario. */
		lua_getiuservalue(L, 1, 1);
		if (lua_getfield(L, -1, "client_ip") == LUA_TNIL) {
			char ip[64];

			lua_pop(L, 1);
			if (runner_ip(ip, sizeof(ip)) == -1)
				return luaL_error(L, "t: out of loopback "
				    "addresses");
			lua_pushstring(L, ip);
			lua_pushvalue(L, -1);
			lua_setfield(L, -3, "client_ip");
		}
	} else
		return luaL_error(L, "t has no field '%s'", k);
	return 1;
}

static const luaL_Reg lua_test_methods[] = {
	{ "ip",		lua_test_ip },
	{ "ok",		lua_test_ok },
	{ "eq",		lua_test_eq },
	{ "ne",		lua_test_ne },
	{ "contains",	lua_test_contains },
	{ "match",	lua_test_match },
	{ "fail",	lua_test_fail },
	{ "finding",	lua_test_finding },
	{ "note",	lua_test_note },
	{ "require",	lua_test_require },
	{ "skip",	lua_test_skip },
	{ "elapsed",	lua_test_elapsed },
	{ "wait_until",	lua_test_wait_until },
	{ "external",	lua_test_external },
	{ "sink",	lua_sink_new },
	{ "mta",	lua_mta_new },
	{ "proxy",	lua_proxy_new },
	{ "send",	lua_result_send },
	{ "send_all",	lua_result_send_all },
	{ "pki",	lua_pki_new },		/* lua_pki.c */
	{ "dns",	lua_dns_new },		/* lua_dns.c */
	{ "haproxy",	lua_haproxy_new },	/* lua_haproxy.c */
	{ NULL,		NULL }
};

static int
lua_test_tostring(lua_State *L)
{
	lua_pushfstring(L, "t (%s)", runner_def()->name);
	return 1;
}

void
lua_test_register(lua_State *L)
{
	luaL_newmetatable(L, LUA_TEST_MT);
	luaL_newlib(L, lua_test_methods);
	lua_setfield(L, -2, "methods");
	lua_pushcfunction(L, lua_test_index);
	lua_setfield(L, -2, "__index");
	lua_pushcfunction(L, lua_test_tostring);
	lua_setfield(L, -2, "__tostring");
	lua_pushliteral(L, "sim.test");
	lua_setfield(L, -2, "__metatable");
	lua_pop(L, 1);
}

void
lua_test_push(lua_State *L)
{
	struct lua_test *t = lua_newuserdatauv(L, sizeof(*t), 1);

	t->gen = runner_gen();
	lua_newtable(L);
	lua_setiuservalue(L, -2, 1);
	luaL_setmetatable(L, LUA_TEST_MT);
}
