"""The report in a real browser (Debian's headless Chromium), and through Ansible with set_stats (ansible-runner)."""

import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import uuid
import zlib

import pytest

from ansible_collections.chaosfleet.stress.plugins.plugin_utils._report import run

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIXTURES = os.path.join(REPO, "tests", "unit", "fixtures", "samples")
PLAYBOOKS = os.path.join(REPO, "tests", "integration", "playbooks")
SCREENSHOTS = os.path.join(REPO, "tests", "output", "browser")

CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--hide-scrollbars",
]
# Stroke colours from report.css.
WORKING_SET = (0x25, 0x63, 0xEB)
CPU = (0x0D, 0x94, 0x88)
LIMIT = (0xDC, 0x26, 0x26)
PAGE = (0xF6, 0xF7, 0xF9)


def load(name):
    with open(os.path.join(FIXTURES, name + ".json")) as handle:
        return json.load(handle)


def read_png(path):
    """Decode an 8-bit, non-interlaced RGB or RGBA PNG into rows of (r, g, b) tuples."""
    with open(path, "rb") as handle:
        data = handle.read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, header = 8, b"", None
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
    width, height, depth, colour, _, _, interlace = header
    assert depth == 8 and colour in (2, 6) and interlace == 0, "unsupported PNG layout %r" % (header,)
    bpp = 3 if colour == 2 else 4
    raw = zlib.decompress(idat)
    stride = width * bpp
    rows, prev, i = [], bytearray(stride), 0
    for _ in range(height):
        kind, line = raw[i], bytearray(raw[i + 1:i + 1 + stride])
        i += 1 + stride
        for x in range(stride):
            a = line[x - bpp] if x >= bpp else 0
            b = prev[x]
            c = prev[x - bpp] if x >= bpp else 0
            if kind == 1:
                line[x] = (line[x] + a) & 0xFF
            elif kind == 2:
                line[x] = (line[x] + b) & 0xFF
            elif kind == 3:
                line[x] = (line[x] + (a + b) // 2) & 0xFF
            elif kind == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[x] = (line[x] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 0xFF
        rows.append([tuple(line[x:x + 3]) for x in range(0, stride, bpp)])
        prev = line
    return rows


def near(pixel, colour, tolerance=28):
    return all(abs(p - c) <= tolerance for p, c in zip(pixel, colour))


def columns_with(rows, colour):
    return set(x for row in rows for x, px in enumerate(row) if near(px, colour))


def screenshot(html_path, png_path, tmp_path, size="1280,2000"):
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.fail("chromium is not installed: run scripts/setup.sh (Debian package chromium)")
    profile = tmp_path / ("cflab-chromium-" + uuid.uuid4().hex[:8])
    argv = [chromium] + CHROMIUM_FLAGS + ["--user-data-dir=%s" % profile, "--screenshot=%s" % png_path,
                                         "--window-size=%s" % size, "file://%s" % html_path]
    # Own session, so a hung Chromium and its helpers go with the group we started, and nothing else.
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        output, _ = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        pytest.fail("chromium did not finish the screenshot in 120 s")
    finally:
        shutil.rmtree(str(profile), ignore_errors=True)
    assert os.path.exists(png_path), output.decode(errors="replace")[-2000:]


@pytest.mark.slow
def test_report_draws_in_chromium(tmp_path):
    results = {"node1": load("node1_stressor_oom"), "node2": load("node2_app_oom"),
               "node3": load("node3_group_kill"), "node5": None}
    out = run({"results": results, "dest": str(tmp_path / "report"), "formats": ["html"],
               "expected_hosts": ["node1", "node2", "node3", "node5"]})
    os.makedirs(SCREENSHOTS, exist_ok=True)
    png = os.path.join(SCREENSHOTS, "report-top.png")
    screenshot(out["paths"]["html"], png, tmp_path)
    rows = read_png(png)
    assert len(rows) == 2000 and len(rows[0]) == 1280

    # Not blank: most of the page is not one flat colour and there is real variety.
    pixels = [px for row in rows[::4] for px in row[::4]]
    assert len(set(pixels)) > 200
    assert sum(1 for px in pixels if not near(px, PAGE, 6) and px != (255, 255, 255)) > len(pixels) * 0.05

    # The first host's charts are drawn: its working-set and CPU lines run across most of the plot
    # width (900-odd px at this size), and the dashed limit shows; link text in the same blue
    # covers far fewer columns.
    assert len(columns_with(rows, WORKING_SET)) > 500  # the dashed requested level covers part of it
    assert len(columns_with(rows, CPU)) > 700
    assert len(columns_with(rows, LIMIT)) > 400


def test_report_through_ansible_with_set_stats(tmp_path):
    ansible_runner = pytest.importorskip("ansible_runner")
    venv_bin = os.path.dirname(sys.executable)
    report_dir = tmp_path / "reports"
    (tmp_path / "runner").mkdir()
    runner = ansible_runner.run(
        private_data_dir=str(tmp_path / "runner"),
        playbook=os.path.join(PLAYBOOKS, "report.yml"),
        inventory=os.path.join(PLAYBOOKS, "report_inventory.yml"),
        extravars={"fixtures_dir": FIXTURES, "report_dir": str(report_dir)},
        envvars={
            "PATH": venv_bin + os.pathsep + os.environ.get("PATH", ""),
            "ANSIBLE_CONFIG": os.path.join(REPO, "ansible.cfg"),
            "ANSIBLE_COLLECTIONS_PATH": os.path.join(REPO, ".collections"),
        },
        quiet=True,
        timeout=300,
    )
    # node5 is unreachable on purpose, so the run ends with rc 4; the others must be fine.
    assert runner.stats["dark"] == {"node5": 1}
    assert runner.stats["failures"] == {}
    stats_events = [e for e in runner.events if e["event"] == "playbook_on_stats"]
    artifact = stats_events[0]["event_data"]["artifact_data"]["stress_report"]
    assert artifact["experiment"] == "checkout-memory-pressure"
    assert artifact["verdict"] == "fail"
    assert artifact["hosts"] == {"ok": ["node1", "node2", "node3"], "missing": ["node5"], "failed": []}
    assert artifact["per_host"]["node2"]["oom_kills"] == {"app": 1, "stressor": 0}
    assert artifact["reports"]["html"] == str(report_dir / "stress-report-checkout-memory-pressure.html")
    for path in artifact["reports"].values():
        assert os.path.getsize(path) > 0
    # AWX reads the same data from the job's event files in the artifacts directory.
    events_dir = os.path.join(runner.config.artifact_dir, "job_events")
    on_disk = []
    for name in os.listdir(events_dir):
        with open(os.path.join(events_dir, name)) as handle:
            event = json.load(handle)
        if event.get("event") == "playbook_on_stats":
            on_disk.append(event["event_data"]["artifact_data"]["stress_report"])
    assert on_disk == [artifact]
