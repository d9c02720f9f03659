"""_sampling.py: sample_targets against fake cgroup v1 and v2 trees, driven by a scripted clock and kernel log
(series, intervals, summary figures, recovery, OOM kills, error paths); experiment_result against a recorded
experiment directory."""

import os
import shutil
import socket

import pytest

from ansible_collections.chaosfleet.stress.plugins.module_utils import _oom, _result, _sampling, _usage
from ansible_collections.chaosfleet.stress.plugins.module_utils import _state as state
from ansible_collections.chaosfleet.stress.plugins.module_utils._experiment import Experiment
from ansible_collections.chaosfleet.stress.plugins.module_utils._oom import OomParser
from ansible_collections.chaosfleet.stress.plugins.module_utils._sampling import (
    IDENTITY, effective_percent, experiment_result, sample_targets,
)
from ansible_collections.chaosfleet.stress.plugins.module_utils._target_options import node_resolver
from tests.unit.nodefix import FakeNode, fixture_path

MI = 1024 * 1024
T0 = 1000.0
CID = "3f2a1b0c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a"
CID2 = "3f2a1b0c9d8e11111111111111111111111111111111111111111111111111aa"
UID = "0b6f1a52-7c1e-4d4e-9a55-3e8c2f1d0a77"
PATHS = {
    "v1.txt": "/kubepods/burstable/pod%s/%s" % (UID, CID),
    "v2.txt": "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod%s.slice/cri-containerd-%s.scope"
              % (UID.replace("-", "_"), CID),
}
# The memcg the kernel log fixture kmsg/v2-group-kill.txt names.
GROUP_KILL_MEMCG = "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1.slice/cri-containerd-abc.scope"
# From the fixture files: the inactive file pages the working set leaves out, and the OOM kill counter at the start.
INACTIVE_FILE = {1: 3915776, 2: 6291456}
FIRST_OOM_COUNT = {1: 3, 2: 2}
MONO_AT_T0 = 89.0


# -- the scripted node ----------------------------------------------------------------------------------------
class Clock(object):
    """time() and sleep() for sample_targets. Every sleep wakes into the next point of the series (``on_wake``).
    ``read_cost``: seconds each sample read takes."""

    def __init__(self, read_cost=0.0):
        self.now = T0
        self.read_cost = read_cost
        self.sleeps = []
        self.on_wake = None

    def time(self):
        return self.now

    def sleep(self, seconds):
        assert seconds >= 0
        self.sleeps.append(round(seconds, 6))
        self.now += seconds
        if self.on_wake:
            self.on_wake()


class SampleTime(object):
    """Stands for the time module in _usage: a sample is stamped with the scripted clock, and reading costs time."""

    def __init__(self, clock):
        self.clock = clock

    def time(self):
        stamp = self.clock.now
        self.clock.now += self.clock.read_cost
        return stamp


class OomTime(object):
    """Stands for the time module in _oom: wall time is the scripted clock, and the kernel's monotonic clock reads
    MONO_AT_T0 at T0 (the kmsg fixtures' records are stamped around 90 s)."""

    def __init__(self, clock):
        self.clock = clock

    def time(self):
        return self.clock.now

    def monotonic(self):
        return self.clock.now - T0 + MONO_AT_T0


class FakeKernelLog(object):
    """Stands for /dev/kmsg: the fixture's records arrive on the read call numbered ``arrive_on`` (0-based)."""

    def __init__(self, text="", arrive_on=0, available=True):
        self.text = text
        self.arrive_on = arrive_on
        self.available = available
        self.reads = 0
        self.closed = False
        self.parser = OomParser()

    def read(self):
        self.reads += 1
        return self.parser.feed(self.text) if self.reads - 1 == self.arrive_on else []

    def close(self):
        self.closed = True


def kmsg(name):
    with open(fixture_path("..", "kmsg", name)) as handle:
        return handle.read()


@pytest.fixture
def clock(monkeypatch):
    clock = Clock()
    monkeypatch.setattr(_usage, "time", SampleTime(clock))
    monkeypatch.setattr(_oom, "time", OomTime(clock))
    monkeypatch.setattr(_oom, "kmsg_error", lambda path=None: None)
    monkeypatch.setattr(_sampling, "KernelLog", FakeKernelLog)
    return clock


def use_log(monkeypatch, log):
    monkeypatch.setattr(_sampling, "KernelLog", lambda: log)


class Target(object):
    """One fake target cgroup: writes a point of a series into its files."""

    def __init__(self, node, path, processes=((4242, "httpd", 999),)):
        node.add_cgroup(path, processes=list(processes))
        self.version = node.version
        self.resolved = node_resolver(node.params()).resolve(node.params(cgroup_path=path))[0]

    def write(self, ws_mib=None, cpu_seconds=None, oom_kills=None):
        for directory in set(self.resolved["dirs"].values()):
            if self.version == 2:
                files = {"memory.current": ws_mib, "cpu.stat": cpu_seconds, "memory.events": oom_kills}
                text = {"memory.current": lambda v: "%d\n" % (int(v * MI) + INACTIVE_FILE[2]),
                        "cpu.stat": lambda v: "usage_usec %d\nnr_periods 500\nnr_throttled 50\n" % int(v * 1e6),
                        "memory.events": lambda v: "oom 0\noom_kill %d\n" % v}
            else:
                files = {"memory.usage_in_bytes": ws_mib, "cpuacct.usage": cpu_seconds, "memory.oom_control": oom_kills}
                text = {"memory.usage_in_bytes": lambda v: "%d\n" % (int(v * MI) + INACTIVE_FILE[1]),
                        "cpuacct.usage": lambda v: "%d\n" % int(v * 1e9),
                        "memory.oom_control": lambda v: "oom_kill_disable 0\nunder_oom 0\noom_kill %d\n" % v}
            for name, value in files.items():
                if value is not None:
                    with open(os.path.join(directory, name), "w") as handle:
                        handle.write(text[name](value))

    def remove(self):
        for directory in set(self.resolved["dirs"].values()):
            shutil.rmtree(directory, ignore_errors=True)  # the last point is written again on later ticks


def script(clock, series):
    """series: [(Target, [point, ...])], a point being write()'s keyword arguments (or a callable). Point 0 is
    written now, point i after the i-th sleep; past the end the last one stays."""
    ticks = [0]

    def write(index):
        for target, points in series:
            point = points[min(index, len(points) - 1)]
            if callable(point):
                point(target)
            else:
                target.write(**point)

    def wake():
        ticks[0] += 1
        write(ticks[0])

    write(0)
    clock.on_wake = wake


def ws_points(values_mib):
    return [{"ws_mib": v} for v in values_mib]


def offsets(samples):
    return [round(s["t"] - T0, 3) for s in samples]


# -- series and intervals -------------------------------------------------------------------------------------
INTERVALS = [
    ("whole intervals", 3, 1.0, 0.0, [0, 1, 2, 3], [1, 1, 1]),
    ("a window that is not a multiple of the interval", 2.5, 1.0, 0.0, [0, 1, 2], [1, 1]),
    ("a zero window is one sample", 0, 1.0, 0.0, [0], []),
    ("an interval longer than the window", 1, 5.0, 0.0, [0], []),
    ("sub-second interval", 1, 0.25, 0.0, [0, 0.25, 0.5, 0.75, 1.0], [0.25, 0.25, 0.25, 0.25]),
    ("the read time is taken out of the sleep: no drift", 3, 1.0, 0.25, [0, 1, 2, 3], [0.75, 0.75, 0.75]),
]


@pytest.mark.parametrize("mountinfo", sorted(PATHS))
@pytest.mark.parametrize("case, duration, interval, cost, times, sleeps", INTERVALS, ids=[r[0] for r in INTERVALS])
def test_intervals(tmp_path, clock, mountinfo, case, duration, interval, cost, times, sleeps):
    clock.read_cost = cost
    target = Target(FakeNode(tmp_path, mountinfo), PATHS[mountinfo])
    script(clock, [(target, ws_points([100]))])
    out = sample_targets([target.resolved], str(tmp_path / "proc"), duration, interval, clock=clock)
    assert offsets(out[0]["samples"]) == times
    assert clock.sleeps == sleeps
    assert out[0]["recovery"] is None


SERIES = [(100, 10.0, 0), (150, 10.5, 0), (200, 11.5, 1), (120, 12.0, 1)]  # (working set MiB, CPU s, new OOM kills)
# rss and cache come from the fixture's memory.stat, unchanged through the series.
FIXED = {"v1.txt": {"rss": 221184000, "cache": 4521984, "psi": None},
         "v2.txt": {"rss": 209715200, "cache": 8388608, "psi": {"max": 12.5, "mean": 12.5}}}


@pytest.mark.parametrize("mountinfo", sorted(PATHS))
def test_series_and_summary_figures(tmp_path, clock, mountinfo):
    node = FakeNode(tmp_path, mountinfo)
    target = Target(node, PATHS[mountinfo])
    version = node.version
    points = [{"ws_mib": ws, "cpu_seconds": cpu, "oom_kills": FIRST_OOM_COUNT[version] + kills}
              for ws, cpu, kills in SERIES]
    script(clock, [(target, points)])
    [out] = sample_targets([target.resolved], node.proc_root, 3, 1.0, clock=clock)

    assert [s["working_set_bytes"] for s in out["samples"]] == [ws * MI for ws, _cpu, _k in SERIES]
    assert [s["cpu_usage_seconds"] for s in out["samples"]] == pytest.approx([cpu for _ws, cpu, _k in SERIES])
    summary = out["summary"]
    assert summary["count"] == 4 and summary["window_seconds"] == 3.0
    assert summary["working_set_bytes"] == {"min": 100 * MI, "mean": 142.5 * MI, "p95": pytest.approx(192.5 * MI),
                                            "max": 200 * MI}
    assert summary["cpu_cores"] == pytest.approx(2.0 / 3)
    assert summary["throttled_ratio"] is None  # no CFS period elapsed in the series
    assert summary["oom_kill_count"] == 1
    assert summary["rss_bytes"]["max"] == summary["rss_bytes"]["min"] == FIXED[mountinfo]["rss"]
    assert summary["cache_bytes"]["mean"] == FIXED[mountinfo]["cache"]
    assert summary["psi_memory_some_avg10"] == FIXED[mountinfo]["psi"]
    # The counter's kill, never named by a kernel log, is recorded as unknown once.
    assert [(k["pid"], k["victim"], k["source"], k["group_kill"]) for k in out["oom_kills"]] == [
        (None, "unknown", "counter", version == 2)]
    # The target is named by its identity only: no host directories in the result.
    assert sorted(out["target"]) == sorted(IDENTITY)
    assert out["target"]["path"] == PATHS[mountinfo] and out["target"]["container_id"] == CID
    assert (out["target"]["pod_uid"], out["target"]["qos_class"], out["target"]["cgroup_version"]) == (
        UID, "Burstable", version)


def test_every_target_is_sampled_on_the_same_ticks(tmp_path, clock):
    node = FakeNode(tmp_path, "v2.txt")
    first = Target(node, PATHS["v2.txt"])
    second = Target(node, "/system.slice/docker-%s.scope" % CID2, processes=[(5151, "redis", 0)])
    script(clock, [(first, ws_points([100, 110, 120])), (second, ws_points([300, 200, 100]))])
    out = sample_targets([first.resolved, second.resolved], node.proc_root, 2, 1.0, clock=clock)
    assert [o["target"]["container_id"] for o in out] == [CID, CID2]
    assert [offsets(o["samples"]) for o in out] == [[0, 1, 2], [0, 1, 2]]
    assert [[s["working_set_bytes"] // MI for s in o["samples"]] for o in out] == [[100, 110, 120], [300, 200, 100]]


# -- recovery -------------------------------------------------------------------------------------------------
BASELINE = 100 * MI
# (case, working set MiB per tick, recovery options, duration, samples taken, recovered, seconds,
#  within_percent reported, band_bytes)
RECOVERY = [
    ("already inside: stops after stable_samples (3 by default)", [100, 101, 99, 100], {}, 10, 3, True, 0.0,
     10, 10 * MI),
    ("comes down, then holds", [300, 250, 105, 100, 98], {}, 10, 5, True, 2.0, 10, 10 * MI),
    ("a dip back out of the band starts the count again", [300, 105, 150, 104, 103, 102], {}, 10, 6, True, 3.0,
     10, 10 * MI),
    ("stable_samples 1: the first sample inside ends it", [300, 100], {"stable_samples": 1}, 10, 2, True, 1.0,
     10, 10 * MI),
    ("never back: samples until the timeout", [300], {}, 4, 5, False, None, 10, 10 * MI),
    ("the edge of the band is inside", [125], {"within_percent": 25}, 10, 3, True, 0.0, 25, 25 * MI),
    ("a tolerance widens a narrow band (small apps sit in kernel noise)", [106],
     {"within_percent": 1, "tolerance_bytes": 8 * MI}, 10, 3, True, 0.0, 1, 8 * MI),
    ("without the tolerance the same series never recovers", [106], {"within_percent": 1}, 3, 4, False, None,
     1, MI),
    ("a tolerance narrower than the percentage changes nothing", [300, 109], {"tolerance_bytes": MI}, 10, 4, True,
     1.0, 10, 10 * MI),
]


@pytest.mark.parametrize("case, series, options, duration, count, recovered, seconds, within, band",
                         RECOVERY, ids=[r[0] for r in RECOVERY])
def test_recovery(tmp_path, clock, case, series, options, duration, count, recovered, seconds, within, band):
    target = Target(FakeNode(tmp_path, "v2.txt"), PATHS["v2.txt"])
    script(clock, [(target, ws_points(series))])
    recovery = dict({"baseline_working_set_bytes": BASELINE, "within_percent": 10}, **options)
    [out] = sample_targets([target.resolved], str(tmp_path / "proc"), duration, 1.0, recovery=recovery, clock=clock)
    assert len(out["samples"]) == count
    want = {"recovered": recovered, "seconds": seconds, "within_percent": within, "timeout_seconds": duration,
            "band_bytes": band}
    if recovered is False:
        # These series end above the band; without baseline_rss_bytes the anonymous side is unknown.
        want.update(below_baseline=False, anon_back=None, stress_released=False)
    assert out["recovery"] == want
    assert recovery["within_percent"] == within  # the caller's dict is left as it was


@pytest.mark.parametrize("anon_offset, released", [(0, True), (-20 * MI, False)])
def test_recovery_tells_a_released_stress_by_its_anonymous_memory(tmp_path, clock, anon_offset, released):
    """A working set that stays above the band, with the anonymous memory at its baseline (then 20 MiB over it)."""
    target = Target(FakeNode(tmp_path, "v2.txt"), PATHS["v2.txt"])
    script(clock, [(target, ws_points([300]))])
    [first] = sample_targets([target.resolved], str(tmp_path / "proc"), 0, 1.0, clock=clock)
    anon = first["samples"][0]["rss_bytes"]
    script(clock, [(target, ws_points([300]))])
    recovery = {"baseline_working_set_bytes": BASELINE, "within_percent": 10, "baseline_rss_bytes": anon + anon_offset}
    [out] = sample_targets([target.resolved], str(tmp_path / "proc"), 3, 1.0, recovery=recovery, clock=clock)
    got = out["recovery"]
    assert (got["recovered"], got["below_baseline"]) == (False, False)
    assert (got["anon_back"], got["stress_released"]) == (released, released)


def test_recovery_waits_for_every_target(tmp_path, clock):
    node = FakeNode(tmp_path, "v2.txt")
    quick = Target(node, PATHS["v2.txt"])
    slow = Target(node, "/system.slice/docker-%s.scope" % CID2, processes=[(5151, "redis", 0)])
    script(clock, [(quick, ws_points([100])), (slow, ws_points([300, 300, 100]))])
    recovery = {"baseline_working_set_bytes": BASELINE, "within_percent": 10, "stable_samples": 2}
    out = sample_targets([quick.resolved, slow.resolved], node.proc_root, 10, 1.0, recovery=recovery, clock=clock)
    assert [len(o["samples"]) for o in out] == [4, 4]
    assert [(o["recovery"]["recovered"], o["recovery"]["seconds"]) for o in out] == [(True, 0.0), (True, 2.0)]


EFFECTIVE = [
    ("no tolerance", {"within_percent": 10}, 10),
    ("tolerance None", {"within_percent": 10, "tolerance_bytes": None}, 10),
    ("tolerance wider than the percentage", {"within_percent": 1, "tolerance_bytes": 8 * MI}, 8.0),
    ("percentage wider than the tolerance", {"within_percent": 20, "tolerance_bytes": 8 * MI}, 20),
    ("a zero baseline counts as one byte", {"within_percent": 5, "tolerance_bytes": 2, "baseline": 0}, 200.0),
]


@pytest.mark.parametrize("case, recovery, percent", EFFECTIVE, ids=[r[0] for r in EFFECTIVE])
def test_effective_percent(case, recovery, percent):
    recovery = dict(recovery)
    recovery["baseline_working_set_bytes"] = recovery.pop("baseline", BASELINE)
    assert effective_percent(recovery) == percent


# -- OOM kills ------------------------------------------------------------------------------------------------
# (case, target path, kernel log fixture (None: unreadable), the read it arrives on (0-3 with the four samples,
#  4 after them), kills the counter adds (< 0: on the last sample), expected (pid, comm, victim, source))
COUNTED = (None, None, "unknown", "counter")
NAMED = [(430, "stress-ng-vm", "app", "kmsg"), (427, "httpd", "app", "kmsg"), (429, "stress-ng", "unknown", "kmsg")]
OOM = [
    ("a group kill named by the log: seen PIDs are the app's, an unseen one unknown", GROUP_KILL_MEMCG,
     "v2-group-kill.txt", 1, 3, NAMED),
    ("the counter shows more than the log names", GROUP_KILL_MEMCG, "v2-group-kill.txt", 1, 5,
     NAMED + [COUNTED] * 2),
    ("log lines that come after the last sample are read", GROUP_KILL_MEMCG, "v2-group-kill.txt", 4, -3, NAMED),
    ("kills in another cgroup are not this target's", "/system.slice/docker-%s.scope" % CID, "v2-group-kill.txt", 1,
     0, []),
    ("no kernel log: the counter alone", GROUP_KILL_MEMCG, None, None, 2, [COUNTED] * 2),
    ("a kill counted on the last sample is still recorded", GROUP_KILL_MEMCG, None, None, -1, [COUNTED]),
]


@pytest.mark.parametrize("case, path, log_fixture, arrive_on, added, expected", OOM, ids=[r[0] for r in OOM])
def test_oom_kills(tmp_path, clock, monkeypatch, case, path, log_fixture, arrive_on, added, expected):
    if log_fixture:
        log = FakeKernelLog(kmsg(log_fixture), arrive_on=arrive_on)
    else:
        log = FakeKernelLog(available=False)
        monkeypatch.setattr(_oom, "kmsg_error", lambda path=None: "/dev/kmsg: Operation not permitted")
    use_log(monkeypatch, log)
    node = FakeNode(tmp_path, "v2.txt")
    target = Target(node, path, processes=[(427, "httpd", 0), (430, "stress-ng-vm", 1000)])
    # added < 0: that many kills, counted on the last sample only.
    counts = [2, 2 + added] if added >= 0 else [2, 2, 2, 2 - added]
    script(clock, [(target, [{"oom_kills": c} for c in counts])])
    [out] = sample_targets([target.resolved], node.proc_root, 3, 1.0, clock=clock)
    assert [(k["pid"], k["comm"], k["victim"], k["source"]) for k in out["oom_kills"]] == expected
    counted = expected.count(COUNTED)
    assert all(k["group_kill"] is True for k in out["oom_kills"])  # the fixture's memory.oom.group is 1
    unavailable = [k for k in out["oom_kills"] if k.get("kmsg_unavailable")]
    if log_fixture:
        assert unavailable == []
    else:
        assert len(unavailable) == abs(added) and "Operation not permitted" in unavailable[0]["detail"]
    # A kill the log names is stamped with the kernel's time of it (its records are 1 s after T0 here).
    assert [k["t"] for k in out["oom_kills"] if k["source"] == "kmsg"] == [T0 + 1.0] * (len(expected) - counted)
    assert log.closed


# -- error paths ----------------------------------------------------------------------------------------------
def test_a_target_removed_mid_window_leaves_gaps_not_an_error(tmp_path, clock):
    target = Target(FakeNode(tmp_path, "v2.txt"), PATHS["v2.txt"])
    script(clock, [(target, [{"ws_mib": 100}, {"ws_mib": 140}, Target.remove])])
    recovery = {"baseline_working_set_bytes": BASELINE, "within_percent": 10}
    [out] = sample_targets([target.resolved], str(tmp_path / "proc"), 3, 1.0, recovery=recovery, clock=clock)
    assert [s["working_set_bytes"] for s in out["samples"]] == [100 * MI, 140 * MI, None, None]
    assert out["summary"]["count"] == 4
    assert out["summary"]["working_set_bytes"]["max"] == 140 * MI and out["summary"]["working_set_bytes"]["min"] == \
        100 * MI
    # The last sample read is outside the band: not recovered, and the gaps do not count as recovered.
    assert (out["recovery"]["recovered"], out["recovery"]["seconds"]) == (False, None)


def test_a_target_with_no_readable_memory_is_unknown_recovery(tmp_path, clock):
    target = Target(FakeNode(tmp_path, "v2.txt"), PATHS["v2.txt"])
    os.remove(os.path.join(target.resolved["dirs"]["unified"], "memory.current"))
    recovery = {"baseline_working_set_bytes": BASELINE, "within_percent": 10}
    [out] = sample_targets([target.resolved], str(tmp_path / "proc"), 2, 1.0, recovery=recovery, clock=clock)
    assert len(out["samples"]) == 3 and out["summary"]["working_set_bytes"] is None
    assert (out["recovery"]["recovered"], out["recovery"]["seconds"]) == (None, None)


class Cancelled(Exception):
    pass


def test_the_kernel_log_is_closed_when_sampling_is_cancelled(tmp_path, clock, monkeypatch):
    log = FakeKernelLog()
    use_log(monkeypatch, log)
    target = Target(FakeNode(tmp_path, "v2.txt"), PATHS["v2.txt"])

    def cancel(_seconds):
        raise Cancelled()

    clock.sleep = cancel
    with pytest.raises(Cancelled):
        sample_targets([target.resolved], str(tmp_path / "proc"), 5, 1.0, clock=clock)
    assert log.closed and log.reads == 1


# -- experiment_result: what a stressor experiment recorded ---------------------------------------------------
def sample(offset, ws_mib, cpu_seconds):
    memory = {"working_set_bytes": ws_mib * MI, "usage_bytes": ws_mib * MI, "rss_bytes": ws_mib * MI,
              "cache_bytes": 0, "limit_bytes": 512 * MI, "oom_kill_count": 0}
    cpu = {"usage_seconds": cpu_seconds, "nr_periods": None, "nr_throttled": None, "throttled_seconds": None}
    return _usage.sample_from(memory, cpu, {}, now=T0 + offset)


SAMPLES = [sample(0, 50, 0.0), sample(1, 100, 0.1), sample(2, 250, 0.2), sample(3, 250, 1.2), sample(4, 250, 2.2)]
TARGET = {"path": PATHS["v2.txt"], "container_id": CID, "pod_uid": UID, "qos_class": "Burstable", "cgroup_version": 2,
          "kind": "container", "dirs": {"unified": "/sys/fs/cgroup" + PATHS["v2.txt"]}}
LIMITS = {"memory_limit_bytes": 512 * MI, "cpu_quota_cores": 1.5, "oom_group": True}
MEMORY_PLAN = {"duration_seconds": 4, "memory": {"bytes": 200 * MI, "target_usage_bytes": None, "ramp_seconds": 2,
                                                 "workers": 2}, "cpu": None, "io": None}
CPU_PLAN = {"duration_seconds": 4, "memory": None, "cpu": {"load_percent": 50, "cores": 1.0, "workers": 3}, "io": None}
IO_PLAN = {"duration_seconds": 4, "memory": None, "cpu": None, "io": {"workers": 4, "bytes": MI}}
KILL = {"t": T0 + 3.5, "pid": 430, "comm": "stress-ng-vm", "victim": "stressor", "group_kill": True, "source": "kmsg"}
OUTCOME = {"status": "finished", "reason": "deadline", "ended_at": T0 + 4.2, "achieved_increase_bytes": 199 * MI,
           "oom_kills": [dict(KILL, pid=431)]}
LOST = {"pid": 1, "start_time": 1}  # a supervisor record that matches no process

# (case, plan, outcome, events, expected request kind/workers, status, reason, achieved, oom kill PIDs)
RECORDED = [
    ("memory, finished: achieved from the outcome; its kills, not the events'", MEMORY_PLAN, OUTCOME,
     [{"t": T0 + 2, "event": "holding"}, dict(KILL, event="oom_kill")], ("memory", 2), "finished", "deadline",
     {"working_set_increase_bytes": 199 * MI, "cpu_cores": None}, [431]),
    ("cpu, supervisor lost: CPU from the holding event on; kills from the events", CPU_PLAN, None,
     [{"t": T0 + 2, "event": "holding"}, dict(KILL, event="oom_kill")], ("cpu", 3), "aborted", "supervisor_lost",
     {"working_set_increase_bytes": None, "cpu_cores": 1.0}, [430]),
    ("cpu, never held: CPU over every sample; the outcome's empty kill list wins", CPU_PLAN,
     dict(OUTCOME, status="stopped", reason="stop", oom_kills=[]), [dict(KILL, event="oom_kill")], ("cpu", 3),
     "stopped", "stop", {"working_set_increase_bytes": 199 * MI, "cpu_cores": 0.55}, []),
    ("supervisor lost: a late log line in the events takes its counter record's place", CPU_PLAN, None,
     [dict(KILL, event="oom_kill", pid=None, source="counter"), dict(KILL, event="oom_kill", pid=432, late=True)],
     ("cpu", 3), "aborted", "supervisor_lost", {"working_set_increase_bytes": None, "cpu_cores": 0.55}, [432]),
    ("io: the workers of the I/O plan", IO_PLAN, dict(OUTCOME, achieved_increase_bytes=None), [], ("io", 4),
     "finished", "deadline", {"working_set_increase_bytes": None, "cpu_cores": None}, [431]),
]


def record(tmp_path, plan, outcome, events):
    experiment = Experiment(str(tmp_path / "state"), "exp-1")
    os.makedirs(experiment.dir)
    state.write_json(experiment.path(state.SPEC), {"target": TARGET, "plan": plan, "limits": LIMITS,
                                                   "argv": [["stress-ng", "--vm", "1"]]})
    state.write_json(experiment.path(state.STATUS), {"started_at": T0, "deadline": T0 + 4, "supervisor": LOST,
                                                     "instances": []})
    if outcome is not None:
        state.write_json(experiment.path(state.OUTCOME), outcome)
    for point in SAMPLES:
        state.append_jsonl(experiment.path(state.SAMPLES), point)
    for event in events:
        state.append_jsonl(experiment.path(state.EVENTS), event)
    return experiment


@pytest.mark.parametrize("case, plan, outcome, events, request_kind, status, reason, achieved, kills", RECORDED,
                         ids=[r[0] for r in RECORDED])
def test_experiment_result(tmp_path, case, plan, outcome, events, request_kind, status, reason, achieved, kills):
    result = experiment_result(record(tmp_path, plan, outcome, events), host="node1")
    assert _result.validate(result) is None
    assert (result["host"], result["experiment"]) == ("node1", "exp-1")
    assert (result["request"]["kind"], result["request"]["workers"]) == request_kind
    assert result["request"]["duration_seconds"] == 4
    assert (result["status"], result["reason"]) == (status, reason)
    assert (result["started_at"], result["deadline"]) == (T0, T0 + 4)
    assert result["ended_at"] == (outcome or {}).get("ended_at")
    assert result["achieved"]["working_set_increase_bytes"] == achieved["working_set_increase_bytes"]
    if achieved["cpu_cores"] is None:
        assert result["achieved"]["cpu_cores"] is None
    else:
        assert result["achieved"]["cpu_cores"] == pytest.approx(achieved["cpu_cores"])
    assert [k["pid"] for k in result["oom_kills"]] == kills
    assert all("event" not in k for k in result["oom_kills"])
    # The first sample is the baseline (taken before any stress); the summary covers them all.
    assert result["baseline"]["count"] == 1 and result["baseline"]["working_set_bytes"]["mean"] == 50 * MI
    assert result["summary"]["count"] == 5 and result["summary"]["working_set_bytes"]["max"] == 250 * MI
    assert result["samples"] == SAMPLES
    assert result["target"] == {"path": PATHS["v2.txt"], "container_id": CID, "pod_uid": UID,
                                "qos_class": "Burstable", "cgroup_version": 2, "limit_bytes": 512 * MI,
                                "cpu_quota_cores": 1.5, "oom_group": True}


def test_experiment_result_memory_request_and_default_host(tmp_path):
    result = experiment_result(record(tmp_path, MEMORY_PLAN, OUTCOME, []))
    assert result["host"] == socket.gethostname()
    assert result["request"]["memory_bytes"] == 200 * MI and result["request"]["ramp_seconds"] == 2
    assert result["request"]["cpu_load_percent"] is None
    assert result["argv"] == [["stress-ng", "--vm", "1"]]


def test_experiment_result_with_nothing_recorded(tmp_path):
    """An experiment directory with a spec and nothing else (the supervisor died at once) still reads back."""
    experiment = Experiment(str(tmp_path / "state"), "exp-1")
    os.makedirs(experiment.dir)
    state.write_json(experiment.path(state.SPEC), {"target": TARGET, "plan": CPU_PLAN})
    result = experiment_result(experiment, host="node1")
    assert (result["status"], result["reason"]) == ("aborted", "supervisor_lost")
    assert result["baseline"] is None and result["samples"] == [] and result["summary"]["count"] == 0
    assert result["oom_kills"] == [] and result["request"]["workers"] == 3
    assert result["target"]["limit_bytes"] is None
