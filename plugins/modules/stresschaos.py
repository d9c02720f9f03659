#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2026, chaosfleet.stress contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

# Documentation only: the work is done on the controller by the action plugin of the
# same name (plugins/action/stresschaos.py) with plugins/plugin_utils/_stresschaos.py.

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: stresschaos
short_description: Run Chaos Mesh StressChaos and Schedule manifests as their authors meant them (the stresschaos playbook's steps)
version_added: 0.2.0
description:
  - The decisions of the C(chaosfleet.stress.stresschaos) playbook. Each step calls plain, table-tested Python
    (C(plugins/plugin_utils/_stresschaos.py)); the playbook only sequences.
  - V(translate) reads O(manifests) (files, YAML text with one or more documents, or mappings) - C(StressChaos), and
    C(Schedule) of type C(StressChaos). Every field is honoured or refused; any refusal fails the step with one line
    per problem naming the field's path, and nothing starts. It returns each experiment's k8s_targets options,
    experiment role variables and translation table (what Chaos Mesh would do, what runs here, and why they differ),
    and each Schedule as AWX schedule-as-code (written to O(awx_dest) when given).
  - V(plan) takes the k8s_targets answers (one per experiment, in order), plans one inventory host per picked container
    (the C(chaosfleet.stress.k8s_hosts) rules) and resolves sizes against each container's limits.
  - V(vars) gives a host its role variables for experiment O(index), or none.
  - V(collect) gathers the results of experiment O(index) from its hosts.
  - V(summary) turns the results into Chaos Mesh-shaped C(containerRecords) and writes the run's JSON and Markdown
    report.
author:
  - chaosfleet.stress contributors (@chaosfleet)
extends_documentation_fragment:
  - chaosfleet.stress.attributes
  - chaosfleet.stress.attributes.controller
attributes:
  check_mode:
    support: full
    details:
      - Steps V(translate) and V(summary) render but write nothing.
  diff_mode:
    support: none
options:
  step:
    description: Which decision to make.
    type: str
    required: true
    choices: [translate, plan, vars, collect, summary]
  manifests:
    description:
      - Step V(translate). A list of manifest files (found like C(files/) lookups, or relative to the playbook),
        YAML texts (several documents allowed) or manifests as mappings. One item may be given alone.
    type: raw
  settings:
    description:
      - Step V(translate). The play's switches, C(memory_percent_of) (V(limit) or V(node)), C(chaos_mesh_version)
        (V(2.1) and older read memory C(size) per worker), C(allow_stressng), C(max_duration), C(name_prefix),
        C(schedule_start) and C(job_template_prefix).
    type: dict
    default: {}
  awx_dest:
    description: Step V(translate). Directory to write C(stresschaos-schedules.yml) (AWX schedule-as-code) into.
    type: path
  translation:
    description: Step V(plan). The registered answer of step V(translate).
    type: dict
  picks:
    description: Step V(plan). The answers of M(chaosfleet.stress.k8s_targets), one per experiment, in order.
    type: list
    elements: dict
  plan:
    description: Steps V(vars), V(collect) and V(summary). The registered answer of step V(plan).
    type: dict
  index:
    description: Steps V(vars) and V(collect). The experiment's position.
    type: int
  role_defaults:
    description: Step V(vars). The P(chaosfleet.stress.experiment#role) role's defaults.
    type: dict
    default: {}
  node_meminfo:
    description: Step V(vars). The node's C(/proc/meminfo), for a memory size given as a share of the node's RAM.
    type: str
  collected:
    description: Step V(summary). The results step V(collect) gathered, by experiment.
    type: dict
    default: {}
  report_dest:
    description: Step V(summary). Directory of the report.
    type: path
  report_basename:
    description: Step V(summary). The report's file name without extension.
    type: str
notes:
  - Internal to the collection's playbook; its options may change between minor versions. Run
    C(ansible-playbook chaosfleet.stress.stresschaos) instead.
seealso:
  - name: Coming from Chaos Mesh
    description: The field-by-field table and the differences.
    link: https://github.com/chaosfleet/stress/blob/main/docs/guides/coming-from-chaos-mesh.md
'''

EXAMPLES = r'''
- name: Check and translate the manifests; nothing starts on a refusal
  chaosfleet.stress.stresschaos:
    step: translate
    manifests: [chaos/checkout-memory.yaml]
    settings: {max_duration: 10m}
  register: translation
'''

RETURN = r'''
experiments:
  description: Step V(translate) - each StressChaos with its k8s_targets options (C(k8s)), role variables (C(role)) and
    translation table (C(table), rows of C(field), C(chaos_mesh), C(here), C(differs), C(why)).
  returned: step translate
  type: list
  elements: dict
schedules:
  description: Step V(translate) - each Schedule with its RRULE, table, job template and AWX schedule.
  returned: step translate
  type: list
  elements: dict
awx:
  description: Step V(translate) - C(chaosfleet_awx_extra_job_templates) and C(chaosfleet_awx_schedules) for awx/stresschaos_schedules.yml.
  returned: step translate
  type: dict
summary:
  description: Step V(summary) - per experiment its table and C(status.experiment.containerRecords) (C(id)
    C(namespace/pod/container), C(phase) V(Injected) or V(Not Injected), C(events), C(reason)), and the report paths.
  returned: step summary
  type: dict
'''
