"""dbagent and dbctl command-line contract: --validate-config on good and bad
files (exit 0 / 2, FILE:LINE:COL messages, environment overrides, no secret
in any output), --version, --help, and usage errors."""
import os
import re
import signal
import subprocess

import pytest

from lib.cluster import DbhaCluster
from lib.procs import binary, wait_until

pytestmark = pytest.mark.concurrent

REPO = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
CONFIGS = [os.path.join(REPO, "configs", f"node{i}.yml") for i in (1, 2, 3)]

MINIMAL = """\
scope: demo
name: node1
restapi:
  listen: 127.0.0.1:8011
  connect_address: 127.0.0.1:8011
etcd3:
  hosts: 127.0.0.1:2379
postgresql:
  listen: 127.0.0.1:5441
  connect_address: 127.0.0.1:5441
  data_dir: /tmp/dbha-node1
  authentication:
    superuser:
      username: postgres
      password: s3cr3t-super
"""


def run(argv, env=None, timeout=30):
    full_env = dict(os.environ)
    for k in list(full_env):
        if k.startswith(("PATRONI_", "DBHA_")):
            del full_env[k]
    full_env.update(env or {})
    return subprocess.run(argv, capture_output=True, text=True, env=full_env, timeout=timeout)


def write(workdir, name, text):
    path = os.path.join(workdir, name)
    with open(path, "w") as f:
        f.write(text)
    return path


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: os.path.basename(p))
def test_example_configs_validate(path):
    r = run([binary("dbagent"), "--validate-config", path])
    assert r.returncode == 0, r.stderr
    assert f"{path}: configuration is valid" in r.stdout
    assert r.stderr == "", "example configs must not even warn: " + r.stderr


def test_minimal_config_is_valid(workdir):
    path = write(workdir, "ok.yml", MINIMAL)
    r = run([binary("dbagent"), "--validate-config", path])
    assert r.returncode == 0, r.stderr
    assert "s3cr3t" not in r.stdout + r.stderr


def test_bad_value_reports_file_line_col_and_exit_2(workdir):
    text = MINIMAL + "bootstrap:\n  dcs:\n    ttl: abc\n"
    path = write(workdir, "bad.yml", text)
    r = run([binary("dbagent"), "--validate-config", path])
    assert r.returncode == 2
    # ttl is on line 18 (1-based), its value starts at column 10
    assert re.search(rf"^error: {re.escape(path)}:18:10: .*ttl", r.stderr, re.M), r.stderr
    assert "configuration is not valid" in r.stderr


def test_bad_parameter_name_reports_file_line_col_and_exit_2(workdir):
    # a quoted YAML key with a newline would inject an hba_file line
    text = MINIMAL + ("  parameters:\n    \"work_mem = '1MB'\\nhba_file\": /tmp/evil\n"
                      "bootstrap:\n  dcs:\n    postgresql:\n      parameters:\n"
                      "        include: /tmp/evil.conf\n")
    path = write(workdir, "badname.yml", text)
    r = run([binary("dbagent"), "--validate-config", path])
    assert r.returncode == 2
    assert re.search(rf"^error: {re.escape(path)}:17:5: in \"postgresql.parameters\": "
                     r"\"work_mem = '1MB'", r.stderr, re.M), r.stderr
    assert re.search(rf"^error: {re.escape(path)}:22:9: in \"bootstrap.dcs.postgresql.parameters\": "
                     r"\"include\" is not a PostgreSQL parameter name: use letters, digits", r.stderr,
                     re.M), r.stderr


def test_every_error_is_reported_not_just_the_first(workdir):
    text = MINIMAL.replace("name: node1\n", "") + "watchdog:\n  mode: sometimes\n"
    path = write(workdir, "two.yml", text)
    r = run([binary("dbagent"), "--validate-config", path])
    assert r.returncode == 2
    errors = [l for l in r.stderr.splitlines() if l.startswith("error: ")]
    assert len(errors) == 2, r.stderr
    assert any('"name"' in l for l in errors), r.stderr
    assert any("sometimes" in l for l in errors), r.stderr


def test_unknown_key_warns_with_suggestion_but_is_valid(workdir):
    text = MINIMAL + "watchdog:\n  mdoe: 'off'\n"
    path = write(workdir, "typo.yml", text)
    r = run([binary("dbagent"), "--validate-config", path])
    assert r.returncode == 0, r.stderr
    assert re.search(rf"^warning: {re.escape(path)}:17:3: .*mdoe.*did you mean .*watchdog.mode",
                     r.stderr, re.M), r.stderr


def test_yaml_syntax_error_has_position(workdir):
    path = write(workdir, "syntax.yml", "scope: demo\nname: [unclosed\n")
    r = run([binary("dbagent"), "--validate-config", path])
    assert r.returncode == 2
    assert re.search(rf"^error: {re.escape(path)}:\d+:\d+: ", r.stderr, re.M), r.stderr


def test_missing_file_is_exit_2(workdir):
    path = os.path.join(workdir, "nope.yml")
    r = run([binary("dbagent"), "--validate-config", path])
    assert r.returncode == 2
    assert path in r.stderr


def test_patroni_configuration_variable(workdir):
    """Patroni's PATRONI_CONFIGURATION: the whole document in the environment
    when no file is given; positions name the variable; with a file, it is
    not read, and says so."""
    r = run([binary("dbagent"), "--validate-config"], env={"PATRONI_CONFIGURATION": MINIMAL})
    assert r.returncode == 0, r.stderr
    assert "PATRONI_CONFIGURATION: configuration is valid" in r.stdout and r.stderr == ""
    # the other variables apply on top, as with a file
    r = run([binary("dbagent"), "--validate-config"],
            env={"PATRONI_CONFIGURATION": MINIMAL, "PATRONI_SCOPE": "fromenv"})
    assert r.returncode == 0 and "scope: fromenv" in r.stdout, r.stdout
    bad = MINIMAL + "bootstrap:\n  dcs:\n    ttl: abc\n"
    r = run([binary("dbagent"), "--validate-config"], env={"PATRONI_CONFIGURATION": bad})
    assert r.returncode == 2
    assert re.search(r"error: PATRONI_CONFIGURATION:18:10: expected .*\"bootstrap\.dcs\.ttl\"",
                     r.stderr), r.stderr
    r = run([binary("dbagent"), "--validate-config"])
    assert r.returncode == 2
    assert "no configuration: give a configuration file, or the YAML document in the " \
           "environment variable PATRONI_CONFIGURATION" in r.stderr, r.stderr
    r = run([binary("dbagent")])  # the agent itself: the same refusal, before anything starts
    assert r.returncode == 2 and "no configuration" in r.stderr, r.stderr
    path = write(workdir, "ok.yml", MINIMAL)
    r = run([binary("dbagent"), "--validate-config", path], env={"PATRONI_CONFIGURATION": "x: 1"})
    assert r.returncode == 0
    assert "warning: environment PATRONI_CONFIGURATION: not read: a configuration file was " \
           "given" in r.stderr, r.stderr
    r = run([binary("dbagent"), "--validate-config", path, path])
    assert r.returncode == 2 and "unexpected argument" in r.stderr


def test_agent_runs_from_patroni_configuration(procs, workdir):
    """An agent started with no file and its document in PATRONI_CONFIGURATION
    bootstraps, serves, and reloads it on SIGHUP."""
    c = DbhaCluster(procs, workdir, n=1, ttl=10, loop_wait=1, retry_timeout=2)
    n = c.nodes[0]
    n.config_in_env = True
    try:
        c.start()
        c.wait_healthy(timeout=90, replicas=0)
        assert not os.path.exists(n.config_path)  # no file was written or read
        os.kill(n.proc.pid, signal.SIGHUP)
        wait_until(lambda: procs.log_contains(n.name, 'reloaded "PATRONI_CONFIGURATION"'), 20,
                   interval=0.2, what="the reload of the environment's document")
    finally:
        c.stop_all()


def test_environment_overrides(workdir):
    text = MINIMAL.replace("scope: demo\n", "")
    path = write(workdir, "noscope.yml", text)
    r = run([binary("dbagent"), "--validate-config", path])
    assert r.returncode == 2 and '"scope"' in r.stderr, r.stderr
    r = run([binary("dbagent"), "--validate-config", path], env={"PATRONI_SCOPE": "fromenv"})
    assert r.returncode == 0, r.stderr
    assert "fromenv" in r.stdout
    r = run([binary("dbagent"), "--validate-config", path],
            env={"PATRONI_SCOPE": "patroni", "DBHA_SCOPE": "dbha"})
    assert r.returncode == 0 and "dbha" in r.stdout and "patroni" not in r.stdout, r.stdout


def test_bad_environment_value_names_the_variable(workdir):
    path = write(workdir, "ok.yml", MINIMAL)
    r = run([binary("dbagent"), "--validate-config", path],
            env={"PATRONI_ETCD3_PROTOCOL": "gopher"})
    assert r.returncode == 2
    assert "PATRONI_ETCD3_PROTOCOL" in r.stderr, r.stderr


def test_passwords_never_printed(workdir):
    text = MINIMAL.replace("password: s3cr3t-super", "password: [s3cr3t-super]")
    path = write(workdir, "pw.yml", text)
    env = {"PATRONI_REPLICATION_PASSWORD": "env-s3cr3t", "PATRONI_ETCD3_PASSWORD": "etcd-s3cr3t"}
    for p in (path, write(workdir, "ok.yml", MINIMAL)):
        r = run([binary("dbagent"), "--validate-config", p], env=env)
        out = r.stdout + r.stderr
        assert "s3cr3t" not in out, out
    r = run([binary("dbagent"), "--validate-config", path], env=env)
    assert r.returncode == 2


def test_version_and_help():
    r = run([binary("dbagent"), "--version"])
    assert r.returncode == 0 and re.fullmatch(r"dbagent \d+\.\d+\.\d+\n", r.stdout), r.stdout
    r = run([binary("dbagent"), "--help"])
    assert r.returncode == 0 and "--validate-config" in r.stdout
    r = run([binary("dbagent"), "--bogus"])
    assert r.returncode == 2
    r = run([binary("dbagent")])
    assert r.returncode == 2


def test_dbctl_version_and_usage():
    r = run([binary("dbctl"), "version"])
    assert r.returncode == 0 and re.fullmatch(r"dbctl version \d+\.\d+\.\d+\n", r.stdout)
    r = run([binary("dbctl"), "-o", "json", "version"])
    assert r.returncode == 0 and '"dbctl"' in r.stdout
    assert run([binary("dbctl"), "nosuchverb"]).returncode == 2
    assert run([binary("dbctl")]).returncode == 2
    assert run([binary("dbctl"), "-o", "xml", "version"]).returncode == 2
