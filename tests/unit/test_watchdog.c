/* Unit tests for the watchdog device driver: Patroni's timeout rule, and the
 * device protocol against a FIFO (keepalive writes, magic close 'V'). */
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
    assert_int_equal(watchdog_open("/nonexistent/watchdog", 10, &w), -ENOENT);
    assert_int_equal(watchdog_open("", 10, &w), -EINVAL);

    char dir[] = "/tmp/dbha-wd-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[64];
    snprintf(path, sizeof(path), "%s/wd", dir);
    assert_int_equal(mkfifo(path, 0600), 0);
    /* no reader: a FIFO cannot take writes, so it is not usable */
    assert_int_equal(watchdog_open(path, 10, &w), -ENXIO);

    int reader = open(path, O_RDONLY | O_NONBLOCK);
    assert_true(reader >= 0);
    assert_int_equal(watchdog_open(path, 10, &w), 0);
    assert_int_equal(watchdog_keepalive(w), 0);
    assert_int_equal(watchdog_keepalive(w), 0);
    w = watchdog_close(w);
    assert_null(w);
    char buf[16] = { 0 };
    assert_int_equal(read(reader, buf, sizeof(buf)), 3);
    assert_string_equal(buf, "11V");
    close(reader);
    unlink(path);
    rmdir(dir);
    assert_null(watchdog_close(NULL));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_timeout_rule),
        cmocka_unit_test(test_device_protocol),
    };
    return cmocka_run_group_tests_name("watchdog", tests, NULL, NULL);
}
