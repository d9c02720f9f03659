"""cgroup_sample on the lab: windows, several targets, recovery, read-back, bad input."""

import time

import pytest

from tests.integration.ansible_helpers import failed, ok, working_set
from tests.integration.lab_fixtures import lab_container

pytestmark = pytest.mark.lab
MI = 1024 * 1024


@pytest.mark.serial
def test_window_of_several_targets(lab):
    a, b = lab_container(lab, "hello"), lab_container(lab, "payments")
    result = ok("cgroup_sample", {"targets": [{"container_id": a["id"]}, {"pod_uid": lab["pods"][2]["uid"]}],
                                  "duration": "2s", "interval": "500ms"}, check_mode=True)
    assert result["changed"] is False
    assert [r["target"]["container_id"] for r in result["results"]] == [a["id"], b["id"]]
    for entry in result["results"]:
        samples = entry["samples"]
        assert 4 <= len(samples) <= 6
        gaps = [y["t"] - x["t"] for x, y in zip(samples, samples[1:])]
        assert all(0.3 <= g <= 0.9 for g in gaps)
        assert entry["summary"]["count"] == len(samples)
        assert entry["summary"]["working_set_bytes"]["min"] <= entry["summary"]["working_set_bytes"]["max"]
    # The window saw what the cgroup holds right now, to within the app's own noise.
    assert abs(result["results"][0]["summary"]["working_set_bytes"]["mean"] - working_set(a["cgroup_path"])) < 4 * MI


@pytest.mark.serial
def test_recovery_after_stop(lab, state_dir):
    container = lab_container(lab, "ledger")
    baseline = working_set(container["cgroup_path"])
    ok("stressor", dict(name="rec", container_id=container["id"], state_dir=state_dir, duration="60s",
                        memory={"size": "100Mi"}))
    time.sleep(3)
    ok("stressor", dict(name="rec", state="absent", state_dir=state_dir))
    result = ok("cgroup_sample", {"container_id": container["id"], "interval": "200ms",
                                  "recovery": {"baseline_working_set_bytes": baseline, "within_percent": 10,
                                               "timeout": "20s"}})
    recovery = result["results"][0]["recovery"]
    assert recovery["recovered"] is True
    assert 0 <= recovery["seconds"] < 20
    # Sampling stopped early, once the working set stayed inside the band.
    assert len(result["results"][0]["samples"]) < 50


@pytest.mark.serial
def test_read_back_of_an_experiment(lab, state_dir):
    container = lab_container(lab, "hello")
    ok("stressor", dict(name="rb", container_id=container["id"], state_dir=state_dir, duration="4s",
                        memory={"size": "60Mi"}, sample_interval="500ms"))
    time.sleep(6)
    result = ok("cgroup_sample", {"experiment": "rb", "state_dir": state_dir, "host_label": "node-a"})
    record = result["experiment_result"]
    assert record["format_version"] == 1 and record["host"] == "node-a"
    assert record["status"] == "finished" and record["reason"] == "deadline"
    assert record["target"]["container_id"] == container["id"]
    assert record["target"]["limit_bytes"] == container["memory_limit_bytes"]
    assert record["target"]["cpu_quota_cores"] == container["cpu_limit_cores"]
    assert record["request"]["memory_bytes"] == 60 * MI
    assert len(record["samples"]) >= 6
    assert abs(record["achieved"]["working_set_increase_bytes"] - 60 * MI) <= 0.03 * 60 * MI


@pytest.mark.parametrize("args, message", [
    ({"experiment": "nope"}, "no experiment nope"),
    ({"container_id": "HELLO", "duration": "5s", "interval": "50ms"}, "below the minimum"),
    ({"container_id": "HELLO", "duration": "25h"}, "over the maximum"),
    ({"container_id": "HELLO"}, "duration is required"),
    ({"container_id": "HELLO", "duration": "1s", "interval": "5s"}, "longer than the window"),
    ({"targets": [{"container": "x"}], "duration": "1s"}, "take only"),
])
def test_bad_input(lab, state_dir, args, message):
    args = dict(args, state_dir=state_dir)
    if args.get("container_id") == "HELLO":
        args["container_id"] = lab_container(lab, "hello")["id"]
    assert message in failed("cgroup_sample", args)
