"""How the report writes times, sizes, shares and stress levels."""

import pytest

from ansible_collections.chaosfleet.stress.plugins.plugin_utils._report_text import (
    bytes_text, level_label, recovery_terms, round_bytes, share_text, time_label, utc_text,
)

MI = 1024 * 1024


@pytest.mark.parametrize("seconds, expected", [
    (0, "0 s"), (12.5, "12.5 s"), (-3, "-3 s"), (179, "179 s"), (180, "3m"), (270, "4m30s"), (3700, "1h1m40s"),
    (-600, "-10m"),
])
def test_time_label(seconds, expected):
    assert time_label(seconds) == expected


@pytest.mark.parametrize("epoch, expected", [
    (None, "n/a"), (1764316800.0, "2025-11-28 08:00:00 UTC"), (0, "1970-01-01 00:00:00 UTC"),
])
def test_utc_text(epoch, expected):
    assert utc_text(epoch) == expected


@pytest.mark.parametrize("count, expected", [
    (None, "n/a"), (512, "512 B"), (120 * MI, "120.0 MiB"),
])
def test_bytes_text(count, expected):
    assert bytes_text(count) == expected


@pytest.mark.parametrize("count, expected", [
    (None, "n/a"), (0, "0 B"), (1000, "1000 B"), (int(0.6 * 512 * MI), "307 MiB"), (int(51.2 * MI), "51.2 MiB"),
    (1536 * MI, "1.5 GiB"), (100 * MI, "100 MiB"), (int(99.96 * MI), "100 MiB"),
])
def test_round_bytes(count, expected):
    assert round_bytes(count) == expected


@pytest.mark.parametrize("part, whole, expected", [
    (500 * MI, 512 * MI, "98%"), (None, 512, ""), (1, 0, ""), (1, None, ""),
])
def test_share_text(part, whole, expected):
    assert share_text(part, whole) == expected


@pytest.mark.parametrize("recovery, expected", [
    ({"within_percent": 5.0, "timeout_seconds": 30}, "within 5% of baseline after 30s"),
    ({"within_percent": 10, "timeout_seconds": None}, "within 10% of baseline"),
    ({"timeout_seconds": 90}, "after 1m30s"),
    ({}, "to baseline"),
])
def test_recovery_terms(recovery, expected):
    assert recovery_terms(recovery) == expected


@pytest.mark.parametrize("value, unit, expected", [
    (35, "percent", "35%"), (62.5, "percent", "62.5%"), (40, "load", "load 40%"), (120 * MI, "bytes", "120.0 MiB"),
    (None, "percent", "none"),
])
def test_level_label(value, unit, expected):
    assert level_label(value, unit) == expected
