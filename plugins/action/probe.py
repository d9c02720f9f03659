# -*- coding: utf-8 -*-
# Copyright (c) 2026, chaosfleet.stress contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action for chaosfleet.stress.probe: one round of steady-state probes, and the running tally.

Probes with run_on=controller (and every Kubernetes probe) run here, in the controller
process; the node's probes go to the node-side module of the same name in one call,
so a round costs at most one round trip to the node. The work is in
module_utils/_probe_checks.py (checks) and plugin_utils/_probes.py (Kubernetes, tally).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import time

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase

from ansible_collections.chaosfleet.stress.plugins.module_utils._probe_checks import PROBE_TASK_SPEC, set_only
from ansible_collections.chaosfleet.stress.plugins.plugin_utils._probes import (
    ProbeSpecError, in_order, node_failure, plan, run_controller, scrub, secrets_of, summary, update_tally,
)


class ActionModule(ActionBase):

    TRANSFERS_FILES = False

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        del tmp
        args = self.validate_argument_spec(argument_spec=PROBE_TASK_SPEC)[1]
        try:
            probes, node, controller = plan(args["probes"])
        except ProbeSpecError as exc:
            raise AnsibleActionFail(str(exc))
        secrets = secrets_of(probes)

        deadline = time.monotonic() + max(0.0, args["retry_for"])
        while True:
            results, baselines = self._round(args, probes, node, controller, secrets, task_vars)
            if all(r["ok"] for r in results) or time.monotonic() + args["retry_every"] > deadline:
                break
            time.sleep(max(0.1, args["retry_every"]))
        tally = update_tally(args["tally"], args["phase"], results, baselines)
        result.update(changed=False, probes=results, ok=all(r["ok"] for r in results),
                      failed_probes=[r["name"] for r in results if not r["ok"]],
                      tally=tally, summary=summary(tally))
        return result

    def _round(self, args, probes, node, controller, secrets, task_vars):
        """One round of every probe, in the order given."""
        results = []
        if node:
            by_name = dict((p["name"], p) for p in args["probes"])
            answer = self._execute_module(
                module_name="chaosfleet.stress.probe",
                module_args={"probes": [set_only(by_name[p["name"]]) for p in node]},
                task_vars=task_vars)
            if answer.get("failed") or answer.get("unreachable") or "probes" not in answer:
                results.extend(node_failure(node, scrub(answer.get("msg") or "no answer", secrets)))
            else:
                results.extend(answer["probes"])
        here, baselines = run_controller(controller, args["tally"])
        results.extend(here)
        results = in_order(probes, results)
        for checked in results:
            checked["detail"] = scrub(checked["detail"], secrets)
        return results, baselines
