/* The REST API's header deadline: a thread that shuts down the socket of a
 * connection whose request line and headers are overdue. libmicrohttpd
 * then reads the end of the stream and closes the connection its own way
 * (it has no call to close a connection from another thread); its own
 * timeout counts idle time only, so a client sending a byte every few
 * seconds would hold a connection for ever.
 *
 * An entry's descriptor must stay open while the entry is armed: disarm it
 * (libmicrohttpd's NOTIFY_CLOSED does) before the socket is closed; the
 * lock both take makes that safe. Thread-safe; nothing here logs. */
#pragma once

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct RestDeadlineEntry {
    int fd; /* borrowed: the connection's socket */
    /* guarded by the RestDeadlines lock: */
    uint64_t deadline_usec; /* monotonic */
    bool armed;             /* linked in the list */
    bool shut;              /* its socket was shut down at the deadline */
    struct RestDeadlineEntry *prev, *next;
} RestDeadlineEntry;

typedef struct RestDeadlines {
    pthread_mutex_t lock;
    pthread_cond_t cond; /* CLOCK_MONOTONIC */
    bool ready;
    RestDeadlineEntry *head; /* borrowed, unordered */
    uint64_t wake_usec;      /* when the thread wakes next; UINT64_MAX: not planned */
    bool stop;
    pthread_t thread;
    bool thread_started;
    atomic_uint_fast64_t closed; /* sockets shut down at their deadline */
} RestDeadlines;

/* Sets d up and starts its thread. Returns 0 or a negative errno; on
 * failure rest_deadlines_done() still must be called. */
int rest_deadlines_init(RestDeadlines *d);
/* Stops the thread (entries may still be disarmed afterwards). Idempotent. */
void rest_deadlines_stop(RestDeadlines *d);
/* Stops the thread and frees the lock; no entry may be armed or disarmed
 * afterwards. Accepts a d that failed or was never set up (zeroed). */
void rest_deadlines_done(RestDeadlines *d);
/* e's socket is shut down at deadline_usec unless disarmed first (moves
 * the deadline of an armed entry). An entry with fd < 0 is ignored. */
void rest_deadlines_arm(RestDeadlines *d, RestDeadlineEntry *e, uint64_t deadline_usec);
/* No deadline for e (until armed again). */
void rest_deadlines_disarm(RestDeadlines *d, RestDeadlineEntry *e);
uint64_t rest_deadlines_closed(const RestDeadlines *d);
