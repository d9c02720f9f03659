# -*- coding: utf-8 -*-
# Copyright (c) 2026, chaosfleet.stress contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The report's input: experiment results checked and put into one shape, slices, and the stop record.

Everything that reads what the report is given lives here, and it raises ReportError before
anything is written.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json

from ansible_collections.chaosfleet.stress.plugins.module_utils import _result
from ansible_collections.chaosfleet.stress.plugins.module_utils._summary import achieved_increase, summarize
from ansible_collections.chaosfleet.stress.plugins.plugin_utils._plain import plain_value

FORMAT_VERSION = _result.FORMAT_VERSION


class ReportError(Exception):
    """Bad input or an unwritable destination; nothing has been written."""


def _entries(results):
    """(host or None, value) pairs from a list of results or a host -> result mapping."""
    if isinstance(results, dict):
        if "format_version" in results:  # one result passed on its own
            return [(None, results)]
        return sorted(results.items())
    if isinstance(results, list):
        return [(None, r) for r in results]
    raise ReportError("results must be a list of experiment results or a mapping of host to result, got %s"
                      % type(results).__name__)


def collect(results, expected_hosts):
    """Sort the input into reported results, failed hosts and missing hosts.

    Returns (reported {host: result}, failed {host: message}, missing [host]).
    Raises ReportError for anything that is not a result of a readable format.
    """
    reported, failed, missing, problems, versions = {}, {}, [], [], []
    for index, (key, value) in enumerate(_entries(plain_value(results))):
        label = key if key is not None else "results[%d]" % index
        if value is None or value == {} or (isinstance(value, dict) and value.get("skipped")):
            if key is not None:
                missing.append(key)
            continue
        if not isinstance(value, dict):
            problems.append("%s is a %s, not an experiment result" % (label, type(value).__name__))
            continue
        if value.get("unreachable"):
            missing.append(key or value.get("host") or label)
            continue
        if value.get("failed") and "format_version" not in value:
            failed[key or value.get("host") or label] = str(value.get("msg") or "the task failed")
            continue
        if _result.is_incompatible_version(value):
            versions.append("%s has format_version %r" % (value.get("host") or label, value["format_version"]))
            continue
        problem = _result.validate(value)
        if problem and "format_version" not in value:
            problems.append("%s has %s" % (label, problem))
            continue
        host = key if key is not None else value.get("host")
        if not isinstance(host, str) or not host:
            problems.append("%s has no host name" % label)
            continue
        if host in reported:
            problems.append("host %s has more than one result" % host)
            continue
        if problem:
            problems.append("%s: %s" % (host, problem))
            continue
        reported[host] = _normalize(host, value)
    if versions:
        raise ReportError("results from an incompatible format version: %s; this collection reads format_version "
                          "%d. Nothing was written." % ("; ".join(versions), FORMAT_VERSION))
    if problems:
        raise ReportError("invalid results: %s. Nothing was written." % "; ".join(problems))
    for host in expected_hosts:
        if host not in reported and host not in failed and host not in missing:
            missing.append(host)
    if not reported and not failed and not missing:
        raise ReportError("nothing to report: results and expected_hosts are both empty")
    experiments = sorted(set(r["experiment"] for r in reported.values()))
    if len(experiments) > 1:
        raise ReportError("results are from different experiments (%s); write one report per experiment. "
                          "Nothing was written." % ", ".join(experiments))
    return reported, failed, missing


def _normalize(host, value):
    """Fill in what the node may have left out, so the templates see one shape."""
    result = dict(value)
    result["host"] = host
    result["samples"] = sorted(result["samples"], key=lambda s: s["t"])
    result["oom_kills"] = sorted(result.get("oom_kills") or [], key=lambda k: (k.get("t") or 0, k.get("pid") or 0))
    for key in ("target", "request", "steady_state", "recovery", "achieved"):
        result[key] = dict(result.get(key) or {})
    samples = result["samples"]
    started = result.get("started_at")
    ended = result.get("ended_at")
    if started is None and samples:
        started = result["started_at"] = samples[0]["t"]
    window = (started, ended)
    if not result.get("summary"):
        result["summary"] = summarize(samples, window=window)
    if not result["achieved"] and samples:
        during = [s for s in samples if (started is None or s["t"] >= started) and (ended is None or s["t"] <= ended)]
        result["achieved"] = achieved_increase(result.get("baseline"), during)
    for key in _result.TARGET_KEYS:
        result["target"].setdefault(key, None)
    result.setdefault("argv", [])
    result["oom_kills"] = [dict({"pid": None, "comm": "?", "victim": "unknown", "group_kill": False,
                                 "source": "?"}, **k) for k in result["oom_kills"]]
    result["steady_state"].setdefault("held", None)
    result["steady_state"]["probes"] = [dict({"name": "?", "ok": None, "detail": ""}, **p)
                                        for p in result["steady_state"].get("probes") or []]
    result["recovery"].setdefault("recovered", None)
    result["recovery"].setdefault("seconds", None)
    if result.get("search"):
        result["search"] = _normalize_search(result["search"])
    return result


_SEARCH_DEFAULTS = (
    ("mode", None), ("type", None), ("unit", None), ("limit_bytes", None), ("range", {}), ("levels", []),
    ("last_pass", None), ("first_fail", None), ("edge", None), ("headroom", None), ("headroom_label", None),
    ("headroom_percent", None), ("ended_by", None), ("confirmed", None), ("min_headroom", None),
    ("regression", None), ("verdict", None), ("notes", []),
)
_LEVEL_DEFAULTS = (
    ("index", None), ("level", None), ("label", None), ("experiment", None), ("outcome", None),
    ("failed_by", None), ("probes", []), ("confirmation", False),
)


def _normalize_search(search):
    """A search record with every key the report reads."""
    out = dict(search)
    for key, default in _SEARCH_DEFAULTS:
        if out.get(key) is None:
            out[key] = default
    levels = []
    for position, level in enumerate(out["levels"]):
        level = dict(level)
        for key, default in _LEVEL_DEFAULTS:
            if level.get(key) is None:
                level[key] = default
        if level["index"] is None:
            level["index"] = position
        level["working_set"] = dict({"mean_bytes": None, "max_bytes": None, "percent_of_limit": None},
                                    **(level.get("working_set") or {}))
        level["recovery"] = dict({"recovered": None, "seconds": None}, **(level.get("recovery") or {}))
        level["probes"] = [dict({"name": "?", "type": None, "ok": None, "pass_rate": None, "latency_ms": None,
                                 "value": None, "slo": None}, **p) for p in level["probes"]]
        levels.append(level)
    out["levels"] = levels
    out["range"] = dict(out["range"])
    out["notes"] = [str(n) for n in out["notes"]]
    return out


def apply_stop_record(results, record):
    """Mark each host's result with the stop guard's record of an interruption. The results (a list or a
    host -> result mapping) are copied, in the same shape."""
    if not record:
        return results

    def mark(host, value):
        if not isinstance(value, dict) or "format_version" not in value:
            return value
        entry = (record.get("hosts") or {}).get(host or value.get("host"))
        if entry is None:
            return value
        return dict(value, interrupted={
            "signal": record.get("signal"), "cause": record.get("cause"), "at": record.get("at"),
            "stopped": bool(entry.get("stopped")), "stopped_at": entry.get("stopped_at"), "msg": entry.get("msg") or ""})

    if isinstance(results, dict) and "format_version" not in results:
        return dict((host, mark(host, value)) for host, value in results.items())
    if isinstance(results, list):
        return [mark(None, value) for value in results]
    return mark(None, results)


def read_stop_record(path):
    """The stop guard's record (JSON) of an interrupted run."""
    try:
        with open(path) as handle:
            record = json.load(handle)
    except (OSError, ValueError) as exc:
        raise ReportError("cannot read the stop record %s: %s. Nothing was written." % (path, exc))
    if not isinstance(record, dict) or not record.get("interrupted") or not isinstance(record.get("hosts"), dict):
        raise ReportError("%s is not a stop record of chaosfleet.stress. Nothing was written." % path)
    return record


def from_slices(paths):
    """The results and expected hosts of one experiment run as several slices (AWX job slices, serial
    batches, several controllers), from the JSON report each slice wrote.

    Every slice lists the hosts it did not run as missing; a host counts as missing only when no
    slice has a result or a failure for it. Returns (results {host: result or failure}, expected hosts).
    """
    results, expected = {}, set()
    for path in paths:
        try:
            with open(path) as handle:
                document = json.load(handle)
        except (IOError, OSError, ValueError) as exc:
            raise ReportError("cannot read the slice report %s: %s. Nothing was written." % (path, exc))
        if not isinstance(document, dict) or not isinstance(document.get("results"), dict):
            raise ReportError("%s is not a JSON report of chaosfleet.stress.stress_report. Nothing was written." % path)
        if _result.is_incompatible_version(document):
            raise ReportError("%s has format_version %r; this collection reads %d. Nothing was written."
                              % (path, document.get("format_version"), FORMAT_VERSION))
        hosts = document.get("hosts") or {}
        expected.update(hosts.get("ok") or [])
        expected.update(hosts.get("missing") or [])
        failures = dict((f["host"], _result.failed(f["msg"])) for f in hosts.get("failed") or [])
        expected.update(failures)
        for host, value in list(document["results"].items()) + list(failures.items()):
            if host in results:
                raise ReportError("host %s has a result in more than one slice (%s). Nothing was written."
                                  % (host, path))
            results[host] = value
    return results, sorted(expected)
