"""The roles and playbooks on the 3-node SSH fleet: a whole experiment, CPU, stress_ng, rollback.

Assertions read the nodes from the host side (cgroups, the node's /run) and the report files,
not only what Ansible printed.
"""

import json
from pathlib import Path

import pytest

from tests.integration.fleet_fixtures import fleet  # noqa: F401  pylint: disable=unused-import
from tests.integration.fleet_fixtures import REPO, fast_experiment, run_playbook, unique, wait_for

pytestmark = [pytest.mark.lab, pytest.mark.slow]

MiB = 1024 * 1024
PLAYBOOKS = REPO / "tests" / "integration" / "playbooks"


def hello_probe():
    return [{"name": "hello-http", "url": "http://127.0.0.1:{{ fleet_pods.hello.http_port }}/"}]


def rollback_messages(run):
    """host -> what the rollback role said it did there."""
    out = {}
    for line in run.out.splitlines():
        line = line.strip()
        if line.startswith('"msg": "node'):
            host, text = line[len('"msg": "'):-1].split(": ", 1)
            out[host] = text
    return out


def test_memory_experiment_runs_on_every_node_reports_and_reruns_unchanged(fleet, tmp_path):
    name = unique("mem")
    extra = fast_experiment(experiment_name=name, experiment_report_dest=str(tmp_path),
                            experiment_probes=hello_probe())
    run = run_playbook(fleet, "chaosfleet.stress.memory_stress", extra)
    assert run.rc == 0, run

    report_path = tmp_path / ("stress-report-%s.json" % name)
    report = json.loads(report_path.read_text())
    assert sorted(report["hosts"]["ok"]) == fleet.nodes and not report["hosts"]["missing"]
    assert report["verdict"] == "pass", report["verdicts"]
    for node in fleet.nodes:
        result = report["results"][node]
        # Each node stressed its own pod: discovery on one node cannot see another's.
        assert result["target"]["container_id"] == fleet.container(node, "hello")["id"]
        assert (result["status"], result["reason"]) == ("finished", "deadline")
        assert 0.8 * 32 * MiB <= result["achieved"]["working_set_increase_bytes"] <= 1.25 * 32 * MiB
        assert result["steady_state"]["held"] is True
        assert [p["name"] for p in result["steady_state"]["probes"]] == ["hello-http"]
        assert result["recovery"]["recovered"] is True
        assert result["baseline"]["count"] >= 2
        outcome = fleet.outcome(node, name)
        assert outcome["processes_left"] == [] and fleet.stress_pids(node) == []
    assert (tmp_path / ("stress-report-%s.html" % name)).exists()

    # The name is the idempotency key: a second run reports the same result and changes nothing.
    before = report_path.read_text()
    again = run_playbook(fleet, "chaosfleet.stress.memory_stress", extra)
    assert again.rc == 0, again
    assert all(counts["changed"] == 0 for counts in again.recap().values()), again.recap()
    assert report_path.read_text() == before


@pytest.mark.serial
def test_cpu_experiment_with_survey_strings(fleet, tmp_path):
    # Every value a string, as an AWX survey sends it.
    name = unique("cpu")
    extra = {
        "experiment_name": name, "experiment_container_id": "{{ fleet_pods.ledger.container_id }}",
        "experiment_cpu_load": "60", "experiment_cpu_workers": "1", "experiment_duration": "8s",
        "experiment_heartbeat_interval": "2", "experiment_heartbeat_timeout": "15s",
        "experiment_baseline_duration": "2s", "experiment_recovery_timeout": "10s",
        "experiment_probe_failure_threshold": "0", "experiment_max_failed_nodes_percent": "50",
        "experiment_allow_oom": "false", "experiment_report_dest": str(tmp_path),
    }
    run = run_playbook(fleet, "chaosfleet.stress.cpu_stress", extra, limit="node1,node2")
    assert run.rc == 0, run
    report = json.loads((tmp_path / ("stress-report-%s.json" % name)).read_text())
    assert sorted(report["hosts"]["ok"]) == ["node1", "node2"]
    for node in ("node1", "node2"):
        result = report["results"][node]
        assert result["request"]["kind"] == "cpu" and result["request"]["cpu_load_percent"] == 60
        assert result["status"] == "finished"
        # The ledger pod has a 0.5-core quota: the stress ran and stayed under it.
        assert 0.05 < result["achieved"]["cpu_cores"] <= 0.55
    assert fleet.outcome("node3", name) is None  # not in the play


def test_stress_ng_role_binary_push_is_idempotent_and_check_mode_writes_nothing(fleet):
    playbook = str(PLAYBOOKS / "fleet_stress_ng.yml")
    dest = "/var/tmp/%s/stress-ng" % unique("cfbin")
    pushed = {"stress_ng_install_method": "binary", "stress_ng_binary_src": "/usr/bin/stress-ng",
              "stress_ng_binary_dest": dest}

    dry = run_playbook(fleet, playbook, pushed, check=True)
    assert dry.rc == 0, dry
    assert not fleet.node_file("node1", dest[len("/var/tmp/"):]).exists()

    first = run_playbook(fleet, playbook, pushed)
    assert first.rc == 0, first
    assert all(counts["changed"] >= 1 for counts in first.recap().values())
    assert "stress_ng_version=0.15" in first.out and "stress_ng_executable=%s" % dest in first.out
    for node in fleet.nodes:
        assert fleet.node_file(node, dest[len("/var/tmp/"):]).stat().st_mode & 0o777 == 0o755

    second = run_playbook(fleet, playbook, pushed)
    assert second.rc == 0 and all(c["changed"] == 0 for c in second.recap().values()), second.recap()


def test_stress_ng_role_package_and_verify(fleet):
    playbook = str(PLAYBOOKS / "fleet_stress_ng.yml")
    package = run_playbook(fleet, playbook, {"stress_ng_install_method": "package"}, limit="node1")
    assert package.rc == 0 and package.recap()["node1"]["changed"] == 0, package
    assert "stress_ng_version=0.15" in package.out

    missing = run_playbook(fleet, playbook, {"stress_ng_install_method": "verify",
                                             "stress_ng_path": "/nonexistent/stress-ng"}, limit="node1")
    assert missing.rc != 0
    assert "stress-ng is not usable on node1" in missing.out

    no_src = run_playbook(fleet, playbook, {"stress_ng_install_method": "binary"}, limit="node1")
    assert no_src.rc != 0 and "binary needs stress_ng_binary_src" in no_src.out


def test_rollback_stops_named_experiments_then_all_and_reports_it(fleet):
    first, second = unique("rb-a"), unique("rb-b")
    start = str(PLAYBOOKS / "fleet_start_stress.yml")
    for name, pod in ((first, "hello"), (second, "ledger")):
        run = run_playbook(fleet, start, {"stress_name": name, "stress_pod": pod}, limit="node1,node2")
        assert run.rc == 0, run
    assert all(fleet.stress_pids(node) for node in ("node1", "node2"))

    # As the AWX "Emergency stop" survey gives it: one text field, names separated by commas (one unknown here).
    named = run_playbook(fleet, "chaosfleet.stress.rollback", {"rollback_experiments": " %s, cf-no-such-xp" % first})
    assert named.rc == 0, named
    said = rollback_messages(named)
    assert said["node1"].startswith("stopped ['%s']" % first) and said["node2"].startswith("stopped ['%s']" % first)
    assert first not in said["node3"] and second not in said["node1"]
    for node in ("node1", "node2"):
        assert fleet.outcome(node, first)["reason"] == "stop"
        assert fleet.outcome(node, second) is None  # still running

    everything = run_playbook(fleet, "chaosfleet.stress.rollback")
    assert everything.rc == 0, everything
    said = rollback_messages(everything)
    assert said["node2"].startswith("stopped ['%s']" % second)
    assert "%s (stopped, stop)" % first in said["node2"]  # already ended, reported as such
    for node in fleet.nodes:
        assert wait_for(lambda: not fleet.stress_pids(node), 5)

    # Check mode on a node with nothing running changes nothing.
    dry = run_playbook(fleet, "chaosfleet.stress.rollback", check=True)
    assert dry.rc == 0 and all(c["changed"] == 0 for c in dry.recap().values())


def test_nodes_log_in_like_plain_servers_without_the_hosts_dotfiles(fleet):
    """The host's root .bashrc starts pyenv, whose stale rehash lock once stalled every SSH command
    for 60 s and let the dead-man end healthy experiments; lab nodes must not run it."""
    for node in fleet.nodes:
        shown = fleet.ssh(node, "sh", "-c", 'echo "pyenv=[$PYENV_ROOT] path=[$PATH]"').stdout
        assert "pyenv=[]" in shown, shown
        assert ".pyenv" not in shown, shown


def test_module_runs_on_nodes_keep_their_bytecode_in_the_nodes_run(fleet):
    """tests/lab/bytecode_site: each node's sshd puts the bytecode cache on its sessions' PYTHONPATH; a module run
    there stores its compiled modules in the node's private /run, and nothing of it lands on the host's."""
    node = fleet.nodes[0]
    run_playbook(fleet, "chaosfleet.stress.rollback", limit=node, check=True)
    cached = Path(fleet.root(node) + "/run/cflab-bytecode")
    assert len([entry for entry in cached.iterdir() if "." not in entry.name]) > 10
    assert not Path("/run/cflab-bytecode").exists()
