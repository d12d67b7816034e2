"""Network namespaces for tests: a namespace with an interface of its own (a
"host" whose addresses a program such as vip-manager manages; a veth pair
with both ends inside, since the kernels here have no dummy driver), and a TCP forwarder
from 127.0.0.1:PORT inside a namespace to 127.0.0.1:PORT outside it, so that
a program in the namespace reaches etcd without any non-loopback address.

    ns = Netns.create("dbha-vip-node1", iface="vip0")
    fwd = ns.forward(procs, "fwd-node1", etcd_port)   # listens on the same port inside
    ns.addresses("vip0")                               # ["127.0.0.200/32", ...]
    ns.delete()

The forwarder is this file run as a program: it enters the namespace only
to open its listening socket, then returns to the original one (Linux's
setns(2) applies to the calling thread; threads started later inherit it).
"""
import ctypes
import json
import os
import select
import socket
import subprocess
import sys
import threading

CLONE_NEWNET = 0x40000000


def _setns(fd):
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


class Netns:
    def __init__(self, name):
        self.name = name

    @classmethod
    def create(cls, name, iface=None, address=None):
        subprocess.run(["ip", "netns", "del", name], capture_output=True)
        subprocess.run(["ip", "netns", "add", name], check=True)
        ns = cls(name)
        ns.ip("link", "set", "lo", "up")
        if iface:
            ns.ip("link", "add", iface, "type", "veth", "peer", "name", f"{iface}p")
            ns.ip("link", "set", iface, "up")
            ns.ip("link", "set", f"{iface}p", "up")
            if address:  # the host's own address (vip-manager sends its ARP from it)
                ns.ip("addr", "add", address, "dev", iface)
        return ns

    def ip(self, *args):
        return subprocess.run(["ip", "-n", self.name, *args], check=True, capture_output=True,
                              text=True).stdout

    def addresses(self, dev):
        """The IPv4 addresses on dev, as "a.b.c.d/len"."""
        out = json.loads(self.ip("-j", "-4", "addr", "show", "dev", dev))
        return [f'{a["local"]}/{a["prefixlen"]}' for link in out for a in link.get("addr_info", [])]

    def argv(self, *cmd):
        return ["ip", "netns", "exec", self.name, *cmd]

    def forward(self, procs, label, port):
        """Start the forwarder (stopped by PID through procs)."""
        return procs.spawn(label, [sys.executable, os.path.abspath(__file__), self.name,
                                   str(port)])

    def delete(self):
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True)


def _pump(a, b):
    try:
        while True:
            r, _, _ = select.select([a, b], [], [], 60)
            if not r:
                continue
            for s in r:
                data = s.recv(65536)
                if not data:
                    return
                (b if s is a else a).sendall(data)
    except OSError:
        pass
    finally:
        a.close()
        b.close()


def _main(ns_name, port):
    home = os.open("/proc/self/ns/net", os.O_RDONLY)
    target = os.open(f"/var/run/netns/{ns_name}", os.O_RDONLY)
    _setns(target)
    lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsock.bind(("127.0.0.1", port))
    lsock.listen(64)
    _setns(home)
    print(f"forwarding 127.0.0.1:{port} in {ns_name} to 127.0.0.1:{port}", flush=True)
    while True:
        c, _ = lsock.accept()
        try:
            up = socket.create_connection(("127.0.0.1", port), timeout=5)
            up.settimeout(None)
        except OSError:
            c.close()
            continue
        threading.Thread(target=_pump, args=(c, up), daemon=True).start()


if __name__ == "__main__":
    _main(sys.argv[1], int(sys.argv[2]))
