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
    part.cut_members(node, cluster.nodes)   # with DbhaCluster(node_cgroups=True)
    part.cut_members(node, cluster.nodes, rest=False)   # PostgreSQL ports only
    part.heal()
    part.delete()                 # in teardown

`cut_members(node, nodes)` cuts a node off from the other members and
leaves etcd and its clients alone: every node shares 127.0.0.1, so a packet
is told by the control group of the socket that sends it (lib.nodecg): what
the node's processes send to another member's PostgreSQL or REST port, and
what the other members' processes send to its ports, is dropped (one
direction is enough to stall a TCP connection; replication, pg_rewind,
pg_basebackup and the agents' REST calls all go over those ports); with
`rest=False` only the PostgreSQL ports are cut (replication, pg_rewind,
pg_basebackup) and the agents still talk to each other. The
tests' own clients (writers, dbctl) are in no node's group and still reach
every node, so a node cut off from everything (both cuts) that still takes
writes is seen taking them.

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

    def cut_members(self, node, nodes, rest=True, replace=False):
        """replace: the node's earlier cuts go in the same nft transaction
        (nothing passes between the two)."""
        rules = f"flush chain inet {self.table} out\n" if replace else ""
        for other in nodes:
            if other is node:
                continue
            for src, dst in ((node, other), (other, node)):
                ports = f"{dst.pg_port}, {dst.api_port}" if rest else f"{dst.pg_port}"
                rules += (f"add rule inet {self.table} out {src.cgroup.nft_match()} "
                          f"tcp dport {{ {ports} }} drop\n")
        self._nft(rules)

    def heal(self):
        self._nft(f"flush chain inet {self.table} out\n")

    def delete(self):
        subprocess.run(["nft", "delete", "table", "inet", self.table], capture_output=True,
                       timeout=10)
