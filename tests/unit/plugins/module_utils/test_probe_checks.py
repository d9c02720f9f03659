"""Probe specs and verdicts (module_utils/_probe_checks.py), as tables."""

import pytest

from ansible_collections.chaosfleet.stress.plugins.module_utils._probe_checks import (
    ProbeSpecError, check_command, judge_command, judge_http, judge_prometheus, normalize, normalize_all,
    prometheus_samples, scrub, secrets_of,
)

HTTP = normalize({"name": "web", "url": "http://127.0.0.1:1/health", "body_regex": "ok", "max_latency": "200ms"})
HTTP_CODES = normalize({"name": "web", "url": "http://x/", "status_code": [200, 204]})
CMD = normalize({"name": "cmd", "type": "command", "command": "true", "output_regex": "^ready", "max_latency": 1})
PROM = normalize({"name": "err", "type": "prometheus", "url": "http://127.0.0.1:9/", "query": "up",
                  "comparator": "<", "threshold": 0.5})
PROM_ANY = normalize({"name": "any", "type": "prometheus", "url": "http://p/", "query": "up"})
PROM_ALERT = normalize({"name": "alert", "type": "prometheus", "url": "http://p/", "query": "ALERTS",
                        "require_result": False})


@pytest.mark.parametrize("spec, message", [
    ("web", "probes[0] must be a mapping"),
    ({"url": "http://x/"}, "probes[0] needs a name"),
    ({"name": "a", "type": "ping"}, "type must be one of"),
    ({"name": "a", "url": "http://x/", "status": 200}, "unknown option(s) for a http probe: status"),
    ({"name": "a", "type": "command", "command": "x", "url": "http://x/"}, "unknown option(s) for a command probe: url"),
    ({"name": "a"}, "probe a: url is required"),
    ({"name": "a", "url": "ftp://x/"}, "must be an http:// or https:// URL"),
    ({"name": "a", "url": "http://x/", "timeout": "5 minutes"}, "is not a duration"),
    ({"name": "a", "url": "http://x/", "timeout": "10m"}, "over the maximum"),
    ({"name": "a", "url": "http://x/", "status_code": "two hundred"}, "status_code must be a whole number"),
    ({"name": "a", "url": "http://x/", "body_regex": "("}, "is not a regular expression"),
    ({"name": "a", "url": "http://x/", "run_on": "elsewhere"}, "run_on must be node or controller"),
    ({"name": "a", "url": "http://x/", "headers": "Authorization: x"}, "headers must be a mapping"),
    ({"name": "a", "type": "command"}, "command must be a non-empty list"),
    ({"name": "a", "type": "command", "command": []}, "command must be a non-empty list"),
    ({"name": "a", "type": "command", "command": "x", "expect_rc": -1}, "expect_rc must be at least 0"),
    ({"name": "a", "type": "prometheus", "url": "http://p/"}, "query (PromQL) is required"),
    ({"name": "a", "type": "prometheus", "url": "http://p/", "query": "up", "comparator": "<"},
     "comparator and threshold go together"),
    ({"name": "a", "type": "prometheus", "url": "http://p/", "query": "up", "comparator": "=<", "threshold": 1},
     "comparator must be one of"),
    ({"name": "a", "type": "prometheus", "url": "http://p/", "query": "up", "comparator": "<", "threshold": "x"},
     "threshold must be a number"),
    ({"name": "a", "type": "kubernetes"}, "namespace is required"),
    ({"name": "a", "type": "kubernetes", "namespace": "n"}, "exactly one of pod and label_selector"),
    ({"name": "a", "type": "kubernetes", "namespace": "n", "pod": "p", "label_selector": "a=b"},
     "exactly one of pod and label_selector"),
    ({"name": "a", "type": "kubernetes", "namespace": "n", "pod": "p", "run_on": "node"},
     "kubernetes probes run on the controller"),
])
def test_bad_specs_are_refused_with_the_field(spec, message):
    with pytest.raises(ProbeSpecError) as info:
        normalize(spec)
    assert message in str(info.value)


def test_names_are_unique():
    with pytest.raises(ProbeSpecError, match="used twice"):
        normalize_all([{"name": "a", "url": "http://x/"}, {"name": "a", "url": "http://y/"}])


@pytest.mark.parametrize("spec, expected", [
    ({"name": "a", "url": "http://x/"},
     dict(type="http", run_on="node", timeout=5.0, max_latency=None, method="GET", status_code=[200])),
    ({"name": "a", "url": "http://x/", "timeout": "500ms", "method": "head", "status_code": "204"},
     dict(timeout=0.5, method="HEAD", status_code=[204])),
    ({"name": "a", "type": "command", "command": "curl -sf 'http://x/a b'"},
     dict(run_on="node", command=["curl", "-sf", "http://x/a b"], expect_rc=0)),
    ({"name": "a", "type": "prometheus", "url": "http://p/", "query": "up", "threshold": "1", "comparator": ">="},
     dict(run_on="controller", threshold=1.0, require_result=True)),
    ({"name": "a", "type": "kubernetes", "namespace": "n", "label_selector": "app=x", "api_key": "s3cr3t-token",
      "min_pods": 2, "url": None},
     dict(run_on="controller", max_restarts=0, min_pods=2, require_ready=True, auth={"api_key": "s3cr3t-token"})),
    # k8s_targets' aliases, under the option's name (Ansible's validation leaves the alias beside it)
    ({"name": "a", "type": "kubernetes", "namespace": "n", "pod": "p", "cert_file": "/c", "key_file": "/k",
      "ssl_ca_cert": "/ca", "verify_ssl": False, "validate_certs": False},
     dict(auth={"client_cert": "/c", "client_key": "/k", "ca_cert": "/ca", "validate_certs": False})),
    ({"name": "a", "url": "https://x/", "verify_ssl": "no"}, dict(validate_certs=False)),
])
def test_defaults_and_conversions(spec, expected):
    probe = normalize(spec)
    for key, value in expected.items():
        assert probe[key] == value, key


@pytest.mark.parametrize("status, body, latency, error, ok, detail", [
    (200, "all ok", 0.05, None, True, "HTTP 200 in 50 ms"),
    (200, "all ok", 0.35, None, False, "HTTP 200 but latency 350 ms over max_latency 200 ms"),
    (200, "degraded", 0.05, None, False, "HTTP 200 but the body does not match 'ok'"),
    (503, "upstream down", 0.05, None, False, "HTTP 503, expected 200: upstream down"),
    (None, "", 5.0, "timed out", False, "no answer from http://127.0.0.1:1/health: timed out"),
])
def test_http_verdicts(status, body, latency, error, ok, detail):
    checked = judge_http(HTTP, status, body, latency, error)
    assert (checked["ok"], checked["detail"]) == (ok, detail)
    assert checked["latency_ms"] == round(latency * 1000, 1)


def test_http_any_listed_status_passes():
    assert judge_http(HTTP_CODES, 204, "", 0.01)["ok"]
    assert "expected 200 or 204" in judge_http(HTTP_CODES, 500, "", 0.01)["detail"]


@pytest.mark.parametrize("rc, output, latency, error, ok, detail", [
    (0, "ready 3/3", 0.01, None, True, "rc 0 in 10 ms"),
    (0, "starting", 0.01, None, False, "rc 0 but the output does not match '^ready'"),
    (1, "connection refused", 0.01, None, False, "rc 1, expected 0: connection refused"),
    (0, "ready", 1.5, None, False, "rc 0 but latency 1500 ms over max_latency 1000 ms"),
    (None, "", 5.0, "timed out after 5s", False, "timed out after 5s"),
])
def test_command_verdicts(rc, output, latency, error, ok, detail):
    checked = judge_command(CMD, rc, output, latency, error)
    assert (checked["ok"], checked["detail"]) == (ok, detail)


def _vector(*values):
    return {"status": "success", "data": {"resultType": "vector", "result": [
        {"metric": {"__name__": "m", "pod": "p%d" % i}, "value": [1700000000, v]} for i, v in enumerate(values)]}}


@pytest.mark.parametrize("probe, payload, error, ok, detail", [
    (PROM, _vector("0.1"), None, True, "value 0.1 < 0.5 in 20 ms"),
    (PROM, _vector("0.1", "0.2"), None, True, "all 2 series < 0.5 in 20 ms"),
    (PROM, _vector("0.1", "0.9", "1.5"), None, False, 'm{pod="p1"} = 0.9, expected < 0.5 (and 1 more series)'),
    (PROM, _vector("NaN"), None, False, 'm{pod="p0"} = nan, expected < 0.5'),
    (PROM, _vector(), None, False, "the query returned no series (require_result is true)"),
    (PROM_ALERT, _vector(), None, True, "no series (allowed: require_result is false)"),
    (PROM_ANY, _vector("7"), None, True, "1 series"),
    (PROM, {"status": "success", "data": {"resultType": "scalar", "result": [1700000000, "0.25"]}}, None, True,
     "value 0.25 < 0.5 in 20 ms"),
    (PROM, {"status": "success", "data": {"resultType": "matrix", "result": []}}, None, False,
     "the query returned a matrix; use an expression that returns an instant vector or a scalar"),
    (PROM, {"status": "error", "errorType": "bad_data", "error": "parse error"}, None, False,
     "Prometheus refused the query: parse error"),
    (PROM, None, "connection refused", False, "no answer from Prometheus at http://127.0.0.1:9/: connection refused"),
])
def test_prometheus_verdicts(probe, payload, error, ok, detail):
    checked = judge_prometheus(probe, payload, 0.02, error)
    assert (checked["ok"], checked["detail"]) == (ok, detail)


def test_prometheus_samples_reads_labels():
    assert prometheus_samples(_vector("1")) == [('m{pod="p0"}', 1.0)]


def test_secrets_are_scrubbed_from_details():
    probes = normalize_all([{"name": "a", "url": "http://x/", "headers": {"Authorization": "Bearer tok-123456"}},
                            {"name": "k", "type": "kubernetes", "namespace": "n", "pod": "p", "password": "pw-secret"}])
    secrets = secrets_of(probes)
    text = scrub("sent Bearer tok-123456 and tok-123456 and pw-secret", secrets)
    assert "tok-123456" not in text and "pw-secret" not in text


def test_a_kubeconfig_dicts_credentials_and_the_proxy_password_are_secrets():
    kubeconfig = {"users": [{"name": "u", "user": {"token": "kc-token-1234", "username": "alice"}}],
                  "clusters": [{"name": "c", "cluster": {"server": "https://api:6443"}}]}
    probes = normalize_all([{"name": "k", "type": "kubernetes", "namespace": "n", "pod": "p", "kubeconfig": kubeconfig,
                             "proxy": "http://u:proxy-pw-1@proxy:3128", "api_key": "api-key-1234"}])
    assert sorted(secrets_of(probes)) == ["api-key-1234", "kc-token-1234", "proxy-pw-1"]


@pytest.mark.parametrize("spec, ok, detail_part", [
    ({"name": "c", "type": "command", "command": ["sh", "-c", "echo ready; exit 0"], "output_regex": "^ready"},
     True, "rc 0"),
    ({"name": "c", "type": "command", "command": ["sh", "-c", "echo nope >&2; exit 3"]}, False, "rc 3, expected 0: nope"),
    ({"name": "c", "type": "command", "command": ["/nonexistent/cflab-probe"]}, False, "cannot run /nonexistent"),
    ({"name": "c", "type": "command", "command": ["sleep", "30"], "timeout": "300ms"}, False, "timed out after 0.3s"),
])
def test_command_checks_run_for_real(spec, ok, detail_part):
    checked = check_command(normalize(spec))
    assert checked["ok"] is ok
    assert detail_part in checked["detail"]
    if "timed out" in detail_part:
        assert checked["latency_ms"] < 5000  # killed, not waited for
