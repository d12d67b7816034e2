/* The REST API's header deadline (rest_deadline.h). */
#include "rest_deadline.h"

#include <errno.h>
#include <sys/socket.h>
#include <time.h>

#include "clock.h"

static void unlink_locked(RestDeadlines *d, RestDeadlineEntry *e)
{
    if (!e->armed) {
        return;
    }
    if (e->prev) {
        e->prev->next = e->next;
    } else {
        d->head = e->next;
    }
    if (e->next) {
        e->next->prev = e->prev;
    }
    e->prev = e->next = NULL;
    e->armed = false;
}

static void *deadlines_main(void *userdata)
{
    RestDeadlines *d = userdata;
    pthread_mutex_lock(&d->lock);
    while (!d->stop) {
        uint64_t now = clock_monotonic_usec();
        uint64_t next = UINT64_MAX;
        for (RestDeadlineEntry *e = d->head; e; e = e->next) {
            if (e->shut) {
                continue;
            }
            if (e->deadline_usec <= now) {
                (void)shutdown(e->fd, SHUT_RDWR);
                e->shut = true;
                atomic_fetch_add_explicit(&d->closed, 1, memory_order_relaxed);
            } else if (e->deadline_usec < next) {
                next = e->deadline_usec;
            }
        }
        d->wake_usec = next;
        if (next == UINT64_MAX) {
            pthread_cond_wait(&d->cond, &d->lock);
        } else {
            struct timespec ts = { .tv_sec = (time_t)(next / 1000000ULL),
                                   .tv_nsec = (long)(next % 1000000ULL) * 1000L };
            (void)pthread_cond_timedwait(&d->cond, &d->lock, &ts);
        }
    }
    pthread_mutex_unlock(&d->lock);
    return NULL;
}

int rest_deadlines_init(RestDeadlines *d)
{
    d->wake_usec = UINT64_MAX;
    pthread_condattr_t attr;
    if (pthread_condattr_init(&attr) != 0) {
        return -ENOMEM;
    }
    int e = pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    if (e == 0) {
        e = pthread_cond_init(&d->cond, &attr);
    }
    (void)pthread_condattr_destroy(&attr);
    if (e != 0) {
        return -e;
    }
    if (pthread_mutex_init(&d->lock, NULL) != 0) {
        pthread_cond_destroy(&d->cond);
        return -ENOMEM;
    }
    d->ready = true;
    e = pthread_create(&d->thread, NULL, deadlines_main, d);
    if (e != 0) {
        return -e;
    }
    d->thread_started = true;
    return 0;
}

void rest_deadlines_stop(RestDeadlines *d)
{
    if (!d->thread_started) {
        return;
    }
    pthread_mutex_lock(&d->lock);
    d->stop = true;
    pthread_cond_signal(&d->cond);
    pthread_mutex_unlock(&d->lock);
    (void)pthread_join(d->thread, NULL);
    d->thread_started = false;
}

void rest_deadlines_done(RestDeadlines *d)
{
    rest_deadlines_stop(d);
    if (d->ready) {
        pthread_cond_destroy(&d->cond);
        pthread_mutex_destroy(&d->lock);
        d->ready = false;
    }
}

void rest_deadlines_arm(RestDeadlines *d, RestDeadlineEntry *e, uint64_t deadline_usec)
{
    if (e->fd < 0 || !d->ready) {
        return;
    }
    pthread_mutex_lock(&d->lock);
    e->deadline_usec = deadline_usec;
    if (!e->armed) {
        e->prev = NULL;
        e->next = d->head;
        if (d->head) {
            d->head->prev = e;
        }
        d->head = e;
        e->armed = true;
    }
    if (deadline_usec < d->wake_usec) {
        pthread_cond_signal(&d->cond);
    }
    pthread_mutex_unlock(&d->lock);
}

void rest_deadlines_disarm(RestDeadlines *d, RestDeadlineEntry *e)
{
    if (!d->ready) {
        return;
    }
    pthread_mutex_lock(&d->lock);
    unlink_locked(d, e);
    pthread_mutex_unlock(&d->lock);
}

uint64_t rest_deadlines_closed(const RestDeadlines *d)
{
    return atomic_load_explicit(&((RestDeadlines *)d)->closed, memory_order_relaxed);
}
