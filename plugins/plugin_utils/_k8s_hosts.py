# -*- coding: utf-8 -*-
# Copyright (c) 2026, chaosfleet.stress contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Inventory hosts for the containers k8s_targets picked (for the k8s_hosts filter).

Controller-side. Kubernetes node names are inventory host names: a picked node that is in the
inventory is that host, with all its connection settings and group_vars; one that is not gets a
host of its name at its InternalIP, and nothing else (no user is forced, so the play's and the
AWX credential's settings apply). A node with several picked containers gets one host per
container, ``<node>--<first 12 of the container ID>``, which the playbook puts in the node's own
groups so it keeps the node's group_vars.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import shutil

from ansible_collections.chaosfleet.stress.plugins.module_utils._k8s_auth import KUBECTL_VARS

SPLIT = "--"

# What a host split per container copies from its node: how to reach it and become root there.
# The node's values as Ansible sees them (host vars and group_vars), so a templated value such as
# "{{ inventory_hostname }}.example.com" keeps meaning the node, not the split host.
CONNECTION_VARS = (
    "ansible_host", "ansible_ssh_host", "ansible_port", "ansible_ssh_port",
    "ansible_user", "ansible_ssh_user", "ansible_connection",
    "ansible_password", "ansible_ssh_pass", "ansible_ssh_password",
    "ansible_private_key_file", "ansible_ssh_private_key_file",
    "ansible_ssh_common_args", "ansible_ssh_extra_args", "ansible_sftp_extra_args", "ansible_scp_extra_args",
    "ansible_ssh_args", "ansible_ssh_executable", "ansible_ssh_timeout", "ansible_timeout",
    "ansible_pipelining", "ansible_ssh_pipelining", "ansible_ssh_transfer_method",
    "ansible_host_key_checking", "ansible_ssh_host_key_checking",
    "ansible_python_interpreter", "ansible_remote_tmp", "ansible_shell_type", "ansible_shell_executable",
    "ansible_become", "ansible_become_method", "ansible_become_user", "ansible_become_password",
    "ansible_become_pass", "ansible_become_flags", "ansible_become_exe",
)
ENTRY_KEYS = ("name", "node", "in_inventory", "node_ip", "container_id", "suffix", "kubernetes")
# A node's own host var that overrides the play's k8s_node_access (a mix of SSH and agent nodes).
ACCESS_VAR = "k8s_node_access"
# The auth options -> kubernetes.core.kubectl connection variables are KUBECTL_VARS in _k8s_auth.py.
# Inside the agent pod: the image's Python, and the host's cgroupfs where the DaemonSet mounts it.
AGENT_PYTHON = "/usr/bin/python3"
AGENT_SYS_ROOT = "/host"


class K8sHostsError(ValueError):
    """Input that is not k8s_targets' by_node."""


def plan_hosts(by_node, inventory_hosts=(), limit=None):
    """[{name, node, in_inventory, node_ip, container_id, suffix, kubernetes}] in a stable order.

    ``by_node`` is k8s_targets' RV(by_node). ``limit``: only these node names (an experiment's
    inventory hosts); nodes outside it are left out, and inventory hosts without a target are
    simply not in the result.
    """
    if not isinstance(by_node, dict):
        raise K8sHostsError("k8s_hosts needs the by_node mapping that chaosfleet.stress.k8s_targets returns, got %s"
                            % type(by_node).__name__)
    inventory = set(inventory_hosts or ())
    allowed = None if limit is None else set(limit)
    out = []
    for node in sorted(by_node):
        if allowed is not None and node not in allowed:
            continue
        info = by_node[node] or {}
        picked = []
        for target in info.get("targets") or []:
            for cid, container in zip(target.get("container_ids") or [], target.get("containers") or []):
                picked.append((cid, {"namespace": target.get("namespace"), "pod": target.get("pod"),
                                     "container": container, "node": node}))
        for cid, names in picked:
            split = len(picked) > 1
            out.append({
                "name": node + SPLIT + cid[:12] if split else node,
                "node": node,
                "in_inventory": node in inventory,
                "node_ip": info.get("node_ip"),
                "container_id": cid,
                "suffix": "-" + cid[:12] if split else "",
                "kubernetes": names,
            })
    return out


def as_entries(value, inventory_hosts=(), limit=None):
    """The one shape the k8s_hosts filter works on: planned entries (see plan_hosts).

    Its input is k8s_targets' RV(by_node) (a mapping, planned here), or the list the filter returned
    before (a game day's planned hosts, already entries). Anything else raises, naming both shapes.
    """
    if isinstance(value, dict):
        return plan_hosts(value, inventory_hosts, limit)
    if isinstance(value, list) and all(isinstance(e, dict) and set(ENTRY_KEYS) <= set(e) for e in value):
        return value
    raise K8sHostsError("k8s_hosts needs the by_node mapping that chaosfleet.stress.k8s_targets returns, or the "
                        "list of hosts k8s_hosts planned, got %s" % type(value).__name__)


def skipped_hosts(by_node, limit):
    """The hosts of ``limit`` that host no picked target: skipped, not failed."""
    return sorted(set(limit or ()) - set(by_node or {}))


def _undefined(value):
    """Jinja's Undefined and ansible-core's Marker (2.19: what an undefined host or value gives)."""
    return value is None or any(cls.__name__.endswith("Undefined") or cls.__name__.endswith("Marker")
                                for cls in type(value).__mro__)


def _defined(node_vars, key):
    """The node's value of ``key``, or None when it has none (an undefined template counts as none)."""
    try:
        if key not in node_vars:
            return None
        value = node_vars[key]
    except Exception:  # a value that cannot be templated is not copied
        return None
    return None if _undefined(value) else value


def add_host_args(entry, node_vars=None, group=None):
    """The ansible.builtin.add_host arguments for one planned host.

    ``node_vars`` is the node's hostvars when the node is an inventory host. That host itself keeps
    what it has (only the group and the target are added: re-setting its group_vars as host vars
    would let them beat the play's and AWX's settings). A host split per container joins the node's
    groups and copies every connection variable the node has (CONNECTION_VARS), passwords included,
    with ``ansible_host`` defaulting to the node's name. A node outside the inventory is reached at
    its InternalIP, with nothing else forced.
    """
    args = {"name": entry["name"], "groups": [group] if group else [],
            "experiment_container_id": entry["container_id"], "experiment_instance_suffix": entry["suffix"],
            "experiment_k8s_target": entry["kubernetes"]}
    if not entry["in_inventory"] or node_vars is None:
        args["ansible_host"] = entry.get("node_ip") or entry["node"]
        return args
    args["groups"] += [g for g in (_defined(node_vars, "group_names") or []) if g not in args["groups"]]
    if entry["name"] == entry["node"]:
        return args
    for key in CONNECTION_VARS:
        value = _defined(node_vars, key)
        if value is not None:
            args[key] = value
    args.setdefault("ansible_host", entry["node"])
    return args


def agent_host_args(entry, agent, node_vars=None, group=None, kubectl=None):
    """add_host arguments that reach ``entry``'s node through its agent pod with kubectl exec.

    The node's SSH settings do not apply; the node's groups still do (for their group_vars). The
    connection's secrets (token, password, a kubeconfig dict) become host vars: add_host runs with no_log.
    """
    args = {"name": entry["name"], "groups": [group] if group else [],
            "experiment_container_id": entry["container_id"], "experiment_instance_suffix": entry["suffix"],
            "experiment_k8s_target": entry["kubernetes"], ACCESS_VAR: "agent",
            "ansible_connection": "kubernetes.core.kubectl", "ansible_kubectl_namespace": agent["namespace"],
            "ansible_kubectl_pod": agent["pod"], "ansible_kubectl_container": agent["container"],
            "ansible_python_interpreter": AGENT_PYTHON, "ansible_become": False,
            "k8s_node_sys_root": AGENT_SYS_ROOT}
    if node_vars is not None:
        args["groups"] += [g for g in (_defined(node_vars, "group_names") or []) if g not in args["groups"]]
    for option, var in KUBECTL_VARS:
        value = (kubectl or {}).get(option)
        if value not in (None, ""):
            # kubectl runs without a shell, so a "~/.kube/config" path is expanded here.
            args[var] = os.path.expanduser(value) if option == "kubeconfig" and isinstance(value, str) else value
    return args


def node_access(entry, node_vars, default):
    """ssh or agent for this entry: the node's own k8s_node_access host var beats the play's."""
    own = _defined(node_vars, ACCESS_VAR) if node_vars is not None else None
    access = own or default or "ssh"
    if access not in ("ssh", "agent"):
        raise K8sHostsError("k8s_node_access must be ssh or agent, got %r%s"
                            % (access, " (host var of %s)" % entry["node"] if own else ""))
    return access


def with_add_host(entries, hostvars, group=None, access="ssh", agents=None, kubectl=None, which=shutil.which):
    """Each planned entry with ``add_host``: the add_host arguments for it (see add_host_args).

    With agent access (the play's ``access``, or a node's own k8s_node_access), the node must have a ready
    agent in ``agents`` (k8s_targets' RV(agents)) and the controller needs kubectl: otherwise this raises,
    naming every such node, so the play stops before anything starts. ``entries`` are as_entries' output.
    """
    out, unready = [], []
    for entry in entries:
        node_vars = None
        if entry["in_inventory"]:
            try:
                node_vars = hostvars[entry["node"]]
            except KeyError:
                node_vars = None
            if _undefined(node_vars):
                node_vars = None
        if node_access(entry, node_vars, access) == "agent":
            agent = (agents or {}).get(entry["node"])
            if not agent or not agent.get("ready"):
                unready.append("%s (%s)" % (entry["node"], (agent or {}).get("problem") or
                                            "no agent looked up: run k8s_targets with node_access=agent"))
                continue
            out.append(dict(entry, access="agent", add_host=agent_host_args(entry, agent, node_vars, group, kubectl)))
        else:
            out.append(dict(entry, access="ssh", add_host=add_host_args(entry, node_vars, group)))
    if unready:
        raise K8sHostsError("no ready chaosfleet agent on %s; nothing was started. Deploy the agent with the "
                            "chaosfleet.stress.agent playbook, or reach these nodes with k8s_node_access: ssh"
                            % ", ".join(sorted(set(unready))))
    if any(e["access"] == "agent" for e in out) and not which("kubectl"):
        raise K8sHostsError("k8s_node_access: agent runs kubectl on the controller, and kubectl is not on its PATH "
                            "(%s); install kubectl 1.30 or later there (the execution environment in "
                            "meta/execution-environment.yml has it); nothing was started"
                            % os.environ.get("PATH", ""))
    return out
