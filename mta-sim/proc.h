/*
 * proc: child processes of the scenario runner (bin/mailprevent), run on
 * the runner's event loop. Their stdout and stderr are read through the
 * loop without blocking and handed over line by line; their exit is
 * noticed through SIGCHLD. A proc is freed by proc.c right after its exit
 * callback has run, so the owner must drop its pointer there.
 *
 * Children get PR_SET_PDEATHSIG(SIGKILL): if the runner itself dies, they
 * die with it rather than hold loopback ports forever.
 */
#ifndef MTA_SIM_PROC_H
#define MTA_SIM_PROC_H

#include <stddef.h>
#include <sys/types.h>

struct event_base;
struct proc;

enum proc_stream { PROC_STDOUT = 1, PROC_STDERR = 2 };

typedef void proc_line_cb(void *arg, enum proc_stream, const char *line,
    size_t len);
/* status is a waitpid() status. Every line has been delivered before. */
typedef void proc_exit_cb(void *arg, int status);

/* argv[0] is the program path. NULL with err set if it cannot start. */
struct proc	*proc_start(struct event_base *, char *const argv[],
		    proc_line_cb *, proc_exit_cb *, void *arg,
		    char *err, size_t errlen);
pid_t		 proc_pid(const struct proc *);
int		 proc_signal(struct proc *, int sig);
/* Stop calling back: the owner is going away (the child keeps running). */
void		 proc_detach(struct proc *);

/* Children started and not yet reaped. */
size_t		 proc_nrunning(void);
void		 proc_signal_all(int sig);
/* Last resort (the runner is exiting): SIGKILL and reap every child now. */
void		 proc_kill_all(void);

#endif
