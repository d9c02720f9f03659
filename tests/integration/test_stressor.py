"""stressor on the lab's real containers: effects are read from the cgroup, not from stress-ng."""

import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request

import pytest

from tests.integration.ansible_helpers import (
    cgroup_pids, comm, failed, median, ok, read_int, stress_pids, thp_enabled, wait_for, working_set,
)
from tests.integration.lab_fixtures import lab_container

pytestmark = [pytest.mark.lab, pytest.mark.slow]
MI = 1024 * 1024


def start(state_dir, name, container, **params):
    args = dict(name=name, container_id=container["id"], state_dir=state_dir, duration="60s")
    args.update(params)
    return ok("stressor", args)


def status_phase(state_dir, name):
    from ansible_collections.chaosfleet.stress.plugins.module_utils._experiment import Experiment
    return Experiment(state_dir, name).status().get("phase")


def settled_working_set(container):
    """Median of five readings of the cgroup over two seconds."""
    readings = []
    for _ in range(5):
        readings.append(working_set(container["cgroup_path"]))
        time.sleep(0.4)
    return median(readings)


def wait_released(container, baseline, timeout=15):
    return wait_for(lambda: working_set(container["cgroup_path"]) < baseline + 8 * MI
                    and not stress_pids(container["cgroup_path"]), timeout)


def http_ok(container, timeout=3):
    with urllib.request.urlopen("http://127.0.0.1:%d/" % container["http_port"], timeout=timeout) as response:
        return response.status == 200


def http_latency(container, timeout):
    """Seconds the app took to answer 200, or None if it did not within timeout."""
    t0 = time.monotonic()
    try:
        return time.monotonic() - t0 if http_ok(container, timeout) else None
    except OSError:
        return None


# (case, pod, memory request, expected increase in bytes given the baseline working set and the limit)
SIZING = [
    ("4 workers share 200Mi", "hello", {"size": "200Mi", "workers": 4}, lambda base, limit: 200 * MI),
    ("50% of a 500Mi limit", "hello", {"size": "50%"}, lambda base, limit: limit // 2),
    ("target_usage 80% of the limit", "hello", {"target_usage": "80%"}, lambda base, limit: limit * 80 // 100 - base),
]


@pytest.mark.serial
@pytest.mark.parametrize("case, pod, memory, expected", SIZING, ids=[row[0] for row in SIZING])
def test_working_set_increase_matches_the_request(lab, state_dir, case, pod, memory, expected):
    container = lab_container(lab, pod)
    limit = read_int("memory", container["cgroup_path"], "memory.limit_in_bytes")
    baseline = settled_working_set(container)
    result = start(state_dir, "size", container, memory=memory)
    assert result["changed"] is True and result["status"] == "running"
    want = expected(baseline, limit)
    assert abs(result["requested"]["memory_bytes"] - want) <= MI
    assert wait_for(lambda: status_phase(state_dir, "size") == "holding", 20), "never reached its size"
    achieved = settled_working_set(container) - baseline
    assert abs(achieved - want) <= 0.03 * want, "achieved %.1f MiB for %.1f MiB" % (achieved / MI, want / MI)
    # Every stress process is inside the target cgroup, in its PID namespace (the container's ps sees them).
    stressors = stress_pids(container["cgroup_path"])
    assert stressors
    # Small pages only for the stressor (its footprint must not jump by a huge page); the app keeps its own.
    assert [pid for pid in stressors if thp_enabled(pid)] == []
    leaders = start(state_dir, "size", container, memory=memory)["pids"]  # a heartbeat: nsenter included
    app = [pid for pid in cgroup_pids(container["cgroup_path"]) if pid not in stressors + leaders]
    assert app and all(thp_enabled(pid) for pid in app)
    stopped = ok("stressor", {"name": "size", "state": "absent", "state_dir": state_dir})
    assert stopped["changed"] is True and stopped["status"] == "stopped"
    assert wait_released(container, baseline)


# alone, as the CPU-share test below: a ramp's line and a quota's share are the figures a neighbour at full
# priority would bend, and part 2c runs two tests at a time (TEST_SERIAL_WORKERS, scripts/test.sh).
@pytest.mark.serial
@pytest.mark.alone
def test_ramp_is_close_to_linear(lab, state_dir):
    container = lab_container(lab, "hello")
    baseline = settled_working_set(container)
    ramp, size = 10.0, 200 * MI
    # The line starts when the supervisor does, which on a loaded machine is seconds before the module returns.
    t0 = start(state_dir, "ramp", container, memory={"size": "200Mi", "ramp": "10s"})["started_at"]
    points = []
    while time.time() - t0 < ramp + 5:
        points.append((time.time() - t0, working_set(container["cgroup_path"]) - baseline))
        time.sleep(0.25)
    inside = [(t, v) for t, v in points if 1.0 <= t <= ramp - 1.0]
    # Within the ramp, the working set follows size*t/ramp (tests/integration/test_fidelity.py holds it closer).
    worst = max(abs(v - size * t / ramp) for t, v in inside)
    assert worst <= 0.15 * size, "worst deviation %.1f MiB from the line" % (worst / MI)
    assert points[-1][1] >= 0.95 * size
    t, first = points[0]
    assert first < size * t / ramp + 0.2 * size, "memory arrived all at once, not ramped"


def cpu_cores_used(container, seconds):
    path = container["cgroup_path"]
    before = read_int("cpuacct", path, "cpuacct.usage")
    time.sleep(seconds)
    return (read_int("cpuacct", path, "cpuacct.usage") - before) / 1e9 / seconds


@pytest.mark.serial
@pytest.mark.alone
@pytest.mark.parametrize("pod", ["hello", "checkout"])
def test_cpu_load_is_a_share_of_the_quota(lab, state_dir, pod):
    container = lab_container(lab, pod)
    quota = container["cpu_limit_cores"]
    result = start(state_dir, "cpu", container, cpu={"load": 50})
    assert result["requested"]["cpu_cores"] == pytest.approx(quota / 2)
    time.sleep(2)
    load = cpu_cores_used(container, 6) / quota * 100
    assert 45 <= load <= 55, "load %.1f%% of the quota for 50%% asked" % load


@pytest.mark.serial
def test_over_limit_oom_kills_the_stressor_and_the_app_keeps_serving(lab, state_dir):
    container = lab_container(lab, "hello")
    text = open("/sys/fs/cgroup/memory%s/memory.oom_control" % container["cgroup_path"]).read()
    oom_before = int(text.split("oom_kill ")[1].split()[0])
    start(state_dir, "seed-oom", container, memory={"size": "3000Mi"}, allow_oom=True, duration="8s")
    # The app shares the cgroup's memory and CPU quota with the stressor, so it answers slower while the kernel
    # reclaims and kills (up to 1 s here, over 3 s once in CI). The promise: it answers and is never killed.
    latencies = []
    t0 = time.time()
    while time.time() - t0 < 10:
        latencies.append(http_latency(container, 15))
        time.sleep(1)
    assert None not in latencies, "the app stopped answering during the OOM kills: %s" % latencies
    assert wait_for(lambda: ok("stressor", {"name": "seed-oom", "state_dir": state_dir, "container_id": container["id"],
                                            "memory": {"size": "3000Mi"}, "allow_oom": True,
                                            "duration": "8s"})["status"] == "finished", 10)
    text = open("/sys/fs/cgroup/memory%s/memory.oom_control" % container["cgroup_path"]).read()
    assert int(text.split("oom_kill ")[1].split()[0]) > oom_before
    outcome = ok("cgroup_sample", {"experiment": "seed-oom", "state_dir": state_dir})
    kills = outcome["oom_kills"]
    # A worker stress-ng respawns can be killed before any sample saw it: that victim is "unknown" (names
    # prove nothing). The app is never blamed, and at least one kill is proven to be the stressor's.
    assert kills and any(k["victim"] == "stressor" for k in kills), kills
    assert not [k for k in kills if k["victim"] == "app"], kills
    assert container["pid"] in cgroup_pids(container["cgroup_path"]) and comm(container["pid"]) == "httpd"
    assert http_ok(container)


@pytest.mark.serial
def test_dead_man_ends_the_stress_without_heartbeats(lab, state_dir):
    container = lab_container(lab, "ledger")
    start(state_dir, "deadman", container, memory={"size": "50Mi"}, heartbeat_timeout="5s", duration="2m")
    beat = os.stat(os.path.join(state_dir, "experiments", "deadman", "heartbeat")).st_mtime
    assert stress_pids(container["cgroup_path"])
    gone = wait_for(lambda: not stress_pids(container["cgroup_path"]) and time.time(), 15, interval=0.1)
    assert gone and gone - beat <= 7.0, "stress outlived the heartbeat by %.1fs" % (gone - beat)
    result = ok("stressor", {"name": "deadman", "state": "absent", "state_dir": state_dir})
    assert result["changed"] is False and result["reason"] == "heartbeat"


@pytest.mark.serial
def test_heartbeat_keeps_it_alive_and_present_twice_is_one_experiment(lab, state_dir):
    container = lab_container(lab, "ledger")
    # Each ansible run takes a few seconds itself (6-7 s at load 12): the timeout leaves room for that.
    args = dict(memory={"size": "20Mi"}, heartbeat_timeout="20s", duration="2m")
    first = start(state_dir, "beat", container, **args)
    for _ in range(3):
        time.sleep(4)
        again = start(state_dir, "beat", container, **args)
        assert again["changed"] is False and again["status"] == "running", (again.get("outcome") or {}).get("reason")
        # The same supervisor and instances (a top-up may have joined them).
        assert again["supervisor_pid"] == first["supervisor_pid"]
        assert again["pids"][:len(first["pids"])] == first["pids"]
    assert stress_pids(container["cgroup_path"])


@pytest.mark.serial
def test_absent_from_a_fresh_process_stops_everything_even_without_the_supervisor(lab, state_dir):
    container = lab_container(lab, "checkout")
    started = start(state_dir, "orphaned", container, memory={"size": "30Mi"}, cpu={"load": 20})
    assert stress_pids(container["cgroup_path"])
    os.kill(started["supervisor_pid"], signal.SIGKILL)  # a PID this test started, through the module
    # The stress dies with its supervisor (parent-death signal); the stop records why and cleans up.
    assert wait_for(lambda: not stress_pids(container["cgroup_path"]), 2, interval=0.05)
    stopped = ok("stressor", {"name": "orphaned", "state": "absent", "state_dir": state_dir})
    assert (stopped["changed"], stopped["status"], stopped["reason"]) == (True, "aborted", "supervisor_lost")
    assert not stress_pids(container["cgroup_path"])
    again = ok("stressor", {"name": "orphaned", "state": "absent", "state_dir": state_dir})
    assert again["changed"] is False


def test_only_the_experiments_processes_are_signalled(lab, state_dir, tmp_path):
    """Decoys named stress-ng, inside the target and on the host, outlive start, stop and the dead-man."""
    container = lab_container(lab, "payments")
    fake = tmp_path / "stress-ng"
    shutil.copy("/bin/sleep", str(fake))
    host_decoy = subprocess.Popen([str(fake), "300"])

    def join_target():
        with open("/sys/fs/cgroup/memory%s/cgroup.procs" % container["cgroup_path"], "w") as handle:
            handle.write("0")

    inside_decoy = subprocess.Popen([str(fake), "300"], preexec_fn=join_target)
    try:
        start(state_dir, "decoys", container, memory={"size": "20Mi"}, heartbeat_timeout="3s")
        wait_for(lambda: status_phase(state_dir, "decoys") == "ended", 15)
        start(state_dir, "decoys2", container, memory={"size": "20Mi"})
        ok("stressor", {"name": "decoys2", "state": "absent", "state_dir": state_dir})
        assert host_decoy.poll() is None and inside_decoy.poll() is None
        assert comm(container["pid"]) == "httpd"
    finally:
        for decoy in (host_decoy, inside_decoy):
            decoy.kill()
            decoy.wait()


def test_check_mode_returns_the_plan_and_starts_nothing(lab, state_dir):
    container = lab_container(lab, "hello")
    result = ok("stressor", dict(name="dry", container_id=container["id"], state_dir=state_dir, duration="1m",
                                 memory={"size": "200Mi", "workers": 4}), check_mode=True)
    assert result["changed"] is True and result["status"] == "would_start"
    argv = result["argv"][0]
    assert argv[argv.index("--vm") + 1] == "4"
    # The total goes to --vm-bytes (stress-ng divides it), less the stressor's own overhead and the few MiB
    # left for the top-up that brings it to the exact size.
    assert 180 * MI <= int(argv[argv.index("--vm-bytes") + 1]) < 200 * MI
    assert argv[argv.index("--vm-keep") + 1:argv.index("--vm-keep") + 3] == ["--vm-hang", "0"]  # holds, no churn
    assert not os.path.exists(os.path.join(state_dir, "experiments", "dry"))
    assert not stress_pids(container["cgroup_path"])


def test_unknown_experiment_absent_is_not_changed(state_dir):
    result = ok("stressor", {"name": "never-ran", "state": "absent", "state_dir": state_dir})
    assert result["changed"] is False


# (case, pod, params, error fragment) for every bad input the issue names.
BAD = [
    ("unknown target", None, {"container_id": "e" * 64, "memory": {"size": "10Mi"}}, "no container with ID"),
    ("% of an unlimited cgroup", "batch", {"memory": {"size": "50%"}}, "has no limit"),
    ("over the limit without allow_oom", "hello", {"memory": {"size": "3000Mi"}}, "allow_oom"),
    ("size abc", "hello", {"memory": {"size": "abc"}}, "is not a quantity"),
    ("size -5Mi", "hello", {"memory": {"size": "-5Mi"}}, "greater than zero"),
    ("size 0", "hello", {"memory": {"size": "0"}}, "greater than zero"),
    ("duration abc", "hello", {"memory": {"size": "10Mi"}, "duration": "abc"}, "not a duration"),
    ("duration 0", "hello", {"memory": {"size": "10Mi"}, "duration": "0"}, "greater than zero"),
    ("duration -5s", "hello", {"memory": {"size": "10Mi"}, "duration": "-5s"}, "not a duration"),
    ("duration over 24h", "hello", {"memory": {"size": "10Mi"}, "duration": "25h"}, "over the maximum"),
    ("load 0", "hello", {"cpu": {"load": 0}}, "from 1 to 100"),
    ("load 101", "hello", {"cpu": {"load": 101}}, "from 1 to 100"),
    ("memory workers 0", "hello", {"memory": {"size": "10Mi", "workers": 0}}, "between 1 and 64"),
    ("cpu workers 1000", "hello", {"cpu": {"load": 50, "workers": 1000}}, "between 1 and 256"),
    ("name with /", "hello", {"name": "a/b", "memory": {"size": "10Mi"}}, "not allowed"),
    ("name with ..", "hello", {"name": "..", "memory": {"size": "10Mi"}}, "not allowed"),
    ("size and target_usage", "hello", {"memory": {"size": "1Mi", "target_usage": "50%"}}, "mutually exclusive"),
    ("nothing to do", "hello", {}, "nothing to do"),
]


@pytest.mark.parametrize("case, pod, params, message", BAD, ids=[row[0] for row in BAD])
def test_bad_input_is_refused_and_nothing_starts(lab, state_dir, case, pod, params, message):
    args = dict(name="bad", state_dir=state_dir, duration="30s")
    if pod:
        args["container_id"] = lab_container(lab, pod)["id"]
    args.update(params)
    assert message in failed("stressor", args)
    assert not os.path.exists(os.path.join(state_dir, "experiments", args["name"], "status.json"))
    for pod_info in lab["pods"]:
        assert not stress_pids(lab_container(lab, pod_info["name"])["cgroup_path"])


def test_reusing_a_running_name_with_other_parameters_is_refused(lab, state_dir):
    container = lab_container(lab, "ledger")
    first = start(state_dir, "reuse", container, memory={"size": "20Mi"})
    message = failed("stressor", dict(name="reuse", container_id=container["id"], state_dir=state_dir,
                                      duration="60s", memory={"size": "40Mi"}))
    assert "running with different parameters" in message
    stopped = ok("stressor", {"name": "reuse", "state": "absent", "state_dir": state_dir})
    # The instances it started with (a top-up may have joined them) were stopped.
    assert [i["pid"] for i in stopped["outcome"]["instances"]][:len(first["pids"])] == first["pids"]


def test_a_second_experiment_on_the_same_target_is_refused(lab, state_dir):
    container = lab_container(lab, "ledger")
    start(state_dir, "one", container, memory={"size": "20Mi"})
    assert "already runs on" in failed("stressor", dict(name="two", container_id=container["id"],
                                                        state_dir=state_dir, duration="60s", cpu={"load": 10}))


@pytest.mark.serial
def test_guard_max_working_set_ends_it_on_the_node(lab, state_dir):
    container = lab_container(lab, "hello")
    start(state_dir, "guarded", container, memory={"size": "200Mi", "ramp": "6s"}, guard={"max_working_set": "100Mi"})
    assert wait_for(lambda: status_phase(state_dir, "guarded") == "ended", 15)
    result = ok("stressor", {"name": "guarded", "state": "absent", "state_dir": state_dir})
    assert result["reason"] == "guard:max_working_set"
    assert result["outcome"]["peak_working_set_bytes"] < 150 * MI
    assert not stress_pids(container["cgroup_path"])


def test_target_restarted_is_reported(lab, state_dir):
    from tests.integration.lab_fixtures import restart_pod
    container = lab_container(lab, "batch")
    start(state_dir, "restarted", container, memory={"size": "20Mi"})
    restart_pod(lab, "batch")
    assert wait_for(lambda: status_phase(state_dir, "restarted") == "ended", 15)
    result = ok("stressor", {"name": "restarted", "state": "absent", "state_dir": state_dir})
    assert result["status"] == "aborted" and result["reason"] == "target_gone"


@pytest.mark.serial
def test_an_app_oom_kill_is_attributed_to_the_app(lab, state_dir):
    """A BestEffort-like app (oom_score_adj 1000, as kubelet sets it) that holds more memory than the
    stress worker is the OOM killer's choice, not the stressor; the node records it as an app kill."""
    container = lab_container(lab, "ledger")
    hog = "b = bytearray(150 << 20)\nimport time\ntime.sleep(120)\n"

    def join_as_favourite_victim():
        with open("/sys/fs/cgroup/memory%s/cgroup.procs" % container["cgroup_path"], "w") as handle:
            handle.write("0")
        with open("/proc/self/oom_score_adj", "w") as handle:
            handle.write("1000")

    app = subprocess.Popen([sys.executable, "-c", hog], preexec_fn=join_as_favourite_victim)
    try:
        assert wait_for(lambda: working_set(container["cgroup_path"]) > 140 * MI, 10)
        start(state_dir, "app-oom", container, memory={"size": "400Mi"}, allow_oom=True, oom_score_adj=0,
              guard={"stop_on_app_oom_kill": True}, duration="30s")
        assert wait_for(lambda: status_phase(state_dir, "app-oom") == "ended", 20)
        assert app.wait(timeout=5) == -signal.SIGKILL
        result = ok("stressor", {"name": "app-oom", "state": "absent", "state_dir": state_dir})
        assert result["reason"] == "guard:app_oom_kill"
        victims = [(k["pid"], k["comm"], k["victim"]) for k in result["outcome"]["oom_kills"]]
        assert (app.pid, os.path.basename(sys.executable)[:15], "app") in victims
        assert comm(container["pid"]) == "httpd"
    finally:
        if app.poll() is None:
            app.kill()
        app.wait()
