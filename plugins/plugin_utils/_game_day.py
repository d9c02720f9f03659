# -*- coding: utf-8 -*-
# Copyright (c) 2026, chaosfleet.stress contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The game day's decisions (controller side): spec check, batch plan, gate and summary.

The game_day playbook only sequences; unit tests in
tests/unit/plugins/plugin_utils/test_game_day.py. The summary files are rendered
by the report code (_report.write_game_day), like every other report.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

from ansible_collections.chaosfleet.stress.plugins.module_utils import _result
from ansible_collections.chaosfleet.stress.plugins.plugin_utils._k8s_hosts import plan_hosts, skipped_hosts

SPEC_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
EXPERIMENT_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,90}$")
DEFAULT_GATE = {"continue_on": ["pass", "inconclusive"], "cooldown": 0}
DEFAULT_DEST = "/var/tmp/chaosfleet-reports"
NOT_RUN = "not run"


def batches_of(spec):
    """The spec's batches: each a list of experiments that run in parallel."""
    if "batches" in spec:
        return [list(b) if isinstance(b, list) else [b] for b in spec.get("batches") or []]
    experiments = list(spec.get("experiments") or [])
    if spec.get("mode", "sequence") == "parallel":
        return [experiments] if experiments else []
    return [[e] for e in experiments]


def k8s_hosts_of(experiment, selected, inventory, resolve):
    """An experiment's hosts from its Kubernetes selector, resolved when the game day runs.

    ``selected``: k8s_targets' by_node for it. Its ``hosts`` pattern, when given, limits the
    nodes; those of its hosts that run no picked container are skipped, not failed.
    Returns (planned entries of the k8s_hosts filter, skipped hosts).
    """
    limit = resolve(experiment["hosts"]) if experiment.get("hosts") else None
    planned = plan_hosts(selected or {}, inventory, limit)
    return planned, (skipped_hosts(selected, limit) if limit is not None else [])


def check(spec, known, resolve, selected=None, inventory=(), agents=None):
    """Everything wrong with ``spec`` (a list of one-line problems) and the plan.

    ``known``: the experiment role's settings without the experiment_ prefix;
    ``resolve(pattern)``: the inventory hosts of a pattern; ``selected``: {experiment name:
    k8s_targets' by_node} for experiments with a ``k8s`` selector; ``inventory``: every
    inventory host. Returns {errors, plan: [[name, ...], ...], hosts: {name: [host, ...]},
    targets: {name: {host: role variables}}, skipped: {name: [host, ...]}, add_hosts: [...], agents}
    where add_hosts are the picked hosts the inventory does not have as such, and those with an agent in
    ``agents`` (k8s_targets' agents, k8s_node_access=agent): their connection changes to kubectl.
    """
    agents = agents or {}
    errors, seen, hosts = [], [], {}
    targets, skipped, add_hosts = {}, {}, []
    selected = selected or {}
    if not isinstance(spec, dict):
        return {"errors": ["the spec must be a mapping"], "plan": [], "hosts": {}, "targets": {}, "skipped": {},
                "add_hosts": [], "agents": agents}
    batches = batches_of(spec)
    if not SPEC_NAME_RE.match(str(spec.get("name") or "")):
        errors.append("the spec needs a name (letters, digits, . _ -)")
    if not batches:
        errors.append("the spec has no experiments (give experiments: or batches:)")
    for key in sorted(spec.get("defaults") or {}):
        if key not in known or key in ("name", "type"):
            errors.append("defaults: unknown setting %s" % key)
    for batch_no, batch in enumerate(batches, 1):
        taken = {}
        for index, experiment in enumerate(batch, 1):
            experiment = experiment if isinstance(experiment, dict) else {}
            label = experiment.get("name") or "experiment %d of batch %d" % (index, batch_no)
            if not EXPERIMENT_NAME_RE.match(str(experiment.get("name") or "")):
                errors.append("%s: needs a name (letters, digits, . _ -)" % label)
            elif experiment["name"] in seen:
                errors.append("%s: the name is used twice" % label)
            seen.append(experiment.get("name") or "")
            if "type" not in experiment:
                errors.append("%s: needs a type (memory, cpu or io)" % label)
            elif experiment["type"] not in ("memory", "cpu", "io"):
                errors.append("%s: unknown experiment type '%s' (memory, cpu or io)" % (label, experiment["type"]))
            for key in experiment:
                if key not in known and key not in ("hosts", "k8s"):
                    errors.append("%s: unknown setting %s" % (label, key))
            if "k8s" in experiment:
                if not isinstance(experiment["k8s"], dict) or label not in selected:
                    errors.append("%s: k8s must be a mapping of chaosfleet.stress.k8s_targets options" % label)
                    found = []
                else:
                    planned, skipped[label] = k8s_hosts_of(experiment, selected[label], inventory, resolve)
                    found = [entry["name"] for entry in planned]
                    targets[label] = dict((entry["name"], {
                        "experiment_container_id": entry["container_id"],
                        "experiment_instance_suffix": entry["suffix"],
                        "experiment_k8s_target": entry["kubernetes"]}) for entry in planned)
                    add_hosts.extend(entry for entry in planned
                                     if not entry["in_inventory"] or entry["name"] != entry["node"]
                                     or entry["node"] in agents)
                    if not found:
                        errors.append("%s: the Kubernetes selector picked no running container%s" % (
                            label, " on hosts '%s'" % experiment["hosts"] if experiment.get("hosts") else ""))
            else:
                found = resolve(experiment["hosts"]) if experiment.get("hosts") else []
                if not found:
                    errors.append("%s: hosts '%s' matches no inventory host" % (label, experiment.get("hosts", "")))
            for host in found:
                if host in taken:
                    errors.append("%s and %s both run on %s in batch %d; put them in different batches"
                                  % (label, taken[host], host, batch_no))
                taken[host] = label
            hosts[label] = found
    plan = [[e.get("name") for e in batch] for batch in batches]
    return {"errors": errors, "plan": plan, "hosts": hosts, "targets": targets, "skipped": skipped,
            "add_hosts": add_hosts, "agents": agents}


def settings(spec):
    """The name, the gate and the reports, with their defaults."""
    return {"name": spec.get("name"), "gate": dict(DEFAULT_GATE, **(spec.get("gate") or {})),
            "report_dest": spec.get("report_dest") or DEFAULT_DEST,
            "report_formats": spec.get("report_formats") or ["html", "markdown", "json"]}


def host_vars(spec, batch_index, host, hosts, role_defaults, targets=None):
    """This host's experiment in a batch and the role variables for it ('' and {} when it has none).

    Role defaults, then the spec's defaults, then the experiment's own settings; the report
    is written per experiment by the playbook, after the batch.
    """
    batch = batches_of(spec)[batch_index]
    mine = [e for e in batch if host in hosts.get(e["name"], [])]
    if not mine:
        return {"name": "", "vars": {}}
    experiment = mine[0]
    out = dict(role_defaults)
    out.update(("experiment_" + k, v) for k, v in (spec.get("defaults") or {}).items())
    out.update(("experiment_" + k, v) for k, v in experiment.items() if k not in ("hosts", "k8s"))
    out.update(((targets or {}).get(experiment["name"]) or {}).get(host) or {})
    out.update(experiment_report=False, experiment_fail_on_abort=False,
               experiment_expected_hosts=hosts[experiment["name"]])
    return {"name": experiment["name"], "vars": out}


# An experiment's own settings its report is written with (role defaults, then the spec's, then its own).
REPORT_KEYS = ("experiment_achieved_min_percent", "experiment_publish_copy_to", "experiment_publish_upload_url",
               "experiment_publish_upload_method", "experiment_publish_upload_headers",
               "experiment_publish_webhook_url", "experiment_publish_webhook_link",
               "experiment_publish_validate_certs", "experiment_publish_fail_on_error")


def report_host(planned, play_hosts):
    """The host whose variables hold an experiment's settings: the first of its planned hosts still in the
    play (it set them in its batch), else its first planned host."""
    in_play = [h for h in planned or [] if h in play_hosts]
    return (in_play or list(planned or []) or [None])[0]


def report_vars(names, planned, play_hosts, seen, role_defaults):
    """{experiment: its REPORT_KEYS} for the reports written after a batch.

    ``planned``: {experiment: its hosts}; ``seen``: {host: its variables} of the report hosts. A value
    the report host does not have (it never got this batch's variables) is the role's default.
    """
    out = {}
    for name in names:
        mine = seen.get(report_host(planned.get(name), play_hosts)) or {}
        out[name] = dict((key, mine[key] if mine.get(key) is not None else role_defaults.get(key))
                         for key in REPORT_KEYS)
    return out


def gate(batch_index, names, reports, continue_on):
    """'' when the next batch may start, else why the gate closed."""
    bad = ["%s ended %s" % (n, (reports.get(n) or {}).get("verdict", "error")) for n in names
           if (reports.get(n) or {}).get("verdict", "error") not in continue_on]
    return ("gate after batch %d closed: %s" % (batch_index + 1, ", ".join(bad))) if bad else ""


def summary(name, plan, hosts, reports, stopped, skipped=None):
    """The game day's summary: each experiment's verdict, reports and skipped hosts (no target
    there), and the overall verdict."""
    batches = [[{"name": n, "verdict": (reports.get(n) or {}).get("verdict", NOT_RUN), "hosts": hosts.get(n, []),
                 "skipped": (skipped or {}).get(n, []),
                 "reports": (reports.get(n) or {}).get("reports") or {}} for n in names] for names in plan]
    entries = [e for batch in batches for e in batch]
    not_run = [e["name"] for e in entries if e["verdict"] == NOT_RUN]
    verdict = _result.worst([e["verdict"] for e in entries if e["verdict"] != NOT_RUN])
    if not_run and verdict == "pass":
        verdict = "error"
    return {"format_version": _result.FORMAT_VERSION, "name": name, "verdict": verdict, "stopped": stopped or None,
            "not_run": not_run, "batches": batches}
