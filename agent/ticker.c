#include "ticker.h"

int ticker_init(Ticker *t, sd_event *event, sd_event_time_handler_t run, void *userdata)
{
    *t = (Ticker){ 0 };
    int r = sd_event_add_time(event, &t->timer, CLOCK_MONOTONIC, UINT64_MAX, 1000, run, userdata);
    if (r < 0) {
        return r;
    }
    return sd_event_source_set_enabled(t->timer, SD_EVENT_OFF);
}

void ticker_done(Ticker *t)
{
    t->timer = sd_event_source_disable_unref(t->timer);
    t->next_usec = 0;
}

void ticker_schedule(Ticker *t, uint64_t at_usec)
{
    if (!t->timer || (t->next_usec != 0 && t->next_usec <= at_usec)) {
        return;
    }
    t->next_usec = at_usec;
    (void)sd_event_source_set_time(t->timer, at_usec);
    (void)sd_event_source_set_enabled(t->timer, SD_EVENT_ONESHOT);
}

void ticker_reset(Ticker *t)
{
    t->next_usec = 0;
}
