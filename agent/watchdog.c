/* Linux watchdog device: open, set timeout, keepalive, magic close. */
#include "watchdog.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/watchdog.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "log.h"

struct Watchdog {
    int fd;
    bool testing;     /* Patroni's "testing" driver: the timeout is written, not set */
    unsigned timeout; /* in force, as read back */
};

unsigned watchdog_timeout_sec(long ttl_sec, long safety_margin_sec)
{
    long t = safety_margin_sec < 0 ? ttl_sec / 2 : ttl_sec - safety_margin_sec;
    return t < 1 ? 1u : (unsigned)t;
}

/* Sets the timeout and reads back the one in force. */
static int apply_timeout(Watchdog *w, unsigned timeout_sec)
{
    if (w->testing) {
        /* Patroni's TestingWatchdogDevice: "Ctimeout=N\n" on the FIFO */
        char buf[32];
        int n = snprintf(buf, sizeof(buf), "Ctimeout=%u\n", timeout_sec);
        if (write(w->fd, buf, (size_t)n) != n) {
            return -errno;
        }
        w->timeout = timeout_sec;
        return 0;
    }
    int t = (int)timeout_sec;
    if (ioctl(w->fd, WDIOC_SETTIMEOUT, &t) < 0) {
        return log_debug_errno(-errno, "WDIOC_SETTIMEOUT %u: %m", timeout_sec);
    }
    int now = 0;
    if (ioctl(w->fd, WDIOC_GETTIMEOUT, &now) < 0) {
        return log_debug_errno(-errno, "WDIOC_GETTIMEOUT: %m");
    }
    if (now <= 0) {
        return -EIO;
    }
    w->timeout = (unsigned)now;
    return 0;
}

int watchdog_open(const char *device, bool testing, unsigned timeout_sec, Watchdog **ret)
{
    if (!device || !*device) {
        return -EINVAL;
    }
    int fd = open(device, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        return log_debug_errno(-errno, "watchdog \"%s\": %m", device);
    }
    Watchdog *w = malloc(sizeof(*w));
    if (!w) {
        close(fd);
        return -ENOMEM;
    }
    *w = (Watchdog){ .fd = fd, .testing = testing };
    int r = apply_timeout(w, timeout_sec);
    if (r < 0) {
        /* a timeout we cannot set or read is no watchdog: disarmed again */
        watchdog_close(w);
        return r;
    }
    *ret = w;
    return 0;
}

unsigned watchdog_get_timeout(const Watchdog *w)
{
    return w ? w->timeout : 0;
}

int watchdog_set_timeout(Watchdog *w, unsigned timeout_sec)
{
    if (!w) {
        return -EINVAL;
    }
    return apply_timeout(w, timeout_sec);
}

int watchdog_keepalive(Watchdog *w)
{
    if (!w) {
        return -EINVAL;
    }
    int dummy = 0;
    if (ioctl(w->fd, WDIOC_KEEPALIVE, &dummy) == 0) {
        return 0;
    }
    /* devices (and test FIFOs) without the ioctl take any write */
    if (write(w->fd, "1", 1) == 1) {
        return 0;
    }
    return -errno;
}

Watchdog *watchdog_close(Watchdog *w)
{
    if (!w) {
        return NULL;
    }
    /* the magic close: without it the device would reset the machine */
    (void)!write(w->fd, "V", 1);
    close(w->fd);
    free(w);
    return NULL;
}
