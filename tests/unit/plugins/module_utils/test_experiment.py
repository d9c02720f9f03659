"""_experiment.py with real processes standing in for the supervisor: start failures and early stops."""

import os
import signal
import subprocess
import sys
import textwrap

import pytest

from ansible_collections.chaosfleet.stress.plugins.module_utils import _experiment, _state as state
from ansible_collections.chaosfleet.stress.plugins.module_utils._experiment import Experiment, ExperimentError

# Stands in for `python -m ..._supervisor DIR`: starts a stress-like child in its own session, records it
# as the supervisor would, and never reports "running".
HANGING_SUPERVISOR = textwrap.dedent("""\
    #!%s
    import os, subprocess, sys, time
    sys.path[:0] = [os.environ["PYTHONPATH"]]
    from ansible_collections.chaosfleet.stress.plugins.module_utils import _state as state
    expdir = sys.argv[-1]
    child = subprocess.Popen(["sleep", "300"], start_new_session=True)
    state.write_json(os.path.join(expdir, "status.json"), {
        "state": "starting", "supervisor": state.pid_record(os.getpid()), "instances": [state.pid_record(child.pid)]})
    time.sleep(300)
""") % sys.executable


def gone(pid):
    try:
        with open("/proc/%d/stat" % pid) as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def test_a_start_that_fails_leaves_nothing_running(tmp_path, monkeypatch):
    monkeypatch.setattr(_experiment, "START_TIMEOUT", 3.0)
    fake = tmp_path / "python"
    fake.write_text(HANGING_SUPERVISOR)
    fake.chmod(0o700)
    experiment = Experiment(str(tmp_path / "state"), "hang")
    with pytest.raises(ExperimentError, match="did not start within 3s; everything it started was stopped"):
        experiment.start({"name": "hang", "plan": {}}, python=str(fake))
    status = experiment.status()
    supervisor, child = status["supervisor"]["pid"], status["instances"][0]["pid"]
    assert gone(supervisor) and gone(child)
    outcome = experiment.outcome()
    assert (outcome["status"], outcome["reason"], outcome["processes_left"]) == ("aborted", "start_failed", [])
    assert experiment.report()["status"] == "aborted"


def test_a_supervisor_that_dies_at_once_fails_the_start_quickly(tmp_path):
    fake = tmp_path / "python"
    fake.write_text("#!/bin/sh\nexit 3\n")
    fake.chmod(0o700)
    experiment = Experiment(str(tmp_path / "state"), "dies")
    with pytest.raises(ExperimentError, match=r"exited \(code 3\) before the stress started"):
        experiment.start({"name": "dies", "plan": {}}, python=str(fake))
    assert experiment.outcome()["reason"] == "start_failed"


def test_stop_before_the_first_status_finds_the_supervisor(tmp_path):
    """The starter's spawn-time record is all there is: the stop still finds and ends the supervisor."""
    experiment = Experiment(str(tmp_path / "state"), "early")
    state.ensure_root_dir(os.path.dirname(experiment.dir))
    os.mkdir(experiment.dir, 0o700)
    state.write_json(experiment.path(state.SPEC), {"name": "early"})
    supervisor = subprocess.Popen(["sleep", "300"], start_new_session=True)
    try:
        state.write_json(experiment.path(state.SUPERVISOR), state.pid_record(supervisor.pid))
        assert experiment.running()
        assert experiment.stop() is True
        assert supervisor.wait(timeout=5) == -signal.SIGTERM
        assert experiment.outcome()["status"] == "stopped"
        assert experiment.stop() is False
    finally:
        if supervisor.poll() is None:
            supervisor.kill()
            supervisor.wait()


def test_the_installed_supervisor_copy_holds_every_module_it_imports():
    """The supervisor runs from its own copy (install_supervisor): a module missing there kills it at start."""
    import ast
    from ansible_collections.chaosfleet.stress.plugins.module_utils import _experiment
    installed = {module.__name__.rsplit(".", 1)[1]: module for module in _experiment.SUPERVISOR_MODULES}
    needed, todo = set(), ["_supervisor"]
    while todo:
        name = todo.pop()
        needed.add(name)
        tree = ast.parse(installed[name].__loader__.get_source(installed[name].__name__)) if name in installed else None
        assert tree is not None, "the supervisor needs %s, which install_supervisor does not copy" % name
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(_experiment.PACKAGE):
                found = [node.module[len(_experiment.PACKAGE) + 1:]] if node.module != _experiment.PACKAGE else \
                    [alias.name for alias in node.names]
                todo += [n for n in found if n not in needed]
    assert needed == set(installed), sorted(set(installed) ^ needed)


def test_the_installed_supervisor_copy_is_compiled_once(tmp_path):
    """Each supervisor starts without writing bytecode: the copy carries its own, valid for its sources."""
    import importlib.util
    from ansible_collections.chaosfleet.stress.plugins.module_utils import _experiment
    root = _experiment.install_supervisor(str(tmp_path))
    package = os.path.join(root, *_experiment.PACKAGE.split("."))
    sources = sorted(name for name in os.listdir(package) if name.endswith(".py"))
    assert sources and len(sources) == len(_experiment.SUPERVISOR_MODULES)
    for name in sources:
        compiled = importlib.util.cache_from_source(os.path.join(package, name))
        assert os.path.exists(compiled), name
    # A Python that may not write bytecode imports the copy from what was compiled, without a fresh compile.
    probe = subprocess.run(
        [sys.executable, "-v", "-c", "import %s._supervisor" % _experiment.PACKAGE],
        env=dict(os.environ, PYTHONPATH=root, PYTHONDONTWRITEBYTECODE="1"), capture_output=True, text=True,
        check=False)
    assert probe.returncode == 0, probe.stderr[-2000:]
    assert "code object from '%s" % os.path.join(package, "__pycache__") in probe.stderr
    assert "matches %s" % os.path.join(package, "_supervisor.py") in probe.stderr
