# -*- coding: utf-8 -*-
# Copyright (c) 2026, chaosfleet.stress contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""OOM kills from the kernel log, attributed to a target cgroup and to a victim.

The cgroup counters (v1 memory.oom_control, v2 memory.events) say how many; the
kernel log says who. Node-side code: standard library only.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import os
import re
import time

_KILLED_RE = re.compile(r"(?:Memory cgroup out of memory|Out of memory).*?: Killed process (\d+) \((.*?)\)")
_DETAIL_RE = re.compile(r"oom-kill:(\S+)")
STRESSOR_COMMS = ("stress-ng",)


def parse_kmsg_record(raw):
    """One /dev/kmsg record -> (monotonic seconds, message) or None."""
    head, sep, message = raw.partition(";")
    if not sep:
        return None
    fields = head.split(",")
    try:
        stamp = int(fields[2]) / 1e6
    except (IndexError, ValueError):
        return None
    return stamp, message.split("\n", 1)[0]


def parse_oom_messages(records):
    """Kernel messages -> kill dicts {pid, comm, mono, oom_memcg, task_memcg}."""
    details, kills = {}, []
    for stamp, message in records:
        detail = _DETAIL_RE.search(message)
        if detail:
            fields = dict(item.split("=", 1) for item in detail.group(1).split(",") if "=" in item)
            if fields.get("pid", "").isdigit():
                details[int(fields["pid"])] = fields
            continue
        killed = _KILLED_RE.search(message)
        if killed:
            pid = int(killed.group(1))
            info = details.get(pid, {})
            kills.append({"pid": pid, "comm": killed.group(2), "mono": stamp,
                          "oom_memcg": info.get("oom_memcg"), "task_memcg": info.get("task_memcg")})
    return kills


def is_stressor(kill, stressor_pids=()):
    return kill["pid"] in stressor_pids or (kill["comm"] or "").startswith(STRESSOR_COMMS)


def in_cgroup(kill, cgroup_path):
    """True/False when the log names the memcg, None when it was rate-limited away."""
    names = [kill.get("task_memcg"), kill.get("oom_memcg")]
    if not any(names):
        return None
    path = cgroup_path.rstrip("/")
    # The log shows paths as the kernel's cgroup namespace sees them; compare by suffix.
    return any(n and (path.endswith(n.rstrip("/")) or n.rstrip("/").endswith(path)) and n != "/" for n in names)


def belongs(kill, cgroup_path, stressor_pids, seen_pids, counter_moved):
    """A kill belongs to this cgroup when the log names its memcg, or (log rate-limited) when the
    victim was seen in it, or when its own OOM counter moved and the victim is a stress-ng worker."""
    where = in_cgroup(kill, cgroup_path)
    if where is not None:
        return where
    return kill["pid"] in seen_pids or (counter_moved and is_stressor(kill, stressor_pids))


class OomTracker(object):
    """OOM kills of one cgroup: kernel-log records reconciled with the cgroup's own counter.

    The counter says how many; the log says who. A kill the counter shows but the log does not
    explain within LOG_GRACE seconds (rate-limited or unreadable log) is recorded as "unknown", so
    log lines that arrive a tick late still name their victim and nothing is counted twice. With
    memory.oom.group set, every kill is part of a group kill.
    """

    LOG_GRACE = 2.0

    def __init__(self, cgroup_path, oom_group, first_count):
        self.cgroup_path = cgroup_path
        self.oom_group = bool(oom_group)
        self.first_count = first_count or 0
        self.counted = 0
        self.recorded_pids = set()
        self.from_log = 0
        self.from_counter = 0
        self.unexplained_since = None

    def update(self, kills, counter_value, seen_pids, stressor_pids=(), now=None):
        """New kill records since the last call.

        ``kills``: parsed kernel-log kills; ``seen_pids``: pid -> comm of processes seen in the cgroup.
        """
        now = time.time() if now is None else now
        self.counted = max(self.counted, (counter_value or 0) - self.first_count)
        moved = self.counted > self.total
        out = []
        now_wall, now_mono = time.time(), time.monotonic()
        for kill in kills:
            # The kernel logs a group kill's first victim twice.
            if kill["pid"] in self.recorded_pids or not belongs(kill, self.cgroup_path, stressor_pids, seen_pids, moved):
                continue
            self.recorded_pids.add(kill["pid"])
            self.from_log += 1
            out.append({
                "t": round(now_wall - (now_mono - kill["mono"]), 3) if kill["mono"] else round(now, 3),
                "pid": kill["pid"],
                "comm": kill["comm"] or seen_pids.get(kill["pid"]),
                "victim": "stressor" if is_stressor(kill, stressor_pids) else "app",
                "group_kill": self.oom_group,
                "source": "kmsg",
            })
        if self.counted <= self.total:
            self.unexplained_since = None
        elif self.unexplained_since is None:
            self.unexplained_since = now
        elif now - self.unexplained_since >= self.LOG_GRACE:
            out += self.flush(now)
        return out

    def flush(self, now=None):
        """Record what the counter counted and the log never explained."""
        missing = self.counted - self.total
        if missing <= 0:
            return []
        self.from_counter += missing
        self.unexplained_since = None
        return [{"t": round(time.time() if now is None else now, 3), "pid": None, "comm": None,
                 "victim": "unknown", "group_kill": self.oom_group, "source": "counter"}] * missing

    @property
    def total(self):
        return self.from_log + self.from_counter


class KernelLog(object):
    """Reads /dev/kmsg from the moment it was opened; quietly empty where it cannot be read."""

    def __init__(self, path="/dev/kmsg"):
        self.fd = None
        try:
            self.fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
            os.lseek(self.fd, 0, os.SEEK_END)
        except OSError:
            self.close()

    @property
    def available(self):
        return self.fd is not None

    def read(self):
        records = []
        while self.fd is not None:
            try:
                raw = os.read(self.fd, 8192)
            except OSError as exc:
                if exc.errno == errno.EPIPE:  # overwritten while we were away: carry on
                    continue
                break
            if not raw:
                break
            record = parse_kmsg_record(raw.decode("utf-8", "replace"))
            if record:
                records.append(record)
        return parse_oom_messages(records)

    def close(self):
        if self.fd is not None:
            try:
                os.close(self.fd)
            except OSError:
                pass
        self.fd = None
