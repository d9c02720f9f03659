# -*- coding: utf-8 -*-
# Copyright (c) 2026, chaosfleet.stress contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The stress_report action's entry: its arguments, run(), and writing the files all or nothing.

Controller-side only (rendering imports jinja2), which is why the report lives in plugin_utils
and not module_utils: module_utils are shipped to the nodes inside AnsiballZ. The parts, each
in its own file:

- _report_input: the results checked and normalized, slices, the stop record (ReportError);
- _report_verdicts: requested and achieved, how a stress ended, host and overall verdicts;
- _report_charts: SVG chart geometry (time series, and a search's figure per level);
- _report_headroom: a headroom search's answer, levels table and charts;
- _report_model: the model the templates, the JSON document and set_stats read;
- _report_render: Markdown escaping and the Jinja2 templates;
- _report_text: how times, sizes and levels are written.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import json
import os
import re
import tempfile

from ansible_collections.chaosfleet.stress.plugins.plugin_utils._report_input import (
    ReportError, apply_stop_record, from_slices, read_stop_record,
)
from ansible_collections.chaosfleet.stress.plugins.plugin_utils._report_model import build, headroom_stats, stats
from ansible_collections.chaosfleet.stress.plugins.plugin_utils._report_render import render, render_template

FORMATS = {"html": ".html", "markdown": ".md", "json": ".json"}

ARGUMENT_SPEC = dict(
    results=dict(type="raw"),
    slice_reports=dict(type="list", elements="path"),
    expected_hosts=dict(type="list", elements="str", default=[]),
    title=dict(type="str"),
    dest=dict(type="path", required=True),
    basename=dict(type="str"),
    formats=dict(type="list", elements="str", choices=sorted(FORMATS), default=["html", "markdown", "json"]),
    achieved_min_percent=dict(type="float", default=80.0),
    fail_on_app_oom=dict(type="bool", default=True),
    stop_record=dict(type="path"),
)

REQUIRED_ONE_OF = [("results", "slice_reports")]
MUTUALLY_EXCLUSIVE = [("results", "slice_reports")]


def write_game_day(summary, dest, check_mode=False):
    """Write a game day's summary (plugin_utils/_game_day.summary) as JSON and Markdown; returns their paths."""
    dest = os.path.abspath(dest)
    paths = {"json": os.path.join(dest, "game-day-%s.json" % summary["name"]),
             "markdown": os.path.join(dest, "game-day-%s.md" % summary["name"])}
    texts = {paths["json"]: json.dumps(summary, indent=2, sort_keys=True) + "\n",
             paths["markdown"]: render_template("game_day.md.j2", dict(summary, basename=os.path.basename))}
    write_files(dest, texts, check_mode=check_mode)
    return paths


def write_stresschaos(summary, dest, basename, check_mode=False):
    """Write a StressChaos run's summary (plugin_utils/_stresschaos, its containerRecords and translation
    tables) as JSON and Markdown; returns their paths."""
    _check_basename(basename)
    dest = os.path.abspath(dest)
    paths = {"json": os.path.join(dest, basename + ".json"), "markdown": os.path.join(dest, basename + ".md")}
    texts = {paths["json"]: json.dumps(summary, indent=2, sort_keys=True) + "\n",
             paths["markdown"]: render_template("stresschaos.md.j2", summary)}
    write_files(dest, texts, check_mode=check_mode)
    return paths


def default_basename(experiment):
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", experiment or "").strip("-.")
    return "stress-report-" + name if name else "stress-report"


def _check_basename(basename):
    if not basename or basename.startswith(".") or not re.match(r"^[A-Za-z0-9._-]+$", basename):
        raise ReportError("basename %r must be a plain file name: letters, digits, '.', '_' and '-', "
                          "not starting with '.'" % basename)


def _missing_dirs(dest):
    """Directories that would have to be created for dest, outermost first; checks they can be."""
    dest = os.path.abspath(dest)
    missing, probe = [], dest
    while not os.path.exists(probe):
        missing.insert(0, probe)
        parent = os.path.dirname(probe)
        if parent == probe:
            break
        probe = parent
    if not os.path.isdir(probe):
        raise ReportError("cannot write the report to %s: %s is not a directory. Nothing was written."
                          % (dest, probe))
    if not os.access(probe, os.W_OK | os.X_OK):
        raise ReportError("cannot write the report to %s: %s is not writable. Nothing was written." % (dest, probe))
    return missing


def _read(path):
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except (IOError, OSError):
        return None


def write_files(dest, files, check_mode=False):
    """Write {path: text} atomically, all or nothing. Returns the paths whose content changed.

    Every file is first written to a temporary file in dest; only when all of
    them are written are they renamed into place. On any error the temporaries
    (and directories this call created) are removed and ReportError is raised.
    """
    to_create = _missing_dirs(dest)
    for path in files:
        if os.path.isdir(path):
            raise ReportError("cannot write %s: a directory of that name exists. Nothing was written." % path)
    changed = [p for p in sorted(files) if _read(p) != files[p].encode("utf-8")]
    if check_mode or not changed:
        return changed
    created, temps = [], []
    try:
        for directory in to_create:
            os.mkdir(directory, 0o755)
            created.append(directory)
        for path in changed:
            fd, tmp = tempfile.mkstemp(dir=dest, prefix="." + os.path.basename(path) + ".", suffix=".tmp")
            temps.append((tmp, path))
            with os.fdopen(fd, "wb") as handle:
                handle.write(files[path].encode("utf-8"))
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(tmp, 0o644)
    except (IOError, OSError) as exc:
        for tmp, _path in temps:
            try:
                os.unlink(tmp)
            except OSError:
                pass
        for directory in reversed(created):
            try:
                os.rmdir(directory)
            except OSError:
                pass
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
            reason += " (is %s writable?)" % dest
        raise ReportError("cannot write the report to %s: %s. Nothing was written." % (dest, reason))
    for tmp, path in temps:
        os.replace(tmp, path)
    return changed


def run(params, check_mode=False):
    """Everything the action does: returns the task result, raises ReportError on bad input."""
    if params.get("slice_reports"):
        results, expected = from_slices(params["slice_reports"])
        params = dict(params, results=results,
                      expected_hosts=sorted(set(params.get("expected_hosts") or []) | set(expected)))
    if params.get("stop_record"):
        record = read_stop_record(params["stop_record"])
        params = dict(params, results=apply_stop_record(params["results"], record), stop_record_data=record)
    formats = list(dict.fromkeys(params.get("formats") or list(FORMATS)))
    for fmt in formats:
        if fmt not in FORMATS:
            raise ReportError("unknown format %r; choose from %s" % (fmt, ", ".join(sorted(FORMATS))))
    model = build(params)
    basename = params.get("basename") or default_basename(model["experiment"])
    _check_basename(basename)
    dest = os.path.abspath(params["dest"])
    paths = dict((fmt, os.path.join(dest, basename + FORMATS[fmt])) for fmt in formats)
    model["paths"] = paths
    texts = render(model, formats)
    changed = write_files(dest, dict((paths[f], texts[f]) for f in formats), check_mode=check_mode)
    return {
        "changed": bool(changed),
        "paths": paths,
        "written": [] if check_mode else changed,
        "stats": stats(model, paths),
        "headroom": headroom_stats(model),
    }
