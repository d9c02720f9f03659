"""The headroom search's decisions (plugin_utils/_search.py), as tables."""

import pytest

from ansible_collections.chaosfleet.stress.plugins.plugin_utils import _search

MIB = 1024 * 1024
BASE = {"search": "step", "search_from": "10%", "search_to": "90%", "search_step": "10%", "search_hold": "10s",
        "search_recovery_timeout": "30s", "search_limit_margin": "5%", "search_max_edge_percent": "100",
        "search_min_headroom": "", "search_on_edge": "stop", "allow_oom": False}


def spec_of(kind="memory", **change):
    spec, problems = _search.parse(dict(BASE, **change), kind)
    assert problems == [], problems
    return spec


@pytest.mark.parametrize("kind, change, unit, grid", [
    ("memory", {}, "percent", [10, 20, 30, 40, 50, 60, 70, 80, 90]),
    # The top of the range is always a level, even off the step.
    ("memory", {"search_to": "85%"}, "percent", [10, 20, 30, 40, 50, 60, 70, 80, 85]),
    # Without allow_oom, no level alone passes the limit minus the margin.
    ("memory", {"search_to": "100%"}, "percent", [10, 20, 30, 40, 50, 60, 70, 80, 90, 95]),
    ("memory", {"search_to": "100%", "allow_oom": True}, "percent", [10, 20, 30, 40, 50, 60, 70, 80, 90, 100]),
    ("memory", {"search_from": "64Mi", "search_to": "256Mi", "search_step": "64Mi"}, "bytes",
     [64 * MIB, 128 * MIB, 192 * MIB, 256 * MIB]),
    ("memory", {"search_from": "12.5%", "search_to": "50%", "search_step": "12.5%"}, "percent", [12.5, 25, 37.5, 50]),
    ("cpu", {"search_from": "20", "search_to": "100", "search_step": "40"}, "load", [20, 60, 100]),
    ("cpu", {"search_from": "20%", "search_to": "60%", "search_step": "20%"}, "load", [20, 40, 60]),
])
def test_grid(kind, change, unit, grid):
    spec = spec_of(kind, **change)
    assert (spec["unit"], spec["grid"]) == (unit, grid)


@pytest.mark.parametrize("kind, change, words", [
    ("memory", {"search": "binary"}, "must be step or bisect"),
    ("io", {}, "memory or cpu"),
    ("memory", {"search_from": ""}, "experiment_search_from must be set"),
    ("memory", {"search_step": "10Mi"}, "percentages of the limit or all sizes"),
    ("memory", {"search_from": "0%"}, "above 0%"),
    ("memory", {"search_to": "120%"}, "at most 100%"),
    ("memory", {"search_from": "96%", "search_to": "100%"}, "clamped to the limit minus"),
    ("memory", {"search_from": "50%", "search_to": "20%"}, "above experiment_search_to"),
    ("memory", {"search_step": "1%", "search_from": "1%", "search_to": "90%"}, "at most 50"),
    ("memory", {"search_hold": "soon"}, "experiment_search_hold"),
    ("memory", {"search_hold": "0s"}, "experiment_search_hold"),
    ("memory", {"search_on_edge": "retreat"}, "stop or last_pass"),
    ("memory", {"search_limit_margin": "32Mi"}, "share of the memory limit"),
    ("memory", {"search_max_edge_percent": "150"}, "from 0 to 100"),
    ("memory", {"search_min_headroom": "lots"}, "experiment_search_min_headroom"),
    ("cpu", {"search_from": "0"}, "CPU load"),
    ("cpu", {"search_to": "150"}, "CPU load"),
])
def test_bad_inputs_name_the_variable(kind, change, words):
    spec, problems = _search.parse(dict(BASE, **change), kind)
    assert spec is None and any(words in p for p in problems), problems


@pytest.mark.parametrize("change, index, want", [
    ({}, 2, {"memory_size": "30%", "memory_target_usage": "", "max_working_set": "95%"}),
    ({"allow_oom": True}, 2, {"memory_size": "30%", "memory_target_usage": ""}),
    ({"search_from": "64Mi", "search_to": "128Mi", "search_step": "32Mi"}, 1,
     {"memory_size": str(96 * MIB), "memory_target_usage": "", "max_working_set": "95%"}),
])
def test_level_vars_carry_the_size_the_hold_and_the_guard(change, index, want):
    out = _search.level_vars(spec_of(**change), "chk", 3, index, interval=2)
    # The hold, plus two intervals for the stress to reach its size before the probes judge it.
    assert out["name"] == "chk-L03" and out["duration"] == "14s" and out["recovery_timeout"] == "30s"
    assert out["report"] is False and out["fail_on_abort"] is False and out["abort_on_app_oom_kill"] is True
    assert dict((k, out[k]) for k in want) == want and set(want) <= set(out)
    assert "max_working_set" in out or "max_working_set" not in want


def test_a_users_own_working_set_guard_is_kept():
    assert "max_working_set" not in _search.level_vars(spec_of(), "chk", 1, 0, user_max_working_set="80%")


def test_cpu_levels_set_the_load():
    out = _search.level_vars(spec_of("cpu", search_from="20", search_to="100", search_step="20"), "c", 1, 2)
    assert out["cpu_load"] == 60 and "memory_size" not in out


# ---------------------------------------------------------------- levels


def result(held=True, reason="deadline", status="finished", kills=(), recovered=True, recovery_failed=False,
           failures=0, mean=100 * MIB, limit=500 * MIB, probes=None):
    probe = {"name": "web", "type": "http", "ok": held and not recovery_failed, "failures": failures,
             "recovery_failed": recovery_failed, "detail": "p95 too slow" if not held else "held",
             "pass_rate": 100.0 if held else 50.0, "latency_ms": {"p50": 9.0, "p95": 30.0},
             "phases": {"stress": {"checks": 4, "passed": 4 if held else 2, "latency_ms": {"p50": 12.0, "p95": 40.0},
                                   "value": None}}}
    return {"format_version": 1, "experiment": "chk-L01", "status": status, "reason": reason,
            "oom_kills": [dict(k) for k in kills], "target": {"limit_bytes": limit},
            "summary": {"working_set_bytes": {"mean": mean, "max": mean + MIB}},
            "steady_state": {"held": held and not recovery_failed, "probes": [probe] if probes is None else probes},
            "recovery": {"recovered": recovered, "within_percent": 10, "timeout_seconds": 30}}


@pytest.mark.parametrize("case, args, want", [
    ("held", (result(),), ("pass", None)),
    ("a probe broke", (result(held=False, failures=2),), ("fail", ("probe", "web"))),
    ("the app was OOM-killed", (result(kills=[{"victim": "app", "comm": "java", "pid": 7}]),),
     ("fail", ("guard", "app_oom"))),
    ("only stress-ng was OOM-killed", (result(kills=[{"victim": "stressor", "comm": "stress-ng", "pid": 8}]),),
     ("pass", None)),
    ("the node ended it at the limit minus the margin", (result(reason="guard:max_working_set", status="stopped"),),
     ("fail", ("guard", "limit_margin"))),
    ("preflight refused a higher level", (None, "would pass the limit"), ("fail", ("guard", "preflight"))),
    ("no result", (None, "", "lost contact"), ("error", ("error", "error"))),
    ("could not attach", (result(reason="attach_failed", status="failed"),), ("error", ("error", "error"))),
    # A level cannot pass on probes that never looked at it.
    ("no check during the level", (result(probes=[{"name": "web", "ok": True, "phases": {"baseline": {"checks": 1}}}]),),
     ("error", ("error", "unchecked"))),
    ("no probes: only the guards judge", (result(probes=[]),), ("pass", None)),
    # A probe that only failed after the recovery window is the recovery's problem, not the level's edge.
    ("late probe failure", (result(recovery_failed=True),), ("pass", None)),
])
def test_level_outcome(case, args, want):
    outcome, failed_by = _search.level_outcome(*args)
    assert (outcome, failed_by and (failed_by["kind"], failed_by["name"])) == want, case


def test_preflight_refusal_of_the_first_level_is_an_error():
    outcome, failed_by = _search.level_outcome(None, "stress-ng is missing", first=True)
    assert outcome == "error" and "stress-ng" in failed_by["detail"]


@pytest.mark.parametrize("res, problem", [
    (result(), ""),
    (result(recovered=False), "did not come back within 10% of its baseline in 30 s"),
    # The stress's memory is gone (below the band, or the anonymous memory is back): only the page cache is off.
    (dict(result(), recovery={"recovered": False, "below_baseline": True, "stress_released": True}), ""),
    (dict(result(), recovery={"recovered": False, "below_baseline": False, "anon_back": True,
                              "stress_released": True}), ""),
    (dict(result(), recovery={"recovered": False, "below_baseline": False, "anon_back": False,
                              "stress_released": False, "within_percent": 10, "timeout_seconds": 30}),
     "did not come back within 10% of its baseline in 30 s"),
    (result(recovery_failed=True), "probe web still failed after the recovery window"),
    ({"failed": True, "msg": "x"}, ""),
])
def test_recovery_problem(res, problem):
    out = _search.recovery_problem(res)
    assert (problem in out) if problem else out == ""


def test_level_entry_reads_the_stress_phase_figures():
    slos = _search.probe_slos([{"name": "web", "type": "http", "max_latency": 0.3}])
    entry = _search.level_entry(spec_of(), 4, result(), slos=slos)
    assert entry["level"] == 50 and entry["label"] == "50%" and entry["outcome"] == "pass"
    assert entry["working_set"] == {"mean_bytes": 100 * MIB, "max_bytes": 101 * MIB, "percent_of_limit": 20.0}
    web = entry["probes"][0]
    assert web["latency_ms"] == {"p50": 12.0, "p95": 40.0} and web["pass_rate"] == 100.0
    assert web["slo"] == {"figure": "latency_p95_ms", "comparator": "<=", "threshold": 300.0}


@pytest.mark.parametrize("probe, slo", [
    ({"name": "p", "type": "prometheus", "comparator": "<", "threshold": 0.3}, {"figure": "value", "comparator": "<",
                                                                                "threshold": 0.3}),
    ({"name": "h", "type": "http", "max_latency": 0.25}, {"figure": "latency_p95_ms", "comparator": "<=",
                                                          "threshold": 250.0}),
    ({"name": "k", "type": "kubernetes"}, {"figure": "pass_rate", "comparator": ">=", "threshold": 100.0}),
])
def test_probe_slos(probe, slo):
    assert _search.probe_slos([probe]) == {probe["name"]: slo}


# ---------------------------------------------------------------- walking the grid


def walk(spec, edge_at, guard_at=None, recovery_fails_at=None):
    """Run a search against a service that breaks from grid index ``edge_at`` up; returns (state, indices run)."""
    state, ran = _search.start(spec), []
    while not state["done"]:
        index = state["next"]
        ran.append(index)
        res = result(held=index < edge_at, failures=0 if index < edge_at else 3,
                     recovered=index != recovery_fails_at)
        if guard_at is not None and index >= guard_at:
            res = result(kills=[{"victim": "app", "comm": "app", "pid": 1}])
        state = _search.advance(spec, state, _search.level_entry(spec, index, res, first=not state["levels"]))
    return state, ran


@pytest.mark.parametrize("mode, edge_at, ran, ended_by, bracket", [
    ("step", 5, [0, 1, 2, 3, 4, 5], "edge", (50, 60)),
    ("step", 0, [0], "edge", (None, 10)),
    ("step", 99, [0, 1, 2, 3, 4, 5, 6, 7, 8], "range_end", (90, None)),
    ("bisect", 5, [4, 6, 5], "edge", (50, 60)),
    ("bisect", 0, [4, 1, 0], "edge", (None, 10)),
    ("bisect", 99, [4, 6, 7, 8], "range_end", (90, None)),
])
def test_step_and_bisect_walk_the_same_grid(mode, edge_at, ran, ended_by, bracket):
    spec = spec_of(search=mode)
    state, indices = walk(spec, edge_at)
    assert indices == ran and state["ended_by"] == ended_by
    found = _search.headroom(spec, state)
    assert (found["last_pass"], found["first_fail"]) == bracket
    assert len(indices) <= _search.rounds(spec)


@pytest.mark.parametrize("edge_at", range(0, 10))
def test_step_and_bisect_agree_on_the_bracket(edge_at):
    found = [_search.headroom(spec_of(search=m), walk(spec_of(search=m), edge_at)[0]) for m in ("step", "bisect")]
    assert (found[0]["last_pass"], found[0]["first_fail"]) == (found[1]["last_pass"], found[1]["first_fail"])


def test_an_app_oom_kill_ends_a_bisection_at_once():
    state, ran = walk(spec_of(search="bisect"), edge_at=99, guard_at=4)
    assert ran == [4] and state["ended_by"] == "app_oom"
    found = _search.headroom(spec_of(search="bisect"), state)
    assert found["verdict"] == "fail" and "OOM killer took the application at 50%" in " ".join(found["notes"])


def test_an_app_oom_kill_ends_the_search_even_when_the_app_does_not_recover():
    spec = spec_of()
    res = result(kills=[{"victim": "app", "comm": "java", "pid": 7}], recovered=False)
    state = _search.advance(spec, _search.start(spec), _search.level_entry(spec, 0, res))
    assert state["ended_by"] == "app_oom" and state["edge"]["name"] == "app_oom"


def test_a_failed_recovery_aborts_the_search():
    state, ran = walk(spec_of(), edge_at=3, recovery_fails_at=3)
    assert ran == [0, 1, 2, 3] and state["ended_by"] == "recovery"
    found = _search.headroom(spec_of(), state)
    assert found["verdict"] == "fail" and "did not recover" in " ".join(found["notes"])


def test_an_error_ends_the_search_as_an_error():
    spec = spec_of()
    state = _search.advance(spec, _search.start(spec), _search.level_entry(spec, 0, None, error="unreachable"))
    assert state["done"] and state["ended_by"] == "error"
    assert _search.headroom(spec, state)["verdict"] == "error"


@pytest.mark.parametrize("minimum, edge_at, ok", [
    ("40%", 5, True),       # held up to 50%
    ("50%", 5, True),
    ("60%", 5, False),
    ("200Mi", 5, True),     # 50% of 500 MiB = 250 MiB
    ("300Mi", 5, False),
])
def test_regression_against_min_headroom(minimum, edge_at, ok):
    spec = spec_of(search_min_headroom=minimum)
    found = _search.headroom(spec, walk(spec, edge_at)[0])
    assert found["regression"]["ok"] is ok
    assert found["verdict"] == ("pass" if ok else "fail")


def test_headroom_as_numbers_for_awx():
    spec = spec_of()
    found = _search.headroom(spec, walk(spec, 5)[0])
    assert _search.host_stats(found) == {"headroom": 50, "unit": "percent", "headroom_percent": 50.0,
                                         "headroom_bytes": 250 * MIB, "first_fail": 60, "ended_by": "edge",
                                         "verdict": "pass"}
    assert found["notes"] == [] and found["edge"]["name"] == "web"


@pytest.mark.parametrize("states, share, stop", [
    ({"a": {"done": True, "ended_by": "edge"}, "b": {"done": False}}, 100, False),
    ({"a": {"done": True, "ended_by": "edge"}, "b": {"done": False}}, 50, False),   # 50% is not more than 50%
    ({"a": {"done": True, "ended_by": "edge"}, "b": {"done": False}, "c": {"done": False}}, 30, True),
    ({"a": {"done": True, "ended_by": "range_end"}, "b": {"done": False}}, 0, False),  # no edge below the top
    ({"a": {"done": True, "ended_by": "app_oom"}, "b": {"done": False}}, 0, True),
    ({}, 0, False),
])
def test_fleet_stop(states, share, stop):
    assert _search.fleet_stop(states, share)[0] is stop


def test_a_fleet_stop_leaves_a_lower_bound():
    spec = spec_of()
    state = _search.advance(spec, _search.start(spec), _search.level_entry(spec, 0, result()))
    stopped = _search.stop_for_fleet(state)
    found = _search.headroom(spec, stopped)
    assert (found["ended_by"], found["last_pass"], found["first_fail"]) == ("fleet_stop", 10, None)
    assert found["verdict"] == "pass" and found["headroom_label"] == "10%"


def test_the_record_is_the_tightest_failing_level_else_the_highest_pass():
    spec = spec_of(search="bisect")
    record = None
    for index, held in ((4, True), (6, False), (5, False)):
        res = dict(result(held=held, failures=0 if held else 2), experiment="L%d" % index)
        record = _search.keep_record(record, _search.level_entry(spec, index, res), res)
    assert record["index"] == 5 and record["result"]["experiment"] == "L5"
    out = _search.as_result(_search.headroom(spec, {"lo": 4, "hi": 5, "levels": [], "ended_by": "edge", "edge": None,
                                                    "done": True}), record["result"], "chk", "node1")
    assert out["experiment"] == "chk" and out["host"] == "node1" and out["search"]["first_fail"] == 60


@pytest.mark.parametrize("mode, count, rounds", [("step", 9, 9), ("bisect", 9, 5), ("bisect", 1, 2), ("bisect", 3, 3)])
def test_rounds_cover_the_search(mode, count, rounds):
    spec = dict(spec_of(search=mode), grid=list(range(count)))
    assert _search.rounds(spec) == rounds
    for edge in range(count + 1):
        spec_e = spec
        state = _search.start(spec_e)
        taken = 0
        while not state["done"]:
            taken += 1
            index = state["next"]
            ok = index < edge
            entry = {"index": index, "outcome": "pass" if ok else "fail", "recovery": {},
                     "failed_by": None if ok else {"kind": "probe", "name": "web"}}
            state = _search.advance(spec_e, state, entry)
        assert taken <= rounds


@pytest.mark.parametrize("search_level, timeout, window", [
    (True, "30s", 30.0),
    (False, "30s", 0),      # outside a search: one round after recovery, as always
    (True, "soon", 0),
])
def test_recovery_probe_window(search_level, timeout, window):
    assert _search.recovery_probe_window(search_level, timeout) == window
