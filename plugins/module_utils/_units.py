# -*- coding: utf-8 -*-
# Copyright (c) 2026, chaosfleet.stress contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one place that parses sizes, CPU amounts and durations.

Node-side code: standard library only, Python 3.8+.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import math
import re
from decimal import ROUND_FLOOR, Decimal, InvalidOperation

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
# ASCII digits only (re.ASCII: \d would take '١' or '１'), no space between number and unit, and the
# exponent bounded so '1e999999' fails at once instead of building a million-digit integer.
_NUMBER = r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)"
_QUANTITY_RE = re.compile(r"(%s)(?:[eE]([+-]?[0-9]+))?([A-Za-z]*)" % _NUMBER, re.ASCII)
MAX_EXPONENT = 30
_PERCENT_RE = re.compile(r"(%s)%%" % _NUMBER, re.ASCII)
# Each unit at most once, largest first: 1h30m, 2m30s, 1s500ms.
_DURATION_RE = re.compile(r"(?:([0-9]+(?:\.[0-9]+)?)h)?(?:([0-9]+(?:\.[0-9]+)?)m(?!s))?"
                          r"(?:([0-9]+(?:\.[0-9]+)?)s)?(?:([0-9]+(?:\.[0-9]+)?)ms)?", re.ASCII)
_PLAIN_SECONDS_RE = re.compile(r"[0-9]+(?:\.[0-9]+)?", re.ASCII)
_DURATION_SCALE = (3600, 60, 1, 0.001)

MAX_DURATION_SECONDS = 24 * 3600
# Longer text than this is not a quantity anyone means; refusing it early keeps parsing cheap.
MAX_TEXT_LENGTH = 64
# 8 EiB: anything larger cannot be a size on a real node (and overflows C longs downstream).
MAX_BYTES = 2 ** 63 - 1


class UnitError(ValueError):
    """A value that cannot be read as the unit asked for."""


def _text_of(value, what):
    """The stripped text of a string value, bounded in length. Inner whitespace is never allowed."""
    text = str(value).strip()
    if len(text) > MAX_TEXT_LENGTH:
        raise UnitError("%s is %d characters long; at most %d are allowed" % (what, len(text), MAX_TEXT_LENGTH))
    return text


def parse_quantity(value, what="quantity"):
    """Read a Kubernetes-style quantity ('200Mi', '500M', '1e3', '250m') as a Decimal."""
    if isinstance(value, bool):
        raise UnitError("%s must be a number or a quantity string, got %r" % (what, value))
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            raise UnitError("%s %r is not a finite number" % (what, value))
        return Decimal(repr(value))
    if isinstance(value, Decimal):
        return value
    text = _text_of(value, what)
    match = _QUANTITY_RE.fullmatch(text)
    if not match:
        raise UnitError("%s %r is not a quantity (examples: 200Mi, 1Gi, 500M, 200MiB; ASCII digits, "
                        "no space before the unit)" % (what, text))
    number, exponent, suffix = match.groups()
    try:
        amount = Decimal(number)
    except InvalidOperation:
        raise UnitError("%s %r is not a quantity" % (what, text))
    if exponent:
        if len(exponent.lstrip("+-")) > 3 or abs(int(exponent)) > MAX_EXPONENT:
            raise UnitError("%s %r is out of range: the exponent must be from -%d to %d"
                            % (what, text, MAX_EXPONENT, MAX_EXPONENT))
        amount = amount.scaleb(int(exponent))
    if suffix == "m":
        return amount / 1000
    if suffix not in _SUFFIX:
        raise UnitError("%s %r has an unknown unit %r (use Ki, Mi, Gi, k, M, G, KiB, MiB, GiB)" % (what, text, suffix))
    return amount * _SUFFIX[suffix]


def parse_size(value, of_bytes=None, what="size"):
    """Read a positive size in whole bytes.

    'N%' is a percentage of ``of_bytes`` (a cgroup's limit), never of host RAM, rounded down to
    whole bytes; it is an error when ``of_bytes`` is None (an unlimited cgroup). Any other size must
    come to a whole number of bytes: '1.5Gi' is fine, '1.9' is an error, not 1 byte.
    """
    if isinstance(value, str):
        text = _text_of(value, what)
        percent = _PERCENT_RE.fullmatch(text)
    else:
        text, percent = str(value), None
    if percent:
        share = Decimal(percent.group(1))
        if share <= 0 or share > 100:
            raise UnitError("%s %r: a percentage must be above 0 and at most 100" % (what, text))
        if of_bytes is None:
            raise UnitError("%s %r is a percentage of the target's memory limit, but the target has no limit" % (what, text))
        amount = (Decimal(of_bytes) * share / 100).to_integral_value(rounding=ROUND_FLOOR)
    else:
        amount = parse_quantity(value, what)
    if amount > MAX_BYTES:
        raise UnitError("%s %r is too large (at most 8Ei)" % (what, text))
    if amount <= 0:
        raise UnitError("%s %r must be greater than zero" % (what, text))
    if amount != amount.to_integral_value():
        raise UnitError("%s %r is not a whole number of bytes (%s)" % (what, text, amount.normalize()))
    return int(amount)


def parse_cpu(value, what="cpu"):
    """Read a CPU amount in cores ('500m', '2', 0.5)."""
    amount = parse_quantity(value, what)
    if amount > 10 ** 6:
        raise UnitError("%s %r is too large" % (what, value))
    return float(amount)


def parse_duration(value, what="duration", maximum=MAX_DURATION_SECONDS, minimum=None):
    """Read a positive duration in seconds: '90s', '5m', '1h30m', '250ms', or a plain number of seconds.

    Units come largest first and each at most once ('1h1h' is an error); ASCII digits only; no spaces.
    """
    if isinstance(value, bool):
        raise UnitError("%s must be a duration like 90s, 5m or 1h30m, got %r" % (what, value))
    if isinstance(value, (int, float)):
        seconds = float(value)
        text = str(value)
        if math.isnan(seconds):
            raise UnitError("%s %r is not a duration" % (what, value))
    else:
        text = _text_of(value, what)
        if _PLAIN_SECONDS_RE.fullmatch(text):
            seconds = float(text)
        else:
            match = _DURATION_RE.fullmatch(text)
            if not text or not match:
                raise UnitError("%s %r is not a duration (examples: 90s, 5m, 1h30m, 500ms; each unit once, "
                                "largest first, no spaces)" % (what, text))
            seconds = sum(float(n) * scale for n, scale in zip(match.groups(), _DURATION_SCALE) if n)
    if seconds <= 0:
        raise UnitError("%s %r must be greater than zero" % (what, text))
    if minimum is not None and seconds < minimum:
        raise UnitError("%s %r is below the minimum of %ss" % (what, text, minimum))
    if maximum is not None and seconds > maximum:
        raise UnitError("%s %r is over the maximum of %s" % (what, text, format_duration(maximum)))
    return seconds


# The words Ansible's own booleans take (a module's type=bool, the bool filter), so a value means the same
# whether a module, a filter or this collection reads it.
TRUE_WORDS = ("true", "yes", "on", "1", "y", "t")
FALSE_WORDS = ("false", "no", "off", "0", "n", "f")


def parse_bool(value, what="value", default=False):
    """Read a yes/no value: a bool, 0/1, or one of TRUE_WORDS / FALSE_WORDS (any case).

    None and '' (an unset survey answer) give ``default``. Any other word raises UnitError: a typo
    must not quietly read as false (and turn a safety switch off).
    """
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    text = str(value).strip().lower()
    if text == "":
        return default
    if text in TRUE_WORDS:
        return True
    if text in FALSE_WORDS:
        return False
    raise UnitError("%s must be true or false (or yes/no, on/off, 1/0), got %r" % (what, value))


def parse_names(value):
    """A list of names as Ansible's list type reads one: a list, or one comma-separated string (an AWX survey's
    text field, ``-e key=a,b``). Stripped, empty parts and repeats left out, in the order given."""
    if value is None:
        return []
    parts = value.split(",") if isinstance(value, str) else value
    names = []
    for part in parts:
        name = str(part).strip()
        if name and name not in names:
            names.append(name)
    return names


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
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"):
        if abs(value) < 1024 or unit == "EiB":
            return ("%d %s" % (value, unit)) if unit == "B" else ("%.1f %s" % (value, unit))
        value /= 1024
    return "%d B" % count
