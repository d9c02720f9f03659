"""The result contract (module_utils/_result.py) and the published JSON Schema of the report."""

import json
import os

import jsonschema
import pytest

from ansible_collections.chaosfleet.stress.plugins.module_utils import _result
from ansible_collections.chaosfleet.stress.plugins.plugin_utils import _report

HERE = os.path.dirname(__file__)
REPO = os.path.abspath(os.path.join(HERE, "..", "..", "..", ".."))
SCHEMA = os.path.join(REPO, "docs", "schemas", "report.schema.json")
FIXTURES = os.path.join(HERE, "..", "..", "fixtures", "samples")


def fixture(name):
    with open(os.path.join(FIXTURES, name + ".json")) as handle:
        return json.load(handle)


def test_build_fills_every_key_and_refuses_unknown_ones():
    out = _result.build(host="h", experiment="e")
    assert set(out) == set(_result.KEYS) and out["format_version"] == _result.FORMAT_VERSION
    assert out["steady_state"] == {"held": None, "probes": []}
    with pytest.raises(_result.ResultError, match="unknown result keys: colour"):
        _result.build(colour="red")


def test_a_dict_without_format_version_is_not_a_result():
    assert "no format_version" in _result.validate({"host": "h"})


def test_defaults_are_not_shared_between_results():
    one, two = _result.build(), _result.build()
    one["steady_state"]["probes"].append({"name": "p"})
    assert two["steady_state"]["probes"] == []


VALIDATE_CASES = [
    ("good", {}, None),
    ("not a dict", [], "a list, not an experiment result"),
    ("other version", {"format_version": 2}, "format_version 2 (this collection reads 1)"),
    ("bool version", {"format_version": True}, "format_version True"),
    ("no experiment", {"experiment": ""}, "experiment name missing"),
    ("samples not a list", {"samples": {}}, "samples must be a list"),
    ("sample without t", {"samples": [{"working_set_bytes": 1}]}, "every sample needs a numeric t"),
    ("oom kills not records", {"oom_kills": [1]}, "oom_kills must be a list of OOM kill records"),
    ("target not a mapping", {"target": "x"}, "target must be a mapping"),
    ("heartbeat not a mapping", {"heartbeat": [1]}, "heartbeat must be a mapping"),
    ("probes not mappings", {"steady_state": {"probes": ["x"]}}, "steady_state.probes must be a list of mappings"),
]


@pytest.mark.parametrize("change, words", [c[1:] for c in VALIDATE_CASES], ids=[c[0] for c in VALIDATE_CASES])
def test_validate(change, words):
    value = change if isinstance(change, list) else dict(_result.build(host="h", experiment="e"), **change)
    problem = _result.validate(value)
    assert (words in problem) if words else problem is None


MERGE_CASES = [
    # (case, node status/reason, abort, probes, (status, reason, held))
    ("deadline", ("finished", "deadline"), "", None, ("finished", "deadline", None)),
    ("stopped by the abort", ("stopped", "stop"), "probe failed", None, ("aborted", "abort", None)),
    ("node guard wins over the abort", ("stopped", "guard:app_oom_kill"), "oom", None,
     ("stopped", "guard:app_oom_kill", None)),
    ("probes held", ("finished", "deadline"), "", [{"name": "p", "checks": 3, "failures": 0, "last_failure": ""}],
     ("finished", "deadline", True)),
    ("probe over threshold", ("finished", "deadline"), "",
     [{"name": "p", "checks": 3, "failures": 2, "last_failure": "x"}], ("finished", "deadline", False)),
]


@pytest.mark.parametrize("node, abort, probes, want", [c[1:] for c in MERGE_CASES], ids=[c[0] for c in MERGE_CASES])
def test_merge(node, abort, probes, want):
    record = _result.build(host="node-name", experiment="e-suffix", status=node[0], reason=node[1])
    out = _result.merge(record, "e", "h1", probes=probes, probe_threshold=1, abort_reason=abort,
                        heartbeat={"rounds": 2})
    assert (out["status"], out["reason"], out["steady_state"]["held"]) == want
    assert (out["host"], out["experiment"], out["heartbeat"]) == ("h1", "e", {"rounds": 2})
    assert _result.validate(out) is None


@pytest.mark.parametrize("verdicts, want", [
    ([], "error"), (["pass"], "pass"), (["pass", "inconclusive"], "inconclusive"),
    (["fail", "error", "pass"], "fail"), (["error", "inconclusive"], "error"),
])
def test_worst(verdicts, want):
    assert _result.worst(verdicts) == want


def test_strip_leaves_out_samples_and_argv():
    assert set(_result.strip(_result.build())) == set(_result.KEYS) - {"samples", "argv"}


@pytest.mark.parametrize("results", [
    {"node1": "node1_stressor_oom", "node2": "node2_app_oom", "node3": "node3_group_kill"},
    {"node4": "node4_cpu_throttled", "node5": None},
    {"node1": "node1_search_memory"},
], ids=["memory", "cpu-and-missing", "search"])
def test_real_report_json_validates_against_the_published_schema(tmp_path, results):
    with open(SCHEMA) as handle:
        schema = json.load(handle)
    jsonschema.Draft202012Validator.check_schema(schema)
    params = {"results": dict((h, fixture(n) if n else None) for h, n in results.items()), "dest": str(tmp_path),
              "expected_hosts": [], "title": None, "basename": "r", "formats": ["json"],
              "achieved_min_percent": 80.0, "fail_on_app_oom": True}
    _report.run(params)
    with open(str(tmp_path / "r.json")) as handle:
        document = json.load(handle)
    jsonschema.validate(document, schema, cls=jsonschema.Draft202012Validator)
    for result in document["results"].values():
        assert _result.validate(result) is None


def test_the_schema_rejects_a_wrong_verdict(tmp_path):
    with open(SCHEMA) as handle:
        schema = json.load(handle)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"format_version": 1, "title": "t", "experiment": "e", "verdict": "great",
                             "hosts": {"ok": [], "missing": [], "failed": []}, "verdicts": {}, "results": {}},
                            schema)


@pytest.mark.parametrize("failures, threshold, recovery_failed, broke", [
    (0, 0, False, False),
    (1, 0, False, True),     # one failure over a threshold of none
    (2, 2, False, False),    # at the threshold: held
    (3, 2, False, True),
    (0, 5, True, True),      # a failed check after recovery breaks it whatever the threshold
    (0, 0, None, False),     # no recovery round
], ids=["clean", "over", "at threshold", "over a threshold", "failed after recovery", "no recovery round"])
def test_probe_broke(failures, threshold, recovery_failed, broke):
    assert _result.probe_broke(failures, threshold, recovery_failed) is broke


def test_target_of_names_every_target_key():
    target = {"path": "/a", "container_id": "c", "pod_uid": "u", "qos_class": "Burstable", "cgroup_version": 2,
              "kind": "container"}
    limits = {"memory_limit_bytes": 10, "cpu_quota_cores": 0.5, "oom_group": False, "memory_high_bytes": 9}
    got = _result.target_of(target, limits)
    assert tuple(got) == _result.TARGET_KEYS
    assert got == {"path": "/a", "container_id": "c", "pod_uid": "u", "qos_class": "Burstable", "cgroup_version": 2,
                   "limit_bytes": 10, "cpu_quota_cores": 0.5, "oom_group": False}
    assert _result.target_of(None, None) == dict((k, None) for k in _result.TARGET_KEYS)
