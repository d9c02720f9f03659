"""The rollback on every path, counted from each node's own event log (events.jsonl).

The stop is a handler: notified by the inject when it started the stress, flushed on every
path. Each node records every stop request (event stop_requested), so these tests count
the rollbacks where they happen. An interrupted ansible-playbook is stopped by its stop guard,
once per node.
"""

import json
import os
import signal
import time
from pathlib import Path

import pytest

from tests.integration.fleet_fixtures import fleet  # noqa: F401  pylint: disable=unused-import
from tests.integration.fleet_fixtures import (ansible_lost_the_interrupt, fast_experiment, guard_alive, guard_record,
                                              kill_group, kill_guard, one_stop_found_it_running, run_playbook,
                                              start_playbook, stop_experiment, unique, wait_for)
from tests.lab.fleet import NODE_PYTHON

pytestmark = [pytest.mark.lab, pytest.mark.slow]


def events(fleet, node, name):
    path = Path(fleet.root(node) + "/run/chaosfleet/experiments/%s/events.jsonl" % name)
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def stops(fleet, node, name):
    return [e for e in events(fleet, node, name) if e.get("event") == "stop_requested"]


def holding(fleet, node, name):
    status = fleet.status(node, name) or {}
    return status.get("state") == "running" and status.get("phase") == "holding"


def test_normal_end_stops_each_node_exactly_once(fleet, tmp_path):
    name = unique("once")
    run = run_playbook(fleet, "chaosfleet.stress.memory_stress",
                       fast_experiment(experiment_name=name, experiment_report_dest=str(tmp_path)))
    assert run.rc == 0, run
    for node in fleet.nodes:
        assert fleet.outcome(node, name)["reason"] == "deadline"
        assert len(stops(fleet, node, name)) == 1, (node, events(fleet, node, name))
    assert run.out.count("RUNNING HANDLER [chaosfleet.stress.experiment : Stop the stress]") == 1
    result = json.loads((tmp_path / ("stress-report-%s.json" % name)).read_text())["results"]["node1"]
    assert result["heartbeat"]["rounds"] >= 1 and result["heartbeat"]["round_p95_seconds"] is not None


def test_abort_stops_each_node_exactly_once(fleet, tmp_path):
    name = unique("abort1")
    marker = unique("cf-break")
    values = fast_experiment(
        experiment_name=name, experiment_duration="60s", experiment_report_dest=str(tmp_path),
        experiment_probes=[{"name": "marker", "type": "command", "command": ["test", "!", "-e", "/var/tmp/" + marker]}])
    proc = start_playbook(fleet, "chaosfleet.stress.memory_stress", values, log_path=str(tmp_path / "run.log"))
    try:
        assert wait_for(lambda: all(holding(fleet, n, name) for n in fleet.nodes), 120)
        fleet.node_file("node3", marker).write_text("")
        rc = proc.wait(timeout=300)
    finally:
        if proc.poll() is None:
            kill_group(proc)
        if fleet.node_file("node3", marker).exists():
            os.unlink(str(fleet.node_file("node3", marker)))
    assert rc == 2, (tmp_path / "run.log").read_text()[-4000:]
    for node in fleet.nodes:
        assert fleet.outcome(node, name)["reason"] == "stop"
        assert len(stops(fleet, node, name)) == 1, (node, events(fleet, node, name))


@pytest.mark.serial
def test_failed_task_on_one_host_stops_it_once_and_the_others_finish(fleet, tmp_path):
    """A task fails on node2 mid-stress: node2's Python interpreter is read from a file that is removed while
    the stress holds, so its next module run, the probe round, fails on node2 only (the heartbeat is a raw
    command, which needs no interpreter). The file comes back once that failure is logged, so node2's
    rollback can reach it. node1 and node3 run to their deadline. node2 gets no more heartbeats, so its
    dead-man ends its stress within the timeout (the linear strategy runs its rescue/always, and so its stop
    handler, once the others left the monitor). Every node gets exactly one stop request."""
    name = unique("failone")
    interpreters = tmp_path / "python"
    interpreters.mkdir()
    for node in fleet.nodes:
        (interpreters / node).write_text(NODE_PYTHON)
    log_path = tmp_path / "run.log"
    values = fast_experiment(
        experiment_name=name, experiment_duration="40s", experiment_report_dest=str(tmp_path / "reports"),
        experiment_probes=[{"name": "hello", "run_on": "node", "url": "http://127.0.0.1:{{ fleet_pods.hello.http_port }}/"}],
        ansible_python_interpreter="{{ lookup('ansible.builtin.file', '%s/' ~ inventory_hostname) }}" % interpreters)
    proc = start_playbook(fleet, "chaosfleet.stress.memory_stress", values, log_path=str(log_path))
    try:
        assert wait_for(lambda: all(holding(fleet, n, name) for n in fleet.nodes), 120)
        broke = time.time()
        (interpreters / "node2").unlink()
        try:
            assert wait_for(lambda: "fatal: [node2]" in log_path.read_text(), 60), log_path.read_text()[-3000:]
        finally:
            (interpreters / "node2").write_text(NODE_PYTHON)
        rc = proc.wait(timeout=300)
    finally:
        if proc.poll() is None:
            kill_group(proc)
    log = log_path.read_text()
    assert rc == 2, log[-4000:]  # node2 fails the play after the report
    outcome = fleet.outcome("node2", name)
    timeout = fleet.experiment_file("node2", name, "spec.json")["plan"]["heartbeat_timeout_seconds"]
    assert outcome["reason"] in ("heartbeat", "stop") and outcome["ended_at"] <= broke + timeout + 5, outcome
    for node in ("node1", "node3"):
        assert fleet.outcome(node, name)["reason"] == "deadline", node
    for node in fleet.nodes:
        assert len(stops(fleet, node, name)) == 1, (node, events(fleet, node, name))
    report = json.loads((tmp_path / "reports" / ("stress-report-%s.json" % name)).read_text())
    error = report["results"]["node2"]["controller_error"] or ""
    assert error.startswith("Probe the steady state (stress) failed") and str(interpreters / "node2") in error, error


@pytest.mark.serial
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_interrupted_playbook_stops_each_node_exactly_once(fleet, tmp_path, sig):
    """Ctrl-C (SIGINT) or a job runner's SIGTERM to the whole group: the stop guard stops every node at once,
    with one stop request each (tests/integration/test_interrupt.py measures each way of interrupting).

    ansible-core now and then loses a Ctrl-C that lands while it forks a worker, and the play goes on: the
    guard still stops every node at once (it reads the playbook's reset handler), and the play's own rollback
    then adds a second request that finds the stress ended (running false)."""
    name = unique("intr")
    values = fast_experiment(experiment_name=name, experiment_duration="120s", experiment_report_dest=str(tmp_path),
                             experiment_stop_guard_dir=str(tmp_path / "guards"))
    proc = start_playbook(fleet, "chaosfleet.stress.memory_stress", values, log_path=str(tmp_path / "run.log"))
    guard = None
    try:
        assert wait_for(lambda: all(holding(fleet, n, name) for n in fleet.nodes), 120), \
            (tmp_path / "run.log").read_text()[-3000:]
        guard = guard_record(tmp_path / "guards")
        os.killpg(proc.pid, sig)  # as Ctrl-C (SIGINT) or a job runner's cancel (SIGTERM) does
        interrupted = time.time()
        assert wait_for(lambda: all(fleet.outcome(n, name) for n in fleet.nodes), 10, interval=0.1)
        rc = proc.wait(timeout=120)
        assert wait_for(lambda: not guard_alive(guard), 15, interval=0.1)
    finally:
        if proc.poll() is None:
            kill_group(proc)
        kill_guard(guard)
        if not all(fleet.outcome(n, name) for n in fleet.nodes):
            stop_experiment(fleet, name)
    log = (tmp_path / "run.log").read_text()
    lost = sig == signal.SIGINT and ansible_lost_the_interrupt(log)
    assert rc != 0 or lost, log[-3000:]
    for node in fleet.nodes:
        outcome = fleet.outcome(node, name)
        assert outcome["reason"] == "stop", (node, outcome)
        assert outcome["ended_at"] <= interrupted + 5
        assert one_stop_found_it_running(stops(fleet, node, name), lost), (node, events(fleet, node, name))
