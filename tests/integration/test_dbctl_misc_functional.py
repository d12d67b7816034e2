"""The functional half of test_dbctl_misc.py: dbctl status -o yaml,
topology, the failover checks, scheduled switchover and flush, remove,
version and --help against a cluster made of keys only (exact values, no
agent), each test on an etcd of its own (free ports, its temp dir). Nothing
here measures time, so these run in the concurrent pass; test_dbctl_misc.py
keeps `status --watch --count` (it times the pauses between rounds) and the
tests on its real three-node cluster."""
import json
import subprocess
from datetime import datetime, timedelta, timezone

import pytest
import yaml

from lib.fake_cluster import dumps, member
from lib.procs import binary, free_port, wait_until
from lib.tty import run_tty
import test_dbctl_misc

pytestmark = pytest.mark.concurrent


# the fixtures of the timed half: an etcd of the test's own, keys on it
etcd = test_dbctl_misc.etcd
fake = test_dbctl_misc.fake


def iso_in(seconds):
    t = datetime.now(timezone.utc) + timedelta(seconds=seconds)
    return t.replace(microsecond=0)


# ---- status ----

SCHEDULED = {"leader": "n1", "member": "n3", "scheduled_at": "2030-01-01T12:00:00+00:00"}


def test_status_yaml_shows_a_scheduled_switchover(fake):
    fake.write()
    fake.put("failover", dumps(SCHEDULED))
    p = fake.dbctl("status", "-o", "yaml")
    assert p.returncode == 0, p.stderr
    y = yaml.safe_load(p.stdout)
    p = fake.dbctl("status", "-o", "json")
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout) == y
    assert y["scheduled_switchover"] == {"at": "2030-01-01T12:00:00+00:00", "from": "n1",
                                         "to": "n3"}
    assert [(m["name"], m["role"], m["state"], m["lag_bytes"]) for m in y["members"]] == [
        ("n1", "primary", "running", 0), ("n2", "replica", "running", 3146048),
        ("n3", "replica", "streaming", 0)]
    p = fake.dbctl("status")
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines()[-3:] == [
        " Switchover scheduled at: 2030-01-01T12:00:00+00:00",
        "                    from: n1",
        "                      to: n3"], p.stdout
    # without one, the field is absent (DESIGN.md's object exactly)
    fake.delete("failover")
    p = fake.dbctl("status", "-o", "yaml")
    assert "scheduled_switchover" not in yaml.safe_load(p.stdout)


# ---- topology ----

def test_topology_tree_with_replicatefrom(fake):
    fake.members["n3"]["tags"] = {"replicatefrom": "n2"}
    fake.members["n4"] = member(5435, 8011, xlog=50331968, tags={"replicatefrom": "nosuch"})
    fake.write()
    p = fake.dbctl("topology")
    assert p.returncode == 0, p.stderr
    rows = [[c.strip() for c in line.split("|")[1:-1]] for line in p.stdout.splitlines()[3:7]]
    assert [r[0] for r in rows] == ["n1", "+ n2", "+ n3", "+ n4"], p.stdout
    # indentation shows the depth: n3 streams from n2
    assert "|   + n3 " in p.stdout, p.stdout
    assert [r[2] for r in rows] == ["Leader", "Replica", "Replica", "Replica"]
    assert [r[5] for r in rows] == ["", "3", "0", "0"]
    # no topology key (a Patroni cluster): the document built from the members
    p = fake.dbctl("topology", "-o", "json")
    assert p.returncode == 0, p.stderr
    t = json.loads(p.stdout)
    assert (t["version"], t["scope"], t["leader"]) == (0, "batman", "n1")
    assert t["primary"]["name"] == "n1" and t["primary"]["port"] == 5432
    assert [(r["name"], r["port"], r["state"], r["lag_bytes"], r["sync"], r["noloadbalance"])
            for r in t["replicas"]] == [("n2", 5433, "running", 3146048, False, False),
                                        ("n3", 5434, "streaming", 0, False, False),
                                        ("n4", 5435, "running", 0, False, False)]
    assert t["replicas"][1]["tags"] == {"replicatefrom": "n2"}
    p = fake.dbctl("topology", "-o", "yaml")
    assert yaml.safe_load(p.stdout) == t
    # the leader's key is printed as written
    doc = {"version": 7, "scope": "batman", "leader": "n1", "timeline": 2,
           "primary": {"name": "n1", "host": "127.0.0.1", "port": 5432, "api_url": None},
           "replicas": [], "updated": "2026-11-27T13:00:00.000000+00:00"}
    fake.put("topology", json.dumps(doc))
    assert json.loads(fake.dbctl("topology", "-o", "json").stdout) == doc


def test_topology_loop_and_no_leader(fake):
    fake.members["n2"]["tags"] = {"replicatefrom": "n3"}
    fake.members["n3"]["tags"] = {"replicatefrom": "n2"}
    fake.write()
    p = fake.dbctl("topology")
    assert p.returncode == 0, p.stderr
    rows = [[c.strip() for c in line.split("|")[1:-1]] for line in p.stdout.splitlines()[3:6]]
    # the loop is broken where it is found first: n2 hangs under the leader
    assert [r[0] for r in rows] == ["n1", "+ n2", "+ n3"], p.stdout
    assert "|   + n3 " in p.stdout, p.stdout
    fake.delete("leader")
    p = fake.dbctl("topology")
    rows = [[c.strip() for c in line.split("|")[1:-1]] for line in p.stdout.splitlines()[3:6]]
    assert [r[0] for r in rows] == ["n1", "n2", "+ n3"], p.stdout
    t = json.loads(fake.dbctl("topology", "-o", "json").stdout)
    assert (t["leader"], t["primary"], t["timeline"]) == (None, None, None)
    assert [r["name"] for r in t["replicas"]] == ["n1", "n2", "n3"]


# ---- failover checks (no agent: nothing takes over) ----

def test_failover_refusals_and_withdrawal(fake):
    fake.members["n4"] = member(5435, 8011, state="stopped")
    fake.members["n5"] = member(5436, 8012, xlog=50331968 - 4 * 1048576)
    fake.write()
    cases = [("nosuch", "no such member"), ("n1", "it is the current leader"),
             ("n2", "it is tagged nofailover"), ("n4", "it is not running")]
    for name, why in cases:
        for force in ((), ("--force",)):
            p = fake.dbctl("failover", "--candidate", name, *force)
            assert p.returncode == 1, (name, force, p.stderr)
            assert p.stderr == f'dbctl failover: cannot fail over to "{name}": {why}\n'
    p = fake.dbctl("failover", "--candidate", "n5")
    assert p.returncode == 1
    assert p.stderr == ('dbctl failover: cannot fail over to "n5": it lags 4194304 bytes behind '
                        "the leader's last position (maximum_lag_on_failover is 1048576); "
                        "--force to fail over anyway\n")
    # a candidate close enough still needs a confirmation off a terminal
    p = fake.dbctl("failover", "--candidate", "n3")
    assert p.returncode == 1 and "not confirmed (use --force)" in p.stderr
    assert fake.get("failover") is None
    # --force passes the lag; nobody acts on it here, so it is withdrawn
    p = fake.dbctl("failover", "--candidate", "n5", "--force", "--timeout", "1")
    assert p.returncode == 1
    assert "warning" in p.stderr and "lags 4194304 bytes" in p.stderr
    assert 'did not take over within 1 s; the request was withdrawn' in p.stderr
    assert fake.get("failover") is None
    for bad in ((), ("--candidate",), ("--candidate", "n3", "--timeout", "0"), ("n3",)):
        assert fake.dbctl("failover", *bad).returncode == 2, bad


def test_failover_writes_member_only(fake):
    fake.write()
    # the candidate "takes over" as soon as the key is written
    with subprocess.Popen(fake.argv("failover", "--candidate", "n3", "--force", "--timeout",
                                    "20"), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True, env=fake.env()) as p:
        try:
            value = wait_until(lambda: fake.get("failover"), 10, what="the failover key")
            assert json.loads(value) == {"member": "n3"}
            assert '"leader"' not in value
            fake.put("leader", "n3")
            out, err = p.communicate(timeout=20)
        finally:
            if p.poll() is None:
                p.kill()
    assert p.returncode == 0, err
    assert out.startswith('Failed over to "n3" in ')


# ---- scheduled switchover and flush ----

def test_scheduled_switchover_and_flush(fake):
    fake.write()
    at = iso_in(3600)
    naive = at.replace(tzinfo=None).isoformat()
    p = fake.dbctl("switchover", "--candidate", "n3", "--scheduled", naive, "--force")
    assert p.returncode == 0, p.stderr
    want = at.isoformat()  # no timezone means UTC; written as Patroni writes it
    assert want.endswith("+00:00")
    assert p.stdout == f'Switchover scheduled at {want} from "n1" to "n3"\n'
    assert json.loads(fake.get("failover")) == {"leader": "n1", "member": "n3",
                                                "scheduled_at": want}
    s = json.loads(fake.dbctl("status", "-o", "json").stdout)
    assert s["scheduled_switchover"] == {"at": want, "from": "n1", "to": "n3"}
    assert fake.dbctl("status").stdout.splitlines()[-3] == f" Switchover scheduled at: {want}"
    # one at a time
    p = fake.dbctl("switchover", "--candidate", "n3", "--scheduled", naive, "--force")
    assert p.returncode == 1
    assert f"a switchover is already scheduled at {want}" in p.stderr
    # flush needs a confirmation, then deletes exactly that key
    p = fake.dbctl("flush")
    assert p.returncode == 1 and "not confirmed (use --force)" in p.stderr
    assert fake.get("failover") is not None
    p = fake.dbctl("flush", "--force")
    assert p.returncode == 0, p.stderr
    assert p.stdout == f"Cancelled the switchover scheduled at {want}\n"
    assert fake.get("failover") is None
    p = fake.dbctl("flush", "--force")
    assert p.returncode == 1
    assert p.stderr == 'dbctl flush: no scheduled switchover in cluster "batman"\n'
    # a switchover in progress (no scheduled_at) is not flushed
    fake.put("failover", dumps({"leader": "n1", "member": "n3"}))
    p = fake.dbctl("flush", "switchover", "--force")
    assert p.returncode == 1
    assert fake.get("failover") is not None


def test_scheduled_time_forms(fake):
    fake.write()
    at = iso_in(7200)
    local = at.astimezone(timezone(timedelta(hours=2)))
    p = fake.dbctl("switchover", "--candidate", "n3", "--scheduled",
                   local.strftime("%Y-%m-%dT%H:%M:%S.123456+0200"), "--force")
    assert p.returncode == 0, p.stderr
    assert json.loads(fake.get("failover"))["scheduled_at"] == at.isoformat()
    fake.delete("failover")
    p = fake.dbctl("switchover", "--candidate", "n3", "--scheduled",
                   at.strftime("%Y-%m-%d %H:%MZ"), "--force")
    assert p.returncode == 0, p.stderr
    assert json.loads(fake.get("failover"))["scheduled_at"] == \
        at.replace(second=0).isoformat()
    fake.delete("failover")
    past = iso_in(-60).isoformat()
    p = fake.dbctl("switchover", "--candidate", "n3", "--scheduled", past, "--force")
    assert p.returncode == 1 and "is in the past" in p.stderr
    for bad in ("tomorrow", "2030-02-30T10:00:00", "2030-01-01T25:00:00", "2030-01-01",
                "2030-01-01T10:00:00+25:00", "2030-01-01T10:00:00 UTC"):
        p = fake.dbctl("switchover", "--candidate", "n3", "--scheduled", bad, "--force")
        assert p.returncode == 2, (bad, p.stderr)
    # refused while paused, as patronictl refuses it
    fake.config["pause"] = True
    fake.put("config", dumps(fake.config))
    p = fake.dbctl("switchover", "--candidate", "n3", "--scheduled", at.isoformat(), "--force")
    assert p.returncode == 1 and "paused" in p.stderr
    assert fake.get("failover") is None


# ---- remove ----

def test_remove(fake):
    fake.write()
    p = fake.dbctl("remove", "other", "--force")
    assert p.returncode == 2
    assert '"other" is not the cluster\'s name (the scope is "batman")' in p.stderr
    p = fake.dbctl("remove", "batman")
    assert p.returncode == 1
    assert p.stderr == ('dbctl remove: cluster "batman" has a leader ("n1"): stop its agents '
                        "first, or use --force\n")
    before = fake.keys()
    assert "leader" in before and "members/n1" in before
    fake.delete("leader")
    p = fake.dbctl("remove", "batman")
    assert p.returncode == 1 and "not confirmed (use --force)" in p.stderr
    assert fake.keys() == [k for k in before if k != "leader"]
    # on a terminal: the name, then the phrase; a wrong answer removes nothing
    rc, out = run_tty(fake.argv("remove", "batman"),
                      [("cluster name to remove: ", "batman"),
                       ('"Yes I am aware"', "yes")], env=fake.env())
    assert rc == 1, out
    assert fake.keys() == [k for k in before if k != "leader"]
    rc, out = run_tty(fake.argv("remove", "batman"),
                      [("cluster name to remove: ", "batman"),
                       ('"Yes I am aware"', "Yes I am aware")], env=fake.env())
    assert rc == 0, out
    assert f'Removed {len(before) - 1} keys of cluster "batman"' in out
    assert fake.keys() == []
    # with neither --scope nor -c, the argument is the cluster
    fake.write()
    p = subprocess.run([binary("dbctl"), "--etcd", fake.etcd.endpoints[0], "remove", "batman",
                        "--force"], capture_output=True, text=True, env=fake.env(), timeout=30)
    assert p.returncode == 0, p.stderr
    assert fake.keys() == []


def test_version_without_a_cluster_and_unreachable_agents(fake):
    p = subprocess.run([binary("dbctl"), "version"], capture_output=True, text=True,
                       timeout=30)
    assert p.returncode == 0 and p.stdout.startswith("dbctl version ")
    for name in fake.members:
        fake.members[name]["api_url"] = f"http://127.0.0.1:{free_port()}/patroni"
    fake.write()
    p = fake.dbctl("version")
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines()[2:] == ["n1: unreachable", "n2: unreachable",
                                         "n3: unreachable"]
    p = subprocess.run([binary("dbctl"), "-o", "json", "--etcd", fake.etcd.endpoints[0],
                        "--scope", "batman", "version", "n2"], capture_output=True, text=True,
                       env=fake.env(), timeout=30)
    assert p.returncode == 0, p.stderr
    v = json.loads(p.stdout)
    assert v["members"] == [{"name": "n2", "agent": None, "version": None, "postgresql": None}]
    assert fake.dbctl("version", "nosuch").returncode == 1


def test_help_for_every_new_verb():
    for verb in ("topology", "failover", "flush", "edit-config", "query", "remove", "version",
                 "switchover", "status"):
        p = subprocess.run([binary("dbctl"), verb, "--help"], capture_output=True, text=True,
                           timeout=30)
        assert p.returncode == 0, (verb, p.stderr)
        assert p.stdout.startswith("Usage: dbctl "), p.stdout
        assert f" {verb} " in p.stdout.splitlines()[0]
    p = subprocess.run([binary("dbctl"), "--help"], capture_output=True, text=True, timeout=30)
    for verb in ("topology", "failover", "flush", "edit-config", "query", "remove"):
        assert f"\n  {verb} " in p.stdout, verb
