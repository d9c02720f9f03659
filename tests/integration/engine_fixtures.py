"""pytest fixtures for real container engines as lab targets (tests/lab/engines.py).

- ``docker_engine`` / ``podman_engine`` (session): one daemon (Docker) or one storage (Podman) per test
  session with one busybox container (300 MiB; Docker also 1 core); yield the engine lab's state dict.
  Taken down at the end, pass or fail, and so is a half-started one.
- ``create_engine(engine, *args)`` / ``destroy_engine(prefix)``: the same for the benchmark.
- ``engine_container(state)``: the container dict (id, cgroup_path, runtime).
- ``engine_exec(state, *argv)``: run a command inside the container through the engine's own CLI.
"""

import json
import os
import secrets
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ENGINES_SCRIPT = Path(__file__).resolve().parents[1] / "lab" / "engines.py"
STATE_DIR = Path(__file__).resolve().parents[2] / ".lab"
BINARIES = {"docker": ("/usr/sbin/dockerd", "/usr/bin/docker"), "podman": ("/usr/bin/podman", "/usr/bin/conmon")}


def engine_unavailable(engine):
    """Why the engine cannot run here, or None."""
    if os.geteuid() != 0:
        return "the engine lab needs root"
    for binary in BINARIES[engine]:
        if not os.access(binary, os.X_OK):
            return "%s is missing (scripts/setup.sh installs docker.io and podman)" % binary
    if not shutil.which("runc"):
        return "runc is not installed"
    if not os.path.isdir("/sys/fs/cgroup/memory"):
        return "no cgroup v1 memory hierarchy"
    return None


def run_engines(*args, timeout=180):
    result = subprocess.run([sys.executable, str(ENGINES_SCRIPT)] + list(args), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, universal_newlines=True, timeout=timeout)
    if result.returncode != 0:
        raise RuntimeError("engines.py %s failed (rc %d): %s" % (" ".join(args), result.returncode,
                                                                 result.stderr.strip()))
    return result


def new_engine_prefix(engine):
    return "cfdock-%s-%s" % (engine, secrets.token_hex(3))


def create_engine(engine, prefix=None, *extra_args):
    """Start an engine lab and return its state; engines.py takes a half-started one down itself."""
    prefix = prefix or new_engine_prefix(engine)
    result = run_engines("up", "--engine", engine, "--prefix", prefix, "--state-dir", str(STATE_DIR), *extra_args)
    return json.loads(Path(result.stdout.strip()).read_text())


def destroy_engine(prefix):
    run_engines("down", "--prefix", prefix, "--state-dir", str(STATE_DIR))


def engine_container(state):
    return state["containers"][0]


def engine_exec(state, *argv):
    """Run argv in the container with the engine's CLI; returns stdout."""
    sys.path.insert(0, str(ENGINES_SCRIPT.parent))
    import engines  # noqa: E402  (tests/lab is not a package)

    cli = engines.engine_cli(state["engine"], state["prefix"])
    result = subprocess.run(cli + ["exec", engine_container(state)["id"]] + list(argv), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, universal_newlines=True, timeout=60, check=True)
    return result.stdout


def _engine_fixture(engine, *extra_args):
    reason = engine_unavailable(engine)
    if reason:
        pytest.skip(reason)
    prefix = new_engine_prefix(engine)
    try:
        yield create_engine(engine, prefix, *extra_args)
    finally:
        destroy_engine(prefix)


@pytest.fixture(scope="session")
def docker_engine():
    yield from _engine_fixture("docker", "--cpus", "1")


@pytest.fixture(scope="session")
def podman_engine():
    yield from _engine_fixture("podman")
