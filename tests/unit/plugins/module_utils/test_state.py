"""_state.py: group kills against a fake /proc tree, root-only directories, locks, the capped sample log."""

import json
import os
import shutil
import signal

import pytest

from ansible_collections.chaosfleet.stress.plugins.module_utils import _state as state
from ansible_collections.chaosfleet.stress.plugins.module_utils._plan import heartbeat_timeout_seconds
from ansible_collections.chaosfleet.stress.plugins.module_utils._units import UnitError


# ------------------------------------------------------------------ a fake /proc
def write_proc(root, pid, pgid, start, state_letter="S", comm="stress-ng"):
    """/proc/<pid>/stat with the fields _state reads: state, pgrp (3rd after comm) and starttime (20th)."""
    fields = [state_letter, "1", str(pgid), str(pgid)] + ["0"] * 15 + [str(start)] + ["0"] * 10
    os.makedirs(os.path.join(root, str(pid)), exist_ok=True)
    with open(os.path.join(root, str(pid), "stat"), "w") as handle:
        handle.write("%d (%s) %s\n" % (pid, comm, " ".join(fields)))


class FakeKernel(object):
    """Delivers signals inside the fake tree: a process dies of the signals in ``dies_of``."""

    def __init__(self, root, dies_of=(signal.SIGTERM, signal.SIGKILL)):
        self.root = root
        self.dies_of = dies_of
        self.sent = []

    def send(self, pid, start, sig, proc_root):
        assert proc_root == self.root
        if state.proc_start_time(pid, proc_root) != start:
            return False
        self.sent.append((pid, sig))
        if sig in self.dies_of:
            os.remove(os.path.join(self.root, str(pid), "stat"))
            os.rmdir(os.path.join(self.root, str(pid)))
        return True


LEADER = {"pid": 100, "start_time": 500}
# (case, processes as (pid, pgid, start, state), record extras, signalled pids, untouched pids)
GROUP_CASES = [
    ("leader alive: the whole group, nobody else",
     [(100, 100, 500, "S"), (101, 100, 510, "S"), (102, 100, 511, "R"), (200, 200, 300, "S"), (201, 1, 900, "S")],
     {}, [100, 101, 102], [200, 201]),
    ("leader's PID reused by a foreign session leader: nothing",
     [(100, 100, 900, "S"), (105, 100, 901, "S")], {}, [], [100, 105]),
    ("leader gone, a foreign group took its number: nothing",
     [(105, 100, 901, "S"), (106, 100, 905, "S")], {}, [], [105, 106]),
    ("leader gone: only the members recorded earlier",
     [(101, 100, 510, "S"), (106, 100, 950, "S")], {"members": [[101, 510], [102, 511]]}, [101], [106]),
    ("a recorded member's PID reused: left alone",
     [(101, 100, 777, "S")], {"members": [[101, 510]]}, [], [101]),
    ("leader a zombie not yet reaped still holds the number",
     [(100, 100, 500, "Z"), (101, 100, 510, "S")], {}, [101], [100]),
    ("members older than the leader are not its children",
     [(100, 100, 500, "S"), (103, 100, 400, "S")], {}, [100], [103]),
]


@pytest.mark.parametrize("case, procs, extra, signalled, untouched", GROUP_CASES, ids=[c[0] for c in GROUP_CASES])
def test_kill_group_verified_signals_only_provable_members(tmp_path, case, procs, extra, signalled, untouched):
    root = str(tmp_path)
    for pid, pgid, start, letter in procs:
        write_proc(root, pid, pgid, start, letter)
    kernel = FakeKernel(root)
    left = state.kill_group_verified(dict(LEADER, **extra), proc_root=root, grace=0.2, send=kernel.send)
    assert sorted(pid for pid, _sig in kernel.sent) == sorted(signalled)
    assert all(sig == signal.SIGTERM for _pid, sig in kernel.sent)
    assert left == []
    for pid in untouched:
        assert os.path.exists(os.path.join(root, str(pid), "stat")), "pid %d was touched" % pid


def test_kill_group_verified_follows_term_with_kill_and_keeps_to_the_members_it_saw(tmp_path):
    """The leader ignores TERM at first... then dies; the KILL round still reaches the member seen in round one,
    and a foreign process that joined group 100 after the leader died is never signalled."""
    root = str(tmp_path)
    write_proc(root, 100, 100, 500)
    write_proc(root, 101, 100, 510)

    class Kernel(FakeKernel):
        def send(self, pid, start, sig, proc_root):
            sent = super(Kernel, self).send(pid, start, sig, proc_root)
            if pid == 100 and sig == signal.SIGTERM:  # the leader dies; a foreign group 100 appears
                os.remove(os.path.join(root, "100", "stat"))
                os.rmdir(os.path.join(root, "100"))
                write_proc(root, 300, 100, 990)
            return sent

    kernel = Kernel(root, dies_of=(signal.SIGKILL,))
    left = state.kill_group_verified(dict(LEADER), proc_root=root, grace=0.2, send=kernel.send)
    assert kernel.sent == [(100, signal.SIGTERM), (101, signal.SIGTERM), (101, signal.SIGKILL)]
    assert left == [] and os.path.exists(os.path.join(root, "300"))


@pytest.mark.parametrize("record", [None, {}, {"pid": 100, "start_time": None}, {"pid": 0, "start_time": 5}])
def test_kill_group_verified_without_a_usable_record_does_nothing(tmp_path, record):
    write_proc(str(tmp_path), 100, 100, 500)
    kernel = FakeKernel(str(tmp_path))
    assert state.kill_group_verified(record, proc_root=str(tmp_path), send=kernel.send) == []
    assert kernel.sent == []


def test_send_signal_checks_the_start_time_first():
    # Our own PID with a wrong start time: refused without sending (SIGKILL would end this test run).
    assert state.send_signal(os.getpid(), -1, signal.SIGKILL) is False
    assert state.send_signal(os.getpid(), None, signal.SIGKILL) is False
    assert state.send_signal(os.getpid(), state.proc_start_time(os.getpid()), 0) is True


# ------------------------------------------------------------------ root-only directories
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="ownership checks need root")


def test_open_root_dir_creates_missing_components_root_only(tmp_path):
    path = str(tmp_path / "a" / "b")
    os.chmod(str(tmp_path), 0o755)
    state.ensure_root_dir(path)
    assert oct(os.stat(path).st_mode & 0o777) == oct(0o700)
    assert oct(os.stat(str(tmp_path / "a")).st_mode & 0o777) == oct(0o700)


@pytest.mark.parametrize("case, build, message", [
    ("symlink as the directory", lambda base: os.symlink(base + "/real", base + "/io"), "symlink"),
    ("symlink as a parent", lambda base: os.symlink(base + "/real", base + "/link"), "symlink"),
    ("readable by others", lambda base: os.mkdir(base + "/io", 0o755), "root-only"),
    ("a file", lambda base: open(base + "/io", "w").close(), "not a directory"),
], ids=lambda value: value if isinstance(value, str) else "")
def test_open_root_dir_refuses_and_changes_nothing(tmp_path, case, build, message):
    base = str(tmp_path)
    os.chmod(base, 0o755)
    os.mkdir(base + "/real", 0o700)
    build(base)
    target = base + ("/link/io" if "parent" in case else "/io")
    before = sorted(os.listdir(base)), sorted(os.listdir(base + "/real"))
    with pytest.raises(state.StateError, match=message):
        state.ensure_root_dir(target)
    assert (sorted(os.listdir(base)), sorted(os.listdir(base + "/real"))) == before


@needs_root
def test_open_root_dir_refuses_a_parent_others_can_write(tmp_path):
    base = str(tmp_path / "open")
    os.mkdir(base)
    os.chmod(base, 0o777)  # world-writable, not sticky: anyone could swap our directory
    with pytest.raises(state.StateError, match="written by other users"):
        state.ensure_root_dir(base + "/io")
    os.chmod(base, 0o1777)  # sticky, like /var/tmp: only the owner may rename its entries
    state.ensure_root_dir(base + "/io")


@needs_root
def test_open_root_dir_refuses_a_directory_owned_by_someone_else(tmp_path):
    base = str(tmp_path)
    os.chmod(base, 0o755)
    os.mkdir(base + "/io", 0o700)
    os.chown(base + "/io", 65534, 65534)
    with pytest.raises(state.StateError, match="belongs to uid 65534"):
        state.ensure_root_dir(base + "/io")


@pytest.mark.parametrize("path", ["relative/dir", "/a/../b", "", "/a/./b"])
def test_open_root_dir_refuses_odd_paths(path):
    with pytest.raises(state.StateError):
        state.ensure_root_dir(path)


def test_owned_dir_is_created_exclusively_and_removed_only_while_it_is_ours(tmp_path):
    base = str(tmp_path / "io")
    record = state.create_owned_dir(base, "exp")
    open(os.path.join(base, "exp", "data"), "w").close()
    with pytest.raises(state.StateError, match="already exists.*left untouched"):
        state.create_owned_dir(base, "exp")
    assert os.path.exists(os.path.join(base, "exp", "data"))
    assert state.remove_owned_dir(record) is True
    assert not os.path.exists(os.path.join(base, "exp"))
    # A directory of the same name made by someone else since is another inode: left alone.
    os.mkdir(os.path.join(base, "exp"))
    open(os.path.join(base, "exp", "keep"), "w").close()
    assert state.remove_owned_dir(record) is False
    assert os.path.exists(os.path.join(base, "exp", "keep"))


def test_owned_dir_replaced_by_a_symlink_is_not_followed(tmp_path):
    base, victim = str(tmp_path / "io"), str(tmp_path / "victim")
    os.mkdir(victim)
    open(os.path.join(victim, "precious"), "w").close()
    record = state.create_owned_dir(base, "exp")
    shutil.rmtree(os.path.join(base, "exp"))
    os.symlink(victim, os.path.join(base, "exp"))
    assert state.remove_owned_dir(record) is False
    assert os.path.exists(os.path.join(victim, "precious")) and os.path.islink(os.path.join(base, "exp"))


# ------------------------------------------------------------------ locks
def test_lock_is_exclusive_and_the_loser_gets_a_clear_error(tmp_path):
    base = str(tmp_path / "state")
    with state.name_lock(base, "exp"):
        with pytest.raises(state.StateError, match="being started or stopped by another run"):
            with state.name_lock(base, "exp"):
                pass
        with state.name_lock(base, "other"):
            pass  # another name is another lock
        with pytest.raises(state.StateError, match="one experiment per target"):
            with state.target_lock(base, "/kubepods/pod1/abc"):
                with state.target_lock(base, "/kubepods/pod1/abc", wait=0.2):
                    pass
    with state.name_lock(base, "exp"):
        pass  # released on exit


def test_lock_in_another_process_excludes_this_one(tmp_path):
    base = str(tmp_path / "state")
    read_fd, write_fd = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - the child holds the lock until the parent closes the pipe
        os.close(write_fd)
        with state.name_lock(base, "exp"):
            os.write(os.open(os.path.join(str(tmp_path), "held"), os.O_CREAT | os.O_WRONLY), b"1")
            os.read(read_fd, 1)
        os._exit(0)
    os.close(read_fd)
    try:
        while not os.path.exists(os.path.join(str(tmp_path), "held")):
            pass
        with pytest.raises(state.StateError):
            with state.name_lock(base, "exp", wait=0.2):
                pass
    finally:
        os.close(write_fd)
        os.waitpid(child, 0)
    with state.name_lock(base, "exp", wait=1.0):
        pass


# ------------------------------------------------------------------ samples
def test_sample_log_stays_under_its_cap_and_covers_the_whole_run(tmp_path):
    path = str(tmp_path / "samples.jsonl")
    log = state.SampleLog(path, max_bytes=4000)
    for t in range(1000):
        log.append({"t": t, "working_set_bytes": 123456789})
        assert os.path.getsize(path) <= 4000
    times = [json.loads(line)["t"] for line in open(path)]
    assert times[0] == 0 and times[-1] >= 1000 - log.stride
    steps = set(b - a for a, b in zip(times, times[1:]))
    assert steps == {log.stride} and log.stride > 1
    assert state.read_last_jsonl(path)["t"] == times[-1]


def test_read_last_jsonl_reads_only_the_tail_and_skips_a_cut_line(tmp_path):
    path = str(tmp_path / "samples.jsonl")
    with open(path, "w") as handle:
        for t in range(5000):
            handle.write(json.dumps({"t": t, "pad": "x" * 100}) + "\n")
        handle.write('{"t": 5000, "pa')  # a crash mid-write
    assert state.read_last_jsonl(path, limit=1024)["t"] == 4999
    assert state.read_last_jsonl(str(tmp_path / "missing")) is None


# ------------------------------------------------------------------ the default dead-man
@pytest.mark.parametrize("value, duration, expected", [
    (None, 30, 60.0),          # a short run: the deadline comes first
    (None, 600, 150.0),        # a quarter of the duration
    (None, 86400, 300.0),      # at most 5 minutes
    ("", 600, 150.0),
    ("off", 600, None),        # explicit
    ("OFF", 600, None),
    ("False", 600, None),      # an unquoted YAML off reaches the module as "False"
    ("45s", 600, 45.0),
])
def test_heartbeat_timeout_default_and_off(value, duration, expected):
    assert heartbeat_timeout_seconds(value, duration) == expected


@pytest.mark.parametrize("value", ["0", "never", "-5s"])
def test_heartbeat_timeout_refuses_anything_else(value):
    with pytest.raises(UnitError):
        heartbeat_timeout_seconds(value, 600)


# ------------------------------------------------------------------ experiment names
@pytest.mark.parametrize("name", ["a", "checkout-mem", "run_1.2", "A" * 100])
def test_good_names(name):
    assert state.validate_name(name) == name


@pytest.mark.parametrize("name", [
    "", "a/b", "..", "a..b", ".hidden", "-x", "a b", "a\n", "a\r\n", "a\x00", "A" * 101,
    "\u0663", "caf\u00e9", "\uff41", None,
])
def test_bad_names(name):
    with pytest.raises(state.StateError, match="not allowed"):
        state.validate_name(name)


@pytest.mark.parametrize("state_dir, name, want_dir", [
    ("/run/chaosfleet", "e1", "/run/chaosfleet/experiments/e1"),
    ("/run/chaosfleet/", "e1-abc", "/run/chaosfleet/experiments/e1-abc"),
    ("/", "e1", "/experiments/e1"),
])
def test_experiment_paths_are_the_one_layout(state_dir, name, want_dir):
    paths = state.experiment_paths(state_dir, name)
    assert paths == {"dir": want_dir, "heartbeat": want_dir + "/heartbeat", "outcome": want_dir + "/outcome.json",
                     "result": want_dir + "/result.json"}
    assert state.experiment_dir(state_dir.rstrip("/") or "/", name) == want_dir


def test_experiment_paths_refuse_a_name_that_leaves_the_directory():
    with pytest.raises(state.StateError, match="not allowed"):
        state.experiment_paths("/run/chaosfleet", "../x")


# ------------------------------------------------------------------ one read of /proc/<pid>/stat
def test_proc_stat_reads_group_start_and_cpu_at_once(tmp_path):
    root = str(tmp_path)
    write_proc(root, 300, 290, 4242, comm="a (b) c")  # comm with spaces and parentheses
    assert state.proc_stat(300, root) == (290, 4242, 0.0)
    assert (state.proc_pgid(300, root), state.proc_start_time(300, root)) == (290, 4242)
    assert state.proc_stat(301, root) is None
    with open(os.path.join(root, "300", "stat"), "w") as handle:
        handle.write("300 (cut) S 1\n")
    assert state.proc_stat(300, root) is None


def test_proc_stat_of_this_process():
    pgid, start, cpu = state.proc_stat(os.getpid())
    assert pgid == os.getpgid(0) and start == state.proc_start_time(os.getpid())
    times = os.times()
    assert abs(cpu - (times.user + times.system)) < 0.5
