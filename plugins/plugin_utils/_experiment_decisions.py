# -*- coding: utf-8 -*-
# Copyright (c) 2026, chaosfleet.stress contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The experiment role's decisions, as plain functions (controller side).

The role (roles/experiment) only sequences tasks; every choice it makes is here:
input checks, the preflight and baseline verdicts, the gate, the heartbeat and
probe bookkeeping with the abort conditions and the wait between ticks, and the
result assembly. The clock is passed in, so everything is unit-tested as tables
(tests/unit/plugins/plugin_utils/test_experiment_decisions.py).

Decisions for the whole experiment (gate, tick, collect) read each participant
once per call; nothing loops over all hosts for each host. The ``*_step`` functions
are what the action's steps call: the action reads the variables, these decide.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import math
import re
import shlex

import yaml

from ansible_collections.chaosfleet.stress.plugins.module_utils import _result
from ansible_collections.chaosfleet.stress.plugins.module_utils import _state
from ansible_collections.chaosfleet.stress.plugins.module_utils._probe_checks import ProbeSpecError, normalize_all
from ansible_collections.chaosfleet.stress.plugins.module_utils._resolve import SELECTORS
from ansible_collections.chaosfleet.stress.plugins.module_utils._units import UnitError, parse_bool, parse_names
from ansible_collections.chaosfleet.stress.plugins.plugin_utils import _probes

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,90}$")
WHOLE_RE = re.compile(r"^[0-9]+$")
NUMBER_RE = re.compile(r"^[0-9]+(\.[0-9]+)?$")
PERCENT_KEYS = ("max_failed_nodes_percent", "preflight_max_failed_percent", "recovery_within_percent",
                "achieved_min_percent")
OVERDUE_SECONDS = 30  # a stress still "running" this long after its deadline is left to the read-back
# The role's yes/no variables (without the prefix); the request step refuses any other word in them.
FLAG_KEYS = ("memory_churn", "allow_oom", "require_limit", "replace", "oom_group_ack", "abort_on_app_oom_kill",
             "stop_if_target_gone", "any_errors_fatal", "fail_on_abort", "stop_guard", "report")


def _text(value):
    return "" if value is None else str(value).strip()


def flag(v, key):
    """The yes/no role variable ``key`` of ``v`` (experiment_* without the prefix); unset is false.

    The request step checked every FLAG_KEYS word first, so a later step never meets an unknown one.
    """
    return parse_bool(v.get(key), "experiment_" + key)


# ---------------------------------------------------------------- inputs


def parse_probes(value):
    """experiment_probes as a list: given as a list, or as YAML/JSON text (what an AWX survey sends).

    Returns (probes, problem); each probe is checked by the probe action's own spec
    (module_utils/_probe_checks.py), so the role and the action accept the same probes.
    """
    if value is None or value == "":
        return [], ""
    if isinstance(value, str):
        try:
            value = yaml.safe_load(value)
        except yaml.YAMLError as exc:
            return [], "experiment_probes is not YAML: %s" % " ".join(str(exc).split())
        value = value or []
    try:
        normalize_all(value)
    except ProbeSpecError as exc:
        return [], "experiment_probes: %s" % exc
    return value, ""


def request(v, host):
    """Check the role's inputs (``v``: experiment_* without the prefix) and build the stressor request.

    Survey answers arrive as strings, so numbers are checked as text, and every yes/no variable
    (FLAG_KEYS) must be a true/false word. Returns {problems: [..], selector, node_name, interval,
    threshold, memory, cpu, io, guard, probes, paths (the node's _state.experiment_paths, which the
    role's tasks use instead of building paths), beat_command}; the role fails with the problems
    before anything starts.
    """
    name, kind = _text(v.get("name")), v.get("type")
    selector = dict((key, _text(v.get(key))) for key in SELECTORS if _text(v.get(key)))
    out = {"problems": [], "selector": selector, "node_name": name + _text(v.get("instance_suffix")),
           "interval": None, "threshold": None, "memory": None, "cpu": None, "io": None, "guard": None,
           "probes": []}
    problems = out["problems"]
    if not NAME_RE.match(name) or kind not in ("memory", "cpu", "io"):
        problems.append("experiment_name must be set, using letters, digits, '.', '_' and '-' (got '%s'), and "
                        "experiment_type must be memory, cpu or io (got '%s')" % (name, kind))
        return out
    if not selector:
        problems.append("no target for experiment %s on %s: set one of %s or experiment_%s" % (
            name, host, ", ".join("experiment_" + k for k in SELECTORS[:-1]), SELECTORS[-1]))
    elif len(selector) > 1:
        problems.append("contradictory target for experiment %s on %s: %s are all set; give exactly one"
                        % (name, host, " and ".join("experiment_" + k for k in selector)))

    def need(ok, text):
        if not ok:
            problems.append(text)

    def got(key):
        return _text(v.get(key))

    need("pid" not in selector or WHOLE_RE.match(selector["pid"]),
         "experiment_pid must be a process ID (got '%s')" % selector.get("pid", ""))
    if kind == "memory":
        need(bool(got("memory_size")) != bool(got("memory_target_usage")),
             "a memory experiment needs exactly one of experiment_memory_size and experiment_memory_target_usage "
             "(got size '%s', target_usage '%s')" % (got("memory_size"), got("memory_target_usage")))
        need(WHOLE_RE.match(got("memory_workers")) and int(got("memory_workers")) >= 1,
             "experiment_memory_workers must be a whole number >= 1 (got '%s')" % got("memory_workers"))
        need(NUMBER_RE.match(got("min_free_percent")) and float(got("min_free_percent")) < 100,
             "experiment_min_free_percent must be from 0 to 100 (got '%s')" % got("min_free_percent"))
    elif kind == "cpu":
        need(NUMBER_RE.match(got("cpu_load")) and 0 < float(got("cpu_load")) <= 100,
             "experiment_cpu_load must be a percent of the target's CPU quota, above 0 and at most 100 (got '%s')"
             % got("cpu_load"))
        need(re.match(r"^[0-9]*$", got("cpu_workers")),
             "experiment_cpu_workers must be a whole number, 0 for automatic (got '%s')" % got("cpu_workers"))
    else:
        need(WHOLE_RE.match(got("io_workers")) and int(got("io_workers")) >= 1,
             "experiment_io_workers must be a whole number >= 1 (got '%s')" % got("io_workers"))
    need(WHOLE_RE.match(got("heartbeat_interval")) and int(got("heartbeat_interval")) >= 1,
         "experiment_heartbeat_interval must be whole seconds >= 1 (got '%s')" % got("heartbeat_interval"))
    need(got("duration"), "experiment_duration must be set")
    need(got("heartbeat_timeout"),
         "experiment_heartbeat_timeout must be set (the node stops the stress without heartbeats)")
    need(WHOLE_RE.match(got("probe_failure_threshold")),
         "experiment_probe_failure_threshold must be a whole number >= 0 (got '%s')" % got("probe_failure_threshold"))
    for key in PERCENT_KEYS:
        need(NUMBER_RE.match(got(key)) and (float(got(key)) <= 100 or key == "recovery_within_percent"),
             "experiment_%s must be a percentage >= 0 (got '%s')" % (key, got(key)))
    need(re.match(r"^-?[0-9]+$", got("oom_score_adj")),
         "experiment_oom_score_adj must be a whole number from -1000 to 1000 (got '%s')" % got("oom_score_adj"))
    out["probes"], probe_problem = parse_probes(v.get("probes"))
    need(not probe_problem, probe_problem)
    for key in FLAG_KEYS:
        try:
            flag(v, key)
        except UnitError as exc:
            problems.append(str(exc))
    try:
        out["paths"] = _state.experiment_paths(got("state_dir") or _state.DEFAULT_STATE_DIR, out["node_name"])
    except _state.StateError as exc:
        problems.append("experiment_name with experiment_instance_suffix: %s" % exc)
    if problems:
        return out
    out["beat_command"] = beat_command(out["paths"])
    out["interval"] = int(got("heartbeat_interval"))
    out["threshold"] = int(got("probe_failure_threshold"))
    if kind == "memory":
        memory = {"workers": int(got("memory_workers"))}
        for key in ("size", "target_usage", "ramp", "method"):
            if got("memory_" + key):
                memory[key] = got("memory_" + key)
        if flag(v, "memory_churn"):
            memory["churn"] = True
        out["memory"] = memory
    elif kind == "cpu":
        out["cpu"] = dict({"load": float(got("cpu_load"))},
                          **({"workers": int(got("cpu_workers"))} if got("cpu_workers") and int(got("cpu_workers"))
                             else {}))
    else:
        out["io"] = {"workers": int(got("io_workers")), "size": got("io_size")}
    guard = {"stop_on_app_oom_kill": flag(v, "abort_on_app_oom_kill"),
             "stop_if_target_gone": flag(v, "stop_if_target_gone")}
    if got("max_working_set"):
        guard["max_working_set"] = got("max_working_set")
    out["guard"] = guard
    return out


def tick_tasks(probes, search_level):
    """The monitor's task file for one tick: the plain tick (heartbeat and decision), or the one that also
    runs a probe round and, in a search level, stops the hosts that broke. The plain one has no task that
    would only be skipped: on a large fleet each skipped task still costs a worker per host and tick."""
    return "tick_steady_state.yml" if probes or search_level else "tick.yml"


BEAT_MARK = "chaosfleet-beat:"


def beat_command(paths):
    """The heartbeat, as one shell line for ansible.builtin.raw: touch the experiment's heartbeat
    file (all the node's dead-man watches) and print its outcome, or that it still runs.
    ``paths``: the experiment's _state.experiment_paths.

    No module run, no Python on the node: a heartbeat round over many nodes costs little more
    than the SSH round trips. The names come from validated input and are quoted anyway. The
    answer is one line behind BEAT_MARK, because a login shell may print its own lines (motd,
    rc-file warnings) into raw's output.
    """
    return ("cd %s 2>/dev/null || { echo '%s{\"status\": \"absent\"}'; exit 0; }; touch %s && "
            "printf '%s%%s\\n' \"$(cat %s 2>/dev/null || echo '{\"status\": \"running\"}')\""
            % (shlex.quote(paths["dir"]), BEAT_MARK, shlex.quote(paths["heartbeat"]), BEAT_MARK,
               shlex.quote(paths["outcome"])))


def parse_beat(raw):
    """The stressor-like answer ({status, reason, deadline} or {msg}) from the raw heartbeat's result."""
    raw = raw or {}
    if raw.get("unreachable") or raw.get("rc") not in (0, None) or raw.get("failed") or "stdout" not in raw:
        return {"msg": raw.get("msg") or raw.get("stderr") or "no answer"}
    answers = [line.split(BEAT_MARK, 1)[1] for line in raw["stdout"].splitlines() if BEAT_MARK in line]
    try:
        outcome = json.loads(answers[-1])
        if not isinstance(outcome, dict):
            raise ValueError("not an object")
    except (IndexError, ValueError):
        return {"msg": "unreadable heartbeat answer: %s" % _truncate(raw["stdout"], 200)}
    return {"status": outcome.get("status"), "reason": outcome.get("reason"), "deadline": outcome.get("deadline")}


# ---------------------------------------------------------------- preflight and baseline


def target_problem(check, kind, require_limit):
    """Why the stressor's check-mode answer (``check``) names no usable target, or ''. The check resolves
    the target itself: one module run per node finds it, reads its limits and plans the stress."""
    if check.get("status") is None:
        return "the target or the request was refused: %s" % (check.get("msg") or "no answer from the stressor")
    target = check.get("target") or {}
    if target.get("kind") in ("sandbox", "pod"):
        return "the target %s is a %s, not a container; target an application container" % (
            target.get("path"), target["kind"])
    limits = check.get("limits")
    if kind == "memory" and require_limit and limits is not None and limits.get("memory_limit_bytes") is None:
        return ("the target %s has no memory limit, so a memory experiment cannot be sized against it "
                "(set experiment_require_limit=false to allow absolute sizes)" % target.get("path"))
    return ""


def plan_problem(check, node_name, interval, allow_oom, min_free_percent, replace, oom_group_ack_needed=False):
    """Why the stressor's check-mode answer (``check``) must not start, or ''."""
    plan = check.get("plan") or {}
    memory = plan.get("memory")
    status = check.get("status")
    if status is None:
        return str(check.get("msg") or "the stressor refused the request")
    if check.get("result_stored") and not replace:
        return ""
    if status == "running":
        return ("experiment %s is already running on this node (started by another run); stop it with the "
                "chaosfleet.stress.rollback role or wait for its deadline" % node_name)
    if status != "would_start" and not replace:
        return ("experiment %s already ran on this node (%s, %s) without a complete result; use a new "
                "experiment_name or set experiment_replace=true" % (node_name, status, check.get("reason")))
    if memory and not allow_oom and memory.get("limit_bytes") \
            and memory["baseline_working_set_bytes"] + memory["bytes"] \
            > memory["limit_bytes"] * (100 - float(min_free_percent)) / 100:
        return ("not enough headroom: the working set %s plus %s bytes of stress leaves less than %s%% of the "
                "%s-byte limit free" % (memory["baseline_working_set_bytes"], memory["bytes"], min_free_percent,
                                        memory["limit_bytes"]))
    timeout = plan.get("heartbeat_timeout_seconds")
    if timeout is not None and timeout < 2 * interval:
        return ("experiment_heartbeat_timeout (%ss) must be at least twice experiment_heartbeat_interval (%ss), or "
                "the node would stop the stress between two heartbeats" % (timeout, interval))
    if oom_group_ack_needed:
        return ("%s has memory.oom.group=1: one OOM kill ends the whole container. Set experiment_oom_group_ack=true "
                "to accept that" % (check.get("target") or {}).get("path"))
    return ""


def _as_list(value):
    return value if isinstance(value, list) else [value]


def _truncate(text, size):
    text = str(text)
    return text if len(text) <= size else text[:size - 3] + "..."


def baseline_problem(sample, round_):
    """Why the steady state cannot be established, or ''. Every probe must pass at baseline."""
    if not (sample or {}).get("results"):
        return "the baseline could not be sampled: %s" % ((sample or {}).get("msg") or "no result")
    bad = [p for p in round_ or [] if not p["ok"]]
    if bad:
        return "the steady state cannot be established: " + "; ".join(
            "probe %s failed (%s)" % (p["name"], p["detail"]) for p in bad)
    return ""


OOM_GROUP_WARNING = ("%s has memory.oom.group=1: if the stress drives it into OOM, the kernel kills the whole "
                     "container (the application too), not only stress-ng")


def preflight_step(check, request, v, clock_at, now):
    """The preflight judgement of one host from the stressor's check-mode answer (``check``).

    ``v``: the role's type, require_limit, allow_oom, min_free_percent, replace, oom_group_policy and
    oom_group_ack; ``clock_at``: when the check round started (the clock step), ``now``: the time now.
    A name whose whole result is kept is done (reported again, not re-run) unless experiment_replace.
    ``clear_state``: delete the old record under this name first (replace, and it is neither new nor running).
    """
    check = check or {}
    replace = flag(v, "replace")
    done = bool(check.get("result_stored")) and not replace
    problem = "" if done else target_problem(check, v.get("type"), flag(v, "require_limit"))
    oom_group = bool(not problem and v.get("type") == "memory" and (check.get("limits") or {}).get("oom_group") is True)
    if not (problem or done):
        problem = plan_problem(
            check, request["node_name"], request["interval"], flag(v, "allow_oom"), v.get("min_free_percent"),
            replace, oom_group_ack_needed=oom_group and v.get("oom_group_policy") == "require_ack"
            and not flag(v, "oom_group_ack"))
    return {"problem": problem, "done": done, "target": check.get("target") if not problem else None,
            "check_round_seconds": round(now - clock_at, 3) if clock_at else None, "plan": check.get("plan"),
            "status": check.get("status"), "argv": check.get("argv") or [], "oom_group_warning": oom_group,
            # Ansible shows an action's warnings as warnings (and AWX lists them): no task of its own per host.
            "warnings": [OOM_GROUP_WARNING % (check.get("target") or {}).get("path")] if oom_group else [],
            "clear_state": bool(not problem and replace and check.get("status") not in ("would_start", "running"))}


def baseline_step(sample, round_):
    """The baseline judgement of one host, with the summary the recovery compares against."""
    return {"problem": baseline_problem(sample, round_ or []),
            "summary": ((sample or {}).get("results") or [{}])[0].get("summary"), "round": round_ or []}


# ---------------------------------------------------------------- the whole experiment


def gate(hosts, play_hosts, allowed_percent, any_errors_fatal):
    """Whether the experiment starts. ``hosts``: {host: its problem or ''} of this experiment's hosts.

    Hosts that failed outright before the gate are no longer in ``play_hosts``.
    """
    participants = sorted(hosts)
    not_ready = {}
    for host in participants:
        if host not in play_hosts:
            not_ready[host] = "failed before the gate (see its task error)"
        elif hosts[host]:
            not_ready[host] = hosts[host]
    allowed = 0.0 if any_errors_fatal else float(allowed_percent)
    start = not not_ready or len(not_ready) * 100 <= len(participants) * allowed
    msg = ""
    if not start:
        msg = "%d of %d hosts are not ready (at most %s%% may be left out): %s" % (
            len(not_ready), len(participants), allowed_percent,
            "; ".join("%s: %s" % (h, not_ready[h]) for h in sorted(not_ready)))
    return {"participants": participants, "not_ready": not_ready, "start": start, "msg": msg}


def gate_step(problems, preflights, play_hosts, interval, v):
    """The gate with the dead-man every node gets. ``problems``: {participant: its problem or ''};
    ``preflights``: {participant: its preflight step's answer}; ``v``: the role's name,
    preflight_max_failed_percent and any_errors_fatal.
    """
    out = gate(problems, play_hosts, v.get("preflight_max_failed_percent"), flag(v, "any_errors_fatal"))
    rounds, configured = [], None
    for host in out["participants"]:
        preflight = preflights.get(host) or {}
        if preflight.get("check_round_seconds") is not None:
            rounds.append(preflight["check_round_seconds"])
        configured = configured or (preflight.get("plan") or {}).get("heartbeat_timeout_seconds")
    out["check_round_seconds"] = max(rounds) if rounds else None
    out["heartbeat_timeout"] = effective_timeout(configured or 30, interval, out["check_round_seconds"])
    # A heartbeat gives up after a third of the dead-man: the node is tried again next tick.
    out["beat_timeout"] = max(3, out["heartbeat_timeout"] // 3)
    if not out["start"]:
        out["msg"] = "not starting experiment %s: %s" % (v.get("name"), out["msg"])
    return out


def starting_hosts(gate_out, play_hosts):
    """The hosts the inject starts on: the gate's participants that were ready and are still in the play."""
    not_ready = (gate_out or {}).get("not_ready") or {}
    return [h for h in (gate_out or {}).get("participants") or [] if h not in not_ready and h in play_hosts]


def effective_timeout(configured, interval, round_seconds):
    """The dead-man the nodes get: the configured one, or longer when this controller is slow.

    ``round_seconds`` is how long one module round over the participants took (the preflight
    check). A node's first heartbeat comes about a round after its start (the rest of the
    start round), and later ones every interval plus a round; three of those fit in the
    dead-man, so a slow but healthy controller never lets it fire. Whole seconds.
    """
    needed = 3 * (interval + (round_seconds or 0.0))
    return int(math.ceil(max(float(configured), needed)))


def percentile(values, share):
    """Nearest-rank percentile (share 0..1) of a list of numbers; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, int(math.ceil(share * len(ordered))) - 1)]


def _beat(entry, beat, now, timeout):
    """Update a host's entry from its latest stressor answer (start or heartbeat).

    A heartbeat that got no answer is missed, not fatal: the host counts as lost only once
    no heartbeat arrived for the node's dead-man time (by then the node ended the stress).
    """
    if beat is not None and beat.get("status") is not None:
        entry.update(status=beat["status"], reason=beat.get("reason") or "", active=beat["status"] == "running",
                     deadline=beat.get("deadline") or entry.get("deadline"), last_beat=now)
        if entry["active"] and entry["deadline"] is not None and now > entry["deadline"] + OVERDUE_SECONDS:
            # Its supervisor should have ended it: the read-back after the monitor tells what happened.
            entry.update(status="overdue", active=False)
        return
    entry["missed"] = entry.get("missed", 0) + 1
    why = _truncate((beat or {}).get("msg") or "no answer", 200)
    if now - (entry.get("last_beat") or now) >= timeout:
        lost = "lost contact with the node during the stress (%s); its dead-man ends the stress by itself" % why
        entry.update(status="lost", active=False, lost=lost)


def tick(state, beats, rounds, play_hosts, now, settings, errors=None):
    """One monitor tick for the whole experiment.

    ``state``: the previous tick's state (None the first time); ``beats``: {host: the
    stressor answer of this tick} for the hosts that were sent one; ``rounds``: {host: probe
    round} of this tick; ``errors``: {host: why} for hosts whose task failed (they rolled
    back on their own); ``settings``: interval, timeout (the dead-man), threshold, max_failed_percent,
    any_errors_fatal, abort_on_app_oom_kill, participants. Returns the new state with
    ``wait`` (seconds to sleep before the next tick) and ``done``.
    """
    state = dict(state or {})
    hosts = dict((h, dict(s)) for h, s in (state.get("hosts") or {}).items())
    threshold = settings["threshold"]
    for host in settings["participants"]:
        entry = hosts.get(host) or {"status": "pending", "reason": "", "active": True, "deadline": None, "lost": "",
                                    "probes": {}, "missed": 0, "last_beat": now}
        if entry["active"]:
            if host not in play_hosts or (errors or {}).get(host):
                entry.update(status="failed", active=False, reason=(errors or {}).get(host) or "")
            elif host in beats:
                _beat(entry, beats[host], now, settings["timeout"])
                if entry["status"] == "running":
                    for probe in rounds.get(host) or []:
                        old = entry["probes"].get(probe["name"]) or {"checks": 0, "failures": 0, "last_failure": ""}
                        entry["probes"][probe["name"]] = {
                            "checks": old["checks"] + 1, "failures": old["failures"] + (0 if probe["ok"] else 1),
                            "last_failure": old["last_failure"] if probe["ok"] else probe["detail"]}
        hosts[host] = entry
    stop = []
    if settings.get("independent"):
        # A search level: a host whose steady state broke ends its own stress; the others hold theirs.
        for host in sorted(hosts):
            why = host_break(hosts[host], settings) if hosts[host]["active"] and host in play_hosts else ""
            if why:
                hosts[host].update(status="edge", active=False, edge=why)
                stop.append(host)
    round_times = list(state.get("round_seconds") or [])
    if state.get("tick_end") is not None:
        round_times.append(round(now - state["tick_end"], 3))
    abort = state.get("abort_reason") or abort_reason(hosts, play_hosts, settings)
    active = [h for h, s in hosts.items() if s["active"]]
    done = bool(abort) or not active
    wait = 0.0
    if not done:
        deadlines = [hosts[h]["deadline"] for h in active if hosts[h]["deadline"] is not None]
        wait = max(0.0, settings["interval"] - (round_times[-1] if round_times else 0.0))
        if deadlines:
            wait = min(wait, max(1.0, max(deadlines) - now + 0.5))
        if stop:
            wait = 0.0  # the hosts that broke are stopped right after this decision, not an interval later
    return {"hosts": hosts, "abort_reason": abort, "round_seconds": round_times, "done": done,
            "wait": round(wait, 3), "tick_end": now + wait, "threshold": threshold, "stop": stop}


def host_break(entry, settings, host=""):
    """Why this host's steady state broke (probe failures over the threshold, an app OOM kill), or ''."""
    reasons, where = [], (" on %s" % host) if host else ""
    for name in sorted(entry.get("probes") or {}):
        stats = entry["probes"][name]
        if _result.probe_broke(stats["failures"], settings["threshold"]):
            reasons.append("probe %s failed %d times%s (%s), more than the threshold of %d" % (
                name, stats["failures"], where, stats["last_failure"], settings["threshold"]))
    if settings.get("abort_on_app_oom_kill", True) and entry.get("reason") == "guard:app_oom_kill":
        reasons.append("the OOM killer took an application process%s" % where)
    return "; ".join(reasons)


def abort_reason(hosts, play_hosts, settings):
    """Why the experiment must stop everywhere, or ''. Independent hosts (a search level) stop on their own."""
    reasons, failed = [], []
    for host in sorted(hosts):
        entry = hosts[host]
        if host not in play_hosts or entry["status"] in ("lost", "aborted", "failed"):
            failed.append(host)
        if host not in play_hosts or settings.get("independent"):
            continue
        why = host_break(entry, settings, host)
        if why:
            reasons.append(why)
    allowed = 0.0 if settings.get("any_errors_fatal") else float(settings["max_failed_percent"])
    if failed and len(failed) * 100 > len(hosts) * allowed:
        reasons.append("%d of %d nodes failed (%s), more than %s%%" % (
            len(failed), len(hosts), ", ".join(failed), _num(allowed)))
    return "; ".join(reasons)


def tick_reads(gate_out, state):
    """The participants whose variables a tick reads: those that have not ended yet."""
    previous = (state or {}).get("hosts") or {}
    return [h for h in gate_out["participants"] if not (h in previous and not previous[h]["active"])]


def tick_input(state, seen):
    """(beats, rounds, errors) of a tick from what each host's tasks left.

    ``seen``: {host: {error, heartbeat, started, probe_round}}, the host's __experiment_error, raw
    heartbeat, the start's answer and probe round. A host whose heartbeat was skipped this tick
    is not counted as missed. On the first tick the deadline comes from the start's answer.
    """
    previous = (state or {}).get("hosts") or {}
    beats, rounds, errors = {}, {}, {}
    for host, mine in seen.items():
        errors[host] = mine.get("error") or ""
        raw = mine.get("heartbeat")
        beat = None if raw is None or raw.get("skipped") else parse_beat(raw)
        if beat is None:
            continue
        if host not in previous:
            beat["deadline"] = beat.get("deadline") or (mine.get("started") or {}).get("deadline")
        beats[host] = beat
        rounds[host] = (mine.get("probe_round") or {}).get("probes") or []
    return beats, rounds, errors


def tick_settings(gate_out, request, v, search_level=None):
    """What tick() takes, from the gate, the request and the role's max_failed_nodes_percent,
    any_errors_fatal and abort_on_app_oom_kill. Hosts the gate left out are not monitored; in a
    search level (``search_level`` set) each host ends its own stress when its steady state breaks."""
    return {"participants": [h for h in gate_out["participants"] if h not in gate_out["not_ready"]],
            "interval": request["interval"], "threshold": request["threshold"],
            "timeout": gate_out["heartbeat_timeout"], "max_failed_percent": v.get("max_failed_nodes_percent"),
            "any_errors_fatal": flag(v, "any_errors_fatal"), "abort_on_app_oom_kill": flag(v, "abort_on_app_oom_kill"),
            "independent": bool(search_level)}


def tick_step(state, seen, play_hosts, now, gate_out, request, v, search_level=None):
    """One monitor tick from the role's variables: tick_input and tick_settings, then tick()."""
    beats, rounds, errors = tick_input(state, seen)
    return tick(state, beats, rounds, play_hosts, now, tick_settings(gate_out, request, v, search_level), errors)


def _num(value):
    return ("%d" % value) if float(value).is_integer() else ("%g" % value)


def heartbeat_stats(state, interval, timeout_seconds):
    """The heartbeat figures a result carries: the configured interval and dead-man, and round times."""
    rounds = (state or {}).get("round_seconds") or []
    return {"interval_seconds": interval, "timeout_seconds": timeout_seconds, "rounds": len(rounds),
            "round_p50_seconds": percentile(rounds, 0.5), "round_p95_seconds": percentile(rounds, 0.95),
            "round_max_seconds": max(rounds) if rounds else None}


def result(node, experiment, host, baseline, probe_names, probe_stats, threshold, recovery, abort, error,
           heartbeat, tally=None, k8s_target=None):
    """The host's result: the node's record merged with what the controller saw (or why there is none).

    ``probe_names``: the experiment's probes (None: it has none); ``probe_stats``: {name:
    {checks, failures, last_failure}} from the ticks; ``tally``: the probe action's tally over
    baseline, stress and recovery (pass rate, latency, and a recovery round that failed);
    ``k8s_target``: {namespace, pod, container, node} when k8s_targets picked the target.
    """
    record = (node or {}).get("experiment_result")
    if record is None:
        return _result.failed(error or (node or {}).get("msg") or "the node did not answer")
    stats = None
    if probe_names:
        stats = [dict({"checks": 0, "failures": 0, "last_failure": ""}, **((probe_stats or {}).get(name) or {}),
                      name=name) for name in probe_names]
        if tally:
            stats = _probes.judged(stats, _probes.summary(tally), threshold)
    out = _result.merge(record, experiment, host, baseline=baseline, probes=stats, probe_threshold=threshold,
                        recovery=recovery, abort_reason=abort, controller_error=error, heartbeat=heartbeat)
    if k8s_target:
        out["target"] = dict(out.get("target") or {}, kubernetes=dict(k8s_target))
    return out


def result_step(host, v, seen, state, node, recovery):
    """The host's result from the role's variables.

    ``v``: the role's name and k8s_target; ``seen``: this host's request, gate, preflight, baseline,
    probe_round and error (its __experiment_* variables); ``state``: the last tick; ``node``: the
    read-back; ``recovery``: the recovery check's answer. A lost node's read-back is not used:
    the node may still be running its stress, and the loss is the result.
    """
    state = state or {}
    mine = (state.get("hosts") or {}).get(host) or {}
    request, gate_out = seen["request"], seen.get("gate") or {}
    plan = (seen.get("preflight") or {}).get("plan") or {}
    heartbeat = heartbeat_stats(state, request["interval"], gate_out.get("heartbeat_timeout"))
    heartbeat.update(configured_timeout_seconds=plan.get("heartbeat_timeout_seconds"),
                     check_round_seconds=gate_out.get("check_round_seconds"))
    lost = mine.get("lost") or ""
    return result(node if not lost else None, str(v.get("name")), host, (seen.get("baseline") or {}).get("summary"),
                  [p["name"] for p in request.get("probes") or []] or None, mine.get("probes"), request["threshold"],
                  recovery, state.get("abort_reason") or "", lost or seen.get("error") or "", heartbeat,
                  tally=(seen.get("probe_round") or {}).get("tally"), k8s_target=v.get("k8s_target") or None)


def failure_step(host, v, control, gate_out, play_hosts, error, interrupted=None):
    """Why this host's run fails the play (after the report is written), or ''.

    In this order: the playbook was interrupted (``interrupted``: a signal ansible-core lost, so the play
    went on); the node was lost; with experiment_fail_on_abort, the experiment was aborted or a task of
    this host failed (``error``); with experiment_any_errors_fatal, another participant failed.
    ``control``: the last tick; ``v``: the role's fail_on_abort and any_errors_fatal.
    """
    control = control or {}
    lost = ((control.get("hosts") or {}).get(host) or {}).get("lost")
    fail_on_abort = flag(v, "fail_on_abort")
    if interrupted:
        return ("interrupted (%s): ansible-core lost the interrupt and the play went on; the stop guard had "
                "stopped every node" % interrupted)
    if lost:
        return lost
    if fail_on_abort and control.get("abort_reason"):
        return "aborted: " + control["abort_reason"]
    if fail_on_abort and error:
        return error
    if flag(v, "any_errors_fatal") and any(h not in play_hosts for h in (gate_out or {}).get("participants") or []):
        return "another host failed (experiment_any_errors_fatal)"
    return ""


def report_input(hosts):
    """{host: result or failure or None} for the report, from {host: (result, problem)}."""
    out = {}
    for host, (res, problem) in sorted(hosts.items()):
        if res is not None:
            out[host] = res
        elif problem:
            out[host] = _result.failed("not started: " + problem)
        else:
            out[host] = None
    return out


def report_basename(experiment, basename=None, awx_job_id=None):
    """The report's file name without extension, as the role's report step names it."""
    if _text(basename):
        return _text(basename)
    return "stress-report-%s%s" % (experiment, ("-job%s" % awx_job_id) if _text(awx_job_id) else "")


def collect_step(hosts, v, awx_job_id=None):
    """What the report task takes: the results (report_input of ``hosts``), the hosts it expects
    (experiment_expected_hosts, else every participant) and the file name (report_basename)."""
    results = report_input(hosts)
    return {"results": results, "expected_hosts": parse_names(v.get("expected_hosts")) or sorted(results),
            "basename": report_basename(v.get("name"), v.get("report_basename"), awx_job_id)}
