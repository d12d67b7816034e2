"""Partitions for the fault tests: nftables rules on loopback addresses.

With `DbhaCluster(..., etcd_per_node=True)` etcd also listens on 127.0.1.<i>
and node i reaches it there only; `Partition.cut_etcd(node)` drops every
packet to and from that address and etcd's client port, so the node loses
etcd (its lease keepalives, reads and watch) and nothing else: replication,
its REST API and its PostgreSQL clients are untouched. Dropped, not
refused: the node's requests hang until their own deadlines, as on a real
network partition.

    part = Partition()            # an nftables table of this test's own
    part.cut_etcd(node)
    part.heal()
    part.delete()                 # in teardown

Needs root (CAP_NET_ADMIN) and the `nft` program (Debian `nftables`).
"""
import itertools
import os
import subprocess

_seq = itertools.count()


class Partition:
    def __init__(self):
        self.table = f"dbha_test_{os.getpid()}_{next(_seq)}"
        self._nft(f"add table inet {self.table}\n"
                  f"add chain inet {self.table} out {{ type filter hook output priority 0; }}\n")

    @staticmethod
    def _nft(script):
        subprocess.run(["nft", "-f", "-"], input=script, text=True, check=True,
                       capture_output=True, timeout=10)

    def cut_etcd(self, node):
        ports = {int(h.rsplit(":", 1)[1]) for h in node.etcd_hosts}
        rules = "".join(
            f"add rule inet {self.table} out ip daddr {node.etcd_host} tcp dport {p} drop\n"
            f"add rule inet {self.table} out ip saddr {node.etcd_host} tcp sport {p} drop\n"
            for p in sorted(ports))
        self._nft(rules)

    def heal(self):
        self._nft(f"flush chain inet {self.table} out\n")

    def delete(self):
        subprocess.run(["nft", "delete", "table", "inet", self.table], capture_output=True,
                       timeout=10)
