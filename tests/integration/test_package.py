"""dbctl's bash completion (packaging/bash-completion/dbctl) against a real
etcd holding a cluster's keys: verbs and options come from dbctl's --help,
member names from `dbctl list -f json` of the cluster the command line names.
The package itself (make deb, install, purge) is tests/package/deb_check.sh."""
import os
import subprocess
import time

import pytest

from lib.etcd_cluster import EtcdCluster
from lib.fake_cluster import FakeCluster
from lib.procs import binary

pytestmark = pytest.mark.concurrent

REPO = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
COMPLETION = os.path.join(REPO, "packaging", "bash-completion", "dbctl")
BASH_COMPLETION = "/usr/share/bash-completion/bash_completion"

SCRIPT = """
source "$BASH_COMPLETION"
source "$COMPLETION"
COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); COMP_LINE="$*"; COMP_POINT=${#COMP_LINE}
_dbctl
printf '%s\\n' "${COMPREPLY[@]}"
"""


def complete(*words):
    """What bash offers for the last word of `words` (words[0] is dbctl)."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PATRONI", "DBHA_", "DBCTL_", "DCS_URL"))}
    env.update(BASH_COMPLETION=BASH_COMPLETION, COMPLETION=COMPLETION, HOME="/nonexistent",
               XDG_CONFIG_HOME="/nonexistent")
    p = subprocess.run(["bash", "-c", SCRIPT, "_", *words], capture_output=True, text=True,
                       env=env, timeout=30)
    assert p.returncode == 0, p.stderr
    return [w for w in p.stdout.split("\n") if w]


@pytest.fixture
def fake(procs, workdir):
    return FakeCluster(EtcdCluster(procs, workdir).start()).write()


def test_verbs_and_options():
    dbctl = binary("dbctl")
    assert complete(dbctl, "sw") == ["switchover"]
    assert set(complete(dbctl, "re")) == {"reinit", "reload", "remove", "restart", "resume"}
    assert "--scope" in complete(dbctl, "--sc")
    assert "--watch" in complete(dbctl, "status", "--w")
    assert "--candidate" in complete(dbctl, "failover", "--c")
    assert complete(dbctl, "-o", "") == ["table", "json", "yaml"]


def test_member_names_from_the_named_cluster(fake):
    dbctl = binary("dbctl")
    cluster = ["--etcd", fake.etcd.endpoints[0], "--scope", fake.scope]
    assert sorted(complete(dbctl, *cluster, "switchover", "--candidate", "")) == ["n1", "n2", "n3"]
    assert complete(dbctl, *cluster, "restart", "n") == ["n1", "n2", "n3"]
    assert complete(dbctl, *cluster, "query", "-m", "n3") == ["n3"]
    # another scope: no member, and no error on the terminal
    other = ["--etcd", fake.etcd.endpoints[0], "--scope", "nosuchcluster"]
    assert complete(dbctl, *other, "restart", "") == []


def test_no_etcd_completes_nothing_quickly():
    dbctl = binary("dbctl")
    t0 = time.monotonic()
    assert complete(dbctl, "--etcd", "127.0.0.1:9", "--scope", "x", "reinit", "") == []
    assert time.monotonic() - t0 < 5
