# -*- coding: utf-8 -*-
# Copyright (c) 2026, chaosfleet.stress contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Experiment report for the stress_report action: checks, verdicts, chart geometry, rendering, writing.

Controller-side only (it imports jinja2), which is why it lives in plugin_utils
and not module_utils: module_utils are shipped to the nodes inside AnsiballZ.
The Jinja2 templates sit next to this file in templates/stress_report/, so they
are found from __file__ at run time wherever the collection is installed, and
``ansible-galaxy collection build`` packs them with the plugins.

Charts are plain SVG computed here and laid out by the template; no charting
library, so the report has no script and opens with no network. Every plotted
point of a series is one real sample, at a coordinate given by the mapping
written on the <svg> element (data-* attributes), so tests can trace points back.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import errno
import json
import math
import os
import re
import tempfile

from ansible_collections.chaosfleet.stress.plugins.module_utils import _result
from ansible_collections.chaosfleet.stress.plugins.module_utils._summary import (
    achieved_increase, cpu_rates, summarize,
)
from ansible_collections.chaosfleet.stress.plugins.module_utils._units import (
    format_bytes, format_duration,
)

FORMAT_VERSION = _result.FORMAT_VERSION
FORMATS = {"html": ".html", "markdown": ".md", "json": ".json"}
TEMPLATE_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "templates", "stress_report")
MAX_POINTS = 1500  # per series; longer series keep each bucket's min and max sample
UNLIMITED = 2 ** 60

ARGUMENT_SPEC = dict(
    results=dict(type="raw"),
    slice_reports=dict(type="list", elements="path"),
    expected_hosts=dict(type="list", elements="str", default=[]),
    title=dict(type="str"),
    dest=dict(type="path", required=True),
    basename=dict(type="str"),
    formats=dict(type="list", elements="str", choices=sorted(FORMATS), default=["html", "markdown", "json"]),
    achieved_min_percent=dict(type="float", default=80.0),
    fail_on_app_oom=dict(type="bool", default=True),
    stop_record=dict(type="path"),
)

REQUIRED_ONE_OF = [("results", "slice_reports")]
MUTUALLY_EXCLUSIVE = [("results", "slice_reports")]

_REASONS = {
    "deadline": "ran to its deadline",
    "stop": "stopped on request",
    "heartbeat": "stopped: controller heartbeat lost",
    "target_gone": "target container went away",
    "signal": "stopped by a signal on the node",
    "abort": "aborted",
    "attach_failed": "could not attach to the target",
}


class ReportError(Exception):
    """Bad input or an unwritable destination; nothing has been written."""


# ---------------------------------------------------------------- input


def plain_value(value):
    """Copy templated task args into plain dicts, lists and scalars (JSON- and Jinja-safe): Ansible 2.19 hands
    out tagged str/dict/list subclasses."""
    if isinstance(value, dict):
        return dict((str(k), plain_value(v)) for k, v in value.items())
    if isinstance(value, (list, tuple, set, frozenset)):
        return [plain_value(v) for v in value]
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    return str(value)


def _entries(results):
    """(host or None, value) pairs from a list of results or a host -> result mapping."""
    if isinstance(results, dict):
        if "format_version" in results:  # one result passed on its own
            return [(None, results)]
        return sorted(results.items())
    if isinstance(results, list):
        return [(None, r) for r in results]
    raise ReportError("results must be a list of experiment results or a mapping of host to result, got %s"
                      % type(results).__name__)


def collect(results, expected_hosts):
    """Sort the input into reported results, failed hosts and missing hosts.

    Returns (reported {host: result}, failed {host: message}, missing [host]).
    Raises ReportError for anything that is not a result of a readable format.
    """
    reported, failed, missing, problems, versions = {}, {}, [], [], []
    for index, (key, value) in enumerate(_entries(plain_value(results))):
        label = key if key is not None else "results[%d]" % index
        if value is None or value == {} or (isinstance(value, dict) and value.get("skipped")):
            if key is not None:
                missing.append(key)
            continue
        if not isinstance(value, dict):
            problems.append("%s is a %s, not an experiment result" % (label, type(value).__name__))
            continue
        if value.get("unreachable"):
            missing.append(key or value.get("host") or label)
            continue
        if value.get("failed") and "format_version" not in value:
            failed[key or value.get("host") or label] = str(value.get("msg") or "the task failed")
            continue
        if _result.is_incompatible_version(value):
            versions.append("%s has format_version %r" % (value.get("host") or label, value["format_version"]))
            continue
        problem = _result.validate(value)
        if problem and "format_version" not in value:
            problems.append("%s has %s" % (label, problem))
            continue
        host = key if key is not None else value.get("host")
        if not isinstance(host, str) or not host:
            problems.append("%s has no host name" % label)
            continue
        if host in reported:
            problems.append("host %s has more than one result" % host)
            continue
        if problem:
            problems.append("%s: %s" % (host, problem))
            continue
        reported[host] = _normalize(host, value)
    if versions:
        raise ReportError("results from an incompatible format version: %s; this collection reads format_version "
                          "%d. Nothing was written." % ("; ".join(versions), FORMAT_VERSION))
    if problems:
        raise ReportError("invalid results: %s. Nothing was written." % "; ".join(problems))
    for host in expected_hosts:
        if host not in reported and host not in failed and host not in missing:
            missing.append(host)
    if not reported and not failed and not missing:
        raise ReportError("nothing to report: results and expected_hosts are both empty")
    experiments = sorted(set(r["experiment"] for r in reported.values()))
    if len(experiments) > 1:
        raise ReportError("results are from different experiments (%s); write one report per experiment. "
                          "Nothing was written." % ", ".join(experiments))
    return reported, failed, missing


def _normalize(host, value):
    """Fill in what the node may have left out, so the templates see one shape."""
    result = dict(value)
    result["host"] = host
    result["samples"] = sorted(result["samples"], key=lambda s: s["t"])
    result["oom_kills"] = sorted(result.get("oom_kills") or [], key=lambda k: (k.get("t") or 0, k.get("pid") or 0))
    for key in ("target", "request", "steady_state", "recovery", "achieved"):
        result[key] = dict(result.get(key) or {})
    samples = result["samples"]
    started = result.get("started_at")
    ended = result.get("ended_at")
    if started is None and samples:
        started = result["started_at"] = samples[0]["t"]
    window = (started, ended)
    if not result.get("summary"):
        result["summary"] = summarize(samples, window=window)
    if not result["achieved"] and samples:
        during = [s for s in samples if (started is None or s["t"] >= started) and (ended is None or s["t"] <= ended)]
        result["achieved"] = achieved_increase(result.get("baseline"), during)
    for key in ("path", "container_id", "pod_uid", "qos_class", "cgroup_version", "limit_bytes",
                "cpu_quota_cores", "oom_group"):
        result["target"].setdefault(key, None)
    result.setdefault("argv", [])
    result["oom_kills"] = [dict({"pid": None, "comm": "?", "victim": "unknown", "group_kill": False,
                                 "source": "?"}, **k) for k in result["oom_kills"]]
    result["steady_state"].setdefault("held", None)
    result["steady_state"]["probes"] = [dict({"name": "?", "ok": None, "detail": ""}, **p)
                                        for p in result["steady_state"].get("probes") or []]
    result["recovery"].setdefault("recovered", None)
    result["recovery"].setdefault("seconds", None)
    return result


# ---------------------------------------------------------------- verdicts


def _mib(count):
    return format_bytes(count) if count is not None else "n/a"


def _base_mean(result):
    stats = (result.get("baseline") or {}).get("working_set_bytes") or {}
    return stats.get("mean")


def requested_and_achieved(result):
    """What was asked and what the stress reached, as texts, plus the share used for the verdict.

    ``percent`` is achieved as a share of what could be achieved: the request,
    capped by the room the memory limit leaves above the baseline, or by the CPU
    quota. A stress that asks for more than the limit allows is not blamed for it.
    """
    request, target, achieved = result["request"], result["target"], result["achieved"]
    kind = request.get("kind") or "memory"
    out = {"requested": "n/a", "achieved": "n/a", "share": "", "percent": None}
    if kind == "memory":
        base = _base_mean(result)
        want = request.get("memory_bytes")
        if want is not None:
            out["requested"] = "+%s" % format_bytes(want)
        elif request.get("target_usage_bytes") is not None and base is not None:
            want = request["target_usage_bytes"] - base
            out["requested"] = "to %s (+%s)" % (format_bytes(request["target_usage_bytes"]), format_bytes(want))
        if want is not None and request.get("ramp_seconds"):
            out["requested"] += ", ramp %s" % format_duration(request["ramp_seconds"])
        got = achieved.get("working_set_increase_bytes")
        if got is None:
            return out
        out["achieved"] = "+%s" % format_bytes(got)
        if want:
            out["share"] = "%d%% of requested" % round(100.0 * got / want)
            room = want
            if base is not None and target.get("limit_bytes"):
                room = min(want, target["limit_bytes"] - base)
            out["percent"] = 100.0 * got / room if room > 0 else None
        return out
    if kind == "cpu":
        load = request.get("cpu_load_percent")
        want = requested_cores(result)
        out["requested"] = "%g%% of %s = %.2f cores" % (
            load if load is not None else 100,
            "the %.2f-core quota" % target["cpu_quota_cores"] if target.get("cpu_quota_cores") else "the node's CPUs",
            want)
        got = achieved.get("cpu_cores")
        if got is None:
            return out
        out["achieved"] = "%.2f cores" % got
        quota = target.get("cpu_quota_cores")
        if quota and quota < want:
            out["percent"] = 100.0 * got / quota
            out["share"] = "%d%% of the %.2f-core quota" % (round(out["percent"]), quota)
        elif want:
            out["percent"] = 100.0 * got / want
            out["share"] = "%d%% of requested" % round(out["percent"])
        return out
    out["requested"] = "%d %s worker%s" % (request.get("workers") or 1, kind,
                                           "" if (request.get("workers") or 1) == 1 else "s")
    return out


def ended_text(result):
    reason = result.get("reason") or ""
    if result.get("status") == "running":
        return "still running when collected"
    if reason.startswith("guard:"):
        return "stopped by guard %s" % reason.split(":", 1)[1]
    return _REASONS.get(reason, reason or "unknown")


def interrupted_text(interrupted):
    """One line on how an interruption ended this host's stress, or ''."""
    if not interrupted:
        return ""
    why = interrupted.get("signal") or interrupted.get("cause") or "interrupted"
    if interrupted.get("stopped"):
        return "interrupted (%s) at %s; the stop guard stopped it at %s (%.1f s later)" % (
            why, _utc(interrupted.get("at")), _utc(interrupted.get("stopped_at")),
            max(0.0, (interrupted.get("stopped_at") or 0) - (interrupted.get("at") or 0)))
    return "interrupted (%s) at %s; the stop guard could not reach it (%s), its dead-man ended the stress" % (
        why, _utc(interrupted.get("at")), interrupted.get("msg") or "no answer")


def apply_stop_record(results, record):
    """Mark each host's result with the stop guard's record of an interruption. The results (a list or a
    host -> result mapping) are copied, in the same shape."""
    if not record:
        return results

    def mark(host, value):
        if not isinstance(value, dict) or "format_version" not in value:
            return value
        entry = (record.get("hosts") or {}).get(host or value.get("host"))
        if entry is None:
            return value
        return dict(value, interrupted={
            "signal": record.get("signal"), "cause": record.get("cause"), "at": record.get("at"),
            "stopped": bool(entry.get("stopped")), "stopped_at": entry.get("stopped_at"), "msg": entry.get("msg") or ""})

    if isinstance(results, dict) and "format_version" not in results:
        return dict((host, mark(host, value)) for host, value in results.items())
    if isinstance(results, list):
        return [mark(None, value) for value in results]
    return mark(None, results)


def read_stop_record(path):
    """The stop guard's record (JSON) of an interrupted run."""
    try:
        with open(path) as handle:
            record = json.load(handle)
    except (OSError, ValueError) as exc:
        raise ReportError("cannot read the stop record %s: %s. Nothing was written." % (path, exc))
    if not isinstance(record, dict) or not record.get("interrupted") or not isinstance(record.get("hosts"), dict):
        raise ReportError("%s is not a stop record of chaosfleet.stress. Nothing was written." % path)
    return record


def host_verdict(result, achieved_min_percent=80.0, fail_on_app_oom=True):
    """pass / fail / inconclusive / error for one host, with the notes that explain it."""
    notes = []
    interrupted = interrupted_text(result.get("interrupted"))
    if interrupted:
        notes.append(interrupted)
    held = result["steady_state"].get("held")
    recovered = result["recovery"].get("recovered")
    app_kills = [k for k in result["oom_kills"] if k.get("victim") == "app"]
    failing = False
    if held is False:
        broken = ["probe %s %s" % (p.get("name"), p.get("detail")) if p.get("detail") else "probe %s" % p.get("name")
                  for p in result["steady_state"]["probes"] if p.get("ok") is False]
        notes.append("steady state broke" + (": " + "; ".join(broken) if broken else ""))
        failing = True
    if recovered is False:
        notes.append("working set not back " + _recovery_terms(result["recovery"]))
        failing = True
    if app_kills:
        notes.append("OOM killer took app process%s %s" % (
            "es" if len(app_kills) > 1 else "",
            ", ".join("%s (pid %s)" % (k.get("comm"), k.get("pid")) for k in app_kills)))
        failing = failing or fail_on_app_oom
    percent = requested_and_achieved(result)["percent"]
    under = percent is not None and percent < achieved_min_percent
    if under:
        notes.append("stress reached only %d%% of what was asked (capped by the limit or quota)" % round(percent))
    if result.get("reason") == "attach_failed" or not result["samples"]:
        notes.append("no samples recorded" if not result["samples"] else "could not attach to the target")
        verdict = "error"
    elif failing:
        verdict = "fail"
    elif result.get("status") == "running":
        notes.append("result collected while the stress was still running")
        verdict = "inconclusive"
    elif interrupted:
        verdict = "inconclusive"  # the experiment did not run its course
    elif under:
        verdict = "inconclusive"
    elif held is None:
        notes.append("no steady-state probes")
        verdict = "inconclusive"
    else:
        verdict = "pass"
    return verdict, notes


def overall_verdict(verdicts, failed, missing):
    """The worst host verdict; a failed host counts as error, a missing one as inconclusive."""
    verdicts = list(verdicts) + (["error"] if failed else []) + (["inconclusive"] if missing else [])
    return _result.worst(verdicts)


# ---------------------------------------------------------------- charts


def _nice_step(span, ticks, steps):
    raw = span / float(max(ticks, 1))
    magnitude = 10 ** math.floor(math.log10(raw)) if raw > 0 else 1
    for step in steps:
        if step * magnitude >= raw:
            return step * magnitude
    return steps[-1] * magnitude


def _time_step(span):
    for step in (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400, 21600):
        if span / step <= 8:
            return step
    return 43200


def _time_label(seconds):
    if abs(seconds) < 180:
        return "%g s" % seconds
    return ("-" if seconds < 0 else "") + format_duration(abs(seconds))


def _byte_axis(top):
    """Nice upper bound, step and unit for a bytes axis that has to reach ``top``."""
    unit, name = (2 ** 30, "GiB") if top >= 4 * 2 ** 30 else (2 ** 20, "MiB")
    step = _nice_step(top / float(unit), 5, (1, 2, 2.5, 5, 10)) * unit
    return step * math.ceil(top / step), step, unit, name


def _decimate(points, limit=MAX_POINTS):
    """Keep every point, or for long series each bucket's lowest and highest point (real samples)."""
    if len(points) <= limit:
        return points
    size = int(math.ceil(len(points) / (limit / 2.0)))
    kept = []
    for start in range(0, len(points), size):
        bucket = points[start:start + size]
        low = min(bucket, key=lambda p: p[1])
        high = max(bucket, key=lambda p: p[1])
        kept.extend(sorted(set([low, high]), key=lambda p: p[0]))
    return kept


class Chart:
    """Plot area and the linear mapping (t, value) -> SVG pixels, written onto the <svg> for tests."""

    WIDTH = 960
    LEFT, RIGHT, TOP, BOTTOM = 76, 24, 34, 44

    def __init__(self, kind, t0, x_min, x_max, y_max, height=300):
        self.kind = kind
        self.t0 = t0
        self.x_min = x_min
        self.x_max = x_max if x_max > x_min else x_min + 1
        self.y_min = 0.0
        self.y_max = y_max if y_max > 0 else 1.0
        self.width = self.WIDTH
        self.height = height
        self.plot_left = self.LEFT
        self.plot_top = self.TOP
        self.plot_width = self.WIDTH - self.LEFT - self.RIGHT
        self.plot_height = height - self.TOP - self.BOTTOM
        self.series, self.hlines, self.bands, self.vmarkers, self.oom = [], [], [], [], []
        self.x_ticks, self.y_ticks = [], []

    def x(self, t):
        return self.plot_left + (t - self.t0 - self.x_min) / (self.x_max - self.x_min) * self.plot_width

    def y(self, value):
        return self.plot_top + self.plot_height - (value - self.y_min) / (self.y_max - self.y_min) * self.plot_height

    def clamp_x(self, px):
        return min(max(px, self.plot_left), self.plot_left + self.plot_width)

    def add_series(self, name, css, label, points):
        """points: [(t, value or None)]; None breaks the line into segments."""
        segments, current = [], []
        for t, value in points:
            if value is None:
                if current:
                    segments.append(current)
                current = []
            else:
                current.append((t, value))
        if current:
            segments.append(current)
        drawn = []
        for segment in segments:
            segment = _decimate(segment)
            drawn.append(" ".join("%.1f,%.1f" % (self.x(t), self.y(v)) for t, v in segment))
        if drawn:
            self.series.append({"name": name, "css": css, "label": label, "segments": drawn})

    def add_hline(self, css, value, label):
        self.hlines.append({"css": css, "y": round(self.y(value), 1), "label": label})

    def add_band(self, css, t_from, t_to, v_low=None, v_high=None, label=""):
        x1, x2 = self.clamp_x(self.x(t_from)), self.clamp_x(self.x(t_to))
        if x2 <= x1:
            return
        top = self.plot_top if v_high is None else max(self.y(v_high), self.plot_top)
        bottom = self.plot_top + self.plot_height if v_low is None else self.y(v_low)
        self.bands.append({"css": css, "x": round(x1, 1), "width": round(x2 - x1, 1), "y": round(top, 1),
                           "height": round(bottom - top, 1), "label": label})

    def add_vmarker(self, css, t, label, anchor="start", top=False):
        """A vertical line with its label at the bottom (or top) of the plot, kept inside the plot."""
        px = self.x(t)
        if not self.plot_left - 0.5 <= px <= self.plot_left + self.plot_width + 0.5:
            return
        room = 8 * len(label)  # a generous width for an 11.5 px label
        if anchor == "start" and px + room > self.plot_left + self.plot_width:
            anchor = "end"
        elif anchor == "end" and px - room < self.plot_left:
            anchor = "start"
        self.vmarkers.append({"css": css, "x": round(px, 1), "label": label, "anchor": anchor,
                              "label_y": round(self.plot_top + (0.3 * self.plot_height if top else self.plot_height - 8), 1)})

    def finish_axes(self, y_step, y_label):
        span = self.x_max - self.x_min
        step = _time_step(span)
        tick = math.ceil(self.x_min / step) * step
        while tick <= self.x_max + 1e-9:
            self.x_ticks.append({"x": round(self.x(self.t0 + tick), 1), "label": _time_label(tick)})
            tick += step
        value = 0.0
        while value <= self.y_max + 1e-9:
            self.y_ticks.append({"y": round(self.y(value), 1), "label": y_label(value)})
            value += y_step

    def data(self):
        return {
            "kind": self.kind, "width": self.width, "height": self.height,
            "t0": self.t0, "x_min": self.x_min, "x_max": self.x_max, "y_min": self.y_min, "y_max": self.y_max,
            "plot_left": self.plot_left, "plot_top": self.plot_top,
            "plot_width": self.plot_width, "plot_height": self.plot_height,
            "plot_bottom": self.plot_top + self.plot_height, "plot_right": self.plot_left + self.plot_width,
            "series": self.series, "hlines": self.hlines, "bands": self.bands, "vmarkers": self.vmarkers,
            "oom": self.oom, "x_ticks": self.x_ticks, "y_ticks": self.y_ticks,
        }


def _time_frame(result):
    samples = result["samples"]
    t0 = result.get("started_at")
    times = [s["t"] for s in samples] + [k["t"] for k in result["oom_kills"] if k.get("t") is not None]
    for key in ("started_at", "ended_at"):
        if result.get(key) is not None:
            times.append(result[key])
    if t0 is None:
        t0 = min(times)
    return t0, min(times) - t0, max(times) - t0


def _stress_window(chart, result):
    started, ended = result.get("started_at"), result.get("ended_at")
    end = ended if ended is not None else chart.t0 + chart.x_max
    if started is not None:
        chart.add_band("stress", started, end, label="stress")
        chart.add_vmarker("start", started, "stress start")
    if ended is not None:
        chart.add_vmarker("end", ended, "end: " + (result.get("reason") or "?").replace(":", " ").replace("_", " "),
                          anchor="end")


def _oom_markers(chart, result):
    """One marker per kill; the kills of one group kill (same second) share one marker."""
    groups, singles = {}, []
    for kill in result["oom_kills"]:
        if kill.get("t") is None:
            continue
        if kill.get("group_kill"):
            groups.setdefault(int(math.floor(kill["t"])), []).append(kill)
        else:
            singles.append(kill)
    for kill in singles:
        victim = "app" if kill.get("victim") == "app" else "stressor"
        chart.oom.append({
            "kind": victim, "x": round(chart.x(kill["t"]), 1), "t": kill["t"] - chart.t0, "count": 1,
            "label": "%s: %s" % (victim, kill.get("comm")) if victim == "app" else "",
            "title": "OOM kill at %s: %s %s (pid %s), source %s" % (
                _time_label(round(kill["t"] - chart.t0, 1)), kill.get("victim"), kill.get("comm"), kill.get("pid"),
                kill.get("source")),
        })
    for _key, kills in sorted(groups.items()):
        first = min(k["t"] for k in kills)
        apps = sum(1 for k in kills if k.get("victim") == "app")
        chart.oom.append({
            "kind": "group", "x": round(chart.x(first), 1), "t": first - chart.t0, "count": len(kills),
            "label": "group kill ×%d" % len(kills),
            "title": "OOM group kill at %s: %d processes (%d app, %d stressor): %s" % (
                _time_label(round(first - chart.t0, 1)), len(kills), apps, len(kills) - apps,
                ", ".join("%s %s (pid %s)" % (k.get("victim"), k.get("comm"), k.get("pid")) for k in kills)),
        })
    for marker in chart.oom:
        # Labels near the right edge go left of their marker so they stay inside the picture.
        marker["label_left"] = marker["x"] > chart.plot_left + chart.plot_width - 150
    chart.oom.sort(key=lambda m: m["x"])


def _pre_stress_level(result):
    """Where the stress starts from: the baseline mean, else the mean working set sampled before the start."""
    base = _base_mean(result)
    if base is not None:
        return base
    started = result.get("started_at")
    before = [s["working_set_bytes"] for s in result["samples"]
              if s.get("working_set_bytes") is not None and started is not None and s["t"] < started]
    return sum(before) / float(len(before)) if before else None


def memory_chart(result):
    samples = result["samples"]
    if not samples:
        return None
    t0, x_min, x_max = _time_frame(result)
    base = _base_mean(result)
    # cgroup v1 shows "no limit" as a number near 2**63; such a line would flatten the chart.
    limits = [s.get("limit_bytes") for s in samples if s.get("limit_bytes") is not None and s["limit_bytes"] < UNLIMITED]
    limit = result["target"].get("limit_bytes") or (max(limits) if limits else None)
    limit = limit if limit is not None and limit < UNLIMITED else None
    level = _pre_stress_level(result)
    requested = [(s["t"], None if s.get("stress_bytes") is None or level is None else level + s["stress_bytes"])
                 for s in samples]
    tops = [s.get("working_set_bytes") or 0 for s in samples] + [v or 0 for _t, v in requested]
    tops += [limit or 0, base or 0]
    y_max, y_step, unit, unit_name = _byte_axis(max(max(tops) * 1.04, 2 ** 20))
    chart = Chart("memory", t0, x_min, x_max, y_max)
    _stress_window(chart, result)
    rec = result["recovery"]
    if base is not None and result.get("ended_at") is not None and rec.get("within_percent") is not None:
        share = rec["within_percent"] / 100.0
        chart.add_band("recovery", result["ended_at"], result["ended_at"] + (rec.get("timeout_seconds") or 0),
                       base * (1 - share), base * (1 + share), label="recovery band +/-%g%%" % rec["within_percent"])
        if rec.get("recovered") and rec.get("seconds") is not None:
            chart.add_vmarker("recovered", result["ended_at"] + rec["seconds"],
                              "recovered +%s" % _time_label(round(rec["seconds"], 1)), top=True)
    if base is not None:
        chart.add_hline("baseline", base, "baseline " + format_bytes(base))
    if limit:
        if len(set(limits)) > 1:
            chart.add_series("limit_bytes", "limit", "limit",
                             [(s["t"], s["limit_bytes"] if s.get("limit_bytes") in limits else None) for s in samples])
        else:
            chart.add_hline("limit", limit, "limit " + format_bytes(limit))
    # The requested level goes on top: where the stress is met it runs along the working set.
    chart.add_series("working_set_bytes", "ws", "working set", [(s["t"], s.get("working_set_bytes")) for s in samples])
    chart.add_series("requested_bytes", "requested", "requested level", requested)
    _oom_markers(chart, result)
    chart.finish_axes(y_step, lambda v: "%g %s" % (round(v / unit, 2), unit_name))
    return chart.data()


def requested_cores(result):
    """Cores the experiment asked for: its load is a share of the target's quota, not of one CPU per worker."""
    request = result["request"]
    if request.get("cpu_cores") is not None:
        return request["cpu_cores"]
    load = request.get("cpu_load_percent")
    load = 100.0 if load is None else load
    quota = result["target"].get("cpu_quota_cores")
    return (quota if quota else (request.get("workers") or 1)) * load / 100.0


def cpu_chart(result):
    rates = cpu_rates(result["samples"])
    if not rates:
        return None
    t0, x_min, x_max = _time_frame(result)
    quota = result["target"].get("cpu_quota_cores")
    request = result["request"]
    wanted = requested_cores(result) if request.get("kind") == "cpu" else None
    top = max([r for _t, r in rates] + [quota or 0, wanted or 0, 0.1]) * 1.08
    step = _nice_step(top, 4, (1, 2, 2.5, 5, 10))
    chart = Chart("cpu", t0, x_min, x_max, step * math.ceil(top / step), height=220)
    _stress_window(chart, result)
    if quota:
        chart.add_hline("limit", quota, "quota %.2f cores" % quota)
    if wanted is not None:
        chart.add_hline("requested", wanted, "requested %.2f cores" % wanted)
    chart.add_series("cpu_cores", "cpu", "CPU usage", rates)
    _oom_markers(chart, result)
    chart.finish_axes(step, lambda v: "%g" % round(v, 3))
    return chart.data()


# ---------------------------------------------------------------- model


def _utc(epoch):
    if epoch is None:
        return "n/a"
    return datetime.datetime.fromtimestamp(epoch, tz=datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def _percent(part, whole):
    return "%d%%" % round(100.0 * part / whole) if part is not None and whole else ""


def _recovery_terms(rec):
    """'within 5% of baseline after 1m', leaving out what the node did not say."""
    words = []
    if rec.get("within_percent") is not None:
        words.append("within %g%% of baseline" % rec["within_percent"])
    if rec.get("timeout_seconds"):
        words.append("after %s" % format_duration(rec["timeout_seconds"]))
    return " ".join(words) or "to baseline"


def _recovery_text(result):
    rec = result["recovery"]
    if rec.get("recovered") is True:
        text = _time_label(round(rec.get("seconds") or 0, 1))
        if rec.get("within_percent") is not None:
            text += " (within %g%%)" % rec["within_percent"]
        return text
    if rec.get("recovered") is False:
        return "not back " + _recovery_terms(rec)
    if result.get("reason") == "target_gone":
        return "not measured: target gone"
    return "not measured"


def host_view(result, options):
    verdict, notes = host_verdict(result, options["achieved_min_percent"], options["fail_on_app_oom"])
    stress = requested_and_achieved(result)
    # The figures are over the stress window, whatever window the node summarized.
    summary = summarize(result["samples"], window=(result.get("started_at"), result.get("ended_at")))
    ws = summary.get("working_set_bytes") or {}
    kills = result["oom_kills"]
    t0 = result.get("started_at") or 0
    limit = result["target"].get("limit_bytes")
    psi = summary.get("psi_memory_some_avg10")
    return {
        "host": result["host"],
        "id": re.sub(r"[^A-Za-z0-9_-]", "-", result["host"]),
        "result": result,
        "verdict": verdict,
        "notes": notes,
        "steady_state": {True: "held", False: "broke", None: "not probed"}[result["steady_state"].get("held")],
        "recovery": _recovery_text(result),
        "requested": stress["requested"],
        "achieved": stress["achieved"],
        "achieved_share": stress["share"],
        "achieved_percent": stress["percent"],
        "ended": ended_text(result),
        "interrupted": interrupted_text(result.get("interrupted")),
        "reason": result.get("reason"),
        "status": result.get("status"),
        "started": _utc(result.get("started_at")),
        "ended_at": _utc(result.get("ended_at")),
        "duration": _time_label(round(result["ended_at"] - t0, 1)) if result.get("ended_at") and t0 else "n/a",
        "peak": _mib(ws.get("max")),
        "peak_of_limit": _percent(ws.get("max"), limit),
        "limit": format_bytes(limit) if limit else "no limit",
        "baseline": _mib(_base_mean(result)),
        "cpu_cores": "%.2f" % summary["cpu_cores"] if summary.get("cpu_cores") is not None else "n/a",
        "quota": "%.2f" % result["target"]["cpu_quota_cores"] if result["target"].get("cpu_quota_cores") else "none",
        "throttled": "%d%%" % round(100 * summary["throttled_ratio"]) if summary.get("throttled_ratio") is not None
        else "n/a",
        "psi": "%.1f" % psi["max"] if psi else None,
        "app_kills": sum(1 for k in kills if k.get("victim") == "app"),
        "stressor_kills": sum(1 for k in kills if k.get("victim") != "app"),
        "group_kill": any(k.get("group_kill") for k in kills),
        "kills": [dict(k, rel=_time_label(round(k["t"] - t0, 1)) if k.get("t") is not None else "?") for k in kills],
        "memory_chart": memory_chart(result),
        "cpu_chart": cpu_chart(result),
    }


def build(params):
    """Check the input and compute everything the templates and the task result need."""
    reported, failed, missing = collect(params["results"], params.get("expected_hosts") or [])
    options = {"achieved_min_percent": params.get("achieved_min_percent", 80.0),
               "fail_on_app_oom": params.get("fail_on_app_oom", True)}
    hosts = [host_view(reported[h], options) for h in sorted(reported)]
    experiment = hosts[0]["result"]["experiment"] if hosts else None
    title = params.get("title") or ("Stress experiment %s" % experiment if experiment else "Stress experiment report")
    starts = [h["result"]["started_at"] for h in hosts if h["result"].get("started_at") is not None]
    verdict = overall_verdict([h["verdict"] for h in hosts], failed, missing)
    record = params.get("stop_record_data")
    return {
        "title": title,
        "experiment": experiment,
        "verdict": verdict,
        "interrupted": {"signal": record.get("signal"), "cause": record.get("cause"), "at": record.get("at"),
                        "at_text": _utc(record.get("at")), "unreachable": record.get("unreachable") or [],
                        "hosts": record.get("hosts") or {}} if record else None,
        "started": _utc(min(starts)) if starts else "n/a",
        "hosts": hosts,
        "ok": sorted(reported),
        "failed": [{"host": h, "msg": failed[h]} for h in sorted(failed)],
        "missing": sorted(set(missing)),
        "options": options,
        "format_version": FORMAT_VERSION,
    }


def _k8s_names(result):
    """{"kubernetes": {namespace, pod, container, node}} when k8s_targets picked the target, else {}."""
    names = (result.get("target") or {}).get("kubernetes")
    if not isinstance(names, dict) or not names:
        return {}
    return {"kubernetes": dict((k, names.get(k)) for k in ("namespace", "pod", "container", "node"))}


def stats(model, paths):
    """The compact summary for set_stats (AWX artifacts) and the task result."""
    return {
        "experiment": model["experiment"],
        "title": model["title"],
        "verdict": model["verdict"],
        "achieved_min_percent": model["options"]["achieved_min_percent"],
        "hosts": {"ok": model["ok"], "missing": model["missing"], "failed": [f["host"] for f in model["failed"]]},
        "per_host": dict((h["host"], dict({
            "verdict": h["verdict"],
            "notes": h["notes"],
            "ended": h["reason"],
            "steady_state_held": h["result"]["steady_state"].get("held"),
            "recovery_seconds": h["result"]["recovery"].get("seconds"),
            "achieved_percent": round(h["achieved_percent"], 1) if h["achieved_percent"] is not None else None,
            "oom_kills": {"app": h["app_kills"], "stressor": h["stressor_kills"]},
        }, **_k8s_names(h["result"]))) for h in model["hosts"]),
        "reports": paths,
    }


def json_document(model):
    return {
        "format_version": FORMAT_VERSION,
        "title": model["title"],
        "experiment": model["experiment"],
        "verdict": model["verdict"],
        "interrupted": dict((k, v) for k, v in model["interrupted"].items() if k != "at_text")
        if model.get("interrupted") else None,
        "hosts": {"ok": model["ok"], "missing": model["missing"], "failed": model["failed"]},
        "verdicts": dict((h["host"], {"verdict": h["verdict"], "notes": h["notes"], "ended": h["ended"],
                                      "requested": h["requested"], "achieved": h["achieved"],
                                      "achieved_percent": h["achieved_percent"], "recovery": h["recovery"]})
                         for h in model["hosts"]),
        "results": dict((h["host"], h["result"]) for h in model["hosts"]),
    }


# ---------------------------------------------------------------- render and write


# Characters Markdown (CommonMark/GFM) acts on in the middle of a line or a table cell. Every value is
# placed mid-line by the template, so line-start markers (#, -, +, 1.) need no escape; an underscore inside
# a word (snake_case) emphasises nothing and is left as it is.
_MD_SPECIAL = re.compile(r"([\\`*\[\]|~]|(?<![A-Za-z0-9])_|_(?![A-Za-z0-9]))")


def md_escape(text):
    """Text from results (titles, host names, process names, messages) as inert Markdown: raw HTML and
    Markdown control characters are escaped, and it stays on one line (a table cell or list item)."""
    text = " ".join(str(text).split())
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _MD_SPECIAL.sub(r"\\\1", text)


def md_code(text):
    """A one-line code span that no backtick, pipe or newline in ``text`` can break out of."""
    text = " ".join(str(text).split()).replace("|", "\\|")
    fence = "`" * (max([len(run) for run in re.findall(r"`+", text)] or [0]) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return "%s%s%s%s%s" % (fence, pad, text, pad, fence)


def _environment():
    import jinja2  # controller only; imported here so the rest of this module loads without it

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATE_DIR),
        autoescape=lambda name: bool(name) and name.endswith(".html.j2"),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["md"] = md_escape
    env.filters["md_code"] = md_code
    return env


def render(model, formats):
    """{format: text}. Rendering is deterministic: same input, same bytes (so changed means changed)."""
    env = _environment()
    out = {}
    for fmt in formats:
        if fmt == "json":
            out[fmt] = json.dumps(json_document(model), indent=2, sort_keys=True) + "\n"
        else:
            name = "report.html.j2" if fmt == "html" else "report.md.j2"
            out[fmt] = env.get_template(name).render(**model)
    return out


def write_game_day(summary, dest, check_mode=False):
    """Write a game day's summary (plugin_utils/_game_day.summary) as JSON and Markdown; returns their paths."""
    dest = os.path.abspath(dest)
    paths = {"json": os.path.join(dest, "game-day-%s.json" % summary["name"]),
             "markdown": os.path.join(dest, "game-day-%s.md" % summary["name"])}
    texts = {paths["json"]: json.dumps(summary, indent=2, sort_keys=True) + "\n",
             paths["markdown"]: _environment().get_template("game_day.md.j2").render(
                 basename=os.path.basename, **summary)}
    write_files(dest, texts, check_mode=check_mode)
    return paths


def write_stresschaos(summary, dest, basename, check_mode=False):
    """Write a StressChaos run's summary (plugin_utils/_stresschaos, its containerRecords and translation
    tables) as JSON and Markdown; returns their paths."""
    _check_basename(basename)
    dest = os.path.abspath(dest)
    paths = {"json": os.path.join(dest, basename + ".json"), "markdown": os.path.join(dest, basename + ".md")}
    texts = {paths["json"]: json.dumps(summary, indent=2, sort_keys=True) + "\n",
             paths["markdown"]: _environment().get_template("stresschaos.md.j2").render(**summary)}
    write_files(dest, texts, check_mode=check_mode)
    return paths


def default_basename(experiment):
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", experiment or "").strip("-.")
    return "stress-report-" + name if name else "stress-report"


def _check_basename(basename):
    if not basename or basename.startswith(".") or not re.match(r"^[A-Za-z0-9._-]+$", basename):
        raise ReportError("basename %r must be a plain file name: letters, digits, '.', '_' and '-', "
                          "not starting with '.'" % basename)


def _missing_dirs(dest):
    """Directories that would have to be created for dest, outermost first; checks they can be."""
    dest = os.path.abspath(dest)
    missing, probe = [], dest
    while not os.path.exists(probe):
        missing.insert(0, probe)
        parent = os.path.dirname(probe)
        if parent == probe:
            break
        probe = parent
    if not os.path.isdir(probe):
        raise ReportError("cannot write the report to %s: %s is not a directory. Nothing was written."
                          % (dest, probe))
    if not os.access(probe, os.W_OK | os.X_OK):
        raise ReportError("cannot write the report to %s: %s is not writable. Nothing was written." % (dest, probe))
    return missing


def _read(path):
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except (IOError, OSError):
        return None


def write_files(dest, files, check_mode=False):
    """Write {path: text} atomically, all or nothing. Returns the paths whose content changed.

    Every file is first written to a temporary file in dest; only when all of
    them are written are they renamed into place. On any error the temporaries
    (and directories this call created) are removed and ReportError is raised.
    """
    to_create = _missing_dirs(dest)
    for path in files:
        if os.path.isdir(path):
            raise ReportError("cannot write %s: a directory of that name exists. Nothing was written." % path)
    changed = [p for p in sorted(files) if _read(p) != files[p].encode("utf-8")]
    if check_mode or not changed:
        return changed
    created, temps = [], []
    try:
        for directory in to_create:
            os.mkdir(directory, 0o755)
            created.append(directory)
        for path in changed:
            fd, tmp = tempfile.mkstemp(dir=dest, prefix="." + os.path.basename(path) + ".", suffix=".tmp")
            temps.append((tmp, path))
            with os.fdopen(fd, "wb") as handle:
                handle.write(files[path].encode("utf-8"))
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(tmp, 0o644)
    except (IOError, OSError) as exc:
        for tmp, _path in temps:
            try:
                os.unlink(tmp)
            except OSError:
                pass
        for directory in reversed(created):
            try:
                os.rmdir(directory)
            except OSError:
                pass
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
            reason += " (is %s writable?)" % dest
        raise ReportError("cannot write the report to %s: %s. Nothing was written." % (dest, reason))
    for tmp, path in temps:
        os.replace(tmp, path)
    return changed


def from_slices(paths):
    """The results and expected hosts of one experiment run as several slices (AWX job slices, serial
    batches, several controllers), from the JSON report each slice wrote.

    Every slice lists the hosts it did not run as missing; a host counts as missing only when no
    slice has a result or a failure for it. Returns (results {host: result or failure}, expected hosts).
    """
    results, expected = {}, set()
    for path in paths:
        try:
            with open(path) as handle:
                document = json.load(handle)
        except (IOError, OSError, ValueError) as exc:
            raise ReportError("cannot read the slice report %s: %s. Nothing was written." % (path, exc))
        if not isinstance(document, dict) or not isinstance(document.get("results"), dict):
            raise ReportError("%s is not a JSON report of chaosfleet.stress.stress_report. Nothing was written." % path)
        if _result.is_incompatible_version(document):
            raise ReportError("%s has format_version %r; this collection reads %d. Nothing was written."
                              % (path, document.get("format_version"), FORMAT_VERSION))
        hosts = document.get("hosts") or {}
        expected.update(hosts.get("ok") or [])
        expected.update(hosts.get("missing") or [])
        failures = dict((f["host"], _result.failed(f["msg"])) for f in hosts.get("failed") or [])
        expected.update(failures)
        for host, value in list(document["results"].items()) + list(failures.items()):
            if host in results:
                raise ReportError("host %s has a result in more than one slice (%s). Nothing was written."
                                  % (host, path))
            results[host] = value
    return results, sorted(expected)


def run(params, check_mode=False):
    """Everything the action does: returns the task result, raises ReportError on bad input."""
    if params.get("slice_reports"):
        results, expected = from_slices(params["slice_reports"])
        params = dict(params, results=results,
                      expected_hosts=sorted(set(params.get("expected_hosts") or []) | set(expected)))
    if params.get("stop_record"):
        record = read_stop_record(params["stop_record"])
        params = dict(params, results=apply_stop_record(params["results"], record), stop_record_data=record)
    formats = list(dict.fromkeys(params.get("formats") or list(FORMATS)))
    for fmt in formats:
        if fmt not in FORMATS:
            raise ReportError("unknown format %r; choose from %s" % (fmt, ", ".join(sorted(FORMATS))))
    model = build(params)
    basename = params.get("basename") or default_basename(model["experiment"])
    _check_basename(basename)
    dest = os.path.abspath(params["dest"])
    paths = dict((fmt, os.path.join(dest, basename + FORMATS[fmt])) for fmt in formats)
    model["paths"] = paths
    texts = render(model, formats)
    changed = write_files(dest, dict((paths[f], texts[f]) for f in formats), check_mode=check_mode)
    return {
        "changed": bool(changed),
        "paths": paths,
        "written": [] if check_mode else changed,
        "stats": stats(model, paths),
    }
