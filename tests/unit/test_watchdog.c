/* Unit tests for the watchdog device driver: Patroni's timeout rule, and the
 * device protocol against a FIFO: the default driver refuses a device whose
 * timeout cannot be set and read back; Patroni's testing driver writes
 * "Ctimeout=N"; keepalive writes, magic close 'V'. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "watchdog.h"

static void test_timeout_rule(void **state)
{
    (void)state;
    assert_int_equal(watchdog_timeout_sec(30, 5), 25);  /* Patroni's defaults */
    assert_int_equal(watchdog_timeout_sec(30, -1), 15); /* -1: half of ttl */
    assert_int_equal(watchdog_timeout_sec(5, 2), 3);
    assert_int_equal(watchdog_timeout_sec(5, 5), 1); /* never 0 */
    assert_int_equal(watchdog_timeout_sec(3, 10), 1);
}

static void test_device_protocol(void **state)
{
    (void)state;
    Watchdog *w = NULL;
    assert_int_equal(watchdog_open("/nonexistent/watchdog", false, 10, &w), -ENOENT);
    assert_int_equal(watchdog_open("", false, 10, &w), -EINVAL);

    char dir[] = "/tmp/dbha-wd-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[64];
    snprintf(path, sizeof(path), "%s/wd", dir);
    assert_int_equal(mkfifo(path, 0600), 0);
    /* no reader: a FIFO cannot take writes, so it is not usable */
    assert_int_equal(watchdog_open(path, true, 10, &w), -ENXIO);

    int reader = open(path, O_RDONLY | O_NONBLOCK);
    assert_true(reader >= 0);
    char buf[64] = { 0 };
    /* the default driver on a device whose timeout cannot be set (a FIFO
     * has no WDIOC_SETTIMEOUT): no watchdog, closed with the magic 'V' */
    assert_int_equal(watchdog_open(path, false, 10, &w), -ENOTTY);
    assert_null(w);
    assert_int_equal(read(reader, buf, sizeof(buf)), 1);
    assert_string_equal(buf, "V");

    /* Patroni's testing driver: the timeout is written and taken as set */
    assert_int_equal(watchdog_open(path, true, 10, &w), 0);
    assert_int_equal(watchdog_get_timeout(w), 10);
    assert_int_equal(watchdog_keepalive(w), 0);
    assert_int_equal(watchdog_set_timeout(w, 7), 0);
    assert_int_equal(watchdog_get_timeout(w), 7);
    assert_int_equal(watchdog_keepalive(w), 0);
    w = watchdog_close(w);
    assert_null(w);
    memset(buf, 0, sizeof(buf));
    assert_int_equal(read(reader, buf, sizeof(buf)), 26);
    assert_string_equal(buf, "Ctimeout=10\n1Ctimeout=7\n1V");
    close(reader);
    unlink(path);
    rmdir(dir);
    assert_null(watchdog_close(NULL));
    assert_int_equal(watchdog_get_timeout(NULL), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_timeout_rule),
        cmocka_unit_test(test_device_protocol),
    };
    return cmocka_run_group_tests_name("watchdog", tests, NULL, NULL);
}
