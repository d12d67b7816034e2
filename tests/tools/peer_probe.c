/* Test driver for the election's peer poll (agent/election_exec.c): asks the
 * given api_urls the way the agent asks its peers in an election, with the
 * TLS settings of an agent config, and prints what each peer said.
 *
 * peer_probe CONFIG URL...
 *
 * CONFIG: an agent config (its ctl and restapi TLS keys are what matter).
 * Each URL is the api_url of a member named m0, m1, ...; stdout: one JSON
 * line per member, {"name", "answered", "wal_lsn", "running_primary"}.
 * Exit status: 0, 2 for a bad config or usage. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <jansson.h>

#include "config.h"
#include "dcs.h"
#include "election.h"
#include "log.h"
#include "macro.h"
#include "peer-http.h"

#define PROBE_NAME_MAX 24

int main(int argc, char **argv)
{
    if (argc < 3 || argc - 2 > ELECTION_PEERS_MAX) {
        fprintf(stderr, "usage: peer_probe CONFIG URL...\n");
        return 2;
    }
    log_set_max_level(LOG_LEVEL_DEBUG);
    Config *config = NULL;
    ConfigDiags diags = { 0 };
    int r = config_load(argv[1], NULL, &config, &diags);
    for (size_t i = 0; i < diags.n; i++) {
        fprintf(stderr, "%s\n", diags.items[i].text);
    }
    config_diags_done(&diags);
    if (r < 0) {
        return 2;
    }
    (void)curl_global_init(CURL_GLOBAL_DEFAULT);

    size_t n = (size_t)argc - 2;
    DcsMember members[ELECTION_PEERS_MAX];
    char names[ELECTION_PEERS_MAX][PROBE_NAME_MAX];
    memset(members, 0, sizeof(members));
    for (size_t i = 0; i < n; i++) {
        (void)snprintf(names[i], sizeof(names[i]), "m%zu", i);
        members[i].name = names[i];
        members[i].api_url = argv[i + 2];
    }
    DcsCluster view = { .members = members, .n_members = n };
    PeerHttpOptions tls = { 0 };
    peer_http_tls_from_config(config, true, &tls);
    ElectionPeer peers[ELECTION_PEERS_MAX];
    size_t got = 0;
    r = election_ask_peers(&view, "self", &tls, peers, &got);
    if (r < 0) {
        fprintf(stderr, "election_ask_peers: %s\n", strerror(-r));
    }
    for (size_t i = 0; r >= 0 && i < got; i++) {
        printf("{\"name\": \"%s\", \"answered\": %s, \"wal_lsn\": %llu, \"running_primary\": %s}\n",
               peers[i].name, peers[i].answered ? "true" : "false",
               (unsigned long long)peers[i].c.wal_lsn, peers[i].running_primary ? "true" : "false");
    }
    fflush(stdout);
    config_free(config);
    curl_global_cleanup();
    return r < 0 ? 1 : 0;
}
