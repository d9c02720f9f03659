"""pytest fixtures and helpers for the lab of real runc containers (tests/lab/lab.py).

Register it as a plugin (``pytest_plugins = ["tests.integration.lab_fixtures"]`` in
tests/conftest.py) or import the fixtures into a conftest, as tests/integration/conftest.py does.
The ``lab`` marker is registered in pytest.ini.

- ``lab``: one lab per test session; yields its state dict, destroyed at the end.
- ``lab_factory``: builds extra labs inside one test; all destroyed after it.
- ``lab_container(lab, pod)``, ``lab_pod(lab, pod)``, ``restart_pod(lab, pod)``,
  ``cgroup_dir(controller, path)``, ``read_cgroup(controller, path, file)``.
"""

import json
import os
import secrets
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

LAB_SCRIPT = Path(__file__).resolve().parents[1] / "lab" / "lab.py"
STATE_DIR = Path(__file__).resolve().parents[2] / ".lab"


def lab_unavailable():
    """Why the lab cannot run here, or None."""
    if os.geteuid() != 0:
        return "the lab needs root"
    if not shutil.which("runc"):
        return "runc is not installed"
    if cgroup_dir("memory", "/") is None:
        return "no cgroup v1 memory hierarchy"
    return None


def new_prefix():
    return "cflab-" + secrets.token_hex(3)


def run_lab(*args, check=True, timeout=120):
    result = subprocess.run([sys.executable, str(LAB_SCRIPT)] + list(args),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            universal_newlines=True, timeout=timeout)
    if check and result.returncode != 0:
        raise RuntimeError("lab.py %s failed (rc %d): %s" % (
            " ".join(args), result.returncode, result.stderr.strip()))
    return result


def create_lab(prefix=None, *extra_args):
    """Build a lab and return its state dict; lab.py removes a half-built one itself."""
    prefix = prefix or new_prefix()
    result = run_lab("create", "--prefix", prefix, "--state-dir", str(STATE_DIR), *extra_args)
    return json.loads(Path(result.stdout.strip()).read_text())


def destroy_lab(prefix):
    run_lab("destroy", "--prefix", prefix, "--state-dir", str(STATE_DIR))


def read_state(prefix):
    return json.loads((STATE_DIR / (prefix + ".json")).read_text())


def lab_pod(lab, pod_name):
    for pod in lab["pods"]:
        if pod["name"] == pod_name:
            return pod
    raise KeyError("lab %s has no pod %r" % (lab["prefix"], pod_name))


def lab_container(lab, pod_name):
    """The app (non-sandbox) container dict of a pod."""
    return next(c for c in lab_pod(lab, pod_name)["containers"] if not c["sandbox"])


def restart_pod(lab, pod_name):
    """Kill the pod's app container and start a new one (new container ID).

    Updates ``lab`` in place and returns the new container dict.
    """
    run_lab("restart", "--prefix", lab["prefix"], "--pod", pod_name,
            "--state-dir", str(STATE_DIR))
    fresh = read_state(lab["prefix"])
    lab.clear()
    lab.update(fresh)
    return lab_container(lab, pod_name)


def cgroup_dir(controller, cgroup_path):
    """Host directory of cgroup_path in the v1 hierarchy holding controller.

    controller "unified" means the cgroup2 mount. Read from mountinfo on each call,
    independently of lab.py, so tests check the kernel and not the tool.
    """
    with open("/proc/self/mountinfo") as handle:
        for line in handle:
            left, _, right = line.partition(" - ")
            fields, kinds = left.split(), right.split()
            if len(kinds) < 3 or kinds[0] not in ("cgroup", "cgroup2"):
                continue
            if kinds[0] == "cgroup2":
                matches = controller == "unified"
            else:
                matches = controller in kinds[2].split(",")
            if matches and fields[3] == "/":
                return fields[4].rstrip("/") + cgroup_path
    return None


def read_cgroup(controller, cgroup_path, filename):
    with open(os.path.join(cgroup_dir(controller, cgroup_path), filename)) as handle:
        return handle.read().strip()


def cgroup_mountpoints():
    """Mountpoints of every cgroup hierarchy (v1 and v2)."""
    points = []
    with open("/proc/self/mountinfo") as handle:
        for line in handle:
            left, _, right = line.partition(" - ")
            if right.split()[:1] in (["cgroup"], ["cgroup2"]) and left.split()[3] == "/":
                points.append(left.split()[4])
    return points


@pytest.fixture(scope="session")
def lab():
    reason = lab_unavailable()
    if reason:
        pytest.skip(reason)
    prefix = new_prefix()
    try:
        yield create_lab(prefix)
    finally:
        destroy_lab(prefix)


@pytest.fixture
def lab_factory():
    """Callable building extra labs (same arguments as create_lab); destroyed after the test."""
    reason = lab_unavailable()
    if reason:
        pytest.skip(reason)
    prefixes = []

    def build(prefix=None, *extra_args):
        prefix = prefix or new_prefix()
        prefixes.append(prefix)
        return create_lab(prefix, *extra_args)

    build.prefixes = prefixes
    try:
        yield build
    finally:
        for prefix in prefixes:
            destroy_lab(prefix)
