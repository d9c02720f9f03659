# -*- coding: utf-8 -*-
# Copyright (c) 2026, chaosfleet.stress contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The node's experiment state directory and PID records that carry start times.

Any later run, from any controller, finds an experiment here by name. Signals go
only to PIDs recorded here, and only while their start time still matches, so a
reused PID is never hit. Node-side code: standard library only.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import re
import signal
import time

DEFAULT_STATE_DIR = "/run/chaosfleet"
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}", re.ASCII)

SPEC = "spec.json"
STATUS = "status.json"
OUTCOME = "outcome.json"
SAMPLES = "samples.jsonl"
EVENTS = "events.jsonl"
HEARTBEAT = "heartbeat"
STOP = "stop"
LOG = "supervisor.log"


class StateError(Exception):
    pass


def validate_name(name):
    # fullmatch: '$' would let a trailing newline through.
    if not isinstance(name, str) or "/" in name or ".." in name or not _NAME_RE.fullmatch(name):
        raise StateError("experiment name %r is not allowed: use letters, digits, '.', '_' and '-' "
                         "(no '/' or '..', at most 100 characters)" % (name,))
    return name


def ensure_root_dir(path):
    """Create ``path`` (mode 0700, root-only) and refuse one that others can write."""
    if not os.path.isdir(path):
        os.makedirs(path, 0o700)
    info = os.stat(path)
    if info.st_uid != os.geteuid() or info.st_mode & 0o022:
        raise StateError("state directory %s must be owned by the running user and not group/world writable" % path)
    return path


def experiment_dir(state_dir, name):
    return os.path.join(state_dir, "experiments", validate_name(name))


def write_json(path, data):
    tmp = "%s.tmp.%d" % (path, os.getpid())
    with open(tmp, "w") as handle:
        json.dump(data, handle, sort_keys=True)
    os.rename(tmp, path)


def read_json(path, default=None):
    try:
        with open(path) as handle:
            return json.load(handle)
    except (IOError, OSError, ValueError):
        return default


def append_jsonl(path, record):
    with open(path, "a") as handle:
        handle.write(json.dumps(record, sort_keys=True) + "\n")


def read_jsonl(path, since=None):
    out = []
    try:
        with open(path) as handle:
            for line in handle:
                try:
                    record = json.loads(line)
                except ValueError:
                    continue  # a line cut by a crash mid-write
                if since is None or record.get("t", 0) >= since:
                    out.append(record)
    except (IOError, OSError):
        pass
    return out


def list_experiments(state_dir):
    base = os.path.join(state_dir, "experiments")
    try:
        return sorted(n for n in os.listdir(base) if os.path.isdir(os.path.join(base, n)))
    except OSError:
        return []


def proc_start_time(pid, proc_root="/proc"):
    """Start time of ``pid`` in clock ticks since boot (field 22 of stat), or None if gone."""
    try:
        with open(os.path.join(proc_root, str(pid), "stat")) as handle:
            text = handle.read()
    except (IOError, OSError):
        return None
    # comm may contain spaces and parentheses: split after the last ')'.
    fields = text[text.rfind(")") + 2:].split()
    try:
        return int(fields[19])
    except (IndexError, ValueError):
        return None


def proc_pgid(pid, proc_root="/proc"):
    try:
        with open(os.path.join(proc_root, str(pid), "stat")) as handle:
            text = handle.read()
        return int(text[text.rfind(")") + 2:].split()[2])
    except (IOError, OSError, IndexError, ValueError):
        return None


def proc_state(pid, proc_root="/proc"):
    try:
        with open(os.path.join(proc_root, str(pid), "stat")) as handle:
            text = handle.read()
        return text[text.rfind(")") + 2:].split()[0]
    except (IOError, OSError, IndexError):
        return None


def proc_cpu_seconds(pid, proc_root="/proc"):
    """utime + stime of ``pid`` in seconds, or 0 if gone."""
    try:
        with open(os.path.join(proc_root, str(pid), "stat")) as handle:
            text = handle.read()
        fields = text[text.rfind(")") + 2:].split()
        return (int(fields[11]) + int(fields[12])) / float(os.sysconf("SC_CLK_TCK"))
    except (IOError, OSError, IndexError, ValueError):
        return 0.0


def pid_record(pid, proc_root="/proc"):
    return {"pid": pid, "start_time": proc_start_time(pid, proc_root)}


def is_alive(record, proc_root="/proc"):
    """True while the recorded process still runs (same PID and start time, not a zombie)."""
    if not record or not record.get("pid"):
        return False
    start = proc_start_time(record["pid"], proc_root)
    return start is not None and start == record.get("start_time") and proc_state(record["pid"], proc_root) != "Z"


def signal_recorded(record, sig, proc_root="/proc"):
    """Signal a recorded process only if it is still the one recorded. Returns True if sent."""
    if not is_alive(record, proc_root):
        return False
    try:
        os.kill(record["pid"], sig)
        return True
    except OSError:
        return False


def group_members(pgid, since_ticks, candidates, proc_root="/proc"):
    """PIDs among ``candidates`` in process group ``pgid`` that started at or after ``since_ticks``."""
    out = []
    for pid in candidates:
        if proc_pgid(pid, proc_root) == pgid:
            start = proc_start_time(pid, proc_root)
            if start is not None and start >= since_ticks:
                out.append(pid)
    return out


def all_pids(proc_root="/proc"):
    try:
        return [int(n) for n in os.listdir(proc_root) if n.isdigit()]
    except OSError:
        return []


def kill_group_verified(record, proc_root="/proc", grace=2.0):
    """End a process group we started: TERM, then KILL; only members started after the leader.

    Returns the PIDs still alive afterwards (empty on success).
    """
    leader_start = record.get("start_time")
    pgid = record.get("pid")
    if leader_start is None or pgid is None:
        return []
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 3.0)):
        members = group_members(pgid, leader_start, all_pids(proc_root), proc_root)
        if not members:
            return []
        for pid in members:
            try:
                os.kill(pid, sig)
            except OSError:
                pass
        deadline = time.time() + wait
        while time.time() < deadline:
            alive = [p for p in members if proc_start_time(p, proc_root) is not None and proc_state(p, proc_root) != "Z"]
            if not alive:
                return []
            time.sleep(0.05)
    return [p for p in group_members(pgid, leader_start, all_pids(proc_root), proc_root)
            if proc_state(p, proc_root) != "Z"]
