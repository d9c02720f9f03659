"""Real Docker and Podman containers as targets: found by ID, and the stress lands inside them.

Each engine starts once per session (engine_fixtures.py). Effects are read from the container's cgroup
every 100 ms, and the stress processes' placement from /proc/<pid>/cgroup and the engine's own `ps`.
"""

import os
import signal
import subprocess
from pathlib import Path

import pytest

from tests.integration.ansible_helpers import cgroup_pids, ok, read_int, stress_pids, wait_for, working_set
from tests.integration.engine_fixtures import (
    STATE_DIR, create_engine, destroy_engine, engine_container, engine_exec, engine_unavailable, new_engine_prefix,
)
from tests.integration.fidelity import memory_case, overshoot_allowed, steady_allowed

pytestmark = [pytest.mark.lab, pytest.mark.slow]
MI = 1024 * 1024
ENGINES = ("docker", "podman")


def engine(request, name):
    return request.getfixturevalue(name + "_engine")


def v1_cgroups_of(pid, skip=()):
    """{controllers: path} of the v1 hierarchies in /proc/<pid>/cgroup (not the cgroup2 line, nor `skip`)."""
    out = {}
    for line in Path("/proc/%d/cgroup" % pid).read_text().splitlines():
        hierarchy, controllers, path = line.split(":", 2)
        if hierarchy != "0" and controllers not in skip:
            out[controllers] = path
    return out


# The stressor joins the resource hierarchies; device rules and systemd's bookkeeping are not resources.
NOT_RESOURCES = ("devices", "name=systemd")


FORMS = [
    ("scheme", lambda runtime, cid: "%s://%s" % (runtime, cid)),
    ("bare 64-hex", lambda runtime, cid: cid),
    ("12-char prefix", lambda runtime, cid: cid[:12].upper()),
]


@pytest.mark.parametrize("runtime", ENGINES)
@pytest.mark.parametrize("form, selector", FORMS, ids=[f[0] for f in FORMS])
def test_cgroup_info_finds_the_container_by_id(request, runtime, form, selector):
    state = engine(request, runtime)
    container = engine_container(state)
    result = ok("cgroup_info", {"container_id": selector(runtime, container["id"])}, check_mode=True)
    assert result["changed"] is False
    [found] = result["cgroups"]
    assert found["container_id"] == container["id"]
    assert found["runtime"] == runtime and found["kind"] == "container"
    # The engine put its container's init there, and set the limit it was given (300m).
    init_pids = [p["pid"] for p in found["processes"]]
    assert init_pids and all(set(v1_cgroups_of(pid).values()) == {found["path"]} for pid in init_pids)
    assert found["path"] == container["cgroup_path"]
    assert found["memory"]["limit_bytes"] == 300 * MI == read_int("memory", found["path"], "memory.limit_in_bytes")


@pytest.mark.parametrize("runtime, memory", [
    ("docker", {"size": "268Mi"}),                 # the limit minus 32 MiB, 1-core quota
    ("podman", {"size": "100Mi", "workers": 4}),   # no CPU quota
], ids=ENGINES)
@pytest.mark.serial
def test_memory_stress_lands_inside_and_is_sized(request, state_dir, runtime, memory):
    state = engine(request, runtime)
    container = engine_container(state)
    path = container["cgroup_path"]
    placed = {}

    def inspect():
        placed["cgroups"] = [v1_cgroups_of(pid, skip=NOT_RESOURCES) for pid in stress_pids(path)]
        placed["ps"] = engine_exec(state, "/bin/ps")

    got = memory_case(state_dir, container, memory, inspect=inspect)
    want = got["request_bytes"]
    figures = "steady %+.1f MiB, peak %+.1f MiB, side CPU %.3f cores for %.1f MiB, %d OOM kills" % (
        got["steady_bytes"] / MI, got["peak_bytes"] / MI, got["side_cpu_cores"], want / MI, got["oom_kills"])
    assert want == int(memory["size"][:-2]) * MI
    assert got["held"], "the experiment never reached its hold phase: " + figures
    # Every stress process sits in the container's cgroup in every resource hierarchy, in its PID namespace.
    assert placed["cgroups"] and all(set(c.values()) == {path} and "memory" in c for c in placed["cgroups"])
    assert "stress-ng" in placed["ps"]
    # The goals: steady within 1 %, no sample above the request plus max(1 %, 2 MiB), no side CPU, no OOM.
    assert abs(got["steady_bytes"] - want) <= steady_allowed(want), figures
    assert got["peak_bytes"] <= want + overshoot_allowed(want), figures
    assert got["side_cpu_cores"] <= 0.02, figures
    assert got["oom_kills"] == 0, figures
    assert wait_for(lambda: not stress_pids(path) and working_set(path) < got["baseline_bytes"] + 8 * MI, 15)


def leftovers(state):
    """What of an engine lab still exists: processes naming its run dir, its cgroups, its dirs and state file."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and state["run_dir"].encode() in (entry / "cmdline").read_bytes():
                found.append("pid %s" % entry.name)
        except OSError:
            pass
    paths = [state["daemon_cgroup"]] + [c["cgroup_path"] for c in state["containers"]]
    found += [p for p in paths if Path("/sys/fs/cgroup/memory" + p).exists()]
    found += [p for p in (state["run_dir"], str(STATE_DIR / (state["prefix"] + ".json"))) if Path(p).exists()]
    listed = subprocess.run(["runc", "list", "-q"], stdout=subprocess.PIPE, universal_newlines=True).stdout.split()
    found += ["runc container %s" % c["id"] for c in state["containers"] if c["id"] in listed]
    return found


def test_down_after_the_daemon_died_leaves_nothing():
    """A crashed dockerd leaves its shim and container running; down still removes every part of the lab."""
    if engine_unavailable("docker"):
        pytest.skip(engine_unavailable("docker"))
    state = create_engine("docker")
    try:
        container = engine_container(state)
        assert cgroup_pids(container["cgroup_path"])
        os.kill(int(Path(state["pidfile"]).read_text()), signal.SIGKILL)
        assert wait_for(lambda: not Path("/proc/%d" % state["daemon_pid"]).exists(), 10)
        assert cgroup_pids(container["cgroup_path"]), "the container should outlive its daemon"
    finally:
        destroy_engine(state["prefix"])
    assert leftovers(state) == []


def test_down_after_podman_lost_its_database_leaves_nothing():
    """A podman killed mid-run can lose track of its container; runc's own record of it goes too."""
    if engine_unavailable("podman"):
        pytest.skip(engine_unavailable("podman"))
    state = create_engine("podman")
    try:
        os.rename(state["run_dir"] + "/podman/root/libpod", state["run_dir"] + "/podman/root/libpod.lost")
    finally:
        destroy_engine(state["prefix"])
    assert leftovers(state) == []


def test_a_failed_up_takes_itself_down():
    if engine_unavailable("podman"):
        pytest.skip(engine_unavailable("podman"))
    prefix = new_engine_prefix("podman")
    with pytest.raises(RuntimeError, match="podman"):
        create_engine("podman", prefix, "--memory", "not-a-size")
    state = {"prefix": prefix, "run_dir": "/run/" + prefix, "daemon_cgroup": "/" + prefix, "containers": []}
    assert leftovers(state) == []
