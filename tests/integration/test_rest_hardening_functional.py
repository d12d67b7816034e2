"""The functional half of test_rest_hardening.py: client certificates
(restapi.verify_client, with and without a cafile), the allowlist (also
with allowlist_include_members) and the election's peer poll that believes
only verified peers, against tests/tools/rest_driver and
tests/tools/peer_probe on loopback (127.0.0.1 to 127.0.0.4). Each test has
its own drivers on free ports and its own PKI in its temp dir; nothing here
measures time, so these run in the concurrent pass. test_rest_hardening.py
keeps the tests that do (libmicrohttpd's parse failures closed at the
header deadline, slow clients, the header deadline itself) and the
openssl helpers (test_rest_tls_cluster.py imports them from there)."""
import http.client
import json
import os
import socket
import ssl

import pytest

from lib.procs import LOOPBACK, tool
from test_rest import LEADER, PASSWORD, USER, Driver, auth_header
from test_rest_hardening import STRANGER, make_ca, make_cert

pytestmark = pytest.mark.concurrent


# ---------------------------------------------------------------- certificates and allowlist

@pytest.fixture
def pki(workdir):
    """ca: the configured CA; other: a CA nobody trusts; server, good client (signed by ca),
    bad client (signed by other)."""
    d = os.path.join(workdir, "pki")
    os.makedirs(d)
    ca = make_ca(d, "ca")
    other = make_ca(d, "other")
    return {"dir": d, "ca": ca, "other": other, "server": make_cert(d, "server", ca),
            "good": make_cert(d, "client", ca, "DNS:client"),
            "bad": make_cert(d, "intruder", other, "DNS:intruder")}


def tls_driver(procs, workdir, pki, verify, name="rest"):
    args = ["--certfile", pki["server"][0], "--keyfile", pki["server"][1], "--cafile",
            pki["ca"][0], "--echo", "--user", USER, "--password", PASSWORD]
    if verify:
        args += ["--verify-client", verify]
    return Driver(procs, workdir, [LEADER], extra_args=args,
                  https_ctx=ssl.create_default_context(cafile=pki["ca"][0]), name=name)


def tls_request(d, pki, method, path, client=None, auth=False):
    """(status, JSON error or None) for one request over HTTPS, with client's certificate."""
    ctx = ssl.create_default_context(cafile=pki["ca"][0])
    if client:
        ctx.load_cert_chain(*pki[client])
    c = http.client.HTTPSConnection(LOOPBACK, d.port, timeout=5, context=ctx)
    try:
        body = b"{}" if method == "POST" else None
        c.request(method, path, body=body, headers=auth_header() if auth else {})
        r = c.getresponse()
        data = r.read()
        err = None
        if r.status >= 400:
            assert r.getheader("content-type") == "application/json", (r.status, data)
            err = json.loads(data)["error"]
        return r.status, err
    finally:
        c.close()


# (client certificate, method, path, basic auth) -> (status, error) per verify_client, as
# Patroni 3.0.2 decides (its TLS refusals are a 403 with a reason here).
VERIFY_ROWS = [
    # no certificate
    (None, "GET", "/health", False,
     {"none": 200, "optional": 200, "required": (403, "client certificate required")}),
    (None, "POST", "/echo", False,
     {"none": (401, "no auth header received"), "optional": (403, "client certificate required"),
      "required": (403, "client certificate required")}),
    (None, "POST", "/echo", True,
     {"none": 200, "optional": (403, "client certificate required"),
      "required": (403, "client certificate required")}),
    # a certificate from a CA that is not trusted
    ("bad", "GET", "/health", False,
     {"none": 200, "optional": (403, "client certificate not valid"),
      "required": (403, "client certificate not valid")}),
    ("bad", "POST", "/echo", True,
     {"none": 200, "optional": (403, "client certificate not valid"),
      "required": (403, "client certificate not valid")}),
    # a valid certificate: basic auth still needed for the mutating endpoints
    ("good", "GET", "/health", False, {"none": 200, "optional": 200, "required": 200}),
    ("good", "POST", "/echo", False,
     {"none": (401, "no auth header received"), "optional": (401, "no auth header received"),
      "required": (401, "no auth header received")}),
    ("good", "POST", "/echo", True, {"none": 200, "optional": 200, "required": 200}),
]


@pytest.mark.parametrize("verify", ["none", "optional", "required"])
def test_verify_client(procs, workdir, pki, verify):
    """restapi.verify_client enforced with the certificate verified against cafile. Before:
    with cafile set, a client without a certificate (or with one from any CA) got 200 from
    the mutating endpoints whatever verify_client said."""
    d = tls_driver(procs, workdir, pki, verify)
    failures = []
    for client, method, path, auth, want in VERIFY_ROWS:
        w = want[verify]
        w = w if isinstance(w, tuple) else (w, None)
        got = tls_request(d, pki, method, path, client, auth)
        if got != w:
            failures.append(f"{verify}: cert {client} {method} {path} auth={auth}: {got}, want {w}")
    assert not failures, "\n".join(failures)
    d.stop()


def request_from(port, source, method, path, body=None):
    c = http.client.HTTPConnection(LOOPBACK, port, timeout=5, source_address=(source, 0))
    try:
        c.request(method, path, body=body)
        r = c.getresponse()
        data = r.read()
        return r.status, (json.loads(data).get("error") if r.status >= 400 and data else None)
    finally:
        c.close()


def test_allowlist(procs, workdir):
    """restapi.allowlist gates the mutating endpoints only (Patroni's check_access): other
    addresses get 403 "Access is denied"; health checks and documents stay open."""
    d = Driver(procs, workdir, [LEADER], extra_args=["--echo", "--allow", "127.0.0.2/32",
                                                     "--allow", "10.1.2.0/24"])
    assert request_from(d.port, LOOPBACK, "POST", "/echo", b"{}") == (403, "Access is denied")
    assert request_from(d.port, STRANGER, "POST", "/echo", b"{}")[0] == 200
    assert request_from(d.port, "127.0.0.3", "DELETE", "/echo") == (403, "Access is denied")
    assert request_from(d.port, LOOPBACK, "GET", "/health")[0] == 200
    assert request_from(d.port, LOOPBACK, "GET", "/patroni")[0] == 200
    d.stop()
    # a host name, resolved at start
    d = Driver(procs, workdir, [LEADER], extra_args=["--echo", "--allow", "localhost"],
               name="byname")
    assert request_from(d.port, LOOPBACK, "POST", "/echo", b"{}")[0] == 200
    assert request_from(d.port, STRANGER, "POST", "/echo", b"{}") == (403, "Access is denied")
    d.stop()


def test_allowlist_include_members(procs, workdir):
    """With allowlist_include_members the hosts of the members' api_urls (from the cluster
    view, rest_server_set_member_urls) may call the mutating endpoints, nobody else."""
    snap = dict(LEADER, member_urls=["http://127.0.0.3:8008/patroni",
                                     "https://127.0.0.4:8009/patroni", "http://member5:8008/"])
    d = Driver(procs, workdir, [snap], extra_args=["--echo", "--allow-members"])
    assert request_from(d.port, "127.0.0.3", "POST", "/echo", b"{}")[0] == 200
    assert request_from(d.port, "127.0.0.4", "POST", "/echo", b"{}")[0] == 200
    assert request_from(d.port, LOOPBACK, "POST", "/echo", b"{}") == (403, "Access is denied")
    assert request_from(d.port, STRANGER, "GET", "/primary")[0] == 200
    d.stop()


# ---------------------------------------------------------------- the election's peer poll

def agent_config(path, restapi_tls, ctl=None):
    lines = ["scope: demo", "name: self", "restapi:", "  connect_address: 127.0.0.1:8008"]
    lines += [f"  {k}: {v}" for k, v in restapi_tls.items()]
    if ctl:
        lines += ["ctl:"] + [f"  {k}: {v}" for k, v in ctl.items()]
    lines += ["etcd3:", "  hosts: 127.0.0.1:2379", "postgresql:", "  data_dir: /nonexistent",
              "  connect_address: 127.0.0.1:5432"]
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path


def probe_peers(procs, config, urls, name):
    p = procs.spawn(name, [tool("peer_probe"), config, *urls])
    assert p.wait(60) == 0, open(procs.log_path(name)).read()[-3000:]
    out = [json.loads(ln) for ln in open(procs.log_path(name)) if ln.startswith("{")]
    return {o["name"]: o for o in out}


def test_election_believes_only_verified_peers(procs, workdir, pki):
    """The election's GET of each peer's api_url (agent/election_exec.c through
    lib/peer-http.c) with an agent config whose restapi has certfile/keyfile/cafile:
    a peer whose certificate the configured CA signed answers; one signed by another CA
    is treated as not answering (before: verification was off); a peer with
    verify_client: required gets our client certificate and answers; file:// and gopher://
    api_urls from etcd are never fetched. With ctl.cacert naming the other CA, it is the
    other way round (ctl before restapi, as Patroni's PatroniRequest)."""
    d = pki["dir"]
    rogue = make_cert(d, "rogue", pki["other"])
    ctx = ssl.create_default_context(cafile=pki["ca"][0])
    good = Driver(procs, workdir, [LEADER], name="good", https_ctx=ctx,
                  extra_args=["--certfile", pki["server"][0], "--keyfile", pki["server"][1]])
    bad = Driver(procs, workdir, [LEADER], name="bad",
                 extra_args=["--certfile", rogue[0], "--keyfile", rogue[1]])
    strict = Driver(procs, workdir, [LEADER], name="strict", https_ctx=ctx,
                    extra_args=["--certfile", pki["server"][0], "--keyfile", pki["server"][1],
                                "--cafile", pki["ca"][0], "--verify-client", "required"])
    # a status document that would win any election, where only file:// reaches it
    fake = os.path.join(workdir, "fake-status.json")
    with open(fake, "w") as f:
        json.dump({"state": "running", "role": "master", "xlog": {"location": 1 << 60}}, f)
    trap = socket.socket()
    trap.bind((LOOPBACK, 0))
    trap.listen(8)
    trap.setblocking(False)
    urls = [f"https://127.0.0.1:{good.port}/patroni", f"https://127.0.0.1:{bad.port}/patroni",
            f"https://127.0.0.1:{strict.port}/patroni", f"file://{fake}",
            f"gopher://127.0.0.1:{trap.getsockname()[1]}/1"]
    try:
        cfg = agent_config(os.path.join(workdir, "agent.yml"),
                           {"certfile": pki["good"][0], "keyfile": pki["good"][1],
                            "cafile": pki["ca"][0]})
        got = probe_peers(procs, cfg, urls, "probe")
        assert got["m0"]["answered"] and got["m0"]["wal_lsn"] == LEADER["patroni"]["xlog"]["location"]
        assert not got["m1"]["answered"], got["m1"]
        assert got["m2"]["answered"], got["m2"]
        assert not got["m3"]["answered"] and not got["m4"]["answered"], got
        with pytest.raises(BlockingIOError):
            trap.accept()
        # ctl.cacert (the other CA) before restapi.cafile
        cfg2 = agent_config(os.path.join(workdir, "agent2.yml"),
                            {"certfile": pki["good"][0], "keyfile": pki["good"][1],
                             "cafile": pki["ca"][0]}, ctl={"cacert": pki["other"][0]})
        got = probe_peers(procs, cfg2, urls[:2], "probe2")
        assert not got["m0"]["answered"] and got["m1"]["answered"], got
    finally:
        trap.close()
    for drv in (good, bad, strict):
        drv.stop()


def test_verify_client_without_cafile_trusts_the_system_cas(procs, workdir, pki):
    """verify_client without a cafile: client certificates are checked against the system's
    CAs (Python's ssl, which Patroni uses, loads them then), so a private CA's certificate
    does not pass."""
    d = Driver(procs, workdir, [LEADER], https_ctx=ssl.create_default_context(cafile=pki["ca"][0]),
               extra_args=["--certfile", pki["server"][0], "--keyfile", pki["server"][1],
                           "--verify-client", "optional", "--echo"])
    assert tls_request(d, pki, "GET", "/health")[0] == 200
    assert tls_request(d, pki, "GET", "/health", "good") == (403, "client certificate not valid")
    assert tls_request(d, pki, "POST", "/echo") == (403, "client certificate required")
    d.stop()
