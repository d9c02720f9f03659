import itertools
import random

import pytest

from ansible_collections.chaosfleet.stress.plugins.module_utils import _k8s_select as sel
from ansible_collections.chaosfleet.stress.plugins.module_utils._k8s_select import ApiError, SelectionError
from tests.k8s_double import labels_match as double_labels_match
from tests.k8s_double import make_node, make_pod, parse_label_selector

CID = "containerd://" + "ab" * 32


def pod(name="p", namespace="ns", node="n1", phase="Running", labels=None, annotations=None,
        containers=None, **kwargs):
    if containers is None:
        containers = [{"name": "app", "container_id": "containerd://%064x" % random.Random(name).getrandbits(256),
                       "limits": {"memory": "256Mi", "cpu": "500m"}, "requests": {"memory": "128Mi"}}]
    return make_pod(name, namespace, node, containers, labels=labels, annotations=annotations, phase=phase,
                    host_ip="192.0.2.%d" % (sum(map(ord, node)) % 250), **kwargs)


def options(**params):
    base = {"pod_phase_selectors": ["Running"], "protected_namespaces": ["kube-system"], "mode": "all"}
    base.update(params)
    return sel.parse_options(base)


# ---------------------------------------------------------------- label selectors

@pytest.mark.parametrize("spec, expected", [
    (None, []),
    ({}, []),
    ({"app": "web"}, [("app", "=", ("web",))]),
    ({"tier": "api", "app": "web"}, [("app", "=", ("web",)), ("tier", "=", ("api",))]),
    ({"enabled": True, "replicas": 3}, [("enabled", "=", ("true",)), ("replicas", "=", ("3",))]),
    ({"example.com/team": ""}, [("example.com/team", "=", ("",))]),
    ([{"key": "app", "operator": "In", "values": ["a", "b"]}], [("app", "in", ("a", "b"))]),
    ([{"key": "app", "operator": "NotIn", "values": ["a"]}], [("app", "notin", ("a",))]),
    ([{"key": "app", "operator": "Exists"}], [("app", "exists", ())]),
    ([{"key": "app", "operator": "DoesNotExist"}], [("app", "!", ())]),
    ([{"key": "app", "operator": "notin", "values": "a"}], [("app", "notin", ("a",))]),
    ([{"key": "app", "operator": "does_not_exist", "values": []}], [("app", "!", ())]),
])
def test_parse_requirements(spec, expected):
    assert sel.parse_requirements(spec) == expected


@pytest.mark.parametrize("spec, message", [
    ("app=web", "must be a dict"),
    ([{"key": "app", "operator": "Equals", "values": ["a"]}], "not one of In, NotIn"),
    ([{"key": "app", "operator": "In"}], "needs a non-empty values"),
    ([{"key": "app", "operator": "In", "values": []}], "needs a non-empty values"),
    ([{"key": "app", "operator": "Exists", "values": ["x"]}], "takes no values"),
    ([{"key": "app", "op": "In", "values": ["x"]}], "unknown fields op"),
    (["app"], "must be a dict with key"),
    ({"bad key": "x"}, "not a valid label key"),
    ({"-app": "x"}, "not a valid label key"),
    ({"a" * 64: "x"}, "not a valid label key"),
    ({"Example.com/app": "x"}, "invalid prefix"),
    ({"/app": "x"}, "invalid prefix"),
    ({"app": "has space"}, "not a valid label value"),
    ({"app": "x" * 64}, "not a valid label value"),
    ([{"key": "app", "operator": "In", "values": ["ok", "not,ok"]}], "not a valid label value"),
    ({"app": ["a"]}, "is not a string"),
])
def test_parse_requirements_rejects(spec, message):
    with pytest.raises(SelectionError, match=message):
        sel.parse_requirements(spec)


def test_annotation_values_are_free_text():
    reqs = sel.parse_requirements({"note": "any text, even = and ,"}, "annotation_selectors", label_values=False)
    assert sel.requirements_match(reqs, {"note": "any text, even = and ,"})
    with pytest.raises(SelectionError, match="annotation_selectors"):
        sel.parse_requirements({"bad key": "x"}, "annotation_selectors", label_values=False)


@pytest.mark.parametrize("reqs, expected", [
    ([], ""),
    ([("app", "=", ("web",))], "app=web"),
    ([("app", "in", ("a", "b")), ("t", "notin", ("x",))], "app in (a,b),t notin (x)"),
    ([("app", "exists", ()), ("t", "!", ())], "app,!t"),
])
def test_requirements_string(reqs, expected):
    assert sel.requirements_string(reqs) == expected


LABEL_SETS = [{}, {"app": "a"}, {"app": "b"}, {"app": "a", "track": "canary"}, {"track": "stable"},
              {"app": "c", "track": "stable"}]


@pytest.mark.parametrize("spec, matching", [
    ({"app": "a"}, [1, 3]),
    ([{"key": "app", "operator": "In", "values": ["a", "b"]}], [1, 2, 3]),
    ([{"key": "app", "operator": "NotIn", "values": ["a"]}], [0, 2, 4, 5]),  # missing key matches NotIn
    ([{"key": "track", "operator": "Exists"}], [3, 4, 5]),
    ([{"key": "track", "operator": "DoesNotExist"}], [0, 1, 2]),
    ([{"key": "app", "operator": "Exists"}, {"key": "track", "operator": "NotIn", "values": ["canary"]}], [1, 2, 5]),
    ([], [0, 1, 2, 3, 4, 5]),
])
def test_requirements_match(spec, matching):
    reqs = sel.parse_requirements(spec)
    assert [i for i, labels in enumerate(LABEL_SETS) if sel.requirements_match(reqs, labels)] == matching


@pytest.mark.parametrize("spec", [
    {"app": "a"},
    [{"key": "app", "operator": "In", "values": ["a", "b"]}],
    [{"key": "app", "operator": "NotIn", "values": ["a", "c"]}, {"key": "track", "operator": "Exists"}],
    [{"key": "track", "operator": "DoesNotExist"}, {"key": "app", "operator": "In", "values": ["b"]}],
])
def test_selector_string_means_the_same_to_the_api_double(spec):
    """The string sent to the server selects exactly what the client-side matcher selects."""
    reqs = sel.parse_requirements(spec)
    server = parse_label_selector(sel.requirements_string(reqs))
    for labels in LABEL_SETS:
        assert double_labels_match(server, labels) == sel.requirements_match(reqs, labels), labels


# ---------------------------------------------------------------- field selectors

@pytest.mark.parametrize("spec, expected", [
    (None, ""),
    ("", ""),
    (" spec.nodeName=n1 ", "spec.nodeName=n1"),
    ("status.phase!=Failed", "status.phase!=Failed"),
    ({"spec.nodeName": "n1"}, "spec.nodeName=n1"),
    ({"spec.nodeName": "n1", "metadata.name": "p"}, "metadata.name=p,spec.nodeName=n1"),
    ({"metadata.name": "a,b=c\\d"}, "metadata.name=a\\,b\\=c\\\\d"),
    ({"spec.hostNetwork": False}, "spec.hostNetwork=false"),
])
def test_field_selector_string(spec, expected):
    assert sel.field_selector_string(spec) == expected


@pytest.mark.parametrize("spec", [["spec.nodeName=n1"], {"": "x"}, 5])
def test_field_selector_string_rejects(spec):
    with pytest.raises(SelectionError, match="field_selectors"):
        sel.field_selector_string(spec)


# ---------------------------------------------------------------- modes

@pytest.mark.parametrize("mode, value, expected", [
    ("one", None, None), ("all", "7", None),
    ("fixed", "3", 3), ("fixed", 3, 3), ("fixed", " 12 ", 12),
    ("fixed-percent", "50", 50), ("fixed-percent", "50%", 50), ("fixed-percent", "100", 100),
    ("random-max-percent", "1", 1), ("random-max-percent", 30, 30), ("fixed", 4.0, 4),
])
def test_mode_value(mode, value, expected):
    assert sel.mode_value(mode, value) == expected


@pytest.mark.parametrize("mode, value, message", [
    ("some", "1", "mode must be one of"),
    ("fixed", None, "needs value"),
    ("fixed", "", "needs value"),
    ("fixed", "0", "at least 1"),
    ("fixed", "-2", "at least 1"),
    ("fixed", "2.5", "not a whole number"),
    ("fixed", "50%", "not a whole number"),
    ("fixed-percent", "0", "from 1 to 100"),
    ("fixed-percent", "101", "from 1 to 100"),
    ("random-max-percent", "abc", "not a whole number"),
    ("random-max-percent", None, "a percentage from 1 to 100"),
    ("fixed", True, "not a whole number"),
    ("fixed-percent", 12.5, "not a whole number"),
    # ASCII digits only, no inner spaces (issue 11, point 9)
    ("fixed", "\u0663", "not a whole number"),
    ("fixed", "\uff15", "not a whole number"),
    ("fixed", "1_000", "not a whole number"),
    ("fixed-percent", "50 %", "not a whole number"),
    ("fixed", "1" * 12, "not a whole number"),
])
def test_mode_value_rejects(mode, value, message):
    with pytest.raises(SelectionError, match=message):
        sel.mode_value(mode, value)


class FixedDraw:
    """A stand-in rng whose randint always draws ``percent``."""

    def __init__(self, percent):
        self.percent = percent

    def randint(self, low, high):
        assert low == 0 and high >= self.percent
        return self.percent


@pytest.mark.parametrize("mode, number, total, draw, expected", [
    ("one", None, 10, None, 1),
    ("one", None, 0, None, 0),
    ("all", None, 10, None, 10),
    ("fixed", 3, 10, None, 3),
    ("fixed", 30, 10, None, 10),
    ("fixed-percent", 50, 10, None, 5),
    ("fixed-percent", 25, 10, None, 3),    # 2.5 rounds up
    ("fixed-percent", 1, 10, None, 1),     # at least one
    ("fixed-percent", 100, 7, None, 7),
    ("fixed-percent", 33, 3, None, 1),     # 0.99 rounds up
    ("random-max-percent", 50, 10, 0, 0),  # may pick none, as Chaos Mesh
    ("random-max-percent", 50, 10, 21, 3),
    ("random-max-percent", 50, 10, 50, 5),
    ("fixed-percent", 50, 0, None, 0),
])
def test_mode_count(mode, number, total, draw, expected):
    count, percent = sel.mode_count(mode, number, total, FixedDraw(draw))
    assert count == expected
    if mode == "random-max-percent":
        assert percent == draw


def _pods(count):
    return [pod("p%03d" % i, namespace="ns%d" % (i % 3)) for i in range(count)]


def _names(pods):
    return [sel.pod_key(p) for p in pods]


@pytest.mark.parametrize("mode, number", [("one", None), ("fixed", 5), ("fixed-percent", 30),
                                          ("random-max-percent", 60)])
def test_pick_is_reproducible_with_a_seed_whatever_the_api_order(mode, number):
    candidates = _pods(40)
    first, _percent = sel.pick(candidates, mode, number, seed="exp-1")
    shuffled = list(candidates)
    random.Random(7).shuffle(shuffled)
    again, _percent = sel.pick(shuffled, mode, number, seed="exp-1")
    assert _names(first) == _names(again)
    # Different seeds do not all pick the same pods.
    picks = set(tuple(_names(sel.pick(candidates, mode, number, seed=str(s))[0])) for s in range(20))
    assert len(picks) > 1


def test_seed_is_read_as_text():
    assert options(seed=42)["seed"] == options(seed="42")["seed"] == "42"
    assert options()["seed"] is None


def test_pick_counts_and_order():
    candidates = _pods(20)
    picked, _percent = sel.pick(candidates, "fixed", 4, seed="s")
    assert len(picked) == 4 and len(set(_names(picked))) == 4
    assert _names(picked) == sorted(_names(picked))
    everything, _percent = sel.pick(candidates, "all", None)
    assert _names(everything) == sorted(_names(candidates))
    capped, _percent = sel.pick(candidates, "fixed", 99, seed="s")
    assert len(capped) == 20


def test_random_max_percent_covers_zero_to_the_maximum():
    candidates = _pods(10)
    counts = set()
    for seed in range(200):
        picked, percent = sel.pick(candidates, "random-max-percent", 40, seed=seed)
        assert 0 <= percent <= 40
        assert len(picked) == -(-10 * percent // 100)
        counts.add(len(picked))
    assert counts == {0, 1, 2, 3, 4}


# ---------------------------------------------------------------- containers and quantities

@pytest.mark.parametrize("container_id, expected", [
    ("containerd://abc", ("containerd", "abc")),
    ("cri-o://abc", ("cri-o", "abc")),
    ("docker://abc", ("docker", "abc")),
    ("abc", (None, "abc")),
    (None, (None, None)),
    ("", (None, None)),
])
def test_split_container_id(container_id, expected):
    assert sel.split_container_id(container_id) == expected


@pytest.mark.parametrize("quantity, expected", [
    ("128Mi", 134217728), ("1Gi", 1073741824), ("1.5Gi", 1610612736), ("500M", 500000000),
    ("524288000", 524288000), (524288000, 524288000), ("1e3", 1000), ("100m", 1), ("64Ki", 65536),
    (None, None), ("", None), ("lots", None),
])
def test_memory_bytes(quantity, expected):
    assert sel.memory_bytes(quantity) == expected


@pytest.mark.parametrize("quantity, expected", [
    ("250m", 0.25), ("2", 2.0), ("1500m", 1.5), ("0.5", 0.5), (1, 1.0), (None, None), ("x", None),
])
def test_cpu_cores(quantity, expected):
    assert sel.cpu_cores(quantity) == expected


QUANTITIES = [1, True, 1.0, 1.5, "1", "256Mi", "500m", "0.5", "1e3", "abc", "-1", [1], {"a": 1}]


def test_parsed_quantities_are_remembered_per_type_and_text():
    """The cache gives what parsing gives, the first time and the next (1, True and 1.0 are not one key)."""
    sel._QUANTITIES.clear()
    direct = [(sel._memory_bytes(q), sel._cpu_cores(q)) for q in QUANTITIES]
    for _round in range(2):
        assert [(sel.memory_bytes(q), sel.cpu_cores(q)) for q in QUANTITIES] == direct
    assert ("memory", str, "256Mi") in sel._QUANTITIES and ("memory", bool, True) in sel._QUANTITIES


def test_the_quantity_cache_stays_bounded(monkeypatch):
    monkeypatch.setattr(sel, "_QUANTITIES_MAX", 3)
    sel._QUANTITIES.clear()
    assert [sel.memory_bytes("%dMi" % n) for n in range(1, 6)] == [n * 2 ** 20 for n in range(1, 6)]
    assert len(sel._QUANTITIES) <= 3


def test_pod_containers_reads_ids_resources_and_status():
    p = pod(containers=[{"name": "app", "container_id": CID, "image": "img:1", "restart_count": 2,
                         "limits": {"memory": "512Mi", "cpu": "1500m"}, "requests": {"cpu": "250m"}}])
    targets, skipped = sel.pod_containers(p)
    assert skipped == []
    assert targets == [{
        "name": "app", "container_id": CID, "id": "ab" * 32, "runtime": "containerd", "image": "img:1",
        "ephemeral": False, "memory_request_bytes": 536870912,  # request defaults to the limit
        "memory_limit_bytes": 536870912, "cpu_request_cores": 0.25, "cpu_limit_cores": 1.5,
        "restart_count": 2, "ready": True,
    }]


def _kinds_pod():
    return pod(containers=[{"name": "app", "container_id": "containerd://" + "1" * 64},
                           {"name": "sidecar", "container_id": "cri-o://" + "2" * 64},
                           {"name": "late", "container_id": None}],
               init_containers=[{"name": "init", "container_id": "containerd://" + "3" * 64}],
               ephemeral_containers=[{"name": "debug", "container_id": "containerd://" + "4" * 64}])


@pytest.mark.parametrize("names, ephemeral, targets, skipped", [
    ([], False, ["app", "sidecar"], ["late"]),
    ([], True, ["app", "sidecar", "debug"], ["late"]),
    (["sidecar"], False, ["sidecar"], []),
    (["debug"], False, [], []),
    (["debug"], True, ["debug"], []),
    (["init"], True, [], []),          # init containers are never targets
    (["late", "app"], False, ["app"], ["late"]),
])
def test_pod_containers_filters_kinds_and_names(names, ephemeral, targets, skipped):
    found, left = sel.pod_containers(_kinds_pod(), names, ephemeral)
    assert [c["name"] for c in found] == targets
    assert [c["container"] for c in left] == skipped
    assert all(c["ephemeral"] == (c["name"] == "debug") for c in found)


def test_pod_containers_skips_containers_that_do_not_run():
    p = pod(containers=[{"name": "app", "container_id": CID}, {"name": "new", "container_id": None}])
    p["status"]["containerStatuses"][0]["state"] = {"terminated": {"reason": "Error", "exitCode": 1}}
    targets, skipped = sel.pod_containers(p)
    assert targets == []
    assert skipped == [{"container": "app", "reason": "terminated (Error)"},
                       {"container": "new", "reason": "not started yet: waiting (ContainerCreating)"}]


def _qos_pod(*resources, **kwargs):
    containers = [dict(name="c%d" % i, container_id=CID, limits=lim, requests=req)
                  for i, (lim, req) in enumerate(resources)]
    return pod(containers=containers, **kwargs)


@pytest.mark.parametrize("resources, init, expected", [
    ([({}, {})], (), "BestEffort"),
    ([({"memory": "1Gi", "cpu": "1"}, {})], (), "Guaranteed"),                    # requests default to limits
    ([({"memory": "1Gi", "cpu": "1"}, {"memory": "1Gi", "cpu": "1000m"})], (), "Guaranteed"),
    ([({"memory": "1Gi", "cpu": "1"}, {"memory": "512Mi", "cpu": "1"})], (), "Burstable"),
    ([({"memory": "1Gi"}, {})], (), "Burstable"),                                  # no CPU limit
    ([({}, {"cpu": "100m"})], (), "Burstable"),
    ([({"memory": "1Gi", "cpu": "1"}, {}), ({}, {})], (), "Burstable"),           # one container unlimited
    ([({}, {"cpu": "0"})], (), "BestEffort"),                                      # zero requests do not count
    ([({"memory": "1Gi", "cpu": "1"}, {})], ({"name": "i", "requests": {"cpu": "10m"}},), "Burstable"),
])
def test_compute_qos_class(resources, init, expected):
    p = _qos_pod(*resources)
    if init:
        p["spec"]["initContainers"] = [{"name": c["name"], "resources": {"requests": c["requests"]}} for c in init]
    assert sel.compute_qos_class(p) == expected
    assert sel.qos_class(p) == expected  # no status.qosClass: computed


def test_qos_class_prefers_the_status():
    assert sel.qos_class(_qos_pod(({}, {}), qos_class="Guaranteed")) == "Guaranteed"


def test_node_internal_ip():
    assert sel.node_internal_ip(make_node("n1", "10.1.2.3")) == "10.1.2.3"
    node = make_node("n1", "10.1.2.3")
    node["status"]["addresses"] = [{"type": "Hostname", "address": "n1"}]
    assert sel.node_internal_ip(node) is None
    assert sel.node_internal_ip(None) is None


# ---------------------------------------------------------------- options and safety

@pytest.mark.parametrize("params, message", [
    ({"namespaces": ["kube-system"]}, "namespace kube-system is protected"),
    ({"namespaces": ["a", "kube-system"]}, "allow_protected_namespaces=true"),
    ({"pods": {"kube-system": ["coredns-1"]}}, "kube-system is protected"),
    ({"namespaces": ["x"], "protected_namespaces": ["x", "y"]}, "namespace x is protected"),
    ({"pods": ["a"]}, "pods must be a dict"),
    ({"pods": {"ns": []}}, "pods.ns must be a non-empty list"),
    ({"pods": {"ns": [""]}}, "pods.ns must be a non-empty list"),
    ({"pod_phase_selectors": ["Runing"]}, "not a pod phase"),
    ({"mode": "fixed"}, "needs value"),
    ({"label_selectors": {"a b": "c"}}, "label_selectors: key"),
    ({"node_selectors": [{"key": "pool", "operator": "Gt"}]}, "node_selectors"),
])
def test_parse_options_rejects(params, message):
    with pytest.raises(SelectionError, match=message):
        options(**params)


@pytest.mark.parametrize("params, to_list, cluster_wide", [
    ({}, [], True),
    ({"namespaces": ["b", "a", "b"]}, ["a", "b"], False),
    ({"pods": {"x": ["p"], "y": ["q"]}}, ["x", "y"], False),
    ({"pods": {"x": ["p"], "y": ["q"]}, "namespaces": ["y"]}, ["y"], False),
    ({"namespaces": ["kube-system"], "allow_protected_namespaces": True}, ["kube-system"], False),
    ({"namespaces": ["kube-system"], "protected_namespaces": []}, ["kube-system"], False),
])
def test_parse_options_plans_the_list_calls(params, to_list, cluster_wide):
    criteria = options(**params)
    assert criteria["list_namespaces"] == to_list
    assert criteria["cluster_wide"] == cluster_wide


@pytest.mark.parametrize("params, parts", [
    ({}, ["pods in all namespaces except protected kube-system", "in phase Running"]),
    ({"namespaces": ["shop"], "label_selectors": {"app": "checkout"}},
     ["pods in namespace shop", "with labels 'app=checkout'"]),
    ({"pods": {"shop": ["b", "a"]}, "container_names": ["app"]}, ["pods named shop/a, shop/b", "having container app"]),
    ({"field_selectors": "spec.nodeName=n1", "annotation_selectors": {"x": "y"}, "nodes": ["n1", "n2"],
      "node_selectors": {"pool": "stress"}, "pod_phase_selectors": ["Pending", "Running"]},
     ["with fields 'spec.nodeName=n1'", "with annotations 'x=y'", "on nodes n1, n2",
      "on nodes labelled 'pool=stress'", "in phase Pending or Running"]),
])
def test_describe_names_what_was_searched(params, parts):
    text = sel.describe(options(**params))
    for part in parts:
        assert part in text


def test_filter_pods_funnel_and_protected_exclusion():
    pods = [pod("a", "shop", labels={"app": "x"}, annotations={"ok": "1"}),
            pod("b", "shop", labels={"app": "x"}, annotations={"ok": "0"}),
            pod("c", "shop", labels={"app": "x"}, annotations={"ok": "1"}, phase="Pending"),
            pod("d", "kube-system", labels={"app": "x"}, annotations={"ok": "1"})]
    criteria = options(label_selectors={"app": "x"}, annotation_selectors={"ok": "1"})
    candidates, skipped, funnel = sel.filter_pods(pods, criteria)
    assert [sel.pod_key(p) for p, _containers in candidates] == [("shop", "a")]
    assert funnel == [("listed", 4), ("outside protected namespaces", 3), ("with matching labels", 3),
                      ("with matching annotations", 2), ("in phase Running", 1), ("with a running container", 1)]
    assert skipped == []
    assert "4 listed; 3 outside protected namespaces" in sel.funnel_text(funnel)


def test_filter_pods_reports_containers_not_started():
    pods = [pod("a", containers=[{"name": "app", "container_id": None}]),
            pod("b", containers=[{"name": "app", "container_id": CID}, {"name": "side", "container_id": None}])]
    candidates, skipped, _funnel = sel.filter_pods(pods, options())
    assert [sel.pod_key(p) for p, _containers in candidates] == [("ns", "b")]
    assert [(s["pod"], s["container"]) for s in skipped] == [("a", "app"), ("b", "side")]
    assert all(s["pod_uid"] and s["namespace"] == "ns" for s in skipped)


# ---------------------------------------------------------------- resolve (fake API)

class FakeApi:
    """Counts calls; filters pods by namespace only (selectors are the server's job)."""

    def __init__(self, pods, nodes=(), forbid_nodes=False):
        self.pods = pods
        self.nodes = dict((n["metadata"]["name"], n) for n in nodes)
        self.forbid_nodes = forbid_nodes
        self.calls = []

    def list_pods(self, namespace, label_selector, field_selector):
        self.calls.append(("pods", namespace, label_selector, field_selector))
        return [p for p in self.pods if namespace is None or p["metadata"]["namespace"] == namespace]

    def list_nodes(self, label_selector):
        self.calls.append(("nodes", label_selector))
        if self.forbid_nodes:
            raise ApiError("nodes is forbidden", 403)
        reqs = parse_label_selector(label_selector)
        return [n for n in self.nodes.values() if double_labels_match(reqs, n["metadata"]["labels"])]

    def read_node(self, name):
        self.calls.append(("node", name))
        if self.forbid_nodes:
            raise ApiError("nodes is forbidden", 403)
        if name not in self.nodes:
            raise ApiError("not found", 404)
        return self.nodes[name]


def _cluster(pod_count=30, node_count=3):
    nodes = [make_node("n%d" % i, "10.0.0.%d" % (i + 1), labels={"pool": "stress" if i % 2 == 0 else "general"})
             for i in range(node_count)]
    pods = [pod("p%02d" % i, "ns%d" % (i % 3), node="n%d" % (i % node_count), labels={"app": "x"})
            for i in range(pod_count)]
    return pods, nodes


@pytest.mark.parametrize("params, pod_calls", [
    ({}, [None]),
    ({"namespaces": ["ns0", "ns1", "ns2"]}, ["ns0", "ns1", "ns2"]),
    ({"pods": {"ns1": ["p01", "p04"], "ns2": ["p02"]}}, ["ns1", "ns2"]),
])
def test_resolve_lists_once_per_namespace(params, pod_calls):
    pods, nodes = _cluster()
    api = FakeApi(pods, nodes)
    result = sel.resolve(options(label_selectors={"app": "x"}, field_selectors={"status.phase": "Running"},
                                 **params), api)
    assert [c[1] for c in api.calls if c[0] == "pods"] == pod_calls
    assert all(c[2:] == ("app=x", "status.phase=Running") for c in api.calls if c[0] == "pods")
    assert result["searched"]["selected"] == len(result["targets"]) > 0


def test_resolve_named_pods_and_missing_ones():
    pods, nodes = _cluster()
    result = sel.resolve(options(pods={"ns1": ["p01", "p04", "gone"]}), FakeApi(pods, nodes))
    assert [t["pod"] for t in result["targets"]] == ["p01", "p04"]
    assert any("ns1/gone" in w for w in result["warnings"])


def test_resolve_node_selectors_list_nodes_once_and_filter_pods():
    pods, nodes = _cluster(pod_count=30, node_count=3)
    api = FakeApi(pods, nodes)
    result = sel.resolve(options(node_selectors={"pool": "stress"}), api)
    assert api.calls[0] == ("nodes", "pool=stress")
    assert sorted(set(t["node"] for t in result["targets"])) == ["n0", "n2"]
    # The node list already gave the addresses: no further node reads.
    assert [c for c in api.calls if c[0] == "node"] == []
    assert result["by_node"]["n2"]["node_ip"] == "10.0.0.3"


def test_resolve_nodes_and_node_selectors_must_both_match():
    pods, nodes = _cluster()
    result = sel.resolve(options(node_selectors={"pool": "stress"}, nodes=["n1", "n2"]), FakeApi(pods, nodes))
    assert set(t["node"] for t in result["targets"]) == {"n2"}


@pytest.mark.parametrize("node_count, reads, lists", [(3, 3, 0), (sel.NODE_GET_LIMIT, sel.NODE_GET_LIMIT, 0),
                                                      (sel.NODE_GET_LIMIT + 1, 0, 1)])
def test_resolve_reads_target_nodes_by_name_or_with_one_list(node_count, reads, lists):
    pods, nodes = _cluster(pod_count=node_count * 2, node_count=node_count)
    api = FakeApi(pods, nodes)
    result = sel.resolve(options(), api)
    assert len([c for c in api.calls if c[0] == "node"]) == reads
    assert len([c for c in api.calls if c[0] == "nodes"]) == lists
    assert all(t["node_ip"] == "10.0.0.%d" % (int(t["node"][1:]) + 1) for t in result["targets"])


def test_resolve_falls_back_to_host_ip_when_nodes_are_forbidden():
    pods, nodes = _cluster()
    result = sel.resolve(options(namespaces=["ns0"]), FakeApi(pods, nodes, forbid_nodes=True))
    assert result["targets"]
    for target in result["targets"]:
        host_ip = next(p for p in pods if p["metadata"]["name"] == target["pod"])["status"]["hostIP"]
        assert target["node_ip"] == host_ip
    assert any("not allowed to read nodes" in w for w in result["warnings"])


def test_resolve_node_selectors_forbidden_is_an_error():
    pods, nodes = _cluster()
    with pytest.raises(ApiError) as caught:
        sel.resolve(options(node_selectors={"pool": "stress"}), FakeApi(pods, nodes, forbid_nodes=True))
    assert caught.value.status == 403


def test_resolve_missing_node_warns_and_uses_host_ip():
    pods, nodes = _cluster()
    result = sel.resolve(options(), FakeApi(pods, nodes[:1]))
    assert any("node n1 was not found" in w for w in result["warnings"])
    assert result["by_node"]["n0"]["node_ip"] == "10.0.0.1"
    assert result["by_node"]["n1"]["node_ip"] == pods[1]["status"]["hostIP"]


def test_resolve_returns_by_node_for_add_host():
    pods, nodes = _cluster(pod_count=6, node_count=2)
    result = sel.resolve(options(mode="all"), FakeApi(pods, nodes))
    grouped = result["by_node"]
    assert sorted(grouped) == ["n0", "n1"]
    assert grouped["n0"]["node_ip"] == "10.0.0.1"
    entries = list(itertools.chain.from_iterable(g["targets"] for g in grouped.values()))
    assert len(entries) == 6
    for entry in entries:
        target = next(t for t in result["targets"] if t["pod"] == entry["pod"])
        assert entry["pod_uid"] == target["uid"]
        assert entry["container_ids"] == [c["id"] for c in target["containers"]]
        assert all(len(cid) == 64 and "://" not in cid for cid in entry["container_ids"])


def test_resolve_random_zero_draw_warns():
    pods, nodes = _cluster(pod_count=3)
    seed = next(str(s) for s in range(100) if random.Random(str(s)).randint(0, 10) == 0)
    result = sel.resolve(options(mode="random-max-percent", value="10", seed=seed), FakeApi(pods, nodes))
    assert result["targets"] == [] and result["searched"]["candidates"] == 3
    assert result["searched"]["drawn_percent"] == 0
    assert any("drew 0%" in w for w in result["warnings"])


# ---------------------------------------------------------------- node agents (node_access=agent)

def agent_pod(name, node, ready=True, phase="Running", container="agent", created="2026-12-01T00:00:00Z"):
    p = pod(name, "chaosfleet-agent", node, phase=phase, labels={"app.kubernetes.io/name": "chaosfleet-agent"},
            containers=[{"name": container, "container_id": "docker://" + "cd" * 32, "ready": ready}])
    p["metadata"]["creationTimestamp"] = created
    return p


@pytest.mark.parametrize("pods, expected", [
    ([agent_pod("a1", "n1")], {"ready": True, "pod": "a1", "problem": None}),
    ([], {"ready": False, "pod": None, "problem": "no agent pod on this node"}),
    ([agent_pod("a1", "n2")], {"ready": False, "pod": None, "problem": "no agent pod on this node"}),
    ([agent_pod("a1", "n1", ready=False)], {"ready": False, "pod": "a1", "problem": "agent pod a1 is Running, not Ready"}),
    ([agent_pod("a1", "n1", phase="Pending")], {"ready": False, "pod": "a1",
                                                "problem": "agent pod a1 is Pending, not Ready"}),
    ([agent_pod("a1", "n1", container="main")],
     {"ready": False, "pod": "a1", "problem": "agent pod a1 has no container 'agent' (it has main)"}),
    # a rollout: the Ready pod wins over a newer one that is not ready yet, the newest Ready one over an older
    ([agent_pod("old", "n1", created="2026-12-01T00:00:00Z"),
      agent_pod("new", "n1", ready=False, created="2026-12-02T00:00:00Z")], {"ready": True, "pod": "old"}),
    ([agent_pod("old", "n1", created="2026-12-01T00:00:00Z"),
      agent_pod("new", "n1", created="2026-12-02T00:00:00Z")], {"ready": True, "pod": "new"}),
])
def test_agents_by_node(pods, expected):
    got = sel.agents_by_node(pods, {"n1"}, "agent")["n1"]
    assert dict((k, got[k]) for k in expected) == expected


def test_a_pod_being_deleted_is_no_ready_agent():
    p = agent_pod("a1", "n1")
    p["metadata"]["deletionTimestamp"] = "2026-12-02T00:00:00Z"
    assert sel.agents_by_node([p], {"n1"}, "agent")["n1"]["ready"] is False


@pytest.mark.parametrize("params, message", [
    ({"node_access": "telnet"}, "node_access must be one of ssh, agent"),
    ({"node_access": "agent", "agent_namespace": "Bad_NS"}, "agent_namespace 'Bad_NS' is not a namespace name"),
    ({"node_access": "agent", "agent_labels": ["x"]}, "agent_labels must be a dict"),
    ({"node_access": "agent", "agent_labels": {"app": "bad value!"}}, "agent_labels: value 'bad value!'"),
])
def test_agent_options_rejects(params, message):
    with pytest.raises(SelectionError, match=message.replace("(", r"\(")):
        options(**params)


class AgentApi(FakeApi):
    def __init__(self, pods, denied=None):
        super().__init__(pods)
        self.denied = denied

    def exec_denied(self, namespace):
        self.calls.append(("exec?", namespace))
        return self.denied


def test_resolve_with_agent_access_asks_for_pods_exec_then_lists_the_agents_once():
    pods = [pod("web-1", "shop", "n1"), pod("web-2", "shop", "n2"), agent_pod("a1", "n1"), agent_pod("a3", "n3")]
    api = AgentApi(pods)
    result = sel.resolve(options(namespaces=["shop"], node_access="agent"), api)
    assert [c for c in api.calls if c[0] != "node"] == [
        ("pods", "shop", "", ""), ("exec?", "chaosfleet-agent"),
        ("pods", "chaosfleet-agent", "app.kubernetes.io/name=chaosfleet-agent", "")]
    assert sorted(result["agents"]) == ["n1", "n2"]  # only the picked nodes
    assert result["agents"]["n1"]["ready"] and not result["agents"]["n2"]["ready"]
    assert "agents" not in sel.resolve(options(namespaces=["shop"]), FakeApi(pods))


def test_resolve_without_the_right_to_exec_fails_before_anything_starts():
    api = AgentApi([pod("web-1", "shop", "n1")], denied='RBAC: no rule grants "create" on pods/exec')
    with pytest.raises(ApiError, match="needs the right to create pods/exec in namespace chaosfleet-agent.*"
                                       "nothing was started") as caught:
        sel.resolve(options(namespaces=["shop"], node_access="agent"), api)
    assert caught.value.status == 403
    assert not any(c[1] == "chaosfleet-agent" and c[0] == "pods" for c in api.calls)
