# -*- coding: utf-8 -*-
# Copyright (c) 2026, chaosfleet.stress contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Retire the state of ended experiments (and lock files nobody needs) from the node's state directory.

An ended experiment is kept while it is among the ``retain_count`` newest ended ones, or ended less than
``retain_age`` seconds ago; it is removed only when it is outside both. A running experiment (no outcome yet,
or a live supervisor or stress group) and an unreadable one are never removed. Node-side code: standard
library only.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import binascii
import errno
import json
import os
import re
import shutil
import stat
import time

from ansible_collections.chaosfleet.stress.plugins.module_utils import _state as state
from ansible_collections.chaosfleet.stress.plugins.module_utils._units import parse_duration

DEFAULT_RETAIN_COUNT = 20
DEFAULT_RETAIN_AGE = "168h"  # 7 days
DEFAULT_RETAIN_AGE_SECONDS = 7 * 24 * 3600.0
MAX_RETAIN_AGE = 366 * 24 * 3600
RETAIN_AGE_OFF = ("off", "false", "0")  # YAML reads an unquoted off as false, which reaches the module as "False"
# Experiments are moved here before removal, so a removal cut short never leaves a half experiment behind.
TRASH = "retired"
_TARGET_LOCK_RE = re.compile(r"target-[0-9a-f]{24}\.lock", re.ASCII)
_ZERO_RE = re.compile(r"[0.]*0[0.]*(?:h|m|s|ms)?", re.ASCII)
_NAME_LOCK_RE = re.compile(r"name-(.+)\.lock", re.ASCII)

RUNNING, ENDED, UNREADABLE = "running", "ended", "unreadable"


def parse_retain_age(value):
    """Seconds an ended experiment is kept by age; None when age keeps nothing (``off``/``0``)."""
    if value is None or str(value).strip() == "":
        value = DEFAULT_RETAIN_AGE
    text = str(value).strip().lower()
    if text in RETAIN_AGE_OFF or _is_zero(text):
        return None
    return parse_duration(value, "retain_age", maximum=MAX_RETAIN_AGE)


def _is_zero(text):
    return bool(_ZERO_RE.fullmatch(text))


def decide(entries, now, retain_count, retain_age):
    """Names to retire. Pure: ``entries`` are dicts with name, state (running, ended, unreadable) and, when
    ended, ended_at (seconds since the epoch); ``retain_age`` None means age keeps nothing."""
    ended = sorted((e for e in entries if e["state"] == ENDED), key=lambda e: (-e["ended_at"], e["name"]))
    out = []
    for rank, entry in enumerate(ended):
        young = retain_age is not None and now - entry["ended_at"] < retain_age
        if rank >= retain_count and not young:
            out.append(entry["name"])
    return sorted(out)


def _read_strict(path):
    """A JSON file's content; None when missing; raises when it cannot be read or parsed."""
    try:
        with open(path) as handle:
            return json.load(handle)
    except (IOError, OSError) as exc:
        if exc.errno == errno.ENOENT:
            return None
        raise


def survey_one(state_dir, name, proc_root="/proc"):
    """{name, state, ended_at, target_path, why} of one entry of <state_dir>/experiments, read without locks."""
    entry = {"name": name, "state": UNREADABLE, "ended_at": None, "target_path": None, "why": None}
    base = state.experiments_dir(state_dir)
    try:
        state.validate_name(name)
        if not stat.S_ISDIR(os.lstat(os.path.join(base, name)).st_mode):
            raise ValueError("not a directory")
        directory = os.path.join(base, name)
        spec = _read_strict(os.path.join(directory, state.SPEC))
        target_path = (spec.get("target") or {}).get("path") if isinstance(spec, dict) else None
        entry["target_path"] = target_path if isinstance(target_path, str) else None
        status, outcome = (_read_strict(os.path.join(directory, f)) for f in (state.STATUS, state.OUTCOME))
        if outcome is None:
            entry["state"] = RUNNING  # no outcome yet: its supervisor, or a later stop, still owes one
            return entry
        ended_at = outcome.get("ended_at")
        if not isinstance(spec, dict) or not isinstance(status, dict) or isinstance(ended_at, bool) \
                or not isinstance(ended_at, (int, float)):
            raise ValueError("spec, status or outcome.ended_at missing")
        records = [status.get("supervisor") or _read_strict(os.path.join(directory, state.SUPERVISOR))]
        records += status.get("instances") or []
        if any(state.is_alive(r, proc_root) for r in records if isinstance(r, dict)):
            entry["state"] = RUNNING
            return entry
        entry.update(state=ENDED, ended_at=float(ended_at))
    except (state.StateError, ValueError, AttributeError, TypeError, IOError, OSError) as exc:
        entry["why"] = str(exc) or exc.__class__.__name__
    return entry


def survey(state_dir, proc_root="/proc"):
    try:
        names = sorted(os.listdir(state.experiments_dir(state_dir)))
    except OSError:
        return []
    return [survey_one(state_dir, n, proc_root) for n in names]


def _remove_experiment(state_dir, name):
    """Move the directory out of experiments/ into the trash, by fd and never through a symlink."""
    exp_fd = state.open_root_dir(state.experiments_dir(state_dir), create=False)
    try:
        trash_fd = state.open_root_dir(os.path.join(state_dir, TRASH))
        try:
            if not stat.S_ISDIR(os.stat(name, dir_fd=exp_fd, follow_symlinks=False).st_mode):
                raise state.StateError("%s is not a directory; left alone" % name)
            gone = "%s.%s" % (name, binascii.hexlify(os.urandom(4)).decode())
            os.rename(name, gone, src_dir_fd=exp_fd, dst_dir_fd=trash_fd)
        finally:
            os.close(trash_fd)
    finally:
        os.close(exp_fd)


def _empty_trash(state_dir):
    """Delete what was moved to the trash, this time or by an earlier run that was cut short."""
    trash = os.path.join(state_dir, TRASH)
    try:
        os.close(state.open_root_dir(trash, create=False))
        entries = os.listdir(trash)
    except (state.StateError, OSError):
        return []
    errors = []
    for entry in entries:
        path = os.path.join(trash, entry)
        try:
            if os.path.islink(path) or not os.path.isdir(path):
                os.unlink(path)
            else:
                shutil.rmtree(path)  # walks by file descriptor on Linux, never follows a symlink inside
        except OSError as exc:
            errors.append("%s: cannot delete it: %s" % (path, exc))
    return errors


def _drop_lock_file(state_dir, key):
    """Unlink a lock file while holding its flock; False when someone holds it (then it stays)."""
    try:
        with state.Lock(state_dir, key, "busy") as lock:
            os.unlink(lock.path)  # Lock.__enter__ of a run that opened the old file notices and retries
        return True
    except state.LockBusy:
        return False


def retire(state_dir, retain_count=DEFAULT_RETAIN_COUNT, retain_age=DEFAULT_RETAIN_AGE_SECONDS, now=None,
           exclude=(), proc_root="/proc"):
    """Remove the ended experiments outside both retention rules, then lock files no experiment needs.

    Never waits for a lock: a busy name is skipped (a later run retires it). Returns (retired names, errors);
    an unreadable experiment is left alone and reported among the errors.
    """
    now = time.time() if now is None else now
    entries = [e for e in survey(state_dir, proc_root) if e["name"] not in exclude]
    errors = ["%s: left alone, its state cannot be read (%s)" % (e["name"], e["why"])
              for e in entries if e["state"] == UNREADABLE]
    retired = []
    for name in decide(entries, now, retain_count, retain_age):
        seen = [e for e in entries if e["name"] == name][0]
        try:
            with state.name_lock(state_dir, name) as lock:
                fresh = survey_one(state_dir, name, proc_root)
                # Still the same ended run (a restart would have no or another ended_at), still old.
                if fresh["state"] != ENDED or fresh["ended_at"] != seen["ended_at"] or \
                        (retain_age is not None and now - fresh["ended_at"] < retain_age):
                    continue
                _remove_experiment(state_dir, name)
                os.unlink(lock.path)
            retired.append(name)
        except state.LockBusy:
            continue  # a run of this name is under way; a later start retires it
        except state.StateError as exc:
            errors.append("%s: %s" % (name, exc))
        except (IOError, OSError) as exc:
            errors.append("%s: cannot remove it: %s" % (name, exc))
    errors += _empty_trash(state_dir)
    errors += _retire_lock_files(state_dir, proc_root)
    return retired, errors


def _retire_lock_files(state_dir, proc_root):
    """Remove target locks no remaining experiment names, and name locks of names without an experiment."""
    locks = os.path.join(state_dir, "locks")
    try:
        files = os.listdir(locks)
    except OSError:
        return []
    # Unlinking an idle lock file is always safe (see Lock); keeping referenced ones only saves churn.
    remaining = survey(state_dir, proc_root)
    names = set(e["name"] for e in remaining)
    targets = set(state.target_lock(state_dir, e["target_path"]).path for e in remaining if e["target_path"])
    errors = []
    for entry in sorted(files):
        name = _NAME_LOCK_RE.fullmatch(entry)
        drop = (name and name.group(1) not in names) or \
            (_TARGET_LOCK_RE.fullmatch(entry) and os.path.join(locks, entry) not in targets)
        if drop:
            try:
                _drop_lock_file(state_dir, entry[:-len(".lock")])
            except (state.StateError, IOError, OSError) as exc:
                errors.append("lock %s: %s" % (entry, exc))
    return errors
