"""_retire.py: which ended experiments go, the real retirement on a private state dir, retired lock files."""

import os
import subprocess
import threading

import pytest

from ansible_collections.chaosfleet.stress.plugins.module_utils import _retire as retire, _state as state
from ansible_collections.chaosfleet.stress.plugins.module_utils._experiment import Experiment
from ansible_collections.chaosfleet.stress.plugins.module_utils._units import UnitError

DAY = 24 * 3600.0
NOW = 1800000000.0


def ended(name, days_ago):
    return {"name": name, "state": retire.ENDED, "ended_at": NOW - days_ago * DAY}


def running(name):
    return {"name": name, "state": retire.RUNNING, "ended_at": None}


def unreadable(name):
    return {"name": name, "state": retire.UNREADABLE, "ended_at": None}


# (case, entries, retain_count, retain_age in seconds or None (off), names retired)
DECISIONS = [
    ("running ones are never retired", [running("r1"), running("r2"), ended("old", 400)], 0, None, ["old"]),
    ("unreadable ones are never retired", [unreadable("u"), ended("old", 400)], 0, None, ["old"]),
    ("count alone keeps the newest", [ended("a", 30), ended("b", 20), ended("c", 10)], 2, None, ["a"]),
    ("running ones do not take a count slot", [running("r"), ended("a", 30), ended("b", 20)], 1, None, ["a"]),
    ("age alone keeps the young", [ended("a", 8), ended("b", 6.9), ended("c", 1)], 0, 7 * DAY, ["a"]),
    ("kept when inside either rule", [ended("a", 30), ended("b", 20), ended("c", 1), ended("d", 2)], 1, 7 * DAY,
     ["a", "b"]),
    ("an old one within the count stays", [ended("a", 300), ended("b", 200)], 20, 7 * DAY, []),
    ("zero count and age off retire every ended one", [ended("a", 0), ended("b", 1), running("r")], 0, None,
     ["a", "b"]),
    ("zero count keeps only the young", [ended("a", 0.5), ended("b", 2)], 0, DAY, ["b"]),
    ("an end in the future (clock skew) is young", [ended("a", -1)], 0, DAY, []),
    ("equal end times: the name breaks the tie", [ended("b", 9), ended("a", 9)], 1, None, ["b"]),
    ("nothing at all", [], 0, None, []),
]


@pytest.mark.parametrize("case, entries, count, age, expected", DECISIONS, ids=[row[0] for row in DECISIONS])
def test_decide(case, entries, count, age, expected):
    assert retire.decide(entries, NOW, count, age) == expected


@pytest.mark.parametrize("value, expected", [
    (None, 7 * DAY), ("", 7 * DAY), ("168h", 7 * DAY), ("30m", 1800.0), ("90", 90.0),
    ("off", None), ("Off", None), ("False", None), (False, None), ("0", None), (0, None), ("0s", None),
])
def test_parse_retain_age(value, expected):
    assert retire.parse_retain_age(value) == expected


@pytest.mark.parametrize("value", ["-1h", "7d", "1 h", "9000h", "yes"])
def test_parse_retain_age_refuses_anything_else(value):
    with pytest.raises(UnitError):
        retire.parse_retain_age(value)


# ------------------------------------------------------------------ a retired lock file never gives two holders
def test_a_retired_lock_file_cannot_give_two_holders(tmp_path, monkeypatch):
    base = str(tmp_path / "state")
    first = state.name_lock(base, "exp").__enter__()
    waiting = threading.Event()
    acquired = threading.Event()
    release = threading.Event()
    held_inode = []
    real_flock = state.fcntl.flock

    class Hooked(object):
        LOCK_EX, LOCK_NB = state.fcntl.LOCK_EX, state.fcntl.LOCK_NB

        @staticmethod
        def flock(fd, op):
            if threading.current_thread().name == "second":
                waiting.set()  # the second run has opened the file and now tries to lock it
            return real_flock(fd, op)

    monkeypatch.setattr(state, "fcntl", Hooked)

    def second():
        with state.name_lock(base, "exp", wait=10) as lock:
            held_inode.append(os.fstat(lock.fd).st_ino)
            acquired.set()
            release.wait(10)

    thread = threading.Thread(target=second, name="second")
    thread.start()
    try:
        assert waiting.wait(5)
        os.unlink(first.path)  # retirement, while holding the flock of the file it removes
        third = state.name_lock(base, "exp").__enter__()  # a newcomer locks the new file at the path
        first.__exit__(None, None, None)  # the second run's flock on the old, unlinked file now succeeds ...
        assert not acquired.wait(0.5), "two runs hold the lock of one name"  # ... and it must not count
        third.__exit__(None, None, None)
        assert acquired.wait(5)
        assert held_inode == [os.stat(first.path).st_ino]  # it ended up on the file at the path
    finally:
        release.set()
        thread.join(10)


# ------------------------------------------------------------------ the real retirement on a private state dir
def dead_record():
    """A supervisor record with a real start time whose process is gone."""
    child = subprocess.Popen(["sleep", "0"])
    record = state.pid_record(child.pid)
    child.wait()
    return record


def make_experiment(base, name, ended_at=None, target="/kubepods/pod1/app", supervisor=None):
    experiment = Experiment(base, name)
    state.ensure_root_dir(os.path.dirname(experiment.dir))
    os.mkdir(experiment.dir, 0o700)
    state.write_json(experiment.path(state.SPEC), {"name": name, "target": {"path": target}})
    state.write_json(experiment.path(state.SUPERVISOR), supervisor or dead_record())
    state.write_json(experiment.path(state.STATUS), {"state": "running", "instances": [dead_record()]})
    if ended_at is not None:
        state.write_json(experiment.path(state.OUTCOME), {"status": "finished", "reason": "deadline",
                                                          "ended_at": ended_at})
    with state.name_lock(base, name), state.target_lock(base, target):
        pass  # leaves the lock files a real run leaves
    return experiment


def lock_files(base):
    return sorted(os.listdir(os.path.join(base, "locks")))


def test_retire_removes_only_old_ended_experiments_and_their_unused_locks(tmp_path):
    base = str(tmp_path / "state")
    for days in range(1, 6):  # five ended long ago, each on its own target
        make_experiment(base, "old%d" % days, NOW - (30 + days) * DAY, target="/kubepods/old%d" % days)
    make_experiment(base, "recent", NOW - DAY, target="/kubepods/recent")
    make_experiment(base, "running", None, target="/kubepods/run")
    make_experiment(base, "live-supervisor", NOW - 90 * DAY, target="/kubepods/live",
                    supervisor=state.pid_record(os.getpid()))
    broken = make_experiment(base, "broken", NOW - 90 * DAY, target="/kubepods/broken")
    with open(broken.path(state.OUTCOME), "w") as handle:
        handle.write('{"status": "fini')  # cut mid-write
    outside = tmp_path / "outside"
    outside.mkdir()
    os.symlink(str(outside), os.path.join(base, "experiments", "link"))
    with state.name_lock(base, "never-started"):
        pass  # a stop of an unknown name leaves an orphan name lock
    # A stop of old3 is under way: its name is busy, so it is skipped this time.
    with state.name_lock(base, "old3"):
        retired, errors = retire.retire(base, retain_count=3, retain_age=7 * DAY, now=NOW)

    assert retired == ["old4", "old5"]  # recent, old1 and old2 are the three newest ended ones
    assert sorted(os.listdir(os.path.join(base, "experiments"))) == [
        "broken", "link", "live-supervisor", "old1", "old2", "old3", "recent", "running"]
    assert os.listdir(os.path.join(base, retire.TRASH)) == []
    assert [e.split(":")[0] for e in errors] == ["broken", "link"]
    assert os.path.isdir(str(outside)) and os.path.islink(os.path.join(base, "experiments", "link"))
    kept = ("old1", "old2", "old3", "recent", "run", "live", "broken")
    keys = [state.target_lock(base, "/kubepods/" + t).path.rsplit("/", 1)[1] for t in kept]
    names = ["name-%s.lock" % n for n in ("broken", "live-supervisor", "old1", "old2", "old3", "recent", "running")]
    assert lock_files(base) == sorted(keys + names)

    # Nothing changes on a second pass at the same moment; with retention off every ended one goes.
    assert retire.retire(base, retain_count=3, retain_age=7 * DAY, now=NOW)[0] == ["old3"]
    retired, _errors = retire.retire(base, retain_count=0, retain_age=None, now=NOW)
    assert retired == ["old1", "old2", "recent"]
    assert sorted(os.listdir(os.path.join(base, "experiments"))) == ["broken", "link", "live-supervisor", "running"]


def test_retire_rechecks_under_the_lock(tmp_path, monkeypatch):
    """A name restarted between the survey and the lock is not removed."""
    base = str(tmp_path / "state")
    make_experiment(base, "again", NOW - 90 * DAY)
    survey_one = retire.survey_one
    calls = []

    def restarted_meanwhile(state_dir, name, proc_root="/proc"):
        calls.append(name)
        if len(calls) == 2:  # the re-check under the name lock
            os.remove(os.path.join(state_dir, "experiments", name, state.OUTCOME))
        return survey_one(state_dir, name, proc_root)

    monkeypatch.setattr(retire, "survey_one", restarted_meanwhile)
    assert retire.retire(base, retain_count=0, retain_age=None, now=NOW) == ([], [])
    assert os.path.isdir(os.path.join(base, "experiments", "again"))


def test_retire_skips_the_excluded_name_and_survives_a_missing_state_dir(tmp_path):
    base = str(tmp_path / "state")
    assert retire.retire(base, now=NOW) == ([], [])
    make_experiment(base, "just-started", NOW - 90 * DAY)
    leftover = os.path.join(state.ensure_root_dir(os.path.join(base, retire.TRASH)), "cut-short.1234", "deep")
    os.makedirs(leftover)  # an earlier removal cut short after the move
    assert retire.retire(base, retain_count=0, retain_age=None, now=NOW, exclude=("just-started",)) == ([], [])
    assert os.path.isdir(os.path.join(base, "experiments", "just-started"))
    assert os.listdir(os.path.join(base, retire.TRASH)) == []


# ------------------------------------------------------------------ the stressor's options and its best-effort call
def test_stressor_documents_the_options_and_retires_best_effort(tmp_path, monkeypatch):
    import yaml
    from ansible_collections.chaosfleet.stress.plugins.modules import stressor

    options = yaml.safe_load(stressor.DOCUMENTATION)["options"]
    spec = stressor.argument_spec()
    for option in ("retain_count", "retain_age"):
        assert options[option]["default"] == spec[option]["default"] and options[option]["type"] == spec[option]["type"]
    assert retire.parse_retain_age(spec["retain_age"]["default"]) == retire.DEFAULT_RETAIN_AGE_SECONDS

    base = str(tmp_path / "state")
    make_experiment(base, "last-week", 1.0)  # ended in 1970
    make_experiment(base, "now-starting", None)
    params = dict(state_dir=base, retain_count=0, retain_age="168h")
    assert stressor.retire_after_start(params, "now-starting") == dict(retired=["last-week"], retire_errors=[])

    def broken(*_args, **_kwargs):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(stressor, "retire", broken)
    result = stressor.retire_after_start(params, "now-starting")
    assert result["retired"] == [] and "Input/output error" in result["retire_errors"][0]
