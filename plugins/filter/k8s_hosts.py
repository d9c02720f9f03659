# -*- coding: utf-8 -*-
# Copyright (c) 2026, chaosfleet.stress contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
name: k8s_hosts
short_description: Inventory hosts for the containers chaosfleet.stress.k8s_targets picked
version_added: 0.2.0
description:
  - Turns the RV(chaosfleet.stress.k8s_targets#module:by_node) result into one entry per host to add with
    M(ansible.builtin.add_host). Kubernetes node names are inventory host names.
  - A picked node that is in O(inventory_hosts) is that host, with its connection settings and group_vars.
    One that is not becomes a host of its name at its C(InternalIP), with no user forced.
  - A node with several picked containers gets one host per container, C(<node>--<first 12 of the container ID>),
    meant to be added to the node's own groups so it keeps the node's group_vars.
author:
  - chaosfleet.stress contributors (@chaosfleet)
options:
  _input:
    description: The RV(chaosfleet.stress.k8s_targets#module:by_node) mapping.
    type: dict
    required: true
  inventory_hosts:
    description: The inventory's host names, usually C(groups['all']).
    type: list
    elements: str
    default: []
  limit:
    description: Only these node names (for example a game-day experiment's hosts); nodes outside are left out.
    type: list
    elements: str
'''

EXAMPLES = r'''
- name: Add one host per picked container
  ansible.builtin.add_host:
    name: "{{ item.name }}"
    groups: "{{ ['stress_targets'] + (hostvars[item.node].group_names if item.in_inventory else []) }}"
    ansible_host: "{{ hostvars[item.node].ansible_host | default(item.node_ip) if item.in_inventory else item.node_ip }}"
    experiment_container_id: "{{ item.container_id }}"
    experiment_k8s_target: "{{ item.kubernetes }}"
  loop: "{{ picked.by_node | chaosfleet.stress.k8s_hosts(groups['all']) }}"
'''

RETURN = r'''
_value:
  description: One entry per host to add.
  type: list
  elements: dict
  contains:
    name:
      description: The host name, the node's name or C(<node>--<container ID prefix>).
      type: str
    node:
      description: The Kubernetes node name.
      type: str
    in_inventory:
      description: Whether the node is an inventory host.
      type: bool
    node_ip:
      description: The node's InternalIP (or the pod's hostIP).
      type: str
    container_id:
      description: The container to stress.
      type: str
    suffix:
      description: Empty, or C(-<container ID prefix>) for a node with several picked containers.
      type: str
    kubernetes:
      description: The target's C(namespace), C(pod), C(container) and C(node), for reports.
      type: dict
'''

from ansible.errors import AnsibleFilterError

from ansible_collections.chaosfleet.stress.plugins.plugin_utils._k8s_hosts import K8sHostsError, plan_hosts


def k8s_hosts(by_node, inventory_hosts=None, limit=None):
    try:
        return plan_hosts(by_node, inventory_hosts or [], limit)
    except K8sHostsError as exc:
        raise AnsibleFilterError(str(exc))


class FilterModule(object):

    def filters(self):
        return {"k8s_hosts": k8s_hosts}
