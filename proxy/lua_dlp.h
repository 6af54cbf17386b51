/*
 * lua_dlp: the `dlp` library of detection primitives (docs/lua-api.md),
 * Lua bindings of detect.h.
 *
 * dlp.cards/ssn/iban(text) -> count, masked sample or nil
 * dlp.keywords({terms}, {whole_word=}) -> list with :count(text)
 * dlp.regex(pattern, {caseless=, multiline=, dotall=, utf=}) -> :count(text)
 *
 * Lists and patterns are compiled when a policy file is loaded; creating
 * one inside match() raises, so the cost is paid once.
 */
#ifndef MP_LUA_DLP_H
#define MP_LUA_DLP_H

#include <lua.h>

#define LUA_DLP_KW_META		"mp.dlp.keywords"
#define LUA_DLP_RE_META		"mp.dlp.regex"

/*
 * Register the metatables and install the global `dlp` (a read-only
 * table). Raises on memory exhaustion: call it protected, during setup.
 */
void	lua_dlp_open(lua_State *);

#endif
