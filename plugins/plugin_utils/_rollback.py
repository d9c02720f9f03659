# -*- coding: utf-8 -*-
# Copyright (c) 2026, chaosfleet.stress contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the rollback role stopped on a node, from its stressor state=absent results (for the
rollback_summary filter). Controller-side; the role only sequences its tasks.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.chaosfleet.stress.plugins.module_utils._units import parse_names


GLOB_CHARACTERS = "*?["


def selection(experiments):
    """Which experiments the rollback role ends, from ``rollback_experiments``: a list, or one comma-separated
    string as an AWX survey's text field gives it. {names, patterns, list_node}: with no names, or a shell-style
    pattern among them, the node's experiments are listed and matched (``patterns``, ``*`` for all); otherwise
    the names are stopped as they are (a name the node does not have is left out of the report)."""
    names = parse_names(experiments)
    list_node = not names or any(c in name for name in names for c in GLOB_CHARACTERS)
    return {"names": names, "patterns": names or ["*"], "list_node": list_node}


def entry(stop):
    """One experiment's line of rollback_report from one looped stressor result, or None when the
    node did not have it (status absent)."""
    if stop.get("status", "") == "absent":
        return None
    return {"name": stop.get("item"), "stopped": bool(stop.get("changed", False)),
            "status": stop.get("status") or "unknown", "reason": stop.get("reason"),
            "processes_left": (stop.get("outcome") or {}).get("processes_left") or [],
            "error": stop.get("msg") if stop.get("failed") else None}


def summary(results, host):
    """{report, msg, leftovers} of one node: the rollback_report fact, the line the role shows
    and the experiments whose stress processes survived the stop."""
    report = [e for e in (entry(stop) for stop in results or []) if e is not None]
    if not report:
        msg = "%s: no experiments" % host
    else:
        ended = [e for e in report if not e["stopped"]]
        msg = "%s: stopped %s; already ended: %s" % (
            host, [e["name"] for e in report if e["stopped"]] or "nothing",
            ", ".join("%s (%s, %s)" % (e["name"], e["status"], e["reason"]) for e in ended) or "none")
    return {"report": report, "msg": msg, "leftovers": [e["name"] for e in report if e["processes_left"]]}
