# -*- coding: utf-8 -*-
# Copyright (c) 2026, chaosfleet.stress contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action for chaosfleet.stress.stresschaos: the stresschaos playbook's decisions.

Each step is one call into plugins/plugin_utils/_stresschaos.py (the translation, the per-target sizes, the
container records); the playbook only sequences. Nothing runs on the nodes.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

from ansible.errors import AnsibleActionFail, AnsibleError
from ansible.module_utils.common.text.converters import to_text
from ansible.plugins.action import ActionBase

from ansible_collections.chaosfleet.stress.plugins.module_utils import _result
from ansible_collections.chaosfleet.stress.plugins.plugin_utils import _k8s_hosts
from ansible_collections.chaosfleet.stress.plugins.plugin_utils import _stresschaos as sc
from ansible_collections.chaosfleet.stress.plugins.plugin_utils._report import ReportError, write_files, write_stresschaos

ARGUMENT_SPEC = dict(
    step=dict(type="str", required=True, choices=["translate", "plan", "vars", "collect", "summary"]),
    manifests=dict(type="raw"),
    settings=dict(type="dict", default={}),
    awx_dest=dict(type="path"),
    translation=dict(type="dict"),
    picks=dict(type="list", elements="dict"),
    plan=dict(type="dict"),
    index=dict(type="int"),
    role_defaults=dict(type="dict", default={}),
    node_meminfo=dict(type="str"),
    collected=dict(type="dict", default={}),
    report_dest=dict(type="path"),
    report_basename=dict(type="str"),
)
# The role variables a manifest decides; each experiment sets all of them (the role's default where the
# manifest says nothing), so nothing leaks from one experiment into the next on the same host.
CONTROLLED = ("experiment_name", "experiment_type", "experiment_duration", "experiment_memory_size",
              "experiment_memory_target_usage", "experiment_memory_workers", "experiment_memory_ramp",
              "experiment_oom_score_adj", "experiment_cpu_load", "experiment_cpu_workers",
              "experiment_stressor_extra", "experiment_container_id", "experiment_instance_suffix",
              "experiment_k8s_target")


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

    # -- translate: every manifest checked and translated before anything starts ------------------------
    def _read(self, path):
        try:
            found = self._find_needle("files", path)
        except AnsibleError:
            found = self._loader.path_dwim(path)
        try:
            with open(found, "rb") as handle:
                return to_text(handle.read())
        except (IOError, OSError) as exc:
            raise AnsibleActionFail("cannot read manifest %s: %s" % (path, exc))

    def _translate(self, args, task_vars):
        if args["manifests"] in (None, "", []):
            raise AnsibleActionFail("give stresschaos_manifests: manifest files, YAML text or manifests")
        try:
            documents = sc.load_documents(args["manifests"], read=self._read)
        except sc.ManifestError as exc:
            raise AnsibleActionFail(str(exc))
        out = sc.translate(documents, args["settings"])
        if out["problems"]:
            raise AnsibleActionFail("nothing was started; %d problem%s in the manifests:\n%s" % (
                len(out["problems"]), "" if len(out["problems"]) == 1 else "s", "\n".join(out["problems"])))
        for warning in out["warnings"]:
            self._display.warning(warning)
        out["awx_path"] = None
        if out["schedules"] and args.get("awx_dest"):
            import yaml  # controller only
            path = os.path.join(os.path.abspath(args["awx_dest"]), "stresschaos-schedules.yml")
            text = "---\n# AWX schedule-as-code from Chaos Mesh Schedules (chaosfleet.stress.stresschaos).\n" \
                   "# ansible-playbook awx/stresschaos_schedules.yml -e @%s\n" % os.path.basename(path) + \
                yaml.safe_dump(out["awx"], default_flow_style=False, sort_keys=False)
            try:
                changed = write_files(os.path.dirname(path), {path: text}, check_mode=bool(self._task.check_mode))
            except ReportError as exc:
                raise AnsibleActionFail(str(exc))
            out.update(awx_path=path, changed=bool(changed))
        out["table_lines"] = dict((e["name"], sc.table_text(e["table"])) for e in out["experiments"])
        out["schedule_lines"] = dict(("%s/%s" % (s["namespace"], s["name"]),
                                      sc.table_text(s["table"] + ((s["child"] or {}).get("table") or [])))
                                     for s in out["schedules"])
        return out

    # -- plan: the picked containers, their hosts, sizes against their limits ---------------------------
    def _plan(self, args, task_vars):
        translation, picks = args["translation"] or {}, args["picks"] or []
        experiments = translation.get("experiments") or []
        if len(picks) != len(experiments):
            raise AnsibleActionFail("plan needs one k8s_targets answer per experiment (%d for %d)"
                                    % (len(picks), len(experiments)))
        union, agents = {}, {}
        for pick in picks:
            agents.update(pick.get("agents") or {})
            for node, info in (pick.get("by_node") or {}).items():
                entry = union.setdefault(node, {"node_ip": info.get("node_ip"), "targets": []})
                for target in info.get("targets") or []:
                    known = [t for t in entry["targets"] if (t["namespace"], t["pod"]) ==
                             (target["namespace"], target["pod"])]
                    if known:
                        for cid, name in zip(target["container_ids"], target["containers"]):
                            if cid not in known[0]["container_ids"]:
                                known[0]["container_ids"].append(cid)
                                known[0]["containers"].append(name)
                    else:
                        entry["targets"].append(dict(target, container_ids=list(target["container_ids"]),
                                                     containers=list(target["containers"])))
        try:
            hosts = _k8s_hosts.plan_hosts(union, task_vars["groups"]["all"])
        except _k8s_hosts.K8sHostsError as exc:
            raise AnsibleActionFail(str(exc))
        host_of = dict((h["container_id"], h["name"]) for h in hosts)
        entry_of = dict((h["container_id"], h) for h in hosts)
        planned, lines = [], {}
        for experiment, pick in zip(experiments, picks):
            targets = sc.plan_targets(experiment, pick)
            assigned, refused = {}, []
            for target in targets:
                host = host_of.get(target["container_id"])
                if target["problem"]:
                    refused.append({"id": target["id"], "host": host, "node": target["node"],
                                    "reason": "refused: " + target["problem"]})
                    continue
                entry = entry_of[target["container_id"]]
                # The target itself: set with the manifest's variables, so it wins over what another manifest set.
                own = dict(target["vars"], experiment_container_id=target["container_id"],
                           experiment_instance_suffix=entry["suffix"], experiment_k8s_target=entry["kubernetes"])
                assigned[host] = {"id": target["id"], "node": target["node"], "vars": own,
                                  "container_id": target["container_id"]}
            rows = [dict(r, target=t["id"]) for t in targets for r in t["rows"]]
            planned.append({"name": experiment["name"], "source": experiment["source"],
                            "manifest": experiment["manifest"], "role": experiment["role"],
                            "memory": experiment["memory"], "table": experiment["table"], "target_rows": rows,
                            "hosts": assigned, "refused": refused, "skipped": pick.get("skipped") or [],
                            "searched": (pick.get("searched") or {}).get("description")})
            lines[experiment["name"]] = sc.table_text(experiment["table"]) + [
                "%s %s" % (r["target"], line) for r in rows for line in sc.table_text([r])] + [
                "%s: Not Injected, %s" % (r["id"], r["reason"]) for r in refused]
        return {"hosts": hosts, "agents": agents, "experiments": planned, "table_lines": lines,
                "schedules": translation.get("schedules") or [],
                "needs_meminfo": any((e.get("memory") or {}).get("percent_of") == "node"
                                     and (e.get("memory") or {}).get("size_kind") == "percent" for e in experiments),
                "host_names": sorted(set(h for p in planned for h in p["hosts"]))}

    # -- vars: this host's variables for experiment ``index`` (or none) -----------------------------------
    def _vars(self, args, task_vars):
        experiment = args["plan"]["experiments"][args["index"]]
        mine = experiment["hosts"].get(task_vars["inventory_hostname"])
        if not mine:
            return {"name": "", "vars": {}}
        values = dict((key, args["role_defaults"].get(key)) for key in CONTROLLED if key in args["role_defaults"])
        values.update(experiment["role"])
        values.update(mine["vars"])
        if experiment.get("memory") and experiment["memory"].get("percent_of") == "node" \
                and experiment["memory"].get("size_kind") == "percent":
            node_bytes = sc.meminfo_total(args.get("node_meminfo") or "")
            if not node_bytes:
                raise AnsibleActionFail("%s: cannot read the node's MemTotal for %s of its RAM"
                                        % (experiment["name"], experiment["memory"]["size_text"]))
            values["experiment_memory_size"] = str(int(node_bytes * experiment["memory"]["size_value"] / 100))
        return {"name": experiment["name"], "vars": values, "id": mine["id"]}

    # -- collect: the results of experiment ``index`` from its hosts --------------------------------------
    def _collect(self, args, task_vars):
        experiment = args["plan"]["experiments"][args["index"]]
        out = {}
        for host in experiment["hosts"]:
            try:
                hv = task_vars["hostvars"][host]
                result = hv.get("__experiment_result")
                problem = hv.get("__experiment_problem") or hv.get("__experiment_error") or ""
            except KeyError:
                result, problem = None, ""
            if isinstance(result, dict) and result.get("experiment") == experiment["name"]:
                out[host] = _result.strip(dict(result))
            elif problem:
                out[host] = _result.failed("not started: %s" % problem)
        return {"results": {experiment["name"]: out}}

    # -- summary: containerRecords, the StressChaos report and its artifact -------------------------------
    def _summary(self, args, task_vars):
        plan, collected = args["plan"], args["collected"] or {}
        experiments = []
        for experiment in plan["experiments"]:
            results = collected.get(experiment["name"]) or {}
            assignments = [dict(info, host=host) for host, info in sorted(experiment["hosts"].items())]
            records = sc.container_records(assignments, results)
            for refused in experiment["refused"]:
                records.append(sc.container_record(dict(refused), _result.failed(refused["reason"])))
            for skipped in experiment["skipped"]:
                records.append(sc.container_record(
                    {"id": "%s/%s/%s" % (skipped.get("namespace"), skipped.get("pod"), skipped.get("container")),
                     "node": None}, _result.failed("not running: %s" % skipped.get("reason"))))
            reports = {}
            for host in experiment["hosts"]:
                try:
                    reports.update((task_vars["hostvars"][host].get("experiment_reports") or {}))
                except KeyError:
                    continue
            report = reports.get(experiment["name"]) or {}
            experiments.append({
                "name": experiment["name"], "source": experiment["source"], "manifest": experiment["manifest"],
                "searched": experiment["searched"], "table": experiment["table"],
                "target_rows": experiment["target_rows"], "verdict": report.get("verdict"),
                "status": {"experiment": {"containerRecords": sorted(records, key=lambda r: r["id"])}},
                "injected": sum(1 for r in records if r["phase"] == "Injected"),
                "not_injected": sum(1 for r in records if r["phase"] != "Injected"),
            })
        summary = {"format_version": 1, "experiments": experiments,
                   "schedules": [{"name": s["name"], "namespace": s["namespace"], "schedule": s["schedule"],
                                  "rrule": s["rrule"]["rrule"], "table": s["table"]}
                                 for s in (plan.get("schedules") or [])]}
        basename = args.get("report_basename") or "stresschaos-%s" % (
            experiments[0]["name"] if experiments else "schedules")
        try:
            paths = write_stresschaos(summary, args.get("report_dest") or "/var/tmp/chaosfleet-reports", basename,
                                      check_mode=bool(self._task.check_mode))
        except ReportError as exc:
            raise AnsibleActionFail(str(exc))
        summary["reports"] = paths
        return {"summary": summary, "changed": not self._task.check_mode,
                "lines": ["%s: %s %s" % (e["name"], r["id"], r["phase"] + (" (%s)" % r["reason"] if r["reason"] else ""))
                          for e in experiments for r in e["status"]["experiment"]["containerRecords"]]}
