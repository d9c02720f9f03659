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
        or an absolute path below a cgroup mount such as C(/sys/fs/cgroup/memory/...). With O(sys_root), the node's
        path and the same path below O(sys_root) both work.
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
      - When this process's cgroup namespace (C(<proc_root>/self/ns/cgroup)) is not PID 1's, as in a container with
        a private cgroup namespace, the module first enters PID 1's (C(setns); it needs C(CAP_SYS_ADMIN) and the host's
        PID 1, so a privileged agent with C(hostPID)), before it reads C(mountinfo). The supervisor and stress-ng
        inherit that namespace.
      - If it cannot, a cgroup mount root or cgroup path that contains C(..) (it lies outside this namespace) is never
        used; the module fails with an error that says why, rather than join the wrong cgroup.
    type: path
    default: /proc
  sys_root:
    description:
      - Where the host's root is mounted when the module runs in a node agent container, for example C(/host) with the
        host's C(/sys/fs/cgroup) bind-mounted at C(/host/sys/fs/cgroup).
      - When C(mountinfo) lists cgroup mounts under O(sys_root), only those are used, as they are (the others are the
        container's own). Otherwise O(sys_root) is joined to every cgroup mount point read from C(mountinfo), as for
        fixture trees.
      - Empty on the node itself.
    type: str
    default: ''
'''
