"""postgresql.callbacks against a real three-node cluster: each callback is
a script that appends `<action> <role> <scope> <member>` to a file, as
Patroni 3.0.2 calls it (`<command> <action> <role> <scope>`). A first start
gives on_start, `dbctl reload` on_reload, `dbctl restart` on_restart, a
switchover on_role_change master on the new leader and replica on the old
one, a failover on_role_change master on the winner. A callback that outlives
postgresql.callback_timeout is killed with its children and logged, and a
slow on_role_change does not hold the promotion back. One cluster for the
module; the tests run in file order."""
import os
import time

import pytest

from conftest import started_cluster
from lib.pg import pid_alive
from lib.procs import wait_until

pytestmark = pytest.mark.concurrent

TTL = 4
TIMEOUT = 6  # postgresql.callback_timeout
ACTIONS = ("on_start", "on_stop", "on_restart", "on_reload", "on_role_change")

# $1 is the member (part of the configured command); Patroni appends
# $2 action, $3 role, $4 scope. A file sleep-<action> makes the callback
# run a child that sleeps that long (its pid in child-<action>-<member>).
SCRIPT = """#!/bin/sh
D={dir}
echo "$2 $3 $4 $1 $(date +%s.%N) start $$" >> "$D/callbacks.log"
echo "callback $2 on $1 says hello"
if [ -f "$D/sleep-$2" ]; then
    sleep "$(cat "$D/sleep-$2")" &
    echo $! > "$D/child-$2-$1"
    wait
fi
echo "$2 $3 $4 $1 $(date +%s.%N) end $$" >> "$D/callbacks.log"
"""


@pytest.fixture(scope="module")
def cluster():
    def configure(c):
        d = os.path.join(c.workdir, "callbacks")
        os.makedirs(d)
        os.chmod(d, 0o777)  # the agents run as postgres when the tests run as root
        script = os.path.join(d, "cb.sh")
        with open(script, "w") as f:
            f.write(SCRIPT.format(dir=d))
        os.chmod(script, 0o755)
        c.cb_dir = d
        for n in c.nodes:
            n.postgresql_yaml = (f"  callback_timeout: {TIMEOUT}\n  callbacks:\n" +
                                 "".join(f"    {a}: {script} {n.name}\n" for a in ACTIONS))
        c.nodes[0].postgresql_yaml += "    on_promote: /bin/true\n"  # not a Patroni callback
    with started_cluster("dbha-callbacks-", configure, n=3, ttl=TTL, loop_wait=1,
                         retry_timeout=1) as c:
        yield c


def events(c):
    """Every line the callbacks wrote, as dicts, in file order."""
    try:
        with open(os.path.join(c.cb_dir, "callbacks.log")) as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        return []
    out = []
    for line in lines:
        action, role, scope, member, ts, phase, pid = line.split()
        out.append(dict(action=action, role=role, scope=scope, member=member, ts=float(ts),
                        phase=phase, pid=int(pid)))
    return out


def started(c, member=None, action=None, role=None, after=0.0):
    return [e for e in events(c) if e["phase"] == "start" and e["ts"] >= after
            and (member is None or e["member"] == member)
            and (action is None or e["action"] == action)
            and (role is None or e["role"] == role)]


def wait_started(c, member, action, role, after=0.0, timeout=30):
    return wait_until(lambda: started(c, member, action, role, after), timeout, interval=0.1,
                      what=f"{action} {role} on {member}")[0]


def agent_log(c, node):
    with open(c.procs.log_path(node.name), "rb") as f:
        return f.read().decode(errors="replace")


def set_sleep(c, action, seconds):
    path = os.path.join(c.cb_dir, f"sleep-{action}")
    if seconds is None:
        if os.path.exists(path):
            os.unlink(path)
        return
    with open(path, "w") as f:
        f.write(str(seconds))


def test_first_start_gives_on_start_with_the_role(cluster):
    s = cluster.wait_healthy(timeout=60)
    leader = s["leader"]
    # the callbacks of the start may still be on their way
    for n in cluster.nodes:
        want = "master" if n.name == leader else "replica"
        e = wait_started(cluster, n.name, "on_start", want)
        assert e["scope"] == cluster.scope
    for n in cluster.nodes:
        # (the cluster's config key, written once bootstrapped, reloads the leader)
        mine = [e for e in started(cluster, n.name) if e["action"] != "on_reload"]
        assert [e["action"] for e in mine] == ["on_start"], mine
    assert 'unknown callback "on_promote" is never run' in agent_log(cluster, cluster.nodes[0])


def test_reload_gives_on_reload(cluster):
    s = cluster.wait_healthy(timeout=60)
    replica = next(m["name"] for m in s["members"] if m["name"] != s["leader"])
    t0 = time.time()
    p = cluster.dbctl("reload", replica, "--force")
    assert p.returncode == 0, p.stderr
    wait_started(cluster, replica, "on_reload", "replica", after=t0)
    code, _ = cluster.node(s["leader"]).api("/reload", method="POST")
    assert code == 202
    wait_started(cluster, s["leader"], "on_reload", "master", after=t0)


def test_restart_gives_on_restart_only(cluster):
    s = cluster.wait_healthy(timeout=60)
    replica = next(m["name"] for m in s["members"] if m["name"] != s["leader"])
    pid = cluster.node(replica).postmaster_pid()
    t0 = time.time()
    p = cluster.dbctl("restart", replica, "--force", timeout=120)
    assert p.returncode == 0, p.stderr + p.stdout
    assert cluster.node(replica).postmaster_pid() != pid  # it did restart
    wait_started(cluster, replica, "on_restart", "replica", after=t0)
    time.sleep(1.5)  # a loop or so: nothing else comes for it
    assert [e["action"] for e in started(cluster, replica, after=t0)
            if e["action"] != "on_reload"] == ["on_restart"]


def test_callback_replaced_then_timed_out_with_its_process_group(cluster):
    s = cluster.wait_healthy(timeout=60)
    node = cluster.node(s["leader"])
    child_file = os.path.join(cluster.cb_dir, f"child-on_reload-{node.name}")

    def reload_and_child(after):
        if os.path.exists(child_file):
            os.unlink(child_file)
        code, _ = node.api("/reload", method="POST")
        assert code == 202
        e = wait_started(cluster, node.name, "on_reload", "master", after=after)
        wait_until(lambda: os.path.exists(child_file) and open(child_file).read().strip(), 10,
                   what="the callback's child pid")
        return e, int(open(child_file).read())

    set_sleep(cluster, "on_reload", 60)
    try:
        t0 = time.time()
        first, first_child = reload_and_child(t0)
        assert pid_alive(first["pid"]) and pid_alive(first_child)
        # a second on_reload kills the first one, children included (Patroni's
        # OnReloadExecutor), and runs
        t1 = time.time()
        second, second_child = reload_and_child(t1)
        wait_until(lambda: not pid_alive(first["pid"]) and not pid_alive(first_child), 5,
                   what="the replaced callback and its child gone")
        # logged when the agent reaps it, which may come a moment after it is gone
        wait_until(lambda: f"(pid {first['pid']}) killed after" in agent_log(cluster, node)
                   and "a newer callback replaced it" in agent_log(cluster, node), 10,
                   interval=0.2, what="the replaced callback's kill in the agent's log")
        # the second one outlives postgresql.callback_timeout: killed and logged
        assert pid_alive(second["pid"]) and pid_alive(second_child)
        text = f"(pid {second['pid']}) killed after"
        wait_until(lambda: text in agent_log(cluster, node), TIMEOUT + 10, interval=0.2,
                   what="the timeout kill in the agent's log")
        assert time.time() - t1 >= TIMEOUT - 1
        log = agent_log(cluster, node)
        assert f"outlived postgresql.callback_timeout ({TIMEOUT} s)" in log
        assert f"callback on_reload on {node.name} says hello" in log  # its output
        # the whole process group went: the script and the sleep it started
        wait_until(lambda: not pid_alive(second["pid"]) and not pid_alive(second_child), 5,
                   what="the callback and its child gone")
        ended = [x for x in events(cluster) if x["phase"] == "end"]
        assert not [x for x in ended if x["pid"] in (first["pid"], second["pid"])]
    finally:
        set_sleep(cluster, "on_reload", None)


def test_switchover_role_change_slow_callback_does_not_delay_promotion(cluster):
    s = cluster.wait_healthy(timeout=60)
    old = cluster.node(s["leader"])
    new = cluster.node(next(m["name"] for m in s["members"] if m["name"] != old.name))
    set_sleep(cluster, "on_role_change", 30)
    try:
        t0 = time.time()
        p = cluster.dbctl("switchover", "--leader", old.name, "--candidate", new.name, "--force")
        assert p.returncode == 0, p.stderr + p.stdout

        def writes():
            try:
                new.sql("CREATE TABLE IF NOT EXISTS cb_probe (x int); INSERT INTO cb_probe VALUES (1)")
                return True
            except Exception:  # noqa: BLE001 - not the primary yet
                return False
        wait_until(writes, 30, interval=0.1, what=f"{new.name} accepting writes")
        t_writes = time.time()
        # the 30 s on_role_change started before and still runs
        e = wait_started(cluster, new.name, "on_role_change", "master", after=t0, timeout=1)
        assert pid_alive(e["pid"]), "the slow callback ended before the writes were accepted"
        assert t_writes - t0 < 20
        print(f"switchover: writes on {new.name} after {t_writes - t0:.2f} s, "
              f"on_role_change master started after {e['ts'] - t0:.2f} s and still runs")
        # the old leader: on_stop while demoted, then on_role_change replica
        stop = wait_started(cluster, old.name, "on_stop", "demoted", after=t0)
        change = wait_started(cluster, old.name, "on_role_change", "replica", after=t0)
        assert stop["ts"] <= change["ts"]
        assert not started(cluster, old.name, "on_start", after=t0)
        assert not started(cluster, new.name, "on_start", after=t0)
        # the slow one is killed at postgresql.callback_timeout, not waited for
        text = f"(pid {e['pid']}) killed after"
        wait_until(lambda: text in agent_log(cluster, new), TIMEOUT + 10, interval=0.2,
                   what="the slow on_role_change killed at its timeout")
    finally:
        set_sleep(cluster, "on_role_change", None)


def test_failover_gives_on_role_change_on_the_winner(cluster):
    s = cluster.wait_healthy(timeout=60)
    old = cluster.node(s["leader"])
    t0 = time.time()
    old.kill_with_postgres()

    def new_leader():
        st = cluster.status()
        return st["leader"] if st["leader"] and st["leader"] != old.name else None
    winner = wait_until(new_leader, TTL + 30, interval=0.2, what="a new leader")
    wait_started(cluster, winner, "on_role_change", "master", after=t0)
    other = next(n.name for n in cluster.nodes if n.name not in (old.name, winner))
    time.sleep(1.5)
    # the other replica stays a replica: at most an on_reload (re-pointed)
    assert {e["action"] for e in started(cluster, other, after=t0)} <= {"on_reload"}
