"""make_plan's own input checks (issue 11): heartbeat minimum, node-wide caps."""
import pytest

from ansible_collections.chaosfleet.stress.plugins.module_utils._plan import PlanError, make_plan

MI = 1024 * 1024


def usage(limit=500 * MI, working_set=50 * MI, quota=1.0):
    return {"memory": {"limit_bytes": limit, "working_set_bytes": working_set},
            "cpu": {"quota_cores": quota}}


def params(**extra):
    out = {"name": "t", "duration": "60s", "memory": {"size": "10Mi"}, "oom_score_adj": 1000}
    out.update(extra)
    return out


@pytest.mark.parametrize("value, message", [
    ("1ms", "below the minimum of 3s"), ("2s", "below the minimum of 3s"), ("2999ms", "below the minimum of 3s"),
    ("1h1h", "each unit once"),
])
def test_heartbeat_timeout_is_refused(value, message):
    with pytest.raises(PlanError, match=message):
        make_plan(params(heartbeat_timeout=value), usage(), "/var/tmp/x")


def test_heartbeat_timeout_at_the_minimum_is_fine():
    assert make_plan(params(heartbeat_timeout="3s"), usage(), "/var/tmp/x")["heartbeat_timeout_seconds"] == 3
