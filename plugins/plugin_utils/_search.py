# -*- coding: utf-8 -*-
# Copyright (c) 2026, chaosfleet.stress contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The headroom search: at which stress level does the steady state break? (controller side, pure)

A search runs one experiment per level of a grid (``from``, ``from + step``, ... up to ``to``),
stepping up or bisecting, and each host searches on its own. Everything here is a plain
function over plain dicts, tested as tables (tests/unit/plugins/plugin_utils/test_search.py):

- ``parse``: the role's experiment_search_* inputs, checked, as a spec with the grid;
- ``start`` / ``advance``: a host's search state before the first level and after each level;
- ``level_outcome``: pass, fail (by which probe or guard) or error, from a level's result;
- ``fleet_stop``: whether enough nodes found their edge to stop every node (max_fail_percentage);
- ``headroom``: the answer for one host, with the regression check.

Both modes test levels on the same grid, so step and bisect agree on the bracket
[last pass, first fail] whenever the service gets monotonically worse with the level.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re
from decimal import Decimal, InvalidOperation

from ansible_collections.chaosfleet.stress.plugins.module_utils import _result
from ansible_collections.chaosfleet.stress.plugins.module_utils._units import (
    UnitError, format_bytes, parse_bool, parse_duration, parse_size,
)

MODES = ("step", "bisect")
ON_EDGE = ("stop", "last_pass")
MAX_LEVELS = 50
MIB = 1024 * 1024
PERCENT_RE = re.compile(r"^([0-9]+(?:\.[0-9]+)?)\s*%$")
NUMBER_RE = re.compile(r"^([0-9]+(?:\.[0-9]+)?)\s*%?$")
# Why a level failed, when it is a guard and not a probe. Harm already done ends a search in either mode.
GUARDS_THAT_END = ("app_oom",)
LEVEL_SUFFIX = "-L%02d"
CONFIRM_SUFFIX = "-confirm"


def _text(value):
    return "" if value is None else str(value).strip()


def _decimal(text):
    try:
        return Decimal(text)
    except InvalidOperation:
        return None


def _plain(number):
    """A Decimal as an int or float for JSON."""
    return int(number) if number == number.to_integral_value() else float(number)


def _amount(text, kind, what):
    """(unit, value) of one bound: memory 'N%' -> ('percent', N), memory size -> ('bytes', n), cpu -> ('load', N)."""
    if kind == "cpu":
        match = NUMBER_RE.match(text)
        value = _decimal(match.group(1)) if match else None
        if value is None or value <= 0 or value > 100:
            raise UnitError("%s must be a CPU load from above 0 to 100 (percent of the quota), got '%s'" % (what, text))
        return "load", value
    match = PERCENT_RE.match(text)
    if match:
        value = _decimal(match.group(1))
        if value is None or value <= 0 or value > 100:
            raise UnitError("%s must be above 0%% and at most 100%% of the memory limit, got '%s'" % (what, text))
        return "percent", value
    return "bytes", Decimal(parse_size(text, what=what))


def label(value, unit):
    """A level as people read it: '35%', '120 MiB', 'load 40%'."""
    if value is None:
        return "none"
    if unit == "bytes":
        return format_bytes(int(value))
    number = ("%g" % float(value))
    return ("load %s%%" if unit == "load" else "%s%%") % number


def grid(start, stop, step):
    """The levels from ``start`` to ``stop`` by ``step`` (Decimals); ``stop`` is always the last."""
    levels, value = [], start
    while value < stop and len(levels) <= MAX_LEVELS:
        levels.append(value)
        value += step
    levels.append(stop)
    return levels


def parse(v, kind):
    """Check experiment_search_* (``v``: experiment_* without the prefix) for an experiment of ``kind``.

    Returns (spec, problems). The spec holds the grid in its unit (percent of the memory
    limit, bytes, or CPU load percent), the hold, and the guard settings.
    """
    problems = []
    mode = _text(v.get("search")).lower()
    if mode not in MODES:
        return None, ["experiment_search must be step or bisect (or empty for one level), got '%s'" % mode]
    if kind not in ("memory", "cpu"):
        return None, ["a search needs experiment_type memory or cpu, got '%s'" % kind]
    bounds = {}
    for key in ("from", "to", "step"):
        text = _text(v.get("search_" + key))
        if not text:
            problems.append("experiment_search_%s must be set for a search" % key)
            continue
        try:
            bounds[key] = _amount(text, kind, "experiment_search_" + key)
        except UnitError as exc:
            problems.append(str(exc))
    on_edge = _text(v.get("search_on_edge")).lower() or "stop"
    if on_edge not in ON_EDGE:
        problems.append("experiment_search_on_edge must be stop or last_pass, got '%s'" % on_edge)
    hold = recovery = margin = None
    try:
        hold = parse_duration(_text(v.get("search_hold")), "experiment_search_hold", minimum=1)
    except UnitError as exc:
        problems.append(str(exc))
    try:
        recovery = parse_duration(_text(v.get("search_recovery_timeout")), "experiment_search_recovery_timeout",
                                  minimum=1)
    except UnitError as exc:
        problems.append(str(exc))
    margin_text = _text(v.get("search_limit_margin")) or "0%"
    match = PERCENT_RE.match(margin_text)
    margin = _decimal(match.group(1)) if match else None
    if margin is None or margin >= 100:
        problems.append("experiment_search_limit_margin must be a share of the memory limit from 0%% to below 100%%, "
                        "got '%s'" % margin_text)
    edge_share = _decimal(_text(v.get("search_max_edge_percent")) or "100")
    if edge_share is None or edge_share < 0 or edge_share > 100:
        problems.append("experiment_search_max_edge_percent must be from 0 to 100, got '%s'"
                        % _text(v.get("search_max_edge_percent")))
    minimum = None
    if _text(v.get("search_min_headroom")):
        try:
            minimum = _amount(_text(v.get("search_min_headroom")), kind, "experiment_search_min_headroom")
        except UnitError as exc:
            problems.append(str(exc))
    if problems:
        return None, problems
    units = set(unit for unit, _value in bounds.values())
    if len(units) > 1:
        return None, ["experiment_search_from, _to and _step must all be percentages of the limit or all sizes, got "
                      "%s" % ", ".join("'%s'" % _text(v.get("search_" + k)) for k in ("from", "to", "step"))]
    unit = units.pop()
    start, stop, step = bounds["from"][1], bounds["to"][1], bounds["step"][1]
    try:
        allow_oom = parse_bool(v.get("allow_oom"), "experiment_allow_oom")
    except UnitError as exc:
        return None, [str(exc)]
    clamped = None
    if unit == "percent" and not allow_oom and stop > 100 - margin:
        # A stress that alone passes the limit minus the margin would only trip the guard.
        clamped, stop = _plain(stop), Decimal(100) - margin
    if start > stop:
        return None, ["experiment_search_from (%s) is above experiment_search_to (%s)%s" % (
            label(start, unit), label(stop, unit),
            ", clamped to the limit minus experiment_search_limit_margin" if clamped is not None else "")]
    levels = grid(start, stop, step)
    if len(levels) > MAX_LEVELS:
        return None, ["experiment_search_step is too small: the range would take %d levels, at most %d"
                      % (len(levels), MAX_LEVELS)]
    spec = {
        "mode": mode, "type": kind, "unit": unit, "grid": [_plain(x) for x in levels],
        "range": {"from": _plain(start), "to": _plain(stop), "step": _plain(step), "clamped_from": clamped},
        "hold_seconds": hold, "recovery_timeout_seconds": recovery, "on_edge": on_edge,
        "margin_percent": _plain(margin), "allow_oom": allow_oom, "max_edge_percent": _plain(edge_share),
        "min_headroom": None if minimum is None else {"unit": minimum[0], "value": _plain(minimum[1])},
    }
    return spec, []


# ---------------------------------------------------------------- one host's search


def start(spec):
    """A host's state before its first level. ``lo``/``hi`` index the grid: lo passed, hi failed (or past it)."""
    state = {"lo": -1, "hi": len(spec["grid"]), "levels": [], "done": False, "ended_by": None, "edge": None,
             "next": None}
    state["next"] = _next_index(spec, state)
    return state


def _next_index(spec, state):
    lo, hi = state["lo"], state["hi"]
    if hi - lo <= 1:
        return None
    return lo + 1 if spec["mode"] == "step" else (lo + hi) // 2


def level_args(spec, index):
    """What the level's experiment is given: the stress size or load, as the role's variables take it."""
    value = spec["grid"][index]
    if spec["type"] == "cpu":
        return {"cpu_load": value}
    if spec["unit"] == "percent":
        return {"memory_size": "%s%%" % ("%g" % value)}
    return {"memory_size": str(int(value))}


def guard_args(spec):
    """The node-side guard for every level: end the stress at the limit minus the margin (unless allow_oom)."""
    if spec["type"] != "memory" or spec["allow_oom"]:
        return {}
    return {"max_working_set": "%s%%" % ("%g" % (100 - spec["margin_percent"]))}


def _stress_phase(probe):
    return ((probe.get("phases") or {}).get("stress")) or {}


def probe_figures(probe, slos):
    """One probe's figures during a level's hold, with its SLO (None when it has no numeric one)."""
    stress = _stress_phase(probe)
    checks, passed = stress.get("checks"), stress.get("passed")
    rate = round(100.0 * passed / checks, 1) if checks else probe.get("pass_rate")
    latency = stress.get("latency_ms") or probe.get("latency_ms") or {}
    return {"name": probe.get("name"), "type": probe.get("type"), "ok": probe.get("ok"),
            "checks": checks, "pass_rate": rate,
            "latency_ms": {"p50": latency.get("p50"), "p95": latency.get("p95")},
            "value": stress.get("value") or probe.get("value"),
            "slo": slos.get(probe.get("name"))}


def probe_slos(probes):
    """{name: {figure, comparator, threshold}} from the experiment's probe specs: what each probe's chart shows."""
    out = {}
    for probe in probes or []:
        if probe.get("type") == "prometheus" and probe.get("comparator") and probe.get("threshold") is not None:
            out[probe["name"]] = {"figure": "value", "comparator": probe["comparator"],
                                  "threshold": float(probe["threshold"])}
        elif probe.get("max_latency") is not None:
            out[probe["name"]] = {"figure": "latency_p95_ms", "comparator": "<=",
                                  "threshold": round(float(probe["max_latency"]) * 1000.0, 3)}
        else:
            out[probe["name"]] = {"figure": "pass_rate", "comparator": ">=", "threshold": 100.0}
    return out


def rounds(spec):
    """How many level rounds a search may take: every level when stepping, log2 of them when bisecting."""
    count = len(spec["grid"])
    if spec["mode"] == "step":
        return count
    steps = 0
    while (1 << steps) < count + 1:
        steps += 1
    return steps + 1


# Role settings every level runs with; the level's own size or load and name come on top.
LEVEL_SETTINGS = {
    "report": False,                       # one report for the whole search
    "fail_on_abort": False,                # a broken level is an answer, not a failed play
    "preflight_max_failed_percent": 100,   # a node refused at one level leaves the others searching
    "max_failed_nodes_percent": 100,
    "abort_on_app_oom_kill": True,         # never go on after the OOM killer took the app
    "replace": True,                       # a rerun of the search runs its levels again
}


SETTLE_INTERVALS = 2
# The level settings the role's task files read (through the request step's answer, not the variables).
LEVEL_TASK_SETTINGS = ("name", "duration", "report", "fail_on_abort", "replace", "recovery_timeout")


def level_vars(spec, name, number, index, user_max_working_set="", interval=5):
    """The experiment_* values (without the prefix) of one level run: the settings above, its name, hold and size.

    The level lasts its hold plus two heartbeat intervals: the stress takes a moment to reach its
    size, and every probe must have been checked at the full level before the level can pass.
    """
    duration = spec["hold_seconds"] + SETTLE_INTERVALS * int(interval)
    out = dict(LEVEL_SETTINGS, name="%s-L%02d" % (name, number), duration="%ss" % _num(duration),
               recovery_timeout="%ss" % _num(spec["recovery_timeout_seconds"]))
    out.update(level_args(spec, index))
    if spec["type"] == "memory":
        out["memory_target_usage"] = ""
        if not _text(user_max_working_set):
            out.update(guard_args(spec))
    return out


def _num(value):
    return ("%d" % value) if float(value).is_integer() else ("%g" % value)


def recovery_probe_window(search_level, recovery_timeout):
    """Seconds a search level's recovery probes may take to pass again (0: one round, as outside a search).

    A probe that reads a rate (a p95 over the last seconds) still sees the stress right after it ends, so
    one round would call a recovered service broken.
    """
    if not search_level:
        return 0
    try:
        return parse_duration(_text(recovery_timeout), "experiment_recovery_timeout")
    except UnitError:
        return 0


def level_outcome(result, problem="", error="", threshold=0, first=False):
    """(outcome, failed_by) of one level from its result: pass, fail (a probe or a guard) or error.

    ``problem``: why the level's preflight refused to start it (at the first level, the search
    cannot start at all: an error); ``error``: a task that failed.
    """
    if problem and first:
        return "error", {"kind": "error", "name": "preflight", "detail": _text(problem)}
    if problem:
        return "fail", {"kind": "guard", "name": "preflight", "detail": _text(problem)}
    if not result or result.get("failed"):
        return "error", {"kind": "error", "name": "error",
                         "detail": _text(error or (result or {}).get("msg") or "the level left no result")}
    app_kills = [k for k in result.get("oom_kills") or [] if k.get("victim") == "app"]
    if app_kills:
        return "fail", {"kind": "guard", "name": "app_oom", "detail": "the OOM killer took %s" % ", ".join(
            "%s (pid %s)" % (k.get("comm"), k.get("pid")) for k in app_kills)}
    probes = (result.get("steady_state") or {}).get("probes") or []
    broken = [p for p in probes if p.get("ok") is False and not p.get("recovery_failed")]
    if not broken:
        broken = [p for p in probes if p.get("ok") is False and (p.get("failures") or 0) > threshold]
    if broken:
        return "fail", {"kind": "probe", "name": broken[0].get("name"), "detail": _text(broken[0].get("detail"))}
    unchecked = [p.get("name") for p in probes if not _stress_phase(p).get("checks")]
    if unchecked and not (result.get("reason") or "").startswith("guard:"):
        # A level cannot pass on probes that never looked at it.
        return "error", {"kind": "error", "name": "unchecked",
                         "detail": "probe %s had no check during the level (status %s, %s)" % (
                             ", ".join(unchecked), result.get("status"), result.get("reason"))}
    if (result.get("reason") or "").startswith("guard:max_working_set"):
        return "fail", {"kind": "guard", "name": "limit_margin",
                        "detail": "the working set reached the limit minus the margin; the node ended the stress"}
    if result.get("reason") == "attach_failed" or result.get("status") in ("failed", None):
        return "error", {"kind": "error", "name": "error",
                         "detail": _text(error or result.get("controller_error") or result.get("reason")
                                         or "the stress did not run")}
    return "pass", None


def recovery_problem(result):
    """Why the target did not come back after a level ('' when it did or was not checked)."""
    if not result or result.get("failed"):
        return ""
    recovery = result.get("recovery") or {}
    if recovery.get("recovered") is False and not recovery.get("stress_released"):
        return "the working set did not come back within %s%% of its baseline in %s s" % (
            recovery.get("within_percent"), recovery.get("timeout_seconds"))
    late = [p.get("name") for p in (result.get("steady_state") or {}).get("probes") or [] if p.get("recovery_failed")]
    if late:
        return "probe %s still failed after the recovery window" % ", ".join(late)
    return ""


def level_entry(spec, index, result, problem="", error="", slos=None, confirmation=False, threshold=0, first=False):
    """The record of one level, as the report and the headroom read it."""
    outcome, failed_by = level_outcome(result, problem, error, threshold, first)
    rec = recovery_problem(result)
    result = result if result and not result.get("failed") else {}
    summary = (result.get("summary") or {}).get("working_set_bytes") or {}
    limit = (result.get("target") or {}).get("limit_bytes")
    mean = summary.get("mean")
    value = spec["grid"][index]
    return {
        "index": index, "level": value, "label": label(value, spec["unit"]), "experiment": result.get("experiment"),
        "status": result.get("status"), "reason": result.get("reason"),
        "outcome": outcome, "failed_by": failed_by, "confirmation": confirmation,
        "working_set": {"mean_bytes": None if mean is None else int(mean), "max_bytes": summary.get("max"),
                        "percent_of_limit": round(100.0 * mean / limit, 1) if mean and limit else None},
        "limit_bytes": limit,
        "probes": [probe_figures(p, slos or {}) for p in (result.get("steady_state") or {}).get("probes") or []],
        "recovery": dict((result.get("recovery") or {}), problem=rec or None),
        "request_bytes": (result.get("request") or {}).get("memory_bytes"),
    }


def advance(spec, state, entry):
    """The host's state after the level ``entry`` (from level_entry) ran at state['next']."""
    state = dict(state, levels=list(state["levels"]) + [entry])
    index = entry["index"]
    if entry["outcome"] == "error":
        return dict(state, done=True, ended_by="error", edge=entry["failed_by"], next=None)
    if (entry["failed_by"] or {}).get("name") in GUARDS_THAT_END:
        # Harm done: the search ends here, whatever the recovery (a killed app's working set stays low).
        state["hi"] = min(state["hi"], index)
        return dict(state, done=True, ended_by=entry["failed_by"]["name"], edge=entry["failed_by"], next=None)
    if entry["recovery"].get("problem"):
        edge = entry["failed_by"] or {"kind": "guard", "name": "recovery", "detail": entry["recovery"]["problem"]}
        if entry["outcome"] == "pass":
            state["lo"] = max(state["lo"], index)
        else:
            state["hi"] = min(state["hi"], index)
        return dict(state, done=True, ended_by="recovery", next=None,
                    edge=dict(edge, recovery=entry["recovery"]["problem"]))
    if entry["outcome"] == "pass":
        state["lo"] = max(state["lo"], index)
    else:
        state["hi"] = min(state["hi"], index)
        state["edge"] = entry["failed_by"]
        if entry["failed_by"]["name"] in GUARDS_THAT_END:
            return dict(state, done=True, ended_by=entry["failed_by"]["name"], next=None)
    following = _next_index(spec, state)
    if following is None:
        found = state["hi"] < len(spec["grid"])
        return dict(state, done=True, ended_by="edge" if found else "range_end", next=None,
                    edge=state["edge"] if found else None)
    return dict(state, next=following)


def keep_record(record, entry, result):
    """The level whose full result stands for the search: the tightest failing level, else the highest passing one."""
    failing = entry["outcome"] != "pass"
    if failing or not (record or {}).get("failing"):
        if result and not result.get("failed"):
            return {"failing": failing, "index": entry["index"], "result": result}
    return record


def as_result(found, base, experiment, host):
    """The search as one experiment result: ``base`` (the edge level's record) renamed, with ``search``."""
    out = _result.build(**dict((k, v) for k, v in (base or {}).items() if k in _result.KEYS))
    out.update(experiment=experiment, host=host, search=found)
    if not base:
        out.update(status="ended", reason="search")
    return out


def stop_for_fleet(state):
    """A host still searching when the fleet stopped: its last pass is a lower bound."""
    if state["done"]:
        return state
    return dict(state, done=True, ended_by="fleet_stop", next=None)


def fleet_stop(states, max_edge_percent):
    """(stop, reason): stop every node once more than ``max_edge_percent`` of them found their edge."""
    if not states:
        return False, ""
    found = sorted(h for h, s in states.items() if s.get("done") and s.get("ended_by") not in ("range_end", None))
    if float(max_edge_percent) >= 100 or len(found) * 100 <= len(states) * float(max_edge_percent):
        return False, ""
    return True, "%d of %d nodes found their edge (%s), more than experiment_search_max_edge_percent %s%%" % (
        len(found), len(states), ", ".join(found), "%g" % float(max_edge_percent))


# ---------------------------------------------------------------- the answer


def _in_bytes(value, unit, limit):
    if value is None:
        return None
    if unit == "bytes":
        return int(value)
    if unit == "percent" and limit:
        return int(limit * float(value) / 100.0)
    return None


def _percent(value, unit, limit):
    if value is None:
        return None
    if unit in ("percent", "load"):
        return float(value)
    return round(100.0 * float(value) / limit, 1) if limit else None


def regression(spec, found):
    """{required, required_label, ok} against experiment_search_min_headroom, or None without one."""
    minimum = spec.get("min_headroom")
    if not minimum:
        return None
    if minimum["unit"] == "bytes":
        have = found["headroom_bytes"]
    else:
        have = found["headroom_percent"] if spec["unit"] != "bytes" or found["limit_bytes"] else None
    required_label = label(minimum["value"], minimum["unit"])
    if have is None:
        return {"required": minimum["value"], "required_label": required_label, "ok": False,
                "detail": "the headroom cannot be compared with %s (no memory limit known)" % required_label}
    ok = (have or 0) >= minimum["value"]
    return {"required": minimum["value"], "required_label": required_label, "ok": ok,
            "detail": "headroom %s %s the required %s" % (found["headroom_label"], "meets" if ok else "is below",
                                                          required_label)}


def headroom(spec, state, confirmation=None):
    """One host's answer: the bracket, what broke at the edge, the headroom as a number, and the verdict."""
    grid_ = spec["grid"]
    unit = spec["unit"]
    runs = [e for e in state["levels"] if not e.get("confirmation")]
    limit = next((e.get("limit_bytes") for e in runs if e.get("limit_bytes")), None)
    last_pass = grid_[state["lo"]] if state["lo"] >= 0 else None
    first_fail = grid_[state["hi"]] if state["hi"] < len(grid_) else None
    ended_by = state["ended_by"] or "error"
    found = {"limit_bytes": limit, "headroom_bytes": _in_bytes(last_pass, unit, limit) if last_pass else 0,
             "headroom_percent": _percent(last_pass, unit, limit) if last_pass else 0.0,
             "headroom_label": label(last_pass, unit) if last_pass is not None else "below %s" % label(grid_[0], unit)}
    out = {
        "mode": spec["mode"], "type": spec["type"], "unit": unit, "limit_bytes": limit,
        "range": dict(spec["range"]), "grid": list(grid_), "levels": list(state["levels"]),
        "last_pass": last_pass, "first_fail": first_fail, "edge": state.get("edge") if first_fail is not None else None,
        "headroom": last_pass if last_pass is not None else 0, "headroom_label": found["headroom_label"],
        "headroom_bytes": found["headroom_bytes"], "headroom_percent": found["headroom_percent"],
        "ended_by": ended_by, "confirmed": None if confirmation is None else confirmation["outcome"] == "pass",
        "min_headroom": spec.get("min_headroom"),
    }
    out["regression"] = regression(spec, found)
    # Why the verdict is what it is; the report says the answer itself (_report_headroom.answer).
    notes = []
    verdict = "pass"
    if ended_by == "error":
        verdict = "error"
        notes.append("the search did not finish: %s" % (state.get("edge") or {}).get("detail", "a level failed to run"))
    if ended_by == "recovery":
        verdict = "fail"
        notes.append("aborted: the target did not recover after a level (%s)" % (state.get("edge") or {}).get(
            "recovery", ""))
    if ended_by == "app_oom":
        verdict = "fail"
        notes.append("the OOM killer took the application at %s" % label(first_fail, unit))
    if out["regression"] is not None and not out["regression"]["ok"]:
        verdict = "fail"
        notes.append("regression: %s" % out["regression"]["detail"])
    if out["confirmed"] is False:
        notes.append("the last passing level did not hold again when confirmed: the edge is noisy")
    out["verdict"], out["notes"] = verdict, notes
    return out


def host_stats(found):
    """One host's headroom as the numbers AWX tracks across runs (set_stats chaosfleet_headroom)."""
    return {"headroom": found["headroom"], "unit": found["unit"], "headroom_percent": found["headroom_percent"],
            "headroom_bytes": found["headroom_bytes"], "first_fail": found["first_fail"],
            "ended_by": found["ended_by"], "verdict": found["verdict"]}
