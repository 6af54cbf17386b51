/*
 * lua_msg: the `msg` object (class "msg" in docs/lua-api.md).
 *
 * Fields are computed on access (msg.sender, ...); methods are looked up
 * in a luaL_Reg table. Every access checks that the handle is still
 * attached to a message. Tables handed out are fresh on every access, so
 * a policy that changes one cannot change what the next policy sees;
 * large strings (text, attachment contents) are made once per message
 * and cached in the userdata's user value.
 */
#include "lua_msg.h"

#include <stdint.h>
#include <string.h>

#include <lauxlib.h>

#include "mime.h"
#include "policy.h"

struct lua_msg_ud {
	struct lua_msg_ctx	*ctx;	/* NULL once the message is done */
};

typedef void	(*lua_msg_field_fn)(lua_State *, struct lua_msg_ctx *);

struct lua_msg_field {
	const char		*name;
	lua_msg_field_fn	 get;
};

static struct lua_msg_ctx *lua_msg_check(lua_State *, const char *);
static struct mime_msg	*lua_msg_mime(lua_State *, struct lua_msg_ctx *);
static void	lua_msg_cache(lua_State *, int);
static void	lua_msg_pushopt(lua_State *, const char *);

static void	lua_msg_f_sender(lua_State *, struct lua_msg_ctx *);
static void	lua_msg_f_recipients(lua_State *, struct lua_msg_ctx *);
static void	lua_msg_f_helo(lua_State *, struct lua_msg_ctx *);
static void	lua_msg_f_client_ip(lua_State *, struct lua_msg_ctx *);
static void	lua_msg_f_size(lua_State *, struct lua_msg_ctx *);
static void	lua_msg_f_subject(lua_State *, struct lua_msg_ctx *);

static int	lua_msg_header(lua_State *);
static int	lua_msg_headers(lua_State *);
static int	lua_msg_text(lua_State *);
static int	lua_msg_attachments(lua_State *);

static int	lua_msg_index(lua_State *);
static int	lua_msg_newindex(lua_State *);
static int	lua_msg_tostring(lua_State *);

static const struct lua_msg_field lua_msg_fields[] = {
	{ "sender",	lua_msg_f_sender },
	{ "recipients",	lua_msg_f_recipients },
	{ "helo",	lua_msg_f_helo },
	{ "client_ip",	lua_msg_f_client_ip },
	{ "size",	lua_msg_f_size },
	{ "subject",	lua_msg_f_subject },
	{ NULL, NULL }
};

static const luaL_Reg lua_msg_methods[] = {
	{ "header",	 lua_msg_header },
	{ "headers",	 lua_msg_headers },
	{ "text",	 lua_msg_text },
	{ "attachments", lua_msg_attachments },
	{ NULL, NULL }
};

static const luaL_Reg lua_msg_meta[] = {
	{ "__newindex",	lua_msg_newindex },
	{ "__tostring",	lua_msg_tostring },
	{ NULL, NULL }
};

void
lua_msg_open(lua_State *L)
{
	luaL_newmetatable(L, LUA_MSG_META);
	luaL_setfuncs(L, lua_msg_meta, 0);
	luaL_newlib(L, lua_msg_methods);
	lua_pushcclosure(L, lua_msg_index, 1);
	lua_setfield(L, -2, "__index");
	lua_pushliteral(L, "protected");
	lua_setfield(L, -2, "__metatable");
	lua_pop(L, 1);
}

int
lua_msg_new(lua_State *L)
{
	struct lua_msg_ctx *ctx = lua_touserdata(L, 1);
	struct lua_msg_ud *ud;

	ud = lua_newuserdatauv(L, sizeof(*ud), 1);
	ud->ctx = NULL;
	luaL_setmetatable(L, LUA_MSG_META);
	lua_newtable(L);
	lua_setiuservalue(L, -2, 1);
	ud->ctx = ctx;
	return 1;
}

void
lua_msg_invalidate(lua_State *L, int idx)
{
	struct lua_msg_ud *ud = luaL_testudata(L, idx, LUA_MSG_META);

	if (ud == NULL)
		return;
	ud->ctx = NULL;
	/* drop the cached strings even if a policy kept the object */
	lua_pushnil(L);
	lua_setiuservalue(L, idx, 1);
}

void
lua_msg_ctx_clear(struct lua_msg_ctx *ctx)
{
	mime_free(ctx->mime);
	ctx->mime = NULL;
}

/* Self of a method, attached to a message, or raise. */
static struct lua_msg_ctx *
lua_msg_check(lua_State *L, const char *fn)
{
	struct lua_msg_ud *ud = luaL_testudata(L, 1, LUA_MSG_META);

	if (ud == NULL) {
		luaL_error(L, "invalid arguments to msg:%s (call it as "
		    "msg:%s(...))", fn, fn);
		return NULL;
	}
	if (ud->ctx == NULL)
		luaL_error(L, "msg:%s: msg is no longer valid (it can only be "
		    "used during the match call it was given to)", fn);
	return ud->ctx;
}

/* Parsed once per message, by whichever policy needs it first. */
static struct mime_msg *
lua_msg_mime(lua_State *L, struct lua_msg_ctx *ctx)
{
	const char *data;

	if (ctx->mime != NULL)
		return ctx->mime;
	data = ctx->env->content != NULL ? ctx->env->content : "";
	if ((ctx->mime = mime_parse(data, ctx->env->content != NULL ?
	    ctx->env->size : 0, NULL)) == NULL)
		luaL_error(L, "msg: out of memory parsing the message");
	return ctx->mime;
}

/* Push the cache table of the msg at idx. */
static void
lua_msg_cache(lua_State *L, int idx)
{
	lua_getiuservalue(L, idx, 1);
}

static void
lua_msg_pushopt(lua_State *L, const char *s)
{
	if (s != NULL)
		lua_pushstring(L, s);
	else
		lua_pushnil(L);
}

/*** msg.sender: the envelope sender (MAIL FROM), "" for the null sender <>. */
static void
lua_msg_f_sender(lua_State *L, struct lua_msg_ctx *ctx)
{
	lua_pushstring(L, ctx->env->sender != NULL ? ctx->env->sender : "");
}

/*** msg.recipients: the envelope recipients (RCPT TO), an array of strings. */
static void
lua_msg_f_recipients(lua_State *L, struct lua_msg_ctx *ctx)
{
	size_t i, n = ctx->env->nrecipients;

	lua_createtable(L, n > INT32_MAX ? INT32_MAX : (int)n, 0);
	for (i = 0; i < n; i++) {
		lua_pushstring(L, ctx->env->recipients[i]);
		lua_rawseti(L, -2, (lua_Integer)i + 1);
	}
}

/*** msg.helo: the name the client gave in HELO/EHLO, or nil. */
static void
lua_msg_f_helo(lua_State *L, struct lua_msg_ctx *ctx)
{
	lua_msg_pushopt(L, ctx->env->helo);
}

/*** msg.client_ip: the address of the connecting MTA, or nil. */
static void
lua_msg_f_client_ip(lua_State *L, struct lua_msg_ctx *ctx)
{
	lua_msg_pushopt(L, ctx->env->client_ip);
}

/*** msg.size: the size of the message in octets (as received, CRLF). */
static void
lua_msg_f_size(lua_State *L, struct lua_msg_ctx *ctx)
{
	lua_pushinteger(L, (lua_Integer)ctx->env->size);
}

/*** msg.subject: the first Subject, RFC 2047-decoded to UTF-8, or nil. */
static void
lua_msg_f_subject(lua_State *L, struct lua_msg_ctx *ctx)
{
	const char *s;
	size_t len;

	if ((s = mime_subject(lua_msg_mime(L, ctx), &len)) == NULL)
		lua_pushnil(L);
	else
		lua_pushlstring(L, s, len);
}

/*
 * msg.<field> or msg:<method>. Fields need a live message; methods are
 * returned as they are and check for themselves when called.
 */
static int
lua_msg_index(lua_State *L)
{
	struct lua_msg_ud *ud = luaL_checkudata(L, 1, LUA_MSG_META);
	const struct lua_msg_field *f;
	const char *key;

	if (lua_type(L, 2) != LUA_TSTRING)
		return luaL_error(L, "msg has no field of type %s",
		    luaL_typename(L, 2));
	key = lua_tostring(L, 2);
	for (f = lua_msg_fields; f->name != NULL; f++)
		if (strcmp(f->name, key) == 0) {
			if (ud->ctx == NULL)
				return luaL_error(L, "msg.%s: msg is no longer "
				    "valid (it can only be used during the "
				    "match call it was given to)", key);
			f->get(L, ud->ctx);
			return 1;
		}
	if (lua_getfield(L, lua_upvalueindex(1), key) != LUA_TNIL)
		return 1;
	return luaL_error(L, "msg has no field '%s'", key);
}

static int
lua_msg_newindex(lua_State *L)
{
	return luaL_error(L, "msg is read-only");
}

static int
lua_msg_tostring(lua_State *L)
{
	struct lua_msg_ud *ud = luaL_checkudata(L, 1, LUA_MSG_META);

	lua_pushstring(L, ud->ctx != NULL ? "msg" : "msg (no longer valid)");
	return 1;
}

static const char *
lua_msg_name_arg(lua_State *L, const char *fn)
{
	if (lua_type(L, 2) != LUA_TSTRING || lua_gettop(L) != 2)
		luaL_error(L, "invalid arguments to msg:%s (expected a header "
		    "name)", fn);
	return lua_tostring(L, 2);
}

/*** msg:header(name) -> string|nil: the first top-level field of that
 * name (any letter case), unfolded and trimmed, not decoded. */
static int
lua_msg_header(lua_State *L)
{
	struct lua_msg_ctx *ctx = lua_msg_check(L, "header");
	const char *name = lua_msg_name_arg(L, "header"), *v;
	size_t len;

	if ((v = mime_header(lua_msg_mime(L, ctx), name, 0, &len)) == NULL)
		lua_pushnil(L);
	else
		lua_pushlstring(L, v, len);
	return 1;
}

/*** msg:headers(name) -> array: every top-level field of that name, in
 * order; empty when there is none. */
static int
lua_msg_headers(lua_State *L)
{
	struct lua_msg_ctx *ctx = lua_msg_check(L, "headers");
	const char *name = lua_msg_name_arg(L, "headers"), *v;
	struct mime_msg *m = lua_msg_mime(L, ctx);
	size_t i, n, len;

	n = mime_header_count(m, name);
	lua_createtable(L, n > INT32_MAX ? INT32_MAX : (int)n, 0);
	for (i = 0; i < n; i++) {
		if ((v = mime_header(m, name, i, &len)) == NULL)
			break;
		lua_pushlstring(L, v, len);
		lua_rawseti(L, -2, (lua_Integer)i + 1);
	}
	return 1;
}

/*** msg:text() -> string: the text of every text part, decoded to UTF-8,
 * HTML stripped, LF line ends, parts joined by "\n"; "" when none. */
static int
lua_msg_text(lua_State *L)
{
	struct lua_msg_ctx *ctx = lua_msg_check(L, "text");
	const char *s;
	size_t len;

	if (lua_gettop(L) != 1)
		return luaL_error(L, "invalid arguments to msg:text (it takes "
		    "none)");
	lua_msg_cache(L, 1);
	if (lua_getfield(L, -1, "text") == LUA_TSTRING)
		return 1;
	lua_pop(L, 1);
	if ((s = mime_text(lua_msg_mime(L, ctx), &len)) == NULL)
		return luaL_error(L, "msg:text: out of memory");
	lua_pushlstring(L, s, len);
	lua_pushvalue(L, -1);
	lua_setfield(L, -3, "text");
	return 1;
}

/*** msg:attachments() -> array of {filename=, content_type=, size=,
 * content=}: every attachment in document order, contents decoded.
 * filename is nil when the part has none. */
static int
lua_msg_attachments(lua_State *L)
{
	struct lua_msg_ctx *ctx = lua_msg_check(L, "attachments");
	const struct mime_attachment *a;
	struct mime_msg *m;
	size_t i, n;
	int cache, contents;

	if (lua_gettop(L) != 1)
		return luaL_error(L, "invalid arguments to msg:attachments (it "
		    "takes none)");
	m = lua_msg_mime(L, ctx);
	n = mime_nattachments(m);
	if (n > INT32_MAX)
		n = INT32_MAX;
	lua_msg_cache(L, 1);
	cache = lua_gettop(L);
	if (lua_getfield(L, cache, "contents") != LUA_TTABLE) {
		lua_pop(L, 1);
		lua_createtable(L, (int)n, 0);
		for (i = 0; i < n; i++) {
			a = mime_attachment(m, i);
			lua_pushlstring(L, a->content != NULL ? a->content : "",
			    a->content != NULL ? a->size : 0);
			lua_rawseti(L, -2, (lua_Integer)i + 1);
		}
		lua_pushvalue(L, -1);
		lua_setfield(L, cache, "contents");
	}
	contents = lua_gettop(L);

	lua_createtable(L, (int)n, 0);
	for (i = 0; i < n; i++) {
		a = mime_attachment(m, i);
		lua_createtable(L, 0, 4);
		if (a->filename != NULL) {
			lua_pushlstring(L, a->filename, a->filename_len);
			lua_setfield(L, -2, "filename");
		}
		lua_pushstring(L, a->content_type != NULL ? a->content_type :
		    "application/octet-stream");
		lua_setfield(L, -2, "content_type");
		lua_pushinteger(L, (lua_Integer)a->size);
		lua_setfield(L, -2, "size");
		lua_rawgeti(L, contents, (lua_Integer)i + 1);
		lua_setfield(L, -2, "content");
		lua_rawseti(L, -2, (lua_Integer)i + 1);
	}
	return 1;
}
