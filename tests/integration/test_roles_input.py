"""Bad input to the roles and playbooks: a clear message, and nothing started on any node."""

import os

import pytest

from tests.integration.fleet_fixtures import fleet  # noqa: F401  pylint: disable=unused-import
from tests.integration.fleet_fixtures import fast_experiment, run_playbook, unique

pytestmark = [pytest.mark.lab, pytest.mark.slow]


def assert_nothing_started(fleet, name):
    for node in fleet.nodes:
        assert not os.path.exists(fleet.root(node) + "/run/chaosfleet/experiments/" + name), node
        assert fleet.stress_pids(node) == [], node


def failed_run(fleet, playbook, extra):
    run = run_playbook(fleet, playbook, extra)
    assert run.rc != 0, run
    return run.out + run.err


# (what is wrong, extra vars changed from a good memory experiment, words the message must have)
INPUT_CASES = [
    ("missing target", {"experiment_container_id": ""},
     "no target for experiment"),
    ("contradictory target", {"experiment_pod_uid": "{{ fleet_pods.hello.pod_uid }}"},
     "contradictory target for experiment"),
    ("size and target usage", {"experiment_memory_target_usage": "50%"},
     "needs exactly one of experiment_memory_size and experiment_memory_target_usage (got size '32Mi', target_usage '50%')"),
    ("negative probe threshold", {"experiment_probe_failure_threshold": "-1"},
     "experiment_probe_failure_threshold must be a whole number >= 0 (got '-1')"),
    ("negative failed-nodes share", {"experiment_max_failed_nodes_percent": "-5"},
     "experiment_max_failed_nodes_percent must be a percentage >= 0 (got '-5')"),
    ("negative heartbeat interval", {"experiment_heartbeat_interval": "-2"},
     "experiment_heartbeat_interval must be whole seconds >= 1 (got '-2')"),
    ("not a number", {"experiment_memory_workers": "many"},
     "experiment_memory_workers"),
    ("bad name", {"experiment_name": "../etc"},
     "experiment_name must be set, using letters"),
    ("probe without url", {"experiment_probes": [{"name": "p1", "type": "http"}]},
     "experiment_probes: probe p1: url is required"),
    ("negative probe timeout", {"experiment_probes": [{"name": "p1", "url": "http://127.0.0.1:1/", "timeout": -3}]},
     "experiment_probes: probe p1: timeout '-3' must be greater than zero"),
    ("heartbeat slower than the dead-man", {"experiment_heartbeat_interval": "10", "experiment_heartbeat_timeout": "15s"},
     "must be at least twice experiment_heartbeat_interval"),
    ("over the limit", {"experiment_memory_size": "2Gi"},
     "would take the target over its limit"),
    ("not enough headroom", {"experiment_memory_size": "90%", "experiment_min_free_percent": "20"},
     "not enough headroom"),
    ("target only on one node", {"experiment_container_id": "{{ hostvars.node1.fleet_pods.hello.container_id }}"},
     "2 of 3 hosts are not ready"),
]


@pytest.mark.parametrize("extra, words", [case[1:] for case in INPUT_CASES], ids=[case[0] for case in INPUT_CASES])
def test_bad_input_fails_clearly_before_anything_starts(fleet, tmp_path, extra, words):
    name = unique("bad")
    values = fast_experiment(experiment_name=name, experiment_report_dest=str(tmp_path))
    values.update(extra)
    text = failed_run(fleet, "chaosfleet.stress.memory_stress", values)
    assert words in text
    assert_nothing_started(fleet, values["experiment_name"])
    assert not list(tmp_path.iterdir())  # no report either


def test_unreachable_probe_url_at_baseline_stops_everything(fleet, tmp_path):
    name = unique("noprobe")
    values = fast_experiment(experiment_name=name, experiment_report_dest=str(tmp_path), experiment_probes=[
        {"name": "hello-http", "url": "http://127.0.0.1:{{ fleet_pods.hello.http_port }}/"},
        # nothing listens on port 9 (discard) inside the nodes
        {"name": "gone", "url": "http://127.0.0.1:9/", "timeout": 2},
    ])
    text = failed_run(fleet, "chaosfleet.stress.memory_stress", values)
    assert "the steady state cannot be established: probe gone failed" in text
    assert "probe hello-http failed" not in text
    assert_nothing_started(fleet, name)


def test_failing_command_probe_at_baseline_names_the_probe(fleet, tmp_path):
    name = unique("cmdprobe")
    values = fast_experiment(experiment_name=name, experiment_report_dest=str(tmp_path), experiment_probes=[
        {"name": "marker", "type": "command", "command": ["test", "-e", "/var/tmp/no-such-marker"]},
    ])
    text = failed_run(fleet, "chaosfleet.stress.memory_stress", values)
    assert "probe marker failed (rc 1" in text
    assert_nothing_started(fleet, name)


GAME_DAY_CASES = [
    ("unknown type", [{"name": "{n}-a", "type": "disk", "hosts": "fleet", "container_id": "x"}],
     "{n}-a: unknown experiment type 'disk' (memory, cpu or io)"),
    ("unknown setting", [{"name": "{n}-a", "type": "memory", "hosts": "fleet", "memroy_size": "1Mi"}],
     "{n}-a: unknown setting memroy_size"),
    ("no hosts", [{"name": "{n}-a", "type": "memory", "hosts": "nosuchgroup"}],
     "hosts 'nosuchgroup' matches no inventory host"),
    ("same host twice in a batch", [[{"name": "{n}-a", "type": "memory", "hosts": "node1"},
                                     {"name": "{n}-b", "type": "cpu", "hosts": "node1,node2"}]],
     "{n}-b and {n}-a both run on node1 in batch 1"),
    ("name used twice", [{"name": "{n}-a", "type": "memory", "hosts": "node1"},
                         {"name": "{n}-a", "type": "cpu", "hosts": "node2"}],
     "{n}-a: the name is used twice"),
]


@pytest.mark.parametrize("experiments, words", [case[1:] for case in GAME_DAY_CASES],
                         ids=[case[0] for case in GAME_DAY_CASES])
def test_bad_game_day_spec_is_refused_before_anything_starts(fleet, tmp_path, experiments, words):
    name = unique("gdbad")

    def fill(value):
        if isinstance(value, list):
            return [fill(v) for v in value]
        if isinstance(value, dict):
            return dict((k, fill(v)) for k, v in value.items())
        return value.replace("{n}", name) if isinstance(value, str) else value

    experiments = fill(experiments)
    spec = {"name": name, "report_dest": str(tmp_path)}
    if isinstance(experiments[0], list):
        spec["batches"] = experiments
    else:
        spec["experiments"] = experiments
    text = failed_run(fleet, "chaosfleet.stress.game_day", {"game_day": spec})
    assert words.replace("{n}", name) in text
    for node in fleet.nodes:
        assert fleet.stress_pids(node) == []
        experiments_dir = fleet.root(node) + "/run/chaosfleet/experiments"
        assert not [e for e in (os.listdir(experiments_dir) if os.path.isdir(experiments_dir) else [])
                    if e.startswith(name)]
    assert not list(tmp_path.iterdir())


def test_check_mode_runs_preflight_and_baseline_but_starts_nothing(fleet, tmp_path):
    name = unique("check")
    run = run_playbook(fleet, "chaosfleet.stress.memory_stress",
                       fast_experiment(experiment_name=name, experiment_report_dest=str(tmp_path)), check=True)
    assert run.rc == 0, run
    for node in fleet.nodes:
        path = fleet.container(node, "hello")["cgroup_path"]
        assert "check mode: experiment %s would start on %s in %s: " % (name, node, path) in run.out
    assert "--vm-bytes" in run.out
    assert_nothing_started(fleet, name)
    assert not list(tmp_path.iterdir())
