# -*- coding: utf-8 -*-
# Copyright (c) 2026, chaosfleet.stress contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):

    # The selectors every node-side module accepts; one resolver serves them all.
    DOCUMENTATION = r'''
options:
  container_id:
    description:
      - Container ID, full (64 hex characters) or a unique prefix of at least 12.
      - A runtime scheme is accepted and ignored, as Kubernetes reports it in C(containerStatuses[].containerID),
        for example C(containerd://), C(cri-o://) or C(docker://); C(podman://) is accepted too.
    type: str
  pod_uid:
    description:
      - Kubernetes pod UID, with dashes (as the API shows it) or underscores (as the systemd driver names slices).
      - Resolves to the pod's containers, without the sandbox (pause) container unless O(include_sandbox=true).
    type: str
  pid:
    description:
      - A process ID on the node; resolves to the cgroup that holds it.
    type: int
  cgroup_path:
    description:
      - A cgroup path relative to the cgroup root, for example C(/kubepods/burstable/pod<uid>/<id>),
        or an absolute path below a cgroup mount such as C(/sys/fs/cgroup/memory/...).
      - Paths that leave the cgroup root (C(..)) are refused.
    type: str
  systemd_unit:
    description:
      - A systemd unit, for example C(nginx.service) or C(nginx) (C(.service) is implied).
    type: str
  include_sandbox:
    description:
      - Also return sandbox (pause) containers when resolving a O(pod_uid).
    type: bool
    default: false
  proc_root:
    description:
      - Where C(/proc) is. Tests point this and O(sys_root) at fixture trees.
    type: path
    default: /proc
  sys_root:
    description:
      - Prefix joined to every cgroup mount point read from C(mountinfo). Empty on a real node.
    type: str
    default: ''
'''
