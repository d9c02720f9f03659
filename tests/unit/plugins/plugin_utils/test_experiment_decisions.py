"""The experiment role's decisions (plugin_utils/_experiment_decisions.py), one row per decision case."""

import subprocess
from pathlib import Path

import pytest

from ansible_collections.chaosfleet.stress.plugins.module_utils import _state
from ansible_collections.chaosfleet.stress.plugins.plugin_utils import _experiment_decisions

GOOD = {
    "name": "e1", "type": "memory", "container_id": "abc", "memory_size": "32Mi", "memory_target_usage": "",
    "memory_workers": 1, "min_free_percent": 0, "cpu_load": 50, "cpu_workers": 0, "io_workers": 1, "io_size": "64Mi",
    "heartbeat_interval": 5, "duration": "60s", "heartbeat_timeout": "30s", "probe_failure_threshold": 0,
    "max_failed_nodes_percent": 50, "preflight_max_failed_percent": 0, "recovery_within_percent": 10,
    "achieved_min_percent": 80, "oom_score_adj": 1000, "probes": [], "abort_on_app_oom_kill": True,
    "stop_if_target_gone": True, "max_working_set": "", "memory_ramp": "", "memory_method": "",
}

REQUEST_CASES = [
    ("good", {}, None),
    ("survey strings", {"memory_workers": "2", "heartbeat_interval": "5", "probe_failure_threshold": "1"}, None),
    ("bad name", {"name": "../etc"}, "experiment_name must be set"),
    ("bad type", {"type": "disk"}, "experiment_type must be memory, cpu or io (got 'disk')"),
    ("no target", {"container_id": ""}, "no target for experiment e1 on h1"),
    ("two targets", {"pod_uid": "u"}, "experiment_container_id and experiment_pod_uid are all set"),
    ("pid not a number", {"container_id": "", "pid": "x"}, "experiment_pid must be a process ID (got 'x')"),
    ("size and usage", {"memory_target_usage": "50%"}, "exactly one of experiment_memory_size"),
    ("workers text", {"memory_workers": "many"}, "experiment_memory_workers must be a whole number >= 1"),
    ("negative interval", {"heartbeat_interval": "-2"}, "whole seconds >= 1 (got '-2')"),
    ("negative threshold", {"probe_failure_threshold": "-1"}, "whole number >= 0 (got '-1')"),
    ("percent over 100", {"max_failed_nodes_percent": "150"}, "experiment_max_failed_nodes_percent must be"),
    ("cpu load zero", {"type": "cpu", "cpu_load": "0"}, "experiment_cpu_load must be a percent"),
    ("io workers zero", {"type": "io", "io_workers": "0"}, "experiment_io_workers must be"),
    ("probe without url", {"probes": [{"name": "p", "type": "http"}]}, "experiment_probes: probe p: url is required"),
    ("probe timeout", {"probes": [{"name": "p", "url": "http://x/", "timeout": -3}]}, "must be greater than zero"),
    ("probe names twice", {"probes": [{"name": "p", "url": "http://u/"}, {"name": "p", "url": "http://v/"}]},
     "probe name p is used twice"),
    ("probe run_on", {"probes": [{"name": "p", "url": "http://u/", "run_on": "moon"}]}, "run_on must be node or"),
    ("probes as bad YAML", {"probes": "- name: [x"}, "experiment_probes is not YAML"),
    ("probes as YAML, a typo", {"probes": "- name: p\n  url: http://u/\n  staus_code: 200"},
     "unknown option(s) for a http probe: staus_code"),
]


@pytest.mark.parametrize("value, names", [
    ("- name: web\n  url: http://127.0.0.1:8080/\n", ["web"]),
    ('[{"name": "q", "type": "prometheus", "url": "http://p:9090", "query": "up"}]', ["q"]),
    ([{"name": "k", "type": "kubernetes", "namespace": "shop", "pod": "web-1"}], ["k"]),
    ("", []),
    (None, []),
])
def test_probes_from_a_list_or_survey_text(value, names):
    probes, problem = _experiment_decisions.parse_probes(value)
    assert problem == "" and [p["name"] for p in probes] == names


@pytest.mark.parametrize("change, words", [c[1:] for c in REQUEST_CASES], ids=[c[0] for c in REQUEST_CASES])
def test_request(change, words):
    out = _experiment_decisions.request(dict(GOOD, **change), "h1")
    if words is None:
        assert out["problems"] == []
        assert out["memory"]["workers"] == int(change.get("memory_workers", 1))
        assert out["selector"] == {"container_id": "abc"}
    else:
        assert any(words in p for p in out["problems"]), out["problems"]


def test_request_builds_cpu_and_guard():
    out = _experiment_decisions.request(dict(GOOD, type="cpu", cpu_load="75", cpu_workers="2", max_working_set="90%"), "h1")
    assert out["cpu"] == {"load": 75.0, "workers": 2}
    assert out["memory"] is None
    assert out["guard"] == {"stop_on_app_oom_kill": True, "stop_if_target_gone": True, "max_working_set": "90%"}


MEMORY = {"limit_bytes": 100, "baseline_working_set_bytes": 20, "bytes": 50}
PLAN_CASES = [
    ("fits", {"status": "would_start", "plan": {"memory": MEMORY, "heartbeat_timeout_seconds": 30}}, {}, ""),
    ("refused", {"msg": "would take the target over its limit"}, {}, "would take the target over its limit"),
    ("running", {"status": "running"}, {}, "already running on this node"),
    ("ran before", {"status": "finished", "reason": "deadline"}, {}, "already ran on this node (finished, deadline)"),
    ("ran before, replace", {"status": "finished", "plan": {}}, {"replace": True}, ""),
    # Its whole result was kept: the name is done, and the role reports it again.
    ("ran to completion", {"status": "finished", "reason": "deadline", "result_stored": True}, {}, ""),
    ("ran to completion, replace", {"status": "finished", "result_stored": True, "plan": {}}, {"replace": True}, ""),
    ("headroom", {"status": "would_start", "plan": {"memory": MEMORY}}, {"min_free_percent": 40},
     "not enough headroom"),
    ("headroom, oom allowed", {"status": "would_start", "plan": {"memory": MEMORY}},
     {"min_free_percent": 40, "allow_oom": True}, ""),
    ("dead-man too short", {"status": "would_start", "plan": {"heartbeat_timeout_seconds": 15}}, {"interval": 10},
     "must be at least twice experiment_heartbeat_interval"),
    ("oom group", {"status": "would_start", "plan": {}, "target": {"path": "/x"}}, {"oom_group_ack_needed": True},
     "/x has memory.oom.group=1"),
]


@pytest.mark.parametrize("check, options, words", [c[1:] for c in PLAN_CASES], ids=[c[0] for c in PLAN_CASES])
def test_plan_problem(check, options, words):
    kwargs = dict({"interval": 5, "allow_oom": False, "min_free_percent": 0, "replace": False}, **options)
    problem = _experiment_decisions.plan_problem(check, "e1", **kwargs)
    assert (words in problem) if words else problem == ""


def checked(kind="container", limit=5, **extra):
    return dict({"status": "would_start", "target": {"path": "/a", "kind": kind},
                 "limits": {"memory_limit_bytes": limit, "oom_group": False}}, **extra)


TARGET_CASES = [
    ("one container", checked(), "memory", ""),
    ("refused by the stressor", {"msg": "no container matches 'abc'"},
     "memory", "the target or the request was refused: no container matches 'abc'"),
    ("no answer", {}, "memory", "no answer from the stressor"),
    ("pod", checked(kind="pod"), "memory", "the target /a is a pod, not a container"),
    ("no limit", checked(limit=None), "memory", "has no memory limit"),
    ("no limit, cpu stress", checked(limit=None), "cpu", ""),
    # An experiment of this name exists: its report has no limits, and the plan check decides.
    ("existing experiment", {"status": "finished", "target": {"path": "/a", "kind": "container"}}, "memory", ""),
]


@pytest.mark.parametrize("check, kind, words", [c[1:] for c in TARGET_CASES], ids=[c[0] for c in TARGET_CASES])
def test_target_problem(check, kind, words):
    problem = _experiment_decisions.target_problem(check, kind, True)
    assert (words in problem) if words else problem == ""


BASELINE_CASES = [
    ("sampled, no probes", {"results": [{"summary": {}}]}, [], ""),
    ("not sampled", {"msg": "gone"}, [], "the baseline could not be sampled: gone"),
    ("probe failed", {"results": [{}]}, [{"name": "p", "ok": False, "detail": "HTTP 500"}],
     "the steady state cannot be established: probe p failed (HTTP 500)"),
]


@pytest.mark.parametrize("sample, round_, words", [c[1:] for c in BASELINE_CASES], ids=[c[0] for c in BASELINE_CASES])
def test_baseline_problem(sample, round_, words):
    problem = _experiment_decisions.baseline_problem(sample, round_)
    assert (words in problem) if words else problem == ""


GATE_CASES = [
    ("all ready", {"a": "", "b": ""}, ["a", "b"], 0, False, True, {}),
    ("one failed outright", {"a": "", "b": ""}, ["a"], 0, False, False, {"b": "failed before the gate"}),
    ("one not ready, none allowed", {"a": "", "b": "no target"}, ["a", "b"], 0, False, False, {"b": "no target"}),
    ("one of two not ready, half allowed", {"a": "", "b": "x"}, ["a", "b"], 50, False, True, {"b": "x"}),
    ("allowed but any_errors_fatal", {"a": "", "b": "x"}, ["a", "b"], 50, True, False, {"b": "x"}),
]


@pytest.mark.parametrize("hosts, play_hosts, allowed, fatal, start, not_ready", [c[1:] for c in GATE_CASES],
                         ids=[c[0] for c in GATE_CASES])
def test_gate(hosts, play_hosts, allowed, fatal, start, not_ready):
    out = _experiment_decisions.gate(hosts, play_hosts, allowed, fatal)
    assert out["start"] is start
    assert dict((h, w[:len(not_ready[h])]) for h, w in out["not_ready"].items()) == not_ready
    if not start:
        assert "of 2 hosts are not ready" in out["msg"]


SETTINGS = {"participants": ["a", "b"], "interval": 5, "timeout": 30, "threshold": 0, "max_failed_percent": 50,
            "any_errors_fatal": False, "abort_on_app_oom_kill": True}


def beat(status="running", deadline=160.0, reason=None):
    return {"status": status, "deadline": deadline, "reason": reason}


TICK_CASES = [
    # (case, previous state, beats, probe rounds, play hosts, now, settings changes,
    #  (done, abort words, active hosts, wait))
    ("first tick waits an interval", None, {"a": beat(), "b": beat()}, {}, ["a", "b"], 100.0, {},
     (False, "", ["a", "b"], 5.0)),
    ("a slow round waits less", {"tick_end": 97.0}, {"a": beat(), "b": beat()}, {}, ["a", "b"], 100.0, {},
     (False, "", ["a", "b"], 2.0)),
    ("near the deadline waits just past it", None, {"a": beat(deadline=102.0), "b": beat(deadline=101.0)}, {},
     ["a", "b"], 100.0, {}, (False, "", ["a", "b"], 2.5)),
    ("all reached the deadline", None, {"a": beat("finished"), "b": beat("finished")}, {}, ["a", "b"], 100.0, {},
     (True, "", [], 0.0)),
    ("probe failed over threshold", None, {"a": beat(), "b": beat()},
     {"a": [{"name": "web", "ok": False, "detail": "HTTP 500"}]}, ["a", "b"], 100.0, {},
     (True, "probe web failed 1 times on a (HTTP 500), more than the threshold of 0", ["a", "b"], 0.0)),
    ("probe failure within threshold", None, {"a": beat(), "b": beat()},
     {"a": [{"name": "web", "ok": False, "detail": "HTTP 500"}]}, ["a", "b"], 100.0, {"threshold": 1},
     (False, "", ["a", "b"], 5.0)),
    ("app OOM kill", None, {"a": beat("stopped", reason="guard:app_oom_kill"), "b": beat()}, {}, ["a", "b"],
     100.0, {}, (True, "the OOM killer took an application process on a", ["b"], 0.0)),
    ("app OOM kill, not an abort condition", None, {"a": beat("stopped", reason="guard:app_oom_kill"),
                                                    "b": beat()}, {}, ["a", "b"], 100.0,
     {"abort_on_app_oom_kill": False}, (False, "", ["b"], 5.0)),
    ("one of two failed: 50% is allowed", None, {"b": beat()}, {}, ["b"], 100.0, {},
     (False, "", ["b"], 5.0)),
    ("one of two failed with any_errors_fatal", None, {"b": beat()}, {}, ["b"], 100.0, {"any_errors_fatal": True},
     (True, "1 of 2 nodes failed (a), more than 0%", ["b"], 0.0)),
    ("missed heartbeat is tolerated", {"hosts": {"a": {"status": "running", "active": True, "last_beat": 90.0,
                                                       "probes": {}, "deadline": 160.0},
                                                 "b": {"status": "running", "active": True, "last_beat": 90.0,
                                                       "probes": {}, "deadline": 160.0}}},
     {"a": {"msg": "Timed out"}, "b": beat()}, {}, ["a", "b"], 100.0, {}, (False, "", ["a", "b"], 5.0)),
    ("no heartbeat for the dead-man time: lost", {"hosts": {
        "a": {"status": "running", "active": True, "last_beat": 60.0, "probes": {}, "deadline": 160.0},
        "b": {"status": "running", "active": True, "last_beat": 90.0, "probes": {}, "deadline": 160.0}}},
     {"a": {"msg": "Timed out"}, "b": beat()}, {}, ["a", "b"], 100.0, {"max_failed_percent": 0},
     (True, "1 of 2 nodes failed (a), more than 0%", ["b"], 0.0)),
    ("an abort sticks", {"abort_reason": "earlier"}, {"a": beat(), "b": beat()}, {}, ["a", "b"], 100.0, {},
     (True, "earlier", ["a", "b"], 0.0)),
    # A search level: each host ends its own stress when its steady state breaks; the others hold theirs.
    ("independent: a broken probe stops only its host", None, {"a": beat(), "b": beat()},
     {"a": [{"name": "web", "ok": False, "detail": "HTTP 500"}]}, ["a", "b"], 100.0, {"independent": True},
     (False, "", ["b"], 0.0)),
    ("independent: an app OOM kill stops only its host", None,
     {"a": beat("stopped", reason="guard:app_oom_kill"), "b": beat()}, {}, ["a", "b"], 100.0, {"independent": True},
     (False, "", ["b"], 5.0)),
    ("independent: every host broke", None, {"a": beat(), "b": beat()},
     {"a": [{"name": "web", "ok": False, "detail": "x"}], "b": [{"name": "web", "ok": False, "detail": "y"}]},
     ["a", "b"], 100.0, {"independent": True}, (True, "", [], 0.0)),
    ("independent: too many lost nodes still abort everywhere", None, {"b": beat()}, {}, ["b"], 100.0,
     {"independent": True, "max_failed_percent": 0}, (True, "1 of 2 nodes failed (a), more than 0%", ["b"], 0.0)),
]


@pytest.mark.parametrize("state, beats, rounds, play_hosts, now, change, want", [c[1:] for c in TICK_CASES],
                         ids=[c[0] for c in TICK_CASES])
def test_tick(state, beats, rounds, play_hosts, now, change, want):
    done, abort, active, wait = want
    out = _experiment_decisions.tick(state, beats, rounds, play_hosts, now, dict(SETTINGS, **change))
    assert out["done"] is done
    assert (abort in out["abort_reason"]) if abort else out["abort_reason"] == ""
    assert sorted(h for h, s in out["hosts"].items() if s["active"]) == active
    assert out["wait"] == wait
    # Only an independent host whose steady state broke is stopped on its own (the others by the rollback).


@pytest.mark.parametrize("independent, rounds, want", [
    (True, {"a": [{"name": "web", "ok": False, "detail": "x"}]}, ["a"]),
    (True, {"a": [{"name": "web", "ok": False, "detail": "x"}], "b": [{"name": "web", "ok": False, "detail": "y"}]},
     ["a", "b"]),
    (True, {}, []),
    # Not a search: the abort stops everyone through the rollback, nobody on their own.
    (False, {"a": [{"name": "web", "ok": False, "detail": "x"}]}, []),
])
def test_tick_stops_only_the_independent_hosts_whose_steady_state_broke(independent, rounds, want):
    out = _experiment_decisions.tick(None, {"a": beat(), "b": beat()}, rounds, ["a", "b"], 100.0,
                                     dict(SETTINGS, independent=independent))
    assert out["stop"] == want
    assert all(out["hosts"][h]["status"] == "edge" and "probe web failed" in out["hosts"][h]["edge"] for h in want)


def test_tick_a_host_whose_task_failed_is_failed_and_counted():
    out = _experiment_decisions.tick(None, {"a": beat(), "b": beat()}, {}, ["a", "b"], 100.0, dict(SETTINGS, max_failed_percent=0),
                                     errors={"a": "Probe the steady state failed: boom"})
    assert out["hosts"]["a"]["status"] == "failed" and not out["hosts"]["a"]["active"]
    assert out["done"] and "1 of 2 nodes failed (a)" in out["abort_reason"]


def test_tick_counts_probes_and_round_times():
    state = None
    for now, ok in ((100.0, True), (105.5, False), (111.0, True)):
        state = _experiment_decisions.tick(state, {"a": beat(), "b": beat()}, {"a": [{"name": "web", "ok": ok, "detail": "d"}]},
                                           ["a", "b"], now, dict(SETTINGS, threshold=5))
        state["tick_end"] = now + state["wait"]
    assert state["hosts"]["a"]["probes"]["web"] == {"checks": 3, "failures": 1, "last_failure": "d"}
    assert state["round_seconds"] == [0.5, 1.0]
    stats = _experiment_decisions.heartbeat_stats(state, 5, 30)
    assert (stats["round_p50_seconds"], stats["round_p95_seconds"], stats["rounds"]) == (0.5, 1.0, 2)


@pytest.mark.parametrize("values, share, want", [
    ([], 0.5, None), ([3.0], 0.95, 3.0), ([1, 2, 3, 4], 0.5, 2), ([1, 2, 3, 4], 0.95, 4),
    (list(range(1, 101)), 0.95, 95),
])
def test_percentile(values, share, want):
    assert _experiment_decisions.percentile(values, share) == want


NODE = {"experiment_result": {"format_version": 1, "host": "x", "experiment": "e1", "status": "stopped",
                              "reason": "stop", "samples": []}}
RESULT_CASES = [
    ("no answer", {"msg": "unreachable"}, None, "", "", ("failed", "unreachable")),
    ("lost", None, None, "", "lost contact", ("failed", "lost contact")),
    ("stopped by an abort", NODE, None, "probe web failed", "", ("aborted", "abort")),
    ("plain stop", NODE, None, "", "", ("stopped", "stop")),
    ("probes judged", NODE, {"web": {"checks": 4, "failures": 1, "last_failure": "HTTP 500"}}, "", "",
     ("stopped", "stop")),
]


def _tally(*rounds):
    from ansible_collections.chaosfleet.stress.plugins.plugin_utils._probes import update_tally
    tally = {}
    for phase, ok in rounds:
        checked = {"name": "web", "type": "http", "ok": ok, "latency_ms": 10.0, "detail": "HTTP 200" if ok else "HTTP 503"}
        tally = update_tally(tally, phase, [checked])
    return tally


@pytest.mark.parametrize("rounds, held, detail", [
    ([("baseline", True), ("stress", True), ("stress", True), ("recovery", True)], True,
     "held: pass rate 100.0% (baseline 1/1, stress 2/2, recovery 1/1); latency p50 10.0 ms, p95 10.0 ms"),
    ([("baseline", True), ("stress", False), ("stress", True), ("recovery", True)], False,
     "broke: 1 failed checks during the stress, 0 allowed (pass rate 75.0%: baseline 1/1, stress 1/2, recovery 1/1); "
     "last failure in stress: HTTP 503"),
    ([("baseline", True), ("stress", True), ("recovery", False)], False,
     "broke: failed after recovery (pass rate 66.7%: baseline 1/1, stress 1/1, recovery 0/1); "
     "last failure in recovery: HTTP 503"),
])
def test_result_explains_each_probe_from_the_tally(rounds, held, detail):
    out = _experiment_decisions.result(NODE, "e1", "h1", None, ["web"], {}, 0, None, "", "", {"rounds": 1}, tally=_tally(*rounds),
                                       k8s_target={"namespace": "shop", "pod": "web-1", "container": "app", "node": "n1"})
    probe = out["steady_state"]["probes"][0]
    assert out["steady_state"]["held"] is held and probe["ok"] is held
    assert probe["detail"].startswith(detail)
    assert probe["pass_rate"] and probe["latency_ms"]["p95"] == 10.0 and "stress" in probe["phases"]
    assert out["target"]["kubernetes"] == {"namespace": "shop", "pod": "web-1", "container": "app", "node": "n1"}


@pytest.mark.parametrize("node, stats, abort, error, want", [c[1:] for c in RESULT_CASES],
                         ids=[c[0] for c in RESULT_CASES])
def test_result(node, stats, abort, error, want):
    probes = ["web"] if stats is not None else None
    out = _experiment_decisions.result(node, "e1", "h1", None, probes, stats, 0, None, abort, error, {"rounds": 1})
    if want[0] == "failed":
        assert out == {"failed": True, "msg": out["msg"]} and want[1] in out["msg"]
        return
    assert (out["status"], out["reason"], out["host"]) == (want[0], want[1], "h1")
    assert out["heartbeat"] == {"rounds": 1}
    if stats:
        assert out["steady_state"]["held"] is False
        assert out["steady_state"]["probes"][0]["detail"].startswith("baseline passed; 1 of 4 checks failed")


def test_report_input():
    out = _experiment_decisions.report_input({"a": ({"format_version": 1}, ""), "b": (None, "no target"), "c": (None, "")})
    assert out == {"a": {"format_version": 1}, "b": {"failed": True, "msg": "not started: no target"}, "c": None}


@pytest.mark.parametrize("probes, search_level, expected", [
    ([], False, "tick.yml"),
    ([{"name": "web", "http": {"url": "http://127.0.0.1"}}], False, "tick_steady_state.yml"),
    ([], True, "tick_steady_state.yml"),
    ([{"name": "web", "http": {"url": "http://127.0.0.1"}}], True, "tick_steady_state.yml"),
])
def test_tick_tasks_has_the_probe_round_and_the_stops_only_where_they_run(probes, search_level, expected):
    assert _experiment_decisions.tick_tasks(probes, search_level) == expected


def test_both_tick_files_exist_in_the_role():
    tasks = Path(__file__).resolve().parents[4] / "roles" / "experiment" / "tasks"
    for probes, search_level in (([], False), ([{}], True)):
        assert (tasks / _experiment_decisions.tick_tasks(probes, search_level)).is_file()


def test_beat_command_quotes_the_directory():
    command = _experiment_decisions.beat_command(_state.experiment_paths("/run/chaos fleet/", "e1"))
    assert command.startswith("cd '/run/chaos fleet/experiments/e1' 2>/dev/null || ")
    assert "touch '/run/chaos fleet/experiments/e1/heartbeat'" in command


def test_beat_command_answers_behind_its_mark_in_a_real_shell(tmp_path):
    (tmp_path / "experiments" / "e1").mkdir(parents=True)
    for name, outcome, want in [("e1", None, "running"), ("e1", '{"status": "finished"}', "finished"),
                                ("gone", None, "absent")]:
        if outcome:
            (tmp_path / "experiments" / "e1" / "outcome.json").write_text(outcome)
        command = _experiment_decisions.beat_command(_state.experiment_paths(str(tmp_path), name))
        out = subprocess.run(["sh", "-c", "echo motd; " + command],
                             capture_output=True, text=True, check=True).stdout
        assert _experiment_decisions.parse_beat({"rc": 0, "stdout": out})["status"] == want
    assert (tmp_path / "experiments" / "e1" / "heartbeat").exists()


M = _experiment_decisions.BEAT_MARK


@pytest.mark.parametrize("raw, want", [
    ({"rc": 0, "stdout": M + '{"status": "running"}\r\n'}, {"status": "running", "reason": None, "deadline": None}),
    ({"rc": 0, "stdout": M + '{"deadline": 5.0, "reason": "deadline", "status": "finished"}'},
     {"status": "finished", "reason": "deadline", "deadline": 5.0}),
    ({"rc": 0, "stdout": M + '{"status": "absent"}'}, {"status": "absent", "reason": None, "deadline": None}),
    ({"rc": 0, "stdout": "Welcome to node1\r\npyenv: cannot rehash\r\n" + M + '{"status": "running"}\r\n'},
     {"status": "running", "reason": None, "deadline": None}),
    ({"unreachable": True, "msg": "ssh: no route"}, {"msg": "ssh: no route"}),
    ({"failed": True, "msg": "Timed out after 10 second(s)."}, {"msg": "Timed out after 10 second(s)."}),
    ({"rc": 1, "stdout": "", "stderr": "sh: denied"}, {"msg": "sh: denied"}),
    ({"rc": 0, "stdout": "garbage"}, {"msg": "unreadable heartbeat answer: garbage"}),
    ({"rc": 0, "stdout": '{"status": "running"}'}, {"msg": 'unreadable heartbeat answer: {"status": "running"}'}),
    ({"rc": 0, "stdout": M + "{half"}, {"msg": "unreadable heartbeat answer: " + M + "{half"}),
    ({"rc": 0, "stdout": M + '["running"]'}, {"msg": "unreadable heartbeat answer: " + M + '["running"]'}),
], ids=["running", "ended", "absent", "behind login noise", "unreachable", "timed out", "shell error", "garbage",
        "unmarked", "cut short", "not an object"])
def test_parse_beat(raw, want):
    assert _experiment_decisions.parse_beat(raw) == want


def test_a_stress_running_long_past_its_deadline_is_left_to_the_read_back():
    state = {"hosts": {"a": {"status": "running", "active": True, "last_beat": 90.0, "probes": {}, "deadline": 60.0},
                       "b": {"status": "finished", "active": False, "last_beat": 90.0, "probes": {}, "deadline": 60.0}}}
    out = _experiment_decisions.tick(state, {"a": {"status": "running"}}, {}, ["a", "b"], 100.0, SETTINGS)
    assert out["hosts"]["a"]["status"] == "overdue" and out["done"] and out["abort_reason"] == ""


@pytest.mark.parametrize("configured, interval, round_seconds, want", [
    (30, 5, None, 30),      # nothing measured: as configured
    (30, 5, 2.0, 30),       # a fast controller: as configured
    (30, 5, 5.0, 30),       # 3 x (5 + 5) = 30
    (30, 5, 8.2, 40),       # a slow one: 3 x (5 + 8.2) = 39.6 -> 40
    (15.0, 2, 20.0, 66),    # a very slow one
], ids=["unmeasured", "fast", "at the edge", "slow", "very slow"])
def test_effective_timeout(configured, interval, round_seconds, want):
    assert _experiment_decisions.effective_timeout(configured, interval, round_seconds) == want


# --- the steps the action calls: it reads the variables, these decide -----------------------------------

@pytest.mark.parametrize("change, words", [
    ({"replace": "maybe"}, "experiment_replace must be true or false"),
    ({"any_errors_fatal": "sometimes"}, "experiment_any_errors_fatal must be true or false"),
    ({"stop_guard": "ja"}, "experiment_stop_guard must be true or false"),
    ({"replace": "yes", "allow_oom": "off", "report": "", "memory_churn": "1"}, None),
    ({"instance_suffix": "/../x"}, "experiment_name with experiment_instance_suffix"),
], ids=["replace", "any_errors_fatal", "stop_guard", "every spelling of yes and no", "suffix leaves the directory"])
def test_request_refuses_unknown_yes_no_words_and_bad_names(change, words):
    out = _experiment_decisions.request(dict(GOOD, **change), "h1")
    if words is None:
        assert out["problems"] == [] and out["memory"]["churn"] is True
    else:
        assert any(words in p for p in out["problems"]), out["problems"]


def test_request_gives_the_paths_the_role_uses():
    out = _experiment_decisions.request(dict(GOOD, state_dir="/var/run/cf/", instance_suffix="-abc"), "h1")
    assert out["paths"] == {"dir": "/var/run/cf/experiments/e1-abc", "heartbeat": "/var/run/cf/experiments/e1-abc/heartbeat",
                            "outcome": "/var/run/cf/experiments/e1-abc/outcome.json",
                            "result": "/var/run/cf/experiments/e1-abc/result.json"}
    assert "/var/run/cf/experiments/e1-abc" in out["beat_command"]


PREFLIGHT_V = {"type": "memory", "require_limit": True, "allow_oom": False, "min_free_percent": 0, "replace": False,
               "oom_group_policy": "require_ack", "oom_group_ack": False}
REQUEST = {"node_name": "e1", "interval": 5, "threshold": 0}
OOM_GROUP = dict(checked(), limits={"memory_limit_bytes": 5, "oom_group": True})
PREFLIGHT_CASES = [
    # (case, check, v changes, (done, problem words, oom_group_warning, clear))
    ("starts", checked(), {}, (False, "", False, False)),
    ("kept result: done, reported again", {"status": "finished", "result_stored": True}, {}, (True, "", False, False)),
    ("kept result, replace: runs again, old record cleared", dict(checked(status="finished"), result_stored=True),
     {"replace": "yes"}, (False, "", False, True)),
    ("ran before, replace: old record cleared", checked(status="finished"), {"replace": True}, (False, "", False, True)),
    ("new name, replace: nothing to clear", checked(), {"replace": True}, (False, "", False, False)),
    ("running, replace: refused, nothing cleared", checked(status="running"), {"replace": True},
     (False, "already running", False, False)),
    ("no limit", checked(limit=None), {}, (False, "has no memory limit", False, False)),
    ("no limit allowed", checked(limit=None), {"require_limit": "false"}, (False, "", False, False)),
    ("oom group needs an ack", OOM_GROUP, {}, (False, "memory.oom.group=1", True, False)),
    ("oom group acknowledged", OOM_GROUP, {"oom_group_ack": "true"}, (False, "", True, False)),
    ("oom group, warn only", OOM_GROUP, {"oom_group_policy": "warn"}, (False, "", True, False)),
    ("oom group on a cpu stress", OOM_GROUP, {"type": "cpu"}, (False, "", False, False)),
    ("no answer", None, {}, (False, "no answer from the stressor", False, False)),
]


@pytest.mark.parametrize("check, change, want", [c[1:] for c in PREFLIGHT_CASES], ids=[c[0] for c in PREFLIGHT_CASES])
def test_preflight_step(check, change, want):
    done, words, warning, clear = want
    out = _experiment_decisions.preflight_step(check, REQUEST, dict(PREFLIGHT_V, **change), 100.0, 102.25)
    assert (out["done"], out["oom_group_warning"], out["clear_state"]) == (done, warning, clear)
    assert bool(out["warnings"]) is warning
    assert all("memory.oom.group=1" in text and "the whole container" in text for text in out["warnings"])
    assert (words in out["problem"]) if words else out["problem"] == ""
    assert out["check_round_seconds"] == 2.25
    assert out["target"] == (None if out["problem"] else check.get("target"))


def test_preflight_step_without_a_clock_measures_no_round():
    assert _experiment_decisions.preflight_step(checked(), REQUEST, PREFLIGHT_V, None, 5.0)["check_round_seconds"] is None


@pytest.mark.parametrize("sample, round_, problem, summary", [
    ({"results": [{"summary": {"n": 1}}]}, None, "", {"n": 1}),
    ({"msg": "gone"}, [], "could not be sampled: gone", None),
    (None, [{"name": "p", "ok": False, "detail": "x"}], "could not be sampled", None),
])
def test_baseline_step(sample, round_, problem, summary):
    out = _experiment_decisions.baseline_step(sample, round_)
    assert (problem in out["problem"]) if problem else out["problem"] == ""
    assert out["summary"] == summary and out["round"] == (round_ or [])


GATE_STEP_CASES = [
    # (case, problems, preflights, play hosts, v changes, (start, check round, dead-man, beat timeout, msg words))
    ("fast controller", {"a": "", "b": ""},
     {"a": {"check_round_seconds": 1.0, "plan": {"heartbeat_timeout_seconds": 30}}, "b": {"check_round_seconds": 2.0}},
     ["a", "b"], {}, (True, 2.0, 30, 10, "")),
    ("slow controller lengthens the dead-man", {"a": ""}, {"a": {"check_round_seconds": 8.2}}, ["a"], {},
     (True, 8.2, 40, 13, "")),
    ("a short dead-man still beats for 3 seconds", {"a": ""}, {"a": {"plan": {"heartbeat_timeout_seconds": 6}}},
     ["a"], {}, (True, None, 15, 5, "")),
    ("tiny dead-man: beat timeout floor", {"a": ""}, {}, ["a"], {"interval": 1}, (True, None, 30, 10, "")),
    ("not ready", {"a": "", "b": "no target"}, {}, ["a", "b"], {}, (False, None, 30, 10, "not starting experiment e1")),
    ("half allowed, but any_errors_fatal", {"a": "", "b": "x"}, {}, ["a", "b"],
     {"preflight_max_failed_percent": 50, "any_errors_fatal": "yes"}, (False, None, 30, 10, "1 of 2 hosts")),
]


@pytest.mark.parametrize("problems, preflights, play_hosts, change, want", [c[1:] for c in GATE_STEP_CASES],
                         ids=[c[0] for c in GATE_STEP_CASES])
def test_gate_step(problems, preflights, play_hosts, change, want):
    start, check_round, timeout, beat_timeout, words = want
    v = dict({"name": "e1", "preflight_max_failed_percent": 0, "any_errors_fatal": False}, **change)
    out = _experiment_decisions.gate_step(problems, preflights, play_hosts, v.pop("interval", 5), v)
    assert (out["start"], out["check_round_seconds"], out["heartbeat_timeout"], out["beat_timeout"]) \
        == (start, check_round, timeout, beat_timeout)
    assert (words in out["msg"]) if words else out["msg"] == ""


def test_starting_hosts_are_the_ready_participants_still_in_the_play():
    gate_out = {"participants": ["a", "b", "c", "d"], "not_ready": {"b": "x"}}
    assert _experiment_decisions.starting_hosts(gate_out, ["a", "b", "d"]) == ["a", "d"]
    assert _experiment_decisions.starting_hosts({}, ["a"]) == []


GATE_OUT = {"participants": ["a", "b", "c"], "not_ready": {"c": "no target"}, "heartbeat_timeout": 30}


def test_tick_reads_only_the_hosts_still_running():
    state = {"hosts": {"a": {"active": False}, "b": {"active": True}}}
    assert _experiment_decisions.tick_reads(GATE_OUT, state) == ["b", "c"]
    assert _experiment_decisions.tick_reads(GATE_OUT, None) == ["a", "b", "c"]


RAN = {"rc": 0, "stdout": M + '{"status": "running"}'}
ROUND = {"probes": [{"name": "web", "ok": True, "detail": ""}]}
TICK_INPUT_CASES = [
    # (case, previous hosts, seen, (beats, rounds, errors))
    ("first tick: the deadline comes from the start", {},
     {"a": {"heartbeat": RAN, "started": {"deadline": 160.0}, "probe_round": ROUND}},
     ({"a": {"status": "running", "reason": None, "deadline": 160.0}}, {"a": ROUND["probes"]}, {"a": ""})),
    ("later ticks keep the node's deadline", {"a": {"active": True}},
     {"a": {"heartbeat": RAN, "started": {"deadline": 160.0}}},
     ({"a": {"status": "running", "reason": None, "deadline": None}}, {"a": []}, {"a": ""})),
    ("heartbeat skipped: neither beat nor missed", {}, {"a": {"heartbeat": {"skipped": True}, "error": None}},
     ({}, {}, {"a": ""})),
    ("no heartbeat yet", {}, {"a": {}}, ({}, {}, {"a": ""})),
    ("a failed task", {}, {"a": {"heartbeat": {"unreachable": True, "msg": "gone"}, "error": "Probe failed: x"}},
     ({"a": {"msg": "gone", "deadline": None}}, {"a": []}, {"a": "Probe failed: x"})),
]


@pytest.mark.parametrize("previous, seen, want", [c[1:] for c in TICK_INPUT_CASES], ids=[c[0] for c in TICK_INPUT_CASES])
def test_tick_input(previous, seen, want):
    assert _experiment_decisions.tick_input({"hosts": previous}, seen) == want


@pytest.mark.parametrize("v, search_level, want", [
    ({"max_failed_nodes_percent": 50, "any_errors_fatal": "no", "abort_on_app_oom_kill": "yes"}, None,
     {"any_errors_fatal": False, "abort_on_app_oom_kill": True, "independent": False}),
    ({"max_failed_nodes_percent": 0, "any_errors_fatal": True, "abort_on_app_oom_kill": False}, {"level": 2},
     {"any_errors_fatal": True, "abort_on_app_oom_kill": False, "independent": True}),
])
def test_tick_settings(v, search_level, want):
    out = _experiment_decisions.tick_settings(GATE_OUT, REQUEST, v, search_level)
    assert out == dict(want, participants=["a", "b"], interval=5, threshold=0, timeout=30,
                       max_failed_percent=v["max_failed_nodes_percent"])


def test_tick_step_from_the_role_variables():
    v = {"max_failed_nodes_percent": 50, "any_errors_fatal": False, "abort_on_app_oom_kill": True}
    seen = {"a": {"heartbeat": RAN, "started": {"deadline": 160.0}}, "b": {"heartbeat": RAN, "started": {"deadline": 160.0}}}
    out = _experiment_decisions.tick_step(None, seen, ["a", "b"], 100.0, GATE_OUT, REQUEST, v)
    assert (out["done"], out["wait"], out["hosts"]["a"]["deadline"]) == (False, 5.0, 160.0)
    assert "c" not in out["hosts"]  # the gate left it out


SEEN = {"request": {"interval": 5, "threshold": 0, "probes": [{"name": "web"}]},
        "gate": {"heartbeat_timeout": 30, "check_round_seconds": 1.5},
        "preflight": {"plan": {"heartbeat_timeout_seconds": 20}}, "baseline": {"summary": {"count": 3}},
        "probe_round": {}, "error": ""}


@pytest.mark.parametrize("state, error, want", [
    ({"hosts": {"h1": {"probes": {"web": {"checks": 2, "failures": 0, "last_failure": ""}}}}, "round_seconds": [0.5]},
     "", ("stopped", True)),
    ({"hosts": {"h1": {"lost": "lost contact with the node"}}}, "", ("failed", "lost contact with the node")),
    ({}, "Inject failed: boom", ("stopped", True)),
], ids=["held", "lost: no read-back", "a task error is kept"])
def test_result_step(state, error, want):
    out = _experiment_decisions.result_step("h1", {"name": "e1"}, dict(SEEN, error=error), state, NODE, None)
    if want[0] == "failed":
        assert out == {"failed": True, "msg": want[1]}
        return
    assert (out["status"], out["steady_state"]["held"], out["baseline"]) == (want[0], want[1], {"count": 3})
    assert out["heartbeat"]["configured_timeout_seconds"] == 20 and out["heartbeat"]["check_round_seconds"] == 1.5
    assert out["controller_error"] == (error or None)


CONTROL_LOST = {"hosts": {"a": {"lost": "lost contact"}}, "abort_reason": "probe web failed"}
LOST_CTRL_C = ("interrupted (SIGINT): ansible-core lost the interrupt and the play went on; the stop guard had stopped "
               "every node")
FAILURE_CASES = [
    # (case, control, error, play hosts, v changes, interrupted (disarm step), failure)
    ("clean", {"hosts": {"a": {}}}, "", ["a", "b"], {}, None, ""),
    ("lost beats the rest", CONTROL_LOST, "x", ["a"], {"fail_on_abort": False}, None, "lost contact"),
    ("a lost Ctrl-C beats everything", CONTROL_LOST, "x", ["a"], {"fail_on_abort": False}, "SIGINT", LOST_CTRL_C),
    ("a lost Ctrl-C after a clean run", {"hosts": {"a": {}}}, "", ["a", "b"], {}, "SIGINT", LOST_CTRL_C),
    ("aborted", {"abort_reason": "probe web failed"}, "x", ["a", "b"], {}, None, "aborted: probe web failed"),
    ("aborted, not fatal", {"abort_reason": "probe web failed"}, "", ["a", "b"], {"fail_on_abort": "no"}, None, ""),
    ("a task failed", {}, "Inject failed: no", ["a", "b"], {}, None, "Inject failed: no"),
    ("a task failed, not fatal", {}, "Inject failed: no", ["a", "b"], {"fail_on_abort": False}, None, ""),
    ("another host failed, any_errors_fatal", {}, "", ["a"], {"any_errors_fatal": "yes"}, None,
     "another host failed (experiment_any_errors_fatal)"),
    ("another host failed, tolerated", {}, "", ["a"], {}, None, ""),
    ("nothing ran (check mode)", None, "", ["a", "b"], {"any_errors_fatal": True}, None, ""),
]


@pytest.mark.parametrize("control, error, play_hosts, change, interrupted, want", [c[1:] for c in FAILURE_CASES],
                         ids=[c[0] for c in FAILURE_CASES])
def test_failure_step(control, error, play_hosts, change, interrupted, want):
    v = dict({"fail_on_abort": True, "any_errors_fatal": False}, **change)
    gate_out = {"participants": ["a", "b"]} if control is not None else None
    assert _experiment_decisions.failure_step("a", v, control, gate_out, play_hosts, error, interrupted) == want


@pytest.mark.parametrize("v, awx_job_id, expected, basename", [
    ({"name": "e1"}, None, ["a", "b"], "stress-report-e1"),
    ({"name": "e1", "expected_hosts": ["a", "b", "c"]}, None, ["a", "b", "c"], "stress-report-e1"),
    ({"name": "e1", "report_basename": " mine "}, "42", ["a", "b"], "mine"),
    ({"name": "e1", "expected_hosts": [], "report_basename": ""}, 42, ["a", "b"], "stress-report-e1-job42"),
    # An AWX survey or -e gives one comma-separated string, as Ansible's list type reads it.
    ({"name": "e1", "expected_hosts": "node1, node2,node3"}, None, ["node1", "node2", "node3"], "stress-report-e1"),
    ({"name": "e1", "expected_hosts": "node3"}, None, ["node3"], "stress-report-e1"),
    ({"name": "e1", "expected_hosts": ""}, None, ["a", "b"], "stress-report-e1"),
])
def test_collect_step(v, awx_job_id, expected, basename):
    out = _experiment_decisions.collect_step({"b": (None, "no target"), "a": ({"format_version": 1}, "")}, v, awx_job_id)
    assert (out["expected_hosts"], out["basename"]) == (expected, basename)
    assert out["results"]["b"] == {"failed": True, "msg": "not started: no target"}
