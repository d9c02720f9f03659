"""Search mode (issue 24, "find the breaking point") on real pods: the cache app (tests/lab/cache_app.py), whose
latency rises when a stress in its pod makes the kernel evict its page cache, so the edge is where the kernel
puts it: a stress of about limit - (the app's memory) (headroom_fixtures.py).

Effects are read where they happen: the pod's cgroup (memory.stat, memory.oom_control), the kernel log, the app's
own histogram and the lab's real Prometheus.
"""

import json
import secrets
import shutil
import time

import pytest

from tests.integration.ansible_helpers import ok, stress_pids, wait_for
from tests.integration.headroom_fixtures import (  # noqa: F401  (fixtures)
    MI, cache_pod, cache_pod_factory, fleet_cache_pods, headroom_prometheus, p95_query,
)

pytestmark = [pytest.mark.lab, pytest.mark.slow]


@pytest.fixture
def stress_state_dir():
    """A private stressor state dir; every experiment in it is stopped and the dir removed, pass or fail."""
    path = "/run/cflab-state-" + secrets.token_hex(3)
    yield path
    from ansible_collections.chaosfleet.stress.plugins.module_utils._experiment import Experiment
    from ansible_collections.chaosfleet.stress.plugins.module_utils._state import list_experiments

    for name in list_experiments(path):
        Experiment(path, name).stop()
    shutil.rmtree(path, ignore_errors=True)


def hold_stress(state_dir, pod, name, size_bytes, seconds=8):
    """Hold size_bytes of stress in the pod (the collection's stressor); return its p50/p95 meanwhile and after."""
    ok("stressor", dict(name=name, container_id=pod.container["id"], state_dir=state_dir, duration="%ds" % (seconds + 25),
                        memory={"size": "%dMi" % (size_bytes // MI)}, allow_oom=True))
    try:
        time.sleep(2.5)  # the stress is in place, the reclaim settled
        return pod.latency(seconds)
    finally:
        ok("stressor", {"name": name, "state": "absent", "state_dir": state_dir})
        assert wait_for(lambda: not stress_pids(pod.cgroup), 15)


@pytest.mark.serial
def test_the_app_is_fast_until_the_stress_evicts_its_page_cache(cache_pod, stress_state_dir):
    """The lab's premise: the knee sits where stress + the app's memory reaches the limit, and it is sharp."""
    app = cache_pod.app_memory()
    stat = cache_pod.stat()
    assert stat["total_cache"] >= 128 * MI * 0.95, "the app's file is not charged to its pod: %r" % stat
    assert stat["total_active_file"] >= 128 * MI * 0.9, "the file is not on the active list: %r" % stat
    knee = cache_pod.limit - app
    below = hold_stress(stress_state_dir, cache_pod, "below", knee - 32 * MI)
    above = hold_stress(stress_state_dir, cache_pod, "above", knee + 32 * MI)
    after = cache_pod.latency(6)
    assert cache_pod.oom_kills() == 0
    assert below[1] < 0.030, "p95 %.1f ms with %d MiB below the knee" % (below[1] * 1e3, 32)
    assert above[1] > 0.100, "p95 %.1f ms with %d MiB above the knee" % (above[1] * 1e3, 32)
    assert after[1] < 0.030, "p95 %.1f ms after the stress" % (after[1] * 1e3)


def test_each_node_app_is_scraped_by_prometheus(fleet, fleet_cache_pods, headroom_prometheus):
    """The fleet's cache apps: reachable from the controller over the nodes' veths, scraped by the lab's
    Prometheus, fast at rest, and each knee where its node's limit puts it."""
    knees = {}
    for node, pod in fleet_cache_pods.items():
        assert pod.get("/")[0] == 200
        assert fleet.inventory and json.loads(open(fleet.inventory).read())["all"]["children"]["fleet"]["hosts"][node][
            "fleet_pods"]["cache"]["container_id"] == pod.container["id"]
        result = headroom_prometheus.wait_for(p95_query(node), lambda r: len(r) == 1, timeout=30)
        assert float(result[0]["value"][1]) < 0.05, (node, result)
        knees[node] = pod.knee_percent()
    assert len(set(round(k) for k in knees.values())) == len(knees), knees


# ------------------------------------------------------------------ searches through ansible-playbook
from types import SimpleNamespace  # noqa: E402

from tests.integration.fleet_fixtures import run_playbook  # noqa: E402


def host_inventory(tmp_path):
    """This host as the play's one node (the lab pods run here), reached with the local connection."""
    path = tmp_path / "inventory.json"
    path.write_text(json.dumps({"all": {"hosts": {"labhost": {
        "ansible_connection": "local", "ansible_python_interpreter": "/usr/bin/python3"}}}}))
    return SimpleNamespace(inventory=str(path))


def search_vars(pod, tmp_path, state_dir, name, **overrides):
    values = {
        "experiment_name": name,
        "experiment_container_id": pod.container["id"],
        "experiment_search": "step",
        "experiment_search_from": "10%", "experiment_search_to": "90%", "experiment_search_step": "10%",
        "experiment_search_hold": "8s",
        "experiment_search_recovery_timeout": "30s",
        "experiment_heartbeat_interval": 2,
        "experiment_heartbeat_timeout": "20s",
        "experiment_baseline_duration": "2s",
        "experiment_state_dir": state_dir,
        "experiment_report_dest": str(tmp_path / "reports"),
        "experiment_stop_guard_dir": str(tmp_path),
    }
    values.update(overrides)
    return values


def p95_probe(prometheus, node, threshold=0.05, window="6s"):
    return {"name": "p95", "type": "prometheus", "url": prometheus.url, "query": p95_query(node, window),
            "comparator": "<", "threshold": threshold}


def report_json(tmp_path):
    found = sorted((tmp_path / "reports").rglob("*.json"))
    assert found, "no JSON report under %s" % (tmp_path / "reports")
    return json.loads(found[-1].read_text())


def test_explore(cache_pod, headroom_prometheus, stress_state_dir, tmp_path):
    extra = search_vars(cache_pod, tmp_path, stress_state_dir, "hr-explore",
                        experiment_probes=[p95_probe(headroom_prometheus, "host")])
    run = run_playbook(host_inventory(tmp_path), "playbooks/memory_stress.yml", extra)
    print(run)
    import shutil as sh
    sh.copytree(str(tmp_path / "reports"), "/tmp/cfhead-reports-%d" % int(time.time()))
    assert 0
