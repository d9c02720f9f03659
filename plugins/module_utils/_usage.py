# -*- coding: utf-8 -*-
# Copyright (c) 2026, chaosfleet.stress contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""One usage schema for cgroup v1 and v2, with one small adapter per version.

Node-side code: standard library only, Python 3.8+.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import time

from ansible_collections.chaosfleet.stress.plugins.module_utils._resolve import (
    WHOLE_READ_BELOW, process_comm, procs_file, read_pids, read_pids_file)

# v1 reports "no limit" as a page-aligned LONG_MAX; anything this large is unlimited.
_V1_UNLIMITED = 1 << 62
_READ_SIZE = 65536


def read_bytes(path):
    # os.open/os.read: no buffered text wrapper; sampling reads these files many times a second.
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        return os.read(fd, _READ_SIZE)
    except OSError:
        return None
    finally:
        os.close(fd)


def read_text(path):
    data = read_bytes(path)
    return None if data is None else data.decode("ascii", "replace")


def parse_int(data):
    """The content of a one-number file (bytes or text) as an int, or None (unreadable, empty, not a number)."""
    if data is None:
        return None
    try:
        return int(data)
    except ValueError:
        return None


def read_int(path):
    return parse_int(read_bytes(path))


def stat_key(name):
    """A key of a 'key value' file (memory.stat, cpu.stat, memory.events), prepared for stat_value."""
    raw = name.encode("ascii")
    return raw + b" ", b"\n" + raw + b" "


def stat_value(data, key):
    """The whole number on the line of ``key`` (from stat_key) in a 'key value' file's bytes, or None.

    It looks for the one line it needs instead of splitting the file (v1 memory.stat has some 40 lines; a
    sample needs three). The key must start its line and be followed by a space, so rss is not total_rss nor
    rss_huge. A missing key, or a value that is not one whole number, gives None.
    """
    if not data:
        return None
    head, needle = key
    if data.startswith(head):
        start = len(head)
    else:
        start = data.find(needle)
        if start < 0:
            return None
        start += len(needle)
    end = data.find(b"\n", start)
    try:
        return int(data[start:end] if end >= 0 else data[start:])
    except ValueError:
        return None


def first_value(data, keys, default=None):
    """stat_value of the first of ``keys`` present, else ``default``."""
    for key in keys:
        value = stat_value(data, key)
        if value is not None:
            return value
    return default


# v1 memory.stat: the hierarchical totals, so a container's children count too; the local value where a kernel
# has no totals.
_V1_INACTIVE_FILE = (stat_key("total_inactive_file"), stat_key("inactive_file"))
_V1_RSS = (stat_key("total_rss"), stat_key("rss"))
_V1_CACHE = (stat_key("total_cache"), stat_key("cache"))
_INACTIVE_FILE = stat_key("inactive_file")
_ANON = stat_key("anon")
_FILE = stat_key("file")
_OOM_KILL = stat_key("oom_kill")
_NR_PERIODS = stat_key("nr_periods")
_NR_THROTTLED = stat_key("nr_throttled")
_THROTTLED_TIME = stat_key("throttled_time")
_THROTTLED_USEC = stat_key("throttled_usec")
_USAGE_USEC = stat_key("usage_usec")


def _fd_budget():
    """How many cgroup files one process keeps open: half its descriptor limit, less a margin."""
    try:
        import resource
        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        if soft == resource.RLIM_INFINITY:
            soft = 65536
    except (ImportError, ValueError, OSError):
        return 0
    return max(0, min(soft, 65536) // 2 - 64)


class CgroupFiles(object):
    """Reads a target's cgroup files; with ``keep``, keeps them open from one sample to the next.

    A kept file is read again with pread at offset 0, which makes the kernel generate it afresh: the same
    values as opening it by its path, for a fifth of the system time. Once its cgroup is removed, a kept
    descriptor answers ENODEV, never the values of a cgroup made again at the same path; the file is then
    opened again by its path, so a cgroup that vanished reads as missing and a new one as itself.

    Only files the kernel generates on read (size 0, as on cgroupfs) are kept: a regular file (a test's fake
    tree) is opened each time, since a kept descriptor would go on reading it after an unlink or a rename.
    A v1 cgroup.procs is never kept: v1 serves an open one the PID list it built, until a second after its
    last read (V1Reader.pids opens it each time); a cgroup2 one is (read_pids below). All instances share one
    budget of descriptors (_fd_budget); past it, files are opened each time.
    """

    _budget = None

    def __init__(self, keep=False):
        self.keep = keep
        self.fds = {}
        self.unkept = set()

    def read(self, path):
        """The file's content as bytes, or None when it cannot be read."""
        fd = self.fds.get(path)
        if fd is not None:
            try:
                return os.pread(fd, _READ_SIZE, 0)
            except OSError:
                self._forget(path)  # ENODEV: its cgroup is gone; open the path again
        if path is None:
            return None
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            return None
        try:
            data = os.read(fd, _READ_SIZE)
            if self.keep and path not in self.unkept and self._take(path, fd):
                fd = None
            return data
        except OSError:
            return None
        finally:
            if fd is not None:
                os.close(fd)

    def read_pids(self, path):
        """The PIDs in a cgroup2 cgroup.procs, through a kept descriptor where there is one.

        Not for v1: v1 serves an open cgroup.procs the PID list it built, until a second after its last read.
        """
        if path in self.fds or (self.keep and path not in self.unkept):
            data = self.read(path)
            fd = self.fds.get(path)
            if data is not None and fd is not None:
                try:
                    if len(data) >= WHOLE_READ_BELOW:  # maybe more than a page: read on to the end
                        more = data
                        while more:
                            more = os.pread(fd, _READ_SIZE, len(data))
                            data += more
                    return [int(pid) for pid in data.split()]
                except (OSError, ValueError):
                    pass
        return read_pids_file(path)

    def _take(self, path, fd):
        if os.fstat(fd).st_size != 0:
            self.unkept.add(path)
            return False
        if CgroupFiles._budget is None:
            CgroupFiles._budget = _fd_budget()
        if CgroupFiles._budget <= 0:
            return False
        CgroupFiles._budget -= 1
        self.fds[path] = fd
        return True

    def _forget(self, path):
        fd = self.fds.pop(path)
        CgroupFiles._budget += 1
        try:
            os.close(fd)
        except OSError:
            pass

    def close(self):
        """Close every kept file (reading again opens them again)."""
        for path in list(self.fds):
            self._forget(path)


def parse_pressure(text):
    """A PSI file's text as {'some_avg10': float, 'full_avg10': float, ...}, or None where the kernel has none."""
    if not text:
        return None
    out = {}
    for line in text.splitlines():
        parts = line.split()
        if not parts:
            continue
        for field in parts[1:]:
            key, _sep, value = field.partition("=")
            if key in ("avg10", "avg60", "total"):
                out["%s_%s" % (parts[0], key)] = float(value) if key != "total" else int(value)
    return out or None


def read_pressure(path):
    """A PSI file as {'some_avg10': float, 'full_avg10': float, ...}, or None where the kernel has none."""
    return parse_pressure(read_text(path))


def read_pressures(reader, directory):
    """PSI of memory, cpu and io; which files exist is looked up once per reader."""
    if directory is None:
        return None
    if getattr(reader, "_psi_files", None) is None:
        reader._psi_files = [(r, os.path.join(directory, "%s.pressure" % r)) for r in ("memory", "cpu", "io")
                             if os.path.exists(os.path.join(directory, "%s.pressure" % r))]
    out = {}
    for kind, path in reader._psi_files:
        data = reader.files.read(path)
        value = parse_pressure(None if data is None else data.decode("ascii", "replace"))
        if value is not None:
            out[kind] = value
    return out or None


def _in(directory, name):
    return os.path.join(directory, name) if directory else None


class V1Reader(object):
    version = 1

    def __init__(self, dirs, keep_open=False):
        self.dirs = dirs
        self.memory = dirs.get("memory")
        self.cpu = dirs.get("cpu")
        self.cpuacct = dirs.get("cpuacct") or dirs.get("cpu")
        self.files = CgroupFiles(keep_open)
        self._psi_files = None
        # The paths once, not joined again at every sample.
        self._memory_stat = _in(self.memory, "memory.stat")
        self._limit = _in(self.memory, "memory.limit_in_bytes")
        self._usage = _in(self.memory, "memory.usage_in_bytes")
        self._peak = _in(self.memory, "memory.max_usage_in_bytes")
        self._oom_control = _in(self.memory, "memory.oom_control")
        self._quota = _in(self.cpu, "cpu.cfs_quota_us")
        self._period = _in(self.cpu, "cpu.cfs_period_us")
        self._cpu_stat = _in(self.cpu, "cpu.stat")
        self._cpuacct_usage = _in(self.cpuacct, "cpuacct.usage")

    def memory_stats(self, full=True):
        read = self.files.read
        stat = read(self._memory_stat)
        limit = parse_int(read(self._limit))
        return {
            "limit_bytes": None if limit is None or limit >= _V1_UNLIMITED else limit,
            "usage_bytes": parse_int(read(self._usage)),
            # Hierarchical totals, so a container's children count too.
            "inactive_file_bytes": first_value(stat, _V1_INACTIVE_FILE, 0),
            "rss_bytes": first_value(stat, _V1_RSS, 0),
            "cache_bytes": first_value(stat, _V1_CACHE, 0),
            "peak_bytes": parse_int(read(self._peak)) if full else None,
            "oom_kill_count": stat_value(read(self._oom_control), _OOM_KILL) or 0,
            "oom_group": None,
        }

    def cpu_stats(self, full=True):
        read = self.files.read
        quota = parse_int(read(self._quota)) if self.cpu and full else None
        period = parse_int(read(self._period)) if self.cpu and full else None
        stat = read(self._cpu_stat) if self.cpu else None
        usage_ns = parse_int(read(self._cpuacct_usage)) if self.cpuacct else None
        throttled = stat_value(stat, _THROTTLED_TIME)
        return {
            "quota_cores": (float(quota) / period) if quota and quota > 0 and period else None,
            "period_us": period,
            "usage_seconds": usage_ns / 1e9 if usage_ns is not None else None,
            "nr_periods": stat_value(stat, _NR_PERIODS),
            "nr_throttled": stat_value(stat, _NR_THROTTLED),
            "throttled_seconds": throttled / 1e9 if throttled is not None else None,
        }

    def pressure(self):
        # v1 has per-cgroup PSI only with psi_v1; the files live in the cpuacct hierarchy.
        return read_pressures(self, self.cpuacct or self.memory)

    def pids(self):
        # Opened each time: v1 serves an open cgroup.procs the PID list it built, until a second after its last read.
        return read_pids(self.dirs)

    def close(self):
        self.files.close()


class V2Reader(object):
    version = 2

    def __init__(self, dirs, keep_open=False):
        self.dirs = dirs
        self.dir = dirs.get("unified")
        self.files = CgroupFiles(keep_open)
        self._procs = procs_file(dirs)
        self._psi_files = None
        self._memory_stat = _in(self.dir, "memory.stat")
        self._events = _in(self.dir, "memory.events")
        self._max = _in(self.dir, "memory.max")
        self._oom_group = _in(self.dir, "memory.oom.group")
        self._current = _in(self.dir, "memory.current")
        self._peak = _in(self.dir, "memory.peak")
        self._cpu_max = _in(self.dir, "cpu.max")
        self._cpu_stat = _in(self.dir, "cpu.stat")

    def memory_stats(self, full=True):
        read = self.files.read
        stat = read(self._memory_stat)
        limit = read(self._max)
        group = parse_int(read(self._oom_group)) if full else None
        return {
            "limit_bytes": int(limit) if limit and limit.strip() != b"max" else None,
            "usage_bytes": parse_int(read(self._current)),
            "inactive_file_bytes": stat_value(stat, _INACTIVE_FILE) or 0,
            "rss_bytes": stat_value(stat, _ANON) or 0,
            "cache_bytes": stat_value(stat, _FILE) or 0,
            "peak_bytes": parse_int(read(self._peak)) if full else None,
            "oom_kill_count": stat_value(read(self._events), _OOM_KILL) or 0,
            "oom_group": None if group is None else bool(group),
        }

    def cpu_stats(self, full=True):
        read = self.files.read
        quota, period = None, None
        text = read(self._cpu_max) if full else None
        if text:
            fields = text.split()
            period = int(fields[1]) if len(fields) > 1 else 100000
            quota = None if fields[0] == b"max" else int(fields[0])
        stat = read(self._cpu_stat)
        usage, throttled = stat_value(stat, _USAGE_USEC), stat_value(stat, _THROTTLED_USEC)
        return {
            "quota_cores": (float(quota) / period) if quota and period else None,
            "period_us": period,
            "usage_seconds": usage / 1e6 if usage is not None else None,
            "nr_periods": stat_value(stat, _NR_PERIODS),
            "nr_throttled": stat_value(stat, _NR_THROTTLED),
            "throttled_seconds": throttled / 1e6 if throttled is not None else None,
        }

    def pressure(self):
        return read_pressures(self, self.dir)

    def pids(self):
        # v2 walks the cgroup's tasks afresh on every read from offset 0, so a kept cgroup.procs is never stale.
        return self.files.read_pids(self._procs) if self._procs else []

    def close(self):
        self.files.close()


def reader_for(target, keep_open=False):
    """The target's reader. ``keep_open``: keep its cgroup files open between samples (call close() after)."""
    if target["cgroup_version"] == 2:
        return V2Reader(target["dirs"], keep_open)
    return V1Reader(target["dirs"], keep_open)


def memory_with_working_set(reader, full=True):
    memory = reader.memory_stats(full)
    usage = memory["usage_bytes"]
    if usage is None:
        memory["working_set_bytes"] = None
    else:
        # As kubelet/cAdvisor compute it: usage minus inactive file pages, floored at zero.
        memory["working_set_bytes"] = max(0, usage - (memory["inactive_file_bytes"] or 0))
    return memory


def read_processes(target, proc_root):
    out = []
    for pid in read_pids(target["dirs"]):
        adj = read_int(os.path.join(proc_root, str(pid), "oom_score_adj"))
        out.append({"pid": pid, "comm": process_comm(proc_root, pid), "oom_score_adj": adj})
    return out


def read_usage(target, proc_root="/proc"):
    """The full usage schema for one resolved target."""
    reader = reader_for(target)
    usage = dict(target)
    usage["memory"] = memory_with_working_set(reader)
    usage["cpu"] = reader.cpu_stats()
    usage["pressure"] = reader.pressure()
    usage["processes"] = read_processes(target, proc_root)
    return usage


def read_sample(target, reader=None, stress_bytes=None):
    """One flat time-series point; cheaper than read_usage (no process list)."""
    reader = reader or reader_for(target)
    memory = memory_with_working_set(reader, full=False)
    cpu = reader.cpu_stats(full=False)
    pressure = reader.pressure() or {}
    return sample_from(memory, cpu, pressure, stress_bytes)


def sample_from(memory, cpu, pressure, stress_bytes=None, now=None):
    mem_psi = pressure.get("memory") or {}
    cpu_psi = pressure.get("cpu") or {}
    return {
        "t": round(now if now is not None else time.time(), 3),
        "working_set_bytes": memory["working_set_bytes"],
        "usage_bytes": memory["usage_bytes"],
        "rss_bytes": memory["rss_bytes"],
        "cache_bytes": memory["cache_bytes"],
        "limit_bytes": memory["limit_bytes"],
        "cpu_usage_seconds": cpu["usage_seconds"],
        "nr_periods": cpu["nr_periods"],
        "nr_throttled": cpu["nr_throttled"],
        "throttled_seconds": cpu["throttled_seconds"],
        "oom_kill_count": memory["oom_kill_count"],
        "psi_memory_some_avg10": mem_psi.get("some_avg10"),
        "psi_memory_full_avg10": mem_psi.get("full_avg10"),
        "psi_cpu_some_avg10": cpu_psi.get("some_avg10"),
        "stress_bytes": stress_bytes,
    }
