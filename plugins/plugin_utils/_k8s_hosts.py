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

SPLIT = "--"


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


def skipped_hosts(by_node, limit):
    """The hosts of ``limit`` that host no picked target: skipped, not failed."""
    return sorted(set(limit or ()) - set(by_node or {}))
