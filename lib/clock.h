/* The agent's one clock: CLOCK_MONOTONIC in microseconds, the same in every
 * process of the machine (the fencing process compares against it too). */
#pragma once

#include <stdint.h>

uint64_t clock_monotonic_usec(void);
