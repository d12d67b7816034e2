"""HAProxy in front of a test cluster, from the example config.

configs/haproxy.cfg (the demo cluster's ports) is rendered for a test's
nodes: its bind lines get free loopback ports, each `server NAME ADDR:PORT
... check port P` line gets node NAME's PostgreSQL and REST ports, and the
stats socket moves into the test's directory. Nothing else is changed, so
the checks the test exercises are the example's own.

    hp = HAProxy(procs, workdir, cluster.nodes).start()
    hp.up("pg_primary")            # names of the servers whose check passes
    hp.stop()

HAProxy runs in the foreground (-db) through Procs, so it is stopped by PID.
"""
import csv
import io
import os
import re
import socket
import subprocess

from .procs import LOOPBACK, free_port, port_open, wait_until

HERE = os.path.dirname(os.path.abspath(__file__))
TEMPLATE = os.path.normpath(os.path.join(HERE, "..", "..", "..", "configs", "haproxy.cfg"))
HAPROXY = "/usr/sbin/haproxy"

_SECTION = re.compile(r"^(global|defaults|listen|frontend|backend)\b\s*(\S*)")
_SERVER = re.compile(r"^(\s+server\s+)(\S+)(\s+)(\S+):(\d+)(.*\scheck\s+port\s+)(\d+)(.*)$")
_BIND = re.compile(r"^(\s+bind\s+)(\S+)(.*)$")
_SOCKET = re.compile(r"^(\s+stats\s+socket\s+)(\S+)(.*)$")


def render(text, nodes, binds, sock_path):
    """The config text for nodes (objects with .name, .pg_port, .api_port).

    binds: {section name: port} for every section with a bind line
    (e.g. {"pg_write": 15000, "pg_read": 15001, "stats": 17000}).
    Raises ValueError when the template lacks a server line for a node or a
    bind line for a section, so a changed example cannot go untested.
    """
    by_name = {n.name: n for n in nodes}
    out, section = [], None
    seen_servers, seen_binds, seen_socket = set(), set(), False
    for line in text.splitlines():
        m = _SECTION.match(line)
        if m:
            section = m.group(2) or m.group(1)
        elif section == "global" and _SOCKET.match(line):
            m = _SOCKET.match(line)
            line = f"{m.group(1)}{sock_path}{m.group(3)}"
            seen_socket = True
        elif _BIND.match(line):
            if section not in binds:
                raise ValueError(f"no port given for the bind line of section {section}")
            m = _BIND.match(line)
            line = f"{m.group(1)}{LOOPBACK}:{binds[section]}{m.group(3)}"
            seen_binds.add(section)
        elif _SERVER.match(line):
            m = _SERVER.match(line)
            n = by_name.get(m.group(2))
            if n is None:
                raise ValueError(f"server {m.group(2)} of section {section} is not a test node")
            line = (f"{m.group(1)}{n.name}{m.group(3)}{LOOPBACK}:{n.pg_port}{m.group(6)}"
                    f"{n.api_port}{m.group(8)}")
            seen_servers.add((section, n.name))
        out.append(line)
    if set(binds) != seen_binds:
        raise ValueError(f"bind lines not found for {sorted(set(binds) - seen_binds)}")
    if not seen_socket:
        raise ValueError("no stats socket line in the global section")
    for section in {s for s, _ in seen_servers}:
        lacking = set(by_name) - {n for s, n in seen_servers if s == section}
        if lacking:
            raise ValueError(f"section {section} has no server line for {sorted(lacking)}")
    return "\n".join(out) + "\n"


class HAProxy:
    """configs/haproxy.cfg for nodes, on free ports: write_port (frontend
    pg_write), read_port (pg_read), stats_port (listen stats)."""

    def __init__(self, procs, workdir, nodes, template=TEMPLATE):
        self.procs = procs
        self.nodes = list(nodes)
        self.write_port, self.read_port, self.stats_port = free_port(), free_port(), free_port()
        self.cfg_path = os.path.join(workdir, "haproxy.cfg")
        self.sock_path = os.path.join(workdir, "haproxy.sock")
        with open(template) as f:
            self.text = render(f.read(), self.nodes, {"pg_write": self.write_port,
                                                      "pg_read": self.read_port,
                                                      "stats": self.stats_port},
                               self.sock_path)
        self.proc = None

    def start(self):
        with open(self.cfg_path, "w") as f:
            f.write(self.text)
        r = subprocess.run([HAPROXY, "-c", "-f", self.cfg_path], capture_output=True,
                           text=True, timeout=30)
        assert r.returncode == 0, f"haproxy -c: {r.stdout}{r.stderr}"
        self.proc = self.procs.spawn("haproxy", [HAPROXY, "-db", "-f", self.cfg_path])
        wait_until(lambda: self.proc.poll() is None and port_open(self.write_port)
                   and port_open(self.read_port) and os.path.exists(self.sock_path),
                   10, what="haproxy listening")
        return self

    def stop(self):
        if self.proc is not None:
            self.procs.stop(self.proc)
            self.proc = None

    def command(self, cmd, timeout=3.0):
        """The answer of the stats socket to one command."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            s.connect(self.sock_path)
            s.sendall(cmd.encode() + b"\n")
            chunks = []
            for _ in range(10000):  # the answer ends when HAProxy closes the socket
                b = s.recv(65536)
                if not b:
                    break
                chunks.append(b)
        return b"".join(chunks).decode()

    def stats(self):
        """{(proxy, server): row} from `show stat` (rows are dicts of the CSV columns)."""
        text = self.command("show stat")
        if text.startswith("# "):
            text = text[2:]
        return {(r["pxname"], r["svname"]): r for r in csv.DictReader(io.StringIO(text))
                if r.get("svname") not in ("FRONTEND", "BACKEND")}

    def status(self, backend):
        """{server: HAProxy's status text (UP, DOWN, "UP 1/2", ...)} of one backend."""
        return {sv: r["status"] for (px, sv), r in self.stats().items() if px == backend}

    def up(self, backend):
        """Sorted names of the servers of backend that HAProxy sends traffic to."""
        return sorted(sv for sv, st in self.status(backend).items() if st.startswith("UP"))
