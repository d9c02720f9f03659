"""Do no harm, on the lab: a killed supervisor, a foreign process in a recorded process group, I/O directories
the experiment did not make, and two starts at the same moment. Effects are read from /proc, the cgroup and
the file system, not from what the module says."""

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time

import pytest

from tests.integration.ansible_helpers import REPO, ok, stress_pids, wait_for
from tests.integration.lab_fixtures import lab_container
from ansible_collections.chaosfleet.stress.plugins.module_utils import _state as state

pytestmark = [pytest.mark.lab, pytest.mark.slow]


def start(state_dir, name, container, **params):
    args = dict(name=name, container_id=container["id"], state_dir=state_dir, duration="2m")
    args.update(params)
    return ok("stressor", args)


def experiment_file(state_dir, name, filename):
    with open(os.path.join(state_dir, "experiments", name, filename)) as handle:
        return json.load(handle)


def group_members(pgid):
    return [p for p in state.all_pids() if state.proc_pgid(p) == pgid and alive(p)]


def alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.serial
def test_killed_supervisor_takes_its_stress_along_and_the_next_heartbeat_aborts(lab, state_dir):
    container = lab_container(lab, "checkout")
    params = dict(memory={"size": "30Mi"}, cpu={"load": 20}, heartbeat_timeout="60s")
    started = start(state_dir, "lost", container, **params)
    assert started["status"] == "running" and stress_pids(container["cgroup_path"])
    supervisor = started["supervisor_pid"]
    os.kill(supervisor, signal.SIGKILL)  # the supervisor this test started through the module
    killed = time.time()
    # Children die with it (parent-death signal through nsenter and stress-ng's parent), by themselves.
    gone = wait_for(lambda: not stress_pids(container["cgroup_path"]) and time.time(), 5, interval=0.05)
    assert gone and gone - killed <= 2.0, "stress outlived its supervisor: %s" % stress_pids(container["cgroup_path"])
    beat = start(state_dir, "lost", container, **params)
    beat_done = time.time()
    assert (beat["status"], beat["reason"]) == ("aborted", "supervisor_lost"), beat
    assert beat["changed"] is True and "supervisor (PID %d) was lost" % supervisor in beat["outcome"]["detail"]
    assert wait_for(lambda: not stress_pids(container["cgroup_path"]), max(0.1, beat_done + 2 - time.time()))
    again = start(state_dir, "lost", container, **params)
    assert (again["changed"], again["status"], again["reason"]) == (False, "aborted", "supervisor_lost")


def test_the_heartbeats_own_kill_ends_stress_that_outlived_its_supervisor(state_dir):
    """Without the parent-death signal (a process that re-parented itself), the heartbeat's verified group
    kill is what stops it: real processes in their own session, recorded as the supervisor records them."""
    from ansible_collections.chaosfleet.stress.plugins.module_utils._experiment import Experiment

    group = subprocess.Popen(["sh", "-c", "sleep 300 & sleep 300 & wait"], start_new_session=True)
    bystander = subprocess.Popen(["sleep", "300"], start_new_session=True)
    gone_supervisor = subprocess.Popen(["true"])
    gone_supervisor.wait()
    members = []
    try:
        # The group as a running stress is: the shell and both sleeps. On a loaded machine the shell forks them
        # late, and a sleep forked after the kill's scan would be nobody's to kill here.
        assert wait_for(lambda: len(group_members(group.pid)) == 3, 10), group_members(group.pid)
        members = [(pid, state.proc_start_time(pid)) for pid in group_members(group.pid)]
        experiment = Experiment(state_dir, "orphan")
        state.ensure_root_dir(os.path.dirname(experiment.dir))
        os.mkdir(experiment.dir, 0o700)
        state.write_json(experiment.path(state.SPEC), {"name": "orphan"})
        state.write_json(experiment.path(state.STATUS), {
            "state": "running", "supervisor": {"pid": gone_supervisor.pid, "start_time": 1},
            "instances": [state.pid_record(group.pid)]})
        assert experiment.running() and experiment.supervisor_lost()
        experiment.abort_lost()
        assert group.wait(timeout=5) in (-signal.SIGTERM, -signal.SIGKILL)
        assert wait_for(lambda: not group_members(group.pid), 5), group_members(group.pid)
        assert bystander.poll() is None
        outcome = experiment.outcome()
        assert (outcome["status"], outcome["reason"], outcome["processes_left"]) == ("aborted", "supervisor_lost", [])
    finally:
        for pid, start in members:  # what this test started, by PID and start time
            state.send_signal(pid, start, signal.SIGKILL)
        for proc in (group, bystander):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)  # groups this test started
            proc.wait()


def spawn_with_pid(pid, argv, attempts=50):
    """Start argv in a new session with exactly ``pid`` (the kernel's ns_last_pid), or skip."""
    for _attempt in range(attempts):
        with open("/proc/sys/kernel/ns_last_pid", "w") as handle:
            handle.write(str(pid - 1))
        proc = subprocess.Popen(argv, start_new_session=True)
        if proc.pid == pid:
            return proc
        proc.kill()
        proc.wait()
        if os.path.exists("/proc/%d" % pid):
            break  # someone else has it now
    pytest.skip("could not get PID %d for the foreign process" % pid)


# alone: it takes a PID through the kernel's ns_last_pid, which any fork on the machine can take first (with
# TEST_OVERLAP=1 the background pass forks all the time, and it skipped).
@pytest.mark.serial
@pytest.mark.alone
def test_a_foreign_process_that_takes_a_recorded_process_group_is_never_signalled(lab, state_dir):
    container = lab_container(lab, "payments")
    params = dict(memory={"size": "20Mi"})
    args = dict(name="reused", container_id=container["id"], state_dir=state_dir, duration="2m", **params)
    started = direct(state_dir, args)
    assert started["status"] == "running", started
    leader = started["pids"][0]
    os.kill(started["supervisor_pid"], signal.SIGKILL)
    assert wait_for(lambda: not os.path.exists("/proc/%d" % leader), 5), "the recorded group leader lives on"
    # A foreign session leader now has the recorded PID, so its process group has the recorded ID.
    foreign = spawn_with_pid(leader, ["sh", "-c", "sleep 300 & wait"])
    try:
        time.sleep(0.2)
        members = [p for p in state.all_pids() if state.proc_pgid(p) == leader and alive(p)]
        assert len(members) == 2, members
        beat = direct(state_dir, args)
        assert (beat["status"], beat["reason"]) == ("aborted", "supervisor_lost"), beat
        stopped = direct(state_dir, {"name": "reused", "state": "absent", "state_dir": state_dir})
        assert stopped["changed"] is False
        assert foreign.poll() is None and all(alive(p) for p in members)
    finally:
        os.killpg(foreign.pid, signal.SIGKILL)  # the group this test started
        foreign.wait()


@pytest.fixture
def io_root():
    """A private io_dir parent under the sticky /var/tmp; removed afterwards."""
    path = "/var/tmp/cflab-io-" + secrets.token_hex(3)
    os.mkdir(path, 0o700)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def tree(path):
    """Every entry under path (symlinks not followed) with its content or link target."""
    out = {}
    for root, dirs, files in os.walk(path):
        for entry in dirs + files:
            full = os.path.join(root, entry)
            if os.path.islink(full):
                out[full] = "-> " + os.readlink(full)
            elif os.path.isfile(full):
                with open(full) as handle:
                    out[full] = handle.read()
            else:
                out[full] = "dir"
    return out


def test_io_directories_the_experiment_did_not_make_are_left_untouched(lab, state_dir, io_root):
    container = lab_container(lab, "batch")
    victim = os.path.join(io_root, "victim")
    os.mkdir(victim)
    with open(os.path.join(victim, "precious"), "w") as handle:
        handle.write("keep me")
    io_dir = os.path.join(io_root, "io")
    os.mkdir(io_dir, 0o700)
    os.mkdir(os.path.join(io_dir, "taken"))
    with open(os.path.join(io_dir, "taken", "data"), "w") as handle:
        handle.write("not yours")
    os.symlink(victim, os.path.join(io_dir, "linked"))
    os.symlink(victim, os.path.join(io_root, "io-link"))
    before = tree(io_root)
    cases = [("taken", io_dir, "already exists and this experiment did not create it"),
             ("linked", io_dir, "already exists and this experiment did not create it"),
             ("via-link", os.path.join(io_root, "io-link"), "symlink")]
    for name, where, message in cases:
        # The module's own main(), without Ansible's start-up (several seconds each on a loaded box).
        result = direct(state_dir, dict(name=name, container_id=container["id"], state_dir=state_dir,
                                        duration="30s", io={"size": "1Mi"}, io_dir=where))
        assert result.get("failed") and message in result["msg"], result
        assert not os.path.exists(os.path.join(state_dir, "experiments", name))
        assert not stress_pids(container["cgroup_path"])
    assert tree(io_root) == before
    # What the experiment makes itself, it removes: only its own directory.
    ok("stressor", dict(name="own", container_id=container["id"], state_dir=state_dir, duration="30s",
                        io={"size": "1Mi"}, io_dir=io_dir))
    assert os.path.isdir(os.path.join(io_dir, "own"))
    ok("stressor", {"name": "own", "state": "absent", "state_dir": state_dir})
    assert not os.path.exists(os.path.join(io_dir, "own"))
    assert tree(io_root) == before


def race(state_dir, args_list, delay=4.0):
    """Run the stressor module in parallel processes that all call main() at the same instant."""
    at = time.time() + delay  # after the imports, on a loaded machine
    code = ("import sys, time\n"
            "sys.path[:0] = %r\n"
            "from ansible_collections.chaosfleet.stress.plugins.modules import stressor\n"
            "time.sleep(max(0.0, %r - time.time()))\n"
            "stressor.main()\n") % ([str(REPO / ".collections"), str(REPO)], at)
    procs = []
    for index, args in enumerate(args_list):
        path = os.path.join(state_dir + "-args-%d.json" % index)
        with open(path, "w") as handle:
            json.dump({"ANSIBLE_MODULE_ARGS": args}, handle)
        procs.append(subprocess.Popen([sys.executable, "-c", code, path], stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, universal_newlines=True, cwd=str(REPO)))
    results = []
    for index, proc in enumerate(procs):
        out, err = proc.communicate(timeout=60)
        os.remove(state_dir + "-args-%d.json" % index)
        results.append(json.loads(out[out.index("{"):]) if "{" in out else {"failed": True, "msg": err})
    return results


def direct(state_dir, args):
    """The stressor module's own main() in a fresh process, without Ansible's start-up (several seconds on a
    loaded machine): the same interface, arguments in and JSON out."""
    return race(state_dir, [args], delay=0)[0]


@pytest.mark.parametrize("case, names, message", [
    ("same name", ("twin", "twin"), "is being started or stopped by another run"),
    ("same target, other names", ("first", "second"), "one experiment per target"),
])
def test_of_two_concurrent_starts_exactly_one_wins(lab, state_dir, case, names, message):
    container = lab_container(lab, "ledger")
    base = dict(container_id=container["id"], state_dir=state_dir, duration="60s", memory={"size": "16Mi"})
    results = race(state_dir, [dict(base, name=name) for name in names])
    winners = [r for r in results if not r.get("failed")]
    losers = [r for r in results if r.get("failed")]
    assert len(winners) == 1 and len(losers) == 1, results
    assert winners[0]["changed"] is True and winners[0]["status"] == "running"
    assert message in losers[0]["msg"], losers[0]["msg"]
    # One experiment on the node, one supervisor, one stress-ng instance in the target.
    started = [n for n in os.listdir(os.path.join(state_dir, "experiments"))
               if os.path.exists(os.path.join(state_dir, "experiments", n, "status.json"))]
    assert started == [winners[0]["name"]]
    status = experiment_file(state_dir, started[0], "status.json")
    assert [i["pid"] for i in status["instances"]] == winners[0]["pids"]
    leaders = set(winners[0]["pids"])
    assert all(alive(pid) for pid in leaders)
