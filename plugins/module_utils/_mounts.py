# -*- coding: utf-8 -*-
# Copyright (c) 2026, chaosfleet.stress contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Where the cgroup hierarchies are mounted, read from /proc/self/mountinfo.

Node-side code: standard library only, Python 3.8+.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

# v1 controllers the usage schema reads; others are attached to as well when mounted.
V1_READ_CONTROLLERS = ("memory", "cpu", "cpuacct")


class CgroupError(Exception):
    """A cgroup question with no good answer; the message is meant for the user."""


def _unescape(field):
    # mountinfo escapes space, tab, newline and backslash as octal.
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and field[i + 1:i + 4].isdigit():
            out.append(chr(int(field[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


_MOUNT_FLAGS = ("rw", "ro", "noprefix", "clone_children", "xattr", "nsdelegate", "cpuset_v2_mode", "favordynmods")


def _is_controller(option):
    if option.startswith("name="):
        return True
    return "=" not in option and option not in _MOUNT_FLAGS


class Mount(object):
    def __init__(self, mountpoint, root, controllers):
        self.mountpoint = mountpoint
        self.root = root
        self.controllers = controllers

    def __repr__(self):
        return "Mount(%r, root=%r, %r)" % (self.mountpoint, self.root, self.controllers)


def parse_mountinfo(text):
    """Return (v1 mounts by controller, list of cgroup2 mounts)."""
    v1, v2 = {}, []
    for line in text.splitlines():
        left, sep, right = line.partition(" - ")
        if not sep:
            continue
        fields = left.split()
        tail = right.split()
        if len(fields) < 5 or len(tail) < 3:
            continue
        fstype, super_opts = tail[0], tail[2]
        root, mountpoint = _unescape(fields[3]), _unescape(fields[4])
        if fstype == "cgroup":
            names = [o for o in super_opts.split(",") if _is_controller(o)]
            mount = Mount(mountpoint, root, names)
            for name in names:
                # Keep the mount that shows the whole hierarchy (root "/"), then the shortest path.
                known = v1.get(name)
                if known is None or (root == "/", -len(mountpoint)) > (known.root == "/", -len(known.mountpoint)):
                    v1[name] = mount
        elif fstype == "cgroup2":
            v2.append(Mount(mountpoint, root, []))
    return v1, v2


class CgroupMounts(object):
    """The node's cgroup layout: mode, v1 hierarchies and the unified hierarchy."""

    def __init__(self, proc_root="/proc", sys_root=""):
        self.proc_root = proc_root
        self.sys_root = sys_root
        try:
            with open(os.path.join(proc_root, "self", "mountinfo")) as handle:
                text = handle.read()
        except (IOError, OSError) as exc:
            raise CgroupError("cannot read %s/self/mountinfo: %s" % (proc_root, exc))
        self.v1, unified_mounts = parse_mountinfo(text)
        self.unified = None
        self.unified_controllers = []
        for mount in sorted(unified_mounts, key=lambda m: (m.root != "/", len(m.mountpoint))):
            self.unified = mount
            self.unified_controllers = self._read_controllers(mount)
            break
        if self.v1 and self.unified is None:
            self.mode = "v1"
        elif self.v1:
            self.mode = "hybrid"
        elif self.unified is not None:
            self.mode = "v2"
        else:
            raise CgroupError("no cgroup filesystem is mounted (read %s/self/mountinfo)" % proc_root)
        # Memory on the unified hierarchy means containers are managed through v2.
        self.version = 2 if (self.mode == "v2" or "memory" in self.unified_controllers and "memory" not in self.v1) else 1
        if self.version == 1 and "memory" not in self.v1:
            raise CgroupError("the cgroup v1 memory controller is not mounted on this node")

    def _read_controllers(self, mount):
        try:
            with open(self.host_path(mount.mountpoint, "cgroup.controllers")) as handle:
                controllers = handle.read().split()
        except (IOError, OSError):
            controllers = []
        mount.controllers = controllers
        return controllers

    def host_path(self, mountpoint, *parts):
        path = self.sys_root + mountpoint if self.sys_root else mountpoint
        return os.path.join(path, *parts) if parts else path

    @property
    def primary(self):
        """The hierarchy searched to find targets: memory on v1, unified on v2."""
        return self.v1["memory"] if self.version == 1 else self.unified

    def primary_dir(self):
        return self.host_path(self.primary.mountpoint)

    def hierarchies(self):
        """Every hierarchy a stress process must join: one entry per distinct mount."""
        if self.version == 2:
            return {"unified": self.unified}
        seen, out = set(), {}
        for name in sorted(self.v1):
            mount = self.v1[name]
            if mount.mountpoint in seen:
                continue
            seen.add(mount.mountpoint)
            out[name] = mount
        return out

    def dir_for(self, mount, cgroup_path):
        """The directory of ``cgroup_path`` (from the hierarchy root) inside ``mount``."""
        rel = cgroup_path
        if mount.root != "/" and (rel == mount.root or rel.startswith(mount.root.rstrip("/") + "/")):
            rel = rel[len(mount.root.rstrip("/")):]
        return self.host_path(mount.mountpoint, rel.lstrip("/"))

    def dirs(self, cgroup_path, only_existing=True):
        """Controller name -> directory of this cgroup, in every hierarchy that has it."""
        out = {}
        for name, mount in self.hierarchies().items():
            path = self.dir_for(mount, cgroup_path).rstrip("/")
            if not only_existing or os.path.isdir(path):
                out[name] = path
        if self.version == 1:
            # Name the reading controllers even when they share a mount (cpu,cpuacct).
            for name in V1_READ_CONTROLLERS:
                if name in self.v1 and name not in out:
                    path = self.dir_for(self.v1[name], cgroup_path).rstrip("/")
                    if not only_existing or os.path.isdir(path):
                        out[name] = path
        return out

    def describe(self):
        return {
            "mode": self.mode,
            "version": self.version,
            "v1_controllers": dict((name, m.mountpoint) for name, m in sorted(self.v1.items())),
            "unified_mountpoint": self.unified.mountpoint if self.unified else None,
            "unified_controllers": list(self.unified_controllers),
        }
