/* Monotonic time in microseconds. */
#include "clock.h"

#include <time.h>

uint64_t clock_monotonic_usec(void)
{
    struct timespec ts;
    (void)clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000ULL + (uint64_t)ts.tv_nsec / 1000ULL;
}
