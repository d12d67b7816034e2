"""A dbha cluster whose REST APIs serve HTTPS with restapi.verify_client: required and
allowlist_include_members (issue #14 item 2, end to end through dbagent): clients need
a certificate from the cluster's CA, mutating requests also a member's address, and
the agents present their certificate to each other and verify the peer's in an
election."""
import http.client
import json
import os
import ssl
import threading

import pytest

from lib.cluster import DbhaCluster
from lib.procs import LOOPBACK, wait_until
from test_rest_hardening import STRANGER, make_ca, make_cert, openssl

pytestmark = pytest.mark.concurrent


def https(node, pki, method, path, cert=None, source=LOOPBACK):
    ctx = ssl.create_default_context(cafile=pki["ca"][0])
    if cert:
        ctx.load_cert_chain(*cert)
    c = http.client.HTTPSConnection(LOOPBACK, node.api_port, timeout=5, context=ctx,
                                    source_address=(source, 0))
    try:
        c.request(method, path, body=b"{}" if method == "POST" else None)
        r = c.getresponse()
        data = r.read()
        err = json.loads(data).get("error") if r.status in (401, 403) and data else None
        return r.status, err
    finally:
        c.close()


def test_tls_cluster_verify_client_required(procs, workdir):
    d = os.path.join(workdir, "pki")
    os.makedirs(d)
    ca = make_ca(d, "ca")
    other = make_ca(d, "other")
    pki = {"ca": ca, "node": make_cert(d, "node", ca), "client": make_cert(d, "client", ca),
           "intruder": make_cert(d, "intruder", other)}
    for f in os.listdir(d):
        os.chmod(os.path.join(d, f), 0o644)  # the agents run as postgres
    tls = (f"  certfile: {pki['node'][0]}\n  keyfile: {pki['node'][1]}\n"
           f"  cafile: {ca[0]}\n  verify_client: required\n  allowlist_include_members: true\n")
    c = DbhaCluster(procs, workdir, n=3)
    for node in c.nodes:
        node.rest_auth_yaml = lambda: tls
    c.start()
    try:
        c.wait_healthy(timeout=150)
        leader = c.primary()
        # every request needs a certificate the cluster's CA signed
        assert https(leader, pki, "GET", "/health") == (403, "client certificate required")
        assert https(leader, pki, "GET", "/health", pki["intruder"]) == \
            (403, "client certificate not valid")
        assert https(leader, pki, "GET", "/primary", pki["client"])[0] == 200
        # mutating: only from a member's address (127.0.0.1 here)
        assert https(leader, pki, "POST", "/reload", pki["client"], source=STRANGER) == \
            (403, "Access is denied")
        assert https(leader, pki, "POST", "/reload", pki["client"])[0] == 202  # Patroni: 202
        # dbctl presents the certificate of its config (restapi.certfile), as patronictl
        r = c.dbctl("-c", leader.config_path, "reload", "--force")
        assert r.returncode == 0, r.stderr
        assert sorted(r.stdout.splitlines()) == [f"{n.name}: reload scheduled"
                                                 for n in sorted(c.nodes, key=lambda n: n.name)]
        r = c.dbctl("reload", "--force")  # no config: no certificate, no CA
        assert r.returncode == 1, (r.stdout, r.stderr)
        # an election among the two replicas: each asks the other over HTTPS with its
        # certificate (without it the peer would answer 403 and count as unreachable).
        # A checker reads every node's /health with a certificate meanwhile, as HAProxy
        # would: an agent nobody reads publishes no snapshot between loops and its REST
        # API waits for the loop, which is busy polling the peers (left alone here).
        replicas = [n for n in c.nodes if n is not leader]
        stop = threading.Event()

        def checker():
            for _ in range(1000):
                if stop.wait(0.3):
                    return
                for n in replicas:
                    try:
                        https(n, pki, "GET", "/health", pki["client"])
                    except OSError:
                        pass

        t = threading.Thread(target=checker, daemon=True)
        t.start()
        try:
            stop.wait(1.5)
            offsets = {n.name: os.path.getsize(procs.log_path(n.name)) for n in replicas}
            leader.kill_with_postgres()
            wait_until(lambda: c.status()["leader"] in [n.name for n in replicas], 60,
                       what="a replica to take over")
        finally:
            stop.set()
            t.join(10)
        heard = []
        for n in replicas:
            other_name = next(o.name for o in replicas if o is not n)
            with open(procs.log_path(n.name), "rb") as f:
                f.seek(offsets[n.name])
                text = f.read().decode(errors="replace")
            if f'election: peer "{other_name}" answered' in text:
                heard.append(n.name)
        assert heard, "no replica heard the other in the election"
    finally:
        c.stop_all()


def encrypted(key, password):
    out = key + ".enc"
    openssl("pkey", "-in", key, "-aes256", "-passout", f"pass:{password}", "-out", out)
    return out


def test_encrypted_keys_and_ctl_insecure(procs, workdir):
    """Patroni's restapi.keyfile_password (the agent serves HTTPS with an
    encrypted key), ctl.insecure (dbctl talks to agents whose certificate it
    cannot verify, as patronictl with insecure: true) and
    ctl.keyfile_password (dbctl presents a client certificate whose key is
    encrypted). Each config below differs from the one before in that key
    only."""
    d = os.path.join(workdir, "pki")
    os.makedirs(d)
    ca = make_ca(d, "ca")
    node_crt, node_key = make_cert(d, "node", ca)
    client_crt, client_key = make_cert(d, "client", ca, "DNS:client")
    node_enc = encrypted(node_key, "node-pw")
    client_enc = encrypted(client_key, "client-pw")
    for f in os.listdir(d):
        os.chmod(os.path.join(d, f), 0o644)  # the agents run as postgres
    with open(node_enc) as f:
        assert "ENCRYPTED PRIVATE KEY" in f.read()
    c = DbhaCluster(procs, workdir, n=1)
    node = c.nodes[0]
    tls = (f"  certfile: {node_crt}\n  keyfile: {node_enc}\n  keyfile_password: node-pw\n"
           "  http_extra_headers:\n    X-Frame-Options: DENY\n    X-Both: http\n"
           "  https_extra_headers:\n    Strict-Transport-Security: max-age=31536000\n"
           "    X-Both: https\n")
    node.rest_auth_yaml = lambda: tls
    c.start()
    try:
        wait_until(lambda: (c.status()["leader"] == node.name) or None, 90, interval=0.5,
                   what="the node leads")
        ctx = ssl.create_default_context(cafile=ca[0])
        conn = http.client.HTTPSConnection(LOOPBACK, node.api_port, timeout=5, context=ctx)
        conn.request("GET", "/health")
        resp = conn.getresponse()
        assert resp.status == 200
        # http_extra_headers, and over HTTPS https_extra_headers winning on a shared name
        assert resp.getheader("X-Frame-Options") == "DENY"
        assert resp.getheader("Strict-Transport-Security") == "max-age=31536000"
        assert resp.getheader("X-Both") == "https"
        conn.close()

        # dbctl's configs: the node's without its own certificate, plus ctl keys
        node.rest_auth_yaml = lambda: ""
        base = node.config()

        def dbctl_with(name, ctl):
            path = os.path.join(workdir, name)
            with open(path, "w") as f:
                f.write(base + ("ctl:\n" + ctl if ctl else ""))
            return c.dbctl("-c", path, "reload", "--force")

        r = dbctl_with("verify.yml", "")
        assert r.returncode == 1, (r.stdout, r.stderr)  # no CA that signed the node's
        assert "SSL certificate problem" in r.stderr, r.stderr
        r = dbctl_with("insecure.yml", "  insecure: true\n")
        assert r.returncode == 0, (r.stdout, r.stderr)
        assert r.stdout.strip() == f"{node.name}: reload scheduled", r.stdout
        client = f"  cacert: {ca[0]}\n  certfile: {client_crt}\n  keyfile: {client_enc}\n"
        r = dbctl_with("client-nopw.yml", client)
        assert r.returncode == 1, (r.stdout, r.stderr)  # the key cannot be read
        # and no pass phrase is asked for on the terminal
        assert "unable to set private key file" in r.stderr and "pass phrase" not in r.stderr, \
            r.stderr
        r = dbctl_with("client.yml", client + "  keyfile_password: client-pw\n")
        assert r.returncode == 0, (r.stdout, r.stderr)
    finally:
        c.stop_all()
