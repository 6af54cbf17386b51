/*
 * lua_result: t:send{} and t:send_all{}, one SMTP session per message
 * (roles.h sim_send), and the result table each returns.
 *
 * A send belongs to the scenario (runner_own): everything the sender
 * reads (addresses, the message) is anchored in the send object's user
 * value until teardown, and a session still running at teardown is
 * cancelled there.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

#include "buf.h"
#include "lua_sim.h"
#include "roles.h"
#include "runner.h"

#define LUA_SEND_MT		"sim.send"
#define LUA_SEND_TIMEOUT	30.0
#define LUA_SEND_FROM		"sender@sim.test"
#define LUA_SEND_HELO		"client.sim.test"
#define LUA_SEND_ALL_MAX	10000

/* The replies whose text is kept: the one that decided is `text`. */
enum lua_send_reply {
	LUA_SEND_GREETING,
	LUA_SEND_MAIL,
	LUA_SEND_RCPT,		/* the first recipient's */
	LUA_SEND_DATA,
	LUA_SEND_FINAL,
	LUA_SEND_NREPLIES
};

struct lua_send {
	struct sim_send	*s;		/* NULL once done or cancelled */
	int		 done;
	double		 t_start, secs;
	/* the result, copied */
	int		 connected, greeting, mail, data, final;
	int		*rcpt;
	size_t		 nrcpt;
	char		*texts[LUA_SEND_NREPLIES];
	char		*error;
	char		*stage;
	int		 tls;
	char		*tls_proto, *tls_cipher, *tls_verify, *tls_peer;
};

static void
lua_send_free_copies(struct lua_send *sd)
{
	size_t i;

	free(sd->rcpt);
	sd->rcpt = NULL;
	for (i = 0; i < LUA_SEND_NREPLIES; i++) {
		free(sd->texts[i]);
		sd->texts[i] = NULL;
	}
	free(sd->error);
	free(sd->stage);
	free(sd->tls_proto);
	free(sd->tls_cipher);
	free(sd->tls_verify);
	free(sd->tls_peer);
	sd->error = sd->stage = NULL;
	sd->tls_proto = sd->tls_cipher = sd->tls_verify = sd->tls_peer = NULL;
}

/* A copy of s, or NULL for NULL (and on ENOMEM: the field reads as nil). */
static char *
lua_send_dup(const char *s)
{
	return s != NULL ? strdup(s) : NULL;
}

static int
lua_send_gc(lua_State *L)
{
	struct lua_send *sd = luaL_checkudata(L, 1, LUA_SEND_MT);

	if (sd->s != NULL) {
		sim_send_cancel(sd->s);
		sd->s = NULL;
	}
	lua_send_free_copies(sd);
	return 0;
}

static void
lua_send_cleanup(void *arg)
{
	struct lua_send *sd = arg;

	if (sd->s != NULL) {
		sim_send_cancel(sd->s);
		sd->s = NULL;
	}
}

static void
lua_send_done(void *arg, const struct sim_send_result *r)
{
	struct lua_send *sd = arg;

	sd->s = NULL;
	sd->done = 1;
	sd->secs = runner_now() - sd->t_start;
	sd->connected = r->connected;
	sd->greeting = r->greeting;
	sd->mail = r->mail;
	sd->data = r->data;
	sd->final = r->final;
	if (r->nrcpt > 0 && (sd->rcpt = calloc(r->nrcpt, sizeof(int))) != NULL) {
		memcpy(sd->rcpt, r->rcpt, r->nrcpt * sizeof(int));
		sd->nrcpt = r->nrcpt;
	}
	sd->texts[LUA_SEND_GREETING] = lua_send_dup(r->greeting_text);
	sd->texts[LUA_SEND_MAIL] = lua_send_dup(r->mail_text);
	if (r->nrcpt > 0 && r->rcpt_text != NULL)
		sd->texts[LUA_SEND_RCPT] = lua_send_dup(r->rcpt_text[0]);
	sd->texts[LUA_SEND_DATA] = lua_send_dup(r->data_text);
	sd->texts[LUA_SEND_FINAL] = lua_send_dup(r->final_text);
	sd->error = lua_send_dup(r->error);
	sd->stage = lua_send_dup(r->stage);
	sd->tls = r->tls;
	if (r->tls) {
		sd->tls_proto = lua_send_dup(r->tls_proto);
		sd->tls_cipher = lua_send_dup(r->tls_cipher);
		sd->tls_verify = lua_send_dup(r->tls_verify);
		sd->tls_peer = lua_send_dup(r->tls_peer);
	}
	runner_poke();
}

/*
 * The code that decided the message: the reply to the final dot if it
 * got that far, else the first refusal (greeting, MAIL, every RCPT, or
 * DATA); 0 if no reply decided it (a transport error). *which says which
 * reply it was (LUA_SEND_NREPLIES: none).
 */
static int
lua_send_code(const struct lua_send *sd, enum lua_send_reply *which)
{
	size_t i;
	int any = 0;

	for (i = 0; i < sd->nrcpt; i++)
		if (sd->rcpt[i] / 100 == 2)
			any = 1;
	if (sd->final != 0)
		*which = LUA_SEND_FINAL;
	else if (sd->greeting != 0 && sd->greeting / 100 != 2)
		*which = LUA_SEND_GREETING;
	else if (sd->mail != 0 && sd->mail / 100 != 2)
		*which = LUA_SEND_MAIL;
	else if (!any && sd->nrcpt > 0 && sd->rcpt[0] != 0)
		*which = LUA_SEND_RCPT;
	else if (sd->data != 0 && sd->data / 100 != 3)
		*which = LUA_SEND_DATA;
	else {
		*which = LUA_SEND_NREPLIES;
		return 0;
	}
	switch (*which) {
	case LUA_SEND_GREETING:
		return sd->greeting;
	case LUA_SEND_MAIL:
		return sd->mail;
	case LUA_SEND_RCPT:
		return sd->rcpt[0];
	case LUA_SEND_DATA:
		return sd->data;
	default:
		return sd->final;
	}
}

static void
lua_send_set(lua_State *L, const char *key, const char *v)
{
	if (v != NULL) {
		lua_pushstring(L, v);
		lua_setfield(L, -2, key);
	}
}

/* The result table of the send object at idx (whose user value holds the content). */
static void
lua_send_push_result(lua_State *L, int idx)
{
	struct lua_send *sd = lua_touserdata(L, idx);
	enum lua_send_reply which;
	size_t i;
	int code = lua_send_code(sd, &which);

	idx = lua_absindex(L, idx);
	lua_createtable(L, 0, 20);
	lua_pushinteger(L, code);
	lua_setfield(L, -2, "code");
	lua_pushboolean(L, code / 100 == 2);
	lua_setfield(L, -2, "ok");
	lua_send_set(L, "text", which < LUA_SEND_NREPLIES ? sd->texts[which] :
	    NULL);
	lua_send_set(L, "error", sd->error);
	lua_send_set(L, "stage", sd->stage);
	lua_pushboolean(L, sd->tls);
	lua_setfield(L, -2, "tls");
	lua_send_set(L, "tls_proto", sd->tls_proto);
	lua_send_set(L, "tls_cipher", sd->tls_cipher);
	lua_send_set(L, "tls_verify", sd->tls_verify);
	lua_send_set(L, "tls_peer", sd->tls_peer);
	lua_pushboolean(L, sd->connected);
	lua_setfield(L, -2, "connected");
	lua_pushinteger(L, sd->greeting);
	lua_setfield(L, -2, "greeting");
	lua_pushinteger(L, sd->mail);
	lua_setfield(L, -2, "mail");
	lua_pushinteger(L, sd->data);
	lua_setfield(L, -2, "data");
	lua_pushinteger(L, sd->final);
	lua_setfield(L, -2, "final");
	lua_createtable(L, (int)sd->nrcpt, 0);
	for (i = 0; i < sd->nrcpt; i++) {
		lua_pushinteger(L, sd->rcpt[i]);
		lua_rawseti(L, -2, (lua_Integer)i + 1);
	}
	lua_setfield(L, -2, "rcpt");
	lua_pushnumber(L, sd->secs);
	lua_setfield(L, -2, "secs");
	lua_getiuservalue(L, idx, 1);
	lua_getfield(L, -1, "content");
	lua_setfield(L, -3, "content");
	lua_pop(L, 1);
}

/*
 * starttls = true ("must": no TLS, no mail) | "may" | false, tls_trust=,
 * tls_verify_name=, starttls_inject=. The strings stay in the spec table.
 */
static void
lua_send_tls(lua_State *L, int idx, struct sim_send_opts *o, const char *fname)
{
	const char *use;
	int t;

	t = lua_getfield(L, idx, "starttls");
	if (t == LUA_TBOOLEAN)
		o->starttls = lua_toboolean(L, -1) ? SIM_TLS_MUST : SIM_TLS_NO;
	else if (t == LUA_TSTRING) {
		use = lua_tostring(L, -1);
		if (strcmp(use, "must") == 0)
			o->starttls = SIM_TLS_MUST;
		else if (strcmp(use, "may") == 0)
			o->starttls = SIM_TLS_MAY;
		else if (strcmp(use, "no") == 0)
			o->starttls = SIM_TLS_NO;
		else
			luaL_error(L, "%s: starttls must be true, false, "
			    "\"may\" or \"must\", not '%s'", fname, use);
	} else if (t != LUA_TNIL)
		luaL_error(L, "%s: starttls must be true, false, \"may\" or "
		    "\"must\"", fname);
	lua_pop(L, 1);
	o->starttls_inject = lua_sim_opt_bool(L, idx, "starttls_inject", 0,
	    fname);
	if (o->starttls_inject && t == LUA_TNIL)
		o->starttls = SIM_TLS_MUST;	/* the probe is a STARTTLS */
	if (o->starttls_inject && o->starttls != SIM_TLS_MUST)
		luaL_error(L, "%s: starttls_inject needs starttls", fname);
	o->tls_trust = lua_sim_opt_string(L, idx, "tls_trust", NULL, fname);
	o->tls_verify_name = lua_sim_opt_string(L, idx, "tls_verify_name",
	    NULL, fname);
	if (o->tls_trust != NULL && o->starttls == SIM_TLS_NO)
		luaL_error(L, "%s: tls_trust needs starttls", fname);
	if (o->tls_verify_name != NULL && o->tls_trust == NULL)
		luaL_error(L, "%s: tls_verify_name needs tls_trust", fname);
}

/*
 * Start one session for the spec table at idx. Pushes the send object.
 */
static struct lua_send *
lua_send_start(lua_State *L, int idx, int tidx, const char *fname)
{
	static const char *const keys[] = { "to", "from", "rcpt", "subject",
	    "body", "headers", "attachments", "size", "content", "header_from",
	    "header_to", "helo", "source", "timeout", "starttls", "tls_trust",
	    "tls_verify_name", "starttls_inject", NULL };
	struct sim_send_opts o;
	struct lua_send *sd;
	struct sim_send *s;
	struct buf *content;
	const char *to;
	int obj, anchor, external = 0;

	idx = lua_absindex(L, idx);
	if (!lua_istable(L, idx))
		luaL_error(L, "%s: expected a table", fname);
	lua_sim_check_opts(L, idx, fname, keys);
	memset(&o, 0, sizeof(o));

	sd = lua_newuserdatauv(L, sizeof(*sd), 1);
	memset(sd, 0, sizeof(*sd));
	luaL_setmetatable(L, LUA_SEND_MT);
	obj = lua_gettop(L);
	lua_newtable(L);
	anchor = lua_gettop(L);
	lua_pushvalue(L, anchor);
	lua_setiuservalue(L, obj, 1);
	/* Everything the session reads hangs off the anchor. */
	lua_pushvalue(L, idx);
	lua_setfield(L, anchor, "spec");

	if (lua_getfield(L, idx, "to") == LUA_TNIL)
		luaL_error(L, "%s: 'to' (where to send) is required", fname);
	to = lua_sim_addr(L, -1, fname);
	if (lua_istable(L, -1)) {
		lua_getfield(L, -1, "external");
		external = lua_toboolean(L, -1);
		lua_pop(L, 1);
	}
	lua_pushstring(L, to);
	o.to = lua_tostring(L, -1);
	lua_setfield(L, anchor, "to");
	lua_pop(L, 1);

	o.from = lua_sim_opt_string(L, idx, "from", LUA_SEND_FROM, fname);
	o.helo = lua_sim_opt_string(L, idx, "helo", LUA_SEND_HELO, fname);
	o.rcpts = lua_sim_opt_strings(L, idx, "rcpt", 0, &o.nrcpts, fname);
	lua_setfield(L, anchor, "rcpts");
	if (o.nrcpts == 0)
		luaL_error(L, "%s: at least one rcpt is required", fname);
	o.source = lua_sim_opt_string(L, idx, "source", NULL, fname);
	if (o.source == NULL && !external && strncmp(to, "127.", 4) == 0) {
		/* The scenario's client address, so it is not an MTA's. */
		lua_getfield(L, tidx, "client_ip");
		o.source = lua_tostring(L, -1);
		lua_setfield(L, anchor, "source");
	}
	o.timeout_ms = (unsigned)(1000 * lua_sim_opt_number(L, idx, "timeout",
	    LUA_SEND_TIMEOUT, 0.1, 3600, fname));
	lua_send_tls(L, idx, &o, fname);

	content = lua_sim_buf(L);
	lua_message_build(L, idx, 1, content, fname);
	lua_pushlstring(L, content->data != NULL ? content->data : "",
	    content->len);
	o.content = lua_tolstring(L, -1, &o.len);
	lua_setfield(L, anchor, "content");
	lua_pop(L, 1);		/* the buf */

	lua_settop(L, obj);
	runner_own(L, obj, lua_send_cleanup, sd);
	sd->t_start = runner_now();
	s = sim_send_start(runner_base(), &o, lua_send_done, sd);
	if (s == NULL && !sd->done)
		luaL_error(L, "%s: cannot start the session", fname);
	if (!sd->done)
		sd->s = s;	/* else it called back already and is gone */
	return sd;
}

static int
lua_send_ready_one(lua_State *co, void *arg, int expired)
{
	int ref = (int)(intptr_t)arg;
	lua_State *L = runner_lua();
	struct lua_send *sd;

	lua_rawgeti(L, LUA_REGISTRYINDEX, ref);
	sd = lua_touserdata(L, -1);
	if (!sd->done) {
		lua_pop(L, 1);
		return RUNNER_NOT_YET;
	}
	lua_send_push_result(L, -1);
	lua_remove(L, -2);
	lua_xmove(L, co, 1);
	return 1;
}

static void
lua_send_unref(void *arg)
{
	luaL_unref(runner_lua(), LUA_REGISTRYINDEX, (int)(intptr_t)arg);
}

/* t:send{ to=, from=, rcpt=, ... }: one session; waits for its end. */
int
lua_result_send(lua_State *L)
{
	struct runner_wait w;

	lua_test_arg(L);
	runner_check_wait(L, "t:send");
	lua_send_start(L, 2, 1, "t:send");
	memset(&w, 0, sizeof(w));
	w.ready = lua_send_ready_one;
	w.arg = (void *)(intptr_t)luaL_ref(L, LUA_REGISTRYINDEX);
	w.free_arg = lua_send_unref;
	w.seconds = 0;		/* the session has its own timeout */
	w.what = "an SMTP session (t:send)";
	return runner_wait(L, &w);
}

static int
lua_send_ready_all(lua_State *co, void *arg, int expired)
{
	int ref = (int)(intptr_t)arg;
	lua_State *L = runner_lua();
	size_t n, i;

	lua_rawgeti(L, LUA_REGISTRYINDEX, ref);
	n = lua_rawlen(L, -1);
	for (i = 1; i <= n; i++) {
		struct lua_send *sd;

		lua_rawgeti(L, -1, (lua_Integer)i);
		sd = lua_touserdata(L, -1);
		lua_pop(L, 1);
		if (!sd->done) {
			lua_pop(L, 1);
			return RUNNER_NOT_YET;
		}
	}
	lua_createtable(L, (int)n, 0);
	for (i = 1; i <= n; i++) {
		lua_rawgeti(L, -2, (lua_Integer)i);
		lua_send_push_result(L, -1);
		lua_remove(L, -2);
		lua_rawseti(L, -2, (lua_Integer)i);
	}
	lua_remove(L, -2);
	lua_xmove(L, co, 1);
	return 1;
}

/* t:send_all{ {...}, {...} }: sessions at the same time; a list of results. */
int
lua_result_send_all(lua_State *L)
{
	struct runner_wait w;
	size_t n, i;
	char what[128];

	lua_test_arg(L);
	luaL_checktype(L, 2, LUA_TTABLE);
	runner_check_wait(L, "t:send_all");
	n = lua_rawlen(L, 2);
	if (n == 0 || n > LUA_SEND_ALL_MAX)
		return luaL_error(L, "t:send_all: 1 to %d messages",
		    LUA_SEND_ALL_MAX);
	lua_createtable(L, (int)n, 0);
	for (i = 1; i <= n; i++) {
		lua_rawgeti(L, 2, (lua_Integer)i);
		lua_send_start(L, -1, 1, "t:send_all");
		lua_rawseti(L, -3, (lua_Integer)i);
		lua_pop(L, 1);
	}
	memset(&w, 0, sizeof(w));
	w.ready = lua_send_ready_all;
	w.arg = (void *)(intptr_t)luaL_ref(L, LUA_REGISTRYINDEX);
	w.free_arg = lua_send_unref;
	snprintf(what, sizeof(what), "%zu SMTP sessions (t:send_all)", n);
	w.what = what;
	return runner_wait(L, &w);
}

void
lua_result_register(lua_State *L)
{
	luaL_newmetatable(L, LUA_SEND_MT);
	lua_pushcfunction(L, lua_send_gc);
	lua_setfield(L, -2, "__gc");
	lua_pushliteral(L, "sim.send");
	lua_setfield(L, -2, "__metatable");
	lua_pop(L, 1);
}
