# -*- coding: utf-8 -*-
# Copyright (c) 2026, chaosfleet.stress contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action for chaosfleet.stress.report_publish: copies, uploads and announces reports from the controller.

An action because the reports are on the controller (stress_report writes them there) and
the destinations are reached from it; nothing goes to a node. The work is in
plugin_utils/_publish.py.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase

from ansible_collections.chaosfleet.stress.plugins.plugin_utils._publish import ARGUMENT_SPEC, PublishError, outcome, run


class ActionModule(ActionBase):

    TRANSFERS_FILES = False
    _requires_connection = False  # everything happens on the controller

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        del tmp
        args = {}
        try:
            args = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)[1]
            result.update(run(args, check_mode=bool(self._task.check_mode)))
        except (AnsibleActionFail, PublishError) as exc:
            # Bad input, nothing published: still an outcome, so a no_log task's caller can show why.
            result["msg"] = getattr(exc, "message", None) or str(exc)
        result["outcome"] = outcome(result, args.get("copy_to"), args.get("fail_on_error", True))
        if result["outcome"]["failure"]:
            result["failed"] = True
            result["msg"] = result["outcome"]["failure"]
        return result
