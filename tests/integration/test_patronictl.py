"""patronictl 3.0.2 (Debian's patroni package) reads a running three-node
dbha cluster (synchronous_mode on, ttl 4, loop_wait 1) from etcd, with a
Patroni-style config that names only the etcd3 hosts, scope and namespace.

`list` (table and -f json) and `topology` show every member with its
host:port, role (Leader / Sync Standby / Replica), state, timeline and lag
in MB as dbctl status does; after `patronictl switchover` the new leader and
the next timeline show on every member. Lag: patronictl computes it from
the leader's optime in /status minus a member's xlog_location, which dbha
(like Patroni, ha.py touch_member: max(received, replayed)) publishes as the
WAL *received*: replay paused on a replica leaves it at 0 MB; a WAL receiver
that is stopped (SIGSTOP) while the primary writes 3 MB shows 3 MB.
`version` reaches every agent's GET /patroni and `show-config` prints the
config key, and `history` as Patroni writes it.

Each patronictl run costs 0.5-2 s of Python start-up (its imports), so the
module calls it about fifteen times in all.
"""
import json
import os
import signal
import subprocess
import time

import pytest
import yaml

from conftest import started_cluster
from lib.procs import wait_until

pytestmark = pytest.mark.concurrent

TTL = 4
WRITE_MB = 3
PATRONICTL = "/usr/bin/patronictl"
ROLES = {"primary": "Leader", "sync_standby": "Sync Standby", "replica": "Replica"}


@pytest.fixture(scope="module")
def cluster():
    with started_cluster("dbha-patronictl-", n=3, ttl=TTL, loop_wait=1, retry_timeout=1,
                         synchronous_mode=True) as c:
        c.patronictl_cfg = os.path.join(c.workdir, "patronictl.yml")
        with open(c.patronictl_cfg, "w") as f:
            f.write(f"scope: {c.scope}\nnamespace: /service/\n"
                    f"etcd3:\n  hosts: {','.join(c.etcd.endpoints)}\n")
        yield c


def patronictl(c, *args):
    r = subprocess.run([PATRONICTL, "-c", c.patronictl_cfg, *args], capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 0, f"patronictl {' '.join(args)}: {r.returncode}\n{r.stdout}{r.stderr}"
    return r.stdout


def listed(c):
    """patronictl list -f json: {member: row}."""
    return {m["Member"]: m for m in json.loads(patronictl(c, "list", "-f", "json"))}


def table(text):
    """The rows of a patronictl table: [[cell, ...], ...] (the header first)."""
    return [[cell.strip() for cell in line.strip().strip("|").split("|")]
            for line in text.splitlines() if line.startswith("|")]


def sync_settled(c, leader=None):
    """dbctl status once a leader (the given one) has a synchronous standby,
    every member streams on the leader's timeline and no replica lags."""
    def ok():
        s = c.status()
        if not s["leader"] or (leader and s["leader"] != leader):
            return None
        ms = s["members"]
        tl = {m["timeline"] for m in ms}
        if len(ms) != 3 or len(tl) != 1 or \
                [m["role"] for m in ms].count("sync_standby") != 1 or \
                any(m["role"] != "primary" and (m["state"] != "streaming" or m["lag_bytes"])
                    for m in ms):
            return None
        return s
    return wait_until(ok, 60, interval=0.3, what="a settled synchronous cluster")


def expected(s):
    """What patronictl should list, from dbctl status -o json: {member: row}."""
    out = {}
    for m in s["members"]:
        row = {"Cluster": s["cluster"], "Member": m["name"], "Host": f"{m['host']}:{m['port']}",
               "Role": ROLES[m["role"]], "State": "running", "TL": m["timeline"]}
        if m["role"] != "primary":
            row["Lag in MB"] = round((m["lag_bytes"] or 0) / 1048576)
        out[m["name"]] = row
    return out


def agrees(c, s):
    """patronictl's list once it matches the expectation from dbctl (each
    agent's member key is up to a loop old), else None."""
    want = expected(s)
    got = listed(c)
    return got if got == want else None


def check_list_and_topology(c, s):
    want = expected(s)
    try:
        got = wait_until(lambda: agrees(c, s), 10, interval=0.3, what="patronictl list = status")
    except AssertionError:
        print(f"want {want}\ngot {listed(c)}")
        raise
    # every node's PostgreSQL port, as patronictl prints it (host:port)
    assert {r["Host"] for r in got.values()} == {f"127.0.0.1:{n.pg_port}" for n in c.nodes}

    text = patronictl(c, "list")
    print(f"\n{text}")
    rows = table(text)
    assert rows[0] == ["Member", "Host", "Role", "State", "TL", "Lag in MB"], rows[0]
    assert sorted(r[0] for r in rows[1:]) == sorted(want)
    for r in rows[1:]:
        w = want[r[0]]
        assert r[1:5] == [w["Host"], w["Role"], w["State"], str(w["TL"])], (r, w)
        assert r[5] == str(w.get("Lag in MB", "")), (r, w)

    # topology: the leader first, the replicas under it
    rows = table(patronictl(c, "topology"))
    leader = s["leader"]
    assert rows[1][0] == leader and rows[1][2] == "Leader", rows
    assert sorted(r[0] for r in rows[2:]) == sorted(f"+ {m}" for m in want if m != leader), rows
    return got


def test_list_and_topology(cluster):
    c = cluster
    s = sync_settled(c)
    got = check_list_and_topology(c, s)
    assert sorted(r["Role"] for r in got.values()) == ["Leader", "Replica", "Sync Standby"]
    assert {r["TL"] for r in got.values()} == {s["members"][0]["timeline"]}
    # version asks every member's GET /patroni; show-config reads the config key
    out = patronictl(c, "version", c.scope)
    lines = sorted(ln for ln in out.splitlines() if ln.startswith("node"))
    assert len(lines) == 3 and all(" PostgreSQL 15." in ln for ln in lines), out
    assert yaml.safe_load(patronictl(c, "show-config")) == json.loads(c.etcd_get("config"))


def test_switchover_shows_the_next_timeline(cluster):
    c = cluster
    s = sync_settled(c)
    old = s["leader"]
    tl = next(m["timeline"] for m in s["members"] if m["name"] == old)
    sb = next(m["name"] for m in s["members"] if m["role"] == "sync_standby")
    t0 = time.monotonic()
    out = patronictl(c, "switchover", c.scope, "--leader", old, "--candidate", sb, "--force")
    assert "Successfully switched over" in out, out
    s = sync_settled(c, leader=sb)
    print(f"\npatronictl switchover {old} -> {sb}: settled {time.monotonic() - t0:.2f} s later")
    got = check_list_and_topology(c, s)
    assert {r["TL"] for r in got.values()} == {tl + 1}, got
    assert got[sb]["Role"] == "Leader" and got[old]["Role"] in ("Replica", "Sync Standby"), got
    hist = table(patronictl(c, "history"))
    assert hist[0][:2] == ["TL", "LSN"] and hist[-1][0] == str(tl) and hist[-1][-1] == sb, hist


def test_history_is_patronis(cluster):
    """After the switchover above: Patroni 3.0.2 (ha.py update_cluster_history,
    postgresql get_history) writes the lines of the leader's timeline
    history file, each with the promotion's time and new leader, and
    nothing for timeline 1; its Cluster.timeline is the last line's TL + 1."""
    c = cluster
    s = sync_settled(c)
    leader = c.node(s["leader"])
    tl = next(m["timeline"] for m in s["members"] if m["name"] == leader.name)
    if tl < 2:
        pytest.skip("needs the switchover of test_switchover_shows_the_next_timeline")
    text = leader.sql("SELECT pg_read_file(%s)", (f"pg_wal/{tl:08X}.history",))[0][0]
    want = [ln.split("\t") for ln in text.splitlines() if ln[:1].isdigit()]
    rows = table(patronictl(c, "history"))[1:]
    print(f"\n{leader.name}'s {tl:08X}.history: {want}\npatronictl history: {rows}")
    assert [r[:3] for r in rows] == [[w[0], str(int(w[1].split("/")[0], 16) << 32
                                                 | int(w[1].split("/")[1], 16)), w[2].strip()]
                                     for w in want]
    assert int(rows[-1][0]) + 1 == tl


MB = 1048576


def key_lags(c, optime=None):
    """{member: lag} as patronictl computes it (utils.py cluster_as_json): the
    status key's optime (or the given one) minus each replica's
    xlog_location, 0 when ahead."""
    opt = optime if optime is not None else json.loads(c.etcd_get("status"))["optime"]
    leader = c.etcd_get("leader")
    out = {}
    for n in c.nodes:
        if n.name != leader:
            x = json.loads(c.etcd_get(f"members/{n.name}"))["xlog_location"]
            out[n.name] = max(0, opt - x)
    return out


def receiver_pid(node):
    rows = node.sql("SELECT pid FROM pg_stat_wal_receiver")
    return rows[0][0] if rows else None


def test_lag(cluster):
    c = cluster
    s = sync_settled(c)
    leader = c.node(s["leader"])
    replica = c.node(next(m["name"] for m in s["members"] if m["role"] == "replica"))
    sb = next(m["name"] for m in s["members"] if m["role"] == "sync_standby")
    leader.sql("CREATE TABLE IF NOT EXISTS ballast (x text)")
    wait_until(lambda: replica.sql("SELECT to_regclass('ballast') IS NOT NULL")[0][0], 20,
               what="the table on the replica")

    # replay paused: WAL still arrives, patronictl (like Patroni's own
    # member key) shows no lag, dbctl shows the replay lag
    replica.sql("SELECT pg_wal_replay_pause()")
    try:
        leader.sql("INSERT INTO ballast SELECT repeat('x', 1000) FROM generate_series(1, %s)",
                   (WRITE_MB * 1000,))
        wait_until(lambda: next(m for m in c.status()["members"]
                                if m["name"] == replica.name)["lag_bytes"] > 1048576, 10,
                   interval=0.3, what="the replay lag in dbctl status")
        pos = leader.sql("SELECT pg_current_wal_lsn() - '0/0'::pg_lsn")[0][0]
        wait_until(lambda: json.loads(c.etcd_get(f"members/{replica.name}"))["xlog_location"]
                   >= pos, 10, interval=0.2, what="the replica's received WAL in its member key")
        got = listed(c)
        print(f"\nreplay paused on {replica.name}: patronictl {got[replica.name]}")
        assert got[replica.name]["Lag in MB"] == 0, got
    finally:
        replica.sql("SELECT pg_wal_replay_resume()")
    sync_settled(c)

    # the WAL receiver stopped: what was written since is missing from the
    # replica's xlog_location, and patronictl shows it
    pid = receiver_pid(replica)
    assert pid, "no WAL receiver on the replica"
    os.kill(pid, signal.SIGSTOP)
    try:
        leader.sql("INSERT INTO ballast SELECT repeat('x', 1000) FROM generate_series(1, %s)",
                   (WRITE_MB * 1000,))
        pos = leader.sql("SELECT pg_current_wal_lsn() - '0/0'::pg_lsn")[0][0]
        # the keys patronictl reads (a patronictl run costs seconds: poll etcd)
        wait_until(lambda: key_lags(c).get(replica.name, 0) >= (WRITE_MB - 0.5) * MB
                   and key_lags(c, pos).get(sb) == 0, 10, interval=0.2,
                   what="the lag in the member and status keys")
        rows = {r[0]: r for r in table(patronictl(c, "list"))[1:]}
        print(f"WAL receiver of {replica.name} stopped: patronictl {rows[replica.name]}")
        assert int(rows[replica.name][5]) >= WRITE_MB - 1 and rows[sb][5] == "0", rows
        assert rows[s["leader"]][5] == "", rows
    finally:
        os.kill(pid, signal.SIGCONT)
    sync_settled(c)
    wait_until(lambda: key_lags(c).get(replica.name) == 0, 10, interval=0.2,
               what="no lag in the member keys after the receiver resumed")
    assert listed(c)[replica.name]["Lag in MB"] == 0
