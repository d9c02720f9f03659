#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2026, chaosfleet.stress contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

# Documentation only: the work is done on the controller by the action plugin of the
# same name (plugins/action/experiment_control.py) with plugins/plugin_utils/_experiment_decisions.py.

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: experiment_control
short_description: The decisions of the chaosfleet.stress.experiment role (internal)
version_added: 0.2.0
description:
  - Used by the P(chaosfleet.stress.experiment#role) role; its tasks only sequence, and every choice they make
    is one step of this action. Reads the role's C(experiment_*) variables of the host it runs for.
  - V(request) checks the inputs (survey strings included) and builds the stressor request; it fails with every
    problem named, before anything runs on a node.
  - V(preflight) judges the target found by M(chaosfleet.stress.cgroup_info) and the stressor's check-mode answer
    (headroom, one experiment per target, a name that already ran, the dead-man against the heartbeat interval,
    the C(memory.oom.group) acknowledgement).
  - V(baseline) judges the baseline sample and the first probe round; every probe must pass.
  - V(gate) (run once) decides whether the experiment starts, from each participant's problems.
  - V(arm) (run once, before the inject) starts the stop guard (C(plugins/plugin_utils/_stop_guard.py)), a process
    in its own session that stops every starting host at once when the playbook is interrupted or killed, and
    returns its directory, PID and start time. V(disarm) (run once, after the rollback) dismisses it.
  - V(tick) (run once) takes every participant's heartbeat answer and probe round of this tick, counts probe
    failures, decides the abort conditions (probe failures over the threshold, an application OOM kill, too many
    failed nodes), records how long the heartbeat round took, then sleeps until the next tick.
  - V(result) merges the node's record with the controller's observations into the host's result (the contract
    in C(plugins/module_utils/_result.py)).
  - V(collect) (run once) gathers every participant's result for M(chaosfleet.stress.stress_report), with the hosts
    the report expects and its file name.
  - V(failure) fails the host, after the report, when its run failed (the node was lost; with
    C(experiment_fail_on_abort), an abort or a failed task; with C(experiment_any_errors_fatal), another host failed).
  - The steps for the whole experiment read each participant's variables once per call.
author:
  - chaosfleet.stress contributors (@chaosfleet)
extends_documentation_fragment:
  - chaosfleet.stress.attributes
  - chaosfleet.stress.attributes.controller
attributes:
  check_mode:
    support: full
    details:
      - Decides only; it never changes anything.
  diff_mode:
    support: none
options:
  step:
    description: Which decision to make.
    type: str
    required: true
    choices: [request, clock, preflight, baseline, gate, arm, tick, disarm, result, collect, failure]
  found:
    description: The registered M(chaosfleet.stress.cgroup_info) result (step V(preflight)).
    type: dict
  check:
    description: The registered check-mode M(chaosfleet.stress.stressor) result (step V(preflight)).
    type: dict
  sample:
    description: The registered baseline M(chaosfleet.stress.cgroup_sample) result (step V(baseline)).
    type: dict
  round:
    description: The baseline round's RV(chaosfleet.stress.probe#module:probes) (step V(baseline)).
    type: list
    elements: dict
  state:
    description: The previous tick's state (steps V(tick) and V(result)).
    type: dict
  node:
    description: The registered read-back of the node's record (step V(result)).
    type: dict
  recovery:
    description: The recovery verdict of M(chaosfleet.stress.cgroup_sample) (step V(result)).
    type: dict
  guard:
    description: The registered result of step V(arm) (step V(disarm)).
    type: dict
notes:
  - Internal to the collection's roles; its options may change between minor versions.
'''

EXAMPLES = r'''
- name: Decide for the whole experiment, then wait for the next tick
  chaosfleet.stress.experiment_control:
    step: tick
    state: "{{ __experiment_control }}"
  run_once: true
  register: __experiment_control
'''

RETURN = r'''
problems:
  description: Step V(request) - what is wrong with the inputs (empty when the step succeeded).
  returned: step request
  type: list
  elements: str
problem:
  description: Steps V(preflight) and V(baseline) - why this host must not start, or empty.
  returned: steps preflight and baseline
  type: str
start:
  description: Step V(gate) - whether the experiment starts.
  returned: step gate
  type: bool
hosts:
  description: Step V(tick) - per host its status, deadline, probe tallies and missed heartbeats.
  returned: step tick
  type: dict
done:
  description: Step V(tick) - whether monitoring is over (every stress ended, or the experiment was aborted).
  returned: step tick
  type: bool
abort_reason:
  description: Step V(tick) - why the experiment is aborted everywhere, or empty.
  returned: step tick
  type: str
round_seconds:
  description: Step V(tick) - how long each heartbeat and probe round took.
  returned: step tick
  type: list
  elements: float
result:
  description: Step V(result) - the host's experiment result (format_version 1).
  returned: step result
  type: dict
results:
  description: Step V(collect) - host to result, failure or null, for M(chaosfleet.stress.stress_report).
  returned: step collect
  type: dict
expected_hosts:
  description: Step V(collect) - the hosts the report expects (C(experiment_expected_hosts), else every participant).
  returned: step collect
  type: list
  elements: str
basename:
  description: Step V(collect) - the report's file name without extension.
  returned: step collect
  type: str
paths:
  description: Step V(request) - the experiment's directory on the node and its C(heartbeat), C(outcome) and C(result)
    files (C(plugins/module_utils/_state.py)).
  returned: step request
  type: dict
clear_state:
  description: Step V(preflight) - delete the old record under this name first (C(experiment_replace)).
  returned: step preflight
  type: bool
failure:
  description: Step V(failure) - why this host's run failed, or empty.
  returned: step failure
  type: str
'''
