/* dbctl edit-config: change the cluster-wide configuration in the `config`
 * key. The new document comes from --set/-p/--apply patches (merged the way
 * PATCH /config merges, lib/dynconfig), from a --replace document that
 * stands for the whole config, or, on a terminal, from $EDITOR on its YAML. It is validated like
 * PATCH /config validates, shown as a unified diff of the YAML (diff -u), confirmed, and written
 * with a compare-and-swap on the revision that was read, so a concurrent change is never lost. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "clock.h"
#include "connect.h"
#include "ctl.h"
#include "dcs.h"
#include "dynconfig.h"
#include "inherit.h"
#include "input.h"
#include "macro.h"
#include "output.h"
#include "prompt.h"
#include "verbarg.h"

/* --apply reads at most this much. */
#define CONFIG_APPLY_MAX (1024 * 1024)
/* diff gets this long to compare two small files. */
#define CONFIG_DIFF_USEC (10 * 1000 * 1000ULL)
#define CONFIG_POLL_USEC (10 * 1000ULL)
/* Room for a validation message ("KEY: ..."). */
#define CONFIG_ERROR_MAX 512
/* Status of a child whose exec failed (as the shell reports it). */
#define CONFIG_EXEC_FAILED 127

typedef struct EditArgs {
    const char **sets; /* borrowed from argv: "key.path=value" */
    size_t n_sets;
    const char **pgs; /* borrowed: "name=value" */
    size_t n_pgs;
    const char *apply;   /* borrowed: FILE or "-", or NULL */
    const char *replace; /* borrowed: FILE or "-", or NULL */
} EditArgs;

/* A value as the operator typed it: JSON when it parses, else the text. */
static json_t *typed_value(const char *text)
{
    json_t *v = json_loads(text, JSON_DECODE_ANY, NULL);
    return v ? v : json_string(text);
}

/* {"a": {"b": value}} for "a.b"; takes value. -EINVAL for an empty segment. */
static int path_patch(const char *path, json_t *value, json_t **ret)
{
    _cleanup_free_ char *copy = strdup(path);
    if (!copy || !value) {
        json_decref(value);
        return -ENOMEM;
    }
    json_t *patch = json_object();
    json_t *at = patch;
    char *seg = copy;
    while (at) {
        char *dot = strchr(seg, '.');
        if (dot) {
            *dot = '\0';
        }
        if (!*seg) {
            json_decref(patch);
            json_decref(value);
            return -EINVAL;
        }
        if (!dot) {
            if (json_object_set_new(at, seg, value) < 0) {
                json_decref(patch);
                return -ENOMEM;
            }
            *ret = patch;
            return 0;
        }
        json_t *child = json_object();
        if (json_object_set_new(at, seg, child) < 0) {
            break;
        }
        at = child;
        seg = dot + 1;
    }
    json_decref(patch);
    json_decref(value);
    return -ENOMEM;
}

/* Merges patch into *doc (replacing it). Takes patch. */
static int merge_patch(json_t **doc, json_t *patch)
{
    json_t *merged = NULL;
    int r = dynconfig_merge(*doc, patch, &merged);
    json_decref(patch);
    if (r < 0) {
        return r;
    }
    json_decref(*doc);
    *doc = merged;
    return 0;
}

/* The YAML or JSON mapping in path ("-": stdin) that option names, in
 * *ret. Returns 0, or the exit status after printing why. */
static int read_document(const char *option, const char *path, json_t **ret)
{
    _cleanup_free_ char *text = NULL;
    size_t len = 0;
    int r = input_read_file(path, CONFIG_APPLY_MAX, &text, &len);
    if (r < 0) {
        fprintf(stderr, "dbctl edit-config: %s: cannot read \"%s\": %s\n", option, path,
                r == -EFBIG ? "larger than 1 MiB" : strerror(-r));
        return 2;
    }
    json_t *doc = NULL;
    char err[INPUT_ERROR_MAX];
    r = input_parse_document(text, len, &doc, err, sizeof(err));
    if (r < 0 || !json_is_object(doc)) {
        fprintf(stderr, "dbctl edit-config: %s: \"%s\" is not a YAML or JSON mapping%s%s\n", option,
                path, r < 0 ? ": " : "", r < 0 ? err : "");
        json_decref(doc);
        return 2;
    }
    *ret = doc;
    return 0;
}

/* --replace, then --apply, then every --set, then every -p, in that order
 * (as patronictl). --replace starts from an empty config, so the result
 * holds only what the document holds (its nulls dropped, as patronictl's
 * patch_config() into {} drops them). Returns 0, or the exit status after
 * printing why. */
static int apply_changes(const EditArgs *a, json_t **doc)
{
    int r;
    if (a->replace) {
        json_t *patch = NULL;
        if ((r = read_document("--replace", a->replace, &patch)) != 0) {
            return r;
        }
        json_decref(*doc);
        *doc = json_object();
        if (!*doc) {
            json_decref(patch);
            return 1;
        }
        if ((r = merge_patch(doc, patch)) < 0) {
            fprintf(stderr, "dbctl edit-config: cannot use \"%s\": %s\n", a->replace,
                    r == -EINVAL ? "nested too deeply" : strerror(-r));
            return 1;
        }
    }
    if (a->apply) {
        json_t *patch = NULL;
        if ((r = read_document("--apply", a->apply, &patch)) != 0) {
            return r;
        }
        if ((r = merge_patch(doc, patch)) < 0) {
            fprintf(stderr, "dbctl edit-config: cannot merge \"%s\": %s\n", a->apply,
                    r == -EINVAL ? "nested too deeply" : strerror(-r));
            return 1;
        }
    }
    for (size_t i = 0; i < a->n_sets + a->n_pgs; i++) {
        bool pg = i >= a->n_sets;
        const char *arg = pg ? a->pgs[i - a->n_sets] : a->sets[i];
        const char *eq = strchr(arg, '=');
        if (!eq || eq == arg) {
            fprintf(stderr, "dbctl edit-config: %s \"%s\" is not %s\n", pg ? "-p" : "--set", arg,
                    pg ? "NAME=VALUE" : "KEY.PATH=VALUE");
            return 2;
        }
        _cleanup_free_ char *key = strndup(arg, (size_t)(eq - arg));
        json_t *value = typed_value(eq + 1);
        json_t *patch = NULL;
        if (!key || !value) {
            json_decref(value);
            return 1;
        }
        if (pg) {
            /* the name may hold dots (auto_explain.log_min_duration) */
            patch = json_pack("{s:{s:{s:o}}}", "postgresql", "parameters", key, value);
            r = patch ? 0 : -ENOMEM;
        } else {
            r = path_patch(key, value, &patch);
        }
        if (r == -EINVAL) {
            fprintf(stderr, "dbctl edit-config: --set \"%s\" has an empty key\n", arg);
            return 2;
        }
        if (r < 0 || (r = merge_patch(doc, patch)) < 0) {
            fprintf(stderr, "dbctl edit-config: cannot apply \"%s\": %s\n", arg, strerror(-r));
            return 1;
        }
    }
    return 0;
}

/* ---- temporary files, diff and the editor ---- */

typedef struct TempFile {
    char path[PATH_MAX];
    bool made;
} TempFile;

static void temp_file_done(TempFile *t)
{
    if (t->made) {
        (void)unlink(t->path);
        t->made = false;
    }
}

/* A new 0600 file in $TMPDIR (or /tmp) holding the YAML of doc. */
static int temp_yaml(const json_t *doc, TempFile *ret)
{
    const char *dir = getenv("TMPDIR");
    if (!dir || !*dir) {
        dir = "/tmp";
    }
    int n = snprintf(ret->path, sizeof(ret->path), "%s/dbctl-config-XXXXXX.yaml", dir);
    if (n < 0 || (size_t)n >= sizeof(ret->path)) {
        return -ENAMETOOLONG;
    }
    int fd = mkostemps(ret->path, strlen(".yaml"), O_CLOEXEC);
    if (fd < 0) {
        return -errno;
    }
    ret->made = true;
    FILE *f = fdopen(fd, "w");
    if (!f) {
        int r = -errno;
        close(fd);
        return r;
    }
    int r = output_yaml(doc, f);
    if (fclose(f) != 0 && r >= 0) {
        r = -errno;
    }
    return r;
}

/* Runs argv (the search path is used) with dbctl's stdio and waits for it,
 * at most timeout_usec when that is not 0 (then it is killed). Returns its
 * exit status, 128 + signal, -ETIMEDOUT or -errno. */
static int run_program(char *const argv[], uint64_t timeout_usec)
{
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        return -errno;
    }
    if (pid == 0) {
        inherit_close_fds();
        execvp(argv[0], argv);
        _exit(CONFIG_EXEC_FAILED);
    }
    uint64_t deadline = timeout_usec ? clock_monotonic_usec() + timeout_usec : 0;
    for (;;) {
        int status;
        pid_t w = waitpid(pid, &status, timeout_usec ? WNOHANG : 0);
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w < 0) {
            return -errno;
        }
        if (w == pid) {
            return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        }
        if (clock_monotonic_usec() >= deadline) {
            (void)kill(pid, SIGKILL);
            (void)waitpid(pid, NULL, 0);
            return -ETIMEDOUT;
        }
        struct timespec ts = { .tv_nsec = (long)CONFIG_POLL_USEC * 1000 };
        nanosleep(&ts, NULL);
    }
}

/* `diff -u` of the two documents' YAML on stdout. */
static int show_diff(const json_t *before, const json_t *after)
{
    TempFile a = { 0 }, b = { 0 };
    int r = temp_yaml(before, &a);
    if (r >= 0) {
        r = temp_yaml(after, &b);
    }
    if (r >= 0) {
        char *argv[] = {
            "diff", "-u", "--label", "before", "--label", "after", a.path, b.path, NULL
        };
        r = run_program(argv, CONFIG_DIFF_USEC);
        /* diff exits 1 when the files differ */
        if (r == CONFIG_EXEC_FAILED) {
            printf("(diff is not installed; the new config is:)\n");
            fflush(stdout);
            r = output_yaml(after, stdout);
        } else {
            r = r == 0 || r == 1 ? 0 : -EIO;
        }
    }
    temp_file_done(&a);
    temp_file_done(&b);
    return r;
}

/* $EDITOR (else $VISUAL, else vi) on the YAML of doc; the edited document
 * replaces *ret. Returns 0, or the exit status after printing why. */
static int edit_in_editor(const json_t *doc, json_t **ret)
{
    const char *editor = getenv("EDITOR");
    if (!editor || !*editor) {
        editor = getenv("VISUAL");
    }
    if (!editor || !*editor) {
        editor = "vi";
    }
    TempFile tmp = { 0 };
    int status = 1;
    _cleanup_free_ char *text = NULL, *script = NULL;
    json_auto_t *edited = NULL;
    size_t len = 0;
    char err[INPUT_ERROR_MAX];
    int r = temp_yaml(doc, &tmp);
    if (r < 0) {
        fprintf(stderr, "dbctl edit-config: cannot write a temporary file: %s\n", strerror(-r));
        goto done;
    }
    /* through the shell, as git runs core.editor: EDITOR may carry
     * arguments and quotes ("code --wait"); the file is passed as $1 */
    if (asprintf(&script, "%s \"$1\"", editor) < 0) {
        script = NULL;
        goto done;
    }
    {
        char *argv[] = { "/bin/sh", "-c", script, "dbctl-edit", tmp.path, NULL };
        r = run_program(argv, 0);
    }
    if (r != 0) {
        fprintf(stderr,
                "dbctl edit-config: the editor \"%s\" failed (status %d); nothing written\n",
                editor, r);
        goto done;
    }
    r = input_read_file(tmp.path, CONFIG_APPLY_MAX, &text, &len);
    if (r < 0) {
        fprintf(stderr, "dbctl edit-config: cannot read the edited file: %s\n", strerror(-r));
        goto done;
    }
    r = input_parse_document(text, len, &edited, err, sizeof(err));
    if (r < 0 || !json_is_object(edited)) {
        fprintf(stderr,
                "dbctl edit-config: the edited config is not a YAML mapping%s%s; nothing "
                "written\n",
                r < 0 ? ": " : "", r < 0 ? err : "");
        goto done;
    }
    json_decref(*ret);
    *ret = TAKE_PTR(edited);
    status = 0;
done:
    temp_file_done(&tmp);
    return status;
}

/* ---- the verb ---- */

int verb_edit_config(int argc, char *argv[])
{
    static const struct option options[] = {
        { "set", required_argument, NULL, 's' },   { "pg", required_argument, NULL, 'p' },
        { "apply", required_argument, NULL, 'a' }, { "replace", required_argument, NULL, 'R' },
        { "quiet", no_argument, NULL, 'q' },       { "force", no_argument, NULL, 'f' },
        { "help", no_argument, NULL, 'h' },        {},
    };
    _cleanup_free_ const char **sets = calloc((size_t)argc, sizeof(char *));
    _cleanup_free_ const char **pgs = calloc((size_t)argc, sizeof(char *));
    EditArgs a = { .sets = sets, .pgs = pgs };
    const char *cluster = NULL;
    bool quiet = false;
    int opt;
    if (!sets || !pgs) {
        return 1;
    }
    optind = 0;
    while ((opt = getopt_long(argc, argv, "s:p:a:qfh", options, NULL)) >= 0) {
        switch (opt) {
        case 's':
            sets[a.n_sets++] = optarg;
            break;
        case 'p':
            pgs[a.n_pgs++] = optarg;
            break;
        case 'a':
            if (a.apply) {
                fprintf(stderr, "dbctl edit-config: --apply may be given once\n");
                return 2;
            }
            a.apply = optarg;
            break;
        case 'R':
            if (a.replace) {
                fprintf(stderr, "dbctl edit-config: --replace may be given once\n");
                return 2;
            }
            a.replace = optarg;
            break;
        case 'q':
            quiet = true;
            break;
        case 'f':
            arg_force = true;
            break;
        case 'h':
            ctl_verb_help("edit-config");
            return 0;
        default:
            fprintf(stderr, "Try 'dbctl edit-config --help' for more information.\n");
            return 2;
        }
    }
    if (argc - optind > 1) {
        fprintf(stderr, "dbctl edit-config: unexpected argument \"%s\"\n", argv[optind + 1]);
        return 2;
    }
    cluster = optind < argc ? argv[optind] : NULL;
    if (verbarg_check_cluster("edit-config", cluster) < 0) {
        return 2;
    }
    if (a.apply && a.replace && strcmp(a.apply, "-") == 0 && strcmp(a.replace, "-") == 0) {
        fprintf(stderr, "dbctl edit-config: --apply and --replace cannot both read stdin\n");
        return 2;
    }
    bool patches = a.n_sets > 0 || a.n_pgs > 0 || a.apply || a.replace;
    if (!patches && !ctl_is_interactive()) {
        fprintf(stderr, "dbctl edit-config: nothing to change: give --set, -p, --apply or "
                        "--replace (the editor needs a terminal)\n");
        return 2;
    }

    CtlTarget t = { 0 };
    _cleanup_(dcs_cluster_freep) DcsCluster *c = NULL;
    json_auto_t *base = NULL, *doc = NULL;
    _cleanup_free_ char *value = NULL;
    char err[CONFIG_ERROR_MAX];
    int64_t base_revision;
    DcsStore store = { 0 };
    int r;
    int ret = ctl_read_cluster("edit-config", cluster, &t, &c);
    if (ret != 0) {
        goto done;
    }
    ret = 1;
    base = c->config && c->config->data ? json_incref(c->config->data) : json_object();
    base_revision = c->config ? c->config->mod_revision : 0;
    doc = json_deep_copy(base);
    if (!base || !doc) {
        goto done;
    }
    ret = patches ? apply_changes(&a, &doc) : edit_in_editor(base, &doc);
    if (ret != 0) {
        goto done;
    }
    ret = 1;
    if (json_equal(base, doc)) {
        if (!quiet) {
            printf("Not changed\n");
        }
        ret = 0;
        goto done;
    }
    if (dynconfig_validate(doc, err, sizeof(err)) < 0) {
        fprintf(stderr, "dbctl edit-config: %s; nothing written\n", err);
        goto done;
    }
    if (!quiet && show_diff(base, doc) < 0) {
        fprintf(stderr, "dbctl edit-config: cannot show the changes\n");
        goto done;
    }
    if (!ctl_confirm("Apply these changes?")) {
        fprintf(stderr, "dbctl edit-config: not confirmed (use --force); nothing written\n");
        goto done;
    }
    value = json_dumps(doc, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (!value) {
        goto done;
    }
    store = ctl_store(&t);
    r = dcs_store_set_config(&store, value, base_revision);
    if (r == -ECANCELED) {
        fprintf(stderr,
                "dbctl edit-config: the config of cluster \"%s\" changed while this edit "
                "was prepared; nothing written (run the command again)\n",
                t.scope);
        goto done;
    }
    if (r < 0) {
        fprintf(stderr, "dbctl edit-config: writing the config key: %s\n", store.error.message);
        goto done;
    }
    printf("Config of cluster \"%s\" updated\n", t.scope);
    ret = 0;
done:
    ctl_target_done(&t);
    return ret;
}
