"""The stop guard's decisions (plugin_utils/_stop_guard.py), as tables with an injected clock,
plus its waiting loop and its signal hooks against real (short-lived) processes this test starts."""

import contextlib
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from ansible_collections.chaosfleet.stress.plugins.plugin_utils import _stop_guard as guard


def stat_line(state="S", start=1000, exit_code=None, comm="ansible-playboo"):
    """A /proc/PID/stat line with the given state (field 3), start time (22) and exit code (52)."""
    fields = [state] + ["0"] * 18 + [str(start)] + ["0"] * 29 + [str(exit_code if exit_code is not None else 0)]
    return "4242 (%s) %s" % (comm, " ".join(fields))


# ---------------------------------------------------------------- /proc and PID reuse

PROCESS_CASES = [
    ("running", stat_line("S", 1000), 1000, ("running", None)),
    ("running, name with ') ' in it", stat_line("R", 1000, comm="a) b (c"), 1000, ("running", None)),
    ("no such PID", None, 1000, ("gone", None)),
    ("PID reused by a later process", stat_line("S", 2000), 1000, ("gone", None)),
    ("zombie after Ctrl-C (exit 99)", stat_line("Z", 1000, 99 << 8), 1000, ("gone", 99 << 8)),
    ("zombie killed by SIGKILL", stat_line("Z", 1000, 9), 1000, ("gone", 9)),
    ("reused PID that is a zombie", stat_line("Z", 3000, 9), 1000, ("gone", None)),
]


@pytest.mark.parametrize("text, recorded, expected", [c[1:] for c in PROCESS_CASES], ids=[c[0] for c in PROCESS_CASES])
def test_process_state_checks_the_start_time(text, recorded, expected):
    assert guard.process_state(recorded, text) == expected


CAUSE_CASES = [
    (None, None),
    (99 << 8, "SIGINT"),          # the first Ctrl-C: ansible-playbook exits 99
    (signal.SIGINT, "SIGINT"),    # a second Ctrl-C kills it outright
    (signal.SIGTERM, "SIGTERM"),  # it re-raises SIGTERM after forwarding it to its workers
    (signal.SIGKILL, "SIGKILL"),  # ansible-runner's cancel
    (2 << 8, "exit 2"),
    (0, "exit 0"),
]


@pytest.mark.parametrize("status, expected", CAUSE_CASES)
def test_cause_of_a_waitpid_status(status, expected):
    assert guard.cause_of(status) == expected


def test_start_time_of_this_process_is_field_22():
    text = guard.read_stat(os.getpid())
    assert guard.start_time(text) == int(text.rsplit(")", 1)[1].split()[19])
    assert guard.process_state(guard.start_time(text), text) == ("running", None)


# ---------------------------------------------------------------- when to stop (injected clock)

RUNNING = ("running", None)
DECIDE_CASES = [
    # name, now, disarmed, request, playbook, expected
    ("playbook running", 100, False, None, RUNNING, ("wait", "")),
    ("normal end", 100, True, None, RUNNING, ("exit", "the experiment ended; the role stopped the stress itself")),
    ("normal end wins over a vanished playbook", 100, True, None, ("gone", 0), ("exit",)),
    ("normal end wins over a late request", 100, True, {"signal": "SIGINT"}, RUNNING, ("exit",)),
    ("stop request from the worker", 100, False, {"signal": "SIGTERM", "at": 99.5}, RUNNING, ("stop", "SIGTERM")),
    ("request without a signal", 100, False, {}, RUNNING, ("stop", "a stop request")),
    ("killed (runner cancel)", 100, False, None, ("gone", 9), ("stop", "SIGKILL")),
    ("Ctrl-C exit", 100, False, None, ("gone", 99 << 8), ("stop", "SIGINT")),
    ("reaped before we looked", 100, False, None, ("gone", None), ("stop", "the playbook vanished")),
    ("ended without the role's end", 100, False, None, ("gone", 2 << 8), ("stop", "exit 2")),
    ("past the bound, playbook running", 500, False, None, RUNNING, ("exit",)),
    ("past the bound, playbook gone: the nodes ended it", 500, False, None, ("gone", 9), ("exit",)),
    ("just before the bound", 399.9, False, None, ("gone", 9), ("stop", "SIGKILL")),
]


@pytest.mark.parametrize("now, disarmed, stop_request, playbook, expected", [c[1:] for c in DECIDE_CASES],
                         ids=[c[0] for c in DECIDE_CASES])
def test_decide(now, disarmed, stop_request, playbook, expected):
    got = guard.decide(now, 400, disarmed, stop_request, playbook)
    assert got[:len(expected)] == expected


def test_the_bound_is_the_deadline_plus_the_dead_man_plus_a_margin():
    assert guard.guard_bound(1000.0, 120, 30) == 1000 + 120 + 30 + guard.MARGIN_SECONDS
    assert guard.guard_bound(1000.0, 60, None, margin=5) == 1065


# ---------------------------------------------------------------- what to copy, print and record

def test_connection_vars_keep_the_connection_and_leave_facts_out():
    keys = ["ansible_host", "ansible_user", "ansible_ssh_private_key_file", "ansible_ssh_common_args",
            "ansible_become_password", "ansible_python_interpreter", "ansible_kubectl_pod", "ansible_kubectl_namespace",
            "ansible_facts", "ansible_version", "ansible_play_hosts", "fleet_pods", "experiment_name",
            "ansible_distribution", "ansible_custom_plugin_option"]
    assert guard.connection_vars(keys, plugin_vars=["ansible_custom_plugin_option"]) == [
        "ansible_become_password", "ansible_custom_plugin_option", "ansible_host", "ansible_kubectl_namespace",
        "ansible_kubectl_pod", "ansible_python_interpreter", "ansible_ssh_common_args",
        "ansible_ssh_private_key_file", "ansible_user"]


OUTCOME_CASES = [
    ("stopped", "ok", {"changed": True, "status": "stopped", "reason": "stop"}, "stopped"),
    ("already ended", "ok", {"changed": False, "status": "finished", "reason": "deadline"}, "stopped"),
    ("unreachable", "unreachable", {"unreachable": True, "msg": "ssh: connect timed out"}, "unreachable"),
    ("task timeout", "failed", {"failed": True, "msg": "Task failed: Timed out after 4 second(s)."}, "unreachable"),
    ("module failure", "failed", {"failed": True, "msg": "state_dir is not root-only"}, "failed"),
]


@pytest.mark.parametrize("kind, result, state", [c[1:] for c in OUTCOME_CASES], ids=[c[0] for c in OUTCOME_CASES])
def test_host_outcome(kind, result, state):
    assert guard.host_outcome(kind, result, 10.0)["state"] == state


def test_lines_name_every_node_stopped_or_not_reached():
    outcomes = {"node1": guard.host_outcome("ok", {"changed": True, "status": "stopped"}, 101.25),
                "node2": guard.host_outcome("unreachable", {"msg": "Connection timed out"}, 104.0),
                "node4": guard.host_outcome("ok", {"changed": False, "status": "finished", "reason": "deadline"}, 101.0)}
    lines = guard.stop_lines("mem1", "SIGINT", outcomes, ["node2", "node1", "node3", "node4"], 100.0, 4, 30)
    assert lines == [
        "[chaosfleet stop] experiment mem1 interrupted (SIGINT): stopping the stress on 4 nodes",
        "[chaosfleet stop] mem1 on node1: stopped, 1.2 s after the interrupt",
        "[chaosfleet stop] mem1 on node2: could not be reached (Connection timed out); its dead-man ends the stress"
        " within 30s of the last heartbeat",
        "[chaosfleet stop] mem1 on node3: could not be reached (no answer within 4s); its dead-man ends the stress"
        " within 30s of the last heartbeat",
        "[chaosfleet stop] mem1 on node4: stopped, 1.0 s after the interrupt (it had already ended: finished, deadline)",
    ]


@pytest.mark.parametrize("cause, text", [
    ("SIGKILL", "SIGKILL"), (None, "the playbook vanished"), ("the playbook vanished", "the playbook vanished"),
    ("exit 2", "the playbook ended (exit 2) before the experiment did")])
def test_the_header_says_why(cause, text):
    assert guard.stop_lines("e", cause, {}, ["a"], 0, 4, 30)[0] == (
        "[chaosfleet stop] experiment e interrupted (%s): stopping the stress on 1 node" % text)


def test_stop_record_has_the_signal_and_when_each_node_stopped():
    outcomes = {"node1": guard.host_outcome("ok", {"changed": True}, 101.2345),
                "node2": guard.host_outcome("unreachable", {"msg": "down"}, 104.0)}
    record = guard.stop_record("mem1", "SIGTERM", 100.0, 100.3, 104.1, outcomes, ["node1", "node2", "node3"])
    assert record["signal"] == "SIGTERM" and record["interrupted"] is True and record["at"] == 100.0
    assert record["hosts"]["node1"] == {"stopped": True, "stopped_at": 101.234, "state": "stopped", "msg": ""}
    assert record["hosts"]["node2"]["stopped"] is False and record["hosts"]["node2"]["stopped_at"] is None
    assert record["unreachable"] == ["node2", "node3"]
    assert guard.stop_record("e", None, 1, 1, 1, {}, [])["signal"] is None
    assert guard.stop_record("e", "exit 2", 1, 1, 1, {}, [])["signal"] is None


# ---------------------------------------------------------------- the waiting loop, against real processes

@pytest.fixture
def guard_dir(tmp_path):
    directory = tmp_path / (guard.GUARD_DIR_PREFIX + "unit")
    directory.mkdir(mode=0o700)
    return directory


def _playbook_like():
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    return proc, {"pid": proc.pid, "start_time": guard.start_time(guard.read_stat(proc.pid))}


def test_wait_stops_when_the_playbook_is_killed_and_names_the_signal(guard_dir):
    proc, record = _playbook_like()
    try:
        started = time.time()
        proc.send_signal(signal.SIGKILL)  # the process this test started; not reaped yet: a zombie
        what, cause, _at = guard.wait(str(guard_dir), {"playbook": record, "bound": time.time() + 30})
        assert (what, cause) == ("stop", "SIGKILL")
        assert time.time() - started < 1.0
    finally:
        proc.kill()
        proc.wait()


SIGCGT_CASES = [
    # name, SigCgt at arm, SigCgt now, signal the guard names
    ("nothing happened", "0000000180004002", "0000000180004002", None),
    ("Ctrl-C: SIGINT reset to its default", "0000000180004002", "0000000180004000", "SIGINT"),
    ("SIGTERM reset to its default", "0000000180004002", "0000000180000002", "SIGTERM"),
    ("SIGINT was never caught", "0000000180004000", "0000000180000000", "SIGTERM"),
    ("caught neither at arm", "0000000000000000", "0000000000000000", None),
    ("status unreadable now (the process is gone)", "0000000180004002", None, None),
    ("status unreadable at arm", None, "0000000000000000", None),
]


@pytest.mark.parametrize("armed, now, expected", [c[1:] for c in SIGCGT_CASES], ids=[c[0] for c in SIGCGT_CASES])
def test_a_reset_handler_means_the_playbook_was_interrupted(armed, now, expected):
    def status(mask):
        return None if mask is None else "Name:\tansible-playboo\nSigIgn:\t0000000000001000\nSigCgt:\t%s\n" % mask
    assert guard.handled_interrupt(guard.caught_signals(status(armed)), guard.caught_signals(status(now))) == expected


def test_caught_signals_reads_this_process():
    previous = signal.signal(signal.SIGUSR1, lambda *_: None)
    try:
        assert signal.SIGUSR1 in guard.caught_by(os.getpid())
    finally:
        signal.signal(signal.SIGUSR1, previous)
    assert signal.SIGUSR1 not in guard.caught_by(os.getpid())


# ansible-playbook's handler resets SIGINT, then raises KeyboardInterrupt; ansible-core loses it when it lands
# in an at-fork hook ("Exception ignored in: <function _releaseLock>") and the play goes on.
LOSES_ITS_CTRL_C = """
import signal, sys, time
def handler(signum, frame):
    signal.signal(signum, signal.SIG_DFL)
    try:
        raise KeyboardInterrupt()
    except KeyboardInterrupt:
        pass
signal.signal(signal.SIGINT, handler)
print("ready", flush=True)
time.sleep(60)
"""


@contextlib.contextmanager
def a_playbook_that_loses_its_ctrl_c():
    """(process, the guard's record of it), killed at the end."""
    proc = subprocess.Popen([sys.executable, "-c", LOSES_ITS_CTRL_C], stdout=subprocess.PIPE)
    try:
        assert proc.stdout.readline().strip() == b"ready"
        yield proc, {"pid": proc.pid, "start_time": guard.start_time(guard.read_stat(proc.pid))}
    finally:
        proc.kill()
        proc.wait()


def wait_through_a_ctrl_c(guard_dir, proc, record, then=lambda: None):
    """guard.wait, with a Ctrl-C sent (then ``then`` run) after the guard read the armed handlers: (what, cause,
    at, when the Ctrl-C was sent)."""
    sent = []

    def clock():
        if not sent:
            proc.send_signal(signal.SIGINT)
            sent.append(time.time())
            then()
        return time.time()

    what, cause, at = guard.wait(str(guard_dir), {"playbook": record, "bound": time.time() + 30}, clock=clock)
    return what, cause, at, sent[0]


def test_wait_stops_when_the_playbook_lost_its_ctrl_c_and_runs_on(guard_dir):
    with a_playbook_that_loses_its_ctrl_c() as (proc, record):
        what, cause, at, sent = wait_through_a_ctrl_c(guard_dir, proc, record)
        assert (what, cause) == ("stop", "SIGINT")
        assert at - sent < 1.0
        assert proc.poll() is None  # the play went on: only the handler's reset told


REQUEST_CASES = [
    # name, the worker's request, the signal the running playbook's handler took, the request the guard acts on
    ("nothing yet", None, None, None),
    ("a reset handler alone is a request", None, "SIGINT", {"signal": "SIGINT", "at": 50.0}),
    ("a worker's request alone", {"signal": "SIGTERM", "at": 40.0}, None, {"signal": "SIGTERM", "at": 40.0}),
    ("Ctrl-C: the cleanup's SIGTERM reached the worker first", {"signal": "SIGTERM", "at": 40.0}, "SIGINT",
     {"signal": "SIGINT", "at": 40.0}),
    ("kill PID", {"signal": "SIGTERM", "at": 40.0}, "SIGTERM", {"signal": "SIGTERM", "at": 40.0}),
]


@pytest.mark.parametrize("request_, handled, expected", [c[1:] for c in REQUEST_CASES],
                         ids=[c[0] for c in REQUEST_CASES])
def test_the_playbooks_own_handler_names_the_signal(request_, handled, expected):
    assert guard.with_the_playbooks_signal(request_, handled, 50.0) == expected


def test_wait_names_the_ctrl_c_when_a_worker_asked_with_the_cleanups_sigterm(guard_dir):
    """The CI run of 2026-12-07: the header said SIGTERM after a Ctrl-C, the playbook still cleaning up."""
    with a_playbook_that_loses_its_ctrl_c() as (proc, record):
        armed = guard.caught_by(proc.pid)

        def the_workers_request():
            assert wait_for_reset(proc.pid, armed)
            guard.request_stop(str(guard_dir), "SIGTERM", now=1234.5)

        what, cause, at, _sent = wait_through_a_ctrl_c(guard_dir, proc, record, then=the_workers_request)
        assert (what, cause, at) == ("stop", "SIGINT", 1234.5)
        assert proc.poll() is None


def wait_for_reset(pid, armed, seconds=5.0):
    """Whether the process's SIGINT handler reset itself within ``seconds``, as the guard reads it."""
    deadline = time.time() + seconds
    while time.time() < deadline:
        if guard.handled_interrupt(armed, guard.caught_by(pid)) == "SIGINT":
            return True
        time.sleep(0.01)
    return False


def test_wait_exits_on_disarm_and_at_the_bound_with_an_injected_clock(guard_dir):
    proc, record = _playbook_like()
    try:
        now = [1000.0]

        def clock():
            return now[0]

        def sleep(_seconds):
            now[0] += 50  # each poll jumps the clock

        config = {"playbook": record, "bound": 1120.0}
        assert guard.wait(str(guard_dir), config, clock=clock, sleep=sleep, use_pidfd=False)[:2] == (
            "exit", "past the experiment's deadline; the nodes ended the stress by themselves")
        assert now[0] == 1150.0  # three polls: 1000, 1050, 1100 waited; 1150 is past the bound
        (guard_dir / guard.DISARM_FILE).write_text("")
        now[0] = 1000.0
        assert guard.wait(str(guard_dir), config, clock=clock, sleep=sleep, use_pidfd=False)[0] == "exit"
        assert now[0] == 1000.0
    finally:
        proc.kill()
        proc.wait()


def test_a_signal_in_the_monitor_asks_the_guard_to_stop_then_reaches_the_old_handler(guard_dir):
    seen = []
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: seen.append(signum))
    try:
        with guard.signal_hooks(str(guard_dir)):
            os.kill(os.getpid(), signal.SIGTERM)
        assert seen == [signal.SIGTERM]
        request = json.loads((guard_dir / guard.STOP_FILE).read_text())
        assert request["signal"] == "SIGTERM" and abs(request["at"] - time.time()) < 5
        assert oct((guard_dir / guard.STOP_FILE).stat().st_mode & 0o777) == "0o600"
        what, cause, at = guard.wait(str(guard_dir), {"playbook": {"pid": os.getpid(), "start_time": guard.start_time(
            guard.read_stat(os.getpid()))}, "bound": time.time() + 30})
        assert (what, cause, at) == ("stop", "SIGTERM", request["at"])
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_signal_only_a_process_whose_start_time_still_matches():
    proc, record = _playbook_like()
    try:
        assert guard.alive(record)
        assert not guard.signal_recorded(dict(record, start_time=record["start_time"] + 1), signal.SIGKILL)
        assert proc.poll() is None
        assert guard.signal_recorded(record, signal.SIGKILL)
        proc.wait()
        assert not guard.alive(record)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_remove_dir_removes_only_a_guard_directory(tmp_path):
    other = tmp_path / "not-a-guard"
    other.mkdir()
    (other / "keep").write_text("x")
    guard.remove_dir(str(other))
    assert (other / "keep").exists()


@pytest.mark.parametrize("cause, playbook, expected", [
    ("SIGTERM", ("gone", 99 << 8), "SIGINT"),   # the worker saw the cleanup's SIGTERM after a Ctrl-C
    ("SIGTERM", ("gone", signal.SIGTERM), "SIGTERM"),
    ("SIGTERM", ("gone", None), "SIGTERM"),     # reaped before we looked: the request stands
    ("SIGTERM", ("running", None), "SIGTERM"),
    ("SIGINT", ("gone", signal.SIGINT), "SIGINT"),
    ("SIGINT", ("gone", 1 << 8), "SIGINT"),     # ansible-core lost the Ctrl-C; the dead worker ended the play
    ("SIGTERM", ("gone", 1 << 8), "exit 1"),    # a worker terminated by the cleanup of a failed playbook
    ("SIGINT", ("gone", signal.SIGKILL), "SIGKILL"),
])
def test_the_playbooks_exit_status_settles_the_cause(cause, playbook, expected):
    assert guard.better_cause(cause, playbook) == expected
