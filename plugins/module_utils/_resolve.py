# -*- coding: utf-8 -*-
# Copyright (c) 2026, chaosfleet.stress contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one resolver: container ID, pod UID, PID, cgroup path or systemd unit -> cgroups.

Knows the layouts kubelet (cgroupfs and systemd drivers), containerd, CRI-O,
Docker, Podman and systemd produce. Node-side code: standard library only.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import posixpath
import re

from ansible_collections.chaosfleet.stress.plugins.module_utils._mounts import CgroupError, has_dotdot

SELECTORS = ("container_id", "pod_uid", "pid", "cgroup_path", "systemd_unit")

_HEX64 = r"[0-9a-f]{64}"
# Leaf directory names that hold one container, with the runtime that names them so.
_CONTAINER_DIRS = (
    (re.compile(r"^cri-containerd-(%s)\.scope$" % _HEX64), "containerd"),
    (re.compile(r"^crio-(%s)\.scope$" % _HEX64), "cri-o"),
    (re.compile(r"^docker-(%s)\.scope$" % _HEX64), "docker"),
    (re.compile(r"^libpod-(%s)\.scope$" % _HEX64), "podman"),
    (re.compile(r"^libpod-(%s)$" % _HEX64), "podman"),
    (re.compile(r"^(%s)$" % _HEX64), None),
)
_UUID = r"[0-9a-f]{8}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{12}"
_POD_DIRS = (
    re.compile(r"^pod(%s)$" % _UUID),
    re.compile(r"^kubepods(?:-(?:burstable|besteffort))?-pod(%s)\.slice$" % _UUID),
)
_UUID_RE = re.compile(r"^%s$" % _UUID)
_ID_RE = re.compile(r"^[0-9a-f]{12,64}$")
_SCHEME_RE = re.compile(r"^(containerd|cri-o|crio|docker|podman)://")
_UNIT_RE = re.compile(r"^[A-Za-z0-9:_.\\@-]+$")
_UNIT_SUFFIXES = (".service", ".scope", ".slice")
SANDBOX_COMMANDS = ("pause",)


def normalize_container_id(value):
    text = _SCHEME_RE.sub("", value.strip().lower())
    if not _ID_RE.match(text):
        raise CgroupError("container_id %r is malformed: expected 12 to 64 hex characters, optionally after "
                          "containerd://, cri-o://, docker:// or podman://" % value)
    return text


def normalize_pod_uid(value):
    text = value.strip().lower()
    if not _UUID_RE.match(text):
        raise CgroupError("pod_uid %r is malformed: expected a UUID such as "
                          "5f1e2a3b-1c2d-4e5f-8a9b-0c1d2e3f4a5b (dashes or underscores)" % value)
    return text.replace("_", "-")


def classify(path):
    """What a cgroup path is, from its names alone: kind, runtime, IDs and QoS class."""
    parts = [p for p in path.split("/") if p]
    info = {"path": "/" + "/".join(parts), "kind": "cgroup", "runtime": None, "container_id": None,
            "pod_uid": None, "qos_class": None, "systemd_unit": None}
    in_kubepods = False
    for index, part in enumerate(parts):
        if part in ("kubepods", "kubepods.slice"):
            in_kubepods = True
            info["qos_class"] = "Guaranteed"
            continue
        if in_kubepods and part in ("burstable", "kubepods-burstable.slice"):
            info["qos_class"] = "Burstable"
            continue
        if in_kubepods and part in ("besteffort", "kubepods-besteffort.slice"):
            info["qos_class"] = "BestEffort"
            continue
        for pattern in _POD_DIRS:
            match = pattern.match(part)
            if match:
                info["pod_uid"] = match.group(1).replace("_", "-")
                if index == len(parts) - 1:
                    info["kind"] = "pod"
                break
        leaf = index == len(parts) - 1
        if leaf:
            for pattern, runtime in _CONTAINER_DIRS:
                match = pattern.match(part)
                if match:
                    info["container_id"] = match.group(1)
                    info["runtime"] = runtime or _runtime_from_parent(parts[:-1])
                    info["kind"] = "container"
                    break
            if info["kind"] == "cgroup" and part.endswith(".service"):
                info["kind"] = "service"
                info["systemd_unit"] = part
    if not in_kubepods:
        info["qos_class"] = None
    return info


def _runtime_from_parent(parents):
    if parents and parents[-1] == "docker":
        return "docker"
    if parents and parents[-1] == "libpod_parent":
        return "podman"
    return None


class CgroupIndex(object):
    """One walk of the primary hierarchy, classifying every directory."""

    def __init__(self, mounts):
        self.mounts = mounts
        self.top = mounts.primary_dir().rstrip("/")
        self._entries = None

    def entries(self):
        if self._entries is None:
            self._entries = []
            self._walk(self.top, "")
        return self._entries

    def _walk(self, directory, rel):
        try:
            children = [e for e in os.scandir(directory) if e.is_dir(follow_symlinks=False)]
        except OSError:
            return
        for entry in children:
            child_rel = rel + "/" + entry.name
            info = classify(child_rel)
            if info["kind"] != "cgroup":
                self._entries.append(info)
            self._walk(entry.path, child_rel)


class Resolver(object):
    """Turns one selector into a list of target dicts (see classify) with their directories."""

    def __init__(self, mounts):
        self.mounts = mounts
        self.index = CgroupIndex(mounts)

    def resolve(self, params, refuse_node_wide=False):
        """Targets for ``params``; each carries ``node_wide`` (see node_wide_reason).

        With ``refuse_node_wide`` (modules that change something), a node-wide target is an error
        unless ``params['allow_node_wide']`` is true.
        """
        chosen = [name for name in SELECTORS if params.get(name) not in (None, "")]
        if len(chosen) != 1:
            raise CgroupError("give exactly one target selector of %s; got %s"
                              % (", ".join(SELECTORS), ", ".join(chosen) or "none"))
        name = chosen[0]
        value = params[name]
        include_sandbox = bool(params.get("include_sandbox"))
        if name == "container_id":
            targets = self.by_container_id(value)
        elif name == "pod_uid":
            targets = self.by_pod_uid(value, include_sandbox)
        elif name == "pid":
            targets = [self.by_pid(value)]
        elif name == "cgroup_path":
            targets = [self.by_path(value)]
        else:
            targets = [self.by_unit(value)]
        for target in targets:
            target["dirs"] = self.mounts.dirs(target["path"])
            target["cgroup_version"] = self.mounts.version
            if target["kind"] == "container" and self.is_sandbox(target):
                target["kind"] = "sandbox"
            reason = node_wide_reason(target, value if name == "pid" else None)
            target["node_wide"] = reason is not None
            if reason and refuse_node_wide and not params.get("allow_node_wide"):
                raise CgroupError("refusing a node-wide target: %s %s resolves to cgroup %s, %s; target one "
                                  "container, or set allow_node_wide=true to stress it on purpose"
                                  % (name, _one_line(value), target["path"], reason))
        return targets

    def by_container_id(self, value):
        wanted = normalize_container_id(value)
        found = {}
        for info in self.index.entries():
            if info["container_id"] and info["container_id"].startswith(wanted):
                found.setdefault(info["container_id"], info)
        if not found:
            raise CgroupError("no container with ID %s on this node (searched %s)%s"
                              % (wanted, self.index.top, self.mounts.namespace_hint()))
        if len(found) > 1:
            raise CgroupError("container ID prefix %s is ambiguous; it matches: %s"
                              % (wanted, ", ".join(sorted(found))))
        return [dict(found.popitem()[1])]

    def by_pod_uid(self, value, include_sandbox=False):
        wanted = normalize_pod_uid(value)
        pods = [i for i in self.index.entries() if i["pod_uid"] == wanted and i["kind"] == "pod"]
        if not pods:
            raise CgroupError("no pod with UID %s on this node (searched %s)%s"
                              % (wanted, self.index.top, self.mounts.namespace_hint()))
        pod_path = pods[0]["path"]
        containers = []
        for info in self.index.entries():
            if info["kind"] == "container" and posixpath.dirname(info["path"]) == pod_path:
                containers.append(dict(info))
        result = []
        for info in sorted(containers, key=lambda i: i["path"]):
            info["dirs"] = self.mounts.dirs(info["path"])
            if self.is_sandbox(info):
                if not include_sandbox:
                    continue
                info["kind"] = "sandbox"
            result.append(info)
        if not result:
            raise CgroupError("pod %s has no running containers on this node (%s)" % (wanted, pod_path))
        return result

    def by_pid(self, pid):
        if pid <= 0:
            raise CgroupError("pid must be a positive integer, got %s" % pid)
        path = self.cgroup_of_pid(pid)
        return dict(self._existing(path, "pid %d" % pid))

    def cgroup_of_pid(self, pid):
        """The cgroup path of ``pid`` in the primary hierarchy, from /proc/<pid>/cgroup."""
        source = os.path.join(self.mounts.proc_root, str(pid), "cgroup")
        try:
            with open(source) as handle:
                lines = handle.read().splitlines()
        except (IOError, OSError):
            raise CgroupError("no process with PID %d on this node" % pid)
        for line in lines:
            hier, _sep, rest = line.partition(":")
            controllers, _sep, path = rest.partition(":")
            if (self.mounts.version == 2 and hier == "0" and controllers == "") or \
                    (self.mounts.version == 1 and "memory" in controllers.split(",")):
                if has_dotdot(path):
                    # Relative to this process's cgroup namespace: the process is outside it.
                    raise self.mounts.namespace_error("PID %d's cgroup reads %s in %s" % (pid, path, source))
                return path
        raise CgroupError("cannot find the %s cgroup of PID %d in %s"
                          % ("unified" if self.mounts.version == 2 else "memory", pid, source))

    def by_path(self, value):
        text = value.strip()
        if not text:
            raise CgroupError("cgroup_path is empty")
        if ".." in text.split("/"):
            raise CgroupError("cgroup_path %r leaves the cgroup root ('..' is not allowed)" % value)
        rel = self._strip_mountpoint(text)
        return dict(self._existing(posixpath.normpath("/" + rel.lstrip("/")), "cgroup_path %s" % value))

    def _strip_mountpoint(self, text):
        for mount in sorted(self.mounts.hierarchies().values(), key=lambda m: -len(m.mountpoint)):
            for base in (self.mounts.host_path(mount.mountpoint), mount.mountpoint,
                         self.mounts.node_path(mount.mountpoint)):
                base = base.rstrip("/")
                if text == base or text.startswith(base + "/"):
                    return text[len(base):] or "/"
        cgroup_fs = posixpath.dirname(self.mounts.node_path(self.mounts.primary.mountpoint).rstrip("/"))
        if self.mounts.version == 1 and cgroup_fs and text.startswith(cgroup_fs + "/"):
            raise CgroupError("cgroup_path %r is under %s but not inside a cgroup hierarchy" % (text, cgroup_fs))
        return text

    def by_unit(self, value):
        unit = value.strip()
        if not _UNIT_RE.match(unit):
            raise CgroupError("systemd_unit %r is malformed" % value)
        if not unit.endswith(_UNIT_SUFFIXES):
            unit += ".service"
        found = list(self._unit_dirs(unit))
        if not found:
            raise CgroupError("no cgroup for systemd unit %s on this node (searched %s)%s"
                              % (unit, self.index.top, self.mounts.namespace_hint()))
        if len(found) > 1:
            raise CgroupError("systemd unit %s is ambiguous; cgroups: %s" % (unit, ", ".join(found)))
        info = classify(found[0])
        info["kind"] = "service"
        info["systemd_unit"] = unit
        return info

    def _unit_dirs(self, unit):
        out = []
        for directory, subdirs, _files in os.walk(self.index.top):
            if unit in subdirs:
                out.append(directory[len(self.index.top):] + "/" + unit)
                subdirs.remove(unit)
        return out

    def _existing(self, path, what):
        primary = self.mounts.dir_for(self.mounts.primary, path)
        top = os.path.realpath(self.index.top)
        real = os.path.realpath(primary)
        if real != top and not real.startswith(top + "/"):
            raise CgroupError("%s resolves outside the cgroup root %s" % (what, self.index.top))
        if not os.path.isdir(primary):
            raise CgroupError("%s: cgroup %s does not exist on this node" % (what, path))
        return classify(path)

    def is_sandbox(self, info):
        pids = read_pids(info["dirs"])
        if not pids:
            return False
        return all(process_comm(self.mounts.proc_root, pid) in SANDBOX_COMMANDS for pid in pids)


def _one_line(value):
    return repr(value) if isinstance(value, str) else str(value)


def child_cgroups(dirs):
    """Names of the child cgroups under any of ``dirs`` (one per hierarchy)."""
    out = set()
    for directory in dirs.values():
        try:
            out.update(e.name for e in os.scandir(directory) if e.is_dir(follow_symlinks=False))
        except OSError:
            continue
    return sorted(out)


def node_wide_reason(target, pid=None):
    """Why stress in ``target`` would reach beyond one workload, or None for a leaf cgroup.

    The root cgroup holds every process of the node; a cgroup with child cgroups (``/kubepods``, a
    slice, a pod) shares its limit with all of them; PID 1 is the node's init whatever its cgroup.
    """
    if target["path"] == "/":
        return "the root cgroup (every process on the node)"
    if pid == 1:
        return "the cgroup of PID 1, the node's init"
    children = child_cgroups(target.get("dirs") or {})
    if children:
        shown = ", ".join(children[:3]) + (", ..." if len(children) > 3 else "")
        return "which has %d child cgroup%s (%s) whose workloads it would hit too" % (
            len(children), "" if len(children) == 1 else "s", shown)
    return None


def procs_file(dirs):
    for name in ("unified", "memory", "pids", "cpu"):
        if name in dirs:
            return os.path.join(dirs[name], "cgroup.procs")
    return None


# A read of a kernel-generated file (seq_file) stops short only at its end or once a page (4 KiB or more) is
# full; a cgroup.procs line is at most 8 bytes. A first read shorter than this is the whole file: no second
# read to find the end.
WHOLE_READ_BELOW = 2048


def read_pids(dirs):
    path = procs_file(dirs)
    if path is None:
        return []
    return read_pids_file(path)


def read_pids_file(path):
    """The PIDs a cgroup.procs lists, or [] when it cannot be read."""
    # os.open/os.read, no buffered text wrapper: samplers read this every tick. Opened each time, not kept
    # open: v1 serves an open cgroup.procs the PID list it built, for up to a second after.
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return []
    try:
        data = os.read(fd, 65536)
        if len(data) >= WHOLE_READ_BELOW:
            chunks = [data]
            while chunks[-1]:
                chunks.append(os.read(fd, 65536))
            data = b"".join(chunks)
        return [int(pid) for pid in data.split()]
    except (OSError, ValueError):
        return []
    finally:
        os.close(fd)


def process_comm(proc_root, pid):
    try:
        with open(os.path.join(proc_root, str(pid), "comm")) as handle:
            return handle.read().strip()
    except (IOError, OSError):
        return None
