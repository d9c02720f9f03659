"""The RBAC manifest in docs/examples grants exactly what k8s_targets and the kubernetes probes use.

Every request the modules make against the API double is recorded; each is mapped to the
(verb, resource) Kubernetes authorizes, and that set must equal the manifest's rules:
nothing used is missing, nothing granted is unused.
"""

from pathlib import Path

import pytest
import yaml

from tests.integration.test_k8s_targets import run_tasks
from tests.k8s_double import ApiDouble, synthetic_cluster

REPO = Path(__file__).resolve().parents[2]
MANIFEST = REPO / "docs" / "examples" / "rbac-k8s-targets.yml"
DISCOVERY = ("/version", "/api", "/api/v1")  # allowed to every authenticated user (system:discovery)


def authorized_as(call):
    """(verb, resource) of one recorded request."""
    parts = call["path"].strip("/").split("/")
    if parts[:3] == ["api", "v1", "namespaces"]:
        parts = parts[:2] + parts[4:]  # namespaced or cluster-wide, the ClusterRole's rule is the same
    resource, named = parts[2], len(parts) > 3
    return ("get" if named else "list"), resource


def granted():
    rules = set()
    manifest = yaml.safe_load(MANIFEST.read_text())
    assert manifest["kind"] == "List"  # one YAML document that kubectl apply takes
    for document in manifest["items"]:
        if document["kind"] == "ClusterRole":
            for rule in document["rules"]:
                assert rule["apiGroups"] == [""]
                rules.update((verb, resource) for verb in rule["verbs"] for resource in rule["resources"])
    return rules


@pytest.fixture(scope="module")
def used(tmp_path_factory):
    cluster = synthetic_cluster(pods=60, nodes=24, namespaces=2, seed=3)
    with ApiDouble(cluster, workdir=str(tmp_path_factory.mktemp("rbac-double"))) as double:
        auth = {"host": double.url, "api_key": double.token, "ca_cert": double.ca_path}
        targets = "chaosfleet.stress.k8s_targets"
        tasks = [
            {"name": "one namespace", targets: dict(auth, namespaces=["team-00"], mode="one", seed=1)},
            {"name": "cluster-wide, many nodes", targets: dict(auth, mode="all", pod_phase_selectors=["Running"])},
            {"name": "node selector", targets: dict(auth, namespaces=["team-00"],
                                                    node_selectors={"cflab.io/pool": "stress"}, mode="all")},
            {"name": "probes", "chaosfleet.stress.probe": {"probes": [
                dict(auth, name="by-label", type="kubernetes", namespace="team-00", label_selector="app=app-0",
                     require_ready=False),
                dict(auth, name="by-name", type="kubernetes", namespace="team-00", pod="app-0-00000",
                     require_ready=False)]}},
        ]
        run = run_tasks(str(tmp_path_factory.mktemp("rbac-plays")), tasks)
        calls = [c for c in double.calls() if c["path"] not in DISCOVERY]
    return run, calls


def test_the_modules_ran(used):
    run, calls = used
    for name in ("one namespace", "cluster-wide, many nodes", "node selector"):
        assert not run[name].get("failed"), run[name].get("msg")
        assert run[name]["targets"], name
    assert all(p["latency_ms"] is not None and "cannot read" not in p["detail"] for p in run["probes"]["probes"])
    assert calls and all(c["code"] == 200 for c in calls)


def test_the_manifest_grants_exactly_what_is_used(used):
    _, calls = used
    needed = set(authorized_as(c) for c in calls)
    assert needed == granted(), "used %s, granted %s" % (sorted(needed), sorted(granted()))
    assert not [c for c in calls if c["method"] != "GET"]
