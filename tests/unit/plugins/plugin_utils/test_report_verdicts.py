"""Verdicts: what was asked and achieved, how a stress ended, each host's verdict (a search's too), the overall one."""

import pytest

from ansible_collections.chaosfleet.stress.plugins.plugin_utils._report_input import collect
from ansible_collections.chaosfleet.stress.plugins.plugin_utils._report_verdicts import (
    ended_text, host_verdict, interrupted_text, overall_verdict, requested_and_achieved, requested_cores,
    search_verdict,
)
from tests.unit.reportfix import MI, load


def normalized(result):
    reported, _failed, _missing = collect([result], [])
    return reported[result["host"]]


def result_with(name="node1_stressor_oom", **changes):
    result = load(name)
    for key, value in changes.items():
        if key == "held":
            result["steady_state"]["held"] = value
        elif key == "recovered":
            result["recovery"]["recovered"] = value
        elif key == "search":
            result["search"].update(value)
        else:
            result[key] = value
    return result


APP_KILL = [{"t": 1764316820.0, "pid": 77, "comm": "java", "victim": "app", "group_kill": False, "source": "dmesg"}]
INTERRUPTED = {"signal": "SIGINT", "cause": "SIGINT", "at": 1764316810.0, "stopped": True,
               "stopped_at": 1764316811.5, "msg": ""}


@pytest.mark.parametrize("result, options, verdict, note", [
    (result_with(), {}, "pass", None),
    (result_with(held=False), {}, "fail", "steady state broke"),
    (result_with(steady_state={"held": False, "probes": [{"name": "web", "ok": False, "detail": "3 of 9 failed"}]}), {},
     "fail", "steady state broke: probe web 3 of 9 failed"),
    (result_with(recovered=False), {}, "fail", "working set not back within 5% of baseline after 30s"),
    (result_with(recovery={"recovered": False, "seconds": None, "within_percent": None, "timeout_seconds": None}),
     {}, "fail", "working set not back to baseline"),
    (result_with(oom_kills=APP_KILL), {}, "fail", "OOM killer took app process java (pid 77)"),
    (result_with(oom_kills=APP_KILL), {"fail_on_app_oom": False}, "pass", "OOM killer took app process java (pid 77)"),
    (result_with(held=None), {}, "inconclusive", "no steady-state probes"),
    (result_with(status="running"), {}, "inconclusive", "result collected while the stress was still running"),
    (result_with(interrupted=INTERRUPTED), {}, "inconclusive",
     "interrupted (SIGINT) at 2025-11-28 08:00:10 UTC; the stop guard stopped it at 2025-11-28 08:00:11 UTC "
     "(1.5 s later)"),
    (result_with(achieved={"working_set_increase_bytes": 100 * MI, "cpu_cores": 1.0}), {}, "inconclusive",
     "stress reached only 26% of what was asked (capped by the limit or quota)"),  # 100 of 392 MiB room
    (result_with(achieved={"working_set_increase_bytes": 100 * MI, "cpu_cores": 1.0}),
     {"achieved_min_percent": 20.0}, "pass", None),
    (result_with(samples=[], status="aborted", reason="attach_failed"), {}, "error", "no samples recorded"),
    (result_with("node4_cpu_throttled"), {}, "pass", None),
])
def test_host_verdict(result, options, verdict, note):
    got_verdict, notes = host_verdict(normalized(result), **options)
    assert got_verdict == verdict
    if note:
        assert note in notes


SEARCH_NOTES = ["the steady state held up to 60% of its memory limit; it broke at 70% (probe web: p95 412 ms > "
                "SLO 300 ms)", "headroom 60% meets the required 50%"]


@pytest.mark.parametrize("changes, verdict, notes", [
    # The edge level's own record broke the steady state: that is what the search looked for.
    ({}, "pass", SEARCH_NOTES),
    ({"verdict": "fail", "notes": ["regression: headroom 60% is below the required 70%"]}, "fail",
     ["regression: headroom 60% is below the required 70%"]),
    ({"verdict": "error", "notes": ["the search did not finish"]}, "error", ["the search did not finish"]),
    # Without a verdict of its own, the rules.
    ({"verdict": None, "notes": []}, "pass", []),
    ({"verdict": None, "notes": [], "regression": {"required": 70, "required_label": "70%", "ok": False}}, "fail",
     ["headroom below the required 70%"]),
    ({"verdict": None, "notes": [], "ended_by": "recovery"}, "fail",
     ["the target did not recover after a level; the search was aborted"]),
    ({"verdict": None, "notes": [], "ended_by": "error"}, "error", ["the search ended on a level that could not run"]),
    ({"verdict": None, "notes": [], "ended_by": "range_end", "first_fail": None, "edge": None}, "pass", []),
    ({"verdict": None, "notes": [], "ended_by": "fleet_stop", "first_fail": None, "edge": None}, "pass", []),
])
def test_a_search_takes_its_own_verdict(changes, verdict, notes):
    result = normalized(result_with("node1_search_memory", search=changes))
    assert search_verdict(result["search"]) == (verdict, notes)
    assert host_verdict(result) == (verdict, notes)


@pytest.mark.parametrize("search_verdict_, expected", [("pass", "inconclusive"), ("fail", "fail"),
                                                       ("error", "error")])
def test_an_interrupted_search_is_at_best_inconclusive(search_verdict_, expected):
    result = normalized(result_with("node1_search_memory", interrupted=INTERRUPTED,
                                    search={"verdict": search_verdict_}))
    verdict, notes = host_verdict(result)
    assert verdict == expected
    assert notes[0].startswith("interrupted (SIGINT)") and notes[1:] == SEARCH_NOTES


@pytest.mark.parametrize("verdicts, failed, missing, expected", [
    (["pass", "pass"], {}, [], "pass"),
    (["pass"], {}, ["n2"], "inconclusive"),
    (["pass"], {"n2": "x"}, [], "error"),
    (["pass", "fail"], {"n2": "x"}, ["n3"], "fail"),
    ([], {}, ["n1"], "inconclusive"),
    ([], {}, [], "error"),
])
def test_overall_verdict(verdicts, failed, missing, expected):
    assert overall_verdict(verdicts, failed, missing) == expected


@pytest.mark.parametrize("name, changes, expected", [
    ("node1_stressor_oom", {}, {"requested": "+400.0 MiB, ramp 20s", "achieved": "+358.0 MiB",
                                "share": "90% of requested", "percent": 91.3}),
    ("node2_app_oom", {}, {"requested": "to 360.0 MiB (+160.0 MiB), ramp 16s", "achieved": "+160.0 MiB",
                           "share": "100% of requested", "percent": 100.0}),
    # 0.48 extra cores for 100% of a 0.5-core quota asked: load is a share of the quota.
    ("node4_cpu_throttled", {}, {"requested": "100% of the 0.50-core quota = 0.50 cores", "achieved": "0.48 cores",
                                 "share": "96% of requested", "percent": 96.0}),
    ("node1_stressor_oom", {"achieved": {"working_set_increase_bytes": None}},
     {"requested": "+400.0 MiB, ramp 20s", "achieved": "n/a", "share": "", "percent": None}),
    ("node1_stressor_oom", {"request": {"kind": "io", "workers": 2}}, {"requested": "2 io workers", "achieved": "n/a",
                                                                       "share": "", "percent": None}),
])
def test_requested_and_achieved(name, changes, expected):
    result = normalized(result_with(name, **changes))
    got = requested_and_achieved(result)
    assert dict(got, percent=None if got["percent"] is None else round(got["percent"], 1)) == expected


@pytest.mark.parametrize("request_, quota, expected", [
    ({"cpu_cores": 1.5}, 2.0, 1.5),
    ({"cpu_load_percent": 50}, 2.0, 1.0),
    ({"cpu_load_percent": None, "workers": 3}, None, 3.0),
    ({"cpu_load_percent": 25, "workers": 2}, None, 0.5),
])
def test_requested_cores(request_, quota, expected):
    assert requested_cores({"request": request_, "target": {"cpu_quota_cores": quota}}) == expected


@pytest.mark.parametrize("status, reason, expected", [
    ("stopped", "guard:oom_kills", "stopped by guard oom_kills"),
    ("stopped", "stop", "stopped on request"),
    ("aborted", "target_gone", "target container went away"),
    ("running", "deadline", "still running when collected"),
    ("stopped", "something_new", "something_new"),
    ("stopped", None, "unknown"),
])
def test_ended_text(status, reason, expected):
    assert ended_text({"status": status, "reason": reason}) == expected


@pytest.mark.parametrize("interrupted, expected", [
    (None, ""),
    (dict(INTERRUPTED, stopped=False, msg="ssh: timeout"),
     "interrupted (SIGINT) at 2025-11-28 08:00:10 UTC; the stop guard could not reach it (ssh: timeout), its "
     "dead-man ended the stress"),
    (dict(INTERRUPTED, signal=None, cause="killed"), "interrupted (killed) at 2025-11-28 08:00:10 UTC; the stop guard "
     "stopped it at 2025-11-28 08:00:11 UTC (1.5 s later)"),
])
def test_interrupted_text(interrupted, expected):
    assert interrupted_text(interrupted) == expected
