# -*- coding: utf-8 -*-
# Copyright (c) 2026, chaosfleet.stress contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Argument specs and set-up shared by the node-side modules."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.chaosfleet.stress.plugins.module_utils._mounts import CgroupMounts
from ansible_collections.chaosfleet.stress.plugins.module_utils._resolve import SELECTORS, Resolver

TARGET_ARGSPEC = dict(
    container_id=dict(type="str"),
    pod_uid=dict(type="str"),
    pid=dict(type="int"),
    cgroup_path=dict(type="str"),
    systemd_unit=dict(type="str"),
    include_sandbox=dict(type="bool", default=False),
    proc_root=dict(type="path", default="/proc"),
    sys_root=dict(type="str", default=""),
)
TARGET_MUTUALLY_EXCLUSIVE = [list(SELECTORS)]
TARGET_REQUIRED_ONE_OF = [list(SELECTORS)]


def node_resolver(params):
    """Mounts and the resolver for the node the module runs on (or a fixture tree)."""
    mounts = CgroupMounts(proc_root=params.get("proc_root") or "/proc", sys_root=params.get("sys_root") or "")
    return Resolver(mounts)


def target_params(params):
    return dict((name, params.get(name)) for name in SELECTORS + ("include_sandbox",))
