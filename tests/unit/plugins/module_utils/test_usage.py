import os
import subprocess
import time

import pytest

from ansible_collections.chaosfleet.stress.plugins.module_utils._target_options import node_resolver
from ansible_collections.chaosfleet.stress.plugins.module_utils._resolve import WHOLE_READ_BELOW, read_pids_file
from ansible_collections.chaosfleet.stress.plugins.module_utils._usage import (
    CgroupFiles, first_value, parse_int, read_pressure, read_sample, read_usage, reader_for, stat_key, stat_value,
)
from tests.unit.nodefix import FakeNode, fixture_path

CID = "3f2a1b0c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a"
PATH = "/kubepods/burstable/pod0b6f1a52-7c1e-4d4e-9a55-3e8c2f1d0a77/" + CID

# Expected values worked out by hand from the fixture files in tests/unit/fixtures/cgroup/v1 and v2.
EXPECTED = {
    "v1.txt": {
        "memory": {"limit_bytes": 524288000, "usage_bytes": 226045952, "working_set_bytes": 226045952 - 3915776,
                   "rss_bytes": 221184000, "cache_bytes": 4521984, "inactive_file_bytes": 3915776,
                   "peak_bytes": 310378496, "oom_kill_count": 3, "oom_group": None},
        "cpu": {"quota_cores": 0.5, "period_us": 100000, "usage_seconds": 42.5, "nr_periods": 1200,
                "nr_throttled": 300, "throttled_seconds": 15.0},
        "pressure": None,
    },
    "v2.txt": {
        "memory": {"limit_bytes": 268435456, "usage_bytes": 219152384, "working_set_bytes": 219152384 - 6291456,
                   "rss_bytes": 209715200, "cache_bytes": 8388608, "inactive_file_bytes": 6291456,
                   "peak_bytes": 260046848, "oom_kill_count": 2, "oom_group": True},
        "cpu": {"quota_cores": 1.5, "period_us": 100000, "usage_seconds": 9.0, "nr_periods": 500,
                "nr_throttled": 50, "throttled_seconds": 2.5},
        "pressure": {"memory": {"some_avg10": 12.5, "some_avg60": 4.1, "some_total": 123456,
                                "full_avg10": 8.25, "full_avg60": 2.0, "full_total": 65432},
                     "cpu": {"some_avg10": 3.0, "some_avg60": 1.0, "some_total": 5555,
                             "full_avg10": 0.0, "full_avg60": 0.0, "full_total": 0}},
    },
}


@pytest.mark.parametrize("mountinfo", sorted(EXPECTED))
def test_one_schema_for_both_versions(tmp_path, mountinfo):
    node = FakeNode(tmp_path, mountinfo)
    path = PATH if mountinfo == "v1.txt" else PATH.replace("/kubepods/burstable", "/kubepods.slice")
    node.add_cgroup(path, processes=[(4242, "httpd", 999), (4300, "stress-ng-vm", 1000)])
    target = node_resolver(node.params()).resolve(node.params(container_id=CID))[0]
    usage = read_usage(target, node.proc_root)
    assert usage["memory"] == EXPECTED[mountinfo]["memory"]
    assert usage["cpu"] == EXPECTED[mountinfo]["cpu"]
    assert usage["pressure"] == EXPECTED[mountinfo]["pressure"]
    assert usage["processes"] == [{"pid": 4242, "comm": "httpd", "oom_score_adj": 999},
                                  {"pid": 4300, "comm": "stress-ng-vm", "oom_score_adj": 1000}]


@pytest.mark.parametrize("mountinfo, files", [
    ("v1.txt", {"memory.limit_in_bytes": "9223372036854771712\n", "cpu.cfs_quota_us": "-1\n"}),
    ("v2.txt", {"memory.max": "max\n", "cpu.max": "max 100000\n"}),
])
def test_unlimited_is_null(tmp_path, mountinfo, files):
    node = FakeNode(tmp_path, mountinfo)
    node.add_cgroup("/docker/" + CID)
    for directory, _subdirs, names in os.walk(node.sys_root):
        for name in files:
            if name in names:
                with open(os.path.join(directory, name), "w") as handle:
                    handle.write(files[name])
    target = node_resolver(node.params()).resolve(node.params(container_id=CID))[0]
    usage = read_usage(target, node.proc_root)
    assert usage["memory"]["limit_bytes"] is None
    assert usage["cpu"]["quota_cores"] is None


def test_sample_is_flat_and_matches_usage(tmp_path):
    node = FakeNode(tmp_path, "v2.txt")
    node.add_cgroup("/system.slice/docker-%s.scope" % CID)
    target = node_resolver(node.params()).resolve(node.params(container_id=CID))[0]
    sample = read_sample(target, stress_bytes=1024)
    assert sample["working_set_bytes"] == 219152384 - 6291456
    assert sample["limit_bytes"] == 268435456
    assert sample["psi_memory_some_avg10"] == 12.5
    assert sample["psi_cpu_some_avg10"] == 3.0
    assert sample["oom_kill_count"] == 2
    assert sample["stress_bytes"] == 1024
    assert all(not isinstance(v, (dict, list)) for v in sample.values())


def test_pressure_parser_on_missing_file(tmp_path):
    assert read_pressure(str(tmp_path / "nope")) is None
    assert read_pressure(fixture_path("v2", "memory.pressure"))["full_avg10"] == 8.25


# -- one key at a time: what a sample parses -------------------------------------------------------------------
MEMORY_STAT = (b"cache 4521984\nrss 221184000\nrss_huge 0\ntotal_cache 5000000\ntotal_rss 230000000\n"
               b"total_inactive_file 3915776\ninactive_file 1000\n")

# (case, file content, key, value)
STAT_VALUES = [
    ("the first line", MEMORY_STAT, "cache", 4521984),
    ("a later line", MEMORY_STAT, "total_rss", 230000000),
    ("rss is neither total_rss nor rss_huge", MEMORY_STAT, "rss", 221184000),
    ("the last line, with no newline after it", b"nr_periods 5\nnr_throttled 7", "nr_throttled", 7),
    ("a key that is not there", MEMORY_STAT, "anon", None),
    ("oom_kill is not oom_kill_disable", b"oom_kill_disable 0\nunder_oom 0\n", "oom_kill", None),
    ("oom_kill after oom_kill_disable", b"oom_kill_disable 0\nunder_oom 0\noom_kill 3\n", "oom_kill", 3),
    ("a key named inside another line is not its line", b"oom 0 oom_kill 1\noom_kill 2\n", "oom_kill", 2),
    ("a value that is not a number", b"usage_usec abc\n", "usage_usec", None),
    ("two values on the line", b"usage_usec 5 6\n", "usage_usec", None),
    ("a key with no value", b"usage_usec \nnr_periods 1\n", "usage_usec", None),
    ("a negative value", b"throttled_usec -1\n", "throttled_usec", -1),
    ("an empty file", b"", "cache", None),
    ("a file that could not be read", None, "cache", None),
]


@pytest.mark.parametrize("case, data, key, value", STAT_VALUES, ids=[r[0] for r in STAT_VALUES])
def test_stat_value(case, data, key, value):
    assert stat_value(data, stat_key(key)) == value


# (case, file content, keys in order, default, value)
FIRST_VALUES = [
    ("the hierarchical total where there is one", MEMORY_STAT, ("total_inactive_file", "inactive_file"), 0, 3915776),
    ("the local value on a kernel without totals", b"inactive_file 1000\n", ("total_inactive_file", "inactive_file"),
     0, 1000),
    ("the default when neither is there", b"cache 1\n", ("total_inactive_file", "inactive_file"), 0, 0),
    ("a total of 0 is a value, not a miss", b"total_rss 0\nrss 5\n", ("total_rss", "rss"), 0, 0),
    ("a total that is not a number falls back", b"total_rss x\nrss 5\n", ("total_rss", "rss"), 0, 5),
]


@pytest.mark.parametrize("case, data, keys, default, value", FIRST_VALUES, ids=[r[0] for r in FIRST_VALUES])
def test_first_value(case, data, keys, default, value):
    assert first_value(data, [stat_key(k) for k in keys], default) == value


def split_whole_file(data):
    """Every key as splitting the whole file reads it (what the samples parsed before they read one key at a time)."""
    out = {}
    for line in data.decode().splitlines():
        parts = line.split()
        if len(parts) == 2:
            try:
                out[parts[0]] = int(parts[1])
            except ValueError:
                pass
    return out


@pytest.mark.parametrize("name", ["v1/memory.stat", "v1/cpu.stat", "v1/memory.oom_control", "v2/memory.stat",
                                  "v2/cpu.stat", "v2/memory.events"])
def test_one_key_reads_agree_with_splitting_the_whole_file(name):
    with open(fixture_path(*name.split("/")), "rb") as handle:
        data = handle.read()
    whole = split_whole_file(data)
    assert whole
    assert dict((key, stat_value(data, stat_key(key))) for key in whole) == whole


@pytest.mark.parametrize("data, value", [
    (b"226045952\n", 226045952), ("42\n", 42), (b" -1\n", -1), (b"9223372036854771712\n", 9223372036854771712),
    (b"max\n", None), (b"", None), (None, None), (b"1 2\n", None),
])
def test_parse_int(data, value):
    assert parse_int(data) == value


# -- kept files --------------------------------------------------------------------------------------------------
def test_a_regular_file_is_read_by_its_path_each_time(tmp_path):
    """Fake trees are regular files: never kept, so a replaced or removed one reads as it is now."""
    path = tmp_path / "memory.current"
    path.write_text("1\n")
    files = CgroupFiles(keep=True)
    assert files.read(str(path)) == b"1\n" and files.fds == {}
    (tmp_path / "new").write_text("2\n")
    os.rename(str(tmp_path / "new"), str(path))
    assert files.read(str(path)) == b"2\n"
    path.unlink()
    assert files.read(str(path)) is None
    assert files.read(None) is None


def test_a_kept_file_whose_owner_is_gone_reads_as_missing():
    """A generated file (size 0, like cgroupfs) is kept open; once what it describes is gone, the kept descriptor
    fails, is closed, and the path is tried again (here /proc/<pid>/comm of a process that exits)."""
    child = subprocess.Popen(["sleep", "30"])
    files = CgroupFiles(keep=True)
    path = "/proc/%d/comm" % child.pid
    try:
        # The fork may not have exec'd yet on a busy machine: wait until the process is sleep.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with open(path, "rb") as handle:
                if handle.read() == b"sleep\n":
                    break
            time.sleep(0.01)
        assert files.read(path) == b"sleep\n"
        budget = CgroupFiles._budget
        assert list(files.fds) == [path]
        assert files.read(path) == b"sleep\n"  # through the kept descriptor
    finally:
        child.kill()
        child.wait()
    assert files.read(path) is None
    assert files.fds == {} and CgroupFiles._budget == budget + 1
    files.close()


def test_close_gives_the_descriptors_back():
    files = CgroupFiles(keep=True)
    assert files.read("/proc/self/comm")
    budget = CgroupFiles._budget
    files.close()
    assert files.fds == {} and CgroupFiles._budget == budget + 1
    files.close()  # twice is harmless


def test_not_kept_unless_asked():
    files = CgroupFiles()
    assert files.read("/proc/self/comm") and files.fds == {}


@pytest.mark.parametrize("mountinfo", sorted(EXPECTED))
def test_a_kept_reader_reads_what_a_fresh_one_does(tmp_path, mountinfo):
    node = FakeNode(tmp_path, mountinfo)
    path = PATH if mountinfo == "v1.txt" else PATH.replace("/kubepods/burstable", "/kubepods.slice")
    node.add_cgroup(path, processes=[(4242, "httpd", 999)])
    target = node_resolver(node.params()).resolve(node.params(container_id=CID))[0]
    memory = dict(EXPECTED[mountinfo]["memory"])
    working_set = memory.pop("working_set_bytes")
    kept = reader_for(target, keep_open=True)
    try:
        for _tick in range(2):
            assert kept.memory_stats() == reader_for(target).memory_stats() == memory
            assert kept.cpu_stats() == EXPECTED[mountinfo]["cpu"]
            assert kept.pids() == [4242]
            assert read_sample(target, kept)["working_set_bytes"] == working_set
    finally:
        kept.close()


@pytest.mark.parametrize("count", [0, 1, 3, 400, 2000])
def test_read_pids_file_reads_to_the_end(tmp_path, count):
    """One read when the first is shorter than WHOLE_READ_BELOW, on to the end otherwise."""
    pids = list(range(100000, 100000 + count))
    path = tmp_path / "cgroup.procs"
    path.write_text("".join("%d\n" % pid for pid in pids))
    assert (path.stat().st_size >= WHOLE_READ_BELOW) == (count >= 400)
    assert read_pids_file(str(path)) == pids
    assert read_pids_file(str(tmp_path / "missing")) == []
