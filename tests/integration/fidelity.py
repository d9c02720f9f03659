"""Request against achieved, read from the target's cgroup every 100 ms (tests and `make bench` share it).

- ``measure_memory``: run the stressor module with a memory request; steady increase, peak, side CPU, OOM kills.
- ``measure_cpu``: run the stressor module with a CPU load; cores burned over a 10 s window.
- ``measure_peer_memory`` / ``measure_peer_cpu``: the same figures for stress-ng as peer tools invoke it.
The sampler and the summary are tests/lab/peer_stress.py's, so both sides are measured alike.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

from tests.integration.ansible_helpers import comm, is_zombie, ok, wait_for
from tests.lab import peer_stress
from tests.lab.peer_stress import Sampler, cgroup_file, cpu_seconds, oom_kills, settled_working_set, summarize

MI = 1024 * 1024


def module_directly(module, args, python="/usr/bin/python3"):
    """Run a collection module as a plain Python process (its args in a file, as AnsibleModule reads them).

    The node's own python, as Ansible would pick it: the module's supervisor then starts without a venv.
    """
    with tempfile.NamedTemporaryFile("w", suffix=".json") as handle:
        json.dump({"ANSIBLE_MODULE_ARGS": args}, handle)
        handle.flush()
        proc = subprocess.run([python, "-m", "ansible_collections.chaosfleet.stress.plugins.modules." + module,
                               handle.name], stdout=subprocess.PIPE, universal_newlines=True, timeout=300,
                              env=dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p)))
    result = json.loads(proc.stdout)
    assert not result.get("failed"), result.get("msg", result)
    return result


# How the measurements run a module: through Ansible on localhost, or module_directly inside the TCG VM,
# where starting Ansible takes most of a minute.
RUNNER = {"module": ok}


def stress_pids(cgroup_path):
    """Live stress-ng processes in the cgroup, on a v1 or a v2 node."""
    with open(cgroup_file("memory", cgroup_path, "cgroup.procs")) as handle:
        pids = [int(p) for p in handle.read().split()]
    return [p for p in pids if (comm(p) or "").startswith("stress-ng") and not is_zombie(p)]


def phase(state_dir, name):
    from ansible_collections.chaosfleet.stress.plugins.module_utils._experiment import Experiment
    return Experiment(state_dir, name).status().get("phase")


def stop(state_dir, name, cgroup_path):
    """Stop the experiment, remove its record, and wait until its stress processes are gone."""
    RUNNER["module"]("stressor", dict(name=name, state="absent", state_dir=state_dir))
    shutil.rmtree(os.path.join(state_dir, "experiments", name), ignore_errors=True)
    wait_for(lambda: not stress_pids(cgroup_path), 15)


def measure_memory(container_id, cgroup_path, state_dir, memory, hold=3.0, name="fidelity", inspect=None):
    """Start a memory experiment, wait for the module's hold phase, and measure it over `hold` seconds.

    Returns summarize()'s figures plus settle_seconds (start to hold). ``inspect`` is called while
    holding (to check where the stress processes run) before the experiment stops.
    """
    baseline, oom_before = settled_working_set(cgroup_path), oom_kills(cgroup_path)
    with Sampler(cgroup_path) as sampler:
        started = time.monotonic()
        try:
            RUNNER["module"]("stressor", dict(name=name, container_id=container_id, state_dir=state_dir,
                                              duration="120s", memory=memory))
            holding = wait_for(lambda: phase(state_dir, name) in ("holding", "ending", "ended"), 90)
            hold_from = time.monotonic()
            time.sleep(hold)
            hold_to = time.monotonic()
            if inspect:
                inspect()
        finally:
            stop(state_dir, name, cgroup_path)
    result = summarize(sampler.samples, baseline, hold_from, hold_to, oom_before)
    result.update(settle_seconds=hold_from - started, reached_hold=bool(holding), baseline_bytes=baseline)
    return result


def cores_over(cgroup_path, seconds):
    before, started = cpu_seconds(cgroup_path), time.monotonic()
    time.sleep(seconds)
    return (cpu_seconds(cgroup_path) - before) / (time.monotonic() - started)


def measure_cpu(container_id, cgroup_path, state_dir, load, window=10.0, warmup=2.0, name="fidelity-cpu"):
    """Cores the cgroup burns over `window` seconds with a CPU experiment at `load` percent of its quota."""
    RUNNER["module"]("stressor", dict(name=name, container_id=container_id, state_dir=state_dir, duration="120s",
                                      cpu={"load": load}))
    try:
        time.sleep(warmup)
        return cores_over(cgroup_path, window)
    finally:
        stop(state_dir, name, cgroup_path)


def measure_peer_memory(cgroup_path, args, seconds=6.0):
    """peer_stress.run: stress-ng with the user's numbers passed straight through."""
    return peer_stress.run(cgroup_path, seconds, args)


def measure_peer_cpu(cgroup_path, args, window=10.0, warmup=2.0):
    proc = subprocess.Popen(["stress-ng"] + args + ["--timeout", "%ds" % (warmup + window + 5)],
                            preexec_fn=peer_stress.attach_to(cgroup_path), start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(warmup)
        return cores_over(cgroup_path, window)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the group started here
        proc.wait()
        wait_for(lambda: not stress_pids(cgroup_path), 10)
