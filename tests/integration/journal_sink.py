"""Run a command with a private journald socket and print what it logged.

Usage (as root): unshare -m --propagation private python3 journal_sink.py OUT.json CMD...
Mounts a tmpfs on /run/systemd/journal (only inside this mount namespace),
binds the native-protocol datagram socket there, runs CMD with stderr on a
pipe and JOURNAL_STREAM naming that pipe (as systemd would), then writes the
received entries to OUT.json as a list of {field: value} objects.
"""
import json
import os
import socket
import subprocess
import sys


def parse_native(data):
    """Native journal protocol: KEY=value\\n, or KEY\\n<le64 len><bytes>\\n."""
    fields = {}
    i = 0
    while i < len(data):
        nl = data.index(b"\n", i)
        line = data[i:nl]
        if b"=" in line:
            k, v = line.split(b"=", 1)
            fields[k.decode()] = v.decode(errors="replace")
            i = nl + 1
        else:
            n = int.from_bytes(data[nl + 1:nl + 9], "little")
            fields[line.decode()] = data[nl + 9:nl + 9 + n].decode(errors="replace")
            i = nl + 9 + n + 1
    return fields


def main():
    out, cmd = sys.argv[1], sys.argv[2:]
    os.makedirs("/run/systemd/journal", exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "dbha-test", "/run/systemd/journal"], check=True)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("/run/systemd/journal/socket")
    sock.settimeout(0.5)
    r, w = os.pipe()
    st = os.fstat(w)
    env = dict(os.environ, JOURNAL_STREAM=f"{st.st_dev}:{st.st_ino}")
    p = subprocess.Popen(cmd, stderr=w, env=env)
    os.close(w)
    stderr_text = b""
    entries = []
    p.wait(timeout=30)
    while True:
        chunk = os.read(r, 65536)
        if not chunk:
            break
        stderr_text += chunk
    for _ in range(100):
        try:
            entries.append(parse_native(sock.recv(1 << 20)))
        except socket.timeout:
            break
    with open(out, "w") as f:
        json.dump({"rc": p.returncode, "stderr": stderr_text.decode(errors="replace"),
                   "entries": entries}, f)


if __name__ == "__main__":
    main()
