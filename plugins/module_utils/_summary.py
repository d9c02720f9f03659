# -*- coding: utf-8 -*-
# Copyright (c) 2026, chaosfleet.stress contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Statistics over usage samples: summary, percentile, recovery, achieved increase.

Pure functions, no I/O. Runs on nodes (cgroup_sample) and on the controller
(stress_report): standard library only, Python 3.8+.

A sample is one dict of the collection's Sample shape; any field may be None
(not measured), and counters may go backwards when a container restarts into a
new cgroup. Samples need not arrive sorted; they are ordered by ``t`` here.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import math

_BYTE_FIELDS = ("working_set_bytes", "rss_bytes", "cache_bytes")


def percentile(values, p):
    """The p-th percentile (0..100) by linear interpolation between closest ranks.

    This is numpy's default ('linear'): sort the n values, take the fractional
    rank (n - 1) * p / 100 and interpolate between the two values around it.
    For [1, 2, 3, 4] the 50th percentile is 2.5 and the 95th is 3.85.
    None entries are ignored; returns None when no values are left.
    """
    if p < 0 or p > 100:
        raise ValueError("percentile must be between 0 and 100, got %r" % (p,))
    ordered = sorted(v for v in values if v is not None)
    if not ordered:
        return None
    rank = (len(ordered) - 1) * p / 100.0
    low = int(math.floor(rank))
    high = int(math.ceil(rank))
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def _ordered(samples, window=None):
    start, end = window if window is not None else (None, None)
    picked = [
        s for s in samples
        if s.get("t") is not None
        and (start is None or s["t"] >= start)
        and (end is None or s["t"] <= end)
    ]
    return sorted(picked, key=lambda s: s["t"])


def _stats(values):
    values = [v for v in values if v is not None]
    if not values:
        return None
    return {
        "min": min(values),
        "mean": sum(values) / float(len(values)),
        "p95": percentile(values, 95),
        "max": max(values),
    }


def _valid_pairs(ordered, *fields):
    """Consecutive sample pairs where every field is present and no counter went backwards.

    A counter going backwards means a new cgroup (container restart): that one
    interval is unknown and is left out instead of producing a negative rate.
    """
    for prev, cur in zip(ordered, ordered[1:]):
        if any(prev.get(f) is None or cur.get(f) is None for f in fields):
            continue
        if any(cur[f] < prev[f] for f in fields):
            continue
        yield prev, cur


def cpu_rates(samples):
    """CPU usage in cores for each interval: [(t of the later sample, cores)].

    Intervals with a missing or reset counter, or no time between samples, are skipped.
    """
    out = []
    for prev, cur in _valid_pairs(_ordered(samples), "cpu_usage_seconds"):
        dt = cur["t"] - prev["t"]
        if dt > 0:
            out.append((cur["t"], (cur["cpu_usage_seconds"] - prev["cpu_usage_seconds"]) / dt))
    return out


def _cpu_cores(ordered):
    used = elapsed = 0.0
    for prev, cur in _valid_pairs(ordered, "cpu_usage_seconds"):
        used += cur["cpu_usage_seconds"] - prev["cpu_usage_seconds"]
        elapsed += cur["t"] - prev["t"]
    return used / elapsed if elapsed > 0 else None


def _throttled_ratio(ordered):
    throttled = periods = 0
    for prev, cur in _valid_pairs(ordered, "nr_periods", "nr_throttled"):
        throttled += cur["nr_throttled"] - prev["nr_throttled"]
        periods += cur["nr_periods"] - prev["nr_periods"]
    return throttled / float(periods) if periods > 0 else None


def _counter_increase(ordered, field):
    """How much a counter grew; after a reset the new value counts from zero."""
    values = [s[field] for s in ordered if s.get(field) is not None]
    total = 0
    for prev, cur in zip(values, values[1:]):
        total += cur - prev if cur >= prev else cur
    return total


def summarize(samples, window=None):
    """Summarize samples into the collection's Summary shape.

    ``window`` is an optional ``(start, end)`` pair of epoch seconds (either may
    be None) that keeps only samples with ``start <= t <= end``.

    - ``working_set_bytes``, ``rss_bytes``, ``cache_bytes``: min, mean, p95
      (see :func:`percentile`) and max over the samples that have the value;
      None when none has it.
    - ``cpu_cores``: CPU time used divided by wall time, over consecutive sample
      pairs with a usable counter (intervals across a counter reset are left
      out of both sums). None with fewer than two usable samples.
    - ``throttled_ratio``: throttled periods / elapsed periods over the same
      kind of pairs; None when no CFS period elapsed (no quota, or idle).
    - ``psi_memory_some_avg10``: max and mean, or None where the kernel has no PSI.
    - ``oom_kill_count``: how many OOM kills happened between the first and the
      last sample (counter increase; after a reset the new value is added).
    """
    ordered = _ordered(samples, window)
    summary = {
        "count": len(ordered),
        "window_seconds": (ordered[-1]["t"] - ordered[0]["t"]) if ordered else 0.0,
        "cpu_cores": _cpu_cores(ordered),
        "throttled_ratio": _throttled_ratio(ordered),
        "oom_kill_count": _counter_increase(ordered, "oom_kill_count"),
    }
    for field in _BYTE_FIELDS:
        summary[field] = _stats(s.get(field) for s in ordered)
    psi = [s.get("psi_memory_some_avg10") for s in ordered]
    psi = [v for v in psi if v is not None]
    summary["psi_memory_some_avg10"] = (
        {"max": max(psi), "mean": sum(psi) / float(len(psi))} if psi else None
    )
    return summary


def _baseline_mean(baseline_summary):
    if not baseline_summary:
        return None
    stats = baseline_summary.get("working_set_bytes") or {}
    return stats.get("mean")


def recovery(samples_after_stop, baseline_summary, within_percent, timeout_seconds, stopped_at):
    """Did the working set come back to the baseline after the stress stopped, and when?

    The band is the baseline mean working set +/- ``within_percent`` percent
    (edges included). Only samples with ``stopped_at <= t <= stopped_at +
    timeout_seconds`` and a working set count. The working set has recovered at
    the first such sample from which every later counted sample stays inside the
    band; ``seconds`` is that sample's ``t - stopped_at``. A sample inside the
    band followed by one outside it does not count, so a dip on the way down is
    not taken for recovery.

    - recovered True, seconds set: it came back and stayed.
    - recovered False, seconds None: the last counted sample is outside the band.
      Sample until the timeout: a series that ends early counts as not recovered.
      Then ``below_baseline`` says the last sample is under the band; ``anon_back`` whether its anonymous
      memory (``rss_bytes``) is within the band's width of the baseline's (None when either is unknown);
      ``stress_released`` is either: the stress's memory is gone, what is off is the app's page cache.
    - recovered None, seconds None: unknown (no baseline, or no counted samples).
    """
    out = {
        "recovered": None,
        "seconds": None,
        "within_percent": within_percent,
        "timeout_seconds": timeout_seconds,
    }
    mean = _baseline_mean(baseline_summary)
    if mean is None:
        return out
    low = mean * (1 - within_percent / 100.0)
    high = mean * (1 + within_percent / 100.0)
    window = (stopped_at, stopped_at + timeout_seconds)
    counted = [s for s in _ordered(samples_after_stop, window) if s.get("working_set_bytes") is not None]
    if not counted:
        return out
    since = None
    for sample in counted:
        inside = low <= sample["working_set_bytes"] <= high
        if inside and since is None:
            since = sample["t"]
        elif not inside:
            since = None
    out["recovered"] = since is not None
    if since is not None:
        out["seconds"] = since - stopped_at
    else:
        last = counted[-1]
        # Below the band the app's page cache shrank. Above it, the page cache may have grown back past a
        # baseline taken while part of it was inactive; the anonymous memory says whether the stress's is gone.
        out["below_baseline"] = last["working_set_bytes"] < low
        anon_mean = (baseline_summary.get("rss_bytes") or {}).get("mean")
        anon_back = None
        if anon_mean is not None and last.get("rss_bytes") is not None:
            anon_back = last["rss_bytes"] <= anon_mean + (high - mean)
        out["anon_back"] = anon_back
        out["stress_released"] = out["below_baseline"] or bool(anon_back)
    return out


def achieved_increase(baseline, samples_during):
    """What the stress achieved over the baseline summary.

    - ``working_set_increase_bytes``: p95 of the working set during the stress
      minus the baseline mean, as int (p95 rather than max, so one sample
      caught mid-allocation does not count as the level reached).
    - ``cpu_cores``: CPU rate during the stress minus the baseline rate (the
      rate itself when the baseline has none).

    Either is None when it cannot be computed.
    """
    during = summarize(samples_during)
    mean = _baseline_mean(baseline)
    ws = during["working_set_bytes"]
    increase = None
    if ws is not None and mean is not None:
        increase = int(round(ws["p95"] - mean))
    cores = during["cpu_cores"]
    if cores is not None and baseline and baseline.get("cpu_cores") is not None:
        cores -= baseline["cpu_cores"]
    return {"working_set_increase_bytes": increase, "cpu_cores": cores}
