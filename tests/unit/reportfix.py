"""Shared by the report's unit tests: the recorded results, run() parameters, and reading the rendered HTML back."""

import json
import os
from html.parser import HTMLParser

from ansible_collections.chaosfleet.stress.plugins.plugin_utils._report import run

MI = 1024 * 1024
FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "samples")
MEMORY_FIXTURES = {"node1": "node1_stressor_oom", "node2": "node2_app_oom", "node3": "node3_group_kill"}


def load(name):
    with open(os.path.join(FIXTURES, name + ".json")) as handle:
        return json.load(handle)


def memory_results():
    return dict((host, load(name)) for host, name in MEMORY_FIXTURES.items())


def params(results, dest, **extra):
    out = {"results": results, "dest": str(dest), "expected_hosts": [], "title": None, "basename": None,
           "formats": ["html", "markdown", "json"], "achieved_min_percent": 80.0, "fail_on_app_oom": True}
    out.update(extra)
    return out


def render_all(dest, results, **extra):
    """run() then (its result, the parsed HTML, the HTML, the Markdown, the JSON document)."""
    out = run(params(results, dest, **extra))
    texts = {}
    for fmt, path in out["paths"].items():
        with open(path) as handle:
            texts[fmt] = handle.read()
    document = json.loads(texts["json"]) if "json" in texts else None
    html = texts.get("html")
    return out, parse(html) if html else None, html, texts.get("markdown"), document


class ReportParser(HTMLParser):
    """Collects, per host section, each chart's mapping, its polylines, lines, points, bands and OOM
    markers, and the table rows."""

    def __init__(self):
        HTMLParser.__init__(self)
        self.hosts = {}
        self.rows = []
        self.kills = []
        self.levels = []
        self.tags = set()
        self.links = []
        self._host = None
        self._chart = None
        self._text = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.add(tag)
        for key in ("src", "href"):
            if key in attrs:
                self.links.append(attrs[key])
        classes = (attrs.get("class") or "").split()
        if tag == "section" and "host" in classes:
            self._host = attrs["data-host"]
            self.hosts[self._host] = {}
        elif tag == "svg" and "data-kind" in attrs:
            self._chart = {"map": attrs, "polylines": [], "oom": [], "hlines": [], "points": [], "bands": [],
                           "vmarkers": [], "texts": []}
            key = attrs["data-kind"] if "data-probe" not in attrs else "probe:" + attrs["data-probe"]
            self.hosts[self._host][key] = self._chart
        elif tag == "polyline" and self._chart is not None:
            points = [tuple(float(v) for v in p.split(",")) for p in attrs["points"].split()]
            self._chart["polylines"].append((attrs["data-series"], points))
        elif tag == "line" and "hline" in classes and self._chart is not None:
            self._chart["hlines"].append((classes[1], float(attrs["y1"])))
        elif tag == "line" and "vmarker" in classes and self._chart is not None:
            self._chart["vmarkers"].append((classes[1], float(attrs["x1"])))
        elif tag == "circle" and "point" in classes and self._chart is not None:
            self._chart["points"].append(dict(attrs, cx=float(attrs["cx"]), cy=float(attrs["cy"])))
        elif tag == "rect" and "band" in classes and self._chart is not None:
            self._chart["bands"].append((classes[1], float(attrs["x"]), float(attrs["x"]) + float(attrs["width"])))
        elif tag == "text" and self._chart is not None:
            self._text = (classes, [])
        elif tag == "g" and "oom" in classes and self._chart is not None:
            self._chart["oom"].append(attrs)
        elif tag == "tr" and "data-host" in attrs:
            self.rows.append(attrs)
        elif tag == "tr" and "kill" in classes:
            self.kills.append(dict(attrs, host=self._host))
        elif tag == "tr" and "level" in classes:
            self.levels.append(dict(attrs, host=self._host))

    def handle_data(self, data):
        if self._text is not None:
            self._text[1].append(data)

    def handle_endtag(self, tag):
        if tag == "svg":
            self._chart = None
        elif tag == "text" and self._text is not None:
            if self._chart is not None:
                self._chart["texts"].append((self._text[0], "".join(self._text[1]).strip()))
            self._text = None


def parse(html):
    parser = ReportParser()
    parser.feed(html)
    return parser


def pixel(mapping, t, value):
    """The chart's documented mapping from (t, value) to SVG coordinates."""
    left, top = float(mapping["data-plot-left"]), float(mapping["data-plot-top"])
    width, height = float(mapping["data-plot-width"]), float(mapping["data-plot-height"])
    x_min, x_max = float(mapping["data-x-min"]), float(mapping["data-x-max"])
    y_min, y_max = float(mapping["data-y-min"]), float(mapping["data-y-max"])
    t0 = float(mapping["data-t0"])
    return (left + (t - t0 - x_min) / (x_max - x_min) * width,
            top + height - (value - y_min) / (y_max - y_min) * height)


def series_points(chart, name):
    return [p for series, points in chart["polylines"] if series == name for p in points]


def assert_traces(chart, name, expected):
    """Every drawn point is the expected (t, value) pair at its mapped pixel, in order (0.05 px rounding)."""
    drawn = series_points(chart, name)
    assert len(drawn) == len(expected) > 0
    for (x, y), (t, value) in zip(drawn, expected):
        want_x, want_y = pixel(chart["map"], t, value)
        assert abs(x - want_x) <= 0.051 and abs(y - want_y) <= 0.051, (name, t, value, x, y, want_x, want_y)
