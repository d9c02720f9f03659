# -*- coding: utf-8 -*-
# Copyright (c) 2026, chaosfleet.stress contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Turn what the user meant into stress-ng arguments.

stress-ng splits ``--vm-bytes`` across the ``--vm`` workers, reads ``N%`` as a
share of host RAM, and reads ``--cpu-load`` per worker as a share of one host
CPU. Here sizes are totals, percentages are of the target cgroup's limit, and
CPU load is a share of the target's quota. Node-side code: standard library only.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import math
import os
import re

from ansible_collections.chaosfleet.stress.plugins.module_utils._units import (
    UnitError, format_bytes, parse_duration, parse_size,
)

MIB = 1024 * 1024
# Private memory of one stress-ng instance (parent, shared state) and of each vm worker, measured
# with stress-ng 0.15 on cgroup v1 (1, 4 and 16 workers: 3.96, 5.21 and 10.96 MiB over the payload);
# the supervisor learns the real figure from the first instance and tops up what this misses.
INSTANCE_OVERHEAD = 3584 * 1024
WORKER_OVERHEAD = 480 * 1024
# A ramp of 20 steps stays within half a step (2.5 %) of its line; each step is a stress-ng
# instance, so a step also carries at least twice an instance's own overhead.
MAX_RAMP_STEPS = 20
MIN_STEP_SECONDS = 0.5
# A heartbeat is a whole Ansible task (connect, start Python, run): below this a dead-man fires on a healthy run.
MIN_HEARTBEAT_SECONDS = 3
WORKER_LIMITS = {"memory": 64, "cpu": 256, "io": 16}
VM_METHODS = (
    "all", "cache-lines", "checkerboard", "flip", "fwdrev", "gray", "galpat-0", "galpat-1", "incdec", "inc-nybble",
    "lfsr32", "move-inv", "modulo-x", "mscan", "prime-0", "prime-1", "prime-gray-0", "prime-gray-1", "prime-incdec",
    "rand-set", "rand-sum", "read64", "ror", "swap", "walk-0a", "walk-0d", "walk-1a", "walk-1d", "write64",
    "write64nt", "write1024v", "wrrd", "zero-one",
)


class PlanError(ValueError):
    pass


# stress_ng_args: stress-ng's own arguments, passed as given. Tokens are short ASCII words; options that change
# what stress-ng is (job and YAML files, logs, paths, scheduling, which stressors run) or its end (the timeout,
# which the collection sets from duration) are refused.
MAX_RAW_TOKENS = 64
_RAW_TOKEN_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._%:,+-]{0,63}$|^--?[a-z0-9][a-z0-9-]{0,47}(=[A-Za-z0-9._%:,+-]{1,64})?$",
                           re.ASCII)
RAW_REFUSED = {
    "t": "--timeout", "timeout": "--timeout", "j": "--job", "job": "--job", "Y": "--yaml", "yaml": "--yaml",
    "log-file": "--log-file", "temp-path": "--temp-path", "pathological": "--pathological", "sched": "--sched",
    "sched-prio": "--sched-prio", "sched-policy": "--sched-policy", "taskset": "--taskset", "ionice-class":
    "--ionice-class", "ionice-level": "--ionice-level", "r": "--random", "random": "--random", "a": "--all",
    "all": "--all", "seq": "--seq", "p": "--permute", "permute": "--permute", "class": "--class", "with": "--with",
    "x": "--exclude", "exclude": "--exclude", "k": "--keep-name", "keep-name": "--keep-name",
    "keep-files": "--keep-files", "stdout": "--stdout", "stderr": "--stderr", "syslog": "--syslog",
    "log-brief": "--log-brief", "no-oom-adjust": "--no-oom-adjust", "oom-avoid": "--oom-avoid",
    "abort": "--abort", "dry-run": "--dry-run", "n": "--dry-run", "h": "--help", "help": "--help",
    "V": "--version", "version": "--version",
}


def check_stress_ng_args(args, what="stress_ng_args"):
    """Validate stress-ng arguments passed as given; returns them as a list of strings, or raises PlanError.

    At least one stressor option (``--cpu 2``, ``--vm=1``), no more than MAX_RAW_TOKENS tokens, each a short ASCII
    word or option, and none of RAW_REFUSED: the collection sets the timeout itself, and those options would
    read or write files, change scheduling or pick other stressors than the ones named.
    """
    if isinstance(args, str) or not isinstance(args, (list, tuple)):
        raise PlanError("%s must be a list of arguments (tokens), got %s" % (what, type(args).__name__))
    tokens = [str(a) for a in args]
    if not tokens:
        raise PlanError("%s is empty: name at least one stress-ng stressor (for example --cpu 1)" % what)
    if len(tokens) > MAX_RAW_TOKENS:
        raise PlanError("%s has %d arguments; at most %d are allowed" % (what, len(tokens), MAX_RAW_TOKENS))
    for token in tokens:
        if not _RAW_TOKEN_RE.match(token):
            raise PlanError("%s: %r is not a stress-ng argument this collection passes (short ASCII options and "
                            "values only: letters, digits, . _ %% : , + -)" % (what, token))
        if token.startswith("-"):
            name = token.lstrip("-").split("=", 1)[0]
            if name in RAW_REFUSED:
                reason = ("the collection sets stress-ng's timeout from duration" if RAW_REFUSED[name] == "--timeout"
                          else "it changes which stressors run, where stress-ng reads or writes, or how it is "
                               "scheduled")
                raise PlanError("%s: %s is refused: %s" % (what, RAW_REFUSED[name], reason))
    if not tokens[0].startswith("-"):
        raise PlanError("%s must start with a stress-ng option such as --cpu, got %r" % (what, tokens[0]))
    return tokens


def instance_overhead(workers):
    return INSTANCE_OVERHEAD + WORKER_OVERHEAD * workers


def _workers(value, kind, default):
    workers = default if value in (None, "") else value
    try:
        workers = int(workers)
    except (TypeError, ValueError):
        raise PlanError("%s.workers must be a whole number, got %r" % (kind, value))
    if workers < 1 or workers > WORKER_LIMITS[kind]:
        raise PlanError("%s.workers must be between 1 and %d, got %d" % (kind, WORKER_LIMITS[kind], workers))
    return workers


def plan_memory(spec, usage, allow_oom):
    limit = usage["memory"]["limit_bytes"]
    current = usage["memory"]["working_set_bytes"] or 0
    size, target = spec.get("size"), spec.get("target_usage")
    if (size is None) == (target is None):
        raise PlanError("memory needs exactly one of size or target_usage")
    try:
        if size is not None:
            total = parse_size(size, limit, "memory.size")
            target_bytes = None
        else:
            target_bytes = parse_size(target, limit, "memory.target_usage")
            total = target_bytes - current
            if total <= 0:
                raise PlanError("memory.target_usage %s (%s) is not above the current working set (%s)"
                                % (target, format_bytes(target_bytes), format_bytes(current)))
        ramp = parse_duration(spec["ramp"], "memory.ramp") if spec.get("ramp") not in (None, "", 0, "0") else None
    except UnitError as exc:
        raise PlanError(str(exc))
    headroom = None if limit is None else limit - current
    over = headroom is not None and total > headroom
    if over and not allow_oom:
        raise PlanError("memory %s would take the target over its limit: %s free of %s (working set %s). "
                        "Set allow_oom=true to drive it into OOM on purpose"
                        % (format_bytes(total), format_bytes(headroom), format_bytes(limit), format_bytes(current)))
    method = spec.get("method")
    if method is not None and method not in VM_METHODS:
        raise PlanError("memory.method %r is not a stress-ng vm method; choose one of %s" % (method, ", ".join(VM_METHODS)))
    workers = _workers(spec.get("workers"), "memory", 1)
    steps = 1
    if ramp:
        steps = max(1, min(MAX_RAMP_STEPS, int(ramp // MIN_STEP_SECONDS), total // (2 * instance_overhead(workers))))
    return {
        "bytes": total, "target_usage_bytes": target_bytes, "workers": workers, "ramp_seconds": ramp,
        "steps": steps, "method": method, "churn": bool(spec.get("churn")), "baseline_working_set_bytes": current,
        "limit_bytes": limit, "over_limit": over,
    }


def node_cpus(usage):
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def plan_cpu(spec, usage):
    load = spec.get("load")
    try:
        load = float(load)
    except (TypeError, ValueError):
        raise PlanError("cpu.load must be a number from 1 to 100, got %r" % (load,))
    if not 1 <= load <= 100:
        raise PlanError("cpu.load must be from 1 to 100 (percent of the target's CPU quota), got %s" % load)
    quota = usage["cpu"]["quota_cores"]
    basis = quota if quota else float(node_cpus(usage))
    cores = basis * load / 100.0
    workers = _workers(spec.get("workers"), "cpu", max(1, int(math.ceil(basis))))
    per_worker = cores / workers * 100.0
    if per_worker > 100:
        raise PlanError("cpu.load %s%% of %.2f cores needs at least %d workers, got %d"
                        % (load, basis, int(math.ceil(cores)), workers))
    return {"load_percent": load, "basis_cores": basis, "quota_limited": bool(quota), "cores": cores,
            "workers": workers, "per_worker_load": max(1, int(round(per_worker)))}


def plan_io(spec, experiment_name, io_root):
    workers = _workers(spec.get("workers"), "io", 1)
    try:
        size = parse_size(spec.get("size") or "64Mi", None, "io.size")
    except UnitError as exc:
        raise PlanError(str(exc))
    return {"workers": workers, "bytes": size, "path": os.path.join(io_root, experiment_name)}


HEARTBEAT_OFF = ("off", "false")  # YAML reads an unquoted off as false, which reaches the module as "False"
HEARTBEAT_DEFAULT_MIN = 60.0
HEARTBEAT_DEFAULT_MAX = 300.0


def default_heartbeat_timeout(duration):
    """The dead-man every experiment gets unless turned off: a quarter of the duration, 1 to 5 minutes."""
    return min(HEARTBEAT_DEFAULT_MAX, max(HEARTBEAT_DEFAULT_MIN, duration / 4.0))


def heartbeat_timeout_seconds(value, duration):
    """Seconds without a heartbeat after which the node ends the stress; None only when explicitly off."""
    if value is None or str(value).strip() == "":
        return default_heartbeat_timeout(duration)
    if str(value).strip().lower() in HEARTBEAT_OFF:
        return None
    return parse_duration(value, "heartbeat_timeout", minimum=MIN_HEARTBEAT_SECONDS)


def mem_available(proc_root="/proc"):
    """The node's MemAvailable in bytes, or None when /proc/meminfo cannot tell."""
    try:
        with open(os.path.join(proc_root, "meminfo")) as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (IOError, OSError, ValueError, IndexError):
        pass
    return None


def free_disk_bytes(path):
    """Bytes an unprivileged writer may still use on the filesystem that holds ``path`` (or its nearest parent)."""
    while path and path != "/" and not os.path.exists(path):
        path = os.path.dirname(path)
    try:
        info = os.statvfs(path or "/")
    except OSError:
        return None
    return info.f_bavail * info.f_frsize


# I/O stress may fill at most this share of the free space: a full disk hurts every workload on the node.
IO_FREE_SHARE = 0.9


def check_node_capacity(plan, usage, allow_oom, proc_root, io_root):
    """Sizes the node itself must absorb: memory on an unlimited target, and I/O on io_dir's disk."""
    memory = plan.get("memory")
    if memory and usage["memory"]["limit_bytes"] is None and not allow_oom:
        available = mem_available(proc_root)
        if available is None:
            raise PlanError("the target has no memory limit and MemAvailable cannot be read from %s/meminfo; "
                            "set allow_oom=true to stress it anyway" % proc_root)
        if memory["bytes"] > available:
            raise PlanError("memory %s is more than the node has available (MemAvailable %s) and the target has "
                            "no memory limit, so the node's OOM killer would choose victims anywhere; ask for less "
                            "or set allow_oom=true" % (format_bytes(memory["bytes"]), format_bytes(available)))
    io = plan.get("io")
    if io:
        total = io["workers"] * io["bytes"]
        free = free_disk_bytes(io_root)
        if free is None:
            raise PlanError("cannot read the free space of io_dir %s" % io_root)
        if total > free * IO_FREE_SHARE:
            raise PlanError("io needs %d x %s = %s, more than %d%% of the %s free on io_dir %s's filesystem"
                            % (io["workers"], format_bytes(io["bytes"]), format_bytes(total), IO_FREE_SHARE * 100,
                               format_bytes(free), io_root))


def make_plan(params, usage, io_root):
    """Validate everything and return the plan, or raise PlanError. Starts nothing."""
    memory, cpu, io = params.get("memory"), params.get("cpu"), params.get("io")
    raw = params.get("stress_ng_args")
    if not (memory or cpu or io or raw):
        raise PlanError("nothing to do: give at least one of memory, cpu, io or stress_ng_args")
    try:
        duration = parse_duration(params["duration"], "duration")
        heartbeat = heartbeat_timeout_seconds(params.get("heartbeat_timeout"), duration)
        interval = parse_duration(params.get("sample_interval") or "1s", "sample_interval", maximum=3600, minimum=0.1)
    except UnitError as exc:
        raise PlanError(str(exc))
    adj = params.get("oom_score_adj", 1000)
    if adj is None or not -1000 <= adj <= 1000:
        raise PlanError("oom_score_adj must be from -1000 to 1000, got %r" % (adj,))
    guard = dict(params.get("guard") or {})
    if guard.get("max_working_set") is not None:
        try:
            guard["max_working_set_bytes"] = parse_size(guard["max_working_set"], usage["memory"]["limit_bytes"],
                                                        "guard.max_working_set")
        except UnitError as exc:
            raise PlanError(str(exc))
    plan = {
        "duration_seconds": duration,
        "heartbeat_timeout_seconds": heartbeat,
        "sample_interval_seconds": interval,
        "oom_score_adj": adj,
        "on_oom": params.get("on_oom") or "keep_pressure",
        "guard": {
            "max_working_set_bytes": guard.get("max_working_set_bytes"),
            "stop_on_app_oom_kill": bool(guard.get("stop_on_app_oom_kill")),
            "stop_if_target_gone": guard.get("stop_if_target_gone", True) is not False,
        },
        "memory": plan_memory(memory, usage, params.get("allow_oom")) if memory else None,
        "cpu": plan_cpu(cpu, usage) if cpu else None,
        "io": plan_io(io, params["name"], io_root) if io else None,
    }
    if raw:
        plan["raw"] = {"args": check_stress_ng_args(raw)}
    check_node_capacity(plan, usage, params.get("allow_oom"), params.get("proc_root") or "/proc", io_root)
    return plan


def _timeout(seconds):
    # stress-ng's own timeout is the second line of defence, just after the supervisor's deadline.
    return "%ds" % (int(math.ceil(seconds)) + 2)


def memory_argv(stress_ng, workers, nbytes, method, remaining, oomable, churn=False):
    argv = [stress_ng, "--vm", str(workers), "--vm-bytes", str(int(nbytes)), "--vm-keep"]
    if not churn:
        # Write the pages once, then sleep holding them: memory pressure without burning CPU.
        argv += ["--vm-hang", "0"]
    if method:
        argv += ["--vm-method", method]
    if oomable:
        argv.append("--oomable")
    return argv + ["--timeout", _timeout(remaining)]


def cpu_argv(stress_ng, cpu, remaining):
    return [stress_ng, "--cpu", str(cpu["workers"]), "--cpu-load", str(cpu["per_worker_load"]),
            "--cpu-load-slice", "10", "--cpu-method", "sqrt", "--timeout", _timeout(remaining)]


def io_argv(stress_ng, io, remaining):
    return [stress_ng, "--hdd", str(io["workers"]), "--hdd-bytes", str(io["bytes"]),
            "--temp-path", io["path"], "--timeout", _timeout(remaining)]


def topup_reserve(memory, overhead_scale=1.5):
    """What the last memory step leaves out on purpose, so that one top-up, sized with the overhead the node
    really charged for the instances before it, lands within a fraction of a MiB of the request.

    ``overhead_scale`` is how far the real overhead may exceed the estimate: kernels and cgroup versions charge
    differently, and the top-up has to be larger than its own overhead.
    """
    if memory["over_limit"]:
        return 0
    return int((2 * overhead_scale - 1) * instance_overhead(1)) + MIB // 2


def memory_step_bytes(memory, step, increase_now, overhead_scale=1.5):
    """The payload of memory step ``step`` (0-based) given the increase already there (or under way)."""
    if memory["over_limit"]:
        return memory["bytes"] // memory["steps"]
    want = memory["bytes"] * (step + 1) // memory["steps"]
    if step + 1 == memory["steps"]:
        want -= topup_reserve(memory, overhead_scale)
    return want - increase_now - instance_overhead(memory["workers"])


def first_memory_step_bytes(memory):
    """What the first stress-ng instance allocates: its share of the ramp, less its own overhead."""
    return max(MIB, memory_step_bytes(memory, 0, 0))


def raw_argv(stress_ng, raw, remaining):
    """stress-ng's own arguments as given (checked by check_stress_ng_args), with the collection's timeout."""
    return [stress_ng] + list(raw["args"]) + ["--timeout", _timeout(remaining)]


def planned_argvs(plan, stress_ng):
    """The commands the experiment starts with (the ramp adds more later)."""
    duration = plan["duration_seconds"]
    out = []
    if plan["memory"]:
        m = plan["memory"]
        out.append(memory_argv(stress_ng, m["workers"], first_memory_step_bytes(m), m["method"], duration,
                               plan["on_oom"] == "stop", m.get("churn")))
    if plan["cpu"]:
        out.append(cpu_argv(stress_ng, plan["cpu"], duration))
    if plan["io"]:
        out.append(io_argv(stress_ng, plan["io"], duration))
    if plan.get("raw"):
        out.append(raw_argv(stress_ng, plan["raw"], duration))
    return out
