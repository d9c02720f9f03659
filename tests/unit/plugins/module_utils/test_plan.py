"""_plan.py: make_plan's own input checks (issue 11): heartbeat minimum, node-wide caps."""
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


def fake_proc(tmp_path, available_kib):
    proc = tmp_path / "proc"
    proc.mkdir()
    (proc / "meminfo").write_text("MemTotal:       24000000 kB\nMemFree:         1000000 kB\n"
                                  "MemAvailable:   %8d kB\nBuffers:           1000 kB\n" % available_kib)
    return str(proc)


# (case, target limit, memory request, allow_oom, error or None)
CAPS = [
    ("unlimited: 1Pi is more than the node has", None, {"size": "1Pi"}, False, "more than the node has available"),
    ("unlimited: 2Gi of 1Gi available", None, {"size": "2Gi"}, False, "MemAvailable 1.0 GiB"),
    ("unlimited: target_usage above what is available", None, {"target_usage": "3Gi"}, False, "no memory limit"),
    ("unlimited: within MemAvailable", None, {"size": "512Mi"}, False, None),
    ("unlimited: allow_oom lifts the cap", None, {"size": "1Pi"}, True, None),
    ("limited: the limit applies, not MemAvailable", 4096 * MI, {"size": "2Gi"}, False, None),
]


@pytest.mark.parametrize("case, limit, memory, allow_oom, message", CAPS, ids=[c[0] for c in CAPS])
def test_unlimited_targets_are_capped_by_mem_available(tmp_path, case, limit, memory, allow_oom, message):
    args = params(memory=memory, allow_oom=allow_oom, proc_root=fake_proc(tmp_path, 1024 * 1024))
    if message is None:
        assert make_plan(args, usage(limit=limit), str(tmp_path))["memory"]["bytes"] > 0
    else:
        with pytest.raises(PlanError, match=message):
            make_plan(args, usage(limit=limit), str(tmp_path))


def test_unreadable_meminfo_refuses_an_unlimited_target(tmp_path):
    with pytest.raises(PlanError, match="MemAvailable cannot be read"):
        make_plan(params(proc_root=str(tmp_path / "nowhere")), usage(limit=None), str(tmp_path))


@pytest.mark.parametrize("io, message", [
    ({"size": "1Pi", "workers": 16}, "more than 90% of the"),
    ({"size": "1Ei", "workers": 1}, "free on io_dir"),
    ({"size": "1Mi", "workers": 1}, None),
])
def test_io_is_capped_by_the_free_disk(tmp_path, io, message):
    args = params(memory=None, io=io)
    io_dir = str(tmp_path / "not" / "yet" / "made")  # the nearest existing parent's filesystem counts
    if message is None:
        assert make_plan(args, usage(), io_dir)["io"]["bytes"] == 1024 * 1024
    else:
        with pytest.raises(PlanError, match=message):
            make_plan(args, usage(), io_dir)
