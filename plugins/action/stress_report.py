# -*- coding: utf-8 -*-
# Copyright (c) 2026, chaosfleet.stress contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action for chaosfleet.stress.stress_report: renders and writes the report in the controller process.

An action rather than a module because the report is written on the controller
and rendered with Jinja2 templates shipped in the collection; an action reads
them straight from the installed collection, with no AnsiballZ round trip and
no copy of the results to a node. The work is in plugin_utils/_report.py and the _report_* files it names.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase

from ansible_collections.chaosfleet.stress.plugins.plugin_utils._report import (
    ARGUMENT_SPEC, MUTUALLY_EXCLUSIVE, REQUIRED_ONE_OF, ReportError, run,
)


class ActionModule(ActionBase):

    TRANSFERS_FILES = False
    _requires_connection = False  # writes on the controller, whatever host the task runs for

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        del tmp
        args = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC, mutually_exclusive=MUTUALLY_EXCLUSIVE,
                                           required_one_of=REQUIRED_ONE_OF)[1]
        try:
            result.update(run(args, check_mode=bool(self._task.check_mode)))
        except ReportError as exc:
            raise AnsibleActionFail(str(exc))
        return result
