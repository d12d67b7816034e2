/* The local probe's one query (agent/pgprobe.c), also run by
 * bench/src/probefloor.c, the floor of an agent that probes every loop. */
#pragma once

/* One round trip, two result sets. The CASEs keep functions that fail
 * during recovery from running there. On a primary the timeline comes from
 * the current WAL file name because pg_control's timeline only moves at the
 * next checkpoint after a promotion (which may take many seconds). */
#define PGPROBE_SNAPSHOT_SQL                                                                       \
    "SELECT pg_catalog.pg_is_in_recovery(),"                                                       \
    " CASE WHEN pg_catalog.pg_is_in_recovery() THEN NULL"                                          \
    "  ELSE pg_catalog.pg_current_wal_lsn()::text END,"                                            \
    " CASE WHEN pg_catalog.pg_is_in_recovery() THEN NULL"                                          \
    "  ELSE pg_catalog.substr(pg_catalog.pg_walfile_name(pg_catalog.pg_current_wal_lsn()), 1, 8) " \
    "END,"                                                                                         \
    " pg_catalog.pg_last_wal_receive_lsn()::text,"                                                 \
    " pg_catalog.pg_last_wal_replay_lsn()::text,"                                                  \
    " pg_catalog.date_part('epoch', pg_catalog.pg_last_xact_replay_timestamp()),"                  \
    " CASE WHEN pg_catalog.pg_is_in_recovery() THEN pg_catalog.pg_is_wal_replay_paused() END,"     \
    " pg_catalog.date_part('epoch', pg_catalog.clock_timestamp()),"                                \
    " w.status, w.received_tli, w.sender_host, w.sender_port, w.slot_name,"                        \
    " pg_catalog.current_setting('server_version_num'),"                                           \
    " (pg_catalog.pg_control_system()).system_identifier,"                                         \
    " pg_catalog.date_part('epoch', pg_catalog.pg_postmaster_start_time()),"                       \
    " (pg_catalog.pg_control_checkpoint()).timeline_id,"                                           \
    " EXISTS (SELECT 1 FROM pg_catalog.pg_settings WHERE pending_restart),"                        \
    " (SELECT pg_catalog.count(*) FROM pg_catalog.pg_replication_slots"                            \
    "  WHERE slot_type = 'physical')"                                                              \
    " FROM (SELECT 1) AS one LEFT JOIN pg_catalog.pg_stat_wal_receiver AS w ON true;"              \
    "SELECT application_name, state, sent_lsn::text, write_lsn::text, flush_lsn::text,"            \
    " replay_lsn::text, sync_state, pg_catalog.date_part('epoch', write_lag),"                     \
    " pg_catalog.date_part('epoch', flush_lag), pg_catalog.date_part('epoch', replay_lag)"         \
    " FROM pg_catalog.pg_stat_replication ORDER BY application_name, pid"
