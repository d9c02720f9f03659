#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2026, chaosfleet.stress contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

# The action plugin of the same name (plugins/action/probe.py) runs first, on the controller:
# it checks every probe, runs the controller's probes itself, and calls this module on the
# node only for the probes with run_on=node. This module is that node-side part.

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: probe
short_description: Check a steady state with HTTP, command, Prometheus and Kubernetes probes
version_added: 0.2.0
description:
  - Runs one round of steady-state probes and returns, for each, whether it passed, its latency and the reason
    in one line. Probes are read-only checks; none of them changes anything.
  - V(http) checks the status code, a regular expression on the body and a latency threshold.
  - V(command) checks the exit code, a regular expression on the output (stdout and stderr together) and a
    latency threshold. The command runs without a shell, in its own session, and is killed with its whole
    process group at O(probes[].timeout).
  - V(prometheus) runs a PromQL instant query through the HTTP API (C(/api/v1/query)) and compares every
    returned series with O(probes[].comparator) and O(probes[].threshold); every series must pass.
  - V(kubernetes) reads pods through the Kubernetes API (one list call per probe) and checks that each is
    Ready, that at least O(probes[].min_pods) exist, and that no container restarted more than
    O(probes[].max_restarts) times since the first round of the tally (or at all, on the first round).
  - 'Where probes run: V(http) and V(command) probes run on the managed node by default (O(probes[].run_on=node)),
    so they see the service as the node does; O(probes[].run_on=controller) runs them in the controller process
    instead (for a URL only the controller reaches, or a command such as C(kubectl) installed there).
    V(prometheus) probes run on the controller by default and V(kubernetes) probes always do.'
  - Pass the previous call's RV(tally) as O(tally) to keep a running tally over an experiment; RV(summary) then
    gives each probe's pass rate and latency percentiles overall and per O(phase).
  - Header values, O(probes[].api_key), O(probes[].password) and the credentials in a O(probes[].kubeconfig) given as a
    dict are never shown in results or errors.
author:
  - chaosfleet.stress contributors (@chaosfleet)
extends_documentation_fragment:
  - chaosfleet.stress.attributes
  - chaosfleet.stress.attributes.info_module
attributes:
  platform:
    platforms: posix
    details:
      - The action runs on the controller. Probes with O(probes[].run_on=node) run on the managed node with its
        Python 3.8 or later and the standard library only.
options:
  probes:
    description: The probes to run, in this order. Names must be unique.
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description: The probe's name, as the report shows it.
        type: str
        required: true
      type:
        description: What the probe checks.
          Defaults to V(http).
        type: str
        choices: [http, command, prometheus, kubernetes]
      run_on:
        description:
          - Where the probe runs. Defaults to V(node) for V(http) and V(command), V(controller) for the others.
          - V(kubernetes) probes only run on the controller.
        type: str
        choices: [node, controller]
      timeout:
        description: How long one check may take, as a duration (V(5s), V(500ms)) or seconds. At most 300 s.
          Defaults to V(5s).
        type: raw
      max_latency:
        description: The check fails when it takes longer than this (a duration or seconds), even if it answered.
        type: raw
      url:
        description:
          - V(http) probes, the URL to request.
          - V(prometheus) probes, the Prometheus base URL, for example V(http://prometheus:9090).
        type: str
      method:
        description: V(http) probes, the HTTP method.
          Defaults to V(GET).
        type: str
      status_code:
        description: V(http) probes, the accepted status codes (one or a list).
          Defaults to V(200).
        type: raw
      body_regex:
        description: V(http) probes, a regular expression (Python C(re.search)) the body must match.
          The first MiB of the body is searched.
        type: str
      headers:
        description: V(http) and V(prometheus) probes, request headers, for example C(Authorization). Their values
          are secrets and never shown.
        type: dict
      body:
        description: V(http) probes, a request body.
        type: str
      validate_certs:
        description: Verify TLS certificates (V(http), V(prometheus), and the Kubernetes API for V(kubernetes)).
          Defaults to V(true).
        type: bool
        aliases: [verify_ssl]
      command:
        description: V(command) probes, the command as a list of arguments, or a string split like a shell does
          (no shell runs it).
        type: raw
      expect_rc:
        description: V(command) probes, the expected exit code.
          Defaults to V(0).
        type: int
      output_regex:
        description: V(command) probes, a regular expression its output must match.
        type: str
      query:
        description: V(prometheus) probes, a PromQL expression returning an instant vector or a scalar.
        type: str
      comparator:
        description: V(prometheus) probes, how each value compares with O(probes[].threshold). Without it, any
          result passes (see O(probes[].require_result)).
        type: str
        choices: ['<', '<=', '>', '>=', '==', '!=']
      threshold:
        description: V(prometheus) probes, the number each value is compared with.
        type: float
      require_result:
        description:
          - V(prometheus) probes, fail when the query returns no series. A query that returns nothing is
            usually a typo or a missing scrape, so this is on by default.
          - Set it to V(false) for alert-style queries, where no series means all is well.
          - Defaults to V(true).
        type: bool
      namespace:
        description: V(kubernetes) probes, the namespace of the pods.
        type: str
      pod:
        description: V(kubernetes) probes, one pod by name. Give this or O(probes[].label_selector).
        type: str
      label_selector:
        description: V(kubernetes) probes, a label selector for the pods, for example V(app=checkout).
        type: str
      require_ready:
        description: V(kubernetes) probes, every matched pod must have the Ready condition.
          Defaults to V(true).
        type: bool
      max_restarts:
        description: V(kubernetes) probes, restarts any container may have had since the tally's first round.
          Defaults to V(0).
        type: int
      min_pods:
        description: V(kubernetes) probes, the fewest pods that must match.
          Defaults to V(1).
        type: int
      kubeconfig:
        description:
          - V(kubernetes) probes, a path to a kubeconfig or the kubeconfig as a dict, as
            O(chaosfleet.stress.k8s_targets#module:kubeconfig).
          - The Kubernetes options take the same values, aliases and E(K8S_AUTH_*) environment variables (read on
            the controller) as k8s_targets' options of the same names.
        type: raw
      context:
        description: V(kubernetes) probes, the kubeconfig context.
        type: str
      host:
        description: V(kubernetes) probes, the API server URL.
        type: str
      api_key:
        description: V(kubernetes) probes, a bearer token.
        type: str
      username:
        description: V(kubernetes) probes, user for basic authentication.
        type: str
      password:
        description: V(kubernetes) probes, password for basic authentication.
        type: str
      client_cert:
        description: V(kubernetes) probes, path to a client certificate.
        type: path
        aliases: [cert_file]
      client_key:
        description: V(kubernetes) probes, path to the client certificate's key.
        type: path
        aliases: [key_file]
      ca_cert:
        description: V(kubernetes) probes, path to the cluster's CA certificate.
        type: path
        aliases: [ssl_ca_cert]
      proxy:
        description: V(kubernetes) probes, HTTP proxy URL for the API server.
        type: str
      no_proxy:
        description: V(kubernetes) probes, hosts reached without the proxy.
        type: str
  phase:
    description: A label for this round in the tally, for example V(baseline), V(stress) or V(recovery).
    type: str
    default: check
  tally:
    description: The RV(tally) of the previous call of this experiment, to count this round with the earlier ones.
      Kubernetes probes also keep their restart baselines there.
    type: dict
    default: {}
  retry_for:
    description:
      - Try the round again every O(retry_every) seconds until every probe passes or this many seconds passed;
        the tally keeps the last round. V(0) runs one round.
      - The experiment role uses it for a headroom search's recovery window.
    type: float
    default: 0
  retry_every:
    description: Seconds between the tries of O(retry_for).
    type: float
    default: 5
seealso:
  - module: chaosfleet.stress.k8s_targets
'''

EXAMPLES = r'''
- name: Check the steady state of the checkout service
  chaosfleet.stress.probe:
    phase: baseline
    probes:
      - name: checkout-health
        url: http://127.0.0.1:8080/healthz
        body_regex: '"status":\s*"ok"'
        max_latency: 300ms
      - name: worker-queue-ok
        type: command
        command: [/usr/local/bin/queue-depth, --max, "100"]
        output_regex: '^ok'
      - name: error-rate
        type: prometheus
        url: http://prometheus.monitoring:9090
        query: sum(rate(http_requests_total{job="checkout",code=~"5.."}[1m]))
        comparator: '<'
        threshold: 0.5
      - name: checkout-pods
        type: kubernetes
        namespace: shop
        label_selector: app=checkout
        min_pods: 2
  register: probe_round

- name: Keep a tally over an experiment (pass the last tally back in)
  chaosfleet.stress.probe:
    phase: stress
    probes: "{{ my_probes }}"
    tally: "{{ probe_round.tally }}"
  register: probe_round
'''

RETURN = r'''
probes:
  description: This round's results, in the order of O(probes).
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: The probe's name.
      type: str
    type:
      description: The probe's type.
      type: str
    run_on:
      description: Where it ran.
      type: str
    ok:
      description: Whether the check passed.
      type: bool
    latency_ms:
      description: How long the check took, in milliseconds; null when it did not run.
      type: float
    detail:
      description: The reason, in one line, on success and on failure.
      type: str
    observed:
      description: What was observed (HTTP status, exit code, Prometheus values, pod counts and restarts).
      type: dict
  sample:
    - {name: checkout-health, type: http, run_on: node, ok: true, latency_ms: 12.4,
       detail: HTTP 200 in 12 ms, observed: {status: 200}}
    - {name: error-rate, type: prometheus, run_on: controller, ok: false, latency_ms: 8.1,
       detail: 'checkout = 0.9, expected < 0.5', observed: {series: 1}}
ok:
  description: Whether every probe passed this round.
  returned: always
  type: bool
failed_probes:
  description: Names of the probes that failed this round.
  returned: always
  type: list
  elements: str
tally:
  description: The running tally including this round; pass it back as O(tally) next time.
  returned: always
  type: dict
summary:
  description: One entry per probe of the tally, for reports.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: The probe's name.
      type: str
    checks:
      description: Checks counted.
      type: int
    passed:
      description: Checks that passed.
      type: int
    failures:
      description: Checks that failed.
      type: int
    pass_rate:
      description: Percent of checks that passed.
      type: float
    latency_ms:
      description: Latency percentiles C(p50), C(p95) and C(max), in milliseconds.
      type: dict
    phases:
      description: Checks and passes per O(phase).
      type: dict
    last_failure:
      description: The phase and reason of the last failure, or null.
      type: dict
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.chaosfleet.stress.plugins.module_utils._probe_checks import (
    PROBE_TASK_SPEC, ProbeSpecError, normalize_all, run_local,
)


def main():
    module = AnsibleModule(
        argument_spec=PROBE_TASK_SPEC,
        supports_check_mode=True,
    )
    try:
        probes = normalize_all(module.params["probes"])
    except ProbeSpecError as exc:
        module.fail_json(msg=str(exc))
    off_node = [p["name"] for p in probes if p["type"] == "kubernetes"]
    if off_node:
        module.fail_json(msg="kubernetes probes run on the controller, through the action of the same name: %s"
                         % ", ".join(off_node))
    results = run_local(probes)
    module.exit_json(changed=False, probes=results, ok=all(r["ok"] for r in results),
                     failed_probes=[r["name"] for r in results if not r["ok"]])


if __name__ == "__main__":
    main()
