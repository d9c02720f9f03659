"""The cgroup v2 VM lab node (tests/vm/vm.py), and the collection's node modules on it.

One VM per session (the ``vm_node`` fixture). Module checks go through real Ansible over
SSH to the guest; layout checks read the guest kernel's cgroup files, not lab.py's word.
"""

import json
import secrets
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.integration.vm_fixtures import (
    GUEST_PYTHON, REPO, VM_SCRIPT, run_ansible_module, run_ansible_tasks, run_vm, vm_lab_container,
    vm_lab_hostvars, vm_lab_pod, vm_restart_pod, vm_ssh, write_inventory)
from tests.integration.vm_fixtures import vm_node  # noqa: F401  pylint: disable=unused-import

pytestmark = [pytest.mark.lab, pytest.mark.slow]

MiB = 1024 * 1024
HOST = "cfvm_node"
# What the lab gives each pod (tests/lab/lab.py POD_SPECS) and kubelet's v2 cpu.weight for it.
PODS = {
    "hello": {"qos": "Burstable", "runtime": "containerd", "memory": 500 * MiB, "cpu": 0.5,
              "weight": 4, "comm": "httpd"},
    "checkout": {"qos": "Burstable", "runtime": "containerd", "memory": 256 * MiB, "cpu": 1.0,
                 "weight": 10, "comm": "httpd"},
    "payments": {"qos": "Guaranteed", "runtime": "cri-o", "memory": 300 * MiB, "cpu": 1.0,
                 "weight": 39, "comm": "httpd"},
    "batch": {"qos": "BestEffort", "runtime": "containerd", "memory": None, "cpu": None,
              "weight": 1, "comm": "sleep"},
    "ledger": {"qos": "Guaranteed", "runtime": "containerd", "memory": 200 * MiB, "cpu": 0.5,
               "weight": 20, "comm": "httpd"},
}
LEAF = {"containerd": "cri-containerd-{c}.scope", "cri-o": "crio-{c}.scope"}

# Reads cgroup files in the guest: argv = cgroup paths; prints {path: {file: text or null}}.
READ_CGROUPS = r"""
import json, sys
FILES = ("memory.max", "memory.swap.max", "memory.oom.group", "cpu.max", "cpu.weight",
         "cgroup.procs", "cgroup.subtree_control")
out = {}
for path in sys.argv[1:]:
    out[path] = {}
    for name in FILES:
        try:
            with open("/sys/fs/cgroup" + path + "/" + name) as handle:
                out[path][name] = handle.read().strip()
        except OSError:
            out[path][name] = None
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def inventory(vm_node, tmp_path_factory):
    """The VM as an inventory host: connection vars plus the lab facts (fleet_pods, ...)."""
    hostvars = dict(vm_node["hostvars"], **vm_lab_hostvars(vm_node))
    return write_inventory(tmp_path_factory.mktemp("cfvm") / "inventory.json", {HOST: hostvars})


def guest_cgroups(vm, paths):
    return json.loads(vm_ssh(vm, GUEST_PYTHON, "-c", READ_CGROUPS, *paths).stdout)


def cgroup_info(inventory, **selector):
    rc, hosts, raw = run_ansible_module(inventory, HOST, "chaosfleet.stress.cgroup_info", selector)
    assert rc == 0, raw
    return hosts[HOST]


def stressor(inventory, **params):
    rc, hosts, raw = run_ansible_module(inventory, HOST, "chaosfleet.stress.stressor", params)
    assert rc == 0, raw
    return hosts[HOST]


# ------------------------------------------------------------------ the node itself


def test_inventory_variables_reach_the_guest_as_root(vm_node):
    assert vm_node["hostvars"] == {
        "ansible_host": "127.0.0.1", "ansible_port": vm_node["ssh_port"], "ansible_user": "root",
        "ansible_ssh_private_key_file": vm_node["key"],
        "ansible_python_interpreter": "/usr/bin/python3",
        "ansible_ssh_common_args": "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null",
    }
    out = vm_ssh(vm_node, "sh", "-c", "id -u; hostname; uname -r").stdout.split()
    assert out[:2] == ["0", vm_node["name"]]
    assert out[2] == vm_node["summary"]["kernel"]


def test_guest_mounts_only_cgroup_v2(vm_node):
    mountinfo = vm_ssh(vm_node, "cat", "/proc/self/mountinfo").stdout.splitlines()
    cgroup_mounts = [line.split(" - ")[1].split()[0] + " " + line.split()[4]
                     for line in mountinfo if re.search(r" - cgroup2? ", line)]
    assert cgroup_mounts == ["cgroup2 /sys/fs/cgroup"]
    root = vm_ssh(vm_node, "cat", "/sys/fs/cgroup/cgroup.subtree_control").stdout.split()
    assert {"memory", "cpu", "pids", "io"} <= set(root)


# Imports from two zips (two module runs) of one source, then of a changed one, in the guest's Python.
ZIP_IMPORTS = """
import os, sys, tempfile, traceback, zipfile
def run(source):
    archive = os.path.join(tempfile.mkdtemp(prefix="cfvm-zip-"), "payload.zip")
    with zipfile.ZipFile(archive, "w") as out:
        out.writestr("cfvm_probe_mod.py", source)
    sys.path.insert(0, archive)
    sys.modules.pop("cfvm_probe_mod", None)
    try:
        import cfvm_probe_mod
        return cfvm_probe_mod.answer(), archive
    except ValueError:
        return traceback.extract_tb(sys.exc_info()[2])[-1].filename, archive
    finally:
        sys.path.remove(archive)
first = run("def answer():\\n    raise ValueError('where')\\n")
second = run("def answer():\\n    raise ValueError('where')\\n")
changed = run("def answer():\\n    return 'changed'\\n")
print(first[0] == first[1] + "/cfvm_probe_mod.py", second[0] == second[1] + "/cfvm_probe_mod.py", changed[0])
"""


def test_guest_keeps_zip_bytecode_under_the_asking_zips_path_and_compiles_a_changed_source(vm_node):
    # tests/lab/bytecode_site/zip_bytecode_cache.py: the second run is served from the cache, yet its traceback names its
    # own zip; a changed source is not served the old code.
    before = vm_ssh(vm_node, "sh", "-c", "ls /run/cflab-bytecode | wc -l").stdout.split()
    assert vm_ssh(vm_node, GUEST_PYTHON, "-c", ZIP_IMPORTS).stdout.split() == ["True", "True", "changed"]
    after = vm_ssh(vm_node, "sh", "-c", "ls /run/cflab-bytecode | wc -l").stdout.split()
    assert int(after[0]) == int(before[0]) + 2  # one entry per distinct source


def test_guest_cannot_reach_out_but_serves_itself(vm_node):
    # restrict=on: even the host behind qemu's gateway (10.0.2.2) is unreachable from the guest.
    probe = ("import socket, sys\n"
             "for host, port in (('10.0.2.2', %d), ('10.0.2.15', 22)):\n"
             "    try:\n"
             "        socket.create_connection((host, port), timeout=3).close(); print('open')\n"
             "    except OSError:\n"
             "        print('closed')\n" % vm_node["ssh_port"])
    assert vm_ssh(vm_node, GUEST_PYTHON, "-c", probe).stdout.split() == ["closed", "open"]


def test_qemu_listens_on_loopback_only(vm_node):
    state = json.loads(run_vm("status", "--name", vm_node["name"]).stdout)
    assert state["qemu_alive"] is True
    assert "hostfwd=tcp:127.0.0.1:%d-:22" % vm_node["ssh_port"] in " ".join(state["argv"])
    listening = Path("/proc/%d/net/tcp" % state["pid"]).read_text().splitlines()[1:]
    ours = [line.split()[1] for line in listening
            if line.split()[3] == "0A" and int(line.split()[1].split(":")[1], 16) == vm_node["ssh_port"]]
    assert ours == ["0100007F:%04X" % vm_node["ssh_port"]]


# ------------------------------------------------------------------ the lab in the guest


@pytest.mark.parametrize("name", sorted(PODS))
def test_guest_pods_use_systemd_layout_with_v2_limits(vm_node, name):
    want, pod, app = PODS[name], vm_lab_pod(vm_node, name), vm_lab_container(vm_node, name)
    lab = vm_node["lab"]
    assert lab["cgroup_version"] == 2
    flat = pod["uid"].replace("-", "_")
    qos = want["qos"].lower()
    expected_pod = "/%s/kubepods.slice/" % lab["prefix"] + (
        "kubepods-pod%s.slice" % flat if want["qos"] == "Guaranteed"
        else "kubepods-%s.slice/kubepods-%s-pod%s.slice" % (qos, qos, flat))
    assert pod["cgroup_driver"] == "systemd" and pod["cgroup_path"] == expected_pod
    sandbox = pod["sandbox"]
    for item in (app, sandbox):
        assert item["cgroup_path"] == expected_pod + "/" + LEAF[want["runtime"]].format(c=item["id"])
    files = guest_cgroups(vm_node, [pod["cgroup_path"], app["cgroup_path"], sandbox["cgroup_path"]])
    pod_files, app_files, sandbox_files = (files[p] for p in (
        pod["cgroup_path"], app["cgroup_path"], sandbox["cgroup_path"]))
    memory = str(want["memory"]) if want["memory"] else "max"
    cpu = "%d 100000" % (want["cpu"] * 100000) if want["cpu"] else "max 100000"
    for files_of in (pod_files, app_files):
        assert files_of["memory.max"] == memory
        assert files_of["cpu.max"] == cpu
        assert files_of["cpu.weight"] == str(want["weight"])
    assert {"memory", "cpu", "pids"} <= set(pod_files["cgroup.subtree_control"].split())
    assert app_files["memory.oom.group"] == "1"
    assert sandbox_files["memory.oom.group"] == "0"
    assert app_files["memory.swap.max"] == ("0" if want["memory"] else "max")
    assert app_files["cgroup.procs"].split() == [str(app["pid"])]
    assert sandbox_files["cgroup.procs"].split() == [str(sandbox["pid"])]


def test_second_guest_lab_builds_beside_the_first_and_destroy_leaves_nothing(vm_node):
    prefix = "cflab-" + secrets.token_hex(3)
    lab_py = str(REPO / "tests" / "lab" / "lab.py")
    state_dir = "/run/cfvm-lab"
    # A process killed by destroy leaves the cgroup before its parent reaps it: for a moment
    # it still names the removed cgroup. Zombies hold no resource, so only live ones count,
    # given 5 s to finish exiting.
    leftovers = ("import os, sys, time\n"
                 "sys.path.insert(0, os.path.dirname(sys.argv[2]))\n"
                 "import lab\n"
                 "p = sys.argv[1]\n"
                 "for _ in range(50):\n"
                 "    left = [d for d in ('/sys/fs/cgroup/' + p, '/run/' + p, '%s/' + p + '.json')"
                 " if os.path.exists(d)]\n"
                 "    left += [e for e in os.listdir('/proc') if e.isdigit()"
                 " and lab.pid_alive(int(e)) and lab.pid_in_cgroup_root(int(e), '/' + p)]\n"
                 "    if not left:\n"
                 "        break\n"
                 "    time.sleep(0.1)\n"
                 "print(left)\n" % state_dir)
    try:
        created = vm_ssh(vm_node, GUEST_PYTHON, lab_py, "create", "--prefix", prefix,
                         "--state-dir", state_dir, timeout=180)
        state = json.loads(vm_ssh(vm_node, "cat", created.stdout.strip()).stdout)
        assert state["cgroup_version"] == 2 and state["complete"] is True
        assert all(p["cgroup_driver"] == "systemd" for p in state["pods"])
        # Both labs run: ten containers each, the first one untouched.
        procs = vm_ssh(vm_node, "sh", "-c", "cat /proc/[0-9]*/cgroup 2>/dev/null").stdout
        assert sum("::/%s/" % prefix in line for line in procs.splitlines()) == 10
        assert sum("::/%s/" % vm_node["lab"]["prefix"] in line for line in procs.splitlines()) >= 10
    finally:
        vm_ssh(vm_node, GUEST_PYTHON, lab_py, "destroy", "--prefix", prefix, "--state-dir", state_dir,
               timeout=120, check=False)
    assert vm_ssh(vm_node, GUEST_PYTHON, "-c", leftovers, prefix, lab_py).stdout.strip() == "[]"


# ------------------------------------------------------------------ cgroup_info over SSH


@pytest.fixture(scope="module")
def info_by_pod(vm_node, inventory):
    """cgroup_info for every pod, by container ID (runtime://id) and by pod UID, in one play.

    The targets come from the host's lab vars (fleet_pods), as a fleet play would take them.
    """
    pods = sorted(PODS)
    rc, hosts, raw = run_ansible_tasks(inventory, [
        {"chaosfleet.stress.cgroup_info": {"container_id": "{{ fleet_pods[item].runtime_id }}"},
         "loop": pods, "register": "by_id"},
        {"chaosfleet.stress.cgroup_info": {"pod_uid": "{{ fleet_pods[item].pod_uid }}"},
         "loop": pods, "register": "by_uid"},
        {"chaosfleet.stress.cgroup_info": {"pod_uid": "{{ fleet_pods[item].pod_uid }}",
                                           "include_sandbox": True},
         "loop": pods[:1], "register": "with_sandbox"},
    ], pattern=HOST)
    assert rc == 0, raw
    result = hosts[HOST]
    return {
        "by_id": {r["item"]: r for r in result["by_id"]["results"]},
        "by_uid": {r["item"]: r for r in result["by_uid"]["results"]},
        "with_sandbox": (pods[0], result["with_sandbox"]["results"][0]),
    }


@pytest.mark.parametrize("name", sorted(PODS))
def test_cgroup_info_finds_container_by_id_on_v2(vm_node, info_by_pod, name):
    want, app, pod = PODS[name], vm_lab_container(vm_node, name), vm_lab_pod(vm_node, name)
    result = info_by_pod["by_id"][name]
    assert result["changed"] is False
    assert result["cgroup_mode"] == "v2" and result["cgroup_version"] == 2
    assert len(result["cgroups"]) == 1
    found = result["cgroups"][0]
    assert found["cgroup_version"] == 2
    assert found["path"] == app["cgroup_path"]
    assert found["dirs"] == {"unified": "/sys/fs/cgroup" + app["cgroup_path"]}
    assert (found["kind"], found["container_id"], found["pod_uid"]) == ("container", app["id"], pod["uid"])
    assert (found["qos_class"], found["runtime"]) == (want["qos"], want["runtime"])
    assert found["memory"]["limit_bytes"] == want["memory"]
    assert found["cpu"]["quota_cores"] == want["cpu"]
    assert found["cpu"]["period_us"] == 100000
    assert found["memory"]["oom_group"] is True
    assert found["memory"]["oom_kill_count"] == 0
    assert found["memory"]["working_set_bytes"] == (
        found["memory"]["usage_bytes"] - found["memory"]["inactive_file_bytes"])
    assert found["cpu"]["usage_seconds"] > 0
    for resource in ("memory", "cpu", "io"):
        assert {"some_avg10", "full_avg10"} <= set(found["pressure"][resource]), resource
    assert [p["comm"] for p in found["processes"]] == [want["comm"]]
    assert [p["pid"] for p in found["processes"]] == [app["pid"]]


@pytest.mark.parametrize("name", sorted(PODS))
def test_cgroup_info_finds_app_container_by_pod_uid_on_v2(vm_node, info_by_pod, name):
    result = info_by_pod["by_uid"][name]
    assert result["cgroup_version"] == 2
    assert [c["container_id"] for c in result["cgroups"]] == [vm_lab_container(vm_node, name)["id"]]
    assert result["cgroups"][0]["memory"]["limit_bytes"] == PODS[name]["memory"]


def test_cgroup_info_include_sandbox_on_v2(vm_node, info_by_pod):
    name, result = info_by_pod["with_sandbox"]
    pod = vm_lab_pod(vm_node, name)
    kinds = {c["container_id"]: c["kind"] for c in result["cgroups"]}
    assert kinds == {vm_lab_container(vm_node, name)["id"]: "container", pod["sandbox"]["id"]: "sandbox"}
    sandbox = next(c for c in result["cgroups"] if c["kind"] == "sandbox")
    assert sandbox["memory"]["oom_group"] is False
    assert [p["comm"] for p in sandbox["processes"]] == ["pause"]


def test_cgroup_info_unknown_container_fails_clearly_on_v2(inventory):
    rc, hosts, raw = run_ansible_module(inventory, HOST, "chaosfleet.stress.cgroup_info",
                                        {"container_id": "f" * 64})
    assert rc != 0
    assert "no container with ID " + "f" * 64 in hosts[HOST]["msg"]


# ------------------------------------------------------------------ stressor over SSH


def stress_processes(cgroup):
    return [p for p in cgroup["processes"] if p["comm"].startswith("stress-ng")]


def experiment_events(vm, name):
    """The node-side event log of an experiment, for failure messages."""
    return vm_ssh(vm, "cat", "/run/chaosfleet/experiments/%s/events.jsonl" % name, check=False).stdout


def wait_for_phase(inventory, params, phases, timeout=90):
    """Heartbeat the experiment (same name and params) until its phase is one of phases."""
    deadline = time.monotonic() + timeout
    while True:
        result = stressor(inventory, **params)
        if result.get("phase") in phases or time.monotonic() > deadline:
            return result
        time.sleep(2)


def test_memory_stress_lands_in_container_and_absent_stops_it(vm_node, inventory):
    app = vm_lab_container(vm_node, "hello")
    before = cgroup_info(inventory, container_id=app["id"])["cgroups"][0]
    assert stress_processes(before) == []
    params = {"name": "cfvm-mem-" + vm_node["name"][5:], "container_id": app["id"],
              "memory": {"size": "100Mi"}, "duration": "5m"}
    started = stressor(inventory, **params)
    try:
        assert started["status"] == "running", started
        assert started["plan"]["memory"]["bytes"] == 100 * MiB
        holding = wait_for_phase(inventory, params, ("holding", "ended"))
        assert holding["phase"] == "holding", holding
        # stress-ng's vm worker grows by ~12 MiB for a few seconds now and then (its method
        # cycle); the steady level is what the request promises, so take the lower of two reads.
        reads = [cgroup_info(inventory, container_id=app["id"])["cgroups"][0] for _read in range(2)]
        increase = min(r["memory"]["working_set_bytes"] for r in reads) - \
            before["memory"]["working_set_bytes"]
        # test_fidelity's v2 case holds the level to 1 %; this one reads its baseline once, through the module.
        assert abs(increase - 100 * MiB) <= 2 * MiB, "increase %.1f MiB; events:\n%s" % (
            increase / MiB, experiment_events(vm_node, params["name"]))
        workers = stress_processes(reads[-1])
        # The instances (process group leaders, nsenter when entering the PID namespace) are in
        # the container's own cgroup.
        assert holding["pids"] and set(holding["pids"]) <= {p["pid"] for p in reads[-1]["processes"]}
        # The worker holding the memory is the OOM killer's first choice. (stress-ng sets
        # -1000 on its own parent and per-stressor keeper processes, which hold almost nothing.)
        assert any(p["comm"] == "stress-ng-vm" and p["oom_score_adj"] == 1000 for p in workers), workers
        # The guest's kernel runs THP "always"; the stressor opts out so its footprint does not vary by huge pages.
        thp = vm_ssh(vm_node, "grep", "-h", "^THP_enabled", *["/proc/%d/status" % p["pid"] for p in workers]).stdout
        assert thp.split()[1::2] == ["0"] * len(workers), thp
    finally:
        stopped = stressor(inventory, name=params["name"], state="absent")
    assert (stopped["status"], stopped["reason"], stopped["pids"]) == ("stopped", "stop", [])
    assert stopped["changed"] is True
    after = cgroup_info(inventory, container_id=app["id"])["cgroups"][0]
    assert stress_processes(after) == []
    assert [p["pid"] for p in after["processes"]] == [app["pid"]]
    assert after["memory"]["working_set_bytes"] - before["memory"]["working_set_bytes"] < 10 * MiB


def test_oom_group_kill_takes_app_with_stressor_and_is_counted(vm_node, inventory):
    """v2 with memory.oom.group=1: one OOM kills the whole container, app included."""
    app = vm_lab_container(vm_node, "ledger")
    params = {"name": "cfvm-oom-" + vm_node["name"][5:], "container_id": app["id"],
              "memory": {"size": "300Mi"}, "allow_oom": True, "on_oom": "stop",
              "duration": "60s"}
    try:
        started = stressor(inventory, **params)
        assert started["status"] == "running", started
        ended = wait_for_phase(inventory, params, ("ended",))
        assert ended["status"] in ("aborted", "stopped"), ended
        kills = ended["outcome"]["oom_kills"]
        why = "kills %s\nevents:\n%s\nkernel:\n%s" % (
            json.dumps(kills, indent=1), experiment_events(vm_node, params["name"]),
            vm_ssh(vm_node, "dmesg", check=False).stdout[-3000:])
        apps = [k for k in kills if k["victim"] == "app"]
        assert [(k["pid"], k["comm"]) for k in apps] == [(app["pid"], "httpd")], why
        assert any(k["victim"] == "stressor" for k in kills), why
        assert all(k["group_kill"] is True for k in kills), why
        after = cgroup_info(inventory, container_id=app["id"])["cgroups"][0]
        # One record per kill the kernel counted in memory.events, no more, no less.
        assert after["memory"]["oom_kill_count"] >= 2
        assert ended["outcome"]["oom_kill_count"] == after["memory"]["oom_kill_count"], why
        assert len(kills) == after["memory"]["oom_kill_count"], why
        assert after["processes"] == []
        events = vm_ssh(vm_node, "cat", "/sys/fs/cgroup%s/memory.events" % app["cgroup_path"]).stdout
        assert "oom_group_kill 1" in events.splitlines()
    finally:
        stressor(inventory, name=params["name"], state="absent")
        new = vm_restart_pod(vm_node, "ledger")
    assert new["id"] != app["id"] and new["oom_group"] is True


@pytest.mark.serial
def test_dead_man_ends_the_stress_on_v2(vm_node, inventory):
    app = vm_lab_container(vm_node, "payments")
    name = "cfvm-deadman-" + vm_node["name"][5:]
    started = stressor(inventory, name=name, container_id=app["id"], memory={"size": "20Mi"},
                       heartbeat_timeout="5s", duration="5m")
    assert started["status"] == "running", started
    # No heartbeat: the node itself must end it; each ansible run on the emulated VM takes seconds.
    time.sleep(12)
    ended = stressor(inventory, name=name, state="absent")
    assert (ended["status"], ended["reason"]) == ("aborted", "heartbeat"), ended
    assert ended["changed"] is False
    assert ended["outcome"]["ended_at"] - ended["started_at"] <= 5 + 3
    assert stress_processes(cgroup_info(inventory, container_id=app["id"])["cgroups"][0]) == []


@pytest.mark.serial
def test_cpu_load_is_a_share_of_the_v2_quota(vm_node, inventory):
    app = vm_lab_container(vm_node, "hello")  # cpu.max 50000 100000: half a core
    name = "cfvm-cpu-" + vm_node["name"][5:]
    started = stressor(inventory, name=name, container_id=app["id"], cpu={"load": 50}, duration="5m")
    try:
        assert started["requested"]["cpu_cores"] == pytest.approx(0.25)
        time.sleep(10)  # past the supervisor's first correction window
        rc, hosts, raw = run_ansible_module(inventory, HOST, "chaosfleet.stress.cgroup_sample",
                                            {"container_id": app["id"], "duration": "8s", "interval": "1s"})
        assert rc == 0, raw
        load = hosts[HOST]["results"][0]["summary"]["cpu_cores"] / 0.5 * 100
        # A share of the host's CPUs would fill the quota (100 %). The band is wider than test_fidelity's
        # +-5 on the real kernel: the emulated guest's clock and scheduler jitter (CI measured 60.2 %).
        assert 35 <= load <= 65, "load %.1f%% of the quota for 50%% asked" % load
    finally:
        stressor(inventory, name=name, state="absent")


def test_group_kill_is_visible_in_the_report(vm_node, inventory, tmp_path):
    """Read back the group-kill experiment from the node and render its report on the controller."""
    name = "cfvm-oom-" + vm_node["name"][5:]
    rc, hosts, raw = run_ansible_module(inventory, HOST, "chaosfleet.stress.cgroup_sample",
                                        {"experiment": name, "host_label": HOST})
    assert rc == 0, raw
    record = hosts[HOST]["experiment_result"]
    assert record["target"]["oom_group"] is True and record["target"]["cgroup_version"] == 2
    assert any(k["victim"] == "app" and k["group_kill"] for k in record["oom_kills"]), record["oom_kills"]
    local = write_inventory(tmp_path / "local.json", {"localhost": {"ansible_connection": "local",
                                                                    "ansible_python_interpreter": sys.executable}})
    (tmp_path / "result.json").write_text(json.dumps(record))
    rc, hosts, raw = run_ansible_tasks(local, [{
        "chaosfleet.stress.stress_report": {
            "results": {HOST: "{{ lookup('ansible.builtin.file', '%s') | from_json }}" % (tmp_path / "result.json")},
            "dest": str(tmp_path / "report"), "basename": "group-kill"},
        "register": "report"}], pattern="localhost")
    assert rc == 0, raw
    html = (tmp_path / "report" / "group-kill.html").read_text()
    assert "group kill" in html.lower()
    markdown = (tmp_path / "report" / "group-kill.md").read_text()
    assert "httpd" in markdown


# ------------------------------------------------------------------ vm.py without booting


@pytest.mark.parametrize("args, message", [
    (["up", "--name", "cflab-x"], "must match"),
    (["up", "--name", "cfvm-UPPER"], "must match"),
    (["up", "--name", "cfvm-a/../b"], "must match"),
    (["up", "--name", "cfvm-mem", "--memory", "512"], "--memory must be 1024 to 2048"),
    (["up", "--name", "cfvm-mem", "--memory", "4096"], "--memory must be 1024 to 2048"),
    (["kill", "--name", "cfvm-nosuchvm"], "no VM named cfvm-nosuchvm"),
    (["status", "--name", "cfvm-nosuchvm"], "no VM named cfvm-nosuchvm"),
    (["ssh", "--name", "cfvm-nosuchvm", "--", "true"], "no VM named cfvm-nosuchvm"),
])
def test_vm_cli_refuses_bad_input_and_starts_nothing(args, message):
    result = run_vm(*args, check=False)
    assert result.returncode == 1
    assert message in result.stderr
    assert not (REPO / ".lab" / "vm" / "cfvm-mem").exists()
    assert not (REPO / ".lab" / "vm" / "cfvm-mem.json").exists()


def test_down_of_unknown_vm_is_a_no_op():
    result = run_vm("down", "--name", "cfvm-nosuchvm", check=False)
    assert (result.returncode, result.stdout.strip()) == (0, "down cfvm-nosuchvm")


def test_initramfs_holds_modules_in_dependency_order():
    sys.path.insert(0, str(VM_SCRIPT.parent))
    try:
        import vm
    finally:
        sys.path.pop(0)
    version = vm.pick_kernel()
    image = vm.build_initramfs(version)
    listing = subprocess.run(["cpio", "-it", "--quiet"], stdin=open(str(image), "rb"),
                             stdout=subprocess.PIPE, universal_newlines=True, check=True).stdout.split()
    assert {"init", "bin/busybox", "modules/order"} <= set(listing)
    order = subprocess.run(["cpio", "-i", "--quiet", "--to-stdout", "modules/order"],
                           stdin=open(str(image), "rb"), stdout=subprocess.PIPE,
                           universal_newlines=True, check=True).stdout.split()
    assert order[:11] == ["virtio_ring", "virtio", "virtio_pci_modern_dev", "virtio_pci_legacy_dev",
                          "virtio_pci", "netfs", "fscache", "9pnet", "9pnet_virtio", "9p", "overlay"]
    assert {"modules/%s.ko" % m for m in order} <= set(listing)

    # Every module's dependencies (modules.dep) come before it.
    def module_name(path):
        return Path(path).name.split(".ko")[0].replace("-", "_")

    deps = {}
    for line in Path("/lib/modules/%s/modules.dep" % version).read_text().splitlines():
        target, _colon, needs = line.partition(":")
        deps[module_name(target)] = [module_name(p) for p in needs.split()]
    for index, module in enumerate(order):
        assert set(deps[module]) <= set(order[:index]), module


def qemu_pid_from(stderr):
    match = re.search(r"qemu pid (\d+)", stderr)
    assert match, stderr
    return int(match.group(1))


def vm_leftovers(name, pid):
    left = [str(p) for p in (REPO / ".lab" / "vm" / name, REPO / ".lab" / "vm" / (name + ".json"))
            if p.exists()]
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as handle:
            if name.encode() in handle.read() and qemu_alive_pid(pid):
                left.append("qemu pid %d" % pid)
    except OSError:
        pass
    return left


def qemu_alive_pid(pid):
    try:
        with open("/proc/%d/stat" % pid) as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


def test_up_that_times_out_prints_the_console_and_removes_the_vm():
    name = "cfvm-t" + secrets.token_hex(3)
    try:
        result = run_vm("up", "--name", name, "--timeout", "2", check=False, timeout=120)
        assert result.returncode == 1
        assert "guest not ready after 2 s" in result.stderr
        assert "--- console tail" in result.stderr
        assert vm_leftovers(name, qemu_pid_from(result.stderr)) == []
    finally:
        run_vm("down", "--name", name, check=False)


def test_kill_is_a_node_crash_and_down_cleans_up_after_it():
    name = "cfvm-k" + secrets.token_hex(3)
    try:
        failed = run_vm("up", "--name", name, "--timeout", "2", "--keep-on-failure",
                        check=False, timeout=120)
        assert failed.returncode == 1
        pid = qemu_pid_from(failed.stderr)
        assert qemu_alive_pid(pid)
        run_vm("kill", "--name", name)
        assert not qemu_alive_pid(pid)
        state = json.loads(run_vm("status", "--name", name).stdout)
        assert (state["status"], state["qemu_alive"]) == ("killed", False)
        again = run_vm("kill", "--name", name, check=False)
        assert again.returncode == 1 and "is not running" in again.stderr
        run_vm("down", "--name", name)
        assert vm_leftovers(name, pid) == []
    finally:
        run_vm("down", "--name", name, check=False)


def test_sigterm_during_up_removes_the_vm():
    name = "cfvm-s" + secrets.token_hex(3)
    up = subprocess.Popen([sys.executable, str(VM_SCRIPT), "up", "--name", name, "--timeout", "100"],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True)
    try:
        state_path = REPO / ".lab" / "vm" / (name + ".json")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if state_path.exists() and json.loads(state_path.read_text()).get("pid"):
                break
            time.sleep(0.2)
        pid = json.loads(state_path.read_text())["pid"]
        assert qemu_alive_pid(pid)
        up.terminate()
        _out, err = up.communicate(timeout=60)
        assert up.returncode != 0
        assert vm_leftovers(name, pid) == [], err
    finally:
        if up.poll() is None:
            up.kill()
            up.wait()
        run_vm("down", "--name", name, check=False)


def test_guest_boot_failure_is_reported_with_its_cause_and_cleaned_up():
    name = "cfvm-f" + secrets.token_hex(3)
    try:
        result = run_vm("up", "--name", name, "--lab-prefix", "cflab-BAD", check=False, timeout=200)
        assert result.returncode == 1
        assert "guest boot failed: lab.py create" in result.stderr
        # The console tail carries lab.py's own complaint.
        assert "prefix 'cflab-BAD' must match" in result.stderr
        assert vm_leftovers(name, qemu_pid_from(result.stderr)) == []
    finally:
        run_vm("down", "--name", name, check=False)
