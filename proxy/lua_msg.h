/*
 * lua_msg: the `msg` object a policy's match() receives (docs/lua-api.md).
 *
 * One userdata per message, shared by every policy that looks at it. It
 * is a handle: policy_evaluate invalidates it when the message is done,
 * and any later use (a policy that kept msg in an upvalue) raises. The
 * MIME parse happens on the first call that needs it, once per message.
 */
#ifndef MP_LUA_MSG_H
#define MP_LUA_MSG_H

#include <lua.h>

struct mime_msg;
struct policy_envelope;

#define LUA_MSG_META	"mp.msg"

/* The C side of one message; owned by the caller of lua_msg_new. */
struct lua_msg_ctx {
	const struct policy_envelope	*env;
	struct mime_msg			*mime;	/* NULL until first needed */
};

/* Register the metatable (may raise: call it protected). */
void	lua_msg_open(lua_State *);

/*
 * lua_CFunction: called with a light userdata (struct lua_msg_ctx *),
 * returns the new msg object. Run it protected (lua_sandbox_pcall).
 */
int	lua_msg_new(lua_State *);

/* Detach the object at idx from its message; later uses raise. */
void	lua_msg_invalidate(lua_State *, int idx);

/* Free what the message parse left in ctx. */
void	lua_msg_ctx_clear(struct lua_msg_ctx *);

#endif
