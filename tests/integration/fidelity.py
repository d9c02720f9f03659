"""Measure what an experiment does to its target, from the target's cgroup (cgroup v1, on this host).

Shared by tests/integration/test_fidelity.py (a few cases, tolerances that hold on a loaded machine)
and the fidelity benchmark (the full table, the issue's exact targets). Everything is read from the
kernel every 100 ms, independently of the supervisor's own samples.

- ``memory_case(state_dir, container, memory, ...)`` starts a memory experiment through the stressor
  module, samples the working set from before the start until it holds, then stops it; returns the
  request, the baseline, every sample, the peak, the steady increase, the side CPU and the OOM kills.
- ``cpu_case(state_dir, container, load, ...)`` starts a CPU experiment and returns the share of the
  quota burnt over a window of 10 s or more.
- ``overshoot_allowed(request)`` and ``ramp_deviation(case)`` are the issue's yardsticks.
"""

import threading
import time

from tests.integration.ansible_helpers import median, ok, read_int, working_set

MI = 1024 * 1024
SAMPLE_SECONDS = 0.1


def oom_kills(cgroup_path):
    with open("/sys/fs/cgroup/memory%s/memory.oom_control" % cgroup_path) as handle:
        return int(handle.read().split("oom_kill ")[1].split()[0])


def cpu_seconds(cgroup_path):
    return read_int("cpuacct", cgroup_path, "cpuacct.usage") / 1e9


def phase(state_dir, name):
    from ansible_collections.chaosfleet.stress.plugins.module_utils._experiment import Experiment
    return Experiment(state_dir, name).status().get("phase")


def overshoot_allowed(request):
    """The most the working set may exceed the request by, at any sample: the larger of 1 % and 2 MiB."""
    return max(request // 100, 2 * MI)


class Sampler(object):
    """Reads the target's working set every 100 ms in a thread: (time, increase over the baseline)."""

    def __init__(self, cgroup_path, baseline):
        self.path, self.baseline, self.points, self._done = cgroup_path, baseline, [], threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._done.is_set():
            try:
                self.points.append((time.time(), working_set(self.path) - self.baseline))
            except OSError:
                pass  # the cgroup went away: the caller's assertions say why
            self._done.wait(SAMPLE_SECONDS)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *_exc):
        self._done.set()
        self._thread.join()


def memory_case(state_dir, container, memory, name=None, hold_seconds=3.0, cpu_window=3.0, timeout=60, **params):
    """Run one memory experiment to its hold and measure it; always stops it."""
    path = container["cgroup_path"]
    name = name or "fid-%d" % int(time.time() * 1000)
    baseline = median([working_set(path) for _ in range(5)])
    oom_before = oom_kills(path)
    args = dict(name=name, container_id=container["id"], state_dir=state_dir, duration="%ds" % (timeout + 30),
                memory=memory)
    args.update(params)
    result = {"name": name, "baseline_bytes": baseline}
    try:
        with Sampler(path, baseline) as sampler:
            started = ok("stressor", args)
            result.update(request_bytes=started["requested"]["memory_bytes"], started_at=started["started_at"],
                          ramp_seconds=started["requested"]["ramp_seconds"])
            deadline = time.time() + timeout
            while phase(state_dir, name) != "holding" and time.time() < deadline:
                time.sleep(0.2)
            result["held"] = phase(state_dir, name) == "holding"
            held_at = time.time()
            cpu_before = cpu_seconds(path)
            time.sleep(max(hold_seconds, cpu_window))
            result["side_cpu_cores"] = (cpu_seconds(path) - cpu_before) / (time.time() - held_at)
        result["samples"] = sampler.points
        result["hold_samples"] = [v for t, v in sampler.points if t >= held_at]
    finally:
        stopped = ok("stressor", {"name": name, "state": "absent", "state_dir": state_dir})
    result["stopped"] = stopped["status"]
    result["peak_bytes"] = max(v for _t, v in result["samples"])
    result["steady_bytes"] = median(result["hold_samples"][-10:])
    result["oom_kills"] = oom_kills(path) - oom_before
    return result


def ramp_deviation(case):
    """Worst distance of the working set from the ramp's line, as a share of the request, over the ramp."""
    request, ramp, t0 = case["request_bytes"], case["ramp_seconds"], case["started_at"]
    inside = [(t - t0, v) for t, v in case["samples"] if 0 <= t - t0 <= ramp]
    return max(abs(v - request * t / ramp) for t, v in inside) / request


def cpu_case(state_dir, container, load, warmup=8.0, window=10.0, **params):
    """Percent of the target's quota burnt over ``window`` seconds after ``warmup``; always stops it."""
    path = container["cgroup_path"]
    name = "fid-cpu-%d" % int(time.time() * 1000)
    args = dict(name=name, container_id=container["id"], state_dir=state_dir, duration="%ds" % (warmup + window + 30),
                cpu={"load": load})
    args.update(params)
    try:
        started = ok("stressor", args)
        time.sleep(warmup)
        before, t0 = cpu_seconds(path), time.time()
        time.sleep(window)
        cores = (cpu_seconds(path) - before) / (time.time() - t0)
    finally:
        ok("stressor", {"name": name, "state": "absent", "state_dir": state_dir})
    basis = started["plan"]["cpu"]["basis_cores"]
    return {"load": load, "basis_cores": basis, "cores": cores, "percent_of_quota": cores / basis * 100}
