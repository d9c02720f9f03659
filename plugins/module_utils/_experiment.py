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
import py_compile
import shutil
import signal
import subprocess
import sys
import time

# Imported by name (not importlib) so AnsiballZ packs them: the supervisor needs all of them.
from ansible_collections.chaosfleet.stress.plugins.module_utils import (
    _mounts, _oom, _plan, _prefetch, _resolve, _state as state, _supervisor, _supervisor_core, _units, _usage,
)

PACKAGE = "ansible_collections.chaosfleet.stress.plugins.module_utils"
# What the supervisor imports; copied next to the state so it outlives Ansible's temporary files.
SUPERVISOR_MODULES = (_mounts, _resolve, _units, _usage, state, _oom, _plan, _prefetch, _supervisor_core, _supervisor)
START_TIMEOUT = 45.0  # the supervisor reports in well under 1 s; an emulated, loaded node took over 20 s
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
            source = os.path.join(tmp_target, name + ".py")
            with open(source, "w") as handle:
                handle.write(text)
            # Compiled once here: each supervisor starts with PYTHONDONTWRITEBYTECODE, and compiling its
            # modules at every start costs seconds on a slow node (an emulated VM, a loaded one).
            try:
                py_compile.compile(source, doraise=True)
            except (py_compile.PyCompileError, OSError):
                pass  # the supervisor then compiles in memory, as before
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

    def supervisor_record(self):
        """The supervisor's PID record: its own status, or the one the starter wrote at spawn time."""
        return self.status().get("supervisor") or state.read_json(self.path(state.SUPERVISOR))

    def supervisor_alive(self):
        return state.is_alive(self.supervisor_record())

    def running(self):
        """Running means the supervisor lives, or stress it started is still there without it."""
        if not self.exists or self.outcome() is not None:
            return False
        if self.supervisor_alive():
            return True
        return any(state.is_alive(i) for i in self.status().get("instances", []))

    def supervisor_lost(self):
        """True when the experiment has no outcome yet and its supervisor is gone (killed, crashed)."""
        return self.exists and self.outcome() is None and not self.supervisor_alive()

    def result_stored(self):
        return os.path.exists(self.path(state.RESULT))

    def heartbeat(self):
        with open(self.path(state.HEARTBEAT), "a"):
            pass
        os.utime(self.path(state.HEARTBEAT), None)

    def start(self, spec, python=None):
        """Write the spec, launch the supervisor detached, and wait until stress runs (or failed).

        The caller holds the name and target locks. The I/O directory is created here, exclusively, before
        any state is written; a failure before the supervisor runs removes what this call created.
        """
        state.ensure_root_dir(self.state_dir)
        state.ensure_root_dir(state.experiments_dir(self.state_dir))
        io = (spec.get("plan") or {}).get("io")
        spec = dict(spec)
        if io:
            spec["io_dir_created"] = state.create_owned_dir(os.path.dirname(io["path"]), os.path.basename(io["path"]))
        try:
            if os.path.exists(self.dir):
                shutil.rmtree(self.dir)  # an ended run of this name: ours, under the root-only state dir
            os.mkdir(self.dir, 0o700)
            state.write_json(self.path(state.SPEC), spec)
            self.heartbeat()
            libdir = install_supervisor(self.state_dir)
            env = dict(os.environ, PYTHONPATH=libdir, PYTHONDONTWRITEBYTECODE="1")
            with open(self.path(state.LOG), "ab") as log:
                popen = subprocess.Popen([python or sys.executable, "-m", "%s._supervisor" % PACKAGE, self.dir],
                                         start_new_session=True, stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT, cwd=self.dir, env=env, close_fds=True)
        except BaseException:
            state.remove_owned_dir(spec.get("io_dir_created"))
            shutil.rmtree(self.dir, ignore_errors=True)
            raise
        state.write_json(self.path(state.SUPERVISOR), state.pid_record(popen.pid))
        deadline = time.time() + START_TIMEOUT
        while time.time() < deadline:
            status = self.status()
            if status.get("state") in ("running", "ended", "failed"):
                return status
            if popen.poll() is not None:
                break  # the supervisor died before it reported: no point waiting
            time.sleep(0.1)
        code = popen.poll()
        why = ("the supervisor exited (code %s) before the stress started" % code if code is not None
               else "the supervisor did not start within %ds" % START_TIMEOUT)
        self.finish_without_supervisor("aborted", "start_failed", why, kill_supervisor=True)
        popen.wait()
        raise ExperimentError("%s; everything it started was stopped; see %s" % (why, self.path(state.LOG)))

    def finish_without_supervisor(self, run_status, reason, detail, kill_supervisor=False):
        """End an experiment from outside its supervisor: kill what it recorded, remove what it created,
        and write the outcome. Returns the PIDs that survived."""
        status = self.status()
        if kill_supervisor:
            # The supervisor leads its own session; its stress processes die with it (parent-death signal).
            state.signal_recorded(self.supervisor_record(), signal.SIGKILL)
        left = []
        for instance in status.get("instances", []):
            left += state.kill_group_verified(instance)
        state.remove_owned_dir(self.spec().get("io_dir_created"))
        outcome = {"status": run_status, "reason": reason, "detail": detail,
                   "started_at": status.get("started_at"), "ended_at": round(time.time(), 3),
                   "deadline": status.get("deadline"), "processes_left": left,
                   "oom_kill_count": status.get("oom_kill_count", 0), "oom_kills": [],
                   "instances": status.get("instances", [])}
        state.write_json(self.path(state.OUTCOME), outcome)
        status.update({"state": "ended", "phase": "ended", "status": run_status, "reason": reason})
        state.write_json(self.path(state.STATUS), status)
        return left

    def abort_lost(self):
        """A heartbeat found the supervisor gone: stop its stress and record why."""
        record = self.supervisor_record() or {}
        self.finish_without_supervisor(
            "aborted", "supervisor_lost",
            "the supervisor (PID %s) was lost (killed or crashed) before the experiment ended; a heartbeat "
            "found it gone and stopped its stress" % record.get("pid"))

    def stop(self):
        """Stop the experiment from any process. Returns True if this changed anything on the node.

        Every request is recorded in the experiment's event log (stop_requested), so each rollback
        path can be counted on the node.
        """
        running = self.exists and self.outcome() is None
        if os.path.isdir(self.dir):
            state.append_jsonl(self.path(state.EVENTS), {"t": round(time.time(), 3), "event": "stop_requested",
                                                         "running": running})
        if not running:
            return False
        with open(self.path(state.STOP), "w") as handle:
            handle.write(str(time.time()))
        if state.signal_recorded(self.supervisor_record(), signal.SIGTERM):
            deadline = time.time() + STOP_TIMEOUT
            while time.time() < deadline and self.outcome() is None and self.supervisor_alive():
                time.sleep(0.1)
            if self.outcome() is not None:
                return True
            self.finish_without_supervisor("stopped", "stop", "stopped; the supervisor did not finish in time",
                                           kill_supervisor=True)
            return True
        # No supervisor (killed, crashed, node rebooted it away): end its groups ourselves.
        record = self.supervisor_record() or {}
        self.finish_without_supervisor(
            "aborted", "supervisor_lost",
            "the supervisor (PID %s) was lost (killed or crashed) before the experiment ended; the stop "
            "ended what it had started" % record.get("pid"))
        return True

    def report(self):
        """What the module returns about this experiment. Cheap enough for every heartbeat: it reads the status
        and only the tail of the samples."""
        spec, status, outcome = self.spec(), self.status(), self.outcome()
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
            "pids": [i["pid"] for i in status.get("instances", [])] if not outcome else [],
            "supervisor_pid": (self.supervisor_record() or {}).get("pid"),
            "latest_sample": state.read_last_jsonl(self.path(state.SAMPLES)),
            "outcome": outcome,
            "result_stored": bool(outcome) and self.result_stored(),
        }
