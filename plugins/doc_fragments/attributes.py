# -*- coding: utf-8 -*-
# Copyright (c) 2026, chaosfleet.stress contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):

    # Every module documents these attributes; each module sets its own support level.
    DOCUMENTATION = r'''
options: {}
attributes:
  check_mode:
    description: Can run in check mode and return changed status prediction without modifying target.
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check mode), when in diff mode.
  platform:
    description: Target OS/families that can be operated against.
    support: N/A
'''

    # Read-only modules: check mode is a no-op and they never report changed.
    INFO_MODULE = r'''
options: {}
attributes:
  check_mode:
    support: full
    details:
      - This action does not modify state.
  diff_mode:
    support: N/A
    details:
      - This action does not modify state.
'''

    # Modules that run on managed nodes and read the Linux cgroup filesystems.
    NODE = r'''
options: {}
attributes:
  platform:
    platforms: posix
    details:
      - Linux with cgroup v1, v2 or hybrid mounts. Runs with the node's Python 3.8 or later and the standard library only.
'''

    # Modules that run on the controller.
    CONTROLLER = r'''
options: {}
attributes:
  platform:
    platforms: posix
    details:
      - 'Runs on the controller (use C(delegate_to: localhost)); never on the managed nodes.'
'''
