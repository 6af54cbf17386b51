/*
 * lua_sandbox: the one Lua state a policy set runs in (docs/lua-api.md,
 * "Sandbox").
 *
 * - Memory: a custom allocator refuses to grow the state past a cap.
 * - Time: an instruction-count hook ends a call that runs too long; once
 *   the budget is spent every further instruction raises, so a pcall in
 *   the policy cannot swallow the limit.
 * - Globals: an allow-list (base functions minus file and bytecode access,
 *   string, table, math, utf8, coroutine, os.time/date/clock), seen
 *   through a read-only environment; library tables are read-only proxies
 *   and the string metatable is protected.
 * - Chunks load as text only, with the read-only environment.
 *
 * The policy code (policy.c) and the bindings (lua_msg.c, lua_dlp.c) add
 * their own globals before the first chunk is loaded.
 */
#ifndef MP_LUA_SANDBOX_H
#define MP_LUA_SANDBOX_H

#include <stddef.h>
#include <stdint.h>

#include <lua.h>

struct lua_sandbox;

enum lua_sandbox_phase {
	SANDBOX_SETUP = 0,	/* libraries and bindings being installed */
	SANDBOX_LOAD,		/* a policy file's top level is running */
	SANDBOX_EVAL,		/* a match() call is running */
	SANDBOX_IDLE		/* between messages */
};

/*
 * A new state with memory capped at `memory` bytes and calls limited to
 * `instructions` VM instructions. NULL (err filled) if the libraries do
 * not fit in the cap or memory runs out.
 */
struct lua_sandbox *lua_sandbox_new(size_t memory, uint64_t instructions,
	    char *err, size_t errsz);
void	lua_sandbox_free(struct lua_sandbox *);

lua_State *lua_sandbox_state(struct lua_sandbox *);
/* The sandbox a state (or any of its coroutines) belongs to. */
struct lua_sandbox *lua_sandbox_get(lua_State *);

/*
 * What runs now, on whose behalf (a file or policy name) and for which
 * session (sid, may be NULL): print() logs with them. The strings must
 * outlive the phase.
 */
void	lua_sandbox_set_phase(struct lua_sandbox *, enum lua_sandbox_phase,
	    const char *who, const char *sid);
enum lua_sandbox_phase lua_sandbox_phase(lua_State *);

/*
 * Run fn(ud) in protected mode, e.g. to install a binding: fn may raise
 * (memory, bad arguments). Returns LUA_OK or the error status, err filled.
 * fn's results are dropped.
 */
int	lua_sandbox_cpcall(struct lua_sandbox *, lua_CFunction fn, void *ud,
	    char *err, size_t errsz);

/*
 * Pop the value on top of the stack into the global table under name.
 * Tables are stored as read-only proxies. Call from a function run by
 * lua_sandbox_cpcall (it may raise), before the first chunk is loaded.
 */
void	lua_sandbox_setglobal(lua_State *, const char *name);

/*
 * Compile a chunk, text only, with the read-only environment, and push
 * the function. For files chunkname is "@path". On error nothing is
 * pushed and err holds Lua's "path:line: message".
 */
int	lua_sandbox_load(struct lua_sandbox *, const char *buf, size_t len,
	    const char *chunkname, char *err, size_t errsz);

/*
 * lua_pcall with the budget armed and a traceback message handler. On
 * error nothing is pushed; err gets the first line of the message and
 * trace (if not NULL) the whole traceback. A memory error reads "memory
 * limit exceeded (N bytes)".
 */
int	lua_sandbox_pcall(struct lua_sandbox *, int nargs, int nresults,
	    char *err, size_t errsz, char *trace, size_t tracesz);

/* Collect all garbage (after each message). */
void	lua_sandbox_collect(struct lua_sandbox *);

/* Bytes the state holds now, and the cap. */
size_t	lua_sandbox_memory(const struct lua_sandbox *);
size_t	lua_sandbox_memory_limit(const struct lua_sandbox *);

/*
 * Push a read-only proxy of the table at idx: reads go to the table,
 * writes raise "attempt to modify read-only table 'what'", pairs() and #
 * work, rawset() refuses it and its metatable is protected. May raise.
 */
void	lua_sandbox_readonly(lua_State *, int idx, const char *what);

#endif
