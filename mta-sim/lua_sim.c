/*
 * lua_sim: the runner's Lua state, what a scenario file sees, scenario{},
 * the `sim` library, and the helpers the class files share.
 *
 * Scenario files are test code written by the people running them, so
 * this is not a security sandbox; it keeps scenarios hermetic and their
 * mistakes loud:
 * - files load as text only (no bytecode), each with its own globals
 *   table that falls back to the shared, library-only one;
 * - no require/package/io/debug/coroutine: a scenario names no modules and
 *   reads files through sim.read(); a coroutine of its own would swallow
 *   the yields the runner's waits depend on;
 * - print() becomes a note of the running scenario, so the TAP stream on
 *   stdout stays well-formed.
 */
#include "lua_sim.h"

#include <sys/stat.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lualib.h>

#include "buf.h"
#include "runner.h"

void	lua_postfix_register(lua_State *);	/* lua_postfix.c */

#define LUA_SIM_READ_MAX	(64 * 1024 * 1024)
#define LUA_SIM_NAME_MAX	200

/* ---- option helpers ----------------------------------------------------- */

void
lua_sim_check_opts(lua_State *L, int idx, const char *fname,
    const char *const allowed[])
{
	size_t i;

	idx = lua_absindex(L, idx);
	luaL_checktype(L, idx, LUA_TTABLE);
	lua_pushnil(L);
	while (lua_next(L, idx) != 0) {
		lua_pop(L, 1);
		if (lua_type(L, -1) != LUA_TSTRING)
			luaL_error(L, "%s: option names are strings", fname);
		for (i = 0; allowed[i] != NULL; i++)
			if (strcmp(lua_tostring(L, -1), allowed[i]) == 0)
				break;
		if (allowed[i] == NULL)
			luaL_error(L, "%s: unknown option '%s'", fname,
			    lua_tostring(L, -1));
	}
}

const char *
lua_sim_opt_string(lua_State *L, int idx, const char *key, const char *def,
    const char *fname)
{
	const char *s;
	int t;

	t = lua_getfield(L, idx, key);
	if (t == LUA_TNIL) {
		lua_pop(L, 1);
		return def;
	}
	if (t != LUA_TSTRING)
		luaL_error(L, "%s: option '%s' must be a string, not %s", fname,
		    key, lua_typename(L, t));
	/* The option table holds the string, so it outlives the pop. */
	s = lua_tostring(L, -1);
	lua_pop(L, 1);
	return s;
}

int
lua_sim_opt_bool(lua_State *L, int idx, const char *key, int def,
    const char *fname)
{
	int t, v;

	t = lua_getfield(L, idx, key);
	if (t == LUA_TNIL)
		v = def;
	else if (t == LUA_TBOOLEAN)
		v = lua_toboolean(L, -1);
	else
		return luaL_error(L, "%s: option '%s' must be true or false",
		    fname, key);
	lua_pop(L, 1);
	return v;
}

double
lua_sim_opt_number(lua_State *L, int idx, const char *key, double def,
    double min, double max, const char *fname)
{
	double v;
	int isnum;

	if (lua_getfield(L, idx, key) == LUA_TNIL) {
		lua_pop(L, 1);
		return def;
	}
	v = lua_tonumberx(L, -1, &isnum);
	if (!isnum || v != v || v < min || v > max) {
		char range[96];

		/* lua_pushfstring knows no %g: format the bounds here. */
		snprintf(range, sizeof(range), "%g to %g", min, max);
		luaL_error(L, "%s: option '%s' must be a number from %s",
		    fname, key, range);
	}
	lua_pop(L, 1);
	return v;
}

const char *
lua_sim_addr_or_null(lua_State *L, int idx)
{
	const char *s = NULL;

	idx = lua_absindex(L, idx);
	if (lua_type(L, idx) == LUA_TSTRING)
		return lua_tostring(L, idx);
	if (lua_type(L, idx) != LUA_TTABLE && lua_type(L, idx) != LUA_TUSERDATA)
		return NULL;
	if (lua_getfield(L, idx, "addr") == LUA_TSTRING)
		s = lua_tostring(L, -1);
	/*
	 * Every object keeps its addr string (roles in their user value
	 * table), so the pointer stays valid while the object lives.
	 */
	lua_pop(L, 1);
	return s;
}

const char *
lua_sim_addr(lua_State *L, int idx, const char *fname)
{
	const char *s = lua_sim_addr_or_null(L, idx);

	if (s == NULL)
		luaL_error(L, "%s: expected an address (\"ip:port\") or an "
		    "object with one, got %s", fname, luaL_typename(L, idx));
	return s;
}

const char **
lua_sim_opt_strings(lua_State *L, int idx, const char *key, int addr_ok,
    size_t *np, const char *fname)
{
	const char **v;
	size_t n, i;
	int t, anchor;

	idx = lua_absindex(L, idx);
	lua_newtable(L);		/* the anchor we leave on the stack */
	anchor = lua_gettop(L);
	t = lua_getfield(L, idx, key);
	if (t == LUA_TNIL) {
		lua_pop(L, 1);
		*np = 0;
		return NULL;
	}
	/* One value on its own is a list of one. */
	if (t == LUA_TSTRING || (t != LUA_TTABLE) ||
	    lua_sim_addr_or_null(L, -1) != NULL) {
		lua_newtable(L);
		lua_insert(L, -2);
		lua_rawseti(L, -2, 1);
	}
	n = lua_rawlen(L, -1);
	v = lua_newuserdatauv(L, (n + 1) * sizeof(*v), 0);
	lua_setfield(L, anchor, "ptrs");
	for (i = 0; i < n; i++) {
		const char *s = NULL;

		lua_rawgeti(L, -1, (lua_Integer)i + 1);
		if (lua_type(L, -1) == LUA_TSTRING)
			s = lua_tostring(L, -1);
		else if (addr_ok)
			s = lua_sim_addr_or_null(L, -1);
		if (s == NULL)
			luaL_error(L, "%s: option '%s' must be a list of %s",
			    fname, key, addr_ok ? "addresses or objects" :
			    "strings");
		/* Copied while the element still holds it, then anchored. */
		lua_pushstring(L, s);
		v[i] = lua_tostring(L, -1);
		lua_rawseti(L, anchor, (lua_Integer)i + 1);
		lua_pop(L, 1);
	}
	v[n] = NULL;
	lua_pop(L, 1);
	*np = n;
	return v;
}

void
lua_sim_fields(lua_State *L, int obj, const char *name, const char *addr)
{
	const char *colon = addr != NULL ? strrchr(addr, ':') : NULL;

	obj = lua_absindex(L, obj);
	lua_getiuservalue(L, obj, 1);
	if (name != NULL) {
		lua_pushstring(L, name);
		lua_setfield(L, -2, "name");
	}
	if (addr != NULL) {
		lua_pushstring(L, addr);
		lua_setfield(L, -2, "addr");
	}
	if (colon != NULL) {
		lua_pushlstring(L, addr, (size_t)(colon - addr));
		lua_setfield(L, -2, "ip");
		lua_pushinteger(L, strtol(colon + 1, NULL, 10));
		lua_setfield(L, -2, "port");
	}
	lua_pop(L, 1);
}

void
lua_sim_repr(lua_State *L, int idx, struct buf *out)
{
	size_t len, i, k = 0;
	const char *s;

	idx = lua_absindex(L, idx);
	switch (lua_type(L, idx)) {
	case LUA_TSTRING:
		s = lua_tolstring(L, idx, &len);
		buf_appends(out, "\"");
		for (i = 0; i < len && i < 300; i++) {
			unsigned char c = (unsigned char)s[i];

			if (c == '"' || c == '\\')
				buf_appendf(out, "\\%c", c);
			else if (c == '\r')
				buf_appends(out, "\\r");
			else if (c == '\n')
				buf_appends(out, "\\n");
			else if (c < 0x20 || c == 0x7f)
				buf_appendf(out, "\\x%02x", c);
			else
				buf_append(out, &s[i], 1);
		}
		buf_appends(out, len > 300 ? "\"..." : "\"");
		break;
	case LUA_TTABLE:
		if (luaL_getmetafield(L, idx, "__tostring") != LUA_TNIL) {
			lua_pop(L, 1);
			buf_appends(out, luaL_tolstring(L, idx, NULL));
			lua_pop(L, 1);
			break;
		}
		buf_appends(out, "{");
		lua_pushnil(L);
		while (lua_next(L, idx) != 0) {
			if (k++ > 0)
				buf_appends(out, ", ");
			if (k > 10) {
				buf_appends(out, "...");
				lua_pop(L, 2);
				break;
			}
			if (lua_type(L, -2) != LUA_TNUMBER) {
				buf_appends(out, luaL_tolstring(L, -2, NULL));
				lua_pop(L, 1);
				buf_appends(out, "=");
			}
			if (lua_type(L, -1) == LUA_TTABLE)
				buf_appends(out, "{...}");
			else
				lua_sim_repr(L, -1, out);
			lua_pop(L, 1);
		}
		buf_appends(out, "}");
		break;
	default:
		buf_appends(out, luaL_tolstring(L, idx, NULL));
		lua_pop(L, 1);
		break;
	}
}

static int
lua_sim_buf_gc(lua_State *L)
{
	buf_free(luaL_checkudata(L, 1, "sim.buf"));
	return 0;
}

struct buf *
lua_sim_buf(lua_State *L)
{
	struct buf *b = lua_newuserdatauv(L, sizeof(*b), 0);

	buf_init(b);
	if (luaL_newmetatable(L, "sim.buf")) {
		lua_pushcfunction(L, lua_sim_buf_gc);
		lua_setfield(L, -2, "__gc");
	}
	lua_setmetatable(L, -2);
	return b;
}

/* ---- globals -------------------------------------------------------------- */

static int
lua_sim_print(lua_State *L)
{
	int i, n = lua_gettop(L);
	struct buf *b = lua_sim_buf(L);

	for (i = 1; i <= n; i++) {
		if (i > 1)
			buf_appends(b, "\t");
		buf_appends(b, luaL_tolstring(L, i, NULL));
		lua_pop(L, 1);
	}
	runner_note("%s", b->len > 0 ? buf_cstr(b) : "");
	return 0;
}

/* load() for text only; binary chunks are refused like files are. */
static int
lua_sim_load_text(lua_State *L)
{
	int env = !lua_isnone(L, 4);

	lua_settop(L, 4);
	lua_pushvalue(L, lua_upvalueindex(1));
	lua_pushvalue(L, 1);
	lua_pushvalue(L, 2);
	lua_pushliteral(L, "t");
	if (env)
		lua_pushvalue(L, 4);
	lua_call(L, env ? 4 : 3, 2);
	return 2;
}

/* scenario { name = ..., check = ..., architecture = ..., tags = {...}, timeout = N, run = fn } */
static int
lua_sim_scenario(lua_State *L)
{
	static const char *const keys[] = { "name", "check", "architecture",
	    "tags", "timeout", "run", NULL };
	struct runner_def d;
	struct buf tags = BUF_INIT;
	const char *p;
	size_t i, n;

	if (lua_gettop(L) != 1 || !lua_istable(L, 1))
		return luaL_error(L, "scenario: use scenario { name = \"...\", "
		    "run = function(t) ... end }");
	lua_sim_check_opts(L, 1, "scenario", keys);
	memset(&d, 0, sizeof(d));
	d.name = lua_sim_opt_string(L, 1, "name", NULL, "scenario");
	if (d.name == NULL || *d.name == '\0')
		return luaL_error(L, "scenario: a name is required");
	if (strlen(d.name) > LUA_SIM_NAME_MAX)
		return luaL_error(L, "scenario: name longer than %d octets",
		    LUA_SIM_NAME_MAX);
	for (p = d.name; *p != '\0'; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f || *p == '#')
			return luaL_error(L, "scenario: the name \"%s\" may not "
			    "contain '#' or control characters (TAP)", d.name);
	d.check = lua_sim_opt_string(L, 1, "check", NULL, "scenario");
	d.arch = lua_sim_opt_string(L, 1, "architecture", "", "scenario");
	for (p = d.arch; *p != '\0'; p++)
		if ((unsigned char)*p < 0x20)
			return luaL_error(L, "scenario: bad architecture");
	d.timeout = lua_sim_opt_number(L, 1, "timeout", 0, 0.001, 86400,
	    "scenario");
	(void)lua_sim_opt_strings(L, 1, "tags", 0, &n, "scenario");
	for (i = 0; i < n; i++) {
		lua_rawgeti(L, -1, (lua_Integer)i + 1);
		if (i > 0)
			buf_appends(&tags, ",");
		buf_appends(&tags, lua_tostring(L, -1));
		lua_pop(L, 1);
	}
	lua_pop(L, 1);
	d.tags = tags.len > 0 ? buf_cstr(&tags) : "";
	if (lua_getfield(L, 1, "run") != LUA_TFUNCTION) {
		buf_free(&tags);
		return luaL_error(L, "scenario \"%s\": run must be a function",
		    d.name);
	}
	d.run_ref = luaL_ref(L, LUA_REGISTRYINDEX);
	if (runner_register(L, &d) == -1) {
		luaL_unref(L, LUA_REGISTRYINDEX, d.run_ref);
		buf_free(&tags);
		return lua_error(L);
	}
	buf_free(&tags);
	return 0;
}

/* ---- the sim library -------------------------------------------------------- */

/* sim.message{...}: an RFC 5322 message as a string. */
static int
lua_sim_message(lua_State *L)
{
	static const char *const keys[] = { "from", "to", "header_from",
	    "header_to", "subject", "body", "headers", "attachments", "size",
	    "content", NULL };
	struct buf *b;

	lua_sim_check_opts(L, 1, "sim.message", keys);
	b = lua_sim_buf(L);
	lua_message_build(L, 1, 0, b, "sim.message");
	lua_pushlstring(L, b->data != NULL ? b->data : "", b->len);
	return 1;
}

/* sim.read(path): the file's bytes, or nil and an error. */
static int
lua_sim_read(lua_State *L)
{
	const char *path = luaL_checkstring(L, 1);
	struct buf b = BUF_INIT;
	char chunk[8192];
	size_t n;
	FILE *fp;

	if ((fp = fopen(path, "rb")) == NULL) {
		lua_pushnil(L);
		lua_pushfstring(L, "%s: %s", path, strerror(errno));
		return 2;
	}
	while ((n = fread(chunk, 1, sizeof(chunk), fp)) > 0)
		if (b.len + n > LUA_SIM_READ_MAX ||
		    buf_append(&b, chunk, n) == -1) {
			fclose(fp);
			buf_free(&b);
			lua_pushnil(L);
			lua_pushfstring(L, "%s: too large", path);
			return 2;
		}
	if (ferror(fp)) {
		fclose(fp);
		buf_free(&b);
		lua_pushnil(L);
		lua_pushfstring(L, "%s: read error", path);
		return 2;
	}
	fclose(fp);
	lua_pushlstring(L, b.data != NULL ? b.data : "", b.len);
	buf_free(&b);
	return 1;
}

static int
lua_sim_env(lua_State *L)
{
	const char *v = getenv(luaL_checkstring(L, 1));

	if (v == NULL || *v == '\0')
		lua_pushnil(L);
	else
		lua_pushstring(L, v);
	return 1;
}

static int
lua_sim_addr_fn(lua_State *L)
{
	const char *s = lua_sim_addr_or_null(L, 1);

	if (s == NULL)
		lua_pushnil(L);
	else
		lua_pushstring(L, s);
	return 1;
}

static int
lua_sim_repr_fn(lua_State *L)
{
	struct buf *b;

	luaL_checkany(L, 1);
	b = lua_sim_buf(L);
	lua_sim_repr(L, 1, b);
	lua_pushlstring(L, b->data != NULL ? b->data : "", b->len);
	return 1;
}

static const luaL_Reg lua_sim_lib[] = {
	{ "message",		lua_sim_message },
	{ "read",		lua_sim_read },
	{ "env",		lua_sim_env },
	{ "addr",		lua_sim_addr_fn },
	{ "repr",		lua_sim_repr_fn },
	{ "json_decode",	lua_json_decode },
	{ NULL,			NULL }
};

static void
lua_sim_remove(lua_State *L, const char *lib, const char *name)
{
	if (lib == NULL) {
		lua_pushnil(L);
		lua_setglobal(L, name);
		return;
	}
	if (lua_getglobal(L, lib) == LUA_TTABLE) {
		lua_pushnil(L);
		lua_setfield(L, -2, name);
	}
	lua_pop(L, 1);
}

static int
lua_sim_setup(lua_State *L)
{
	static const char *const globals[] = { "dofile", "loadfile", "require",
	    "package", "io", "debug", "coroutine", NULL };
	static const char *const os_drop[] = { "execute", "exit", "remove",
	    "rename", "tmpname", "setlocale", NULL };
	static const char *const archs[] = { "listener", "client_ip", "helo",
	    "header", NULL };
	size_t i;

	luaL_openlibs(L);
	for (i = 0; globals[i] != NULL; i++)
		lua_sim_remove(L, NULL, globals[i]);
	for (i = 0; os_drop[i] != NULL; i++)
		lua_sim_remove(L, "os", os_drop[i]);
	lua_sim_remove(L, "string", "dump");

	lua_getglobal(L, "load");
	lua_pushcclosure(L, lua_sim_load_text, 1);
	lua_setglobal(L, "load");
	lua_pushcfunction(L, lua_sim_print);
	lua_setglobal(L, "print");
	lua_pushcfunction(L, lua_sim_scenario);
	lua_setglobal(L, "scenario");

	luaL_newlib(L, lua_sim_lib);
	lua_newtable(L);
	for (i = 0; archs[i] != NULL; i++) {
		lua_pushstring(L, archs[i]);
		lua_rawseti(L, -2, (lua_Integer)i + 1);
	}
	lua_setfield(L, -2, "architectures");
	lua_setglobal(L, "sim");

	lua_test_register(L);
	lua_sink_register(L);
	lua_mta_register(L);
	lua_proxy_register(L);
	lua_message_register(L);
	lua_result_register(L);
	lua_postfix_register(L);	/* lua_postfix.c: t:postfix, after t */
	return 0;
}

lua_State *
lua_sim_open(void)
{
	lua_State *L = luaL_newstate();

	if (L == NULL)
		return NULL;
	lua_pushcfunction(L, lua_sim_setup);
	if (lua_pcall(L, 0, 0, 0) != LUA_OK) {
		lua_close(L);
		return NULL;
	}
	return L;
}

static int
lua_sim_traceback(lua_State *L)
{
	const char *msg = lua_tostring(L, 1);

	if (msg == NULL)
		msg = lua_pushfstring(L, "(error object is a %s value)",
		    luaL_typename(L, 1));
	luaL_traceback(L, L, msg, 1);
	return 1;
}

int
lua_sim_load(lua_State *L, const char *path, char *err, size_t errlen)
{
	int base = lua_gettop(L);

	lua_pushcfunction(L, lua_sim_traceback);
	if (luaL_loadfilex(L, path, "t") != LUA_OK) {
		snprintf(err, errlen, "%s", lua_tostring(L, -1));
		lua_settop(L, base);
		return -1;
	}
	/* Its own globals, falling back to the shared ones. */
	lua_newtable(L);
	lua_newtable(L);
	lua_pushglobaltable(L);
	lua_setfield(L, -2, "__index");
	lua_setmetatable(L, -2);
	if (lua_setupvalue(L, -2, 1) == NULL)
		lua_pop(L, 1);
	if (lua_pcall(L, 0, 0, base + 1) != LUA_OK) {
		snprintf(err, errlen, "%s", lua_tostring(L, -1));
		lua_settop(L, base);
		return -1;
	}
	lua_settop(L, base);
	return 0;
}

int
lua_sim_index(lua_State *L, const char *mt, const char *what)
{
	const char *k = luaL_checkstring(L, 2);

	luaL_checkudata(L, 1, mt);
	if (luaL_getmetafield(L, 1, "methods") != LUA_TNIL) {
		if (lua_getfield(L, -1, k) != LUA_TNIL)
			return 1;
		lua_pop(L, 2);
	}
	lua_getiuservalue(L, 1, 1);
	if (lua_getfield(L, -1, k) != LUA_TNIL)
		return 1;
	return luaL_error(L, "%s has no field '%s'", what, k);
}
