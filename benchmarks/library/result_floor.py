#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2026, chaosfleet.stress contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""For benchmarks/bench_k8s_targets.py only: return a saved result as this module's own.

It measures Ansible's floor for a result of that size: a module that does no work of its own, so its cost
over an empty playbook is Ansible building and starting a module, the module's exit_json (which walks the
whole result for no_log values), and the controller reading, copying and registering the result.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json

from ansible.module_utils.basic import AnsibleModule


def main():
    module = AnsibleModule(argument_spec=dict(
        path=dict(type="path", required=True),
        # A no_log value, as k8s_targets has its token: exit_json then masks, as it does there.
        token=dict(type="str", no_log=True),
    ))
    with open(module.params["path"]) as handle:
        result = json.load(handle)
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
