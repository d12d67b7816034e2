/* postgresql.callbacks, run as Patroni 3.0.2 runs them: the configured
 * command split shell-style, then `<action> <role> <scope>`, as a child
 * process in its own process group. The loop never waits for one: it is
 * reaped through sd-event, killed with its process group at its deadline,
 * and its exit status, duration and first CALLBACKS_OUTPUT_MAX bytes of
 * output are logged when it ends. The pure parts (splitting, argv, which
 * callback an event fires) are separate from the runner for unit tests. */
#pragma once

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <systemd/sd-event.h>

#include "config.h"
#include "ha.h"
#include "macro.h"

/* The first bytes of a callback's stdout and stderr (one pipe) kept for the
 * log; the rest is read and dropped so the child never blocks on a pipe. */
#define CALLBACKS_OUTPUT_MAX (4 * 1024)
/* At shutdown, how long running callbacks (on_stop among them) may still
 * take before their process groups are killed. */
#define CALLBACKS_SHUTDOWN_GRACE_USEC (5 * 1000 * 1000ULL)

typedef enum CallbacksAction {
    CALLBACKS_ON_START,
    CALLBACKS_ON_STOP,
    CALLBACKS_ON_RESTART,
    CALLBACKS_ON_RELOAD,
    CALLBACKS_ON_ROLE_CHANGE,
    _CALLBACKS_ACTION_MAX,
    _CALLBACKS_ACTION_INVALID = -EINVAL,
} CallbacksAction;

/* The role argument, with Patroni 3.0.2's words ("master", not "primary").
 * standby_leader: the leader of a standby cluster (agent_standby_leader). */
typedef enum CallbacksRole {
    CALLBACKS_ROLE_UNINITIALIZED,
    CALLBACKS_ROLE_MASTER,
    CALLBACKS_ROLE_REPLICA,
    CALLBACKS_ROLE_STANDBY_LEADER,
    CALLBACKS_ROLE_DEMOTED,
    _CALLBACKS_ROLE_MAX,
    _CALLBACKS_ROLE_INVALID = -EINVAL,
} CallbacksRole;

/* What the agent did to (or saw of) its PostgreSQL. */
typedef enum CallbacksEvent {
    CALLBACKS_EVENT_RESTARTING, /* an operator's restart job begins */
    CALLBACKS_EVENT_STARTED,    /* a start or restart job ended with PostgreSQL up in `role` */
    CALLBACKS_EVENT_START_FAILED,
    CALLBACKS_EVENT_ATTACHED, /* found PostgreSQL running in `role` (agent start, or it came
                                 back on its own) */
    CALLBACKS_EVENT_STOPPED,  /* the agent stopped it (stop job, fencing, shutdown) */
    CALLBACKS_EVENT_DEMOTED,  /* it stopped it to hand over leadership (switchover) */
    CALLBACKS_EVENT_PROMOTED, /* pg_promote: PostgreSQL left recovery */
    CALLBACKS_EVENT_RELOADED, /* PostgreSQL (or the agent's own configuration) was reloaded */
    _CALLBACKS_EVENT_MAX,
    _CALLBACKS_EVENT_INVALID = -EINVAL,
} CallbacksEvent;

const char *callbacks_action_to_string(CallbacksAction a);
CallbacksAction callbacks_action_from_string(const char *s);
const char *callbacks_role_to_string(CallbacksRole r);
CallbacksRole callbacks_role_from_string(const char *s);
const char *callbacks_event_to_string(CallbacksEvent e);

/* Patroni's bookkeeping (postgresql/__init__.py: role, cb_called and the
 * pending callback of a start): what the callbacks were last told. */
typedef struct CallbacksTrack {
    CallbacksRole role; /* UNINITIALIZED: nothing announced yet */
    bool called;        /* on_start/on_stop/on_restart/on_role_change has fired */
    bool restarting;    /* the next STARTED is an on_restart */
} CallbacksTrack;

/* Pure. Which callback `ev` fires and with which role; `role` is the role
 * PostgreSQL is in for STARTED/ATTACHED, and the fallback for the others
 * while t->role is UNINITIALIZED. Updates *t. Returns 1 and the action and
 * role, 0 when the event fires nothing, -EINVAL for an argument out of
 * range (nothing written). */
int callbacks_decide(CallbacksTrack *t, CallbacksEvent ev, CallbacksRole role,
                     CallbacksAction *ret_action, CallbacksRole *ret_role);

/* Pure. Splits `command` as Python's shlex.split does (POSIX mode, no
 * comments): blanks separate words; '...' keeps everything; "..." keeps
 * everything but a backslash before " or \; outside quotes a backslash
 * escapes any character. Returns the number of words and a NULL-terminated
 * vector (owned; free it with callbacks_argv_free), -EINVAL for
 * an open quote or a trailing backslash, -ENOMEM. */
int callbacks_split(const char *command, char ***ret_argv);
/* The full argv: split(command) + action + role + scope. Returns argc, or
 * -EINVAL (bad command, or no word in it), -ENOMEM. */
int callbacks_argv(const char *command, CallbacksAction action, CallbacksRole role,
                   const char *scope, char ***ret_argv);
char **callbacks_argv_free(char **argv);

/* The runner. Patroni runs one on_start/on_stop/on_restart/on_role_change
 * at a time and kills the running one when the next is called; on_reload
 * has a slot of its own with the same rule. */
typedef struct Callbacks Callbacks;

/* `event` is borrowed and must outlive the runner; SIGCHLD must be blocked.
 * The callbacks' environment is ours now, without the agent's variables
 * (lib/inherit.h); they get no descriptor above stderr. Returns 0 and
 * *ret, or -ENOMEM. Does not log. */
int callbacks_new(sd_event *event, Callbacks **ret);
/* Kills (SIGKILL to the process group) and reaps every callback still
 * running, logging each. Accepts NULL; returns NULL. */
Callbacks *callbacks_free(Callbacks *cb);
DEFINE_TRIVIAL_CLEANUP_FUNC(Callbacks *, callbacks_free);

CallbacksTrack *callbacks_track(Callbacks *cb);

/* Starts argv (argv[0] looked up in PATH, stdin /dev/null, stdout and
 * stderr to a pipe the runner reads, its own process group) for `action`,
 * killing the callback that runs in the same slot. Never waits for it.
 * Returns 0, or a negative errno (logged: the command could not be run). */
int callbacks_run(Callbacks *cb, CallbacksAction action, char *const *argv, uint64_t timeout_usec);

/* Callbacks still running (killed ones not yet reaped included). */
size_t callbacks_running(const Callbacks *cb);

/* The agent's events. callbacks_event: `role` is the one to announce when
 * the track has none (callbacks_role_guess: from the HA state and whether
 * the last probe saw a primary); runs the configured command without
 * waiting. callbacks_state: the HA state changed (a start ended, or a
 * running server was found). Log what they run; never fail. */
CallbacksRole callbacks_role_guess(HaState state, bool probed_primary);
void callbacks_event(Callbacks *cb, const Config *config, CallbacksEvent ev, CallbacksRole role);
void callbacks_state(Callbacks *cb, const Config *config, HaState from, HaState to);

/* Shutdown: waits (blocking, in 10 ms steps) up to grace_usec for the
 * running callbacks to end, logging each, then kills the rest. */
void callbacks_drain(Callbacks *cb, uint64_t grace_usec);
