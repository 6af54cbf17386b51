/*
 * lua_sandbox: one capped, allow-listed Lua state for a policy set.
 *
 * Policy code is written by administrators but runs on every message, in
 * the proxy's own process, on content chosen by whoever sends mail. So it
 * must not reach files, processes or the C library, must not outlive its
 * budget of instructions and memory, and one policy must not be able to
 * change what another one sees (globals, library functions, the string
 * metatable).
 *
 * How:
 * - The real globals table is private. Chunks see it through a read-only
 *   proxy (their _ENV); libraries are read-only proxies too.
 * - rawset() refuses proxies, setmetatable() refuses __gc (a finalizer
 *   would run outside any call and its budget), every metatable we hand
 *   out is protected by __metatable.
 * - load() compiles text only and gives the chunk the read-only
 *   environment; dofile, loadfile, require, io, os.execute, debug and
 *   string.dump do not exist.
 */
#include "lua_sandbox.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lualib.h>

#include "log.h"

#define SANDBOX_HOOK_STEP	1000	/* instructions between hook calls */
#define SANDBOX_SOURCES_MAX	4096	/* file names remembered for messages */

#define SANDBOX_KEY_RO		"mp.readonly"	/* weak set of proxies */
#define SANDBOX_KEY_ENV		"mp.env"	/* what chunks see as _ENV */

struct lua_sandbox {
	lua_State		*L;
	size_t			 mem_used;
	size_t			 mem_limit;
	uint64_t		 insn_limit;
	uint64_t		 insn_used;
	enum lua_sandbox_phase	 phase;
	const char		*who;
	const char		*sid;
	/* Full file names, to undo Lua's shortening of long ones. */
	char			**sources;
	size_t			 nsources;
};

static void	*sandbox_alloc(void *, void *, size_t, size_t);
static int	 sandbox_panic(lua_State *);
static void	 sandbox_hook(lua_State *, lua_Debug *);
static void	 sandbox_arm(struct lua_sandbox *);
static int	 sandbox_msgh(lua_State *);
static int	 sandbox_setup(lua_State *);
static void	 sandbox_proxy(lua_State *, int, const char *);
static int	 sandbox_is_readonly(lua_State *, int);
static void	 sandbox_unshorten(const struct lua_sandbox *, const char *,
		    size_t, char *, size_t);
static void	 sandbox_error(struct lua_sandbox *, int, char *, size_t,
		    char *, size_t);

static int	 sandbox_ro_newindex(lua_State *);
static int	 sandbox_ro_pairs(lua_State *);
static int	 sandbox_ro_next(lua_State *);
static int	 sandbox_ro_len(lua_State *);

static int	 sandbox_load(lua_State *);
static int	 sandbox_print(lua_State *);
static int	 sandbox_rawset(lua_State *);
static int	 sandbox_setmetatable(lua_State *);
static int	 sandbox_collectgarbage(lua_State *);

/* Base functions that are not allowed; some come back as wrappers below. */
static const char *const sandbox_base_drop[] = {
	"dofile", "loadfile", "load", "collectgarbage", "print", "warn",
	"rawset", "setmetatable", "require", NULL
};

static const luaL_Reg sandbox_base_wrap[] = {
	{ "load",		sandbox_load },
	{ "print",		sandbox_print },
	{ "rawset",		sandbox_rawset },
	{ "setmetatable",	sandbox_setmetatable },
	{ "collectgarbage",	sandbox_collectgarbage },
	{ NULL, NULL }
};

static const luaL_Reg sandbox_libs[] = {
	{ LUA_STRLIBNAME,	luaopen_string },
	{ LUA_TABLIBNAME,	luaopen_table },
	{ LUA_MATHLIBNAME,	luaopen_math },
	{ LUA_UTF8LIBNAME,	luaopen_utf8 },
	{ LUA_COLIBNAME,	luaopen_coroutine },
	{ NULL, NULL }
};

/* Of os, only the clock and calendar functions. */
static const char *const sandbox_os_keep[] = { "time", "date", "clock", NULL };

struct lua_sandbox *
lua_sandbox_new(size_t memory, uint64_t instructions, char *err, size_t errsz)
{
	struct lua_sandbox *sb;

	if ((sb = calloc(1, sizeof(*sb))) == NULL) {
		snprintf(err, errsz, "out of memory");
		return NULL;
	}
	sb->mem_limit = memory;
	sb->insn_limit = instructions > 0 ? instructions : 1;
	sb->phase = SANDBOX_SETUP;
	if ((sb->L = lua_newstate(sandbox_alloc, sb)) == NULL) {
		snprintf(err, errsz, "cannot create a Lua state within %zu "
		    "bytes", memory);
		free(sb);
		return NULL;
	}
	*(struct lua_sandbox **)lua_getextraspace(sb->L) = sb;
	lua_atpanic(sb->L, sandbox_panic);
	sandbox_arm(sb);
	if (lua_sandbox_cpcall(sb, sandbox_setup, sb, err, errsz) != LUA_OK) {
		lua_sandbox_free(sb);
		return NULL;
	}
	return sb;
}

void
lua_sandbox_free(struct lua_sandbox *sb)
{
	size_t i;

	if (sb == NULL)
		return;
	if (sb->L != NULL)
		lua_close(sb->L);
	for (i = 0; i < sb->nsources; i++)
		free(sb->sources[i]);
	free(sb->sources);
	free(sb);
}

lua_State *
lua_sandbox_state(struct lua_sandbox *sb)
{
	return sb->L;
}

/* Threads copy the main thread's extra space when created. */
struct lua_sandbox *
lua_sandbox_get(lua_State *L)
{
	return *(struct lua_sandbox **)lua_getextraspace(L);
}

void
lua_sandbox_set_phase(struct lua_sandbox *sb, enum lua_sandbox_phase phase,
    const char *who, const char *sid)
{
	sb->phase = phase;
	sb->who = who;
	sb->sid = sid;
}

enum lua_sandbox_phase
lua_sandbox_phase(lua_State *L)
{
	return lua_sandbox_get(L)->phase;
}

size_t
lua_sandbox_memory(const struct lua_sandbox *sb)
{
	return sb->mem_used;
}

size_t
lua_sandbox_memory_limit(const struct lua_sandbox *sb)
{
	return sb->mem_limit;
}

/*
 * The cap: growing past mem_limit fails, which Lua turns into a memory
 * error after an emergency collection. Shrinking and freeing always work.
 */
static void *
sandbox_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
	struct lua_sandbox *sb = ud;
	void *np;

	if (ptr == NULL)
		osize = 0;	/* osize holds the object type then */
	if (nsize == 0) {
		free(ptr);
		sb->mem_used -= osize;
		return NULL;
	}
	if (nsize > osize && nsize - osize > sb->mem_limit - sb->mem_used)
		return NULL;
	if ((np = realloc(ptr, nsize)) == NULL)
		return NULL;
	sb->mem_used = sb->mem_used - osize + nsize;
	return np;
}

/* Only reached by a bug of ours: every call into Lua is protected. */
static int
sandbox_panic(lua_State *L)
{
	const char *msg = lua_tostring(L, -1);

	log_panic("unprotected Lua error: %s", msg != NULL ? msg : "?");
}

static void
sandbox_arm(struct lua_sandbox *sb)
{
	int step = SANDBOX_HOOK_STEP;

	if (sb->insn_limit < (uint64_t)step)
		step = (int)sb->insn_limit;
	sb->insn_used = 0;
	lua_sethook(sb->L, sandbox_hook, LUA_MASKCOUNT, step);
}

/*
 * Count instructions in steps. Past the budget, raise on this and every
 * following instruction: a pcall() in the policy catches one error but
 * the next instruction of its caller raises again, up to our lua_pcall.
 */
static void
sandbox_hook(lua_State *L, lua_Debug *ar)
{
	struct lua_sandbox *sb = lua_sandbox_get(L);

	sb->insn_used += (uint64_t)lua_gethookcount(L);
	if (sb->insn_used < sb->insn_limit)
		return;
	lua_sethook(L, sandbox_hook, LUA_MASKCOUNT, 1);
	if (lua_getinfo(L, "Sl", ar) && ar->currentline > 0)
		lua_pushfstring(L, "%s:%d: instruction limit exceeded (%I)",
		    ar->short_src, ar->currentline,
		    (lua_Integer)sb->insn_limit);
	else
		lua_pushfstring(L, "instruction limit exceeded (%I)",
		    (lua_Integer)sb->insn_limit);
	lua_error(L);
}

/* Message handler: the message (a string whatever was raised) + traceback. */
static int
sandbox_msgh(lua_State *L)
{
	const char *msg;

	if (lua_type(L, 1) == LUA_TSTRING || lua_type(L, 1) == LUA_TNUMBER)
		msg = lua_tostring(L, 1);
	else
		msg = lua_pushfstring(L, "(error object is a %s value)",
		    luaL_typename(L, 1));
	luaL_traceback(L, L, msg, 1);
	return 1;
}

static int
sandbox_setup(lua_State *L)
{
	const luaL_Reg *lib;
	size_t i;
	int g;

	luaL_requiref(L, LUA_GNAME, luaopen_base, 0);
	g = lua_gettop(L);
	for (i = 0; sandbox_base_drop[i] != NULL; i++) {
		lua_pushnil(L);
		lua_setfield(L, g, sandbox_base_drop[i]);
	}
	luaL_setfuncs(L, sandbox_base_wrap, 0);

	/* Proxies are remembered in a weak set so rawset can refuse them. */
	lua_newtable(L);
	lua_createtable(L, 0, 1);
	lua_pushliteral(L, "k");
	lua_setfield(L, -2, "__mode");
	lua_setmetatable(L, -2);
	lua_setfield(L, LUA_REGISTRYINDEX, SANDBOX_KEY_RO);

	for (lib = sandbox_libs; lib->func != NULL; lib++) {
		luaL_requiref(L, lib->name, lib->func, 0);
		if (strcmp(lib->name, LUA_STRLIBNAME) == 0) {
			/* bytecode out; load() refuses it in anyway */
			lua_pushnil(L);
			lua_setfield(L, -2, "dump");
		}
		lua_sandbox_setglobal(L, lib->name);
	}

	luaL_requiref(L, LUA_OSLIBNAME, luaopen_os, 0);
	lua_createtable(L, 0, 3);
	for (i = 0; sandbox_os_keep[i] != NULL; i++) {
		lua_getfield(L, -2, sandbox_os_keep[i]);
		lua_setfield(L, -2, sandbox_os_keep[i]);
	}
	lua_sandbox_setglobal(L, LUA_OSLIBNAME);
	lua_pop(L, 1);

	/*
	 * The string metatable: its __index stays the real string table (so
	 * s:upper() works), but getmetatable("") answers a read-only table
	 * whose __index is the read-only `string`.
	 */
	lua_pushliteral(L, "");
	if (!lua_getmetatable(L, -1))
		return luaL_error(L, "string metatable missing");
	lua_createtable(L, 0, 1);
	lua_getfield(L, g, LUA_STRLIBNAME);
	lua_setfield(L, -2, "__index");
	lua_sandbox_readonly(L, -1, "string metatable");
	lua_setfield(L, -3, "__metatable");
	lua_pop(L, 3);

	/* The environment every chunk gets, also known as _G. */
	sandbox_proxy(L, g, NULL);
	lua_pushvalue(L, -1);
	lua_setfield(L, g, LUA_GNAME);
	lua_setfield(L, LUA_REGISTRYINDEX, SANDBOX_KEY_ENV);
	lua_pop(L, 1);
	return 0;
}

void
lua_sandbox_setglobal(lua_State *L, const char *name)
{
	if (lua_type(L, -1) == LUA_TTABLE) {
		lua_sandbox_readonly(L, -1, name);
		lua_remove(L, -2);
	}
	lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_GLOBALS);
	lua_insert(L, -2);
	lua_setfield(L, -2, name);
	lua_pop(L, 1);
}

void
lua_sandbox_readonly(lua_State *L, int idx, const char *what)
{
	sandbox_proxy(L, idx, what);
}

/*
 * An empty table whose metatable reads through to the real one. what ==
 * NULL makes the global environment, whose writes name the variable.
 */
static void
sandbox_proxy(lua_State *L, int idx, const char *what)
{
	idx = lua_absindex(L, idx);
	lua_newtable(L);
	lua_createtable(L, 0, 5);
	lua_pushvalue(L, idx);
	lua_setfield(L, -2, "__index");
	if (what != NULL)
		lua_pushstring(L, what);
	else
		lua_pushnil(L);
	lua_pushcclosure(L, sandbox_ro_newindex, 1);
	lua_setfield(L, -2, "__newindex");
	lua_pushvalue(L, idx);
	lua_pushcclosure(L, sandbox_ro_pairs, 1);
	lua_setfield(L, -2, "__pairs");
	lua_pushvalue(L, idx);
	lua_pushcclosure(L, sandbox_ro_len, 1);
	lua_setfield(L, -2, "__len");
	lua_pushliteral(L, "protected");
	lua_setfield(L, -2, "__metatable");
	lua_setmetatable(L, -2);

	lua_getfield(L, LUA_REGISTRYINDEX, SANDBOX_KEY_RO);
	lua_pushvalue(L, -2);
	lua_pushboolean(L, 1);
	lua_rawset(L, -3);
	lua_pop(L, 1);
}

static int
sandbox_is_readonly(lua_State *L, int idx)
{
	int ro;

	idx = lua_absindex(L, idx);
	lua_getfield(L, LUA_REGISTRYINDEX, SANDBOX_KEY_RO);
	lua_pushvalue(L, idx);
	lua_rawget(L, -2);
	ro = lua_toboolean(L, -1);
	lua_pop(L, 2);
	return ro;
}

static int
sandbox_ro_newindex(lua_State *L)
{
	const char *what = lua_tostring(L, lua_upvalueindex(1));

	if (what != NULL)
		return luaL_error(L, "attempt to modify read-only table '%s'",
		    what);
	if (lua_type(L, 2) == LUA_TSTRING)
		return luaL_error(L, "attempt to set global '%s' (globals are "
		    "read-only; use local)", lua_tostring(L, 2));
	return luaL_error(L, "attempt to set a global (globals are "
	    "read-only; use local)");
}

/* The iterator holds the real table; pairs() never hands it out. */
static int
sandbox_ro_pairs(lua_State *L)
{
	lua_pushvalue(L, lua_upvalueindex(1));
	lua_pushcclosure(L, sandbox_ro_next, 1);
	lua_pushvalue(L, 1);
	lua_pushnil(L);
	return 3;
}

static int
sandbox_ro_next(lua_State *L)
{
	lua_settop(L, 2);
	lua_pushvalue(L, lua_upvalueindex(1));
	lua_pushvalue(L, 2);
	if (lua_next(L, 3))
		return 2;
	lua_pushnil(L);
	return 1;
}

static int
sandbox_ro_len(lua_State *L)
{
	lua_pushinteger(L, (lua_Integer)lua_rawlen(L, lua_upvalueindex(1)));
	return 1;
}

/*
 * load(s [, name [, mode [, env]]]): strings only, text only; the chunk
 * gets env if one is given, else the read-only environment.
 */
static int
sandbox_load(lua_State *L)
{
	const char *s, *name;
	size_t len;
	int status;

	if (lua_type(L, 1) != LUA_TSTRING)
		return luaL_error(L, "load: only strings can be loaded in "
		    "policies");
	s = lua_tolstring(L, 1, &len);
	name = luaL_optstring(L, 2, "=(load)");
	status = luaL_loadbufferx(L, s, len, name, "t");
	if (status != LUA_OK) {
		lua_pushnil(L);
		lua_insert(L, -2);
		return 2;
	}
	if (!lua_isnone(L, 4))
		lua_pushvalue(L, 4);
	else
		lua_getfield(L, LUA_REGISTRYINDEX, SANDBOX_KEY_ENV);
	if (lua_setupvalue(L, -2, 1) == NULL)
		lua_pop(L, 1);
	return 1;
}

/* print(...) goes to the log, tagged with the policy. */
static int
sandbox_print(lua_State *L)
{
	struct lua_sandbox *sb = lua_sandbox_get(L);
	char q[512], qwho[160];
	luaL_Buffer b;
	const char *s;
	size_t len;
	int i, n = lua_gettop(L);

	luaL_buffinit(L, &b);
	for (i = 1; i <= n; i++) {
		if (i > 1)
			luaL_addchar(&b, '\t');
		luaL_tolstring(L, i, NULL);
		luaL_addvalue(&b);
	}
	luaL_pushresult(&b);
	s = lua_tolstring(L, -1, &len);
	log_quote(q, sizeof(q), s, len);
	s = sb->who != NULL ? sb->who : "";
	log_quote(qwho, sizeof(qwho), s, strlen(s));
	log_msg(LOG_INFO, sb->sid, "policy_print", "policy=%s text=%s", qwho,
	    q);
	return 0;
}

static int
sandbox_rawset(lua_State *L)
{
	luaL_checktype(L, 1, LUA_TTABLE);
	luaL_checkany(L, 2);
	luaL_checkany(L, 3);
	if (sandbox_is_readonly(L, 1))
		return luaL_error(L, "rawset: the table is read-only");
	lua_settop(L, 3);
	lua_rawset(L, 1);
	return 1;
}

/* As the base function, without finalizers (__gc). */
static int
sandbox_setmetatable(lua_State *L)
{
	int t = lua_type(L, 2);

	luaL_checktype(L, 1, LUA_TTABLE);
	luaL_argexpected(L, t == LUA_TNIL || t == LUA_TTABLE, 2, "nil or table");
	if (t == LUA_TTABLE) {
		lua_pushliteral(L, "__gc");
		if (lua_rawget(L, 2) != LUA_TNIL)
			return luaL_error(L, "setmetatable: __gc is not "
			    "allowed in policies");
		lua_pop(L, 1);
	}
	if (luaL_getmetafield(L, 1, "__metatable") != LUA_TNIL)
		return luaL_error(L, "cannot change a protected metatable");
	lua_settop(L, 2);
	lua_setmetatable(L, 1);
	return 1;
}

/* Policies may look at memory use, not steer the collector. */
static int
sandbox_collectgarbage(lua_State *L)
{
	const char *opt = luaL_optstring(L, 1, "collect");
	int kb, b;

	if (strcmp(opt, "count") != 0)
		return luaL_error(L, "collectgarbage: only \"count\" is "
		    "allowed in policies");
	kb = lua_gc(L, LUA_GCCOUNT);
	b = lua_gc(L, LUA_GCCOUNTB);
	lua_pushnumber(L, (lua_Number)kb + (lua_Number)b / 1024);
	return 1;
}

int
lua_sandbox_cpcall(struct lua_sandbox *sb, lua_CFunction fn, void *ud,
    char *err, size_t errsz)
{
	lua_State *L = sb->L;
	int top = lua_gettop(L), status;

	if (!lua_checkstack(L, 4)) {
		snprintf(err, errsz, "Lua stack exhausted");
		return LUA_ERRMEM;
	}
	lua_pushcfunction(L, fn);
	lua_pushlightuserdata(L, ud);
	status = lua_sandbox_pcall(sb, 1, 0, err, errsz, NULL, 0);
	lua_settop(L, top);
	return status;
}

int
lua_sandbox_load(struct lua_sandbox *sb, const char *buf, size_t len,
    const char *chunkname, char *err, size_t errsz)
{
	lua_State *L = sb->L;
	char **ns;
	int status;

	if (!lua_checkstack(L, 4)) {
		snprintf(err, errsz, "Lua stack exhausted");
		return LUA_ERRMEM;
	}
	/* Remember file names, to show them whole in messages. */
	if (chunkname[0] == '@' && sb->nsources < SANDBOX_SOURCES_MAX &&
	    (ns = reallocarray(sb->sources, sb->nsources + 1,
	    sizeof(*ns))) != NULL) {
		sb->sources = ns;
		if ((ns[sb->nsources] = strdup(chunkname + 1)) != NULL)
			sb->nsources++;
	}
	sandbox_arm(sb);
	status = luaL_loadbufferx(L, buf, len, chunkname, "t");
	if (status != LUA_OK) {
		sandbox_error(sb, status, err, errsz, NULL, 0);
		lua_pop(L, 1);
		return status;
	}
	lua_getfield(L, LUA_REGISTRYINDEX, SANDBOX_KEY_ENV);
	if (lua_setupvalue(L, -2, 1) == NULL)
		lua_pop(L, 1);
	return LUA_OK;
}

int
lua_sandbox_pcall(struct lua_sandbox *sb, int nargs, int nresults,
    char *err, size_t errsz, char *trace, size_t tracesz)
{
	lua_State *L = sb->L;
	int base, status;

	if (!lua_checkstack(L, 2 + (nresults > 0 ? nresults : 0))) {
		snprintf(err, errsz, "Lua stack exhausted");
		lua_pop(L, nargs + 1);
		return LUA_ERRMEM;
	}
	base = lua_gettop(L) - nargs;
	lua_pushcfunction(L, sandbox_msgh);
	lua_insert(L, base);
	sandbox_arm(sb);
	status = lua_pcall(L, nargs, nresults, base);
	if (status != LUA_OK) {
		sandbox_error(sb, status, err, errsz, trace, tracesz);
		lua_pop(L, 1);
	}
	lua_remove(L, base);
	if (status == LUA_ERRMEM)
		lua_sandbox_collect(sb);
	return status;
}

void
lua_sandbox_collect(struct lua_sandbox *sb)
{
	lua_gc(sb->L, LUA_GCCOLLECT);
}

/* The error on top of the stack (left there) as one line, and its trace. */
static void
sandbox_error(struct lua_sandbox *sb, int status, char *err, size_t errsz,
    char *trace, size_t tracesz)
{
	const char *msg, *nl;
	size_t len, line;

	if (status == LUA_ERRMEM) {
		snprintf(err, errsz, "memory limit exceeded (%zu bytes)",
		    sb->mem_limit);
		if (trace != NULL && tracesz > 0)
			snprintf(trace, tracesz, "%s", err);
		return;
	}
	if ((msg = lua_tolstring(sb->L, -1, &len)) == NULL) {
		msg = "(error object is not a string)";
		len = strlen(msg);
	}
	line = (nl = memchr(msg, '\n', len)) != NULL ? (size_t)(nl - msg) : len;
	sandbox_unshorten(sb, msg, line, err, errsz);
	if (trace != NULL && tracesz > 0)
		snprintf(trace, tracesz, "%.*s", len > (size_t)INT32_MAX ?
		    INT32_MAX : (int)len, msg);
}

/*
 * Lua shortens file names longer than LUA_IDSIZE - 1 to "..." and their
 * tail; put the whole name back when msg starts with one we loaded.
 */
static void
sandbox_unshorten(const struct lua_sandbox *sb, const char *msg, size_t len,
    char *out, size_t outsz)
{
	const size_t keep = LUA_IDSIZE - 4;	/* "..." and a NUL */
	const char *tail;
	size_t i, plen;

	if (len > 3 && memcmp(msg, "...", 3) == 0)
		for (i = 0; i < sb->nsources; i++) {
			plen = strlen(sb->sources[i]);
			if (plen < LUA_IDSIZE)
				continue;
			tail = sb->sources[i] + plen - keep;
			if (len > 3 + keep && memcmp(msg + 3, tail, keep) == 0 &&
			    msg[3 + keep] == ':') {
				snprintf(out, outsz, "%s%.*s", sb->sources[i],
				    (int)(len - 3 - keep), msg + 3 + keep);
				return;
			}
		}
	snprintf(out, outsz, "%.*s", len > (size_t)INT32_MAX ? INT32_MAX :
	    (int)len, msg);
}
