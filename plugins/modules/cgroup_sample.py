#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2026, chaosfleet.stress contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: cgroup_sample
short_description: Sample containers' cgroup usage over time, or read back what a stress experiment recorded
version_added: 0.1.0
description:
  - Samples one or more targets for a window and returns the time series and a summary (min, mean, p95 and max of
    the working set, rss and cache; CPU usage rate and throttled ratio; PSI C(avg10) where the kernel has it; OOM
    kills in the window, each attributed to a victim, the stressor or an application process).
  - Use it for a steady-state baseline before injection, and with O(recovery) after rollback to measure whether and
    how fast the working set came back to the baseline.
  - With O(experiment) it reads back the samples and outcome a M(chaosfleet.stress.stressor) experiment recorded on
    the node, in the result format M(chaosfleet.stress.stress_report) takes.
author:
  - chaosfleet.stress contributors (@chaosfleet)
extends_documentation_fragment:
  - chaosfleet.stress.attributes
  - chaosfleet.stress.attributes.info_module
  - chaosfleet.stress.attributes.node
  - chaosfleet.stress.target
options:
  targets:
    description:
      - Several targets at once, each a dict with one selector (C(container_id), C(pod_uid), C(pid),
        C(cgroup_path) or C(systemd_unit)). Use instead of the single-target options.
    type: list
    elements: dict
  duration:
    description:
      - The sampling window (V(10s), V(1m)); at most V(24h). Required unless O(recovery) or O(experiment) is given.
    type: str
  interval:
    description: Time between samples; at least V(100ms).
    type: str
    default: 1s
  recovery:
    description:
      - Sample until the working set is back within O(recovery.within_percent) of the baseline for
        O(recovery.stable_samples) samples in a row, or O(recovery.timeout) passes.
    type: dict
    suboptions:
      baseline_working_set_bytes:
        description: The steady-state working set, usually the baseline summary's mean.
        type: int
        required: true
      baseline_rss_bytes:
        description:
          - The steady-state anonymous memory (the baseline summary's C(rss_bytes) mean). When the working set
            does not come back, it tells a stress whose memory is gone (the anonymous memory is back) from one
            whose memory is not; see C(stress_released) in the returned C(recovery).
        type: int
      within_percent:
        description: How close to the baseline counts as recovered.
        type: float
        default: 10
      timeout:
        description: How long to wait for recovery.
        type: str
        default: 60s
      stable_samples:
        description: Samples in a row inside the band before sampling stops early.
        type: int
        default: 3
      tolerance_bytes:
        description:
          - The band is at least this wide on each side (a quantity), whatever O(recovery.within_percent) gives.
            Small applications sit within the kernel's own noise of a few MiB.
        type: str
        default: 4Mi
  experiment:
    description: Read back the experiment of this name from the node's state directory instead of sampling.
    type: str
  state_dir:
    description: The node's experiment state directory (see M(chaosfleet.stress.stressor)).
    type: path
    default: /run/chaosfleet
  host_label:
    description: The host name to put in the experiment result; default is the node's hostname.
    type: str
seealso:
  - module: chaosfleet.stress.stressor
  - module: chaosfleet.stress.stress_report
'''

EXAMPLES = r'''
- name: Steady-state baseline of the target, 10 samples
  chaosfleet.stress.cgroup_sample:
    container_id: "{{ target_container_id }}"
    duration: 10s
  register: baseline

- name: Two containers at once, twice a second
  chaosfleet.stress.cgroup_sample:
    targets:
      - container_id: "{{ app_id }}"
      - pod_uid: "{{ sidecar_pod_uid }}"
    duration: 30s
    interval: 500ms

- name: After rollback, did the working set come back within 10% in 2 minutes?
  chaosfleet.stress.cgroup_sample:
    container_id: "{{ target_container_id }}"
    recovery:
      baseline_working_set_bytes: "{{ baseline.results[0].summary.working_set_bytes.mean | int }}"
      within_percent: 10
      timeout: 2m
  register: recovered

- name: Read back what the experiment recorded, for the report
  chaosfleet.stress.cgroup_sample:
    experiment: checkout-mem
    host_label: "{{ inventory_hostname }}"
  register: recorded
'''

RETURN = r'''
results:
  description: One entry per sampled cgroup.
  returned: when sampling
  type: list
  elements: dict
  contains:
    target:
      description: Identity of the cgroup (path, kind, container_id, pod_uid, qos_class, cgroup_version, ...).
      type: dict
    samples:
      description: The time series (C(t), C(working_set_bytes), C(usage_bytes), C(rss_bytes), C(cache_bytes),
        C(limit_bytes), C(cpu_usage_seconds), C(nr_periods), C(nr_throttled), C(oom_kill_count), PSI fields).
      type: list
      elements: dict
    summary:
      description: min/mean/p95/max of working set, rss and cache; C(cpu_cores); C(throttled_ratio); PSI; OOM count.
      type: dict
    oom_kills:
      description:
        - OOM kills in the window, with C(pid), C(comm), C(victim) (C(stressor), C(app) or C(unknown)),
          C(group_kill) and C(source).
        - C(source=kmsg) is a kill the kernel log named. C(source=counter) is one the cgroup's OOM counter showed and
          the log did not explain within 2 seconds (rate-limited or unreadable log). A log line that arrives later
          still takes the place of that record, with C(late=true), so each kill is one record.
      type: list
      elements: dict
    recovery:
      description:
        - With O(recovery), C(recovered), C(seconds), C(within_percent), C(timeout_seconds).
        - When not recovered, C(below_baseline), C(anon_back) and C(stress_released). The stress is released when
          the working set ended under the band, or when the anonymous memory is back within it; what is still off
          is then the page cache.
      type: dict
experiment_result:
  description: With O(experiment), the experiment's record in the report's result format (format_version 1).
  returned: when O(experiment) is given
  type: dict
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.chaosfleet.stress.plugins.module_utils._target_options import (
    TARGET_ARGSPEC,
    node_resolver,
    target_params,
)
from ansible_collections.chaosfleet.stress.plugins.module_utils._experiment import Experiment
from ansible_collections.chaosfleet.stress.plugins.module_utils._mounts import CgroupError
from ansible_collections.chaosfleet.stress.plugins.module_utils._resolve import SELECTORS
from ansible_collections.chaosfleet.stress.plugins.module_utils._sampling import experiment_result, sample_targets
from ansible_collections.chaosfleet.stress.plugins.module_utils._state import StateError
from ansible_collections.chaosfleet.stress.plugins.module_utils._units import UnitError, parse_duration, parse_size

MODES = list(SELECTORS) + ["targets", "experiment"]


def argument_spec():
    spec = dict(TARGET_ARGSPEC)
    spec.update(
        targets=dict(type="list", elements="dict"),
        duration=dict(type="str"),
        interval=dict(type="str", default="1s"),
        recovery=dict(type="dict", options=dict(
            baseline_working_set_bytes=dict(type="int", required=True),
            baseline_rss_bytes=dict(type="int"),
            within_percent=dict(type="float", default=10),
            timeout=dict(type="str", default="60s"),
            stable_samples=dict(type="int", default=3),
            tolerance_bytes=dict(type="str", default="4Mi"),
        )),
        experiment=dict(type="str"),
        state_dir=dict(type="path", default="/run/chaosfleet"),
        host_label=dict(type="str"),
    )
    return spec


def read_back(module):
    experiment = Experiment(module.params["state_dir"], module.params["experiment"])
    if not experiment.exists:
        module.fail_json(msg="no experiment %s on this node (looked in %s)" % (experiment.name, experiment.dir))
    result = experiment_result(experiment, module.params["host_label"])
    module.exit_json(changed=False, experiment_result=result, status=result["status"], reason=result["reason"],
                     samples=result["samples"], summary=result["summary"], oom_kills=result["oom_kills"])


def main():
    module = AnsibleModule(
        argument_spec=argument_spec(),
        mutually_exclusive=[MODES, ["experiment", "recovery"], ["experiment", "duration"]],
        required_one_of=[MODES],
        supports_check_mode=True,
    )
    params = module.params
    try:
        if params["experiment"]:
            read_back(module)
        interval = parse_duration(params["interval"], "interval", minimum=0.1)
        recovery = params["recovery"]
        if recovery:
            duration = parse_duration(recovery["timeout"], "recovery.timeout")
            if recovery["within_percent"] <= 0:
                module.fail_json(msg="recovery.within_percent must be above 0, got %s" % recovery["within_percent"])
            recovery = dict(recovery, tolerance_bytes=parse_size(recovery["tolerance_bytes"], None,
                                                                 "recovery.tolerance_bytes"))
        elif params["duration"]:
            duration = parse_duration(params["duration"], "duration")
        else:
            module.fail_json(msg="duration is required when sampling (or give recovery or experiment)")
        if interval > duration:
            module.fail_json(msg="interval %s is longer than the window %s" % (params["interval"], duration))
        resolver = node_resolver(params)
        selectors = params["targets"] or [target_params(params)]
        targets = []
        for selector in selectors:
            unknown = set(selector) - set(SELECTORS) - set(["include_sandbox"])
            if unknown:
                module.fail_json(msg="targets entries take only %s; got %s" % (", ".join(SELECTORS), ", ".join(sorted(unknown))))
            targets += resolver.resolve(selector)
        results = sample_targets(targets, resolver.mounts.proc_root, duration, interval, recovery)
    except (CgroupError, UnitError, StateError) as exc:
        module.fail_json(msg=str(exc))
    module.exit_json(changed=False, results=results)


if __name__ == "__main__":
    main()
