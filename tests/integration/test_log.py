"""lib/log end to end: timestamped lines on stderr by default, structured
journald entries (PRIORITY, MESSAGE_ID, DBHA_MEMBER/SCOPE/ROLE) when stderr is
the journal stream, and a repeated condition logged only when it changes."""
import json
import os
import re
import shutil
import subprocess
import time

import pytest

from lib.cluster import DbhaCluster
from lib.pg import hand_to_pg_user
from lib.procs import tool, wait_until

pytestmark = pytest.mark.concurrent

HERE = os.path.dirname(os.path.abspath(__file__))


def test_stderr_lines_have_timestamps_and_conditions_log_once():
    env = {k: v for k, v in os.environ.items() if k != "JOURNAL_STREAM"}
    r = subprocess.run([tool("log_driver")], capture_output=True, text=True, env=env, timeout=30)
    assert r.returncode == 0, r.stderr
    lines = r.stderr.splitlines()
    stamp = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} "
    assert all(re.match(stamp, l) for l in lines), lines
    assert re.match(stamp + r"INFO    \[node1\] agent starting$", lines[0])
    assert lines[1].endswith("WARNING [node1] etcd unreachable: Connection refused")
    assert lines[2].endswith("NOTICE  [node1] promoted to primary")
    # 10 failing checks then 10 good ones: exactly one line each way
    down = [l for l in lines if "postgresql down" in l]
    assert len(down) == 2, lines
    assert down[0].endswith("WARNING [node1] postgresql down: connection refused")
    assert down[1].endswith("INFO    [node1] postgresql down: resolved after 10.000 s (10 checks failed)")
    assert len(lines) == 5


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("unshare"),
                    reason="needs root for a private mount namespace")
def test_journal_entries_are_structured(workdir):
    out = os.path.join(workdir, "journal.json")
    subprocess.run(["unshare", "-m", "--propagation", "private", "/usr/bin/python3",
                    os.path.join(HERE, "journal_sink.py"), out, tool("log_driver")],
                   check=True, timeout=60)
    with open(out) as f:
        got = json.load(f)
    assert got["rc"] == 0
    assert got["stderr"] == "", "with the journal as target nothing goes to stderr"
    entries = got["entries"]
    msgs = [e["MESSAGE"] for e in entries]
    assert msgs == ["agent starting", "etcd unreachable: Connection refused",
                    "promoted to primary", "postgresql down: connection refused",
                    "postgresql down: resolved after 10.000 s (10 checks failed)"], msgs
    assert [e["PRIORITY"] for e in entries] == ["6", "4", "5", "4", "6"]
    for e in entries:
        assert e["DBHA_MEMBER"] == "node1"
        assert e["DBHA_SCOPE"] == "demo"
        assert e["DBHA_ROLE"] == "replica"
    assert entries[2]["MESSAGE_ID"] == "8d2a4f1e5b7c4c0a9e6d3b2f1a0c9e8d"
    assert "MESSAGE_ID" not in entries[0]
    assert entries[0]["CODE_FUNC"] == "main"


def test_log_dir_from_the_environment_writes_rotated_patroni_log(procs, workdir):
    """Patroni's log.dir, file_size and file_num (here through PATRONI_LOG_*):
    the agent's lines go to DIR/patroni.log, not stderr, rotated as Python's
    RotatingFileHandler keeps file_num old files; a directory it cannot
    open stops the start with the reason."""
    c = DbhaCluster(procs, workdir, n=1)  # log level DEBUG: a few lines per loop
    node = c.nodes[0]
    logdir = os.path.join(workdir, "patroni-logs")
    hand_to_pg_user(logdir)
    node.env = {"PATRONI_LOG_DIR": logdir, "PATRONI_LOG_FILE_SIZE": "800",
                "PATRONI_LOG_FILE_NUM": "2"}
    try:
        c.start()
        wait_until(lambda: (c.status()["leader"] == node.name) or None, 90, interval=0.5,
                   what="the node leads")
        files = lambda: sorted(os.listdir(logdir))  # noqa: E731
        wait_until(lambda: files() == ["patroni.log", "patroni.log.1", "patroni.log.2"] or None,
                   60, interval=0.5, what="two rotated files")
        text = ""
        for name in ("patroni.log.2", "patroni.log.1", "patroni.log"):
            with open(os.path.join(logdir, name)) as f:
                part = f.read()
            if name != "patroni.log":
                # each rotated file stopped below the size a line would reach
                assert 0 < len(part.encode()) < 800, (name, len(part))
            text += part
        assert f"[{node.name}]" in text
        assert "DEBUG" in text and "loop " in text
        # more rotations since: still never a third old file
        time.sleep(2)
        assert files() == ["patroni.log", "patroni.log.1", "patroni.log.2"], files()
        with open(procs.log_path(node.name), "rb") as f:
            assert b" DEBUG " not in f.read(), "lines also went to stderr"
        # a directory that is not there: the agent does not start
        c.stop_all()
        node.env = {"PATRONI_LOG_DIR": os.path.join(workdir, "missing")}
        node.start()
        rc = node.proc.wait(timeout=30)
        assert rc == 1
        with open(procs.log_path(node.name), "rb") as f:
            out = f.read().decode()
        assert f'log.dir: cannot open "{workdir}/missing/patroni.log" for appending: No such ' \
               "file or directory" in out, out[-2000:]
    finally:
        c.stop_all()


def test_log_format_and_dateformat_shape_every_line(procs, workdir):
    """Patroni's log.format and log.dateformat (here through PATRONI_LOG_*,
    with the format and date format of Canonical's charm): every line the
    agent writes to stderr is that Python logging format, as Patroni's
    would be, instead of dbha's own."""
    c = DbhaCluster(procs, workdir, n=1)
    node = c.nodes[0]
    node.env = {"PATRONI_LOG_FORMAT": "%(asctime)s [%(process)d]: %(levelname)s: %(message)s ",
                "PATRONI_LOG_DATEFORMAT": "%Y-%m-%d %H:%M:%S %Z"}
    try:
        c.start()
        wait_until(lambda: (c.status()["leader"] == node.name) or None, 90, interval=0.5,
                   what="the node leads")
        pid = node.proc.pid
        with open(procs.log_path(node.name), errors="replace") as f:
            lines = [l for l in f.read().splitlines() if l]
        ours = [l for l in lines if re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \w+ \[\d+\]: ", l)]
        # PostgreSQL's and initdb's output share the stream: only theirs differ
        assert len(ours) > 10, lines[-40:]
        line_re = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d (UTC|[A-Z]{2,5}) \[(\d+)\]: "
                             r"(DEBUG|INFO|WARNING|ERROR): .* $")
        for l in ours:
            assert line_re.match(l), l
        assert any(int(line_re.match(l).group(2)) == pid for l in ours), (pid, ours[:5])
        assert not any(re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} ", l) for l in lines), \
            "a line in dbha's own format"
    finally:
        c.stop_all()
