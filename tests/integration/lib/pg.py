"""Real PostgreSQL 15 servers for the integration tests.

A `PgNode` is one data directory with its own port on 127.0.0.1 and a Unix
socket directory; a `PgSet` owns the nodes of one test and stops every
postmaster it started, by PID, in teardown. Server-side tools (initdb, pg_ctl,
pg_basebackup) refuse to run as root, so when the tests run as root they run
as the `postgres` user and the directories are handed to it.

    pgs = PgSet(workdir)
    n1 = pgs.init_primary("n1")
    n2 = pgs.make_replica(n1, "n2")
    n1.execute("CREATE TABLE t (x int)")
    pgs.stop_all()
"""
import os
import pwd
import shutil
import signal
import subprocess
import time

import psycopg2

from .procs import LOOPBACK, free_port, wait_until

PG_BIN = os.environ.get("DBHA_PG_BIN", "/usr/lib/postgresql/15/bin")
PG_OS_USER = "postgres"  # used only when running as root
SUPERUSER = "postgres"

BASE_CONF = {
    "listen_addresses": f"'{LOOPBACK}'",
    "wal_level": "replica",
    "max_wal_senders": "10",
    "max_replication_slots": "10",
    "wal_log_hints": "on",
    "hot_standby": "on",
    "fsync": "off",  # throwaway test clusters
    "shared_buffers": "16MB",
    "logging_collector": "off",
}


def as_root():
    return os.geteuid() == 0


def pg_tool(name):
    return os.path.join(PG_BIN, name)


def run_pg(argv, timeout=60, env=None, check=True):
    """Run a server-side PostgreSQL tool (as `postgres` when we are root)."""
    if as_root():
        argv = ["runuser", "-u", PG_OS_USER, "--"] + list(argv)
    # cwd=/tmp: runuser keeps the cwd and postgres may not be able to read ours
    p = subprocess.run(argv, cwd="/tmp", env=env, timeout=timeout,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if check and p.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({p.returncode}):\n{p.stdout}")
    return p


def hand_to_pg_user(path):
    """Make a directory the server-side tools can write into."""
    os.makedirs(path, exist_ok=True)
    if as_root():
        pw = pwd.getpwnam(PG_OS_USER)
        os.chown(path, pw.pw_uid, pw.pw_gid)
    os.chmod(path, 0o755)


def pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


class PgNode:
    """One PostgreSQL server: data dir, port, socket dir, log file."""

    def __init__(self, base_dir, name, port=None):
        self.name = name
        self.port = port or free_port()
        self.host = LOOPBACK
        self.data_dir = os.path.join(base_dir, name)
        self.sock_dir = os.path.join(base_dir, "sock")
        self.log_file = os.path.join(base_dir, f"{name}.log")
        self.started_pids = set()

    # ---- configuration ----
    def dsn(self, via="socket", dbname="postgres"):
        host = self.sock_dir if via == "socket" else self.host
        return f"host={host} port={self.port} user={SUPERUSER} dbname={dbname}"

    def append_conf(self, settings):
        with open(os.path.join(self.data_dir, "postgresql.conf"), "a") as f:
            f.write("\n# dbha tests\n")
            for k, v in settings.items():
                f.write(f"{k} = {v}\n")

    # ---- lifecycle ----
    def initdb(self, extra_conf=None):
        run_pg([pg_tool("initdb"), "-D", self.data_dir, "-U", SUPERUSER, "--data-checksums",
                "--auth-local=trust", "--auth-host=trust", "-N"], timeout=120)
        conf = dict(BASE_CONF)
        conf["port"] = str(self.port)
        conf["unix_socket_directories"] = f"'{self.sock_dir}'"
        conf["cluster_name"] = f"'{self.name}'"
        conf.update(extra_conf or {})
        self.append_conf(conf)

    def start(self, timeout=30):
        run_pg([pg_tool("pg_ctl"), "-D", self.data_dir, "-l", self.log_file, "-w",
                "-t", str(timeout), "start"], timeout=timeout + 10)
        pid = self.postmaster_pid()
        if pid:
            self.started_pids.add(pid)
        return pid

    def stop(self, mode="fast", timeout=30):
        """pg_ctl stop -m mode; mode "immediate" is a crash."""
        run_pg([pg_tool("pg_ctl"), "-D", self.data_dir, "-m", mode, "-w", "-t", str(timeout),
                "stop"], timeout=timeout + 10, check=False)

    def kill(self, sig=signal.SIGKILL):
        """Signal the postmaster by PID (SIGKILL, SIGSTOP, SIGCONT, ...)."""
        pid = self.postmaster_pid()
        if pid:
            os.kill(pid, sig)
        return pid

    def postmaster_pid(self):
        try:
            with open(os.path.join(self.data_dir, "postmaster.pid")) as f:
                return abs(int(f.readline().strip()))
        except (OSError, ValueError):
            return None

    def is_running(self):
        pid = self.postmaster_pid()
        return bool(pid) and pid_alive(pid)

    # ---- SQL as superuser ----
    def connect(self, via="socket", dbname="postgres", timeout=5):
        conn = psycopg2.connect(self.dsn(via, dbname), connect_timeout=timeout)
        conn.autocommit = True
        return conn

    def query(self, sql, params=None, via="socket"):
        """Rows of one statement (autocommit)."""
        conn = self.connect(via)
        try:
            with conn.cursor() as cur:
                cur.execute(sql, params)
                return cur.fetchall() if cur.description else []
        finally:
            conn.close()

    def query_one(self, sql, params=None, via="socket"):
        rows = self.query(sql, params, via)
        return rows[0][0] if rows else None

    def execute(self, sql, params=None, via="socket"):
        self.query(sql, params, via)

    def accepts_connections(self):
        try:
            return self.query_one("SELECT 1") == 1
        except psycopg2.Error:
            return False


class PgSet:
    """The PostgreSQL servers of one test; stop_all() stops them by PID."""

    def __init__(self, workdir):
        self.base_dir = os.path.join(workdir, "pg")
        hand_to_pg_user(self.base_dir)
        hand_to_pg_user(os.path.join(self.base_dir, "sock"))
        self.nodes = []

    def node(self, name, port=None):
        n = PgNode(self.base_dir, name, port)
        self.nodes.append(n)
        return n

    def init_primary(self, name="n1", extra_conf=None, start=True):
        n = self.node(name)
        n.initdb(extra_conf)
        if start:
            n.start()
        return n

    def make_replica(self, primary, name, slot=None, start=True, wait_streaming=True,
                     timeout=30):
        """pg_basebackup -R -X stream -C -S <slot> from primary over 127.0.0.1."""
        n = self.node(name)
        slot = slot or name
        run_pg([pg_tool("pg_basebackup"), "-h", primary.host, "-p", str(primary.port),
                "-U", SUPERUSER, "-D", n.data_dir, "-R", "-X", "stream", "-C", "-S", slot,
                "-c", "fast"], timeout=120)
        # The copy carries the primary's settings: the last line wins.
        n.append_conf({"port": str(n.port), "cluster_name": f"'{name}'"})
        if start:
            n.start()
            if wait_streaming:
                wait_until(lambda: primary.query_one(
                    "SELECT state FROM pg_stat_replication WHERE application_name = %s",
                    (name,)) == "streaming", timeout, what=f"{name} streaming from {primary.name}")
        return n

    def stop_all(self):
        for n in reversed(self.nodes):
            pids = set(n.started_pids)
            pid = n.postmaster_pid()
            if pid:
                pids.add(pid)
            for p in pids:  # a SIGSTOPped postmaster cannot shut down
                try:
                    os.kill(p, signal.SIGCONT)
                except OSError:
                    pass
            if n.is_running():
                n.stop("immediate", timeout=10)
            for p in pids:
                if pid_alive(p):
                    try:
                        os.kill(p, signal.SIGKILL)
                    except OSError:
                        pass
            deadline = time.monotonic() + 10
            while any(pid_alive(p) for p in pids) and time.monotonic() < deadline:
                time.sleep(0.05)
        self.nodes = []

    def remove(self):
        shutil.rmtree(self.base_dir, ignore_errors=True)
