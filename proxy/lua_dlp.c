/*
 * lua_dlp: the `dlp` library (docs/lua-api.md, "dlp"), a thin layer over
 * the scanners in detect.c.
 *
 * Two classes besides the plain functions: a compiled keyword list
 * ("mp.dlp.keywords") and a compiled regular expression ("mp.dlp.regex").
 * Both own C memory outside the Lua heap, freed by their __gc. Both can
 * only be made while a policy file loads, never per message.
 */
#include "lua_dlp.h"

#include <stdint.h>
#include <string.h>

#include <lauxlib.h>

#include "detect.h"
#include "lua_sandbox.h"

#define LUA_DLP_ERR_MAX		256

struct lua_dlp_kw {
	struct detect_kw	*kw;
	size_t			 nterms;
};

struct lua_dlp_re {
	struct detect_re	*re;
};

struct lua_dlp_opt {
	const char	*name;
	unsigned	 flag;
};

typedef size_t	(*lua_dlp_scan_fn)(const char *, size_t, char *, size_t);

static const char *lua_dlp_text(lua_State *, int, size_t *, const char *);
static int	lua_dlp_result(lua_State *, size_t, const char *);
static unsigned	lua_dlp_options(lua_State *, int, const struct lua_dlp_opt *,
		    const char *);
static void	lua_dlp_compiling(lua_State *, const char *);
static int	lua_dlp_scan(lua_State *, lua_dlp_scan_fn, const char *);

static int	lua_dlp_cards(lua_State *);
static int	lua_dlp_ssn(lua_State *);
static int	lua_dlp_iban(lua_State *);
static int	lua_dlp_keywords(lua_State *);
static int	lua_dlp_regex(lua_State *);

static int	lua_dlp_kw_count(lua_State *);
static int	lua_dlp_kw_gc(lua_State *);
static int	lua_dlp_kw_tostring(lua_State *);
static int	lua_dlp_re_count(lua_State *);
static int	lua_dlp_re_gc(lua_State *);
static int	lua_dlp_re_tostring(lua_State *);

static const luaL_Reg lua_dlp_funcs[] = {
	{ "cards",	lua_dlp_cards },
	{ "ssn",	lua_dlp_ssn },
	{ "iban",	lua_dlp_iban },
	{ "keywords",	lua_dlp_keywords },
	{ "regex",	lua_dlp_regex },
	{ NULL, NULL }
};

static const luaL_Reg lua_dlp_kw_methods[] = {
	{ "count",	lua_dlp_kw_count },
	{ NULL, NULL }
};

static const luaL_Reg lua_dlp_kw_meta[] = {
	{ "__gc",	lua_dlp_kw_gc },
	{ "__tostring",	lua_dlp_kw_tostring },
	{ NULL, NULL }
};

static const luaL_Reg lua_dlp_re_methods[] = {
	{ "count",	lua_dlp_re_count },
	{ NULL, NULL }
};

static const luaL_Reg lua_dlp_re_meta[] = {
	{ "__gc",	lua_dlp_re_gc },
	{ "__tostring",	lua_dlp_re_tostring },
	{ NULL, NULL }
};

static const struct lua_dlp_opt lua_dlp_kw_opts[] = {
	{ "whole_word",	DETECT_KW_WORD },
	{ NULL, 0 }
};

static const struct lua_dlp_opt lua_dlp_re_opts[] = {
	{ "caseless",	DETECT_RE_CASELESS },
	{ "multiline",	DETECT_RE_MULTILINE },
	{ "dotall",	DETECT_RE_DOTALL },
	{ "utf",	DETECT_RE_UTF },
	{ NULL, 0 }
};

static void
lua_dlp_class(lua_State *L, const char *meta, const luaL_Reg *mm,
    const luaL_Reg *methods)
{
	luaL_newmetatable(L, meta);
	luaL_setfuncs(L, mm, 0);
	lua_newtable(L);
	luaL_setfuncs(L, methods, 0);
	lua_setfield(L, -2, "__index");
	lua_pushliteral(L, "protected");
	lua_setfield(L, -2, "__metatable");
	lua_pop(L, 1);
}

void
lua_dlp_open(lua_State *L)
{
	lua_dlp_class(L, LUA_DLP_KW_META, lua_dlp_kw_meta, lua_dlp_kw_methods);
	lua_dlp_class(L, LUA_DLP_RE_META, lua_dlp_re_meta, lua_dlp_re_methods);
	luaL_newlib(L, lua_dlp_funcs);
	lua_sandbox_setglobal(L, "dlp");
}

/* A text argument: a string, or nil for "no text" (counts 0). */
static const char *
lua_dlp_text(lua_State *L, int idx, size_t *len, const char *fn)
{
	switch (lua_type(L, idx)) {
	case LUA_TSTRING:
		return lua_tolstring(L, idx, len);
	case LUA_TNIL:
	case LUA_TNONE:
		*len = 0;
		return "";
	default:
		luaL_error(L, "invalid arguments to %s (expected a string or "
		    "nil, got %s)", fn, luaL_typename(L, idx));
		return NULL;
	}
}

static int
lua_dlp_result(lua_State *L, size_t count, const char *sample)
{
	lua_pushinteger(L, count > (size_t)INT64_MAX ? INT64_MAX :
	    (lua_Integer)count);
	if (count > 0 && sample[0] != '\0')
		lua_pushstring(L, sample);
	else
		lua_pushnil(L);
	return 2;
}

/* An options table of booleans, each name from opts. */
static unsigned
lua_dlp_options(lua_State *L, int idx, const struct lua_dlp_opt *opts,
    const char *fn)
{
	const struct lua_dlp_opt *o;
	unsigned flags = 0;

	if (lua_isnoneornil(L, idx))
		return 0;
	if (lua_type(L, idx) != LUA_TTABLE)
		luaL_error(L, "invalid arguments to %s (options must be a "
		    "table)", fn);
	lua_pushnil(L);
	while (lua_next(L, idx)) {
		if (lua_type(L, -2) != LUA_TSTRING)
			luaL_error(L, "%s: option names must be strings", fn);
		for (o = opts; o->name != NULL; o++)
			if (strcmp(o->name, lua_tostring(L, -2)) == 0)
				break;
		if (o->name == NULL)
			luaL_error(L, "%s: unknown option '%s'", fn,
			    lua_tostring(L, -2));
		if (lua_type(L, -1) != LUA_TBOOLEAN)
			luaL_error(L, "%s: option '%s' must be true or false",
			    fn, o->name);
		if (lua_toboolean(L, -1))
			flags |= o->flag;
		lua_pop(L, 1);
	}
	return flags;
}

/* Compiling per message would cost every message: load time only. */
static void
lua_dlp_compiling(lua_State *L, const char *fn)
{
	if (lua_sandbox_phase(L) == SANDBOX_EVAL)
		luaL_error(L, "%s: compile lists and patterns at the top of the "
		    "policy file, not inside match", fn);
}

static int
lua_dlp_scan(lua_State *L, lua_dlp_scan_fn scan, const char *fn)
{
	char sample[DETECT_SAMPLE_MAX];
	const char *s;
	size_t len, n;

	s = lua_dlp_text(L, 1, &len, fn);
	sample[0] = '\0';
	n = scan(s, len, sample, sizeof(sample));
	return lua_dlp_result(L, n, sample);
}

/*** dlp.cards(text) -> count, sample: payment card numbers (Luhn-valid,
 * known issuer prefix and length); sample like "************1111". */
static int
lua_dlp_cards(lua_State *L)
{
	return lua_dlp_scan(L, detect_cards, "dlp.cards");
}

/*** dlp.ssn(text) -> count, sample: US SSNs ddd-dd-dddd or ddd dd dddd;
 * sample like "***-**-6789". */
static int
lua_dlp_ssn(lua_State *L)
{
	return lua_dlp_scan(L, detect_ssn, "dlp.ssn");
}

/*** dlp.iban(text) -> count, sample: IBANs with a valid length and
 * checksum; sample like "DE******************3000". */
static int
lua_dlp_iban(lua_State *L)
{
	return lua_dlp_scan(L, detect_iban, "dlp.iban");
}

/*** dlp.keywords({term, ...} [, {whole_word = true}]) -> list: a compiled
 * keyword list (ASCII case folded; whitespace runs match one space). */
static int
lua_dlp_keywords(lua_State *L)
{
	char err[LUA_DLP_ERR_MAX];
	struct lua_dlp_kw *ud;
	const char **terms;
	unsigned flags;
	size_t i, n, len;

	lua_dlp_compiling(L, "dlp.keywords");
	if (lua_type(L, 1) != LUA_TTABLE)
		return luaL_error(L, "invalid arguments to dlp.keywords "
		    "(expected a list of strings)");
	flags = lua_dlp_options(L, 2, lua_dlp_kw_opts, "dlp.keywords");
	if ((n = lua_rawlen(L, 1)) == 0)
		return luaL_error(L, "dlp.keywords: the list is empty");
	if (n > SIZE_MAX / sizeof(*terms))
		return luaL_error(L, "dlp.keywords: too many terms");
	/* the array is Lua memory: freed by the collector if we raise */
	terms = lua_newuserdatauv(L, n * sizeof(*terms), 0);
	for (i = 0; i < n; i++) {
		if (lua_rawgeti(L, 1, (lua_Integer)i + 1) != LUA_TSTRING)
			return luaL_error(L, "dlp.keywords: term %I is not a "
			    "string", (lua_Integer)i + 1);
		terms[i] = lua_tolstring(L, -1, &len);
		if (len == 0)
			return luaL_error(L, "dlp.keywords: term %I is empty",
			    (lua_Integer)i + 1);
		if (strlen(terms[i]) != len)
			return luaL_error(L, "dlp.keywords: term %I contains "
			    "a NUL byte", (lua_Integer)i + 1);
		lua_pop(L, 1);	/* still held by the list */
	}
	ud = lua_newuserdatauv(L, sizeof(*ud), 0);
	ud->kw = NULL;
	ud->nterms = n;
	luaL_setmetatable(L, LUA_DLP_KW_META);
	err[0] = '\0';
	if ((ud->kw = detect_kw_compile(terms, n, flags, err,
	    sizeof(err))) == NULL)
		return luaL_error(L, "dlp.keywords: %s", err[0] != '\0' ? err :
		    "cannot compile the list");
	return 1;
}

/*** list:count(text) -> count, sample: occurrences of any term
 * (overlapping ones too); sample is the first term that matched. */
static int
lua_dlp_kw_count(lua_State *L)
{
	struct lua_dlp_kw *ud = luaL_testudata(L, 1, LUA_DLP_KW_META);
	char sample[DETECT_SAMPLE_MAX];
	const char *s;
	size_t len, n;

	if (ud == NULL || ud->kw == NULL)
		return luaL_error(L, "invalid arguments to list:count (call it "
		    "as list:count(text))");
	s = lua_dlp_text(L, 2, &len, "list:count");
	sample[0] = '\0';
	n = detect_kw_count(ud->kw, s, len, sample, sizeof(sample));
	return lua_dlp_result(L, n, sample);
}

static int
lua_dlp_kw_gc(lua_State *L)
{
	struct lua_dlp_kw *ud = luaL_checkudata(L, 1, LUA_DLP_KW_META);

	if (ud->kw != NULL)
		detect_kw_free(ud->kw);
	ud->kw = NULL;
	return 0;
}

static int
lua_dlp_kw_tostring(lua_State *L)
{
	struct lua_dlp_kw *ud = luaL_checkudata(L, 1, LUA_DLP_KW_META);

	lua_pushfstring(L, "dlp.keywords (%I terms)", (lua_Integer)ud->nterms);
	return 1;
}

/*** dlp.regex(pattern [, {caseless=, multiline=, dotall=, utf=}]) -> re:
 * a compiled PCRE2 pattern. */
static int
lua_dlp_regex(lua_State *L)
{
	char err[LUA_DLP_ERR_MAX];
	struct lua_dlp_re *ud;
	const char *pat;
	unsigned flags;
	size_t len;

	lua_dlp_compiling(L, "dlp.regex");
	if (lua_type(L, 1) != LUA_TSTRING)
		return luaL_error(L, "invalid arguments to dlp.regex (expected "
		    "a pattern string)");
	pat = lua_tolstring(L, 1, &len);
	flags = lua_dlp_options(L, 2, lua_dlp_re_opts, "dlp.regex");
	ud = lua_newuserdatauv(L, sizeof(*ud), 0);
	ud->re = NULL;
	luaL_setmetatable(L, LUA_DLP_RE_META);
	err[0] = '\0';
	if ((ud->re = detect_re_compile(pat, len, flags, err,
	    sizeof(err))) == NULL)
		return luaL_error(L, "dlp.regex: %s", err[0] != '\0' ? err :
		    "cannot compile the pattern");
	return 1;
}

/*** re:count(text) -> count, sample: non-overlapping matches; sample is
 * the first match with all but its last four letters and digits masked.
 * Raises if the match limit is reached (the message is then deferred). */
static int
lua_dlp_re_count(lua_State *L)
{
	struct lua_dlp_re *ud = luaL_testudata(L, 1, LUA_DLP_RE_META);
	char sample[DETECT_SAMPLE_MAX];
	const char *s;
	size_t len, n = 0;
	int st;

	if (ud == NULL || ud->re == NULL)
		return luaL_error(L, "invalid arguments to re:count (call it "
		    "as re:count(text))");
	s = lua_dlp_text(L, 2, &len, "re:count");
	sample[0] = '\0';
	if ((st = detect_re_count(ud->re, s, len, &n, sample,
	    sizeof(sample))) != DETECT_OK)
		return luaL_error(L, "re:count: %s", detect_strerror(st));
	return lua_dlp_result(L, n, sample);
}

static int
lua_dlp_re_gc(lua_State *L)
{
	struct lua_dlp_re *ud = luaL_checkudata(L, 1, LUA_DLP_RE_META);

	if (ud->re != NULL)
		detect_re_free(ud->re);
	ud->re = NULL;
	return 0;
}

static int
lua_dlp_re_tostring(lua_State *L)
{
	lua_pushliteral(L, "dlp.regex");
	return 1;
}
