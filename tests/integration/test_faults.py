"""Faults on the 3-node SSH fleet, all real: a killed controller, a node cut off, a restarted target,
a failing steady-state probe, and two experiments on one target.

The nodes are watched from the host side (their cgroups and /run), which keeps working when a
node's link is down and does not go through the code under test.
"""

import json
import os
import time
from pathlib import Path

import pytest

from tests.integration.fleet_fixtures import fleet  # noqa: F401  pylint: disable=unused-import
from tests.integration.fleet_fixtures import (REPO, fast_experiment, guard_alive, guard_record, kill_controller, kill_group,
                                              run_playbook, start_playbook, unique, wait_for)

pytestmark = [pytest.mark.lab, pytest.mark.slow]

START_STRESS = str(REPO / "tests" / "integration" / "playbooks" / "fleet_start_stress.yml")


def holding(fleet, node, name):
    status = fleet.status(node, name) or {}
    return status.get("state") == "running" and status.get("phase") == "holding" and fleet.stress_pids(node)


def node_processes(fleet, node):
    """(pid, cmdline) of every process the node can see, read through the node's own /proc."""
    proc = Path(fleet.root(node) + "/proc")
    out = []
    for entry in proc.iterdir():
        if entry.name.isdigit():
            try:
                out.append((int(entry.name), (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()))
            except OSError:
                pass
    return out


def leftovers(fleet, node):
    """Stress, supervisors or module runs still alive on the node."""
    return [(pid, cmd) for pid, cmd in node_processes(fleet, node)
            if "stress-ng" in cmd or "_supervisor" in cmd or "AnsiballZ" in cmd]


def stops_requested(fleet, node, name):
    path = Path(fleet.root(node) + "/run/chaosfleet/experiments/%s/events.jsonl" % name)
    return sum(1 for line in path.read_text().splitlines() if '"stop_requested"' in line)


@pytest.mark.serial
def test_killed_controller_all_stress_gone_within_heartbeat_timeout(fleet, tmp_path):
    name = unique("kill")
    timeout = 8
    values = fast_experiment(experiment_name=name, experiment_duration="120s", experiment_heartbeat_interval=2,
                             experiment_heartbeat_timeout="%ds" % timeout, experiment_report_dest=str(tmp_path),
                             experiment_stop_guard_dir=str(tmp_path / "guards"))
    proc = start_playbook(fleet, "chaosfleet.stress.memory_stress", values, log_path=str(tmp_path / "run.log"))
    try:
        assert wait_for(lambda: all(holding(fleet, n, name) for n in fleet.nodes), 120), \
            (tmp_path / "run.log").read_text()[-3000:]
        assert guard_alive(guard_record(tmp_path / "guards"))
        time.sleep(3)  # a few heartbeats in
    finally:
        # A machine that dies takes the stop guard with it: only the dead-man is left.
        guard = kill_controller(proc, tmp_path / "guards")
    killed = time.time()
    assert not guard_alive(guard)
    # The dead-man the nodes got: the configured one, or longer when the controller's rounds are
    # slow (the role derives it from the measured check round and reports it).
    timeout = max(fleet.experiment_file(n, name, "spec.json")["plan"]["heartbeat_timeout_seconds"] for n in fleet.nodes)

    def all_gone():
        return all(not fleet.stress_pids(n) and not fleet.supervisor_alive(n, name) for n in fleet.nodes)

    assert wait_for(all_gone, timeout + 2 + 1, interval=0.1)
    gone = time.time()
    assert gone - killed <= timeout + 2, "stress outlived the dead-man by %.1fs" % (gone - killed - timeout)
    for node in fleet.nodes:
        outcome = fleet.outcome(node, name)
        assert outcome["reason"] == "heartbeat", outcome
        assert outcome["processes_left"] == []
        assert stops_requested(fleet, node, name) == 0, "a stop reached the node of a dead controller"
        # No orphan: nothing of the experiment or of Ansible is left running on the node.
        assert wait_for(lambda: not leftovers(fleet, node), 5), leftovers(fleet, node)


@pytest.mark.serial
def test_node_cut_off_stops_by_itself_others_finish_and_rollback_reports(fleet, tmp_path):
    name = unique("cut")
    timeout = 15
    values = fast_experiment(experiment_name=name, experiment_duration="30s", experiment_heartbeat_interval=2,
                             experiment_heartbeat_timeout="%ds" % timeout, experiment_report_dest=str(tmp_path))
    proc = start_playbook(fleet, "chaosfleet.stress.memory_stress", values, log_path=str(tmp_path / "run.log"))
    try:
        assert wait_for(lambda: all(holding(fleet, n, name) for n in fleet.nodes), 120)
        # The dead-man node3 got (the role may lengthen the configured one for a slow controller).
        timeout = fleet.experiment_file("node3", name, "spec.json")["plan"]["heartbeat_timeout_seconds"]
        fleet.link("node3", "down")
        cut = time.time()
        try:
            # The node cannot hear the controller any more; its own dead-man ends the stress.
            assert wait_for(lambda: fleet.outcome("node3", name), timeout + 2 + 1, interval=0.1)
            assert time.time() - cut <= timeout + 2
            assert fleet.outcome("node3", name)["reason"] == "heartbeat"
            assert not fleet.stress_pids("node3")
            rc = proc.wait(timeout=300)
        finally:
            fleet.link("node3", "up")
    finally:
        if proc.poll() is None:
            kill_group(proc)
    log = (tmp_path / "run.log").read_text()
    assert rc == 2, log[-4000:]  # node3 failed (lost), the others did not
    assert "node3: lost contact with the node during the stress" in log.replace("experiment %s on " % name, "")
    for node in ("node1", "node2"):
        assert fleet.outcome(node, name)["reason"] == "deadline", node
    report = json.loads((tmp_path / ("stress-report-%s.json" % name)).read_text())
    assert sorted(report["hosts"]["ok"]) == ["node1", "node2"]
    assert [f["host"] for f in report["hosts"]["failed"]] == ["node3"]
    assert "lost contact" in report["hosts"]["failed"][0]["msg"]

    rollback = run_playbook(fleet, "chaosfleet.stress.rollback", {"rollback_experiments": [name]})
    assert rollback.rc == 0, rollback
    assert "node3: stopped nothing; already ended: %s (aborted, heartbeat)" % name in rollback.out
    assert "node1: stopped nothing; already ended: %s (finished, deadline)" % name in rollback.out


def test_target_restarted_mid_experiment_is_reported_not_a_crash(fleet, tmp_path):
    name = unique("restart")
    values = fast_experiment("payments", experiment_name=name, experiment_duration="25s",
                             experiment_report_dest=str(tmp_path))
    old = fleet.container("node2", "payments")["id"]
    proc = start_playbook(fleet, "chaosfleet.stress.memory_stress", values, log_path=str(tmp_path / "run.log"))
    try:
        assert wait_for(lambda: all(holding(fleet, n, name) for n in fleet.nodes), 120)
        fleet.restart_pod("node2", "payments")
        rc = proc.wait(timeout=300)
    finally:
        if proc.poll() is None:
            kill_group(proc)
    assert fleet.container("node2", "payments")["id"] != old
    log = (tmp_path / "run.log").read_text()
    assert rc == 0, log[-4000:]
    report = json.loads((tmp_path / ("stress-report-%s.json" % name)).read_text())
    assert sorted(report["hosts"]["ok"]) == fleet.nodes
    node2 = report["results"]["node2"]
    assert (node2["status"], node2["reason"]) == ("aborted", "target_gone")
    assert node2["target"]["container_id"] == old
    for node in ("node1", "node3"):
        assert report["results"][node]["reason"] == "deadline"
    assert fleet.stress_pids("node2") == []


@pytest.mark.serial
def test_failing_probe_aborts_and_rolls_back_on_every_node(fleet, tmp_path):
    name = unique("probe")
    marker = unique("cf-break")
    values = fast_experiment(
        experiment_name=name, experiment_duration="60s", experiment_report_dest=str(tmp_path),
        experiment_probe_failure_threshold=0,
        experiment_probes=[{"name": "marker", "type": "command",
                            "command": ["test", "!", "-e", "/var/tmp/" + marker]}])
    proc = start_playbook(fleet, "chaosfleet.stress.memory_stress", values, log_path=str(tmp_path / "run.log"))
    try:
        assert wait_for(lambda: all(holding(fleet, n, name) for n in fleet.nodes), 120)
        fleet.node_file("node2", marker).write_text("")
        broke = time.time()
        rc = proc.wait(timeout=300)
    finally:
        if proc.poll() is None:
            kill_group(proc)
        if fleet.node_file("node2", marker).exists():
            os.unlink(str(fleet.node_file("node2", marker)))
    log = (tmp_path / "run.log").read_text()
    assert rc == 2, log[-4000:]  # the role fails the play after the report, when aborted
    for node in fleet.nodes:
        outcome = fleet.outcome(node, name)
        assert outcome["reason"] == "stop", (node, outcome)
        assert outcome["ended_at"] < broke + 20 < outcome["deadline"]
        assert outcome["processes_left"] == [] and not fleet.stress_pids(node)
    report = json.loads((tmp_path / ("stress-report-%s.json" % name)).read_text())
    assert report["verdict"] == "fail"
    for node in fleet.nodes:
        result = report["results"][node]
        assert (result["status"], result["reason"]) == ("aborted", "abort")
        assert "probe marker failed 1 times on node2" in result["abort_reason"]
    assert report["results"]["node2"]["steady_state"]["held"] is False
    assert report["results"]["node1"]["steady_state"]["held"] is True
    assert "aborted: probe marker failed" in log


def test_second_experiment_on_the_same_target_is_refused(fleet, tmp_path):
    first, second = unique("first"), unique("second")
    run = run_playbook(fleet, START_STRESS, {"stress_name": first, "stress_pod": "hello"}, limit="node1")
    assert run.rc == 0, run
    try:
        refused = run_playbook(fleet, "chaosfleet.stress.memory_stress",
                               fast_experiment(experiment_name=second, experiment_report_dest=str(tmp_path)),
                               limit="node1")
        assert refused.rc != 0
        assert "experiment %s already runs on" % first in refused.out
        assert "one experiment per target" in refused.out
        assert not os.path.exists(fleet.root("node1") + "/run/chaosfleet/experiments/" + second)
        assert (fleet.status("node1", first) or {}).get("state") == "running"
    finally:
        stop = run_playbook(fleet, "chaosfleet.stress.rollback", {"rollback_experiments": [first]}, limit="node1")
        assert stop.rc == 0, stop
    assert fleet.outcome("node1", first)["reason"] == "stop"
