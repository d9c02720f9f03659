#!/usr/bin/env python3
"""Fidelity: what was asked against what the target's cgroup shows, beside stress-ng as peer tools invoke it.

    .venv/bin/python benchmarks/bench_fidelity.py [--only memory|ramp|vm|cpu ...] [--json FILE]

Targets: runc pods of the lab (tests/lab/lab.py), one with its CPU quota lifted, a Docker and a Podman
container (tests/lab/engines.py). Each memory case runs twice on the same target: the stressor module
through Ansible, and stress-ng attached to the cgroup with the user's numbers passed straight through
(`--vm W --vm-bytes SIZE --vm-keep`, tests/lab/peer_stress.py). The cgroup is read every 100 ms:

- steady: the median working-set increase while the module holds (peer: over the second half of 6 s,
  20 s in the v2 VM, where qemu's TCG runs everything slower);
- peak: the largest increase at any sample from the start to the end of the hold, above the request;
- side CPU: cores the cgroup burned while holding memory (cpuacct);
- OOM kills: memory.oom_control's oom_kill counter.

Ramp cases: linear ramps on the runc pod `hello`; the worst distance of any 100 ms sample from the ramp's
line, as a share of the request (target: 3 %), and the peak above the request.

CPU cases: a load (percent of the quota) on quotas of 0.5, 1 and 1.5 cores (the Docker container,
re-quota'd with `docker update --cpus`), cores measured over 10 s after 8 s of warm-up; the peer gets
`--cpu <quota rounded up> --cpu-load <load>`. The load average is printed with each table: CPU figures
need a quiet machine.
"""

import argparse
import json
import math
import os
import secrets
import shutil
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
sys.path.insert(0, os.path.join(REPO, ".collections"))

from tests.integration.engine_fixtures import (  # noqa: E402
    create_engine, destroy_engine, engine_container, engine_unavailable,
)
from tests.integration.ansible_helpers import wait_for  # noqa: E402
from tests.integration.fidelity import (  # noqa: E402
    RUNNER, cpu_case, memory_case, module_directly, peer_cpu_case, peer_memory_case, ramp_deviation, stress_pids,
)
from tests.integration.lab_fixtures import create_lab, destroy_lab, lab_container, lab_pod  # noqa: E402
from tests.lab.engines import docker_cli  # noqa: E402
from tests.lab.peer_stress import V2, cgroup_file  # noqa: E402

MI = 1024 * 1024
LIMIT_MARGIN = 32 * MI
CPU_QUOTAS = (0.5, 1.0, 1.5)
SECTIONS = ("memory", "ramp", "vm", "cpu")
RAMPS = (("64Mi", "10s"), ("200Mi", "10s"), ("200Mi", "30s"), ("400Mi", "20s"))
VM_BOOT_TIMEOUT = 400
CPU_LOADS = (10, 25, 50, 75, 100)


def read(controller, path, name):
    with open(cgroup_file(controller, path, name)) as handle:
        return handle.read().split()


def settled(path):
    """Between cases: no stress process left in the target, and a second for the kernel to uncharge."""
    wait_for(lambda: not stress_pids(path), 20)
    time.sleep(1)


def load_average():
    return "load average %.2f / %.2f / %.2f (1/5/15 min)" % os.getloadavg()


def lift_cpu_quota(lab, pod_name):
    """A pod without a CPU limit: quota -1 on the pod, then on its container."""
    pod = lab_pod(lab, pod_name)
    for path in (pod["cgroup_path"], lab_container(lab, pod_name)["cgroup_path"]):
        with open(os.path.join("/sys/fs/cgroup/cpu", path.lstrip("/"), "cpu.cfs_quota_us"), "w") as handle:
            handle.write("-1")


def target(label, container_id, cgroup_path):
    if V2:
        limit = int(read("memory", cgroup_path, "memory.max")[0])
        quota, period = read("cpu", cgroup_path, "cpu.max")
        cores = None if quota == "max" else int(quota) / int(period)
    else:
        limit = int(read("memory", cgroup_path, "memory.limit_in_bytes")[0])
        quota = int(read("cpu", cgroup_path, "cpu.cfs_quota_us")[0])
        cores = quota / int(read("cpu", cgroup_path, "cpu.cfs_period_us")[0]) if quota > 0 else None
    return {"label": label, "id": container_id, "cgroup_path": cgroup_path, "limit": limit, "quota": cores}


def memory_cases(targets):
    """(target, bytes meant, module memory request, peer stress-ng args) for every memory case."""
    def case(t, size, workers=1, peer_size=None):
        meant = size if isinstance(size, int) else t["limit"] * int(size[:-1]) // 100
        request = {"size": "%dMi" % (size // MI) if isinstance(size, int) else size, "workers": workers}
        peer = ["--vm", str(workers), "--vm-bytes", peer_size or "%dM" % (meant // MI), "--vm-keep"]
        return (t, meant, request, peer)

    hello, no_quota, docker, podman, vm = (targets.get(k) for k in ("hello", "no-quota", "docker", "podman", "vm"))
    out = []
    if hello:
        top = hello["limit"] - LIMIT_MARGIN
        out += [case(hello, 32 * MI), case(hello, 200 * MI), case(hello, 200 * MI, 4), case(hello, 200 * MI, 16),
                case(hello, "50%", peer_size="50%"), case(hello, top), case(hello, top, 4)]
    if vm:
        # Fewer cases: everything runs slowly under qemu's TCG.
        out += [case(vm, 32 * MI), case(vm, 200 * MI, 4), case(vm, vm["limit"] - LIMIT_MARGIN)]
    if no_quota:
        out += [case(no_quota, 200 * MI), case(no_quota, no_quota["limit"] - LIMIT_MARGIN, 4)]
    for engine in (docker, podman):
        if engine:
            out += [case(engine, 200 * MI), case(engine, engine["limit"] - LIMIT_MARGIN, 4)]
    return out


def run_memory(targets, state_dir, quiet=False, peer_seconds=6.0):
    rows = []
    for t, meant, request, peer_args in memory_cases(targets):
        case = memory_case(state_dir, t, request, timeout=t.get("timeout", 60))
        ours = dict((key, case[key]) for key in ("request_bytes", "baseline_bytes", "held", "steady_bytes",
                                                 "peak_bytes", "side_cpu_cores", "oom_kills"))
        settled(t["cgroup_path"])
        theirs = peer_memory_case(t["cgroup_path"], peer_args, peer_seconds)
        settled(t["cgroup_path"])
        rows.append({"target": t["label"], "limit": t["limit"], "quota": t["quota"], "meant": meant,
                     "request": request, "ours": ours, "peer_argv": peer_args, "peer": theirs})
        if not quiet:
            print_memory_row(rows[-1], flush=True)
    return rows


MEMORY_HEADER = (
    "| target (limit, CPU quota) | request | meant | stressor: steady (error) | peak above request | side CPU | OOM "
    "| stress-ng as peers pass it | steady (error) | peak above request | side CPU | OOM |\n"
    "|---|---|---|---|---|---|---|---|---|---|---|---|")


def mib(value):
    return "%.1f MiB" % (value / MI)


def print_memory_row(row, flush=False):
    meant = row["meant"]
    request = "%s, %d worker%s" % (row["request"]["size"], row["request"]["workers"],
                                   "" if row["request"]["workers"] == 1 else "s")
    quota = "%.1f cores" % row["quota"] if row["quota"] else "no quota"
    cells = ["%s (%s, %s)" % (row["target"], mib(row["limit"]), quota), request, mib(meant)]
    for figures in (row["ours"], row["peer"]):
        if figures is not row["ours"]:
            cells.append("`%s`" % " ".join(row["peer_argv"]))
        never_held = " never held" if figures.get("held") is False else ""
        cells += ["%s (%+.1f%%)%s" % (mib(figures["steady_bytes"]), 100.0 * (figures["steady_bytes"] - meant) / meant,
                                      never_held),
                  "%+.1f MiB" % ((figures["peak_bytes"] - meant) / MI),
                  "%.3f cores" % figures["side_cpu_cores"], "%d" % figures["oom_kills"]]
    print("| " + " | ".join(cells) + " |", flush=flush)


def run_cpu(docker, docker_prefix, state_dir):
    rows = []
    for quota in CPU_QUOTAS:
        subprocess.run(docker_cli(docker_prefix) + ["update", "--cpus", str(quota), docker["id"]], check=True,
                       stdout=subprocess.DEVNULL)
        assert int(read("cpu", docker["cgroup_path"], "cpu.cfs_quota_us")[0]) == int(quota * 1e5)
        for load in CPU_LOADS:
            ours = cpu_case(state_dir, docker, load)["cores"]
            settled(docker["cgroup_path"])
            peer_args = ["--cpu", str(math.ceil(quota)), "--cpu-load", str(load)]
            theirs = peer_cpu_case(docker["cgroup_path"], peer_args)
            settled(docker["cgroup_path"])
            rows.append({"quota": quota, "load": load, "ours_cores": ours, "peer_argv": peer_args,
                         "peer_cores": theirs, "loadavg": os.getloadavg()[0]})
            print_cpu_row(rows[-1], flush=True)
    return rows


def run_ramps(hello, state_dir):
    rows = []
    print("| target | ramp | worst distance from the line | peak above request | OOM |\n|---|---|---|---|---|",
          flush=True)
    for size, ramp in RAMPS:
        case = memory_case(state_dir, hello, {"size": size, "ramp": ramp}, timeout=90)
        row = {"size": size, "ramp": ramp, "worst_share": ramp_deviation(case),
               "peak_above_bytes": case["peak_bytes"] - case["request_bytes"], "oom_kills": case["oom_kills"]}
        rows.append(row)
        print("| %s | %s over %s | %.1f %% | %+.1f MiB | %d |" % (
            hello["label"], size, ramp, 100 * row["worst_share"], row["peak_above_bytes"] / MI, row["oom_kills"]),
            flush=True)
        settled(hello["cgroup_path"])
    return rows


CPU_HEADER = ("| quota | load | asked | stressor | error | stress-ng as peers pass it | burned | error | load avg (1 min) |\n"
              "|---|---|---|---|---|---|---|---|---|")


def print_cpu_row(row, flush=False):
    quota, load = row["quota"], row["load"]
    asked = quota * load / 100.0
    cells = ["%.1f cores" % quota, "%d%%" % load, "%.3f cores" % asked,
             "%.3f cores (%.1f%%)" % (row["ours_cores"], 100 * row["ours_cores"] / quota),
             "%+.1f points" % (100 * row["ours_cores"] / quota - load),
             "`%s`" % " ".join(row["peer_argv"]),
             "%.3f cores (%.1f%%)" % (row["peer_cores"], 100 * row["peer_cores"] / quota),
             "%+.1f points" % (100 * row["peer_cores"] / quota - load), "%.2f" % row["loadavg"]]
    print("| " + " | ".join(cells) + " |", flush=flush)


def guest_rows(lab_state_path):
    """Inside the v2 VM: the memory cases on its runc pod `hello`, printed as one JSON line."""
    RUNNER["module"] = module_directly
    with open(lab_state_path) as handle:
        lab = json.load(handle)
    hello = lab_container(lab, "hello")
    state_dir = "/run/cflab-bench-guest-experiments"
    try:
        vm = target("v2 VM runc pod hello", hello["id"], hello["cgroup_path"])
        # Everything is slower under TCG: stress-ng faults its pages in over many seconds.
        vm["timeout"] = 240
        rows = run_memory({"vm": vm}, state_dir, quiet=True, peer_seconds=20.0)
    finally:
        stop_all(state_dir)
    print("ROWS " + json.dumps(rows))


def vm_memory():
    """Boot the v2 VM (tests/vm/vm.py), run guest_rows in it, print its rows; the VM is powered off after."""
    from tests.integration.vm_fixtures import new_vm_name, run_vm, vm_ssh, vm_unavailable

    if vm_unavailable():
        print("(v2 VM skipped: %s)" % vm_unavailable())
        return []
    name = new_vm_name()
    try:
        # A generous boot timeout: the bench may run while the machine is busy, and TCG shares its CPUs.
        summary = json.loads(run_vm("up", "--name", name, "--timeout", str(VM_BOOT_TIMEOUT),
                                    timeout=VM_BOOT_TIMEOUT + 120).stdout)
        lab_state = "%s/%s.json" % (summary["guest_lab_state_dir"], summary["lab"]["prefix"])
        out = vm_ssh({"name": name}, os.path.join(REPO, ".venv", "bin", "python"), os.path.abspath(__file__),
                     "--guest-lab", lab_state, timeout=1800).stdout
    finally:
        run_vm("down", "--name", name, check=False)
    rows = json.loads(out.split("ROWS ", 1)[1])
    for row in rows:
        print_memory_row(row, flush=True)
    return rows


def stop_all(state_dir):
    from ansible_collections.chaosfleet.stress.plugins.module_utils._experiment import Experiment
    from ansible_collections.chaosfleet.stress.plugins.module_utils._state import list_experiments
    for name in list_experiments(state_dir):
        Experiment(state_dir, name).stop()
    shutil.rmtree(state_dir, ignore_errors=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", action="append", choices=SECTIONS,
                        help="run only this section (repeatable): memory (runc, Docker, Podman), vm (memory on the "
                             "cgroup v2 VM, slow), cpu; default all")
    parser.add_argument("--json", help="also write every figure to this file")
    parser.add_argument("--guest-lab", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.guest_lab:
        return guest_rows(args.guest_lab)
    sections = args.only or SECTIONS
    state_dir = "/run/cflab-bench-%s-experiments" % secrets.token_hex(2)
    labs, engines = [], []
    results = {"started": time.time()}
    try:
        targets = {}
        if {"memory", "ramp"} & set(sections):
            lab = create_lab("cflab-bench" + secrets.token_hex(2))
            labs.append(lab["prefix"])
            hello = lab_container(lab, "hello")
            targets["hello"] = target("runc pod hello", hello["id"], hello["cgroup_path"])
            lift_cpu_quota(lab, "checkout")
            checkout = lab_container(lab, "checkout")
            targets["no-quota"] = target("runc pod checkout", checkout["id"], checkout["cgroup_path"])
        for engine, extra in (("docker", ("--cpus", "1")), ("podman", ())):
            if engine_unavailable(engine) or (engine == "podman" and "memory" not in sections) or (
                    engine == "docker" and not {"memory", "cpu"} & set(sections)):
                continue
            state = create_engine(engine, None, *extra)
            engines.append(state["prefix"])
            container = engine_container(state)
            targets[engine] = target("%s container" % engine.capitalize(), container["id"], container["cgroup_path"])
            targets[engine]["prefix"] = state["prefix"]
        if {"memory", "vm"} & set(sections):
            print("Memory, %s at the start" % load_average())
            print(MEMORY_HEADER, flush=True)
            results["memory"] = run_memory(targets, state_dir) if "memory" in sections else []
            if "vm" in sections:
                results["memory"] += vm_memory()
            print("(%s at the end)\n" % load_average())
        if "ramp" in sections:
            print("Ramps, %s at the start" % load_average())
            results["ramp"] = run_ramps(targets["hello"], state_dir)
            print("(%s at the end)\n" % load_average())
        if "cpu" in sections and "docker" in targets:
            print("CPU on the Docker container, %s at the start" % load_average())
            print(CPU_HEADER, flush=True)
            results["cpu"] = run_cpu(targets["docker"], targets["docker"]["prefix"], state_dir)
            print("(%s at the end)" % load_average())
    finally:
        stop_all(state_dir)
        for prefix in engines:
            destroy_engine(prefix)
        for prefix in labs:
            destroy_lab(prefix)
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(results, handle, indent=1)


if __name__ == "__main__":
    main()
