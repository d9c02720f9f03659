# -*- coding: utf-8 -*-
# Copyright (c) 2026, chaosfleet.stress contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Sample targets over a window, and read back what an experiment recorded.

Node-side code: standard library only.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import socket
import time

from ansible_collections.chaosfleet.stress.plugins.module_utils import _oom
from ansible_collections.chaosfleet.stress.plugins.module_utils import _state as state
from ansible_collections.chaosfleet.stress.plugins.module_utils._oom import KernelLog, OomTracker, merge_kills
from ansible_collections.chaosfleet.stress.plugins.module_utils._resolve import process_comm
from ansible_collections.chaosfleet.stress.plugins.module_utils._result import TARGET_IDENTITY_KEYS, build as build_result, target_of
from ansible_collections.chaosfleet.stress.plugins.module_utils._summary import recovery as recovery_of, summarize
from ansible_collections.chaosfleet.stress.plugins.module_utils._usage import read_sample, reader_for

# A sampled target's identity: the result's (TARGET_IDENTITY_KEYS) and what kind of cgroup it is.
IDENTITY = TARGET_IDENTITY_KEYS + ("kind", "runtime", "systemd_unit")


class Watched(object):
    """One target being sampled: its reader, samples, the PIDs seen in it and its OOM kills."""

    def __init__(self, target, proc_root, kmsg_problem=None):
        self.target = target
        self.proc_root = proc_root
        # Its cgroup files stay open from one tick to the next (sample_targets closes them).
        self.reader = reader_for(target, keep_open=True)
        self.samples = []
        self.seen = {}
        self.oom_kills = []
        memory = self.reader.memory_stats()
        # Whether the kernel log can be read is asked once for all targets (kmsg_problem), not once each.
        self.oom = OomTracker(target["path"], memory.get("oom_group"), memory.get("oom_kill_count"), kmsg_path=None)
        self.oom.kmsg_error = kmsg_problem

    def tick(self, kills):
        for pid in self.reader.pids():
            if pid not in self.seen:
                self.seen[pid] = process_comm(self.proc_root, pid)
        sample = read_sample(self.target, self.reader)
        self.samples.append(sample)
        merge_kills(self.oom_kills, self.oom.update(kills, sample["oom_kill_count"], self.seen, (), sample["t"]))
        return sample

    def result(self, recovery=None):
        identity = dict((key, self.target.get(key)) for key in IDENTITY)
        return {"target": identity, "samples": self.samples, "summary": summarize(self.samples),
                "oom_kills": self.oom_kills, "recovery": recovery}


def sample_targets(targets, proc_root, duration, interval, recovery=None, clock=time):
    """Sample every target each ``interval`` for ``duration`` seconds.

    With ``recovery`` ({baseline_working_set_bytes, within_percent, stable_samples}), stop early once every
    target has stayed within the band for ``stable_samples`` samples in a row.
    """
    asked_percent = recovery["within_percent"] if recovery else None
    if recovery:
        recovery = dict(recovery, within_percent=effective_percent(recovery))
    watched = []
    log = None
    try:
        kmsg_problem = _oom.kmsg_error() if targets else None
        for target in targets:
            watched.append(Watched(target, proc_root, kmsg_problem))
        log = KernelLog()
        started = clock.time()
        deadline = started + duration
        next_tick = started
        while True:
            kills = log.read() if log.available else []
            for item in watched:
                item.tick(kills)
            if recovery and all(_stable_inside(w.samples, recovery) for w in watched):
                break
            next_tick += interval
            if next_tick > deadline:
                break
            clock.sleep(max(0.0, next_tick - clock.time()))
        kills = log.read() if log.available else []
        for item in watched:
            merge_kills(item.oom_kills, item.oom.update(kills, item.samples[-1]["oom_kill_count"], item.seen))
            merge_kills(item.oom_kills, item.oom.flush())
    finally:
        if log is not None:
            log.close()
        for item in watched:
            item.reader.close()
    out = []
    for item in watched:
        verdict = None
        if recovery:
            baseline = {"working_set_bytes": {"mean": recovery["baseline_working_set_bytes"]},
                        "rss_bytes": {"mean": recovery.get("baseline_rss_bytes")}}
            verdict = recovery_of(item.samples, baseline, recovery["within_percent"], duration, started)
            verdict.update(within_percent=asked_percent,
                           band_bytes=int(recovery["baseline_working_set_bytes"] * recovery["within_percent"] / 100))
        out.append(item.result(verdict))
    return out


def effective_percent(recovery):
    """The band as a percentage, widened to at least ``tolerance_bytes``: small apps sit in kernel noise."""
    baseline = max(1, recovery["baseline_working_set_bytes"])
    floor = 100.0 * (recovery.get("tolerance_bytes") or 0) / baseline
    return max(recovery["within_percent"], floor)


def _stable_inside(samples, recovery):
    need = recovery.get("stable_samples") or 3
    mean = float(recovery["baseline_working_set_bytes"])
    band = mean * recovery["within_percent"] / 100.0
    recent = [s["working_set_bytes"] for s in samples[-need:] if s["working_set_bytes"] is not None]
    return len(recent) == need and all(abs(v - mean) <= band for v in recent)


def experiment_result(experiment, host=None):
    """What a stressor experiment recorded on this node, in the report's result shape."""
    spec, status, outcome = experiment.spec(), experiment.status(), experiment.outcome() or {}
    samples = state.read_jsonl(experiment.path(state.SAMPLES))
    events = state.read_jsonl(experiment.path(state.EVENTS))
    plan = spec.get("plan") or {}
    memory, cpu = plan.get("memory") or {}, plan.get("cpu") or {}
    target = spec.get("target") or {}
    limits = spec.get("limits") or {}
    report = experiment.report()
    holding = [e["t"] for e in events if e.get("event") == "holding"]
    during = [s for s in samples if not holding or s["t"] >= holding[0]]
    summary_during = summarize(during)
    oom_kills = outcome.get("oom_kills")
    if oom_kills is None:
        oom_kills = merge_kills([], [dict((k, v) for k, v in e.items() if k != "event")
                                     for e in events if e.get("event") == "oom_kill"])
    kind = "memory" if memory else ("cpu" if cpu else "io")
    return build_result(
        host=host or socket.gethostname(),
        experiment=experiment.name,
        target=target_of(target, limits),
        request={
            "kind": kind, "memory_bytes": memory.get("bytes"), "target_usage_bytes": memory.get("target_usage_bytes"),
            "ramp_seconds": memory.get("ramp_seconds"), "cpu_load_percent": cpu.get("load_percent"),
            "cpu_cores": cpu.get("cores"),
            "workers": memory.get("workers") or cpu.get("workers") or (plan.get("io") or {}).get("workers") or 1,
            "duration_seconds": plan.get("duration_seconds"),
        },
        argv=spec.get("argv"),
        started_at=status.get("started_at"),
        ended_at=outcome.get("ended_at"),
        deadline=status.get("deadline"),
        status=report["status"],
        reason=report["reason"],
        # The supervisor's first sample is taken before any stress starts.
        baseline=summarize(samples[:1]) if samples else None,
        samples=samples,
        summary=summarize(samples),
        oom_kills=oom_kills,
        achieved={
            "working_set_increase_bytes": outcome.get("achieved_increase_bytes"),
            "cpu_cores": summary_during["cpu_cores"] if cpu else None,
        },
    )
