/* When the next HA tick runs. Parts that learn something the loop should
 * act on (a REST request, a job's end, a scheduled switchover's time) ask
 * for a tick at a time; the earliest request wins, and the loop asks for
 * its next one after each tick. */
#pragma once

#include <stdint.h>

#include <systemd/sd-event.h>

typedef struct Ticker {
    sd_event_source *timer; /* owned; oneshot */
    uint64_t next_usec;     /* the tick asked for (monotonic), 0: none */
} Ticker;

/* Adds the timer (disabled until ticker_schedule) to event; `run` is the
 * tick. Returns 0 or a negative errno. */
int ticker_init(Ticker *t, sd_event *event, sd_event_time_handler_t run, void *userdata);
void ticker_done(Ticker *t);

/* A tick at at_usec, unless one is due earlier. */
void ticker_schedule(Ticker *t, uint64_t at_usec);
/* Forgets the tick asked for, so that a later one can be set (the tick
 * runs, or a new loop_wait counts from now). */
void ticker_reset(Ticker *t);
static inline uint64_t ticker_next_usec(const Ticker *t)
{
    return t->next_usec;
}
