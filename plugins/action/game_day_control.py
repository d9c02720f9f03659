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

from ansible_collections.chaosfleet.stress.plugins.module_utils._k8s_auth import NAMES as K8S_CONNECTION
from ansible_collections.chaosfleet.stress.plugins.plugin_utils import _game_day
from ansible_collections.chaosfleet.stress.plugins.plugin_utils._report import ReportError, write_game_day

# The play's k8s_* variables passed to k8s_targets: the API connection (K8S_CONNECTION, every auth option),
# how the picked nodes are reached (k8s_node_access) and where their agents run.
K8S_ACCESS = ("node_access", "agent_namespace", "agent_labels", "agent_container")
ARGUMENT_SPEC = dict(
    step=dict(type="str", required=True, choices=["check", "vars", "report_vars", "gate", "summary"]),
    role_defaults=dict(type="dict", default={}),
    plan=dict(type="dict"),
    batch=dict(type="int"),
    label=dict(type="str", default="(inline)"),
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

    def _spec(self, task_vars, raw=False):
        """The spec from game_day or the file read into __gd_file. Its values may use a host's
        variables, so only what plans the game day (names, types, hosts) is templated here (raw:
        nothing); each host templates its own experiment's settings (step vars)."""
        spec = task_vars["game_day"] if "game_day" in task_vars else task_vars.get("__gd_file")
        if raw:
            return spec
        if not isinstance(spec, dict):
            return spec
        out = dict(spec, name=self._try(spec.get("name")))
        for key in ("experiments", "batches"):
            if isinstance(spec.get(key), list):
                out[key] = [[self._head(e) for e in b] if isinstance(b, list) else self._head(b) for b in spec[key]]
        return out

    def _head(self, experiment):
        """An experiment with the keys that plan the game day templated (on the controller)."""
        if not isinstance(experiment, dict):
            return experiment
        return dict(experiment, **dict((k, self._try(experiment[k])) for k in ("name", "type", "hosts")
                                       if k in experiment))

    def _try(self, value):
        try:
            return self._templar.template(value)
        except Exception:  # a value that needs a host's variables: judged as written
            return value

    def _select(self, spec, args, task_vars):
        """({experiment name: k8s_targets' by_node}, {node: agent}) for the experiments with a ``k8s`` selector,
        picked now (containers change whenever a pod restarts). The API connection comes from the k8s_*
        variables (k8s_kubeconfig, k8s_host, k8s_api_key, ...) or the K8S_AUTH_* environment, and the node
        access from k8s_node_access and k8s_agent_*, as for k8s_pod_stress."""
        selected, agents, problems = {}, {}, []
        if not isinstance(spec, dict):  # _game_day.check says what is wrong with it
            return selected, agents
        for experiment in (e for batch in _game_day.batches_of(spec) for e in batch if isinstance(e, dict)):
            if not isinstance(experiment.get("k8s"), dict):
                continue
            options = dict(self._try(experiment["k8s"]))
            options.setdefault("mode", "all")
            options["allow_empty"] = True
            for key in K8S_CONNECTION + K8S_ACCESS:
                if task_vars.get("k8s_" + key) is not None:
                    options.setdefault(key, self._templar.template(task_vars["k8s_" + key]))
            answer = self._execute_module(module_name="chaosfleet.stress.k8s_targets", module_args=options,
                                          task_vars=task_vars)
            if answer.get("failed"):
                problems.append("%s: k8s selector: %s" % (experiment.get("name"), answer.get("msg")))
            selected[experiment.get("name")] = answer.get("by_node") or {}
            agents.update(answer.get("agents") or {})
        if problems:
            raise AnsibleActionFail("game day spec %s: %s" % (args["label"], "; ".join(problems)))
        return selected, agents

    def _check(self, args, task_vars):
        lookup = self._shared_loader_obj.lookup_loader.get(
            "ansible.builtin.inventory_hostnames", loader=self._loader, templar=self._templar)

        def resolve(pattern):
            return lookup.run([str(pattern)], variables=task_vars)

        known = set(k[len("experiment_"):] for k in args["role_defaults"] if k.startswith("experiment_"))
        spec = self._spec(task_vars)
        selected, agents = self._select(spec, args, task_vars)
        out = _game_day.check(spec, known, resolve, selected, task_vars["groups"]["all"], agents)
        if out["errors"]:
            raise AnsibleActionFail("game day spec %s: %s" % (args["label"], "; ".join(out["errors"])))
        # The gate and the report directory may use variables too (extra vars of the job template).
        out.update(_game_day.settings(dict(spec, gate=self._try(spec.get("gate")),
                                           report_dest=self._try(spec.get("report_dest")))))
        return out

    def _vars(self, args, task_vars):
        # The names as the check templated them (the plan's keys); the other values as written.
        mine = _game_day.host_vars(self._spec(task_vars), args["batch"], task_vars["inventory_hostname"],
                                   args["plan"]["hosts"], args["role_defaults"], args["plan"].get("targets"))
        # Only this host's experiment is templated, with this host's variables.
        return {"name": self._try(mine["name"]), "vars": self._templar.template(mine["vars"])}

    def _report_vars(self, args, task_vars):
        """Each experiment of the batch's own report settings, from the host that holds them."""
        plan, hostvars = args["plan"], task_vars["hostvars"]
        names = plan["plan"][args["batch"]]
        seen = {}
        for name in names:
            host = _game_day.report_host(plan["hosts"].get(name), task_vars["ansible_play_hosts"])
            try:
                seen[host] = dict((key, hostvars[host].get(key)) for key in _game_day.REPORT_KEYS)
            except KeyError:
                continue
        return {"experiments": _game_day.report_vars(names, plan["hosts"], task_vars["ansible_play_hosts"], seen,
                                                     args["role_defaults"])}

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
        summary = _game_day.summary(plan["name"], plan["plan"], plan["hosts"],
                                    self._reports(task_vars, hosts), stopped, plan.get("skipped"))
        try:
            paths = write_game_day(summary, plan["report_dest"], check_mode=bool(self._task.check_mode))
        except ReportError as exc:
            raise AnsibleActionFail(str(exc))
        summary["reports"] = paths
        return {"summary": summary, "changed": True}
