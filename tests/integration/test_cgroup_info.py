"""cgroup_info through Ansible against the lab's real runc containers."""

import pytest

from tests.integration.ansible_helpers import failed, ok, read_int
from tests.integration.lab_fixtures import lab_container, lab_pod

pytestmark = pytest.mark.lab
PODS = ["hello", "checkout", "payments", "batch", "ledger"]


@pytest.mark.parametrize("pod", PODS)
def test_container_id_finds_the_cgroup_runc_made(lab, pod):
    container = lab_container(lab, pod)
    result = ok("cgroup_info", {"container_id": container["runtime_id"]})
    assert result["changed"] is False
    assert result["cgroup_mode"] == "hybrid"
    [cgroup] = result["cgroups"]
    assert cgroup["path"] == container["cgroup_path"]
    assert cgroup["container_id"] == container["id"]
    assert cgroup["pod_uid"] == lab_pod(lab, pod)["uid"]
    assert cgroup["qos_class"] == lab_pod(lab, pod)["qos_class"]
    assert cgroup["memory"]["limit_bytes"] == container["memory_limit_bytes"]
    # The limit runc was given is what the kernel holds.
    if container["memory_limit_bytes"]:
        assert read_int("memory", container["cgroup_path"], "memory.limit_in_bytes") == container["memory_limit_bytes"]
    assert cgroup["cpu"]["quota_cores"] == container["cpu_limit_cores"]
    assert container["pid"] in [p["pid"] for p in cgroup["processes"]]
    assert cgroup["memory"]["working_set_bytes"] <= cgroup["memory"]["usage_bytes"]


@pytest.mark.parametrize("pod", PODS)
def test_pod_uid_finds_the_app_and_leaves_the_sandbox_out(lab, pod):
    pod_info = lab_pod(lab, pod)
    result = ok("cgroup_info", {"pod_uid": pod_info["uid"].replace("-", "_")})
    assert [c["container_id"] for c in result["cgroups"]] == [lab_container(lab, pod)["id"]]
    with_sandbox = ok("cgroup_info", {"pod_uid": pod_info["uid"], "include_sandbox": True})
    kinds = sorted((c["container_id"], c["kind"]) for c in with_sandbox["cgroups"])
    assert kinds == sorted([(lab_container(lab, pod)["id"], "container"), (pod_info["sandbox"]["id"], "sandbox")])


def test_pid_and_path_selectors_agree(lab):
    container = lab_container(lab, "hello")
    by_pid = ok("cgroup_info", {"pid": container["pid"]})["cgroups"][0]
    by_path = ok("cgroup_info", {"cgroup_path": "/sys/fs/cgroup/memory" + container["cgroup_path"]})["cgroups"][0]
    assert by_pid["path"] == by_path["path"] == container["cgroup_path"]


def test_check_mode_reports_the_same(lab):
    container = lab_container(lab, "ledger")
    result = ok("cgroup_info", {"container_id": container["id"][:12]}, check_mode=True)
    assert result["changed"] is False
    assert result["cgroups"][0]["container_id"] == container["id"]


def test_bad_input_through_ansible(lab):
    assert "no container with ID" in failed("cgroup_info", {"container_id": "f" * 64})
    assert "malformed" in failed("cgroup_info", {"pod_uid": "nope"})
    assert "mutually exclusive" in failed("cgroup_info", {"container_id": lab_container(lab, "hello")["id"], "pid": 1})
    assert "leaves the cgroup root" in failed("cgroup_info", {"cgroup_path": "/../../etc"})
    assert "one of the following is required" in failed("cgroup_info", {})
