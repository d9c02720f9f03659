"""The report's entry, run(): what it returns, and writing the files all or nothing."""

import os
import subprocess
import uuid
from unittest import mock

import pytest

from ansible_collections.chaosfleet.stress.plugins.plugin_utils import _report
from ansible_collections.chaosfleet.stress.plugins.plugin_utils._report import ReportError, default_basename, run
from tests.unit.reportfix import load, params, parse


def listing(path):
    return sorted(os.listdir(str(path))) if os.path.exists(str(path)) else None


@pytest.mark.parametrize("results, extra, message", [
    (lambda: [load("node1_stressor_oom"), load("node9_format_v2")], {}, "incompatible format version"),
    (lambda: [dict(load("node1_stressor_oom"), samples={})], {}, "node1: samples must be a list"),
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


@pytest.mark.parametrize("formats, basename, files", [
    (["markdown"], "canary.v2", ["canary.v2.md"]),
    (["json", "json", "html"], None, ["stress-report-checkout-memory-pressure.html",
                                      "stress-report-checkout-memory-pressure.json"]),
    ([], None, ["stress-report-checkout-memory-pressure.html", "stress-report-checkout-memory-pressure.json",
                "stress-report-checkout-memory-pressure.md"]),
])
def test_formats_and_basename(tmp_path, formats, basename, files):
    out = run(params([load("node1_stressor_oom")], tmp_path, formats=formats, basename=basename))
    assert sorted(os.path.basename(p) for p in out["paths"].values()) == files
    assert sorted(os.listdir(str(tmp_path))) == files


@pytest.mark.parametrize("experiment, expected", [
    ("checkout-memory", "stress-report-checkout-memory"),
    ("shop/checkout mem", "stress-report-shop-checkout-mem"),
    ("..", "stress-report"),
    (None, "stress-report"),
])
def test_default_basename(experiment, expected):
    assert default_basename(experiment) == expected


def test_all_hosts_missing_still_renders(tmp_path):
    out = run(params({"node1": None}, tmp_path, expected_hosts=["node1", "node2"]))
    assert out["stats"]["hosts"] == {"ok": [], "missing": ["node1", "node2"], "failed": []}
    assert os.path.basename(out["paths"]["html"]) == "stress-report.html"
    with open(out["paths"]["html"]) as handle:
        assert [r["data-host"] for r in parse(handle.read()).rows] == ["node1", "node2"]
    assert out["headroom"] == {}


@pytest.mark.parametrize("results, headroom", [
    ([load("node1_stressor_oom")], {}),
    ([load("node1_search_memory")], {"checkout": {"node1": {
        "headroom": 60, "headroom_label": "60%", "unit": "percent", "headroom_percent": 60.0,
        "headroom_bytes": 322122547, "first_fail": 70, "ended_by": "edge", "confirmed": None, "required": 50,
        "regression_ok": True, "verdict": "pass"}}}),
])
def test_run_returns_the_paths_stats_and_headroom(tmp_path, results, headroom):
    out = run(params(results, tmp_path))
    assert sorted(out) == ["changed", "headroom", "paths", "stats", "written"]
    assert out["headroom"] == headroom
    assert out["stats"]["reports"] == out["paths"]
