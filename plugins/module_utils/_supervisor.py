# -*- coding: utf-8 -*-
# Copyright (c) 2026, chaosfleet.stress contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The per-experiment supervisor: a detached process on the node.

It attaches every stress process to the target cgroup before it allocates,
samples the target, carries out what the decision core (``_supervisor_core.py``:
ramp steps, settling, top-ups, guards, deadline, heartbeat, CPU correction)
says, and on any ending kills only the process groups it started, checks
they are gone, and records the outcome. This file is the I/O around the core.

Run as ``python3 -m ...._supervisor EXPERIMENT_DIR`` from the copy the stressor
module installs under the state directory, so nothing depends on Ansible's
temporary files. Node-side code: standard library only.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ctypes
import os
import signal
import subprocess
import sys
import time

from ansible_collections.chaosfleet.stress.plugins.module_utils import _state as state
from ansible_collections.chaosfleet.stress.plugins.module_utils._supervisor_core import Control
from ansible_collections.chaosfleet.stress.plugins.module_utils._oom import KernelLog, OomTracker, merge_kills
from ansible_collections.chaosfleet.stress.plugins.module_utils._plan import cpu_argv, io_argv, memory_argv, raw_argv
from ansible_collections.chaosfleet.stress.plugins.module_utils._prefetch import prefetch, program_files
from ansible_collections.chaosfleet.stress.plugins.module_utils._resolve import process_comm, read_pids
from ansible_collections.chaosfleet.stress.plugins.module_utils._usage import read_sample, reader_for

# Hierarchies a stress process must not join: device rules and systemd bookkeeping are not resources.
ATTACH_SKIP = ("devices", "name=systemd")
OOM_RECORD_LIMIT = 500
PR_SET_PDEATHSIG = 1
PR_SET_THP_DISABLE = 41


def attach_dirs(target):
    return [d for name, d in sorted(target["dirs"].items()) if name not in ATTACH_SKIP]


def own_cgroup_path(version):
    with open("/proc/self/cgroup") as handle:
        for line in handle.read().splitlines():
            _hier, controllers, path = line.split(":", 2)
            if (version == 2 and controllers == "") or (version == 1 and "memory" in controllers.split(",")):
                if ".." in path.split("/"):
                    # Relative to a private cgroup namespace: the target cannot be checked (nor, on v2, joined).
                    raise OSError("this process is in a private cgroup namespace (its cgroup reads %s); run the agent "
                                  "privileged with hostPID, or the module from the host's cgroup namespace" % path)
                return path
    return None


class Instance(object):
    def __init__(self, kind, argv, popen, nbytes, started):
        self.kind = kind
        self.argv = argv
        self.popen = popen
        self.nbytes = nbytes
        self.record = state.pid_record(popen.pid)
        self.started = started
        self.members = []  # [pid, start time] of its process group, as last seen: what a later kill may signal

    def as_dict(self):
        return {"kind": self.kind, "argv": self.argv, "pid": self.record["pid"],
                "start_time": self.record["start_time"], "bytes": self.nbytes, "started_at": round(self.started, 3),
                "members": self.members}


class Supervisor(object):
    def __init__(self, expdir, clock=time.time, sleep=time.sleep):
        self.dir = expdir
        self.clock = clock
        self.sleep = sleep
        self.spec = state.read_json(os.path.join(expdir, state.SPEC))
        self.target = self.spec["target"]
        self.plan = self.spec["plan"]
        self.proc_root = self.spec.get("proc_root", "/proc")
        # Its cgroup files stay open between samples (closed in end()).
        self.reader = reader_for(self.target, keep_open=True)
        self.primary_dir = self.target["dirs"].get("memory") or self.target["dirs"].get("unified")
        self.instances = []
        self.ended_instances = []
        self.stop_reason = None
        self.oom_kills = []
        self.oom = None
        self.control = None
        self.seen = {}
        self.log = KernelLog()
        self.pid = os.getpid()
        self.libc = ctypes.CDLL(None, use_errno=True)  # loaded here, not in the forked child
        self.samples = state.SampleLog(self.path(state.SAMPLES))
        self.peak_ws = 0
        self.launch_files = None

    # -- paths and records -------------------------------------------------
    def path(self, name):
        return os.path.join(self.dir, name)

    @property
    def phase(self):
        return self.control.phase if self.control else "starting"

    def write_status(self, **extra):
        now = self.clock()
        status = {
            "state": self.phase if self.phase in ("starting", "ended", "failed") else "running",
            "phase": self.phase,
            "supervisor": state.pid_record(os.getpid()),
            "started_at": self.control.started_at,
            "deadline": self.control.deadline,
            "instances": [i.as_dict() for i in self.instances],
            "oom_kill_count": self.oom.total if self.oom else 0,
            "stress_bytes": self.control.aim(now),
            "updated_at": round(now, 3),
        }
        status.update(extra)
        state.write_json(self.path(state.STATUS), status)

    def event(self, name, **fields):
        fields.update({"t": round(self.clock(), 3), "event": name})
        state.append_jsonl(self.path(state.EVENTS), fields)

    # -- launching ---------------------------------------------------------
    def _attach_in_child(self):
        """Runs in the forked child before exec: die with the supervisor, join the target cgroup or die trying."""
        try:
            # However the supervisor ends (even SIGKILL), the kernel then kills this child; checked against a
            # supervisor that died before the call.
            if self.libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
                raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
            if os.getppid() != self.pid:
                os._exit(112)
            # Under THP "always" a huge page can back a stress-ng heap that touches a few KiB: the instance then
            # costs up to 2 MiB more, at random. Small pages keep its footprint what the top-up learned.
            # Best effort: kernels before 3.15 lack the call, and the stress still runs.
            self.libc.prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0)
            for directory in attach_dirs(self.target):
                with open(os.path.join(directory, "cgroup.procs"), "w") as handle:
                    handle.write("0")
            where = own_cgroup_path(self.target["cgroup_version"])
            if where != self.target["path"]:
                raise OSError("joined %s instead of %s" % (where, self.target["path"]))
            with open("/proc/self/oom_score_adj", "w") as handle:
                handle.write(str(self.plan["oom_score_adj"]))
        except Exception as exc:  # noqa: BLE001 - report any failure, then refuse to exec
            with open(self.path("attach_error"), "w") as handle:
                handle.write("cannot attach to %s: %s" % (self.target["path"], exc))
            os._exit(111)

    def read_ahead(self, command):
        """Page in what the launch will run from this process's cgroup, so it is not charged to the target."""
        if self.launch_files is None:
            prefix = list(self.spec.get("pdeathsig_exec") or [])[:1]
            self.launch_files = program_files([command[0], self.spec["stress_ng"]] + prefix)
            missed = prefetch(self.launch_files)
            self.event("read_ahead", files=len(self.launch_files), missed=missed)
        else:
            prefetch(self.launch_files)

    def launch(self, kind, argv, nbytes=None):
        command = list(argv)
        if self.spec.get("ns_pid"):
            # nsenter forks stress-ng into the target's PID namespace; the prefix makes it die with nsenter.
            command = [self.spec["nsenter"], "-t", str(self.spec["ns_pid"]), "-p", "--"] + \
                list(self.spec.get("pdeathsig_exec") or []) + command
        self.read_ahead(command)
        with open(self.path("stress.log"), "ab") as log:
            popen = subprocess.Popen(command, preexec_fn=self._attach_in_child, start_new_session=True,
                                     stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                     cwd=self.dir, close_fds=True)
        instance = Instance(kind, argv, popen, nbytes, self.clock())
        self.instances.append(instance)
        self.event("launch", kind=kind, argv=argv, pid=popen.pid, bytes=nbytes)
        self.write_status()  # at once: a stop or a heartbeat must know every instance
        return instance

    def argv_for(self, action, remaining):
        stress_ng = self.spec["stress_ng"]
        if action["kind"] == "memory":
            memory = self.plan["memory"]
            return memory_argv(stress_ng, action["workers"], action["bytes"], memory["method"], remaining,
                               self.plan["on_oom"] == "stop", memory.get("churn"))
        if action["kind"] == "cpu":
            return cpu_argv(stress_ng, dict(self.plan["cpu"], per_worker_load=action["per_worker_load"]), remaining)
        if action["kind"] == "raw":
            return raw_argv(stress_ng, self.plan["raw"], remaining)
        return io_argv(stress_ng, self.plan["io"], remaining)

    def apply(self, actions, exited=()):
        """Carry out the core's actions; return the stop action if there is one."""
        for action in actions:
            remaining = self.control.remaining(self.clock())
            if action["do"] == "launch":
                self.launch(action["kind"], self.argv_for(action, remaining), action.get("bytes"))
            elif action["do"] == "relaunch_cpu":
                for instance in [i for i in self.instances if i.kind == "cpu"]:
                    state.kill_group_verified(instance.record, self.proc_root, grace=0.5)
                    instance.popen.wait()
                    self.instances.remove(instance)
                    self.ended_instances.append(instance)
                self.launch("cpu", self.argv_for(dict(action, kind="cpu"), remaining))
                self.event("cpu_corrected", measured_cores=action["measured_cores"],
                           per_worker_load=action["per_worker_load"])
            elif action["do"] == "respawn":
                instance = exited[action["index"]]
                self.launch(instance.kind, self._refresh_timeout(instance.argv, remaining), instance.nbytes)
            elif action["do"] == "holding":
                self.event("holding", achieved_increase_bytes=action["achieved_increase_bytes"])
            elif action["do"] == "write_status":
                self.write_status()
            elif action["do"] == "stop":
                return action
        return None

    @staticmethod
    def _refresh_timeout(argv, remaining):
        argv = list(argv)
        argv[argv.index("--timeout") + 1] = "%ds" % (int(remaining) + 2)
        return argv

    # -- watching ----------------------------------------------------------
    def members(self):
        return read_pids(self.target["dirs"])

    def groups(self, members):
        """[(instance, [(pid, start time, CPU seconds)])]: for each instance, the ``members`` in its process group
        that started at or after it. One read of each member's /proc stat answers all three questions (a sample
        used to read it five times per member)."""
        stats = {}
        for pid in members:
            stat = state.proc_stat(pid, self.proc_root)
            if stat is not None:
                stats[pid] = stat
        out = []
        for instance in self.instances:
            leader, since = instance.record["pid"], instance.record["start_time"] or 0
            out.append((instance, [(pid, start, cpu) for pid, (pgid, start, cpu) in stats.items()
                                   if pgid == leader and start >= since]))
        return out

    def stressor_pids(self, members, groups=None):
        out = set()
        for instance, pids in self.groups(members) if groups is None else groups:
            out.update(pid for pid, _start, _cpu in pids)
            out.add(instance.record["pid"])
        return out

    def stress_cpu_seconds(self, kind, members, groups=None):
        """CPU time used so far by the live processes of our ``kind`` instances (those reap() has not ended)."""
        return sum((cpu for instance, pids in (self.groups(members) if groups is None else groups)
                    if instance.kind == kind and instance in self.instances for _pid, _start, cpu in pids), 0.0)

    def target_gone(self):
        if not os.path.isdir(self.primary_dir):
            return True
        return bool(self.app_records) and not any(state.is_alive(r, self.proc_root) for r in self.app_records)

    def check_oom(self, sample, stressors):
        kills = self.log.read() if self.log.available else []
        found = self.oom.update(kills, sample["oom_kill_count"], self.seen, stressors, sample["t"])
        self.record_oom_kills(found)
        return found

    def record_oom_kills(self, found):
        merge_kills(self.oom_kills, found, OOM_RECORD_LIMIT)
        for kill in found:
            state.append_jsonl(self.path(state.EVENTS), dict(kill, event="oom_kill"))

    def heartbeat_at(self):
        try:
            return os.stat(self.path(state.HEARTBEAT)).st_mtime
        except OSError:
            return None

    def reap(self):
        """The instances that exited since the last look, with the attach error of each (or None)."""
        exited = []
        for instance in list(self.instances):
            code = instance.popen.poll()
            if code is None:
                continue
            self.instances.remove(instance)
            self.ended_instances.append(instance)
            self.event("exit", kind=instance.kind, pid=instance.record["pid"], code=code)
            error = None
            if code == 111 and os.path.exists(self.path("attach_error")):
                with open(self.path("attach_error")) as handle:
                    error = handle.read()
            exited.append((instance, error))
        return exited

    # -- ending ------------------------------------------------------------
    def on_signal(self, signum, _frame):
        self.stop_reason = "stop" if os.path.exists(self.path(state.STOP)) else "signal"

    def end(self, reason, detail=None):
        self.control.phase = "ending"
        survivors = []
        # Every group gets its SIGTERM at once, so ending takes one grace period, not one per instance. The
        # leader is our unreaped child (poll() reaps only one that exited), so its PID cannot have been reused.
        for instance in self.instances:
            if instance.popen.poll() is None:
                try:
                    os.killpg(instance.record["pid"], signal.SIGTERM)
                except OSError:
                    pass
        for instance in self.instances:
            survivors += state.kill_group_verified(instance.record, self.proc_root, grace=1.0)
            try:
                instance.popen.wait(timeout=5)
            except subprocess.TimeoutExpired:
                survivors.append(instance.record["pid"])
        ended_at = self.clock()
        leftover = sorted(self.stressor_pids(self.members()) & set(self.members()))
        released = None
        if self.plan.get("memory"):
            deadline = self.clock() + 5
            while True:
                released = self.control.memory_released(read_sample(self.target, self.reader)["working_set_bytes"])
                if released or self.clock() > deadline or not os.path.isdir(self.primary_dir):
                    break
                self.sleep(0.2)
        # Only the directory the start created (same inode and marker), never one that was there before.
        state.remove_owned_dir(self.spec.get("io_dir_created"))
        if self.oom is not None:
            if os.path.isdir(self.primary_dir):
                self.check_oom(read_sample(self.target, self.reader), set())
            self.record_oom_kills(self.oom.flush())
        status = {"deadline": "finished", "stop": "stopped"}.get(reason, "aborted")
        outcome = {
            "status": status,
            "reason": reason,
            "detail": detail,
            "started_at": self.control.started_at,
            "ended_at": round(ended_at, 3),
            "deadline": self.control.deadline,
            "peak_working_set_bytes": self.peak_ws,
            "baseline_working_set_bytes": self.control.baseline_ws,
            "achieved_increase_bytes": self.control.achieved,
            "oom_kill_count": self.oom.total if self.oom else 0,
            "oom_kills": self.oom_kills,
            "respawns": self.control.respawns,
            "processes_left": sorted(set(survivors) | set(leftover)),
            "memory_released": released,
            "instances": [i.as_dict() for i in self.ended_instances + self.instances],
        }
        state.write_json(self.path(state.OUTCOME), outcome)
        self.control.phase = "ended"
        self.instances = []
        self.write_status(status=status, reason=reason, ended_at=outcome["ended_at"])
        self.event("end", reason=reason, status=status)
        self.log.close()
        self.reader.close()
        return outcome

    # -- main loop ---------------------------------------------------------
    def run(self):
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(signum, self.on_signal)
        started_at = round(self.clock(), 3)
        memory = self.reader.memory_stats()
        self.oom = OomTracker(self.target["path"], memory.get("oom_group"), memory.get("oom_kill_count"))
        members = self.members()
        self.app_records = [state.pid_record(p, self.proc_root) for p in members]
        for pid in members:
            self.seen[pid] = process_comm(self.proc_root, pid)
        first = read_sample(self.target, self.reader)
        self.control = Control(self.plan, started_at, first["working_set_bytes"] or 0)
        self.write_status()
        try:
            self.apply(self.control.start(self.clock()))
        except OSError as exc:
            return self.end("attach_failed", "cannot start stress-ng: %s" % exc)
        return self.loop()

    def loop(self):
        interval = self.plan["sample_interval_seconds"]
        next_sample = self.clock()
        self.write_status()
        while True:
            now = self.clock()
            requested = self.stop_reason or ("stop" if os.path.exists(self.path(state.STOP)) else None)
            ended = self.control.ending(now, requested, self.heartbeat_at())
            if ended:
                return self.end(ended["reason"], ended["detail"])
            landing, due = self.control.in_flight(), self.control.step_due(now)
            if landing or due:
                ws = read_sample(self.target, self.reader)["working_set_bytes"]
                if landing:
                    self.control.step_landed(now, ws)
                if due:
                    self.apply(self.control.ramp(now, ws))
            if now >= next_sample:
                next_sample += interval
                if not os.path.isdir(self.primary_dir):
                    return self.end("target_gone", "the target cgroup was removed")
                ended = self.on_sample(now)
                if ended:
                    return self.end(ended["reason"], ended["detail"])
            self.sleep(self.control.tick())

    def on_sample(self, now):
        """Read the target, record the sample, and carry out what the core decides on it."""
        members = self.members()
        for pid in members:
            if pid not in self.seen:
                self.seen[pid] = process_comm(self.proc_root, pid)
        groups = self.groups(members)
        stressors = self.stressor_pids(members, groups)
        for instance, pids in groups:
            instance.members = [[pid, start] for pid, start, _cpu in pids]
        sample = read_sample(self.target, self.reader, stress_bytes=self.control.aim(now))
        # The peak is kept here: the capped sample file may have thinned it out.
        self.peak_ws = max(self.peak_ws, sample["working_set_bytes"] or 0)
        self.samples.append(sample)
        found = self.check_oom(sample, stressors)
        exited = self.reap()
        actions = self.control.on_sample(
            now, sample["working_set_bytes"],
            target_gone=self.plan["guard"]["stop_if_target_gone"] and self.target_gone(),
            app_oom=any(k["victim"] == "app" for k in found),
            cpu_seconds=self.stress_cpu_seconds("cpu", members, groups) if self.plan.get("cpu") else None,
            exits=[error for _instance, error in exited],
            stressor_oom=any(k["victim"] == "stressor" for k in found) or self.oom.total > 0)
        ended = self.apply(actions, [instance for instance, _error in exited])
        if ended:
            return ended
        self.write_status(latest_sample=sample)
        return None


def main(argv):
    expdir = argv[1]
    supervisor = Supervisor(expdir)
    try:
        supervisor.run()
    except Exception as exc:  # noqa: BLE001 - never leave stress behind on a bug
        import traceback
        traceback.print_exc()
        supervisor.stop_reason = "signal"
        try:
            supervisor.end("supervisor_error", str(exc))
        except Exception:  # noqa: BLE001
            for instance in supervisor.instances:
                state.kill_group_verified(instance.record)
        return 1
    return 0


if __name__ == "__main__":
    # The detached supervisor process, not a module: its exit status is all it reports.
    sys.exit(main(sys.argv))  # pylint: disable=ansible-bad-function
