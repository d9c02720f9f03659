"""The game day's decisions (plugin_utils/_game_day.py) and its summary rendered by the report code."""

import json

import pytest

from ansible_collections.chaosfleet.stress.plugins.plugin_utils import _game_day, _report

KNOWN = {"name", "type", "container_id", "memory_size", "cpu_load", "duration", "probes"}
INVENTORY = {"fleet": ["node1", "node2", "node3"], "node1": ["node1"], "node2": ["node2"], "node1,node2": ["node1",
                                                                                                           "node2"]}


def resolve(pattern):
    return INVENTORY.get(pattern, [])


def spec(experiments=None, **extra):
    out = {"name": "gd", "experiments": experiments if experiments is not None else [
        {"name": "a", "type": "memory", "hosts": "node1"}, {"name": "b", "type": "cpu", "hosts": "node2"}]}
    out.update(extra)
    return out


CHECK_CASES = [
    ("good", spec(), None),
    ("no name", spec(name=""), "the spec needs a name"),
    ("no experiments", spec([]), "the spec has no experiments"),
    ("unknown default", spec(defaults={"duraton": "1m"}), "defaults: unknown setting duraton"),
    ("type in defaults", spec(defaults={"type": "cpu"}), "defaults: unknown setting type"),
    ("unknown type", spec([{"name": "a", "type": "disk", "hosts": "fleet"}]),
     "a: unknown experiment type 'disk' (memory, cpu or io)"),
    ("no type", spec([{"name": "a", "hosts": "fleet"}]), "a: needs a type"),
    ("unknown setting", spec([{"name": "a", "type": "memory", "hosts": "fleet", "memroy_size": "1Mi"}]),
     "a: unknown setting memroy_size"),
    ("no hosts", spec([{"name": "a", "type": "memory", "hosts": "nosuchgroup"}]),
     "a: hosts 'nosuchgroup' matches no inventory host"),
    ("name twice", spec([{"name": "a", "type": "memory", "hosts": "node1"},
                         {"name": "a", "type": "cpu", "hosts": "node2"}]), "a: the name is used twice"),
    ("bad experiment name", spec([{"name": "../x", "type": "memory", "hosts": "node1"}]), "../x: needs a name"),
    ("same host twice in a batch", {"name": "gd", "batches": [[{"name": "a", "type": "memory", "hosts": "node1"},
                                                               {"name": "b", "type": "cpu", "hosts": "node1,node2"}]]},
     "b and a both run on node1 in batch 1"),
]


@pytest.mark.parametrize("value, words", [c[1:] for c in CHECK_CASES], ids=[c[0] for c in CHECK_CASES])
def test_check(value, words):
    out = _game_day.check(value, KNOWN, resolve)
    if words is None:
        assert out["errors"] == []
        assert out["plan"] == [["a"], ["b"]] and out["hosts"] == {"a": ["node1"], "b": ["node2"]}
    else:
        assert any(words in e for e in out["errors"]), out["errors"]


@pytest.mark.parametrize("value, want", [
    (spec(), [["a"], ["b"]]),
    (spec(mode="parallel"), [["a", "b"]]),
    ({"name": "gd", "batches": [[{"name": "a"}], [{"name": "b"}, {"name": "c"}]]}, [["a"], ["b", "c"]]),
])
def test_batches(value, want):
    assert [[e["name"] for e in b] for b in _game_day.batches_of(value)] == want


def test_host_vars_layers_defaults_spec_defaults_and_own_settings():
    value = spec(defaults={"duration": "2m", "memory_size": "1Mi"})
    value["experiments"][0]["memory_size"] = "8Mi"
    hosts = {"a": ["node1"], "b": ["node2"]}
    out = _game_day.host_vars(value, 0, "node1", hosts, {"experiment_duration": "60s", "experiment_cpu_load": 50})
    assert out["name"] == "a"
    assert out["vars"]["experiment_duration"] == "2m" and out["vars"]["experiment_memory_size"] == "8Mi"
    assert out["vars"]["experiment_cpu_load"] == 50 and out["vars"]["experiment_report"] is False
    assert out["vars"]["experiment_expected_hosts"] == ["node1"]
    assert _game_day.host_vars(value, 0, "node2", hosts, {}) == {"name": "", "vars": {}}


GATE_CASES = [
    ("all pass", {"a": {"verdict": "pass"}}, ["pass"], ""),
    ("inconclusive allowed", {"a": {"verdict": "inconclusive"}}, ["pass", "inconclusive"], ""),
    ("inconclusive closes", {"a": {"verdict": "inconclusive"}}, ["pass"], "gate after batch 1 closed: a ended inconclusive"),
    ("no report is an error", {}, ["pass"], "a ended error"),
]


@pytest.mark.parametrize("reports, continue_on, words", [c[1:] for c in GATE_CASES], ids=[c[0] for c in GATE_CASES])
def test_gate(reports, continue_on, words):
    stopped = _game_day.gate(0, ["a"], reports, continue_on)
    assert (words in stopped) if words else stopped == ""


SUMMARY_CASES = [
    ("all pass", {"a": {"verdict": "pass"}, "b": {"verdict": "pass"}}, "", ("pass", [])),
    ("worst wins", {"a": {"verdict": "pass"}, "b": {"verdict": "fail"}}, "", ("fail", [])),
    ("not run after a closed gate", {"a": {"verdict": "pass"}}, "gate closed", ("error", ["b"])),
    ("not run with a failure", {"a": {"verdict": "fail"}}, "gate closed", ("fail", ["b"])),
]


@pytest.mark.parametrize("reports, stopped, want", [c[1:] for c in SUMMARY_CASES], ids=[c[0] for c in SUMMARY_CASES])
def test_summary(reports, stopped, want):
    out = _game_day.summary("gd", [["a"], ["b"]], {"a": ["node1"], "b": ["node2"]}, reports, stopped)
    assert (out["verdict"], out["not_run"]) == want
    assert out["stopped"] == (stopped or None)


def test_summary_files_are_rendered_by_the_report_code(tmp_path):
    reports = {"a": {"verdict": "pass", "reports": {"markdown": "/r/stress-report-a.md"}},
               "b": {"verdict": "inconclusive", "reports": {}}}
    summary = _game_day.summary("gd|1", [["a", "b"]], {"a": ["node1"], "b": ["node2", "node3"]}, reports, "")
    paths = _report.write_game_day(summary, str(tmp_path))
    text = (tmp_path / "game-day-gd|1.md").read_text()
    assert text.startswith("# Game day gd\\|1: inconclusive\n")
    assert "| 1 | a | node1 | pass | stress-report-a.md |" in text
    assert "| 1 | b | node2, node3 | inconclusive | - |" in text
    assert json.loads((tmp_path / "game-day-gd|1.json").read_text())["verdict"] == "inconclusive"
    assert paths["markdown"].endswith("game-day-gd|1.md")


# ---------------------------------------------------------------- Kubernetes selectors

A, B = "a" * 64, "b" * 64


def _by_node(**nodes):
    return dict((node, {"node_ip": "10.0.0.9", "targets": [
        {"namespace": "shop", "pod": pod, "container_ids": [cid], "containers": ["app"]} for pod, cid in picked]})
        for node, picked in nodes.items())


K8S_SPEC = {"name": "gd", "experiments": [
    {"name": "mem", "type": "memory", "hosts": "fleet", "k8s": {"label_selectors": {"app": "web"}},
     "memory_size": "32Mi"}]}


@pytest.mark.parametrize("selected, hosts, skipped, added, error", [
    # node3 runs no picked pod: skipped, not failed
    (_by_node(node1=[("web-1", A)], node2=[("web-2", B)]), ["node1", "node2"], ["node3"], [], None),
    # two pods on node1: one host per container, both added (in node1's groups by the playbook)
    (_by_node(node1=[("web-1", A), ("web-2", B)]), ["node1--aaaaaaaaaaaa", "node1--bbbbbbbbbbbb"],
     ["node2", "node3"], ["node1--aaaaaaaaaaaa", "node1--bbbbbbbbbbbb"], None),
    # a pod on a node outside the hosts pattern is not the experiment's
    (_by_node(node9=[("web-9", A)]), [], ["node1", "node2", "node3"], [], "the Kubernetes selector picked no running"),
])
def test_check_plans_hosts_from_a_kubernetes_selector(selected, hosts, skipped, added, error):
    out = _game_day.check(K8S_SPEC, KNOWN, resolve, {"mem": selected}, ["node1", "node2", "node3"])
    assert out["hosts"]["mem"] == hosts and out["skipped"]["mem"] == skipped
    assert [h["name"] for h in out["add_hosts"]] == added
    if error:
        assert any(error in e for e in out["errors"])
        return
    assert out["errors"] == []
    first = out["targets"]["mem"][hosts[0]]
    assert first["experiment_container_id"] in (A, B)
    assert first["experiment_k8s_target"]["namespace"] == "shop"
    mine = _game_day.host_vars(K8S_SPEC, 0, hosts[0], out["hosts"], {"experiment_container_id": ""}, out["targets"])
    assert mine["vars"]["experiment_container_id"] == first["experiment_container_id"]
    assert "experiment_k8s" not in mine["vars"] and mine["vars"]["experiment_k8s_target"]["pod"].startswith("web-")


def test_inventory_nodes_reached_through_their_agent_are_added_again_with_the_agents():
    """With k8s_node_access=agent an inventory node that is its own host changes its connection, so it is added too."""
    agents = {"node1": {"namespace": "chaosfleet-agent", "pod": "agent-1", "container": "agent", "ready": True,
                        "problem": None}}
    selected = _by_node(node1=[("web-1", A)], node2=[("web-2", B)])
    out = _game_day.check(K8S_SPEC, KNOWN, resolve, {"mem": selected}, ["node1", "node2", "node3"], agents)
    assert out["errors"] == [] and out["agents"] == agents
    assert [h["name"] for h in out["add_hosts"]] == ["node1"]


def test_summary_lists_skipped_hosts():
    out = _game_day.summary("gd", [["mem"]], {"mem": ["node1"]}, {"mem": {"verdict": "pass"}}, "", {"mem": ["node3"]})
    assert out["batches"][0][0]["skipped"] == ["node3"] and out["verdict"] == "pass"


@pytest.mark.parametrize("planned, play_hosts, want", [
    (["a", "b"], ["b", "c"], "b"),   # the first planned host still in the play
    (["a", "b"], ["c"], "a"),        # none left: the first planned host
    ([], ["c"], None),
])
def test_report_host(planned, play_hosts, want):
    assert _game_day.report_host(planned, play_hosts) == want


ROLE_DEFAULTS = dict((key, "default") for key in _game_day.REPORT_KEYS)


@pytest.mark.parametrize("seen, want_percent, want_url", [
    ({"b": {"experiment_achieved_min_percent": 50, "experiment_publish_upload_url": "https://u/{file}"}}, 50,
     "https://u/{file}"),
    ({"b": {"experiment_achieved_min_percent": 50}}, 50, "default"),   # not set there: the role's default
    ({}, "default", "default"),                                        # its host never got the batch's variables
], ids=["its own", "partly its own", "none"])
def test_report_vars_are_each_experiments_own_else_the_roles(seen, want_percent, want_url):
    out = _game_day.report_vars(["e1", "e2"], {"e1": ["a", "b"], "e2": ["c"]}, ["b", "c"], seen, ROLE_DEFAULTS)
    assert sorted(out) == ["e1", "e2"] and sorted(out["e1"]) == sorted(_game_day.REPORT_KEYS)
    assert (out["e1"]["experiment_achieved_min_percent"], out["e1"]["experiment_publish_upload_url"]) \
        == (want_percent, want_url)
    assert out["e2"] == ROLE_DEFAULTS
