"""Wall time to inject stress and to roll it back on 1, 3 and 10 SSH lab nodes (run by `make bench`).

    .venv/bin/python benchmarks/bench_fleet.py [--nodes 1,3,10] [--repeat 3] [--json FILE]

For each fleet size (tests/lab/fleet.py builds it: one sshd, netns and lab pods per node) it runs
two ansible-playbook runs per approach and times each:

- chaosfleet: inject = chaosfleet.stress.stressor (joins the pod's cgroup, supervisor with
  dead-man); roll back = the chaosfleet.stress.rollback role (lists the node's experiments, stops
  each, reports).
- bare: inject = ansible.builtin.shell starting stress-ng in the background (no cgroup, no
  dead-man); roll back = read its PID and ansible.builtin.command: kill.

Both include ansible-playbook's own start-up, as a user sees it. The table shows medians of
--repeat runs and the ratio chaosfleet/bare of inject + roll back (target: at most 1.3).

Then the full chaosfleet.stress.memory_stress playbook (64Mi for 30 s, the role's defaults:
heartbeat every 5 s, dead-man 30 s) on fleets of --full-nodes (1, 3, 10, 30, 50): wall time,
overhead (wall - 30 s), heartbeat round p50/p95, controller CPU-seconds per node (ansible-playbook
and its workers), and how each node ended. Targets: every node ends at its deadline; overhead
<= 15 s at 3 nodes and <= 30 s at 30; heartbeat round p95 <= a third of the dead-man at 30 nodes.
On the same fleet, before it, a bare play (seven ansible.builtin.ping rounds and a 30 s pause) gives
the yardstick of the controller's share: at 30 nodes the full run's overhead is at most 1.5 times the
bare play's, and the controller spends at most 1 CPU-second per node.
docs/guides/scale.md has the table and the plan for 1,000 nodes built from these figures.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from tests.integration.fleet_fixtures import ANSIBLE_PLAYBOOK, ENV, down, up  # noqa: E402
from tests.integration.fleet_scale import bare_run, full_run  # noqa: E402

TARGET_RATIO = 1.3
OVERHEAD_TARGETS = {3: 15.0, 30: 30.0}   # nodes: seconds
HEARTBEAT_SHARE_NODES = 30               # heartbeat p95 <= a third of the dead-man from here on
# The controller's share (issue 22), at 30 nodes: the full run's overhead over the bare play's (seven ping
# rounds and the same pause, fleet_scale.BARE_PLAY), and the controller's CPU per node.
SHARE_NODES = 30
SHARE_RATIO_ANCHOR = 1.5
CPU_PER_NODE_ANCHOR = 1.0
SIZE = "32Mi"

PLAYBOOKS = {
    "chaosfleet_inject": """
- hosts: fleet
  gather_facts: false
  tasks:
    - chaosfleet.stress.stressor:
        name: "{{ bench_name }}"
        container_id: "{{ fleet_pods.hello.container_id }}"
        memory: {size: %(size)s}
        duration: 120s
        heartbeat_timeout: 120s
""" % {"size": SIZE},
    "chaosfleet_rollback": """
- hosts: fleet
  gather_facts: false
  roles:
    - role: chaosfleet.stress.rollback
      rollback_experiments: ["{{ bench_name }}"]
""",
    "bare_inject": """
- hosts: fleet
  gather_facts: false
  tasks:
    - ansible.builtin.shell: >-
        setsid stress-ng --vm 1 --vm-bytes 32M --vm-keep --timeout 120s > /dev/null 2>&1 &
        echo $! > /var/tmp/{{ bench_name }}.pid
""",
    "bare_rollback": """
- hosts: fleet
  gather_facts: false
  tasks:
    - ansible.builtin.slurp:
        src: /var/tmp/{{ bench_name }}.pid
      register: pid_file
    - ansible.builtin.command:
        argv: [kill, "{{ pid_file.content | b64decode | trim }}"]
""",
}


def run(playbook_dir, name, fleet, bench_name):
    started = time.time()
    command = [ANSIBLE_PLAYBOOK, "-i", fleet.inventory, os.path.join(playbook_dir, name + ".yml"),
               "-e", "bench_name=" + bench_name]
    proc = subprocess.run(command, check=False, cwd=REPO, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          universal_newlines=True)
    seconds = time.time() - started
    if proc.returncode != 0:
        raise RuntimeError("%s failed:\n%s" % (name, proc.stdout[-3000:]))
    return seconds


def wait_no_stress(fleet, timeout=15):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if not any(fleet.stress_pids(node) for node in fleet.nodes):
            return
        time.sleep(0.1)
    raise RuntimeError("stress-ng still running after the roll back")


def host_stress_count(fleet):
    """stress-ng processes of the bare approach live outside the pods' cgroups: count them by node PID 1."""
    count = 0
    for node in fleet.nodes:
        root = fleet.root(node) + "/proc"
        for entry in os.listdir(root):
            if entry.isdigit():
                try:
                    with open(os.path.join(root, entry, "comm")) as handle:
                        count += handle.read().startswith("stress-ng")
                except OSError:
                    pass
    return count


def measure(fleet, playbook_dir, repeat):
    times = {"chaosfleet": {"inject": [], "rollback": []}, "bare": {"inject": [], "rollback": []}}
    for index in range(repeat):
        order = ("chaosfleet", "bare") if index % 2 == 0 else ("bare", "chaosfleet")
        for approach in order:
            bench_name = "bench-%s-%d-%d" % (approach, os.getpid(), index)
            times[approach]["inject"].append(run(playbook_dir, approach + "_inject", fleet, bench_name))
            if approach == "chaosfleet" and not all(fleet.stress_pids(n) for n in fleet.nodes):
                raise RuntimeError("the stressor did not start stress-ng in every pod")
            times[approach]["rollback"].append(run(playbook_dir, approach + "_rollback", fleet, bench_name))
            wait_no_stress(fleet)
            deadline = time.time() + 15
            while host_stress_count(fleet) and time.time() < deadline:
                time.sleep(0.1)
    return dict((a, dict((p, statistics.median(v)) for p, v in phases.items())) for a, phases in times.items())


def full_runs(sizes):
    """One full memory_stress run per fleet size; returns the rows and whether every target was met."""
    rows, ok = [], True
    for count in sizes:
        fleet = up(count)
        try:
            with tempfile.TemporaryDirectory(prefix="cf-bench-report-") as reports:
                bare = bare_run(fleet, reports)
                row = full_run(fleet, "bench-full-%d-%d" % (os.getpid(), count), reports)
        finally:
            down(fleet)
        row.pop("log_tail")
        row["bare"] = bare
        row["share_ratio"] = round(row["overhead_seconds"] / max(bare["overhead_seconds"], 0.1), 2)
        problems = []
        if row["endings"] != {"deadline": count}:
            problems.append("not every node ended at its deadline")
        if count in OVERHEAD_TARGETS and row["overhead_seconds"] > OVERHEAD_TARGETS[count]:
            problems.append("overhead over %ds" % OVERHEAD_TARGETS[count])
        if count >= HEARTBEAT_SHARE_NODES and (row["heartbeat_p95_seconds"] or 0) > \
                (row["heartbeat_timeout_seconds"] or 0) / 3.0:
            problems.append("heartbeat p95 over a third of the dead-man")
        if count == SHARE_NODES and row["share_ratio"] > SHARE_RATIO_ANCHOR:
            problems.append("overhead %.2fx the bare play's (anchor %.1f)" % (row["share_ratio"], SHARE_RATIO_ANCHOR))
        if count == SHARE_NODES and row["cpu_seconds_per_node"] > CPU_PER_NODE_ANCHOR:
            problems.append("controller CPU %.2f s per node (anchor %.1f)" % (row["cpu_seconds_per_node"],
                                                                              CPU_PER_NODE_ANCHOR))
        row["problems"] = problems
        ok = ok and not problems
        rows.append(row)
    print("nodes | wall | overhead (bare play, ratio) | heartbeat p50 / p95 (dead-man) | controller CPU-s per node "
          "(bare) | endings | targets")
    for row in rows:
        print("%5d | %5.1fs | %6.1fs (%5.1fs, %.2f) | %5s / %5s s (%s s) | %6.2f (%.2f) | %s | %s" % (
            row["nodes"], row["wall_seconds"], row["overhead_seconds"], row["bare"]["overhead_seconds"],
            row["share_ratio"], row["heartbeat_p50_seconds"], row["heartbeat_p95_seconds"],
            row["heartbeat_timeout_seconds"], row["cpu_seconds_per_node"], row["bare"]["cpu_seconds_per_node"],
            ", ".join("%s %d" % item for item in sorted(row["endings"].items())),
            "ok" if not row["problems"] else "; ".join(row["problems"])))
    return rows, ok


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--nodes", default="1,3,10")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--full-nodes", default="1,3,10,30,50",
                        help="fleet sizes for the full memory_stress run (empty: skip it)")
    parser.add_argument("--json", help="also write the figures here")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        parser.error("the fleet needs root")
    rows = []
    with tempfile.TemporaryDirectory(prefix="cf-bench-") as playbook_dir:
        for name, text in PLAYBOOKS.items():
            with open(os.path.join(playbook_dir, name + ".yml"), "w") as handle:
                handle.write(text)
        for count in [int(n) for n in args.nodes.split(",") if n]:
            fleet = up(count)
            try:
                medians = measure(fleet, playbook_dir, args.repeat)
            finally:
                down(fleet)
            ours = medians["chaosfleet"]["inject"] + medians["chaosfleet"]["rollback"]
            bare = medians["bare"]["inject"] + medians["bare"]["rollback"]
            rows.append({"nodes": count, "chaosfleet": medians["chaosfleet"], "bare": medians["bare"],
                         "ratio": ours / bare})
    print("nodes | chaosfleet inject | chaosfleet rollback | bare inject | bare rollback | ratio (target <= %.1f)"
          % TARGET_RATIO)
    for row in rows:
        print("%5d | %16.2fs | %18.2fs | %10.2fs | %12.2fs | %.2f %s" % (
            row["nodes"], row["chaosfleet"]["inject"], row["chaosfleet"]["rollback"], row["bare"]["inject"],
            row["bare"]["rollback"], row["ratio"], "ok" if row["ratio"] <= TARGET_RATIO else "OVER"))
    full, full_ok = full_runs([int(n) for n in args.full_nodes.split(",") if n]) if args.full_nodes else ([], True)
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"target_ratio": TARGET_RATIO, "repeat": args.repeat, "rows": rows, "full_runs": full},
                      handle, indent=2)
    return 0 if full_ok else 1


if __name__ == "__main__":
    sys.exit(main())
