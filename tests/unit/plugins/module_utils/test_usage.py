import os

import pytest

from ansible_collections.chaosfleet.stress.plugins.module_utils._target_options import node_resolver
from ansible_collections.chaosfleet.stress.plugins.module_utils._usage import read_pressure, read_sample, read_usage
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
