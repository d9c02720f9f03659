"""pytest fixtures for the node agent lab (tests/lab/agents.py).

- ``agent_lab`` (session): one private dockerd with the agent image for the whole session (the image's root
  filesystem is built from agent/packages.txt once per machine). Yields the ``agents.AgentLab``:
  ``.socket``, ``.image``, ``.docker`` (the CLI argv prefix), ``.prefix``,
  ``.start(node, cgroupns="host")`` -> agent dict (``id``, ``name``, ``pod_name``, ``cgroup_path``,
  ``state_dir``, ...), ``.stop(node)``, ``.agents``, ``.exec_argv(node)``,
  ``.exec_backend(namespace, pod, container)`` (the API double's), ``.pod(node)`` (the agent's Pod object).
  Taken down at the end of the session, pass or fail, and so is a half-started one.
- ``agents_for_test(agent_lab)``: the same lab; every agent a test started is removed after it.
- ``agent_cluster(agent_lab, nodes, cgroupns)``: a context manager yielding ``(api, controller)``: a started
  ApiDouble whose pods/exec runs in the lab's agents and whose DaemonSet controller
  (``agents.DaemonSetController``: ``settle()``, ``delete_agent(node)``, ``restart_agent(node)``) starts them.
  On exit the controller removes its agents and pods and the double stops.
- ``agent_exec(agent_lab, node, *argv)``: run argv in the node's agent; returns the CompletedProcess.
"""

import contextlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.engine_fixtures import engine_unavailable

LAB_DIR = Path(__file__).resolve().parents[1] / "lab"
STATE_DIR = Path(__file__).resolve().parents[2] / ".lab"
sys.path.insert(0, str(LAB_DIR))

import agents  # noqa: E402  (tests/lab is not a package)


def agent_lab_unavailable():
    """Why the agent lab cannot run here, or None."""
    reason = engine_unavailable("docker")
    if reason:
        return reason
    if not os.access(agents.MMDEBSTRAP, os.X_OK) and not agents.rootfs_tar_path(STATE_DIR).is_file():
        return "mmdebstrap is missing (scripts/setup.sh installs it)"
    return None


def agent_exec(agent_lab, node, *argv, stdin=None, timeout=60, check=True):
    return subprocess.run(agent_lab.exec_argv(node) + list(argv), input=stdin, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, universal_newlines=True, timeout=timeout, check=check)


@pytest.fixture(scope="session")
def agent_lab():
    reason = agent_lab_unavailable()
    if reason:
        pytest.skip(reason)
    lab = agents.AgentLab(agents.new_prefix(), STATE_DIR)
    try:
        yield lab.up()
    finally:
        agents.down(lab.prefix, STATE_DIR)


@pytest.fixture
def agents_for_test(agent_lab):
    try:
        yield agent_lab
    finally:
        agent_lab.stop_all()


@contextlib.contextmanager
def agent_cluster(agent_lab, nodes=("node-1",), cgroupns="host", objects=None):
    """An API double wired to the lab: exec into agents, and a DaemonSet controller that starts them."""
    from tests.k8s_double import ApiDouble, make_node

    objects = objects or {"pods": [], "nodes": [make_node(node, "127.0.0.1") for node in nodes]}
    api = ApiDouble(objects, exec_backend=agent_lab.exec_backend)
    controller = agents.DaemonSetController(agent_lab, api, nodes, cgroupns)
    api.daemonset_controller = controller
    api.start()
    try:
        yield api, controller
    finally:
        try:
            controller.close()
        finally:
            api.stop()
            agent_lab.stop_all()


def kubectl():
    """The real kubectl on the PATH (1.32 on these machines), or None."""
    return shutil.which("kubectl")
