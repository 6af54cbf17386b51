/*
 * lua_mta: t:mta{}, the Prevent-integrated MTA (roles.h sim_mta), and its
 * event log.
 *
 * A reflecting proxy needs the MTA's ports before it can start, while
 * the MTA needs to know its proxies (their IPs for the client-IP
 * architecture, HELO names for the HELO one, the pass header for the
 * header one). So the MTA is made first, from what it knows, and
 * mta:use_proxies{} tells it the proxies later: their addresses always,
 * and, when the identities it routes by have changed, by making the MTA
 * again on the same addresses. That is only allowed while its queue is
 * empty (nothing in it could be lost); the event log is kept.
 *
 * Every event the MTA reports is kept as a table in the object's event
 * list: { type, msg, route, to, code, text, rcpts, attempt, message, time }.
 *
 * With proxy_mx the MTA finds its proxies by MX for every attempt (an
 * MX-based cluster, with bypass hosts at a lower priority); the proxies
 * given to use_proxies then only say what it recognises inspected mail by.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

#include "buf.h"
#include "lua_sim.h"
#include "roles.h"
#include "runner.h"

#define LUA_MTA_MT		"sim.mta"
#define LUA_MTA_PASS_DEFAULT	"X-Filter-Loop: Reflected"
/* Stand-ins until use_proxies: no real peer has them. */
#define LUA_MTA_NO_IP		"127.255.255.254"
#define LUA_MTA_NO_HELO		"no-proxy-yet.invalid"

static const char *const lua_mta_archs[] = {
	[SIM_ARCH_LISTENER] = "listener",
	[SIM_ARCH_CLIENT_IP] = "client_ip",
	[SIM_ARCH_HELO] = "helo",
	[SIM_ARCH_HEADER] = "header",
};

static const char *const lua_mta_types[] = {
	[SIM_MTA_RECEIVED] = "received",
	[SIM_MTA_DELIVERED] = "delivered",
	[SIM_MTA_DEFERRED] = "deferred",
	[SIM_MTA_BOUNCED] = "bounced",
	[SIM_MTA_NDR] = "ndr",
};

struct lua_mta {
	struct sim_mta	*mta;
	unsigned long	 gen;
	enum sim_arch	 arch;
	int		 events_ref;	/* the event list, in the registry */
	char		 name[64];
	char		 listen[96];
	char		 resubmit[96];
	char		*ident;		/* what it routes by, to see a change */
};

static struct lua_mta *
lua_mta_check(lua_State *L, int idx)
{
	struct lua_mta *m = luaL_checkudata(L, idx, LUA_MTA_MT);

	runner_check_gen(L, m->gen, "this MTA");
	if (m->mta == NULL)
		luaL_error(L, "MTA %s is gone", m->name);
	return m;
}

/* ---- events ------------------------------------------------------------ */

struct lua_mta_fire {
	struct lua_mta			*m;
	const struct sim_mta_event	*ev;
};

static int
lua_mta_fire_protected(lua_State *L)
{
	struct lua_mta_fire *f = lua_touserdata(L, 1);
	const struct sim_mta_event *ev = f->ev;
	size_t i;

	lua_rawgeti(L, LUA_REGISTRYINDEX, f->m->events_ref);
	lua_createtable(L, 0, 10);
	lua_pushstring(L, (unsigned)ev->type < sizeof(lua_mta_types) /
	    sizeof(lua_mta_types[0]) ? lua_mta_types[ev->type] : "unknown");
	lua_setfield(L, -2, "type");
	lua_pushinteger(L, (lua_Integer)ev->msg);
	lua_setfield(L, -2, "msg");
	if (ev->route != NULL) {
		lua_pushstring(L, ev->route);
		lua_setfield(L, -2, "route");
	}
	lua_pushinteger(L, ev->code);
	lua_setfield(L, -2, "code");
	if (ev->text != NULL) {
		lua_pushstring(L, ev->text);
		lua_setfield(L, -2, "text");
	}
	lua_createtable(L, (int)ev->nrcpts, 0);
	for (i = 0; i < ev->nrcpts; i++) {
		lua_pushstring(L, ev->rcpts[i]);
		lua_rawseti(L, -2, (lua_Integer)i + 1);
	}
	lua_setfield(L, -2, "rcpts");
	lua_pushinteger(L, ev->attempt);
	lua_setfield(L, -2, "attempt");
	if (ev->to != NULL) {
		lua_pushstring(L, ev->to);
		lua_setfield(L, -2, "to");
	}
	lua_pushnumber(L, runner_now());
	lua_setfield(L, -2, "time");
	lua_pushstring(L, f->m->name);
	lua_setfield(L, -2, "mta");
	if (ev->m != NULL) {
		lua_message_push(L, ev->m);
		lua_setfield(L, -2, "message");
	}
	lua_rawseti(L, -2, (lua_Integer)lua_rawlen(L, -2) + 1);
	return 0;
}

static void
lua_mta_on_event(void *arg, const struct sim_mta_event *ev)
{
	struct lua_mta_fire f = { arg, ev };
	lua_State *L = runner_lua();
	int top = lua_gettop(L);

	/* From the loop, outside any Lua call: protect against ENOMEM. */
	lua_pushcfunction(L, lua_mta_fire_protected);
	lua_pushlightuserdata(L, &f);
	if (lua_pcall(L, 1, 0, 0) != LUA_OK)
		runner_fail("MTA %s: cannot record an event: %s", f.m->name,
		    lua_tostring(L, -1));
	lua_settop(L, top);
	runner_poke();
}

/* ---- making it -------------------------------------------------------- */

/*
 * Field key of a proxy-ish value at idx, pushed (nil if it has none):
 * proxies have ip, helo_name and pass_header; other roles (a sink playing
 * a proxy) only an ip; externals whatever their table holds.
 */
static int
lua_mta_field(lua_State *L, int idx, const char *key)
{
	idx = lua_absindex(L, idx);
	if (lua_istable(L, idx) || luaL_testudata(L, idx, "sim.proxy") != NULL ||
	    strcmp(key, "ip") == 0)
		return lua_getfield(L, idx, key);
	lua_pushnil(L);
	return LUA_TNIL;
}

/*
 * The proxies' identities: explicit options win; otherwise from the
 * proxy objects (ip, helo_name, pass_header fields) or "ip:port" strings.
 * Pushes an anchor; *ident describes the result.
 */
static void
lua_mta_identities(lua_State *L, int opts, int proxies, struct sim_mta_opts *o,
    struct buf *ident)
{
	const char **ips, **helos;
	size_t n, i, nips = 0, nhelos = 0;
	const char *pass = NULL;
	int anchor;

	lua_newtable(L);
	anchor = lua_gettop(L);
	n = lua_rawlen(L, proxies);
	ips = lua_newuserdatauv(L, (n + 1) * sizeof(*ips), 0);
	lua_setfield(L, anchor, "ips");
	helos = lua_newuserdatauv(L, (n + 1) * sizeof(*helos), 0);
	lua_setfield(L, anchor, "helos");
	for (i = 1; i <= n; i++) {
		int t = lua_rawgeti(L, proxies, (lua_Integer)i);

		if (t == LUA_TSTRING) {
			const char *a = lua_tostring(L, -1), *c = strrchr(a, ':');

			lua_pushlstring(L, a, c != NULL ? (size_t)(c - a) :
			    strlen(a));
			ips[nips++] = lua_tostring(L, -1);
			lua_rawseti(L, anchor, (lua_Integer)(2 * i));
		} else {
			if (lua_mta_field(L, -1, "ip") == LUA_TSTRING) {
				ips[nips++] = lua_tostring(L, -1);
				lua_rawseti(L, anchor, (lua_Integer)(2 * i));
			} else
				lua_pop(L, 1);
			if (lua_mta_field(L, -1, "helo_name") == LUA_TSTRING) {
				helos[nhelos++] = lua_tostring(L, -1);
				lua_rawseti(L, anchor, (lua_Integer)(2 * i + 1));
			} else
				lua_pop(L, 1);
			if (pass == NULL &&
			    lua_mta_field(L, -1, "pass_header") == LUA_TSTRING &&
			    *lua_tostring(L, -1) != '\0') {
				pass = lua_tostring(L, -1);
				lua_setfield(L, anchor, "pass");
			} else if (pass == NULL)
				lua_pop(L, 1);
		}
		lua_pop(L, 1);
	}
	o->proxy_ips = lua_sim_opt_strings(L, opts, "proxy_ips", 0,
	    &o->nproxy_ips, "t:mta");
	lua_setfield(L, anchor, "xips");
	if (o->nproxy_ips == 0) {
		o->proxy_ips = ips;
		o->nproxy_ips = nips;
	}
	o->proxy_helos = lua_sim_opt_strings(L, opts, "proxy_helos", 0,
	    &o->nproxy_helos, "t:mta");
	lua_setfield(L, anchor, "xhelos");
	if (o->nproxy_helos == 0) {
		o->proxy_helos = helos;
		o->nproxy_helos = nhelos;
	}
	o->pass_header = lua_sim_opt_string(L, opts, "pass_header", pass,
	    "t:mta");
	if (o->pass_header == NULL)
		o->pass_header = LUA_MTA_PASS_DEFAULT;
	/* The architecture's check needs one; these match no peer. */
	if (o->nproxy_ips == 0) {
		static const char *const none_ip[] = { LUA_MTA_NO_IP };

		o->proxy_ips = none_ip;
		o->nproxy_ips = 1;
	}
	if (o->nproxy_helos == 0) {
		static const char *const none_helo[] = { LUA_MTA_NO_HELO };

		o->proxy_helos = none_helo;
		o->nproxy_helos = 1;
	}
	for (i = 0; i < o->nproxy_ips; i++)
		buf_appendf(ident, "ip=%s ", o->proxy_ips[i]);
	for (i = 0; i < o->nproxy_helos; i++)
		buf_appendf(ident, "helo=%s ", o->proxy_helos[i]);
	buf_appendf(ident, "pass=%s", o->pass_header);
}

/* Routes: { {header=, value=, to=, name=}, ... }. Pushes an anchor. */
static void
lua_mta_routes(lua_State *L, int opts, struct sim_mta_opts *o)
{
	static const char *const keys[] = { "header", "value", "to", "name",
	    NULL };
	struct sim_route *r;
	size_t n, i;
	int list;

	o->routes = NULL;
	o->nroutes = 0;
	if (lua_getfield(L, opts, "routes") == LUA_TNIL)
		return;		/* the nil is the anchor */
	if (!lua_istable(L, -1))
		luaL_error(L, "t:mta: routes must be a list of tables");
	list = lua_gettop(L);
	n = lua_rawlen(L, list);
	r = lua_newuserdatauv(L, (n + 1) * sizeof(*r), 2);
	memset(r, 0, (n + 1) * sizeof(*r));
	lua_pushvalue(L, list);
	lua_setiuservalue(L, -2, 1);	/* the list holds the strings */
	lua_newtable(L);
	lua_setiuservalue(L, -2, 2);	/* addresses made from role objects */
	lua_replace(L, list);		/* the userdata is the anchor now */
	lua_getiuservalue(L, list, 1);
	for (i = 0; i < n; i++) {
		lua_rawgeti(L, -1, (lua_Integer)i + 1);
		if (!lua_istable(L, -1))
			luaL_error(L, "t:mta: routes[%d] must be a table",
			    (int)i + 1);
		lua_sim_check_opts(L, -1, "t:mta routes", keys);
		r[i].header = lua_sim_opt_string(L, -1, "header", NULL, "t:mta");
		r[i].value = lua_sim_opt_string(L, -1, "value", NULL, "t:mta");
		r[i].name = lua_sim_opt_string(L, -1, "name", NULL, "t:mta");
		lua_getfield(L, -1, "to");
		r[i].to = lua_sim_addr_or_null(L, -1);
		if (r[i].to != NULL && lua_type(L, -1) != LUA_TSTRING) {
			/*
			 * A role object: anchor a copy of its address in the
			 * userdata, never in the caller's table (which may be
			 * used again, e.g. when use_proxies rebuilds the MTA).
			 */
			lua_getiuservalue(L, list, 2);
			lua_pushstring(L, r[i].to);
			r[i].to = lua_tostring(L, -1);
			lua_rawseti(L, -2, (lua_Integer)i + 1);
			lua_pop(L, 1);
		}
		lua_pop(L, 1);
		if (r[i].header == NULL || r[i].value == NULL || r[i].to == NULL)
			luaL_error(L, "t:mta: routes[%d] needs header, value "
			    "and to", (int)i + 1);
		if (r[i].name == NULL)
			r[i].name = r[i].value;
		lua_pop(L, 1);
	}
	lua_pop(L, 1);
	o->routes = r;
	o->nroutes = n;
}

/* An address option: a string or an object; NULL if absent. Pushes an anchor. */
static const char *
lua_mta_addr_opt(lua_State *L, int opts, const char *key)
{
	const char *a;

	if (lua_getfield(L, opts, key) == LUA_TNIL)
		return NULL;
	a = lua_sim_addr(L, -1, "t:mta");
	lua_pushstring(L, a);
	lua_replace(L, -2);
	return lua_tostring(L, -1);
}

/*
 * tls = { cert=, key=, required=, outbound = "no"|"may"|"must", trust= }:
 * its listeners offer STARTTLS with cert and key; its deliveries use
 * STARTTLS as outbound says, verifying each hop against trust. The
 * strings stay in the option table.
 */
static void
lua_mta_tls(lua_State *L, int opts, struct sim_mta_opts *o)
{
	static const char *const keys[] = { "cert", "key", "required",
	    "outbound", "trust", NULL };
	static const char *const uses[] = { "no", "may", "must", NULL };
	const char *out;
	int t, i;

	t = lua_getfield(L, opts, "tls");
	if (t != LUA_TNIL && t != LUA_TTABLE)
		luaL_error(L, "t:mta: tls must be a table { cert=, key=, "
		    "required=, outbound=, trust= }");
	if (t == LUA_TNIL) {
		lua_pop(L, 1);
		return;
	}
	lua_sim_check_opts(L, -1, "t:mta tls", keys);
	o->tls_cert = lua_sim_opt_string(L, -1, "cert", NULL, "t:mta tls");
	o->tls_key = lua_sim_opt_string(L, -1, "key", NULL, "t:mta tls");
	o->tls_required = lua_sim_opt_bool(L, -1, "required", 0, "t:mta tls");
	o->tls_trust = lua_sim_opt_string(L, -1, "trust", NULL, "t:mta tls");
	out = lua_sim_opt_string(L, -1, "outbound", "no", "t:mta tls");
	for (i = 0; uses[i] != NULL; i++)
		if (strcmp(out, uses[i]) == 0)
			break;
	if (uses[i] == NULL)
		luaL_error(L, "t:mta: tls.outbound must be \"no\", \"may\" or "
		    "\"must\", not '%s'", out);
	o->tls_outbound = i == 0 ? SIM_TLS_NO : i == 1 ? SIM_TLS_MAY :
	    SIM_TLS_MUST;
	if ((o->tls_cert == NULL) != (o->tls_key == NULL))
		luaL_error(L, "t:mta: tls needs cert and key together");
	if (o->tls_required && o->tls_cert == NULL)
		luaL_error(L, "t:mta: tls.required needs cert and key");
	if (o->tls_trust != NULL && o->tls_outbound == SIM_TLS_NO)
		luaL_error(L, "t:mta: tls.trust is for deliveries: set "
		    "tls.outbound to \"may\" or \"must\"");
	lua_pop(L, 1);
}

/* (Re)make the MTA from the options and proxies in obj's user value. */
static void
lua_mta_make(lua_State *L, struct lua_mta *m, int obj)
{
	struct sim_mta_opts o;
	struct buf *ident;
	char err[256], helo[128];
	const char *a;
	int top = lua_gettop(L), uv, opts, proxies;

	obj = lua_absindex(L, obj);
	lua_getiuservalue(L, obj, 1);
	uv = lua_gettop(L);
	lua_getfield(L, uv, "opts");
	opts = lua_gettop(L);
	lua_getfield(L, uv, "proxies");
	proxies = lua_gettop(L);
	ident = lua_sim_buf(L);

	memset(&o, 0, sizeof(o));
	o.name = m->name;
	o.arch = m->arch;
	o.listen = m->listen;
	o.resubmit = m->arch == SIM_ARCH_LISTENER ? m->resubmit : NULL;
	o.source = lua_sim_opt_string(L, opts, "source", NULL, "t:mta");
	snprintf(helo, sizeof(helo), "%s.sim.test", m->name);
	o.helo = lua_sim_opt_string(L, opts, "helo", helo, "t:mta");
	o.proxies = lua_sim_opt_strings(L, uv, "proxies", 1, &o.nproxies,
	    "t:mta");
	lua_mta_identities(L, opts, proxies, &o, ident);
	o.downstream = lua_mta_addr_opt(L, opts, "downstream");
	o.bypass = lua_mta_addr_opt(L, opts, "bypass");
	o.mailbox = lua_mta_addr_opt(L, opts, "mailbox");
	lua_mta_routes(L, opts, &o);
	o.block_on_failure = lua_sim_opt_bool(L, opts, "block_on_failure", 0,
	    "t:mta");
	o.sender_exceptions = lua_sim_opt_strings(L, opts, "sender_exceptions",
	    0, &o.nsender_exceptions, "t:mta");
	o.local_domains = lua_sim_opt_strings(L, opts, "local_domains", 0,
	    &o.nlocal_domains, "t:mta");
	o.retry_ms = (unsigned)(1000 * lua_sim_opt_number(L, opts, "retry", 0,
	    0.001, 3600, "t:mta"));
	o.max_retry_ms = (unsigned)(1000 * lua_sim_opt_number(L, opts,
	    "max_retry", 0, 0.001, 3600, "t:mta"));
	o.max_attempts = (unsigned)lua_sim_opt_number(L, opts, "max_attempts",
	    0, 1, 1000, "t:mta");
	o.max_queue_age_ms = (unsigned)(1000 * lua_sim_opt_number(L, opts,
	    "max_queue_age", 0, 0.001, 86400, "t:mta"));
	o.timeout_ms = (unsigned)(1000 * lua_sim_opt_number(L, opts, "timeout",
	    0, 0.1, 3600, "t:mta"));
	o.connect_timeout_ms = (unsigned)(1000 * lua_sim_opt_number(L, opts,
	    "connect_timeout", 0, 0.1, 3600, "t:mta"));
	o.max_queue = (size_t)lua_sim_opt_number(L, opts, "max_queue", 0, 1,
	    1e6, "t:mta");
	o.max_size = (uint64_t)lua_sim_opt_number(L, opts, "max_size", 0, 1,
	    4294967296.0, "t:mta");
	o.max_rcpts = (size_t)lua_sim_opt_number(L, opts, "max_rcpts", 0, 1,
	    1e6, "t:mta");
	lua_mta_tls(L, opts, &o);
	o.proxy_mx = lua_sim_opt_string(L, opts, "proxy_mx", NULL, "t:mta");
	o.proxy_port = (unsigned)lua_sim_opt_number(L, opts, "proxy_port", 0, 1,
	    65535, "t:mta");
	o.dns = lua_mta_addr_opt(L, opts, "dns");
	o.dns_timeout_ms = (unsigned)(1000 * lua_sim_opt_number(L, opts,
	    "dns_timeout", 0, 0.001, 60, "t:mta"));
	o.dns_tries = (unsigned)lua_sim_opt_number(L, opts, "dns_tries", 0, 1,
	    10, "t:mta");
	if (o.proxy_mx == NULL && (o.dns != NULL || o.proxy_port != 0))
		luaL_error(L, "t:mta: dns and proxy_port go with proxy_mx");

	if ((m->mta = sim_mta_new(runner_base(), &o, err, sizeof(err))) == NULL)
		luaL_error(L, "t:mta %s: %s", m->name, err);
	sim_mta_on_event(m->mta, lua_mta_on_event, m);
	free(m->ident);
	m->ident = strdup(buf_cstr(ident));
	/* From now on the same addresses, whatever port 0 became. */
	snprintf(m->listen, sizeof(m->listen), "%s", sim_mta_addr(m->mta));
	if ((a = sim_mta_resubmit_addr(m->mta)) != NULL)
		snprintf(m->resubmit, sizeof(m->resubmit), "%s", a);
	lua_settop(L, top);
}

static void
lua_mta_cleanup(void *arg)
{
	struct lua_mta *m = arg;

	if (m->mta != NULL) {
		sim_mta_free(m->mta);
		m->mta = NULL;
	}
}

static int
lua_mta_gc(lua_State *L)
{
	struct lua_mta *m = luaL_checkudata(L, 1, LUA_MTA_MT);

	lua_mta_cleanup(m);
	luaL_unref(L, LUA_REGISTRYINDEX, m->events_ref);
	m->events_ref = LUA_NOREF;
	free(m->ident);
	m->ident = NULL;
	return 0;
}

static void
lua_mta_set_fields(lua_State *L, struct lua_mta *m, int obj)
{
	lua_sim_fields(L, obj, m->name, m->listen);
	lua_getiuservalue(L, obj, 1);
	if (m->resubmit[0] != '\0') {
		const char *c = strrchr(m->resubmit, ':');

		lua_pushstring(L, m->resubmit);
		lua_setfield(L, -2, "resubmit");
		lua_pushinteger(L, c != NULL ? strtol(c + 1, NULL, 10) : 0);
		lua_setfield(L, -2, "resubmit_port");
	}
	lua_pushstring(L, lua_mta_archs[m->arch]);
	lua_setfield(L, -2, "architecture");
	lua_pop(L, 1);
}

/*
 * t:mta{ name=, architecture=, ip=, port=, resubmit_port=, source=, helo=,
 *        downstream=, routes=, bypass=, block_on_failure=,
 *        sender_exceptions=, local_domains=, mailbox=, proxies=,
 *        proxy_ips=, proxy_helos=, pass_header=, retry=, max_retry=,
 *        max_attempts=, max_queue_age=, timeout=, connect_timeout=,
 *        max_queue=, max_size=, max_rcpts=,
 *        tls={ cert=, key=, required=, outbound=, trust= },
 *        proxy_mx=, proxy_port=, dns=, dns_timeout=, dns_tries= }
 */
int
lua_mta_new(lua_State *L)
{
	static const char *const keys[] = { "name", "architecture", "ip",
	    "port", "resubmit_port", "source", "helo", "downstream", "routes",
	    "bypass", "block_on_failure", "sender_exceptions", "local_domains",
	    "mailbox", "proxies", "proxy_ips", "proxy_helos", "pass_header",
	    "retry", "max_retry", "max_attempts", "max_queue_age", "timeout",
	    "connect_timeout", "max_queue", "max_size", "max_rcpts", "tls",
	    "proxy_mx", "proxy_port", "dns", "dns_timeout", "dns_tries", NULL };
	static unsigned long counted_gen;
	static unsigned count;
	struct lua_mta *m;
	const char *arch, *ip, *name;
	char ipbuf[64], defname[32];
	int port, rport, obj, i;
	size_t np;

	lua_test_arg(L);
	luaL_checktype(L, 2, LUA_TTABLE);
	lua_settop(L, 2);
	lua_sim_check_opts(L, 2, "t:mta", keys);
	if (counted_gen != runner_gen()) {
		counted_gen = runner_gen();
		count = 0;
	}
	snprintf(defname, sizeof(defname), "mta%u", ++count);
	name = lua_sim_opt_string(L, 2, "name", defname, "t:mta");
	arch = lua_sim_opt_string(L, 2, "architecture", NULL, "t:mta");
	if (arch == NULL && *runner_def()->arch != '\0')
		arch = runner_def()->arch;	/* the scenario's */
	if (arch == NULL)
		return luaL_error(L, "t:mta: architecture is required "
		    "(listener, client_ip, helo or header)");
	for (i = 0; i < 4; i++)
		if (strcmp(arch, lua_mta_archs[i]) == 0)
			break;
	if (i == 4)
		return luaL_error(L, "t:mta: architecture must be listener, "
		    "client_ip, helo or header, not '%s'", arch);
	if ((ip = lua_sim_opt_string(L, 2, "ip", NULL, "t:mta")) == NULL) {
		if (runner_ip(ipbuf, sizeof(ipbuf)) == -1)
			return luaL_error(L, "t:mta: out of loopback addresses");
		ip = ipbuf;
	}
	port = (int)lua_sim_opt_number(L, 2, "port", 0, 0, 65535, "t:mta");
	rport = (int)lua_sim_opt_number(L, 2, "resubmit_port", 0, 0, 65535,
	    "t:mta");

	m = lua_newuserdatauv(L, sizeof(*m), 1);
	memset(m, 0, sizeof(*m));
	m->events_ref = LUA_NOREF;
	luaL_setmetatable(L, LUA_MTA_MT);
	obj = lua_gettop(L);
	m->gen = runner_gen();
	m->arch = (enum sim_arch)i;
	snprintf(m->name, sizeof(m->name), "%s", name);
	snprintf(m->listen, sizeof(m->listen), "%s:%d", ip, port);
	if (m->arch == SIM_ARCH_LISTENER)
		snprintf(m->resubmit, sizeof(m->resubmit), "%s:%d", ip, rport);

	lua_newtable(L);
	/* A copy of the options, for making it again. */
	lua_newtable(L);
	lua_pushnil(L);
	while (lua_next(L, 2) != 0) {
		lua_pushvalue(L, -2);
		lua_insert(L, -2);
		lua_rawset(L, -4);
	}
	lua_setfield(L, -2, "opts");
	lua_newtable(L);
	lua_setfield(L, -2, "events");
	(void)lua_sim_opt_strings(L, 2, "proxies", 1, &np, "t:mta");
	lua_pop(L, 1);		/* checked; the list itself is kept: */
	if (lua_getfield(L, 2, "proxies") == LUA_TNIL) {
		lua_pop(L, 1);
		lua_newtable(L);
	} else if (!lua_istable(L, -1) || lua_sim_addr_or_null(L, -1) != NULL) {
		lua_newtable(L);
		lua_insert(L, -2);
		lua_rawseti(L, -2, 1);
	}
	lua_setfield(L, -2, "proxies");
	lua_setiuservalue(L, obj, 1);

	lua_getiuservalue(L, obj, 1);
	lua_getfield(L, -1, "events");
	m->events_ref = luaL_ref(L, LUA_REGISTRYINDEX);
	lua_pop(L, 1);

	runner_own(L, obj, lua_mta_cleanup, m);
	lua_mta_make(L, m, obj);
	lua_mta_set_fields(L, m, obj);
	lua_settop(L, obj);
	return 1;
}

/*
 * mta:use_proxies{p1, p2, ...}: the proxies to try, in order (objects or
 * "ip:port"); their IPs, HELO names and pass header become what the MTA
 * recognises inspected mail by, unless t:mta{} named them explicitly.
 */
static int
lua_mta_use_proxies(lua_State *L)
{
	struct lua_mta *m = lua_mta_check(L, 1);
	const char **v;
	size_t n;
	struct buf *ident;
	struct sim_mta_opts o;
	int uv;

	luaL_checkany(L, 2);
	lua_settop(L, 2);
	if (!lua_istable(L, 2) || lua_sim_addr_or_null(L, 2) != NULL) {
		lua_newtable(L);
		lua_insert(L, -2);
		lua_rawseti(L, -2, 1);
	}
	/* Check them before changing anything. */
	lua_newtable(L);
	lua_pushvalue(L, 2);
	lua_setfield(L, -2, "proxies");
	v = lua_sim_opt_strings(L, -1, "proxies", 1, &n, "mta:use_proxies");
	lua_getiuservalue(L, 1, 1);
	uv = lua_gettop(L);
	lua_getfield(L, uv, "opts");
	ident = lua_sim_buf(L);
	memset(&o, 0, sizeof(o));
	lua_mta_identities(L, uv + 1, 2, &o, ident);
	lua_pushvalue(L, 2);
	lua_setfield(L, uv, "proxies");
	if (m->ident != NULL && strcmp(m->ident, buf_cstr(ident)) == 0) {
		if (sim_mta_set_proxies(m->mta, v, n) == -1)
			return luaL_error(L, "mta:use_proxies: bad proxy address");
		return 0;
	}
	if (sim_mta_queued(m->mta) > 0)
		return luaL_error(L, "mta:use_proxies: the proxies' IPs, HELO "
		    "names or pass header changed while mail is queued; name "
		    "every proxy before sending");
	sim_mta_free(m->mta);
	m->mta = NULL;
	lua_mta_make(L, m, 1);
	return 0;
}

static int
lua_mta_queued(lua_State *L)
{
	struct lua_mta *m = lua_mta_check(L, 1);

	lua_pushinteger(L, (lua_Integer)sim_mta_queued(m->mta));
	return 1;
}

/* Does the event table at idx match type and route (NULL: any)? */
static int
lua_mta_match(lua_State *L, int idx, const char *type, const char *route)
{
	int ok = 1;

	if (type != NULL) {
		lua_getfield(L, idx, "type");
		ok = strcmp(lua_tostring(L, -1), type) == 0;
		lua_pop(L, 1);
	}
	if (ok && route != NULL) {
		ok = lua_getfield(L, idx, "route") == LUA_TSTRING &&
		    strcmp(lua_tostring(L, -1), route) == 0;
		lua_pop(L, 1);
	}
	return ok;
}

/* Push the list of matching events; return how many. */
static size_t
lua_mta_select(lua_State *L, struct lua_mta *m, const char *type,
    const char *route)
{
	size_t i, n, k = 0;

	lua_rawgeti(L, LUA_REGISTRYINDEX, m->events_ref);
	n = lua_rawlen(L, -1);
	lua_newtable(L);
	for (i = 1; i <= n; i++) {
		lua_rawgeti(L, -2, (lua_Integer)i);
		if (lua_mta_match(L, -1, type, route))
			lua_rawseti(L, -2, (lua_Integer)++k);
		else
			lua_pop(L, 1);
	}
	lua_remove(L, -2);
	return k;
}

static const char *
lua_mta_type_arg(lua_State *L, int idx)
{
	const char *type = luaL_optstring(L, idx, NULL);
	size_t i;

	if (type == NULL)
		return NULL;
	for (i = 0; i < sizeof(lua_mta_types) / sizeof(lua_mta_types[0]); i++)
		if (strcmp(type, lua_mta_types[i]) == 0)
			return type;
	luaL_error(L, "unknown event type '%s' (received, delivered, deferred, "
	    "bounced, ndr)", type);
	return NULL;
}

/* mta:events([type [, route]]): the events so far, oldest first. */
static int
lua_mta_events(lua_State *L)
{
	struct lua_mta *m = luaL_checkudata(L, 1, LUA_MTA_MT);
	const char *type = lua_mta_type_arg(L, 2);

	lua_mta_select(L, m, type, luaL_optstring(L, 3, NULL));
	return 1;
}

/* mta:count([type [, route]]) */
static int
lua_mta_count(lua_State *L)
{
	struct lua_mta *m = luaL_checkudata(L, 1, LUA_MTA_MT);
	const char *type = lua_mta_type_arg(L, 2);

	lua_pushinteger(L, (lua_Integer)lua_mta_select(L, m, type,
	    luaL_optstring(L, 3, NULL)));
	return 1;
}

struct lua_mta_wait {
	struct lua_mta	*m;
	char		 type[16];
	char		 route[64];
	size_t		 count;
	int		 idle;		/* wait_idle: the queue is empty */
};

static int
lua_mta_ready(lua_State *co, void *arg, int expired)
{
	struct lua_mta_wait *w = arg;
	lua_State *L = runner_lua();
	size_t have;

	if (w->m->mta == NULL) {
		lua_pushliteral(co, "the MTA is gone");
		return RUNNER_RAISE;
	}
	if (w->idle) {
		have = sim_mta_queued(w->m->mta);
		if (have == 0) {
			lua_pushboolean(co, 1);
			return 1;
		}
		if (!expired)
			return RUNNER_NOT_YET;
		lua_pushnil(co);
		lua_pushfstring(co, "timeout: MTA %s still has %d message%s "
		    "queued", w->m->name, (int)have, have == 1 ? "" : "s");
		return 2;
	}
	have = lua_mta_select(L, w->m, w->type[0] ? w->type : NULL,
	    w->route[0] ? w->route : NULL);
	if (have >= w->count) {
		lua_xmove(L, co, 1);
		return 1;
	}
	lua_pop(L, 1);
	if (!expired)
		return RUNNER_NOT_YET;
	lua_pushnil(co);
	lua_pushfstring(co, "timeout: MTA %s has %d of %d %s%s%s event%s",
	    w->m->name, (int)have, (int)w->count, w->type[0] ? w->type : "",
	    w->route[0] ? " via " : "", w->route, w->count == 1 ? "" : "s");
	return 2;
}

/*
 * mta:wait_event{ type=, route=, count=1, timeout=10 }: once that many
 * matching events happened, the list of all the matching ones.
 */
static int
lua_mta_wait_event(lua_State *L)
{
	static const char *const keys[] = { "type", "route", "count",
	    "timeout", NULL };
	struct lua_mta *m = lua_mta_check(L, 1);
	struct lua_mta_wait *mw;
	struct runner_wait w;
	const char *type, *route;
	char what[200];

	runner_check_wait(L, "mta:wait_event");
	luaL_checktype(L, 2, LUA_TTABLE);
	lua_sim_check_opts(L, 2, "mta:wait_event", keys);
	lua_getfield(L, 2, "type");
	type = lua_mta_type_arg(L, -1);
	route = lua_sim_opt_string(L, 2, "route", NULL, "mta:wait_event");
	if ((mw = calloc(1, sizeof(*mw))) == NULL)
		return luaL_error(L, "out of memory");
	mw->m = m;
	snprintf(mw->type, sizeof(mw->type), "%s", type != NULL ? type : "");
	snprintf(mw->route, sizeof(mw->route), "%s", route != NULL ? route : "");
	mw->count = (size_t)lua_sim_opt_number(L, 2, "count", 1, 1, 1e6,
	    "mta:wait_event");
	memset(&w, 0, sizeof(w));
	w.ready = lua_mta_ready;
	w.arg = mw;
	w.free_arg = free;
	w.seconds = lua_sim_opt_number(L, 2, "timeout", LUA_SIM_WAIT_DEFAULT,
	    0.001, 86400, "mta:wait_event");
	snprintf(what, sizeof(what), "MTA %s: %d %s%s%s event%s", m->name,
	    (int)mw->count, mw->type[0] ? mw->type : "any", route ? " via " :
	    "", route ? route : "", mw->count == 1 ? "" : "s");
	w.what = what;
	lua_settop(L, 1);
	return runner_wait(L, &w);
}

/* mta:wait_idle(seconds): true once nothing is queued. */
static int
lua_mta_wait_idle(lua_State *L)
{
	struct lua_mta *m = lua_mta_check(L, 1);
	struct lua_mta_wait *mw;
	struct runner_wait w;
	char what[120];

	runner_check_wait(L, "mta:wait_idle");
	if ((mw = calloc(1, sizeof(*mw))) == NULL)
		return luaL_error(L, "out of memory");
	mw->m = m;
	mw->idle = 1;
	memset(&w, 0, sizeof(w));
	w.ready = lua_mta_ready;
	w.arg = mw;
	w.free_arg = free;
	w.seconds = luaL_optnumber(L, 2, LUA_SIM_WAIT_DEFAULT);
	snprintf(what, sizeof(what), "MTA %s to empty its queue", m->name);
	w.what = what;
	return runner_wait(L, &w);
}

static const luaL_Reg lua_mta_methods[] = {
	{ "use_proxies",	lua_mta_use_proxies },
	{ "queued",		lua_mta_queued },
	{ "events",		lua_mta_events },
	{ "count",		lua_mta_count },
	{ "wait_event",		lua_mta_wait_event },
	{ "wait_idle",		lua_mta_wait_idle },
	{ NULL,			NULL }
};

static int
lua_mta_index(lua_State *L)
{
	const char *k = luaL_checkstring(L, 2);

	luaL_checkudata(L, 1, LUA_MTA_MT);
	if (luaL_getmetafield(L, 1, "methods") != LUA_TNIL) {
		if (lua_getfield(L, -1, k) != LUA_TNIL)
			return 1;
		lua_pop(L, 2);
	}
	lua_getiuservalue(L, 1, 1);
	if (strcmp(k, "opts") != 0 && strcmp(k, "events") != 0 &&
	    lua_getfield(L, -1, k) != LUA_TNIL)
		return 1;
	if (strcmp(k, "resubmit") == 0 || strcmp(k, "resubmit_port") == 0) {
		lua_pushnil(L);
		return 1;
	}
	return luaL_error(L, "mta has no field '%s'", k);
}

static int
lua_mta_tostring(lua_State *L)
{
	struct lua_mta *m = luaL_checkudata(L, 1, LUA_MTA_MT);

	lua_pushfstring(L, "mta %s (%s, %s)", m->name, lua_mta_archs[m->arch],
	    m->listen);
	return 1;
}

void
lua_mta_register(lua_State *L)
{
	luaL_newmetatable(L, LUA_MTA_MT);
	luaL_newlib(L, lua_mta_methods);
	lua_setfield(L, -2, "methods");
	lua_pushcfunction(L, lua_mta_index);
	lua_setfield(L, -2, "__index");
	lua_pushcfunction(L, lua_mta_gc);
	lua_setfield(L, -2, "__gc");
	lua_pushcfunction(L, lua_mta_tostring);
	lua_setfield(L, -2, "__tostring");
	lua_pushliteral(L, "sim.mta");
	lua_setfield(L, -2, "__metatable");
	lua_pop(L, 1);
}
