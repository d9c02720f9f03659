#!/usr/bin/env python3
"""CPU cost of sampling 50 cgroups at 1 Hz on the node, against cAdvisor's housekeeping (0.3 % of one core).

    .venv/bin/python benchmarks/bench_sampling.py [--count 50] [--window 30] [--repeats 3] [--json FILE]

Creates ``count`` container cgroups in the memory, cpu and cpuacct hierarchies (one sleeping process in each,
so the member lists are real), then runs the code cgroup_sample uses (``sample_targets``) over them at 1 Hz for
``window`` seconds, ``repeats`` times. The figure is the CPU time this process used in each run (user + system,
its whole ``sample_targets`` call: set-up, every sample, the summaries) divided by the run's wall time, as a
share of one core. CPU time, not wall time: other work on the machine does not count in it, though it still
makes the kernel's and Python's caches colder. The verdict is on the median run; the spread is shown.
Everything it creates (the cgroups under a unique prefix, the sleepers) is removed at the end.
"""

import argparse
import json
import os
import resource
import secrets
import signal
import statistics
import subprocess
import sys
import time
import uuid

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONTROLLERS = ("memory", "cpu", "cpuacct")
# cAdvisor's housekeeping cost for 50 containers at 1 Hz, as a share of one core.
ANCHOR_PERCENT = 0.3


def make_cgroups(prefix, count, lifetime):
    """``count`` cgroups under /<prefix>/kubepods/burstable/, each with one sleeper; returns (ids, sleepers)."""
    ids, sleepers = [], []
    for _ in range(count):
        cid = secrets.token_hex(32)
        path = "/%s/kubepods/burstable/pod%s/%s" % (prefix, uuid.uuid4(), cid)
        for controller in CONTROLLERS:
            os.makedirs("/sys/fs/cgroup/%s%s" % (controller, path))
        ids.append(cid)

        def join(path=path):
            for controller in CONTROLLERS:
                with open("/sys/fs/cgroup/%s%s/cgroup.procs" % (controller, path), "w") as handle:
                    handle.write("0")
        sleepers.append(subprocess.Popen(["sleep", str(lifetime)], preexec_fn=join))
    return ids, sleepers


def remove_cgroups(prefix, sleepers):
    for sleeper in sleepers:
        if sleeper.poll() is None:
            sleeper.kill()
        sleeper.wait()
    for controller in CONTROLLERS:
        top = "/sys/fs/cgroup/%s/%s" % (controller, prefix)
        for attempt in range(20):
            try:
                for directory, _subdirs, _files in sorted(os.walk(top), key=lambda w: -w[0].count("/")):
                    os.rmdir(directory)
                break
            except OSError:  # a killed sleeper leaves its cgroup a moment later
                if attempt == 19:
                    raise
                time.sleep(0.1)


def one_run(sample_targets, targets, window):
    before, cpu_before = resource.getrusage(resource.RUSAGE_SELF), time.process_time()
    started = time.monotonic()
    results = sample_targets(targets, "/proc", window, 1.0)
    wall = time.monotonic() - started
    after, cpu = resource.getrusage(resource.RUSAGE_SELF), time.process_time() - cpu_before
    samples = sum(len(r["samples"]) for r in results)
    return {"wall_seconds": round(wall, 3), "cpu_seconds": round(cpu, 4),
            "user_seconds": round(after.ru_utime - before.ru_utime, 3),
            "system_seconds": round(after.ru_stime - before.ru_stime, 3),
            "samples": samples, "percent_of_core": round(100.0 * cpu / wall, 3),
            "us_per_sample": round(1e6 * cpu / samples, 1)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=50, help="cgroups to sample")
    parser.add_argument("--window", type=float, default=30.0, help="seconds per run")
    parser.add_argument("--repeats", type=int, default=3, help="runs")
    parser.add_argument("--collections", default=os.path.join(REPO, ".collections"),
                        help="the collections path to import chaosfleet.stress from (another checkout, to compare)")
    parser.add_argument("--json", help="write the figures to this file")
    args = parser.parse_args()
    sys.path.insert(0, args.collections)
    from ansible_collections.chaosfleet.stress.plugins.module_utils._target_options import node_resolver
    from ansible_collections.chaosfleet.stress.plugins.module_utils._sampling import sample_targets

    # A SIGTERM (make bench stopped) still removes what this made.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(1))
    prefix = "cfbench-" + secrets.token_hex(3)
    sleepers = []
    try:
        ids, sleepers = make_cgroups(prefix, args.count, args.window * args.repeats + 120)
        resolver = node_resolver({})
        targets = [resolver.resolve({"container_id": cid})[0] for cid in ids]
        runs = []
        for index in range(args.repeats):
            run = one_run(sample_targets, targets, args.window)
            runs.append(run)
            print("run %d: %d cgroups at 1 Hz for %.0f s (%d samples): CPU %.3f s (user %.2f, system %.2f) "
                  "-> %.2f%% of one core, %.0f us a sample"
                  % (index + 1, args.count, run["wall_seconds"], run["samples"], run["cpu_seconds"],
                     run["user_seconds"], run["system_seconds"], run["percent_of_core"], run["us_per_sample"]))
    finally:
        remove_cgroups(prefix, sleepers)
    percents = [r["percent_of_core"] for r in runs]
    median = statistics.median(percents)
    met = median <= ANCHOR_PERCENT
    print("sampling %d cgroups at 1 Hz: median %.2f%% of one core (runs %.2f-%.2f%%, %d runs); anchor %.2f%% "
          "(cAdvisor's housekeeping) -> %s, %s"
          % (args.count, median, min(percents), max(percents), len(runs), ANCHOR_PERCENT,
             "PASS" if met else "FAIL",
             "%.2fx the anchor" % (median / ANCHOR_PERCENT)))
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"count": args.count, "window_seconds": args.window, "runs": runs,
                       "median_percent_of_core": median, "anchor_percent_of_core": ANCHOR_PERCENT, "met": met},
                      handle, indent=2, sort_keys=True)
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
