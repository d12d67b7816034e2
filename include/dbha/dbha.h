/* libdbha: the public C API for applications that follow a dbha cluster.
 *
 * This release exposes the library version; the topology API (open a
 * cluster from etcd endpoints, fetch and watch the topology, connect to the
 * primary or a replica) follows in a later release and will be declared in
 * this header. */
#pragma once

#ifdef __cplusplus
extern "C" {
#endif

#define DBHA_API __attribute__((visibility("default")))

/* Library version as "MAJOR.MINOR.PATCH"; a static string. */
DBHA_API const char *dbha_version(void);

#ifdef __cplusplus
}
#endif
