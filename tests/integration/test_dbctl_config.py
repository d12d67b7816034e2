"""dbctl edit-config: --set / -p / --apply patches, $EDITOR on a terminal,
the unified diff, validation (nothing written when it fails), confirmation
and the compare-and-swap on the config key, against a cluster made of keys
only; then on a real three-node cluster a reload parameter (work_mem, seen
by SHOW on every node) and a restart parameter (max_connections: every
member reports pending_restart). Values reach PostgreSQL byte for byte
(backslashes, quotes, newlines); a parameter name PostgreSQL would not read
is refused by PATCH /config and, written straight into etcd, never reaches
postgresql.conf."""
import json
import stat
import sys
import time
import urllib.error
import urllib.request

import pytest

from conftest import started_cluster
from lib.etcd_cluster import EtcdCluster, b64
from lib.fake_cluster import CONFIG, FakeCluster, dumps
from lib.procs import wait_until
from lib.tty import run_tty

pytestmark = pytest.mark.concurrent


@pytest.fixture
def fake(procs, workdir):
    return FakeCluster(EtcdCluster(procs, workdir).start()).write()


def stored(fake):
    return json.loads(fake.get("config"))


def test_set_pg_and_null(fake):
    p = fake.dbctl("edit-config", "--set", "loop_wait=5", "--set", "synchronous_mode=null",
                   "-p", "work_mem=8MB", "-p", "max_connections=200",
                   "--set", "postgresql.use_slots=false", "--set", "tags.x=\"1\"",
                   "-p", "auto_explain.log_min_duration=1s", "--force")
    assert p.returncode == 0, p.stderr
    want = json.loads(json.dumps(CONFIG))
    want["loop_wait"] = 5
    del want["synchronous_mode"]
    want["postgresql"]["use_slots"] = False
    want["postgresql"]["parameters"].update({"max_connections": 200, "work_mem": "8MB",
                                             "auto_explain.log_min_duration": "1s"})
    want["tags"] = {"x": "1"}
    assert stored(fake) == want
    out = p.stdout.splitlines()
    assert out[:2] == ["--- before", "+++ after"], p.stdout
    for line in ("-loop_wait: 10", "+loop_wait: 5", "-synchronous_mode: true",
                 "-  use_slots: true", "+  use_slots: false", "-    max_connections: 100",
                 "+    max_connections: 200", "+    work_mem: 8MB", "+  x: '1'"):
        assert line in out, (line, p.stdout)
    assert out[-1] == 'Config of cluster "batman" updated'
    # the same again changes nothing
    p = fake.dbctl("edit-config", "-p", "work_mem=8MB", "--force")
    assert p.returncode == 0 and p.stdout == "Not changed\n"


def test_apply_yaml_file_and_json_stdin(fake, tmp_path):
    f = tmp_path / "patch.yaml"
    f.write_text("ttl: 40\npostgresql:\n  parameters:\n    max_connections: null\n"
                 "    shared_buffers: 32MB\n    random_page_cost: 1.5\n    enable_seqscan: off\n"
                 "    search_path: '\"$user\", public'\n")
    p = fake.dbctl("edit-config", "--apply", str(f), "--force")
    assert p.returncode == 0, p.stderr
    params = stored(fake)["postgresql"]["parameters"]
    assert params == {"shared_buffers": "32MB", "random_page_cost": 1.5,
                      "enable_seqscan": False, "search_path": '"$user", public'}
    assert stored(fake)["ttl"] == 40
    p = fake.dbctl("edit-config", "--apply", "-", "--set", "ttl=50", "--force",
                   input='{"pause": true, "ttl": 45}')
    assert p.returncode == 0, p.stderr
    # --apply first, then --set
    assert stored(fake)["pause"] is True and stored(fake)["ttl"] == 50


NAME_HINT = ('is not a PostgreSQL parameter name: use letters, digits and "_" (not a digit '
             'first), with at most one "." (extension.setting)')


@pytest.mark.parametrize("args,message", [
    (("--set", "ttl=abc"), "ttl: must be an integer >= 2"),
    (("--set", "loop_wait=-1"), "loop_wait: must be an integer >= 1"),
    (("--set", "ttl=20"),
     "ttl: must be at least loop_wait + 2 * retry_timeout (10 + 2 * 10 = 30), not 20"),
    (("-p", 'work_mem={"a":1}'),
     "postgresql.parameters.work_mem: must be a string, number or boolean"),
    (("--set", "postgresql.parameters=5"), "postgresql.parameters: must be an object"),
    (("--set", "synchronous_mode=maybe"), "synchronous_mode: must be a boolean"),
    (("-p", "work-mem=8MB"), 'postgresql.parameters: "work-mem" ' + NAME_HINT),
    (("--set", "postgresql.parameters.include=/etc/evil.conf"),
     'postgresql.parameters: "include" ' + NAME_HINT),
])
def test_invalid_values_write_nothing(fake, args, message):
    rev = fake.mod_revision("config")
    p = fake.dbctl("edit-config", *args, "--force")
    assert p.returncode == 1
    assert p.stderr == f"dbctl edit-config: {message}; nothing written\n"
    assert p.stdout == ""
    assert fake.mod_revision("config") == rev


def test_usage_and_confirmation(fake, tmp_path):
    rev = fake.mod_revision("config")
    notmap = tmp_path / "list.yaml"
    notmap.write_text("- a\n- b\n")
    broken = tmp_path / "broken.yaml"
    broken.write_text("ttl: [1,\n")
    for args in ((), ("--set", "noequals"), ("--set", ".x=1"), ("--set", "a..b=1"),
                 ("--apply", str(tmp_path / "missing.yaml")), ("--apply", str(notmap)),
                 ("--apply", str(broken)), ("extra",), ("-p", "=1")):
        p = fake.dbctl("edit-config", *args)
        assert p.returncode == 2, (args, p.stderr)
    p = fake.dbctl("edit-config", "--apply", str(broken))
    assert "line 2" in p.stderr, p.stderr
    # not on a terminal and no --force: the diff, then a refusal
    p = fake.dbctl("edit-config", "--set", "ttl=60")
    assert p.returncode == 1
    assert "+ttl: 60" in p.stdout
    assert "not confirmed (use --force); nothing written" in p.stderr
    assert fake.mod_revision("config") == rev


def editor(tmp_path, body):
    path = tmp_path / "editor"
    path.write_text(f"#!{sys.executable}\nimport sys\n{body}\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


SED_LOOP_WAIT = ("p = sys.argv[1]\ns = open(p).read()\n"
                 "open(p, 'w').write(s.replace('loop_wait: 10', 'loop_wait: 5'))")


def test_editor_on_a_terminal(fake, tmp_path):
    env = fake.env({"EDITOR": editor(tmp_path, SED_LOOP_WAIT)})
    rc, out = run_tty(fake.argv("edit-config"), [("Apply these changes? [y/N]", "n")], env=env)
    assert rc == 1, out
    assert "-loop_wait: 10" in out and "+loop_wait: 5" in out
    assert stored(fake)["loop_wait"] == 10
    rc, out = run_tty(fake.argv("edit-config"), [("Apply these changes? [y/N]", "y")], env=env)
    assert rc == 0, out
    assert stored(fake)["loop_wait"] == 5
    # unchanged, invalid YAML, a failing editor, an invalid value: nothing written
    rev = fake.mod_revision("config")
    rc, out = run_tty(fake.argv("edit-config"), env=fake.env({"EDITOR": "true"}))
    assert rc == 0 and "Not changed" in out, out
    bad = editor(tmp_path, "open(sys.argv[1], 'w').write('ttl: [\\n')")
    rc, out = run_tty(fake.argv("edit-config"), env=fake.env({"EDITOR": bad}))
    assert rc == 1 and "not a YAML mapping" in out, out
    rc, out = run_tty(fake.argv("edit-config"), env=fake.env({"EDITOR": "false"}))
    assert rc == 1 and "failed" in out, out
    invalid = editor(tmp_path, "p = sys.argv[1]\ns = open(p).read()\n"
                     "open(p, 'w').write(s.replace('ttl: 30', 'ttl: thirty'))")
    rc, out = run_tty(fake.argv("edit-config"), env=fake.env({"EDITOR": invalid}))
    assert rc == 1 and "ttl: must be an integer >= 2; nothing written" in out, out
    assert fake.mod_revision("config") == rev


def test_concurrent_change_is_not_overwritten(fake, tmp_path):
    """The editor runs while someone else writes the key: the CAS refuses."""
    other = dict(CONFIG, pause=True)
    body = (f"import base64, json, urllib.request\n"
            f"p = sys.argv[1]\ns = open(p).read()\n"
            f"open(p, 'w').write(s.replace('loop_wait: 10', 'loop_wait: 5'))\n"
            f"req = urllib.request.Request('http://{fake.etcd.endpoints[0]}/v3/kv/put', "
            f"data=json.dumps({{'key': base64.b64encode(b'{fake.prefix}config').decode(), "
            f"'value': base64.b64encode({dumps(other)!r}.encode()).decode()}}).encode())\n"
            f"urllib.request.urlopen(req, timeout=5).read()")
    env = fake.env({"EDITOR": editor(tmp_path, body)})
    rc, out = run_tty(fake.argv("edit-config"), [("Apply these changes? [y/N]", "y")], env=env)
    assert rc == 1, out
    assert "changed while this edit was prepared; nothing written" in out
    assert stored(fake) == other


# ---- a real cluster: the agents apply the change ----

@pytest.fixture(scope="module")
def cluster():
    with started_cluster("dbha-dbctl-config-", n=3, ttl=5, loop_wait=1, retry_timeout=1) as c:
        yield c


def show(node, name):
    return node.sql(f"SHOW {name}")[0][0]


def test_reload_parameter_reaches_every_node(cluster):
    cluster.wait_healthy(timeout=60)
    assert all(show(n, "work_mem") == "4MB" for n in cluster.nodes)
    p = cluster.dbctl("edit-config", "-p", "work_mem=8MB", "--force")
    assert p.returncode == 0, p.stderr
    assert "+    work_mem: 8MB" in p.stdout
    # loop_wait is 1 s: a few loops at most
    wait_until(lambda: all(show(n, "work_mem") == "8MB" for n in cluster.nodes), 15,
               interval=0.2, what="work_mem 8MB on every node")
    p = cluster.dbctl("edit-config", "-p", "work_mem=null", "--force")
    assert p.returncode == 0, p.stderr
    wait_until(lambda: all(show(n, "work_mem") == "4MB" for n in cluster.nodes), 15,
               interval=0.2, what="work_mem back to 4MB on every node")


def member_data(cluster, name):
    v = cluster.etcd_get(f"members/{name}")
    return json.loads(v) if v else {}


def test_restart_parameter_is_pending_restart(cluster):
    cluster.wait_healthy(timeout=60)
    assert all(show(n, "max_connections") == "50" for n in cluster.nodes)
    p = cluster.dbctl("edit-config", "-p", "max_connections=60", "--force")
    assert p.returncode == 0, p.stderr
    wait_until(lambda: all(member_data(cluster, n.name).get("pending_restart") is True
                           for n in cluster.nodes), 20, interval=0.2,
               what="pending_restart on every member")
    # not applied without a restart; the table shows it
    assert all(show(n, "max_connections") == "50" for n in cluster.nodes)
    p = cluster.dbctl("status")
    assert "Pending restart" in p.stdout
    rows = [[c.strip() for c in line.split("|")[1:-1]] for line in p.stdout.splitlines()[3:6]]
    assert [r[-1] for r in rows] == ["*", "*", "*"], p.stdout


def test_real_invalid_change_is_refused(cluster):
    before = cluster.etcd_get("config")
    p = cluster.dbctl("edit-config", "--set", "loop_wait=abc", "--force")
    assert p.returncode == 1
    assert p.stderr == "dbctl edit-config: loop_wait: must be an integer >= 1; nothing written\n"
    assert cluster.etcd_get("config") == before


# ---- values and names as PostgreSQL reads them ----

def patch_config(node, body):
    """PATCH /config on node's REST API: (status, decoded JSON body)."""
    req = urllib.request.Request(f"http://127.0.0.1:{node.api_port}/config",
                                 data=json.dumps(body).encode(), method="PATCH",
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def setting(node, name):
    return node.sql("SELECT current_setting(%s, true)", (name,))[0][0]


ODD_VALUES = {
    "dbha_test.path": "C:\\temp\\new",
    "dbha_test.odd": "it's a \"test\"\nsecond line\r\ttab \\n not a newline\\",
    "dbha_test.backslash": "\\",
}


def test_values_read_back_byte_for_byte_on_every_node(cluster):
    s = cluster.wait_healthy(timeout=60)
    leader = cluster.node(s["leader"])
    code, doc = patch_config(leader, {"postgresql": {"parameters": ODD_VALUES}})
    assert code == 200, doc

    def every_node_has_them():
        return all(setting(n, k) == v for n in cluster.nodes for k, v in ODD_VALUES.items())
    wait_until(every_node_has_them, 15, interval=0.2, what="the values on every node")
    for n in cluster.nodes:
        assert n.proc.poll() is None
    code, doc = patch_config(leader, {"postgresql": {"parameters": {k: None for k in ODD_VALUES}}})
    assert code == 200, doc
    wait_until(lambda: all(setting(n, "dbha_test.path") in (None, "") for n in cluster.nodes),
               15, interval=0.2, what="the values gone on every node")


BAD_NAMES = ["work_mem = '1MB'\nhba_file", "hba_file\n", "include", "a.b.c", "x y"]


def test_rest_refuses_a_bad_parameter_name(cluster):
    s = cluster.wait_healthy(timeout=60)
    leader = cluster.node(s["leader"])
    before = cluster.etcd_get("config")
    for name in BAD_NAMES:
        code, doc = patch_config(leader, {"postgresql": {"parameters": {name: "/tmp/x"}}})
        assert code == 400, (name, doc)
        assert "is not a PostgreSQL parameter name" in doc["error"], doc
    assert cluster.etcd_get("config") == before


def conf_lines(node):
    with open(f"{node.data_dir}/postgresql.conf") as f:
        return f.read().splitlines()


def test_bad_name_written_into_etcd_never_reaches_postgresql_conf(cluster):
    s = cluster.wait_healthy(timeout=60)
    key = f"/service/{cluster.scope}/config"
    good = cluster.etcd_get("config")
    doc = json.loads(good)
    evil = "work_mem = '1MB'\nhba_file"
    doc.setdefault("postgresql", {}).setdefault("parameters", {})
    doc["postgresql"]["parameters"].update({evil: "/tmp/evil_hba.conf", "work_mem": "9MB"})
    status, answer = cluster.etcd.api("kv/put", {"key": b64(key), "value": b64(json.dumps(doc))})
    assert status == 200, answer
    message = "not applied: \"work_mem = '1MB'\\nhba_file\" is not a PostgreSQL parameter name"
    wait_until(lambda: all(cluster.procs.log_contains(n.name, message) for n in cluster.nodes),
               15, interval=0.2, what="every agent refusing the key")
    time.sleep(3)  # three more loops: still refused, still said once
    for n in cluster.nodes:
        assert n.proc.poll() is None
        with open(cluster.procs.log_path(n.name), "rb") as f:
            assert f.read().count(message.encode()) == 1
        lines = conf_lines(n)
        assert not any(line.startswith("hba_file") for line in lines), lines
        assert not any("evil" in line for line in lines), lines
        assert setting(n, "hba_file").endswith("/data/pg_hba.conf")
        assert setting(n, "work_mem") != "9MB"
    assert cluster.wait_healthy(timeout=30)["leader"] == s["leader"]
    status, answer = cluster.etcd.api("kv/put", {"key": b64(key), "value": b64(good)})
    assert status == 200, answer
