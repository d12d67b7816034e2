"""A dbha cluster for the integration tests: one etcd and N nodes, each node
a dbagent (run as `postgres` when the tests run as root) managing its own
PostgreSQL 15 on free loopback ports, with its data under workdir/<name>.

    c = DbhaCluster(procs, workdir, n=3).start()
    c.wait_healthy()                      # one primary, the others streaming
    c.status()                            # dbctl status -o json, parsed
    c.node("node1").sql("SELECT 1")

Agents are stopped by PID through `procs`; their PostgreSQL servers are
stopped by the agents on SIGTERM, and by PID (postmaster.pid) in teardown.
"""
import json
import os
import signal
import subprocess
import urllib.error
import urllib.request

import psycopg2

from .etcd_cluster import EtcdCluster, EtcdTls
from .nodecg import NodeCgroups
from .pg import PG_OS_USER, as_root, hand_to_pg_user, pid_alive
from .procs import LOOPBACK, binary, free_port, wait_until

SUPERUSER, SUPERUSER_PW = "postgres", "super-secret"
REPL, REPL_PW = "replicator", "repl-secret"
REWIND, REWIND_PW = "rewinder", "rewind-secret"


def node_etcd_address(i):
    """The loopback address node i (from 0) reaches etcd at, with etcd_per_node."""
    return f"127.0.1.{i + 1}"


class Node:
    def __init__(self, cluster, name):
        self.cluster = cluster
        self.name = name
        self.dir = os.path.join(cluster.workdir, name)
        self.data_dir = os.path.join(self.dir, "data")
        self.pg_port = free_port()
        self.api_port = free_port()
        self.config_path = os.path.join(cluster.workdir, f"{name}.yml")
        self.proc = None
        self.tags = {}
        self.repl_password = REPL_PW
        self.watchdog = {"mode": "off"}
        self.env = None  # extra environment for the agent
        self.rest_auth = None  # (user, password): restapi.authentication
        self.postgresql_yaml = ""  # more lines of the postgresql section, indented by two
        self.bootstrap_yaml = ""  # more lines of the bootstrap section, indented by two
        self.config_in_env = False  # True: no file, the document in PATRONI_CONFIGURATION
        self.parameters = {}  # more postgresql.parameters
        # more keys of postgresql.authentication.<user> (sslmode, sslrootcert, ...)
        self.auth_extra = {"superuser": {}, "replication": {}, "rewind": {}}
        self.local_pg_hba = True  # False: no postgresql.pg_hba (the cluster's is used)
        self.etcd_hosts = None  # etcd3.hosts of this node (default: the cluster's endpoints)
        self.etcd_endpoints_yaml = None  # lines instead of etcd3.hosts (url, proxy, port, ...)
        self.cgroup = None  # lib.nodecg.NodeCgroups the agent (and all it starts) runs in

    def config(self):
        c = self.cluster
        watchdog = "".join(f"  {k}: {json.dumps(v)}\n" for k, v in self.watchdog.items())
        params = "".join(f"    {k}: {json.dumps(v)}\n" for k, v in self.parameters.items())
        tags = "".join(f"  {k}: {json.dumps(v)}\n"
                       for k, v in dict({"nofailover": False}, **self.tags).items())
        return f"""\
scope: {c.scope}
namespace: /service/
name: {self.name}
restapi:
  listen: {LOOPBACK}:{self.api_port}
  connect_address: {LOOPBACK}:{self.api_port}
{self.rest_auth_yaml()}etcd3:
{self.etcd_endpoints_yaml or f'  hosts: {",".join(self.etcd_hosts or c.etcd.endpoints)}{chr(10)}'}{c.etcd_security_yaml()}bootstrap:
  dcs:
    ttl: {c.ttl}
    loop_wait: {c.loop_wait}
    retry_timeout: {c.retry_timeout}
{c.dcs_extra_yaml()}    postgresql:
      use_pg_rewind: true
      use_slots: true
{c.dcs_postgresql_yaml()}      parameters:
        max_connections: 50
        wal_keep_size: 64MB
  initdb:
    - encoding: UTF8
  pg_hba:
    - local all all trust
    - host replication {REPL} 127.0.0.1/32 scram-sha-256
    - host all all 127.0.0.1/32 scram-sha-256
{self.bootstrap_yaml}postgresql:
  listen: {LOOPBACK}:{self.pg_port}
  connect_address: {LOOPBACK}:{self.pg_port}
  data_dir: {self.data_dir}
  bin_dir: /usr/lib/postgresql/15/bin
  pgpass: {self.dir}/pgpass
  authentication:
    superuser: {self.auth_yaml("superuser", SUPERUSER, SUPERUSER_PW)}
    replication: {self.auth_yaml("replication", REPL, self.repl_password)}
    rewind: {self.auth_yaml("rewind", REWIND, REWIND_PW)}
  parameters:
    unix_socket_directories: {self.dir}
    fsync: "off"
    shared_buffers: 16MB
{params}{self.local_pg_hba_yaml()}{self.postgresql_yaml}tags:
{tags}watchdog:
{watchdog}log:
  level: {c.log_level}
"""

    def local_pg_hba_yaml(self):
        if not self.local_pg_hba:
            return ""
        return ("  pg_hba:\n"
                "    - local all all trust\n"
                f"    - host replication {REPL} 127.0.0.1/32 scram-sha-256\n"
                "    - host all all 127.0.0.1/32 scram-sha-256\n")

    def auth_yaml(self, user, name, password):
        return json.dumps(dict({"username": name, "password": password}, **self.auth_extra[user]))

    def write_config(self):
        with open(self.config_path, "w") as f:
            f.write(self.config())
        os.chmod(self.config_path, 0o644)

    def start(self):
        hand_to_pg_user(self.dir)
        if not self.config_in_env:
            self.write_config()
        env = dict(os.environ, **self.env) if self.env else None
        argv, user = [binary("dbagent"), self.config_path], PG_OS_USER
        if self.config_in_env:
            env = dict(env or os.environ, PATRONI_CONFIGURATION=self.config())
            argv = [binary("dbagent")]
        if self.cgroup is not None:  # the wrapper joins the groups, then drops to the user
            argv, user = self.cgroup.wrap(argv, PG_OS_USER if as_root() else None), None
        self.proc = self.cluster.procs.spawn(self.name, argv, env=env, user=user)
        return self

    def stop(self, sig=signal.SIGTERM, timeout=60):
        if self.proc is not None:
            self.cluster.procs.stop(self.proc, sig, timeout=timeout)
            rc = self.proc.returncode
            self.proc = None
            return rc
        return None

    def kill(self):
        return self.stop(signal.SIGKILL)

    def kill_with_postgres(self):
        """kill -9 of the agent, then of its PostgreSQL (a node that dies whole)."""
        pid = self.postmaster_pid()
        self.kill()
        if pid:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            wait_until(lambda: self.postmaster_pid() is None, 10, what="postmaster gone")

    def rest_auth_yaml(self):
        if not self.rest_auth:
            return ""
        return (f"  authentication:\n    username: {self.rest_auth[0]}\n"
                f"    password: {self.rest_auth[1]}\n")

    def api(self, path, method="GET", timeout=3, data=None):
        req = urllib.request.Request(f"http://{LOOPBACK}:{self.api_port}{path}", method=method,
                                     data=data.encode() if data is not None else None,
                                     headers={"Content-Type": "application/json"} if data else {})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def api_json(self, path):
        code, body = self.api(path)
        return code, json.loads(body) if body else None

    def connect(self, dbname="postgres"):
        return psycopg2.connect(host=self.dir, port=self.pg_port, user=SUPERUSER,
                                dbname=dbname, connect_timeout=3)

    def sql(self, query, params=None):
        conn = self.connect()
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute(query, params)
                return cur.fetchall() if cur.description else None
        finally:
            conn.close()

    def postmaster_pid(self):
        try:
            with open(os.path.join(self.data_dir, "postmaster.pid")) as f:
                pid = int(f.readline())
        except (OSError, ValueError):
            return None
        return pid if pid_alive(pid) else None


class DbhaCluster:
    def __init__(self, procs, workdir, n=3, scope="itest", ttl=10, loop_wait=1, retry_timeout=2,
                 log_level="DEBUG", etcd_size=1, etcd_per_node=False, etcd_tls=False,
                 etcd_auth=None, etcd_args=(), node_cgroups=False, node_tmpfs=None,
                 **dcs_extra):
        self.dcs_extra = dcs_extra  # more bootstrap.dcs keys, e.g. primary_start_timeout=0
        self.dcs_postgresql = {}  # more bootstrap.dcs.postgresql keys (pg_hba, pg_ident)
        self.procs = procs
        self.workdir = workdir
        self.scope = scope
        self.ttl, self.loop_wait, self.retry_timeout = ttl, loop_wait, retry_timeout
        self.log_level = log_level
        if as_root():
            os.chmod(workdir, 0o755)
        # etcd_per_node: node i reaches etcd at 127.0.1.i only, so that
        # lib.partition can cut one node off from etcd and nothing else
        addrs = [node_etcd_address(i) for i in range(n)] if etcd_per_node else []
        # etcd_tls: https with client certificates (lib.etcd_cluster.EtcdTls);
        # etcd_auth: (user, password) with read-write on /service/ only, auth
        # enabled once etcd is up. The agents and dbctl (-c a node's config)
        # use both.
        self.tls = None
        if etcd_tls:
            tls_dir = os.path.join(workdir, "tls")
            self.tls = EtcdTls(tls_dir)
            hand_to_pg_user(tls_dir)  # the agents run as postgres and read the client key
            for f in os.listdir(tls_dir):
                os.chmod(os.path.join(tls_dir, f), 0o644)
        self.etcd_auth = etcd_auth
        self.etcd = EtcdCluster(procs, workdir, size=etcd_size, extra_addresses=addrs,
                                tls=self.tls, extra_args=etcd_args)
        self.nodes = [Node(self, f"node{i + 1}") for i in range(n)]
        for i, node in enumerate(self.nodes if etcd_per_node else []):
            node.etcd_host = addrs[i]
            node.etcd_hosts = [f"{addrs[i]}:{m.client_port}" for m in self.etcd.members]
        # node_cgroups: each agent and all it starts in cgroups of its own
        # (lib.nodecg), so that nftables can tell its sockets from the other
        # nodes' and a CPU quota can starve it
        for node in self.nodes if node_cgroups else []:
            node.cgroup = NodeCgroups(f"dbha-{os.getpid()}-{os.path.basename(workdir)}-"
                                      f"{node.name}")
        # node_tmpfs: each node's directory (data directory, WAL, sockets) on a
        # tmpfs of this size, so that a test can fill it
        self.node_tmpfs = node_tmpfs
        self.mounted = []

    def etcd_security_yaml(self):
        out = ""
        if self.tls:
            out += (f"  protocol: https\n  cacert: {self.tls.ca}\n"
                    f"  cert: {self.tls.client_cert}\n  key: {self.tls.client_key}\n")
        if self.etcd_auth:
            out += f"  username: {self.etcd_auth[0]}\n  password: {self.etcd_auth[1]}\n"
        return out

    def mount_node_dirs(self):
        for node in self.nodes:
            if node.dir in self.mounted:
                continue
            os.makedirs(node.dir, exist_ok=True)
            subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={self.node_tmpfs},mode=0755",
                           f"dbha-{node.name}", node.dir], check=True, capture_output=True,
                           timeout=10)
            self.mounted.append(node.dir)

    def start(self, nodes=None):
        if self.node_tmpfs:
            self.mount_node_dirs()
        if self.etcd.members[0].proc is None:
            self.etcd.start()
            if self.etcd_auth:
                self.etcd.setup_auth(*self.etcd_auth, prefix="/service/")
        for node in nodes or self.nodes:
            node.start()
        return self

    def dcs_postgresql_yaml(self):
        return "".join(f"      {k}: {json.dumps(v)}\n" for k, v in self.dcs_postgresql.items())

    def dcs_extra_yaml(self):
        return "".join(f"    {k}: {json.dumps(v)}\n" for k, v in self.dcs_extra.items())

    def node(self, name):
        return next(n for n in self.nodes if n.name == name)

    def dbctl(self, *args, timeout=30):
        if self.tls or self.etcd_auth:  # --etcd is plain http without credentials
            argv = [binary("dbctl"), "-c", self.nodes[0].config_path, *args]
        else:
            argv = [binary("dbctl"), "--etcd", ",".join(self.etcd.endpoints), "--scope",
                    self.scope, *args]
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout)

    def status(self):
        r = self.dbctl("status", "-o", "json")
        assert r.returncode == 0, r.stderr
        return json.loads(r.stdout)

    def etcd_get(self, key):
        """Value of /service/<scope>/<key> as text, or None."""
        return self.etcd.get(f"/service/{self.scope}/{key}")

    def wait_healthy(self, timeout=90, replicas=None):
        """One primary and every other started node streaming; returns the status."""
        want = replicas if replicas is not None else len([n for n in self.nodes if n.proc]) - 1

        def ok():
            s = self.status()
            prim = [m for m in s["members"] if m["role"] == "primary" and m["state"] == "running"]
            stream = [m for m in s["members"] if m["role"] in ("replica", "sync_standby")
                      and m["state"] == "streaming"]
            return s if len(prim) == 1 and len(stream) == want and s["leader"] else None

        return wait_until(ok, timeout, interval=0.5, what="one primary and streaming replicas")

    def primary(self):
        s = self.status()
        return self.node(s["leader"])

    def stop_all(self):
        for n in self.nodes:
            try:
                n.stop(timeout=60)
            except Exception:  # noqa: BLE001 - teardown goes on
                pass
        # PostgreSQL servers an agent could not stop (a test killed it): by PID
        for n in self.nodes:
            pid = n.postmaster_pid()
            if pid:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                wait_until(lambda: not pid_alive(pid), 10, what=f"postmaster {pid} gone")
        for n in self.nodes:
            if n.cgroup is not None:
                n.cgroup.delete()
        for d in self.mounted:
            subprocess.run(["umount", "-l", d], capture_output=True, timeout=10)
        self.mounted = []
