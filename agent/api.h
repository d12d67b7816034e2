/* The REST API's mutating endpoints (Patroni 3.0.2's semantics): POST
 * /switchover and /failover, DELETE /switchover, PATCH and PUT /config,
 * POST /reload.
 *
 * A handler runs on an MHD thread: it checks what it can without I/O, then
 * queues the request for the agent's loop and defers its reply (see
 * rest_call_defer). The loop executes requests between HA ticks, with the
 * cluster view it keeps, and answers them; a switchover or failover is
 * answered once its outcome is seen in etcd (or after API_POLL_TIMEOUT_USEC,
 * "status unknown", as Patroni). Nothing here blocks a health check. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "rest.h"

/* Patroni polls a switchover's outcome for max(10, loop_wait) * 2 seconds. */
#define API_POLL_MIN_SEC 10

typedef struct Agent Agent;
typedef struct ApiQueue ApiQueue;

/* Creates the queue and its wake-up source on the agent's event loop.
 * Returns 0 or a negative errno (logged). */
int api_new(Agent *a, ApiQueue **ret);
/* Answers every request still queued or waiting with 503, frees. */
ApiQueue *api_free(ApiQueue *q);

/* The handler table for rest_server_new (userdata: a). */
size_t api_handlers(Agent *a, RestHandler *table, size_t max);

/* After every HA tick: answers the switchovers/failovers whose outcome is
 * now known, and those past their deadline. */
void api_after_tick(Agent *a, uint64_t now_usec);
