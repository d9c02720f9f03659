"""stress_report: rendering from recorded fixtures, traced back to the samples; bad input; writing."""

import copy
import json
import os
import subprocess
import uuid
from html.parser import HTMLParser
from unittest import mock

import pytest

from ansible_collections.chaosfleet.stress.plugins.plugin_utils import _report
from ansible_collections.chaosfleet.stress.plugins.plugin_utils._report import ReportError, run

MI = 1024 * 1024
FIXTURES = os.path.join(os.path.dirname(__file__), "..", "..", "fixtures", "samples")
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


class ReportParser(HTMLParser):
    """Collects, per host section, each chart's mapping, its polylines and OOM markers, and table rows."""

    def __init__(self):
        HTMLParser.__init__(self)
        self.hosts = {}
        self.rows = []
        self.kills = []
        self.tags = set()
        self.links = []
        self._host = None
        self._chart = None

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
            self._chart = {"map": attrs, "polylines": [], "oom": [], "hlines": []}
            self.hosts[self._host][attrs["data-kind"]] = self._chart
        elif tag == "polyline" and self._chart is not None:
            points = [tuple(float(v) for v in p.split(",")) for p in attrs["points"].split()]
            self._chart["polylines"].append((attrs["data-series"], points))
        elif tag == "line" and "hline" in classes and self._chart is not None:
            self._chart["hlines"].append((classes[1], float(attrs["y1"])))
        elif tag == "g" and "oom" in classes and self._chart is not None:
            self._chart["oom"].append(attrs)
        elif tag == "tr" and "data-host" in attrs:
            self.rows.append(attrs)
        elif tag == "tr" and "kill" in classes:
            self.kills.append(dict(attrs, host=self._host))

    def handle_endtag(self, tag):
        if tag == "svg":
            self._chart = None


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


@pytest.fixture
def rendered(tmp_path):
    results = memory_results()
    results["node5"] = None
    results["node6"] = {"failed": True, "msg": "cgroup_info: no container matches 5e1f on node6"}
    out = run(params(results, tmp_path, expected_hosts=["node1", "node2", "node3", "node5", "node6", "node7"]))
    with open(out["paths"]["html"]) as handle:
        html = handle.read()
    with open(out["paths"]["markdown"]) as handle:
        markdown = handle.read()
    with open(out["paths"]["json"]) as handle:
        document = json.load(handle)
    return out, parse(html), html, markdown, document


@pytest.mark.parametrize("host", sorted(MEMORY_FIXTURES))
def test_working_set_points_are_the_samples(rendered, host):
    samples = load(MEMORY_FIXTURES[host])["samples"]
    chart = rendered[1].hosts[host]["memory"]
    assert_traces(chart, "working_set_bytes", [(s["t"], s["working_set_bytes"]) for s in samples])


@pytest.mark.parametrize("host", sorted(MEMORY_FIXTURES))
def test_requested_level_is_baseline_plus_stress(rendered, host):
    result = load(MEMORY_FIXTURES[host])
    base = result["baseline"]["working_set_bytes"]["mean"]
    chart = rendered[1].hosts[host]["memory"]
    expected = [(s["t"], base + s["stress_bytes"]) for s in result["samples"] if s["stress_bytes"] is not None]
    assert_traces(chart, "requested_bytes", expected)


@pytest.mark.parametrize("host", sorted(MEMORY_FIXTURES))
def test_cpu_points_are_rates_between_samples(rendered, host):
    samples = load(MEMORY_FIXTURES[host])["samples"]
    expected = [(b["t"], (b["cpu_usage_seconds"] - a["cpu_usage_seconds"]) / (b["t"] - a["t"]))
                for a, b in zip(samples, samples[1:])]
    assert_traces(rendered[1].hosts[host]["cpu"], "cpu_cores", expected)


def test_limit_line_sits_at_the_limit(tmp_path):
    out = run(params([load("node1_stressor_oom")], tmp_path, formats=["html"]))
    with open(out["paths"]["html"]) as handle:
        html = handle.read()
    chart = parse(html).hosts["node1"]["memory"]
    _want_x, want_y = pixel(chart["map"], 0, 512 * MI)
    _base_x, base_y = pixel(chart["map"], 0, 120 * MI)
    assert chart["hlines"] == [("baseline", round(base_y, 1)), ("limit", round(want_y, 1))]


def test_unlimited_cgroup_draws_no_limit_line(tmp_path):
    result = load("node1_stressor_oom")
    result["target"]["limit_bytes"] = None
    for sample in result["samples"]:
        sample["limit_bytes"] = 9223372036854771712  # cgroup v1 memory.limit_in_bytes when unlimited
    out = run(params([result], tmp_path, formats=["html"]))
    with open(out["paths"]["html"]) as handle:
        html = handle.read()
    chart = parse(html).hosts["node1"]["memory"]
    assert float(chart["map"]["data-y-max"]) == 600 * MI
    assert [kind for kind, _line in chart["hlines"]] == ["baseline"]
    assert "limit_bytes" not in [name for name, _points in chart["polylines"]]


def test_node_recorded_result_without_baseline_or_recovery_check(tmp_path):
    """What cgroup_sample reads back from a node before any baseline or recovery step ran."""
    result = load("node1_stressor_oom")
    result["baseline"] = None
    result["recovery"] = {"recovered": None, "seconds": None, "within_percent": None, "timeout_seconds": None}
    result["steady_state"] = {"held": None, "probes": []}
    out = run(params([result], tmp_path))
    node1 = out["stats"]["per_host"]["node1"]
    assert (node1["verdict"], node1["notes"]) == ("inconclusive", ["no steady-state probes"])
    with open(out["paths"]["html"]) as handle:
        chart = parse(handle.read()).hosts["node1"]["memory"]
    # The requested level starts from the working set sampled before the start (120 MiB, k0-4).
    expected = [(s["t"], 120 * MI + s["stress_bytes"]) for s in result["samples"] if s["stress_bytes"] is not None]
    assert_traces(chart, "requested_bytes", expected)
    assert [kind for kind, _line in chart["hlines"]] == ["limit"]


def test_figures_cover_the_stress_window_whatever_the_node_summarized(tmp_path):
    result = load("node1_stressor_oom")
    result["summary"] = {"count": 1, "cpu_cores": 9.9, "working_set_bytes": {"max": 1}}   # not trusted for figures
    out = run(params([result], tmp_path, formats=["markdown"]))
    with open(out["paths"]["markdown"]) as handle:
        markdown = handle.read()
    # k5-27: peak 500 MiB; 1.05 CPU seconds per second (see test_summary).
    assert "- Peak working set 500.0 MiB (98% of the 512.0 MiB limit), baseline 120.0 MiB" in markdown
    assert "- CPU 1.05 cores during the stress, throttled 0%" in markdown


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
    out = run(params([result], tmp_path, formats=["html"]))
    with open(out["paths"]["html"]) as handle:
        chart = parse(handle.read()).hosts["node1"]["memory"]
    drawn = series_points(chart, "working_set_bytes")
    assert len(drawn) <= _report.MAX_POINTS
    by_pixel = dict((tuple(round(v, 1) for v in pixel(chart["map"], s["t"], s["working_set_bytes"])), s)
                    for s in samples)
    assert all(point in by_pixel for point in drawn)
    values = set(by_pixel[p]["working_set_bytes"] for p in drawn)
    assert {400 * MI, 3 * MI} <= values


def test_missing_and_failed_hosts_are_listed(rendered):
    out, page, _html, markdown, document = rendered
    rows = dict((r["data-host"], r["class"]) for r in page.rows)
    assert rows == {"node1": "host-row", "node2": "host-row", "node3": "host-row",
                    "node5": "missing-row", "node7": "missing-row", "node6": "failed-row"}
    assert sorted(page.hosts) == ["node1", "node2", "node3"]
    assert "| node5 | **missing** |" in markdown and "| node7 | **missing** |" in markdown
    assert "cgroup_info: no container matches 5e1f on node6" in markdown
    assert document["hosts"] == {"ok": ["node1", "node2", "node3"], "missing": ["node5", "node7"],
                                 "failed": [{"host": "node6", "msg": "cgroup_info: no container matches 5e1f on node6"}]}
    assert out["stats"]["hosts"] == {"ok": ["node1", "node2", "node3"], "missing": ["node5", "node7"],
                                     "failed": ["node6"]}


def test_app_oom_kill_is_attributed_to_the_app(rendered):
    out, page, _html, markdown, document = rendered
    chart = page.hosts["node2"]["memory"]
    assert [(m["data-kind"], m["data-count"]) for m in chart["oom"]] == [("app", "1")]
    kill = load("node2_app_oom")["oom_kills"][0]
    assert float(chart["oom"][0]["data-t"]) == pytest.approx(kill["t"] - float(chart["map"]["data-t0"]))
    assert [(k["host"], k["data-victim"]) for k in page.kills if k["host"] == "node2"] == [("node2", "app")]
    node2 = out["stats"]["per_host"]["node2"]
    assert node2["verdict"] == "fail"
    assert node2["oom_kills"] == {"app": 1, "stressor": 0}
    assert "OOM killer took app process gunicorn (pid 3121)" in node2["notes"]
    assert "| 22.7 s | 3121 | `gunicorn` | **app** | no | dmesg |" in markdown
    assert document["verdicts"]["node2"]["verdict"] == "fail"


def test_stressor_kills_are_stressor_markers(rendered):
    out, page, _html, _markdown, _document = rendered
    chart = page.hosts["node1"]["memory"]
    assert [m["data-kind"] for m in chart["oom"]] == ["stressor", "stressor"]
    assert out["stats"]["per_host"]["node1"]["oom_kills"] == {"app": 0, "stressor": 2}
    assert out["stats"]["per_host"]["node1"]["verdict"] == "pass"


def test_group_kill_is_one_marker_with_every_victim(rendered):
    out, page, _html, markdown, _document = rendered
    chart = page.hosts["node3"]["memory"]
    assert [(m["data-kind"], m["data-count"]) for m in chart["oom"]] == [("group", "4")]
    rows = [(k["data-victim"], k["data-group"]) for k in page.kills if k["host"] == "node3"]
    assert sorted(rows) == [("app", "true"), ("app", "true"), ("stressor", "true"), ("stressor", "true")]
    assert "2 / 2 (group kill)" in markdown
    assert out["stats"]["per_host"]["node3"]["oom_kills"] == {"app": 2, "stressor": 2}


def test_html_is_self_contained(rendered):
    _out, page, html, _markdown, _document = rendered
    assert "script" not in page.tags and "link" not in page.tags and "img" not in page.tags
    assert all(link.startswith("#host-") for link in page.links)
    assert html.count("http://") == html.count('xmlns="http://www.w3.org/2000/svg"')
    assert "https://" not in html and "@import" not in html and "url(" not in html


def test_json_keeps_the_input_and_adds_verdicts(rendered):
    document = rendered[4]
    assert document["format_version"] == 1
    assert document["experiment"] == "checkout-memory-pressure"
    assert document["verdict"] == "fail"
    assert document["results"]["node1"]["samples"] == load("node1_stressor_oom")["samples"]
    assert dict((h, v["verdict"]) for h, v in document["verdicts"].items()) == {
        "node1": "pass", "node2": "fail", "node3": "fail"}


def test_verdict_table_shows_how_each_stress_ended(rendered):
    markdown = rendered[3]
    assert "| stopped by guard oom_kills |" in markdown
    assert "| stopped on request |" in markdown
    assert "| target container went away |" in markdown
    assert "+358.0 MiB (90% of requested)" in markdown


def test_cpu_quota_caps_what_counts_as_achieved(tmp_path):
    out = run(params([load("node4_cpu_throttled")], tmp_path))
    node4 = out["stats"]["per_host"]["node4"]
    # 0.48 extra cores for 100% of a 0.5-core quota (0.5 cores) asked: load is a share of the quota.
    assert node4["achieved_percent"] == 96.0
    assert node4["verdict"] == "pass"


def result_with(**changes):
    result = load("node1_stressor_oom")
    for key, value in changes.items():
        if key == "held":
            result["steady_state"]["held"] = value
        elif key == "recovery":
            result["recovery"] = value
        elif key == "recovered":
            result["recovery"]["recovered"] = value
        else:
            result[key] = value
    return result


APP_KILL = [{"t": 1764316820.0, "pid": 77, "comm": "java", "victim": "app", "group_kill": False, "source": "dmesg"}]


@pytest.mark.parametrize("result, options, verdict, note", [
    (result_with(), {}, "pass", None),
    (result_with(held=False), {}, "fail", "steady state broke"),
    (result_with(recovered=False), {}, "fail", "working set not back within 5% of baseline after 30s"),
    (result_with(recovery={"recovered": False, "seconds": None, "within_percent": None, "timeout_seconds": None}),
     {}, "fail", "working set not back to baseline"),
    (result_with(oom_kills=APP_KILL), {}, "fail", "OOM killer took app process java (pid 77)"),
    (result_with(oom_kills=APP_KILL), {"fail_on_app_oom": False}, "pass", "OOM killer took app process java (pid 77)"),
    (result_with(held=None), {}, "inconclusive", "no steady-state probes"),
    (result_with(status="running"), {}, "inconclusive", "result collected while the stress was still running"),
    (result_with(achieved={"working_set_increase_bytes": 100 * MI, "cpu_cores": 1.0}), {}, "inconclusive",
     "stress reached only 26% of what was asked (capped by the limit or quota)"),  # 100 of 392 MiB room
    (result_with(achieved={"working_set_increase_bytes": 100 * MI, "cpu_cores": 1.0}),
     {"achieved_min_percent": 20.0}, "pass", None),
    (result_with(samples=[], status="aborted", reason="attach_failed"), {}, "error", "no samples recorded"),
])
def test_host_verdict(tmp_path, result, options, verdict, note):
    out = run(params([result], tmp_path, formats=["json"], **options))
    got = out["stats"]["per_host"]["node1"]
    assert got["verdict"] == verdict
    if note:
        assert note in got["notes"]


@pytest.mark.parametrize("verdicts, failed, missing, expected", [
    (["pass", "pass"], {}, [], "pass"),
    (["pass"], {}, ["n2"], "inconclusive"),
    (["pass"], {"n2": "x"}, [], "error"),
    (["pass", "fail"], {"n2": "x"}, ["n3"], "fail"),
    ([], {}, ["n1"], "inconclusive"),
])
def test_overall_verdict(verdicts, failed, missing, expected):
    assert _report.overall_verdict(verdicts, failed, missing) == expected


def test_all_hosts_missing_still_renders(tmp_path):
    out = run(params({"node1": None}, tmp_path, expected_hosts=["node1", "node2"]))
    assert out["stats"]["hosts"] == {"ok": [], "missing": ["node1", "node2"], "failed": []}
    assert os.path.basename(out["paths"]["html"]) == "stress-report.html"
    with open(out["paths"]["html"]) as handle:
        assert [r["data-host"] for r in parse(handle.read()).rows] == ["node1", "node2"]


def test_unreachable_and_skipped_task_results_count_as_missing(tmp_path):
    results = {"node1": load("node1_stressor_oom"), "node2": {"unreachable": True, "msg": "ssh: timeout"},
               "node3": {"skipped": True}}
    out = run(params(results, tmp_path, formats=["json"]))
    assert out["stats"]["hosts"]["missing"] == ["node2", "node3"]


def listing(path):
    return sorted(os.listdir(str(path))) if os.path.exists(str(path)) else None


def incompatible():
    return [load("node1_stressor_oom"), load("node9_format_v2")]


def mixed_experiments():
    return [load("node1_stressor_oom"), load("node4_cpu_throttled")]


def duplicated():
    return [load("node1_stressor_oom"), load("node1_stressor_oom")]


def sample_without_time():
    result = load("node1_stressor_oom")
    del result["samples"][3]["t"]
    return [result]


def without_version():
    result = load("node1_stressor_oom")
    del result["format_version"]
    return [result]


@pytest.mark.parametrize("results, extra, message", [
    (incompatible, {}, "incompatible format version: node9 has format_version 2; this collection reads "
                       "format_version 1. Nothing was written."),
    (lambda: [dict(load("node1_stressor_oom"), format_version="1")], {}, "node1 has format_version '1'"),
    (without_version, {}, "results[0] has no format_version"),
    (mixed_experiments, {}, "different experiments (checkout-cpu-quota, checkout-memory-pressure)"),
    (duplicated, {}, "host node1 has more than one result"),
    (sample_without_time, {}, "node1: every sample needs a numeric t"),
    (lambda: [dict(load("node1_stressor_oom"), samples={})], {}, "node1: samples must be a list"),
    (lambda: [dict(load("node1_stressor_oom"), experiment="")], {}, "node1: experiment name missing"),
    (lambda: [dict(load("node1_stressor_oom"), host=None)], {}, "results[0] has no host name"),
    (lambda: [dict(load("node1_stressor_oom"), oom_kills=["4242"])], {}, "node1: oom_kills must be a list of OOM"),
    (lambda: [dict(load("node1_stressor_oom"), recovery=[1])], {}, "node1: recovery must be a mapping"),
    (lambda: [dict(load("node1_stressor_oom"), steady_state={"probes": "ok"})], {},
     "node1: steady_state.probes must be a list of mappings"),
    (lambda: ["node1"], {}, "results[0] is a str, not an experiment result"),
    (lambda: "node1", {}, "results must be a list of experiment results or a mapping"),
    (lambda: [], {}, "nothing to report"),
    (lambda: [load("node1_stressor_oom")], {"basename": "../escape"}, "basename '../escape' must be a plain"),
    (lambda: [load("node1_stressor_oom")], {"basename": ".hidden"}, "must be a plain file name"),
    (lambda: [load("node1_stressor_oom")], {"formats": ["pdf"]}, "unknown format 'pdf'"),
])
def test_bad_input_writes_nothing(tmp_path, results, extra, message):
    dest = tmp_path / "reports"
    with pytest.raises(ReportError) as info:
        run(params(results(), dest, **extra))
    assert message in str(info.value)
    assert listing(dest) is None


@pytest.fixture
def read_only_dir(tmp_path):
    """A directory nobody can write into, root included: a read-only tmpfs when root, mode 0555 otherwise."""
    path = tmp_path / ("cflab-ro-" + uuid.uuid4().hex[:8])
    path.mkdir()
    if os.geteuid() != 0:
        path.chmod(0o555)
        yield path
        path.chmod(0o755)
        return
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(path)],
                             capture_output=True, check=False)
    if mounted.returncode != 0:
        pytest.skip("cannot mount a read-only tmpfs here: %s" % mounted.stderr.decode().strip())
    try:
        yield path
    finally:
        subprocess.run(["umount", str(path)], check=True)


def test_read_only_dest_writes_nothing(read_only_dir):
    with pytest.raises(ReportError, match="is not writable. Nothing was written."):
        run(params([load("node1_stressor_oom")], read_only_dir))
    with pytest.raises(ReportError, match="is not writable"):
        run(params([load("node1_stressor_oom")], read_only_dir / "sub" / "dir"))
    assert listing(read_only_dir) == []


@pytest.mark.parametrize("layout, dest, message", [
    ({"afile": "x"}, "afile", "afile is not a directory"),
    ({"afile": "x"}, "afile/reports", "afile is not a directory"),
    ({"out/stress-report-checkout-memory-pressure.md/": None}, "out",
     "stress-report-checkout-memory-pressure.md: a directory of that name exists"),
])
def test_unwritable_dest_writes_nothing(tmp_path, layout, dest, message):
    for rel, content in layout.items():
        target = tmp_path / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if content is None:
            target.mkdir()
        else:
            target.write_text(content)
    before = sorted(str(p) for p in tmp_path.rglob("*"))
    with pytest.raises(ReportError, match=message):
        run(params([load("node1_stressor_oom")], tmp_path / dest))
    assert sorted(str(p) for p in tmp_path.rglob("*")) == before


def test_failure_halfway_leaves_nothing_behind(tmp_path):
    dest = tmp_path / "new" / "reports"
    real = _report.tempfile.mkstemp
    calls = []

    def second_fails(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        return real(*args, **kwargs)

    with mock.patch.object(_report.tempfile, "mkstemp", side_effect=second_fails):
        with pytest.raises(ReportError, match="No space left on device. Nothing was written."):
            run(params([load("node1_stressor_oom")], dest))
    assert listing(tmp_path) == []


def test_check_mode_writes_nothing_and_reports_paths(tmp_path):
    dest = tmp_path / "reports"
    out = run(params([load("node1_stressor_oom")], dest), check_mode=True)
    assert out["changed"] is True and out["written"] == []
    assert out["paths"]["html"] == str(dest / "stress-report-checkout-memory-pressure.html")
    assert listing(dest) is None


def test_changed_only_when_content_changes(tmp_path):
    first = run(params([load("node1_stressor_oom")], tmp_path))
    assert first["changed"] is True and len(first["written"]) == 3
    mtimes = dict((p, os.stat(p).st_mtime_ns) for p in first["paths"].values())
    again = run(params([load("node1_stressor_oom")], tmp_path))
    assert again["changed"] is False and again["written"] == []
    assert dict((p, os.stat(p).st_mtime_ns) for p in again["paths"].values()) == mtimes
    assert run(params([load("node1_stressor_oom")], tmp_path), check_mode=True)["changed"] is False
    retitled = run(params([load("node1_stressor_oom")], tmp_path, title="Checkout, second run"))
    assert retitled["changed"] is True and len(retitled["written"]) == 3
    assert sorted(os.listdir(str(tmp_path))) == sorted(os.path.basename(p) for p in first["paths"].values())


def test_formats_and_basename(tmp_path):
    out = run(params([load("node1_stressor_oom")], tmp_path, formats=["markdown"], basename="canary.v2"))
    assert out["paths"] == {"markdown": str(tmp_path / "canary.v2.md")}
    assert os.listdir(str(tmp_path)) == ["canary.v2.md"]


class FakeTask:
    def __init__(self, args, check_mode=False):
        self.args = args
        self.check_mode = check_mode
        self.async_val = 0
        self.diff = False
        self.action = "chaosfleet.stress.stress_report"


def action(args, check_mode=False):
    from ansible_collections.chaosfleet.stress.plugins.action.stress_report import ActionModule
    return ActionModule(FakeTask(args, check_mode), mock.MagicMock(), mock.MagicMock(), loader=None,
                        templar=None, shared_loader_obj=None)


def test_action_runs_the_report(tmp_path):
    got = action({"results": [load("node1_stressor_oom")], "dest": str(tmp_path)}).run(task_vars={})
    assert got["changed"] is True
    assert got["stats"]["per_host"]["node1"]["verdict"] == "pass"


def test_action_passes_check_mode(tmp_path):
    got = action({"results": [load("node1_stressor_oom")], "dest": str(tmp_path / "r")}, True).run(task_vars={})
    assert got["changed"] is True and listing(tmp_path / "r") is None


@pytest.mark.parametrize("args, message", [
    ({"results": [], "dest": "/tmp", "formats": ["pdf"]}, "value of formats must be one or more of"),
    ({"dest": "/tmp"}, "one of the following is required: results, slice_reports"),
    ({"dest": "/tmp", "results": [], "slice_reports": ["/x.json"]}, "mutually exclusive: results|slice_reports"),
    ({"results": incompatible(), "dest": "/tmp/cflab-never"}, "incompatible format version"),
])
def test_action_errors(args, message):
    from ansible.errors import AnsibleActionFail
    with pytest.raises(AnsibleActionFail, match=message):
        action(args).run(task_vars={})
    assert not os.path.exists("/tmp/cflab-never")


def test_copy_of_input_is_not_modified(tmp_path):
    result = load("node2_app_oom")
    before = copy.deepcopy(result)
    run(params([result], tmp_path))
    assert result == before


def slice_report(tmp_path, name, results, expected):
    out = run(params(results, tmp_path / name, expected_hosts=expected, formats=["json"], basename=name))
    return out["paths"]["json"]


def test_slices_make_one_report(tmp_path):
    node1, node2 = load("node1_stressor_oom"), load("node2_app_oom")
    everyone = ["node1", "node2", "node3"]
    first = slice_report(tmp_path, "s1", {"node1": node1}, everyone)
    second = slice_report(tmp_path, "s2", {"node2": node2, "node3": {"failed": True, "msg": "boom"}}, everyone)
    got = run(params(None, tmp_path / "all", slice_reports=[first, second], formats=["json"], basename="all"))
    document = json.loads((tmp_path / "all" / "all.json").read_text())
    assert sorted(document["results"]) == ["node1", "node2"] and document["hosts"]["missing"] == []
    assert document["hosts"]["failed"] == [{"host": "node3", "msg": "boom"}]
    assert got["stats"]["experiment"] == node1["experiment"]


@pytest.mark.parametrize("make, message", [
    (lambda p: p.write_text("{"), "cannot read the slice report"),
    (lambda p: p.write_text("[]"), "is not a JSON report"),
    (lambda p: p.write_text(json.dumps({"format_version": 2, "results": {}})), "format_version 2"),
], ids=["not json", "not a report", "other version"])
def test_bad_slice_report(tmp_path, make, message):
    path = tmp_path / "bad.json"
    make(path)
    with pytest.raises(ReportError, match=message):
        run(params(None, tmp_path / "out", slice_reports=[str(path)]))
    assert not (tmp_path / "out").exists()


def test_a_host_in_two_slices_is_refused(tmp_path):
    node1 = load("node1_stressor_oom")
    first = slice_report(tmp_path, "s1", {"node1": node1}, [])
    second = slice_report(tmp_path, "s2", {"node1": node1}, [])
    with pytest.raises(ReportError, match="host node1 has a result in more than one slice"):
        run(params(None, tmp_path / "out", slice_reports=[first, second]))


def test_stats_name_the_kubernetes_target_of_each_host(tmp_path):
    """set_stats' per-host summary carries namespace, pod, container and node when k8s_targets picked the target,
    and nothing extra for a target given by container ID."""
    picked, plain = load("node1_stressor_oom"), copy.deepcopy(load("node1_stressor_oom"))
    picked["target"]["kubernetes"] = {"namespace": "shop", "pod": "web-1", "container": "app", "node": "w1"}
    picked["host"], plain["host"] = "w1--aaaaaaaaaaaa", "w2"
    out = run(params([picked, plain], tmp_path, formats=["json"]))
    per_host = out["stats"]["per_host"]
    assert per_host["w1--aaaaaaaaaaaa"]["kubernetes"] == {"namespace": "shop", "pod": "web-1", "container": "app",
                                                          "node": "w1"}
    assert "kubernetes" not in per_host["w2"]


def test_stats_say_which_achieved_share_the_verdict_asked_for(tmp_path):
    result = load("node1_stressor_oom")
    assert run(params([result], tmp_path, formats=["json"]))["stats"]["achieved_min_percent"] == 80.0
    out = run(params([result], tmp_path, formats=["json"], achieved_min_percent=25))
    assert out["stats"]["achieved_min_percent"] == 25.0


def test_a_stop_record_says_interrupted_by_which_signal_and_when_each_node_stopped(tmp_path):
    results = memory_results()
    started = results["node1"]["started_at"]
    record = {"experiment": results["node1"]["experiment"], "interrupted": True, "signal": "SIGINT",
              "cause": "SIGINT", "at": started + 5.0, "stop_started_at": started + 5.1, "stop_ended_at": started + 7.5,
              "hosts": {"node1": {"stopped": True, "stopped_at": started + 6.25, "state": "stopped", "msg": ""},
                        "node2": {"stopped": True, "stopped_at": started + 6.5, "state": "stopped", "msg": ""},
                        "node3": {"stopped": False, "stopped_at": None, "state": "unreachable", "msg": "no answer"}},
              "unreachable": ["node3"]}
    path = tmp_path / "stress-report-x.stop.json"
    path.write_text(json.dumps(record))
    out = run(params(results, tmp_path / "out", stop_record=str(path)))
    with open(out["paths"]["json"]) as handle:
        document = json.load(handle)
    assert document["interrupted"]["signal"] == "SIGINT" and document["interrupted"]["unreachable"] == ["node3"]
    node1 = document["results"]["node1"]["interrupted"]
    assert node1 == {"signal": "SIGINT", "cause": "SIGINT", "at": started + 5.0, "stopped": True,
                     "stopped_at": started + 6.25, "msg": ""}
    assert document["results"]["node3"]["interrupted"]["stopped"] is False
    assert any(n.startswith("interrupted (SIGINT)") and "(1.2 s later)" in n
               for n in document["verdicts"]["node1"]["notes"])
    assert any("could not reach it" in n for n in document["verdicts"]["node3"]["notes"])
    # Interrupted: at best inconclusive, a worse verdict stays.
    assert all(v["verdict"] in ("inconclusive", "fail", "error") for v in document["verdicts"].values())
    with open(out["paths"]["markdown"]) as handle:
        markdown = handle.read()
    assert "**Interrupted** (SIGINT)" in markdown and "node1 (+1.2 s)" in markdown
    assert "not reached (left to their dead-man): node3" in markdown
    with open(out["paths"]["html"]) as handle:
        html = handle.read()
    assert 'id="interrupted"' in html and "(SIGINT)" in html


def test_a_report_without_a_stop_record_has_no_interruption(rendered):
    document = rendered[4]
    assert document["interrupted"] is None
    assert all(r.get("interrupted") is None for r in document["results"].values())
    assert 'id="interrupted"' not in rendered[2]


def test_a_bad_stop_record_is_refused(tmp_path):
    path = tmp_path / "bad.stop.json"
    path.write_text(json.dumps({"hosts": {}}))
    with pytest.raises(ReportError, match="is not a stop record"):
        run(params(memory_results(), tmp_path / "out", stop_record=str(path)))
    assert not (tmp_path / "out").exists()
