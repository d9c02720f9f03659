"""The report model: what each host shows, set_stats' summary (and the headroom AWX tracks), the JSON document."""

import copy

import pytest

from ansible_collections.chaosfleet.stress.plugins.plugin_utils._report_model import (
    build, headroom_stats, json_document, stats,
)
from tests.unit.reportfix import MI, load, memory_results, params


def model_of(results, **extra):
    return build(params(results, "/nonexistent", **extra))


def test_figures_cover_the_stress_window_whatever_the_node_summarized():
    result = load("node1_stressor_oom")
    result["summary"] = {"count": 1, "cpu_cores": 9.9, "working_set_bytes": {"max": 1}}   # not trusted for figures
    [host] = model_of([result])["hosts"]
    # k5-27: peak 500 MiB; 1.05 CPU seconds per second (see test_summary).
    assert (host["peak"], host["peak_of_limit"], host["limit"], host["baseline"], host["cpu_cores"]) == (
        "500.0 MiB", "98%", "512.0 MiB", "120.0 MiB", "1.05")


@pytest.mark.parametrize("name, expected", [
    ("node1_stressor_oom", {"steady_state": "held", "recovery": "2 s (within 5%)",
                            "ended": "stopped by guard oom_kills", "duration": "22 s", "app_kills": 0,
                            "stressor_kills": 2, "headroom": None}),
    ("node3_group_kill", {"steady_state": "broke", "recovery": "not measured: target gone",
                          "ended": "target container went away", "group_kill": True, "app_kills": 2}),
    ("node1_search_memory", {"steady_state": "held to 60%, broke at 70%", "verdict": "pass",
                             "recovery": "7 s (within 5%)"}),
])
def test_host_view(name, expected):
    [host] = model_of([load(name)])["hosts"]
    for key, value in expected.items():
        assert host[key] == value, key


@pytest.mark.parametrize("title, results, expected", [
    (None, {"node1": "node1_stressor_oom"}, ("Stress experiment checkout-memory-pressure", "checkout-memory-pressure",
                                             "2025-11-28 08:00:05 UTC")),
    ("Checkout, run 2", {"node1": "node1_stressor_oom"},
     ("Checkout, run 2", "checkout-memory-pressure", "2025-11-28 08:00:05 UTC")),
    (None, {"node1": None}, ("Stress experiment report", None, "n/a")),
])
def test_build_names_the_report(title, results, expected):
    model = model_of(dict((h, load(n) if n else None) for h, n in results.items()), title=title)
    assert (model["title"], model["experiment"], model["started"]) == expected


def test_stats_name_the_kubernetes_target_of_each_host():
    """set_stats' per-host summary carries namespace, pod, container and node when k8s_targets picked the target,
    and nothing extra for a target given by container ID."""
    picked, plain = load("node1_stressor_oom"), copy.deepcopy(load("node1_stressor_oom"))
    picked["target"]["kubernetes"] = {"namespace": "shop", "pod": "web-1", "container": "app", "node": "w1"}
    picked["host"], plain["host"] = "w1--aaaaaaaaaaaa", "w2"
    per_host = stats(model_of([picked, plain]), {})["per_host"]
    assert per_host["w1--aaaaaaaaaaaa"]["kubernetes"] == {"namespace": "shop", "pod": "web-1", "container": "app",
                                                          "node": "w1"}
    assert "kubernetes" not in per_host["w2"]


@pytest.mark.parametrize("extra, expected", [({}, 80.0), ({"achieved_min_percent": 25.0}, 25.0)])
def test_stats_say_which_achieved_share_the_verdict_asked_for(extra, expected):
    assert stats(model_of([load("node1_stressor_oom")], **extra), {})["achieved_min_percent"] == expected


def test_stats_per_host():
    got = stats(model_of(memory_results()), {"json": "/r.json"})
    assert got["verdict"] == "fail" and got["reports"] == {"json": "/r.json"}
    assert got["per_host"]["node2"] == {
        "verdict": "fail", "notes": ["steady state broke: probe http GET /healthz 3 of 60 probes failed (HTTP 502) "
                                     "between 23 s and 25 s", "OOM killer took app process gunicorn (pid 3121)"],
        "ended": "stop", "steady_state_held": False, "recovery_seconds": 1.0, "achieved_percent": 100.0,
        "oom_kills": {"app": 1, "stressor": 0}}


HEADROOM = {"headroom": 60, "headroom_label": "60%", "unit": "percent", "headroom_percent": 60.0,
            "headroom_bytes": int(0.6 * 512 * MI), "first_fail": 70, "ended_by": "edge", "confirmed": None,
            "required": 50, "regression_ok": True, "verdict": "pass"}


def search_on(host, **changes):
    result = load("node1_search_memory")
    result["host"] = host
    result["search"].update(changes)
    return result


@pytest.mark.parametrize("results, expected", [
    ([load("node1_stressor_oom")], {}),
    ([search_on("node1")], {"checkout": {"node1": HEADROOM}}),
    ([search_on("node1"), search_on("node2", last_pass=50, headroom=50, headroom_label="50%", headroom_percent=50.0,
                                    first_fail=60, regression={"required": 50, "required_label": "50%", "ok": True})],
     {"checkout": {"node1": HEADROOM, "node2": dict(HEADROOM, headroom=50, headroom_label="50%", headroom_percent=50.0,
                                                    headroom_bytes=int(0.5 * 512 * MI), first_fail=60)}}),
    # The host's verdict: a search that failed its regression check fails.
    ([search_on("node1", verdict="fail", regression={"required": 70, "required_label": "70%", "ok": False})],
     {"checkout": {"node1": dict(HEADROOM, required=70, regression_ok=False, verdict="fail")}}),
    # A host that failed or is missing has no headroom.
    ({"node1": search_on("node1"), "node2": {"failed": True, "msg": "boom"}, "node3": None},
     {"checkout": {"node1": HEADROOM}}),
])
def test_headroom_stats(results, expected):
    model = model_of(results)
    assert headroom_stats(model) == expected
    per_host = stats(model, {})["per_host"]
    assert dict((h, v["headroom"]) for h, v in per_host.items() if "headroom" in v) == \
        (list(expected.values()) or [{}])[0]


def test_json_keeps_the_input_and_adds_verdicts():
    document = json_document(model_of(memory_results()))
    assert document["format_version"] == 1
    assert document["experiment"] == "checkout-memory-pressure"
    assert document["verdict"] == "fail"
    assert document["results"]["node1"]["samples"] == load("node1_stressor_oom")["samples"]
    assert dict((h, v["verdict"]) for h, v in document["verdicts"].items()) == {
        "node1": "pass", "node2": "fail", "node3": "fail"}
    assert all("headroom" not in v for v in document["verdicts"].values())


def test_json_carries_the_search_and_its_answer():
    document = json_document(model_of([search_on("node1")]))
    web = document["results"]["node1"]["search"]["levels"][5]["probes"][0]
    assert web["latency_ms"] == {"p50": 190.0, "p95": 412.0}
    assert document["verdicts"]["node1"]["headroom"] == dict(HEADROOM, answer=(
        "checkout on node1: the steady state held up to 60% of its memory limit (307 MiB); it broke at 70%: probe web "
        "p95 412 ms > SLO 300 ms; required at least 50%: met"))
    assert document["results"]["node1"]["search"]["limit_bytes"] == 512 * MI
