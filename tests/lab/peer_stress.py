#!/usr/bin/env python3
"""Run stress-ng inside a cgroup the way peer chaos tools do, and measure what it achieved.

Peer tools attach `stress-ng --vm N --vm-bytes X` to the container's cgroup and pass the
user's numbers straight through. This measures the effect in the cgroup itself, sampled
every 100 ms, for the demo and the benchmark. Usage:

    peer_stress.py CGROUP_PATH SECONDS -- stress-ng args...

It prints JSON: the working-set increase at the end (steady), its peak, the CPU the
stress burned in the cgroup over the second half of the run, and the OOM kills.
The same Sampler measures the stressor module in the benchmark and the engine tests.
"""

import json
import os
import signal
import subprocess
import sys
import threading
import time

CGROUP_FS = "/sys/fs/cgroup"
# A unified (v2) host mounts cgroup2 at /sys/fs/cgroup itself, as the v2 VM node does.
V2 = os.path.exists(os.path.join(CGROUP_FS, "cgroup.controllers"))


def cgroup_file(controller, path, name):
    if V2:
        return os.path.join(CGROUP_FS, path.lstrip("/"), name)
    return os.path.join(CGROUP_FS, controller, path.lstrip("/"), name)


def flat_keyed(controller, path, name):
    with open(cgroup_file(controller, path, name)) as handle:
        return dict((key, int(value)) for key, value in (line.split() for line in handle))


def working_set(path):
    """Usage minus inactive file pages, as kubelet counts it (v1 and v2)."""
    stat = flat_keyed("memory", path, "memory.stat")
    if V2:
        return int(open(cgroup_file("memory", path, "memory.current")).read()) - stat["inactive_file"]
    return int(open(cgroup_file("memory", path, "memory.usage_in_bytes")).read()) - stat["total_inactive_file"]


def oom_kills(path):
    if V2:
        return flat_keyed("memory", path, "memory.events").get("oom_kill", 0)
    text = open(cgroup_file("memory", path, "memory.oom_control")).read()
    return int(text.split("oom_kill ")[1].split()[0])


def cpu_seconds(path):
    if V2:
        return flat_keyed("cpu", path, "cpu.stat")["usage_usec"] / 1e6
    return int(open(cgroup_file("cpuacct", path, "cpuacct.usage")).read()) / 1e9


def median(values):
    ordered = sorted(values)
    return ordered[len(ordered) // 2] if ordered else None


def settled_working_set(path, seconds=1.0, readings=5):
    values = []
    for _ in range(readings):
        values.append(working_set(path))
        time.sleep(seconds / readings)
    return median(values)


class Sampler(threading.Thread):
    """Reads a cgroup every `interval` seconds: (monotonic time, working set, CPU seconds, OOM kills)."""

    def __init__(self, path, interval=0.1):
        super().__init__(daemon=True)
        self.path, self.interval = path, interval
        self.samples = []
        self._stop_event = threading.Event()

    def run(self):
        while not self._stop_event.is_set():
            try:
                self.samples.append((time.monotonic(), working_set(self.path), cpu_seconds(self.path),
                                     oom_kills(self.path)))
            except (OSError, ValueError, KeyError, IndexError):
                pass  # the cgroup went away: the test or bench reports the gap
            self._stop_event.wait(self.interval)

    def stop(self):
        self._stop_event.set()
        self.join()
        return self.samples

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()


def summarize(samples, baseline, hold_from, hold_to, oom_before):
    """Request-side figures from samples: the steady value is the median increase over [hold_from, hold_to].

    Returns steady_bytes, peak_bytes (the largest increase at any sample up to hold_to), side_cpu_cores
    (CPU seconds per second in the cgroup over the hold window), oom_kills and the sample count.
    """
    until = [s for s in samples if s[0] <= hold_to]
    hold = [s for s in until if s[0] >= hold_from]
    if len(hold) < 2:
        raise ValueError("fewer than two samples in the hold window")
    cpu = (hold[-1][2] - hold[0][2]) / (hold[-1][0] - hold[0][0])
    return {"steady_bytes": median([s[1] for s in hold]) - baseline,
            "peak_bytes": max(s[1] for s in until) - baseline,
            "side_cpu_cores": cpu,
            "oom_kills": max(s[3] for s in until) - oom_before,
            "samples": len(until)}


def attach_to(path):
    """preexec_fn: join the cgroup (v1: memory, cpu, cpuacct) and be the OOM killer's first choice."""
    def attach():
        for controller in ("memory",) if V2 else ("memory", "cpu", "cpuacct"):
            with open(cgroup_file(controller, path, "cgroup.procs"), "w") as handle:
                handle.write("0")
        with open("/proc/self/oom_score_adj", "w") as handle:
            handle.write("1000")
    return attach


def run(path, seconds, args):
    baseline, oom_before = settled_working_set(path), oom_kills(path)
    with Sampler(path) as sampler:
        proc = subprocess.Popen(["stress-ng"] + args + ["--timeout", "%ds" % (seconds + 5)],
                                preexec_fn=attach_to(path), start_new_session=True,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        started = time.monotonic()
        try:
            time.sleep(seconds)
        finally:
            os.killpg(proc.pid, signal.SIGKILL)  # the group this script started
            proc.wait()
        ended = time.monotonic()
    result = summarize(sampler.samples, baseline, started + seconds / 2, ended, oom_before)
    # The last quarter, as before: what a user sees once it settled.
    result["achieved_bytes"] = median([s[1] for s in sampler.samples if s[0] >= ended - seconds / 4]) - baseline
    result.update(argv=["stress-ng"] + args, seconds=seconds)
    return result


if __name__ == "__main__":
    split = sys.argv.index("--")
    print(json.dumps(run(sys.argv[1], float(sys.argv[2]), sys.argv[split + 1:])))
