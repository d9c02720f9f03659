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

from ansible_collections.chaosfleet.stress.plugins.module_utils._resolve import process_comm, read_pids

# v1 reports "no limit" as a page-aligned LONG_MAX; anything this large is unlimited.
_V1_UNLIMITED = 1 << 62


def read_text(path):
    # os.open/os.read: no buffered text wrapper; sampling reads these files many times a second.
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        return os.read(fd, 65536).decode("ascii", "replace")
    except OSError:
        return None
    finally:
        os.close(fd)


def read_int(path):
    text = read_text(path)
    if text is None:
        return None
    try:
        return int(text.strip())
    except ValueError:
        return None


def read_flat_keyed(path):
    """'key value' lines (memory.stat, cpu.stat, memory.events) as a dict of ints."""
    text = read_text(path)
    out = {}
    if text is None:
        return out
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2:
            try:
                out[parts[0]] = int(parts[1])
            except ValueError:
                pass
    return out


def read_pressure(path):
    """A PSI file as {'some_avg10': float, 'full_avg10': float, ...}, or None where the kernel has none."""
    text = read_text(path)
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


def read_pressures(reader, directory):
    """PSI of memory, cpu and io; which files exist is looked up once per reader."""
    if directory is None:
        return None
    if getattr(reader, "_psi_files", None) is None:
        reader._psi_files = [(r, os.path.join(directory, "%s.pressure" % r)) for r in ("memory", "cpu", "io")
                             if os.path.exists(os.path.join(directory, "%s.pressure" % r))]
    out = {}
    for resource, path in reader._psi_files:
        value = read_pressure(path)
        if value is not None:
            out[resource] = value
    return out or None


class V1Reader(object):
    version = 1

    def __init__(self, dirs):
        self.memory = dirs.get("memory")
        self.cpu = dirs.get("cpu")
        self.cpuacct = dirs.get("cpuacct") or dirs.get("cpu")

    def memory_stats(self, full=True):
        d = self.memory
        stat = read_flat_keyed(os.path.join(d, "memory.stat"))
        limit = read_int(os.path.join(d, "memory.limit_in_bytes"))
        oom = read_flat_keyed(os.path.join(d, "memory.oom_control"))
        return {
            "limit_bytes": None if limit is None or limit >= _V1_UNLIMITED else limit,
            "usage_bytes": read_int(os.path.join(d, "memory.usage_in_bytes")),
            # Hierarchical totals, so a container's children count too.
            "inactive_file_bytes": stat.get("total_inactive_file", stat.get("inactive_file", 0)),
            "rss_bytes": stat.get("total_rss", stat.get("rss", 0)),
            "cache_bytes": stat.get("total_cache", stat.get("cache", 0)),
            "peak_bytes": read_int(os.path.join(d, "memory.max_usage_in_bytes")) if full else None,
            "oom_kill_count": oom.get("oom_kill", 0),
            "oom_group": None,
        }

    def cpu_stats(self, full=True):
        quota = read_int(os.path.join(self.cpu, "cpu.cfs_quota_us")) if self.cpu and full else None
        period = read_int(os.path.join(self.cpu, "cpu.cfs_period_us")) if self.cpu and full else None
        stat = read_flat_keyed(os.path.join(self.cpu, "cpu.stat")) if self.cpu else {}
        usage_ns = read_int(os.path.join(self.cpuacct, "cpuacct.usage")) if self.cpuacct else None
        return {
            "quota_cores": (float(quota) / period) if quota and quota > 0 and period else None,
            "period_us": period,
            "usage_seconds": usage_ns / 1e9 if usage_ns is not None else None,
            "nr_periods": stat.get("nr_periods"),
            "nr_throttled": stat.get("nr_throttled"),
            "throttled_seconds": stat["throttled_time"] / 1e9 if "throttled_time" in stat else None,
        }

    def pressure(self):
        # v1 has per-cgroup PSI only with psi_v1; the files live in the cpuacct hierarchy.
        return read_pressures(self, self.cpuacct or self.memory)


class V2Reader(object):
    version = 2

    def __init__(self, dirs):
        self.dir = dirs.get("unified")

    def memory_stats(self, full=True):
        d = self.dir
        stat = read_flat_keyed(os.path.join(d, "memory.stat"))
        events = read_flat_keyed(os.path.join(d, "memory.events"))
        limit = read_text(os.path.join(d, "memory.max"))
        group = read_int(os.path.join(d, "memory.oom.group")) if full else None
        return {
            "limit_bytes": int(limit) if limit and limit.strip() != "max" else None,
            "usage_bytes": read_int(os.path.join(d, "memory.current")),
            "inactive_file_bytes": stat.get("inactive_file", 0),
            "rss_bytes": stat.get("anon", 0),
            "cache_bytes": stat.get("file", 0),
            "peak_bytes": read_int(os.path.join(d, "memory.peak")) if full else None,
            "oom_kill_count": events.get("oom_kill", 0),
            "oom_group": None if group is None else bool(group),
        }

    def cpu_stats(self, full=True):
        d = self.dir
        quota, period = None, None
        text = read_text(os.path.join(d, "cpu.max")) if full else None
        if text:
            fields = text.split()
            period = int(fields[1]) if len(fields) > 1 else 100000
            quota = None if fields[0] == "max" else int(fields[0])
        stat = read_flat_keyed(os.path.join(d, "cpu.stat"))
        return {
            "quota_cores": (float(quota) / period) if quota and period else None,
            "period_us": period,
            "usage_seconds": stat["usage_usec"] / 1e6 if "usage_usec" in stat else None,
            "nr_periods": stat.get("nr_periods"),
            "nr_throttled": stat.get("nr_throttled"),
            "throttled_seconds": stat["throttled_usec"] / 1e6 if "throttled_usec" in stat else None,
        }

    def pressure(self):
        return read_pressures(self, self.dir)


def reader_for(target):
    return V2Reader(target["dirs"]) if target["cgroup_version"] == 2 else V1Reader(target["dirs"])


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
