"""The report's input: results sorted into reported, failed and missing hosts, checked, normalized; slices;
the stop guard's record."""

import copy
import json

import pytest

from ansible_collections.chaosfleet.stress.plugins.plugin_utils._report import run
from ansible_collections.chaosfleet.stress.plugins.plugin_utils._report_input import (
    ReportError, apply_stop_record, collect, from_slices,
)
from tests.unit.reportfix import load, memory_results, params, render_all


@pytest.fixture
def rendered(tmp_path):
    results = memory_results()
    results["node5"] = None
    results["node6"] = {"failed": True, "msg": "cgroup_info: no container matches 5e1f on node6"}
    return render_all(tmp_path, results, expected_hosts=["node1", "node2", "node3", "node5", "node6", "node7"])


def test_missing_and_failed_hosts_are_listed(rendered):
    out, page, _html, markdown, document = rendered
    rows = dict((r["data-host"], r["class"]) for r in page.rows)
    assert rows == {"node1": "host-row", "node2": "host-row", "node3": "host-row",
                    "node5": "missing-row", "node7": "missing-row", "node6": "failed-row"}
    assert sorted(page.hosts) == ["node1", "node2", "node3"]
    assert "| node5 | **missing** |" in markdown and "| node7 | **missing** |" in markdown
    assert "cgroup_info: no container matches 5e1f on node6" in markdown
    assert document["hosts"] == {"ok": ["node1", "node2", "node3"], "missing": ["node5", "node7"],
                                 "failed": [{"host": "node6", "msg": "cgroup_info: no container matches 5e1f on node6"}]}
    assert out["stats"]["hosts"] == {"ok": ["node1", "node2", "node3"], "missing": ["node5", "node7"],
                                     "failed": ["node6"]}


@pytest.mark.parametrize("results, expected, reported, failed, missing", [
    ({"node1": "node1_stressor_oom", "node2": {"unreachable": True, "msg": "ssh: timeout"}, "node3": {"skipped": True}},
     [], ["node1"], {}, ["node2", "node3"]),
    ({"node1": None, "node2": {"failed": True, "msg": "boom"}}, ["node1", "node2", "node4"], [], {"node2": "boom"},
     ["node1", "node4"]),
    ({"node1": {}, "node2": {"failed": True}}, [], [], {"node2": "the task failed"}, ["node1"]),
    (["node1_stressor_oom", {"unreachable": True, "host": "node8"}], [], ["node1"], {}, ["node8"]),
], ids=["unreachable and skipped", "expected but absent", "empty and failed without a message", "a list"])
def test_collect_sorts_hosts(results, expected, reported, failed, missing):
    def value(v):
        return load(v) if isinstance(v, str) else v
    if isinstance(results, dict):
        given = dict((h, value(v)) for h, v in results.items())
    else:
        given = [value(v) for v in results]
    got_reported, got_failed, got_missing = collect(given, expected)
    assert (sorted(got_reported), got_failed, sorted(got_missing)) == (reported, failed, missing)


def incompatible():
    return [load("node1_stressor_oom"), load("node9_format_v2")]


def sample_without_time():
    result = load("node1_stressor_oom")
    del result["samples"][3]["t"]
    return [result]


def without_version():
    result = load("node1_stressor_oom")
    del result["format_version"]
    return [result]


def search_with(**changes):
    result = load("node1_search_memory")
    result["search"].update(changes)
    return [result]


@pytest.mark.parametrize("results, message", [
    (incompatible, "incompatible format version: node9 has format_version 2; this collection reads "
                   "format_version 1. Nothing was written."),
    (lambda: [dict(load("node1_stressor_oom"), format_version="1")], "node1 has format_version '1'"),
    (without_version, "results[0] has no format_version"),
    (lambda: [load("node1_stressor_oom"), load("node4_cpu_throttled")],
     "different experiments (checkout-cpu-quota, checkout-memory-pressure)"),
    (lambda: [load("node1_stressor_oom"), load("node1_stressor_oom")], "host node1 has more than one result"),
    (sample_without_time, "node1: every sample needs a numeric t"),
    (lambda: [dict(load("node1_stressor_oom"), samples={})], "node1: samples must be a list"),
    (lambda: [dict(load("node1_stressor_oom"), experiment="")], "node1: experiment name missing"),
    (lambda: [dict(load("node1_stressor_oom"), host=None)], "results[0] has no host name"),
    (lambda: [dict(load("node1_stressor_oom"), oom_kills=["4242"])], "node1: oom_kills must be a list of OOM"),
    (lambda: [dict(load("node1_stressor_oom"), recovery=[1])], "node1: recovery must be a mapping"),
    (lambda: [dict(load("node1_stressor_oom"), steady_state={"probes": "ok"})],
     "node1: steady_state.probes must be a list of mappings"),
    (lambda: [dict(load("node1_search_memory"), search=["60%"])], "node1: search must be a mapping"),
    (lambda: search_with(levels=["60%"]), "node1: search.levels must be a list of mappings"),
    (lambda: ["node1"], "results[0] is a str, not an experiment result"),
    (lambda: "node1", "results must be a list of experiment results or a mapping"),
    (lambda: [], "nothing to report"),
])
def test_bad_input_is_refused(results, message):
    with pytest.raises(ReportError) as info:
        collect(results(), [])
    assert message in str(info.value)


def test_copy_of_input_is_not_modified(tmp_path):
    result = load("node2_app_oom")
    searched = load("node1_search_memory")
    before = copy.deepcopy([result, searched])
    run(params([result], tmp_path / "a"))
    run(params([searched], tmp_path / "b"))
    assert [result, searched] == before


@pytest.mark.parametrize("search, level, expected", [
    ({"levels": [{"level": 20, "outcome": "pass"}]}, 0,
     {"index": 0, "label": None, "failed_by": None, "confirmation": False, "probes": [],
      "working_set": {"mean_bytes": None, "max_bytes": None, "percent_of_limit": None},
      "recovery": {"recovered": None, "seconds": None}}),
    ({"levels": [{"level": 20, "outcome": "pass"}, {"level": 30, "outcome": "fail", "index": 7,
                                                    "probes": [{"name": "web", "ok": False}]}]}, 1,
     {"index": 7, "probes": [{"name": "web", "type": None, "ok": False, "pass_rate": None, "latency_ms": None,
                              "value": None, "slo": None}]}),
    ({"levels": [{"level": 20, "outcome": "pass", "working_set": {"mean_bytes": 5}, "recovery": {"seconds": 2.0}}]}, 0,
     {"working_set": {"mean_bytes": 5, "max_bytes": None, "percent_of_limit": None},
      "recovery": {"recovered": None, "seconds": 2.0}}),
], ids=["bare level", "probe defaults and a given index", "partial figures"])
def test_a_search_is_normalized_level_by_level(search, level, expected):
    result = load("node1_stressor_oom")
    result["search"] = dict(search, mode="step", unit="percent")
    reported, _failed, _missing = collect([result], [])
    got = reported["node1"]["search"]
    assert got["notes"] == [] and got["range"] == {} and got["edge"] is None and got["ended_by"] is None
    for key, value in expected.items():
        assert got["levels"][level][key] == value, key


@pytest.mark.parametrize("search", [None, {}], ids=["null", "empty"])
def test_a_result_without_a_search_stays_without_one(search):
    result = load("node1_stressor_oom")
    result["search"] = search
    reported, _failed, _missing = collect([result], [])
    assert reported["node1"]["search"] == search


def slice_report(tmp_path, name, results, expected):
    out = run(params(results, tmp_path / name, expected_hosts=expected, formats=["json"], basename=name))
    return out["paths"]["json"]


def test_slices_make_one_report(tmp_path):
    node1, node2 = load("node1_stressor_oom"), load("node2_app_oom")
    everyone = ["node1", "node2", "node3"]
    first = slice_report(tmp_path, "s1", {"node1": node1}, everyone)
    second = slice_report(tmp_path, "s2", {"node2": node2, "node3": {"failed": True, "msg": "boom"}}, everyone)
    results, expected = from_slices([first, second])
    assert sorted(results) == ["node1", "node2", "node3"] and expected == everyone
    got = run(params(None, tmp_path / "all", slice_reports=[first, second], formats=["json"], basename="all"))
    document = json.loads((tmp_path / "all" / "all.json").read_text())
    assert sorted(document["results"]) == ["node1", "node2"] and document["hosts"]["missing"] == []
    assert document["hosts"]["failed"] == [{"host": "node3", "msg": "boom"}]
    assert got["stats"]["experiment"] == node1["experiment"]


def test_a_slice_keeps_its_search(tmp_path):
    first = slice_report(tmp_path, "s1", {"node1": load("node1_search_memory")}, [])
    got = run(params(None, tmp_path / "all", slice_reports=[first], formats=["json"], basename="all"))
    assert got["headroom"]["checkout"]["node1"]["headroom"] == 60


@pytest.mark.parametrize("make, message", [
    (lambda p: p.write_text("{"), "cannot read the slice report"),
    (lambda p: p.write_text("[]"), "is not a JSON report"),
    (lambda p: p.write_text(json.dumps({"format_version": 2, "results": {}})), "format_version 2"),
], ids=["not json", "not a report", "other version"])
def test_bad_slice_report(tmp_path, make, message):
    path = tmp_path / "bad.json"
    make(path)
    with pytest.raises(ReportError, match=message):
        run(params(None, tmp_path / "out", slice_reports=[str(path)]))
    assert not (tmp_path / "out").exists()


def test_a_host_in_two_slices_is_refused(tmp_path):
    node1 = load("node1_stressor_oom")
    first = slice_report(tmp_path, "s1", {"node1": node1}, [])
    second = slice_report(tmp_path, "s2", {"node1": node1}, [])
    with pytest.raises(ReportError, match="host node1 has a result in more than one slice"):
        run(params(None, tmp_path / "out", slice_reports=[first, second]))


def test_a_stop_record_says_interrupted_by_which_signal_and_when_each_node_stopped(tmp_path):
    results = memory_results()
    started = results["node1"]["started_at"]
    record = {"experiment": results["node1"]["experiment"], "interrupted": True, "signal": "SIGINT",
              "cause": "SIGINT", "at": started + 5.0, "stop_started_at": started + 5.1, "stop_ended_at": started + 7.5,
              "hosts": {"node1": {"stopped": True, "stopped_at": started + 6.25, "state": "stopped", "msg": ""},
                        "node2": {"stopped": True, "stopped_at": started + 6.5, "state": "stopped", "msg": ""},
                        "node3": {"stopped": False, "stopped_at": None, "state": "unreachable", "msg": "no answer"}},
              "unreachable": ["node3"]}
    path = tmp_path / "stress-report-x.stop.json"
    path.write_text(json.dumps(record))
    out = run(params(results, tmp_path / "out", stop_record=str(path)))
    with open(out["paths"]["json"]) as handle:
        document = json.load(handle)
    assert document["interrupted"]["signal"] == "SIGINT" and document["interrupted"]["unreachable"] == ["node3"]
    node1 = document["results"]["node1"]["interrupted"]
    assert node1 == {"signal": "SIGINT", "cause": "SIGINT", "at": started + 5.0, "stopped": True,
                     "stopped_at": started + 6.25, "msg": ""}
    assert document["results"]["node3"]["interrupted"]["stopped"] is False
    assert any(n.startswith("interrupted (SIGINT)") and "(1.2 s later)" in n
               for n in document["verdicts"]["node1"]["notes"])
    assert any("could not reach it" in n for n in document["verdicts"]["node3"]["notes"])
    # Interrupted: at best inconclusive, a worse verdict stays.
    assert all(v["verdict"] in ("inconclusive", "fail", "error") for v in document["verdicts"].values())
    with open(out["paths"]["markdown"]) as handle:
        markdown = handle.read()
    assert "**Interrupted** (SIGINT)" in markdown and "node1 (+1.2 s)" in markdown
    assert "not reached (left to their dead-man): node3" in markdown
    with open(out["paths"]["html"]) as handle:
        html = handle.read()
    assert 'id="interrupted"' in html and "(SIGINT)" in html


@pytest.mark.parametrize("shape", ["mapping", "list", "single"])
def test_apply_stop_record_keeps_the_shape(shape):
    record = {"signal": "SIGTERM", "cause": "SIGTERM", "at": 5.0, "hosts": {"node1": {"stopped": True,
                                                                                      "stopped_at": 6.0}}}
    result = load("node1_stressor_oom")
    given = {"mapping": {"node1": result, "node2": None}, "list": [result], "single": result}[shape]
    got = apply_stop_record(given, record)
    marked = {"mapping": lambda g: g["node1"], "list": lambda g: g[0], "single": lambda g: g}[shape](got)
    assert marked["interrupted"] == {"signal": "SIGTERM", "cause": "SIGTERM", "at": 5.0, "stopped": True,
                                     "stopped_at": 6.0, "msg": ""}
    assert "interrupted" not in result


def test_a_report_without_a_stop_record_has_no_interruption(rendered):
    document = rendered[4]
    assert document["interrupted"] is None
    assert all(r.get("interrupted") is None for r in document["results"].values())
    assert 'id="interrupted"' not in rendered[2]


def test_a_bad_stop_record_is_refused(tmp_path):
    path = tmp_path / "bad.stop.json"
    path.write_text(json.dumps({"hosts": {}}))
    with pytest.raises(ReportError, match="is not a stop record"):
        run(params(memory_results(), tmp_path / "out", stop_record=str(path)))
    assert not (tmp_path / "out").exists()
