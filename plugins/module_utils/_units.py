# -*- coding: utf-8 -*-
# Copyright (c) 2026, chaosfleet.stress contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one place that parses sizes, CPU amounts and durations.

Node-side code: standard library only, Python 3.8+.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re
from decimal import Decimal, InvalidOperation

# Kubernetes binary and decimal suffixes, plus the IEC/SI spellings users type.
_SUFFIX = {
    "": 1,
    "B": 1,
    "Ki": 2 ** 10, "KiB": 2 ** 10,
    "Mi": 2 ** 20, "MiB": 2 ** 20,
    "Gi": 2 ** 30, "GiB": 2 ** 30,
    "Ti": 2 ** 40, "TiB": 2 ** 40,
    "Pi": 2 ** 50, "PiB": 2 ** 50,
    "Ei": 2 ** 60, "EiB": 2 ** 60,
    "k": 10 ** 3, "kB": 10 ** 3, "K": 10 ** 3, "KB": 10 ** 3,
    "M": 10 ** 6, "MB": 10 ** 6,
    "G": 10 ** 9, "GB": 10 ** 9,
    "T": 10 ** 12, "TB": 10 ** 12,
    "P": 10 ** 15, "PB": 10 ** 15,
    "E": 10 ** 18, "EB": 10 ** 18,
}
_QUANTITY_RE = re.compile(r"^\s*([+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)\s*([A-Za-z]*)\s*$")
_PERCENT_RE = re.compile(r"^\s*([+-]?(?:\d+\.?\d*|\.\d+))\s*%\s*$")
_DURATION_PART_RE = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")

MAX_DURATION_SECONDS = 24 * 3600


class UnitError(ValueError):
    """A value that cannot be read as the unit asked for."""


def parse_quantity(value, what="quantity"):
    """Read a Kubernetes-style quantity ('200Mi', '500M', '1e3', '250m') as a Decimal."""
    if isinstance(value, bool):
        raise UnitError("%s must be a number or a quantity string, got %r" % (what, value))
    if isinstance(value, (int, float, Decimal)):
        return Decimal(str(value))
    text = str(value)
    match = _QUANTITY_RE.match(text)
    if not match:
        raise UnitError("%s %r is not a quantity (examples: 200Mi, 1Gi, 500M, 200MiB)" % (what, text))
    number, suffix = match.groups()
    try:
        amount = Decimal(number)
    except InvalidOperation:
        raise UnitError("%s %r is not a quantity" % (what, text))
    if suffix == "m":
        return amount / 1000
    if suffix not in _SUFFIX:
        raise UnitError("%s %r has an unknown unit %r (use Ki, Mi, Gi, k, M, G, KiB, MiB, GiB)" % (what, text, suffix))
    return amount * _SUFFIX[suffix]


def parse_size(value, of_bytes=None, what="size"):
    """Read a positive size in bytes.

    'N%' is a percentage of ``of_bytes`` (a cgroup's limit), never of host RAM;
    it is an error when ``of_bytes`` is None (an unlimited cgroup).
    """
    text = str(value)
    percent = _PERCENT_RE.match(text) if isinstance(value, str) else None
    if percent:
        share = Decimal(percent.group(1))
        if share <= 0 or share > 100:
            raise UnitError("%s %r: a percentage must be above 0 and at most 100" % (what, text))
        if of_bytes is None:
            raise UnitError("%s %r is a percentage of the target's memory limit, but the target has no limit" % (what, text))
        amount = Decimal(of_bytes) * share / 100
    else:
        amount = parse_quantity(value, what)
    result = int(amount)
    if result <= 0:
        raise UnitError("%s %r must be greater than zero" % (what, text))
    return result


def parse_cpu(value, what="cpu"):
    """Read a CPU amount in cores ('500m', '2', 0.5)."""
    return float(parse_quantity(value, what))


def parse_duration(value, what="duration", maximum=MAX_DURATION_SECONDS, minimum=None):
    """Read a positive duration ('90s', '5m', '1h30m', '250ms', 30) in seconds."""
    if isinstance(value, bool):
        raise UnitError("%s must be a duration like 90s, 5m or 1h30m, got %r" % (what, value))
    if isinstance(value, (int, float)):
        seconds = float(value)
        text = str(value)
    else:
        text = str(value).strip()
        if re.match(r"^\d+(?:\.\d+)?$", text):
            seconds = float(text)
        else:
            parts = _DURATION_PART_RE.findall(text)
            if not parts or "".join(n + u for n, u in parts) != text:
                raise UnitError("%s %r is not a duration (examples: 90s, 5m, 1h30m, 500ms)" % (what, text))
            scale = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
            seconds = sum(float(n) * scale[u] for n, u in parts)
    if seconds <= 0:
        raise UnitError("%s %r must be greater than zero" % (what, text))
    if minimum is not None and seconds < minimum:
        raise UnitError("%s %r is below the minimum of %ss" % (what, text, minimum))
    if maximum is not None and seconds > maximum:
        raise UnitError("%s %r is over the maximum of %s" % (what, text, format_duration(maximum)))
    return seconds


def format_duration(seconds):
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    out = ""
    if hours:
        out += "%dh" % hours
    if minutes:
        out += "%dm" % minutes
    if secs or not out:
        out += "%ds" % secs
    return out


def format_bytes(count):
    if count is None:
        return "unlimited"
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return ("%d %s" % (value, unit)) if unit == "B" else ("%.1f %s" % (value, unit))
        value /= 1024
    return "%d B" % count
