"""Fidelity: a memory experiment adds the memory asked for and nothing else; a CPU experiment burns its share.

Read from the target's cgroup every 100 ms (tests/integration/fidelity.py). Memory figures do not depend
on how loaded the machine is, so they are checked with the issue's own tolerances: no sample above the
request plus the larger of 1 % and 2 MiB, a steady value within 1 % (at least half a MiB), no OOM kill nobody asked for, and
at most 0.02 cores of side CPU. Timing-bound figures (the ramp's line, the CPU share) get wider
tolerances here because other work shares this 2-core machine; `make bench` reports the exact ones.
"""

import json
import os
import threading
import time

import pytest

from ansible_collections.chaosfleet.stress.plugins.module_utils._prefetch import program_files
from tests.integration.fidelity import MI, cpu_case, file_cache, memory_case, overshoot_allowed, ramp_deviation
from tests.integration.fidelity import steady_allowed
from tests.lab.peer_stress import working_set
from tests.lab.page_cache import evict_page_cache, resident_share
from tests.integration.lab_fixtures import lab_container
from tests.integration.vm_fixtures import run_ansible_module, vm_lab_container, vm_lab_hostvars, vm_ssh, write_inventory
from tests.integration.vm_fixtures import vm_node  # noqa: F401  pylint: disable=unused-import

pytestmark = [pytest.mark.lab, pytest.mark.slow, pytest.mark.serial]
SIDE_CPU_CORES = 0.02


def describe(case):
    return "request %.1f MiB: peak %+.1f, steady %+.1f MiB, side CPU %.3f cores, %d OOM kills (load %s)" % (
        case["request_bytes"] / MI, (case["peak_bytes"] - case["request_bytes"]) / MI,
        (case["steady_bytes"] - case["request_bytes"]) / MI, case["side_cpu_cores"], case["oom_kills"],
        open("/proc/loadavg").read().split()[0])


# (case, pod, memory): the pods are 500Mi/0.5 core (hello), 256Mi/1 core (checkout), no limits at all (batch).
HOLDS = [
    ("200Mi, 1 worker, 0.5-core quota", "hello", {"size": "200Mi"}),
    ("limit - 32Mi, 4 workers, no OOM kill", "hello", {"size": "468Mi", "workers": 4}),
    ("32Mi, 16 workers, no quota", "batch", {"size": "32Mi", "workers": 16}),
]


@pytest.mark.parametrize("case, pod, memory", HOLDS, ids=[row[0] for row in HOLDS])
def test_memory_holds_exactly_the_request_without_cpu(lab, state_dir, case, pod, memory):
    result = memory_case(state_dir, lab_container(lab, pod), memory)
    print(describe(result))
    request = result["request_bytes"]
    assert result["held"], describe(result)
    assert result["peak_bytes"] <= request + overshoot_allowed(request), describe(result)
    assert abs(result["steady_bytes"] - request) <= steady_allowed(request), describe(result)
    assert result["oom_kills"] == 0, describe(result)
    assert result["side_cpu_cores"] <= SIDE_CPU_CORES, describe(result)


def test_a_cold_page_cache_leaves_the_stress_programs_out_of_the_target(lab, state_dir):
    """stress-ng and its libraries (about 30 MiB) read from disk inside the target would be charged to it.

    That charge made the working set miss the request and stay above the baseline after the stop (CI: a
    fleet node held 28.0 of 32 MiB and never recovered; a Docker container held 261.7 of 268 MiB).
    """
    container = lab_container(lab, "ledger")
    path = container["cgroup_path"]
    files = program_files(["/usr/bin/stress-ng", "/usr/bin/nsenter", "/usr/bin/setpriv"])
    evict_page_cache(files)
    cold = resident_share(files)
    assert cold < 0.5, "the eviction left %.0f %% of the stress programs cached" % (cold * 100)
    cache_before, ws_before = file_cache(path), working_set(path)
    result = memory_case(state_dir, container, {"size": "32Mi"})
    time.sleep(1)
    cache_added, ws_left = file_cache(path) - cache_before, working_set(path) - ws_before
    why = "page cache %+.1f MiB in the target, working set %+.1f MiB after the stop; %s" % (
        cache_added / MI, ws_left / MI, describe(result))
    print(why)
    assert cache_added <= MI, why
    assert abs(ws_left) <= MI, why
    # The charge showed as a hold a few MiB short (4 MiB in CI); the 1 % figure is the holds' test above.
    assert abs(result["steady_bytes"] - result["request_bytes"]) <= 2 * MI, why


def test_ramp_follows_its_line_and_never_overshoots(lab, state_dir):
    result = memory_case(state_dir, lab_container(lab, "payments"), {"size": "200Mi", "ramp": "10s"}, timeout=40)
    print(describe(result), "ramp: worst %.1f %% off the line" % (ramp_deviation(result) * 100))
    request = result["request_bytes"]
    assert result["peak_bytes"] <= request + overshoot_allowed(request), describe(result)
    # The issue asks for 3 % at every sample (half a step is 2.5 %; steps launch early by the time they take to
    # show, and the last one goes out even when the top-up reserve leaves it small). 2.6 to 2.9 % measured on a
    # quiet machine, 4.0 to 5.3 % before those two fixes; the test leaves one point for a loaded CI machine.
    assert ramp_deviation(result) <= 0.04, "worst %.1f %% off the line; %s" % (
        ramp_deviation(result) * 100, describe(result))
    assert abs(result["steady_bytes"] - request) <= steady_allowed(request), describe(result)


def test_churn_is_the_explicit_way_to_rewrite_pages(lab, state_dir):
    """Churn keeps the old behaviour on request: the workers rewrite their pages and burn CPU."""
    result = memory_case(state_dir, lab_container(lab, "ledger"), {"size": "64Mi", "churn": True})
    print(describe(result))
    assert result["side_cpu_cores"] > SIDE_CPU_CORES, describe(result)  # whatever share a loaded machine leaves it
    assert result["oom_kills"] == 0, describe(result)


def test_cpu_share_of_the_quota(lab, state_dir):
    load = 25
    result = cpu_case(state_dir, lab_container(lab, "checkout"), load)  # 1-core quota
    loadavg = float(open("/proc/loadavg").read().split()[0])
    why = "%.1f %% of the quota for %d %% asked (load average %.1f)" % (result["percent_of_quota"], load, loadavg)
    print(why)
    # The issue asks for 2 points over 10 s; five cover the other work on this 2-core machine.
    if abs(result["percent_of_quota"] - load) > 5 and loadavg > 3 * os.cpu_count():
        # More than three runnable tasks per CPU: the worker's fair share is below what it asks, and no
        # correction can buy it back. The bench (run alone) holds the exact figure.
        pytest.skip("machine saturated: " + why)
    assert abs(result["percent_of_quota"] - load) <= 5, why


GUEST_SAMPLER = r"""
import json, sys, time
path, seconds = sys.argv[1], float(sys.argv[2])
def ws():
    usage = int(open(path + "/memory.current").read())
    stat = dict(line.split() for line in open(path + "/memory.stat"))
    return usage - int(stat["inactive_file"])
def cpu():
    return int(dict(line.split() for line in open(path + "/cpu.stat"))["usage_usec"]) / 1e6
out, end = [], time.time() + seconds
while time.time() < end:
    out.append((time.time(), ws(), cpu()))
    time.sleep(0.1)
print(json.dumps(out))
"""


def guest_file_cache(vm, path):
    """The page cache charged to a guest cgroup (v2 ``file``)."""
    stat = dict(line.split() for line in vm_ssh(vm, "cat", path + "/memory.stat").stdout.splitlines())
    return int(stat["file"])


def test_memory_holds_exactly_the_request_on_cgroup_v2(vm_node, tmp_path):  # noqa: F811
    """The same promises on the cgroup v2 VM, read by a sampler inside the guest every 100 ms."""
    host = "cfvm_node"
    inventory = write_inventory(tmp_path / "inventory.json",
                                {host: dict(vm_node["hostvars"], **vm_lab_hostvars(vm_node))})
    app = vm_lab_container(vm_node, "hello")
    path = "/sys/fs/cgroup" + app["cgroup_path"]
    baseline = min(ws for _t, ws, _cpu in json.loads(vm_ssh(vm_node, "python3", "-c", GUEST_SAMPLER, path, "0.5").stdout))
    cache_before = guest_file_cache(vm_node, path)
    name = "cfvm-fid-" + vm_node["name"][5:]
    params = {"name": name, "container_id": app["id"], "memory": {"size": "100Mi"}, "duration": "3m"}
    seen = {}

    def sample():
        """Every sample from the start through ramp, settle and the first seconds of the hold: the peak."""
        seen["all"] = json.loads(vm_ssh(vm_node, "python3", "-c", GUEST_SAMPLER, path, "50", timeout=120).stdout)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        rc, hosts, raw = run_ansible_module(inventory, host, "chaosfleet.stress.stressor", params)
        assert rc == 0, raw
        deadline = time.time() + 45
        while hosts[host].get("phase") != "holding" and time.time() < deadline:
            time.sleep(2)
            rc, hosts, raw = run_ansible_module(inventory, host, "chaosfleet.stress.stressor", params)
        assert hosts[host].get("phase") == "holding", hosts[host]
        hold = json.loads(vm_ssh(vm_node, "python3", "-c", GUEST_SAMPLER, path, "5").stdout)
        latest = hosts[host]["latest_sample"]
        print(vm_ssh(vm_node, "cat", "/run/chaosfleet/experiments/%s/events.jsonl" % name, check=False).stdout)
    finally:
        run_ansible_module(inventory, host, "chaosfleet.stress.stressor", {"name": name, "state": "absent"})
        sampler.join()
    cache_added = guest_file_cache(vm_node, path) - cache_before
    request = 100 * MI
    peak = max(ws for _t, ws, _cpu in seen["all"] + hold) - baseline
    steady = sorted(ws for _t, ws, _cpu in hold)[len(hold) // 2] - baseline
    (t0, _ws, cpu0), (t1, _ws, cpu1) = hold[0], hold[-1]
    side_cpu = (cpu1 - cpu0) / (t1 - t0)
    why = "peak %+.1f MiB, steady %+.1f MiB over %.0f MiB, side CPU %.3f cores, page cache left %+.1f MiB" % (
        (peak - request) / MI, (steady - request) / MI, request / MI, side_cpu, cache_added / MI)
    print(why)
    # This is the first stress after the VM boots: every page cache is cold, and the guest's root is 9p,
    # whose read-ahead stops under 0.5 MiB a request. Read-ahead hints alone left 4.5 MiB of stress-ng's
    # files charged here after the stop, part of it active while the hold was sized. The guest's kernel runs THP
    # "always": before the stressor opted out, a huge page once cost the first instance 2 MiB more (-5.8 MiB held).
    assert cache_added <= MI, why
    assert peak <= request + overshoot_allowed(request), why
    assert abs(steady - request) <= steady_allowed(request), why
    assert side_cpu <= SIDE_CPU_CORES, why
    assert latest["oom_kill_count"] == 0, latest
