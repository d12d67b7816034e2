"""Run a program on a pseudo-terminal and answer its prompts, for the dbctl
verbs that ask on a terminal (confirmations, typed cluster names, $EDITOR).

    rc, out = run_tty([dbctl, ..., "remove", "c1"],
                      [("cluster name", "c1"), ("Yes I am aware", "Yes I am aware")])

Each answer is sent once its prompt text has appeared in the output. The
whole run is bounded by `timeout`; the process is killed by PID after it.
"""
import os
import pty
import select
import signal
import subprocess
import time


def run_tty(argv, answers=(), env=None, timeout=30):
    """(returncode, output with \\r\\n turned into \\n)."""
    master, slave = pty.openpty()
    p = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=env,
                         start_new_session=True)
    os.close(slave)
    out = b""
    pending = list(answers)
    seen = 0  # answers are looked for after the previous one's prompt
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.1)
            if ready:
                try:
                    chunk = os.read(master, 4096)
                except OSError:  # EIO: every holder of the terminal closed it
                    chunk = b""
                if not chunk:
                    if p.poll() is not None:
                        break
                    continue
                out += chunk
            if pending and pending[0][0].encode() in out[seen:]:
                seen = out.index(pending[0][0].encode(), seen) + len(pending[0][0])
                os.write(master, pending[0][1].encode() + b"\n")
                pending.pop(0)
            if not ready and p.poll() is not None:
                break
        else:
            raise AssertionError(f"{argv[0]} did not finish within {timeout}s: {out!r}")
        p.wait(timeout=10)
    finally:
        if p.poll() is None:
            os.kill(p.pid, signal.SIGKILL)
            p.wait(timeout=10)
        os.close(master)
    return p.returncode, out.decode(errors="replace").replace("\r\n", "\n")
