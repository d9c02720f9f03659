# -*- coding: utf-8 -*-
# Copyright (c) 2026, chaosfleet.stress contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action for chaosfleet.stress.experiment_control: the experiment role's decisions.

Each step is one call into plugin_utils/_experiment_decisions.py: the action reads variables, the
decisions are made there. Steps for one host (request, preflight, baseline, result, failure) read
that host's variables; steps for the whole
experiment (gate, tick, collect) run once and read each participant's variables
once. Nothing runs on the node.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import time

from ansible import constants as C
from ansible import context
from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase
from ansible.plugins.loader import connection_loader
from ansible.utils.collection_loader import AnsibleCollectionConfig

from ansible_collections.chaosfleet.stress.plugins.module_utils._units import UnitError, parse_duration
from ansible_collections.chaosfleet.stress.plugins.module_utils._probe_checks import normalize_all, secrets_of
from ansible_collections.chaosfleet.stress.plugins.plugin_utils import _experiment_decisions, _search, _stop_guard
from ansible_collections.chaosfleet.stress.plugins.plugin_utils._plain import plain_value

STEPS = ("request", "clock", "preflight", "baseline", "gate", "arm", "tick", "disarm", "result", "collect", "failure",
         "search_start", "search_next", "search_fleet", "search_result")
ROLE_PREFIX = "experiment_"
ARGUMENT_SPEC = dict(
    step=dict(type="str", required=True, choices=list(STEPS)),
    check=dict(type="dict"),
    sample=dict(type="dict"),
    round=dict(type="list", elements="dict"),
    state=dict(type="dict"),
    node=dict(type="dict"),
    recovery=dict(type="dict"),
    guard=dict(type="dict"),
    search_round=dict(type="int"),
)
# Keywords of the stop task the guard runs, taken from the role's own tasks (inherited from the play,
# the role or the block), so the stop connects and becomes exactly as the stress start did.
GUARD_KEYWORDS = ("become", "become_method", "become_user", "become_flags", "become_exe", "remote_user",
                  "connection")
# The per-host variables a monitor tick reads (what the host's tasks left), by the name tick_input knows them.
TICK_VARS = (("error", "__experiment_error"), ("heartbeat", "__experiment_heartbeat"), ("started", "__experiment_beat"),
             ("probe_round", "__experiment_probe_round"))
# What of ansible-playbook's command line the guard does not take over (task selection, the playbook, vars
# files: the hosts' connection variables are copied already templated).
GUARD_CLIARGS_LEFT_OUT = ("args", "extra_vars", "inventory", "vault_ids", "vault_password_files")


class ActionModule(ActionBase):

    TRANSFERS_FILES = False
    _requires_connection = False

    def _role_vars(self, task_vars, keys=None):
        """The experiment_* variables of this host (or only ``keys``), templated, without the prefix.

        In a search, the level's own values (__experiment_level) come first: they must win over
        extra vars, which no variable of the role's can.
        """
        out = {}
        for key in task_vars:
            if key.startswith(ROLE_PREFIX) and (keys is None or key[len(ROLE_PREFIX):] in keys):
                out[key[len(ROLE_PREFIX):]] = self._templar.template(task_vars[key])
        level = (self._var(task_vars, "__experiment_level") or {}) if self._var(task_vars, "__experiment_search_level") else {}
        for key, value in level.items():
            if keys is None or key in keys:
                out[key] = value
        return out

    def _var(self, task_vars, name, default=None):
        return self._templar.template(task_vars[name]) if name in task_vars else default

    @staticmethod
    def _of(hostvars, host, name, default=None):
        try:
            value = hostvars[host].get(name, default)
        except KeyError:
            return default
        return default if value is None else value

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        del tmp
        args = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)[1]
        step = args["step"]
        result.update(getattr(self, "_" + step)(args, task_vars))
        result["changed"] = False
        return result

    # ------------------------------------------------------------ one host

    def _request(self, args, task_vars):
        v = self._role_vars(task_vars)
        out = _experiment_decisions.request(v, task_vars["inventory_hostname"])
        if out["problems"]:
            raise AnsibleActionFail("invalid input for experiment %s: %s" % (v.get("name"), "; ".join(out["problems"])))
        # What the role's tasks read of the settings a search level sets (see _role_vars).
        out["settings"] = dict((key, v.get(key)) for key in _search.LEVEL_TASK_SETTINGS)
        search_level = bool(self._var(task_vars, "__experiment_search_level"))
        out["settings"]["recovery_probe_window"] = _search.recovery_probe_window(search_level, v.get("recovery_timeout"))
        out["tick_tasks"] = _experiment_decisions.tick_tasks(out["probes"], search_level)
        if out["probes"] and secrets_of(normalize_all(out["probes"])):
            # The probes (kept for the probe rounds) hold tokens or passwords: not shown at any verbosity.
            out["_ansible_no_log"] = True
        return out

    def _clock(self, args, task_vars):
        return {"at": time.time()}

    def _preflight(self, args, task_vars):
        v = self._role_vars(task_vars, ("type", "require_limit", "allow_oom", "min_free_percent", "replace",
                                        "oom_group_policy", "oom_group_ack"))
        clock = self._var(task_vars, "__experiment_clock") or {}
        return _experiment_decisions.preflight_step(args["check"], self._var(task_vars, "__experiment_request"), v,
                                                    clock.get("at"), time.time())

    def _baseline(self, args, task_vars):
        return _experiment_decisions.baseline_step(args["sample"], args["round"])

    def _result(self, args, task_vars):
        v = self._role_vars(task_vars, ("name", "k8s_target"))
        seen = dict((key, self._var(task_vars, "__experiment_" + key))
                    for key in ("request", "gate", "preflight", "baseline", "probe_round", "error"))
        return {"result": _experiment_decisions.result_step(task_vars["inventory_hostname"], v, seen, args["state"],
                                                            args["node"], args["recovery"])}

    def _failure(self, args, task_vars):
        """Fail this host when its run failed (lost, aborted, a task error, any_errors_fatal), after the report."""
        v = self._role_vars(task_vars, ("name", "fail_on_abort", "any_errors_fatal"))
        host = task_vars["inventory_hostname"]
        why = _experiment_decisions.failure_step(
            host, v, self._var(task_vars, "__experiment_control"), self._var(task_vars, "__experiment_gate"),
            task_vars["ansible_play_hosts"], self._var(task_vars, "__experiment_error") or "",
            (self._var(task_vars, "__experiment_disarm") or {}).get("interrupted"))
        out = {"failure": why}
        if why:
            out.update(failed=True, msg="experiment %s on %s: %s" % (v["name"], host, why))
        return out

    # ------------------------------------------------------------ the whole experiment

    def _participants(self, task_vars, name):
        hostvars = task_vars["hostvars"]
        return [h for h in task_vars["ansible_play_hosts_all"]
                if str(self._of(hostvars, h, "__experiment_current", "")) == name]

    def _gate(self, args, task_vars):
        v = self._role_vars(task_vars, ("name", "preflight_max_failed_percent", "any_errors_fatal"))
        hostvars = task_vars["hostvars"]
        hosts = dict((h, self._of(hostvars, h, "__experiment_problem", "")) for h in
                     self._participants(task_vars, str(v["name"])))
        preflights = dict((h, self._of(hostvars, h, "__experiment_preflight", {})) for h in hosts)
        return _experiment_decisions.gate_step(hosts, preflights, task_vars["ansible_play_hosts"],
                                               self._var(task_vars, "__experiment_request")["interval"], v)

    def _tick(self, args, task_vars):
        v = self._role_vars(task_vars, ("max_failed_nodes_percent", "any_errors_fatal", "abort_on_app_oom_kill"))
        hostvars = task_vars["hostvars"]
        gate = self._var(task_vars, "__experiment_gate")
        state = args["state"] or {}
        # What each host's tasks left: its error, heartbeat, the start's answer and its probe round.
        seen = dict((h, dict((key, self._of(hostvars, h, name)) for key, name in TICK_VARS))
                    for h in _experiment_decisions.tick_reads(gate, state))
        out = _experiment_decisions.tick_step(state, seen, task_vars["ansible_play_hosts"], time.time(), gate,
                                              self._var(task_vars, "__experiment_request"), v,
                                              self._var(task_vars, "__experiment_search_level"))
        if out["wait"] > 0:
            # ansible-playbook forwards SIGINT/SIGTERM to this worker: the guard starts the stop at once.
            with _stop_guard.signal_hooks((self._var(task_vars, "__experiment_guard") or {}).get("dir")):
                time.sleep(out["wait"])
        out["tick_end"] = time.time()
        return out

    def _collect(self, args, task_vars):
        v = self._role_vars(task_vars, ("name", "expected_hosts", "report_basename"))
        hostvars = task_vars["hostvars"]
        hosts = dict((h, (self._of(hostvars, h, "__experiment_result"), self._of(hostvars, h, "__experiment_problem")))
                     for h in self._participants(task_vars, str(v["name"])))
        return _experiment_decisions.collect_step(hosts, v, task_vars.get("awx_job_id"))

    # ------------------------------------------------------------ the stop guard

    def _arm(self, args, task_vars):
        """Start the stop guard for this experiment's starting hosts (run_once, before the inject)."""
        v = self._role_vars(task_vars, ("name", "stop_guard", "stop_timeout", "stop_guard_dir", "duration",
                                        "state_dir", "report", "report_dest", "report_basename"))
        if not _experiment_decisions.flag(v, "stop_guard"):
            return {"armed": False}
        gate = self._var(task_vars, "__experiment_gate") or {}
        request = self._var(task_vars, "__experiment_request")
        hosts = _experiment_decisions.starting_hosts(gate, task_vars["ansible_play_hosts"])
        try:
            timeout = parse_duration(v["stop_timeout"], "experiment_stop_timeout", maximum=600)
            duration = parse_duration(v["duration"], "experiment_duration")
        except UnitError as exc:
            raise AnsibleActionFail(str(exc))
        playbook = os.getppid()  # a worker's parent is ansible-playbook
        stat = _stop_guard.read_stat(playbook)
        if stat is None:
            raise AnsibleActionFail("the stop guard cannot find ansible-playbook (PID %d)" % playbook)
        basename = _experiment_decisions.report_basename(v["name"], v.get("report_basename"), task_vars.get("awx_job_id"))
        config = {
            "experiment": str(v["name"]), "node_name": request["node_name"],
            "state_dir": str(v["state_dir"]), "timeout": timeout,
            "dead_man_seconds": gate.get("heartbeat_timeout"),
            "bound": _stop_guard.guard_bound(time.time(), duration, gate.get("heartbeat_timeout")),
            "playbook": {"pid": playbook, "start_time": _stop_guard.start_time(stat)},
            "hosts": dict((h, self._connection_of(task_vars, h)) for h in hosts),
            "play_keywords": self._guard_keywords(),
            "cliargs": dict((k, plain_value(val)) for k, val in context.CLIARGS.items() if k not in GUARD_CLIARGS_LEFT_OUT),
            "collections_paths": list(AnsibleCollectionConfig.collection_paths or []),
            "stop_record": _stop_guard.stop_record_path(str(v["report_dest"]), basename)
            if _experiment_decisions.flag(v, "report") else None,
        }
        started = time.time()
        try:
            guard = _stop_guard.arm(config, root=str(v["stop_guard_dir"] or "") or None)
        except (OSError, RuntimeError) as exc:
            raise AnsibleActionFail("experiment %s does not start without its stop guard: %s "
                                    "(experiment_stop_guard=false runs without it)" % (v["name"], exc))
        caught = _stop_guard.caught_by(playbook)
        return dict(guard, armed=True, hosts=hosts, stop_record=config["stop_record"],
                    caught=sorted(caught) if caught is not None else None, start_seconds=round(time.time() - started, 3))

    def _connection_of(self, task_vars, host):
        """The host's connection variables, templated (the guard's inventory holds values, not templates)."""
        hostvars = task_vars["hostvars"]
        try:
            names = list(hostvars[host].keys())
        except KeyError:
            return {}
        plugin_vars = []
        connection = self._of(hostvars, host, "ansible_connection") or self._task.connection or "ssh"
        try:
            plugin = connection_loader.get(str(connection), class_only=True)
            if plugin is not None:
                plugin_vars = C.config.get_plugin_vars("connection", plugin._load_name)
        except Exception:  # pylint: disable=broad-except
            plugin_vars = []
        out = {}
        for key in _stop_guard.connection_vars(names, plugin_vars):
            try:
                value = hostvars[host][key]
            except Exception:  # pylint: disable=broad-except  # a variable that cannot be templated is left out
                continue
            if value is not None:
                out[key] = plain_value(value)
        # Passwords typed at the prompt (-k, -K) are not variables.
        password_vars = ("ansible_password", "ansible_ssh_pass", "ansible_ssh_password")
        if self._play_context.password and not any(k in out for k in password_vars):
            out["ansible_password"] = str(self._play_context.password)
        if self._play_context.become_pass and not any(k in out for k in ("ansible_become_password", "ansible_become_pass")):
            out["ansible_become_password"] = str(self._play_context.become_pass)
        return out

    def _guard_keywords(self):
        out = {}
        for key in GUARD_KEYWORDS:
            value = getattr(self._task, key, None)
            if value not in (None, ""):
                out[key] = plain_value(value)
        return out

    def _disarm(self, args, task_vars):
        """Dismiss the guard. ``interrupted``: the signal whose handler ran in ansible-playbook since the arm (a
        Ctrl-C that ansible-core lost: the play went on, and the guard stopped every node)."""
        guard = args.get("guard") or self._var(task_vars, "__experiment_guard") or {}
        if not guard.get("armed"):
            return {"disarmed": False, "interrupted": None}
        armed = set(guard["caught"]) if guard.get("caught") is not None else None
        interrupted = _stop_guard.handled_interrupt(armed, _stop_guard.caught_by(os.getppid()))
        return {"disarmed": _stop_guard.disarm(guard), "interrupted": interrupted}

    # ------------------------------------------------------------ the headroom search (plugin_utils/_search.py)

    def _search_spec(self, task_vars):
        v = self._role_vars(task_vars)
        spec, problems = _search.parse(v, v.get("type"))
        if problems:
            raise AnsibleActionFail("invalid search for experiment %s: %s" % (v.get("name"), "; ".join(problems)))
        probes, problem = _experiment_decisions.parse_probes(v.get("probes"))
        if problem:
            raise AnsibleActionFail(problem)
        return v, spec, _search.probe_slos(normalize_all(probes) if probes else [])

    def _search_start(self, args, task_vars):
        """Check the search and plan this host's first level (every host searches on its own)."""
        v, spec, slos = self._search_spec(task_vars)
        state = _search.start(spec)
        return {"name": str(v["name"]), "spec": spec, "slos": slos, "state": state, "rounds": _search.rounds(spec),
                "level": _search.level_vars(spec, str(v["name"]), 1, state["next"], v.get("max_working_set"),
                                            v.get("heartbeat_interval") or 5),
                "threshold": int(str(v.get("probe_failure_threshold") or 0)), "record": None,
                "interval": int(str(v.get("heartbeat_interval") or 5))}

    def _search_next(self, args, task_vars):
        """After a level round: this host's entry for the level it ran, and its next level (or done)."""
        search = dict(args["state"] or self._var(task_vars, "__experiment_search") or {})
        state, spec = search["state"], search["spec"]
        fleet = self._var(task_vars, "__experiment_search_fleet") or {}
        ran = search.get("level") and self._var(task_vars, "__experiment_current") == search["level"]["name"]
        if not state["done"] and ran:
            entry = _search.level_entry(
                spec, state["next"], self._var(task_vars, "__experiment_result"),
                problem=self._var(task_vars, "__experiment_problem") or "",
                error=self._var(task_vars, "__experiment_level_error") or self._var(task_vars, "__experiment_error")
                or "", slos=search["slos"], threshold=search["threshold"], first=not state["levels"])
            state = _search.advance(spec, state, entry)
            search["record"] = _search.keep_record(search.get("record"), entry,
                                                   self._var(task_vars, "__experiment_result"))
        if fleet.get("stop"):
            state = _search.stop_for_fleet(state)
        level = {}
        if not state["done"]:
            v = self._role_vars(task_vars, ("max_working_set", "heartbeat_interval"))
            level = _search.level_vars(spec, search["name"], int(args["search_round"]) + 2, state["next"],
                                       v.get("max_working_set"), v.get("heartbeat_interval") or 5)
        return dict(search, state=state, level=level, confirm=self._confirm_level(search, state))

    def _confirm_level(self, search, state):
        """experiment_search_on_edge last_pass: the level to hold once more after the edge, or {}."""
        spec = search["spec"]
        if (spec["on_edge"] != "last_pass" or not state["done"] or state["lo"] < 0
                or state["ended_by"] in ("recovery", "error", "app_oom")):
            return {}
        level = _search.level_vars(spec, search["name"], 0, state["lo"], interval=search.get("interval") or 5)
        level["name"] = search["name"] + _search.CONFIRM_SUFFIX
        return level

    def _search_fleet(self, args, task_vars):
        """Once per round: stop every node's search when more than the set share found its edge."""
        name = (self._var(task_vars, "__experiment_search") or {}).get("name")
        hostvars = task_vars["hostvars"]
        states = {}
        for host in task_vars["ansible_play_hosts_all"]:
            search = self._of(hostvars, host, "__experiment_search") or {}
            if search.get("name") == name and search.get("state"):
                states[host] = search["state"]
        first = next(iter(states), None)
        share = ((self._of(hostvars, first, "__experiment_search") or {}).get("spec") or {}).get(
            "max_edge_percent", 100) if first else 100
        stop, reason = _search.fleet_stop(states, share)
        return {"stop": stop, "reason": reason, "searching": sorted(h for h, st in states.items() if not st["done"])}

    def _search_result(self, args, task_vars):
        """This host's search as one experiment result: the edge level's record, with the headroom in `search`."""
        search = self._var(task_vars, "__experiment_search") or {}
        spec, state = search["spec"], search["state"]
        confirmation = None
        confirm = search.get("confirm") or {}
        if confirm and self._var(task_vars, "__experiment_current") == confirm["name"]:
            confirmation = _search.level_entry(
                spec, state["lo"], self._var(task_vars, "__experiment_result"),
                problem=self._var(task_vars, "__experiment_problem") or "",
                error=self._var(task_vars, "__experiment_level_error") or "", slos=search["slos"],
                confirmation=True, threshold=search["threshold"])
            state = dict(state, levels=state["levels"] + [confirmation])
        found = _search.headroom(spec, state, confirmation)
        base = (search.get("record") or {}).get("result")
        return {"result": _search.as_result(found, base, search["name"], task_vars["inventory_hostname"]),
                "headroom": found, "stats": _search.host_stats(found)}
