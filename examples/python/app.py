#!/usr/bin/python3
"""dbha's Python binding with psycopg2: the Python twin of examples/dbha-example.c.

It writes rows with increasing sequence numbers to the primary (the DSN the
binding gives), takes the WAL position after each commit, and reads the
newest row back read-your-writes (a replica that replayed that position,
else the primary). After an error it drops its connection and asks the
binding again, so it follows a failover. Every event is one JSON line:

  {"ts": ..., "event": "topology", "source": "callback", "version": 4, "leader": "node2", "timeline": 2,
   "primary": "node2", "replicas": ["node1", "node3"]}       (from on_change)
  {"ts": ..., "event": "write", "ok": true, "node": "node1", "seq": 7, "lsn": "0/3000060"}
  {"ts": ..., "event": "read", "ok": true, "node": "node2", "role": "replica", "seq": 7,
   "want_seq": 7, "stale": false}
  {"ts": ..., "event": "summary", "writes_ok": ..., "reads_ok": ..., "stale": 0, ...}

Usage: app.py (--etcd HOST:PORT[,...] --scope NAME [--namespace NS] | --rest URL[,...])
              --conninfo "user=... password=... dbname=..." [--duration SEC]
              [--interval-ms N] [--table NAME] [--max-lag BYTES]
The library: libdbha.so.0 as the system finds it, or $DBHA_LIBRARY. Without
an installed package, PYTHONPATH=python (the checkout's python/ directory).
"""
import argparse
import json
import sys
import threading
import time

import psycopg2

import dbha

out_lock = threading.Lock()


def emit(**ev):
    ev["ts"] = time.time()
    with out_lock:
        sys.stdout.write(json.dumps(ev) + "\n")
        sys.stdout.flush()


def on_change(topo, source="callback"):
    emit(event="topology", source=source, version=topo["version"], leader=topo["leader"],
         timeline=topo["timeline"],
         primary=topo["primary"]["name"] if topo["primary"] else None,
         replicas=[r["name"] for r in topo["replicas"]])


def first_line(e):
    return (str(e).strip().splitlines() or [type(e).__name__])[0]


class App:
    def __init__(self, client, table, max_lag):
        self.c = client
        self.table = table
        self.max_lag = max_lag
        self.writer = None  # (connection, node name)
        self.seq = 0
        self.acked_seq = 0
        self.acked_lsn = 0
        self.n = {"writes_ok": 0, "writes_failed": 0, "reads_ok": 0, "reads_failed": 0,
                  "reads_from_replica": 0, "stale": 0}

    def primary_conn(self):
        if self.writer and self.writer[1] != self.c.primary()["name"]:
            self.drop_writer()  # the topology moved the primary role: follow it
        if self.writer is None:
            node = self.c.primary()["name"]
            conn = psycopg2.connect(self.c.primary_dsn(connect_timeout=2,
                                                       application_name="dbha-python"))
            conn.autocommit = True
            self.writer = (conn, node)
        return self.writer

    def drop_writer(self):
        if self.writer:
            try:
                self.writer[0].close()
            except Exception:
                pass
            self.writer = None

    def setup(self, deadline):
        while True:
            try:
                conn, _ = self.primary_conn()
                with conn.cursor() as cur:
                    cur.execute(f"CREATE TABLE IF NOT EXISTS {self.table} "
                                "(seq bigint PRIMARY KEY, at timestamptz DEFAULT now())")
                    cur.execute(f"SELECT coalesce(max(seq), 0) FROM {self.table}")
                    self.seq = cur.fetchone()[0]
                return
            except Exception as e:
                self.drop_writer()
                if time.monotonic() > deadline:
                    raise SystemExit(f"app.py: no writable primary: {first_line(e)}")
                time.sleep(0.2)

    def write_once(self):
        self.seq += 1
        ev = {"event": "write", "seq": self.seq}
        try:
            conn, node = self.primary_conn()
            ev["node"] = node
            with conn.cursor() as cur:
                cur.execute(f"INSERT INTO {self.table} (seq) VALUES (%s)", (self.seq,))
            lsn = dbha.current_lsn(conn)
        except Exception as e:
            self.drop_writer()
            self.n["writes_failed"] += 1
            emit(ok=False, error=first_line(e), **ev)
            return
        self.acked_seq, self.acked_lsn = self.seq, lsn
        self.n["writes_ok"] += 1
        emit(ok=True, lsn=dbha.lsn_format(lsn), **ev)

    def read_once(self):
        if not self.acked_seq:
            return
        ev = {"event": "read", "want_seq": self.acked_seq,
              "want_lsn": dbha.lsn_format(self.acked_lsn)}
        conn = None
        try:
            conn, node = self.c.connect_ryw(psycopg2.connect, self.acked_lsn, self.max_lag,
                                            connect_timeout=2, application_name="dbha-python")
            with conn.cursor() as cur:
                cur.execute(f"SELECT coalesce(max(seq), 0) FROM {self.table}")
                got = cur.fetchone()[0]
        except Exception as e:
            self.n["reads_failed"] += 1
            emit(ok=False, error=first_line(e), **ev)
            return
        finally:
            if conn is not None:
                conn.close()
        stale = got < self.acked_seq
        self.n["reads_ok"] += 1
        self.n["stale"] += stale
        self.n["reads_from_replica"] += node["role"] == "replica"
        emit(ok=True, node=node["name"], role=node["role"], seq=got, stale=stale, **ev)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--etcd")
    ap.add_argument("--scope")
    ap.add_argument("--namespace")
    ap.add_argument("--rest")
    ap.add_argument("--conninfo", required=True)
    ap.add_argument("--duration", type=float, default=10)
    ap.add_argument("--interval-ms", type=int, default=100)
    ap.add_argument("--table", default="dbha_python_example")
    ap.add_argument("--max-lag", type=int, default=-1)
    a = ap.parse_args()
    if not a.etcd and not a.rest:
        ap.error("--etcd or --rest is required")
    with dbha.Client(etcd=a.etcd.split(",") if a.etcd else None, scope=a.scope,
                     namespace=a.namespace, rest=a.rest.split(",") if a.rest else None,
                     conninfo=a.conninfo) as c:
        c.on_change(on_change)
        on_change(c.wait_topology(timeout=10), "wait")
        app = App(c, a.table, a.max_lag)
        end = time.monotonic() + a.duration
        app.setup(end)
        while time.monotonic() < end:
            app.write_once()
            app.read_once()
            time.sleep(a.interval_ms / 1000)
        app.drop_writer()
        emit(event="summary", client=c.stats(), **app.n)
    return 0


if __name__ == "__main__":
    sys.exit(main())
