"""The whole experiment on a mixed fleet: the v1 SSH nodes and the cgroup v2 VM node in one play,
then the VM crashing mid-experiment (issue: cgroup v2 on a real kernel)."""

import json
import time
import types

import pytest

from tests.integration.fleet_fixtures import down, fleet_unavailable, up
from tests.integration.fleet_fixtures import fast_experiment, kill_group, run_playbook, start_playbook, unique
from tests.integration.vm_fixtures import run_vm, vm_hostvars, vm_lab_hostvars, vm_ssh
from tests.integration.vm_fixtures import vm_node  # noqa: F401  pylint: disable=unused-import

# Serial: a ramp's size and a start within a time bound on the emulated VM, which a busy machine bends (two full
# runs in December 2026 failed both tests in the parallel pass, each passing alone). The module's own v1 nodes
# (the fixture below) keep it apart from the shared fleet either way.
pytestmark = [pytest.mark.lab, pytest.mark.slow, pytest.mark.serial, pytest.mark.xdist_group("vm")]
MiB = 1024 * 1024


@pytest.fixture(scope="module")
def fleet():
    """Two SSH nodes for this module alone, taken down after it, pass or fail."""
    reason = fleet_unavailable()
    if reason:
        pytest.skip(reason)
    built = up(2)
    try:
        yield built
    finally:
        down(built)


# Under qemu's software emulation one module run on the VM takes seconds, and each heartbeat
# may take a third of the heartbeat timeout: give the mixed fleet room.


def mixed_inventory(fleet, vm, path, vm_host="vmnode"):
    """The fleet's inventory with the VM added to the same group."""
    inventory = json.load(open(fleet.inventory))
    group = inventory["all"]["children"]["fleet"]["hosts"]
    group[vm_host] = dict(vm_hostvars(vm["summary"]), **vm_lab_hostvars(vm))
    path.write_text(json.dumps(inventory))
    return types.SimpleNamespace(inventory=str(path), nodes=sorted(group))


def test_memory_experiment_on_v1_nodes_and_the_v2_vm_in_one_play(fleet, vm_node, tmp_path):
    mixed = mixed_inventory(fleet, vm_node, tmp_path / "mixed.json")
    name = unique("mixed")
    extra = fast_experiment(experiment_name=name, experiment_report_dest=str(tmp_path),
                            experiment_memory_ramp="4s", experiment_sample_interval="500ms",
                            experiment_duration="18s", experiment_heartbeat_timeout="45s")
    run = run_playbook(mixed, "chaosfleet.stress.memory_stress", extra)
    assert run.rc == 0, "\n".join(l for l in (run.out + run.err).splitlines() if "fatal" in l or "FAILED" in l or "msg" in l)[-4000:]
    report = json.loads((tmp_path / ("stress-report-%s.json" % name)).read_text())
    assert sorted(report["hosts"]["ok"]) == mixed.nodes and not report["hosts"]["missing"]
    versions = dict((host, report["results"][host]["target"]["cgroup_version"]) for host in mixed.nodes)
    assert versions == dict((host, 2 if host == "vmnode" else 1) for host in mixed.nodes)
    vm_result = report["results"]["vmnode"]
    assert (vm_result["status"], vm_result["reason"]) == ("finished", "deadline")
    assert vm_result["target"]["oom_group"] is True
    # The preflight warns of the blast radius on the v2 VM's container only (Ansible may wrap a warning's lines).
    shown = " ".join((run.out + run.err).split())
    assert shown.count("has memory.oom.group=1: if the stress drives it into OOM") == 1, shown[-3000:]
    # v2 only: PSI sampled from memory.pressure during the experiment.
    assert any(s.get("psi_memory_some_avg10") is not None for s in vm_result["samples"])
    assert 0.8 * 32 * MiB <= vm_result["achieved"]["working_set_increase_bytes"] <= 1.25 * 32 * MiB
    assert vm_result["recovery"]["recovered"] is True
    left = vm_ssh(vm_node, "cat", "/sys/fs/cgroup%s/cgroup.procs" % vm_node["lab"]["pods"][0]["containers"][0]
                  ["cgroup_path"], check=False).stdout.split()
    assert len(left) <= 1  # only the app itself


@pytest.mark.ends_the_vm  # the crash is the session's VM's end: after every other test that uses it (conftest.py)
def test_a_vm_crash_mid_experiment_is_reported_as_lost_and_the_others_finish(fleet, vm_node, tmp_path):
    mixed = mixed_inventory(fleet, vm_node, tmp_path / "mixed.json", vm_host="crashnode")
    experiment = unique("crash")
    extra = fast_experiment(experiment_name=experiment, experiment_report_dest=str(tmp_path),
                            experiment_duration="25s", experiment_heartbeat_timeout="45s")
    proc = start_playbook(mixed, "chaosfleet.stress.memory_stress", extra, log_path=str(tmp_path / "play.log"))
    try:
        status = "/run/chaosfleet/experiments/%s/status.json" % experiment
        deadline = time.time() + 120
        while time.time() < deadline:
            out = vm_ssh(vm_node, "cat", status, check=False).stdout
            if '"state": "running"' in out:
                break
            time.sleep(1)
        else:
            raise AssertionError("the stress never started on the VM:\n" + (tmp_path / "play.log").read_text())
        run_vm("kill", "--name", vm_node["name"])  # the node crashes; its owner takes down what is left
        rc = proc.wait(timeout=300)
    finally:
        if proc.poll() is None:
            kill_group(proc)
    log = (tmp_path / "play.log").read_text()
    assert rc != 0, log  # the play reports the lost node as failed
    report = json.loads((tmp_path / ("stress-report-%s.json" % experiment)).read_text())
    assert "crashnode" not in report["hosts"]["ok"], report["hosts"]
    failed = [f["host"] if isinstance(f, dict) else f for f in report["hosts"]["failed"]]
    assert "crashnode" in report["hosts"]["missing"] + failed, report["hosts"]
    for node in fleet.nodes:
        result = report["results"][node]
        assert (result["status"], result["reason"]) == ("finished", "deadline"), result["reason"]
        assert fleet.stress_pids(node) == []
