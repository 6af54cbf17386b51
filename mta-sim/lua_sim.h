/*
 * lua_sim: the scenario runner's Lua side. lua_sim.c makes the state (the
 * globals a scenario file sees, scenario{}, the `sim` library) and holds
 * helpers the classes share; each class has its own file:
 *
 *   lua_test.c	 t, the scenario's handle: addresses, assertions, roles
 *   lua_sink.c	 t:sink{}     a recording SMTP server (roles.h sim_sink)
 *   lua_mta.c	 t:mta{}      the Prevent-integrated MTA (sim_mta)
 *   lua_proxy.c t:proxy{}    a bin/mailprevent child process
 *   lua_message.c            a message as a role recorded it; building one
 *   lua_result.c t:send{}    one SMTP session and its replies
 *   lua_json.c  sim.json_decode
 *   lua_pki.c   t:pki{}      a test PKI made by certs-gen
 *   lua_dns.c   t:dns{}      an authoritative DNS server (dns_server.h)
 *   lua_child.c              what proxy, postfix and haproxy children share
 *   lua_haproxy.c t:haproxy{} a HAProxy child process (TCP load balancer)
 */
#ifndef MTA_SIM_LUA_SIM_H
#define MTA_SIM_LUA_SIM_H

#include <stddef.h>

#include <lua.h>

struct buf;
struct sim_msg;

#define LUA_SIM_WAIT_DEFAULT	10.0	/* seconds, when a wait names none */

/* The runner's state with every class registered. NULL on ENOMEM. */
lua_State	*lua_sim_open(void);
/* Run a scenario file (text only) in an environment of its own. */
int		 lua_sim_load(lua_State *, const char *path, char *err,
		    size_t errlen);

/*
 * Shared helpers for bindings. Option tables are checked: a key that is
 * not in allowed[] (NULL-terminated) raises "FNAME: unknown option 'k'",
 * so a typo fails loudly.
 */
void		 lua_sim_check_opts(lua_State *, int idx, const char *fname,
		    const char *const allowed[]);
const char	*lua_sim_opt_string(lua_State *, int idx, const char *key,
		    const char *def, const char *fname);
int		 lua_sim_opt_bool(lua_State *, int idx, const char *key, int def,
		    const char *fname);
/*
 * __index of a role object: a method from the metatable's "methods"
 * table, else a field of the userdata's first user value, else an error
 * naming `what` ("sink has no field 'x'").
 */
int		 lua_sim_index(lua_State *, const char *mt, const char *what);
double		 lua_sim_opt_number(lua_State *, int idx, const char *key,
		    double def, double min, double max, const char *fname);
/*
 * The field key as a list of strings: nil (none), one string or object,
 * or a list of them. Objects (sinks, MTAs, proxies, externals, any table
 * with an `addr`) stand for their address when addr_ok. Pushes one value
 * that keeps the strings alive: leave it on the stack while they are used.
 */
const char	**lua_sim_opt_strings(lua_State *, int idx, const char *key,
		    int addr_ok, size_t *n, const char *fname);
/* "ip:port" of a string or object at idx; raises with fname otherwise. */
const char	*lua_sim_addr(lua_State *, int idx, const char *fname);
const char	*lua_sim_addr_or_null(lua_State *, int idx);
/*
 * Set name, addr and its ip and port in the user value table of the
 * object at obj (NULL leaves a field as it is).
 */
void		 lua_sim_fields(lua_State *, int obj, const char *name,
		    const char *addr);
/* A buffer freed by the collector (safe across errors); pushed. */
struct buf	*lua_sim_buf(lua_State *);
/* A short printable rendering of any value (for assertion messages). */
void		 lua_sim_repr(lua_State *, int idx, struct buf *out);

/* Classes. *_register() adds the metatable; the constructors are Lua C functions. */
void	lua_test_register(lua_State *);
void	lua_test_push(lua_State *);		/* the running scenario's t */
void	lua_test_arg(lua_State *);		/* argument 1 is the running t */
void	lua_sink_register(lua_State *);
int	lua_sink_new(lua_State *);		/* t:sink{} */
void	lua_mta_register(lua_State *);
int	lua_mta_new(lua_State *);		/* t:mta{} */
void	lua_proxy_register(lua_State *);
int	lua_proxy_new(lua_State *);		/* t:proxy{} */
void	lua_message_register(lua_State *);
void	lua_message_push(lua_State *, const struct sim_msg *);
/*
 * Build the message described by the table at idx; raises. envelope: the
 * table is a t:send{} (To: defaults to rcpt; `to` is the destination),
 * else a sim.message{} (`to` is the To: header).
 */
void	lua_message_build(lua_State *, int idx, int envelope, struct buf *out,
	    const char *fname);
void	lua_result_register(lua_State *);
int	lua_result_send(lua_State *);		/* t:send{} */
int	lua_result_send_all(lua_State *);	/* t:send_all{{}, ...} */
int	lua_json_decode(lua_State *);		/* sim.json_decode(s) */
int	lua_pki_new(lua_State *);		/* t:pki{}, lua_pki.c */
int	lua_dns_new(lua_State *);		/* t:dns{}, lua_dns.c */
int	lua_haproxy_new(lua_State *);		/* t:haproxy{}, lua_haproxy.c */

#endif
