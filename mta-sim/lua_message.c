/*
 * lua_message: a message as a role recorded it (a sink, or an MTA event),
 * and building one from a Lua table (sim.message, t:send).
 *
 * A message object is a snapshot: its bytes are copied out of the role
 * when the object is made, so it stays valid after the role is gone.
 * Fields: id, role, listener, client_ip, helo, from (the envelope sender,
 * "" for <>), rcpts, content, body, size, time, subject, tls ("TLSv1.3
 * CIPHER" when it came over STARTTLS, else nil). Methods:
 * m:header(name), m:headers([name]). Unknown fields raise, so a typo
 * fails instead of reading as nil.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <lauxlib.h>

#include "buf.h"
#include "lua_sim.h"
#include "roles.h"

#define LUA_MESSAGE_MT		"sim.message"
#define LUA_MESSAGE_HDR_MAX	65536	/* longest unfolded header we return */

struct lua_message {
	unsigned long	 id;
	char		*role;
	char		*listener;
	char		*client_ip;
	char		*helo;
	char		*mail_from;
	char	       **rcpts;
	size_t		 nrcpts;
	char		*content;
	size_t		 len;
	double		 t;
	char		*tls;		/* NULL: it came in plaintext */
};

static char *
lua_message_dup(const char *s)
{
	return strdup(s != NULL ? s : "");
}

static int
lua_message_gc(lua_State *L)
{
	struct lua_message *m = luaL_checkudata(L, 1, LUA_MESSAGE_MT);
	size_t i;

	free(m->role);
	free(m->listener);
	free(m->client_ip);
	free(m->helo);
	free(m->mail_from);
	for (i = 0; i < m->nrcpts && m->rcpts != NULL; i++)
		free(m->rcpts[i]);
	free(m->rcpts);
	free(m->content);
	free(m->tls);
	memset(m, 0, sizeof(*m));
	return 0;
}

void
lua_message_push(lua_State *L, const struct sim_msg *src)
{
	struct lua_message *m;
	size_t i;

	m = lua_newuserdatauv(L, sizeof(*m), 0);
	memset(m, 0, sizeof(*m));
	luaL_setmetatable(L, LUA_MESSAGE_MT);
	m->id = src->id;
	m->t = src->t;
	m->role = lua_message_dup(src->role);
	m->listener = lua_message_dup(src->listener);
	m->client_ip = lua_message_dup(src->client_ip);
	m->helo = lua_message_dup(src->helo);
	m->mail_from = lua_message_dup(src->mail_from);
	m->content = malloc(src->content.len + 1);
	if (src->tls != NULL && (m->tls = strdup(src->tls)) == NULL)
		luaL_error(L, "out of memory");
	if (src->nrcpts > 0)
		m->rcpts = calloc(src->nrcpts, sizeof(*m->rcpts));
	if (m->role == NULL || m->listener == NULL || m->client_ip == NULL ||
	    m->helo == NULL || m->mail_from == NULL || m->content == NULL ||
	    (src->nrcpts > 0 && m->rcpts == NULL))
		luaL_error(L, "out of memory");
	if (src->content.len > 0)
		memcpy(m->content, src->content.data, src->content.len);
	m->content[src->content.len] = '\0';
	m->len = src->content.len;
	for (i = 0; i < src->nrcpts; i++) {
		if ((m->rcpts[i] = lua_message_dup(src->rcpts[i])) == NULL)
			luaL_error(L, "out of memory");
		m->nrcpts = i + 1;
	}
}

/* Where the body starts (after the blank line), or len if none. */
static size_t
lua_message_body_at(const struct lua_message *m)
{
	const char *p = m->content, *end = m->content + m->len;

	if (m->len >= 2 && p[0] == '\r' && p[1] == '\n')
		return 2;
	if (m->len >= 1 && p[0] == '\n')
		return 1;
	for (; p < end; p++) {
		if (*p != '\n')
			continue;
		if (p + 1 < end && p[1] == '\n')
			return (size_t)(p + 2 - m->content);
		if (p + 2 < end && p[1] == '\r' && p[2] == '\n')
			return (size_t)(p + 3 - m->content);
	}
	return m->len;
}

/*
 * Call back for each header field (unfolded: CRLF before a continuation
 * line removed). name NULL: every field, pushed as "Name: value";
 * otherwise the values of fields called name (any case), trimmed.
 */
static int
lua_message_scan(lua_State *L, const struct lua_message *m, const char *name,
    int first_only)
{
	size_t hend = lua_message_body_at(m), i = 0, nlen;
	struct buf field = BUF_INIT;
	const char *p = m->content, *colon, *v, *e;
	int n = 0;

	nlen = name != NULL ? strlen(name) : 0;
	while (i < hend) {
		size_t ls = i, le;

		/* One field: its first line and any continuation lines. */
		buf_reset(&field);
		for (;;) {
			le = ls;
			while (le < hend && p[le] != '\n')
				le++;
			size_t cut = le > ls && p[le - 1] == '\r' ? le - 1 : le;

			if (field.len < LUA_MESSAGE_HDR_MAX)
				buf_append(&field, p + ls, cut - ls);
			ls = le + 1;
			if (ls >= hend || (p[ls] != ' ' && p[ls] != '\t'))
				break;
		}
		i = ls;
		if (field.len == 0)
			continue;
		buf_cstr(&field);
		colon = memchr(field.data, ':', field.len);
		if (colon == NULL)
			continue;
		if (name == NULL) {
			lua_pushlstring(L, field.data, field.len);
			lua_rawseti(L, -2, ++n);
			continue;
		}
		if ((size_t)(colon - field.data) != nlen ||
		    strncasecmp(field.data, name, nlen) != 0)
			continue;
		v = colon + 1;
		e = field.data + field.len;
		while (v < e && (*v == ' ' || *v == '\t'))
			v++;
		while (e > v && (e[-1] == ' ' || e[-1] == '\t'))
			e--;
		lua_pushlstring(L, v, (size_t)(e - v));
		n++;
		if (first_only)
			break;
		lua_rawseti(L, -2, n);
	}
	buf_free(&field);
	return n;
}

/* m:header(name): the first such field's value, or nil. */
static int
lua_message_header(lua_State *L)
{
	struct lua_message *m = luaL_checkudata(L, 1, LUA_MESSAGE_MT);
	const char *name = luaL_checkstring(L, 2);

	if (lua_message_scan(L, m, name, 1) == 0)
		lua_pushnil(L);
	return 1;
}

/* m:headers(name): every value, in order; m:headers(): every field. */
static int
lua_message_headers(lua_State *L)
{
	struct lua_message *m = luaL_checkudata(L, 1, LUA_MESSAGE_MT);
	const char *name = luaL_optstring(L, 2, NULL);

	lua_newtable(L);
	lua_message_scan(L, m, name, 0);
	return 1;
}

static const luaL_Reg lua_message_methods[] = {
	{ "header",	lua_message_header },
	{ "headers",	lua_message_headers },
	{ NULL,		NULL }
};

static int
lua_message_index(lua_State *L)
{
	struct lua_message *m = luaL_checkudata(L, 1, LUA_MESSAGE_MT);
	const char *k = luaL_checkstring(L, 2);
	size_t i, at;

	if (luaL_getmetafield(L, 1, "methods") != LUA_TNIL) {
		if (lua_getfield(L, -1, k) != LUA_TNIL)
			return 1;
		lua_pop(L, 2);
	}
	if (strcmp(k, "id") == 0)
		lua_pushinteger(L, (lua_Integer)m->id);
	else if (strcmp(k, "role") == 0)
		lua_pushstring(L, m->role);
	else if (strcmp(k, "listener") == 0)
		lua_pushstring(L, m->listener);
	else if (strcmp(k, "client_ip") == 0)
		lua_pushstring(L, m->client_ip);
	else if (strcmp(k, "helo") == 0)
		lua_pushstring(L, m->helo);
	else if (strcmp(k, "from") == 0)
		lua_pushstring(L, m->mail_from);
	else if (strcmp(k, "rcpts") == 0) {
		lua_createtable(L, (int)m->nrcpts, 0);
		for (i = 0; i < m->nrcpts; i++) {
			lua_pushstring(L, m->rcpts[i]);
			lua_rawseti(L, -2, (lua_Integer)i + 1);
		}
	} else if (strcmp(k, "content") == 0)
		lua_pushlstring(L, m->content, m->len);
	else if (strcmp(k, "body") == 0) {
		at = lua_message_body_at(m);
		lua_pushlstring(L, m->content + at, m->len - at);
	} else if (strcmp(k, "size") == 0)
		lua_pushinteger(L, (lua_Integer)m->len);
	else if (strcmp(k, "time") == 0)
		lua_pushnumber(L, m->t);
	else if (strcmp(k, "tls") == 0) {
		if (m->tls != NULL)
			lua_pushstring(L, m->tls);
		else
			lua_pushnil(L);
	}
	else if (strcmp(k, "subject") == 0) {
		if (lua_message_scan(L, m, "Subject", 1) == 0)
			lua_pushnil(L);
	} else
		return luaL_error(L, "message has no field '%s'", k);
	return 1;
}

static int
lua_message_tostring(lua_State *L)
{
	struct lua_message *m = luaL_checkudata(L, 1, LUA_MESSAGE_MT);

	lua_pushfstring(L, "message %s#%d from <%s> (%d octets)", m->role,
	    (int)m->id, m->mail_from, (int)m->len);
	return 1;
}

void
lua_message_register(lua_State *L)
{
	luaL_newmetatable(L, LUA_MESSAGE_MT);
	luaL_newlib(L, lua_message_methods);
	lua_setfield(L, -2, "methods");
	lua_pushcfunction(L, lua_message_index);
	lua_setfield(L, -2, "__index");
	lua_pushcfunction(L, lua_message_gc);
	lua_setfield(L, -2, "__gc");
	lua_pushcfunction(L, lua_message_tostring);
	lua_setfield(L, -2, "__tostring");
	lua_pushliteral(L, "sim.message");
	lua_setfield(L, -2, "__metatable");
	lua_pop(L, 1);
}

/* ---- building ---------------------------------------------------------------- */

/*
 * Header lines from spec.headers: a list of "Name: value" strings, a map
 * { ["X-CFilter"] = "Encrypt" } (in name order), or both. Pushes an anchor.
 */
static const char **
lua_message_spec_headers(lua_State *L, int idx, size_t *np, const char *fname)
{
	const char **v;
	size_t n = 0, cap, i;
	int anchor, list;

	idx = lua_absindex(L, idx);
	lua_newtable(L);
	anchor = lua_gettop(L);
	*np = 0;
	if (lua_getfield(L, idx, "headers") == LUA_TNIL) {
		lua_pop(L, 1);
		return NULL;
	}
	if (!lua_istable(L, -1))
		luaL_error(L, "%s: headers must be a table", fname);
	list = lua_gettop(L);
	/* Named ones first, sorted, so a message is the same on every run. */
	lua_newtable(L);
	lua_pushnil(L);
	while (lua_next(L, list) != 0) {
		if (lua_type(L, -2) == LUA_TSTRING) {
			if (lua_type(L, -1) != LUA_TSTRING)
				luaL_error(L, "%s: headers.%s must be a string",
				    fname, lua_tostring(L, -2));
			lua_pushfstring(L, "%s: %s", lua_tostring(L, -2),
			    lua_tostring(L, -1));
			lua_rawseti(L, list + 1, (lua_Integer)lua_rawlen(L,
			    list + 1) + 1);
		} else if (lua_type(L, -2) != LUA_TNUMBER)
			luaL_error(L, "%s: bad key in headers", fname);
		lua_pop(L, 1);
	}
	lua_getglobal(L, "table");
	lua_getfield(L, -1, "sort");
	lua_pushvalue(L, list + 1);
	lua_call(L, 1, 0);
	lua_pop(L, 1);
	cap = lua_rawlen(L, list) + lua_rawlen(L, list + 1);
	v = lua_newuserdatauv(L, (cap + 1) * sizeof(*v), 0);
	lua_setfield(L, anchor, "ptrs");
	for (i = 1; i <= lua_rawlen(L, list); i++) {
		if (lua_rawgeti(L, list, (lua_Integer)i) != LUA_TSTRING)
			luaL_error(L, "%s: headers[%d] must be a \"Name: value\" "
			    "string", fname, (int)i);
		v[n] = lua_tostring(L, -1);
		lua_rawseti(L, anchor, (lua_Integer)++n);
	}
	for (i = 1; i <= lua_rawlen(L, list + 1); i++) {
		lua_rawgeti(L, list + 1, (lua_Integer)i);
		v[n] = lua_tostring(L, -1);
		lua_rawseti(L, anchor, (lua_Integer)++n);
	}
	for (i = 0; i < n; i++)
		if (strchr(v[i], ':') == NULL || strpbrk(v[i], "\r\n") != NULL)
			luaL_error(L, "%s: header \"%s\" is not one \"Name: "
			    "value\" line", fname, v[i]);
	v[n] = NULL;
	lua_settop(L, anchor);
	*np = n;
	return v;
}

/* Attachments: { {filename=, content_type=, data=}, ... }. Pushes an anchor. */
static struct sim_attachment *
lua_message_spec_attachments(lua_State *L, int idx, size_t *np,
    const char *fname)
{
	static const char *const keys[] = { "filename", "content_type", "data",
	    NULL };
	struct sim_attachment *a;
	size_t n, i;
	int anchor;

	idx = lua_absindex(L, idx);
	*np = 0;
	lua_newtable(L);
	anchor = lua_gettop(L);
	if (lua_getfield(L, idx, "attachments") == LUA_TNIL) {
		lua_pop(L, 1);
		return NULL;
	}
	if (!lua_istable(L, -1))
		luaL_error(L, "%s: attachments must be a list of tables", fname);
	/* The list holds the tables that hold the strings. */
	lua_pushvalue(L, -1);
	lua_setfield(L, anchor, "list");
	n = lua_rawlen(L, -1);
	a = lua_newuserdatauv(L, (n + 1) * sizeof(*a), 0);
	memset(a, 0, (n + 1) * sizeof(*a));
	lua_setfield(L, anchor, "ptrs");
	for (i = 0; i < n; i++) {
		lua_rawgeti(L, -1, (lua_Integer)i + 1);
		if (!lua_istable(L, -1))
			luaL_error(L, "%s: attachments[%d] must be a table",
			    fname, (int)i + 1);
		lua_sim_check_opts(L, -1, fname, keys);
		a[i].filename = lua_sim_opt_string(L, -1, "filename", NULL,
		    fname);
		a[i].content_type = lua_sim_opt_string(L, -1, "content_type",
		    "application/octet-stream", fname);
		if (lua_getfield(L, -1, "data") != LUA_TSTRING)
			luaL_error(L, "%s: attachments[%d].data must be a "
			    "string", fname, (int)i + 1);
		a[i].data = lua_tolstring(L, -1, &a[i].len);
		lua_pop(L, 2);
	}
	lua_settop(L, anchor);
	*np = n;
	return a;
}

void
lua_message_build(lua_State *L, int idx, int envelope, struct buf *out,
    const char *fname)
{
	struct sim_msg_spec spec;
	struct buf to = BUF_INIT;
	const char *content, **rc;
	size_t len, nrc, i;
	int top = lua_gettop(L);

	idx = lua_absindex(L, idx);
	/* Given as is: nothing to build. */
	if (lua_getfield(L, idx, "content") != LUA_TNIL) {
		if (lua_type(L, -1) != LUA_TSTRING)
			luaL_error(L, "%s: content must be a string", fname);
		content = lua_tolstring(L, -1, &len);
		if (buf_append(out, content, len) == -1)
			luaL_error(L, "out of memory");
		lua_settop(L, top);
		return;
	}
	lua_pop(L, 1);
	memset(&spec, 0, sizeof(spec));
	spec.from = lua_sim_opt_string(L, idx, "header_from", NULL, fname);
	if (spec.from == NULL)
		spec.from = lua_sim_opt_string(L, idx, "from", NULL, fname);
	spec.to = lua_sim_opt_string(L, idx, "header_to", NULL, fname);
	/* sim.message{to=}; in t:send, `to` is where to send it. */
	if (spec.to == NULL && !envelope)
		spec.to = lua_sim_opt_string(L, idx, "to", NULL, fname);
	if (spec.to == NULL && envelope) {
		/* The envelope recipients. */
		rc = lua_sim_opt_strings(L, idx, "rcpt", 0, &nrc, fname);
		for (i = 0; i < nrc; i++) {
			if (i > 0)
				buf_appends(&to, ", ");
			buf_appends(&to, rc[i]);
		}
		if (nrc > 0) {
			lua_pushlstring(L, to.data, to.len);
			spec.to = lua_tostring(L, -1);
		}
		buf_free(&to);
	}
	spec.subject = lua_sim_opt_string(L, idx, "subject", NULL, fname);
	spec.body = lua_sim_opt_string(L, idx, "body", NULL, fname);
	spec.pad_to = (size_t)lua_sim_opt_number(L, idx, "size", 0, 0,
	    256.0 * 1024 * 1024, fname);
	spec.headers = lua_message_spec_headers(L, idx, &spec.nheaders, fname);
	spec.attachments = lua_message_spec_attachments(L, idx,
	    &spec.nattachments, fname);
	if (sim_msg_build(out, &spec) == -1)
		luaL_error(L, "%s: cannot build the message", fname);
	lua_settop(L, top);
}
