# -*- coding: utf-8 -*-
# Copyright (c) 2026, chaosfleet.stress contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Plain data: values Ansible hands a controller plugin, copied into built-in types.

Ansible 2.19 hands out task args and variables as tagged subclasses of str, dict and list. JSON
encoders, Jinja2 and pickling can treat those differently from the built-ins, so the controller
plugins copy them first (the report's input, the stop guard's snapshot of the play).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type


def plain_value(value):
    """``value`` as plain dicts (with str keys), lists and scalars: JSON- and Jinja-safe."""
    if isinstance(value, dict):
        return dict((str(k), plain_value(v)) for k, v in value.items())
    if isinstance(value, (list, tuple, set, frozenset)):
        return [plain_value(v) for v in value]
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    return str(value)
