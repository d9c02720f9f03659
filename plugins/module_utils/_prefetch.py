# -*- coding: utf-8 -*-
# Copyright (c) 2026, chaosfleet.stress contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Keep the stress's own program files out of the target's memory.

The kernel charges a page-cache page to the cgroup of the process that first reads it. A stress-ng
started with a cold page cache inside the target reads its binary and libraries there (about 30 MiB
on Debian 12): the target's usage grows by memory nobody asked for, part of it turns active and so
counts in the working set, and it stays charged after the stress ends. The supervisor reads these
files ahead from its own cgroup before every launch, so the charge lands outside the target; when
they are cached already this costs well under a millisecond. Node-side code: standard library only.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import shutil
import subprocess

LDD_SEARCH_PATH = os.pathsep.join(("/usr/bin", "/bin", "/usr/sbin", "/sbin"))
# The kernel caps one read-ahead request (8 MiB measured on 6.x), so larger files are asked for in chunks.
CHUNK_BYTES = 4 * 1024 * 1024


def shared_libraries(ldd_output):
    """The library paths in ``ldd`` output; unresolved ("not found") and virtual ones (vdso) are left out."""
    paths = []
    for line in ldd_output.splitlines():
        fields = line.split()
        if "=>" in fields:
            after = fields[fields.index("=>") + 1:]
            candidate = after[0] if after else ""
        else:
            candidate = fields[0] if fields else ""
        if candidate.startswith("/") and candidate not in paths:
            paths.append(candidate)
    return paths


def program_files(executables, run=subprocess.run):
    """The executables a launch runs inside the target and the libraries they load, each once.

    Without ``ldd`` (or when it fails) the executables alone are still read ahead.
    """
    ldd = shutil.which("ldd", path=LDD_SEARCH_PATH)
    files = []
    for executable in executables:
        if not executable:
            continue
        found = [executable]
        if ldd:
            try:
                answer = run([ldd, executable], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                             universal_newlines=True, timeout=30, check=False)
                found += shared_libraries(answer.stdout) if answer.returncode == 0 else []
            except (OSError, subprocess.SubprocessError):
                pass
        for path in found:
            real = os.path.realpath(path)
            if real not in files:
                files.append(real)
    return files


def prefetch(paths):
    """Ask the kernel to read ``paths`` into the page cache now, charged to this process's cgroup.

    Returns the paths it could not open (a library removed by an upgrade is no reason to stop).
    """
    missed = []
    for path in paths:
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            missed.append(path)
            continue
        try:
            for offset in range(0, max(1, os.fstat(fd).st_size), CHUNK_BYTES):
                os.posix_fadvise(fd, offset, CHUNK_BYTES, os.POSIX_FADV_WILLNEED)
        except OSError:
            missed.append(path)
        finally:
            os.close(fd)
    return missed
