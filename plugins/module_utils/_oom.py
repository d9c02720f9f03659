# -*- coding: utf-8 -*-
# Copyright (c) 2026, chaosfleet.stress contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""OOM kills from the kernel log, attributed to a target cgroup and to a victim.

The cgroup counters (v1 memory.oom_control, v2 memory.events) say how many; the
kernel log says who. Node-side code: standard library only.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import codecs
import errno
import os
import re
import time

# "Memory cgroup out of memory: Killed process N (comm) ..." (kernels since 4.x), and the older form where the
# "Killed process N (comm) ..." line stands alone after "Kill process N (comm) score S or sacrifice child".
_KILLED_RE = re.compile(r"(?:^|: )Killed process (\d+) \((.{0,64}?)\)(?= total-vm|,|$)")
_DETAIL_RE = re.compile(r"oom-kill:(\S+)")
# Kernels before 4.19 name the memcg on a line of its own, before the kill.
_TASK_IN_RE = re.compile(r"^Task in (\S+) killed as a result of limit of (\S+)")
# memory.oom.group: the kills that follow have no detail line of their own.
_GROUP_RE = re.compile(r"^Tasks in (\S+) are going to be killed due to memory.oom.group set")
_INVOKED_RE = re.compile(r" invoked oom-killer: ")
KMSG_PATH = "/dev/kmsg"


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


class OomParser(object):
    """Kernel log text -> kill dicts {pid, comm, mono, oom_memcg, task_memcg}.

    Keeps what one read leaves unfinished: a record cut in the middle (the rest comes with the next
    read) and the "oom-kill:" detail line whose "Killed process" line has not arrived yet.
    """

    MAX_PENDING_DETAILS = 256

    def __init__(self):
        self.partial = ""
        self.details = {}
        self.task_in = None
        self.group = None

    def feed(self, text):
        """Parse the complete lines of ``text`` (after what earlier calls left); keep the last partial line."""
        lines = (self.partial + text).split("\n")
        self.partial = lines.pop()
        records = []
        for line in lines:
            if line.startswith(" "):  # kmsg continuation lines (" SUBSYSTEM=...") carry no message
                continue
            record = parse_kmsg_record(line)
            if record:
                records.append(record)
        return self.parse(records)

    def parse(self, records):
        kills = []
        for stamp, message in records:
            detail = _DETAIL_RE.search(message)
            if detail:
                fields = dict(item.split("=", 1) for item in detail.group(1).split(",") if "=" in item)
                if fields.get("pid", "").isdigit() and fields["pid"].isascii():
                    if len(self.details) >= self.MAX_PENDING_DETAILS:
                        self.details.pop(next(iter(self.details)))
                    self.details[int(fields["pid"])] = fields
                continue
            task_in = _TASK_IN_RE.search(message)
            if task_in:
                self.task_in = {"task_memcg": task_in.group(1), "oom_memcg": task_in.group(2)}
                continue
            group = _GROUP_RE.search(message)
            if group:
                self.group = {"task_memcg": group.group(1), "oom_memcg": group.group(1)}
                continue
            if _INVOKED_RE.search(message):  # a new OOM: what the last one named no longer applies
                self.task_in = self.group = None
                continue
            killed = _KILLED_RE.search(message)
            if killed:
                pid = int(killed.group(1))
                info = self.details.pop(pid, None) or self.task_in or self.group or {}
                self.task_in = None
                kills.append({"pid": pid, "comm": killed.group(2), "mono": stamp,
                              "oom_memcg": info.get("oom_memcg"), "task_memcg": info.get("task_memcg")})
        return kills


def parse_oom_messages(records):
    """Kernel messages -> kill dicts {pid, comm, mono, oom_memcg, task_memcg}."""
    return OomParser().parse(records)


def in_cgroup(kill, cgroup_path):
    """True/False when the log names the memcg, None when it was rate-limited away."""
    names = [kill.get("task_memcg"), kill.get("oom_memcg")]
    if not any(names):
        return None
    path = cgroup_path.rstrip("/")
    # The log shows paths as the kernel's cgroup namespace sees them; compare by suffix.
    return any(n and (path.endswith(n.rstrip("/")) or n.rstrip("/").endswith(path)) and n != "/" for n in names)


def kmsg_error(path=KMSG_PATH):
    """Why the kernel log cannot be read, or None when it can."""
    try:
        os.close(os.open(path, os.O_RDONLY | os.O_NONBLOCK))
    except OSError as exc:
        return "%s: %s" % (path, exc.strerror or exc)
    return None


class OomTracker(object):
    """OOM kills of one cgroup: kernel-log records reconciled with the cgroup's own counter.

    The counter says how many; the log says who. A kill the counter shows but the log does not
    explain within LOG_GRACE seconds (rate-limited or unreadable log) is recorded as "unknown", so
    log lines that arrive a tick late still name their victim. A line later still, for a kill that
    happened before such a record, comes back marked ``late``: it takes that record's place
    (merge_kills), so nothing is counted twice. When the log cannot be read at all, the counter's
    records say so (``kmsg_unavailable``). With memory.oom.group set, every kill is part of a group kill.

    The victim is the stressor only when its PID was seen as a member of a process group the
    supervisor started (``stressor_pids``, which the caller checks against recorded start times);
    a PID seen in the target outside those groups is the app, whatever its name. A PID never seen
    (it lived less than one sample) is "unknown": names prove nothing, an app may call itself stress-ng.
    """

    LOG_GRACE = 2.0

    def __init__(self, cgroup_path, oom_group, first_count, kmsg_path=KMSG_PATH):
        self.cgroup_path = cgroup_path
        self.oom_group = bool(oom_group)
        self.first_count = first_count or 0
        self.counted = 0
        self.recorded_pids = set()
        self.stressor_pids = set()
        self.app_pids = set()
        self.from_log = 0
        self.from_counter = 0
        self.counter_record_times = []  # when each counter record not yet named by a late log line was made
        self.unexplained_since = None
        self.kmsg_error = kmsg_error(kmsg_path) if kmsg_path else None

    def victim(self, pid):
        if pid in self.stressor_pids:
            return "stressor"
        if pid in self.app_pids:
            return "app"
        return "unknown"

    def belongs(self, kill):
        """A kill belongs to this cgroup when the log names its memcg, or (that line rate-limited away)
        when the victim was seen in it. Other unexplained kills are left to the counter."""
        where = in_cgroup(kill, self.cgroup_path)
        if where is not None:
            return where
        return kill["pid"] in self.stressor_pids or kill["pid"] in self.app_pids

    def update(self, kills, counter_value, seen_pids, stressor_pids=(), now=None):
        """New kill records since the last call.

        ``kills``: parsed kernel-log kills; ``seen_pids``: pid -> comm of processes seen in the cgroup;
        ``stressor_pids``: PIDs now in the process groups the supervisor started. Both accumulate:
        a worker seen once stays the stressor after it died.
        """
        now = time.time() if now is None else now
        self.stressor_pids.update(stressor_pids or ())
        self.app_pids -= self.stressor_pids
        self.app_pids.update(pid for pid in seen_pids if pid not in self.stressor_pids)
        self.counted = max(self.counted, (counter_value or 0) - self.first_count)
        out = []
        now_wall, now_mono = (time.time(), time.monotonic()) if kills else (None, None)
        for kill in kills:
            # The kernel logs a group kill's first victim twice.
            if kill["pid"] in self.recorded_pids or not self.belongs(kill):
                continue
            self.recorded_pids.add(kill["pid"])
            self.from_log += 1
            record = {
                "t": round(now_wall - (now_mono - kill["mono"]), 3) if kill["mono"] else round(now, 3),
                "pid": kill["pid"],
                "comm": kill["comm"] or seen_pids.get(kill["pid"]),
                "victim": self.victim(kill["pid"]),
                "group_kill": self.oom_group,
                "source": "kmsg",
            }
            if self.counter_record_times and (not kill["mono"] or record["t"] <= self.counter_record_times[0]):
                # The kill a counter record stood for: it is counted once, under its own name.
                self.counter_record_times.pop(0)
                self.from_counter -= 1
                record["late"] = True
            out.append(record)
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
        now = time.time() if now is None else now
        self.counter_record_times += [now] * missing
        record = {"t": round(now, 3), "pid": None, "comm": None,
                  "victim": "unknown", "group_kill": self.oom_group, "source": "counter"}
        if self.kmsg_error:
            record.update(kmsg_unavailable=True, detail="the kernel log cannot be read (%s)" % self.kmsg_error)
        return [dict(record) for _count in range(missing)]

    @property
    def total(self):
        return self.from_log + self.from_counter


def merge_kills(records, found, limit=None):
    """Add what OomTracker.update or flush returned to ``records`` (at most ``limit``): a ``late`` log
    record takes the place of the counter record it explains."""
    for kill in found:
        if kill.get("late"):
            index = next((i for i, old in enumerate(records) if old.get("source") == "counter"), None)
            if index is not None:
                records[index] = kill
                continue
        if limit is None or len(records) < limit:
            records.append(kill)
    return records


class KernelLog(object):
    """Reads /dev/kmsg from the moment it was opened. Where it cannot be read, ``error`` says why."""

    def __init__(self, path=KMSG_PATH):
        self.fd = None
        self.error = None
        self.parser = OomParser()
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        try:
            self.fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
            os.lseek(self.fd, 0, os.SEEK_END)
        except OSError as exc:
            self.error = "%s: %s" % (path, exc.strerror or exc)
            self.close()

    @property
    def available(self):
        return self.fd is not None

    def read(self):
        kills = []
        while self.fd is not None:
            try:
                raw = os.read(self.fd, 8192)
            except OSError as exc:
                if exc.errno == errno.EPIPE:  # overwritten while we were away: carry on
                    continue
                break
            if not raw:
                break
            kills += self.parser.feed(self.decoder.decode(raw))
        return kills

    def close(self):
        if self.fd is not None:
            try:
                os.close(self.fd)
            except OSError:
                pass
        self.fd = None
