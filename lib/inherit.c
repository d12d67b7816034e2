/* The environment and descriptors children inherit (inherit.h). */
#include "inherit.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "macro.h"

/* The fallback's bound when the descriptor limit is unknown or huge. */
#define INHERIT_CLOSE_MAX 65536

static const char *const agent_prefixes[] = { "PATRONI_", "DBHA_", "KUBERNETES_" };

bool inherit_env_kept(const char *entry)
{
    for (size_t i = 0; i < ELEMENTSOF(agent_prefixes); i++) {
        if (strncmp(entry, agent_prefixes[i], strlen(agent_prefixes[i])) == 0) {
            return false;
        }
    }
    return true;
}

/* The length of entry's name (up to '=', or all of it). */
static size_t name_len(const char *entry)
{
    const char *eq = strchr(entry, '=');
    return eq ? (size_t)(eq - entry) : strlen(entry);
}

static bool set_by(const char *entry, char *const *extra)
{
    size_t n = name_len(entry);
    for (size_t i = 0; extra && extra[i]; i++) {
        if (name_len(extra[i]) == n && strncmp(entry, extra[i], n) == 0) {
            return true;
        }
    }
    return false;
}

static size_t count(char *const *v)
{
    size_t n = 0;
    while (v && v[n]) {
        n++;
    }
    return n;
}

int inherit_env_new(char *const *env, char *const *extra, char ***ret)
{
    char **out = calloc(count(env) + count(extra) + 1, sizeof(char *));
    if (!out) {
        return -ENOMEM;
    }
    size_t o = 0;
    for (size_t i = 0; env && env[i]; i++) {
        if (!inherit_env_kept(env[i]) || set_by(env[i], extra)) {
            continue;
        }
        if (!(out[o++] = strdup(env[i]))) {
            inherit_env_free(out);
            return -ENOMEM;
        }
    }
    for (size_t i = 0; extra && extra[i]; i++) {
        if (!(out[o++] = strdup(extra[i]))) {
            inherit_env_free(out);
            return -ENOMEM;
        }
    }
    *ret = out;
    return 0;
}

char **inherit_env_free(char **env)
{
    for (size_t i = 0; env && env[i]; i++) {
        free(env[i]);
    }
    free(env);
    return NULL;
}

void inherit_close_fds(void)
{
    if (close_range(3, ~0U, 0) == 0) {
        return;
    }
    /* Linux before 5.9: every descriptor the limit allows */
    struct rlimit rl;
    rlim_t max = getrlimit(RLIMIT_NOFILE, &rl) == 0 ? rl.rlim_cur : INHERIT_CLOSE_MAX;
    if (max == RLIM_INFINITY || max > INHERIT_CLOSE_MAX) {
        max = INHERIT_CLOSE_MAX;
    }
    for (int fd = 3; fd < (int)max; fd++) {
        (void)close(fd);
    }
}

static curl_socket_t open_cloexec(void *clientp, curlsocktype purpose, struct curl_sockaddr *addr)
{
    (void)clientp;
    (void)purpose;
    int fd = socket(addr->family, addr->socktype | SOCK_CLOEXEC, addr->protocol);
    return fd < 0 ? CURL_SOCKET_BAD : fd;
}

int inherit_curl_cloexec(CURL *easy)
{
    return curl_easy_setopt(easy, CURLOPT_OPENSOCKETFUNCTION, open_cloexec) == CURLE_OK ? 0 : -EIO;
}
