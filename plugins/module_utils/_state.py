# -*- coding: utf-8 -*-
# Copyright (c) 2026, chaosfleet.stress contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The node's experiment state directory and PID records that carry start times.

Any later run, from any controller, finds an experiment here by name. Signals go
only to PIDs recorded here, and only while their start time still matches, so a
reused PID is never hit. Node-side code: standard library only.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import binascii
import errno
import fcntl
import hashlib
import json
import os
import re
import shutil
import signal
import stat
import time

DEFAULT_STATE_DIR = "/run/chaosfleet"
# <state_dir>/experiments/<name>/ holds one experiment; the files below are in it.
EXPERIMENTS = "experiments"
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}", re.ASCII)

SPEC = "spec.json"
STATUS = "status.json"
OUTCOME = "outcome.json"
SAMPLES = "samples.jsonl"
EVENTS = "events.jsonl"
HEARTBEAT = "heartbeat"
STOP = "stop"
LOG = "supervisor.log"
# Written by the starting module right after it spawned the supervisor, before the supervisor's own
# first status: a stop that comes in between still finds the supervisor.
SUPERVISOR = "supervisor.json"
# The whole result, kept by the experiment role once the experiment ended: a rerun reports it again.
RESULT = "result.json"
# samples.jsonl lives in tmpfs (/run): past this size every other sample is dropped and the rate halves.
SAMPLES_MAX_BYTES = 4 * 1024 * 1024
TAIL_BYTES = 64 * 1024


class StateError(Exception):
    pass


def validate_name(name):
    # fullmatch: '$' would let a trailing newline through.
    if not isinstance(name, str) or "/" in name or ".." in name or not _NAME_RE.fullmatch(name):
        raise StateError("experiment name %r is not allowed: use letters, digits, '.', '_' and '-' "
                         "(no '/' or '..', at most 100 characters)" % (name,))
    return name


def _open_dir(name, parent_fd):
    """Open one path component as a directory without following a symlink."""
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
    return os.open(name, flags, dir_fd=parent_fd)


def open_root_dir(path, create=True):
    """Open ``path`` as a root-only directory (owner: this user, mode 0700) and return its fd.

    Every component is opened with O_NOFOLLOW relative to its parent, so a symlink anywhere on the path is
    refused, never followed. Each parent must belong to root (or this user) and must not be writable by
    others unless it is sticky (like /tmp and /var/tmp, where only the owner may rename an entry). Missing
    components are created with mode 0700. An existing final directory that others could read or write is
    refused, not chmod-ed: it may be a directory the user pointed at by mistake (/var/lib).
    """
    if not path or not os.path.isabs(path):
        raise StateError("%r is not an absolute path" % (path,))
    parts = [p for p in path.split("/") if p]
    if any(p in (".", "..") for p in parts):
        raise StateError("%s must not contain '.' or '..'" % path)
    uid = os.geteuid()
    fd = os.open("/", os.O_RDONLY | os.O_DIRECTORY)
    try:
        for index, part in enumerate(parts):
            where = "/" + "/".join(parts[:index + 1])
            try:
                child = _open_dir(part, fd)
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                    raise StateError("%s is a symlink or not a directory; refusing to follow or use it" % where)
                if exc.errno != errno.ENOENT or not create:
                    raise StateError("cannot open %s: %s" % (where, exc.strerror))
                try:
                    os.mkdir(part, 0o700, dir_fd=fd)
                except OSError as made:
                    if made.errno != errno.EEXIST:
                        raise StateError("cannot create %s: %s" % (where, made.strerror))
                try:
                    child = _open_dir(part, fd)
                except OSError:
                    raise StateError("%s changed while it was created; refusing to use it" % where)
            os.close(fd)
            fd = child
            info = os.fstat(fd)
            last = index == len(parts) - 1
            if info.st_uid not in (0, uid):
                raise StateError("%s belongs to uid %d, not root: refusing to use it" % (where, info.st_uid))
            if last and (info.st_uid != uid or info.st_mode & 0o077):
                raise StateError("%s must be a root-only directory (owner uid %d, mode 0700); it is mode %04o "
                                 "owned by uid %d" % (where, uid, stat.S_IMODE(info.st_mode), info.st_uid))
            if not last and info.st_mode & 0o022 and not info.st_mode & stat.S_ISVTX:
                raise StateError("%s can be written by other users and is not sticky: refusing to use it" % where)
        return fd
    except BaseException:
        os.close(fd)
        raise


def ensure_root_dir(path):
    """Create ``path`` (mode 0700, root-only) and refuse one that others can write or that is a symlink."""
    os.close(open_root_dir(path))
    return path


OWNER_MARK = ".chaosfleet-owner"


def create_owned_dir(parent, name):
    """Create ``parent/name`` exclusively under the root-only ``parent``; return the record removal needs.

    A directory that is already there was not made by us: it is refused and left untouched. A random token
    in a marker file inside tells our directory from a later one that got the same inode number.
    """
    fd = open_root_dir(parent)
    token = binascii.hexlify(os.urandom(16)).decode()
    try:
        os.mkdir(name, 0o700, dir_fd=fd)
        child = _open_dir(name, fd)
        try:
            info = os.fstat(child)
            mark = os.open(OWNER_MARK, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600, dir_fd=child)
            os.write(mark, token.encode())
            os.close(mark)
        finally:
            os.close(child)
    except OSError as exc:
        if exc.errno == errno.EEXIST:
            raise StateError("%s already exists and this experiment did not create it, so it is left untouched: "
                             "use another name, or remove it yourself" % os.path.join(parent, name))
        raise StateError("cannot create %s: %s" % (os.path.join(parent, name), exc.strerror))
    finally:
        os.close(fd)
    return {"parent": parent, "name": name, "dev": info.st_dev, "ino": info.st_ino, "token": token}


def _owned_by(record, parent_fd):
    """True if ``record["name"]`` under ``parent_fd`` is still the directory create_owned_dir made."""
    try:
        child = _open_dir(record["name"], parent_fd)
    except OSError:
        return False  # gone, a symlink or not a directory
    try:
        info = os.fstat(child)
        if (info.st_dev, info.st_ino) != (record["dev"], record["ino"]):
            return False
        mark = os.open(OWNER_MARK, os.O_RDONLY | os.O_NOFOLLOW, dir_fd=child)
        try:
            return os.read(mark, 64).decode("ascii", "replace") == record["token"]
        finally:
            os.close(mark)
    except OSError:
        return False
    finally:
        os.close(child)


def remove_owned_dir(record):
    """Remove a directory made by create_owned_dir, only while it is still that very directory (same inode and
    token, not a symlink) under the same root-only parent. Returns True if removed."""
    if not record:
        return False
    try:
        fd = open_root_dir(record["parent"], create=False)
    except StateError:
        return False
    try:
        if not _owned_by(record, fd):
            return False
    finally:
        os.close(fd)
    # rmtree walks by file descriptor on Linux and never follows a symlink inside the tree.
    shutil.rmtree(os.path.join(record["parent"], record["name"]), ignore_errors=True)
    return True


class LockBusy(StateError):
    """Another run holds the lock."""


class Lock(object):
    """An exclusive flock on ``<state_dir>/locks/<key>.lock``, held across a check and the act it guards.

    Retirement may unlink a lock file, but only while holding its flock. A run that opened the old file
    before that gets its flock on an unlinked inode: it notices that the path no longer names its file and
    locks the file now at the path instead, so two runs never hold different files of the same name.
    """

    def __init__(self, state_dir, key, busy_message, wait=0.0):
        self.path = os.path.join(state_dir, "locks", key + ".lock")
        self.busy_message = busy_message
        self.wait = wait
        self.fd = None

    def __enter__(self):
        ensure_root_dir(os.path.dirname(self.path))
        deadline = time.time() + self.wait
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0), 0o600)
            self._flock(fd, deadline)
            if self._still_at_path(fd):
                self.fd = fd
                return self
            os.close(fd)  # the file was retired while we waited for it: lock its successor

    def _flock(self, fd, deadline):
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES) or time.time() >= deadline:
                    os.close(fd)
                    raise LockBusy(self.busy_message)
                time.sleep(0.05)

    def _still_at_path(self, fd):
        mine = os.fstat(fd)
        try:
            now = os.stat(self.path, follow_symlinks=False)
        except OSError:
            return False
        return (mine.st_dev, mine.st_ino) == (now.st_dev, now.st_ino)

    def __exit__(self, *exc):
        os.close(self.fd)  # closing drops the lock
        self.fd = None
        return False


def name_lock(state_dir, name, wait=0.0):
    return Lock(state_dir, "name-" + validate_name(name),
                "experiment %s is being started or stopped by another run on this node right now; "
                "try again when that run is done" % name, wait)


def target_lock(state_dir, cgroup_path, wait=0.0):
    key = hashlib.sha256(cgroup_path.encode("utf-8", "surrogateescape")).hexdigest()[:24]
    return Lock(state_dir, "target-" + key,
                "another experiment is being started on %s by another run right now; one experiment per target"
                % cgroup_path, wait)


def experiments_dir(state_dir):
    return os.path.join(state_dir, EXPERIMENTS)


def experiment_dir(state_dir, name):
    return os.path.join(experiments_dir(state_dir), validate_name(name))


def experiment_paths(state_dir, name):
    """The experiment's directory and the files the controller touches or reads in it, by role.

    The experiment role takes these from its request step instead of building paths itself.
    """
    directory = experiment_dir(state_dir.rstrip("/") or "/", name)
    return {"dir": directory, "heartbeat": os.path.join(directory, HEARTBEAT),
            "outcome": os.path.join(directory, OUTCOME), "result": os.path.join(directory, RESULT)}


def write_json(path, data):
    tmp = "%s.tmp.%d" % (path, os.getpid())
    with open(tmp, "w") as handle:
        json.dump(data, handle, sort_keys=True)
    os.rename(tmp, path)


def read_json(path, default=None):
    try:
        with open(path) as handle:
            return json.load(handle)
    except (IOError, OSError, ValueError):
        return default


def append_jsonl(path, record):
    with open(path, "a") as handle:
        handle.write(json.dumps(record, sort_keys=True) + "\n")


def read_jsonl(path, since=None):
    out = []
    try:
        with open(path) as handle:
            for line in handle:
                try:
                    record = json.loads(line)
                except ValueError:
                    continue  # a line cut by a crash mid-write
                if since is None or record.get("t", 0) >= since:
                    out.append(record)
    except (IOError, OSError):
        pass
    return out


def read_last_jsonl(path, limit=TAIL_BYTES):
    """The last complete record of a JSON-lines file, reading only its tail."""
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - limit))
            lines = handle.read().splitlines()
    except (IOError, OSError):
        return None
    for line in reversed(lines):
        try:
            return json.loads(line.decode("utf-8"))
        except ValueError:
            continue  # a line cut by a crash mid-write, or the first, partial line of the tail
    return None


class SampleLog(object):
    """samples.jsonl with a fixed cap: when the next line would pass ``max_bytes``, every other recorded sample
    is dropped and from then on only every other sample is written. The file keeps covering the whole run,
    at a coarser rate, and never grows past the cap (tmpfs is memory)."""

    def __init__(self, path, max_bytes=SAMPLES_MAX_BYTES):
        self.path = path
        self.max_bytes = max_bytes
        self.stride = 1
        self.count = 0
        try:
            self.size = os.path.getsize(path)
        except OSError:
            self.size = 0

    def append(self, record):
        """Record one sample; returns True if it was written (False: skipped by the current rate)."""
        self.count += 1
        if (self.count - 1) % self.stride:
            return False
        line = json.dumps(record, sort_keys=True) + "\n"
        while self.size and self.size + len(line) > self.max_bytes:
            self.thin()
            if (self.count - 1) % self.stride:
                return False
        with open(self.path, "a") as handle:
            handle.write(line)
        self.size += len(line)
        return True

    def thin(self):
        try:
            with open(self.path) as handle:
                kept = handle.readlines()[::2]
        except (IOError, OSError):
            kept = []
        tmp = "%s.tmp.%d" % (self.path, os.getpid())
        with open(tmp, "w") as handle:
            handle.writelines(kept)
        os.rename(tmp, self.path)
        self.size = sum(len(line) for line in kept)
        self.stride *= 2


def list_experiments(state_dir):
    base = experiments_dir(state_dir)
    try:
        return sorted(n for n in os.listdir(base) if os.path.isdir(os.path.join(base, n)))
    except OSError:
        return []


def proc_start_time(pid, proc_root="/proc"):
    """Start time of ``pid`` in clock ticks since boot (field 22 of stat), or None if gone."""
    try:
        with open(os.path.join(proc_root, str(pid), "stat")) as handle:
            text = handle.read()
    except (IOError, OSError):
        return None
    # comm may contain spaces and parentheses: split after the last ')'.
    fields = text[text.rfind(")") + 2:].split()
    try:
        return int(fields[19])
    except (IndexError, ValueError):
        return None


def proc_pgid(pid, proc_root="/proc"):
    try:
        with open(os.path.join(proc_root, str(pid), "stat")) as handle:
            text = handle.read()
        return int(text[text.rfind(")") + 2:].split()[2])
    except (IOError, OSError, IndexError, ValueError):
        return None


def proc_state(pid, proc_root="/proc"):
    try:
        with open(os.path.join(proc_root, str(pid), "stat")) as handle:
            text = handle.read()
        return text[text.rfind(")") + 2:].split()[0]
    except (IOError, OSError, IndexError):
        return None


def proc_stat(pid, proc_root="/proc"):
    """(process group, start time in clock ticks, utime + stime in seconds) of ``pid``, from one read of its
    stat; None if it is gone."""
    try:
        fd = os.open(os.path.join(proc_root, str(pid), "stat"), os.O_RDONLY)
    except OSError:
        return None
    try:
        data = os.read(fd, 4096)
        fields = data[data.rfind(b")") + 2:].split()
        return int(fields[2]), int(fields[19]), (int(fields[11]) + int(fields[12])) / float(os.sysconf("SC_CLK_TCK"))
    except (OSError, IndexError, ValueError):
        return None
    finally:
        os.close(fd)


def pid_record(pid, proc_root="/proc"):
    return {"pid": pid, "start_time": proc_start_time(pid, proc_root)}


def is_alive(record, proc_root="/proc"):
    """True while the recorded process still runs (same PID and start time, not a zombie)."""
    if not record or not record.get("pid"):
        return False
    start = proc_start_time(record["pid"], proc_root)
    return start is not None and start == record.get("start_time") and proc_state(record["pid"], proc_root) != "Z"


def send_signal(pid, start_time, sig, proc_root="/proc"):
    """Signal ``pid`` only if it still has ``start_time``. Returns True if sent.

    Where Python has pidfds (3.9+), the check and the signal go through one pidfd, so the PID cannot be
    reused between them.
    """
    if start_time is None:
        return False
    opener, sender = getattr(os, "pidfd_open", None), getattr(signal, "pidfd_send_signal", None)
    if opener and sender and proc_root == "/proc":
        try:
            fd = opener(pid)
        except OSError:
            return False
        try:
            if proc_start_time(pid, proc_root) != start_time:
                return False
            sender(fd, sig)
            return True
        except OSError:
            return False
        finally:
            os.close(fd)
    if proc_start_time(pid, proc_root) != start_time:
        return False
    try:
        os.kill(pid, sig)
        return True
    except OSError:
        return False


def signal_recorded(record, sig, proc_root="/proc"):
    """Signal a recorded process only if it is still the one recorded. Returns True if sent."""
    if not is_alive(record, proc_root):
        return False
    return send_signal(record["pid"], record.get("start_time"), sig, proc_root)


def all_pids(proc_root="/proc"):
    try:
        return [int(n) for n in os.listdir(proc_root) if n.isdigit()]
    except OSError:
        return []


def leader_holds_group(record, proc_root="/proc"):
    """True while the recorded group leader (PID and start time match, running or a zombie not yet reaped)
    still holds its PID. The kernel then keeps the number from being reused as a PID or a group ID, and only
    processes of the leader's own session (our descendants: the leader started a new session) can be in the
    group: every member is ours."""
    return bool(record) and record.get("start_time") is not None and \
        proc_start_time(record["pid"], proc_root) == record["start_time"]


def verified_members(record, known, proc_root="/proc", pids=None):
    """(pid, start_time) of the processes of the recorded group that are provably ours.

    While the leader holds the group (leader_holds_group), that is every process whose pgid is the leader's
    PID. Once the leader is gone its number may be reused, and a foreign process may then lead a new group
    with the same ID: from then on only processes in ``known`` (seen as members earlier, with the same PID
    and start time) and still in the group count. Reads /proc twice around the scan, so a leader that died
    during it does not vouch for what was found.
    """
    pgid = record["pid"]
    holds = leader_holds_group(record, proc_root)
    found = []
    for pid in all_pids(proc_root) if pids is None else pids:
        if proc_pgid(pid, proc_root) != pgid:
            continue
        start = proc_start_time(pid, proc_root)
        if start is None or start < record["start_time"]:
            continue
        found.append((pid, start))
    if holds and leader_holds_group(record, proc_root):
        return found
    return [m for m in found if m in known]


def kill_group_verified(record, proc_root="/proc", grace=2.0, send=send_signal):
    """End a process group we started: TERM, then KILL, only to members verified_members() vouches for.

    ``record`` is {"pid", "start_time"} of the group leader, optionally with "members": [[pid, start_time],
    ...] seen earlier by the supervisor. Returns the PIDs of verified members still alive afterwards.
    """
    if not record or record.get("start_time") is None or not record.get("pid"):
        return []
    known = set(tuple(m) for m in record.get("members") or [])
    known.add((record["pid"], record["start_time"]))
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 3.0)):
        members = verified_members(record, known, proc_root)
        known.update(members)
        members = [m for m in members if proc_state(m[0], proc_root) != "Z"]
        if not members:
            return []
        for pid, start in members:
            send(pid, start, sig, proc_root)
        deadline = time.time() + wait
        while time.time() < deadline:
            if not [p for p, s in members if proc_start_time(p, proc_root) == s and proc_state(p, proc_root) != "Z"]:
                return []
            time.sleep(0.05)
    return sorted(pid for pid, _start in verified_members(record, known, proc_root)
                  if proc_state(pid, proc_root) != "Z")
