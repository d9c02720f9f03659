"""What the rollback role stopped (plugin_utils/_rollback.py), as a table."""

import pytest

from ansible_collections.chaosfleet.stress.plugins.plugin_utils._rollback import summary


def stop(name, status, changed=False, reason=None, left=None, failed=False, msg=None):
    out = {"item": name, "status": status, "changed": changed, "reason": reason, "failed": failed}
    if left is not None:
        out["outcome"] = {"processes_left": left}
    if msg:
        out["msg"] = msg
    return out


CASES = [
    # (case, results, msg, stopped names, leftovers)
    ("no experiments", [], "n1: no experiments", [], []),
    ("only absent names", [stop("x", "absent")], "n1: no experiments", [], []),
    ("stopped one", [stop("a", "stopped", True, "stop", [])], "n1: stopped ['a']; already ended: none", ["a"], []),
    ("stopped one, another ended", [stop("a", "stopped", True, "stop"), stop("b", "finished", reason="deadline")],
     "n1: stopped ['a']; already ended: b (finished, deadline)", ["a"], []),
    ("nothing to stop", [stop("b", "aborted", reason="heartbeat"), stop("c", "finished", reason="deadline")],
     "n1: stopped nothing; already ended: b (aborted, heartbeat), c (finished, deadline)", [], []),
    ("processes survived", [stop("a", "stopped", True, "stop", [4242])], "n1: stopped ['a']; already ended: none",
     ["a"], ["a"]),
]


@pytest.mark.parametrize("results, msg, stopped, leftovers", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_summary(results, msg, stopped, leftovers):
    out = summary(results, "n1")
    assert out["msg"] == msg
    assert [e["name"] for e in out["report"] if e["stopped"]] == stopped
    assert out["leftovers"] == leftovers


def test_an_entry_keeps_status_reason_and_the_error_of_a_failed_stop():
    out = summary([stop("a", None, failed=True, msg="unreachable"), {"item": "b"}], "n1")
    assert out["report"] == [
        {"name": "a", "stopped": False, "status": "unknown", "reason": None, "processes_left": [], "error": "unreachable"},
        {"name": "b", "stopped": False, "status": "unknown", "reason": None, "processes_left": [], "error": None}]
