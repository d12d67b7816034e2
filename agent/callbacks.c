/* postgresql.callbacks: the pure parts (Patroni's shell-style split, the
 * argv, which callback an event fires), the runner (posix_spawn, a pipe
 * read through sd-event, a deadline per child, reaping through sd-event),
 * and the agent's side that maps what the loop did to events. */
#include "callbacks.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "cmdsplit.h"
#include "inherit.h"
#include "log.h"

extern char **environ;

static const char *const action_table[_CALLBACKS_ACTION_MAX] = {
    [CALLBACKS_ON_START] = "on_start",
    [CALLBACKS_ON_STOP] = "on_stop",
    [CALLBACKS_ON_RESTART] = "on_restart",
    [CALLBACKS_ON_RELOAD] = "on_reload",
    [CALLBACKS_ON_ROLE_CHANGE] = "on_role_change",
};

static const char *const role_table[_CALLBACKS_ROLE_MAX] = {
    [CALLBACKS_ROLE_UNINITIALIZED] = "uninitialized",
    [CALLBACKS_ROLE_MASTER] = "master",
    [CALLBACKS_ROLE_REPLICA] = "replica",
    [CALLBACKS_ROLE_STANDBY_LEADER] = "standby_leader",
    [CALLBACKS_ROLE_DEMOTED] = "demoted",
};

static const char *const event_table[_CALLBACKS_EVENT_MAX] = {
    [CALLBACKS_EVENT_RESTARTING] = "restarting",     [CALLBACKS_EVENT_STARTED] = "started",
    [CALLBACKS_EVENT_START_FAILED] = "start-failed", [CALLBACKS_EVENT_ATTACHED] = "attached",
    [CALLBACKS_EVENT_STOPPED] = "stopped",           [CALLBACKS_EVENT_DEMOTED] = "demoted",
    [CALLBACKS_EVENT_PROMOTED] = "promoted",         [CALLBACKS_EVENT_RELOADED] = "reloaded",
};

static int lookup(const char *const *table, int n, const char *s)
{
    for (int i = 0; s && i < n; i++) {
        if (table[i] && strcmp(table[i], s) == 0) {
            return i;
        }
    }
    return -EINVAL;
}

const char *callbacks_action_to_string(CallbacksAction a)
{
    return a >= 0 && a < _CALLBACKS_ACTION_MAX ? action_table[a] : NULL;
}

CallbacksAction callbacks_action_from_string(const char *s)
{
    return (CallbacksAction)lookup(action_table, _CALLBACKS_ACTION_MAX, s);
}

const char *callbacks_role_to_string(CallbacksRole r)
{
    return r >= 0 && r < _CALLBACKS_ROLE_MAX ? role_table[r] : NULL;
}

CallbacksRole callbacks_role_from_string(const char *s)
{
    return (CallbacksRole)lookup(role_table, _CALLBACKS_ROLE_MAX, s);
}

const char *callbacks_event_to_string(CallbacksEvent e)
{
    return e >= 0 && e < _CALLBACKS_EVENT_MAX ? event_table[e] : NULL;
}

/* ---- which callback ---- */

int callbacks_decide(CallbacksTrack *t, CallbacksEvent ev, CallbacksRole role,
                     CallbacksAction *ret_action, CallbacksRole *ret_role)
{
    if (!t || ev < 0 || ev >= _CALLBACKS_EVENT_MAX || role < 0 || role >= _CALLBACKS_ROLE_MAX) {
        return -EINVAL;
    }
    CallbacksRole known = t->role != CALLBACKS_ROLE_UNINITIALIZED ? t->role : role;
    CallbacksAction action;
    CallbacksRole passed;
    switch (ev) {
    case CALLBACKS_EVENT_RESTARTING:
        t->restarting = true;
        return 0;
    case CALLBACKS_EVENT_START_FAILED:
        t->restarting = false;
        return 0;
    case CALLBACKS_EVENT_STARTED:
        /* Patroni's follow(): a start in another role than the one last
         * announced (a former primary coming back as a replica) is
         * on_role_change instead of on_start; a restart stays on_restart */
        if (t->restarting) {
            action = CALLBACKS_ON_RESTART;
        } else if (t->called && t->role != CALLBACKS_ROLE_UNINITIALIZED && t->role != role) {
            action = CALLBACKS_ON_ROLE_CHANGE;
        } else {
            action = CALLBACKS_ON_START;
        }
        passed = role;
        break;
    case CALLBACKS_EVENT_ATTACHED:
        /* Patroni's first run cycle calls on_start when nothing was called
         * yet; a server that kept running in the announced role is no news */
        if (!t->called) {
            action = CALLBACKS_ON_START;
        } else if (t->role != role) {
            action = CALLBACKS_ON_ROLE_CHANGE;
        } else {
            return 0;
        }
        passed = role;
        break;
    case CALLBACKS_EVENT_STOPPED:
        action = CALLBACKS_ON_STOP;
        passed = known;
        break;
    case CALLBACKS_EVENT_DEMOTED:
        action = CALLBACKS_ON_STOP;
        passed = CALLBACKS_ROLE_DEMOTED;
        break;
    case CALLBACKS_EVENT_PROMOTED:
        action = CALLBACKS_ON_ROLE_CHANGE;
        passed = CALLBACKS_ROLE_MASTER;
        break;
    case CALLBACKS_EVENT_RELOADED:
        /* on_reload does not count as "called" in Patroni either */
        *ret_action = CALLBACKS_ON_RELOAD;
        *ret_role = known;
        return 1;
    default:
        return -EINVAL;
    }
    t->called = true;
    t->restarting = false;
    /* a stopped primary is "demoted" until it runs again */
    t->role = action == CALLBACKS_ON_STOP && passed == CALLBACKS_ROLE_MASTER
                  ? CALLBACKS_ROLE_DEMOTED
                  : passed;
    *ret_action = action;
    *ret_role = passed;
    return 1;
}

/* ---- argv ---- */

char **callbacks_argv_free(char **argv)
{
    return cmdsplit_free(argv);
}

int callbacks_split(const char *command, char ***ret_argv)
{
    return cmdsplit(command, ret_argv);
}

int callbacks_argv(const char *command, CallbacksAction action, CallbacksRole role,
                   const char *scope, char ***ret_argv)
{
    const char *a = callbacks_action_to_string(action);
    const char *ro = callbacks_role_to_string(role);
    if (!a || !ro || !scope) {
        return -EINVAL;
    }
    char **v = NULL;
    int n = callbacks_split(command, &v);
    if (n < 0) {
        return n;
    }
    if (n == 0) {
        callbacks_argv_free(v);
        return -EINVAL;
    }
    size_t k = (size_t)n;
    const char *const extra[] = { a, ro, scope };
    for (size_t i = 0; i < ELEMENTSOF(extra); i++) {
        char *copy = strdup(extra[i]);
        int r = copy ? cmdsplit_push(&v, &k, copy) : -ENOMEM;
        if (r < 0) {
            callbacks_argv_free(v);
            return r;
        }
    }
    *ret_argv = v;
    return (int)k;
}

/* ---- the runner ---- */

/* Two slots, as Patroni's CallbackExecutor and its OnReloadExecutor. */
typedef enum CallbacksSlot {
    CALLBACKS_SLOT_MAIN,
    CALLBACKS_SLOT_RELOAD,
    _CALLBACKS_SLOT_MAX,
} CallbacksSlot;

/* Longest "on_role_change master scope (prog)" kept for the log. */
#define CALLBACKS_DESC_MAX 256

typedef struct CallbackProc CallbackProc;
struct CallbackProc {
    CallbackProc *next; /* owned by the list */
    Callbacks *owner;   /* borrowed */
    CallbacksSlot slot;
    pid_t pid;              /* also its process group */
    int fd;                 /* owned: the pipe's read end, -1 once at EOF */
    sd_event_source *child; /* owned */
    sd_event_source *io;    /* owned */
    sd_event_source *timer; /* owned */
    uint64_t start_usec;
    uint64_t timeout_usec;
    bool timed_out; /* killed at its deadline */
    bool replaced;  /* killed for a newer callback in its slot */
    char desc[CALLBACKS_DESC_MAX];
    char out[CALLBACKS_OUTPUT_MAX];
    size_t out_len;
    size_t dropped; /* bytes read past out */
};

struct Callbacks {
    sd_event *event;                            /* borrowed */
    CallbackProc *procs;                        /* owned list: every child not reaped yet */
    CallbackProc *current[_CALLBACKS_SLOT_MAX]; /* borrowed from procs */
    CallbacksTrack track;
    const ConfigMap *checked; /* borrowed: the callbacks map last checked for unknown names */
    char **env;               /* owned: the callbacks' environment, without the agent's variables */
};

int callbacks_new(sd_event *event, Callbacks **ret)
{
    Callbacks *cb = calloc(1, sizeof(*cb));
    if (!cb) {
        return -ENOMEM;
    }
    cb->event = event;
    int r = inherit_env_new(environ, NULL, &cb->env);
    if (r < 0) {
        free(cb);
        return r;
    }
    *ret = cb;
    return 0;
}

CallbacksTrack *callbacks_track(Callbacks *cb)
{
    return &cb->track;
}

size_t callbacks_running(const Callbacks *cb)
{
    size_t n = 0;
    for (const CallbackProc *p = cb ? cb->procs : NULL; p; p = p->next) {
        n++;
    }
    return n;
}

static void read_output(CallbackProc *p)
{
    char buf[1024];
    for (int i = 0; p->fd >= 0 && i < 64; i++) {
        ssize_t k = read(p->fd, buf, sizeof(buf));
        if (k < 0 && errno == EINTR) {
            continue;
        }
        if (k <= 0) {
            if (k == 0 || errno != EAGAIN) {
                p->io = sd_event_source_disable_unref(p->io);
                close(p->fd);
                p->fd = -1;
            }
            return;
        }
        size_t room = sizeof(p->out) - p->out_len;
        size_t take = (size_t)k < room ? (size_t)k : room;
        memcpy(p->out + p->out_len, buf, take);
        p->out_len += take;
        p->dropped += (size_t)k - take;
    }
}

static int on_output(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
    (void)s;
    (void)fd;
    (void)revents;
    read_output(userdata);
    return 0;
}

static void unlink_proc(CallbackProc *p)
{
    Callbacks *cb = p->owner;
    for (CallbackProc **pp = &cb->procs; *pp; pp = &(*pp)->next) {
        if (*pp == p) {
            *pp = p->next;
            break;
        }
    }
    if (cb->current[p->slot] == p) {
        cb->current[p->slot] = NULL;
    }
    p->child = sd_event_source_disable_unref(p->child);
    p->io = sd_event_source_disable_unref(p->io);
    p->timer = sd_event_source_disable_unref(p->timer);
    if (p->fd >= 0) {
        close(p->fd);
    }
    free(p);
}

/* Logs how a callback ended (code/status as in siginfo_t), with what it
 * printed; then forgets it. A grandchild that still holds the pipe gets
 * EPIPE from here on. */
static void finish(CallbackProc *p, int code, int status)
{
    read_output(p);
    unsigned long long ms = (clock_monotonic_usec() - p->start_usec) / 1000;
    if (code == CLD_EXITED && status == 0) {
        log_info("callback %s (pid %d) exited with status 0 after %llu ms", p->desc, (int)p->pid,
                 ms);
    } else if (code == CLD_EXITED) {
        log_warning("callback %s (pid %d) exited with status %d after %llu ms", p->desc,
                    (int)p->pid, status, ms);
    } else if (p->timed_out) {
        log_warning("callback %s (pid %d) killed after %llu ms: it outlived postgresql."
                    "callback_timeout (%llu s)",
                    p->desc, (int)p->pid, ms, (unsigned long long)(p->timeout_usec / 1000000));
    } else if (p->replaced) {
        log_warning("callback %s (pid %d) killed after %llu ms: a newer callback replaced it",
                    p->desc, (int)p->pid, ms);
    } else {
        log_warning("callback %s (pid %d) killed by signal %d after %llu ms", p->desc, (int)p->pid,
                    status, ms);
    }
    size_t n = p->out_len;
    while (n > 0 && (p->out[n - 1] == '\n' || p->out[n - 1] == '\r')) {
        n--;
    }
    if (n > 0) {
        log_info("callback %s (pid %d) output%s:\n%.*s", p->desc, (int)p->pid,
                 p->dropped ? " (truncated to its first 4 KiB)" : "", (int)n, p->out);
    }
    unlink_proc(p);
}

static int on_exit_child(sd_event_source *s, const siginfo_t *si, void *userdata)
{
    (void)s;
    finish(userdata, si->si_code, si->si_status);
    return 0;
}

static void kill_group(CallbackProc *p)
{
    (void)kill(-p->pid, SIGKILL);
}

static int on_deadline(sd_event_source *s, uint64_t usec, void *userdata)
{
    (void)s;
    (void)usec;
    CallbackProc *p = userdata;
    log_warning("callback %s (pid %d) still runs after %llu s: killing its process group", p->desc,
                (int)p->pid, (unsigned long long)(p->timeout_usec / 1000000));
    p->timed_out = true;
    kill_group(p);
    return 0;
}

static void describe(CallbackProc *p, char *const *argv)
{
    size_t argc = 0;
    while (argv[argc]) {
        argc++;
    }
    /* "<action> <role> <scope>" are the last three words */
    if (argc >= 4) {
        (void)snprintf(p->desc, sizeof(p->desc), "%s %s %s (%s)", argv[argc - 3], argv[argc - 2],
                       argv[argc - 1], argv[0]);
    } else {
        (void)snprintf(p->desc, sizeof(p->desc), "%s", argv[0]);
    }
}

static int spawn(char *const *argv, char *const *env, int out_fd, pid_t *ret_pid)
{
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t at;
    int r = posix_spawn_file_actions_init(&fa);
    if (r != 0) {
        return -r;
    }
    r = posix_spawnattr_init(&at);
    if (r != 0) {
        posix_spawn_file_actions_destroy(&fa);
        return -r;
    }
    sigset_t none, dfl;
    sigemptyset(&none);
    sigemptyset(&dfl);
    const int reset[] = { SIGPIPE, SIGCHLD, SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2 };
    for (size_t i = 0; i < ELEMENTSOF(reset); i++) {
        sigaddset(&dfl, reset[i]);
    }
    if ((r = posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, "/dev/null", O_RDONLY, 0)) ||
        (r = posix_spawn_file_actions_adddup2(&fa, out_fd, STDOUT_FILENO)) ||
        (r = posix_spawn_file_actions_adddup2(&fa, out_fd, STDERR_FILENO)) ||
        (r = posix_spawn_file_actions_addclosefrom_np(&fa, STDERR_FILENO + 1)) ||
        (r = posix_spawnattr_setflags(&at, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK |
                                               POSIX_SPAWN_SETSIGDEF)) ||
        (r = posix_spawnattr_setpgroup(&at, 0)) || (r = posix_spawnattr_setsigmask(&at, &none)) ||
        (r = posix_spawnattr_setsigdefault(&at, &dfl))) {
        posix_spawn_file_actions_destroy(&fa);
        posix_spawnattr_destroy(&at);
        return -r;
    }
    pid_t pid;
    r = posix_spawnp(&pid, argv[0], &fa, &at, argv, env);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&at);
    if (r != 0) {
        return -r;
    }
    *ret_pid = pid;
    return 0;
}

int callbacks_run(Callbacks *cb, CallbacksAction action, char *const *argv, uint64_t timeout_usec)
{
    if (!cb || !argv || !argv[0] || action < 0 || action >= _CALLBACKS_ACTION_MAX) {
        return -EINVAL;
    }
    CallbacksSlot slot =
        action == CALLBACKS_ON_RELOAD ? CALLBACKS_SLOT_RELOAD : CALLBACKS_SLOT_MAIN;
    CallbackProc *old = cb->current[slot];
    if (old) {
        /* Patroni kills the running callback (and its children) first */
        log_warning("killing callback %s (pid %d): it still runs and %s is due", old->desc,
                    (int)old->pid, callbacks_action_to_string(action));
        old->replaced = true;
        kill_group(old);
        cb->current[slot] = NULL;
    }
    CallbackProc *p = calloc(1, sizeof(*p));
    if (!p) {
        return log_error_errno(-ENOMEM, "callback %s: out of memory",
                               callbacks_action_to_string(action));
    }
    p->owner = cb;
    p->slot = slot;
    p->fd = -1;
    p->timeout_usec = timeout_usec;
    describe(p, argv);
    int pipefd[2];
    if (pipe2(pipefd, O_CLOEXEC) < 0) {
        int r = -errno;
        free(p);
        return log_error_errno(r, "callback %s: pipe: %m", callbacks_action_to_string(action));
    }
    (void)fcntl(pipefd[0], F_SETFL, O_NONBLOCK);
    p->start_usec = clock_monotonic_usec();
    int r = spawn(argv, cb->env, pipefd[1], &p->pid);
    close(pipefd[1]);
    if (r < 0) {
        close(pipefd[0]);
        log_error_errno(r, "callback %s: cannot run \"%s\": %m", p->desc, argv[0]);
        free(p);
        return r;
    }
    p->fd = pipefd[0];
    p->next = cb->procs;
    cb->procs = p;
    cb->current[slot] = p;
    r = sd_event_add_child(cb->event, &p->child, p->pid, WEXITED, on_exit_child, p);
    if (r >= 0) {
        r = sd_event_add_io(cb->event, &p->io, p->fd, EPOLLIN, on_output, p);
    }
    if (r >= 0) {
        r = sd_event_add_time(cb->event, &p->timer, CLOCK_MONOTONIC, p->start_usec + timeout_usec,
                              0, on_deadline, p);
    }
    if (r < 0) {
        log_error_errno(r, "callback %s (pid %d): cannot watch it (%m): killing it", p->desc,
                        (int)p->pid);
        kill_group(p);
        (void)waitpid(p->pid, NULL, 0);
        unlink_proc(p);
        return r;
    }
    log_info("callback %s started (pid %d, timeout %llu s)", p->desc, (int)p->pid,
             (unsigned long long)(timeout_usec / 1000000));
    return 0;
}

void callbacks_drain(Callbacks *cb, uint64_t grace_usec)
{
    if (!cb) {
        return;
    }
    uint64_t step = 10 * 1000ULL;
    for (uint64_t waited = 0; cb->procs && waited <= grace_usec; waited += step) {
        CallbackProc *next = NULL;
        for (CallbackProc *p = cb->procs; p; p = next) {
            next = p->next;
            read_output(p);
            siginfo_t si = { 0 };
            if (waitid(P_PID, (id_t)p->pid, &si, WEXITED | WNOHANG) == 0 && si.si_pid == p->pid) {
                finish(p, si.si_code, si.si_status);
            }
        }
        if (cb->procs) {
            struct timespec ts = { .tv_nsec = (long)step * 1000 };
            nanosleep(&ts, NULL);
        }
    }
}

Callbacks *callbacks_free(Callbacks *cb)
{
    if (!cb) {
        return NULL;
    }
    while (cb->procs) {
        CallbackProc *p = cb->procs;
        if (!p->timed_out && !p->replaced) {
            log_warning("killing callback %s (pid %d): the agent exits", p->desc, (int)p->pid);
        }
        kill_group(p);
        siginfo_t si = { 0 };
        if (waitid(P_PID, (id_t)p->pid, &si, WEXITED) == 0) {
            finish(p, si.si_code, si.si_status);
        } else {
            unlink_proc(p);
        }
    }
    inherit_env_free(cb->env);
    free(cb);
    return NULL;
}

/* ---- events ---- */

CallbacksRole callbacks_role_guess(HaState state, bool probed_primary)
{
    bool primary = state == HA_STATE_PRIMARY || state == HA_STATE_STARTING_PRIMARY ||
                   state == HA_STATE_BOOTSTRAP_STARTING || state == HA_STATE_BOOTSTRAP_POST;
    return primary || probed_primary ? CALLBACKS_ROLE_MASTER : CALLBACKS_ROLE_REPLICA;
}

/* Patroni ignores a callback name it does not know; a typo deserves a
 * word, once per configuration (checked at its first event). */
static void check_names(Callbacks *cb, const Config *config)
{
    const ConfigMap *m = &config->postgresql.callbacks;
    if (cb->checked == m) {
        return;
    }
    cb->checked = m;
    for (size_t i = 0; i < m->n; i++) {
        if (callbacks_action_from_string(m->items[i].key) < 0) {
            log_warning("postgresql.callbacks: unknown callback \"%s\" is never run (known: "
                        "on_start, on_stop, on_restart, on_reload, on_role_change)",
                        m->items[i].key);
        }
    }
}

void callbacks_event(Callbacks *cb, const Config *config, CallbacksEvent ev, CallbacksRole role)
{
    if (!cb) {
        return;
    }
    check_names(cb, config);
    CallbacksAction action;
    CallbacksRole passed;
    if (callbacks_decide(callbacks_track(cb), ev, role, &action, &passed) <= 0) {
        return;
    }
    const char *name = callbacks_action_to_string(action);
    const char *command = config_map_get(&config->postgresql.callbacks, name);
    if (!command) {
        log_debug("%s: no %s callback configured", callbacks_event_to_string(ev), name);
        return;
    }
    char **argv = NULL;
    int n = callbacks_argv(command, action, passed, config->scope, &argv);
    if (n < 0) {
        log_error_errno(n, "postgresql.callbacks.%s: cannot split \"%s\" into words (%m)", name,
                        command);
        return;
    }
    (void)callbacks_run(cb, action, argv,
                        (uint64_t)config->postgresql.callback_timeout * 1000000ULL);
    callbacks_argv_free(argv);
}

void callbacks_state(Callbacks *cb, const Config *config, HaState from, HaState to)
{
    if (to == HA_STATE_BOOTSTRAP_POST) {
        return; /* still starting: post_bootstrap runs before the new primary leads */
    }
    bool up = to == HA_STATE_PRIMARY || to == HA_STATE_REPLICA;
    bool starting = from == HA_STATE_STARTING_PRIMARY || from == HA_STATE_STARTING_REPLICA ||
                    from == HA_STATE_BOOTSTRAP_STARTING || from == HA_STATE_BOOTSTRAP_POST;
    CallbacksRole role = to == HA_STATE_PRIMARY ? CALLBACKS_ROLE_MASTER : CALLBACKS_ROLE_REPLICA;
    if (up && starting) {
        callbacks_event(cb, config, CALLBACKS_EVENT_STARTED, role);
    } else if (up && from == HA_STATE_INIT) {
        callbacks_event(cb, config, CALLBACKS_EVENT_ATTACHED, role);
    } else if (starting) {
        callbacks_event(cb, config, CALLBACKS_EVENT_START_FAILED, role);
    }
}
