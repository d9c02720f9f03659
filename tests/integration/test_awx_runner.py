"""The AWX execution path: playbooks run through ansible-runner, as AWX runs them.

Extra vars are passed as AWX surveys send them (strings), and the checks read what AWX keeps:
the set_stats artifacts of the job (``artifact_data`` of the ``playbook_on_stats`` event) and
the report files.
"""

import json
from pathlib import Path

import pytest

from tests.integration.fleet_fixtures import fleet  # noqa: F401  pylint: disable=unused-import
from tests.integration.fleet_fixtures import ENV, REPO, unique
from tests.k8s_double import ApiDouble, objects_from_lab_state

ansible_runner = pytest.importorskip("ansible_runner")

pytestmark = [pytest.mark.lab, pytest.mark.slow]

FAST = {  # every value a string, as a survey sends it
    "experiment_duration": "8s", "experiment_heartbeat_interval": "2", "experiment_heartbeat_timeout": "15s",
    "experiment_baseline_duration": "2s", "experiment_recovery_timeout": "15s", "experiment_memory_size": "32Mi",
    "experiment_memory_workers": "1", "experiment_probe_failure_threshold": "0", "experiment_allow_oom": "false",
}


def run_job(tmp_path, fleet, playbook, extravars, limit=None, ident="job"):
    """Run a playbook with ansible-runner; return (runner, artifacts set with set_stats)."""
    private = tmp_path / ("runner-" + ident)
    private.mkdir()
    runner = ansible_runner.run(
        private_data_dir=str(private), project_dir=str(REPO), playbook=playbook,
        inventory=fleet.inventory, extravars=extravars, limit=limit, ident=ident, quiet=True, timeout=900,
        envvars=dict((k, v) for k, v in ENV.items() if k.startswith("ANSIBLE_") or k == "PATH"))
    stats = [e for e in runner.events if e.get("event") == "playbook_on_stats"]
    artifacts = stats[-1]["event_data"].get("artifact_data", {}) if stats else {}
    return runner, artifacts


def stdout(runner):
    return runner.stdout.read()[-5000:]


@pytest.fixture
def k8s_api(fleet):
    """The Kubernetes API double serving the fleet's lab pods, each on its own node."""
    objects = {"pods": [], "nodes": []}
    for node in fleet.nodes:
        part = objects_from_lab_state(fleet.lab(node), node, fleet.node(node)["node_ip"])
        for pod in part["pods"]:
            # Pod names are unique in a namespace, as in a cluster (each node's lab has a "hello").
            pod["metadata"]["name"] += "-" + node
        objects["pods"] += part["pods"]
        objects["nodes"] += part["nodes"]
    with ApiDouble(objects) as api:
        yield api


def test_k8s_pod_stress_through_ansible_runner(fleet, k8s_api, tmp_path):
    name = unique("awx-k8s")
    extravars = dict(FAST, experiment_name=name, experiment_report_dest=str(tmp_path / "reports"),
                     k8s_kubeconfig=k8s_api.kubeconfig_path, k8s_namespaces="default",
                     k8s_label_selectors="app: hello", k8s_mode="all")
    runner, artifacts = run_job(tmp_path, fleet, "chaosfleet.stress.k8s_pod_stress", extravars)
    assert (runner.status, runner.rc) == ("successful", 0), stdout(runner)

    for node in fleet.nodes:
        result = artifacts["chaosfleet_result_" + node][name]
        assert result["host"] == node and (result["status"], result["reason"]) == ("finished", "deadline")
        # The container k8s_targets picked for this node is the node's own hello container.
        assert result["target"]["container_id"] == fleet.container(node, "hello")["id"]
        assert "samples" not in result  # artifacts stay small; the samples are in the report
    summary = artifacts["chaosfleet_report"][name]
    assert summary["experiment"] == name and sorted(summary["hosts"]["ok"]) == fleet.nodes
    paths = artifacts["chaosfleet_report_paths"][name]
    report = json.loads(Path(paths["json"]).read_text())
    assert sorted(report["results"]) == fleet.nodes and report["verdict"] == summary["verdict"]
    assert Path(paths["html"]).exists() and Path(paths["markdown"]).exists()


def test_job_slices_write_their_own_artifacts_and_reports(fleet, tmp_path):
    # AWX job slicing: each slice is a job of its own on part of the inventory.
    name = unique("awx-slice")
    reports = tmp_path / "reports"
    common = dict(FAST, experiment_name=name, experiment_report_dest=str(reports),
                  experiment_container_id="{{ fleet_pods.ledger.container_id }}", experiment_memory_size="16Mi",
                  experiment_expected_hosts="node1,node2,node3")
    slices = {"101": "node1,node2", "102": "node3"}
    artifacts = {}
    for job_id, hosts in slices.items():
        runner, artifacts[job_id] = run_job(tmp_path, fleet, "chaosfleet.stress.memory_stress",
                                            dict(common, awx_job_id=job_id), limit=hosts, ident="slice" + job_id)
        assert runner.rc == 0, stdout(runner)

    assert sorted(k for k in artifacts["101"] if k.startswith("chaosfleet_result_")) == \
        ["chaosfleet_result_node1", "chaosfleet_result_node2"]
    assert [k for k in artifacts["102"] if k.startswith("chaosfleet_result_")] == ["chaosfleet_result_node3"]
    first = json.loads((reports / ("stress-report-%s-job101.json" % name)).read_text())
    second = json.loads((reports / ("stress-report-%s-job102.json" % name)).read_text())
    assert sorted(first["hosts"]["ok"]) == ["node1", "node2"] and first["hosts"]["missing"] == ["node3"]
    assert second["hosts"]["ok"] == ["node3"] and sorted(second["hosts"]["missing"]) == ["node1", "node2"]
    assert artifacts["101"]["chaosfleet_report_paths"][name]["json"].endswith("-job101.json")


def test_game_day_through_ansible_runner(fleet, tmp_path):
    name = unique("gd")
    reports = tmp_path / "reports"
    spec = {
        "name": name, "report_dest": str(reports),
        "defaults": {"duration": "8s", "heartbeat_interval": 2, "heartbeat_timeout": "15s",
                     "baseline_duration": "2s", "recovery_timeout": "15s"},
        "gate": {"continue_on": ["pass", "inconclusive"]},
        "batches": [
            [{"name": name + "-mem", "type": "memory", "hosts": "node1,node2",
              "container_id": "{{ fleet_pods.hello.container_id }}", "memory_size": "32Mi",
              "probes": [{"name": "hello", "url": "http://127.0.0.1:{{ fleet_pods.hello.http_port }}/"}]},
             {"name": name + "-cpu", "type": "cpu", "hosts": "node3",
              "container_id": "{{ fleet_pods.ledger.container_id }}", "cpu_load": "50"}],
            [{"name": name + "-ledger", "type": "memory", "hosts": "fleet",
              "container_id": "{{ fleet_pods.ledger.container_id }}", "memory_size": "16Mi"}],
        ],
    }
    spec_file = tmp_path / "game-day.yml"
    spec_file.write_text(json.dumps(spec))  # JSON is YAML
    runner, artifacts = run_job(tmp_path, fleet, "chaosfleet.stress.game_day",
                                {"game_day_spec": str(spec_file)})
    assert runner.rc == 0, stdout(runner)

    summary = artifacts["chaosfleet_game_day"]
    assert [[e["name"] for e in batch] for batch in summary["batches"]] == \
        [[name + "-mem", name + "-cpu"], [name + "-ledger"]]
    assert summary["not_run"] == [] and summary["stopped"] is None
    assert sorted(artifacts["chaosfleet_report"]) == sorted([name + "-mem", name + "-cpu", name + "-ledger"])
    assert json.loads(Path(summary["reports"]["json"]).read_text())["name"] == name
    assert "| 2 | %s-ledger | node1, node2, node3 |" % name in Path(summary["reports"]["markdown"]).read_text()

    def window(experiment, node):
        result = artifacts["chaosfleet_result_" + node][experiment]
        return result["started_at"], result["ended_at"]

    mem, cpu, ledger = window(name + "-mem", "node1"), window(name + "-cpu", "node3"), window(name + "-ledger", "node3")
    assert mem[0] < cpu[1] and cpu[0] < mem[1]       # one batch: in parallel
    assert ledger[0] > max(mem[1], cpu[1])            # next batch: after the gate
    for experiment in (name + "-mem", name + "-cpu", name + "-ledger"):
        assert Path(artifacts["chaosfleet_report_paths"][experiment]["html"]).exists()


def test_game_day_gate_stops_the_next_batch(fleet, tmp_path):
    name = unique("gdgate")
    spec = {
        "name": name, "report_dest": str(tmp_path / "reports"),
        "defaults": {"duration": "6s", "heartbeat_interval": 2, "heartbeat_timeout": "15s",
                     "baseline_duration": "1s", "recovery_timeout": "10s"},
        "gate": {"continue_on": ["pass"]},  # no probes: the CPU run is inconclusive, which closes the gate
        "experiments": [
            {"name": name + "-cpu", "type": "cpu", "hosts": "node1",
             "container_id": "{{ fleet_pods.ledger.container_id }}", "cpu_load": "30"},
            {"name": name + "-mem", "type": "memory", "hosts": "node1",
             "container_id": "{{ fleet_pods.hello.container_id }}", "memory_size": "16Mi"},
        ],
    }
    runner, artifacts = run_job(tmp_path, fleet, "chaosfleet.stress.game_day", {"game_day": spec})
    assert runner.rc == 2, stdout(runner)
    summary = artifacts["chaosfleet_game_day"]
    assert summary["not_run"] == [name + "-mem"]
    assert summary["stopped"].startswith("gate after batch 1 closed: %s-cpu ended inconclusive" % name)
    assert fleet.outcome("node1", name + "-mem") is None  # never started
