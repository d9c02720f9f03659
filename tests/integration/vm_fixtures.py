"""pytest fixtures and helpers for the cgroup v2 VM lab node (tests/vm/vm.py).

Import the fixtures into a conftest (``from tests.integration.vm_fixtures import vm_node``)
or register this module as a plugin.

- ``vm_node`` (session): boots one VM per test session, builds its runc lab in v2 mode,
  yields ``{name, ssh_port, key, lab, hostvars, summary}``; always powered off at the end. Under
  scripts/test.sh it is the one VM the script booted for all its passes (CHAOSFLEET_TEST_VM).
- ``vm_hostvars(summary)``: the Ansible host variables that reach the VM over SSH.
- ``write_inventory(path, hosts)``: a YAML inventory from {host: hostvars}.
- ``run_ansible_module(inventory, pattern, module, args)``: ``ansible`` ad hoc from the
  repo root (so ansible.cfg applies), results parsed per host from the json callback.
- ``vm_ssh(vm, *command)``: run a command in the guest through ``vm.py ssh``.
"""

import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.integration.shared import adopted, shared

REPO = Path(__file__).resolve().parents[2]
VM_SCRIPT = REPO / "tests" / "vm" / "vm.py"
ANSIBLE = REPO / ".venv" / "bin" / "ansible"
GUEST_PYTHON = "/usr/bin/python3"
# One TCG boot takes about 30 s here; the margin covers a loaded 2-core CI machine.
BOOT_TIMEOUT = 150
# The `vm.py up` summary (JSON file) of a VM booted for the whole run by scripts/test.sh.
SHARED_VM_ENV = "CHAOSFLEET_TEST_VM"


def vm_unavailable():
    """Why the VM cannot boot here, or None."""
    if os.geteuid() != 0:
        return "the VM needs root"
    if not shutil.which("qemu-system-x86_64"):
        return "qemu-system-x86_64 is missing (apt-get install qemu-system-x86)"
    if not any(Path("/boot").glob("vmlinuz-*")):
        return "no kernel in /boot (apt-get install linux-image-amd64)"
    for tool in ("cpio", "ssh", "ssh-keygen"):
        if not shutil.which(tool):
            return "%s is missing" % tool
    return None


def new_vm_name():
    return "cfvm-" + secrets.token_hex(3)


def run_vm(*args, check=True, timeout=60):
    result = subprocess.run([sys.executable, str(VM_SCRIPT)] + list(args),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            universal_newlines=True, timeout=timeout, check=False)
    if check and result.returncode != 0:
        raise RuntimeError("vm.py %s failed (rc %d):\n%s" % (
            " ".join(args), result.returncode, result.stderr.strip()))
    return result


def vm_hostvars(summary):
    """Ansible host variables for the VM described by `vm.py up`'s summary."""
    return {
        "ansible_host": "127.0.0.1",
        "ansible_port": summary["ssh_port"],
        "ansible_user": "root",
        "ansible_ssh_private_key_file": summary["key"],
        "ansible_python_interpreter": GUEST_PYTHON,
        "ansible_ssh_common_args": "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null",
    }


def write_inventory(path, hosts):
    """Write an inventory of {host name: hostvars}; JSON is valid YAML, so no yaml import."""
    path = Path(path)
    path.write_text(json.dumps({"all": {"hosts": hosts}}, indent=2) + "\n")
    return path


def run_ansible_module(inventory, pattern, module, args, timeout=300, extra_env=None):
    """Run one module ad hoc; returns (rc, {host: result dict}, raw stdout+stderr).

    Results come from the tree callback (one JSON file per host), so the stdout format in
    ansible.cfg does not matter.
    """
    tree = Path(tempfile.mkdtemp(prefix="cfvm-ansible-"))
    env = dict(os.environ)
    env.update({"ANSIBLE_LOAD_CALLBACK_PLUGINS": "1", "ANSIBLE_CALLBACKS_ENABLED": "ansible.builtin.tree",
                "ANSIBLE_CALLBACK_TREE_DIR": str(tree),
                "PATH": "%s:%s" % (ANSIBLE.parent, env.get("PATH", ""))})
    env.update(extra_env or {})
    try:
        result = subprocess.run(
            [str(ANSIBLE), pattern, "-i", str(inventory), "-m", module, "-a", json.dumps(args)],
            cwd=str(REPO), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            universal_newlines=True, timeout=timeout, check=False)
        hosts = {entry.name: json.loads(entry.read_text()) for entry in tree.iterdir()}
    finally:
        shutil.rmtree(str(tree), ignore_errors=True)
    raw = result.stdout + result.stderr
    if not hosts:
        raise AssertionError("ansible wrote no result (rc %d):\n%s" % (result.returncode, raw))
    return result.returncode, hosts, raw


def run_ansible_tasks(inventory, tasks, pattern="all", timeout=600, extra_env=None):
    """Run tasks in one play (one SSH connection per host); returns (rc, {host: {register: result}}, raw).

    Every task that should be returned needs a ``register`` name; a last task writes them
    per host to a file on the controller.
    """
    names = [task["register"] for task in tasks if "register" in task]
    out = Path(tempfile.mkdtemp(prefix="cfvm-play-"))
    content = "{{ {%s} | to_json }}" % ", ".join("'%s': %s" % (n, n) for n in names)
    play = [{"hosts": pattern, "gather_facts": False, "tasks": list(tasks) + [{
        "name": "Save the registered results on the controller",
        "ansible.builtin.copy": {"content": content, "dest": "%s/{{ inventory_hostname }}.json" % out},
        "delegate_to": "localhost"}]}]
    env = dict(os.environ)
    env.update({"PATH": "%s:%s" % (ANSIBLE.parent, env.get("PATH", ""))})
    env.update(extra_env or {})
    try:
        (out / "play.json").write_text(json.dumps(play))
        result = subprocess.run(
            [str(ANSIBLE) + "-playbook", "-i", str(inventory), str(out / "play.json")],
            cwd=str(REPO), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            universal_newlines=True, timeout=timeout, check=False)
        hosts = {entry.name[:-len(".json")]: json.loads(entry.read_text())
                 for entry in out.iterdir() if entry.name != "play.json"}
    finally:
        shutil.rmtree(str(out), ignore_errors=True)
    return result.returncode, hosts, result.stdout + result.stderr


def vm_ssh(vm, *command, timeout=60, check=True):
    result = run_vm("ssh", "--name", vm["name"], "--", *command, check=False, timeout=timeout)
    if check and result.returncode != 0:
        raise RuntimeError("in %s, %s failed (rc %d): %s%s" % (
            vm["name"], " ".join(command), result.returncode, result.stdout, result.stderr))
    return result


def vm_lab_container(vm, pod_name):
    """The app (non-sandbox) container dict of a pod of the guest lab."""
    pod = next(p for p in vm["lab"]["pods"] if p["name"] == pod_name)
    return next(c for c in pod["containers"] if not c["sandbox"])


def vm_lab_pod(vm, pod_name):
    return next(p for p in vm["lab"]["pods"] if p["name"] == pod_name)


GUEST_LAB_STATE_DIR = "/run/cfvm-lab"


def vm_lab_hostvars(vm):
    """Lab facts for a play, in the same variable names as tests/lab/fleet.py's inventory."""
    pods = {}
    for pod in vm["lab"]["pods"]:
        app = next(c for c in pod["containers"] if not c["sandbox"])
        pods[pod["name"]] = {
            "pod_uid": pod["uid"], "container_id": app["id"], "runtime_id": app["runtime_id"],
            "cgroup_path": app["cgroup_path"], "http_port": app["http_port"],
            "memory_limit_bytes": app["memory_limit_bytes"], "qos_class": pod["qos_class"],
        }
    return {"fleet_lab_prefix": vm["lab"]["prefix"], "fleet_lab_state_dir": GUEST_LAB_STATE_DIR,
            "fleet_pods": pods, "fleet_repo": str(REPO)}


def vm_refresh_lab(vm):
    """Re-read the guest lab state into vm["lab"] (in place) and return it."""
    path = "%s/%s.json" % (GUEST_LAB_STATE_DIR, vm["lab"]["prefix"])
    fresh = json.loads(vm_ssh(vm, "cat", path).stdout)
    vm["lab"].clear()
    vm["lab"].update(fresh)
    return vm["lab"]


def vm_restart_pod(vm, pod_name):
    """`lab.py restart` in the guest (new app container ID); returns the new container dict."""
    vm_ssh(vm, GUEST_PYTHON, str(REPO / "tests" / "lab" / "lab.py"), "restart",
           "--prefix", vm["lab"]["prefix"], "--pod", pod_name, "--state-dir", GUEST_LAB_STATE_DIR,
           timeout=120)
    vm_refresh_lab(vm)
    return vm_lab_container(vm, pod_name)


def qemu_alive(state):
    """True while the qemu process recorded in a vm.py state dict still runs."""
    try:
        with open("/proc/%d/stat" % state["pid"]) as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError, TypeError, KeyError):
        return False
    return fields[0] not in ("Z", "X") and int(fields[19]) == state.get("start_time")


def vm_from_summary(name, summary):
    return {"name": name, "ssh_port": summary["ssh_port"], "key": summary["key"],
            "lab": summary["lab"], "hostvars": vm_hostvars(summary), "summary": summary}


@pytest.fixture(scope="session")
def vm_node():
    """One VM per test process however many modules import this fixture (tests/integration/shared.py), or
    the one scripts/test.sh booted for all its passes (CHAOSFLEET_TEST_VM)."""
    yield from shared("vm_node", _vm_node)


def _vm_node():
    summary_path = adopted(SHARED_VM_ENV)
    if summary_path:
        summary = json.loads(Path(summary_path).read_text())
        vm = vm_from_summary(summary["name"], summary)
        vm_refresh_lab(vm)  # an earlier pass may have restarted a pod
        yield vm
        return
    reason = vm_unavailable()
    if reason:
        pytest.skip(reason)
    name = new_vm_name()
    try:
        result = run_vm("up", "--name", name, "--timeout", str(BOOT_TIMEOUT),
                        timeout=BOOT_TIMEOUT + 120)
        yield vm_from_summary(name, json.loads(result.stdout))
    finally:
        state_path = REPO / ".lab" / "vm" / (name + ".json")
        state = json.loads(state_path.read_text()) if state_path.exists() else {}
        down = run_vm("down", "--name", name, check=False)
        # Teardown fails loudly if the VM outlived `down`.
        left = [what for what, there in (
            ("qemu pid %s" % state.get("pid"), state and qemu_alive(state)),
            ("state file " + str(state_path), state_path.exists()),
            ("run dir", (REPO / ".lab" / "vm" / name).exists())) if there]
        if left:
            raise AssertionError("vm.py down left %s behind: %s%s" % (name, left, down.stderr))
