/* Unit tests for lib/logfmt.c: Patroni's log.format and log.dateformat give
 * the line Python's logging.Formatter gives for the same record (the
 * expected texts below were printed by Python 3's logging for a record with
 * these fields, TZ=UTC), and the formats Python would refuse or fail on for
 * every record are refused with what is expected. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "logfmt.h"

static const LogFmtRecord record = {
    .sec = 1733550000,
    .nsec = 123456789,
    .start_sec = 1733549990,
    .start_nsec = 0,
    .level = LOG_LEVEL_INFO,
    .message = "hello",
    .file = "agent/ha_exec.c",
    .line = 42,
    .func = "do_it",
    .pid = 77,
    .tid = 88,
};

static void format_with(const char *format, const char *datefmt, const LogFmtRecord *r, char *buf,
                        size_t size)
{
    LogFmt *f = NULL;
    const char *why = NULL;
    assert_int_equal(logfmt_parse(format, datefmt, &f, &why), 0);
    assert_null(why);
    logfmt_format(f, r, buf, size);
    logfmt_free(f);
}

static int setup(void **state)
{
    (void)state;
    setenv("TZ", "UTC", 1);
    tzset();
    return 0;
}

static void test_patroni_default(void **state)
{
    (void)state;
    char buf[256];
    format_with("%(asctime)s %(levelname)s: %(message)s", NULL, &record, buf, sizeof(buf));
    assert_string_equal(buf, "2024-12-07 05:40:00,123 INFO: hello");
    /* an empty dateformat is Python's default too (Patroni: "" is None) */
    format_with("%(asctime)s %(levelname)s: %(message)s", "", &record, buf, sizeof(buf));
    assert_string_equal(buf, "2024-12-07 05:40:00,123 INFO: hello");
}

static void test_fields_flags_and_conversions(void **state)
{
    (void)state;
    char buf[512];
    format_with("[%(levelname)-8s|%(lineno)5d|%(process)x|%(msecs)03d|%(created).3f|%(created)s|"
                "%(msecs)s|%(levelno)+d|%(message)r|%%|%(filename)s|%(module)s|%(funcName)s|"
                "%(pathname)s]",
                NULL, &record, buf, sizeof(buf));
    assert_string_equal(buf, "[INFO    |   42|4d|123|1733550000.123|1733550000.1234567|123.0|+20|"
                             "'hello'|%|ha_exec.c|ha_exec|do_it|agent/ha_exec.c]");
    format_with("%(asctime)s %(message)s", "%H:%M %d/%m/%Y", &record, buf, sizeof(buf));
    assert_string_equal(buf, "05:40 07/12/2024 hello");
    format_with("%(name)s %(thread)d %(threadName)s %(processName)s %(relativeCreated)d", NULL,
                &record, buf, sizeof(buf));
    assert_string_equal(buf, "dbha.ha_exec 88 MainThread MainProcess 10123");
    /* dbha's NOTICE is Python's INFO; a length modifier is ignored */
    LogFmtRecord notice = record;
    notice.level = LOG_LEVEL_NOTICE;
    format_with("%(levelname)s %(levelno)ld", NULL, &notice, buf, sizeof(buf));
    assert_string_equal(buf, "INFO 20");
    LogFmtRecord warning = record;
    warning.level = LOG_LEVEL_WARNING;
    format_with("%(levelname)s %(levelno)d", NULL, &warning, buf, sizeof(buf));
    assert_string_equal(buf, "WARNING 30");
}

static void test_cut_to_the_buffer(void **state)
{
    (void)state;
    char buf[10];
    LogFmt *f = NULL;
    assert_int_equal(logfmt_parse("%(message)s and more text", NULL, &f, NULL), 0);
    assert_int_equal(logfmt_format(f, &record, buf, sizeof(buf)), 9);
    assert_string_equal(buf, "hello and");
    logfmt_free(f);
}

static void refused(const char *format, const char *starts)
{
    LogFmt *f = NULL;
    const char *why = NULL;
    assert_int_equal(logfmt_parse(format, NULL, &f, &why), -EINVAL);
    assert_null(f);
    assert_non_null(why);
    if (strncmp(why, starts, strlen(starts)) != 0) {
        fail_msg("%s: %s", format, why);
    }
}

static void test_refused(void **state)
{
    (void)state;
    refused("no field at all", "a Python logging format with at least one");
    refused("%% only", "a Python logging format with at least one");
    refused("%s", "a Python logging format whose fields are");
    refused("%(nosuch)s", "a Python logging format whose fields are");
    refused("%(message", "a Python logging format whose fields are");
    refused("%(message)*s", "a Python logging format whose fields are");
    refused("%(message)1234s", "a Python logging format whose fields are");
    refused("%(message)q", "a Python logging format whose fields are");
    refused("%(message)d", "a Python logging format whose conversions fit");
    refused("%(created)x", "a Python logging format whose conversions fit");
    refused("%(levelno)c", "a Python logging format whose conversions fit");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_patroni_default),
        cmocka_unit_test(test_fields_flags_and_conversions),
        cmocka_unit_test(test_cut_to_the_buffer),
        cmocka_unit_test(test_refused),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
