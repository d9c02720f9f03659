"""The stress_report action: its arguments, check mode, and errors as Ansible shows them (the work is tested
with plugin_utils/_report*.py, in tests/unit/plugins/plugin_utils/test_report*.py)."""

import os
from unittest import mock

import pytest

from tests.unit.reportfix import load


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


def listing(path):
    return sorted(os.listdir(str(path))) if os.path.exists(str(path)) else None


@pytest.mark.parametrize("name, verdict, headroom", [
    ("node1_stressor_oom", "pass", {}),
    ("node1_search_memory", "pass", {"checkout": ["node1"]}),
])
def test_action_runs_the_report(tmp_path, name, verdict, headroom):
    got = action({"results": [load(name)], "dest": str(tmp_path)}).run(task_vars={})
    assert got["changed"] is True
    assert got["stats"]["per_host"]["node1"]["verdict"] == verdict
    assert dict((e, sorted(hosts)) for e, hosts in got["headroom"].items()) == headroom


def test_action_passes_check_mode(tmp_path):
    got = action({"results": [load("node1_stressor_oom")], "dest": str(tmp_path / "r")}, True).run(task_vars={})
    assert got["changed"] is True and listing(tmp_path / "r") is None


@pytest.mark.parametrize("args, message", [
    ({"results": [], "dest": "/tmp", "formats": ["pdf"]}, "value of formats must be one or more of"),
    ({"dest": "/tmp"}, "one of the following is required: results, slice_reports"),
    ({"dest": "/tmp", "results": [], "slice_reports": ["/x.json"]}, "mutually exclusive: results|slice_reports"),
    ({"results": [load("node1_stressor_oom"), load("node9_format_v2")], "dest": "/tmp/cflab-never"},
     "incompatible format version"),
])
def test_action_errors(args, message):
    from ansible.errors import AnsibleActionFail
    with pytest.raises(AnsibleActionFail, match=message):
        action(args).run(task_vars={})
    assert not os.path.exists("/tmp/cflab-never")
