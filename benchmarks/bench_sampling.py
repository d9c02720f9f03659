#!/usr/bin/env python3
"""CPU cost of sampling 50 cgroups at 1 Hz on the node (issue target: < 1% of one core).

Creates 50 container cgroups (with one sleeping process each, so member lists are real),
samples them with the same code cgroup_sample uses for a window, and divides the CPU time
this process used by the wall time. Removes everything it made.
"""

import os
import resource
import secrets
import subprocess
import sys
import time
import uuid

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, ".collections"))

from ansible_collections.chaosfleet.stress.plugins.module_utils._target_options import node_resolver  # noqa: E402
from ansible_collections.chaosfleet.stress.plugins.module_utils._sampling import sample_targets  # noqa: E402

CONTROLLERS = ("memory", "cpu", "cpuacct")


def main():
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 50
    window = float(sys.argv[2]) if len(sys.argv) > 2 else 30.0
    prefix = "cfbench-" + secrets.token_hex(3)
    sleepers, ids = [], []
    try:
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
            sleepers.append(subprocess.Popen(["sleep", str(window + 30)], preexec_fn=join))
        resolver = node_resolver({})
        targets = [resolver.resolve({"container_id": cid})[0] for cid in ids]
        before = resource.getrusage(resource.RUSAGE_SELF)
        started = time.time()
        results = sample_targets(targets, "/proc", window, 1.0)
        wall = time.time() - started
        after = resource.getrusage(resource.RUSAGE_SELF)
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        samples = sum(len(r["samples"]) for r in results)
        print("cgroups sampled: %d at 1 Hz for %.0f s (%d samples)" % (count, wall, samples))
        print("CPU used: %.3f s -> %.2f%% of one core" % (cpu, 100 * cpu / wall))
        print("target: < 1%% -> %s" % ("met" if cpu / wall < 0.01 else "NOT met"))
    finally:
        for sleeper in sleepers:
            sleeper.kill()
            sleeper.wait()
        time.sleep(0.5)
        for controller in CONTROLLERS:
            top = "/sys/fs/cgroup/%s/%s" % (controller, prefix)
            for directory, _subdirs, _files in sorted(os.walk(top), key=lambda w: -w[0].count("/")):
                os.rmdir(directory)


if __name__ == "__main__":
    main()
