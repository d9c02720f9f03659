"""Rendering: Markdown that shows data as text, never as HTML or Markdown (issue 11, point 10); a self-contained
HTML page; what the verdict table, each host's section and a search's headroom section say."""

import copy
import re

import pytest

from ansible_collections.chaosfleet.stress.plugins.plugin_utils._report_model import build
from ansible_collections.chaosfleet.stress.plugins.plugin_utils._report_render import (
    md_code, md_escape, render, render_template,
)
from tests.unit.reportfix import load, memory_results, params, parse


@pytest.mark.parametrize("text, expected", [
    ("plain text 200 MiB (80%)", "plain text 200 MiB (80%)"),
    ("<script>alert(1)</script>", "&lt;script&gt;alert(1)&lt;/script&gt;"),
    ("<img src=x onerror=alert(1)>", "&lt;img src=x onerror=alert(1)&gt;"),
    ("a | b", "a \\| b"),
    ("*bold* _em_ ~~gone~~", "\\*bold\\* \\_em\\_ \\~\\~gone\\~\\~"),
    ("[click](http://evil)", "\\[click\\](http://evil)"),
    ("![x](http://evil/p.png)", "!\\[x\\](http://evil/p.png)"),
    ("`code`", "\\`code\\`"),
    ("back\\slash", "back\\\\slash"),
    ("two\nlines\r\nhere", "two lines here"),
    ("&lt;b&gt;", "&amp;lt;b&amp;gt;"),
    ("snake_case_name cgroup_info", "snake_case_name cgroup_info"),
    (42, "42"),
])
def test_md_escape(text, expected):
    assert md_escape(text) == expected


@pytest.mark.parametrize("text, expected", [
    ("stress-ng-vm", "`stress-ng-vm`"),
    ("a`b", "``a`b``"),
    ("`x`", "`` `x` ``"),
    ("a|b\nc", "`a\\|b c`"),
])
def test_md_code(text, expected):
    assert md_code(text) == expected


def test_render_template_takes_any_key_as_a_value():
    """A game day's summary has a name; the template's own name is not mixed up with it."""
    summary = {"name": "gd|1", "verdict": "pass", "stopped": "", "batches": []}
    text = render_template("game_day.md.j2", dict(summary, basename=lambda path: path))
    assert text.startswith("# Game day gd\\|1: pass")


def rendered(results, formats=("html", "markdown", "json"), **extra):
    return render(build(params(results, "/nonexistent", **extra)), list(formats))


def cells(line):
    """The unescaped pipes of a Markdown table row."""
    return len(re.findall(r"(?<!\\)\|", line))


def test_hostile_names_render_as_text():
    result = load("node2_app_oom")
    result["host"] = "node<img src=x onerror=alert(1)>|x"
    result["oom_kills"][0]["comm"] = "`</td><script>x</script>|"
    # Values a node reports are data too: an unknown end reason and the cgroup version.
    result["reason"] = "<script>reason</script>"
    result["target"]["cgroup_version"] = "<img src=v>"
    text = rendered([result], formats=["markdown"],
                    title="<script>alert(1)</script> *Checkout* [phish](http://evil)")["markdown"]
    # Inside a code span HTML is shown literally; everywhere else it must be escaped.
    outside_code = re.sub(r"(?<!`)(`+)(?!`)(.+?)(?<!`)\1(?!`)", "", text)
    assert "<script" not in outside_code and "<img" not in outside_code and "</td>" not in outside_code
    assert "| `` `</td><script>x</script>\\| `` |" in text
    assert "[phish]" not in text and "*Checkout*" not in text
    # Every table row keeps its column count: no pipe from the data splits a cell.
    for line in text.splitlines():
        if line.startswith("| ") and "node" in line:
            assert cells(line) == 9, line
        elif "script" in line and line.startswith("| "):
            assert cells(line) == 7, line


def test_hostile_search_names_render_as_text():
    result = load("node1_search_memory")
    for level in result["search"]["levels"]:
        level["probes"][0]["name"] = "we|b<script>"
        level["label"] = "*%s*" % level["label"]
    result["search"]["levels"][5]["failed_by"]["name"] = "we|b<script>"
    result["search"]["edge"]["name"] = "we|b<script>"
    out = rendered([result])
    assert "<script>" not in out["markdown"] and "<script>" not in out["html"]
    rows = [line for line in out["markdown"].splitlines() if line.startswith("| ") and "% of limit" in line]
    assert len(rows) == 6 and all(cells(line) == 9 for line in rows)


@pytest.fixture(scope="module")
def fleet():
    return rendered(memory_results())


def test_html_is_self_contained(fleet):
    page = parse(fleet["html"])
    assert "script" not in page.tags and "link" not in page.tags and "img" not in page.tags
    assert all(link.startswith("#host-") for link in page.links)
    html = fleet["html"]
    assert html.count("http://") == html.count('xmlns="http://www.w3.org/2000/svg"')
    assert "https://" not in html and "@import" not in html and "url(" not in html


@pytest.mark.parametrize("line", [
    "| stopped by guard oom_kills |",
    "| stopped on request |",
    "| target container went away |",
    "+358.0 MiB (90% of requested)",
    "- Peak working set 500.0 MiB (98% of the 512.0 MiB limit), baseline 120.0 MiB",
    "- CPU 1.05 cores during the stress, throttled 0%",
    "| 22.7 s | 3121 | `gunicorn` | **app** | no | dmesg |",
    "2 / 2 (group kill)",
])
def test_markdown_says(fleet, line):
    assert line in fleet["markdown"]


@pytest.mark.parametrize("host, kills", [
    ("node1", [("stressor", "false"), ("stressor", "false")]),
    ("node2", [("app", "false")]),
    ("node3", [("app", "true"), ("app", "true"), ("stressor", "true"), ("stressor", "true")]),
])
def test_html_lists_each_oom_kill(fleet, host, kills):
    rows = [(k["data-victim"], k["data-group"]) for k in parse(fleet["html"]).kills if k["host"] == host]
    assert sorted(rows) == kills


def test_rendering_is_deterministic(fleet):
    assert rendered(memory_results()) == fleet


# ---------------------------------------------------------------- the headroom section

ANSWER = ("checkout on node1: the steady state held up to 60% of its memory limit (307 MiB); it broke at 70%: probe "
          "web p95 412 ms > SLO 300 ms; required at least 50%: met")


@pytest.fixture(scope="module")
def search():
    return rendered([load("node1_search_memory")])


def test_html_headroom_section(search):
    page = parse(search["html"])
    assert ANSWER.replace(">", "&gt;") in search["html"]
    assert [(r["data-level"], r["data-outcome"], r["data-confirmation"]) for r in page.levels] == [
        ("20", "pass", "false"), ("30", "pass", "false"), ("40", "pass", "false"), ("50", "pass", "false"),
        ("60", "pass", "false"), ("70", "fail", "false")]
    assert sorted(page.hosts["node1"]) == ["cpu", "memory", "probe:errors", "probe:web"]
    assert "step search, 20% to 90%, step 10%; the search found the edge." in search["html"]
    row = [r for r in page.rows if r.get("data-host") == "node1"][0]
    assert row["data-verdict"] == "pass"
    assert "<td>held to 60%, broke at 70%</td>" in search["html"]


@pytest.mark.parametrize("line", [
    "**Headroom:** " + md_escape(ANSWER),
    "step search, 20% to 90%, step 10%; the search found the edge. The figures below are from the run at the first "
    "failing level (70%); the charts per probe are in the HTML report.",
    "| # | Level | Outcome | Failed by | Working set | Probe web | Probe errors | Recovery |",
    "| 4 | 60% | pass |  | mean 425 MiB, max 433 MiB (83% of limit) | p95 174 ms, p50 58 ms, 100% passed | "
    "max 0.011, 100% passed | 5.2 s |",
    "| 5 | 70% | **fail** | probe web p95 412 ms &gt; SLO 300 ms | mean 476 MiB, max 486 MiB (93% of limit) | "
    "**p95 412 ms, p50 190 ms, 96.7% passed** | max 0.032, 100% passed | 7 s |",
    "| node1 | **pass** | held to 60%, broke at 70% |",
])
def test_markdown_headroom_section(search, line):
    assert line in search["markdown"]


def test_a_second_hold_is_marked():
    result = load("node1_search_memory")
    second = copy.deepcopy(result["search"]["levels"][4])
    second.update(index=6, confirmation=True)
    result["search"]["levels"].append(second)
    out = rendered([result])
    assert "| 6 | 60% (second hold) | pass |" in out["markdown"]
    chart = parse(out["html"]).hosts["node1"]["probe:web"]
    assert [p["class"] for p in chart["points"]][-1] == "point pass confirm"
    assert "second hold at the last pass" in out["html"]


def test_a_report_without_a_search_has_no_headroom_section(fleet):
    assert "Headroom" not in fleet["markdown"] and 'class="headroom"' not in fleet["html"]
