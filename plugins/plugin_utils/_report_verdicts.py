# -*- coding: utf-8 -*-
# Copyright (c) 2026, chaosfleet.stress contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a host's result amounts to: what was asked and achieved, how the stress ended, and the verdicts."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.chaosfleet.stress.plugins.module_utils import _result
from ansible_collections.chaosfleet.stress.plugins.module_utils._units import format_bytes, format_duration
from ansible_collections.chaosfleet.stress.plugins.plugin_utils._report_text import recovery_terms, utc_text

_REASONS = {
    "deadline": "ran to its deadline",
    "stop": "stopped on request",
    "heartbeat": "stopped: controller heartbeat lost",
    "target_gone": "target container went away",
    "signal": "stopped by a signal on the node",
    "abort": "aborted",
    "attach_failed": "could not attach to the target",
}


def baseline_mean(result):
    stats = (result.get("baseline") or {}).get("working_set_bytes") or {}
    return stats.get("mean")


def requested_cores(result):
    """Cores the experiment asked for: its load is a share of the target's quota, not of one CPU per worker."""
    request = result["request"]
    if request.get("cpu_cores") is not None:
        return request["cpu_cores"]
    load = request.get("cpu_load_percent")
    load = 100.0 if load is None else load
    quota = result["target"].get("cpu_quota_cores")
    return (quota if quota else (request.get("workers") or 1)) * load / 100.0


def requested_and_achieved(result):
    """What was asked and what the stress reached, as texts, plus the share used for the verdict.

    ``percent`` is achieved as a share of what could be achieved: the request,
    capped by the room the memory limit leaves above the baseline, or by the CPU
    quota. A stress that asks for more than the limit allows is not blamed for it.
    """
    request, target, achieved = result["request"], result["target"], result["achieved"]
    kind = request.get("kind") or "memory"
    out = {"requested": "n/a", "achieved": "n/a", "share": "", "percent": None}
    if kind == "memory":
        base = baseline_mean(result)
        want = request.get("memory_bytes")
        if want is not None:
            out["requested"] = "+%s" % format_bytes(want)
        elif request.get("target_usage_bytes") is not None and base is not None:
            want = request["target_usage_bytes"] - base
            out["requested"] = "to %s (+%s)" % (format_bytes(request["target_usage_bytes"]), format_bytes(want))
        if want is not None and request.get("ramp_seconds"):
            out["requested"] += ", ramp %s" % format_duration(request["ramp_seconds"])
        got = achieved.get("working_set_increase_bytes")
        if got is None:
            return out
        out["achieved"] = "+%s" % format_bytes(got)
        if want:
            out["share"] = "%d%% of requested" % round(100.0 * got / want)
            room = want
            if base is not None and target.get("limit_bytes"):
                room = min(want, target["limit_bytes"] - base)
            out["percent"] = 100.0 * got / room if room > 0 else None
        return out
    if kind == "cpu":
        load = request.get("cpu_load_percent")
        want = requested_cores(result)
        out["requested"] = "%g%% of %s = %.2f cores" % (
            load if load is not None else 100,
            "the %.2f-core quota" % target["cpu_quota_cores"] if target.get("cpu_quota_cores") else "the node's CPUs",
            want)
        got = achieved.get("cpu_cores")
        if got is None:
            return out
        out["achieved"] = "%.2f cores" % got
        quota = target.get("cpu_quota_cores")
        if quota and quota < want:
            out["percent"] = 100.0 * got / quota
            out["share"] = "%d%% of the %.2f-core quota" % (round(out["percent"]), quota)
        elif want:
            out["percent"] = 100.0 * got / want
            out["share"] = "%d%% of requested" % round(out["percent"])
        return out
    out["requested"] = "%d %s worker%s" % (request.get("workers") or 1, kind,
                                           "" if (request.get("workers") or 1) == 1 else "s")
    return out


def ended_text(result):
    reason = result.get("reason") or ""
    if result.get("status") == "running":
        return "still running when collected"
    if reason.startswith("guard:"):
        return "stopped by guard %s" % reason.split(":", 1)[1]
    return _REASONS.get(reason, reason or "unknown")


def interrupted_text(interrupted):
    """One line on how an interruption ended this host's stress, or ''."""
    if not interrupted:
        return ""
    why = interrupted.get("signal") or interrupted.get("cause") or "interrupted"
    if interrupted.get("stopped"):
        return "interrupted (%s) at %s; the stop guard stopped it at %s (%.1f s later)" % (
            why, utc_text(interrupted.get("at")), utc_text(interrupted.get("stopped_at")),
            max(0.0, (interrupted.get("stopped_at") or 0) - (interrupted.get("at") or 0)))
    return "interrupted (%s) at %s; the stop guard could not reach it (%s), its dead-man ended the stress" % (
        why, utc_text(interrupted.get("at")), interrupted.get("msg") or "no answer")


def search_verdict(search):
    """(verdict, notes) of a headroom search.

    Finding the edge is what a search is for, so a level that broke the steady state fails
    nothing. A search fails when the target did not recover after a level, or when its headroom
    is below the required minimum; it is an error when a level could not run. The search states
    its own verdict; these rules stand in when it does not.
    """
    notes = list(search.get("notes") or [])
    if search.get("verdict") in ("pass", "fail", "error"):
        return search["verdict"], notes
    regression = search.get("regression") or {}
    if search.get("ended_by") == "error":
        return "error", notes + ["the search ended on a level that could not run"]
    if search.get("ended_by") == "recovery":
        return "fail", notes + ["the target did not recover after a level; the search was aborted"]
    if regression.get("ok") is False:
        return "fail", notes + ["headroom below the required %s" % (regression.get("required_label")
                                                                    or regression.get("required"))]
    return "pass", notes


def host_verdict(result, achieved_min_percent=80.0, fail_on_app_oom=True):
    """pass / fail / inconclusive / error for one host, with the notes that explain it."""
    notes = []
    interrupted = interrupted_text(result.get("interrupted"))
    if interrupted:
        notes.append(interrupted)
    if result.get("search"):
        verdict, search_notes = search_verdict(result["search"])
        if interrupted:  # an interrupted search did not run its course either
            verdict = _result.worst([verdict, "inconclusive"])
        return verdict, notes + search_notes
    held = result["steady_state"].get("held")
    recovered = result["recovery"].get("recovered")
    app_kills = [k for k in result["oom_kills"] if k.get("victim") == "app"]
    failing = False
    if held is False:
        broken = ["probe %s %s" % (p.get("name"), p.get("detail")) if p.get("detail") else "probe %s" % p.get("name")
                  for p in result["steady_state"]["probes"] if p.get("ok") is False]
        notes.append("steady state broke" + (": " + "; ".join(broken) if broken else ""))
        failing = True
    if recovered is False:
        notes.append("working set not back " + recovery_terms(result["recovery"]))
        failing = True
    if app_kills:
        notes.append("OOM killer took app process%s %s" % (
            "es" if len(app_kills) > 1 else "",
            ", ".join("%s (pid %s)" % (k.get("comm"), k.get("pid")) for k in app_kills)))
        failing = failing or fail_on_app_oom
    percent = requested_and_achieved(result)["percent"]
    under = percent is not None and percent < achieved_min_percent
    if under:
        notes.append("stress reached only %d%% of what was asked (capped by the limit or quota)" % round(percent))
    if result.get("reason") == "attach_failed" or not result["samples"]:
        notes.append("no samples recorded" if not result["samples"] else "could not attach to the target")
        verdict = "error"
    elif failing:
        verdict = "fail"
    elif result.get("status") == "running":
        notes.append("result collected while the stress was still running")
        verdict = "inconclusive"
    elif interrupted:
        verdict = "inconclusive"  # the experiment did not run its course
    elif under:
        verdict = "inconclusive"
    elif held is None:
        notes.append("no steady-state probes")
        verdict = "inconclusive"
    else:
        verdict = "pass"
    return verdict, notes


def overall_verdict(verdicts, failed, missing):
    """The worst host verdict; a failed host counts as error, a missing one as inconclusive."""
    verdicts = list(verdicts) + (["error"] if failed else []) + (["inconclusive"] if missing else [])
    return _result.worst(verdicts)
