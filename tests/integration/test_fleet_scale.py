"""The issue's full memory_stress run (64Mi, 30 s, the role's defaults) on the session's fleet finishes: every
node ends at its deadline, none by its dead-man, and the heartbeat rounds stay well inside the dead-man.

This is the behaviour. The figures (wall time, overhead, controller CPU, heartbeat p50/p95) on 1 to 50 nodes,
and their targets, are benchmarks/bench_fleet.py (`make bench`), which builds fleets of those sizes."""

import pytest

from tests.integration.fleet_fixtures import fleet  # noqa: F401  pylint: disable=unused-import
from tests.integration.fleet_fixtures import unique
from tests.integration.fleet_scale import full_run

pytestmark = [pytest.mark.lab, pytest.mark.slow]


def test_every_node_ends_the_full_run_at_its_deadline(fleet, tmp_path):  # noqa: F811
    figures = full_run(fleet, unique("scale"), tmp_path)
    nodes = len(fleet.nodes)
    assert figures["rc"] == 0, figures["log_tail"]
    assert figures["endings"] == {"deadline": nodes}, figures
    # The dead-man never came close: the slowest heartbeat rounds leave most of its time.
    assert (figures["heartbeat_p95_seconds"] or 0) < figures["heartbeat_timeout_seconds"] / 2, figures
