"""Kubernetes without SSH, end to end: the agent deployed by its playbook, k8s_pod_stress with
k8s_node_access=agent, and the faults of the issue (an agent pod deleted mid-run, the exec stream cut,
kubectl missing, no right to pods/exec).

Two lab node names share this host's runc pods: hello and ledger run on cfnode-a, whose agent has the
host's cgroup namespace; checkout, payments and batch on cfnode-b, whose agent has a private one. The
agents are real containers (tests/lab/agents.py; agents.LAB_PRIVILEGE_FLAGS stand in for `privileged`),
reached only through the API double's pods/exec by the real kubectl and kubernetes.core.kubectl. No
SSH anywhere. Every figure is read from the targets' cgroups on the host.
"""

import json
import os
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from tests.integration.agent_fixtures import agent_cluster, agent_lab, agents, kubectl  # noqa: F401
from tests.integration.ansible_helpers import ENV, REPO, median, stress_pids, wait_for, working_set
from tests.integration.fidelity import overshoot_allowed, steady_allowed
from tests.integration.fleet_fixtures import unique
from tests.integration.lab_fixtures import lab_container
from tests.k8s_double import make_node, objects_from_lab_state

# Fidelity and the 5-second stop are timing-sensitive: this module runs in the serial pass.
pytestmark = [pytest.mark.lab, pytest.mark.slow, pytest.mark.serial]

MI = 1024 * 1024
NODES = {"cfnode-a": ("hello", "ledger"), "cfnode-b": ("checkout", "payments", "batch")}
CGROUPNS = {"cfnode-a": "host", "cfnode-b": "private"}
PICKED = ("hello", "checkout")
PLAYBOOK = str(REPO / ".venv" / "bin" / "ansible-playbook")
FAST = {"experiment_heartbeat_interval": 2, "experiment_heartbeat_timeout": "15s", "experiment_baseline_duration": "2s",
        "experiment_recovery_timeout": "20s", "experiment_memory_workers": 1, "experiment_allow_oom": False}


def node_of(pod_name):
    return next(node for node, pods in NODES.items() if pod_name in pods)


@pytest.fixture(scope="module")
def cluster(lab, agent_lab):
    """The lab's pods on two nodes, the agent deployed by `chaosfleet.stress.agent`, torn down at the end."""
    if not kubectl():
        pytest.skip("kubectl is not on the PATH")
    objects = objects_from_lab_state(lab)
    for pod in objects["pods"]:
        name = pod["metadata"]["name"]
        pod["spec"]["nodeName"] = node_of(name)
        if name in PICKED:
            pod["metadata"]["labels"]["cflab.io/pick"] = "yes"
    objects["nodes"] = [make_node(node, "127.0.0.1") for node in NODES]
    with agent_cluster(agent_lab, nodes=tuple(NODES), cgroupns=CGROUPNS, objects=objects) as (api, controller):
        deployed = playbook("playbooks/agent.yml", api, agent_state="present", agent_image=agent_lab.image,
                            agent_wait_timeout=120)
        assert deployed.returncode == 0, deployed.stdout[-3000:]
        controller.settle()
        yield {"api": api, "controller": controller, "lab": lab, "agents": agent_lab}
        removed = playbook("playbooks/agent.yml", api, agent_state="absent")
        assert removed.returncode == 0, removed.stdout[-3000:]
        controller.settle()


def playbook(path, api, env=None, timeout=600, background=False, **extra_vars):
    """ansible-playbook with no inventory at all: every node is reached through the API."""
    extra_vars.setdefault("k8s_kubeconfig", api.kubeconfig_path)
    argv = [PLAYBOOK, path, "-e", json.dumps(extra_vars)]
    # TMPDIR: kubernetes.core's discovery cache (one file per API address) goes, and goes away, with the double
    env = dict(ENV, TMPDIR=api.workdir, **(env or {}))
    if background:
        return subprocess.Popen(argv, cwd=str(REPO), env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                universal_newlines=True, start_new_session=True)
    return subprocess.run(argv, cwd=str(REPO), env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          universal_newlines=True, timeout=timeout)


def stress_vars(name, tmp_path, **extra):
    return dict(FAST, experiment_name=name, experiment_report_dest=str(tmp_path / "reports"), k8s_node_access="agent",
                k8s_namespaces=["default"], k8s_label_selectors={"cflab.io/pick": "yes"}, k8s_mode="all", **extra)


def experiments(agent_lab, node):
    """{name: Experiment} in the node's hostPath state dir, read from the host."""
    from ansible_collections.chaosfleet.stress.plugins.module_utils._experiment import Experiment
    from ansible_collections.chaosfleet.stress.plugins.module_utils._state import list_experiments

    state_dir = str(agent_lab.node_state_dir(node))
    return dict((name, Experiment(state_dir, name)) for name in list_experiments(state_dir))


def holding(agent_lab, node, name):
    for experiment_name, experiment in experiments(agent_lab, node).items():
        if experiment_name.startswith(name) and experiment.status().get("phase") == "holding":
            return experiment
    return None


def events(experiment, kind):
    path = Path(experiment.dir) / "events.jsonl"
    return [e for e in (json.loads(line) for line in path.read_text().splitlines() if line.strip())
            if e.get("event") == kind]


def no_stress_anywhere(lab):
    return all(not stress_pids(lab_container(lab, pod)["cgroup_path"]) for pods in NODES.values() for pod in pods)


def test_pod_stress_through_the_agents_lands_exactly_in_the_picked_pods(cluster, tmp_path):
    """A selector picks hello (cfnode-a, host cgroup namespace) and checkout (cfnode-b, private one); each
    gains the request within the fidelity tolerances, the other pods gain nothing, the agents' own memory and
    CPU (supervisor, read-ahead of stress-ng) are charged to the agents, and the HTTP probe keeps passing."""
    lab, agent_lab = cluster["lab"], cluster["agents"]
    name = unique("agent-e2e")
    request = 64 * MI
    hello = lab_container(lab, "hello")
    paths = dict((pod, lab_container(lab, pod)["cgroup_path"]) for pods in NODES.values() for pod in pods)
    baseline = dict((pod, median([working_set(path) for _ in range(5)])) for pod, path in paths.items())
    agent_usage = dict((node, working_set(agent["cgroup_path"])) for node, agent in agent_lab.agents.items())
    # The lab's agents have no network (a real agent pod has the pod network): this probe runs on the controller.
    probes = [{"name": "hello-http", "url": "http://127.0.0.1:%d/" % hello["http_port"], "run_on": "controller"}]
    run = playbook("playbooks/k8s_pod_stress.yml", cluster["api"], background=True,
                   **stress_vars(name, tmp_path, experiment_duration="14s", experiment_memory_size="64Mi",
                                 experiment_probes=probes))
    try:
        held = dict((pod, wait_for(lambda pod=pod: holding(agent_lab, node_of(pod), name), 120)) for pod in PICKED)
        assert all(held.values()), run.stdout.read() if run.poll() is not None else held
        samples = dict((pod, []) for pod in paths)
        for _ in range(20):
            for pod, path in paths.items():
                samples[pod].append(working_set(path) - baseline[pod])
            time.sleep(0.1)
        # Where the processes are: stress-ng in the picked pods only; each supervisor in its node's agent.
        where = dict((pod, len(stress_pids(path))) for pod, path in paths.items())
        supervisors = dict((node, held[pod].supervisor_record()["pid"]) for pod in PICKED for node in [node_of(pod)])
        agent_growth = dict((node, working_set(agent["cgroup_path"]) - agent_usage[node])
                            for node, agent in agent_lab.agents.items())
        out, _ = run.communicate(timeout=300)
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
    assert run.returncode == 0, out[-4000:]

    print("agent e2e: steady increase (MiB) %s; peak %s; agents grew %s" % (
        dict((pod, round(median(samples[pod][-10:]) / MI, 2)) for pod in paths),
        dict((pod, round(max(samples[pod]) / MI, 2)) for pod in PICKED),
        dict((node, round(growth / MI, 1)) for node, growth in agent_growth.items())))
    for pod in paths:
        steady = median(samples[pod][-10:])
        if pod in PICKED:
            assert abs(steady - request) <= steady_allowed(request) + MI, (pod, steady / MI)
            assert max(samples[pod]) - request <= overshoot_allowed(request), (pod, max(samples[pod]) / MI)
            assert where[pod] >= 1, where
        else:
            assert abs(steady) < MI, (pod, steady / MI)
            assert where[pod] == 0, where
    for node, pid in supervisors.items():
        cgroup = Path("/proc/%d/cgroup" % pid).read_text() if Path("/proc/%d" % pid).exists() else ""
        assert not cgroup or agent_lab.agents[node]["id"] in cgroup, (node, cgroup)
    # The read-ahead of stress-ng and the supervisor are the agents' (a few MiB each), not the targets'.
    assert all(growth > 0 for growth in agent_growth.values()), agent_growth

    report_files = list((tmp_path / "reports").rglob("*.json"))
    report = json.loads(next(p for p in report_files if name in p.name).read_text())
    assert report["verdict"] == "pass", report.get("verdicts")
    assert sorted(r["target"]["kubernetes"]["pod"] for r in report["results"].values()) == sorted(PICKED)
    probe = report["results"][next(iter(report["results"]))]["steady_state"]["probes"][0]
    assert probe["name"] == "hello-http" and probe["ok"]
    assert wait_for(lambda: no_stress_anywhere(lab), 30)
    # Exactly one stop per node, recorded on the node.
    for pod in PICKED:
        (experiment,) = [e for n, e in experiments(agent_lab, node_of(pod)).items() if n.startswith(name)]
        assert len(events(experiment, "stop_requested")) == 1
        assert experiment.outcome()["reason"] == "deadline"


def test_a_deleted_agent_pod_ends_its_stress_and_a_new_agent_rolls_it_back(cluster, tmp_path):
    """The agent pod of cfnode-b is deleted while it supervises a stress: the stress leaves the target well
    within the dead-man time (the supervisor's children die with it), the other node goes on to its deadline,
    and a rollback through the node's new agent finds the experiment in the hostPath state and records it."""
    lab, agent_lab, controller = cluster["lab"], cluster["agents"], cluster["controller"]
    name = unique("agent-gone")
    checkout = lab_container(lab, "checkout")["cgroup_path"]
    run = playbook("playbooks/k8s_pod_stress.yml", cluster["api"], background=True,
                   **stress_vars(name, tmp_path, experiment_duration="25s", experiment_memory_size="32Mi"))
    try:
        assert wait_for(lambda: holding(agent_lab, "cfnode-b", name) and holding(agent_lab, "cfnode-a", name), 120)
        deleted_at = time.monotonic()
        controller.delete_agent("cfnode-b")
        assert wait_for(lambda: not stress_pids(checkout), 20), "the stress outlived its agent pod"
        gone_after = time.monotonic() - deleted_at
        out, _ = run.communicate(timeout=300)
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
    assert gone_after < 15, gone_after  # the dead-man time of this run; it ends well before
    assert run.returncode != 0, out[-3000:]
    assert "cfnode-b" in out
    (finished,) = [e for n, e in experiments(agent_lab, "cfnode-a").items() if n.startswith(name)]
    assert finished.outcome()["reason"] == "deadline"  # the other node was not disturbed

    controller.restart_agent("cfnode-b")
    controller.settle()
    (orphan,) = [(n, e) for n, e in experiments(agent_lab, "cfnode-b").items() if n.startswith(name)]
    rollback = playbook("playbooks/rollback.yml", cluster["api"], env={"ANSIBLE_INVENTORY": agent_inventory(cluster, tmp_path)},
                        rollback_experiments=[orphan[0]])
    assert rollback.returncode == 0, rollback.stdout[-3000:]
    outcome = orphan[1].outcome()
    assert outcome is not None and outcome["status"] in ("aborted", "stopped"), outcome
    assert events(orphan[1], "stop_requested")
    assert no_stress_anywhere(lab)


def agent_inventory(cluster, tmp_path):
    """An inventory of the two nodes as kubectl connections to their agent pods (what k8s_hosts writes)."""
    api, agent_lab = cluster["api"], cluster["agents"]
    hosts = {}
    for node, agent in agent_lab.agents.items():
        hosts[node] = {"ansible_connection": "kubernetes.core.kubectl", "ansible_kubectl_namespace": agent["namespace"],
                       "ansible_kubectl_pod": agent["pod_name"], "ansible_kubectl_container": agent["container"],
                       "ansible_kubectl_kubeconfig": api.kubeconfig_path, "ansible_python_interpreter": "/usr/bin/python3"}
    path = tmp_path / "agents-inventory.json"
    path.write_text(json.dumps({"all": {"hosts": hosts}}))
    return str(path)


def test_a_cut_exec_stream_costs_one_tick_and_leaves_nothing_behind(cluster, tmp_path):
    """kubectl's exec streams are cut mid-run (as a dropped link): each cut call fails, the run still ends with
    every stress gone from the targets, and the nodes record at most one stop each."""
    lab, agent_lab, api = cluster["lab"], cluster["agents"], cluster["api"]
    name = unique("agent-cut")
    run = playbook("playbooks/k8s_pod_stress.yml", api, background=True,
                   **stress_vars(name, tmp_path, experiment_duration="16s", experiment_memory_size="32Mi"))
    cut = 0
    try:
        assert wait_for(lambda: holding(agent_lab, "cfnode-a", name), 120)
        deadline = time.monotonic() + 8
        while time.monotonic() < deadline and cut == 0:
            cut += api.cut_exec_streams()
            time.sleep(0.05)
        out, _ = run.communicate(timeout=300)
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
    assert cut >= 1, "no exec stream was live to cut"
    assert wait_for(lambda: no_stress_anywhere(lab), 30), out[-3000:]
    for node in NODES:
        for experiment_name, experiment in experiments(agent_lab, node).items():
            if experiment_name.startswith(name):
                assert experiment.outcome() is not None, (node, out[-3000:])
                assert len(events(experiment, "stop_requested")) <= 1


def test_a_controller_without_kubectl_is_told_before_anything_starts(cluster, tmp_path):
    """PATH without kubectl: one clear line naming kubectl, and no experiment on any node."""
    bare = tempfile.mkdtemp(prefix="cflab-nokubectl-")
    try:
        for entry in os.scandir("/usr/bin"):
            if entry.name != "kubectl":
                os.symlink(entry.path, os.path.join(bare, entry.name))
        name = unique("agent-nokubectl")
        done = playbook("playbooks/k8s_pod_stress.yml", cluster["api"],
                        env={"PATH": "%s:%s" % (REPO / ".venv" / "bin", bare)},
                        **stress_vars(name, tmp_path, experiment_duration="10s", experiment_memory_size="32Mi"))
    finally:
        subprocess.run(["rm", "-rf", "--one-file-system", bare], check=True)
    assert done.returncode != 0
    assert "kubectl is not on its PATH" in done.stdout and "nothing was started" in done.stdout, done.stdout[-3000:]
    assert not any(n.startswith(name) for node in NODES for n in experiments(cluster["agents"], node))


def test_no_right_to_pods_exec_is_a_clear_error_and_starts_nothing(cluster, tmp_path):
    """A token that may list pods but not create pods/exec: the access review says no, the run stops."""
    api = cluster["api"]
    token = "cflab-noexec-" + unique("t")
    api.add_token(token, user="cflab-no-exec", namespaces=None, nodes=True)
    kubeconfig = tmp_path / "no-exec.kubeconfig"
    kubeconfig.write_text(json.dumps(api.kubeconfig_dict(token=token)))
    name = unique("agent-noexec")
    done = playbook("playbooks/k8s_pod_stress.yml", api,
                    **stress_vars(name, tmp_path, experiment_duration="10s", experiment_memory_size="32Mi",
                                  k8s_kubeconfig=str(kubeconfig)))
    assert done.returncode != 0
    assert "create pods/exec in namespace chaosfleet-agent" in done.stdout and "nothing was started" in done.stdout, \
        done.stdout[-3000:]
    assert token not in done.stdout
    assert not any(n.startswith(name) for node in NODES for n in experiments(cluster["agents"], node))
    assert not any(call.get("path", "").endswith("/exec") for call in api.calls() if call.get("user") == "cflab-no-exec")


@pytest.mark.parametrize("how", ["SIGINT", "cancel"])
def test_an_interrupted_run_through_the_agents_stops_both_nodes_within_five_seconds(cluster, tmp_path, how):
    """Ctrl-C (SIGINT to the playbook's group) or ansible-runner's cancel (SIGKILL of the group): the stop guard,
    outside the group, stops each node through its agent pod (kubectl exec) within 5 s, once per node."""
    import signal

    from tests.integration.fleet_fixtures import (ansible_lost_the_interrupt, guard_alive, guard_record, kill_guard,
                                                  one_stop_found_it_running)

    lab, agent_lab = cluster["lab"], cluster["agents"]
    name = unique("agent-intr")
    guards = tmp_path / "guards"
    run = playbook("playbooks/k8s_pod_stress.yml", cluster["api"], background=True,
                   **stress_vars(name, tmp_path, experiment_duration="120s", experiment_memory_size="32Mi",
                                 experiment_stop_guard_dir=str(guards)))
    record = None
    try:
        assert wait_for(lambda: holding(agent_lab, "cfnode-a", name) and holding(agent_lab, "cfnode-b", name), 120)
        record = guard_record(guards)
        assert guard_alive(record), "no stop guard running"
        time.sleep(1)
        sent = time.time()
        os.killpg(run.pid, signal.SIGINT if how == "SIGINT" else signal.SIGKILL)
        gone = {}
        while time.time() < sent + 20 and len(gone) < len(PICKED):
            for pod in PICKED:
                if pod not in gone and not stress_pids(lab_container(lab, pod)["cgroup_path"]):
                    gone[pod] = time.time() - sent
            time.sleep(0.05)
        out, _ = run.communicate(timeout=120)
        wait_for(lambda: not guard_alive(record), 15, interval=0.1)
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
            run.wait()
        kill_guard(record)
    print("agent interrupt %s: stress gone after %s s" % (how, dict((p, round(t, 2)) for p, t in gone.items())))
    assert sorted(gone) == sorted(PICKED) and max(gone.values()) <= 5.0, gone
    lost = how == "SIGINT" and ansible_lost_the_interrupt(out)
    assert run.returncode != 0 or lost
    for pod in PICKED:
        (experiment,) = [e for n, e in experiments(agent_lab, node_of(pod)).items() if n.startswith(name)]
        assert one_stop_found_it_running(events(experiment, "stop_requested"), lost), node_of(pod)
        assert experiment.outcome()["reason"] == "stop"
    record_files = list((tmp_path / "reports").rglob("*.stop.json"))
    assert record_files, "no stop record"
    stop = json.loads(record_files[0].read_text())
    assert stop["interrupted"] and stop["unreachable"] == [], stop
    assert sorted(stop["hosts"]) == sorted(NODES) and all(h["stopped"] for h in stop["hosts"].values()), stop
    if how == "SIGINT":
        assert stop["signal"] == "SIGINT"
        # The terminal shows one line per node.
        assert all(("on %s: stopped" % node) in out for node in NODES), out[-2000:]
