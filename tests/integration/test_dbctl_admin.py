"""dbctl as an administrator's tool (issue #17, point 1): run from a
directory with only patronictl's file, on a host with no agent config and
no PostgreSQL credentials, against a cluster whose etcd serves https only,
requires client certificates signed by its CA and a password, and whose
agents' REST APIs require basic auth.

The file is found where patronictl finds its own (~/.config/patroni/
patronictl.yaml, PATRONICTL_CONFIG_FILE) or at dbctl's own places
(DBCTL_CONFIG_FILE, ~/.config/dbha/dbctl.yaml, in that order before
patronictl's). The REST credentials come from ctl.authentication, else
Patroni 3.0's ctl.auth ("user:password"), else restapi.authentication, as
PatroniRequest picks them. --etcd takes https:// endpoints and the TLS and
user options, with the password from DBHA_ETCD_PASSWORD (as libdbha's
example)."""
import json
import os
import subprocess

import pytest

from lib.cluster import DbhaCluster
from lib.etcd_cluster import EtcdCluster
from lib.fake_cluster import FakeCluster
from lib.procs import binary, wait_until

pytestmark = pytest.mark.concurrent

ETCD_USER, ETCD_PW = "dbha", "etcd-secret-17"
REST_USER, REST_PW = "admin", "rest-secret-17"


def clean_env(home, extra=None):
    drop = ("PATRONI_", "DBHA_", "DBCTL_", "PATRONICTL_", "DCS_URL", "PGPASSWORD",
            "XDG_CONFIG_HOME")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    env["HOME"] = home
    env.update(extra or {})
    return env


def run(home, *args, cwd=None, env=None, timeout=90):
    return subprocess.run([binary("dbctl"), *args], capture_output=True, text=True,
                          cwd=cwd or home, env=clean_env(home, env), timeout=timeout)


def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)
    return path


def patronictl_yaml(cluster, rest=None):
    """What a Patroni admin hands patronictl: scope, namespace, etcd3 with TLS
    and a user, and (rest) the lines giving REST credentials."""
    tls = cluster.tls
    return (f"scope: {cluster.scope}\nnamespace: /service/\n"
            f"etcd3:\n  hosts: {','.join(cluster.etcd.endpoints)}\n  protocol: https\n"
            f"  cacert: {tls.ca}\n  cert: {tls.client_cert}\n  key: {tls.client_key}\n"
            f"  username: {ETCD_USER}\n  password: {ETCD_PW}\n"
            f"ctl:\n  insecure: false\n{rest or ''}")


def paused(cluster):
    p = cluster.dbctl("-o", "json", "show-config")  # with a node's config
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout).get("pause")


@pytest.fixture
def cluster(procs, workdir):
    c = DbhaCluster(procs, workdir, n=2, ttl=10, loop_wait=1, etcd_tls=True,
                    etcd_auth=(ETCD_USER, ETCD_PW))
    for n in c.nodes:
        n.rest_auth = (REST_USER, REST_PW)
    c.start()
    c.wait_healthy(timeout=120)
    yield c
    c.stop_all()


def test_patronictl_file_on_a_host_without_an_agent(cluster, tmp_path):
    home = str(tmp_path / "home")
    empty = str(tmp_path / "empty")
    os.makedirs(empty)
    write(os.path.join(home, ".config/patroni/patronictl.yaml"), patronictl_yaml(
        cluster, f"restapi:\n  authentication:\n    username: {REST_USER}\n"
                 f"    password: {REST_PW}\n"))
    assert os.listdir(empty) == []

    p = run(home, "list", "-o", "json", cwd=empty)
    assert p.returncode == 0, p.stderr
    s = json.loads(p.stdout)
    leader = s["leader"]
    replica = next(m["name"] for m in s["members"] if m["name"] != leader)
    assert len(s["members"]) == 2 and leader, s

    # the cluster-wide switch, through etcd
    p = run(home, "pause", "--wait", cwd=empty)
    assert p.returncode == 0, p.stderr
    assert paused(cluster) is True
    p = run(home, "resume", "--wait", cwd=empty)
    assert p.returncode == 0, p.stderr
    assert not paused(cluster)

    # through the agents' REST API, with restapi.authentication's credentials
    pid = cluster.node(replica).postmaster_pid()
    p = run(home, "--force", "restart", replica, cwd=empty)
    assert p.returncode == 0, p.stdout + p.stderr
    assert cluster.node(replica).postmaster_pid() != pid

    # a file without REST credentials: the agent refuses (401), nothing restarts
    nocred = write(str(tmp_path / "nocred.yaml"), patronictl_yaml(cluster))
    pid = cluster.node(replica).postmaster_pid()
    p = run(home, "--force", "restart", replica, env={"PATRONICTL_CONFIG_FILE": nocred})
    assert p.returncode == 1, p.stdout + p.stderr
    assert "no auth header received" in p.stderr, p.stderr
    assert cluster.node(replica).postmaster_pid() == pid

    # Patroni 3.0's ctl.auth ("user:password"), from DBCTL_CONFIG_FILE, which
    # wins over PATRONICTL_CONFIG_FILE
    old = write(str(tmp_path / "old-auth.yaml"),
                patronictl_yaml(cluster, f"  auth: {REST_USER}:{REST_PW}\n"))
    p = run(home, "--force", "restart", replica,
            env={"DBCTL_CONFIG_FILE": old, "PATRONICTL_CONFIG_FILE": nocred})
    assert p.returncode == 0, p.stdout + p.stderr
    assert cluster.node(replica).postmaster_pid() != pid

    # a switchover, and the leader is the replica
    p = run(home, "--force", "switchover", "--candidate", replica, cwd=empty)
    assert p.returncode == 0, p.stdout + p.stderr
    wait_until(lambda: cluster.status()["leader"] == replica, 60, what=f"{replica} leads")

    # no file at all: --etcd with https and the TLS and user options
    bare = str(tmp_path / "bare")
    os.makedirs(bare)
    tls = cluster.tls
    endpoints = ",".join(f"https://{e}" for e in cluster.etcd.endpoints)
    args = ["--etcd", endpoints, "--etcd-cacert", tls.ca, "--etcd-cert", tls.client_cert,
            "--etcd-key", tls.client_key, "--etcd-user", ETCD_USER, "--scope", cluster.scope,
            "list", "-o", "json"]
    p = run(bare, *args, env={"DBHA_ETCD_PASSWORD": ETCD_PW})
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["leader"] == replica
    p = run(bare, *args, env={"DBHA_ETCD_PASSWORD": "wrong"})
    assert p.returncode == 1 and p.stdout == "", p.stdout + p.stderr
    assert ETCD_PW not in p.stderr
    # the user:password form
    args[args.index(ETCD_USER)] = f"{ETCD_USER}:{ETCD_PW}"
    p = run(bare, *args)
    assert p.returncode == 0, p.stderr
    # etcd wants a client certificate
    no_cert = [a for a in args if a not in ("--etcd-cert", tls.client_cert, "--etcd-key",
                                            tls.client_key)]
    p = run(bare, *no_cert)
    assert p.returncode == 1, p.stdout + p.stderr


@pytest.fixture
def fake(procs, workdir):
    return FakeCluster(EtcdCluster(procs, workdir).start()).write()


def test_where_the_file_is_found(fake, tmp_path):
    home = str(tmp_path / "home")
    endpoint = fake.etcd.endpoints[0]

    def conf(scope, extra=""):
        return f"scope: {scope}\nnamespace: /service/\netcd3:\n  hosts: {endpoint}\n{extra}"

    def scope_seen(p):
        assert p.returncode in (0, 1), p.stderr
        return p.stderr if p.returncode else json.loads(p.stdout)["cluster"]

    # patronictl's default file alone
    write(os.path.join(home, ".config/patroni/patronictl.yaml"), conf(fake.scope))
    assert scope_seen(run(home, "status", "-o", "json")) == fake.scope
    # dbctl's own default comes first
    write(os.path.join(home, ".config/dbha/dbctl.yaml"), conf("other"))
    assert scope_seen(run(home, "status", "-o", "json")) == "other"
    # XDG_CONFIG_HOME moves ~/.config, as for patronictl
    xdg = str(tmp_path / "xdg")
    write(os.path.join(xdg, "patroni/patronictl.yaml"), conf(fake.scope))
    assert scope_seen(run(home, "status", "-o", "json",
                          env={"XDG_CONFIG_HOME": xdg})) == fake.scope
    # PATRONICTL_CONFIG_FILE before the defaults, DBCTL_CONFIG_FILE before it
    named = write(str(tmp_path / "named.yaml"), conf(fake.scope))
    other = write(str(tmp_path / "other.yaml"), conf("other"))
    assert scope_seen(run(home, "status", "-o", "json",
                          env={"PATRONICTL_CONFIG_FILE": named})) == fake.scope
    p = run(home, "status", "-o", "json",
            env={"PATRONICTL_CONFIG_FILE": named, "DBCTL_CONFIG_FILE": other})
    assert scope_seen(p) == "other"
    # -c before everything
    assert scope_seen(run(home, "-c", named, "status", "-o", "json",
                          env={"DBCTL_CONFIG_FILE": other})) == fake.scope
    # --scope and --etcd override the file
    assert scope_seen(run(home, "--scope", fake.scope, "status", "-o", "json")) == fake.scope

    # a named file that is not there: refused, as patronictl does
    for var in ("DBCTL_CONFIG_FILE", "PATRONICTL_CONFIG_FILE"):
        p = run(home, "status", env={var: str(tmp_path / "missing.yaml")})
        assert p.returncode == 2, p.stderr
        assert var in p.stderr and "missing.yaml" in p.stderr, p.stderr

    # no file anywhere: the PATRONI_* variables alone, as patronictl
    bare = str(tmp_path / "bare")
    os.makedirs(bare)
    p = run(bare, "status", "-o", "json",
            env={"PATRONI_SCOPE": fake.scope, "PATRONI_ETCD3_HOSTS": endpoint})
    assert scope_seen(p) == fake.scope
    p = run(bare, "status")
    assert p.returncode == 2 and "no etcd endpoint" in p.stderr, p.stderr

    # patronictl's --dcs-url / DCS_URL, etcd3 only
    p = run(bare, "-d", f"etcd3://{endpoint}", "--scope", fake.scope, "status", "-o", "json")
    assert scope_seen(p) == fake.scope
    p = run(bare, "--scope", fake.scope, "status", "-o", "json",
            env={"DCS_URL": f"etcd3://{endpoint}"})
    assert scope_seen(p) == fake.scope
    p = run(bare, "-d", f"etcd://{endpoint}", "--scope", fake.scope, "status")
    assert p.returncode == 2 and "v3 API only" in p.stderr, p.stderr

    # the keys only an agent needs may be missing; what is there is still checked
    bad = write(str(tmp_path / "bad.yaml"), conf(fake.scope, "ctl:\n  auth: nocolon\n"))
    p = run(bare, "-c", bad, "status")
    assert p.returncode == 2, p.stderr
    assert f"{bad}:6:9:" in p.stderr and "USER:PASSWORD" in p.stderr, p.stderr
    assert "nocolon" not in p.stderr
