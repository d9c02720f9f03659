"""The lab builds real runc pods in kubelet's cgroup layouts, and leaves nothing behind.

Every check reads the kernel's cgroup files and /proc, not what runc or lab.py report.
"""

import json
import os
import re
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

from tests.integration.lab_fixtures import (LAB_SCRIPT, STATE_DIR, cgroup_dir, cgroup_mountpoints,
                                          lab_container, lab_pod, new_prefix, read_cgroup,
                                          restart_pod, run_lab)

pytestmark = pytest.mark.lab

MiB = 1024 * 1024
UNLIMITED = 2 ** 62  # v1 reports "no limit" as a page-rounded LONG_MAX

# What the brief asks of each pod: layout of the pod dir ({p}: lab prefix, {u}: pod UID,
# {f}: UID with underscores), container leaf ({c}: container ID), limits, app comm.
PODS = {
    "hello": {"qos": "Burstable", "runtime": "containerd",
              "pod": "/{p}/kubepods/burstable/pod{u}", "leaf": "{c}",
              "memory": 500 * MiB, "quota": 50000, "shares": 102, "comm": "httpd"},
    "checkout": {"qos": "Burstable", "runtime": "containerd",
                 "pod": "/{p}/kubepods.slice/kubepods-burstable.slice"
                        "/kubepods-burstable-pod{f}.slice",
                 "leaf": "cri-containerd-{c}.scope",
                 "memory": 256 * MiB, "quota": 100000, "shares": 256, "comm": "httpd"},
    "payments": {"qos": "Guaranteed", "runtime": "cri-o",
                 "pod": "/{p}/kubepods.slice/kubepods-pod{f}.slice", "leaf": "crio-{c}.scope",
                 "memory": 300 * MiB, "quota": 100000, "shares": 1024, "comm": "httpd"},
    "batch": {"qos": "BestEffort", "runtime": "containerd",
              "pod": "/{p}/kubepods/besteffort/pod{u}", "leaf": "{c}",
              "memory": None, "quota": None, "shares": 2, "comm": "sleep"},
    "ledger": {"qos": "Guaranteed", "runtime": "containerd",
               "pod": "/{p}/kubepods/pod{u}", "leaf": "{c}",
               "memory": 200 * MiB, "quota": 50000, "shares": 512, "comm": "httpd"},
}
HTTP_PODS = [name for name, want in PODS.items() if want["comm"] == "httpd"]


def comm(pid):
    with open("/proc/%d/comm" % pid) as handle:
        return handle.read().strip()


def memory_cgroup_of(pid):
    with open("/proc/%d/cgroup" % pid) as handle:
        for line in handle:
            _, controllers, path = line.rstrip("\n").split(":", 2)
            if "memory" in controllers.split(","):
                return path
    return None


def procs(controller, cgroup_path):
    return [int(p) for p in read_cgroup(controller, cgroup_path, "cgroup.procs").split()]


def processes_under(cgroup_root):
    """Live (non-zombie) PIDs of the host in any cgroup at or below cgroup_root."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/cgroup" % entry) as handle:
                paths = [line.rstrip("\n").split(":", 2)[2] for line in handle]
            with open("/proc/%s/stat" % entry) as handle:
                state = handle.read().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if state != "Z" and any(p == cgroup_root or p.startswith(cgroup_root + "/") for p in paths):
            found.append(int(entry))
    return found


def http_get(port):
    with urllib.request.urlopen("http://127.0.0.1:%d/" % port, timeout=5) as response:
        return response.status, response.read().decode()


def lab_leftovers(prefix):
    """Everything of lab `prefix` still on the host, as readable strings."""
    left = ["cgroup " + mp + "/" + prefix for mp in cgroup_mountpoints()
            if os.path.exists(os.path.join(mp, prefix))]
    left += ["path " + p for p in ("/run/" + prefix, str(STATE_DIR / (prefix + ".json")))
             if os.path.exists(p)]
    left += ["pid %d" % pid for pid in processes_under("/" + prefix)]
    return left


def wait_for(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


# ------------------------------------------------------------------ layout


@pytest.mark.parametrize("name", sorted(PODS))
def test_pod_and_container_paths_follow_kubelet_layout(lab, name):
    want, pod = PODS[name], lab_pod(lab, name)
    assert uuid.UUID(pod["uid"]).version == 4
    assert pod["qos_class"] == want["qos"]
    assert pod["cgroup_path"] == want["pod"].format(
        p=lab["prefix"], u=pod["uid"], f=pod["uid"].replace("-", "_"))
    for item in pod["containers"] + [pod["sandbox"]]:
        assert re.fullmatch(r"[0-9a-f]{64}", item["id"])
        assert item["cgroup_path"] == pod["cgroup_path"] + "/" + want["leaf"].format(c=item["id"])
        scheme = "cri-o" if want["runtime"] == "cri-o" else "containerd"
        assert item["runtime_id"] == "%s://%s" % (scheme, item["id"])


def test_pod_dirs_exist_in_every_v1_hierarchy(lab):
    for mountpoint in cgroup_mountpoints():
        if mountpoint.rstrip("/").endswith("unified"):
            continue
        for pod in lab["pods"]:
            assert os.path.isdir(mountpoint + pod["cgroup_path"]), mountpoint


def test_nothing_named_kubepods_at_hierarchy_root(lab):
    created = {p["cgroup_path"].split("/")[1] for p in lab["pods"]}
    assert created == {lab["prefix"]}


# ------------------------------------------------------------------ processes and limits


@pytest.mark.parametrize("name", sorted(PODS))
def test_container_init_pids_sit_in_their_cgroups(lab, name):
    pod = lab_pod(lab, name)
    for item in pod["containers"] + [pod["sandbox"]]:
        assert item["pid"] in procs("memory", item["cgroup_path"])
        assert item["pid"] in procs("cpu", item["cgroup_path"])
        assert memory_cgroup_of(item["pid"]) == item["cgroup_path"]


@pytest.mark.parametrize("name", sorted(PODS))
def test_processes_have_the_expected_comm(lab, name):
    pod = lab_pod(lab, name)
    assert comm(pod["sandbox"]["pid"]) == "pause"
    assert comm(lab_container(lab, name)["pid"]) == PODS[name]["comm"]


@pytest.mark.parametrize("name", sorted(PODS))
def test_memory_limit_in_bytes_matches(lab, name):
    want, pod, app = PODS[name], lab_pod(lab, name), lab_container(lab, name)
    assert app["memory_limit_bytes"] == want["memory"]
    for path in (app["cgroup_path"], pod["cgroup_path"]):
        limit = int(read_cgroup("memory", path, "memory.limit_in_bytes"))
        if want["memory"] is None:
            assert limit >= UNLIMITED
        else:
            assert limit == want["memory"]
    sandbox = pod["sandbox"]["cgroup_path"]
    assert int(read_cgroup("memory", sandbox, "memory.limit_in_bytes")) >= UNLIMITED


@pytest.mark.parametrize("name", sorted(PODS))
def test_cpu_quota_and_shares_match(lab, name):
    want, pod, app = PODS[name], lab_pod(lab, name), lab_container(lab, name)
    for path in (app["cgroup_path"], pod["cgroup_path"]):
        quota = int(read_cgroup("cpu", path, "cpu.cfs_quota_us"))
        assert quota == (want["quota"] if want["quota"] else -1)
        assert int(read_cgroup("cpu", path, "cpu.shares")) == want["shares"]
        if want["quota"]:
            assert int(read_cgroup("cpu", path, "cpu.cfs_period_us")) == 100000
    assert int(read_cgroup("cpu", pod["sandbox"]["cgroup_path"], "cpu.shares")) == 2


@pytest.mark.parametrize("name", HTTP_PODS)
def test_httpd_app_serves_index_page(lab, name):
    status, body = http_get(lab_container(lab, name)["http_port"])
    assert status == 200
    assert "Hello Kubernetes!" in body


def test_http_ports_are_distinct(lab):
    ports = [lab_container(lab, name)["http_port"] for name in HTTP_PODS]
    assert len(set(ports)) == len(ports)


# ------------------------------------------------------------------ restart and destroy


def test_restart_replaces_app_container_with_new_id(lab):
    # The session's lab: restart_pod updates it in place, so later tests find the new container.
    old = dict(lab_container(lab, "hello"))
    new = restart_pod(lab, "hello")
    assert new["id"] != old["id"] and re.fullmatch(r"[0-9a-f]{64}", new["id"])
    assert new["restart_count"] == old["restart_count"] + 1
    assert not os.path.exists(cgroup_dir("memory", old["cgroup_path"]))
    assert old["pid"] not in processes_under(lab["cgroup_root"])
    assert new["pid"] in procs("memory", new["cgroup_path"])
    assert int(read_cgroup("memory", new["cgroup_path"], "memory.limit_in_bytes")) == 500 * MiB
    assert http_get(new["http_port"])[0] == 200
    # The sandbox is untouched, as when kubelet restarts a crashed container.
    assert lab_pod(lab, "hello")["sandbox"]["pid"] in processes_under(lab["cgroup_root"])


def test_destroy_leaves_nothing(lab_factory):
    lab = lab_factory()
    prefix = lab["prefix"]
    assert len(processes_under("/" + prefix)) == 10
    run_lab("destroy", "--prefix", prefix, "--state-dir", str(STATE_DIR))
    assert lab_leftovers(prefix) == []


def test_destroy_cleans_a_half_built_lab():
    prefix = new_prefix()
    state_file = STATE_DIR / (prefix + ".json")
    create = subprocess.Popen([sys.executable, str(LAB_SCRIPT), "create", "--prefix", prefix,
                               "--state-dir", str(STATE_DIR), "--hang-after-pods", "2"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        def two_pods_running():
            try:
                pods = json.loads(state_file.read_text())["pods"]
            except (OSError, ValueError):
                return False
            return len(pods) == 2 and any(c["pid"] for c in pods[1]["containers"])
        assert wait_for(two_pods_running, timeout=30)
        create.kill()
        create.wait()
        assert len(processes_under("/" + prefix)) == 4
        assert json.loads(state_file.read_text())["complete"] is False
    finally:
        if create.poll() is None:
            create.kill()
            create.wait()
        run_lab("destroy", "--prefix", prefix, "--state-dir", str(STATE_DIR))
    assert lab_leftovers(prefix) == []


def test_destroy_without_state_file_still_cleans(lab_factory):
    lab = lab_factory()
    (STATE_DIR / (lab["prefix"] + ".json")).unlink()
    run_lab("destroy", "--prefix", lab["prefix"], "--state-dir", str(STATE_DIR))
    assert lab_leftovers(lab["prefix"]) == []


def test_two_labs_side_by_side(lab_factory):
    labs = []
    threads = [threading.Thread(target=lambda: labs.append(lab_factory())) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(labs) == 2
    ports = [lab_container(lab, name)["http_port"] for lab in labs for name in HTTP_PODS]
    assert len(set(ports)) == len(ports)
    for lab in labs:
        assert len(processes_under(lab["cgroup_root"])) == 10
        for name in HTTP_PODS:
            assert http_get(lab_container(lab, name)["http_port"])[0] == 200


# ------------------------------------------------------------------ errors


@pytest.mark.parametrize("prefix", ["kubepods", "cflab-", "cflab-UPPER", "cflab-a/../b",
                                    "../cflab-x"])
def test_create_refuses_bad_prefix(prefix):
    result = run_lab("create", "--prefix", prefix, "--state-dir", str(STATE_DIR), check=False)
    assert result.returncode != 0
    assert "prefix" in result.stderr
    assert not any(os.path.exists(os.path.join(mp, prefix)) for mp in cgroup_mountpoints())


def test_create_refuses_existing_prefix_and_keeps_that_lab(lab):
    before = Path(STATE_DIR / (lab["prefix"] + ".json")).read_text()
    result = run_lab("create", "--prefix", lab["prefix"], "--state-dir", str(STATE_DIR),
                     check=False)
    assert result.returncode != 0
    assert "already exists" in result.stderr
    assert Path(STATE_DIR / (lab["prefix"] + ".json")).read_text() == before
    assert len(processes_under(lab["cgroup_root"])) == 10


@pytest.mark.parametrize("args, message", [
    (["restart", "--pod", "nosuchpod"], "no pod"),
    (["status"], None),
])
def test_commands_on_missing_things_fail_clearly(lab, args, message):
    prefix = lab["prefix"] if message else new_prefix()
    result = run_lab(*(args + ["--prefix", prefix, "--state-dir", str(STATE_DIR)]), check=False)
    assert result.returncode != 0
    assert (message or "no state file") in result.stderr
