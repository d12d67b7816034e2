/* dbagent entry point: command-line handling and start-up. The HA loop
 * itself lives in the agent modules; this file only parses arguments,
 * sets up logging and loads the configuration. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dbha/dbha.h"

#include "agent.h"
#include "config.h"
#include "ha.h"
#include "log.h"

extern char **environ;

static void help(void)
{
    printf("Usage: dbagent [OPTIONS] [CONFIG.yml]\n"
           "\n"
           "PostgreSQL high-availability agent (Patroni-compatible configuration).\n"
           "Without CONFIG.yml, the YAML document in PATRONI_CONFIGURATION is read.\n"
           "\n"
           "Options:\n"
           "  --validate-config [FILE]\n"
           "                          check FILE (or PATRONI_CONFIGURATION) with the\n"
           "                          PATRONI_*/DBHA_* environment overrides, print\n"
           "                          problems as FILE:LINE:COL, exit 0 when valid,\n"
           "                          2 when not\n"
           "  --dump-fsm=dot|json     print the HA state machine table and exit\n"
           "  --version               print the version and exit\n"
           "  -h, --help              print this help and exit\n");
}

/* Loads `path` with the process environment, prints every diagnostic to
 * stderr, and returns the exit status: 0 valid, 2 invalid or unreadable. */
static int validate_config(const char *path)
{
    _cleanup_(config_freep) Config *cfg = NULL;
    ConfigDiags diags = { 0 };
    int r = config_load_from(path, environ, &cfg, &diags);
    config_diags_print(&diags, stderr);
    config_diags_done(&diags);
    const char *name = path ? path : CONFIG_ENV_DOCUMENT;
    if (r < 0) {
        fprintf(stderr, "%s: configuration is not valid\n", name);
        return 2;
    }
    printf("%s: configuration is valid\n", name);
    config_summary(cfg, stdout);
    return 0;
}

int main(int argc, char *argv[])
{
    enum { ARG_VALIDATE = 0x100, ARG_VERSION, ARG_DUMP_FSM };
    static const struct option options[] = {
        { "validate-config", no_argument, NULL, ARG_VALIDATE },
        { "dump-fsm", required_argument, NULL, ARG_DUMP_FSM },
        { "version", no_argument, NULL, ARG_VERSION },
        { "help", no_argument, NULL, 'h' },
        {},
    };
    bool validate = false;
    int c;

    log_setup_default();
    while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0) {
        switch (c) {
        case 'h':
            help();
            return 0;
        case ARG_VERSION:
            printf("dbagent %s\n", dbha_version());
            return 0;
        case ARG_VALIDATE:
            validate = true; /* FILE is the operand, as Patroni's */
            break;
        case ARG_DUMP_FSM:
            if (ha_dump(optarg, stdout) < 0) {
                fprintf(stderr, "dbagent: --dump-fsm takes \"dot\" or \"json\"\n");
                return 2;
            }
            return 0;
        default:
            fprintf(stderr, "Try 'dbagent --help' for more information.\n");
            return 2;
        }
    }
    if (optind + 1 < argc) {
        fprintf(stderr, "dbagent: unexpected argument \"%s\"\n", argv[optind + 1]);
        return 2;
    }
    const char *path = optind < argc ? argv[optind] : NULL;
    if (validate) {
        return validate_config(path);
    }

    /* Load and report the configuration exactly as --validate-config does,
     * so a broken file fails the service start with the same message. */
    _cleanup_(config_freep) Config *cfg = NULL;
    ConfigDiags diags = { 0 };
    int r = config_load_from(path, environ, &cfg, &diags);
    config_diags_print(&diags, stderr);
    config_diags_done(&diags);
    if (r < 0) {
        return 2;
    }
    LogLevel lvl = log_level_from_string(cfg->log.level);
    if (lvl >= 0) {
        log_set_max_level(lvl);
    }
    log_set_context(cfg->name, cfg->scope, NULL);
    (void)log_set_format(cfg->log.format, cfg->log.dateformat); /* checked when loaded */
    /* Patroni's postgresql.krbsrvname: every libpq connection of the agent
     * and of what it starts (pg_basebackup, pg_rewind, the server's
     * walreceiver) uses that Kerberos service name */
    if (cfg->postgresql.krbsrvname && setenv("PGKRBSRVNAME", cfg->postgresql.krbsrvname, 1) < 0) {
        log_error_errno(errno, "PGKRBSRVNAME: %m");
        return 1;
    }
    if (cfg->log.dir) {
        r = log_set_dir(cfg->log.dir, cfg->log.file_size, cfg->log.file_num);
        if (r < 0) {
            log_error_errno(r, "log.dir: cannot open \"%s/patroni.log\" for appending: %m",
                            cfg->log.dir);
            return 1;
        }
    }
    if (geteuid() == 0) {
        log_error("refusing to run as root: PostgreSQL will not; run dbagent as the owner of "
                  "the data directory (e.g. \"postgres\")");
        return 1;
    }
    _cleanup_(agent_freep) Agent *agent = NULL;
    r = agent_new(path, TAKE_PTR(cfg), &agent);
    if (r < 0) {
        return 1;
    }
    return agent_run(agent);
}
