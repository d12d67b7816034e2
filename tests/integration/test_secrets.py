"""Secrets stay secret, against a real two-node cluster whose agents run with
a DBHA_ and a PATRONI_ variable holding recognizable secrets and with
log_statement = all:

- the postmaster, a backend and a callback see no PATRONI_/DBHA_ variable;
- the postmaster and a backend hold none of the agents' TCP connections
  (etcd, the REST APIs), and every descriptor of the agent is close-on-exec;
- after bootstrap (three roles created with passwords) the server logs hold
  no password, although they log every statement, nor do the agents' logs
  or any command line;
- a symlink planted at <data_dir>.pwfile, at the pgpass path, or at the
  temporary name the agent used to write pgpass through is not followed.

One cluster for the module; the tests run in file order."""
import os
import pwd
import stat

import psycopg2
import pytest

from conftest import started_cluster
from lib.cluster import REPL, REPL_PW, REWIND_PW, SUPERUSER, SUPERUSER_PW
from lib.pg import PG_OS_USER, as_root, hand_to_pg_user
from lib.procs import wait_until

pytestmark = pytest.mark.concurrent

DBHA_SECRET = "dbha-env-secret-7b1e"
PATRONI_SECRET = "patroni-env-secret-c94d"
AGENT_ENV = {"DBHA_ITEST_SECRET": DBHA_SECRET, "PATRONI_ITEST_SECRET": PATRONI_SECRET}
PASSWORDS = (SUPERUSER_PW, REPL_PW, REWIND_PW)
UNTOUCHED = "untouched\n"

# on_start: the script's own environment, NUL-separated as /proc has it
SCRIPT = """#!/bin/sh
cat /proc/$$/environ > "{dir}/environ-$1-$$"
"""


def plant_link(path, target):
    """A symlink at path to target, a file the agent's user could write."""
    with open(target, "w") as f:
        f.write(UNTOUCHED)
    if as_root():
        pw = pwd.getpwnam(PG_OS_USER)
        os.chown(target, pw.pw_uid, pw.pw_gid)
    os.chmod(target, 0o666)
    os.symlink(target, path)


def read_text(path):
    with open(path) as f:
        return f.read()


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
            n.env = dict(AGENT_ENV)
            n.parameters = {"log_statement": "all"}
            n.postgresql_yaml = f"  callbacks:\n    on_start: {script} {n.name}\n"
            hand_to_pg_user(n.dir)
            n.pwfile_target = os.path.join(n.dir, "pwfile-target")
            plant_link(n.data_dir + ".pwfile", n.pwfile_target)
    with started_cluster("dbha-secrets-", configure, n=2, ttl=10, loop_wait=1) as c:
        yield c


def environ_of(pid):
    with open(f"/proc/{pid}/environ", "rb") as f:
        return [e.decode(errors="replace") for e in f.read().split(b"\0") if e]


def assert_no_agent_variables(entries, what, kept=True):
    bad = [e for e in entries if e.startswith(("PATRONI_", "DBHA_"))
           or DBHA_SECRET in e or PATRONI_SECRET in e]
    assert not bad, f"{what} has the agent's variables: {bad}"
    if kept:
        assert any(e.startswith("PATH=") for e in entries), f"{what}: the environment was kept"


def backend_pid(node):
    conn = node.connect()
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT pg_backend_pid()")
            return conn, cur.fetchone()[0]
    except Exception:
        conn.close()
        raise


def test_postgres_environment_has_no_agent_variables(cluster):
    for n in cluster.nodes:
        assert_no_agent_variables(environ_of(n.postmaster_pid()), f"{n.name}'s postmaster")
        conn, pid = backend_pid(n)
        try:
            # a backend writes its ps title over the area /proc shows (its
            # environment is the postmaster's, moved): nothing of ours in it
            assert_no_agent_variables(environ_of(pid), f"{n.name}'s backend {pid}", kept=False)
        finally:
            conn.close()
    # the agents themselves do have them: the test sets what it means to
    agent_env = environ_of(cluster.nodes[0].proc.pid)
    assert f"DBHA_ITEST_SECRET={DBHA_SECRET}" in agent_env


def test_callback_environment_has_no_agent_variables(cluster):
    def files():
        found = [f for f in os.listdir(cluster.cb_dir) if f.startswith("environ-")]
        members = {f.split("-")[1] for f in found}
        return found if members == {n.name for n in cluster.nodes} else None

    found = wait_until(files, 30, interval=0.2, what="an on_start callback on every node")
    for f in found:
        data = open(os.path.join(cluster.cb_dir, f), "rb").read()
        entries = [e.decode(errors="replace") for e in data.split(b"\0") if e]
        assert_no_agent_variables(entries, f"callback {f}")


def tcp_sockets():
    """inode -> (local port, remote port) of every TCP socket on the host."""
    out = {}
    for path in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(path) as f:
            for line in f.readlines()[1:]:
                cols = line.split()
                local, remote, inode = cols[1], cols[2], int(cols[9])
                if inode:
                    out[inode] = (int(local.rsplit(":", 1)[1], 16),
                                  int(remote.rsplit(":", 1)[1], 16))
    return out


def socket_inodes(pid):
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue  # closed meanwhile
        if link.startswith("socket:["):
            inodes.add(int(link[len("socket:["):-1]))
    return inodes


def test_postgres_holds_no_agent_connection(cluster):
    agent_ports = {m.client_port for m in cluster.etcd.members} | \
                  {n.api_port for n in cluster.nodes}
    tcp = tcp_sockets()
    for n in cluster.nodes:
        conn, bpid = backend_pid(n)
        try:
            agent_inodes = socket_inodes(n.proc.pid)
            # the agent's etcd connection is there to be leaked
            assert any(tcp.get(i, (0, 0))[1] in agent_ports for i in agent_inodes), \
                f"{n.name}'s agent holds no etcd connection: the check would see nothing"
            for pid, what in ((n.postmaster_pid(), "postmaster"), (bpid, "backend")):
                mine = socket_inodes(pid)
                shared = mine & agent_inodes
                assert not shared, f"{n.name}'s {what} {pid} holds the agent's sockets {shared}"
                leaked = {i: tcp[i] for i in mine if i in tcp and
                          (tcp[i][0] in agent_ports or tcp[i][1] in agent_ports)}
                assert not leaked, f"{n.name}'s {what} {pid} holds agent connections {leaked}"
        finally:
            conn.close()


def test_agent_descriptors_are_close_on_exec(cluster):
    """Every descriptor of the agent above stderr (etcd and REST sockets,
    files, event fds) is close-on-exec where it is created, so that nothing
    it starts by any path inherits one. Unix socket pairs are left out:
    libcurl 7.88 makes its multi handles' wake-up pair without
    SOCK_CLOEXEC (no option reaches it), which the children's close_range
    covers."""
    tcp = tcp_sockets()
    for n in cluster.nodes:
        pid = n.proc.pid
        inheritable = {}
        for fd in os.listdir(f"/proc/{pid}/fd"):
            if int(fd) <= 2:
                continue
            try:
                info = read_text(f"/proc/{pid}/fdinfo/{fd}")
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue  # closed meanwhile
            flags = int(next(l.split()[1] for l in info.splitlines() if l.startswith("flags:")), 8)
            if link.startswith("socket:[") and int(link[8:-1]) not in tcp:
                continue
            if not flags & os.O_CLOEXEC:
                inheritable[int(fd)] = link
        assert not inheritable, f"{n.name}'s agent has inheritable descriptors {inheritable}"


def test_server_log_has_no_password(cluster):
    leader = cluster.primary()
    marker = "log-statement-marker-51f0"
    leader.sql(f"SELECT '{marker}'")
    log = leader.data_dir + ".log"
    wait_until(lambda: marker in read_text(log), 10, interval=0.2,
               what="log_statement = all in effect")
    for n in cluster.nodes:
        text = read_text(n.data_dir + ".log")
        found = [p for p in PASSWORDS if p in text]
        assert not found, f"{n.name}'s server log holds the passwords {found}"
    # nor the agents' logs, nor any command line on the host
    for n in cluster.nodes:
        text = read_text(cluster.procs.log_path(n.name))
        assert not [p for p in PASSWORDS if p in text], f"{n.name}'s agent log has a password"
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmdline = f.read().decode(errors="replace")
        except OSError:
            continue
        assert not [p for p in PASSWORDS if p in cmdline], f"process {pid}: {cmdline!r}"
    # the roles were made, with their passwords, by the bootstrap we looked at
    c = psycopg2.connect(host="127.0.0.1", port=leader.pg_port, user=REPL, password=REPL_PW,
                         dbname="postgres", connect_timeout=3)
    c.close()
    rows = leader.sql("SELECT rolname FROM pg_roles WHERE rolname = %s", (SUPERUSER,))
    assert rows == [(SUPERUSER,)]


def test_pwfile_symlink_not_followed(cluster):
    for n in cluster.nodes:
        assert read_text(n.pwfile_target) == UNTOUCHED, f"{n.name}: the pwfile link was followed"


def test_pgpass_symlink_not_followed(cluster):
    leader = cluster.primary()
    replica = next(n for n in cluster.nodes if n is not leader)
    pgpass = os.path.join(replica.dir, "pgpass")
    os.unlink(pgpass)
    target = os.path.join(replica.dir, "pgpass-target")
    plant_link(pgpass, target)
    # the name the agent wrote through before it chose a fresh one
    tmp_target = os.path.join(replica.dir, "pgpass-tmp-target")
    plant_link(pgpass + ".dbha-tmp", tmp_target)
    # a restart writes the passfile again
    p = cluster.dbctl("restart", replica.name, "--force", timeout=120)
    assert p.returncode == 0, p.stderr
    wait_until(lambda: not os.path.islink(pgpass) or read_text(target) != UNTOUCHED
               or read_text(tmp_target) != UNTOUCHED, 30, interval=0.2, what="pgpass rewritten")
    assert read_text(target) == UNTOUCHED, "the link at the pgpass path was followed"
    assert read_text(tmp_target) == UNTOUCHED, "a link at pgpass.dbha-tmp was followed"
    st = os.lstat(pgpass)
    assert stat.S_ISREG(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o600
    assert f":{REPL}:" in read_text(pgpass)
    cluster.wait_healthy(timeout=60)
