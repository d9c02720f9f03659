"""Node-wide targets (issue 11, point 2): the one resolver flags them, and refuses them when asked to."""
import pytest

from ansible_collections.chaosfleet.stress.plugins.module_utils._target_options import node_resolver
from ansible_collections.chaosfleet.stress.plugins.module_utils._mounts import CgroupError
from tests.unit.nodefix import FakeNode

CID = "3f2a1b0c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a"
UID = "0b6f1a52-7c1e-4d4e-9a55-3e8c2f1d0a77"
V1_LEAF = "/kubepods/burstable/pod%s/%s" % (UID, CID)
V2_LEAF = "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod%s.slice/cri-containerd-%s.scope" % (
    UID.replace("-", "_"), CID)


def cgroup_v1_mount(node):
    return node.sys_root + "/sys/fs/cgroup/memory"


# (case, mountinfo, leaf to create, selector, cgroup it resolves to, words in the error)
NODE_WIDE = [
    ("cgroup_path /", "v1.txt", V1_LEAF, {"cgroup_path": "/"}, "/", "the root cgroup"),
    ("cgroup_path //", "v1.txt", V1_LEAF, {"cgroup_path": "//"}, "/", "the root cgroup"),
    ("the memory mountpoint", "v1.txt", V1_LEAF, {"cgroup_path": "/sys/fs/cgroup/memory"}, "/", "the root cgroup"),
    ("the memory mountpoint/", "v1.txt", V1_LEAF, {"cgroup_path": "/sys/fs/cgroup/memory/"}, "/", "the root cgroup"),
    ("/kubepods has children", "v1.txt", V1_LEAF, {"cgroup_path": "/kubepods"}, "/kubepods", "child cgroup"),
    ("a pod cgroup", "v1.txt", V1_LEAF, {"cgroup_path": "/kubepods/burstable/pod" + UID},
     "/kubepods/burstable/pod" + UID, "1 child cgroup (%s)" % CID),
    ("v2 root", "v2.txt", V2_LEAF, {"cgroup_path": "/sys/fs/cgroup"}, "/", "the root cgroup"),
    ("v2 slice", "v2.txt", V2_LEAF, {"cgroup_path": "/kubepods.slice"}, "/kubepods.slice", "child cgroup"),
    ("v2 slice as a unit", "v2.txt", V2_LEAF, {"systemd_unit": "kubepods.slice"}, "/kubepods.slice", "child cgroup"),
    ("pid 1 in the root", "v1.txt", V1_LEAF, {"pid": 1}, "/", "the root cgroup"),
    ("pid 1 in a leaf", "v1.txt", V1_LEAF, {"pid": 1, "_pid1_in": "/init.scope"}, "/init.scope", "PID 1"),
]


@pytest.mark.parametrize("case, mountinfo, leaf, selector, resolved, words", NODE_WIDE, ids=[r[0] for r in NODE_WIDE])
def test_node_wide_targets_are_flagged_and_refused(tmp_path, case, mountinfo, leaf, selector, resolved, words):
    node = FakeNode(tmp_path, mountinfo)
    node.add_cgroup(leaf, processes=[(4242, "httpd", 999)])
    selector = dict(selector)
    pid1_cgroup = selector.pop("_pid1_in", "/")
    if pid1_cgroup != "/":
        node.add_cgroup(pid1_cgroup)
    node.add_process(1, "systemd", 0, pid1_cgroup)
    # cgroup_info's path: reported, flagged, not refused.
    targets = node_resolver(node.params()).resolve(node.params(**selector))
    assert [(t["path"], t["node_wide"]) for t in targets] == [(resolved, True)]
    # stressor's path: refused, naming the cgroup it resolved to, on one line.
    with pytest.raises(CgroupError) as error:
        node_resolver(node.params()).resolve(node.params(**selector), refuse_node_wide=True)
    message = str(error.value)
    assert "resolves to cgroup %s," % resolved in message and words in message and "allow_node_wide" in message
    assert "\n" not in message
    # The explicit opt-in lets it through.
    opted = node_resolver(node.params()).resolve(node.params(allow_node_wide=True, **selector), refuse_node_wide=True)
    assert [t["path"] for t in opted] == [resolved]


@pytest.mark.parametrize("mountinfo, leaf", [("v1.txt", V1_LEAF), ("v2.txt", V2_LEAF), ("hybrid.txt", V1_LEAF)])
def test_a_leaf_container_is_not_node_wide(tmp_path, mountinfo, leaf):
    node = FakeNode(tmp_path, mountinfo)
    node.add_cgroup(leaf, processes=[(4242, "httpd", 999)])
    for selector in ({"container_id": CID}, {"cgroup_path": leaf}, {"pid": 4242}, {"pod_uid": UID}):
        targets = node_resolver(node.params()).resolve(node.params(**selector), refuse_node_wide=True)
        assert [(t["path"], t["node_wide"]) for t in targets] == [(leaf, False)]


def test_a_child_in_another_v1_hierarchy_counts(tmp_path):
    """A cgroup that is a leaf in memory but has children in cpu is still shared."""
    node = FakeNode(tmp_path, "v1.txt")
    node.add_cgroup(V1_LEAF, processes=[(4242, "httpd", 999)])
    import os
    cpu_dirs = [m for m in node.mountpoints if "cpu" in m and "cpuset" not in m]
    os.makedirs(node.sys_root + cpu_dirs[0] + V1_LEAF + "/extra")
    with pytest.raises(CgroupError, match="1 child cgroup \\(extra\\)"):
        node_resolver(node.params()).resolve(node.params(container_id=CID), refuse_node_wide=True)
