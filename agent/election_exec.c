/* Leader election, the I/O part: a parallel poll of the peers' REST status
 * (Patroni's /patroni document: xlog.location on a primary,
 * xlog.received_location / replayed_location on a replica) through the
 * agents' one HTTP client. Runs in the agent's loop only while the rules
 * open the election (agent/policy.h). */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <jansson.h>
#include <libpq-fe.h>

#include "election.h"
#include "log.h"
#include "peer-http.h"

#define ELECTION_BODY_MAX (64 * 1024)

/* One peer's GET, set up by the agents' one HTTP client. */
typedef struct Fetch {
    PeerHttpRequest req;
} Fetch;

static uint64_t json_lsn(const json_t *xlog, const char *field)
{
    const json_t *v = json_object_get(xlog, field);
    return json_is_integer(v) && json_integer_value(v) > 0 ? (uint64_t)json_integer_value(v) : 0;
}

static void parse_peer(const Fetch *f, ElectionPeer *p)
{
    json_t *doc = json_loadb(f->req.body.data, f->req.body.len, 0, NULL);
    if (!json_is_object(doc)) {
        json_decref(doc);
        return;
    }
    const char *role = json_string_value(json_object_get(doc, "role"));
    const char *state = json_string_value(json_object_get(doc, "state"));
    const json_t *xlog = json_object_get(doc, "xlog");
    p->answered = true;
    p->watchdog_failed = json_is_true(json_object_get(doc, "watchdog_failed"));
    p->c.backoff = json_is_true(json_object_get(doc, "pre_promote_backoff"));
    p->running_primary = role && state && strcmp(state, "running") == 0 &&
                         (strcmp(role, "master") == 0 || strcmp(role, "primary") == 0);
    uint64_t rec = json_lsn(xlog, "received_location");
    uint64_t rep = json_lsn(xlog, "replayed_location");
    uint64_t loc = json_lsn(xlog, "location");
    p->has_replayed = json_is_integer(json_object_get(xlog, "replayed_location"));
    p->replayed_lsn = rep;
    p->c.wal_lsn = rec > rep ? rec : rep;
    if (loc > p->c.wal_lsn) {
        p->c.wal_lsn = loc;
    }
    json_decref(doc);
}

static void peer_tags(const DcsMember *m, ElectionPeer *p)
{
    p->c.failover_priority = 1;
    if (!m->tags) {
        return;
    }
    const json_t *nf = json_object_get(m->tags, "nofailover");
    p->c.nofailover = json_is_true(nf);
    const json_t *pr = json_object_get(m->tags, "failover_priority");
    if (json_is_integer(pr)) {
        p->c.failover_priority = json_integer_value(pr);
    }
}

int election_ask_peers(const DcsCluster *view, const char *self, const PeerHttpOptions *tls,
                       ElectionPeer *peers, size_t *ret_n)
{
    size_t n = 0;
    Fetch fetches[ELECTION_PEERS_MAX] = { 0 };
    CURLM *multi = curl_multi_init();
    if (!multi) {
        return -ENOMEM;
    }
    for (size_t i = 0; view && i < view->n_members && n < ELECTION_PEERS_MAX; i++) {
        const DcsMember *m = &view->members[i];
        if (strcmp(m->name, self) == 0) {
            continue;
        }
        ElectionPeer *p = &peers[n];
        *p = (ElectionPeer){ .name = m->name, .c = { .name = m->name } };
        peer_tags(m, p);
        Fetch *f = &fetches[n];
        n++;
        if (!m->api_url) {
            continue;
        }
        PeerHttpOptions o = { 0 };
        if (tls) {
            o = *tls;
        }
        o.timeout_usec = ELECTION_PEER_TIMEOUT_USEC;
        o.connect_timeout_usec = 0;
        o.username = o.password = NULL; /* GET /patroni needs none */
        o.body_max = ELECTION_BODY_MAX;
        if (peer_http_request_init(&f->req, "GET", m->api_url, NULL, &o) < 0) {
            peer_http_request_done(&f->req, false);
            continue;
        }
        (void)curl_easy_setopt(f->req.easy, CURLOPT_PRIVATE, f);
        if (curl_multi_add_handle(multi, f->req.easy) != CURLM_OK) {
            peer_http_request_done(&f->req, false);
        }
    }
    /* bounded: each handle has its own timeout; the loop polls in 50 ms steps */
    int running = 0;
    for (int step = 0; step < (int)(ELECTION_PEER_TIMEOUT_USEC / 50000) + 4; step++) {
        if (curl_multi_perform(multi, &running) != CURLM_OK || running == 0) {
            break;
        }
        (void)curl_multi_poll(multi, NULL, 0, 50, NULL);
    }
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(multi, &left))) {
        if (msg->msg != CURLMSG_DONE) {
            continue;
        }
        Fetch *f = NULL;
        (void)curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&f);
        /* Patroni answers /patroni with 200, and health GETs with 503 plus
         * the same body: either way the body is the status */
        long status = 0;
        (void)curl_easy_getinfo(msg->easy_handle, CURLINFO_RESPONSE_CODE, &status);
        if (f && msg->data.result == CURLE_OK && f->req.body.data &&
            (status == 200 || status == 503)) {
            parse_peer(f, &peers[f - fetches]);
        } else if (f) {
            log_debug("election: no status from \"%s\": %s", peers[f - fetches].name,
                      msg->data.result != CURLE_OK
                          ? (f->req.error[0] ? f->req.error : curl_easy_strerror(msg->data.result))
                          : "unexpected HTTP status");
        }
    }
    for (size_t i = 0; i < n; i++) {
        if (fetches[i].req.easy) {
            curl_multi_remove_handle(multi, fetches[i].req.easy);
        }
        peer_http_request_done(&fetches[i].req, false);
        log_debug("election: peer \"%s\" %s, wal %llu", peers[i].name,
                  peers[i].answered ? "answered" : "did not answer",
                  (unsigned long long)peers[i].c.wal_lsn);
    }
    curl_multi_cleanup(multi);
    *ret_n = n;
    return 0;
}

int election_probe_primary(const char *conninfo, char *why, size_t why_size)
{
    if (!conninfo) {
        return -ENOMEM;
    }
    PGconn *c = PQconnectdb(conninfo);
    if (!c) {
        return -ENOMEM;
    }
    int r = 0;
    if (PQstatus(c) != CONNECTION_OK) {
        if (why) {
            (void)snprintf(why, why_size, "%s", PQerrorMessage(c));
            why[strcspn(why, "\n")] = '\0';
        }
        PQfinish(c);
        return 0;
    }
    PGresult *res = PQexec(c, "SELECT pg_catalog.pg_is_in_recovery()");
    if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1) {
        r = strcmp(PQgetvalue(res, 0, 0), "f") == 0;
        if (why) {
            (void)snprintf(why, why_size, "%s", r ? "it accepts writes" : "it is in recovery");
        }
    } else if (why) {
        (void)snprintf(why, why_size, "%s", PQerrorMessage(c));
        why[strcspn(why, "\n")] = '\0';
    }
    PQclear(res);
    PQfinish(c);
    return r;
}
