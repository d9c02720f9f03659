# -*- coding: utf-8 -*-
# Copyright (c) 2026, chaosfleet.stress contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the rollback role stopped on a node, from its stressor state=absent results (for the
rollback_summary filter). Controller-side; the role only sequences its tasks.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type


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
