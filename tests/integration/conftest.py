"""pytest fixtures shared by every integration test.

Each test gets a temp dir and a `procs` registry that stops, by PID, every
process the test started. The sanitized binaries write ASan/UBSan reports to
files under one directory; the session fails if any report appears.
"""
import contextlib
import glob
import os
import shutil
import sys
import tempfile

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from lib.cluster import DbhaCluster  # noqa: E402
from lib.partition import Partition  # noqa: E402
from lib.procs import Procs  # noqa: E402

SAN_DIR = tempfile.mkdtemp(prefix="dbha-san-")
# processes that run as `postgres` write their reports here too
os.chmod(SAN_DIR, 0o1777)


def _san_env():
    asan = os.environ.get("ASAN_OPTIONS", "halt_on_error=1:detect_leaks=1:exitcode=99")
    ubsan = os.environ.get("UBSAN_OPTIONS", "halt_on_error=1:print_stacktrace=1:exitcode=99")
    os.environ["ASAN_OPTIONS"] = asan + f":log_path={SAN_DIR}/asan"
    os.environ["UBSAN_OPTIONS"] = ubsan + f":log_path={SAN_DIR}/ubsan"


_san_env()


def sanitizer_reports():
    return sorted(glob.glob(os.path.join(SAN_DIR, "*")))


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "concurrent: the module measures no time and shares nothing with "
        "others: `make integration` runs these modules ITEST_JOBS (3) at a time (pytest-xdist, "
        "--dist loadfile) before the others, which run one at a time")


@pytest.fixture
def workdir(request):
    d = tempfile.mkdtemp(prefix=f"dbha-{request.node.name[:40]}-")
    os.chmod(d, 0o755)
    yield d
    passed = request.node.rep_call.passed if hasattr(request.node, "rep_call") else False
    if passed and not os.environ.get("DBHA_KEEP_LOGS"):
        shutil.rmtree(d, ignore_errors=True)
    else:
        print(f"\nkept logs in {d}")


# What a sanitizer prints. UBSan built together with ASan ignores
# UBSAN_OPTIONS=log_path and writes to the process's stderr, so the logs of
# every process a test started are scanned too.
SAN_MARKERS = (b"runtime error: ", b"ERROR: AddressSanitizer", b"ERROR: LeakSanitizer",
               b"SUMMARY: UndefinedBehaviorSanitizer")


def sanitizer_lines(path):
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return []
    return [l.decode(errors="replace") for l in data.splitlines()
            if any(m in l for m in SAN_MARKERS)]


@pytest.fixture
def procs(workdir):
    p = Procs(workdir)
    yield p
    logs = sorted({p.log_path(name) for name, _, _ in p.procs})
    p.stop_all()
    found = [f"{path}: {line}" for path in logs for line in sanitizer_lines(path)]
    if found:
        pytest.fail("sanitizer report(s) in process logs:\n" + "\n".join(found[:50]))


@pytest.fixture
def partition():
    """An nftables table of the test's own (lib/partition.py), deleted in teardown."""
    p = Partition()
    yield p
    p.delete()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)


@pytest.fixture(autouse=True)
def no_new_sanitizer_reports():
    """A sanitizer report written during a test fails that test."""
    before = set(sanitizer_reports())
    yield
    new = [f for f in sanitizer_reports() if f not in before]
    if new:
        text = "".join(open(f, errors="replace").read() for f in new)
        pytest.fail("sanitizer report(s):\n" + text[:20000])


@contextlib.contextmanager
def started_cluster(prefix, configure=None, **kwargs):
    """A started, healthy DbhaCluster(**kwargs) in its own temp dir, for a
    module-scoped fixture; configure(cluster) runs before the start. At the
    end every process is stopped and their logs are scanned for sanitizer
    reports."""
    wd = tempfile.mkdtemp(prefix=prefix)
    os.chmod(wd, 0o755)
    procs = Procs(wd)
    c = DbhaCluster(procs, wd, **kwargs)
    if configure:
        configure(c)
    try:
        c.start()
        c.wait_healthy(timeout=120)
        yield c
    finally:
        c.stop_all()
        logs = sorted({procs.log_path(n) for n, _, _ in procs.procs})
        procs.stop_all()
        found = [f"{p}: {line}" for p in logs for line in sanitizer_lines(p)]
        # the logs stay; the data directories (~200 MB a node) do not
        for node in c.nodes:
            for d in glob.glob(node.data_dir + "*"):  # also clones and dirs moved aside
                shutil.rmtree(d, ignore_errors=True)
        assert not found, "sanitizer report(s):\n" + "\n".join(found[:50])
        print(f"\ncluster logs in {wd}")
