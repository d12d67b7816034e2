"""The corpus of real Patroni configurations (tests/patroni-configs/, each
file's source and licence in its header) through `dbagent
--validate-config`: which are accepted, which refused and where, and which
settings each one gets a warning for. Every refusal and every warning names
FILE:LINE:COL and the key; nothing in a file is passed over in silence. The
table below is the state of issue #16: a setting dbha learns to honour
leaves its warning line, a newly refused one joins the errors, and either
is a deliberate change of this table."""
import glob
import os
import re
import subprocess

import pytest

from lib.procs import binary

pytestmark = pytest.mark.concurrent

CORPUS = os.path.join(os.path.dirname(__file__), "..", "patroni-configs")
# partial configs: their deployments give these in the environment
PARTIAL = {"patroni-k8s-entrypoint.yml", "timescaledb-single.yml"}
PARTIAL_ENV = {"PATRONI_NAME": "node1", "PATRONI_SCOPE": "demo",
               "PATRONI_POSTGRESQL_DATA_DIR": "/var/lib/postgresql/15/main",
               "PATRONI_RESTAPI_CONNECT_ADDRESS": "127.0.0.1:8008",
               "PATRONI_POSTGRESQL_CONNECT_ADDRESS": "127.0.0.1:5432"}

# file: (exit status, [(line, key) refused], [(line, key) warned])
EXPECTED = {
    "ansible-role-patroni-nemchenko.yml": (0, [],
        []),
    "canonical-postgresql-operator.yml": (0, [],
        [(283, 'use_unix_socket')]),
    "debian-config-template.yml": (0, [],
        []),
    "ferlab-terraform-cloudinit.yml": (0, [],
        []),
    "gitlab-omnibus.yml": (0, [],
        [(74, 'ctl.cafile')]),
    "patroni-k8s-entrypoint.yml": (0, [],
        []),
    "patroni-postgres0.yml": (0, [],
        []),
    "patroni-postgres1.yml": (0, [],
        []),
    "patroni-postgres2.yml": (0, [],
        []),
    "percona-pg11-apt.yml": (2, [(33, 'bootstrap.dcs.slots.type')],
        [(72, 'postgresql.cluster_name')]),
    "percona-pg17-apt.yml": (0, [],
        [(71, 'postgresql.cluster_name')]),
    "postgresql_cluster-default.yml": (0, [],
        []),
    "postgresql_cluster-walg-standby.yml": (0, [],
        []),
    "spilo-clone-wale.yml": (0, [],
        []),
    "spilo-standby-wale.yml": (0, [],
        []),
    "spilo-template.yml": (0, [],
        []),
    "timescaledb-single.yml": (0, [],
        []),
}

LINE = re.compile(r"(error|warning): (\S+?):(\d+):(\d+): (.*)")


def validate(name):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PATRONI_", "DBHA_"))}
    if name in PARTIAL:
        env.update(PARTIAL_ENV)
    path = os.path.join(CORPUS, name)
    p = subprocess.run([binary("dbagent"), "--validate-config", path], capture_output=True,
                       text=True, env=env, timeout=30)
    errors, warnings = [], []
    for line in p.stderr.splitlines():
        m = LINE.match(line)
        if not m:
            continue
        assert os.path.samefile(m.group(2), path), line
        assert int(m.group(3)) >= 1 and int(m.group(4)) >= 1, line
        # 'a.b.c: ...', 'expected ... for "a.b"', or the first quoted name
        key = (re.match(r"([\w.-]+): ", m.group(5))
               or re.match(r'expected .* for "([^"]+)"', m.group(5))
               or re.match(r'[^"]*"([^"]+)"', m.group(5)))
        assert key, f"names no key: {line}"
        (errors if m.group(1) == "error" else warnings).append((int(m.group(3)), key.group(1)))
    return p.returncode, sorted(errors), sorted(warnings), p.stderr


def test_the_table_covers_the_corpus():
    assert sorted(EXPECTED) == sorted(os.path.basename(f)
                                      for f in glob.glob(os.path.join(CORPUS, "*.yml")))


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_patroni_config(name):
    rc, errors, warnings, text = validate(name)
    want_rc, want_errors, want_warnings = EXPECTED[name]
    assert (rc, errors, warnings) == (want_rc, sorted(want_errors), sorted(want_warnings)), text
    if rc == 0:
        assert not errors
    else:
        assert "configuration is not valid" in text
