"""A headroom search in the report: the one-line answer, the levels table, the charts' inputs, the AWX figures."""

import copy

import pytest

from ansible_collections.chaosfleet.stress.plugins.plugin_utils import _report_headroom as headroom
from ansible_collections.chaosfleet.stress.plugins.plugin_utils import _search
from ansible_collections.chaosfleet.stress.plugins.plugin_utils._report_input import collect
from tests.unit.reportfix import MI, load

FIXTURE = load("node1_search_memory")


def searched(**changes):
    """The fixture's result, normalized, with ``changes`` to its search (a level: levels=[(index, {...})])."""
    result = copy.deepcopy(FIXTURE)
    for index, level in changes.pop("levels", []):
        result["search"]["levels"][index].update(level)
    result["search"].update(changes)
    reported, _failed, _missing = collect([result], [])
    return reported["node1"]


HEAD = "checkout on node1: the steady state held up to 60% of its memory limit (307 MiB)"


@pytest.mark.parametrize("changes, expected", [
    ({}, HEAD + "; it broke at 70%: probe web p95 412 ms > SLO 300 ms; required at least 50%: met"),
    ({"regression": None}, HEAD + "; it broke at 70%: probe web p95 412 ms > SLO 300 ms"),
    ({"regression": {"required": 70, "required_label": "70%", "ok": False}},
     HEAD + "; it broke at 70%: probe web p95 412 ms > SLO 300 ms; required at least 70%: NOT met"),
    ({"regression": None, "confirmed": True},
     HEAD + "; it broke at 70%: probe web p95 412 ms > SLO 300 ms; a second hold at 60% held again"),
    ({"regression": None, "confirmed": False},
     HEAD + "; it broke at 70%: probe web p95 412 ms > SLO 300 ms; a second hold at 60% did not hold: the edge is "
            "noisy"),
    # A guard, not a probe, failed the level.
    ({"regression": None, "edge": {"kind": "guard", "name": "limit_margin", "detail": "working set at 486 MiB"}},
     HEAD + "; it broke at 70%: guard limit_margin: working set at 486 MiB"),
    # A probe whose figures stay inside its SLO (it failed its checks): its own words.
    ({"regression": None, "edge": {"kind": "probe", "name": "errors", "detail": "3 of 10 checks failed"}},
     HEAD + "; it broke at 70%: probe errors: 3 of 10 checks failed"),
    ({"regression": None, "ended_by": "recovery"},
     HEAD + "; it broke at 70%: probe web p95 412 ms > SLO 300 ms; the search aborted: the target did not recover "
            "after a level"),
    ({"regression": None, "first_fail": None, "edge": None, "ended_by": "range_end"},
     HEAD + ", the top of the range: no edge found"),
    ({"regression": None, "first_fail": None, "edge": None, "ended_by": "fleet_stop"},
     HEAD + " when the fleet stopped the search: the edge is higher"),
    ({"regression": None, "last_pass": None, "first_fail": 20, "levels": [(0, {"outcome": "fail", "failed_by": {
        "kind": "guard", "name": "app_oom", "detail": "the OOM killer took java (pid 77)"}})],
      "edge": {"kind": "guard", "name": "app_oom", "detail": "the OOM killer took java (pid 77)"},
      "ended_by": "app_oom"},
     "checkout on node1: the steady state broke at the first level, 20% of its memory limit (102 MiB): guard app_oom: "
     "the OOM killer took java (pid 77); no headroom within the range; the search ended: the OOM killer took the "
     "application"),
    ({"regression": None, "last_pass": None, "first_fail": None, "edge": None, "ended_by": "error"},
     "checkout on node1: no level finished; the search ended on a level that could not run"),
])
def test_answer(changes, expected):
    result = searched(**changes)
    assert headroom.answer(result, result["search"]) == expected


@pytest.mark.parametrize("unit, limit, value, label, expected", [
    ("percent", 512 * MI, 60, "60%", "60% of its memory limit (307 MiB)"),
    ("percent", None, 60, "60%", "60% of its memory limit"),
    ("bytes", 512 * MI, 128 * MI, "128.0 MiB", "128.0 MiB (25% of its memory limit)"),
    ("bytes", None, 128 * MI, None, "128.0 MiB"),
    ("load", None, 40, "load 40%", "load 40% of its CPU quota"),
])
def test_amount_text(unit, limit, value, label, expected):
    search = {"unit": unit, "limit_bytes": limit, "levels": [{"level": value, "label": label}]}
    assert headroom.amount_text({"target": {"limit_bytes": None}}, search, value) == expected


def test_rows_of_the_fixture():
    rows = headroom.rows(searched()["search"])
    assert [(r["index"], r["label"], r["outcome"], r["failed_by"]) for r in rows] == [
        (0, "20%", "pass", ""), (1, "30%", "pass", ""), (2, "40%", "pass", ""), (3, "50%", "pass", ""),
        (4, "60%", "pass", ""), (5, "70%", "fail", "probe web p95 412 ms > SLO 300 ms")]
    assert rows[4]["working_set"] == "mean 425 MiB, max 433 MiB (83% of limit)"
    assert rows[5]["probes"] == [
        {"name": "web", "ok": False, "text": "p95 412 ms, p50 190 ms, 96.7% passed"},
        {"name": "errors", "ok": True, "text": "max 0.032, 100% passed"}]
    assert [r["recovery"] for r in rows] == ["2.1 s", "2.4 s", "3 s", "3.8 s", "5.2 s", "7 s"]


@pytest.mark.parametrize("level, expected", [
    # A second hold, a level that could not run, a probe missing at a level, a recovery that did not come back.
    ({"confirmation": True}, {"confirmation": True}),
    ({"outcome": "error", "failed_by": {"kind": "error", "name": "error", "detail": "ssh: timeout"}, "probes": [],
      "working_set": None}, {"outcome": "error", "failed_by": "error: ssh: timeout", "working_set": "n/a",
                             "probes": [{"name": "web", "ok": None, "text": ""}, {"name": "errors", "ok": None,
                                                                                  "text": ""}]}),
    ({"recovery": {"recovered": False, "seconds": None}}, {"recovery": "not back"}),
])
def test_rows_say_what_each_level_did(level, expected):
    row = headroom.rows(searched(levels=[(2, level)])["search"])[2]
    for key, value in expected.items():
        assert row[key] == value, key


@pytest.mark.parametrize("probe, figure, text", [
    ({"slo": {"figure": "latency_p95_ms", "comparator": "<=", "threshold": 300}, "latency_ms": {"p95": 412.0}},
     ("latency_p95_ms", 412.0), "p95 412 ms"),
    ({"slo": {"figure": "value", "comparator": "<=", "threshold": 0.05}, "value": {"last": 0.01, "max": 0.07}},
     ("value", 0.07), "max 0.07"),
    ({"slo": {"figure": "value", "comparator": ">=", "threshold": 2}, "value": {"last": 3, "max": 4, "min": 1}},
     ("value", 1), "min 1"),
    ({"slo": {"figure": "value", "comparator": "==", "threshold": 1}, "value": {"last": 1, "max": 4, "min": 1}},
     ("value", 1), "last 1"),
    ({"slo": {"figure": "value", "comparator": "<", "threshold": 1}, "value": {"last": 0.5}}, ("value", 0.5),
     "max 0.5"),
    ({"slo": {"figure": "value", "comparator": "<=", "threshold": 1}, "value": 0.2}, ("value", 0.2), "max 0.2"),
    ({"slo": None, "pass_rate": 96.7}, ("pass_rate", 96.7), "pass rate 96.7%"),
    ({"slo": {"figure": "latency_p95_ms", "comparator": "<=", "threshold": 300}, "latency_ms": None},
     ("latency_p95_ms", None), "n/a"),
])
def test_probe_figure(probe, figure, text):
    assert headroom.probe_figure(probe) == figure
    assert headroom.figure_text(figure[0], figure[1], (probe["slo"] or {}).get("comparator")) == text


@pytest.mark.parametrize("failed_by, probe, expected", [
    (None, None, ""),
    ({"kind": "probe", "name": "web", "detail": "3 of 9 failed"},
     {"name": "web", "slo": {"figure": "latency_p95_ms", "comparator": "<=", "threshold": 300},
      "latency_ms": {"p95": 412.0}}, "probe web p95 412 ms > SLO 300 ms"),
    ({"kind": "probe", "name": "rate", "detail": ""},
     {"name": "rate", "slo": {"figure": "value", "comparator": ">", "threshold": 10}, "value": {"min": 10}},
     "probe rate min 10 ≤ SLO 10"),
    ({"kind": "probe", "name": "up", "detail": "1 of 9 failed"},
     {"name": "up", "slo": {"figure": "pass_rate", "comparator": ">=", "threshold": 100}, "pass_rate": 88.9},
     "probe up pass rate 88.9% < SLO 100%"),
    ({"kind": "probe", "name": "web", "detail": "connection refused"}, None, "probe web: connection refused"),
    ({"kind": "guard", "name": "recovery", "detail": ""}, None, "guard recovery"),
    ({"kind": "error", "name": "error", "detail": ""}, None, "error: error"),
])
def test_failed_by_text(failed_by, probe, expected):
    assert headroom.failed_by_text(failed_by, {"probes": [probe] if probe else []}) == expected


@pytest.mark.parametrize("search, expected", [
    ({"range": {"from": 20, "to": 90, "step": 10}, "levels": []}, [20, 30, 40, 50, 60, 70, 80, 90]),
    ({"range": {"from": 20, "to": 85, "step": 10}, "levels": []}, [20, 30, 40, 50, 60, 70, 80, 85]),
    ({"grid": [35, 45, 55], "range": {"from": 0, "to": 100, "step": 1}, "levels": []}, [35, 45, 55]),
    # Bisect levels off the grid still get a tick.
    ({"range": {"from": 20, "to": 40, "step": 10}, "levels": [{"level": 25}]}, [20, 25, 30, 40]),
    ({"range": {}, "levels": [{"level": 30}, {"level": 10}]}, [10, 30]),
])
def test_grid(search, expected):
    assert headroom.grid(search) == expected


@pytest.mark.parametrize("changes, expected", [
    ({}, "held to 60%, broke at 70%"),
    ({"first_fail": None}, "held to 60%"),
    ({"last_pass": None}, "broke at 70%"),
    ({"last_pass": None, "first_fail": None}, "no level finished"),
])
def test_steady_state_text(changes, expected):
    assert headroom.steady_state_text(searched(**changes)["search"]) == expected


ENTRY = {"headroom": 60, "headroom_label": "60%", "unit": "percent", "headroom_percent": 60.0,
         "headroom_bytes": int(0.6 * 512 * MI), "first_fail": 70, "ended_by": "edge", "confirmed": None, "required": 50,
         "regression_ok": True, "verdict": "pass"}


@pytest.mark.parametrize("changes, verdict, expected", [
    ({}, "pass", ENTRY),
    ({"headroom_percent": None, "headroom_label": None}, "pass", ENTRY),
    ({"regression": None, "min_headroom": None}, "pass", dict(ENTRY, required=None, regression_ok=None)),
    ({"unit": "bytes", "headroom": 128 * MI, "headroom_percent": None, "headroom_label": None, "first_fail": None,
      "ended_by": "range_end", "regression": None},
     "pass", dict(ENTRY, headroom=128 * MI, headroom_label="128.0 MiB", unit="bytes", headroom_percent=25.0,
                  headroom_bytes=128 * MI, first_fail=None, ended_by="range_end", required=None, regression_ok=None)),
    ({"unit": "bytes", "headroom": 128 * MI, "headroom_percent": None, "headroom_label": None, "limit_bytes": None},
     "pass",
     dict(ENTRY, headroom=128 * MI, headroom_label="128.0 MiB", unit="bytes", headroom_percent=25.0,
          headroom_bytes=128 * MI)),
    ({"unit": "load", "headroom": 45, "headroom_percent": None, "headroom_label": None, "confirmed": True},
     "inconclusive", dict(ENTRY, headroom=45, headroom_label="load 45%", unit="load", headroom_percent=45.0,
                          headroom_bytes=None,
                          confirmed=True, verdict="inconclusive")),
    ({"headroom": None, "headroom_label": None, "headroom_percent": None, "last_pass": None}, "pass",
     dict(ENTRY, headroom=None, headroom_label="none", headroom_percent=None, headroom_bytes=None)),
])
def test_entry_is_what_awx_tracks(changes, verdict, expected):
    """The per-host figures of chaosfleet_headroom; a size's share needs the target's limit (512 MiB here)."""
    assert headroom.entry(searched(**changes), verdict) == expected


def test_view_of_a_result_without_a_search_is_none():
    reported, _failed, _missing = collect([load("node1_stressor_oom")], [])
    assert headroom.view(reported["node1"]) is None


def test_view_of_the_fixture():
    got = headroom.view(searched())
    assert (got["mode"], got["range"], got["ended_by"], got["headroom"], got["probes"]) == (
        "step", "20% to 90%, step 10%", "edge", "60%", ["web", "errors"])
    assert got["ended_text"] == "found the edge" and got["source"] == "the run at the first failing level (70%)"
    assert [(c["probe"], c["figure"], c["slo"]) for c in got["charts"]] == [
        ("web", "latency p95 (ms)", "SLO p95 ≤ 300 ms"),
        ("errors", "value (max during the hold)", "SLO value ≤ 0.05")]


@pytest.mark.parametrize("changes, text", [
    ({"mode": "bisect", "range": {"from": 20, "to": 90, "step": 5}}, "20% to 90%, resolution 5%"),
    ({"unit": "load", "range": {"from": 25, "to": 95, "step": 10}}, "load 25% to load 95%, step 10%"),
])
def test_range_text(changes, text):
    assert headroom.view(searched(**changes))["range"] == text


def test_charts_of_a_probe_without_an_slo_show_its_pass_rate():
    levels = [(i, {"probes": [{"name": "web", "ok": True, "pass_rate": 100.0 - i, "slo": None}]}) for i in range(6)]
    [chart] = headroom.charts(searched(levels=levels)["search"])
    assert (chart["figure"], chart["slo"]) == ("pass rate", "no SLO figure")
    assert (chart["chart"]["y_min"], chart["chart"]["y_max"]) == (0.0, 100.0) and chart["chart"]["hlines"] == []


# ---------------------------------------------------------------- a search as plugin_utils/_search.py builds it

SEARCH_VARS = {"search_from": "20%", "search_to": "90%", "search_step": "10%", "search_hold": "30s",
               "search_recovery_timeout": "60s", "search_limit_margin": "5%", "search_max_edge_percent": "100",
               "search_min_headroom": "50%", "search_on_edge": "stop", "allow_oom": False}
WEB_P95 = {20: 48.0, 30: 52.0, 40: 61.0, 50: 88.0, 60: 174.0, 70: 412.0, 80: 900.0, 90: 2000.0}


def level_result(level):
    """A level's result as the role assembles it: web's figures during the stress phase, failing above 300 ms."""
    broke = WEB_P95[level] > 300
    probe = {"name": "web", "type": "http", "ok": not broke, "failures": 3 if broke else 0, "checks": 30,
             "detail": "p95 %g ms" % WEB_P95[level],
             "phases": {"stress": {"checks": 30, "passed": 27 if broke else 30,
                                   "latency_ms": {"p50": WEB_P95[level] / 3, "p95": WEB_P95[level]}}}}
    return {"experiment": "checkout-L%02d" % (level // 10 - 2), "status": "finished", "reason": "deadline",
            "target": {"limit_bytes": 512 * MI}, "request": {"memory_bytes": int(level / 100.0 * 512 * MI)},
            "summary": {"working_set_bytes": {"mean": (120 + level * 5.12) * MI,
                                              "max": int((125 + level * 5.12) * MI)}},
            "steady_state": {"held": not broke, "probes": [probe]},
            "recovery": {"recovered": True, "seconds": 3.0}, "oom_kills": []}


def searched_by_search_py(mode):
    spec, problems = _search.parse(dict(SEARCH_VARS, search=mode), "memory")
    assert problems == []
    slos = {"web": {"figure": "latency_p95_ms", "comparator": "<=", "threshold": 300.0}}
    state, record = _search.start(spec), None
    while not state["done"]:
        index = state["next"]
        result = level_result(spec["grid"][index])
        entry_ = _search.level_entry(spec, index, result, slos=slos)
        record = _search.keep_record(record, entry_, result)
        state = _search.advance(spec, state, entry_)
    found = _search.headroom(spec, state)
    result = _search.as_result(found, dict(load("node1_stressor_oom"), **record["result"]), "checkout", "node1")
    reported, _failed, _missing = collect([result], [])
    return reported["node1"]


@pytest.mark.parametrize("mode, ran", [("step", [20, 30, 40, 50, 60, 70]), ("bisect", [50, 70, 60])])
def test_a_search_built_by_the_search_code_reads_the_same_in_either_mode(mode, ran):
    result = searched_by_search_py(mode)
    got = headroom.view(result)
    assert got["answer"] == HEAD + "; it broke at 70%: probe web p95 412 ms > SLO 300 ms; required at least 50%: met"
    assert [row["label"] for row in got["rows"]] == ["%d%%" % level for level in ran]
    assert [row["outcome"] for row in got["rows"]] == ["fail" if level == 70 else "pass" for level in ran]
    [chart] = got["charts"]
    assert [band["css"] for band in chart["chart"]["bands"]] == ["edge"]
    ticks = [tick["label"] for tick in chart["chart"]["x_ticks"]]
    assert ticks == ["20%", "30%", "40%", "50%", "60%", "70%", "80%", "90%"]
    assert headroom.entry(result, "pass") == dict(ENTRY, headroom_bytes=int(0.6 * 512 * MI))
