import pytest

from ansible_collections.chaosfleet.stress.plugins.module_utils._units import (
    UnitError, format_bytes, format_duration, parse_cpu, parse_duration, parse_quantity, parse_size,
)

MI = 1024 * 1024


@pytest.mark.parametrize("text, of_bytes, expected", [
    ("200Mi", None, 200 * MI),
    ("1Gi", None, 1024 * MI),
    ("500M", None, 500 * 10 ** 6),
    ("200MiB", None, 200 * MI),
    ("64KiB", None, 64 * 1024),
    ("1.5Gi", None, int(1.5 * 1024 * MI)),
    ("1e3", None, 1000),
    ("4096", None, 4096),
    (4096, None, 4096),
    ("2k", None, 2000),
    ("50%", 500 * MI, 250 * MI),
    ("80%", 500 * MI, 400 * MI),
    ("100%", 10, 10),
    (" 12 Mi ", None, 12 * MI),
])
def test_parse_size(text, of_bytes, expected):
    assert parse_size(text, of_bytes) == expected


@pytest.mark.parametrize("text, of_bytes, message", [
    ("abc", None, "is not a quantity"),
    ("-5Mi", None, "greater than zero"),
    ("0", None, "greater than zero"),
    ("0Mi", None, "greater than zero"),
    ("5Qi", None, "unknown unit"),
    ("50%", None, "has no limit"),
    ("0%", 100, "above 0"),
    ("150%", 100, "at most 100"),
    (True, None, "must be a number"),
])
def test_parse_size_rejects(text, of_bytes, message):
    with pytest.raises(UnitError, match=message):
        parse_size(text, of_bytes)


@pytest.mark.parametrize("text, expected", [("500m", 0.5), ("2", 2.0), (0.25, 0.25), ("1500m", 1.5)])
def test_parse_cpu(text, expected):
    assert parse_cpu(text) == expected


def test_parse_quantity_keeps_precision():
    assert parse_quantity("100m") * 10 == 1


@pytest.mark.parametrize("text, expected", [
    ("90s", 90), ("5m", 300), ("1h30m", 5400), ("500ms", 0.5), ("1.5s", 1.5), ("30", 30), (45, 45), ("24h", 86400),
])
def test_parse_duration(text, expected):
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text, message", [
    ("abc", "not a duration"), ("0", "greater than zero"), ("-5s", "not a duration"), ("25h", "over the maximum"),
    ("5x", "not a duration"), ("1h 30m", "not a duration"),
])
def test_parse_duration_rejects(text, message):
    with pytest.raises(UnitError, match=message):
        parse_duration(text)


def test_parse_duration_minimum():
    with pytest.raises(UnitError, match="below the minimum"):
        parse_duration("50ms", minimum=0.1)


@pytest.mark.parametrize("seconds, text", [(90, "1m30s"), (5400, "1h30m"), (0, "0s"), (86400, "24h")])
def test_format_duration(seconds, text):
    assert format_duration(seconds) == text


@pytest.mark.parametrize("count, text", [(None, "unlimited"), (512, "512 B"), (200 * MI, "200.0 MiB")])
def test_format_bytes(count, text):
    assert format_bytes(count) == text
