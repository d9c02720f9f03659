"""Issue 11: bad inputs through the modules' real interface end in a clear one-line error, start nothing and
leave no experiment state behind.

Each module's rows run as one ansible-playbook (one task per row, ignore_errors, results registered), the
playbooks side by side, so the whole table costs a few Ansible runs. Every stressor row would, if it were
wrongly accepted, start a 5-minute experiment in a private state_dir; the checks after the runs would find it.
"""

import json
import os
import secrets
import shutil
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.integration.ansible_helpers import stress_pids
from tests.integration.lab_fixtures import lab_container, lab_pod
from tests.integration.test_k8s_targets import run_tasks

pytestmark = [pytest.mark.lab]

# Placeholders filled from the lab: a container ID, a pod UID, cgroup paths.
HELLO, BATCH, SANDBOX, POD_UID, POD_PATH, KUBEPODS, APP_PID = (
    "@hello", "@batch", "@sandbox", "@pod_uid", "@pod_path", "@kubepods", "@app_pid")
RESULT = "@result"  # a recorded experiment result (tests/unit/fixtures/samples)
STRESS = {"memory": {"size": "10Mi"}}
SAMPLES = Path(__file__).resolve().parents[1] / "unit" / "fixtures" / "samples"


def row_name(index):
    """The experiment name a stressor row starts under."""
    return "cflab-bad-%d" % index


def stressor(**args):
    """A stressor row's arguments: a container target, a 5-minute memory stress, unless the row says otherwise."""
    out = {"container_id": HELLO, "duration": "5m"}
    out.update(STRESS)
    out.update(args)
    return out


# (row id, module, arguments, what the one-line error must say)
ROWS = [
    # -- stressor: the checks that were there before (tests/integration/test_stressor.py)
    ("unknown target", "stressor", stressor(container_id="e" * 64), "no container with ID"),
    ("% of an unlimited cgroup", "stressor", stressor(container_id=BATCH, memory={"size": "50%"}), "has no limit"),
    ("over the limit without allow_oom", "stressor", stressor(memory={"size": "3000Mi"}), "allow_oom"),
    ("size abc", "stressor", stressor(memory={"size": "abc"}), "is not a quantity"),
    ("size -5Mi", "stressor", stressor(memory={"size": "-5Mi"}), "greater than zero"),
    ("size 0", "stressor", stressor(memory={"size": "0"}), "greater than zero"),
    ("duration abc", "stressor", stressor(duration="abc"), "not a duration"),
    ("duration 0", "stressor", stressor(duration="0"), "greater than zero"),
    ("duration -5s", "stressor", stressor(duration="-5s"), "not a duration"),
    ("duration over 24h", "stressor", stressor(duration="25h"), "over the maximum"),
    ("load 0", "stressor", stressor(memory=None, cpu={"load": 0}), "from 1 to 100"),
    ("load 101", "stressor", stressor(memory=None, cpu={"load": 101}), "from 1 to 100"),
    ("memory workers 0", "stressor", stressor(memory={"size": "10Mi", "workers": 0}), "between 1 and 64"),
    ("cpu workers 1000", "stressor", stressor(memory=None, cpu={"load": 50, "workers": 1000}), "between 1 and 256"),
    ("name with /", "stressor", stressor(name="a/b"), "not allowed"),
    ("name ..", "stressor", stressor(name=".."), "not allowed"),
    ("size and target_usage", "stressor", stressor(memory={"size": "1Mi", "target_usage": "50%"}),
     "mutually exclusive"),
    ("nothing to do", "stressor", stressor(memory=None), "nothing to do"),
    # -- stressor: node-wide targets (point 2)
    ("cgroup_path /", "stressor", stressor(container_id=None, cgroup_path="/"), "resolves to cgroup /,"),
    ("cgroup_path //", "stressor", stressor(container_id=None, cgroup_path="//"), "resolves to cgroup /,"),
    ("cgroup_path of the memory mount", "stressor", stressor(container_id=None, cgroup_path="/sys/fs/cgroup/memory"),
     "resolves to cgroup /,"),
    ("cgroup_path of a kubepods slice", "stressor", stressor(container_id=None, cgroup_path=KUBEPODS),
     "child cgroup"),
    ("cgroup_path of a pod", "stressor", stressor(container_id=None, cgroup_path=POD_PATH), "child cgroup"),
    ("pid 1", "stressor", stressor(container_id=None, pid=1), "refusing a node-wide target: pid 1"),
    ("1Pi on an unlimited target", "stressor", stressor(container_id=BATCH, memory={"size": "1Pi"}),
     "more than the node has available"),
    ("io 16 x 1Pi", "stressor", stressor(memory=None, io={"size": "1Pi", "workers": 16}), "free on io_dir"),
    # -- stressor: parsing (point 9)
    ("fullwidth digits", "stressor", stressor(memory={"size": "\uff11\uff10\uff10Mi"}), "is not a quantity"),
    ("arabic-indic digit size", "stressor", stressor(memory={"size": "\u0663Mi"}), "is not a quantity"),
    ("arabic-indic digit duration", "stressor", stressor(duration="\u0663s"), "not a duration"),
    ("space in a size", "stressor", stressor(memory={"size": "10 Mi"}), "no space before the unit"),
    ("space in a duration", "stressor", stressor(duration="10 s"), "no spaces"),
    ("size 1e400", "stressor", stressor(memory={"size": "1e400"}), "out of range"),
    ("size 1e999999", "stressor", stressor(memory={"size": "1e999999"}), "out of range"),
    ("name with a trailing newline", "stressor", stressor(name="cflab-bad\n"), "not allowed"),
    ("duration 1h1h", "stressor", stressor(duration="1h1h"), "each unit once"),
    ("heartbeat_timeout 1ms", "stressor", stressor(heartbeat_timeout="1ms"), "below the minimum of 3s"),
    ("size 1.9 bytes", "stressor", stressor(memory={"size": "1.9"}), "not a whole number of bytes"),
    ("ramp 1m1h", "stressor", stressor(memory={"size": "10Mi", "ramp": "1m1h"}), "largest first"),
    ("sample_interval 10ms", "stressor", stressor(sample_interval="10ms"), "below the minimum"),
    ("guard max_working_set abc", "stressor", stressor(guard={"max_working_set": "abc"}), "is not a quantity"),
    ("target_usage below the working set", "stressor", stressor(memory={"target_usage": "1Ki"}),
     "is not above the current working set"),
    # -- stressor: other validation paths
    ("oom_score_adj 5000", "stressor", stressor(oom_score_adj=5000), "from -1000 to 1000"),
    ("on_oom maybe", "stressor", stressor(on_oom="maybe"), "value of on_oom must be one of"),
    ("vm method bogus", "stressor", stressor(memory={"size": "10Mi", "method": "bogus"}),
     "is not a stress-ng vm method"),
    ("io workers 0", "stressor", stressor(memory=None, io={"workers": 0}), "between 1 and 16"),
    ("cpu load abc", "stressor", stressor(memory=None, cpu={"load": "abc"}), "float"),
    ("present without duration", "stressor", stressor(duration=None), "missing: duration"),
    ("present without a target", "stressor", stressor(container_id=None), "any of the following are missing"),
    ("two targets", "stressor", stressor(pid=APP_PID), "mutually exclusive"),
    ("malformed container_id", "stressor", stressor(container_id="zz"), "is malformed"),
    ("malformed pod_uid", "stressor", stressor(container_id=None, pod_uid="xyz"), "is malformed"),
    ("cgroup_path escaping the root", "stressor", stressor(container_id=None, cgroup_path="/../../etc"),
     "leaves the cgroup root"),
    ("cgroup_path outside any hierarchy", "stressor",
     stressor(container_id=None, cgroup_path="/sys/fs/cgroup/cflab-nothing/x"), "not inside a cgroup hierarchy"),
    ("malformed systemd_unit", "stressor", stressor(container_id=None, systemd_unit="bad unit!"), "is malformed"),
    ("pid that does not exist", "stressor", stressor(container_id=None, pid=2 ** 22 + 12345), "no process with PID"),
    ("the pause container", "stressor", stressor(container_id=SANDBOX), "is a sandbox (pause) container"),
    ("unknown option", "stressor", stressor(sizee="1Mi"), "Unsupported parameters"),
    ("name with a non-ASCII letter", "stressor", stressor(name="caf\u00e9"), "not allowed"),
    # -- cgroup_info
    ("cgroup_info without a target", "cgroup_info", {}, "one of the following is required"),
    ("cgroup_info malformed container_id", "cgroup_info", {"container_id": "xyz!"}, "is malformed"),
    ("cgroup_info escaping the root", "cgroup_info", {"cgroup_path": "/../../etc"}, "leaves the cgroup root"),
    ("cgroup_info pid -1", "cgroup_info", {"pid": -1}, "pid must be a positive integer"),
    ("cgroup_info unknown container", "cgroup_info", {"container_id": "f" * 64}, "no container with ID"),
    ("cgroup_info unknown pod", "cgroup_info", {"pod_uid": str(uuid.UUID(int=7))}, "no pod with UID"),
    ("cgroup_info unknown unit", "cgroup_info", {"systemd_unit": "cflab-nope.service"}, "no cgroup for systemd unit"),
    ("cgroup_info two targets", "cgroup_info", {"container_id": HELLO, "pid": 1}, "mutually exclusive"),
    # -- cgroup_sample
    ("sample interval with an arabic-indic digit", "cgroup_sample",
     {"container_id": HELLO, "duration": "2s", "interval": "\u0663s"}, "not a duration"),
    ("sample duration 1h1h", "cgroup_sample", {"container_id": HELLO, "duration": "1h1h"}, "each unit once"),
    ("sample interval 10ms", "cgroup_sample", {"container_id": HELLO, "duration": "2s", "interval": "10ms"},
     "below the minimum"),
    ("sample interval longer than the window", "cgroup_sample",
     {"container_id": HELLO, "duration": "1s", "interval": "2s"}, "is longer than the window"),
    ("sample without duration", "cgroup_sample", {"container_id": HELLO}, "duration is required"),
    ("recovery within_percent 0", "cgroup_sample",
     {"container_id": HELLO, "recovery": {"baseline_working_set_bytes": 1, "within_percent": 0}}, "must be above 0"),
    ("recovery tolerance with a space", "cgroup_sample",
     {"container_id": HELLO, "recovery": {"baseline_working_set_bytes": 1, "tolerance_bytes": "10 Mi"}},
     "no space before the unit"),
    ("targets entry with an unknown key", "cgroup_sample",
     {"targets": [{"container_id": HELLO, "memory": "x"}], "duration": "2s"}, "targets entries take only"),
    ("unknown experiment", "cgroup_sample", {"experiment": "cflab-never-ran"}, "no experiment cflab-never-ran"),
    ("experiment name with /", "cgroup_sample", {"experiment": "a/b"}, "not allowed"),
    ("experiment and duration", "cgroup_sample", {"experiment": "x", "duration": "2s"}, "mutually exclusive"),
    # -- k8s_targets (these fail before any API call)
    ("k8s fixed without value", "k8s_targets", {"mode": "fixed"}, "missing: value"),
    ("k8s unknown mode", "k8s_targets", {"mode": "most"}, "value of mode must be one of"),
    ("k8s fixed-percent abc", "k8s_targets", {"mode": "fixed-percent", "value": "abc"}, "is not a whole number"),
    ("k8s value with an arabic-indic digit", "k8s_targets", {"mode": "fixed", "value": "\u0663"},
     "is not a whole number"),
    ("k8s fixed 0", "k8s_targets", {"mode": "fixed", "value": "0"}, "must be at least 1"),
    ("k8s bad label key", "k8s_targets", {"label_selectors": {"bad key": "x"}}, "is not a valid label key"),
    ("k8s unknown phase", "k8s_targets", {"pod_phase_selectors": ["Dead"]}, "value of pod_phase_selectors must be"),
    ("k8s username without password", "k8s_targets", {"username": "u"}, "required together"),
    ("k8s missing kubeconfig file", "k8s_targets", {"kubeconfig": "/nonexistent/cflab/kubeconfig"},
     "does not exist"),
    # -- stress_report (the results and the destination are checked before anything is written)
    ("report with nothing to report", "stress_report", {"results": []}, "nothing to report"),
    ("report with a string result", "stress_report", {"results": ["node1"]}, "is a str, not an experiment result"),
    ("report basename ../escape", "stress_report", {"results": [RESULT], "basename": "../escape"},
     "must be a plain file name"),
    ("report format pdf", "stress_report", {"results": [RESULT], "formats": ["pdf"]}, "pdf"),
    ("report hostile basename", "stress_report", {"results": [RESULT], "basename": ".hidden"},
     "must be a plain file name"),
    ("report results not a list", "stress_report", {"results": "node1"}, "results must be a list"),
]
ROW_IDS = [row[0] for row in ROWS]
assert len(set(ROW_IDS)) == len(ROW_IDS) >= 60


def fill(value, lab):
    """Replace the placeholders with this lab's IDs and paths."""
    hello, batch = lab_container(lab, "hello"), lab_container(lab, "batch")
    pod = lab_pod(lab, "hello")
    values = {HELLO: hello["id"], BATCH: batch["id"], SANDBOX: pod["sandbox"]["id"], POD_UID: pod["uid"],
              POD_PATH: pod["cgroup_path"], KUBEPODS: lab["cgroup_root"] + "/kubepods", APP_PID: hello["pid"]}
    if value == RESULT:
        return json.loads((SAMPLES / "node1_stressor_oom.json").read_text())
    if isinstance(value, dict):
        return dict((k, fill(v, lab)) for k, v in value.items() if v is not None)
    if isinstance(value, list):
        return [fill(v, lab) for v in value]
    return values.get(value, value) if isinstance(value, str) else value


def processes_mentioning(text):
    """PIDs whose command line mentions ``text`` (a supervisor runs from its experiment's directory)."""
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != os.getpid():
            try:
                if text.encode() in Path("/proc", entry, "cmdline").read_bytes():
                    out.append(int(entry))
            except OSError:
                continue
    return out


@pytest.fixture(scope="module")
def bad_runs(lab, tmp_path_factory):
    state_dir = "/run/cflab-state-" + secrets.token_hex(3)
    # The rows' I/O directory: root-only and empty, so anything a refused start made there shows.
    io_dir = "/var/tmp/cflab-io-" + secrets.token_hex(3)
    os.mkdir(io_dir, 0o700)
    workdir = tmp_path_factory.mktemp("bad-inputs")
    reports = workdir / "reports"
    plays = {}
    for index, (row_id, module, args, _message) in enumerate(ROWS):
        args = fill(args, lab)
        if module == "stressor":
            args = dict({"name": row_name(index), "state_dir": state_dir, "io_dir": io_dir}, **args)
        elif module == "cgroup_sample":
            args = dict({"state_dir": state_dir}, **args)
        elif module == "k8s_targets":
            args = dict({"kubeconfig": "/nonexistent/cflab/kubeconfig"}, **args)
        elif module == "stress_report":
            args = dict({"dest": str(reports)}, **args)
        # Stressor rows are most of the table: three playbooks share them, so the runs overlap.
        play = module if module != "stressor" else "stressor-%d" % (index % 3)
        plays.setdefault(play, []).append({"name": row_id, "chaosfleet.stress." + module: args,
                                             "ignore_errors": True})
    # Controls: the same targets are fine where they should be (read-only, or opted in; check mode starts nothing).
    plays["cgroup_info"].append({"name": "control: cgroup_info reports the root", "ignore_errors": True,
                                 "chaosfleet.stress.cgroup_info": {"cgroup_path": "/"}})
    plays["stressor-0"].append({"name": "control: allow_node_wide opts in", "ignore_errors": True, "check_mode": True,
                                "chaosfleet.stress.stressor": fill(dict(stressor(container_id=None, cgroup_path="/"),
                                                                        name="cflab-opt-in", state_dir=state_dir,
                                                                        allow_node_wide=True), lab)})
    env = {"ANSIBLE_PIPELINING": "True"}
    try:
        with ThreadPoolExecutor(max_workers=len(plays)) as pool:
            runs = list(pool.map(lambda tasks: run_tasks(workdir, tasks, env=env), plays.values()))
        results = {}
        for run in runs:
            results.update(run.results)
        left = {"experiments": sorted(os.listdir(os.path.join(state_dir, "experiments")))
                if os.path.isdir(os.path.join(state_dir, "experiments")) else [],
                "processes": processes_mentioning(state_dir),
                "stress": dict((p["name"], stress_pids(c["cgroup_path"])) for p in lab["pods"]
                               for c in p["containers"]),
                "reports": sorted(os.listdir(str(reports))) if reports.exists() else [],
                "io": sorted(os.listdir(io_dir))}
        yield results, left, state_dir
    finally:
        from ansible_collections.chaosfleet.stress.plugins.module_utils._experiment import Experiment
        from ansible_collections.chaosfleet.stress.plugins.module_utils._state import list_experiments
        for name in list_experiments(state_dir):
            Experiment(state_dir, name).stop()
        shutil.rmtree(state_dir, ignore_errors=True)
        shutil.rmtree(io_dir, ignore_errors=True)


@pytest.mark.parametrize("row_id, module, args, message", ROWS, ids=ROW_IDS)
def test_bad_input_fails_on_one_clear_line(bad_runs, row_id, module, args, message):
    results, _left, state_dir = bad_runs
    result = results[row_id]
    msg = (result.get("msg") or "").strip()
    assert result.get("failed") is True, "%s was accepted: %s" % (row_id, result)
    assert msg and "\n" not in msg, "not one line: %r" % msg
    assert "Traceback" not in msg, msg
    assert message in msg, msg
    assert not result.get("changed")
    if module == "stressor":
        assert not os.path.exists(os.path.join(state_dir, "experiments", row_name(ROW_IDS.index(row_id)))), row_id


def test_the_node_wide_check_refuses_only_what_it_should(bad_runs):
    results, _left, _state_dir = bad_runs
    info = results["control: cgroup_info reports the root"]
    assert not info.get("failed"), info.get("msg")
    assert [(c["path"], c["node_wide"]) for c in info["cgroups"]] == [("/", True)]
    opted = results["control: allow_node_wide opts in"]
    assert not opted.get("failed") and opted["status"] == "would_start", opted.get("msg")
    assert opted["target"]["path"] == "/" and opted["target"]["node_wide"] is True


def test_nothing_was_started_and_no_state_is_left(bad_runs):
    _results, left, _state_dir = bad_runs
    assert left["experiments"] == [], "experiment directories left behind"
    assert left["processes"] == [], "a supervisor (or anything) runs from the private state_dir"
    assert all(pids == [] for pids in left["stress"].values()), left["stress"]
    assert left["reports"] == [], "stress_report wrote files for bad input"
    assert left["io"] == [], "a refused start left an I/O directory"
