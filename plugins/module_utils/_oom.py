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


def attribute(kills, cgroup_path, stressor_pids, seen_pids, counter_delta, oom_group):
    """Keep the kills that belong to this cgroup and label each victim.

    A kill belongs here when the log names this memcg, or (log rate-limited) when
    the victim was seen in the cgroup, or when this cgroup's own OOM counter moved
    and the victim is a stress-ng worker.
    """
    out = []
    for kill in kills:
        where = in_cgroup(kill, cgroup_path)
        if where is False:
            continue
        if where is None and kill["pid"] not in seen_pids and not (counter_delta > 0 and is_stressor(kill, stressor_pids)):
            continue
        out.append(kill)
    group_kill = bool(oom_group) and len(out) > 1
    now_wall, now_mono = time.time(), time.monotonic()
    return [{
        "t": round(now_wall - (now_mono - k["mono"]), 3) if k["mono"] else round(now_wall, 3),
        "pid": k["pid"],
        "comm": k["comm"],
        "victim": "stressor" if is_stressor(k, stressor_pids) else "app",
        "group_kill": group_kill,
        "source": "kmsg",
    } for k in out]


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
