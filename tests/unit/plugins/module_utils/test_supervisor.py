"""_supervisor.py, the I/O shell around the decision core: run against a fake cgroup v2 tree, with a shell script
standing in for stress-ng (it lists its process group in the fake cgroup.procs and idles) and a real `sleep` as
the application. Checked: the status and outcome it writes, PID records with start times, the stop file, signals,
the deadline, the dead-man, a target that goes away, an attach that fails, and that nothing it started is left.

The decisions themselves are tables in test_supervisor_core.py. Every process here is one this test started (the
app, the supervisor's children); each test ends them by PID in a finally block.
"""

import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from ansible_collections.chaosfleet.stress.plugins.module_utils import _oom, _supervisor
from ansible_collections.chaosfleet.stress.plugins.module_utils import _state as state
from ansible_collections.chaosfleet.stress.plugins.module_utils._supervisor import (
    Supervisor, attach_dirs, own_cgroup_path,
)
from ansible_collections.chaosfleet.stress.plugins.module_utils._supervisor_core import Control
from tests.unit.nodefix import fixture_path

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))
# The fixture's memory.current less its inactive_file: the working set every sample reads.
FIXTURE_WS = 219152384 - 6291456
SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)

# Stands in for stress-ng: a leader and one worker in its process group. It runs after the supervisor attached it
# (in the fake tree that write only put "0" into cgroup.procs), lists the app and its group there as the kernel
# would, records its arguments, and idles. On SIGTERM the leader reaps its worker before it exits, so no worker is
# left to the machine's init.
IDLE = """sleep 10 &
worker=$!
trap 'kill $worker 2>/dev/null; wait $worker; exit 143' TERM
printf '%s\\n%s\\n%s\\n' {app} $$ $worker > {procs}
printf '%s\\n' "$*" >> {argv_log}
wait $worker
"""
# A worker that ignores SIGTERM (the disposition survives exec): only the SIGKILL that follows ends it.
STUBBORN = """(trap '' TERM; exec sleep 10) &
worker=$!
trap 'wait $worker; exit 143' TERM
printf '%s\\n%s\\n%s\\n' {app} $$ $worker > {procs}
printf '%s\\n' "$*" >> {argv_log}
wait $worker
"""
# Exits at once (a stress-ng that died), with no worker.
EXITS = """printf '%s\\n%s\\n' {app} $$ > {procs}
printf '%s\\n' "$*" >> {argv_log}
exit 3
"""


def fake_stress_ng(path, body, **values):
    with open(path, "w") as handle:
        handle.write("#!/bin/sh\n" + body.format(**values))
    os.chmod(path, 0o755)
    return path


def start_time(pid):
    return state.proc_start_time(pid)


def alive(pid):
    return state.proc_start_time(pid) is not None and state.proc_state(pid) != "Z"


class Node(object):
    """A fake v2 target cgroup with a live app in it, a fake stress-ng, and an experiment directory with its spec."""

    def __init__(self, tmp_path, body=IDLE, **plan):
        self.own_path = own_cgroup_path(2)
        if self.own_path is None:
            pytest.skip("this machine has no cgroup v2 line in /proc/self/cgroup")
        self.cgroup = str(tmp_path / "sysroot" / "cgroup")
        shutil.copytree(fixture_path("v2"), self.cgroup)
        self.procs = os.path.join(self.cgroup, "cgroup.procs")
        self.app = subprocess.Popen(["sleep", "30"], start_new_session=True)
        with open(self.procs, "w") as handle:
            handle.write("%d\n" % self.app.pid)
        self.dir = str(tmp_path / "experiment")
        os.makedirs(self.dir)
        self.argv_log = str(tmp_path / "argv.log")
        self.stress_ng = fake_stress_ng(str(tmp_path / "stress-ng"), body, app=self.app.pid, procs=self.procs,
                                        argv_log=self.argv_log)
        self.plan = {
            "duration_seconds": 0.8, "heartbeat_timeout_seconds": None, "sample_interval_seconds": 0.1,
            "oom_score_adj": 1000, "on_oom": "keep_pressure", "memory": None, "cpu": None, "io": None,
            "raw": {"args": ["--vm", "1", "--vm-bytes", "1M"]},
            "guard": {"max_working_set_bytes": None, "stop_on_app_oom_kill": False, "stop_if_target_gone": True},
        }
        self.plan.update(plan)
        self.target = {"path": self.own_path, "cgroup_version": 2, "kind": "container", "container_id": None,
                       "dirs": {"unified": self.cgroup}}
        self.supervisor = None

    def write_spec(self):
        state.write_json(self.path(state.SPEC), {"name": "exp", "target": self.target, "plan": self.plan,
                                                 "stress_ng": self.stress_ng, "proc_root": "/proc", "ns_pid": None})

    def path(self, name):
        return os.path.join(self.dir, name)

    def status(self):
        return state.read_json(self.path(state.STATUS), {})

    def events(self):
        return [e["event"] for e in state.read_jsonl(self.path(state.EVENTS))]

    def argvs(self):
        try:
            with open(self.argv_log) as handle:
                return handle.read().splitlines()
        except IOError:
            return []

    def run(self, on_tick=None, limit=6.0):
        """The supervisor in this process (the real clock, short timeouts); ``on_tick(node, supervisor, elapsed)``
        runs before each of its sleeps."""
        self.write_spec()
        began = time.time()

        def sleep(seconds):
            elapsed = time.time() - began
            assert elapsed < limit, "the supervisor did not end in %.1f s" % limit
            if on_tick:
                on_tick(self, self.supervisor, elapsed)
            time.sleep(seconds)

        self.supervisor = Supervisor(self.dir, sleep=sleep)
        return self.supervisor.run()

    def started(self):
        """Every instance record the supervisor has, with the members it saw."""
        if self.supervisor is None:
            return []
        return [dict(i.record, members=i.members) for i in self.supervisor.instances + self.supervisor.ended_instances]

    def cleanup(self):
        for record in self.started():
            state.kill_group_verified(record, grace=0.5)
        for instance in (self.supervisor.instances + self.supervisor.ended_instances) if self.supervisor else []:
            if instance.popen.poll() is None:
                instance.popen.kill()
            instance.popen.wait()
        if self.app.poll() is None:
            self.app.kill()
        self.app.wait()


@pytest.fixture
def node(tmp_path, monkeypatch):
    """A Node factory; signal handlers, the kernel log and every process are put back or ended afterwards."""
    saved = dict((signum, signal.getsignal(signum)) for signum in SIGNALS)

    class NoKernelLog(object):
        available = False
        error = None

        def read(self):
            return []

        def close(self):
            pass

    monkeypatch.setattr(_supervisor, "KernelLog", NoKernelLog)
    # The kernel lists only live processes in cgroup.procs; the fake file keeps every PID written to it.
    listed = _supervisor.read_pids
    monkeypatch.setattr(_supervisor, "read_pids", lambda dirs: [pid for pid in listed(dirs) if alive(pid)])
    monkeypatch.setattr(_oom, "kmsg_error", lambda path=None: None)
    made = []

    def make(**kwargs):
        made.append(Node(tmp_path, **kwargs))
        return made[-1]

    try:
        yield make
    finally:
        for signum, handler in saved.items():
            signal.signal(signum, handler)
        for each in made:
            each.cleanup()


def snapshot(into):
    """An on_tick that keeps each status written while stress runs, with /proc's start times of its PIDs."""
    def on_tick(node, _supervisor, _elapsed):
        status = node.status()
        if status.get("instances"):
            into.append((status, dict((m[0], start_time(m[0])) for i in status["instances"] for m in i["members"])))
    return on_tick


# -- a run to its deadline: status, PID records, samples, clean end ---------------------------------------------
def test_a_run_to_the_deadline(node):
    n = node()
    seen = []
    began = time.time()
    outcome = n.run(snapshot(seen))
    took = time.time() - began

    assert (outcome["status"], outcome["reason"], outcome["detail"]) == ("finished", "deadline", None)
    assert 0.8 <= took < 3.0  # the upper bound only catches a hang: unit tests run on a busy machine
    assert outcome["processes_left"] == [] and outcome["respawns"] == 0
    # While it ran: one instance, recorded with the PID and start time /proc gave its leader, and its members.
    running = [s for s, _starts in seen if s["state"] == "running"]
    assert running, "no status was written while the stress ran"
    status, starts = [(s, t) for s, t in seen if s["instances"][0]["members"]][-1]
    [instance] = status["instances"]
    assert instance["kind"] == "raw" and instance["argv"][0] == n.stress_ng
    assert len(instance["members"]) == 2 and instance["members"][0][0] == instance["pid"]
    assert all(starts[pid] == recorded for pid, recorded in instance["members"])
    assert instance["start_time"] == starts[instance["pid"]] and isinstance(instance["start_time"], int)
    assert status["phase"] == "holding" and status["stress_bytes"] is None
    assert status["supervisor"] == {"pid": os.getpid(), "start_time": start_time(os.getpid())}
    assert status["deadline"] == round(status["started_at"] + 0.8, 3)
    # The end: every member gone, the final status and outcome written, the events in order.
    assert not any(alive(pid) for pid, _start in instance["members"])
    final = n.status()
    assert (final["state"], final["phase"], final["status"], final["reason"]) == ("ended", "ended", "finished",
                                                                                  "deadline")
    assert final["instances"] == [] and final["ended_at"] == outcome["ended_at"]
    assert state.read_json(n.path(state.OUTCOME)) == outcome
    assert [i["pid"] for i in outcome["instances"]] == [instance["pid"]]
    assert outcome["instances"][0]["start_time"] == instance["start_time"]
    assert n.events() == ["read_ahead", "launch", "end"]
    # stress-ng got its arguments and the collection's timeout; the samples read the fake tree.
    assert n.argvs() == ["--vm 1 --vm-bytes 1M --timeout 3s"]
    samples = state.read_jsonl(n.path(state.SAMPLES))
    assert len(samples) >= 3 and all(s["working_set_bytes"] == FIXTURE_WS for s in samples)
    assert outcome["peak_working_set_bytes"] == FIXTURE_WS and outcome["baseline_working_set_bytes"] == FIXTURE_WS
    assert alive(n.app.pid)  # the application is never touched


# -- every way it ends -----------------------------------------------------------------------------------------
def stress_pids(node, outcome):
    """Every stress process the run started: the leaders it recorded, and what the fake stress-ng listed."""
    listed = set()
    if os.path.exists(node.procs):
        with open(node.procs) as handle:
            listed = set(int(word) for word in handle.read().split())
    return (set(i["pid"] for i in outcome["instances"]) | listed) - {0, node.app.pid}


def running(supervisor):
    """True once the stress runs and the supervisor has seen its process group in the cgroup."""
    return bool(supervisor.instances and supervisor.instances[0].members)


def _stop_file(node, supervisor, _elapsed):
    if running(supervisor):
        open(node.path(state.STOP), "w").close()


def _signal_this_process(supervisor, signum):
    # Only to the handler the supervisor installed: without it the signal would end the test run itself.
    assert signal.getsignal(signum) == supervisor.on_signal, "the supervisor installed no handler for %s" % signum
    os.kill(os.getpid(), signum)


def _sigterm(node, supervisor, _elapsed):
    if running(supervisor):
        _signal_this_process(supervisor, signal.SIGTERM)


def _sighup_after_stop_file(node, supervisor, _elapsed):
    if running(supervisor):
        open(node.path(state.STOP), "w").close()
        _signal_this_process(supervisor, signal.SIGHUP)


def _heartbeats(node, _supervisor, _elapsed):
    with open(node.path(state.HEARTBEAT), "a"):
        pass
    os.utime(node.path(state.HEARTBEAT), None)


def _cgroup_removed(node, supervisor, _elapsed):
    if running(supervisor) and os.path.isdir(node.cgroup):
        shutil.rmtree(node.cgroup)


def _app_gone(node, supervisor, _elapsed):
    if running(supervisor) and node.app.poll() is None:
        node.app.kill()
        node.app.wait()


# (case, plan settings, on_tick, status, reason, detail, at least, at most (seconds; only to catch a hang: unit
#  tests run beside the lab booting))
ENDINGS = [
    ("the stop file", {"duration_seconds": 30}, _stop_file, "stopped", "stop", None, 0.0, 3.0),
    ("a signal", {"duration_seconds": 30}, _sigterm, "aborted", "signal", None, 0.0, 3.0),
    ("a signal with the stop file there is a stop", {"duration_seconds": 30}, _sighup_after_stop_file, "stopped",
     "stop", None, 0.0, 3.0),
    ("the dead-man: no heartbeat", {"duration_seconds": 30, "heartbeat_timeout_seconds": 0.6}, None, "aborted",
     "heartbeat", None, 0.6, 3.0),
    ("heartbeats keep it to its deadline", {"duration_seconds": 1.0, "heartbeat_timeout_seconds": 0.6}, _heartbeats,
     "finished", "deadline", None, 1.0, 3.0),
    ("the target cgroup removed", {"duration_seconds": 30}, _cgroup_removed, "aborted", "target_gone",
     "the target cgroup was removed", 0.0, 3.0),
    ("the app's processes gone", {"duration_seconds": 30}, _app_gone, "aborted", "target_gone",
     "the target's processes are gone (restarted or removed)", 0.0, 3.0),
]


@pytest.mark.parametrize("case, plan, on_tick, status, reason, detail, least, most", ENDINGS,
                         ids=[r[0] for r in ENDINGS])
def test_endings(node, case, plan, on_tick, status, reason, detail, least, most):
    n = node(**plan)
    began = time.time()
    outcome = n.run(on_tick)
    took = time.time() - began
    assert (outcome["status"], outcome["reason"], outcome["detail"]) == (status, reason, detail)
    assert least <= took < most
    assert n.status()["status"] == status and n.events()[-1] == "end"
    started = stress_pids(n, outcome)
    assert started and not any(alive(pid) for pid in started)
    assert outcome["processes_left"] == []


def test_a_worker_that_ignores_sigterm_gets_sigkill(node):
    n = node(body=STUBBORN, duration_seconds=30)
    began = time.time()
    outcome = n.run(_stop_file)
    assert (outcome["status"], outcome["reason"]) == ("stopped", "stop")
    assert 1.0 <= time.time() - began < 4.0  # the 1 s grace for SIGTERM, then SIGKILL
    [instance] = outcome["instances"]
    assert len(instance["members"]) == 2 and not any(alive(pid) for pid, _start in instance["members"])
    assert outcome["processes_left"] == []


def test_a_launch_is_in_the_status_before_anything_else_happens(node):
    """A stop or a dead-man coming right after a launch must find the new instance in status.json."""
    n = node(duration_seconds=30)
    n.write_spec()
    n.supervisor = Supervisor(n.dir)
    n.supervisor.control = Control(n.plan, time.time(), 0)
    instance = n.supervisor.launch("raw", [n.stress_ng, "--timeout", "3s"])
    [written] = n.status()["instances"]
    assert (written["pid"], written["start_time"], written["kind"]) == (instance.popen.pid,
                                                                        start_time(instance.popen.pid), "raw")
    assert [e["event"] for e in state.read_jsonl(n.path(state.EVENTS))] == ["read_ahead", "launch"]


@pytest.mark.parametrize("argv, remaining, expected", [
    (["stress-ng", "--vm", "1", "--timeout", "62s"], 30.0, ["stress-ng", "--vm", "1", "--timeout", "32s"]),
    (["stress-ng", "--timeout", "9s", "--vm", "1"], 1.0, ["stress-ng", "--timeout", "3s", "--vm", "1"]),
    (["stress-ng", "--timeout", "9s"], 4.9, ["stress-ng", "--timeout", "6s"]),
])
def test_a_respawn_gets_the_time_left(argv, remaining, expected):
    original = list(argv)
    assert Supervisor._refresh_timeout(argv, remaining) == expected
    assert argv == original  # the exited instance's own record is not changed


@pytest.mark.parametrize("dirs, expected", [
    ({"unified": "/c/u"}, ["/c/u"]),
    ({"memory": "/c/m", "cpu": "/c/cpu", "devices": "/c/d", "name=systemd": "/c/s", "pids": "/c/p"},
     ["/c/cpu", "/c/m", "/c/p"]),
])
def test_attach_skips_device_rules_and_systemd(dirs, expected):
    assert attach_dirs({"dirs": dirs}) == expected


def test_stress_that_exits_is_started_again(node):
    """Until a second before the deadline; then it is let go."""
    n = node(body=EXITS, duration_seconds=1.5)
    outcome = n.run()
    assert (outcome["status"], outcome["reason"]) == ("finished", "deadline")
    exits = [e for e in state.read_jsonl(n.path(state.EVENTS)) if e["event"] == "exit"]
    assert exits and all(e["code"] == 3 and e["kind"] == "raw" for e in exits)
    assert outcome["respawns"] >= 1 and len(outcome["instances"]) == outcome["respawns"] + 1
    # Each launch gets the time left as stress-ng's own timeout (whole seconds up, + 2 s of margin).
    timeouts = [line.rsplit(" ", 1)[1] for line in n.argvs()]
    assert len(timeouts) == len(outcome["instances"]) and timeouts[0] == "4s"
    assert set(timeouts) <= {"4s", "3s"} and timeouts == sorted(timeouts, reverse=True)


def test_an_attach_that_fails_ends_the_experiment(node):
    n = node(duration_seconds=30)
    n.target["path"] = "/not/this/process/cgroup"
    outcome = n.run()
    assert (outcome["status"], outcome["reason"]) == ("aborted", "attach_failed")
    assert outcome["detail"] == "cannot attach to /not/this/process/cgroup: joined %s instead of " \
                                "/not/this/process/cgroup" % n.own_path
    assert n.argvs() == []  # stress-ng never ran
    assert [e["code"] for e in state.read_jsonl(n.path(state.EVENTS)) if e["event"] == "exit"] == [111]


def test_a_stress_ng_that_cannot_start(node):
    n = node(duration_seconds=30)
    n.stress_ng = str(n.path("no-such-stress-ng"))
    outcome = n.run()
    assert (outcome["status"], outcome["reason"]) == ("aborted", "attach_failed")
    assert outcome["detail"].startswith("cannot start stress-ng: ") and "no-such-stress-ng" in outcome["detail"]
    assert outcome["instances"] == []


# -- the detached process itself ------------------------------------------------------------------------------
def test_the_detached_supervisor_ends_on_sigterm(node):
    """`python -m ..._supervisor DIR`, as the stressor module starts it: it ends its stress on SIGTERM and exits 0."""
    n = node(duration_seconds=30)
    n.write_spec()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.path.join(REPO, ".collections"), REPO]))
    process = subprocess.Popen([sys.executable, "-m", "ansible_collections.chaosfleet.stress.plugins.module_utils."
                                "_supervisor", n.dir], env=env, start_new_session=True, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE)
    instances = []
    try:
        deadline = time.time() + 5
        while time.time() < deadline and not (instances and instances[0]["members"]):
            time.sleep(0.05)
            instances = n.status().get("instances") or []
        assert instances and instances[0]["members"], "the supervisor never ran its stress"
        assert n.status()["supervisor"] == {"pid": process.pid, "start_time": start_time(process.pid)}
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=5) == 0, process.stderr.read()
        outcome = state.read_json(n.path(state.OUTCOME))
        assert (outcome["status"], outcome["reason"]) == ("aborted", "signal")
        assert not any(alive(pid) for pid, _start in instances[0]["members"])
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        for record in instances:
            state.kill_group_verified(record, grace=0.5)
        process.stderr.close()
