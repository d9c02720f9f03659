# -*- coding: utf-8 -*-
# Copyright (c) 2026, chaosfleet.stress contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action for chaosfleet.stress.game_day_control: the game day playbook's decisions.

Each step is one call into plugin_utils/_game_day.py; the summary is written by
the report code. Nothing runs on the nodes.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase

from ansible_collections.chaosfleet.stress.plugins.plugin_utils import _game_day
from ansible_collections.chaosfleet.stress.plugins.plugin_utils._report import ReportError, write_game_day

ARGUMENT_SPEC = dict(
    step=dict(type="str", required=True, choices=["check", "vars", "gate", "summary"]),
    spec=dict(type="dict", required=True),
    role_defaults=dict(type="dict", default={}),
    plan=dict(type="dict"),
    batch=dict(type="int"),
    label=dict(type="str", default="(inline)"),
    k8s=dict(type="list", elements="dict", default=[]),
)


class ActionModule(ActionBase):

    TRANSFERS_FILES = False
    _requires_connection = False

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        del tmp
        args = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)[1]
        result.update(getattr(self, "_" + args["step"])(args, task_vars))
        result.setdefault("changed", False)
        return result

    def _check(self, args, task_vars):
        lookup = self._shared_loader_obj.lookup_loader.get(
            "ansible.builtin.inventory_hostnames", loader=self._loader, templar=self._templar)

        def resolve(pattern):
            return lookup.run([str(pattern)], variables=task_vars)

        known = set(k[len("experiment_"):] for k in args["role_defaults"] if k.startswith("experiment_"))
        selected, problems = {}, []
        for answer in args["k8s"]:  # the registered k8s_targets loop, one item per experiment with a selector
            name = (answer.get("item") or {}).get("name")
            if answer.get("failed"):
                problems.append("%s: k8s selector: %s" % (name, answer.get("msg")))
            selected[name] = answer.get("by_node") or {}
        if problems:
            raise AnsibleActionFail("game day spec %s: %s" % (args["label"], "; ".join(problems)))
        out = _game_day.check(args["spec"], known, resolve, selected, task_vars["groups"]["all"])
        if out["errors"]:
            raise AnsibleActionFail("game day spec %s: %s" % (args["label"], "; ".join(out["errors"])))
        out.update(_game_day.settings(args["spec"]))
        return out

    def _vars(self, args, task_vars):
        return _game_day.host_vars(args["spec"], args["batch"], task_vars["inventory_hostname"],
                                   args["plan"]["hosts"], args["role_defaults"], args["plan"].get("targets"))

    def _reports(self, task_vars, hosts):
        reports = {}
        for host in hosts:
            try:
                reports.update(task_vars["hostvars"][host].get("experiment_reports") or {})
            except KeyError:
                continue
        return reports

    def _gate(self, args, task_vars):
        plan = args["plan"]
        names = plan["plan"][args["batch"]]
        hosts = sorted(set(h for n in names for h in plan["hosts"].get(n, [])))
        return {"stopped": _game_day.gate(args["batch"], names, self._reports(task_vars, hosts),
                                          plan["gate"]["continue_on"])}

    def _summary(self, args, task_vars):
        plan = args["plan"]
        hosts = sorted(set(h for found in plan["hosts"].values() for h in found))
        stopped = ""
        for host in hosts:
            try:
                stopped = stopped or task_vars["hostvars"][host].get("__gd_stopped") or ""
            except KeyError:
                continue
        summary = _game_day.summary(args["spec"]["name"], plan["plan"], plan["hosts"],
                                    self._reports(task_vars, hosts), stopped, plan.get("skipped"))
        try:
            paths = write_game_day(summary, plan["report_dest"], check_mode=bool(self._task.check_mode))
        except ReportError as exc:
            raise AnsibleActionFail(str(exc))
        summary["reports"] = paths
        return {"summary": summary, "changed": True}
