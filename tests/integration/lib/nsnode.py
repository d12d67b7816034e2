"""A dbha node run from a configuration file of tests/patroni-configs/ in a
mount namespace of its own: empty tmpfs over the directories the file's
layout fixes (one host's file system a node, one network), set-up steps
run as root in the namespace, then the agent as the postgres user. The
file is changed only by the substitutions given (names, addresses, ports,
the etcd endpoint), each of which must match exactly once."""
import os
import subprocess
import tempfile

from lib.pg import PG_OS_USER
from lib.procs import binary, wait_until

CORPUS = os.path.join(os.path.dirname(__file__), "..", "..", "patroni-configs")


def namespace_workdir(prefix):
    """A temp dir the postgres user can read (the configs are in it)."""
    wd = tempfile.mkdtemp(prefix=prefix)
    os.chmod(wd, 0o755)
    return wd


class NamespaceNode:
    def __init__(self, name, wd, corpus_file, substitutions, tmpfs, socket_dir):
        self.name = name
        self.tmpfs = tmpfs
        self.socket_dir = socket_dir
        with open(os.path.join(CORPUS, corpus_file)) as f:
            text = f.read()
        for old, new in substitutions:
            assert text.count(old) == 1, (self.name, old)
            text = text.replace(old, new)
        self.config_path = os.path.join(wd, f"{self.name}.yml")
        with open(self.config_path, "w") as f:
            f.write(text)
        os.chmod(self.config_path, 0o644)
        self.proc = None

    def start(self, procs, setup=()):
        """setup: shell steps run as root in the namespace after the tmpfs
        mounts, before the agent starts."""
        uid, gid = int(subprocess.check_output(["id", "-u", PG_OS_USER])), \
            int(subprocess.check_output(["id", "-g", PG_OS_USER]))
        steps = [f"mkdir -p {d} && mount -t tmpfs -o mode=0755,uid={uid},gid={gid} "
                 f"dbha-{self.name} {d}" for d in self.tmpfs] + list(setup)
        # unshare and setpriv exec: the PID is the agent's
        script = (" && ".join(steps) + f" || exit 9; exec setpriv --reuid={PG_OS_USER} "
                  f"--regid={PG_OS_USER} --init-groups {binary('dbagent')} {self.config_path}")
        self.proc = procs.spawn(self.name, ["unshare", "--mount", "--propagation", "private",
                                            "sh", "-c", script])

    def run(self, argv, timeout=20):
        """argv as the postgres user in this node's mount namespace."""
        assert self.proc is not None and self.proc.poll() is None, f"{self.name} is not running"
        return subprocess.run(["nsenter", "-t", str(self.proc.pid), "-m", "--", "setpriv",
                               f"--reuid={PG_OS_USER}", f"--regid={PG_OS_USER}", "--init-groups",
                               *argv], capture_output=True, text=True, timeout=timeout)

    def psql(self, sql):
        """Through the node's Unix socket, as its superuser; None on failure."""
        p = self.run(["psql", "-X", "-A", "-t", "-h", self.socket_dir, "-p", str(self.pg_port),
                      "-U", "postgres", "-d", "postgres", "-c", sql])
        return p.stdout.strip() if p.returncode == 0 else None

    def read(self, path):
        p = self.run(["cat", path])
        return p.stdout if p.returncode == 0 else None

    def kill_node(self, data_dir):
        """kill -9 of the node: its agent, then its postmaster."""
        pm = int(self.read(f"{data_dir}/postmaster.pid").splitlines()[0])
        os.kill(self.proc.pid, 9)
        self.proc.wait(10)
        try:
            os.kill(pm, 9)
        except ProcessLookupError:
            pass

    def streaming(self):
        return self.psql("SELECT status FROM pg_catalog.pg_stat_wal_receiver") == "streaming"


def start_first_then_rest(procs, nodes, first_ready, timeout, what):
    """The first node alone until first_ready(node) (it bootstraps or clones
    the cluster), then the others."""
    nodes[0].start(procs)
    wait_until(lambda: first_ready(nodes[0]), timeout, interval=0.5, what=what)
    for n in nodes[1:]:
        n.start(procs)


def stop_and_check(procs, nodes, wd, sanitizer_lines, clusters=()):
    """The end of a fixture: the nodes' agents stopped by PID (then any
    DbhaCluster in clusters), every process stopped, no sanitizer report in
    any log."""
    for n in nodes:
        if n.proc is not None:
            procs.stop(n.proc, timeout=60)
    for c in clusters:
        c.stop_all()
    logs = sorted({procs.log_path(name) for name, _, _ in procs.procs})
    procs.stop_all()
    found = [f"{p}: {line}" for p in logs for line in sanitizer_lines(p)]
    assert not found, "sanitizer report(s):\n" + "\n".join(found[:50])
    print(f"\ncluster logs in {wd}")
