"""Stop means stop: an interrupted or cancelled memory_stress ends every node's stress within 5 s.

The stop guard (plugins/plugin_utils/_stop_guard.py) is a process outside the playbook's process
group. Each case starts ansible-playbook in its own session, waits until every node holds its
stress, sends the signal as a terminal or a job runner does, and measures from the signal to the
moment the last stress-ng process left each node's cgroups (read from the host: cgroup.procs and
each process's comm, not what the code under test claims). It then checks the node's own event log
(exactly one stop_requested), the exit code, the per-node lines and the stop record.

Timing-sensitive: lab + slow, like the other fleet tests, which run one at a time.
"""

import json
import os
import signal
import time
from pathlib import Path

import pytest

from tests.integration.fleet_fixtures import fleet  # noqa: F401  pylint: disable=unused-import
from tests.integration.fleet_fixtures import (ENV, REPO, ansible_lost_the_interrupt, fast_experiment, guard_alive,
                                              guard_record, kill_group, kill_guard, one_stop_found_it_running,
                                              start_playbook, unique, wait_for)

pytestmark = [pytest.mark.lab, pytest.mark.slow, pytest.mark.serial]

PROMISE_SECONDS = 5.0
LINE = "[chaosfleet stop]"


def events(fleet, node, name):
    path = Path(fleet.root(node) + "/run/chaosfleet/experiments/%s/events.jsonl" % name)
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def stops(fleet, node, name):
    return [e for e in events(fleet, node, name) if e.get("event") == "stop_requested"]


def holding(fleet, node, name):
    status = fleet.status(node, name) or {}
    return status.get("state") == "running" and status.get("phase") == "holding" and fleet.stress_pids(node)


def gone_times(fleet, nodes, since, limit):
    """Seconds from ``since`` until the last stress process left each node's cgroups (None: still there)."""
    gone = {}
    deadline = since + limit
    while time.time() < deadline and len(gone) < len(nodes):
        for node in nodes:
            if node not in gone and not fleet.stress_pids(node):
                gone[node] = time.time() - since
        time.sleep(0.05)
    return dict((n, gone.get(n)) for n in nodes)


def send(proc, how):
    """Signal a playbook this test started, as a terminal or a job runner does; returns when it was sent."""
    sent = time.time()
    if how == "SIGINT":           # Ctrl-C: SIGINT to the whole foreground process group
        os.killpg(proc.pid, signal.SIGINT)
    elif how == "SIGINTx2":       # Ctrl-C twice
        os.killpg(proc.pid, signal.SIGINT)
        time.sleep(0.3)
        os.killpg(proc.pid, signal.SIGINT)
    elif how == "SIGTERM":        # kill PID: ansible-playbook alone
        os.kill(proc.pid, signal.SIGTERM)
    elif how == "cancel":         # ansible-runner 2.4.3's cancel: os.killpg(os.getpgid(pid), SIGKILL)
        os.killpg(os.getpgid(proc.pid), signal.SIGKILL)
    return sent


class Interrupted(object):
    """One interrupted run: the playbook, its log, the guard's record, and the cleanup on every path."""

    def __init__(self, fleet, tmp_path, name, env=None, **overrides):
        self.fleet, self.name = fleet, name
        self.guards = tmp_path / "guards"
        self.reports = tmp_path / "reports"
        self.log = tmp_path / "run.log"
        values = fast_experiment(experiment_name=name, experiment_duration="120s",
                                 experiment_report_dest=str(self.reports), experiment_stop_guard_dir=str(self.guards))
        values.update(overrides)
        self.proc = start_playbook(fleet, "chaosfleet.stress.memory_stress", values, log_path=str(self.log), env=env)
        self.guard = None

    def wait_holding(self):
        assert wait_for(lambda: all(holding(self.fleet, n, self.name) for n in self.fleet.nodes), 120), \
            self.text()[-3000:]
        self.guard = guard_record(self.guards)
        assert guard_alive(self.guard), "no stop guard running"

    def text(self):
        return self.log.read_text() if self.log.exists() else ""

    def lines(self):
        # A killed playbook may leave half a line; the guard's lines follow it.
        return [line[line.index(LINE):] for line in self.text().splitlines() if LINE in line]

    def close(self):
        if self.proc.poll() is None:
            kill_group(self.proc)
        else:
            self.proc.wait()
        # The guard leaves by itself after the stop; one that did not is a failure (asserted) and still removed.
        if guard_alive(self.guard):
            wait_for(lambda: not guard_alive(self.guard), 15, interval=0.1)
        kill_guard(self.guard)


@pytest.mark.parametrize("how", ["SIGINT", "SIGINTx2", "SIGTERM", "cancel"])
def test_an_interrupted_run_stops_every_node_within_five_seconds(fleet, tmp_path, how):
    name = unique("intr")
    run = Interrupted(fleet, tmp_path, name)
    try:
        run.wait_holding()
        time.sleep(1)  # a heartbeat or two in, as a person reaching for Ctrl-C
        sent = send(run.proc, how)
        gone = gone_times(fleet, fleet.nodes, sent, 20)
        rc = run.proc.wait(timeout=120)  # after a Ctrl-C that ansible-core lost, the play goes on to its end
        assert wait_for(lambda: len(run.lines()) >= 1 + len(fleet.nodes), 15, interval=0.1), run.text()[-3000:]
        assert wait_for(lambda: not guard_alive(run.guard), 15, interval=0.1), "the guard outlived its stop"
    finally:
        run.close()
    print("%s: signal -> last stress gone per node: %s" % (how, dict((n, round(s, 2)) for n, s in gone.items())))
    for node, seconds in gone.items():
        assert seconds is not None and seconds <= PROMISE_SECONDS, (node, gone, run.text()[-3000:])
    lost = how.startswith("SIGINT") and ansible_lost_the_interrupt(run.text())
    assert rc != 0 or lost
    for node in fleet.nodes:
        assert one_stop_found_it_running(stops(fleet, node, name), lost), (node, events(fleet, node, name))
        assert fleet.outcome(node, name)["reason"] == "stop", fleet.outcome(node, name)
    lines = run.lines()
    expected_signal = {"SIGINT": "SIGINT", "SIGINTx2": "SIGINT", "SIGTERM": "SIGTERM", "cancel": None}[how]
    header = lines[0]
    assert "experiment %s interrupted" % name in header, lines
    if expected_signal:
        assert "(%s)" % expected_signal in header, lines
    for node in fleet.nodes:
        assert len([l for l in lines if " on %s: stopped," % node in l]) == 1, lines
    record = json.loads((run.reports / ("stress-report-%s.stop.json" % name)).read_text())
    assert record["interrupted"] and record["unreachable"] == []
    assert sorted(record["hosts"]) == fleet.nodes
    for node in fleet.nodes:
        assert record["hosts"][node]["stopped_at"] - sent <= PROMISE_SECONDS + 1
    if expected_signal:
        assert record["signal"] == expected_signal
    # Nothing of the guard is left: its directory (with the hosts' connection variables) is gone.
    assert list(run.guards.glob("chaosfleet-guard-*")) == []


# Makes ansible-playbook drop its KeyboardInterrupt as ansible-core does when a Ctrl-C lands while it forks
# a worker (measured: 1 of 12 Ctrl-Cs on a fork-heavy play; the CI run of 2026-12-07 hit it).
LOSES_CTRL_C = {"ANSIBLE_CALLBACK_PLUGINS": str(Path(__file__).parent / "plugins" / "callback"),
                "ANSIBLE_CALLBACKS_ENABLED": "lose_ctrl_c"}


@pytest.mark.parametrize("moment", ["mid-task", "between tasks"])
def test_a_ctrl_c_that_ansible_core_loses_still_stops_every_node_within_five_seconds(fleet, tmp_path, moment):
    """The play goes on after the lost Ctrl-C, but ansible-playbook's handler reset SIGINT to its default
    before it raised: the guard reads that in /proc/PID/status and stops every node. The play then sees every
    node ended, rolls back (a second, harmless stop request: running false) and ends failed.

    mid-task: the test sends SIGINT while a tick's task runs; ansible-playbook forwards it to that task's
    workers, one dies, and the play ends with exit 1. between tasks: ansible-playbook sends it to itself at a
    task start (no worker to forward it to), the play goes on whole, writes its report, and the role's failure
    step fails it (exit 2): the disarm step read the reset handler too."""
    name = unique("intrlost")
    trigger = tmp_path / "ctrl-c"
    env = dict(LOSES_CTRL_C, CHAOSFLEET_TEST_CTRL_C_FILE=str(trigger)) if moment == "between tasks" else LOSES_CTRL_C
    run = Interrupted(fleet, tmp_path, name, env=env)
    try:
        run.wait_holding()
        time.sleep(1)
        if moment == "between tasks":
            trigger.write_text("")
            assert wait_for(lambda: (tmp_path / "ctrl-c.sent").exists(), 30, interval=0.02), run.text()[-3000:]
            sent = float((tmp_path / "ctrl-c.sent").read_text())
        else:
            sent = send(run.proc, "SIGINT")
        gone = gone_times(fleet, fleet.nodes, sent, 20)
        rc = run.proc.wait(timeout=120)
    finally:
        run.close()
    print("lost SIGINT %s: signal -> last stress gone per node: %s; the play ended %s" % (
        moment, dict((n, round(s, 2)) for n, s in gone.items()), rc))
    assert ansible_lost_the_interrupt(run.text()) and "Exception ignored in: lose_ctrl_c" in run.text()
    for node, seconds in gone.items():
        assert seconds is not None and seconds <= PROMISE_SECONDS, (node, gone, run.text()[-3000:])
    lines = run.lines()
    assert "experiment %s interrupted (SIGINT)" % name in lines[0], lines
    for node in fleet.nodes:
        assert len([l for l in lines if " on %s: stopped," % node in l]) == 1, lines
        assert fleet.outcome(node, name)["reason"] == "stop", fleet.outcome(node, name)
        assert one_stop_found_it_running(stops(fleet, node, name), lost=True), events(fleet, node, name)
    if moment == "mid-task":
        assert rc in (1, 2), run.text()[-3000:]
    else:
        assert rc == 2, run.text()[-3000:]
        assert "interrupted (SIGINT): ansible-core lost the interrupt and the play went on" in run.text()
        assert (run.reports / ("stress-report-%s.json" % name)).exists()


def test_a_node_the_stop_cannot_reach_is_named_and_its_dead_man_ends_it(fleet, tmp_path):
    name = unique("intrcut")
    run = Interrupted(fleet, tmp_path, name, experiment_heartbeat_timeout="10s")
    try:
        run.wait_holding()
        timeout = fleet.experiment_file("node3", name, "spec.json")["plan"]["heartbeat_timeout_seconds"]
        fleet.link("node3", "down")
        try:
            sent = send(run.proc, "SIGINT")
            gone = gone_times(fleet, ["node1", "node2"], sent, 20)
            run.proc.wait(timeout=60)
            assert wait_for(lambda: len(run.lines()) >= 1 + len(fleet.nodes), 20, interval=0.1), run.text()[-3000:]
            # node3 cannot hear anyone: its own dead-man ends the stress.
            assert wait_for(lambda: fleet.outcome("node3", name), timeout + 10, interval=0.1)
            assert not fleet.stress_pids("node3")
        finally:
            fleet.link("node3", "up")
    finally:
        run.close()
    for node, seconds in gone.items():
        assert seconds is not None and seconds <= PROMISE_SECONDS, (node, gone)
    lines = run.lines()
    assert len([l for l in lines if " on node3: could not be reached" in l and "dead-man" in l]) == 1, lines
    assert fleet.outcome("node3", name)["reason"] == "heartbeat"
    assert stops(fleet, "node3", name) == []
    record = json.loads((run.reports / ("stress-report-%s.stop.json" % name)).read_text())
    assert record["unreachable"] == ["node3"] and record["hosts"]["node3"]["stopped"] is False


def test_the_guard_leaves_at_a_normal_end_and_stops_nothing(fleet, tmp_path):
    """The guard is dismissed after the rollback: no second stop, no line, nothing left."""
    name = unique("introk")
    run = Interrupted(fleet, tmp_path, name, experiment_duration="8s")
    try:
        run.wait_holding()
        rc = run.proc.wait(timeout=300)
        assert wait_for(lambda: not guard_alive(run.guard), 10, interval=0.1)
    finally:
        run.close()
    assert rc == 0, run.text()[-3000:]
    assert run.lines() == []
    for node in fleet.nodes:
        assert len(stops(fleet, node, name)) == 1
        assert fleet.outcome(node, name)["reason"] == "deadline"
    assert list(run.guards.glob("chaosfleet-guard-*")) == []
    assert not (run.reports / ("stress-report-%s.stop.json" % name)).exists()


def test_an_ansible_runner_cancel_stops_every_node_and_the_guard_finishes_soon_after(fleet, tmp_path):
    """As AWX cancels: ansible_runner.run with a cancel_callback that turns true once every node holds
    its stress. Measures the cancel -> last stress gone, and how long the guard still runs after
    ansible-runner returned (in a container group the job's pod goes away after that)."""
    ansible_runner = pytest.importorskip("ansible_runner")
    name = unique("intrawx")
    guards = tmp_path / "guards"
    extravars = dict((k, str(v)) for k, v in fast_experiment(
        experiment_name=name, experiment_duration="120s", experiment_report_dest=str(tmp_path / "reports"),
        experiment_stop_guard_dir=str(guards)).items())
    marks = {}

    def cancel():
        if "cancel" in marks:
            return True
        if all(holding(fleet, n, name) for n in fleet.nodes):
            marks["guard"] = guard_record(guards)
            marks["cancel"] = time.time()
            return True
        return False

    private = tmp_path / "runner"
    private.mkdir()
    envvars = dict((k, v) for k, v in ENV.items() if k.startswith("ANSIBLE_") or k == "PATH")
    try:
        runner = ansible_runner.run(
            private_data_dir=str(private), project_dir=str(REPO), playbook="chaosfleet.stress.memory_stress",
            inventory=fleet.inventory, extravars=extravars, ident="cancel", quiet=True, timeout=600,
            envvars=envvars, cancel_callback=cancel)
        returned = time.time()
        gone = gone_times(fleet, fleet.nodes, marks["cancel"], 20)
        assert wait_for(lambda: not guard_alive(marks["guard"]), 20, interval=0.05)
        guard_done = time.time()
    finally:
        kill_guard(marks.get("guard"))
    print("runner cancel: cancel -> last stress gone %s; runner returned %.2f s after the cancel; the guard ended "
          "%.2f s after runner returned" % (dict((n, round(s, 2)) for n, s in gone.items()),
                                            returned - marks["cancel"], guard_done - returned))
    assert runner.status == "canceled"
    for node, seconds in gone.items():
        assert seconds is not None and seconds <= PROMISE_SECONDS, (node, gone)
    for node in fleet.nodes:
        assert len(stops(fleet, node, name)) == 1, (node, events(fleet, node, name))
    # The job's terminal is hung up when the playbook (its session leader) dies, so the guard's lines do not
    # reach the job's output under ansible-runner; the stop record and the nodes' own logs carry the stop.
    record = json.loads((tmp_path / "reports" / ("stress-report-%s.stop.json" % name)).read_text())
    assert record["unreachable"] == [] and sorted(record["hosts"]) == fleet.nodes
    assert record["signal"] in ("SIGKILL", None)
