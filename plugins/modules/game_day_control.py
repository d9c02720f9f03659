#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2026, chaosfleet.stress contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

# Documentation only: the work is done on the controller by the action plugin of the
# same name (plugins/action/game_day_control.py) with plugins/plugin_utils/_game_day.py.

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: game_day_control
short_description: The decisions of the chaosfleet.stress.game_day playbook (internal)
version_added: 0.2.0
description:
  - Reads the spec from C(game_day) (inline) or C(__gd_file) (the spec file, read with
    M(ansible.builtin.include_vars)); values that use a host's variables are templated for that host.
  - V(check) refuses a bad game day spec with every problem named (names, types, unknown settings, host
    patterns that match nothing, one host in two experiments of a batch) and plans the batches.
  - V(vars) gives the host its experiment of a batch and the role variables for it.
  - V(report_vars) (run once) gives each experiment of a batch its own report and publish settings, from a host
    that ran it (one still in the play first), else the role's defaults, for the reports written after the batch.
  - V(gate) (run once) closes the gate when a verdict of the batch is not in the spec's C(continue_on).
  - V(summary) writes the game day's JSON and Markdown summary with the report code.
author:
  - chaosfleet.stress contributors (@chaosfleet)
extends_documentation_fragment:
  - chaosfleet.stress.attributes
  - chaosfleet.stress.attributes.controller
attributes:
  check_mode:
    support: full
    details:
      - Step V(summary) renders but writes nothing.
  diff_mode:
    support: none
options:
  step:
    description: Which decision to make.
    type: str
    required: true
    choices: [check, vars, report_vars, gate, summary]
  role_defaults:
    description: The P(chaosfleet.stress.experiment#role) role's defaults (its known settings).
    type: dict
    default: {}
  plan:
    description: The registered answer of step V(check).
    type: dict
  batch:
    description: Index of the batch (steps V(vars), V(report_vars) and V(gate)).
    type: int
  label:
    description: How to name the spec in errors.
    type: str
    default: (inline)
notes:
  - Internal to the collection's playbooks; its options may change between minor versions.
'''

EXAMPLES = r'''
- name: Check the spec and plan the batches
  chaosfleet.stress.game_day_control:
    step: check
    role_defaults: "{{ __gd_role_defaults }}"
  register: __gd_plan
'''

RETURN = r'''
plan:
  description: Step V(check) - the experiment names of each batch.
  returned: step check
  type: list
  elements: list
hosts:
  description: Step V(check) - experiment name to its inventory hosts.
  returned: step check
  type: dict
experiments:
  description: Step V(report_vars) - experiment name to its C(experiment_achieved_min_percent) and
    C(experiment_publish_*) settings.
  returned: step report_vars
  type: dict
stopped:
  description: Step V(gate) - why the gate closed, or empty.
  returned: step gate
  type: str
summary:
  description: Step V(summary) - the game day summary (format_version 1) with the paths of its files.
  returned: step summary
  type: dict
'''
