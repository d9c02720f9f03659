#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2026, chaosfleet.stress contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: cgroup_info
short_description: Find a container's cgroup on a node and read its limits and usage
version_added: 0.1.0
description:
  - Resolves a target (container ID, pod UID, PID, cgroup path or systemd unit) to its cgroup on the
    managed node, on cgroup v1, v2 or hybrid nodes, for kubelet's cgroupfs and systemd drivers,
    containerd, CRI-O, Docker, Podman and systemd services.
  - Reads limits and usage in one schema for both cgroup versions. The working set is usage minus
    C(inactive_file), as kubelet computes it; this is the number the OOM killer and C(kubectl top) care
    about, unlike C(free) and C(top) in a container, which show the host's C(/proc/meminfo).
  - Cgroup mounts are read from C(/proc/self/mountinfo), never assumed.
author:
  - chaosfleet.stress contributors (@chaosfleet)
extends_documentation_fragment:
  - chaosfleet.stress.attributes
  - chaosfleet.stress.attributes.info_module
  - chaosfleet.stress.attributes.node
  - chaosfleet.stress.target
notes:
  - Exactly one target selector is required.
  - Needs read access to C(/proc) and the cgroup filesystems; run as root to see other users' processes.
seealso:
  - module: chaosfleet.stress.stressor
  - module: chaosfleet.stress.cgroup_sample
'''

EXAMPLES = r'''
- name: Find a pod's app container by the ID Kubernetes reports
  chaosfleet.stress.cgroup_info:
    container_id: containerd://4c01db0b339c2e5b0f9a8e2d1c6b7a8f9e0d1c2b3a4f5e6d7c8b9a0f1e2d3c4b
  register: found

- name: Show the container's limit and working set
  ansible.builtin.debug:
    msg: "{{ found.cgroups[0].memory.working_set_bytes }} of {{ found.cgroups[0].memory.limit_bytes }}"

- name: All containers of a pod, by its UID (the sandbox is left out)
  chaosfleet.stress.cgroup_info:
    pod_uid: 5f1e2a3b-1c2d-4e5f-8a9b-0c1d2e3f4a5b

- name: The cgroup of a systemd service
  chaosfleet.stress.cgroup_info:
    systemd_unit: nginx
'''

RETURN = r'''
cgroup_mode:
  description: How the node mounts cgroups.
  returned: always
  type: str
  choices: [v1, v2, hybrid]
  sample: hybrid
cgroup_version:
  description: The cgroup version containers are managed with (where the memory controller is).
  returned: always
  type: int
  sample: 1
mounts:
  description:
    - Where each hierarchy is mounted, as read from mountinfo.
    - C(cgroup_namespace) is the cgroup namespace the module read from. V(host) - PID 1's or the initial one (or the node
      has no cgroup namespaces). V(entered-host) - it ran in another one (a container's) and entered PID 1's. V(private) - it ran in
      another one and could not enter PID 1's (not privileged); paths outside its namespace are refused.
      V(unknown) - PID 1's namespace could not be read; paths outside this process's namespace are refused.
  returned: always
  type: dict
  sample: {"mode": "hybrid", "v1_controllers": {"memory": "/sys/fs/cgroup/memory"}, "unified_mountpoint": "/sys/fs/cgroup/unified",
           "cgroup_namespace": "host"}
cgroups:
  description: One entry per matching cgroup, in the collection's usage schema.
  returned: always
  type: list
  elements: dict
  contains:
    path:
      description: Cgroup path from the hierarchy root.
      type: str
      sample: /kubepods/burstable/pod5f1e2a3b-1c2d-4e5f-8a9b-0c1d2e3f4a5b/4c01db0b339c
    dirs:
      description: Directory of this cgroup in each hierarchy (v1 controller names, or C(unified)).
      type: dict
    cgroup_version:
      description: 1 or 2.
      type: int
    kind:
      description: What the cgroup holds.
      type: str
      choices: [container, sandbox, pod, service, cgroup]
    node_wide:
      description:
        - True when the cgroup is not one workload - the root cgroup, a cgroup with child cgroups (V(/kubepods), a pod,
          a slice) or the cgroup of PID 1. M(chaosfleet.stress.stressor) refuses such targets unless
          C(allow_node_wide=true).
      type: bool
    runtime:
      description: The runtime that named the cgroup, when the name tells it.
      type: str
      choices: [containerd, cri-o, docker, podman]
    container_id:
      description: Full container ID (64 hex characters).
      type: str
    pod_uid:
      description: Kubernetes pod UID with dashes.
      type: str
    qos_class:
      description: Kubernetes QoS class, from the cgroup path.
      type: str
      choices: [Guaranteed, Burstable, BestEffort]
    systemd_unit:
      description: The systemd unit, for services.
      type: str
    memory:
      description: Memory limit and usage in bytes.
      type: dict
      contains:
        limit_bytes:
          description: The memory limit; null when unlimited.
          type: int
        usage_bytes:
          description: C(memory.usage_in_bytes) (v1) or C(memory.current) (v2).
          type: int
        working_set_bytes:
          description: Usage minus inactive file pages, as kubelet computes it.
          type: int
        rss_bytes:
          description: Anonymous memory (v1 C(total_rss), v2 C(anon)).
          type: int
        cache_bytes:
          description: Page cache (v1 C(total_cache), v2 C(file)).
          type: int
        inactive_file_bytes:
          description: Inactive file pages.
          type: int
        peak_bytes:
          description: Highest usage seen (v1 C(max_usage_in_bytes), v2 C(memory.peak) where the kernel has it).
          type: int
        oom_kill_count:
          description: OOM kills in this cgroup (v1 C(memory.oom_control), v2 C(memory.events)).
          type: int
        oom_group:
          description: v2 C(memory.oom.group); when true one OOM kills every process in the cgroup. Null on v1.
          type: bool
    cpu:
      description: CPU quota and usage.
      type: dict
      contains:
        quota_cores:
          description: Quota divided by period; null when unlimited.
          type: float
        period_us:
          description: The CFS period in microseconds.
          type: int
        usage_seconds:
          description: CPU time used by the cgroup.
          type: float
        nr_periods:
          description: Enforcement periods elapsed.
          type: int
        nr_throttled:
          description: Periods in which the cgroup was throttled.
          type: int
        throttled_seconds:
          description: Total time throttled.
          type: float
    pressure:
      description: PSI per resource (C(some_avg10), C(full_avg10), ...), or null where the kernel has none for this cgroup.
      type: dict
    processes:
      description: Member processes.
      type: list
      elements: dict
      sample: [{"pid": 4242, "comm": "httpd", "oom_score_adj": 999}]
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.chaosfleet.stress.plugins.module_utils._target_options import (
    TARGET_ARGSPEC,
    TARGET_MUTUALLY_EXCLUSIVE,
    TARGET_REQUIRED_ONE_OF,
    node_resolver,
    target_params,
)
from ansible_collections.chaosfleet.stress.plugins.module_utils._mounts import CgroupError
from ansible_collections.chaosfleet.stress.plugins.module_utils._usage import read_usage


def main():
    module = AnsibleModule(
        argument_spec=dict(TARGET_ARGSPEC),
        mutually_exclusive=TARGET_MUTUALLY_EXCLUSIVE,
        required_one_of=TARGET_REQUIRED_ONE_OF,
        supports_check_mode=True,
    )
    try:
        resolver = node_resolver(module.params)
        targets = resolver.resolve(target_params(module.params))
        cgroups = [read_usage(t, resolver.mounts.proc_root) for t in targets]
    except CgroupError as exc:
        module.fail_json(msg=str(exc))
    mounts = resolver.mounts
    module.exit_json(changed=False, cgroup_mode=mounts.mode, cgroup_version=mounts.version,
                     mounts=mounts.describe(), cgroups=cgroups)


if __name__ == "__main__":
    main()
