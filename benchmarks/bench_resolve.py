#!/usr/bin/env python3
"""Resolve one container ID on a node with 1,000 container cgroups (issue target: < 0.5 s of module time).

Creates empty cgroups in the kubelet cgroupfs layout under a unique prefix in the memory, cpu and
cpuacct hierarchies, times the resolver in-process and the cgroup_info module as a process, and
removes every cgroup it made.
"""

import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, ".collections"))

from ansible_collections.chaosfleet.stress.plugins.module_utils._target_options import node_resolver  # noqa: E402

CONTROLLERS = ("memory", "cpu", "cpuacct")


def build(prefix, count):
    made, ids = [], []
    for i in range(count // 2):
        pod = "/%s/kubepods/burstable/pod%s" % (prefix, uuid.uuid4())
        for _ in range(2):
            cid = secrets.token_hex(32)
            ids.append(cid)
            made.append("%s/%s" % (pod, cid))
    for controller in CONTROLLERS:
        for path in made:
            os.makedirs("/sys/fs/cgroup/%s%s" % (controller, path))
    return made, ids


def remove(prefix):
    for controller in CONTROLLERS:
        top = "/sys/fs/cgroup/%s/%s" % (controller, prefix)
        for directory, _subdirs, _files in sorted(os.walk(top), key=lambda w: -w[0].count("/")):
            os.rmdir(directory)


def main():
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    prefix = "cfbench-" + secrets.token_hex(3)
    try:
        _made, ids = build(prefix, count)
        wanted = ids[len(ids) // 2]
        inproc = []
        for _ in range(5):
            started = time.perf_counter()
            target = node_resolver({})
            found = target.resolve({"container_id": wanted})
            inproc.append(time.perf_counter() - started)
            assert found[0]["container_id"] == wanted
        args = tempfile.NamedTemporaryFile("w", suffix=".json", delete=False)
        json.dump({"ANSIBLE_MODULE_ARGS": {"container_id": wanted[:12]}}, args)
        args.close()
        env = dict(os.environ, PYTHONPATH=os.path.join(REPO, ".collections"))
        module = os.path.join(REPO, "plugins", "modules", "cgroup_info.py")
        process = []
        for _ in range(5):
            started = time.perf_counter()
            out = subprocess.run([sys.executable, module, args.name], env=env, stdout=subprocess.PIPE, check=True)
            process.append(time.perf_counter() - started)
            assert json.loads(out.stdout)["cgroups"][0]["container_id"] == wanted
        os.unlink(args.name)
        print("container cgroups on the node: %d" % count)
        print("resolve in-process (median of 5): %.3f s" % statistics.median(inproc))
        print("cgroup_info module process, python start to exit_json (median of 5): %.3f s" % statistics.median(process))
        print("target: < 0.5 s -> %s" % ("met" if statistics.median(process) < 0.5 else "NOT met"))
    finally:
        remove(prefix)


if __name__ == "__main__":
    main()
