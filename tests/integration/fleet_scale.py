"""One full chaosfleet.stress.memory_stress run on a lab fleet, measured as a user sees it.

Shared by benchmarks/bench_fleet.py (1 to 50 nodes, `make bench`) and
tests/integration/test_fleet_scale.py (the session's 3-node fleet: the behaviour, no figures).
"""

import collections
import json
import resource
import subprocess
import time

from tests.integration.fleet_fixtures import ENV, REPO, playbook_cmd

DURATION = 30
SIZE = "64Mi"


def experiment_vars(name, report_dest, duration=DURATION):
    """The issue's run: 64Mi for 30 s with the role's defaults for everything else."""
    return {"experiment_name": name, "experiment_container_id": "{{ fleet_pods.hello.container_id }}",
            "experiment_memory_size": SIZE, "experiment_duration": "%ds" % duration,
            "experiment_report_dest": str(report_dest)}


# The yardstick of the controller's share (issue 22): what Ansible alone costs for a play as long as the
# experiment, with about as many round trips to each node as an experiment has phases.
BARE_PLAY = """
- hosts: fleet
  gather_facts: false
  tasks:
    - {ansible.builtin.ping: {}}
    - {ansible.builtin.ping: {}}
    - {ansible.builtin.ping: {}}
    - {ansible.builtin.pause: {seconds: %d}}
    - {ansible.builtin.ping: {}}
    - {ansible.builtin.ping: {}}
    - {ansible.builtin.ping: {}}
    - {ansible.builtin.ping: {}}
"""


def children_cpu():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _timed(cmd, timeout):
    """(process, wall seconds, controller CPU-seconds of ansible-playbook and its workers)."""
    cpu, started = children_cpu(), time.time()
    proc = subprocess.run(cmd, check=False, cwd=str(REPO), env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          universal_newlines=True, timeout=timeout)
    return proc, time.time() - started, children_cpu() - cpu


def bare_run(fleet, playbook_dir, duration=DURATION, timeout=900):
    """The bare play (BARE_PLAY) on the same fleet: wall time, overhead over its pause, controller CPU."""
    path = "%s/bare-play.yml" % playbook_dir
    with open(path, "w") as handle:
        handle.write(BARE_PLAY % duration)
    proc, wall, cpu = _timed(playbook_cmd(fleet, path), timeout)
    if proc.returncode != 0:
        raise RuntimeError("the bare play failed:\n" + proc.stdout[-3000:])
    return {"nodes": len(fleet.nodes), "wall_seconds": round(wall, 1), "overhead_seconds": round(wall - duration, 1),
            "controller_cpu_seconds": round(cpu, 1), "cpu_seconds_per_node": round(cpu / len(fleet.nodes), 2)}


def full_run(fleet, name, report_dest, duration=DURATION, timeout=900):
    """Run the playbook once; returns wall time, overhead, controller CPU, heartbeat figures and endings."""
    cmd = playbook_cmd(fleet, "chaosfleet.stress.memory_stress", experiment_vars(name, report_dest, duration))
    proc, wall, cpu = _timed(cmd, timeout)
    endings = collections.Counter()
    for node in fleet.nodes:
        outcome = fleet.outcome(node, name) or {}
        endings[outcome.get("reason") or "none"] += 1
    heartbeat = {}
    try:
        with open("%s/stress-report-%s.json" % (report_dest, name)) as handle:
            results = json.load(handle)["results"]
        heartbeat = next(iter(results.values()))["heartbeat"] or {}
    except (OSError, ValueError, StopIteration):
        pass
    return {"nodes": len(fleet.nodes), "rc": proc.returncode, "wall_seconds": round(wall, 1),
            "overhead_seconds": round(wall - duration, 1), "controller_cpu_seconds": round(cpu, 1),
            "cpu_seconds_per_node": round(cpu / len(fleet.nodes), 2),
            "heartbeat_p50_seconds": heartbeat.get("round_p50_seconds"),
            "heartbeat_p95_seconds": heartbeat.get("round_p95_seconds"),
            "heartbeat_timeout_seconds": heartbeat.get("timeout_seconds"),
            "endings": dict(endings), "log_tail": proc.stdout[-4000:]}
