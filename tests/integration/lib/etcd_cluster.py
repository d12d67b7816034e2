"""Real etcd (Debian's etcd-server 3.4) for the integration tests.

`EtcdCluster(procs, workdir, size)` starts `size` members on free 127.0.0.1
client and peer ports, each with its data dir under workdir, and waits until
every member answers /health. Processes go through the `procs` fixture, so
teardown stops them by PID. `tls=EtcdTls(...)` serves clients over https with
a server certificate and requires client certificates (--trusted-ca-file).
`api()` talks to the v3 JSON gateway directly (setup that the client under
test does not offer, e.g. users and roles).
"""
import base64
import json
import os
import ssl
import subprocess
import time
import urllib.error
import urllib.request

from .procs import LOOPBACK, free_port, port_open, wait_until

ETCD = "etcd"


def b64(s):
    if isinstance(s, str):
        s = s.encode()
    return base64.b64encode(s).decode()


class EtcdTls:
    """A throwaway CA, a server cert for IP:127.0.0.1 and a client cert, made with openssl."""

    def __init__(self, directory):
        self.dir = directory
        os.makedirs(directory, exist_ok=True)
        p = lambda n: os.path.join(directory, n)  # noqa: E731
        self.ca, self.ca_key = p("ca.crt"), p("ca.key")
        self.server_cert, self.server_key = p("server.crt"), p("server.key")
        self.client_cert, self.client_key = p("client.crt"), p("client.key")
        self._openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                      "-subj", "/CN=dbha-test-ca", "-keyout", self.ca_key, "-out", self.ca)
        self._sign("server", self.server_key, self.server_cert,
                   "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n")
        self._sign("client", self.client_key, self.client_cert,
                   "extendedKeyUsage=clientAuth\n")

    def _openssl(self, *args):
        subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=30)

    def _sign(self, cn, key, cert, ext):
        csr = os.path.join(self.dir, f"{cn}.csr")
        extfile = os.path.join(self.dir, f"{cn}.ext")
        with open(extfile, "w") as f:
            f.write(ext)
        self._openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={cn}",
                      "-keyout", key, "-out", csr)
        self._openssl("x509", "-req", "-in", csr, "-CA", self.ca, "-CAkey", self.ca_key,
                      "-CAcreateserial", "-days", "2", "-extfile", extfile, "-out", cert)

    def ssl_context(self):
        ctx = ssl.create_default_context(cafile=self.ca)
        ctx.load_cert_chain(self.client_cert, self.client_key)
        return ctx


class EtcdMember:
    def __init__(self, name, client_port, peer_port, data_dir):
        self.name = name
        self.client_port = client_port
        self.peer_port = peer_port
        self.data_dir = data_dir
        self.proc = None

    @property
    def endpoint(self):
        return f"{LOOPBACK}:{self.client_port}"


class EtcdCluster:
    def __init__(self, procs, workdir, size=1, name="etcd", tls=None, extra_args=(),
                 extra_addresses=()):
        self.procs = procs
        # more loopback addresses each member's client port listens on (one per
        # node, so that a packet filter can cut one node's path to etcd)
        self.extra_addresses = list(extra_addresses)
        self.workdir = workdir
        self.name = name
        self.tls = tls
        self.extra_args = list(extra_args)
        self.scheme = "https" if tls else "http"
        self.members = []
        for i in range(size):
            m = EtcdMember(f"{name}{i}", free_port(), free_port(),
                           os.path.join(workdir, f"{name}{i}.data"))
            self.members.append(m)
        self.initial_cluster = ",".join(f"{m.name}=http://{LOOPBACK}:{m.peer_port}"
                                        for m in self.members)
        # One token per cluster, unique per run, so stray peers never join.
        self.token = f"{name}-{os.getpid()}-{self.members[0].client_port}"

    # -- lifecycle --

    def _argv(self, m):
        url = f"{self.scheme}://{m.endpoint}"
        listen = ",".join([url] + [f"{self.scheme}://{a}:{m.client_port}"
                                   for a in self.extra_addresses])
        argv = [ETCD, "--name", m.name, "--data-dir", m.data_dir,
                "--listen-client-urls", listen, "--advertise-client-urls", url,
                "--listen-peer-urls", f"http://{LOOPBACK}:{m.peer_port}",
                "--initial-advertise-peer-urls", f"http://{LOOPBACK}:{m.peer_port}",
                "--initial-cluster", self.initial_cluster,
                "--initial-cluster-token", self.token,
                "--initial-cluster-state", "new",
                "--heartbeat-interval", "100", "--election-timeout", "1000"]
        if self.tls:
            argv += ["--cert-file", self.tls.server_cert, "--key-file", self.tls.server_key,
                     "--trusted-ca-file", self.tls.ca]
        return argv + self.extra_args

    def start(self, timeout=20):
        for m in self.members:
            for port in (m.client_port, m.peer_port):
                assert not port_open(port), f"port {port} is already in use"
            m.proc = self.procs.spawn(m.name, self._argv(m))
        for m in self.members:
            wait_until(lambda m=m: self.healthy(m), timeout, interval=0.1,
                       what=f"etcd member {m.name} healthy")
        return self

    def restart(self, m, timeout=20):
        """SIGTERM one member and start it again on its data (auth tokens, held
        in memory, are gone)."""
        self.procs.stop(m.proc)
        m.proc = self.procs.spawn(m.name, self._argv(m))
        wait_until(lambda: self.healthy(m), timeout, interval=0.1,
                   what=f"etcd member {m.name} healthy again")

    def restart_all(self, members, timeout=30):
        """Start several members again at once, then wait for each: members
        that lost quorum together only get it back together."""
        for m in members:
            self.procs.stop(m.proc)
            m.proc = self.procs.spawn(m.name, self._argv(m))
        for m in members:
            wait_until(lambda m=m: self.healthy(m), timeout, interval=0.1,
                       what=f"etcd member {m.name} healthy again")

    def kill(self, m):
        """SIGKILL one member (a crash) by PID."""
        self.procs.kill(m.proc)

    # -- gateway access --

    @property
    def endpoints(self):
        return [m.endpoint for m in self.members]

    def _open(self, req, timeout):
        ctx = self.tls.ssl_context() if self.tls else None
        return urllib.request.urlopen(req, timeout=timeout, context=ctx)

    def healthy(self, m):
        if m.proc is not None and m.proc.poll() is not None:
            raise RuntimeError(f"etcd member {m.name} exited with {m.proc.returncode}")
        try:
            with self._open(f"{self.scheme}://{m.endpoint}/health", 1) as r:
                return json.loads(r.read()).get("health") == "true"
        except (OSError, ValueError):
            return False

    def api(self, path, body, member=None, token=None, timeout=5):
        """POST body (a dict) to /v3/path; returns (status, decoded JSON or text)."""
        m = member or self.members[0]
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = token
        req = urllib.request.Request(f"{self.scheme}://{m.endpoint}/v3/{path}",
                                     data=json.dumps(body).encode(), headers=headers,
                                     method="POST")
        try:
            with self._open(req, timeout) as r:
                status, text = r.status, r.read()
        except urllib.error.HTTPError as e:
            status, text = e.code, e.read()
        try:
            return status, json.loads(text)
        except ValueError:
            return status, text.decode(errors="replace")

    def leader(self):
        """The member that is the raft leader, per /v3/maintenance/status."""
        ids = {}
        leader_id = None
        for m in self.members:
            if m.proc.poll() is not None:
                continue
            status, st = self.api("maintenance/status", {}, member=m)
            if status == 200:
                ids[st["header"]["member_id"]] = m
                leader_id = st.get("leader", leader_id)
        return ids.get(leader_id)

    def get(self, key):
        """The value of key as text, or None when it does not exist."""
        status, body = self.api("kv/range", {"key": b64(key)})
        assert status == 200, body
        kvs = body.get("kvs") or []
        return base64.b64decode(kvs[0].get("value", "")).decode() if kvs else None

    def mod_revision(self, key):
        """The mod_revision of key (0 when it does not exist)."""
        status, body = self.api("kv/range", {"key": b64(key)})
        assert status == 200, body
        kvs = body.get("kvs") or []
        return int(kvs[0].get("mod_revision", 0)) if kvs else 0

    def compact(self, revision):
        status, body = self.api("kv/compaction", {"revision": str(revision), "physical": True})
        assert status == 200, body

    def setup_auth(self, user, password, prefix="/", root_password="rootpw"):
        """root with the root role, `user` with READWRITE on prefix, then auth enable."""
        end = b64(prefix[:-1] + chr(ord(prefix[-1]) + 1))
        steps = [("auth/user/add", {"name": "root", "password": root_password}),
                 ("auth/user/grant", {"user": "root", "role": "root"}),
                 ("auth/role/add", {"name": "ha"}),
                 ("auth/role/grant", {"name": "ha", "perm": {"permType": "READWRITE",
                                                            "key": b64(prefix),
                                                            "range_end": end}}),
                 ("auth/user/add", {"name": user, "password": password}),
                 ("auth/user/grant", {"user": user, "role": "ha"}),
                 ("auth/enable", {})]
        for path, body in steps:
            status, answer = self.api(path, body)
            assert status == 200, f"{path}: {status} {answer}"


def wait_for_lines(path, pred, timeout, what):
    """Poll a JSON-lines log until pred(list of parsed lines) is true; returns the lines."""
    def check():
        lines = read_json_lines(path)
        return lines if pred(lines) else None
    return wait_until(check, timeout, interval=0.05, what=what)


def read_json_lines(path):
    out = []
    try:
        with open(path) as f:
            for line in f:
                line = line.strip()
                if line.startswith("{"):
                    try:
                        out.append(json.loads(line))
                    except ValueError:
                        pass  # a line being written
    except FileNotFoundError:
        pass
    return out


def now_ms():
    return int(time.time() * 1000)
