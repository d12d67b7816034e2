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
extern const char *arg_scope;
extern CtlOutput arg_output;
extern bool arg_force;

/* Each verb gets its own argv (argv[0] is the verb) and returns the exit
 * status: 0 done, 1 failed or refused, 2 usage or config error. */
int verb_version(int argc, char *argv[]);
int verb_switchover(int argc, char *argv[]);
int verb_history(int argc, char *argv[]);
int verb_show_config(int argc, char *argv[]);
int verb_dsn(int argc, char *argv[]);
int verb_pause(int argc, char *argv[]);
int verb_resume(int argc, char *argv[]);
/* ctl/cmd_status.c: status (alias list) [SCOPE] [-o FMT] [--watch SEC] [--namespace NS] */
int verb_status(int argc, char *argv[]);
