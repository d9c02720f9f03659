# -*- coding: utf-8 -*-
# Copyright (c) 2026, chaosfleet.stress contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a node needs to run experiments, checked read-only (for the preflight module).

Node-side: standard library only, Python 3.8+. Nothing here writes, signals or starts
anything except ``stress-ng --version``. Every check returns ``(ok, detail)``; the
detail says what was found and, when something lacks, how to fix it.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import subprocess
import sys

from ansible_collections.chaosfleet.stress.plugins.module_utils._mounts import CgroupError, CgroupMounts

SEARCH_PATH = ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin")
CHECKS = ("privileges", "cgroup_procs", "kmsg", "python", "nsenter", "stress_ng")


def find_program(name, path=None):
    """The program's path from PATH and the usual system directories, or None."""
    if os.sep in name:
        return name if os.access(name, os.X_OK) and os.path.isfile(name) else None
    dirs = (path if path is not None else os.environ.get("PATH", "")).split(os.pathsep) + list(SEARCH_PATH)
    for directory in dirs:
        candidate = os.path.join(directory, name)
        if directory and os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


def check_privileges(euid, user, sudo_path):
    if euid == 0:
        return True, "running as root"
    hint = ("sudo is installed: run with become: true" if sudo_path
            else "sudo is not installed: connect as root or install sudo and use become: true")
    return False, "running as %s (uid %d), not root; %s" % (user, euid, hint)


def check_cgroup_procs(mounts, writable=os.access):
    """Each hierarchy's root cgroup.procs must be writable to move stress-ng into a target."""
    if isinstance(mounts, Exception):
        return False, str(mounts)
    closed = []
    for name, mount in sorted(mounts.hierarchies().items()):
        path = mounts.host_path(mount.mountpoint, "cgroup.procs")
        if not writable(path, os.W_OK):
            closed.append(path)
    where = "cgroup %s (%s)" % (mounts.mode, ", ".join(sorted(mounts.hierarchies())))
    if closed:
        return False, "%s: not writable: %s (needs root, and cgroupfs mounted read-write)" % (where, ", ".join(closed))
    return True, "%s: cgroup.procs writable" % where


def check_kmsg(path="/dev/kmsg", opener=os.open):
    """OOM kills are read from the kernel log; opening it consumes nothing."""
    try:
        fd = opener(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as exc:
        return False, ("cannot read %s: %s; OOM kills would show as 'unknown' (run as root; in a container, "
                       "the kernel log must be visible)" % (path, exc.strerror or exc))
    os.close(fd)
    return True, "%s is readable" % path


def check_python(version_info=None):
    version_info = version_info or sys.version_info
    shown = "%d.%d.%d" % tuple(version_info[:3])
    if tuple(version_info[:2]) < (3, 8):
        return False, "Python %s at %s; the node-side modules need 3.8 or later" % (shown, sys.executable)
    return True, "Python %s at %s" % (shown, sys.executable)


def check_nsenter(found):
    if not found:
        return False, "nsenter not found (Debian/Ubuntu: util-linux; RHEL: util-linux-core)"
    return True, found


def check_stress_ng(found, run=None):
    if not found:
        return False, ("stress-ng not found; install it with the chaosfleet.stress.install playbook "
                       "(role chaosfleet.stress.stress_ng)")
    run = run or _version
    version = run(found)
    if not version:
        return False, "%s does not run (stress-ng --version failed)" % found
    return True, "%s: %s" % (found, version)


def _version(path):
    try:
        out = subprocess.run([path, "--version"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             stdin=subprocess.DEVNULL, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return out.stdout.decode("utf-8", "replace").strip().splitlines()[0] if out.returncode == 0 and out.stdout else ""


def run_checks(stress_ng="stress-ng", proc_root="/proc", sys_root=""):
    """{check: {ok, detail}} for this node."""
    try:
        mounts = CgroupMounts(proc_root=proc_root, sys_root=sys_root)
    except CgroupError as exc:
        mounts = exc
    try:
        import pwd
        user = pwd.getpwuid(os.geteuid()).pw_name
    except (ImportError, KeyError):
        user = str(os.geteuid())
    results = {
        "privileges": check_privileges(os.geteuid(), user, find_program("sudo")),
        "cgroup_procs": check_cgroup_procs(mounts),
        "kmsg": check_kmsg(),
        "python": check_python(),
        "nsenter": check_nsenter(find_program("nsenter")),
        "stress_ng": check_stress_ng(find_program(stress_ng)),
    }
    return dict((name, {"ok": ok, "detail": detail}) for name, (ok, detail) in results.items())


def lacking(checks):
    """One line per failed check, in a fixed order."""
    return ["%s: %s" % (name, checks[name]["detail"]) for name in CHECKS if not checks[name]["ok"]]
