"""patronictl 3.0.2's options that dbctl copies, checked against the real
patronictl (Debian's patroni package) reading the same keys from a real etcd:
`list -f tsv|json|yaml` with and without `-e` and `-t`, the pretty table of
`list` and `topology` (Tags as YAML lines, or flow style in topology),
`history -f`; `dsn -m`; the cluster name given as a positional argument
(accepted when it is the scope, refused with exit 2 when --scope names
another, used instead of the scope of -c CONFIG as patronictl does);
`edit-config --replace` and `--quiet` (the stored config compared with what
patronictl's --replace stores); `query --password` typed on a terminal
against a real PostgreSQL that asks for a SCRAM password; several cluster
names (`list a b`, `topology a b`); the watch options -W and -w/--watch of
`list`, `topology` and `query`, both tools run side by side for a few
seconds and stopped by SIGINT or SIGTERM: rounds counted with wide
tolerances (no duration is asserted), each round's text compared, the
screen cleared on a terminal only, the exit status, an etcd outage in the
middle of a watch.

The clusters are made of keys only (lib/fake_cluster.py). Each patronictl
run costs 0.5-2 s of Python start-up, so the module runs it about twenty
times in all.
"""
import copy
import json
import os
import pty
import re
import signal
import subprocess
import threading
import time

import pytest

from lib.etcd_cluster import EtcdCluster
from lib.fake_cluster import SYSID, FakeCluster, dumps
from lib.pg import PgSet
from lib.procs import binary, free_port, wait_until
from lib.tty import run_tty

pytestmark = pytest.mark.concurrent

PATRONICTL = "/usr/bin/patronictl"
SCHEDULE = "2030-01-01T12:00:00+00:00"
TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d")


def patronictl(cfg, *args, input=None):
    r = subprocess.run([PATRONICTL, "-c", cfg, *args], capture_output=True, text=True,
                       input=input, timeout=60)
    assert r.returncode == 0, f"patronictl {' '.join(args)}: {r.returncode}\n{r.stdout}{r.stderr}"
    return r.stdout


def patronictl_config(tmp_path, etcd, scope="batman"):
    cfg = tmp_path / f"patronictl-{scope}.yml"
    cfg.write_text(f"scope: {scope}\nnamespace: /service/\netcd3:\n  hosts: {etcd.endpoints[0]}\n")
    return str(cfg)


@pytest.fixture
def etcd(procs, workdir):
    return EtcdCluster(procs, workdir).start()


def rich_cluster(etcd, scope="batman"):
    """n1 leads; n2 has two tags, a pending restart and lags 3 MB; n3 has a
    scheduled restart and replicates from n2 (a Patroni tag). n3 carries no
    replication_state, so dbctl's State column says "running" as
    patronictl 3.0.2 does."""
    fake = FakeCluster(etcd, scope)
    fake.members["n2"]["pending_restart"] = True
    fake.members["n3"].pop("replication_state")
    fake.members["n3"]["scheduled_restart"] = {
        "schedule": SCHEDULE, "postgres_version": "15.4",
        "postmaster_start_time": "2023-03-24 10:21:12.345 UTC"}
    fake.members["n3"]["tags"] = {"replicatefrom": "n2"}
    return fake.write()


def ok(p):
    assert p.returncode == 0, f"rc {p.returncode}\n{p.stdout}{p.stderr}"
    return p.stdout


# ---- list, topology, history: patronictl's formats ----

@pytest.mark.parametrize("extended", [False, True])
def test_list_formats_as_patronictl(etcd, tmp_path, extended):
    fake = rich_cluster(etcd)
    cfg = patronictl_config(tmp_path, etcd)
    ext = ["-e"] if extended else []
    for fmt in ("tsv", "json", "yaml"):
        want = patronictl(cfg, "list", "-f", fmt, *ext)
        got = ok(fake.dbctl("list", "-f", fmt, *ext))
        assert got == want, f"-f {fmt} {ext}:\npatronictl:\n{want}\ndbctl:\n{got}"
    # the three extra columns show here without -e too: a member has each
    lines = ok(fake.dbctl("list", "--format", "tsv")).splitlines()
    assert lines[0].split("\t") == ["Cluster", "Member", "Host", "Role", "State", "TL",
                                    "Lag in MB", "Pending restart", "Scheduled restart", "Tags"]
    assert lines[2].split("\t") == ["batman", "n2", "127.0.0.1:5433", "Replica", "running", "2",
                                    "3", "*", "", "{nofailover: true, zone: b}"]
    assert lines[3].split("\t")[8:] == [f"{SCHEDULE} if version < 15.4", "{replicatefrom: n2}"]
    rows = json.loads(ok(fake.dbctl("list", "-f", "json")))
    assert rows[0] == {"Cluster": "batman", "Member": "n1", "Host": "127.0.0.1:5432",
                       "Role": "Leader", "State": "running", "TL": 2}
    assert rows[1]["Tags"] == {"nofailover": True, "zone": "b"}
    assert rows[1]["Lag in MB"] == 3 and rows[1]["Pending restart"] == "*"


def test_list_columns_only_when_used_or_extended(etcd, tmp_path):
    fake = FakeCluster(etcd)
    del fake.members["n2"]["tags"]
    fake.members["n3"].pop("replication_state")
    fake.write()
    cfg = patronictl_config(tmp_path, etcd)
    base = ["Cluster", "Member", "Host", "Role", "State", "TL", "Lag in MB"]
    extra = ["Pending restart", "Scheduled restart", "Tags"]
    got = ok(fake.dbctl("list", "-f", "tsv"))
    assert got == patronictl(cfg, "list", "-f", "tsv")
    assert got.splitlines()[0].split("\t") == base
    got = ok(fake.dbctl("list", "-f", "tsv", "--extended"))
    assert got == patronictl(cfg, "list", "-f", "tsv", "--extended")
    assert got.splitlines()[0].split("\t") == base + extra
    assert got.splitlines()[1].split("\t") == ["batman", "n1", "127.0.0.1:5432", "Leader",
                                               "running", "2", "", "", "", ""]
    # the pretty table: Cluster is in the title, not a column
    header = ok(fake.dbctl("list", "-e")).splitlines()[1]
    assert [c.strip() for c in header.strip("|").split("|")] == base[1:] + extra


def test_list_timestamp(etcd, tmp_path):
    fake = rich_cluster(etcd)
    cfg = patronictl_config(tmp_path, etcd)
    for fmt in ("pretty", "tsv", "json"):
        got = ok(fake.dbctl("list", "-t", "-f", fmt)).splitlines()
        want = patronictl(cfg, "list", "-t", "-f", fmt).splitlines()
        assert TIMESTAMP.fullmatch(got[0]) and TIMESTAMP.fullmatch(want[0]), (got, want)
        if fmt != "pretty":
            assert got[1:] == want[1:], fmt
    got = ok(fake.dbctl("list", "--timestamp", "-o", "json")).splitlines()
    assert TIMESTAMP.fullmatch(got[0]) and json.loads(got[1])["leader"] == "n1"
    # --watch prints the line once per round, also with -t
    got = ok(fake.dbctl("list", "-t", "--watch", "1", "--count", "2")).splitlines()
    assert sum(bool(TIMESTAMP.fullmatch(line)) for line in got) == 2, got


def test_pretty_tables_as_patronictl(etcd, tmp_path):
    """The table under the title line is patronictl's, byte for byte: a
    rule under every row when a Tags cell spans lines (list), the tags on
    one line in topology (replicas indented under their upstream). dbctl's
    title adds the system identifier; its footer adds the synchronous mode
    line (synchronous_mode is on and nobody holds the sync key)."""
    fake = rich_cluster(etcd)
    cfg = patronictl_config(tmp_path, etcd)
    for verb in ("list", "topology"):
        want = patronictl(cfg, verb).splitlines()
        got = ok(fake.dbctl(verb)).splitlines()
        assert got[0].startswith(f"+ Cluster: batman ({SYSID}) ---"), got[0]
        assert len(got[0]) == len(want[0])
        assert got[1:len(want)] == want[1:], f"{verb}:\n" + "\n".join(want + got)
        assert got[len(want):] == [
            " Synchronous mode: on (no synchronous standby: replicating asynchronously)"]
    got = ok(fake.dbctl("list")).splitlines()
    # n2's second Tags line, a rule under every row
    assert got[6].startswith("|        |                |         |         |    |           |")
    assert got[6].split("|")[-2] == " zone: b           ", got
    assert got[5].startswith("| n2 ") and got[7].startswith("+--------+--"), got
    topo = ok(fake.dbctl("topology", "-f", "pretty")).splitlines()
    assert [line.split("|")[1].rstrip() for line in topo[3:6]] == [" n1", " + n2", "   + n3"]
    # -f tsv/json of topology: the same rows in tree order
    rows = json.loads(ok(fake.dbctl("topology", "-f", "json")))
    assert [r["Member"] for r in rows] == ["n1", "+ n2", "  + n3"]
    assert ok(fake.dbctl("topology", "-f", "tsv")).splitlines()[3].startswith("batman\t  + n3\t")
    # -o keeps dbctl's documents
    assert "members" in json.loads(ok(fake.dbctl("list", "-o", "json")))
    assert json.loads(ok(fake.dbctl("topology", "-o", "json")))["leader"] == "n1"


def test_history_formats_as_patronictl(etcd, tmp_path):
    fake = FakeCluster(etcd).write()
    fake.put("history", dumps([[1, 50331808, "no recovery target specified",
                                "2023-03-24T10:21:12.345678+00:00", "n1"],
                               [2, 67108992, "no recovery target specified",
                                "2023-03-24T11:00:00.000001+00:00"]]))
    cfg = patronictl_config(tmp_path, etcd)
    for fmt in ("tsv", "json", "yaml"):
        assert ok(fake.dbctl("history", "-f", fmt)) == patronictl(cfg, "history", "-f", fmt), fmt
    rows = json.loads(ok(fake.dbctl("history", "batman", "--format", "json")))
    assert rows[1] == {"TL": 2, "LSN": 67108992, "Reason": "no recovery target specified",
                       "Timestamp": "2023-03-24T11:00:00.000001+00:00", "New Leader": ""}
    assert ok(fake.dbctl("history", "-f", "pretty")) == ok(fake.dbctl("history"))
    assert json.loads(ok(fake.dbctl("history", "-o", "json")))[0][4] == "n1"


def test_format_usage_errors(etcd):
    fake = FakeCluster(etcd).write()
    for verb in ("list", "topology", "history"):
        p = fake.dbctl(verb, "-f", "xml")
        assert p.returncode == 2 and p.stdout == "", p
        name = "status" if verb == "list" else verb  # list is status's alias
        assert f'dbctl {name}: unknown format "xml" (pretty, tsv, json, yaml)' in p.stderr
    # dbctl's global -f (before the verb) stays --force
    p = fake.dbctl("-f", "list", "-f", "tsv")
    assert p.returncode == 0 and p.stdout.startswith("Cluster\tMember\t"), p


# ---- dsn -m ----

def test_dsn_member(etcd, tmp_path):
    fake = FakeCluster(etcd).write()
    cfg = patronictl_config(tmp_path, etcd)
    assert ok(fake.dbctl("dsn", "-m", "n2")) == "host=127.0.0.1 port=5433 connect_timeout=3\n"
    # without connect_timeout: patronictl's line
    got = ok(fake.dbctl("dsn", "batman", "--member", "n3", "--connect-timeout", "0"))
    assert got == patronictl(cfg, "dsn", "-m", "n3") == "host=127.0.0.1 port=5434\n"
    p = fake.dbctl("dsn", "-m", "n9")
    assert p.returncode == 1 and p.stdout == ""
    assert 'dbctl dsn: no member "n9" in cluster "batman"' in p.stderr
    p = fake.dbctl("dsn", "-m", "n2", "--role", "any")
    assert p.returncode == 2 and "mutually exclusive" in p.stderr
    # a member without an address
    fake.members["n4"] = {"state": "stopped", "role": "replica", "version": "3.0.2",
                          "api_url": "http://127.0.0.1:8011/patroni"}
    fake.write()
    p = fake.dbctl("dsn", "-m", "n4")
    assert p.returncode == 1 and "publishes no address" in p.stderr


# ---- the cluster name as a positional argument ----

READ_VERBS = [("list",), ("status",), ("topology",), ("history",), ("show-config",), ("dsn",),
              ("dsn", "-m", "n2")]


def test_cluster_name_argument(etcd, tmp_path):
    fake = FakeCluster(etcd).write()
    for args in READ_VERBS:
        with_name = ok(fake.dbctl(args[0], "batman", *args[1:]))
        assert with_name == ok(fake.dbctl(*args)), args
    # another name than --scope: refused before anything is read or written
    before = fake.get("config")
    for args in READ_VERBS + [
            ("edit-config", "--set", "ttl=40", "--force"), ("pause",), ("resume",),
            ("switchover", "--candidate", "n3", "--scheduled", SCHEDULE, "--force"),
            ("failover", "--candidate", "n3", "--force"), ("flush", "switchover", "--force"),
            ("query", "-c", "SELECT 1")]:
        p = fake.dbctl(args[0], "robin", *args[1:])
        assert p.returncode == 2, (args, p)
        name = "status" if args[0] == "list" else args[0]  # list is status's alias
        assert f'dbctl {name}: cluster name "robin" does not match --scope "batman"' \
            in p.stderr, (args, p.stderr)
    assert fake.get("config") == before and fake.get("failover") is None
    # with -c CONFIG the name is used instead of the config's scope, as
    # patronictl's get_dcs() does: "robin" is an empty cluster here
    cfg = patronictl_config(tmp_path, etcd)
    p = subprocess.run([binary("dbctl"), "-c", cfg, "list", "robin", "-f", "tsv"],
                       capture_output=True, text=True, env=fake.env(), timeout=30)
    assert ok(p) == patronictl(cfg, "list", "robin", "-f", "tsv") == \
        "Cluster\tMember\tHost\tRole\tState\tTL\tLag in MB\n"


def test_cluster_name_on_mutating_verbs(etcd):
    fake = FakeCluster(etcd).write()
    assert ok(fake.dbctl("-f", "pause", "batman")) == 'Cluster "batman" paused\n'
    assert json.loads(fake.get("config"))["pause"] is True
    assert ok(fake.dbctl("-f", "resume", "batman", "--wait")).startswith(
        'Cluster "batman" resumed\n')
    ok(fake.dbctl("edit-config", "batman", "-q", "--set", "ttl=40", "--force"))
    assert json.loads(fake.get("config"))["ttl"] == 40
    ok(fake.dbctl("switchover", "batman", "--candidate", "n3", "--scheduled", SCHEDULE,
                  "--force"))
    assert json.loads(fake.get("failover"))["scheduled_at"] == SCHEDULE
    # patronictl's `flush CLUSTER switchover`
    assert ok(fake.dbctl("flush", "batman", "switchover", "--force")) == \
        f"Cancelled the switchover scheduled at {SCHEDULE}\n"
    assert fake.get("failover") is None
    p = fake.dbctl("flush", "batman", "--force")
    assert p.returncode == 1 and "no scheduled switchover" in p.stderr
    # patronictl's `flush CLUSTER restart`: no member has a scheduled restart here
    p = fake.dbctl("flush", "batman", "restart", "--force")
    assert p.returncode == 0 and "No scheduled restart for member n1\n" in p.stdout, p
    p = fake.dbctl("flush", "batman", "restart", "n9", "--force")
    assert p.returncode == 1 and '"n9" is not a member' in p.stderr, p
    # restart/reload/reinit: a first name equal to the scope is the cluster's
    p = fake.dbctl("restart", "batman", "n9", "--force")
    assert p.returncode == 1 and '"n9" is not a member' in p.stderr
    assert '"batman"' not in p.stderr
    p = fake.dbctl("restart", "batman", "n1", "--role", "replica", "--force")
    assert p.returncode == 0 and p.stdout == "No member to restart\n", p
    p = fake.dbctl("reload", "batman", "n9", "--force")
    assert p.returncode == 1 and '"n9" is not a member' in p.stderr
    p = fake.dbctl("reinit", "batman", "--force")
    assert p.returncode == 2 and "name exactly one member" in p.stderr
    p = fake.dbctl("reinit", "batman", "n9", "--force")
    assert p.returncode == 1 and '"n9" is not a member' in p.stderr
    # another first name is a member's name, as before
    p = fake.dbctl("restart", "robin", "--force")
    assert p.returncode == 1 and '"robin" is not a member' in p.stderr


def test_cluster_name_that_is_also_a_member(etcd):
    """A lone name that is the scope and a member's too is the member."""
    fake = FakeCluster(etcd, scope="n1").write()
    p = fake.dbctl("restart", "n1", "--role", "replica", "--force")
    assert p.returncode == 0 and p.stdout == "No member to restart\n", p
    p = fake.dbctl("reinit", "n1", "n9", "--force")
    assert p.returncode == 1 and '"n9" is not a member' in p.stderr


# ---- edit-config --replace, --quiet ----

REPLACEMENT = {"ttl": 20, "loop_wait": 5, "retry_timeout": 5, "pause": None,
               "postgresql": {"parameters": {"work_mem": "8MB"}, "use_slots": False},
               "tags": {"x": "1"}}


def test_edit_config_replace_as_patronictl(etcd, tmp_path):
    """The same document through patronictl and dbctl leaves the same
    config key (the top-level null dropped, every old key not in the
    document gone)."""
    ours, theirs = FakeCluster(etcd, "a").write(), FakeCluster(etcd, "b").write()
    doc = tmp_path / "new.yaml"
    doc.write_text(dumps(REPLACEMENT))
    patronictl(patronictl_config(tmp_path, etcd, "b"), "edit-config", "--replace", str(doc),
               "--force", "-q")
    out = ok(ours.dbctl("edit-config", "a", "--replace", str(doc), "--force"))
    want = copy.deepcopy(REPLACEMENT)
    del want["pause"]
    assert json.loads(ours.get("config")) == json.loads(theirs.get("config")) == want
    lines = out.splitlines()
    assert lines[:2] == ["--- before", "+++ after"], out
    for line in ("-maximum_lag_on_failover: 1048576", "-synchronous_mode: true", "+ttl: 20",
                 "+    work_mem: 8MB", "-    max_connections: 100"):
        assert line in lines, (line, out)
    # the same again: "Not changed", and nothing at all with -q
    assert ok(ours.dbctl("edit-config", "--replace", str(doc), "--force")) == "Not changed\n"
    assert ok(ours.dbctl("edit-config", "--replace", str(doc), "-q", "--force")) == ""


def test_edit_config_replace_stdin_order_and_refusals(etcd, tmp_path):
    fake = FakeCluster(etcd).write()
    # --replace first, then --apply, then --set and -p (patronictl's order)
    patch = tmp_path / "patch.yaml"
    patch.write_text("loop_wait: 3\n")
    out = ok(fake.dbctl("edit-config", "--replace", "-", "--apply", str(patch), "--set",
                        "ttl=25", "-p", "work_mem=4MB", "--quiet", "--force",
                        input="ttl: 30\nloop_wait: 10\nretry_timeout: 10\n"))
    assert out == 'Config of cluster "batman" updated\n'
    assert json.loads(fake.get("config")) == {
        "ttl": 25, "loop_wait": 3, "retry_timeout": 10,
        "postgresql": {"parameters": {"work_mem": "4MB"}}}
    before = fake.get("config")
    bad = tmp_path / "bad.yaml"
    for text, message in (("ttl: 1\n", "ttl: must be an integer"),
                          ("- a\n- b\n", "is not a YAML or JSON mapping"),
                          ("", "is not a YAML or JSON mapping")):
        bad.write_text(text)
        p = fake.dbctl("edit-config", "--replace", str(bad), "--force")
        assert p.returncode in (1, 2) and message in p.stderr, (text, p)
    p = fake.dbctl("edit-config", "--replace", "-", "--apply", "-", "--force", input="{}")
    assert p.returncode == 2 and "cannot both read stdin" in p.stderr
    p = fake.dbctl("edit-config", "--replace", str(tmp_path / "missing.yaml"), "--force")
    assert p.returncode == 2 and "cannot read" in p.stderr
    # not confirmed without --force and a terminal: nothing written, quietly
    p = fake.dbctl("edit-config", "--replace", str(patch), "-q")
    assert p.returncode == 1 and p.stdout == "" and "not confirmed" in p.stderr
    assert fake.get("config") == before


# ---- query --password ----

@pytest.fixture
def pg(workdir):
    pgs = PgSet(workdir)
    try:
        n = pgs.init_primary("n1")
        n.execute("CREATE ROLE tester LOGIN PASSWORD 's3cret-pw'")
        with open(f"{n.data_dir}/pg_hba.conf", "w") as f:
            f.write("local all all trust\nhost all postgres 127.0.0.1/32 trust\n"
                    "host all all 127.0.0.1/32 scram-sha-256\n")
        n.execute("SELECT pg_reload_conf()")
        yield n
    finally:
        pgs.stop_all()


def test_query_password_prompt(etcd, pg):
    fake = FakeCluster(etcd)
    fake.members["n1"]["conn_url"] = f"postgres://127.0.0.1:{pg.port}/postgres"
    fake.write()
    argv = fake.argv("query", "batman", "-m", "n1", "-U", "tester", "--password", "-c",
                     "SELECT current_user AS who")
    env = fake.env({"PGPASSWORD": "wrong", "PGCONNECT_TIMEOUT": "5"})
    rc, out = run_tty(argv, [("Password: ", "s3cret-pw")], env=env)
    assert rc == 0, out
    assert "| tester |" in out, out
    assert "s3cret-pw" not in out, out  # not echoed
    rc, out = run_tty(argv, [("Password: ", "nope")], env=env)
    assert rc == 1 and 'password authentication failed for user "tester"' in out, out
    assert "nope" not in out
    # no terminal: refused before anything is asked or read
    p = subprocess.run(argv, capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL,
                       timeout=30)
    assert p.returncode == 2 and "--password: stdin is not a terminal" in p.stderr, p
    assert "Password" not in p.stdout
    # -W is patronictl query's watch flag, not psql's password flag: no
    # prompt, and the query runs again (with --count, twice)
    p = subprocess.run(fake.argv("query", "-m", "n1", "-W", "--count", "2", "-U", "postgres",
                                 "-o", "json", "-c", "SELECT current_user AS who"),
                       capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL,
                       timeout=30)
    assert p.returncode == 0, p
    assert [json.loads(line)["rows"] for line in p.stdout.splitlines()] == \
        [[{"who": "postgres"}]] * 2, p.stdout


# ---- several cluster names ----

def second_cluster(etcd, scope="robin"):
    """Another cluster in the same etcd: n2 leads, no n3, no tags."""
    fake = FakeCluster(etcd, scope)
    fake.leader = "n2"
    fake.members["n2"]["role"] = "master"
    del fake.members["n2"]["tags"]
    del fake.members["n3"]
    return fake.write()


def dbctl_cfg(cfg, *args, env=None):
    """dbctl reading patronictl's config file (no --scope to conflict with
    the names given)."""
    return subprocess.run([binary("dbctl"), "-c", cfg, *args], capture_output=True, text=True,
                          env=env or FakeCluster.env(), timeout=30)


def test_list_several_clusters(etcd, tmp_path):
    fake = rich_cluster(etcd)
    second_cluster(etcd)
    cfg = patronictl_config(tmp_path, etcd)
    for args in (("list", "batman", "robin", "-f", "tsv"), ("list", "robin", "batman", "-f", "json"),
                 ("list", "batman", "robin", "-f", "yaml", "-e")):
        want = patronictl(cfg, *args)
        assert ok(dbctl_cfg(cfg, *args)) == want, f"{args}:\n{want}"
    # one table per cluster, in the order named, each as patronictl draws it
    for verb in ("list", "topology"):
        want = patronictl(cfg, verb, "batman", "robin").splitlines()
        got = ok(dbctl_cfg(cfg, verb, "batman", "robin")).splitlines()
        titles = [i for i, line in enumerate(got) if line.startswith("+ Cluster: ")]
        want_titles = [i for i, line in enumerate(want) if line.startswith("+ Cluster: ")]
        assert len(titles) == len(want_titles) == 2, got
        assert got[titles[1]].startswith(f"+ Cluster: robin ({SYSID}) ")
        # below each title: patronictl's rows; dbctl's footer follows the table
        n_batman = want_titles[1]
        assert got[1:n_batman] == want[1:n_batman], "\n".join(got + want)
        assert got[titles[1] + 1:titles[1] + len(want) - n_batman] == want[n_batman + 1:], \
            "\n".join(got + want)
    # -t: one time line, then both clusters
    got = ok(dbctl_cfg(cfg, "list", "-t", "batman", "robin", "-f", "tsv")).splitlines()
    want = patronictl(cfg, "list", "-t", "batman", "robin", "-f", "tsv").splitlines()
    assert TIMESTAMP.fullmatch(got[0]) and got[1:] == want[1:], (got, want)
    # -o json: dbctl's document per cluster, one line each
    docs = [json.loads(line) for line in ok(dbctl_cfg(cfg, "list", "batman", "robin", "-o",
                                                      "json")).splitlines()]
    assert [(d["cluster"], d["leader"]) for d in docs] == [("batman", "n1"), ("robin", "n2")]
    # --etcd without --scope: the names alone
    p = subprocess.run([binary("dbctl"), "--etcd", etcd.endpoints[0], "list", "robin", "batman",
                        "-f", "tsv"], capture_output=True, text=True, env=fake.env(), timeout=30)
    assert ok(p) == patronictl(cfg, "list", "robin", "batman", "-f", "tsv")
    # --scope names one cluster: another name beside it is refused
    p = fake.dbctl("list", "batman", "robin")
    assert p.returncode == 2 and p.stdout == "", p
    assert 'cluster name "robin" does not match --scope "batman"' in p.stderr


# ---- -W and -w/--watch ----

CLEAR = b"\x1b[2J\x1b[1;1H"  # click.clear() on a terminal


class Watch:
    """A watching command run in the background: stdout collected (on a
    pseudo-terminal when tty), stopped by a signal a window after its first
    output, killed by PID if it outlives every bound."""

    def __init__(self, argv, env=None, tty=False):
        self.out = b""
        self.first = None  # time.monotonic() of the first output
        self.lock = threading.Lock()
        if tty:
            self.fd, slave = pty.openpty()
            self.p = subprocess.Popen(argv, stdout=slave, stderr=subprocess.PIPE, env=env,
                                      stdin=subprocess.DEVNULL, start_new_session=True)
            os.close(slave)
        else:
            self.p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      env=env, stdin=subprocess.DEVNULL, start_new_session=True)
            self.fd = self.p.stdout.fileno()
        self.err = b""
        self.threads = [threading.Thread(target=self._read, daemon=True),
                        threading.Thread(target=self._read_err, daemon=True)]
        for t in self.threads:
            t.start()

    def _read(self):
        while True:
            try:
                chunk = os.read(self.fd, 65536)
            except OSError:  # EIO: the terminal's last holder closed it
                chunk = b""
            if not chunk:
                return
            with self.lock:
                if self.first is None:
                    self.first = time.monotonic()
                self.out += chunk

    def _read_err(self):
        self.err = self.p.stderr.read()

    def output(self):
        with self.lock:
            return self.out

    def finish(self, timeout=30):
        try:
            self.p.wait(timeout=timeout)
        finally:
            if self.p.poll() is None:
                self.p.kill()
                self.p.wait(timeout=10)
        for t in self.threads:
            t.join(timeout=10)
        if self.p.stdout is None:
            os.close(self.fd)
        return self.p.returncode, self.output(), self.err.decode()


def run_watches(argvs, window, sig, env=None, tty=False):
    """Runs the commands side by side; each gets sig `window` seconds after
    its first output. [(returncode, stdout bytes, stderr text)]."""
    watches = [Watch(argv, env=env, tty=tty) for argv in argvs]
    try:
        for w in watches:
            wait_until(lambda w=w: w.first is not None or w.p.poll() is not None, 60,
                       what=f"first output of {w.p.args[0]}")
        pending = list(watches)
        deadline = time.monotonic() + window + 60
        while pending and time.monotonic() < deadline:
            for w in list(pending):
                if w.p.poll() is not None:
                    pending.remove(w)
                elif time.monotonic() >= w.first + window:
                    w.p.send_signal(sig)
                    pending.remove(w)
            time.sleep(0.05)
    finally:
        results = [w.finish() for w in watches]
    return results


def drop_cut(rounds):
    """The rounds less a last one that SIGINT cut short (patronictl's
    KeyboardInterrupt can come in the middle of a round; dbctl takes the
    signal between rounds only)."""
    if len(rounds) > 1 and rounds[-1] != rounds[0] and rounds[-1] == rounds[0][:len(rounds[-1])]:
        return rounds[:-1]
    return rounds


def timestamped_rounds(out):
    """-t output split at each time line, the time replaced."""
    rounds = []
    for line in out.decode().splitlines():
        if TIMESTAMP.fullmatch(line):
            rounds.append(["TIME"])
        else:
            assert rounds, out
            rounds[-1].append(line)
    return rounds


def test_list_watch_as_patronictl(etcd, tmp_path):
    """`list -w 0.5 -t -f tsv` for 3 s, then SIGINT: both tools redraw
    several times, the same text each round, no escape sequence (not a
    terminal), exit status 1 and "Aborted!" on stderr."""
    fake = rich_cluster(etcd)
    second_cluster(etcd)
    cfg = patronictl_config(tmp_path, etcd)
    args = ["list", "-w", "0.5", "-t", "-f", "tsv", "batman", "robin"]
    (prc, pout, perr), (drc, dout, derr) = run_watches(
        [[PATRONICTL, "-c", cfg, *args], [binary("dbctl"), "-c", cfg, *args]], 3,
        signal.SIGINT, env=fake.env())
    want, got = drop_cut(timestamped_rounds(pout)), timestamped_rounds(dout)
    # 3 s at 0.5 s plus the round's own time: about 6 for dbctl, fewer for
    # Python; a watch that ignored -w would show 1 and one at 2 s 2
    assert 3 <= len(got) <= 8 and 2 <= len(want) <= 8, (len(got), len(want))
    assert abs(len(got) - len(want)) <= 4, (len(got), len(want))
    assert all(r == want[0] for r in want) and all(r == want[0] for r in got), (got, want)
    assert want[0][1].startswith("Cluster\tMember") and len(want[0]) == 1 + 4 + 3
    assert b"\x1b" not in pout and b"\x1b" not in dout
    assert prc == drc == 1, (prc, drc, perr, derr)
    assert perr.endswith("\nAborted!\n") and derr == "\nAborted!\n", (perr, derr)


def test_watch_W_every_two_seconds_sigterm(etcd, tmp_path):
    """-W is patronictl's 2 s: in 3.5 s two rounds (one at 0 s, one at 2 s);
    SIGTERM ends both tools by the signal itself."""
    fake = rich_cluster(etcd)
    cfg = patronictl_config(tmp_path, etcd)
    args = ["list", "-W", "-f", "json"]
    (prc, pout, perr), (drc, dout, derr) = run_watches(
        [[PATRONICTL, "-c", cfg, *args], [binary("dbctl"), "-c", cfg, *args]], 3.5,
        signal.SIGTERM, env=fake.env())
    want, got = pout.decode().splitlines(), dout.decode().splitlines()
    # 0.5 s or 1 s would give 4 or more; no watch would exit 0 at once
    assert len(got) == 2 and 1 <= len(want) <= 3, (got, want)
    assert set(got) == set(want) and len(set(got)) == 1, (got, want)
    assert prc == drc == -signal.SIGTERM, (prc, drc, perr, derr)
    assert derr == "", derr


def test_watch_clears_a_terminal(etcd, tmp_path):
    """On a terminal each round starts with click.clear()'s sequence, the
    first too; topology -w takes it as list does. query never clears."""
    fake = rich_cluster(etcd)
    cfg = patronictl_config(tmp_path, etcd)
    args = ["topology", "-w", "0.5"]
    (prc, pout, perr), (drc, dout, derr) = run_watches(
        [[PATRONICTL, "-c", cfg, *args], [binary("dbctl"), "-c", cfg, *args]], 2.5,
        signal.SIGINT, env=fake.env(), tty=True)
    assert pout.startswith(CLEAR) and dout.startswith(CLEAR), (pout[:40], dout[:40])
    # a round cut by the signal may be empty (cleared, then stopped)
    want = drop_cut([r.decode().splitlines() for r in pout.split(CLEAR)[1:] if r])
    got = [r.decode().splitlines() for r in dout.split(CLEAR)[1:] if r]
    assert 2 <= len(got) <= 7 and 2 <= len(want) <= 7, (len(got), len(want))
    assert all(r == want[0] for r in want), want
    # each round: patronictl's tree below dbctl's title, then dbctl's footer
    assert [line.split("|")[1].rstrip() for line in want[0][3:6]] == [" n1", " + n2", "   + n3"]
    for r in got:
        assert r[0].startswith(f"+ Cluster: batman ({SYSID}) ") and len(r[0]) == len(want[0][0])
        assert r[1:len(want[0])] == want[0][1:], (r, want[0])
    assert prc == drc == 1 and "Aborted!" in perr and "Aborted!" in derr, (prc, drc)
    # query -w on a terminal: never cleared (no PostgreSQL behind n1's
    # address: each round reports its connection error and the watch goes on)
    fake.members["n1"]["conn_url"] = f"postgres://127.0.0.1:{free_port()}/postgres"
    fake.write()
    p = Watch(fake.argv("query", "-w", "0.3", "--count", "3", "-c", "SELECT 1"),
              env=fake.env({"PGCONNECT_TIMEOUT": "2"}), tty=True)
    rc, out, err = p.finish()
    assert rc == 1 and CLEAR not in out, (rc, out)
    assert err.count('dbctl query: cannot connect to "n1"') == 3, err


def test_watch_survives_etcd_outage(etcd, tmp_path):
    """etcd killed in the middle of `list -w`: each round reports the error
    and the watch goes on; once etcd is back the table comes back (patronictl
    too: it retries until etcd answers)."""
    fake = FakeCluster(etcd).write()
    p = Watch(fake.argv("list", "-w", "0.3", "-t", "-f", "tsv"), env=fake.env())
    try:
        wait_until(lambda: p.output().count(b"Cluster\tMember") >= 2, 30, what="two rounds")
        etcd.kill(etcd.members[0])
        before = p.output().count(b"Cluster\tMember")
        # rounds go on (time lines) without tables while etcd is down
        wait_until(lambda: len(timestamped_rounds(p.output())) >= before + 3, 60,
                   what="rounds while etcd is down")
        assert p.p.poll() is None
        m = etcd.members[0]
        m.proc = etcd.procs.spawn(m.name, etcd._argv(m))
        wait_until(lambda: p.output().count(b"Cluster\tMember") >= before + 2, 60,
                   what="tables again")
    finally:
        if p.p.poll() is None:
            p.p.send_signal(signal.SIGINT)
        rc, out, err = p.finish()
    assert rc == 1, (rc, err)
    assert 'dbctl status: cannot read cluster "batman" from etcd' in err, err
    assert err.endswith("\nAborted!\n"), err


def test_query_watch_as_patronictl(etcd, pg, tmp_path):
    """query -w 0.5 for 3 s: both tools run the SQL again each round on a
    fresh connection; SIGINT ends both with 1. An etcd error ends dbctl's
    query watch, as it ends patronictl's (its traceback after retrying)."""
    fake = FakeCluster(etcd)
    fake.members["n1"]["conn_url"] = f"postgres://127.0.0.1:{pg.port}/postgres"
    fake.write()
    cfg = patronictl_config(tmp_path, etcd)
    sql = "SELECT count(*) AS n FROM pg_stat_activity WHERE application_name = 'dbctl-x'"
    args = ["query", "-w", "0.5", "-U", "postgres", "-d", "postgres", "-c", sql]
    (prc, pout, perr), (drc, dout, derr) = run_watches(
        [[PATRONICTL, "-c", cfg, *args], [binary("dbctl"), "-c", cfg, *args, "-o", "json"]], 3,
        signal.SIGINT, env=fake.env())
    want = pout.decode().splitlines()
    got = [json.loads(line) for line in dout.decode().splitlines()]
    # patronictl's tsv: a header line and a row per round
    assert want[0::2] == ["n"] * len(want[0::2]) and want[1::2] == ["0"] * len(want[1::2]), want
    assert all(r["member"] == "n1" and r["rows"] == [{"n": "0"}] for r in got), got
    assert 3 <= len(got) <= 8 and 2 <= len(want) // 2 <= 8, (got, want)
    assert prc == drc == 1 and perr.endswith("\nAborted!\n") and derr == "\nAborted!\n", \
        (prc, drc, perr, derr)
    # etcd gone: dbctl's watch ends with 1 (after at least one round)
    p = Watch(fake.argv("query", "-W", "-U", "postgres", "-o", "json", "-c", "SELECT 1 AS one"),
              env=fake.env())
    try:
        wait_until(lambda: p.output().count(b'"one"') >= 1, 30, what="first round")
        etcd.kill(etcd.members[0])
        rc, out, err = p.finish(timeout=30)
    finally:
        if p.p.poll() is None:
            p.p.kill()
    assert rc == 1 and 'dbctl query: cannot read cluster "batman" from etcd' in err, (rc, err)
    assert "Aborted" not in err


def test_watch_usage(etcd):
    fake = FakeCluster(etcd).write()
    # -w 0 is one round, as patronictl's (0 is no interval)
    assert ok(fake.dbctl("list", "-w", "0", "-f", "tsv")) == ok(fake.dbctl("list", "-f", "tsv"))
    for verb in (["list"], ["topology"], ["query", "-c", "SELECT 1"]):
        for bad in (("-w", "-1"), ("-w", "x"), ("-w", "nan"), ("--count", "2"),
                    ("-W", "--count", "0")):
            p = fake.dbctl(*verb, *bad)
            assert p.returncode == 2 and p.stdout == "", (verb, bad, p)
            assert "--watch needs seconds" in p.stderr or "--count" in p.stderr, p.stderr
