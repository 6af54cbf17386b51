/*
 * lua_json: sim.json_decode(s), enough JSON for the proxy's incident log
 * (one object per line) and anything else a scenario reads.
 *
 * Objects become tables, arrays become lists, null becomes nil (so it
 * leaves a hole in an array and no key in an object), numbers are
 * integers when they are written as integers. Nesting is bounded.
 * Returns the value, or nil and "json: offset N: what".
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

#include "lua_sim.h"

#define JSON_DEPTH_MAX	64

struct json {
	lua_State	*L;
	const char	*s;
	size_t		 len;
	size_t		 i;
	const char	*err;
};

static int	json_value(struct json *, int depth);

static void
json_ws(struct json *j)
{
	while (j->i < j->len && (j->s[j->i] == ' ' || j->s[j->i] == '\t' ||
	    j->s[j->i] == '\n' || j->s[j->i] == '\r'))
		j->i++;
}

static int
json_fail(struct json *j, const char *what)
{
	if (j->err == NULL)
		j->err = what;
	return -1;
}

static int
json_hex4(struct json *j, unsigned *out)
{
	unsigned v = 0;
	int k;

	if (j->len - j->i < 4)
		return json_fail(j, "short \\u escape");
	for (k = 0; k < 4; k++) {
		char c = j->s[j->i++];

		v <<= 4;
		if (c >= '0' && c <= '9')
			v |= (unsigned)(c - '0');
		else if (c >= 'a' && c <= 'f')
			v |= (unsigned)(c - 'a' + 10);
		else if (c >= 'A' && c <= 'F')
			v |= (unsigned)(c - 'A' + 10);
		else
			return json_fail(j, "bad \\u escape");
	}
	*out = v;
	return 0;
}

static void
json_utf8(luaL_Buffer *b, unsigned cp)
{
	if (cp < 0x80)
		luaL_addchar(b, (char)cp);
	else if (cp < 0x800) {
		luaL_addchar(b, (char)(0xc0 | (cp >> 6)));
		luaL_addchar(b, (char)(0x80 | (cp & 0x3f)));
	} else if (cp < 0x10000) {
		luaL_addchar(b, (char)(0xe0 | (cp >> 12)));
		luaL_addchar(b, (char)(0x80 | ((cp >> 6) & 0x3f)));
		luaL_addchar(b, (char)(0x80 | (cp & 0x3f)));
	} else {
		luaL_addchar(b, (char)(0xf0 | (cp >> 18)));
		luaL_addchar(b, (char)(0x80 | ((cp >> 12) & 0x3f)));
		luaL_addchar(b, (char)(0x80 | ((cp >> 6) & 0x3f)));
		luaL_addchar(b, (char)(0x80 | (cp & 0x3f)));
	}
}

/* At the opening quote. Pushes the string. */
static int
json_string(struct json *j)
{
	luaL_Buffer b;
	unsigned cp, lo;
	char c;

	j->i++;
	luaL_buffinit(j->L, &b);
	for (;;) {
		if (j->i >= j->len)
			return json_fail(j, "unterminated string");
		c = j->s[j->i++];
		if (c == '"')
			break;
		if ((unsigned char)c < 0x20)
			return json_fail(j, "control character in a string");
		if (c != '\\') {
			luaL_addchar(&b, c);
			continue;
		}
		if (j->i >= j->len)
			return json_fail(j, "unterminated escape");
		switch ((c = j->s[j->i++])) {
		case '"': case '\\': case '/':
			luaL_addchar(&b, c);
			break;
		case 'b': luaL_addchar(&b, '\b'); break;
		case 'f': luaL_addchar(&b, '\f'); break;
		case 'n': luaL_addchar(&b, '\n'); break;
		case 'r': luaL_addchar(&b, '\r'); break;
		case 't': luaL_addchar(&b, '\t'); break;
		case 'u':
			if (json_hex4(j, &cp) == -1)
				return -1;
			if (cp >= 0xd800 && cp < 0xdc00) {
				if (j->len - j->i < 6 || j->s[j->i] != '\\' ||
				    j->s[j->i + 1] != 'u')
					return json_fail(j, "lone surrogate");
				j->i += 2;
				if (json_hex4(j, &lo) == -1)
					return -1;
				if (lo < 0xdc00 || lo > 0xdfff)
					return json_fail(j, "bad surrogate pair");
				cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
			} else if (cp >= 0xdc00 && cp < 0xe000)
				return json_fail(j, "lone surrogate");
			json_utf8(&b, cp);
			break;
		default:
			return json_fail(j, "bad escape");
		}
	}
	luaL_pushresult(&b);
	return 0;
}

static int
json_number(struct json *j)
{
	char tmp[64], *end;
	size_t start = j->i, n;
	int integer = 1;

	if (j->i < j->len && j->s[j->i] == '-')
		j->i++;
	while (j->i < j->len && strchr("0123456789.eE+-", j->s[j->i]) != NULL) {
		if (strchr(".eE", j->s[j->i]) != NULL)
			integer = 0;
		j->i++;
	}
	n = j->i - start;
	if (n == 0 || n >= sizeof(tmp))
		return json_fail(j, "bad number");
	memcpy(tmp, j->s + start, n);
	tmp[n] = '\0';
	errno = 0;
	if (integer) {
		long long v = strtoll(tmp, &end, 10);

		if (*end == '\0' && errno == 0) {
			lua_pushinteger(j->L, (lua_Integer)v);
			return 0;
		}
	}
	errno = 0;
	double d = strtod(tmp, &end);

	if (*end != '\0')
		return json_fail(j, "bad number");
	lua_pushnumber(j->L, d);
	return 0;
}

static int
json_word(struct json *j, const char *w)
{
	size_t n = strlen(w);

	if (j->len - j->i < n || memcmp(j->s + j->i, w, n) != 0)
		return json_fail(j, "unexpected character");
	j->i += n;
	return 0;
}

static int
json_array(struct json *j, int depth)
{
	lua_Integer k = 0;

	j->i++;
	lua_newtable(j->L);
	json_ws(j);
	if (j->i < j->len && j->s[j->i] == ']') {
		j->i++;
		return 0;
	}
	for (;;) {
		if (json_value(j, depth + 1) == -1)
			return -1;
		lua_rawseti(j->L, -2, ++k);
		json_ws(j);
		if (j->i >= j->len)
			return json_fail(j, "unterminated array");
		if (j->s[j->i] == ']') {
			j->i++;
			return 0;
		}
		if (j->s[j->i++] != ',')
			return json_fail(j, "expected ',' or ']'");
	}
}

static int
json_object(struct json *j, int depth)
{
	j->i++;
	lua_newtable(j->L);
	json_ws(j);
	if (j->i < j->len && j->s[j->i] == '}') {
		j->i++;
		return 0;
	}
	for (;;) {
		json_ws(j);
		if (j->i >= j->len || j->s[j->i] != '"')
			return json_fail(j, "expected a key");
		if (json_string(j) == -1)
			return -1;
		json_ws(j);
		if (j->i >= j->len || j->s[j->i++] != ':')
			return json_fail(j, "expected ':'");
		if (json_value(j, depth + 1) == -1)
			return -1;
		lua_rawset(j->L, -3);
		json_ws(j);
		if (j->i >= j->len)
			return json_fail(j, "unterminated object");
		if (j->s[j->i] == '}') {
			j->i++;
			return 0;
		}
		if (j->s[j->i++] != ',')
			return json_fail(j, "expected ',' or '}'");
	}
}

static int
json_value(struct json *j, int depth)
{
	if (depth > JSON_DEPTH_MAX)
		return json_fail(j, "nested too deeply");
	luaL_checkstack(j->L, 4, "json");
	json_ws(j);
	if (j->i >= j->len)
		return json_fail(j, "unexpected end");
	switch (j->s[j->i]) {
	case '{':
		return json_object(j, depth);
	case '[':
		return json_array(j, depth);
	case '"':
		return json_string(j);
	case 't':
		if (json_word(j, "true") == -1)
			return -1;
		lua_pushboolean(j->L, 1);
		return 0;
	case 'f':
		if (json_word(j, "false") == -1)
			return -1;
		lua_pushboolean(j->L, 0);
		return 0;
	case 'n':
		if (json_word(j, "null") == -1)
			return -1;
		lua_pushnil(j->L);
		return 0;
	default:
		if (j->s[j->i] == '-' || (j->s[j->i] >= '0' && j->s[j->i] <= '9'))
			return json_number(j);
		return json_fail(j, "unexpected character");
	}
}

int
lua_json_decode(lua_State *L)
{
	struct json j;
	int top;

	memset(&j, 0, sizeof(j));
	j.L = L;
	j.s = luaL_checklstring(L, 1, &j.len);
	top = lua_gettop(L);
	if (json_value(&j, 0) == 0) {
		json_ws(&j);
		if (j.i == j.len)
			return 1;
		json_fail(&j, "trailing characters");
	}
	lua_settop(L, top);
	lua_pushnil(L);
	lua_pushfstring(L, "json: offset %d: %s", (int)j.i, j.err);
	return 2;
}
