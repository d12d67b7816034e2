"""The Prometheus alerting rules and the Grafana dashboard of packaging/
(docs/observability.md) against real scrapes of a real dbha cluster (etcd and
three PostgreSQL 15 nodes). One replica pauses replay while the leader writes
4 MB; each agent's /metrics is scraped and the scraped samples become the
input series of a `promtool test rules` file: DbhaReplicationLag fires for the
paused replica and for no other member, DbhaNoLeader does not fire. Then the
cluster is paused and the leader's agent stopped: from the remaining members'
scrapes DbhaNoLeader fires. The dashboard parses and queries only metrics a
real scrape has. And a leader's agent SIGSTOPped is fenced: once it runs
again its dbha_fencings_total is 1, and DbhaFencingFired fires for it alone
on the scrapes from before and after."""
import json
import os
import re
import signal
import subprocess

import pytest
import yaml

from lib.cluster import DbhaCluster
from lib.procs import wait_until

pytestmark = pytest.mark.concurrent

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
RULES = os.path.join(REPO, "packaging", "prometheus", "dbha-alerts.yml")
DASHBOARD = os.path.join(REPO, "packaging", "grafana", "dbha-dashboard.json")
PROMTOOL = "/usr/bin/promtool"
LIMIT = 1048576  # the rules' lag threshold (maximum_lag_on_failover's default)
WRITE_MB = 4


def promtool(*args, cwd=None):
    return subprocess.run([PROMTOOL, *args], capture_output=True, text=True, timeout=60,
                          cwd=cwd)


def test_promtool_check_rules():
    r = promtool("check", "rules", RULES)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "SUCCESS" in r.stdout, r.stdout


def scrape(node):
    """[(series text as in the exposition, value)] of the node's /metrics."""
    code, body = node.api("/metrics")
    assert code == 200, (code, body)
    out = []
    for line in body.decode().splitlines():
        if not line or line.startswith("#"):
            continue
        series, value = line.rsplit(" ", 1)
        out.append((series, float(value)))
    return out


def value(samples, name):
    found = [v for s, v in samples if s.partition("{")[0] == name]
    return found[0] if found else None


def fired(tmp_path, samples, alerts):
    """Runs promtool test rules with the samples held constant for 10 minutes
    (a value that is a string: promtool's expanding notation) and, for each
    alert name, the label sets expected firing at 5m. Returns
    promtool's result. (The rules without their annotations, which promtool
    would compare too: `promtool check rules` checks their templates.)"""
    with open(RULES) as f:
        rules = yaml.safe_load(f)
    for group in rules["groups"]:
        for rule in group["rules"]:
            rule.pop("annotations", None)
    rules_path = tmp_path / "rules.yml"
    rules_path.write_text(yaml.safe_dump(rules))
    series = [{"series": s, "values": v if isinstance(v, str) else f"{v:.17g}+0x40"}
              for s, v in samples]
    test = {
        "rule_files": [str(rules_path)],
        "evaluation_interval": "15s",
        "tests": [{
            "interval": "15s",
            "input_series": series,
            "alert_rule_test": [
                {"eval_time": "5m", "alertname": name,
                 "exp_alerts": [{"exp_labels": labels} for labels in want]}
                for name, want in alerts.items()],
        }],
    }
    path = tmp_path / "test.yml"
    path.write_text(json.dumps(test))  # YAML is a superset of JSON
    return promtool("test", "rules", str(path))


def exp(severity, **labels):
    return dict(labels, severity=severity)


@pytest.fixture
def cluster(procs, workdir):
    c = DbhaCluster(procs, workdir, n=3, ttl=5, loop_wait=1, retry_timeout=1)
    yield c
    c.stop_all()


def test_alerts_fire_on_real_scrapes(cluster, tmp_path):
    c = cluster
    c.start()
    s = c.wait_healthy(timeout=120)
    leader = c.node(s["leader"])
    paused, other = sorted((n for n in c.nodes if n is not leader), key=lambda n: n.name)
    leader.sql("CREATE TABLE ballast (x text)")
    wait_until(lambda: all(n.sql("SELECT to_regclass('ballast') IS NOT NULL")[0][0]
                           for n in (paused, other)), 20, what="the table on both replicas")
    paused.sql("SELECT pg_wal_replay_pause()")
    leader.sql("INSERT INTO ballast SELECT repeat('x', 1000) FROM generate_series(1, %s)",
               (WRITE_MB * 1000,))

    def lagging():
        sp, so, sl = scrape(paused), scrape(other), scrape(leader)
        lp, lo = value(sp, "dbha_replica_lag_bytes"), value(so, "dbha_replica_lag_bytes")
        ok = lp is not None and lp > LIMIT and lo is not None and lo <= LIMIT and \
            value(sl, "patroni_primary") == 1
        return (sp, so, sl) if ok else None
    sp, so, sl = wait_until(lagging, 30, interval=0.5,
                            what="the paused replica's lag in its /metrics")
    samples = sp + so + sl
    scope = c.scope
    r = fired(tmp_path, samples, {
        "DbhaReplicationLag": [exp("warning", scope=scope, name=paused.name)],
        "DbhaNoLeader": [],
        "DbhaFencingFired": [],
        # ttl 5: a leader never has the 10 s the rule wants left
        "DbhaLeaderLeaseExpiring": [exp("critical", scope=scope, name=leader.name)],
        "DbhaSyncStandbyMissing": [],
    })
    assert r.returncode == 0, r.stdout + r.stderr
    # the test can fail: the other replica is not expected and does not fire
    r = fired(tmp_path, samples, {
        "DbhaReplicationLag": [exp("warning", scope=scope, name=paused.name),
                               exp("warning", scope=scope, name=other.name)]})
    assert r.returncode != 0 and "DbhaReplicationLag" in r.stdout + r.stderr, r.stdout

    # no leader: paused (no failover), the leader's agent stopped; the members
    # left report none
    p = c.dbctl("pause", "--wait")
    assert p.returncode == 0, p.stdout + p.stderr
    wait_until(lambda: all(value(scrape(n), "patroni_is_paused") == 1 for n in c.nodes), 20,
               interval=0.5, what="the pause in every /metrics")
    leader.stop()
    rest = scrape(paused) + scrape(other)
    assert value(rest, "patroni_primary") == 0 and \
        all(v == 0 for s, v in rest if s.startswith("patroni_primary{")), rest
    r = fired(tmp_path, rest, {"DbhaNoLeader": [exp("critical", scope=scope)]})
    assert r.returncode == 0, r.stdout + r.stderr
    # with the leader's earlier scrape among them, no alert
    r = fired(tmp_path, rest + sl, {"DbhaNoLeader": []})
    assert r.returncode == 0, r.stdout + r.stderr

    # the dashboard: valid JSON, and every metric it queries is in a real scrape
    names = {s.partition("{")[0] for s, _ in samples}
    with open(DASHBOARD) as f:
        dash = json.load(f)
    exprs = [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]
    assert exprs, "no queries in the dashboard"
    used = set()
    for e in exprs:
        used |= set(re.findall(r"\b((?:patroni|dbha)_[a-z0-9_]+)", e))
    assert used, exprs
    missing = used - names
    assert not missing, f"the dashboard queries metrics no agent serves: {sorted(missing)}"
    # and the rules' expressions too
    with open(RULES) as f:
        rules = yaml.safe_load(f)
    rule_metrics = set()
    for group in rules["groups"]:
        for rule in group["rules"]:
            rule_metrics |= set(re.findall(r"\b((?:patroni|dbha)_[a-z0-9_]+)", rule["expr"]))
    assert "dbha_fencings_total" in rule_metrics and "patroni_primary" in rule_metrics
    assert not rule_metrics - names, sorted(rule_metrics - names)


def test_fencing_alert_fires_after_a_real_fencing(cluster, tmp_path):
    c = cluster
    c.start()
    s = c.wait_healthy(timeout=120)
    leader = c.node(s["leader"])
    before = {n.name: scrape(n) for n in c.nodes}
    assert all(value(b, "dbha_fencings_total") == 0 for b in before.values()), before
    os.kill(leader.proc.pid, signal.SIGSTOP)
    try:
        def other_leads():
            st = c.status()
            return st["leader"] if st["leader"] and st["leader"] != leader.name else None
        wait_until(other_leads, 30, interval=0.2, what="a new leader")
    finally:
        os.kill(leader.proc.pid, signal.SIGCONT)
    after = wait_until(lambda: (lambda m: m if value(m, "dbha_fencings_total") == 1 else None)(
        scrape(leader)), 30, interval=0.5, what="the fencing in the old leader's /metrics")
    assert c.procs.log_contains(leader.name, "the fencing process shut postgresql down")
    # the old leader's fencing counter: before for 3 minutes, then after; the
    # other members' as scraped
    samples = []
    for series, v in after:
        if series.startswith("dbha_fencings_total{"):
            samples.append((series, f"{value(before[leader.name], 'dbha_fencings_total'):.0f}x12 "
                                    f"{v:.0f}x28"))
    for n in c.nodes:
        if n is not leader:
            samples += [(series, v) for series, v in scrape(n)
                        if series.startswith("dbha_fencings_total{")]
    assert len(samples) == 3, samples
    r = fired(tmp_path, samples, {
        "DbhaFencingFired": [exp("critical", scope=c.scope, name=leader.name)]})
    assert r.returncode == 0, r.stdout + r.stderr
