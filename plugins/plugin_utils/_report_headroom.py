# -*- coding: utf-8 -*-
# Copyright (c) 2026, chaosfleet.stress contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A headroom search in the report: the one-line answer, the levels table, a chart per probe, and the
figures AWX tracks.

The search itself (which levels ran, the bracket, the verdict) is decided before the report, in
the result's ``search`` (docs/schemas/report.schema.json); this file only says it.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from decimal import Decimal

from ansible_collections.chaosfleet.stress.plugins.plugin_utils import _search
from ansible_collections.chaosfleet.stress.plugins.plugin_utils._report_charts import level_chart
from ansible_collections.chaosfleet.stress.plugins.plugin_utils._report_text import (
    level_label, round_bytes, time_label,
)

_SIGNS = {"<=": "≤", ">=": "≥", "<": "<", ">": ">", "==": "=", "!=": "≠"}
# What breaking an SLO looks like: its comparator turned round.
_BROKEN = {"<=": ">", "<": "≥", ">=": "<", ">": "≤", "==": "≠", "!=": "="}
_ENDED = {
    "edge": "found the edge",
    "range_end": "reached the top of the range without an edge",
    "fleet_stop": "stopped because enough of the fleet found its edge",
    "recovery": "aborted: the target did not recover after a level",
    "error": "ended on a level that could not run",
    "app_oom": "ended: the OOM killer took the application",
}


def _number(value):
    return "%g" % round(value, 4)


def value_stat(comparator):
    """Which reading of a PromQL value during the hold is its worst: the max against an upper bound,
    the min against a lower one, else the last."""
    return {"<": "max", "<=": "max", ">": "min", ">=": "min"}.get(comparator, "last")


def probe_figure(probe):
    """(figure, value) a level's probe is judged on: the figure its SLO names, else its pass rate.
    A PromQL value is taken at its worst during the hold (value_stat)."""
    slo = probe.get("slo") or {}
    figure = slo.get("figure") or "pass_rate"
    if figure == "latency_p95_ms":
        return figure, (probe.get("latency_ms") or {}).get("p95")
    if figure == "value":
        value = probe.get("value")
        value = value if isinstance(value, dict) else {"last": value}  # a bare reading is the last one
        pick = value_stat(slo.get("comparator"))
        return figure, value.get(pick) if value.get(pick) is not None else value.get("last")
    return "pass_rate", probe.get("pass_rate")


def figure_text(figure, value, comparator=None):
    """'p95 412 ms', 'max 0.032', 'pass rate 96.7%'."""
    if value is None:
        return "n/a"
    if figure == "latency_p95_ms":
        return "p95 %s ms" % _number(value)
    if figure == "value":
        return "%s %s" % (value_stat(comparator), _number(value))
    return "pass rate %s%%" % _number(value)


def _threshold_text(slo):
    unit = {"latency_p95_ms": " ms", "pass_rate": "%"}.get(slo.get("figure"), "")
    return "%s%s" % (_number(slo["threshold"]), unit)


def slo_label(slo):
    """'SLO p95 ≤ 300 ms', as the chart's SLO line says it."""
    what = {"latency_p95_ms": "p95", "value": "value", "pass_rate": "pass rate"}.get(slo.get("figure"), "")
    return "SLO %s %s %s" % (what, _SIGNS.get(slo.get("comparator"), slo.get("comparator") or "?"),
                             _threshold_text(slo))


def _broken_text(probe):
    """'p95 412 ms > SLO 300 ms' when the probe's figure is on the wrong side of its SLO, else ''."""
    slo = probe.get("slo") or {}
    if slo.get("threshold") is None or slo.get("comparator") not in _BROKEN:
        return ""
    figure, value = probe_figure(probe)
    if value is None:
        return ""
    holds = {"<=": value <= slo["threshold"], "<": value < slo["threshold"], ">=": value >= slo["threshold"],
             ">": value > slo["threshold"], "==": value == slo["threshold"], "!=": value != slo["threshold"]}
    if holds[slo["comparator"]]:
        return ""
    return "%s %s SLO %s" % (figure_text(figure, value, slo["comparator"]), _BROKEN[slo["comparator"]],
                             _threshold_text(slo))


def failed_by_text(failed_by, level=None):
    """What failed a level, in a few words: 'probe web p95 412 ms > SLO 300 ms', 'guard limit_margin: ...'."""
    if not failed_by:
        return ""
    kind, name, detail = failed_by.get("kind") or "?", failed_by.get("name") or "?", failed_by.get("detail") or ""
    if kind == "probe":
        probe = next((p for p in (level or {}).get("probes") or [] if p.get("name") == name), None)
        broken = _broken_text(probe) if probe else ""
        if broken:
            return "probe %s %s" % (name, broken)
    if kind == "error":
        return "error: %s" % (detail or name)
    return "%s %s%s" % (kind, name, ": " + detail if detail else "")


def _levels_at(search, value):
    return [level for level in search["levels"] if level["level"] == value]


def label_of(search, value):
    """A level's label as the search wrote it, or the report's own for a level it did not run."""
    ran = [level["label"] for level in _levels_at(search, value) if level.get("label")]
    return ran[0] if ran else level_label(value, search["unit"])


def _limit(result, search):
    return search.get("limit_bytes") or (result.get("target") or {}).get("limit_bytes")


def amount_text(result, search, value):
    """A level with what it means for this target: '60% of its memory limit (307 MiB)'."""
    text, unit, limit = label_of(search, value), search["unit"], _limit(result, search)
    if unit == "percent":
        return "%s of its memory limit%s" % (text, " (%s)" % round_bytes(limit * value / 100.0) if limit else "")
    if unit == "load":
        return "%s of its CPU quota" % text
    if unit == "bytes" and limit:
        return "%s (%d%% of its memory limit)" % (text, round(100.0 * value / limit))
    return text


def _edge_level(search):
    """The run that failed at first_fail (not a confirmation hold), or None."""
    failed = [level for level in _levels_at(search, search.get("first_fail"))
              if level["outcome"] != "pass" and not level.get("confirmation")]
    return failed[0] if failed else None


def answer(result, search):
    """The search's answer in one line, for the report and the sign-off."""
    who = "%s on %s" % (result.get("experiment") or "the target", result.get("host"))
    last, first, ended = search.get("last_pass"), search.get("first_fail"), search.get("ended_by")
    broke = failed_by_text(search.get("edge") or (_edge_level(search) or {}).get("failed_by"), _edge_level(search))
    parts = []
    if last is not None and first is not None:
        parts.append("the steady state held up to %s" % amount_text(result, search, last))
        parts.append("it broke at %s%s" % (label_of(search, first), ": " + broke if broke else ""))
    elif first is not None:
        parts.append("the steady state broke at the first level, %s%s" % (
            amount_text(result, search, first), ": " + broke if broke else ""))
        parts.append("no headroom within the range")
    elif last is not None and ended == "range_end":
        parts.append("the steady state held up to %s, the top of the range: no edge found" % amount_text(
            result, search, last))
    elif last is not None and ended == "fleet_stop":
        parts.append("the steady state held up to %s when the fleet stopped the search: the edge is higher" % (
            amount_text(result, search, last)))
    elif last is not None:
        parts.append("the steady state held up to %s" % amount_text(result, search, last))
    else:
        parts.append("no level finished")
    if ended in ("recovery", "error", "app_oom") or (ended == "fleet_stop" and first is not None):
        parts.append("the search %s" % _ENDED[ended])
    if search.get("confirmed") is True:
        parts.append("a second hold at %s held again" % label_of(search, last))
    elif search.get("confirmed") is False:
        parts.append("a second hold at %s did not hold: the edge is noisy" % label_of(search, last))
    regression = search.get("regression")
    if regression:
        required = regression.get("required_label") or level_label(regression.get("required"), search["unit"])
        parts.append("required at least %s: %s" % (required, "met" if regression.get("ok") else "NOT met"))
    return "%s: %s" % (who, "; ".join(parts))


def _probe_cell(probe):
    """A level's probe, as the table shows it: its judged figure first, then the others."""
    slo = probe.get("slo") or {}
    figure, value = probe_figure(probe)
    words = [figure_text(figure, value, slo.get("comparator"))] if value is not None else []
    latency = probe.get("latency_ms") or {}
    if figure != "latency_p95_ms" and latency.get("p95") is not None:
        words.append("p95 %s ms" % _number(latency["p95"]))
    if figure == "latency_p95_ms" and latency.get("p50") is not None:
        words.append("p50 %s ms" % _number(latency["p50"]))
    if figure != "pass_rate" and probe.get("pass_rate") is not None:
        words.append("%s%% passed" % _number(probe["pass_rate"]))
    return {"name": probe.get("name"), "ok": probe.get("ok"), "text": ", ".join(words) or "n/a"}


def _working_set_text(ws):
    if ws.get("mean_bytes") is None and ws.get("max_bytes") is None:
        return "n/a"
    text = "mean %s, max %s" % (round_bytes(ws.get("mean_bytes")), round_bytes(ws.get("max_bytes")))
    if ws.get("percent_of_limit") is not None:
        text += " (%s%% of limit)" % _number(ws["percent_of_limit"])
    return text


def _recovery_cell(recovery):
    if recovery.get("recovered") is True:
        return time_label(round(recovery.get("seconds") or 0, 1))
    if recovery.get("recovered") is False:
        return "not back"
    return ""


def rows(search):
    """The levels table, in the order the levels ran; probes in the order of ``probe_names``."""
    names = probe_names(search)
    out = []
    for level in search["levels"]:
        probes = dict((p.get("name"), _probe_cell(p)) for p in level["probes"])
        out.append({
            "index": level["index"], "level": level["level"], "label": label_of(search, level["level"]),
            "experiment": level.get("experiment") or "", "outcome": level["outcome"] or "?",
            "confirmation": bool(level.get("confirmation")), "failed_by": failed_by_text(level["failed_by"], level),
            "working_set": _working_set_text(level["working_set"]),
            "probes": [probes.get(name) or {"name": name, "ok": None, "text": ""} for name in names],
            "recovery": _recovery_cell(level["recovery"]),
        })
    return out


def probe_names(search):
    names = []
    for level in search["levels"]:
        for probe in level["probes"]:
            if probe.get("name") not in names:
                names.append(probe.get("name"))
    return names


def _plain_number(number):
    return int(number) if number == number.to_integral_value() else float(number)


def grid(search):
    """The levels a search could test (its own grid, else the search's grid of its range), and every level it
    ran, in order: the chart's x ticks."""
    tested = set(level["level"] for level in search["levels"] if level["level"] is not None)
    if search.get("grid"):
        return sorted(set(search["grid"]) | tested)
    span = search.get("range") or {}
    start, stop, step = span.get("from"), span.get("to"), span.get("step")
    if start is None or stop is None or not step or step <= 0 or start > stop:
        return sorted(tested)
    levels = _search.grid(Decimal(str(start)), Decimal(str(stop)), Decimal(str(step)))
    return sorted(set(_plain_number(level) for level in levels) | tested)


def _x_axis(search):
    levels = grid(search) or [0]
    low, high = levels[0], levels[-1]
    step = (search.get("range") or {}).get("step") or ((high - low) / 10.0 if high > low else max(abs(low), 1))
    pad = step / 2.0
    every = max(1, -(-len(levels) // 12))  # at most 12 labels
    ticks = [(value, label_of(search, value)) for value in levels[::every]]
    what = {"percent": "stress, % of the memory limit", "bytes": "stress, memory added",
            "load": "stress, CPU load (% of the quota)"}.get(search["unit"], "stress level")
    return (low - pad, high + pad), ticks, what


_Y_AXES = {
    "latency_p95_ms": ("latency p95 (ms)", lambda v: "%g ms" % round(v, 3)),
    "value": ("value", lambda v: "%g" % round(v, 6)),
    "pass_rate": ("pass rate", lambda v: "%g%%" % round(v, 3)),
}


def charts(search):
    """One chart per probe: x the stress level, y the figure its SLO names (else its pass rate)."""
    x_range, x_ticks, x_title = _x_axis(search)
    last, first = search.get("last_pass"), search.get("first_fail")
    edge = None
    if first is not None:
        edge = (last, first, "edge: last pass %s, first fail %s" % (
            label_of(search, last) if last is not None else "none", label_of(search, first)))
    markers = []
    if first is None and last is not None and search.get("ended_by") in ("range_end", "fleet_stop"):
        markers.append((last, "search-end", "%s: no edge up to %s" % (search["ended_by"], label_of(search, last))))
    out = []
    for name in probe_names(search):
        points, slo = [], None
        for level in search["levels"]:
            probe = next((p for p in level["probes"] if p.get("name") == name), None)
            if probe is None:
                continue
            slo = slo or probe.get("slo")
            figure, value = probe_figure(probe)
            title = "%s: %s; %s %s%s" % (
                label_of(search, level["level"]), level["outcome"], name,
                figure_text(figure, value, (probe.get("slo") or {}).get("comparator")),
                " (second hold)" if level.get("confirmation") else "")
            points.append({"level": level["level"], "value": value, "outcome": level["outcome"] or "error",
                           "title": title, "confirmation": bool(level.get("confirmation"))})
        figure = (slo or {}).get("figure") or "pass_rate"
        y_title, y_label = _Y_AXES.get(figure, _Y_AXES["value"])
        if figure == "value":
            y_title = "value (%s during the hold)" % value_stat(slo.get("comparator"))
        with_slo = slo and slo.get("threshold") is not None and (slo.get("figure") or "pass_rate") == figure
        chart = level_chart(points, x_range, x_ticks, x_title, y_title, y_label,
                            y_fixed=(100.0, 25.0) if figure == "pass_rate" else None,
                            slo=(float(slo["threshold"]), slo_label(slo)) if with_slo else None,
                            edge=edge, markers=markers)
        chart["probe"] = name
        out.append({"probe": name, "figure": y_title, "slo": slo_label(slo) if with_slo else "no SLO figure",
                    "chart": chart})
    return out


def _range_text(search):
    span = search.get("range") or {}
    words = []
    if span.get("from") is not None and span.get("to") is not None:
        words.append("%s to %s" % (label_of(search, span["from"]), label_of(search, span["to"])))
    if span.get("step"):
        words.append("%s %s" % ("resolution" if search.get("mode") == "bisect" else "step",
                                level_label(span["step"], search["unit"]).replace("load ", "")))
    return ", ".join(words)


def steady_state_text(search):
    """The verdict table's steady-state cell for a search: 'held to 60%, broke at 70%'."""
    last, first = search.get("last_pass"), search.get("first_fail")
    words = []
    if last is not None:
        words.append("held to %s" % label_of(search, last))
    if first is not None:
        words.append("broke at %s" % label_of(search, first))
    return ", ".join(words) or "no level finished"


def view(result):
    """The headroom section of one host, or None when its result is not a search."""
    search = result.get("search")
    if not search:
        return None
    return {
        "answer": answer(result, search),
        "mode": search.get("mode") or "?",
        "unit": search["unit"],
        "range": _range_text(search),
        "ended_by": search.get("ended_by") or "?",
        "ended_text": _ENDED.get(search.get("ended_by"), search.get("ended_by") or "unknown"),
        "headroom": headroom_label(search),
        "probes": probe_names(search),
        "rows": rows(search),
        "charts": charts(search),
        "source": _source(search),
    }


def _source(search):
    """Which level's run the rest of the host's section shows (the search keeps the first failing level's
    record, else the highest passing one's)."""
    if search.get("first_fail") is not None:
        return "the run at the first failing level (%s)" % label_of(search, search["first_fail"])
    if search.get("last_pass") is not None:
        return "the run at the highest passing level (%s)" % label_of(search, search["last_pass"])
    return "the last run"


def headroom_label(search):
    if search.get("headroom_label"):
        return search["headroom_label"]
    if search.get("headroom") is not None:
        return label_of(search, search["headroom"])
    return "none"


def headroom_percent(search, limit=None):
    """The headroom as a share of the limit or quota; a size needs the memory limit."""
    if search.get("headroom_percent") is not None:
        return float(search["headroom_percent"])
    value = search.get("headroom")
    if value is None:
        return None
    if search["unit"] in ("percent", "load"):
        return float(value)
    limit = search.get("limit_bytes") or limit
    return round(100.0 * value / limit, 1) if limit else None


def headroom_bytes(search, limit=None):
    """The headroom as memory added; None for a CPU search, or a share with no limit known."""
    if search.get("headroom_bytes") is not None:
        return int(search["headroom_bytes"])
    value = search.get("headroom")
    if value is None or search["unit"] == "load":
        return None
    if search["unit"] == "bytes":
        return int(value)
    limit = search.get("limit_bytes") or limit
    return int(limit * float(value) / 100.0) if limit else None


def entry(result, verdict):
    """The figures AWX tracks for one host's search (as _search.host_stats gives them to set_stats'
    chaosfleet_headroom), with the host's verdict and what the report adds: the label, the confirmation
    and the regression check."""
    search = result["search"]
    limit = _limit(result, search)
    regression = search.get("regression") or {}
    out = _search.host_stats(dict(search, headroom_percent=headroom_percent(search, limit),
                                  headroom_bytes=headroom_bytes(search, limit)))
    out.update(headroom_label=headroom_label(search), confirmed=search.get("confirmed"),
               required=regression.get("required"), regression_ok=regression.get("ok"), verdict=verdict)
    return out
