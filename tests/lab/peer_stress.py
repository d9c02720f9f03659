#!/usr/bin/env python3
"""Run stress-ng inside a cgroup the way peer chaos tools do, and measure what it achieved.

Peer tools attach `stress-ng --vm N --vm-bytes X` to the container's cgroup and pass the
user's numbers straight through. This measures the working-set increase in the cgroup
itself, for the demo and the benchmark. Usage:

    peer_stress.py CGROUP_PATH SECONDS -- stress-ng args...
"""

import json
import os
import signal
import subprocess
import sys
import time

V1 = "/sys/fs/cgroup"


def working_set(path):
    base = os.path.join(V1, "memory", path.lstrip("/"))
    usage = int(open(os.path.join(base, "memory.usage_in_bytes")).read())
    stat = dict(line.split() for line in open(os.path.join(base, "memory.stat")))
    return usage - int(stat["total_inactive_file"])


def oom_kills(path):
    text = open(os.path.join(V1, "memory", path.lstrip("/"), "memory.oom_control")).read()
    return int(text.split("oom_kill ")[1].split()[0])


def run(path, seconds, args):
    def attach():
        for controller in ("memory", "cpu", "cpuacct"):
            with open(os.path.join(V1, controller, path.lstrip("/"), "cgroup.procs"), "w") as handle:
                handle.write("0")
        with open("/proc/self/oom_score_adj", "w") as handle:
            handle.write("1000")

    before_ws, before_oom = working_set(path), oom_kills(path)
    proc = subprocess.Popen(["stress-ng"] + args + ["--timeout", "%ds" % (seconds + 5)], preexec_fn=attach,
                            start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    started = time.time()
    readings = []
    try:
        while time.time() - started < seconds:
            time.sleep(0.5)
            readings.append(working_set(path) - before_ws)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the group this script started
        proc.wait()
    tail = sorted(readings[-4:])
    return {"argv": ["stress-ng"] + args, "achieved_bytes": tail[len(tail) // 2],
            "oom_kills": oom_kills(path) - before_oom, "seconds": seconds}


if __name__ == "__main__":
    split = sys.argv.index("--")
    print(json.dumps(run(sys.argv[1], float(sys.argv[2]), sys.argv[split + 1:])))
