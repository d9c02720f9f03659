"""Issue 11, point 10: the Markdown report shows titles, host names and process names as text, never as HTML/Markdown."""
import json
import os
import re

import pytest

from ansible_collections.chaosfleet.stress.plugins.plugin_utils._report import md_code, md_escape, run

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "..", "fixtures", "samples")


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


def test_hostile_names_render_as_text(tmp_path):
    with open(os.path.join(FIXTURES, "node2_app_oom.json")) as handle:
        result = json.load(handle)
    result["host"] = "node<img src=x onerror=alert(1)>|x"
    result["oom_kills"][0]["comm"] = "`</td><script>x</script>|"
    # Values a node reports are data too: an unknown end reason and the cgroup version.
    result["reason"] = "<script>reason</script>"
    result["target"]["cgroup_version"] = "<img src=v>"
    params = {"results": [result], "dest": str(tmp_path), "expected_hosts": [],
              "title": "<script>alert(1)</script> *Checkout* [phish](http://evil)", "basename": "r",
              "formats": ["markdown"], "achieved_min_percent": 80.0, "fail_on_app_oom": True}
    run(params)
    text = (tmp_path / "r.md").read_text()
    # Inside a code span HTML is shown literally; everywhere else it must be escaped.
    outside_code = re.sub(r"(?<!`)(`+)(?!`)(.+?)(?<!`)\1(?!`)", "", text)
    assert "<script" not in outside_code and "<img" not in outside_code and "</td>" not in outside_code
    assert "| `` `</td><script>x</script>\\| `` |" in text
    assert "[phish]" not in text and "*Checkout*" not in text
    # Every table row keeps its column count: no pipe from the data splits a cell.
    for line in text.splitlines():
        if line.startswith("| ") and "node" in line:
            assert len(re.findall(r"(?<!\\)\|", line)) == 9, line
        elif "script" in line and line.startswith("| "):
            assert len(re.findall(r"(?<!\\)\|", line)) == 7, line
