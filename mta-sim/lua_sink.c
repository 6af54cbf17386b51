/*
 * lua_sink: t:sink{}, a recording SMTP server (roles.h sim_sink) playing
 * a downstream MTA, an encryption hop, a bypass host or a mailbox host.
 *
 * The object is a handle: the sink itself is freed at teardown and every
 * method checks it is still there. Its static fields (name, addr, ip,
 * port) live in the user value table, so the strings stay put while the
 * object does.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

#include "lua_sim.h"
#include "roles.h"
#include "runner.h"

#define LUA_SINK_MT	"sim.sink"

struct lua_sink {
	struct sim_sink	*sk;
	unsigned long	 gen;
	char		 name[64];
};

static struct lua_sink *
lua_sink_check(lua_State *L, int idx)
{
	struct lua_sink *s = luaL_checkudata(L, idx, LUA_SINK_MT);

	runner_check_gen(L, s->gen, "this sink");
	if (s->sk == NULL)
		luaL_error(L, "sink %s is gone", s->name);
	return s;
}

static void
lua_sink_on_message(void *arg, const struct sim_msg *m)
{
	runner_poke();
}

static void
lua_sink_cleanup(void *arg)
{
	struct lua_sink *s = arg;

	if (s->sk != NULL) {
		sim_sink_free(s->sk);
		s->sk = NULL;
	}
}

static int
lua_sink_gc(lua_State *L)
{
	lua_sink_cleanup(luaL_checkudata(L, 1, LUA_SINK_MT));
	return 0;
}

/*
 * tls = { cert=, key=, required=, inject= }: offer STARTTLS with this PEM
 * chain and (unencrypted) key. The strings stay in the option table.
 */
static void
lua_sink_tls(lua_State *L, int opts, struct sim_sink_opts *o)
{
	static const char *const keys[] = { "cert", "key", "required",
	    "inject", NULL };
	int t;

	t = lua_getfield(L, opts, "tls");
	if (t != LUA_TNIL && t != LUA_TTABLE)
		luaL_error(L, "t:sink: tls must be a table { cert=, key=, "
		    "required=, inject= }");
	if (t == LUA_TTABLE) {
		lua_sim_check_opts(L, -1, "t:sink tls", keys);
		o->tls_cert = lua_sim_opt_string(L, -1, "cert", NULL,
		    "t:sink tls");
		o->tls_key = lua_sim_opt_string(L, -1, "key", NULL,
		    "t:sink tls");
		o->tls_required = lua_sim_opt_bool(L, -1, "required", 0,
		    "t:sink tls");
		o->tls_inject = lua_sim_opt_string(L, -1, "inject", NULL,
		    "t:sink tls");
		if (o->tls_cert == NULL || o->tls_key == NULL)
			luaL_error(L, "t:sink: tls needs cert and key");
	}
	lua_pop(L, 1);
}

/*
 * t:sink{ name=, ip=, port=, rules={"WHEN=ACTION", ...}, no_ext={...},
 *         no_ehlo=, greeting=, max_size=, dir=,
 *         tls={ cert=, key=, required=, inject= } }
 */
int
lua_sink_new(lua_State *L)
{
	static const char *const keys[] = { "name", "ip", "port", "rules",
	    "no_ext", "no_ehlo", "greeting", "max_size", "dir", "tls", NULL };
	static unsigned long counted_gen;
	static unsigned count;
	struct sim_sink_opts o;
	struct lua_sink *s;
	char ip[64], listen[96], err[256], defname[32];
	const char *ipopt;
	int port, obj;

	lua_test_arg(L);
	if (lua_isnoneornil(L, 2))
		lua_newtable(L), lua_replace(L, 2);
	lua_settop(L, 2);
	lua_sim_check_opts(L, 2, "t:sink", keys);
	if (counted_gen != runner_gen()) {
		counted_gen = runner_gen();
		count = 0;
	}
	snprintf(defname, sizeof(defname), "sink%u", ++count);
	memset(&o, 0, sizeof(o));
	o.name = lua_sim_opt_string(L, 2, "name", defname, "t:sink");
	ipopt = lua_sim_opt_string(L, 2, "ip", NULL, "t:sink");
	if (ipopt == NULL) {
		if (runner_ip(ip, sizeof(ip)) == -1)
			return luaL_error(L, "t:sink: out of loopback addresses");
		ipopt = ip;
	}
	port = (int)lua_sim_opt_number(L, 2, "port", 0, 0, 65535, "t:sink");
	snprintf(listen, sizeof(listen), "%s:%d", ipopt, port);
	o.listen = listen;
	o.rules = lua_sim_opt_strings(L, 2, "rules", 0, &o.nrules, "t:sink");
	o.no_ext = lua_sim_opt_strings(L, 2, "no_ext", 0, &o.nno_ext, "t:sink");
	o.no_ehlo = lua_sim_opt_bool(L, 2, "no_ehlo", 0, "t:sink");
	o.greeting = lua_sim_opt_string(L, 2, "greeting", NULL, "t:sink");
	o.max_size = (uint64_t)lua_sim_opt_number(L, 2, "max_size", 0, 0,
	    4294967296.0, "t:sink");
	o.dir = lua_sim_opt_string(L, 2, "dir", NULL, "t:sink");
	lua_sink_tls(L, 2, &o);

	s = lua_newuserdatauv(L, sizeof(*s), 1);
	memset(s, 0, sizeof(*s));
	luaL_setmetatable(L, LUA_SINK_MT);
	obj = lua_gettop(L);
	lua_newtable(L);
	lua_setiuservalue(L, obj, 1);
	s->gen = runner_gen();
	snprintf(s->name, sizeof(s->name), "%s", o.name);
	if ((s->sk = sim_sink_new(runner_base(), &o, err, sizeof(err))) == NULL)
		return luaL_error(L, "t:sink %s: %s", o.name, err);
	runner_own(L, obj, lua_sink_cleanup, s);
	sim_sink_on_message(s->sk, lua_sink_on_message, s);
	lua_sim_fields(L, obj, o.name, sim_sink_addr(s->sk));
	lua_settop(L, obj);
	return 1;
}

static int
lua_sink_count(lua_State *L)
{
	struct lua_sink *s = lua_sink_check(L, 1);

	lua_pushinteger(L, (lua_Integer)sim_sink_count(s->sk));
	return 1;
}

static int
lua_sink_sessions(lua_State *L)
{
	struct lua_sink *s = lua_sink_check(L, 1);

	lua_pushinteger(L, (lua_Integer)sim_sink_sessions(s->sk));
	return 1;
}

static void
lua_sink_push_list(lua_State *L, struct lua_sink *s)
{
	size_t i, n = sim_sink_count(s->sk);

	lua_createtable(L, (int)n, 0);
	for (i = 0; i < n; i++) {
		lua_message_push(L, sim_sink_msg(s->sk, i));
		lua_rawseti(L, -2, (lua_Integer)i + 1);
	}
}

static int
lua_sink_messages(lua_State *L)
{
	lua_sink_push_list(L, lua_sink_check(L, 1));
	return 1;
}

/* sink:message(i): the i-th accepted message (from 1), or nil. */
static int
lua_sink_message(lua_State *L)
{
	struct lua_sink *s = lua_sink_check(L, 1);
	lua_Integer i = luaL_checkinteger(L, 2);

	if (i < 1 || (size_t)i > sim_sink_count(s->sk))
		lua_pushnil(L);
	else
		lua_message_push(L, sim_sink_msg(s->sk, (size_t)i - 1));
	return 1;
}

struct lua_sink_wait {
	struct lua_sink	*s;
	size_t		 n;
};

static int
lua_sink_ready(lua_State *co, void *arg, int expired)
{
	struct lua_sink_wait *w = arg;
	lua_State *L = runner_lua();
	size_t have;

	if (w->s->sk == NULL) {
		lua_pushliteral(co, "the sink is gone");
		return RUNNER_RAISE;
	}
	have = sim_sink_count(w->s->sk);
	if (have >= w->n) {
		lua_sink_push_list(L, w->s);
		lua_xmove(L, co, 1);
		return 1;
	}
	if (!expired)
		return RUNNER_NOT_YET;
	lua_pushnil(co);
	lua_pushfstring(co, "timeout: sink %s has %d of %d messages",
	    w->s->name, (int)have, (int)w->n);
	return 2;
}

/*
 * sink:wait(n, seconds): once the sink holds at least n messages (default
 * 1), the list of all of them; at the deadline, nil and an error.
 */
static int
lua_sink_wait(lua_State *L)
{
	struct lua_sink *s = lua_sink_check(L, 1);
	lua_Integer n = luaL_optinteger(L, 2, 1);
	struct lua_sink_wait *sw;
	struct runner_wait w;
	char what[160];

	runner_check_wait(L, "sink:wait");
	if (n < 0)
		return luaL_argerror(L, 2, "a count >= 0");
	if ((sw = malloc(sizeof(*sw))) == NULL)
		return luaL_error(L, "out of memory");
	sw->s = s;
	sw->n = (size_t)n;
	memset(&w, 0, sizeof(w));
	w.ready = lua_sink_ready;
	w.arg = sw;
	w.free_arg = free;
	w.seconds = luaL_optnumber(L, 3, LUA_SIM_WAIT_DEFAULT);
	snprintf(what, sizeof(what), "sink %s to hold %d message%s", s->name,
	    (int)n, n == 1 ? "" : "s");
	w.what = what;
	return runner_wait(L, &w);
}

static const luaL_Reg lua_sink_methods[] = {
	{ "count",	lua_sink_count },
	{ "sessions",	lua_sink_sessions },
	{ "messages",	lua_sink_messages },
	{ "message",	lua_sink_message },
	{ "wait",	lua_sink_wait },
	{ NULL,		NULL }
};

static int
lua_sink_index(lua_State *L)
{
	return lua_sim_index(L, LUA_SINK_MT, "sink");
}

static int
lua_sink_tostring(lua_State *L)
{
	struct lua_sink *s = luaL_checkudata(L, 1, LUA_SINK_MT);

	lua_getiuservalue(L, 1, 1);
	lua_getfield(L, -1, "addr");
	lua_pushfstring(L, "sink %s (%s)", s->name, lua_isstring(L, -1) ?
	    lua_tostring(L, -1) : "?");
	return 1;
}

void
lua_sink_register(lua_State *L)
{
	luaL_newmetatable(L, LUA_SINK_MT);
	luaL_newlib(L, lua_sink_methods);
	lua_setfield(L, -2, "methods");
	lua_pushcfunction(L, lua_sink_index);
	lua_setfield(L, -2, "__index");
	lua_pushcfunction(L, lua_sink_gc);
	lua_setfield(L, -2, "__gc");
	lua_pushcfunction(L, lua_sink_tostring);
	lua_setfield(L, -2, "__tostring");
	lua_pushliteral(L, "sim.sink");
	lua_setfield(L, -2, "__metatable");
	lua_pop(L, 1);
}
