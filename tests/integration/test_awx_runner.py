"""The AWX execution path: playbooks run through ansible-runner, as AWX runs them.

Extra vars are passed as AWX surveys send them (strings), and the checks read what AWX keeps:
the set_stats artifacts of the job (``artifact_data`` of the ``playbook_on_stats`` event) and
the report files.
"""

import json
from pathlib import Path

import pytest
import yaml

from tests.integration.fleet_fixtures import fleet  # noqa: F401  pylint: disable=unused-import
from tests.integration.fleet_fixtures import ENV, REPO, unique
from tests.integration.service_fixtures import app  # noqa: F401  pylint: disable=unused-import
from tests.integration.test_awx_surveys import _AnsibleLoader as _AwxLoader
from tests.k8s_double import ApiDouble, objects_from_lab_state
from tests.lab.fleet import SUDO_USER

ansible_runner = pytest.importorskip("ansible_runner")

pytestmark = [pytest.mark.lab, pytest.mark.slow]

FAST = {  # every value a string, as a survey sends it
    "experiment_duration": "8s", "experiment_heartbeat_interval": "2", "experiment_heartbeat_timeout": "15s",
    "experiment_baseline_duration": "2s", "experiment_recovery_timeout": "15s", "experiment_memory_size": "32Mi",
    "experiment_memory_workers": "1", "experiment_probe_failure_threshold": "0", "experiment_allow_oom": "false",
}


def run_job(tmp_path, fleet, playbook, extravars, limit=None, ident="job", inventory=None, env=None):
    """Run a playbook with ansible-runner; return (runner, artifacts set with set_stats).

    ``env`` is what an AWX credential injects (K8S_AUTH_* for a Kubernetes credential)."""
    private = tmp_path / ("runner-" + ident)
    private.mkdir()
    envvars = dict((k, v) for k, v in ENV.items() if k.startswith("ANSIBLE_") or k == "PATH")
    envvars.update(env or {})
    runner = ansible_runner.run(
        private_data_dir=str(private), project_dir=str(REPO), playbook=playbook,
        inventory=inventory or fleet.inventory, extravars=extravars, limit=limit, ident=ident, quiet=True,
        timeout=900, envvars=envvars)
    stats = [e for e in runner.events if e.get("event") == "playbook_on_stats"]
    artifacts = stats[-1]["event_data"].get("artifact_data", {}) if stats else {}
    return runner, artifacts


def stdout(runner):
    return runner.stdout.read()[-5000:]


def lab_objects(fleet, label=None):
    """The fleet's lab pods as Kubernetes objects, each on its own node; ``label(node, pod)`` adds labels."""
    objects = {"pods": [], "nodes": []}
    for node in fleet.nodes:
        part = objects_from_lab_state(fleet.lab(node), node, fleet.node(node)["node_ip"])
        for pod in part["pods"]:
            extra = label(node, pod["metadata"]["name"]) if label else {}
            pod["metadata"]["labels"].update(extra or {})
            # Pod names are unique in a namespace, as in a cluster (each node's lab has a "hello").
            pod["metadata"]["name"] += "-" + node
        objects["pods"] += part["pods"]
        objects["nodes"] += part["nodes"]
    return objects


@pytest.fixture
def k8s_api(fleet):
    """The Kubernetes API double serving the fleet's lab pods; on node1 both hello and ledger carry
    cflab.io/pick=yes, on node2 only hello, on node3 none."""
    picks = {("node1", "hello"), ("node1", "ledger"), ("node2", "hello")}
    with ApiDouble(lab_objects(fleet, lambda node, pod: {"cflab.io/pick": "yes"} if (node, pod) in picks
                                else {})) as api:
        yield api


def sudo_inventory(tmp_path, extra_groups=None):
    """A second inventory source: the fleet group logs in as the nodes' non-root user and becomes
    root with sudo (group vars, as a real inventory would have them)."""
    path = tmp_path / "sudo-inventory.json"
    inventory = {"all": {"children": {"fleet": {"vars": {"ansible_user": SUDO_USER, "ansible_become": True}}}}}
    inventory["all"]["children"].update(extra_groups or {})
    path.write_text(json.dumps(inventory))
    return str(path)


SURVEY_PROBES = """- name: picked-pods-ready
  type: kubernetes
  namespace: default
  label_selector: cflab.io/pick=yes
  min_pods: 3
- name: cgroupfs-mounted
  type: command
  command: [test, -d, /sys/fs/cgroup/memory]
"""


def test_k8s_pod_stress_through_ansible_runner(fleet, k8s_api, tmp_path):
    """As the AWX survey runs it: Kubernetes credential in the environment, probes as survey text,
    a non-root login with sudo from group vars, and two picked containers on one node."""
    name = unique("awx-k8s")
    extravars = dict(FAST, experiment_name=name, experiment_report_dest=str(tmp_path / "reports"),
                     k8s_namespaces="default", k8s_label_selectors="cflab.io/pick: 'yes'", k8s_mode="all",
                     experiment_probes=SURVEY_PROBES)
    runner, artifacts = run_job(tmp_path, fleet, "chaosfleet.stress.k8s_pod_stress", extravars,
                                inventory=[fleet.inventory, sudo_inventory(tmp_path)],
                                env={"K8S_AUTH_KUBECONFIG": k8s_api.kubeconfig_path})
    assert (runner.status, runner.rc) == ("successful", 0), stdout(runner)

    hello1, ledger1 = fleet.container("node1", "hello")["id"], fleet.container("node1", "ledger")["id"]
    expected = {"node1--" + hello1[:12]: ("node1", "hello", hello1), "node1--" + ledger1[:12]: ("node1", "ledger", ledger1),
                "node2": ("node2", "hello", fleet.container("node2", "hello")["id"])}
    paths = artifacts["chaosfleet_report_paths"][name]
    report = json.loads(Path(paths["json"]).read_text())
    assert sorted(report["results"]) == sorted(expected) and report["verdict"] == "pass", report["verdicts"]
    for host, (node, pod, cid) in expected.items():
        # Hosts split per container kept the fleet group's vars (key, known hosts, sudo): they connected.
        result = artifacts["chaosfleet_result_" + host.replace("-", "_")][name]
        assert result["host"] == host and (result["status"], result["reason"]) == ("finished", "deadline")
        assert result["target"]["container_id"] == cid
        assert result["target"]["kubernetes"] == {"namespace": "default", "pod": "%s-%s" % (pod, node),
                                                  "container": pod, "node": node}
        probes = dict((p["name"], p) for p in report["results"][host]["steady_state"]["probes"])
        assert probes["picked-pods-ready"]["pass_rate"] == 100.0 and probes["picked-pods-ready"]["ok"]
        recovery = probes["picked-pods-ready"]["phases"]["recovery"]
        assert (recovery["checks"], recovery["passed"]) == (1, 1)
        assert "samples" not in result  # artifacts stay small; the samples are in the report
    summary = artifacts["chaosfleet_report"][name]
    assert summary["verdict"] == "pass" and sorted(summary["hosts"]["ok"]) == sorted(expected)
    markdown = Path(paths["markdown"]).read_text()
    assert "- Kubernetes: pod `default/ledger-node1`, container `ledger`, node `node1`" in markdown
    probe_lines = [line for line in markdown.splitlines() if "Probe `" in line]
    assert all(line.startswith("- Probe `") and line.count("Probe `") == 1 for line in probe_lines), probe_lines
    assert any(line.startswith("- Probe `picked-pods-ready`: ok, pass rate 100.0%") for line in probe_lines)


def test_shipped_weekly_game_day_passes_on_a_healthy_lab(fleet, tmp_path):
    """awx/game_day.yml as the AWX job template runs it, against a healthy lab: targets by selector
    (hello pods on node1 and node2; node3 of checkout_nodes runs none and is skipped), with its own
    probes, as a non-root user with sudo. Only the site's values and shorter timings are given."""
    awx_vars = yaml.load((REPO / "awx" / "vars" / "chaosfleet_awx.yml").read_text(), Loader=_AwxLoader)
    template = next(jt for jt in awx_vars["chaosfleet_awx_job_templates"] if jt["playbook"] == "playbooks/game_day.yml")
    objects = lab_objects(fleet)
    objects["pods"] = [p for p in objects["pods"] if not p["metadata"]["name"].endswith("-node3")]
    site = {"checkout_nodes": {"hosts": dict((n, {}) for n in fleet.nodes), "vars": {
        "checkout_health_url": "http://127.0.0.1:{{ fleet_pods.hello.http_port }}/"}}}
    reports = tmp_path / "reports"
    extravars = dict(template["extra_vars"], checkout_namespace="default", checkout_app="hello",
                     game_day_report_dest=str(reports), game_day_duration="8s", game_day_ramp="2s",
                     game_day_cooldown="0", experiment_baseline_duration="2s", experiment_recovery_timeout="15s",
                     experiment_heartbeat_interval="2", experiment_heartbeat_timeout="15s",
                     # The lab box is shared by parallel test runs (load 10+ on 2 cores), and with
                     # TEST_OVERLAP=1 this pass runs at the background's weight beside the serial one: a CPU
                     # stress there may reach far less of the quota than on a real node (under 20 % once),
                     # which is "inconclusive", not a broken steady state. The probes decide here.
                     experiment_achieved_min_percent="0")
    with ApiDouble(objects) as api:
        runner, artifacts = run_job(tmp_path, fleet, "playbooks/game_day.yml", extravars,
                                    inventory=[fleet.inventory, sudo_inventory(tmp_path, site)],
                                    env={"K8S_AUTH_KUBECONFIG": api.kubeconfig_path})
    assert (runner.status, runner.rc) == ("successful", 0), (stdout(runner), artifacts.get("chaosfleet_report"))
    summary = artifacts["chaosfleet_game_day"]
    assert summary["verdict"] == "pass" and summary["stopped"] is None and summary["not_run"] == []
    for entry in [e for batch in summary["batches"] for e in batch]:
        assert entry["verdict"] == "pass", entry
        assert entry["hosts"] == ["node1", "node2"] and entry["skipped"] == ["node3"]
        report = json.loads(Path(entry["reports"]["json"]).read_text())
        for host in ("node1", "node2"):
            result = report["results"][host]
            assert result["target"]["kubernetes"] == {"namespace": "default", "pod": "hello-" + host,
                                                      "container": "hello", "node": host}
            assert [(p["name"], p["ok"], p["pass_rate"]) for p in result["steady_state"]["probes"]] == \
                [("checkout-health", True, 100.0), ("checkout-pods", True, 100.0)]
    assert sorted(artifacts["chaosfleet_report"]) == ["checkout-cpu", "checkout-memory"]


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


def test_game_day_publishes_its_reports_and_each_experiment_keeps_its_settings(fleet, app, tmp_path):  # noqa: F811
    """game_day_publish uploads every report of the run and posts the game day's summary; an experiment's own
    achieved_min_percent reaches its report (it was 80 for all), and its own publish_webhook_url posts its own
    summary only. One parallel batch: the same 32Mi stress on node1 and node2."""
    name = unique("gdpub")
    hook, own_hook = "/hooks/T0CFLAB/gd-secret-%s" % name, "/hooks/T0CFLAB/own-secret-%s" % name
    probes = [{"name": "hello", "url": "http://127.0.0.1:{{ fleet_pods.hello.http_port }}/"}]
    spec = {
        "name": name, "report_dest": str(tmp_path / "reports"), "mode": "parallel",
        "defaults": {"duration": "8s", "heartbeat_interval": 2, "heartbeat_timeout": "15s", "baseline_duration": "2s",
                     "recovery_timeout": "15s", "probes": probes, "memory_size": "32Mi",
                     "container_id": "{{ fleet_pods.hello.container_id }}"},
        "gate": {"continue_on": ["pass", "inconclusive"]},
        "experiments": [{"name": name + "-loose", "type": "memory", "hosts": "node1", "achieved_min_percent": 20},
                        {"name": name + "-own", "type": "memory", "hosts": "node2",
                         "publish_webhook_url": app.url + own_hook}],
    }
    publish = {"upload": {"url": app.url + "/gd/{file}", "headers": {"X-JFrog-Art-Api": "cflab-gd-key"}},
               "webhook": {"url": app.url + hook}}
    before = len(app.received())
    runner, artifacts = run_job(tmp_path, fleet, "chaosfleet.stress.game_day",
                                {"game_day": spec, "game_day_publish": publish})
    assert (runner.status, runner.rc) == ("successful", 0), stdout(runner)
    received = app.received()[before:]
    output = runner.stdout.read()

    summary = artifacts["chaosfleet_game_day"]
    experiments = dict((e["name"], e) for batch in summary["batches"] for e in batch)
    assert summary["verdict"] == "pass", experiments
    assert artifacts["chaosfleet_report"][name + "-loose"]["achieved_min_percent"] == 20.0
    assert artifacts["chaosfleet_report"][name + "-own"]["achieved_min_percent"] == 80.0

    files = list(summary["reports"].values()) + [p for e in experiments.values() for p in e["reports"].values()]
    puts = dict((r["path"], r) for r in received if r["method"] == "PUT" and r["path"].startswith("/gd/"))
    assert sorted(puts) == sorted("/gd/" + Path(f).name for f in files) and len(files) == 2 + 2 * 3
    for path in files:
        assert puts["/gd/" + Path(path).name]["body"] == Path(path).read_bytes()
        assert puts["/gd/" + Path(path).name]["headers"]["x-jfrog-art-api"] == "cflab-gd-key"
    hooks = [json.loads(r["body"]) for r in received if r["path"] == hook]
    assert [m["text"] for m in hooks] == [":white_check_mark: *Game day %s*: PASS" % name]
    own = [json.loads(r["body"]) for r in received if r["path"] == own_hook]
    assert [m["text"] for m in own] == [":white_check_mark: *%s: %s-own*: PASS (1 ok)" % (name, name)]
    assert "summary posted to %s" % app.url in output
    for secret in ("gd-secret", "own-secret", "cflab-gd-key"):
        assert secret not in output, secret
