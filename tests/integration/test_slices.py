"""One experiment run as two slices at once (as AWX job slicing runs it: the same playbook, each
job on part of the inventory), then reported as one experiment from the slices' JSON reports."""

import json

import pytest

from tests.integration.fleet_fixtures import fleet  # noqa: F401  pylint: disable=unused-import
from tests.integration.fleet_fixtures import fast_experiment, run_playbook, start_playbook, unique

pytestmark = [pytest.mark.lab, pytest.mark.slow]

MERGE = """
- hosts: localhost
  gather_facts: false
  tasks:
    - chaosfleet.stress.stress_report:
        slice_reports: "{{ slice_reports }}"
        dest: "{{ dest }}"
        basename: "{{ basename }}"
      register: merged
    - ansible.builtin.debug:
        msg: "verdict {{ merged.stats.verdict }}"
"""


def test_two_slices_at_once_are_reported_as_one_experiment(fleet, tmp_path):
    name = unique("slices")
    slices = {"s1": "node1,node2", "s2": "node3"}
    procs = {}
    for label, limit in slices.items():
        values = fast_experiment(experiment_name=name, experiment_report_dest=str(tmp_path),
                                 experiment_report_basename="%s-%s" % (name, label),
                                 experiment_expected_hosts=fleet.nodes)
        procs[label] = start_playbook(fleet, "chaosfleet.stress.memory_stress", values, limit=limit,
                                      log_path=str(tmp_path / (label + ".log")))
    for label, proc in procs.items():
        assert proc.wait(timeout=600) == 0, (tmp_path / (label + ".log")).read_text()[-4000:]
    windows = dict((n, (fleet.outcome(n, name)["started_at"], fleet.outcome(n, name)["ended_at"])) for n in fleet.nodes)
    assert windows["node3"][0] < windows["node1"][1] and windows["node1"][0] < windows["node3"][1]  # at once
    first = json.loads((tmp_path / ("%s-s1.json" % name)).read_text())
    assert first["hosts"]["missing"] == ["node3"]

    playbook = tmp_path / "merge.yml"
    playbook.write_text(MERGE)
    run = run_playbook(fleet, str(playbook), {"slice_reports": [str(tmp_path / ("%s-%s.json" % (name, s)))
                                                                for s in slices],
                                              "dest": str(tmp_path), "basename": name + "-all"})
    assert run.rc == 0, run
    merged = json.loads((tmp_path / ("%s-all.json" % name)).read_text())
    assert merged["experiment"] == name
    assert merged["hosts"] == {"ok": fleet.nodes, "missing": [], "failed": []}
    assert set(merged["results"]) == set(fleet.nodes)
    for node in fleet.nodes:
        assert merged["results"][node]["reason"] == "deadline"
        assert merged["verdicts"][node]["verdict"] in ("pass", "inconclusive")
