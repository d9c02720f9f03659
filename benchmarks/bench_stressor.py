#!/usr/bin/env python3
"""Requested against achieved: chaosfleet.stress.stressor against stress-ng as peer tools invoke it.

On one lab container (the seed's 500Mi / 0.5-core pod), each request runs twice: stress-ng attached
to the cgroup with the user's numbers passed straight through (tests/lab/peer_stress.py), and the
stressor module through Ansible. The working-set increase and CPU are read from the cgroup.
"""

import json
import os
import secrets
import shutil
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
sys.path.insert(0, os.path.join(REPO, ".collections"))

from tests.integration.ansible_helpers import median, ok, read_int, stress_pids, working_set  # noqa: E402
from tests.integration.lab_fixtures import create_lab, destroy_lab, lab_container  # noqa: E402

MI = 1024 * 1024
PEER = os.path.join(REPO, "tests", "lab", "peer_stress.py")

# (what the user asked for, bytes meant given the limit, peer stress-ng args, module memory/cpu request)
MEMORY_CASES = [
    ("4 workers x 50Mi (old docs)", lambda limit: 200 * MI, ["--vm", "4", "--vm-bytes", "50M", "--vm-keep"],
     {"size": "200Mi", "workers": 4}),
    ("200Mi over 4 workers", lambda limit: 200 * MI, ["--vm", "4", "--vm-bytes", "200M", "--vm-keep"],
     {"size": "200Mi", "workers": 4}),
    ("50% of the limit", lambda limit: limit // 2, ["--vm", "1", "--vm-bytes", "50%", "--vm-keep"],
     {"size": "50%"}),
    ("80% of the limit", lambda limit: limit * 8 // 10, ["--vm", "1", "--vm-bytes", "80%", "--vm-keep"],
     {"size": "80%"}),
]


def settled(path, seconds=2.0):
    readings = []
    for _ in range(5):
        readings.append(working_set(path))
        time.sleep(seconds / 5)
    return median(readings)


def module_memory(container, state_dir, memory):
    path = container["cgroup_path"]
    base = settled(path)
    ok("stressor", dict(name="bench", container_id=container["id"], state_dir=state_dir, duration="60s", memory=memory))
    phase = None
    for _ in range(40):
        phase = json.load(open(os.path.join(state_dir, "experiments", "bench", "status.json"))).get("phase")
        if phase == "holding":
            break
        time.sleep(0.5)
    achieved = settled(path) - base
    ok("stressor", dict(name="bench", state="absent", state_dir=state_dir))
    shutil.rmtree(os.path.join(state_dir, "experiments", "bench"))
    while stress_pids(path):
        time.sleep(0.2)
    time.sleep(1)
    return achieved


def peer(container, args, seconds=6):
    out = subprocess.run([sys.executable, PEER, container["cgroup_path"], str(seconds), "--"] + args,
                         stdout=subprocess.PIPE, check=True, universal_newlines=True)
    time.sleep(1)
    return json.loads(out.stdout)


def cpu_cores(path, seconds=6):
    before = read_int("cpuacct", path, "cpuacct.usage")
    time.sleep(seconds)
    return (read_int("cpuacct", path, "cpuacct.usage") - before) / 1e9 / seconds


def main():
    lab = create_lab("cflab-bench" + secrets.token_hex(2))
    state_dir = "/run/%s-experiments" % lab["prefix"]
    try:
        container = lab_container(lab, "hello")
        limit = container["memory_limit_bytes"]
        rows = []
        for label, meant, peer_args, memory in MEMORY_CASES:
            want = meant(limit)
            theirs = peer(container, peer_args)
            ours = module_memory(container, state_dir, memory)
            rows.append((label, want, theirs["achieved_bytes"], theirs["oom_kills"], ours))
        print("| request | meant | stress-ng as peers pass it | OOM kills | chaosfleet.stress.stressor | error |")
        print("|---|---|---|---|---|---|")
        for label, want, theirs, kills, ours in rows:
            print("| %s | %.1f MiB | %.1f MiB | %d | %.1f MiB | %+.1f%% |" % (
                label, want / MI, theirs / MI, kills, ours / MI, 100.0 * (ours - want) / want))
        quota = container["cpu_limit_cores"]
        path = container["cgroup_path"]
        proc = subprocess.Popen([sys.executable, PEER, path, "10", "--", "--cpu", "1", "--cpu-load", "50"],
                                stdout=subprocess.DEVNULL)
        time.sleep(2)
        theirs = cpu_cores(path)
        proc.wait()
        ok("stressor", dict(name="bench-cpu", container_id=container["id"], state_dir=state_dir, duration="60s",
                            cpu={"load": 50}))
        time.sleep(2)
        ours = cpu_cores(path)
        ok("stressor", dict(name="bench-cpu", state="absent", state_dir=state_dir))
        print("| cpu load 50%% of a %.1f-core quota | %.2f cores | %.2f cores (%.0f%% of quota) | - | %.2f cores (%.0f%% of quota) | %+.1f points |" % (
            quota, quota / 2, theirs, 100 * theirs / quota, ours, 100 * ours / quota, 100 * ours / quota - 50))
    finally:
        from ansible_collections.chaosfleet.stress.plugins.module_utils._experiment import Experiment
        from ansible_collections.chaosfleet.stress.plugins.module_utils._state import list_experiments
        for name in list_experiments(state_dir):
            Experiment(state_dir, name).stop()
        shutil.rmtree(state_dir, ignore_errors=True)
        destroy_lab(lab["prefix"])


if __name__ == "__main__":
    main()
