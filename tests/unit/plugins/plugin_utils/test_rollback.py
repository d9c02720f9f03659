"""What the rollback role stopped (plugin_utils/_rollback.py), as a table."""

import pytest

from ansible_collections.chaosfleet.stress.plugins.plugin_utils._rollback import selection, summary


@pytest.mark.parametrize("given, names, patterns, list_node", [
    ([], [], ["*"], True),
    (None, [], ["*"], True),
    ("", [], ["*"], True),
    (["a"], ["a"], ["a"], False),
    # One text field of an AWX survey: names separated by commas, spaces and empty parts left out.
    ("a", ["a"], ["a"], False),
    (" a, b ,,a", ["a", "b"], ["a", "b"], False),
    ("checkout-*", ["checkout-*"], ["checkout-*"], True),
    (["a", "b?"], ["a", "b?"], ["a", "b?"], True),
    (["[ab]-1"], ["[ab]-1"], ["[ab]-1"], True),
    ([" ", ""], [], ["*"], True),
])
def test_selection(given, names, patterns, list_node):
    assert selection(given) == {"names": names, "patterns": patterns, "list_node": list_node}


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


def test_the_filter_refuses_what_is_neither_names_nor_a_string():
    from ansible.errors import AnsibleFilterError
    from ansible_collections.chaosfleet.stress.plugins.filter.rollback_selection import rollback_selection
    assert rollback_selection("a,b")["names"] == ["a", "b"]
    with pytest.raises(AnsibleFilterError, match="rollback_experiments must be a list of names or one comma-separated"):
        rollback_selection({"a": 1})
