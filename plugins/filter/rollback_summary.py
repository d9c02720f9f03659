# -*- coding: utf-8 -*-
# Copyright (c) 2026, chaosfleet.stress contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
name: rollback_summary
short_description: What the chaosfleet.stress.rollback role stopped on a node
version_added: 0.2.0
description:
  - Sums up the looped M(chaosfleet.stress.stressor) C(state=absent) results of one node for the
    P(chaosfleet.stress.rollback#role) role. Experiments the node did not have are left out.
author:
  - chaosfleet.stress contributors (@chaosfleet)
options:
  _input:
    description: The C(results) of the looped stressor task.
    type: list
    elements: dict
    required: true
  host:
    description: The node's name, for the message.
    type: str
    required: true
'''

EXAMPLES = r'''
- name: Sum up what was stopped
  ansible.builtin.set_fact:
    rollback_report: "{{ (stops.results | chaosfleet.stress.rollback_summary(inventory_hostname)).report }}"
'''

RETURN = r'''
_value:
  description: The node's summary.
  type: dict
  contains:
    report:
      description: One entry per experiment the node had - C(name), C(stopped), C(status), C(reason),
        C(processes_left) and C(error).
      type: list
      elements: dict
    msg:
      description: One line - what was stopped and what had already ended (and why).
      type: str
    leftovers:
      description: The experiments whose stress processes survived the stop.
      type: list
      elements: str
'''

from ansible.errors import AnsibleFilterError

from ansible_collections.chaosfleet.stress.plugins.plugin_utils._rollback import summary


def rollback_summary(results, host):
    if not isinstance(results, list) or not all(isinstance(r, dict) for r in results):
        raise AnsibleFilterError("rollback_summary needs the results list of the looped stressor task")
    return summary(results, str(host))


class FilterModule(object):

    def filters(self):
        return {"rollback_summary": rollback_summary}
