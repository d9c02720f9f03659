"""The collection through a non-root login with sudo, as on real fleets (no root SSH).

Every fleet node has SUDO_USER (tests/lab/fleet.py: a user with passwordless sudo and the
controller's key, in the node's own /etc). These tests log in as that user and become root
with sudo, for the install playbook and the preflight; whole experiments run through it in
test_awx_runner.py (k8s_pod_stress and the shipped game day).
"""

import json
import os

import pytest

from tests.integration.fleet_fixtures import fleet  # noqa: F401  pylint: disable=unused-import
from tests.integration.fleet_fixtures import run_playbook
from tests.lab.fleet import SUDO_USER

pytestmark = [pytest.mark.lab, pytest.mark.slow]

AS_USER = {"ansible_user": SUDO_USER}


def _install_then_preflight(tmp_path):
    """One playbook: the install playbook, then the preflight as the plain login and through sudo."""
    plays = [{"name": "install", "ansible.builtin.import_playbook": "chaosfleet.stress.install"}]
    for become in (False, True):
        plays.append({"name": "preflight", "hosts": "node1", "gather_facts": False, "become": become, "tasks": [
            {"name": "preflight", "chaosfleet.stress.preflight": {"fail_on_missing": False}, "register": "found"},
            {"name": "keep", "ansible.builtin.copy": {"content": "{{ found | to_json }}",
                                                      "dest": str(tmp_path / ("become-%s.json" % become))},
             "delegate_to": "localhost", "become": False}]})
    path = tmp_path / "install.yml"
    path.write_text(json.dumps(plays))
    return str(path)


def test_install_playbook_through_sudo_and_preflight_names_what_lacks(fleet, tmp_path):
    run = run_playbook(fleet, _install_then_preflight(tmp_path), dict(AS_USER, install_hosts="node1"),
                       limit="node1")
    assert run.rc == 0, run
    assert run.recap()["node1"]["failed"] == 0
    assert "TASK [Check what each node lacks to run experiments]" in run.out

    # Without become the login lacks root, and the preflight says so and how to fix it.
    found = json.loads((tmp_path / "become-False.json").read_text())
    assert not found["ready"]
    assert found["checks"]["privileges"]["detail"].startswith(
        "running as %s (uid " % SUDO_USER) and "run with become: true" in found["checks"]["privileges"]["detail"]
    assert not found["checks"]["cgroup_procs"]["ok"]
    assert found["checks"]["stress_ng"]["ok"] and found["checks"]["nsenter"]["ok"]

    found = json.loads((tmp_path / "become-True.json").read_text())
    assert found["ready"], found["missing"]
    assert found["checks"]["privileges"]["detail"] == "running as root"
    # The user exists in the nodes' own /etc only: the host's files are untouched.
    assert SUDO_USER + ":" not in open("/etc/passwd").read()
    assert not os.path.exists("/etc/sudoers.d/" + SUDO_USER)
