/*
 * lua_dns: t:dns{}, mta-sim's authoritative DNS server (dns_server.h) in
 * the runner's process, for scenarios that find hosts by MX: the proxy
 * (next_hop.mx_lookup, dns_servers) and the integrated MTA (proxy_mx,
 * dns) are pointed at dns.addr, and nothing asks the real DNS.
 *
 *   local dns = t:dns{ zone = { "corp.example 60 MX 10 p1.corp.example",
 *                               "p1.corp.example 60 A 127.0.0.5" },
 *                      faults = { ["corp.example/MX"] = "servfail" } }
 *   dns:set(zone)                  replace every record
 *   dns:fault("corp.example/MX", "drop")    or dns:fault{ [target] = spec }
 *   dns:clear()                    remove every fault set here
 *   dns:queries()                  queries received so far
 *
 * A zone is zone-file text (docs/dns-sim.md), or a list of its lines. A
 * mistake raises with the line, and the records stay as they were. The
 * object is a handle, like a sink's: the server is freed at teardown.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

#include "buf.h"
#include "dns_server.h"
#include "lua_sim.h"
#include "runner.h"

#define LUA_DNS_MT	"sim.dns"

struct lua_dns {
	struct dnssrv	*d;
	unsigned long	 gen;
	char		 name[64];
};

static struct lua_dns *
lua_dns_check(lua_State *L, int idx)
{
	struct lua_dns *d = luaL_checkudata(L, idx, LUA_DNS_MT);

	runner_check_gen(L, d->gen, "this DNS server");
	if (d->d == NULL)
		luaL_error(L, "DNS server %s is gone", d->name);
	return d;
}

static void
lua_dns_cleanup(void *arg)
{
	struct lua_dns *d = arg;

	if (d->d != NULL) {
		dnssrv_free(d->d);
		d->d = NULL;
	}
}

static int
lua_dns_gc(lua_State *L)
{
	lua_dns_cleanup(luaL_checkudata(L, 1, LUA_DNS_MT));
	return 0;
}

/*
 * The zone at idx (a string, or a list of lines) as one text, pushed; its
 * length in *len. Raises with fname on anything else.
 */
static const char *
lua_dns_zone(lua_State *L, int idx, size_t *len, const char *fname)
{
	struct buf *b;
	size_t i, n;

	idx = lua_absindex(L, idx);
	if (lua_type(L, idx) == LUA_TSTRING) {
		lua_pushvalue(L, idx);
		return lua_tolstring(L, -1, len);
	}
	if (lua_type(L, idx) != LUA_TTABLE)
		luaL_error(L, "%s: a zone is text or a list of lines, not %s",
		    fname, luaL_typename(L, idx));
	b = lua_sim_buf(L);
	n = lua_rawlen(L, idx);
	for (i = 1; i <= n; i++) {
		if (lua_rawgeti(L, idx, (lua_Integer)i) != LUA_TSTRING)
			luaL_error(L, "%s: zone line %d is not a string", fname,
			    (int)i);
		if (buf_appendf(b, "%s\n", lua_tostring(L, -1)) == -1)
			luaL_error(L, "out of memory");
		lua_pop(L, 1);
	}
	lua_pushlstring(L, b->data != NULL ? b->data : "", b->len);
	lua_remove(L, -2);	/* the buf */
	return lua_tolstring(L, -1, len);
}

static void
lua_dns_set_records(lua_State *L, struct lua_dns *d, int idx,
    const char *fname)
{
	const char *zone;
	char err[256];
	size_t len;

	zone = lua_dns_zone(L, idx, &len, fname);
	if (dnssrv_set_records(d->d, zone, len, err, sizeof(err)) == -1)
		luaL_error(L, "%s: zone %s", fname, err);
	lua_pop(L, 1);
}

static void
lua_dns_set_fault(lua_State *L, struct lua_dns *d, const char *target,
    const char *spec, const char *fname)
{
	char err[256];

	if (dnssrv_set_fault(d->d, target, spec, err, sizeof(err)) == -1)
		luaL_error(L, "%s: %s", fname, err);	/* err names the fault */
}

/* { [target] = spec, ... } at idx. */
static void
lua_dns_set_faults(lua_State *L, struct lua_dns *d, int idx,
    const char *fname)
{
	idx = lua_absindex(L, idx);
	luaL_checktype(L, idx, LUA_TTABLE);
	lua_pushnil(L);
	while (lua_next(L, idx) != 0) {
		if (lua_type(L, -2) != LUA_TSTRING ||
		    lua_type(L, -1) != LUA_TSTRING)
			luaL_error(L, "%s: faults are { [\"NAME/TYPE\"] = "
			    "\"SPEC\" }", fname);
		lua_dns_set_fault(L, d, lua_tostring(L, -2),
		    lua_tostring(L, -1), fname);
		lua_pop(L, 1);
	}
}

/* dns:set(zone): replace every record (the faults set here stay). */
static int
lua_dns_set(lua_State *L)
{
	struct lua_dns *d = lua_dns_check(L, 1);

	luaL_checkany(L, 2);
	lua_dns_set_records(L, d, 2, "dns:set");
	return 0;
}

/* dns:fault(target, spec) or dns:fault{ [target] = spec, ... } */
static int
lua_dns_fault(lua_State *L)
{
	struct lua_dns *d = lua_dns_check(L, 1);

	if (lua_type(L, 2) == LUA_TTABLE)
		lua_dns_set_faults(L, d, 2, "dns:fault");
	else
		lua_dns_set_fault(L, d, luaL_checkstring(L, 2),
		    luaL_checkstring(L, 3), "dns:fault");
	return 0;
}

/* dns:clear(): no fault set through t:dns or dns:fault is left. */
static int
lua_dns_clear(lua_State *L)
{
	dnssrv_clear_faults(lua_dns_check(L, 1)->d);
	return 0;
}

static int
lua_dns_queries(lua_State *L)
{
	lua_pushinteger(L, (lua_Integer)dnssrv_queries(lua_dns_check(L, 1)->d));
	return 1;
}

static const luaL_Reg lua_dns_methods[] = {
	{ "set",	lua_dns_set },
	{ "fault",	lua_dns_fault },
	{ "clear",	lua_dns_clear },
	{ "queries",	lua_dns_queries },
	{ NULL,		NULL }
};

static int
lua_dns_index(lua_State *L)
{
	return lua_sim_index(L, LUA_DNS_MT, "dns");
}

static int
lua_dns_tostring(lua_State *L)
{
	struct lua_dns *d = luaL_checkudata(L, 1, LUA_DNS_MT);

	lua_getiuservalue(L, 1, 1);
	lua_getfield(L, -1, "addr");
	lua_pushfstring(L, "dns %s (%s)", d->name, lua_isstring(L, -1) ?
	    lua_tostring(L, -1) : "?");
	return 1;
}

/*
 * The metatable, made the first time t:dns is called (lua_sim.c registers
 * the classes it knows; this one registers itself, as t:pki does).
 */
static void
lua_dns_metatable(lua_State *L)
{
	if (!luaL_newmetatable(L, LUA_DNS_MT)) {
		lua_pop(L, 1);
		return;
	}
	luaL_newlib(L, lua_dns_methods);
	lua_setfield(L, -2, "methods");
	lua_pushcfunction(L, lua_dns_index);
	lua_setfield(L, -2, "__index");
	lua_pushcfunction(L, lua_dns_gc);
	lua_setfield(L, -2, "__gc");
	lua_pushcfunction(L, lua_dns_tostring);
	lua_setfield(L, -2, "__tostring");
	lua_pushliteral(L, "sim.dns");
	lua_setfield(L, -2, "__metatable");
	lua_pop(L, 1);
}

/* t:dns{ name=, ip=, port=, zone=, faults= } */
int
lua_dns_new(lua_State *L)
{
	static const char *const keys[] = { "name", "ip", "port", "zone",
	    "faults", NULL };
	static unsigned long counted_gen;
	static unsigned count;
	struct dnssrv_opts o;
	struct lua_dns *d;
	char ip[64], listen[96], err[256], defname[32];
	const char *ipopt, *name;
	int port, obj;

	lua_test_arg(L);
	lua_dns_metatable(L);
	if (lua_isnoneornil(L, 2))
		lua_newtable(L), lua_replace(L, 2);
	lua_settop(L, 2);
	luaL_checktype(L, 2, LUA_TTABLE);
	lua_sim_check_opts(L, 2, "t:dns", keys);
	if (counted_gen != runner_gen()) {
		counted_gen = runner_gen();
		count = 0;
	}
	snprintf(defname, sizeof(defname), "dns%u", ++count);
	name = lua_sim_opt_string(L, 2, "name", defname, "t:dns");
	if ((ipopt = lua_sim_opt_string(L, 2, "ip", NULL, "t:dns")) == NULL) {
		if (runner_ip(ip, sizeof(ip)) == -1)
			return luaL_error(L, "t:dns: out of loopback addresses");
		ipopt = ip;
	}
	port = (int)lua_sim_opt_number(L, 2, "port", 0, 0, 65535, "t:dns");
	snprintf(listen, sizeof(listen), "%s:%d", ipopt, port);

	d = lua_newuserdatauv(L, sizeof(*d), 1);
	memset(d, 0, sizeof(*d));
	luaL_setmetatable(L, LUA_DNS_MT);
	obj = lua_gettop(L);
	lua_newtable(L);
	lua_setiuservalue(L, obj, 1);
	d->gen = runner_gen();
	snprintf(d->name, sizeof(d->name), "%s", name);
	memset(&o, 0, sizeof(o));
	o.name = d->name;
	o.listen = listen;
	if ((d->d = dnssrv_new(runner_base(), &o, err, sizeof(err))) == NULL)
		return luaL_error(L, "t:dns %s: %s", name, err);
	runner_own(L, obj, lua_dns_cleanup, d);
	if (lua_getfield(L, 2, "zone") != LUA_TNIL)
		lua_dns_set_records(L, d, -1, "t:dns");
	lua_pop(L, 1);
	if (lua_getfield(L, 2, "faults") != LUA_TNIL)
		lua_dns_set_faults(L, d, -1, "t:dns");
	lua_pop(L, 1);
	lua_sim_fields(L, obj, d->name, dnssrv_addr(d->d));
	lua_settop(L, obj);
	return 1;
}
