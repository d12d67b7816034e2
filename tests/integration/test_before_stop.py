"""postgresql.before_stop (Patroni 3.1's) on a real three-node cluster: the
script runs, and is waited for, before every stop of PostgreSQL, while
PostgreSQL still runs; its exit status does not matter (it exits 3 here).

- a replica's restart (dbctl restart), a switchover (on the old primary),
  the agent's shutdown (SIGTERM): each time the script saw its PostgreSQL
  running, and PostgreSQL stopped (or restarted) after it.
- Fault: the script hangs on the primary during a switchover. The loop waits
  for it only until the lease's deadline: the fence stops the old primary,
  the candidate leads, and at no sample (every 0.1 s) were both writable.
"""
import os
import threading
import time

import psycopg2
import pytest

from conftest import started_cluster
from lib.pg import hand_to_pg_user
from lib.procs import wait_until

pytestmark = pytest.mark.concurrent

TTL = 10

# NAME DATADIR OUTDIR: one line "NAME running|stopped" per run; hangs while
# OUTDIR/hang-NAME exists (bounded: 120 s)
SCRIPT = """#!/bin/sh
name=$1 data=$2 out=$3
pid=$(head -n 1 "$data/postmaster.pid" 2>/dev/null)
if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then s=running; else s=stopped; fi
echo "$name $s" >> "$out/runs"
i=0
while [ -e "$out/hang-$name" ] && [ $i -lt 1200 ]; do sleep 0.1; i=$((i+1)); done
exit 3
"""


@pytest.fixture(scope="module")
def cluster():
    def configure(c):
        out = os.path.join(c.workdir, "before-stop")
        hand_to_pg_user(out)
        script = os.path.join(c.workdir, "before_stop.sh")
        with open(script, "w") as f:
            f.write(SCRIPT)
        os.chmod(script, 0o755)
        c.out = out
        for n in c.nodes:
            n.postgresql_yaml = f"  before_stop: {script} {n.name} {n.data_dir} {out}\n"

    with started_cluster("dbha-before-stop-", configure, n=3, ttl=TTL, loop_wait=1,
                         retry_timeout=2) as c:
        yield c


def runs(c):
    try:
        with open(os.path.join(c.out, "runs")) as f:
            return [line.split() for line in f if line.strip()]
    except FileNotFoundError:
        return []


def test_restart_switchover_and_shutdown_run_it_first(cluster):
    c = cluster
    s = c.wait_healthy()
    leader = c.node(s["leader"])
    r1, r2 = [n for n in c.nodes if n is not leader]

    p = c.dbctl("restart", r1.name, "--force", timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr
    wait_until(lambda: [r1.name, "running"] in runs(c), 30, what="before_stop of the restart")
    assert c.procs.log_contains(r1.name, "running before_stop before stopping postgresql")
    c.wait_healthy()

    p = c.dbctl("switchover", "--leader", leader.name, "--candidate", r1.name, "--force")
    assert p.returncode == 0, p.stdout + p.stderr
    c.wait_healthy()
    assert c.status()["leader"] == r1.name
    assert [leader.name, "running"] in runs(c)

    before = len(runs(c))
    pid = r2.postmaster_pid()
    r2.stop(timeout=60)
    assert runs(c)[before:] == [[r2.name, "running"]]
    assert pid and r2.postmaster_pid() is None  # it stopped PostgreSQL after the script
    r2.start()
    c.wait_healthy()


def writable(n):
    try:
        return n.sql("SELECT NOT pg_is_in_recovery()")[0][0]
    except psycopg2.Error:
        return False


def test_a_hanging_script_holds_the_switchover_no_longer_than_the_lease(cluster):
    c = cluster
    s = c.wait_healthy()
    old = c.node(s["leader"])
    cand = next(n for n in c.nodes if n is not old)
    with open(os.path.join(c.out, f"hang-{old.name}"), "w"):
        pass
    both, stop = [], threading.Event()

    def sample():
        for _ in range(3000):  # bounded: 3000 x 0.1 s
            if stop.is_set():
                return
            if writable(old) and writable(cand):
                both.append(time.monotonic())
            time.sleep(0.1)

    t = threading.Thread(target=sample, daemon=True)
    t.start()
    try:
        t0 = time.monotonic()
        c.dbctl("switchover", "--leader", old.name, "--candidate", cand.name, "--force",
                timeout=60)
        wait_until(lambda: writable(cand), 60, interval=0.2, what=f"{cand.name} the primary")
        took = time.monotonic() - t0
        assert not writable(old)
        # the script ran, and was given up at the lease's deadline
        assert [old.name, "running"] in runs(c)
        assert c.procs.log_contains(old.name, "before_stop killed after")
    finally:
        os.unlink(os.path.join(c.out, f"hang-{old.name}"))
        stop.set()
        t.join(10)
    print(f"\nswitchover with a hanging before_stop: {cand.name} writable {took:.1f} s after "
          "the request")
    assert not both, f"both writable at {len(both)} samples"
    c.wait_healthy(timeout=120)
