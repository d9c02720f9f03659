import pytest

from ansible_collections.chaosfleet.stress.plugins.module_utils._mounts import CgroupError, CgroupMounts, parse_mountinfo
from tests.unit.nodefix import FakeNode, fixture_path


def _read(name):
    with open(fixture_path("mountinfo", name)) as handle:
        return handle.read()


@pytest.mark.parametrize("name, v1_expected, v2_count", [
    ("v1.txt", {"name=systemd": "/sys/fs/cgroup/systemd", "cpu": "/sys/fs/cgroup/cpu,cpuacct",
                "cpuacct": "/sys/fs/cgroup/cpu,cpuacct", "memory": "/sys/fs/cgroup/memory",
                "pids": "/sys/fs/cgroup/pids", "cpuset": "/sys/fs/cgroup/cpuset"}, 0),
    ("hybrid.txt", {"cpu": "/sys/fs/cgroup/cpu", "cpuacct": "/sys/fs/cgroup/cpuacct",
                    "cpuset": "/sys/fs/cgroup/cpuset", "memory": "/sys/fs/cgroup/memory",
                    "devices": "/sys/fs/cgroup/devices", "pids": "/sys/fs/cgroup/pids",
                    "name=systemd": "/sys/fs/cgroup/systemd"}, 1),
    ("v2.txt", {}, 1),
    ("none.txt", {}, 0),
])
def test_parse_mountinfo_finds_each_controller(name, v1_expected, v2_count):
    v1, v2 = parse_mountinfo(_read(name))
    assert dict((k, m.mountpoint) for k, m in v1.items()) == v1_expected
    assert len(v2) == v2_count


def test_parse_mountinfo_unescapes_and_prefers_the_whole_hierarchy():
    v1, _unified = parse_mountinfo(_read("v1-escaped.txt"))
    assert v1["memory"].mountpoint == "/sys/fs/cgroup/mem ory"
    # The bind of a sub-tree (root /docker/abc) loses to the mount of the hierarchy root.
    assert v1["cpu"].mountpoint == "/host/cpu"
    assert v1["cpu"].root == "/"


@pytest.mark.parametrize("name, mode, version", [
    ("v1.txt", "v1", 1),
    ("hybrid.txt", "hybrid", 1),
    ("v2.txt", "v2", 2),
])
def test_mode_and_version(tmp_path, name, mode, version):
    node = FakeNode(tmp_path, name)
    mounts = CgroupMounts(node.proc_root, node.sys_root)
    assert (mounts.mode, mounts.version) == (mode, version)
    if version == 2:
        assert "memory" in mounts.unified_controllers
        assert list(mounts.hierarchies()) == ["unified"]
    else:
        assert mounts.primary.mountpoint == "/sys/fs/cgroup/memory"


def test_no_cgroup_mount_is_a_clear_error(tmp_path):
    node = FakeNode(tmp_path, "none.txt")
    with pytest.raises(CgroupError, match="no cgroup filesystem is mounted"):
        CgroupMounts(node.proc_root, node.sys_root)


def test_missing_proc_is_a_clear_error(tmp_path):
    with pytest.raises(CgroupError, match="cannot read"):
        CgroupMounts(str(tmp_path / "nowhere"), "")


def test_dirs_names_cpu_and_cpuacct_on_a_shared_mount(tmp_path):
    node = FakeNode(tmp_path, "v1.txt")
    node.add_cgroup("/kubepods/x")
    dirs = CgroupMounts(node.proc_root, node.sys_root).dirs("/kubepods/x")
    assert dirs["cpu"] == dirs["cpuacct"] == node.sys_root + "/sys/fs/cgroup/cpu,cpuacct/kubepods/x"
    assert dirs["memory"] == node.sys_root + "/sys/fs/cgroup/memory/kubepods/x"
