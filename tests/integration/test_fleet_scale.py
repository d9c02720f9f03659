"""The full memory_stress run (64Mi, 30 s, the role's defaults) on a 30-node lab fleet finishes:
every node ends at its deadline, none by its dead-man. Timing targets are in
benchmarks/bench_fleet.py (`make bench`), not here."""

import pytest

from tests.integration.fleet_fixtures import down, fleet_unavailable, unique, up
from tests.integration.fleet_scale import full_run

pytestmark = [pytest.mark.lab, pytest.mark.slow]

NODES = 30


@pytest.fixture(scope="module")
def big_fleet():
    reason = fleet_unavailable()
    if reason:
        pytest.skip(reason)
    built = up(NODES)
    try:
        yield built
    finally:
        down(built)


def test_thirty_nodes_all_end_at_their_deadline(big_fleet, tmp_path):
    figures = full_run(big_fleet, unique("scale"), tmp_path)
    assert figures["rc"] == 0, figures["log_tail"]
    assert figures["endings"] == {"deadline": NODES}, figures
    # The dead-man never came close: the slowest heartbeat rounds leave most of its time.
    assert (figures["heartbeat_p95_seconds"] or 0) < figures["heartbeat_timeout_seconds"] / 2, figures
