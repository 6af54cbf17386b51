/*
 * bin/mailprevent: option parsing, signals (SIGHUP reload, SIGTERM drain)
 * and the event loop.
 */
#include <errno.h>
#include <getopt.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "config.h"
#include "dns.h"
#include "listener.h"
#include "log.h"
#include "notify.h"
#include "pool.h"
#include "smtp_client.h"
#include "smtp_server.h"

#define MAILPREVENT_VERSION	"0.1.0"

static struct {
	struct event_base	*base;
	struct config		*cfg;
	struct listener		*listener;
	struct dns		*dns;
	struct event		*shutdown_timer;
	int			 draining;
	int			 forced;
	char			 addr[80];	/* the listening address */
	size_t			 nworkers;
} mp;

static void main_drop_privileges(const struct config *);

static void
main_sigmask(sigset_t *mask)
{
	sigemptyset(mask);
	sigaddset(mask, SIGHUP);
	sigaddset(mask, SIGTERM);
	sigaddset(mask, SIGINT);
}

/*
 * Announce the listener (tests and scripts wait for this line), then give
 * up root: by now everything privileged is done.
 */
static void
main_listening(void)
{
	log_msg(LOG_INFO, NULL, "listening", "addr=%s mode=%s workers=%zu",
	    mp.addr, mp.cfg->mode == MODE_REFLECT ? "reflect" : "forward",
	    mp.nworkers);
	main_drop_privileges(mp.cfg);
}

static void
usage(FILE *f)
{
	fprintf(f,
	    "usage: mailprevent -c FILE [--check] [-d]\n"
	    "  -c, --config FILE   configuration (YAML); see docs/configuration.md\n"
	    "      --check         validate the configuration and exit\n"
	    "  -d, --debug         log at debug level\n"
	    "  -V, --version       print the version\n");
}

static void
main_print_errors(const char *path, struct buf *errors)
{
	if (errors->len == 0)
		fprintf(stderr, "%s: configuration refused\n", path);
	else
		fwrite(errors->data, 1, errors->len, stderr);
}

static int
main_same_list(char **a, size_t na, char **b, size_t nb)
{
	if (na != nb)
		return 0;
	for (size_t i = 0; i < na; i++)
		if (strcmp(a[i], b[i]) != 0)
			return 0;
	return 1;
}

static void
main_reload(void)
{
	struct buf errors = BUF_INIT;
	struct config *cfg;
	char q[512];

	if ((cfg = config_load(mp.cfg->path, &errors)) == NULL) {
		/* One log line per problem, then keep serving as before. */
		char *line = buf_cstr(&errors), *nl;

		while (line && *line) {
			nl = strchr(line, '\n');
			if (nl)
				*nl = '\0';
			log_msg(LOG_ERR, NULL, "config-error", "msg=%s",
			    log_quote(q, sizeof(q), line, strlen(line)));
			line = nl ? nl + 1 : NULL;
		}
		log_msg(LOG_ERR, NULL, "reload", "status=refused file=%s "
		    "reason=\"configuration has errors; old one kept\"",
		    mp.cfg->path);
		buf_free(&errors);
		return;
	}
	buf_free(&errors);
	if (strcmp(cfg->listen.host, mp.cfg->listen.host) != 0 ||
	    cfg->listen.port != mp.cfg->listen.port)
		log_msg(LOG_WARN, NULL, "reload", "note=\"listen changed; "
		    "takes effect at restart\"");
	if (cfg->dns_timeout != mp.cfg->dns_timeout ||
	    cfg->dns_tries != mp.cfg->dns_tries)
		log_msg(LOG_WARN, NULL, "reload", "note=\"dns_timeout/dns_tries "
		    "changed; take effect at restart\"");
	if (cfg->workers != mp.cfg->workers)
		log_msg(LOG_WARN, NULL, "reload", "note=\"workers changed; "
		    "takes effect at restart\"");
	if (!main_same_list(cfg->dns_servers, cfg->ndns_servers,
	    mp.cfg->dns_servers, mp.cfg->ndns_servers))
		log_msg(LOG_WARN, NULL, "reload", "note=\"dns_servers "
		    "changed; takes effect at restart\"");
	log_set_level(cfg->log_level);
	if (mp.listener != NULL)	/* NULL while draining after SIGTERM */
		listener_set_config(mp.listener, cfg);
	config_unref(mp.cfg);
	mp.cfg = cfg;
	log_msg(LOG_INFO, NULL, "reload", "status=ok file=%s", cfg->path);
}

/* Draining ends when no session and no notification is left. */
static void
main_sessions_changed(void)
{
	if (mp.draining && smtp_server_count() == 0 && notify_pending() == 0)
		event_base_loopexit(mp.base, NULL);
}

static void
main_shutdown_expired(evutil_socket_t fd, short ev, void *arg)
{
	struct timeval tv = { 5, 0 };

	if (mp.forced) {
		log_msg(LOG_WARN, NULL, "shutdown", "note=\"sessions still "
		    "flushing; exiting\" sessions=%u", smtp_server_count());
		event_base_loopexit(mp.base, NULL);
		return;
	}
	mp.forced = 1;
	log_msg(LOG_WARN, NULL, "shutdown", "note=\"grace period over\" "
	    "sessions=%u", smtp_server_count());
	smtp_server_close_all("Service shutting down, try again later");
	notify_shutdown();
	evtimer_add(mp.shutdown_timer, &tv);
}

static void
main_signal(evutil_socket_t sig, short ev, void *arg)
{
	struct timeval tv = { (time_t)mp.cfg->timeouts.shutdown, 0 };

	if (sig == SIGHUP) {
		main_reload();
		return;
	}
	if (mp.draining) {		/* a second SIGTERM: do not wait */
		if (!mp.forced)
			main_shutdown_expired(-1, 0, NULL);
		return;
	}
	mp.draining = 1;
	log_msg(LOG_INFO, NULL, "shutdown", "signal=%s sessions=%u "
	    "notifications=%u", sig == SIGTERM ? "TERM" : "INT",
	    smtp_server_count(), notify_pending());
	listener_free(mp.listener);
	mp.listener = NULL;
	if (smtp_server_count() == 0 && notify_pending() == 0) {
		event_base_loopexit(mp.base, NULL);
		return;
	}
	mp.shutdown_timer = evtimer_new(mp.base, main_shutdown_expired, NULL);
	evtimer_add(mp.shutdown_timer, &tv);
}

/*
 * Bound to a privileged port as root: become the configured user before
 * reading a single byte from the network.
 */
static void
main_drop_privileges(const struct config *cfg)
{
	static int done;

	if (done++)
		return;
	struct passwd *pw;
	struct group *gr;
	gid_t gid;

	if (cfg->user[0] == '\0') {
		if (geteuid() == 0)
			log_msg(LOG_WARN, NULL, "privileges", "note=\"running as "
			    "root; set user: to drop privileges\"");
		return;
	}
	if ((pw = getpwnam(cfg->user)) == NULL)
		log_fatal("user %s: no such user", cfg->user);
	gid = pw->pw_gid;
	if (cfg->group[0] != '\0') {
		if ((gr = getgrnam(cfg->group)) == NULL)
			log_fatal("group %s: no such group", cfg->group);
		gid = gr->gr_gid;
	}
	if (geteuid() != 0) {
		if (geteuid() != pw->pw_uid)
			log_fatal("user %s: cannot switch users when not root",
			    cfg->user);
		return;
	}
	if (setgroups(1, &gid) == -1 || setgid(gid) == -1 ||
	    setuid(pw->pw_uid) == -1)
		log_fatal("dropping privileges to %s: %s", cfg->user,
		    strerror(errno));
	if (setuid(0) != -1)
		log_panic("privileges could be regained after setuid");
	log_msg(LOG_INFO, NULL, "privileges", "user=%s uid=%u gid=%u",
	    cfg->user, (unsigned)pw->pw_uid, (unsigned)gid);
}

/*
 * One serving process: the whole proxy on one event loop, on socket fd.
 * ready() runs once signal handlers are in place, so whatever it
 * announces (the "listening" line) can be followed by a signal at once.
 */
static int
main_serve(int fd, int debug, void (*ready)(void))
{
	struct event_config *evcfg;
	struct event *sigs[3];
	sigset_t mask;
	char err[256];

	log_init("mailprevent", debug ? LOG_DEBUG : mp.cfg->log_level);
	/*
	 * The changelist folds the add/del pairs a session makes per command
	 * into one epoll_ctl per loop iteration (measured: 3-5% less CPU).
	 */
	if ((evcfg = event_config_new()) == NULL ||
	    event_config_set_flag(evcfg, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST) ||
	    (mp.base = event_base_new_with_config(evcfg)) == NULL)
		log_fatal("cannot create the event loop");
	event_config_free(evcfg);
	if ((mp.dns = dns_new(mp.base, mp.cfg->ndns_servers ?
	    (const char *const *)mp.cfg->dns_servers : NULL,
	    mp.cfg->dns_timeout * 1000, mp.cfg->dns_tries, err,
	    sizeof(err))) == NULL)
		log_fatal("dns: %s", err);
	sigs[0] = evsignal_new(mp.base, SIGHUP, main_signal, NULL);
	sigs[1] = evsignal_new(mp.base, SIGTERM, main_signal, NULL);
	sigs[2] = evsignal_new(mp.base, SIGINT, main_signal, NULL);
	for (int i = 0; i < 3; i++)
		if (sigs[i] == NULL || evsignal_add(sigs[i], NULL) == -1)
			log_fatal("cannot install signal handlers");
	/* A worker starts with them blocked (see main_spawn). */
	main_sigmask(&mask);
	sigprocmask(SIG_UNBLOCK, &mask, NULL);
	smtp_server_on_close(main_sessions_changed);
	notify_on_done(main_sessions_changed);
	if ((mp.listener = listener_new(mp.base, mp.cfg, mp.dns, fd, err,
	    sizeof(err))) == NULL)
		log_fatal("%s", err);
	if (ready)
		ready();

	event_base_dispatch(mp.base);

	log_msg(LOG_INFO, NULL, "exit", "sessions=%u", smtp_server_count());
	for (int i = 0; i < 3; i++)
		event_free(sigs[i]);
	if (mp.shutdown_timer)
		event_free(mp.shutdown_timer);
	listener_free(mp.listener);
	smtp_server_close_all("Service shutting down");
	notify_shutdown();
	pool_clear();
	smtp_client_free_detached();
	dns_free(mp.dns);
	config_unref(mp.cfg);
	event_base_free(mp.base);
	return 0;
}

/*
 * Worker processes: each serves its own SO_REUSEPORT socket, so the
 * kernel spreads connections over the cores. The master only forwards
 * signals and restarts a worker that dies.
 */
static struct {
	struct event_base *base;
	pid_t		*pids;
	time_t		*started;
	struct event	**restart;	/* delayed restart of a worker that died young */
	int		*fds;
	size_t		 n;
	int		 stopping;
	int		 debug;
} mw;

static pid_t main_spawn(size_t);

static void
main_restart(evutil_socket_t fd, short ev, void *arg)
{
	size_t i = (size_t)(uintptr_t)arg;

	if (!mw.stopping && mw.pids[i] == 0)
		mw.pids[i] = main_spawn(i);
}

static pid_t
main_spawn(size_t i)
{
	sigset_t mask, old;
	pid_t pid;

	/* Until the worker has its handlers, a signal must wait, not kill it. */
	main_sigmask(&mask);
	sigprocmask(SIG_BLOCK, &mask, &old);
	pid = fork();
	if (pid != 0)
		sigprocmask(SIG_SETMASK, &old, NULL);

	if (pid == -1) {
		log_msg(LOG_ERR, NULL, "worker-failed", "worker=%zu reason=\"%s\"",
		    i, strerror(errno));
		return -1;
	}
	if (pid == 0) {
		for (size_t k = 0; k < mw.n; k++)
			if (k != i)
				close(mw.fds[k]);
		/*
		 * The master's loop and signal events are not the worker's.
		 * The epoll set is shared with the master after fork: give the
		 * copy its own backend first, or freeing it would remove the
		 * master's registrations.
		 */
		event_reinit(mw.base);
		for (size_t k = 0; k < mw.n; k++)
			event_free(mw.restart[k]);
		event_base_free(mw.base);
		signal(SIGCHLD, SIG_DFL);
		exit(main_serve(mw.fds[i], mw.debug, NULL));
	}
	mw.started[i] = time(NULL);
	log_msg(LOG_INFO, NULL, "worker", "worker=%zu pid=%ld", i, (long)pid);
	return pid;
}

static void
main_master_signal(evutil_socket_t sig, short ev, void *arg)
{
	struct event_base *base = arg;
	size_t i, alive = 0;
	pid_t pid;
	int status;

	if (sig == SIGCHLD) {
		while ((pid = waitpid(-1, &status, WNOHANG)) > 0)
			for (i = 0; i < mw.n; i++) {
				if (mw.pids[i] != pid)
					continue;
				mw.pids[i] = 0;
				if (mw.stopping)
					break;
				log_msg(LOG_ERR, NULL, "worker-died", "worker=%zu "
				    "pid=%ld status=%d", i, (long)pid, status);
				/* One that dies at once waits, not a fork loop. */
				if (time(NULL) - mw.started[i] < 2) {
					struct timeval tv = { 2, 0 };

					evtimer_add(mw.restart[i], &tv);
				} else
					mw.pids[i] = main_spawn(i);
			}
		for (i = 0; i < mw.n; i++)
			alive += mw.pids[i] > 0;
		if (mw.stopping && alive == 0)
			event_base_loopexit(base, NULL);
		return;
	}
	if (sig == SIGHUP) {
		/* Workers started later (restarts) must get the new file too. */
		struct buf errors = BUF_INIT;
		struct config *cfg = config_load(mp.cfg->path, &errors);

		if (cfg != NULL) {
			config_unref(mp.cfg);
			mp.cfg = cfg;
		}
		buf_free(&errors);	/* each worker logs the problems itself */
	} else
		mw.stopping = 1;
	for (i = 0; i < mw.n; i++)
		if (mw.pids[i] > 0)
			kill(mw.pids[i], sig == SIGINT ? SIGTERM : (int)sig);
}

static int
main_master(size_t n, int *fds, int debug)
{
	struct event_base *base;
	struct event *sigs[4];
	static const int which[4] = { SIGHUP, SIGTERM, SIGINT, SIGCHLD };
	size_t i;

	mw.n = n;
	mw.fds = fds;
	mw.debug = debug;
	mw.pids = calloc(n, sizeof(*mw.pids));
	mw.started = calloc(n, sizeof(*mw.started));
	mw.restart = calloc(n, sizeof(*mw.restart));
	if (mw.pids == NULL || mw.started == NULL || mw.restart == NULL)
		log_fatal("calloc: %s", strerror(errno));
	/* Signals are caught from here on, so nothing is lost while forking. */
	if ((base = mw.base = event_base_new()) == NULL)
		log_fatal("cannot create the event loop");
	for (i = 0; i < n; i++)
		if ((mw.restart[i] = evtimer_new(base, main_restart,
		    (void *)(uintptr_t)i)) == NULL)
			log_fatal("cannot create a timer");
	for (i = 0; i < 4; i++) {
		sigs[i] = evsignal_new(base, which[i], main_master_signal, base);
		if (sigs[i] == NULL || evsignal_add(sigs[i], NULL) == -1)
			log_fatal("cannot install signal handlers");
	}
	main_listening();
	for (i = 0; i < n; i++)
		mw.pids[i] = main_spawn(i);
	event_base_dispatch(base);
	log_msg(LOG_INFO, NULL, "exit", "workers=%zu", n);
	for (i = 0; i < 4; i++)
		event_free(sigs[i]);
	for (i = 0; i < n; i++)
		event_free(mw.restart[i]);
	event_base_free(base);
	free(mw.pids);
	free(mw.started);
	free(mw.restart);
	config_unref(mp.cfg);
	return 0;
}

int
main(int argc, char *argv[])
{
	static const struct option longopts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "check", no_argument, NULL, 'k' },
		{ "debug", no_argument, NULL, 'd' },
		{ "version", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	struct buf errors = BUF_INIT;
	const char *path = NULL;
	int ch, check = 0, debug = 0, r, *fds;
	char err[256], addr[sizeof(mp.addr)];
	size_t nw;

	while ((ch = getopt_long(argc, argv, "c:dVh", longopts, NULL)) != -1) {
		switch (ch) {
		case 'c': path = optarg; break;
		case 'k': check = 1; break;
		case 'd': debug = 1; break;
		case 'V': printf("mailprevent %s\n", MAILPREVENT_VERSION); return 0;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (path == NULL || optind != argc) {
		usage(stderr);
		return 2;
	}
	/* --check prints only problems; a running proxy logs its start. */
	log_init("mailprevent", check ? LOG_WARN : LOG_INFO);
	if ((mp.cfg = config_load(path, &errors)) == NULL) {
		main_print_errors(path, &errors);
		buf_free(&errors);
		return 1;
	}
	buf_free(&errors);
	if (check) {
		printf("%s: configuration OK\n", path);
		config_unref(mp.cfg);
		return 0;
	}
	log_init("mailprevent", debug ? LOG_DEBUG : mp.cfg->log_level);
	signal(SIGPIPE, SIG_IGN);
	nw = mp.cfg->workers ? mp.cfg->workers :
	    (size_t)(sysconf(_SC_NPROCESSORS_ONLN) > 0 ?
	    sysconf(_SC_NPROCESSORS_ONLN) : 1);
	if ((fds = calloc(nw, sizeof(*fds))) == NULL)
		log_fatal("calloc: %s", strerror(errno));
	if (listener_bind(mp.cfg, fds, nw, addr, sizeof(addr), err,
	    sizeof(err)) == -1)
		log_fatal("%s", err);
	/*
	 * Bound and listening: connections queue in the kernel from now on,
	 * and signals are handled from here (the master's, or the worker's
	 * once it is up), so a client or a SIGHUP may come at once.
	 */
	snprintf(mp.addr, sizeof(mp.addr), "%s", addr);
	mp.nworkers = nw;
	if (nw == 1) {
		r = main_serve(fds[0], debug, main_listening);
		free(fds);
		return r;
	}
	r = main_master(nw, fds, debug);
	free(fds);
	return r;
}
