import os

import pytest

from ansible_collections.chaosfleet.stress.plugins.module_utils._target_options import node_resolver
from ansible_collections.chaosfleet.stress.plugins.module_utils._mounts import CgroupError
from ansible_collections.chaosfleet.stress.plugins.module_utils._resolve import classify
from tests.unit.nodefix import FakeNode

CID = "3f2a1b0c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a"
CID2 = "3f2a1b0c9d8e11111111111111111111111111111111111111111111111111aa"
SANDBOX = "9e9e9e9e9e9e9e9e9e9e9e9e9e9e9e9e9e9e9e9e9e9e9e9e9e9e9e9e9e9e9e9e"
UID = "0b6f1a52-7c1e-4d4e-9a55-3e8c2f1d0a77"
UID_ = UID.replace("-", "_")

# (layout, mountinfo, container cgroup path, runtime, qos class, pod uid)
LAYOUTS = [
    ("kubelet cgroupfs burstable", "v1.txt", "/kubepods/burstable/pod%s/%s" % (UID, CID), None, "Burstable", UID),
    ("kubelet cgroupfs besteffort", "hybrid.txt", "/kubepods/besteffort/pod%s/%s" % (UID, CID), None, "BestEffort", UID),
    ("kubelet cgroupfs guaranteed", "v1.txt", "/kubepods/pod%s/%s" % (UID, CID), None, "Guaranteed", UID),
    ("kubelet systemd containerd", "v2.txt",
     "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod%s.slice/cri-containerd-%s.scope" % (UID_, CID),
     "containerd", "Burstable", UID),
    ("kubelet systemd cri-o besteffort", "v2.txt",
     "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod%s.slice/crio-%s.scope" % (UID_, CID),
     "cri-o", "BestEffort", UID),
    ("kubelet systemd guaranteed", "v2.txt",
     "/kubepods.slice/kubepods-pod%s.slice/cri-containerd-%s.scope" % (UID_, CID), "containerd", "Guaranteed", UID),
    ("kubelet systemd docker v1", "v1.txt",
     "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod%s.slice/docker-%s.scope" % (UID_, CID),
     "docker", "Burstable", UID),
    ("docker cgroupfs", "v1.txt", "/docker/%s" % CID, "docker", None, None),
    ("docker systemd", "v2.txt", "/system.slice/docker-%s.scope" % CID, "docker", None, None),
    ("podman systemd", "v2.txt", "/machine.slice/libpod-%s.scope" % CID, "podman", None, None),
    ("podman cgroupfs", "v1.txt", "/libpod_parent/libpod-%s" % CID, "podman", None, None),
    ("kubelet under a cgroup root", "hybrid.txt", "/cflab-1/kubepods/burstable/pod%s/%s" % (UID, CID), None, "Burstable", UID),
]


@pytest.mark.parametrize("layout, mountinfo, path, runtime, qos, uid", LAYOUTS, ids=[row[0] for row in LAYOUTS])
def test_container_id_resolves_on_every_layout(tmp_path, layout, mountinfo, path, runtime, qos, uid):
    node = FakeNode(tmp_path, mountinfo)
    node.add_cgroup(path, processes=[(4242, "httpd", 999)])
    for selector in (CID, CID[:12], "containerd://" + CID, "cri-o://" + CID[:20], "docker://" + CID.upper()):
        targets = node_resolver(node.params()).resolve(node.params(container_id=selector))
        assert len(targets) == 1
        target = targets[0]
        assert (target["path"], target["kind"], target["runtime"], target["qos_class"], target["pod_uid"]) == \
            (path, "container", runtime, qos, uid)
        assert target["container_id"] == CID
        assert target["cgroup_version"] == node.version


@pytest.mark.parametrize("layout, mountinfo, path, runtime, qos, uid",
                         [row for row in LAYOUTS if row[5]], ids=[row[0] for row in LAYOUTS if row[5]])
def test_pod_uid_finds_containers_and_leaves_the_sandbox_out(tmp_path, layout, mountinfo, path, runtime, qos, uid):
    node = FakeNode(tmp_path, mountinfo)
    node.add_cgroup(path, processes=[(4242, "httpd", 999)])
    sandbox_path = path.replace(CID, SANDBOX)
    node.add_cgroup(sandbox_path, processes=[(4100, "pause", -998)])
    for selector in (UID, UID_, UID.upper()):
        targets = node_resolver(node.params()).resolve(node.params(pod_uid=selector))
        assert [t["container_id"] for t in targets] == [CID]
    with_sandbox = node_resolver(node.params()).resolve(node.params(pod_uid=UID, include_sandbox=True))
    assert sorted((t["container_id"], t["kind"]) for t in with_sandbox) == sorted([(CID, "container"), (SANDBOX, "sandbox")])


@pytest.mark.parametrize("mountinfo, proc_file", [("v1.txt", "cgroup-v1.txt"), ("v2.txt", "cgroup-v2.txt")])
def test_pid_resolves_through_proc_cgroup(tmp_path, mountinfo, proc_file):
    import shutil
    from tests.unit.nodefix import fixture_path

    node = FakeNode(tmp_path, mountinfo)
    expected = [line.split(":", 2)[2] for line in open(fixture_path("proc", proc_file)).read().splitlines()
                if ":memory:" in line or line.startswith("0::/kube")][0]
    node.add_cgroup(expected)
    node.add_process(777, "java", 0, expected)
    shutil.copy(fixture_path("proc", proc_file), "%s/777/cgroup" % node.proc_root)
    target = node_resolver(node.params()).resolve(node.params(pid=777))[0]
    assert target["path"] == expected
    assert target["container_id"] == CID


@pytest.mark.parametrize("given", [
    "/kubepods/burstable/pod%s/%s" % (UID, CID),
    "kubepods/burstable/pod%s/%s" % (UID, CID),
    "/sys/fs/cgroup/memory/kubepods/burstable/pod%s/%s" % (UID, CID),
    "/sys/fs/cgroup/memory/kubepods/burstable/pod%s/%s/" % (UID, CID),
])
def test_cgroup_path_forms(tmp_path, given):
    node = FakeNode(tmp_path, "hybrid.txt")
    node.add_cgroup("/kubepods/burstable/pod%s/%s" % (UID, CID))
    target = node_resolver(node.params()).resolve(node.params(cgroup_path=given))[0]
    assert target["path"] == "/kubepods/burstable/pod%s/%s" % (UID, CID)
    assert target["kind"] == "container"


@pytest.mark.parametrize("unit", ["nginx", "nginx.service"])
def test_systemd_unit(tmp_path, unit):
    node = FakeNode(tmp_path, "v2.txt")
    node.add_cgroup("/system.slice/nginx.service", processes=[(900, "nginx", 0)])
    target = node_resolver(node.params()).resolve(node.params(systemd_unit=unit))[0]
    assert (target["path"], target["kind"], target["systemd_unit"]) == ("/system.slice/nginx.service", "service", "nginx.service")


# (selector, value, message fragment) for every bad input the issue names.
BAD_INPUT = [
    ("container_id", "ffffffffffffffff", "no container with ID ffffffffffffffff"),
    ("container_id", CID[:12], "ambiguous; it matches: %s, %s" % (CID2, CID)),
    ("container_id", "xyz", "malformed"),
    ("container_id", "3f2a1b0c9d8", "malformed"),
    ("pod_uid", "not-a-uid", "malformed"),
    ("pod_uid", "11111111-2222-3333-4444-555555555555", "no pod with UID"),
    ("pid", 999999, "no process with PID 999999"),
    ("pid", -1, "positive"),
    ("cgroup_path", "/kubepods/../../etc", "leaves the cgroup root"),
    ("cgroup_path", "../../etc/passwd", "leaves the cgroup root"),
    ("cgroup_path", "/sys/fs/cgroup/not-a-hierarchy/x", "not inside a cgroup hierarchy"),
    ("cgroup_path", "/etc/passwd", "does not exist"),
    ("systemd_unit", "a/b", "malformed"),
    ("systemd_unit", "missing.service", "no cgroup for systemd unit"),
]


@pytest.mark.parametrize("selector, value, message", BAD_INPUT, ids=["%s=%s" % (r[0], r[1]) for r in BAD_INPUT])
def test_bad_input_is_a_clear_error(tmp_path, selector, value, message):
    node = FakeNode(tmp_path, "v1.txt")
    node.add_cgroup("/kubepods/burstable/pod%s/%s" % (UID, CID))
    node.add_cgroup("/kubepods/burstable/pod%s/%s" % (UID, CID2))
    with pytest.raises(CgroupError) as err:
        node_resolver(node.params()).resolve(node.params(**{selector: value}))
    assert message in str(err.value)


@pytest.mark.parametrize("selectors", [{}, {"container_id": CID, "pid": 1}])
def test_exactly_one_selector(tmp_path, selectors):
    node = FakeNode(tmp_path, "v1.txt")
    with pytest.raises(CgroupError, match="exactly one target selector"):
        node_resolver(node.params()).resolve(node.params(**selectors))


@pytest.mark.parametrize("path, kind", [
    ("/kubepods/burstable/pod%s" % UID, "pod"),
    ("/kubepods.slice/kubepods-pod%s.slice" % UID_, "pod"),
    ("/kubepods/burstable", "cgroup"),
    ("/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod%s.slice/crio-conmon-%s.scope" % (UID_, CID), "cgroup"),
    ("/system.slice/sshd.service", "service"),
    ("/user.slice", "cgroup"),
])
def test_classify_kinds(path, kind):
    assert classify(path)["kind"] == kind


# -- from an agent container: the host's cgroupfs under sys_root, and cgroup namespaces --------------------

def _agent(tmp_path, mountinfo, same_namespace):
    from tests.unit.plugins.module_utils.test_mounts import AgentNode

    node = AgentNode(tmp_path, mountinfo)
    node.ns_links(same_namespace)
    return node


def _namespace(node, **setns):
    """This test's process: PID 1's cgroup namespace is entered (or not) once, through a fake setns."""
    from ansible_collections.chaosfleet.stress.plugins.module_utils._mounts import CgroupNamespace
    from tests.unit.plugins.module_utils.test_mounts import FakeSetns

    return CgroupNamespace(FakeSetns(node, **setns))


def _resolver(node, namespace, sys_root=True):
    from ansible_collections.chaosfleet.stress.plugins.module_utils._mounts import CgroupMounts
    from ansible_collections.chaosfleet.stress.plugins.module_utils._resolve import Resolver

    return Resolver(CgroupMounts(node.proc_root, node.sys_root if sys_root else "", namespace=namespace))


AGENT_PATHS = {
    1: "/kubepods/burstable/pod%s/%s" % (UID, CID),
    2: "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod%s.slice/cri-containerd-%s.scope" % (UID_, CID),
}


# (case, mountinfo, version, in PID 1's namespace, what setns does, with sys_root, the view after setns)
AGENT_RESOLVES = [
    ("v1 host namespace, sys_root", "agent-v1-host.txt", 1, True, {}, True),
    ("v1 host namespace, no sys_root", "agent-v1-host.txt", 1, True, {}, False),
    ("v1 entered the host's, sys_root", "agent-v1-private.txt", 1, False, {"view": "agent-v1-host.txt"}, True),
    ("v2 host namespace, sys_root", "agent-v2-host.txt", 2, True, {}, True),
    ("v2 entered the host's, sys_root", "agent-v2-private.txt", 2, False, {"view": "agent-v2-host.txt"}, True),
    ("v2 entered the host's, no sys_root", "agent-v2-private.txt", 2, False, {"view": "agent-v2-host.txt"}, False),
]


@pytest.mark.parametrize("case, mountinfo, version, same, setns, sys_root", AGENT_RESOLVES,
                         ids=[r[0] for r in AGENT_RESOLVES])
def test_agent_resolves_into_the_hosts_cgroupfs(tmp_path, case, mountinfo, version, same, setns, sys_root):
    node = _agent(tmp_path, mountinfo, same)
    path = AGENT_PATHS[version]
    node.add_cgroup(path, processes=[(4242, "httpd", 999)])
    namespace = _namespace(node, **setns)
    # The path below the host's cgroupfs in the agent, and (given sys_root) as the node itself names it.
    mountpoint = "/sys/fs/cgroup" + ("/memory" if version == 1 else "")
    forms = [path, node.sys_root + mountpoint + path] + ([mountpoint + path] if sys_root else [])
    for params in [dict(container_id=CID), dict(pid=4242)] + [dict(cgroup_path=form) for form in forms]:
        resolver = _resolver(node, namespace, sys_root)
        target = resolver.resolve(dict(params, include_sandbox=False))[0]
        assert (target["path"], target["container_id"], target["cgroup_version"]) == (path, CID, version)
        base = node.sys_root + "/sys/fs/cgroup"
        assert target["dirs"] and all(d.startswith(base + "/") and d.endswith(path) for d in target["dirs"].values())
        assert resolver.mounts.describe()["cgroup_namespace"] == ("host" if same else "entered-host")


@pytest.mark.parametrize("mountinfo, proc_file", [("v1.txt", "cgroup-v1-private.txt"), ("v2.txt", "cgroup-v2-private.txt")])
def test_pid_outside_a_private_namespace_is_a_clear_error(tmp_path, mountinfo, proc_file):
    import errno
    import shutil
    from tests.unit.nodefix import fixture_path
    from tests.unit.plugins.module_utils.test_mounts import ns_links

    # A container in its own cgroup namespace that may not enter PID 1's (setns: EPERM): its own cgroupfs
    # mounts show root "/", and other processes' cgroups read /../../...
    node = FakeNode(tmp_path, mountinfo)
    ns_links(node.proc_root, False)
    node.add_process(4242, "httpd", 999, "/unused")
    shutil.copy(fixture_path("proc", proc_file), "%s/4242/cgroup" % node.proc_root)
    resolver = _resolver(node, _namespace(node, fail=errno.EPERM))
    assert resolver.mounts.describe()["cgroup_namespace"] == "private"
    with pytest.raises(CgroupError) as err:
        resolver.resolve({"pid": 4242})
    message = str(err.value)
    assert "PID 4242's cgroup reads /../../kubepods" in message
    assert "private cgroup namespace" in message and "Operation not permitted" in message
    assert "privileged and with hostPID" in message and "host's cgroup namespace" in message
    # Not found in its own subtree: the error says why it may be so.
    with pytest.raises(CgroupError, match="no container with ID .* private cgroup namespace .* hostPID"):
        resolver.resolve({"container_id": CID})


@pytest.mark.parametrize("line", ["11:memory:/kubepods/../../etc\n", "11:memory:/..\n"])
def test_pid_cgroup_with_dotdot_is_refused_in_any_namespace(tmp_path, line):
    node = FakeNode(tmp_path, "v1.txt")
    node.add_process(4242, "httpd", 0, "/x")
    with open("%s/4242/cgroup" % node.proc_root, "w") as handle:
        handle.write(line)
    with pytest.raises(CgroupError, match=r"PID 4242's cgroup reads .*'\.\.'"):
        node_resolver(node.params()).resolve(node.params(pid=4242))


# -- node-wide targets (issue 11, point 2): the one resolver flags them, and refuses them when asked to --
V1_LEAF = "/kubepods/burstable/pod%s/%s" % (UID, CID)
V2_LEAF = "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod%s.slice/cri-containerd-%s.scope" % (
    UID_, CID)


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
    cpu_dirs = [m for m in node.mountpoints if "cpu" in m and "cpuset" not in m]
    os.makedirs(node.sys_root + cpu_dirs[0] + V1_LEAF + "/extra")
    with pytest.raises(CgroupError, match="1 child cgroup \\(extra\\)"):
        node_resolver(node.params()).resolve(node.params(container_id=CID), refuse_node_wide=True)
