# -*- coding: utf-8 -*-
# Copyright (c) 2026, chaosfleet.stress contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Controller side of the steady-state probes: Kubernetes probes, one round, and the tally.

The HTTP, command and Prometheus checks and the probe spec live in
module_utils/_probe_checks.py, because probes with ``run_on: node`` run inside the
node-side module chaosfleet.stress.probe. This file adds what only the controller
does: the Kubernetes probe (the kubernetes client through _k8s_client.py), putting
a round together in the order the probes were given, and the tally of every round
of an experiment (pass rate and latency per probe and per phase), which is what
the report and the verdict read.

The tally is a plain dict that the role passes back into the next call, so the
bookkeeping is one pure function, ``update_tally``, tested as a table.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import time

from ansible_collections.chaosfleet.stress.plugins.module_utils import _result
from ansible_collections.chaosfleet.stress.plugins.module_utils._k8s_auth import missing_partner, with_environment
from ansible_collections.chaosfleet.stress.plugins.module_utils._probe_checks import (
    ProbeSpecError, normalize_all, result, run_local, scrub, secrets_of,
)

MAX_LATENCIES = 2000  # latencies kept per probe for the percentiles (a 3 h run at 5 s ticks)


# ---------------------------------------------------------------- Kubernetes probe


def _ready(pod):
    for condition in (pod.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Ready":
            return condition.get("status") == "True"
    return False


def pod_states(pods):
    """[{pod, ready, phase, restarts: {container: count}}] from PodList items."""
    out = []
    for pod in pods:
        statuses = (pod.get("status") or {}).get("containerStatuses") or []
        out.append({"pod": (pod.get("metadata") or {}).get("name", "?"),
                    "phase": (pod.get("status") or {}).get("phase", "Unknown"),
                    "ready": _ready(pod),
                    "restarts": dict((s.get("name", "?"), int(s.get("restartCount") or 0)) for s in statuses)})
    return sorted(out, key=lambda p: p["pod"])


def judge_kubernetes(probe, states, baseline, latency, error=None):
    """Judge pod states against the probe; returns (result, baseline).

    ``baseline`` maps "pod/container" to the restart count first seen in this experiment
    (None before the first round). Restarts are counted from there; a pod that appears
    later (a replacement) counts all its restarts. The returned baseline is the one to
    keep: the given one, or the counts seen now on the first round.
    """
    where = probe["pod"] or "pods matching %s" % probe["label_selector"]
    if states is None:
        return result(probe, False, latency, "cannot read %s in namespace %s: %s"
                      % (where, probe["namespace"], error), {}), baseline
    seen = dict(("%s/%s" % (s["pod"], c), n) for s in states for c, n in s["restarts"].items())
    if baseline is None:
        baseline = dict(seen)
    restarts = dict((key, n - baseline.get(key, 0)) for key, n in seen.items())
    observed = {"pods": len(states), "ready": sum(1 for s in states if s["ready"]),
                "restarts": dict((k, v) for k, v in restarts.items() if v)}
    problems = []
    if len(states) < probe["min_pods"]:
        problems.append("%d pod(s) found in namespace %s, at least %d wanted"
                        % (len(states), probe["namespace"], probe["min_pods"]))
    if probe["require_ready"]:
        unready = ["%s (%s)" % (s["pod"], s["phase"]) for s in states if not s["ready"]]
        if unready:
            problems.append("not Ready: %s" % ", ".join(unready[:5]))
    over = ["%s +%d" % (k, v) for k, v in sorted(restarts.items()) if v > probe["max_restarts"]]
    if over:
        problems.append("restarted more than %d time(s): %s" % (probe["max_restarts"], ", ".join(over[:5])))
    slow = ""
    limit = probe.get("max_latency")
    if not problems and limit is not None and latency > limit:
        slow = "latency %.0f ms over max_latency %.0f ms" % (latency * 1000, limit * 1000)
        problems.append(slow)
    if problems:
        return result(probe, False, latency, "; ".join(problems), observed), baseline
    return result(probe, True, latency, "%d pod(s) Ready, no restarts over %d, in %.0f ms"
                  % (len(states), probe["max_restarts"], latency * 1000), observed), baseline


def auth_params(auth, environ=None):
    """The probe's auth options with the K8S_AUTH_* fallbacks, read as k8s_targets reads them (_k8s_auth).

    Raises ValueError for a yes/no variable that is neither: a typo must not turn TLS checks off.
    """
    return with_environment(auth, environ)


def check_kubernetes(probe, baseline, clock=time.monotonic):
    """Read the probe's pods through the API; returns (result, baseline)."""
    from ansible_collections.chaosfleet.stress.plugins.module_utils._k8s_client import (
        HAS_KUBERNETES, AuthError, K8sReader, build_configuration, release_loader_files)
    from ansible_collections.chaosfleet.stress.plugins.module_utils._k8s_select import ApiError
    started = clock()
    if not HAS_KUBERNETES:
        return judge_kubernetes(probe, None, baseline, 0.0, "the kubernetes Python package is not installed "
                                "on the controller")
    try:
        params = auth_params(probe.get("auth") or {})
    except ValueError as exc:
        return judge_kubernetes(probe, None, baseline, 0.0, str(exc))
    if missing_partner(params):
        return judge_kubernetes(probe, None, baseline, 0.0, "the auth options go together: %s"
                                % missing_partner(params))
    try:
        reader = K8sReader(build_configuration(params), params, timeout=max(1.0, probe["timeout"]))
        if probe["pod"]:
            pods = reader.list_pods(probe["namespace"], field_selector="metadata.name=%s" % probe["pod"])
        else:
            pods = reader.list_pods(probe["namespace"], label_selector=probe["label_selector"])
    except (AuthError, ApiError) as exc:
        return judge_kubernetes(probe, None, baseline, clock() - started, str(exc))
    finally:
        release_loader_files()
    return judge_kubernetes(probe, pod_states(pods), baseline, clock() - started)


# ---------------------------------------------------------------- one round


def plan(specs):
    """Checked probes split by where they run: (all, node probes, controller probes)."""
    probes = normalize_all(specs)
    node = [p for p in probes if p["run_on"] == "node"]
    controller = [p for p in probes if p["run_on"] == "controller"]
    return probes, node, controller


def run_controller(probes, tally):
    """Run the controller's probes here; Kubernetes restart baselines come from and go to the tally."""
    out = []
    baselines = dict((tally or {}).get("k8s_baselines") or {})
    for probe in probes:
        if probe["type"] == "kubernetes":
            checked, baselines[probe["name"]] = check_kubernetes(probe, baselines.get(probe["name"]))
            out.append(checked)
        else:
            out.extend(run_local([probe]))
    return out, baselines


def node_failure(probes, message):
    """Results for node probes that could not run because the node could not run the module."""
    return [result(p, False, None, "could not run on the node: %s" % message) for p in probes]


def in_order(probes, results):
    by_name = dict((r["name"], r) for r in results)
    return [by_name[p["name"]] for p in probes if p["name"] in by_name]


# ---------------------------------------------------------------- tally


def _percentile(values, share):
    if not values:
        return None
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, int(round(share * (len(ordered) - 1)))))
    return ordered[index]


def update_tally(tally, phase, results, baselines=None):
    """The tally after one more round; ``tally`` is not changed.

    Per probe: checks, passes and latencies overall and per phase, and the last failure
    (phase and reason). ``baselines`` replaces the Kubernetes restart baselines.
    """
    tally = tally or {}
    probes = dict((name, dict(entry, phases=dict((k, dict(v)) for k, v in entry.get("phases", {}).items()),
                              latencies=list(entry.get("latencies", []))))
                  for name, entry in (tally.get("probes") or {}).items())
    for checked in results:
        entry = probes.setdefault(checked["name"], {"type": checked["type"], "checks": 0, "passed": 0,
                                                    "latencies": [], "phases": {}, "last_failure": None})
        stage = entry["phases"].setdefault(phase, {"checks": 0, "passed": 0})
        stage["latencies"] = list(stage.get("latencies") or [])
        stage["values"] = list(stage.get("values") or [])
        entry["checks"] += 1
        stage["checks"] += 1
        if checked["ok"]:
            entry["passed"] += 1
            stage["passed"] += 1
        else:
            entry["last_failure"] = {"phase": phase, "detail": checked["detail"]}
        if checked.get("latency_ms") is not None:
            entry["latencies"] = (entry["latencies"] + [checked["latency_ms"]])[-MAX_LATENCIES:]
            stage["latencies"] = (stage["latencies"] + [checked["latency_ms"]])[-MAX_LATENCIES:]
        value = (checked.get("observed") or {}).get("value")
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            stage["values"] = (stage["values"] + [value])[-MAX_LATENCIES:]
    out = {"rounds": int(tally.get("rounds") or 0) + 1, "probes": probes,
           "k8s_baselines": dict(tally.get("k8s_baselines") or {})}
    if baselines is not None:
        out["k8s_baselines"] = dict(baselines)
    return out


def phase_figures(stage):
    """A phase's counts with its latency percentiles and the probe's values (no raw lists)."""
    latencies, values = stage.get("latencies") or [], stage.get("values") or []
    return {"checks": stage.get("checks", 0), "passed": stage.get("passed", 0),
            "latency_ms": {"p50": _percentile(latencies, 0.5), "p95": _percentile(latencies, 0.95)},
            "value": {"last": values[-1], "min": min(values), "max": max(values)} if values else None}


def summary(tally):
    """One line per probe for the result and the report: pass rate, latency p50/p95/max, phases."""
    out = []
    for name, entry in sorted(((tally or {}).get("probes") or {}).items()):
        latencies = entry.get("latencies") or []
        checks = entry.get("checks") or 0
        out.append({
            "name": name, "type": entry.get("type"), "checks": checks, "passed": entry.get("passed", 0),
            "failures": checks - entry.get("passed", 0),
            "pass_rate": round(100.0 * entry.get("passed", 0) / checks, 1) if checks else None,
            "latency_ms": {"p50": _percentile(latencies, 0.5), "p95": _percentile(latencies, 0.95),
                           "max": max(latencies) if latencies else None},
            "phases": dict((name, phase_figures(stage)) for name, stage in (entry.get("phases") or {}).items()),
            "last_failure": entry.get("last_failure"),
        })
    return out


def _phase_text(phases):
    return ", ".join("%s %d/%d" % (name, phases[name]["passed"], phases[name]["checks"])
                     for name in ("baseline", "stress", "recovery", "check") if name in phases)


def judged(stats, summaries, threshold):
    """The result's probe entries: each probe's stress counts, its tally figures, and why it held or broke.

    ``stats``: [{name, checks, failures, last_failure}] of the stress (the monitor's counts);
    ``summaries``: summary(tally). The stress counts come from the tally when it has the probe,
    so the verdict and its explanation use the same numbers. Whether a probe broke is
    _result.probe_broke (more than ``threshold`` failures in the stress, or any after recovery).
    """
    lines = dict((line["name"], line) for line in summaries)
    out = []
    for stat in stats:
        entry = dict(stat)
        line = lines.get(stat["name"])
        if line:
            phases = line["phases"]
            stress, recovery = phases.get("stress") or {}, phases.get("recovery") or {}
            entry.update(checks=stress.get("checks", 0), failures=stress.get("checks", 0) - stress.get("passed", 0),
                         type=line["type"], pass_rate=line["pass_rate"], latency_ms=line["latency_ms"], phases=phases,
                         recovery_failed=recovery.get("checks", 0) > recovery.get("passed", 0))
            last = line["last_failure"] or {}
            latency = line["latency_ms"]
            speed = ("latency p50 %s ms, p95 %s ms" % (latency["p50"], latency["p95"])
                     if latency["p50"] is not None else "no latency measured")
            if _result.probe_broke(entry["failures"], threshold, entry["recovery_failed"]):
                why = []
                if entry["failures"] > threshold:
                    why.append("%d failed checks during the stress, %d allowed" % (entry["failures"], threshold))
                if entry["recovery_failed"]:
                    why.append("failed after recovery")
                entry["detail"] = "broke: %s (pass rate %s%%: %s); last failure in %s: %s; %s" % (
                    " and ".join(why), line["pass_rate"], _phase_text(phases), last.get("phase"), last.get("detail"),
                    speed)
            else:
                entry["detail"] = "held: pass rate %s%% (%s)%s; %s" % (
                    line["pass_rate"], _phase_text(phases),
                    "; last failure in %s: %s" % (last.get("phase"), last.get("detail")) if last else "", speed)
        out.append(entry)
    return out


def explain(summaries, allowed_failures=0):
    """Why the steady state broke, one clause per probe over its allowance; '' when it held."""
    reasons = []
    for line in summaries:
        if line["failures"] > allowed_failures:
            last = line["last_failure"] or {}
            reasons.append("probe %s failed %d of %d checks (pass rate %s%%), last in %s: %s"
                           % (line["name"], line["failures"], line["checks"], line["pass_rate"],
                              last.get("phase", "?"), last.get("detail", "")))
    return "; ".join(reasons)


__all__ = ["ProbeSpecError", "explain", "in_order", "judge_kubernetes", "judged", "node_failure", "plan",
           "run_controller", "scrub", "secrets_of", "summary", "update_tally"]
