"""pytest fixtures and helpers for the multi-node SSH lab (tests/lab/fleet.py).

- ``fleet``: one 3-node fleet per test session (each node: its own netns, sshd, PID/mount/cgroup
  namespaces and lab pods), torn down at the end even when tests fail. Under scripts/test.sh it is the
  one fleet the script built for all its passes (CHAOSFLEET_TEST_FLEET).
- ``run_playbook(fleet, playbook, extra_vars)``: ansible-playbook against the fleet's inventory.
- ``Fleet`` reads each node's state from the host side (``/proc/<node pid 1>/root`` is the node's
  view of its files; the node's cgroups are under ``/<fleet>-nI`` on the host), so assertions do
  not depend on SSH or on the code under test.
"""

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from tests.integration.ansible_helpers import wait_for  # noqa: F401  (re-exported for the fleet tests)
from tests.integration.lab_fixtures import lab_unavailable
from tests.integration.shared import adopted, shared

REPO = Path(__file__).resolve().parents[2]
FLEET_SCRIPT = REPO / "tests" / "lab" / "fleet.py"
VENV_BIN = REPO / ".venv" / "bin"
ANSIBLE_PLAYBOOK = str(VENV_BIN / "ansible-playbook")
NODE_LAB_SCRIPT = str(REPO / "tests" / "lab" / "lab.py")
ENV = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_DEPRECATION_WARNINGS="False",
           ANSIBLE_LOCALHOST_WARNING="False", ANSIBLE_INVENTORY_UNPARSED_WARNING="False",
           ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0", ANSIBLE_RETRY_FILES_ENABLED="False",
           PATH="%s:%s" % (VENV_BIN, os.environ.get("PATH", "")))


def fleet_unavailable():
    reason = lab_unavailable()
    if reason:
        return reason
    for tool in ("sshd", "ssh", "ssh-keygen", "ip", "unshare", "nsenter", "stress-ng"):
        if not shutil.which(tool) and not os.path.exists("/usr/sbin/" + tool):
            return "%s is not installed" % tool
    return None


def fleet_cli(*args, timeout=180, check=True):
    result = subprocess.run([sys.executable, str(FLEET_SCRIPT)] + list(args), check=False, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, universal_newlines=True, timeout=timeout)
    if check and result.returncode != 0:
        raise RuntimeError("fleet.py %s failed (rc %d): %s" % (" ".join(args), result.returncode, result.stderr))
    return result


class Fleet(object):
    def __init__(self, state_path):
        self.state_path = Path(state_path)
        self.reload()

    def reload(self):
        self.state = json.loads(self.state_path.read_text())
        self.name = self.state["name"]
        self.inventory = self.state["inventory"]
        self.nodes = [n["name"] for n in self.state["nodes"]]

    def node(self, name):
        return next(n for n in self.state["nodes"] if n["name"] == name)

    def lab(self, node):
        return json.loads(Path(self.node(node)["lab_state"]).read_text())

    def container(self, node, pod):
        """The app container dict of a lab pod on a node."""
        for entry in self.lab(node)["pods"]:
            if entry["name"] == pod:
                return next(c for c in entry["containers"] if not c["sandbox"])
        raise KeyError(pod)

    def root(self, node):
        """The node's filesystem view, from the host."""
        return "/proc/%d/root" % self.node(node)["pid1"]["pid"]

    def experiment_file(self, node, experiment, name):
        path = Path(self.root(node) + "/run/chaosfleet/experiments/%s/%s" % (experiment, name))
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError):
            return None

    def status(self, node, experiment):
        return self.experiment_file(node, experiment, "status.json")

    def outcome(self, node, experiment):
        return self.experiment_file(node, experiment, "outcome.json")

    def cgroup_dirs(self, node):
        top = "/sys/fs/cgroup/memory" + self.node(node)["cgroup"]
        return [d for d, _subdirs, _files in os.walk(top)]

    def stress_pids(self, node):
        """Live stress-ng processes anywhere in the node's cgroups (host PIDs)."""
        found = []
        for directory in self.cgroup_dirs(node):
            try:
                pids = [int(p) for p in Path(directory, "cgroup.procs").read_text().split()]
            except OSError:
                continue
            for pid in pids:
                try:
                    comm = Path("/proc/%d/comm" % pid).read_text().strip()
                    stat = Path("/proc/%d/stat" % pid).read_text()
                except OSError:
                    continue
                if comm.startswith("stress-ng") and stat[stat.rfind(")") + 2] != "Z":
                    found.append(pid)
        return found

    def supervisor_alive(self, node, experiment):
        status = self.status(node, experiment) or {}
        record = status.get("supervisor") or {}
        if not record.get("pid"):
            return False
        # The record holds the node's PID; find it through the node's /proc.
        try:
            stat = Path(self.root(node) + "/proc/%d/stat" % record["pid"]).read_text()
        except OSError:
            return False
        fields = stat[stat.rfind(")") + 2:].split()
        return int(fields[19]) == record.get("start_time") and fields[0] != "Z"

    def link(self, node, state):
        fleet_cli("link", "--name", self.name, "--node", node, state)

    def ssh(self, node, *command, timeout=120):
        return fleet_cli("ssh", "--name", self.name, "--node", node, "--", *command, timeout=timeout)

    def restart_pod(self, node, pod):
        """Restart a lab pod's app container on the node (new container ID), as kubelet would."""
        self.ssh(node, "/usr/bin/python3", NODE_LAB_SCRIPT, "restart", "--prefix", self.node(node)["lab_prefix"],
                 "--pod", pod, "--state-dir", "/var/tmp/cflab-state")
        self.refresh_inventory()

    def refresh_inventory(self):
        fleet_cli("inventory", "--name", self.name)
        self.reload()

    def node_file(self, node, path):
        """Host path of a file under the node's /var/tmp (which the node gets from the fleet dir)."""
        return Path(self.state["dir"]) / "nodes" / node / "vartmp" / path


def up(nodes=3):
    result = fleet_cli("up", "--nodes", str(nodes), timeout=600)
    return Fleet(result.stdout.strip())


def down(fleet):
    fleet_cli("down", "--name", fleet.name, timeout=300)


# The state file of a fleet built for the whole run by scripts/test.sh (tests/integration/shared.py).
SHARED_FLEET_ENV = "CHAOSFLEET_TEST_FLEET"


@pytest.fixture(scope="session")
def fleet():
    """One fleet per test process, even when several test modules import this fixture (each import makes its
    own session fixture; they share the fleet and the last one tears it down), or the one scripts/test.sh built
    for all its passes (CHAOSFLEET_TEST_FLEET)."""
    yield from shared("fleet", _fleet)


def _fleet():
    state_path = adopted(SHARED_FLEET_ENV)
    if state_path:
        yield Fleet(state_path)
        return
    reason = fleet_unavailable()
    if reason:
        pytest.skip(reason)
    built = up(3)
    try:
        yield built
    finally:
        down(built)


def unique(prefix):
    return "%s-%s" % (prefix, secrets.token_hex(3))


class PlaybookRun(object):
    def __init__(self, rc, out, err, seconds):
        self.rc, self.out, self.err, self.seconds = rc, out, err, seconds

    @property
    def text(self):
        return self.out + self.err

    def recap(self):
        """host -> {ok, changed, unreachable, failed, ...} from the PLAY RECAP."""
        out = {}
        for line in self.out.split("PLAY RECAP", 1)[-1].splitlines()[1:]:
            if ":" not in line:
                continue
            host, rest = line.split(":", 1)
            counts = dict(item.split("=") for item in rest.split())
            out[host.strip()] = dict((k, int(v)) for k, v in counts.items())
        return out

    def __repr__(self):
        return "PlaybookRun(rc=%d, %.1fs)\n%s\n%s" % (self.rc, self.seconds, self.out[-6000:], self.err[-3000:])


def playbook_cmd(fleet, playbook, extra_vars=None, limit=None, check=False, vars_file_dir=None):
    cmd = [ANSIBLE_PLAYBOOK, "-i", fleet.inventory, playbook]
    if extra_vars:
        # In the fleet's own directory, so the fleet's teardown removes it.
        directory = vars_file_dir or os.path.dirname(fleet.inventory)
        handle, path = tempfile.mkstemp(prefix="cf-vars-", suffix=".json", dir=directory)
        with os.fdopen(handle, "w") as out:
            json.dump(extra_vars, out)
        cmd += ["-e", "@" + path]
    if limit:
        cmd += ["--limit", limit]
    if check:
        cmd.append("--check")
    return cmd


def run_playbook(fleet, playbook, extra_vars=None, limit=None, check=False, timeout=600):
    cmd = playbook_cmd(fleet, playbook, extra_vars, limit, check)
    started = time.time()
    proc = subprocess.run(cmd, check=False, cwd=str(REPO), env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, timeout=timeout)
    return PlaybookRun(proc.returncode, proc.stdout, proc.stderr, time.time() - started)


def stop_experiment(fleet, name):
    """End an experiment a failed test left running on the fleet's nodes, so the next test finds them free."""
    cmd = [str(VENV_BIN / "ansible"), "all", "-i", fleet.inventory, "-m", "chaosfleet.stress.stressor",
           "-a", json.dumps({"name": name, "state": "absent"})]
    subprocess.run(cmd, check=False, cwd=str(REPO), env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   timeout=120)


def start_playbook(fleet, playbook, extra_vars=None, limit=None, log_path=None, env=None):
    """Start ansible-playbook in its own process group (so a test can SIGKILL all of it); ``env`` adds to ENV."""
    cmd = playbook_cmd(fleet, playbook, extra_vars, limit)
    # O_APPEND, as the stop guard's own descriptor on the playbook's stdout: neither overwrites the other's lines.
    log = open(log_path, "a") if log_path else subprocess.DEVNULL
    return subprocess.Popen(cmd, cwd=str(REPO), env=dict(ENV, **(env or {})), stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)


def kill_group(proc):
    """SIGKILL a playbook we started: its process group, and its workers, which start sessions of their own (a
    worker hung after an interrupt would outlive its playbook). Stopped first, so that it forks no new worker."""
    if proc.poll() is not None:
        return  # reaped: its PID may be another process's now
    os.kill(proc.pid, signal.SIGSTOP)
    for pid in _children(proc.pid):
        try:
            os.killpg(pid, signal.SIGKILL)  # a worker leads its own session and group
        except ProcessLookupError:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(timeout=30)


def _stat_fields(pid):
    """The fields of /proc/PID/stat after the command name (state first), or None once it is gone."""
    try:
        text = Path("/proc/%s/stat" % pid).read_text()
    except OSError:
        return None
    return text[text.rfind(")") + 2:].split()


def _children(parent):
    return [int(entry) for entry in os.listdir("/proc")
            if entry.isdigit() and (_stat_fields(entry) or [None, None])[1] == str(parent)]


def guard_record(guards):
    """The stop guard's record ({pid, start_time}) under a run's experiment_stop_guard_dir, or None."""
    for directory in Path(guards).glob("chaosfleet-guard-*"):
        try:
            return json.loads((directory / "guard.json").read_text())
        except (OSError, ValueError):
            continue
    return None


def _start_time(pid):
    fields = _stat_fields(pid)
    return None if not fields or fields[0] in ("Z", "X") else int(fields[19])  # a zombie is dead, only not reaped


def ansible_lost_the_interrupt(output):
    """True when ansible-core dropped a Ctrl-C: its handler raised KeyboardInterrupt inside an at-fork hook while it
    forked a worker (CPython prints "Exception ignored in: ..."), and the play went on. The stop guard still stops
    every node (it reads the reset handler); the play's own rollback then adds a stop request that finds the stress
    ended, and the play ends failed (1 when the forwarded SIGINT killed a worker, else 2 after its report)."""
    return "Exception ignored in" in output and "KeyboardInterrupt" in output


def one_stop_found_it_running(requests, lost=False):
    """A node's stop requests (events stop_requested): exactly one, or after a lost Ctrl-C the guard's first and
    only later ones that found the stress ended."""
    running = [bool(e.get("running")) for e in requests]
    return running == [True] or (lost and running[:1] == [True] and not any(running[1:]))


def guard_alive(record):
    return bool(record) and _start_time(record["pid"]) == record["start_time"]


def kill_guard(record):
    """SIGKILL a stop guard a test's playbook started, by its recorded PID, while its start time matches."""
    if guard_alive(record):
        try:
            os.kill(record["pid"], signal.SIGKILL)
        except ProcessLookupError:
            pass


def kill_controller(proc, guards):
    """Kill the controller as a machine that dies: the playbook's whole group and its stop guard at once
    (the guard first, so that it cannot start a stop in between)."""
    record = guard_record(guards)
    kill_guard(record)
    kill_group(proc)
    wait_for(lambda: not guard_alive(record), 5, interval=0.05)  # SIGKILL is delivered, not waited for
    return record


def fast_experiment(fleet_pod="hello", **overrides):
    """Short timings for tests: the whole role takes about half a minute on 3 nodes."""
    values = {
        "experiment_container_id": "{{ fleet_pods.%s.container_id }}" % fleet_pod,
        "experiment_memory_size": "32Mi",
        "experiment_duration": "10s",
        "experiment_heartbeat_interval": 2,
        "experiment_heartbeat_timeout": "15s",
        "experiment_baseline_duration": "2s",
        "experiment_recovery_timeout": "20s",
    }
    values.update(overrides)
    return values
