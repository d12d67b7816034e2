/* The agent's GET /metrics document (Prometheus text format 0.0.4). */
#pragma once

#include <stdint.h>

typedef struct Agent Agent;

/* Renders the metrics from the agent's current view (loop thread only).
 * Returns 0 and *ret (malloc'ed), or -ENOMEM. */
int agent_metrics_text(const Agent *a, uint64_t now_usec, char **ret);
