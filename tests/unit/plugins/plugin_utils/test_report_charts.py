"""Charts: every drawn point traced back to its sample (or search level) through the mapping on the <svg>."""

import pytest

from ansible_collections.chaosfleet.stress.plugins.plugin_utils import _report_charts
from ansible_collections.chaosfleet.stress.plugins.plugin_utils._report_charts import Chart, level_chart
from tests.unit.reportfix import MEMORY_FIXTURES, MI, assert_traces, load, memory_results, pixel, render_all, \
    series_points


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    return render_all(tmp_path_factory.mktemp("charts"), memory_results(), formats=["html"])[1]


def html_charts(tmp_path, result):
    return render_all(tmp_path, [result], formats=["html"])[1].hosts[result["host"]]


@pytest.mark.parametrize("host", sorted(MEMORY_FIXTURES))
def test_working_set_points_are_the_samples(page, host):
    samples = load(MEMORY_FIXTURES[host])["samples"]
    assert_traces(page.hosts[host]["memory"], "working_set_bytes", [(s["t"], s["working_set_bytes"]) for s in samples])


@pytest.mark.parametrize("host", sorted(MEMORY_FIXTURES))
def test_requested_level_is_baseline_plus_stress(page, host):
    result = load(MEMORY_FIXTURES[host])
    base = result["baseline"]["working_set_bytes"]["mean"]
    expected = [(s["t"], base + s["stress_bytes"]) for s in result["samples"] if s["stress_bytes"] is not None]
    assert_traces(page.hosts[host]["memory"], "requested_bytes", expected)


@pytest.mark.parametrize("host", sorted(MEMORY_FIXTURES))
def test_cpu_points_are_rates_between_samples(page, host):
    samples = load(MEMORY_FIXTURES[host])["samples"]
    expected = [(b["t"], (b["cpu_usage_seconds"] - a["cpu_usage_seconds"]) / (b["t"] - a["t"]))
                for a, b in zip(samples, samples[1:])]
    assert_traces(page.hosts[host]["cpu"], "cpu_cores", expected)


def test_limit_line_sits_at_the_limit(tmp_path):
    chart = html_charts(tmp_path, load("node1_stressor_oom"))["memory"]
    _want_x, want_y = pixel(chart["map"], 0, 512 * MI)
    _base_x, base_y = pixel(chart["map"], 0, 120 * MI)
    assert chart["hlines"] == [("baseline", round(base_y, 1)), ("limit", round(want_y, 1))]


def test_unlimited_cgroup_draws_no_limit_line(tmp_path):
    result = load("node1_stressor_oom")
    result["target"]["limit_bytes"] = None
    for sample in result["samples"]:
        sample["limit_bytes"] = 9223372036854771712  # cgroup v1 memory.limit_in_bytes when unlimited
    chart = html_charts(tmp_path, result)["memory"]
    assert float(chart["map"]["data-y-max"]) == 600 * MI
    assert [kind for kind, _line in chart["hlines"]] == ["baseline"]
    assert "limit_bytes" not in [name for name, _points in chart["polylines"]]


def test_node_recorded_result_without_baseline_starts_the_requested_level_from_the_samples(tmp_path):
    """What cgroup_sample reads back from a node before any baseline or recovery step ran."""
    result = load("node1_stressor_oom")
    result["baseline"] = None
    result["recovery"] = {"recovered": None, "seconds": None, "within_percent": None, "timeout_seconds": None}
    chart = html_charts(tmp_path, result)["memory"]
    # The requested level starts from the working set sampled before the start (120 MiB, k0-4).
    expected = [(s["t"], 120 * MI + s["stress_bytes"]) for s in result["samples"] if s["stress_bytes"] is not None]
    assert_traces(chart, "requested_bytes", expected)
    assert [kind for kind, _line in chart["hlines"]] == ["limit"]


def test_long_series_keeps_real_samples_and_extremes(tmp_path):
    result = load("node1_stressor_oom")
    template = result["samples"][0]
    samples = []
    for k in range(5000):
        sample = dict(template, t=template["t"] + k, working_set_bytes=(100 + (k * 37) % 101) * MI)
        samples.append(sample)
    samples[2345]["working_set_bytes"] = 400 * MI
    samples[4321]["working_set_bytes"] = 3 * MI
    result["samples"] = samples
    chart = html_charts(tmp_path, result)["memory"]
    drawn = series_points(chart, "working_set_bytes")
    assert len(drawn) <= _report_charts.MAX_POINTS
    by_pixel = dict((tuple(round(v, 1) for v in pixel(chart["map"], s["t"], s["working_set_bytes"])), s)
                    for s in samples)
    assert all(point in by_pixel for point in drawn)
    values = set(by_pixel[p]["working_set_bytes"] for p in drawn)
    assert {400 * MI, 3 * MI} <= values


@pytest.mark.parametrize("host, markers", [
    ("node1", [("stressor", "1"), ("stressor", "1")]),
    ("node2", [("app", "1")]),
    ("node3", [("group", "4")]),  # one marker for the four kills of one group kill
])
def test_oom_markers(page, host, markers):
    chart = page.hosts[host]["memory"]
    assert [(m["data-kind"], m["data-count"]) for m in chart["oom"]] == markers
    first = load(MEMORY_FIXTURES[host])["oom_kills"][0]
    assert float(chart["oom"][0]["data-t"]) == pytest.approx(first["t"] - float(chart["map"]["data-t0"]))


@pytest.mark.parametrize("kind, titles", [("memory", ("seconds since stress start", "working set")),
                                          ("cpu", ("seconds since stress start", "cores"))])
def test_axis_titles(page, kind, titles):
    texts = [text for classes, text in page.hosts["node1"][kind]["texts"] if "axis-title" in classes]
    assert tuple(texts) == titles


# ---------------------------------------------------------------- a search's charts, per probe

WEB = [(20, 48.0), (30, 52.0), (40, 61.0), (50, 88.0), (60, 174.0), (70, 412.0)]
ERRORS = [(20, 0.0), (30, 0.001), (40, 0.002), (50, 0.004), (60, 0.011), (70, 0.032)]


@pytest.fixture(scope="module")
def search_page(tmp_path_factory):
    return render_all(tmp_path_factory.mktemp("search"), [load("node1_search_memory")], formats=["html"])[1]


@pytest.mark.parametrize("probe, figures, slo, y_title", [
    ("web", WEB, 300.0, "latency p95 (ms)"),
    ("errors", ERRORS, 0.05, "value (max during the hold)"),
])
def test_a_probe_chart_plots_its_slo_figure_per_level(search_page, probe, figures, slo, y_title):
    chart = search_page.hosts["node1"]["probe:" + probe]
    # One point per level at (level, figure), coloured by the level's outcome.
    got = [(p["data-level"], p["class"], p["cx"], p["cy"]) for p in chart["points"]]
    want = [(str(level), "point " + ("fail" if level == 70 else "pass"))
            + tuple(round(v, 1) for v in pixel(chart["map"], level, value)) for level, value in figures]
    assert got == want
    assert_traces(chart, "figure", figures)
    # The SLO line at the threshold, labelled.
    assert chart["hlines"] == [("slo", round(pixel(chart["map"], 0, slo)[1], 1))]
    slo_label = "SLO p95 ≤ 300 ms" if probe == "web" else "SLO value ≤ 0.05"
    assert (["hlabel", "slo"], slo_label) in chart["texts"]
    # The edge: a band from the last pass (60%) to the first fail (70%), captioned.
    [(css, left, right)] = chart["bands"]
    assert css == "edge"
    assert (left, right) == pytest.approx((pixel(chart["map"], 60, 0)[0], pixel(chart["map"], 70, 0)[0]), abs=0.11)
    assert (["band-label", "edge"], "edge") in chart["texts"]
    texts = [text for classes, text in chart["texts"]]
    assert "stress, % of the memory limit" in texts and y_title in texts
    assert [text for classes, text in chart["texts"] if classes == ["tick"]][-8:] == [
        "20%", "30%", "40%", "50%", "60%", "70%", "80%", "90%"]


def test_a_probe_chart_spans_the_whole_range_half_a_step_beyond(search_page):
    mapping = search_page.hosts["node1"]["probe:web"]["map"]
    assert (float(mapping["data-x-min"]), float(mapping["data-x-max"])) == (15.0, 95.0)
    assert float(mapping["data-t0"]) == 0.0


def points(*rows):
    return [{"level": level, "value": value, "outcome": outcome, "title": "", "confirmation": confirm}
            for level, value, outcome, confirm in rows]


@pytest.mark.parametrize("given, want", [
    # A figure that grows: the axis fits its largest value or the SLO, on a nice step.
    (dict(points=points((1, 40.0, "pass", False), (2, 412.0, "fail", False)), slo=(300.0, "SLO")),
     {"y": (0.0, 600.0), "hlines": ["slo"], "bands": [], "points": ["pass", "fail"]}),
    # A pass rate keeps 0 to 100.
    (dict(points=points((1, 100.0, "pass", False), (2, 80.0, "fail", False)), y_fixed=(100.0, 25.0)),
     {"y": (0.0, 100.0), "hlines": [], "bands": [], "points": ["pass", "fail"]}),
    # Negative values get room below 0.
    (dict(points=points((1, -2.0, "pass", False), (2, 3.0, "pass", False))),
     {"y": (-4.0, 4.0), "hlines": [], "bands": [], "points": ["pass", "pass"]}),
    # A level without the figure is not drawn; a second hold is a ring, off the line.
    (dict(points=points((1, 5.0, "pass", False), (2, None, "error", False), (1, 6.0, "pass", True))),
     {"y": (0.0, 8.0), "hlines": [], "bands": [], "points": ["pass", "pass confirm"], "line": 1}),
    # The edge below the first level runs from the left of the plot.
    (dict(points=points((1, 500.0, "fail", False)), edge=(None, 1, "edge")),
     {"y": (0.0, 600.0), "hlines": [], "bands": [("edge", 76.0)], "points": ["fail"]}),
])
def test_level_chart(given, want):
    args = dict(x_range=(0.5, 2.5), x_ticks=[(1, "1%"), (2, "2%")], x_title="x", y_title="y",
                y_label=lambda v: "%g" % v)
    args.update(given)
    chart = level_chart(**args)
    assert (chart["y_min"], chart["y_max"]) == want["y"]
    assert [h["css"] for h in chart["hlines"]] == want["hlines"]
    assert [(b["css"], b["x"]) for b in chart["bands"]] == want["bands"]
    assert [p["css"] for p in chart["points"]] == want["points"]
    assert [t["label"] for t in chart["x_ticks"]] == ["1%", "2%"]
    assert len(chart["series"][0]["segments"][0].split()) == want.get("line", len(want["points"]))


def test_a_search_without_an_edge_marks_where_it_ended():
    chart = level_chart(points((1, 5.0, "pass", False), (2, 6.0, "pass", False)), (0.5, 2.5), [(1, "1"), (2, "2")],
                        "x", "y", str, markers=[(2, "search-end", "range_end: no edge up to 2")])
    assert chart["bands"] == [] and [(m["css"], m["label"]) for m in chart["vmarkers"]] == [
        ("search-end", "range_end: no edge up to 2")]


@pytest.mark.parametrize("t, value, expected", [(0, 0, (76, 256)), (10, 100, (936, 34)), (5, 50, (506, 145))])
def test_chart_mapping(t, value, expected):
    chart = Chart("memory", 1000.0, 0, 10, 100)
    assert (chart.x(1000.0 + t), chart.y(value)) == expected
