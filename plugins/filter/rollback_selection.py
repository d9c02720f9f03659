# -*- coding: utf-8 -*-
# Copyright (c) 2026, chaosfleet.stress contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
name: rollback_selection
short_description: Which experiments the chaosfleet.stress.rollback role ends on a node
version_added: 0.2.0
description:
  - Reads C(rollback_experiments) for the P(chaosfleet.stress.rollback#role) role. It takes a list, or one
    comma-separated string (an AWX survey's text field).
  - With no names, or a shell-style pattern (C(*), C(?), C([)) among them, the node's experiments are listed and
    matched; otherwise the names are stopped as they are.
author:
  - chaosfleet.stress contributors (@chaosfleet)
options:
  _input:
    description: Names or shell-style patterns, as a list or one comma-separated string; empty means every experiment.
    type: raw
    required: true
'''

EXAMPLES = r'''
- name: Stop what the survey named
  chaosfleet.stress.stressor:
    name: "{{ item }}"
    state: absent
  loop: "{{ (rollback_experiments | chaosfleet.stress.rollback_selection).names }}"
'''

RETURN = r'''
_value:
  description: The selection.
  type: dict
  contains:
    names:
      description: The names and patterns given, stripped, without repeats.
      type: list
      elements: str
    patterns:
      description: What to match the node's experiments against (C(*) when no name was given).
      type: list
      elements: str
    list_node:
      description: Whether the node's experiments must be listed and matched.
      type: bool
'''

from ansible.errors import AnsibleFilterError

from ansible_collections.chaosfleet.stress.plugins.plugin_utils._rollback import selection


def rollback_selection(experiments):
    if experiments is not None and not isinstance(experiments, (str, list)):
        raise AnsibleFilterError("rollback_experiments must be a list of names or one comma-separated string, "
                                 "got %s" % type(experiments).__name__)
    return selection(experiments)


class FilterModule(object):

    def filters(self):
        return {"rollback_selection": rollback_selection}
