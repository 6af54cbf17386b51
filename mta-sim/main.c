/*
 * mta-sim entry point: pick the subcommand named by the first argument.
 * The roles themselves are objects on an event loop (roles.h); sink and
 * send are their command lines, run drives them from Lua scenarios.
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "log.h"
#include "sim.h"
#include "runner.h"
#include "dns_server.h"

static const struct sim_role {
	const char	*name;
	int		(*run)(int, char **);
	void		(*usage)(FILE *);
	const char	*summary;
} sim_roles[] = {
	{ "run", runner_main, runner_usage, "run Lua scenarios" },
	{ "sink", sink_main, sink_usage,
	    "SMTP server that records every byte, message and event" },
	{ "send", sender_main, sender_usage,
	    "SMTP client that sends N messages over M sessions" },
	{ "dns", dnssrv_main, dnssrv_usage, "authoritative DNS with faults" },
};

#define SIM_NROLES	(sizeof(sim_roles) / sizeof(sim_roles[0]))

static void
main_usage(FILE *fp)
{
	size_t i;

	fprintf(fp, "usage: mta-sim ROLE [options]   (mta-sim ROLE --help)\n\n"
	    "roles:\n");
	for (i = 0; i < SIM_NROLES; i++)
		fprintf(fp, "  %-6s %s\n", sim_roles[i].name, sim_roles[i].summary);
	fprintf(fp, "\n");
	for (i = 0; i < SIM_NROLES; i++) {
		sim_roles[i].usage(fp);
		fprintf(fp, "\n");
	}
}

int
main(int argc, char **argv)
{
	size_t i;

	log_init("mta-sim", LOG_INFO);
	/* A peer that resets the connection must not kill the process. */
	signal(SIGPIPE, SIG_IGN);

	if (argc < 2) {
		main_usage(stderr);
		return SIM_EXIT_USAGE;
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
	    strcmp(argv[1], "help") == 0) {
		main_usage(stdout);
		return 0;
	}
	for (i = 0; i < SIM_NROLES; i++)
		if (strcmp(argv[1], sim_roles[i].name) == 0)
			return sim_roles[i].run(argc - 1, argv + 1);
	fprintf(stderr, "mta-sim: unknown role '%s'\n\n", argv[1]);
	main_usage(stderr);
	return SIM_EXIT_USAGE;
}
