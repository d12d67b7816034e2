/* dbctl's shared declarations: the parsed global options (arg_*) and the
 * verb functions each ctl/cmd_<family>.c provides. */
#pragma once

#include <stdbool.h>

typedef enum CtlOutput {
    CTL_OUTPUT_TABLE,
    CTL_OUTPUT_JSON,
    CTL_OUTPUT_YAML,
    _CTL_OUTPUT_MAX,
    _CTL_OUTPUT_INVALID = -22,
} CtlOutput;

extern const char *arg_config;
extern const char *arg_etcd;
extern const char *arg_etcd_cacert, *arg_etcd_cert, *arg_etcd_key, *arg_etcd_user;
extern bool arg_insecure; /* -k: do not verify the agents' REST certificates */
extern const char *arg_scope;
extern CtlOutput arg_output;
extern bool arg_force;

/* A decimal integer in [min, max] and nothing else (ctl/main.c). */
bool ctl_parse_long(const char *s, long min, long max, long *ret);

/* Prints `dbctl VERB --help` (ctl/main.c's verb table) to stdout. */
void ctl_verb_help(const char *verb);

/* Each verb gets its own argv (argv[0] is the verb) and returns the exit
 * status: 0 done, 1 failed or refused, 2 usage or config error. */
/* ctl/cmd_version.c */
int verb_version(int argc, char *argv[]);
/* ctl/cmd_switchover.c: switchover, failover and flush (the `failover` key) */
int verb_switchover(int argc, char *argv[]);
int verb_failover(int argc, char *argv[]);
int verb_flush(int argc, char *argv[]);
/* ctl/cmd_read.c */
int verb_history(int argc, char *argv[]);
int verb_show_config(int argc, char *argv[]);
int verb_dsn(int argc, char *argv[]);
/* ctl/cmd_pause.c */
int verb_pause(int argc, char *argv[]);
int verb_resume(int argc, char *argv[]);
/* ctl/cmd_status.c: status (alias list) and topology */
int verb_status(int argc, char *argv[]);
int verb_topology(int argc, char *argv[]);
/* ctl/cmd_config.c */
int verb_edit_config(int argc, char *argv[]);
/* ctl/cmd_query.c */
int verb_query(int argc, char *argv[]);
/* ctl/cmd_member.c: through the agents' REST API */
int verb_restart(int argc, char *argv[]);
int verb_reinit(int argc, char *argv[]);
int verb_reload(int argc, char *argv[]);
/* `flush [CLUSTER] restart [MEMBER...]` (verb_flush's target): DELETE
 * /restart on each member (all when none named; role "primary", "replica"
 * or NULL) that shows a scheduled restart. Returns the exit status. */
int ctl_flush_restart(const char *cluster, int argc, char *argv[], const char *role);
/* ctl/cmd_route.c: route pgbouncer */
int verb_route(int argc, char *argv[]);
/* ctl/cmd_remove.c */
int verb_remove(int argc, char *argv[]);
