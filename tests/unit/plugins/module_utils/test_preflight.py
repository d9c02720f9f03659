"""Preflight checks (module_utils/_preflight.py), as tables over what a node has."""

import errno
import os

import pytest

from ansible_collections.chaosfleet.stress.plugins.module_utils._preflight import (
    check_cgroup_procs, check_kmsg, check_nsenter, check_privileges, check_python, check_stress_ng, find_program,
    lacking,
)
from ansible_collections.chaosfleet.stress.plugins.module_utils._mounts import CgroupError


@pytest.mark.parametrize("euid, sudo, ok, detail", [
    (0, None, True, "running as root"),
    (1000, "/usr/bin/sudo", False, "running as ops (uid 1000), not root; sudo is installed: run with become: true"),
    (1000, None, False, "sudo is not installed: connect as root or install sudo and use become: true"),
])
def test_privileges(euid, sudo, ok, detail):
    got = check_privileges(euid, "ops", sudo)
    assert got[0] is ok and detail in got[1]


class _Mounts(object):
    mode = "hybrid"

    def __init__(self, names):
        self.names = names

    def hierarchies(self):
        return dict((n, type("M", (), {"mountpoint": "/sys/fs/cgroup/" + n})) for n in self.names)

    def host_path(self, mountpoint, *parts):
        return os.path.join(mountpoint, *parts)


@pytest.mark.parametrize("mounts, writable, ok, detail", [
    (_Mounts(["cpu,cpuacct", "memory"]),
     set(["/sys/fs/cgroup/memory/cgroup.procs", "/sys/fs/cgroup/cpu,cpuacct/cgroup.procs"]),
     True, "cgroup hybrid (cpu,cpuacct, memory): cgroup.procs writable"),
    (_Mounts(["cpu,cpuacct", "memory"]), set(["/sys/fs/cgroup/cpu,cpuacct/cgroup.procs"]),
     False, "not writable: /sys/fs/cgroup/memory/cgroup.procs (needs root, and cgroupfs mounted read-write)"),
    (CgroupError("no cgroup filesystem is mounted (read /proc/self/mountinfo)"), set(), False,
     "no cgroup filesystem is mounted"),
])
def test_cgroup_procs(mounts, writable, ok, detail):
    got = check_cgroup_procs(mounts, writable=lambda path, mode: path in writable)
    assert got[0] is ok and detail in got[1]


def _refuse(code):
    def opener(path, flags):
        raise OSError(code, os.strerror(code))
    return opener


@pytest.mark.parametrize("opener, ok, detail", [
    (_refuse(errno.EPERM), False, "cannot read /dev/kmsg: Operation not permitted; OOM kills would show as 'unknown'"),
    (_refuse(errno.ENOENT), False, "cannot read /dev/kmsg: No such file or directory"),
    (lambda path, flags: os.open("/dev/null", os.O_RDONLY), True, "/dev/kmsg is readable"),
])
def test_kmsg(opener, ok, detail):
    got = check_kmsg(opener=opener)
    assert got[0] is ok and detail in got[1]


@pytest.mark.parametrize("version, ok", [((3, 6, 8), False), ((3, 8, 0), True), ((3, 12, 1), True)])
def test_python(version, ok):
    got = check_python(version)
    assert got[0] is ok and ("need 3.8 or later" in got[1]) is not ok


@pytest.mark.parametrize("found, version, ok, detail", [
    (None, None, False, "stress-ng not found; install it with the chaosfleet.stress.install playbook"),
    ("/usr/bin/stress-ng", "", False, "/usr/bin/stress-ng does not run"),
    ("/usr/bin/stress-ng", "stress-ng, version 0.15.06", True, "/usr/bin/stress-ng: stress-ng, version 0.15.06"),
])
def test_stress_ng(found, version, ok, detail):
    got = check_stress_ng(found, run=lambda path: version)
    assert got == (ok, detail) or (got[0] is ok and detail in got[1])


def test_nsenter_and_lacking_lines():
    checks = {"privileges": {"ok": True, "detail": "root"}, "cgroup_procs": {"ok": True, "detail": ""},
              "kmsg": {"ok": False, "detail": "k"}, "python": {"ok": True, "detail": ""},
              "nsenter": dict(zip(("ok", "detail"), check_nsenter(None))), "stress_ng": {"ok": False, "detail": "s"}}
    assert lacking(checks) == ["kmsg: k", "nsenter: nsenter not found (Debian/Ubuntu: util-linux; RHEL: "
                               "util-linux-core)", "stress_ng: s"]


def test_find_program(tmp_path):
    tool = tmp_path / "cflab-tool"
    tool.write_text("#!/bin/sh\n")
    assert find_program("cflab-tool", path=str(tmp_path)) is None  # not executable
    tool.chmod(0o755)
    assert find_program("cflab-tool", path=str(tmp_path)) == str(tool)
    assert find_program(str(tool)) == str(tool)
    assert find_program("cflab-no-such-tool", path="") is None
