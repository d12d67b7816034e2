"""Patroni 3.0.2's scheduled restarts on a real two-node cluster: POST
/restart {"schedule": ...} (its codes and texts), DELETE /restart, the
member key's and GET /patroni's scheduled_restart, `dbctl list -e`, and
`dbctl restart --scheduled/--pg-version/--any/--timeout` and `dbctl flush
CLUSTER restart`. loop_wait is 10 s, so a restart a few seconds after its
time shows the agent woke for it rather than at its next loop.

Not concurrent: the restarts are checked against their times."""
import datetime
import json
import time

import pytest

from conftest import started_cluster
from lib.procs import wait_until

LOOP_WAIT = 10
SCOPE = "itest"


def call(node, method, path, body=None, timeout=40):
    return node.api(path, method=method, timeout=timeout,
                    data=json.dumps(body) if body is not None else None)


def error_of(reply, status):
    code, body = reply
    assert code == status, (code, body)
    return json.loads(body)["error"]


def text_of(reply, status):
    code, body = reply
    assert code == status, (code, body)
    return body.decode()


def at_in(seconds, tz=datetime.timezone.utc):
    """A whole second at least `seconds` ahead, as Python's isoformat() prints it."""
    t = datetime.datetime.now(tz) + datetime.timedelta(seconds=seconds + 1)
    return t.replace(microsecond=0)


def epoch(t):
    return t.timestamp()


@pytest.fixture(scope="module")
def cluster():
    with started_cluster("dbha-sched-restart-", n=2, ttl=30, loop_wait=LOOP_WAIT,
                         retry_timeout=10) as c:
        yield c


def member_key(cluster, node):
    return json.loads(cluster.etcd_get(f"members/{node.name}"))


def scheduled_in_key(cluster, node):
    return member_key(cluster, node).get("scheduled_restart")


def roles(cluster):
    s = cluster.wait_healthy(timeout=60)
    leader = cluster.node(s["leader"])
    return leader, next(n for n in cluster.nodes if n is not leader)


def no_schedule_anywhere(cluster):
    for n in cluster.nodes:
        if scheduled_in_key(cluster, n):
            call(n, "DELETE", "/restart")
    wait_until(lambda: not any(scheduled_in_key(cluster, n) for n in cluster.nodes), 10,
               what="no scheduled restart in the member keys")


def pid_constant_until(node, pid, until_epoch):
    """The postmaster stays pid until until_epoch (polled every 0.1 s)."""
    for _ in range(1000):
        if time.time() >= until_epoch:
            return
        assert node.postmaster_pid() == pid, f"{node.name} restarted before its time"
        time.sleep(0.1)


def test_restart_runs_at_its_time_and_is_published(cluster):
    leader, replica = roles(cluster)
    no_schedule_anywhere(cluster)
    pid = replica.postmaster_pid()
    at = at_in(5)
    body = {"schedule": at.isoformat(), "timeout": "1min"}
    assert text_of(call(replica, "POST", "/restart", body), 202) == "Restart scheduled"
    # the member key as Patroni writes it (postmaster_start_time too) ...
    sched = wait_until(lambda: scheduled_in_key(cluster, replica), 5, what="the member key")
    assert sched["schedule"] == at.isoformat() and sched["timeout"] == 60, sched
    assert sched["postmaster_start_time"].startswith(
        replica.api_json("/patroni")[1]["postmaster_start_time"][:19]), sched
    # ... GET /patroni without it, dbctl list -e in "Scheduled restart"
    doc = replica.api_json("/patroni")[1]
    assert doc["scheduled_restart"] == {"schedule": at.isoformat(), "timeout": 60}, doc
    r = cluster.dbctl("list", "-e", "-f", "json")
    assert r.returncode == 0, r.stderr
    rows = {row["Member"]: row for row in json.loads(r.stdout)}
    assert rows[replica.name]["Scheduled restart"] == at.isoformat(), rows
    assert "Scheduled restart" not in rows[leader.name] or \
        not rows[leader.name]["Scheduled restart"], rows
    # not before its time, then within a few seconds (loop_wait is 10 s)
    pid_constant_until(replica, pid, epoch(at) - 0.2)
    wait_until(lambda: replica.postmaster_pid() not in (None, pid), 6,
               what="the restart at its time")
    late = time.time() - epoch(at)
    print(f"restarted {late:.2f} s after its time")
    # its timeout bounds the start: pg_ctl restart -t 60, the job's deadline 5 s more
    assert cluster.procs.log_contains(replica.name, "running restart (pid"), "no restart job"
    assert cluster.procs.log_contains(replica.name, "deadline 65 s)"), "timeout not applied"
    wait_until(lambda: scheduled_in_key(cluster, replica) is None, 10,
               what="the scheduled restart gone from the member key")
    assert "scheduled_restart" not in replica.api_json("/patroni")[1]
    assert cluster.wait_healthy(timeout=60)["leader"] == leader.name


def test_flush_cancels_and_nothing_happens(cluster):
    leader, replica = roles(cluster)
    no_schedule_anywhere(cluster)
    pid = replica.postmaster_pid()
    at = at_in(6)
    r = cluster.dbctl("restart", SCOPE, replica.name, "--scheduled", at.isoformat(), "--force")
    assert (r.returncode, r.stdout) == (0, f"{replica.name}: Restart scheduled\n"), r.stderr
    wait_until(lambda: scheduled_in_key(cluster, replica), 5, what="the member key")
    # flush needs a confirmation, then deletes it where there is one
    r = cluster.dbctl("flush", SCOPE, "restart")
    assert r.returncode == 1 and "not confirmed (use --force)" in r.stderr, r
    r = cluster.dbctl("flush", SCOPE, "restart", "--force")
    assert r.returncode == 0, r.stderr
    assert sorted(r.stdout.splitlines()) == sorted([
        f"No scheduled restart for member {leader.name}",
        f"{replica.name}: scheduled restart deleted"]), r.stdout
    wait_until(lambda: scheduled_in_key(cluster, replica) is None, 5,
               what="the member key without it")
    assert error_of(call(replica, "DELETE", "/restart"), 404) == "no restarts are scheduled"
    pid_constant_until(replica, pid, epoch(at) + 4)
    # flush switchover still works (nothing scheduled)
    r = cluster.dbctl("flush", SCOPE, "switchover", "--force")
    assert r.returncode == 1 and "no scheduled switchover" in r.stderr, r


def test_rest_errors_and_one_at_a_time(cluster):
    leader, replica = roles(cluster)
    no_schedule_anywhere(cluster)
    past = (datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(seconds=60))
    assert error_of(call(replica, "POST", "/restart", {"schedule": past.isoformat()}), 422) == \
        "Cannot schedule restart in the past"
    assert error_of(call(replica, "POST", "/restart", {"schedule": "next tuesday"}), 422) == \
        ("Unable to parse scheduled timestamp. It should be in an unambiguous format, "
         "e.g. ISO 8601")
    naive = at_in(600).replace(tzinfo=None).isoformat()
    assert error_of(call(replica, "POST", "/restart", {"schedule": naive}), 400) == \
        "Timezone information is mandatory for the scheduled restart"
    far = at_in(3600)
    for body, msg in (
            ({"timeout": "0"}, "Timeout should be a positive number of seconds"),
            ({"postgres_version": "10"},
             "Invalid PostgreSQL version format: X.Y or X.Y.Z is accepted: 10"),
            ({"role": "leader"}, "PostgreSQL role should be either primary or replica"),
            ({"nosuch": 1}, "Unknown filter for the scheduled restart: nosuch")):
        assert error_of(call(replica, "POST", "/restart",
                             {"schedule": far.isoformat(), **body}), 400) == msg
    assert scheduled_in_key(cluster, replica) is None, "nothing kept from a refused request"
    # one per member: 409 for the second; in the zone it was given in
    plus2 = far.astimezone(datetime.timezone(datetime.timedelta(hours=2)))
    assert text_of(call(replica, "POST", "/restart", {"schedule": plus2.isoformat()}), 202) == \
        "Restart scheduled"
    assert error_of(call(replica, "POST", "/restart", {"schedule": far.isoformat()}), 409) == \
        "Another restart is already scheduled"
    r = cluster.dbctl("restart", SCOPE, replica.name, "--scheduled", far.isoformat(), "--force")
    assert r.returncode == 0, r  # --force deletes the one there first, as patronictl
    wait_until(lambda: (scheduled_in_key(cluster, replica) or {}).get("schedule") ==
               far.isoformat(), 5, what="the replaced schedule")
    r = cluster.dbctl("restart", SCOPE, replica.name, "--scheduled", plus2.isoformat())
    assert r.returncode == 1 and "not confirmed" in r.stderr, r
    assert text_of(call(replica, "DELETE", "/restart"), 200) == "scheduled restart deleted"
    assert error_of(call(replica, "DELETE", "/restart"), 404) == "no restarts are scheduled"
    # paused: refused by the agent (Patroni's 500) and by dbctl
    r = cluster.dbctl("pause", "--wait", timeout=90)
    assert r.returncode == 0, r.stdout + r.stderr
    try:
        assert error_of(call(replica, "POST", "/restart", {"schedule": far.isoformat()}),
                        500) == "Can't schedule restart in the paused state"
        r = cluster.dbctl("restart", SCOPE, replica.name, "--scheduled", far.isoformat(),
                          "--force")
        assert r.returncode == 1 and "Can't schedule restart in the paused state" in r.stderr, r
    finally:
        r = cluster.dbctl("resume", "--wait", timeout=90)
        assert r.returncode == 0, r.stdout + r.stderr
    assert scheduled_in_key(cluster, replica) is None


def test_paused_at_its_time_runs_after_resume(cluster):
    """Patroni's should_run_scheduled_action(): not while paused; kept, and
    run after the resume while its time is less than 1.5 x loop_wait ago."""
    leader, replica = roles(cluster)
    no_schedule_anywhere(cluster)
    pid = replica.postmaster_pid()
    at = at_in(8)
    assert text_of(call(replica, "POST", "/restart", {"schedule": at.isoformat()}), 202) == \
        "Restart scheduled"
    r = cluster.dbctl("pause", "--wait", timeout=90)
    assert r.returncode == 0, r.stdout + r.stderr
    try:
        assert time.time() < epoch(at), "paused too late for this test"
        pid_constant_until(replica, pid, epoch(at) + 3)
        assert scheduled_in_key(cluster, replica), "kept while paused"
    finally:
        r = cluster.dbctl("resume", "--wait", timeout=90)
        assert r.returncode == 0, r.stdout + r.stderr
    assert time.time() < epoch(at) + 1.5 * LOOP_WAIT, "resumed too late for this test"
    wait_until(lambda: replica.postmaster_pid() not in (None, pid), 10,
               what="the restart after the resume")
    wait_until(lambda: scheduled_in_key(cluster, replica) is None, 10,
               what="the scheduled restart gone")
    cluster.wait_healthy(timeout=60)


def test_pg_version_filter(cluster):
    leader, replica = roles(cluster)
    no_schedule_anywhere(cluster)
    pid = replica.postmaster_pid()
    # running a newer version than 9.6.1: not restarted (Patroni's 503)
    assert error_of(call(replica, "POST", "/restart", {"postgres_version": "9.6.1"}), 503) == \
        "restart conditions are not satisfied"
    r = cluster.dbctl("restart", SCOPE, replica.name, "--pg-version", "9.6.1", "--force")
    assert r.returncode == 1 and "restart conditions are not satisfied" in r.stderr, r
    r = cluster.dbctl("restart", SCOPE, replica.name, "--pg-version", "banana", "--force")
    assert r.returncode == 1 and "Invalid PostgreSQL version: banana" in r.stderr, r
    assert replica.postmaster_pid() == pid
    # an older one than 99.0: restarted
    r = cluster.dbctl("restart", SCOPE, replica.name, "--pg-version", "99.0", "--force",
                      timeout=180)
    assert (r.returncode, r.stdout) == (0, f"{replica.name}: restarted successfully\n"), r.stderr
    assert replica.postmaster_pid() not in (None, pid)
    pid = replica.postmaster_pid()
    cluster.wait_healthy(timeout=60)
    # scheduled with a version it is not older than: cancelled at its time
    at = at_in(4)
    r = cluster.dbctl("restart", SCOPE, replica.name, "--scheduled", at.isoformat(),
                      "--pg-version", "9.6.1", "--force")
    assert r.returncode == 0, r.stderr
    wait_until(lambda: scheduled_in_key(cluster, replica), 5, what="the member key")
    r = cluster.dbctl("list", "-e", "-f", "tsv")
    assert f"{at.isoformat()} if version < 9.6.1" in r.stdout, r.stdout
    pid_constant_until(replica, pid, epoch(at) + 1)
    wait_until(lambda: scheduled_in_key(cluster, replica) is None, 8,
               what="the mismatching scheduled restart cancelled")
    pid_constant_until(replica, pid, time.time() + 2)


def test_any_picks_one_member(cluster):
    roles(cluster)
    no_schedule_anywhere(cluster)
    far = at_in(3600)
    r = cluster.dbctl("restart", SCOPE, "--any", "--scheduled", far.isoformat(), "--force")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert len(lines) == 1 and lines[0].endswith(": Restart scheduled"), lines
    picked = cluster.node(lines[0].split(":")[0])
    wait_until(lambda: scheduled_in_key(cluster, picked), 5, what="the member key")
    others = [n for n in cluster.nodes if n is not picked]
    assert all(scheduled_in_key(cluster, n) is None for n in others)
    r = cluster.dbctl("flush", SCOPE, "restart", picked.name, "--force")
    assert (r.returncode, r.stdout) == (0, f"{picked.name}: scheduled restart deleted\n"), r
