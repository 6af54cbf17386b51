/*
 * lua_postfix: t:postfix{}, a real, throw-away Postfix instance in a
 * scenario. It plays the Prevent-integrated MTA (or an upstream or
 * downstream MTA); scenarios/lib/postfix.lua gives it the main.cf and
 * master.cf lines of each architecture.
 *
 * Everything lives under the scenario's directory, in NAME/:
 *
 *   etc/      config_directory: main.cf, master.cf, the scenario's maps
 *   queue/    queue_directory (its subdirectories come from `postfix check`)
 *   data/     data_directory, owned by mail_owner
 *   maillog   every line the instance logged (also kept in memory)
 *
 * Starting is what `postfix start` does, minus the daemonising: first
 * `postfix -c ETC check`, which creates the queue directories; any
 * warning it prints is an error here, because a warning such as "unused
 * parameter" is a typo in a fragment that the docs publish. Then master
 * runs in the foreground under a guard shell, the runner's child:
 *
 *   setpriv --pdeathsig TERM /bin/sh -c GUARD postfix-guard MASTER ETC
 *
 * (see lua_postfix_guard). `postfix start` (master -w) would put master
 * in the background, where the runner could neither see it exit nor take
 * it down with it.
 *
 * The instance logs to /dev/stdout (maillog_file, through postlogd),
 * which is the pipe proc.c reads: readiness is master's "daemon started"
 * line, and each line re-checks the scenario's wait, so waits on the
 * queue are event-driven (every queue change is logged). Stopping is
 * what `postfix stop` does: SIGTERM to master, which takes its process
 * group with it.
 */
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/wait.h>

#include <netinet/in.h>
#include <arpa/inet.h>

#include <dirent.h>
#include <errno.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <lauxlib.h>

#include "buf.h"
#include "lua_child.h"
#include "lua_sim.h"
#include "proc.h"
#include "runner.h"

#define LUA_POSTFIX_MT		"sim.postfix"
#define LUA_POSTFIX_START_WAIT	20.0	/* seconds for "daemon started" */
#define LUA_POSTFIX_STOP_WAIT	10.0
#define LUA_POSTFIX_CMD_WAIT	20.0	/* postfix check, postqueue */
#define LUA_POSTFIX_TAIL	40	/* log lines shown with a failure */
#define LUA_POSTFIX_LINES_MAX	200000
#define LUA_POSTFIX_CMD_MAX	(4 * 1024 * 1024)
#define LUA_POSTFIX_MAXPORTS	8

/* A helper command: postfix check, postqueue -f, postqueue -j. */
struct lua_postfix_cmd {
	struct proc	*proc;
	char		 what[64];
	struct buf	 out;		/* stdout */
	struct buf	 err;		/* stderr */
	int		 done;
	int		 status;
};

/* Queue ids, a small set. */
struct lua_postfix_ids {
	char		**id;
	size_t		  n, cap;
};

/* c.proc is the guard shell around master (lua_postfix_guard). */
struct lua_postfix {
	struct lua_child	 c;		/* first: see lua_child.h */
	long			 master_pid;	/* from its "daemon started" line */
	struct lua_postfix_cmd	 cmd;
	char			 error[4096];	/* why it did not start */
	char			 ip[64];
	int			 port;
	char			 addr[96];
	char			 dir[PATH_MAX];
	char			 etc[PATH_MAX];
	char			 queue[PATH_MAX];
	char			 data[PATH_MAX];
	struct lua_postfix_ids	 active;	/* seen by qmgr, not yet removed */
};

/* Where Postfix is, found once (lua_postfix_probe). */
static struct {
	int	done;
	char	missing[512];		/* "" when Postfix can run here */
	char	daemon_dir[PATH_MAX];
	char	command_dir[PATH_MAX];
	char	version[64];
	char	setsid[PATH_MAX];
	char	setpriv[PATH_MAX];
	uid_t	uid;			/* mail_owner */
	gid_t	gid;
} lua_postfix_env;

/*
 * snprintf for messages and paths: returns -1 when dst was too small
 * (paths check it; a cut message is still a message).
 */
static int lua_postfix_fmt(char *, size_t, const char *, ...)
    __attribute__((format(printf, 3, 4)));

static int
lua_postfix_fmt(char *dst, size_t dstsz, const char *fmt, ...)
{
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = vsnprintf(dst, dstsz, fmt, ap);
	va_end(ap);
	return r < 0 || (size_t)r >= dstsz ? -1 : 0;
}

static struct lua_postfix *
lua_postfix_check(lua_State *L, int idx)
{
	return (struct lua_postfix *)lua_child_check(L, idx, LUA_POSTFIX_MT);
}

/* ---- finding Postfix ----------------------------------------------------- */

/* A program on $PATH (or the usual places), into dst. */
static int
lua_postfix_which(const char *prog, char *dst, size_t dstsz)
{
	const char *path = getenv("PATH"), *p, *e;
	char cand[PATH_MAX];

	if (path == NULL || *path == '\0')
		path = "/usr/bin:/bin:/usr/sbin:/sbin";
	for (p = path; *p != '\0'; p = *e != '\0' ? e + 1 : e) {
		e = p + strcspn(p, ":");
		if (lua_postfix_fmt(cand, sizeof(cand), "%.*s/%s", (int)(e - p),
		    p, prog) == 0 && access(cand, X_OK) == 0) {
			lua_postfix_fmt(dst, dstsz, "%s", cand);
			return 0;
		}
	}
	return -1;
}

/*
 * Can a Postfix instance run here? Asked once: postconf tells where the
 * daemons are (distributions differ). Runs before any scenario, or
 * between two waits, so a blocking popen() is fine: it takes
 * milliseconds, and proc.c reaps only the children it started.
 */
static const char *
lua_postfix_probe(void)
{
	char line[PATH_MAX], prog[PATH_MAX + 16], postconf[PATH_MAX];
	struct passwd *pw;
	struct group *gr;
	FILE *fp;
	int n = 0;

	if (lua_postfix_env.done)
		return lua_postfix_env.missing[0] ? lua_postfix_env.missing :
		    NULL;
	lua_postfix_env.done = 1;
#define MISSING(...) do {						\
	lua_postfix_fmt(lua_postfix_env.missing,				\
	    sizeof(lua_postfix_env.missing), __VA_ARGS__);		\
	return lua_postfix_env.missing;					\
} while (0)
	if (lua_postfix_which("postconf", postconf, sizeof(postconf)) == -1 &&
	    access("/usr/sbin/postconf", X_OK) != 0)
		MISSING("Postfix is not installed (no postconf on PATH or in "
		    "/usr/sbin; ci/install-deps installs the Debian package)");
	if (postconf[0] == '\0' || access(postconf, X_OK) != 0)
		lua_postfix_fmt(postconf, sizeof(postconf), "/usr/sbin/postconf");
	if (geteuid() != 0)
		MISSING("Postfix instances need root (master runs as root and "
		    "hands its queue to mail_owner); this runs as uid %u",
		    (unsigned)geteuid());
	lua_postfix_fmt(prog, sizeof(prog), "%s -d -h daemon_directory "
	    "command_directory mail_version 2>/dev/null", postconf);
	if ((fp = popen(prog, "r")) == NULL)
		MISSING("cannot run %s: %s", postconf, strerror(errno));
	while (fgets(line, sizeof(line), fp) != NULL) {
		line[strcspn(line, "\r\n")] = '\0';
		if (n == 0)
			lua_postfix_fmt(lua_postfix_env.daemon_dir,
			    sizeof(lua_postfix_env.daemon_dir), "%s", line);
		else if (n == 1)
			lua_postfix_fmt(lua_postfix_env.command_dir,
			    sizeof(lua_postfix_env.command_dir), "%s", line);
		else if (n == 2)
			lua_postfix_fmt(lua_postfix_env.version,
			    sizeof(lua_postfix_env.version), "%s", line);
		n++;
	}
	if (pclose(fp) != 0 || n != 3)
		MISSING("%s -d did not answer (is Postfix installed whole?)",
		    postconf);
	lua_postfix_fmt(prog, sizeof(prog), "%s/master", lua_postfix_env.daemon_dir);
	if (access(prog, X_OK) != 0)
		MISSING("no Postfix master program at %s", prog);
	lua_postfix_fmt(prog, sizeof(prog), "%s/postfix", lua_postfix_env.command_dir);
	if (access(prog, X_OK) != 0)
		MISSING("no postfix command at %s", prog);
	if (lua_postfix_which("setsid", lua_postfix_env.setsid,
	    sizeof(lua_postfix_env.setsid)) == -1)
		MISSING("no setsid(1) on PATH (util-linux)");
	if (lua_postfix_which("setpriv", lua_postfix_env.setpriv,
	    sizeof(lua_postfix_env.setpriv)) == -1)
		MISSING("no setpriv(1) on PATH (util-linux)");
	if ((pw = getpwnam("postfix")) == NULL)
		MISSING("no user 'postfix' (mail_owner)");
	if ((gr = getgrnam("postdrop")) == NULL)
		MISSING("no group 'postdrop' (setgid_group)");
	lua_postfix_env.uid = pw->pw_uid;
	lua_postfix_env.gid = pw->pw_gid;
#undef MISSING
	return NULL;
}

/* sim.postfix_missing(): nil when Postfix instances can run, else why not. */
static int
lua_postfix_missing(lua_State *L)
{
	const char *why = lua_postfix_probe();

	if (why == NULL)
		lua_pushnil(L);
	else
		lua_pushstring(L, why);
	return 1;
}

/* sim.postfix_version(): "3.7.11", or nil. */
static int
lua_postfix_version(lua_State *L)
{
	if (lua_postfix_probe() != NULL)
		lua_pushnil(L);
	else
		lua_pushstring(L, lua_postfix_env.version);
	return 1;
}

/* ---- log lines ----------------------------------------------------------- */

static void	lua_postfix_track(struct lua_postfix *, const char *);

/* A line from master's stdout (the maillog) or the guard's stderr. */
static void
lua_postfix_master_line(void *arg, enum proc_stream which, const char *line,
    size_t len)
{
	struct lua_postfix *p = arg;
	const char *m;
	char *l;

	lua_child_add_line(&p->c, line, len);
	if ((l = strndup(line, len)) == NULL)
		return;
	lua_postfix_track(p, l);
	/* "... postfix/master[1234]: daemon started -- version ..." */
	if (p->c.state == CHILD_STARTING && (m = strstr(l, "/master[")) != NULL &&
	    strstr(m, "]: daemon started") != NULL) {
		p->master_pid = strtol(m + 8, NULL, 10);
		p->c.state = CHILD_RUNNING;
	}
	free(l);
	runner_poke();
}

static void
lua_postfix_master_exit(void *arg, int status)
{
	struct lua_postfix *p = arg;
	char how[64];

	lua_child_exited(&p->c, status, how, sizeof(how));
	p->master_pid = 0;
	if (p->c.state == CHILD_STARTING) {
		lua_postfix_fmt(p->error, sizeof(p->error), "master exited before "
		    "\"daemon started\" (%s)", how);
		p->c.state = CHILD_FAILED;
	} else {
		if (p->c.state != CHILD_STOPPING && !p->c.teardown) {
			runner_fail("postfix %s exited unexpectedly (%s)",
			    p->c.name, how);
			lua_child_attach_tail(&p->c);
		}
		p->c.state = CHILD_STOPPED;
	}
	runner_poke();
}

/* ---- helper commands ----------------------------------------------------- */

static void
lua_postfix_cmd_line(void *arg, enum proc_stream which, const char *line,
    size_t len)
{
	struct lua_postfix *p = arg;
	struct buf *b = which == PROC_STDOUT ? &p->cmd.out : &p->cmd.err;

	if (b->len + len + 1 <= LUA_POSTFIX_CMD_MAX) {
		buf_append(b, line, len);
		buf_append(b, "\n", 1);
	}
}

static void lua_postfix_spawn_master(struct lua_postfix *);

/* The lines of in, each once (postfix check repeats its warnings). */
static void
lua_postfix_unique_lines(struct buf *out, struct buf *in)
{
	const char *l, *e, *end;
	size_t len;

	if (in->len == 0)
		return;
	end = in->data + in->len;
	for (l = in->data; l < end; l = e + 1) {
		if ((e = memchr(l, '\n', (size_t)(end - l))) == NULL)
			e = end;
		len = (size_t)(e - l) + (e < end);	/* with its newline */
		if (len > 1 && (out->len == 0 ||
		    memmem(out->data, out->len, l, len) == NULL))
			buf_append(out, l, len);
		if (e == end)
			break;
	}
}

static void
lua_postfix_cmd_exit(void *arg, int status)
{
	struct lua_postfix *p = arg;
	char how[64];

	p->cmd.proc = NULL;
	p->cmd.done = 1;
	p->cmd.status = status;
	if (p->c.state == CHILD_CHECKING && p->c.teardown) {
		/* The scenario ended while postfix check ran: start nothing. */
		p->c.state = CHILD_STOPPED;
	} else if (p->c.state == CHILD_CHECKING) {
		/* postfix check: errors and warnings both stop the start. */
		if (!(WIFEXITED(status) && WEXITSTATUS(status) == 0) ||
		    p->cmd.err.len > 0 || p->cmd.out.len > 0) {
			struct buf said = BUF_INIT;

			lua_child_strstatus(status, how, sizeof(how));
			lua_postfix_unique_lines(&said, &p->cmd.out);
			lua_postfix_unique_lines(&said, &p->cmd.err);
			lua_postfix_fmt(p->error, sizeof(p->error), "`postfix -c %s "
			    "check` (%s) said:\n%s", p->etc, how, said.len ?
			    buf_cstr(&said) : "(nothing: its fatal errors go to "
			    "syslog only)\n");
			buf_free(&said);
			p->c.state = CHILD_FAILED;
		} else
			lua_postfix_spawn_master(p);
	}
	runner_poke();
}

/* Start argv as this instance's helper command. */
static int
lua_postfix_cmd_start(struct lua_postfix *p, char *const argv[],
    const char *what, char *err, size_t errlen)
{
	buf_reset(&p->cmd.out);
	buf_reset(&p->cmd.err);
	p->cmd.done = 0;
	p->cmd.status = 0;
	lua_postfix_fmt(p->cmd.what, sizeof(p->cmd.what), "%s", what);
	p->cmd.proc = proc_start(runner_base(), argv, lua_postfix_cmd_line,
	    lua_postfix_cmd_exit, p, err, errlen);
	return p->cmd.proc == NULL ? -1 : 0;
}

/* ---- configuration ------------------------------------------------------- */

static int
lua_postfix_mkdir(const char *path, mode_t mode)
{
	if (mkdir(path, mode) == -1 && errno != EEXIST)
		return -1;
	return chmod(path, mode);
}

static void
lua_postfix_write(lua_State *L, const char *dir, const char *name,
    const char *data, size_t len)
{
	char path[PATH_MAX], tmp[PATH_MAX + 8];
	struct timeval tv[2];
	FILE *fp;
	int r;

	r = lua_postfix_fmt(path, sizeof(path), "%s/%s", dir, name);
	if (r < 0 || (size_t)r >= sizeof(path) ||
	    snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp))
		luaL_error(L, "t:postfix: path too long: %s/%s", dir, name);
	if ((fp = fopen(tmp, "w")) == NULL)
		luaL_error(L, "t:postfix: cannot write %s: %s", tmp,
		    strerror(errno));
	if (fwrite(data, 1, len, fp) != len || fclose(fp) != 0)
		luaL_error(L, "t:postfix: cannot write %s", tmp);
	/*
	 * Postfix rereads a file modified in the last second or two until
	 * it "cools down" (300 ms naps, seconds per start). This one is
	 * written whole and renamed into place, so date it back.
	 */
	tv[0].tv_sec = tv[1].tv_sec = time(NULL) - 60;
	tv[0].tv_usec = tv[1].tv_usec = 0;
	if (utimes(tmp, tv) == -1 || rename(tmp, path) == -1)
		luaL_error(L, "t:postfix: cannot install %s: %s", path,
		    strerror(errno));
}

/* Lines at idx (nil, a string, or a list of strings) appended to b. */
static void
lua_postfix_lines(lua_State *L, int idx, struct buf *b, const char *what)
{
	size_t i, n, len;
	const char *s;

	idx = lua_absindex(L, idx);
	if (lua_isnil(L, idx))
		return;
	if (lua_type(L, idx) == LUA_TSTRING) {
		s = lua_tolstring(L, idx, &len);
		buf_append(b, s, len);
		if (len > 0 && s[len - 1] != '\n')
			buf_appends(b, "\n");
		return;
	}
	if (lua_type(L, idx) != LUA_TTABLE)
		luaL_error(L, "t:postfix: '%s' must be a string or a list of "
		    "lines", what);
	n = lua_rawlen(L, idx);
	for (i = 1; i <= n; i++) {
		if (lua_rawgeti(L, idx, (lua_Integer)i) != LUA_TSTRING)
			luaL_error(L, "t:postfix: '%s' must be a list of "
			    "strings", what);
		s = lua_tolstring(L, -1, &len);
		buf_append(b, s, len);
		buf_appends(b, "\n");
		lua_pop(L, 1);
	}
}

/* Map file names: one plain file in etc/, never main.cf or master.cf. */
static int
lua_postfix_map_name_ok(const char *s)
{
	size_t i;

	if (*s == '\0' || *s == '.' || strlen(s) > 100 ||
	    strcmp(s, "main.cf") == 0 || strcmp(s, "master.cf") == 0)
		return 0;
	for (i = 0; s[i] != '\0'; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') ||
		    (s[i] >= 'A' && s[i] <= 'Z') ||
		    (s[i] >= '0' && s[i] <= '9') || s[i] == '-' ||
		    s[i] == '_' || s[i] == '.'))
			return 0;
	return 1;
}

static const char *const lua_postfix_cfg_keys[] = { "main", "master", "maps",
    NULL };

/*
 * Keep the configuration options (main, master, maps) of the table at
 * opts in the object's user value "cfg", replacing those given.
 */
static void
lua_postfix_keep_cfg(lua_State *L, int obj, int opts)
{
	size_t i;

	obj = lua_absindex(L, obj);
	opts = lua_absindex(L, opts);
	lua_getiuservalue(L, obj, 1);
	if (lua_getfield(L, -1, "cfg") != LUA_TTABLE) {
		lua_pop(L, 1);
		lua_newtable(L);
		lua_pushvalue(L, -1);
		lua_setfield(L, -3, "cfg");
	}
	for (i = 0; lua_postfix_cfg_keys[i] != NULL; i++)
		if (lua_getfield(L, opts, lua_postfix_cfg_keys[i]) != LUA_TNIL)
			lua_setfield(L, -2, lua_postfix_cfg_keys[i]);
		else
			lua_pop(L, 1);
	lua_pop(L, 2);
}

/* The scenario-independent main.cf: a private, loopback-only instance. */
static void
lua_postfix_base_main(struct lua_postfix *p, struct buf *b, const char *host)
{
	buf_appendf(b,
	    "# written by mta-sim run for postfix %s (Postfix %s)\n"
	    "# ---- the throw-away instance: its own directories, loopback only\n"
	    "compatibility_level = 3.6\n"
	    "queue_directory = %s\n"
	    "data_directory = %s\n"
	    "mail_owner = postfix\n"
	    "setgid_group = postdrop\n"
	    "# the runner reads master's stdout; postlogd writes there\n"
	    "maillog_file = /dev/stdout\n"
	    "inet_interfaces = loopback-only\n"
	    "inet_protocols = ipv4\n"
	    "myhostname = %s\n"
	    "mydomain = sim.test\n"
	    "myorigin = $myhostname\n"
	    "mydestination =\n"
	    "local_recipient_maps =\n"
	    "alias_maps =\n"
	    "alias_database =\n"
	    "mynetworks = 127.0.0.0/8\n"
	    "smtp_bind_address = %s\n"
	    "# no DNS: every next hop is a [literal], and names are not looked up\n"
	    "smtp_dns_support_level = disabled\n"
	    "smtpd_peername_lookup = no\n"
	    "# quick retries: scenarios flush the queue when they want a retry now\n"
	    "queue_run_delay = 1s\n"
	    "minimal_backoff_time = 1s\n"
	    "maximal_backoff_time = 2s\n"
	    "delay_warning_time = 0\n"
	    "in_flow_delay = 0\n"
	    "smtpd_error_sleep_time = 0\n"
	    "smtp_connect_timeout = 5s\n"
	    "smtp_connection_cache_on_demand = no\n"
	    "smtputf8_enable = no\n"
	    "biff = no\n"
	    "append_dot_mydomain = no\n"
	    "readme_directory = no\n",
	    p->c.name, lua_postfix_env.version, p->queue, p->data, host, p->ip);
}

static void
lua_postfix_base_master(struct lua_postfix *p, struct buf *b)
{
	buf_appendf(b,
	    "# written by mta-sim run for postfix %s: no chroot, loopback only\n"
	    "# service type  private unpriv  chroot  wakeup  maxproc command + args\n"
	    "%-9s inet  n       -       n       -       -       smtpd\n"
	    "pickup    unix  n       -       n       60      1       pickup\n"
	    "cleanup   unix  n       -       n       -       0       cleanup\n"
	    "qmgr      unix  n       -       n       300     1       qmgr\n"
	    "tlsmgr    unix  -       -       n       1000?   1       tlsmgr\n"
	    "rewrite   unix  -       -       n       -       -       trivial-rewrite\n"
	    "bounce    unix  -       -       n       -       0       bounce\n"
	    "defer     unix  -       -       n       -       0       bounce\n"
	    "trace     unix  -       -       n       -       0       bounce\n"
	    "verify    unix  -       -       n       -       1       verify\n"
	    "flush     unix  n       -       n       1000?   0       flush\n"
	    "proxymap  unix  -       -       n       -       -       proxymap\n"
	    "proxywrite unix -       -       n       -       1       proxymap\n"
	    "smtp      unix  -       -       n       -       -       smtp\n"
	    "relay     unix  -       -       n       -       -       smtp\n"
	    "showq     unix  n       -       n       -       -       showq\n"
	    "error     unix  -       -       n       -       -       error\n"
	    "retry     unix  -       -       n       -       -       error\n"
	    "discard   unix  -       -       n       -       -       discard\n"
	    "anvil     unix  -       -       n       -       1       anvil\n"
	    "scache    unix  -       -       n       -       1       scache\n"
	    "postlog   unix-dgram n  -       n       -       1       postlogd\n",
	    p->c.name, p->addr);
}

/* Write main.cf, master.cf and the maps from the kept configuration. */
static void
lua_postfix_write_config(lua_State *L, struct lua_postfix *p, int obj)
{
	struct buf *b;
	const char *name, *host;
	int cfg;

	obj = lua_absindex(L, obj);
	lua_getiuservalue(L, obj, 1);
	lua_getfield(L, -1, "myhostname");
	host = lua_tostring(L, -1);
	lua_getfield(L, -2, "cfg");
	cfg = lua_gettop(L);

	b = lua_sim_buf(L);
	lua_postfix_base_main(p, b, host);
	buf_appends(b, "# ---- from the scenario\n");
	lua_getfield(L, cfg, "main");
	lua_postfix_lines(L, -1, b, "main");
	lua_pop(L, 1);
	lua_postfix_write(L, p->etc, "main.cf", b->data, b->len);
	lua_pop(L, 1);

	b = lua_sim_buf(L);
	lua_postfix_base_master(p, b);
	buf_appends(b, "# ---- from the scenario\n");
	lua_getfield(L, cfg, "master");
	lua_postfix_lines(L, -1, b, "master");
	lua_pop(L, 1);
	lua_postfix_write(L, p->etc, "master.cf", b->data, b->len);
	lua_pop(L, 1);

	if (lua_getfield(L, cfg, "maps") == LUA_TTABLE) {
		lua_pushnil(L);
		while (lua_next(L, -2) != 0) {
			if (lua_type(L, -2) != LUA_TSTRING ||
			    !lua_postfix_map_name_ok(lua_tostring(L, -2)))
				luaL_error(L, "t:postfix: maps: a file name is "
				    "letters, digits, '.', '-' and '_' (not "
				    "main.cf or master.cf), got %s",
				    luaL_tolstring(L, -2, NULL));
			b = lua_sim_buf(L);
			lua_postfix_lines(L, -2, b, "maps");
			name = lua_tostring(L, -3);
			lua_postfix_write(L, p->etc, name, b->data, b->len);
			lua_pop(L, 2);
		}
	} else if (!lua_isnil(L, -1))
		luaL_error(L, "t:postfix: maps must be a table { name = "
		    "content }");
	lua_settop(L, obj);
}

/* ---- starting and stopping ----------------------------------------------- */

/*
 * The runner's child is a small shell that starts master and stands
 * guard: a TERM (ours, or the parent-death signal setpriv arms for the
 * day the runner dies) becomes a TERM to master, which then takes its
 * process group down, and the shell exits with master's status. master
 * cannot keep a parent-death signal itself: the kernel clears it when
 * master changes its effective uid to open master.lock.
 *
 * setsid(1): master must lead a session. The shell's background child
 * is not a process group leader, so setsid(1) calls setsid() and execs
 * master in place, and $! is master's pid.
 */
static const char lua_postfix_guard[] =
	"setsid \"$1\" -c \"$2\" -s &\n"
	"m=$!\n"
	"trap 'kill -TERM \"$m\" 2>/dev/null' TERM INT HUP\n"
	"while :; do\n"
	"\twait \"$m\"; s=$?\n"
	"\tkill -0 \"$m\" 2>/dev/null || exit \"$s\"\n"
	"done\n";

static void
lua_postfix_spawn_master(struct lua_postfix *p)
{
	char master[PATH_MAX + 16], err[256];
	char *argv[11];

	lua_postfix_fmt(master, sizeof(master), "%s/master",
	    lua_postfix_env.daemon_dir);
	argv[0] = lua_postfix_env.setpriv;
	argv[1] = (char *)"--pdeathsig";
	argv[2] = (char *)"TERM";
	argv[3] = (char *)"/bin/sh";
	argv[4] = (char *)"-c";
	argv[5] = (char *)lua_postfix_guard;
	argv[6] = (char *)"postfix-guard";
	argv[7] = master;
	argv[8] = p->etc;
	argv[9] = NULL;
	p->master_pid = 0;
	if (lua_child_spawn(&p->c, argv, lua_postfix_master_line,
	    lua_postfix_master_exit, p, err, sizeof(err)) == -1) {
		lua_postfix_fmt(p->error, sizeof(p->error), "%s", err);
		p->c.state = CHILD_FAILED;
	}
}

/* postfix check, then master (from lua_postfix_cmd_exit). */
static void
lua_postfix_spawn(lua_State *L, struct lua_postfix *p)
{
	char prog[PATH_MAX + 16], err[256];
	char *argv[5];

	lua_postfix_fmt(prog, sizeof(prog), "%s/postfix", lua_postfix_env.command_dir);
	argv[0] = prog;
	argv[1] = (char *)"-c";
	argv[2] = p->etc;
	argv[3] = (char *)"check";
	argv[4] = NULL;
	p->error[0] = '\0';
	p->c.start_line = p->c.nlines;
	p->c.state = CHILD_CHECKING;
	if (lua_postfix_cmd_start(p, argv, "postfix check", err,
	    sizeof(err)) == -1) {
		p->c.state = CHILD_STOPPED;
		luaL_error(L, "postfix %s: %s", p->c.name, err);
	}
}

enum lua_postfix_until { UNTIL_RUNNING, UNTIL_EXITED, UNTIL_CMD, UNTIL_EMPTY };

/*
 * What is in the queue. A directory scan alone can miss a message that
 * qmgr moves while the scan runs (deferred -> active goes against any
 * fixed order), so it is combined with the log: a message qmgr has put
 * in the active queue ("ID: from=<...> (queue active)") stays counted
 * until some program logs "ID: removed". The scan, in the order mail
 * moves the first time (maildrop, incoming, active, deferred, hold),
 * adds what qmgr has not seen yet.
 */
static int
lua_postfix_ids_has(const struct lua_postfix_ids *v, const char *id)
{
	size_t i;

	for (i = 0; i < v->n; i++)
		if (strcmp(v->id[i], id) == 0)
			return 1;
	return 0;
}

static void
lua_postfix_ids_add(struct lua_postfix_ids *v, const char *id, size_t len)
{
	char **nv, *copy;

	if (len == 0 || len >= 64 || (copy = strndup(id, len)) == NULL)
		return;
	if (lua_postfix_ids_has(v, copy)) {
		free(copy);
		return;
	}
	if (v->n == v->cap) {
		size_t cap = v->cap ? v->cap * 2 : 16;

		if ((nv = realloc(v->id, cap * sizeof(*nv))) == NULL) {
			free(copy);
			return;
		}
		v->id = nv;
		v->cap = cap;
	}
	v->id[v->n++] = copy;
}

static void
lua_postfix_ids_del(struct lua_postfix_ids *v, const char *id, size_t len)
{
	size_t i;

	for (i = 0; i < v->n; i++)
		if (strlen(v->id[i]) == len && memcmp(v->id[i], id, len) == 0) {
			free(v->id[i]);
			v->id[i] = v->id[--v->n];
			return;
		}
}

static void
lua_postfix_ids_free(struct lua_postfix_ids *v)
{
	size_t i;

	for (i = 0; i < v->n; i++)
		free(v->id[i]);
	free(v->id);
	memset(v, 0, sizeof(*v));
}

/* "postfix/qmgr[12]: 0A1B2C3D: from=<a@b>, size=1, nrcpt=1 (queue active)" */
static void
lua_postfix_track(struct lua_postfix *p, const char *line)
{
	const char *id, *e;

	if ((id = strstr(line, "]: ")) == NULL)
		return;
	id += 3;
	e = id + strspn(id, "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	    "abcdefghijklmnopqrstuvwxyz");
	if (e == id || e[0] != ':' || e[1] != ' ')
		return;
	if (strcmp(e + 2, "removed") == 0)
		lua_postfix_ids_del(&p->active, id, (size_t)(e - id));
	else if (strstr(line, "/qmgr[") != NULL &&
	    strncmp(e + 2, "from=<", 6) == 0 &&
	    strstr(e, "(queue active)") != NULL)
		lua_postfix_ids_add(&p->active, id, (size_t)(e - id));
}

static void
lua_postfix_scan_dir(const char *path, int depth, struct lua_postfix_ids *ids)
{
	char sub[PATH_MAX];
	struct dirent *de;
	struct stat st;
	DIR *d;

	if ((d = opendir(path)) == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		if (lua_postfix_fmt(sub, sizeof(sub), "%s/%s", path,
		    de->d_name) == -1 || lstat(sub, &st) == -1)
			continue;
		if (S_ISDIR(st.st_mode) && depth < 4)
			lua_postfix_scan_dir(sub, depth + 1, ids);
		else if (S_ISREG(st.st_mode))
			lua_postfix_ids_add(ids, de->d_name,
			    strlen(de->d_name));
	}
	closedir(d);
}

static long
lua_postfix_queued(const struct lua_postfix *p)
{
	static const char *const queues[] = { "maildrop", "incoming", "active",
	    "deferred", "hold", NULL };
	struct lua_postfix_ids ids;
	char path[PATH_MAX];
	size_t i;
	long n;

	memset(&ids, 0, sizeof(ids));
	for (i = 0; i < p->active.n; i++)
		lua_postfix_ids_add(&ids, p->active.id[i],
		    strlen(p->active.id[i]));
	for (i = 0; queues[i] != NULL; i++) {
		lua_postfix_fmt(path, sizeof(path), "%s/%s", p->queue,
		    queues[i]);
		lua_postfix_scan_dir(path, 0, &ids);
	}
	n = (long)ids.n;
	lua_postfix_ids_free(&ids);
	return n;
}

/* Push the JSON lines of s as a list of tables (postqueue -j). */
static int
lua_postfix_push_json_lines(lua_State *L, const char *s, size_t len)
{
	const char *e, *end = s + len;
	lua_Integer k = 0;

	lua_newtable(L);
	for (; s < end; s = e + 1) {
		if ((e = memchr(s, '\n', (size_t)(end - s))) == NULL)
			e = end;
		if (e == s)
			continue;
		lua_pushcfunction(L, lua_json_decode);
		lua_pushlstring(L, s, (size_t)(e - s));
		lua_call(L, 1, 2);
		if (lua_isnil(L, -2))
			return -1;	/* the error message is on top */
		lua_pop(L, 1);
		lua_rawseti(L, -2, ++k);
		if (e == end)
			break;
	}
	return 0;
}

static int
lua_postfix_ready(lua_State *co, void *arg, int expired)
{
	struct lua_child_wait *w = arg;
	struct lua_postfix *p = (struct lua_postfix *)w->c;
	lua_State *L = runner_lua();
	char how[64], *tail;
	long n;

	switch (w->until) {
	case UNTIL_RUNNING:
		if (p->c.state == CHILD_RUNNING) {
			lua_child_push_object(L, w);
			lua_xmove(L, co, 1);
			return 1;
		}
		if (p->c.state != CHILD_FAILED && !expired)
			return RUNNER_NOT_YET;
		tail = lua_child_tail(&p->c, 20, p->c.start_line);
		if (p->c.state == CHILD_FAILED)
			lua_pushfstring(co, "postfix %s did not start: %s\n"
			    "its log:\n%s", p->c.name, p->error, tail);
		else
			lua_pushfstring(co, "postfix %s did not start within "
			    "the wait (%s; no \"daemon started\"):\n%s", p->c.name,
			    lua_child_states[p->c.state], tail);
		free(tail);
		return RUNNER_RAISE;
	case UNTIL_EXITED:
		if (p->c.state == CHILD_STOPPED || p->c.state == CHILD_FAILED) {
			lua_pushboolean(co, 1);
			return 1;
		}
		if (!expired)
			return RUNNER_NOT_YET;
		lua_pushnil(co);
		lua_pushfstring(co, "timeout: postfix %s has not stopped",
		    p->c.name);
		return 2;
	case UNTIL_CMD:
		if (!p->cmd.done) {
			if (!expired)
				return RUNNER_NOT_YET;
			lua_pushnil(co);
			lua_pushfstring(co, "timeout: postfix %s: %s has not "
			    "finished", p->c.name, p->cmd.what);
			return 2;
		}
		if (!(WIFEXITED(p->cmd.status) &&
		    WEXITSTATUS(p->cmd.status) == 0)) {
			lua_child_strstatus(p->cmd.status, how, sizeof(how));
			lua_pushnil(co);
			lua_pushfstring(co, "postfix %s: %s failed (%s): %s",
			    p->c.name, p->cmd.what, how, p->cmd.err.len ?
			    buf_cstr(&p->cmd.err) : "(no output)");
			return 2;
		}
		if (!w->extra) {
			lua_pushboolean(co, 1);
			return 1;
		}
		if (lua_postfix_push_json_lines(L, p->cmd.out.data,
		    p->cmd.out.len) == -1) {
			lua_pushfstring(L, "postfix %s: %s: %s", p->c.name,
			    p->cmd.what, lua_tostring(L, -1));
			lua_xmove(L, co, 1);
			lua_pop(L, 3);
			return RUNNER_RAISE;
		}
		lua_xmove(L, co, 1);
		return 1;
	case UNTIL_EMPTY:
		if ((n = lua_postfix_queued(p)) == 0) {
			lua_pushboolean(co, 1);
			return 1;
		}
		if (!expired)
			return RUNNER_NOT_YET;
		lua_pushnil(co);
		lua_pushfstring(co, "timeout: postfix %s still holds %d "
		    "message%s", p->c.name, (int)n, n == 1 ? "" : "s");
		return 2;
	}
	return RUNNER_NOT_YET;
}

static int
lua_postfix_wait(lua_State *L, struct lua_postfix *p,
    enum lua_postfix_until until, double seconds, int json)
{
	return lua_child_wait(L, &p->c, lua_postfix_ready, until, (size_t)json,
	    seconds, until == UNTIL_RUNNING ? "start" : until == UNTIL_EXITED ?
	    "stop" : until == UNTIL_CMD ? "answer" : "empty its queue");
}

static void
lua_postfix_cleanup(void *arg)
{
	struct lua_postfix *p = arg;

	if (p->cmd.proc != NULL)
		proc_signal(p->cmd.proc, SIGTERM);
	/* The guard passes a SIGTERM on to master: what `postfix stop` does. */
	lua_child_cleanup(&p->c);
}

static int
lua_postfix_gc(lua_State *L)
{
	struct lua_postfix *p = luaL_checkudata(L, 1, LUA_POSTFIX_MT);

	/* Not torn down (the runner is exiting): the guard stops master. */
	lua_child_free(&p->c, SIGTERM);
	if (p->cmd.proc != NULL) {
		proc_detach(p->cmd.proc);
		proc_signal(p->cmd.proc, SIGKILL);
		p->cmd.proc = NULL;
	}
	buf_free(&p->cmd.out);
	buf_free(&p->cmd.err);
	lua_postfix_ids_free(&p->active);
	return 0;
}

/* A port nobody listens on at ip (the scenario's own address). */
static int
lua_postfix_free_port(const char *ip)
{
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);
	int fd, port = -1;

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	if (inet_pton(AF_INET, ip, &sin.sin_addr) != 1)
		return -1;
	if ((fd = socket(AF_INET, SOCK_STREAM, 0)) == -1)
		return -1;
	if (bind(fd, (struct sockaddr *)&sin, sizeof(sin)) == 0 &&
	    getsockname(fd, (struct sockaddr *)&sin, &len) == 0)
		port = ntohs(sin.sin_port);
	close(fd);
	return port;
}

/*
 * master opens data_directory/master.lock after dropping to mail_owner,
 * so mail_owner must be able to walk the path to it; the runner makes
 * its directories 0700. Add search permission (never read) to the
 * scenario's directory and the run's directory above it, ours both.
 */
static int
lua_postfix_walkable(const char *dir)
{
	char path[PATH_MAX], *slash;
	struct stat st;
	int i;

	if (lua_postfix_fmt(path, sizeof(path), "%s", dir) == -1)
		return -1;
	for (i = 0; i < 2; i++) {
		if (stat(path, &st) == -1)
			return -1;
		if (st.st_uid == geteuid() && (st.st_mode & S_IXOTH) == 0 &&
		    chmod(path, (st.st_mode & 07777) | S_IXGRP | S_IXOTH) == -1)
			return -1;
		if ((slash = strrchr(path, '/')) == NULL || slash == path)
			break;
		*slash = '\0';
	}
	return 0;
}

static int
lua_postfix_name_ok(const char *s)
{
	size_t i;

	for (i = 0; s[i] != '\0'; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') ||
		    (s[i] >= 'A' && s[i] <= 'Z') ||
		    (s[i] >= '0' && s[i] <= '9') || s[i] == '-' ||
		    s[i] == '_') || i >= 40)
			return 0;
	return i > 0;
}

/*
 * t:postfix{ name=, ip=, port=, ports={"resubmit", ...}, myhostname=,
 *            main=, master=, maps={ file = content }, start=, timeout= }
 */
int
lua_postfix_new(lua_State *L)
{
	static const char *const keys[] = { "name", "ip", "port", "ports",
	    "myhostname", "main", "master", "maps", "start", "timeout", NULL };
	static unsigned long counted_gen;
	static unsigned count;
	struct lua_postfix *p;
	const char *name, *ip, *why, *host, **ports;
	char defname[32], defhost[128];
	size_t i, j, nports;
	double secs;
	int obj, port;

	lua_test_arg(L);
	if (lua_isnoneornil(L, 2))
		lua_newtable(L), lua_replace(L, 2);
	lua_settop(L, 2);
	lua_sim_check_opts(L, 2, "t:postfix", keys);
	if ((why = lua_postfix_probe()) != NULL)
		return luaL_error(L, "t:postfix: %s", why);
	if (counted_gen != runner_gen()) {
		counted_gen = runner_gen();
		count = 0;
	}
	lua_postfix_fmt(defname, sizeof(defname), "postfix%u", ++count);
	name = lua_sim_opt_string(L, 2, "name", defname, "t:postfix");
	if (!lua_postfix_name_ok(name))
		return luaL_error(L, "t:postfix: a name is 1 to 40 letters, "
		    "digits, '-' and '_'");
	for (i = 0, j = 0; name[i] != '\0' && j + 1 < 41; i++)
		defhost[j++] = name[i] == '_' ? '-' : (char)(name[i] | 0x20);
	lua_postfix_fmt(defhost + j, sizeof(defhost) - j, ".sim.test");
	host = lua_sim_opt_string(L, 2, "myhostname", defhost, "t:postfix");
	port = (int)lua_sim_opt_number(L, 2, "port", 0, 0, 65535, "t:postfix");
	secs = lua_sim_opt_number(L, 2, "timeout", LUA_POSTFIX_START_WAIT, 0.1,
	    3600, "t:postfix");

	p = lua_newuserdatauv(L, sizeof(*p), 1);
	memset(p, 0, sizeof(*p));
	luaL_setmetatable(L, LUA_POSTFIX_MT);
	obj = lua_gettop(L);
	lua_newtable(L);
	lua_setiuservalue(L, obj, 1);
	lua_child_init(&p->c, "postfix", "this postfix", name,
	    LUA_POSTFIX_LINES_MAX, LUA_POSTFIX_TAIL);
	p->c.flush = 1;		/* the maillog is read while it runs */
	buf_init(&p->cmd.out);
	buf_init(&p->cmd.err);
	if ((ip = lua_sim_opt_string(L, 2, "ip", NULL, "t:postfix")) != NULL)
		lua_postfix_fmt(p->ip, sizeof(p->ip), "%s", ip);
	else if (runner_ip(p->ip, sizeof(p->ip)) == -1)
		return luaL_error(L, "t:postfix: out of loopback addresses");
	if (port == 0 && (port = lua_postfix_free_port(p->ip)) <= 0)
		return luaL_error(L, "t:postfix: no free port on %s", p->ip);
	p->port = port;
	lua_postfix_fmt(p->addr, sizeof(p->addr), "%s:%d", p->ip, port);

	if (lua_postfix_fmt(p->dir, sizeof(p->dir), "%s/%s", runner_dir(),
	    p->c.name) == -1 ||
	    lua_postfix_fmt(p->etc, sizeof(p->etc), "%s/etc", p->dir) == -1 ||
	    lua_postfix_fmt(p->queue, sizeof(p->queue), "%s/queue",
	    p->dir) == -1 ||
	    lua_postfix_fmt(p->data, sizeof(p->data), "%s/data", p->dir) == -1 ||
	    lua_postfix_fmt(p->c.logpath, sizeof(p->c.logpath), "%s/maillog",
	    p->dir) == -1)
		return luaL_error(L, "t:postfix: path too long");
	runner_own(L, obj, lua_postfix_cleanup, p);
	if (lua_postfix_walkable(runner_dir()) == -1 ||
	    lua_postfix_mkdir(p->dir, 0755) == -1 ||
	    lua_postfix_mkdir(p->etc, 0755) == -1 ||
	    lua_postfix_mkdir(p->queue, 0755) == -1 ||
	    lua_postfix_mkdir(p->data, 0700) == -1 ||
	    chown(p->data, lua_postfix_env.uid, lua_postfix_env.gid) == -1)
		return luaL_error(L, "t:postfix: cannot create %s: %s", p->dir,
		    strerror(errno));
	lua_child_open_log(&p->c);

	/* Fields: name, ip, port, addr, ports, resubmit_port, paths. */
	lua_sim_fields(L, obj, p->c.name, p->addr);
	lua_getiuservalue(L, obj, 1);
	lua_pushstring(L, host);
	lua_setfield(L, -2, "myhostname");
	lua_pushstring(L, p->dir);
	lua_setfield(L, -2, "dir");
	lua_pushstring(L, p->etc);
	lua_setfield(L, -2, "config_dir");
	lua_pushstring(L, p->queue);
	lua_setfield(L, -2, "queue_dir");
	lua_pushstring(L, p->c.logpath);
	lua_setfield(L, -2, "log_file");
	lua_newtable(L);
	ports = lua_sim_opt_strings(L, 2, "ports", 0, &nports, "t:postfix");
	if (nports > LUA_POSTFIX_MAXPORTS)
		return luaL_error(L, "t:postfix: at most %d ports",
		    LUA_POSTFIX_MAXPORTS);
	for (i = 0; i < nports; i++) {
		int pp = lua_postfix_free_port(p->ip);

		if (!lua_postfix_name_ok(ports[i]))
			return luaL_error(L, "t:postfix: a port name is letters, "
			    "digits, '-' and '_'");
		for (j = 0; j < i; j++)
			if (strcmp(ports[i], ports[j]) == 0)
				return luaL_error(L, "t:postfix: port '%s' "
				    "twice", ports[i]);
		if (pp <= 0 || pp == port)
			return luaL_error(L, "t:postfix: no free port on %s",
			    p->ip);
		lua_pushinteger(L, pp);
		lua_setfield(L, -3, ports[i]);
		/* t:proxy{ reflect_to = pf } reflects to this one. */
		if (strcmp(ports[i], "resubmit") == 0) {
			lua_pushinteger(L, pp);
			lua_setfield(L, -4, "resubmit_port");
		}
	}
	lua_pop(L, 1);
	lua_setfield(L, -2, "ports");
	lua_pop(L, 1);
	lua_postfix_keep_cfg(L, obj, 2);
	lua_settop(L, obj);

	lua_postfix_write_config(L, p, obj);
	if (!lua_sim_opt_bool(L, 2, "start", 1, "t:postfix"))
		return 1;
	runner_check_wait(L, "t:postfix");
	lua_postfix_spawn(L, p);
	lua_replace(L, 1);		/* the object is what we return */
	lua_settop(L, 1);
	return lua_postfix_wait(L, p, UNTIL_RUNNING, secs, 0);
}

/* ---- methods ------------------------------------------------------------- */

/*
 * pf:start([{ main=, master=, maps= } [, seconds]]): (re)write the
 * configuration with these options replacing the ones given before, run
 * postfix check, start master, wait for "daemon started". Returns pf.
 */
static int
lua_postfix_start(lua_State *L)
{
	struct lua_postfix *p = lua_postfix_check(L, 1);
	double secs = luaL_optnumber(L, 3, LUA_POSTFIX_START_WAIT);

	runner_check_wait(L, "postfix:start");
	if (p->c.state != CHILD_STOPPED && p->c.state != CHILD_FAILED)
		return luaL_error(L, "postfix %s is already %s", p->c.name,
		    lua_child_states[p->c.state]);
	if (!lua_isnoneornil(L, 2)) {
		lua_sim_check_opts(L, 2, "postfix:start", lua_postfix_cfg_keys);
		lua_postfix_keep_cfg(L, 1, 2);
	}
	lua_postfix_write_config(L, p, 1);
	lua_postfix_spawn(L, p);
	lua_settop(L, 1);
	return lua_postfix_wait(L, p, UNTIL_RUNNING, secs, 0);
}

/* pf:stop([seconds]): SIGTERM to master (postfix stop); waits for the exit. */
static int
lua_postfix_stop(lua_State *L)
{
	struct lua_postfix *p = lua_postfix_check(L, 1);
	double secs = luaL_optnumber(L, 2, LUA_POSTFIX_STOP_WAIT);

	runner_check_wait(L, "postfix:stop");
	if (p->c.state != CHILD_RUNNING)
		return luaL_error(L, "postfix %s is %s", p->c.name,
		    lua_child_states[p->c.state]);
	p->c.state = CHILD_STOPPING;
	if (p->c.proc != NULL)
		proc_signal(p->c.proc, SIGTERM);
	lua_settop(L, 1);
	return lua_postfix_wait(L, p, UNTIL_EXITED, secs, 0);
}

/* Run `postqueue -c ETC ARG` and wait for it. */
static int
lua_postfix_postqueue(lua_State *L, const char *arg, int json, double secs)
{
	struct lua_postfix *p = lua_postfix_check(L, 1);
	char prog[PATH_MAX + 16], err[256], what[32];
	char *argv[5];

	runner_check_wait(L, json ? "postfix:queue" : "postfix:flush");
	if (p->c.state != CHILD_RUNNING)
		return luaL_error(L, "postfix %s is %s", p->c.name,
		    lua_child_states[p->c.state]);
	if (p->cmd.proc != NULL)
		return luaL_error(L, "postfix %s: %s is still running", p->c.name,
		    p->cmd.what);
	lua_postfix_fmt(prog, sizeof(prog), "%s/postqueue",
	    lua_postfix_env.command_dir);
	lua_postfix_fmt(what, sizeof(what), "postqueue %s", arg);
	argv[0] = prog;
	argv[1] = (char *)"-c";
	argv[2] = p->etc;
	argv[3] = (char *)arg;
	argv[4] = NULL;
	if (lua_postfix_cmd_start(p, argv, what, err, sizeof(err)) == -1)
		return luaL_error(L, "postfix %s: %s", p->c.name, err);
	lua_settop(L, 1);
	return lua_postfix_wait(L, p, UNTIL_CMD, secs, json);
}

/* pf:flush([seconds]): postqueue -f (deliver now); true, or nil and why. */
static int
lua_postfix_flush(lua_State *L)
{
	return lua_postfix_postqueue(L, "-f", 0, luaL_optnumber(L, 2,
	    LUA_POSTFIX_CMD_WAIT));
}

/*
 * pf:queue([seconds]): postqueue -j, one table per message (queue_name,
 * queue_id, sender, recipients = { {address=, delay_reason=}, ... }, ...).
 */
static int
lua_postfix_queue(lua_State *L)
{
	return lua_postfix_postqueue(L, "-j", 1, luaL_optnumber(L, 2,
	    LUA_POSTFIX_CMD_WAIT));
}

/* pf:queued(): how many messages its queue holds now (a directory count). */
static int
lua_postfix_queued_m(lua_State *L)
{
	struct lua_postfix *p = lua_postfix_check(L, 1);

	lua_pushinteger(L, (lua_Integer)lua_postfix_queued(p));
	return 1;
}

/* pf:wait_queue_empty([seconds]): true once nothing is left to deliver. */
static int
lua_postfix_wait_queue_empty(lua_State *L)
{
	struct lua_postfix *p = lua_postfix_check(L, 1);

	runner_check_wait(L, "postfix:wait_queue_empty");
	lua_settop(L, 2);
	return lua_postfix_wait(L, p, UNTIL_EMPTY, luaL_optnumber(L, 2,
	    LUA_SIM_WAIT_DEFAULT), 0);
}

/* pf:file(name): the content of a file in its config_directory, or nil. */
static int
lua_postfix_file(lua_State *L)
{
	struct lua_postfix *p = lua_postfix_check(L, 1);
	const char *name = luaL_checkstring(L, 2);
	struct buf *b;
	char path[PATH_MAX], chunk[4096];
	size_t n;
	FILE *fp;

	if (strcmp(name, "main.cf") != 0 && strcmp(name, "master.cf") != 0 &&
	    !lua_postfix_map_name_ok(name))
		return luaL_error(L, "postfix:file: bad name '%s'", name);
	lua_postfix_fmt(path, sizeof(path), "%s/%s", p->etc, name);
	if ((fp = fopen(path, "r")) == NULL) {
		lua_pushnil(L);
		return 1;
	}
	b = lua_sim_buf(L);
	while ((n = fread(chunk, 1, sizeof(chunk), fp)) > 0)
		buf_append(b, chunk, n);
	fclose(fp);
	lua_pushlstring(L, b->data != NULL ? b->data : "", b->len);
	return 1;
}

static const luaL_Reg lua_postfix_methods[] = {
	{ "start",		lua_postfix_start },
	{ "stop",		lua_postfix_stop },
	{ "flush",		lua_postfix_flush },
	{ "queue",		lua_postfix_queue },
	{ "queued",		lua_postfix_queued_m },
	{ "wait_queue_empty",	lua_postfix_wait_queue_empty },
	{ "file",		lua_postfix_file },
	{ NULL,			NULL }
};

static const char *const lua_postfix_shared[] = { "running", "log",
    "log_count", "mark", "wait_log", NULL };

static int
lua_postfix_index(lua_State *L)
{
	static const char *const unset[] = { "resubmit_port", NULL };
	struct lua_postfix *p = luaL_checkudata(L, 1, LUA_POSTFIX_MT);

	return lua_child_index(L, &p->c, p->master_pid, unset);
}

static int
lua_postfix_tostring(lua_State *L)
{
	struct lua_postfix *p = luaL_checkudata(L, 1, LUA_POSTFIX_MT);

	lua_pushfstring(L, "postfix %s (%s, %s)", p->c.name, p->addr,
	    lua_child_states[p->c.state]);
	return 1;
}

/*
 * The class, t:postfix (added to t's methods: lua_test_register runs
 * first) and sim.postfix_missing / sim.postfix_version.
 */
void
lua_postfix_register(lua_State *L)
{
	lua_child_metatable(L, LUA_POSTFIX_MT, lua_postfix_methods,
	    lua_postfix_shared, lua_postfix_index, lua_postfix_gc,
	    lua_postfix_tostring);

	luaL_getmetatable(L, "sim.test");
	if (lua_getfield(L, -1, "methods") == LUA_TTABLE) {
		lua_pushcfunction(L, lua_postfix_new);
		lua_setfield(L, -2, "postfix");
	}
	lua_pop(L, 2);
	if (lua_getglobal(L, "sim") == LUA_TTABLE) {
		lua_pushcfunction(L, lua_postfix_missing);
		lua_setfield(L, -2, "postfix_missing");
		lua_pushcfunction(L, lua_postfix_version);
		lua_setfield(L, -2, "postfix_version");
	}
	lua_pop(L, 1);
}
