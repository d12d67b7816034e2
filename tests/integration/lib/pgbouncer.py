"""A pgbouncer 1.18 in front of a DbhaCluster, for tests and benchmarks:
its own directory under the cluster's workdir, an ini file whose
[databases] section `dbctl route pgbouncer` rewrites, scram-sha-256 auth from
a userlist.txt, run as the postgres OS user (pgbouncer refuses root) and
stopped by PID.

    b = Bouncer(cluster); b.start()
    cluster.dbctl("route", "pgbouncer", "--ini", b.ini)
    b.query("SELECT inet_server_port()")
"""
import os

import psycopg2

from .cluster import SUPERUSER, SUPERUSER_PW
from .pg import PG_OS_USER, hand_to_pg_user
from .procs import LOOPBACK, free_port, port_open, wait_until

PGBOUNCER = "/usr/sbin/pgbouncer"

INI = """\
;; pgbouncer for test_pgbouncer.py -- this comment must survive
[databases]
; the write entry: dbctl owns host, port and dbname, the rest is ours
postgres = host=127.0.0.1 port=1 dbname=postgres user={user}   pool_size=4
; postgres_ro is added by dbctl

[pgbouncer]
listen_addr = {addr}
listen_port = {port}
unix_socket_dir =
auth_type = scram-sha-256
auth_file = {dir}/userlist.txt
admin_users = {user}
pidfile = {dir}/pgbouncer.pid
pool_mode = transaction
;; fail fast while the primary is away, retry soon after
server_login_retry = 0.5
server_connect_timeout = 2
query_wait_timeout = 3
ignore_startup_parameters = extra_float_digits

[users]
{user} = pool_mode=transaction
"""


class Bouncer:
    def __init__(self, cluster):
        self.cluster = cluster
        self.dir = os.path.join(cluster.workdir, "pgbouncer")
        hand_to_pg_user(self.dir)
        self.port = free_port()
        self.ini = os.path.join(self.dir, "pgbouncer.ini")
        with open(os.path.join(self.dir, "userlist.txt"), "w") as f:
            f.write(f'"{SUPERUSER}" "{SUPERUSER_PW}"\n')
        self.original = INI.format(user=SUPERUSER, addr=LOOPBACK, port=self.port, dir=self.dir)
        with open(self.ini, "w") as f:
            f.write(self.original)
        self.original_path = os.path.join(self.dir, "original.ini")
        with open(self.original_path, "w") as f:
            f.write(self.original)
        os.chmod(self.ini, 0o644)
        self.proc = None

    def start(self):
        # pgbouncer refuses to run as root: procs switches to postgres
        self.proc = self.cluster.procs.spawn("pgbouncer", [PGBOUNCER, self.ini], user=PG_OS_USER)
        wait_until(lambda: port_open(self.port), 15, what="pgbouncer listening")

    def stop(self):
        if self.proc is not None:
            self.cluster.procs.stop(self.proc)
            self.proc = None

    def text(self):
        with open(self.ini) as f:
            return f.read()

    def connect(self, db="postgres", timeout=2):
        return psycopg2.connect(host=LOOPBACK, port=self.port, dbname=db, user=SUPERUSER,
                                password=SUPERUSER_PW, connect_timeout=timeout)

    def query(self, sql, db="postgres"):
        conn = self.connect(db)
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute(sql)
                return cur.fetchall()
        finally:
            conn.close()
