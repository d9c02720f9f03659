# -*- coding: utf-8 -*-
# Copyright (c) 2026, chaosfleet.stress contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The per-experiment supervisor: a detached process on the node.

It attaches every stress process to the target cgroup before it allocates,
grows memory in steps, enforces the deadline, the heartbeat and the guards,
samples the target, and on any ending kills only the process groups it
started, checks they are gone, and records the outcome.

Run as ``python3 -m ...._supervisor EXPERIMENT_DIR`` from the copy the stressor
module installs under the state directory, so nothing depends on Ansible's
temporary files. Node-side code: standard library only.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import shutil
import signal
import subprocess
import sys
import time

from ansible_collections.chaosfleet.stress.plugins.module_utils import _state as state
from ansible_collections.chaosfleet.stress.plugins.module_utils._oom import KernelLog, OomTracker
from ansible_collections.chaosfleet.stress.plugins.module_utils._plan import (
    MIB, cpu_argv, first_memory_step_bytes, instance_overhead, io_argv, memory_argv,
)
from ansible_collections.chaosfleet.stress.plugins.module_utils._resolve import process_comm, read_pids
from ansible_collections.chaosfleet.stress.plugins.module_utils._usage import read_sample, reader_for

CONTROL_TICK = 0.25
# Hierarchies a stress process must not join: device rules and systemd bookkeeping are not resources.
ATTACH_SKIP = ("devices", "name=systemd")
MAX_TOPUPS = 2
SETTLE_SECONDS = 15.0
MAX_RESPAWNS = 200
OOM_RECORD_LIMIT = 500
CPU_WINDOW_SECONDS = 4.0
CPU_TOLERANCE_POINTS = 3.0
CPU_GAIN = 0.5
MAX_CPU_CORRECTIONS = 10


def attach_dirs(target):
    return [d for name, d in sorted(target["dirs"].items()) if name not in ATTACH_SKIP]


def own_cgroup_path(version):
    with open("/proc/self/cgroup") as handle:
        for line in handle.read().splitlines():
            _hier, controllers, path = line.split(":", 2)
            if version == 2 and controllers == "":
                return path
            if version == 1 and "memory" in controllers.split(","):
                return path
    return None


class Instance(object):
    def __init__(self, kind, argv, popen, nbytes):
        self.kind = kind
        self.argv = argv
        self.popen = popen
        self.nbytes = nbytes
        self.record = state.pid_record(popen.pid)
        self.started = time.time()

    def as_dict(self):
        return {"kind": self.kind, "argv": self.argv, "pid": self.record["pid"],
                "start_time": self.record["start_time"], "bytes": self.nbytes, "started_at": round(self.started, 3)}


class Supervisor(object):
    def __init__(self, expdir):
        self.dir = expdir
        self.spec = state.read_json(os.path.join(expdir, state.SPEC))
        self.target = self.spec["target"]
        self.plan = self.spec["plan"]
        self.proc_root = self.spec.get("proc_root", "/proc")
        self.reader = reader_for(self.target)
        self.instances = []
        self.ended_instances = []
        self.stop_reason = None
        self.oom_kills = []
        self.oom = None
        self.respawns = 0
        self.memory_added_steps = 0
        self.topups = 0
        self.launched_payload = 0
        self.planned_increase = 0
        self.cpu_window = None
        self.cpu_corrections = 0
        self.cpu_load = None
        self.phase = "starting"
        self.seen = {}
        self.log = KernelLog()

    # -- paths and records -------------------------------------------------
    def path(self, name):
        return os.path.join(self.dir, name)

    def write_status(self, **extra):
        status = {
            "state": self.phase if self.phase in ("starting", "ended", "failed") else "running",
            "phase": self.phase,
            "supervisor": state.pid_record(os.getpid()),
            "started_at": self.started_at,
            "deadline": self.deadline,
            "instances": [i.as_dict() for i in self.instances],
            "oom_kill_count": self.oom.total if self.oom else 0,
            "stress_bytes": self.stress_bytes_now(),
            "updated_at": round(time.time(), 3),
        }
        status.update(extra)
        state.write_json(self.path(state.STATUS), status)

    def event(self, name, **fields):
        fields.update({"t": round(time.time(), 3), "event": name})
        state.append_jsonl(self.path(state.EVENTS), fields)

    # -- launching ---------------------------------------------------------
    def _attach_in_child(self):
        """Runs in the forked child before exec: join the target cgroup or die trying."""
        try:
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

    def launch(self, kind, argv, nbytes=None):
        command = list(argv)
        if self.spec.get("ns_pid"):
            command = [self.spec["nsenter"], "-t", str(self.spec["ns_pid"]), "-p", "--"] + command
        with open(self.path("stress.log"), "ab") as log:
            popen = subprocess.Popen(command, preexec_fn=self._attach_in_child, start_new_session=True,
                                     stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                     cwd=self.dir, close_fds=True)
        instance = Instance(kind, argv, popen, nbytes)
        self.instances.append(instance)
        self.event("launch", kind=kind, argv=argv, pid=popen.pid, bytes=nbytes)
        return instance

    def remaining(self):
        return max(1.0, self.deadline - time.time())

    def launch_memory(self, nbytes, workers, sample):
        # Remembered so settling waits for the instances to fault their pages in.
        self.launched_payload += nbytes
        self.planned_increase += nbytes + instance_overhead(workers)
        memory = self.plan["memory"]
        argv = memory_argv(self.spec["stress_ng"], workers, nbytes, memory["method"], self.remaining(),
                           self.plan["on_oom"] == "stop")
        return self.launch("memory", argv, nbytes)

    # -- memory growth -----------------------------------------------------
    def stress_bytes_now(self):
        """The increase the experiment aims for at this moment (the ramp, then the full size)."""
        memory = self.plan.get("memory")
        if not memory or self.phase in ("starting", "ended", "failed"):
            return None
        ramp = memory["ramp_seconds"]
        if not ramp:
            return memory["bytes"]
        done = min(1.0, max(0.0, (time.time() - self.started_at) / ramp))
        return int(memory["bytes"] * done)

    def increase(self, sample):
        return (sample["working_set_bytes"] or 0) - self.baseline_ws

    def step_due(self):
        memory = self.plan["memory"]
        if self.memory_added_steps >= memory["steps"]:
            return False
        if not memory["ramp_seconds"]:
            return True
        step_time = memory["ramp_seconds"] * (self.memory_added_steps + 0.5) / memory["steps"]
        return time.time() - self.started_at >= step_time

    def grow_memory(self, sample):
        memory = self.plan["memory"]
        if self.memory_added_steps == 0:
            self.launch_memory(first_memory_step_bytes(memory), memory["workers"], sample)
            self.memory_added_steps = 1
            return
        want = memory["bytes"] * (self.memory_added_steps + 1) // memory["steps"]
        self.memory_added_steps += 1
        # A slow or throttled container faults pages in late: never count less than was launched.
        add = want - max(self.increase(sample), self.planned_increase) - instance_overhead(memory["workers"])
        if memory["over_limit"]:
            add = memory["bytes"] // memory["steps"]
        if add >= MIB:
            self.launch_memory(add, memory["workers"], sample)

    def maybe_top_up(self, sample):
        """After the last step settles, close any shortfall the overhead estimate left."""
        memory = self.plan["memory"]
        if memory["over_limit"] or self.topups >= MAX_TOPUPS:
            self.phase = "holding"
            return
        short = memory["bytes"] - self.increase(sample)
        # A top-up covers what the overhead estimate missed (it differs between kernels and cgroup
        # versions); settled() has already waited for the last instance to fault its pages in.
        short = min(short, memory["bytes"] // 2)
        if short > max(2 * MIB, memory["bytes"] // 100) + instance_overhead(1):
            self.topups += 1
            self.launch_memory(short - instance_overhead(1), 1, sample)
            self.settle_since, self.settle_ws = time.time(), None
            return
        self.phase = "holding"

    def settled(self, sample):
        """True once the instances faulted most of what they were given in and the working set stopped growing
        (within 1 MiB over two samples), or time ran out (a throttled container allocates slowly)."""
        ws = sample["working_set_bytes"] or 0
        grown = self.increase(sample) >= 0.8 * self.launched_payload
        stable = grown and self.settle_ws is not None and abs(ws - self.settle_ws) <= MIB
        self.settle_ws = ws
        waited = time.time() - self.settle_since
        return stable and waited >= 1.0 or waited >= SETTLE_SECONDS

    # -- CPU load control --------------------------------------------------
    def stress_cpu_seconds(self, kind):
        """CPU time used so far by the live processes of our ``kind`` instances."""
        total = 0.0
        members = self.members()
        for instance in self.instances:
            if instance.kind != kind:
                continue
            for pid in state.group_members(instance.record["pid"], instance.record["start_time"] or 0,
                                           members, self.proc_root):
                total += state.proc_cpu_seconds(pid, self.proc_root)
        return total

    def correct_cpu_load(self):
        """stress-ng's duty cycle runs on wall time, so contention makes it undershoot: measure and relaunch."""
        cpu = self.plan["cpu"]
        now = time.time()
        used = self.stress_cpu_seconds("cpu")
        if self.cpu_window is None or used < self.cpu_window[1]:
            self.cpu_window = (now, used)
            return
        start, before = self.cpu_window
        if now - start < CPU_WINDOW_SECONDS:
            return
        self.cpu_window = (now, used)
        measured = (used - before) / (now - start)
        error_points = (measured - cpu["cores"]) / cpu["basis_cores"] * 100
        if abs(error_points) <= CPU_TOLERANCE_POINTS or self.cpu_corrections >= MAX_CPU_CORRECTIONS:
            return
        current = self.cpu_load
        # Half-way steps: measurements under contention are noisy, and a full step overshoots.
        target = current * cpu["cores"] / measured if measured > 0 else current * 2
        wanted = int(round(min(100, max(1, current + (target - current) * CPU_GAIN))))
        if wanted == current:
            return
        self.cpu_corrections += 1
        self.cpu_load = wanted
        for instance in [i for i in self.instances if i.kind == "cpu"]:
            state.kill_group_verified(instance.record, self.proc_root, grace=0.5)
            instance.popen.wait()
            self.instances.remove(instance)
            self.ended_instances.append(instance)
        self.launch("cpu", cpu_argv(self.spec["stress_ng"], dict(cpu, per_worker_load=wanted), self.remaining()))
        self.event("cpu_corrected", measured_cores=round(measured, 3), per_worker_load=wanted)
        self.cpu_window = None

    # -- watching ----------------------------------------------------------
    def members(self):
        return read_pids(self.target["dirs"])

    def stressor_pids(self, members):
        out = set()
        for instance in self.instances:
            out.update(state.group_members(instance.record["pid"], instance.record["start_time"] or 0, members,
                                           self.proc_root))
            out.add(instance.record["pid"])
        return out

    def target_gone(self, members, stressors):
        primary = self.target["dirs"].get("memory") or self.target["dirs"].get("unified")
        if not os.path.isdir(primary):
            return True
        if self.app_records and not any(state.is_alive(r, self.proc_root) for r in self.app_records):
            return True
        return False

    def check_oom(self, sample, stressors):
        kills = self.log.read() if self.log.available else []
        found = self.oom.update(kills, sample["oom_kill_count"], self.seen, stressors, sample["t"])
        for kill in found:
            if len(self.oom_kills) < OOM_RECORD_LIMIT:
                self.oom_kills.append(kill)
            state.append_jsonl(self.path(state.EVENTS), dict(kill, event="oom_kill"))
        return found

    def heartbeat_lost(self):
        timeout = self.plan.get("heartbeat_timeout_seconds")
        if not timeout:
            return False
        try:
            last = os.stat(self.path(state.HEARTBEAT)).st_mtime
        except OSError:
            last = self.started_at
        return time.time() - last > timeout

    def reap(self, found_ooms):
        """Notice instances that exited; respawn them when keeping pressure."""
        for instance in list(self.instances):
            code = instance.popen.poll()
            if code is None:
                continue
            self.instances.remove(instance)
            self.ended_instances.append(instance)
            self.event("exit", kind=instance.kind, pid=instance.record["pid"], code=code)
            if code == 111 and os.path.exists(self.path("attach_error")):
                return "attach_failed"
            if time.time() >= self.deadline - 1:
                continue
            stressor_oom = any(k["victim"] == "stressor" for k in found_ooms) or self.oom.total > 0
            if self.plan["on_oom"] == "stop" and stressor_oom:
                return "oom"
            if self.respawns < MAX_RESPAWNS:
                self.respawns += 1
                self.launch(instance.kind, self._refresh_timeout(instance.argv), instance.nbytes)
        return None

    def _refresh_timeout(self, argv):
        argv = list(argv)
        argv[argv.index("--timeout") + 1] = "%ds" % (int(self.remaining()) + 2)
        return argv

    # -- ending ------------------------------------------------------------
    def on_signal(self, signum, _frame):
        self.stop_reason = "stop" if os.path.exists(self.path(state.STOP)) else "signal"

    def end(self, reason, detail=None):
        self.phase = "ending"
        survivors = []
        for instance in self.instances:
            survivors += state.kill_group_verified(instance.record, self.proc_root, grace=1.0)
            try:
                instance.popen.wait(timeout=5)
            except subprocess.TimeoutExpired:
                survivors.append(instance.record["pid"])
        ended_at = time.time()
        leftover = sorted(self.stressor_pids(self.members()) & set(self.members()))
        released = None
        if self.plan.get("memory"):
            deadline = time.time() + 5
            while True:
                sample = read_sample(self.target, self.reader)
                released = self.increase(sample) <= max(8 * MIB, self.plan["memory"]["bytes"] // 20)
                if released or time.time() > deadline or not os.path.isdir(self.primary_dir):
                    break
                time.sleep(0.2)
        if self.plan.get("io"):
            shutil.rmtree(self.plan["io"]["path"], ignore_errors=True)
        if self.oom is not None:
            if os.path.isdir(self.primary_dir):
                self.check_oom(read_sample(self.target, self.reader), set())
            for kill in self.oom.flush():
                self.oom_kills.append(kill)
                state.append_jsonl(self.path(state.EVENTS), dict(kill, event="oom_kill"))
        samples = state.read_jsonl(self.path(state.SAMPLES))
        peak = max([s["working_set_bytes"] or 0 for s in samples] or [0])
        status = {"deadline": "finished", "stop": "stopped"}.get(reason, "aborted")
        outcome = {
            "status": status,
            "reason": reason,
            "detail": detail,
            "started_at": self.started_at,
            "ended_at": round(ended_at, 3),
            "deadline": self.deadline,
            "peak_working_set_bytes": peak,
            "baseline_working_set_bytes": self.baseline_ws,
            "achieved_increase_bytes": self.achieved,
            "oom_kill_count": self.oom.total if self.oom else 0,
            "oom_kills": self.oom_kills,
            "respawns": self.respawns,
            "processes_left": sorted(set(survivors) | set(leftover)),
            "memory_released": released,
            "instances": [i.as_dict() for i in self.ended_instances + self.instances],
        }
        state.write_json(self.path(state.OUTCOME), outcome)
        self.phase = "ended"
        self.instances = []
        self.write_status(status=status, reason=reason, ended_at=outcome["ended_at"])
        self.event("end", reason=reason, status=status)
        self.log.close()
        return outcome

    # -- main loop ---------------------------------------------------------
    def run(self):
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(signum, self.on_signal)
        self.started_at = round(time.time(), 3)
        self.deadline = round(self.started_at + self.plan["duration_seconds"], 3)
        self.primary_dir = self.target["dirs"].get("memory") or self.target["dirs"].get("unified")
        memory = self.reader.memory_stats()
        self.oom = OomTracker(self.target["path"], memory.get("oom_group"), memory.get("oom_kill_count"))
        members = self.members()
        self.app_records = [state.pid_record(p, self.proc_root) for p in members]
        for pid in members:
            self.seen[pid] = process_comm(self.proc_root, pid)
        first = read_sample(self.target, self.reader)
        self.baseline_ws = first["working_set_bytes"] or 0
        self.achieved = None
        self.write_status()
        try:
            if self.plan.get("io"):
                os.makedirs(self.plan["io"]["path"], 0o700)
                self.launch("io", io_argv(self.spec["stress_ng"], self.plan["io"], self.remaining()))
            if self.plan.get("cpu"):
                self.cpu_load = self.plan["cpu"]["per_worker_load"]
                self.launch("cpu", cpu_argv(self.spec["stress_ng"], self.plan["cpu"], self.remaining()))
            if self.plan.get("memory"):
                self.grow_memory(first)
        except OSError as exc:
            return self.end("attach_failed", "cannot start stress-ng: %s" % exc)
        self.phase = "ramping" if self.plan.get("memory") else "holding"
        self.settle_since, self.settle_ws = time.time(), None
        return self.loop()

    def loop(self):
        interval = self.plan["sample_interval_seconds"]
        next_sample = time.time()
        self.write_status()
        while True:
            now = time.time()
            if self.stop_reason or os.path.exists(self.path(state.STOP)):
                return self.end(self.stop_reason if self.stop_reason == "signal" else "stop")
            if now >= self.deadline:
                return self.end("deadline")
            if self.heartbeat_lost():
                return self.end("heartbeat")
            if self.phase == "ramping" and self.step_due():
                # Ramp steps run on the control tick, not the sample tick, so they land on time.
                self.grow_memory(read_sample(self.target, self.reader))
                self.settle_since, self.settle_ws = time.time(), None
            if now >= next_sample:
                next_sample += interval
                if not os.path.isdir(self.primary_dir):
                    return self.end("target_gone", "the target cgroup was removed")
                members = self.members()
                for pid in members:
                    if pid not in self.seen:
                        self.seen[pid] = process_comm(self.proc_root, pid)
                stressors = self.stressor_pids(members)
                sample = read_sample(self.target, self.reader, stress_bytes=self.stress_bytes_now())
                state.append_jsonl(self.path(state.SAMPLES), sample)
                found = self.check_oom(sample, stressors)
                reason = self.evaluate(sample, members, stressors, found)
                if reason:
                    return self.end(*reason)
                self.write_status(latest_sample=sample)
            time.sleep(CONTROL_TICK)

    def evaluate(self, sample, members, stressors, found):
        guard = self.plan["guard"]
        if guard["stop_if_target_gone"] and self.target_gone(members, stressors):
            return ("target_gone", "the target's processes are gone (restarted or removed)")
        limit = guard.get("max_working_set_bytes")
        if limit and (sample["working_set_bytes"] or 0) > limit:
            return ("guard:max_working_set", "working set %d above %d" % (sample["working_set_bytes"], limit))
        if guard["stop_on_app_oom_kill"] and any(k["victim"] == "app" for k in found):
            return ("guard:app_oom_kill", "the OOM killer took an application process")
        if self.plan.get("cpu"):
            self.correct_cpu_load()
        exit_reason = self.reap(found)
        if exit_reason:
            detail = open(self.path("attach_error")).read() if exit_reason == "attach_failed" else None
            return (exit_reason, detail)
        if self.plan.get("memory") and self.phase in ("ramping", "settling"):
            if self.phase == "ramping" and self.step_due():
                self.grow_memory(sample)
                self.settle_since, self.settle_ws = time.time(), None
            if self.memory_added_steps >= self.plan["memory"]["steps"]:
                self.phase = "settling"
                if self.settled(sample):
                    self.maybe_top_up(sample)
                    if self.phase == "holding":
                        self.achieved = self.increase(sample)
                        self.event("holding", achieved_increase_bytes=self.achieved)
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
