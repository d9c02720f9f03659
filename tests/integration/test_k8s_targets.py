"""chaosfleet.stress.k8s_targets through ansible-playbook, against the Kubernetes API double.

The real ``kubernetes`` client runs unmodified inside the module and talks HTTPS to
tests/k8s_double with a bearer token, a client certificate or basic auth, through a
real kubeconfig file written by the double.

Each table runs as one playbook (one task per row, ignore_errors) in a module-scoped
fixture, and each row asserts on its own result, which keeps the suite quick.
"""

import json
import math
import os
import re
import subprocess
import uuid
from pathlib import Path

import pytest

from ansible_collections.chaosfleet.stress.plugins.module_utils._k8s_client import K8sReader, build_configuration
from ansible_collections.chaosfleet.stress.plugins.module_utils._k8s_select import ApiError, pick
from tests.k8s_double import ApiDouble, objects_from_lab_state, synthetic_cluster
from tests.k8s_double.tls import CertificateAuthority

REPO = Path(__file__).resolve().parents[2]
ANSIBLE_PLAYBOOK = REPO / ".venv" / "bin" / "ansible-playbook"
MODULE = "chaosfleet.stress.k8s_targets"
PROTECTED = ("kube-system",)

# Resources the synthetic generator gives each QoS class (tests/k8s_double/objects.py).
SHAPES = {
    "Guaranteed": dict(memory_limit_bytes=256 * 2 ** 20, memory_request_bytes=256 * 2 ** 20,
                       cpu_limit_cores=0.5, cpu_request_cores=0.5),
    "Burstable": dict(memory_limit_bytes=512 * 2 ** 20, memory_request_bytes=128 * 2 ** 20,
                      cpu_limit_cores=None, cpu_request_cores=0.1),
    "BestEffort": dict(memory_limit_bytes=None, memory_request_bytes=None,
                       cpu_limit_cores=None, cpu_request_cores=None),
}


# ---------------------------------------------------------------- harness

def clean_env(extra=None):
    """The runner's environment without any Kubernetes credentials of its own."""
    env = dict((k, v) for k, v in os.environ.items() if not k.startswith("K8S_AUTH_") and k != "KUBECONFIG")
    env.update(ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0", ANSIBLE_DEPRECATION_WARNINGS="0",
               ANSIBLE_LOCALHOST_WARNING="0", ANSIBLE_INVENTORY_UNPARSED_WARNING="0")
    env.update(extra or {})
    return env


class Run:
    """One ansible-playbook run: each task's registered result by task name, and the raw output."""

    def __init__(self, proc, results_path):
        self.rc = proc.returncode
        self.stdout = proc.stdout
        self.stderr = proc.stderr
        try:
            self.raw_results = Path(results_path).read_text()
        except OSError:
            raise AssertionError("ansible-playbook did not get to the end (rc %d):\n%s\n%s" % (
                proc.returncode, proc.stdout[-3000:], proc.stderr[-3000:]))
        self.results = json.loads(self.raw_results)

    def __getitem__(self, name):
        return self.results[name]


def _registered(tasks, names):
    """Give every module task a register variable; blocks are walked."""
    for task in tasks:
        if "block" in task:
            _registered(task["block"], names)
        elif "name" in task:
            task["register"] = "cflab_result_%d" % len(names)
            names.append(task["name"])


def run_tasks(workdir, tasks, play_extra=None, vars_extra=None, env=None, verbosity=0):
    """Run ``tasks`` on localhost in one play; a last task writes every registered result to JSON.

    (The json stdout callback lives in ansible.posix, which the venv does not have.)
    """
    stem = Path(workdir) / ("play-%s" % uuid.uuid4().hex[:8])
    results_path = str(stem) + ".results.json"
    names = []
    _registered(tasks, names)
    collected = "{" + ", ".join("%s: cflab_result_%d" % (json.dumps(n), i) for i, n in enumerate(names)) + "}"
    tasks = tasks + [{"name": "collect results", "ansible.builtin.copy": {
        "content": "{{ %s | to_json }}" % collected, "dest": results_path, "mode": "0600"}, "check_mode": False}]
    play = {"hosts": "localhost", "gather_facts": False,
            "vars": dict({"ansible_python_interpreter": "{{ ansible_playbook_python }}"}, **(vars_extra or {})),
            "tasks": tasks}
    play.update(play_extra or {})
    path = str(stem) + ".yml"
    Path(path).write_text(json.dumps([play], indent=1))  # JSON is YAML
    cmd = [str(ANSIBLE_PLAYBOOK), path] + (["-" + "v" * verbosity] if verbosity else [])
    proc = subprocess.run(cmd, cwd=str(REPO), env=clean_env(env), stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, universal_newlines=True, timeout=600)
    return Run(proc, results_path)


def token_for(double, user):
    """A fresh admin-like token whose calls the double records under ``user``."""
    token = "cflab-%s-%s" % (re.sub(r"[^a-z0-9]+", "-", user), uuid.uuid4().hex)
    double.add_token(token, user=user)
    return token


def k8s_task(name, args, **extra):
    task = {"name": name, MODULE: args, "ignore_errors": True}
    task.update(extra)
    return task


def pod_ids(targets):
    return sorted((t["namespace"], t["pod"]) for t in targets)


def expected_pods(cluster, keep=lambda p: True, phases=("Running",), protected=PROTECTED):
    """Pods that should be picked, computed from the objects without the module's code."""
    out = []
    for p in cluster["pods"]:
        meta = p["metadata"]
        if meta["namespace"] in protected or (phases and p["status"]["phase"] not in phases):
            continue
        if not any(s.get("containerID") for s in p["status"]["containerStatuses"]):
            continue
        if keep(p):
            out.append((meta["namespace"], meta["name"]))
    return sorted(out)


def labels(p):
    return p["metadata"]["labels"]


# ---------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def cluster():
    return synthetic_cluster(pods=240, nodes=6, namespaces=4, seed=5)


@pytest.fixture(scope="module")
def double(cluster, tmp_path_factory):
    with ApiDouble(cluster, workdir=str(tmp_path_factory.mktemp("k8s-double"))) as api:
        yield api


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("plays")


def node_ip(cluster, name):
    node = next(n for n in cluster["nodes"] if n["metadata"]["name"] == name)
    return next(a["address"] for a in node["status"]["addresses"] if a["type"] == "InternalIP")


def _named(cluster):
    """Two running pods in team-00 and one in team-02, for the pods-by-name row."""
    pick_from = expected_pods(cluster)
    first = [n for ns, n in pick_from if ns == "team-00"][:2]
    second = [n for ns, n in pick_from if ns == "team-02"][:1]
    return {"team-00": first + ["no-such-pod"], "team-02": second}


# ---------------------------------------------------------------- selectors

SELECTION = [
    # (row id, module args, which pods, phases)
    ("one namespace", {"namespaces": ["team-00"]}, lambda p: p["metadata"]["namespace"] == "team-00", ("Running",)),
    ("two namespaces", {"namespaces": ["team-01", "team-03"]},
     lambda p: p["metadata"]["namespace"] in ("team-01", "team-03"), ("Running",)),
    ("cluster wide", {}, lambda p: True, ("Running",)),
    ("labels dict", {"label_selectors": {"app": "app-3", "tier": "api"}},
     lambda p: labels(p)["app"] == "app-3" and labels(p)["tier"] == "api", ("Running",)),
    ("labels In", {"label_selectors": [{"key": "app", "operator": "In", "values": ["app-1", "app-2"]}]},
     lambda p: labels(p)["app"] in ("app-1", "app-2"), ("Running",)),
    ("labels NotIn", {"label_selectors": [{"key": "track", "operator": "NotIn", "values": ["stable"]}]},
     lambda p: labels(p).get("track") != "stable", ("Running",)),
    ("labels Exists", {"label_selectors": [{"key": "track", "operator": "Exists"}]},
     lambda p: "track" in labels(p), ("Running",)),
    ("labels DoesNotExist", {"label_selectors": [{"key": "track", "operator": "DoesNotExist"},
                                                 {"key": "tier", "operator": "In", "values": ["web", "db"]}]},
     lambda p: "track" not in labels(p) and labels(p)["tier"] in ("web", "db"), ("Running",)),
    ("fields dict", {"field_selectors": {"spec.nodeName": "node-002"}},
     lambda p: p["spec"]["nodeName"] == "node-002", ("Running",)),
    ("fields string", {"field_selectors": "spec.nodeName!=node-002,metadata.namespace=team-01"},
     lambda p: p["spec"]["nodeName"] != "node-002" and p["metadata"]["namespace"] == "team-01", ("Running",)),
    ("annotations dict", {"namespaces": ["team-02"], "annotation_selectors": {"chaos.cflab.io/allowed": "true"}},
     lambda p: p["metadata"]["namespace"] == "team-02"
     and p["metadata"]["annotations"].get("chaos.cflab.io/allowed") == "true", ("Running",)),
    ("annotations expression", {"annotation_selectors": [
        {"key": "chaos.cflab.io/allowed", "operator": "NotIn", "values": ["true"]}]},
     lambda p: p["metadata"]["annotations"].get("chaos.cflab.io/allowed") != "true", ("Running",)),
    ("phase Pending", {"pod_phase_selectors": ["Pending"]}, lambda p: True, ("Pending",)),
    ("any phase", {"pod_phase_selectors": []}, lambda p: True, ()),
    ("node selectors dict", {"node_selectors": {"cflab.io/pool": "stress"}},
     lambda p: int(p["spec"]["nodeName"][-3:]) % 2 == 0, ("Running",)),
    ("node selectors expression", {"node_selectors": [
        {"key": "topology.kubernetes.io/zone", "operator": "In", "values": ["zone-a", "zone-c"]}]},
     lambda p: int(p["spec"]["nodeName"][-3:]) % 3 in (0, 2), ("Running",)),
    ("nodes by name", {"nodes": ["node-001", "node-004"]},
     lambda p: p["spec"]["nodeName"] in ("node-001", "node-004"), ("Running",)),
    ("nodes and node selectors", {"nodes": ["node-001", "node-004"], "node_selectors": {"cflab.io/pool": "stress"}},
     lambda p: p["spec"]["nodeName"] == "node-004", ("Running",)),
    ("container names", {"container_names": ["sidecar"]},
     lambda p: any(s["name"] == "sidecar" and s.get("containerID") for s in p["status"]["containerStatuses"]),
     ("Running",)),
    ("combined", {"namespaces": ["team-01", "team-02"], "label_selectors": {"tier": "web"},
                  "annotation_selectors": {"chaos.cflab.io/allowed": "false"},
                  "node_selectors": {"cflab.io/pool": "general"}},
     lambda p: p["metadata"]["namespace"] in ("team-01", "team-02") and labels(p)["tier"] == "web"
     and p["metadata"]["annotations"]["chaos.cflab.io/allowed"] == "false"
     and int(p["spec"]["nodeName"][-3:]) % 2 == 1, ("Running",)),
]


@pytest.fixture(scope="module")
def selection_run(double, cluster, workdir):
    tasks = [k8s_task(row_id, dict(args, kubeconfig=double.kubeconfig_path, mode="all"))
             for row_id, args, _, _ in SELECTION]
    tasks.append(k8s_task("pods by name", {"kubeconfig": double.kubeconfig_path, "mode": "all",
                                           "pods": _named(cluster)}))
    tasks.append(k8s_task("ephemeral", {"kubeconfig": double.kubeconfig_path, "mode": "all",
                                        "include_ephemeral": True}))
    return run_tasks(workdir, tasks)


@pytest.mark.parametrize("row_id, args, keep, phases", SELECTION, ids=[r[0] for r in SELECTION])
def test_selector_picks_exactly_the_matching_pods(selection_run, cluster, row_id, args, keep, phases):
    result = selection_run[row_id]
    assert not result.get("failed"), result.get("msg")
    assert result["changed"] is False
    expected = expected_pods(cluster, keep, phases)
    assert expected, "the row should select something"
    assert pod_ids(result["targets"]) == expected
    assert result["searched"]["selected"] == len(expected)


@pytest.mark.parametrize("row_id, label_selector, field_selector", [
    ("labels dict", "app=app-3,tier=api", ""),
    ("labels In", "app in (app-1,app-2)", ""),
    ("labels DoesNotExist", "!track,tier in (web,db)", ""),
    ("fields string", "", "spec.nodeName!=node-002,metadata.namespace=team-01"),
    ("fields dict", "", "spec.nodeName=node-002"),
])
def test_label_and_field_selectors_go_to_the_server(selection_run, double, row_id, label_selector, field_selector):
    searched = selection_run[row_id]["searched"]
    assert searched["label_selector"] == label_selector
    assert searched["field_selector"] == field_selector
    queries = [c["query"] for c in double.calls("pods")]
    assert any(q.get("labelSelector", "") == label_selector and q.get("fieldSelector", "") == field_selector
               for q in queries), queries


def test_targets_carry_ids_resources_qos_and_node_ip(selection_run, cluster):
    targets = selection_run["cluster wide"]["targets"]
    pods = dict(((p["metadata"]["namespace"], p["metadata"]["name"]), p) for p in cluster["pods"])
    for target in targets:
        p = pods[(target["namespace"], target["pod"])]
        assert target["uid"] == p["metadata"]["uid"]
        assert target["node"] == p["spec"]["nodeName"]
        assert target["node_ip"] == node_ip(cluster, target["node"])
        assert target["qos_class"] == p["status"]["qosClass"]
        statuses = dict((s["name"], s) for s in p["status"]["containerStatuses"])
        assert [c["name"] for c in target["containers"]] == [s for s in ("main", "sidecar") if s in statuses]
        for container in target["containers"]:
            status = statuses[container["name"]]
            assert container["container_id"] == status["containerID"]
            assert container["container_id"] == "containerd://" + container["id"]
            assert re.match(r"^[0-9a-f]{64}$", container["id"])
            assert container["runtime"] == "containerd"
            assert container["restart_count"] == status["restartCount"]
            assert container["ready"] == status["ready"]
            assert container["image"] == status["image"]
            for key, value in SHAPES[target["qos_class"]].items():
                assert container[key] == value, (target["pod"], key)


def test_init_and_ephemeral_containers(selection_run, cluster):
    with_init = [p for p in cluster["pods"] if p["spec"].get("initContainers")]
    assert with_init
    for result in selection_run.results.values():
        for target in result.get("targets", []):
            assert "init" not in [c["name"] for c in target["containers"]]
    plain = selection_run["cluster wide"]["targets"]
    assert all("debugger" not in [c["name"] for c in t["containers"]] for t in plain)
    with_debugger = [t for t in selection_run["ephemeral"]["targets"]
                     if [c["name"] for c in t["containers"] if c["ephemeral"]] == ["debugger"]]
    expected = expected_pods(cluster, lambda p: bool(p["spec"].get("ephemeralContainers")))
    assert pod_ids(with_debugger) == expected and expected


def test_container_names_keep_only_those_containers(selection_run):
    for target in selection_run["container names"]["targets"]:
        assert [c["name"] for c in target["containers"]] == ["sidecar"]


def test_pods_by_name_and_missing_name_warning(selection_run, cluster):
    result = selection_run["pods by name"]
    named = _named(cluster)
    assert pod_ids(result["targets"]) == sorted(
        (ns, n) for ns, names in named.items() for n in names if n != "no-such-pod")
    assert any("team-00/no-such-pod" in w for w in result.get("warnings", []))


def test_pending_pods_report_containers_not_started(selection_run, cluster):
    result = selection_run["phase Pending"]
    skipped = set((s["namespace"], s["pod"], s["container"]) for s in result["skipped"])
    expected = set()
    for p in cluster["pods"]:
        if p["status"]["phase"] == "Pending" and p["metadata"]["namespace"] not in PROTECTED:
            for s in p["status"]["containerStatuses"]:
                if not s.get("containerID"):
                    expected.add((p["metadata"]["namespace"], p["metadata"]["name"], s["name"]))
    assert skipped == expected and expected
    assert all(s["reason"].startswith("not started yet") for s in result["skipped"])
    # A pending pod whose main runs is a target with just that container.
    for target in result["targets"]:
        assert [c["name"] for c in target["containers"]] == ["main"]


def test_by_node_is_ready_for_add_host(selection_run, cluster):
    result = selection_run["two namespaces"]
    grouped = result["by_node"]
    assert sorted(grouped) == sorted(set(t["node"] for t in result["targets"]))
    for name, entry in grouped.items():
        assert entry["node_ip"] == node_ip(cluster, name)
        for item in entry["targets"]:
            target = next(t for t in result["targets"] if t["pod"] == item["pod"])
            assert target["node"] == name
            assert item["pod_uid"] == target["uid"] and item["namespace"] == target["namespace"]
            assert item["container_ids"] == [c["id"] for c in target["containers"]]


# ---------------------------------------------------------------- API calls

CALLS = [
    # (row id, args, pod list paths expected, node list label selectors expected, node reads allowed)
    ("cluster wide", {"label_selectors": {"tier": "db"}}, ["/api/v1/pods"], []),
    ("three namespaces", {"namespaces": ["team-00", "team-01", "team-02"]},
     ["/api/v1/namespaces/team-00/pods", "/api/v1/namespaces/team-01/pods", "/api/v1/namespaces/team-02/pods"], []),
    ("named pods", {"pods": {"team-01": ["a", "b", "c"], "team-03": ["d"]}, "allow_empty": True},
     ["/api/v1/namespaces/team-01/pods", "/api/v1/namespaces/team-03/pods"], []),
    ("node selectors", {"namespaces": ["team-02"], "node_selectors": {"cflab.io/pool": "stress"}},
     ["/api/v1/namespaces/team-02/pods"], ["cflab.io/pool=stress"]),
]


@pytest.fixture(scope="module")
def calls_run(double, workdir):
    tasks = []
    for row_id, args, _, _ in CALLS:
        tasks.append(k8s_task(row_id, dict(args, host=double.url, api_key=token_for(double, row_id),
                                           ca_cert=double.ca_path, mode="all")))
    return run_tasks(workdir, tasks)


@pytest.mark.parametrize("row_id, args, pod_paths, node_selectors", CALLS, ids=[r[0] for r in CALLS])
def test_one_list_call_per_namespace_never_per_pod(calls_run, double, row_id, args, pod_paths, node_selectors):
    result = calls_run[row_id]
    assert not result.get("failed"), result.get("msg")
    mine = [c for c in double.calls() if c["user"] == row_id]
    assert [c["path"] for c in mine if c["path"].endswith("/pods")] == pod_paths
    assert [c["query"].get("labelSelector", "") for c in mine if c["path"] == "/api/v1/nodes"] == node_selectors
    node_reads = [c for c in mine if c["path"].startswith("/api/v1/nodes/")]
    target_nodes = set(t["node"] for t in result["targets"])
    # Node addresses come from the node list when there was one, else one read per target node.
    assert len(node_reads) == (0 if node_selectors else len(target_nodes))
    assert len(result["searched"]["api_calls"]) == len(mine)


# ---------------------------------------------------------------- modes

CANDIDATES = ("team-00", "team-01")


@pytest.fixture(scope="module")
def candidate_count(cluster):
    return len(expected_pods(cluster, lambda p: p["metadata"]["namespace"] in CANDIDATES))


MODES = [
    ("one", {"mode": "one"}),
    ("all", {"mode": "all"}),
    ("fixed 5", {"mode": "fixed", "value": "5"}),
    ("fixed more than there are", {"mode": "fixed", "value": "100000"}),
    ("fixed-percent 10", {"mode": "fixed-percent", "value": "10"}),
    ("fixed-percent 1", {"mode": "fixed-percent", "value": "1"}),
    ("fixed-percent 50%", {"mode": "fixed-percent", "value": "50%"}),
    ("random-max-percent 30", {"mode": "random-max-percent", "value": "30", "seed": "r1"}),
    ("seed alpha", {"mode": "fixed", "value": "5", "seed": "alpha"}),
    ("seed alpha again", {"mode": "fixed", "value": "5", "seed": "alpha"}),
    ("seed beta", {"mode": "fixed", "value": "5", "seed": "beta"}),
    ("one seeded", {"mode": "one", "seed": "42"}),
    ("one seeded again", {"mode": "one", "seed": 42}),  # numbers are fine, and read as text
    ("fixed 5 as a number", {"mode": "fixed", "value": 5}),
    ("random seeded", {"mode": "random-max-percent", "value": "60", "seed": "7"}),
    ("random seeded again", {"mode": "random-max-percent", "value": "60", "seed": "7"}),
    ("fixed 0", {"mode": "fixed", "value": "0"}),
    ("fixed-percent 101", {"mode": "fixed-percent", "value": "101"}),
    ("fixed-percent abc", {"mode": "fixed-percent", "value": "abc"}),
    ("fixed without value", {"mode": "fixed"}),
    ("unknown mode", {"mode": "most"}),
]


@pytest.fixture(scope="module")
def modes_run(double, workdir):
    tasks = [k8s_task(row_id, dict(args, kubeconfig=double.kubeconfig_path, namespaces=list(CANDIDATES)))
             for row_id, args in MODES]
    return run_tasks(workdir, tasks)


@pytest.mark.parametrize("row_id, count", [
    ("one", lambda n: 1),
    ("all", lambda n: n),
    ("fixed 5", lambda n: 5),
    ("fixed 5 as a number", lambda n: 5),
    ("fixed more than there are", lambda n: n),
    ("fixed-percent 10", lambda n: math.ceil(n * 10 / 100.0)),
    ("fixed-percent 1", lambda n: math.ceil(n / 100.0)),  # rounds up: 1.07 pods are 2
    ("fixed-percent 50%", lambda n: math.ceil(n / 2.0)),
])
def test_mode_counts(modes_run, candidate_count, row_id, count):
    result = modes_run[row_id]
    assert not result.get("failed"), result.get("msg")
    assert len(result["targets"]) == count(candidate_count)
    assert result["searched"]["candidates"] == candidate_count
    assert len(set(pod_ids(result["targets"]))) == len(result["targets"])


def test_numbers_need_no_quoting(modes_run):
    for row_id in ("fixed 5 as a number", "one seeded again"):
        assert not modes_run[row_id].get("warnings"), modes_run[row_id].get("warnings")


def test_random_max_percent_picks_the_drawn_share(modes_run, candidate_count):
    result = modes_run["random-max-percent 30"]
    drawn = result["searched"]["drawn_percent"]
    assert 0 <= drawn <= 30
    assert len(result["targets"]) == math.ceil(candidate_count * drawn / 100.0)


@pytest.mark.parametrize("first, second", [("seed alpha", "seed alpha again"), ("one seeded", "one seeded again"),
                                           ("random seeded", "random seeded again")])
def test_seed_makes_the_pick_reproducible(modes_run, first, second):
    assert pod_ids(modes_run[first]["targets"]) == pod_ids(modes_run[second]["targets"])
    assert modes_run[first]["targets"]


def test_seed_pick_is_the_documented_one(modes_run, cluster):
    """Seeded picks are random.Random(seed).sample over pods sorted by namespace and name."""
    pods = [p for p in cluster["pods"] if (p["metadata"]["namespace"], p["metadata"]["name"])
            in set(expected_pods(cluster, lambda p: p["metadata"]["namespace"] in CANDIDATES))]
    picked, _ = pick(pods, "fixed", 5, seed="alpha")
    assert pod_ids(modes_run["seed alpha"]["targets"]) == sorted(
        (p["metadata"]["namespace"], p["metadata"]["name"]) for p in picked)
    assert pod_ids(modes_run["seed alpha"]["targets"]) != pod_ids(modes_run["seed beta"]["targets"])


@pytest.mark.parametrize("row_id, message", [
    ("fixed 0", "value for mode fixed must be at least 1"),
    ("fixed-percent 101", "percentage from 1 to 100, got 101"),
    ("fixed-percent abc", "is not a whole number"),
    ("fixed without value", "mode is fixed but all of the following are missing: value"),
    ("unknown mode", "value of mode must be one of"),
])
def test_bad_mode_values_fail_clearly(modes_run, row_id, message):
    result = modes_run[row_id]
    assert result["failed"] and message in result["msg"]
    assert not result.get("targets")


# ---------------------------------------------------------------- auth

@pytest.fixture(scope="module")
def other_ca(tmp_path_factory):
    return CertificateAuthority(str(tmp_path_factory.mktemp("other-ca")), name="cflab-unrelated-ca")


WRONG_TOKEN = "cflab-wrong-" + uuid.uuid4().hex
LIMITED_TOKEN = "cflab-limited-" + uuid.uuid4().hex
BASIC_PASSWORD = "cflab-pw-" + uuid.uuid4().hex
ENV_TOKEN = "cflab-env-" + uuid.uuid4().hex


@pytest.fixture(scope="module")
def auth_run(double, other_ca, workdir):
    double.add_token(LIMITED_TOKEN, user="team-00-reader", namespaces=["team-00"], nodes=False)
    double.add_basic_user("cflab-basic", BASIC_PASSWORD)
    double.add_token(ENV_TOKEN, user="env")
    sel = {"namespaces": ["team-00"], "label_selectors": {"tier": "api"}, "mode": "all"}
    direct = {"host": double.url, "ca_cert": double.ca_path}
    wrong_dict = double.kubeconfig_dict(token=WRONG_TOKEN)
    other_context = double.kubeconfig_dict(inline_ca=True, context="second")
    two_contexts = double.kubeconfig_dict()
    two_contexts["contexts"] += other_context["contexts"]
    two_contexts["clusters"] += other_context["clusters"]
    two_contexts["users"] += other_context["users"]
    rows = [
        ("kubeconfig path", dict(sel, kubeconfig=double.kubeconfig_path), None),
        ("kubeconfig dict", dict(sel, kubeconfig=double.kubeconfig_dict(inline_ca=True)), None),
        ("kubeconfig dict context", dict(sel, kubeconfig=two_contexts, context="second"), None),
        ("unknown context", dict(sel, kubeconfig=double.kubeconfig_path, context="nope"), None),
        # Fails before a client exists: only the module's own masking hides the dict's token.
        ("unknown context in kubeconfig dict", dict(sel, kubeconfig=wrong_dict, context="nope"), None),
        ("host api_key ca_cert", dict(sel, api_key=double.token, **direct), None),
        ("env host api_key ca_cert", dict(sel), {"K8S_AUTH_HOST": double.url, "K8S_AUTH_API_KEY": ENV_TOKEN,
                                                 "K8S_AUTH_SSL_CA_CERT": double.ca_path}),
        ("env kubeconfig and context", dict(sel), {"K8S_AUTH_KUBECONFIG": double.kubeconfig_path,
                                                   "K8S_AUTH_CONTEXT": double.context}),
        ("KUBECONFIG", dict(sel), {"KUBECONFIG": double.kubeconfig_path}),
        ("env verify_ssl false", dict(sel, kubeconfig=double.kubeconfig_path, ca_cert=other_ca.ca_path),
         {"K8S_AUTH_VERIFY_SSL": "false"}),
        ("client certificate", dict(sel, client_cert=double.client_cert, client_key=double.client_key, **direct),
         None),
        ("basic auth", dict(sel, username="cflab-basic", password=BASIC_PASSWORD, **direct), None),
        ("wrong token", dict(sel, api_key=WRONG_TOKEN, **direct), None),
        ("wrong token in kubeconfig", dict(sel, kubeconfig=wrong_dict), None),
        ("bad CA", dict(sel, kubeconfig=double.kubeconfig_path, ca_cert=other_ca.ca_path), None),
        ("bad CA validate_certs false", dict(sel, kubeconfig=double.kubeconfig_path, ca_cert=other_ca.ca_path,
                                             validate_certs=False), None),
        ("no credentials", dict(sel), {"HOME": "/nonexistent-cflab-home"}),
        ("missing kubeconfig file", dict(sel, kubeconfig="/nonexistent/cflab/kubeconfig"), None),
        ("missing ca_cert file", dict(sel, api_key=double.token, host=double.url,
                                      ca_cert="/nonexistent/cflab/ca.crt"), None),
        ("forbidden cluster wide", {"api_key": LIMITED_TOKEN, "mode": "all", "host": double.url,
                                    "ca_cert": double.ca_path}, None),
        ("forbidden nodes", dict(sel, api_key=LIMITED_TOKEN, **direct), None),
        ("unreachable", dict(sel, host="https://127.0.0.1:9", api_key=double.token, ca_cert=double.ca_path,
                             request_timeout=5), None),
    ]
    tasks = [k8s_task(row_id, args, **({"environment": env} if env else {})) for row_id, args, env in rows]
    # -vvv prints each result in full, invocation included: the output the secret check reads.
    return run_tasks(workdir, tasks, verbosity=3)


@pytest.mark.parametrize("row_id", [
    "kubeconfig path", "kubeconfig dict", "kubeconfig dict context", "host api_key ca_cert",
    "env host api_key ca_cert", "env kubeconfig and context", "KUBECONFIG", "env verify_ssl false",
    "client certificate", "basic auth", "bad CA validate_certs false",
])
def test_every_way_to_authenticate(auth_run, cluster, row_id):
    result = auth_run[row_id]
    assert not result.get("failed"), result.get("msg")
    assert pod_ids(result["targets"]) == expected_pods(
        cluster, lambda p: p["metadata"]["namespace"] == "team-00" and labels(p)["tier"] == "api")


@pytest.mark.parametrize("row_id, message", [
    ("wrong token", "rejected the credentials (401 Unauthorized)"),
    ("wrong token in kubeconfig", "rejected the credentials (401 Unauthorized)"),
    ("bad CA", "TLS verification of the Kubernetes API at https://127.0.0.1:"),
    ("unknown context", "nope"),
    ("unknown context in kubeconfig dict", "nope"),
    ("no credentials", "no Kubernetes credentials"),
    ("missing kubeconfig file", "kubeconfig file /nonexistent/cflab/kubeconfig does not exist"),
    ("missing ca_cert file", "ca_cert file /nonexistent/cflab/ca.crt does not exist"),
    ("forbidden cluster wide", 'cannot list resource "pods" in API group "" at the cluster scope'),
    ("unreachable", "cannot reach the Kubernetes API at https://127.0.0.1:9"),
])
def test_auth_and_connection_failures_are_clear(auth_run, row_id, message):
    result = auth_run[row_id]
    assert result.get("failed") and message in result["msg"], result.get("msg")
    assert not result.get("targets")


def test_bad_ca_error_says_what_to_fix(auth_run):
    msg = auth_run["bad CA"]["msg"]
    assert "certificate verify failed" in msg and "ca_cert" in msg


def test_forbidden_nodes_fall_back_to_host_ip(auth_run, cluster):
    result = auth_run["forbidden nodes"]
    assert not result.get("failed"), result.get("msg")
    assert result["targets"]
    pods = dict((p["metadata"]["name"], p) for p in cluster["pods"])
    for target in result["targets"]:
        assert target["node_ip"] == pods[target["pod"]]["status"]["hostIP"]
    assert any("not allowed to read nodes" in w for w in result["warnings"])


def test_no_secret_appears_in_any_output(auth_run, double):
    output = auth_run.stdout + auth_run.stderr + auth_run.raw_results
    for secret in (double.token, WRONG_TOKEN, LIMITED_TOKEN, BASIC_PASSWORD):
        assert secret not in output
    # At -vvv Ansible itself echoes a task's environment: keyword in its EXEC lines (a real
    # shell export would not show); everything else, the module's result included, stays clean.
    assert ENV_TOKEN not in auth_run.raw_results
    assert ENV_TOKEN not in "\n".join(line for line in output.splitlines() if "> EXEC " not in line)
    # The masking did happen (the module saw the values and hid them), not the values were never there.
    assert "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER" in output or "********" in output


def test_reader_errors_never_carry_the_token(double, other_ca):
    """Without Ansible's output masking: the messages built by _k8s_client are clean on their own."""
    for params in ({"kubeconfig": double.kubeconfig_dict(token=WRONG_TOKEN)},
                   {"kubeconfig": double.kubeconfig_path, "ca_cert": other_ca.ca_path},
                   {"host": double.url, "api_key": WRONG_TOKEN, "ca_cert": double.ca_path}):
        reader = K8sReader(build_configuration(params), params, timeout=5)
        with pytest.raises(ApiError) as caught:
            reader.list_pods("team-00")
        assert WRONG_TOKEN not in str(caught.value) and double.token not in str(caught.value)
        assert WRONG_TOKEN in reader.secrets or double.token in reader.secrets


# ---------------------------------------------------------------- safety

@pytest.fixture(scope="module")
def safety_run(double, cluster, workdir):
    pending = next(p for p in cluster["pods"] if p["status"]["phase"] == "Pending"
                   and not any(s.get("containerID") for s in p["status"]["containerStatuses"])
                   and p["metadata"]["namespace"] not in PROTECTED)
    system_pod = next(p["metadata"]["name"] for p in cluster["pods"] if p["metadata"]["namespace"] == "kube-system")
    kc = {"kubeconfig": double.kubeconfig_path, "mode": "all"}

    def own(user):  # rows whose API calls (there should be none) the double can tell apart
        return {"host": double.url, "ca_cert": double.ca_path, "api_key": token_for(double, user), "mode": "all"}

    rows = [
        ("protected namespace", dict(own("protected namespace"), namespaces=["kube-system"])),
        ("protected named pod", dict(own("protected named pod"), pods={"kube-system": [system_pod]})),
        ("custom protected namespace", dict(kc, namespaces=["team-01"], protected_namespaces=["team-01"])),
        ("protected allowed", dict(kc, namespaces=["kube-system"], allow_protected_namespaces=True)),
        ("cluster wide skips protected", dict(kc, label_selectors={"k8s-app": "kube-proxy"})),
        ("empty match", dict(kc, namespaces=["team-00"], label_selectors={"app": "nope"})),
        ("empty allowed", dict(kc, namespaces=["team-00"], label_selectors={"app": "nope"}, allow_empty=True)),
        ("not started only", dict(kc, pods={pending["metadata"]["namespace"]: [pending["metadata"]["name"]]},
                                  pod_phase_selectors=["Pending"])),
        ("bad label key", dict(own("bad label key"), label_selectors={"bad key": "x"})),
        ("unsupported field", dict(kc, field_selectors={"spec.bogus": "1"})),
        ("unknown option", dict(kc, label_selector={"app": "x"})),
    ]
    return run_tasks(workdir, [k8s_task(row_id, args) for row_id, args in rows]), pending


@pytest.mark.parametrize("row_id, message", [
    ("protected namespace", "namespace kube-system is protected (protected_namespaces); set "
                            "allow_protected_namespaces=true"),
    ("protected named pod", "namespace kube-system is protected"),
    ("custom protected namespace", "namespace team-01 is protected"),
    ("cluster wide skips protected", "no pod matched: searched pods in all namespaces except protected kube-system "
                                     "with labels 'k8s-app=kube-proxy' in phase Running"),
    ("empty match", "no pod matched: searched pods in namespace team-00 with labels 'app=nope' in phase Running "
                    "(0 listed;"),
    ("not started only", "0 with a running container"),
    ("bad label key", "label_selectors: key 'bad key' is not a valid label key"),
    ("unsupported field", "field label not supported: spec.bogus"),
    ("unknown option", "Unsupported parameters"),
])
def test_safety_refusals_and_empty_matches_fail_clearly(safety_run, row_id, message):
    result = safety_run[0][row_id]
    assert result.get("failed") and message in result["msg"], result.get("msg")
    assert not result.get("targets")


@pytest.mark.parametrize("user", ["protected namespace", "protected named pod", "bad label key"])
def test_refusals_happen_before_any_api_call(safety_run, double, user):
    assert safety_run[0][user]["failed"]
    assert [c for c in double.calls() if c["user"] == user] == []


def test_protected_namespace_can_be_allowed(safety_run, cluster):
    result = safety_run[0]["protected allowed"]
    assert not result.get("failed"), result.get("msg")
    assert pod_ids(result["targets"]) == expected_pods(
        cluster, lambda p: p["metadata"]["namespace"] == "kube-system", protected=())


def test_allow_empty_returns_nothing(safety_run):
    result = safety_run[0]["empty allowed"]
    assert not result.get("failed"), result.get("msg")
    assert result["targets"] == [] and result["by_node"] == {}
    assert result["searched"]["description"] == \
        "pods in namespace team-00 with labels 'app=nope' in phase Running"


def test_pod_without_started_container_is_reported(safety_run):
    run, pending = safety_run
    result = run["not started only"]
    assert [(s["pod"], s["container"]) for s in result["skipped"]] == [(pending["metadata"]["name"], "main")]
    assert result["skipped"][0]["reason"] == "not started yet: waiting (ContainerCreating)"


# ---------------------------------------------------------------- check mode, module_defaults

@pytest.fixture(scope="module")
def defaults_run(double, workdir):
    sel = {"namespaces": ["team-03"], "mode": "fixed", "value": "4", "seed": "cm"}
    tasks = [
        k8s_task("normal", dict(sel, kubeconfig=double.kubeconfig_path)),
        k8s_task("check mode", dict(sel, kubeconfig=double.kubeconfig_path), check_mode=True),
        {"name": "defaults block", "module_defaults": {"group/chaosfleet.stress.k8s": {
            "host": double.url, "api_key": double.token, "ca_cert": double.ca_path}},
         "block": [k8s_task("with module_defaults", sel)]},
    ]
    return run_tasks(workdir, tasks)


def test_check_mode_behaves_the_same(defaults_run):
    normal, checked = defaults_run["normal"], defaults_run["check mode"]
    assert not checked.get("failed"), checked.get("msg")
    assert checked["changed"] is False and normal["changed"] is False
    assert checked["targets"] == normal["targets"] and len(checked["targets"]) == 4


def test_module_defaults_group_sets_auth(defaults_run):
    result = defaults_run["with module_defaults"]
    assert not result.get("failed"), result.get("msg")
    assert pod_ids(result["targets"]) == pod_ids(defaults_run["normal"]["targets"])


def test_missing_kubernetes_library_is_reported(double, workdir):
    """A Python without the kubernetes package gets missing_required_lib's message."""
    python = "/usr/bin/python3"
    probe = subprocess.run([python, "-c", "import kubernetes"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if not os.path.exists(python) or probe.returncode == 0:
        pytest.skip("needs a Python without the kubernetes package")
    run = run_tasks(workdir, [k8s_task("no lib", {"kubeconfig": double.kubeconfig_path})],
                    vars_extra={"ansible_python_interpreter": python})
    result = run["no lib"]
    assert result["failed"] and "Failed to import the required Python library (kubernetes)" in result["msg"]


# ---------------------------------------------------------------- lab end to end

@pytest.fixture
def k8s_double_from_lab(lab, tmp_path):
    """The API double serving the lab's real pods (UIDs, container IDs, limits) on one node."""
    objects = objects_from_lab_state(lab, node_name=lab.get("node_name") or "localhost", node_ip="127.0.0.1")
    with ApiDouble(objects, workdir=str(tmp_path / "double")) as api:
        yield api


@pytest.mark.lab
def test_selector_to_lab_cgroups(lab, k8s_double_from_lab, tmp_path):
    """Selector -> k8s_targets -> cgroup_info on the lab node: every container's cgroup has the spec limit."""
    api = k8s_double_from_lab
    run = run_tasks(tmp_path, [k8s_task("targets", {
        "kubeconfig": api.kubeconfig_path, "namespaces": ["default"], "mode": "all",
        "label_selectors": {"chaosfleet.io/lab": lab["prefix"]}})])
    result = run["targets"]
    assert not result.get("failed"), result.get("msg")
    lab_containers = dict((c["id"], (p, c)) for p in lab["pods"] for c in p["containers"] if not c["sandbox"])
    returned = [c for t in result["targets"] for c in t["containers"]]
    assert sorted(c["id"] for c in returned) == sorted(lab_containers)

    tasks = [{"name": c["id"], "chaosfleet.stress.cgroup_info": {"container_id": c["container_id"]},
              "ignore_errors": True} for c in returned]
    found = run_tasks(tmp_path, tasks)
    for container in returned:
        info = found[container["id"]]
        assert not info.get("failed"), info.get("msg")
        cgroups = [g for g in info["cgroups"] if g["kind"] == "container"]
        assert len(cgroups) == 1
        pod, lab_container = lab_containers[container["id"]]
        assert cgroups[0]["container_id"] == container["id"]
        assert cgroups[0]["pod_uid"] == pod["uid"]
        assert container["memory_limit_bytes"] == lab_container["memory_limit_bytes"]
        assert cgroups[0]["memory"]["limit_bytes"] == container["memory_limit_bytes"]
