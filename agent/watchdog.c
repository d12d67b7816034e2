/* Linux watchdog device: open, set timeout, keepalive, magic close. */
#include "watchdog.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/watchdog.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "log.h"

struct Watchdog {
    int fd;
};

unsigned watchdog_timeout_sec(long ttl_sec, long safety_margin_sec)
{
    long t = safety_margin_sec < 0 ? ttl_sec / 2 : ttl_sec - safety_margin_sec;
    return t < 1 ? 1u : (unsigned)t;
}

int watchdog_open(const char *device, unsigned timeout_sec, Watchdog **ret)
{
    if (!device || !*device) {
        return -EINVAL;
    }
    int fd = open(device, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        return log_debug_errno(-errno, "watchdog \"%s\": %m", device);
    }
    int t = (int)timeout_sec;
    if (ioctl(fd, WDIOC_SETTIMEOUT, &t) < 0) {
        log_debug("watchdog \"%s\" keeps its own timeout", device);
    }
    Watchdog *w = malloc(sizeof(*w));
    if (!w) {
        close(fd);
        return -ENOMEM;
    }
    w->fd = fd;
    *ret = w;
    return 0;
}

int watchdog_set_timeout(Watchdog *w, unsigned timeout_sec)
{
    if (!w) {
        return -EINVAL;
    }
    int t = (int)timeout_sec;
    if (ioctl(w->fd, WDIOC_SETTIMEOUT, &t) < 0) {
        return log_debug_errno(-errno, "watchdog keeps its own timeout: %m");
    }
    return 0;
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
