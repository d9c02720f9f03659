# -*- coding: utf-8 -*-
# Copyright (c) 2026, chaosfleet.stress contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The experiment result contract: build, merge, validate, and rank verdicts.

One host's result of one experiment. The node builds it (cgroup_sample reads
what the supervisor recorded), the role merges what the controller saw
(baseline, probes, recovery, abort, heartbeats), the report and the game day
read it. docs/schemas/report.schema.json documents the report JSON built
from it.

Standard library only: the node imports it too.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

FORMAT_VERSION = 1

# Worst last. The overall verdict of several hosts, experiments or slices is the worst one.
VERDICTS = ("pass", "inconclusive", "error", "fail")
VERDICT_RANK = dict((name, rank) for rank, name in enumerate(VERDICTS))

# Every key of a result, with the value it has when nobody filled it in.
_DEFAULTS = (
    ("format_version", FORMAT_VERSION),
    ("host", None),
    ("experiment", None),
    ("target", {}),
    ("request", {}),
    ("argv", []),
    ("started_at", None),
    ("ended_at", None),
    ("deadline", None),
    ("status", None),
    ("reason", None),
    ("baseline", None),
    ("samples", []),
    ("summary", None),
    ("oom_kills", []),
    ("achieved", {}),
    ("steady_state", {"held": None, "probes": []}),
    ("recovery", {"recovered": None, "seconds": None, "within_percent": None, "timeout_seconds": None}),
    ("abort_reason", None),
    ("controller_error", None),
    ("heartbeat", None),
    # Set when the playbook was interrupted or killed and the stop guard stopped the stress:
    # {signal, cause, at, stopped, stopped_at, msg} (plugins/plugin_utils/_stop_guard.py).
    ("interrupted", None),
    # Set by a headroom search (experiment_search): the levels it ran and the edge it found (docs/schemas).
    ("search", None),
)
KEYS = tuple(key for key, _value in _DEFAULTS)
# What the controller adds to the node's record (merge()).
CONTROLLER_KEYS = ("baseline", "steady_state", "recovery", "abort_reason", "controller_error", "heartbeat")
# Large or node-internal parts left out of job artifacts.
BULKY_KEYS = ("samples", "argv")
# A result's target: who it is (read from the resolved cgroup) and its limits (result key, limits key).
TARGET_IDENTITY_KEYS = ("path", "container_id", "pod_uid", "qos_class", "cgroup_version")
TARGET_LIMIT_KEYS = (("limit_bytes", "memory_limit_bytes"), ("cpu_quota_cores", "cpu_quota_cores"),
                     ("oom_group", "oom_group"))
TARGET_KEYS = TARGET_IDENTITY_KEYS + tuple(key for key, _source in TARGET_LIMIT_KEYS)


class ResultError(ValueError):
    """Something that is not a result of this format."""


def _copy(value):
    if isinstance(value, dict):
        return dict((k, _copy(v)) for k, v in value.items())
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


def build(**fields):
    """A complete result: the given fields over the defaults. Unknown keys are a programming error."""
    unknown = sorted(set(fields) - set(KEYS))
    if unknown:
        raise ResultError("unknown result keys: %s" % ", ".join(unknown))
    out = dict((key, _copy(value)) for key, value in _DEFAULTS)
    out.update(fields)
    return out


def failed(msg):
    """What stands for a host that has no result (not started, lost, failed)."""
    return {"failed": True, "msg": str(msg)}


def target_of(target, limits):
    """The result's target (TARGET_KEYS) from the resolved cgroup and its limits."""
    out = dict((key, (target or {}).get(key)) for key in TARGET_IDENTITY_KEYS)
    out.update((key, (limits or {}).get(source)) for key, source in TARGET_LIMIT_KEYS)
    return out


def probe_broke(failures, threshold, recovery_failed=False):
    """The steady-state rule: a probe breaks when it failed more than ``threshold`` checks during the
    stress, or any check after recovery. The monitor's abort, the verdict and its explanation ask here."""
    return failures > threshold or bool(recovery_failed)


def merge(node_result, experiment, host, baseline=None, probes=None, probe_threshold=0, recovery=None,
          abort_reason=None, controller_error=None, heartbeat=None):
    """The node's record plus what the controller observed.

    ``probes`` is [{name, checks, failures, last_failure}] from the probe rounds during the
    stress (None: the experiment has no probes), optionally with ``recovery_failed`` (a check
    after recovery failed: the probe broke too) and the figures and ``detail`` to report. A stress the controller stopped because of
    an abort is reported as aborted, not as a plain stop.
    """
    result = build(**dict((k, v) for k, v in node_result.items() if k in KEYS))
    result.update(experiment=experiment, host=host, abort_reason=abort_reason or None,
                  controller_error=controller_error or None, heartbeat=heartbeat)
    if baseline is not None:
        result["baseline"] = baseline
    if probes is not None:
        # Figures the controller adds (type, pass_rate, latency_ms, phases) pass through.
        judged = [dict(p, ok=not probe_broke(p["failures"], probe_threshold, p.get("recovery_failed")),
                       detail=p.get("detail") or "baseline passed; %d of %d checks failed during the stress%s" % (
                           p["failures"], p["checks"], (", last: %s" % p["last_failure"]) if p["failures"] else ""))
                  for p in probes]
        result["steady_state"] = {"held": all(p["ok"] for p in judged) if judged else None, "probes": judged}
    if recovery is not None:
        result["recovery"] = dict(recovery)
    if abort_reason and result.get("reason") in ("stop", None):
        result.update(status="aborted", reason="abort")
    return result


def strip(result):
    """The result without its bulky parts (samples, argv), for job artifacts."""
    return dict((k, v) for k, v in result.items() if k not in BULKY_KEYS)


def validate(result):
    """None when ``result`` is a readable result of this format, else what is wrong (one line)."""
    if not isinstance(result, dict):
        return "a %s, not an experiment result" % type(result).__name__
    if "format_version" not in result:
        return "no format_version: not an experiment result from chaosfleet.stress"
    version = result["format_version"]
    if isinstance(version, bool) or version != FORMAT_VERSION:
        return "format_version %r (this collection reads %d)" % (version, FORMAT_VERSION)
    if not isinstance(result.get("experiment"), str) or not result["experiment"]:
        return "experiment name missing"
    samples = result.get("samples")
    if not isinstance(samples, list):
        return "samples must be a list"
    for sample in samples:
        if not isinstance(sample, dict) or isinstance(sample.get("t"), bool) \
                or not isinstance(sample.get("t"), (int, float)):
            return "every sample needs a numeric t"
    kills = result.get("oom_kills") or []
    if not isinstance(kills, list) or not all(isinstance(k, dict) for k in kills):
        return "oom_kills must be a list of OOM kill records"
    for key in ("target", "request", "steady_state", "recovery", "achieved", "baseline", "summary", "heartbeat",
                "interrupted", "search"):
        if not isinstance(result.get(key) or {}, dict):
            return "%s must be a mapping" % key
    probes = (result.get("steady_state") or {}).get("probes") or []
    if not isinstance(probes, list) or not all(isinstance(p, dict) for p in probes):
        return "steady_state.probes must be a list of mappings"
    levels = (result.get("search") or {}).get("levels") or []
    if not isinstance(levels, list) or not all(isinstance(level, dict) for level in levels):
        return "search.levels must be a list of mappings"
    return None


def is_incompatible_version(result):
    """True for a result of another format_version (reported apart: nothing is written then)."""
    version = result.get("format_version") if isinstance(result, dict) else None
    return version is not None and (isinstance(version, bool) or version != FORMAT_VERSION)


def worst(verdicts):
    """The worst of several verdicts; 'error' when there are none."""
    ranks = [VERDICT_RANK[v] for v in verdicts]
    return VERDICTS[max(ranks)] if ranks else "error"
