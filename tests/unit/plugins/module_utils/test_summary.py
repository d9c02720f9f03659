"""_summary against values worked out by hand from the recorded fixtures.

The fixtures' series are written out in tests/unit/fixtures/samples/generate.py;
the arithmetic behind each expected value is in the comments here.
"""

import json
import os

import pytest

from ansible_collections.chaosfleet.stress.plugins.module_utils._summary import (
    achieved_increase, cpu_rates, percentile, recovery, summarize,
)

MI = 1024 * 1024
T0 = 1764316800.0
FIXTURES = os.path.join(os.path.dirname(__file__), "..", "..", "fixtures", "samples")


def load(name):
    with open(os.path.join(FIXTURES, name + ".json")) as handle:
        return json.load(handle)


def stats_mib(low, mean, p95, high):
    return {"min": low * MI, "mean": pytest.approx(mean * MI), "p95": pytest.approx(p95 * MI), "max": high * MI}


@pytest.mark.parametrize("values, p, expected", [
    ([1, 2, 3, 4], 50, 2.5),          # rank 1.5: 2 + 0.5 * (3 - 2)
    ([1, 2, 3, 4], 95, 3.85),         # rank 2.85: 3 + 0.85 * (4 - 3)
    ([1, 2, 3, 4], 0, 1),
    ([1, 2, 3, 4], 100, 4),
    ([3, 1, 2], 50, 2),               # sorted first
    ([5], 95, 5),
    ([10, None, 20], 25, 12.5),       # None ignored; rank 0.25
    ([], 50, None),
    ([None], 50, None),
])
def test_percentile_linear(values, p, expected):
    got = percentile(values, p)
    if expected is None:
        assert got is None
    else:
        assert got == pytest.approx(expected)


@pytest.mark.parametrize("p", [-1, 100.5])
def test_percentile_rejects_out_of_range(p):
    with pytest.raises(ValueError, match="between 0 and 100"):
        percentile([1, 2], p)


# node1: 60 samples 1 s apart, working set in MiB:
#   k0-4   120 (x5)                        sum   600
#   k5-23  140, 160, ..., 500 (19 values)  sum  6080 = 19 * (140 + 500) / 2
#   k24-29 140, 300, 460, 150, 131, 125    sum  1306
#   k30-59 121 (x30)                       sum  3630
# total 11616 / 60 = 193.6. Sorted, the top is 500, 480, 460, 460, 440: p95 rank 56.05 -> 460.
# CPU per second: 0.05 for 5 intervals, 1.05 for 22, 0.05 for 32 -> 24.95 s / 59 s.
# During the stress (k5-27, 23 samples): sum 6080 + 140 + 300 + 460 + 150 = 7130, mean 310;
# p95 rank 20.9 over ..., 460, 460, 480, 500 -> 460 + 0.9 * 20 = 478.
@pytest.mark.parametrize("fixture, window, expected", [
    ("node1_stressor_oom", None, {
        "count": 60, "window_seconds": 59.0,
        "working_set_bytes": stats_mib(120, 193.6, 460, 500),
        "rss_bytes": stats_mib(100, 173.6, 440, 480),
        "cache_bytes": stats_mib(20, 20, 20, 20),
        "cpu_cores": pytest.approx(24.95 / 59), "throttled_ratio": 0.0,
        "psi_memory_some_avg10": None, "oom_kill_count": 2,
    }),
    ("node1_stressor_oom", (T0 + 5, T0 + 27), {
        "count": 23, "window_seconds": 22.0,
        "working_set_bytes": stats_mib(140, 310, 478, 500),
        "rss_bytes": stats_mib(120, 290, 458, 480),
        "cache_bytes": stats_mib(20, 20, 20, 20),
        "cpu_cores": pytest.approx(1.05), "throttled_ratio": 0.0,
        "psi_memory_some_avg10": None, "oom_kill_count": 2,
    }),
    ("node1_stressor_oom", (None, T0 + 4), {
        "count": 5, "window_seconds": 4.0,
        "working_set_bytes": stats_mib(120, 120, 120, 120),
        "rss_bytes": stats_mib(100, 100, 100, 100),
        "cache_bytes": stats_mib(20, 20, 20, 20),
        "cpu_cores": pytest.approx(0.05), "throttled_ratio": 0.0,
        "psi_memory_some_avg10": None, "oom_kill_count": 0,
    }),
    # node2 k21-27 (t = T0 + 0.5 + k): working set 360, PSI 14.5 18.0 21.2 24.9 27.3 31.0 35.2 (sum 172.1).
    ("node2_app_oom", (T0 + 21.5, T0 + 27.5), {
        "count": 7, "window_seconds": 6.0,
        "working_set_bytes": stats_mib(360, 360, 360, 360),
        "rss_bytes": stats_mib(320, 320, 320, 320),
        "cache_bytes": stats_mib(40, 40, 40, 40),
        "cpu_cores": pytest.approx(0.9), "throttled_ratio": 0.0,
        "psi_memory_some_avg10": {"max": 35.2, "mean": pytest.approx(172.1 / 7)}, "oom_kill_count": 0,
    }),
    # node2 k27-29, across the app OOM kill: 360, 250, 290; p95 rank 1.9 -> 290 + 0.9 * 70 = 353.
    ("node2_app_oom", (T0 + 27.5, T0 + 29.5), {
        "count": 3, "window_seconds": 2.0,
        "working_set_bytes": stats_mib(250, 300, 353, 360),
        "rss_bytes": stats_mib(210, 260, 313, 320),
        "cache_bytes": stats_mib(40, 40, 40, 40),
        "cpu_cores": pytest.approx(0.9), "throttled_ratio": 0.0,
        "psi_memory_some_avg10": {"max": 35.2, "mean": pytest.approx((35.2 + 33.1 + 29.0) / 3)},
        "oom_kill_count": 1,
    }),
    # node4: 40 samples; busy intervals k6-35 add 0.5 s CPU, 10 periods, 8 throttled; the other 9 add
    # 0.02 s, 2 periods. Whole series: 240 / (300 + 18) throttled, (15 + 0.18) / 39 cores.
    ("node4_cpu_throttled", None, {
        "count": 40, "window_seconds": 39.0,
        "working_set_bytes": stats_mib(80, (80 * 9 + 83 * 31) / 40.0, 83, 83),
        "rss_bytes": stats_mib(70, (70 * 9 + 73 * 31) / 40.0, 73, 73),
        "cache_bytes": stats_mib(10, 10, 10, 10),
        "cpu_cores": pytest.approx(15.18 / 39), "throttled_ratio": pytest.approx(240 / 318.0),
        "psi_memory_some_avg10": None, "oom_kill_count": 0,
    }),
    ("node4_cpu_throttled", (T0 + 1005, T0 + 1035), {
        "count": 31, "window_seconds": 30.0,
        "working_set_bytes": stats_mib(83, 83, 83, 83),
        "rss_bytes": stats_mib(73, 73, 73, 73),
        "cache_bytes": stats_mib(10, 10, 10, 10),
        "cpu_cores": pytest.approx(0.5), "throttled_ratio": pytest.approx(0.8),
        "psi_memory_some_avg10": None, "oom_kill_count": 0,
    }),
])
def test_summarize_fixture(fixture, window, expected):
    assert summarize(load(fixture)["samples"], window=window) == expected


def s(t, **fields):
    return dict(t=t, **fields)


@pytest.mark.parametrize("samples, key, expected", [
    # A CPU counter reset (new cgroup) drops that interval: (1 + 1) / (1 + 1).
    ([s(0, cpu_usage_seconds=10), s(1, cpu_usage_seconds=11), s(2, cpu_usage_seconds=0.5),
      s(3, cpu_usage_seconds=1.5)], "cpu_cores", 1.0),
    # Missing values drop the intervals around them: only 0 -> 1 (2 s used in 1 s).
    ([s(0, cpu_usage_seconds=0), s(1, cpu_usage_seconds=2), s(2, cpu_usage_seconds=None),
      s(3, cpu_usage_seconds=9)], "cpu_cores", 2.0),
    ([s(0, cpu_usage_seconds=5)], "cpu_cores", None),
    # OOM counter 0, 2, 2, 1 (reset: 1 new kill), 3 -> 2 + 0 + 1 + 2.
    ([s(i, oom_kill_count=v) for i, v in enumerate([0, 2, 2, 1, 3])], "oom_kill_count", 5),
    ([s(0, oom_kill_count=None), s(1, oom_kill_count=None)], "oom_kill_count", 0),
    # No CFS period elapsed (no quota): no ratio rather than 0.
    ([s(0, nr_periods=0, nr_throttled=0), s(1, nr_periods=0, nr_throttled=0)], "throttled_ratio", None),
    ([s(0, nr_periods=100, nr_throttled=10), s(1, nr_periods=150, nr_throttled=30),
      s(2, nr_periods=5, nr_throttled=5), s(3, nr_periods=55, nr_throttled=5)], "throttled_ratio", 20 / 100.0),
    # Samples are ordered by t whatever order they come in.
    ([s(2, working_set_bytes=30), s(0, working_set_bytes=10), s(1, working_set_bytes=None)], "working_set_bytes",
     {"min": 10, "mean": 20.0, "p95": 29.0, "max": 30}),
    ([s(0, working_set_bytes=None)], "working_set_bytes", None),
    ([s(0), s(1)], "psi_memory_some_avg10", None),
])
def test_summarize_edge_cases(samples, key, expected):
    got = summarize(samples)[key]
    assert got == (pytest.approx(expected) if isinstance(expected, float) else expected)


def test_summarize_empty():
    assert summarize([]) == {
        "count": 0, "window_seconds": 0.0, "working_set_bytes": None, "rss_bytes": None,
        "cache_bytes": None, "cpu_cores": None, "throttled_ratio": None,
        "psi_memory_some_avg10": None, "oom_kill_count": 0,
    }


def test_cpu_rates_per_interval():
    samples = [s(0, cpu_usage_seconds=1.0), s(2, cpu_usage_seconds=2.0), s(3, cpu_usage_seconds=0.1),
               s(4, cpu_usage_seconds=0.4)]
    assert cpu_rates(samples) == [(2, pytest.approx(0.5)), (4, pytest.approx(0.3))]


NODE1_BASELINE = {"working_set_bytes": {"mean": 120 * MI}, "cpu_cores": 0.05}


def after_stop(fixture, stopped_at):
    return [x for x in load(fixture)["samples"] if x["t"] >= stopped_at]


# node1 after the stop at T0 + 27: 150, 131, 125, then 121 for the rest (MiB); baseline 120.
@pytest.mark.parametrize("within, timeout, recovered, seconds", [
    (5.0, 30.0, True, 2.0),      # band 114..126: first in at k29 (125) and stays
    (10.0, 30.0, True, 1.0),     # band 108..132: 131 at k28 already counts
    (30.0, 30.0, True, 0.0),     # band 84..156: the first sample after the stop
    (5.0, 1.5, False, None),     # only k27 and k28 are inside the timeout, both outside the band
    (0.5, 30.0, False, None),    # band 119.4..120.6: 121 never gets there
])
def test_recovery_node1(within, timeout, recovered, seconds):
    got = recovery(after_stop("node1_stressor_oom", T0 + 27), NODE1_BASELINE, within, timeout, T0 + 27)
    want = {"recovered": recovered, "seconds": seconds, "within_percent": within, "timeout_seconds": timeout}
    if recovered is False:
        want.update(below_baseline=False, anon_back=None, stress_released=False)  # 121 stays above the band
    assert got == want


@pytest.mark.parametrize("series, baseline_rss, below, anon_back, released", [
    # The app's cache shrank: the stress's memory is gone.
    ([(101, 150, 60), (102, 80, 20), (103, 79, 20)], 20.0, True, True, True),
    # Still above, and so is the anonymous memory: not released.
    ([(101, 150, 60), (102, 140, 50), (103, 130, 40)], 20.0, False, False, False),
    # Above, but the anonymous memory is back within the band's width (5 of 100): the page cache came back
    # larger than a baseline taken while part of it was inactive.
    ([(101, 150, 60), (102, 130, 24), (103, 130, 25)], 20.0, False, True, True),
    ([(101, 150, 60), (102, 130, 24), (103, 130, 25.5)], 20.0, False, False, False),  # just past the width
    # No anonymous baseline: only the side of the band tells.
    ([(101, 150, 60), (102, 130, 20)], None, False, None, False),
    ([(101, 150, 60), (102, 80, 20)], None, True, None, True),
])
def test_recovery_says_whether_the_stress_memory_is_gone(series, baseline_rss, below, anon_back, released):
    samples = [{"t": float(t), "working_set_bytes": float(ws), "rss_bytes": float(rss)} for t, ws, rss in series]
    baseline = {"working_set_bytes": {"mean": 100.0}, "rss_bytes": {"mean": baseline_rss}}
    got = recovery(samples, baseline, 5.0, 60.0, 100.0)
    assert got["recovered"] is False
    assert (got["below_baseline"], got["anon_back"], got["stress_released"]) == (below, anon_back, released)


@pytest.mark.parametrize("series, recovered, seconds", [
    # A dip into the band on the way down (104) is followed by 112, outside 5%: recovery is at 103.
    ([130, 104, 112, 103, 101], True, 3.0),
    ([104, 101, 99], True, 0.0),
    ([101, 99, 120], False, None),   # left the band again at the end
    ([90, 80], False, None),          # below the band counts as outside too
])
def test_recovery_must_stay_in_band(series, recovered, seconds):
    samples = [s(100 + i, working_set_bytes=v) for i, v in enumerate(series)]
    got = recovery(samples, {"working_set_bytes": {"mean": 100.0}}, 5.0, 60.0, 100.0)
    assert (got["recovered"], got["seconds"]) == (recovered, seconds)


@pytest.mark.parametrize("samples, baseline", [
    ([], NODE1_BASELINE),                                            # nothing sampled after the stop
    ([s(200, working_set_bytes=None)], NODE1_BASELINE),
    ([s(100, working_set_bytes=100)], None),                         # no baseline to compare with
    ([s(100, working_set_bytes=100)], {"working_set_bytes": None}),
    ([s(50, working_set_bytes=100)], NODE1_BASELINE),                # before the stop: not counted
])
def test_recovery_unknown(samples, baseline):
    got = recovery(samples, baseline, 5.0, 60.0, 100.0)
    assert (got["recovered"], got["seconds"]) == (None, None)


def test_achieved_increase_node1():
    # During k5-27 the working-set p95 is 478 MiB (see above): 478 - 120 = 358 MiB over the baseline.
    # CPU 1.05 cores during minus 0.05 baseline.
    during = [x for x in load("node1_stressor_oom")["samples"] if T0 + 5 <= x["t"] <= T0 + 27]
    got = achieved_increase(NODE1_BASELINE, during)
    assert got == {"working_set_increase_bytes": 358 * MI, "cpu_cores": pytest.approx(1.0)}


@pytest.mark.parametrize("baseline, samples, expected", [
    (None, [s(0, working_set_bytes=5, cpu_usage_seconds=0), s(2, working_set_bytes=7, cpu_usage_seconds=1)],
     {"working_set_increase_bytes": None, "cpu_cores": 0.5}),
    ({"working_set_bytes": {"mean": 4.0}, "cpu_cores": None},
     [s(0, working_set_bytes=5, cpu_usage_seconds=0), s(2, working_set_bytes=7, cpu_usage_seconds=1)],
     {"working_set_increase_bytes": 3, "cpu_cores": 0.5}),   # p95 of 5, 7 is 6.9 -> 2.9 rounds to 3
    (NODE1_BASELINE, [], {"working_set_increase_bytes": None, "cpu_cores": None}),
])
def test_achieved_increase_partial(baseline, samples, expected):
    got = achieved_increase(baseline, samples)
    assert got == {k: (pytest.approx(v) if isinstance(v, float) else v) for k, v in expected.items()}
