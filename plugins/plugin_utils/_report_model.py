# -*- coding: utf-8 -*-
# Copyright (c) 2026, chaosfleet.stress contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The report's model: from checked results to what the templates, the JSON document and set_stats show."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

from ansible_collections.chaosfleet.stress.plugins.module_utils._summary import summarize
from ansible_collections.chaosfleet.stress.plugins.module_utils._units import format_bytes
from ansible_collections.chaosfleet.stress.plugins.plugin_utils import _report_headroom
from ansible_collections.chaosfleet.stress.plugins.plugin_utils._report_charts import cpu_chart, memory_chart
from ansible_collections.chaosfleet.stress.plugins.plugin_utils._report_input import FORMAT_VERSION, collect
from ansible_collections.chaosfleet.stress.plugins.plugin_utils._report_text import (
    bytes_text, recovery_terms, share_text, time_label, utc_text,
)
from ansible_collections.chaosfleet.stress.plugins.plugin_utils._report_verdicts import (
    baseline_mean, ended_text, host_verdict, interrupted_text, overall_verdict, requested_and_achieved,
)


def _recovery_text(result):
    rec = result["recovery"]
    if rec.get("recovered") is True:
        text = time_label(round(rec.get("seconds") or 0, 1))
        if rec.get("within_percent") is not None:
            text += " (within %g%%)" % rec["within_percent"]
        return text
    if rec.get("recovered") is False:
        return "not back " + recovery_terms(rec)
    if result.get("reason") == "target_gone":
        return "not measured: target gone"
    return "not measured"


def host_view(result, options):
    verdict, notes = host_verdict(result, options["achieved_min_percent"], options["fail_on_app_oom"])
    stress = requested_and_achieved(result)
    # The figures are over the stress window, whatever window the node summarized.
    summary = summarize(result["samples"], window=(result.get("started_at"), result.get("ended_at")))
    ws = summary.get("working_set_bytes") or {}
    kills = result["oom_kills"]
    t0 = result.get("started_at") or 0
    limit = result["target"].get("limit_bytes")
    psi = summary.get("psi_memory_some_avg10")
    return {
        "host": result["host"],
        "id": re.sub(r"[^A-Za-z0-9_-]", "-", result["host"]),
        "result": result,
        "verdict": verdict,
        "notes": notes,
        "steady_state": _report_headroom.steady_state_text(result["search"]) if result.get("search")
        else {True: "held", False: "broke", None: "not probed"}[result["steady_state"].get("held")],
        "recovery": _recovery_text(result),
        "requested": stress["requested"],
        "achieved": stress["achieved"],
        "achieved_share": stress["share"],
        "achieved_percent": stress["percent"],
        "ended": ended_text(result),
        "interrupted": interrupted_text(result.get("interrupted")),
        "reason": result.get("reason"),
        "status": result.get("status"),
        "started": utc_text(result.get("started_at")),
        "ended_at": utc_text(result.get("ended_at")),
        "duration": time_label(round(result["ended_at"] - t0, 1)) if result.get("ended_at") and t0 else "n/a",
        "peak": bytes_text(ws.get("max")),
        "peak_of_limit": share_text(ws.get("max"), limit),
        "limit": format_bytes(limit) if limit else "no limit",
        "baseline": bytes_text(baseline_mean(result)),
        "cpu_cores": "%.2f" % summary["cpu_cores"] if summary.get("cpu_cores") is not None else "n/a",
        "quota": "%.2f" % result["target"]["cpu_quota_cores"] if result["target"].get("cpu_quota_cores") else "none",
        "throttled": "%d%%" % round(100 * summary["throttled_ratio"]) if summary.get("throttled_ratio") is not None
        else "n/a",
        "psi": "%.1f" % psi["max"] if psi else None,
        "app_kills": sum(1 for k in kills if k.get("victim") == "app"),
        "stressor_kills": sum(1 for k in kills if k.get("victim") != "app"),
        "group_kill": any(k.get("group_kill") for k in kills),
        "kills": [dict(k, rel=time_label(round(k["t"] - t0, 1)) if k.get("t") is not None else "?") for k in kills],
        "memory_chart": memory_chart(result),
        "cpu_chart": cpu_chart(result),
        "headroom": _report_headroom.view(result),
        "headroom_stats": _report_headroom.entry(result, verdict) if result.get("search") else None,
    }


def build(params):
    """Check the input and compute everything the templates and the task result need."""
    reported, failed, missing = collect(params["results"], params.get("expected_hosts") or [])
    options = {"achieved_min_percent": params.get("achieved_min_percent", 80.0),
               "fail_on_app_oom": params.get("fail_on_app_oom", True)}
    hosts = [host_view(reported[h], options) for h in sorted(reported)]
    experiment = hosts[0]["result"]["experiment"] if hosts else None
    title = params.get("title") or ("Stress experiment %s" % experiment if experiment else "Stress experiment report")
    starts = [h["result"]["started_at"] for h in hosts if h["result"].get("started_at") is not None]
    verdict = overall_verdict([h["verdict"] for h in hosts], failed, missing)
    record = params.get("stop_record_data")
    return {
        "title": title,
        "experiment": experiment,
        "verdict": verdict,
        "interrupted": {"signal": record.get("signal"), "cause": record.get("cause"), "at": record.get("at"),
                        "at_text": utc_text(record.get("at")), "unreachable": record.get("unreachable") or [],
                        "hosts": record.get("hosts") or {}} if record else None,
        "started": utc_text(min(starts)) if starts else "n/a",
        "hosts": hosts,
        "ok": sorted(reported),
        "failed": [{"host": h, "msg": failed[h]} for h in sorted(failed)],
        "missing": sorted(set(missing)),
        "options": options,
        "format_version": FORMAT_VERSION,
    }


def _k8s_names(result):
    """{"kubernetes": {namespace, pod, container, node}} when k8s_targets picked the target, else {}."""
    names = (result.get("target") or {}).get("kubernetes")
    if not isinstance(names, dict) or not names:
        return {}
    return {"kubernetes": dict((k, names.get(k)) for k in ("namespace", "pod", "container", "node"))}


def _per_host(host):
    out = {
        "verdict": host["verdict"],
        "notes": host["notes"],
        "ended": host["reason"],
        "steady_state_held": host["result"]["steady_state"].get("held"),
        "recovery_seconds": host["result"]["recovery"].get("seconds"),
        "achieved_percent": round(host["achieved_percent"], 1) if host["achieved_percent"] is not None else None,
        "oom_kills": {"app": host["app_kills"], "stressor": host["stressor_kills"]},
    }
    out.update(_k8s_names(host["result"]))
    if host["headroom_stats"]:
        out["headroom"] = host["headroom_stats"]
    return out


def stats(model, paths):
    """The compact summary for set_stats (AWX artifacts) and the task result."""
    return {
        "experiment": model["experiment"],
        "title": model["title"],
        "verdict": model["verdict"],
        "achieved_min_percent": model["options"]["achieved_min_percent"],
        "hosts": {"ok": model["ok"], "missing": model["missing"], "failed": [f["host"] for f in model["failed"]]},
        "per_host": dict((h["host"], _per_host(h)) for h in model["hosts"]),
        "reports": paths,
    }


def headroom_stats(model):
    """{experiment: {host: {headroom, headroom_label, unit, headroom_percent, first_fail, ended_by, confirmed,
    required, regression_ok, verdict}}} for the hosts that ran a headroom search, {} when none did: what the
    role publishes with set_stats as chaosfleet_headroom, so AWX can track the headroom from run to run."""
    hosts = dict((h["host"], h["headroom_stats"]) for h in model["hosts"] if h["headroom_stats"])
    return {str(model["experiment"]): hosts} if hosts else {}


def _verdict_entry(host):
    out = {"verdict": host["verdict"], "notes": host["notes"], "ended": host["ended"],
           "requested": host["requested"], "achieved": host["achieved"],
           "achieved_percent": host["achieved_percent"], "recovery": host["recovery"]}
    if host["headroom"]:
        out["headroom"] = dict(host["headroom_stats"], answer=host["headroom"]["answer"])
    return out


def json_document(model):
    return {
        "format_version": FORMAT_VERSION,
        "title": model["title"],
        "experiment": model["experiment"],
        "verdict": model["verdict"],
        "interrupted": dict((k, v) for k, v in model["interrupted"].items() if k != "at_text")
        if model.get("interrupted") else None,
        "hosts": {"ok": model["ok"], "missing": model["missing"], "failed": model["failed"]},
        "verdicts": dict((h["host"], _verdict_entry(h)) for h in model["hosts"]),
        "results": dict((h["host"], h["result"]) for h in model["hosts"]),
    }
