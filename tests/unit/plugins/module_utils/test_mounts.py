import errno
import os

import pytest

from ansible_collections.chaosfleet.stress.plugins.module_utils._mounts import (
    CLONE_NEWCGROUP, CgroupError, CgroupMounts, CgroupNamespace, cgroup_mounts, parse_mountinfo,
)
from ansible_collections.chaosfleet.stress.plugins.module_utils import _mounts
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


# -- cgroup namespaces and the agent's /host bind mount ------------------------------------------


class AgentNode(FakeNode):
    """A node as the agent container sees it: its own cgroup mounts at /sys/fs/cgroup, the host's bind-mounted at
    /host/sys/fs/cgroup (the fixtures' ``/host`` becomes this tree's sys_root). Cgroups go into the host's."""

    def __init__(self, tmp_path, mountinfo):  # pylint: disable=super-init-not-called
        self.root = str(tmp_path)
        self.proc_root = os.path.join(self.root, "proc")
        self.sys_root = os.path.join(self.root, "host")
        os.makedirs(os.path.join(self.proc_root, "self"))
        text = self.write_mountinfo(mountinfo)
        host = [m for m in cgroup_mounts(text) if m.mountpoint.startswith(self.sys_root + "/")]
        self.version = 2 if all(m.controllers is None for m in host) else 1
        self.mountpoints = sorted(set(m.mountpoint[len(self.sys_root):] for m in host))
        for mountpoint in self.mountpoints:
            os.makedirs(self.sys_root + mountpoint, exist_ok=True)
        if self.version == 2:
            with open(self.sys_root + "/sys/fs/cgroup/cgroup.controllers", "w") as handle:
                handle.write("cpuset cpu io memory hugetlb pids rdma misc\n")

    def write_mountinfo(self, name):
        """This process's mountinfo: what the agent reads, as its cgroup namespace shows it."""
        with open(fixture_path("mountinfo", name)) as handle:
            text = handle.read().replace(" /host/", " %s/" % self.sys_root)
        with open(os.path.join(self.proc_root, "self", "mountinfo"), "w") as handle:
            handle.write(text)
        return text

    def ns_links(self, same):
        ns_links(self.proc_root, same)

    def ns_link(self, pid):
        return ns_link(self.proc_root, pid)


def ns_link(proc_root, pid):
    return os.path.join(proc_root, pid, "ns", "cgroup")


def ns_links(proc_root, same):
    """proc/self/ns/cgroup and proc/1/ns/cgroup: one namespace (a link to PID 1's) or two."""
    for pid in ("self", "1"):
        os.makedirs(os.path.join(proc_root, pid, "ns"), exist_ok=True)
    with open(ns_link(proc_root, "1"), "w") as handle:
        handle.write("host cgroup namespace\n")
    if same:
        os.symlink(ns_link(proc_root, "1"), ns_link(proc_root, "self"))
    else:
        with open(ns_link(proc_root, "self"), "w") as handle:
            handle.write("private cgroup namespace\n")


class FakeSetns(object):
    """setns(2) for a fixture tree: checks it is asked for PID 1's cgroup namespace, then fails or 'enters' it
    (this process's link then names PID 1's namespace, and mountinfo shows the host's view)."""

    def __init__(self, node, fail=None, enters=True, view=None):
        self.node, self.fail, self.enters, self.view = node, fail, enters, view
        self.calls = 0

    def __call__(self, fd, nstype):
        self.calls += 1
        assert nstype == CLONE_NEWCGROUP
        host, own = ns_link(self.node.proc_root, "1"), ns_link(self.node.proc_root, "self")
        assert os.fstat(fd).st_ino == os.stat(host).st_ino
        if self.fail:
            raise OSError(self.fail, os.strerror(self.fail))
        if self.enters:
            os.unlink(own)
            os.symlink(host, own)
        if self.view:
            self.node.write_mountinfo(self.view)


# (case, links, setns behaviour, namespace, setns calls, words of the reason)
NAMESPACES = [
    ("no namespace links (old kernel, fixture tree)", None, {}, "host", 0, None),
    ("the same namespace as PID 1", "same", {}, "host", 0, None),
    ("private, setns enters PID 1's", "private", {}, "entered-host", 1, None),
    ("private, setns refused (not privileged)", "private", {"fail": errno.EPERM}, "private", 1,
     "Operation not permitted"),
    ("private, setns returns but nothing changed", "private", {"enters": False}, "private", 1, "still differs"),
    ("PID 1's link unreadable", "loop", {}, "unknown", 0, "cannot read"),
]


@pytest.mark.parametrize("case, links, behaviour, namespace, calls, why", NAMESPACES, ids=[r[0] for r in NAMESPACES])
def test_cgroup_namespace_is_detected_and_entered_once(tmp_path, case, links, behaviour, namespace, calls, why):
    node = AgentNode(tmp_path, "agent-v1-host.txt")
    if links in ("same", "private"):
        node.ns_links(links == "same")
    elif links == "loop":
        node.ns_links(False)
        os.unlink(node.ns_link("1"))
        os.symlink(node.ns_link("1"), node.ns_link("1"))
    setns = FakeSetns(node, **behaviour)
    joiner = CgroupNamespace(setns)
    # A second CgroupMounts in the same process (the same proc given another way too) does not call setns again.
    for proc_root in (node.proc_root, node.proc_root, node.proc_root + "/"):
        mounts = CgroupMounts(proc_root, node.sys_root, namespace=joiner)
        assert mounts.describe()["cgroup_namespace"] == namespace
    assert setns.calls == calls
    assert (why or "") in (mounts.namespace_why or "")


def test_setns_comes_before_mountinfo_is_read(tmp_path):
    # Before setns the host's bind shows roots /../..; after it, roots are the hierarchy's own.
    node = AgentNode(tmp_path, "agent-v1-private.txt")
    node.ns_links(False)
    setns = FakeSetns(node, view="agent-v1-host.txt")
    mounts = CgroupMounts(node.proc_root, node.sys_root, namespace=CgroupNamespace(setns))
    assert (mounts.primary.mountpoint, mounts.primary.root) == (node.sys_root + "/sys/fs/cgroup/memory", "/")
    assert mounts.describe()["cgroup_namespace"] == "entered-host"


# (case, mountinfo, use sys_root, setns refused, primary mountpoint ({host} = sys_root), or the error's words)
AGENT_VIEWS = [
    ("v1 host view, sys_root", "agent-v1-host.txt", True, False, "{host}/sys/fs/cgroup/memory"),
    ("v1 host view, no sys_root", "agent-v1-host.txt", False, False, "{host}/sys/fs/cgroup/memory"),
    ("v1 private view, sys_root", "agent-v1-private.txt", True, True,
     "cgroup mount {host}/sys/fs/cgroup/cpu (and 4 more) shows root /../.."),
    ("v1 private view, no sys_root: its own subtree only", "agent-v1-private.txt", False, True,
     "/sys/fs/cgroup/memory"),
    ("v2 host view, sys_root", "agent-v2-host.txt", True, False, "{host}/sys/fs/cgroup"),
    ("v2 host view, no sys_root", "agent-v2-host.txt", False, False, "{host}/sys/fs/cgroup"),
    ("v2 private view, sys_root", "agent-v2-private.txt", True, True, "cgroup mount {host}/sys/fs/cgroup shows root /../.."),
    ("v2 private view, no sys_root: its own subtree only", "agent-v2-private.txt", False, True, "/sys/fs/cgroup"),
]


@pytest.mark.parametrize("case, mountinfo, use_sys_root, refused, expected", AGENT_VIEWS,
                         ids=[r[0] for r in AGENT_VIEWS])
def test_agent_mounts_with_and_without_sys_root(tmp_path, case, mountinfo, use_sys_root, refused, expected):
    node = AgentNode(tmp_path, mountinfo)
    node.ns_links(not refused)
    setns = FakeSetns(node, fail=errno.EPERM)
    sys_root = node.sys_root if use_sys_root else ""
    expected = expected.replace("{host}", node.sys_root)
    if expected.startswith("cgroup mount"):
        with pytest.raises(CgroupError) as err:
            CgroupMounts(node.proc_root, sys_root, namespace=CgroupNamespace(setns))
        message = str(err.value)
        assert expected in message
        assert "private cgroup namespace" in message and "Operation not permitted" in message
        assert "hostPID" in message and "host's cgroup namespace" in message
        return
    mounts = CgroupMounts(node.proc_root, sys_root, namespace=CgroupNamespace(setns))
    assert mounts.primary.mountpoint == expected
    assert mounts.primary.root == "/"
    assert mounts.describe()["cgroup_namespace"] == ("private" if refused else "host")
    if expected.startswith(node.sys_root):
        node.add_cgroup("/kubepods/x")
        dirs = mounts.dirs("/kubepods/x")
        # The host's bind is used as it is: never sys_root joined to a mountpoint already under it.
        assert dirs and all(d.startswith(node.sys_root + "/sys/fs/cgroup") for d in dirs.values())
        assert mounts.primary_dir() == expected


def test_fixture_trees_still_get_sys_root_prefixed(tmp_path):
    node = FakeNode(tmp_path, "hybrid.txt")
    mounts = CgroupMounts(node.proc_root, node.sys_root + "/")
    assert mounts.primary_dir() == node.sys_root + "/sys/fs/cgroup/memory"
    assert mounts.describe()["cgroup_namespace"] == "host"


# (case, mountinfo lines, v1 controllers kept, cgroup2 mounts kept)
DOTDOT_ROOTS = [
    ("a v1 root with ..", ["36 31 0:32 /../.. /host/memory rw - cgroup cgroup rw,memory"], [], 0),
    ("a v1 root with .. beside a clean one",
     ["36 31 0:32 /../.. /host/memory rw - cgroup cgroup rw,memory",
      "37 31 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory"], ["memory"], 0),
    ("a cgroup2 root with ..", ["40 31 0:38 /.. /host/cg2 rw - cgroup2 cgroup2 rw"], [], 0),
    ("a root that only looks like it", ["36 31 0:32 /a..b /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory"],
     ["memory"], 0),
]


@pytest.mark.parametrize("case, lines, v1_kept, v2_kept", DOTDOT_ROOTS, ids=[r[0] for r in DOTDOT_ROOTS])
def test_mount_roots_with_dotdot_are_never_used(case, lines, v1_kept, v2_kept):
    v1, v2 = parse_mountinfo("\n".join(lines) + "\n")
    assert sorted(v1) == v1_kept
    assert len(v2) == v2_kept
    assert all(".." not in m.root.split("/") for m in list(v1.values()) + v2)


@pytest.mark.parametrize("path", ["/kubepods/../etc", "/..", "../x", "/a/b/..", "/../../kubepods/pod/x"])
@pytest.mark.parametrize("mountinfo", ["v1.txt", "v2.txt"])
def test_dir_for_and_dirs_refuse_dotdot(tmp_path, mountinfo, path):
    node = FakeNode(tmp_path, mountinfo)
    mounts = CgroupMounts(node.proc_root, node.sys_root)
    for call in (lambda: mounts.dir_for(mounts.primary, path), lambda: mounts.dirs(path),
                 lambda: mounts.dirs(path, only_existing=False)):
        with pytest.raises(CgroupError, match="'..' would leave the cgroup root"):
            call()


@pytest.mark.parametrize("pid1_error, pid2_comm, expected", [
    (None, "kthreadd", "1"),                    # PID 1's link is readable: always PID 1
    (errno.EACCES, "kthreadd", "2"),            # an init that hides its links from root: kthreadd stands in
    (errno.EACCES, "bash", "1"),                # no kthreadd (not the initial PID namespace): no stand-in
    (errno.ENOENT, "kthreadd", "1"),            # no namespaces at all: PID 1, and the caller sees none
])
def test_host_namespace_link(tmp_path, monkeypatch, pid1_error, pid2_comm, expected):
    (tmp_path / "2").mkdir()
    (tmp_path / "2" / "comm").write_text(pid2_comm + "\n")
    real_stat = os.stat

    def fake_stat(path, *args, **kwargs):
        if path == str(tmp_path / "1" / "ns" / "cgroup") and pid1_error:
            raise OSError(pid1_error, os.strerror(pid1_error))
        return real_stat(path, *args, **kwargs)

    monkeypatch.setattr(os, "stat", fake_stat)
    (tmp_path / "1" / "ns").mkdir(parents=True)
    (tmp_path / "1" / "ns" / "cgroup").write_text("")
    assert _mounts.host_namespace_link(str(tmp_path)) == str(tmp_path / expected / "ns" / "cgroup")
