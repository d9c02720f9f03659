# -*- coding: utf-8 -*-
# Copyright (c) 2026, chaosfleet.stress contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action for chaosfleet.stress.experiment_control: the experiment role's decisions.

Each step is one call into plugin_utils/_experiment_decisions.py. Steps for one host (request,
preflight, baseline, result) read that host's variables; steps for the whole
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
from ansible_collections.chaosfleet.stress.plugins.plugin_utils import _experiment_decisions, _stop_guard
from ansible_collections.chaosfleet.stress.plugins.plugin_utils._report import plain_value

STEPS = ("request", "clock", "preflight", "baseline", "gate", "arm", "tick", "disarm", "result", "collect")
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
)
# Keywords of the stop task the guard runs, taken from the role's own tasks (inherited from the play,
# the role or the block), so the stop connects and becomes exactly as the stress start did.
GUARD_KEYWORDS = ("become", "become_method", "become_user", "become_flags", "become_exe", "remote_user",
                  "connection")
# What of ansible-playbook's command line the guard does not take over (task selection, the playbook, vars
# files: the hosts' connection variables are copied already templated).
GUARD_CLIARGS_LEFT_OUT = ("args", "extra_vars", "inventory", "vault_ids", "vault_password_files")


class ActionModule(ActionBase):

    TRANSFERS_FILES = False
    _requires_connection = False

    def _role_vars(self, task_vars, keys=None):
        """The experiment_* variables of this host (or only ``keys``), templated, without the prefix."""
        out = {}
        for key in task_vars:
            if key.startswith(ROLE_PREFIX) and (keys is None or key[len(ROLE_PREFIX):] in keys):
                out[key[len(ROLE_PREFIX):]] = self._templar.template(task_vars[key])
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
        return out

    def _clock(self, args, task_vars):
        return {"at": time.time()}

    def _preflight(self, args, task_vars):
        v = self._role_vars(task_vars, ("type", "require_limit", "allow_oom", "min_free_percent", "replace",
                                        "oom_group_policy", "oom_group_ack"))
        request = self._var(task_vars, "__experiment_request")
        check = args["check"] or {}
        replace = _experiment_decisions._bool(v["replace"])
        done = bool(check.get("result_stored")) and not replace
        problem = "" if done else _experiment_decisions.target_problem(check, v["type"], _experiment_decisions._bool(v["require_limit"]))
        oom_group = bool(not problem and v["type"] == "memory" and (check.get("limits") or {}).get("oom_group") is True)
        if not (problem or done):
            problem = _experiment_decisions.plan_problem(
                check, request["node_name"], request["interval"], _experiment_decisions._bool(v["allow_oom"]),
                v["min_free_percent"], replace,
                oom_group_ack_needed=oom_group and v["oom_group_policy"] == "require_ack"
                and not _experiment_decisions._bool(v["oom_group_ack"]))
        clock = self._var(task_vars, "__experiment_clock") or {}
        check_round = round(time.time() - clock["at"], 3) if clock.get("at") else None
        return {"problem": problem, "done": done, "target": check.get("target") if not problem else None,
                "check_round_seconds": check_round, "plan": check.get("plan"), "status": check.get("status"),
                "argv": check.get("argv") or [], "oom_group_warning": oom_group}

    def _baseline(self, args, task_vars):
        round_ = args["round"] or []
        return {"problem": _experiment_decisions.baseline_problem(args["sample"], round_),
                "summary": ((args["sample"] or {}).get("results") or [{}])[0].get("summary"), "round": round_}

    def _result(self, args, task_vars):
        v = self._role_vars(task_vars, ("name", "k8s_target"))
        host = task_vars["inventory_hostname"]
        state = args["state"] or {}
        mine = (state.get("hosts") or {}).get(host) or {}
        request = self._var(task_vars, "__experiment_request")
        gate = self._var(task_vars, "__experiment_gate") or {}
        plan = (self._var(task_vars, "__experiment_preflight") or {}).get("plan") or {}
        heartbeat = _experiment_decisions.heartbeat_stats(state, request["interval"], gate.get("heartbeat_timeout"))
        heartbeat.update(configured_timeout_seconds=plan.get("heartbeat_timeout_seconds"),
                         check_round_seconds=gate.get("check_round_seconds"))
        probes = [p["name"] for p in request.get("probes") or []] or None
        probe_round = self._var(task_vars, "__experiment_probe_round") or {}
        error = self._var(task_vars, "__experiment_error") or ""
        lost = mine.get("lost") or ""
        recovery = args["recovery"]
        return {"result": _experiment_decisions.result(
            args["node"] if not lost else None, str(v["name"]), host,
            (self._var(task_vars, "__experiment_baseline") or {}).get("summary"), probes, mine.get("probes"),
            request["threshold"], recovery, state.get("abort_reason") or "", lost or error, heartbeat,
            tally=probe_round.get("tally"), k8s_target=v.get("k8s_target") or None)}

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
        out = _experiment_decisions.gate(hosts, task_vars["ansible_play_hosts"], v["preflight_max_failed_percent"],
                            _experiment_decisions._bool(v["any_errors_fatal"]))
        rounds, configured = [], None
        for host in out["participants"]:
            preflight = self._of(hostvars, host, "__experiment_preflight", {})
            if preflight.get("check_round_seconds") is not None:
                rounds.append(preflight["check_round_seconds"])
            configured = configured or (preflight.get("plan") or {}).get("heartbeat_timeout_seconds")
        request = self._var(task_vars, "__experiment_request")
        out["check_round_seconds"] = max(rounds) if rounds else None
        out["heartbeat_timeout"] = _experiment_decisions.effective_timeout(configured or 30, request["interval"],
                                                              out["check_round_seconds"])
        # A heartbeat gives up after a third of the dead-man: the node is tried again next tick.
        out["beat_timeout"] = max(3, out["heartbeat_timeout"] // 3)
        if not out["start"]:
            out["msg"] = "not starting experiment %s: %s" % (v["name"], out["msg"])
        return out

    def _tick(self, args, task_vars):
        v = self._role_vars(task_vars, ("max_failed_nodes_percent", "any_errors_fatal", "abort_on_app_oom_kill"))
        hostvars = task_vars["hostvars"]
        gate = self._var(task_vars, "__experiment_gate")
        request = self._var(task_vars, "__experiment_request")
        state = args["state"] or {}
        previous = state.get("hosts") or {}
        beats, rounds, errors = {}, {}, {}
        for host in gate["participants"]:
            if host in previous and not previous[host]["active"]:
                continue
            errors[host] = self._of(hostvars, host, "__experiment_error", "")
            raw = self._of(hostvars, host, "__experiment_heartbeat")
            beat = None if raw is None or raw.get("skipped") else _experiment_decisions.parse_beat(raw)
            if beat is not None and host not in previous:
                # The first tick: the deadline comes from the start's answer.
                started = self._of(hostvars, host, "__experiment_beat", {})
                beat["deadline"] = beat.get("deadline") or started.get("deadline")
            if beat is not None and not beat.get("skipped"):
                beats[host] = beat
                rounds[host] = (self._of(hostvars, host, "__experiment_probe_round") or {}).get("probes") or []
        settings = {"participants": [h for h in gate["participants"] if h not in gate["not_ready"]],
                    "interval": request["interval"], "threshold": request["threshold"],
                    "timeout": gate["heartbeat_timeout"],
                    "max_failed_percent": v["max_failed_nodes_percent"],
                    "any_errors_fatal": _experiment_decisions._bool(v["any_errors_fatal"]),
                    "abort_on_app_oom_kill": _experiment_decisions._bool(v["abort_on_app_oom_kill"])}
        out = _experiment_decisions.tick(state, beats, rounds, task_vars["ansible_play_hosts"], time.time(), settings, errors)
        if out["wait"] > 0:
            # ansible-playbook forwards SIGINT/SIGTERM to this worker: the guard starts the stop at once.
            with _stop_guard.signal_hooks((self._var(task_vars, "__experiment_guard") or {}).get("dir")):
                time.sleep(out["wait"])
        out["tick_end"] = time.time()
        return out

    def _collect(self, args, task_vars):
        v = self._role_vars(task_vars, ("name",))
        hostvars = task_vars["hostvars"]
        hosts = dict((h, (self._of(hostvars, h, "__experiment_result"), self._of(hostvars, h, "__experiment_problem")))
                     for h in self._participants(task_vars, str(v["name"])))
        return {"results": _experiment_decisions.report_input(hosts)}

    # ------------------------------------------------------------ the stop guard

    def _arm(self, args, task_vars):
        """Start the stop guard for this experiment's starting hosts (run_once, before the inject)."""
        v = self._role_vars(task_vars, ("name", "stop_guard", "stop_timeout", "stop_guard_dir", "duration",
                                        "state_dir", "report", "report_dest", "report_basename"))
        if not _experiment_decisions._bool(v["stop_guard"]):
            return {"armed": False}
        gate = self._var(task_vars, "__experiment_gate") or {}
        request = self._var(task_vars, "__experiment_request")
        hosts = [h for h in gate.get("participants") or [] if h not in (gate.get("not_ready") or {})
                 and h in task_vars["ansible_play_hosts"]]
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
            if _experiment_decisions._bool(v["report"]) else None,
        }
        started = time.time()
        try:
            guard = _stop_guard.arm(config, root=str(v["stop_guard_dir"] or "") or None)
        except (OSError, RuntimeError) as exc:
            raise AnsibleActionFail("experiment %s does not start without its stop guard: %s "
                                    "(experiment_stop_guard=false runs without it)" % (v["name"], exc))
        return dict(guard, armed=True, hosts=hosts, stop_record=config["stop_record"],
                    start_seconds=round(time.time() - started, 3))

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
        guard = args.get("guard") or self._var(task_vars, "__experiment_guard") or {}
        return {"disarmed": _stop_guard.disarm(guard) if guard.get("armed") else False}
