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
  - With O(hostvars), each entry also gets RV(_value.add_host), the complete arguments for
    M(ansible.builtin.add_host). A host split per container then copies every connection variable the node has
    (address, port, user, passwords, keys, SSH arguments and executable, timeouts, pipelining, remote tmp,
    interpreter, become method, user, password, flags and executable); use C(no_log) on that task.
author:
  - chaosfleet.stress contributors (@chaosfleet)
options:
  _input:
    description:
      - The RV(chaosfleet.stress.k8s_targets#module:by_node) mapping.
      - Or the list this filter returned before (a game day's planned hosts), to add RV(_value.add_host) with
        O(hostvars).
    type: raw
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
  hostvars:
    description: The play's C(hostvars); asks for RV(_value.add_host).
    type: raw
  group:
    description: A group to put every added host in, with RV(_value.add_host).
    type: str
  access:
    description:
      - How to reach the nodes, with O(hostvars). V(ssh) connects to the node as today. V(agent) runs every
        command in the node's agent pod with C(kubernetes.core.kubectl) (the node's SSH settings do not apply).
      - An inventory node's own C(k8s_node_access) host var (V(ssh) or V(agent)) beats this, so one run may mix both.
      - A node to reach through its agent that has no ready agent in O(agents), or a controller without
        C(kubectl), is an error that names the nodes; nothing is added.
    type: str
    choices: [ssh, agent]
    default: ssh
  agents:
    description: RV(chaosfleet.stress.k8s_targets#module:agents), from k8s_targets run with C(node_access=agent).
    type: dict
  kubectl:
    description:
      - The Kubernetes connection for agent hosts, with the collection's auth option names (C(kubeconfig),
        C(context), C(host), C(api_key), C(username), C(password), C(client_cert), C(client_key), C(ca_cert),
        C(validate_certs)); they become the C(ansible_kubectl_*) variables of C(kubernetes.core.kubectl).
      - Secrets become host variables; add the hosts with C(no_log).
    type: dict
'''

EXAMPLES = r'''
- name: Add one host per picked container, with its node's connection settings
  ansible.builtin.add_host: "{{ item.add_host }}"
  loop: "{{ picked.by_node | chaosfleet.stress.k8s_hosts(groups['all'], hostvars=hostvars, group='stress_targets') }}"
  loop_control:
    label: "{{ item.name }}"
  no_log: true  # add_host's result lists the host vars, passwords included
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
    add_host:
      description:
        - With O(hostvars) only. The M(ansible.builtin.add_host) arguments - C(name), C(groups) (O(group) and, for
          an inventory node, the node's groups), the target (C(experiment_container_id),
          C(experiment_instance_suffix), C(experiment_k8s_target)) and the connection settings.
        - An inventory node that is its own host gets no connection settings (it has them); a host split per
          container gets every connection variable its node has, with C(ansible_host) defaulting to the node's
          name; a node outside the inventory gets C(ansible_host) set to its InternalIP and nothing else.
      type: dict
    access:
      description: With O(hostvars) only. V(ssh) or V(agent), how this host is reached.
      type: str
'''

from ansible.errors import AnsibleFilterError

from ansible_collections.chaosfleet.stress.plugins.plugin_utils._k8s_hosts import (
    K8sHostsError, as_entries, with_add_host,
)


def k8s_hosts(by_node, inventory_hosts=None, limit=None, hostvars=None, group=None, access="ssh", agents=None,
              kubectl=None):
    try:
        entries = as_entries(by_node, inventory_hosts or [], limit)
        return entries if hostvars is None else with_add_host(entries, hostvars, group, access, agents, kubectl)
    except K8sHostsError as exc:
        raise AnsibleFilterError(str(exc))


class FilterModule(object):

    def filters(self):
        return {"k8s_hosts": k8s_hosts}
