"""Write probes for the fault tests: who accepted writes, when, and what was lost.

A `Writer` runs one thread per node. Each thread talks to its node's own port
on 127.0.0.1 (never a multi-host connection string, which would keep using
the old primary), and inserts one row per attempt into `dbha_writes` in
autocommit, so an acknowledged write is a committed INSERT. A thread holds
its connection until it fails, or (reconnect_each=True) opens a new one for
every INSERT. Every attempt is
recorded: node, seq (unique across the writer), send and ack time
(time.monotonic()), and success or an error class ("read_only", "refused",
"timeout", ...).

    w = Writer(cluster.nodes)
    w.ensure_table(cluster.primary(), wait_for=cluster.nodes)
    with w:
        t_kill = time.monotonic(); ...fault...
        t_new = w.first_ack_after(t_kill, exclude=old_primary)
    w.assert_no_overlap()           # AssertionError on split brain
    lost = w.missing_on(new_primary)

Overlap (split brain). The commit of an acknowledged write happened at some
moment between its send and its ack. A *run* is a maximal sequence of
successful attempts on one node with no failed attempt in between; while a
run lasts the node accepted writes, and it may have done so from the first
write's send time to the last write's ack time. That widest interval,
[first_send, last_ack], is the run's *span*. Two nodes overlap when a span
of one intersects a span of the other by more than `slack` seconds:
min(endA, endB) - max(startA, startB) > slack. This is conservative: any
moment at which two nodes both accepted writes lies inside both spans, so a
real split brain is always reported (given a write landed in it); a tight
handover (new primary's first send before the old one's last ack) is
reported too, which is what the issue asks: the old primary must refuse
writes no later than the moment the new one accepts them. An overlap is also
marked `certain` when the narrow intervals [first_ack, last_send] of both
runs intersect, i.e. both nodes provably accepted writes over a common
moment.

Every loop is bounded in time. The probes use psycopg2 asynchronous
connections and wait on the socket with a deadline, so a SIGSTOPped or
unreachable server costs `connect_timeout` or `statement_timeout` plus a
little, never a hang (statement_timeout alone cannot fire in a stopped
server).
"""
import itertools
import json
import re
import select
import threading
import time
from collections import namedtuple
from dataclasses import dataclass
from typing import Optional

import psycopg2
import psycopg2.extensions as pgext

from .cluster import SUPERUSER, SUPERUSER_PW
from .procs import LOOPBACK, wait_until

DEFAULT_TABLE = "dbha_writes"
MAX_ATTEMPTS_PER_NODE = 200_000  # memory bound: 600 s at 20 ms is 30 000


class ClientTimeout(Exception):
    """The server did not answer within the probe's deadline."""


@dataclass(frozen=True)
class Attempt:
    node: str
    seq: Optional[int]      # None for a failed connection attempt (no INSERT sent)
    t_send: float           # monotonic, just before the INSERT (or the connect)
    t_ack: float            # monotonic, when the answer or the error arrived
    ok: bool
    error: Optional[str] = None    # error class, see classify()
    detail: Optional[str] = None   # first line of the error message
    phase: str = "insert"          # "connect" or "insert"


# A maximal run of successes on one node. start/end: the span (first send,
# last ack); sure_start/sure_end: first ack, last send (may be empty).
Span = namedtuple("Span", "node start end count first_seq last_seq sure_start sure_end")

_PGCODES = {
    "25006": "read_only",            # cannot execute INSERT in a read-only transaction
    "57014": "statement_timeout",    # canceling statement due to statement timeout
    "57P01": "admin_shutdown",       # terminating connection due to administrator command
    "57P02": "crash_shutdown",
    "57P03": "cannot_connect_now",   # starting up / shutting down / in recovery
    "42P01": "no_table",
    "28P01": "auth",
    "28000": "auth",
    "53300": "too_many_connections",
}
# connection-time errors carry no SQLSTATE in psycopg2: classify by the text
_MESSAGES = (
    ("connection refused", "refused"),
    ("timeout expired", "timeout"),
    ("shutting down", "shutting_down"),
    ("starting up", "starting_up"),
    ("not yet accepting connections", "starting_up"),
    ("in recovery mode", "recovery"),
    ("read-only transaction", "read_only"),
    ("terminating connection", "admin_shutdown"),
    ("server closed the connection", "connection_lost"),
    ("connection reset", "connection_lost"),
    ("could not receive data", "connection_lost"),
    ("could not send data", "connection_lost"),
    ("connection already closed", "connection_lost"),
    ("password authentication failed", "auth"),
    ("no password supplied", "auth"),
    ("too many clients", "too_many_connections"),
)


def classify(exc):
    """A short error class for an exception raised by a probe."""
    if isinstance(exc, ClientTimeout):
        return "timeout"
    code = getattr(exc, "pgcode", None)
    if code:
        return _PGCODES.get(code, f"sqlstate_{code}")
    msg = str(exc).lower()
    for needle, cls in _MESSAGES:
        if needle in msg:
            return cls
    return type(exc).__name__


def _first_line(exc):
    s = str(exc).strip()
    return (s.splitlines()[0] if s else type(exc).__name__)[:200]


def _wait(conn, deadline):
    """Drive an asynchronous psycopg2 connection until its operation completes."""
    while True:
        state = conn.poll()
        if state == pgext.POLL_OK:
            return
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise ClientTimeout("no answer before the deadline")
        p = select.poll()
        if state == pgext.POLL_READ:
            p.register(conn.fileno(), select.POLLIN)
        elif state == pgext.POLL_WRITE:
            p.register(conn.fileno(), select.POLLOUT)
        else:
            raise psycopg2.OperationalError(f"bad poll state {state}")
        p.poll(max(1, int(remaining * 1000)))


def _close(conn):
    if conn is not None:
        try:
            conn.close()
        except Exception:  # noqa: BLE001 - the connection is being dropped anyway
            pass


def spans(attempts):
    """Runs of successes (Span list, in time order) of one node's attempts."""
    out, run = [], []

    def flush():
        if run:
            out.append(Span(run[0].node, run[0].t_send, run[-1].t_ack, len(run),
                            run[0].seq, run[-1].seq, run[0].t_ack, run[-1].t_send))
            run.clear()

    for a in sorted(attempts, key=lambda a: a.t_send):
        if a.ok:
            run.append(a)
        else:
            flush()
    flush()
    return out


def find_overlaps(spans_by_node, slack=0.0):
    """Every pair of spans of distinct nodes that intersect by more than slack seconds."""
    found = []
    names = sorted(spans_by_node)
    for i, na in enumerate(names):
        for nb in names[i + 1:]:
            for a in spans_by_node[na]:
                for b in spans_by_node[nb]:
                    lo, hi = max(a.start, b.start), min(a.end, b.end)
                    if hi - lo > slack:
                        sure = max(a.sure_start, b.sure_start) < min(a.sure_end, b.sure_end)
                        found.append({"nodes": (na, nb), "from": lo, "to": hi,
                                      "seconds": hi - lo, "certain": sure,
                                      "spans": (a, b)})
    return found


def _port_of(node):
    port = getattr(node, "pg_port", None)
    return port if port is not None else node.port


class Writer:
    """Background write probes against each node's own PostgreSQL port.

    nodes: objects with .name and .pg_port (lib.cluster.Node) or .port
    (lib.pg.PgNode); port_of/host_of/name_of override how they are read.
    Credentials default to the DbhaCluster superuser; pass password=None for
    trust authentication (lib.pg.PgSet).
    """

    def __init__(self, nodes, table=DEFAULT_TABLE, interval=0.02, connect_timeout=1.0,
                 statement_timeout_ms=1000, user=SUPERUSER, password=SUPERUSER_PW,
                 dbname="postgres", host_of=lambda n: LOOPBACK, port_of=_port_of,
                 name_of=lambda n: n.name, retry_sleep=0.05, max_duration=600.0,
                 reconnect_each=False):
        if not re.fullmatch(r"[a-z_][a-z0-9_]*", table):
            raise ValueError(f"bad table name {table!r}")
        self.nodes = list(nodes)
        self.table = table
        self.interval = interval
        self.connect_timeout = connect_timeout
        self.statement_timeout_ms = int(statement_timeout_ms)
        # client-side deadline of one INSERT: the server's timeout plus a margin
        self.op_timeout = self.statement_timeout_ms / 1000.0 + 0.5
        self.user, self.password, self.dbname = user, password, dbname
        self.host_of, self.port_of, self.name_of = host_of, port_of, name_of
        self.retry_sleep = retry_sleep
        self.max_duration = max_duration
        # a new connection for every INSERT (a client without a pool) instead
        # of one held until it fails
        self.reconnect_each = reconnect_each
        names = [name_of(n) for n in self.nodes]
        if len(set(names)) != len(names):
            raise ValueError(f"node names must be distinct: {names}")
        for n in self.nodes:
            if host_of(n) != LOOPBACK:
                raise ValueError(f"probes go to {LOOPBACK} only, not {host_of(n)}")
        self._lock = threading.Lock()
        self._seq = itertools.count(1)
        self._attempts = {name: [] for name in names}
        self._stop = threading.Event()
        self._threads = []
        self.t_start = None
        self.t_stop = None
        self.stuck = []  # threads that did not end within stop()'s bound

    # ---- connections ----
    def _dsn_kwargs(self, node, timeout_ms):
        kw = dict(host=self.host_of(node), port=self.port_of(node), user=self.user,
                  dbname=self.dbname, sslmode="disable", gssencmode="disable",
                  connect_timeout=max(1, int(round(self.connect_timeout))),
                  application_name="dbha-writer",
                  options=f"-c statement_timeout={int(timeout_ms)}")
        if self.password is not None:
            kw["password"] = self.password
        return kw

    def _connect(self, node, deadline, timeout_ms=None):
        conn = psycopg2.connect(async_=True, **self._dsn_kwargs(
            node, self.statement_timeout_ms if timeout_ms is None else timeout_ms))
        try:
            _wait(conn, deadline)
        except BaseException:
            _close(conn)
            raise
        return conn

    def _query(self, node, sql, params=None, timeout=10.0):
        """Rows of one autocommit statement on node, bounded by timeout seconds."""
        deadline = time.monotonic() + timeout
        conn = self._connect(node, min(deadline, time.monotonic() + max(self.connect_timeout, 3)),
                             timeout_ms=timeout * 1000)
        try:
            cur = conn.cursor()
            cur.execute(sql, params)
            _wait(conn, deadline)
            return cur.fetchall() if cur.description else []
        finally:
            _close(conn)

    def _node(self, node):
        """A node object from a node or its name."""
        if not isinstance(node, str):
            return node
        for n in self.nodes:
            if self.name_of(n) == node:
                return n
        raise KeyError(node)

    def _name(self, node):
        return node if isinstance(node, str) else self.name_of(node)

    # ---- setup ----
    def ensure_table(self, primary, wait_for=(), timeout=30.0):
        """Create the table on primary; wait until every node in wait_for sees it."""
        self._query(primary, f"CREATE TABLE IF NOT EXISTS {self.table} ("
                             "node text NOT NULL, seq bigint PRIMARY KEY, "
                             "t_client double precision NOT NULL, "
                             "t_server timestamptz NOT NULL DEFAULT clock_timestamp())")
        deadline = time.monotonic() + timeout
        for n in wait_for:
            if self._name(n) == self._name(primary):
                continue
            while True:
                try:
                    if self._query(n, "SELECT to_regclass(%s) IS NOT NULL", (self.table,),
                                   timeout=5)[0][0]:
                        break
                except psycopg2.Error:
                    pass
                if time.monotonic() >= deadline:
                    raise AssertionError(f"table {self.table} not on {self._name(n)} "
                                         f"after {timeout}s")
                time.sleep(0.05)
        return self

    # ---- probing ----
    def start(self):
        if self._threads:
            return self
        self.t_start = time.monotonic()
        for n in self.nodes:
            t = threading.Thread(target=self._probe, args=(n,), daemon=True,
                                 name=f"writer-{self.name_of(n)}")
            self._threads.append(t)
            t.start()
        return self

    def _record(self, a):
        with self._lock:
            self._attempts[a.node].append(a)

    def _probe(self, node):
        name = self.name_of(node)
        sql = f"INSERT INTO {self.table} (node, seq, t_client) VALUES (%s, %s, %s)"
        end = self.t_start + self.max_duration
        conn = None
        try:
            for _ in range(MAX_ATTEMPTS_PER_NODE):
                if self._stop.is_set() or time.monotonic() >= end:
                    break
                if conn is None:
                    t0 = time.monotonic()
                    try:
                        conn = self._connect(node, t0 + self.connect_timeout)
                    except Exception as e:  # noqa: BLE001 - every failure is a record
                        self._record(Attempt(name, None, t0, time.monotonic(), False,
                                             classify(e), _first_line(e), "connect"))
                        self._stop.wait(self.retry_sleep)
                        continue
                with self._lock:
                    seq = next(self._seq)
                try:
                    cur = conn.cursor()
                    t_send = time.monotonic()
                    cur.execute(sql, (name, seq, t_send))
                    _wait(conn, t_send + self.op_timeout)
                    t_ack = time.monotonic()
                except Exception as e:  # noqa: BLE001
                    t_err = time.monotonic()
                    self._record(Attempt(name, seq, t_send, t_err, False, classify(e),
                                         _first_line(e)))
                    _close(conn)
                    conn = None
                    self._stop.wait(self.retry_sleep)
                    continue
                self._record(Attempt(name, seq, t_send, t_ack, True))
                if self.reconnect_each:
                    _close(conn)
                    conn = None
                self._stop.wait(self.interval)
        finally:
            _close(conn)

    def stop(self, timeout=None):
        """Stop the probes; wait for each thread a bounded time. Returns self."""
        self._stop.set()
        bound = timeout if timeout is not None else (
            self.connect_timeout + self.op_timeout + self.retry_sleep + self.interval + 2)
        deadline = time.monotonic() + bound
        for t in self._threads:
            t.join(max(0.0, deadline - time.monotonic()))
        self.stuck = [t.name for t in self._threads if t.is_alive()]
        if self.t_stop is None:
            self.t_stop = time.monotonic()
        if self.stuck:
            print(f"writer: threads still running after {bound:.1f}s: {self.stuck}")
        return self

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False

    # ---- results ----
    def attempts(self, node=None):
        """A snapshot of the attempts (of one node, or all in send order)."""
        with self._lock:
            if node is not None:
                return list(self._attempts[self._name(node)])
            every = [a for lst in self._attempts.values() for a in lst]
        return sorted(every, key=lambda a: a.t_send)

    def acked(self, node=None):
        """The acknowledged (committed) attempts."""
        return [a for a in self.attempts(node) if a.ok]

    def accepted_intervals(self, node=None):
        """Spans per node name: {name: [Span, ...]} (or one node's list)."""
        if node is not None:
            return spans(self.attempts(node))
        return {name: spans(self.attempts(name)) for name in self._attempts}

    def first_ack_after(self, t, node=None, exclude=()):
        """Ack time of the first write acknowledged after monotonic time t, on node (or any
        node not in exclude); None if there is none."""
        if exclude is None or isinstance(exclude, str) or hasattr(exclude, "name"):
            exclude = () if exclude is None else (exclude,)
        skip = {self._name(x) for x in exclude}
        acks = [a.t_ack for a in self.acked(node)
                if a.t_ack > t and a.node not in skip]
        return min(acks) if acks else None

    def longest_gap(self, node, t0, t1, min_acks=11):
        """(the longest time in [t0, t1] between two acknowledged writes on
        node, how many there were); fewer than min_acks fails."""
        acks = sorted(a.t_ack for a in self.acked(node) if t0 <= a.t_ack <= t1)
        assert len(acks) >= min_acks, f"only {len(acks)} writes acknowledged on {self._name(node)}"
        points = [t0, *acks, t1]
        return max(b - a for a, b in zip(points, points[1:])), len(acks)

    def last_ack(self, node=None, before=None):
        """Ack time of the last acknowledged write (on node), optionally before a time."""
        acks = [a.t_ack for a in self.acked(node) if before is None or a.t_ack < before]
        return max(acks) if acks else None

    def report(self, slack=0.0):
        """Counts, error classes and spans per node, and the overlaps found."""
        per_node = {}
        by_node = self.accepted_intervals()
        for name in self._attempts:
            att = self.attempts(name)
            errors = {}
            for a in att:
                if not a.ok:
                    errors[a.error] = errors.get(a.error, 0) + 1
            oks = [a for a in att if a.ok]
            per_node[name] = {
                "ok": len(oks), "failed": len(att) - len(oks), "errors": errors,
                "spans": by_node[name],
                "first_ack": min((a.t_ack for a in oks), default=None),
                "last_ack": max((a.t_ack for a in oks), default=None),
            }
        overlaps = find_overlaps(by_node, slack)
        return {"t0": self.t_start, "slack": slack, "nodes": per_node,
                "overlaps": overlaps, "overlap": bool(overlaps), "stuck": list(self.stuck)}

    def format_report(self, rep=None):
        rep = rep or self.report()
        t0 = rep["t0"] or 0.0

        def rel(t):
            return "-" if t is None else f"{t - t0:+.3f}s"

        lines = ["writer report (times relative to writer start):"]
        for name, r in rep["nodes"].items():
            errs = ", ".join(f"{k}={v}" for k, v in sorted(r["errors"].items())) or "none"
            lines.append(f"  {name}: ok={r['ok']} failed={r['failed']} errors: {errs}")
            for s in r["spans"]:
                lines.append(f"    accepted {rel(s.start)} .. {rel(s.end)}  "
                             f"({s.count} writes, seq {s.first_seq}..{s.last_seq})")
        if rep["overlaps"]:
            for o in rep["overlaps"]:
                a, b = o["nodes"]
                lines.append(f"  OVERLAP {a} / {b}: {rel(o['from'])} .. {rel(o['to'])} "
                             f"({o['seconds'] * 1000:.1f} ms, "
                             f"{'certain' if o['certain'] else 'possible'})")
        else:
            lines.append(f"  no overlap (slack {rep['slack']}s)")
        if rep["stuck"]:
            lines.append(f"  threads not stopped: {rep['stuck']}")
        return "\n".join(lines)

    def assert_no_overlap(self, slack=0.0):
        """AssertionError when two nodes' spans intersect by more than slack seconds
        (split brain); otherwise the report. The report is printed either way."""
        rep = self.report(slack)
        text = self.format_report(rep)
        print(text)
        assert not rep["overlap"], "two nodes accepted writes at the same time\n" + text
        return rep

    def missing_on(self, node, from_nodes=None, timeout=10.0):
        """Sorted seqs acknowledged (by the nodes in from_nodes, default all) but absent from
        the table on node. The acknowledged set is taken before the query, so writes
        acknowledged while it runs are not counted."""
        want = {self._name(n) for n in from_nodes} if from_nodes is not None else None
        acked = {a.seq for a in self.acked() if want is None or a.node in want}
        rows = self._query(self._node(node), f"SELECT seq FROM {self.table}", timeout=timeout)
        present = {r[0] for r in rows}
        missing = sorted(acked - present)
        print(f"writer: {len(missing)} of {len(acked)} acknowledged writes missing on "
              f"{self._name(node)}" + (f": {missing[:20]}" if missing else ""))
        return missing

    def acked_between(self, t_from, t_to):
        """Seqs of the writes sent at or after t_from and acknowledged by t_to."""
        return sorted(a.seq for a in self.acked() if a.t_send >= t_from and a.t_ack <= t_to)

    def missing_among(self, node, seqs, timeout=10.0):
        """Those of seqs (acknowledged writes) absent from the table on node."""
        if not seqs:
            return []
        rows = self._query(self._node(node), f"SELECT seq FROM {self.table} WHERE seq = ANY(%s)",
                           (list(seqs),), timeout=timeout)
        return sorted(set(seqs) - {r[0] for r in rows})

    def dump(self, path):
        """Every attempt, one JSON object per line (times relative to the start)."""
        t0 = self.t_start or 0.0
        with open(path, "w") as f:
            for a in self.attempts():
                f.write(json.dumps({"node": a.node, "seq": a.seq, "send": round(a.t_send - t0, 4),
                                    "ack": round(a.t_ack - t0, 4), "ok": a.ok,
                                    "error": a.error, "detail": a.detail,
                                    "phase": a.phase}) + "\n")


def start_with_writer(c, timeout=120):
    """Start cluster c, wait until it is healthy, create the table and start a
    Writer on every node; returns (status, leader node, writer) once the
    leader acknowledged a first write."""
    c.start()
    s = c.wait_healthy(timeout=timeout)
    leader = c.node(s["leader"])
    w = Writer(c.nodes).ensure_table(leader, wait_for=[n for n in c.nodes if n is not leader])
    w.start()
    wait_until(lambda: w.first_ack_after(0, node=leader), 10, what="first write acknowledged")
    return s, leader, w
