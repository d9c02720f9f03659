import pytest

from ansible_collections.chaosfleet.stress.plugins.module_utils._units import (
    UnitError, format_bytes, format_duration, parse_bool, parse_cpu, parse_names, parse_duration, parse_quantity, parse_size,
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
    (" 12Mi ", None, 12 * MI),
    ("0.5Ki", None, 512),
    ("1e2Ki", None, 100 * 1024),
    ("33%", 100, 33),
    ("33.3%", 10, 3),  # a percentage of a limit is rounded down to whole bytes
    ("7Ei", None, 7 * 2 ** 60),
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
    # issue 11, point 9: ASCII digits only, one whitespace rule, bounded exponents, whole bytes
    ("\uff11\uff10\uff10Mi", None, "is not a quantity"),   # fullwidth 100
    ("\u0663Mi", None, "is not a quantity"),                 # Arabic-Indic 3
    ("\u0663", None, "is not a quantity"),
    ("10 Mi", None, "no space before the unit"),
    ("50 %", 100, "is not a quantity"),
    ("1e400", None, "out of range"),
    ("1e999999", None, "out of range"),
    ("1e30", None, "too large"),
    ("9Ei", None, "too large"),
    ("1" * 65, None, "at most 64"),
    ("1.9", None, "not a whole number of bytes"),
    (1.9, None, "not a whole number of bytes"),
    ("1.0000001Ki", None, "not a whole number of bytes"),
    ("1e-3", None, "not a whole number of bytes"),
    ("nan", None, "is not a quantity"),
    ("inf", None, "is not a quantity"),
    (float("nan"), None, "not a finite number"),
    ("Mi", None, "is not a quantity"),
    ("", None, "is not a quantity"),
    ("1.2.3Mi", None, "is not a quantity"),
    ("10Mi\n", None, None),
])
def test_parse_size_rejects(text, of_bytes, message):
    if message is None:  # surrounding whitespace, a trailing newline included, is stripped
        assert parse_size(text, of_bytes) == 10 * MI
        return
    with pytest.raises(UnitError, match=message):
        parse_size(text, of_bytes)


def test_a_huge_exponent_fails_fast():
    import time
    started = time.process_time()
    for text in ("1e999999", "1e" + "9" * 50, "9" * 64):
        with pytest.raises(UnitError):
            parse_size(text)
    assert time.process_time() - started < 0.1


@pytest.mark.parametrize("text, message", [("1e400", "out of range"), ("\u0663", "is not a quantity"),
                                           ("1e20", "too large")])
def test_parse_cpu_rejects(text, message):
    with pytest.raises(UnitError, match=message):
        parse_cpu(text)


@pytest.mark.parametrize("text, expected", [("500m", 0.5), ("2", 2.0), (0.25, 0.25), ("1500m", 1.5)])
def test_parse_cpu(text, expected):
    assert parse_cpu(text) == expected


def test_parse_quantity_keeps_precision():
    assert parse_quantity("100m") * 10 == 1


@pytest.mark.parametrize("text, expected", [
    ("90s", 90), ("5m", 300), ("1h30m", 5400), ("500ms", 0.5), ("1.5s", 1.5), ("30", 30), (45, 45), ("24h", 86400),
    ("1h2m3s", 3723), ("1s500ms", 1.5), ("2m30s", 150), (" 5m ", 300), ("1m500ms", 60.5),
])
def test_parse_duration(text, expected):
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text, message", [
    ("abc", "not a duration"), ("0", "greater than zero"), ("-5s", "not a duration"), ("25h", "over the maximum"),
    ("5x", "not a duration"), ("1h 30m", "not a duration"),
    # issue 11, point 9
    ("10 s", "no spaces"), ("\u0663s", "not a duration"), ("\u0663", "not a duration"),
    ("\uff15s", "not a duration"), ("1h1h", "each unit once"), ("1m1h", "largest first"),
    ("1s1s", "not a duration"), ("5ms5ms", "not a duration"), ("", "not a duration"), ("s", "not a duration"),
    ("1e3s", "not a duration"), ("1" * 65 + "s", "at most 64"), (float("nan"), "not a duration"),
    ("1.s", "not a duration"), ("h", "not a duration"),
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


@pytest.mark.parametrize("value, default, expected", [
    (True, False, True),
    (False, True, False),
    (1, False, True),
    (0, True, False),
    ("yes", False, True),
    (" On ", False, True),
    ("TRUE", False, True),
    ("y", False, True),
    ("t", False, True),
    ("1", False, True),
    ("no", True, False),
    ("off", True, False),
    ("False", True, False),
    ("n", True, False),
    ("f", True, False),
    ("0", True, False),
    (None, True, True),      # unset: the default
    ("", True, True),        # an empty survey answer: the default
    ("  ", False, False),
    (None, None, None),      # no default: the caller tells unset from false
], ids=repr)
def test_parse_bool(value, default, expected):
    assert parse_bool(value, "x", default=default) is expected


@pytest.mark.parametrize("value", ["maybe", "ja", "2", 2, 0.5, "truthy", [True]])
def test_parse_bool_rejects_unknown_words(value):
    with pytest.raises(UnitError, match="experiment_replace must be true or false"):
        parse_bool(value, "experiment_replace")


@pytest.mark.parametrize("value, expected", [
    (None, []), ("", []), ([], []),
    ("a", ["a"]), ("node1, node2,node3", ["node1", "node2", "node3"]), (" a,,b , a", ["a", "b"]),
    (["b", " a ", "", "b"], ["b", "a"]), (("x", 1), ["x", "1"]),
])
def test_parse_names(value, expected):
    assert parse_names(value) == expected
