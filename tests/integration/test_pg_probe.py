"""agent/pgprobe against real PostgreSQL 15: a primary and a streaming
replica made with pg_basebackup, probed through tests/tools/pg_probe.

Checks that the kept connection is rebuilt after a restart, and that a
stopped or SIGSTOPped server costs at most the probe deadline.

Serial (not concurrent): both tests bound a probe's time. The snapshot of
each role, LSNs advancing after a write and the kept connection reused are
in test_pg_probe_functional.py, in the concurrent pass, which takes the
helpers below from here.
"""
import json
import os
import signal
import subprocess

import pytest

from lib.pg import PgSet
from lib.procs import tool, wait_until

DEADLINE_MS = 1000
# The probe may overrun its deadline only by scheduling noise (ASan build).
SLACK_MS = 400


@pytest.fixture
def pgs(workdir):
    s = PgSet(workdir)
    yield s
    s.stop_all()


def probe(node, via="socket", timeout_ms=DEADLINE_MS, data_dir=True):
    host = node.sock_dir if via == "socket" else node.host
    argv = [tool("pg_probe"), "--host", host, "--port", str(node.port), "--user", "postgres",
            "--timeout-ms", str(timeout_ms)]
    if data_dir:
        argv += ["--data-dir", node.data_dir]
    p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                       timeout=timeout_ms / 1000 + 10)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout.strip().splitlines()[-1])


class ProbeSession:
    """One pg_probe --interactive process: one PgProbe, one probe per line."""

    def __init__(self, node, via="socket", timeout_ms=DEADLINE_MS):
        host = node.sock_dir if via == "socket" else node.host
        self.proc = subprocess.Popen(
            [tool("pg_probe"), "--interactive", "--host", host, "--port", str(node.port),
             "--user", "postgres", "--timeout-ms", str(timeout_ms), "--data-dir", node.data_dir],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, start_new_session=True)

    def probe(self):
        self.proc.stdin.write("probe\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        assert line, "pg_probe --interactive exited"
        return json.loads(line)

    def close(self):
        try:
            self.proc.stdin.close()
            rc = self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.kill(self.proc.pid, signal.SIGKILL)
            rc = self.proc.wait(timeout=10)
        assert rc == 0


@pytest.fixture
def sessions():
    opened = []

    def make(*args, **kwargs):
        s = ProbeSession(*args, **kwargs)
        opened.append(s)
        return s

    yield make
    for s in opened:
        if s.proc.poll() is None:
            os.kill(s.proc.pid, signal.SIGKILL)
            s.proc.wait(timeout=10)


def lsn_int(s):
    hi, lo = s.split("/")
    return int(hi, 16) << 32 | int(lo, 16)


def test_stopped_server_is_unreachable_within_deadline(pgs, sessions):
    n1 = pgs.init_primary("n1")
    s = sessions(n1, via="tcp")
    ok = s.probe()
    assert ok["reachable"] and ok["connects"] == 1

    n1.stop("immediate")
    assert not n1.is_running()
    down = s.probe()
    assert down["reachable"] is False, down
    assert down["elapsed_ms"] < DEADLINE_MS + SLACK_MS
    assert down["postmaster_pid"] is None or down["postmaster_alive"] is False

    one_shot = probe(n1, via="socket")
    assert one_shot["reachable"] is False and one_shot["error"]
    assert one_shot["elapsed_ms"] < DEADLINE_MS + SLACK_MS

    # Back up: the same PgProbe reconnects on its own.
    n1.start()
    back = s.probe()
    assert back["reachable"] is True, back
    assert back["connects"] >= 2
    assert back["postmaster_alive"] is True
    s.close()


def test_sigstopped_postmaster_times_out(pgs):
    n1 = pgs.init_primary("n1")
    pid = n1.postmaster_pid()
    os.kill(pid, signal.SIGSTOP)
    try:
        for via in ("socket", "tcp"):
            p = probe(n1, via=via, timeout_ms=DEADLINE_MS)
            assert p["reachable"] is False, p
            assert p["timed_out"] is True, p
            assert DEADLINE_MS - 50 <= p["elapsed_ms"] < DEADLINE_MS + SLACK_MS, p
            # stopped, not dead: the liveness check still sees the postmaster
            assert p["postmaster_alive"] is True
    finally:
        os.kill(pid, signal.SIGCONT)
    wait_until(lambda: probe(n1)["reachable"], 10, what="probe after SIGCONT")
