"""Per-node control groups for the fault tests: which node a socket belongs
to, and how much CPU a node may have.

On these hosts every node's processes share 127.0.0.1 and the `postgres`
user, so neither an address nor a user tells whose packet it is. A control
group does: each node's agent is started inside a cgroup of its own (the
cgroup v2 hierarchy, for nftables' `socket cgroupv2`, and cgroup v1's `cpu`
controller where it is mounted, for a CPU quota), and everything it starts
(PostgreSQL, the fencing process) inherits it.

    cg = NodeCgroups("dbha-1234-node1")
    argv = cg.wrap(["dbagent", "node1.yml"], user="postgres")
    cg.nft_match()              # 'socket cgroupv2 level 1 "unified/dbha-..."'
    cg.starve(2000, 100000)     # 2 ms of CPU per 100 ms for the whole node
    cg.feed()                   # no quota
    cg.delete()                 # once its processes are gone

The wrapper is this file run as a program (as root): it moves itself into
the groups, drops to the user and execs the program, so the PID the test
holds is the program's own and no socket is ever made outside the group.
Needs root, a writable cgroup v2 hierarchy and nftables >= 0.9.5 (Debian 12).
"""
import os
import pwd
import sys
import time

CGROUP_ROOT = "/sys/fs/cgroup"


def _v2_mount():
    """Where the cgroup v2 hierarchy is mounted (unified or hybrid layout)."""
    with open("/proc/mounts") as f:
        for line in f:
            parts = line.split()
            if len(parts) > 2 and parts[2] == "cgroup2":
                return parts[1]
    return None


def _v1_cpu_mount():
    with open("/proc/mounts") as f:
        for line in f:
            parts = line.split()
            if len(parts) > 3 and parts[2] == "cgroup" and "cpu" in parts[3].split(","):
                return parts[1]
    return None


def available():
    """Why per-node cgroups cannot be used here, or None."""
    if os.geteuid() != 0:
        return "needs root"
    if _v2_mount() is None:
        return "no cgroup v2 hierarchy mounted"
    return None


class NodeCgroups:
    def __init__(self, name):
        self.name = name
        v2 = _v2_mount()
        if v2 is None:
            raise RuntimeError("no cgroup v2 hierarchy mounted")
        self.v2 = os.path.join(v2, name)
        # nftables resolves the path below /sys/fs/cgroup; the level counts
        # from the hierarchy's root (its mount point)
        self.nft_path = os.path.relpath(self.v2, CGROUP_ROOT)
        self.nft_level = os.path.relpath(self.v2, v2).count("/") + 1
        cpu = _v1_cpu_mount()
        self.cpu = os.path.join(cpu, name) if cpu else None
        for d in (self.v2, self.cpu):
            if d:
                os.makedirs(d, exist_ok=True)
        if self.cpu is None:  # pure v2: the cpu controller of the parent
            try:
                with open(os.path.join(v2, "cgroup.subtree_control"), "w") as f:
                    f.write("+cpu")
            except OSError:
                pass

    def wrap(self, argv, user):
        procs = [os.path.join(self.v2, "cgroup.procs")]
        if self.cpu:
            procs.append(os.path.join(self.cpu, "cgroup.procs"))
        return [sys.executable, os.path.abspath(__file__), user or "", ",".join(procs), "--",
                *argv]

    def nft_match(self):
        return f'socket cgroupv2 level {self.nft_level} "{self.nft_path}"'

    def starve(self, quota_us, period_us=100000):
        if self.cpu:
            self._write(self.cpu, "cpu.cfs_period_us", period_us)
            self._write(self.cpu, "cpu.cfs_quota_us", quota_us)
        else:
            self._write(self.v2, "cpu.max", f"{quota_us} {period_us}")

    def feed(self):
        if self.cpu:
            self._write(self.cpu, "cpu.cfs_quota_us", -1)
        else:
            self._write(self.v2, "cpu.max", "max")

    @staticmethod
    def _write(d, f, value):
        with open(os.path.join(d, f), "w") as fh:
            fh.write(str(value))

    def delete(self, timeout=10):
        """Remove the groups; processes still in them are moved to the parent."""
        for d in (self.cpu, self.v2):
            if not d or not os.path.isdir(d):
                continue
            deadline = time.monotonic() + timeout
            for _ in range(1000):
                try:
                    os.rmdir(d)
                    break
                except OSError:
                    if time.monotonic() >= deadline:
                        break
                    try:
                        with open(os.path.join(d, "cgroup.procs")) as f:
                            pids = f.read().split()
                        for p in pids:
                            with open(os.path.join(os.path.dirname(d), "cgroup.procs"),
                                      "w") as f:
                                f.write(p)
                    except OSError:
                        pass
                    time.sleep(0.05)


def _main():
    user, procs, sep, *argv = sys.argv[1:]
    if sep != "--" or not argv:
        sys.exit("usage: nodecg.py USER PROCS -- PROGRAM ARGS...")
    for p in procs.split(","):
        with open(p, "w") as f:
            f.write(str(os.getpid()))
    if user:
        pw = pwd.getpwnam(user)
        os.setgroups([])
        os.setgid(pw.pw_gid)
        os.setuid(pw.pw_uid)
    os.execv(argv[0], argv)


if __name__ == "__main__":
    _main()
