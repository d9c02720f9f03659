#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2026, chaosfleet.stress contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: preflight
short_description: Name what a node lacks to run stress experiments
version_added: 0.2.0
description:
  - Checks, read-only, what the collection needs on a managed node and names each thing that lacks, with how to
    fix it, before a first experiment on a new fleet.
  - C(privileges) - root, or sudo to become root.
  - C(cgroup_procs) - a writable C(cgroup.procs) at the root of every cgroup hierarchy (v1 controllers or the v2
    unified hierarchy), to move stress-ng into a target's cgroup.
  - C(kmsg) - a readable C(/dev/kmsg), where OOM kills are read.
  - C(python) - Python 3.8 or later for the node-side modules.
  - C(nsenter) - to run stress-ng in the target's PID namespace.
  - C(stress_ng) - a stress-ng that runs (C(stress-ng --version)).
  - Nothing is written, signalled or started except C(stress-ng --version).
author:
  - chaosfleet.stress contributors (@chaosfleet)
extends_documentation_fragment:
  - chaosfleet.stress.attributes
  - chaosfleet.stress.attributes.info_module
  - chaosfleet.stress.attributes.node
options:
  stress_ng:
    description: The stress-ng program, as a name looked up in E(PATH) and the system directories, or a path.
    type: str
    default: stress-ng
  fail_on_missing:
    description: Fail when anything lacks, naming all of it in one message. When false, only RV(missing) and
      RV(ready) say so.
    type: bool
    default: true
notes:
  - Run it the way experiments will run, usually with C(become=true). Without become, a non-root user is reported
    as lacking root, and the cgroup and kernel log checks fail for the same reason.
seealso:
  - module: chaosfleet.stress.cgroup_info
'''

EXAMPLES = r'''
- name: What does each node lack?
  chaosfleet.stress.preflight:
  become: true

- name: Report only, and list the nodes that are not ready
  chaosfleet.stress.preflight:
    fail_on_missing: false
  become: true
  register: preflight

- name: Nodes that are not ready
  ansible.builtin.debug:
    msg: "{{ preflight.missing }}"
  when: not preflight.ready
'''

RETURN = r'''
ready:
  description: Whether every check passed.
  returned: always
  type: bool
missing:
  description: 'One line per check that failed: the check''s name, what lacks and how to fix it.'
  returned: always
  type: list
  elements: str
  sample:
    - "stress_ng: stress-ng not found; install it with the chaosfleet.stress.install playbook (role chaosfleet.stress.stress_ng)"
checks:
  description: Every check by name (C(privileges), C(cgroup_procs), C(kmsg), C(python), C(nsenter), C(stress_ng)),
    each with C(ok) and C(detail).
  returned: always
  type: dict
  sample:
    privileges: {ok: true, detail: running as root}
    kmsg: {ok: true, detail: /dev/kmsg is readable}
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.chaosfleet.stress.plugins.module_utils._preflight import lacking, run_checks


def main():
    module = AnsibleModule(
        argument_spec=dict(
            stress_ng=dict(type="str", default="stress-ng"),
            fail_on_missing=dict(type="bool", default=True),
        ),
        supports_check_mode=True,
    )
    checks = run_checks(stress_ng=module.params["stress_ng"])
    missing = lacking(checks)
    result = dict(changed=False, ready=not missing, missing=missing, checks=checks)
    if missing and module.params["fail_on_missing"]:
        module.fail_json(msg="this node lacks: " + "; ".join(missing), **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
