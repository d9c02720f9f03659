# -*- coding: utf-8 -*-
# Copyright (c) 2026, chaosfleet.stress contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""How the report writes times, sizes, shares and stress levels, so every part and format says them alike."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime

from ansible_collections.chaosfleet.stress.plugins.module_utils._units import format_bytes, format_duration
from ansible_collections.chaosfleet.stress.plugins.plugin_utils._search import label as _search_label


def utc_text(epoch):
    if epoch is None:
        return "n/a"
    return datetime.datetime.fromtimestamp(epoch, tz=datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def time_label(seconds):
    """Seconds as a chart or table shows them: '12.5 s' when short, '4m30s' when long."""
    if abs(seconds) < 180:
        return "%g s" % seconds
    return ("-" if seconds < 0 else "") + format_duration(abs(seconds))


def bytes_text(count):
    return format_bytes(count) if count is not None else "n/a"


def round_bytes(count):
    """A size rounded for a sentence: '307 MiB', '51.2 MiB', '1.5 GiB'."""
    if count is None:
        return "n/a"
    value, unit = float(count), "B"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            break
        value /= 1024
    return "%s %s" % ("%d" % round(value) if abs(value) >= 100 or unit == "B" else "%.3g" % value, unit)


def share_text(part, whole):
    return "%d%%" % round(100.0 * part / whole) if part is not None and whole else ""


def recovery_terms(rec):
    """'within 5% of baseline after 1m', leaving out what the node did not say."""
    words = []
    if rec.get("within_percent") is not None:
        words.append("within %g%% of baseline" % rec["within_percent"])
    if rec.get("timeout_seconds"):
        words.append("after %s" % format_duration(rec["timeout_seconds"]))
    return " ".join(words) or "to baseline"


def level_label(value, unit):
    """A search level as the search labels it ('35%', '120.0 MiB', 'load 40%'), for levels it did not label."""
    return _search_label(value, unit)
