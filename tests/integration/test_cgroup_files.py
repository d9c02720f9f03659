"""Kept cgroup files (_usage.CgroupFiles) on the machine's real cgroupfs: a kept descriptor reads fresh values, a
removed cgroup reads as missing, and a cgroup made again at the same path is read as the new one, never through
the old descriptor. cgroup.procs: v1's is opened each time (an open one would serve a stale PID list), a
cgroup2 one is kept and still current. Needs root and the v1 memory hierarchy; everything is made under a unique
prefix and removed."""

import os
import secrets
import subprocess
import time

import pytest

from ansible_collections.chaosfleet.stress.plugins.module_utils._usage import V1Reader, V2Reader

MEMORY = "/sys/fs/cgroup/memory"
UNIFIED = "/sys/fs/cgroup/unified"
MI = 1024 * 1024

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not os.path.isfile(os.path.join(MEMORY, "cgroup.procs")),
                                reason="needs root and the cgroup v1 memory hierarchy")


@pytest.fixture
def cgroup_dir(request):
    """Makes cgroups under /<hierarchy>/cftest-<hex>/; removes them (and ends what joined them) afterwards."""
    prefix = "cftest-" + secrets.token_hex(3)
    made, processes = [], []

    def make(hierarchy, name, limit=None):
        path = os.path.join(hierarchy, prefix, name)
        os.makedirs(path)
        made.append(path)
        if limit:
            with open(os.path.join(path, "memory.limit_in_bytes"), "w") as handle:
                handle.write(str(limit))
        return path

    def join(path):
        def enter():
            with open(os.path.join(path, "cgroup.procs"), "w") as handle:
                handle.write("0")
        processes.append(subprocess.Popen(["sleep", "60"], preexec_fn=enter))
        return processes[-1]

    make.join = join
    yield make
    for process in processes:
        if process.poll() is None:
            process.kill()
        process.wait()
    for path in reversed(made):
        for _attempt in range(20):
            try:
                if os.path.isdir(path):
                    os.rmdir(path)
                break
            except OSError:
                time.sleep(0.1)
    for hierarchy in (MEMORY, UNIFIED):
        if os.path.isdir(os.path.join(hierarchy, prefix)):
            os.rmdir(os.path.join(hierarchy, prefix))


def test_a_kept_file_follows_its_cgroup_and_never_reads_a_removed_one(cgroup_dir):
    path = cgroup_dir(MEMORY, "x", limit=100 * MI)
    reader = V1Reader({"memory": path}, keep_open=True)
    try:
        assert reader.memory_stats()["limit_bytes"] == 100 * MI
        assert os.path.join(path, "memory.limit_in_bytes") in reader.files.fds  # kept
        with open(os.path.join(path, "memory.limit_in_bytes"), "w") as handle:
            handle.write(str(150 * MI))
        assert reader.memory_stats()["limit_bytes"] == 150 * MI  # the kept descriptor reads it afresh
        os.rmdir(path)
        gone = reader.memory_stats()
        assert (gone["limit_bytes"], gone["usage_bytes"]) == (None, None)
        assert reader.files.fds == {}
        cgroup_dir(MEMORY, "x", limit=200 * MI)  # a new cgroup at the same path
        assert reader.memory_stats()["limit_bytes"] == 200 * MI
    finally:
        reader.close()


def test_v1_member_lists_are_current_at_every_read(cgroup_dir):
    path = cgroup_dir(MEMORY, "procs")
    reader = V1Reader({"memory": path}, keep_open=True)
    first = cgroup_dir.join(path)
    assert reader.pids() == [first.pid]
    second = cgroup_dir.join(path)
    assert sorted(reader.pids()) == sorted([first.pid, second.pid])
    first.kill()
    first.wait()
    assert reader.pids() == [second.pid]  # at once, not a second later


@pytest.mark.skipif(not os.path.isfile(os.path.join(UNIFIED, "cgroup.procs")), reason="no cgroup2 hierarchy")
def test_a_kept_cgroup2_member_list_is_current(cgroup_dir):
    path = cgroup_dir(UNIFIED, "procs")
    reader = V2Reader({"unified": path}, keep_open=True)
    try:
        assert reader.pids() == []
        first = cgroup_dir.join(path)
        assert reader.pids() == [first.pid]
        assert os.path.join(path, "cgroup.procs") in reader.files.fds  # kept
        second = cgroup_dir.join(path)
        assert sorted(reader.pids()) == sorted([first.pid, second.pid])
        first.kill()
        first.wait()
        assert reader.pids() == [second.pid]
    finally:
        reader.close()
