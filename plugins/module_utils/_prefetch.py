# -*- coding: utf-8 -*-
# Copyright (c) 2026, chaosfleet.stress contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Keep the stress's own program files out of the target's memory.

The kernel charges a page-cache page to the cgroup of the process that first reads it. A stress-ng
started with a cold page cache inside the target reads its binary and libraries there (about 30 MiB
on Debian 12): the target's usage grows by memory nobody asked for, part of it turns active and so
counts in the working set, and it stays charged after the stress ends. The supervisor reads these
files in from its own cgroup before every launch, so the charge lands outside the target; when
they are cached already this costs about 10 ms. Node-side code: standard library only.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import mmap
import os
import shutil
import subprocess

LDD_SEARCH_PATH = os.pathsep.join(("/usr/bin", "/bin", "/usr/sbin", "/sbin"))
# The kernel caps one read-ahead request (8 MiB measured on 6.x), so larger files are asked for in chunks.
CHUNK_BYTES = 4 * 1024 * 1024
PAGE_BYTES = mmap.PAGESIZE


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
    """Bring ``paths`` into the page cache now, charged to this process's cgroup.

    Read-ahead requests go out first, so a disk reads in large runs. They are only hints, capped per call
    by the device's read-ahead window (8 MiB measured on a virtio disk, under 0.5 MiB on 9p), so every
    page is then touched: a page that is still missing is read now, here.
    Returns the paths it could not read (a library removed by an upgrade is no reason to stop).
    """
    missed = []
    for path in paths:
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            missed.append(path)
            continue
        try:
            size = os.fstat(fd).st_size
            for offset in range(0, max(1, size), CHUNK_BYTES):
                os.posix_fadvise(fd, offset, CHUNK_BYTES, os.POSIX_FADV_WILLNEED)
            _touch_pages(fd, size)
        except OSError:
            missed.append(path)
        finally:
            os.close(fd)
    return missed


def _touch_pages(fd, size):
    """Read one byte of each page: about 10 ms for stress-ng's 32 MiB when cached, against 25 ms to read it
    all. Not through a mapping: a file truncated meanwhile would raise SIGBUS there, and end the supervisor."""
    for offset in range(0, size, PAGE_BYTES):
        os.pread(fd, 1, offset)
