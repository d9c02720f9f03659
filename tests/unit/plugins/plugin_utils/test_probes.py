"""Kubernetes probe verdicts, the tally and the explanation (plugin_utils/_probes.py), as tables."""

import os

import pytest

from ansible_collections.chaosfleet.stress.plugins.module_utils._probe_checks import normalize
from ansible_collections.chaosfleet.stress.plugins.plugin_utils._probes import (
    auth_params, check_kubernetes, explain, judge_kubernetes, plan, pod_states, summary, update_tally,
)

K8S = normalize({"name": "pods", "type": "kubernetes", "namespace": "shop", "label_selector": "app=web",
                 "min_pods": 2, "max_restarts": 1})


def _pod(name, ready=True, restarts=0, phase="Running"):
    return {"metadata": {"name": name},
            "status": {"phase": phase,
                       "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
                       "containerStatuses": [{"name": "app", "restartCount": restarts}]}}


@pytest.mark.parametrize("pods, baseline, ok, detail", [
    ([_pod("a"), _pod("b")], None, True, "2 pod(s) Ready, no restarts over 1, in 10 ms"),
    ([_pod("a")], None, False, "1 pod(s) found in namespace shop, at least 2 wanted"),
    ([_pod("a"), _pod("b", ready=False, phase="Pending")], None, False, "not Ready: b (Pending)"),
    # restarts before the first round do not count; two since then do
    ([_pod("a", restarts=5), _pod("b")], None, True, "2 pod(s) Ready, no restarts over 1, in 10 ms"),
    ([_pod("a", restarts=7), _pod("b")], {"a/app": 5, "b/app": 0}, False, "restarted more than 1 time(s): a/app +2"),
    ([_pod("a", restarts=6), _pod("b")], {"a/app": 5, "b/app": 0}, True, "2 pod(s) Ready"),
    # a replacement pod appearing after the baseline counts all its restarts
    ([_pod("a"), _pod("c", restarts=2)], {"a/app": 0, "b/app": 0}, False, "c/app +2"),
])
def test_kubernetes_verdicts(pods, baseline, ok, detail):
    checked, kept = judge_kubernetes(K8S, pod_states(pods), baseline, 0.01)
    assert checked["ok"] is ok
    assert detail in checked["detail"]
    first_seen = dict(("%s/app" % p["metadata"]["name"], p["status"]["containerStatuses"][0]["restartCount"])
                      for p in pods)
    assert kept == (baseline if baseline is not None else first_seen)


def test_kubernetes_error_is_a_failed_check():
    checked, kept = judge_kubernetes(K8S, None, None, 0.2, "not allowed (403 Forbidden) while listing pods")
    assert not checked["ok"] and "403 Forbidden" in checked["detail"] and kept is None


def _round(*oks, latency=10.0):
    return [{"name": "p%d" % i, "type": "http", "ok": ok, "latency_ms": latency,
             "detail": "fine" if ok else "HTTP 503"} for i, ok in enumerate(oks)]


@pytest.mark.parametrize("rounds, expected", [
    ([("baseline", _round(True))],
     {"p0": dict(checks=1, passed=1, failures=0, pass_rate=100.0, last_failure=None)}),
    ([("baseline", _round(True, True)), ("stress", _round(True, False)), ("stress", _round(True, False)),
      ("recovery", _round(True, True))],
     {"p0": dict(checks=4, passed=4, pass_rate=100.0),
      "p1": dict(checks=4, passed=2, failures=2, pass_rate=50.0,
                 last_failure={"phase": "stress", "detail": "HTTP 503"},
                 phases={"baseline": {"checks": 1, "passed": 1, "latency_ms": {"p50": 10.0, "p95": 10.0}, "value": None},
                         "stress": {"checks": 2, "passed": 0, "latency_ms": {"p50": 10.0, "p95": 10.0}, "value": None},
                         "recovery": {"checks": 1, "passed": 1, "latency_ms": {"p50": 10.0, "p95": 10.0},
                                      "value": None}})}),
    # Each phase keeps its own latencies and the probe's observed values (a search reads the stress phase's).
    ([("baseline", _round(True, latency=5.0)),
      ("stress", [dict(_round(True, latency=50.0)[0], observed={"value": 0.2})]),
      ("stress", [dict(_round(False, latency=400.0)[0], observed={"value": 0.9})])],
     {"p0": dict(latency_ms={"p50": 50.0, "p95": 400.0, "max": 400.0},
                 phases={"baseline": {"checks": 1, "passed": 1, "latency_ms": {"p50": 5.0, "p95": 5.0}, "value": None},
                         "stress": {"checks": 2, "passed": 1, "latency_ms": {"p50": 50.0, "p95": 400.0},
                                    "value": {"last": 0.9, "min": 0.2, "max": 0.9}}})}),
])
def test_tally(rounds, expected):
    tally = {}
    for phase, results in rounds:
        before = repr(tally)
        tally = update_tally(tally, phase, results)
        if before != "{}":
            assert before != repr(tally)
    lines = dict((line["name"], line) for line in summary(tally))
    assert tally["rounds"] == len(rounds)
    for name, want in expected.items():
        for key, value in want.items():
            assert lines[name][key] == value, (name, key)


def test_tally_does_not_change_its_input():
    first = update_tally({}, "baseline", _round(True))
    copy = repr(first)
    update_tally(first, "stress", _round(False))
    assert repr(first) == copy


def test_latency_percentiles():
    tally = {}
    for ms in range(1, 101):
        tally = update_tally(tally, "stress", [{"name": "a", "type": "http", "ok": True, "latency_ms": float(ms),
                                                "detail": ""}])
    line = summary(tally)[0]
    assert line["latency_ms"] == {"p50": 51.0, "p95": 95.0, "max": 100.0}


@pytest.mark.parametrize("allowed, expected", [
    (0, "probe p1 failed 2 of 3 checks (pass rate 33.3%), last in stress: HTTP 503"),
    (2, ""),
])
def test_explain(allowed, expected):
    tally = {}
    for phase, results in [("baseline", _round(True, True)), ("stress", _round(True, False)),
                           ("stress", _round(True, False))]:
        tally = update_tally(tally, phase, results)
    assert explain(summary(tally), allowed) == expected


def test_plan_splits_by_where_probes_run():
    probes, node, controller = plan([
        {"name": "n1", "url": "http://x/"},
        {"name": "c1", "url": "http://x/", "run_on": "controller"},
        {"name": "p1", "type": "prometheus", "url": "http://p/", "query": "up"},
        {"name": "k1", "type": "kubernetes", "namespace": "n", "pod": "p"},
        {"name": "n2", "type": "command", "command": "true"},
    ])
    assert [p["name"] for p in node] == ["n1", "n2"]
    assert [p["name"] for p in controller] == ["c1", "p1", "k1"]


@pytest.mark.parametrize("auth, environ, expected", [
    ({}, {"K8S_AUTH_HOST": "https://env:6443", "K8S_AUTH_API_KEY": "tok"},
     {"host": "https://env:6443", "api_key": "tok"}),
    ({"host": "https://given"}, {"K8S_AUTH_HOST": "https://env:6443"}, {"host": "https://given"}),
    ({}, {"K8S_AUTH_VERIFY_SSL": "no"}, {"validate_certs": False}),
    # k8s_targets' other names for the same settings (kubernetes.core reads both)
    ({}, {"K8S_AUTH_VALIDATE_CERTS": "off", "K8S_AUTH_CERT_FILE": "/c", "K8S_AUTH_KEY_FILE": "/k"},
     {"validate_certs": False, "client_cert": "/c", "client_key": "/k"}),
])
def test_auth_falls_back_to_the_environment(auth, environ, expected):
    params = auth_params(auth, environ)
    for key, value in expected.items():
        assert params[key] == value


@pytest.mark.parametrize("spec, environ, detail", [
    # a typo must not turn TLS checks off
    ({}, {"K8S_AUTH_VERIFY_SSL": "nope"}, "K8S_AUTH_VERIFY_SSL must be true or false"),
    ({"username": "alice"}, {}, "the auth options go together: username without password"),
    ({"client_cert": "/c"}, {}, "client_cert without client_key"),
    ({"username": "alice"}, {"K8S_AUTH_PASSWORD": "from-env"}, "pods matching app=x in namespace shop: "),
])
def test_kubernetes_probe_auth_problems_are_failed_checks(monkeypatch, spec, environ, detail):
    for name in [n for n in os.environ if n.startswith("K8S_AUTH_")]:
        monkeypatch.delenv(name)
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    probe = normalize(dict({"name": "k", "type": "kubernetes", "namespace": "shop", "label_selector": "app=x",
                            "host": "https://127.0.0.1:1", "timeout": "1s"}, **spec))
    checked, _baseline = check_kubernetes(probe, None)
    assert not checked["ok"] and detail in checked["detail"]


def test_a_kubernetes_probe_leaves_no_copy_of_inline_credentials(monkeypatch, tmp_path):
    """The kubeconfig loader writes inline certificate data to temporary files and removes them only at
    interpreter exit, which an Ansible worker (os._exit) never reaches: each round removes its own, and the
    next round (same process, same kubeconfig) still connects."""
    import tempfile

    from tests.k8s_double import ApiDouble, make_pod
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    objects = {"pods": [make_pod("web-%d" % i, "shop", "n1", [{"name": "app", "container_id": "containerd://%064d" % i}],
                                 labels={"app": "web"}) for i in (1, 2)]}
    with ApiDouble(objects, token="probe-token-0007", workdir=str(tmp_path / "double")) as api:
        probe = normalize({"name": "pods", "type": "kubernetes", "namespace": "shop", "label_selector": "app=web",
                           "kubeconfig": api.kubeconfig_dict(inline_ca=True), "timeout": "5s"})
        for _round in range(2):
            checked, _baseline = check_kubernetes(probe, None)
            assert checked["ok"], checked["detail"]
            assert os.listdir(str(scratch)) == []
