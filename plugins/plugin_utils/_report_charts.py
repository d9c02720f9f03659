# -*- coding: utf-8 -*-
# Copyright (c) 2026, chaosfleet.stress contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The report's charts: plain SVG geometry computed here and laid out by the HTML template.

No charting library, so the report has no script and opens with no network. Every plotted
point of a series is one real sample (or one search level), at a coordinate given by the
mapping written on the <svg> element (data-* attributes), so tests can trace points back.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import math

from ansible_collections.chaosfleet.stress.plugins.module_utils._summary import cpu_rates
from ansible_collections.chaosfleet.stress.plugins.module_utils._units import format_bytes
from ansible_collections.chaosfleet.stress.plugins.plugin_utils._report_text import time_label
from ansible_collections.chaosfleet.stress.plugins.plugin_utils._report_verdicts import baseline_mean, requested_cores

MAX_POINTS = 1500  # per series; longer series keep each bucket's min and max sample
UNLIMITED = 2 ** 60


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
    """Plot area and the linear mapping (t, value) -> SVG pixels, written onto the <svg> for tests.

    The x axis is time (seconds from t0) unless finish_axes is given its ticks: a search's
    charts put stress levels there, with t0 = 0.
    """

    WIDTH = 960
    LEFT, RIGHT, TOP, BOTTOM = 76, 24, 34, 44

    def __init__(self, kind, t0, x_min, x_max, y_max, height=300, y_min=0.0,
                 x_title="seconds since stress start", y_title=""):
        self.kind = kind
        self.t0 = t0
        self.x_min = x_min
        self.x_max = x_max if x_max > x_min else x_min + 1
        self.y_min = y_min
        self.y_max = y_max if y_max > y_min else y_min + 1.0
        self.x_title, self.y_title = x_title, y_title
        self.width = self.WIDTH
        self.height = height
        self.plot_left = self.LEFT
        self.plot_top = self.TOP
        self.plot_width = self.WIDTH - self.LEFT - self.RIGHT
        self.plot_height = height - self.TOP - self.BOTTOM
        self.series, self.hlines, self.bands, self.vmarkers, self.oom, self.points = [], [], [], [], [], []
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

    def add_band(self, css, t_from, t_to, v_low=None, v_high=None, label="", caption=""):
        """A shaded span; ``label`` is its tooltip, ``caption`` a text written at its top."""
        x1, x2 = self.clamp_x(self.x(t_from)), self.clamp_x(self.x(t_to))
        if x2 <= x1:
            return
        top = self.plot_top if v_high is None else max(self.y(v_high), self.plot_top)
        bottom = self.plot_top + self.plot_height if v_low is None else self.y(v_low)
        self.bands.append({"css": css, "x": round(x1, 1), "width": round(x2 - x1, 1), "y": round(top, 1),
                           "height": round(bottom - top, 1), "label": label, "caption": caption,
                           "caption_x": round((x1 + x2) / 2.0, 1), "caption_y": round(top + 14, 1)})

    def add_point(self, css, t, value, title, data=()):
        """One marker (a search level); ``data`` [(name, value)] goes onto the element as data-* attributes."""
        self.points.append({"css": css, "x": round(self.x(t), 1), "y": round(self.y(value), 1), "title": title,
                            "data": list(data)})

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

    def finish_axes(self, y_step, y_label, x_ticks=None):
        """Grid and tick labels: y every ``y_step``; x at ``x_ticks`` [(value, label)], or in time steps."""
        if x_ticks is None:
            span = self.x_max - self.x_min
            step = _time_step(span)
            tick = math.ceil(self.x_min / step) * step
            while tick <= self.x_max + 1e-9:
                self.x_ticks.append({"x": round(self.x(self.t0 + tick), 1), "label": time_label(tick)})
                tick += step
        else:
            self.x_ticks = [{"x": round(self.x(self.t0 + value), 1), "label": label} for value, label in x_ticks]
        value = self.y_min
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
            "oom": self.oom, "points": self.points, "x_ticks": self.x_ticks, "y_ticks": self.y_ticks,
            "x_title": self.x_title, "y_title": self.y_title,
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
                time_label(round(kill["t"] - chart.t0, 1)), kill.get("victim"), kill.get("comm"), kill.get("pid"),
                kill.get("source")),
        })
    for _key, kills in sorted(groups.items()):
        first = min(k["t"] for k in kills)
        apps = sum(1 for k in kills if k.get("victim") == "app")
        chart.oom.append({
            "kind": "group", "x": round(chart.x(first), 1), "t": first - chart.t0, "count": len(kills),
            "label": "group kill ×%d" % len(kills),
            "title": "OOM group kill at %s: %d processes (%d app, %d stressor): %s" % (
                time_label(round(first - chart.t0, 1)), len(kills), apps, len(kills) - apps,
                ", ".join("%s %s (pid %s)" % (k.get("victim"), k.get("comm"), k.get("pid")) for k in kills)),
        })
    for marker in chart.oom:
        # Labels near the right edge go left of their marker so they stay inside the picture.
        marker["label_left"] = marker["x"] > chart.plot_left + chart.plot_width - 150
    chart.oom.sort(key=lambda m: m["x"])


def _pre_stress_level(result):
    """Where the stress starts from: the baseline mean, else the mean working set sampled before the start."""
    base = baseline_mean(result)
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
    base = baseline_mean(result)
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
    chart = Chart("memory", t0, x_min, x_max, y_max, y_title="working set")
    _stress_window(chart, result)
    rec = result["recovery"]
    if base is not None and result.get("ended_at") is not None and rec.get("within_percent") is not None:
        share = rec["within_percent"] / 100.0
        chart.add_band("recovery", result["ended_at"], result["ended_at"] + (rec.get("timeout_seconds") or 0),
                       base * (1 - share), base * (1 + share), label="recovery band +/-%g%%" % rec["within_percent"])
        if rec.get("recovered") and rec.get("seconds") is not None:
            chart.add_vmarker("recovered", result["ended_at"] + rec["seconds"],
                              "recovered +%s" % time_label(round(rec["seconds"], 1)), top=True)
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
    chart = Chart("cpu", t0, x_min, x_max, step * math.ceil(top / step), height=220, y_title="cores")
    _stress_window(chart, result)
    if quota:
        chart.add_hline("limit", quota, "quota %.2f cores" % quota)
    if wanted is not None:
        chart.add_hline("requested", wanted, "requested %.2f cores" % wanted)
    chart.add_series("cpu_cores", "cpu", "CPU usage", rates)
    _oom_markers(chart, result)
    chart.finish_axes(step, lambda v: "%g" % round(v, 3))
    return chart.data()


def level_chart(points, x_range, x_ticks, x_title, y_title, y_label, y_fixed=None, slo=None, edge=None, markers=()):
    """One figure per stress level (a search's probe): a point per level, the SLO line, the edge band.

    ``points``: [{"level", "value" (None: not drawn), "outcome" (pass, fail, error: the point's colour),
    "title", "confirmation"}]. ``x_range``: (x_min, x_max) in level units; ``x_ticks``: [(level, label)].
    ``y_fixed``: (y_max, step) for a bounded figure such as a pass rate, else the axis fits the values.
    ``slo``: (threshold, label); ``edge``: (last pass or None, first fail, caption); ``markers``:
    [(level, css, label)] for a search that ended without an edge.
    """
    values = [p["value"] for p in points if p["value"] is not None] + ([slo[0]] if slo else [])
    if y_fixed:
        y_max, step = y_fixed
        y_min = 0.0
    else:
        top = max(values + [0.0])
        bottom = min(values + [0.0])
        step = _nice_step(max(top - bottom, abs(top), 1e-9) * 1.12, 4, (1, 2, 2.5, 5, 10))
        y_max = step * math.ceil(top * 1.12 / step) if top > 0 else step
        y_min = -step * math.ceil(-bottom * 1.12 / step) if bottom < 0 else 0.0
    chart = Chart("level", 0.0, x_range[0], x_range[1], y_max, height=240, y_min=y_min, x_title=x_title,
                  y_title=y_title)
    if edge:
        low = edge[0] if edge[0] is not None else chart.x_min
        chart.add_band("edge", low, edge[1], label=edge[2], caption="edge")
    if slo:
        chart.add_hline("slo", slo[0], slo[1])
    runs = sorted((p for p in points if p["value"] is not None and not p.get("confirmation")),
                  key=lambda p: p["level"])
    chart.add_series("figure", "level-line", y_title, [(p["level"], p["value"]) for p in runs])
    for point in points:
        if point["value"] is not None:
            css = point["outcome"] + (" confirm" if point.get("confirmation") else "")
            chart.add_point(css, point["level"], point["value"], point["title"],
                            data=(("level", point["level"]), ("outcome", point["outcome"]), ("value", point["value"])))
    for level, css, label in markers:
        chart.add_vmarker(css, level, label, anchor="end")
    chart.finish_axes(step, y_label, x_ticks=x_ticks)
    return chart.data()
