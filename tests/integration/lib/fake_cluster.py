"""A cluster made of keys only: the values Patroni 3.0.2 writes into etcd for
a three-member cluster, put through the v3 JSON gateway, with no agent
behind them. dbctl reads and writes them like a real cluster's, so its
checks and its etcd writes can be tested exactly and fast.

    fake = FakeCluster(etcd, "batman").write()
    fake.get("failover")      # a key's value as text, or None
"""
import base64
import copy
import json
import os
import subprocess

from .etcd_cluster import b64
from .procs import binary

SYSID = "7214324235435253233"


def dumps(v):
    return json.dumps(v, separators=(",", ":"))


def member(port, api_port, role="replica", state="running", xlog=50331968, **extra):
    m = {"conn_url": f"postgres://127.0.0.1:{port}/postgres",
         "api_url": f"http://127.0.0.1:{api_port}/patroni", "state": state, "role": role,
         "version": "3.0.2", "xlog_location": xlog, "timeline": 2}
    m.update(extra)
    return m


# n1 leads; n2 is tagged nofailover and 3 MB behind; n3 is a caught-up
# streaming replica.
MEMBERS = {
    "n1": member(5432, 8008, role="master"),
    "n2": member(5433, 8009, xlog=47185920, tags={"nofailover": True, "zone": "b"}),
    "n3": member(5434, 8010, replication_state="streaming"),
}
CONFIG = {"ttl": 30, "loop_wait": 10, "retry_timeout": 10, "maximum_lag_on_failover": 1048576,
          "synchronous_mode": True,
          "postgresql": {"use_pg_rewind": True, "use_slots": True,
                         "parameters": {"max_connections": 100}}}


class FakeCluster:
    def __init__(self, etcd, scope="batman", namespace="/service/"):
        self.etcd = etcd
        self.scope = scope
        self.prefix = f"{namespace}{scope}/"
        self.members = copy.deepcopy(MEMBERS)
        self.config = copy.deepcopy(CONFIG)
        self.leader = "n1"

    def put(self, key, value, lease=None):
        body = {"key": b64(self.prefix + key), "value": b64(value)}
        if lease:
            body["lease"] = str(lease)
        status, answer = self.etcd.api("kv/put", body)
        assert status == 200, answer

    def get_kv(self, key):
        status, answer = self.etcd.api("kv/range", {"key": b64(self.prefix + key)})
        assert status == 200, answer
        kvs = answer.get("kvs") or []
        return kvs[0] if kvs else None

    def get(self, key):
        kv = self.get_kv(key)
        if not kv:
            return None
        return base64.b64decode(kv.get("value", "")).decode()

    def mod_revision(self, key):
        kv = self.get_kv(key)
        return int(kv["mod_revision"]) if kv else 0

    def keys(self):
        end = self.prefix[:-1] + chr(ord(self.prefix[-1]) + 1)
        status, answer = self.etcd.api("kv/range", {"key": b64(self.prefix),
                                                    "range_end": b64(end), "keys_only": True})
        assert status == 200, answer
        return sorted(base64.b64decode(kv["key"]).decode()[len(self.prefix):]
                      for kv in answer.get("kvs") or [])

    def write(self, leader=True):
        status, grant = self.etcd.api("lease/grant", {"TTL": 60})
        assert status == 200, grant
        lease = grant["ID"]
        self.put("initialize", SYSID)
        self.put("config", dumps(self.config))
        if leader and self.leader:
            self.put("leader", self.leader, lease)
        for name, m in self.members.items():
            self.put(f"members/{name}", dumps(m), lease)
        self.put("status", dumps({"optime": 50331968}))
        self.put("history", dumps([[1, 50331808, "no recovery target specified",
                                    "2023-03-24T10:21:12.345678+00:00", "n1"]]))
        return self

    def delete(self, key):
        status, answer = self.etcd.api("kv/deleterange", {"key": b64(self.prefix + key)})
        assert status == 200, answer

    def dbctl(self, *args, input=None, env=None, timeout=30):
        return subprocess.run(self.argv(*args), capture_output=True, text=True, input=input,
                              env=self.env(env), timeout=timeout)

    def argv(self, *args):
        return [binary("dbctl"), "--etcd", self.etcd.endpoints[0], "--scope", self.scope, *args]

    @staticmethod
    def env(extra=None):
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PATRONI_", "DBHA_"))}
        env.update(extra or {})
        return env
