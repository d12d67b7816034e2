"""Process and port helpers for the integration tests.

Every process a test starts goes through `Procs.spawn`, which records its PID
so teardown can stop it by PID even when the test failed half-way. Ports come
from `free_port()`, which binds port 0 on 127.0.0.1 and remembers what it
handed out so two peers in one run never get the same number.
"""
import atexit
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

LOOPBACK = "127.0.0.1"
_handed_out = set()


def build_dir():
    """The sanitized build tree the tests run (set by `make integration`)."""
    d = os.environ.get("DBHA_BUILD")
    if not d:
        here = os.path.dirname(os.path.abspath(__file__))
        d = os.path.normpath(os.path.join(here, "..", "..", "..", "build", "asan"))
    return d


_runnable_dir = None


def _runnable(rel):
    """The program build_dir()/rel, at a path every user can execute.

    As root, agents and drivers run as `postgres`, which may not be able to
    reach the build tree at all (a clone under a 0700 directory, as mktemp -d
    makes). They then run copies kept in one world-readable temp dir for the
    session, refreshed whenever the build is newer.
    """
    global _runnable_dir
    src = os.path.join(build_dir(), rel)
    if os.geteuid() != 0:
        return src
    if _runnable_dir is None:
        _runnable_dir = tempfile.mkdtemp(prefix="dbha-bin-")
        os.chmod(_runnable_dir, 0o755)
        atexit.register(shutil.rmtree, _runnable_dir, True)
    dst = os.path.join(_runnable_dir, rel.replace(os.sep, "_"))
    st = os.stat(src)
    if not os.path.exists(dst) or os.stat(dst).st_mtime_ns != st.st_mtime_ns:
        tmp = dst + ".tmp"
        shutil.copy2(src, tmp)
        os.chmod(tmp, 0o755)
        os.replace(tmp, dst)
    return dst


def tool(name):
    """Path of a test driver built from tests/tools/<name>.c."""
    return _runnable(os.path.join("tests", "tools", name))


def binary(name):
    """Path of dbagent or dbctl in the tested build."""
    return _runnable(os.path.join("bin", name))


# Under pytest-xdist (`make integration` runs the modules marked concurrent
# three at a time) each worker hands out ports from a range of its own, below
# the kernel's ephemeral range: two workers never pick the same port between
# one's probe and its server's bind.
_WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")
_WORKER_PORTS = 4000


def _worker_port_range():
    if not _WORKER.startswith("gw") or not _WORKER[2:].isdigit():
        return None
    first = 12000 + (int(_WORKER[2:]) % 5) * _WORKER_PORTS
    return range(first, first + _WORKER_PORTS)


def _bindable(port):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((LOOPBACK, port))
        except OSError:
            return False
    return True


def free_port():
    """A TCP port on 127.0.0.1 that was free a moment ago and not handed out before."""
    ports = _worker_port_range()
    if ports is not None:
        for port in ports:
            if port not in _handed_out and _bindable(port):
                _handed_out.add(port)
                return port
        raise RuntimeError(f"no free loopback port left in {ports} for worker {_WORKER}")
    for _ in range(200):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind((LOOPBACK, 0))
            port = s.getsockname()[1]
        if port not in _handed_out:
            _handed_out.add(port)
            return port
    raise RuntimeError("no free loopback port found in 200 tries")


def wait_until(pred, timeout, interval=0.05, what="condition"):
    """Poll pred() until it returns a true value (returned) or timeout seconds pass (AssertionError)."""
    deadline = time.monotonic() + timeout
    last_exc = None
    while True:
        try:
            v = pred()
            if v:
                return v
        except Exception as e:  # noqa: BLE001 - the predicate may fail while a peer starts
            last_exc = e
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}"
                                 + (f" (last error: {last_exc!r})" if last_exc else ""))
        time.sleep(interval)


def port_open(port, host=LOOPBACK):
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


class Procs:
    """Registry of started processes; stop_all() is called in teardown."""

    def __init__(self, logdir):
        self.logdir = logdir
        self.procs = []  # (name, Popen, logfile)

    def spawn(self, name, argv, env=None, cwd=None, user=None):
        """Start argv with stdout+stderr to logdir/name.log; returns the Popen."""
        log_path = os.path.join(self.logdir, f"{name}.log")
        logf = open(log_path, "ab")
        creds = {}
        if user is not None and os.geteuid() == 0:
            # switch user in the child itself (not through runuser), so that
            # signals sent to the PID reach the program under test directly
            creds = {"user": user, "group": user, "extra_groups": []}
        p = subprocess.Popen(argv, stdout=logf, stderr=subprocess.STDOUT, env=env,
                             cwd=cwd or self.logdir, start_new_session=True, **creds)
        self.procs.append((name, p, logf))
        return p

    def log_path(self, name):
        return os.path.join(self.logdir, f"{name}.log")

    def log_contains(self, name, text):
        try:
            with open(self.log_path(name), "rb") as f:
                return text.encode() in f.read()
        except FileNotFoundError:
            return False

    def log_count(self, name, text):
        try:
            with open(self.log_path(name), "rb") as f:
                return f.read().count(text.encode())
        except FileNotFoundError:
            return 0

    def stop(self, p, sig=signal.SIGTERM, timeout=10):
        """Send sig to the PID, wait up to timeout, then SIGKILL."""
        if p.poll() is None:
            try:
                os.kill(p.pid, sig)
            except ProcessLookupError:
                pass
            try:
                p.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.kill(p.pid, signal.SIGKILL)
                p.wait(timeout=10)
        return p.returncode

    def kill(self, p):
        """SIGKILL by PID (a crash, not a shutdown)."""
        return self.stop(p, signal.SIGKILL)

    def stop_all(self):
        for _, p, logf in reversed(self.procs):
            try:
                self.stop(p, timeout=10)
            finally:
                logf.close()
        self.procs = []


def proc_state(pid):
    """The state letter of /proc/PID/stat, or None when there is no such process."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return None


def pid_running(pid):
    """Alive and not a zombie (a SIGKILLed child of a stopped parent stays one)."""
    return proc_state(pid) not in (None, "Z", "X")
