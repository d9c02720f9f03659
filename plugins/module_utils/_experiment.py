# -*- coding: utf-8 -*-
# Copyright (c) 2026, chaosfleet.stress contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Start, find, heartbeat and stop experiments through the node's state directory.

Node-side code: standard library only.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time

# Imported by name (not importlib) so AnsiballZ packs them: the supervisor needs all of them.
from ansible_collections.chaosfleet.stress.plugins.module_utils import (
    _mounts, _oom, _plan, _resolve, _state as state, _supervisor, _units, _usage,
)

PACKAGE = "ansible_collections.chaosfleet.stress.plugins.module_utils"
# What the supervisor imports; copied next to the state so it outlives Ansible's temporary files.
SUPERVISOR_MODULES = (_mounts, _resolve, _units, _usage, state, _oom, _plan, _supervisor)
START_TIMEOUT = 20.0
STOP_TIMEOUT = 20.0


class ExperimentError(Exception):
    pass


def fingerprint(params):
    return hashlib.sha256(json.dumps(params, sort_keys=True, default=str).encode()).hexdigest()[:16]


def install_supervisor(state_dir):
    """Copy the supervisor's modules to <state_dir>/lib/<hash>; return the PYTHONPATH entry."""
    sources = {}
    for module in SUPERVISOR_MODULES:
        sources[module.__name__.rsplit(".", 1)[1]] = module.__loader__.get_source(module.__name__)
    digest = hashlib.sha256("".join(sources[n] for n in sorted(sources)).encode()).hexdigest()[:16]
    root = os.path.join(state_dir, "lib", digest)
    target = os.path.join(root, *PACKAGE.split("."))
    if not os.path.exists(os.path.join(target, "_supervisor.py")):
        tmp = root + ".tmp.%d" % os.getpid()
        tmp_target = os.path.join(tmp, *PACKAGE.split("."))
        os.makedirs(tmp_target, 0o700)
        for name, text in sources.items():
            with open(os.path.join(tmp_target, name + ".py"), "w") as handle:
                handle.write(text)
        try:
            os.rename(tmp, root)
        except OSError:
            shutil.rmtree(tmp, ignore_errors=True)  # another run installed the same version first
    return root


class Experiment(object):
    def __init__(self, state_dir, name):
        self.state_dir = state_dir
        self.name = state.validate_name(name)
        self.dir = state.experiment_dir(state_dir, name)

    def path(self, name):
        return os.path.join(self.dir, name)

    @property
    def exists(self):
        return os.path.exists(self.path(state.SPEC))

    def spec(self):
        return state.read_json(self.path(state.SPEC), {})

    def status(self):
        return state.read_json(self.path(state.STATUS), {})

    def outcome(self):
        return state.read_json(self.path(state.OUTCOME))

    def supervisor_alive(self):
        return state.is_alive(self.status().get("supervisor"))

    def running(self):
        """Running means the supervisor lives, or stress it started is still there without it."""
        if not self.exists or self.outcome() is not None:
            return False
        if self.supervisor_alive():
            return True
        return any(state.is_alive(i) for i in self.status().get("instances", []))

    def heartbeat(self):
        with open(self.path(state.HEARTBEAT), "a"):
            pass
        os.utime(self.path(state.HEARTBEAT), None)

    def start(self, spec, python=None):
        """Write the spec, launch the supervisor detached, and wait until stress runs (or failed)."""
        state.ensure_root_dir(self.state_dir)
        os.makedirs(os.path.join(self.state_dir, "experiments"), 0o700, exist_ok=True)
        if os.path.exists(self.dir):
            shutil.rmtree(self.dir)
        os.makedirs(self.dir, 0o700)
        state.write_json(self.path(state.SPEC), spec)
        self.heartbeat()
        libdir = install_supervisor(self.state_dir)
        env = dict(os.environ, PYTHONPATH=libdir, PYTHONDONTWRITEBYTECODE="1")
        with open(self.path(state.LOG), "ab") as log:
            subprocess.Popen([python or sys.executable, "-m", "%s._supervisor" % PACKAGE, self.dir],
                             start_new_session=True, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                             cwd=self.dir, env=env, close_fds=True)
        deadline = time.time() + START_TIMEOUT
        while time.time() < deadline:
            status = self.status()
            if status.get("state") in ("running", "ended", "failed"):
                return status
            time.sleep(0.1)
        raise ExperimentError("the supervisor did not start within %ds; see %s" % (START_TIMEOUT, self.path(state.LOG)))

    def stop(self):
        """Stop a running experiment from any process. Returns True if anything was stopped.

        Every request is recorded in the experiment's event log (stop_requested), so each
        rollback path can be counted on the node.
        """
        running = self.running()
        if os.path.isdir(self.dir):
            state.append_jsonl(self.path(state.EVENTS), {"t": round(time.time(), 3), "event": "stop_requested",
                                                         "running": running})
        if not running:
            return False
        with open(self.path(state.STOP), "w") as handle:
            handle.write(str(time.time()))
        status = self.status()
        if state.signal_recorded(status.get("supervisor"), signal.SIGTERM):
            deadline = time.time() + STOP_TIMEOUT
            while time.time() < deadline and self.outcome() is None:
                time.sleep(0.1)
            if self.outcome() is not None:
                return True
        # No supervisor (killed, node rebooted the daemon away): end its groups ourselves.
        left = []
        for instance in status.get("instances", []):
            left += state.kill_group_verified(instance)
        outcome = {"status": "stopped", "reason": "stop", "detail": "stopped without its supervisor",
                   "started_at": status.get("started_at"), "ended_at": round(time.time(), 3),
                   "deadline": status.get("deadline"), "processes_left": left,
                   "oom_kill_count": status.get("oom_kill_count", 0), "oom_kills": []}
        state.write_json(self.path(state.OUTCOME), outcome)
        status.update({"state": "ended", "phase": "ended", "status": "stopped", "reason": "stop"})
        state.write_json(self.path(state.STATUS), status)
        return True

    def report(self):
        """What the module returns about this experiment."""
        spec, status, outcome = self.spec(), self.status(), self.outcome()
        samples = state.read_jsonl(self.path(state.SAMPLES))
        if outcome:
            run_status, reason = outcome["status"], outcome["reason"]
        elif self.running():
            run_status, reason = "running", None
        else:
            run_status, reason = "aborted", "supervisor_lost"
        return {
            "name": self.name,
            "state_dir": self.dir,
            "target": spec.get("target"),
            "plan": spec.get("plan"),
            "argv": spec.get("argv"),
            "status": run_status,
            "reason": reason,
            "phase": status.get("phase"),
            "started_at": status.get("started_at"),
            "deadline": status.get("deadline"),
            "pids": [i["pid"] for i in status.get("instances", [])],
            "supervisor_pid": (status.get("supervisor") or {}).get("pid"),
            "latest_sample": samples[-1] if samples else None,
            "outcome": outcome,
        }
