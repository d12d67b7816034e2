"""dbctl status (alias list) against a real etcd holding the keys Patroni 3.0.2
writes for a three-member cluster: the exact -o json object from DESIGN.md,
the table, YAML, -c CONFIG, a namespace, an empty cluster, etcd down (exit 1)
and usage errors (exit 2). The keys are written through the v3 JSON gateway
with plain HTTP PUTs, byte for byte as Patroni's json.dumps(separators=(',',
':')) produces them."""
import json
import os
import signal
import subprocess
import time

import pytest
import yaml

from lib.etcd_cluster import EtcdCluster, b64
from lib.procs import binary, free_port

pytestmark = pytest.mark.concurrent

SCOPE = "batman"
SYSID = "7214324235435253233"

N1 = {"conn_url": "postgres://127.0.0.1:5432/postgres", "api_url": "http://127.0.0.1:8008/patroni",
      "state": "running", "role": "master", "version": "3.0.2", "xlog_location": 50331968,
      "timeline": 2}
N2 = {"conn_url": "postgres://127.0.0.1:5433/postgres", "api_url": "http://127.0.0.1:8009/patroni",
      "state": "running", "role": "replica", "version": "3.0.2",
      "tags": {"nofailover": True, "zone": "b"}, "xlog_location": 47185920, "timeline": 2}
N3 = {"conn_url": "postgres://127.0.0.1:5434/postgres", "api_url": "http://127.0.0.1:8010/patroni",
      "state": "running", "role": "replica", "version": "3.0.2", "xlog_location": 50331968,
      "timeline": 2, "replication_state": "streaming"}
CONFIG = {"ttl": 30, "loop_wait": 10, "retry_timeout": 10, "maximum_lag_on_failover": 1048576,
          "synchronous_mode": True,
          "postgresql": {"use_pg_rewind": True, "use_slots": True,
                         "parameters": {"max_connections": 100}}}

EXPECTED = {
    "cluster": SCOPE,
    "leader": "n1",
    "paused": False,
    "members": [
        {"name": "n1", "host": "127.0.0.1", "port": 5432, "role": "primary", "state": "running",
         "timeline": 2, "lag_bytes": 0, "lag_seconds": 0, "tags": {}},
        {"name": "n2", "host": "127.0.0.1", "port": 5433, "role": "replica", "state": "running",
         "timeline": 2, "lag_bytes": 3146048, "lag_seconds": None,
         "tags": {"nofailover": True, "zone": "b"}},
        {"name": "n3", "host": "127.0.0.1", "port": 5434, "role": "sync_standby",
         "state": "streaming", "timeline": 2, "lag_bytes": 0, "lag_seconds": None, "tags": {}},
    ],
}


def dumps(v):
    return json.dumps(v, separators=(",", ":"))


def put(etcd, key, value, lease=None):
    body = {"key": b64(key), "value": b64(value)}
    if lease:
        body["lease"] = str(lease)
    status, answer = etcd.api("kv/put", body)
    assert status == 200, answer


def write_patroni_cluster(etcd, namespace="/service/"):
    prefix = f"{namespace}{SCOPE}/"
    status, grant = etcd.api("lease/grant", {"TTL": 30})
    assert status == 200, grant
    lease = grant["ID"]
    put(etcd, prefix + "initialize", SYSID)
    put(etcd, prefix + "config", dumps(CONFIG))
    put(etcd, prefix + "leader", "n1", lease)
    # members in a scrambled order: the output is sorted by name
    put(etcd, prefix + "members/n3", dumps(N3), lease)
    put(etcd, prefix + "members/n1", dumps(N1), lease)
    put(etcd, prefix + "members/n2", dumps(N2), lease)
    put(etcd, prefix + "status", dumps({"optime": 50331968}))
    put(etcd, prefix + "sync", dumps({"leader": "n1", "sync_standby": "n3"}))
    put(etcd, prefix + "history",
        dumps([[1, 50331808, "no recovery target specified", "2023-03-24T10:21:12.345678+00:00",
                "n1"]]))


def dbctl(*args, timeout=30):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PATRONI_", "DBHA_"))}
    return subprocess.run([binary("dbctl"), *args], capture_output=True, text=True, env=env,
                          timeout=timeout)


@pytest.fixture
def etcd(procs, workdir):
    return EtcdCluster(procs, workdir).start()


def test_status_json_exact(etcd):
    write_patroni_cluster(etcd)
    for verb in ("status", "list"):
        p = dbctl("--etcd", etcd.endpoints[0], "--scope", SCOPE, verb, "-o", "json")
        assert p.returncode == 0, p.stderr
        assert p.stdout.count("\n") == 1, p.stdout
        assert json.loads(p.stdout) == EXPECTED
    # the global -o works too
    p = dbctl("-o", "json", "--etcd", etcd.endpoints[0], "--scope", SCOPE, "status")
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout) == EXPECTED


def test_status_table(etcd):
    write_patroni_cluster(etcd)
    p = dbctl("--etcd", etcd.endpoints[0], "--scope", SCOPE, "status")
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert lines[0].startswith(f"+ Cluster: {SCOPE} ({SYSID}) "), p.stdout
    # Tags shows as n2 has some (patronictl's output_members), as YAML lines
    # with a rule under every row
    assert lines[1].split("|")[1:-1] == [" Member ", " Host           ", " Role         ",
                                         " State     ", " TL ", " Lag in MB ",
                                         " Tags             "], p.stdout
    rows = [[c.strip() for c in line.split("|")[1:-1]] for line in lines[3:] if line[0] == "|"]
    assert rows == [["n1", "127.0.0.1:5432", "Leader", "running", "2", "", ""],
                    ["n2", "127.0.0.1:5433", "Replica", "running", "2", "3", "nofailover: true"],
                    ["", "", "", "", "", "", "zone: b"],
                    ["n3", "127.0.0.1:5434", "Sync Standby", "streaming", "2", "0", ""]], p.stdout
    assert len(lines) == 10 and lines[9] == lines[7] == lines[4] == lines[2]


def test_status_yaml(etcd):
    write_patroni_cluster(etcd)
    p = dbctl("--etcd", etcd.endpoints[0], "--scope", SCOPE, "status", "-o", "yaml")
    assert p.returncode == 0, p.stderr
    assert yaml.safe_load(p.stdout) == EXPECTED


def test_status_with_config_and_namespace(etcd, workdir):
    write_patroni_cluster(etcd, namespace="/db/")
    cfg = os.path.join(workdir, "node1.yml")
    with open(cfg, "w") as f:
        f.write(f"""\
scope: {SCOPE}
namespace: /db
name: n1
restapi:
  connect_address: 127.0.0.1:8008
etcd3:
  hosts:
  - 127.0.0.1:{free_port()}
  - {etcd.endpoints[0]}
postgresql:
  connect_address: 127.0.0.1:5432
  data_dir: {workdir}/n1
""")
    # the first host is down: the client moves on to the second
    p = dbctl("-c", cfg, "status", "-o", "json")
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout) == EXPECTED
    # --namespace and --scope override the config; nothing under /service/
    p = dbctl("-c", cfg, "status", "--namespace", "/service/", "-o", "json")
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["members"] == []
    p = dbctl("--etcd", etcd.endpoints[0], "--scope", SCOPE, "status", "--namespace", "db",
              "-o", "json")
    assert json.loads(p.stdout) == EXPECTED
    # a broken config is a config error
    with open(cfg, "a") as f:
        f.write("ttl: [\n")
    p = dbctl("-c", cfg, "status")
    assert p.returncode == 2
    assert "error:" in p.stderr


def test_status_empty_cluster(etcd):
    p = dbctl("--etcd", etcd.endpoints[0], "--scope", "nothing", "status", "-o", "json")
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout) == {"cluster": "nothing", "leader": None, "paused": False,
                                    "members": []}
    p = dbctl("--etcd", etcd.endpoints[0], "--scope", "nothing", "status")
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith("+ Cluster: nothing ")


def test_status_paused_and_malformed(etcd):
    prefix = f"/service/{SCOPE}/"
    put(etcd, prefix + "config", dumps({"pause": True}))
    put(etcd, prefix + "members/junk", "{not json")
    put(etcd, prefix + "members/n1", dumps(dict(N1, state="creating replica", role="replica")))
    p = dbctl("--etcd", etcd.endpoints[0], "--scope", SCOPE, "status", "-o", "json")
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert out["paused"] is True and out["leader"] is None
    assert out["members"][0] == {"name": "junk", "host": None, "port": None, "role": "replica",
                                 "state": "stopped", "timeline": None, "lag_bytes": None,
                                 "lag_seconds": None, "tags": {}}
    assert out["members"][1]["state"] == "creating replica"
    p = dbctl("--etcd", etcd.endpoints[0], "--scope", SCOPE, "status")
    assert p.returncode == 0, p.stderr
    assert "Maintenance mode: on" in p.stdout
    assert "unknown" in p.stdout  # junk has no position


def test_status_watch_stops_on_sigint(etcd):
    write_patroni_cluster(etcd)
    p = subprocess.Popen([binary("dbctl"), "--etcd", etcd.endpoints[0], "--scope", SCOPE,
                          "status", "-o", "json", "--watch", "1"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(1.5)
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=10)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait(timeout=10)
    # patronictl's exit on SIGINT: "Aborted!" and 1
    assert p.returncode == 1 and err == "\nAborted!\n", err
    lines = out.splitlines()
    assert len(lines) >= 2
    assert all(json.loads(line) == EXPECTED for line in lines)


def test_status_etcd_down():
    port = free_port()
    p = dbctl("--etcd", f"127.0.0.1:{port}", "--scope", SCOPE, "status", "-o", "json",
              timeout=20)
    assert p.returncode == 1
    assert p.stdout == ""
    assert f'cannot read cluster "{SCOPE}" from etcd' in p.stderr
    assert f"127.0.0.1:{port}" in p.stderr


@pytest.mark.parametrize("args,message", [
    ((), "no etcd endpoint: give -c CONFIG (a patronictl or dbagent config file with "
         "etcd3.hosts), or --etcd HOST:PORT"),
    (("--etcd", "127.0.0.1:2379"), "no scope"),
    (("--scope", SCOPE), "no etcd endpoint"),
    (("--etcd", "127.0.0.1:2379", "--scope", "a/b"), "invalid scope"),
])
def test_status_usage(args, message):
    p = dbctl(*args, "status")
    assert p.returncode == 2
    assert p.stderr.startswith("dbctl status: ")
    assert message in p.stderr
    assert len(p.stderr.splitlines()) == 1


@pytest.mark.parametrize("args", [("-o", "xml"), ("--watch", "-1"), ("--watch", "x"),
                                  ("one", "two"), ("--bogus",)])
def test_status_bad_options(args):
    p = dbctl("--etcd", "127.0.0.1:2379", "--scope", SCOPE, "status", *args)
    assert p.returncode == 2
