/* The Linux watchdog device (`watchdog.mode`, `watchdog.device`), driven as
 * Patroni does: opened (armed) while this node leads, with a timeout of
 * ttl minus `watchdog.safety_margin`, kept alive every loop, and closed with
 * the magic 'V' (disarmed) when the node stops leading. If the agent hangs,
 * the machine resets before a replica can take the lease. `required` means:
 * never lead without a working watchdog. Independently of the device, the
 * fencing process (fence.h) guards the primary in every mode. */
#pragma once

#include <stdbool.h>

#include "macro.h"

typedef struct Watchdog Watchdog;

/* Opens device without blocking (a FIFO without a reader fails with
 * -ENXIO), sets timeout_sec and reads back the timeout in force
 * (WDIOC_SETTIMEOUT, WDIOC_GETTIMEOUT). A device that refuses either is no
 * watchdog: it is closed with the magic 'V' and -errno returned (logged at
 * debug), as Patroni 3.0.2 treats it. `testing` is Patroni's "testing"
 * driver: the timeout is written to the device as "Ctimeout=N\n" (a FIFO
 * a test reads) and taken as in force. Returns 0 or -errno. */
int watchdog_open(const char *device, bool testing, unsigned timeout_sec, Watchdog **ret);

/* The timeout in force (read back), 0 for NULL. */
unsigned watchdog_get_timeout(const Watchdog *w);

/* Asks for another timeout and reads back the one in force. Returns 0 or
 * -errno (the device is then no longer known to be safe: close it). */
int watchdog_set_timeout(Watchdog *w, unsigned timeout_sec);

/* One keepalive: WDIOC_KEEPALIVE, or a write for devices without the ioctl.
 * Returns 0 or -errno. */
int watchdog_keepalive(Watchdog *w);

/* Disarms with the magic close ('V') and closes. NULL-safe; returns NULL. */
Watchdog *watchdog_close(Watchdog *w);

/* The timeout Patroni derives: ttl - safety_margin, or ttl / 2 when the
 * margin is -1; at least 1 s. Pure. */
unsigned watchdog_timeout_sec(long ttl_sec, long safety_margin_sec);
