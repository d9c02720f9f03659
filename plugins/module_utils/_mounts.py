# -*- coding: utf-8 -*-
# Copyright (c) 2026, chaosfleet.stress contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Where the cgroup hierarchies are mounted, read from /proc/self/mountinfo.

Node-side code: standard library only, Python 3.8+.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import os

# v1 controllers the usage schema reads; others are attached to as well when mounted.
V1_READ_CONTROLLERS = ("memory", "cpu", "cpuacct")

CLONE_NEWCGROUP = 0x02000000
# The initial cgroup namespace's inode (PROC_CGROUP_INIT_INO), fixed since Linux 4.6.
INIT_CGROUP_NS_INO = 0xEFFFFFFB
# Values of CgroupMounts.namespace (describe()'s cgroup_namespace).
NS_HOST, NS_ENTERED, NS_PRIVATE, NS_UNKNOWN = "host", "entered-host", "private", "unknown"


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
    def __init__(self, mountpoint, root, controllers, device=None):
        self.mountpoint = mountpoint
        self.root = root
        self.controllers = controllers
        self.device = device  # major:minor, one per hierarchy

    @property
    def outside_namespace(self):
        """A root with '..' lies outside this process's cgroup namespace: paths cannot be mapped onto it."""
        return ".." in self.root.split("/")

    def __repr__(self):
        return "Mount(%r, root=%r, %r)" % (self.mountpoint, self.root, self.controllers)


def cgroup_mounts(text):
    """Every cgroup (v1) and cgroup2 mount in mountinfo, in order; cgroup2 mounts have controllers None."""
    out = []
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
            out.append(Mount(mountpoint, root, names, fields[2]))
        elif fstype == "cgroup2":
            out.append(Mount(mountpoint, root, None, fields[2]))
    return out


def pick_mounts(mounts):
    """(v1 mount by controller, list of cgroup2 mounts) from ``mounts``, leaving out roots with '..'."""
    v1, v2 = {}, []
    for mount in mounts:
        if mount.outside_namespace:
            continue
        if mount.controllers is None:
            v2.append(Mount(mount.mountpoint, mount.root, [], mount.device))
            continue
        for name in mount.controllers:
            # Keep the mount that shows the whole hierarchy (root "/"), then the shortest path.
            known = v1.get(name)
            if known is None or (mount.root == "/", -len(mount.mountpoint)) > \
                    (known.root == "/", -len(known.mountpoint)):
                v1[name] = mount
    return v1, v2


def parse_mountinfo(text):
    """Return (v1 mounts by controller, list of cgroup2 mounts) this process can use."""
    return pick_mounts(cgroup_mounts(text))


def under(path, prefix):
    """True when ``path`` is ``prefix`` or below it; never for an empty prefix."""
    prefix = prefix.rstrip("/")
    return bool(prefix) and (path == prefix or path.startswith(prefix + "/"))


def has_dotdot(path):
    return ".." in path.split("/")


def _libc_setns(fd, nstype):
    try:
        import ctypes  # here, not at import: a Python built without ctypes still reads cgroups
        libc = ctypes.CDLL(None, use_errno=True)
        call = libc.setns
    except (ImportError, OSError, AttributeError) as exc:
        raise OSError(errno.ENOSYS, "setns is not available: %s" % exc)
    if call(fd, nstype) != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))


def _ns_id(path):
    """(st_dev, st_ino) of a namespace link; None when it does not exist. Other errors raise."""
    try:
        info = os.stat(path)
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            return None
        raise
    return (info.st_dev, info.st_ino)


def host_namespace_link(proc_root):
    """PID 1's cgroup namespace link; kthreadd's (PID 2) when PID 1 hides its links from root.

    Some sandboxes' init denies access to its /proc/1/ns. kthreadd is visible only in the initial PID
    namespace, where the host's cgroup namespace is the initial one too, so it stands in safely.
    """
    pid1 = os.path.join(proc_root, "1", "ns", "cgroup")
    try:
        os.stat(pid1)
        return pid1
    except OSError as exc:
        if exc.errno not in (errno.EACCES, errno.EPERM):
            return pid1
    try:
        with open(os.path.join(proc_root, "2", "comm")) as handle:
            if handle.read().strip() == "kthreadd":
                return os.path.join(proc_root, "2", "ns", "cgroup")
    except (IOError, OSError):
        pass
    return pid1


class CgroupNamespace(object):
    """Moves this process into PID 1's cgroup namespace when it is in another one, once per process.

    Cgroup paths in /proc/PID/cgroup and mount roots in mountinfo are relative to the reader's cgroup
    namespace; only from the host's are they the hierarchy's own paths, and only there does a v2
    ``nsdelegate`` mount accept a PID into a cgroup outside the namespace. Children (the supervisor,
    stress-ng) inherit the namespace.
    """

    def __init__(self, setns=_libc_setns):
        self.setns = setns
        self._entered = set()
        self._failed = {}

    def enter_host(self, proc_root):
        """(namespace, why): NS_HOST, NS_ENTERED, NS_PRIVATE or NS_UNKNOWN, and the reason for the last two."""
        own_link = os.path.join(proc_root, "self", "ns", "cgroup")
        host_link = host_namespace_link(proc_root)
        try:
            own = _ns_id(own_link)
        except OSError as exc:
            return NS_UNKNOWN, "cannot read %s: %s" % (own_link, exc.strerror or exc)
        if own is None:
            return NS_HOST, None  # no cgroup namespaces (before Linux 4.6), or a fixture tree
        if own in self._entered:
            return NS_ENTERED, None
        if own[1] == INIT_CGROUP_NS_INO:
            return NS_HOST, None  # the initial namespace, whatever PID 1 lets us read
        try:
            host = _ns_id(host_link)
        except OSError as exc:
            return NS_UNKNOWN, "cannot read %s: %s" % (host_link, exc.strerror or exc)
        if host is None or host == own:
            return NS_HOST, None
        if (own, host) in self._failed:  # once per process: a refused setns is not retried
            return NS_PRIVATE, self._failed[(own, host)]
        why = self._setns(host_link, own_link, host)
        if why:
            self._failed[(own, host)] = why
            return NS_PRIVATE, why
        self._entered.add(host)
        return NS_ENTERED, None

    def _setns(self, host_link, own_link, host):
        """None once this process is in the namespace of ``host_link``, else why not."""
        try:
            fd = os.open(host_link, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
            try:
                self.setns(fd, CLONE_NEWCGROUP)
            finally:
                os.close(fd)
        except OSError as exc:
            return "setns into %s failed: %s" % (host_link, exc.strerror or exc)
        try:
            now = _ns_id(own_link)
        except OSError:
            now = None
        if now != host:
            return "setns into %s returned, but %s still differs" % (host_link, own_link)
        return None


# The one per process: a namespace is entered once, whatever number of CgroupMounts are built.
HOST_NAMESPACE = CgroupNamespace()


class CgroupMounts(object):
    """The node's cgroup layout: mode, v1 hierarchies and the unified hierarchy."""

    def __init__(self, proc_root="/proc", sys_root="", namespace=None):
        self.proc_root = proc_root
        self.sys_root = sys_root.rstrip("/")
        # Before mountinfo is read: its roots are relative to the reader's cgroup namespace.
        self.namespace, self.namespace_why = (namespace or HOST_NAMESPACE).enter_host(proc_root)
        try:
            with open(os.path.join(proc_root, "self", "mountinfo")) as handle:
                text = handle.read()
        except (IOError, OSError) as exc:
            raise CgroupError("cannot read %s/self/mountinfo: %s" % (proc_root, exc))
        mounts = cgroup_mounts(text)
        if self.sys_root:
            # In an agent container, the mounts under sys_root are the host's; the others are its own view.
            inside = [m for m in mounts if under(m.mountpoint, self.sys_root)]
            mounts = inside or mounts
        clean = set(m.device for m in mounts if not m.outside_namespace)
        hidden = [m for m in mounts if m.outside_namespace and m.device not in clean]
        if hidden:
            raise self.namespace_error("cgroup mount %s%s shows root %s" % (
                hidden[0].mountpoint, " (and %d more)" % (len(hidden) - 1) if len(hidden) > 1 else "", hidden[0].root))
        self.v1, unified_mounts = pick_mounts(mounts)
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
        # A mountpoint already under sys_root (the agent's bind of the host's cgroupfs) is used as it is.
        path = self.sys_root + mountpoint if self.sys_root and not under(mountpoint, self.sys_root) else mountpoint
        return os.path.join(path, *parts) if parts else path

    def node_path(self, mountpoint):
        """The mountpoint as the node names it: without sys_root when it is mounted below it."""
        return mountpoint[len(self.sys_root):] if under(mountpoint, self.sys_root) else mountpoint

    def namespace_error(self, what):
        """A CgroupError for a '..' path or root: says why (the cgroup namespace) and what to do."""
        if self.namespace == NS_UNKNOWN:
            cause = "this process's cgroup namespace could not be compared with PID 1's (%s)" % self.namespace_why
        elif self.namespace == NS_PRIVATE:
            cause = "this process runs in a private cgroup namespace, not PID 1's"
            if self.namespace_why:
                cause += ", and could not enter the host's (%s)" % self.namespace_why
        else:
            cause = "it lies outside the cgroup namespace this process reads from"
        return CgroupError("%s: %s, so cgroups outside its own subtree show as '..'. Run the node agent privileged "
                           "and with hostPID (the module then enters PID 1's cgroup namespace itself), or run the "
                           "module from the host's cgroup namespace" % (what, cause))

    def namespace_hint(self):
        """Words to add to a 'not found' error when this process may see only its own subtree."""
        if self.namespace in (NS_PRIVATE, NS_UNKNOWN):
            return "; note: this process is in a private cgroup namespace (%s) and may see only its own cgroup " \
                   "subtree: run the agent privileged with hostPID, or the module from the host's cgroup " \
                   "namespace" % (self.namespace_why or self.namespace)
        return ""

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
        if has_dotdot(cgroup_path):
            raise CgroupError("refusing cgroup path %r: '..' would leave the cgroup root" % cgroup_path)
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
            "cgroup_namespace": self.namespace,
        }
