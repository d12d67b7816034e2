/* What a child process inherits from dbagent: an environment without the
 * agent's own settings (PATRONI_*, DBHA_*, KUBERNETES_*: passwords among
 * them; Patroni strips PATRONI_ and KUBERNETES_ for the postmaster), and no
 * descriptor above stderr (etcd and REST connections, the agent's files).
 * Every fork/exec and posix_spawn of the agent uses these. Nothing here logs. */
#pragma once

#include <stdbool.h>

#include <curl/curl.h>

/* Whether an environment entry ("NAME=value") is passed to children: false
 * for the agent's own prefixes. Pure. */
bool inherit_env_kept(const char *entry);

/* A copy of env without the entries inherit_env_kept() refuses and without
 * the names `extra` sets, then `extra` ("NAME=value" each; NULL-terminated,
 * may be NULL). On success *ret is a NULL-terminated vector owned by the
 * caller (inherit_env_free) and 0 is returned; -ENOMEM otherwise. Build it
 * before fork: the child of a threaded process must not allocate. */
int inherit_env_new(char *const *env, char *const *extra, char ***ret);
/* Frees a vector from inherit_env_new (NULL is fine); returns NULL. */
char **inherit_env_free(char **env);

/* In a forked child, before exec: closes every descriptor above stderr
 * (close_range, else one close per possible descriptor). Async-signal-safe. */
void inherit_close_fds(void);

/* Makes the sockets this easy handle opens close-on-exec (created with
 * SOCK_CLOEXEC). Call it again after curl_easy_reset. Returns 0 or -EIO. */
int inherit_curl_cloexec(CURL *easy);
