#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2026, chaosfleet.stress contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: k8s_targets
short_description: Resolve a Chaos Mesh style pod selector to nodes, pods and container IDs
version_added: 0.1.0
description:
  - Asks the Kubernetes API which pods match a selector shaped like Chaos Mesh's (namespaces; label,
    field, annotation and phase selectors; nodes; pods by name; container names), picks some of them
    with a Chaos Mesh mode (V(one), V(all), V(fixed), V(fixed-percent), V(random-max-percent)) and
    returns, for each picked pod, its node, the node's InternalIP and its containers' IDs, limits and
    requests.
  - The RV(by_node) return value groups the targets per node, ready for C(ansible.builtin.add_host),
    so a play can run M(chaosfleet.stress.cgroup_info) and M(chaosfleet.stress.stressor) on each node.
  - Label and field selectors are sent to the API server; one list call is made per namespace
    (one for the whole cluster when no namespace is given), never one call per pod.
  - Sandbox (pause) and init containers are never targets. Ephemeral containers are targets only with
    O(include_ephemeral=true). A container that has not started yet, or is not running, is reported in
    RV(skipped).
  - Runs on the controller with the C(kubernetes) Python client. It only reads.
author:
  - chaosfleet.stress contributors (@chaosfleet)
requirements:
  - kubernetes >= 24.2.0 (the Python client, on the controller)
extends_documentation_fragment:
  - chaosfleet.stress.attributes
  - chaosfleet.stress.attributes.info_module
  - chaosfleet.stress.attributes.controller
  - chaosfleet.stress.k8s_auth
attributes:
  action_group:
    description: Use C(group/chaosfleet.stress.k8s) in C(module_defaults) to set the authentication options once.
    support: full
    membership:
      - chaosfleet.stress.k8s
options:
  namespaces:
    description:
      - Namespaces to search. One list call is made per namespace.
      - When empty, pods are listed across the cluster with one call, and pods in
        O(protected_namespaces) are left out.
    type: list
    elements: str
    default: []
  label_selectors:
    description:
      - Pod labels to match, sent to the API server as a C(labelSelector).
      - 'Either a dict of C(key: value) pairs that must all match, or a list of expressions with
        C(key), C(operator) (V(In), V(NotIn), V(Exists), V(DoesNotExist)) and C(values).'
      - As in Kubernetes, V(NotIn) and V(DoesNotExist) also match pods without the label.
    type: raw
  field_selectors:
    description:
      - 'Pod fields to match, sent to the API server as a C(fieldSelector); for example
        C({"spec.nodeName": "node1"}) or the string C(status.phase!=Failed).'
      - The API server supports C(metadata.name), C(metadata.namespace), C(spec.nodeName),
        C(spec.restartPolicy), C(spec.schedulerName), C(spec.serviceAccountName), C(spec.hostNetwork),
        C(status.phase), C(status.podIP) and C(status.nominatedNodeName).
    type: raw
  annotation_selectors:
    description:
      - Pod annotations to match, checked on the controller (the API cannot filter on annotations).
      - 'A dict of C(key: value) pairs or a list of expressions, like O(label_selectors).'
    type: raw
  pod_phase_selectors:
    description:
      - Pod phases to accept. An empty list accepts every phase.
      - As in Chaos Mesh, a phase after C(!) (V(!Pending)) refuses that phase; a list of only such entries
        accepts every other phase.
    type: list
    elements: str
    choices: [Pending, Running, Succeeded, Failed, Unknown, '!Pending', '!Running', '!Succeeded', '!Failed', '!Unknown']
    default: [Running]
  node_selectors:
    description:
      - Node labels; only pods on nodes with these labels are selected. The nodes are listed once with
        this C(labelSelector).
      - 'A dict of C(key: value) pairs or a list of expressions, like O(label_selectors).'
    type: raw
  nodes:
    description:
      - Names of the nodes whose pods may be selected. Combined with O(node_selectors), a pod's node must
        match both, or either with O(node_match=any).
    type: list
    elements: str
    default: []
  node_match:
    description:
      - How O(nodes) and O(node_selectors) combine when both are given. V(all) - a pod's node must be named
        and carry the labels. V(any) - either is enough (the union, as Chaos Mesh does).
    type: str
    choices: [all, any]
    default: all
  pods:
    description:
      - 'Pods by name, as a dict of C(namespace: [pod names]). Their namespaces are listed (one call each)
        and the other selectors still apply.'
      - Named pods that are not found are reported in a warning.
    type: dict
  container_names:
    description:
      - Names of the containers to target in each pod. Empty targets every (non-init) container.
      - Pods without any of these containers are not candidates.
    type: list
    elements: str
    default: []
  default_containers:
    description:
      - The containers to target when O(container_names) is empty. V(all) - every (non-init) container.
        V(first) - the pod's first container only, as Chaos Mesh does.
    type: str
    choices: [all, first]
    default: all
  include_ephemeral:
    description:
      - Also target ephemeral (debug) containers.
    type: bool
    default: false
  mode:
    description:
      - How many of the matching pods to pick, with Chaos Mesh's names and rules.
      - V(one) picks one pod at random; V(all) picks every matching pod.
      - V(fixed) picks O(value) pods (all of them when fewer match).
      - V(fixed-percent) picks O(value) percent of the pods, rounded up, so at least one.
      - V(random-max-percent) draws a percentage from 0 to O(value) and picks that share, rounded up;
        it may pick no pod, which is not an error.
    type: str
    choices: [one, all, fixed, fixed-percent, random-max-percent]
    default: one
  value:
    description:
      - The number of pods (V(fixed)) or the percentage, 1 to 100 (V(fixed-percent),
        V(random-max-percent)), as a number or a string like V(50) or V(50%). Required by those modes.
    type: raw
  seed:
    description:
      - Seed for the random pick, a number or a string such as the experiment's name. The same seed
        over the same matching pods picks the same pods; without it each run picks anew.
      - The seed is read as text, so V(42) and V("42") pick alike.
    type: raw
  allow_empty:
    description:
      - Return an empty RV(targets) list when no pod matches, instead of failing.
    type: bool
    default: false
  protected_namespaces:
    description:
      - Namespaces whose pods are never targets unless O(allow_protected_namespaces=true).
        Naming one in O(namespaces) or O(pods) is an error; a cluster-wide search leaves their pods out.
    type: list
    elements: str
    default: [kube-system]
  allow_protected_namespaces:
    description:
      - Allow targets in O(protected_namespaces).
    type: bool
    default: false
  request_timeout:
    description:
      - Seconds to wait for each API call.
    type: float
    default: 30
  node_access:
    description:
      - How the playbooks will reach the picked nodes.
      - V(ssh) (the default) looks up nothing more.
      - V(agent) also finds each picked node's chaosfleet agent pod (deployed with the C(chaosfleet.stress.agent)
        playbook) and returns it in RV(agents). First it asks the API (a C(SelfSubjectAccessReview)) whether this
        user may create C(pods/exec) in O(agent_namespace); when not, the module fails and nothing starts.
    type: str
    choices: [ssh, agent]
    default: ssh
  agent_namespace:
    description: The namespace of the agent DaemonSet, with O(node_access=agent).
    type: str
    default: chaosfleet-agent
  agent_labels:
    description: The labels that pick the agent's pods in O(agent_namespace), with O(node_access=agent).
    type: dict
    default: {app.kubernetes.io/name: chaosfleet-agent}
  agent_container:
    description: The agent pod's container that commands run in, with O(node_access=agent).
    type: str
    default: agent
notes:
  - 'Run it on the controller, for example in a play on C(localhost) or with C(delegate_to: localhost).'
  - The result does not change anything, so it reports C(changed=false), in check mode too.
seealso:
  - module: chaosfleet.stress.cgroup_info
  - name: Chaos Mesh selectors
    description: The selector and mode semantics this module follows.
    link: https://chaos-mesh.org/docs/define-chaos-experiment-scope/
'''

EXAMPLES = r'''
- name: Half of the checkout pods in namespace shop
  chaosfleet.stress.k8s_targets:
    kubeconfig: ~/.kube/config
    namespaces: [shop]
    label_selectors:
      app: checkout
    mode: fixed-percent
    value: 50
    seed: "{{ experiment_name }}"
  delegate_to: localhost
  register: picked

- name: Add each node that runs a target, with its containers
  ansible.builtin.add_host:
    name: "{{ item.key }}"
    groups: stress_nodes
    ansible_host: "{{ item.value.node_ip }}"
    stress_targets: "{{ item.value.targets }}"
  loop: "{{ picked.by_node | dict2items }}"

- name: Expressions, annotations and node labels, with auth set once for the play
  module_defaults:
    group/chaosfleet.stress.k8s:
      host: https://10.0.0.1:6443
      api_key: "{{ vault_k8s_token }}"
      ca_cert: /etc/chaos/ca.crt
  block:
    - name: Canary pods of the web tier on stress-pool nodes, app container only
      chaosfleet.stress.k8s_targets:
        namespaces: [shop, payments]
        label_selectors:
          - key: tier
            operator: In
            values: [web]
          - key: track
            operator: NotIn
            values: [stable]
        annotation_selectors:
          chaos.example.com/allowed: "true"
        node_selectors:
          pool: stress
        container_names: [app]
        mode: all

- name: Two named pods; succeed with nothing when they are gone
  chaosfleet.stress.k8s_targets:
    pods:
      shop: [checkout-7d9f-abcde, checkout-7d9f-fghij]
    mode: all
    allow_empty: true
'''

RETURN = r'''
targets:
  description: The picked pods, sorted by namespace and name, with their targetable containers.
  returned: success
  type: list
  elements: dict
  contains:
    namespace:
      description: Pod namespace.
      type: str
      sample: shop
    pod:
      description: Pod name.
      type: str
      sample: checkout-7d9f-abcde
    uid:
      description: Pod UID.
      type: str
      sample: 5f1e2a3b-1c2d-4e5f-8a9b-0c1d2e3f4a5b
    node:
      description: Name of the node the pod runs on.
      type: str
      sample: node1
    node_ip:
      description: The node's InternalIP; the pod's C(hostIP) when nodes cannot be read.
      type: str
      sample: 10.0.0.11
    qos_class:
      description: The pod's QoS class (from its status, or computed from its spec).
      type: str
      choices: [Guaranteed, Burstable, BestEffort]
    phase:
      description: Pod phase.
      type: str
      sample: Running
    labels:
      description: Pod labels.
      type: dict
    containers:
      description: The pod's targetable containers.
      type: list
      elements: dict
      contains:
        name:
          description: Container name.
          type: str
          sample: app
        container_id:
          description: Container ID with the runtime scheme, as the pod status reports it.
          type: str
          sample: containerd://4c01db0b339c2e5b0f9a8e2d1c6b7a8f9e0d1c2b3a4f5e6d7c8b9a0f1e2d3c4b
        id:
          description: The bare container ID, as cgroup names carry it.
          type: str
          sample: 4c01db0b339c2e5b0f9a8e2d1c6b7a8f9e0d1c2b3a4f5e6d7c8b9a0f1e2d3c4b
        runtime:
          description: Runtime from the ID's scheme.
          type: str
          sample: containerd
        image:
          description: Container image.
          type: str
        ephemeral:
          description: Whether this is an ephemeral container.
          type: bool
        memory_request_bytes:
          description: Memory request in bytes; null when unset.
          type: int
          sample: 134217728
        memory_limit_bytes:
          description: Memory limit in bytes; null when unset.
          type: int
          sample: 268435456
        cpu_request_cores:
          description: CPU request in cores; null when unset.
          type: float
          sample: 0.25
        cpu_limit_cores:
          description: CPU limit in cores; null when unset.
          type: float
          sample: 1.0
        restart_count:
          description: How often the container has restarted.
          type: int
        ready:
          description: Whether the container is ready.
          type: bool
by_node:
  description:
    - The targets grouped by node name, for C(add_host).
    - C(container_ids) are bare IDs, as M(chaosfleet.stress.cgroup_info) and the cgroup paths use them.
  returned: success
  type: dict
  sample:
    node1:
      node_ip: 10.0.0.11
      targets:
        - namespace: shop
          pod: checkout-7d9f-abcde
          pod_uid: 5f1e2a3b-1c2d-4e5f-8a9b-0c1d2e3f4a5b
          qos_class: Burstable
          container_ids: [4c01db0b339c2e5b0f9a8e2d1c6b7a8f9e0d1c2b3a4f5e6d7c8b9a0f1e2d3c4b]
          containers: [app]
agents:
  description:
    - With O(node_access=agent), each picked node's agent pod, keyed by node name. C(ready) is true when the pod
      runs and is Ready; otherwise C(problem) says why (no agent pod on the node, not Ready, no such container).
    - The P(chaosfleet.stress.k8s_hosts#filter) filter turns these into C(kubernetes.core.kubectl) connections, and names
      every node whose agent is not ready before anything starts.
  returned: success, with O(node_access=agent)
  type: dict
  sample:
    node1:
      namespace: chaosfleet-agent
      pod: chaosfleet-agent-x7k2p
      container: agent
      ready: true
      problem: null
skipped:
  description: Containers of matching pods that cannot be targets, because they have not started or do not run.
  returned: success
  type: list
  elements: dict
  sample:
    - namespace: shop
      pod: checkout-7d9f-xyz12
      pod_uid: 0b9c8d7e-6f5a-4b3c-9d2e-1f0a9b8c7d6e
      container: app
      reason: "not started yet: waiting (ContainerCreating)"
searched:
  description: What was searched and how many pods each step kept.
  returned: success, and when no pod matched
  type: dict
  contains:
    description:
      description: The search in one sentence.
      type: str
      sample: pods in namespace shop with labels 'app=checkout' in phase Running
    namespaces:
      description: Namespaces listed; empty for a cluster-wide list.
      type: list
      elements: str
    label_selector:
      description: The C(labelSelector) sent.
      type: str
    field_selector:
      description: The C(fieldSelector) sent.
      type: str
    node_selector:
      description: The node C(labelSelector) sent.
      type: str
    pod_phases:
      description: Accepted phases.
      type: list
      elements: str
    funnel:
      description: Pods left after each filtering step.
      type: list
      elements: dict
    candidates:
      description: Pods with at least one targetable container, before the mode's pick.
      type: int
    mode:
      description: The mode used.
      type: str
    value:
      description: The mode's value, as a number.
      type: int
    drawn_percent:
      description: The percentage V(random-max-percent) drew.
      type: int
    selected:
      description: Number of picked pods.
      type: int
    api_calls:
      description: The API calls made, in order.
      type: list
      elements: str
'''

import gc

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.chaosfleet.stress.plugins.module_utils._k8s_client import (
    AUTH_ARG_SPEC, AUTH_REQUIRED_TOGETHER, HAS_KUBERNETES, KUBERNETES_IMPORT_ERROR, AuthError, K8sReader,
    build_configuration, hide_kubeconfig, scrub)
from ansible_collections.chaosfleet.stress.plugins.module_utils._k8s_select import (
    AGENT_DEFAULTS, DEFAULT_CONTAINERS, DEFAULT_PROTECTED, MODES, NODE_ACCESS, NODE_MATCH, PHASE_CHOICES, ApiError,
    SelectionError, funnel_text, parse_options, resolve)


def main():
    # A short process that parses a LIST of thousands of pods into hundreds of thousands of dicts and lists, none
    # of them in a reference cycle: the cyclic collector would only walk them again and again (it took more CPU
    # than the parse itself). Memory is still freed as references go.
    gc.disable()
    argument_spec = dict(
        namespaces=dict(type="list", elements="str", default=[]),
        label_selectors=dict(type="raw"),
        field_selectors=dict(type="raw"),
        annotation_selectors=dict(type="raw"),
        pod_phase_selectors=dict(type="list", elements="str", choices=list(PHASE_CHOICES), default=["Running"]),
        node_selectors=dict(type="raw"),
        nodes=dict(type="list", elements="str", default=[]),
        node_match=dict(type="str", choices=list(NODE_MATCH), default="all"),
        default_containers=dict(type="str", choices=list(DEFAULT_CONTAINERS), default="all"),
        pods=dict(type="dict"),
        container_names=dict(type="list", elements="str", default=[]),
        include_ephemeral=dict(type="bool", default=False),
        mode=dict(type="str", choices=list(MODES), default="one"),
        value=dict(type="raw"),
        seed=dict(type="raw"),
        allow_empty=dict(type="bool", default=False),
        protected_namespaces=dict(type="list", elements="str", default=list(DEFAULT_PROTECTED)),
        allow_protected_namespaces=dict(type="bool", default=False),
        request_timeout=dict(type="float", default=30),
        node_access=dict(type="str", choices=list(NODE_ACCESS), default="ssh"),
        agent_namespace=dict(type="str", default=AGENT_DEFAULTS["namespace"]),
        agent_labels=dict(type="dict", default=dict(AGENT_DEFAULTS["labels"])),
        agent_container=dict(type="str", default=AGENT_DEFAULTS["container"]),
    )
    argument_spec.update(AUTH_ARG_SPEC)
    module = AnsibleModule(
        argument_spec=argument_spec,
        required_together=AUTH_REQUIRED_TOGETHER,
        required_if=[("mode", "fixed", ["value"]), ("mode", "fixed-percent", ["value"]),
                     ("mode", "random-max-percent", ["value"])],
        supports_check_mode=True,
    )
    # Only the kubeconfig's credentials stay masked; the dict itself is never echoed back.
    auth = dict(module.params, kubeconfig=hide_kubeconfig(module))
    if not HAS_KUBERNETES:
        module.fail_json(msg=missing_required_lib("kubernetes"), exception=KUBERNETES_IMPORT_ERROR)

    try:
        criteria = parse_options(module.params)
    except SelectionError as exc:
        module.fail_json(msg=str(exc))

    secrets = []
    try:
        configuration = build_configuration(auth)
        reader = K8sReader(configuration, auth, timeout=module.params["request_timeout"])
        secrets = reader.secrets
        module.no_log_values.update(secrets)  # a token read from a kubeconfig file, too
        result = resolve(criteria, reader)
    except AuthError as exc:
        module.fail_json(msg=scrub(exc, list(module.no_log_values)))
    except ApiError as exc:
        module.fail_json(msg=scrub(exc, secrets), status=exc.status)

    for warning in result.pop("warnings"):
        module.warn(warning)
    result["searched"]["api_calls"] = reader.calls
    if not result["targets"] and not result["searched"]["candidates"] and not module.params["allow_empty"]:
        module.fail_json(
            msg="no pod matched: searched %s (%s). Set allow_empty=true to accept an empty result."
                % (result["searched"]["description"], funnel_text([(s["stage"], s["pods"]) for s in
                                                                   result["searched"]["funnel"]])),
            changed=False, **result)
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
