"""The node modules run from a private cgroup namespace, as a node agent container (Docker, Podman, a
non-privileged pod) runs them: they enter PID 1's cgroup namespace and land the stress in the target, or,
when they may not (no CAP_SYS_ADMIN), refuse with the cause and start nothing.

A private namespace is made as runtimes make one: move a process into a fresh child cgroup (``cflab-ns-*``,
memory-limited, removed on every path), then ``unshare --cgroup``. From inside it the host's cgroup mounts show
roots ``/..`` and other processes' cgroups read ``/../..``. On the v1 lab host and on the v2 VM (cgroup2 with
``nsdelegate``, where a PID written into a cgroup outside the namespace gets ENOENT).
"""

import json
import os
import secrets
import signal
import subprocess
import sys
import time

import pytest

from tests.integration.ansible_helpers import ANSIBLE, ENV, REPO, stress_pids, wait_for, working_set
from tests.integration.lab_fixtures import cgroup_dir, lab_container
from tests.integration.vm_fixtures import (
    GUEST_PYTHON, run_ansible_module, vm_lab_container, vm_ssh, write_inventory)

# The fixtures lab, vm_node and state_dir come from conftest.py, so the session's one VM serves this module too.
pytestmark = [pytest.mark.lab, pytest.mark.slow]
MiB = 1024 * 1024
STRESS = 32 * MiB
NS_MEMORY_LIMIT = 1024 * MiB  # ansible, the module and the supervisor; the stress is charged to the pod

# Runs under `unshare --mount`: argv = memory cgroup dir, "1" to show PID 2's ns links at /proc/1/ns, command.
# The process joins the cgroup, so the cgroup namespace `unshare --cgroup` makes next is rooted there.
NS_ENTRY = r"""
import os, subprocess, sys
cgroup, hide_pid1, command = sys.argv[1], sys.argv[2], sys.argv[3:]
if hide_pid1 == "1":
    subprocess.run(["mount", "--bind", "/proc/2/ns", "/proc/1/ns"], check=True)
with open(os.path.join(cgroup, "cgroup.procs"), "w") as handle:
    handle.write(str(os.getpid()))
os.execvp(command[0], command)
"""
DROP_SYS_ADMIN = ["setpriv", "--bounding-set", "-sys_admin", "--inh-caps", "-sys_admin", "--"]


def pid1_ns_hidden():
    """On this lab machine PID 1 (the sandbox's own init) hides its ns links even from root (EACCES). A Kubernetes
    node's PID 1 does not; there the agent's hostPID shows the host's init. The test then shows kthreadd's links
    (PID 2, always in the initial cgroup namespace) at /proc/1/ns, in a mount namespace of its own."""
    try:
        os.stat("/proc/1/ns/cgroup")
        return False
    except PermissionError:
        with open("/proc/2/comm") as handle:
            assert handle.read().strip() == "kthreadd"
        return True


def ns_inode(pid):
    return os.stat("/proc/%s/ns/cgroup" % pid).st_ino


def own_memory_cgroup():
    with open("/proc/self/cgroup") as handle:
        for line in handle.read().splitlines():
            _hier, controllers, path = line.split(":", 2)
            if "memory" in controllers.split(","):
                return path
    raise AssertionError("no memory line in /proc/self/cgroup")


def procs(directory):
    with open(os.path.join(directory, "cgroup.procs")) as handle:
        return [int(p) for p in handle.read().split()]


class PrivateNamespace(object):
    """Runs commands in a private cgroup namespace rooted at a fresh memory cgroup below this test's own."""

    def __init__(self):
        parent = cgroup_dir("memory", own_memory_cgroup())
        self.dir = os.path.join(parent, "cflab-ns-" + secrets.token_hex(3))
        os.mkdir(self.dir)
        with open(os.path.join(self.dir, "memory.limit_in_bytes"), "w") as handle:
            handle.write(str(NS_MEMORY_LIMIT))
        self.hide_pid1 = pid1_ns_hidden()

    def argv(self, command, drop_sys_admin=False):
        return (["unshare", "--mount", "--propagation", "private", "--", sys.executable, "-c", NS_ENTRY, self.dir,
                 "1" if self.hide_pid1 else "0", "unshare", "--cgroup", "--"]
                + (DROP_SYS_ADMIN if drop_sys_admin else []) + list(command))

    def run(self, command, drop_sys_admin=False, timeout=120):
        return subprocess.run(self.argv(command, drop_sys_admin), cwd=str(REPO), env=ENV, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, universal_newlines=True, timeout=timeout, check=False)

    def module(self, module, args, drop_sys_admin=False):
        """Run chaosfleet.stress.<module> through `ansible localhost` inside; return (ok, result)."""
        proc = self.run([ANSIBLE, "localhost", "-m", "chaosfleet.stress." + module, "-a", json.dumps(args)],
                        drop_sys_admin)
        if "=> " not in proc.stdout:
            raise AssertionError("no module result (rc %d):\n%s\n%s" % (proc.returncode, proc.stdout, proc.stderr))
        result = json.loads(proc.stdout.split("=> ", 1)[1])
        return proc.returncode == 0 and not result.get("failed"), result

    def remove(self):
        # Whatever is left in it (a supervisor of a failed test) was started here.
        deadline = time.time() + 15
        while procs(self.dir) and time.time() < deadline:
            for pid in procs(self.dir):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.2)
        os.rmdir(self.dir)


@pytest.fixture
def private_ns(state_dir):
    ns = PrivateNamespace()
    try:
        yield ns
    finally:
        from ansible_collections.chaosfleet.stress.plugins.module_utils._experiment import Experiment
        from ansible_collections.chaosfleet.stress.plugins.module_utils._state import list_experiments

        for name in list_experiments(state_dir):
            Experiment(state_dir, name).stop()
        ns.remove()


def pid_memory_cgroup(pid):
    with open("/proc/%d/cgroup" % pid) as handle:
        return [line.split(":", 2)[2] for line in handle.read().splitlines() if ":memory:" in line][0]


def test_the_namespace_is_private(lab, private_ns):
    app = lab_container(lab, "hello")
    inside = private_ns.run(["cat", "/proc/self/cgroup", "/proc/%d/cgroup" % app["pid"]]).stdout.splitlines()
    memory = [line.split(":", 2)[2] for line in inside if ":memory:" in line]
    assert memory[0] == "/"
    assert memory[1].startswith("/../") and memory[1].endswith(app["cgroup_path"])


def test_modules_enter_the_hosts_namespace_and_land_the_stress_in_the_pod(lab, private_ns, state_dir):
    app = lab_container(lab, "hello")
    for selector in ({"container_id": app["id"]}, {"pid": app["pid"]}):
        good, info = private_ns.module("cgroup_info", selector)
        assert good, info.get("msg", info)
        assert info["mounts"]["cgroup_namespace"] == "entered-host"
        assert info["cgroups"][0]["path"] == app["cgroup_path"]
    baseline = working_set(app["cgroup_path"])
    name = "cgroupns-" + secrets.token_hex(2)
    good, started = private_ns.module("stressor", {"name": name, "container_id": app["id"], "state_dir": state_dir,
                                                   "memory": {"size": "32Mi"}, "duration": "30s"})
    assert good and started["status"] == "running", started.get("msg", started)
    # From the host's cgroup files: stress-ng is in the pod's cgroup, the pod's working set rose by the size.
    stressors = wait_for(lambda: stress_pids(app["cgroup_path"]), 10)
    assert stressors and all(pid_memory_cgroup(pid) == app["cgroup_path"] for pid in stressors)
    assert wait_for(lambda: working_set(app["cgroup_path"]) - baseline >= STRESS - 2 * MiB, 20), \
        "working set rose %.1f MiB" % ((working_set(app["cgroup_path"]) - baseline) / MiB)
    # The supervisor stayed in the cgroup it was started in, but in the host's cgroup namespace (inherited).
    supervisor = started["supervisor_pid"]
    assert supervisor in procs(private_ns.dir)
    assert ns_inode(supervisor) == ns_inode("self")
    good, stopped = private_ns.module("stressor", {"name": name, "state": "absent", "state_dir": state_dir})
    assert good and stopped["status"] == "stopped", stopped.get("msg", stopped)
    assert wait_for(lambda: not stress_pids(app["cgroup_path"])
                    and working_set(app["cgroup_path"]) < baseline + 8 * MiB, 15)
    assert wait_for(lambda: not procs(private_ns.dir), 10)


def test_without_setns_modules_refuse_with_the_cause_and_start_nothing(lab, private_ns, state_dir):
    app = lab_container(lab, "hello")
    name = "cgroupns-" + secrets.token_hex(2)
    for module, args in (("cgroup_info", {"container_id": app["id"]}), ("cgroup_info", {"pid": app["pid"]}),
                         ("stressor", {"name": name, "container_id": app["id"], "state_dir": state_dir,
                                       "memory": {"size": "32Mi"}, "duration": "30s"})):
        good, result = private_ns.module(module, args, drop_sys_admin=True)
        assert not good, result
        message = result["msg"]
        assert "private cgroup namespace" in message and "Operation not permitted" in message, message
        assert "privileged and with hostPID" in message and "host's cgroup namespace" in message, message
    assert stress_pids(app["cgroup_path"]) == []
    assert not os.path.exists(os.path.join(state_dir, "experiments", name))
    assert procs(private_ns.dir) == []


# ------------------------------------------------------------------ cgroup v2 with nsdelegate, in the VM

# In the guest: make the cgroup and the interpreter Ansible uses, python3 in a private cgroup namespace rooted there.
GUEST_SETUP = r"""
import os, sys
cgroup, wrapper = sys.argv[1], sys.argv[2]
os.mkdir(cgroup)
with open(cgroup + "/memory.max", "w") as handle:
    handle.write(sys.argv[3])
os.mkdir(os.path.dirname(wrapper))
with open(wrapper, "w") as handle:
    handle.write("#!/bin/sh\necho $$ > %s/cgroup.procs || exit 97\n"
                 "exec /usr/bin/unshare --cgroup -- /usr/bin/python3 \"$@\"\n" % cgroup)
os.chmod(wrapper, 0o755)
"""
# In the guest: stop what is left in the cgroup (all started by the test), then remove it and the wrapper.
GUEST_TEARDOWN = r"""
import os, shutil, signal, sys, time
cgroup, wrapper = sys.argv[1], sys.argv[2]
deadline = time.time() + 15
while os.path.isdir(cgroup):
    pids = [int(p) for p in open(cgroup + "/cgroup.procs").read().split()]
    if not pids or time.time() > deadline:
        break
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    time.sleep(0.2)
if os.path.isdir(cgroup):
    os.rmdir(cgroup)
shutil.rmtree(os.path.dirname(wrapper), ignore_errors=True)
print("clean")
"""
# In the guest: the working set of a cgroup and the comm of each of its processes.
GUEST_READ = r"""
import json, sys
base = "/sys/fs/cgroup" + sys.argv[1]
stat = dict(line.split() for line in open(base + "/memory.stat"))
comms = {}
for pid in open(base + "/cgroup.procs").read().split():
    try:
        comms[pid] = open("/proc/%s/comm" % pid).read().strip()
    except OSError:
        pass
print(json.dumps({"working_set": int(open(base + "/memory.current").read()) - int(stat["inactive_file"]),
                  "comms": comms}))
"""
# Run through the wrapper: try to join a cgroup the way the supervisor does, print the errno (0: it joined).
GUEST_JOIN = r"""
import sys
try:
    with open("/sys/fs/cgroup" + sys.argv[1] + "/cgroup.procs", "w") as handle:
        handle.write("0")
    print(0)
except OSError as exc:
    print(exc.errno)
"""


def guest_read(vm, path):
    return json.loads(vm_ssh(vm, GUEST_PYTHON, "-c", GUEST_READ, path).stdout)


def guest_stressors(vm, path):
    return [pid for pid, comm in guest_read(vm, path)["comms"].items() if comm.startswith("stress-ng")]


def test_v2_nsdelegate_stress_from_a_private_namespace_lands_in_the_pod(vm_node, tmp_path):
    app = vm_lab_container(vm_node, "hello")
    token = secrets.token_hex(3)
    cgroup, wrapper = "/sys/fs/cgroup/cflab-ns-" + token, "/run/cflab-ns-%s/python3" % token
    state_dir = "/run/cflab-state-" + token
    host = "cfvm_ns"
    private = write_inventory(tmp_path / "private.json", {host: dict(
        vm_node["hostvars"], ansible_python_interpreter=wrapper)})
    plain = write_inventory(tmp_path / "plain.json", {host: vm_node["hostvars"]})
    name = "cgroupns-v2-" + token
    vm_ssh(vm_node, GUEST_PYTHON, "-c", GUEST_SETUP, cgroup, wrapper, str(512 * MiB))
    try:
        # The case the fix removes: from the private namespace the kernel refuses the pod's cgroup (nsdelegate).
        assert vm_ssh(vm_node, wrapper, "-c", GUEST_JOIN, app["cgroup_path"]).stdout.split() == ["2"]
        rc, hosts, raw = run_ansible_module(private, host, "chaosfleet.stress.cgroup_info", {"container_id": app["id"]})
        assert rc == 0, raw
        assert hosts[host]["mounts"]["cgroup_namespace"] == "entered-host"
        assert hosts[host]["cgroups"][0]["path"] == app["cgroup_path"]
        baseline = guest_read(vm_node, app["cgroup_path"])["working_set"]
        rc, hosts, raw = run_ansible_module(private, host, "chaosfleet.stress.stressor", {
            "name": name, "container_id": app["id"], "state_dir": state_dir, "memory": {"size": "32Mi"},
            "duration": "5m", "heartbeat_timeout": "off"})  # a slow guest must not end it on the dead-man
        assert rc == 0 and hosts[host]["status"] == "running", raw
        # From the guest's own (host namespace) cgroup files: the stress is in the pod, its memory rose.
        assert wait_for(lambda: guest_stressors(vm_node, app["cgroup_path"]), 30, interval=1), \
            guest_read(vm_node, app["cgroup_path"])
        assert wait_for(lambda: guest_read(vm_node, app["cgroup_path"])["working_set"] - baseline
                        >= STRESS - 2 * MiB, 60, interval=2), \
            "working set rose %.1f MiB" % ((guest_read(vm_node, app["cgroup_path"])["working_set"] - baseline) / MiB)
        supervisor = hosts[host]["supervisor_pid"]
        assert str(supervisor) in vm_ssh(vm_node, "cat", cgroup + "/cgroup.procs").stdout.split()
    finally:
        rc, hosts, raw = run_ansible_module(plain, host, "chaosfleet.stress.stressor",
                                            {"name": name, "state": "absent", "state_dir": state_dir})
        vm_ssh(vm_node, "rm", "-rf", state_dir, check=False)
        cleaned = vm_ssh(vm_node, GUEST_PYTHON, "-c", GUEST_TEARDOWN, cgroup, wrapper, check=False)
    assert rc == 0 and hosts[host]["status"] in ("stopped", "finished"), raw
    assert guest_stressors(vm_node, app["cgroup_path"]) == []
    assert cleaned.stdout.split() == ["clean"], cleaned.stderr
