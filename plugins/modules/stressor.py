#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2026, chaosfleet.stress contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: stressor
short_description: Run stress-ng inside a container's cgroup, sized as meant, stopped by the node itself
version_added: 0.1.0
description:
  - Starts (O(state=present)) or stops (O(state=absent)) a named stress experiment on the managed node.
  - Every stress process joins the target's cgroup (each v1 hierarchy, or the v2 path) B(before) it allocates
    anything, so the container's own limits and OOM behaviour apply. If joining fails nothing runs and the module
    fails; there is no fallback to another cgroup.
  - Sizes mean what users mean. O(memory.size) is the B(total) to add across all workers (stress-ng splits
    C(--vm-bytes) across C(--vm) workers). C(N%) is a share of the B(target cgroup's limit), never of host RAM.
    O(cpu.load) is a share of the target's CPU quota, not of one host CPU per worker. The stressor's own
    overhead is measured in the cgroup and compensated, so the working-set increase matches the request.
  - A detached supervisor process on the node owns the stress. It enforces the deadline (and passes C(--timeout)
    to stress-ng as a second line), the heartbeat and the guards, samples the target every O(sample_interval),
    and on any ending kills only the process groups it started, checks they are gone and records the outcome.
  - State lives in a root-only directory on the node (O(state_dir)), so any later run from any controller can
    report or stop the experiment. Signals go only to PIDs recorded there, checked against their start times.
author:
  - chaosfleet.stress contributors (@chaosfleet)
extends_documentation_fragment:
  - chaosfleet.stress.attributes
  - chaosfleet.stress.attributes.node
  - chaosfleet.stress.target
attributes:
  check_mode:
    support: full
    details:
      - In check mode the module validates, resolves the target and returns the stress-ng commands and byte
        counts it would use, and starts nothing.
  diff_mode:
    support: none
options:
  name:
    description:
      - Experiment name, unique per node; the idempotency key. Letters, digits, C(.), C(_) and C(-).
    type: str
    required: true
  state:
    description:
      - V(present) starts the experiment, or, when it already runs with the same parameters, sends a heartbeat
        and returns its status.
      - V(absent) stops it, removes what it made, and keeps its outcome and samples for reporting.
    type: str
    choices: [present, absent]
    default: present
  memory:
    description: Memory stress. Give exactly one of O(memory.size) and O(memory.target_usage).
    type: dict
    suboptions:
      size:
        description:
          - Memory to add, in total across all workers. A Kubernetes quantity (V(200Mi), V(1Gi), V(500M) is
            500*10^6), an IEC size (V(200MiB)), or V(N%) of the target cgroup's memory limit.
        type: str
      target_usage:
        description:
          - The working set to bring the container to, counting what the application already uses. Absolute, or
            V(N%) of the limit.
        type: str
      workers:
        description: stress-ng vm workers sharing the total.
        type: int
        default: 1
      ramp:
        description:
          - Time to grow linearly to the full size (V(30s), V(2m)). Memory is then added in up to 20 steps.
        type: str
      method:
        description:
          - A stress-ng C(--vm-method), the pattern the pages are written with. Without O(memory.churn) each page
            is written once with it.
        type: str
      churn:
        description:
          - Keep rewriting the pages (stress-ng C(--vm-keep) alone) instead of writing them once and holding them.
          - Default V(false) holds the memory without using CPU (C(--vm-keep --vm-hang 0)), so a memory
            experiment adds memory pressure and nothing else.
          - V(true) adds page activity on purpose. It burns CPU (up to one core per worker, capped by the
            target's quota) and the working set can rise by a few MiB for a few seconds as the vm method changes.
        type: bool
        default: false
  cpu:
    description: CPU stress.
    type: dict
    suboptions:
      load:
        description:
          - Percent of the target's CPU quota to burn, 1 to 100. Load 50 on a 2-core limit burns one core. On a
            target with no quota, percent of the CPUs the node lets this process use.
        type: float
        required: true
      workers:
        description: stress-ng cpu workers. Default is the quota rounded up, or 1.
        type: int
  io:
    description:
      - I/O stress in a directory the experiment owns and removes (under O(io_dir)).
      - O(io.workers) times O(io.size) must fit in 90% of the free space of the filesystem that holds O(io_dir).
    type: dict
    suboptions:
      workers:
        description: stress-ng hdd workers.
        type: int
        default: 1
      size:
        description: Bytes each worker writes (a quantity).
        type: str
        default: 64Mi
  stress_ng_args:
    description:
      - stress-ng's own arguments, run as given (one list item per argument, for example
        V([--cpu, "2", --cpu-load, "60"])), beside or instead of O(memory), O(cpu) and O(io). Used by
        C(chaosfleet.stress.stresschaos) for a Chaos Mesh manifest's C(stressngStressors), after the user opted in.
      - The stress runs inside the target's cgroup, with the deadline, the C(--timeout) from O(duration), the
        dead-man and the guards like any other. Its sizes keep stress-ng's meanings (C(--vm-bytes) is split across
        the workers, C(N%) is of the node's RAM), so they are B(not) checked against the target's limit.
      - Each argument is a short ASCII word or option. C(--timeout), job and YAML files, log and temp paths,
        scheduling options, and options that pick other stressors (C(--all), C(--class), C(--random), ...) are
        refused. Files a stressor writes go to the experiment's own directory under O(state_dir).
    type: list
    elements: str
  duration:
    description:
      - How long the stress runs (V(90s), V(5m), V(1h30m)); at most V(24h). The node enforces it.
      - Required with O(state=present).
    type: str
  heartbeat_timeout:
    description:
      - The node ends the stress when no heartbeat came for this long (the dead-man). Calling the module again
        with the same O(name) and O(state=present) is a heartbeat.
      - Every experiment has one. The default is a quarter of O(duration), at least V(60s) and at most V(5m)
        (so an experiment of up to one minute simply runs to its deadline).
      - V(off) turns the dead-man off, explicitly; the stress then runs until its deadline or a stop even when
        no controller is left. (An unquoted V(off) in YAML is read as false; both mean off.)
      - A heartbeat that finds the node's supervisor gone (killed, crashed) stops the stress it had started and
        reports RV(status=aborted) with RV(reason=supervisor_lost). The stress processes also die with the
        supervisor by themselves (a parent-death signal).
    type: str
  oom_score_adj:
    description:
      - C(oom_score_adj) of the stress processes. 1000 makes the stressor the OOM killer's first choice.
      - stress-ng itself raises its allocating vm workers to 1000, whatever is set here; a lower value applies
        to the stress-ng parent processes and to CPU and I/O workers.
      - On cgroup v2 nodes where C(memory.oom.group) is 1 (kubelet 1.28+), one OOM kills every process of the
        container whatever this says.
    type: int
    default: 1000
  on_oom:
    description:
      - V(keep_pressure) respawns OOM-killed workers until the deadline; V(stop) ends the experiment at the
        first OOM kill of a stressor.
    type: str
    choices: [keep_pressure, stop]
    default: keep_pressure
  enter_pid_namespace:
    description:
      - Run the stress processes in the target's PID namespace, so the container's own C(top) and C(ps) show
        them. Default is V(true) for container targets and V(false) otherwise.
    type: bool
  guard:
    description: Checks the node runs every sample, without the controller.
    type: dict
    suboptions:
      max_working_set:
        description: End the experiment when the target's working set goes above this (a size or V(N%) of the limit).
        type: str
      stop_on_app_oom_kill:
        description: End the experiment when the OOM killer takes a process that is not the stressor.
        type: bool
        default: false
      stop_if_target_gone:
        description: End the experiment when the container restarts or goes away.
        type: bool
        default: true
  sample_interval:
    description: How often the node samples the target (V(1s), V(500ms)); at least V(100ms).
    type: str
    default: 1s
  allow_oom:
    description:
      - Allow sizes above the limit minus current usage, to drive the container into OOM on purpose.
      - On a target with no memory limit, sizes are otherwise capped by the node's C(MemAvailable).
    type: bool
    default: false
  allow_node_wide:
    description:
      - Allow a target that is not one workload, which is refused by default. Node-wide means the root cgroup of a
        hierarchy (for example O(cgroup_path=/) or V(/sys/fs/cgroup/memory)), a cgroup with child cgroups (V(/kubepods),
        a slice, a pod), or O(pid=1).
      - The error names the cgroup the target resolved to.
    type: bool
    default: false
  state_dir:
    description: The node's root-only directory for experiment state.
    type: path
    default: /run/chaosfleet
  io_dir:
    description:
      - Where I/O stress writes. It must be a root-only directory (owned by root, mode 0700) and it is created
        so when missing; no component of the path may be a symlink, and every parent must belong to root and be
        writable only by root (or be sticky, like C(/var/tmp)). Anything else is refused.
      - Each experiment creates its own subdirectory O(name) there and removes only that one at the end. A
        subdirectory that already exists is refused and left untouched.
    type: path
    default: /var/tmp/chaosfleet
  stress_ng_path:
    description: Path of stress-ng. Default is the one on C(PATH).
    type: path
  retain_count:
    description:
      - When this module starts an experiment, it then retires the state of ended experiments in O(state_dir)
        (their directories and lock files). An ended experiment is kept while it is among the O(retain_count)
        newest ended ones B(or) ended less than O(retain_age) ago; it is removed only when it is outside both.
      - A running experiment (no outcome yet, or its supervisor still alive) and one whose state cannot be read
        are never removed; the latter are listed in RV(retire_errors).
      - V(0) keeps none by count, so O(retain_age) alone decides.
      - Retirement is best effort and never fails the start. It does not run in check mode, on a heartbeat or a stop.
    type: int
    default: 20
  retain_age:
    description:
      - How long an ended experiment is kept by age, a duration (V(168h), V(30m)); at most V(8784h) (366 days).
      - V(off) (or V(0)) keeps none by age, so O(retain_count) alone decides. With O(retain_count=0) too, every
        ended experiment is removed at the next start.
    type: str
    default: 168h
notes:
  - An experiment that ended is not restarted by calling V(present) again with the same parameters; the module
    reports how it ended. Use a new O(name) for a new run. Once its state was retired (O(retain_count),
    O(retain_age)) the name is free again and V(present) starts a new run.
  - Starting, stopping and heartbeating hold a lock per experiment name, and starting also holds one per target
    cgroup (under O(state_dir)/locks), across the check and the act. Of two runs that start the same name, or
    two experiments on the same target, at the same moment exactly one starts; the other fails saying so.
  - Sizes and durations take ASCII digits only, with no space between the number and its unit (V(10Mi), V(90s),
    not V(10 Mi)). A size must come to whole bytes (V(1.5Gi) is fine, V(1.9) is an error); a percentage of the limit
    is rounded down. A duration names each unit once, largest first (V(1h30m), not V(1h1h)).
    O(heartbeat_timeout) is at least V(3s).
  - The target is charged for the payload and stress-ng's own small overhead only. The supervisor reads
    stress-ng and its libraries into the page cache from its own cgroup before each launch, and stress-ng runs with
    transparent huge pages disabled for its own processes (the application keeps its setting), so its overhead
    is the same on every run.
seealso:
  - module: chaosfleet.stress.cgroup_info
  - module: chaosfleet.stress.cgroup_sample
'''

EXAMPLES = r'''
- name: Add 200 MiB in total across 4 workers to a pod's app container for 5 minutes
  chaosfleet.stress.stressor:
    name: checkout-mem
    container_id: "{{ target_container_id }}"
    memory:
      size: 200Mi
      workers: 4
    duration: 5m
    heartbeat_timeout: 60s

- name: Bring the container to 80% of its limit, ramping over 30 seconds
  chaosfleet.stress.stressor:
    name: checkout-80pct
    pod_uid: "{{ pod_uid }}"
    memory:
      target_usage: 80%
      ramp: 30s
    duration: 10m
    guard:
      max_working_set: 95%
      stop_on_app_oom_kill: true

- name: Burn half of the container's CPU quota for 2 minutes (the default dead-man is 60s without heartbeats)
  chaosfleet.stress.stressor:
    name: checkout-cpu
    container_id: "{{ target_container_id }}"
    cpu:
      load: 50
    duration: 2m

- name: Soak for an hour with nobody heartbeating; only the deadline or a stop ends it
  chaosfleet.stress.stressor:
    name: checkout-soak
    container_id: "{{ target_container_id }}"
    memory:
      size: 100Mi
    duration: 1h
    heartbeat_timeout: "off"

- name: Heartbeat (same name and parameters, state present)
  chaosfleet.stress.stressor:
    name: checkout-mem
    container_id: "{{ target_container_id }}"
    memory:
      size: 200Mi
      workers: 4
    duration: 5m
    heartbeat_timeout: 60s

- name: Stop it (works from any controller, after the starting one is gone)
  chaosfleet.stress.stressor:
    name: checkout-mem
    state: absent
'''

RETURN = r'''
name:
  description: The experiment name.
  returned: always
  type: str
status:
  description: C(running), C(finished) (deadline reached), C(stopped), or C(aborted) (see RV(reason)).
  returned: always
  type: str
  sample: running
reason:
  description:
    - Why it ended. C(deadline), C(stop), C(heartbeat), C(target_gone), C(guard:max_working_set),
      C(guard:app_oom_kill), C(oom), C(signal), C(attach_failed), C(supervisor_error), C(supervisor_lost) (the
      supervisor was killed or crashed; a heartbeat or stop ended its stress) or C(start_failed). Null while
      running.
  returned: always
  type: str
phase:
  description: C(ramping), C(settling) or C(holding) while running; C(ended) afterwards.
  returned: when the experiment exists
  type: str
target:
  description: The resolved target cgroup (path, directories, IDs, QoS class).
  returned: when the experiment exists or in check mode
  type: dict
argv:
  description: The stress-ng commands the experiment starts with, one list per stress-ng instance.
  returned: when the experiment exists or in check mode
  type: list
  elements: list
  sample: [["/usr/bin/stress-ng", "--vm", "4", "--vm-bytes", "203004313", "--vm-keep", "--timeout", "302s"]]
plan:
  description:
    - What the request means on this target, in bytes and cores, for example C(memory.bytes) (total to add),
      C(memory.target_usage_bytes), C(memory.ramp_seconds), C(cpu.cores), C(cpu.per_worker_load).
  returned: when the experiment exists or in check mode
  type: dict
requested:
  description: The request in plain numbers.
  returned: when the experiment exists or in check mode
  type: dict
  sample: {"memory_bytes": 209715200, "cpu_load_percent": null, "cpu_cores": null}
pids:
  description: PIDs of the running stress-ng instances (process group leaders).
  returned: always
  type: list
  elements: int
started_at:
  description: Start time, seconds since the epoch.
  returned: when the experiment exists
  type: float
deadline:
  description: When the node will end the stress, seconds since the epoch.
  returned: when the experiment exists
  type: float
latest_sample:
  description: The latest sample of the target (working set, usage, CPU, OOM count, ...).
  returned: when the experiment exists
  type: dict
outcome:
  description: How the experiment ended, its peak working set, OOM kills with their victims, and what was left.
  returned: when the experiment ended
  type: dict
state_dir:
  description: The experiment's directory on the node.
  returned: always
  type: str
limits:
  description: The target's limits at the check, C(memory_limit_bytes), C(oom_group) and C(cpu_quota_cores).
  returned: in check mode, when the experiment would start
  type: dict
result_stored:
  description:
    - True when the experiment ended and the P(chaosfleet.stress.experiment#role) role kept its whole result on
      the node. Such a name is done; O(state=present) only reports it again, whatever the other options say.
  returned: when the experiment exists
  type: bool
retired:
  description: Names of ended experiments whose state this start removed from the node (see O(retain_count)).
  returned: when an experiment was started
  type: list
  elements: str
retire_errors:
  description:
    - What retirement could not do, one line each, for example an experiment whose state cannot be read (left
      alone). Retirement never fails the start.
  returned: when an experiment was started
  type: list
  elements: str
'''

import os
import sys

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.chaosfleet.stress.plugins.module_utils._target_options import (
    TARGET_ARGSPEC,
    TARGET_MUTUALLY_EXCLUSIVE,
    node_resolver,
    target_params,
)
from ansible_collections.chaosfleet.stress.plugins.module_utils._experiment import (
    START_TIMEOUT, STOP_TIMEOUT, Experiment, ExperimentError, fingerprint,
)
from ansible_collections.chaosfleet.stress.plugins.module_utils._mounts import CgroupError
from ansible_collections.chaosfleet.stress.plugins.module_utils._plan import PlanError, make_plan, planned_argvs
from ansible_collections.chaosfleet.stress.plugins.module_utils._resolve import SELECTORS
from ansible_collections.chaosfleet.stress.plugins.module_utils._retire import (
    DEFAULT_RETAIN_AGE, DEFAULT_RETAIN_COUNT, parse_retain_age, retire,
)
from ansible_collections.chaosfleet.stress.plugins.module_utils._state import (
    StateError, list_experiments, name_lock, target_lock,
)
from ansible_collections.chaosfleet.stress.plugins.module_utils._units import UnitError
from ansible_collections.chaosfleet.stress.plugins.module_utils._usage import read_usage

# Parameters that define an experiment; a running one with other values is refused.
DEFINING = SELECTORS + ("memory", "cpu", "io", "duration", "heartbeat_timeout", "oom_score_adj", "on_oom",
                        "enter_pid_namespace", "guard", "sample_interval", "allow_oom")


def argument_spec():
    spec = dict(TARGET_ARGSPEC)
    spec.update(
        name=dict(type="str", required=True),
        state=dict(type="str", default="present", choices=["present", "absent"]),
        memory=dict(type="dict", options=dict(
            size=dict(type="str"),
            target_usage=dict(type="str"),
            workers=dict(type="int", default=1),
            ramp=dict(type="str"),
            method=dict(type="str"),
            churn=dict(type="bool", default=False),
        ), mutually_exclusive=[["size", "target_usage"]], required_one_of=[["size", "target_usage"]]),
        cpu=dict(type="dict", options=dict(
            load=dict(type="float", required=True),
            workers=dict(type="int"),
        )),
        io=dict(type="dict", options=dict(
            workers=dict(type="int", default=1),
            size=dict(type="str", default="64Mi"),
        )),
        stress_ng_args=dict(type="list", elements="str"),
        duration=dict(type="str"),
        heartbeat_timeout=dict(type="str"),
        oom_score_adj=dict(type="int", default=1000),
        on_oom=dict(type="str", default="keep_pressure", choices=["keep_pressure", "stop"]),
        enter_pid_namespace=dict(type="bool"),
        guard=dict(type="dict", options=dict(
            max_working_set=dict(type="str"),
            stop_on_app_oom_kill=dict(type="bool", default=False),
            stop_if_target_gone=dict(type="bool", default=True),
        )),
        sample_interval=dict(type="str", default="1s"),
        allow_oom=dict(type="bool", default=False),
        allow_node_wide=dict(type="bool", default=False),
        state_dir=dict(type="path", default="/run/chaosfleet"),
        io_dir=dict(type="path", default="/var/tmp/chaosfleet"),
        stress_ng_path=dict(type="path"),
        retain_count=dict(type="int", default=DEFAULT_RETAIN_COUNT),
        retain_age=dict(type="str", default=DEFAULT_RETAIN_AGE),
    )
    return spec


def requested(plan):
    memory, cpu, io = plan.get("memory") or {}, plan.get("cpu") or {}, plan.get("io") or {}
    return {
        "memory_bytes": memory.get("bytes"),
        "target_usage_bytes": memory.get("target_usage_bytes"),
        "ramp_seconds": memory.get("ramp_seconds"),
        "memory_workers": memory.get("workers"),
        "cpu_load_percent": cpu.get("load_percent"),
        "cpu_cores": cpu.get("cores"),
        "cpu_workers": cpu.get("workers"),
        "io_bytes": io.get("bytes"),
        "duration_seconds": plan.get("duration_seconds"),
    }


def busy_with_target(state_dir, name, target_path):
    """Names of other running experiments on the same cgroup."""
    out = []
    for other in list_experiments(state_dir):
        if other == name:
            continue
        experiment = Experiment(state_dir, other)
        if (experiment.spec().get("target") or {}).get("path") == target_path and experiment.running():
            out.append(other)
    return out


def busy_message(others, target):
    return "experiment %s already runs on %s; one experiment per target (stop it first)" % (
        ", ".join(others), target["path"])


# Sets the parent-death signal, then becomes the command: for nodes whose setpriv has no --pdeathsig.
PDEATHSIG_PY = "import ctypes, os, sys; ctypes.CDLL(None).prctl(1, 9, 0, 0, 0); os.execvp(sys.argv[1], sys.argv[1:])"


def pdeathsig_exec(module):
    """The prefix that makes stress-ng, forked by nsenter into the target's PID namespace, die with nsenter
    (which itself dies with the supervisor): setpriv (util-linux 2.33+), else a Python one-liner."""
    setpriv = module.get_bin_path("setpriv")
    if setpriv:
        rc, out, _err = module.run_command([setpriv, "--help"])
        if rc == 0 and "--pdeathsig" in out:
            return [setpriv, "--pdeathsig", "KILL", "--"]
    return [sys.executable, "-c", PDEATHSIG_PY]


def pick_namespace_pid(usage):
    """The container's oldest process: its init, whose PID namespace the stress joins."""
    processes = [p["pid"] for p in usage["processes"]]
    return min(processes) if processes else None


def start(module, experiment, defining):
    params = module.params
    resolver = node_resolver(params)
    targets = resolver.resolve(dict(target_params(params), allow_node_wide=params["allow_node_wide"]),
                               refuse_node_wide=True)
    if len(targets) != 1:
        module.fail_json(msg="the target resolves to %d containers; pick one with container_id: %s"
                         % (len(targets), ", ".join(t["container_id"] or t["path"] for t in targets)))
    target = targets[0]
    if target["kind"] == "sandbox":
        module.fail_json(msg="%s is a sandbox (pause) container; target an application container" % target["path"])
    usage = read_usage(target, resolver.mounts.proc_root)
    plan = make_plan(params, usage, params["io_dir"])
    stress_ng = params["stress_ng_path"] or module.get_bin_path("stress-ng")
    if not stress_ng or not os.access(stress_ng, os.X_OK):
        module.fail_json(msg="stress-ng is not installed on this node (use the chaosfleet.stress.stress_ng role)")
    enter = params["enter_pid_namespace"]
    if enter is None:
        enter = target["kind"] == "container"
    ns_pid, nsenter = None, None
    if enter:
        ns_pid = pick_namespace_pid(usage)
        nsenter = module.get_bin_path("nsenter")
        if ns_pid is None:
            module.fail_json(msg="%s has no running process whose PID namespace the stress could join" % target["path"])
        if not nsenter:
            module.fail_json(msg="nsenter (util-linux) is needed to join the target's PID namespace; "
                                 "install it or set enter_pid_namespace=false")
    argv = planned_argvs(plan, stress_ng)
    limits = dict(memory_limit_bytes=usage["memory"]["limit_bytes"], oom_group=usage["memory"]["oom_group"],
                  cpu_quota_cores=usage["cpu"]["quota_cores"])
    result = dict(name=experiment.name, target=target, plan=plan, argv=argv, requested=requested(plan),
                  limits=limits, status="running", reason=None, pids=[], state_dir=experiment.dir)
    if module.check_mode:
        others = busy_with_target(params["state_dir"], experiment.name, target["path"])
        if others:
            module.fail_json(msg=busy_message(others, target))
        result.update(changed=True, status="would_start")
        module.exit_json(**result)
    spec = dict(name=experiment.name, fingerprint=fingerprint(defining), target=target, plan=plan, argv=argv,
                stress_ng=stress_ng, nsenter=nsenter, ns_pid=ns_pid, proc_root=resolver.mounts.proc_root,
                pdeathsig_exec=pdeathsig_exec(module) if ns_pid else None,
                requested=requested(plan), limits=limits)
    # Check and act under the target's lock: of two starts on one target, exactly one gets here first.
    with target_lock(params["state_dir"], target["path"]):
        others = busy_with_target(params["state_dir"], experiment.name, target["path"])
        if others:
            module.fail_json(msg=busy_message(others, target))
        experiment.start(spec)
    report = experiment.report()
    if report["status"] != "running" and report["reason"] in ("attach_failed", "supervisor_error"):
        module.fail_json(msg="stress did not start: %s" % (report["outcome"] or {}).get("detail"), **report)
    report.update(changed=True, requested=requested(plan))
    report.update(retire_after_start(params, experiment.name))
    module.exit_json(**report)


def retire_after_start(params, name):
    """Best effort: a failure to retire old state is reported, never fails the start."""
    try:
        retired, errors = retire(params["state_dir"], params["retain_count"], parse_retain_age(params["retain_age"]),
                                 exclude=(name,))
    except Exception as exc:  # pylint: disable=broad-except
        retired, errors = [], ["retirement failed: %s" % exc]
    return dict(retired=retired, retire_errors=errors)


def main():
    module = AnsibleModule(
        argument_spec=argument_spec(),
        mutually_exclusive=TARGET_MUTUALLY_EXCLUSIVE,
        required_if=[("state", "present", ("duration",)),
                     ("state", "present", SELECTORS, True)],
        supports_check_mode=True,
    )
    params = module.params
    if params["retain_count"] < 0:
        module.fail_json(msg="retain_count must be 0 or more, got %d" % params["retain_count"])
    try:
        parse_retain_age(params["retain_age"])
        experiment = Experiment(params["state_dir"], params["name"])
        if params["state"] == "absent":
            if module.check_mode:
                absent(module, experiment, experiment.running())
            # A stop waits for a start or stop of the same name that is under way, then acts.
            with name_lock(params["state_dir"], experiment.name, wait=START_TIMEOUT + STOP_TIMEOUT + 5):
                absent(module, experiment, experiment.stop())
        if module.check_mode:
            present(module, experiment)
        # A start or heartbeat never waits: a concurrent run of the same name gets a clear error instead.
        with name_lock(params["state_dir"], experiment.name):
            present(module, experiment)
    except (CgroupError, PlanError, StateError, ExperimentError, UnitError) as exc:
        module.fail_json(msg=str(exc))


def absent(module, experiment, changed):
    report = experiment.report() if experiment.exists else dict(name=experiment.name, status="absent",
                                                                reason=None, pids=[], state_dir=experiment.dir)
    module.exit_json(changed=changed, **report)


def present(module, experiment):
    params = module.params
    defining = dict((key, params.get(key)) for key in DEFINING)
    if params.get("stress_ng_args"):  # only when set, so the fingerprints of other experiments stay as they were
        defining["stress_ng_args"] = params["stress_ng_args"]
    if experiment.exists:
        same = experiment.spec().get("fingerprint") == fingerprint(defining)
        if experiment.outcome() is not None and experiment.result_stored():
            # Ended, and its whole result was kept: the name is done and is only reported again.
            module.exit_json(changed=False, requested=experiment.spec().get("requested"), **experiment.report())
        if experiment.supervisor_lost():
            # Killed or crashed: nothing enforces the deadline, the dead-man or the guards any more. Stop what
            # it started, remove what it made and record why, before anything else.
            was_running = experiment.running()
            if not module.check_mode:
                experiment.abort_lost()
            if was_running or same:
                module.exit_json(changed=not module.check_mode, requested=experiment.spec().get("requested"),
                                 **experiment.report())
        elif experiment.running():
            if not same:
                module.fail_json(msg="experiment %s is running with different parameters; stop it first "
                                     "(state=absent) or use another name" % experiment.name)
            if not module.check_mode:
                experiment.heartbeat()
            module.exit_json(changed=False, requested=experiment.spec().get("requested"), **experiment.report())
        elif same and experiment.outcome() is not None:
            module.exit_json(changed=False, requested=experiment.spec().get("requested"), **experiment.report())
    start(module, experiment, defining)


if __name__ == "__main__":
    main()
